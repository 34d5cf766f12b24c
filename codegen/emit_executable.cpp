#include "emit_executable.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "atomic_file.h"
#include "blob_writer.h"
#include "cpu_kernels.h"
#include "cpu_program.h"
#include "cuda_program.h"
#include "kernel_objects.h"
#include "model_blob.h"
#include "packing.h"
#include "runtime_folder.h"
#include "tokenizer_import.h"

namespace bitnetc::codegen {

namespace fs = std::filesystem;

namespace {

// -v: the step list, then each weight's layout and kernels, with the reason for each,
// then the CPU plan.
void explain_plan(const ir::Graph& g, const TargetInfo& target, const PackedWeights& p, const CpuPlan& cpu_plan,
                  const std::function<void(const std::string&)>& line) {
  const bool cuda = target.backend == Backend::Cuda;
  line("plan (" + std::to_string(g.ops.size()) + " steps, run for chunks of up to " +
       std::to_string(cuda ? kCudaChunkTokens : kCpuPrefillBatch) + " tokens):");
  std::istringstream steps(ir::print(g));
  for (std::string s; std::getline(steps, s);) line("  " + s);
  line("weights for " + target.name + ":");
  for (const std::string& l : explain_packing(g, target, p)) line(l);
  if (cuda) return;
  std::istringstream plan_text(print_cpu_plan(g, cpu_plan));
  for (std::string l; std::getline(plan_text, l);) line((l.rfind("kernels:", 0) == 0 ? "step " : "") + l);
}

// A side file written for an output that then fails is removed again: both or neither.
struct SideFileGuard {
  std::string path;
  std::unique_ptr<RemovedOnInterrupt> on_interrupt;
  bool keep = false;
  ~SideFileGuard() {
    if (!path.empty() && !keep) ::unlink(path.c_str());
  }
};

// A WebAssembly output: NAME.mjs (the loader) names NAME.wasm and NAME.weights beside it.
std::string wasm_sibling(const std::string& mjs, const std::string& extension) {
  return mjs.substr(0, mjs.size() - 4) + extension;
}

// The loader (runtime_stub/wasm/loader.mjs) for the module at `wasm`, with its weights
// file's name when it has one.
std::string wasm_loader(const std::string& wasm, const std::string& weights) {
  const fs::path path = runtime_folder() / "wasm32-wasi" / "loader.mjs";
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (!in.good() && !in.eof()) throw std::runtime_error(path.string() + ": cannot read the WebAssembly loader");
  auto put = [&](const std::string& key, const std::string& value) {
    const size_t at = text.find(key);
    if (at == std::string::npos) throw std::runtime_error(path.string() + ": the loader lacks " + key);
    text.replace(at, key.size(), value);
  };
  put("\"@BITNETC_WASM_FILE@\"", "\"" + fs::path(wasm).filename().string() + "\"");
  put("\"@BITNETC_WEIGHTS_FILE@\"", weights.empty() ? "null" : "\"" + fs::path(weights).filename().string() + "\"");
  return text;
}

}  // namespace

void check_wasm_output_name(const TargetInfo& target, const std::string& output, EmitKind emit) {
  if (target.triple != "wasm32-wasi") return;
  if (emit != EmitKind::Executable)
    throw std::invalid_argument("--emit=so: target " + target.name +
                                " writes a WebAssembly module and its ES-module loader, not a shared object");
  if (output.size() <= 4 || !output.ends_with(".mjs") || output.ends_with("/.mjs"))
    throw std::invalid_argument("-o " + output + ": target " + target.name +
                                " writes NAME.mjs (the loader) and NAME.wasm beside it: name the output NAME.mjs");
}

void compile_executable(const ImportedModel& m, const TargetInfo& target, const CompileOptions& o) {
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  check_wasm_output_name(target, o.output, o.emit);
  const Toolchain toolchain = toolchain_for(target);
  const RuntimeBuild& runtime = runtime_build(toolchain, o.runtime);
  const KernelCache cache = KernelCache::open(o.kernel_cache, say);
  const bool cuda = target.backend == Backend::Cuda;
  say("lowering");
  // Weights are decoded one at a time as they are packed (see pack_weights).
  LowerOptions lower_options = o.lower;
  lower_options.weight_data = false;
  ir::Graph g = lower(m, lower_options);
  const rt::Vocab vocab = load_vocab(m);
  const std::vector<int32_t> stop = stop_tokens(m, vocab);

  const ScratchFolder work;
  // The model file's fingerprint (XXH3 over the whole file) on another core while the
  // weights are packed; joined before the kernels' workers fork.
  uint64_t fingerprint = 0;
  std::exception_ptr fingerprint_error;
  std::jthread fingerprinting([&] {
    try {
      fingerprint = source_fingerprint(m);
    } catch (...) {
      fingerprint_error = std::current_exception();
    }
  });
  say("packing weights");
  PackedWeights packed = pack_weights(g, m, lower_options.decode, target, o.head_q8, parse_layout_request(o.layout));
  // A CUDA output's steps all run on the GPU: no CPU plan, no CPU kernels, empty tables.
  const CpuPlan cpu_plan = cuda ? CpuPlan{} : plan_cpu(g, packed.ternary);
  if (o.explain) explain_plan(g, target, packed, cpu_plan, o.explain);

  const std::vector<uint8_t> cuda_plan =
      cuda ? emit_cuda_plan(g, target, packed.ternary, packed.dense, o.cuda_source, cache, work.path(), say)
           : std::vector<uint8_t>();
  fingerprinting.join();
  if (fingerprint_error) std::rethrow_exception(fingerprint_error);
  // The kernels compile on the other cores while the blob is laid out (and a side file or
  // a WebAssembly blob object written; finish() below).
  CpuKernels kernels = emit_cpu_kernels(target, packed, cpu_plan, work.path(), cache, say);

  say("laying out the model blob");
  const Blob blob = layout_blob(std::move(g), packed,
                                {vocab, stop, cpu_plan, cuda_plan, cuda ? kCudaChunkTokens : kCpuPrefillBatch,
                                 fingerprint, o.external_weights});
  auto whole_blob = [&](const BlobSink& sink) {
    sink(blob.head);
    blob.write_weights(sink);
  };
  // A native output links into o.output, its weights beside it in OUTPUT.weights; a
  // WebAssembly output into NAME.wasm, its weights in NAME.weights, then its loader is
  // written as NAME.mjs, last (a loader is never there without its module).
  const std::string linked_output = toolchain.wasm ? wasm_sibling(o.output, ".wasm") : o.output;
  const std::string side_file = toolchain.wasm ? wasm_sibling(o.output, ".weights") : o.output + ".weights";
  SideFileGuard side_guard;
  if (o.external_weights) {
    // The side file is the whole blob; the output embeds it up to the weights.
    say("writing " + side_file);
    write_file_atomically(side_file, whole_blob);
    side_guard.path = side_file;
    side_guard.on_interrupt = std::make_unique<RemovedOnInterrupt>(side_file);
  }
  const uint64_t embedded_size = o.external_weights ? blob.head.size() : blob.size;
  auto embedded_blob = [&](const BlobSink& sink) {
    if (o.external_weights)
      sink(blob.head);
    else
      whole_blob(sink);
  };
  // WebAssembly: the blob goes into its object, which wasm-ld copies. ELF: the object
  // only reserves the blob's place, and the blob is written into the linked file.
  const std::string blob_object = (fs::path(work.path()) / "blob.o").string();
  if (toolchain.wasm)
    write_wasm_blob_object(blob_object, embedded_size, embedded_blob);
  else
    reserve_blob_object(blob_object, embedded_size, toolchain.triple);

  kernels.finish();
  cache.trim();
  say("linking " + linked_output);
  // The linker writes the output itself, beside its final name: a model-sized file is
  // written once, then renamed into place.
  SideFileGuard module_guard;
  produce_file_atomically(
      linked_output,
      [&](const std::string& tmp) {
        link_output(toolchain, runtime, work.path(), kernels.objects, kernels.table_source, o.emit, linked_output, tmp);
        if (toolchain.wasm) return;
        say("writing the weights into " + linked_output);
        fill_blob_in_output(tmp, linked_output, embedded_size, rt::fnv1a64(blob.head.data(), blob.head.size()),
                            embedded_blob);
      },
      /*executable=*/o.emit == EmitKind::Executable && !toolchain.wasm);
  if (toolchain.wasm) {
    module_guard.path = linked_output;
    module_guard.on_interrupt = std::make_unique<RemovedOnInterrupt>(linked_output);
    const std::string loader = wasm_loader(linked_output, o.external_weights ? side_file : "");
    write_file_atomically(o.output, {reinterpret_cast<const uint8_t*>(loader.data()), loader.size()});
    module_guard.keep = true;
  }
  side_guard.keep = true;
}

}  // namespace bitnetc::codegen
