// The C API of compiled shared objects (bitnet.h), over rt::CompiledModel.
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bitnet.h"
#include "chat.h"
#include "compiled_model.h"
#include "json_text.h"
#include "model_fingerprint.h"

extern "C" const char bitnetc_target_name[];  // codegen/cpu_kernels.cpp writes it

// One-call generations (bitnet_generate, bitnet_inference[_stream], bitnet_chat, the
// batch calls) run on the model's engine: a Scheduler (engine.h) over sequences
// 0 .. kCallSlots - 1, run by a thread of its own from the first such call until
// bitnet_model_free. Calls from several threads join it between forward steps and share
// them (continuous batching, as the server's requests do), each getting its solo tokens.
// Streams and sessions each hold one of the BITNET_MAX_STREAMS sequences after those and
// call the forward pass themselves, under `busy`, which the engine takes for each step.
constexpr int kCallSlots = 8;

struct BitNetModel {
  std::unique_ptr<bitnetc::rt::CompiledModel> model;
  // The forward pass (its scratch buffers are shared by its sequences): held by each
  // engine step and each stream or session call. Guards sequence_used too.
  std::mutex busy;
  // Which of the streams' and sessions' sequences (kCallSlots and up) are taken.
  std::vector<bool> sequence_used;
  std::once_flag engine_started;
  std::unique_ptr<bitnetc::rt::Scheduler> engine;
  std::thread engine_thread;
  std::atomic<const bitnetc::rt::Scheduler*> engine_running{nullptr};  // for model_info, once started

  ~BitNetModel() {
    if (engine) {
      engine->stop();
      engine_thread.join();
    }
  }
};

struct BitNetSession {
  BitNetModel* model = nullptr;
  int32_t seq = 0;
  // Every token of the conversation; the KV cache holds all but the last (which the
  // next feed or generation processes first).
  std::vector<int32_t> history;
};

struct BitNetStream {
  BitNetModel* model = nullptr;
  int32_t seq = 0;
  std::unique_ptr<bitnetc::rt::PulledGeneration> gen;
  std::atomic<bool> cancelled{false};
};

namespace {

thread_local std::string last_error;
thread_local int last_code = BITNET_OK;
thread_local uint64_t last_seed = 0;

// A seed for BITNET_SEED_RANDOM: never the same twice in a process.
uint64_t fresh_seed() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t base = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  uint64_t z = base + 0x9E3779B97F4A7C15ull * ++counter;  // SplitMix64 of a counter
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z == BITNET_SEED_RANDOM ? 0 : z;
}

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
  s.seed = p.seed == BITNET_SEED_RANDOM ? fresh_seed() : p.seed;
  last_seed = s.seed;
  return s;
}

static_assert(BITNET_MAX_LOOKUP == bitnetc::rt::kMaxLookup);

// The options a one-call generation runs with: the model's (stop tokens, context) and
// the params' length, sampling and lookup drafting.
bitnetc::rt::GenerateOptions options_of(BitNetModel& model, const BitNetGenerateParams& p) {
  bitnetc::rt::GenerateOptions o = model.model->generate_options(p.max_tokens, sampler_of(p));
  o.lookup = p.lookup;
  return o;
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
  if (p.lookup < 0 || p.lookup > BITNET_MAX_LOOKUP)
    return bad("lookup", ("must be from 0 (off) to " + std::to_string(BITNET_MAX_LOOKUP)).c_str());
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

// A sequence no stream or session holds (not one of the engine's), or -1 with the last
// error set. The caller holds model.busy and marks it used.
int32_t take_sequence(BitNetModel& model, const char* fn) {
  const std::vector<bool>& used = model.sequence_used;
  int32_t seq = kCallSlots;
  while (seq < static_cast<int32_t>(used.size()) && used[seq]) ++seq;
  if (seq < static_cast<int32_t>(used.size())) return seq;
  set_error(BITNET_ERROR_INVALID_ARGUMENT, std::string(fn) + ": all " + std::to_string(BITNET_MAX_STREAMS) +
                                               " streams and sessions of this model are open (free one first)");
  return -1;
}

// The model's engine, started by the first one-call generation.
bitnetc::rt::Scheduler& engine_of(BitNetModel& model) {
  std::call_once(model.engine_started, [&] {
    bitnetc::rt::EngineOptions o;
    o.slots = kCallSlots;
    o.forward_lock = &model.busy;
    auto engine = std::make_unique<bitnetc::rt::Scheduler>(model.model->forward_pass(), model.model->tokenizer(), o);
    model.engine_thread = std::thread([e = engine.get()] { e->run_until_stopped(); });
    model.engine = std::move(engine);
    model.engine_running = model.engine.get();
  });
  return *model.engine;
}

// One call's generation on the engine, as the engine thread and the calling thread
// share it: the engine hands over each piece of text and waits until the caller has
// handled it (so the user's callbacks run on the calling thread, and should_stop stops
// the generation right after the piece it saw), then the end.
struct EngineCall {
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::string> pieces;
  uint64_t produced = 0, handled = 0;
  bool keep_going = true;  // the caller's answer to the last piece
  bool abandoned = false;  // the caller left (an exception): pieces are no longer waited on
  bool done = false, cancelled = false;
  bitnetc::rt::Generation g;
};

// Submits `request` to the engine (throws as Scheduler::submit does); `on_piece`, when
// set, gets the text piece by piece on the calling thread and returns false to stop.
std::shared_ptr<EngineCall> submit_call(BitNetModel& model, bitnetc::rt::SequenceRequest request, bool streamed,
                                        uint64_t* id = nullptr) {
  auto call = std::make_shared<EngineCall>();
  if (streamed)
    request.on_text = [call](std::string_view piece) {
      std::unique_lock<std::mutex> lock(call->m);
      if (call->abandoned) return false;
      call->pieces.emplace_back(piece);
      const uint64_t mine = ++call->produced;
      call->cv.notify_all();
      call->cv.wait(lock, [&] { return call->handled >= mine || call->abandoned; });
      return call->keep_going && !call->abandoned;
    };
  const uint64_t submitted =
      engine_of(model).submit(std::move(request), [call](bitnetc::rt::Generation& g, bool cancelled) {
        std::lock_guard<std::mutex> lock(call->m);
        call->g = std::move(g);
        call->done = true;
        call->cancelled = cancelled;
        call->cv.notify_all();
      });
  if (id) *id = submitted;
  return call;
}

// Waits for the call's end, handing its pieces to `on_piece` as they come. Throws
// GenerateError naming `fn` when the engine ended it unasked (a forward step failed).
bitnetc::rt::Generation finish_call(const char* fn, EngineCall& call,
                                    const std::function<bool(const std::string&)>& on_piece = {}) {
  std::unique_lock<std::mutex> lock(call.m);
  try {
    for (;;) {
      call.cv.wait(lock, [&] { return !call.pieces.empty() || call.done; });
      while (!call.pieces.empty()) {
        const std::string piece = std::move(call.pieces.front());
        call.pieces.pop_front();
        lock.unlock();
        const bool go = !on_piece || on_piece(piece);
        lock.lock();
        if (!go) call.keep_going = false;
        ++call.handled;
        call.cv.notify_all();
      }
      if (call.done) break;
    }
  } catch (...) {
    if (!lock.owns_lock()) lock.lock();
    call.abandoned = true;
    call.cv.notify_all();
    throw;
  }
  if (call.cancelled)
    throw bitnetc::rt::GenerateError(std::string(fn) +
                                     ": the generation was interrupted (a forward step failed; see stderr)");
  return std::move(call.g);
}

// The messages as rt::ChatMessages, or false with the last error naming `fn` and the
// first bad message; false too when the model has no chat template.
bool chat_messages(const char* fn, BitNetModel* model, const BitNetChatMessage* messages, int n,
                   std::vector<bitnetc::rt::ChatMessage>& out) {
  if (!model || n < 0 || (n > 0 && !messages)) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, std::string(fn) + ": model and messages must not be NULL, n not negative");
    return false;
  }
  if (model->model->tokenizer().vocab().chat_template == bitnetc::rt::ChatTemplate::None) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT,
              std::string(fn) + ": this model has no chat template (none recognised in its tokenizer metadata)");
    return false;
  }
  out.clear();
  for (int i = 0; i < n; ++i) {
    if (!messages[i].role || !messages[i].content) {
      set_error(BITNET_ERROR_INVALID_ARGUMENT,
                std::string(fn) + ": messages[" + std::to_string(i) + "] has a NULL role or content");
      return false;
    }
    out.push_back({messages[i].role, messages[i].content});
  }
  return true;
}

}  // namespace

extern "C" {

BitNetGenerateParams bitnet_default_params(void) {
  const bitnetc::rt::SamplerParams s;
  return BitNetGenerateParams{64, s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty, s.seed, 0};
}

BitNetModel* bitnet_model_load(const char* path) {
  const BitNetLoadParams defaults{0};
  return bitnet_model_load_with_params(path, &defaults);
}

BitNetModel* bitnet_model_load_with_params(const char* path, const BitNetLoadParams* params) {
  if (!params || params->n_ctx < 0) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT,
              !params ? "bitnet_model_load: params must not be NULL" : "bitnet_model_load: n_ctx must not be negative");
    return nullptr;
  }
  return guarded(
      [&]() -> BitNetModel* {
        if (const int64_t model_ctx = bitnetc::rt::embedded_n_ctx(); params->n_ctx > model_ctx) {
          set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_model_load: n_ctx " + std::to_string(params->n_ctx) +
                                                       " is more than the model's context of " +
                                                       std::to_string(model_ctx));
          return nullptr;
        }
        // Only a regular file is read: a FIFO or /dev/zero would block or never end.
        struct stat st {};
        if (path && *path && ::stat(path, &st) != 0) {
          set_error(BITNET_ERROR_IO, std::string("bitnet_model_load: ") + path + ": " + std::strerror(errno));
          return nullptr;
        }
        if (path && *path && !S_ISREG(st.st_mode)) {
          set_error(BITNET_ERROR_IO, std::string("bitnet_model_load: ") + path +
                                         ": is not a regular file (a directory, FIFO or device); give the model "
                                         "file, or NULL for the embedded model");
          return nullptr;
        }
        auto m = std::make_unique<BitNetModel>();
        const bool side_file = path && *path && is_weights_file(path);
        m->model = std::make_unique<bitnetc::rt::CompiledModel>(
            params->n_ctx, side_file ? std::string(path) : std::string(), kCallSlots + BITNET_MAX_STREAMS);
        m->sequence_used.assign(static_cast<size_t>(m->model->max_sequences()), false);
        if (path && *path && !side_file) {
          std::ifstream in(path, std::ios::binary);
          if (!in) {
            set_error(BITNET_ERROR_IO, std::string("bitnet_model_load: ") + path + ": cannot open: " + std::strerror(errno));
            return nullptr;
          }
          const uint64_t h = bitnetc::rt::model_fingerprint(in);
          if (in.bad()) {
            set_error(BITNET_ERROR_IO,
                      std::string("bitnet_model_load: ") + path + ": read failed: " + std::strerror(errno));
            return nullptr;
          }
          if (h != m->model->fingerprint()) {
            set_error(BITNET_ERROR_MODEL_MISMATCH, std::string("bitnet_model_load: ") + path +
                                                       ": is not the model compiled into this library (fingerprint "
                                                       "differs)");
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
        bitnetc::rt::SequenceRequest r;
        r.prompt = prompt;
        r.options = options_of(*model, *params);
        return copy_string(finish_call("bitnet_generate", *submit_call(*model, std::move(r), false)).text);
      },
      nullptr);
}

char* bitnet_inference(BitNetModel* model, const char* prompt, int max_tokens, float temperature) {
  BitNetGenerateParams p = bitnet_default_params();
  p.max_tokens = max_tokens;
  p.temperature = temperature;
  if (temperature > 0) p.seed = BITNET_SEED_RANDOM;  // each call its own draw
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
  params.lookup = config->lookup;
  if (!valid_params("bitnet_inference_stream", params)) return BITNET_ERROR_INVALID_ARGUMENT;
  const int n = guarded(
      [&]() -> int {
        bitnetc::rt::SequenceRequest r;
        r.prompt = prompt;
        r.options = options_of(*model, params);
        const bool streamed = config->callback || config->should_stop;
        const auto call = submit_call(*model, std::move(r), streamed);
        const auto gen = finish_call("bitnet_inference_stream", *call, [&](const std::string& piece) {
          if (config->callback) config->callback(piece.c_str(), config->user_data);
          return !config->should_stop || config->should_stop(config->user_data) == 0;
        });
        return static_cast<int>(gen.tokens.size());
      },
      INT32_MIN);
  return n == INT32_MIN ? last_code : n;
}

BitNetStream* bitnet_stream_create_with_params(BitNetModel* model, const char* prompt,
                                               const BitNetGenerateParams* params) {
  if (!model || !prompt || !params) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_stream_create: model, prompt and params must not be NULL");
    return nullptr;
  }
  if (!valid_params("bitnet_stream_create", *params)) return nullptr;
  return guarded(
      [&]() -> BitNetStream* {
        const std::lock_guard<std::mutex> one_at_a_time(model->busy);
        const int32_t seq = take_sequence(*model, "bitnet_stream_create");
        if (seq < 0) return nullptr;
        auto stream = std::make_unique<BitNetStream>();
        stream->model = model;
        stream->seq = seq;
        stream->gen = model->model->pull(prompt, params->max_tokens, sampler_of(*params), seq, params->lookup);
        model->sequence_used[seq] = true;
        return stream.release();
      },
      nullptr);
}

BitNetStream* bitnet_stream_create(BitNetModel* model, const char* prompt) {
  const BitNetGenerateParams p = bitnet_default_params();
  return bitnet_stream_create_with_params(model, prompt, &p);
}

char* bitnet_stream_next(BitNetStream* stream) {
  if (!stream) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_stream_next: stream must not be NULL");
    return nullptr;
  }
  return guarded(
      [&]() -> char* {
        const std::lock_guard<std::mutex> one_at_a_time(stream->model->busy);
        if (stream->cancelled) stream->gen->stop();
        std::string piece;
        if (!stream->gen->next(piece)) return nullptr;  // the end: the last error stays BITNET_OK
        return copy_string(piece);
      },
      nullptr);
}

void bitnet_stream_cancel(BitNetStream* stream) {
  if (stream) stream->cancelled = true;
}

void bitnet_stream_free(BitNetStream* stream) {
  if (!stream) return;
  {
    const std::lock_guard<std::mutex> one_at_a_time(stream->model->busy);
    stream->model->model->release(stream->seq);
    stream->model->sequence_used[stream->seq] = false;
  }
  delete stream;
}

BitNetSession* bitnet_session_create(BitNetModel* model) {
  if (!model) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_session_create: model must not be NULL");
    return nullptr;
  }
  return guarded(
      [&]() -> BitNetSession* {
        const std::lock_guard<std::mutex> one_at_a_time(model->busy);
        const int32_t seq = take_sequence(*model, "bitnet_session_create");
        if (seq < 0) return nullptr;
        auto session = std::make_unique<BitNetSession>();
        session->model = model;
        session->seq = seq;
        model->model->release(seq);  // a fresh cache
        model->sequence_used[seq] = true;
        return session.release();
      },
      nullptr);
}

int bitnet_session_feed(BitNetSession* session, const char* text) {
  if (!session || !text) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_session_feed: session and text must not be NULL");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  const int n = guarded(
      [&]() -> int {
        const std::lock_guard<std::mutex> one_at_a_time(session->model->busy);
        bitnetc::rt::CompiledModel& m = *session->model->model;
        std::vector<int32_t>& h = session->history;
        const std::vector<int32_t> tokens =
            m.tokenizer().encode(text, h.empty() && m.tokenizer().vocab().add_bos, /*parse_special=*/true);
        if (h.size() + tokens.size() > static_cast<size_t>(m.n_ctx()))
          throw bitnetc::rt::GenerateError("bitnet_session_feed: the session would hold " +
                                           std::to_string(h.size() + tokens.size()) +
                                           " positions, more than the context's " + std::to_string(m.n_ctx()));
        if (tokens.empty()) return static_cast<int>(h.size());
        // Process all but the new last token now: the cache then holds h.size() - 1.
        const auto fed = static_cast<int32_t>(h.empty() ? 0 : h.size() - 1);
        std::vector<int32_t> pending(h.begin() + fed, h.end());
        pending.insert(pending.end(), tokens.begin(), tokens.end() - 1);
        m.feed(session->seq, pending, fed);
        h.insert(h.end(), tokens.begin(), tokens.end());
        return static_cast<int>(h.size());
      },
      INT32_MIN);
  if (n == INT32_MIN && last_code == BITNET_ERROR_PROMPT && last_error.rfind("bitnet_session_feed", 0) != 0)
    last_error = "bitnet_session_feed: " + last_error;
  return n == INT32_MIN ? last_code : n;
}

char* bitnet_session_generate(BitNetSession* session, const BitNetGenerateParams* params) {
  if (!session || !params) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_session_generate: session and params must not be NULL");
    return nullptr;
  }
  if (!valid_params("bitnet_session_generate", *params)) return nullptr;
  if (session->history.empty()) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT,
              "bitnet_session_generate: the session is empty (bitnet_session_feed first)");
    return nullptr;
  }
  return guarded(
      [&]() -> char* {
        const std::lock_guard<std::mutex> one_at_a_time(session->model->busy);
        std::vector<int32_t>& h = session->history;
        auto gen = session->model->model->pull_continued(h, static_cast<int32_t>(h.size() - 1), params->max_tokens,
                                                         sampler_of(*params), session->seq, params->lookup);
        std::string text, piece;
        while (gen->next(piece)) text += piece;
        // What was generated stays, and the stop token that ended it: the cache holds
        // all of it but the last token, as after a feed.
        const bitnetc::rt::Generation& g = gen->generation();
        h.insert(h.end(), g.tokens.begin(), g.tokens.end());
        if (g.stopped) h.push_back(g.stop_token);
        return copy_string(text);
      },
      nullptr);
}

int bitnet_session_n_past(BitNetSession* session) {
  if (!session) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_session_n_past: session must not be NULL");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  return static_cast<int>(session->history.size());
}

void bitnet_session_reset(BitNetSession* session) {
  if (!session) return;
  const std::lock_guard<std::mutex> one_at_a_time(session->model->busy);
  session->history.clear();
  session->model->model->release(session->seq);
}

void bitnet_session_free(BitNetSession* session) {
  if (!session) return;
  {
    const std::lock_guard<std::mutex> one_at_a_time(session->model->busy);
    session->model->model->release(session->seq);
    session->model->sequence_used[session->seq] = false;
  }
  delete session;
}

}  // extern "C"

namespace {

// The batch calls' shared body: checks, runs the batch beside any open streams and
// sessions, and hands each generation to `take` (which may throw std::bad_alloc).
int run_batch(const char* fn, BitNetModel* model, int n, const char* const* prompts, const BitNetGenerateParams* params,
              const void* outputs, const std::function<void(const std::vector<bitnetc::rt::Generation>&)>& take) {
  if (!model || n < 0 || (n > 0 && (!prompts || !params || !outputs))) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT,
              std::string(fn) + ": model, prompts, params and outputs must not be NULL, n not negative");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  for (int i = 0; i < n; ++i) {
    if (!prompts[i]) {
      set_error(BITNET_ERROR_INVALID_ARGUMENT, std::string(fn) + ": prompts[" + std::to_string(i) + "] is NULL");
      return BITNET_ERROR_INVALID_ARGUMENT;
    }
    if (!valid_params((std::string(fn) + ": params[" + std::to_string(i) + "]").c_str(), params[i]))
      return BITNET_ERROR_INVALID_ARGUMENT;
  }
  const int rc = guarded(
      [&]() -> int {
        // Every prompt joins the engine (a bad one cancels those before it), then each
        // is waited for: they run together, and beside other threads' calls.
        std::vector<std::shared_ptr<EngineCall>> calls;
        std::vector<uint64_t> ids;
        for (int i = 0; i < n; ++i) {
          bitnetc::rt::SequenceRequest r;
          r.prompt = prompts[i];
          r.options = options_of(*model, params[i]);
          try {
            calls.push_back(submit_call(*model, std::move(r), false, &ids.emplace_back()));
          } catch (const std::exception& e) {
            for (uint64_t id : ids) engine_of(*model).cancel(id);
            throw bitnetc::rt::GenerateError("prompt " + std::to_string(i) + ": " + e.what());
          }
        }
        std::vector<bitnetc::rt::Generation> out;
        for (const auto& call : calls) out.push_back(finish_call(fn, *call));
        take(out);
        return BITNET_OK;
      },
      INT32_MIN);
  if (rc == INT32_MIN && last_code == BITNET_ERROR_PROMPT) last_error = std::string(fn) + ": " + last_error;
  return rc == INT32_MIN ? last_code : rc;
}

}  // namespace

extern "C" {

int bitnet_generate_batch(BitNetModel* model, int n, const char* const* prompts, const BitNetGenerateParams* params,
                          char** outputs) {
  return run_batch("bitnet_generate_batch", model, n, prompts, params, outputs,
                   [&](const std::vector<bitnetc::rt::Generation>& out) {
                     std::vector<char*> texts;
                     for (const auto& g : out) {
                       texts.push_back(copy_string(g.text));
                       if (!texts.back()) {
                         for (char* t : texts) std::free(t);
                         throw std::bad_alloc();
                       }
                     }
                     std::copy(texts.begin(), texts.end(), outputs);
                   });
}

int bitnet_generate_batch_tokens(BitNetModel* model, int n, const char* const* prompts,
                                 const BitNetGenerateParams* params, int32_t** tokens, int* n_tokens) {
  if (n > 0 && !n_tokens) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_generate_batch_tokens: n_tokens must not be NULL");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  return run_batch("bitnet_generate_batch_tokens", model, n, prompts, params, tokens,
                   [&](const std::vector<bitnetc::rt::Generation>& out) {
                     std::vector<int32_t*> ids;
                     for (const auto& g : out) {
                       ids.push_back(static_cast<int32_t*>(std::malloc(std::max<size_t>(1, g.tokens.size()) * 4)));
                       if (!ids.back()) {
                         for (int32_t* t : ids) std::free(t);
                         throw std::bad_alloc();
                       }
                       std::copy(g.tokens.begin(), g.tokens.end(), ids.back());
                     }
                     for (size_t i = 0; i < out.size(); ++i)
                       tokens[i] = ids[i], n_tokens[i] = static_cast<int>(out[i].tokens.size());
                   });
}

const char* bitnet_chat_template(BitNetModel* model) {
  if (!model) return nullptr;
  const bitnetc::rt::ChatTemplate t = model->model->tokenizer().vocab().chat_template;
  return t == bitnetc::rt::ChatTemplate::None ? nullptr : bitnetc::rt::chat_template_name(t);
}

char* bitnet_chat_apply(BitNetModel* model, const BitNetChatMessage* messages, int n, int add_assistant) {
  std::vector<bitnetc::rt::ChatMessage> msgs;
  if (!chat_messages("bitnet_chat_apply", model, messages, n, msgs)) return nullptr;
  return guarded(
      [&]() {
        return copy_string(bitnetc::rt::apply_chat_template(model->model->tokenizer().vocab().chat_template, msgs,
                                                            add_assistant != 0));
      },
      static_cast<char*>(nullptr));
}

char* bitnet_chat(BitNetModel* model, const BitNetChatMessage* messages, int n, const BitNetGenerateParams* params) {
  std::vector<bitnetc::rt::ChatMessage> msgs;
  if (!chat_messages("bitnet_chat", model, messages, n, msgs)) return nullptr;
  if (!params) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_chat: params must not be NULL");
    return nullptr;
  }
  if (!valid_params("bitnet_chat", *params)) return nullptr;
  char* text = guarded(
      [&]() -> char* {
        bitnetc::rt::SequenceRequest r;
        r.prompt_tokens = bitnetc::rt::chat_tokens(model->model->tokenizer(), msgs, true);
        if (r.prompt_tokens.empty()) throw bitnetc::rt::GenerateError("the conversation is empty");
        r.options = options_of(*model, *params);
        return copy_string(finish_call("bitnet_chat", *submit_call(*model, std::move(r), false)).text);
      },
      nullptr);
  if (!text && last_code == BITNET_ERROR_PROMPT && last_error.rfind("bitnet_chat", 0) != 0)
    last_error = "bitnet_chat: " + last_error;
  return text;
}

int bitnet_tokenize(BitNetModel* model, const char* text, int add_bos, int parse_special, int32_t* tokens, int n_max) {
  if (!model || !text || n_max < 0 || (n_max > 0 && !tokens)) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT,
              "bitnet_tokenize: model and text must not be NULL, n_max not negative, tokens not NULL when n_max > 0");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  const int n = guarded(
      [&]() -> int {
        const std::vector<int32_t> ids = model->model->tokenizer().encode(text, add_bos != 0, parse_special != 0);
        if (ids.size() > static_cast<size_t>(INT32_MAX)) throw std::length_error("too many tokens");
        std::copy_n(ids.begin(), std::min(ids.size(), static_cast<size_t>(n_max)), tokens);
        return static_cast<int>(ids.size());
      },
      INT32_MIN);
  if (n == INT32_MIN && last_code == BITNET_ERROR_PROMPT) last_error = "bitnet_tokenize: " + last_error;
  return n == INT32_MIN ? last_code : n;
}

char* bitnet_detokenize(BitNetModel* model, const int32_t* tokens, int n) {
  if (!model || n < 0 || (n > 0 && !tokens)) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT,
              "bitnet_detokenize: model must not be NULL, n not negative, tokens not NULL");
    return nullptr;
  }
  const int32_t vocab = model->model->tokenizer().n_tokens();
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_detokenize: tokens[" + std::to_string(i) +
                                                   "] = " + std::to_string(tokens[i]) +
                                                   " is not in the vocabulary of " + std::to_string(vocab));
      return nullptr;
    }
  return guarded(
      [&]() { return copy_string(model->model->tokenizer().detokenize(std::vector<int32_t>(tokens, tokens + n))); },
      static_cast<char*>(nullptr));
}

int bitnet_token_to_piece(BitNetModel* model, int32_t token, char* buf, int len) {
  if (!model || len < 0 || (len > 0 && !buf)) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT,
              "bitnet_token_to_piece: model must not be NULL, buf not NULL when len > 0");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  if (token < 0 || token >= model->model->tokenizer().n_tokens()) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_token_to_piece: token " + std::to_string(token) +
                                                 " is not in the vocabulary of " +
                                                 std::to_string(model->model->tokenizer().n_tokens()));
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  clear_error();
  const std::string bytes = model->model->tokenizer().token_bytes(token);
  if (len > 0) {
    const size_t n = std::min(bytes.size(), static_cast<size_t>(len - 1));
    std::memcpy(buf, bytes.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int>(bytes.size());
}

int bitnet_vocab_size(BitNetModel* model) {
  if (!model) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_vocab_size: model must not be NULL");
    return BITNET_ERROR_INVALID_ARGUMENT;
  }
  return model->model->tokenizer().n_tokens();
}

int32_t bitnet_token_bos(BitNetModel* model) { return model ? model->model->tokenizer().vocab().bos : -1; }
int32_t bitnet_token_eos(BitNetModel* model) { return model ? model->model->tokenizer().vocab().eos : -1; }
int32_t bitnet_token_eot(BitNetModel* model) { return model ? model->model->tokenizer().vocab().eot : -1; }

char* bitnet_model_info_json(BitNetModel* model) {
  if (!model) {
    set_error(BITNET_ERROR_INVALID_ARGUMENT, "bitnet_model_info_json: model must not be NULL");
    return nullptr;
  }
  return guarded(
      [&]() -> char* {
        using bitnetc::rt::json_escape;
        const bitnetc::rt::CompiledModel& m = *model->model;
        const bitnetc::ir::Graph& g = m.graph();
        uint64_t params = 0;
        for (const auto& t : g.ternary) params += static_cast<uint64_t>(t.w.rows * t.w.cols);
        for (const auto& d : g.dense) params += static_cast<uint64_t>(d.rows * d.cols);
        int n_head = 0;
        for (const auto& op : g.ops)
          if (op.kind == bitnetc::ir::OpKind::Attention) n_head = op.n_head;
        int64_t n_ff = 0;
        for (const auto& op : g.ops)
          if (op.kind == bitnetc::ir::OpKind::GatedAct) n_ff = g.values[op.output].size;
        const auto& v = m.tokenizer().vocab();
        char fp[32];
        std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(m.fingerprint()));
        std::string s =
            "{\"architecture\":\"" + json_escape(g.name) + "\",\"n_layer\":" + std::to_string(g.n_layer) +
            ",\"n_embd\":" + std::to_string(g.n_embd) + ",\"n_ff\":" + std::to_string(n_ff) +
            ",\"n_head\":" + std::to_string(n_head) + ",\"n_head_kv\":" + std::to_string(g.n_head_kv) +
            ",\"head_dim\":" + std::to_string(g.head_dim) + ",\"n_ctx\":" + std::to_string(g.n_ctx) +
            ",\"n_vocab\":" + std::to_string(m.tokenizer().n_tokens()) + ",\"n_params\":" + std::to_string(params) +
            ",\"target\":\"" + json_escape(bitnetc_target_name) + "\",\"device\":\"" + json_escape(m.device()) +
            "\",\"chat_template\":\"" + bitnetc::rt::chat_template_name(v.chat_template) +
            "\",\"bos\":" + std::to_string(v.bos) + ",\"eos\":" + std::to_string(v.eos) +
            ",\"eot\":" + std::to_string(v.eot) + ",\"max_streams\":" + std::to_string(m.max_sequences() - kCallSlots) +
            ",\"fingerprint\":\"" + fp + "\"";
        // The one-call generations' engine: how many run and wait now, forward steps so far.
        bitnetc::rt::Scheduler::Stats st;
        if (const bitnetc::rt::Scheduler* e = model->engine_running.load()) st = e->stats();
        s += ",\"engine\":{\"slots\":" + std::to_string(kCallSlots) + ",\"active\":" + std::to_string(st.active) +
             ",\"queued\":" + std::to_string(st.queued) + ",\"steps\":" + std::to_string(st.steps) +
             ",\"generated_tokens\":" + std::to_string(st.generated_tokens) +
             ",\"lookup_drafted\":" + std::to_string(st.drafted) +
             ",\"lookup_accepted\":" + std::to_string(st.accepted) + "}}";
        return copy_string(s);
      },
      nullptr);
}

uint64_t bitnet_get_last_seed(void) { return last_seed; }

void bitnet_free_string(char* s) { std::free(s); }

const char* bitnet_get_last_error(void) { return last_error.c_str(); }

int bitnet_get_last_error_code(void) { return last_code; }

}  // extern "C"
