// memsgd predict: apply a LIBLINEAR-format model (memsgd's or liblinear-train's) to a LIBSVM file.
#include <boost/program_options.hpp>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.hpp"
#include "data_options.hpp"
#include "memsgd/libsvm.hpp"
#include "memsgd/model_io.hpp"
#include "memsgd/atomic_file.hpp"
#include "memsgd/objective.hpp"

namespace po = boost::program_options;

namespace memsgd::cli {
namespace {

constexpr const char* kPredictHelp = R"(Usage: memsgd predict MODEL DATA [options]

Applies a linear model in LIBLINEAR's text format (written by memsgd or by liblinear-train;
two-class or regression) to a LIBSVM file read in the model's feature space (features beyond
nr_feature are ignored; the model's positive label is +1, every other label -1).
Prints the accuracy and the mean logistic loss (1/n) sum log(1 + exp(-y w.a)); for regression
models also the mean squared error of w.a against the +1/-1 targets.
)";

// Writes predictions (one original label per line, optionally followed by the probabilities of
// the positive and the negative class, with a LIBLINEAR-style `labels` header) to a temporary
// file renamed into place.
void WritePredictions(const std::string& path, const LinearModel& model,
                      const std::vector<double>& z, bool probabilities) {
  std::string out;
  char buf[96];
  if (probabilities) {
    std::snprintf(buf, sizeof buf, "labels %.17g %.17g\n", model.positive_label, model.negative_label);
    out += buf;
  }
  for (double zi : z) {
    const double label = zi > 0 ? model.positive_label : model.negative_label;
    if (probabilities) {
      const double p_neg = SigmoidNeg(zi);  // 1 / (1 + exp(z))
      std::snprintf(buf, sizeof buf, "%.17g %.17g %.17g\n", label, 1.0 - p_neg, p_neg);
    } else {
      std::snprintf(buf, sizeof buf, "%.17g\n", label);
    }
    out += buf;
  }
  WriteFileAtomically(path, out);
}

}  // namespace

int RunPredict(int argc, char** argv) {
  std::string model_path, data_path, output_path;
  bool probabilities = false;

  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
    ("help,h", "print this help")
    ("output,o", po::value(&output_path),
     "write one predicted original label per line to this file")
    ("probabilities,b", po::bool_switch(&probabilities),
     "with --output: also P(positive) and P(negative) = sigma(+-w.a) on each line, after a "
     "`labels POS NEG` header line (as liblinear-predict -b 1)");
  // clang-format on
  DataLoadOptions load;
  AddDataLoadOptions(opts, load);
  po::variables_map vm;
  if (const int rc = ParseCommandLine("predict", argc, argv, opts,
                                      {{"model", &model_path}, {"data", &data_path}}, kPredictHelp,
                                      "need MODEL and DATA", vm);
      rc >= 0) {
    return rc;
  }
  if (const std::string err = CheckDataLoadOptions(load); !err.empty()) {
    std::fprintf(stderr, "memsgd predict: %s\n", err.c_str());
    return kUsage;
  }
  if (probabilities && output_path.empty()) {
    std::fprintf(stderr, "memsgd predict: --probabilities needs --output FILE\n");
    return kUsage;
  }

  LinearModel model;
  Dataset data;
  try {
    model = ReadModel(model_path);
    ReadOptions ro;
    ro.num_features = model.num_features;
    ro.ignore_extra_features = true;
    ro.fixed_positive_label = model.positive_label;
    data = LoadData("predict", data_path, ro, load, /*main=*/true, /*quiet=*/false);
  } catch (const ParseError& e) {
    std::fprintf(stderr, "memsgd predict: %s\n", e.what());
    return kDataError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd predict: %s\n", e.what());
    return kDataError;
  }

  const auto n = static_cast<std::size_t>(data.NumRows());
  std::vector<double> z(n);
  DecisionValues(model, data, z);
  double correct = 0, logloss = 0, sq = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double y = data.Label(static_cast<Offset>(i));
    correct += ((z[i] > 0 ? 1.0 : -1.0) == y) ? 1.0 : 0.0;
    logloss += Log1pExpNeg(y * z[i]);
    sq += (z[i] - y) * (z[i] - y);
  }
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  std::printf("model %s: %s, %d features, labels %g (+1) %g (-1)%s\n", model_path.c_str(),
              model.solver_type.c_str(), model.num_features, model.positive_label,
              model.negative_label, model.bias >= 0 ? ", with bias feature" : "");
  std::printf("data %s: n=%zu\n", data_path.c_str(), n);
  std::printf("accuracy %.6f (%.0f/%zu)\n", correct * inv_n, correct, n);
  std::printf("logistic_loss %.10g\n", logloss * inv_n);
  if (model.IsRegression()) std::printf("mean_squared_error %.10g\n", sq * inv_n);

  if (!output_path.empty()) {
    try {
      WritePredictions(output_path, model, z, probabilities);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "memsgd predict: %s\n", e.what());
      return kDataError;
    }
  }
  return kOk;
}

}  // namespace memsgd::cli
