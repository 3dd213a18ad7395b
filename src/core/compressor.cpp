#include "memsgd/compressor.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace memsgd {

CompressorSpec CompressorSpec::FromName(const std::string& name, double k, bool scaled,
                                        int qsgd_bits) {
  CompressorSpec s;
  s.k = k;
  s.scaled = scaled;
  s.qsgd_bits = qsgd_bits;
  if (name == "identity" || name == "none") {
    s.kind = CompressorKind::kIdentity;
  } else if (name == "top" || name == "top-k" || name == "topk") {
    s.kind = k < 1 ? CompressorKind::kUltraSparse : CompressorKind::kTopK;
  } else if (name == "rand" || name == "rand-k" || name == "randk") {
    s.kind = k < 1 ? CompressorKind::kUltraSparse : CompressorKind::kRandK;
  } else if (name == "qsgd") {
    s.kind = CompressorKind::kQsgd;
  } else {
    throw std::invalid_argument("unknown compressor '" + name +
                                "' (supported: top, rand, identity, qsgd)");
  }
  if (s.kind != CompressorKind::kIdentity && s.kind != CompressorKind::kQsgd &&
      !(k > 0 && std::isfinite(k))) {
    throw std::invalid_argument("--k must be > 0 (got " + std::to_string(k) + ")");
  }
  if (s.kind == CompressorKind::kQsgd && (qsgd_bits < 1 || qsgd_bits > 16)) {
    throw std::invalid_argument("--qsgd-bits must be in 1..16");
  }
  return s;
}

std::string CompressorSpec::Name() const {
  switch (kind) {
    case CompressorKind::kIdentity: return "identity";
    case CompressorKind::kTopK: return "top";
    case CompressorKind::kRandK: return scaled ? "rand-scaled" : "rand";
    case CompressorKind::kUltraSparse: return "ultra-sparse";
    case CompressorKind::kQsgd: return "qsgd";
  }
  return "?";
}

Index CompressorSpec::IntK(Index d) const {
  switch (kind) {
    case CompressorKind::kIdentity:
    case CompressorKind::kQsgd: return d;
    case CompressorKind::kUltraSparse: return 1;
    default: {
      const double kk = std::floor(k);
      return static_cast<Index>(std::clamp(kk, 1.0, static_cast<double>(d)));
    }
  }
}

Index CompressorSpec::Budget(Index d) const { return IntK(d); }

double CompressorSpec::Fraction(Index d) const {
  switch (kind) {
    case CompressorKind::kIdentity:
    case CompressorKind::kQsgd: return 1.0;
    case CompressorKind::kUltraSparse: return k / d;
    default: return static_cast<double>(IntK(d)) / d;
  }
}

// ---- top-k --------------------------------------------------------------------------------

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

// ---- rand-k -------------------------------------------------------------------------------

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

// ---- the dispatching compressor -----------------------------------------------------------

Compressor::Compressor(const CompressorSpec& spec, Index d) : spec_(spec), d_(d) {
  k_ = spec.IntK(d);
  budget_ = spec.Budget(d);
  if (spec.kind == CompressorKind::kTopK) {
    topk_.Reset(d, k_);
    threshold_.Reset(d, k_);
  }
  if (spec.kind == CompressorKind::kRandK) randk_.Reset(d, k_);
}

void Compressor::Compress(std::span<const double> v, SparseUpdate& out, Rng& rng) {
  out.size = 0;
  switch (spec_.kind) {
    case CompressorKind::kIdentity:
      for (Index j = 0; j < d_; ++j)
        if (v[static_cast<std::size_t>(j)] != 0) out.Push(j, v[static_cast<std::size_t>(j)]);
      break;
    case CompressorKind::kTopK:
      topk_.Select(v, out);
      break;
    case CompressorKind::kRandK:
    case CompressorKind::kUltraSparse: {
      Pick(rng, out);
      const double scale = ValueScale();
      for (Index i = 0; i < out.size; ++i)
        out.val[static_cast<std::size_t>(i)] = scale * v[static_cast<std::size_t>(out.idx[static_cast<std::size_t>(i)])];
      break;
    }
    case CompressorKind::kQsgd: {
      // |v| scaled by max|v_j| so that it neither overflows nor underflows; a non-finite v is
      // passed on as it is, so that the engine's divergence check sees it.
      double vmax = 0;
      for (double x : v) vmax = std::max(vmax, std::abs(x));
      if (vmax == 0) break;
      if (!std::isfinite(vmax)) {
        for (Index j = 0; j < d_; ++j)
          if (v[static_cast<std::size_t>(j)] != 0) out.Push(j, v[static_cast<std::size_t>(j)]);
        break;
      }
      double scaled2 = 0;
      for (double x : v) scaled2 += (x / vmax) * (x / vmax);
      const double norm = vmax * std::sqrt(scaled2);
      const double s = std::ldexp(1.0, spec_.qsgd_bits);
      for (Index j = 0; j < d_; ++j) {
        const double x = v[static_cast<std::size_t>(j)];
        if (x == 0) continue;
        const double r = std::abs(x) / norm * s;
        double level = std::floor(r);
        if (rng.Uniform() < r - level) level += 1;
        if (level != 0) out.Push(j, std::copysign(norm * level / s, x));
      }
      break;
    }
  }
}

void Compressor::Pick(Rng& rng, SparseUpdate& out) {
  out.size = 0;
  if (spec_.kind == CompressorKind::kRandK) {
    randk_.Sample(rng, out);
  } else if (spec_.kind == CompressorKind::kUltraSparse && rng.Uniform() < spec_.k) {
    out.Push(static_cast<Index>(rng.Below(static_cast<std::uint64_t>(d_))), 0.0);
  }
}

double QsgdBits(int bits, Index d, Index nnz_row) noexcept {
  const double s = std::ldexp(1.0, bits);
  const double naive = (bits + 1.0) * d;
  const double elias = 3.0 * s * (s + std::sqrt(static_cast<double>(d))) + 32.0;
  const double sparse = (bits + 1.0 + 32.0) * nnz_row;
  return std::min({naive, elias, sparse});
}

double Compressor::QsgdMessageBits(Index nnz_row) const noexcept {
  return QsgdBits(spec_.qsgd_bits, d_, nnz_row);
}

}  // namespace memsgd
