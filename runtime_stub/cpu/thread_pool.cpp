#include "thread_pool.h"

namespace bitnetc::rt {

using Task = int (*)(void* user_context, int task_number, uint8_t* closure);

static int run_serially(void* user_context, Task f, int min, int size, uint8_t* closure) {
  for (int i = min; i < min + size; ++i)
    if (int err = f(user_context, i, closure)) return err;
  return 0;
}

}  // namespace bitnetc::rt

#if BITNETC_SINGLE_THREADED

namespace bitnetc::rt {

void set_cpu_threads(int) {}

int parallel_for(void* user_context, Task task, int min, int size, uint8_t* closure) {
  return run_serially(user_context, task, min, size, closure);
}

}  // namespace bitnetc::rt

#else

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace bitnetc::rt {

namespace {

// How long an idle worker spins before it sleeps: longer than the serial gaps between
// the kernels of one token, short against a pause between requests.
constexpr auto kSpinMicroseconds = std::chrono::microseconds(2000);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int default_threads() {
  if (const char* env = std::getenv("HL_NUM_THREADS"); env && std::atoi(env) > 0) return std::atoi(env);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

class Pool {
 public:
  static Pool& instance() {
    static Pool pool;
    return pool;
  }

  // At exit (or when a shared object is unloaded) the workers stop before the code
  // they run goes away.
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      stopping_.store(true);
      generation_.fetch_add(1);
      wake_.notify_all();
    }
    for (std::thread& w : workers_) w.join();
  }

  void set_threads(int threads) {
    std::lock_guard<std::mutex> busy(busy_);
    threads_ = std::max(1, threads);
    active_workers_.store(threads_ - 1);
  }

  int run(void* user_context, Task f, int min, int size, uint8_t* closure) {
    if (size <= 0) return 0;
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || threads_ == 1 || size == 1) return run_serially(user_context, f, min, size, closure);
    start_workers();
    job_.f = f;
    job_.user_context = user_context;
    job_.closure = closure;
    job_.min = min;
    job_.size = size;
    job_.next.store(0, std::memory_order_relaxed);
    job_.done.store(0, std::memory_order_relaxed);
    job_.error.store(0, std::memory_order_relaxed);
    current_.store(&job_, std::memory_order_release);
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      wake_.notify_all();
    }
    work_on(job_);
    while (job_.done.load(std::memory_order_acquire) < size) cpu_relax();
    // No worker may still hold the job when the next one reuses it. (Sequentially
    // consistent: the worker's in_job_ increment and its load of current_ pair with
    // this store and load; release/acquire would let x86 reorder them.)
    current_.store(nullptr);
    while (in_job_.load() > 0) cpu_relax();
    return job_.error.load();
  }

 private:
  struct Job {
    Task f = nullptr;
    void* user_context = nullptr;
    uint8_t* closure = nullptr;
    int min = 0, size = 0;
    std::atomic<int> next{0}, done{0}, error{0};
  };

  static void work_on(Job& job) {
    for (;;) {
      const int i = job.next.fetch_add(1, std::memory_order_relaxed);
      if (i >= job.size) return;
      if (int err = job.f(job.user_context, job.min + i, job.closure)) {
        int none = 0;
        job.error.compare_exchange_strong(none, err);
      }
      job.done.fetch_add(1, std::memory_order_release);
    }
  }

  void start_workers() {
    while (static_cast<int>(workers_.size()) < threads_ - 1) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { worker(index); });
    }
  }

  void worker(int index) {
    uint64_t seen = 0;
    for (;;) {
      const auto spin_start = std::chrono::steady_clock::now();
      int spins = 0;
      while (generation_.load() == seen) {
        cpu_relax();
        if (++spins % 1024 == 0 && std::chrono::steady_clock::now() - spin_start > kSpinMicroseconds) {
          std::unique_lock<std::mutex> lock(sleep_mutex_);
          sleepers_.fetch_add(1);
          wake_.wait(lock, [&] { return generation_.load() != seen; });
          sleepers_.fetch_sub(1);
        }
      }
      seen = generation_.load();
      if (stopping_.load()) return;
      if (index >= active_workers_.load()) continue;  // the thread count was lowered
      in_job_.fetch_add(1);
      if (Job* job = current_.load()) work_on(*job);
      in_job_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::mutex busy_;  // held by the thread whose job runs
  int threads_ = default_threads();
  std::atomic<int> active_workers_{threads_ - 1};
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
  Job job_;
  std::atomic<Job*> current_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> in_job_{0}, sleepers_{0};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

}  // namespace

void set_cpu_threads(int threads) { Pool::instance().set_threads(threads); }

int parallel_for(void* user_context, int (*task)(void*, int, uint8_t*), int min, int size, uint8_t* closure) {
  return Pool::instance().run(user_context, task, min, size, closure);
}

}  // namespace bitnetc::rt

#endif  // BITNETC_SINGLE_THREADED
