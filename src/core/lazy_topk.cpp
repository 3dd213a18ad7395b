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
// Measured on RCV1-like top-50 (d = 47,236; docs/performance.md): (trim at, keep) = (6, 4) rebuilds
// every 55 steps (1.2 s), (16, 8) every 400 (0.60 s), (32, 16) evaluates 2x more of H (0.70 s).
constexpr std::size_t kTrimAt = 16;  // H past 16k + 16: tau raised
constexpr std::size_t kKeep = 8;     // to the 8k-th largest value of H (and at a rebuild)
constexpr double kFilter = 0.9;  // the filter: 0.9 times the last k-th value, lowered by 0.9
}  // namespace

void LazyTopK::Reset(Index d, Index k) {
  d_ = d;
  k_ = std::clamp<Index>(k, 0, d);
  tau_ = 0;
  filter_ = 0;
  levels_.clear();
  Index size = d;
  do {
    size = (size + kFanout - 1) / kFanout;
    levels_.emplace_back(static_cast<std::size_t>(size), INFINITY);
  } while (size > 64);
  hot_.clear();
  hot_.reserve(static_cast<std::size_t>(std::min<Index>(d, 8 * k_ + 64)));
  hot_pos_.assign(static_cast<std::size_t>(d), -1);
  cand_.reserve(hot_.capacity());
  taken_.assign(static_cast<std::size_t>(d), 0);
  stats_ = {};
}

void LazyTopK::RemoveHot(Index j) noexcept {
  const Index pos = hot_pos_[static_cast<std::size_t>(j)];
  if (pos < 0) return;
  const Index last = hot_.back();
  hot_[static_cast<std::size_t>(pos)] = last;
  hot_pos_[static_cast<std::size_t>(last)] = pos;
  hot_.pop_back();
  hot_pos_[static_cast<std::size_t>(j)] = -1;
}

double LazyTopK::ColdCrossing(double b, double s, double shift) const noexcept {
  // A value at tau (within rounding) crosses now: the next selection, at a larger S, looks again.
  const double t = Crossing(b, s);
  return t > shift ? t : std::nextafter(shift, INFINITY);
}

void LazyTopK::Rebuild(const double* b, const double* s, double shift) {
  ++stats_.rebuilds;
  for (Index j : hot_) hot_pos_[static_cast<std::size_t>(j)] = -1;
  hot_.clear();
  // tau: the (8k)-th largest value, strictly below the k-th (ties), 0 if there is none.
  std::vector<std::uint64_t>& keys = scratch_;
  keys.resize(static_cast<std::size_t>(d_));
  for (Index j = 0; j < d_; ++j) keys[static_cast<std::size_t>(j)] = Key(std::abs(LazyValue(b[j], s[j], shift)));
  const std::size_t k = static_cast<std::size_t>(k_);
  const std::size_t keep = std::min<std::size_t>(kKeep * k, static_cast<std::size_t>(d_));  // >= k (k <= d)
  // The 8k-th over all d first; the k-th is then the k-th of the first 8k (one pass over d, not two).
  const auto at = [&](std::size_t r) { return keys.begin() + static_cast<std::ptrdiff_t>(r); };
  std::nth_element(keys.begin(), at(keep - 1), keys.end(), std::greater<>());
  std::uint64_t t = keys[keep - 1];
  std::nth_element(keys.begin(), at(k - 1), at(keep), std::greater<>());
  const std::uint64_t top_k = keys[k - 1];
  if (t >= top_k) {
    // Ties down to the 8k-th: the largest value below the k-th (O(d)), or 0.
    t = 0;
    for (std::uint64_t key : keys)
      if (key < top_k && key > t) t = key;
  }
  tau_ = std::bit_cast<double>(t);
  for (std::vector<double>& lv : levels_) std::fill(lv.begin(), lv.end(), INFINITY);
  for (Index j = 0; j < d_; ++j) {
    const double v = LazyValue(b[j], s[j], shift);
    if (std::abs(v) > tau_ || v != v) {
      AddHot(j);
    } else {
      double& m = levels_.front()[static_cast<std::size_t>(j >> kLog2Fanout)];
      m = std::min(m, ColdCrossing(b[j], s[j], shift));
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
      if (hot_pos_[static_cast<std::size_t>(j)] >= 0) continue;
      const double v = LazyValue(b[j], s[j], shift);
      if (std::abs(v) > tau_ || v != v) {
        AddHot(j);
        ++stats_.pulled;
      } else {
        mn = std::min(mn, ColdCrossing(b[j], s[j], shift));
      }
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
  stats_.hot += static_cast<std::int64_t>(hot_.size());
  const std::size_t k = static_cast<std::size_t>(k_);
  bool zeros = false;  // tau = 0 and fewer than k nonzero values
  for (int attempt = 0;; ++attempt) {
    const std::size_t h = hot_.size();
    cand_.resize(h);
    for (std::size_t i = 0; i < h; ++i) {
      const Index j = hot_[i];
      cand_[i] = {Key(std::abs(LazyValue(b[j], s[j], shift))), j};
    }
    if (h >= k && SelectFromCand()) break;
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
  filter_ = 0;
  // Fewer than k nonzero values: all of them, then zeros by ascending index (every cold value is
  // an exact zero at tau = 0).
  for (const Cand& c : cand_)
    if (c.key != 0) {
      out.Push(c.j, LazyValue(b[c.j], s[c.j], shift));
      taken_[static_cast<std::size_t>(c.j)] = 1;
    }
  for (Index j = 0; out.size < k_ && j < d_; ++j)
    if (!taken_[static_cast<std::size_t>(j)]) out.Push(j, LazyValue(b[j], s[j], shift));
  for (Index i = 0; i < out.size; ++i) taken_[static_cast<std::size_t>(out.idx[static_cast<std::size_t>(i)])] = 0;
}

// Puts H's top-k (cand_) first; true if its k-th value exceeds tau (then it beats every cold
// value). The members at or above a filter a little below the last selection's k-th value are
// moved to the front first, and only they are ordered when k of them pass (every other member
// is below the filter); the filter is lowered until k pass, down to tau.
bool LazyTopK::SelectFromCand() {
  const std::size_t k = static_cast<std::size_t>(k_);
  const std::uint64_t ktau = Key(tau_);
  auto first = cand_.begin();
  auto mid = cand_.end();
  for (std::uint64_t f = filter_; f > ktau;) {
    mid = std::partition(first, cand_.end(), [f](const Cand& c) { return c.key >= f; });
    if (static_cast<std::size_t>(mid - cand_.begin()) >= k) break;
    ++stats_.misses;
    first = mid;
    mid = cand_.end();
    f = Key(kFilter * std::bit_cast<double>(f));
  }
  std::nth_element(cand_.begin(), cand_.begin() + (k_ - 1), mid, Better);
  return cand_[k - 1].key > ktau;
}

// cand_'s first k are the selection: written to out; the next filter is set below its k-th.
void LazyTopK::Emit(const double* b, const double* s, double shift, SparseUpdate& out) {
  for (Index i = 0; i < k_; ++i) {
    const Index j = cand_[static_cast<std::size_t>(i)].j;
    out.Push(j, LazyValue(b[j], s[j], shift));
  }
  filter_ = Key(kFilter * std::bit_cast<double>(cand_[static_cast<std::size_t>(k_ - 1)].key));
}

// After a selection (cand_ holds H's keys, its first k the selected): past 16k + 16 members, tau
// is raised to the 8k-th largest value and the members at or below it return to the tree. Their
// stored crossings in the tree stay valid: for a higher tau they are only early.
void LazyTopK::Trim(const double* b, const double* s, double shift) {
  const std::size_t k = static_cast<std::size_t>(k_);
  if (cand_.size() <= kTrimAt * k + 16) return;
  const std::size_t keep = kKeep * k;
  std::nth_element(cand_.begin() + static_cast<std::ptrdiff_t>(k),
                   cand_.begin() + static_cast<std::ptrdiff_t>(keep - 1), cand_.end(), Better);
  const std::uint64_t t = cand_[keep - 1].key;
  if (t >= cand_[k - 1].key) return;  // ties with the k-th: keep tau
  ++stats_.raises;
  tau_ = std::bit_cast<double>(t);
  for (std::size_t i = keep - 1; i < cand_.size(); ++i) {
    if (cand_[i].key > t) continue;
    const Index j = cand_[i].j;
    RemoveHot(j);
    Lower(j, ColdCrossing(b[j], s[j], shift));
  }
}

}  // namespace memsgd::kernels
