#include "serve_api.h"

#include <gill/result_json.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "cli_common.h"
#include "serve_conversations.h"

namespace gill::cli::serve {

using json = nlohmann::json;
namespace fs = std::filesystem;

nlohmann::json ApiError::body() const {
  return {{"error", {{"message", message}, {"type", type}, {"code", code}}}};
}

void bad_request(const std::string& code, const std::string& message) {
  throw ApiError{400, "invalid_request_error", code, message};
}

ApiError api_error_for(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
    case ErrorCode::kFormat:
    case ErrorCode::kShapeMismatch:
      return {400, "invalid_request_error", "invalid_value", e.what()};
    case ErrorCode::kUnsupported:
    case ErrorCode::kSecurity:
      return {400, "invalid_request_error", "unsupported", e.what()};
    case ErrorCode::kCancelled:
      return {503, "server_error", "cancelled", e.what()};
    default:
      return {500, "server_error", "internal_error", e.what()};
  }
}

namespace {

// The request fields that set GenerateOptions, with the option's name in GenerateOptions::validate()'s messages.
struct GenField {
  const char* json_name;
  const char* option_name;
};
constexpr GenField kServeGenFields[] = {
    {"max_tokens", "num_words"},
    {"temperature", "temperature"},
    {"top_p", "top_p"},
    {"top_k", "top_k"},
    {"seed", "seed"},
    {"steps", "steps"},
    {"guidance_scale", "guidance_scale"},
    {"scheduler", "scheduler"},
    {"ret_scale_factor", "ret_scale_factor"},
    {"gen_scale_factor", "gen_scale_factor"},
    {"min_word_tokens", "min_word_tokens"},
    {"max_num_rets", "max_num_rets"},
    {"always_generate", "always_generate"},
};
// The SD-only subset accepted by /v1/images/generations.
const std::vector<std::string> kServeImageGenFields = {"seed", "steps", "guidance_scale", "scheduler"};

const char* json_type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

[[noreturn]] void wrong_type(const std::string& what, const json& v, const char* expected) {
  bad_request("invalid_type", cat(what, ": expected ", expected, ", got ", json_type_name(v)));
}

std::string want_string(const json& v, const std::string& what) {
  if (!v.is_string()) wrong_type(what, v, "a string");
  return v.get<std::string>();
}

bool want_bool(const json& v, const std::string& what) {
  if (!v.is_boolean()) wrong_type(what, v, "a boolean");
  return v.get<bool>();
}

float want_float(const json& v, const std::string& what) {
  if (!v.is_number()) wrong_type(what, v, "a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    bad_request("invalid_value", cat(what, " = ", v.dump(), ": out of range"));
  return static_cast<float>(d);
}

// An integer in [lo, hi]: JSON integers, or floats with no fraction (1.0), as JSON clients write them.
int64_t want_int(const json& v, const std::string& what, int64_t lo, int64_t hi) {
  if (!v.is_number()) wrong_type(what, v, "an integer");
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) bad_request("invalid_value", cat(what, " = ", u, ": must be at most ", hi));
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < lo || i > hi) bad_request("invalid_value", cat(what, " = ", i, ": must be in [", lo, ", ", hi, "]"));
    return i;
  }
  const double d = v.get<double>();
  if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    bad_request("invalid_value", cat(what, " = ", v.dump(), ": must be an integer in [", lo, ", ", hi, "]"));
  return static_cast<int64_t>(d);
}

json parse_object(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    bad_request("invalid_json", cat("the request body is not valid JSON: ", e.what()));
  }
  if (!j.is_object())
    bad_request("invalid_json", cat("the request body must be a JSON object, got ", json_type_name(j)));
  return j;
}

// Sets the GenerateOptions field for `key`; false when `key` is not one of kServeGenFields.
bool set_gen_field(GenerateOptions& o, const std::string& key, const json& v) {
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (key == "max_tokens")
    o.num_words = static_cast<int>(want_int(v, key, 1, kIntMax));
  else if (key == "temperature")
    o.temperature = want_float(v, key);
  else if (key == "top_p")
    o.top_p = want_float(v, key);
  else if (key == "top_k")
    o.top_k = static_cast<int>(want_int(v, key, 0, kIntMax));
  else if (key == "seed")
    o.seed = static_cast<uint64_t>(want_int(v, key, 0, std::numeric_limits<int64_t>::max()));
  else if (key == "steps")
    o.steps = static_cast<int>(want_int(v, key, 1, kIntMax));
  else if (key == "guidance_scale")
    o.guidance_scale = want_float(v, key);
  else if (key == "scheduler")
    o.scheduler = want_string(v, key);
  else if (key == "ret_scale_factor")
    o.ret_scale_factor = want_float(v, key);
  else if (key == "gen_scale_factor")
    o.gen_scale_factor = want_float(v, key);
  else if (key == "min_word_tokens")
    o.min_word_tokens = static_cast<int>(want_int(v, key, 0, kIntMax));
  else if (key == "max_num_rets")
    o.max_num_rets = static_cast<int>(want_int(v, key, 1, kIntMax));
  else if (key == "always_generate")
    o.always_generate = want_bool(v, key);
  else
    return false;
  return true;
}

// GenerateOptions::validate(), its messages speaking of the request's field names ("top_p = 1.5: ...").
void validate_gen(const GenerateOptions& o) {
  try {
    o.validate();
  } catch (const Error& e) {
    std::string m = e.what();
    const std::string prefix = "GenerateOptions.";
    if (m.rfind(prefix, 0) == 0)
      for (const GenField& f : kServeGenFields) {
        const std::string opt = f.option_name;
        if (m.compare(prefix.size(), opt.size(), opt) == 0 &&
            (m.size() == prefix.size() + opt.size() || m[prefix.size() + opt.size()] == ' ')) {
          m = f.json_name + m.substr(prefix.size() + opt.size());
          break;
        }
      }
    bad_request("invalid_value", m);
  }
}

// The shared top-level fields: model (must be ours), n (must be 1), stream (false only).
bool common_field(const std::string& key, const json& v) {
  if (key == "model") {
    const std::string m = want_string(v, key);
    if (m != kModelId)
      throw ApiError{404, "invalid_request_error", "model_not_found",
                     cat("model = \"", m, "\": this server serves \"", kModelId, "\" only (GET /v1/models)")};
    return true;
  }
  if (key == "n") {
    if (want_int(v, key, 1, std::numeric_limits<int>::max()) != 1)
      bad_request("unsupported", cat("n = ", v.dump(), ": gill serve answers one choice per request (n = 1)"));
    return true;
  }
  return false;
}

[[noreturn]] void unknown_field(const std::string& what, const std::string& accepted) {
  bad_request("unknown_field", cat("unknown field '", what, "' (accepted: ", accepted, ")"));
}

std::string chat_fields_list() {
  std::string s = "model, messages, n, stream, conversation_id";
  for (const GenField& f : kServeGenFields) s += cat(", ", f.json_name);
  return s;
}

// The UTF-8 bytes of text in a prompt, against --max-prompt-bytes.
void check_prompt_size(int64_t bytes, const RequestLimits& limits, const char* what) {
  if (bytes > limits.max_prompt_bytes)
    bad_request("prompt_too_long", cat(what, ": ", bytes, " bytes of text, over this server's limit of ",
                                       limits.max_prompt_bytes, " (--max-prompt-bytes)"));
}

// max_tokens against --max-tokens (the server's -n counts too: it is the default).
void check_max_tokens(const GenerateOptions& o, const RequestLimits& limits) {
  if (o.num_words > limits.max_tokens)
    bad_request("invalid_value", cat("max_tokens = ", o.num_words, ": over this server's limit of ", limits.max_tokens,
                                     " (--max-tokens)"));
}

// A local image path under --image-root: the canonical form of root/path (links followed as far as it exists)
// must lie under the root.
std::string local_image_path(const std::string& url, const std::string& what, const RequestLimits& limits) {
  if (limits.image_root.empty())
    bad_request("unsupported", cat(what, ": only data: URLs are accepted (data:image/png;base64,...); local paths ",
                                   "need the server's --image-root, and http(s) URLs are never fetched"));
  std::string path = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
  if (path.empty()) bad_request("invalid_value", cat(what, ": empty path"));
  if (path.find('\0') != std::string::npos) bad_request("invalid_value", cat(what, ": the path contains a NUL byte"));
  const fs::path root(limits.image_root);
  std::error_code ec;
  const fs::path full = fs::weakly_canonical(fs::path(path).is_absolute() ? fs::path(path) : root / path, ec);
  auto outside = [&] {
    if (ec) return true;
    auto r = root.begin();
    auto f = full.begin();
    for (; r != root.end(); ++r, ++f)
      if (f == full.end() || *r != *f) return true;
    return false;
  };
  if (outside())
    throw ApiError{403, "invalid_request_error", "path_not_allowed",
                   cat(what, " = \"", url, "\": outside the server's --image-root (paths resolve under it)")};
  if (!fs::is_regular_file(full, ec))
    bad_request("invalid_value", cat(what, " = \"", url, "\": no such image file under --image-root"));
  return full.string();
}

}  // namespace

Image image_from_url(const std::string& url, const std::string& what, const RequestLimits& limits,
                     const ImageDecoder& decode) {
  Image im;
  if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) {
    bad_request("unsupported", cat(what, ": gill serve does not fetch http(s) URLs; send a data: URL",
                                   limits.image_root.empty() ? "" : " or a path under --image-root"));
  } else if (url.rfind("data:", 0) != 0) {
    im = decode(read_file(local_image_path(url, what, limits)), what);
  } else {
    const size_t comma = url.find(',');
    if (comma == std::string::npos)
      bad_request("invalid_value", cat(what, ": a data: URL needs a ',' before the data"));
    const std::string header = url.substr(5, comma - 5);  // "image/png;base64"
    const std::string suffix = ";base64";
    if (header.size() < suffix.size() || header.compare(header.size() - suffix.size(), suffix.size(), suffix) != 0)
      bad_request("invalid_value",
                  cat(what, ": the data: URL must be base64 (data:image/...;base64,...), got 'data:", header, "'"));
    if (header.rfind("image/", 0) != 0)
      bad_request("invalid_value", cat(what, ": the data: URL's media type must be image/..., got '",
                                       header.substr(0, header.size() - suffix.size()), "'"));
    im = decode(base64_decode(url.substr(comma + 1), what), what);
  }
  const int64_t pixels = static_cast<int64_t>(im.width) * im.height;
  if (pixels > limits.max_image_pixels)
    bad_request("image_too_large",
                cat(what, ": ", im.width, "x", im.height, " = ", pixels, " pixels, over this server's limit of ",
                    limits.max_image_pixels, " (--max-image-pixels)"));
  return im;
}

namespace {

void add_content_part(Prompt& prompt, const json& part, const std::string& what, bool images_allowed,
                      const RequestLimits& limits, const ImageDecoder& decode) {
  if (!part.is_object()) wrong_type(what, part, "an object ({\"type\": \"text\" | \"image_url\", ...})");
  if (!part.contains("type")) bad_request("missing_field", cat(what, ".type: missing (text | image_url)"));
  const std::string type = want_string(part["type"], what + ".type");
  if (type == "text") {
    for (const auto& [k, v] : part.items())
      if (k != "type" && k != "text") unknown_field(cat(what, ".", k), "type, text");
    if (!part.contains("text")) bad_request("missing_field", cat(what, ".text: missing"));
    prompt.push_back(Segment::Text(want_string(part["text"], what + ".text")));
    return;
  }
  if (type != "image_url")
    bad_request("invalid_value", cat(what, ".type = \"", type, "\": expected text or image_url"));
  if (!images_allowed)
    bad_request("unsupported", cat(what, ": image parts are accepted in user and system messages only"));
  for (const auto& [k, v] : part.items())
    if (k != "type" && k != "image_url") unknown_field(cat(what, ".", k), "type, image_url");
  if (!part.contains("image_url")) bad_request("missing_field", cat(what, ".image_url: missing"));
  const json& iu = part["image_url"];
  const std::string iw = what + ".image_url";
  if (!iu.is_object()) wrong_type(iw, iu, "an object ({\"url\": \"data:...\"})");
  for (const auto& [k, v] : iu.items()) {
    if (k == "url") continue;
    if (k != "detail") unknown_field(cat(iw, ".", k), "url, detail");
    const std::string d = want_string(v, iw + ".detail");
    if (d != "auto")
      bad_request("unsupported", cat(iw, ".detail = \"", d, "\": GILL's CLIP sees every image at its fixed size; ",
                                     "only \"auto\" is accepted"));
  }
  if (!iu.contains("url")) bad_request("missing_field", cat(iw, ".url: missing"));
  prompt.push_back(Segment::Pixels(image_from_url(want_string(iu["url"], iw + ".url"), iw + ".url", limits, decode)));
}

}  // namespace

ChatRequest parse_chat_request(const std::string& body, const GenerateOptions& defaults, const RequestLimits& limits,
                               const ImageDecoder& decode) {
  const json j = parse_object(body);
  ChatRequest r;
  r.options = defaults;
  r.options.on_progress = nullptr;
  r.options.on_token = nullptr;
  r.options.is_cancelled = nullptr;
  r.options.dump_tensors.clear();
  for (const auto& [k, v] : j.items()) {
    if (k == "stream") {
      r.stream = want_bool(v, k);
      continue;
    }
    if (k == "conversation_id") {
      r.conversation_id = want_string(v, k);
      if (!valid_conversation_id(r.conversation_id))
        bad_request("invalid_value", cat("conversation_id = ", v.dump(), ": 1 to 64 characters of A-Z a-z 0-9 . _ -"));
      continue;
    }
    if (k == "messages" || common_field(k, v) || set_gen_field(r.options, k, v)) continue;
    unknown_field(k, chat_fields_list());
  }
  if (!j.contains("messages")) bad_request("missing_field", "messages: missing (an array of {role, content})");
  const json& msgs = j["messages"];
  if (!msgs.is_array()) wrong_type("messages", msgs, "an array");
  if (msgs.empty()) bad_request("invalid_value", "messages: empty (send at least one message)");
  // GILL has no chat template: the messages' contents become one interleaved prompt, in order (docs/server.md).
  for (size_t i = 0; i < msgs.size(); ++i) {
    const std::string what = cat("messages[", i, "]");
    const json& m = msgs[i];
    if (!m.is_object()) wrong_type(what, m, "an object ({role, content})");
    for (const auto& [k, v] : m.items())
      if (k != "role" && k != "content") unknown_field(cat(what, ".", k), "role, content");
    if (!m.contains("role")) bad_request("missing_field", cat(what, ".role: missing (system | user | assistant)"));
    const std::string role = want_string(m["role"], what + ".role");
    if (role != "system" && role != "user" && role != "assistant")
      bad_request("invalid_value", cat(what, ".role = \"", role, "\": expected system, user or assistant"));
    if (!m.contains("content")) bad_request("missing_field", cat(what, ".content: missing"));
    const json& c = m["content"];
    const std::string cw = what + ".content";
    if (c.is_string()) {
      r.prompt.push_back(Segment::Text(c.get<std::string>()));
    } else if (c.is_array()) {
      for (size_t p = 0; p < c.size(); ++p)
        add_content_part(r.prompt, c[p], cat(cw, "[", p, "]"), role != "assistant", limits, decode);
    } else {
      wrong_type(cw, c, "a string or an array of parts");
    }
  }
  // Empty text pieces carry nothing; a request with neither text nor images is refused.
  Prompt kept;
  for (auto& s : r.prompt)
    if (s.kind != Segment::Kind::kText || !s.text.empty()) kept.push_back(std::move(s));
  r.prompt = std::move(kept);
  if (r.prompt.empty()) bad_request("invalid_value", "messages: no text or image in any message");
  int64_t text_bytes = 0;
  for (const auto& seg : r.prompt) text_bytes += static_cast<int64_t>(seg.text.size());
  check_prompt_size(text_bytes, limits, "messages");
  validate_gen(r.options);
  check_max_tokens(r.options, limits);
  return r;
}

ImageRequest parse_image_request(const std::string& body, const GenerateOptions& defaults,
                                 const RequestLimits& limits) {
  const json j = parse_object(body);
  ImageRequest r;
  r.options = defaults;
  r.options.on_progress = nullptr;
  r.options.on_token = nullptr;
  r.options.is_cancelled = nullptr;
  r.options.dump_tensors.clear();
  std::string accepted = "model, prompt, n, stream (false), response_format";
  for (const auto& f : kServeImageGenFields) accepted += ", " + f;
  for (const auto& [k, v] : j.items()) {
    if (k == "prompt" || common_field(k, v)) continue;
    if (k == "stream") {
      if (want_bool(v, k))
        bad_request("unsupported",
                    "stream = true: /v1/images/generations answers with the whole image; omit "
                    "stream or send false");
      continue;
    }
    if (k == "response_format") {
      const std::string f = want_string(v, k);
      if (f != "b64_json")
        bad_request("unsupported", cat("response_format = \"", f, "\": gill serve answers b64_json only (it keeps ",
                                       "no files to link to)"));
      continue;
    }
    if (k == "size")
      bad_request("unsupported", "size: the image size comes from the Stable Diffusion UNet's config; omit size");
    bool known = false;
    for (const auto& f : kServeImageGenFields) known = known || f == k;
    if (!known) unknown_field(k, accepted);
    set_gen_field(r.options, k, v);
  }
  if (!j.contains("prompt")) bad_request("missing_field", "prompt: missing (the text to draw)");
  r.prompt = want_string(j["prompt"], "prompt");
  if (r.prompt.empty()) bad_request("invalid_value", "prompt: empty");
  check_prompt_size(static_cast<int64_t>(r.prompt.size()), limits, "prompt");
  validate_gen(r.options);
  return r;
}

nlohmann::json block_json(const ImageBlock& b, const PngEncoder& png) {
  // The library's one block serialiser (docs/result-schema.md), the generated picture as a PNG data URL.
  ImageBlock with_url = b;
  if (b.generated) with_url.generated_url = "data:image/png;base64," + base64_encode(png(b));
  return gill::block_json(with_url);
}

const char* finish_reason(const Result& r, const GenerateOptions& o) {
  return static_cast<int64_t>(r.token_ids.size()) >= o.num_words ? "length" : "stop";
}

nlohmann::json chat_chunk(const std::string& id, int64_t created, const nlohmann::json& delta,
                          const nlohmann::json& finish) {
  return {{"id", id},
          {"object", "chat.completion.chunk"},
          {"created", created},
          {"model", kModelId},
          {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}})}};
}

nlohmann::json usage_json(const Result& r) {
  const auto& t = r.timings;
  return {{"prompt_tokens", t.prompt_tokens},
          {"completion_tokens", t.new_tokens},
          {"total_tokens", t.prompt_tokens + t.new_tokens}};
}

nlohmann::json timings_json(const Result& r) {
  return gill::timings_json(r.timings);
}

nlohmann::json chat_response(const Result& r, const GenerateOptions& o, const std::string& id, int64_t created,
                             const PngEncoder& png) {
  json blocks = json::array();
  for (const ImageBlock& b : r.images) blocks.push_back(block_json(b, png));
  return {{"id", id},
          {"object", "chat.completion"},
          {"created", created},
          {"model", kModelId},
          {"choices", json::array({{{"index", 0},
                                    {"message",
                                     {{"role", "assistant"},
                                      {"content", r.text},
                                      {"image_blocks", blocks},
                                      {"trailing_text", r.trailing_text}}},
                                    {"finish_reason", finish_reason(r, o)}}})},
          {"usage", usage_json(r)},
          {"timings", timings_json(r)}};
}

nlohmann::json image_response(const std::string& png, int64_t created, uint64_t seed) {
  return {{"created", created}, {"data", json::array({{{"b64_json", base64_encode(png)}, {"seed", seed}}})}};
}

nlohmann::json models_response() {
  return {{"object", "list"},
          {"data", json::array({{{"id", kModelId}, {"object", "model"}, {"created", 0}, {"owned_by", "gill"}}})}};
}

namespace {
constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (i + 1 < n ? uint32_t(p[i + 1]) << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += i + 1 < n ? kBase64Alphabet[(v >> 6) & 63] : '=';
    out += i + 2 < n ? kBase64Alphabet[v & 63] : '=';
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& what) {
  if (text.empty()) bad_request("invalid_value", cat(what, ": the data: URL carries no data"));
  if (text.size() % 4 != 0)
    bad_request("invalid_base64", cat(what, ": base64 length ", text.size(), " is not a multiple of 4"));
  int8_t value[256];
  for (int c = 0; c < 256; ++c) value[c] = -1;
  for (int k = 0; k < 64; ++k) value[static_cast<unsigned char>(kBase64Alphabet[k])] = static_cast<int8_t>(k);
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = static_cast<unsigned char>(text[i + k]);
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0 || value[c] < 0)
        bad_request(
            "invalid_base64",
            cat(what, ": byte ", i + k, " of the base64 data is not base64 ('",
                c >= 0x20 && c < 0x7f ? std::string(1, static_cast<char>(c)) : cat("\\x", std::hex, int(c)), "')"));
      v[k] = value[c];
    }
    const uint32_t w = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    out += static_cast<char>((w >> 16) & 255);
    if (pad < 2) out += static_cast<char>((w >> 8) & 255);
    if (pad < 1) out += static_cast<char>(w & 255);
  }
  return out;
}

}  // namespace gill::cli::serve
