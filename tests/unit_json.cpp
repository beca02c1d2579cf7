// util::json_get: numbers out of JSON configs without undefined behaviour (nlohmann's get<int>() of a float is a
// plain cast), and the config readers that use it refusing what the fuzzers found (fuzz_config: 1.5e118 and
// 4.1e111 as integers; clang's UBSan in the fuzz build checks float-to-integer casts, gcc's does not).
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/clip_text.h"
#include "models/gill_args.h"
#include "models/opt.h"
#include "models/unet_2d.h"
#include "models/vae.h"
#include "test_support.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::test {
namespace {

using nlohmann::json;
using util::json_get;

template <typename T>
std::string refusal(const json& v) {
  try {
    (void)json_get<T>(v);
  } catch (const json::type_error& e) {
    return e.what();
  }
  return "(accepted)";
}

template <typename Fn>
std::string format_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat) << e.what();
    return e.what();
  }
  return "(no error)";
}

TEST(JsonGet, IntegersInRange) {
  EXPECT_EQ(json_get<int64_t>(json(-5)), -5);
  EXPECT_EQ(json_get<int>(json(2147483647)), 2147483647);
  EXPECT_EQ(json_get<int>(json(-2147483648LL)), std::numeric_limits<int>::min());
  EXPECT_EQ(json_get<uint64_t>(json(18446744073709551615ULL)), 18446744073709551615ULL);
  EXPECT_EQ(json_get<int64_t>(json::parse("9223372036854775807")), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(json_get<uint8_t>(json(255)), 255);
  // Integral floats, as Python's json writes 1.0 and as some configs have them.
  EXPECT_EQ(json_get<int>(json(4.0)), 4);
  EXPECT_EQ(json_get<int64_t>(json(-9223372036854775808.0)), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(json_get<std::vector<int64_t>>(json::parse("[1, -2, 3.0]")), (std::vector<int64_t>{1, -2, 3}));
}

TEST(JsonGet, IntegersOutOfRangeOrNotIntegral) {
  EXPECT_EQ(refusal<int64_t>(json::parse("1.5e118")),
            "[json.exception.type_error.302] number 1.5e+118 is not a valid signed integer of this size");
  EXPECT_EQ(refusal<int64_t>(json(9223372036854775808.0)),
            "[json.exception.type_error.302] number 9.223372036854776e+18 is not a valid signed integer of this size");
  EXPECT_EQ(refusal<int64_t>(json(18446744073709551615ULL)),
            "[json.exception.type_error.302] number 18446744073709551615 is not a valid signed integer of this size");
  EXPECT_EQ(refusal<int>(json(2147483648LL)),
            "[json.exception.type_error.302] number 2147483648 is not a valid signed integer of this size");
  EXPECT_EQ(refusal<uint64_t>(json(-1)),
            "[json.exception.type_error.302] number -1 is not a valid unsigned integer of this size");
  EXPECT_EQ(refusal<uint8_t>(json(256)),
            "[json.exception.type_error.302] number 256 is not a valid unsigned integer of this size");
  EXPECT_EQ(refusal<int>(json(2.5)),
            "[json.exception.type_error.302] number 2.5 is not a valid signed integer of this size");
  EXPECT_EQ(refusal<int>(json(std::numeric_limits<double>::quiet_NaN())),
            "[json.exception.type_error.302] number null is not a valid signed integer of this size");
  EXPECT_EQ(refusal<std::vector<int64_t>>(json::parse("[1, 4.1e111]")),
            "[json.exception.type_error.302] number 4.1e+111 is not a valid signed integer of this size");
  EXPECT_EQ(refusal<int>(json("3")), "[json.exception.type_error.302] type must be number, but is string");
}

TEST(JsonGet, Floats) {
  EXPECT_EQ(json_get<float>(json(0.5)), 0.5f);
  EXPECT_EQ(json_get<float>(json(3)), 3.0f);
  EXPECT_EQ(json_get<double>(json(1e300)), 1e300);
  EXPECT_EQ(refusal<float>(json(1e300)), "[json.exception.type_error.302] number 1e+300 is not a valid float");
  EXPECT_EQ(refusal<float>(json(-1e39)), "[json.exception.type_error.302] number -1e+39 is not a valid float");
}

TEST(JsonGet, ConfigReadersRefuseHugeIntegers) {
  EXPECT_EQ(format_error_of([] { models::OPTConfig::from_json({{"hidden_size", 1e300}}); }),
            "field 'hidden_size' has the wrong type: 1e+300");
  auto args = json::parse(R"({"opt_version": "facebook/opt-tiny", "freeze_lm": true, "visual_encoder": "x",
    "freeze_vm": true, "n_visual_tokens": 4, "ret_emb_dim": 24, "gen_emb_dim": 32, "text_emb_layers": [-1],
    "text_fc_mode": "gill_mapper", "ret_text_fc_mode": "linear", "num_tokens": 8, "num_clip_tokens": 77,
    "share_ret_gen": true, "norm_image_embed": "none", "retrieval_token_idx": [4.1e111],
    "gen_token_idx": [410]})");
  EXPECT_EQ(format_error_of([&] { models::GILLArgs::from_json(args, "model_args.json"); }),
            "model_args.json: field 'retrieval_token_idx' has the wrong type ([4.1e+111])");
  EXPECT_NE(format_error_of([] { models::UNet2DConditionConfig::from_json({{"cross_attention_dim", -3e200}}); })
                .find("-3e+200"),
            std::string::npos);
  EXPECT_NE(format_error_of([] { models::UNet2DConditionConfig::from_json({{"attention_head_dim", {8, 1e19}}}); })
                .find("1e+19"),
            std::string::npos);
  EXPECT_NE(format_error_of([] { models::AutoencoderKLConfig::from_json({{"latent_channels", 5e20}}); }).find("5e+20"),
            std::string::npos);
  EXPECT_NE(format_error_of([] { models::CLIPTextConfig::from_json({{"hidden_size", 1e100}}); }).find("1e+100"),
            std::string::npos);
}

}  // namespace
}  // namespace gill::test
