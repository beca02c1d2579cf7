// gill tokenize --tokenizer DIR — JSON lines {"text": ...} on stdin -> {"ids": [...]} on stdout (or the reverse
// with --decode).
#include <gill/tokenizer.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"

namespace gill::cli {

namespace {

struct TokenizeOptions {
  std::string dir;
  TokenizerOptions load;
  bool no_special = false, pad77 = false, decode = false, keep_special = false;
};

int run_tokenize(const TokenizeOptions& o) {
  const Tokenizer tok(o.dir, o.load);
  std::string line;
  for (size_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    if (line.empty()) continue;
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kFormat, cat("stdin line ", line_no, ": invalid JSON: ", e.what()));
    }
    nlohmann::json out;
    if (o.decode) {
      require(in.is_object() && in.contains("ids") && in["ids"].is_array(), ErrorCode::kFormat,
              cat("stdin line ", line_no, ": expected {\"ids\": [...]}"));
      std::vector<int64_t> ids;
      for (const auto& v : in["ids"]) {
        require(v.is_number_integer(), ErrorCode::kFormat, cat("stdin line ", line_no, ": ids must be integers"));
        ids.push_back(v.get<int64_t>());
      }
      try {
        out["text"] = tok.decode(ids, !o.keep_special);
      } catch (const Error& e) {
        throw e.with_context(cat("stdin line ", line_no));
      }
    } else {
      require(in.is_object() && in.contains("text") && in["text"].is_string(), ErrorCode::kFormat,
              cat("stdin line ", line_no, ": expected {\"text\": \"...\"}"));
      const std::string text = in["text"].get<std::string>();
      out["ids"] = o.pad77 ? tok.encode_sd77(text) : tok.encode(text, !o.no_special);
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
  sub->add_option("--kind", o->load.kind, "auto | opt | gpt2 | clip | sp")
      ->check(CLI::IsMember({"auto", "opt", "gpt2", "clip", "sp"}));
  sub->add_option("--clip-mode", o->load.clip_mode,
                  "CLIP normalisation: fast (CLIPTokenizerFast), noftfy-pre431 (GILL's transformers 4.30.2 without "
                  "ftfy), noftfy-431")
      ->check(CLI::IsMember({"fast", "noftfy-pre431", "noftfy-431"}));
  sub->add_flag("--gill-tokens", o->load.gill_tokens, "Add GILL's <|image|> and [IMG0]..[IMG7] as load_gill does");
  sub->add_flag("--no-special", o->no_special, "add_special_tokens=False: no BOS/EOS");
  sub->add_flag("--pad-77", o->pad77, "SD form: truncate to 75 content tokens, BOS/EOS, pad to 77");
  sub->add_flag("--decode", o->decode, "Read {\"ids\": [...]} and write {\"text\": ...}");
  sub->add_flag("--keep-special", o->keep_special, "With --decode: skip_special_tokens=False");
  sub->add_flag("--modern-added-tokens", o->load.modern_added_tokens,
                "Keep whitespace around added tokens (transformers >= 4.34) instead of 4.30.2's stripping");
  sub->callback([&ctx, o] { ctx.action = [o] { return run_tokenize(*o); }; });
}

}  // namespace gill::cli
