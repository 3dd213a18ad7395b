// Exact top-k over a lazily kept Mem-SGD memory, in O(touched + k) work per step (amortised, plus
// O(levels) per touch) instead of a pass over all d coordinates.
//
// Between two touches of coordinate j (its data row's support, or a send) Mem-SGD's memory only
// grows by the regulariser's term eta_t R'(x_j), and x_j is constant, so
//     m_j(S) = b_j + s_j S,        S = sum of the step sizes eta_t so far, s_j = R'(x_j),
// a line in S. The engine keeps b_j and s_j (O(1) per touch) and this structure finds the k
// largest |m_j(S)| exactly without evaluating every line. It splits the coordinates in two:
//
//   Hot set H: every coordinate whose value may exceed a threshold tau (and a few that no longer
//   do), keep = max(16k, min(512, d/16)) to 2 keep of them, grouped in buckets by an upper bound of |m_j| (64 buckets to a
//   binade of its bit pattern, 1.1 % wide, placed around the last k-th value). A member's bound
//   holds from its placing on up to the drift sigma_B |S - S_placed| of the lines (sigma_B: the
//   largest |s_j| placed in its bucket since all of H was last placed). A selection evaluates
//   the buckets from the top down, skips those whose bound plus their drift is below the k-th
//   value found, and stops where the largest drift of all buckets would not reach it either, so
//   ~2k members of H are evaluated, not all of it. As the drift grows the
//   selections evaluate more; once that excess over the first selection after a placing adds up
//   to |H|, all of H is placed again (O(|H|), so the placings cost at most what they save).
//
//   Cold coordinates, under a tree of crossing times: each cold coordinate has the S at which
//   |b_j + s_j S| would first reach tau, S*_j = (tau - sign(s_j) b_j) / |s_j| (+inf for s_j = 0),
//   rounded early and stored; coordinates are grouped 16 to a leaf node, nodes 16 to a parent, up
//   to a top level of at most 64 nodes, and every node keeps the smallest S* below it. A cold coordinate
//   that is touched either joins H (its value now exceeds tau) or lowers its path's S*, O(levels).
//
// A selection first moves into H the cold coordinates whose S* has come (descending only into
// nodes whose smallest S* <= S; a node whose children were all examined gets the exact smallest
// again). Then the top-k of H, ordered by |m_j| descending and j ascending (TopKReference's
// order), is the exact top-k of all d as long as its k-th value exceeds tau: every cold value is
// <= tau. The k sent coordinates leave H (Sent). When H has grown past 2 keep + 16, tau is raised
// to its keep-th largest value and the members at or below it return to the tree: a raise only makes
// the stored S* early, which is safe (a descent that finds nothing sets them right). Lowering
// tau would make them late, so when the k-th value of H does not exceed tau, everything is
// rebuilt (O(d), Stats().rebuilds: every ~2,000 steps on RCV1-like top-50) with tau the keep-th
// largest of all d values (below the k-th, ties included; 0 if none is), and at tau = 0 every
// cold value is an exact zero, taken by ascending index as the reference does.
//
// The selection is exact for whatever lines it is given; only its cost depends on tau and the
// buckets (Stats). Values are compared as the bit patterns of |m_j| (a total order with NaN above
// +inf, so that a non-finite memory is always selected and the run's checks see it).
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "memsgd/types.hpp"

namespace memsgd {
struct SparseUpdate;
}

namespace memsgd::kernels {

// The memory value of a lazily kept coordinate (the same expression on every path; -ffp-contract
// =off keeps it two roundings in every build).
inline double LazyValue(double b, double s, double shift) noexcept { return b + s * shift; }

struct LazyTopKStats {
  std::int64_t steps = 0;     // selections
  std::int64_t nodes = 0;     // tree nodes whose children were examined
  std::int64_t hot = 0;       // sum over selections of the members of H evaluated
  std::int64_t pulled = 0;    // cold coordinates moved into H by a descent
  std::int64_t rebuilds = 0;  // tau lowered (O(d) rebuild)
  std::int64_t raises = 0;    // tau raised (H trimmed)
  std::int64_t placings = 0;  // all of H placed in its buckets again (the drift grew)
  std::int64_t refreshes = 0; // Refresh at the present tau
};

class LazyTopK {
 public:
  static constexpr int kFanout = 16;
  static constexpr int kLog2Fanout = 4;
  static constexpr int kBucketShift = 46;  // 2^(52 - 46) = 64 buckets to a binade
  static constexpr int kBuckets = 1024;
  struct Cand {
    std::uint64_t key;  // bit pattern of |m_j|
    Index j;
  };

  void Reset(Index d, Index k);
  // H's size after a rebuild for (d, k): max(16k, min(512, d/16)), at most d. The lines pay
  // where it is at most d/16 (KernelOptions::memory).
  static Index KeepFor(Index d, Index k) noexcept;
  Index K() const noexcept { return k_; }
  Index D() const noexcept { return d_; }

  // H and the tree set from scratch from the lines (b_j, s_j) at `shift` (O(d)).
  void Rebuild(const double* b, const double* s, double shift);
  // Any line may have changed (a parallel worker's re-read of x): H and the tree set again at the
  // present tau (O(d), but without Rebuild's selection of tau over all d; Rebuild while tau is 0).
  // If fewer than k values now exceed tau, the next selection rebuilds.
  void Refresh(const double* b, const double* s, double shift);
  // Coordinate j's line changed at `shift`: its value is now v (b_j + s_j shift), its line
  // (b, s) (a row's touch). Every change of a line must be told here (or followed by Rebuild).
  void Touch(Index j, double v, double b, double s, double shift) {
    if (slots_[static_cast<std::size_t>(j)].pos >= 0) {
      Place(j, v, b, s, shift);
    } else if (std::abs(v) > tau_ || v != v) {
      AddHot(j, v, b, s, shift);
    } else {
      Cool(j, b, s, shift);
    }
  }
  // Coordinate j was sent (it is in H): it leaves H with the line (b, s) (value <= tau).
  void Sent(Index j, double v, double b, double s, double shift) {
    RemoveHot(j);
    Touch(j, v, b, s, shift);
  }
  // Writes the exact top-k of |b_j + s_j shift| (indices and values) to out, which must have
  // room for k entries. Moves coordinates between H and the tree; out's coordinates stay in H
  // until Sent.
  void Select(const double* b, const double* s, double shift, SparseUpdate& out);

  double Tau() const noexcept { return tau_; }
  Index HotSize() const noexcept { return hot_size_; }
  const LazyTopKStats& Stats() const noexcept { return stats_; }
  void ResetStats() noexcept { stats_ = {}; }

 private:
  // The S at which |b + s S| first reaches tau (a little early, for rounding); +inf if never.
  // The margin covers the roundings of this quotient and of b + s S (both relative to
  // (tau + |b|) / |s|, the size of the terms).
  double Crossing(double b, double s) const noexcept {
    if (s == 0) return INFINITY;
    const double r = 1 / std::abs(s);  // one division (the margin covers its rounding too)
    const double t = (tau_ - (s > 0 ? b : -b)) * r;  // sign(s) (b + s t) = tau
    return t - 1e-12 * ((tau_ + std::abs(b)) * r);
  }
  // Crossing, but after `shift` (the coordinate is cold at shift): a value at tau (within
  // rounding) crosses now, and the next selection, at a larger S, looks again.
  double ColdCrossing(double b, double s, double shift) const noexcept {
    const double t = Crossing(b, s);
    return t > shift ? t : After(shift);
  }
  static double After(double x) noexcept;  // the next double above x
  // j is cold with the line (b, s) at shift: its crossing stored, its path's smallest lowered.
  void Cool(Index j, double b, double s, double shift) noexcept {
    const double t = ColdCrossing(b, s, shift);
    slots_[static_cast<std::size_t>(j)].cross = t;
    Lower(j, t);
  }
  // A node's smallest crossing is at most its children's (Rebuild, Descend and Lower keep it so):
  // where t does not lower a node it lowers none above it.
  void Lower(Index j, double t) noexcept {
    for (std::vector<double>& lv : levels_) {
      j >>= kLog2Fanout;
      double& m = lv[static_cast<std::size_t>(j)];
      if (!(t < m)) return;
      m = t;
    }
  }
  // H's buckets. A member placed at `shift` with value v gets the bucket of
  // |v| + 1e-15 (|b| + |s shift|) (the rounding of its value now and later), and the drift bound
  // takes in |s| and shift.
  int BucketOf(double v, double b, double s, double shift) const noexcept {
    const double w = std::abs(v) + 1e-15 * (std::abs(b) + std::abs(s * shift));
    if (!(w < INFINITY)) return kBuckets - 1;  // inf, NaN
    const std::int64_t q = static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(w) >> kBucketShift) - base_;
    return static_cast<int>(std::clamp<std::int64_t>(q, 0, kBuckets - 1));
  }
  void NoteShift(double shift) noexcept {
    slo_ = std::min(slo_, shift);
    shi_ = std::max(shi_, shift);
  }
  void NoteSlope(int bucket, double s) noexcept {
    double& smax = smax_[static_cast<std::size_t>(bucket)];
    smax = std::max(smax, std::abs(s));
    smax_all_ = std::max(smax_all_, smax);
  }
  void Insert(Index j, int bucket, double s) {
    NoteSlope(bucket, s);
    std::vector<Index>& v = buckets_[static_cast<std::size_t>(bucket)];
    slots_[static_cast<std::size_t>(j)].pos = static_cast<Index>(v.size());
    slots_[static_cast<std::size_t>(j)].bucket = bucket;
    v.push_back(j);
    nonempty_[static_cast<std::size_t>(bucket >> 6)] |= std::uint64_t{1} << (bucket & 63);
  }
  void Erase(Index j) noexcept;  // from its bucket (j is hot)
  void AddHot(Index j, double v, double b, double s, double shift) {
    NoteShift(shift);
    Insert(j, BucketOf(v, b, s, shift), s);
    ++hot_size_;
  }
  void Place(Index j, double v, double b, double s, double shift) {  // j is hot: its bucket again
    NoteShift(shift);
    const int bucket = BucketOf(v, b, s, shift);
    if (bucket == slots_[static_cast<std::size_t>(j)].bucket) {
      NoteSlope(bucket, s);
      return;
    }
    Erase(j);
    Insert(j, bucket, s);
  }
  void RemoveHot(Index j) noexcept;
  // Every member of H in its bucket again at `shift`, around last_kth_ (the drift bound starts
  // again from zero).
  void PlaceAll(const double* b, const double* s, double shift);
  void ResetDrift(double shift) noexcept;
  void ClearBuckets() noexcept;
  template <class F>
  void ForEachBucket(F f) {  // f(members) for every nonempty bucket
    for (std::size_t w = 0; w < nonempty_.size(); ++w)
      for (std::uint64_t bits = nonempty_[w]; bits != 0; bits &= bits - 1)
        f(buckets_[w * 64 + static_cast<std::size_t>(std::countr_zero(bits))]);
  }
  template <class F>
  void ForEachHot(F f) {  // f(j) for every member of H
    ForEachBucket([&](const std::vector<Index>& v) {
      for (Index j : v) f(j);
    });
  }
  int HighestBucket(int below) const noexcept;  // the highest nonempty bucket < below, or -1
  // An upper bound of the values of bucket `bucket`'s members (and of every lower bucket's, for
  // smax = smax_all_) at any S within the drift.
  double BucketBound(int bucket, double smax) const noexcept;
  // Moves every cold coordinate with |m_j| > tau into H.
  void Pull(const double* b, const double* s, double shift);
  // Examines the children of `node` at `level` (0: its coordinates), pulls the cold ones above
  // tau into H, and sets and returns the node's smallest crossing.
  double Descend(const double* b, const double* s, double shift, int level, Index node);
  // cand_ := H's buckets from the top down, until the k-th of cand_ (first k) beats every
  // bucket left; true if that k-th value exceeds tau (then it beats every cold value too).
  bool Scan(const double* b, const double* s, double shift);
  // H (above tau) and the tree (the rest) from the lines, the buckets around last_kth_.
  void Classify(const double* b, const double* s, double shift);
  void EvaluateAll(const double* b, const double* s, double shift);  // cand_ := all of H
  void Trim(const double* b, const double* s, double shift);
  void Emit(const double* b, const double* s, double shift, SparseUpdate& out);

  Index d_ = 0, k_ = 0;
  std::size_t keep_ = 0;  // H's size after a rebuild or a raise of tau
  double tau_ = 0;
  // Smallest crossing per node: levels_[0] over 16 coordinates each; back(): the top level.
  std::vector<std::vector<double>> levels_;
  std::vector<std::vector<Index>> buckets_;              // H
  std::array<std::uint64_t, kBuckets / 64> nonempty_{};  // bit per nonempty bucket
  std::int64_t base_ = 0;  // bucket 0's (key >> kBucketShift)
  // The drift since all of H was placed: the largest |s| placed in each bucket, the range of S.
  std::array<double, kBuckets> smax_{};
  double smax_all_ = 0;  // the largest of smax_
  double slo_ = 0, shi_ = 0;
  std::int64_t first_scan_ = -1;  // members evaluated by the first selection after the placing
  std::int64_t excess_ = 0;       // evaluated beyond that since: H placed again past |H|
  std::uint64_t last_kth_ = 0;          // the k-th key of the last selection or rebuild
  Index hot_size_ = 0;
  // Per coordinate, in one cache line's quarter: cold, its crossing (or an earlier S, after a
  // raise of tau: a descent divides again only where it has come); hot, its place in H.
  struct Slot {
    double cross = INFINITY;
    Index pos = -1;  // position in its bucket, -1 when cold
    int bucket = 0;  // its bucket when hot
  };
  std::vector<Slot> slots_;
  std::vector<Cand> cand_;
  std::vector<Index> members_;       // PlaceAll's copy of H
  std::vector<std::uint8_t> taken_;  // tau = 0 fill-in only
  std::vector<std::uint64_t> scratch_;  // Rebuild's keys
  LazyTopKStats stats_;
};

}  // namespace memsgd::kernels
