#!/usr/bin/env bash
# Builds gill and runs every test (CTest). Usage: tools/scripts/test.sh [ctest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GILL_BUILD_DIR:-$ROOT/build}"
GILL_WITH_PYTHON_TORCH=1 "$ROOT/tools/scripts/setup.sh" "$BUILD" ${GILL_CMAKE_ARGS:-}
cd "$BUILD"
export OMP_WAIT_POLICY=passive
# With ../shared present, a parity test that would skip for a missing fixture fails instead (GILL_REQUIRE_PATH).
if [ -d "${GILL_SHARED_DIR:-$ROOT/../shared}" ]; then export GILL_REQUIRE_SHARED=1; fi
ctest --output-on-failure -j"${GILL_TEST_JOBS:-2}" "$@"
