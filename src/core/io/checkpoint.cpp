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

#include "memsgd/trace_io.hpp"

namespace memsgd {

namespace {

static_assert(std::endian::native == std::endian::little,
              "checkpoint files are little-endian; big-endian hosts are not supported");

constexpr char kMagic[8] = {'M', 'E', 'M', 'S', 'G', 'D', 'C', 'K'};
constexpr std::uint32_t kVersion = 3;
constexpr std::uint32_t kByteOrderMark = 0x01020304;
constexpr std::size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8;

// A fast non-cryptographic 64-bit hash over 8-byte words (checksums and fingerprints).
class Hasher {
 public:
  void Word(std::uint64_t w) noexcept {
    h_ ^= w + 0x9e3779b97f4a7c15ULL + (h_ << 6) + (h_ >> 2);
    h_ *= 0xff51afd7ed558ccdULL;
    h_ ^= h_ >> 29;
  }
  void Double(double v) noexcept { Word(std::bit_cast<std::uint64_t>(v)); }
  void Bytes(const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    Word(n);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      Word(w);
    }
    if (i < n) {
      std::uint64_t w = 0;
      std::memcpy(&w, p + i, n - i);
      Word(w);
    }
  }
  template <class T>
  void Span(std::span<const T> s) noexcept {
    Bytes(s.data(), s.size_bytes());
  }
  std::uint64_t Value() const noexcept {
    std::uint64_t z = h_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t h_ = 0x6a09e667f3bcc908ULL;
};

std::uint64_t Checksum(const char* p, std::size_t n) {
  Hasher h;
  h.Bytes(p, n);
  return h.Value();
}

// ---- writing

class Out {
 public:
  template <class T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <class T>
  void Vec(const std::vector<T>& v) {
    Put<std::uint64_t>(v.size());
    if (!v.empty()) s_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  void PutRng(const Rng::State& r) {
    for (auto w : r.s) Put<std::uint64_t>(w);
    Put<double>(r.spare);
    Put<std::uint8_t>(r.has_spare ? 1 : 0);
  }
  std::string& Str() { return s_; }

 private:
  std::string s_;
};

// ---- reading: every read is bounds-checked; a length is trusted only if the bytes exist.

class In {
 public:
  In(const char* p, std::size_t n, const std::string& shown) : p_(p), end_(p + n), shown_(shown) {}

  template <class T>
  T Get() {
    static_assert(std::is_trivially_copyable_v<T>);
    Need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  template <class T>
  std::vector<T> Vec(const char* what) {
    const auto n = Get<std::uint64_t>();
    if (n > static_cast<std::uint64_t>(end_ - p_) / sizeof(T)) Bad(std::string(what) + " is truncated");
    std::vector<T> v(static_cast<std::size_t>(n));
    if (!v.empty()) std::memcpy(v.data(), p_, v.size() * sizeof(T));
    p_ += v.size() * sizeof(T);
    return v;
  }
  Rng::State GetRng() {
    Rng::State r{};
    for (auto& w : r.s) w = Get<std::uint64_t>();
    r.spare = Get<double>();
    const auto flag = Get<std::uint8_t>();
    if (flag > 1) Bad("bad RNG state");
    r.has_spare = flag == 1;
    return r;
  }
  std::uint64_t Count(std::size_t min_bytes_each, const char* what) {
    const auto n = Get<std::uint64_t>();
    if (n > static_cast<std::uint64_t>(end_ - p_) / min_bytes_each) Bad(std::string(what) + " is truncated");
    return n;
  }
  bool AtEnd() const noexcept { return p_ == end_; }
  [[noreturn]] void Bad(const std::string& why) const {
    throw CheckpointError(CheckpointError::Kind::kCorrupt,
                          "checkpoint '" + shown_ + "' is corrupt: " + why);
  }

 private:
  void Need(std::size_t n) const {
    if (static_cast<std::size_t>(end_ - p_) < n) Bad("unexpected end of data");
  }
  const char* p_;
  const char* end_;
  const std::string& shown_;
};

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
  o.Put<std::uint64_t>(st.trace.size());
  for (const auto& p : st.trace) {
    o.Put<double>(p.epoch);
    o.Put<std::int64_t>(p.samples);
    o.Put<double>(p.seconds);
    o.Put<double>(p.loss);
    o.Put<double>(p.suboptimality);
    o.Put<double>(p.grad_norm2);
    o.Put<double>(p.test_accuracy);
    o.Put<double>(p.train_accuracy);
    o.Put<double>(p.bits);
  }
  const std::string& payload = o.Str();
  std::string file(kMagic, sizeof kMagic);
  auto put = [&](auto v) { file.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(kVersion);
  put(kByteOrderMark);
  put(static_cast<std::uint64_t>(payload.size()));
  put(Checksum(payload.data(), payload.size()));
  file += payload;
  return file;
}

CheckpointState ParseCheckpoint(const std::string& bytes, const std::string& shown) {
  In head(bytes.data(), std::min(bytes.size(), kHeaderBytes), shown);
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    throw CheckpointError(CheckpointError::Kind::kCorrupt,
                          "'" + shown + "' is not a memsgd checkpoint (bad magic bytes)");
  }
  if (bytes.size() < kHeaderBytes) head.Bad("truncated header");
  for (std::size_t i = 0; i < sizeof kMagic; ++i) (void)head.Get<char>();
  const auto version = head.Get<std::uint32_t>();
  if (version != kVersion) {
    throw CheckpointError(CheckpointError::Kind::kCorrupt,
                          "checkpoint '" + shown + "' has format version " +
                              std::to_string(version) + "; this memsgd reads version " +
                              std::to_string(kVersion));
  }
  if (head.Get<std::uint32_t>() != kByteOrderMark) head.Bad("written with another byte order");
  const auto length = head.Get<std::uint64_t>();
  const auto checksum = head.Get<std::uint64_t>();
  if (length != bytes.size() - kHeaderBytes) {
    head.Bad("payload length " + std::to_string(length) + " but " +
             std::to_string(bytes.size() - kHeaderBytes) + " bytes follow the header (truncated?)");
  }
  const char* payload = bytes.data() + kHeaderBytes;
  if (Checksum(payload, length) != checksum) head.Bad("checksum mismatch");

  In in(payload, length, shown);
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
  const std::uint64_t np = in.Count(72, "trace");
  st.trace.resize(static_cast<std::size_t>(np));
  for (auto& p : st.trace) {
    p.epoch = in.Get<double>();
    p.samples = in.Get<std::int64_t>();
    p.seconds = in.Get<double>();
    p.loss = in.Get<double>();
    p.suboptimality = in.Get<double>();
    p.grad_norm2 = in.Get<double>();
    p.test_accuracy = in.Get<double>();
    p.train_accuracy = in.Get<double>();
    p.bits = in.Get<double>();
  }
  if (!in.AtEnd()) in.Bad("trailing bytes");
  return st;
}

void WriteCheckpoint(const std::string& path, const CheckpointState& state) {
  WriteFileAtomically(path, SerializeCheckpoint(state));
}

CheckpointState ReadCheckpoint(const std::string& path) {
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
  return ParseCheckpoint(bytes, path);
}

}  // namespace memsgd
