#!/usr/bin/env bash
# CI's short fuzz run: every libFuzzer target (tools/fuzz.sh list) for GILL_FUZZ_RUNS executions (default 10^4)
# under ASan + UBSan, seeded from tests/data. Fails on any finding, and when a target did fewer executions than
# asked (so a target that got slow shows up too). Needs clang + libclang-rt-dev (installed here when missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
runs="${GILL_FUZZ_RUNS:-10000}"
"$ROOT/tools/scripts/apt_install.sh" @clang
build="${GILL_FUZZ_BUILD:-build-fuzz}"
failed=()
for t in $(tools/fuzz.sh list); do
  start=$(date +%s)
  if ! tools/fuzz.sh "$t" 900 -runs="$runs" >/dev/null 2>&1; then
    failed+=("$t (finding: see $build/fuzz-$t.log and $build/artifacts/$t/)")
    tail -n 60 "$build/fuzz-$t.log" >&2 || true
    continue
  fi
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz-$t.log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$build/fuzz-$t.log" | tail -n 1)
  echo "fuzz_$t: ${done_runs:-0} executions, ${rate:-?}/s, $(($(date +%s) - start)) s with the build"
  if [ "${done_runs:-0}" -lt "$runs" ]; then
    failed+=("$t (only ${done_runs:-0} of $runs executions)")
  fi
done
if ((${#failed[@]})); then
  printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: every target ran $runs executions clean"
