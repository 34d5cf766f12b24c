// What a WebAssembly output exports to its loader (model.mjs, runtime_stub/wasm/loader.mjs):
// the output's command line (the native executable's main, so `node model.mjs ...`
// prints what the native output prints) and a small library interface the loader's
// JavaScript API (load, generate, stream, tokenize, ...) is built on. One model, one
// generation at a time: the module is single-threaded (platform.h).
//
// Errors. Debian's wasm32 libc++abi is built without exception support, and the
// engines that run the module may lack WebAssembly's exception proposal; so a C++ throw
// here records the exception's message and kind, then traps. The loader turns the trap
// into a thrown JavaScript Error carrying them, and instantiates the module afresh for
// the next call (a trap leaves the instance's stack and heap where they were). Catch
// blocks in the runtime therefore never run in a WebAssembly output: the first error
// ends the call.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>

#include <unistd.h>

#include "compiled_model.h"
#include "generate.h"
#include "input_file.h"
#include "json_text.h"
#include "output_args.h"
#include "tokenizer.h"

#define BITNETC_WASM_EXPORT(name) extern "C" __attribute__((export_name(#name), used))

extern "C" const char bitnetc_target_name[];

namespace {

using namespace bitnetc::rt;

// The last error: its kind (the loader's Error.code) and message.
std::string error_kind, error_message;
// What the last call returned as bytes (text or JSON), read by the loader.
std::string result;

std::unique_ptr<CompiledModel> model;
std::unique_ptr<PulledGeneration> generation;

const char* set_result(std::string s) {
  result = std::move(s);
  return result.c_str();
}

CompiledModel& loaded(const char* fn) {
  if (!model) throw std::logic_error(std::string(fn) + ": no model is loaded");
  return *model;
}

}  // namespace

// The C++ runtime's throw (see the top of this file). Every exception the runtime
// throws derives from std::exception alone (the standard ones, TokenizerError,
// GenerateError, UsageError, InputFileError, OutOfMemoryError), so the object is one.
extern "C" void* __cxa_allocate_exception(size_t size) noexcept {
  void* p = std::malloc(size);
  if (!p) std::abort();
  return p;
}

extern "C" [[noreturn]] void __cxa_throw(void* thrown, std::type_info* type, void (*)(void*)) {
  const auto& t = *type;
  error_kind = t == typeid(TokenizerError) || t == typeid(GenerateError) ? "prompt"
               : t == typeid(UsageError) || t == typeid(InputFileError) ? "usage"
               : t == typeid(std::invalid_argument) || t == typeid(std::out_of_range) ? "invalid_argument"
               : t == typeid(std::bad_alloc) || t == typeid(OutOfMemoryError)        ? "out_of_memory"
                                                                                      : "runtime";
  error_message = static_cast<const std::exception*>(thrown)->what();
  __builtin_trap();
}

BITNETC_WASM_EXPORT(bitnetc_wasm_error_kind) const char* bitnetc_wasm_error_kind() { return error_kind.c_str(); }
BITNETC_WASM_EXPORT(bitnetc_wasm_error_message) const char* bitnetc_wasm_error_message() {
  return error_message.c_str();
}
BITNETC_WASM_EXPORT(bitnetc_wasm_usage_line) const char* bitnetc_wasm_usage_line() { return output_usage_line(); }
BITNETC_WASM_EXPORT(bitnetc_wasm_result_size) size_t bitnetc_wasm_result_size() { return result.size(); }

BITNETC_WASM_EXPORT(bitnetc_wasm_alloc) void* bitnetc_wasm_alloc(size_t n) { return std::malloc(n ? n : 1); }
BITNETC_WASM_EXPORT(bitnetc_wasm_free) void bitnetc_wasm_free(void* p) { std::free(p); }

// The bytes of model.weights (--weights=external), which the loader copied into memory
// it allocated here, and what to call them in errors (its path or URL); they stay until
// the module is dropped.
BITNETC_WASM_EXPORT(bitnetc_wasm_set_weights)
void bitnetc_wasm_set_weights(const uint8_t* p, size_t n, const char* name, size_t name_size) {
  set_loader_weights({p, n}, std::string(name, name_size));
}

// The working folder the command line's relative paths are under (node's), as wasi-libc
// keeps it: the loader lends the module "/" only.
BITNETC_WASM_EXPORT(bitnetc_wasm_chdir) int32_t bitnetc_wasm_chdir(const char* path) { return ::chdir(path); }

// The native output's main (WebAssembly names main(int, char**) so), run as the command
// line: `node model.mjs ARGS` calls it with "model.mjs" ARGS.
extern "C" int __main_argc_argv(int argc, char** argv);
BITNETC_WASM_EXPORT(bitnetc_wasm_main) int bitnetc_wasm_main(int argc, char** argv) {
  const int status = __main_argc_argv(argc, argv);
  std::fflush(nullptr);  // a reactor has no exit to flush stdio at
  return status;
}

// -i under wasm: a bad line's C++ throw traps instead of being caught, so the loader
// runs main again with the same arguments and the loop goes on with the next line
// (stdin unbuffered there, so no line is lost with the spent instance). The loop marks
// while it handles a line; the loader asks after a trap, and sets `resuming` for the
// new instance (no banner again).
namespace {
bool interactive_line = false, interactive_resuming = false;
}  // namespace
extern "C" void bitnetc_wasm_mark_interactive_line(bool in_line) { interactive_line = in_line; }
extern "C" bool bitnetc_wasm_interactive_resuming() { return interactive_resuming; }
BITNETC_WASM_EXPORT(bitnetc_wasm_in_interactive_line) int32_t bitnetc_wasm_in_interactive_line() {
  return interactive_line ? 1 : 0;
}
BITNETC_WASM_EXPORT(bitnetc_wasm_resume_interactive) void bitnetc_wasm_resume_interactive() {
  interactive_resuming = true;
}

// Loads the embedded model with a context of n_ctx (0: the model's).
BITNETC_WASM_EXPORT(bitnetc_wasm_load) void bitnetc_wasm_load(int32_t n_ctx) {
  generation.reset();
  model.reset();
  model = std::make_unique<CompiledModel>(n_ctx, "", 1);
}

BITNETC_WASM_EXPORT(bitnetc_wasm_info) const char* bitnetc_wasm_info() {
  const CompiledModel& m = loaded("info");
  const auto& g = m.graph();
  char fp[32];
  std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(m.fingerprint()));
  return set_result(std::string("{\"target\":\"") + json_escape(bitnetc_target_name) + "\",\"architecture\":\"" +
                    json_escape(g.name) + "\",\"n_ctx\":" + std::to_string(m.n_ctx()) + ",\"n_vocab\":" +
                    std::to_string(m.tokenizer().n_tokens()) + ",\"n_layer\":" + std::to_string(g.n_layer) +
                    ",\"n_embd\":" + std::to_string(g.n_embd) + ",\"fingerprint\":\"" + fp +
                    "\",\"external_weights\":" + (m.external_weights() ? "true" : "false") + "}");
}

// The prompt's tokens as a JSON array (BOS first when add_bos and the vocabulary adds it).
BITNETC_WASM_EXPORT(bitnetc_wasm_tokenize)
const char* bitnetc_wasm_tokenize(const char* text, size_t size, int32_t add_bos, int32_t parse_special) {
  const Tokenizer& tok = loaded("tokenize").tokenizer();
  return set_result(ids_json(tok.encode(std::string_view(text, size), add_bos != 0, parse_special != 0)));
}

// The text of `n` tokens (result: bytes, bitnetc_wasm_result_size of them).
BITNETC_WASM_EXPORT(bitnetc_wasm_detokenize) const char* bitnetc_wasm_detokenize(const int32_t* ids, size_t n) {
  const Tokenizer& tok = loaded("detokenize").tokenizer();
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= tok.n_tokens())
      throw std::invalid_argument("detokenize: token " + std::to_string(ids[i]) + " is not in the vocabulary of " +
                                  std::to_string(tok.n_tokens()));
  return set_result(tok.detokenize(std::vector<int32_t>(ids, ids + n)));
}

// Starts a generation (the one there is: a running one ends first). The sampling
// parameters as the C API's bitnet_generate_params (checked there by the loader too).
BITNETC_WASM_EXPORT(bitnetc_wasm_begin)
void bitnetc_wasm_begin(const char* prompt, size_t size, int32_t max_tokens, float temperature, int32_t top_k,
                        float top_p, float min_p, float repeat_penalty, int32_t repeat_last_n, uint64_t seed,
                        int32_t lookup) {
  CompiledModel& m = loaded("generate");
  if (generation) {
    generation.reset();
    m.release(0);
  }
  SamplerParams s;
  s.temperature = temperature;
  s.top_k = top_k;
  s.top_p = top_p;
  s.min_p = min_p;
  s.repeat_penalty = repeat_penalty;
  s.repeat_last_n = repeat_last_n;
  s.seed = seed;
  generation = m.pull(std::string_view(prompt, size), max_tokens, s, 0, lookup);
}

// The next piece of text (the result's bytes), or null when the generation has ended.
BITNETC_WASM_EXPORT(bitnetc_wasm_next) const char* bitnetc_wasm_next() {
  if (!generation) throw std::logic_error("next: no generation is running");
  std::string piece;
  if (!generation->next(piece)) return nullptr;
  return set_result(std::move(piece));
}

// Ends the generation: its tokens, text and timings as JSON (result).
BITNETC_WASM_EXPORT(bitnetc_wasm_end) const char* bitnetc_wasm_end() {
  if (!generation) throw std::logic_error("end: no generation is running");
  const Generation& g = generation->generation();
  const std::string json = "{\"prompt_tokens\":" + ids_json(g.prompt_tokens) + ",\"tokens\":" + ids_json(g.tokens) +
                           ",\"text\":\"" + json_escape(g.text) + "\",\"stopped\":" + (g.stopped ? "true" : "false") +
                           ",\"prompt_seconds\":" + std::to_string(g.prompt_seconds) +
                           ",\"decode_seconds\":" + std::to_string(g.decode_seconds) +
                           ",\"drafted\":" + std::to_string(g.drafted) + ",\"accepted\":" + std::to_string(g.accepted) +
                           "}";
  generation.reset();
  model->release(0);
  return set_result(json);
}
