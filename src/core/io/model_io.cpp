// LIBLINEAR model files (format and sign convention in model_io.hpp).
#include "memsgd/model_io.hpp"

#include "memsgd/atomic_file.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "memsgd/libsvm.hpp"

namespace memsgd {
namespace {

constexpr const char* kClassifiers[] = {"L2R_LR",         "L2R_L2LOSS_SVC_DUAL", "L2R_L2LOSS_SVC",
                                        "L2R_L1LOSS_SVC_DUAL", "L1R_L2LOSS_SVC",  "L1R_LR",
                                        "L2R_LR_DUAL"};
constexpr const char* kRegressors[] = {"L2R_L2LOSS_SVR", "L2R_L2LOSS_SVR_DUAL",
                                       "L2R_L1LOSS_SVR_DUAL"};

bool IsOneOf(const std::string& s, std::span<const char* const> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return s == n; });
}

// Whole-token strtod: overflow and trailing garbage are errors; underflow to a subnormal or
// zero is accepted.
bool ParseDouble(const std::string& tok, double& out) {
  if (tok.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(tok.c_str(), &end);
  if (end != tok.c_str() + tok.size()) return false;
  if (errno == ERANGE && std::isinf(out)) return false;
  return true;
}

bool ParseInt(const std::string& tok, long long& out) {
  if (tok.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoll(tok.c_str(), &end, 10);
  return end == tok.c_str() + tok.size() && errno == 0;
}

std::vector<std::string> Tokens(const std::string& line) {
  std::istringstream is(line);
  std::vector<std::string> out;
  for (std::string t; is >> t;) out.push_back(t);
  return out;
}

template <class Row>
double RowDecision(Row row, const double* w, Index nf);

template <>
double RowDecision(SparseRow r, const double* w, Index nf) {
  double s = 0;
  for (Index j = 0; j < r.nnz; ++j) {
    if (r.idx[j] < nf) s += static_cast<double>(r.val[j]) * w[r.idx[j]];
  }
  return s;
}
template <>
double RowDecision(DenseRow r, const double* w, Index nf) {
  double s = 0;
  const Index m = std::min(r.d, nf);
  for (Index j = 0; j < m; ++j) s += static_cast<double>(r.val[j]) * w[j];
  return s;
}

}  // namespace

bool LinearModel::IsRegression() const { return IsOneOf(solver_type, kRegressors); }

LinearModel MakeLinearModel(const Objective& obj, const Dataset& data, std::span<const double> x) {
  if (x.size() != static_cast<std::size_t>(data.NumFeatures())) {
    throw std::invalid_argument("MakeLinearModel: x has " + std::to_string(x.size()) +
                                " entries, the data has " + std::to_string(data.NumFeatures()) +
                                " features");
  }
  LinearModel m;
  m.solver_type = obj.loss == Loss::kSquared ? "L2R_L2LOSS_SVR" : "L2R_LR";
  m.num_features = data.NumFeatures();
  m.w.assign(x.begin(), x.end());
  m.positive_label = std::isnan(data.positive_label) ? 1.0 : data.positive_label;
  m.negative_label = data.negative_label;
  if (std::isnan(m.negative_label) || m.negative_label == m.positive_label) {
    m.negative_label = m.positive_label > -1.0 ? -1.0 : m.positive_label - 1.0;
  }
  m.bias = -1.0;
  return m;
}

void WriteModel(const LinearModel& model, const std::string& path) {
  const std::size_t expected =
      static_cast<std::size_t>(model.num_features) + (model.bias >= 0 ? 1 : 0);
  if (model.num_features < 0 || model.w.size() != expected) {
    throw std::invalid_argument("WriteModel: " + path + ": model has " +
                                std::to_string(model.w.size()) + " weights, expected " +
                                std::to_string(expected));
  }
  for (std::size_t j = 0; j < model.w.size(); ++j) {
    if (!std::isfinite(model.w[j])) {
      throw std::invalid_argument("WriteModel: " + path + ": weight " + std::to_string(j + 1) +
                                  " is not finite");
    }
  }
  if (!std::isfinite(model.positive_label) || !std::isfinite(model.negative_label) ||
      model.positive_label == model.negative_label || !std::isfinite(model.bias)) {
    throw std::invalid_argument("WriteModel: " + path +
                                ": labels must be finite and distinct, bias finite");
  }
  // Exactly LIBLINEAR's save_model layout, written to a temporary name and renamed.
  std::string out;
  out.reserve(96 + 26 * model.w.size());
  char buf[64];
  auto add = [&](const char* fmt, auto... v) {
    std::snprintf(buf, sizeof buf, fmt, v...);
    out += buf;
  };
  out += "solver_type " + model.solver_type + "\n";
  out += "nr_class 2\n";
  add("label %.17g %.17g\n", model.positive_label, model.negative_label);
  add("nr_feature %d\n", static_cast<int>(model.num_features));
  add("bias %.17g\n", model.bias);
  out += "w\n";
  for (double v : model.w) add("%.17g \n", v);
  WriteFileAtomically(path, out);
}

LinearModel ReadModel(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw ParseError(path, 0, "", std::string("cannot open model file: ") + std::strerror(errno));
  }

  LinearModel m;
  bool have_solver = false, have_nr_class = false, have_nr_feature = false, have_bias = false;
  bool have_label = false;
  std::vector<double> labels;
  long long line_no = 0;
  std::string line;
  auto fail = [&](const std::string& token, const std::string& reason) -> ParseError {
    return ParseError(path, line_no, token, reason);
  };

  // Header: `key value...` lines up to `w`.
  bool in_weights = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto tok = Tokens(line);
    if (tok.empty()) throw fail("", "empty line in the model header");
    const std::string& key = tok[0];
    auto want_args = [&](std::size_t k) {
      if (tok.size() != k + 1) {
        throw fail(key, "expected " + std::to_string(k) + " value(s) after '" + key + "'");
      }
    };
    if (key == "solver_type") {
      want_args(1);
      m.solver_type = tok[1];
      if (!IsOneOf(m.solver_type, kClassifiers) && !IsOneOf(m.solver_type, kRegressors)) {
        throw fail(tok[1], "unsupported solver_type (only two-class linear classifiers and "
                           "regression models have one weight vector)");
      }
      have_solver = true;
    } else if (key == "nr_class") {
      want_args(1);
      long long k = 0;
      if (!ParseInt(tok[1], k)) throw fail(tok[1], "nr_class is not an integer");
      if (k != 2) throw fail(tok[1], "only two-class models are supported (nr_class 2)");
      have_nr_class = true;
    } else if (key == "label") {
      if (tok.size() != 3) throw fail(key, "expected two labels (a two-class model)");
      labels.clear();
      for (std::size_t i = 1; i < 3; ++i) {
        double v = 0;
        if (!ParseDouble(tok[i], v) || !std::isfinite(v)) throw fail(tok[i], "bad label");
        labels.push_back(v);
      }
      if (labels[0] == labels[1]) throw fail(tok[2], "the two labels are equal");
      have_label = true;
    } else if (key == "nr_feature") {
      want_args(1);
      long long k = 0;
      if (!ParseInt(tok[1], k) || k < 0 || k > std::numeric_limits<Index>::max() - 1) {
        throw fail(tok[1], "nr_feature is not a valid feature count");
      }
      m.num_features = static_cast<Index>(k);
      have_nr_feature = true;
    } else if (key == "bias") {
      want_args(1);
      if (!ParseDouble(tok[1], m.bias) || !std::isfinite(m.bias)) throw fail(tok[1], "bad bias");
      have_bias = true;
    } else if (key == "rho") {
      want_args(1);  // one-class models only; rejected by solver_type already
    } else if (key == "w") {
      want_args(0);
      in_weights = true;
      break;
    } else {
      throw fail(key, "unknown model header keyword");
    }
  }
  if (!in_weights) {
    ++line_no;
    throw fail("", "unexpected end of file: no 'w' line");
  }
  const long long w_line = line_no;
  if (!have_solver || !have_nr_class || !have_nr_feature || !have_bias) {
    const char* missing = !have_solver     ? "solver_type"
                          : !have_nr_class ? "nr_class"
                          : !have_nr_feature ? "nr_feature"
                                             : "bias";
    throw fail("w", std::string("header lacks '") + missing + "'");
  }
  const bool regression = m.IsRegression();
  if (!regression && !have_label) throw fail("w", "classification model lacks a 'label' line");

  const std::size_t w_size =
      static_cast<std::size_t>(m.num_features) + (m.bias >= 0 ? std::size_t{1} : std::size_t{0});
  m.w.resize(w_size);
  for (std::size_t i = 0; i < w_size; ++i) {
    if (!std::getline(in, line)) {
      ++line_no;
      throw fail("", "unexpected end of file: " + std::to_string(i) + " of " +
                         std::to_string(w_size) + " weights read (w starts after line " +
                         std::to_string(w_line) + ")");
    }
    ++line_no;
    const auto tok = Tokens(line);
    if (tok.size() != 1) {
      throw fail(line, "expected exactly one weight on the line (two-class model)");
    }
    if (!ParseDouble(tok[0], m.w[i]) || !std::isfinite(m.w[i])) throw fail(tok[0], "bad weight");
  }
  while (std::getline(in, line)) {
    ++line_no;
    if (!Tokens(line).empty()) throw fail(Tokens(line)[0], "trailing data after the weights");
  }
  if (in.bad()) throw ParseError(path, 0, "", "read error");

  if (regression) {
    // w predicts the target; the label line (if any) names the labels of targets +1 and -1.
    if (have_label) {
      m.positive_label = labels[0];
      m.negative_label = labels[1];
    }
  } else {
    // w belongs to labels[0]; memsgd's positive class is the larger label.
    m.positive_label = std::max(labels[0], labels[1]);
    m.negative_label = std::min(labels[0], labels[1]);
    if (labels[0] != m.positive_label) {
      for (double& v : m.w) v = -v;
    }
  }
  return m;
}

void DecisionValues(const LinearModel& model, const Dataset& data, std::span<double> out) {
  if (out.size() != static_cast<std::size_t>(data.NumRows())) {
    throw std::invalid_argument("DecisionValues: output size does not match the row count");
  }
  const Index nf = model.num_features;
  if (model.w.size() < static_cast<std::size_t>(nf)) {
    throw std::invalid_argument("DecisionValues: model has fewer weights than features");
  }
  const double bias_term =
      model.bias >= 0 && model.w.size() > static_cast<std::size_t>(nf)
          ? model.w[static_cast<std::size_t>(nf)] * model.bias
          : 0.0;
  const double* w = model.w.data();
  tbb::parallel_for(tbb::blocked_range<Offset>(0, data.NumRows(), 1024), [&](const auto& r) {
    for (Offset i = r.begin(); i != r.end(); ++i) {
      out[static_cast<std::size_t>(i)] =
          data.VisitRow(i, [&](auto row) { return RowDecision(row, w, nf); }) + bias_term;
    }
  });
}

}  // namespace memsgd
