/* bitnetc_tokenizer.h: a model's tokenizer without the model, from the file it comes
 * in (a GGUF, an HF tokenizer.json, a SentencePiece tokenizer.model), read as bitnetc
 * reads it when it compiles the model: the same ids as the compiled model's
 * bitnet_tokenize, the same text as its bitnet_detokenize and bitnet_chat_apply.
 * libbitnetc_tokenizer.so is built beside bitnetc; bitnet_py's Tokenizer(file) uses it.
 *
 * Errors: functions return NULL or a negative number, and
 * bitnetc_tokenizer_last_error() gives the calling thread's last error (naming the
 * file, or the function and argument). Every function is safe to call from several
 * threads; a tokenizer is read-only once loaded. */
#ifndef BITNETC_TOKENIZER_H
#define BITNETC_TOKENIZER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BitNetcTokenizer BitNetcTokenizer;

BitNetcTokenizer* bitnetc_tokenizer_load(const char* path);
void bitnetc_tokenizer_free(BitNetcTokenizer* tok);
const char* bitnetc_tokenizer_last_error(void);

/* As bitnet_tokenize: writes at most n_max ids and returns how many the text has (call
 * with n_max = 0 first for the size), or -1 (invalid UTF-8, NULL arguments). */
int bitnetc_tokenizer_encode(BitNetcTokenizer* tok, const char* text, int add_bos, int parse_special, int32_t* ids,
                             int n_max);
/* As bitnet_detokenize; free the text with bitnetc_tokenizer_free_string. */
char* bitnetc_tokenizer_decode(BitNetcTokenizer* tok, const int32_t* ids, int n);
/* As bitnet_chat_apply: the conversation (roles[i], contents[i]) in the tokenizer's chat
 * template, NULL when it has none (the error says so). */
char* bitnetc_tokenizer_chat_apply(BitNetcTokenizer* tok, const char* const* roles, const char* const* contents, int n,
                                   int add_assistant);
void bitnetc_tokenizer_free_string(char* s);

int32_t bitnetc_tokenizer_n_vocab(BitNetcTokenizer* tok);
int32_t bitnetc_tokenizer_bos(BitNetcTokenizer* tok); /* -1: none */
int32_t bitnetc_tokenizer_eos(BitNetcTokenizer* tok);
int32_t bitnetc_tokenizer_eot(BitNetcTokenizer* tok);

#ifdef __cplusplus
}
#endif

#endif
