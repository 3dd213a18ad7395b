// The `memsgd train` command line mapped to a TrainConfig (src/cli/train_args.hpp): defaults,
// the error-feedback defaults, every option's effect, and the usage errors users see.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "memsgd/train.hpp"
#include "train_args.hpp"

namespace po = boost::program_options;
using namespace memsgd;
using namespace memsgd::cli;

namespace {

struct Parsed {
  TrainArgs a;
  po::variables_map vm;
};

// Parses "train DATA args..." with the real option table (no DATA positional needed here).
Parsed Parse(std::vector<std::string> args) {
  Parsed p;
  po::options_description opts("Options");
  AddTrainOptions(opts, p.a);
  std::vector<const char*> argv{"memsgd-train"};
  for (const auto& s : args) argv.push_back(s.c_str());
  po::store(po::parse_command_line(static_cast<int>(argv.size()), argv.data(), opts), p.vm);
  po::notify(p.vm);
  return p;
}

TrainConfig Config(std::vector<std::string> args) {
  Parsed p = Parse(std::move(args));
  return TrainConfigFromArgs(p.a, p.vm);
}

}  // namespace

TEST_CASE("train options: the defaults are the paper's Figure 2 setting") {
  Parsed p = Parse({});
  const TrainConfig c = TrainConfigFromArgs(p.a, p.vm);
  CHECK(c.method == Method::kMemSgd);
  CHECK(c.compressor.kind == CompressorKind::kTopK);
  CHECK(c.compressor.k == 1);
  CHECK(c.memory);
  CHECK(c.schedule == ScheduleKind::kPaper);
  CHECK(c.averaging == AveragingKind::kWeighted);
  CHECK(c.threads == 0);
  CHECK(c.write == WritePolicy::kAtomic);
  CHECK(c.reg == RegForm::kLazy);
  CHECK(c.epochs == 5);
  CHECK(c.seed == 1);
  CHECK(c.evaluate);
  CHECK_FALSE(c.fstar.has_value());
  CHECK(TrainLambda(p.a, p.vm, 400) == doctest::Approx(1.0 / 400));
  Parsed nc = Parse({"--objective", "nonconvex-logistic"});
  CHECK(TrainLambda(nc.a, nc.vm, 400) == 0.1);
  Parsed l = Parse({"--lambda", "0"});
  CHECK(TrainLambda(l.a, l.vm, 400) == 0);
}

TEST_CASE("train options: each option reaches the configuration") {
  const TrainConfig c = Config({"--method", "sgd", "--compressor", "rand", "--k", "5", "--scaled",
                                "--no-memory", "--step", "bottou", "--gamma", "0.5", "--shift", "7",
                                "--averaging", "final", "--sampling", "replacement", "--epochs",
                                "2.5", "--threads", "3", "--write", "racy", "--reg", "dense",
                                "--eval-every", "100", "--seed", "9", "--init-std", "0",
                                "--fstar", "0.25"});
  CHECK(c.method == Method::kSgd);
  CHECK(c.compressor.kind == CompressorKind::kRandK);
  CHECK(c.compressor.k == 5);
  CHECK(c.compressor.scaled);
  CHECK_FALSE(c.memory);
  CHECK(c.schedule == ScheduleKind::kBottou);
  CHECK(c.gamma == 0.5);
  CHECK(c.shift == 7);
  CHECK(c.averaging == AveragingKind::kFinal);
  CHECK(c.with_replacement);
  CHECK(c.epochs == 2.5);
  CHECK(c.threads == 3);
  CHECK(c.write == WritePolicy::kRacy);
  CHECK(c.reg == RegForm::kDense);
  CHECK(c.eval_every == 100);
  CHECK(c.seed == 9);
  CHECK(c.init_std == 0);
  REQUIRE(c.fstar.has_value());
  CHECK(*c.fstar == 0.25);
  CHECK(Config({"--k", "0.5"}).compressor.kind == CompressorKind::kUltraSparse);
}

TEST_CASE("train options: error-feedback defaults and quiet runs") {
  const TrainConfig ef = Config({"--method", "ef21-sgdm", "--workers", "8", "--split", "by-label",
                                 "--ef-init", "full", "--eta", "0.1", "--batch", "4"});
  CHECK(ef.schedule == ScheduleKind::kConstant);  // the EF methods' default step
  CHECK(ef.gamma == 0.03);
  CHECK(ef.workers == 8);
  CHECK(ef.split == SplitKind::kByLabel);
  CHECK(ef.ef_full_init);
  CHECK(ef.eta == 0.1);
  CHECK(ef.batch == 4);
  CHECK(Config({"--method", "ef21", "--step", "paper"}).schedule == ScheduleKind::kPaper);
  // --quiet alone evaluates only at the end; with a trace or --eval-every it evaluates as usual.
  CHECK_FALSE(Config({"--quiet"}).evaluate);
  CHECK(Config({"--quiet", "--trace", "t.csv"}).evaluate);
  CHECK(Config({"--quiet", "--eval-every", "10"}).evaluate);
}

TEST_CASE("train options: usage errors name the option and the value") {
  auto message = [](std::vector<std::string> args) -> std::string {
    try {
      (void)Config(std::move(args));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  CHECK(message({"--threads", "-1"}).find("--threads") != std::string::npos);
  CHECK(message({"--threads", "5000"}).find("limit") != std::string::npos);
  CHECK(message({"--write", "fast"}).find("'fast'") != std::string::npos);
  CHECK(message({"--reg", "sparse"}).find("--reg") != std::string::npos);
  CHECK(message({"--sampling", "x"}).find("--sampling") != std::string::npos);
  CHECK(message({"--split", "x"}).find("--split") != std::string::npos);
  CHECK(message({"--lambda", "-1"}).find("--lambda") != std::string::npos);
  CHECK(message({"--fstar", "abc"}).find("--fstar") != std::string::npos);
  CHECK(message({"--fstar", "inf"}).find("finite") != std::string::npos);
  CHECK(message({"--checkpoint-every", "10"}).find("--checkpoint FILE") != std::string::npos);
  CHECK(message({"--method", "ef21", "--ef-init", "x"}).find("--ef-init") != std::string::npos);
  CHECK_FALSE(message({"--method", "nope"}).empty());
  CHECK_FALSE(message({"--objective", "hinge"}).empty());
  CHECK(message({"--threads", "auto"}).empty());
  CHECK(ParseThreads("auto") >= 1);
  CHECK(ParseThreads("0") == 0);
}
