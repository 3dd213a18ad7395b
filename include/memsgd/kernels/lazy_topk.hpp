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
//   do). Its members are evaluated at every selection; it holds 8k to 16k of them.
//
//   Cold coordinates, under a tree of crossing times: each cold coordinate has the S at which
//   |b_j + s_j S| would first reach tau, S*_j = (tau - sign(s_j) b_j) / |s_j| (+inf for s_j = 0),
//   rounded early; coordinates are grouped 16 to a leaf node, nodes 16 to a parent, up to a top
//   level of at most 64 nodes, and every node keeps the smallest S* below it. A cold coordinate
//   that is touched either joins H (its value now exceeds tau) or lowers its path's S*, O(levels).
//
// A selection first moves into H the cold coordinates whose S* has come (descending only into
// nodes whose smallest S* <= S; a node whose children were all examined gets the exact smallest
// again). Then the top-k of H, ordered by |m_j| descending and j ascending (TopKReference's
// order), is the exact top-k of all d as long as its k-th value exceeds tau: every cold value is
// <= tau. The k sent coordinates leave H (Sent). When H has grown past 16k + 16, tau is raised to
// its 8k-th largest value and the members at or below it return to the tree: a raise only makes
// the stored S* early, which is safe (a descent that finds nothing sets them right). Lowering
// tau would make them late, so when the k-th value of H does not exceed tau, everything is
// rebuilt (O(d), Stats().rebuilds: every ~400 steps on RCV1-like top-50) with tau the 8k-th
// largest of all d values (below the k-th, ties included; 0 if none is), and at tau = 0 every
// cold value is an exact zero, taken by ascending index as the reference does.
//
// The selection is exact for whatever lines it is given; only its cost depends on tau (Stats).
// Values are compared as the bit patterns of |m_j| (a total order with NaN above +inf, so that a
// non-finite memory is always selected and the run's checks see it).
#pragma once
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
  std::int64_t hot = 0;       // sum over selections of |H|
  std::int64_t pulled = 0;    // cold coordinates moved into H by a descent
  std::int64_t rebuilds = 0;  // tau lowered (O(d) rebuild)
  std::int64_t raises = 0;    // tau raised (H trimmed)
  std::int64_t misses = 0;    // fewer than k members of H passed the filter: lowered
};

class LazyTopK {
 public:
  static constexpr int kFanout = 16;
  static constexpr int kLog2Fanout = 4;
  struct Cand {
    std::uint64_t key;  // bit pattern of |m_j|
    Index j;
  };

  void Reset(Index d, Index k);
  Index K() const noexcept { return k_; }
  Index D() const noexcept { return d_; }

  // H and the tree set from scratch from the lines (b_j, s_j) at `shift` (O(d)).
  void Rebuild(const double* b, const double* s, double shift);
  // Coordinate j's line changed at `shift`: its value is now v (b_j + s_j shift), its line
  // (b, s) (a row's touch).
  void Touch(Index j, double v, double b, double s, double shift) {
    if (hot_pos_[static_cast<std::size_t>(j)] >= 0) return;
    if (std::abs(v) > tau_ || v != v) {
      AddHot(j);
    } else {
      Lower(j, ColdCrossing(b, s, shift));
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
  Index HotSize() const noexcept { return static_cast<Index>(hot_.size()); }
  const LazyTopKStats& Stats() const noexcept { return stats_; }
  void ResetStats() noexcept { stats_ = {}; }

 private:
  // The S at which |b + s S| first reaches tau (a little early, for rounding); +inf if never.
  // The margin covers the roundings of this quotient and of b + s S (both relative to
  // (tau + |b|) / |s|, the size of the terms).
  double Crossing(double b, double s) const noexcept {
    if (s == 0) return INFINITY;
    const double a = std::abs(s);
    const double t = (tau_ - (s > 0 ? b : -b)) / a;  // sign(s) (b + s t) = tau
    return t - 1e-12 * ((tau_ + std::abs(b)) / a);
  }
  // Crossing, but after `shift` (the coordinate is cold at shift).
  double ColdCrossing(double b, double s, double shift) const noexcept;
  void Lower(Index j, double t) noexcept {
    for (std::vector<double>& lv : levels_) {
      j >>= kLog2Fanout;
      double& m = lv[static_cast<std::size_t>(j)];
      if (t < m) m = t;
    }
  }
  void AddHot(Index j) {
    hot_pos_[static_cast<std::size_t>(j)] = static_cast<Index>(hot_.size());
    hot_.push_back(j);
  }
  void RemoveHot(Index j) noexcept;
  // Moves every cold coordinate with |m_j| > tau into H.
  void Pull(const double* b, const double* s, double shift);
  // Examines the children of `node` at `level` (0: its coordinates), pulls the cold ones above
  // tau into H, and sets and returns the node's smallest crossing.
  double Descend(const double* b, const double* s, double shift, int level, Index node);
  void Trim(const double* b, const double* s, double shift);
  void Emit(const double* b, const double* s, double shift, SparseUpdate& out);
  bool SelectFromCand();

  Index d_ = 0, k_ = 0;
  double tau_ = 0;
  std::uint64_t filter_ = 0;  // key bound for the fast path (0: none)
  // Smallest crossing per node: levels_[0] over 16 coordinates each; back(): the top level.
  std::vector<std::vector<double>> levels_;
  std::vector<Index> hot_;       // H
  std::vector<Index> hot_pos_;   // position in hot_, -1 when cold
  std::vector<Cand> cand_;
  std::vector<std::uint8_t> taken_;  // tau = 0 fill-in only
  std::vector<std::uint64_t> scratch_;  // Rebuild's keys
  LazyTopKStats stats_;
};

}  // namespace memsgd::kernels
