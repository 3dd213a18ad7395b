// The `memsgd train` option table and its mapping to a TrainConfig (train_args.hpp).
#include "train_args.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace po = boost::program_options;

namespace memsgd::cli {
namespace {

// Largest --threads accepted: each worker is a thread with its own d-vector of memory.
constexpr int kMaxThreads = 4096;

std::string Join(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

}  // namespace

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

const char* const kTrainHelp = R"(Usage: memsgd train DATA [options]

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


void AddTrainOptions(po::options_description& opts, TrainArgs& a) {
  // clang-format off
  opts.add_options()
    ("help,h", "print this help")
    ("method", po::value(&a.method)->default_value("mem-sgd"),
     "sgd | mem-sgd | qsgd | ef14-sgd | ef21 | ef21-sgd | ef21-sgdm | ef21-sgd2m | sgd-compressed")
    ("compressor", po::value(&a.compressor)->default_value("top"),
     "top | rand | identity | qsgd (mem-sgd and the error-feedback methods)")
    ("k", po::value(&a.k)->default_value(1), "coordinates sent per step; 0 < k < 1: ultra-sparse "
     "(one random coordinate with probability k)")
    ("scaled", po::bool_switch(&a.scaled), "rand-k: scale the kept values by d/k (unbiased)")
    ("qsgd-bits", po::value(&a.qsgd_bits)->default_value(4), "QSGD: bits b, s = 2^b levels")
    ("no-memory", po::bool_switch(&a.no_memory), "mem-sgd without its memory (the ablation)")
    ("objective", po::value(&a.objective)->default_value("logistic"),
     "logistic | least-squares | nonconvex-logistic")
    ("lambda", po::value(&a.lambda), "regularisation weight (default 1/n; nonconvex-logistic: 0.1)")
    ("normalize", po::bool_switch(&a.normalize), "scale every row to unit L2 norm")
    ("positive-label", po::value(&a.positive_label), "the class that becomes +1 (multi-class files)")
    ("step", po::value(&a.step)->default_value("paper"),
     "paper: gamma/(lambda(t+a)) | bottou: gamma/(1+gamma lambda t) | constant: gamma | "
     "inverse-epoch: gamma/(1+t/n); t counts samples. EF methods: t counts rounds, default "
     "constant")
    ("gamma", po::value(&a.gamma), "step-size constant (default: paper 2, bottou 1, constant 0.1, "
     "inverse-epoch 1; EF methods 0.03, tuned on a9a/w8a/mushrooms/phishing)")
    ("shift", po::value(&a.shift), "a of the paper schedule (default d/k; d for sgd and qsgd)")
    ("averaging", po::value(&a.averaging)->default_value("weighted"),
     "weighted: (t+a)^2 weights | uniform | final (last iterate). Parallel runs average the "
     "checkpoint snapshots")
    ("sampling", po::value(&a.sampling)->default_value("reshuffle"), "reshuffle | replacement")
    ("epochs", po::value(&a.epochs)->default_value(5), "passes over the data (may be fractional)")
    ("threads", po::value(&a.threads)->default_value("0"),
     "0: sequential solver; P >= 1: P lock-free workers on one shared vector; auto: all cores. "
     "More threads than cores is allowed (oversubscribed: the workers time-share the cores); "
     "at most 4096")
    ("write", po::value(&a.write)->default_value("atomic"),
     "parallel writes: atomic (fetch_add) | racy (relaxed load+store, Hogwild!)")
    ("flush-every", po::value(&a.flush_every)->default_value(0),
     "parallel: each worker steps on its own copy of x and, every B of its steps, adds what it "
     "changed to the shared vector and copies it again (others see its writes up to B steps "
     "late); 1: every write at once (the paper's write-through); 0: auto: 64 where a step is "
     "O(d) anyway (dense rows, --reg dense, top-k's dense pass, QSGD), 256 where d <= 64 (nnz + "
     "k), at most n/(16 P) and 16/eta at step size eta; else 1")
    ("reg", po::value(&a.reg)->default_value("lazy"),
     "how the regulariser enters a step on sparse data: lazy (O(nnz + k): Mem-SGD's memory kept "
     "as lines m_j = b_j + R'(x_j) S, except top-k where the lines' hot set max(16k, 512) "
     "exceeds d/16 (d < 8192 for k <= 32) or n < d/10, where the "
     "vectorised dense threshold pass is faster; sequential SGD x = s v; parallel SGD R'(x_j) on the row's "
     "support scaled by n/n_j, as Hogwild!) | dense (the paper's O(d) step: every coordinate, "
     "every step)")
    ("eval-every", po::value(&a.eval_every)->default_value(0),
     "samples between checkpoints (default n/10)")
    ("seed", po::value(&a.seed)->default_value(1), "random seed")
    ("init-std", po::value(&a.init_std)->default_value(0.01), "x0 ~ N(0, init-std^2); 0: zeros")
    ("workers", po::value(&a.workers)->default_value(20), "EF methods: number of workers n")
    ("split", po::value(&a.split)->default_value("contiguous"),
     "EF methods: contiguous | random | by-label")
    ("batch", po::value(&a.batch)->default_value(1), "EF methods: minibatch per worker")
    ("eta", po::value(&a.eta)->default_value(0.01),
     "EF21-SGDM/2M momentum: weight of the new gradient (1 = none; 0.01 was best on a9a, w8a, "
     "mushrooms and phishing, see bench/results/ef21)")
    ("ef-init", po::value(&a.ef_init)->default_value("stochastic"),
     "EF methods: g_i^0 = v_i^0 = stochastic (one minibatch gradient at x0) | full (the full "
     "local gradient), sent uncompressed once. EF methods use the last iterate (--averaging is "
     "ignored), --sampling applies within each worker's shard, and --threads only sets how many "
     "threads compute the workers' messages: it never changes the result")
    ("wire", po::value(&a.wire)->default_value("f32"),
     "EF methods: message values as f32 (the papers' 32 bits per value; a worker rounds what it "
     "sends and keeps the rounding error in its own state) | f64 (64 bits per value, exact). "
     "The bit counts follow; memsgd-mpi sends exactly these bits")
    ("fstar", po::value(&a.fstar_arg), "optimal value for suboptimality, or 'auto' (computes it)")
    ("test", po::value(&a.test_path), "test file (same feature space): reports test accuracy")
    ("model", po::value(&a.model_path), "write the model (LIBLINEAR format) to this file")
    ("trace", po::value(&a.trace_path), "write the trace CSV to this file")
    ("checkpoint", po::value(&a.checkpoint_path), "save the full training state to this file "
     "(atomically) every --checkpoint-every samples and on Ctrl-C (every method; memsgd-mpi: rank 0 "
     "writes every rank's state)")
    ("checkpoint-every", po::value(&a.checkpoint_every), "samples between checkpoints, taken at the "
     "next evaluation point (default n: once per epoch)")
    ("resume", po::value(&a.resume_path), "continue the run saved in this checkpoint file (same "
     "data and options; the sequential solver and the EF methods, whatever --threads, then end bit "
     "for bit as if never stopped; EF methods: the same --workers / MPI rank count)")
    ("quiet,q", po::bool_switch(&a.quiet),
     "no progress lines; without --trace or --eval-every also no loss evaluation before the "
     "end (the result line's numbers are the final iterate's)");
  // clang-format on
  AddDataLoadOptions(opts, a.load);
}

TrainConfig TrainConfigFromArgs(const TrainArgs& a, const po::variables_map& vm) {
  TrainConfig cfg;
  cfg.method = MethodFromName(a.method);
  cfg.compressor = CompressorSpec::FromName(a.compressor, a.k, a.scaled, a.qsgd_bits);
  cfg.memory = !a.no_memory;
  cfg.schedule = StepSchedule::KindFromName(a.step);
  if (vm.count("gamma")) cfg.gamma = a.gamma;
  if (IsErrorFeedbackFamily(cfg.method)) {
    if (vm["step"].defaulted()) cfg.schedule = ScheduleKind::kConstant;
    if (!vm.count("gamma")) cfg.gamma = 0.03;
    if (a.ef_init != "stochastic" && a.ef_init != "full")
      throw std::invalid_argument("--ef-init must be stochastic or full (got '" + a.ef_init + "')");
    cfg.ef_full_init = a.ef_init == "full";
  }
  if (a.wire != "f32" && a.wire != "f64")
    throw std::invalid_argument("--wire must be f32 or f64 (got '" + a.wire + "')");
  cfg.wire = a.wire == "f32" ? Wire::kFloat32 : Wire::kFloat64;
  if (vm.count("shift")) cfg.shift = a.shift;
  cfg.averaging = AveragingFromName(a.averaging);
  if (a.sampling != "reshuffle" && a.sampling != "replacement")
    throw std::invalid_argument("--sampling must be reshuffle or replacement (got '" +
                                a.sampling + "')");
  cfg.with_replacement = a.sampling == "replacement";
  cfg.epochs = a.epochs;
  cfg.threads = ParseThreads(a.threads);
  if (a.write != "atomic" && a.write != "racy")
    throw std::invalid_argument("--write must be atomic or racy (got '" + a.write + "')");
  cfg.write = a.write == "atomic" ? WritePolicy::kAtomic : WritePolicy::kRacy;
  if (a.reg != "lazy" && a.reg != "dense")
    throw std::invalid_argument("--reg must be lazy or dense (got '" + a.reg + "')");
  cfg.reg = a.reg == "lazy" ? RegForm::kLazy : RegForm::kDense;
  cfg.eval_every = a.eval_every;
  cfg.flush_every = a.flush_every;
  // A quiet run with no trace shows no intermediate loss: none is computed (each costs a pass
  // over the data, and on few cores the threads it wakes slow the next segment).
  cfg.evaluate = !(a.quiet && a.trace_path.empty() && a.eval_every == 0);
  cfg.seed = a.seed;
  cfg.init_std = a.init_std;
  cfg.workers = a.workers;
  cfg.batch = a.batch;
  cfg.eta = a.eta;
  if (a.split == "contiguous") cfg.split = SplitKind::kContiguous;
  else if (a.split == "random") cfg.split = SplitKind::kRandom;
  else if (a.split == "by-label") cfg.split = SplitKind::kByLabel;
  else throw std::invalid_argument("--split must be contiguous, random or by-label");
  if (vm.count("lambda") && !(a.lambda >= 0))
    throw std::invalid_argument("--lambda must be >= 0 (got " + Join(a.lambda) + ")");
  if (a.fstar_arg != "" && a.fstar_arg != "auto") {
    std::size_t p = 0;
    double f = NAN;
    try {
      f = std::stod(a.fstar_arg, &p);
    } catch (const std::exception&) {
      p = 0;
    }
    if (p == 0 || p != a.fstar_arg.size() || !std::isfinite(f))
      throw std::invalid_argument("--fstar must be a finite number or 'auto' (got '" +
                                  a.fstar_arg + "')");
    cfg.fstar = f;
  }
  if (vm.count("checkpoint-every")) {
    if (a.checkpoint_path.empty())
      throw std::invalid_argument("--checkpoint-every needs --checkpoint FILE");
    if (a.checkpoint_every < 1)
      throw std::invalid_argument("--checkpoint-every must be >= 1 (got " +
                                  std::to_string(a.checkpoint_every) + ")");
  }
  cfg.checkpoint_path = a.checkpoint_path;
  cfg.checkpoint_every = a.checkpoint_every;
  cfg.resume_path = a.resume_path;
  if (vm.count("checkpoint") && a.checkpoint_path.empty())
    throw std::invalid_argument("--checkpoint needs a file name");
  if (vm.count("resume") && a.resume_path.empty())
    throw std::invalid_argument("--resume needs a file name");
  (void)Objective::FromName(a.objective, 0);
  if (const std::string err = CheckDataLoadOptions(a.load); !err.empty())
    throw std::invalid_argument(err);
  return cfg;
}

double TrainLambda(const TrainArgs& a, const po::variables_map& vm, Offset n) {
  if (vm.count("lambda")) return a.lambda;
  return a.objective == "nonconvex-logistic" ? 0.1 : 1.0 / static_cast<double>(n);
}

}  // namespace memsgd::cli
