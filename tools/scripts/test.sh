#!/usr/bin/env bash
# Builds gill and runs every test (CTest). Usage: tools/scripts/test.sh [ctest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GILL_BUILD_DIR:-$ROOT/build}"
GILL_WITH_PYTHON_TORCH=1 "$ROOT/tools/scripts/setup.sh" "$BUILD" ${GILL_CMAKE_ARGS:-}
cd "$BUILD"
export OMP_WAIT_POLICY=passive
ctest --output-on-failure -j"${GILL_TEST_JOBS:-2}" "$@"
