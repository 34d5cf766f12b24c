// `OUT --server`: the compiled output as an OpenAI-compatible HTTP server (llama-server's
// conventions), over the engine's scheduler (engine/engine.h): every request takes a
// slot, and each forward step packs the prompt chunks and next tokens of every active
// slot, so concurrent clients share each pass over the weights. A request's tokens are
// those of a solo run with the same prompt and seed, whatever else is in flight.
//
// Endpoints: GET /health, /v1/models, /metrics (Prometheus text); POST /v1/completions,
// /v1/chat/completions (stream: Server-Sent Events), /completion (llama-server's native
// form), /tokenize, /detokenize. Errors in OpenAI's shape. HTTP itself is cpp-httplib's;
// JSON nlohmann-json's.
#pragma once

#include "platform.h"
#if !BITNETC_WASM
#include <signal.h>
#endif

#include <optional>
#include <string>

#include "chat.h"
#include "compiled_model.h"

namespace bitnetc::rt {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int slots = 4;              // sequences generated at once (-np)
  int queue = 64;             // requests waiting for a slot at most; more get 503
  double timeout_s = 600;     // a connection's read/write timeout
  std::string api_key;        // when set, every endpoint but /health wants "Authorization: Bearer KEY"
  size_t max_body = 1 << 20;  // request bodies past this get 413
  int32_t lookup = 0;         // lookup decoding's drafts for requests without a "lookup" field (--lookup)
  // What /v1/chat/completions renders messages with: the model's own template, or
  // --chat-template's; None answers chat requests with 400.
  std::optional<ChatTemplate> chat_template;
};

// Blocks SIGINT and SIGTERM in the calling thread and the threads it starts later, so
// that the server's own thread receives them: call before any thread starts (the CPU
// thread pool, a CUDA context). Returns the set.
#if !BITNETC_WASM
sigset_t block_stop_signals();
#endif

// Serves until SIGINT or SIGTERM: streams in flight then end with a final event, and the
// function returns 0. Prints "listening on http://HOST:PORT" on stderr once it accepts
// connections. Returns 1 (with the reason on stderr) when it cannot listen. (Not in a
// WebAssembly output, which has no sockets.)
int run_server(CompiledModel& model, const ServerOptions& options);

}  // namespace bitnetc::rt
