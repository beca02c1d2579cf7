// libFuzzer target: config.json handling. The input is parsed as JSON (nlohmann's errors are the caller's
// kFormat, not interesting here) and handed to every config reader: OPT, CLIP vision and text, UNet, VAE,
// scheduler (then every scheduler built from it and set to a few steps), CLIP preprocessor, GILL's
// model_args.json, and a tokenizer folder whose tokenizer_config.json and special_tokens_map.json are the input
// (then loaded and used). Seeds: every *config*.json, special_tokens_map.json and model_args.json in tests/data.
#include <gill/error.h>

#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "models/clip_image_processor.h"
#include "models/clip_text.h"
#include "models/clip_vision.h"
#include "models/gill_mapper.h"
#include "models/opt.h"
#include "models/unet_2d.h"
#include "models/vae.h"
#include "schedulers/scheduler.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

namespace {

template <typename Fn>
void each(Fn&& fn) {
  try {
    fn();
  } catch (const gill::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gill::tokenizer::write_tiny_opt_tokenizer(gill::fuzz::scratch_dir() / "tok", 420);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  namespace m = gill::models;
  each([&] { (void)m::OPTConfig::from_json(j); });
  each([&] { (void)m::CLIPVisionConfig::from_json(j); });
  each([&] { (void)m::CLIPTextConfig::from_json(j); });
  each([&] { (void)m::UNet2DConditionConfig::from_json(j); });
  each([&] { (void)m::AutoencoderKLConfig::from_json(j); });
  each([&] { (void)m::CLIPImageProcessorConfig::from_json(j); });
  each([&] { (void)m::GILLArgs::from_json(j, "model_args.json"); });
  each([&] {
    const auto cfg = gill::schedulers::SchedulerConfig::from_json(j);
    if (cfg.num_train_timesteps.value_or(1000) > 100000) return;  // a long (valid) table costs time, not coverage
    for (const auto& name : gill::schedulers::scheduler_names())
      each([&] {
        auto s = gill::schedulers::make_scheduler(name, cfg);
        for (int64_t n : {1, 7, 50}) s->set_timesteps(n);
      });
  });
  each([&] {
    for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"})
      gill::fuzz::write_input("tok/" + std::string(f), data, size);
    auto tok = gill::tokenizer::load_tokenizer(gill::fuzz::scratch_dir() / "tok");
    gill::tokenizer::add_gill_tokens(*tok);
    (void)tok->decode(tok->encode("a cat </s> [IMG0] <pad>", true), false);
  });
  return 0;
}
