// Train: the one dispatch from a configuration to its engine (src/core/engine/).
#include "memsgd/train.hpp"

#include "engine/engines.hpp"

namespace memsgd {

TrainResult Train(const TrainConfig& config, const Dataset& data, const TraceCallback& on_point) {
  ValidateConfig(config, data);
  if (IsErrorFeedbackFamily(config.method)) return TrainErrorFeedback(config, data, on_point);
  return TrainMemSgd(config, data, on_point);
}

}  // namespace memsgd
