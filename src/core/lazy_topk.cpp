// Exact top-k over lazily kept memory lines (include/memsgd/kernels/lazy_topk.hpp).
#include "memsgd/kernels/lazy_topk.hpp"

#include <algorithm>
#include <bit>
#include <limits>

#include "memsgd/compressor.hpp"

namespace memsgd::kernels {

namespace {
inline std::uint64_t Key(double abs_value) noexcept { return std::bit_cast<std::uint64_t>(abs_value); }
inline bool Better(const LazyTopK::Cand& p, const LazyTopK::Cand& q) noexcept {
  return p.key > q.key || (p.key == q.key && p.j < q.j);
}
// Measured on RCV1-like top-50 (d = 47,236; docs/performance.md), best of 3 (samples/s): (trim at,
// keep) = (16, 8) rebuilds every 405 steps (142 k/s), (32, 16) every 2,000 (165 k/s), (64, 32)
// every 5,500 (152 k/s: larger placings and more descents). With all of H evaluated at every
// selection (before the buckets), (32, 16) was slower than (16, 8).
constexpr std::size_t kKeep = 16;  // tau at the 16k-th largest value (at a rebuild, and raised
                                   // to it when H has grown past twice that, plus 16)
// ... and at least 512 (or d/16): k = 1 then rebuilds every ~2,700 steps instead of every ~85
// (d = 47,236, 20 nonzeros a row: 0.30 s -> 0.05 s for 2 epochs of top-1).
constexpr std::size_t kKeepMin = 512;
}  // namespace

double LazyTopK::After(double x) noexcept {
  if (x >= 0 && x < INFINITY && !std::signbit(x)) [[likely]]
    return std::bit_cast<double>(std::bit_cast<std::uint64_t>(x) + 1);
  return std::nextafter(x, INFINITY);
}

Index LazyTopK::KeepFor(Index d, Index k) noexcept {
  const auto dd = static_cast<std::size_t>(std::max<Index>(d, 0));
  const auto kk = static_cast<std::size_t>(std::clamp<Index>(k, 0, d));
  return static_cast<Index>(std::min(std::max(kKeep * kk, std::min(kKeepMin, dd / 16)), dd));
}

void LazyTopK::Reset(Index d, Index k) {
  d_ = d;
  k_ = std::clamp<Index>(k, 0, d);
  tau_ = 0;
  levels_.clear();
  Index size = d;
  do {
    size = (size + kFanout - 1) / kFanout;
    levels_.emplace_back(static_cast<std::size_t>(size), INFINITY);
  } while (size > 64);
  buckets_.assign(kBuckets, {});
  nonempty_.fill(0);
  base_ = 0;
  ResetDrift(0);
  last_kth_ = 0;
  hot_size_ = 0;
  slots_.assign(static_cast<std::size_t>(d), Slot{});
  keep_ = static_cast<std::size_t>(KeepFor(d, k_));
  cand_.reserve(static_cast<std::size_t>(std::min<Index>(d, 2 * keep_ + 64)));
  taken_.assign(static_cast<std::size_t>(d), 0);
  stats_ = {};
}

void LazyTopK::Erase(Index j) noexcept {
  const auto u = static_cast<std::size_t>(j);
  const int bucket = slots_[u].bucket;
  std::vector<Index>& v = buckets_[static_cast<std::size_t>(bucket)];
  const Index last = v.back();
  v[static_cast<std::size_t>(slots_[u].pos)] = last;
  slots_[static_cast<std::size_t>(last)].pos = slots_[u].pos;
  v.pop_back();
  if (v.empty()) nonempty_[static_cast<std::size_t>(bucket >> 6)] &= ~(std::uint64_t{1} << (bucket & 63));
}

void LazyTopK::RemoveHot(Index j) noexcept {
  if (slots_[static_cast<std::size_t>(j)].pos < 0) return;
  Erase(j);
  slots_[static_cast<std::size_t>(j)].pos = -1;
  --hot_size_;
}

void LazyTopK::ClearBuckets() noexcept {
  ForEachBucket([](std::vector<Index>& v) { v.clear(); });
  nonempty_.fill(0);
}

int LazyTopK::HighestBucket(int below) const noexcept {
  if (below <= 0) return -1;
  int w = (below - 1) >> 6;
  std::uint64_t bits = nonempty_[static_cast<std::size_t>(w)];
  const int top = (below - 1) & 63;  // bits 0..top of word w are below `below`
  if (top < 63) bits &= (std::uint64_t{2} << top) - 1;
  while (bits == 0) {
    if (--w < 0) return -1;
    bits = nonempty_[static_cast<std::size_t>(w)];
  }
  return w * 64 + 63 - std::countl_zero(bits);
}

double LazyTopK::BucketBound(int bucket, double smax) const noexcept {
  if (bucket == kBuckets - 1) return INFINITY;
  // Members of `bucket` were placed with a key below (base_ + bucket + 1) << kBucketShift.
  const std::int64_t edge = base_ + bucket + 1;
  constexpr std::int64_t kInf = static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(std::numeric_limits<double>::infinity()) >> kBucketShift);
  if (edge >= kInf) return INFINITY;
  const double top = std::bit_cast<double>(static_cast<std::uint64_t>(edge) << kBucketShift);
  // |v(S)| <= |v(S_placed)| + |s| |S - S_placed| (1 + 2u), and the sum's own rounding.
  return (top + smax * (shi_ - slo_)) * (1 + 1e-14);
}

void LazyTopK::ResetDrift(double shift) noexcept {
  smax_.fill(0);
  smax_all_ = 0;
  slo_ = shi_ = shift;
  first_scan_ = -1;
  excess_ = 0;
}

void LazyTopK::PlaceAll(const double* b, const double* s, double shift) {
  ++stats_.placings;
  members_.clear();
  ForEachHot([&](Index j) { members_.push_back(j); });
  ClearBuckets();
  // The k-th value in the middle: kBuckets / 2 buckets = 8 binades on either side.
  base_ = static_cast<std::int64_t>(last_kth_ >> kBucketShift) - kBuckets / 2;
  ResetDrift(shift);
  for (Index j : members_) Insert(j, BucketOf(LazyValue(b[j], s[j], shift), b[j], s[j], shift), s[j]);
}

void LazyTopK::Rebuild(const double* b, const double* s, double shift) {
  ++stats_.rebuilds;
  // tau: the keep-th largest value, strictly below the k-th (ties), 0 if there is none.
  std::vector<std::uint64_t>& keys = scratch_;
  keys.resize(static_cast<std::size_t>(d_));
  for (Index j = 0; j < d_; ++j) keys[static_cast<std::size_t>(j)] = Key(std::abs(LazyValue(b[j], s[j], shift)));
  const std::size_t k = static_cast<std::size_t>(k_);
  std::uint64_t top_k = 0;
  if (k > 0) {
    // The keep-th over all d first (keep_ >= k); the k-th is then the k-th of the first keep
    // (one pass over d, not two).
    const auto at = [&](std::size_t r) { return keys.begin() + static_cast<std::ptrdiff_t>(r); };
    std::nth_element(keys.begin(), at(keep_ - 1), keys.end(), std::greater<>());
    std::uint64_t t = keys[keep_ - 1];
    std::nth_element(keys.begin(), at(k - 1), at(keep_), std::greater<>());
    top_k = keys[k - 1];
    if (t >= top_k) {
      // Ties down to the keep-th: the largest value below the k-th (O(d)), or 0.
      t = 0;
      for (std::uint64_t key : keys)
        if (key < top_k && key > t) t = key;
    }
    tau_ = std::bit_cast<double>(t);
  } else {
    tau_ = 0;
  }
  last_kth_ = top_k;
  Classify(b, s, shift);
}

void LazyTopK::Refresh(const double* b, const double* s, double shift) {
  if (tau_ == 0 || last_kth_ == 0) return Rebuild(b, s, shift);
  ++stats_.refreshes;
  Classify(b, s, shift);
}

void LazyTopK::Classify(const double* b, const double* s, double shift) {
  ForEachHot([&](Index j) { slots_[static_cast<std::size_t>(j)].pos = -1; });
  ClearBuckets();
  hot_size_ = 0;
  base_ = static_cast<std::int64_t>(last_kth_ >> kBucketShift) - kBuckets / 2;
  ResetDrift(shift);
  for (std::vector<double>& lv : levels_) std::fill(lv.begin(), lv.end(), INFINITY);
  for (Index j = 0; j < d_; ++j) {
    const double v = LazyValue(b[j], s[j], shift);
    if (std::abs(v) > tau_ || v != v) {
      AddHot(j, v, b[j], s[j], shift);
    } else {
      const double t = ColdCrossing(b[j], s[j], shift);
      slots_[static_cast<std::size_t>(j)].cross = t;
      double& m = levels_.front()[static_cast<std::size_t>(j >> kLog2Fanout)];
      m = std::min(m, t);
    }
  }
  for (std::size_t l = 1; l < levels_.size(); ++l) {
    const std::vector<double>& ch = levels_[l - 1];
    std::vector<double>& lv = levels_[l];
    for (std::size_t c = 0; c < ch.size(); ++c) lv[c >> kLog2Fanout] = std::min(lv[c >> kLog2Fanout], ch[c]);
  }
}

double LazyTopK::Descend(const double* b, const double* s, double shift, int level, Index node) {
  ++stats_.nodes;
  double mn = INFINITY;
  const Index first = node * kFanout;
  if (level == 0) {
    const Index last = std::min<Index>(first + kFanout, d_);
    for (Index j = first; j < last; ++j) {
      if (slots_[static_cast<std::size_t>(j)].pos >= 0) continue;
      double t = slots_[static_cast<std::size_t>(j)].cross;
      if (t <= shift) {
        const double v = LazyValue(b[j], s[j], shift);
        if (std::abs(v) > tau_ || v != v) {
          AddHot(j, v, b[j], s[j], shift);
          ++stats_.pulled;
          continue;
        }
        t = ColdCrossing(b[j], s[j], shift);
        slots_[static_cast<std::size_t>(j)].cross = t;
      }
      mn = std::min(mn, t);
    }
  } else {
    const std::vector<double>& ch = levels_[static_cast<std::size_t>(level - 1)];
    const Index last = std::min<Index>(first + kFanout, static_cast<Index>(ch.size()));
    for (Index c = first; c < last; ++c) {
      const double t = ch[static_cast<std::size_t>(c)];
      mn = std::min(mn, t <= shift ? Descend(b, s, shift, level - 1, c) : t);
    }
  }
  levels_[static_cast<std::size_t>(level)][static_cast<std::size_t>(node)] = mn;
  return mn;
}

void LazyTopK::Pull(const double* b, const double* s, double shift) {
  const int top = static_cast<int>(levels_.size()) - 1;
  const std::vector<double>& lv = levels_.back();
  for (std::size_t node = 0; node < lv.size(); ++node)
    if (lv[node] <= shift) Descend(b, s, shift, top, static_cast<Index>(node));
}

void LazyTopK::Select(const double* b, const double* s, double shift, SparseUpdate& out) {
  ++stats_.steps;
  out.Clear();
  if (k_ == 0) return;
  Pull(b, s, shift);
  NoteShift(shift);
  if (excess_ > hot_size_) PlaceAll(b, s, shift);
  bool zeros = false;  // tau = 0 and fewer than k nonzero values
  for (int attempt = 0;; ++attempt) {
    if (Scan(b, s, shift)) break;
    if (tau_ == 0 || attempt > 0) {  // after a rebuild: tau = 0 and fewer than k nonzero values
      zeros = true;
      break;
    }
    Rebuild(b, s, shift);
  }
  if (!zeros) {
    Emit(b, s, shift, out);
    Trim(b, s, shift);
    return;
  }
  // Fewer than k nonzero values: all of them, then zeros by ascending index (every cold value is
  // an exact zero at tau = 0).
  EvaluateAll(b, s, shift);
  last_kth_ = 0;
  for (const Cand& c : cand_)
    if (c.key != 0 && out.size < k_) {
      out.Push(c.j, LazyValue(b[c.j], s[c.j], shift));
      taken_[static_cast<std::size_t>(c.j)] = 1;
    }
  for (Index j = 0; out.size < k_ && j < d_; ++j)
    if (!taken_[static_cast<std::size_t>(j)]) out.Push(j, LazyValue(b[j], s[j], shift));
  for (Index i = 0; i < out.size; ++i) taken_[static_cast<std::size_t>(out.idx[static_cast<std::size_t>(i)])] = 0;
}

bool LazyTopK::Scan(const double* b, const double* s, double shift) {
  const std::size_t k = static_cast<std::size_t>(k_);
  cand_.clear();
  bool full = false;  // cand_ holds the top-k of the members evaluated so far
  std::int64_t evaluated = 0;
  for (int bucket = HighestBucket(kBuckets); bucket >= 0; bucket = HighestBucket(bucket)) {
    const std::vector<Index>& members = buckets_[static_cast<std::size_t>(bucket)];
    if (full) {
      // Lower buckets may drift more than this one: stop at the bound of all that are left,
      // skip the single buckets whose own bound is below the k-th.
      const Cand kth = cand_[k - 1];
      if (Key(BucketBound(bucket, smax_all_)) < kth.key) break;
      if (Key(BucketBound(bucket, smax_[static_cast<std::size_t>(bucket)])) < kth.key) continue;
      // Only members that beat the k-th can enter the top-k.
      for (Index j : members) {
        const Cand c{Key(std::abs(LazyValue(b[j], s[j], shift))), j};
        if (Better(c, kth)) cand_.push_back(c);
      }
    } else {
      for (Index j : members) cand_.push_back({Key(std::abs(LazyValue(b[j], s[j], shift))), j});
    }
    evaluated += static_cast<std::int64_t>(members.size());
    if (cand_.size() > k || (!full && cand_.size() == k)) {
      std::nth_element(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k - 1), cand_.end(), Better);
      cand_.resize(k);  // the rest are below the k-th, which only rises
      full = true;
    }
  }
  stats_.hot += evaluated;
  if (first_scan_ < 0) first_scan_ = evaluated;
  excess_ += std::max<std::int64_t>(0, evaluated - first_scan_);
  return full && cand_[k - 1].key > Key(tau_);
}

void LazyTopK::EvaluateAll(const double* b, const double* s, double shift) {
  cand_.clear();
  ForEachHot([&](Index j) { cand_.push_back({Key(std::abs(LazyValue(b[j], s[j], shift))), j}); });
}

// cand_'s first k are the selection: written to out.
void LazyTopK::Emit(const double* b, const double* s, double shift, SparseUpdate& out) {
  for (Index i = 0; i < k_; ++i) {
    const Index j = cand_[static_cast<std::size_t>(i)].j;
    out.Push(j, LazyValue(b[j], s[j], shift));
  }
  last_kth_ = cand_[static_cast<std::size_t>(k_ - 1)].key;
}

// After a selection: past 2 keep + 16 members, tau is raised to the keep-th largest value of H and
// the members at or below it return to the tree. Their stored crossings in the tree stay
// valid: for a higher tau they are only early.
void LazyTopK::Trim(const double* b, const double* s, double shift) {
  if (static_cast<std::size_t>(hot_size_) <= 2 * keep_ + 16) return;
  EvaluateAll(b, s, shift);
  std::nth_element(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(keep_ - 1), cand_.end(), Better);
  const std::uint64_t t = cand_[keep_ - 1].key;
  if (t >= last_kth_) return;  // ties with the k-th: keep tau
  ++stats_.raises;
  tau_ = std::bit_cast<double>(t);
  for (std::size_t i = keep_ - 1; i < cand_.size(); ++i) {
    if (cand_[i].key > t) continue;
    const Index j = cand_[i].j;
    RemoveHot(j);
    Cool(j, b[j], s[j], shift);
  }
  PlaceAll(b, s, shift);
}

}  // namespace memsgd::kernels
