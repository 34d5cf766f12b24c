// libFuzzer target: the SafeTensors reader.
#include <cstdint>

#include "safetensors.h"

using namespace bitnetc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const SafeTensorsFile f = SafeTensorsFile::parse(MappedFile::from_memory("fuzz.safetensors", {data, size}));
    volatile uint64_t sum = 0;
    for (const auto& t : f.tensors())
      if (t.nbytes) sum = sum + t.data[0] + t.data[t.nbytes - 1];  // the ranges must be readable
  } catch (const ImportError&) {
  }
  return 0;
}
