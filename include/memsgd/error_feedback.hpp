// The EF21-SGDM paper's n-worker methods (Fatkhullin, Tyurin, Richtarik 2023; update rules in
// ../shared/papers/ef21-sgdm.md section 2), on a generic stochastic-gradient oracle.
//
//   ef14-sgd        p_i = e_i + gamma_t grad_i(x);  D_i = C(p_i);  e_i = p_i - D_i;  x -= sum w_i D_i
//   ef21            x -= gamma_t g;  c_i = C(grad f_i(x) - g_i);  g_i += c_i;  g += sum w_i c_i
//   ef21-sgd        as ef21 with a minibatch stochastic gradient
//   ef21-sgdm       v_i = (1-eta) v_i + eta grad_i(x);  c_i = C(v_i - g_i);  g_i += c_i; ...
//   ef21-sgd2m      v_i as above; u_i = (1-eta) u_i + eta v_i;  c_i = C(u_i - g_i); ...
//   sgd-compressed  x -= gamma_t sum w_i C(grad_i(x))  (no error feedback)
//
// w_i is the worker's weight in f = sum_i w_i f_i: 1/n on the toy problems, m_i/N on a data set
// split into shards of m_i rows (so f is exactly the data set's average loss; with equal shards
// w_i = 1/n as in the paper).
//
// Rounds are synchronous: every worker computes its message from the same x (in parallel with
// oneTBB when threads >= 1), then the server adds the messages in worker order. Worker i draws
// its samples and its compressor's randomness from its own streams, so a run is bit-for-bit the
// same whatever the thread count.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "memsgd/compressor.hpp"
#include "memsgd/dataset.hpp"
#include "memsgd/objective.hpp"
#include "memsgd/rng.hpp"
#include "memsgd/schedule.hpp"
#include "memsgd/train.hpp"
#include "memsgd/transport.hpp"

namespace memsgd::ef {

// Random streams (seed, stream id). x0 and worker 0's reshuffles use the same streams as the
// sequential Mem-SGD solver (src/core/engine/mem_sgd.cpp), so ef14-sgd with one worker replays Mem-SGD.
inline constexpr std::uint64_t kInitStream = 1'000'001;    // x0 ~ N(0, init_std^2)
inline constexpr std::uint64_t kSampleStream = 1'000'002;  // + i: worker i's shard sampling
inline constexpr std::uint64_t kSplitStream = 3'000'001;   // --split random
inline constexpr std::uint64_t kToyNoiseStream = 4'000'000;  // + i: toy oracle noise
// Compressor randomness of worker i: stream i (as Mem-SGD's worker i).

// ---- shards ---------------------------------------------------------------------------------

// Rows of each of `workers` shards (ascending row ids within a shard).
//   contiguous  blocks of floor(N/n) rows in file order, the remainder to the last worker (the
//               EF21 authors' generate_data.py)
//   random      the same blocks over a seeded permutation of the rows
//   by-label    the same blocks over the rows sorted by label (-1 first, file order kept within a
//               label): heterogeneous workers
std::vector<std::vector<Offset>> SplitRows(const Dataset& data, int workers, SplitKind kind,
                                           std::uint64_t seed);

// ---- communication accounting ---------------------------------------------------------------

// IndexBits, MessageCost, DenseBits: memsgd/compress/spec.hpp; each operator's Cost.
using memsgd::DenseBits;
using memsgd::IndexBits;
using memsgd::MessageCost;
// One uplink message of `sent` coordinates of a d-vector compressed with `spec`, v = 32 bits
// per value (Wire::kFloat32, the papers' convention) or 64 (Wire::kFloat64):
//   top / rand / ultra-sparse: values v sent, indexed min(sent (v + ceil log2 d), v d)
//   identity:                  a dense vector, v d for both
//   qsgd:                      QsgdBits(b, d, sent) for both (its encodings carry positions)
// The MPI transport sends exactly these bits (rounded up to whole bytes per message). The
// operator's Cost (memsgd/compress/*.hpp), by the kind.
MessageCost MessageBits(const CompressorSpec& spec, Index d, Index sent, int value_bits = 32) noexcept;

// Totals so far. Uplink: mean over the workers of the bits each sent (every worker sends the
// same with top-k). Downlink, per worker: `dense` = the server broadcasts the dense x every
// round (the paper's convention); `sparse` = it broadcasts only the union of the round's message
// supports with indices (and g^0 once, densely, for the EF21 methods), from which every worker can
// rebuild x itself.
struct Communication {
  double uplink_values = 0;
  double uplink_indexed = 0;
  double downlink_dense = 0;
  double downlink_sparse = 0;
  Offset rounds = 0;        // compressed rounds done (the initial dense round not counted)
  bool init_counted = false;  // the uncompressed g_i^0 round is included in the uplink totals
};

// ---- the oracle -----------------------------------------------------------------------------

// A worker's sampler as a checkpoint saves it: the permutation of its shard's positions, the
// cursor into it and its random stream (the toy oracle: the stream alone).
struct SamplerState {
  std::vector<Offset> perm;
  Offset cursor = 0;
  Rng::State rng{};
};

class GradientOracle {
 public:
  virtual ~GradientOracle() = default;
  virtual Index Dim() const = 0;
  virtual int Workers() const = 0;
  // w_i in f = sum_i w_i f_i (sum 1).
  virtual double Weight(int i) const = 0;
  // out += scale * (a minibatch stochastic gradient of f_i at x). Called concurrently for
  // distinct workers: it may only touch worker i's state. Order of the additions (the Mem-SGD
  // solver's): the data term row by row with coefficient (scale/b) phi'(a.x), then the
  // regulariser's gradient times scale.
  virtual void AddStochastic(int i, std::span<const double> x, double scale,
                             std::span<double> out) = 0;
  // out += scale * grad f_i(x) (the full local gradient).
  virtual void AddFull(int i, std::span<const double> x, double scale, std::span<double> out) = 0;
  // Samples one call costs (trace accounting).
  virtual Offset StochasticSamples(int i) const = 0;
  virtual Offset FullSamples(int i) const = 0;
  // Worker i's sampler (checkpoints). The default: an oracle whose state cannot be saved.
  virtual SamplerState Sampler(int i) const;
  virtual void SetSampler(int i, const SamplerState& state);
};

// Initial g_i^0 (= v_i^0 = u_i^0) of ef21-sgd, ef21-sgdm and ef21-sgd2m: one minibatch stochastic
// gradient at x0 (the KAUST EF21-SGDM code, ../shared/papers/ef21-sgdm.md section 3) or the full
// local gradient (the EF21-SGD code of "Bells & Whistles"). ef21 always starts from the full
// local gradient. Sent uncompressed once and counted.
enum class InitKind { kStochastic, kFull };

// ---- the state of a run (checkpoints: include/memsgd/ef_checkpoint.hpp) -----------------------

// One worker's part of a run's state at a round boundary.
struct WorkerState {
  std::vector<double> state;   // g_i (EF21 family) or e_i (EF14); empty for sgd-compressed
  std::vector<double> v, u;    // momenta: v_i, u_i in the dense form; ~v_i, ~u_i in the lazy one
  double s = 1, a = 1, b = 0;  // lazy form: v_i = s ~v_i, u_i = a ~u_i + b ~v_i (dense: 1, 1, 0)
  Rng::State rng{};            // the compressor's stream
  double values_bits = 0, indexed_bits = 0;
  Offset samples = 0;
  SamplerState sampler;
  std::uint64_t shard_hash = 0;  // ShardFingerprint of the worker's rows (set by the caller)
};

// Everything a run needs to continue from a round boundary exactly as if never stopped.
struct RunState {
  std::uint64_t config_hash = 0;  // RunFingerprint of the options (set by the caller)
  Index d = 0;
  Offset rounds = 0;  // the run's planned rounds
  Offset round = 0;   // rounds done
  double seconds = 0;  // training time so far
  double gam = 0;      // lazy form: the sum of the steps so far (x is saved brought up to date)
  std::vector<double> x, g;  // x^t; g^t (EF21 family, else empty)
  double downlink_dense = 0, downlink_sparse = 0;
  std::vector<WorkerState> workers;  // all n workers, in worker order
  std::vector<TracePoint> trace;     // the trace so far (set by the caller)
};

struct Options {
  Method method = Method::kEf21Sgdm;
  CompressorSpec compressor;
  StepSchedule schedule;  // gamma_t, evaluated at the round t = 0, 1, ...
  double eta = 0.1;       // momentum: EMA weight of the new gradient
  InitKind init = InitKind::kStochastic;
  Offset rounds = 1;
  Offset eval_every = 0;        // rounds between checkpoints (0: only the first and the last)
  Offset rounds_per_epoch = 0;  // also a checkpoint at every epoch end (0: none)
  int threads = 0;              // 0: workers one after the other; P >= 1: P threads (oneTBB)
  std::uint64_t seed = 1;
  const std::atomic<bool>* stop = nullptr;
  Wire wire = Wire::kFloat32;   // message values: rounded to float32, or float64
  // Where the workers run; nullptr: all in this process. The oracle holds the transport's
  // Local() workers (its worker l is the run's worker First() + l).
  Transport* transport = nullptr;
  // Continue this state (its round, x, g and every worker's state; this process's workers taken
  // from workers[First() ..]) instead of starting from x0. Checked by the caller.
  const RunState* resume = nullptr;
};

struct Checkpoint {
  Offset round = 0;
  Offset samples = 0;   // gradient samples drawn by all workers so far (initialisation included)
  double seconds = 0;   // training time so far (checkpoints excluded)
  std::span<const double> x;
  Communication comm;
  bool interrupted = false;  // the last call: options.stop was set
  // The run's state now (a collective call: every process calls it at the same checkpoint, or
  // none does). Holds this process's workers only; config_hash, shard_hash, trace unset.
  std::function<RunState()> capture;
};
// Called at round 0 (after the initialisation), every eval_every rounds, at epoch ends and at the
// end, with the training clock stopped. Returning false stops the run.
using Observer = std::function<bool(const Checkpoint&)>;

struct RunResult {
  std::vector<double> x;  // the last iterate
  Communication comm;
  Offset rounds = 0;
  Offset samples = 0;
  double seconds = 0;
  bool stopped = false;      // the observer returned false
  bool interrupted = false;  // options.stop was set
};

// Runs options.method from x0 on the oracle. Dense reference form: O(d) per worker per round.
RunResult Run(const Options& options, GradientOracle& oracle, std::vector<double> x0,
              const Observer& observer = {});

// ---- oracles --------------------------------------------------------------------------------

// Worker i owns shards[i]; minibatches of `batch` rows, drawn from the shard either by walking a
// permutation reshuffled every time it is used up (Fisher-Yates on stream kSampleStream + i, the
// permutation shuffled in place as the Mem-SGD solver does) or uniformly with replacement.
//
// Distributed runs: the oracle holds only this process's workers and their rows; its worker l
// is the run's worker first_worker + l (its sampling stream) and its weight is its shard's
// size over total_rows, the rows of the whole data set (0: data.NumRows()).
class DatasetOracle final : public GradientOracle {
 public:
  DatasetOracle(const Dataset& data, const Objective& objective,
                std::vector<std::vector<Offset>> shards, int batch, bool with_replacement,
                std::uint64_t seed, int first_worker = 0, Offset total_rows = 0);
  Index Dim() const override { return data_->NumFeatures(); }
  int Workers() const override { return static_cast<int>(shards_.size()); }
  double Weight(int i) const override;
  void AddStochastic(int i, std::span<const double> x, double scale,
                     std::span<double> out) override;
  void AddFull(int i, std::span<const double> x, double scale, std::span<double> out) override;
  SamplerState Sampler(int i) const override;
  // Throws std::invalid_argument unless perm is a permutation of the shard's positions.
  void SetSampler(int i, const SamplerState& state) override;
  Offset StochasticSamples(int) const override { return batch_; }
  Offset FullSamples(int i) const override;
  const std::vector<std::vector<Offset>>& Shards() const { return shards_; }
  // Next row of worker i's sampler (advances it).
  Offset NextRow(int i);

 private:
  struct alignas(kCacheLine) RowSampler {
    std::vector<Offset> perm;  // positions in the shard
    Offset cursor = 0;
    Rng rng;
  };
  const Dataset* data_;
  Objective obj_;
  std::vector<std::vector<Offset>> shards_;
  std::vector<RowSampler> samplers_;
  int batch_;
  bool with_replacement_;
  Offset total_rows_;
};

// The EF21-SGDM paper's Figure 1 problem: f_i(x) = 1/2 |x|^2 on every worker, stochastic
// gradient x + xi with E xi = 0 and E|xi|^2 = sigma^2, xi drawn on worker i's own stream.
//   kGaussian          xi ~ N(0, sigma^2/d I)
//   kSkewedCorrelated  d = 2 only: xi = sigma z (1, -0.8)/sqrt(1.64), z = 2 with probability 0.2
//                      and -1/2 otherwise (E z = 0, E z^2 = 1). Not the paper's noise (its
//                      construction, in the proof of its Theorem 1, was not available): ours is
//                      built so that Top-1 keeps a biased copy of the noise in g_i (see
//                      docs/error_feedback.md), and it reproduces the figure's outcome.
enum class ToyNoise { kGaussian, kSkewedCorrelated };
class QuadraticToyOracle final : public GradientOracle {
 public:
  QuadraticToyOracle(Index d, int workers, double sigma, ToyNoise noise, std::uint64_t seed);
  Index Dim() const override { return d_; }
  int Workers() const override { return static_cast<int>(rngs_.size()); }
  double Weight(int) const override { return 1.0 / static_cast<double>(rngs_.size()); }
  void AddStochastic(int i, std::span<const double> x, double scale,
                     std::span<double> out) override;
  void AddFull(int i, std::span<const double> x, double scale, std::span<double> out) override;
  Offset StochasticSamples(int) const override { return 1; }
  Offset FullSamples(int) const override { return 1; }
  SamplerState Sampler(int i) const override;
  void SetSampler(int i, const SamplerState& state) override;

 private:
  struct alignas(kCacheLine) PaddedRng {
    Rng rng;
  };
  Index d_;
  double sigma_;
  ToyNoise noise_;
  std::vector<PaddedRng> rngs_;
};

// ---- lazy (sparse) form ---------------------------------------------------------------------

// Whether RunLazy applies: sparse data, lambda = 0 (no regulariser gradient), a stochastic method
// (ef14-sgd, ef21-sgd, ef21-sgdm, ef21-sgd2m, sgd-compressed) and either a compressor that picks
// its coordinates blindly (rand-k, scaled or not; ultra-sparse) or top-k for ef14-sgd, ef21-sgd,
// sgd-compressed (and the momentum methods at eta = 1). Top-k with momentum must read every
// coordinate of v_i - g_i, which the (1 - eta) decay changes everywhere: it stays dense.
bool LazyApplicable(const TrainConfig& config, const Dataset& data);

// The same methods at O(b nnz + k) per worker (top-k: O((b nnz + k) log d)) and O(n k) at the
// server per round; the dense form costs O(d) per worker. Just-in-time model updates,
// scalar-times-vector momenta, gradients on the rows' support, a max-tournament tree over |e_i|
// or |g_i| for top-k. Same samples and compressor coordinates as Run; ef14-sgd and
// sgd-compressed give bit-identical iterates, the EF21 methods agree to rounding (~1e-13).
RunResult RunLazy(const Options& options, DatasetOracle& oracle, const Dataset& data,
                  const Objective& objective, std::vector<double> x0,
                  const Observer& observer = {});

// ---- the data-set entry point ---------------------------------------------------------------

// config.checkpoint_path / resume_path: the run is saved every config.checkpoint_every samples
// (default: an epoch's) at the next checkpoint and when interrupted, atomically, by the process
// that runs worker 0; resumed exactly (include/memsgd/ef_checkpoint.hpp).
struct TrainDetails {
  TrainResult result;
  Communication comm;
  Offset rounds_per_epoch = 0;
  bool lazy = false;  // RunLazy ran
};
// A run whose workers are spread over processes (memsgd-mpi): this process holds the rows of
// its workers only (`data`, in file order) and the transport's Local() workers split them with
// config.split's rule applied to the local rows (contiguous: the whole block is the one local
// worker's shard). `evaluate` gives the whole data set's evaluation at x (a collective call:
// every process calls it at the same checkpoints).
struct Distributed {
  Transport* transport = nullptr;
  Offset total_rows = 0;
  std::function<Evaluation(std::span<const double> x)> evaluate;
};

// TrainErrorFeedback with the communication totals (which TrainResult has no fields for yet).
// allow_lazy = false forces the dense reference form.
TrainDetails TrainErrorFeedbackDetailed(const TrainConfig& config, const Dataset& data,
                                        const TraceCallback& on_point,
                                        InitKind init = InitKind::kStochastic,
                                        bool allow_lazy = true,
                                        const Distributed* distributed = nullptr);

}  // namespace memsgd::ef
