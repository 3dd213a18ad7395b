// Fast exact kernels: vectorised dense passes (AVX-512 / AVX2 / scalar, chosen at run time) and
// the carried-threshold exact top-k. See include/memsgd/kernels/topk.hpp and docs/performance.md.
#include "memsgd/kernels/topk.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "memsgd/compressor.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#define MEMSGD_X86 1
#include <immintrin.h>
#endif

namespace memsgd::kernels {

// ---- instruction set and options ------------------------------------------------------------

Isa BestIsa() noexcept {
#ifdef MEMSGD_X86
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
    return Isa::kScalar;
  }();
  return best;
#else
  return Isa::kScalar;
#endif
}

std::string IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

static Isa Clamp(Isa isa) noexcept {
  return static_cast<int>(isa) <= static_cast<int>(BestIsa()) ? isa : BestIsa();
}

KernelOptions ParseKernelOptions(const std::string& spec) {
  KernelOptions o;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("MEMSGD_KERNELS: '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
    if (key == "topk") {
      if (val == "threshold") o.topk = TopKKernel::kThreshold;
      else if (val == "heap") o.topk = TopKKernel::kHeap;
      else if (val == "reference") o.topk = TopKKernel::kReference;
      else throw std::invalid_argument("MEMSGD_KERNELS: topk=" + val + " (threshold|heap|reference)");
    } else if (key == "sgd") {
      if (val == "lazy") o.sgd = SgdKernel::kLazy;
      else if (val == "dense") o.sgd = SgdKernel::kDense;
      else throw std::invalid_argument("MEMSGD_KERNELS: sgd=" + val + " (lazy|dense)");
    } else if (key == "isa") {
      if (val == "avx512") o.isa = Isa::kAvx512;
      else if (val == "avx2") o.isa = Isa::kAvx2;
      else if (val == "scalar") o.isa = Isa::kScalar;
      else throw std::invalid_argument("MEMSGD_KERNELS: isa=" + val + " (avx512|avx2|scalar)");
      o.isa = Clamp(o.isa);
    } else if (key == "avg") {
      if (val == "lazy") o.lazy_average = true;
      else if (val == "dense") o.lazy_average = false;
      else throw std::invalid_argument("MEMSGD_KERNELS: avg=" + val + " (lazy|dense)");
    } else if (key == "mem") {
      if (val == "auto") o.memory = MemoryKernel::kAuto;
      else if (val == "lazy") o.memory = MemoryKernel::kLazy;
      else if (val == "dense") o.memory = MemoryKernel::kDense;
      else throw std::invalid_argument("MEMSGD_KERNELS: mem=" + val + " (auto|lazy|dense)");
    } else {
      throw std::invalid_argument("MEMSGD_KERNELS: unknown key '" + key + "' (topk, sgd, isa, avg, mem)");
    }
  }
  return o;
}

std::string Describe(const KernelOptions& o) {
  const char* topk = o.topk == TopKKernel::kThreshold ? "threshold"
                     : o.topk == TopKKernel::kHeap    ? "heap"
                                                      : "reference";
  return std::string("topk=") + topk + ",sgd=" + (o.sgd == SgdKernel::kLazy ? "lazy" : "dense") +
         ",isa=" + IsaName(o.isa) + ",avg=" + (o.lazy_average ? "lazy" : "dense") + ",mem=" +
         (o.memory == MemoryKernel::kAuto ? "auto" : o.memory == MemoryKernel::kLazy ? "lazy" : "dense");
}

KernelOptions& Options() noexcept {
  static KernelOptions opts = [] {
    const char* env = std::getenv("MEMSGD_KERNELS");
    if (!env) return KernelOptions{};
    try {
      return ParseKernelOptions(env);
    } catch (const std::exception&) {
      return KernelOptions{};  // a bad variable must not make the library unusable
    }
  }();
  return opts;
}

// ---- scalar passes --------------------------------------------------------------------------

namespace {

Index RegAxpyCollectScalar(double* m, const double* x, double eta, double lambda, Index n,
                           double tau, Index* cand, Index base) noexcept {
  const double el = eta * lambda;
  Index c = 0;
  for (Index j = 0; j < n; ++j) {
    const double v = MemoryL2(m[j], el, x[j]);
    m[j] = v;
    if (std::abs(v) > tau) cand[c++] = base + j;
  }
  return c;
}

Index CollectAboveScalar(const double* m, Index n, double tau, Index* cand, Index base) noexcept {
  Index c = 0;
  for (Index j = 0; j < n; ++j)
    if (std::abs(m[j]) > tau) cand[c++] = base + j;
  return c;
}

void SgdDenseScalar(double* x, const double* m, double eta, double lambda, Index n) noexcept {
  const double el = eta * lambda;
  for (Index j = 0; j < n; ++j) {
    const double g = MemoryL2(m[j], el, x[j]);
    if (g != 0) x[j] -= g;
  }
}

Index ArgmaxScalar(double* m, const double* x, double eta, double lambda, Index n, double* best,
                   Index base) noexcept {
  const double el = eta * lambda;
  Index arg = -1;
  double top = -1.0;
  for (Index j = 0; j < n; ++j) {
    double v = m[j];
    if (x) {
      v = MemoryL2(v, el, x[j]);
      m[j] = v;
    }
    const double a = std::abs(v);
    if (a > top) {
      top = a;
      arg = base + j;
    }
  }
  *best = top;
  return arg;
}

// Combines per-lane (value, index) winners: the largest value, the smallest index among equals.
inline Index ReduceArg(const double* val, const Index* idx, int lanes, double* best) noexcept {
  Index arg = -1;
  double top = -1.0;
  for (int l = 0; l < lanes; ++l) {
    if (idx[l] < 0) continue;
    if (val[l] > top || (val[l] == top && idx[l] < arg)) {
      top = val[l];
      arg = idx[l];
    }
  }
  *best = top;
  return arg;
}

void DotLanesScalar(const float* a, const double* x, Index n, double* lanes) noexcept {
  for (Index j = 0; j < n; ++j)
    lanes[j & (kDotLanes - 1)] += NoContract(static_cast<double>(a[j]) * x[j]);
}

void AxpyDenseScalar(double c, const float* a, double* y, Index n) noexcept {
  for (Index j = 0; j < n; ++j) y[j] += NoContract(c * static_cast<double>(a[j]));
}

void SubScaledScalar(double c, const float* a, double* x, Index n) noexcept {
  for (Index j = 0; j < n; ++j) {
    const double g = c * static_cast<double>(a[j]);
    if (g != 0) x[j] -= g;
  }
}

#ifdef MEMSGD_X86

inline void AppendBits(unsigned mask, Index j, Index base, Index* cand, Index& c) noexcept {
  while (mask) {
    cand[c++] = base + j + static_cast<Index>(__builtin_ctz(mask));
    mask &= mask - 1;
  }
}

// ---- AVX2 -----------------------------------------------------------------------------------

#define MEMSGD_AVX2 __attribute__((target("avx2,fma")))

MEMSGD_AVX2 inline __m256d Abs256(__m256d v) noexcept {
  return _mm256_andnot_pd(_mm256_set1_pd(-0.0), v);
}

MEMSGD_AVX2 Index RegAxpyCollectAvx2(double* m, const double* x, double eta, double lambda, Index n,
                                     double tau, Index* cand, Index base) noexcept {
  const __m256d vel = _mm256_set1_pd(eta * lambda), vt = _mm256_set1_pd(tau);
  Index c = 0, j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256d m0 = _mm256_fmadd_pd(vel, _mm256_loadu_pd(x + j), _mm256_loadu_pd(m + j));
    const __m256d m1 = _mm256_fmadd_pd(vel, _mm256_loadu_pd(x + j + 4), _mm256_loadu_pd(m + j + 4));
    const __m256d m2 = _mm256_fmadd_pd(vel, _mm256_loadu_pd(x + j + 8), _mm256_loadu_pd(m + j + 8));
    const __m256d m3 = _mm256_fmadd_pd(vel, _mm256_loadu_pd(x + j + 12), _mm256_loadu_pd(m + j + 12));
    _mm256_storeu_pd(m + j, m0);
    _mm256_storeu_pd(m + j + 4, m1);
    _mm256_storeu_pd(m + j + 8, m2);
    _mm256_storeu_pd(m + j + 12, m3);
    const unsigned k0 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(m0), vt, _CMP_GT_OQ)));
    const unsigned k1 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(m1), vt, _CMP_GT_OQ)));
    const unsigned k2 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(m2), vt, _CMP_GT_OQ)));
    const unsigned k3 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(m3), vt, _CMP_GT_OQ)));
    const unsigned mask = k0 | (k1 << 4) | (k2 << 8) | (k3 << 12);
    if (__builtin_expect(mask != 0, 0)) AppendBits(mask, j, base, cand, c);
  }
  return c + RegAxpyCollectScalar(m + j, x + j, eta, lambda, n - j, tau, cand + c, base + j);
}

MEMSGD_AVX2 Index CollectAboveAvx2(const double* m, Index n, double tau, Index* cand,
                                   Index base) noexcept {
  const __m256d vt = _mm256_set1_pd(tau);
  Index c = 0, j = 0;
  for (; j + 16 <= n; j += 16) {
    const unsigned k0 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(_mm256_loadu_pd(m + j)), vt, _CMP_GT_OQ)));
    const unsigned k1 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(_mm256_loadu_pd(m + j + 4)), vt, _CMP_GT_OQ)));
    const unsigned k2 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(_mm256_loadu_pd(m + j + 8)), vt, _CMP_GT_OQ)));
    const unsigned k3 = static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(Abs256(_mm256_loadu_pd(m + j + 12)), vt, _CMP_GT_OQ)));
    const unsigned mask = k0 | (k1 << 4) | (k2 << 8) | (k3 << 12);
    if (__builtin_expect(mask != 0, 0)) AppendBits(mask, j, base, cand, c);
  }
  return c + CollectAboveScalar(m + j, n - j, tau, cand + c, base + j);
}

MEMSGD_AVX2 void SgdDenseAvx2(double* x, const double* m, double eta, double lambda,
                              Index n) noexcept {
  const __m256d vel = _mm256_set1_pd(eta * lambda), zero = _mm256_setzero_pd();
  Index j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m256d xv = _mm256_loadu_pd(x + j);
    const __m256d g = _mm256_fmadd_pd(vel, xv, _mm256_loadu_pd(m + j));
    const __m256d nz = _mm256_cmp_pd(g, zero, _CMP_NEQ_UQ);  // g != 0 (NaN counts as != 0)
    _mm256_storeu_pd(x + j, _mm256_blendv_pd(xv, _mm256_sub_pd(xv, g), nz));
  }
  SgdDenseScalar(x + j, m + j, eta, lambda, n - j);
}

// As Argmax512: running maximum (MAXPD ignores a NaN first operand), then the first index.
MEMSGD_AVX2 Index ArgmaxAvx2(double* m, const double* x, double eta, double lambda, Index n,
                             double* best, Index base) noexcept {
  const __m256d vel = _mm256_set1_pd(eta * lambda);
  __m256d t[4];
  for (auto& v : t) v = _mm256_set1_pd(-1.0);
  Index j = 0;
  for (; j + 16 <= n; j += 16) {
    for (int s = 0; s < 4; ++s) {
      __m256d v = _mm256_loadu_pd(m + j + 4 * s);
      if (x) {
        v = _mm256_fmadd_pd(vel, _mm256_loadu_pd(x + j + 4 * s), v);
        _mm256_storeu_pd(m + j + 4 * s, v);
      }
      t[s] = _mm256_max_pd(Abs256(v), t[s]);
    }
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_max_pd(_mm256_max_pd(t[0], t[1]), _mm256_max_pd(t[2], t[3])));
  double top = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  double tail_top = -1.0;
  const Index tail = ArgmaxScalar(m + j, x ? x + j : nullptr, eta, lambda, n - j, &tail_top, base + j);
  if (!(top >= 0) && tail < 0) {
    *best = -1.0;
    return -1;  // n = 0 or every entry NaN
  }
  if (tail_top > top) {
    *best = tail_top;
    return tail;
  }
  *best = top;
  const __m256d vt = _mm256_set1_pd(top);
  for (Index i = 0; i < j; i += 4) {
    const int eq = _mm256_movemask_pd(_mm256_cmp_pd(Abs256(_mm256_loadu_pd(m + i)), vt, _CMP_EQ_OQ));
    if (eq) return base + i + __builtin_ctz(static_cast<unsigned>(eq));
  }
  return tail;  // not reached: the maximum lies in [0, j) unless the tail holds a larger one
}

MEMSGD_AVX2 void DotLanesAvx2(const float* a, const double* x, Index n, double* lanes) noexcept {
  __m256d p0 = _mm256_loadu_pd(lanes), p1 = _mm256_loadu_pd(lanes + 4);
  __m256d p2 = _mm256_loadu_pd(lanes + 8), p3 = _mm256_loadu_pd(lanes + 12);
  Index j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256d q0 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + j)), _mm256_loadu_pd(x + j));
    __m256d q1 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + j + 4)), _mm256_loadu_pd(x + j + 4));
    __m256d q2 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + j + 8)), _mm256_loadu_pd(x + j + 8));
    __m256d q3 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + j + 12)), _mm256_loadu_pd(x + j + 12));
    asm("" : "+x"(q0), "+x"(q1), "+x"(q2), "+x"(q3));
    p0 = _mm256_add_pd(p0, q0);
    p1 = _mm256_add_pd(p1, q1);
    p2 = _mm256_add_pd(p2, q2);
    p3 = _mm256_add_pd(p3, q3);
  }
  _mm256_storeu_pd(lanes, p0);
  _mm256_storeu_pd(lanes + 4, p1);
  _mm256_storeu_pd(lanes + 8, p2);
  _mm256_storeu_pd(lanes + 12, p3);
  DotLanesScalar(a + j, x + j, n - j, lanes);  // j is a multiple of 16: the lanes continue
}

MEMSGD_AVX2 void AxpyDenseAvx2(double c, const float* a, double* y, Index n) noexcept {
  const __m256d vc = _mm256_set1_pd(c);
  Index j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256d r = _mm256_mul_pd(vc, _mm256_cvtps_pd(_mm_loadu_ps(a + j)));
    asm("" : "+x"(r));
    _mm256_storeu_pd(y + j, _mm256_add_pd(_mm256_loadu_pd(y + j), r));
  }
  AxpyDenseScalar(c, a + j, y + j, n - j);
}

MEMSGD_AVX2 void SubScaledAvx2(double c, const float* a, double* x, Index n) noexcept {
  const __m256d vc = _mm256_set1_pd(c), zero = _mm256_setzero_pd();
  Index j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m256d g = _mm256_mul_pd(vc, _mm256_cvtps_pd(_mm_loadu_ps(a + j)));
    const __m256d xv = _mm256_loadu_pd(x + j);
    const __m256d nz = _mm256_cmp_pd(g, zero, _CMP_NEQ_UQ);
    _mm256_storeu_pd(x + j, _mm256_blendv_pd(xv, _mm256_sub_pd(xv, g), nz));
  }
  SubScaledScalar(c, a + j, x + j, n - j);
}

// ---- AVX-512 --------------------------------------------------------------------------------

#define MEMSGD_AVX512 __attribute__((target("avx512f")))

// Appends the set lanes of two 16-lane masks (indices first .. first + 31) without a branch per
// lane: compress in a register, store all 16 lanes (the buffer has kCandidateSlack spare
// entries), advance by the popcount. (The memory form of vpcompressd is slow on AMD Zen 4.)
MEMSGD_AVX512 inline void Append32(unsigned lo, unsigned hi, Index first, Index* cand,
                                   Index& c) noexcept {
  const __m512i lanes = _mm512_add_epi32(_mm512_set1_epi32(first),
                                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                           12, 13, 14, 15));
  _mm512_storeu_si512(cand + c, _mm512_maskz_compress_epi32(static_cast<__mmask16>(lo), lanes));
  c += __builtin_popcount(lo);
  const __m512i lanes_hi = _mm512_add_epi32(lanes, _mm512_set1_epi32(16));
  _mm512_storeu_si512(cand + c, _mm512_maskz_compress_epi32(static_cast<__mmask16>(hi), lanes_hi));
  c += __builtin_popcount(hi);
}

MEMSGD_AVX512 Index RegAxpyCollect512(double* m, const double* x, double eta, double lambda,
                                      Index n, double tau, Index* cand, Index base) noexcept {
  const __m512d vel = _mm512_set1_pd(eta * lambda), vt = _mm512_set1_pd(tau);
  Index c = 0, j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512d m0 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j), _mm512_loadu_pd(m + j));
    const __m512d m1 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j + 8), _mm512_loadu_pd(m + j + 8));
    const __m512d m2 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j + 16), _mm512_loadu_pd(m + j + 16));
    const __m512d m3 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j + 24), _mm512_loadu_pd(m + j + 24));
    _mm512_storeu_pd(m + j, m0);
    _mm512_storeu_pd(m + j + 8, m1);
    _mm512_storeu_pd(m + j + 16, m2);
    _mm512_storeu_pd(m + j + 24, m3);
    const unsigned k0 = _mm512_cmp_pd_mask(_mm512_abs_pd(m0), vt, _CMP_GT_OQ);
    const unsigned k1 = _mm512_cmp_pd_mask(_mm512_abs_pd(m1), vt, _CMP_GT_OQ);
    const unsigned k2 = _mm512_cmp_pd_mask(_mm512_abs_pd(m2), vt, _CMP_GT_OQ);
    const unsigned k3 = _mm512_cmp_pd_mask(_mm512_abs_pd(m3), vt, _CMP_GT_OQ);
    if (__builtin_expect((k0 | k1 | k2 | k3) != 0, 0)) Append32(k0 | (k1 << 8), k2 | (k3 << 8), j + base, cand, c);
  }
  for (; j + 8 <= n; j += 8) {
    const __m512d m0 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j), _mm512_loadu_pd(m + j));
    _mm512_storeu_pd(m + j, m0);
    const unsigned k0 = _mm512_cmp_pd_mask(_mm512_abs_pd(m0), vt, _CMP_GT_OQ);
    if (k0) AppendBits(k0, j, base, cand, c);
  }
  return c + RegAxpyCollectScalar(m + j, x + j, eta, lambda, n - j, tau, cand + c, base + j);
}

MEMSGD_AVX512 Index CollectAbove512(const double* m, Index n, double tau, Index* cand,
                                    Index base) noexcept {
  const __m512d vt = _mm512_set1_pd(tau);
  Index c = 0, j = 0;
  for (; j + 32 <= n; j += 32) {
    const unsigned k0 = _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_loadu_pd(m + j)), vt, _CMP_GT_OQ);
    const unsigned k1 = _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_loadu_pd(m + j + 8)), vt, _CMP_GT_OQ);
    const unsigned k2 = _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_loadu_pd(m + j + 16)), vt, _CMP_GT_OQ);
    const unsigned k3 = _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_loadu_pd(m + j + 24)), vt, _CMP_GT_OQ);
    if (__builtin_expect((k0 | k1 | k2 | k3) != 0, 0)) Append32(k0 | (k1 << 8), k2 | (k3 << 8), j + base, cand, c);
  }
  return c + CollectAboveScalar(m + j, n - j, tau, cand + c, base + j);
}

MEMSGD_AVX512 void SgdDense512(double* x, const double* m, double eta, double lambda,
                               Index n) noexcept {
  const __m512d vel = _mm512_set1_pd(eta * lambda), zero = _mm512_setzero_pd();
  Index j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512d xv = _mm512_loadu_pd(x + j);
    const __m512d g = _mm512_fmadd_pd(vel, xv, _mm512_loadu_pd(m + j));
    const __mmask8 nz = _mm512_cmp_pd_mask(g, zero, _CMP_NEQ_UQ);
    _mm512_storeu_pd(x + j, _mm512_mask_sub_pd(xv, nz, xv, g));
  }
  SgdDenseScalar(x + j, m + j, eta, lambda, n - j);
}

// Two phases: the update pass keeps only the running maximum of |m_j| (four independent vmaxpd
// chains; MAXPD returns its second operand when the first is NaN, so NaN entries are ignored),
// then a read-only pass finds the first j with |m_j| equal to it (m is small here: d <= 4096, in
// L1/L2). The first index among equal maxima wins, as in TopKReference.
// max(a, b) per lane, b where a is NaN (MAXPD semantics); the masked form avoids GCC 12's
// -Wmaybe-uninitialized false positive on _mm512_max_pd.
MEMSGD_AVX512 inline __m512d Max512(__m512d a, __m512d b) noexcept {
  return _mm512_mask_max_pd(b, 0xFF, a, b);
}

MEMSGD_AVX512 Index Argmax512(double* m, const double* x, double eta, double lambda, Index n,
                              double* best, Index base) noexcept {
  const __m512d vel = _mm512_set1_pd(eta * lambda);
  const __m512d none = _mm512_set1_pd(-1.0);
  __m512d t0 = none, t1 = none, t2 = none, t3 = none;
  Index j = 0;
  if (x) {
    for (; j + 32 <= n; j += 32) {
      const __m512d m0 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j), _mm512_loadu_pd(m + j));
      const __m512d m1 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j + 8), _mm512_loadu_pd(m + j + 8));
      const __m512d m2 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j + 16), _mm512_loadu_pd(m + j + 16));
      const __m512d m3 = _mm512_fmadd_pd(vel, _mm512_loadu_pd(x + j + 24), _mm512_loadu_pd(m + j + 24));
      _mm512_storeu_pd(m + j, m0);
      _mm512_storeu_pd(m + j + 8, m1);
      _mm512_storeu_pd(m + j + 16, m2);
      _mm512_storeu_pd(m + j + 24, m3);
      t0 = Max512(_mm512_abs_pd(m0), t0);
      t1 = Max512(_mm512_abs_pd(m1), t1);
      t2 = Max512(_mm512_abs_pd(m2), t2);
      t3 = Max512(_mm512_abs_pd(m3), t3);
    }
  } else {
    for (; j + 32 <= n; j += 32) {
      t0 = Max512(_mm512_abs_pd(_mm512_loadu_pd(m + j)), t0);
      t1 = Max512(_mm512_abs_pd(_mm512_loadu_pd(m + j + 8)), t1);
      t2 = Max512(_mm512_abs_pd(_mm512_loadu_pd(m + j + 16)), t2);
      t3 = Max512(_mm512_abs_pd(_mm512_loadu_pd(m + j + 24)), t3);
    }
  }
  for (; j < n; j += 8) {  // up to 31 left, the last block masked
    const Index left = n - j;
    const __mmask8 valid = left >= 8 ? __mmask8(0xFF) : static_cast<__mmask8>((1u << left) - 1);
    __m512d v = _mm512_maskz_loadu_pd(valid, m + j);
    if (x) {
      v = _mm512_fmadd_pd(vel, _mm512_maskz_loadu_pd(valid, x + j), v);
      _mm512_mask_storeu_pd(m + j, valid, v);
    }
    t0 = _mm512_mask_max_pd(t0, valid, _mm512_abs_pd(v), t0);
  }
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, Max512(Max512(t0, t1), Max512(t2, t3)));
  double top = lanes[0];
  for (int l = 1; l < 8; ++l) top = std::max(top, lanes[l]);
  *best = top;
  if (!(top >= 0)) return -1;  // n = 0 or every entry NaN
  const __m512d vt = _mm512_set1_pd(top);
  for (j = 0; j + 8 <= n; j += 8) {
    const unsigned eq = _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_loadu_pd(m + j)), vt, _CMP_EQ_OQ);
    if (eq) return base + j + static_cast<Index>(__builtin_ctz(eq));
  }
  for (; j < n; ++j)
    if (std::abs(m[j]) == top) return base + j;
  return -1;  // not reached
}

MEMSGD_AVX512 void DotLanes512(const float* a, const double* x, Index n, double* lanes) noexcept {
  __m512d p0 = _mm512_loadu_pd(lanes), p1 = _mm512_loadu_pd(lanes + 8);
  Index j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512d q0 = _mm512_mul_pd(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + j)), _mm512_loadu_pd(x + j));
    __m512d q1 = _mm512_mul_pd(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + j + 8)), _mm512_loadu_pd(x + j + 8));
    asm("" : "+v"(q0), "+v"(q1));
    p0 = _mm512_add_pd(p0, q0);
    p1 = _mm512_add_pd(p1, q1);
  }
  _mm512_storeu_pd(lanes, p0);
  _mm512_storeu_pd(lanes + 8, p1);
  DotLanesScalar(a + j, x + j, n - j, lanes);
}

MEMSGD_AVX512 void AxpyDense512(double c, const float* a, double* y, Index n) noexcept {
  const __m512d vc = _mm512_set1_pd(c);
  Index j = 0;
  for (; j + 8 <= n; j += 8) {
    __m512d r = _mm512_mul_pd(vc, _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + j)));
    asm("" : "+v"(r));
    _mm512_storeu_pd(y + j, _mm512_add_pd(_mm512_loadu_pd(y + j), r));
  }
  AxpyDenseScalar(c, a + j, y + j, n - j);
}

MEMSGD_AVX512 void SubScaled512(double c, const float* a, double* x, Index n) noexcept {
  const __m512d vc = _mm512_set1_pd(c), zero = _mm512_setzero_pd();
  Index j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512d g = _mm512_mul_pd(vc, _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + j)));
    const __m512d xv = _mm512_loadu_pd(x + j);
    const __mmask8 nz = _mm512_cmp_pd_mask(g, zero, _CMP_NEQ_UQ);
    _mm512_storeu_pd(x + j, _mm512_mask_sub_pd(xv, nz, xv, g));
  }
  SubScaledScalar(c, a + j, x + j, n - j);
}

#endif  // MEMSGD_X86

}  // namespace

Index RegAxpyArgmax(Isa isa, double* m, const double* x, double eta, double lambda, Index n,
                    double* best, Index base) noexcept {
  if (lambda == 0) x = nullptr;
#ifdef MEMSGD_X86
  switch (Clamp(isa)) {
    case Isa::kAvx512: return Argmax512(m, x, eta, lambda, n, best, base);
    case Isa::kAvx2: return ArgmaxAvx2(m, x, eta, lambda, n, best, base);
    default: break;
  }
#else
  (void)isa;
#endif
  return ArgmaxScalar(m, x, eta, lambda, n, best, base);
}

void DotLanesAccumulate(Isa isa, const float* a, const double* x, Index n,
                        double* lanes) noexcept {
#ifdef MEMSGD_X86
  switch (Clamp(isa)) {
    case Isa::kAvx512: return DotLanes512(a, x, n, lanes);
    case Isa::kAvx2: return DotLanesAvx2(a, x, n, lanes);
    default: break;
  }
#else
  (void)isa;
#endif
  DotLanesScalar(a, x, n, lanes);
}

double DotLanesReduce(const double* lanes) noexcept {
  double q[8], r[4];
  for (int l = 0; l < 8; ++l) q[l] = lanes[l] + lanes[l + 8];
  for (int l = 0; l < 4; ++l) r[l] = q[l] + q[l + 4];
  return (r[0] + r[2]) + (r[1] + r[3]);
}

double DotDense(Isa isa, const float* a, const double* x, Index n) noexcept {
  double lanes[kDotLanes] = {};
  DotLanesAccumulate(isa, a, x, n, lanes);
  return DotLanesReduce(lanes);
}

void AxpyDense(Isa isa, double c, const float* a, double* y, Index n) noexcept {
#ifdef MEMSGD_X86
  switch (Clamp(isa)) {
    case Isa::kAvx512: return AxpyDense512(c, a, y, n);
    case Isa::kAvx2: return AxpyDenseAvx2(c, a, y, n);
    default: break;
  }
#else
  (void)isa;
#endif
  AxpyDenseScalar(c, a, y, n);
}

void SubScaledDense(Isa isa, double c, const float* a, double* x, Index n) noexcept {
#ifdef MEMSGD_X86
  switch (Clamp(isa)) {
    case Isa::kAvx512: return SubScaled512(c, a, x, n);
    case Isa::kAvx2: return SubScaledAvx2(c, a, x, n);
    default: break;
  }
#else
  (void)isa;
#endif
  SubScaledScalar(c, a, x, n);
}

Index RegAxpyCollect(Isa isa, double* m, const double* x, double eta, double lambda, Index n,
                     double tau, Index* cand, Index base) noexcept {
#ifdef MEMSGD_X86
  switch (Clamp(isa)) {
    case Isa::kAvx512: return RegAxpyCollect512(m, x, eta, lambda, n, tau, cand, base);
    case Isa::kAvx2: return RegAxpyCollectAvx2(m, x, eta, lambda, n, tau, cand, base);
    default: break;
  }
#else
  (void)isa;
#endif
  return RegAxpyCollectScalar(m, x, eta, lambda, n, tau, cand, base);
}

Index CollectAbove(Isa isa, const double* m, Index n, double tau, Index* cand,
                   Index base) noexcept {
#ifdef MEMSGD_X86
  switch (Clamp(isa)) {
    case Isa::kAvx512: return CollectAbove512(m, n, tau, cand, base);
    case Isa::kAvx2: return CollectAboveAvx2(m, n, tau, cand, base);
    default: break;
  }
#else
  (void)isa;
#endif
  return CollectAboveScalar(m, n, tau, cand, base);
}

void SgdDenseUpdate(Isa isa, double* x, const double* m, double eta, double lambda,
                    Index n) noexcept {
#ifdef MEMSGD_X86
  switch (Clamp(isa)) {
    case Isa::kAvx512: return SgdDense512(x, m, eta, lambda, n);
    case Isa::kAvx2: return SgdDenseAvx2(x, m, eta, lambda, n);
    default: break;
  }
#else
  (void)isa;
#endif
  SgdDenseScalar(x, m, eta, lambda, n);
}

// ---- ThresholdTopK ----------------------------------------------------------------------------

void ThresholdTopK::Reset(Index d, Index k) {
  d_ = d;
  k_ = std::clamp<Index>(k, 0, d);
  tau_ = 0;
  // Candidates kept above tau after the k sent ones leave: aim at `target_`, lower tau below
  // `low_`, raise it above `high_`. A few k: enough that a step rarely runs dry, few enough that
  // the selection among them costs far less than the pass.
  target_ = 2 * k_ + 16;
  low_ = k_ + 4;
  high_ = 6 * k_ + 48;
  cand_.assign(static_cast<std::size_t>(d_ + kCandidateSlack), 0);
  keys_.clear();  // key buffers grow with the largest candidate count seen
  scratch_.clear();
  entries_.clear();
  stats_ = {};
}

namespace {

// Order of TopKReference: larger |v| first, ties to the smaller index. NaN keys are mapped to -1 by
// the callers so that the order stays a strict weak order (a NaN is never a candidate).
struct Better {
  template <class E>
  bool operator()(const E& a, const E& b) const noexcept {
    return a.a > b.a || (a.a == b.a && a.j < b.j);
  }
};
inline double Key(double v) noexcept { return v == v ? std::abs(v) : -1.0; }

// For doubles >= 0 (never NaN) the IEEE bit patterns order as unsigned integers.
inline std::uint64_t Bits(double a) noexcept { return std::bit_cast<std::uint64_t>(a); }
inline double FromBits(std::uint64_t b) noexcept { return std::bit_cast<double>(b); }

// The r-th largest of a[0..n) (r in [1, n]); permutes a. Quickselect with branch-free
// partitions: about two passes over n keys, no data-dependent branches inside a pass.
std::uint64_t KthLargest(std::uint64_t* a, Index n, Index r) noexcept {
  for (;;) {
    if (n <= 16) {
      for (Index i = 1; i < n; ++i) {  // insertion sort, descending
        const std::uint64_t v = a[i];
        Index p = i;
        for (; p > 0 && a[p - 1] < v; --p) a[p] = a[p - 1];
        a[p] = v;
      }
      return a[r - 1];
    }
    const std::uint64_t x = a[0], y = a[n / 2], z = a[n - 1];
    const std::uint64_t pivot = std::max(std::min(x, y), std::min(std::max(x, y), z));
    Index g = 0;  // a[0..g) > pivot
    for (Index i = 0; i < n; ++i) {
      const std::uint64_t v = a[i];
      a[i] = a[g];
      a[g] = v;
      g += v > pivot;
    }
    if (r <= g) {
      n = g;
      continue;
    }
    Index e = g;  // a[g..e) == pivot
    for (Index i = g; i < n; ++i) {
      const std::uint64_t v = a[i];
      a[i] = a[e];
      a[e] = v;
      e += v == pivot;
    }
    if (r <= e) return pivot;
    a += e;
    n -= e;
    r -= e;
  }
}

}  // namespace

void ThresholdTopK::FullSelect(const double* m, SparseUpdate& out) {
  ++stats_.full;
  entries_.resize(static_cast<std::size_t>(d_));
  Entry* e = entries_.data();
  for (Index j = 0; j < d_; ++j) e[j] = {Key(m[j]), j};
  // Place the (k + target)-th largest first, so that it can become the next threshold.
  const Index keep = std::min<Index>(d_, k_ + target_);
  if (keep < d_) std::nth_element(e, e + keep, e + d_, Better{});
  if (k_ < keep) std::nth_element(e, e + k_, e + keep, Better{});
  out.size = 0;
  for (Index i = 0; i < k_; ++i) out.Push(e[i].j, m[e[i].j]);
  tau_ = keep < d_ ? std::max(0.0, e[keep].a) : 0.0;
}

// keys_[0..count) hold the candidates' |m_j| bits; scratch_ is free.
void ThresholdTopK::Retune(Index count) {
  const Index rest = count - k_;  // candidates left after the k sent
  std::uint64_t* s = scratch_.data();
  if (rest > high_) {
    // Keep about target_ of them above the new threshold.
    std::copy(keys_.begin(), keys_.begin() + count, s);
    tau_ = std::max(tau_, FromBits(KthLargest(s, count, k_ + target_ + 1)));
  } else if (rest < low_) {
    // Lower tau so that about target_ - rest more coordinates pass, assuming the density of |m|
    // just below tau is the density of the remaining candidates just above it (the lower half of
    // them lies in (tau, q]). At most halved.
    double next = tau_ * 0.5;
    if (rest >= 4) {
      const Index half = rest / 2;
      std::copy(keys_.begin(), keys_.begin() + count, s);
      const double q = FromBits(KthLargest(s, count, count - half));
      const double want = static_cast<double>(target_ - rest);
      next = std::max(next, tau_ - want * (q - tau_) / static_cast<double>(half));
    }
    tau_ = next < std::numeric_limits<double>::min() ? 0.0 : next;
  }
}

void ThresholdTopK::Finish(Isa isa, const double* m, Index count, SparseUpdate& out) {
  ++stats_.steps;
  // Too few above tau: lower it and look again (m is not changed by a re-scan).
  for (int tries = 0; count < k_ && tries < 3 && tau_ > 0; ++tries) {
    tau_ *= 0.125;
    if (tau_ < std::numeric_limits<double>::min()) tau_ = 0;
    count = CollectAbove(isa, m, d_, tau_, cand_.data());
    ++stats_.rescans;
  }
  if (count < k_) {
    FullSelect(m, out);
    return;
  }
  stats_.candidates += count;
  if (keys_.size() < static_cast<std::size_t>(count)) {
    keys_.resize(static_cast<std::size_t>(count));
    scratch_.resize(static_cast<std::size_t>(count));
  }
  const Index* cand = cand_.data();
  std::uint64_t* key = keys_.data();
  for (Index i = 0; i < count; ++i) key[i] = Bits(std::abs(m[cand[i]]));  // > tau >= 0: no NaN
  out.size = 0;
  if (count == k_) {
    for (Index i = 0; i < count; ++i) out.Push(cand[i], m[cand[i]]);
  } else if (k_ == 1) {
    Index best = 0;  // the first of the largest keys: the smallest index among ties
    for (Index i = 1; i < count; ++i) best = key[i] > key[best] ? i : best;
    out.Push(cand[best], m[cand[best]]);
  } else {
    // v = the k-th largest key: all keys > v, then keys == v by increasing index (cand is in
    // increasing index order), until k: exactly TopKReference's set.
    std::uint64_t* s = scratch_.data();
    std::copy(key, key + count, s);
    const std::uint64_t v = KthLargest(s, count, k_);
    Index above = 0;
    for (Index i = 0; i < count; ++i) above += key[i] > v;
    Index ties = k_ - above;
    for (Index i = 0; i < count; ++i) {
      const bool take = key[i] > v || (key[i] == v && ties > 0);
      ties -= key[i] == v && take;
      if (take) out.Push(cand[i], m[cand[i]]);
    }
  }
  Retune(count);
}

void ThresholdTopK::Select(Isa isa, const double* m, SparseUpdate& out) {
  const Index count = CollectAbove(isa, m, d_, tau_, cand_.data());
  Finish(isa, m, count, out);
}

}  // namespace memsgd::kernels
