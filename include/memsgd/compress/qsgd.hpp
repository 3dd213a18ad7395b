// QSGD with s = 2^b levels (Alistarh et al. 2017): comp(v)_j = |v| sign(v_j) xi_j / s,
// xi_j = floor(s |v_j| / |v|) + Bernoulli(frac); unbiased, not a k-contraction. The Figure 3
// comparison in bits. Bits (both accountings): min((b+1) d, 3 s (s + sqrt d) + 32,
// (b + 1 + 32) nnz), the cheapest of a dense, an Elias and a sparse encoding
// (../shared/papers/mem-sgd.md section 7).
#pragma once
#include <span>

#include "memsgd/compress/spec.hpp"
#include "memsgd/rng.hpp"

namespace memsgd {

// Bits for QSGD with b bits over dimension d and a row of nnz nonzeros (min of three encodings).
double QsgdBits(int bits, Index d, Index nnz_row) noexcept;

namespace compress {

class Qsgd {
 public:
  static constexpr CompressorKind kKind = CompressorKind::kQsgd;
  static constexpr bool kBlind = false;
  static std::string Name(const CompressorSpec&) { return "qsgd"; }
  static Index IntK(const CompressorSpec&, Index d) noexcept { return d; }
  static double Fraction(const CompressorSpec&, Index) noexcept { return 1.0; }
  static MessageCost Cost(const CompressorSpec& s, Index d, Index sent, int) noexcept {
    const double b = QsgdBits(s.qsgd_bits, d, sent);
    return {b, b};
  }

  Qsgd() = default;
  Qsgd(const CompressorSpec& s, Index d) : bits_(s.qsgd_bits), d_(d) {}
  double PaperBits(Index, Index nnz_row) const noexcept { return QsgdBits(bits_, d_, nnz_row); }
  void Compress(std::span<const double> v, SparseUpdate& out, Rng& rng) const;

 private:
  int bits_ = 4;
  Index d_ = 0;
};

}  // namespace compress
}  // namespace memsgd
