#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, writes the tiny random GILL (embedded default),
# and runs a full interleaved GILL prompt (text + an image) on it. Outputs go to ./gill-demo/.
# The tiny model's weights are random: its text and images are noise. That is expected.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GILL_BUILD_DIR:-$ROOT/build}"
OUT="${GILL_DEMO_DIR:-$PWD/gill-demo}"
"$ROOT/tools/scripts/setup.sh" "$BUILD" >&2
GILL="$BUILD/gill"
[ -f "$OUT/tiny/checkpoints/gill_opt/model_args.json" ] || "$GILL" make-tiny "$OUT/tiny" --seed 0 >&2
IMG="$(ls "$OUT"/tiny/retrieval_images/*.png | head -1)"
echo "== gill run: [\"$IMG\", \"A picture of\"] then a request for an image ==" >&2
"$GILL" run -m "$OUT/tiny" --image "$IMG" -p "A picture of" -n 12 --ret-scale-factor 100 \
  -o "$OUT/out" --json "$OUT/out/transcript.json"
echo >&2
echo "text: above (stdout); images: $OUT/out/; transcript: $OUT/out/transcript.json" >&2
