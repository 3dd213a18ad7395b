// Fast kernels against the plain ones: vectorised passes bit for bit on every instruction set,
// the carried-threshold top-k selects exactly TopKReference's set (random and adversarial
// inputs), whole sequential runs give the same iterates with every top-k kernel, and the lazy
// (weight-scale) SGD equals the dense step to 1e-12.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <cstring>
#include <set>
#include <utility>

#include "memsgd/compressor.hpp"
#include "memsgd/kernels/topk.hpp"
#include "memsgd/train.hpp"
#include "support.hpp"

using namespace memsgd;
using namespace memsgd::kernels;

namespace {

std::vector<Isa> AllIsas() {
  std::vector<Isa> v{Isa::kScalar};
  if (static_cast<int>(BestIsa()) >= static_cast<int>(Isa::kAvx2)) v.push_back(Isa::kAvx2);
  if (BestIsa() == Isa::kAvx512) v.push_back(Isa::kAvx512);
  return v;
}

std::set<Index> RefSet(const std::vector<double>& v, Index k) {
  auto r = TopKReference(v, k);
  return {r.begin(), r.end()};
}

std::set<Index> GotSet(const SparseUpdate& u) { return {u.idx.begin(), u.idx.begin() + u.size}; }

bool BitEqual(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

using test::MaxRelDiff;

// Exact equality in builds without FMA (the default baseline x86-64 build); 1e-12 otherwise
// (a -march=native build may contract the plain engine's other expressions differently).
void CheckSameIterates(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
#ifdef __FMA__
  CHECK(MaxRelDiff(a, b) <= 1e-12);
#else
  CHECK(a == b);
#endif
}

}  // namespace

TEST_CASE("kernel options parse and describe") {
  auto o = ParseKernelOptions("topk=heap,sgd=dense,isa=scalar");
  CHECK(o.topk == TopKKernel::kHeap);
  CHECK(o.sgd == SgdKernel::kDense);
  CHECK(o.isa == Isa::kScalar);
  CHECK(Describe(o) == "topk=heap,sgd=dense,isa=scalar,avg=lazy,mem=auto");
  CHECK_FALSE(ParseKernelOptions("avg=dense").lazy_average);
  CHECK(ParseKernelOptions("mem=dense").memory == MemoryKernel::kDense);
  CHECK(ParseKernelOptions("mem=lazy").memory == MemoryKernel::kLazy);
  CHECK(ParseKernelOptions("mem=auto").memory == MemoryKernel::kAuto);
  CHECK_THROWS_AS(ParseKernelOptions("mem=sparse"), std::invalid_argument);
  CHECK_THROWS_AS(ParseKernelOptions("avg=fast"), std::invalid_argument);
  CHECK(ParseKernelOptions("").topk == TopKKernel::kThreshold);
  CHECK(ParseKernelOptions("topk=reference").topk == TopKKernel::kReference);
  CHECK_THROWS_AS(ParseKernelOptions("topk=fast"), std::invalid_argument);
  CHECK_THROWS_AS(ParseKernelOptions("speed=11"), std::invalid_argument);
  CHECK_THROWS_AS(ParseKernelOptions("topk"), std::invalid_argument);
  MESSAGE("best ISA on this CPU: " << IsaName(BestIsa()));
}

TEST_CASE("vectorised passes are bit-identical to the plain C++ expression on every ISA") {
  Rng rng(test::Seed(), 11);
  for (Index n : {0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 1000, 4099}) {
    std::vector<double> m0(static_cast<std::size_t>(n)), x(static_cast<std::size_t>(n));
    for (Index j = 0; j < n; ++j) {
      m0[j] = rng.Normal() * (j % 5 == 0 ? 10.0 : 1.0);
      x[j] = rng.Normal();
      if (j % 13 == 0) m0[j] = 0.0;
      if (j % 17 == 0) m0[j] = -0.0;
      if (j % 19 == 0) x[j] = 0.0;
    }
    const double eta = 0.37 + rng.Uniform(), lam = 1e-3 * (1 + rng.Uniform());
    const double tau = 1.5;
    // The plain reference: m + (eta lam) x rounded once, std::fma (the library's MemoryL2).
    std::vector<double> want = m0;
    std::vector<Index> want_c;
    for (Index j = 0; j < n; ++j) {
      want[j] = std::fma(eta * lam, x[j], want[j]);
      if (std::abs(want[j]) > tau) want_c.push_back(j + 5);
    }
    for (Isa isa : AllIsas()) {
      CAPTURE(n);
      CAPTURE(IsaName(isa));
      auto m = m0;
      std::vector<Index> cand(static_cast<std::size_t>(n) + kCandidateSlack);
      const Index c = RegAxpyCollect(isa, m.data(), x.data(), eta, lam, n, tau, cand.data(), 5);
      bool same = true;
      for (Index j = 0; j < n; ++j) same &= BitEqual(m[j], want[j]);
      CHECK(same);
      CHECK(std::vector<Index>(cand.begin(), cand.begin() + c) == want_c);
      // the scan alone
      const Index c2 = CollectAbove(isa, want.data(), n, tau, cand.data(), 5);
      CHECK(std::vector<Index>(cand.begin(), cand.begin() + c2) == want_c);
      // tau = +inf: the update alone
      m = m0;
      CHECK(RegAxpyCollect(isa, m.data(), x.data(), eta, lam, n, INFINITY, cand.data()) == 0);
      same = true;
      for (Index j = 0; j < n; ++j) same &= BitEqual(m[j], want[j]);
      CHECK(same);
      // dense SGD: x -= fma(eta lam, x, m) where that is nonzero
      std::vector<double> xs = x, xw = x;
      std::vector<double> g = m0;
      for (Index j = 0; j < n; ++j) {
        const double gj = std::fma(eta * lam, xw[j], g[j]);
        if (gj != 0) xw[j] -= gj;
      }
      SgdDenseUpdate(isa, xs.data(), g.data(), eta, lam, n);
      same = true;
      for (Index j = 0; j < n; ++j) same &= BitEqual(xs[j], xw[j]);
      CHECK(same);
    }
  }
}

TEST_CASE("fused top-1 (argmax) on every ISA: first index of the largest |m|, same update") {
  Rng rng(test::Seed(), 16);
  for (Index n : {0, 1, 3, 4, 7, 15, 16, 17, 40, 300, 1001}) {
    for (int variant = 0; variant < 5; ++variant) {
      CAPTURE(n);
      CAPTURE(variant);
      std::vector<double> m0(static_cast<std::size_t>(n)), x(static_cast<std::size_t>(n));
      for (Index j = 0; j < n; ++j) {
        x[j] = rng.Normal();
        switch (variant) {
          case 0: m0[j] = rng.Normal(); break;
          case 1: m0[j] = (j % 3 == 0 ? 2.0 : -1.0) * (j % 2 ? 1 : -1); break;  // ties
          case 2: m0[j] = j % 2 ? 0.0 : -0.0; break;                           // zeros
          case 3: m0[j] = j % 5 == 0 ? NAN : rng.Normal(); break;               // NaNs skipped
          default: m0[j] = j == n - 1 ? -INFINITY : rng.Normal(); break;
        }
      }
      for (double lam : {0.0, 0.01}) {
        std::vector<double> want = m0;
        Index want_j = -1;
        double top = -1;
        for (Index j = 0; j < n; ++j) {
          if (lam != 0) want[j] = std::fma(0.7 * lam, x[j], want[j]);
          if (std::abs(want[j]) > top) {
            top = std::abs(want[j]);
            want_j = j;
          }
        }
        if (variant != 3 && n > 0) {
          auto r = TopKReference(want, 1);
          CHECK(r[0] == want_j);
        }
        for (Isa isa : AllIsas()) {
          CAPTURE(IsaName(isa));
          auto m = m0;
          double best = 0;
          const Index j = RegAxpyArgmax(isa, m.data(), x.data(), 0.7, lam, n, &best, 3);
          CHECK(j == (want_j < 0 ? -1 : want_j + 3));
          if (want_j >= 0) CHECK(best == top);
          bool same = true;
          for (Index i = 0; i < n; ++i) same &= BitEqual(m[i], want[i]) || (m[i] != m[i] && want[i] != want[i]);
          CHECK(same);
        }
      }
    }
  }
}

TEST_CASE("dense-row kernels: one summation order on every ISA and in chunks; axpy bit for bit") {
  Rng rng(test::Seed(), 14);
  for (Index n : {0, 1, 5, 15, 16, 17, 33, 300, 2000, 2001}) {
    CAPTURE(n);
    std::vector<float> a(static_cast<std::size_t>(n));
    std::vector<double> x(static_cast<std::size_t>(n));
    for (Index j = 0; j < n; ++j) {
      a[j] = static_cast<float>(rng.Normal());
      x[j] = rng.Normal();
    }
    // The documented order, written out: lane l sums j = l mod 16 in increasing j, then the tree.
    double lanes[16] = {};
    for (Index j = 0; j < n; ++j) {
      volatile double p = static_cast<double>(a[j]) * x[j];
      lanes[j % 16] += p;
    }
    double q[8], r[4];
    for (int l = 0; l < 8; ++l) q[l] = lanes[l] + lanes[l + 8];
    for (int l = 0; l < 4; ++l) r[l] = q[l] + q[l + 4];
    const double want = (r[0] + r[2]) + (r[1] + r[3]);
    long double exact = 0;
    for (Index j = 0; j < n; ++j) exact += static_cast<long double>(a[j]) * x[j];
    CHECK(std::abs(want - static_cast<double>(exact)) <= 1e-12 * (1 + std::abs(want)));
    for (Isa isa : AllIsas()) {
      CAPTURE(IsaName(isa));
      CHECK(BitEqual(DotDense(isa, a.data(), x.data(), n), want));
      // in 16-aligned chunks, as the parallel engine reads the shared vector
      double acc[kDotLanes] = {};
      for (Index j0 = 0; j0 < n; j0 += 48)
        DotLanesAccumulate(isa, a.data() + j0, x.data() + j0, std::min<Index>(48, n - j0), acc);
      CHECK(BitEqual(DotLanesReduce(acc), want));
      const double c = rng.Normal();
      std::vector<double> y = x, yw = x, z = x, zw = x;
      for (Index j = 0; j < n; ++j) {
        volatile double p = c * static_cast<double>(a[j]);
        yw[j] += p;
        if (p != 0) zw[j] -= p;
      }
      AxpyDense(isa, c, a.data(), y.data(), n);
      SubScaledDense(isa, c, a.data(), z.data(), n);
      CHECK(y == yw);
      CHECK(z == zw);
    }
  }
}

TEST_CASE("threshold top-k selects exactly TopKReference's set (random vectors)") {
  Rng rng(test::Seed(), 12);
  for (Isa isa : AllIsas()) {
    for (Index d : {1, 2, 9, 64, 300, 2000, 47236}) {
      for (Index k : {1, 2, 5, 50, 300, 1999}) {
        if (k > d) continue;
        CAPTURE(IsaName(isa));
        CAPTURE(d);
        CAPTURE(k);
        ThresholdTopK sel;
        sel.Reset(d, k);
        SparseUpdate out;
        out.Reserve(k);
        std::vector<double> v(static_cast<std::size_t>(d));
        // Several vectors in a row with the threshold carried over: scales going up and down.
        for (double scale : {1.0, 1e-3, 1e3, 1.0, 1e-12, 7.0}) {
          for (auto& e : v) e = scale * rng.Normal();
          sel.Select(isa, v.data(), out);
          REQUIRE(out.size == k);
          CHECK(GotSet(out) == RefSet(v, k));
          for (Index i = 0; i < k; ++i) CHECK(BitEqual(out.val[i], v[out.idx[i]]));
        }
      }
    }
  }
}

TEST_CASE("threshold top-k: adversarial inputs (ties, zeros, infinities, values at tau)") {
  for (Isa isa : AllIsas()) {
    CAPTURE(IsaName(isa));
    const Index d = 1000;
    for (Index k : {1, 7, 50, 999, 1000}) {
      CAPTURE(k);
      ThresholdTopK sel;
      sel.Reset(d, k);
      SparseUpdate out;
      out.Reserve(k);
      std::vector<double> v(d);
      auto check = [&](const char* what) {
        CAPTURE(what);
        sel.Select(isa, v.data(), out);
        REQUIRE(out.size == k);
        CHECK(GotSet(out) == RefSet(v, k));
      };
      std::fill(v.begin(), v.end(), 0.0);
      check("all zeros: the k smallest indices");
      for (Index j = 0; j < d; ++j) v[j] = (j % 2 ? -1.0 : 1.0);
      check("all |v| equal: ties to the smaller index");
      for (Index j = 0; j < d; ++j) v[j] = j < 3 ? 5.0 : 0.0;
      check("fewer nonzeros than k");
      for (Index j = 0; j < d; ++j) v[j] = -0.0;
      v[d - 1] = 1e-320;  // subnormal
      check("negative zeros and one subnormal");
      for (Index j = 0; j < d; ++j) v[j] = static_cast<double>(j % 10);
      check("ten-valued plateau with ties at the boundary");
      v[500] = INFINITY;
      v[20] = -INFINITY;
      check("infinities");
      // Values exactly at the carried threshold: select on a vector, then put many entries at the
      // new tau (strictly-above is the rule; they must still be found when needed).
      for (Index j = 0; j < d; ++j) v[j] = 1.0 + j * 1e-3;
      sel.Select(isa, v.data(), out);
      const double tau = sel.Tau();
      for (Index j = 0; j < d; ++j) v[j] = j % 3 == 0 ? tau : (j % 3 == 1 ? -tau : tau / 2);
      check("many values equal to tau");
      for (Index j = 0; j < d; ++j) v[j] = std::ldexp(1.0, -(j % 60)) * (j % 2 ? 1 : -1);
      check("powers of two");
    }
  }
}

TEST_CASE("threshold top-k tracks an evolving memory exactly (Mem-SGD-like sequence)") {
  // m += noise on a few coordinates + a small dense drift, top-k zeroed each step, as Mem-SGD does.
  Rng rng(test::Seed(), 13);
  const Index d = 5000;
  for (Index k : {1, 10, 50}) {
    CAPTURE(k);
    for (Isa isa : AllIsas()) {
      ThresholdTopK sel;
      sel.Reset(d, k);
      SparseUpdate out;
      out.Reserve(k);
      std::vector<double> m(d, 0.0), x(d);
      for (auto& e : x) e = rng.Normal();
      for (int step = 0; step < 400; ++step) {
        for (int e = 0; e < 40; ++e) m[rng.Below(d)] += rng.Normal() / (1 + step);
        const double eta = 1.0 / (10 + step);
        std::vector<double> want = m;
        for (Index j = 0; j < d; ++j) want[j] = std::fma(eta * 1e-2, x[j], want[j]);
        const Index c = RegAxpyCollect(isa, m.data(), x.data(), eta, 1e-2, d, sel.Tau(),
                                       sel.Candidates());
        sel.Finish(isa, m.data(), c, out);
        REQUIRE(m == want);
        REQUIRE(GotSet(out) == RefSet(m, k));
        for (Index i = 0; i < out.size; ++i) {
          x[out.idx[i]] -= out.val[i];
          m[out.idx[i]] = 0;
        }
      }
      const auto& st = sel.Stats();
      MESSAGE("k=" << k << " " << IsaName(isa) << ": candidates/step "
                   << double(st.candidates) / st.steps << ", rescans " << st.rescans
                   << ", full selections " << st.full << " in " << st.steps << " steps");
    }
  }
}

TEST_CASE("whole sequential Mem-SGD runs: threshold, heap and reference kernels agree") {
  // d = 3000: top-1 by the fused argmax pass; d = 5000 (> kArgmaxMaxD): by the threshold kernel.
  for (Index d : {3000, 5000})
  for (Index k : {1, 5, 40}) {
    if (d == 5000 && k != 1) continue;
    auto data = test::RandomSparse(400, d, 12, test::Seed() + 5);
    for (double lambda : {0.0, 1.0 / 400}) {
      CAPTURE(d);
      CAPTURE(k);
      CAPTURE(lambda);
      TrainConfig cfg;
      cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, lambda};
      cfg.schedule = lambda > 0 ? ScheduleKind::kPaper : ScheduleKind::kConstant;
      cfg.compressor = CompressorSpec::FromName("top", k, false, 4);
      cfg.epochs = 3;
      cfg.seed = test::Seed();
      // The dense memory pass (mem=dense): these kernels' runs agree bit for bit; the lazy
      // memory is checked against them in its own test (rounding differs).
      auto run = [&](const std::string& spec) {
        ScopedOptions o(ParseKernelOptions(spec + ",mem=dense"));
        return Train(cfg, data);
      };
      const auto ref = run("topk=reference");
      for (const char* spec : {"topk=heap", "topk=threshold", "topk=threshold,isa=scalar",
                               "topk=threshold,isa=avx2"}) {
        CAPTURE(spec);
        const auto got = run(spec);
        CheckSameIterates(got.x_last, ref.x_last);
        CheckSameIterates(got.x, ref.x);
        CheckSameIterates(got.memories[0], ref.memories[0]);
        REQUIRE(got.trace.size() == ref.trace.size());
        CHECK(got.trace.back().bits == ref.trace.back().bits);
      }
      // One worker of the parallel engine writing every step (relaxed atomic loads, chunked) =
      // the sequential solver, bit for bit.
      cfg.threads = 1;
      cfg.flush_every = 1;
      const auto par = run("topk=threshold");
      CheckSameIterates(par.x_last, ref.x_last);
      // Writing every 8 steps from its own copy (xsnap - xbase added to the shared x): the same
      // up to rounding (x + (x' - x) is x' unless x' and x differ by more than a factor 2).
      cfg.flush_every = 8;
      const auto snap = run("topk=threshold");
      CHECK(MaxRelDiff(snap.x_last, ref.x_last) <= 1e-12);
      CHECK(snap.trace.back().bits == ref.trace.back().bits);
      cfg.threads = 0;
      cfg.flush_every = 0;
    }
  }
}

TEST_CASE("dense data: every kernel and ISA gives the same run; threads=1 equals threads=0") {
  // Dense storage (epsilon-like rows): the dense-row dot, axpy and SGD kernels.
  Rng rng(test::Seed(), 15);
  const Offset n = 200;
  const Index d = 37;
  std::vector<Value> vals(static_cast<std::size_t>(n * d));
  std::vector<double> y(static_cast<std::size_t>(n));
  for (auto& v : vals) v = static_cast<Value>(rng.Normal());
  for (auto& l : y) l = rng.Uniform() < 0.5 ? -1.0 : 1.0;
  auto data = Dataset::FromDense(d, vals, y);
  data.NormalizeRows();
  for (std::string method : {"mem-sgd", "sgd"}) {
    CAPTURE(method);
    TrainConfig cfg;
    cfg.method = MethodFromName(method);
    cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, 1.0 / n};
    cfg.compressor = CompressorSpec::FromName("top", 3, false, 4);
    cfg.epochs = 3;
    cfg.averaging = AveragingKind::kFinal;
    auto run = [&](const std::string& spec) {
      ScopedOptions o(ParseKernelOptions(spec));
      return Train(cfg, data);
    };
    const auto ref = run("topk=reference,sgd=dense,isa=scalar");
    for (const char* spec : {"topk=heap,sgd=dense", "topk=threshold,sgd=dense",
                             "topk=threshold,sgd=dense,isa=avx2"}) {
      CAPTURE(spec);
      CheckSameIterates(run(spec).x_last, ref.x_last);
    }
    if (method == "sgd") CHECK(MaxRelDiff(run("sgd=lazy").x_last, ref.x_last) <= 1e-12);
    cfg.threads = 1;
    CheckSameIterates(run("sgd=dense").x_last, ref.x_last);
  }
}

TEST_CASE("rand-k Mem-SGD with the vectorised L2 update equals the scalar update") {
  auto data = test::RandomSparse(300, 500, 8, test::Seed() + 6);
  TrainConfig cfg;
  cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, 1.0 / 300};
  cfg.compressor = CompressorSpec::FromName("rand", 3, false, 4);
  cfg.epochs = 2;
  ScopedOptions scalar(ParseKernelOptions("isa=scalar"));
  const auto a = Train(cfg, data);
  ScopedOptions best(KernelOptions{});
  const auto b = Train(cfg, data);
  CHECK(a.x_last == b.x_last);
  CHECK(a.memories[0] == b.memories[0]);
}

namespace {
// Plain dense SGD: x -= eta (phi'(a.x) a + lambda x), every coordinate, as the paper's code.
std::vector<double> DenseSgd(const TrainConfig& cfg, const Dataset& data) {
  const auto sched = ResolveSchedule(cfg, data);
  const Index d = data.NumFeatures();
  std::vector<double> x(d, 0.0);
  Rng rng(cfg.seed, 0);
  const Offset steps = static_cast<Offset>(std::llround(cfg.epochs * data.NumRows()));
  for (Offset t = 0; t < steps; ++t) {
    const auto i = static_cast<Offset>(rng.Below(static_cast<std::uint64_t>(data.NumRows())));
    const double eta = sched(t);
    auto row = data.Sparse(i);
    // The engine's sparse dot: two partial sums, even and odd entries (engine/step_kernels.hpp DotX).
    double z0 = 0, z1 = 0;
    for (Index e = 0; e < row.nnz; ++e) (e % 2 == 0 ? z0 : z1) += row.val[e] * x[row.idx[e]];
    const double z = z0 + z1;
    const double c = eta * LossDerivative(cfg.objective.loss, z, data.Label(i));
    std::vector<double> g(d, 0.0);
    for (Index e = 0; e < row.nnz; ++e) g[row.idx[e]] = c * row.val[e];
    for (Index j = 0; j < d; ++j) x[j] -= g[j] + eta * cfg.objective.lambda * x[j];
  }
  return x;
}
}  // namespace

TEST_CASE("lazy SGD (x = s v) equals the dense step to 1e-12, including rescaling paths") {
  auto data = test::RandomSparse(500, 200, 7, test::Seed() + 7);
  struct Case {
    const char* what;
    ScheduleKind sched;
    double gamma, lambda, epochs;
  };
  for (const Case& cs : {Case{"paper schedule", ScheduleKind::kPaper, 2.0, 1.0 / 500, 4},
                         Case{"constant step: s falls below 1e-9 and is folded back",
                              ScheduleKind::kConstant, 0.5, 0.4, 6},
                         Case{"1 - eta lambda <= 0 in the first steps", ScheduleKind::kBottou,
                              30.0, 0.5, 1}}) {
    CAPTURE(cs.what);
    TrainConfig cfg;
    cfg.method = Method::kSgd;
    cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, cs.lambda};
    cfg.schedule = cs.sched;
    cfg.gamma = cs.gamma;
    cfg.epochs = cs.epochs;
    cfg.averaging = AveragingKind::kFinal;
    cfg.with_replacement = true;
    cfg.init_std = 0;
    cfg.eval_every = 97;  // many segment ends: x is folded back at each
    ScopedOptions lazy(ParseKernelOptions("sgd=lazy"));
    const auto a = Train(cfg, data);
    ScopedOptions dense(ParseKernelOptions("sgd=dense"));
    const auto b = Train(cfg, data);
    const auto want = DenseSgd(cfg, data);
    CHECK(MaxRelDiff(a.x_last, b.x_last) <= 1e-12);
    CHECK(MaxRelDiff(b.x_last, want) <= 1e-12);
    REQUIRE(a.trace.size() == b.trace.size());
    for (std::size_t i = 0; i < a.trace.size(); ++i)
      CHECK(a.trace[i].loss == doctest::Approx(b.trace[i].loss).epsilon(1e-12));
  }
}

TEST_CASE("SGD with lambda = 0 touches only the row and equals the dense loop bit for bit") {
  auto data = test::RandomSparse(300, 100, 6, test::Seed() + 8);
  TrainConfig cfg;
  cfg.method = Method::kSgd;
  cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, 0.0};
  cfg.schedule = ScheduleKind::kConstant;
  cfg.gamma = 0.3;
  cfg.epochs = 3;
  cfg.averaging = AveragingKind::kFinal;
  cfg.with_replacement = true;
  cfg.init_std = 0;
  const auto a = Train(cfg, data);
  CHECK(a.x_last == DenseSgd(cfg, data));
}

// cfg trained under two MEMSGD_KERNELS settings, in this order.
std::pair<TrainResult, TrainResult> TrainBoth(const TrainConfig& cfg, const Dataset& data,
                                              const char* first, const char* second) {
  ScopedOptions a(ParseKernelOptions(first));
  TrainResult ra = Train(cfg, data);
  ScopedOptions b(ParseKernelOptions(second));
  return {std::move(ra), Train(cfg, data)};
}

// An average kept lazily against the per-step dense one: close, really an average, the same
// trace.
void CheckAverageClose(const TrainResult& lazy, const TrainResult& dense) {
  CHECK(MaxRelDiff(lazy.x, dense.x) <= 1e-11);
  CHECK(lazy.x != lazy.x_last);
  REQUIRE(lazy.trace.size() == dense.trace.size());
  for (std::size_t i = 0; i < lazy.trace.size(); ++i)
    CHECK(lazy.trace[i].loss == doctest::Approx(dense.trace[i].loss).epsilon(1e-11));
}

TEST_CASE("lazy SGD is used only where the runner allows it (averaging kind, threads)") {
  auto data = test::RandomSparse(200, 80, 5, test::Seed() + 9);
  TrainConfig cfg;
  cfg.method = Method::kSgd;
  cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, 1.0 / 200};
  cfg.epochs = 2;
  for (auto avg : {AveragingKind::kWeighted, AveragingKind::kUniform}) {
    cfg.averaging = avg;
    {
      // The per-step dense average reads x every step: the dense step runs in both.
      const auto [a, b] = TrainBoth(cfg, data, "sgd=lazy,avg=dense", "sgd=dense,avg=dense");
      CHECK(a.x == b.x);
      CHECK(a.x_last == b.x_last);
    }
    // The lazy average (A u + B v) lets the x = s v kernel run: equal up to rounding.
    const auto [a, b] = TrainBoth(cfg, data, "sgd=lazy,avg=lazy", "sgd=dense,avg=dense");
    CHECK(MaxRelDiff(a.x_last, b.x_last) <= 1e-12);
    CHECK(MaxRelDiff(a.x, b.x) <= 1e-11);
    // threads >= 1 writing every step: never lazy (Hogwild! writes every coordinate), the same
    // as the dense kernel.
    TrainConfig par = cfg;
    par.threads = 1;
    par.flush_every = 1;
    const auto [c, e] = TrainBoth(par, data, "sgd=dense,avg=dense", "sgd=lazy,avg=lazy");
    CHECK(c.x_last == e.x_last);
    // A worker on its own copy (--flush-every 16) runs the lazy kernel there: the dense one's
    // iterate up to rounding.
    par.flush_every = 16;
    const auto [f, g] = TrainBoth(par, data, "sgd=dense,avg=dense", "sgd=lazy,avg=lazy");
    CHECK(MaxRelDiff(f.x_last, g.x_last) <= 1e-12);
    CHECK(MaxRelDiff(g.x_last, b.x_last) <= 1e-12);
  }
}

TEST_CASE("lazy SGD with the lazy average: scale folds (s < 1e-9) inside averaged segments") {
  // A constant step with a large lambda drives s below 1e-9 every few dozen steps: the average
  // A u + B v is folded before each rescale of v. Weighted and uniform weights.
  auto data = test::RandomSparse(500, 200, 7, test::Seed() + 23);
  for (auto avg : {AveragingKind::kWeighted, AveragingKind::kUniform}) {
    TrainConfig cfg;
    cfg.method = Method::kSgd;
    cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, 0.4};
    cfg.schedule = ScheduleKind::kConstant;
    cfg.gamma = 0.5;
    cfg.epochs = 6;
    cfg.averaging = avg;
    cfg.eval_every = 997;
    const auto [a, b] = TrainBoth(cfg, data, "sgd=lazy,avg=lazy", "sgd=dense,avg=dense");
    CHECK(MaxRelDiff(a.x_last, b.x_last) <= 1e-12);
    CheckAverageClose(a, b);
  }
}

TEST_CASE("lazy averaging (avg = A u + B x) equals the per-step average; the iterates are unchanged") {
  // Weighted averaging with a small shift makes A fall below 1e-9 inside the first segment
  // (A ~ (a/t)^3, a = 2: at t ~ 2,600 of the segment [0, 3000)): the renormalisation path runs
  // (and at t = 0, where rho = 1). Uniform averaging, top-k, rand-k, QSGD, no memory.
  auto data = test::RandomSparse(3000, 40, 5, test::Seed() + 21);
  struct Case {
    const char* what;
    Method method;
    const char* comp;
    AveragingKind avg;
    bool memory;
  };
  for (const Case& cs : {Case{"top-1 weighted", Method::kMemSgd, "top", AveragingKind::kWeighted, true},
                         Case{"rand-2 uniform", Method::kMemSgd, "rand", AveragingKind::kUniform, true},
                         Case{"top-1 no memory", Method::kMemSgd, "top", AveragingKind::kWeighted, false},
                         Case{"qsgd weighted", Method::kQsgd, "top", AveragingKind::kWeighted, true}}) {
    CAPTURE(cs.what);
    TrainConfig cfg;
    cfg.method = cs.method;
    cfg.compressor = CompressorSpec::FromName(cs.comp, cs.comp[0] == 'r' ? 2 : 1, false, 4);
    cfg.memory = cs.memory;
    cfg.objective = Objective{Loss::kLogistic, Regularizer::kL2, 1.0 / 3000};
    cfg.averaging = cs.avg;
    cfg.shift = 2;
    cfg.epochs = 3;
    cfg.eval_every = 3000;  // one segment per epoch
    cfg.init_std = 0.01;
    const auto [dense, lazy] = TrainBoth(cfg, data, "avg=dense", "avg=lazy");
    CHECK(lazy.x_last == dense.x_last);  // the iterates do not depend on how the average is kept
    CheckAverageClose(lazy, dense);
  }
}
