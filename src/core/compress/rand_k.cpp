// Rand-k's uniform k-subset (memsgd/compress/rand_k.hpp).
#include "memsgd/compress/rand_k.hpp"

#include <algorithm>

namespace memsgd {

void RandKSampler::Reset(Index d, Index k) {
  d_ = d;
  k_ = std::clamp<Index>(k, 0, d);
  mark_.assign(k_ > 32 ? static_cast<std::size_t>(d_) : 0, 0);
}

Index RandKSampler::Sample(Rng& rng, SparseUpdate& out) {
  // Floyd: for j = d-k .. d-1 draw t in [0, j]; take t unless already taken, else take j.
  out.size = 0;
  const bool small = mark_.empty();
  for (Index j = d_ - k_; j < d_; ++j) {
    const auto t = static_cast<Index>(rng.Below(static_cast<std::uint64_t>(j) + 1));
    bool taken;
    if (small) {
      taken = false;
      for (Index i = 0; i < out.size; ++i) taken |= out.idx[static_cast<std::size_t>(i)] == t;
    } else {
      taken = mark_[static_cast<std::size_t>(t)] != 0;
    }
    const Index pick = taken ? j : t;
    if (!small) mark_[static_cast<std::size_t>(pick)] = 1;
    out.idx[static_cast<std::size_t>(out.size++)] = pick;
  }
  if (!small)
    for (Index i = 0; i < out.size; ++i) mark_[static_cast<std::size_t>(out.idx[static_cast<std::size_t>(i)])] = 0;
  return out.size;
}

}  // namespace memsgd
