/* A C (not C++) program against a compiled model's shared object and bitnet.h.
 * Usage: test_capi MODEL_FILE OTHER_FILE PROMPT EXPECTED_TEXT_FILE
 * Exits 0 when every check passes; prints the failed check otherwise. */
#define _POSIX_C_SOURCE 200809L /* mkfifo, getpid, unlink under -std=c11 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bitnet_c.h"
#include "check.h"

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

/* Threads sharing one model (their calls share forward steps). */
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

/* A count in model info's "engine" object (the model's one-call generations so far:
 * "steps", "lookup_accepted"), or -1. */
static long engine_count(BitNetModel* model, const char* key) {
  char* info = bitnet_model_info_json(model);
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\":", key);
  const char* at = info ? strstr(info, quoted) : NULL;
  const long n = at ? strtol(at + strlen(quoted), NULL, 10) : -1;
  bitnet_free_string(info);
  return n;
}
static long engine_steps(BitNetModel* model) { return engine_count(model, "steps"); }

/* A streamed call that, at its first piece, starts three more calls on other threads and
 * holds the engine until all three wait in its queue. */
struct OneCall {
  BitNetModel* model;
  const char* prompt;
  char* text;
};
static void* one_call(void* arg) {
  struct OneCall* c = (struct OneCall*)arg;
  c->text = bitnet_inference(c->model, c->prompt, 24, 0.0f);
  return NULL;
}
struct Gate {
  struct OneCall calls[3];
  pthread_t threads[3];
  int opened, saw_queue;
  char text[65536];
};
static void gate_piece(const char* piece, void* user_data) {
  struct Gate* g = (struct Gate*)user_data;
  strncat(g->text, piece, sizeof g->text - strlen(g->text) - 1);
  if (g->opened) return;
  g->opened = 1;
  for (int i = 0; i < 3; ++i) pthread_create(&g->threads[i], NULL, one_call, &g->calls[i]);
  for (int tries = 0; tries < 2000 && !g->saw_queue; ++tries) { /* 20 s at most */
    char* info = bitnet_model_info_json(g->calls[0].model);
    g->saw_queue = info && strstr(info, "\"queued\":3") != NULL;
    bitnet_free_string(info);
    const struct timespec ten_ms = {0, 10 * 1000 * 1000};
    if (!g->saw_queue) nanosleep(&ten_ms, NULL);
  }
}

/* The pull-style stream as the older C++ code uses it, verbatim, collecting the text. */
static char pulled[65536];
static void pull_all(BitNetModel* model, const char* prompt) {
  pulled[0] = '\0';
  BitNetStream* stream = bitnet_stream_create(model, prompt);
  char* token;
  while ((token = bitnet_stream_next(stream)) != NULL) {
    strncat(pulled, token, sizeof pulled - strlen(pulled) - 1);
    free(token);
  }
  bitnet_stream_free(stream);
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

  /* Lookup decoding changes no token: greedy, the golden text again, and seeded, the plain
   * run's, through the engine (bitnet_generate) and a pull stream; the golden story
   * repeats itself, so some drafts are kept. */
  {
    BitNetGenerateParams lookup = p;
    lookup.lookup = 4;
    text = bitnet_generate(m, prompt, &lookup);
    CHECK(text && expected && strcmp(text, expected) == 0, "greedy with lookup: [%s] %s", text ? text : "(null)",
          bitnet_get_last_error());
    bitnet_free_string(text);
    /* A longer story repeats itself: drafts are kept. */
    BitNetGenerateParams long_greedy = p;
    long_greedy.max_tokens = 96;
    char* long_plain = bitnet_generate(m, prompt, &long_greedy);
    long_greedy.lookup = 4;
    text = bitnet_generate(m, prompt, &long_greedy);
    CHECK(text && long_plain && strcmp(text, long_plain) == 0, "96 greedy tokens with lookup: [%s] vs [%s]",
          text ? text : "", long_plain ? long_plain : "");
    bitnet_free_string(text);
    bitnet_free_string(long_plain);
    CHECK(engine_count(m, "lookup_accepted") > 0, "no draft kept (%ld drafted)", engine_count(m, "lookup_drafted"));
    BitNetGenerateParams seeded = bitnet_default_params();
    seeded.max_tokens = 64;
    seeded.seed = 11;
    seeded.repeat_penalty = 1.1f;
    char* plain = bitnet_generate(m, prompt, &seeded);
    seeded.lookup = 8;
    char* drafted = bitnet_generate(m, prompt, &seeded);
    CHECK(plain && drafted && strcmp(plain, drafted) == 0, "seeded with lookup: [%s] vs [%s]", drafted ? drafted : "",
          plain ? plain : "");
    bitnet_free_string(plain);
    bitnet_free_string(drafted);
    BitNetStream* s = bitnet_stream_create_with_params(m, prompt, &lookup);
    CHECK(s != NULL, "stream with lookup: %s", bitnet_get_last_error());
    char whole[65536] = "";
    for (char* piece; s && (piece = bitnet_stream_next(s)) != NULL;) {
      strncat(whole, piece, sizeof whole - strlen(whole) - 1);
      free(piece);
    }
    CHECK(expected && strcmp(whole, expected) == 0, "pull stream with lookup: [%s]", whole);
    bitnet_stream_free(s);
    lookup.lookup = BITNET_MAX_LOOKUP + 1;
    CHECK(bitnet_generate(m, prompt, &lookup) == NULL &&
              bitnet_get_last_error_code() == BITNET_ERROR_INVALID_ARGUMENT &&
              strstr(bitnet_get_last_error(), "bitnet_generate: lookup") != NULL,
          "lookup 65: %s", bitnet_get_last_error());
  }

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

  /* They run together: four calls of 24 tokens held back to start at once take about 24
   * forward steps, where one after another they would take 96. */
  static struct Gate gate;
  for (int i = 0; i < 3; ++i) gate.calls[i] = (struct OneCall){m, prompt, NULL};
  const long steps_before = engine_steps(m);
  BitNetStreamConfig gated = {.max_new_tokens = 24, .temperature = 0.0f, .callback = gate_piece, .user_data = &gate};
  n = bitnet_inference_stream(m, prompt, &gated);
  for (int i = 0; i < 3 && gate.opened; ++i) pthread_join(gate.threads[i], NULL);
  const long steps = engine_steps(m) - steps_before;
  CHECK(gate.opened && gate.saw_queue, "the three calls never waited together (opened %d)", gate.opened);
  CHECK(solo && strcmp(gate.text, solo) == 0, "the gated stream differs: [%s]", gate.text);
  for (int i = 0; i < 3; ++i) {
    CHECK(solo && gate.calls[i].text && strcmp(gate.calls[i].text, solo) == 0, "concurrent call %d differs: [%s]", i,
          gate.calls[i].text ? gate.calls[i].text : "(null)");
    bitnet_free_string(gate.calls[i].text);
  }
  CHECK(steps_before >= 0 && steps > 0 && steps < 48, "four concurrent calls took %ld forward steps (%d tokens each)",
        steps, n);
  bitnet_free_string(solo);

  /* Every output holds BITNET_MAX_STREAMS streams and sessions beside its one-call
     generations (a CUDA output too: each sequence has its own KV caches on the device). */
  char* about = bitnet_model_info_json(m);
  CHECK(about && strstr(about, "\"max_streams\":8"), "model info: %s", about ? about : "(null)");
  bitnet_free_string(about);
  {
    /* The pull stream (default sampling) writes bitnet_generate's text with the defaults. */
    pull_all(m, prompt);
    BitNetGenerateParams defaults = bitnet_default_params();
    text = bitnet_generate(m, prompt, &defaults);
    CHECK(text && bitnet_get_last_error_code() == BITNET_OK && strcmp(pulled, text) == 0,
          "pulled [%s] vs generate [%s]", pulled, text ? text : "(null)");
    bitnet_free_string(text);
    /* Greedy, with other calls on the model between its pieces: still the golden text. */
    BitNetStream* greedy = bitnet_stream_create_with_params(m, prompt, &p);
    CHECK(greedy != NULL, "stream_create_with_params: %s", bitnet_get_last_error());
    char whole[65536] = "";
    int pieces = 0;
    for (char* piece; greedy && (piece = bitnet_stream_next(greedy)) != NULL; ++pieces) {
      strncat(whole, piece, sizeof whole - strlen(whole) - 1);
      free(piece);
      if (pieces % 8 == 0) bitnet_free_string(bitnet_inference(m, "Another prompt", 4, 0.7f));
    }
    CHECK(expected && strcmp(whole, expected) == 0 && bitnet_get_last_error_code() == BITNET_OK,
          "interleaved greedy stream: [%s]", whole);
    bitnet_stream_free(greedy);
    /* Every stream holds a KV cache: BITNET_MAX_STREAMS at once, then a clear error;
     * freeing one (mid-stream) makes room; cancel ends a stream at its next piece. */
    BitNetStream* open_streams[BITNET_MAX_STREAMS];
    for (int i = 0; i < BITNET_MAX_STREAMS; ++i) {
      open_streams[i] = bitnet_stream_create(m, prompt);
      CHECK(open_streams[i] != NULL, "stream %d: %s", i, bitnet_get_last_error());
    }
    char* first = open_streams[0] ? bitnet_stream_next(open_streams[0]) : NULL;
    CHECK(first != NULL, "first piece: %s", bitnet_get_last_error());
    free(first);
    CHECK(bitnet_stream_create(m, prompt) == NULL && bitnet_get_last_error_code() == BITNET_ERROR_INVALID_ARGUMENT &&
              strstr(bitnet_get_last_error(), "bitnet_stream_create") != NULL,
          "one stream too many: %s", bitnet_get_last_error());
    bitnet_stream_free(open_streams[0]);
    open_streams[0] = bitnet_stream_create(m, prompt);
    CHECK(open_streams[0] != NULL, "after a free: %s", bitnet_get_last_error());
    bitnet_stream_cancel(open_streams[1]);
    char* rest;
    int after_cancel = 0;
    while (open_streams[1] && (rest = bitnet_stream_next(open_streams[1])) != NULL) ++after_cancel, free(rest);
    CHECK(after_cancel == 0 && bitnet_get_last_error_code() == BITNET_OK, "%d pieces after cancel", after_cancel);
    for (int i = 0; i < BITNET_MAX_STREAMS; ++i) bitnet_stream_free(open_streams[i]);

    /* A session: the prompt fed, then a greedy generation from it is the golden text; a
     * second turn continues the same cache (its positions add up), and the same turns in
     * a fresh session give the same text. */
    BitNetSession* chat = bitnet_session_create(m);
    CHECK(chat != NULL, "session_create: %s", bitnet_get_last_error());
    const int prompt_tokens = bitnet_tokenize(m, prompt, 1, 1, NULL, 0);
    CHECK(bitnet_session_feed(chat, prompt) == prompt_tokens, "feed: %d vs %d", bitnet_session_n_past(chat),
          prompt_tokens);
    char* turn1 = bitnet_session_generate(chat, &p);
    CHECK(turn1 && expected && strcmp(turn1, expected) == 0, "session turn 1: [%s]", turn1 ? turn1 : "(null)");
    const int after1 = bitnet_session_n_past(chat);
    CHECK(after1 > prompt_tokens, "n_past after a turn: %d", after1);
    const int more = bitnet_tokenize(m, " The end.", 0, 1, NULL, 0);
    CHECK(bitnet_session_feed(chat, " The end.") == after1 + more, "second feed: %d", bitnet_session_n_past(chat));
    BitNetGenerateParams short_greedy = p;
    short_greedy.max_tokens = 12;
    char* turn2 = bitnet_session_generate(chat, &short_greedy);
    CHECK(turn2 != NULL, "session turn 2: %s", bitnet_get_last_error());
    BitNetSession* again_chat = bitnet_session_create(m);
    bitnet_session_feed(again_chat, prompt);
    bitnet_free_string(bitnet_session_generate(again_chat, &p));
    bitnet_session_feed(again_chat, " The end.");
    char* turn2b = bitnet_session_generate(again_chat, &short_greedy);
    CHECK(turn2 && turn2b && strcmp(turn2, turn2b) == 0, "turn 2 differs: [%s] [%s]", turn2 ? turn2 : "",
          turn2b ? turn2b : "");
    bitnet_free_string(turn1);
    bitnet_free_string(turn2);
    bitnet_free_string(turn2b);
    bitnet_session_free(again_chat);
    /* Overflowing the context is an error that leaves the session as it was. */
    static char huge[200000];
    for (size_t i = 0; i + 6 < sizeof huge; i += 6) memcpy(huge + i, " word.", 6);
    const int before = bitnet_session_n_past(chat);
    CHECK(bitnet_session_feed(chat, huge) == BITNET_ERROR_PROMPT &&
              strstr(bitnet_get_last_error(), "bitnet_session_feed") && bitnet_session_n_past(chat) == before,
          "overflow: %s", bitnet_get_last_error());
    bitnet_session_reset(chat);
    CHECK(bitnet_session_n_past(chat) == 0, "reset");
    bitnet_session_free(chat);

    /* A batch, with a stream open on the side: every output is its solo text, and the
     * stream, pulled before and after, still writes the golden text. */
    BitNetStream* side = bitnet_stream_create_with_params(m, prompt, &p);
    char side_text[65536] = "";
    char* side_piece = side ? bitnet_stream_next(side) : NULL;
    if (side_piece) strncat(side_text, side_piece, sizeof side_text - 1), free(side_piece);
    const char* batch_prompts[3] = {prompt, "The little dog", prompt};
    BitNetGenerateParams batch_params[3] = {p, bitnet_default_params(), short_greedy};
    batch_params[1].max_tokens = 24;
    batch_params[1].seed = 7;
    char* batch_out[3] = {NULL, NULL, NULL};
    CHECK(bitnet_generate_batch(m, 3, batch_prompts, batch_params, batch_out) == BITNET_OK, "batch: %s",
          bitnet_get_last_error());
    for (int i = 0; i < 3; ++i) {
      char* alone = bitnet_generate(m, batch_prompts[i], &batch_params[i]);
      CHECK(alone && batch_out[i] && strcmp(alone, batch_out[i]) == 0, "batch %d: [%s] vs alone [%s]", i,
            batch_out[i] ? batch_out[i] : "(null)", alone ? alone : "(null)");
      bitnet_free_string(alone);
      bitnet_free_string(batch_out[i]);
    }
    /* The same batch as token ids: they decode to the texts. */
    int32_t* batch_ids[3] = {NULL, NULL, NULL};
    int batch_n[3] = {0, 0, 0};
    CHECK(bitnet_generate_batch_tokens(m, 3, batch_prompts, batch_params, batch_ids, batch_n) == BITNET_OK,
          "batch tokens: %s", bitnet_get_last_error());
    for (int i = 0; i < 3; ++i) {
      char* alone = bitnet_generate(m, batch_prompts[i], &batch_params[i]);
      char* decoded = batch_ids[i] ? bitnet_detokenize(m, batch_ids[i], batch_n[i]) : NULL;
      CHECK(
          batch_n[i] > 0 && alone && decoded && strcmp(alone + strspn(alone, " "), decoded + strspn(decoded, " ")) == 0,
          "batch ids %d: [%s] vs [%s]", i, decoded ? decoded : "(null)", alone ? alone : "(null)");
      bitnet_free_string(alone);
      bitnet_free_string(decoded);
      free(batch_ids[i]);
    }
    while (side && (side_piece = bitnet_stream_next(side)) != NULL)
      strncat(side_text, side_piece, sizeof side_text - strlen(side_text) - 1), free(side_piece);
    CHECK(expected && strcmp(side_text, expected) == 0, "the stream beside the batch: [%s]", side_text);
    bitnet_stream_free(side);
    BitNetGenerateParams nan_params[1] = {bitnet_default_params()};
    nan_params[0].min_p = 0.0f / 0.0f;
    CHECK(bitnet_generate_batch(m, 1, batch_prompts, nan_params, batch_out) == BITNET_ERROR_INVALID_ARGUMENT &&
              strstr(bitnet_get_last_error(), "params[0]") && strstr(bitnet_get_last_error(), "min_p"),
          "batch NaN: %s", bitnet_get_last_error());
  }
  CHECK(bitnet_stream_next(NULL) == NULL && bitnet_get_last_error_code() == BITNET_ERROR_INVALID_ARGUMENT,
        "stream_next(NULL)");

  /* Tokenizer: the two-call size protocol, ids that decode back, pieces, specials. */
  int n_tok = bitnet_tokenize(m, prompt, 1, 0, NULL, 0);
  CHECK(n_tok > 1, "tokenize size: %d (%s)", n_tok, bitnet_get_last_error());
  int32_t ids[256];
  CHECK(n_tok <= 256 && bitnet_tokenize(m, prompt, 1, 0, ids, 256) == n_tok, "tokenize");
  CHECK(ids[0] == bitnet_token_bos(m) && bitnet_token_bos(m) >= 0, "BOS first: %d vs %d", ids[0], bitnet_token_bos(m));
  CHECK(bitnet_tokenize(m, prompt, 0, 0, ids, 256) == n_tok - 1, "without BOS");
  CHECK(bitnet_tokenize(m, prompt, 1, 0, ids, 2) == n_tok, "a short buffer still tells the size");
  bitnet_tokenize(m, prompt, 0, 0, ids, 256);
  char* back = bitnet_detokenize(m, ids, n_tok - 1);
  CHECK(back && strstr(back, prompt) != NULL, "detokenize: [%s]", back ? back : "(null)");
  bitnet_free_string(back);
  char piece_buf[64];
  const int piece_len = bitnet_token_to_piece(m, ids[0], piece_buf, sizeof piece_buf);
  CHECK(piece_len > 0 && (size_t)piece_len == strlen(piece_buf), "token_to_piece: %d [%s]", piece_len, piece_buf);
  CHECK(bitnet_token_to_piece(m, ids[0], piece_buf, 1) == piece_len && piece_buf[0] == '\0', "a one-byte buffer");
  CHECK(bitnet_vocab_size(m) > 256, "vocab size %d", bitnet_vocab_size(m));
  CHECK(bitnet_token_to_piece(m, bitnet_vocab_size(m), piece_buf, 64) == BITNET_ERROR_INVALID_ARGUMENT &&
            strstr(bitnet_get_last_error(), "bitnet_token_to_piece") != NULL,
        "out-of-range token: %s", bitnet_get_last_error());
  CHECK(bitnet_tokenize(m, "bad \xff", 1, 0, ids, 256) == BITNET_ERROR_PROMPT &&
            strstr(bitnet_get_last_error(), "bitnet_tokenize") != NULL,
        "tokenize invalid UTF-8: %s", bitnet_get_last_error());

  /* A model without a chat template says so. */
  BitNetChatMessage hello[1] = {{"user", "Hello"}};
  CHECK(bitnet_chat_template(m) == NULL, "template %s", bitnet_chat_template(m));
  CHECK(bitnet_chat(m, hello, 1, &p) == NULL && bitnet_get_last_error_code() == BITNET_ERROR_INVALID_ARGUMENT &&
            strstr(bitnet_get_last_error(), "no chat template"),
        "chat without a template: %s", bitnet_get_last_error());

  /* Model info as JSON. */
  char* info = bitnet_model_info_json(m);
  CHECK(info && strstr(info, "\"n_layer\":") && strstr(info, "\"n_vocab\":") && strstr(info, "\"fingerprint\":\""),
        "info: %s", info ? info : "(null)");
  bitnet_free_string(info);

  /* bitnet_inference with a temperature draws a fresh seed each call; the seed it used
   * reproduces its text through bitnet_generate. */
  char* t1 = bitnet_inference(m, prompt, 24, 0.9f);
  const uint64_t s1 = bitnet_get_last_seed();
  char* t2 = bitnet_inference(m, prompt, 24, 0.9f);
  const uint64_t s2 = bitnet_get_last_seed();
  CHECK(t1 && t2 && s1 != s2, "seeds %llu %llu", (unsigned long long)s1, (unsigned long long)s2);
  BitNetGenerateParams again = bitnet_default_params();
  again.max_tokens = 24;
  again.temperature = 0.9f;
  again.seed = s1;
  char* t3 = bitnet_generate(m, prompt, &again);
  CHECK(t1 && t3 && strcmp(t1, t3) == 0, "seed %llu does not reproduce [%s]: [%s]", (unsigned long long)s1,
        t1 ? t1 : "", t3 ? t3 : "");
  bitnet_free_string(t1);
  bitnet_free_string(t2);
  bitnet_free_string(t3);
  bitnet_model_free(m);

  /* A shorter context: the info says it, a prompt longer than it is refused; a negative
   * or too large n_ctx is refused naming the field. */
  BitNetLoadParams short_ctx = {.n_ctx = 8};
  m = bitnet_model_load_with_params(NULL, &short_ctx);
  CHECK(m != NULL, "load with n_ctx 8: %s", bitnet_get_last_error());
  char* short_info = m ? bitnet_model_info_json(m) : NULL;
  CHECK(short_info && strstr(short_info, "\"n_ctx\":8,"), "info: %s", short_info ? short_info : "(null)");
  bitnet_free_string(short_info);
  CHECK(m && bitnet_inference(m, "one two three four five six seven eight nine ten", 4, 0.0f) == NULL &&
            bitnet_get_last_error_code() == BITNET_ERROR_PROMPT,
        "a prompt past n_ctx: %s", bitnet_get_last_error());
  bitnet_model_free(m);
  short_ctx.n_ctx = -1;
  CHECK(bitnet_model_load_with_params(NULL, &short_ctx) == NULL && strstr(bitnet_get_last_error(), "n_ctx"),
        "negative n_ctx: %s", bitnet_get_last_error());
  short_ctx.n_ctx = 1 << 30;
  CHECK(bitnet_model_load_with_params(NULL, &short_ctx) == NULL &&
            bitnet_get_last_error_code() == BITNET_ERROR_INVALID_ARGUMENT && strstr(bitnet_get_last_error(), "n_ctx"),
        "n_ctx past the model's: %s", bitnet_get_last_error());

  /* Only regular files load: a directory, a FIFO and /dev/zero are refused at once. */
  CHECK(bitnet_model_load("/tmp") == NULL && bitnet_get_last_error_code() == BITNET_ERROR_IO &&
            strstr(bitnet_get_last_error(), "bitnet_model_load") && strstr(bitnet_get_last_error(), "regular file"),
        "directory: %s", bitnet_get_last_error());
  CHECK(bitnet_model_load("/dev/zero") == NULL && bitnet_get_last_error_code() == BITNET_ERROR_IO, "/dev/zero: %s",
        bitnet_get_last_error());
  char fifo[64];
  snprintf(fifo, sizeof fifo, "fifo-%d", (int)getpid());
  if (mkfifo(fifo, 0600) == 0) {
    CHECK(bitnet_model_load(fifo) == NULL && bitnet_get_last_error_code() == BITNET_ERROR_IO, "FIFO: %s",
          bitnet_get_last_error());
    unlink(fifo);
  }

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
