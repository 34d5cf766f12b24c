// The CPU outputs' thread pool (runtime_stub/cpu/thread_pool.h): every task runs exactly
// once, errors come back, and jobs started from several threads at once, or from inside
// a task, complete; parallel_for_each runs each index once and rethrows.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "thread_pool.h"

using namespace bitnetc;

namespace {

struct Counts {
  std::vector<std::atomic<int>> runs;
  explicit Counts(int n) : runs(n) {}
};

int count_task(void*, int i, uint8_t* closure) {
  reinterpret_cast<Counts*>(closure)->runs[i].fetch_add(1);
  return 0;
}

// Runs `jobs` jobs of varying sizes and offsets; every index of each runs once.
void run_jobs(int jobs, int seed) {
  for (int j = 0; j < jobs; ++j) {
    const int size = 1 + (j * 37 + seed) % 97, min = (j * 13 + seed) % 5;
    Counts c(min + size);
    ASSERT_EQ(rt::parallel_for(nullptr, count_task, min, size, reinterpret_cast<uint8_t*>(&c)), 0);
    for (int i = 0; i < min + size; ++i) ASSERT_EQ(c.runs[i].load(), i >= min ? 1 : 0) << "job " << j << " task " << i;
  }
}

}  // namespace

TEST(ThreadPool, RunsEveryTaskOnceAndReturnsTheFirstError) {
  rt::set_cpu_threads(2);
  run_jobs(2000, 1);
  auto failing = [](void*, int i, uint8_t*) { return i == 7 || i == 30 ? -(i + 1) : 0; };
  const int err = rt::parallel_for(nullptr, failing, 0, 40, nullptr);
  EXPECT_TRUE(err == -8 || err == -31) << err;
  EXPECT_EQ(rt::parallel_for(nullptr, failing, 8, 10, nullptr), 0);
}

TEST(ThreadPool, UsesItsThreadsAndOnlyTheCallerWithOne) {
  static constexpr auto record = [](void*, int, uint8_t* closure) {
    auto& seen = *reinterpret_cast<std::pair<std::mutex, std::set<std::thread::id>>*>(closure);
    std::lock_guard<std::mutex> lock(seen.first);
    seen.second.insert(std::this_thread::get_id());
    return 0;
  };
  std::pair<std::mutex, std::set<std::thread::id>> seen;
  rt::set_cpu_threads(1);
  for (int j = 0; j < 50; ++j)
    ASSERT_EQ(rt::parallel_for(nullptr, record, 0, 64, reinterpret_cast<uint8_t*>(&seen)), 0);
  EXPECT_EQ(seen.second, std::set<std::thread::id>{std::this_thread::get_id()});
  // Two threads: tasks of a few microseconds each, and the worker takes its share.
  auto record_slowly = [](void* user_context, int i, uint8_t* closure) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(5);
    while (std::chrono::steady_clock::now() < until) {
    }
    return record(user_context, i, closure);
  };
  seen.second.clear();
  rt::set_cpu_threads(2);
  for (int j = 0; j < 200; ++j)
    ASSERT_EQ(rt::parallel_for(nullptr, record_slowly, 0, 64, reinterpret_cast<uint8_t*>(&seen)), 0);
  EXPECT_EQ(seen.second.size(), 2u);
  run_jobs(200, 2);
}

TEST(ThreadPool, JobsFromSeveralThreadsAndFromInsideTasksComplete) {
  rt::set_cpu_threads(2);
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t) callers.emplace_back([t] { run_jobs(500, 10 + t); });
  for (auto& c : callers) c.join();
  auto nested = [](void*, int, uint8_t* closure) {
    Counts inner(16);
    if (rt::parallel_for(nullptr, count_task, 0, 16, reinterpret_cast<uint8_t*>(&inner)) != 0) return 1;
    for (auto& r : inner.runs)
      if (r.load() != 1) return 2;
    reinterpret_cast<std::atomic<int>*>(closure)->fetch_add(1);
    return 0;
  };
  std::atomic<int> outer{0};
  ASSERT_EQ(rt::parallel_for(nullptr, nested, 0, 20, reinterpret_cast<uint8_t*>(&outer)), 0);
  EXPECT_EQ(outer.load(), 20);
}

// The runtime's per-token helper: every index once, and an exception from a task comes
// back to the caller after the others ran.
TEST(ThreadPool, ParallelForEachRunsEveryIndexAndRethrows) {
  rt::set_cpu_threads(2);
  std::vector<std::atomic<int>> runs(9);
  rt::parallel_for_each(9, [&](int i) { runs[i].fetch_add(1); });
  for (int i = 0; i < 9; ++i) EXPECT_EQ(runs[i].load(), 1) << i;
  std::atomic<int> ran{0};
  EXPECT_THROW(rt::parallel_for_each(8,
                                     [&](int i) {
                                       ran.fetch_add(1);
                                       if (i == 5) throw std::runtime_error("task 5");
                                     }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 8);
}
