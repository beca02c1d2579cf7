// gill — single-stage entry points (no torch here): the LLM alone, Stable Diffusion alone, the CLIP tower alone,
// retrieval-index building, weight inspection and the tiny model kit. The `gill` CLI's tool commands are thin
// wrappers over these (gill run --lm, gill sd, gill embed-image, gill index, gill inspect, gill make-tiny).
//
// Like gill::Engine, each call sets libtorch's intra-op thread count from its `threads` field (0 = physical
// cores), refuses a device this build cannot run (check_device), opens its own inference guard and reports every
// failure as a gill::Error naming the file, key or value.
#pragma once
#include <gill/gill.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace gill {

// ---- The LLM alone (`gill run --lm DIR`): OPT text generation with a KV cache.
struct LmOptions {
  std::string lm_dir;             // config.json, weights, and (for a text prompt) vocab.json + merges.txt
  std::string device = "cpu";
  std::string dtype = "auto";     // auto (= fp32) | fp32 | bf16: weight storage
  std::string compute = "auto";   // auto | fp32 | bf16: arithmetic for bf16-stored weights (auto: bf16 where the CPU has native bf16)
  bool mmap = true;               // false: weights read into anonymous (huge-page) memory (EngineOptions::mmap)
  int threads = 0;
  std::string prompt;             // encoded with lm_dir's tokenizer (BOS added, as OPT's tokenizer does)
  std::vector<int64_t> prompt_ids;  // used instead of `prompt` when non-empty
  int max_new_tokens = 32;
  float temperature = 0.0f;       // 0 = greedy
  float top_p = 1.0f;
  int top_k = 0;                  // 0 = off
  uint64_t seed = 1337;
  bool stop_on_eos = true;
  bool stop_on_newline = false;
  std::vector<std::string> stop_strings;
  bool use_cache = true;          // false: recompute the whole sequence every step
  std::string dump_tensors;       // lm.input_ids, lm.output_ids, lm.logits (docs/tensor-dumps.md); "" = none
  bool dump_hidden = false;       // with dump_tensors: also lm.hidden_states
  // Each printable piece of the continuation as it is generated ("ID " pieces when lm_dir has no tokenizer);
  // return false to stop (stop_reason "callback").
  TokenCallback on_token;
};

struct LmResult {
  std::vector<int64_t> prompt_ids, new_ids;
  std::string text;         // the continuation (ids joined by spaces when lm_dir has no tokenizer)
  std::string stop_reason;  // max_new_tokens | eos | newline | stop_string | callback | max_positions
  double load_s = 0, prefill_s = 0, decode_s = 0;
  int threads = 0;          // libtorch intra-op threads the call ran with
  ComputeInfo compute;      // device, storage dtype, compute policy
};

LmResult generate_text(const LmOptions& options);

// ---- Stable Diffusion alone (`gill sd`): text-to-image from a diffusers SD v1.x folder, with diffusers
// 0.17.1's numerics (no safety checker).
struct SdOptions {
  std::string sd_dir;              // model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/
  std::string device = "cpu";
  std::string dtype = "fp32";      // fp32 | bf16 | fp16: weight storage
  std::string compute = "auto";    // auto | fp32 | bf16: arithmetic for bf16-stored weights (auto: bf16 where the CPU has native bf16)
  bool mmap = true;                // false: weights read into anonymous (huge-page) memory (EngineOptions::mmap)
  int threads = 0;
  std::string prompt;
  std::string negative_prompt;     // "" = diffusers' negative_prompt=None
  int steps = 50;                  // PNDM makes steps + 1 UNet calls
  float guidance_scale = 7.5f;     // classifier-free guidance when > 1
  uint64_t seed = 0;               // CPU generator the initial latents are drawn from
  std::string scheduler = "pndm";  // one of scheduler_names()
  int width = 0, height = 0;       // multiples of 8; 0 = from the UNet config
  std::string init_latents;        // a safetensors file whose 'sd.latents.init' replaces the seeded noise
  std::string dump_tensors;        // the sd.* stage tensors; "" = none
  ProgressCallback on_progress;    // stage "denoise", UNet calls done / total
};

Image text_to_image(const SdOptions& options);

// ---- The CLIP vision tower alone (`gill embed-image`): preprocessing (Pillow-exact) + pooled output.
struct EmbedImageOptions {
  std::string clip_dir;        // config.json, weights, preprocessor_config.json
  std::string device = "cpu";
  std::string dtype = "bf16";  // fp32 | bf16 | fp16: weight storage
  std::string compute = "auto";  // auto | fp32 | bf16: arithmetic for bf16-stored weights (auto: bf16 where the CPU has native bf16)
  int threads = 0;
  std::string dump_tensors;    // clip.pixel_values and clip.pooled; "" = none
};

struct ImageEmbeddings {
  std::string dtype;                     // the storage dtype used ("fp32", "bf16", "fp16")
  int64_t hidden_size = 0;
  std::vector<std::vector<float>> pooled;  // one row of hidden_size floats per image
};

ImageEmbeddings embed_images(const std::vector<Image>& images, const EmbedImageOptions& options);

// ---- A retrieval index over local images (`gill index`), as the reference's extract_img_embs.py: CLIP pooled
// output -> GILL's retrieval map, written to OUT_DIR/index.safetensors for EngineOptions::index_path.
struct IndexOptions {
  std::string weights_root;    // a root in the layout of weights/README.md, or:
  std::string clip_dir, gill_dir;  // each component on its own (overrides the root)
  std::string device = "cpu";
  std::string dtype = "fp32";  // fp32 | bf16
  std::string compute = "auto";  // auto | fp32 | bf16: arithmetic for bf16-stored weights (auto: bf16 where the CPU has native bf16)
  int threads = 0;
  ProgressCallback on_progress;  // stage "embed", images done / total
};

struct IndexSummary {
  int64_t n_images = 0;
  std::string path;  // the index file written
};

// Decodes every image first (a bad file fails before any work). Paths are stored relative to out_dir.
IndexSummary build_index(const std::vector<std::string>& images, const std::string& out_dir,
                         const IndexOptions& options);

// ---- Weights inspection (`gill inspect`): one line per tensor ("name  dtype  shape  file"), or JSON lines, for a
// weights file (.safetensors, .bin, .pth.tar, .npy, shard index) or a model folder (walked recursively).
void inspect(const std::string& path, std::ostream& out, bool json);

// ---- The tiny model kit (`gill make-tiny`): a complete tiny GILL with random weights in the real layouts and
// formats under `dir` (created when missing). Same seed, same files. Outputs of the model are noise.
void make_tiny(const std::string& dir, uint64_t seed = 0, int threads = 0);

}  // namespace gill
