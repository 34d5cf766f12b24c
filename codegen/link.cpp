#include "link.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <tuple>

#include "atomic_file.h"
#include "model_blob.h"
#include "process.h"
#include "runtime_folder.h"

namespace bitnetc::codegen {

namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  out.flush();
  if (!out) throw OutputError(p.string() + ": cannot write");
}

// The default runtime build in `dir`: an executable links the runtime's main, a shared
// object the whole C API; both the forward pass, the runtime and the IR.
RuntimeBuild default_runtime(const fs::path& dir) {
  const std::string model_libs = " " + quote((dir / "libbitnetc_compiled.a").string()) + " " +
                                 quote((dir / "libbitnetc_runtime.a").string()) + " " +
                                 quote((dir / "libbitnetc_ir.a").string());
  return {quote((dir / "libbitnetc_output_main.a").string()) + model_libs,
          "-Wl,--whole-archive " + quote((dir / "libbitnetc_capi.a").string()) + " -Wl,--no-whole-archive" + model_libs,
          ""};
}

// A sanitized build in `dir`: one archive each for executables and shared objects
// (runtime_stub/CMakeLists.txt), and the sanitizer's link flags.
RuntimeBuild sanitized_runtime(const fs::path& dir, const std::string& name, const std::string& flags) {
  return {quote((dir / ("libbitnetc_output_main_" + name + ".a")).string()),
          "-Wl,--whole-archive " + quote((dir / ("libbitnetc_capi_" + name + ".a")).string()) +
              " -Wl,--no-whole-archive",
          flags};
}

// The toolchains this bitnetc can link with: one per triple whose runtime is in its
// runtime folder (runtime_folder.h), with the compiler driver CMake found for it.
std::vector<Toolchain> toolchains() {
  std::vector<Toolchain> t;
  const char* env_cxx = std::getenv("CXX");
  // x86-64 outputs (CUDA outputs' host side too).
  if (const fs::path dir = runtime_build_folder("x86_64-linux-gnu", "default"); !dir.empty()) {
    t.push_back({"x86_64-linux-gnu", env_cxx && *env_cxx ? env_cxx : BITNETC_CXX, "-fPIC", "", false,
                 {{"default", default_runtime(dir)}}});
#ifdef BITNETC_ASAN_FLAGS
    const std::pair<const char*, const char*> sanitizers[] = {{"asan", BITNETC_ASAN_FLAGS}, {"tsan", BITNETC_TSAN_FLAGS}};
    for (const auto& [name, flags] : sanitizers)
      if (const fs::path s = runtime_build_folder("x86_64-linux-gnu", name); !s.empty())
        t.back().runtimes[name] = sanitized_runtime(s, name, flags);
#endif
  }
#ifdef BITNETC_AARCH64_CXX
  if (const fs::path dir = runtime_build_folder("aarch64-linux-gnu", "default"); !dir.empty())
    t.push_back({"aarch64-linux-gnu", BITNETC_AARCH64_CXX, "-fPIC", "-static", false, {{"default", default_runtime(dir)}}});
#endif
#ifdef BITNETC_WASM_CXX
  // WebAssembly: a reactor module (no _start; the loader calls its exports), linked by
  // clang-14's driver with wasm-ld against Debian's wasi-libc and libc++. The whole main
  // archive: the exports the loader calls (wasm/wasm_api.cpp) are referenced by nothing.
  // TL1's SIMD tile is an archive of its own, pulled in only by wasm32-simd kernels.
  if (const fs::path dir = runtime_build_folder("wasm32-wasi", "default"); !dir.empty()) {
    std::string libs =
        "-Wl,--whole-archive " + quote((dir / "libbitnetc_output_main.a").string()) + " -Wl,--no-whole-archive";
    for (const char* lib :
         {"libbitnetc_compiled.a", "libbitnetc_runtime.a", "libbitnetc_ir.a", "libbitnetc_lut_simd128.a"})
      libs += " " + quote((dir / lib).string());
    t.push_back({"wasm32-wasi", BITNETC_WASM_CXX, "--target=wasm32-wasi", "", true, {{"default", {libs, "", ""}}}});
  }
#endif
  return t;
}

}  // namespace

// The blob as a relocatable WebAssembly object (the layout clang-14 gives an assembler's
// .incbin, tool-conventions' Linking.md): memory imported as env.__linear_memory; one
// data segment, .rodata.bitnetc_blob (4096-aligned); and a "linking" section whose
// symbol table places bitnetc_blob_start at its offset 0 and bitnetc_blob_end at its end.
void write_wasm_blob_object(const std::string& path, uint64_t size,
                            const std::function<void(const std::function<void(std::span<const uint8_t>)>&)>& write) {
  if (size > 0xffffffffu) throw OutputError(path + ": a blob of " + std::to_string(size) + " bytes exceeds wasm32's 4 GB");
  auto leb = [](std::string& out, uint64_t v) {
    do {
      uint8_t b = v & 0x7f;
      v >>= 7;
      out += static_cast<char>(v ? b | 0x80 : b);
    } while (v);
  };
  auto name = [&](std::string& out, const std::string& n) {
    leb(out, n.size());
    out += n;
  };
  auto section = [&](uint8_t id, const std::string& body, uint64_t extra = 0) {
    std::string out(1, static_cast<char>(id));
    leb(out, body.size() + extra);
    return out + body;
  };
  std::string imports;
  leb(imports, 1);
  name(imports, "env");
  name(imports, "__linear_memory");
  imports += std::string("\x02\x00\x00", 3);  // memory, limits: no maximum, minimum 0
  std::string data_head;
  leb(data_head, 1);                                // one segment
  data_head += std::string("\x00\x41\x00\x0b", 4);  // active, at i32.const 0
  leb(data_head, size);
  std::string linking;
  leb(linking, 2);  // version
  std::string symbols;
  leb(symbols, 2);
  for (const auto& [sym, offset, sym_size] :
       {std::tuple<const char*, uint64_t, uint64_t>{"bitnetc_blob_start", 0, size}, {"bitnetc_blob_end", size, 0}}) {
    symbols += std::string("\x01\x00", 2);  // a data symbol, global and defined
    name(symbols, sym);
    leb(symbols, 0);  // segment 0
    leb(symbols, offset);
    leb(symbols, sym_size);
  }
  linking += section(8, symbols);  // WASM_SYMBOL_TABLE
  std::string segments;
  leb(segments, 1);
  name(segments, ".rodata.bitnetc_blob");
  leb(segments, 12);  // log2 of its alignment
  leb(segments, 0);   // flags
  linking += section(5, segments);  // WASM_SEGMENT_INFO
  std::string linking_body;
  name(linking_body, "linking");
  linking_body += linking;
  std::string data_count;
  leb(data_count, 1);

  errno = 0;
  std::ofstream out(path, std::ios::binary);
  auto put_bytes = [&](const void* p, uint64_t n) {
    if (!out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n)))
      throw OutputError(path + ": cannot write" + (errno ? std::string(": ") + std::strerror(errno) : ""));
  };
  auto put = [&](const std::string& bytes) { put_bytes(bytes.data(), bytes.size()); };
  put(std::string("\0asm\x01\x00\x00\x00", 8));
  put(section(2, imports));
  put(section(12, data_count));
  put(section(11, data_head, size));
  uint64_t written = 0;
  write([&](std::span<const uint8_t> bytes) {
    put_bytes(bytes.data(), bytes.size());
    written += bytes.size();
  });
  if (written != size) throw std::logic_error("write_wasm_blob_object: the blob's writer wrote another size than it said");
  put(section(0, linking_body));
  if (!out.flush()) throw OutputError(path + ": cannot write" + (errno ? std::string(": ") + std::strerror(errno) : ""));
}

Toolchain toolchain_for(const TargetInfo& target) {
  for (const Toolchain& t : toolchains())
    if (t.triple == target.triple) return t;
  const std::string how = target.triple == "wasm32-wasi"
                              ? "clang-14, lld-14, wasi-libc, libc++-14-dev-wasm32, libc++abi-14-dev-wasm32 and "
                                "libclang-rt-14-dev-wasm32"
                              : "its cross compiler, g++-" + target.triple.substr(0, target.triple.find('-')) + "-linux-gnu,";
  throw std::invalid_argument("target " + target.name + ": this bitnetc has no " + target.triple + " runtime in " +
                              (runtime_folder() / target.triple).string() + " (build bitnetc with " + how +
                              " installed)");
}

const RuntimeBuild& runtime_build(const Toolchain& toolchain, const std::string& name) {
  const auto it = toolchain.runtimes.find(name);
  if (it != toolchain.runtimes.end()) return it->second;
  std::string have;
  for (const auto& [n, r] : toolchain.runtimes) have += (have.empty() ? "" : ", ") + n;
  throw std::invalid_argument("--runtime=" + name + ": this bitnetc has no such runtime build for " + toolchain.triple +
                              " (it has: " + have +
                              "; an install holds asan and tsan only when installed with --component sanitizers)");
}

void reserve_blob_object(const std::string& path, uint64_t size, const std::string& triple) {
  uint16_t machine;
  if (triple.rfind("x86_64-", 0) == 0)
    machine = EM_X86_64;
  else if (triple.rfind("aarch64-", 0) == 0)
    machine = EM_AARCH64;
  else
    throw std::logic_error("reserve_blob_object: no ELF machine for " + triple);
  // Sections: 0 null, 1 the blob (SHT_NOBITS: it has a size and no bytes here), 2
  // .note.GNU-stack (no executable stack), 3 .symtab, 4 .strtab, 5 .shstrtab.
  auto string_table = [](std::initializer_list<const char*> names) {
    std::string t(1, '\0');
    for (const char* n : names) t += std::string(n) + '\0';
    return t;
  };
  const std::string shstrtab = string_table({".rodata.bitnetc_blob", ".note.GNU-stack", ".symtab", ".strtab", ".shstrtab"});
  const std::string strtab = string_table({"bitnetc_blob_start", "bitnetc_blob_end"});
  auto name_at = [](const std::string& table, const char* name) {
    return static_cast<uint32_t>(table.find(std::string(name) + '\0', 1));
  };
  auto align8 = [](uint64_t x) { return (x + 7) / 8 * 8; };
  const uint64_t symtab_off = sizeof(Elf64_Ehdr);
  Elf64_Sym syms[3] = {};
  for (int i : {1, 2}) {
    syms[i].st_name = name_at(strtab, i == 1 ? "bitnetc_blob_start" : "bitnetc_blob_end");
    syms[i].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_NOTYPE);
    syms[i].st_shndx = 1;
    syms[i].st_value = i == 1 ? 0 : size;
  }
  const uint64_t strtab_off = symtab_off + sizeof syms, shstrtab_off = strtab_off + strtab.size(),
                 shdr_off = align8(shstrtab_off + shstrtab.size());
  Elf64_Shdr sh[6] = {};
  sh[1] = {name_at(shstrtab, ".rodata.bitnetc_blob"), SHT_NOBITS, SHF_ALLOC, 0, symtab_off, size, 0, 0, 4096, 0};
  sh[2] = {name_at(shstrtab, ".note.GNU-stack"), SHT_PROGBITS, 0, 0, symtab_off, 0, 0, 0, 1, 0};
  sh[3] = {name_at(shstrtab, ".symtab"), SHT_SYMTAB, 0, 0, symtab_off, sizeof syms, 4, 1, 8, sizeof(Elf64_Sym)};
  sh[4] = {name_at(shstrtab, ".strtab"), SHT_STRTAB, 0, 0, strtab_off, strtab.size(), 0, 0, 1, 0};
  sh[5] = {name_at(shstrtab, ".shstrtab"), SHT_STRTAB, 0, 0, shstrtab_off, shstrtab.size(), 0, 0, 1, 0};
  Elf64_Ehdr eh = {};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_SYSV;
  eh.e_type = ET_REL;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_shoff = shdr_off;
  eh.e_ehsize = sizeof eh;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 6;
  eh.e_shstrndx = 5;

  std::string bytes(reinterpret_cast<const char*>(&eh), sizeof eh);
  bytes.append(reinterpret_cast<const char*>(syms), sizeof syms);
  bytes += strtab + shstrtab;
  bytes.resize(shdr_off, '\0');
  bytes.append(reinterpret_cast<const char*>(sh), sizeof sh);
  write_text(path, bytes);
}

void fill_blob_in_output(const std::string& linked, const std::string& output, uint64_t size, uint64_t identity,
                         const std::function<void(const std::function<void(std::span<const uint8_t>)>&)>& write) {
  const int fd = ::open(linked.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw OutputError(output + ": cannot open the linked file: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  auto failed = [&](const std::string& what) {
    return OutputError(output + ": cannot write " + what + ": " + std::strerror(errno));
  };
  auto read_at = [&](void* to, uint64_t n, uint64_t off) {
    if (::pread(fd, to, n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
      throw std::logic_error(output + ": the linker's output is shorter than its ELF headers say");
  };
  auto write_at = [&](const void* from, uint64_t n, uint64_t off, const char* what) {
    const auto* p = static_cast<const uint8_t*>(from);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd, p, std::min<uint64_t>(n, 1u << 30), static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw failed(what);
      p += w, off += static_cast<uint64_t>(w), n -= static_cast<uint64_t>(w);
    }
  };
  Elf64_Ehdr eh;
  read_at(&eh, sizeof eh, 0);
  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  read_at(sections.data(), sections.size() * sizeof(Elf64_Shdr), eh.e_shoff);
  std::vector<Elf64_Phdr> segments(eh.e_phnum);
  read_at(segments.data(), segments.size() * sizeof(Elf64_Phdr), eh.e_phoff);
  auto section_bytes = [&](const Elf64_Shdr& s) {
    std::string b(s.sh_size, '\0');
    read_at(b.data(), b.size(), s.sh_offset);
    return b;
  };

  // The blob's address, from the static symbol table the link keeps, then its place in
  // the file, from the segment that loads it (its file space must cover the blob).
  uint64_t start = 0, end = 0;
  int found = 0;
  for (const Elf64_Shdr& s : sections) {
    if (s.sh_type != SHT_SYMTAB || s.sh_link >= sections.size()) continue;
    const std::string syms = section_bytes(s), names = section_bytes(sections[s.sh_link]);
    for (size_t at = 0; at + sizeof(Elf64_Sym) <= syms.size(); at += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, syms.data() + at, sizeof sym);
      if (sym.st_name >= names.size()) continue;
      const char* name = names.c_str() + sym.st_name;
      if (std::strcmp(name, "bitnetc_blob_start") == 0) start = sym.st_value, found |= 1;
      if (std::strcmp(name, "bitnetc_blob_end") == 0) end = sym.st_value, found |= 2;
    }
  }
  if (found != 3 || end - start != size)
    throw std::logic_error(output + ": the linked file has no blob of " + std::to_string(size) + " bytes");
  uint64_t file_off = 0;
  bool placed = false;
  for (const Elf64_Phdr& seg : segments)
    if (seg.p_type == PT_LOAD && seg.p_vaddr <= start && end <= seg.p_vaddr + seg.p_filesz) {
      file_off = seg.p_offset + (start - seg.p_vaddr);
      placed = true;
    }
  if (!placed) throw std::logic_error(output + ": the linker gave the blob no file space");

  // Writeback starts behind the copy, 64 MiB at a time, so that the fsync that publishes
  // the file has little left to wait for.
  constexpr uint64_t kWritebackChunk = uint64_t{64} << 20;
  uint64_t at = file_off, written_back = file_off;
  write([&](std::span<const uint8_t> bytes) {
    for (uint64_t done = 0; done < bytes.size();) {
      const uint64_t n = std::min<uint64_t>(bytes.size() - done, written_back + kWritebackChunk - at);
      write_at(bytes.data() + done, n, at, "the weights into it");
      at += n, done += n;
      if (at - written_back == kWritebackChunk) {
        ::sync_file_range(fd, static_cast<off_t>(written_back), static_cast<off_t>(kWritebackChunk),
                          SYNC_FILE_RANGE_WRITE);  // advice: an error shows again at fsync
        written_back = at;
      }
    }
  });
  if (at != file_off + size)
    throw std::logic_error("fill_blob_in_output: the blob's writer wrote another size than it said");

  // The build ID: the linker reserved 8 zero bytes (hashing the whole file itself, blob
  // hole included, took lld 1.2 s and 1.2 GB of memory for 2B4T). It is FNV-1a 64 of
  // the linked file outside the blob, seeded with `identity`, which stands for the blob.
  uint64_t id = identity;
  std::vector<uint8_t> chunk(1 << 20);
  const uint64_t file_size = static_cast<uint64_t>(::lseek(fd, 0, SEEK_END));
  for (uint64_t off = 0; off < file_size;) {
    if (off == file_off) {
      off += size;
      continue;
    }
    const uint64_t n = std::min<uint64_t>({chunk.size(), file_size - off, off < file_off ? file_off - off : file_size});
    read_at(chunk.data(), n, off);
    id = rt::fnv1a64(chunk.data(), n, id);
    off += n;
  }
  int build_ids = 0;
  for (const Elf64_Shdr& s : sections) {
    if (s.sh_type != SHT_NOTE) continue;
    const std::string notes = section_bytes(s);
    for (size_t n = 0; n + sizeof(Elf64_Nhdr) <= notes.size();) {
      Elf64_Nhdr note;
      std::memcpy(&note, notes.data() + n, sizeof note);
      const size_t name_at = n + sizeof note, desc_at = name_at + (note.n_namesz + 3) / 4 * 4;
      const size_t next = desc_at + (note.n_descsz + 3) / 4 * 4;
      if (next > notes.size()) break;
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && note.n_descsz == sizeof id &&
          notes.compare(name_at, 4, std::string("GNU\0", 4)) == 0) {
        write_at(&id, sizeof id, s.sh_offset + desc_at, "its build ID");
        ++build_ids;
      }
      n = next;
    }
  }
  if (build_ids != 1) throw std::logic_error(output + ": the linked file has no 8-byte build ID note");
}

void link_output(const Toolchain& toolchain, const RuntimeBuild& runtime, const std::string& work_dir,
                 const std::vector<std::string>& objects, const std::string& table_source, EmitKind emit,
                 const std::string& output, const std::string& linked) {
  const fs::path work(work_dir);
  write_text(work / "kernels.cpp", table_source);
  // A shared object exports the C API of bitnet.h and nothing else.
  write_text(work / "exports.map", "{ global: bitnet_*; local: *; };\n");
  const std::string cxx = quote(toolchain.cxx) + " " + toolchain.cxx_flags;
  std::string cmd = "cd " + quote(work_dir) + " && " + cxx + " -O2 -std=c++17 -I" +
                    quote((runtime_folder() / "include").string()) + " -c kernels.cpp -o kernels.o 2> link.log && " + cxx +
                    " kernels.o blob.o";
  for (const auto& obj : objects) cmd += " " + quote(obj);
  if (toolchain.wasm) {
    if (emit != EmitKind::Executable) throw std::logic_error("link_output: a WebAssembly output is a module");
    // A reactor (the loader calls _initialize, then the exports); memory imported, so the
    // loader sets its maximum (load's maxMemoryMB); the native outputs' 8 MB of stack; no
    // name section (a fifth of the code's size, for a module that is downloaded).
    cmd += " -mexec-model=reactor " + runtime.exe_libs +
           " -Wl,--import-memory -Wl,-z,stack-size=8388608 -Wl,--strip-all";
  } else {
    // A shared object's SONAME is its file name, so `-L DIR -lNAME` finds and records it
    // without an rpath to the build folder.
    cmd += emit == EmitKind::SharedObject ? " -shared -Wl,--version-script=exports.map -Wl,-soname," +
                                                quote(fs::path(output).filename().string()) + " " + runtime.so_libs
                                          : " " + toolchain.exe_flags + " " + runtime.exe_libs;
    if (!runtime.link_flags.empty()) cmd += " " + runtime.link_flags;
    cmd += " -fuse-ld=lld -B" + quote(std::string(BITNETC_LLD_DIR) + "/");  // (codegen/CMakeLists.txt says why)
    // Segments aligned to 2 MiB, so that the loader places the weights where the kernel
    // can map them with 2 MiB pages (CompiledModel's advise_huge_pages says why).
    cmd += " -Wl,-z,max-page-size=0x200000";
    // The build ID's place (fill_blob_in_output writes it once the blob is in).
    cmd += " -Wl,--build-id=0x0000000000000000";
    cmd += " -lpthread -ldl";
  }
  cmd += " -o " + quote(fs::absolute(linked).string()) + " 2>> link.log";
  if (run_shell(cmd) != 0) {
    std::ifstream log(work / "link.log");
    const std::string msg((std::istreambuf_iterator<char>(log)), {});
    throw OutputError(output + ": linking failed: " + msg.substr(0, 2000));
  }
}

}  // namespace bitnetc::codegen
