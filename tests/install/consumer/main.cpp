// Reads a LIBSVM file through the installed library, computes f* and trains sequential Mem-SGD
// top-1 on it; checks that the run reaches within 5% of f* and prints the numbers.
#include <cstdio>

#include "memsgd/libsvm.hpp"
#include "memsgd/optimum.hpp"
#include "memsgd/train.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer FILE\n");
    return 2;
  }
  const memsgd::Dataset data = memsgd::ReadLibsvm(argv[1]);
  const memsgd::Objective obj{memsgd::Loss::kLogistic, memsgd::Regularizer::kL2,
                              1.0 / static_cast<double>(data.NumRows())};
  const double fstar = memsgd::ComputeOptimum(obj, data).fstar;
  memsgd::TrainConfig cfg;
  cfg.objective = obj;
  cfg.epochs = 20;
  const memsgd::TrainResult res = memsgd::Train(cfg, data);
  const double loss = res.trace.back().loss;
  std::printf("rows %lld features %d fstar %.10f loss %.10f\n",
              static_cast<long long>(data.NumRows()), data.NumFeatures(), fstar, loss);
  return loss >= fstar && loss <= 1.05 * fstar ? 0 : 1;
}
