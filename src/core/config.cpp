// The run configuration: method names, the checks of a TrainConfig against the data, and the
// step schedule it resolves to. Shared by every engine (engine/*.cpp) and the checkpoint files.
#include "memsgd/config.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace memsgd {

Method MethodFromName(const std::string& name) {
  if (name == "sgd") return Method::kSgd;
  if (name == "mem-sgd") return Method::kMemSgd;
  if (name == "qsgd") return Method::kQsgd;
  if (name == "ef14-sgd" || name == "ef14") return Method::kEf14;
  if (name == "ef21") return Method::kEf21;
  if (name == "ef21-sgd") return Method::kEf21Sgd;
  if (name == "ef21-sgdm") return Method::kEf21Sgdm;
  if (name == "ef21-sgd2m") return Method::kEf21Sgd2m;
  if (name == "sgd-compressed") return Method::kSgdCompressed;
  throw std::invalid_argument("unknown method '" + name +
                              "' (supported: sgd, mem-sgd, qsgd, ef14-sgd, ef21, ef21-sgd, "
                              "ef21-sgdm, ef21-sgd2m, sgd-compressed)");
}

std::string MethodName(Method m) {
  switch (m) {
    case Method::kSgd: return "sgd";
    case Method::kMemSgd: return "mem-sgd";
    case Method::kQsgd: return "qsgd";
    case Method::kEf14: return "ef14-sgd";
    case Method::kEf21: return "ef21";
    case Method::kEf21Sgd: return "ef21-sgd";
    case Method::kEf21Sgdm: return "ef21-sgdm";
    case Method::kEf21Sgd2m: return "ef21-sgd2m";
    case Method::kSgdCompressed: return "sgd-compressed";
  }
  return "?";
}

bool IsErrorFeedbackFamily(Method m) {
  return m == Method::kEf14 || m == Method::kEf21 || m == Method::kEf21Sgd ||
         m == Method::kEf21Sgdm || m == Method::kEf21Sgd2m || m == Method::kSgdCompressed;
}

void ValidateConfig(const TrainConfig& c, const Dataset& data) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument(msg); };
  if (data.NumRows() == 0) fail("the training set has no rows");
  if (data.NumFeatures() == 0) fail("the training set has no features");
  if (!(c.epochs > 0) || !std::isfinite(c.epochs))
    fail("--epochs must be > 0 (got " + std::to_string(c.epochs) + ")");
  if (!(c.objective.lambda >= 0) || !std::isfinite(c.objective.lambda))
    fail("--lambda must be >= 0 (got " + std::to_string(c.objective.lambda) + ")");
  if (c.threads < 0) fail("--threads must be >= 0 (got " + std::to_string(c.threads) + ")");
  if (c.gamma && !(*c.gamma > 0 && std::isfinite(*c.gamma)))
    fail("--gamma must be > 0 (got " + std::to_string(*c.gamma) + ")");
  if (c.shift && !(*c.shift > 0 && std::isfinite(*c.shift)))
    fail("--shift must be > 0 (got " + std::to_string(*c.shift) + ")");
  if (c.schedule == ScheduleKind::kPaper && c.objective.lambda == 0)
    fail("--step paper divides by lambda: use --lambda > 0 or another --step");
  if (c.eval_every < 0) fail("--eval-every must be >= 0");
  if (c.flush_every < 0 || c.flush_every > (Offset{1} << 20))
    fail("--flush-every must be in 0..1048576 (0: auto; got " + std::to_string(c.flush_every) + ")");
  if (!(c.init_std >= 0) || !std::isfinite(c.init_std))
    fail("--init-std must be finite and >= 0 (got " + std::to_string(c.init_std) + ")");
  if (c.epochs * static_cast<double>(data.NumRows()) > 1e18)
    fail("--epochs " + [&] {
      char b[32];
      std::snprintf(b, sizeof b, "%g", c.epochs);
      return std::string(b);
    }() + " times n = " + std::to_string(data.NumRows()) + " rows is too many samples (at most 1e18)");
  if ((c.method == Method::kQsgd || c.compressor.kind == CompressorKind::kQsgd) &&
      (c.compressor.qsgd_bits < 1 || c.compressor.qsgd_bits > 16))
    fail("--qsgd-bits must be in 1..16 (got " + std::to_string(c.compressor.qsgd_bits) + ")");
  const auto& k = c.compressor;
  if ((k.kind == CompressorKind::kTopK || k.kind == CompressorKind::kRandK) &&
      k.k > data.NumFeatures())
    fail("--k " + std::to_string(k.k) + " exceeds the number of features d = " +
         std::to_string(data.NumFeatures()));
  if (c.checkpoint_every < 0) fail("--checkpoint-every must be >= 1");
  if (IsErrorFeedbackFamily(c.method)) {
    if (c.workers < 1) fail("--workers must be >= 1");
    if (c.workers > data.NumRows()) fail("--workers exceeds the number of rows");
    if (c.batch < 1) fail("--batch must be >= 1");
    if (!(c.eta > 0 && c.eta <= 1)) fail("--eta must be in (0, 1]");
  }
}

StepSchedule ResolveSchedule(const TrainConfig& c, const Dataset& data) {
  StepSchedule s;
  s.kind = c.schedule;
  s.gamma = c.gamma.value_or(StepSchedule::DefaultGamma(c.schedule));
  s.lambda = c.objective.lambda;
  s.n = static_cast<double>(data.NumRows());
  const double d = data.NumFeatures();
  if (c.shift) {
    s.shift = *c.shift;
  } else if (c.method == Method::kSgd || c.method == Method::kQsgd ||
             c.compressor.kind == CompressorKind::kIdentity ||
             c.compressor.kind == CompressorKind::kQsgd) {
    s.shift = d;  // the paper's recorded full-SGD runs used a = d
  } else {
    s.shift = 1.0 / c.compressor.Fraction(data.NumFeatures());  // a = d/k
  }
  return s;
}

}  // namespace memsgd
