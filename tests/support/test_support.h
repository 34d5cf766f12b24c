// Helpers shared by the test suites: the shared-data folder, scratch files, a
// SafeTensors builder (tests corrupt its output on purpose) and error assertions.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diagnostics.h"

namespace bitnetc::test {

// ../shared, as configured by CMake. A test that needs it and cannot find it fails:
// golden checks that silently skip would hide a broken checkout.
inline std::filesystem::path shared_dir() {
  const std::filesystem::path p = BITNETC_SHARED_DIR;
  if (!std::filesystem::is_directory(p / "golden"))
    throw std::runtime_error("shared data not found at " + p.string() +
                             " (configure with -DBITNETC_SHARED_DIR=/path/to/shared)");
  return p;
}

// A fresh scratch folder per test, removed afterwards.
class ScratchDir {
 public:
  // `label` tells apart two folders one test holds at once.
  explicit ScratchDir(const std::string& label = "") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() / ("bitnetc-test-" + std::string(info ? info->name() : "x") +
                                                      label + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline void write_text(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary);
  out << s;
}

template <typename T>
void put_le(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// Single-quotes `s` for bash.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs a bash command line, capturing its exit status, stdout and stderr.
struct CommandResult {
  int status;
  std::string out, err;
};
inline CommandResult run_command(const std::string& cmd, const ScratchDir& dir) {
  const std::string out = dir.file("stdout"), err = dir.file("stderr");
  const int rc = std::system(("bash -c " + shell_quote(cmd) + " >" + out + " 2>" + err).c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_text(out), read_text(err)};
}

// Builds tests/capi/test_capi.c (at `capi_test`, headers in `runtime_dir`) with `cc`
// (and `cflags`) against lib<lib>.so in `dir`, then runs it, prefixed by `run_prefix` (an
// emulator, an environment), on the model file, another file, a prompt and the expected
// text file.
inline CommandResult build_and_run_capi_test(const std::string& cc, const ScratchDir& dir, const std::string& lib,
                                             const std::string& runtime_dir, const std::string& capi_test,
                                             const std::string& run_prefix, const std::string& model,
                                             const std::string& other_file, const std::string& prompt,
                                             const std::string& expected_file, const std::string& cflags = "") {
  const std::string exe = dir.file("test_capi");
  const CommandResult build =
      run_command(cc + " -std=c11 -Wall -Werror " + cflags + " -I" + runtime_dir + " " + capi_test + " -L" +
                      dir.path().string() + " -l" + lib + " -Wl,-rpath," + dir.path().string() + " -lpthread -o " + exe,
                  dir);
  if (build.status != 0) return {build.status, build.out, "building test_capi failed: " + build.err};
  return run_command(run_prefix + shell_quote(exe) + " " + shell_quote(model) + " " + shell_quote(other_file) + " " +
                         shell_quote(prompt) + " " + shell_quote(expected_file),
                     dir);
}

// Runs `fn`, expects an ImportError whose message contains every one of `parts`.
inline void expect_import_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an ImportError containing \"" << (parts.empty() ? "" : parts[0]) << "\"";
  } catch (const ImportError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
  }
}

// Builds SafeTensors bytes: a header from the added tensors (or a raw one), then data.
struct SafeTensorsBuilder {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::vector<uint8_t> data;

  SafeTensorsBuilder& add(const std::string& name, const std::string& dtype, std::vector<uint64_t> shape,
                          const std::vector<uint8_t>& bytes) {
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data.insert(data.end(), bytes.begin(), bytes.end());
    return *this;
  }

  static std::vector<uint8_t> assemble(const std::string& header_text, const std::vector<uint8_t>& data,
                                       std::optional<uint64_t> declared_len = std::nullopt) {
    std::string h = header_text;
    while ((8 + h.size()) % 8) h += ' ';
    std::vector<uint8_t> out(8);
    const uint64_t n = declared_len.value_or(h.size());
    std::memcpy(out.data(), &n, 8);
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }

  std::vector<uint8_t> build() const {
    nlohmann::ordered_json h = header;
    h["__metadata__"] = {{"format", "pt"}};
    return assemble(h.dump(), data);
  }
};

}  // namespace bitnetc::test
