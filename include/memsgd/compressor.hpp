// Compression operators comp: R^d -> R^d (Stich et al. 2018, Def. 2.1-2.2, Remark 2.3) and the
// bits each message costs, one file per operator under memsgd/compress/:
//
//   identity.hpp      comp(v) = v                                  (k = d)
//   top_k.hpp         keep the k entries of largest |v_j|          E|v - comp v|^2 <= (1 - k/d)|v|^2
//   rand_k.hpp        keep a uniformly random k-subset (unscaled, or scaled by d/k)
//   ultra_sparse.hpp  0 < k < 1: one random coordinate with probability k
//   qsgd.hpp          stochastic quantisation to 2^b levels (unbiased, not a k-contraction)
//
// Every operator Op has the same shape (the policy the engines are written against):
//   static kKind, kBlind (picks its coordinates without looking at v), Name(spec), IntK(spec, d),
//   Fraction(spec, d), Cost(spec, d, sent, value_bits) (the EF accounting, MessageCost);
//   Op(spec, d); PaperBits(sent, nnz_row) (the Mem-SGD paper's accounting, section 7 of
//   ../shared/papers/mem-sgd.md); Compress(v, out, rng); and, where kBlind, Pick(rng, out) and
//   ValueScale().
// Compressor holds one of them (a std::variant sized once per worker) and is the one dispatch:
// Visit hands the concrete operator to a generic lambda, so an engine that needs more than
// Compress (the fused Mem-SGD pass, the lazy engines' Pick) is written once against the policy
// and overloaded for the operators it treats specially. CompressorSpec's queries dispatch the
// same way on the kind (VisitKind).
#pragma once
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "memsgd/compress/identity.hpp"
#include "memsgd/compress/qsgd.hpp"
#include "memsgd/compress/rand_k.hpp"
#include "memsgd/compress/spec.hpp"
#include "memsgd/compress/top_k.hpp"
#include "memsgd/compress/ultra_sparse.hpp"
#include "memsgd/rng.hpp"
#include "memsgd/types.hpp"

namespace memsgd {

namespace compress {
template <class Op>
struct Tag {
  using type = Op;
};
}  // namespace compress

// f(compress::Tag<Op>{}) for the operator of `kind`: the static side of the one dispatch.
template <class F>
decltype(auto) VisitKind(CompressorKind kind, F&& f) {
  switch (kind) {
    case CompressorKind::kIdentity: return f(compress::Tag<compress::Identity>{});
    case CompressorKind::kTopK: return f(compress::Tag<compress::TopK>{});
    case CompressorKind::kRandK: return f(compress::Tag<compress::RandK>{});
    case CompressorKind::kUltraSparse: return f(compress::Tag<compress::UltraSparse>{});
    case CompressorKind::kQsgd: break;
  }
  return f(compress::Tag<compress::Qsgd>{});
}

namespace compress {
// f(the alternative v holds), by a switch (see Compressor::Visit).
template <class V, class F>
decltype(auto) VisitOp(V& v, F&& f) {
  static_assert(std::variant_size_v<std::remove_const_t<V>> == 5);
  switch (v.index()) {
    case 0: return f(*std::get_if<0>(&v));
    case 1: return f(*std::get_if<1>(&v));
    case 2: return f(*std::get_if<2>(&v));
    case 3: return f(*std::get_if<3>(&v));
    default: break;
  }
  return f(*std::get_if<4>(&v));
}
}  // namespace compress

// Per-worker compressor state: the operator for the run's spec, its scratch sized once.
class Compressor {
 public:
  Compressor() = default;
  Compressor(const CompressorSpec& spec, Index d);

  const CompressorSpec& Spec() const noexcept { return spec_; }
  Index Budget() const noexcept { return budget_; }

  // The one dispatch: f(op) with the concrete operator. A switch on the index rather than
  // std::visit, whose function-pointer table (libstdc++ 12) can keep the per-step kernels from
  // being inlined into the step (w8a mem-sgd top-1 looked ~20 % slower with it, in one
  // comparison on a loaded machine; the switch measured no slower than the code before).
  template <class F>
  decltype(auto) Visit(F&& f) {
    return compress::VisitOp(op_, std::forward<F>(f));
  }
  template <class F>
  decltype(auto) Visit(F&& f) const {
    return compress::VisitOp(op_, std::forward<F>(f));
  }

  // out <- comp(v). Values are the ones to send (scaled where the operator scales).
  void Compress(std::span<const double> v, SparseUpdate& out, Rng& rng) {
    Visit([&](auto& op) { op.Compress(v, out, rng); });
  }
  // rand-k and ultra-sparse choose their coordinates without looking at v: Pick draws them
  // (out.idx, out.size; the same draws as Compress) and ValueScale() is the factor the values
  // are sent with (d/k for scaled rand-k, else 1). For the lazy steps, which evaluate only the
  // picked coordinates.
  bool PicksBlind() const noexcept { return spec_.PicksBlind(); }
  void Pick(Rng& rng, SparseUpdate& out) {
    Visit([&](auto& op) {
      if constexpr (std::decay_t<decltype(op)>::kBlind) {
        op.Pick(rng, out);
      } else {
        out.size = 0;
      }
    });
  }
  double ValueScale() const noexcept {
    return Visit([](const auto& op) {
      if constexpr (std::decay_t<decltype(op)>::kBlind) {
        return op.ValueScale();
      } else {
        return 1.0;
      }
    });
  }
  // Bits of one message of `sent` coordinates for a data row with nnz_row nonzeros (the Mem-SGD
  // paper's accounting; called for every sample).
  double MessageBits(Index sent, Index nnz_row) const noexcept {
    return Visit([&](const auto& op) { return op.PaperBits(sent, nnz_row); });
  }

  // The top-k operator's selectors (the compressor must be top-k).
  TopKSelector& Selector() noexcept { return std::get<compress::TopK>(op_).Selector(); }
  kernels::ThresholdTopK& Threshold() noexcept { return std::get<compress::TopK>(op_).Threshold(); }

 private:
  CompressorSpec spec_;
  Index budget_ = 0;
  std::variant<compress::Identity, compress::TopK, compress::RandK, compress::UltraSparse,
               compress::Qsgd>
      op_;
};

}  // namespace memsgd
