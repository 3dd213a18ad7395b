// The EF21-SGDM paper's n-worker methods (src/core/engine/error_feedback.cpp): reductions to known
// methods, bit accounting, the Figure 1 behaviour and thread-count independence.
#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <thread>
#include <string>
#include <vector>

#include "memsgd/checkpoint.hpp"
#include "memsgd/ef_checkpoint.hpp"
#include "memsgd/error_feedback.hpp"
#include "memsgd/train.hpp"
#include "support.hpp"

using namespace memsgd;

namespace {

// A small sparse binary problem: n rows, d features, about `density` nonzeros per row, labels
// from a random hyperplane with 10 % flipped (so the loss has no zero-gradient trivial optimum).
Dataset Synthetic(Offset n, Index d, double density, std::uint64_t seed) {
  Rng rng(seed, 77);
  std::vector<double> w(static_cast<std::size_t>(d));
  for (auto& v : w) v = rng.Normal();
  std::vector<Offset> ptr{0};
  std::vector<Index> idx;
  std::vector<Value> val;
  std::vector<double> labels;
  for (Offset i = 0; i < n; ++i) {
    double z = 0;
    for (Index j = 0; j < d; ++j) {
      if (rng.Uniform() < density || j == static_cast<Index>(i % d)) {
        const auto v = static_cast<Value>(rng.Uniform() * 2 - 1);
        idx.push_back(j);
        val.push_back(v);
        z += w[static_cast<std::size_t>(j)] * v;
      }
    }
    ptr.push_back(static_cast<Offset>(idx.size()));
    double y = z >= 0 ? 1.0 : -1.0;
    if (rng.Uniform() < 0.1) y = -y;
    labels.push_back(y);
  }
  return Dataset::FromCsr(d, std::move(ptr), std::move(idx), std::move(val), std::move(labels));
}

TrainConfig EfConfig(Method m) {
  TrainConfig c;
  c.method = m;
  c.objective = Objective::FromName("nonconvex-logistic", 0.1);
  c.schedule = ScheduleKind::kConstant;
  c.gamma = 0.2;
  c.averaging = AveragingKind::kFinal;
  c.workers = 4;
  c.batch = 1;
  c.eta = 0.1;
  c.epochs = 3;
  c.seed = test::Seed();
  c.init_std = 0.5;
  c.compressor = CompressorSpec::FromName("top", 2, false, 4);
  return c;
}

double RelDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t j = 0; j < a.size(); ++j) {
    num = std::max(num, std::abs(a[j] - b[j]));
    den = std::max(den, std::abs(b[j]));
  }
  return num / std::max(den, 1e-300);
}

}  // namespace

TEST_CASE("EF: shards follow the EF21 code (contiguous, remainder to the last worker)") {
  const Dataset ds = Synthetic(203, 7, 0.3, 5);
  const auto s = ef::SplitRows(ds, 4, SplitKind::kContiguous, 1);
  REQUIRE(s.size() == 4);
  CHECK(s[0].size() == 50);
  CHECK(s[3].size() == 53);
  CHECK(s[1].front() == 50);
  CHECK(s[3].back() == 202);
  for (auto kind : {SplitKind::kRandom, SplitKind::kByLabel}) {
    const auto r = ef::SplitRows(ds, 4, kind, 1);
    std::vector<int> seen(203, 0);
    for (const auto& sh : r)
      for (Offset row : sh) ++seen[static_cast<std::size_t>(row)];
    for (int v : seen) CHECK(v == 1);
  }
  // by-label: the negatives fill the first shards.
  const auto bl = ef::SplitRows(ds, 4, SplitKind::kByLabel, 1);
  CHECK(ds.Label(bl[0].front()) < 0);
  CHECK(ds.Label(bl[3].back()) > 0);
}

TEST_CASE("EF: bit counts match hand-computed values") {
  CHECK(ef::IndexBits(1) == 0);
  CHECK(ef::IndexBits(2) == 1);
  CHECK(ef::IndexBits(3) == 2);
  CHECK(ef::IndexBits(123) == 7);
  CHECK(ef::IndexBits(128) == 7);
  CHECK(ef::IndexBits(129) == 8);
  const auto top1 = CompressorSpec::FromName("top", 1, false, 4);
  CHECK(ef::MessageBits(top1, 123, 1).values == 32);
  CHECK(ef::MessageBits(top1, 123, 1).indexed == 39);  // a9a: 32 + 7
  CHECK(ef::MessageBits(top1, 123, 6).indexed == 6 * 39);
  CHECK(ef::MessageBits(top1, 10, 9).indexed == 320);  // capped at the dense 32 d
  const auto id = CompressorSpec::FromName("identity", 1, false, 4);
  CHECK(ef::MessageBits(id, 10, 3).values == 320);

  // A run: d = 10, 3 workers, top-2, R rounds. Uplink per worker: 32 d (g_i^0) + R (2 values);
  // with indices each value costs 32 + ceil(log2 10) = 36 bits. Downlink: dense 32 d per round.
  const Dataset ds = Synthetic(60, 10, 0.3, 9);
  TrainConfig c = EfConfig(Method::kEf21Sgdm);
  c.workers = 3;
  c.epochs = 2;  // 20 rounds per epoch (60 rows / 3 workers)
  std::vector<TracePoint> trace;
  const auto det = ef::TrainErrorFeedbackDetailed(c, ds, [&](const TracePoint& p) { trace.push_back(p); });
  const double R = 40;
  CHECK(det.rounds_per_epoch == 20);
  CHECK(det.comm.rounds == 40);
  CHECK(det.comm.uplink_values == 320 + R * 64);
  CHECK(det.comm.uplink_indexed == 320 + R * 72);
  CHECK(det.comm.downlink_dense == R * 320);
  CHECK(det.comm.downlink_sparse <= 320 + R * 6 * 36);
  CHECK(det.comm.downlink_sparse >= 320 + R * 2 * 36);
  REQUIRE(!trace.empty());
  CHECK(trace.front().bits == 320);
  CHECK(trace.back().bits == det.comm.uplink_indexed);
  CHECK(trace.back().samples == 3 * (1 + 40));  // g_i^0 from one sample each, then 1 a round

  // EF14 sends nothing before its first round.
  c.method = Method::kEf14;
  const auto e14 = ef::TrainErrorFeedbackDetailed(c, ds, {});
  CHECK(e14.comm.uplink_values == R * 64);
  CHECK(e14.comm.uplink_indexed == R * 72);
}

TEST_CASE("EF: EF21 with the identity compressor is gradient descent") {
  const Dataset ds = Synthetic(203, 9, 0.4, 3);
  TrainConfig c = EfConfig(Method::kEf21);
  c.compressor = CompressorSpec::FromName("identity", 1, false, 4);
  c.epochs = 25;  // ef21: one round per epoch
  c.gamma = 0.5;
  c.wire = Wire::kFloat64;  // float32 messages would round the gradient differences
  const TrainResult r = Train(c, ds);
  REQUIRE(r.status == TrainStatus::kOk);

  // Plain GD from the same x0 (the engine's init stream).
  std::vector<double> x(9);
  Rng init(c.seed, ef::kInitStream);
  for (auto& v : x) v = c.init_std * init.Normal();
  std::vector<double> g(9);
  for (int t = 0; t < 25; ++t) {
    FullLossGrad(c.objective, ds, x, g);
    for (std::size_t j = 0; j < x.size(); ++j) x[j] -= 0.5 * g[j];
  }
  // Equal up to rounding: EF21 sums the shard gradients with weights m_i/N and keeps g as a
  // running sum of differences, GD sums all rows at once.
  CHECK(RelDiff(r.x, x) < 1e-12);
  CHECK(r.trace.back().grad_norm2 < r.trace.front().grad_norm2);
}

TEST_CASE("EF: EF21-SGDM and EF21-SGD2M with eta = 1 are EF21-SGD, bit for bit") {
  const Dataset ds = Synthetic(150, 12, 0.3, 4);
  for (const char* comp : {"top", "rand"}) {
    TrainConfig c = EfConfig(Method::kEf21Sgd);
    c.compressor = CompressorSpec::FromName(comp, 3, false, 4);
    c.batch = 2;
    c.eta = 1.0;
    const TrainResult base = Train(c, ds);
    for (Method m : {Method::kEf21Sgdm, Method::kEf21Sgd2m}) {
      c.method = m;
      const TrainResult r = Train(c, ds);
      CAPTURE(comp);
      CHECK(r.x == base.x);
      REQUIRE(r.trace.size() == base.trace.size());
      CHECK(r.trace.back().grad_norm2 == base.trace.back().grad_norm2);
    }
  }
}

TEST_CASE("EF: EF14 with one worker and batch 1 replays sequential Mem-SGD") {
  // Same x0 stream, same reshuffle stream and Fisher-Yates (worker 0's sampler is the Mem-SGD
  // shuffle stream), same compressor stream (worker 0), same order of floating-point operations
  // (sparse rows in index order, dense rows in the kernels' 16-lane order, the regulariser term
  // added after the data term).
  const Dataset sparse = Synthetic(120, 15, 0.3, 6);
  Dataset dense = sparse;
  dense.Densify();
  REQUIRE(dense.IsDense());
  auto check = [](const Dataset& ds, const char* obj, double lambda, const char* comp) {
    TrainConfig mem = EfConfig(Method::kMemSgd);
    mem.objective = Objective::FromName(obj, lambda);
    mem.compressor = CompressorSpec::FromName(comp, 2, false, 4);
    mem.threads = 0;
    mem.gamma = 0.05;
    mem.epochs = 4;
    mem.init_std = 0.01;
    TrainConfig ef14 = mem;
    ef14.wire = Wire::kFloat64;  // Mem-SGD's sent values are not rounded to float32
    ef14.method = Method::kEf14;
    ef14.workers = 1;
    ef14.batch = 1;
    const TrainResult a = Train(mem, ds);
    const TrainResult b = Train(ef14, ds);
    CAPTURE(std::string(comp));
    CAPTURE(std::string(obj));
    CAPTURE(ds.IsDense());
    CHECK(a.x == b.x);
    REQUIRE(a.trace.size() == b.trace.size());
    for (std::size_t i = 0; i < a.trace.size(); ++i) CHECK(a.trace[i].loss == b.trace[i].loss);
  };
  for (const Dataset* ds : {&sparse, static_cast<const Dataset*>(&dense)}) {
    for (const char* comp : {"top", "rand"}) {
      check(*ds, "nonconvex-logistic", 0.1, comp);
      check(*ds, "logistic", 0.01, comp);
    }
  }
}

TEST_CASE("EF: a run does not depend on the thread count") {
  const Dataset ds = Synthetic(300, 20, 0.2, 8);
  for (Method m : {Method::kEf14, Method::kEf21Sgdm, Method::kEf21Sgd2m, Method::kSgdCompressed}) {
    for (const char* comp : {"top", "rand"}) {
      TrainConfig c = EfConfig(m);
      c.compressor = CompressorSpec::FromName(comp, 2, false, 4);
      c.workers = 7;
      c.batch = 3;
      c.split = SplitKind::kRandom;
      c.threads = 0;
      const TrainResult ref = Train(c, ds);
      for (int p : {1, 2, 3}) {
        c.threads = p;
        const TrainResult r = Train(c, ds);
        CAPTURE(MethodName(m));
        CAPTURE(comp);
        CAPTURE(p);
        CHECK(r.x == ref.x);
        CHECK(r.trace.back().grad_norm2 == ref.trace.back().grad_norm2);
      }
    }
  }
}

TEST_CASE("EF: divergence is reported with a hint") {
  const Dataset ds = Synthetic(100, 8, 0.5, 2);
  TrainConfig c = EfConfig(Method::kSgdCompressed);
  c.objective = Objective::FromName("least-squares", 0);
  c.gamma = 1e6;
  c.epochs = 20;
  const TrainResult r = Train(c, ds);
  CHECK(r.status == TrainStatus::kDiverged);
  CHECK(r.message.find("--gamma") != std::string::npos);
}

TEST_CASE("EF: the paper's Figure 1 (1/2|x|^2 in R^2, Top-1, batch 1)") {
  // gamma = eta = 1e-3, T = 1e4, x0 = (0, -0.01): EF21-SGD moves away from the optimum and
  // stays there whatever n; EF21-SGDM converges. Noise: see ToyNoise::kSkewedCorrelated.
  auto run = [](Method m, int n, ef::ToyNoise noise, std::uint64_t seed) {
    ef::QuadraticToyOracle oracle(2, n, 1.0, noise, seed);
    ef::Options o;
    o.method = m;
    o.compressor = CompressorSpec::FromName("top", 1, false, 4);
    o.schedule.kind = ScheduleKind::kConstant;
    o.schedule.gamma = 1e-3;
    o.eta = 1e-3;
    o.rounds = 10000;
    o.seed = seed;
    const auto r = ef::Run(o, oracle, {0.0, -0.01});
    return r.x[0] * r.x[0] + r.x[1] * r.x[1];  // |grad f(x)|^2 = |x|^2
  };
  const std::uint64_t seed = 2023;
  for (int n : {1, 10, 100}) {
    const double sgd = run(Method::kEf21Sgd, n, ef::ToyNoise::kSkewedCorrelated, seed);
    const double sgdm = run(Method::kEf21Sgdm, n, ef::ToyNoise::kSkewedCorrelated, seed);
    CAPTURE(n);
    CAPTURE(sgd);
    CAPTURE(sgdm);
    CHECK(sgd > 10 * 1e-4);   // |grad f(x0)|^2 = 1e-4: EF21-SGD moved away from the optimum
    CHECK(sgdm * 10 < sgd);
  }
}

TEST_CASE("EF: the lazy (sparse) form gives the dense form's iterates") {
  // d large against the rows' nnz; lambda = 0; rand-k (plain and scaled) and ultra-sparse.
  const Dataset ds = Synthetic(240, 60, 0.05, 11);
  struct Case {
    const char* comp;
    double k;
    bool scaled;
  };
  for (const Case cs : {Case{"rand", 3, false}, Case{"rand", 4, true}, Case{"rand", 0.5, false},
                        Case{"top", 1, false}, Case{"top", 4, false}}) {
    for (Method m : {Method::kEf14, Method::kSgdCompressed, Method::kEf21Sgd, Method::kEf21Sgdm,
                     Method::kEf21Sgd2m}) {
      for (double eta : {0.1, 0.6, 1.0}) {
        const bool momentum = m == Method::kEf21Sgdm || m == Method::kEf21Sgd2m;
        if (eta != 0.1 && !momentum) continue;
        if (std::string(cs.comp) == "top" && momentum && eta < 1) continue;  // dense only
        TrainConfig c = EfConfig(m);
        c.objective = Objective::FromName("logistic", 0);
        c.compressor = CompressorSpec::FromName(cs.comp, cs.k, cs.scaled, 4);
        c.gamma = cs.scaled ? 0.02 : 0.1;
        c.eta = eta;  // 0.6: the scalar of v_i = s ~v_i underflows and is renormalised
        c.workers = 5;
        c.batch = 2;
        c.epochs = 20;  // 480 rounds
        c.threads = 2;
        // Exact values: the EF21 forms' rounding differences must not be amplified by a float32
        // rounding that falls differently (and scaled rand-k with EF14 grows e_i by (1 - d/k)
        // per pick, past float32's range).
        c.wire = Wire::kFloat64;
        CHECK(ef::LazyApplicable(c, ds));
        const auto dense = ef::TrainErrorFeedbackDetailed(c, ds, {}, ef::InitKind::kStochastic, false);
        const auto lazy = ef::TrainErrorFeedbackDetailed(c, ds, {}, ef::InitKind::kStochastic, true);
        CAPTURE(MethodName(m));
        CAPTURE(cs.comp);
        CAPTURE(cs.k);
        CAPTURE(eta);
        CHECK(!dense.lazy);
        CHECK(lazy.lazy);
        REQUIRE(dense.result.status == TrainStatus::kOk);
        // EF14 and compressed SGD do the same arithmetic; the EF21 methods round x (and v, u)
        // differently.
        if (m == Method::kEf14 || m == Method::kSgdCompressed) {
          CHECK(lazy.result.x == dense.result.x);
        } else {
          CHECK(RelDiff(lazy.result.x, dense.result.x) < 1e-12);
        }
        CHECK(lazy.comm.uplink_indexed == dense.comm.uplink_indexed);
        CHECK(lazy.comm.downlink_sparse == dense.comm.downlink_sparse);
        REQUIRE(lazy.result.trace.size() == dense.result.trace.size());
        CHECK(lazy.result.trace.back().loss ==
              doctest::Approx(dense.result.trace.back().loss).epsilon(1e-12));
      }
    }
  }
  // lambda > 0, top-k with momentum or dense data: the dense form.
  TrainConfig c = EfConfig(Method::kEf21Sgdm);
  CHECK(!ef::LazyApplicable(c, ds));
  c.objective = Objective::FromName("logistic", 0);
  CHECK(!ef::LazyApplicable(c, ds));  // top-k, eta = 0.1
  c.compressor = CompressorSpec::FromName("rand", 2, false, 4);
  CHECK(ef::LazyApplicable(c, ds));
  Dataset dense = ds;
  dense.Densify();
  CHECK(!ef::LazyApplicable(c, dense));
}

TEST_CASE("EF: the tournament-tree top-k picks TopKReference's set") {
  // Top-k on sparse data, lambda = 0, many exact ties (values +-1, x0 = 0): the lazy form's
  // selections must be the dense selector's, or the iterates would differ. (Not EF21-SGD: its
  // lazy x rounds differently, which may flip an exact tie; the previous test covers it on data
  // without exact ties.)
  std::vector<Offset> ptr{0};
  std::vector<Index> idx;
  std::vector<Value> val;
  std::vector<double> labels;
  Rng rng(3, 3);
  for (Offset i = 0; i < 200; ++i) {
    for (Index j = 0; j < 50; ++j) {
      if (rng.Uniform() < 0.06) {
        idx.push_back(j);
        val.push_back(rng.Uniform() < 0.5 ? 1.0f : -1.0f);  // ties everywhere
      }
    }
    ptr.push_back(static_cast<Offset>(idx.size()));
    labels.push_back(rng.Uniform() < 0.5 ? -1.0 : 1.0);
  }
  const Dataset ds = Dataset::FromCsr(50, ptr, idx, val, labels);
  for (Method m : {Method::kEf14, Method::kSgdCompressed}) {
    for (double k : {1.0, 3.0, 7.0}) {
      TrainConfig c = EfConfig(m);
      c.objective = Objective::FromName("least-squares", 0);
      c.compressor = CompressorSpec::FromName("top", k, false, 4);
      c.gamma = 0.05;
      c.workers = 3;
      c.epochs = 10;
      c.init_std = 0;  // x0 = 0: exact ties in the first rounds
      REQUIRE(ef::LazyApplicable(c, ds));
      const auto dense = ef::TrainErrorFeedbackDetailed(c, ds, {}, ef::InitKind::kStochastic, false);
      const auto lazy = ef::TrainErrorFeedbackDetailed(c, ds, {}, ef::InitKind::kStochastic, true);
      CAPTURE(MethodName(m));
      CAPTURE(k);
      CHECK(lazy.lazy);
      CHECK(lazy.result.x == dense.result.x);
      CHECK(lazy.comm.downlink_sparse == dense.comm.downlink_sparse);
    }
  }
}

TEST_CASE("EF: --wire f32 sends float32 values and keeps the rounding in the worker's state") {
  const Dataset ds = Synthetic(200, 30, 0.2, 12);
  for (Method m : {Method::kEf14, Method::kEf21Sgdm, Method::kSgdCompressed}) {
    TrainConfig c = EfConfig(m);
    c.compressor = CompressorSpec::FromName("top", 3, false, 4);
    c.workers = 3;
    c.wire = Wire::kFloat64;
    const auto f64 = ef::TrainErrorFeedbackDetailed(c, ds, {});
    c.wire = Wire::kFloat32;
    const auto f32 = ef::TrainErrorFeedbackDetailed(c, ds, {});
    CAPTURE(MethodName(m));
    // 64 against 32 bits per value; the indexed count adds ceil(log2 30) = 5 bits per index.
    CHECK(f64.comm.uplink_values == doctest::Approx(2 * f32.comm.uplink_values));
    CHECK(f32.comm.uplink_indexed - f32.comm.uplink_values ==
          doctest::Approx(f64.comm.uplink_indexed - f64.comm.uplink_values));
    // Rounding each sent value to float (relative 6e-8) moves the iterates by about that much
    // (error feedback re-sends what was lost), not more.
    const double diff = RelDiff(f32.result.x, f64.result.x);
    CHECK(diff > 0);
    CHECK(diff < 1e-5);
  }
  // EF14 with one worker, 2 rounds of top-2: x moves on at most the 4 coordinates sent.
  TrainConfig c = EfConfig(Method::kEf14);
  c.workers = 1;
  c.epochs = 0.01;  // 2 rounds
  c.compressor = CompressorSpec::FromName("top", 2, false, 4);
  c.init_std = 0.3;
  const auto r = ef::TrainErrorFeedbackDetailed(c, ds, {});
  std::vector<double> x0(30);
  Rng init(c.seed, ef::kInitStream);
  for (auto& v : x0) v = c.init_std * init.Normal();
  int moved = 0;
  for (std::size_t j = 0; j < x0.size(); ++j) {
    if (r.result.x[j] == x0[j]) continue;
    ++moved;
  }
  CHECK(moved >= 1);
  CHECK(moved <= 4);
}

namespace {

// The transport seam without MPI: n "processes" are n threads of this test, one worker each,
// meeting at a barrier for every collective (as ranks meet in MPI calls). Runs under the
// sanitizers, which the MPI tests (tests/mpi/) do not.
struct Hub {
  explicit Hub(int ranks)
      : n(ranks), bar(ranks), copies{std::vector<SparseUpdate>(ranks), std::vector<SparseUpdate>(ranks)},
        blocks(ranks), sums(ranks), flags(ranks) {}
  int n;
  std::barrier<> bar;
  std::vector<SparseUpdate> copies[2];  // round parity: a slow thread may still read the last round
  std::vector<std::vector<double>> blocks, sums;
  std::vector<int> flags;
  std::vector<std::string> parts = std::vector<std::string>(static_cast<std::size_t>(n));
};

class ThreadTransport final : public ef::Transport {
 public:
  ThreadTransport(Hub& hub, int rank) : hub_(hub), rank_(rank) {}
  int Workers() const override { return hub_.n; }
  int First() const override { return rank_; }
  int Local() const override { return 1; }
  void Exchange(std::span<const SparseUpdate* const> local,
                std::vector<const SparseUpdate*>& all) override {
    auto& mine = hub_.copies[parity_][static_cast<std::size_t>(rank_)];
    mine = *local[0];
    hub_.bar.arrive_and_wait();
    all.clear();
    for (auto& m : hub_.copies[parity_]) all.push_back(&m);
    parity_ ^= 1;
  }
  void Allgather(std::span<const double> local, std::span<double> out, bool) override {
    hub_.blocks[static_cast<std::size_t>(rank_)].assign(local.begin(), local.end());
    hub_.bar.arrive_and_wait();
    for (int r = 0; r < hub_.n; ++r)
      std::copy(hub_.blocks[static_cast<std::size_t>(r)].begin(),
                hub_.blocks[static_cast<std::size_t>(r)].end(), out.begin() + r * local.size());
    hub_.bar.arrive_and_wait();
  }
  void Sum(std::span<double> v) override {
    hub_.sums[static_cast<std::size_t>(rank_)].assign(v.begin(), v.end());
    hub_.bar.arrive_and_wait();
    for (std::size_t j = 0; j < v.size(); ++j) {
      double s = 0;
      for (int r = 0; r < hub_.n; ++r) s += hub_.sums[static_cast<std::size_t>(r)][j];
      v[j] = s;
    }
    hub_.bar.arrive_and_wait();
  }
  bool Any(bool flag) override {
    hub_.flags[static_cast<std::size_t>(rank_)] = flag;
    hub_.bar.arrive_and_wait();
    bool any = false;
    for (int f : hub_.flags) any = any || f;
    hub_.bar.arrive_and_wait();
    return any;
  }
  std::vector<std::string> Gather(std::string mine) override {
    hub_.parts[static_cast<std::size_t>(rank_)] = std::move(mine);
    hub_.bar.arrive_and_wait();
    std::vector<std::string> all;
    if (rank_ == 0) all = hub_.parts;
    hub_.bar.arrive_and_wait();
    return all;
  }

 private:
  Hub& hub_;
  int rank_;
  int parity_ = 0;
};

// c over `procs` thread "processes", each holding only its contiguous shard of ds (as
// memsgd-mpi's ranks do); every process's details.
std::vector<ef::TrainDetails> TrainSpread(const TrainConfig& c, const Dataset& ds, int procs) {
  const auto shards = ef::SplitRows(ds, procs, SplitKind::kContiguous, c.seed);
  Hub hub(procs);
  std::vector<ef::TrainDetails> out(static_cast<std::size_t>(procs));
  std::vector<std::thread> threads;
  for (int r = 0; r < procs; ++r) {
    threads.emplace_back([&, r] {
      const Dataset local = ds.Rows(shards[static_cast<std::size_t>(r)]);
      ThreadTransport tr(hub, r);
      ef::Distributed dist;
      dist.transport = &tr;
      dist.total_rows = ds.NumRows();
      dist.evaluate = [&](std::span<const double> x) { return Evaluate(c.objective, ds, x); };
      out[static_cast<std::size_t>(r)] =
          ef::TrainErrorFeedbackDetailed(c, local, {}, ef::InitKind::kStochastic, true, &dist);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace

TEST_CASE("EF: workers spread over processes (a transport) give the in-process iterates") {
  // Each "process" holds only its contiguous shard, as memsgd-mpi's ranks do.
  const Dataset ds = Synthetic(230, 40, 0.1, 21);
  for (Method m : {Method::kEf14, Method::kEf21, Method::kEf21Sgdm, Method::kSgdCompressed}) {
    for (const char* comp : {"top", "rand"}) {
      for (double lambda : {0.0, 0.05}) {  // lambda 0 with rand-k: the lazy form
        TrainConfig c = EfConfig(m);
        c.objective = Objective::FromName("logistic", lambda);
        c.compressor = CompressorSpec::FromName(comp, 3, false, 4);
        c.workers = 3;
        c.batch = 2;
        c.epochs = 2;
        c.threads = 0;
        const auto ref = ef::TrainErrorFeedbackDetailed(c, ds, {});
        const auto out = TrainSpread(c, ds, 3);
        CAPTURE(MethodName(m));
        CAPTURE(comp);
        CAPTURE(lambda);
        for (const auto& o : out) {
          CHECK(o.lazy == ref.lazy);
          CHECK(o.result.x == ref.result.x);
          CHECK(o.result.samples == ref.result.samples);
          CHECK(o.comm.uplink_indexed == ref.comm.uplink_indexed);
          CHECK(o.comm.downlink_sparse == ref.comm.downlink_sparse);
          REQUIRE(o.result.trace.size() == ref.result.trace.size());
          CHECK(o.result.trace.back().loss == ref.result.trace.back().loss);
        }
      }
    }
  }
}

// ---- checkpoints (include/memsgd/ef_checkpoint.hpp) -----------------------------------------

namespace {

// Logistic loss with lambda, compressor comp with k coordinates, `workers` workers.
TrainConfig LogisticConfig(Method m, const char* comp, int k, double lambda, int workers) {
  TrainConfig c = EfConfig(m);
  c.objective = Objective::FromName("logistic", lambda);
  c.compressor = CompressorSpec::FromName(comp, k, false, 4);
  c.workers = workers;
  return c;
}

// The trace without its seconds column (the only one a resumed run may change).
void CheckSameTrace(const std::vector<TracePoint>& a, const std::vector<TracePoint>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(a[i].samples == b[i].samples);
    CHECK(a[i].epoch == b[i].epoch);
    CHECK(a[i].loss == b[i].loss);
    CHECK(a[i].grad_norm2 == b[i].grad_norm2);
    CHECK(a[i].train_accuracy == b[i].train_accuracy);
    CHECK(a[i].bits == b[i].bits);
  }
}

void CheckSameRun(const ef::TrainDetails& a, const ef::TrainDetails& b) {
  CHECK(a.result.x == b.result.x);
  CHECK(a.result.samples == b.result.samples);
  CHECK(a.comm.uplink_values == b.comm.uplink_values);
  CHECK(a.comm.uplink_indexed == b.comm.uplink_indexed);
  CHECK(a.comm.downlink_dense == b.comm.downlink_dense);
  CHECK(a.comm.downlink_sparse == b.comm.downlink_sparse);
  CHECK(a.comm.rounds == b.comm.rounds);
  CheckSameTrace(a.result.trace, b.result.trace);
}

CheckpointError::Kind ResumeErrorKind(const TrainConfig& c, const Dataset& ds, std::string* what) {
  try {
    (void)ef::TrainErrorFeedbackDetailed(c, ds, {});
  } catch (const CheckpointError& e) {
    *what = e.what();
    return e.GetKind();
  }
  *what = "no error";
  return CheckpointError::Kind::kUnreadable;
}

}  // namespace

TEST_CASE("EF checkpoints: a run resumed from its last checkpoint ends bit for bit as the run never stopped") {
  const Dataset ds = Synthetic(230, 40, 0.1, 23);
  test::Scratch tmp;
  const std::string ck = tmp("ck");
  for (Method m : {Method::kEf14, Method::kEf21, Method::kEf21Sgd, Method::kEf21Sgdm,
                   Method::kEf21Sgd2m, Method::kSgdCompressed}) {
    for (const char* comp : {"top", "rand"}) {
      for (double lambda : {0.0, 0.05}) {  // lambda 0 with rand-k (and top-k without momentum): lazy
        TrainConfig c = LogisticConfig(m, comp, 3, lambda, 3);
        c.batch = 2;
        c.epochs = 3;
        c.checkpoint_path = ck;
        c.checkpoint_every = 100;  // samples: several saves, the last one well before the end
        std::filesystem::remove(ck);
        const auto full = ef::TrainErrorFeedbackDetailed(c, ds, {});
        CAPTURE(MethodName(m));
        CAPTURE(comp);
        CAPTURE(lambda);
        REQUIRE(full.result.checkpoints_written >= 2);
        const ef::RunState saved = ef::ReadRunState(ck);
        CHECK(saved.round > 0);
        CHECK(saved.round < saved.rounds);
        CHECK(saved.workers.size() == 3);

        TrainConfig r = c;
        r.checkpoint_path.clear();
        r.resume_path = ck;
        r.threads = 2;  // the thread count may change: the workers' arithmetic does not
        const auto resumed = ef::TrainErrorFeedbackDetailed(r, ds, {});
        CHECK(resumed.lazy == full.lazy);
        CHECK(resumed.result.resumed_from > 0);
        CHECK(resumed.result.resumed_from < full.result.samples);
        CheckSameRun(resumed, full);
      }
    }
  }
}

TEST_CASE("EF checkpoints: an interrupted run saves its state and the resumed run finishes it exactly") {
  const Dataset ds = Synthetic(200, 30, 0.15, 24);
  test::Scratch tmp;
  for (Method m : {Method::kEf14, Method::kEf21Sgdm}) {
    for (double lambda : {0.0, 0.05}) {
      TrainConfig c = LogisticConfig(m, "rand", 4, lambda, 2);
      c.epochs = 2;
      const auto full = ef::TrainErrorFeedbackDetailed(c, ds, {});

      // Stopped after the 4th trace point (as Ctrl-C does: the flag is seen at the next round).
      std::atomic<bool> stop{false};
      int points = 0;
      TrainConfig s = c;
      s.checkpoint_path = tmp("ck");
      s.checkpoint_every = 1'000'000;  // only the interrupt saves
      s.stop = &stop;
      const auto cut = ef::TrainErrorFeedbackDetailed(s, ds, [&](const TracePoint&) {
        if (++points == 4) stop = true;
      });
      CAPTURE(MethodName(m));
      CAPTURE(lambda);
      REQUIRE(cut.result.status == TrainStatus::kInterrupted);
      CHECK(cut.result.checkpoints_written == 1);
      CHECK(cut.result.samples < full.result.samples);

      TrainConfig r = c;
      r.resume_path = s.checkpoint_path;
      const auto resumed = ef::TrainErrorFeedbackDetailed(r, ds, {});
      CHECK(resumed.result.status == TrainStatus::kOk);
      CHECK(resumed.result.resumed_from == cut.result.samples);
      CheckSameRun(resumed, full);
    }
  }
}

TEST_CASE("EF checkpoints: another worker count, options, data or kind of checkpoint is refused clearly") {
  const Dataset ds = Synthetic(150, 20, 0.2, 25);
  test::Scratch tmp;
  TrainConfig c = EfConfig(Method::kEf21Sgdm);
  c.workers = 3;
  c.epochs = 2;
  c.checkpoint_path = tmp("ck");
  c.checkpoint_every = 50;
  REQUIRE(ef::TrainErrorFeedbackDetailed(c, ds, {}).result.checkpoints_written >= 1);
  TrainConfig r = c;
  r.checkpoint_path.clear();
  r.resume_path = c.checkpoint_path;
  std::string what;

  TrainConfig workers = r;
  workers.workers = 2;
  CHECK(ResumeErrorKind(workers, ds, &what) == CheckpointError::Kind::kMismatch);
  CHECK(what.find("3 workers; this run has 2") != std::string::npos);
  CHECK(what.find("--workers 3") != std::string::npos);

  TrainConfig seed = r;
  seed.seed += 1;
  CHECK(ResumeErrorKind(seed, ds, &what) == CheckpointError::Kind::kMismatch);
  CHECK(what.find("other options") != std::string::npos);
  TrainConfig eta = r;
  eta.eta = 0.2;
  CHECK(ResumeErrorKind(eta, ds, &what) == CheckpointError::Kind::kMismatch);

  // One value of one row changed: that row's worker refuses.
  std::vector<Offset> rows(static_cast<std::size_t>(ds.NumRows()));
  std::iota(rows.begin(), rows.end(), Offset{0});
  Dataset other = ds.Rows(rows);
  other.NormalizeRows();
  CHECK(ResumeErrorKind(r, other, &what) == CheckpointError::Kind::kMismatch);
  CHECK(what.find("other training data") != std::string::npos);

  // The other kind of checkpoint, either way round.
  TrainConfig mem;
  mem.method = Method::kMemSgd;
  mem.compressor = CompressorSpec::FromName("top", 2, false, 4);
  mem.objective = Objective::FromName("logistic", 0.01);
  mem.epochs = 2;
  mem.seed = test::Seed();
  mem.resume_path = c.checkpoint_path;
  try {
    (void)Train(mem, ds, {});
    FAIL("a Mem-SGD run resumed an EF checkpoint");
  } catch (const CheckpointError& e) {
    CHECK(e.GetKind() == CheckpointError::Kind::kMismatch);
    CHECK(std::string(e.what()).find("error-feedback") != std::string::npos);
  }
  mem.resume_path.clear();
  mem.checkpoint_path = tmp("mem-ck");
  mem.checkpoint_every = 50;
  REQUIRE(Train(mem, ds, {}).checkpoints_written >= 1);
  TrainConfig wrong = r;
  wrong.resume_path = mem.checkpoint_path;
  CHECK(ResumeErrorKind(wrong, ds, &what) == CheckpointError::Kind::kMismatch);
  CHECK(what.find("mem-sgd") != std::string::npos);

  // Damaged files: truncated, one byte flipped.
  const std::string bytes = ef::SerializeRunState(ef::ReadRunState(c.checkpoint_path));
  for (std::size_t cut : {std::size_t{3}, std::size_t{30}, bytes.size() / 2, bytes.size() - 1}) {
    CAPTURE(cut);
    CHECK_THROWS_AS(ef::ParseRunState(bytes.substr(0, cut), "ck"), CheckpointError);
  }
  std::string flipped = bytes;
  flipped[bytes.size() / 3] ^= 0x10;
  try {
    (void)ef::ParseRunState(flipped, "ck");
    FAIL("a flipped byte was accepted");
  } catch (const CheckpointError& e) {
    CHECK(e.GetKind() == CheckpointError::Kind::kCorrupt);
    CHECK(std::string(e.what()).find("checksum") != std::string::npos);
  }
  CHECK(ef::ParseRunState(bytes, "ck").x == ef::ReadRunState(c.checkpoint_path).x);
}

TEST_CASE("EF checkpoints: saved by workers spread over processes, resumed in one process, and back") {
  const Dataset ds = Synthetic(240, 40, 0.1, 26);
  test::Scratch tmp;
  for (Method m : {Method::kEf14, Method::kEf21Sgdm}) {
    for (double lambda : {0.0, 0.05}) {
      TrainConfig c = LogisticConfig(m, "rand", 3, lambda, 3);
      c.batch = 2;
      c.epochs = 2;
      c.threads = 0;
      const auto full = ef::TrainErrorFeedbackDetailed(c, ds, {});
      // c over 3 thread "processes": process 0's details (every process ends at the same x).
      auto spread = [&](const TrainConfig& cfg) {
        const auto out = TrainSpread(cfg, ds, 3);
        for (int p = 1; p < 3; ++p) CHECK(out[static_cast<std::size_t>(p)].result.x == out[0].result.x);
        return out[0];
      };
      CAPTURE(MethodName(m));
      CAPTURE(lambda);

      TrainConfig save = c;
      save.checkpoint_path = tmp("spread-ck");
      save.checkpoint_every = 120;
      const auto saved_run = spread(save);
      CHECK(saved_run.result.checkpoints_written >= 1);
      CheckSameRun(saved_run, full);  // saving changes nothing
      TrainConfig here = c;
      here.resume_path = save.checkpoint_path;
      CheckSameRun(ef::TrainErrorFeedbackDetailed(here, ds, {}), full);

      TrainConfig save_here = c;
      save_here.checkpoint_path = tmp("here-ck");
      save_here.checkpoint_every = 120;
      (void)ef::TrainErrorFeedbackDetailed(save_here, ds, {});
      TrainConfig there = c;
      there.resume_path = save_here.checkpoint_path;
      CheckSameRun(spread(there), full);
    }
  }
}

TEST_CASE("EF checkpoints: a lazy form's state resumes in the dense reference form (to rounding)") {
  const Dataset ds = Synthetic(200, 50, 0.08, 27);
  test::Scratch tmp;
  for (Method m : {Method::kEf21Sgdm, Method::kEf21Sgd2m}) {
    TrainConfig c = LogisticConfig(m, "rand", 4, 0.0, 2);
    c.epochs = 3;
    c.checkpoint_path = tmp("ck");
    c.checkpoint_every = 150;
    const auto lazy = ef::TrainErrorFeedbackDetailed(c, ds, {});
    REQUIRE(lazy.lazy);
    TrainConfig r = c;
    r.checkpoint_path.clear();
    r.resume_path = c.checkpoint_path;
    const auto dense = ef::TrainErrorFeedbackDetailed(r, ds, {}, ef::InitKind::kStochastic,
                                                      /*allow_lazy=*/false);
    CAPTURE(MethodName(m));
    CHECK_FALSE(dense.lazy);
    CHECK(RelDiff(dense.result.x, lazy.result.x) < 1e-11);
    CHECK(dense.result.samples == lazy.result.samples);
    CHECK(dense.comm.uplink_indexed == lazy.comm.uplink_indexed);
  }
}
