// The link stage: the toolchain that links a target's outputs (its C++ driver and the
// runtime libraries built for its triple) and the link itself: the kernels' objects, the
// kernel tables' source and the blob (an ELF object of one page-aligned read-only
// section, written here) with the runtime's `main` (executables) or its C API (shared
// objects, exporting bitnet_* only).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "targets.h"

namespace bitnetc::codegen {

enum class EmitKind { Executable, SharedObject };

// One build of the runtime libraries: what an executable and a shared object link.
struct RuntimeBuild {
  std::string exe_libs;    // the runtime's main, the forward pass, the runtime
  std::string so_libs;     // the C API (whole), the forward pass, the runtime
  std::string link_flags;  // a sanitizer's (-fsanitize=...), for the runtime it instruments
};

// The compiler driver and runtime builds outputs for one GNU triple link with.
struct Toolchain {
  std::string triple;
  std::string cxx;        // the C++ compiler driver that assembles and links
  std::string cxx_flags;  // for compiling and linking alike: -fPIC natively, --target=wasm32-wasi
  std::string exe_flags;  // aarch64: -static, so an executable runs on any aarch64 Linux and under qemu
  bool wasm = false;      // links a WebAssembly module with wasm-ld (no ELF, no shared objects)
  // "default", and where this bitnetc built them "asan" (AddressSanitizer + UBSan) and
  // "tsan" (ThreadSanitizer): for checking a program that uses an output (--runtime).
  std::map<std::string, RuntimeBuild> runtimes;
};

// The toolchain for `target`'s triple; throws naming the target when this bitnetc was
// built without that triple's runtime.
Toolchain toolchain_for(const TargetInfo& target);
// The runtime build `name` of the toolchain; throws naming the builds there are.
const RuntimeBuild& runtime_build(const Toolchain& toolchain, const std::string& name);

// The blob's object, .rodata.bitnetc_blob, 4096-aligned, between the global symbols
// bitnetc_blob_start and bitnetc_blob_end (what an assembler's .incbin of it made).
//
// WebAssembly: one data segment holding the blob, which `write(sink)` streams into it.
void write_wasm_blob_object(const std::string& path, uint64_t size,
                            const std::function<void(const std::function<void(std::span<const uint8_t>)>&)>& write);
// ELF: one SHT_NOBITS section of `size` bytes. lld merges it into .rodata, so it has its
// place in the file, and writes none of its bytes (the linked file has a hole there):
// the blob never passes through the linker, whose memory would hold it twice (input and
// output mapped). fill_blob_in_output writes it there after the link.
void reserve_blob_object(const std::string& path, uint64_t size, const std::string& triple);
// Writes the `size` bytes that `write(sink)` streams where the linked ELF file `linked`
// reserved the blob, then its build ID (linked as 8 zero bytes): a hash of the file
// outside the blob, seeded with `identity` (a hash standing for the blob). Errors name
// `output`.
void fill_blob_in_output(const std::string& linked, const std::string& output, uint64_t size, uint64_t identity,
                         const std::function<void(const std::function<void(std::span<const uint8_t>)>&)>& write);

// Links `objects` with `table_source` (written to work_dir/kernels.cpp) and the blob's
// object at work_dir/blob.o (above) into `linked` (any path: the caller's temporary beside the output).
// Throws OutputError naming `output` with the linker's message on failure.
// Each source is compiled to an object of a fixed name first: one compiler call that
// compiles and links names its temporaries at random, and those names land in the
// output's symbol table (the output would differ from compile to compile).
void link_output(const Toolchain& toolchain, const RuntimeBuild& runtime, const std::string& work_dir,
                 const std::vector<std::string>& objects, const std::string& table_source, EmitKind emit,
                 const std::string& output, const std::string& linked);

}  // namespace bitnetc::codegen
