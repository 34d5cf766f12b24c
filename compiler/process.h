// Child processes: compiled outputs run by bench and verify (output, exit status, wall
// time, peak memory), and the tools codegen calls (llc, the linker).
#pragma once

#include <string>
#include <vector>

namespace bitnetc {

struct ProcessResult {
  int exit_code = -1;  // exit status, or 128 + signal number
  std::string out, err;
  double seconds = 0;
  long peak_rss_kb = 0;  // the child's maximum resident set size
};

// Runs argv[0] (looked up in PATH) with the arguments, no shell, and waits for it.
ProcessResult run_process(const std::vector<std::string>& argv);

// Runs `command` with /bin/sh and returns its exit status (128 + signal when killed).
// Unlike std::system it leaves SIGINT and SIGTERM alone, so an interrupted bitnetc dies
// (and cleans up) while a tool runs instead of finishing the compile.
int run_shell(const std::string& command);

// Kills the children (with their own children: each runs in a process group of its own)
// that run_process and run_shell are waiting for, and reaps them. Async-signal-safe: the
// interrupt handler (atomic_file.h) calls it before it removes scratch files, so that no
// tool writes into a folder being removed.
void stop_children_on_interrupt();

}  // namespace bitnetc
