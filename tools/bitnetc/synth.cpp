// `bitnetc synth -o OUT.gguf [...]`: a seeded synthetic BitNet GGUF for tests and
// benchmarks (compiler/synthetic_model.h).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "synthetic_model.h"

namespace bitnetc::cli {

Command add_synth(CLI::App& app) {
  struct Flags {
    SyntheticSpec spec;
    std::string output, weight_type = "tq2_0", embd_type = "f32", i2s_layout = "x86", shape;
  };
  auto f = std::make_shared<Flags>();
  SyntheticSpec& spec = f->spec;
  CLI::App* cmd = app.add_subcommand("synth", "Write a seeded synthetic BitNet GGUF (for tests and benchmarks)");
  cmd->add_option("-o,--output", f->output, "Output .gguf")->required();
  cmd->add_option("--arch", spec.arch, "bitnet or bitnet-b1.58")->check(CLI::IsMember({"bitnet", "bitnet-b1.58"}));
  cmd->add_option("--type", f->weight_type, "Weight type: tq1_0 tq2_0 i2_s tl1 tl2 q8_0 f16 bf16 f32");
  cmd->add_option("--embd-type", f->embd_type, "Embedding type: f32 f16 bf16 q8_0");
  cmd->add_option("--i2s-layout", f->i2s_layout, "I2_S byte order: x86 or arm")->check(CLI::IsMember({"x86", "arm"}));
  cmd->add_option("--shape", f->shape, "Preset shape: 2b4t (BitNet b1.58 2B4T) or tiny")
      ->check(CLI::IsMember({"2b4t", "tiny"}));
  cmd->add_option("--vocab", spec.n_vocab, "Vocabulary size");
  cmd->add_option("--embd", spec.n_embd, "Embedding width");
  cmd->add_option("--ff", spec.n_ff, "FFN width");
  cmd->add_option("--layers", spec.n_layer, "Number of blocks");
  cmd->add_option("--heads", spec.n_head, "Attention heads");
  cmd->add_option("--kv-heads", spec.n_head_kv, "KV heads");
  cmd->add_option("--ctx", spec.n_ctx, "Context length");
  cmd->add_option("--seed", spec.seed, "Seed");
  cmd->add_flag("--block-scales", spec.block_scales,
                "TQ1_0/TQ2_0: a different scale per 256-weight block, as llama.cpp's quantizer writes");
  return {cmd, [f, cmd] {
            SyntheticSpec& spec = f->spec;
            // A preset fills the dimensions the command line does not give (--layers 4 wins).
            auto preset = [&](const char* flag, int64_t& field, int64_t value) {
              if (cmd->count(flag) == 0) field = value;
            };
            auto apply = [&](int64_t vocab, int64_t embd, int64_t ff, int64_t layers, int64_t heads, int64_t kv_heads,
                             int64_t ctx) {
              preset("--vocab", spec.n_vocab, vocab);
              preset("--embd", spec.n_embd, embd);
              preset("--ff", spec.n_ff, ff);
              preset("--layers", spec.n_layer, layers);
              preset("--heads", spec.n_head, heads);
              preset("--kv-heads", spec.n_head_kv, kv_heads);
              preset("--ctx", spec.n_ctx, ctx);
            };
            if (f->shape == "2b4t") {  // BitNet b1.58 2B4T's shape (the benchmark model of DESIGN.md)
              apply(128256, 2560, 6912, 30, 20, 5, 4096);
              spec.rope_theta = 500000.0;
            } else if (f->shape == "tiny") {
              apply(320, 256, 512, 1, 4, 2, 64);
            }
            const auto wt = type_from_name(f->weight_type);
            if (!wt) throw std::invalid_argument("unknown weight type \"" + f->weight_type + "\"");
            spec.weight_type = *wt;
            const auto et = type_from_name(f->embd_type);
            if (!et) throw std::invalid_argument("unknown embedding type \"" + f->embd_type + "\"");
            spec.embd_type = *et;
            spec.i2s_layout = f->i2s_layout == "arm" ? I2SLayout::Arm : I2SLayout::X86;
            make_synthetic_gguf(spec).write(f->output);
            std::fprintf(stderr, "wrote %s\n", f->output.c_str());
            return 0;
          }};
}

}  // namespace bitnetc::cli
