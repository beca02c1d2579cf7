#!/usr/bin/env bash
# Downloads the real GILL weights into a weights root (default: this folder), in the layout gill reads
# (folders named by Hugging Face ids). For a machine with internet access and `huggingface-cli`
# (pip install huggingface_hub) or plain curl. About 20 GB for the model files (+3 GB for the optional
# CC3M retrieval embeddings). Nothing is converted: gill reads these files as published.
set -euo pipefail
ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
mkdir -p "$ROOT"

hf() {  # hf REPO_ID [FILES...]
  local repo="$1"; shift
  if command -v huggingface-cli >/dev/null; then
    huggingface-cli download "$repo" "$@" --local-dir "$ROOT/$repo"
  else
    for f in "$@"; do
      mkdir -p "$(dirname "$ROOT/$repo/$f")"
      curl -fL --retry 3 -o "$ROOT/$repo/$f" "https://huggingface.co/$repo/resolve/main/$f"
    done
  fi
}

# OPT-6.7B (fp16, 2 shards of pytorch_model.bin, ~13.3 GB) and its tokenizer.
hf facebook/opt-6.7b config.json generation_config.json merges.txt vocab.json special_tokens_map.json \
  tokenizer_config.json pytorch_model.bin.index.json pytorch_model-00001-of-00002.bin pytorch_model-00002-of-00002.bin
# CLIP ViT-L/14 (fp32, ~1.7 GB; gill uses the vision tower only).
hf openai/clip-vit-large-patch14 config.json preprocessor_config.json pytorch_model.bin
# Stable Diffusion v1.5 (diffusers layout). runwayml/ was withdrawn; the community mirror has the same files.
SD=stable-diffusion-v1-5/stable-diffusion-v1-5
hf "$SD" model_index.json scheduler/scheduler_config.json text_encoder/config.json text_encoder/model.safetensors \
  tokenizer/merges.txt tokenizer/special_tokens_map.json tokenizer/tokenizer_config.json tokenizer/vocab.json \
  unet/config.json unet/diffusion_pytorch_model.safetensors vae/config.json vae/diffusion_pytorch_model.safetensors
# GILL's own files (GitHub kohjingyu/gill, checkpoints/gill_opt; also on the hub as jykoh/gill).
mkdir -p "$ROOT/checkpoints/gill_opt"
for f in model_args.json pretrained_ckpt.pth.tar decision_model.pth.tar; do
  curl -fL --retry 3 -o "$ROOT/checkpoints/gill_opt/$f" \
    "https://raw.githubusercontent.com/kohjingyu/gill/main/checkpoints/gill_opt/$f"
done
echo "Optional: the CC3M retrieval embeddings (cc3m_embeddings_urls.npy, ~3 GB) are linked from the GILL"
echo "README (Google Drive); put the file in $ROOT/checkpoints/gill_opt/ or build your own index with 'gill index'."
