// memsgd train: parse and validate options, load data, run, write trace and model.
#include <boost/program_options.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "data_options.hpp"
#include "train_args.hpp"
#include "train_output.hpp"
#include "memsgd/checkpoint.hpp"
#include "memsgd/libsvm.hpp"
#include "memsgd/model_io.hpp"
#include "memsgd/optimum.hpp"
#include "memsgd/trace_io.hpp"
#include "memsgd/train.hpp"

namespace po = boost::program_options;

namespace memsgd::cli {
namespace {

std::atomic<bool> g_stop{false};
// First Ctrl-C / SIGTERM: stop cleanly (the workers poll the flag; trace, model and checkpoint are
// written). A second one: die at once with the default action (outputs are written through
// temporary files and renames, so none is left half-written).
extern "C" void OnSignal(int sig) {
  if (g_stop.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

int RunTrain(int argc, char** argv) {
  TrainArgs a;
  po::options_description opts("Options");
  AddTrainOptions(opts, a);
  po::variables_map vm;
  if (const int rc = ParseCommandLine("train", argc, argv, opts, {{"data", &a.data_path}},
                                      kTrainHelp, "no data file given", vm);
      rc >= 0) {
    return rc;
  }
  TrainConfig cfg;
  try {
    cfg = TrainConfigFromArgs(a, vm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kUsage;
  }
  const bool quiet = a.quiet;
  const std::string& data_path = a.data_path;
  const std::string& test_path = a.test_path;
  const std::string& model_path = a.model_path;
  const std::string& trace_path = a.trace_path;
  if (cfg.threads > 0 && !quiet) {
    const unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0 && static_cast<unsigned>(cfg.threads) > cores)
      std::fprintf(stderr,
                   "note: --threads %d on %u hardware threads: oversubscribed (allowed; the "
                   "workers time-share the cores)\n",
                   cfg.threads, cores);
  }
  if (const int rc = CheckOutputs(a, "memsgd train"); rc != kOk) return rc;

  // Load the data.
  Dataset data, test;
  try {
    ReadOptions ro;
    if (vm.count("positive-label")) ro.positive_label = a.positive_label;
    data = LoadData("train", data_path, ro, a.load, /*main=*/true, quiet);
    if (a.normalize) data.NormalizeRows();
    if (!test_path.empty()) {
      ReadOptions to;
      to.num_features = data.NumFeatures();
      to.ignore_extra_features = true;
      to.fixed_positive_label = data.positive_label;
      test = LoadData("train", test_path, to, a.load, /*main=*/false, quiet);
      if (a.normalize) test.NormalizeRows();
      cfg.test = &test;
    }
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "memsgd train: out of memory while reading %s\n", data_path.c_str());
    return kDataError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kDataError;
  }
  if (data.NumFeatures() == 0) {
    std::fprintf(stderr, "memsgd train: %s: no features (every row is empty)\n", data_path.c_str());
    return kDataError;
  }
  const double n = static_cast<double>(data.NumRows());
  const double lam = TrainLambda(a, vm, data.NumRows());
  cfg.objective = Objective::FromName(a.objective, lam);

  if (a.fstar_arg == "auto") {
    if (cfg.objective.reg != Regularizer::kL2 || lam <= 0) {
      std::fprintf(stderr, "memsgd train: --fstar auto needs a convex objective with lambda > 0\n");
      return kUsage;
    }
    const auto opt = ComputeOptimum(cfg.objective, data);
    cfg.fstar = opt.fstar;
    if (!quiet) std::fprintf(stderr, "f* = %.15g (Newton-CG, %.2fs)\n", opt.fstar, opt.seconds);
  }
  try {
    ValidateConfig(cfg, data);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kUsage;
  }

  const StepSchedule sched = ResolveSchedule(cfg, data);
  if (!quiet) {
    std::fprintf(stderr,
                 "data %s: n=%lld d=%d nnz=%lld (%s)\nmethod %s compressor %s k=%g memory %s | "
                 "objective %s lambda=%g | step %s gamma=%g a=%g | averaging %s | threads %d%s\n",
                 data_path.c_str(), static_cast<long long>(data.NumRows()), data.NumFeatures(),
                 static_cast<long long>(data.NumNonZeros()), data.IsDense() ? "dense" : "sparse",
                 MethodName(cfg.method).c_str(), cfg.compressor.Name().c_str(), cfg.compressor.k,
                 cfg.memory ? "on" : "off", cfg.objective.Name().c_str(), lam,
                 StepSchedule::Name(sched.kind).c_str(), sched.gamma, sched.shift,
                 AveragingName(cfg.averaging).c_str(), cfg.threads,
                 cfg.threads > 0 ? (cfg.write == WritePolicy::kAtomic ? " (atomic)" : " (racy)")
                                 : " (sequential)");
  }

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  cfg.stop = &g_stop;
  auto progress = [&](const TracePoint& p) {
    if (!quiet) PrintProgress(p);
  };

  TrainResult res;
  try {
    res = Train(cfg, data, progress);
  } catch (const CheckpointError& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return e.GetKind() == CheckpointError::Kind::kMismatch ? kUsage : kDataError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "memsgd train: out of memory\n");
    return kDataError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kUsage;
  }
  PrintResumed(a, res, n, "memsgd train");

  // Outputs: written even when interrupted or diverged (the trace so far; the model when finite).
  try {
    if (!trace_path.empty()) WriteTraceCsv(res.trace, trace_path);
    if (!model_path.empty() && res.status != TrainStatus::kDiverged) {
      WriteModel(MakeLinearModel(cfg.objective, data, res.x), model_path);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kDataError;
  }

  PrintResult(cfg, res);
  switch (res.status) {
    case TrainStatus::kDiverged:
      std::fprintf(stderr, "memsgd train: %s\n", res.message.c_str());
      return kDiverged;
    case TrainStatus::kInterrupted:
      PrintInterrupted(a, res, "memsgd train");
      return kInterrupted;
    default:
      return kOk;
  }
}

}  // namespace memsgd::cli
