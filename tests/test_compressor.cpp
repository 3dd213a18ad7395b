// Compressor properties: exact top-k, rand-k uniformity (chi-square), k-contraction, QSGD
// unbiasedness, bit accounting.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <type_traits>

#include "memsgd/compressor.hpp"
#include "memsgd/error_feedback.hpp"
#include "support.hpp"

using namespace memsgd;

namespace {
std::vector<double> RandomVector(Index d, Rng& rng) {
  std::vector<double> v(static_cast<std::size_t>(d));
  for (auto& x : v) x = rng.Normal();
  return v;
}
double Norm2(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return s;
}
std::vector<double> Residual(const std::vector<double>& v, const SparseUpdate& u) {
  auto r = v;
  for (Index i = 0; i < u.size; ++i) r[static_cast<std::size_t>(u.idx[static_cast<std::size_t>(i)])] -= u.val[static_cast<std::size_t>(i)];
  return r;
}
}  // namespace

TEST_CASE("top-k keeps exactly the k largest |v_j| (heap and nth_element paths)") {
  Rng rng(test::Seed(), 1);
  for (Index d : {1, 7, 100, 3000}) {
    for (Index k : {1, 2, 10, 50, 300, 2999}) {
      if (k > d) continue;
      CAPTURE(d);
      CAPTURE(k);
      auto v = RandomVector(d, rng);
      Compressor c(CompressorSpec::FromName("top", k, false, 4), d);
      SparseUpdate out;
      out.Reserve(c.Budget());
      c.Compress(v, out, rng);
      REQUIRE(out.size == k);
      std::set<Index> got(out.idx.begin(), out.idx.begin() + k);
      auto ref = TopKReference(v, k);
      std::set<Index> want(ref.begin(), ref.end());
      CHECK(got == want);
      // a full sort agrees too
      std::vector<Index> all(static_cast<std::size_t>(d));
      std::iota(all.begin(), all.end(), 0);
      std::sort(all.begin(), all.end(), [&](Index a, Index b) { return std::abs(v[a]) > std::abs(v[b]); });
      CHECK(std::set<Index>(all.begin(), all.begin() + k) == want);
      for (Index i = 0; i < k; ++i) CHECK(out.val[i] == v[out.idx[i]]);
      // deterministic k-contraction: |v - top_k v|^2 <= (1 - k/d)|v|^2
      CHECK(Norm2(Residual(v, out)) <= (1.0 - double(k) / d) * Norm2(v) + 1e-12);
    }
  }
}

TEST_CASE("rand-k draws every k-subset member uniformly (chi-square, fixed seed)") {
  const Index d = 20, k = 3;
  const int draws = 60000;
  Rng rng(test::Seed(), 2);
  Compressor c(CompressorSpec::FromName("rand", k, false, 4), d);
  SparseUpdate out;
  out.Reserve(k);
  std::vector<double> v(d, 1.0);
  std::vector<double> count(d, 0.0);
  for (int t = 0; t < draws; ++t) {
    c.Compress(v, out, rng);
    REQUIRE(out.size == k);
    std::set<Index> distinct(out.idx.begin(), out.idx.begin() + k);
    REQUIRE(distinct.size() == static_cast<std::size_t>(k));
    for (Index i = 0; i < k; ++i) count[out.idx[i]] += 1;
  }
  const double expected = double(draws) * k / d;
  double chi2 = 0;
  for (double cnt : count) chi2 += (cnt - expected) * (cnt - expected) / expected;
  // 19 degrees of freedom: the 99.9% quantile is 43.8
  CHECK(chi2 < 43.8);
}

TEST_CASE("rand-k with large k uses the bitmap path and stays a uniform subset") {
  const Index d = 200, k = 150;
  Rng rng(test::Seed(), 3);
  Compressor c(CompressorSpec::FromName("rand", k, false, 4), d);
  SparseUpdate out;
  out.Reserve(k);
  std::vector<double> v(d, 1.0), count(d, 0.0);
  const int draws = 4000;
  for (int t = 0; t < draws; ++t) {
    c.Compress(v, out, rng);
    std::set<Index> distinct(out.idx.begin(), out.idx.begin() + k);
    REQUIRE(distinct.size() == static_cast<std::size_t>(k));
    for (Index i = 0; i < k; ++i) count[out.idx[i]] += 1;
  }
  const double p = double(k) / d, expected = draws * p;
  double chi2 = 0;
  for (double cnt : count) chi2 += (cnt - expected) * (cnt - expected) / (expected * (1 - p));
  CHECK(chi2 < 267.0);  // 199 dof, 99.9% quantile ~ 265.4 (variance-corrected counts)
}

TEST_CASE("rand-k and ultra-sparse are k-contractions in expectation") {
  Rng rng(test::Seed(), 4);
  const Index d = 50;
  auto v = RandomVector(d, rng);
  const double nv = Norm2(v);
  for (double k : {0.3, 1.0, 5.0, 25.0}) {
    CAPTURE(k);
    Compressor c(CompressorSpec::FromName("rand", k, false, 4), d);
    SparseUpdate out;
    out.Reserve(std::max<Index>(c.Budget(), 1));
    const int trials = 40000;
    double mean = 0;
    for (int t = 0; t < trials; ++t) {
      c.Compress(v, out, rng);
      mean += Norm2(Residual(v, out));
    }
    mean /= trials;
    const double want = (1.0 - k / d) * nv;  // equality for rand-k and ultra-sparse
    CHECK(mean == doctest::Approx(want).epsilon(0.01));
  }
}

TEST_CASE("scaled rand-k and QSGD are unbiased") {
  Rng rng(test::Seed(), 5);
  const Index d = 16;
  auto v = RandomVector(d, rng);
  for (std::string name : {"rand", "qsgd"}) {
    CAPTURE(name);
    Compressor c(CompressorSpec::FromName(name, 4, true, 2), d);
    SparseUpdate out;
    out.Reserve(c.Budget());
    std::vector<double> mean(d, 0.0);
    const int trials = 100000;
    for (int t = 0; t < trials; ++t) {
      c.Compress(v, out, rng);
      for (Index i = 0; i < out.size; ++i) mean[out.idx[i]] += out.val[i];
    }
    for (Index j = 0; j < d; ++j) CHECK(mean[j] / trials == doctest::Approx(v[j]).epsilon(0.05).scale(1.0));
  }
}

TEST_CASE("bits per message follow the paper's accounting") {
  const Index d = 2000;
  CHECK(Compressor(CompressorSpec::FromName("top", 1, false, 4), d).MessageBits(1, d) == 64);
  CHECK(Compressor(CompressorSpec::FromName("identity", 1, false, 4), d).MessageBits(d, d) == 128000);
  // QSGD on epsilon (d = 2000, dense): 2 bits -> Elias 617, 4 bits -> 2947, 8 bits -> naive 18000
  CHECK(std::round(QsgdBits(2, 2000, 2000)) == 617);
  CHECK(std::round(QsgdBits(4, 2000, 2000)) == 2947);
  CHECK(QsgdBits(8, 2000, 2000) == 18000);
  // RCV1 (d = 47236, 70 nonzeros): 2 bits -> sparse 2450, 8 bits -> 2870
  CHECK(QsgdBits(2, 47236, 70) == 2450);
  CHECK(QsgdBits(8, 47236, 70) == 2870);
}

TEST_CASE("the one dispatch: each spec reaches its operator, Pick draws what Compress sends") {
  const Index d = 97;
  struct Case {
    const char* name;
    double k;
    bool scaled;
    CompressorKind kind;
  };
  for (const Case& t : {Case{"identity", 1, false, CompressorKind::kIdentity},
                        Case{"top", 5, false, CompressorKind::kTopK},
                        Case{"rand", 5, false, CompressorKind::kRandK},
                        Case{"rand", 5, true, CompressorKind::kRandK},
                        Case{"rand", 0.3, false, CompressorKind::kUltraSparse},
                        Case{"qsgd", 1, false, CompressorKind::kQsgd}}) {
    CAPTURE(t.name);
    CAPTURE(t.k);
    const auto spec = CompressorSpec::FromName(t.name, t.k, t.scaled, 4);
    REQUIRE(spec.kind == t.kind);
    Compressor c(spec, d);
    const CompressorKind reached = c.Visit([](auto& op) { return std::decay_t<decltype(op)>::kKind; });
    CHECK(reached == t.kind);
    CHECK(VisitKind(spec.kind, [](auto tag) { return decltype(tag)::type::kKind; }) == t.kind);
    CHECK(c.PicksBlind() == (t.kind == CompressorKind::kRandK || t.kind == CompressorKind::kUltraSparse));
    // The EF accounting by kind equals the operator's own, and the sparse operators count
    // v + ceil(log2 d) bits per sent coordinate (7 index bits for d = 97).
    CHECK(ef::MessageBits(spec, d, 5, 32).indexed ==
          c.Visit([&](auto& op) { return std::decay_t<decltype(op)>::Cost(spec, d, 5, 32).indexed; }));
    if (spec.kind == CompressorKind::kTopK || c.PicksBlind()) CHECK(ef::MessageBits(spec, d, 5, 32).indexed == 5 * 39);
    if (!c.PicksBlind()) continue;
    // Pick draws the coordinates Compress sends (same stream), values scaled by ValueScale.
    Rng base(test::Seed(), 7);
    const auto v = RandomVector(d, base);
    for (int rep = 0; rep < 50; ++rep) {
      Rng r1(test::Seed(), 100 + rep), r2 = r1;
      SparseUpdate a, b;
      a.Reserve(c.Budget());
      b.Reserve(c.Budget());
      c.Compress(v, a, r1);
      c.Pick(r2, b);
      REQUIRE(a.size == b.size);
      for (Index i = 0; i < a.size; ++i) {
        CHECK(a.idx[i] == b.idx[i]);
        CHECK(a.val[i] == c.ValueScale() * v[b.idx[i]]);
      }
    }
    CHECK(c.ValueScale() == (t.scaled ? double(d) / 5 : 1.0));
  }
}
