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
  // The generator and the output on the stack: the byte stores to mark_ may alias anything (a
  // char type), so through the references GCC would store and reload the generator's state and
  // out.size around every one of them.
  Rng r = rng;
  Index* idx = out.idx.data();
  Index size = 0;
  const bool small = mark_.empty();
  std::uint8_t* mark = mark_.data();
  for (Index j = d_ - k_; j < d_; ++j) {
    const auto t = static_cast<Index>(r.Below(static_cast<std::uint64_t>(j) + 1));
    bool taken;
    if (small) {
      taken = false;
      for (Index i = 0; i < size; ++i) taken |= idx[i] == t;
    } else {
      taken = mark[t] != 0;
    }
    const Index pick = taken ? j : t;
    if (!small) mark[pick] = 1;
    idx[size++] = pick;
  }
  if (!small)
    for (Index i = 0; i < size; ++i) mark[idx[i]] = 0;
  rng = r;
  out.size = size;
  return size;
}

}  // namespace memsgd
