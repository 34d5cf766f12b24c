#include "lower.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <map>
#include <set>
#include <tuple>

#include "gguf.h"
#include "tensor_names.h"

namespace bitnetc {

using namespace ir;

namespace {

// Which engine's numerics a family follows, and where its tensors are.
struct Recipe {
  std::string family;
  NormKind norm = NormKind::RmsF64Sum;
  NormKind final_norm = NormKind::RmsF64Sum;
  bool bitnorm = false;   // weightless bitnorm before each BitLinear (runbit.c)
  bool sub_norms = true;  // attn_sub_norm before o, ffn_sub_norm before down
  ActQuant quant = ActQuant::PerBlockQ8K;
  ActQuant per_token = ActQuant::PerTokenBitnetCpp;  // what --act-quant=per-token picks
  RopeStyle rope_style = RopeStyle::Neox;
  RopeFreq rope_freq = RopeFreq::GgmlIterative;
  ScoreScale score_scale = ScoreScale::MultiplyInvSqrt;
  SoftmaxSum softmax_sum = SoftmaxSum::F64MulInverse;
  Activation act = Activation::SiluDiv;
  SourceFormat names = SourceFormat::Gguf;    // whose tensor names (tensor_names.h)
  HfFamily hf_family = HfFamily::BitNetB158;  // which HF family's names (SafeTensors)
  std::optional<double> final_norm_eps;       // when it is not the file's one epsilon
  std::string why;                            // whose numerics, and what in the file says so
};

Recipe hf_recipe(const ImportedModel& m);
Recipe llama2c_recipe();

Recipe gguf_recipe(const ImportedModel& m) {
  // `bitnetc convert` records the numerics of the engine a model came from; peers ignore
  // the key and compute their own.
  const auto numerics = m.gguf()->get_string("bitnetc.numerics");
  if (numerics && *numerics == "bitllama2c") {
    Recipe r = llama2c_recipe();  // the converter permuted wq/wk rows for NEOX pairing
    r.rope_style = RopeStyle::Neox;
    // The file's epsilon is the inner norms' (for the peers); the final norm's is here.
    r.final_norm_eps = m.gguf()->get_float("bitnetc.final_norm_epsilon");
    r.family = "bitnet (bitllama2c numerics)";
    r.why = "bitllama2.c's: the file records bitnetc.numerics = bitllama2c (bitnetc convert)";
    r.names = SourceFormat::Gguf;
    return r;
  }
  if (numerics && *numerics == "transformers") {
    Recipe r = hf_recipe(m);
    r.family = m.architecture + " (transformers numerics)";
    r.why = "transformers': the file records bitnetc.numerics = transformers (bitnetc convert)";
    r.names = SourceFormat::Gguf;
    return r;
  }
  if (numerics)
    m.gguf()->fail(m.gguf()->find("bitnetc.numerics")->value.offset, "bitnetc.numerics",
                   "unknown numerics \"" + std::string(*numerics) + "\" (bitllama2c, transformers)");
  Recipe r;
  r.family = m.architecture;
  r.act = m.hparams->ffn_act == "relu2" ? Activation::Relu2 : Activation::SiluDiv;
  // The activations are quantized as the engine whose weight type the file holds does:
  // bitnet.cpp per token for its I2_S / TL1 / TL2, llama.cpp per 256-block (Q8_K) for
  // its TQ1_0 / TQ2_0; a file of neither (float masters) by its architecture.
  // ik_llama.cpp's IQ1_BN / IQ2_BN per row, in four interleaved groups (its Q8_K64).
  std::optional<ActQuant> by_type;
  for (const ModelTensor& t : m.tensors) {
    if (!t.ternary) continue;
    if (t.type == TensorType::I2_S || t.type == TensorType::TL1 || t.type == TensorType::TL2)
      by_type = ActQuant::PerTokenBitnetCpp;
    else if (t.type == TensorType::TQ1_0 || t.type == TensorType::TQ2_0)
      by_type = ActQuant::PerBlockQ8K;
    else if (t.type == TensorType::IQ1_BN || t.type == TensorType::IQ2_BN)
      by_type = ActQuant::PerRowQ8K64;
    if (by_type) break;
  }
  r.quant = by_type.value_or(m.architecture == "bitnet-b1.58" ? ActQuant::PerTokenBitnetCpp : ActQuant::PerBlockQ8K);
  if (r.quant == ActQuant::PerRowQ8K64) r.per_token = ActQuant::PerRowQ8K64;
  r.why =
      r.quant == ActQuant::PerRowQ8K64
          ? "ik_llama.cpp's: the ternary weights are its IQ1_BN/IQ2_BN, whose kernels take Q8_K64 activations "
            "(four interleaved groups per row); attention as without flash attention"
      : by_type
          ? (r.quant == ActQuant::PerTokenBitnetCpp
                 ? "bitnet.cpp's: the ternary weights are its I2_S/TL1/TL2, whose kernels quantize activations per "
                   "token"
                 : "llama.cpp's: the ternary weights are its TQ1_0/TQ2_0, whose kernels take Q8_K activation blocks")
      : m.architecture == "bitnet-b1.58" ? "bitnet.cpp's: architecture bitnet-b1.58"
                                         : "llama.cpp's: architecture bitnet";
  r.names = SourceFormat::Gguf;
  return r;
}

Recipe hf_recipe(const ImportedModel& m) {
  Recipe r;
  r.family = m.architecture;
  r.norm = r.final_norm = NormKind::RmsF32;
  r.quant = r.per_token = ActQuant::PerTokenHF;
  r.rope_freq = RopeFreq::TorchInvFreq;
  r.softmax_sum = SoftmaxSum::F32Divide;
  r.act = m.hparams->ffn_act == "relu2" ? Activation::Relu2 : Activation::SiluDiv;
  // Both HF families have sub-norms before o_proj and down_proj (2B4T's attn_sub_norm
  // and ffn_sub_norm, 1bitLLM's inner_attn_ln and ffn_layernorm).
  r.sub_norms = true;
  if (m.hf_config) r.hf_family = m.hf_config->family;
  r.names = SourceFormat::SafeTensors;
  r.why = "transformers': an HF checkpoint";
  return r;
}

Recipe llama2c_recipe() {
  Recipe r;
  r.family = "bitllama2c";
  r.norm = NormKind::BitNorm;
  r.bitnorm = true;
  r.sub_norms = false;
  r.final_norm = NormKind::RmsLlama2c;
  r.quant = r.per_token = ActQuant::PerTokenLlama2c;
  r.rope_style = RopeStyle::Interleaved;
  r.rope_freq = RopeFreq::PowfPerPair;
  r.score_scale = ScoreScale::DivideSqrt;
  r.softmax_sum = SoftmaxSum::F32Divide;
  r.act = Activation::SiluLlama2c;
  r.names = SourceFormat::Llama2c;
  r.why = "bitllama2.c's (runbit.c): a bitllama2.c checkpoint";
  return r;
}

// Each engine's arithmetic, as data: what `--numerics` puts over the recipe the file
// gave (which keeps the model's structure and tensor names). bitnet.cpp runs llama.cpp's
// graph; its I2_S kernels quantize activations per token.
struct EngineArithmetic {
  Numerics numerics;
  NormKind norm;
  ActQuant quant, per_token;
  RopeFreq rope_freq;
  ScoreScale score_scale;
  SoftmaxSum softmax_sum;
  Activation silu;
  const char* why;
};
constexpr EngineArithmetic kEngineArithmetic[] = {
    {Numerics::LlamaCpp, NormKind::RmsF64Sum, ActQuant::PerBlockQ8K, ActQuant::PerTokenBitnetCpp,
     RopeFreq::GgmlIterative, ScoreScale::MultiplyInvSqrt, SoftmaxSum::F64MulInverse, Activation::SiluDiv,
     "llama.cpp's: --numerics=llama.cpp"},
    {Numerics::BitnetCpp, NormKind::RmsF64Sum, ActQuant::PerTokenBitnetCpp, ActQuant::PerTokenBitnetCpp,
     RopeFreq::GgmlIterative, ScoreScale::MultiplyInvSqrt, SoftmaxSum::F64MulInverse, Activation::SiluDiv,
     "bitnet.cpp's: --numerics=bitnet.cpp"},
    {Numerics::IkLlamaCpp, NormKind::RmsF64Sum, ActQuant::PerRowQ8K64, ActQuant::PerRowQ8K64,
     RopeFreq::GgmlIterative, ScoreScale::MultiplyInvSqrt, SoftmaxSum::F64MulInverse, Activation::SiluDiv,
     "ik_llama.cpp's (its IQ1_BN/IQ2_BN kernels' Q8_K64 activations; attention as without flash attention): "
     "--numerics=ik_llama.cpp"},
    {Numerics::Transformers, NormKind::RmsF32, ActQuant::PerTokenHF, ActQuant::PerTokenHF, RopeFreq::TorchInvFreq,
     ScoreScale::MultiplyInvSqrt, SoftmaxSum::F32Divide, Activation::SiluDiv, "transformers': --numerics=transformers"},
    {Numerics::Bitllama2c, NormKind::RmsLlama2c, ActQuant::PerTokenLlama2c, ActQuant::PerTokenLlama2c,
     RopeFreq::PowfPerPair, ScoreScale::DivideSqrt, SoftmaxSum::F32Divide, Activation::SiluLlama2c,
     "bitllama2.c's (runbit.c): --numerics=bitllama2c"},
};

void apply_numerics(Recipe& r, Numerics n) {
  for (const EngineArithmetic& e : kEngineArithmetic) {
    if (e.numerics != n) continue;
    if (!r.bitnorm) r.norm = e.norm;  // bitllama2.c's weightless norm is structure
    r.final_norm = e.norm;
    r.quant = e.quant;
    r.per_token = e.per_token;
    r.rope_freq = e.rope_freq;
    r.score_scale = e.score_scale;
    r.softmax_sum = e.softmax_sum;
    if (r.act != Activation::Relu2) r.act = e.silu;  // which function is structure; how SiLU rounds is not
    r.why = e.why;
  }
}

ActQuant effective_quant(const Recipe& r, const LowerOptions& o) {
  if (!o.act_quant) return r.quant;
  return *o.act_quant == ActQuantGranularity::PerBlock ? ActQuant::PerBlockQ8K : r.per_token;
}

Recipe file_recipe(const ImportedModel& m) {
  if (!m.supported || !m.hparams)
    throw ImportError(m.path, ImportError::kNoOffset, "",
                      m.unsupported_reason.empty() ? "cannot lower this model" : m.unsupported_reason);
  switch (m.format) {
    case SourceFormat::Gguf: return gguf_recipe(m);
    case SourceFormat::SafeTensors: return hf_recipe(m);
    case SourceFormat::Llama2c: break;
  }
  return llama2c_recipe();
}

Recipe recipe_for(const ImportedModel& m, const LowerOptions& o) {
  Recipe r = file_recipe(m);
  apply_numerics(r, o.numerics);
  return r;
}

class Lowering {
 public:
  Lowering(const ImportedModel& m, const Recipe& r, const LowerOptions& o) : m_(m), r_(r), o_(o) {}

  Graph build() {
    const Hyperparams& h = *m_.hparams;
    g_.name = r_.family;
    g_.n_vocab = h.n_vocab;
    g_.n_embd = h.n_embd;
    g_.n_layer = h.n_layer;
    g_.n_ctx = o_.n_ctx > 0 ? o_.n_ctx : h.n_ctx;
    g_.n_head_kv = h.n_head_kv;
    g_.head_dim = h.head_dim;
    quant_ = r_.quant;
    if (o_.act_quant) quant_ = *o_.act_quant == ActQuantGranularity::PerBlock ? ActQuant::PerBlockQ8K : r_.per_token;

    const int embd = dense(embedding_name(r_.names), h.n_vocab, h.n_embd);
    int x = g_.add_value("x.embd", DType::F32, h.n_embd);
    Op e{OpKind::Embedding};
    e.output = x;
    e.weight = embd;
    g_.ops.push_back(e);

    const int64_t q_dim = h.n_head * h.head_dim, kv_dim = h.n_head_kv * h.head_dim;
    for (int l = 0; l < h.n_layer; ++l) {
      const std::string p = "l" + std::to_string(l) + ".";
      const int a = norm_before_quant(x, l, Role::AttnNorm, p + "attn_in");
      const int aq = quantize(a, p + "attn_in.q8");
      int q = matmul(aq, l, Role::Q, q_dim, p + "q");
      int k = matmul(aq, l, Role::K, kv_dim, p + "k");
      const int v = matmul(aq, l, Role::V, kv_dim, p + "v");
      q = rope(q, p + "q.rope");
      k = rope(k, p + "k.rope");
      Op at{OpKind::Attention};
      at.inputs = {q, k, v};
      at.output = g_.add_value(p + "attn", DType::F32, q_dim);
      at.layer = l;
      at.n_head = static_cast<int>(h.n_head);
      at.n_head_kv = static_cast<int>(h.n_head_kv);
      at.head_dim = static_cast<int>(h.head_dim);
      at.score_scale = r_.score_scale;
      at.softmax_sum = r_.softmax_sum;
      g_.ops.push_back(at);
      const int o_in = r_.sub_norms ? norm(at.output, l, Role::AttnSubNorm, p + "attn_sub")
                       : r_.bitnorm ? bitnorm(at.output, l, Role::AttnSubNorm, p + "attn_sub")
                                    : at.output;
      const int o = matmul(quantize(o_in, p + "attn_out.q8"), l, Role::O, h.n_embd, p + "o");
      x = add(x, o, p + "x.attn");

      const int f = norm_before_quant(x, l, Role::FfnNorm, p + "ffn_in");
      const int fq = quantize(f, p + "ffn_in.q8");
      const int gate = matmul(fq, l, Role::Gate, h.n_ff, p + "gate");
      const int up = matmul(fq, l, Role::Up, h.n_ff, p + "up");
      Op ga{OpKind::GatedAct};
      ga.inputs = {gate, up};
      ga.output = g_.add_value(p + "ffn_act", DType::F32, h.n_ff);
      ga.act = r_.act;
      g_.ops.push_back(ga);
      const int d_in = r_.sub_norms ? norm(ga.output, l, Role::FfnSubNorm, p + "ffn_sub")
                       : r_.bitnorm ? bitnorm(ga.output, l, Role::FfnSubNorm, p + "ffn_sub")
                                    : ga.output;
      const int d = matmul(quantize(d_in, p + "ffn_out.q8"), l, Role::Down, h.n_embd, p + "down");
      x = add(x, d, p + "x.ffn");
    }
    Op fn{OpKind::Norm};
    fn.inputs = {x};
    fn.output = g_.add_value("x.final_norm", DType::F32, h.n_embd);
    fn.norm = r_.final_norm;
    fn.eps = static_cast<float>(r_.final_norm_eps.value_or(h.rms_eps));
    fn.weight = dense(output_norm_name(r_.names), 1, h.n_embd);
    g_.ops.push_back(fn);
    Op head{OpKind::DenseMatmul};
    head.inputs = {fn.output};
    head.output = g_.add_value("logits", DType::F32, h.n_vocab);
    head.weight = h.tied_embeddings ? embd : dense(output_head_name(r_.names), h.n_vocab, h.n_embd);
    if (const DenseFormat f = g_.dense[head.weight].format; f != DenseFormat::F32) {
      // llama.cpp's head of a k-quant or Q8_0 type: activations to its vec_dot_type (Q8_K,
      // Q8_0), then ggml's integer dot per block, whatever the ternary layers' numerics.
      const bool kquant = f == DenseFormat::KQuant;
      Op q{OpKind::Quantize};
      q.inputs = {fn.output};
      q.output = g_.add_value("x.final_norm.q8", DType::Q8, h.n_embd);
      q.quant = kquant ? ActQuant::PerBlockQ8K : ActQuant::PerBlockQ8_0;
      g_.ops.push_back(q);
      head.kind = kquant ? OpKind::KQuantMatmul : OpKind::Q8_0Matmul;
      head.inputs = {q.output};
    }
    g_.ops.push_back(head);
    g_.logits = head.output;

    check_every_tensor_read();
    if (o_.weight_data) {  // else codegen checks them as it decodes each weight
      std::vector<std::pair<std::string, float>> typical;
      for (const NamedTernary& t : g_.ternary) typical.push_back({t.name, typical_scale(t.w)});
      check_scales_across_layers(m_, typical);
    }
    const auto errors = verify(g_);
    if (!errors.empty())
      throw ImportError(m_.path, ImportError::kNoOffset, "", "lowering produced an invalid graph: " + errors[0]);
    return std::move(g_);
  }

 private:
  const ModelTensor& tensor(const std::string& name) {
    const ModelTensor* t = m_.find(name);
    if (!t) throw ImportError(m_.path, ImportError::kNoOffset, name, "missing tensor (needed by " + r_.family + ")");
    read_.insert(name);
    return *t;
  }

  // A tensor the graph never reads is a part of the model bitnetc would silently drop
  // (1bitLLM's sub-norms were, once): an error naming it. Scales that belong to a weight
  // that is read (`X.weight_scale`, TL's `X.weight_scale`, llama.cpp's `X.scale`) and
  // HF's rotary `inv_freq` buffers (recomputed from rope_theta) are read with it.
  void check_every_tensor_read() const {
    auto belongs_to_a_read_weight = [&](const std::string& n) {
      for (const char* suffix : {".weight_scale", ".scale"})
        if (const size_t k = std::string(suffix).size(); n.size() > k && n.compare(n.size() - k, k, suffix) == 0 &&
                                                         read_.count(n.substr(0, n.size() - k) + ".weight"))
          return true;
      return false;
    };
    for (const ModelTensor& t : m_.tensors) {
      if (read_.count(t.name) || belongs_to_a_read_weight(t.name)) continue;
      if (t.name.size() > 20 && t.name.compare(t.name.size() - 20, 20, ".rotary_emb.inv_freq") == 0) continue;
      throw ImportError(t.file, t.file_offset, t.name,
                        "is never read by the " + r_.family +
                            " graph this model lowers to: bitnetc does not know what it computes, and will not "
                            "compile the model without it");
    }
  }

  // A dense tensor as float, checked against the expected element count.
  int dense(const std::string& name, int64_t rows, int64_t cols) {
    const ModelTensor& t = tensor(name);
    if (t.n_params != static_cast<uint64_t>(rows * cols))
      throw ImportError(t.file, t.file_offset, name,
                        "has " + std::to_string(t.n_params) + " elements, expected " + std::to_string(rows) + " x " +
                            std::to_string(cols));
    DenseWeights w;
    w.name = name;
    w.rows = rows;
    w.cols = cols;
    // A k-quant matrix (llama.cpp's embedding and head types) keeps its codes and scales.
    if (rows > 1 && is_kquant(t.type)) {
      if (cols % KQuantWeights::kBlock != 0)
        throw ImportError(t.file, t.file_offset, name, "k-quant rows must be whole 256-blocks");
      w.format = DenseFormat::KQuant;
      if (o_.weight_data) w.kquant = decode_kquant(t.type, t.data, rows, cols);
      return g_.add_dense(std::move(w));
    }
    if (rows > 1 && t.type == TensorType::Q8_0) {  // as llama.cpp's: its codes and half factors
      if (cols % Q8_0Weights::kBlock != 0)
        throw ImportError(t.file, t.file_offset, name, "Q8_0 rows must be whole 32-blocks");
      w.format = DenseFormat::Q8_0;
      if (o_.weight_data) w.q8_0 = decode_q8_0(t.data, rows, cols);
      return g_.add_dense(std::move(w));
    }
    if (o_.weight_data) w.data = decode_dense(t);
    return g_.add_dense(std::move(w));
  }

  int norm(int x, int l, Role role, const std::string& name) {
    Op op{OpKind::Norm};
    op.inputs = {x};
    op.output = g_.add_value(name, DType::F32, g_.values[x].size);
    op.norm = r_.norm;
    op.eps = static_cast<float>(m_.hparams->rms_eps);
    op.weight = dense(layer_tensor_name(r_.names, l, role, r_.hf_family), 1, g_.values[x].size);
    g_.ops.push_back(op);
    return op.output;
  }

  // bitllama2.c's weightless norm. A GGUF that `bitnetc convert` wrote carries it for the
  // peers as an RMS norm with weights 1/n: those must be exactly that.
  int bitnorm(int x, int l, Role role, const std::string& name) {
    if (r_.names == SourceFormat::Gguf) {
      const std::string tname = layer_tensor_name(r_.names, l, role);
      const ModelTensor& t = tensor(tname);
      const float want = 1.0f / static_cast<float>(g_.values[x].size);
      const std::vector<float> w = decode_dense(t);
      if (w.size() != static_cast<size_t>(g_.values[x].size) ||
          std::any_of(w.begin(), w.end(), [&](float v) { return v != want; }))
        throw ImportError(t.file, t.file_offset, tname,
                          "must hold 1/n in every element: with bitllama2c numerics this norm is BitLinear's "
                          "weightless one, which the file spells as an RMS norm with weights 1/n for the peers");
    }
    Op op{OpKind::Norm};
    op.inputs = {x};
    op.output = g_.add_value(name, DType::F32, g_.values[x].size);
    op.norm = NormKind::BitNorm;
    g_.ops.push_back(op);
    return op.output;
  }

  int norm_before_quant(int x, int l, Role role, const std::string& name) {
    return r_.bitnorm ? bitnorm(x, l, role, name) : norm(x, l, role, name);
  }

  int quantize(int x, const std::string& name) {
    const int64_t n = g_.values[x].size;
    if (act_quant_is_per_block(quant_) && n % 256 != 0)
      throw ImportError(m_.path, ImportError::kNoOffset, "act_quant",
                        "per-block activation quantization needs widths that are multiples of 256 (" + name + " has " +
                            std::to_string(n) + ")");
    if (quant_ == ActQuant::PerRowQ8K64 && n % 16 != 0)
      throw ImportError(m_.path, ImportError::kNoOffset, "act_quant",
                        "ik_llama.cpp's Q8_K64 activations need widths that are multiples of 16 (" + name + " has " +
                            std::to_string(n) + ")");
    Op op{OpKind::Quantize};
    op.inputs = {x};
    op.output = g_.add_value(name, DType::Q8, n);
    op.quant = quant_;
    g_.ops.push_back(op);
    return op.output;
  }

  int matmul(int xq, int l, Role role, int64_t rows, const std::string& name) {
    const std::string tname = layer_tensor_name(r_.names, l, role, r_.hf_family);
    const ModelTensor& t = tensor(tname);
    TernaryWeights w;
    if (o_.weight_data) {
      w = decode_ternary(m_, t, o_.decode);
    } else {  // shape only; load_weight_data decodes it when it is packed
      std::tie(w.rows, w.cols) = ternary_dims(t);
    }
    if (w.rows != rows || w.cols != g_.values[xq].size)
      throw ImportError(t.file, t.file_offset, tname,
                        "is " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + ", expected " +
                            std::to_string(rows) + " x " + std::to_string(g_.values[xq].size));
    if (quant_ == ActQuant::PerRowQ8K64)
      if (const std::string problem = q8k64_scale_problem(w); !problem.empty())
        throw ImportError(t.file, t.file_offset, tname, problem);
    Op op{OpKind::TernaryMatmul};
    op.inputs = {xq};
    op.output = g_.add_value(name, DType::F32, rows);
    op.weight = g_.add_ternary(tname, std::move(w));
    g_.ops.push_back(op);
    return op.output;
  }

  int rope(int x, const std::string& name) {
    Op op{OpKind::Rope};
    op.inputs = {x};
    op.output = g_.add_value(name, DType::F32, g_.values[x].size);
    op.rope_style = r_.rope_style;
    op.rope_freq = r_.rope_freq;
    op.rope_theta = static_cast<float>(m_.hparams->rope_theta);
    op.head_dim = static_cast<int>(m_.hparams->head_dim);
    g_.ops.push_back(op);
    return op.output;
  }

  int add(int a, int b, const std::string& name) {
    Op op{OpKind::Add};
    op.inputs = {a, b};
    op.output = g_.add_value(name, DType::F32, g_.values[a].size);
    g_.ops.push_back(op);
    return op.output;
  }

  const ImportedModel& m_;
  const Recipe& r_;
  const LowerOptions& o_;
  ActQuant quant_ = ActQuant::PerTokenHF;
  Graph g_;
  std::set<std::string> read_;  // tensors the graph reads
};

}  // namespace

std::string q8k64_scale_problem(const TernaryWeights& w) {
  if (w.cols <= 0 || w.scale_block % static_cast<uint64_t>(w.cols) == 0) return {};
  return "has a weight scale per block of " + std::to_string(w.scale_block) +
         " (llama.cpp's quantizer); ik_llama.cpp's Q8_K64 arithmetic takes one scale per row: choose other numerics "
         "(--numerics=llama.cpp)";
}

std::optional<Numerics> numerics_from_name(std::string_view name) {
  if (name == "auto") return Numerics::Auto;
  if (name == "llama.cpp") return Numerics::LlamaCpp;
  if (name == "bitnet.cpp") return Numerics::BitnetCpp;
  if (name == "ik_llama.cpp") return Numerics::IkLlamaCpp;
  if (name == "transformers") return Numerics::Transformers;
  if (name == "bitllama2c") return Numerics::Bitllama2c;
  return std::nullopt;
}

Semantics semantics(const ImportedModel& m, const LowerOptions& options) {
  const Recipe r = recipe_for(m, options);
  return {r.family, effective_quant(r, options), r.act, r.norm, r.rope_style, r.rope_freq, r.sub_norms, r.bitnorm,
          r.why};
}

Graph lower(const ImportedModel& m, const LowerOptions& options) {
  const Recipe r = recipe_for(m, options);
  return Lowering(m, r, options).build();
}

void load_weight_data(const ImportedModel& m, const DecodeOptions& decode, NamedTernary& w) {
  const ModelTensor* t = m.find(w.name);
  if (!t) throw std::logic_error("load_weight_data: no tensor " + w.name);
  w.w = decode_ternary(m, *t, decode);
}

void check_weight_values(const ImportedModel& m, const DecodeOptions& decode, const ir::Graph& g) {
  std::vector<std::pair<std::string, float>> typical;
  for (NamedTernary t : g.ternary) {
    load_weight_data(m, decode, t);
    typical.push_back({t.name, typical_scale(t.w)});
  }
  check_scales_across_layers(m, typical);
  for (DenseWeights d : g.dense) {
    if (d.format != DenseFormat::F32 || d.rows == 1) {
      load_weight_data(m, d);
      continue;
    }
    const auto rows = weight_rows(m, d);
    std::vector<float> row(static_cast<size_t>(d.cols));
    for (int64_t r = 0; r < d.rows; ++r) rows(r, row.data());  // decode_dense_row checks each
  }
}

void load_weight_data(const ImportedModel& m, DenseWeights& w) {
  const ModelTensor* t = m.find(w.name);
  if (!t) throw std::logic_error("load_weight_data: no tensor " + w.name);
  if (w.format == DenseFormat::KQuant)
    w.kquant = decode_kquant(t->type, t->data, w.rows, w.cols);
  else if (w.format == DenseFormat::Q8_0)
    w.q8_0 = decode_q8_0(t->data, w.rows, w.cols);
  else
    w.data = decode_dense(*t);
}

std::function<void(int64_t, float*)> weight_rows(const ImportedModel& m, const DenseWeights& w) {
  if (!w.data.empty()) return [&w](int64_t r, float* out) { std::copy_n(w.data.begin() + r * w.cols, w.cols, out); };
  const ModelTensor* t = m.find(w.name);
  if (!t) throw std::logic_error("weight_rows: no tensor " + w.name);
  // Rows are read in order: the pages behind the rows read leave the RSS as it goes (a
  // 2B4T head's source is 656 MB), ImportedModel::kDropPagesChunk at a time.
  const uint64_t row_bytes = t->shape.size() == 2 ? tensor_nbytes(t->type, t->shape[1], 1).value_or(0) : 0;
  auto dropped = std::make_shared<uint64_t>(0);  // bytes of the tensor dropped so far
  return [t, &m, row_bytes, dropped](int64_t r, float* out) {
    decode_dense_row(*t, r, out);
    const uint64_t begin = static_cast<uint64_t>(r) * row_bytes, read = begin + row_bytes;
    if (begin < *dropped) *dropped = begin;  // another pass over the rows
    if (read >= t->nbytes || read - *dropped >= ImportedModel::kDropPagesChunk) {
      m.drop_pages(*t, *dropped, read - *dropped);
      *dropped = read;
    }
  };
}

}  // namespace bitnetc
