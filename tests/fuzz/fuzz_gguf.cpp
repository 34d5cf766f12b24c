// libFuzzer target: the GGUF reader, then decoding every ternary tensor it accepted
// through the importer's decoders. Any crash, sanitizer report, or exception other than
// ImportError is a bug.
#include <cstdint>
#include <cstring>

#include "gguf.h"
#include "tensor_types.h"

using namespace bitnetc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const GgufFile g = GgufFile::parse(MappedFile::from_memory("fuzz.gguf", {data, size}));
    for (const auto& t : g.tensors()) {
      if (t.ne.size() != 2 || t.n_elements() > (1u << 20)) continue;
      const auto rows = static_cast<int64_t>(t.ne[1]), cols = static_cast<int64_t>(t.ne[0]);
      try {
        switch (t.type) {
          case TensorType::TQ1_0: (void)decode_tq1_0(t.data, rows, cols); break;
          case TensorType::TQ2_0: (void)decode_tq2_0(t.data, rows, cols); break;
          case TensorType::I2_S: (void)decode_i2_s(t.data, rows, cols, I2SLayout::Arm); break;
          case TensorType::TL1:
            if (auto c = default_tl1_config(rows, cols)) (void)decode_tl1(t.data, rows, cols, *c, 1.0f);
            break;
          case TensorType::TL2:
            if (auto c = default_tl2_config(rows, cols)) (void)decode_tl2(t.data, rows, cols, *c, 1.0f);
            break;
          default: break;
        }
      } catch (const std::invalid_argument&) {
        // shapes a codec refuses are reported, not read
      }
    }
  } catch (const ImportError&) {
  }
  return 0;
}
