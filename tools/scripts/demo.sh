#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, writes the tiny random model kit (the embedded
# default) and runs a full interleaved GILL turn on it (text + image in, text + images out).
# Outputs go to ./gill-demo/. The tiny weights are random: the text is noise. That is expected.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GILL_BUILD_DIR:-$ROOT/build}"
OUT="${GILL_DEMO_DIR:-$PWD/gill-demo}"
# Only what the demo runs: the gill binary (and the SentencePiece shim it loads); test.sh builds the tests.
GILL_BUILD_TARGETS="gill_cli" "$ROOT/tools/scripts/setup.sh" "$BUILD" >&2
GILL="$BUILD/gill"
mkdir -p "$OUT"
[ -f "$OUT/tiny/checkpoints/gill_opt/model_args.json" ] || "$GILL" make-tiny "$OUT/tiny" --seed 0 >&2
IMG="$ROOT/tests/data/clip/rgb_45x37.png"
echo "== gill run -m (tiny GILL): text + image + text, one [IMG] block generated ==" >&2
# The tiny weights are random, so the text is noise; --ret-scale-factor (the reference's knob that scales the
# [IMG0] logit) makes the model emit an [IMG] block after 3 words, and --always-generate runs Stable Diffusion for
# it whatever the decision head says, so the demo always shows both retrieval and generation.
"$GILL" run -m "$OUT/tiny" -p "A picture of" --image "$IMG" -p "Show me a picture of a dog." \
  -n 8 --min-word-tokens 3 --ret-scale-factor 1000 --always-generate --steps 10 \
  -o "$OUT/run" --json "$OUT/run/transcript.json" --dump-tensors "$OUT/run/tensors.safetensors"
echo >&2
echo "text: above (stdout); images: $OUT/run/ (gen_0.png generated, ret_0_0.png retrieved);" \
  "transcript: $OUT/run/transcript.json; stage tensors: $OUT/run/tensors.safetensors; model kit: $OUT/tiny" >&2
