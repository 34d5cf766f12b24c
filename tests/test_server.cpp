// `OUT --server`: a compiled output as an OpenAI-compatible HTTP server. Every test starts
// the output on a free loopback port (--port 0) and talks to it with cpp-httplib's client,
// curl, or the official `openai` npm package; every request loop is bounded in count and
// time. What a request generates must equal a solo run of the executable (`OUT -p ...
// --json`) with the same prompt and seed, whatever else is in flight.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>

#include "httplib.h"
#include "support/target_runner.h"
#include "support/test_support.h"

using namespace bitnetc;
using namespace bitnetc::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A compiled output serving on a free loopback port, its stderr in a file. The process
// is stopped (SIGKILL after a bounded wait) when the object goes.
class ServerProcess {
 public:
  ServerProcess(const TargetOutput& o, const std::string& args, const ScratchDir& dir, const std::string& name) {
    log_ = dir.file(name + ".log");
    const std::string cmd =
        "exec " + o.run_prefix + shell_quote(o.exe) + " --server --port 0 " + args + " 2>" + shell_quote(log_);
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/bash", "bash", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // "listening on http://127.0.0.1:PORT" once it accepts connections (at most 120 s: qemu).
    for (int i = 0; i < 1200; ++i) {
      const std::string text = log();
      const size_t at = text.find("listening on http://");
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        port_ = std::stoi(text.substr(text.rfind(':', text.find('\n', at)) + 1));
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "the server exited before listening: " << text;
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "the server did not listen within 120 s: " << log();
  }
  ~ServerProcess() {
    if (pid_ > 0) stop(SIGKILL, 10);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool listening() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return read_text(log_); }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(10);
    c.set_read_timeout(120);
    c.set_write_timeout(30);
    return c;
  }

  // Sends `sig` and waits up to `timeout_s`: the exit status, or -1 (then it is killed).
  int stop(int sig = SIGTERM, double timeout_s = 30) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }

  // The resident set in KiB (/proc/PID/status VmRSS).
  long rss_kib() const {
    std::istringstream in(read_text("/proc/" + std::to_string(pid_) + "/status"));
    for (std::string line; std::getline(in, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = -1;
  std::string log_;
};

// A server-sent-events body as its events' data, in order.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> data;
  size_t at = 0;
  for (size_t end; (end = body.find("\n\n", at)) != std::string::npos; at = end + 2) {
    const std::string event = body.substr(at, end - at);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << "an event that is not a data line: " << event;
    data.push_back(event.substr(6));
  }
  EXPECT_EQ(at, body.size()) << "the body ends inside an event: " << body.substr(at);
  return data;
}

// A streamed request: the events' data as they come. `keep_reading` (optional) sees each
// event and returns false to drop the connection.
struct Streamed {
  int status = 0;
  std::vector<std::string> events;
};
Streamed stream_post(httplib::Client& c, const std::string& path, const json& body,
                     const std::function<bool(const std::string&)>& keep_reading = {}) {
  Streamed s;
  std::string pending;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& r) {
    s.status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    pending.append(data, n);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) == 0) event.erase(0, 6);
      s.events.push_back(event);
      if (keep_reading && !keep_reading(event)) return false;
    }
    return true;
  };
  c.send(req);
  return s;
}

// The text a completions stream carried, and its finish reason; checks the framing:
// chunks of text with a null finish_reason, then one with the reason, then [DONE].
std::pair<std::string, std::string> completion_stream_text(const std::vector<std::string>& events, bool chat) {
  std::string text, finish;
  EXPECT_GE(events.size(), 2u);
  if (events.size() < 2) return {};
  EXPECT_EQ(events.back(), "[DONE]");
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json j = json::parse(events[i]);
    EXPECT_EQ(j["object"], chat ? "chat.completion.chunk" : "text_completion");
    const json& choice = j["choices"][0];
    const bool last = i + 2 == events.size();
    EXPECT_EQ(choice["finish_reason"].is_null(), !last) << events[i];
    if (last) finish = choice["finish_reason"];
    if (chat && i == 0) EXPECT_EQ(choice["delta"]["role"], "assistant");
    if (chat && choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (!chat) text += choice["text"].get<std::string>();
  }
  return {text, finish};
}

json post_json(httplib::Client& c, const std::string& path, const json& body, int expected_status) {
  const auto r = c.Post(path, body.dump(), "application/json");
  EXPECT_TRUE(r) << path << ": no answer";
  if (!r) return json();
  EXPECT_EQ(r->status, expected_status) << path << " " << body.dump() << " -> " << r->body;
  return json::parse(r->body);
}

// The models every test serves, compiled once: the bundled TinyStories model (no chat
// template) and the 2B4T-architecture HF checkpoint (its chat template).
class Server : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    stories_ = new TargetOutput(compile_for((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(),
                                            "x86-64-avx2", "stories", *dir_));
    chat_ = new TargetOutput(
        compile_for((shared_dir() / "golden/hf-bitnet-tiny/packed").string(), "x86-64-avx2", "chat", *dir_));
  }
  static void TearDownTestSuite() {
    delete stories_;
    delete chat_;
    delete dir_;
  }

  // `OUT -p PROMPT -n N --json` with sampling flags: {prompt_tokens, tokens, text}.
  static json solo(const TargetOutput& o, const std::string& prompt, int n, const std::string& sampling) {
    const CommandResult r = run_command(o.run_prefix + shell_quote(o.exe) + " -p " + shell_quote(prompt) + " -n " +
                                            std::to_string(n) + " --json " + sampling,
                                        *dir_);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.status == 0 ? json::parse(r.out) : json();
  }

  static ScratchDir* dir_;
  static TargetOutput* stories_;
  static TargetOutput* chat_;
};
ScratchDir* Server::dir_ = nullptr;
TargetOutput* Server::stories_ = nullptr;
TargetOutput* Server::chat_ = nullptr;

const std::vector<std::string> kPrompts = {
    "Once upon a time",          "Lily wanted to play in the park", "The big dog",
    "One day, a little bird",    "Tom and Sue went to the sea",     "The sun was hot and",
    "There was a small red car", "Mom said, \"Let us bake a cake"};

}  // namespace

// Eight clients at once, with different prompts, seeds, temperatures and endpoints, each
// get exactly their solo run's text; usage counts the solo run's tokens. The server
// drafts (--lookup 4) for all but two, which turn it off ("lookup": 0): the same texts.
TEST_F(Server, ConcurrentRequestsEqualTheirSoloRuns) {
  ServerProcess server(*stories_, "-np 4 -t 2 --lookup 4", *dir_, "concurrent");
  ASSERT_TRUE(server.listening());
  constexpr int kMax = 40;
  std::vector<json> expected(kPrompts.size());
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const std::string sampling = i % 2 ? "--temp 0.9 -s " + std::to_string(100 + i) : "--temp 0";
    expected[i] = solo(*stories_, kPrompts[i], kMax, sampling);
  }
  std::vector<std::string> got(kPrompts.size()), finish(kPrompts.size());
  std::vector<json> usage(kPrompts.size()), timings(kPrompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < kPrompts.size(); ++i)
    clients.emplace_back([&, i] {
      httplib::Client c = server.client();
      json body = {{"prompt", kPrompts[i]}, {"max_tokens", kMax}, {"model", "whatever"}};
      body["temperature"] = i % 2 ? 0.9 : 0.0;
      if (i % 2) body["seed"] = 100 + i;
      if (i % 4 == 0) body["lookup"] = 0;
      // Four streamed (OpenAI's and llama-server's forms), four whole.
      if (i % 4 == 1) {
        body["stream"] = true;
        std::tie(got[i], finish[i]) = completion_stream_text(stream_post(c, "/v1/completions", body).events, false);
      } else if (i % 4 == 3) {
        body.erase("max_tokens");
        body["n_predict"] = kMax;
        body["stream"] = true;
        const Streamed s = stream_post(c, "/completion", body);
        for (const std::string& e : s.events) {
          const json j = json::parse(e);
          got[i] += j["content"].get<std::string>();
          if (j["stop"] == true) {
            finish[i] = j["stop_type"] == "limit" ? "length" : "stop";
            timings[i] = j["timings"];
          }
        }
      } else {
        const json j = post_json(c, "/v1/completions", body, 200);
        got[i] = j["choices"][0]["text"];
        finish[i] = j["choices"][0]["finish_reason"];
        usage[i] = j["usage"];
      }
    });
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    EXPECT_EQ(got[i], expected[i]["text"]) << "request " << i << ": " << kPrompts[i];
    EXPECT_EQ(finish[i], expected[i]["tokens"].size() == kMax ? "length" : "stop") << i;
    if (!usage[i].is_null()) {
      EXPECT_EQ(usage[i]["prompt_tokens"], expected[i]["prompt_tokens"].size());
      EXPECT_EQ(usage[i]["completion_tokens"], expected[i]["tokens"].size());
      EXPECT_EQ(usage[i]["total_tokens"], expected[i]["prompt_tokens"].size() + expected[i]["tokens"].size());
    }
    if (!timings[i].is_null()) {  // llama-server's, with the drafts
      EXPECT_EQ(timings[i]["predicted_n"], expected[i]["tokens"].size()) << timings[i];
      EXPECT_LE(timings[i]["draft_n_accepted"].get<int>(), timings[i]["draft_n"].get<int>()) << timings[i];
    }
  }
  // The Prometheus text counts what was served.
  httplib::Client c = server.client();
  const auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("bitnetc_requests_total{status=\"200\"}"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("bitnetc_generations_total 8\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("bitnetc_slots 4\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("bitnetc_active_slots 0\n"), std::string::npos) << m->body;
  const std::string drafted_line = "\nbitnetc_lookup_drafted_tokens_total ";  // its sample, not its # HELP
  const size_t drafted = m->body.find(drafted_line);
  ASSERT_NE(drafted, std::string::npos) << m->body;
  EXPECT_GT(std::stol(m->body.substr(drafted + drafted_line.size())), 0) << m->body;
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// curl, a client nobody here wrote, sees well-formed server-sent events: data lines, a
// blank line after each, the finish reason on the last chunk, then [DONE]; stop strings
// end the text before them.
TEST_F(Server, StreamsAreWellFramedForCurl) {
  ServerProcess server(*stories_, "-np 2", *dir_, "curl");
  ASSERT_TRUE(server.listening());
  const json expected = solo(*stories_, "Once upon a time", 30, "--temp 0");
  auto curl = [&](const std::string& path, const json& body) {
    const CommandResult r = run_command("curl -sS -N --max-time 60 -H 'Content-Type: application/json' -d " +
                                            shell_quote(body.dump()) + " " + server.url() + path,
                                        *dir_);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  };
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0}, {"stream", true}};
  const auto [text, finish] = completion_stream_text(sse_data(curl("/v1/completions", body)), false);
  EXPECT_EQ(text, expected["text"]);
  EXPECT_EQ(finish, "length");

  // A stop string: the text up to it, finish_reason "stop", streamed or not.
  const std::string full = expected["text"];
  ASSERT_GT(full.size(), 12u);
  const std::string stop = full.substr(full.size() / 2, 4);
  json stopping = body;
  stopping["stop"] = json::array({"never-there", stop});
  const auto [cut, cut_finish] = completion_stream_text(sse_data(curl("/v1/completions", stopping)), false);
  EXPECT_EQ(cut, full.substr(0, full.find(stop)));
  EXPECT_EQ(cut_finish, "stop");
  stopping["stream"] = false;
  const json whole = json::parse(curl("/v1/completions", stopping));
  EXPECT_EQ(whole["choices"][0]["text"], full.substr(0, full.find(stop)));

  // stream_options.include_usage: one more chunk before [DONE], choices empty, the usage.
  json with_usage = body;
  with_usage["stream_options"] = {{"include_usage", true}};
  std::vector<std::string> events = sse_data(curl("/v1/completions", with_usage));
  ASSERT_GE(events.size(), 3u);
  const json usage_chunk = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage_chunk["choices"].empty()) << usage_chunk;
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], 30);
  EXPECT_EQ(usage_chunk["usage"]["prompt_tokens"], expected["prompt_tokens"].size());
  events.erase(events.end() - 2);
  EXPECT_EQ(completion_stream_text(events, false).first, expected["text"]);

  // ignore_eos (llama-server's, for benchmarks): generation goes on past the end of story.
  const json ends = solo(*stories_, "The end", 400, "--temp 0");
  const size_t story = ends["tokens"].size();
  ASSERT_LT(story, 390u) << "the story should end with EOS";
  const json past = json::parse(curl("/v1/completions", {{"prompt", "The end"},
                                                          {"max_tokens", story + 8},
                                                          {"temperature", 0},
                                                          {"ignore_eos", true}}));
  EXPECT_EQ(past["usage"]["completion_tokens"], story + 8);
  EXPECT_EQ(past["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(past["choices"][0]["text"].get<std::string>().rfind(ends["text"].get<std::string>(), 0), 0u);

  // llama-server's native stream: {"content", "stop": false} chunks, then "stop": true.
  const std::vector<std::string> native = sse_data(
      curl("/completion", {{"prompt", "Once upon a time"}, {"n_predict", 30}, {"temperature", 0}, {"stream", true}}));
  ASSERT_FALSE(native.empty());
  std::string native_text;
  for (size_t i = 0; i < native.size(); ++i) {
    const json j = json::parse(native[i]);
    EXPECT_EQ(j["stop"], i + 1 == native.size()) << native[i];
    native_text += j["content"].get<std::string>();
  }
  EXPECT_EQ(native_text, expected["text"]);
  EXPECT_EQ(json::parse(native.back())["tokens_predicted"], 30);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// Chat completions render the messages with the model's chat template (the 2B4T one:
// "User: ...<|eot_id|>Assistant: "), streamed or not; a message's content is never read
// as control tokens; a model without a template answers 400 naming it.
TEST_F(Server, ChatUsesTheModelsTemplate) {
  ServerProcess server(*chat_, "-np 2 -c 256", *dir_, "chat");
  ASSERT_TRUE(server.listening());
  const json expected = solo(*chat_, "User: Tell me a story<|eot_id|>Assistant: ", 12, "--temp 0");
  httplib::Client c = server.client();
  const json body = {
      {"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}}, {"max_tokens", 12}, {"temperature", 0}};
  const json whole = post_json(c, "/v1/chat/completions", body, 200);
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(whole["choices"][0]["message"]["content"], expected["text"]);
  EXPECT_EQ(whole["usage"]["prompt_tokens"], expected["prompt_tokens"].size());
  json streamed_body = body;
  streamed_body["stream"] = true;
  const auto [text, finish] =
      completion_stream_text(stream_post(c, "/v1/chat/completions", streamed_body).events, true);
  EXPECT_EQ(text, expected["text"]);
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"]);
  // Content parts ([{type: text, text}]) are joined.
  json parts = body;
  parts["messages"][0]["content"] = {{{"type", "text"}, {"text", "Tell me "}}, {{"type", "text"}, {"text", "a story"}}};
  EXPECT_EQ(post_json(c, "/v1/chat/completions", parts, 200)["choices"][0]["message"]["content"], expected["text"]);

  // "<|eot_id|>" written in a message stays text: several tokens, not the one control token.
  auto prompt_tokens = [&](const std::string& content) {
    json b = body;
    b["messages"][0]["content"] = content;
    b["max_tokens"] = 1;
    return post_json(c, "/v1/chat/completions", b, 200)["usage"]["prompt_tokens"].get<int>();
  };
  const int plain = prompt_tokens("ab");
  const int literal_eot = prompt_tokens("a<|eot_id|>b");
  const json control = post_json(c, "/tokenize", {{"content", "a<|eot_id|>b"}, {"parse_special", true}}, 200);
  const json as_text = post_json(c, "/tokenize", {{"content", "a<|eot_id|>b"}}, 200);
  EXPECT_LT(control["tokens"].size(), as_text["tokens"].size());
  EXPECT_EQ(literal_eot - plain,
            static_cast<int>(as_text["tokens"].size()) -
                static_cast<int>(post_json(c, "/tokenize", {{"content", "ab"}}, 200)["tokens"].size()));
  const json round_trip = post_json(c, "/detokenize", {{"tokens", as_text["tokens"]}}, 200);
  EXPECT_EQ(round_trip["content"], "a<|eot_id|>b");
  EXPECT_EQ(server.stop(), 0) << server.log();

  ServerProcess plain_model(*stories_, "-np 1", *dir_, "no-template");
  ASSERT_TRUE(plain_model.listening());
  httplib::Client s = plain_model.client();
  const json e = post_json(s, "/v1/chat/completions", body, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("no chat template"), std::string::npos) << e;
  EXPECT_EQ(e["error"]["param"], "messages");
  const json models = json::parse(s.Get("/v1/models")->body);
  EXPECT_NE(e["error"]["message"].get<std::string>().find(models["data"][0]["id"].get<std::string>()),
            std::string::npos);
  EXPECT_EQ(plain_model.stop(), 0) << plain_model.log();

  // --chat-template gives a model without one (or overrides the model's) a template, as
  // llama-server's flag does: the reply is the solo run of the rendered conversation.
  ServerProcess chatml(*stories_, "-np 1 --chat-template chatml", *dir_, "chatml");
  ASSERT_TRUE(chatml.listening()) << chatml.log();
  httplib::Client cm = chatml.client();
  const json rendered =
      solo(*stories_, "<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n", 12, "--temp 0");
  const json reply = post_json(cm, "/v1/chat/completions", body, 200);
  EXPECT_EQ(reply["choices"][0]["message"]["content"], rendered["text"]);
  EXPECT_EQ(reply["usage"]["prompt_tokens"], rendered["prompt_tokens"].size());
}

// Every bad request gets an error in OpenAI's shape naming what is wrong, and the server
// keeps serving.
TEST_F(Server, BadRequestsGetOpenAiErrors) {
  ServerProcess server(*stories_, "-np 1 -c 64", *dir_, "errors");
  ASSERT_TRUE(server.listening());
  httplib::Client c = server.client();
  auto expect_error = [&](const std::string& path, const std::string& body, int status, const std::string& param,
                          const std::string& message_part) {
    const auto r = c.Post(path, body, "application/json");
    ASSERT_TRUE(r) << path << " " << body;
    EXPECT_EQ(r->status, status) << body << " -> " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r->body;
    const json& e = j["error"];
    EXPECT_TRUE(e["message"].is_string() && e["type"].is_string()) << r->body;
    EXPECT_EQ(e["code"], status) << r->body;
    if (!param.empty()) EXPECT_EQ(e["param"], param) << r->body;
    EXPECT_NE(e["message"].get<std::string>().find(message_part), std::string::npos) << r->body;
  };
  expect_error("/v1/completions", "{\"prompt\": \"hi\", ", 400, "", "at byte");
  expect_error("/v1/completions", "[1, 2]", 400, "", "JSON object");
  expect_error("/v1/completions", R"({"prompt": "hi", "temperature": "hot"})", 400, "temperature", "number");
  expect_error("/v1/completions", R"({"prompt": "hi", "top_p": 2})", 400, "top_p", "from 0 to 1");
  expect_error("/v1/completions", R"({"prompt": "hi", "temperature": -1})", 400, "temperature", "from");
  expect_error("/v1/completions", R"({"prompt": "hi", "max_tokens": 2.5})", 400, "max_tokens", "integer");
  expect_error("/v1/completions", R"({"prompt": "hi", "seed": "x"})", 400, "seed", "integer");
  expect_error("/v1/completions", R"({"prompt": "hi", "lookup": 65})", 400, "lookup", "from 0 to 64");
  expect_error("/v1/completions", R"({"prompt": "hi", "lookup": 1.5})", 400, "lookup", "integer");
  expect_error("/v1/completions", R"({"prompt": "hi", "stop": [1]})", 400, "stop", "string");
  expect_error("/v1/completions", R"({"prompt": "hi", "stream": "yes"})", 400, "stream", "true or false");
  expect_error("/v1/completions", R"({"max_tokens": 4})", 400, "prompt", "required");
  expect_error("/v1/completions", R"({"prompt": {"text": "hi"}})", 400, "prompt", "string");
  expect_error("/v1/completions", R"({"prompt": [1, 99999999]})", 400, "prompt", "99999999");
  expect_error("/v1/chat/completions", R"({"messages": []})", 400, "messages", "non-empty");
  expect_error("/tokenize", R"({"text": "hi"})", 400, "content", "string");
  expect_error("/detokenize", R"({"tokens": [1, -4]})", 400, "tokens", "-4");
  // Invalid UTF-8 inside a JSON string.
  expect_error("/v1/completions", "{\"prompt\": \"a\xff\xfe b\"}", 400, "", "JSON");
  // A prompt longer than the context (-c 64).
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "once upon a time ";
  expect_error("/v1/completions", json{{"prompt", long_prompt}}.dump(), 400, "prompt", "context");
  // A body over the limit (1 MiB).
  expect_error("/v1/completions", json{{"prompt", std::string(2 << 20, 'a')}}.dump(), 413, "", "too large");
  // An unknown endpoint.
  const auto missing = c.Get("/v1/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["code"], 404);

  // Unknown fields are ignored and `model` may be anything; the server still serves.
  const json ok = post_json(
      c, "/v1/completions",
      {{"prompt", "Once"}, {"max_tokens", 3}, {"model", "gpt-4o"}, {"logit_bias", {{"5", 1}}}, {"user", "u"}}, 200);
  EXPECT_EQ(ok["usage"]["completion_tokens"], 3);
  const auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// One slot and no queue: a second request while the first streams gets 503 with
// Retry-After; the client that then leaves mid-stream frees the slot within a step, and
// the server serves the next request correctly.
TEST_F(Server, BusySlotsAnswer503AndALeavingClientFreesItsSlot) {
  // The 2B4T-architecture model with its 128K vocabulary (slow to decode, and unlikely to
  // end by itself): its 256-token generation still runs while the 503 is asked for.
  ServerProcess server(*chat_, "-np 1 --queue 0 -t 1 -c 256", *dir_, "busy");
  ASSERT_TRUE(server.listening());
  std::atomic<bool> streaming{false}, release{false};
  std::thread first([&] {
    httplib::Client c = server.client();
    stream_post(c, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", -1}, {"stream", true}},
                [&](const std::string&) {
                  streaming = true;
                  // Hold the slot until the 503 is seen (at most 30 s), then leave.
                  for (int i = 0; i < 3000 && !release; ++i) std::this_thread::sleep_for(10ms);
                  return false;
                });
  });
  for (int i = 0; i < 3000 && !streaming; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(streaming);
  httplib::Client c = server.client();
  const auto busy = c.Post("/v1/completions", R"({"prompt": "Hi", "max_tokens": 2})", "application/json");
  release = true;
  first.join();
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 503) << busy->body;
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(busy->body)["error"]["code"], 503);

  // The slot frees up: the cancelled generation is counted, nothing is active.
  std::string metrics;
  for (int i = 0; i < 200; ++i) {
    metrics = c.Get("/metrics")->body;
    if (metrics.find("bitnetc_generations_cancelled_total 1\n") != std::string::npos &&
        metrics.find("bitnetc_active_slots 0\n") != std::string::npos)
      break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(metrics.find("bitnetc_generations_cancelled_total 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("bitnetc_active_slots 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("bitnetc_requests_total{status=\"503\"} 1\n"), std::string::npos) << metrics;
  const json expected = solo(*chat_, "The big dog", 8, "--temp 0");
  const json next =
      post_json(c, "/v1/completions", {{"prompt", "The big dog"}, {"max_tokens", 8}, {"temperature", 0}}, 200);
  EXPECT_EQ(next["choices"][0]["text"], expected["text"]);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// SIGTERM while clients stream: each stream ends with its final chunk and [DONE], and the
// server exits 0.
TEST_F(Server, SigtermEndsStreamsGracefully) {
  ServerProcess server(*chat_, "-np 2 -t 1 -c 256", *dir_, "sigterm");
  ASSERT_TRUE(server.listening());
  std::atomic<int> started{0};
  std::vector<Streamed> streams(2);
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c = server.client();
      bool counted = false;
      streams[i] = stream_post(c, "/v1/completions",
                               {{"prompt", kPrompts[i]}, {"max_tokens", -1}, {"stream", true}, {"seed", i}},
                               [&](const std::string&) {
                                 if (!counted) ++started;
                                 counted = true;
                                 // Slow readers: the streams are still going when SIGTERM comes.
                                 std::this_thread::sleep_for(20ms);
                                 return true;
                               });
    });
  for (int i = 0; i < 3000 && started < 2; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(started, 2);
  const int status = server.stop(SIGTERM, 30);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(status, 0) << server.log();
  EXPECT_NE(server.log().find("stopping"), std::string::npos) << server.log();
  for (const Streamed& s : streams) {
    EXPECT_EQ(s.status, 200);
    const auto [text, finish] = completion_stream_text(s.events, false);
    EXPECT_FALSE(finish.empty());
  }
}

// --api-key: every endpoint but /health wants "Authorization: Bearer KEY".
TEST_F(Server, ApiKeyGuardsEveryEndpointButHealth) {
  ServerProcess server(*stories_, "-np 1 --api-key s3cret", *dir_, "key");
  ASSERT_TRUE(server.listening());
  httplib::Client c = server.client();
  EXPECT_EQ(c.Get("/health")->status, 200);
  const auto none = c.Get("/v1/models");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body)["error"]["type"], "authentication_error");
  EXPECT_EQ(c.Post("/v1/completions", R"({"prompt": "Hi"})", "application/json")->status, 401);
  c.set_bearer_token_auth("wrong");
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  c.set_bearer_token_auth("s3cret");
  EXPECT_EQ(c.Get("/v1/models")->status, 200);
  EXPECT_EQ(post_json(c, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 2}}, 200)["usage"]["completion_tokens"],
            2);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// The flags are checked before anything loads.
TEST_F(Server, ServerFlagsAreChecked) {
  auto run = [&](const std::string& args) { return run_command(shell_quote(stories_->exe) + " " + args, *dir_); };
  const CommandResult combined = run("--server -p hi");
  EXPECT_EQ(combined.status, 2);
  EXPECT_NE(combined.err.find("does not combine"), std::string::npos) << combined.err;
  const CommandResult port = run("--server --port 70000");
  EXPECT_EQ(port.status, 2);
  EXPECT_NE(port.err.find("--port"), std::string::npos) << port.err;
  const CommandResult orphan = run("--api-key x -p hi");
  EXPECT_EQ(orphan.status, 2);
  EXPECT_NE(orphan.err.find("add --server"), std::string::npos) << orphan.err;
  const CommandResult timeout = run("--server --timeout nan");
  EXPECT_EQ(timeout.status, 2);
  EXPECT_NE(timeout.err.find("--timeout"), std::string::npos) << timeout.err;
  // A port already taken: a clear error, exit 1.
  ServerProcess first(*stories_, "-np 1", *dir_, "taken");
  ASSERT_TRUE(first.listening());
  const CommandResult taken = run("--server --port " + std::to_string(first.port()));
  EXPECT_EQ(taken.status, 1);
  EXPECT_NE(taken.err.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << taken.err;
}

// The official `openai` npm client (tests/server, installed from its lockfile by
// scripts/install-deps.sh): completions and chat, whole and streamed, equal solo runs.
TEST_F(Server, OfficialOpenAiClientGetsTheSoloText) {
  const std::string client_dir = std::string(BITNETC_SOURCE_DIR) + "/tests/server";
  ASSERT_TRUE(std::filesystem::exists(client_dir + "/node_modules/openai/package.json"))
      << "the openai package is not installed in " << client_dir << ": run scripts/install-deps.sh";
  ServerProcess server(*chat_, "-np 2 -c 256", *dir_, "openai");
  ASSERT_TRUE(server.listening());
  const CommandResult r = run_command("timeout 120 node " + shell_quote(client_dir + "/openai_client.mjs") + " " +
                                          server.url() + "/v1 'Once upon a time' 'Hello there' 10",
                                      *dir_);
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  const json got = json::parse(r.out);
  const json completion = solo(*chat_, "Once upon a time", 10, "--temp 0");
  const json chat = solo(*chat_, "User: Hello there<|eot_id|>Assistant: ", 10, "--temp 0");
  EXPECT_EQ(got["completion"], completion["text"]);
  EXPECT_EQ(got["completion_stream"], completion["text"]);
  EXPECT_EQ(got["completion_finish"], got["completion_stream_finish"]);
  EXPECT_EQ(got["completion_usage"]["completion_tokens"], completion["tokens"].size());
  EXPECT_EQ(got["chat"], chat["text"]);
  EXPECT_EQ(got["chat_stream"], chat["text"]);
  EXPECT_EQ(got["chat_role"], "assistant");
  EXPECT_EQ(got["chat_finish"], got["chat_stream_finish"]);
  EXPECT_EQ(got["chat_usage"]["prompt_tokens"], chat["prompt_tokens"].size());
  ASSERT_EQ(got["models"].size(), 1u);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// Load: 500 requests from 16 clients at once (at most 60 s) on 4 slots and a queue of 8:
// every answer is a 200 or an intended 503, and the server's memory stays flat.
TEST_F(Server, LoadLeavesNoErrorsAndFlatMemory) {
  ServerProcess server(*stories_, "-np 4 --queue 8 -t 2", *dir_, "load");
  ASSERT_TRUE(server.listening());
  constexpr int kRequests = 500, kClients = 16;
  std::atomic<int> next{0}, ok{0}, busy{0}, other{0};
  std::atomic<long> rss_warm{-1};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t)
    clients.emplace_back([&] {
      httplib::Client c = server.client();
      for (int i; (i = next++) < kRequests && std::chrono::steady_clock::now() < deadline;) {
        if (i == 100) rss_warm = server.rss_kib();  // after the pools and caches have grown
        const json body = {
            {"prompt", kPrompts[i % kPrompts.size()]}, {"max_tokens", 6}, {"seed", i}, {"stream", i % 3 == 0}};
        const auto r = c.Post("/v1/completions", body.dump(), "application/json");
        if (r && r->status == 200) {
          ++ok;
        } else if (r && r->status == 503) {
          ++busy;
          std::this_thread::sleep_for(20ms);  // a client's back-off (Retry-After says 1 s)
        } else {
          ++other;
          std::lock_guard<std::mutex> lock(failures_mutex);
          failures.push_back(r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error()));
        }
      }
    });
  for (std::thread& t : clients) t.join();
  const long rss_end = server.rss_kib();
  EXPECT_EQ(ok + busy + other, kRequests) << "not every request was sent within 60 s";
  EXPECT_EQ(other, 0) << failures.front();
  EXPECT_GT(ok, kRequests / 4);
  ASSERT_GT(rss_warm, 0);
  EXPECT_LT(rss_end - rss_warm, 8 * 1024) << "RSS grew from " << rss_warm << " KiB to " << rss_end << " KiB";
  std::printf("load: %d ok, %d busy (503), RSS %ld -> %ld KiB\n", ok.load(), busy.load(), rss_warm.load(), rss_end);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// The server of other targets' outputs: aarch64 under qemu, CUDA on the stand-in driver.
class ServerTargets : public testing::TestWithParam<std::string> {};

TEST_P(ServerTargets, AnswersAsItsSoloRun) {
  ScratchDir dir;
  const TargetOutput o =
      compile_for((shared_dir() / "models/tinystories-bitnet-3m/model.bin").string(), GetParam(), "m", dir);
  const CommandResult solo_run =
      run_command(o.run_prefix + shell_quote(o.exe) + " -p 'One day' -n 12 --temp 0.7 -s 3 --json", dir);
  ASSERT_EQ(solo_run.status, 0) << solo_run.err;
  const json expected = json::parse(solo_run.out);
  ServerProcess server(o, "-np 2", dir, "server");
  ASSERT_TRUE(server.listening());
  httplib::Client c = server.client();
  const json body = {{"prompt", "One day"}, {"max_tokens", 12}, {"temperature", 0.7}, {"seed", 3}};
  std::vector<json> answers(2);
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i)
    clients.emplace_back([&, i] {
      httplib::Client ci = server.client();
      answers[i] = post_json(ci, "/v1/completions", body, 200);
    });
  for (std::thread& t : clients) t.join();
  for (const json& a : answers) EXPECT_EQ(a["choices"][0]["text"], expected["text"]) << GetParam();
  json streamed = body;
  streamed["stream"] = true;
  EXPECT_EQ(completion_stream_text(stream_post(c, "/v1/completions", streamed).events, false).first, expected["text"]);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

INSTANTIATE_TEST_SUITE_P(Outputs, ServerTargets, testing::Values("aarch64-neon", "cuda-sm80"),
                         [](const testing::TestParamInfo<std::string>& info) { return test_name(info.param); });
