// gill::Engine and gill::Chat over the GILL pipeline (src/pipeline/gill_model.h, gill_generate.h).
// Every entry point goes through detail::api_boundary, so callers see gill::Error only.
#include <gill/gill.h>
#include <gill/result_json.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "api/boundary.h"
#include "api/runtime.h"
#include "api/turn_result.h"
#include "io/image.h"
#include "io/tensor_dump.h"
#include "io/tensor_source.h"
#include "pipeline/gill_model.h"
#include "pipeline/gill_score.h"
#include "pipeline/sampling.h"
#include "pipeline/text_streamer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace gill {

namespace fs = std::filesystem;
using detail::str_cat;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void check_folder(const char* field, const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  if (!fs::exists(path, ec))
    detail::fail(ErrorCode::kNotFound, str_cat("EngineOptions.", field, ": ", path, ": no such file or folder"));
}

// "auto": pipeline::resolve_storage_dtype (from the LLM folder's tensor bytes, whatever the decoder).
torch::Dtype pick_dtype(const std::string& dtype, const fs::path& lm_dir) {
  return io::parse_torch_dtype(pipeline::resolve_storage_dtype(dtype, lm_dir));
}

LogLevel to_level(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return LogLevel::kTrace;
    case spdlog::level::debug: return LogLevel::kDebug;
    case spdlog::level::info: return LogLevel::kInfo;
    case spdlog::level::warn: return LogLevel::kWarn;
    case spdlog::level::err:
    case spdlog::level::critical: return LogLevel::kError;
    default: return LogLevel::kOff;
  }
}

}  // namespace

// EngineOptions::log: spdlog messages go to the caller's function while the Engine lives. spdlog's default
// logger is process-wide, so the sink is added to it and removed by the Engine's destructor.
class CallbackSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CallbackSink(std::function<void(LogLevel, const std::string&)> fn) : fn_(std::move(fn)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& m) override {
    fn_(to_level(m.level), std::string(m.payload.data(), m.payload.size()));
  }
  void flush_() override {}

 private:
  std::function<void(LogLevel, const std::string&)> fn_;
};

struct Engine::Impl {
  EngineOptions options;
  std::shared_ptr<CallbackSink> log_sink;
  ~Impl() {
    if (!log_sink) return;
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), log_sink), sinks.end());
  }
  std::unique_ptr<pipeline::GILLModel> model;
  torch::Dtype dtype = torch::kFloat32;
  ComputeInfo compute;  // recorded in every Result

  void check_cancel(const GenerateOptions& o) const {
    const auto& cancel = o.is_cancelled ? o.is_cancelled : options.is_cancelled;
    if (cancel && cancel()) detail::fail(ErrorCode::kCancelled, "cancelled");
  }
  void progress(const GenerateOptions& o, const std::string& stage, int64_t done, int64_t total) const {
    const auto& cb = o.on_progress ? o.on_progress : options.on_progress;
    if (cb) cb(stage, done, total);
  }

  std::vector<pipeline::PromptItem> prompt_items(const Prompt& prompt) const {
    std::vector<pipeline::PromptItem> items;
    for (size_t k = 0; k < prompt.size(); ++k) {
      const Segment& s = prompt[k];
      pipeline::PromptItem it;
      switch (s.kind) {
        case Segment::Kind::kText:
          detail::require_utf8(s.text, str_cat("prompt segment ", k, " (text)"));
          it.text = s.text;
          break;
        case Segment::Kind::kImageFile:
          it.is_image = true;
          it.image = io::load_image(s.image_path);
          it.image_path = s.image_path;
          break;
        case Segment::Kind::kImage:
          GILL_CHECK(!s.image.empty() && s.image.pixels.size() == static_cast<size_t>(s.image.width) * s.image.height * 3,
                     ErrorCode::kInvalidArgument, "prompt segment ", k, ": image of ", s.image.width, "x",
                     s.image.height, " with ", s.image.pixels.size(), " bytes is not a valid RGB8 image");
          it.is_image = true;
          it.image = s.image;
          break;
      }
      items.push_back(std::move(it));
    }
    bool any_text = false;
    for (const auto& it : items) any_text |= !it.is_image && !it.text.empty();
    bool any_image = false;
    for (const auto& it : items) any_image |= it.is_image;
    GILL_CHECK(any_text || any_image, ErrorCode::kInvalidArgument, "empty prompt: give at least one text or image");
    return items;
  }

  pipeline::SDParams sd_params(const GenerateOptions& o) const {
    pipeline::SDParams p;
    p.n_steps = o.steps;
    p.guidance_scale = o.guidance_scale;
    p.scheduler = o.scheduler;
    return p;
  }

  // One turn on `lm` (a fresh adaptor for Engine::generate, the chat's own for Chat::send).
  Result turn(pipeline::CachedLM& lm, const Prompt& prompt, const GenerateOptions& o, bool first_turn,
              bool keep_cache) {
    torch::NoGradGuard no_grad;
    const auto t0 = std::chrono::steady_clock::now();
    check_cancel(o);
    auto items = prompt_items(prompt);
    io::TensorDump dump;
    io::TensorDump* dump_ptr = o.dump_tensors.empty() ? nullptr : &dump;
    const auto sdp = sd_params(o);
    auto sd_progress = [&](int64_t done, int64_t total) {
      progress(o, "denoise", done, total);
      check_cancel(o);
    };
    auto b = model->backbones(lm, dump_ptr, &sdp, sd_progress);

    pipeline::TurnOptions t;
    t.decode.n_words = o.num_words;
    t.decode.min_word_tokens = o.min_word_tokens;
    t.decode.ret_scale_factor = o.ret_scale_factor;
    t.decode.gen_scale_factor = o.gen_scale_factor;
    t.decode.feed_final_tokens = keep_cache;
    t.max_num_rets = o.max_num_rets;
    t.always_generate = o.always_generate;
    t.seed = o.seed;
    t.bos_on_first_text = first_turn;
    pipeline::SamplingOptions so;
    so.temperature = o.temperature;
    so.top_p = o.top_p;
    so.top_k = o.top_k;
    so.seed = o.seed;
    if (so.temperature > 0) {
      auto gen = std::make_shared<torch::Generator>(pipeline::make_generator(so));
      t.sampler = [so, gen](const torch::Tensor& logits) { return pipeline::sample_next(logits, so, *gen); };
    }
    // Streaming (pipeline/text_streamer.h): the pieces together are the turn's text, which ends before the
    // first "\n" after index 0 (split_output's newline cut), so nothing from there on is streamed.
    pipeline::TextStreamer streamer([this](const std::vector<int64_t>& ids) { return model->tok->decode(ids, true); },
                                    model->token_ids.img);
    int64_t steps_done = 0, n_generated = 0;
    bool cut = false;
    const auto& on_token = o.on_token;
    t.decode.on_step = [&](const std::vector<int64_t>& chosen) {
      progress(o, "tokens", ++steps_done, o.num_words);
      if (o.is_cancelled || options.is_cancelled) {
        const auto& cancel = o.is_cancelled ? o.is_cancelled : options.is_cancelled;
        if (cancel()) return false;
      }
      if (!on_token || cut) return true;
      std::vector<int64_t> kept;
      for (int64_t id : chosen) {
        if (id == model->token_ids.newline && n_generated > 0) {
          cut = true;
          break;
        }
        kept.push_back(id);
        ++n_generated;
      }
      const std::string piece = streamer.push(kept);
      return piece.empty() || on_token(piece);
    };
    if (o.on_image_block)
      t.on_block = [&](int64_t k, const pipeline::BlockResult& blk, bool done) {
        if (!o.on_image_block(k, detail::to_image_block(blk, model->weights.index.base_dir), done)) detail::fail(ErrorCode::kCancelled, "cancelled");
      };
    auto r = pipeline::run_turn(model->weights, b, items, t, dump_ptr);
    if (on_token) {
      const std::string rest = streamer.finish(r.text);
      if (!rest.empty()) on_token(rest);  // the turn is complete: a false here cancels nothing
    }
    if (dump_ptr) dump.write(o.dump_tensors);

    Result out = detail::to_result(r, model->weights.index.base_dir);
    out.timings.threads = at::get_num_threads();
    out.compute = compute;
    out.timings.total_s = seconds_since(t0);
    return out;
  }
};

struct Chat::State {
  Engine::Impl* engine = nullptr;
  std::unique_ptr<pipeline::CachedLM> lm;
  int64_t turns = 0;    // since the last reset
  int64_t n_sent = 0;   // every turn sent (names the files)
  std::string out_dir;  // set_output_dir
  nlohmann::json transcript = nlohmann::json::array();
};

namespace {

Engine::Impl& live(const std::unique_ptr<Engine::Impl>& impl, const char* entry) {
  GILL_CHECK(impl, ErrorCode::kInvalidArgument, entry, ": this Engine was moved from");
  return *impl;
}

}  // namespace

Engine::Engine(const EngineOptions& options) {
  detail::api_boundary("gill::Engine", [&] {
    options.validate();
    check_folder("weights_root", options.weights_root);
    check_folder("lm_dir", options.lm_dir);
    check_folder("clip_dir", options.clip_dir);
    check_folder("sd_dir", options.sd_dir);
    check_folder("gill_dir", options.gill_dir);
    check_folder("index_path", options.index_path);
    detail::begin_call(options.device, "EngineOptions.device", options.threads);
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    if (options.log) {
      impl->log_sink = std::make_shared<CallbackSink>(options.log);
      spdlog::default_logger()->sinks().push_back(impl->log_sink);
    }
    pipeline::GILLModelOptions mo;
    mo.paths.root = options.weights_root;
    mo.paths.lm = options.lm_dir;
    mo.paths.clip = options.clip_dir;
    mo.paths.sd = options.sd_dir;
    mo.paths.gill = options.gill_dir;
    mo.paths.index = options.index_path;
    mo.load_sd = options.load_sd;
    // The LLM folder decides "auto"; resolve it first (errors name the missing component).
    mo.resolved = pipeline::resolve_weight_paths(mo.paths, options.load_sd);
    mo.dtype = pick_dtype(options.dtype, mo.resolved->lm);
    mo.compute = detail::decide_compute(options.compute, "EngineOptions.compute");
    mo.residency = options.mmap ? io::Residency::kMap : io::Residency::kMemory;
    impl->dtype = mo.dtype;
    impl->compute = detail::compute_info(options.device, io::torch_dtype_name(mo.dtype), options.compute, mo.compute,
                                          options.mmap);
    if (options.on_progress) options.on_progress("load", 0, 1);
    impl->model = pipeline::GILLModel::load(mo);
    if (options.on_progress) options.on_progress("load", 1, 1);
    spdlog::info("loaded GILL in {:.2f} s ({}, {})", impl->model->load_s, impl->compute.dtype,
                 impl->model->sd ? "with Stable Diffusion" : "no Stable Diffusion");
    impl_ = std::move(impl);
  });
}

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

Result Engine::generate(const Prompt& prompt, const GenerateOptions& options) {
  return detail::api_boundary("gill::Engine::generate", [&]() -> Result {
    auto& impl = live(impl_, "gill::Engine::generate");
    options.validate();
    pipeline::CachedLM lm(*impl.model->lm);
    return impl.turn(lm, prompt, options, /*first_turn=*/true, /*keep_cache=*/false);
  });
}

std::vector<CandidateScore> Engine::score(const Prompt& prompt, const std::vector<std::string>& candidates) {
  return detail::api_boundary("gill::Engine::score", [&]() -> std::vector<CandidateScore> {
    auto& impl = live(impl_, "gill::Engine::score");
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < candidates.size(); ++k) detail::require_utf8(candidates[k], str_cat("candidate ", k));
    const GenerateOptions none;  // the engine's callbacks
    impl.check_cancel(none);
    const auto items = prompt.empty() ? std::vector<pipeline::PromptItem>{} : impl.prompt_items(prompt);
    pipeline::CachedLM lm(*impl.model->lm);
    auto b = impl.model->backbones(lm, nullptr);
    auto full_logits = [&](const torch::Tensor& embeds) {
      return impl.model->lm->forward(embeds, nullptr, models::CausalLMForwardOptions()).logits[0];
    };
    const auto n = static_cast<int64_t>(candidates.size());
    auto scores = pipeline::score_candidates(impl.model->weights, b, items, candidates, full_logits, [&](size_t k) {
      impl.progress(none, "score", static_cast<int64_t>(k), n);
      impl.check_cancel(none);
    });
    impl.progress(none, "score", n, n);
    std::vector<CandidateScore> out;
    for (size_t k = 0; k < scores.size(); ++k)
      out.push_back({candidates[k], scores[k].log_likelihood, scores[k].n_scored, scores[k].n_positions});
    return out;
  });
}

Image Engine::generate_image_from_embeddings(const std::vector<float>& embeddings, int64_t n_tokens, int64_t width,
                                             const GenerateOptions& options) {
  return detail::api_boundary("gill::Engine::generate_image_from_embeddings", [&]() -> Image {
    auto& impl = live(impl_, "gill::Engine::generate_image_from_embeddings");
    options.validate();
    GILL_CHECK(n_tokens > 0 && width > 0 && static_cast<int64_t>(embeddings.size()) == n_tokens * width,
               ErrorCode::kInvalidArgument, "generate_image_from_embeddings: ", embeddings.size(),
               " floats for n_tokens = ", n_tokens, " x width = ", width);
    GILL_CHECK(impl.model->sd, ErrorCode::kInvalidArgument,
               "generate_image_from_embeddings: Stable Diffusion is not loaded (EngineOptions.load_sd = false)");
    torch::NoGradGuard no_grad;
    auto p = impl.sd_params(options);
    p.prompt_embeds = torch::from_blob(const_cast<float*>(embeddings.data()), {1, n_tokens, width}, torch::kFloat32).clone();
    p.seed = options.seed;
    return impl.model->sd->generate(p, [&](int64_t d, int64_t t) {
      impl.progress(options, "denoise", d, t);
      impl.check_cancel(options);
    });
  });
}

Image Engine::generate_image_from_text(const std::string& prompt, const GenerateOptions& options) {
  return detail::api_boundary("gill::Engine::generate_image_from_text", [&]() -> Image {
    auto& impl = live(impl_, "gill::Engine::generate_image_from_text");
    options.validate();
    GILL_CHECK(impl.model->sd, ErrorCode::kInvalidArgument,
               "generate_image_from_text: Stable Diffusion is not loaded (EngineOptions.load_sd = false)");
    torch::NoGradGuard no_grad;
    auto p = impl.sd_params(options);
    p.prompt = prompt;
    p.seed = options.seed;
    return impl.model->sd->generate(p, [&](int64_t d, int64_t t) {
      impl.progress(options, "denoise", d, t);
      impl.check_cancel(options);
    });
  });
}

Chat Engine::chat() {
  return detail::api_boundary("gill::Engine::chat", [&] { return Chat(&live(impl_, "gill::Engine::chat")); });
}

Chat::Chat(Engine::Impl* engine) : state_(std::make_unique<State>()) {
  state_->engine = engine;
  state_->lm = std::make_unique<pipeline::CachedLM>(*engine->model->lm);
}
Chat::~Chat() = default;
Chat::Chat(Chat&&) noexcept = default;
Chat& Chat::operator=(Chat&&) noexcept = default;

Result Chat::send(const Prompt& turn, const GenerateOptions& options) {
  return detail::api_boundary("gill::Chat::send", [&]() -> Result {
    GILL_CHECK(state_, ErrorCode::kInvalidArgument, "gill::Chat::send: this Chat was moved from");
    options.validate();
    auto& s = *state_;
    // A failed turn leaves the cache at an unknown length: remember where it was and roll back on error.
    const int64_t before = s.lm->n_past();
    Result r;
    try {
      r = s.engine->turn(*s.lm, turn, options, s.turns == 0, /*keep_cache=*/true);
    } catch (...) {
      s.lm->truncate(before);
      throw;
    }
    ++s.turns;
    ++s.n_sent;
    // The turn is part of the conversation now; a failed image write is reported after it is recorded.
    try {
      if (!s.out_dir.empty())
        write_turn_files(r, {s.out_dir, str_cat("turn", s.n_sent, "_"), true, "gill chat"}, options);
    } catch (...) {
      s.transcript.push_back(result_json(r, {&turn, &options, s.turns}));
      throw;
    }
    s.transcript.push_back(result_json(r, {&turn, &options, s.turns}));
    return r;
  });
}

void Chat::reset() {
  if (!state_) return;
  state_->lm->reset();
  state_->turns = 0;
  state_->transcript = nlohmann::json::array();
}

void Chat::set_output_dir(const std::string& dir) {
  if (state_) state_->out_dir = dir;
}

std::string Chat::transcript_json() const {
  return state_ ? dump_json(state_->transcript) : "[]";
}

ImageBlock detail::to_image_block(const pipeline::BlockResult& blk, const fs::path& index_dir) {
  ImageBlock ib;
  ib.caption = blk.caption;
  ib.decision = blk.decision;
  ib.p_gen = static_cast<float>(blk.p_gen);
  ib.p_ret = static_cast<float>(blk.p_ret);
  for (const auto& h : blk.retrieved) {
    RetrievedImage ri;
    ri.index = h.index;
    ri.score = static_cast<float>(h.score);
    ri.path =
        is_url(h.path) || fs::path(h.path).is_absolute() ? h.path : (index_dir / h.path).lexically_normal().string();
    ib.retrieved.push_back(ri);
  }
  ib.generated = blk.generated;
  ib.gen_rank_score = static_cast<float>(blk.gen_rank_score);
  ib.seed = blk.seed;
  return ib;
}

Result detail::to_result(const pipeline::TurnResult& r, const fs::path& index_dir) {
  Result out;
  out.text = r.text;
  out.trailing_text = r.trailing_text;
  out.token_ids = r.ids;
  out.timings.prompt_s = r.prompt_s;
  out.timings.decode_s = r.decode_s;
  out.timings.prompt_tokens = r.prompt_tokens;
  out.timings.new_tokens = static_cast<int64_t>(r.ids.size());
  for (const auto& blk : r.blocks) {
    out.timings.retrieval_s += blk.retrieval_s;
    out.timings.generation_s += blk.generation_s;
    out.images.push_back(to_image_block(blk, index_dir));
  }
  return out;
}

int64_t Chat::turns() const {
  return state_ ? state_->turns : 0;
}

int64_t Chat::n_positions() const {
  return state_ ? state_->lm->n_past() : 0;
}

int64_t Chat::cache_bytes() const {
  if (!state_) return 0;
  int64_t bytes = 0;
  const auto& c = state_->lm->cache();
  for (const auto* side : {&c.k, &c.v})
    for (const auto& t : *side)
      if (t.defined()) bytes += static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
  return bytes;
}

}  // namespace gill
