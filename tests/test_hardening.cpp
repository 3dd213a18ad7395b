// Hardening of the engine (library level): checkpoint files and exact resumption, stop at once on
// NaN/inf, option limits, the reader's up-front memory refusal. The command-line side (exit
// codes, bad-input corpus, signals) is in test_cli.cpp.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "memsgd/checkpoint.hpp"
#include "memsgd/error_feedback.hpp"
#include "memsgd/generate.hpp"
#include "memsgd/kernels/topk.hpp"
#include "memsgd/libsvm.hpp"
#include "memsgd/train.hpp"
#include "support.hpp"

using namespace memsgd;
namespace fs = std::filesystem;

namespace {

const Dataset& SmallData() {
  static const Dataset ds = [] {
    GenerateOptions g;
    g.like = Shape::kRcv1;
    g.rows = 600;
    g.features = 60;
    g.avg_nnz = 8;
    g.seed = test::Seed();
    return GenerateLike(g);
  }();
  return ds;
}

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool SameBits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

// Every column but the training time.
void CheckSameTrace(const std::vector<TracePoint>& a, const std::vector<TracePoint>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(a[i].samples == b[i].samples);
    CHECK(SameBits(a[i].epoch, b[i].epoch));
    CHECK(SameBits(a[i].loss, b[i].loss));
    CHECK(SameBits(a[i].suboptimality, b[i].suboptimality));
    CHECK(SameBits(a[i].grad_norm2, b[i].grad_norm2));
    CHECK(SameBits(a[i].test_accuracy, b[i].test_accuracy));
    CHECK(SameBits(a[i].train_accuracy, b[i].train_accuracy));
    CHECK(SameBits(a[i].bits, b[i].bits));
  }
}

void CheckSameRun(const TrainResult& a, const TrainResult& b) {
  CHECK(a.status == b.status);
  CHECK(a.samples == b.samples);
  CHECK(SameBits(a.x, b.x));
  CHECK(SameBits(a.x_last, b.x_last));
  REQUIRE(a.memories.size() == b.memories.size());
  for (std::size_t w = 0; w < a.memories.size(); ++w) CHECK(SameBits(a.memories[w], b.memories[w]));
  CheckSameTrace(a.trace, b.trace);
}

TrainConfig BaseConfig() {
  TrainConfig c;
  c.objective = Objective::FromName("logistic", 1.0 / 600);
  c.epochs = 3;
  c.eval_every = 100;
  c.seed = test::Seed();
  return c;
}

// Runs `c` with a stop request raised at the first trace point with samples >= stop_at, saving
// checkpoints to ck. The stop is seen at the next poll (every 256 steps of a worker).
TrainResult RunInterrupted(TrainConfig c, const std::string& ck, Offset stop_at,
                           const std::string& resume = "") {
  std::atomic<bool> stop{false};
  c.stop = &stop;
  c.checkpoint_path = ck;
  c.checkpoint_every = 250;
  c.resume_path = resume;
  return Train(c, SmallData(), [&](const TracePoint& p) {
    if (p.samples >= stop_at) stop = true;
  });
}

struct Variant {
  const char* name;
  TrainConfig config;
};

std::vector<Variant> SequentialVariants() {
  std::vector<Variant> v;
  TrainConfig c = BaseConfig();
  c.compressor = CompressorSpec::FromName("top", 2, false, 4);
  v.push_back({"top-2", c});
  c.compressor = CompressorSpec::FromName("rand", 3, false, 4);
  v.push_back({"rand-3", c});
  c.with_replacement = true;
  v.push_back({"rand-3 with replacement", c});
  c = BaseConfig();
  c.with_replacement = true;
  c.averaging = AveragingKind::kUniform;
  v.push_back({"top-1 with replacement, uniform averaging", c});
  c = BaseConfig();
  c.method = Method::kQsgd;
  v.push_back({"qsgd", c});
  c = BaseConfig();
  c.method = Method::kSgd;
  v.push_back({"sgd (weighted averaging)", c});
  c.averaging = AveragingKind::kFinal;  // the lazy x = scale * v kernel
  v.push_back({"sgd, final iterate (lazy form)", c});
  return v;
}

}  // namespace

TEST_CASE("Checkpoint: sequential resume is bit for bit the uninterrupted run") {
  test::Scratch tmp;
  for (const auto& var : SequentialVariants()) {
    CAPTURE(var.name);
    const TrainResult full = Train(var.config, SmallData());
    REQUIRE(full.status == TrainStatus::kOk);
    REQUIRE(full.samples == 1800);

    // Interrupted in the middle of a segment: the trace point at 700 raises the stop, the poll at
    // 768 samples sees it (segment [700, 800)).
    const std::string ck = tmp("mid.ck");
    const TrainResult cut = RunInterrupted(var.config, ck, 700);
    CHECK(cut.status == TrainStatus::kInterrupted);
    CHECK(cut.samples == 768);
    CHECK(cut.checkpoints_written == 3);  // at 300, 600 and the interrupt
    CHECK(cut.trace.back().samples == 768);  // the trace so far ends where it stopped
    const CheckpointState st = ReadCheckpoint(ck);
    CHECK(st.samples == 768);
    CHECK(st.segment_begin == 700);
    CHECK(st.workers.at(0).segment_steps == 68);
    CHECK(st.trace.back().samples == 700);  // the interrupt's own trace point is not saved
    // The lazy SGD kernel (x = scale * v) is saved unfolded (warning only: kernel selection may
    // change; exactness is what the comparison below checks).
    if (std::string(var.name).find("lazy") != std::string::npos) WARN(st.workers.at(0).scale < 1.0);
    // Mem-SGD/QSGD average lazily (avg = A u + B x): saved unfolded, A < 1 in mid-segment.
    if (var.config.method != Method::kSgd) CHECK(st.avg_a < 1.0);

    TrainConfig rc = var.config;
    rc.resume_path = ck;
    const TrainResult resumed = Train(rc, SmallData());
    CHECK(resumed.resumed_from == 768);
    CheckSameRun(full, resumed);

    // Twice interrupted (the second time from the resumed run), then finished.
    const std::string ck2 = tmp("twice.ck");
    const TrainResult cut1 = RunInterrupted(var.config, ck2, 300);
    CHECK(cut1.samples == 512);
    const TrainResult cut2 = RunInterrupted(var.config, ck2, 1300, ck2);
    CHECK(cut2.status == TrainStatus::kInterrupted);
    CHECK(cut2.samples == 1536);
    rc.resume_path = ck2;
    CheckSameRun(full, Train(rc, SmallData()));
    CHECK(tmp.Count(".tmp.") == 0);
  }
}

TEST_CASE("Checkpoint: a lazy SGD state (x = s v, A u + B v) resumed with the dense kernels is folded first") {
  test::Scratch tmp;
  TrainConfig c = BaseConfig();
  c.method = Method::kSgd;  // weighted averaging: the lazy kernel with the lazy average
  const TrainResult full = Train(c, SmallData());
  const std::string ck = tmp("mid.ck");
  RunInterrupted(c, ck, 700);
  const CheckpointState st = ReadCheckpoint(ck);
  REQUIRE(st.workers.at(0).scale < 1.0);
  REQUIRE(st.avg_a < 1.0);
  TrainConfig rc = c;
  rc.resume_path = ck;
  const TrainResult resumed = [&] {
    kernels::ScopedOptions dense(kernels::ParseKernelOptions("sgd=dense,avg=dense"));
    return Train(rc, SmallData());
  }();
  REQUIRE(resumed.status == TrainStatus::kOk);
  auto rel = [](const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0;
    for (std::size_t j = 0; j < a.size(); ++j)
      m = std::max(m, std::abs(a[j] - b[j]) / std::max(1e-300, std::abs(b[j])));
    return m;
  };
  CHECK(rel(resumed.x_last, full.x_last) <= 1e-10);
  CHECK(rel(resumed.x, full.x) <= 1e-10);
}

TEST_CASE("Checkpoint: a stop seen at a segment end saves a clean segment state") {
  test::Scratch tmp;
  TrainConfig c = BaseConfig();
  c.eval_every = 256;  // segment ends coincide with the 256-step polls
  const TrainResult full = Train(c, SmallData());
  const TrainResult cut = RunInterrupted(c, tmp("ck"), 512);
  CHECK(cut.status == TrainStatus::kInterrupted);
  CHECK(cut.samples == 768);
  const CheckpointState st = ReadCheckpoint(tmp("ck"));
  CHECK(st.segment_begin == 768);
  CHECK(st.workers.at(0).segment_steps == 0);
  c.resume_path = tmp("ck");
  CheckSameRun(full, Train(c, SmallData()));
}

TEST_CASE("Checkpoint: periodic saves, none after the end, cadence by --checkpoint-every") {
  test::Scratch tmp;
  TrainConfig c = BaseConfig();
  c.checkpoint_path = tmp("ck");
  c.checkpoint_every = 250;
  const TrainResult r = Train(c, SmallData());
  CHECK(r.status == TrainStatus::kOk);
  CHECK(r.checkpoints_written == 5);  // at 300, 600, 900, 1200, 1500 (segment ends, < 1800)
  CHECK(ReadCheckpoint(tmp("ck")).samples == 1500);
  c.checkpoint_every = 0;  // default: once per epoch
  CHECK(Train(c, SmallData()).checkpoints_written == 2);  // 600, 1200
  CHECK(tmp.Count(".tmp.") == 0);
  // Resuming the last periodic checkpoint ends as the uninterrupted run.
  TrainConfig plain = BaseConfig();
  TrainConfig rc = BaseConfig();
  rc.resume_path = tmp("ck");
  CheckSameRun(Train(plain, SmallData()), Train(rc, SmallData()));
}

TEST_CASE("Checkpoint: parallel runs restore the same state and end equivalently") {
  test::Scratch tmp;
  for (const bool replacement : {false, true}) {
    CAPTURE(replacement);
    TrainConfig c = BaseConfig();
    c.threads = 2;
    c.with_replacement = replacement;
    c.epochs = 4;
    const TrainResult full = Train(c, SmallData());
    REQUIRE(full.status == TrainStatus::kOk);

    const std::string ck = tmp("par.ck");
    const TrainResult cut = RunInterrupted(c, ck, 700);
    CHECK(cut.status == TrainStatus::kInterrupted);
    CHECK(cut.samples < 2400);
    const CheckpointState st = ReadCheckpoint(ck);
    CHECK(st.samples == cut.samples);
    CHECK(st.workers.size() == 2);
    CHECK(st.threads == 2);

    // Restored exactly: resuming with a stop already requested saves the same bytes again.
    {
      std::atomic<bool> stop{true};
      TrainConfig rc = c;
      rc.resume_path = ck;
      rc.checkpoint_path = tmp("again.ck");
      rc.stop = &stop;
      const TrainResult again = Train(rc, SmallData());
      CHECK(again.status == TrainStatus::kInterrupted);
      CHECK(again.samples == cut.samples);
      CHECK(test::ReadText(tmp("again.ck")) == test::ReadText(ck));
    }

    TrainConfig rc = c;
    rc.resume_path = ck;
    const TrainResult resumed = Train(rc, SmallData());
    CHECK(resumed.status == TrainStatus::kOk);
    CHECK(resumed.samples == full.samples);
    REQUIRE(resumed.trace.size() == full.trace.size());
    CheckSameTrace(st.trace, std::vector<TracePoint>(resumed.trace.begin(),
                                                     resumed.trace.begin() +
                                                         static_cast<std::ptrdiff_t>(st.trace.size())));
    // Statistically equivalent: the same final objective up to the run-to-run spread of parallel
    // runs (about 0.1% on this small problem after 4 epochs; 1% allowed).
    const double a = full.trace.back().loss, b = resumed.trace.back().loss;
    CHECK(std::fabs(a - b) <= 1e-2 * std::fabs(a));
    CHECK(resumed.trace.back().bits == full.trace.back().bits);
  }
}

TEST_CASE("Checkpoint: resuming another run is refused") {
  test::Scratch tmp;
  TrainConfig c = BaseConfig();
  (void)RunInterrupted(c, tmp("ck"), 700);
  auto kind_of = [&](const TrainConfig& rc, const Dataset& data) {
    try {
      (void)Train(rc, data);
    } catch (const CheckpointError& e) {
      return static_cast<int>(e.GetKind());
    }
    return -1;
  };
  const int mismatch = static_cast<int>(CheckpointError::Kind::kMismatch);
  TrainConfig rc = c;
  rc.resume_path = tmp("ck");
  rc.seed += 1;
  CHECK(kind_of(rc, SmallData()) == mismatch);
  rc = c;
  rc.resume_path = tmp("ck");
  rc.threads = 2;
  CHECK(kind_of(rc, SmallData()) == mismatch);
  rc = c;
  rc.resume_path = tmp("ck");
  rc.epochs = 4;
  CHECK(kind_of(rc, SmallData()) == mismatch);
  rc = c;
  rc.resume_path = tmp("ck");
  rc.compressor = CompressorSpec::FromName("top", 2, false, 4);
  CHECK(kind_of(rc, SmallData()) == mismatch);
  // Same shape, other content.
  GenerateOptions g;
  g.rows = 600;
  g.features = 60;
  g.avg_nnz = 8;
  g.seed = test::Seed() + 1;
  const Dataset other = GenerateLike(g);
  REQUIRE(other.NumRows() == SmallData().NumRows());
  rc = c;
  rc.resume_path = tmp("ck");
  CHECK(kind_of(rc, other) == mismatch);
  try {
    (void)Train(rc, other);
  } catch (const CheckpointError& e) {
    CHECK(std::string(e.what()).find("other training data") != std::string::npos);
  }
  // Options that do not change the iterates may differ.
  rc = c;
  rc.resume_path = tmp("ck");
  rc.fstar = 0.1;
  rc.checkpoint_every = 7;
  CHECK(Train(rc, SmallData()).status == TrainStatus::kOk);
}

TEST_CASE("Checkpoint: corrupt, truncated and foreign files are rejected cleanly") {
  test::Scratch tmp;
  (void)RunInterrupted(BaseConfig(), tmp("ck"), 700);
  const std::string good = test::ReadText(tmp("ck"));
  REQUIRE(good.size() > 100);
  CHECK_NOTHROW((void)ParseCheckpoint(good, "x"));
  auto kind_of = [](const std::string& bytes) {
    try {
      (void)ParseCheckpoint(bytes, "x");
    } catch (const CheckpointError& e) {
      return e.GetKind();
    }
    return CheckpointError::Kind::kUnreadable;  // (not thrown by ParseCheckpoint: a failure)
  };
  using K = CheckpointError::Kind;
  CHECK(kind_of("") == K::kCorrupt);
  CHECK(kind_of("MEMSGDCK") == K::kCorrupt);
  CHECK(kind_of("+1 1:0.5\n") == K::kCorrupt);
  for (std::size_t cut : {good.size() - 1, good.size() / 2, std::size_t{40}, std::size_t{20}})
    CHECK(kind_of(good.substr(0, cut)) == K::kCorrupt);
  CHECK(kind_of(good + "x") == K::kCorrupt);
  // Every single-byte change is detected (header fields, checksum, payload).
  for (std::size_t i = 0; i < good.size(); i += std::max<std::size_t>(1, good.size() / 97)) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    CAPTURE(i);
    CHECK(kind_of(bad) == K::kCorrupt);
  }
  std::string v2 = good;
  v2[8] = 9;
  CHECK_THROWS_WITH_AS(ParseCheckpoint(v2, "x"), doctest::Contains("format version 9"),
                       CheckpointError);

  // Well-formed files (valid checksum) with inconsistent content.
  CheckpointState st = ParseCheckpoint(good, "x");
  auto reject = [&](CheckpointState s, const char* what) {
    CAPTURE(what);
    CHECK(kind_of(SerializeCheckpoint(s)) == K::kCorrupt);
  };
  CheckpointState s = st;
  s.x.pop_back();
  reject(s, "short x");
  s = st;
  s.x.clear();
  s.avg.clear();
  reject(s, "empty x");
  s = st;
  s.perm[0] = s.perm[1];
  reject(s, "not a permutation");
  s = st;
  s.perm[0] = -1;
  reject(s, "permutation out of range");
  s = st;
  s.workers[0].steps += 1;
  reject(s, "steps do not add up");
  s = st;
  s.samples = s.total + 1;
  reject(s, "samples beyond the end");
  s = st;
  s.workers.push_back(s.workers[0]);
  reject(s, "worker count");
  s = st;
  s.workers[0].m.resize(3);
  reject(s, "memory length");
  CHECK(SerializeCheckpoint(st) == good);  // the round trip is exact

  // Files that cannot be read.
  CHECK_THROWS_WITH_AS(ReadCheckpoint(tmp("missing")), doctest::Contains("No such file"),
                       CheckpointError);
  CHECK_THROWS_WITH_AS(ReadCheckpoint(tmp.dir.string()), doctest::Contains("is a directory"),
                       CheckpointError);
  // Through Train: a corrupt file is an error before any training.
  test::WriteText(tmp("bad.ck"), good.substr(0, good.size() / 2));
  TrainConfig rc = BaseConfig();
  rc.resume_path = tmp("bad.ck");
  CHECK_THROWS_AS(Train(rc, SmallData()), CheckpointError);
}

TEST_CASE("Divergence: NaN/inf stops at once with a message naming --gamma, trace kept") {
  struct Case {
    Method method;
    int threads;
  };
  for (const Case k : {Case{Method::kMemSgd, 0}, Case{Method::kSgd, 0}, Case{Method::kMemSgd, 2},
                       Case{Method::kSgd, 2}}) {
    CAPTURE(MethodName(k.method));
    CAPTURE(k.threads);
    TrainConfig c = BaseConfig();
    c.method = k.method;
    c.threads = k.threads;
    c.schedule = ScheduleKind::kConstant;
    c.gamma = 1e300;
    c.eval_every = 1'000'000;  // no evaluation point before the end of the epoch
    c.epochs = 50;
    const TrainResult r = Train(c, SmallData());
    CHECK(r.status == TrainStatus::kDiverged);
    CHECK(r.message.find("try a smaller --gamma") != std::string::npos);
    CHECK(r.message.find("1e+300") != std::string::npos);
    // At once: within one poll interval per worker, long before the first evaluation point.
    CHECK(r.samples <= 256 * std::max(1, k.threads) + 2);
    REQUIRE(r.trace.size() == 2);  // the start and the point where it stopped
    CHECK(r.trace.back().samples == r.samples);
    const bool finite_point = std::isfinite(r.trace.back().loss) && std::isfinite(r.trace.back().grad_norm2);
    CHECK_FALSE(finite_point);
  }
  // No checkpoint is taken of a diverged state.
  test::Scratch tmp;
  TrainConfig c = BaseConfig();
  c.schedule = ScheduleKind::kConstant;
  c.gamma = 1e300;
  c.checkpoint_path = tmp("ck");
  c.checkpoint_every = 1;
  CHECK(Train(c, SmallData()).status == TrainStatus::kDiverged);
  CHECK_FALSE(fs::exists(tmp("ck")));
}

TEST_CASE("Limits: clear errors for impossible configurations") {
  const Dataset& d = SmallData();  // d = 60
  auto fails = [&](TrainConfig c, const char* fragment) {
    CAPTURE(fragment);
    CHECK_THROWS_WITH_AS(ValidateConfig(c, d), doctest::Contains(fragment), std::invalid_argument);
  };
  TrainConfig c = BaseConfig();
  CHECK_NOTHROW(ValidateConfig(c, d));
  c.epochs = 0;
  fails(c, "--epochs must be > 0");
  c.epochs = NAN;
  fails(c, "--epochs must be > 0");
  c.epochs = 1e300;
  fails(c, "too many samples");
  c = BaseConfig();
  c.objective.lambda = -1;
  fails(c, "--lambda must be >= 0");
  c = BaseConfig();
  c.compressor = CompressorSpec::FromName("top", 61, false, 4);
  fails(c, "exceeds the number of features d = 60");
  CHECK_THROWS_WITH_AS(CompressorSpec::FromName("top", 0, false, 4), doctest::Contains("--k must be > 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(CompressorSpec::FromName("rand", -2, false, 4),
                       doctest::Contains("--k must be > 0"), std::invalid_argument);
  c = BaseConfig();
  c.init_std = INFINITY;
  fails(c, "--init-std");
  c = BaseConfig();
  c.method = Method::kQsgd;
  c.compressor.qsgd_bits = 40;
  fails(c, "--qsgd-bits");
  c = BaseConfig();
  c.threads = -1;
  fails(c, "--threads");
  c = BaseConfig();
  c.checkpoint_every = -5;
  fails(c, "--checkpoint-every");
  // An empty data set.
  const Dataset empty = Dataset::FromCsr(5, {0}, {}, {}, {});
  CHECK_THROWS_WITH_AS(ValidateConfig(BaseConfig(), empty), doctest::Contains("no rows"),
                       std::invalid_argument);
  // More threads than cores: allowed (oversubscribed), and correct.
  c = BaseConfig();
  c.threads = 16;
  c.epochs = 1;
  const TrainResult r = Train(c, d);
  CHECK(r.status == TrainStatus::kOk);
  CHECK(r.samples == 600);
}

TEST_CASE("Limits: the lazy EF form checks its options as the dense form does") {
  const Dataset& d = SmallData();  // sparse, d = 60
  const Objective obj{Loss::kLogistic, Regularizer::kL2, 0.0};
  auto fails = [&](const ef::Options& o, std::size_t x0_size, const char* fragment) {
    CAPTURE(fragment);
    ef::DatasetOracle oracle(d, obj, ef::SplitRows(d, 3, SplitKind::kContiguous, 1), 1, false, 1);
    const std::vector<double> x0(x0_size, 0.0);
    CHECK_THROWS_WITH_AS(ef::Run(o, oracle, x0), doctest::Contains(fragment),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(ef::RunLazy(o, oracle, d, obj, x0), doctest::Contains(fragment),
                         std::invalid_argument);
  };
  ef::Options o;
  o.method = Method::kEf14;
  o.compressor = CompressorSpec::FromName("rand", 2, false, 4);
  fails(o, 3, "|x0| != d");
  o.method = Method::kMemSgd;
  fails(o, 60, "not an error-feedback method");
  o.method = Method::kEf21Sgdm;
  o.eta = 0;
  fails(o, 60, "--eta must be in (0, 1]");
}

TEST_CASE("Reader: a file too large for the available memory is refused up front") {
  test::Scratch tmp;
  WriteLibsvm(SmallData(), tmp("d.svm"));
  const auto size = fs::file_size(tmp("d.svm"));
  REQUIRE(size > 20000);
  struct Env {
    Env(const char* v) { ::setenv("MEMSGD_MEMORY_LIMIT", v, 1); }
    ~Env() { ::unsetenv("MEMSGD_MEMORY_LIMIT"); }
  };
  {
    Env e("10K");
    try {
      (void)ReadLibsvm(tmp("d.svm"));
      FAIL("not refused");
    } catch (const ParseError& err) {
      CHECK(err.Line() == 0);
      CHECK(err.File() == tmp("d.svm"));
      const std::string what = err.what();
      CHECK(what.find("too large for the available memory") != std::string::npos);
      CHECK(what.find("10.0 KiB are available (MEMSGD_MEMORY_LIMIT") != std::string::npos);
    }
    if (std::system("command -v gzip >/dev/null 2>&1") == 0) {
      REQUIRE(std::system(("gzip -k " + tmp("d.svm")).c_str()) == 0);
      CHECK_THROWS_WITH_AS(ReadLibsvm(tmp("d.svm.gz")), doctest::Contains("compressed size"),
                           ParseError);
    }
  }
  {
    Env e("off");
    CHECK(ReadLibsvm(tmp("d.svm")).NumRows() == 600);
  }
  {
    Env e("1G");
    CHECK(ReadLibsvm(tmp("d.svm")).NumRows() == 600);
  }
  // The estimate is close to what the loaded data holds (8 bytes per entry, 24 per row).
  {
    Env e("1");
    try {
      (void)ReadLibsvm(tmp("d.svm"));
    } catch (const ParseError& err) {
      const std::string what = err.what();
      const auto at = what.find("needs about ");
      REQUIRE(at != std::string::npos);
      const double kib = std::strtod(what.c_str() + at + 12, nullptr);
      const double actual = (8.0 * SmallData().NumNonZeros() + 24.0 * 600) / 1024;
      CHECK(kib == doctest::Approx(actual).epsilon(0.1));
    }
  }
  // The real figure (MemAvailable): a small file passes.
  CHECK(ReadLibsvm(tmp("d.svm")).NumRows() == 600);

  // A huge line: at most a quarter of the memory (and 1 GiB); a file without line breaks ends
  // there instead of exhausting the memory.
  std::string text = "1 1:1\n-1 2:1\n+1";
  for (int j = 1; j <= 400000; ++j) text.append(" ").append(std::to_string(j)).append(":1");
  text += "\n";
  {
    std::ofstream f(tmp("long.svm"), std::ios::binary);
    f << text;
  }
  {
    Env e("8M");
    try {
      (void)ReadLibsvm(tmp("long.svm"));
      FAIL("not refused");
    } catch (const ParseError& err) {
      CHECK(err.Line() == 3);
      CHECK(std::string(err.what()).find(":3: line longer than 2.0 MiB") != std::string::npos);
    }
    if (fs::exists("/dev/zero")) {
      CHECK_THROWS_WITH_AS(ReadLibsvm("/dev/zero"), doctest::Contains("/dev/zero:1: line longer"),
                           ParseError);
    }
  }
  CHECK(ReadLibsvm(tmp("long.svm")).NumFeatures() == 400000);
}
