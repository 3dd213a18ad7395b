// Rand-k: keep a uniformly random k-subset, unscaled as in the paper (same contraction bound as
// top-k, in expectation); with `scaled` the kept entries are multiplied by d/k (unbiased,
// variance (d/k - 1)|v|^2: the paper's "variance blow-up" strawman). The subset does not depend
// on v (kBlind): the lazy engines draw it with Pick and evaluate only those k coordinates.
// Bits: 32 + 32 per sent coordinate (Mem-SGD paper); SparseBits (EF accounting).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "memsgd/compress/spec.hpp"
#include "memsgd/rng.hpp"

namespace memsgd {

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

namespace compress {

class RandK : public SparseMessage {
 public:
  static constexpr CompressorKind kKind = CompressorKind::kRandK;
  static constexpr bool kBlind = true;
  static std::string Name(const CompressorSpec& s) { return s.scaled ? "rand-scaled" : "rand"; }

  RandK() = default;
  RandK(const CompressorSpec& s, Index d)
      : scale_(s.scaled ? static_cast<double>(d) / IntK(s, d) : 1.0) {
    sampler_.Reset(d, IntK(s, d));
  }
  // The coordinates (out.idx, out.size), values left to the caller.
  void Pick(Rng& rng, SparseUpdate& out) {
    out.size = 0;
    sampler_.Sample(rng, out);
  }
  // The factor the values are sent with: d/k when scaled, else 1.
  double ValueScale() const noexcept { return scale_; }
  void Compress(std::span<const double> v, SparseUpdate& out, Rng& rng) {
    Pick(rng, out);
    for (Index i = 0; i < out.size; ++i)
      out.val[static_cast<std::size_t>(i)] =
          scale_ * v[static_cast<std::size_t>(out.idx[static_cast<std::size_t>(i)])];
  }

 private:
  RandKSampler sampler_;
  double scale_ = 1;
};

}  // namespace compress
}  // namespace memsgd
