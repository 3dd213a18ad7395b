// Checkpoint files of the error-feedback methods (ef14-sgd, ef21, ef21-sgd, ef21-sgdm,
// ef21-sgd2m, sgd-compressed), in one process (`memsgd train --workers N`) or over MPI ranks
// (`memsgd-mpi`, where the process that runs worker 0 gathers the other ranks' workers and
// writes the file).
//
// What is saved, at a round boundary: the round, x^t (brought up to date), g^t, the downlink
// totals, the training time, the trace so far, and per worker its g_i or e_i, its momenta, its
// compressor stream, its bit and sample counts, and its sampler (permutation, cursor, stream).
// The engines are deterministic whatever the thread count, so a resumed run produces bit for
// bit the iterates, trace (all but the seconds column) and bits of the run that was never
// stopped. A checkpoint written in one process can be resumed over as many MPI ranks as it has
// workers (--split contiguous) and the other way round: the state is the same.
//
// A checkpoint is taken at the run's checkpoints (--eval-every, epoch ends) once
// --checkpoint-every samples have passed since the last one (default: an epoch's), and when the
// run is interrupted; never at the end, never after a divergence.
//
// Resuming checks, before any work: the worker count (a clear message naming the ranks), d, a
// fingerprint of the options that determine the trajectory (RunFingerprint; --threads, --fstar,
// --test and progress options may differ) and, per worker, a fingerprint of its rows
// (ShardFingerprint): another data set, split or row normalisation is refused.
//
// File format (version 1): the framing of checkpoint.hpp with the magic "MEMSGDEF"; a file of
// the other kind is refused naming the methods it belongs to.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "memsgd/checkpoint.hpp"
#include "memsgd/error_feedback.hpp"

namespace memsgd::ef {

// The options that determine the trajectory, resolved (schedule, rounds, eval-every).
std::uint64_t RunFingerprint(const TrainConfig& config, const Options& options);
// The rows of a shard in order: their labels, indices and values, and d.
std::uint64_t ShardFingerprint(const Dataset& data, std::span<const Offset> rows);

// A list of worker states as bytes (what each MPI rank sends to be written) and back.
std::string SerializeWorkers(std::span<const WorkerState> workers);
std::vector<WorkerState> ParseWorkers(std::string_view bytes, const std::string& shown);

std::string SerializeRunState(const RunState& state);
// Throws CheckpointError (kCorrupt for anything malformed, kMismatch for a Mem-SGD checkpoint).
RunState ParseRunState(const std::string& bytes, const std::string& shown);

void WriteRunState(const std::string& path, const RunState& state);  // atomically
RunState ReadRunState(const std::string& path);

}  // namespace memsgd::ef
