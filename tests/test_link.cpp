// The link stage's own writer: the blob as an ELF object (link.h). Apart from
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
// 4096-aligned read-only section holding the bytes, and the two global symbols at its
// start and end (the outputs' link and run tests use it whole).
TEST(Link, BlobObjectHoldsTheBytesBetweenItsSymbols) {
  ScratchDir dir;
  std::vector<uint8_t> blob(5003);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 7);
  for (const auto& [triple, machine] : {std::pair<std::string, int>{"x86_64-linux-gnu", EM_X86_64},
                                        {"aarch64-linux-gnu", EM_AARCH64}}) {
    codegen::write_blob_object(
        dir.file("blob.o"), blob.size(), [&](const auto& sink) { sink(blob); }, triple);
    const std::string o = read_text(dir.file("blob.o"));
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
    EXPECT_EQ(sh[1].sh_flags, static_cast<uint64_t>(SHF_ALLOC));
    EXPECT_EQ(sh[1].sh_addralign, 4096u);
    ASSERT_EQ(sh[1].sh_size, blob.size());
    EXPECT_EQ(o.substr(sh[1].sh_offset, blob.size()), std::string(blob.begin(), blob.end()));
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
    EXPECT_EQ(syms["bitnetc_blob_end"].st_value, blob.size());
    for (const auto& [n, sym] : syms) {
      EXPECT_EQ(ELF64_ST_BIND(sym.st_info), STB_GLOBAL) << n;
      EXPECT_EQ(sym.st_shndx, 1) << n;
    }
  }
}
