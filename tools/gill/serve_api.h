// The JSON side of `gill serve` (no HTTP here): OpenAI-style requests parsed into the library's Prompt and
// GenerateOptions, results turned into response bodies, and API errors with their HTTP status. Every field a
// request may carry is either honoured or refused by name (docs/server.md lists them).
#pragma once
#include <gill/gill.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace gill::cli::serve {

// An error answered as {"error": {"message", "type", "code"}} with `status`.
struct ApiError {
  int status = 400;
  std::string type;  // invalid_request_error | authentication_error | server_error | ...
  std::string code;  // invalid_json | unknown_field | invalid_value | ...
  std::string message;
  nlohmann::json body() const;
};
// 400 invalid_request_error with `code`.
[[noreturn]] void bad_request(const std::string& code, const std::string& message);
// The API error for a gill::Error raised while serving a request (invalid argument -> 400, cancelled -> 503, ...).
ApiError api_error_for(const Error& e);

// The one model a server serves.
inline constexpr const char* kModelId = "gill";

// Decodes image bytes (PNG, JPEG, ... as gill::read_image does); `what` names the field in error messages.
using ImageDecoder = std::function<Image(const std::string& bytes, const std::string& what)>;

// What one request may ask for (the server's flags); beyond them a 400 names the field and the flag.
struct RequestLimits {
  int64_t max_tokens = 1024;               // --max-tokens: largest max_tokens
  int64_t max_prompt_bytes = 64 << 10;     // --max-prompt-bytes: UTF-8 bytes of text in a request's prompt
  int64_t max_image_pixels = 4096 * 4096;  // --max-image-pixels: width x height of an image in a request
  std::string image_root;                  // --image-root: an existing folder, canonical; "" = no local paths
};

struct ChatRequest {
  Prompt prompt;
  GenerateOptions options;
  bool stream = false;          // answer with Server-Sent Events (chat_chunk ... "data: [DONE]")
  std::string conversation_id;  // "" = a fresh turn; else continue (or start) that conversation
};
// POST /v1/chat/completions. `defaults` are the server's GenerateOptions (its command-line flags).
ChatRequest parse_chat_request(const std::string& body, const GenerateOptions& defaults, const RequestLimits& limits,
                               const ImageDecoder& decode);

struct ImageRequest {
  std::string prompt;
  GenerateOptions options;
};
// POST /v1/images/generations.
ImageRequest parse_image_request(const std::string& body, const GenerateOptions& defaults, const RequestLimits& limits);
// The image of an image_url part: a data: URL, or a local path (plain or file://) that resolves, symbolic links
// followed, to a file under limits.image_root (403 path_not_allowed otherwise); at most max_image_pixels.
Image image_from_url(const std::string& url, const std::string& what, const RequestLimits& limits,
                     const ImageDecoder& decode);

// PNG bytes of a block's generated image (encoded by gill::write_png, its settings in text chunks:
// gill::png_settings).
using PngEncoder = std::function<std::string(const ImageBlock&)>;
// The chat.completion body: the text as the message content, the image blocks (decision, probabilities,
// retrieved items, generated PNG as a data URL) in message.image_blocks, usage and timings.
nlohmann::json chat_response(const Result& r, const GenerateOptions& o, const std::string& id, int64_t created,
                             const PngEncoder& png);
// One image block: caption, decision, probabilities, retrieved items, generated PNG as a data URL (or null).
nlohmann::json block_json(const ImageBlock& b, const PngEncoder& png);
// A chat.completion.chunk of a stream: `delta` ({"role"}, {"content"}, {"image_block"} or {}), finish_reason
// (null until the last chunk).
nlohmann::json chat_chunk(const std::string& id, int64_t created, const nlohmann::json& delta,
                          const nlohmann::json& finish_reason = nullptr);
// {"prompt_tokens", "completion_tokens", "total_tokens"} and the turn's timings.
nlohmann::json usage_json(const Result& r);
nlohmann::json timings_json(const Result& r);
// "length" when the turn generated max_tokens tokens, else "stop".
const char* finish_reason(const Result& r, const GenerateOptions& o);
// The images.generations body: data[0].b64_json.
nlohmann::json image_response(const std::string& png, int64_t created, uint64_t seed);
nlohmann::json models_response();

std::string base64_encode(const std::string& bytes);
// Strict RFC 4648 (padding required, no whitespace); throws a 400 naming `what` and the offset of a bad byte.
std::string base64_decode(const std::string& text, const std::string& what);

}  // namespace gill::cli::serve
