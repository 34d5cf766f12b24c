#include "cpu_kernels.h"

#include <filesystem>
#include <map>

#include "kernel_abi.h"
#include "kernel_objects.h"

namespace bitnetc::codegen {

CpuKernels emit_cpu_kernels(const TargetInfo& target, const PackedWeights& packed, const CpuPlan& plan,
                            const std::string& work_dir, const std::function<void(const std::string&)>& say) {
  // Per family, the kernels in table order: each writes its object under its name.
  using Emit = std::function<void(const std::string& fn, const std::string& object)>;
  std::map<std::string, std::vector<Emit>> jobs;
  for (const TernaryKernel& k : packed.ternary_kernels)
    for (int batch : {1, kCpuPrefillBatch}) {
      Emit emit;
      if (k.layout == rt::TernaryLayout::I2S) {
        schedules::TernaryMatmulShape shape = k.i2s;
        shape.batch = batch;
        emit = [&target, shape](const std::string& fn, const std::string& obj) {
          emit_ternary_matmul_object(shape, target, fn, obj);
        };
      } else {
        schedules::LutMatmulShape shape = k.lut;
        shape.batch = batch;
        emit = [&target, shape](const std::string& fn, const std::string& obj) {
          emit_lut_matmul_object(shape, target, fn, obj);
        };
      }
      jobs[batch == 1 ? "gemv" : "gemm"].push_back(emit);
    }
  for (const schedules::DenseMatmulShape& shape : packed.dense_kernels)
    jobs["dense"].push_back(
        [&target, shape](const std::string& fn, const std::string& obj) { emit_dense_matmul_object(shape, target, fn, obj); });
  const int V = target.vector_bytes;
  for (const NormQuantKernelKey& k : plan.norm_quant)
    jobs["norm_quant"].push_back([&target, k, V](const std::string& fn, const std::string& obj) {
      emit_norm_quant_object({k.n, k.K_padded, k.block, k.norm, k.norm_weight, k.eps(), k.quant, V}, target, fn, obj);
    });
  for (const AttentionKernelKey& k : plan.attention)
    jobs["attention"].push_back([&target, k, V](const std::string& fn, const std::string& obj) {
      emit_attention_object({k.head_dim, k.n_head, k.n_head_kv, k.score_scale, k.softmax_sum, V}, target, fn, obj);
    });
  for (const RopeKernelKey& k : plan.rope)
    jobs["rope"].push_back([&target, k, V](const std::string& fn, const std::string& obj) {
      emit_rope_object({k.n, k.head_dim, k.style, V}, target, fn, obj);
    });
  for (const KQuantKernelKey& k : plan.kquant)
    jobs["kquant"].push_back([&target, k, V](const std::string& fn, const std::string& obj) {
      emit_kquant_matmul_object({k.K, k.N, V}, target, fn, obj);
    });
  for (const KQuantKernelKey& k : plan.q8_0)
    jobs["q8_0"].push_back([&target, k, V](const std::string& fn, const std::string& obj) {
      emit_q8_0_matmul_object({k.K, k.N, V}, target, fn, obj);
    });

  size_t n_kernels = 0;
  for (const auto& [family, list] : jobs) n_kernels += list.size();
  if (n_kernels != 0) say("generating " + std::to_string(n_kernels) + " kernels for " + target.name);

  CpuKernels out;
  std::string& table = out.table_source;
  table = "#include \"HalideRuntime.h\"\n#include <cstdint>\n";
  table += "extern \"C\" const uint32_t bitnetc_cpu_features = " + std::to_string(target.cpu_features) +
           ";\nextern \"C\" const char bitnetc_target_name[] = \"" + target.name + "\";\n";
  for (const rt::KernelFamily& family : rt::kCpuKernelFamilies) {
    const std::vector<Emit>& list = jobs[family.name];
    std::string names;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string fn = "bitnetc_" + std::string(family.name) + std::to_string(i);
      const std::string obj = (std::filesystem::path(work_dir) / (fn + ".o")).string();
      list[i](fn, obj);
      out.objects.push_back(obj);
      table += "extern \"C\" int " + fn + family.signature + ";\n";
      names += (i ? ", " : "") + fn;
    }
    const std::string prefix = "bitnetc_" + std::string(family.name);
    table += "extern \"C\" const uint32_t " + prefix + "_kernel_count = " + std::to_string(list.size()) + ";\n";
    table += "extern \"C\" int (*const " + prefix + "_kernels[])" + family.signature + " = {" +
             (names.empty() ? "nullptr" : names) + "};\n";
  }
  return out;
}

}  // namespace bitnetc::codegen
