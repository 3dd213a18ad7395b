// Checkpoint files of the error-feedback methods (include/memsgd/ef_checkpoint.hpp).
#include "memsgd/ef_checkpoint.hpp"

#include <cmath>
#include <limits>

#include "memsgd/atomic_file.hpp"
#include "binary.hpp"

namespace memsgd::ef {

namespace {

constexpr std::uint32_t kVersion = 1;

void PutWorker(io::Out& o, const WorkerState& w) {
  o.Vec(w.state);
  o.Vec(w.v);
  o.Vec(w.u);
  o.Put<double>(w.s);
  o.Put<double>(w.a);
  o.Put<double>(w.b);
  o.PutRng(w.rng);
  o.Put<double>(w.values_bits);
  o.Put<double>(w.indexed_bits);
  o.Put<std::int64_t>(w.samples);
  o.Vec(w.sampler.perm);
  o.Put<std::int64_t>(w.sampler.cursor);
  o.PutRng(w.sampler.rng);
  o.Put<std::uint64_t>(w.shard_hash);
}

// The smallest a worker can be in the file (three empty vectors, the scalars, two streams...).
constexpr std::size_t kMinWorkerBytes = 3 * 8 + 3 * 8 + 41 + 2 * 8 + 8 + 8 + 8 + 41 + 8;

WorkerState GetWorker(io::In& in) {
  WorkerState w;
  w.state = in.Vec<double>("worker state");
  w.v = in.Vec<double>("momentum v");
  w.u = in.Vec<double>("momentum u");
  w.s = in.Get<double>();
  w.a = in.Get<double>();
  w.b = in.Get<double>();
  if (!std::isfinite(w.s) || !std::isfinite(w.a) || !std::isfinite(w.b) || !(w.s > 0) || !(w.a > 0))
    in.Bad("bad momentum scalars");
  w.rng = in.GetRng();
  w.values_bits = in.Get<double>();
  w.indexed_bits = in.Get<double>();
  if (!(w.values_bits >= 0) || !(w.indexed_bits >= 0)) in.Bad("bad bit counts");
  w.samples = in.Get<std::int64_t>();
  if (w.samples < 0) in.Bad("bad sample count");
  w.sampler.perm = in.Vec<Offset>("sampler permutation");
  w.sampler.cursor = in.Get<std::int64_t>();
  if (w.sampler.cursor < 0 || w.sampler.cursor > static_cast<Offset>(w.sampler.perm.size()))
    in.Bad("sampler cursor outside its permutation");
  w.sampler.rng = in.GetRng();
  w.shard_hash = in.Get<std::uint64_t>();
  return w;
}

void PutWorkers(io::Out& o, std::span<const WorkerState> workers) {
  o.Put<std::uint64_t>(workers.size());
  for (const auto& w : workers) PutWorker(o, w);
}

std::vector<WorkerState> GetWorkers(io::In& in) {
  std::vector<WorkerState> out(static_cast<std::size_t>(in.Count(kMinWorkerBytes, "worker list")));
  for (auto& w : out) w = GetWorker(in);
  return out;
}

}  // namespace

std::uint64_t RunFingerprint(const TrainConfig& c, const Options& o) {
  io::Hasher h;
  h.Word(1);  // fingerprint version
  h.Word(static_cast<std::uint64_t>(o.method));
  h.Word(static_cast<std::uint64_t>(o.compressor.kind));
  h.Double(o.compressor.k);
  h.Word(o.compressor.scaled);
  h.Word(static_cast<std::uint64_t>(o.compressor.qsgd_bits));
  h.Word(static_cast<std::uint64_t>(c.objective.loss));
  h.Word(static_cast<std::uint64_t>(c.objective.reg));
  h.Double(c.objective.lambda);
  h.Word(static_cast<std::uint64_t>(o.schedule.kind));
  h.Double(o.schedule.gamma);
  h.Double(o.schedule.lambda);
  h.Double(o.schedule.shift);
  h.Double(o.schedule.n);
  h.Double(o.eta);
  h.Word(static_cast<std::uint64_t>(o.init));
  h.Word(static_cast<std::uint64_t>(o.rounds));
  h.Word(static_cast<std::uint64_t>(o.eval_every));
  h.Word(static_cast<std::uint64_t>(o.rounds_per_epoch));
  h.Word(o.seed);
  h.Word(static_cast<std::uint64_t>(o.wire));
  h.Word(static_cast<std::uint64_t>(c.workers));
  h.Word(static_cast<std::uint64_t>(c.split));
  h.Word(static_cast<std::uint64_t>(c.batch));
  h.Word(c.with_replacement);
  h.Double(c.init_std);
  return h.Value();
}

std::uint64_t ShardFingerprint(const Dataset& data, std::span<const Offset> rows) {
  // The nonzeros (j, value) of each row, whatever the storage (a rank may store its rows dense
  // where the whole file is stored sparse).
  io::Hasher h;
  h.Word(static_cast<std::uint64_t>(data.NumFeatures()));
  h.Word(rows.size());
  for (Offset r : rows) {
    h.Double(data.Label(r));
    data.VisitRow(r, [&](auto row) {
      if constexpr (std::is_same_v<decltype(row), SparseRow>) {
        for (Index q = 0; q < row.nnz; ++q) {
          if (row.val[q] == 0) continue;
          h.Word(static_cast<std::uint64_t>(row.idx[q]));
          h.Double(row.val[q]);
        }
      } else {
        for (Index j = 0; j < row.d; ++j) {
          if (row.val[j] == 0) continue;
          h.Word(static_cast<std::uint64_t>(j));
          h.Double(row.val[j]);
        }
      }
    });
    h.Word(~std::uint64_t{0});  // row end
  }
  return h.Value();
}

std::string SerializeWorkers(std::span<const WorkerState> workers) {
  io::Out o;
  PutWorkers(o, workers);
  return std::move(o.Str());
}

std::vector<WorkerState> ParseWorkers(std::string_view bytes, const std::string& shown) {
  io::In in(bytes.data(), bytes.size(), shown);
  auto out = GetWorkers(in);
  if (!in.AtEnd()) in.Bad("trailing bytes after the workers");
  return out;
}

std::string SerializeRunState(const RunState& st) {
  io::Out o;
  o.Put<std::uint64_t>(st.config_hash);
  o.Put<std::int64_t>(st.d);
  o.Put<std::int64_t>(st.rounds);
  o.Put<std::int64_t>(st.round);
  o.Put<double>(st.seconds);
  o.Put<double>(st.gam);
  o.Vec(st.x);
  o.Vec(st.g);
  o.Put<double>(st.downlink_dense);
  o.Put<double>(st.downlink_sparse);
  PutWorkers(o, st.workers);
  o.PutTrace(st.trace);
  return io::Frame(io::kErrorFeedbackMagic, kVersion, o.Str());
}

RunState ParseRunState(const std::string& bytes, const std::string& shown) {
  const std::string_view payload = io::Unframe(bytes, shown, io::kErrorFeedbackMagic, kVersion);
  io::In in(payload.data(), payload.size(), shown);
  RunState st;
  st.config_hash = in.Get<std::uint64_t>();
  const auto d = in.Get<std::int64_t>();
  st.rounds = in.Get<std::int64_t>();
  st.round = in.Get<std::int64_t>();
  if (d < 1 || d > std::numeric_limits<Index>::max() || st.rounds < 1 || st.round < 0 ||
      st.round > st.rounds)
    in.Bad("inconsistent shape or round counters");
  st.d = static_cast<Index>(d);
  st.seconds = in.Get<double>();
  st.gam = in.Get<double>();
  if (!(st.seconds >= 0) || !std::isfinite(st.gam)) in.Bad("bad time or step sum");
  st.x = in.Vec<double>("x");
  st.g = in.Vec<double>("g");
  const auto dd = static_cast<std::size_t>(st.d);
  if (st.x.size() != dd || (!st.g.empty() && st.g.size() != dd)) in.Bad("x or g is not d long");
  st.downlink_dense = in.Get<double>();
  st.downlink_sparse = in.Get<double>();
  st.workers = GetWorkers(in);
  if (st.workers.empty()) in.Bad("no workers");
  for (const auto& w : st.workers) {
    if ((!w.state.empty() && w.state.size() != dd) || (!w.v.empty() && w.v.size() != dd) ||
        (!w.u.empty() && w.u.size() != dd))
      in.Bad("a worker's vector is not d long");
  }
  st.trace = in.GetTrace();
  if (!in.AtEnd()) in.Bad("trailing bytes");
  return st;
}

void WriteRunState(const std::string& path, const RunState& state) {
  WriteFileAtomically(path, SerializeRunState(state));
}

RunState ReadRunState(const std::string& path) {
  return ParseRunState(io::ReadWholeFile(path), path);
}

}  // namespace memsgd::ef
