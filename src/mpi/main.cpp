// memsgd-mpi: `memsgd train` over Open MPI ranks, one error-feedback worker per rank.
//   mpirun -np N memsgd-mpi train DATA [the options of memsgd train]
// Every rank reads only its shard of DATA (src/mpi/shard.hpp), runs its worker, exchanges the
// compressed messages with the other ranks (src/mpi/mpi_transport.hpp) and applies all of them
// in worker order: the iterates are those of `memsgd train --workers N` with the same options.
// Rank 0 alone prints progress and writes the trace and the model (atomically, at the end).
// docs/distributed.md.
#include <mpi.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>
#include <fcntl.h>

#include "commands.hpp"
#include "data_options.hpp"
#include "mpi_transport.hpp"
#include "shard.hpp"
#include "train_args.hpp"
#include "train_output.hpp"
#include "memsgd/checkpoint.hpp"
#include "memsgd/error_feedback.hpp"
#include "memsgd/model_io.hpp"
#include "memsgd/trace_io.hpp"

namespace po = boost::program_options;
using namespace memsgd;

namespace {

constexpr const char* kWho = "memsgd-mpi train";

std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop.store(true); }

const char* const kHelp =
    "Usage: mpirun -np N memsgd-mpi train DATA [options]\n\n"
    "Trains as `memsgd train --workers N` does, with one worker per MPI rank: ef14-sgd, ef21,\n"
    "ef21-sgd, ef21-sgdm, ef21-sgd2m, sgd-compressed, and mem-sgd (= ef14-sgd over the ranks:\n"
    "each rank its own memory, top-k / rand-k messages; --no-memory: sgd-compressed). Every rank\n"
    "reads only its contiguous shard of DATA (a plain LIBSVM file on a file system all ranks\n"
    "see); the messages travel as --wire says and the bits reported are the bytes sent.\n"
    "--workers is the rank count, --split is contiguous, --threads is ignored; not supported:\n"
    "qsgd, sgd, --fstar auto, --cache.\n"
    "Rank 0 prints the progress and writes --model, --trace and --checkpoint (it gathers every\n"
    "rank's state); --resume reads the file on every rank and needs as many ranks as it has\n"
    "workers (a checkpoint of `memsgd train --workers N --split contiguous` resumes here too).\n"
    "SIGINT/SIGTERM to the ranks (Slurm at its time limit): every rank stops at the same round,\n"
    "the checkpoint is saved, exit 130.";

// The whole data set's f(x), |grad f(x)|^2 and accuracy from every rank's rows (collective).
Evaluation Evaluate(const Objective& obj, const Dataset& local, std::span<const double> x,
                        Offset total_rows, MPI_Comm comm) {
  const auto d = x.size();
  Objective data_term = obj;
  data_term.lambda = 0;
  const double m = static_cast<double>(local.NumRows());
  std::vector<double> buf(d + 2);
  const double mean = FullLossGrad(data_term, local, x, std::span<double>(buf.data() + 2, d));
  buf[0] = mean * m;
  buf[1] = std::round(Accuracy(local, x) * m);
  for (std::size_t j = 0; j < d; ++j) buf[j + 2] *= m;
  MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_DOUBLE, MPI_SUM, comm);
  const double n = static_cast<double>(total_rows);
  Evaluation ev;
  double reg = 0, g2 = 0;
  for (std::size_t j = 0; j < d; ++j) {
    reg += RegValue(obj.reg, obj.lambda, x[j]);
    const double g = buf[j + 2] / n + RegDerivative(obj.reg, obj.lambda, x[j]);
    g2 += g * g;
  }
  ev.loss = buf[0] / n + reg;
  ev.grad_norm2 = g2;
  ev.accuracy = buf[1] / n;
  return ev;
}

// Only rank 0 speaks while the command line is parsed (every rank parses it the same way).
struct Mute {
  explicit Mute(bool on) {
    if (!on) return;
    std::fflush(stdout);
    std::fflush(stderr);
    out_ = ::dup(1);
    err_ = ::dup(2);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::close(null);
  }
  ~Mute() {
    if (out_ < 0) return;
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(out_, 1);
    ::dup2(err_, 2);
    ::close(out_);
    ::close(err_);
  }
  int out_ = -1, err_ = -1;
};

int Train(int argc, char** argv, int rank, int size) {
  cli::TrainArgs a;
  po::options_description opts("Options (those of memsgd train)");
  cli::AddTrainOptions(opts, a);
  po::variables_map vm;
  TrainConfig cfg;
  {
    Mute mute(rank != 0);
    if (const int rc = cli::ParseCommandLine("train", argc, argv, opts, {{"data", &a.data_path}},
                                             kHelp, "no data file given", vm, "memsgd-mpi");
        rc >= 0)
      return rc;
    std::string problem;
    if (a.method == "mem-sgd") a.method = a.no_memory ? "sgd-compressed" : "ef14-sgd";
    bool ef_method = false;
    try {
      ef_method = IsErrorFeedbackFamily(MethodFromName(a.method));
    } catch (const std::exception&) {
    }
    if (!ef_method)
      problem = "--method " + a.method + " does not run over MPI ranks (use ef14-sgd, ef21, "
                "ef21-sgd, ef21-sgdm, ef21-sgd2m, sgd-compressed or mem-sgd)";
    else if (vm.count("workers") && !vm["workers"].defaulted() && a.workers != size)
      problem = "--workers " + std::to_string(a.workers) + ": memsgd-mpi runs one worker per rank (" +
                std::to_string(size) + " ranks); omit --workers or set it to -np";
    else if (a.split != "contiguous")
      problem = "--split " + a.split + ": each rank reads a contiguous shard of the file (--split contiguous)";
    else if (a.compressor == "qsgd")
      problem = "--compressor qsgd is not sent over MPI (top, rand, ultra, identity are)";
    else if (a.fstar_arg == "auto")
      problem = "--fstar auto needs the whole data set in one process: give --fstar VALUE (memsgd optimum)";
    else if (a.load.cache || !a.load.cache_file.empty())
      problem = "--cache: each rank reads its own byte range of the text file";
    if (problem.empty()) {
      try {
        cfg = cli::TrainConfigFromArgs(a, vm);
      } catch (const std::exception& e) {
        problem = e.what();
      }
    }
    if (!problem.empty()) {
      std::fprintf(stderr, "%s: %s\n", kWho, problem.c_str());
      return cli::kUsage;
    }
  }
  int outputs = rank == 0 ? cli::CheckOutputs(a, kWho) : cli::kOk;  // rank 0 writes them
  MPI_Bcast(&outputs, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (outputs != cli::kOk) return outputs;
  cfg.workers = size;
  cfg.threads = 0;
  const bool quiet = a.quiet;

  mpi::Shard shard;
  Dataset test;
  try {
    ReadOptions ro;
    ro.threads = a.load.parse_threads;
    if (vm.count("positive-label")) ro.positive_label = a.positive_label;
    shard = mpi::ReadShard(a.data_path, ro, MPI_COMM_WORLD);
    if (a.normalize) shard.data.NormalizeRows();
    mpi::Agree(MPI_COMM_WORLD, [&] {
      if (rank == 0 && !a.test_path.empty()) {
        ReadOptions to;
        to.num_features = shard.data.NumFeatures();
        to.ignore_extra_features = true;
        to.fixed_positive_label = shard.data.positive_label;
        test = ReadLibsvm(a.test_path, to);
        if (a.normalize) test.NormalizeRows();
        cfg.test = &test;
      }
      cfg.objective = Objective::FromName(a.objective, cli::TrainLambda(a, vm, shard.total_rows));
      TrainConfig local = cfg;
      local.workers = 1;
      ValidateConfig(local, shard.data);
    });
  } catch (const mpi::CollectiveError& e) {
    if (rank == 0 || rank == e.Origin())
      std::fprintf(stderr, "%s: %s%s\n", kWho, e.what(),
                   rank == e.Origin() && rank != 0 ? (" (rank " + std::to_string(rank) + ")").c_str() : "");
    return cli::kDataError;
  }
  if (rank == 0 && !quiet) {
    std::fprintf(stderr,
                 "data %s: n=%lld d=%d nnz=%lld (%s), %d ranks, rank 0 holds %lld rows\n"
                 "method %s compressor %s k=%g wire %s | objective %s lambda=%g\n",
                 a.data_path.c_str(), static_cast<long long>(shard.total_rows),
                 shard.data.NumFeatures(), static_cast<long long>(shard.total_nnz),
                 shard.data.IsDense() ? "dense" : "sparse", size,
                 static_cast<long long>(shard.data.NumRows()), MethodName(cfg.method).c_str(),
                 cfg.compressor.Name().c_str(), cfg.compressor.k, a.wire.c_str(),
                 cfg.objective.Name().c_str(), cfg.objective.lambda);
  }

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  cfg.stop = &g_stop;
  mpi::MpiTransport transport(MPI_COMM_WORLD);
  ef::Distributed dist;
  dist.transport = &transport;
  dist.total_rows = shard.total_rows;
  dist.evaluate = [&](std::span<const double> x) {
    return Evaluate(cfg.objective, shard.data, x, shard.total_rows, MPI_COMM_WORLD);
  };
  auto progress = [&](const TracePoint& p) {
    if (!quiet && rank == 0) cli::PrintProgress(p);
  };
  ef::TrainDetails details;
  try {
    details = ef::TrainErrorFeedbackDetailed(
        cfg, shard.data, progress, cfg.ef_full_init ? ef::InitKind::kFull : ef::InitKind::kStochastic,
        true, &dist);
  } catch (const CheckpointError& e) {
    // Raised on every rank alike (the resume checks agree before any work): no rank waits.
    using Scope = CheckpointError::Scope;
    if (rank == 0 && e.GetScope() != Scope::kThisProcess)
      std::fprintf(stderr, "%s: %s\n", kWho, e.what());
    else if (e.GetScope() == Scope::kThisProcess)
      std::fprintf(stderr, "%s: rank %d: %s\n", kWho, rank, e.what());
    return e.GetKind() == CheckpointError::Kind::kMismatch ? cli::kUsage : cli::kDataError;
  } catch (const std::exception& e) {
    // The other ranks may be inside a collective: end the whole job.
    std::fprintf(stderr, "%s: rank %d: %s\n", kWho, rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, cli::kDataError);
  }
  TrainResult res = std::move(details.result);
  res.uplink_bits_values = details.comm.uplink_values;
  res.uplink_bits_indexed = details.comm.uplink_indexed;
  res.downlink_bits_dense = details.comm.downlink_dense;
  res.downlink_bits_sparse = details.comm.downlink_sparse;

  // What the ranks sent, against the accounting (uplink_indexed is the mean over the workers).
  double sent[4] = {static_cast<double>(transport.PayloadBytes()),
                    static_cast<double>(transport.HeaderBytes()), transport.ExchangeSeconds(),
                    static_cast<double>(transport.InitBytes())};
  MPI_Allreduce(MPI_IN_PLACE, sent, 4, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  if (rank != 0) {  // the exit codes of rank 0 (mpirun reports the first non-zero one)
    if (res.status == TrainStatus::kInterrupted) return cli::kInterrupted;
    return res.status == TrainStatus::kDiverged ? cli::kDiverged : cli::kOk;
  }
  cli::PrintResumed(a, res, static_cast<double>(shard.total_rows), kWho);
  int rc = cli::kOk;
  try {
    if (!a.trace_path.empty()) WriteTraceCsv(res.trace, a.trace_path);
    if (!a.model_path.empty() && res.status != TrainStatus::kDiverged)
      WriteModel(MakeLinearModel(cfg.objective, shard.data, res.x), a.model_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kWho, e.what());
    rc = cli::kDataError;
  }
  cli::PrintResult(cfg, res);
  const double rounds = static_cast<double>(details.comm.rounds);
  std::printf("mpi: ranks=%d rounds=%.0f payload_bytes=%.0f init_bytes=%.0f header_bytes=%.0f "
              "payload_bits_per_worker=%.6g exchange_seconds_per_round=%.4g\n",
              size, rounds, sent[0], sent[3], sent[1], 8 * sent[0] / size,
              rounds > 0 ? sent[2] / size / rounds : 0.0);
  if (res.status == TrainStatus::kDiverged) {
    std::fprintf(stderr, "%s: %s\n", kWho, res.message.c_str());
    return cli::kDiverged;
  }
  if (res.status == TrainStatus::kInterrupted) {
    cli::PrintInterrupted(a, res, kWho);
    return cli::kInterrupted;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int rc = cli::kUsage;
  if (argc >= 2 && std::strcmp(argv[1], "train") == 0) {
    rc = Train(argc - 1, argv + 1, rank, size);
  } else if (rank == 0) {
    std::fprintf(stderr, "%s\n", argc >= 2 && (std::strcmp(argv[1], "--help") == 0 ||
                                               std::strcmp(argv[1], "-h") == 0)
                                     ? kHelp
                                     : "usage: mpirun -np N memsgd-mpi train DATA [options] "
                                       "(memsgd-mpi train --help)");
    if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0))
      rc = cli::kOk;
  }
  MPI_Finalize();
  return rc;
}
