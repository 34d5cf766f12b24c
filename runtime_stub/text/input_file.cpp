#include "input_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace bitnetc::rt {

std::string read_input_file(const std::string& flag, const std::string& path) {
  const std::string named = flag + " " + path + ": ";
  FILE* f = stdin;
  if (path != "-") {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw InputFileError(named + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      throw InputFileError(named + "not a regular file (a directory, FIFO or device); use " + flag + " - for stdin");
    if (static_cast<uint64_t>(st.st_size) > kMaxInputFileBytes)
      throw InputFileError(named + std::to_string(st.st_size) + " bytes; a prompt file holds at most 16 MiB");
    f = std::fopen(path.c_str(), "rb");
    if (!f) throw InputFileError(named + std::strerror(errno));
  }
  std::string text;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) {
    text.append(buf, n);
    if (text.size() > kMaxInputFileBytes) {
      if (f != stdin) std::fclose(f);
      throw InputFileError(named + "more than 16 MiB; a prompt holds at most that");
    }
  }
  const bool bad = std::ferror(f);
  if (f != stdin) std::fclose(f);
  if (bad) throw InputFileError(named + "cannot read it");
  return text;
}

}  // namespace bitnetc::rt
