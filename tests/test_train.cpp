// Mem-SGD / SGD engine: invariants against a dense reference, exact equivalences, the parallel
// engine over a non-monotone thread list, and convergence on real data.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "memsgd/kernels/topk.hpp"
#include "memsgd/libsvm.hpp"
#include "memsgd/optimum.hpp"
#include "memsgd/train.hpp"
#include "support.hpp"

using namespace memsgd;
using test::MaxRelDiff;

namespace {

// Naive dense Mem-SGD with top-k, sampling with replacement from worker stream 0 (as the
// engine's sequential solver does), x0 = 0. Tracks the virtual iterate x~.
struct Reference {
  std::vector<double> x, m, virt;
};
Reference ReferenceMemSgd(const Dataset& data, const Objective& obj, Index k, Offset steps,
                          const StepSchedule& sched, std::uint64_t seed) {
  const Index d = data.NumFeatures();
  Reference r{std::vector<double>(d, 0.0), std::vector<double>(d, 0.0),
              std::vector<double>(d, 0.0)};
  Rng rng(seed, 0);
  for (Offset t = 0; t < steps; ++t) {
    const auto i = static_cast<Offset>(rng.Below(static_cast<std::uint64_t>(data.NumRows())));
    const double eta = sched(t);
    std::vector<double> grad(d, 0.0);
    auto row = data.Sparse(i);
    double z = 0;
    for (Index j = 0; j < row.nnz; ++j) z += row.val[j] * r.x[row.idx[j]];
    const double c = LossDerivative(obj.loss, z, data.Label(i));
    for (Index j = 0; j < row.nnz; ++j) grad[row.idx[j]] += c * row.val[j];
    for (Index j = 0; j < d; ++j) grad[j] += obj.lambda * r.x[j];
    std::vector<double> v(d);
    for (Index j = 0; j < d; ++j) {
      v[j] = r.m[j] + eta * grad[j];
      r.virt[j] -= eta * grad[j];
    }
    auto top = TopKReference(v, k);
    for (Index j : top) {
      r.x[j] -= v[j];
      v[j] = 0;
    }
    r.m = v;
  }
  return r;
}

TrainConfig BaseConfig(double lambda) {
  TrainConfig c;
  c.objective = Objective{Loss::kLogistic, Regularizer::kL2, lambda};
  c.init_std = 0;
  c.averaging = AveragingKind::kFinal;
  return c;
}

// "method:compressor" (e.g. "mem-sgd:rand"), k = 2.
TrainConfig MethodConfig(double lambda, const std::string& method) {
  TrainConfig c = BaseConfig(lambda);
  c.method = MethodFromName(method.substr(0, method.find(':')));
  c.compressor = CompressorSpec::FromName(method.substr(method.find(':') + 1), 2, false, 4);
  return c;
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t j = 0; j < a.size(); ++j) m = std::max(m, std::abs(a[j] - b[j]));
  return m;
}

}  // namespace

TEST_CASE("sequential Mem-SGD top-k matches a dense reference, and x - x~ = m") {
  auto data = test::RandomSparse(300, 40, 6, test::Seed());
  for (Index k : {1, 3, 40}) {
    CAPTURE(k);
    auto cfg = BaseConfig(1.0 / 300);
    cfg.compressor = CompressorSpec::FromName("top", k, false, 4);
    cfg.with_replacement = true;
    cfg.epochs = 2;
    cfg.seed = test::Seed();
    auto res = Train(cfg, data);
    const auto sched = ResolveSchedule(cfg, data);
    auto ref = ReferenceMemSgd(data, cfg.objective, k, res.samples, sched, cfg.seed);
    CHECK(MaxAbsDiff(res.x_last, ref.x) <= 1e-12);
    CHECK(MaxAbsDiff(res.memories[0], ref.m) <= 1e-12);
    // The virtual-sequence identity of the paper's proof (Stich et al. 2018, section 3): with
    // x~_{t+1} = x~_t - eta_t grad f_i(x_t), the memory is exactly the gap x_t - x~_t = m_t.
    std::vector<double> diff(ref.x.size());
    for (std::size_t j = 0; j < diff.size(); ++j) diff[j] = ref.x[j] - ref.virt[j];
    CHECK(MaxAbsDiff(diff, ref.m) <= 1e-10);
    if (k == 40) {
      double mm = 0;
      for (double v : ref.m) mm = std::max(mm, std::abs(v));
      CHECK(mm == 0.0);  // k = d: nothing is kept
    }
  }
}

TEST_CASE("Mem-SGD with the identity compressor equals SGD exactly") {
  // Both with the per-step dense average (Mem-SGD would otherwise keep it lazily, SGD cannot:
  // the averages would agree to ~1e-13 only; the lazy form has its own test in test_kernels).
  kernels::ScopedOptions dense(kernels::ParseKernelOptions("avg=dense"));
  auto data = test::RandomSparse(200, 30, 5, test::Seed() + 1);
  auto cfg = BaseConfig(1.0 / 200);
  cfg.init_std = 0.01;
  cfg.averaging = AveragingKind::kWeighted;
  cfg.compressor = CompressorSpec::FromName("identity", 1, false, 4);
  cfg.shift = 30;
  auto a = Train(cfg, data);
  cfg.method = Method::kSgd;
  auto b = Train(cfg, data);
  CHECK(a.x == b.x);
  CHECK(a.x_last == b.x_last);
  for (double v : a.memories[0]) REQUIRE(v == 0.0);
}

TEST_CASE("sequential runs are bit-for-bit repeatable; threads=1 equals threads=0") {
  auto data = test::RandomSparse(400, 50, 8, test::Seed() + 2);
  for (std::string comp : {"top", "rand"}) {
    CAPTURE(comp);
    auto cfg = BaseConfig(1.0 / 400);
    cfg.init_std = 0.01;
    cfg.compressor = CompressorSpec::FromName(comp, 2, false, 4);
    cfg.epochs = 3;
    auto a = Train(cfg, data);
    auto b = Train(cfg, data);
    CHECK(a.x_last == b.x_last);
    REQUIRE(a.trace.size() == b.trace.size());
    for (std::size_t i = 0; i < a.trace.size(); ++i) CHECK(a.trace[i].loss == b.trace[i].loss);
    cfg.threads = 1;
    auto c = Train(cfg, data);
    CHECK(c.x_last == a.x_last);  // same kernels through atomic_ref: same arithmetic
  }
}

TEST_CASE("disjoint supports: parallel runs give exactly the sequential result") {
  // Row i touches only coordinates {3i, 3i+1, 3i+2}; no coordinate is shared, lambda = 0, and
  // k >= nnz so memories stay empty: every interleaving computes the same iterates.
  const Offset n = 64;
  const Index d = static_cast<Index>(3 * n);
  std::vector<Offset> ptr{0};
  std::vector<Index> idx;
  std::vector<Value> val;
  std::vector<double> y;
  Rng rng(test::Seed(), 9);
  for (Offset i = 0; i < n; ++i) {
    for (Index j = 0; j < 3; ++j) {
      idx.push_back(static_cast<Index>(3 * i + j));
      val.push_back(static_cast<Value>(rng.Normal()));
    }
    ptr.push_back(static_cast<Offset>(idx.size()));
    y.push_back(i % 2 ? 1.0 : -1.0);
  }
  auto data = Dataset::FromCsr(d, ptr, idx, val, y);
  for (std::string method : {"mem-sgd", "sgd"}) {
    auto cfg = BaseConfig(0.0);
    cfg.method = MethodFromName(method);
    cfg.schedule = ScheduleKind::kConstant;
    cfg.gamma = 0.5;
    cfg.compressor = CompressorSpec::FromName("top", 3, false, 4);
    cfg.epochs = 4;
    cfg.init_std = 0.01;
    auto seq = Train(cfg, data);
    for (int p : {3, 1, 4, 2}) {
      for (auto wp : {WritePolicy::kAtomic, WritePolicy::kRacy}) {
        for (Offset flush : {1, 0, 5}) {
          CAPTURE(method);
          CAPTURE(p);
          CAPTURE(flush);
          cfg.threads = p;
          cfg.write = wp;
          cfg.flush_every = flush;
          auto par = Train(cfg, data);
          if (flush == 1) {
            CHECK(par.x_last == seq.x_last);
          } else {
            // A worker's own copy (d = 192 <= 64 (nnz + k): auto combines): x + (x' - x)
            // written for x', equal up to rounding.
            CHECK(MaxRelDiff(par.x_last, seq.x_last) <= 1e-14);
          }
        }
      }
    }
  }
}

TEST_CASE("atomic adds from P threads sum exactly; racy adds never exceed the sum") {
  for (int p : {3, 1, 4, 2}) {
    CAPTURE(p);
    std::vector<double> x(4, 0.0);
    const int per_thread = 20000;
    auto run = [&](auto access) {
      std::fill(x.begin(), x.end(), 0.0);
      std::vector<std::thread> ts;
      for (int w = 0; w < p; ++w)
        ts.emplace_back([&, w] {
          for (int i = 0; i < per_thread; ++i) access.Add((i + w) % 4, 1.0);
        });
      for (auto& t : ts) t.join();
      double s = 0;
      for (int j = 0; j < 4; ++j) s += AtomicAddAccess{x.data()}.Load(j);
      return s;
    };
    CHECK(run(AtomicAddAccess{x.data()}) == double(p) * per_thread);
    const double racy = run(RacyAddAccess{x.data()});
    CHECK(racy <= double(p) * per_thread);
    CHECK(racy > 0);
  }
}

TEST_CASE("parallel Mem-SGD and Hogwild SGD converge to the sequential optimum") {
  auto data = test::RandomSparse(3000, 60, 8, test::Seed() + 3);
  const Objective obj{Loss::kLogistic, Regularizer::kL2, 1.0 / 3000};
  const double fstar = ComputeOptimum(obj, data).fstar;
  for (std::string method : {"mem-sgd:top", "mem-sgd:rand", "sgd:top"}) {
    auto cfg = MethodConfig(obj.lambda, method);
    cfg.averaging = AveragingKind::kWeighted;
    cfg.epochs = 8;
    cfg.init_std = 0.01;
    cfg.fstar = fstar;
    const double seq = Train(cfg, data).trace.back().suboptimality;
    for (int p : {3, 1, 4, 2}) {
      for (auto wp : {WritePolicy::kAtomic, WritePolicy::kRacy}) {
        CAPTURE(method);
        CAPTURE(p);
        cfg.threads = p;
        cfg.write = wp;
        const auto res = Train(cfg, data);
        const double sub = res.trace.back().suboptimality;
        CHECK(sub >= -1e-12);
        // Same accuracy class as the sequential solver (the run-to-run spread is small).
        CHECK(sub <= std::max(3.0 * seq, 1e-3 * fstar));
      }
    }
    cfg.threads = 0;
  }
}

TEST_CASE("write combining (--flush-every): workers on their own copies converge as write-through") {
  // Each worker steps on its own copy of x and writes what it changed every B of its steps:
  // the other workers see its updates up to B of its steps late. With B = auto, 64 and 256 and 2 or 4
  // workers (4 on a 2-core machine: a descheduled worker's copy is older still) the mean final
  // suboptimality of four seeds stays within 1.5x (B = 256: 1.75x) of write-through's, or of the
  // sequential solver's where write-through's four seeds came out below it: write-through's own
  // mean is a noisy reference (0.63x to 0.96x of the sequential one on the dense rows under
  // ThreadSanitizer with three test processes on two cores, where a 1.5x bound on it alone failed
  // at 1.6x). Measured against that reference, worst of every configuration, four such processes
  // at once: auto 1.36x, 64 1.38x, 256 1.53x; with a quarter of the writes dropped (a lost-update
  // bug) 21 of these checks fail. Dense rows and sparse rows of a small d (both combined by
  // default).
  std::vector<Value> vals(static_cast<std::size_t>(3000 * 40));
  std::vector<double> labels(3000);
  Rng rng(test::Seed(), 41);
  for (auto& v : vals) v = static_cast<Value>(rng.Normal());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    double z = 0;  // labels from a planted model plus noise: a well-posed problem
    for (std::size_t j = 0; j < 40; ++j) z += vals[i * 40 + j] * (j % 3 == 0 ? 0.5 : -0.2);
    labels[i] = z + rng.Normal() > 0 ? 1.0 : -1.0;
  }
  Dataset dense_rows = Dataset::FromDense(40, vals, labels);
  dense_rows.NormalizeRows();
  const Dataset& dense = dense_rows;
  const Dataset sparse = test::RandomSparse(3000, 60, 8, test::Seed() + 42);
  for (const Dataset* data : {&dense, &sparse}) {
    const Objective obj{Loss::kLogistic, Regularizer::kL2, 1.0 / 3000};
    const double fstar = ComputeOptimum(obj, *data).fstar;
    for (std::string method : {"mem-sgd:top", "mem-sgd:rand", "sgd:top"}) {
    for (ScheduleKind schedule : {ScheduleKind::kInverseEpoch, ScheduleKind::kPaper}) {
      auto cfg = MethodConfig(obj.lambda, method);
      // Figure 4's protocol: step 1 / (1 + t/n), and the paper's gamma / (lambda (t + a)), whose
      // first steps are huge (the auto B follows the step size); the last iterate (the parallel
      // averaging would see only the 8 segment ends).
      cfg.schedule = schedule;
      cfg.gamma = schedule == ScheduleKind::kPaper ? 2.0 : 1.0;
      cfg.averaging = AveragingKind::kFinal;
      cfg.epochs = 8;
      cfg.init_std = 0.01;
      cfg.fstar = fstar;
      cfg.eval_every = 3000;  // segments of an epoch: the workers overlap (not one after the other)
      const double seq = Train(cfg, *data).trace.back().suboptimality;
      const std::vector<Offset> flushes = schedule == ScheduleKind::kPaper
                                              ? std::vector<Offset>{1, 0}
                                              : std::vector<Offset>{1, 0, 64, 256};
      for (int p : {2, 4}) {
        double through = 0;  // mean of four seeds, write-through, or seq where that is larger
        for (Offset flush : flushes) {
          CAPTURE(data->IsDense());
          CAPTURE(method);
          CAPTURE(schedule == ScheduleKind::kPaper);
          CAPTURE(p);
          CAPTURE(flush);
          cfg.threads = p;
          cfg.flush_every = flush;
          double mean = 0, lowest = 1e300;
          for (int r = 0; r < 4; ++r) {
            cfg.seed = test::Seed() + static_cast<std::uint64_t>(r);
            const auto res = Train(cfg, *data);
            REQUIRE(res.status == TrainStatus::kOk);
            mean += res.trace.back().suboptimality / 4;
            lowest = std::min(lowest, res.trace.back().suboptimality);
          }
          MESSAGE(std::string(data->IsDense() ? "dense " : "sparse ")
                  << method << std::string(schedule == ScheduleKind::kPaper ? " paper" : " inverse-epoch")
                  << " P=" << p << " B=" << flush << ": mean " << mean << ", seq " << seq);
          CHECK(lowest >= -1e-12);
          CHECK(mean <= 3.0 * seq);
          if (flush == 1) through = std::max(mean, seq);
          else CHECK(mean <= (flush == 256 ? 1.75 : 1.5) * through);
        }
      }
    }
    }
  }
}

TEST_CASE("Mem-SGD on w8a (normalized) reaches the paper's Figure-2 accuracy in 5 epochs") {
  if (!test::HaveSharedData("w8a")) {
    MESSAGE("../shared/data/w8a not present: skipped");
    return;
  }
  auto data = ReadLibsvm(test::SharedData("w8a"));
  data.NormalizeRows();
  const Objective obj{Loss::kLogistic, Regularizer::kL2, 1.0 / data.NumRows()};
  const double fstar = ComputeOptimum(obj, data).fstar;
  auto run = [&](const std::string& method, const std::string& comp, bool memory) {
    TrainConfig c;
    c.method = MethodFromName(method);
    c.compressor = CompressorSpec::FromName(comp, 1, false, 4);
    c.memory = memory;
    c.objective = obj;
    c.fstar = fstar;
    c.epochs = 5;
    return Train(c, data).trace.back().suboptimality / fstar;
  };
  // Relative suboptimality: the paper's epsilon runs end within ~1e-3 of the optimum (Table in
  // ../shared/papers/mem-sgd.md section 6); memsgd reaches ~3e-4 here.
  const double top = run("mem-sgd", "top", true), rand = run("mem-sgd", "rand", true);
  const double sgd = run("sgd", "top", true), nomem = run("mem-sgd", "top", false);
  CHECK(top < 1e-3);
  CHECK(rand < 1e-3);
  CHECK(sgd < 1e-3);
  CHECK(nomem > 10 * top);  // the no-memory ablation does not converge (paper: 2.5 vs 0.28)
}

TEST_CASE("No checkpoint evaluation (quiet CLI runs): the same iterate, one final trace point") {
  auto data = test::RandomSparse(500, 40, 6, test::Seed() + 41);
  for (const char* method : {"sgd", "mem-sgd"}) {
    CAPTURE(method);
    auto cfg = BaseConfig(1.0 / 500);
    cfg.method = MethodFromName(method);
    cfg.averaging = AveragingKind::kFinal;  // the lazy x = s v SGD form: folded at segment ends
    const TrainResult full = Train(cfg, data);
    cfg.evaluate = false;
    const TrainResult quiet = Train(cfg, data);
    CHECK(full.trace.size() > 2);
    REQUIRE(quiet.trace.size() == 1);
    CHECK(quiet.trace.back().samples == full.trace.back().samples);
    CHECK(test::SameBits(quiet.trace.back().loss, full.trace.back().loss));
    CHECK(test::SameBytes<double>(quiet.x, full.x));
  }
}
