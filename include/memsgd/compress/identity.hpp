// The identity operator comp(v) = v (k = d): plain SGD's "message" and the EF methods' dense
// baseline. Bits: the Mem-SGD paper counts 64 bits (index + value) per nonzero of the data row;
// the EF accounting a dense v-bit vector.
#pragma once
#include <span>

#include "memsgd/compress/spec.hpp"
#include "memsgd/rng.hpp"

namespace memsgd::compress {

class Identity {
 public:
  static constexpr CompressorKind kKind = CompressorKind::kIdentity;
  static constexpr bool kBlind = false;
  static std::string Name(const CompressorSpec&) { return "identity"; }
  static Index IntK(const CompressorSpec&, Index d) noexcept { return d; }
  static double Fraction(const CompressorSpec&, Index) noexcept { return 1.0; }
  static MessageCost Cost(const CompressorSpec&, Index d, Index, int value_bits) noexcept {
    return DenseBits(d, value_bits);
  }

  Identity() = default;
  Identity(const CompressorSpec&, Index d) : d_(d) {}
  double PaperBits(Index, Index nnz_row) const noexcept { return 64.0 * nnz_row; }
  // The nonzeros of v.
  void Compress(std::span<const double> v, SparseUpdate& out, Rng&) const noexcept {
    out.size = 0;
    for (Index j = 0; j < d_; ++j)
      if (v[static_cast<std::size_t>(j)] != 0) out.Push(j, v[static_cast<std::size_t>(j)]);
  }

 private:
  Index d_ = 0;
};

}  // namespace memsgd::compress
