// The bitnetc subcommands. Each parses nothing itself: main.cpp owns the CLI11
// definitions and hands over plain option structs.
#pragma once

#include <string>

namespace bitnetc::cli {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool full = false;  // print whole metadata arrays (tokens, scores, ...)
};
int inspect(const InspectOptions& o);

}  // namespace bitnetc::cli
