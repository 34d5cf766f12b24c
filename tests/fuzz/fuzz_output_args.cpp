// libFuzzer target: the compiled executables' command line (runtime_stub/main/
// output_args.h) on arbitrary arguments (the input split at NUL bytes). Any argument
// list must parse or be refused with a UsageError, and what parses must hold the
// ranges the runtime relies on.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "nul_split.h"
#include "output_args.h"

using namespace bitnetc::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> args = split_at_nul(data, size);
  try {
    const OutputArgs o = parse_output_args(args);
    const SamplerParams& s = o.sampling;
    const bool ok = o.n_predict >= -1 && o.n_ctx >= 0 && o.threads >= 0 && std::isfinite(s.temperature) &&
                    s.top_p >= 0 && s.top_p <= 1 && s.min_p >= 0 && s.min_p <= 1 && s.repeat_penalty > 0 &&
                    std::isfinite(s.repeat_penalty) && (o.top_logits == 0 || o.json) && o.keep >= 0 &&
                    o.parallel >= 0 && o.parallel <= 256 && o.server.port >= 0 && o.server.port <= 65535 &&
                    (o.mode != OutputArgs::Mode::Prompts || !o.prompts_path.empty()) &&
                    (o.mode != OutputArgs::Mode::Bench || (o.bench.repetitions >= 1 && o.bench.sequences >= 1));
    if (!ok) __builtin_trap();  // a value the runtime would misuse got through
  } catch (const UsageError&) {
  }
  return 0;
}
