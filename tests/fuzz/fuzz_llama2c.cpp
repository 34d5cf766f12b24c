// libFuzzer target: the bitllama2.c checkpoint reader and its ternary decoder.
#include <cstdint>

#include "model_import.h"

using namespace bitnetc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const ImportedModel m = import_llama2c(MappedFile::from_memory("fuzz.bin", {data, size}));
    for (const auto& t : m.tensors)
      if (t.type == TensorType::I2_L2C) (void)decode_ternary(m, t);
  } catch (const ImportError&) {
  }
  return 0;
}
