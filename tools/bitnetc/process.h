// Running a compiled output as a child process (bench, verify): its output, exit
// status, wall time and peak resident memory.
#pragma once

#include <string>
#include <vector>

namespace bitnetc::cli {

struct ProcessResult {
  int exit_code = -1;  // exit status, or 128 + signal number
  std::string out, err;
  double seconds = 0;
  long peak_rss_kb = 0;  // the child's maximum resident set size
};

// Runs argv[0] (looked up in PATH) with the arguments, no shell, and waits for it.
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace bitnetc::cli
