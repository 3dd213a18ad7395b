// What every compression operator shares: which one a run uses (CompressorSpec, parsed from the
// command line), the message it produces (SparseUpdate) and the EF accounting's cost type.
// The operators themselves, one file each: identity.hpp, top_k.hpp, rand_k.hpp, ultra_sparse.hpp,
// qsgd.hpp; memsgd/compressor.hpp joins them behind one dispatch.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

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
  // rand-k and ultra-sparse choose their coordinates without looking at the vector.
  bool PicksBlind() const noexcept {
    return kind == CompressorKind::kRandK || kind == CompressorKind::kUltraSparse;
  }
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

// The error-feedback accounting (../shared/papers/ef21-sgdm.md) of one uplink message.
struct MessageCost {
  double values = 0;   // v bits per sent value (the EF21 authors' plots: indices not counted)
  double indexed = 0;  // values plus indices: v + ceil(log2 d) bits per sent coordinate,
                       // capped at the dense encoding v d
};

// ceil(log2 d): bits of one coordinate index (0 for d = 1).
inline int IndexBits(Index d) noexcept {
  int b = 0;
  while (b < 31 && (Index{1} << b) < d) ++b;
  return b;
}

// A dense, uncompressed d-vector (the identity's message; the EF21 methods' initial g_i^0; the
// broadcast of x).
inline MessageCost DenseBits(Index d, int value_bits = 32) noexcept {
  return {double(value_bits) * d, double(value_bits) * d};
}

// A sparse message of `sent` (index, value) pairs of a d-vector (top-k, rand-k, ultra-sparse).
inline MessageCost SparseBits(Index d, Index sent, int value_bits) noexcept {
  const double v = value_bits;
  const double indexed = sent * (v + IndexBits(d));
  return {v * sent, indexed < v * d ? indexed : v * d};
}

namespace compress {
// What the sparse operators (top-k, rand-k, ultra-sparse) share: k = floor(k) clamped to [1, d]
// coordinates a message, sent as (index, value) pairs: 32 + 32 bits each in the Mem-SGD paper's
// accounting, SparseBits in the EF accounting. Ultra-sparse replaces IntK and Fraction.
struct SparseMessage {
  static Index IntK(const CompressorSpec& s, Index d) noexcept {
    const double kk = s.k < 1 ? 1.0 : s.k;
    return kk >= static_cast<double>(d) ? d : static_cast<Index>(kk);
  }
  static double Fraction(const CompressorSpec& s, Index d) noexcept {
    return static_cast<double>(IntK(s, d)) / d;
  }
  static MessageCost Cost(const CompressorSpec&, Index d, Index sent, int value_bits) noexcept {
    return SparseBits(d, sent, value_bits);
  }
  double PaperBits(Index sent, Index) const noexcept { return 64.0 * sent; }
};
}  // namespace compress

}  // namespace memsgd
