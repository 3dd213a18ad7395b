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

// Largest --threads accepted: each worker is a thread with its own d-vector of memory.
constexpr int kMaxThreads = 4096;

constexpr const char* kTrainHelp = R"(Usage: memsgd train DATA [options]

Trains an L2-regularised linear model on a LIBSVM/SVMlight file (.gz/.bz2/.xz, or - for stdin)
with SGD, Mem-SGD (top-k / rand-k / ultra-sparse, with or without memory), QSGD, or the
error-feedback family with n workers. Defaults reproduce Figure 2 of Stich et al. 2018:
Mem-SGD top-1, step gamma/(lambda (t+a)) with gamma = 2, a = d/k, (t+a)^2-weighted averaging,
lambda = 1/n, x0 ~ N(0, 0.01^2), per-epoch reshuffling, sequential.

Progress: one line per checkpoint (10 per epoch) on stderr; the last line on stdout is the result.

Ctrl-C or SIGTERM stops at once, writes the trace so far, the current model and (with
--checkpoint) a checkpoint, and exits with 130; a second Ctrl-C quits without writing anything.
A run whose loss or iterate becomes NaN or infinite (too large a step) stops at once, keeps the
trace so far (no model) and exits with 3. Exit codes: 0 ok, 1 bad command line, 2 bad input
file (or unreadable/corrupt checkpoint), 3 diverged, 130 interrupted.
Input files are refused up front when their estimated size in memory exceeds the available
memory (MEMSGD_MEMORY_LIMIT=BYTES[K|M|G] overrides the available figure, =off skips the check).
)";

std::string Join(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

int ParseThreads(const std::string& s) {
  if (s == "auto") return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::size_t pos = 0;
  int v = 0;
  try {
    v = std::stoi(s, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos != s.size() || v < 0 || s.empty() || s.front() == ' ')
    throw std::invalid_argument("--threads must be a number >= 0 or 'auto' (got '" + s + "')");
  if (v > kMaxThreads)
    throw std::invalid_argument("--threads " + s + " exceeds the limit of " +
                                std::to_string(kMaxThreads) + " threads");
  return v;
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

}  // namespace

int RunTrain(int argc, char** argv) {
  std::string ef_init;
  std::string data_path, test_path, method, compressor, objective, step, averaging, sampling,
      write, threads, fstar_arg, model_path, trace_path, split, checkpoint_path, resume_path, reg;
  double k = 1, lambda = -1, gamma = 0, shift = 0, epochs = 5, eta = 0.1, init_std = 0.01;
  double positive_label = 0;
  int qsgd_bits = 4, workers = 20, batch = 1;
  long long eval_every = 0, checkpoint_every = 0;
  unsigned long long seed = 1;
  bool no_memory = false, scaled = false, normalize = false, quiet = false;

  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
    ("help,h", "print this help")
    ("method", po::value(&method)->default_value("mem-sgd"),
     "sgd | mem-sgd | qsgd | ef14-sgd | ef21 | ef21-sgd | ef21-sgdm | ef21-sgd2m | sgd-compressed")
    ("compressor", po::value(&compressor)->default_value("top"),
     "top | rand | identity | qsgd (mem-sgd and the error-feedback methods)")
    ("k", po::value(&k)->default_value(1), "coordinates sent per step; 0 < k < 1: ultra-sparse "
     "(one random coordinate with probability k)")
    ("scaled", po::bool_switch(&scaled), "rand-k: scale the kept values by d/k (unbiased)")
    ("qsgd-bits", po::value(&qsgd_bits)->default_value(4), "QSGD: bits b, s = 2^b levels")
    ("no-memory", po::bool_switch(&no_memory), "mem-sgd without its memory (the ablation)")
    ("objective", po::value(&objective)->default_value("logistic"),
     "logistic | least-squares | nonconvex-logistic")
    ("lambda", po::value(&lambda), "regularisation weight (default 1/n; nonconvex-logistic: 0.1)")
    ("normalize", po::bool_switch(&normalize), "scale every row to unit L2 norm")
    ("positive-label", po::value(&positive_label), "the class that becomes +1 (multi-class files)")
    ("step", po::value(&step)->default_value("paper"),
     "paper: gamma/(lambda(t+a)) | bottou: gamma/(1+gamma lambda t) | constant: gamma | "
     "inverse-epoch: gamma/(1+t/n); t counts samples. EF methods: t counts rounds, default "
     "constant")
    ("gamma", po::value(&gamma), "step-size constant (default: paper 2, bottou 1, constant 0.1, "
     "inverse-epoch 1; EF methods 0.03, tuned on a9a/w8a/mushrooms/phishing)")
    ("shift", po::value(&shift), "a of the paper schedule (default d/k; d for sgd and qsgd)")
    ("averaging", po::value(&averaging)->default_value("weighted"),
     "weighted: (t+a)^2 weights | uniform | final (last iterate). Parallel runs average the "
     "checkpoint snapshots")
    ("sampling", po::value(&sampling)->default_value("reshuffle"), "reshuffle | replacement")
    ("epochs", po::value(&epochs)->default_value(5), "passes over the data (may be fractional)")
    ("threads", po::value(&threads)->default_value("0"),
     "0: sequential solver; P >= 1: P lock-free workers on one shared vector; auto: all cores. "
     "More threads than cores is allowed (oversubscribed: the workers time-share the cores); "
     "at most 4096")
    ("write", po::value(&write)->default_value("atomic"),
     "parallel writes: atomic (fetch_add) | racy (relaxed load+store, Hogwild!)")
    ("reg", po::value(&reg)->default_value("lazy"),
     "how the regulariser enters a step on sparse data: lazy (O(nnz + k): Mem-SGD's memory kept "
     "as lines m_j = b_j + R'(x_j) S; sequential SGD x = s v; parallel SGD R'(x_j) on the row's "
     "support scaled by n/n_j, as Hogwild!) | dense (the paper's O(d) step: every coordinate, "
     "every step)")
    ("eval-every", po::value(&eval_every)->default_value(0),
     "samples between checkpoints (default n/10)")
    ("seed", po::value(&seed)->default_value(1), "random seed")
    ("init-std", po::value(&init_std)->default_value(0.01), "x0 ~ N(0, init-std^2); 0: zeros")
    ("workers", po::value(&workers)->default_value(20), "EF methods: number of workers n")
    ("split", po::value(&split)->default_value("contiguous"),
     "EF methods: contiguous | random | by-label")
    ("batch", po::value(&batch)->default_value(1), "EF methods: minibatch per worker")
    ("eta", po::value(&eta)->default_value(0.01),
     "EF21-SGDM/2M momentum: weight of the new gradient (1 = none; 0.01 was best on a9a, w8a, "
     "mushrooms and phishing, see bench/results/ef21)")
    ("ef-init", po::value(&ef_init)->default_value("stochastic"),
     "EF methods: g_i^0 = v_i^0 = stochastic (one minibatch gradient at x0) | full (the full "
     "local gradient), sent uncompressed once. EF methods use the last iterate (--averaging is "
     "ignored), --sampling applies within each worker's shard, and --threads only sets how many "
     "threads compute the workers' messages: it never changes the result")
    ("fstar", po::value(&fstar_arg), "optimal value for suboptimality, or 'auto' (computes it)")
    ("test", po::value(&test_path), "test file (same feature space): reports test accuracy")
    ("model", po::value(&model_path), "write the model (LIBLINEAR format) to this file")
    ("trace", po::value(&trace_path), "write the trace CSV to this file")
    ("checkpoint", po::value(&checkpoint_path), "save the full training state to this file "
     "(atomically) every --checkpoint-every samples and on Ctrl-C (sgd, mem-sgd, qsgd)")
    ("checkpoint-every", po::value(&checkpoint_every), "samples between checkpoints, taken at the "
     "next evaluation point (default n: once per epoch)")
    ("resume", po::value(&resume_path), "continue the run saved in this checkpoint file (same "
     "data and options; the sequential solver then ends bit for bit as if never stopped)")
    ("quiet,q", po::bool_switch(&quiet),
     "no progress lines; without --trace or --eval-every also no loss evaluation before the "
     "end (the result line's numbers are the final iterate's)");
  // clang-format on
  DataLoadOptions load;
  AddDataLoadOptions(opts, load);
  po::variables_map vm;
  if (const int rc = ParseCommandLine("train", argc, argv, opts, {{"data", &data_path}},
                                      kTrainHelp, "no data file given", vm);
      rc >= 0) {
    return rc;
  }

  TrainConfig cfg;
  try {
    cfg.method = MethodFromName(method);
    cfg.compressor = CompressorSpec::FromName(compressor, k, scaled, qsgd_bits);
    cfg.memory = !no_memory;
    cfg.schedule = StepSchedule::KindFromName(step);
    if (vm.count("gamma")) cfg.gamma = gamma;
    if (IsErrorFeedbackFamily(cfg.method)) {
      if (vm["step"].defaulted()) cfg.schedule = ScheduleKind::kConstant;
      if (!vm.count("gamma")) cfg.gamma = 0.03;
      if (ef_init != "stochastic" && ef_init != "full")
        throw std::invalid_argument("--ef-init must be stochastic or full (got '" + ef_init + "')");
      cfg.ef_full_init = ef_init == "full";
    }
    if (vm.count("shift")) cfg.shift = shift;
    cfg.averaging = AveragingFromName(averaging);
    if (sampling != "reshuffle" && sampling != "replacement")
      throw std::invalid_argument("--sampling must be reshuffle or replacement (got '" +
                                  sampling + "')");
    cfg.with_replacement = sampling == "replacement";
    cfg.epochs = epochs;
    cfg.threads = ParseThreads(threads);
    if (write != "atomic" && write != "racy")
      throw std::invalid_argument("--write must be atomic or racy (got '" + write + "')");
    cfg.write = write == "atomic" ? WritePolicy::kAtomic : WritePolicy::kRacy;
    if (reg != "lazy" && reg != "dense")
      throw std::invalid_argument("--reg must be lazy or dense (got '" + reg + "')");
    cfg.reg = reg == "lazy" ? RegForm::kLazy : RegForm::kDense;
    cfg.eval_every = eval_every;
    // A quiet run with no trace shows no intermediate loss: none is computed (each costs a pass
    // over the data, and on few cores the threads it wakes slow the next segment).
    cfg.evaluate = !(quiet && trace_path.empty() && eval_every == 0);
    cfg.seed = seed;
    cfg.init_std = init_std;
    cfg.workers = workers;
    cfg.batch = batch;
    cfg.eta = eta;
    if (split == "contiguous") cfg.split = SplitKind::kContiguous;
    else if (split == "random") cfg.split = SplitKind::kRandom;
    else if (split == "by-label") cfg.split = SplitKind::kByLabel;
    else throw std::invalid_argument("--split must be contiguous, random or by-label");
    if (vm.count("lambda") && !(lambda >= 0))
      throw std::invalid_argument("--lambda must be >= 0 (got " + Join(lambda) + ")");
    if (fstar_arg != "" && fstar_arg != "auto") {
      std::size_t p = 0;
      double f = NAN;
      try {
        f = std::stod(fstar_arg, &p);
      } catch (const std::exception&) {
        p = 0;
      }
      if (p == 0 || p != fstar_arg.size() || !std::isfinite(f))
        throw std::invalid_argument("--fstar must be a finite number or 'auto' (got '" +
                                    fstar_arg + "')");
      cfg.fstar = f;
    }
    if (vm.count("checkpoint-every")) {
      if (checkpoint_path.empty())
        throw std::invalid_argument("--checkpoint-every needs --checkpoint FILE");
      if (checkpoint_every < 1)
        throw std::invalid_argument("--checkpoint-every must be >= 1 (got " +
                                    std::to_string(checkpoint_every) + ")");
    }
    cfg.checkpoint_path = checkpoint_path;
    cfg.checkpoint_every = checkpoint_every;
    cfg.resume_path = resume_path;
    if (vm.count("checkpoint") && checkpoint_path.empty())
      throw std::invalid_argument("--checkpoint needs a file name");
    if (vm.count("resume") && resume_path.empty())
      throw std::invalid_argument("--resume needs a file name");
    (void)Objective::FromName(objective, 0);
    if (const std::string err = CheckDataLoadOptions(load); !err.empty())
      throw std::invalid_argument(err);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kUsage;
  }
  if (cfg.threads > 0 && !quiet) {
    const unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0 && static_cast<unsigned>(cfg.threads) > cores)
      std::fprintf(stderr,
                   "note: --threads %d on %u hardware threads: oversubscribed (allowed; the "
                   "workers time-share the cores)\n",
                   cfg.threads, cores);
  }
  // Output locations are checked before the data is read and the training starts.
  try {
    // No output may replace an input or another output (--resume FILE --checkpoint FILE is the
    // intended way to continue a run in place).
    const std::vector<std::pair<const char*, const std::string*>> files = {
        {"--model", &model_path}, {"--trace", &trace_path}, {"--checkpoint", &checkpoint_path},
        {"DATA", &data_path}, {"--test", &test_path}, {"--resume", &resume_path}};
    for (std::size_t a = 0; a < 3; ++a) {
      for (std::size_t b = a + 1; b < files.size(); ++b) {
        if (files[a].second->empty() || files[b].second->empty()) continue;
        if (b == 5 && a == 2) continue;
        if (SameFile(*files[a].second, *files[b].second))
          throw std::runtime_error(std::string(files[a].first) + " '" + *files[a].second +
                                   "' would overwrite " + files[b].first + " '" +
                                   *files[b].second + "'");
      }
    }
    CheckWritable("--model", model_path);
    CheckWritable("--trace", trace_path);
    CheckWritable("--checkpoint", checkpoint_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd train: %s\n", e.what());
    return kUsage;
  }
  // The checkpoint to resume must be readable before minutes are spent loading the data.
  if (!resume_path.empty()) {
    std::FILE* f = std::fopen(resume_path.c_str(), "rb");
    if (!f) {
      std::fprintf(stderr, "memsgd train: cannot read checkpoint '%s': %s\n", resume_path.c_str(),
                   std::strerror(errno));
      return kDataError;
    }
    std::fclose(f);
  }

  // Load the data.
  Dataset data, test;
  try {
    ReadOptions ro;
    if (vm.count("positive-label")) ro.positive_label = positive_label;
    data = LoadData("train", data_path, ro, load, /*main=*/true, quiet);
    if (normalize) data.NormalizeRows();
    if (!test_path.empty()) {
      ReadOptions to;
      to.num_features = data.NumFeatures();
      to.ignore_extra_features = true;
      to.fixed_positive_label = data.positive_label;
      test = LoadData("train", test_path, to, load, /*main=*/false, quiet);
      if (normalize) test.NormalizeRows();
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
  double lam = vm.count("lambda") ? lambda : (objective == "nonconvex-logistic" ? 0.1 : 1.0 / n);
  cfg.objective = Objective::FromName(objective, lam);

  if (fstar_arg == "auto") {
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
