// The program and the shared libraries loaded in this process, with their GNU build IDs:
// what identifies the code that made a file (codegen/kernel_cache.h keys on them).
#pragma once

#include <string>
#include <vector>

namespace bitnetc {

struct LoadedObject {
  std::string path;      // empty for the program itself
  std::string build_id;  // hex; empty when the object carries none
};

std::vector<LoadedObject> loaded_objects();

}  // namespace bitnetc
