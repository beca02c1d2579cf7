#include "turn_shapes.h"

#include "util/error.h"

namespace gill::cli::bench {

Shapes make_shapes(const std::string& shape) {
  Shapes s;
  s.opt.vocab_size = 50274;  // OPT's 50272 rows resized to len(tokenizer) = 50265 + <|image|> + [IMG0..7]
  s.opt.max_position_embeddings = 2048;
  if (shape == "real") {  // facebook/opt-6.7b, openai/clip-vit-large-patch14, GILL model_args, SD v1.5
    s.opt.hidden_size = s.opt.word_embed_proj_dim = 4096;
    s.opt.ffn_dim = 16384;
    s.opt.num_attention_heads = 32;
    s.opt.num_hidden_layers = 32;
    s.clip.hidden_size = 1024;
    s.clip.intermediate_size = 4096;
    s.clip.num_attention_heads = 16;
    s.clip.num_hidden_layers = 24;
    s.clip.patch_size = 14;
    return s;  // GILLDims, UNet, VAE and text-encoder defaults are the real ones
  }
  if (shape != "tiny") detail::fail(ErrorCode::kInvalidArgument, "--shape: expected real or tiny, got '" + shape + "'");
  s.opt.hidden_size = s.opt.word_embed_proj_dim = 64;
  s.opt.ffn_dim = 128;
  s.opt.num_attention_heads = 4;
  s.opt.num_hidden_layers = 2;
  s.clip.hidden_size = 48;
  s.clip.intermediate_size = 96;
  s.clip.num_attention_heads = 4;
  s.clip.num_hidden_layers = 2;
  s.clip.patch_size = 14;
  s.dims.lm_hidden = 64;
  s.dims.clip_hidden = 48;
  s.dims.ret_emb_dim = 24;
  s.dims.mapper_dim = 40;
  s.dims.mapper_ffn = 80;
  s.dims.gen_emb_dim = 32;
  s.unet.block_out_channels = {16, 32};
  s.unet.down_block_types = {"CrossAttnDownBlock2D", "DownBlock2D"};
  s.unet.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D"};
  s.unet.attention_head_dim = {2, 2};
  s.unet.cross_attention_dim = 32;
  s.unet.norm_num_groups = 8;
  s.unet.sample_size = 8;
  s.vae.block_out_channels = {8, 16, 16, 16};
  s.vae.norm_num_groups = 4;
  s.text.hidden_size = 32;
  s.text.intermediate_size = 64;
  s.text.num_attention_heads = 4;
  s.text.num_hidden_layers = 2;
  return s;
}

schedulers::SchedulerConfig sd15_scheduler() {
  schedulers::SchedulerConfig c;
  c._class_name = "PNDMScheduler";
  c.beta_start = 0.00085;
  c.beta_end = 0.012;
  c.beta_schedule = "scaled_linear";
  c.skip_prk_steps = true;
  c.steps_offset = 1;
  c.set_alpha_to_one = false;
  return c;
}

}  // namespace gill::cli::bench
