// The link stage's own writers: the blob's ELF object and the blob written into the
// linked file (link.h). Apart from
// test_codegen.cpp because <elf.h>'s macros collide with Halide.h's names.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "link.h"
#include "support/test_support.h"

using namespace bitnetc;
using namespace bitnetc::test;

// The blob's object, written without an assembler: per triple, its machine, one
// 4096-aligned read-only SHT_NOBITS section of the blob's size (no bytes), and the two
// global symbols at its start and end.
TEST(Link, BlobObjectReservesTheBlobBetweenItsSymbols) {
  ScratchDir dir;
  const uint64_t size = 5003;
  for (const auto& [triple, machine] : {std::pair<std::string, int>{"x86_64-linux-gnu", EM_X86_64},
                                        {"aarch64-linux-gnu", EM_AARCH64}}) {
    codegen::reserve_blob_object(dir.file("blob.o"), size, triple);
    const std::string o = read_text(dir.file("blob.o"));
    EXPECT_LT(o.size(), 4096u) << "the object holds no blob bytes";
    Elf64_Ehdr eh;
    ASSERT_GE(o.size(), sizeof eh);
    std::memcpy(&eh, o.data(), sizeof eh);
    EXPECT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
    EXPECT_EQ(eh.e_type, ET_REL);
    EXPECT_EQ(eh.e_machine, machine) << triple;
    ASSERT_EQ(eh.e_shnum, 6);
    std::vector<Elf64_Shdr> sh(eh.e_shnum);
    ASSERT_LE(eh.e_shoff + sh.size() * sizeof(Elf64_Shdr), o.size());
    std::memcpy(sh.data(), o.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
    auto name = [&](const Elf64_Shdr& s) { return std::string(o.data() + sh[eh.e_shstrndx].sh_offset + s.sh_name); };
    EXPECT_EQ(name(sh[1]), ".rodata.bitnetc_blob");
    EXPECT_EQ(sh[1].sh_type, static_cast<uint32_t>(SHT_NOBITS));
    EXPECT_EQ(sh[1].sh_flags, static_cast<uint64_t>(SHF_ALLOC));
    EXPECT_EQ(sh[1].sh_addralign, 4096u);
    EXPECT_EQ(sh[1].sh_size, size);
    EXPECT_EQ(name(sh[2]), ".note.GNU-stack");
    const Elf64_Shdr& symtab = sh[3];
    ASSERT_EQ(symtab.sh_type, static_cast<uint32_t>(SHT_SYMTAB));
    std::map<std::string, Elf64_Sym> syms;
    for (uint64_t i = 1; i < symtab.sh_size / sizeof(Elf64_Sym); ++i) {
      Elf64_Sym sym;
      std::memcpy(&sym, o.data() + symtab.sh_offset + i * sizeof sym, sizeof sym);
      syms[std::string(o.data() + sh[symtab.sh_link].sh_offset + sym.st_name)] = sym;
    }
    ASSERT_EQ(syms.count("bitnetc_blob_start") + syms.count("bitnetc_blob_end"), 2u);
    EXPECT_EQ(syms["bitnetc_blob_start"].st_value, 0u);
    EXPECT_EQ(syms["bitnetc_blob_end"].st_value, size);
    for (const auto& [n, sym] : syms) {
      EXPECT_EQ(ELF64_ST_BIND(sym.st_info), STB_GLOBAL) << n;
      EXPECT_EQ(sym.st_shndx, 1) << n;
    }
  }
}

// A program linked with the reserved blob (by lld, as outputs are) reads the bytes that
// fill_blob_in_output wrote after the link, and its build ID changes with the blob's
// identity: two blobs, one program, two IDs.
TEST(Link, BlobFilledAfterTheLinkIsWhatTheProgramReads) {
  ScratchDir dir;
  std::vector<uint8_t> blob(3 * 4096 + 17);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 7 + i / 256);
  uint64_t expected = 0;
  for (uint8_t b : blob) expected = expected * 31 + b;
  write_text(dir.file("main.cpp"), R"(#include <cstdio>
extern "C" const unsigned char bitnetc_blob_start[], bitnetc_blob_end[];
static const char text[] = "read-only data beside the blob";
int main() {
  unsigned long long h = 0;
  for (const unsigned char* p = bitnetc_blob_start; p != bitnetc_blob_end; ++p) h = h * 31 + *p;
  std::printf("%zu %llu %s\n", static_cast<size_t>(bitnetc_blob_end - bitnetc_blob_start), h, text);
})");
  codegen::reserve_blob_object(dir.file("blob.o"), blob.size(), "x86_64-linux-gnu");
  const CommandResult linked =
      run_command(std::string(BITNETC_CXX) + " -fPIC -fuse-ld=lld -Wl,--build-id=0x0000000000000000 " +
                      dir.file("main.cpp") + " " + dir.file("blob.o") + " -o " + dir.file("prog"),
                  dir);
  ASSERT_EQ(linked.status, 0) << linked.err;
  auto build_id = [&](const std::string& path) {
    const CommandResult r = run_command("llvm-readelf-14 -n " + path + " | grep 'Build ID'", dir);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  };
  const std::string linker_id = build_id(dir.file("prog"));
  ASSERT_EQ(run_command("cp " + dir.file("prog") + " " + dir.file("prog2"), dir).status, 0);
  std::vector<std::string> ids;
  for (const auto& [path, identity] : {std::pair<std::string, uint64_t>{dir.file("prog"), 1}, {dir.file("prog2"), 2}}) {
    codegen::fill_blob_in_output(path, "the test program", blob.size(), identity, [&](const auto& sink) {
      sink(std::span<const uint8_t>(blob).first(100));
      sink(std::span<const uint8_t>(blob).subspan(100));
    });
    const CommandResult run = run_command(path, dir);
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(run.out,
              std::to_string(blob.size()) + " " + std::to_string(expected) + " read-only data beside the blob\n");
    ids.push_back(build_id(path));
    EXPECT_NE(ids.back(), linker_id);
  }
  EXPECT_NE(ids[0], ids[1]);
  // A writer that writes another size than it said is the caller's bug.
  EXPECT_THROW(codegen::fill_blob_in_output(dir.file("prog"), "the test program", blob.size(), 1,
                                            [&](const auto& sink) { sink(std::span<const uint8_t>(blob).first(10)); }),
               std::logic_error);
}
