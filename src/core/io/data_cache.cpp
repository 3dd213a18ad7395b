// Binary cache of a parsed LIBSVM file (see include/memsgd/data_cache.hpp).
//
// Layout (native byte order, every field 8 bytes, no padding):
//   Header (kHeaderWords words, below), then the payload:
//   compression name (compression_len bytes), label counts (label_counts x {double, int64}),
//   row pointers (row_ptr_count x int64), column indices (col_count x int32),
//   values (value_count x float32), labels (rows x double).
// The checksum covers the payload; the header carries its own hash. Arrays are read with one
// read() each, straight into the Dataset's vectors, then checksummed and checked.
#include "memsgd/data_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

namespace memsgd {

namespace {

constexpr char kMagic[8] = {'M', 'E', 'M', 'S', 'G', 'D', 'C', '1'};
constexpr std::size_t kFingerprintBytes = 64 * 1024;

// 64-bit checksum: four independent multiply-rotate lanes over 32-byte stripes (xxHash64's
// round), so it runs at memory speed; streaming (Update may be called with any split).
class FastHash {
 public:
  void Update(const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (fill_ > 0) {
      const std::size_t take = std::min(n, sizeof buf_ - fill_);
      std::memcpy(buf_ + fill_, p, take);
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ < sizeof buf_) return;
      Stripe(buf_);
      fill_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32) Stripe(p);
    std::memcpy(buf_, p, n);
    fill_ = n;
  }
  std::uint64_t Value() const noexcept {
    std::uint64_t h = std::rotl(v_[0], 1) + std::rotl(v_[1], 7) + std::rotl(v_[2], 12) +
                      std::rotl(v_[3], 18);
    h ^= total_ * kP5;
    for (std::size_t i = 0; i < fill_; ++i) {
      h ^= buf_[i] * kP5;
      h = std::rotl(h, 11) * kP1;
    }
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ULL, kP2 = 0xC2B2AE3D27D4EB4FULL,
                                 kP3 = 0x165667B19E3779F9ULL, kP5 = 0x27D4EB2F165667C5ULL;
  static std::uint64_t Round(std::uint64_t acc, std::uint64_t w) noexcept {
    return std::rotl(acc + w * kP2, 31) * kP1;
  }
  void Stripe(const unsigned char* p) noexcept {
    std::uint64_t w[4];
    std::memcpy(w, p, 32);
    for (int i = 0; i < 4; ++i) v_[i] = Round(v_[i], w[i]);
  }
  std::uint64_t v_[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  unsigned char buf_[32] = {};
  std::size_t fill_ = 0;
  std::uint64_t total_ = 0;
};

// What identifies the source file.
struct SourceId {
  std::uint64_t size = 0;
  std::int64_t mtime_sec = 0, mtime_nsec = 0;
  std::uint64_t fingerprint = 0;  // hash of the first and last 64 KiB
};

bool ReadAll(int fd, void* buf, std::size_t n, std::uint64_t offset) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const std::size_t piece = std::min<std::size_t>(n, std::size_t{1} << 30);
    const ssize_t got = ::pread(fd, p, piece, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
  return true;
}

// Identity of a regular file; false when it cannot be read.
bool Identify(const std::string& path, SourceId& id) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (ok) {
    id.size = static_cast<std::uint64_t>(st.st_size);
    id.mtime_sec = static_cast<std::int64_t>(st.st_mtim.tv_sec);
    id.mtime_nsec = static_cast<std::int64_t>(st.st_mtim.tv_nsec);
    const std::size_t head = static_cast<std::size_t>(std::min<std::uint64_t>(id.size, kFingerprintBytes));
    const std::size_t tail = static_cast<std::size_t>(std::min<std::uint64_t>(id.size, kFingerprintBytes));
    std::vector<char> buf(head + tail);
    ok = ReadAll(fd, buf.data(), head, 0) && ReadAll(fd, buf.data() + head, tail, id.size - tail);
    FastHash h;
    h.Update(buf.data(), buf.size());
    id.fingerprint = h.Value();
  }
  ::close(fd);
  return ok;
}

// The header: all 8-byte fields.
struct Header {
  char magic[8];
  std::uint64_t version;
  std::uint64_t header_bytes;
  // Source.
  std::uint64_t src_size;
  std::int64_t src_mtime_sec, src_mtime_nsec;
  std::uint64_t src_fingerprint;
  // Options that change the result.
  std::int64_t num_features;
  std::uint64_t ignore_extra_features;
  std::uint64_t has_positive_label;
  double positive_label;
  std::uint64_t has_fixed_positive_label;
  double fixed_positive_label;
  double densify_at;
  // Data.
  std::int64_t d;
  std::uint64_t dense;
  std::int64_t rows;
  std::uint64_t row_ptr_count, col_count, value_count;
  double data_positive_label, data_negative_label;
  // ReadInfo.
  std::uint64_t text_bytes;
  std::int64_t lines, entries, dropped_entries;
  std::uint64_t label_count_count, compression_len;
  // Integrity.
  std::uint64_t payload_bytes;
  std::uint64_t payload_hash;
  std::uint64_t header_hash;  // of every field above
};
static_assert(sizeof(Header) % 8 == 0);

std::uint64_t HeaderHash(const Header& h) {
  FastHash f;
  f.Update(&h, offsetof(Header, header_hash));
  return f.Value();
}

std::uint64_t Bits(double x) { return std::bit_cast<std::uint64_t>(x); }

void FillOptions(Header& h, const ReadOptions& o) {
  h.num_features = o.num_features;
  h.ignore_extra_features = o.ignore_extra_features ? 1 : 0;
  h.has_positive_label = o.positive_label.has_value() ? 1 : 0;
  h.positive_label = o.positive_label.value_or(0.0);
  h.has_fixed_positive_label = o.fixed_positive_label.has_value() ? 1 : 0;
  h.fixed_positive_label = o.fixed_positive_label.value_or(0.0);
  h.densify_at = o.densify_at;
}

bool SameOptions(const Header& a, const Header& b) {
  return a.num_features == b.num_features && a.ignore_extra_features == b.ignore_extra_features &&
         a.has_positive_label == b.has_positive_label &&
         Bits(a.positive_label) == Bits(b.positive_label) &&
         a.has_fixed_positive_label == b.has_fixed_positive_label &&
         Bits(a.fixed_positive_label) == Bits(b.fixed_positive_label) &&
         Bits(a.densify_at) == Bits(b.densify_at);
}

std::uint64_t Mul(std::uint64_t a, std::uint64_t b, bool& overflow) {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) overflow = true;
  return r;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int Get() const noexcept { return fd_; }
  int Release() noexcept {
    const int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

}  // namespace

std::string DefaultCachePath(const std::string& data_path) { return data_path + ".memsgd-cache"; }

std::optional<Dataset> LoadDataCache(const std::string& cache_path, const std::string& data_path,
                                     const ReadOptions& options, ReadInfo& info,
                                     std::string& why) {
  const Fd fd(::open(cache_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.Get() < 0) {
    why = errno == ENOENT ? "no cache file" : std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd.Get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    why = "not a regular file";
    return std::nullopt;
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  Header h{};
  if (file_size < sizeof h || !ReadAll(fd.Get(), &h, sizeof h, 0)) {
    why = "truncated (no complete header)";
    return std::nullopt;
  }
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) {
    why = "not a memsgd data cache (bad magic)";
    return std::nullopt;
  }
  if (h.version != kDataCacheVersion) {
    why = "format version " + std::to_string(h.version) + ", this memsgd reads version " +
          std::to_string(kDataCacheVersion);
    return std::nullopt;
  }
  if (h.header_bytes != sizeof h || HeaderHash(h) != h.header_hash) {
    why = "corrupt header (checksum mismatch)";
    return std::nullopt;
  }
  SourceId id;
  if (!Identify(data_path, id)) {
    why = "cannot read the data file";
    return std::nullopt;
  }
  if (id.size != h.src_size || id.mtime_sec != h.src_mtime_sec ||
      id.mtime_nsec != h.src_mtime_nsec || id.fingerprint != h.src_fingerprint) {
    why = "stale (the data file changed since the cache was written)";
    return std::nullopt;
  }
  Header want{};
  FillOptions(want, options);
  if (!SameOptions(h, want)) {
    why = "made with other read options (positive label, feature count or densify threshold)";
    return std::nullopt;
  }
  // Sizes: consistent with each other and with the file, before anything is allocated.
  bool overflow = false;
  const auto rows = static_cast<std::uint64_t>(h.rows);
  std::uint64_t payload = h.compression_len;
  payload += Mul(h.label_count_count, 16, overflow);
  payload += Mul(h.row_ptr_count, sizeof(Offset), overflow);
  payload += Mul(h.col_count, sizeof(Index), overflow);
  payload += Mul(h.value_count, sizeof(Value), overflow);
  payload += Mul(rows, sizeof(double), overflow);
  const bool shape_ok =
      h.rows >= 0 && h.d >= 0 && h.d <= std::numeric_limits<Index>::max() &&
      h.compression_len <= 64 && h.label_count_count <= rows + 1 &&
      (h.dense ? h.row_ptr_count == 0 && h.col_count == 0 &&
                     h.value_count == Mul(rows, static_cast<std::uint64_t>(h.d), overflow)
               : h.row_ptr_count == rows + 1 && h.col_count == h.value_count);
  if (overflow || !shape_ok || payload != h.payload_bytes ||
      file_size != sizeof h + h.payload_bytes) {
    why = file_size < sizeof h + h.payload_bytes ? "truncated" : "corrupt (inconsistent sizes)";
    return std::nullopt;
  }

  FastHash sum;
  std::uint64_t at = sizeof h;
  bool read_ok = true;
  auto get = [&](void* p, std::size_t n) {
    if (!read_ok || n == 0) return;
    read_ok = ReadAll(fd.Get(), p, n, at);
    at += n;
    if (read_ok) sum.Update(p, n);
  };
  std::string compression(h.compression_len, '\0');
  get(compression.data(), compression.size());
  std::vector<std::pair<double, Offset>> counts(h.label_count_count);
  for (auto& c : counts) {
    get(&c.first, 8);
    get(&c.second, 8);
  }
  std::vector<Offset> row_ptr(h.row_ptr_count);
  std::vector<Index> col(h.col_count);
  std::vector<Value> val(h.value_count);
  std::vector<double> labels(rows);
  get(row_ptr.data(), row_ptr.size() * sizeof(Offset));
  get(col.data(), col.size() * sizeof(Index));
  get(val.data(), val.size() * sizeof(Value));
  get(labels.data(), labels.size() * sizeof(double));
  if (!read_ok) {
    why = "cannot read (truncated?)";
    return std::nullopt;
  }
  if (sum.Value() != h.payload_hash) {
    why = "corrupt (payload checksum mismatch)";
    return std::nullopt;
  }
  // Structure (a valid checksum on inconsistent arrays means a foreign writer).
  const auto d = static_cast<Index>(h.d);
  bool ok = true;
  for (double y : labels) ok &= (y == 1.0 || y == -1.0);
  if (!h.dense) {
    ok &= row_ptr.front() == 0 && static_cast<std::uint64_t>(row_ptr.back()) == h.col_count;
    for (std::size_t i = 0; ok && i + 1 < row_ptr.size(); ++i) {
      const Offset b = row_ptr[i], e = row_ptr[i + 1];
      if (b > e || e > static_cast<Offset>(h.col_count)) {
        ok = false;
        break;
      }
      Index prev = -1;
      for (Offset k = b; k < e; ++k) {
        const Index j = col[static_cast<std::size_t>(k)];
        ok &= j > prev && j < d;
        prev = j;
      }
    }
  }
  if (!ok) {
    why = "corrupt (inconsistent arrays)";
    return std::nullopt;
  }

  Dataset ds = h.dense ? Dataset::FromDense(d, std::move(val), std::move(labels))
                       : Dataset::FromCsr(d, std::move(row_ptr), std::move(col), std::move(val),
                                          std::move(labels));
  ds.positive_label = h.data_positive_label;
  ds.negative_label = h.data_negative_label;
  info = ReadInfo{};
  info.compression = std::move(compression);
  info.text_bytes = h.text_bytes;
  info.lines = h.lines;
  info.label_counts = std::move(counts);
  info.entries = h.entries;
  info.dropped_entries = h.dropped_entries;
  return ds;
}

namespace {

void WriteCache(const std::string& cache_path, const SourceId& id, const ReadOptions& options,
                const Dataset& data, const ReadInfo& info) {
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kDataCacheVersion;
  h.header_bytes = sizeof h;
  h.src_size = id.size;
  h.src_mtime_sec = id.mtime_sec;
  h.src_mtime_nsec = id.mtime_nsec;
  h.src_fingerprint = id.fingerprint;
  FillOptions(h, options);
  h.d = data.NumFeatures();
  h.dense = data.IsDense() ? 1 : 0;
  h.rows = data.NumRows();
  h.row_ptr_count = data.IsDense() ? 0 : data.RowPtr().size();
  h.col_count = data.IsDense() ? 0 : data.ColIdx().size();
  h.value_count = data.Values().size();
  h.data_positive_label = data.positive_label;
  h.data_negative_label = data.negative_label;
  h.text_bytes = info.text_bytes;
  h.lines = info.lines;
  h.entries = info.entries;
  h.dropped_entries = info.dropped_entries;
  h.label_count_count = info.label_counts.size();
  h.compression_len = info.compression.size();

  const std::string tmp = cache_path + ".tmp." + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.Get() < 0) {
    throw std::runtime_error("cannot create " + tmp + ": " + std::strerror(errno));
  }
  FastHash sum;
  std::uint64_t at = sizeof h;
  auto fail = [&](const std::string& what) {
    const int e = errno;
    ::close(fd.Release());
    ::unlink(tmp.c_str());
    throw std::runtime_error(what + " " + tmp + ": " + std::strerror(e));
  };
  auto put_at = [&](const void* p, std::size_t n, std::uint64_t off) {
    const auto* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd.Get(), c, std::min<std::size_t>(n, std::size_t{1} << 30),
                                 static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("cannot write");
      c += w;
      n -= static_cast<std::size_t>(w);
      off += static_cast<std::uint64_t>(w);
    }
  };
  auto put = [&](const void* p, std::size_t n) {
    sum.Update(p, n);
    put_at(p, n, at);
    at += n;
  };
  put(info.compression.data(), info.compression.size());
  for (const auto& [value, count] : info.label_counts) {
    const double v = value;
    const Offset c = count;
    put(&v, 8);
    put(&c, 8);
  }
  if (!data.IsDense()) {
    put(data.RowPtr().data(), data.RowPtr().size_bytes());
    put(data.ColIdx().data(), data.ColIdx().size_bytes());
  }
  put(data.Values().data(), data.Values().size_bytes());
  put(data.Labels().data(), data.Labels().size_bytes());
  h.payload_bytes = at - sizeof h;
  h.payload_hash = sum.Value();
  h.header_hash = HeaderHash(h);
  put_at(&h, sizeof h, 0);
  if (::close(fd.Release()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), cache_path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + cache_path + ": " +
                             std::strerror(e));
  }
}

}  // namespace

void SaveDataCache(const std::string& cache_path, const std::string& data_path,
                   const ReadOptions& options, const Dataset& data, const ReadInfo& info) {
  SourceId id;
  if (!Identify(data_path, id)) {
    throw std::runtime_error("cannot cache " + data_path + ": not a readable regular file");
  }
  WriteCache(cache_path, id, options, data, info);
}

Dataset ReadLibsvmCached(const std::string& data_path, const std::string& cache_path,
                         const ReadOptions& options, ReadInfo& info,
                         const std::function<void(const std::string&)>& note) {
  auto tell = [&](const std::string& s) {
    if (note) note(s);
  };
  if (data_path == "-") {
    tell("no cache for standard input");
    return ReadLibsvm(data_path, options, info);
  }
  std::string why;
  if (auto ds = LoadDataCache(cache_path, data_path, options, info, why)) {
    tell("loaded cache " + cache_path);
    return std::move(*ds);
  }
  if (why != "no cache file") tell("ignoring cache " + cache_path + ": " + why + "; re-parsing");
  SourceId before;
  const bool identified = Identify(data_path, before);
  Dataset data = ReadLibsvm(data_path, options, info);
  SourceId after;
  if (!identified || !Identify(data_path, after) || after.size != before.size ||
      after.mtime_sec != before.mtime_sec || after.mtime_nsec != before.mtime_nsec ||
      after.fingerprint != before.fingerprint) {
    tell("cache not written: " + data_path + " is not a regular file or changed while read");
    return data;
  }
  try {
    WriteCache(cache_path, before, options, data, info);
    tell("wrote cache " + cache_path);
  } catch (const std::exception& e) {
    tell(std::string("cache not written: ") + e.what());
  }
  return data;
}

}  // namespace memsgd
