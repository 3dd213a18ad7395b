// Kernel micro-benchmarks (Google Benchmark): the Mem-SGD top-k step on RCV1-shaped data with
// every top-k kernel, its parts (dense L2 update, selection), rand-k, the sparse SGD step and the
// LIBSVM parser. See docs/performance.md; bench/kernels/run.sh writes bench/results/kernels/.
//
// RCV1-shaped state: rcv1-like rows (d = 47,236, ~73 nonzeros, unit norm), lambda = 1/677,399
// (the paper's RCV1-test protocol), step gamma / (lambda (t + a)) with gamma = 2, a = d / k,
// x_0 ~ N(0, 0.01^2). The state is warmed up by --warmup steps (default one pass over the rows)
// with the exact kernel, then every benchmark continues from a copy of it, so all kernels see the
// same sequence of memories (they select the same sets).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <unistd.h>

#include "memsgd/compressor.hpp"
#include "memsgd/generate.hpp"
#include "memsgd/kernels/topk.hpp"
#include "memsgd/libsvm.hpp"
#include "memsgd/schedule.hpp"
#include "memsgd/shared_vector.hpp"
#include "engine/step_kernels.hpp"

using namespace memsgd;

namespace {

Offset EnvInt(const char* name, Offset def) {
  const char* s = std::getenv(name);
  return s ? std::strtoll(s, nullptr, 10) : def;
}

struct Problem {
  Dataset data;
  Objective obj;
  std::vector<Offset> perm;
};

const Problem& Rcv1() {
  static const Problem p = [] {
    GenerateOptions g;
    g.like = Shape::kRcv1;
    g.rows = EnvInt("KERNELS_ROWS", 20000);
    Problem q;
    q.data = GenerateLike(g);
    q.obj = Objective{Loss::kLogistic, Regularizer::kL2, 1.0 / 677399.0};
    q.perm.resize(static_cast<std::size_t>(q.data.NumRows()));
    std::iota(q.perm.begin(), q.perm.end(), Offset{0});
    Rng rng(7, 7);
    for (Offset i = q.data.NumRows() - 1; i > 0; --i)
      std::swap(q.perm[static_cast<std::size_t>(i)], q.perm[rng.Below(static_cast<std::uint64_t>(i) + 1)]);
    return q;
  }();
  return p;
}

StepSchedule PaperSchedule(const Problem& p, Index k) {
  StepSchedule s;
  s.kind = ScheduleKind::kPaper;
  s.gamma = 2;
  s.lambda = p.obj.lambda;
  s.shift = static_cast<double>(p.data.NumFeatures()) / k;
  return s;
}

// A Mem-SGD worker and its iterate, after `warmup` steps.
struct MemState {
  AlignedVector x, m;  // cache-line aligned, as the engine's
  Offset t = 0;
};

const MemState& Warm(Index k) {
  static std::map<Index, MemState> cache;
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  const Problem& p = Rcv1();
  const Index d = p.data.NumFeatures();
  MemState s;
  s.x.resize(static_cast<std::size_t>(d));
  Rng init(1, 1'000'001);
  for (auto& v : s.x) v = 0.01 * init.Normal();
  detail::Worker w;
  w.m.assign(static_cast<std::size_t>(d), 0.0);
  w.comp = Compressor(CompressorSpec::FromName("top", k, false, 4), d);
  w.msg.Reserve(k);
  detail::StepContext ctx{&p.obj, d, true, false};
  ctx.kern = kernels::KernelOptions{};
  const StepSchedule sched = PaperSchedule(p, k);
  const Offset warmup = EnvInt("KERNELS_WARMUP", p.data.NumRows());
  PlainAccess x{s.x.data()};
  for (Offset t = 0; t < warmup; ++t) {
    const Offset i = p.perm[static_cast<std::size_t>(t % p.data.NumRows())];
    detail::Step(ctx, x, w, p.data.Sparse(i), p.data.Label(i), sched(t));
  }
  s.m.assign(w.m.begin(), w.m.end());
  s.t = warmup;
  return cache.emplace(k, std::move(s)).first->second;
}

kernels::KernelOptions Kern(int topk, int isa) {
  kernels::KernelOptions o;
  o.topk = static_cast<kernels::TopKKernel>(topk);
  o.isa = std::min(static_cast<kernels::Isa>(isa), kernels::BestIsa());
  return o;
}

const char* TopKName(int k) {
  return k == 0 ? "threshold" : k == 1 ? "heap" : "reference(nth_element)";
}

// One whole Mem-SGD top-k step (gradient, dense L2 term, selection, send) per iteration.
void BM_MemSgdTopKStep(benchmark::State& st) {
  const int topk = static_cast<int>(st.range(0));
  const Index k = static_cast<Index>(st.range(1));
  const int isa = static_cast<int>(st.range(2));
  const Problem& p = Rcv1();
  const MemState& s0 = Warm(k);
  const Index d = p.data.NumFeatures();
  AlignedVector xv(s0.x.begin(), s0.x.end());
  detail::Worker w;
  w.m.assign(s0.m.begin(), s0.m.end());
  w.comp = Compressor(CompressorSpec::FromName("top", k, false, 4), d);
  w.msg.Reserve(k);
  detail::StepContext ctx{&p.obj, d, true, false};
  ctx.kern = Kern(topk, isa);
  const StepSchedule sched = PaperSchedule(p, k);
  PlainAccess x{xv.data()};
  Offset t = s0.t;
  w.steps = t;
  const Offset n = p.data.NumRows();
  for (auto _ : st) {
    const Offset i = p.perm[static_cast<std::size_t>(t % n)];
    detail::PrefetchAhead(p.data, p.perm, t % n);  // as the engine's sequential solver
    detail::Step(ctx, x, w, p.data.Sparse(i), p.data.Label(i), sched(t));
    ++t;
    ++w.steps;
  }
  const auto& ts = w.comp.Threshold().Stats();
  if (topk == 0 && ts.steps > 0) {
    st.counters["cand_per_step"] = static_cast<double>(ts.candidates) / static_cast<double>(ts.steps);
    st.counters["rescans_per_1k"] = 1000.0 * static_cast<double>(ts.rescans) / static_cast<double>(ts.steps);
    st.counters["full_per_1k"] = 1000.0 * static_cast<double>(ts.full) / static_cast<double>(ts.steps);
  }
  st.SetLabel(std::string(TopKName(topk)) + " isa=" + kernels::IsaName(ctx.kern.isa));
  st.SetItemsProcessed(st.iterations());
}

// One whole Mem-SGD rand-k step (Floyd sampling, vectorised dense L2 term) per iteration.
void BM_MemSgdRandKStep(benchmark::State& st) {
  const Index k = static_cast<Index>(st.range(0));
  const int isa = static_cast<int>(st.range(1));
  const Problem& p = Rcv1();
  const MemState& s0 = Warm(k);
  const Index d = p.data.NumFeatures();
  AlignedVector xv(s0.x.begin(), s0.x.end());
  detail::Worker w;
  w.m.assign(s0.m.begin(), s0.m.end());
  w.comp = Compressor(CompressorSpec::FromName("rand", k, false, 4), d);
  w.msg.Reserve(k);
  detail::StepContext ctx{&p.obj, d, true, false};
  ctx.kern = Kern(0, isa);
  const StepSchedule sched = PaperSchedule(p, k);
  PlainAccess x{xv.data()};
  Offset t = s0.t;
  w.steps = t;
  const Offset n = p.data.NumRows();
  for (auto _ : st) {
    const Offset i = p.perm[static_cast<std::size_t>(t % n)];
    detail::PrefetchAhead(p.data, p.perm, t % n);  // as the engine's sequential solver
    detail::Step(ctx, x, w, p.data.Sparse(i), p.data.Label(i), sched(t));
    ++t;
    ++w.steps;
  }
  st.SetLabel("rand-k isa=" + kernels::IsaName(ctx.kern.isa));
  st.SetItemsProcessed(st.iterations());
}

// The dense L2 term alone (m += eta lambda x over all d): the floor of any O(d) step.
void BM_L2Update(benchmark::State& st) {
  const int isa = static_cast<int>(st.range(0));
  const Problem& p = Rcv1();
  const MemState& s0 = Warm(50);
  AlignedVector m = s0.m;
  std::vector<Index> cand(m.size());
  const auto is = std::min(static_cast<kernels::Isa>(isa), kernels::BestIsa());
  for (auto _ : st) {
    kernels::RegAxpyCollect(is, m.data(), s0.x.data(), 1e-9, p.obj.lambda,
                            static_cast<Index>(m.size()), INFINITY, cand.data());
    benchmark::ClobberMemory();
  }
  st.SetLabel("isa=" + kernels::IsaName(is));
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(m.size()) * 24);
}

// Selection alone on the warmed-up memory (unchanged between iterations: for the threshold kernel
// this is the cost with a perfectly tracked tau).
void BM_TopKSelect(benchmark::State& st) {
  const int kind = static_cast<int>(st.range(0));
  const Index k = static_cast<Index>(st.range(1));
  const MemState& s0 = Warm(k);
  const Index d = static_cast<Index>(s0.m.size());
  SparseUpdate out;
  out.Reserve(k);
  TopKSelector heap;
  heap.Reset(d, k);
  kernels::ThresholdTopK thr;
  thr.Reset(d, k);
  const auto isa = kernels::BestIsa();
  for (auto _ : st) {
    if (kind == 0) {
      thr.Select(isa, s0.m.data(), out);
    } else if (kind == 1) {
      heap.Select(s0.m, out);
    } else {
      auto r = TopKReference(s0.m, k);
      benchmark::DoNotOptimize(r.data());
    }
  }
  st.SetLabel(TopKName(kind));
}

// rand-k index draw: Floyd's O(k) sampler vs an O(d) partial Fisher-Yates over a permutation
// array (what numpy's choice(replace=False) / torch.randperm cost).
void BM_RandK(benchmark::State& st) {
  const bool floyd = st.range(0) == 0;
  const Index d = 47236, k = static_cast<Index>(st.range(1));
  RandKSampler s;
  s.Reset(d, k);
  SparseUpdate out;
  out.Reserve(k);
  Rng rng(1, 2);
  std::vector<Index> perm(static_cast<std::size_t>(d));
  for (auto _ : st) {
    if (floyd) {
      s.Sample(rng, out);
    } else {
      std::iota(perm.begin(), perm.end(), 0);
      for (Index i = 0; i < k; ++i)
        std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(i) + rng.Below(static_cast<std::uint64_t>(d - i))]);
      benchmark::DoNotOptimize(perm.data());
    }
  }
  st.SetLabel(floyd ? "floyd O(k)" : "permutation O(d)");
}

// The k writes of a Mem-SGD message to x, one step's worth per iteration (k = 50 coordinates at
// random places in d = 47,236, drawn ahead; x, and the two per-coordinate arrays a lazy step
// updates next to each write, fit in L2/L3 as in a run), through the engine's access policies
// (memsgd/shared_vector.hpp) on one thread, after the message's write prefetch as in the
// engine: what one worker pays for atomic writes against the sequential solver's plain ones.
template <class X>
void BM_SharedWrites(benchmark::State& st) {
  const Index d = 47236, k = 50;
  AlignedVector xv(static_cast<std::size_t>(d), 1.0), bv(xv), sv(xv);
  std::vector<SparseUpdate> msgs(4096);  // rand-k messages, drawn ahead by the engine's sampler
  RandKSampler sampler;
  sampler.Reset(d, k);
  Rng rng(3, 4);
  for (SparseUpdate& msg : msgs) {
    msg.Reserve(k);
    sampler.Sample(rng, msg);
    std::fill(msg.val.begin(), msg.val.end(), 1e-12);
  }
  const X x{xv.data()};
  double* b = bv.data();
  double* s = sv.data();
  std::size_t step = 0;
  for (auto _ : st) {
    const SparseUpdate& msg = msgs[step++ % msgs.size()];
    detail::PrefetchMessage(x, msg);  // the engine's write prefetch (shared x only)
    for (Index i = 0; i < msg.size; ++i) {
      const Index j = msg.idx[static_cast<std::size_t>(i)];
      const double xn = x.AddFetch(j, -msg.val[static_cast<std::size_t>(i)]);  // the lazy send
      s[j] = 1e-6 * xn;  // its new slope and line
      b[j] -= s[j];
    }
  }
  benchmark::DoNotOptimize(bv.data());
  st.SetLabel("k=50 of d=47236");
}

// Sequential SGD step on RCV1-shaped rows, lambda > 0: lazy (x = s v, O(nnz)) vs dense O(d).
void BM_SgdStep(benchmark::State& st) {
  const bool lazy = st.range(0) == 0;
  const Problem& p = Rcv1();
  const Index d = p.data.NumFeatures();
  AlignedVector xv(static_cast<std::size_t>(d), 0.0);
  detail::Worker w;
  w.m.assign(static_cast<std::size_t>(d), 0.0);
  w.comp = Compressor(CompressorSpec::FromName("identity", 1, false, 4), d);
  detail::StepContext ctx{&p.obj, d, false, true};
  ctx.lazy_ok = true;
  ctx.kern = kernels::KernelOptions{};
  ctx.kern.sgd = lazy ? kernels::SgdKernel::kLazy : kernels::SgdKernel::kDense;
  StepSchedule sched = PaperSchedule(p, 1);
  sched.shift = d;
  PlainAccess x{xv.data()};
  Offset t = 0;
  const Offset n = p.data.NumRows();
  for (auto _ : st) {
    const Offset i = p.perm[static_cast<std::size_t>(t % n)];
    detail::PrefetchAhead(p.data, p.perm, t % n);  // as the engine's sequential solver
    detail::Step(ctx, x, w, p.data.Sparse(i), p.data.Label(i), sched(t));
    ++t;
    ++w.steps;
  }
  detail::Sync(ctx, x, w);
  st.SetLabel(lazy ? "lazy x = s v" : "dense");
  st.SetItemsProcessed(st.iterations());
}

// LIBSVM parsing of an rcv1-like text file written once to a temporary file.
void BM_ReadLibsvm(benchmark::State& st) {
  static const std::string path = [] {
    const std::string f = "/tmp/memsgd_kernels_bench_" + std::to_string(::getpid()) + ".svm";
    WriteLibsvm(Rcv1().data, f);
    std::atexit([] { std::remove(("/tmp/memsgd_kernels_bench_" + std::to_string(::getpid()) + ".svm").c_str()); });
    return f;
  }();
  std::int64_t bytes = 0;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    std::fseek(f, 0, SEEK_END);
    bytes = std::ftell(f);
    std::fclose(f);
  }
  for (auto _ : st) {
    Dataset ds = ReadLibsvm(path);
    benchmark::DoNotOptimize(ds.NumRows());
  }
  st.SetBytesProcessed(st.iterations() * bytes);
  st.SetLabel(std::to_string(Rcv1().data.NumRows()) + " rcv1-like rows, " +
              std::to_string(bytes >> 20) + " MiB");
}

}  // namespace

// topk kernel (0 threshold, 1 heap, 2 reference), k, isa (0 scalar, 1 avx2, 2 avx512)
BENCHMARK(BM_MemSgdTopKStep)
    ->ArgNames({"kernel", "k", "isa"})
    ->Args({0, 50, 2})
    ->Args({0, 50, 1})
    ->Args({0, 50, 0})
    ->Args({1, 50, 2})
    ->Args({2, 50, 2})
    ->Args({0, 1, 2})
    ->Args({1, 1, 2})
    ->Args({0, 10, 2})
    ->Args({1, 10, 2})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MemSgdRandKStep)->ArgNames({"k", "isa"})->Args({50, 2})->Args({50, 0})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_L2Update)->ArgNames({"isa"})->Arg(2)->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TopKSelect)
    ->ArgNames({"kernel", "k"})
    ->Args({0, 50})
    ->Args({1, 50})
    ->Args({2, 50})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RandK)->ArgNames({"floyd0_perm1", "k"})->Args({0, 50})->Args({1, 50})->Unit(benchmark::kMicrosecond);
// One thread: plain (sequential solver), racy (relaxed load + store), atomic (fetch_add CAS).
BENCHMARK(BM_SharedWrites<PlainAccess>)->Name("BM_SharedWrites/plain")->Unit(benchmark::kNanosecond);
BENCHMARK(BM_SharedWrites<RacyAddAccess>)->Name("BM_SharedWrites/racy")->Unit(benchmark::kNanosecond);
BENCHMARK(BM_SharedWrites<AtomicAddAccess>)->Name("BM_SharedWrites/atomic")->Unit(benchmark::kNanosecond);
BENCHMARK(BM_SgdStep)->ArgNames({"lazy0_dense1"})->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ReadLibsvm)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
