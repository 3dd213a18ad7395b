// Values are stored as float32: `memsgd optimum` finds the optimum of the float32-rounded data
// (to its tolerance), which differs from the float64 values' optimum by about the rounding.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "memsgd/dataset.hpp"
#include "memsgd/objective.hpp"
#include "memsgd/optimum.hpp"

using namespace memsgd;

namespace {

// 1-D L2-regularised logistic regression, solved in double by Newton's method:
// f(w) = (1/n) sum log(1 + exp(-y_i v_i w)) + lambda/2 w^2.
double Optimum1D(const std::vector<double>& v, const std::vector<double>& y, double lambda) {
  const double n = static_cast<double>(v.size());
  auto f = [&](double w) {
    double s = 0;
    for (std::size_t i = 0; i < v.size(); ++i) s += std::log1p(std::exp(-y[i] * v[i] * w));
    return s / n + 0.5 * lambda * w * w;
  };
  double w = 0;
  for (int it = 0; it < 100; ++it) {
    double g = lambda * w, h = lambda;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double m = y[i] * v[i];
      const double p = 1.0 / (1.0 + std::exp(m * w));  // sigma(-m w)
      g += -m * p / n;
      h += m * m * p * (1 - p) / n;
    }
    w -= g / h;
    if (std::abs(g) < 1e-17) break;
  }
  return f(w);
}

}  // namespace

TEST_CASE("f* of float32 data: the optimum of the rounded values, not of the float64 ones") {
  // Values float32 cannot hold (0.1, 1/3, 0.7, 2/7), labels chosen so the optimum is finite.
  const std::vector<double> v64 = {0.1, 1.0 / 3, 0.7, 2.0 / 7, 0.1, 1.0 / 3, 0.7, 2.0 / 7};
  const std::vector<double> y = {1, 1, 1, -1, -1, 1, -1, 1};
  const double lambda = 1.0 / 8;
  std::vector<double> v32;
  std::vector<Value> stored;
  std::vector<Offset> ptr{0};
  std::vector<Index> idx;
  for (double v : v64) {
    stored.push_back(static_cast<Value>(v));
    v32.push_back(static_cast<double>(static_cast<Value>(v)));
    idx.push_back(0);
    ptr.push_back(static_cast<Offset>(idx.size()));
  }
  REQUIRE(v32[0] != v64[0]);  // the test's premise: 0.1 is rounded
  const Dataset data = Dataset::FromCsr(1, ptr, idx, stored, y);
  const Objective obj{Loss::kLogistic, Regularizer::kL2, lambda};
  const OptimumResult r = ComputeOptimum(obj, data);
  REQUIRE(r.converged);
  const double f32 = Optimum1D(v32, y, lambda);
  const double f64 = Optimum1D(v64, y, lambda);
  // What the documentation promises: the float32 problem's optimum to 1e-12 relative.
  CHECK(std::abs(r.fstar - f32) <= 1e-12 * std::abs(f32));
  // And what it warns about: the float64 values' optimum is a different number, apart by about
  // the rounding of the values (|df/dv| |dv| with |dv| <= 2^-24 |v|), far above the tolerance.
  const double gap = std::abs(f32 - f64);
  CHECK(gap > 1e-12 * std::abs(f64));
  CHECK(gap <= 1e-7 * std::abs(f64));
  MESSAGE("f* float32 " << f32 << ", float64 " << f64 << ", relative gap " << gap / std::abs(f64));
}
