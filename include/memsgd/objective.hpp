// Objectives: f(x) = (1/n) sum_i phi(a_i . x, y_i) + R(x), labels y_i in {-1, +1}.
//
//   logistic             phi(z, y) = log(1 + exp(-y z)),     R(x) = lambda/2 |x|^2
//   least-squares        phi(z, y) = 1/2 (z - y)^2,           R(x) = lambda/2 |x|^2
//   nonconvex-logistic   phi(z, y) = log(1 + exp(-y z)),     R(x) = lambda sum_j x_j^2/(1+x_j^2)
//                        (the EF21-SGDM paper's experiments, lambda = 0.1 there)
//
// Per-sample quantities are inline (they run in the hot loop); full-data evaluation is parallel.
#pragma once
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "memsgd/dataset.hpp"
#include "memsgd/kernels/topk.hpp"

namespace memsgd {

enum class Loss { kLogistic, kSquared };
enum class Regularizer { kL2, kNonconvex };

struct Objective {
  Loss loss = Loss::kLogistic;
  Regularizer reg = Regularizer::kL2;
  double lambda = 0.0;

  // Parses "logistic", "least-squares", "nonconvex-logistic"; throws std::invalid_argument.
  static Objective FromName(const std::string& name, double lambda);
  std::string Name() const;
};

// ---- per-sample kernels -------------------------------------------------------------------

// log(1 + exp(-t)) without overflow for any t.
inline double Log1pExpNeg(double t) noexcept {
  return t > 0 ? std::log1p(std::exp(-t)) : -t + std::log1p(std::exp(t));
}
// sigma(-t) = 1 / (1 + exp(t)), stable: e = exp(-|t|), then e / (1 + e) for t >= 0 and
// 1 / (1 + e) for t < 0. Written with selects, not a branch on the sign of the margin (a
// mispredicted branch costs as much as the exp); the same values as the branching form.
[[gnu::always_inline]] inline double SigmoidNeg(double t) noexcept {
  const double e = std::exp(-std::abs(t));
  const double num = t >= 0 ? e : 1.0;
  return num / (1.0 + e);
}

inline double LossValue(Loss loss, double z, double y) noexcept {
  if (loss == Loss::kLogistic) return Log1pExpNeg(y * z);
  const double r = z - y;
  return 0.5 * r * r;
}
// d phi / d z
[[gnu::always_inline]] inline double LossDerivative(Loss loss, double z, double y) noexcept {
  if (loss == Loss::kLogistic) return -y * SigmoidNeg(y * z);
  return z - y;
}
// d^2 phi / d z^2
inline double LossSecondDerivative(Loss loss, double z, double y) noexcept {
  if (loss == Loss::kLogistic) {
    const double s = SigmoidNeg(y * z);
    return s * (1.0 - s);
  }
  return 1.0;
}

inline double RegValue(Regularizer reg, double lambda, double xj) noexcept {
  if (reg == Regularizer::kL2) return 0.5 * lambda * xj * xj;
  const double q = xj * xj;
  return lambda * q / (1.0 + q);
}
inline double RegDerivative(Regularizer reg, double lambda, double xj) noexcept {
  if (reg == Regularizer::kL2) return lambda * xj;
  const double q = 1.0 + xj * xj;
  return lambda * 2.0 * xj / (q * q);
}

// m + eta R'(x_j), the regulariser's term as the memory and the EF oracles add it: for L2 one
// fused multiply-add (kernels::MemoryL2, the same bits as the vector passes), otherwise the
// scalar expression rounded step by step.
inline double MemoryReg(const Objective& obj, double m, double eta, double xj) noexcept {
  if (obj.reg == Regularizer::kL2) return kernels::MemoryL2(m, eta * obj.lambda, xj);
  return m + kernels::NoContract(eta * RegDerivative(obj.reg, obj.lambda, xj));
}

// ---- row kernels ----------------------------------------------------------------------------

// Sparse rows: two partial sums (even and odd entries), added at the end. A short row's dot is
// otherwise one chain of dependent multiply-adds, the latency-bound part of a sparse step. Every
// solver (the per-sample kernels, the EF oracles, evaluation) uses this order.
template <class Load>
inline double DotSparse(SparseRow r, Load&& load) noexcept {
  double s0 = 0, s1 = 0;
  Index j = 0;
  for (; j + 1 < r.nnz; j += 2) {
    s0 += static_cast<double>(r.val[j]) * load(r.idx[j]);
    s1 += static_cast<double>(r.val[j + 1]) * load(r.idx[j + 1]);
  }
  if (j < r.nnz) s0 += static_cast<double>(r.val[j]) * load(r.idx[j]);
  return s0 + s1;
}
inline double Dot(SparseRow r, const double* x) noexcept {
  return DotSparse(r, [x](Index j) { return x[j]; });
}
inline double Dot(DenseRow r, const double* x) noexcept {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  Index j = 0;
  for (; j + 4 <= r.d; j += 4) {
    s0 += static_cast<double>(r.val[j]) * x[j];
    s1 += static_cast<double>(r.val[j + 1]) * x[j + 1];
    s2 += static_cast<double>(r.val[j + 2]) * x[j + 2];
    s3 += static_cast<double>(r.val[j + 3]) * x[j + 3];
  }
  for (; j < r.d; ++j) s0 += static_cast<double>(r.val[j]) * x[j];
  return (s0 + s1) + (s2 + s3);
}
// y += c * row
inline void Axpy(double c, SparseRow r, double* y) noexcept {
  for (Index j = 0; j < r.nnz; ++j) y[r.idx[j]] += c * static_cast<double>(r.val[j]);
}
inline void Axpy(double c, DenseRow r, double* y) noexcept {
  for (Index j = 0; j < r.d; ++j) y[j] += c * static_cast<double>(r.val[j]);
}

// ---- full-data evaluation (parallel over rows with oneTBB) ----------------------------------

struct Evaluation {
  double loss = 0;        // f(x), regulariser included
  double grad_norm2 = 0;  // |grad f(x)|^2
  double accuracy = 0;    // fraction with sign(a.x) == y (0 predicted as -1)
};

// f(x) only.
double FullLoss(const Objective& obj, const Dataset& data, std::span<const double> x);
// f(x), and the full gradient into `grad` (size d) when it is not empty.
double FullLossGrad(const Objective& obj, const Dataset& data, std::span<const double> x,
                    std::span<double> grad);
// f(x), |grad f(x)|^2 and training accuracy in one pass.
Evaluation Evaluate(const Objective& obj, const Dataset& data, std::span<const double> x);
// Accuracy of sign(a.x) against the labels (for a test set).
double Accuracy(const Dataset& data, std::span<const double> x);
// Margins a_i . x for all rows.
void Margins(const Dataset& data, std::span<const double> x, std::span<double> out);

}  // namespace memsgd
