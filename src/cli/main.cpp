// memsgd: the command-line front end. Parses the subcommand and dispatches; nothing else.
#include <tbb/global_control.h>

#include <cstdio>
#include <cstring>
#include <string_view>

#include "commands.hpp"

namespace {

constexpr const char* kUsageText = R"(memsgd - communication-compressed SGD (Mem-SGD, EF21-SGDM, ...) on multicore machines

Usage: memsgd <command> [options]      (memsgd <command> --help for the options of each)

Commands:
  train      train a linear model on a LIBSVM file (sequential or lock-free parallel Mem-SGD,
             SGD, QSGD, EF14/EF21/EF21-SGD/EF21-SGDM/EF21-SGD2M with n workers)
  predict    apply a model file to a LIBSVM file (accuracy, loss, predictions)
  optimum    compute f* = min f to 1e-12 relative (full-batch Newton-CG; of the data as stored,
             in float32) for suboptimality
  info       rows, features, nonzeros, density, label counts, row-norm range of a data file
  generate   synthetic data shaped like the paper's epsilon or RCV1-test sets
  convert    convert IDX image files (MNIST, Fashion-MNIST) to a binary LIBSVM task

Exit codes: 0 success, 1 usage error, 2 bad input data, 3 diverged (NaN/inf), 130 interrupted.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace memsgd::cli;
#ifdef MEMSGD_STD_THREADS
  // ThreadSanitizer build: see include/memsgd/worker_pool.hpp.
  tbb::global_control serial(tbb::global_control::max_allowed_parallelism, 1);
#endif
  if (argc < 2) {
    std::fputs(kUsageText, stderr);
    return kUsage;
  }
  const std::string_view cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsageText, stdout);
    return kOk;
  }
  if (cmd == "--version") {
    std::puts("memsgd 0.1.0");
    return kOk;
  }
  // Each subcommand sees argv[0] = "memsgd <cmd>" and its own options.
  if (cmd == "train") return RunTrain(argc - 1, argv + 1);
  if (cmd == "predict") return RunPredict(argc - 1, argv + 1);
  if (cmd == "optimum") return RunOptimum(argc - 1, argv + 1);
  if (cmd == "info") return RunInfo(argc - 1, argv + 1);
  if (cmd == "generate") return RunGenerate(argc - 1, argv + 1);
  if (cmd == "convert") return RunConvert(argc - 1, argv + 1);
  std::fprintf(stderr, "memsgd: unknown command '%s'\n\n%s", argv[1], kUsageText);
  return kUsage;
}
