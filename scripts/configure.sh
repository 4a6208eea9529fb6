#!/usr/bin/env bash
# configure.sh — probes this machine and writes the make fragment build/config.mk.
#   scripts/configure.sh OUT [CUDA=0|1|auto]
# Every probe is a real check (pkg-config, a test compile and link, or a file that must exist).
# When a probe of a required Debian package fails, it runs scripts/install-deps.sh once (and says
# so) and probes again. Prints a ✓/✗ feature summary.
set -uo pipefail
out=${1:?usage: configure.sh OUT [CUDA=0|1|auto]}
cuda_req=${2:-auto}
cc=${CC:-cc}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

try_link() { # try_link "<includes/code>" "<cflags>" "<libs>"
  printf '%s\nint main(void){return 0;}\n' "$1" > "$tmp/t.c"
  $cc $2 "$tmp/t.c" -o "$tmp/t" $3 >/dev/null 2>&1
}

probe() {
  # OpenBLAS: the OpenMP build first, so BLAS, oneDNN and our own loops share one thread pool
  # (with the pthread build the two pools fight over the cores: measured here, linear layers
  # at 175 instead of 380 GFLOP/s); the default pkg-config entry (often the pthread build) next.
  HAVE_BLAS=0; BLAS_CFLAGS=""; BLAS_LIBS=""; BLAS_THREADS=""
  local blas_test='#include <cblas.h>
void f(void){cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1.f,0,1,0,1,0.f,0,1);}'
  local omp_pc=/usr/lib/x86_64-linux-gnu/openblas-openmp/pkgconfig
  if [[ -f $omp_pc/openblas.pc ]] &&
     try_link "$blas_test" "$(PKG_CONFIG_PATH=$omp_pc pkg-config --cflags openblas)" \
       "$(PKG_CONFIG_PATH=$omp_pc pkg-config --libs openblas) -fopenmp"; then
    HAVE_BLAS=1; BLAS_THREADS=openmp
    BLAS_CFLAGS="$(PKG_CONFIG_PATH=$omp_pc pkg-config --cflags openblas)"
    BLAS_LIBS="$(PKG_CONFIG_PATH=$omp_pc pkg-config --libs openblas) -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp"
  elif pkg-config --exists openblas 2>/dev/null &&
     try_link "$blas_test" "$(pkg-config --cflags openblas)" "$(pkg-config --libs openblas)"; then
    HAVE_BLAS=1; BLAS_THREADS=pthread; BLAS_CFLAGS="$(pkg-config --cflags openblas)"; BLAS_LIBS="$(pkg-config --libs openblas)"
  fi
  # oneDNN (Debian libdnnl-dev): the fast path for dense convolutions (measured 1.5x faster than
  # im2col + OpenBLAS on ResNet-50's 3x3 layers here); optional.
  HAVE_DNNL=0; DNNL_LIBS=""
  if try_link '#include <oneapi/dnnl/dnnl.h>
void f(void){dnnl_engine_t e; dnnl_engine_create(&e, dnnl_cpu, 0);}' "" "-ldnnl"; then
    HAVE_DNNL=1; DNNL_LIBS="-ldnnl"
  fi
  HAVE_CMOCKA=0; CMOCKA_CFLAGS=""; CMOCKA_LIBS=""
  if pkg-config --exists cmocka 2>/dev/null &&
     try_link '#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>' "$(pkg-config --cflags cmocka)" "$(pkg-config --libs cmocka)"; then
    HAVE_CMOCKA=1; CMOCKA_CFLAGS="$(pkg-config --cflags cmocka)"; CMOCKA_LIBS="$(pkg-config --libs cmocka)"
  fi
  HAVE_FFMPEG=0; FFMPEG_CFLAGS=""; FFMPEG_LIBS=""
  local av="libavformat libavcodec libswscale libavutil"
  if pkg-config --exists $av 2>/dev/null &&
     try_link '#include <libavformat/avformat.h>
#include <libswscale/swscale.h>' "$(pkg-config --cflags $av)" "$(pkg-config --libs $av)"; then
    HAVE_FFMPEG=1; FFMPEG_CFLAGS="$(pkg-config --cflags $av)"; FFMPEG_LIBS="$(pkg-config --libs $av)"
  fi
  HAVE_CSV=0; CSV_LIBS=""
  # libcsv is linked statically where the archive exists, so the binary runs on GPU machines without it
  for a in /usr/lib/x86_64-linux-gnu/libcsv.a /usr/lib/libcsv.a /usr/local/lib/libcsv.a; do
    if [[ -f $a ]] && try_link '#include <csv.h>' "" "$a"; then HAVE_CSV=1; CSV_LIBS="$a"; break; fi
  done
  if [[ $HAVE_CSV == 0 ]] && try_link '#include <csv.h>' "" "-lcsv"; then HAVE_CSV=1; CSV_LIBS="-lcsv"; fi
  HAVE_GNUPLOT=0; command -v gnuplot >/dev/null 2>&1 && HAVE_GNUPLOT=1
  HAVE_OPENMP=0; try_link '#include <omp.h>' "-fopenmp" "-fopenmp" && HAVE_OPENMP=1
  HAVE_MARCH_NATIVE=0; try_link '' "-march=native" "" && HAVE_MARCH_NATIVE=1
}

probe
if [[ $HAVE_BLAS == 0 || $HAVE_DNNL == 0 || $BLAS_THREADS != openmp || $HAVE_CMOCKA == 0 || $HAVE_FFMPEG == 0 || $HAVE_CSV == 0 || $HAVE_GNUPLOT == 0 ]]; then
  if command -v apt-get >/dev/null 2>&1 && [[ -z "${FOCUSBENCH_NO_INSTALL:-}" ]]; then
    echo "configure: a required package is missing; running scripts/install-deps.sh"
    "$here/install-deps.sh" || echo "configure: install-deps.sh failed; continuing with what is there"
    probe
  fi
fi

# CUDA: nvcc and cuDNN (header and library) must both be found.
NVCC=""; CUDA_HOME=""; HAVE_CUDNN=0
for n in "${NVCC_PATH:-}" "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc; do
  if [[ -n $n && -x $n ]]; then NVCC=$n; break; fi
done
if [[ -n $NVCC ]]; then
  CUDA_HOME=$(cd "$(dirname "$NVCC")/.." && pwd)
  for inc in "$CUDA_HOME/include" /usr/include /usr/include/x86_64-linux-gnu; do
    [[ -f $inc/cudnn.h ]] || continue
    for lib in "$CUDA_HOME/lib" "$CUDA_HOME/lib64" /usr/lib/x86_64-linux-gnu; do
      if ls "$lib"/libcudnn.so* >/dev/null 2>&1; then HAVE_CUDNN=1; CUDNN_INC=$inc; CUDNN_LIB=$lib; break 2; fi
    done
  done
fi
HAVE_CUDA_TOOLS=0; [[ -n $NVCC && $HAVE_CUDNN == 1 ]] && HAVE_CUDA_TOOLS=1
# NCCL's header (kernels/dist/ builds its backend when the CUDA backend is on too; the library is
# opened at run time, so only the header is probed): $NCCL_HOME, the toolkit, the system, PyTorch's
# wheel (nvidia-nccl-cu*), and the copy scripts/gpu_check.sh --pack carries.
HAVE_NCCL_H=0; NCCL_INC=""
for d in ${NCCL_HOME:+$NCCL_HOME/include} ${CUDA_HOME:+$CUDA_HOME/include} /usr/local/cuda/include /usr/include \
         /usr/local/lib/python3*/dist-packages/nvidia/nccl/include /usr/local/lib/python3*/site-packages/nvidia/nccl/include \
         "$here/../build/gpu-deps/include"; do
  if [[ -f $d/nccl.h ]] && grep -q ncclCommInitRank "$d/nccl.h"; then HAVE_NCCL_H=1; NCCL_INC=$(cd "$d" && pwd); break; fi
done
case $cuda_req in
  1) if [[ $HAVE_CUDA_TOOLS == 0 ]]; then
       echo "configure: CUDA=1 but nvcc and cuDNN were not both found (nvcc: ${NVCC:-none}, cuDNN: $HAVE_CUDNN)." >&2
       echo "configure: install the CUDA toolkit 12/13 and cuDNN 9, or build with CUDA=0." >&2
       exit 1
     fi; USE_CUDA=1 ;;
  0) USE_CUDA=0 ;;
  *) USE_CUDA=$HAVE_CUDA_TOOLS ;;
esac

mkdir -p "$(dirname "$out")"
{
  echo "# generated by scripts/configure.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); 'make clean' to re-probe"
  for v in HAVE_BLAS BLAS_CFLAGS BLAS_LIBS BLAS_THREADS HAVE_DNNL DNNL_LIBS HAVE_CMOCKA CMOCKA_CFLAGS CMOCKA_LIBS HAVE_FFMPEG FFMPEG_CFLAGS \
           FFMPEG_LIBS HAVE_CSV CSV_LIBS HAVE_GNUPLOT HAVE_OPENMP HAVE_MARCH_NATIVE NVCC CUDA_HOME HAVE_CUDNN \
           HAVE_NCCL_H NCCL_INC USE_CUDA CONFIGURED_CUDA; do
    case $v in
      CONFIGURED_CUDA) echo "CONFIGURED_CUDA := $cuda_req" ;;
      *) echo "$v := ${!v}" ;;
    esac
  done
  echo "CUDNN_INC := ${CUDNN_INC:-}"
  echo "CUDNN_LIB := ${CUDNN_LIB:-}"
} > "$out.tmp" && mv "$out.tmp" "$out"

mark() { [[ $1 == 1 ]] && printf '\xe2\x9c\x93' || printf '\xe2\x9c\x97'; }
echo "focusbench build features:"
echo "  $(mark $HAVE_BLAS) OpenBLAS      (CPU conv/linear fast path, ${BLAS_THREADS:-no} threads; without it a built-in GEMM)"
echo "  $(mark $HAVE_DNNL) oneDNN        (CPU dense-convolution fast path; without it im2col + GEMM)"
echo "  $(mark $HAVE_OPENMP) OpenMP        (CPU threads)"
echo "  $(mark $HAVE_FFMPEG) FFmpeg libav* (video decoding; clip caches work without it)"
echo "  $(mark $HAVE_CSV) libcsv        (CSV output)"
echo "  $(mark $HAVE_GNUPLOT) gnuplot       (plots)"
echo "  $(mark $HAVE_CMOCKA) cmocka        (tests)"
echo "  $(mark $HAVE_NCCL_H) nccl.h        (NCCL data parallelism with the CUDA backend: ${NCCL_INC:-not found}; libnccl opened at run time)"
echo "  $(mark $USE_CUDA) CUDA backend  (nvcc: ${NVCC:-not found}, cuDNN: $( [[ $HAVE_CUDNN == 1 ]] && echo found || echo not found ); CUDA=$cuda_req)"
