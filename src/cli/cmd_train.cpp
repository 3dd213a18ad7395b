// memsgd train: parse and validate options, load data, run, write trace and model.
#include <boost/program_options.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "data_options.hpp"
#include "train_args.hpp"
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

// True when a and b name the same file (or the same path when one does not exist yet).
bool SameFile(const std::string& a, const std::string& b) {
  if (a == b) return true;
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Fails now, not after hours of training, when an output file cannot be created: creates and
// removes a temporary file next to it (the outputs are written the same way).
void CheckWritable(const std::string& option, const std::string& path) {
  if (path.empty()) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw std::runtime_error(option + " '" + path + "' is a directory");
  const std::string probe = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error(option + " '" + path + "': cannot write there: " +
                             std::strerror(errno));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

// Output locations are checked before the data is read and the training starts; the checkpoint
// to resume must be readable before minutes are spent loading the data. kOk or the exit code.
int CheckOutputs(const TrainArgs& a) {
  const std::string& model_path = a.model_path;
  const std::string& trace_path = a.trace_path;
  const std::string& checkpoint_path = a.checkpoint_path;
  const std::string& resume_path = a.resume_path;
  try {
    // No output may replace an input or another output (--resume FILE --checkpoint FILE is the
    // intended way to continue a run in place).
    const std::vector<std::pair<const char*, const std::string*>> files = {
        {"--model", &model_path}, {"--trace", &trace_path}, {"--checkpoint", &checkpoint_path},
        {"DATA", &a.data_path}, {"--test", &a.test_path}, {"--resume", &resume_path}};
    for (std::size_t i = 0; i < 3; ++i) {
      for (std::size_t j = i + 1; j < files.size(); ++j) {
        if (files[i].second->empty() || files[j].second->empty()) continue;
        if (j == 5 && i == 2) continue;
        if (SameFile(*files[i].second, *files[j].second))
          throw std::runtime_error(std::string(files[i].first) + " '" + *files[i].second +
                                   "' would overwrite " + files[j].first + " '" +
                                   *files[j].second + "'");
      }
    }
    CheckWritable("--model", model_path);
    CheckWritable("--trace", trace_path);
    CheckWritable("--checkpoint", checkpoint_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kUsage;
  }
  if (!resume_path.empty()) {
    std::FILE* f = std::fopen(resume_path.c_str(), "rb");
    if (!f) {
      std::fprintf(stderr, "memsgd train: cannot read checkpoint '%s': %s\n", resume_path.c_str(),
                   std::strerror(errno));
      return kDataError;
    }
    std::fclose(f);
  }

  return kOk;
}

// The result line on stdout (the last line of every run).
void PrintResult(const TrainConfig& cfg, const TrainResult& res) {
  const TracePoint last = res.trace.empty() ? TracePoint{} : res.trace.back();
  std::printf("result: method=%s loss=%.10g", MethodName(cfg.method).c_str(), last.loss);
  if (!std::isnan(last.suboptimality)) std::printf(" suboptimality=%.4e", last.suboptimality);
  if (!std::isnan(last.test_accuracy)) std::printf(" test_accuracy=%.4f", last.test_accuracy);
  std::printf(" grad_norm2=%.4e train_accuracy=%.4f epochs=%.3g samples=%lld train_seconds=%.4f "
              "samples_per_s=%.4g bits=%.6g",
              last.grad_norm2, last.train_accuracy, last.epoch,
              static_cast<long long>(res.samples), res.train_seconds, res.SamplesPerSecond(),
              last.bits);
  if (!std::isnan(res.uplink_bits_values))
    std::printf(" uplink_bits_values=%.6g uplink_bits_indexed=%.6g downlink_bits_dense=%.6g "
                "downlink_bits_sparse=%.6g",
                res.uplink_bits_values, res.uplink_bits_indexed, res.downlink_bits_dense,
                res.downlink_bits_sparse);
  std::printf("\n");
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
  const std::string& checkpoint_path = a.checkpoint_path;
  const std::string& resume_path = a.resume_path;
  if (cfg.threads > 0 && !quiet) {
    const unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0 && static_cast<unsigned>(cfg.threads) > cores)
      std::fprintf(stderr,
                   "note: --threads %d on %u hardware threads: oversubscribed (allowed; the "
                   "workers time-share the cores)\n",
                   cfg.threads, cores);
  }
  if (const int rc = CheckOutputs(a); rc != kOk) return rc;

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
    if (quiet) return;
    std::fprintf(stderr, "epoch %6.2f  samples %10lld  time %8.3fs  loss %.8f", p.epoch,
                 static_cast<long long>(p.samples), p.seconds, p.loss);
    if (!std::isnan(p.suboptimality)) std::fprintf(stderr, "  subopt %.3e", p.suboptimality);
    std::fprintf(stderr, "  |grad|^2 %.3e", p.grad_norm2);
    if (!std::isnan(p.test_accuracy)) std::fprintf(stderr, "  test_acc %.4f", p.test_accuracy);
    std::fprintf(stderr, "  bits %.4g\n", p.bits);
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
  if (res.resumed_from >= 0 && !quiet) {
    std::fprintf(stderr, "resumed from %s at sample %lld (epoch %.4g)\n", resume_path.c_str(),
                 static_cast<long long>(res.resumed_from),
                 static_cast<double>(res.resumed_from) / n);
  }
  for (const auto& w : res.warnings) std::fprintf(stderr, "memsgd train: warning: %s\n", w.c_str());

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
      std::fprintf(stderr, "memsgd train: interrupted after %lld samples; trace and model written "
                   "so far\n", static_cast<long long>(res.samples));
      if (!checkpoint_path.empty() && res.checkpoints_written > 0)
        std::fprintf(stderr, "memsgd train: checkpoint saved to %s; continue with --resume %s\n",
                     checkpoint_path.c_str(), checkpoint_path.c_str());
      return kInterrupted;
    default:
      return kOk;
  }
}

}  // namespace memsgd::cli
