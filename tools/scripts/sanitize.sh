#!/usr/bin/env bash
# The sanitizer job: builds gill with AddressSanitizer + UndefinedBehaviorSanitizer (-DGILL_SANITIZE=ON, any UBSan
# report aborts) in its own build folder and runs the unit, module and e2e tests under it.
# Usage: tools/scripts/sanitize.sh [ctest args...]      (build folder: GILL_ASAN_BUILD_DIR, default build-asan)
# Compiled with clang (installed when missing): measured on one unity batch of the library (2-core AMD EPYC), an
# ASan + UBSan compile takes 47 s with clang -O3 against 156 s with gcc -O3 (81 s at gcc -O1), so the cold
# sanitizer build is about a third of gcc's; clang's UBSan also checks float-to-integer casts, which gcc's does not.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GILL_ASAN_BUILD_DIR:-$ROOT/build-asan}"
"$ROOT/tools/scripts/apt_install.sh" @clang
CXX_PATH="$(command -v clang++)"
# A build folder configured with another compiler (an older gcc build-asan/) is configured afresh.
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -qx "CMAKE_CXX_COMPILER:[A-Z]*=$CXX_PATH" "$BUILD/CMakeCache.txt"; then
  echo "sanitize: $BUILD was configured with another compiler; configuring it afresh with $CXX_PATH" >&2
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
fi
# Only what the tests below run: the three test executables (they depend on gill, gill-bench and the shim).
GILL_BUILD_TARGETS="test_unit test_module test_e2e" \
  "$ROOT/tools/scripts/setup.sh" "$BUILD" -DCMAKE_CXX_COMPILER="$CXX_PATH" -DGILL_SANITIZE=ON
cd "$BUILD"
export OMP_WAIT_POLICY=passive
# libtorch is not instrumented: its one-time allocations show up as leaks (off); everything else reports and stops.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --output-on-failure -j"${GILL_TEST_JOBS:-2}" -L '^(unit|module|e2e)$' "$@"
