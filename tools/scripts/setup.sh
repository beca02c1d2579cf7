#!/usr/bin/env bash
# Installs gill's Debian 12 dependencies (when missing) and builds it. Idempotent; quick on a second run.
# Usage: tools/scripts/setup.sh [BUILD_DIR] [extra cmake args...]
# GILL_BUILD_TARGETS="gill_cli ..." builds only those targets (default: all, tests included).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
shift || true

PACKAGES=(build-essential cmake ccache pkg-config libtorch-dev libopenblas0-pthread libsentencepiece-dev
  sentencepiece libstb-dev libcli11-dev libspdlog-dev googletest libgtest-dev nlohmann-json3-dev libpcre2-dev libicu-dev
  libcpp-httplib-dev chromium)  # chromium: the chat page's browser test (tests/e2e_serve_browser.cpp)
"$ROOT/tools/scripts/apt_install.sh" "${PACKAGES[@]}"
# Optional: python3-torch lets a test confirm that Python's torch.load reads the .pth.tar files we write
# (e2e MakeTiny), python3-pil that Pillow reads the PNG text chunks we write (unit Image); without them those
# checks are reported as skipped.
if [ "${GILL_WITH_PYTHON_TORCH:-0}" = 1 ]; then
  "$ROOT/tools/scripts/apt_install.sh" python3-torch python3-pil
fi

JOBS="${GILL_JOBS:-$(nproc)}"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
elif (($#)); then
  cmake -S "$ROOT" -B "$BUILD" "$@" >/dev/null
fi
targets=()
for t in ${GILL_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
if [ ! -f "$BUILD/.gill-built-once" ]; then
  echo "setup: first build in $BUILD (unity build; on 2 cores about 6 minutes for the gill binary, about 11 for" \
    "everything with the tests; later builds are incremental, and ccache makes fresh clones fast)" >&2
fi
cmake --build "$BUILD" -j"$JOBS" "${targets[@]}"
touch "$BUILD/.gill-built-once"
