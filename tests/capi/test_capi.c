/* A C (not C++) program against a compiled model's shared object and bitnet.h.
 * Usage: test_capi MODEL_FILE OTHER_FILE PROMPT EXPECTED_TEXT_FILE
 * Exits 0 when every check passes; prints the failed check otherwise. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet_c.h"

static int failures = 0;
#define CHECK(cond, ...)                         \
  do {                                           \
    if (!(cond)) {                               \
      fprintf(stderr, "FAILED %s: ", #cond);     \
      fprintf(stderr, __VA_ARGS__);              \
      fprintf(stderr, "\n");                     \
      ++failures;                                \
    }                                            \
  } while (0)

static char* read_file(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* s = malloc((size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
  s[n] = '\0';
  fclose(f);
  return s;
}

struct Count {
  int pieces;
  int stop_after;
};

static void count_piece(const char* text, void* user_data) {
  (void)text;
  ++((struct Count*)user_data)->pieces;
}
static int enough_pieces(void* user_data) {
  struct Count* c = (struct Count*)user_data;
  return c->pieces >= c->stop_after; /* non-zero: stop */
}

/* The streamed text, piece by piece (the documented callback's signature). */
static char streamed[65536];
static void token_callback(const char* token, void* user_data) {
  (void)user_data;
  strncat(streamed, token, sizeof streamed - strlen(streamed) - 1);
}

struct Job {
  const char* prompt;
  char* text;
};

/* Threads sharing one model (their calls run one at a time). */
struct SharedJob {
  BitNetModel* model;
  const char* prompt;
  char* text[4];
};

static void* shared_worker(void* arg) {
  struct SharedJob* job = (struct SharedJob*)arg;
  for (int r = 0; r < 4; ++r) job->text[r] = bitnet_inference(job->model, job->prompt, 24, 0.0f);
  return NULL;
}

static void* worker(void* arg) {
  struct Job* job = (struct Job*)arg;
  BitNetModel* m = bitnet_model_load(NULL);
  job->text = m ? bitnet_inference(m, job->prompt, 32, 0.0f) : NULL;
  bitnet_model_free(m);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  const char* prompt = argv[3];
  char* expected = read_file(argv[4]);
  CHECK(expected != NULL, "cannot read %s", argv[4]);

  /* The embedded model, greedy: the golden continuation. */
  BitNetModel* m = bitnet_model_load(NULL);
  CHECK(m != NULL, "load(NULL): %s", bitnet_get_last_error());
  char* text = bitnet_inference(m, prompt, 64, 0.0f);
  CHECK(text != NULL && expected && strcmp(text, expected) == 0, "greedy text differs: [%s]", text ? text : "(null)");
  bitnet_free_string(text);

  /* Full control: the same greedy result through bitnet_generate. */
  BitNetGenerateParams p = bitnet_default_params();
  p.temperature = 0.0f;
  p.max_tokens = 64;
  text = bitnet_generate(m, prompt, &p);
  CHECK(text != NULL && expected && strcmp(text, expected) == 0, "bitnet_generate differs");
  bitnet_free_string(text);

  /* Streaming as the BitNet libraries document it: the pieces make bitnet_generate's text
   * with the same sampling (the unnamed fields take the defaults). */
  CHECK(bitnet_version() == BITNET_API_VERSION, "bitnet_version() %d", bitnet_version());
  BitNetStreamConfig config = {
      .max_new_tokens = 100, .temperature = 0.7f, .callback = token_callback, .user_data = NULL};
  int n = bitnet_inference_stream(m, prompt, &config);
  BitNetGenerateParams sampled = bitnet_default_params();
  sampled.max_tokens = 100;
  sampled.temperature = 0.7f;
  text = bitnet_generate(m, prompt, &sampled);
  CHECK(n > 0 && text && strcmp(streamed, text) == 0, "stream (%d tokens) [%s] vs generate [%s]", n, streamed,
        text ? text : "(null)");
  bitnet_free_string(text);

  /* Cancellation after 5 pieces of text. */
  struct Count count = {0, 5};
  BitNetStreamConfig cfg = {.max_new_tokens = 64,
                            .temperature = 0.0f,
                            .callback = count_piece,
                            .user_data = &count,
                            .should_stop = enough_pieces};
  n = bitnet_inference_stream(m, prompt, &cfg);
  CHECK(n == 5 && count.pieces == 5, "stream returned %d after %d pieces", n, count.pieces);

  /* Errors: invalid UTF-8, NULL arguments. */
  text = bitnet_inference(m, "bad \xff prompt", 8, 0.0f);
  CHECK(text == NULL && bitnet_get_last_error_code() == BITNET_ERROR_PROMPT &&
            strstr(bitnet_get_last_error(), "UTF-8") != NULL,
        "invalid UTF-8: code %d, %s", bitnet_get_last_error_code(), bitnet_get_last_error());
  CHECK(bitnet_inference(NULL, prompt, 8, 0.0f) == NULL && bitnet_get_last_error_code() == BITNET_ERROR_INVALID_ARGUMENT,
        "NULL model accepted");
  /* Parameters a generation cannot run with name the function and the field. */
  CHECK(bitnet_inference(m, prompt, 8, 0.0f / 0.0f) == NULL &&
            bitnet_get_last_error_code() == BITNET_ERROR_INVALID_ARGUMENT &&
            strstr(bitnet_get_last_error(), "bitnet_inference: temperature") != NULL,
        "NaN temperature: %s", bitnet_get_last_error());
  BitNetGenerateParams bad = bitnet_default_params();
  bad.top_p = 1.0f / 0.0f;
  CHECK(bitnet_generate(m, prompt, &bad) == NULL && strstr(bitnet_get_last_error(), "bitnet_generate: top_p") != NULL,
        "infinite top_p: %s", bitnet_get_last_error());
  bad = bitnet_default_params();
  bad.repeat_penalty = -1.0f;
  CHECK(bitnet_generate(m, prompt, &bad) == NULL && strstr(bitnet_get_last_error(), "repeat_penalty") != NULL,
        "negative repeat_penalty: %s", bitnet_get_last_error());
  cfg.max_new_tokens = -3;
  CHECK(bitnet_inference_stream(m, prompt, &cfg) == BITNET_ERROR_INVALID_ARGUMENT &&
            strstr(bitnet_get_last_error(), "bitnet_inference_stream: max_tokens") != NULL,
        "negative max_tokens: %s", bitnet_get_last_error());

  /* Eight threads on this one model, four calls each: every text is the solo text. */
  char* solo = bitnet_inference(m, prompt, 24, 0.0f);
  CHECK(solo != NULL, "solo: %s", bitnet_get_last_error());
  struct SharedJob shared[8];
  pthread_t st[8];
  for (int i = 0; i < 8; ++i) {
    shared[i].model = m;
    shared[i].prompt = prompt;
    pthread_create(&st[i], NULL, shared_worker, &shared[i]);
  }
  for (int i = 0; i < 8; ++i) pthread_join(st[i], NULL);
  for (int i = 0; i < 8; ++i)
    for (int r = 0; r < 4; ++r) {
      CHECK(solo && shared[i].text[r] && strcmp(shared[i].text[r], solo) == 0, "thread %d call %d differs: [%s]", i, r,
            shared[i].text[r] ? shared[i].text[r] : "(null)");
      bitnet_free_string(shared[i].text[r]);
    }
  bitnet_free_string(solo);
  bitnet_model_free(m);

  /* Loading by path: the original model file matches, another file does not. */
  m = bitnet_model_load(argv[1]);
  CHECK(m != NULL, "load(original): %s", bitnet_get_last_error());
  bitnet_model_free(m);
  m = bitnet_model_load(argv[2]);
  CHECK(m == NULL && bitnet_get_last_error_code() == BITNET_ERROR_MODEL_MISMATCH, "load(other file) accepted");
  m = bitnet_model_load("/nonexistent/model.gguf");
  CHECK(m == NULL && bitnet_get_last_error_code() == BITNET_ERROR_IO, "load(missing file): code %d",
        bitnet_get_last_error_code());

  /* Separate models in separate threads give the same results. */
  struct Job jobs[2] = {{prompt, NULL}, {prompt, NULL}};
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) pthread_create(&t[i], NULL, worker, &jobs[i]);
  for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
  CHECK(jobs[0].text && jobs[1].text && strcmp(jobs[0].text, jobs[1].text) == 0, "threads disagree");
  CHECK(jobs[0].text && expected && strncmp(jobs[0].text, expected, strlen(jobs[0].text)) == 0,
        "threaded text is not a prefix of the golden text");
  bitnet_free_string(jobs[0].text);
  bitnet_free_string(jobs[1].text);
  free(expected);
  if (failures == 0) printf("C API: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
