// Checkpoint files of the Mem-SGD / SGD / QSGD engine (src/core/engine/mem_sgd.cpp's Runner): the complete state
// of a run, so that `--resume FILE` continues it exactly where it stopped.
//
// What is saved: the iterate x, the averaged iterate and its averaging weight, every worker's
// memory m_w, RNG state, bit count and step count, the shuffle stream's RNG state and the current
// permutation, the samples processed, the training time so far and the trace so far. A checkpoint
// is taken at a segment end (the engine's evaluation points: every --eval-every samples and every
// epoch end) once --checkpoint-every samples have passed since the last one, and when the run is
// interrupted (then possibly in the middle of a segment: each worker's progress in the segment is
// saved too). Nothing is saved once a run has diverged.
//
// Exactness. The sequential solver is deterministic, so a resumed run produces bit for bit the
// same iterate, averaged iterate, memories and trace (all but the seconds column) as one that was
// never interrupted. (The lazy sequential SGD kernel keeps x = scale * v inside a segment, and
// the sequential solver's lazy average is A u + B x; an interrupt in mid-segment saves v and the
// scale, u and A, B unfolded, so that case is exact too; so is the lazy Mem-SGD memory
// m_j = b_j + R'(x_j) S, saved as b and S.) The parallel engine restores the same
// state; what follows is as
// nondeterministic as any parallel run (thread interleaving), so results are statistically
// equivalent.
//
// File format (version 3; version 2 had no memory shift, version 1 no avg_a/avg_b): "MEMSGDCK" magic, u32 version, u32 byte-order mark 0x01020304, u64
// payload length, u64 payload checksum, then the payload: fixed-width native little-endian
// integers and IEEE doubles (see checkpoint.cpp). The payload starts with two fingerprints: one
// of the options that determine the trajectory (method, compressor, memory, objective and
// lambda, resolved step schedule, averaging, sampling, epochs, threads, write policy, resolved
// eval-every, seed, init-std) and one of the training data (shape and content). Resuming with a
// different configuration or data set is refused (CheckpointError::Kind::kMismatch). --fstar,
// --test, --checkpoint-every and progress options may differ (they do not change the iterates);
// --epochs may not (a longer run would checkpoint and average at different points).
//
// The error-feedback methods have their own format (ef_checkpoint.hpp, magic "MEMSGDEF"); each
// reader refuses the other kind naming the methods it belongs to (kMismatch).
//
// Files are written atomically (temporary name + rename, WriteFileAtomically), so a run killed
// while saving leaves the previous checkpoint intact.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "memsgd/dataset.hpp"
#include "memsgd/rng.hpp"
#include "memsgd/train.hpp"

namespace memsgd {

class CheckpointError : public std::runtime_error {
 public:
  enum class Kind {
    kUnreadable,  // cannot open or read the file
    kCorrupt,     // not a checkpoint, another version, truncated, checksum or size mismatch
    kMismatch,    // a valid checkpoint of a different run (options or data differ)
  };
  // Over MPI ranks (memsgd-mpi), where the error was found: on every process alike (rank 0
  // reports it), on this process only (it reports it), or on another process (this one stops
  // because that one could not go on).
  enum class Scope { kEveryProcess, kThisProcess, kElsewhere };
  CheckpointError(Kind kind, const std::string& message, Scope scope = Scope::kEveryProcess)
      : std::runtime_error(message), kind_(kind), scope_(scope) {}
  Kind GetKind() const noexcept { return kind_; }
  Scope GetScope() const noexcept { return scope_; }

 private:
  Kind kind_;
  Scope scope_;
};

struct CheckpointWorker {
  std::vector<double> m;       // memory (zeros for SGD and the no-memory ablation)
  Rng::State rng{};
  double bits = 0;
  double scale = 1;            // lazy sequential SGD: x is saved as v with x = scale * v
  double shift = 0;            // lazy Mem-SGD memory: m is saved as b with m_j = b_j + R'(x_j) shift
  Offset steps = 0;            // samples this worker processed in the whole run
  Offset segment_steps = 0;    // of which in the segment in progress (0 at a segment end)
};

struct CheckpointState {
  std::uint64_t config_hash = 0;  // ConfigFingerprint
  std::uint64_t data_hash = 0;    // DataFingerprint
  // Shape, kept in clear for messages (also covered by the fingerprints).
  Offset n = 0;
  Index d = 0;
  int threads = 0;
  Offset total = 0;          // samples the run will process in all
  Offset samples = 0;        // samples processed (sum of the workers' steps)
  Offset segment_begin = 0;  // first sample of the segment in progress (== samples at its end)
  double train_seconds = 0;
  std::vector<double> x, avg;
  double avg_weight = 0;     // parallel snapshot averaging: sum of the weights so far
  // Sequential lazy averaging: the average is avg_a * avg + avg_b * x (1 and 0 when folded).
  double avg_a = 1, avg_b = 0;
  bool has_perm = false;     // false with sampling with replacement (the permutation is unused)
  std::vector<Offset> perm;
  Rng::State shuffle_rng{};
  std::vector<CheckpointWorker> workers;
  std::vector<TracePoint> trace;
};

// Fingerprint of the options that determine the trajectory (see above), with the schedule and
// eval-every resolved for `data`.
std::uint64_t ConfigFingerprint(const TrainConfig& config, const Dataset& data);
// Fingerprint of the data set: n, d, storage, labels, row pointers, indices and values (O(nnz)).
std::uint64_t DataFingerprint(const Dataset& data);

// Serialises / parses a checkpoint (the bytes of the file). ParseCheckpoint throws
// CheckpointError(kCorrupt) naming `shown` for anything malformed; it never allocates more than
// the input's length justifies.
std::string SerializeCheckpoint(const CheckpointState& state);
CheckpointState ParseCheckpoint(const std::string& bytes, const std::string& shown);

// Writes atomically (throws std::runtime_error naming the file); reads (CheckpointError).
void WriteCheckpoint(const std::string& path, const CheckpointState& state);
CheckpointState ReadCheckpoint(const std::string& path);

}  // namespace memsgd
