// Compression operators comp: R^d -> R^d (Stich et al. 2018, Def. 2.1-2.2, Remark 2.3) and the
// bits each message costs.
//
//   identity         comp(v) = v                                  (k = d)
//   top-k            keep the k entries of largest |v_j|          E|v - comp v|^2 <= (1 - k/d)|v|^2
//   rand-k           keep a uniformly random k-subset, unscaled   (as in the paper), same bound;
//                    with `scaled` the kept entries are multiplied by d/k (unbiased, variance
//                    (d/k - 1)|v|^2: the paper's "variance blow-up" strawman)
//   ultra-sparse     0 < k < 1: with probability k send one uniformly random coordinate, else
//                    nothing; every coordinate is sent with probability k/d, so the bound is again
//                    E|v - comp v|^2 = (1 - k/d)|v|^2 (Remark 2.3)
//   qsgd (s levels)  comp(v)_j = |v| sign(v_j) xi_j / s, xi_j = floor(s|v_j|/|v|) + Bernoulli(frac)
//                    unbiased (Alistarh et al. 2017); not a k-contraction
//
// Bits per message (the Mem-SGD paper's accounting, ../shared/papers/mem-sgd.md section 7):
// a sparse message costs 32 (index) + 32 (value) bits per coordinate; identity (SGD) costs 64 bits
// per nonzero of the data row; QSGD with b bits (s = 2^b) costs min((b+1)d, 3s(s+sqrt d)+32,
// (b+1+32) nnz_row).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "memsgd/kernels/topk.hpp"
#include "memsgd/rng.hpp"
#include "memsgd/types.hpp"

namespace memsgd {

enum class CompressorKind { kIdentity, kTopK, kRandK, kUltraSparse, kQsgd };

struct CompressorSpec {
  CompressorKind kind = CompressorKind::kTopK;
  double k = 1;          // coordinates sent (top/rand); probability-weighted (< 1: ultra-sparse)
  bool scaled = false;   // rand-k: multiply kept values by d/k
  int qsgd_bits = 4;     // qsgd: b bits, s = 2^b levels

  // "identity" | "top" | "rand" | "qsgd"; k < 1 with "rand" or "top" selects ultra-sparse.
  static CompressorSpec FromName(const std::string& name, double k, bool scaled, int qsgd_bits);
  std::string Name() const;
  // Largest number of coordinates one message can hold for dimension d.
  Index Budget(Index d) const;
  // Integer k actually used for dimension d (clamped to [1, d]).
  Index IntK(Index d) const;
  // Compression ratio k/d used by the default shift a = d/k.
  double Fraction(Index d) const;
};

// A k-sparse message: (index, value) pairs, preallocated to the compressor's budget.
struct SparseUpdate {
  std::vector<Index> idx;
  std::vector<double> val;
  Index size = 0;
  void Reserve(Index budget) {
    idx.resize(static_cast<std::size_t>(budget));
    val.resize(static_cast<std::size_t>(budget));
  }
  void Clear() noexcept { size = 0; }
  void Push(Index j, double v) noexcept {
    idx[static_cast<std::size_t>(size)] = j;
    val[static_cast<std::size_t>(size)] = v;
    ++size;
  }
};

// Exact top-k of |v| (ties broken towards the smaller index).
// Small k: one pass with a size-k min-heap; large k: nth_element over a scratch array.
// The reference implementation for tests is TopKReference (full nth_element, always); the fast
// engine kernel is kernels::ThresholdTopK (memsgd/kernels/topk.hpp), reached via
// Compressor::Threshold().
class TopKSelector {
 public:
  void Reset(Index d, Index k);
  // Fill `out` with the top-k coordinates of v (values v_j), in no particular order.
  void Select(std::span<const double> v, SparseUpdate& out);

  // Streaming interface used by the fused Mem-SGD pass: Begin(), Offer(j, v_j) for every j,
  // then Finish(out) writes the top-k indices (values must be read by the caller).
  void Begin() noexcept { heap_size_ = 0; }
  void Offer(Index j, double vj) noexcept {
    const double a = vj < 0 ? -vj : vj;
    if (heap_size_ < k_) {
      Push(a, j);
    } else if (Better(a, j, heap_abs_[0], heap_idx_[0])) {
      ReplaceTop(a, j);
    }
  }
  // Writes the selected indices into out.idx (out.val left to the caller). Returns the count.
  Index Finish(SparseUpdate& out) noexcept;
  bool UsesHeap() const noexcept { return use_heap_; }

 private:
  static bool Better(double a, Index i, double b, Index j) noexcept {
    return a > b || (a == b && i < j);
  }
  void Push(double a, Index j) noexcept;
  void ReplaceTop(double a, Index j) noexcept;
  void SiftDown(Index pos) noexcept;

  Index d_ = 0, k_ = 0;
  bool use_heap_ = true;
  Index heap_size_ = 0;
  std::vector<double> heap_abs_;
  std::vector<Index> heap_idx_;
  std::vector<Index> scratch_;  // nth_element path
};

// Reference top-k: nth_element over all indices by (|v_j| desc, j asc). For tests and benchmarks.
std::vector<Index> TopKReference(std::span<const double> v, Index k);

// Uniform k-subset of [0, d) in O(k) expected time (Floyd's algorithm).
class RandKSampler {
 public:
  void Reset(Index d, Index k);
  // Writes k distinct indices into out.idx[0..k) (values left to the caller), returns k.
  Index Sample(Rng& rng, SparseUpdate& out);

 private:
  Index d_ = 0, k_ = 0;
  std::vector<std::uint8_t> mark_;  // used when k is large
};

// Per-worker compressor state: selector/sampler scratch, sized once.
class Compressor {
 public:
  Compressor() = default;
  Compressor(const CompressorSpec& spec, Index d);

  const CompressorSpec& Spec() const noexcept { return spec_; }
  Index Budget() const noexcept { return budget_; }

  // out <- comp(v). Values are the ones to send (scaled where the operator scales).
  void Compress(std::span<const double> v, SparseUpdate& out, Rng& rng);
  // rand-k and ultra-sparse choose their coordinates without looking at v: Pick draws them
  // (out.idx, out.size; the same draws as Compress) and ValueScale() is the factor the values
  // are sent with (d/k for scaled rand-k, else 1). For the lazy Mem-SGD step, which evaluates
  // only the picked coordinates of its memory.
  bool PicksBlind() const noexcept {
    return spec_.kind == CompressorKind::kRandK || spec_.kind == CompressorKind::kUltraSparse;
  }
  void Pick(Rng& rng, SparseUpdate& out);
  double ValueScale() const noexcept {
    return spec_.kind == CompressorKind::kRandK && spec_.scaled ? static_cast<double>(d_) / k_ : 1.0;
  }
  // Bits of one message of `sent` coordinates for a data row with nnz_row nonzeros (inline: the
  // SGD step calls it for every sample).
  double MessageBits(Index sent, Index nnz_row) const noexcept {
    switch (spec_.kind) {
      case CompressorKind::kIdentity: return 64.0 * nnz_row;
      case CompressorKind::kQsgd: return QsgdMessageBits(nnz_row);
      default: return 64.0 * sent;
    }
  }

  TopKSelector& Selector() noexcept { return topk_; }
  // Carried-threshold exact top-k (sized for top-k compressors only).
  kernels::ThresholdTopK& Threshold() noexcept { return threshold_; }

 private:
  double QsgdMessageBits(Index nnz_row) const noexcept;

  CompressorSpec spec_;
  Index d_ = 0, k_ = 0, budget_ = 0;
  TopKSelector topk_;
  kernels::ThresholdTopK threshold_;
  RandKSampler randk_;
};

// Bits for QSGD with b bits over dimension d and a row of nnz nonzeros (min of three encodings).
double QsgdBits(int bits, Index d, Index nnz_row) noexcept;

}  // namespace memsgd
