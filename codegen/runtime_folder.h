// Where bitnetc takes what it links outputs with: lib/bitnetc/ of the prefix its own
// executable is in (<prefix>/bin/bitnetc). An install (`cmake --install`, the .deb) and
// the build tree share this layout, so an installed tree can be moved or copied and
// nothing of the build that made it is needed:
//
//   lib/bitnetc/include/HalideRuntime.h         the kernels' ABI, for the kernel table
//   lib/bitnetc/<triple>/default/lib*.a         the runtime for one GNU triple
//   lib/bitnetc/<triple>/{asan,tsan}/lib*.a     sanitized runtimes (--runtime), x86-64 only
#pragma once

#include <filesystem>
#include <string>

namespace bitnetc::codegen {

// <dir of /proc/self/exe>/../lib/bitnetc, made canonical. Throws std::runtime_error naming
// the folder when it is missing (a bitnetc copied without its lib/ folder).
std::filesystem::path runtime_folder();

// The folder of one runtime build for a triple (runtime_folder()/triple/name), or an
// empty path when this installation has no such build.
std::filesystem::path runtime_build_folder(const std::string& triple, const std::string& name);

}  // namespace bitnetc::codegen
