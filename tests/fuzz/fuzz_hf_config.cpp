// libFuzzer target: the HF config.json parser.
#include <cstdint>
#include <string>

#include "diagnostics.h"
#include "hf_config.h"

using namespace bitnetc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)parse_hf_config_text("config.json", std::string(reinterpret_cast<const char*>(data), size));
  } catch (const ImportError&) {
  }
  return 0;
}
