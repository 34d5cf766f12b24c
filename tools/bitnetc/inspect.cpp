// `bitnetc inspect MODEL [--json]`: what the importer sees in a model.
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "gguf.h"
#include "interpreter.h"
#include "layouts.h"
#include "lower.h"
#include "model_import.h"
#include "tokenizer_import.h"

namespace bitnetc::cli {

using nlohmann::json;

namespace {

std::string shape_str(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
  else if (b >= (1ull << 10))
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
  return buf;
}

json hparams_json(const Hyperparams& h) {
  return json{{"n_vocab", h.n_vocab},
              {"n_embd", h.n_embd},
              {"n_ff", h.n_ff},
              {"n_layer", h.n_layer},
              {"n_head", h.n_head},
              {"n_head_kv", h.n_head_kv},
              {"head_dim", h.head_dim},
              {"n_ctx", h.n_ctx},
              {"rope_theta", h.rope_theta},
              {"rms_eps", h.rms_eps},
              {"ffn_activation", h.ffn_act},
              {"tied_embeddings", h.tied_embeddings}};
}

std::string format_line(const ImportedModel& m) {
  std::string s = source_format_name(m.format);
  if (const GgufFile* g = m.gguf()) {
    s += " v" + std::to_string(g->version()) + " (alignment " + std::to_string(g->alignment()) + ", data at byte " +
         std::to_string(g->data_offset()) + (g->bitnet_cpp_dialect() ? ", bitnet.cpp type ids" : "") + ")";
  }
  return s;
}

// What compile would refuse in a model of a supported architecture, found without
// compiling: missing or unused tensors, the tokenizer, damaged weight values. Throws
// (an error and exit 1 after the report); 0 when compile would take it.
int check_compilable(const ImportedModel& m, const LowerOptions& lo) {
  std::fflush(stdout);
  if (!m.supported) return 0;  // the report says why bitnetc cannot compile it
  LowerOptions shapes_only = lo;
  shapes_only.weight_data = false;
  const ir::Graph g = lower(m, shapes_only);
  (void)stop_tokens(m, load_vocab(m));
  check_weight_values(m, lo.decode, g);
  return 0;
}

}  // namespace

int inspect(const InspectOptions& o) {
  ImportOptions io;
  io.require_supported = false;
  const ImportedModel m = import_model(o.model, io);
  LowerOptions lo = lower_options(o.act_quant, o.numerics);
  if (o.ir) {  // the IR's text form, as the golden-IR tests compare it
    std::fputs(ir::print(lower(m, lo)).c_str(), stdout);
    return 0;
  }
  std::optional<Semantics> sem;
  if (m.supported) sem = semantics(m, lo);

  if (o.json) {
    json j;
    j["file"] = m.path;
    j["format"] = source_format_name(m.format);
    j["architecture"] = m.architecture;
    j["supported"] = m.supported;
    if (!m.supported) j["unsupported_reason"] = m.unsupported_reason;
    j["metadata"] = m.metadata_json(o.full ? 0 : 64);
    if (m.hparams) j["hyperparameters"] = hparams_json(*m.hparams);
    if (sem)
      j["semantics"] = {
          {"family", sem->family},
          {"act_quant", ir::act_quant_name(sem->act_quant)},
          {"ffn_activation", ir::activation_name(sem->ffn_act)},
          {"norm", ir::norm_name(sem->norm)},
          {"rope", std::string(ir::rope_style_name(sem->rope_style)) + "/" + ir::rope_freq_name(sem->rope_freq)},
          {"sub_norms", sem->sub_norms},
          {"why", sem->why}};
    j["tokenizer"] = {{"kind", m.tokenizer.kind},
                      {"source", m.tokenizer.source},
                      {"n_tokens", m.tokenizer.n_tokens},
                      {"bos", m.tokenizer.bos},
                      {"eos", m.tokenizer.eos}};
    json tensors = json::array();
    for (const auto& t : m.tensors)
      tensors.push_back({{"name", t.name},
                         {"type", type_name(t.type)},
                         {"shape", t.shape},
                         {"offset", t.file_offset},
                         {"nbytes", t.nbytes},
                         {"n_params", t.n_params},
                         {"ternary", t.ternary}});
    j["tensors"] = tensors;
    j["n_params"] = m.n_params();
    j["ternary_params"] = m.ternary_params();
    j["ternary_bytes"] = m.ternary_bytes();
    j["bytes_per_token"] = m.bytes_per_token();
    // Token strings need not be UTF-8 (byte-level vocabularies); never fail on them.
    std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << std::endl;
    return check_compilable(m, lo);
  }

  std::printf("file:          %s\n", m.path.c_str());
  std::printf("format:        %s\n", format_line(m).c_str());
  std::printf("architecture:  %s%s\n", m.architecture.empty() ? "(none)" : m.architecture.c_str(),
              m.supported ? "" : "  (bitnetc cannot compile this model)");
  if (!m.supported) std::printf("               %s\n", m.unsupported_reason.c_str());
  if (m.hparams) {
    const Hyperparams& h = *m.hparams;
    std::printf("hyperparameters:\n");
    std::printf("  vocab %" PRId64 ", embedding %" PRId64 ", FFN %" PRId64 " (%s), layers %" PRId64 "\n", h.n_vocab,
                h.n_embd, h.n_ff, h.ffn_act.c_str(), h.n_layer);
    std::printf("  heads %" PRId64 " (KV heads %" PRId64 ", head dim %" PRId64 "), context %" PRId64 "\n", h.n_head,
                h.n_head_kv, h.head_dim, h.n_ctx);
    std::printf("  rope theta %g, rms eps %g, %s embeddings\n", h.rope_theta, h.rms_eps,
                h.tied_embeddings ? "tied" : "separate output");
  }
  if (sem)
    std::printf("semantics:     %s numerics: activations %s, FFN %s, norm %s, RoPE %s/%s%s\n", sem->family.c_str(),
                ir::act_quant_name(sem->act_quant), ir::activation_name(sem->ffn_act), ir::norm_name(sem->norm),
                ir::rope_style_name(sem->rope_style), ir::rope_freq_name(sem->rope_freq),
                sem->sub_norms ? ", sub-norms"
                : sem->bitnorm ? ", bitnorm before each BitLinear"
                               : "");
  if (sem) std::printf("               numerics: %s\n", sem->why.c_str());
  std::printf("tokenizer:     %s", m.tokenizer.kind.empty() ? "(none)" : m.tokenizer.kind.c_str());
  if (m.tokenizer.n_tokens) std::printf(", %" PRId64 " tokens", m.tokenizer.n_tokens);
  if (m.tokenizer.bos >= 0) std::printf(", bos %" PRId64, m.tokenizer.bos);
  if (m.tokenizer.eos >= 0) std::printf(", eos %" PRId64, m.tokenizer.eos);
  if (!m.tokenizer.source.empty()) std::printf("  [%s]", m.tokenizer.source.c_str());
  std::printf("\n");

  const json md = m.metadata_json(o.full ? 0 : 16);
  std::printf("metadata (%zu keys):\n", md.size());
  for (auto& [k, v] : md.items()) {
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (!o.full && s.size() > 160) s = s.substr(0, 157) + "...";
    std::printf("  %-44s %s\n", k.c_str(), s.c_str());
  }

  std::printf("tensors (%zu):\n", m.tensors.size());
  std::printf("  %-48s %-7s %-16s %12s %12s\n", "name", "type", "shape", "bytes", "offset");
  for (const auto& t : m.tensors)
    std::printf("  %-48s %-7s %-16s %12" PRIu64 " %12" PRIu64 "\n", t.name.c_str(), type_name(t.type),
                shape_str(t.shape).c_str(), t.nbytes, t.file_offset);
  std::printf("totals:\n");
  std::printf("  parameters      %" PRIu64 " (%" PRIu64 " ternary)\n", m.n_params(), m.ternary_params());
  std::printf("  ternary bytes   %" PRIu64 " (%s, as stored)\n", m.ternary_bytes(),
              human_bytes(m.ternary_bytes()).c_str());
  std::printf("  bytes per token %" PRIu64 " (%s read to decode one token)\n", m.bytes_per_token(),
              human_bytes(m.bytes_per_token()).c_str());
  if (!o.target.empty()) {
    const TargetInfo* t = find_target(o.target);
    if (!t) throw std::invalid_argument("unknown target \"" + o.target + "\" (bitnetc targets lists them)");
    if (!m.supported) throw std::invalid_argument(m.path + ": " + m.unsupported_reason);
    LowerOptions shapes_only = lo;
    shapes_only.weight_data = false;  // the plan needs shapes, not values
    const ir::Graph g = lower(m, shapes_only);
    const auto choices = codegen::choose_layouts(g, *t, codegen::parse_layout_request(o.layout), &m);
    std::printf("layouts on %s (--layout=%s):\n", t->name.c_str(), o.layout.c_str());
    for (size_t i = 0; i < g.ternary.size(); ++i)
      std::printf("  %-48s %-5s %s\n", g.ternary[i].name.c_str(), codegen::layout_label(choices[i].layout),
                  choices[i].reason.c_str());
  }
  return check_compilable(m, lo);
}

Command add_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a model's metadata, hyperparameters, tensors and totals");
  cmd->add_option("model", o->model, "GGUF file, HF checkpoint folder, or bitllama2.c checkpoint")->required();
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->add_flag("--full", o->full, "Print metadata arrays in full (tokens, scores, ...)");
  cmd->add_flag("--ir", o->ir, "Print the lowered ternary IR (text form)");
  cmd->add_option("--target", o->target,
                  "Also show the weight layout each ternary tensor gets on this target, and why");
  cmd->add_option("--layout", o->layout, "With --target: the layout request (see compile --layout)")
      ->check(CLI::IsMember(kLayoutRequests));
  add_act_quant_option(cmd, o->act_quant);
  add_numerics_option(cmd, o->numerics);
  return {cmd, [o] { return inspect(*o); }};
}

}  // namespace bitnetc::cli
