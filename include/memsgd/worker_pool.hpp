// WorkerPool: where the workers run. The engine asks for "run fn(w) for w = 0..P-1, each on its
// own thread, concurrently, and wait" and knows nothing else; an MPI back end would replace this
// seam (one rank per worker group) without touching the kernels.
//
// Production back end: a oneTBB task_arena of P threads with a static_partitioner, so worker w is
// one task on one thread for the whole segment. P may exceed the core count (oversubscription is
// then real: a global_control raises TBB's thread limit to P).
//
// ThreadSanitizer back end (MEMSGD_STD_THREADS, set by -DMEMSGD_SANITIZER=thread): std::thread per
// worker. Debian's libtbb is not instrumented, so TSan cannot see the happens-before edges of
// TBB's work stealing and reports races inside TBB's own headers; with std::thread (create/join)
// it sees every edge, and every access of memsgd's own code to shared memory is checked.
#pragma once
#include <memory>
#include <thread>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

namespace memsgd {

class WorkerPool {
 public:
  explicit WorkerPool(int threads) : p_(threads) {
#ifndef MEMSGD_STD_THREADS
    limit_ = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism,
        std::max<std::size_t>(static_cast<std::size_t>(p_),
                              tbb::global_control::active_value(
                                  tbb::global_control::max_allowed_parallelism)));
    arena_ = std::make_unique<tbb::task_arena>(p_);
#endif
  }
  int Size() const noexcept { return p_; }

  // Runs fn(i) for every i in [0, n) on the pool's threads (n independent items, e.g. the
  // error-feedback workers of a round) and returns when all are done: TBB's balancing among the
  // P threads; under MEMSGD_STD_THREADS thread t takes i = t, t + P, ...
  template <class F>
  void For(int n, F&& fn) {
#ifdef MEMSGD_STD_THREADS
    Run([&](int t) {
      for (int i = t; i < n; i += p_) fn(i);
    });
#else
    arena_->execute([&] {
      tbb::parallel_for(tbb::blocked_range<int>(0, n, 1), [&](const tbb::blocked_range<int>& r) {
        for (int i = r.begin(); i != r.end(); ++i) fn(i);
      });
    });
#endif
  }

  // Runs fn(w) for every w in [0, P) concurrently and returns when all are done.
  template <class F>
  void Run(F&& fn) {
#ifdef MEMSGD_STD_THREADS
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(p_));
    for (int w = 0; w < p_; ++w) threads.emplace_back([&fn, w] { fn(w); });
    for (auto& t : threads) t.join();
#else
    arena_->execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<int>(0, p_, 1),
          [&](const tbb::blocked_range<int>& r) {
            for (int w = r.begin(); w != r.end(); ++w) fn(w);
          },
          tbb::static_partitioner{});
    });
#endif
  }

 private:
  int p_;
#ifndef MEMSGD_STD_THREADS
  std::unique_ptr<tbb::global_control> limit_;
  std::unique_ptr<tbb::task_arena> arena_;
#endif
};

}  // namespace memsgd
