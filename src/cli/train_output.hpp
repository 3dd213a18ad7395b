// Output checks and the result line shared by `memsgd train` and `memsgd-mpi train`.
#pragma once
#include "train_args.hpp"
#include "memsgd/train.hpp"

namespace memsgd::cli {

// Checks, before any data is read, that no output replaces an input or another output and that
// every output can be created (a probe file next to it); the checkpoint to resume must be
// readable. Errors go to stderr as "WHO: ...". Returns kOk or the exit code.
int CheckOutputs(const TrainArgs& a, const char* who);

// One progress line on stderr (a checkpoint of the trace).
void PrintProgress(const TracePoint& p);

// On stderr: "resumed from FILE at sample S (epoch E)" (unless --quiet) and the run's warnings.
void PrintResumed(const TrainArgs& a, const TrainResult& res, double rows, const char* who);

// On stderr, for an interrupted run: where it stopped and the checkpoint to continue from.
void PrintInterrupted(const TrainArgs& a, const TrainResult& res, const char* who);

// The result line on stdout (the last line of every run).
void PrintResult(const TrainConfig& cfg, const TrainResult& res);

}  // namespace memsgd::cli
