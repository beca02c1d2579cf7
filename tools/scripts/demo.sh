#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, writes the tiny random model kit (the embedded
# default) and runs what is wired today: OPT generation from a prompt and the CLIP vision stage on an image.
# Outputs go to ./gill-demo/. The tiny weights are random: the text is noise. That is expected.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GILL_BUILD_DIR:-$ROOT/build}"
OUT="${GILL_DEMO_DIR:-$PWD/gill-demo}"
"$ROOT/tools/scripts/setup.sh" "$BUILD" >&2
GILL="$BUILD/gill"
mkdir -p "$OUT"
[ -f "$OUT/tiny/checkpoints/gill_opt/model_args.json" ] || "$GILL" make-tiny "$OUT/tiny" --seed 0 >&2
echo "== gill run --lm (tiny OPT): 'A picture of' ==" >&2
"$GILL" run --lm "$OUT/tiny/facebook/opt-tiny" -p "A picture of" -n 16 --dump-tensors "$OUT/lm.safetensors"
echo >&2
echo "== gill embed-image (tiny CLIP) ==" >&2
"$GILL" embed-image --clip "$OUT/tiny/openai/clip-vit-large-patch14" "$ROOT/tests/data/clip/rgb_45x37.png" \
  --dump-tensors "$OUT/clip.safetensors"
echo "tensors: $OUT/lm.safetensors, $OUT/clip.safetensors; model kit: $OUT/tiny (gill inspect it)" >&2
