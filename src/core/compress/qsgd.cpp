// QSGD's stochastic quantisation and its bits (memsgd/compress/qsgd.hpp).
#include "memsgd/compress/qsgd.hpp"

#include <algorithm>
#include <cmath>

namespace memsgd {

double QsgdBits(int bits, Index d, Index nnz_row) noexcept {
  const double s = std::ldexp(1.0, bits);
  const double naive = (bits + 1.0) * d;
  const double elias = 3.0 * s * (s + std::sqrt(static_cast<double>(d))) + 32.0;
  const double sparse = (bits + 1.0 + 32.0) * nnz_row;
  return std::min({naive, elias, sparse});
}

namespace compress {

void Qsgd::Compress(std::span<const double> v, SparseUpdate& out, Rng& rng) const {
  out.size = 0;
  // |v| scaled by max|v_j| so that it neither overflows nor underflows; a non-finite v is
  // passed on as it is, so that the engine's divergence check sees it.
  double vmax = 0;
  for (double x : v) vmax = std::max(vmax, std::abs(x));
  if (vmax == 0) return;
  if (!std::isfinite(vmax)) {
    for (Index j = 0; j < d_; ++j)
      if (v[static_cast<std::size_t>(j)] != 0) out.Push(j, v[static_cast<std::size_t>(j)]);
    return;
  }
  double scaled2 = 0;
  for (double x : v) scaled2 += (x / vmax) * (x / vmax);
  const double norm = vmax * std::sqrt(scaled2);
  const double s = std::ldexp(1.0, bits_);
  for (Index j = 0; j < d_; ++j) {
    const double x = v[static_cast<std::size_t>(j)];
    if (x == 0) continue;
    const double r = std::abs(x) / norm * s;
    double level = std::floor(r);
    if (rng.Uniform() < r - level) level += 1;
    if (level != 0) out.Push(j, std::copysign(norm * level / s, x));
  }
}

}  // namespace compress
}  // namespace memsgd
