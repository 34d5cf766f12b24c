// HF config.json: both families parse into the typed record; every field used is
// validated with an error that names it.
#include <gtest/gtest.h>

#include "hf_config.h"
#include "support/test_support.h"

using namespace bitnetc;
using namespace bitnetc::test;
using nlohmann::json;

namespace {

json bitnet_2b4t_tiny() {
  return json::parse(R"({
    "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
    "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 3, "num_attention_heads": 2,
    "num_key_value_heads": 1, "vocab_size": 128256, "max_position_embeddings": 256,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true,
    "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                            "quantization_mode": "offline"}})");
}

HfConfig parse(const json& j) { return parse_hf_config_text("config.json", j.dump()); }

}  // namespace

TEST(HfConfig, ParsesBitNet2B4TStyle) {
  const HfConfig c = parse(bitnet_2b4t_tiny());
  EXPECT_EQ(c.family, HfFamily::BitNetB158);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.hidden_act, "relu2");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.quant_mode, HfQuantMode::Offline);
  EXPECT_EQ(c.linear_class, "autobitlinear");
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.bos_token_id, 128000);
}

TEST(HfConfig, ParsesOneBitLlmLlamaStyle) {
  const json j = json::parse(R"({
    "architectures": ["BitnetForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 1536, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
    "vocab_size": 32002, "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
    "tie_word_embeddings": false, "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2})");
  const HfConfig c = parse(j);
  EXPECT_EQ(c.family, HfFamily::OneBitLlama);
  EXPECT_EQ(c.num_key_value_heads, 16);  // defaults to the head count
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.quant_mode, HfQuantMode::Online);
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(HfConfig, EveryUsedFieldIsValidated) {
  struct Case {
    std::function<void(json&)> edit;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j.erase("hidden_size"); }, {"config.json: hidden_size", "missing"}},
      {[](json& j) { j["hidden_size"] = "128"; }, {"hidden_size", "must be an integer"}},
      {[](json& j) { j["num_hidden_layers"] = 0; }, {"num_hidden_layers", "positive"}},
      {[](json& j) { j["num_hidden_layers"] = 1ll << 40; }, {"num_hidden_layers", "below 2^32"}},
      {[](json& j) { j["num_key_value_heads"] = 3; }, {"num_key_value_heads", "does not divide"}},
      {[](json& j) {
         j["num_attention_heads"] = 3;
         j["num_key_value_heads"] = 3;
       },
       {"num_attention_heads", "does not divide hidden_size"}},
      {[](json& j) { j["hidden_act"] = "gelu"; }, {"hidden_act", "unsupported activation \"gelu\""}},
      {[](json& j) { j["rms_norm_eps"] = -1; }, {"rms_norm_eps", "positive finite"}},
      {[](json& j) { j["rope_theta"] = "big"; }, {"rope_theta", "must be a number"}},
      {[](json& j) {
         j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4}};
       },
       {"rope_scaling", "not supported"}},
      {[](json& j) { j["architectures"] = {"MistralForCausalLM"}; }, {"architectures", "unsupported architecture"}},
      {[](json& j) { j.erase("architectures"); }, {"architectures", "missing"}},
      {[](json& j) { j["tie_word_embeddings"] = 1; }, {"tie_word_embeddings", "true or false"}},
      {[](json& j) { j["bos_token_id"] = 999999; }, {"bos_token_id", "999999 is not below vocab_size", "one of the two is wrong"}},
      {[](json& j) { j["attention_bias"] = true; }, {"attention_bias", "not supported"}},
      {[](json& j) { j["quantization_config"]["quant_method"] = "gptq"; }, {"quant_method", "is not \"bitnet\""}},
      {[](json& j) { j["quantization_config"]["quantization_mode"] = "dynamic"; }, {"quantization_mode"}},
      {[](json& j) { j["head_dim"] = 63; }, {"head_dim", "even"}},
  };
  for (const auto& c : cases) {
    json j = bitnet_2b4t_tiny();
    c.edit(j);
    expect_import_error([&] { parse(j); }, c.expect);
  }
  expect_import_error([] { parse_hf_config_text("config.json", "{\"a\": "); }, {"config.json", "invalid JSON"});
  // Found by fuzz.hf_config: numbers beyond double range and values of the wrong JSON type.
  expect_import_error([] { parse_hf_config_text("config.json", "{\"a\": 444444444444444e844}"); },
                      {"config.json", "invalid JSON", "number overflow"});
  json j = bitnet_2b4t_tiny();
  j["rope_scaling"] = {{"type", 5}};
  expect_import_error([&] { parse(j); }, {"config.json", "rope_scaling"});
  expect_import_error([] { parse_hf_config("/nonexistent/config.json"); }, {"cannot open"});
}
