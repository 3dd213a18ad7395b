// The run configuration (what every engine and the checkpoint files agree on): the methods,
// TrainConfig, its checks against the data and the step schedule it resolves to
// (src/core/config.cpp). The results and the entry point are in train.hpp.
#pragma once
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "memsgd/compressor.hpp"
#include "memsgd/dataset.hpp"
#include "memsgd/objective.hpp"
#include "memsgd/schedule.hpp"
#include "memsgd/shared_vector.hpp"

namespace memsgd {

enum class Method {
  kSgd,            // plain SGD (parallel: lock-free dense writes, Hogwild!)
  kMemSgd,         // Mem-SGD: compressed update with error-feedback memory (or without: ablation)
  kQsgd,           // QSGD: quantised update, no memory
  kEf14,           // EF14-SGD with n workers (distributed Mem-SGD)
  kEf21,           // EF21, full local gradients
  kEf21Sgd,        // EF21 with stochastic gradients
  kEf21Sgdm,       // EF21-SGDM (momentum eta)
  kEf21Sgd2m,      // EF21-SGD2M (double momentum)
  kSgdCompressed,  // compressed SGD with n workers, no error feedback
};
Method MethodFromName(const std::string& name);  // throws std::invalid_argument
std::string MethodName(Method m);
bool IsErrorFeedbackFamily(Method m);  // the n-worker methods of the EF21-SGDM paper

enum class SplitKind { kContiguous, kRandom, kByLabel };

// How the regulariser's dense gradient enters a step (--reg).
//   kLazy   O(nnz + k) forms on sparse data (the default). Mem-SGD: the memory kept as lines
//           m_j = b_j + R'(x_j) S (sequential: equal to the dense step up to rounding; parallel:
//           each worker's R'(x_j) as it last read x_j, re-read every fold period; docs/speedup.md).
//           Sequential SGD: the weight-scale trick x = s v (exact up to rounding). Parallel SGD
//           (Hogwild!): R'(x_j) on the row's support only, scaled by n / n_j (Niu et al.).
//   kDense  the paper's form: every step adds eta R'(x) to all d coordinates (reads all of x).
// Dense data (or rows with nearly d nonzeros) always use the dense pass, which is then as cheap.
enum class RegForm { kLazy, kDense };

// How the error-feedback methods' message values travel (--wire): float32 (the papers' 32 bits
// per value; a worker rounds its values to float before it updates its own state, so that its
// error-feedback state keeps what the rounding lost) or float64 (64 bits per value, exact).
enum class Wire { kFloat32, kFloat64 };
inline int ValueBits(Wire w) noexcept { return w == Wire::kFloat32 ? 32 : 64; }

struct TrainConfig {
  Method method = Method::kMemSgd;
  CompressorSpec compressor;  // default top-1
  bool memory = true;         // Mem-SGD: false is the no-memory ablation
  Objective objective;        // lambda: set by the caller (CLI default 1/n)

  ScheduleKind schedule = ScheduleKind::kPaper;
  std::optional<double> gamma;  // default StepSchedule::DefaultGamma(schedule)
  std::optional<double> shift;  // paper schedule's a; default d/k (d for sgd and qsgd)
  AveragingKind averaging = AveragingKind::kWeighted;
  bool with_replacement = false;  // sampling: false = reshuffle every epoch

  double epochs = 5;
  int threads = 0;  // 0: sequential solver; P >= 1: P lock-free workers in a task_arena
  WritePolicy write = WritePolicy::kAtomic;
  // Parallel writes combined per worker (--flush-every B): each worker steps on its own copy of
  // x and every B of its steps adds what it changed to the shared vector and copies it again
  // (1: every write at once, the paper's write-through; 0: auto, see mem_sgd.cpp). Ignored by
  // the sequential solver. docs/speedup.md: what a worker reads and writes, and when.
  Offset flush_every = 0;
  RegForm reg = RegForm::kLazy;
  Offset eval_every = 0;  // samples between checkpoints; 0 = ceil(n / 10)
  std::uint64_t seed = 1;
  double init_std = 0.01;  // x_0 ~ N(0, init_std^2) per coordinate (the paper's code); 0 = zeros

  // Error-feedback family (n workers over a split data set).
  int workers = 20;
  SplitKind split = SplitKind::kContiguous;
  int batch = 1;
  double eta = 0.01;  // momentum: EMA weight of the new gradient (1 = no momentum)
  // g_i^0 (and v_i^0): false = one minibatch gradient at x0, true = the full local gradient at x0
  // (both sent uncompressed once and counted); EF21 always uses the full local gradient.
  bool ef_full_init = false;
  Wire wire = Wire::kFloat32;

  std::optional<double> fstar;       // known optimum: trace reports suboptimality
  const Dataset* test = nullptr;     // test set: trace reports test accuracy
  const std::atomic<bool>* stop = nullptr;  // set asynchronously (Ctrl-C): stop at once
  bool evaluate = true;              // false: no checkpoint evaluation (benchmarks time it apart)
  // Stop as soon as a checkpoint's loss <= target (time-to-threshold benchmarks).
  std::optional<double> target_loss;

  // Checkpoint files (sgd, mem-sgd, qsgd; see checkpoint.hpp). Non-empty checkpoint_path: save
  // the full state there (atomically) at the first segment end after every checkpoint_every
  // samples (0: every n samples, once per epoch) and when the run is interrupted.
  std::string checkpoint_path;
  Offset checkpoint_every = 0;
  // Non-empty: continue the run saved in this file (same options and data, else CheckpointError).
  std::string resume_path;
};

// Validates the configuration against the data; throws std::invalid_argument naming the option.
void ValidateConfig(const TrainConfig& config, const Dataset& data);

// Step schedule resolved for this data set (gamma and shift defaults filled in).
StepSchedule ResolveSchedule(const TrainConfig& config, const Dataset& data);

}  // namespace memsgd
