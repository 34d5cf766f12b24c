/* story: greedy continuation of argv[1] by the model compiled into libstories.so. */
#include <stdio.h>

#include "bitnet.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PROMPT\n", argv[0]);
    return 2;
  }
  BitNetModel* model = bitnet_model_load(NULL); /* the model compiled into the library */
  if (!model) {
    fprintf(stderr, "story: %s\n", bitnet_get_last_error());
    return 1;
  }
  char* text = bitnet_inference(model, argv[1], 32, 0.0f);
  if (!text) {
    fprintf(stderr, "story: %s\n", bitnet_get_last_error());
    bitnet_model_free(model);
    return 1;
  }
  printf("%s%s\n", argv[1], text);
  bitnet_free_string(text);
  bitnet_model_free(model);
  return 0;
}
