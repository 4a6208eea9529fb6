#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages focusbench's build and tests need.
# Idempotent: installs only what is missing and says what it installs. Run as root (or with sudo).
#   scripts/install-deps.sh           build + test dependencies
#   scripts/install-deps.sh --torch   also PyTorch (fixtures, side-by-side CPU timing)
set -euo pipefail

packages=(
  build-essential pkg-config
  libopenblas-openmp-dev   # CPU GEMM fast path (conv via im2col, linear), OpenMP threads
  libdnnl-dev              # oneDNN: CPU dense-convolution fast path
  libcmocka-dev            # C test framework
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev   # FFmpeg video decoding
  libcsv-dev               # CSV output
  gnuplot-nox              # plots
  python3                  # small helper scripts
)
if [[ "${1:-}" == "--torch" ]]; then
  packages+=(python3-torch python3-torchvision python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: not root and no sudo; install these packages: ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
