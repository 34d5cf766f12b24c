// `bitnetc convert MODEL -o OUT.gguf [--type T]`: checkpoints to a GGUF the peers load,
// and lossless re-encoding between weight types (compiler/convert.h).
#include <memory>

#include "commands.h"
#include "convert.h"

namespace bitnetc::cli {

Command add_convert(CLI::App& app) {
  struct Flags {
    std::string model, type, i2s_layout = "x86", embedding_type;
    bool quiet = false;
    ConvertOptions options;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a checkpoint to GGUF, or re-encode a GGUF's weight type");
  cmd->add_option("model", f->model, "bitllama2.c checkpoint, HF checkpoint folder, or GGUF")->required();
  cmd->add_option("-o,--output", f->options.output, "Output .gguf (written atomically)")->required();
  cmd->add_option("--type", f->type,
                  "Weight type: tq2_0 tq1_0 i2_s f32 f16 bf16 (default: tq2_0, or i2_s when rows are not multiples "
                  "of 256)");
  cmd->add_option("--i2s-layout", f->i2s_layout, "I2_S byte order: x86 or arm")->check(CLI::IsMember({"x86", "arm"}));
  cmd->add_option("--token-embedding-type", f->embedding_type,
                  "Token embedding (and untied head) type: f32 f16 bf16 q8_0 (default: the source's f16/bf16, else "
                  "f32; q8_0 rounds, as llama-quantize does)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  cmd->add_option("--tokenizer", f->options.tokenizer,
                  "tokenizer.model, tokenizer.json or GGUF to take the vocabulary from")
      ->check(CLI::ExistingFile);
  cmd->add_flag("-q,--quiet", f->quiet, "No progress on stderr");
  return {cmd, [f] {
            ConvertOptions& o = f->options;
            if (!f->type.empty()) {
              const auto t = type_from_name(f->type);
              if (!t) throw std::invalid_argument("unknown weight type \"" + f->type + "\"");
              o.type = *t;
            }
            o.i2s_layout = f->i2s_layout == "arm" ? I2SLayout::Arm : I2SLayout::X86;
            if (!f->embedding_type.empty()) o.embedding_type = type_from_name(f->embedding_type);
            if (!f->quiet) o.progress = progress_printer();
            convert_to_gguf(import_model(f->model), o);
            return 0;
          }};
}

}  // namespace bitnetc::cli
