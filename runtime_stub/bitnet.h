/* bitnet.h: the C API of a model compiled by bitnetc into a shared object.
 *
 * Every function is safe to call from several threads, on separate models or on one:
 * calls on one model run one at a time (each waits for the one before it). Errors: functions return NULL or a negative
 * number, and bitnet_get_last_error() / bitnet_get_last_error_code() describe the last error of the calling thread.
 */
#ifndef BITNET_H
#define BITNET_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BitNetModel BitNetModel;

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
  uint64_t seed;
} BitNetGenerateParams;

/* Streaming, in the shape the BitNet libraries document:
 *   BitNetStreamConfig config = {.max_new_tokens = 100, .temperature = 0.7f,
 *                                .callback = token_callback, .user_data = NULL};
 * `callback` gets each piece of text as it becomes printable (never a split UTF-8
 * character). In the fields after user_data zero means the default, so a config that
 * names only the first four samples as bitnet_default_params() does. */
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
} BitNetStreamConfig;

/* The version of this header's API: BITNET_API_VERSION when the library matches. */
#define BITNET_API_VERSION 2
int bitnet_version(void);

/* Loads the model compiled into this library. `path` NULL or "" takes it as embedded; a
 * path to the original model file (the GGUF, or the checkpoint folder's
 * model.safetensors) is checked against the embedded fingerprint. A library compiled
 * with --weights=external maps its side file: `path` may name it, else LIBRARY.weights
 * beside the library is used. */
BitNetModel* bitnet_model_load(const char* path);
void bitnet_model_free(BitNetModel* model);

/* The defaults of BitNetGenerateParams (temperature 0.8, top-k 40, top-p 0.95, min-p
 * 0.05, no repetition penalty, seed 0, 64 tokens). */
BitNetGenerateParams bitnet_default_params(void);

/* Generates a continuation of `prompt`; free the result with bitnet_free_string. */
char* bitnet_inference(BitNetModel* model, const char* prompt, int max_tokens, float temperature);
/* Full control over sampling. */
char* bitnet_generate(BitNetModel* model, const char* prompt, const BitNetGenerateParams* params);
/* Streams the continuation; returns the number of tokens generated, or a BitNetError. */
int bitnet_inference_stream(BitNetModel* model, const char* prompt, const BitNetStreamConfig* config);

void bitnet_free_string(char* s);
const char* bitnet_get_last_error(void);
int bitnet_get_last_error_code(void);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_H */
