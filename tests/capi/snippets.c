/* The C snippets of the BitNet libraries' documentation, verbatim, in one program that
 * builds as C11 and as C++20 against bitnet_c.h. Run in a folder holding the compiled
 * model's source as model.gguf. Prints the generated texts for the test to compare. */
#include <stdio.h>
#include <stdlib.h>

#include "bitnet_c.h"

void token_callback(const char* token, void* user_data) { printf("%s", token); }

int main(int argc, char** argv) {
  const char* prompt = argc > 1 ? argv[1] : "Once upon a time";

  BitNetModel* model = bitnet_model_load("model.gguf");
  if (!model) {
    fprintf(stderr, "Failed to load model: %s\n", bitnet_get_last_error());
    return -1;
  }
  char* output = bitnet_inference(model, prompt, 100, 0.7f);
  if (output) {
    printf("Generated: %s\n", output);
    bitnet_free_string(output);
  }

  printf("streamed: ");
  BitNetStreamConfig config = {
      .max_new_tokens = 100, .temperature = 0.7f, .callback = token_callback, .user_data = NULL};
  bitnet_inference_stream(model, prompt, &config);
  printf("\n");

  const char* error = bitnet_get_last_error();
  int error_code = bitnet_get_last_error_code();
  printf("error %d [%s]\n", error_code, error);

  printf("pulled: ");
  BitNetStream* stream = bitnet_stream_create(model, prompt);
  char* token;
  while ((token = bitnet_stream_next(stream)) != NULL) {
    printf("%s", token);
    free(token);
  }
  bitnet_stream_free(stream);
  printf("\n");

  /* What the pull stream's defaults generate in one call, to compare. */
  BitNetGenerateParams defaults = bitnet_default_params();
  char* same = bitnet_generate(model, prompt, &defaults);
  printf("generated: %s\n", same ? same : "");
  bitnet_free_string(same);
  bitnet_model_free(model);
  return 0;
}
