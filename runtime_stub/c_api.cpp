// The C API of compiled shared objects (bitnet.h), over rt::CompiledModel.
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bitnet.h"
#include "compiled_model.h"

struct BitNetModel {
  std::unique_ptr<bitnetc::rt::CompiledModel> model;
  // Calls on one model from several threads run one at a time (the forward pass holds
  // one sequence's KV cache and scratch buffers).
  std::mutex busy;
};

namespace {

thread_local std::string last_error;
thread_local int last_code = BITNET_OK;

void set_error(int code, const std::string& msg) {
  last_code = code;
  last_error = msg;
}

void clear_error() { set_error(BITNET_OK, ""); }

bitnetc::rt::SamplerParams sampler_of(const BitNetGenerateParams& p) {
  bitnetc::rt::SamplerParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.repeat_penalty = p.repeat_penalty;
  s.seed = p.seed;
  return s;
}

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (!out) return nullptr;
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

// Sampling parameters a generation can run with, else false with the last error naming
// the function and the field: NaN and infinities are never taken.
bool valid_params(const char* fn, const BitNetGenerateParams& p) {
  auto bad = [&](const char* field, const char* want) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, std::string(fn) + ": " + field + " " + want);
    return false;
  };
  if (p.max_tokens < 0) return bad("max_tokens", "must not be negative");
  if (!std::isfinite(p.temperature)) return bad("temperature", "must be a finite number (<= 0: greedy)");
  if (!std::isfinite(p.top_p) || p.top_p < 0) return bad("top_p", "must be a finite number >= 0 (>= 1: off)");
  if (!std::isfinite(p.min_p) || p.min_p > 1) return bad("min_p", "must be a finite number <= 1 (<= 0: off)");
  if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0)
    return bad("repeat_penalty", "must be a finite number > 0 (1: off)");
  return true;
}

// Runs `f`, turning exceptions into the thread's last error.
template <typename F>
auto guarded(F f, decltype(f()) on_error) -> decltype(f()) {
  try {
    clear_error();
    return f();
  } catch (const bitnetc::rt::TokenizerError& e) {
    set_error(BITNET_ERROR_PROMPT, std::string("prompt: ") + e.what());
  } catch (const bitnetc::rt::GenerateError& e) {
    set_error(BITNET_ERROR_PROMPT, e.what());
  } catch (const std::exception& e) {
    set_error(BITNET_ERROR_INTERNAL, e.what());
  }
  return on_error;
}

// A side weights file (--weights=external) starts with the blob's magic.
bool is_weights_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  uint32_t magic = 0;
  in.read(reinterpret_cast<char*>(&magic), sizeof magic);
  return in && magic == bitnetc::rt::kBlobMagic;
}

}  // namespace

extern "C" {

BitNetGenerateParams bitnet_default_params(void) {
  const bitnetc::rt::SamplerParams s;
  return BitNetGenerateParams{64, s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty, s.seed};
}

BitNetModel* bitnet_model_load(const char* path) {
  return guarded(
      [&]() -> BitNetModel* {
        auto m = std::make_unique<BitNetModel>();
        const bool side_file = path && *path && is_weights_file(path);
        m->model = std::make_unique<bitnetc::rt::CompiledModel>(0, side_file ? std::string(path) : std::string());
        if (path && *path && !side_file) {
          std::ifstream in(path, std::ios::binary);
          if (!in) {
            set_error(BITNET_ERROR_IO, std::string(path) + ": cannot open");
            return nullptr;
          }
          uint64_t h = 0xcbf29ce484222325ull;
          std::vector<char> buf(1 << 20);
          while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            h = bitnetc::rt::fnv1a64(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount()), h);
          }
          if (h != m->model->fingerprint()) {
            set_error(BITNET_ERROR_MODEL_MISMATCH,
                      std::string(path) + ": is not the model compiled into this library (fingerprint differs)");
            return nullptr;
          }
        }
        return m.release();
      },
      nullptr);
}

void bitnet_model_free(BitNetModel* model) { delete model; }

char* bitnet_generate(BitNetModel* model, const char* prompt, const BitNetGenerateParams* params) {
  if (!model || !prompt || !params) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_generate: model, prompt and params must not be NULL");
    return nullptr;
  }
  if (!valid_params("bitnet_generate", *params)) return nullptr;
  return guarded(
      [&]() -> char* {
        const std::lock_guard<std::mutex> one_at_a_time(model->busy);
        const auto gen = model->model->generate(prompt, params->max_tokens, sampler_of(*params));
        return copy_string(gen.text);
      },
      nullptr);
}

char* bitnet_inference(BitNetModel* model, const char* prompt, int max_tokens, float temperature) {
  BitNetGenerateParams p = bitnet_default_params();
  p.max_tokens = max_tokens;
  p.temperature = temperature;
  if (!valid_params("bitnet_inference", p)) return nullptr;
  return bitnet_generate(model, prompt, &p);
}

int bitnet_version(void) { return BITNET_API_VERSION; }

int bitnet_inference_stream(BitNetModel* model, const char* prompt, const BitNetStreamConfig* config) {
  if (!model || !prompt || !config) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_inference_stream: model, prompt and config must not be NULL");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  // Zero fields take the defaults (bitnet.h).
  BitNetGenerateParams params = bitnet_default_params();
  if (config->max_new_tokens != 0) params.max_tokens = config->max_new_tokens;
  params.temperature = config->temperature;
  if (config->top_k != 0) params.top_k = config->top_k;
  if (config->top_p != 0) params.top_p = config->top_p;
  if (config->min_p != 0) params.min_p = config->min_p;
  if (config->repeat_penalty != 0) params.repeat_penalty = config->repeat_penalty;
  params.seed = config->seed;
  if (!valid_params("bitnet_inference_stream", params)) return BITNET_ERROR_INVALID_ARGUMENT;
  const int n = guarded(
      [&]() -> int {
        const std::lock_guard<std::mutex> one_at_a_time(model->busy);
        std::function<bool(std::string_view)> on_text;
        if (config->callback || config->should_stop)
          on_text = [&](std::string_view t) {
            const std::string s(t);
            if (config->callback) config->callback(s.c_str(), config->user_data);
            return !config->should_stop || config->should_stop(config->user_data) == 0;
          };
        const auto gen = model->model->generate(prompt, params.max_tokens, sampler_of(params), on_text);
        return static_cast<int>(gen.tokens.size());
      },
      INT32_MIN);
  return n == INT32_MIN ? last_code : n;
}

void bitnet_free_string(char* s) { std::free(s); }

const char* bitnet_get_last_error(void) { return last_error.c_str(); }

int bitnet_get_last_error_code(void) { return last_code; }

}  // extern "C"
