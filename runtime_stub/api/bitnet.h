/* bitnet.h: the C API of a model compiled by bitnetc into a shared object.
 *
 * Every function is safe to call from several threads, on separate models or on one.
 * On one model, the one-call generations (bitnet_generate, bitnet_inference[_stream],
 * bitnet_chat, the batch calls) of several threads run concurrently: they share each
 * forward step (up to 8 at once; more wait for a slot), and each gives exactly what it
 * gives alone. Stream and session calls take the forward pass between those steps. Errors: functions return NULL or a negative
 * number, and bitnet_get_last_error() / bitnet_get_last_error_code() describe the last error of the calling thread
 * (each message starts with the function called).
 */
#ifndef BITNET_H
#define BITNET_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BitNetModel BitNetModel;
typedef struct BitNetStream BitNetStream;
typedef struct BitNetSession BitNetSession;

enum BitNetError {
  BITNET_OK = 0,
  BITNET_ERROR_INVALID_ARGUMENT = -1, /* NULL model, bad parameter */
  BITNET_ERROR_MODEL_MISMATCH = -2,   /* the path given is not the model compiled in */
  BITNET_ERROR_IO = -3,               /* a file could not be read */
  BITNET_ERROR_PROMPT = -4,           /* invalid UTF-8, or longer than the context */
  BITNET_ERROR_INTERNAL = -5,
};

/* Sampling and length of one generation. NaN or infinite values, max_tokens < 0,
 * top_p < 0, min_p > 1 and repeat_penalty <= 0 are refused (BITNET_ERROR_INVALID_ARGUMENT,
 * the message naming the field). */
typedef struct BitNetGenerateParams {
  int32_t max_tokens;   /* tokens to generate at most */
  float temperature;    /* <= 0: greedy */
  int32_t top_k;        /* <= 0: off */
  float top_p;          /* >= 1: off */
  float min_p;          /* <= 0: off */
  float repeat_penalty; /* 1: off */
  uint64_t seed;        /* BITNET_SEED_RANDOM: a fresh one per call (bitnet_get_last_seed tells it) */
  /* Lookup decoding: up to this many tokens that followed an earlier occurrence of the
   * context's last 3 (or 2) tokens are fed with each generated token in one step, and
   * kept while they equal what the sampler picks: the same tokens as without it (0 to
   * BITNET_MAX_LOOKUP; 0: off). It pays when the text repeats its context (quoting,
   * editing code) and costs a little per step when it does not. */
  int32_t lookup;
} BitNetGenerateParams;

#define BITNET_MAX_LOOKUP 64

#define BITNET_SEED_RANDOM UINT64_C(0xFFFFFFFFFFFFFFFF)

/* Streaming, in the shape the BitNet libraries document:
 *   BitNetStreamConfig config = {.max_new_tokens = 100, .temperature = 0.7f,
 *                                .callback = token_callback, .user_data = NULL};
 * `callback` gets each piece of text as it becomes printable (never a split UTF-8
 * character); it and should_stop run on the calling thread while the model's other
 * generations wait for them, so they must not generate, stream or feed on the same
 * model (its tokenizer calls and bitnet_model_info_json are fine). In
 * the fields after user_data zero means the default, so a config that names only the
 * first four samples as bitnet_default_params() does. */
typedef struct BitNetStreamConfig {
  int32_t max_new_tokens; /* tokens to generate at most; 0: 64 */
  float temperature;      /* <= 0: greedy */
  void (*callback)(const char* token, void* user_data);
  void* user_data;
  int32_t top_k;        /* 0: 40; < 0: off */
  float top_p;          /* 0: 0.95; >= 1: off */
  float min_p;          /* 0: 0.05; < 0: off */
  float repeat_penalty; /* 0: 1 (off) */
  uint64_t seed;        /* 0: 0 */
  /* Called after each piece (NULL: never); non-zero stops the generation there. */
  int (*should_stop)(void* user_data);
  int32_t lookup; /* 0: off; else as BitNetGenerateParams.lookup */
} BitNetStreamConfig;

/* The version of this header's API: BITNET_API_VERSION when the library matches. */
#define BITNET_API_VERSION 4
int bitnet_version(void);

/* Loads the model compiled into this library. `path` NULL or "" takes it as embedded; a
 * path to the original model file (the GGUF, or the checkpoint folder's
 * model.safetensors) is checked against the embedded fingerprint. A library compiled
 * with --weights=external maps its side file: `path` may name it, else LIBRARY.weights
 * beside the library is used. */
BitNetModel* bitnet_model_load(const char* path);
/* The same with options: n_ctx > 0 shortens the context of every sequence to n_ctx
 * positions (at most the model's; 0: the model's), as llama.cpp's n_ctx does. */
typedef struct BitNetLoadParams {
  int32_t n_ctx;
} BitNetLoadParams;
BitNetModel* bitnet_model_load_with_params(const char* path, const BitNetLoadParams* params);
void bitnet_model_free(BitNetModel* model);

/* The defaults of BitNetGenerateParams (temperature 0.8, top-k 40, top-p 0.95, min-p
 * 0.05, no repetition penalty, seed 0, 64 tokens, no lookup decoding). */
BitNetGenerateParams bitnet_default_params(void);

/* Generates a continuation of `prompt`; free the result with bitnet_free_string. With
 * temperature > 0 each call draws a fresh seed (bitnet_get_last_seed tells it). */
char* bitnet_inference(BitNetModel* model, const char* prompt, int max_tokens, float temperature);
/* Full control over sampling. */
char* bitnet_generate(BitNetModel* model, const char* prompt, const BitNetGenerateParams* params);
/* Streams the continuation; returns the number of tokens generated, or a BitNetError. */
int bitnet_inference_stream(BitNetModel* model, const char* prompt, const BitNetStreamConfig* config);

/* Pull-style streaming: create, then bitnet_stream_next until it returns NULL, freeing
 * each piece with free(). NULL means the end (bitnet_get_last_error_code() == BITNET_OK)
 * or an error (a BitNetError, with the message). A stream keeps its own KV cache (one of
 * the model's BITNET_MAX_STREAMS): other calls on the model may come between its pieces.
 * bitnet_stream_free may be called at any point; bitnet_stream_cancel ends the stream
 * at its next piece. */
#define BITNET_MAX_STREAMS 8
BitNetStream* bitnet_stream_create(BitNetModel* model, const char* prompt); /* bitnet_default_params() */
BitNetStream* bitnet_stream_create_with_params(BitNetModel* model, const char* prompt,
                                               const BitNetGenerateParams* params);
char* bitnet_stream_next(BitNetStream* stream);
void bitnet_stream_cancel(BitNetStream* stream);
void bitnet_stream_free(BitNetStream* stream);

/* Sessions: a conversation kept in a KV cache across calls (one of the model's
 * BITNET_MAX_STREAMS sequences, shared with the streams), so that each turn processes
 * only its new tokens. bitnet_session_feed appends text (control tokens written in it
 * are parsed, as in prompts; BOS first in an empty session) and returns the positions
 * the session then holds, or a BitNetError (the text is then not added: e.g.
 * BITNET_ERROR_PROMPT when it would overflow the context). bitnet_session_generate
 * continues from where the session stands; what it generates, and the stop token that
 * ended it, stay in the session. */
BitNetSession* bitnet_session_create(BitNetModel* model);
int bitnet_session_feed(BitNetSession* session, const char* text);
char* bitnet_session_generate(BitNetSession* session, const BitNetGenerateParams* params);
int bitnet_session_n_past(BitNetSession* session); /* positions held, or a BitNetError */
void bitnet_session_reset(BitNetSession* session); /* empty again */
void bitnet_session_free(BitNetSession* session);

/* Several prompts at once, prompts[i] with params[i], run together through the batched
 * forward pass: outputs[i] gets what bitnet_generate(model, prompts[i], &params[i])
 * gives alone, bit for bit (free each with bitnet_free_string). Returns BITNET_OK, or a
 * BitNetError naming the first bad prompt or parameter (then no output is set). */
int bitnet_generate_batch(BitNetModel* model, int n, const char* const* prompts, const BitNetGenerateParams* params,
                          char** outputs);
/* The same, giving each prompt's generated token ids: tokens[i] (free() it) holds
 * n_tokens[i] ids (the stop token that ended a generation is not among them). */
int bitnet_generate_batch_tokens(BitNetModel* model, int n, const char* const* prompts,
                                 const BitNetGenerateParams* params, int32_t** tokens, int* n_tokens);

/* Chat. bitnet_chat_template names the model's template family ("bitnet-2b4t",
 * "llama3", "chatml", "phi3", "llama2"), or is NULL when it has none (then the other
 * chat calls fail with BITNET_ERROR_INVALID_ARGUMENT). bitnet_chat_apply renders the
 * messages (add_assistant: with the opening of the assistant's turn); free the text with
 * bitnet_free_string. bitnet_chat generates the assistant's reply: control tokens
 * written in the messages' contents stay text, never become control tokens (a prompt
 * made with bitnet_chat_apply and given to bitnet_generate would parse them). */
typedef struct BitNetChatMessage {
  const char* role; /* "system", "user", "assistant" */
  const char* content;
} BitNetChatMessage;
const char* bitnet_chat_template(BitNetModel* model);
char* bitnet_chat_apply(BitNetModel* model, const BitNetChatMessage* messages, int n, int add_assistant);
char* bitnet_chat(BitNetModel* model, const BitNetChatMessage* messages, int n, const BitNetGenerateParams* params);

/* Tokenizer. bitnet_tokenize writes at most n_max ids and returns how many the text
 * has (call with tokens NULL, n_max 0 to learn the size), or a BitNetError. add_bos:
 * put the model's BOS first (when it has one); parse_special: control tokens written in
 * the text (e.g. "<|eot_id|>") become their ids, else they are plain text. */
int bitnet_tokenize(BitNetModel* model, const char* text, int add_bos, int parse_special, int32_t* tokens, int n_max);
/* The text of `n` ids (control tokens print nothing; as SentencePiece decodes, the space
 * a SentencePiece vocabulary puts before the first word is dropped, so that
 * detokenize(tokenize(text)) is text); free with bitnet_free_string. */
char* bitnet_detokenize(BitNetModel* model, const int32_t* tokens, int n);
/* The bytes of one token into buf (NUL-terminated when they fit); returns their length
 * (which may exceed len: call again with a larger buffer), or a BitNetError. */
int bitnet_token_to_piece(BitNetModel* model, int32_t token, char* buf, int len);
int bitnet_vocab_size(BitNetModel* model);
/* Special ids, -1 where the model has none. */
int32_t bitnet_token_bos(BitNetModel* model);
int32_t bitnet_token_eos(BitNetModel* model);
int32_t bitnet_token_eot(BitNetModel* model);

/* What the library holds, as one JSON object: architecture, layers, embedding and FFN
 * widths, heads, KV heads, context, vocabulary, parameters, target, device, chat
 * template, BOS/EOS ids, fingerprint, and "engine": the one-call generations running
 * ("active") and waiting ("queued") now, the forward steps they took ("steps"), and
 * the lookup drafts they fed ("lookup_drafted") and kept ("lookup_accepted").
 * Free with bitnet_free_string. */
char* bitnet_model_info_json(BitNetModel* model);

/* The seed the calling thread's last generation sampled with. */
uint64_t bitnet_get_last_seed(void);

void bitnet_free_string(char* s);
const char* bitnet_get_last_error(void);
int bitnet_get_last_error_code(void);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_H */
