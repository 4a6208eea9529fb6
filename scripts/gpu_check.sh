#!/usr/bin/env bash
# gpu_check.sh — the one command to run on a GPU machine: report the machine, build focusbench
# with the CUDA backend, run `make test-gpu`, and keep the whole log.
#
#   scripts/gpu_check.sh [GROUP...]   on the GPU machine (default: every GPU test group); the log
#                                     goes to $OUT/test-gpu.log (or build/gpu/test-gpu.log)
#   scripts/gpu_check.sh --build-only on the GPU machine: the same build, no tests
#   scripts/gpu_check.sh --pack       on the build machine: copies what the GPU machines lack
#                                     (cmocka and libcsv headers/libraries, the cuDNN headers)
#                                     into build/gpu-deps/, to be carried to the GPU machine
#
# The GPU machines (Ubuntu 24.04, CUDA 13.0 in /usr/local/cuda-13.0, cuDNN 9.14 runtime in
# /usr/lib/x86_64-linux-gnu) have no OpenBLAS, cmocka, FFmpeg or libcsv and no network. The CPU
# side then builds with the built-in GEMM (HAVE_BLAS=0) and without FFmpeg; cmocka (needed by
# the test binary) and libcsv come from build/gpu-deps when the machine has none; so do the
# cuDNN headers and an unversioned libcudnn.so link when only the cuDNN runtime is installed.
# Every choice is printed, so the log says how the binary was built.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
deps=$here/build/gpu-deps

# ---------------------------------------------------------------- pack (build machine) -----
if [[ ${1:-} == --pack ]]; then
  set -e
  rm -rf "$deps"
  mkdir -p "$deps/include" "$deps/lib" "$deps/cudnn-include"
  cp /usr/include/cmocka.h "$deps/include/"
  [[ -f /usr/include/cmocka_pbc.h ]] && cp /usr/include/cmocka_pbc.h "$deps/include/"
  so=$(ls /usr/lib/x86_64-linux-gnu/libcmocka.so.0 2>/dev/null || true)
  [[ -n $so ]] || { echo "gpu_check --pack: libcmocka.so.0 not found (apt-get install libcmocka-dev)" >&2; exit 1; }
  cp -L "$so" "$deps/lib/libcmocka.so.0"   # real files, no symlinks: carried trees may drop links
  cp -L "$so" "$deps/lib/libcmocka.so"
  cp /usr/include/csv.h "$deps/include/"
  cp /usr/lib/x86_64-linux-gnu/libcsv.a "$deps/lib/"
  cudnn_inc=""
  for d in /usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu; do
    [[ -f $d/cudnn.h ]] && { cudnn_inc=$d; break; }
  done
  [[ -n $cudnn_inc ]] || { echo "gpu_check --pack: cudnn.h not found on this machine" >&2; exit 1; }
  cp -L "$cudnn_inc"/cudnn*.h "$deps/cudnn-include/"
  echo "gpu_check --pack: wrote $(du -sh "$deps" | cut -f1) to build/gpu-deps:"
  ls -l "$deps"/* | sed 's/^/  /'
  echo "carry build/gpu-deps to the GPU machine (run's carry: [\"build/gpu-deps\"]), then run scripts/gpu_check.sh there"
  exit 0
fi

# ---------------------------------------------------------------- check (GPU machine) ------
out_dir=${OUT:-$here/build/gpu}
mkdir -p "$out_dir"
log=$out_dir/test-gpu.log
exec > >(tee "$log") 2>&1

section() { printf '\n===== %s =====\n' "$*"; }
section "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
uname -a
[[ -r /etc/os-release ]] && grep PRETTY_NAME /etc/os-release
echo "tree: $(git rev-parse --short=12 HEAD 2>/dev/null || echo 'no git metadata')$(git diff --quiet HEAD 2>/dev/null || echo ' (modified)')"

section "GPU"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,compute_cap,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,memory.used,memory.total --format=csv
else
  echo "nvidia-smi not found: is this a GPU machine?"
fi

section "toolchain"
for d in /usr/local/cuda-13.0/bin /usr/local/cuda/bin; do
  [[ -x $d/nvcc ]] && { export PATH=$d:$PATH; break; }
done
command -v nvcc >/dev/null && nvcc --version | tail -2 || echo "nvcc not found"
gcc --version | head -1
cuda_home=$(cd "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")/.." && pwd)
echo "CUDA home: $cuda_home"

# What configure.sh looks at (scripts/configure.sh) and what we add when it is missing.
make_vars=(BUILD=build/gpu)
export FOCUSBENCH_NO_INSTALL=1 # no network here: never try apt-get
cudnn_inc=""
for d in "$cuda_home/include" /usr/include /usr/include/x86_64-linux-gnu; do
  [[ -f $d/cudnn.h ]] && { cudnn_inc=$d; break; }
done
cudnn_lib=""
for d in "$cuda_home/lib" "$cuda_home/lib64" /usr/lib/x86_64-linux-gnu; do
  ls "$d"/libcudnn.so* >/dev/null 2>&1 && { cudnn_lib=$d; break; }
done
echo "cuDNN runtime libraries: ${cudnn_lib:-NOT FOUND} ($(ls "$cudnn_lib"/libcudnn.so.* 2>/dev/null | head -1))"
echo "cuDNN headers: ${cudnn_inc:-not installed}"
cuda_mode=1
if [[ -z $cudnn_lib ]]; then
  echo "FATAL: no libcudnn.so* on this machine; the CUDA backend cannot be linked." >&2
  exit 1
fi
if [[ -z $cudnn_inc ]]; then
  if [[ -f $deps/cudnn-include/cudnn.h ]]; then
    cudnn_inc=$deps/cudnn-include
    echo "  -> using the carried cuDNN headers in build/gpu-deps/cudnn-include ($(grep -m1 'define CUDNN_MAJOR' "$cudnn_inc"/cudnn_version.h | awk '{print $3}').$(grep -m1 'define CUDNN_MINOR' "$cudnn_inc"/cudnn_version.h | awk '{print $3}'))"
    cuda_mode=auto # configure cannot see them; the make variables below switch the backend on
  else
    echo "FATAL: no cudnn.h here and no build/gpu-deps/cudnn-include: run 'scripts/gpu_check.sh --pack' on the build machine and carry build/gpu-deps" >&2
    exit 1
  fi
fi
if [[ ! -e $cudnn_lib/libcudnn.so ]]; then
  # only the runtime package: -lcudnn needs the unversioned name
  mkdir -p "$here/build/gpu/devlinks"
  ln -sf "$(ls "$cudnn_lib"/libcudnn.so.9* | head -1)" "$here/build/gpu/devlinks/libcudnn.so"
  echo "  -> no unversioned libcudnn.so in $cudnn_lib: linking through build/gpu/devlinks/libcudnn.so"
  cudnn_lib=$here/build/gpu/devlinks
  cuda_mode=auto
fi
if [[ $cuda_mode == auto ]]; then
  make_vars+=(CUDA=auto USE_CUDA=1 "CUDNN_INC=$cudnn_inc" "CUDNN_LIB=$cudnn_lib")
else
  make_vars+=(CUDA=1)
fi

extra_inc=""
if [[ ! -f /usr/include/cmocka.h ]]; then
  if [[ -f $deps/include/cmocka.h ]]; then
    echo "cmocka: not installed -> the carried copy in build/gpu-deps"
    make_vars+=("CMOCKA_CFLAGS=-I$deps/include" "CMOCKA_LIBS=-L$deps/lib -lcmocka")
    export LD_LIBRARY_PATH=$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    echo "FATAL: cmocka is not installed and build/gpu-deps is missing: run 'scripts/gpu_check.sh --pack' on the build machine and carry build/gpu-deps" >&2
    exit 1
  fi
else
  echo "cmocka: installed"
fi
if [[ ! -f /usr/include/csv.h && -f $deps/lib/libcsv.a ]]; then
  echo "libcsv: not installed -> the carried static library in build/gpu-deps"
  make_vars+=(HAVE_CSV=1 "CSV_LIBS=$deps/lib/libcsv.a")
  extra_inc="-I$deps/include"
fi
[[ -n $extra_inc ]] && make_vars+=("CFLAGS_EXTRA=$extra_inc")
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:$cuda_home/targets/x86_64-linux/lib:$cuda_home/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "make variables: ${make_vars[*]}"

section "build (make -j16)"
t0=$(date +%s)
make -j16 "${make_vars[@]}"
rc_build=$?
echo "build rc=$rc_build after $(($(date +%s) - t0)) s"
if [[ $rc_build != 0 ]]; then
  section "RESULT: BUILD FAILED (rc $rc_build)"
  exit "$rc_build"
fi
[[ ${1:-} == --build-only ]] && exit 0

section "make test-gpu ${*:-(all groups)}"
t0=$(date +%s)
make "${make_vars[@]}" test-gpu TESTS="$*"
rc_test=$?
echo "test-gpu rc=$rc_test after $(($(date +%s) - t0)) s"

section "GPU after the run"
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw,memory.used --format=csv
section "RESULT: $([[ $rc_test == 0 ]] && echo 'ALL GPU TESTS PASSED' || echo "GPU TESTS FAILED (rc $rc_test): search the log for FAIL")"
echo "log: $log"
exit "$rc_test"
