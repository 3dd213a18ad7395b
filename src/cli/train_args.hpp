// The `memsgd train` command line: its option table and the mapping from the parsed options to
// a TrainConfig, apart from the run (cmd_train.cpp) so that the mapping is tested on its own
// (tests/test_train_args.cpp) and other front ends can share the same options.
#pragma once
#include <boost/program_options.hpp>

#include <string>

#include "data_options.hpp"
#include "memsgd/train.hpp"

namespace memsgd::cli {

// Every value of the command line, with the defaults of the option table.
struct TrainArgs {
  std::string data_path, test_path, fstar_arg, model_path, trace_path, checkpoint_path,
      resume_path;
  std::string method, compressor, objective, step, averaging, sampling, write, threads, split,
      reg, ef_init, wire;
  double k = 1, lambda = -1, gamma = 0, shift = 0, epochs = 5, eta = 0.01, init_std = 0.01;
  double positive_label = 0;
  int qsgd_bits = 4, workers = 20, batch = 1;
  long long eval_every = 0, checkpoint_every = 0, flush_every = 0;
  unsigned long long seed = 1;
  bool no_memory = false, scaled = false, normalize = false, quiet = false;
  DataLoadOptions load;
};

extern const char* const kTrainHelp;

// The option table of `memsgd train` (the data-loading options included), bound to `a`.
void AddTrainOptions(boost::program_options::options_description& opts, TrainArgs& a);

// The run configuration the options ask for, checked as far as it can be without the data
// (lambda's default 1/n is set by TrainLambda once n is known). Throws std::invalid_argument
// with the message a user sees.
TrainConfig TrainConfigFromArgs(const TrainArgs& a, const boost::program_options::variables_map& vm);

// --lambda, or its default: 1/n (0.1 for nonconvex-logistic).
double TrainLambda(const TrainArgs& a, const boost::program_options::variables_map& vm, Offset n);

// --threads: a number in [0, 4096] or "auto" (all cores). Throws std::invalid_argument.
int ParseThreads(const std::string& s);

}  // namespace memsgd::cli
