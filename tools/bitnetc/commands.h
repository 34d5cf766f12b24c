// The bitnetc subcommands. Each parses nothing itself: main.cpp owns the CLI11
// definitions and hands over plain option structs.
#pragma once

#include <string>

#include "sampler.h"

namespace bitnetc::cli {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool full = false;  // print whole metadata arrays (tokens, scores, ...)
  bool ir = false;    // print the lowered IR's text form instead
  std::string act_quant;
};
int inspect(const InspectOptions& o);

struct RunOptions {
  std::string model;
  std::string prompt;
  int32_t n_predict = 64;
  int64_t n_ctx = 0;      // 0: the model's
  std::string act_quant;  // "", "per-token", "per-block"
  rt::SamplerParams sampling;
  bool ignore_eos = false;
  bool chat = false;  // wrap the prompt as one user turn of the model's chat template
  bool json = false;
};
int run(const RunOptions& o);

}  // namespace bitnetc::cli
