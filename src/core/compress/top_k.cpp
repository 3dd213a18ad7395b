// Top-k selectors: the heap / nth_element TopKSelector and the reference (memsgd/compress/top_k.hpp).
#include "memsgd/compress/top_k.hpp"

#include <algorithm>
#include <cmath>

namespace memsgd {

void TopKSelector::Reset(Index d, Index k) {
  d_ = d;
  k_ = std::clamp<Index>(k, 0, d);
  // A heap pass costs O(d + inserts log k); nth_element O(d) with a larger constant and a
  // scratch copy. The heap wins while k is a small fraction of d.
  use_heap_ = k_ <= 256 || k_ * 16 <= d_;
  heap_abs_.assign(static_cast<std::size_t>(k_), 0.0);
  heap_idx_.assign(static_cast<std::size_t>(k_), 0);
  if (!use_heap_) scratch_.resize(static_cast<std::size_t>(d_));
  heap_size_ = 0;
}

// Min-heap on (|v|, then larger index is "smaller" so that ties keep the smaller index).
void TopKSelector::Push(double a, Index j) noexcept {
  Index pos = heap_size_++;
  while (pos > 0) {
    const Index parent = (pos - 1) / 2;
    if (!Better(heap_abs_[static_cast<std::size_t>(parent)], heap_idx_[static_cast<std::size_t>(parent)], a, j)) break;
    heap_abs_[static_cast<std::size_t>(pos)] = heap_abs_[static_cast<std::size_t>(parent)];
    heap_idx_[static_cast<std::size_t>(pos)] = heap_idx_[static_cast<std::size_t>(parent)];
    pos = parent;
  }
  heap_abs_[static_cast<std::size_t>(pos)] = a;
  heap_idx_[static_cast<std::size_t>(pos)] = j;
}

void TopKSelector::ReplaceTop(double a, Index j) noexcept {
  heap_abs_[0] = a;
  heap_idx_[0] = j;
  SiftDown(0);
}

void TopKSelector::SiftDown(Index pos) noexcept {
  const double a = heap_abs_[static_cast<std::size_t>(pos)];
  const Index j = heap_idx_[static_cast<std::size_t>(pos)];
  for (;;) {
    Index child = 2 * pos + 1;
    if (child >= heap_size_) break;
    const Index right = child + 1;
    // pick the "worse" child (the min)
    if (right < heap_size_ &&
        Better(heap_abs_[static_cast<std::size_t>(child)], heap_idx_[static_cast<std::size_t>(child)],
               heap_abs_[static_cast<std::size_t>(right)], heap_idx_[static_cast<std::size_t>(right)])) {
      child = right;
    }
    if (!Better(a, j, heap_abs_[static_cast<std::size_t>(child)], heap_idx_[static_cast<std::size_t>(child)])) break;
    heap_abs_[static_cast<std::size_t>(pos)] = heap_abs_[static_cast<std::size_t>(child)];
    heap_idx_[static_cast<std::size_t>(pos)] = heap_idx_[static_cast<std::size_t>(child)];
    pos = child;
  }
  heap_abs_[static_cast<std::size_t>(pos)] = a;
  heap_idx_[static_cast<std::size_t>(pos)] = j;
}

Index TopKSelector::Finish(SparseUpdate& out) noexcept {
  out.size = 0;
  for (Index i = 0; i < heap_size_; ++i) out.idx[static_cast<std::size_t>(out.size++)] = heap_idx_[static_cast<std::size_t>(i)];
  return out.size;
}

void TopKSelector::Select(std::span<const double> v, SparseUpdate& out) {
  if (use_heap_) {
    Begin();
    for (Index j = 0; j < d_; ++j) Offer(j, v[static_cast<std::size_t>(j)]);
    Finish(out);
  } else {
    for (Index j = 0; j < d_; ++j) scratch_[static_cast<std::size_t>(j)] = j;
    auto by_abs = [&](Index a, Index b) {
      const double va = std::abs(v[static_cast<std::size_t>(a)]), vb = std::abs(v[static_cast<std::size_t>(b)]);
      return va > vb || (va == vb && a < b);
    };
    std::nth_element(scratch_.begin(), scratch_.begin() + k_, scratch_.end(), by_abs);
    out.size = 0;
    for (Index i = 0; i < k_; ++i) out.idx[static_cast<std::size_t>(out.size++)] = scratch_[static_cast<std::size_t>(i)];
  }
  for (Index i = 0; i < out.size; ++i)
    out.val[static_cast<std::size_t>(i)] = v[static_cast<std::size_t>(out.idx[static_cast<std::size_t>(i)])];
}

std::vector<Index> TopKReference(std::span<const double> v, Index k) {
  std::vector<Index> ids(v.size());
  for (std::size_t j = 0; j < v.size(); ++j) ids[j] = static_cast<Index>(j);
  k = std::clamp<Index>(k, 0, static_cast<Index>(v.size()));
  std::nth_element(ids.begin(), ids.begin() + k, ids.end(), [&](Index a, Index b) {
    const double va = std::abs(v[static_cast<std::size_t>(a)]), vb = std::abs(v[static_cast<std::size_t>(b)]);
    return va > vb || (va == vb && a < b);
  });
  ids.resize(static_cast<std::size_t>(k));
  return ids;
}

}  // namespace memsgd
