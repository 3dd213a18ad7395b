// The binary framing both checkpoint formats share (checkpoint.cpp: sgd / mem-sgd / qsgd;
// ef_checkpoint.cpp: the error-feedback methods): a 64-bit hash, bounds-checked readers and
// writers of native little-endian fields, and the file header
//   8-byte magic, u32 version, u32 byte-order mark 0x01020304, u64 payload length,
//   u64 payload checksum, payload.
// Internal to the library (not installed).
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "memsgd/checkpoint.hpp"
#include "memsgd/rng.hpp"
#include "memsgd/train.hpp"

namespace memsgd::io {

static_assert(std::endian::native == std::endian::little,
              "checkpoint files are little-endian; big-endian hosts are not supported");

inline constexpr std::size_t kCheckpointHeaderBytes = 8 + 4 + 4 + 8 + 8;
inline constexpr std::uint32_t kByteOrderMark = 0x01020304;
// The two formats' magic bytes: each reader names the other one's files.
inline constexpr std::string_view kMemSgdMagic{"MEMSGDCK", 8};
inline constexpr std::string_view kErrorFeedbackMagic{"MEMSGDEF", 8};

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
  void PutTrace(const std::vector<TracePoint>& trace) {
    Put<std::uint64_t>(trace.size());
    for (const auto& p : trace) {
      Put<double>(p.epoch);
      Put<std::int64_t>(p.samples);
      Put<double>(p.seconds);
      Put<double>(p.loss);
      Put<double>(p.suboptimality);
      Put<double>(p.grad_norm2);
      Put<double>(p.test_accuracy);
      Put<double>(p.train_accuracy);
      Put<double>(p.bits);
    }
  }
  void Append(std::string_view bytes) { s_.append(bytes); }
  std::string& Str() { return s_; }

 private:
  std::string s_;
};

// Every read is bounds-checked; a length is trusted only if the bytes exist. Errors are
// CheckpointError(kCorrupt) naming the file.
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
  std::vector<TracePoint> GetTrace() {
    std::vector<TracePoint> trace(static_cast<std::size_t>(Count(72, "trace")));
    for (auto& p : trace) {
      p.epoch = Get<double>();
      p.samples = Get<std::int64_t>();
      p.seconds = Get<double>();
      p.loss = Get<double>();
      p.suboptimality = Get<double>();
      p.grad_norm2 = Get<double>();
      p.test_accuracy = Get<double>();
      p.train_accuracy = Get<double>();
      p.bits = Get<double>();
    }
    return trace;
  }
  // A count of items that take at least min_bytes_each bytes each (checked against what is left).
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

inline std::uint64_t Checksum(const char* p, std::size_t n) {
  Hasher h;
  h.Bytes(p, n);
  return h.Value();
}

// The file: header + payload.
inline std::string Frame(std::string_view magic, std::uint32_t version, const std::string& payload) {
  std::string file(magic);
  auto put = [&](auto v) { file.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(version);
  put(kByteOrderMark);
  put(static_cast<std::uint64_t>(payload.size()));
  put(Checksum(payload.data(), payload.size()));
  file += payload;
  return file;
}

// The payload of a file framed with `magic` and `version` (checked: magic, version, byte order,
// length, checksum). A file of the other format is a kMismatch naming the methods it belongs to.
std::string_view Unframe(const std::string& bytes, const std::string& shown, std::string_view magic,
                         std::uint32_t version);

// Reads a whole file (CheckpointError(kUnreadable) naming it).
std::string ReadWholeFile(const std::string& path);

}  // namespace memsgd::io
