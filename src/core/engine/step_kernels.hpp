// The per-sample kernels of Mem-SGD / SGD / QSGD (internal to the engine; see train.cpp for the
// mathematics). Templated over the row layout and the shared-vector access policy so that the
// sequential solver (PlainAccess) and the parallel workers (AtomicAddAccess / RacyAddAccess) run
// the same arithmetic.
//
// Kernels (docs/performance.md; chosen by kernels::Options(), environment MEMSGD_KERNELS):
//   Mem-SGD top-k   threshold (default): the dense L2 term m += eta lambda x fused with a
//                   vectorised threshold scan, then an exact top-k among the few candidates
//                   (kernels::ThresholdTopK). heap: the previous fused streaming-heap pass.
//                   reference: scalar update, then TopKReference (full nth_element).
//                   All three select the same set and give bit-identical iterates (the memory's
//                   L2 term is fma(eta lambda, x, m) on every path: MemoryReg, kernels::MemoryL2).
//   SGD             lambda = 0: O(nnz) (bit-identical to the dense loop). Sequential, L2 and
//                   ctx.lazy_ok: the weight-scale trick x = s v, O(nnz) per step, equal to the
//                   dense step up to rounding; the runner must call Sync (SyncGuard) before it
//                   reads x. With the runner's lazy average (AveragedAccess) the average is then
//                   A u + B v. Otherwise the dense step (vectorised on the plain vector).
#pragma once
#include <algorithm>
#include <cmath>
#include <span>
#include <type_traits>
#include <vector>

#include "memsgd/aligned.hpp"
#include "memsgd/compressor.hpp"
#include "memsgd/dataset.hpp"
#include "memsgd/kernels/lazy_topk.hpp"
#include "memsgd/kernels/topk.hpp"
#include "memsgd/objective.hpp"
#include "memsgd/rng.hpp"
#include "memsgd/shared_vector.hpp"

namespace memsgd::detail {

// Per-worker state, allocated once and padded so two workers never share a cache line.
struct alignas(kCacheLine) Worker {
  AlignedVector m;  // memory (Mem-SGD) or gradient scratch (SGD); all zeros between steps
  SparseUpdate msg;
  Compressor comp;
  Rng rng;
  double bits = 0;
  Offset steps = 0;  // samples this worker processed
  double scale = 1;  // lazy SGD (sequential): the runner's x holds v, the iterate is scale * v
  // Lazy Mem-SGD memory (StepContext::lazy_mem): m holds b, the memory is m_j = b_j + sigma_j S
  // with S = shift (LazyMemStep).
  AlignedVector sigma;  // sigma_j = R'(x_j) as this worker last read x_j
  double shift = 0;     // S: the step sizes summed since the memory was last folded
  bool lazy_ready = false;      // sigma and the bound tree are set up (LazyBegin)
  kernels::LazyTopK lazy_topk;  // top-k over the lines (b_j, sigma_j)
  std::vector<double> row_x;    // parallel: the x values read for the row's dot product
  AlignedVector xsnap;  // parallel on dense rows: x as this step read it; snapshot mode: this
                        // worker's copy of x, its own writes included
  AlignedVector xbase;  // snapshot mode: xsnap as last copied from the shared x
  std::vector<Index> changed;  // snapshot mode: scratch of WriteChanges
  Offset longest_flush = 0;    // snapshot mode: the most steps combined into one write so far
};

// The sequential runner's access when it averages lazily: the running average is
// avg = A u + B x (u the runner's average buffer, A and B scalars kept by the runner, b_over_a =
// B / A), so a write x_j += delta leaves the average unchanged by u_j -= (B / A) delta. Reads are
// plain. Every write of a step goes through Add (the kernels' direct writes to the plain vector
// are for PlainAccess only).
// With the lazy SGD kernel (x = s v) the average is A u + B v: the same, with v in place of x.
struct LazyAverageState {
  double a = 1, b = 0, b_over_a = 0;
};
struct AveragedAccess {
  double* x;
  double* u;
  LazyAverageState* avg;
  double Load(Index j) const noexcept { return x[j]; }
  void Add(Index j, double delta) const noexcept {
    x[j] += delta;
    u[j] -= avg->b_over_a * delta;
  }
  double AddFetch(Index j, double delta) const noexcept {
    Add(j, delta);
    return x[j];
  }
  // u = A u + B x over n coordinates, A = 1, B = 0: u is then the average (no-op when folded).
  void Fold(std::size_t n) const noexcept {
    LazyAverageState& st = *avg;
    if (st.a == 1.0 && st.b == 0.0) return;
    for (std::size_t j = 0; j < n; ++j) u[j] = st.a * u[j] + st.b * x[j];
    st = LazyAverageState{};
  }
};

template <class X>
inline constexpr bool kIsPlain = std::is_same_v<X, PlainAccess>;
// x.x may be read directly (vectorised passes): the sequential runner's accesses.
template <class X>
inline constexpr bool kReadsPlain = kIsPlain<X> || std::is_same_v<X, AveragedAccess>;

// buf[0, len) = x[j0, j0 + len) through the access's loads (relaxed atomic loads for the shared
// vector: one scalar load each, never vectorised by the compiler). Four loads, then four stores:
// ~20 % faster than the plain loop. Kept out of the SLP vectoriser, which would otherwise pack
// the four loaded values into a vector with inserts before one store (port-5 shuffles: measured
// 2x slower than the scalar stores; perf put them at half a parallel worker's step).
template <class X>
[[gnu::noinline, gnu::optimize("no-tree-slp-vectorize")]] void LoadChunk(const X& x, Index j0,
                                                                          Index len,
                                                                          double* buf) noexcept {
  Index i = 0;
  for (; i + 4 <= len; i += 4) {
    const double a = x.Load(j0 + i), b = x.Load(j0 + i + 1), c = x.Load(j0 + i + 2),
                 d = x.Load(j0 + i + 3);
    buf[i] = a;
    buf[i + 1] = b;
    buf[i + 2] = c;
    buf[i + 3] = d;
  }
  for (; i < len; ++i) buf[i] = x.Load(j0 + i);
}

// Snapshot mode (mem_sgd.cpp, WorkerLoop). WriteChanges: the worker's changes since its last
// copy of x, xsnap - xbase, added to the shared x through W (their lines requested for writing
// first, so that the transfers overlap). CopyShared: xsnap = xbase = the shared x.
template <class W>
void WriteChanges(const W& shared, Worker& w, Index d) noexcept {
  const double* s = w.xsnap.data();
  const double* b = w.xbase.data();
  auto& changed = w.changed;  // capacity d
  changed.clear();
  for (Index j = 0; j < d; ++j)
    if (s[j] != b[j]) changed.push_back(j);  // NaN != b: a diverged value is written too
  for (Index j : changed) shared.PrefetchWrite(j);
  for (Index j : changed) shared.Add(j, s[j] - b[j]);
}
template <class W>
void CopyShared(const W& shared, Worker& w, Index d) noexcept {
  LoadChunk(shared, 0, d, w.xsnap.data());
  std::copy(w.xsnap.begin(), w.xsnap.end(), w.xbase.begin());
}

// Same-rounding helpers over rows: data-gradient part added into a dense buffer.
// Sparse rows: the order of objective.hpp's DotSparse (two partial sums) on every path.
template <class X>
inline double DotX(SparseRow r, const X& x) noexcept {
  return DotSparse(r, [&x](Index j) { return x.Load(j); });
}
// Dense rows: the fixed 16-lane order of kernels::DotLanesAccumulate on every path (the shared
// vector is read through X in 16-aligned chunks).
template <class X>
inline double DotX(DenseRow r, const X& x, kernels::Isa isa) noexcept {
  if constexpr (kReadsPlain<X>) {
    return kernels::DotDense(isa, r.val, x.x, r.d);
  } else {
    constexpr Index kChunk = 512;  // a multiple of kernels::kDotLanes
    alignas(64) double buf[kChunk];
    double lanes[kernels::kDotLanes] = {};
    for (Index j0 = 0; j0 < r.d; j0 += kChunk) {
      const Index len = std::min(kChunk, r.d - j0);
      LoadChunk(x, j0, len, buf);
      kernels::DotLanesAccumulate(isa, r.val + j0, buf, len, lanes);
    }
    return kernels::DotLanesReduce(lanes);
  }
}
template <class X>
inline double DotX(SparseRow r, const X& x, kernels::Isa) noexcept {
  return DotX(r, x);
}
// m += c * row
inline void AxpyRow(double c, SparseRow r, double* m, kernels::Isa) noexcept { Axpy(c, r, m); }
inline void AxpyRow(double c, DenseRow r, double* m, kernels::Isa isa) noexcept {
  kernels::AxpyDense(isa, c, r.val, m, r.d);
}
inline Index RowNnz(SparseRow r) noexcept { return r.nnz; }
inline Index RowNnz(DenseRow r) noexcept { return r.d; }
// Row entry e: (coordinate, value).
inline Index RowIndex(SparseRow r, Index e) noexcept { return r.idx[e]; }
inline Index RowIndex(DenseRow, Index e) noexcept { return e; }
inline double RowValue(SparseRow r, Index e) noexcept { return static_cast<double>(r.val[e]); }
inline double RowValue(DenseRow r, Index e) noexcept { return static_cast<double>(r.val[e]); }

struct StepContext {
  const Objective* obj;
  Index d;
  bool memory;
  bool sgd;         // plain SGD step
  // The runner reads the plain x only after detail::Sync (SyncGuard): lazy SGD allowed.
  bool lazy_ok = false;
  // Lazy Mem-SGD (--reg lazy, sparse rows, top-k / rand-k / ultra-sparse): LazyMemStep.
  bool lazy_mem = false;
  bool lazy_topk = false;   // top-k through Worker::lazy_topk (else the compressor's Pick)
  Offset fold_every = 0;    // parallel: a worker folds its memory and re-reads x this often
  // Parallel SGD with the regulariser on the row's support (--reg lazy): n / (rows with j).
  const double* inv_freq = nullptr;
  kernels::KernelOptions kern = kernels::Options();
};

// Sequential solver, reshuffled epochs: prefetches what the sample at position pos + 2 of the
// epoch's order needs (its row: a dense row up to 16 KB, a sparse row's first 128 entries; its
// label; its row_ptr entries were prefetched one step earlier) and the row_ptr entries of the
// sample at pos + 3 (two steps ahead: one short step is less than a loaded machine's memory
// latency). Random rows are the latency-bound part of a short step; a long vector pass would
// otherwise keep the CPU from overlapping the next row's cache misses. No prefetch across the
// epoch's end (the next order is not drawn yet), and no division on the way (a step of a sparse
// SGD run is ~100 cycles).
// always_inline: GCC's pure-const analysis finds a function that only reads memory and prefetches
// "looping pure", and a call to a pure function returning void is dead code, removed before it is
// inlined: the prefetches then vanish (GCC 12/13 at -O1 and above; checked with objdump).
[[gnu::always_inline]] inline void PrefetchAhead(const Dataset& data, std::span<const Offset> order, Offset pos,
                                                Offset stride = 1) noexcept {
  const auto n = static_cast<Offset>(order.size());
  if (pos + 3 * stride < n) {
    const Offset* ptr = data.RowPtr().data();
    const Offset i2 = order[static_cast<std::size_t>(pos + 3 * stride)];
    if (!data.IsDense()) {
      __builtin_prefetch(ptr + i2);
      __builtin_prefetch(ptr + i2 + 1);
    }
  }
  if (pos + 2 * stride >= n) return;
  const Offset i1 = order[static_cast<std::size_t>(pos + 2 * stride)];
  __builtin_prefetch(data.Labels().data() + i1);
  if (data.IsDense()) {
    const DenseRow r = data.Dense(i1);
    for (Index e = 0; e < std::min<Index>(r.d, 4096); e += 16) __builtin_prefetch(r.val + e);
    return;
  }
  const SparseRow r = data.Sparse(i1);
  for (Index e = 0; e < std::min<Index>(r.nnz, 128); e += 16) {
    __builtin_prefetch(r.idx + e);
    __builtin_prefetch(r.val + e);
  }
}



// m_j += eta * R'(x_j) for every j, and collect j with |m_j| > tau into cand (room for d +
// kernels::kCandidateSlack; tau = +inf: the update alone, cand untouched). Returns the number
// collected. Vectorised for L2 (on the plain vector directly; on the shared vector through relaxed
// atomic loads into a small buffer, then the same pass).
template <class X>
inline Index RegUpdateCollect(const StepContext& ctx, const X& x, double* m, double eta,
                              double tau, Index* cand) noexcept {
  const Objective& obj = *ctx.obj;
  const double lam = obj.lambda;
  const Index d = ctx.d;
  const kernels::Isa isa = ctx.kern.isa;
  if (lam == 0) return tau == INFINITY ? 0 : kernels::CollectAbove(isa, m, d, tau, cand);
  if (obj.reg == Regularizer::kL2) {
    if constexpr (kReadsPlain<X>) {
      return kernels::RegAxpyCollect(isa, m, x.x, eta, lam, d, tau, cand);
    } else {
      constexpr Index kChunk = 512;
      alignas(64) double buf[kChunk];
      Index c = 0;
      for (Index j0 = 0; j0 < d; j0 += kChunk) {
        const Index len = std::min(kChunk, d - j0);
        LoadChunk(x, j0, len, buf);
        c += kernels::RegAxpyCollect(isa, m + j0, buf, eta, lam, len, tau, cand + c, j0);
      }
      return c;
    }
  }
  Index c = 0;
  for (Index j = 0; j < d; ++j) {
    const double v = MemoryReg(obj, m[j], eta, x.Load(j));
    m[j] = v;
    if (std::abs(v) > tau) cand[c++] = j;
  }
  return c;
}

// The dense regulariser term alone: m_j += eta * R'(x_j) for every j.
template <class X>
inline void RegUpdate(const StepContext& ctx, const X& x, double* m, double eta) noexcept {
  Index unused[1];  // tau = +inf: nothing is ever appended
  RegUpdateCollect(ctx, x, m, eta, INFINITY, unused);
}

// Top-1 fused with the L2 update (L2 or lambda = 0 only): returns the first j with the largest
// |m_j|, or -1 when every entry is NaN.
template <class X>
inline Index RegUpdateArgmax(const StepContext& ctx, const X& x, double* m, double eta) noexcept {
  const double lam = ctx.obj->lambda;
  const Index d = ctx.d;
  const kernels::Isa isa = ctx.kern.isa;
  double best = 0;
  if (lam == 0) return kernels::RegAxpyArgmax(isa, m, nullptr, eta, 0.0, d, &best);
  if constexpr (kReadsPlain<X>) {
    return kernels::RegAxpyArgmax(isa, m, x.x, eta, lam, d, &best);
  } else {
    constexpr Index kChunk = 512;
    alignas(64) double buf[kChunk];
    Index arg = -1;
    double top = -1.0;
    for (Index j0 = 0; j0 < d; j0 += kChunk) {
      const Index len = std::min(kChunk, d - j0);
      LoadChunk(x, j0, len, buf);
      const Index a = kernels::RegAxpyArgmax(isa, m + j0, buf, eta, lam, len, &best, j0);
      if (a >= 0 && best > top) {  // strict: an earlier chunk keeps ties
        top = best;
        arg = a;
      }
    }
    return arg;
  }
}

// The lazy SGD state is folded back into the plain x: x = s v, s = 1.
template <class X>
inline void Sync(const StepContext&, const X& x, Worker& w) noexcept {
  if constexpr (kReadsPlain<X>) {
    if (w.scale != 1.0) {
      const double s = w.scale;
      double* v = x.x;
      const std::size_t n = w.m.size();
      // A lazy average A u + B v is folded first (rescaling B by 1/s instead would leave two large
      // terms that cancel).
      if constexpr (!kIsPlain<X>) x.Fold(n);
      for (std::size_t j = 0; j < n; ++j) v[j] *= s;
      w.scale = 1.0;
    }
  }
}

// Calls Sync when the runner's sequential segment ends (any return path).
template <class X>
class SyncGuard {
 public:
  SyncGuard(const StepContext& ctx, const X& x, Worker& w) : ctx_(ctx), x_(x), w_(w) {}
  ~SyncGuard() { Sync(ctx_, x_, w_); }
  SyncGuard(const SyncGuard&) = delete;
  SyncGuard& operator=(const SyncGuard&) = delete;

 private:
  const StepContext& ctx_;
  const X& x_;
  Worker& w_;
};

// Plain SGD: x -= eta (phi'(a.x) a + R'(x)).
// always_inline (SgdStep, Step): called once per sample; out of line, the row is passed on the
// stack in separate stores and reloaded as one vector, a store-forwarding stall measured at a
// third of a sparse step's time.
template <class Row, class X>
[[gnu::always_inline]] inline void SgdStep(const StepContext& ctx, const X& x, Worker& w, Row row, double y,
                    double eta) {
  const Objective& obj = *ctx.obj;
  const double lam = obj.lambda;
  const Index d = ctx.d;
  const Index nnz = RowNnz(row);
  w.bits += w.comp.MessageBits(d, nnz);
  if constexpr (std::is_same_v<Row, SparseRow>) {
    if (ctx.inv_freq && lam != 0) {
      // Hogwild! as Niu et al. run it: R'(x_j) only on the row's support, scaled by n / n_j
      // (n_j rows hold j), an unbiased estimate of the dense regulariser's gradient: O(nnz).
      double* xs = w.row_x.data();
      Index p = 0;
      const double z = DotSparse(row, [&](Index j) {
        const double v = x.Load(j);
        xs[p++] = v;
        return v;
      });
      const double c = eta * LossDerivative(obj.loss, z, y);
      for (Index e = 0; e < nnz; ++e) {
        const Index j = row.idx[e];
        const double g = c * static_cast<double>(row.val[e]) +
                         eta * RegDerivative(obj.reg, lam, xs[e]) * ctx.inv_freq[j];
        if (g != 0) x.Add(j, -g);
      }
      return;
    }
  }
  if (lam == 0) {
    // Only the row's coordinates change: x_j -= eta phi' a_ij (as the dense loop, which adds
    // -(0 + c a_ij) where that is nonzero).
    const double c = eta * LossDerivative(obj.loss, DotX(row, x, ctx.kern.isa), y);
    if constexpr (kIsPlain<X> && std::is_same_v<Row, DenseRow>) {
      kernels::SubScaledDense(ctx.kern.isa, c, row.val, x.x, row.d);
      return;
    }
    for (Index e = 0; e < nnz; ++e) {
      const double g = c * RowValue(row, e);
      if (g != 0) x.Add(RowIndex(row, e), -g);
    }
    return;
  }
  if constexpr (kReadsPlain<X>) {
    if (ctx.lazy_ok && obj.reg == Regularizer::kL2 && ctx.kern.sgd == kernels::SgdKernel::kLazy) {
      // Weight-scale trick (Bottou; scikit-learn's SGDClassifier): x = s v. The L2 shrink of every
      // coordinate is s *= 1 - eta lambda; the data gradient touches only the row. Folded back
      // (O(d)) when s gets small or the factor is not positive.
      const double f = 1.0 - eta * lam;
      if (f > 0) {
        const double s = w.scale;
        const double s1 = s * f;
        // 1/s1 is computed beside the dot and the loss derivative, off their dependency chain
        // (a division after them was a tenth of a w8a step); c * (1/s1) rounds like c / s1 to
        // within an ulp, and this kernel is the dense step's equal up to rounding anyway.
        const double inv = 1.0 / s1;
        const double z = s * DotX(row, x, ctx.kern.isa);
        const double c = eta * LossDerivative(obj.loss, z, y);
        double cs;
        if (s1 < 1e-9) {
          w.scale = s1;
          Sync(ctx, x, w);
          w.scale = 1.0;
          cs = c;
        } else {
          w.scale = s1;
          cs = c * inv;
        }
        if constexpr (std::is_same_v<Row, DenseRow> && kIsPlain<X>) {
          kernels::SubScaledDense(ctx.kern.isa, cs, row.val, x.x, row.d);
          return;
        }
        for (Index e = 0; e < nnz; ++e) {
          const double g = cs * RowValue(row, e);
          // Plain x: x_j - 0 is x_j, so no test (a branch per nonzero); shared: no needless write.
          if (kIsPlain<X> || g != 0) x.Add(RowIndex(row, e), -g);
        }
        return;
      }
      Sync(ctx, x, w);  // then the exact dense step below
    }
  }
  const double z = DotX(row, x, ctx.kern.isa);
  const double c = eta * LossDerivative(obj.loss, z, y);
  double* m = w.m.data();
  AxpyRow(c, row, m, ctx.kern.isa);  // m = eta phi'(z) a_i (m is zero between steps)
  if constexpr (kIsPlain<X>) {
    if (obj.reg == Regularizer::kL2) {
      kernels::SgdDenseUpdate(ctx.kern.isa, x.x, m, eta, lam, d);
      for (Index e = 0; e < nnz; ++e) m[RowIndex(row, e)] = 0;
      return;
    }
  }
  // x -= eta grad f_i(x): every coordinate (dense regulariser), written through X.
  for (Index j = 0; j < d; ++j) {
    const double g = MemoryReg(obj, m[j], eta, x.Load(j));
    if (g != 0) x.Add(j, -g);
    m[j] = 0;
  }
}

// Shared x: the message's cache lines are requested for writing first (X::PrefetchWrite).
template <class X>
[[gnu::always_inline]] inline void PrefetchMessage(const X& x, const SparseUpdate& msg) noexcept {
  if constexpr (requires { x.PrefetchWrite(Index{0}); })
    for (Index i = 0; i < msg.size; ++i) x.PrefetchWrite(msg.idx[static_cast<std::size_t>(i)]);
}

// ---- lazy Mem-SGD memory ----------------------------------------------------------------------
//
// Between two touches of coordinate j (the row's support, or a send) the dense step adds
// eta_t R'(x_j) to m_j and x_j does not change, so m_j = b_j + sigma_j S with sigma_j = R'(x_j) and
// S the sum of the step sizes: a step costs O(nnz + k) (plus the top-k tree's O(levels) per touch)
// instead of O(d). Sequential: x_j changes only when j is sent, so sigma_j is exact and the memory
// equals the dense kernel's up to rounding. Parallel: other workers move x_j, so sigma_j is
// R'(x_j) as this worker last read it (its row's dot product, its own sends, and a re-read of all
// of x every fold_every of its steps): docs/speedup.md states the rule and its staleness.

// Sets the slopes from x and the bound tree from the lines (O(d)); the memory stays as it is.
template <class X>
void LazyBegin(const StepContext& ctx, const X& x, Worker& w) {
  const Objective& obj = *ctx.obj;
  double* sg = w.sigma.data();
  for (Index j = 0; j < ctx.d; ++j) sg[j] = RegDerivative(obj.reg, obj.lambda, x.Load(j));
  if (ctx.lazy_topk) w.lazy_topk.Refresh(w.m.data(), sg, w.shift);
  w.lazy_ready = true;
}

// m_j = b_j + sigma_j S for every j, S = 0: w.m is the memory itself again (O(d)).
inline void LazyFoldMemory(Worker& w) noexcept {
  if (w.shift != 0) {
    double* b = w.m.data();
    const double* sg = w.sigma.data();
    const double sh = w.shift;
    for (std::size_t j = 0; j < w.m.size(); ++j) b[j] = kernels::LazyValue(b[j], sg[j], sh);
  }
  w.shift = 0;
  w.lazy_ready = false;
}

// Re-reads the slopes from x (a parallel worker's periodic re-read, or its new copy): the memory
// folded at the old slopes, then the lines set up again at the new ones (O(d)).
template <class X>
void LazyReread(const StepContext& ctx, const X& x, Worker& w) {
  if (w.lazy_ready) LazyFoldMemory(w);
  LazyBegin(ctx, x, w);
}

template <class X>
[[gnu::always_inline]] inline void LazyMemStep(const StepContext& ctx, const X& x, Worker& w,
                                               SparseRow row, double y, double eta) {
  constexpr bool kFresh = !kReadsPlain<X>;  // parallel: other workers move x
  if constexpr (kFresh) {
    if (w.steps > 0 && w.steps % ctx.fold_every == 0) LazyReread(ctx, x, w);
  }
  const Objective& obj = *ctx.obj;
  double* b = w.m.data();
  double* sg = w.sigma.data();
  const double s_before = w.shift;
  double z;
  if constexpr (kFresh) {
    double* xs = w.row_x.data();
    Index p = 0;
    z = DotSparse(row, [&](Index j) {
      const double v = x.Load(j);
      xs[p++] = v;
      return v;
    });
  } else {
    z = DotX(row, x);
  }
  const double c = eta * LossDerivative(obj.loss, z, y);
  const double sh = s_before + eta;  // this step's regulariser term, for every coordinate at once
  w.shift = sh;
  for (Index e = 0; e < row.nnz; ++e) {
    const Index j = row.idx[e];
    double bj = b[j];
    double sj = sg[j];
    if constexpr (kFresh) {
      // The slope read now: the memory keeps its value at s_before and grows with it from there.
      const double sn = RegDerivative(obj.reg, obj.lambda, w.row_x[static_cast<std::size_t>(e)]);
      bj += (sj - sn) * s_before;
      sj = sn;
      sg[j] = sn;
    }
    bj += c * static_cast<double>(row.val[e]);  // m += eta phi'(z) a_i
    b[j] = bj;
    if (ctx.lazy_topk) w.lazy_topk.Touch(j, kernels::LazyValue(bj, sj, sh), bj, sj, sh);
  }
  SparseUpdate& msg = w.msg;
  if (ctx.lazy_topk) {
    w.lazy_topk.Select(b, sg, sh, msg);
  } else {
    w.comp.Pick(w.rng, msg);
    // The k picks' lines at random places in d, requested together (their misses overlap).
    for (Index i = 0; i < msg.size; ++i) {
      const Index j = msg.idx[static_cast<std::size_t>(i)];
      __builtin_prefetch(b + j);
      __builtin_prefetch(sg + j);
      if constexpr (!kFresh) __builtin_prefetch(x.x + j);  // shared x: PrefetchMessage below
    }
    const double scale = w.comp.ValueScale();
    for (Index i = 0; i < msg.size; ++i) {
      const Index j = msg.idx[static_cast<std::size_t>(i)];
      msg.val[static_cast<std::size_t>(i)] = scale * kernels::LazyValue(b[j], sg[j], sh);
    }
  }
  // Send: x -= g; keep what was not sent, m = v - g, on the new slope R'(x_j).
  PrefetchMessage(x, msg);
  for (Index i = 0; i < msg.size; ++i) {
    const Index j = msg.idx[static_cast<std::size_t>(i)];
    const double g = msg.val[static_cast<std::size_t>(i)];
    const double mj = kernels::LazyValue(b[j], sg[j], sh) - g;
    const double sn = RegDerivative(obj.reg, obj.lambda, x.AddFetch(j, -g));
    sg[j] = sn;
    b[j] = mj - sn * sh;
    if (ctx.lazy_topk) w.lazy_topk.Sent(j, mj, b[j], sn, sh);
  }
  w.bits += w.comp.MessageBits(msg.size, row.nnz);
}

// Largest d for which top-1 uses the fused argmax pass (measured: at d = 300 it beats the
// threshold kernel, at d = 47,236 it is ~1.4x slower).
inline constexpr Index kArgmaxMaxD = 4096;

template <class Row, class R, class X>
void MemStep(const StepContext& ctx, const R& rd, const X& x, Worker& w, Row row, double y, double eta);

// The message of a dense-memory step, written once against the compressor policy
// (memsgd/compressor.hpp): the regulariser's term enters the memory m, then the operator
// compresses it. Top-k overloads it with the fused pass below.
template <class R, class Op>
[[gnu::always_inline]] inline void SelectMessage(const StepContext& ctx, const R& rd, Op& op, Worker& w,
                                                 double* m, double eta) {
  if (ctx.obj->lambda != 0) RegUpdate(ctx, rd, m, eta);
  op.Compress(std::span<const double>(m, static_cast<std::size_t>(ctx.d)), w.msg, w.rng);
}

// Top-k: the memory's regulariser term fused with the selection in one pass over d, by the
// kernel of ctx.kern.topk; for a k too large for the heap (TopKSelector::UsesHeap), the generic
// form above with nth_element.
template <class R>
[[gnu::always_inline]] inline void SelectMessage(const StepContext& ctx, const R& rd, compress::TopK& op,
                                                 Worker& w, double* m, double eta) {
  if (!op.Selector().UsesHeap()) {
    SelectMessage<R, compress::TopK>(ctx, rd, op, w, m, eta);
    return;
  }
  const Objective& obj = *ctx.obj;
  const double lam = obj.lambda;
  const Index d = ctx.d;
  if (ctx.kern.topk == kernels::TopKKernel::kThreshold &&
      op.Threshold().K() == 1 && (lam == 0 || obj.reg == Regularizer::kL2) && d <= kArgmaxMaxD) {
    // Top-1 on a small d: one fused pass keeps the running largest |m_j| (first index on ties);
    // no candidate bookkeeping. (For large d the threshold pass is cheaper: its loop does less
    // per element than the running (max, index) selects.)
    Index j = RegUpdateArgmax(ctx, rd, m, eta);
    if (j < 0) j = 0;  // all NaN: send one (the run's finiteness checks then see it)
    w.msg.Clear();
    w.msg.Push(j, m[j]);
  } else if (ctx.kern.topk == kernels::TopKKernel::kThreshold) {
    kernels::ThresholdTopK& sel = op.Threshold();
    const Index count = RegUpdateCollect(ctx, rd, m, eta, sel.Tau(), sel.Candidates());
    sel.Finish(ctx.kern.isa, m, count, w.msg);
  } else if (ctx.kern.topk == kernels::TopKKernel::kHeap) {
    TopKSelector& sel = op.Selector();
    sel.Begin();
    if (lam != 0) {
      for (Index j = 0; j < d; ++j) {
        m[j] = MemoryReg(obj, m[j], eta, rd.Load(j));
        sel.Offer(j, m[j]);
      }
    } else {
      for (Index j = 0; j < d; ++j) sel.Offer(j, m[j]);
    }
    sel.Finish(w.msg);
    for (Index i = 0; i < w.msg.size; ++i) w.msg.val[static_cast<std::size_t>(i)] = m[w.msg.idx[static_cast<std::size_t>(i)]];
  } else {  // reference: scalar update, full nth_element
    if (lam != 0)
      for (Index j = 0; j < d; ++j) m[j] = MemoryReg(obj, m[j], eta, rd.Load(j));
    const auto top = TopKReference(std::span<const double>(m, static_cast<std::size_t>(d)), w.comp.Spec().IntK(d));
    w.msg.Clear();
    for (Index j : top) w.msg.Push(j, m[j]);
  }
}

// One sample. x: shared (or plain) parameter access; w: this worker's state.
template <class Row, class X>
[[gnu::always_inline]] inline void Step(const StepContext& ctx, const X& x, Worker& w, Row row, double y, double eta) {
  if (ctx.sgd) {
    SgdStep(ctx, x, w, row, y, eta);
    return;
  }
  if constexpr (std::is_same_v<Row, SparseRow>) {
    if (ctx.lazy_mem) {
      LazyMemStep(ctx, x, w, row, y, eta);
      return;
    }
  }
  if constexpr (std::is_same_v<Row, DenseRow> && !kReadsPlain<X>) {
    // Parallel, dense rows: the step reads all of x twice (the dot product, the regulariser
    // term). One pass of relaxed atomic loads into the worker's snapshot, then both read it
    // with the plain (vectorised) kernels: the values are those of one moment of this step, as
    // the paper's inconsistent reads allow (docs/speedup.md).
    double* xs = w.xsnap.data();
    LoadChunk(x, 0, ctx.d, xs);
    MemStep(ctx, PlainAccess{xs}, x, w, row, y, eta);
  } else {
    MemStep(ctx, x, x, w, row, y, eta);
  }
}

// The dense-memory Mem-SGD/QSGD step: reads x through R, writes the message through X.
template <class Row, class R, class X>
[[gnu::always_inline]] inline void MemStep(const StepContext& ctx, const R& rd, const X& x, Worker& w, Row row,
                                           double y, double eta) {
  const Objective& obj = *ctx.obj;
  const double z = DotX(row, rd, ctx.kern.isa);
  const double c = eta * LossDerivative(obj.loss, z, y);
  double* m = w.m.data();
  AxpyRow(c, row, m, ctx.kern.isa);  // m += eta phi'(z) a_i
  const Index d = ctx.d;
  w.comp.Visit([&](auto& op) __attribute__((always_inline)) { SelectMessage(ctx, rd, op, w, m, eta); });
  // Send: x -= g (k shared writes); keep what was not sent: m = v - g.
  PrefetchMessage(x, w.msg);
  for (Index i = 0; i < w.msg.size; ++i) {
    const Index j = w.msg.idx[static_cast<std::size_t>(i)];
    const double g = w.msg.val[static_cast<std::size_t>(i)];
    x.Add(j, -g);
    m[j] -= g;
  }
  if (!ctx.memory) std::fill(m, m + d, 0.0);
  w.bits += w.comp.MessageBits(w.msg.size, RowNnz(row));
}

}  // namespace memsgd::detail
