// The compiled executables' command line (runtime_stub/main/output_args.h): llama-cli's
// flags parse to what they say, and every bad value or combination is refused with a
// message naming the flag (the executable exits 2 with it).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "output_args.h"

using namespace bitnetc::rt;

namespace {

std::vector<std::string> split(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

OutputArgs parse(const std::string& line) { return parse_output_args(split(line)); }

}  // namespace

TEST(OutputArgs, LlamaCliFlagsParseToWhatTheySay) {
  const OutputArgs a = parse(
      "-p hi -n 12 -c 256 -t 2 --temp 0.5 --top-k 7 --top-p 0.9 --min-p 0.1 "
      "--repeat-penalty 1.1 -s 18446744073709551615 -r END -r STOP --ignore-eos --no-special -v");
  EXPECT_EQ(a.mode, OutputArgs::Mode::Generate);
  EXPECT_EQ(a.prompt, "hi");
  EXPECT_EQ(a.n_predict, 12);
  EXPECT_EQ(a.n_ctx, 256);
  EXPECT_EQ(a.threads, 2);
  EXPECT_FLOAT_EQ(a.sampling.temperature, 0.5f);
  EXPECT_EQ(a.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(a.sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(a.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(a.sampling.repeat_penalty, 1.1f);
  EXPECT_EQ(a.sampling.seed, 18446744073709551615ull);
  EXPECT_FALSE(a.random_seed);
  EXPECT_EQ(a.reverse_prompts, (std::vector<std::string>{"END", "STOP"}));
  EXPECT_TRUE(a.ignore_eos && a.no_special && a.verbose);
  // No -s, or -s -1 (llama.cpp's convention): a random seed.
  EXPECT_TRUE(parse("-p hi").random_seed);
  EXPECT_TRUE(parse("-p hi -s -1").random_seed);
  EXPECT_EQ(parse("-p hi -n -1").n_predict, -1);  // until the context is full

  const OutputArgs c = parse("-cnv -sys Brief --chat-template chatml --keep 32");
  EXPECT_EQ(c.mode, OutputArgs::Mode::Conversation);
  EXPECT_EQ(c.system_prompt, "Brief");
  EXPECT_EQ(c.chat_template, "chatml");
  EXPECT_EQ(c.keep, 32);
  EXPECT_EQ(parse("-f -").prompt_file, "-");
  const OutputArgs s = parse("--server --port 0 -np 8 --queue 2 --timeout 5 --api-key k");
  EXPECT_EQ(s.mode, OutputArgs::Mode::Server);
  EXPECT_EQ(s.server.slots, 8);
  EXPECT_EQ(s.server.port, 0);
  const OutputArgs b = parse("--bench 128,64,3,8");
  EXPECT_EQ(b.mode, OutputArgs::Mode::Bench);
  EXPECT_EQ(b.bench.prompt, 128);
  EXPECT_EQ(b.bench.sequences, 8);
  EXPECT_EQ(b.bench.depth, 0);
  EXPECT_EQ(parse("--bench-depth 4096 --bench 512,0,2").bench.depth, 4096);  // in either order
  EXPECT_EQ(parse("--bench 512,0,2 --bench-depth 4096").bench.depth, 4096);
  EXPECT_EQ(parse("--bench-draft 4 --bench 0,64,3").bench.draft, 4);  // in either order
  EXPECT_EQ(parse("-h -bogus").mode, OutputArgs::Mode::Help);
}

TEST(OutputArgs, BadValuesAndCombinationsNameTheFlag) {
  const std::pair<const char*, const char*> cases[] = {
      {"--bogus", "unknown option --bogus"},
      {"-p", "option -p needs a value"},
      {"--temp nan", "--temp must be a finite number"},
      {"--temp inf", "--temp must be a finite number"},
      {"--temp 0.8x", "--temp: \"0.8x\" is not a number"},
      {"--top-p nan", "--top-p must be a finite number"},
      {"--top-p -1", "--top-p must be a finite number >= 0"},
      {"--top-p 2", "and <= 1, not 2"},
      {"--min-p 5", "--min-p must be"},
      {"--repeat-penalty 0", "--repeat-penalty must be a finite number > 0"},
      {"--repeat-penalty -1", "--repeat-penalty must be"},
      {"-s 1e24", "-s: \"1e24\" is not a seed"},
      {"-s -2", "-s: \"-2\" is not a seed"},
      {"-s 18446744073709551616", "-s must be at most 18446744073709551615"},
      {"-c -5", "-c must be at least 0, not -5"},
      {"-n 99999999999999999999", "-n must be a whole number from -1 to"},
      {"-n -2", "-n must be a whole number from -1"},
      {"-n 1.5", "-n: \"1.5\" is not a whole number"},
      {"-t 0", "-t must be at least 1"},
      {"--top-k 1e3", "--top-k: \"1e3\" is not a whole number"},
      {"--top-logits 3 -p hi", "--top-logits prints its logits in --json's object: add --json"},
      {"--lookup 65 -p hi", "--lookup must be a whole number from 0 to 64"},
      {"--lookup 4 --bench 16,8,1", "--lookup drafts from a generation's own text"},
      {"--lookup 4 --profile 2", "--lookup drafts from a generation's own text"},
      {"--bench-draft 4 -p hi", "--bench-draft is an option of --bench"},
      {"--bench 0,16,2,4 --bench-draft 2", "does not combine with S > 1"},
      {"--bench 0,16,2 --bench-draft 65", "--bench-draft must be a whole number from 0 to 64"},
      {"-p a -f b", "give the prompt with -p or -f, not both"},
      {"-r", "option -r needs a value"},
      {"-sys hello -p hi", "-sys is an option of the conversation mode; add -cnv"},
      {"--keep 4 -p hi", "--keep is an option of the conversation mode"},
      {"--chat-template chatml -p hi", "--chat-template is an option of -cnv, -i and --server"},
      {"--version -p hi", "--version combines only with --json"},
      {"--bench-depth 8 -p hi", "--bench-depth is an option of --bench; add --bench"},
      {"--bench 8,8,1 --bench-depth -1", "--bench-depth"},
      {"-cnv --json", "-cnv prints the conversation"},
      {"-i --server", "give one"},
      {"--server -p hi", "does not combine"},
      {"--server --ignore-eos", "does not combine"},
      {"--api-key x -p hi", "add --server"},
      {"--port 70000 --server", "--port must be a whole number from 0 to 65535"},
      {"--timeout nan --server", "--timeout must be a finite number"},
      {"-np 0 --prompts f", "-np must be a whole number from 1 to 256"},
      {"-np 4 -p hi", "-np runs the prompts of --prompts FILE"},
      {"--prompts f --ignore-eos", "apply to -p, -f, -i and -cnv"},
      {"--bench 1,2", "--bench wants PROMPT_TOKENS"},
      {"--bench 1,2,0", "--bench's REPETITIONS must be"},
      {"--bench 128,128,3 -n 5", "no -n or --json"},
      {"--profile 0", "--profile must be"},
      {"--device tpu", "--device must be cpu or cuda"},
  };
  for (const auto& [line, message] : cases) {
    try {
      parse(line);
      ADD_FAILURE() << line << ": accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << line << " -> " << e.what();
    }
  }
  // An empty -f or -r value.
  EXPECT_THROW(parse_output_args({"-f", ""}), UsageError);
  EXPECT_THROW(parse_output_args({"-r", ""}), UsageError);
}
