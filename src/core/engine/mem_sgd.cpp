// The Mem-SGD engine: Mem-SGD, SGD and QSGD, the sequential solver and the lock-free parallel
// workers (entry TrainMemSgd, engines.hpp; Train in train.cpp dispatches here).
//
// Mem-SGD (Stich, Cordonnier, Jaggi 2018, Algorithm 1 / eq. (8)); per sample i_t:
//     v      = m_t + eta_t grad f_i(x_t)         (the step size enters with the gradient)
//     g_t    = comp_k(v)                         (k coordinates: top-k, rand-k, ...)
//     x_{t+1} = x_t - g_t
//     m_{t+1} = v - g_t
// with grad f_i(x) = phi'(a_i.x, y_i) a_i + grad R(x). The regulariser's gradient is dense, as in
// the paper's code: the memory update is O(d) per step (--reg dense, the selection fused into that
// pass), or O(nnz + k) with the memory kept lazily (--reg lazy, step_kernels.hpp, docs/speedup.md).
//
// Parallel-Mem-SGD (Algorithm 2): P workers share x and run the same step lock-free, each with
// its own memory m_w; x is read and written only through shared_vector.hpp (std::atomic_ref,
// relaxed); a worker writes only the k coordinates it sends. SGD in parallel is Hogwild!: the
// row's coordinates (--reg lazy, the regulariser on the support) or all d (--reg dense).
//
// Work distribution: the epoch's permutation is dealt round-robin: worker w takes positions
// w, w+P, w+2P, ...; the step size uses the global position t = epoch n + position, so all
// workers follow the sequential schedule without a shared counter. Checkpoints every
// --eval-every samples pause the workers; evaluation runs with the training clock stopped.
#include "engines.hpp"

#include "memsgd/checkpoint.hpp"
#include "memsgd/worker_pool.hpp"
#include "step_kernels.hpp"

#include <tbb/parallel_for.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <utility>

namespace memsgd {
namespace {

using Clock = std::chrono::steady_clock;

// n / n_j, n_j the rows in which coordinate j is stored (0 where it never is: R'(x_j) is then
// never applied, and x_j stays at its start).
std::vector<double> ColumnInverseFrequency(const Dataset& data) {
  std::vector<Offset> count(static_cast<std::size_t>(data.NumFeatures()), 0);
  for (Offset i = 0; i < data.NumRows(); ++i) {
    const SparseRow r = data.Sparse(i);
    for (Index e = 0; e < r.nnz; ++e) ++count[static_cast<std::size_t>(r.idx[e])];
  }
  std::vector<double> inv(count.size(), 0.0);
  const double n = static_cast<double>(data.NumRows());
  for (std::size_t j = 0; j < count.size(); ++j)
    if (count[j] > 0) inv[j] = n / static_cast<double>(count[j]);
  return inv;
}
using detail::StepContext;
using detail::Worker;

class Runner {
 public:
  Runner(const TrainConfig& c, const Dataset& data, const TraceCallback& cb)
      : c_(c), data_(data), cb_(cb), n_(data.NumRows()), d_(data.NumFeatures()) {
    sched_ = ResolveSchedule(c, data);
    ctx_.obj = &c_.objective;
    ctx_.d = d_;
    ctx_.sgd = c.method == Method::kSgd;
    ctx_.memory = c.method == Method::kMemSgd && c.memory;
    CompressorSpec spec = c.compressor;
    if (c.method == Method::kSgd) spec.kind = CompressorKind::kIdentity;
    if (c.method == Method::kQsgd) spec.kind = CompressorKind::kQsgd;
    // Lazy kernels may keep x in a scaled form between steps: only when this runner reads x
    // after the segment's SyncGuard (sequential) and not every step (no per-step averaging).
    // Lazy averaging (LazyAverage): sequential and averaged. Every write of a step goes through
    // the access's Add, and the lazy SGD kernel's x = s v is averaged as A u + B v.
    lazy_average_ = c.threads == 0 && c.averaging != AveragingKind::kFinal &&
                    ctx_.kern.lazy_average;
    ctx_.lazy_ok = c.threads == 0 && (c.averaging == AveragingKind::kFinal || lazy_average_);
    if (c.reg == RegForm::kDense) ctx_.kern.sgd = kernels::SgdKernel::kDense;
    // --reg lazy where it pays: sparse rows with nnz + k well below d (else the dense pass, which
    // then costs about the same, and is vectorised).
    const double nnz_row = static_cast<double>(data.NumNonZeros()) / static_cast<double>(n_);
    const double sent = spec.kind == CompressorKind::kIdentity ? 0 : spec.IntK(d_);
    const bool sparse = !data.IsDense() && 8.0 * (nnz_row + sent) <= static_cast<double>(d_);
    const bool lazy = c.reg == RegForm::kLazy && sparse;
    // Top-k over the lines pays only where its hot set is a small part of d (at most d/16: d >=
    // 8,192 for k <= 32) in runs whose segments amortise the lines' O(d) set-up (n >= d/10); see
    // KernelOptions::memory.
    const bool lines_pay = spec.kind != CompressorKind::kTopK ||
                           (16 * static_cast<Offset>(kernels::LazyTopK::KeepFor(d_, spec.IntK(d_))) <= d_ &&
                            10 * n_ >= static_cast<Offset>(d_));
    const auto mem_kernel = ctx_.kern.memory;
    const bool lazy_memory = mem_kernel == kernels::MemoryKernel::kLazy ||
                             (mem_kernel == kernels::MemoryKernel::kAuto && lines_pay);
    ctx_.lazy_mem = lazy && lazy_memory && c.method == Method::kMemSgd && c.memory &&
                    (spec.kind == CompressorKind::kTopK || spec.PicksBlind());
    ctx_.lazy_topk = ctx_.lazy_mem && spec.kind == CompressorKind::kTopK;
    // Parallel lazy memory: a worker re-reads x every fold_every of its steps, an O(d) pass kept
    // to about an eighth of the O(nnz + k) steps' work (docs/speedup.md).
    ctx_.fold_every = std::max<Offset>(
        64, static_cast<Offset>(std::ceil(8.0 * d_ / std::max(1.0, nnz_row + sent))));
    // Parallel writes combined (WorkerLoop): each worker steps on its own copy of x and writes
    // what it changed every B of its steps. Auto (--flush-every 0) where the O(d) write-and-copy
    // costs little next to B steps: B = 64 for steps that are O(d) anyway (dense rows, the
    // dense regulariser, Mem-SGD's dense memory pass, QSGD), 256 for cheap O(nnz + k) steps
    // where d <= 64 (nnz + k), else 1 (every write at once); never more than n / (16 P) (a
    // worker's writes at most a sixteenth of an epoch late), and at a step of size eta never
    // more than kFlushEta / eta (FlushAfter): what a late write costs grows with the step size
    // (measured: the paper's schedule, whose steps are 2-8x those of 1 / (1 + t/n) over the
    // first epochs, lost accuracy at a fixed B = 64 on Fashion-MNIST; 1 / (1 + t/n) did not).
    // On its copy a worker runs the sequential kernels, the lazy SGD form (x = s v) included
    // (folded before each write).
    if (c.threads > 0) {
      const bool dense_step = !lazy || (c.method != Method::kSgd && !ctx_.lazy_mem);
      const bool small_d = static_cast<double>(d_) <= 64.0 * (nnz_row + sent);
      Offset b = dense_step ? 64 : small_d ? 256 : 1;
      b = std::min(b, std::max<Offset>(1, n_ / (16 * static_cast<Offset>(c.threads))));
      flush_auto_ = c.flush_every == 0;
      flush_every_ = flush_auto_ ? b : c.flush_every;
      ctx_.lazy_ok = Snapshot();
    }
    // Hogwild! writing every step: the regulariser on the row's support (Niu et al.). On its own
    // copy a worker applies the exact L2 term lazily (x = s v) instead.
    if (lazy && c.method == Method::kSgd && c.threads > 0 && !Snapshot() &&
        c.objective.lambda != 0) {
      inv_freq_ = ColumnInverseFrequency(data);
      ctx_.inv_freq = inv_freq_.data();
    }
    Index max_nnz = 0;
    if (!data.IsDense())
      for (Offset i = 0; i < n_; ++i) max_nnz = std::max(max_nnz, data.Sparse(i).nnz);
    const int nw = std::max(1, c.threads);
    workers_.resize(static_cast<std::size_t>(nw));
    for (int w = 0; w < nw; ++w) {
      auto& wk = workers_[static_cast<std::size_t>(w)];
      wk.m.assign(static_cast<std::size_t>(d_), 0.0);
      wk.comp = Compressor(spec, d_);
      wk.msg.Reserve(std::max<Index>(wk.comp.Budget(), 1));
      wk.rng.Seed(c.seed, static_cast<std::uint64_t>(w));
      if (ctx_.lazy_mem) wk.sigma.assign(static_cast<std::size_t>(d_), 0.0);
      if (ctx_.lazy_topk) wk.lazy_topk.Reset(d_, spec.IntK(d_));
      if (Snapshot() || (c.threads > 0 && data.IsDense() && c.method != Method::kSgd))
        wk.xsnap.assign(static_cast<std::size_t>(d_), 0.0);
      if (Snapshot()) {
        wk.xbase.assign(static_cast<std::size_t>(d_), 0.0);
        wk.changed.reserve(static_cast<std::size_t>(d_));
      }
      if (ctx_.lazy_mem || ctx_.inv_freq)
        wk.row_x.assign(static_cast<std::size_t>(max_nnz), 0.0);
    }
    x_.assign(static_cast<std::size_t>(d_), 0.0);
    Rng init(c.seed, kInitStream);
    if (c.init_std > 0)
      for (auto& v : x_) v = c.init_std * init.Normal();
    perm_.resize(static_cast<std::size_t>(n_));
    std::iota(perm_.begin(), perm_.end(), Offset{0});
    shuffle_rng_.Seed(c.seed, kShuffleStream);
    eval_every_ = c.eval_every > 0 ? c.eval_every : std::max<Offset>(1, (n_ + 9) / 10);
    // (Without evaluation the segments still end there: a segment end folds the lazy forms, so
    // the same segments give the same iterate bit for bit, evaluated or not.)
    total_ = static_cast<Offset>(std::llround(c.epochs * static_cast<double>(n_)));
    if (total_ < 1) total_ = 1;
    avg_.assign(x_.begin(), x_.end());
  }

  TrainResult Run() {
    TrainResult res;
    SetScanInterval();
    // Steps each worker has already taken in the segment that starts at t (non-zero only when
    // resuming a checkpoint written by an interrupt in the middle of a segment).
    std::vector<Offset> done(workers_.size(), 0);
    Offset t = 0;  // first sample of the next segment
    if (!c_.resume_path.empty()) {
      t = Restore(res, done);
    } else {
      Checkpoint(res);  // t = 0
    }
    const bool saving = !c_.checkpoint_path.empty();
    const Offset save_every = c_.checkpoint_every > 0 ? c_.checkpoint_every : n_;
    Offset last_saved = t;
    // A stop requested before the run, or seen as a segment ended: stop before the next segment.
    // (One requested during the evaluation at a segment end is seen by the workers' next poll.)
    bool stop_now = StopRequested();
    while (t < total_ && res.status == TrainStatus::kOk) {
      const bool mid_segment = std::any_of(done.begin(), done.end(), [](Offset s) { return s > 0; });
      if (stop_now) {
        // Stopped between segments: the state is a clean segment end (or the resumed one).
        if (saving) SaveState(res, t, done);
        FoldLazyIterate();
        res.status = TrainStatus::kInterrupted;
        res.message = "interrupted";
        if (res.trace.empty() || res.trace.back().samples != samples_) Checkpoint(res, true);
        break;
      }
      if (!mid_segment && t % n_ == 0 && !c_.with_replacement) Shuffle();
      // Segment: up to the next checkpoint, the end of the epoch or the end of training.
      const Offset end = SegmentEnd(t);
      std::vector<Offset> seg_start(workers_.size());
      for (std::size_t w = 0; w < workers_.size(); ++w) seg_start[w] = workers_[w].steps - done[w];
      halt_.store(kRun, std::memory_order_relaxed);
      const auto start = Clock::now();
      if (c_.threads == 0) {
        RunSequential(t + done[0], end);
      } else {
        RunParallel(t, end, done);
      }
      train_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
      const int outcome = halt_.load();
      samples_ = 0;
      for (const auto& w : workers_) samples_ += w.steps;
      if (outcome != kRun && samples_ != end) {
        // Stopped inside the segment: each worker's progress in it is part of the state.
        for (std::size_t w = 0; w < workers_.size(); ++w) done[w] = workers_[w].steps - seg_start[w];
        if (outcome == kStopped) {
          if (saving) SaveState(res, t, done);
          res.status = TrainStatus::kInterrupted;
          res.message = "interrupted";
        } else {
          res.status = TrainStatus::kDiverged;
          res.message = DivergedMessage();
        }
        if (c_.threads > 0 && c_.averaging != AveragingKind::kFinal) AverageSnapshot(samples_);
        Checkpoint(res, true);  // the trace point where it stopped (the model written is this one)
        break;
      }
      // The segment is complete (a stop request that came after its last step is handled at
      // the top of the loop, a non-finite value at this segment end by Checkpoint()).
      t = end;
      std::fill(done.begin(), done.end(), Offset{0});
      if (samples_ != t) throw std::logic_error("memsgd: sample accounting mismatch");
      if (outcome == kDiverged) {
        res.status = TrainStatus::kDiverged;
        res.message = DivergedMessage();
      }
      stop_now = outcome == kStopped;
      if (c_.threads > 0 && c_.averaging != AveragingKind::kFinal) AverageSnapshot(t);
      Checkpoint(res);
      if (saving && res.status == TrainStatus::kOk && t < total_ && t - last_saved >= save_every) {
        SaveState(res, t, done);
        last_saved = t;
      }
    }
    FoldLazyIterate();
    if (ctx_.lazy_mem)
      for (auto& w : workers_) detail::LazyFoldMemory(w);
    res.x_last.assign(x_.begin(), x_.end());
    for (const auto& w : workers_) res.memories.emplace_back(w.m.begin(), w.m.end());
    if (c_.averaging == AveragingKind::kFinal)
      res.x.assign(x_.begin(), x_.end());
    else
      res.x = avg_;
    res.samples = samples_;
    res.train_seconds = train_seconds_;
    if (c_.threads > 0) {
      res.flush_every = 1;
      for (const auto& w : workers_) res.flush_every = std::max(res.flush_every, w.longest_flush);
    }
    return res;
  }

 private:
  static constexpr std::uint64_t kInitStream = 1'000'001;
  static constexpr std::uint64_t kShuffleStream = 1'000'002;
  // Divergence and stop checks. Every step checks the k values it sent (Mem-SGD, QSGD: a NaN
  // or inf anywhere reaches the message within a step or two). Every kPoll of its steps a worker
  // polls the stop request and the other workers' halt, and checks the coordinates of its last
  // row and the lazy scale (SGD: once x has a NaN/inf, every later row's coordinates get one);
  // every scan_every_ steps it scans all of x, an O(d) pass kept under ~1% of the steps' work
  // (kPoll steps when a step costs O(d), up to 1024 kPoll for O(nnz) steps on very sparse data).
  static constexpr Offset kPoll = 256;
  // Auto --flush-every: at most kFlushEta / eta steps between a worker's writes (FlushAfter).
  static constexpr double kFlushEta = 16;
  enum : int { kRun = 0, kStopped = 1, kDiverged = 2 };

  // Parallel: the workers step on their own copies of x (WorkerLoop).
  bool Snapshot() const noexcept { return flush_every_ > 1; }

  Offset SegmentEnd(Offset t) const {
    return std::min({(t / eval_every_ + 1) * eval_every_, (t / n_ + 1) * n_, total_});
  }

  void Shuffle() {
    for (Offset i = n_ - 1; i > 0; --i) {
      const auto j = static_cast<Offset>(shuffle_rng_.Below(static_cast<std::uint64_t>(i) + 1));
      std::swap(perm_[static_cast<std::size_t>(i)], perm_[static_cast<std::size_t>(j)]);
    }
  }

  Offset Sample(Worker& w, Offset t) {
    return c_.with_replacement ? static_cast<Offset>(w.rng.Below(static_cast<std::uint64_t>(n_)))
                               : perm_[static_cast<std::size_t>(t % n_)];
  }

  bool StopRequested() const {
    return c_.stop && c_.stop->load(std::memory_order_relaxed);
  }

  // First reason wins (a stop request and a divergence at the same time: whichever came first).
  void Halt(int why) {
    int expected = kRun;
    halt_.compare_exchange_strong(expected, why, std::memory_order_relaxed);
  }

  static bool MessageFinite(const Worker& w) noexcept {
    bool ok = true;
    for (Index i = 0; i < w.msg.size; ++i) ok &= std::isfinite(w.msg.val[static_cast<std::size_t>(i)]);
    return ok;
  }

  template <class X>
  bool IterateFinite(const X& x) const noexcept {
    bool ok = true;
    for (Index j = 0; j < d_; ++j) ok &= std::isfinite(x.Load(j));
    return ok;
  }

  // Every worker's periodic check (i: its last sample); false: leave the loop (halt_ says why).
  template <class X>
  bool KeepGoing(const X& x, const Worker& w, Offset i) {
    if (StopRequested()) Halt(kStopped);
    bool ok = std::isfinite(w.scale);
    data_.VisitRow(i, [&](auto row) {
      for (Index e = 0; e < detail::RowNnz(row); ++e) ok &= std::isfinite(x.Load(detail::RowIndex(row, e)));
    });
    if (ok && (w.steps & (scan_every_ - 1)) == 0) ok = IterateFinite(x);
    if (!ok) Halt(kDiverged);
    return halt_.load(std::memory_order_relaxed) == kRun;
  }

  // Steps between full scans of x: a power of two times kPoll, about d / (4 nnz per row) kPoll.
  void SetScanInterval() {
    const double nnz_row = std::max(1.0, static_cast<double>(data_.NumNonZeros()) / n_);
    const double ratio = static_cast<double>(d_) / (4.0 * nnz_row);
    Offset mult = 1;
    while (mult < 1024 && static_cast<double>(mult) < ratio) mult *= 2;
    scan_every_ = kPoll * mult;
  }

  // Lazy running average of the sequential solver: avg = A u + B x, with u stored in avg_. A step
  // avg <- (1 - rho) avg + rho x is A *= 1 - rho, B = (1 - rho) B + rho, O(1); a write to x_j
  // adjusts u_j (detail::AveragedAccess), so a Mem-SGD step costs O(k) for the average instead of
  // O(d). With the lazy SGD kernel (x = s v) the same holds for v: B = (1 - rho) B + rho s, and
  // SGD with averaging is O(nnz) per step. u is folded back (u = A u + B x, A = 1, B = 0) when
  // A < 1e-9 (A decays like t^-3 for the paper's weights), when B > 1e3 s, before the SGD scale
  // is folded into v, and when the segment ends (the destructor), so avg_ is the plain average
  // whenever anything else reads it. Not bit-identical to the dense update (the average agrees
  // to ~1e-12 relative, tested); the iterates are unchanged (Mem-SGD) or equal up to rounding
  // (SGD, as the lazy kernel with the final iterate).
  class LazyAverage {
   public:
    // start: where a run resumed in mid-segment left off (folded otherwise).
    LazyAverage(std::vector<double>& u, AlignedVector& x, const detail::LazyAverageState& start)
        : st_(start), access_{x.data(), u.data(), &st_}, n_(u.size()) {
      st_.b_over_a = st_.b / st_.a;
    }
    ~LazyAverage() { access_.Fold(n_); }
    LazyAverage(const LazyAverage&) = delete;
    LazyAverage& operator=(const LazyAverage&) = delete;
    // One averaging step; s: the lazy SGD kernel's scale (x = s v), 1 otherwise.
    void Step(double rho, double s) noexcept {
      st_.a *= 1.0 - rho;
      st_.b = (1.0 - rho) * st_.b + rho * s;
      // Fold when A is small (u ~ avg / A) or when B v = (B / s) x is large next to the average
      // (the lazy SGD scale fell fast: A u and B v would cancel). Never for Mem-SGD/QSGD (s = 1,
      // B <= 1); rarely with the paper's schedules.
      if (st_.a < 1e-9 || st_.b > 1e3 * s) access_.Fold(n_);
      st_.b_over_a = st_.b / st_.a;
    }
    const detail::AveragedAccess& Access() const noexcept { return access_; }
    double A() const noexcept { return st_.a; }
    double B() const noexcept { return st_.b; }

   private:
    detail::LazyAverageState st_;
    detail::AveragedAccess access_;
    std::size_t n_;
  };

  // The true serial baseline: plain loads and stores, per-step averaging (lazy where it can be:
  // LazyAverage).
  void RunSequential(Offset begin, Offset end) {
    if (lazy_average_) {
      LazyAverage avg(avg_, x_, std::exchange(resume_avg_, {}));
      SequentialLoop(avg.Access(), &avg, begin, end);
    } else {
      SequentialLoop(PlainAccess{x_.data()}, nullptr, begin, end);
    }
  }

  template <class X>
  void SequentialLoop(const X x, LazyAverage* lazy_avg, Offset begin, Offset end) {
    Worker& w = workers_[0];
    detail::SyncGuard<X> sync(ctx_, x, w);  // x is exact again when the segment ends
    if (ctx_.lazy_mem && !w.lazy_ready) detail::LazyBegin(ctx_, x, w);
    const bool avg = c_.averaging != AveragingKind::kFinal;
    // A segment never crosses an epoch's end: t's position in the epoch's order is t - base.
    const Offset base = begin - begin % n_;
    const bool prefetch = !c_.with_replacement;  // the next rows are known
    for (Offset t = begin; t < end; ++t) {
      const Offset i = c_.with_replacement ? Sample(w, t) : perm_[static_cast<std::size_t>(t - base)];
      if (prefetch) detail::PrefetchAhead(data_, perm_, t - base);
      const double eta = sched_(t);
      // always_inline: an outlined lambda takes the row through the stack (a store-forwarding
      // stall measured at a third of a w8a SGD step, as for Step itself).
      data_.VisitRow(i, [&](auto row) __attribute__((always_inline)) {
        detail::Step(ctx_, x, w, row, data_.Label(i), eta);
      });
      if (avg) {
        const double rho = AveragingRho(c_.averaging, static_cast<double>(t), sched_.shift);
        if (lazy_avg) {
          lazy_avg->Step(rho, w.scale);
        } else {
          for (Index j = 0; j < d_; ++j) avg_[static_cast<std::size_t>(j)] += rho * (x_[static_cast<std::size_t>(j)] - avg_[static_cast<std::size_t>(j)]);
        }
      }
      ++w.steps;
      if (!MessageFinite(w)) return Halt(kDiverged);
      if ((w.steps & (kPoll - 1)) == 0 && !KeepGoing(x, w, i)) {
        // The lazy SGD form is folded when this segment returns; a checkpoint of this interrupt
        // keeps it unfolded (x = scale * v), as the uninterrupted run would continue.
        if (halt_.load() == kStopped && !c_.checkpoint_path.empty() && w.scale != 1.0) {
          stop_x_.assign(x_.begin(), x_.end());
          stop_scale_ = w.scale;
        }
        // Likewise the lazy average is saved unfolded (u, A, B).
        if (halt_.load() == kStopped && !c_.checkpoint_path.empty() && lazy_avg) {
          stop_avg_ = avg_;
          stop_a_ = lazy_avg->A();
          stop_b_ = lazy_avg->B();
        }
        return;
      }
    }
  }

  // Worker w takes positions first, first + P, ... < end (first = begin + w + P * steps it has
  // already taken in this segment). How its writes reach the shared x (W: atomic or racy):
  //   flush_every_ == 1  each write at once (the paper's Algorithm 2)
  //   Snapshot()         the sequential kernels on the worker's own copy of x; every
  //                      flush_every_ of its steps (and when it leaves the segment) what it
  //                      changed is written to the shared x and the copy taken again
  // docs/speedup.md states what each reads and how stale it can be.
  template <class W>
  void WorkerLoop(int w, Offset first, Offset end) {
    const W shared{{x_.data()}};
    Worker& wk = workers_[static_cast<std::size_t>(w)];
    if (!Snapshot()) return WorkerSteps(shared, wk, first, end, [] {});
    const PlainAccess x{wk.xsnap.data()};
    auto copy = [&] {
      detail::CopyShared(shared, wk, d_);
      if (ctx_.lazy_mem) detail::LazyReread(ctx_, x, wk);  // the slopes follow the new copy
    };
    auto write = [&] {
      detail::Sync(ctx_, x, wk);  // the lazy SGD kernel's x = s v, folded
      detail::WriteChanges(shared, wk, d_);
    };
    copy();
    WorkerSteps(x, wk, first, end, [&] {
      write();
      copy();
    });
    write();
  }

  // Snapshot mode: a worker writes after this many of its steps when the step size is eta
  // (Runner()).
  Offset FlushAfter(double eta) const noexcept {
    if (!flush_auto_) return flush_every_;
    const double b = kFlushEta / eta;  // NaN or inf (eta 0): flush_every_
    return !(b < static_cast<double>(flush_every_)) ? flush_every_
                                                    : std::max<Offset>(1, static_cast<Offset>(b));
  }

  template <class X, class F>
  void WorkerSteps(const X& x, Worker& wk, Offset first, Offset end, F&& flush) {
    if (ctx_.lazy_mem && !wk.lazy_ready) detail::LazyBegin(ctx_, x, wk);
    const Offset p = static_cast<Offset>(workers_.size());
    // A segment never crosses an epoch's end (as in SequentialLoop): the rows ahead are known.
    const Offset base = first - first % n_;
    const bool prefetch = !c_.with_replacement;
    Offset since = 0;  // this worker's steps since its last write (snapshot mode)
    for (Offset t = first; t < end; t += p) {
      const Offset i = Sample(wk, t);
      if (prefetch) detail::PrefetchAhead(data_, perm_, t - base, p);
      const double eta = sched_(t);
      data_.VisitRow(i, [&](auto row) __attribute__((always_inline)) {
        detail::Step(ctx_, x, wk, row, data_.Label(i), eta);
      });
      ++wk.steps;
      if (!MessageFinite(wk)) return Halt(kDiverged);
      if (Snapshot() && ++since >= FlushAfter(eta)) {
        flush();
        wk.longest_flush = std::max(wk.longest_flush, since);
        since = 0;
      }
      if ((wk.steps & (kPoll - 1)) == 0 && !KeepGoing(x, wk, i)) break;
    }
    wk.longest_flush = std::max(wk.longest_flush, since);  // the segment end's write
  }

  void RunParallel(Offset begin, Offset end, const std::vector<Offset>& done) {
    if (!pool_) pool_ = std::make_unique<WorkerPool>(c_.threads);
    const Offset p = c_.threads;
    pool_->Run([&](int w) {
      const Offset first = begin + w + p * done[static_cast<std::size_t>(w)];
      if (c_.write == WritePolicy::kAtomic)
        WorkerLoop<AtomicAddAccess>(w, first, end);
      else
        WorkerLoop<RacyAddAccess>(w, first, end);
    });
    if (StopRequested()) Halt(kStopped);
  }

  std::string DivergedMessage() const {
    char g[32];
    std::snprintf(g, sizeof g, "%g", sched_.gamma);
    return "the loss or the iterate became NaN or infinite after " + std::to_string(samples_) +
           " samples: the step size is too large; try a smaller --gamma (this run: " + g + ")";
  }

  std::uint64_t DataHash() {
    if (!data_hash_) data_hash_ = DataFingerprint(data_);
    return *data_hash_;
  }

  // Writes the state (segment in progress starting at seg_begin; done[w]: worker w's steps in
  // it) to the checkpoint file. Outside the timed region. A failed write is a warning: the run
  // goes on (the previous checkpoint file, if any, is intact).
  void SaveState(TrainResult& res, Offset seg_begin, const std::vector<Offset>& done) {
    CheckpointState st;
    st.config_hash = ConfigFingerprint(c_, data_);
    st.data_hash = DataHash();
    st.n = n_;
    st.d = d_;
    st.threads = c_.threads;
    st.total = total_;
    st.samples = samples_;
    st.segment_begin = seg_begin;
    st.train_seconds = train_seconds_;
    const bool unfolded = !stop_x_.empty();
    if (unfolded)
      st.x = stop_x_;
    else
      st.x.assign(x_.begin(), x_.end());
    if (!stop_avg_.empty()) {  // stopped in mid-segment with a lazy average: unfolded
      st.avg = stop_avg_;
      st.avg_a = stop_a_;
      st.avg_b = stop_b_;
    } else {  // folded, or a resumed state not yet run on
      st.avg = avg_;
      st.avg_a = resume_avg_.a;
      st.avg_b = resume_avg_.b;
    }
    stop_avg_.clear();
    st.avg_weight = avg_weight_;
    st.has_perm = !c_.with_replacement;
    if (st.has_perm) st.perm = perm_;
    st.shuffle_rng = shuffle_rng_.GetState();
    st.workers.resize(workers_.size());
    // The parallel lazy memory is saved folded (its slopes are this worker's reads of x, which a
    // resumed run re-reads anyway); the sequential one as b and S, so that resuming is exact.
    if (ctx_.lazy_mem && c_.threads > 0)
      for (auto& w : workers_) detail::LazyFoldMemory(w);
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      auto& o = st.workers[w];
      o.m.assign(workers_[w].m.begin(), workers_[w].m.end());
      o.rng = workers_[w].rng.GetState();
      o.bits = workers_[w].bits;
      o.scale = unfolded && w == 0 ? stop_scale_ : workers_[w].scale;
      o.shift = workers_[w].shift;
      o.steps = workers_[w].steps;
      o.segment_steps = done[w];
    }
    st.trace = res.trace;
    stop_x_.clear();
    try {
      WriteCheckpoint(c_.checkpoint_path, st);
      ++res.checkpoints_written;
    } catch (const std::exception& e) {
      res.warnings.push_back(std::string("checkpoint not saved: ") + e.what());
    }
  }

  // Loads c_.resume_path into the runner; returns the first sample of the segment in progress
  // and fills done (each worker's steps in it).
  Offset Restore(TrainResult& res, std::vector<Offset>& done) {
    CheckpointState st = ReadCheckpoint(c_.resume_path);
    const std::string& f = c_.resume_path;
    if (st.data_hash != DataHash() || st.n != n_ || st.d != d_) {
      throw CheckpointError(
          CheckpointError::Kind::kMismatch,
          "checkpoint '" + f + "' was written for other training data (checkpoint: n=" +
              std::to_string(st.n) + " d=" + std::to_string(st.d) + "; now: n=" +
              std::to_string(n_) + " d=" + std::to_string(d_) +
              (st.n == n_ && st.d == d_ ? ", same shape but different content)" : ")"));
    }
    if (st.config_hash != ConfigFingerprint(c_, data_) || st.threads != c_.threads ||
        st.total != total_) {
      throw CheckpointError(
          CheckpointError::Kind::kMismatch,
          "checkpoint '" + f + "' was written by a run with other options (checkpoint: threads " +
              std::to_string(st.threads) + ", " + std::to_string(st.total) +
              " samples in all; now: threads " + std::to_string(c_.threads) + ", " +
              std::to_string(total_) +
              "); resume with the same --method, --compressor, --k, --objective, --lambda, --step, "
              "--gamma, --shift, --averaging, --sampling, --epochs, --threads, --write, --flush-every, "
              "--eval-every, --seed, --init-std and --reg");
    }
    auto corrupt = [&](const std::string& why) {
      return CheckpointError(CheckpointError::Kind::kCorrupt,
                             "checkpoint '" + f + "' is inconsistent: " + why);
    };
    if (st.has_perm == c_.with_replacement) throw corrupt("permutation presence");
    if (st.workers.size() != workers_.size()) throw corrupt("worker count");
    // The segment in progress must be one this run would start, and each worker's progress in it
    // no more than its share of the positions.
    const Offset b = st.segment_begin;
    if (b >= total_ && st.samples != b) throw corrupt("segment start");
    if (b < total_) {
      const Offset e = SegmentEnd(b);
      const Offset p = static_cast<Offset>(workers_.size());
      for (Offset w = 0; w < p; ++w) {
        const Offset share = e - b > w ? (e - b - w + p - 1) / p : 0;
        if (st.workers[static_cast<std::size_t>(w)].segment_steps > share)
          throw corrupt("worker progress beyond its segment");
      }
    }
    x_.assign(st.x.begin(), st.x.end());
    avg_ = std::move(st.avg);
    resume_avg_.a = st.avg_a;
    resume_avg_.b = st.avg_b;
    if (!lazy_average_) FoldResumedAverage();  // e.g. resumed with MEMSGD_KERNELS=avg=dense
    avg_weight_ = st.avg_weight;
    if (st.has_perm) perm_ = std::move(st.perm);
    shuffle_rng_.SetState(st.shuffle_rng);
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      auto& wk = workers_[w];
      auto& in = st.workers[w];
      wk.m.assign(in.m.begin(), in.m.end());
      wk.rng.SetState(in.rng);
      wk.bits = in.bits;
      wk.scale = in.scale;
      wk.shift = in.shift;
      wk.lazy_ready = false;
      if (!ctx_.lazy_mem && wk.shift != 0) throw corrupt("a lazy memory for a run without one");
      wk.steps = in.steps;
      done[w] = in.segment_steps;
    }
    // x saved as v with x = scale * v (lazy SGD) but resumed where that kernel does not run (other
    // MEMSGD_KERNELS): fold it now, the average first (it is A u + B v).
    const bool lazy_sgd = c_.threads == 0 && c_.method == Method::kSgd && ctx_.lazy_ok &&
                          ctx_.kern.sgd == kernels::SgdKernel::kLazy;
    if (!lazy_sgd && c_.threads == 0 && workers_[0].scale != 1.0) {
      FoldResumedAverage();
      detail::Sync(ctx_, PlainAccess{x_.data()}, workers_[0]);
    }
    samples_ = st.samples;
    train_seconds_ = st.train_seconds;
    res.trace = std::move(st.trace);
    res.resumed_from = samples_;
    return b;
  }

  // x = scale * v of the lazy sequential SGD kernel, folded (a no-op otherwise). Needed where x is
  // read without a segment having run since Restore().
  void FoldLazyIterate() {
    if (c_.threads == 0) detail::Sync(ctx_, PlainAccess{x_.data()}, workers_[0]);
    FoldResumedAverage();
  }

  // A resumed lazy average that no segment has run on yet, folded (avg_ is then the average).
  void FoldResumedAverage() {
    detail::AveragedAccess{x_.data(), avg_.data(), &resume_avg_}.Fold(avg_.size());
  }

  // Parallel solver: average the checkpoint snapshots with the configured weights.
  void AverageSnapshot(Offset t) {
    const double a = sched_.shift;
    const double wgt = c_.averaging == AveragingKind::kUniform ? 1.0 : (t + a) * (t + a);
    avg_weight_ += wgt;
    const double rho = wgt / avg_weight_;
    for (std::size_t j = 0; j < x_.size(); ++j) avg_[j] += rho * (x_[j] - avg_[j]);
  }

  // last: where the run stops early (evaluated even without --trace: the result line reports it).
  void Checkpoint(TrainResult& res, bool last = false) {
    if (!c_.evaluate && samples_ != total_ && !last) return;
    const std::span<const double> xe = c_.averaging == AveragingKind::kFinal
                                           ? std::span<const double>(x_)
                                           : std::span<const double>(avg_);
    TracePoint p;
    p.samples = samples_;
    p.epoch = static_cast<double>(samples_) / static_cast<double>(n_);
    p.seconds = train_seconds_;
    const Evaluation ev = Evaluate(c_.objective, data_, xe);
    p.loss = ev.loss;
    p.grad_norm2 = ev.grad_norm2;
    p.train_accuracy = ev.accuracy;
    if (c_.fstar) p.suboptimality = ev.loss - *c_.fstar;
    if (c_.test) p.test_accuracy = Accuracy(*c_.test, xe);
    for (const auto& w : workers_) p.bits += w.bits;
    res.trace.push_back(p);
    if (cb_) cb_(p);
    bool finite = std::isfinite(ev.loss);
    for (double v : x_) finite = finite && std::isfinite(v);
    if (!finite && res.status == TrainStatus::kOk) {
      res.status = TrainStatus::kDiverged;
      res.message = DivergedMessage();
    } else if (c_.target_loss && ev.loss <= *c_.target_loss && res.status == TrainStatus::kOk &&
               samples_ > 0) {
      res.status = TrainStatus::kReachedTarget;
    }
  }

  const TrainConfig& c_;
  const Dataset& data_;
  const TraceCallback& cb_;
  Offset n_;
  Index d_;
  StepSchedule sched_;
  StepContext ctx_{};
  std::vector<Worker> workers_;
  std::vector<double> inv_freq_;  // parallel SGD, --reg lazy: n / (rows holding j)
  AlignedVector x_;  // the shared (or sequential) iterate: cache-line aligned for the dense passes
  std::vector<double> avg_;
  double avg_weight_ = 0;
  std::vector<Offset> perm_;
  Rng shuffle_rng_;
  Offset eval_every_ = 1, total_ = 1, samples_ = 0;
  double train_seconds_ = 0;
  std::unique_ptr<WorkerPool> pool_;
  std::atomic<int> halt_{kRun};  // why the segment in progress ends early (kStopped, kDiverged)
  std::optional<std::uint64_t> data_hash_;
  Offset scan_every_ = kPoll;   // steps between full scans of x (SetScanInterval)
  Offset flush_every_ = 1;      // parallel: a worker's writes are applied this often (WorkerLoop)
  bool flush_auto_ = true;      // --flush-every 0: FlushAfter follows the step size
  std::vector<double> stop_x_;  // unfolded lazy x at a mid-segment interrupt (for SaveState)
  bool lazy_average_ = false;   // sequential averaging as A u + B x (LazyAverage)
  detail::LazyAverageState resume_avg_;  // a lazy average restored unfolded, for the next segment
  std::vector<double> stop_avg_;        // u at a mid-segment interrupt (for SaveState)
  double stop_a_ = 1, stop_b_ = 0;
  double stop_scale_ = 1;
};

}  // namespace

TrainResult TrainMemSgd(const TrainConfig& config, const Dataset& data, const TraceCallback& on_point) {
  Runner runner(config, data, on_point);
  return runner.Run();
}

}  // namespace memsgd
