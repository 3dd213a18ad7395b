// EF14-SGD, EF21, EF21-SGD, EF21-SGDM, EF21-SGD2M and compressed SGD with n workers (issue 4).
// Update rules, order of operations and initialisation: ../shared/papers/ef21-sgdm.md sections
// 2-3; design notes in docs/error_feedback.md.
#include "memsgd/error_feedback.hpp"

#include "memsgd/ef_checkpoint.hpp"

#include "memsgd/kernels/topk.hpp"
#include "memsgd/worker_pool.hpp"


#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>

namespace memsgd {
namespace ef {

namespace {
using Clock = std::chrono::steady_clock;
inline std::size_t Z(Offset i) noexcept { return static_cast<std::size_t>(i); }
}  // namespace

// ---- shards ---------------------------------------------------------------------------------

std::vector<std::vector<Offset>> SplitRows(const Dataset& data, int workers, SplitKind kind,
                                           std::uint64_t seed) {
  const Offset n = data.NumRows();
  if (workers < 1 || workers > n)
    throw std::invalid_argument("--workers must be in 1.." + std::to_string(n));
  std::vector<Offset> order(Z(n));
  std::iota(order.begin(), order.end(), Offset{0});
  if (kind == SplitKind::kRandom) {
    Rng rng(seed, kSplitStream);
    for (Offset i = n - 1; i > 0; --i) {
      const auto j = static_cast<Offset>(rng.Below(static_cast<std::uint64_t>(i) + 1));
      std::swap(order[Z(i)], order[Z(j)]);
    }
  } else if (kind == SplitKind::kByLabel) {
    std::stable_partition(order.begin(), order.end(),
                          [&](Offset r) { return data.Label(r) < 0; });
  }
  const Offset q = n / workers;
  std::vector<std::vector<Offset>> shards(static_cast<std::size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    const Offset b = w * q, e = w + 1 == workers ? n : (w + 1) * q;
    auto& s = shards[static_cast<std::size_t>(w)];
    s.assign(order.begin() + b, order.begin() + e);
    std::sort(s.begin(), s.end());
  }
  return shards;
}

// ---- accounting -----------------------------------------------------------------------------

MessageCost MessageBits(const CompressorSpec& spec, Index d, Index sent, int value_bits) noexcept {
  return VisitKind(spec.kind, [&](auto tag) {
    return decltype(tag)::type::Cost(spec, d, sent, value_bits);
  });
}

// ---- the engine -----------------------------------------------------------------------------

namespace {

bool IsEf21Family(Method m) {
  return m == Method::kEf21 || m == Method::kEf21Sgd || m == Method::kEf21Sgdm ||
         m == Method::kEf21Sgd2m;
}

// What a worker holds in both forms (the dense one here, the lazy one below).
struct WorkerBase {
  std::vector<double> state;  // g_i (EF21 family) or e_i (EF14); empty for sgd-compressed
  SparseUpdate msg;
  Rng rng;  // the compressor's randomness
  double values_bits = 0, indexed_bits = 0;
  Offset samples = 0;

  void Count(const MessageCost& c) {
    values_bits += c.values;
    indexed_bits += c.indexed;
  }
};

// The value a worker sends (and keeps in its own state): float32 messages round it.
inline double OnWire(Wire wire, double v) noexcept {
  return wire == Wire::kFloat32 ? static_cast<double>(static_cast<float>(v)) : v;
}

// What both forms share: the checks, the workers' streams and weights, the threads, the rounds
// with their checkpoints, the initial dense round of the EF21 family, the server's side of a
// round and the communication totals. A form adds how a worker computes its message and how x
// is kept: Start (before round 0, timed), Round, and Materialise (brings x_ up to date before it
// is read).
template <class Oracle, class Worker>
class EngineBase {
 public:
  virtual ~EngineBase() = default;

  RunResult Run(const Observer& observer) {
    RunResult res;
    Offset t = 0;
    bool go = true;
    if (o_.resume) {
      Restore(*o_.resume);  // its round was notified by the run that saved it
      t = o_.resume->round;
      last_notified_ = t;
    } else {
      const auto t0 = Clock::now();
      Start();
      seconds_ += Seconds(t0);
      go = Notify(observer, 0);
    }
    while (go && t < o_.rounds) {
      bool stop = o_.stop && o_.stop->load(std::memory_order_relaxed);
      if (!tr_->InProcess()) stop = tr_->Any(stop);  // every process stops at the same round
      if (stop) {
        res.interrupted = true;
        break;
      }
      const auto start = Clock::now();
      Round(t);
      seconds_ += Seconds(start);
      ++t;
      const bool at = t == o_.rounds || (o_.eval_every > 0 && t % o_.eval_every == 0) ||
                      (o_.rounds_per_epoch > 0 && t % o_.rounds_per_epoch == 0);
      if (at) go = Notify(observer, t);
    }
    // The last call (the observer may save the state; the round may have been notified already).
    if (res.interrupted) Notify(observer, t, /*interrupted=*/true);
    res.stopped = !go;
    Materialise();
    res.x = x_;
    res.comm = Comm(t);
    res.rounds = t;
    res.samples = Samples();
    res.seconds = seconds_;
    return res;
  }

 protected:
  // who: the entry point named in the errors.
  EngineBase(const char* who, const Options& o, Oracle& oracle, std::vector<double> x0)
      : o_(o), oracle_(oracle), d_(oracle.Dim()), x_(std::move(x0)) {
    const std::string name = who;
    if (o.transport) {
      tr_ = o.transport;
    } else {
      own_tr_ = std::make_unique<InProcessTransport>(oracle.Workers());
      tr_ = own_tr_.get();
    }
    n_ = tr_->Workers();
    first_ = tr_->First();
    local_ = tr_->Local();
    if (oracle.Workers() != local_)
      throw std::invalid_argument(name + ": the oracle holds " + std::to_string(oracle.Workers()) +
                                  " workers, the transport runs " + std::to_string(local_) + " here");
    vbits_ = ValueBits(o.wire);
    if (!IsErrorFeedbackFamily(o.method))
      throw std::invalid_argument(name + ": not an error-feedback method: " + MethodName(o.method));
    if (static_cast<Index>(x_.size()) != d_) throw std::invalid_argument(name + ": |x0| != d");
    if (n_ < 1) throw std::invalid_argument(name + ": no workers");
    if (!(o.eta > 0 && o.eta <= 1)) throw std::invalid_argument("--eta must be in (0, 1]");
    ef21_ = IsEf21Family(o.method);
    const auto d = static_cast<std::size_t>(d_);
    tr_->Begin(d_, o.wire);
    workers_.resize(static_cast<std::size_t>(local_));
    std::vector<double> local_weights(static_cast<std::size_t>(local_));
    for (int l = 0; l < local_; ++l) {
      auto& w = workers_[static_cast<std::size_t>(l)];
      w.rng.Seed(o.seed, static_cast<std::uint64_t>(first_ + l));
      if (o.method != Method::kSgdCompressed) w.state.assign(d, 0.0);
      local_weights[static_cast<std::size_t>(l)] = oracle.Weight(l);
    }
    weights_.resize(static_cast<std::size_t>(n_));
    tr_->Allgather(local_weights, weights_);
    if (ef21_) g_.assign(d, 0.0);
    mark_.assign(d, 0);
    // The run's threads, at most one a worker (the result does not depend on the count).
    if (o.threads > 0) pool_ = std::make_unique<WorkerPool>(std::min(o.threads, std::max(local_, 1)));
  }

  virtual void Start() = 0;
  virtual void Round(Offset t) = 0;
  virtual void Materialise() {}
  // The form's own part of a worker's state (momenta), and what it rebuilds after a restore.
  virtual void SaveForm(const Worker& w, WorkerState& out) const = 0;
  virtual void RestoreForm(const WorkerState& in, Worker& w) = 0;
  virtual void Restored(const RunState&) {}
  virtual double StepSum() const { return 0; }

  // The state at round t (x brought up to date), this process's workers only.
  RunState Capture(Offset t) {
    Materialise();
    RunState st;
    st.d = d_;
    st.rounds = o_.rounds;
    st.round = t;
    st.seconds = seconds_;
    st.gam = StepSum();
    st.x = x_;
    st.g = g_;
    st.downlink_dense = comm_.downlink_dense;
    st.downlink_sparse = comm_.downlink_sparse;
    st.workers.resize(static_cast<std::size_t>(local_));
    for (int l = 0; l < local_; ++l) {
      const auto& w = workers_[Z(l)];
      auto& out = st.workers[Z(l)];
      out.state = w.state;
      out.rng = w.rng.GetState();
      out.values_bits = w.values_bits;
      out.indexed_bits = w.indexed_bits;
      out.samples = w.samples;
      out.sampler = oracle_.Sampler(l);
      SaveForm(w, out);
    }
    return st;
  }

  // Continues st (checked by the caller: sizes, worker count, this process's samplers).
  void Restore(const RunState& st) {
    x_ = st.x;
    if (ef21_) g_ = st.g;
    comm_.downlink_dense = st.downlink_dense;
    comm_.downlink_sparse = st.downlink_sparse;
    seconds_ = st.seconds;
    for (int l = 0; l < local_; ++l) {
      const auto& in = st.workers[Z(first_ + l)];
      auto& w = workers_[Z(l)];
      if (!w.state.empty()) std::copy(in.state.begin(), in.state.end(), w.state.begin());
      w.rng.SetState(in.rng);
      w.values_bits = in.values_bits;
      w.indexed_bits = in.indexed_bits;
      w.samples = in.samples;
      oracle_.SetSampler(l, in.sampler);
      RestoreForm(in, w);
    }
    Restored(st);
  }

  // f(l) for this process's workers l = 0 .. local_ - 1 (the run's workers first_ + l).
  template <class F>
  void ForWorkers(F&& f) {
    if (!pool_) {
      for (int i = 0; i < local_; ++i) f(i);
      return;
    }
    pool_->For(local_, f);
  }

  // EF21 family: g_i^0 = a gradient at x0 (the full local one for ef21 or InitKind::kFull, else
  // one minibatch), sent uncompressed; start_momenta(w) sets v_i^0 (and u_i^0) from it. Then
  // g^0 = sum_i w_i g_i^0, sent to the workers once, densely, so that they can track x themselves.
  template <class F>
  void Initialise(F&& start_momenta) {
    const bool full = o_.method == Method::kEf21 || o_.init == InitKind::kFull;
    ForWorkers([&](int i) {
      auto& w = workers_[static_cast<std::size_t>(i)];
      if (full) {
        oracle_.AddFull(i, x_, 1.0, w.state);
        w.samples += oracle_.FullSamples(i);
      } else {
        oracle_.AddStochastic(i, x_, 1.0, w.state);
        w.samples += oracle_.StochasticSamples(i);
      }
      for (double& v : w.state) v = OnWire(o_.wire, v);
      start_momenta(w);
      w.Count(DenseBits(d_, vbits_));
    });
    // g^0 = sum_i w_i g_i^0 in worker order (the other processes' g_i^0 gathered first).
    const auto d = static_cast<std::size_t>(d_);
    std::vector<double> gathered;
    if (!tr_->InProcess()) {
      std::vector<double> local(static_cast<std::size_t>(local_) * d);
      for (int l = 0; l < local_; ++l)
        std::copy(workers_[static_cast<std::size_t>(l)].state.begin(),
                  workers_[static_cast<std::size_t>(l)].state.end(), local.begin() + l * d);
      gathered.resize(static_cast<std::size_t>(n_) * d);
      tr_->Allgather(local, gathered, /*values=*/true);
    }
    for (int i = 0; i < n_; ++i) {
      const double* gi = gathered.empty() ? workers_[static_cast<std::size_t>(i)].state.data()
                                          : gathered.data() + static_cast<std::size_t>(i) * d;
      const double wi = weights_[static_cast<std::size_t>(i)];
      for (std::size_t j = 0; j < d; ++j) g_[j] += wi * gi[j];
    }
    comm_.downlink_sparse += double(vbits_) * d_;
  }

  // The server's side of a round: adds the messages in worker order (EF21 family: g += w_i c_i,
  // before_g(j) called first; ef14-sgd: x -= w_i D_i; sgd-compressed: x -= gamma w_i C(...)) and
  // counts the broadcast.
  // A coordinate sent with the value 0 changes nothing and is not counted in the broadcast (a
  // message in the dense encoding carries no support: the MPI transport delivers its nonzeros).
  template <class F>
  void Serve(double gamma, F&& before_g) {
    local_msgs_.resize(static_cast<std::size_t>(local_));
    for (int l = 0; l < local_; ++l) local_msgs_[Z(l)] = &workers_[Z(l)].msg;
    tr_->Exchange(local_msgs_, all_msgs_);
    Index support = 0;
    for (int i = 0; i < n_; ++i) {
      const SparseUpdate& msg = *all_msgs_[Z(i)];
      const double wi = weights_[static_cast<std::size_t>(i)];
      for (Index s = 0; s < msg.size; ++s) {
        const auto j = Z(msg.idx[Z(s)]);
        const double val = msg.val[Z(s)];
        if (val == 0) continue;
        if (ef21_) {
          before_g(j);
          g_[j] += wi * val;
        } else if (o_.method == Method::kEf14) {
          x_[j] -= wi * val;
        } else {
          x_[j] -= gamma * (wi * val);
        }
        if (!mark_[j]) {
          mark_[j] = 1;
          touched_.push_back(static_cast<Index>(j));
          ++support;
        }
      }
    }
    for (Index j : touched_) mark_[Z(j)] = 0;
    touched_.clear();
    comm_.downlink_dense += double(vbits_) * d_;
    comm_.downlink_sparse += std::min(support * (double(vbits_) + IndexBits(d_)), double(vbits_) * d_);
  }

  const Options& o_;
  Oracle& oracle_;
  Transport* tr_ = nullptr;
  std::unique_ptr<InProcessTransport> own_tr_;
  int n_ = 0, first_ = 0, local_ = 0;  // all workers; this process's: first_ .. first_ + local_ - 1
  int vbits_ = 32;
  Index d_;
  bool ef21_ = false;
  std::vector<double> x_, g_, weights_;
  std::vector<Worker> workers_;

 private:
  static double Seconds(Clock::time_point s) {
    return std::chrono::duration<double>(Clock::now() - s).count();
  }

  // Totals over every process (collective calls: integers in doubles, summed exactly).
  Offset Samples() {
    double s[1] = {0};
    for (const auto& w : workers_) s[0] += static_cast<double>(w.samples);
    tr_->Sum(s);
    return static_cast<Offset>(s[0]);
  }

  Communication Comm(Offset rounds) {
    Communication c = comm_;
    double up[2] = {0, 0};
    for (const auto& w : workers_) {
      up[0] += w.values_bits;
      up[1] += w.indexed_bits;
    }
    tr_->Sum(up);
    c.uplink_values = up[0];
    c.uplink_indexed = up[1];
    c.uplink_values /= n_;
    c.uplink_indexed /= n_;
    c.rounds = rounds;
    c.init_counted = ef21_;
    return c;
  }

  bool Notify(const Observer& observer, Offset t, bool interrupted = false) {
    last_notified_ = t;
    if (!observer) return true;
    Materialise();
    Checkpoint cp;
    cp.round = t;
    cp.samples = Samples();
    cp.seconds = seconds_;
    cp.x = x_;
    cp.comm = Comm(t);
    cp.interrupted = interrupted;
    cp.capture = [this, t] { return Capture(t); };
    return observer(cp);
  }

  std::vector<const SparseUpdate*> local_msgs_, all_msgs_;
  std::vector<std::uint8_t> mark_;
  std::vector<Index> touched_;
  Communication comm_;
  double seconds_ = 0;
  Offset last_notified_ = -1;
  std::unique_ptr<WorkerPool> pool_;  // the engines' one pool (memsgd/worker_pool.hpp)
};

// ---- the dense (reference) form: O(d) per worker per round

struct alignas(kCacheLine) DenseWorker : WorkerBase {
  std::vector<double> v;    // v_i (EF21-SGDM/2M)
  std::vector<double> u;    // u_i (EF21-SGD2M)
  std::vector<double> tmp;  // gradient, then the vector handed to the compressor
  Compressor comp;
};

class Engine final : public EngineBase<GradientOracle, DenseWorker> {
 public:
  Engine(const Options& o, GradientOracle& oracle, std::vector<double> x0)
      : EngineBase("ef::Run", o, oracle, std::move(x0)) {
    const auto d = static_cast<std::size_t>(d_);
    for (auto& w : workers_) {
      w.comp = Compressor(o.compressor, d_);
      w.msg.Reserve(std::max<Index>(d_, 1));  // identity/QSGD may send up to d coordinates
      w.tmp.assign(d, 0.0);
      if (o.method == Method::kEf21Sgdm || o.method == Method::kEf21Sgd2m) w.v.assign(d, 0.0);
      if (o.method == Method::kEf21Sgd2m) w.u.assign(d, 0.0);
    }
  }

 private:
  void Start() override {
    if (!ef21_) return;
    Initialise([](DenseWorker& w) {
      if (!w.v.empty()) w.v = w.state;
      if (!w.u.empty()) w.u = w.state;
    });
  }

  void SaveForm(const DenseWorker& w, WorkerState& out) const override {
    out.v = w.v;
    out.u = w.u;
  }
  // A lazy form's ~v, ~u and scalars are folded (v = s ~v, u = a ~u + b ~v); absent: zeros.
  void RestoreForm(const WorkerState& in, DenseWorker& w) override {
    const bool folded = in.s == 1 && in.a == 1 && in.b == 0;
    for (std::size_t j = 0; j < w.v.size(); ++j) {
      const double v = in.v.empty() ? 0.0 : in.v[j];
      const double u = in.u.empty() ? 0.0 : in.u[j];
      if (!w.u.empty()) w.u[j] = folded ? u : in.a * u + in.b * v;
      w.v[j] = folded ? v : in.s * v;
    }
  }

  void ToWire(SparseUpdate& msg) const noexcept {
    for (Index s = 0; s < msg.size; ++s) msg.val[Z(s)] = OnWire(o_.wire, msg.val[Z(s)]);
  }

  // One worker's message at the current x.
  void WorkerStep(int i, double gamma) {
    auto& w = workers_[static_cast<std::size_t>(i)];
    const auto d = static_cast<std::size_t>(d_);
    double* tmp = w.tmp.data();
    switch (o_.method) {
      case Method::kEf14: {
        // p = e + gamma grad (added into e in the Mem-SGD solver's order), D = C(p), e = p - D.
        oracle_.AddStochastic(i, x_, gamma, w.state);
        w.samples += oracle_.StochasticSamples(i);
        w.comp.Compress(w.state, w.msg, w.rng);
        ToWire(w.msg);
        for (Index s = 0; s < w.msg.size; ++s) w.state[Z(w.msg.idx[Z(s)])] -= w.msg.val[Z(s)];
        break;
      }
      case Method::kSgdCompressed: {
        std::fill(w.tmp.begin(), w.tmp.end(), 0.0);
        oracle_.AddStochastic(i, x_, 1.0, w.tmp);
        w.samples += oracle_.StochasticSamples(i);
        w.comp.Compress(w.tmp, w.msg, w.rng);
        ToWire(w.msg);
        break;
      }
      default: {  // EF21 family
        std::fill(w.tmp.begin(), w.tmp.end(), 0.0);
        if (o_.method == Method::kEf21) {
          oracle_.AddFull(i, x_, 1.0, w.tmp);
          w.samples += oracle_.FullSamples(i);
        } else {
          oracle_.AddStochastic(i, x_, 1.0, w.tmp);
          w.samples += oracle_.StochasticSamples(i);
        }
        const double* gi = w.state.data();
        if (o_.method == Method::kEf21Sgdm || o_.method == Method::kEf21Sgd2m) {
          const double a = 1.0 - o_.eta, b = o_.eta;
          double* v = w.v.data();
          for (std::size_t j = 0; j < d; ++j) v[j] = a * v[j] + b * tmp[j];
          if (o_.method == Method::kEf21Sgd2m) {
            double* u = w.u.data();
            for (std::size_t j = 0; j < d; ++j) {
              u[j] = a * u[j] + b * v[j];
              tmp[j] = u[j] - gi[j];
            }
          } else {
            for (std::size_t j = 0; j < d; ++j) tmp[j] = v[j] - gi[j];
          }
        } else {
          for (std::size_t j = 0; j < d; ++j) tmp[j] -= gi[j];
        }
        w.comp.Compress(w.tmp, w.msg, w.rng);
        ToWire(w.msg);
        for (Index s = 0; s < w.msg.size; ++s) w.state[Z(w.msg.idx[Z(s)])] += w.msg.val[Z(s)];
        break;
      }
    }
    w.Count(MessageBits(o_.compressor, d_, w.msg.size, vbits_));
  }

  void Round(Offset t) override {
    const double gamma = o_.schedule(t);
    if (ef21_) {
      // Server: x^{t+1} = x^t - gamma g^t, broadcast; workers then work at x^{t+1}.
      for (std::size_t j = 0; j < x_.size(); ++j) x_[j] -= gamma * g_[j];
    }
    ForWorkers([&](int i) { WorkerStep(i, gamma); });
    Serve(gamma, [](std::size_t) {});
  }
};

}  // namespace

RunResult Run(const Options& options, GradientOracle& oracle, std::vector<double> x0,
              const Observer& observer) {
  Engine engine(options, oracle, std::move(x0));
  return engine.Run(observer);
}

// ---- data-set oracle ------------------------------------------------------------------------

DatasetOracle::DatasetOracle(const Dataset& data, const Objective& objective,
                             std::vector<std::vector<Offset>> shards, int batch,
                             bool with_replacement, std::uint64_t seed, int first_worker,
                             Offset total_rows)
    : data_(&data),
      obj_(objective),
      shards_(std::move(shards)),
      batch_(batch),
      with_replacement_(with_replacement),
      total_rows_(total_rows > 0 ? total_rows : data.NumRows()) {
  if (batch < 1) throw std::invalid_argument("--batch must be >= 1");
  samplers_.resize(shards_.size());
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    if (shards_[i].empty()) throw std::invalid_argument("a worker has an empty shard");
    auto& s = samplers_[i];
    s.perm.resize(shards_[i].size());
    std::iota(s.perm.begin(), s.perm.end(), Offset{0});
    s.cursor = static_cast<Offset>(s.perm.size());  // reshuffle before the first draw
    s.rng.Seed(seed, kSampleStream + static_cast<std::uint64_t>(first_worker) + i);
  }
}

double DatasetOracle::Weight(int i) const {
  return static_cast<double>(shards_[static_cast<std::size_t>(i)].size()) /
         static_cast<double>(total_rows_);
}

Offset DatasetOracle::FullSamples(int i) const {
  return static_cast<Offset>(shards_[static_cast<std::size_t>(i)].size());
}

Offset DatasetOracle::NextRow(int i) {
  auto& s = samplers_[static_cast<std::size_t>(i)];
  const auto& shard = shards_[static_cast<std::size_t>(i)];
  const auto m = static_cast<Offset>(shard.size());
  if (with_replacement_) return shard[Z(static_cast<Offset>(s.rng.Below(static_cast<std::uint64_t>(m))))];
  if (s.cursor == m) {
    // The Mem-SGD solver's reshuffle (engine/mem_sgd.cpp, Runner::Shuffle), on the shard's positions.
    for (Offset a = m - 1; a > 0; --a) {
      const auto b = static_cast<Offset>(s.rng.Below(static_cast<std::uint64_t>(a) + 1));
      std::swap(s.perm[Z(a)], s.perm[Z(b)]);
    }
    s.cursor = 0;
  }
  return shard[Z(s.perm[Z(s.cursor++)])];
}

SamplerState GradientOracle::Sampler(int) const {
  throw std::logic_error("this gradient oracle's state cannot be saved (no checkpoints)");
}
void GradientOracle::SetSampler(int, const SamplerState&) {
  throw std::logic_error("this gradient oracle's state cannot be restored (no checkpoints)");
}

SamplerState DatasetOracle::Sampler(int i) const {
  const auto& s = samplers_[static_cast<std::size_t>(i)];
  return {s.perm, s.cursor, s.rng.GetState()};
}

void DatasetOracle::SetSampler(int i, const SamplerState& state) {
  auto& s = samplers_[static_cast<std::size_t>(i)];
  const std::size_t m = shards_[static_cast<std::size_t>(i)].size();
  if (state.perm.size() != m)
    throw std::invalid_argument("worker " + std::to_string(i) + "'s sampler walks " +
                                std::to_string(state.perm.size()) + " rows, its shard has " +
                                std::to_string(m));
  std::vector<std::uint8_t> seen(m, 0);
  for (Offset p : state.perm) {
    if (p < 0 || static_cast<std::size_t>(p) >= m || seen[Z(p)])
      throw std::invalid_argument("worker " + std::to_string(i) +
                                  "'s sampler order is not a permutation of its shard");
    seen[Z(p)] = 1;
  }
  if (state.cursor < 0 || static_cast<std::size_t>(state.cursor) > m)
    throw std::invalid_argument("worker " + std::to_string(i) + "'s sampler cursor is outside its shard");
  s.perm = state.perm;
  s.cursor = state.cursor;
  s.rng.SetState(state.rng);
}

namespace {
// Row kernels with the Mem-SGD solver's arithmetic (src/core/engine/step_kernels.hpp): sparse rows in
// index order, dense rows in the fixed 16-lane order of kernels::DotDense / AxpyDense.
inline double RowDot(SparseRow r, const double* x, kernels::Isa) noexcept { return Dot(r, x); }
inline double RowDot(DenseRow r, const double* x, kernels::Isa isa) noexcept {
  return kernels::DotDense(isa, r.val, x, r.d);
}
inline void RowAxpy(double c, SparseRow r, double* y, kernels::Isa) noexcept { Axpy(c, r, y); }
// out += scale * grad R(x), with the Mem-SGD memory's arithmetic (MemoryReg).
inline void AddRegularizer(const Objective& obj, const double* x, double scale, double* out,
                           std::size_t d) noexcept {
  if (obj.lambda == 0) return;
  for (std::size_t j = 0; j < d; ++j) out[j] = MemoryReg(obj, out[j], scale, x[j]);
}
inline void RowAxpy(double c, DenseRow r, double* y, kernels::Isa isa) noexcept {
  kernels::AxpyDense(isa, c, r.val, y, r.d);
}
}  // namespace

void DatasetOracle::AddStochastic(int i, std::span<const double> x, double scale,
                                  std::span<double> out) {
  const double c0 = scale / static_cast<double>(batch_);
  const double* xp = x.data();
  double* op = out.data();
  const kernels::Isa isa = kernels::Options().isa;
  for (int b = 0; b < batch_; ++b) {
    const Offset r = NextRow(i);
    const double y = data_->Label(r);
    data_->VisitRow(r, [&](auto row) {
      const double z = RowDot(row, xp, isa);
      RowAxpy(c0 * LossDerivative(obj_.loss, z, y), row, op, isa);
    });
  }
  AddRegularizer(obj_, xp, scale, op, out.size());
}

void DatasetOracle::AddFull(int i, std::span<const double> x, double scale,
                            std::span<double> out) {
  const auto& shard = shards_[static_cast<std::size_t>(i)];
  const double c0 = scale / static_cast<double>(shard.size());
  const double* xp = x.data();
  double* op = out.data();
  const kernels::Isa isa = kernels::Options().isa;
  for (Offset r : shard) {
    const double y = data_->Label(r);
    data_->VisitRow(r, [&](auto row) {
      const double z = RowDot(row, xp, isa);
      RowAxpy(c0 * LossDerivative(obj_.loss, z, y), row, op, isa);
    });
  }
  AddRegularizer(obj_, xp, scale, op, out.size());
}

// ---- toy oracle -----------------------------------------------------------------------------

QuadraticToyOracle::QuadraticToyOracle(Index d, int workers, double sigma, ToyNoise noise,
                                       std::uint64_t seed)
    : d_(d), sigma_(sigma), noise_(noise) {
  if (d < 1 || workers < 1) throw std::invalid_argument("toy oracle: d and workers must be >= 1");
  if (noise == ToyNoise::kSkewedCorrelated && d != 2)
    throw std::invalid_argument("toy oracle: the skewed correlated noise is defined for d = 2");
  rngs_.resize(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i)
    rngs_[static_cast<std::size_t>(i)].rng.Seed(seed, kToyNoiseStream + static_cast<std::uint64_t>(i));
}

void QuadraticToyOracle::AddStochastic(int i, std::span<const double> x, double scale,
                                       std::span<double> out) {
  Rng& rng = rngs_[static_cast<std::size_t>(i)].rng;
  if (noise_ == ToyNoise::kGaussian) {
    const double s = sigma_ / std::sqrt(static_cast<double>(d_));
    for (std::size_t j = 0; j < out.size(); ++j) out[j] += scale * (x[j] + s * rng.Normal());
  } else {
    // z in {2, -1/2} with probabilities {0.2, 0.8}; direction (1, -0.8)/|(1, -0.8)|.
    const double z = rng.Uniform() < 0.2 ? 2.0 : -0.5;
    const double inv = 1.0 / std::sqrt(1.64);
    out[0] += scale * (x[0] + sigma_ * z * inv);
    out[1] += scale * (x[1] - sigma_ * z * 0.8 * inv);
  }
}

SamplerState QuadraticToyOracle::Sampler(int i) const {
  return {{}, 0, rngs_[static_cast<std::size_t>(i)].rng.GetState()};
}
void QuadraticToyOracle::SetSampler(int i, const SamplerState& state) {
  rngs_[static_cast<std::size_t>(i)].rng.SetState(state.rng);
}

void QuadraticToyOracle::AddFull(int, std::span<const double> x, double scale,
                                 std::span<double> out) {
  for (std::size_t j = 0; j < out.size(); ++j) out[j] += scale * x[j];
}

// ---- lazy (sparse) form ---------------------------------------------------------------------
//
// For a sparse data set, a regulariser with zero gradient (lambda = 0) and a compressor that
// picks its coordinates without looking at the vector (rand-k, ultra-sparse), a round costs
// O(b nnz + k) per worker and O(n k) at the server instead of O(d) per worker:
//   * x (EF21 family): x changes by -gamma_t g every round, g only where a message lands. x is
//     kept as x_store and per coordinate the value Gam_j of Gam = sum_s gamma_s when x_store_j
//     was last brought up to date: x_j = x_store_j - g_j (Gam - Gam_j), brought up to date only
//     before g_j changes (server) and read on the fly by the workers (SAG-style just-in-time
//     updates, ../shared/PERFORMANCE.md section 2.5).
//   * v_i = s ~v_i (a scalar times a vector: the (1-eta) decay is one multiplication), and
//     u_i = A ~u_i + B ~v_i for EF21-SGD2M; both renormalised in O(d) when the scalars drop
//     below 1e-100 (every ~230/eta rounds).
//   * the stochastic gradient is accumulated into a zeroed scratch vector only on the rows'
//     support, and the compressor reads the k coordinates it picked.
// ef14-sgd and sgd-compressed then do exactly the dense form's arithmetic (bit-identical); the
// EF21 family rounds differently in x, v and u (equal to the dense form to ~1e-13 relative).

namespace {
// Top-k in the lazy form: the vector to compress differs from a slowly changing one (e_i, g_i or
// 0) only on the rows' support, which holds for ef14-sgd, ef21-sgd, sgd-compressed and the
// momentum methods without momentum (eta = 1).
bool LazyTopK(Method m, double eta) {
  return m == Method::kEf14 || m == Method::kEf21Sgd || m == Method::kSgdCompressed ||
         ((m == Method::kEf21Sgdm || m == Method::kEf21Sgd2m) && eta >= 1);
}
}  // namespace

bool LazyApplicable(const TrainConfig& c, const Dataset& data) {
  const auto kind = c.compressor.kind;
  const bool picks_blind = c.compressor.PicksBlind();
  const bool top = kind == CompressorKind::kTopK && LazyTopK(c.method, c.eta);
  const bool stochastic = c.method == Method::kEf14 || c.method == Method::kEf21Sgd ||
                          c.method == Method::kEf21Sgdm || c.method == Method::kEf21Sgd2m ||
                          c.method == Method::kSgdCompressed;
  return (picks_blind || top) && stochastic && !data.IsDense() && c.objective.lambda == 0;
}

namespace {

// Max-tournament tree over keys |v_j| with ties to the smaller index (the order of
// TopKSelector and TopKReference): Set in O(log d), the m largest in O(m log d log m).
class MaxTree {
 public:
  void Build(std::span<const double> v) {
    d_ = static_cast<Index>(v.size());
    p_ = 1;
    while (p_ < d_) p_ *= 2;
    key_.assign(v.begin(), v.end());
    for (auto& k : key_) k = std::abs(k);
    node_.assign(2 * static_cast<std::size_t>(p_), -1);
    for (Index j = 0; j < d_; ++j) node_[Z(p_ + j)] = j;
    for (Index i = p_ - 1; i >= 1; --i) node_[Z(i)] = Best(node_[Z(2 * i)], node_[Z(2 * i + 1)]);
  }
  // The key of j becomes |v|.
  void Set(Index j, double v) {
    key_[Z(j)] = std::abs(v);
    for (Index i = (p_ + j) / 2; i >= 1; i /= 2) {
      const Index b = Best(node_[Z(2 * i)], node_[Z(2 * i + 1)]);
      if (node_[Z(i)] == b && b != j) break;  // nothing changes above
      node_[Z(i)] = b;
    }
  }
  // Writes the m best j into out.idx (best-first walk down the tree).
  void Top(Index m, SparseUpdate& out) {
    out.size = 0;
    heap_.clear();
    auto worse = [&](Index a, Index b) { return Best(node_[Z(a)], node_[Z(b)]) == node_[Z(b)]; };
    if (d_ > 0) heap_.push_back(1);
    while (out.size < m && !heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), worse);
      Index i = heap_.back();
      heap_.pop_back();
      // Follow the best child down; queue the other one.
      while (i < p_) {
        const Index l = 2 * i, r = l + 1;
        const Index go = node_[Z(l)] == node_[Z(i)] ? l : r;
        const Index other = go == l ? r : l;
        if (node_[Z(other)] >= 0) {
          heap_.push_back(other);
          std::push_heap(heap_.begin(), heap_.end(), worse);
        }
        i = go;
      }
      out.Push(i - p_, 0.0);
    }
  }

 private:
  Index Best(Index a, Index b) const noexcept {
    if (a < 0) return b;
    if (b < 0) return a;
    const double x = key_[Z(a)], y = key_[Z(b)];
    return x > y || (x == y && a < b) ? a : b;
  }
  Index d_ = 0, p_ = 1;
  std::vector<double> key_;
  std::vector<Index> node_;  // the best leaf of each subtree (-1: empty)
  std::vector<Index> heap_;
};

}  // namespace

namespace {

struct alignas(kCacheLine) LazyWorker : WorkerBase {
  std::vector<double> vt;  // ~v_i: v_i = s ~v_i
  std::vector<double> ut;  // ~u_i: u_i = A ~u_i + B ~v_i
  double s = 1, a = 1, b = 0;
  std::vector<double> acc;  // scratch: the stochastic gradient on its support
  std::vector<std::uint8_t> mark;
  std::vector<Index> support;
  Compressor comp;  // blind operators: their Pick (top-k selects through the tree)
  MaxTree tree;  // top-k: over |e_i| (EF14) or |g_i| (EF21-SGD)
  std::vector<std::pair<double, Index>> keyed;  // top-k candidates (sgd-compressed)
};

class LazyEngine final : public EngineBase<DatasetOracle, LazyWorker> {
 public:
  LazyEngine(const Options& o, DatasetOracle& oracle, const Dataset& data, const Objective& obj,
             std::vector<double> x0)
      : EngineBase("ef::RunLazy", o, oracle, std::move(x0)), data_(data), obj_(obj) {
    const auto kind = o.compressor.kind;
    top_ = kind == CompressorKind::kTopK;
    if (!(o.compressor.PicksBlind() ||
          (top_ && LazyTopK(o.method, o.eta))) ||
        data.IsDense() || obj.lambda != 0 || o.method == Method::kEf21)
      throw std::invalid_argument("ef::RunLazy: needs sparse data, lambda = 0, a stochastic "
                                  "method and rand-k, ultra-sparse or (without momentum) top-k");
    // eta = 1: v = u = the stochastic gradient (no decayed history to keep).
    momentum_ = (o.method == Method::kEf21Sgdm || o.method == Method::kEf21Sgd2m) && o.eta < 1;
    second_ = o.method == Method::kEf21Sgd2m && momentum_;
    const auto d = static_cast<std::size_t>(d_);
    k_ = o.compressor.IntK(d_);
    for (auto& w : workers_) {
      if (!top_) w.comp = Compressor(o.compressor, d_);
      w.msg.Reserve(std::max<Index>(k_, 1));
      w.acc.assign(d, 0.0);
      w.mark.assign(d, 0);
      if (momentum_) w.vt.assign(d, 0.0);
      if (second_) w.ut.assign(d, 0.0);
    }
    if (!top_ && !workers_.empty()) scale_ = workers_.front().comp.ValueScale();
    if (ef21_) gam_at_.assign(d, 0.0);
  }

 private:
  void Start() override {
    if (ef21_) {
      Initialise([](LazyWorker& w) {
        if (!w.vt.empty()) w.vt = w.state;
        if (!w.ut.empty()) w.ut = w.state;
      });
    }
    if (top_ && o_.method != Method::kSgdCompressed)
      for (auto& w : workers_) w.tree.Build(w.state);
  }

  void SaveForm(const LazyWorker& w, WorkerState& out) const override {
    out.v = w.vt;
    out.u = w.ut;
    out.s = w.s;
    out.a = w.a;
    out.b = w.b;
  }
  void RestoreForm(const WorkerState& in, LazyWorker& w) override {
    if (!momentum_) return;  // eta = 1: no history
    for (std::size_t j = 0; j < w.vt.size(); ++j) {
      w.vt[j] = in.v.empty() ? 0.0 : in.v[j];
      if (second_) w.ut[j] = in.u.empty() ? 0.0 : in.u[j];
    }
    w.s = in.s;
    w.a = in.a;
    w.b = in.b;
  }
  double StepSum() const override { return gam_; }
  // x was saved brought up to date at the step sum Gam: every Gam_j = Gam.
  void Restored(const RunState& st) override {
    gam_ = st.gam;
    if (ef21_) gam_at_.assign(gam_at_.size(), gam_);
    if (top_ && o_.method != Method::kSgdCompressed)
      for (auto& w : workers_) w.tree.Build(w.state);
  }

  // Top-k of p, where p_j = value(j) on w.support (marked in w.mark) and p_j = +-base_j
  // elsewhere (base = w.state, whose |.| the tree holds; sgd-compressed: base = 0, no tree).
  // Writes the indices into w.msg (values left to the caller): TopKSelector's set on the dense p.
  template <class F>
  void TopK(LazyWorker& w, F&& value) {
    if (o_.method == Method::kSgdCompressed) {
      // Candidates: the support and the k smallest indices outside it (the best zeros).
      w.keyed.clear();
      for (Index j : w.support) w.keyed.emplace_back(std::abs(value(j)), j);
      Index zeros = 0;
      for (Index j = 0; j < d_ && zeros < k_; ++j)
        if (!w.mark[Z(j)]) {
          w.keyed.emplace_back(0.0, j);
          ++zeros;
        }
      const auto k = std::min<std::size_t>(static_cast<std::size_t>(k_), w.keyed.size());
      std::nth_element(w.keyed.begin(), w.keyed.begin() + static_cast<std::ptrdiff_t>(k),
                       w.keyed.end(), [](const auto& a, const auto& b) {
                         return a.first > b.first || (a.first == b.first && a.second < b.second);
                       });
      w.msg.size = 0;
      for (std::size_t c = 0; c < k; ++c) w.msg.Push(w.keyed[c].second, 0.0);
      return;
    }
    if (o_.method == Method::kEf14) {  // the tree already holds |e_i| with the new gradient
      w.tree.Top(k_, w.msg);
      return;
    }
    // EF21-SGD: put p on the support into the tree, select, put g_i back.
    for (Index j : w.support) w.tree.Set(j, value(j));
    w.tree.Top(k_, w.msg);
    for (Index j : w.support) w.tree.Set(j, w.state[Z(j)]);
  }

  // x_j now (EF21 family: the pending steps applied on the fly).
  double X(Index j) const noexcept {
    const auto jj = Z(j);
    return ef21_ ? x_[jj] - g_[jj] * (gam_ - gam_at_[jj]) : x_[jj];
  }
  void Bring(std::size_t j) noexcept {
    x_[j] -= g_[j] * (gam_ - gam_at_[j]);
    gam_at_[j] = gam_;
  }
  void Materialise() override {
    if (!ef21_) return;
    for (std::size_t j = 0; j < x_.size(); ++j) Bring(j);
  }

  // target += (scale/b) sum_rows phi'(a.x) a over one minibatch, in the dense oracle's order
  // (row by row into the target); w.support lists the coordinates touched.
  void Gradient(int i, LazyWorker& w, double scale, std::vector<double>& target) {
    const double c0 = scale / static_cast<double>(oracle_.StochasticSamples(i));
    for (Offset bb = 0; bb < oracle_.StochasticSamples(i); ++bb) {
      const Offset r = oracle_.NextRow(i);
      const SparseRow row = data_.Sparse(r);
      const double z = DotSparse(row, [this](Index j) { return X(j); });
      const double c = c0 * LossDerivative(obj_.loss, z, data_.Label(r));
      for (Index q = 0; q < row.nnz; ++q) {
        const auto j = Z(row.idx[q]);
        target[j] += c * static_cast<double>(row.val[q]);
        if (!w.mark[j]) {
          w.mark[j] = 1;
          w.support.push_back(row.idx[q]);
        }
      }
    }
    w.samples += oracle_.StochasticSamples(i);
  }
  void ClearGradient(LazyWorker& w, bool clear_acc) {
    for (Index j : w.support) {
      if (clear_acc) w.acc[Z(j)] = 0;
      w.mark[Z(j)] = 0;
    }
    w.support.clear();
  }

  // The compressor's coordinates: top-k of the vector whose entry j is value(j) on the support
  // and the worker's base vector elsewhere, or drawn as Compressor::Compress draws them.
  template <class F>
  void Select(LazyWorker& w, F&& value) {
    if (top_) {
      TopK(w, value);
    } else {
      Pick(w);
    }
  }
  void Pick(LazyWorker& w) { w.comp.Pick(w.rng, w.msg); }

  void Renormalise(LazyWorker& w) {
    for (std::size_t j = 0; j < w.vt.size(); ++j) {
      const double v = w.s * w.vt[j];
      if (second_) w.ut[j] = w.a * w.ut[j] + w.b * w.vt[j];
      w.vt[j] = v;
    }
    w.s = 1;
    w.a = 1;
    w.b = 0;
  }

  void WorkerStep(int i, double gamma) {
    auto& w = workers_[static_cast<std::size_t>(i)];
    const double keep = 1.0 - o_.eta, eta = o_.eta;
    switch (o_.method) {
      case Method::kEf14: {
        // e += gamma grad (on the rows' support), D = C(e) on the picked coordinates, e -= D.
        Gradient(i, w, gamma, w.state);
        if (top_)
          for (Index j : w.support) w.tree.Set(j, w.state[Z(j)]);
        Select(w, [&](Index j) { return w.state[Z(j)]; });
        ClearGradient(w, false);
        for (Index s = 0; s < w.msg.size; ++s) {
          const auto j = Z(w.msg.idx[Z(s)]);
          const double val = OnWire(o_.wire, scale_ * w.state[j]);
          w.msg.val[Z(s)] = val;
          w.state[j] -= val;
          if (top_) w.tree.Set(static_cast<Index>(j), w.state[j]);
        }
        break;
      }
      case Method::kSgdCompressed: {
        Gradient(i, w, 1.0, w.acc);
        Select(w, [&](Index j) { return w.acc[Z(j)]; });
        for (Index s = 0; s < w.msg.size; ++s)
          w.msg.val[Z(s)] = OnWire(o_.wire, scale_ * w.acc[Z(w.msg.idx[Z(s)])]);
        ClearGradient(w, true);
        break;
      }
      default: {  // EF21-SGD / -SGDM / -SGD2M
        Gradient(i, w, 1.0, w.acc);
        if (momentum_) {
          const double s1 = keep * w.s;
          if (second_) {
            const double a1 = keep * w.a, b1 = keep * w.b + eta * s1;
            const double fix = keep * w.b / a1;
            for (Index j : w.support) {
              const double dv = eta * w.acc[Z(j)] / s1;
              w.vt[Z(j)] += dv;
              w.ut[Z(j)] -= fix * dv;
            }
            w.a = a1;
            w.b = b1;
          } else {
            for (Index j : w.support) w.vt[Z(j)] += eta * w.acc[Z(j)] / s1;
          }
          w.s = s1;
        }
        Select(w, [&](Index j) { return w.acc[Z(j)] - w.state[Z(j)]; });  // top-k: no momentum
        for (Index s = 0; s < w.msg.size; ++s) {
          const auto j = Z(w.msg.idx[Z(s)]);
          double target;
          if (!momentum_) target = w.acc[j];
          else if (second_) target = w.a * w.ut[j] + w.b * w.vt[j];
          else target = w.s * w.vt[j];
          const double val = OnWire(o_.wire, scale_ * (target - w.state[j]));
          w.msg.val[Z(s)] = val;
          w.state[j] += val;
          if (top_) w.tree.Set(static_cast<Index>(j), w.state[j]);
        }
        ClearGradient(w, true);
        if (momentum_ && (w.s < 1e-100 || w.a < 1e-100)) Renormalise(w);
        break;
      }
    }
    w.Count(MessageBits(o_.compressor, d_, w.msg.size, vbits_));
  }

  void Round(Offset t) override {
    const double gamma = o_.schedule(t);
    if (ef21_) gam_ += gamma;  // x^{t+1} = x^t - gamma g^t, applied lazily
    ForWorkers([&](int i) { WorkerStep(i, gamma); });
    Serve(gamma, [this](std::size_t j) { Bring(j); });
  }

  const Dataset& data_;
  const Objective& obj_;
  Index k_ = 1;
  double scale_ = 1;
  bool momentum_ = false, second_ = false, top_ = false;
  std::vector<double> gam_at_;  // Gam_j: Gam when x_j was last brought up to date
  double gam_ = 0;              // Gam = sum of the steps so far
};

}  // namespace

RunResult RunLazy(const Options& options, DatasetOracle& oracle, const Dataset& data,
                  const Objective& objective, std::vector<double> x0, const Observer& observer) {
  LazyEngine engine(options, oracle, data, objective, std::move(x0));
  return engine.Run(observer);
}

// ---- data-set entry point -------------------------------------------------------------------

namespace {

// Runs f on every process; if it throws on any, it throws on all (a process whose f succeeded
// stops with a CheckpointError of scope kElsewhere), so that no process is left waiting in a
// collective call.
template <class F>
void Together(Transport& tr, const std::string& file, F&& f) {
  std::exception_ptr err;
  try {
    f();
  } catch (...) {
    err = std::current_exception();
  }
  if (!tr.Any(err != nullptr)) return;
  if (err) std::rethrow_exception(err);
  throw CheckpointError(CheckpointError::Kind::kCorrupt,
                        "checkpoint '" + file + "' could not be resumed on another process",
                        CheckpointError::Scope::kElsewhere);
}

// The checks of a checkpoint to resume, before any work: the same worker count, d, options and
// (for this process's workers) rows and shard sizes.
void CheckResume(const RunState& st, const std::string& f, const TrainConfig& config,
                 const Options& o, std::uint64_t fingerprint, DatasetOracle& oracle, int workers,
                 int first, bool distributed, std::span<const std::uint64_t> shard_hashes) {
  using Kind = CheckpointError::Kind;
  using Scope = CheckpointError::Scope;
  const auto have = static_cast<int>(st.workers.size());
  if (have != workers) {
    throw CheckpointError(
        Kind::kMismatch,
        "checkpoint '" + f + "' was written by a run with " + std::to_string(have) +
            " workers; this run has " + std::to_string(workers) +
            (distributed ? " (one per MPI rank): resume it with mpirun -np " + std::to_string(have)
                         : ": resume it with --workers " + std::to_string(have) +
                               " (or over " + std::to_string(have) + " MPI ranks)"));
  }
  const Index d = oracle.Dim();
  if (st.d != d)
    throw CheckpointError(Kind::kMismatch, "checkpoint '" + f + "' was written for other training "
                          "data (checkpoint: d=" + std::to_string(st.d) + "; now: d=" +
                          std::to_string(d) + ")");
  if (st.config_hash != fingerprint || st.rounds != o.rounds)
    throw CheckpointError(
        Kind::kMismatch,
        "checkpoint '" + f + "' was written by a run with other options; resume with the same "
        "--method, --compressor, --k, --objective, --lambda, --step, --gamma, --shift, --eta, "
        "--ef-init, --batch, --workers, --split, --sampling, --epochs, --eval-every, --seed, "
        "--init-std and --wire (--threads may differ)");
  auto corrupt = [&](const std::string& why, Scope scope = Scope::kEveryProcess) {
    return CheckpointError(Kind::kCorrupt, "checkpoint '" + f + "' is inconsistent: " + why, scope);
  };
  const auto dd = static_cast<std::size_t>(d);
  if (IsEf21Family(config.method) != (st.g.size() == dd)) throw corrupt("g");
  for (const auto& w : st.workers)
    if ((config.method == Method::kSgdCompressed) != w.state.empty()) throw corrupt("a worker's state");
  for (int l = 0; l < oracle.Workers(); ++l) {
    const auto& w = st.workers[Z(first + l)];
    if (w.shard_hash != shard_hashes[Z(l)])
      throw CheckpointError(Kind::kMismatch,
                            "checkpoint '" + f + "' was written for other training data: worker " +
                                std::to_string(first + l) + "'s rows differ (another file, "
                                "--normalize, --positive-label or --split?)",
                            Scope::kThisProcess);
    try {
      oracle.SetSampler(l, w.sampler);  // checked here; the engine sets it again
    } catch (const std::invalid_argument& e) {
      throw corrupt(e.what(), Scope::kThisProcess);
    }
  }
}

}  // namespace

TrainDetails TrainErrorFeedbackDetailed(const TrainConfig& config, const Dataset& data,
                                        const TraceCallback& on_point, InitKind init,
                                        bool allow_lazy, const Distributed* dist) {
  if (dist) {
    TrainConfig local = config;  // the checks that involve rows, on this process's rows
    local.workers = dist->transport->Local();
    ValidateConfig(local, data);
  } else {
    ValidateConfig(config, data);
  }
  if (!IsErrorFeedbackFamily(config.method))
    throw std::invalid_argument("TrainErrorFeedback: not an error-feedback method");
  // n: the whole data set's rows (the local ones are data.NumRows() in a distributed run).
  const Offset n = dist ? dist->total_rows : data.NumRows();
  const int workers = dist ? dist->transport->Workers() : config.workers;
  TrainDetails out;

  std::vector<std::vector<Offset>> shards;
  int first = 0;
  if (dist) {
    // This process's rows are its workers' shards already (memsgd-mpi reads only its shard).
    const int local = dist->transport->Local();
    first = dist->transport->First();
    shards = SplitRows(data, local, SplitKind::kContiguous, config.seed);
  } else {
    shards = SplitRows(data, workers, config.split, config.seed);
  }
  DatasetOracle oracle(data, config.objective, std::move(shards), config.batch,
                       config.with_replacement, config.seed, first, n);
  InProcessTransport in_process(workers);
  Transport& tr = dist ? *dist->transport : in_process;

  Options o;
  o.method = config.method;
  o.compressor = config.compressor;
  o.schedule = ResolveSchedule(config, data);
  o.schedule.n = static_cast<double>(n);
  o.eta = config.eta;
  o.init = init;
  o.threads = config.threads;
  o.seed = config.seed;
  o.stop = config.stop;
  o.wire = config.wire;
  o.transport = &tr;
  // An epoch: every worker passes once over its shard. ef21 does that every round.
  const Offset per_round = config.method == Method::kEf21
                               ? n
                               : static_cast<Offset>(workers) * config.batch;
  const Offset rpe =
      config.method == Method::kEf21 ? 1 : std::max<Offset>(1, (n + per_round - 1) / per_round);
  o.rounds_per_epoch = rpe > 1 ? rpe : 0;  // ef21: no forced checkpoint every round
  o.rounds = std::max<Offset>(1, static_cast<Offset>(std::llround(config.epochs * rpe)));
  o.eval_every = config.eval_every > 0
                     ? std::max<Offset>(1, (config.eval_every + per_round - 1) / per_round)
                     : std::max<Offset>(1, (rpe + 9) / 10);
  out.rounds_per_epoch = rpe;

  std::vector<double> x0(static_cast<std::size_t>(data.NumFeatures()), 0.0);
  if (config.init_std > 0) {
    Rng rng(config.seed, kInitStream);
    for (auto& v : x0) v = config.init_std * rng.Normal();
  }

  TrainResult& res = out.result;

  // Checkpoints (include/memsgd/ef_checkpoint.hpp).
  const bool saving = !config.checkpoint_path.empty();
  std::vector<std::uint64_t> shard_hashes;
  std::uint64_t fingerprint = 0;
  if (saving || !config.resume_path.empty()) {
    fingerprint = RunFingerprint(config, o);
    for (const auto& shard : oracle.Shards()) shard_hashes.push_back(ShardFingerprint(data, shard));
  }
  RunState resumed;
  if (!config.resume_path.empty()) {
    Together(tr, config.resume_path, [&] {
      try {
        resumed = ReadRunState(config.resume_path);
      } catch (const CheckpointError& e) {
        throw CheckpointError(e.GetKind(), e.what(), CheckpointError::Scope::kThisProcess);
      }
      CheckResume(resumed, config.resume_path, config, o, fingerprint, oracle, workers, first,
                  dist != nullptr, shard_hashes);
    });
    o.resume = &resumed;
    res.trace = resumed.trace;
    res.resumed_from = 0;
    for (const auto& w : resumed.workers) res.resumed_from += w.samples;
  }
  const Offset save_every = config.checkpoint_every > 0 ? config.checkpoint_every : n;
  Offset last_saved = std::max<Offset>(0, res.resumed_from);
  // A collective call (every process decides alike: the same rounds, samples and evaluations).
  auto save = [&](const Checkpoint& cp) {
    RunState st = cp.capture();
    for (std::size_t l = 0; l < st.workers.size(); ++l) st.workers[l].shard_hash = shard_hashes[l];
    if (!tr.InProcess()) {
      std::vector<std::string> parts = tr.Gather(SerializeWorkers(st.workers));
      if (tr.First() != 0) return;  // the process of worker 0 writes
      st.workers.clear();
      for (const auto& part : parts) {
        auto ws = ParseWorkers(part, config.checkpoint_path);
        for (auto& w : ws) st.workers.push_back(std::move(w));
      }
    }
    st.config_hash = fingerprint;
    st.trace = res.trace;
    try {
      WriteRunState(config.checkpoint_path, st);
      ++res.checkpoints_written;
    } catch (const std::exception& e) {
      res.warnings.push_back(std::string("checkpoint not saved: ") + e.what());
    }
  };

  // The trace point of a checkpoint (an interrupt at a round already evaluated adds none; one
  // is evaluated even without --trace: the result line reports it).
  auto observe = [&](const Checkpoint& cp) {
    if (!config.evaluate && cp.round != o.rounds && !cp.interrupted) return true;
    if (cp.interrupted && !res.trace.empty() && res.trace.back().samples == cp.samples) return true;
    TracePoint p;
    p.samples = cp.samples;
    p.epoch = static_cast<double>(cp.round) / static_cast<double>(rpe);
    p.seconds = cp.seconds;
    const Evaluation ev = dist ? dist->evaluate(cp.x) : Evaluate(config.objective, data, cp.x);
    p.loss = ev.loss;
    p.grad_norm2 = ev.grad_norm2;
    p.train_accuracy = ev.accuracy;
    if (config.fstar) p.suboptimality = ev.loss - *config.fstar;
    if (config.test) p.test_accuracy = Accuracy(*config.test, cp.x);
    p.bits = cp.comm.uplink_indexed;
    res.trace.push_back(p);
    if (on_point) on_point(p);
    bool finite = std::isfinite(ev.loss) && std::isfinite(ev.grad_norm2);
    for (double v : cp.x) finite = finite && std::isfinite(v);
    if (!finite) {
      res.status = TrainStatus::kDiverged;
      res.message = "the loss or the iterate became NaN or infinite after " +
                    std::to_string(cp.round) + " rounds (" + std::to_string(cp.samples) +
                    " samples): the step size is too large; try a smaller --gamma";
      return false;
    }
    if (config.target_loss && ev.loss <= *config.target_loss && cp.round > 0) {
      res.status = TrainStatus::kReachedTarget;
      return false;
    }
    return true;
  };

  // At an interrupt the state is saved before the trace point of the stop is added (the resumed
  // run's trace is then the uninterrupted run's); elsewhere after the checkpoint's point.
  auto observer = [&](const Checkpoint& cp) {
    if (cp.interrupted && saving && res.status == TrainStatus::kOk && cp.round < o.rounds) save(cp);
    const bool go = observe(cp);
    if (!cp.interrupted && saving && res.status == TrainStatus::kOk && cp.round < o.rounds &&
        cp.samples - last_saved >= save_every) {
      save(cp);
      last_saved = cp.samples;
    }
    return go;
  };

  const bool lazy = allow_lazy && LazyApplicable(config, data);
  const RunResult run = lazy ? RunLazy(o, oracle, data, config.objective, std::move(x0), observer)
                             : Run(o, oracle, std::move(x0), observer);
  out.lazy = lazy;
  if (run.interrupted && res.status == TrainStatus::kOk) {
    res.status = TrainStatus::kInterrupted;
    res.message = "interrupted";
  }
  res.x = run.x;
  res.x_last = run.x;
  res.samples = run.samples;
  res.train_seconds = run.seconds;
  out.comm = run.comm;
  return out;
}

}  // namespace ef

TrainResult TrainErrorFeedback(const TrainConfig& config, const Dataset& data,
                               const TraceCallback& on_point) {
  auto details = ef::TrainErrorFeedbackDetailed(
      config, data, on_point, config.ef_full_init ? ef::InitKind::kFull : ef::InitKind::kStochastic);
  TrainResult res = std::move(details.result);
  res.uplink_bits_values = details.comm.uplink_values;
  res.uplink_bits_indexed = details.comm.uplink_indexed;
  res.downlink_bits_dense = details.comm.downlink_dense;
  res.downlink_bits_sparse = details.comm.downlink_sparse;
  return res;
}

}  // namespace memsgd
