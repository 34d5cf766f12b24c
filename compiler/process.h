// Child processes: compiled outputs run by bench and verify (output, exit status, wall
// time, peak memory), and the tools codegen calls (llc, the linker).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace bitnetc {

struct ProcessResult {
  int exit_code = -1;  // exit status, or 128 + signal number
  std::string out, err;
  double seconds = 0;
  long peak_rss_kb = 0;  // the child's maximum resident set size
};

// The CPUs this process may run on (its affinity mask: a container's or taskset's limit,
// which std::thread::hardware_concurrency ignores).
int available_cpus();

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

// A function run in a forked copy of this process, stopped like run_process's children on
// an interrupt: in a process group of its own, or with `in_parents_group` in this
// process's (the tasks of a task). A task is killed when the process that forked it dies. For work that must
// start from this process's state and leave it untouched: Halide's name counters make a
// kernel's object depend on what the process compiled before it, so kernels compile in
// copies (codegen/cpu_kernels.cpp). Fork only while this process runs one thread.
class ForkedTask {
 public:
  explicit ForkedTask(const std::function<void()>& work, bool in_parents_group = false);
  ~ForkedTask();  // kills and reaps a task not waited for
  ForkedTask(const ForkedTask&) = delete;
  ForkedTask& operator=(const ForkedTask&) = delete;

  // Waits for the task: empty when `work` returned, else the message of what it threw
  // (or how it died).
  std::string wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int message_fd_ = -1;  // the child writes what it threw here
  int slot_ = -1;        // its place among the children an interrupt stops
  bool own_group_ = true;
};

}  // namespace bitnetc
