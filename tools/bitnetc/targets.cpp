// `bitnetc targets`: the target table (compiler/targets.h) and what `host` is here.
#include <cstdio>

#include "commands.h"
#include "cpu_features.h"
#include "layouts.h"
#include "targets.h"

namespace bitnetc::cli {

Command add_targets(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("targets", "List the compilation targets (and what `host` is here)");
  return {cmd, [] {
            std::printf("%-21s %-7s %-9s %-15s %s\n", "target", "vector", "layouts", "cpu", "Halide target");
            for (const auto& t : targets()) {
              const bool gpu = t.backend == Backend::Cuda;
              std::string layouts;
              for (auto l : t.layouts) layouts += (layouts.empty() ? "" : ",") + std::string(codegen::layout_label(l));
              const std::string here =
                  runs_on_this_cpu(t)    ? "runs natively"
                  : runs_natively(t)     ? "runs natively on a CPU with " + rt::describe_cpu_features(t.cpu_features)
                  : gpu                  ? "runs with an NVIDIA GPU of this SM or newer and its driver"
                  : t.emulator.empty()   ? "no way to run it on this machine"
                                         : "runs under " + t.emulator;
              std::printf("%-21s %-7s %-9s %-15s %s\n    %s; here: %s\n", t.name.c_str(),
                          gpu ? "gpu" : std::to_string(t.vector_bytes * 8).c_str(), layouts.c_str(),
                          gpu ? t.cuda_sm.c_str() : t.llc_cpu.c_str(), gpu ? "(NVRTC)" : t.halide.c_str(),
                          t.description.c_str(), here.c_str());
            }
            std::printf("host                  = %s on this machine\n", host_target().name.c_str());
            return 0;
          }};
}

}  // namespace bitnetc::cli
