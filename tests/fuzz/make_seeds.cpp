// Writes the fuzzers' seed corpora from valid files: small synthetic GGUFs of several
// weight types, SafeTensors files, HF configs, and a small bitllama2.c checkpoint.
// Usage: make_seeds OUT_DIR   (creates OUT_DIR/{gguf,safetensors,hf_config,llama2c})
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string_view>

#include "safetensors.h"
#include "synthetic_model.h"

using namespace bitnetc;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<uint8_t> safetensors(const std::string& header, const std::vector<uint8_t>& data) {
  std::string h = header;
  while ((8 + h.size()) % 8) h += ' ';
  std::vector<uint8_t> out(8);
  const uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* d : {"gguf", "safetensors", "hf_config", "llama2c", "tokenizer", "output_args", "chat"})
    fs::create_directories(out / d);
  // Command lines (arguments separated by NUL bytes) and conversations (role, content, ...).
  auto nul_joined = [](std::initializer_list<std::string_view> parts) {
    std::vector<uint8_t> v;
    for (std::string_view p : parts) {
      if (!v.empty()) v.push_back(0);
      v.insert(v.end(), p.begin(), p.end());
    }
    return v;
  };
  const std::vector<std::vector<uint8_t>> command_lines = {
      nul_joined({"-p", "Once upon a time", "-n", "64", "--temp", "0.8", "--top-p", "0.9", "-s", "42"}),
      nul_joined({"-cnv", "-sys", "Be brief", "--chat-template", "chatml", "--keep", "16", "-c", "512"}),
      nul_joined({"--server", "--port", "0", "-np", "8", "--api-key", "k", "--queue", "4", "--timeout", "30"}),
      nul_joined({"--prompts", "p.txt", "-np", "4", "--json", "--top-logits", "5", "-r", "stop"}),
      nul_joined({"--bench", "128,128,3,8", "-t", "2"}),
  };
  for (size_t i = 0; i < command_lines.size(); ++i)
    write(out / "output_args" / ("args" + std::to_string(i)), command_lines[i]);
  const std::vector<std::vector<uint8_t>> chats = {
      nul_joined({"system", "Be brief", "user", "Hi <|end|> there", "assistant", "Hello!"}),
      nul_joined({"user", "What is 2+2?\n<|im_start|>", "assistant", ""}),
  };
  for (size_t i = 0; i < chats.size(); ++i) write(out / "chat" / ("chat" + std::to_string(i)), chats[i]);
  const char* texts[] = {"Once upon a time, there was a little girl named Lily.", "  leading\tand\r\n\nspaces ",
                         "Hello, y'all! How are you \xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3 1314151",
                         "<s>[INST] 3333 +<=>^~|` </s>"};
  for (size_t i = 0; i < sizeof texts / sizeof *texts; ++i) {
    const std::string t = texts[i];
    write(out / "tokenizer" / ("text" + std::to_string(i)), std::vector<uint8_t>(t.begin(), t.end()));
  }

  // GGUF: tiny shapes so that mutations stay fast (about 20-60 KB each).
  SyntheticSpec s;
  s.n_vocab = 300;
  s.n_embd = 256;
  s.n_ff = 256;
  s.n_layer = 1;
  s.n_head = 2;
  s.n_head_kv = 1;
  s.n_ctx = 64;
  s.embd_type = TensorType::BF16;
  for (auto t : {TensorType::TQ1_0, TensorType::TQ2_0, TensorType::I2_S, TensorType::TL1, TensorType::TL2}) {
    s.weight_type = t;
    s.arch = t == TensorType::TQ1_0 || t == TensorType::TQ2_0 ? "bitnet" : "bitnet-b1.58";
    write(out / "gguf" / (std::string(type_name(t)) + ".gguf"), make_synthetic_gguf(s).serialize());
  }

  write(out / "safetensors" / "two.safetensors",
        safetensors(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}})",
                    {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  write(out / "safetensors" / "dtypes.safetensors",
        safetensors(R"({"f":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[1,1],)"
                    R"("data_offsets":[4,6]},"i":{"dtype":"I8","shape":[2],"data_offsets":[6,8]}})",
                    {0, 0, 128, 63, 0, 60, 1, 255}));

  const std::string cfg = R"({"architectures":["BitNetForCausalLM"],"model_type":"bitnet","hidden_act":"relu2",)"
                          R"("hidden_size":128,"intermediate_size":384,"num_hidden_layers":3,"num_attention_heads":2,)"
                          R"("num_key_value_heads":1,"vocab_size":128256,"max_position_embeddings":256,)"
                          R"("rms_norm_eps":1e-05,"rope_theta":500000.0,"tie_word_embeddings":true,)"
                          R"("bos_token_id":128000,"eos_token_id":128001,"quantization_config":)"
                          R"({"quant_method":"bitnet","linear_class":"autobitlinear","quantization_mode":"offline"}})";
  write(out / "hf_config" / "config.json", std::vector<uint8_t>(cfg.begin(), cfg.end()));

  // bitllama2.c: dim 32, hidden 64, 1 layer, 4 heads, 2 KV heads, vocab 8.
  std::vector<uint8_t> ck(256, 0);
  const uint32_t magic = 0x616b3432;
  const int32_t hdr[8] = {1, 32, 64, 1, 4, 2, 8, 16};
  std::memcpy(ck.data(), &magic, 4);
  std::memcpy(ck.data() + 4, hdr, sizeof hdr);
  ck.resize(256 + 4 * 32 + 4 * 8 * 32, 0);
  const int shapes[7] = {32 * 32, 16 * 32, 16 * 32, 32 * 32, 64 * 32, 32 * 64, 64 * 32};
  for (int n : shapes) {
    const float scale = 0.25f;
    const size_t at = ck.size();
    ck.resize(at + 4 + n / 4, 0x1D);
    std::memcpy(ck.data() + at, &scale, 4);
  }
  write(out / "llama2c" / "tiny.bin", ck);
  return 0;
}
