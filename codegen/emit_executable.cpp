#include "emit_executable.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "atomic_file.h"
#include "kernel_objects.h"
#include "model_blob.h"
#include "serialize.h"
#include "tokenizer_import.h"
#include "vocab_io.h"

namespace bitnetc::codegen {

namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& p, const void* data, size_t n) {
  std::ofstream out(p, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  if (!out) throw OutputError(p.string() + ": cannot write");
}

void align(std::vector<uint8_t>& b, size_t a) {
  while (b.size() % a) b.push_back(0);
}

// A scratch folder for the intermediate files, removed when done.
struct WorkDir {
  fs::path path;
  WorkDir() {
    std::string tmpl = (fs::temp_directory_path() / "bitnetc-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      throw OutputError("cannot create a temporary folder in " + fs::temp_directory_path().string());
    path = tmpl;
  }
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// What bitnet_model_load(path) checks a path against: FNV-1a 64 of the model file (for
// a checkpoint folder, its model.safetensors).
uint64_t source_fingerprint(const ImportedModel& m) {
  fs::path p = m.path;
  if (fs::is_directory(p)) p /= "model.safetensors";
  std::ifstream in(p, std::ios::binary);
  uint64_t h = 0xcbf29ce484222325ull;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = rt::fnv1a64(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(in.gcount()), h);
  }
  return h;
}

}  // namespace

void compile_executable(const ImportedModel& m, const TargetInfo& target, const CompileOptions& o) {
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  if (target.arch != TargetArch::X86_64)
    throw std::invalid_argument("target " + target.name + ": only x86-64 targets are generated so far");
  say("lowering");
  ir::Graph g = lower(m, o.lower);
  const rt::Vocab vocab = load_vocab(m);
  const std::vector<int32_t> stop = stop_tokens(m, vocab);

  WorkDir work;
  const int W = target.vector_bytes;

  // One kernel per distinct (K, N, activation block).
  say("packing weights");
  std::map<std::tuple<int64_t, int64_t, int64_t>, uint32_t> kernels;
  std::vector<rt::TernaryRecord> records(g.ternary.size());
  std::vector<std::vector<uint8_t>> packed(g.ternary.size());
  for (const ir::Op& op : g.ops) {
    if (op.kind != ir::OpKind::TernaryMatmul) continue;
    const TernaryWeights& w = g.ternary[op.weight].w;
    const ir::Op* quant = nullptr;
    for (const ir::Op& q : g.ops)
      if (q.output == op.inputs[0]) quant = &q;
    const int64_t act_block = ir::act_quant_is_per_block(quant->quant) ? 256 : w.cols;
    if (w.cols % W != 0 || act_block % W != 0)
      throw std::invalid_argument(g.ternary[op.weight].name + ": rows of " + std::to_string(w.cols) +
                                  " weights are not a multiple of the target's " + std::to_string(W) + "-byte vectors");
    for (float s : w.scales)
      if (s != w.scales[0])
        throw std::invalid_argument(g.ternary[op.weight].name +
                                    ": per-block weight scales are not supported by the generated kernels yet");
    const auto key = std::make_tuple(w.cols, w.rows, act_block);
    const auto it = kernels.emplace(key, static_cast<uint32_t>(kernels.size())).first;
    rt::TernaryRecord& r = records[op.weight];
    r.kernel = it->second;
    r.vector_bytes = static_cast<uint32_t>(W);
    r.K = w.cols;
    r.K_padded = schedules::padded_k(w.cols, W);
    r.N = w.rows;
    r.act_block = act_block;
    r.w_scale = w.scales[0];
    packed[op.weight] = schedules::pack_ternary_rows(w, W);
  }
  for (auto& t : g.ternary) t.w.codes.clear();  // the kernels read the packed copy

  say("generating " + std::to_string(kernels.size()) + " kernels for " + target.name);
  std::string table = "#include \"HalideRuntime.h\"\n";
  std::vector<std::string> objects;
  for (const auto& [key, index] : kernels) {
    const auto [K, N, block] = key;
    const std::string fn = "bitnetc_k" + std::to_string(index);
    const std::string obj = (work.path / (fn + ".o")).string();
    emit_gemv_object({K, N, block, W}, target, fn, obj);
    objects.push_back(obj);
    table += "extern \"C\" int " + fn +
             "(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, float, halide_buffer_t*);\n";
  }
  // The head: one dense kernel per distinct (K, N), weights transposed and row-padded.
  std::map<std::pair<int64_t, int64_t>, uint32_t> dense_kernels;
  std::vector<rt::DenseRecord> dense_records(g.dense.size(), rt::DenseRecord{rt::kNoKernel, 0, 0, 0, 0, 0});
  std::vector<std::vector<float>> dense_packed(g.dense.size());
  for (const ir::Op& op : g.ops) {
    if (op.kind != ir::OpKind::DenseMatmul || dense_records[op.weight].kernel != rt::kNoKernel) continue;
    const ir::DenseWeights& d = g.dense[op.weight];
    const auto it =
        dense_kernels.emplace(std::make_pair(d.cols, d.rows), static_cast<uint32_t>(dense_kernels.size())).first;
    dense_records[op.weight] = {it->second, 0, d.cols, d.rows, schedules::dense_gemv_padded_rows(d.rows, W), 0};
    dense_packed[op.weight] = schedules::transpose_for_dense_gemv(d.data, d.rows, d.cols, W);
  }
  for (const auto& [key, index] : dense_kernels) {
    const std::string fn = "bitnetc_d" + std::to_string(index);
    const std::string obj = (work.path / (fn + ".o")).string();
    emit_dense_gemv_object({key.first, key.second, W}, target, fn, obj);
    objects.push_back(obj);
    table += "extern \"C\" int " + fn + "(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*);\n";
  }
  table +=
      "using DenseKernelFn = int (*)(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*);\n"
      "extern \"C\" const DenseKernelFn bitnetc_dense_kernels[] = {";
  for (size_t i = 0; i < dense_kernels.size(); ++i) table += (i ? ", bitnetc_d" : "bitnetc_d") + std::to_string(i);
  if (dense_kernels.empty()) table += "nullptr";
  table += "};\n";
  table +=
      "using KernelFn = int (*)(halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, halide_buffer_t*, float, "
      "halide_buffer_t*);\nextern \"C\" const KernelFn bitnetc_kernels[] = {";
  for (size_t i = 0; i < kernels.size(); ++i) table += (i ? ", bitnetc_k" : "bitnetc_k") + std::to_string(i);
  table += "};\n";
  write_file(work.path / "kernels.cpp", table.data(), table.size());
  emit_halide_runtime(target, (work.path / "halide_runtime.o").string());
  objects.push_back((work.path / "halide_runtime.o").string());

  say("writing the model blob");
  const std::vector<uint8_t> graph = ir::serialize(g), voc = rt::serialize_vocab(vocab);
  std::vector<uint8_t> blob(sizeof(rt::BlobHeader), 0);
  rt::BlobHeader h{};
  h.magic = rt::kBlobMagic;
  h.version = rt::kBlobVersion;
  auto append = [&](const std::vector<uint8_t>& part, uint64_t& off, uint64_t& size) {
    align(blob, 64);
    off = blob.size();
    size = part.size();
    blob.insert(blob.end(), part.begin(), part.end());
  };
  append(graph, h.graph_off, h.graph_size);
  append(voc, h.vocab_off, h.vocab_size);
  align(blob, 64);
  h.stop_off = blob.size();
  h.n_stop = stop.size();
  blob.insert(blob.end(), reinterpret_cast<const uint8_t*>(stop.data()),
              reinterpret_cast<const uint8_t*>(stop.data() + stop.size()));
  align(blob, 64);
  h.records_off = blob.size();
  h.n_records = records.size();
  blob.resize(blob.size() + records.size() * sizeof(rt::TernaryRecord));
  align(blob, 4096);
  h.weights_off = blob.size();
  for (size_t i = 0; i < records.size(); ++i) {
    align(blob, 64);
    records[i].packed_off = blob.size();
    blob.insert(blob.end(), packed[i].begin(), packed[i].end());
  }
  for (size_t i = 0; i < dense_records.size(); ++i) {
    if (dense_records[i].kernel == rt::kNoKernel) continue;
    align(blob, 64);
    dense_records[i].off = blob.size();
    const auto* p = reinterpret_cast<const uint8_t*>(dense_packed[i].data());
    blob.insert(blob.end(), p, p + dense_packed[i].size() * sizeof(float));
  }
  h.weights_size = blob.size() - h.weights_off;
  align(blob, 64);
  h.dense_records_off = blob.size();
  h.n_dense_records = dense_records.size();
  blob.insert(blob.end(), reinterpret_cast<const uint8_t*>(dense_records.data()),
              reinterpret_cast<const uint8_t*>(dense_records.data() + dense_records.size()));
  h.source_fingerprint = source_fingerprint(m);
  std::memcpy(blob.data() + h.records_off, records.data(), records.size() * sizeof(rt::TernaryRecord));
  std::memcpy(blob.data(), &h, sizeof h);
  write_file(work.path / "model.blob", blob.data(), blob.size());
  const std::string asm_src =
      "  .section .rodata.bitnetc_blob,\"a\"\n  .balign 4096\n  .globl bitnetc_blob_start\nbitnetc_blob_start:\n"
      "  .incbin \"model.blob\"\n  .globl bitnetc_blob_end\nbitnetc_blob_end:\n  .section "
      ".note.GNU-stack,\"\",@progbits\n";
  write_file(work.path / "blob.S", asm_src.data(), asm_src.size());
  // A shared object exports the C API of bitnet.h and nothing else.
  const std::string exports = "{ global: bitnet_*; local: *; };\n";
  write_file(work.path / "exports.map", exports.data(), exports.size());

  say("linking " + o.output);
  const char* env_cxx = std::getenv("CXX");
  const std::string cxx = env_cxx && *env_cxx ? env_cxx : BITNETC_CXX;
  std::string cmd = "cd " + quote(work.path.string()) + " && " + quote(cxx) + " -O2 -std=c++17 -I" +
                    quote(BITNETC_HALIDE_INCLUDE) + " kernels.cpp blob.S";
  for (const auto& obj : objects) cmd += " " + quote(obj);
  cmd += o.emit == EmitKind::SharedObject ? std::string(" -shared -Wl,--version-script=exports.map ") + BITNETC_SO_LIBS
                                          : std::string(" ") + BITNETC_EXE_LIBS;
  cmd += " -lpthread -ldl -o linked 2> link.log";
  const int rc = std::system(cmd.c_str());
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    std::ifstream log(work.path / "link.log");
    const std::string msg((std::istreambuf_iterator<char>(log)), {});
    throw OutputError(o.output + ": linking failed: " + msg.substr(0, 2000));
  }
  std::ifstream linked(work.path / "linked", std::ios::binary);
  const std::vector<uint8_t> exe((std::istreambuf_iterator<char>(linked)), {});
  write_file_atomically(o.output, exe, /*executable=*/o.emit == EmitKind::Executable);
}

}  // namespace bitnetc::codegen
