#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace bitnetc {

namespace {

// The process groups (= the pids) of the children running now, in fixed slots the
// signal handler reads without the allocator.
constexpr int kChildSlots = 8;
volatile std::sig_atomic_t g_children[kChildSlots];

// Puts a child in a process group of its own and registers it for the handler; returns
// its slot (-1 when all are taken: the child is then not stopped by an interrupt).
int register_child(pid_t pid) {
  ::setpgid(pid, pid);  // also done by the child: whichever runs first
  for (int i = 0; i < kChildSlots; ++i)
    if (g_children[i] == 0) {
      g_children[i] = pid;
      return i;
    }
  return -1;
}

void unregister_child(int slot) {
  if (slot >= 0) g_children[slot] = 0;
}

// Registers a child for the handler while the parent waits for it.
class RunningChild {
 public:
  explicit RunningChild(pid_t pid) : slot_(register_child(pid)) {}
  ~RunningChild() { unregister_child(slot_); }
  RunningChild(const RunningChild&) = delete;
  RunningChild& operator=(const RunningChild&) = delete;

 private:
  int slot_ = -1;
};

}  // namespace

void stop_children_on_interrupt() {
  for (int i = 0; i < kChildSlots; ++i) {
    const pid_t pid = g_children[i];
    if (pid <= 0) continue;
    ::kill(-pid, SIGKILL);
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

int available_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
}

ProcessResult run_process(const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::invalid_argument("run_process: no program");
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(errno));
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("cannot fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    const std::string msg = "cannot run " + argv[0] + ": " + std::strerror(errno) + "\n";
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(127);
  }
  const RunningChild running(pid);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ProcessResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_rss_kb = usage.ru_maxrss;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

int run_shell(const std::string& command) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("cannot fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const RunningChild running(pid);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

ForkedTask::ForkedTask(const std::function<void()>& work, bool in_parents_group) {
  int message_pipe[2];
  if (::pipe2(message_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) {
    const int err = errno;
    ::close(message_pipe[0]);
    ::close(message_pipe[1]);
    throw std::runtime_error(std::string("cannot fork: ") + std::strerror(err));
  }
  if (pid_ == 0) {
    // A task dies with the process that forked it: a compile killed with SIGKILL leaves no
    // worker compiling on, holding its scratch folder's lock (an inherited descriptor).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    if (!in_parents_group) ::setpgid(0, 0);
    ::close(message_pipe[0]);
    // No destructor or atexit handler of the parent's runs here (_exit), and no stdio
    // buffer it filled is flushed twice.
    std::string message;
    try {
      work();
      ::_exit(0);
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
      message = "unknown exception";
    }
    // Within a pipe's buffer, so that the write never waits for a reader.
    if (message.size() > 4096) message.resize(4096);
    (void)!::write(message_pipe[1], message.data(), message.size());
    ::_exit(1);
  }
  ::close(message_pipe[1]);
  message_fd_ = message_pipe[0];
  own_group_ = !in_parents_group;
  if (own_group_) slot_ = register_child(pid_);
}

std::string ForkedTask::wait() {
  if (pid_ <= 0) return "the task was already waited for";
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  unregister_child(slot_);
  pid_ = -1;
  std::string message;
  char buf[4096];
  for (ssize_t n; (n = ::read(message_fd_, buf, sizeof buf)) != 0;) {
    if (n > 0)
      message.append(buf, static_cast<size_t>(n));
    else if (errno != EINTR)
      break;
  }
  ::close(message_fd_);
  message_fd_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (!message.empty()) return message;
  return WIFSIGNALED(status) ? std::string("killed by signal ") + std::to_string(WTERMSIG(status))
                             : "exited with status " + std::to_string(WEXITSTATUS(status));
}

ForkedTask::~ForkedTask() {
  if (pid_ > 0) {
    ::kill(own_group_ ? -pid_ : pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    unregister_child(slot_);
  }
  if (message_fd_ >= 0) ::close(message_fd_);
}

}  // namespace bitnetc
