// The engines behind Train (train.cpp): each runs one family of methods on a validated
// configuration. Where the workers run (threads here; MPI ranks in src/mpi) is the engine's
// business; the algorithms' steps are shared (step_kernels.hpp, error_feedback.hpp).
#pragma once
#include "memsgd/train.hpp"

namespace memsgd {

// SGD, Mem-SGD and QSGD: the sequential solver (threads = 0) and the lock-free workers
// (engine/mem_sgd.cpp).
TrainResult TrainMemSgd(const TrainConfig& config, const Dataset& data, const TraceCallback& on_point);

// The error-feedback family (EF14, EF21, EF21-SGD, EF21-SGDM, EF21-SGD2M, compressed SGD) with n
// workers over a split data set: TrainErrorFeedback (memsgd/train.hpp), engine/error_feedback.cpp.

}  // namespace memsgd
