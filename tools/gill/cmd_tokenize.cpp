// gill tokenize --tokenizer DIR — JSON lines {"text": ...} on stdin -> {"ids": [...]} on stdout (or the reverse
// with --decode).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace gill::cli {

namespace {

struct TokenizeOptions {
  std::string dir;
  std::string kind = "auto";
  std::string clip_mode = "fast";
  bool gill_tokens = false, no_special = false, pad77 = false, decode = false, keep_special = false, modern = false;
};

int run_tokenize(const TokenizeOptions& o) {
  tokenizer::LoadOptions lo;
  lo.kind = o.kind;
  lo.strip = o.modern ? tokenizer::AddedTokenStrip::kModern : tokenizer::AddedTokenStrip::kLegacy430;
  lo.clip_mode = o.clip_mode == "fast"          ? tokenizer::ClipMode::kFast
                 : o.clip_mode == "noftfy-pre431" ? tokenizer::ClipMode::kNoFtfyPre431
                                                  : tokenizer::ClipMode::kNoFtfy431;
  auto tok = tokenizer::load_tokenizer(o.dir, lo);
  if (o.gill_tokens) tokenizer::add_gill_tokens(*tok);
  std::string line;
  for (size_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    if (line.empty()) continue;
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      detail::fail(ErrorCode::kFormat, detail::str_cat("stdin line ", line_no, ": invalid JSON: ", e.what()));
    }
    nlohmann::json out;
    if (o.decode) {
      GILL_CHECK(in.is_object() && in.contains("ids") && in["ids"].is_array(), ErrorCode::kFormat, "stdin line ",
                 line_no, ": expected {\"ids\": [...]}");
      std::vector<int64_t> ids;
      for (const auto& v : in["ids"]) {
        GILL_CHECK(v.is_number_integer(), ErrorCode::kFormat, "stdin line ", line_no, ": ids must be integers");
        ids.push_back(v.get<int64_t>());
      }
      out["text"] = detail::with_context(detail::str_cat("stdin line ", line_no),
                                         [&] { return tok->decode(ids, !o.keep_special); });
    } else {
      GILL_CHECK(in.is_object() && in.contains("text") && in["text"].is_string(), ErrorCode::kFormat, "stdin line ",
                 line_no, ": expected {\"text\": \"...\"}");
      const std::string text = in["text"].get<std::string>();
      out["ids"] = o.pad77 ? tokenizer::encode_sd77(*tok, text) : tok->encode(text, !o.no_special);
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("tokenize", "Encode JSON lines {\"text\": ...} from stdin to {\"ids\": [...]} (or decode)");
  auto o = std::make_shared<TokenizeOptions>();
  sub->add_option("--tokenizer", o->dir, "Tokenizer folder (vocab.json + merges.txt, or tokenizer.model)")->required();
  sub->add_option("--kind", o->kind, "auto | opt | gpt2 | clip | sp")
      ->check(CLI::IsMember({"auto", "opt", "gpt2", "clip", "sp"}));
  sub->add_option("--clip-mode", o->clip_mode,
                  "CLIP normalisation: fast (CLIPTokenizerFast), noftfy-pre431 (GILL's transformers 4.30.2 without "
                  "ftfy), noftfy-431")
      ->check(CLI::IsMember({"fast", "noftfy-pre431", "noftfy-431"}));
  sub->add_flag("--gill-tokens", o->gill_tokens, "Add GILL's <|image|> and [IMG0]..[IMG7] as load_gill does");
  sub->add_flag("--no-special", o->no_special, "add_special_tokens=False: no BOS/EOS");
  sub->add_flag("--pad-77", o->pad77, "SD form: truncate to 75 content tokens, BOS/EOS, pad to 77");
  sub->add_flag("--decode", o->decode, "Read {\"ids\": [...]} and write {\"text\": ...}");
  sub->add_flag("--keep-special", o->keep_special, "With --decode: skip_special_tokens=False");
  sub->add_flag("--modern-added-tokens", o->modern,
                "Keep whitespace around added tokens (transformers >= 4.34) instead of 4.30.2's stripping");
  sub->callback([&ctx, o] { ctx.action = [o] { return run_tokenize(*o); }; });
}

}  // namespace gill::cli
