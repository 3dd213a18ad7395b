// Top-k: keep the k entries of largest |v_j| (ties to the smaller index);
// E|v - comp v|^2 <= (1 - k/d)|v|^2 deterministically (Stich et al. 2018, Def. 2.1).
// Bits: the Mem-SGD paper's 32 (index) + 32 (value) per sent coordinate; the EF accounting
// SparseBits.
//
// Three selectors, one set (TopKReference's):
//   TopKSelector           one pass with a size-k min-heap (small k) or nth_element (large k);
//                          what Compress uses, and the Mem-SGD "heap" kernel's streaming pass
//   kernels::ThresholdTopK a carried threshold with a vectorised candidate scan (the Mem-SGD
//                          engine's default fused pass, memsgd/kernels/topk.hpp)
//   TopKReference          full nth_element, for tests and the "reference" kernel
// The fused Mem-SGD step (memory update and selection in one pass over d) is in the engine,
// engine/step_kernels.hpp SelectMessage(..., TopK&, ...): it fuses the engine's regulariser term,
// which this file does not know; it selects with the two selectors held here.
#pragma once
#include <algorithm>
#include <span>
#include <vector>

#include "memsgd/compress/spec.hpp"
#include "memsgd/kernels/topk.hpp"
#include "memsgd/rng.hpp"

namespace memsgd {

// Exact top-k of |v| (ties broken towards the smaller index).
// Small k: one pass with a size-k min-heap; large k: nth_element over a scratch array.
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

namespace compress {

class TopK : public SparseMessage {
 public:
  static constexpr CompressorKind kKind = CompressorKind::kTopK;
  static constexpr bool kBlind = false;
  static std::string Name(const CompressorSpec&) { return "top"; }

  TopK() = default;
  TopK(const CompressorSpec& s, Index d) {
    const Index k = IntK(s, d);
    topk_.Reset(d, k);
    threshold_.Reset(d, k);
  }
  void Compress(std::span<const double> v, SparseUpdate& out, Rng&) { topk_.Select(v, out); }

  TopKSelector& Selector() noexcept { return topk_; }
  kernels::ThresholdTopK& Threshold() noexcept { return threshold_; }

 private:
  TopKSelector topk_;
  kernels::ThresholdTopK threshold_;
};

}  // namespace compress
}  // namespace memsgd
