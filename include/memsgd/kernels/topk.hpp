// Fast exact kernels for the per-sample step (docs/performance.md).
//
// 1. Vectorised dense passes, dispatched at run time to AVX-512, AVX2 or plain C++ (the library
//    is built for baseline x86-64; the wide paths use GCC target attributes):
//      RegAxpyCollect   m_j += (eta lambda) x_j for every j, fused with a threshold scan that
//                       appends every j with |m_j| > tau to a candidate list
//      CollectAbove     the scan alone (lambda = 0, or a re-scan)
//    The memory's L2 term is one fused multiply-add, fma(eta * lambda, x_j, m_j) (MemoryL2), on
//    every path (vector FMA, std::fma in plain C++), so every path gives bit-identical memories;
//    it is one rounding instead of three and one instruction instead of three, which matters
//    when this pass is the step. Other products keep the scalar rounding order (NoContract).
//
// 2. ThresholdTopK: exact top-k of |m| with a threshold tau carried from step to step. The pass
//    collects the candidates {j : |m_j| > tau}; when there are at least k of them, every other
//    coordinate has |m_j| <= tau < each candidate, so the top-k of the candidates (ordered by
//    |m_j| descending, then j ascending, exactly as TopKReference) is the top-k of m. When fewer
//    than k pass, tau is lowered and m re-scanned, and as a last resort the full reference
//    selection runs. tau is then re-tuned from the candidates' values so that the next step sees a
//    few k candidates. The result is the same index set as a full sort, always; only the cost
//    depends on how well tau tracks the k-th largest |m_j|.
//
// Kernel choice (process-wide, for tests and benchmarks): KernelOptions, initialised from the
// environment variable MEMSGD_KERNELS, e.g. "topk=heap,sgd=dense,isa=scalar".
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "memsgd/types.hpp"

namespace memsgd {
struct SparseUpdate;
}

namespace memsgd::kernels {

// ---- instruction set ------------------------------------------------------------------------

enum class Isa { kScalar, kAvx2, kAvx512 };
Isa BestIsa() noexcept;  // what this CPU supports
std::string IsaName(Isa isa);

// ---- process-wide kernel options ------------------------------------------------------------

enum class TopKKernel {
  kThreshold,  // ThresholdTopK fused with the vectorised memory update (default)
  kHeap,       // the streaming size-k min-heap fused into a scalar pass (the previous kernel)
  kReference,  // scalar memory update, then TopKReference (full nth_element) every step
};
enum class SgdKernel {
  kLazy,   // sequential SGD: x = s v weight-scale trick, O(nnz) per step (when allowed)
  kDense,  // the O(d) dense step
};

enum class MemoryKernel { kAuto, kLazy, kDense };

struct KernelOptions {
  TopKKernel topk = TopKKernel::kThreshold;
  SgdKernel sgd = SgdKernel::kLazy;
  Isa isa = BestIsa();  // clamped to BestIsa()
  // Sequential Mem-SGD/QSGD with weighted or uniform averaging: the average kept as A u + B x,
  // O(k) per step (lazy), or updated over all d every step (dense). See engine/mem_sgd.cpp.
  bool lazy_average = true;
  // Mem-SGD on sparse rows with --reg lazy: the memory kept as lines b + s S, O(nnz + k) per
  // step (lazy), or the paper's dense pass over all d (dense, the reference). See
  // engine/step_kernels.hpp. auto: lazy for rand-k and ultra-sparse; for top-k only where the
  // exact selection over drifting lines tends to beat the dense threshold pass: its hot set
  // LazyTopK::KeepFor(d, k) = max(16k, min(512, d/16)) at most d/16, and n >= d/10 (measured,
  // 2 epochs sequential, lazy / dense seconds: RCV1-like 30,000 x 47,236 top-1 0.12 / 0.27,
  // top-50 0.33 / 0.54; 20,000 x 10,000 at 20 nonzeros a row, top-10 0.051 / 0.091, top-50
  // (hot set 800 > d/16) 0.28 / 0.19; 20,000 x 3,000, top-1 0.020 / 0.014; rcv1_small's 1,000
  // rows, dense 1.6-1.8x for top-10/50; w8a, dense 5-20x; docs/performance.md section 7).
  MemoryKernel memory = MemoryKernel::kAuto;
};
// The options the engine uses. Initialised once from MEMSGD_KERNELS (comma-separated key=value:
// topk=threshold|heap|reference, sgd=lazy|dense, isa=avx512|avx2|scalar, avg=lazy|dense,
// mem=auto|lazy|dense); not
// thread-safe to change while a run is in progress.
KernelOptions& Options() noexcept;
// Parses a MEMSGD_KERNELS string over the defaults; throws std::invalid_argument.
KernelOptions ParseKernelOptions(const std::string& spec);
std::string Describe(const KernelOptions& o);

// Sets Options() for a scope (tests, benchmarks).
class ScopedOptions {
 public:
  explicit ScopedOptions(const KernelOptions& o) : saved_(Options()) { Options() = o; }
  ~ScopedOptions() { Options() = saved_; }
  ScopedOptions(const ScopedOptions&) = delete;
  ScopedOptions& operator=(const ScopedOptions&) = delete;

 private:
  KernelOptions saved_;
};

// ---- no FMA contraction ---------------------------------------------------------------------

// Returns v unchanged, but the compiler cannot fuse the multiplication that produced v into a
// later addition (an FMA rounds once, the reference rounds twice).
inline double NoContract(double v) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+x"(v));
#elif defined(__GNUC__)
  asm("" : "+w"(v));
#endif
  return v;
}

// ---- dense passes ---------------------------------------------------------------------------

// The L2 term of the memory update, m + (eta lambda) x rounded once (el = eta * lambda): the
// arithmetic of RegAxpyCollect and RegAxpyArgmax on every instruction set.
inline double MemoryL2(double m, double el, double x) noexcept { return std::fma(el, x, m); }

// Spare entries a candidate buffer needs beyond the largest count (vector stores of whole lanes).
inline constexpr Index kCandidateSlack = 32;

// m[j] = MemoryL2(m[j], eta * lambda, x[j]) for j in [0, n); every j with |m[j]| > tau
// (after the update) is appended to cand as base + j, in increasing order. Returns the count
// appended. cand must have room for n + kCandidateSlack entries (entries past the count may be
// overwritten). tau = +infinity: the update alone (nothing is written to cand).
Index RegAxpyCollect(Isa isa, double* m, const double* x, double eta, double lambda, Index n,
                     double tau, Index* cand, Index base = 0) noexcept;
// Top-1 fused with the update: m[j] = MemoryL2(m[j], eta * lambda, x[j]) for all j (lambda = 0 or
// x = nullptr: no update), and returns the first j (smallest index) with the largest |m[j]|, as
// base + j; *best receives that |m[j]|. NaN entries are never chosen; n = 0 returns -1.
Index RegAxpyArgmax(Isa isa, double* m, const double* x, double eta, double lambda, Index n,
                    double* best, Index base = 0) noexcept;

// Appends every j with |m[j]| > tau (as base + j); returns the count. Same buffer rule.
Index CollectAbove(Isa isa, const double* m, Index n, double tau, Index* cand,
                   Index base = 0) noexcept;
// Sequential dense SGD step on the plain vector: for every j, g = MemoryL2(m[j], eta * lambda,
// x[j]); x[j] -= g where g != 0; m[j] is left to the caller. Bit-identical to the scalar loop of
// the engine (and so to Mem-SGD with the identity compressor).
void SgdDenseUpdate(Isa isa, double* x, const double* m, double eta, double lambda,
                    Index n) noexcept;

// ---- dense rows (float32 values, double iterate) ----------------------------------------------

// Dot products of dense rows use one fixed order on every instruction set: 16 partial sums, lane
// l collecting a_j x_j for j = l mod 16 in increasing j (16-aligned chunks continue the lanes),
// then the tree ((p_l + p_{l+8}) + (p_{l+4} + p_{l+12}))... done by DotLanesReduce. So the
// scalar, AVX2 and AVX-512 paths, and chunked use by the parallel engine, give the same bits.
inline constexpr Index kDotLanes = 16;
// lanes[j mod 16] += a[j] * x[j] for j in [0, n) (a chunk that starts at a multiple of 16).
void DotLanesAccumulate(Isa isa, const float* a, const double* x, Index n, double* lanes) noexcept;
double DotLanesReduce(const double* lanes) noexcept;
double DotDense(Isa isa, const float* a, const double* x, Index n) noexcept;
// y[j] += c * a[j] (each product rounded, then the sum: as the scalar loop).
void AxpyDense(Isa isa, double c, const float* a, double* y, Index n) noexcept;
// x[j] -= c * a[j] where c * a[j] != 0 (the SGD data step; as the scalar x.Add(j, -g) loop).
void SubScaledDense(Isa isa, double c, const float* a, double* x, Index n) noexcept;

// ---- exact top-k with a carried threshold ---------------------------------------------------

struct ThresholdStats {
  std::int64_t steps = 0;        // selections
  std::int64_t candidates = 0;   // sum of candidates examined
  std::int64_t rescans = 0;      // extra passes over m (tau lowered)
  std::int64_t full = 0;         // full reference selections
};

class ThresholdTopK {
 public:
  void Reset(Index d, Index k);
  Index K() const noexcept { return k_; }
  Index D() const noexcept { return d_; }

  // The threshold for the next pass, and the buffer (d + kCandidateSlack entries) that the pass
  // appends to.
  double Tau() const noexcept { return tau_; }
  Index* Candidates() noexcept { return cand_.data(); }

  // After a pass over m that appended `count` candidates (|m_j| > Tau()) to Candidates(): writes
  // the exact top-k of |m| (indices and values m_j) to out. May re-scan m.
  void Finish(Isa isa, const double* m, Index count, SparseUpdate& out);

  // Convenience: scan m (no update) and select. Same result as TopKReference(m, k).
  void Select(Isa isa, const double* m, SparseUpdate& out);

  const ThresholdStats& Stats() const noexcept { return stats_; }
  void ResetStats() noexcept { stats_ = {}; }
  void ForgetThreshold() noexcept { tau_ = 0; }

 private:
  struct Entry {
    double a;
    Index j;
  };
  void FullSelect(const double* m, SparseUpdate& out);
  void Retune(Index count);

  Index d_ = 0, k_ = 0;
  double tau_ = 0;
  Index target_ = 0, low_ = 0, high_ = 0;  // candidate counts the threshold aims at
  std::vector<Index> cand_;
  std::vector<std::uint64_t> keys_, scratch_;  // bit patterns of |m_j| of the candidates
  std::vector<Entry> entries_;                  // full selection only
  ThresholdStats stats_;
};

}  // namespace memsgd::kernels
