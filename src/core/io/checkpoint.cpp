// Checkpoint files (see include/memsgd/checkpoint.hpp for what is saved and why).
#include "memsgd/checkpoint.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>

#include "memsgd/atomic_file.hpp"
#include "binary.hpp"

namespace memsgd {

using io::Hasher;
using io::In;
using io::Out;

namespace {
constexpr std::uint32_t kVersion = 3;
}  // namespace

std::uint64_t ConfigFingerprint(const TrainConfig& c, const Dataset& data) {
  const StepSchedule s = ResolveSchedule(c, data);
  const Offset n = data.NumRows();
  const Offset eval_every = c.eval_every > 0 ? c.eval_every : std::max<Offset>(1, (n + 9) / 10);
  Hasher h;
  h.Word(2);  // fingerprint version (2: --reg)
  h.Word(static_cast<std::uint64_t>(c.method));
  h.Word(static_cast<std::uint64_t>(c.compressor.kind));
  h.Double(c.compressor.k);
  h.Word(c.compressor.scaled);
  h.Word(static_cast<std::uint64_t>(c.compressor.qsgd_bits));
  h.Word(c.memory);
  h.Word(static_cast<std::uint64_t>(c.objective.loss));
  h.Word(static_cast<std::uint64_t>(c.objective.reg));
  h.Double(c.objective.lambda);
  h.Word(static_cast<std::uint64_t>(s.kind));
  h.Double(s.gamma);
  h.Double(s.lambda);
  h.Double(s.shift);
  h.Double(s.n);
  h.Word(static_cast<std::uint64_t>(c.averaging));
  h.Word(c.with_replacement);
  h.Double(c.epochs);
  h.Word(static_cast<std::uint64_t>(c.threads));
  h.Word(static_cast<std::uint64_t>(c.write));
  h.Word(static_cast<std::uint64_t>(c.flush_every));
  h.Word(static_cast<std::uint64_t>(eval_every));
  h.Word(c.seed);
  h.Double(c.init_std);
  h.Word(static_cast<std::uint64_t>(c.reg));
  return h.Value();
}

std::uint64_t DataFingerprint(const Dataset& data) {
  Hasher h;
  h.Word(static_cast<std::uint64_t>(data.NumRows()));
  h.Word(static_cast<std::uint64_t>(data.NumFeatures()));
  h.Word(static_cast<std::uint64_t>(data.NumNonZeros()));
  h.Word(data.IsDense());
  h.Span(data.Labels());
  h.Span(data.RowPtr());
  h.Span(data.ColIdx());
  h.Span(data.Values());
  return h.Value();
}

std::string SerializeCheckpoint(const CheckpointState& st) {
  Out o;
  o.Put(st.config_hash);
  o.Put(st.data_hash);
  o.Put<std::int64_t>(st.n);
  o.Put<std::int32_t>(st.d);
  o.Put<std::int32_t>(st.threads);
  o.Put<std::int64_t>(st.total);
  o.Put<std::int64_t>(st.samples);
  o.Put<std::int64_t>(st.segment_begin);
  o.Put<double>(st.train_seconds);
  o.Vec(st.x);
  o.Vec(st.avg);
  o.Put<double>(st.avg_weight);
  o.Put<double>(st.avg_a);
  o.Put<double>(st.avg_b);
  o.Put<std::uint8_t>(st.has_perm ? 1 : 0);
  if (st.has_perm) {
    // 4-byte entries whenever n allows (half the size for the common case).
    const bool narrow = st.n <= static_cast<Offset>(std::numeric_limits<std::uint32_t>::max());
    o.Put<std::uint8_t>(narrow ? 4 : 8);
    if (narrow) {
      std::vector<std::uint32_t> p(st.perm.size());
      for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint32_t>(st.perm[i]);
      o.Vec(p);
    } else {
      o.Vec(st.perm);
    }
  }
  o.PutRng(st.shuffle_rng);
  o.Put<std::uint64_t>(st.workers.size());
  for (const auto& w : st.workers) {
    o.Vec(w.m);
    o.PutRng(w.rng);
    o.Put<double>(w.bits);
    o.Put<double>(w.scale);
    o.Put<double>(w.shift);
    o.Put<std::int64_t>(w.steps);
    o.Put<std::int64_t>(w.segment_steps);
  }
  o.PutTrace(st.trace);
  return io::Frame(io::kMemSgdMagic, kVersion, o.Str());
}

CheckpointState ParseCheckpoint(const std::string& bytes, const std::string& shown) {
  const std::string_view payload = io::Unframe(bytes, shown, io::kMemSgdMagic, kVersion);
  In in(payload.data(), payload.size(), shown);
  CheckpointState st;
  st.config_hash = in.Get<std::uint64_t>();
  st.data_hash = in.Get<std::uint64_t>();
  st.n = in.Get<std::int64_t>();
  st.d = in.Get<std::int32_t>();
  st.threads = in.Get<std::int32_t>();
  st.total = in.Get<std::int64_t>();
  st.samples = in.Get<std::int64_t>();
  st.segment_begin = in.Get<std::int64_t>();
  st.train_seconds = in.Get<double>();
  if (st.n < 1 || st.d < 1 || st.threads < 0 || st.total < 1 || st.samples < 0 ||
      st.samples > st.total || st.segment_begin < 0 || st.segment_begin > st.samples) {
    in.Bad("inconsistent shape or counters");
  }
  st.x = in.Vec<double>("x");
  st.avg = in.Vec<double>("averaged x");
  if (st.x.size() != static_cast<std::size_t>(st.d) || st.avg.size() != st.x.size()) {
    in.Bad("iterate length differs from d = " + std::to_string(st.d));
  }
  st.avg_weight = in.Get<double>();
  st.avg_a = in.Get<double>();
  st.avg_b = in.Get<double>();
  if (!(st.avg_a > 0) || !std::isfinite(st.avg_a) || !std::isfinite(st.avg_b))
    in.Bad("bad averaging scalars");
  const auto has_perm = in.Get<std::uint8_t>();
  if (has_perm > 1) in.Bad("bad permutation flag");
  st.has_perm = has_perm == 1;
  if (st.has_perm) {
    const auto width = in.Get<std::uint8_t>();
    if (width == 4) {
      const auto p = in.Vec<std::uint32_t>("permutation");
      st.perm.assign(p.begin(), p.end());
    } else if (width == 8) {
      st.perm = in.Vec<Offset>("permutation");
    } else {
      in.Bad("bad permutation width");
    }
    if (st.perm.size() != static_cast<std::size_t>(st.n)) in.Bad("permutation length differs from n");
    std::vector<bool> seen(st.perm.size(), false);
    for (Offset v : st.perm) {
      if (v < 0 || v >= st.n || seen[static_cast<std::size_t>(v)]) in.Bad("not a permutation");
      seen[static_cast<std::size_t>(v)] = true;
    }
  }
  st.shuffle_rng = in.GetRng();
  const std::uint64_t nw = in.Count(8 + 41 + 40, "worker list");
  if (nw != static_cast<std::uint64_t>(std::max(1, st.threads))) in.Bad("worker count differs from threads");
  Offset steps = 0, seg = 0;
  for (std::uint64_t w = 0; w < nw; ++w) {
    CheckpointWorker wk;
    wk.m = in.Vec<double>("memory");
    if (wk.m.size() != static_cast<std::size_t>(st.d)) in.Bad("memory length differs from d");
    wk.rng = in.GetRng();
    wk.bits = in.Get<double>();
    wk.scale = in.Get<double>();
    if (!(wk.scale > 0) || !std::isfinite(wk.scale)) in.Bad("bad iterate scale");
    wk.shift = in.Get<double>();
    if (!(wk.shift >= 0) || !std::isfinite(wk.shift)) in.Bad("bad memory shift");
    wk.steps = in.Get<std::int64_t>();
    wk.segment_steps = in.Get<std::int64_t>();
    if (wk.steps < 0 || wk.segment_steps < 0 || wk.segment_steps > wk.steps) in.Bad("bad step counts");
    steps += wk.steps;
    seg += wk.segment_steps;
    st.workers.push_back(std::move(wk));
  }
  if (steps != st.samples || seg != st.samples - st.segment_begin) in.Bad("step counts do not add up");
  st.trace = in.GetTrace();
  if (!in.AtEnd()) in.Bad("trailing bytes");
  return st;
}

void WriteCheckpoint(const std::string& path, const CheckpointState& state) {
  WriteFileAtomically(path, SerializeCheckpoint(state));
}

CheckpointState ReadCheckpoint(const std::string& path) {
  return ParseCheckpoint(io::ReadWholeFile(path), path);
}

namespace io {

std::string_view Unframe(const std::string& bytes, const std::string& shown, std::string_view magic,
                         std::uint32_t version) {
  In head(bytes.data(), std::min(bytes.size(), kCheckpointHeaderBytes), shown);
  const std::string_view got(bytes.data(), std::min(bytes.size(), magic.size()));
  if (got != magic) {
    if (got == kMemSgdMagic || got == kErrorFeedbackMagic) {
      const bool ef = got == kErrorFeedbackMagic;
      throw CheckpointError(CheckpointError::Kind::kMismatch,
                            "checkpoint '" + shown + "' was written by " +
                                (ef ? "an error-feedback method (--method ef14-sgd, ef21, ...)"
                                    : "--method sgd, mem-sgd or qsgd") +
                                "; resume it with the method that wrote it");
    }
    throw CheckpointError(CheckpointError::Kind::kCorrupt,
                          "'" + shown + "' is not a memsgd checkpoint (bad magic bytes)");
  }
  if (bytes.size() < kCheckpointHeaderBytes) head.Bad("truncated header");
  for (std::size_t i = 0; i < magic.size(); ++i) (void)head.Get<char>();
  const auto file_version = head.Get<std::uint32_t>();
  if (file_version != version) {
    throw CheckpointError(CheckpointError::Kind::kCorrupt,
                          "checkpoint '" + shown + "' has format version " +
                              std::to_string(file_version) + "; this memsgd reads version " +
                              std::to_string(version));
  }
  if (head.Get<std::uint32_t>() != kByteOrderMark) head.Bad("written with another byte order");
  const auto length = head.Get<std::uint64_t>();
  const auto checksum = head.Get<std::uint64_t>();
  if (length != bytes.size() - kCheckpointHeaderBytes) {
    head.Bad("payload length " + std::to_string(length) + " but " +
             std::to_string(bytes.size() - kCheckpointHeaderBytes) +
             " bytes follow the header (truncated?)");
  }
  const char* payload = bytes.data() + kCheckpointHeaderBytes;
  if (Checksum(payload, length) != checksum) head.Bad("checksum mismatch");
  return {payload, static_cast<std::size_t>(length)};
}

std::string ReadWholeFile(const std::string& path) {
  auto fail = [&](const std::string& why) -> CheckpointError {
    return CheckpointError(CheckpointError::Kind::kUnreadable,
                           "cannot read checkpoint '" + path + "': " + why);
  };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw fail(std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    std::fclose(f);
    throw fail("is a directory");
  }
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    const std::size_t got = std::fread(buf, 1, sizeof buf, f);
    bytes.append(buf, got);
    if (got < sizeof buf) break;
  }
  const bool error = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (error) throw fail(std::strerror(err));
  return bytes;
}

}  // namespace io

}  // namespace memsgd
