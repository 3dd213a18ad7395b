// Training: the trace, the result and the entry point shared by the CLI, tests and benchmarks
// (the configuration is in config.hpp).
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "memsgd/config.hpp"

namespace memsgd {

struct TracePoint {
  double epoch = 0;
  Offset samples = 0;
  double seconds = 0;       // training time only (evaluation excluded)
  double loss = 0;          // full objective at the evaluated (averaged) iterate
  double suboptimality = NAN;
  double grad_norm2 = NAN;
  double test_accuracy = NAN;
  double train_accuracy = NAN;
  double bits = 0;          // Mem-SGD: total bits sent by all workers; EF: uplink per worker
};

enum class TrainStatus { kOk, kDiverged, kInterrupted, kReachedTarget };

struct TrainResult {
  std::vector<double> x;  // the evaluated iterate (averaged per config.averaging)
  std::vector<double> x_last;
  std::vector<std::vector<double>> memories;  // each worker's final memory (Mem-SGD)
  std::vector<TracePoint> trace;
  TrainStatus status = TrainStatus::kOk;
  std::string message;      // why it stopped, when not kOk
  Offset samples = 0;
  double train_seconds = 0;
  // Error-feedback methods: communication per worker (NaN otherwise). Uplink counted as values
  // only (32 bits a value, the EF21 authors' way) and as values plus indices; downlink of x.
  double uplink_bits_values = NAN, uplink_bits_indexed = NAN;
  double downlink_bits_dense = NAN, downlink_bits_sparse = NAN;
  Offset resumed_from = -1;      // samples already done in the checkpoint resumed from (-1: none)
  int checkpoints_written = 0;   // checkpoint files saved by this run
  // Parallel Mem-SGD/SGD/QSGD: the most steps a worker combined into one write (1: every write
  // at once; 0: sequential).
  Offset flush_every = 0;
  std::vector<std::string> warnings;  // e.g. a checkpoint that could not be written (run goes on)
  double SamplesPerSecond() const { return train_seconds > 0 ? samples / train_seconds : 0; }
};

// Called at every checkpoint (outside the timed region).
using TraceCallback = std::function<void(const TracePoint&)>;

// Runs the configured method. Sequential (threads = 0) runs are bit-for-bit repeatable.
TrainResult Train(const TrainConfig& config, const Dataset& data, const TraceCallback& on_point = {});

// The EF21-SGDM paper's n-worker methods (src/core/engine/error_feedback.cpp).
TrainResult TrainErrorFeedback(const TrainConfig& config, const Dataset& data,
                               const TraceCallback& on_point);

}  // namespace memsgd
