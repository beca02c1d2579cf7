#!/usr/bin/env bash
# tools/fuzz.sh TARGET SECONDS [libFuzzer options...]
#
# Builds fuzz/fuzz_TARGET.cpp with clang, libFuzzer, ASan and UBSan in build-fuzz/ (only that target and the
# instrumented library it links), seeds its corpus from tests/data, and fuzzes it for SECONDS. The corpus is kept
# in build-fuzz/corpus/TARGET (new finds accumulate across runs); crashes, leaks, timeouts and OOMs are written to
# build-fuzz/artifacts/TARGET/ and make the script exit non-zero. The whole log is build-fuzz/fuzz-TARGET.log;
# the last lines printed are libFuzzer's final stats (stat::number_of_executed_units = executions).
#
# Targets: pickle torch_zip safetensors npy config tokenizer image clip_preprocess batch  (`tools/fuzz.sh list`)
# Environment: GILL_FUZZ_BUILD (build folder, default build-fuzz), GILL_FUZZ_JOBS (build jobs, default 2).
# Example, what CI runs per target: tools/fuzz.sh pickle 20 -runs=20000
set -euo pipefail
cd "$(dirname "$0")/.."

targets="pickle torch_zip safetensors npy config tokenizer image clip_preprocess batch"
if [ "${1:-}" = list ]; then
  echo "$targets"
  exit 0
fi
if [ $# -lt 2 ]; then
  echo "usage: tools/fuzz.sh TARGET SECONDS [libFuzzer options...]   (targets: $targets)" >&2
  exit 2
fi
target=${1#fuzz_}
seconds=$2
shift 2
case " $targets " in
  *" $target "*) ;;
  *) echo "tools/fuzz.sh: unknown target '$target' (targets: $targets)" >&2; exit 2 ;;
esac

build=${GILL_FUZZ_BUILD:-build-fuzz}
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DGILL_FUZZ=ON \
    -DGILL_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j "${GILL_FUZZ_JOBS:-2}" --target "fuzz_$target" >/dev/null

corpus=$build/corpus/$target
artifacts=$build/artifacts/$target
mkdir -p "$corpus" "$artifacts"

# Seeds: small files (<= 64 KiB) of the kinds the target reads. Copied under content-derived names, so rerunning
# adds nothing twice.
seed() {
  local f
  while IFS= read -r -d '' f; do
    cp "$f" "$corpus/seed-$(cksum <"$f" | cut -d' ' -f1)"
  done < <(find tests/data tests/bad_inputs -type f -size -65k \( "$@" \) -print0 2>/dev/null)
}
case $target in
  pickle)
    seed -name '*.npy'
    # data.pkl of every torch zip (stored entries), extracted with python3 or unzip when available.
    while IFS= read -r -d '' f; do
      out=$corpus/seed-pkl-$(cksum <"$f" | cut -d' ' -f1)
      if command -v python3 >/dev/null; then
        python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
n = [x for x in z.namelist() if x.endswith("/data.pkl")]
sys.stdout.buffer.write(z.read(n[0]) if n else b"")' "$f" >"$out" 2>/dev/null || rm -f "$out"
      elif command -v unzip >/dev/null; then
        unzip -p "$f" '*/data.pkl' >"$out" 2>/dev/null || rm -f "$out"
      fi
    done < <(find tests/data -type f -size -65k \( -name '*.pth.tar' -o -name '*.bin' -o -name '*.pth' \) -print0)
    ;;
  torch_zip) seed -name '*.pth.tar' -o -name '*.bin' -o -name '*.pth' ;;
  safetensors) seed -name '*.safetensors' -o -name '*.index.json' ;;
  npy) seed -name '*.npy' ;;
  config)
    seed -name '*config*.json' -o -name 'model_args.json' -o -name 'special_tokens_map.json'
    printf '%s' '{"_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "skip_prk_steps": true, "set_alpha_to_one": false, "steps_offset": 1, "prediction_type": "epsilon", "clip_sample": false}' \
      >"$corpus/seed-scheduler-config"
    ;;
  tokenizer) seed -name '*.txt' -o -name '*.md' -o -name 'cases.json' -o -name '*.jsonl' ;;
  image) seed -name '*.png' -o -name '*.jpg' -o -name '*.bmp' -o -name '*.gif' -o -name '*.ppm' -o -name '*.pgm' -o -name '*.tga' ;;
  clip_preprocess) printf '\x20\x18\x30\x20\x20\x03\x01abcdefgh' >"$corpus/seed-small" ;;
  batch) seed -name '*.jsonl' ;;
esac

# Inputs longer than this add time per run, not coverage (whole-file readers keep the seeds' size).
case $target in
  tokenizer) max_len=(-max_len=512) ;;
  image) max_len=(-max_len=16384) ;;
  *) max_len=() ;;
esac

echo "fuzz_$target: $(ls "$corpus" | wc -l) corpus files, $seconds s" >&2
set +e
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 -timeout=30 -rss_limit_mb=2560 \
  -artifact_prefix="$artifacts/" "${max_len[@]}" "$@" "$corpus" 2>&1 | tee "$build/fuzz-$target.log" | tail -n 40
status=${PIPESTATUS[0]}
exit "$status"
