// The compiled executables' command line: llama-cli's and llama-server's flags, parsed
// without side effects (no file is read here) so that tests and a fuzz target can run
// it. Every number is read whole and checked against its range; combinations that
// cannot work are refused. A refusal is a UsageError naming the flag (exit 2).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "sampler.h"
#include "server.h"

namespace bitnetc::rt {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `--bench P,G,R[,S] [--bench-depth D] [--bench-draft K]`.
struct BenchSpec {
  int prompt = 0, generated = 0, repetitions = 0, sequences = 1;
  int depth = 0;  // tokens already in each sequence's cache before a test (llama-bench's -d)
  int draft = 0;  // tg: each step feeds K draft rows too, every row's logits (a lookup step)
};

struct OutputArgs {
  enum class Mode {
    Generate,      // -p / -f: one prompt
    Interactive,   // -i: a prompt per line of stdin (a conversation on a chat model)
    Conversation,  // -cnv: a chat, the KV cache kept across turns
    Prompts,       // --prompts FILE: every line, -np at once
    Bench,
    Profile,
    Server,
    Help,
    Version,
  };
  Mode mode = Mode::Generate;

  std::string prompt;                        // -p
  std::string prompt_file;                   // -f ("-": stdin)
  int32_t n_predict = 64;                    // -n; -1: until the context is full
  int64_t n_ctx = 0;                         // -c; 0: the model's
  int threads = 0;                           // -t; 0: every core
  SamplerParams sampling;                    // seed: see random_seed
  bool random_seed = true;                   // no -s (or -s -1): a fresh seed per run, as llama.cpp
  bool json = false;                         // --json
  int top_logits = 0;                        // --top-logits K (with --json)
  int32_t lookup = 0;                        // --lookup N: draft tokens from the context's n-grams
  bool truncate = false;                     // --truncate
  bool verbose = false;                      // -v
  bool ignore_eos = false;                   // --ignore-eos
  bool no_special = false;                   // --no-special: control-token text in the prompt stays text
  std::vector<std::string> reverse_prompts;  // -r (repeatable)
  std::string system_prompt;                 // -sys (conversation)
  std::string chat_template;                 // --chat-template NAME|FILE (conversation); "none" disables
  int32_t keep = 0;                          // --keep N: tokens of the conversation's start never dropped
  std::string weights_path;                  // --weights
  std::string device;                        // --device cpu|cuda
  std::string prompts_path;                  // --prompts
  int parallel = 0;                          // -np; 0: not given
  BenchSpec bench;                           // --bench
  long profile_reps = 0;                     // --profile R
  ServerOptions server;                      // --server's flags
};

// Parses the arguments after argv[0]. Throws UsageError.
OutputArgs parse_output_args(const std::vector<std::string>& args);

// One line naming every flag (after a usage error).
const char* output_usage_line();

}  // namespace bitnetc::rt
