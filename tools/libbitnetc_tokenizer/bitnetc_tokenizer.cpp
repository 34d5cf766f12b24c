// libbitnetc_tokenizer.so (bitnetc_tokenizer.h): the importer's tokenizer reading
// (compiler/tokenizer_import.h) and the runtime's tokenizer (runtime_stub/text/) behind
// a C ABI, for callers that have a tokenizer file and no compiled model.
#include "bitnetc_tokenizer.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "chat.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

struct BitNetcTokenizer {
  std::unique_ptr<bitnetc::rt::Tokenizer> tok;
};

namespace {

thread_local std::string last_error;

template <typename F>
auto guarded(const char* fn, F f, decltype(f()) on_error) -> decltype(f()) {
  try {
    last_error.clear();
    return f();
  } catch (const std::exception& e) {
    last_error = std::string(fn) + ": " + e.what();
  }
  return on_error;
}

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (!out) throw std::bad_alloc();
  std::memcpy(out, s.data(), s.size() + 1);
  return out;
}

bool fail(const char* fn, const char* what) {
  last_error = std::string(fn) + ": " + what;
  return false;
}

}  // namespace

EXPORT BitNetcTokenizer* bitnetc_tokenizer_load(const char* path) {
  if (!path || !*path) return fail("bitnetc_tokenizer_load", "path must not be NULL or empty"), nullptr;
  return guarded(
      "bitnetc_tokenizer_load",
      [&] {
        auto t = std::make_unique<BitNetcTokenizer>();
        t->tok = std::make_unique<bitnetc::rt::Tokenizer>(bitnetc::load_tokenizer_file(path));
        return t.release();
      },
      static_cast<BitNetcTokenizer*>(nullptr));
}

EXPORT void bitnetc_tokenizer_free(BitNetcTokenizer* tok) { delete tok; }

EXPORT const char* bitnetc_tokenizer_last_error(void) { return last_error.c_str(); }

EXPORT int bitnetc_tokenizer_encode(BitNetcTokenizer* tok, const char* text, int add_bos, int parse_special,
                                    int32_t* ids, int n_max) {
  if (!tok || !text || n_max < 0 || (n_max > 0 && !ids))
    return fail("bitnetc_tokenizer_encode", "tok and text must not be NULL, n_max not negative, ids not NULL"), -1;
  return guarded(
      "bitnetc_tokenizer_encode",
      [&] {
        const std::vector<int32_t> out = tok->tok->encode(text, add_bos != 0, parse_special != 0);
        if (out.size() > static_cast<size_t>(INT32_MAX)) throw std::length_error("too many tokens");
        std::memcpy(ids, out.data(), std::min(out.size(), static_cast<size_t>(n_max)) * sizeof(int32_t));
        return static_cast<int>(out.size());
      },
      -1);
}

EXPORT char* bitnetc_tokenizer_decode(BitNetcTokenizer* tok, const int32_t* ids, int n) {
  if (!tok || n < 0 || (n > 0 && !ids))
    return fail("bitnetc_tokenizer_decode", "tok must not be NULL, n not negative, ids not NULL"), nullptr;
  for (int i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= tok->tok->n_tokens()) {
      last_error = "bitnetc_tokenizer_decode: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                   " is not in the vocabulary of " + std::to_string(tok->tok->n_tokens());
      return nullptr;
    }
  return guarded(
      "bitnetc_tokenizer_decode", [&] { return copy_string(tok->tok->detokenize(std::vector<int32_t>(ids, ids + n))); },
      static_cast<char*>(nullptr));
}

EXPORT char* bitnetc_tokenizer_chat_apply(BitNetcTokenizer* tok, const char* const* roles, const char* const* contents,
                                          int n, int add_assistant) {
  if (!tok || n < 0 || (n > 0 && (!roles || !contents)))
    return fail("bitnetc_tokenizer_chat_apply", "tok, roles and contents must not be NULL, n not negative"), nullptr;
  const bitnetc::rt::ChatTemplate t = tok->tok->vocab().chat_template;
  if (t == bitnetc::rt::ChatTemplate::None)
    return fail("bitnetc_tokenizer_chat_apply", "this tokenizer has no chat template"), nullptr;
  std::vector<bitnetc::rt::ChatMessage> messages;
  for (int i = 0; i < n; ++i) {
    if (!roles[i] || !contents[i])
      return fail("bitnetc_tokenizer_chat_apply",
                  ("message " + std::to_string(i) + " has a NULL role or content").c_str()),
             nullptr;
    messages.push_back({roles[i], contents[i]});
  }
  return guarded(
      "bitnetc_tokenizer_chat_apply",
      [&] { return copy_string(bitnetc::rt::apply_chat_template(t, messages, add_assistant != 0)); },
      static_cast<char*>(nullptr));
}

EXPORT void bitnetc_tokenizer_free_string(char* s) { std::free(s); }

EXPORT int32_t bitnetc_tokenizer_n_vocab(BitNetcTokenizer* tok) { return tok ? tok->tok->n_tokens() : -1; }
EXPORT int32_t bitnetc_tokenizer_bos(BitNetcTokenizer* tok) { return tok ? tok->tok->vocab().bos : -1; }
EXPORT int32_t bitnetc_tokenizer_eos(BitNetcTokenizer* tok) { return tok ? tok->tok->vocab().eos : -1; }
EXPORT int32_t bitnetc_tokenizer_eot(BitNetcTokenizer* tok) { return tok ? tok->tok->vocab().eot : -1; }
