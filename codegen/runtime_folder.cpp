#include "runtime_folder.h"

#include <stdexcept>
#include <system_error>

namespace bitnetc::codegen {

namespace fs = std::filesystem;

fs::path runtime_folder() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find this executable's path (/proc/self/exe): " + ec.message());
  const fs::path folder = exe.parent_path().parent_path() / "lib" / "bitnetc";
  if (!fs::is_directory(folder / "include", ec))
    throw std::runtime_error(folder.string() +
                             ": this bitnetc's runtime folder is missing (bitnetc links outputs with the libraries "
                             "in ../lib/bitnetc beside its bin/ folder: copy or install the whole tree)");
  return fs::weakly_canonical(folder, ec);
}

fs::path runtime_build_folder(const std::string& triple, const std::string& name) {
  const fs::path folder = runtime_folder() / triple / name;
  std::error_code ec;
  return fs::exists(folder / "libbitnetc_runtime.a", ec) || fs::exists(folder / ("libbitnetc_capi_" + name + ".a"), ec)
             ? folder
             : fs::path();
}

}  // namespace bitnetc::codegen
