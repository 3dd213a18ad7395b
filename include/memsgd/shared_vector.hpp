// The only door to the shared parameter vector.
//
// Worker threads read and write the shared x only through these accessors, all built on
// std::atomic_ref<double> with relaxed ordering (the algorithm needs no ordering: Hogwild!
// semantics). `Plain` is the sequential solver's direct access (no other thread exists).
//
//   AtomicAdd  x_j += delta as one atomic read-modify-write (a CAS loop on x86); no update is lost
//   RacyAdd    relaxed load, then relaxed store of the sum: Hogwild!'s semantics, a concurrent
//              update of the same coordinate may be lost, but there is no data race (no UB)
#pragma once
#include <atomic>

#include "memsgd/types.hpp"

namespace memsgd {

static_assert(std::atomic_ref<double>::is_always_lock_free, "lock-free double atomics required");

struct PlainAccess {
  double* x;
  double Load(Index j) const noexcept { return x[j]; }
  void Add(Index j, double delta) const noexcept { x[j] += delta; }
  // Add, returning the value written (AddFetch: the lazy Mem-SGD step's new slope).
  double AddFetch(Index j, double delta) const noexcept { return x[j] += delta; }
};

// What the two shared-vector policies read alike: relaxed atomic loads, write prefetches.
struct SharedReadAccess {
  double* x;
  // Requests x_j's cache line for writing: a worker issues these for all k coordinates of its
  // message before the CAS loops, so that the line transfers from the other cores overlap
  // instead of each CAS waiting for its own (measured: rand-50, RCV1-like, docs/performance.md).
  void PrefetchWrite(Index j) const noexcept { __builtin_prefetch(x + j, 1); }
  double Load(Index j) const noexcept {
    return std::atomic_ref<double>(x[j]).load(std::memory_order_relaxed);
  }
};

// Atomic writes: fetch_add (a CAS loop on double).
struct AtomicAddAccess : SharedReadAccess {
  void Add(Index j, double delta) const noexcept {
    std::atomic_ref<double>(x[j]).fetch_add(delta, std::memory_order_relaxed);
  }
  // The value this add wrote (the previous value plus delta, as the CAS loop computed it).
  double AddFetch(Index j, double delta) const noexcept {
    return std::atomic_ref<double>(x[j]).fetch_add(delta, std::memory_order_relaxed) + delta;
  }
};

// Hogwild!'s racy writes: relaxed load, add, relaxed store (a concurrent add can be lost).
struct RacyAddAccess : SharedReadAccess {
  void Add(Index j, double delta) const noexcept { AddFetch(j, delta); }
  double AddFetch(Index j, double delta) const noexcept {
    std::atomic_ref<double> r(x[j]);
    const double v = r.load(std::memory_order_relaxed) + delta;
    r.store(v, std::memory_order_relaxed);
    return v;
  }
};

enum class WritePolicy { kAtomic, kRacy };

}  // namespace memsgd
