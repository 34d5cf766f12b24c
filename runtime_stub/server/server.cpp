#include "server.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "chat.h"
#include "engine.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace bitnetc::rt {

namespace {

using nlohmann::json;
using clock = std::chrono::steady_clock;

// An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
struct HttpError : std::runtime_error {
  int status;
  std::string type, param;
  HttpError(int s, const std::string& message, std::string p = "", std::string t = "")
      : std::runtime_error(message),
        status(s),
        type(t.empty() ? (s >= 500 ? "server_error" : "invalid_request_error") : std::move(t)),
        param(std::move(p)) {}
};

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                const std::string& param) {
  res.status = status;
  json e = {
      {"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}, {"code", status}};
  res.set_content(dump(json{{"error", e}}), "application/json");
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- request fields ------------------------------------------------------------------------

json parse_body(const httplib::Request& req) {
  try {
    json j = json::parse(req.body);
    if (!j.is_object()) throw HttpError(400, "the request body must be a JSON object");
    return j;
  } catch (const json::parse_error& e) {
    throw HttpError(400, "the request body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  }
}

std::string shortest(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A number field, or `fallback` when absent or null; out of [lo, hi] is an error naming it.
double number_field(const json& body, const char* name, double fallback, double lo, double hi) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw HttpError(400, std::string("'") + name + "' must be a number", name);
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi))
    throw HttpError(400, std::string("'") + name + "' must be from " + shortest(lo) + " to " + shortest(hi), name);
  return v;
}

int64_t integer_field(const json& body, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) throw HttpError(400, std::string("'") + name + "' must be an integer", name);
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi)
    throw HttpError(400, std::string("'") + name + "' must be from " + std::to_string(lo) + " to " + std::to_string(hi),
                    name);
  return v;
}

bool bool_field(const json& body, const char* name, bool fallback) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw HttpError(400, std::string("'") + name + "' must be true or false", name);
  return it->get<bool>();
}

// `stop`: a string or a list of strings.
std::vector<std::string> stop_strings(const json& body) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  std::vector<std::string> out;
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const json& s : *it) {
      if (!s.is_string()) throw HttpError(400, "'stop' must be a string or a list of strings", "stop");
      out.push_back(s.get<std::string>());
    }
  } else {
    throw HttpError(400, "'stop' must be a string or a list of strings", "stop");
  }
  std::erase_if(out, [](const std::string& s) { return s.empty(); });
  return out;
}

// The sampling fields of OpenAI's and llama-server's requests, with llama-server's
// defaults; a request without a seed gets a fresh one.
SamplerParams sampling_fields(const json& body) {
  SamplerParams p;
  p.temperature = static_cast<float>(number_field(body, "temperature", 0.8, 0, 100));
  p.top_k = static_cast<int32_t>(integer_field(body, "top_k", 40, 0, 1 << 30));
  p.top_p = static_cast<float>(number_field(body, "top_p", 0.95, 0, 1));
  p.min_p = static_cast<float>(number_field(body, "min_p", 0.05, 0, 1));
  const double rp = number_field(body, "repetition_penalty", 1.0, 0.01, 100);
  p.repeat_penalty = static_cast<float>(number_field(body, "repeat_penalty", rp, 0.01, 100));
  const int64_t seed = integer_field(body, "seed", -1, -1, INT64_MAX);
  p.seed =
      seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}();
  return p;
}

// llama-server's "timings" of a generation, with its speculative decoding's draft
// counts (here lookup decoding's).
json timings(const Generation& g) {
  const double prompt_ms = g.prompt_seconds * 1e3, predicted_ms = g.decode_seconds * 1e3;
  const auto per_second = [](size_t n, double ms) { return ms > 0 ? n * 1e3 / ms : 0.0; };
  return json{{"prompt_n", g.prompt_tokens.size()},
              {"prompt_ms", prompt_ms},
              {"prompt_per_second", per_second(g.prompt_tokens.size(), prompt_ms)},
              {"predicted_n", g.tokens.size()},
              {"predicted_ms", predicted_ms},
              {"predicted_per_second", per_second(g.tokens.size(), predicted_ms)},
              {"draft_n", g.drafted},
              {"draft_n_accepted", g.accepted}};
}

// ---- one request's text, from the scheduler's thread to the connection's ----------------

// The pieces a request produces, stop strings applied: text that could still turn out
// to begin a stop string is held back until it cannot.
struct Channel {
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::string> pieces;  // printable, not yet sent
  std::string text;                // every piece so far
  std::string held;                // the tail that may begin a stop string
  std::vector<std::string> stops;
  bool done = false, cancelled = false, matched_stop = false;
  uint64_t id = 0;
  Generation g;

  // Takes generated text (the scheduler's thread); false ends the generation.
  bool take(std::string_view piece) {
    std::lock_guard<std::mutex> lock(m);
    held += piece;
    size_t cut = std::string::npos;
    for (const std::string& s : stops) cut = std::min(cut, held.find(s));
    if (cut != std::string::npos) {  // a stop string: the text ends before it
      emit(held.substr(0, cut));
      held.clear();
      matched_stop = true;
      return false;
    }
    size_t keep = 0;  // the longest tail of held that begins some stop string
    for (const std::string& s : stops)
      for (size_t k = std::min(s.size() - 1, held.size()); k > keep; --k)
        if (held.compare(held.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
    emit(held.substr(0, held.size() - keep));
    held.erase(0, held.size() - keep);
    return true;  // a client that left is cancelled (Scheduler::cancel), not ended here
  }
  void finish(Generation& gen, bool was_cancelled) {
    std::lock_guard<std::mutex> lock(m);
    if (!matched_stop) emit(held);
    held.clear();
    g = std::move(gen);
    done = true;
    cancelled = was_cancelled;
    cv.notify_all();
  }
  void emit(const std::string& s) {  // with m held
    if (s.empty()) return;
    pieces.push_back(s);
    text += s;
    cv.notify_all();
  }
  // "stop" (a stop token or string) or "length" (max tokens, or the context is full).
  std::string finish_reason() const { return g.stopped || matched_stop ? "stop" : "length"; }
};

// ---- the server ------------------------------------------------------------------------------

class Server {
 public:
  Server(CompiledModel& model, const ServerOptions& o)
      : model_(model),
        o_(o),
        scheduler_(model.forward_pass(), model.tokenizer(), engine_options(o)),
        started_(clock::now()) {}

  int run();

 private:
  enum class Api { Completions, Chat, Native };

  static EngineOptions engine_options(const ServerOptions& o) {
    EngineOptions e;
    e.slots = o.slots;
    return e;
  }

  void handle_generate(const httplib::Request& req, httplib::Response& res, Api api);
  void route(httplib::Server& svr);
  std::string model_name() const { return model_.graph().name; }
  std::string metrics() const;
  void count_status(int status) {
    std::lock_guard<std::mutex> lock(status_mutex_);
    ++statuses_[status];
  }

  CompiledModel& model_;
  ServerOptions o_;
  Scheduler scheduler_;
  clock::time_point started_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<int> open_streams_{0};
  mutable std::mutex status_mutex_;
  std::map<int, uint64_t> statuses_;
};

void Server::handle_generate(const httplib::Request& req, httplib::Response& res, Api api) {
  const json body = parse_body(req);
  const Tokenizer& tok = model_.tokenizer();
  SequenceRequest r;
  // The prompt: text (completions), or the messages rendered by the chat template.
  if (api == Api::Chat) {
    const auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty())
      throw HttpError(400, "'messages' must be a non-empty list of {role, content}", "messages");
    const ChatTemplate tmpl = o_.chat_template.value_or(tok.vocab().chat_template);
    if (tmpl == ChatTemplate::None)
      throw HttpError(400,
                      "this model (" + model_name() +
                          ") has no chat template; use /v1/completions, or start the server with --chat-template",
                      "messages");
    std::vector<ChatMessage> messages;
    for (const json& m : *it) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        throw HttpError(400, "every message needs a 'role' string", "messages");
      std::string content;
      const json& c = m.contains("content") ? m["content"] : json(nullptr);
      if (c.is_string()) {
        content = c.get<std::string>();
      } else if (c.is_array()) {  // content parts: their text, in order
        for (const json& part : c)
          if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
            content += part["text"].get<std::string>();
      } else if (!c.is_null()) {
        throw HttpError(400, "a message's 'content' must be a string or a list of parts", "messages");
      }
      messages.push_back({m["role"].get<std::string>(), content});
    }
    r.prompt_tokens = chat_tokens(tok, tmpl, messages, true);  // contents never parsed as control tokens
  } else {
    const auto it = body.find(api == Api::Native ? "prompt" : "prompt");
    if (it == body.end()) throw HttpError(400, "'prompt' is required", "prompt");
    if (it->is_string()) {
      r.prompt = it->get<std::string>();
    } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
      r.prompt = (*it)[0].get<std::string>();
    } else if (it->is_array() && !it->empty() &&
               std::all_of(it->begin(), it->end(), [](const json& t) { return t.is_number_integer(); })) {
      for (const json& t : *it) r.prompt_tokens.push_back(t.get<int32_t>());
    } else {
      throw HttpError(400, "'prompt' must be a string (or a list of token ids)", "prompt");
    }
    if (r.prompt.empty() && r.prompt_tokens.empty() && !tok.vocab().add_bos)
      throw HttpError(400, "'prompt' is empty", "prompt");
  }
  const SamplerParams sampling = sampling_fields(body);
  // max_tokens (OpenAI; 16 for completions, the rest of the context for chat) or n_predict.
  const int64_t room = model_.n_ctx();
  const char* limit_name = api == Api::Native ? "n_predict" : "max_tokens";
  int64_t limit = integer_field(body, limit_name, api == Api::Completions ? 16 : -1, -1, INT32_MAX);
  if (api != Api::Native && body.contains("max_completion_tokens"))
    limit = integer_field(body, "max_completion_tokens", limit, -1, INT32_MAX);
  r.options = model_.generate_options(static_cast<int32_t>(limit < 0 ? room : std::min(limit, room)), sampling);
  if (bool_field(body, "ignore_eos", false)) r.options.stop_tokens.clear();  // llama-server's field (benchmarks)
  // Lookup decoding's drafts at most (GenerateOptions::lookup): the same tokens, fewer
  // steps when the text repeats its context; the server's --lookup when absent.
  r.options.lookup = static_cast<int32_t>(integer_field(body, "lookup", o_.lookup, 0, kMaxLookup));
  const bool stream = bool_field(body, "stream", false);
  // OpenAI's stream_options.include_usage: a last chunk, before [DONE], with the usage.
  bool include_usage = false;
  if (const auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!so->is_object()) throw HttpError(400, "'stream_options' must be an object", "stream_options");
    include_usage = bool_field(*so, "include_usage", false);
  }
  auto ch = std::make_shared<Channel>();
  ch->stops = stop_strings(body);
  r.on_text = [ch](std::string_view piece) { return ch->take(piece); };

  // A full queue is a 503 (the client retries); else the request joins it.
  const Scheduler::Stats st = scheduler_.stats();
  if (static_cast<size_t>(st.active) + st.queued >= static_cast<size_t>(o_.slots) + static_cast<size_t>(o_.queue)) {
    res.set_header("Retry-After", "1");
    throw HttpError(503,
                    "all " + std::to_string(o_.slots) + " slots are busy and " + std::to_string(st.queued) +
                        " requests wait; retry later",
                    "", "server_busy");
  }
  try {
    ch->id = scheduler_.submit(std::move(r), [ch](Generation& g, bool cancelled) { ch->finish(g, cancelled); });
  } catch (const TokenizerError& e) {
    throw HttpError(400, std::string("the prompt: ") + e.what(), api == Api::Chat ? "messages" : "prompt");
  } catch (const GenerateError& e) {  // longer than the context, or an unknown token id
    throw HttpError(400, e.what(), api == Api::Chat ? "messages" : "prompt", "context_length_exceeded");
  }

  const std::string id = std::string(api == Api::Chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
  const int64_t created = unix_time();
  const std::string name = model_name();
  auto usage = [](const Generation& g) {
    return json{{"prompt_tokens", g.prompt_tokens.size()},
                {"completion_tokens", g.tokens.size()},
                {"total_tokens", g.prompt_tokens.size() + g.tokens.size()}};
  };
  // The body of a chunk (streaming) or of the answer, in the endpoint's shape.
  auto chunk = [=](const std::string& text, const json& finish, bool first) {
    if (api == Api::Native) return json{{"content", text}, {"stop", false}};
    json choice = {{"index", 0}, {"finish_reason", finish}};
    if (api == Api::Chat) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      if (!text.empty() || finish.is_null()) delta["content"] = text;
      choice["delta"] = delta;
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    return json{{"id", id},
                {"object", api == Api::Chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", name},
                {"choices", json::array({choice})}};
  };
  auto native_final = [=](const Channel& c) {
    return json{{"content", ""},
                {"stop", true},
                {"model", name},
                {"tokens_predicted", c.g.tokens.size()},
                {"tokens_evaluated", c.g.prompt_tokens.size()},
                {"timings", timings(c.g)},
                {"stop_type", c.g.stopped      ? "eos"
                              : c.matched_stop ? "word"
                                               : "limit"}};
  };

  if (!stream) {
    std::unique_lock<std::mutex> lock(ch->m);
    ch->cv.wait(lock, [&] { return ch->done; });
    json answer;
    if (api == Api::Native) {
      answer = native_final(*ch);
      answer["content"] = ch->text;
    } else if (api == Api::Chat) {
      answer = {{"id", id},
                {"object", "chat.completion"},
                {"created", created},
                {"model", name},
                {"choices", json::array({{{"index", 0},
                                          {"message", {{"role", "assistant"}, {"content", ch->text}}},
                                          {"finish_reason", ch->finish_reason()}}})},
                {"usage", usage(ch->g)}};
    } else {
      answer = {
          {"id", id},
          {"object", "text_completion"},
          {"created", created},
          {"model", name},
          {"choices",
           json::array(
               {{{"index", 0}, {"text", ch->text}, {"logprobs", nullptr}, {"finish_reason", ch->finish_reason()}}})},
          {"usage", usage(ch->g)}};
    }
    res.set_content(dump(answer), "application/json");
    return;
  }

  // Server-Sent Events as the text comes (never a split character: the decoder streams
  // whole ones), then a final chunk (OpenAI's endpoints: and [DONE]).
  ++open_streams_;
  auto first = std::make_shared<bool>(true);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [=](size_t, httplib::DataSink& sink) {
        std::unique_lock<std::mutex> lock(ch->m);
        ch->cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return !ch->pieces.empty() || ch->done; });
        std::deque<std::string> pieces;
        pieces.swap(ch->pieces);
        const bool done = ch->done;
        lock.unlock();
        auto send = [&](const json& j) {
          const std::string event = "data: " + dump(j) + "\n\n";
          return sink.write(event.data(), event.size());
        };
        for (const std::string& p : pieces) {
          if (!send(chunk(p, nullptr, *first))) return false;  // the client went away
          *first = false;
        }
        if (!done) return sink.is_writable();
        if (api == Api::Native) {
          if (!send(native_final(*ch))) return false;
        } else {
          if (!send(chunk("", ch->finish_reason(), *first))) return false;
          if (include_usage) {
            json last = chunk("", nullptr, false);
            last["choices"] = json::array();
            last["usage"] = usage(ch->g);
            if (!send(last)) return false;
          }
          static const char kDone[] = "data: [DONE]\n\n";
          if (!sink.write(kDone, sizeof kDone - 1)) return false;
        }
        sink.done();
        return true;
      },
      [this, ch](bool) {
        // The connection ended: a client that left mid-stream frees its slot at the next step.
        bool running;
        {
          std::lock_guard<std::mutex> lock(ch->m);
          running = !ch->done;
        }
        if (running) scheduler_.cancel(ch->id);
        --open_streams_;
      });
}

std::string Server::metrics() const {
  const Scheduler::Stats st = scheduler_.stats();
  const double up = std::chrono::duration<double>(clock::now() - started_).count();
  std::string s =
      "# HELP bitnetc_requests_total HTTP requests answered, by status.\n# TYPE bitnetc_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(status_mutex_);
    for (const auto& [status, n] : statuses_)
      s += "bitnetc_requests_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
  }
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& value) {
    s +=
        std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + value + "\n";
  };
  metric("bitnetc_prompt_tokens_total", "counter", "Prompt tokens fed.", std::to_string(st.prompt_tokens));
  metric("bitnetc_generated_tokens_total", "counter", "Tokens generated (finished requests).",
         std::to_string(st.generated_tokens));
  metric("bitnetc_generations_total", "counter", "Generations that ended by themselves.", std::to_string(st.finished));
  metric("bitnetc_generations_cancelled_total", "counter", "Generations cancelled (clients that left, shutdown).",
         std::to_string(st.cancelled));
  metric("bitnetc_forward_steps_total", "counter", "Batched forward steps.", std::to_string(st.steps));
  metric("bitnetc_lookup_drafted_tokens_total", "counter", "Lookup decoding's draft tokens fed.",
         std::to_string(st.drafted));
  metric("bitnetc_lookup_accepted_tokens_total", "counter", "Lookup decoding's draft tokens kept.",
         std::to_string(st.accepted));
  metric("bitnetc_active_slots", "gauge", "Requests in a slot now.", std::to_string(st.active));
  metric("bitnetc_slots", "gauge", "Slots (sequences generated at once).", std::to_string(o_.slots));
  metric("bitnetc_queue_depth", "gauge", "Requests waiting for a slot.", std::to_string(st.queued));
  char tps[32];
  std::snprintf(tps, sizeof tps, "%.3f", up > 0 ? static_cast<double>(st.generated_tokens) / up : 0.0);
  metric("bitnetc_generated_tokens_per_second", "gauge", "Generated tokens per second since the start.", tps);
  return s;
}

void Server::route(httplib::Server& svr) {
  // Every handler answers errors in OpenAI's shape.
  auto guarded = [](auto&& fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const HttpError& e) {
        send_error(res, e.status, e.what(), e.type, e.param);
      } catch (const std::exception& e) {
        send_error(res, 500, e.what(), "server_error", "");
      }
    };
  };
  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  svr.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
            json m = {{"id", model_name()},
                      {"object", "model"},
                      {"created", 0},
                      {"owned_by", "bitnetc"},
                      {"meta", {{"n_ctx", model_.n_ctx()}, {"n_vocab", model_.tokenizer().n_tokens()}}}};
            res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
          }));
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  svr.Post("/v1/completions", guarded([this](const httplib::Request& q, httplib::Response& r) {
             handle_generate(q, r, Api::Completions);
           }));
  svr.Post("/v1/chat/completions",
           guarded([this](const httplib::Request& q, httplib::Response& r) { handle_generate(q, r, Api::Chat); }));
  svr.Post("/completion",
           guarded([this](const httplib::Request& q, httplib::Response& r) { handle_generate(q, r, Api::Native); }));
  svr.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
             const json body = parse_body(req);
             const auto it = body.find("content");
             if (it == body.end() || !it->is_string()) throw HttpError(400, "'content' must be a string", "content");
             const bool add_special = bool_field(body, "add_special", false);
             const bool parse_special = bool_field(body, "parse_special", false);
             std::vector<int32_t> ids;
             try {
               ids = model_.tokenizer().encode(it->get<std::string>(),
                                               add_special && model_.tokenizer().vocab().add_bos, parse_special);
             } catch (const TokenizerError& e) {
               throw HttpError(400, std::string("'content': ") + e.what(), "content");
             }
             res.set_content(dump(json{{"tokens", ids}}), "application/json");
           }));
  svr.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
             const json body = parse_body(req);
             const auto it = body.find("tokens");
             if (it == body.end() || !it->is_array()) throw HttpError(400, "'tokens' must be a list of ids", "tokens");
             std::vector<int32_t> ids;
             for (const json& t : *it) {
               if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= model_.tokenizer().n_tokens())
                 throw HttpError(400, "'tokens' holds " + dump(t) + ", which is not a token id of this model",
                                 "tokens");
               ids.push_back(t.get<int32_t>());
             }
             res.set_content(dump(json{{"content", model_.tokenizer().decode(ids)}}), "application/json");
           }));
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error
    const std::string message = res.status == 404   ? "no endpoint " + req.method + " " + req.path
                                : res.status == 413 ? "the request body is too large"
                                                    : "HTTP error";
    send_error(res, res.status, message, res.status == 404 ? "not_found_error" : "invalid_request_error", "");
  });
  svr.set_logger([this](const httplib::Request&, const httplib::Response& res) { count_status(res.status); });
  // --api-key: every endpoint but /health wants the bearer key.
  if (!o_.api_key.empty())
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.path == "/health" || req.get_header_value("Authorization") == "Bearer " + o_.api_key)
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, 401, "a valid API key is needed (Authorization: Bearer KEY)", "authentication_error", "");
      count_status(401);
      return httplib::Server::HandlerResponse::Handled;
    });
}

int Server::run() {
  // SIGINT and SIGTERM go to one thread (block_stop_signals() kept them from the others).
  const sigset_t stop_signals = block_stop_signals();

  httplib::Server svr;
  const int threads = std::max(16, 2 * o_.slots + 8);  // a connection per stream, with room for the rest
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // SO_REUSEADDR (a restart need not wait out TIME_WAIT) but not cpp-httplib's default
  // SO_REUSEPORT, with which a second server on a taken port would share its traffic.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  svr.set_payload_max_length(o_.max_body);
  const auto t = std::chrono::milliseconds(static_cast<int64_t>(o_.timeout_s * 1000));
  svr.set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count(), 0);
  svr.set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count(), 0);
  route(svr);
  const int port = o_.port == 0 ? svr.bind_to_any_port(o_.host) : (svr.bind_to_port(o_.host, o_.port) ? o_.port : -1);
  if (port < 0) {
    std::fprintf(stderr, "error: cannot listen on %s:%d\n", o_.host.c_str(), o_.port);
    return 1;
  }
  std::thread engine([this] { scheduler_.run_until_stopped(); });
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "stopping (signal %d): in-flight requests end\n", sig);
    scheduler_.stop();
    // Streams write their final events, then the listener closes.
    for (int i = 0; i < 500 && open_streams_ > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    svr.stop();
  });
  std::fprintf(stderr, "listening on http://%s:%d\n", o_.host.c_str(), port);
  std::fflush(stderr);
  const bool ok = svr.listen_after_bind();
  // The listener stopped (a signal, or it failed): make sure the stopper and engine end.
  if (!ok) pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  scheduler_.stop();
  engine.join();
  return ok ? 0 : 1;
}

}  // namespace

sigset_t block_stop_signals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

int run_server(CompiledModel& model, const ServerOptions& options) {
  Server server(model, options);
  return server.run();
}

}  // namespace bitnetc::rt
