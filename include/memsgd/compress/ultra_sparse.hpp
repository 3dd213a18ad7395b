// Ultra-sparse (0 < k < 1): with probability k send one uniformly random coordinate, else
// nothing. Every coordinate is sent with probability k/d, so E|v - comp v|^2 = (1 - k/d)|v|^2
// (Stich et al. 2018, Remark 2.3). Blind, like rand-k. Bits: 64 per sent coordinate (Mem-SGD
// paper); SparseBits (EF accounting).
#pragma once
#include <cstdint>
#include <span>

#include "memsgd/compress/spec.hpp"
#include "memsgd/rng.hpp"

namespace memsgd::compress {

class UltraSparse : public SparseMessage {
 public:
  static constexpr CompressorKind kKind = CompressorKind::kUltraSparse;
  static constexpr bool kBlind = true;
  static std::string Name(const CompressorSpec&) { return "ultra-sparse"; }
  static Index IntK(const CompressorSpec&, Index) noexcept { return 1; }
  static double Fraction(const CompressorSpec& s, Index d) noexcept { return s.k / d; }

  UltraSparse() = default;
  UltraSparse(const CompressorSpec& s, Index d) : p_(s.k), d_(d) {}
  void Pick(Rng& rng, SparseUpdate& out) {
    out.size = 0;
    if (rng.Uniform() < p_) out.Push(static_cast<Index>(rng.Below(static_cast<std::uint64_t>(d_))), 0.0);
  }
  double ValueScale() const noexcept { return 1.0; }
  void Compress(std::span<const double> v, SparseUpdate& out, Rng& rng) {
    Pick(rng, out);
    if (out.size) out.val[0] = v[static_cast<std::size_t>(out.idx[0])];
  }

 private:
  double p_ = 0;
  Index d_ = 0;
};

}  // namespace memsgd::compress
