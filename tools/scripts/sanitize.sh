#!/usr/bin/env bash
# The sanitizer job: builds gill with AddressSanitizer + UndefinedBehaviorSanitizer (-DGILL_SANITIZE=ON, any UBSan
# report aborts) in its own build folder and runs the unit, module and e2e tests under it.
# Usage: tools/scripts/sanitize.sh [ctest args...]      (build folder: GILL_ASAN_BUILD_DIR, default build-asan)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GILL_ASAN_BUILD_DIR:-$ROOT/build-asan}"
"$ROOT/tools/scripts/setup.sh" "$BUILD" -DGILL_SANITIZE=ON
cd "$BUILD"
export OMP_WAIT_POLICY=passive
# libtorch is not instrumented: its one-time allocations show up as leaks (off); everything else reports and stops.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --output-on-failure -j"${GILL_TEST_JOBS:-2}" -L '^(unit|module|e2e)$' "$@"
