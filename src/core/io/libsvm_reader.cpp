// LIBSVM / SVMlight text reader: the input source (plain, gzip, bzip2, xz, stdin, a byte range of
// a plain file), the line parser, the parallel read, and the row counts and seeks for reading a
// file in shards (see include/memsgd/libsvm.hpp; the writer: libsvm_writer.cpp).
//
// Input is read in 1 MiB blocks straight from the file descriptor (or through zlib, libbz2 or
// liblzma when the magic bytes say so); complete lines are parsed in place with std::from_chars
// and a hand-written index scanner, and the partial last line of a block is carried over to the
// next. Rows go into growable CSR vectors; labels are mapped to -1/+1 once the file is read.
// With more than one thread (and more than a few MiB of text) the text is read in large batches
// on a reader thread and each batch is parsed in chunks concurrently ("Parallel parse" below),
// with the sequential loop's result, ReadInfo and errors.
#include "memsgd/libsvm.hpp"

#include <bzlib.h>
#include <fcntl.h>
#include <lzma.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <tbb/blocked_range.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <limits>
#include <memory>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace memsgd {

namespace {

constexpr std::size_t kBlock = std::size_t{1} << 20;  // bytes per read / decompression step
constexpr std::size_t kMaxTokenShown = 48;
// Plain files smaller than this are parsed by the sequential loop whatever the thread count.
constexpr std::size_t kSmallInput = std::size_t{1} << 20;

// A token as shown in a message: non-printable bytes escaped, long tokens cut.
std::string ShowToken(std::string_view tok) {
  std::string s;
  const std::size_t n = std::min(tok.size(), kMaxTokenShown);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(tok[i]);
    if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      s += hex;
    } else {
      s += static_cast<char>(c);
    }
  }
  if (tok.size() > n) s += "...";
  return s;
}

std::string FormatParseError(const std::string& file, long long line, const std::string& token,
                             const std::string& reason) {
  // (append() rather than operator+ chains: GCC 12 gives a false -Wrestrict on the latter)
  std::string s;
  s.reserve(file.size() + reason.size() + token.size() + 32);
  s.append(file);
  if (line > 0) s.append(":").append(std::to_string(line));
  s.append(": ").append(reason);
  if (!token.empty()) s.append(" (token '").append(ShowToken(token)).append("')");
  return s;
}

std::string NumberText(double x) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

[[noreturn]] void Fail(const std::string& file, long long line, std::string_view token,
                       const std::string& reason) {
  throw ParseError(file, line, std::string(token.substr(0, 256)), reason);
}

// ---------------------------------------------------------------------------------------------
// Byte sources: a raw file descriptor, optionally behind a decompressor.

enum class Compression { kNone, kGzip, kBzip2, kXz };

const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kGzip: return "gzip";
    case Compression::kBzip2: return "bzip2";
    case Compression::kXz: return "xz";
    case Compression::kNone: break;
  }
  return "none";
}

Compression DetectCompression(const unsigned char* p, std::size_t n) {
  if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) return Compression::kGzip;
  if (n >= 4 && p[0] == 'B' && p[1] == 'Z' && p[2] == 'h' && p[3] >= '1' && p[3] <= '9') {
    return Compression::kBzip2;
  }
  static constexpr unsigned char kXzMagic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
  if (n >= 6 && std::memcmp(p, kXzMagic, 6) == 0) return Compression::kXz;
  return Compression::kNone;
}

// Bytes [begin, end) of a plain file, and then the rest of the line that byte end-1 is in: the
// lines that start in the range, each whole (ReadOptions::range_begin/range_end). Only a plain
// regular file has byte offsets that mean lines: a compressed file's offsets are not text
// offsets, and standard input cannot seek.
struct ByteRange {
  std::uint64_t begin = 0;
  std::uint64_t end = std::numeric_limits<std::uint64_t>::max();
};

class FdInput {
 public:
  // range: null for the whole input (any kind); else that range of a plain file.
  FdInput(const std::string& path, const std::string& shown, const ByteRange* range = nullptr)
      : shown_(shown) {
    static const std::string kRangeOnlyPlain = "a byte range can only be read from a plain file";
    if (path == "-") {
      if (range) Fail(shown_, 0, {}, kRangeOnlyPlain + ", not from standard input");
      fd_ = STDIN_FILENO;
      owned_ = false;
    } else {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) Fail(shown_, 0, {}, std::string("cannot open: ") + std::strerror(errno));
    }
    struct stat st {};
    const bool stat_ok = ::fstat(fd_, &st) == 0;
    if (stat_ok) {
      if (S_ISDIR(st.st_mode)) {
        Close();
        Fail(shown_, 0, {}, "cannot read: is a directory");
      }
      if (S_ISREG(st.st_mode)) {
        size_hint_ = file_size_ = static_cast<std::uint64_t>(st.st_size);
#ifdef POSIX_FADV_SEQUENTIAL
        ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
      }
    }
    if (range == nullptr) return;
    // (A constructor that throws runs no destructor: the descriptor is closed first.)
    auto refuse = [&](const std::string& why) {
      Close();
      Fail(shown_, 0, {}, why);
    };
    if (!stat_ok || !S_ISREG(st.st_mode)) refuse(kRangeOnlyPlain + "; this is not a regular file");
    // The file's own first bytes decide, wherever the range starts.
    unsigned char magic[6];
    std::size_t have = 0;
    while (have < sizeof magic) {
      const ssize_t got = ::pread(fd_, magic + have, sizeof magic - have, static_cast<off_t>(have));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) refuse(std::string("read error: ") + std::strerror(errno));
      if (got == 0) break;
      have += static_cast<std::size_t>(got);
    }
    const Compression kind = DetectCompression(magic, have);
    if (kind != Compression::kNone) {
      refuse(kRangeOnlyPlain + "; the file is " + CompressionName(kind) +
             " compressed: decompress it first");
    }
    const std::uint64_t begin = std::min(range->begin, file_size_);
    const std::uint64_t end = std::clamp(range->end, begin, file_size_);
    if (::lseek(fd_, static_cast<off_t>(begin), SEEK_SET) < 0) {
      refuse(std::string("cannot seek: ") + std::strerror(errno));
    }
    ranged_ = true;
    at_file_start_ = begin == 0;
    left_ = size_hint_ = end - begin;
    in_line_ = end > begin;
  }
  ~FdInput() { Close(); }
  FdInput(const FdInput&) = delete;
  FdInput& operator=(const FdInput&) = delete;

  // Reads up to n bytes; 0 means end of file (of the range).
  std::size_t Read(void* buf, std::size_t n) {
    if (!ranged_) return ReadFd(buf, n);
    auto* const b = static_cast<char*>(buf);
    if (left_ > 0) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n, left_));
      const std::size_t got = ReadFd(b, want);
      if (got == 0) return 0;  // the file shrank
      left_ -= got;
      in_line_ = b[got - 1] != '\n';
      return got;
    }
    // Past the range: the rest of its last line, if the range ends inside it.
    if (!in_line_ || n == 0) return 0;
    const std::size_t got = ReadFd(b, n);
    const auto* nl = static_cast<const char*>(std::memchr(b, '\n', got));
    if (nl == nullptr) {
      in_line_ = got > 0;
      return got;
    }
    in_line_ = false;
    return static_cast<std::size_t>(nl - b) + 1;
  }
  // Bytes to expect (the file's or the range's size; 0 when unknown).
  std::uint64_t SizeHint() const noexcept { return size_hint_; }
  // The size of a regular file (0 for other input).
  std::uint64_t FileSize() const noexcept { return file_size_; }
  // Whether the bytes read start at the file's first byte (where a byte-order mark may be).
  bool AtFileStart() const noexcept { return at_file_start_; }

 private:
  std::size_t ReadFd(void* buf, std::size_t n) {
    for (;;) {
      const ssize_t got = ::read(fd_, buf, n);
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno == EINTR) continue;
      Fail(shown_, 0, {}, std::string("read error: ") + std::strerror(errno));
    }
  }
  void Close() noexcept {
    if (owned_ && fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string shown_;
  int fd_ = -1;
  bool owned_ = true;
  std::uint64_t size_hint_ = 0;
  std::uint64_t file_size_ = 0;
  bool at_file_start_ = true;
  // A byte range: bytes of it still to read, and whether the last byte read was inside a line.
  bool ranged_ = false;
  std::uint64_t left_ = 0;
  bool in_line_ = false;
};

// Decompressed (or plain) bytes of one file. The first raw block is read up front to look at
// the magic bytes; after that a decoder pulls raw blocks as it needs them.
class Source {
 public:
  Source(const std::string& path, const std::string& shown, const ByteRange* range = nullptr)
      : shown_(shown), in_(path, shown, range) {
    raw_.resize(kBlock);
    // Fill at least the 6 magic bytes (pipes may deliver less per read).
    while (raw_len_ < 6 && !raw_eof_) RefillRaw(/*keep=*/true);
    // A range is of a plain file (FdInput checked the file's first bytes); its own first bytes
    // are a line's, whatever they look like.
    kind_ = range ? Compression::kNone : DetectCompression(raw_.data(), raw_len_);
    switch (kind_) {
      case Compression::kNone: break;
      case Compression::kGzip: InitGzip(); break;
      case Compression::kBzip2: InitBzip2(); break;
      case Compression::kXz: InitXz(); break;
    }
  }
  ~Source() {
    switch (kind_) {
      case Compression::kNone: break;
      case Compression::kGzip: inflateEnd(&zs_); break;
      case Compression::kBzip2:
        if (bz_active_) BZ2_bzDecompressEnd(&bz_);
        break;
      case Compression::kXz: lzma_end(&xz_); break;
    }
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  Compression Kind() const noexcept { return kind_; }
  std::uint64_t SizeHint() const noexcept { return in_.SizeHint(); }
  // A UTF-8 byte-order mark is skipped only here: at the start of a range inside the file, the
  // same bytes are the start of a line (and an error, as in a whole-file read).
  bool AtFileStart() const noexcept { return in_.AtFileStart(); }
  // Compressed bytes the decoder has consumed so far (compressed input only).
  std::uint64_t RawConsumed() const noexcept { return raw_total_ - RawAvail(); }

  // Up to cap decompressed bytes; 0 only at the end of the data.
  std::size_t Read(char* out, std::size_t cap) {
    if (cap == 0) return 0;
    switch (kind_) {
      case Compression::kNone: return ReadPlain(out, cap);
      case Compression::kGzip: return ReadGzip(out, cap);
      case Compression::kBzip2: return ReadBzip2(out, cap);
      case Compression::kXz: return ReadXz(out, cap);
    }
    return 0;
  }

 private:
  // Reads the next raw block; keep=true appends to unconsumed bytes (used only at the start).
  void RefillRaw(bool keep) {
    if (!keep) {
      raw_pos_ = 0;
      raw_len_ = 0;
    }
    const std::size_t got = in_.Read(raw_.data() + raw_len_, raw_.size() - raw_len_);
    if (got == 0) raw_eof_ = true;
    raw_len_ += got;
    raw_total_ += got;
  }
  std::size_t RawAvail() const noexcept { return raw_len_ - raw_pos_; }
  [[noreturn]] void Corrupt(const std::string& what) const {
    Fail(shown_, 0, {}, std::string(CompressionName(kind_)) + " data " + what);
  }
  [[noreturn]] void Truncated() const {
    Corrupt("is truncated (unexpected end of compressed stream)");
  }

  std::size_t ReadPlain(char* out, std::size_t cap) {
    if (RawAvail() > 0) {
      const std::size_t n = std::min(cap, RawAvail());
      std::memcpy(out, raw_.data() + raw_pos_, n);
      raw_pos_ += n;
      return n;
    }
    if (raw_eof_) return 0;
    const std::size_t n = in_.Read(out, cap);
    if (n == 0) raw_eof_ = true;
    return n;
  }

  // Makes raw input available for the next decoder step; false at end of input.
  bool EnsureRaw() {
    if (RawAvail() == 0 && !raw_eof_) RefillRaw(false);
    return RawAvail() > 0;
  }

  // --- gzip (RFC 1952), concatenated members allowed as gzip(1) does.
  void InitGzip() {
    zs_ = {};
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) Corrupt("decoder could not be initialised");
  }
  std::size_t ReadGzip(char* out, std::size_t cap) {
    if (done_) return 0;
    for (;;) {
      EnsureRaw();
      zs_.next_in = raw_.data() + raw_pos_;
      zs_.avail_in = static_cast<uInt>(RawAvail());
      zs_.next_out = reinterpret_cast<Bytef*>(out);
      zs_.avail_out = static_cast<uInt>(cap);
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      raw_pos_ = raw_len_ - zs_.avail_in;
      const std::size_t produced = cap - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        // Another member may follow.
        if (!EnsureRaw()) {
          done_ = true;
        } else if (inflateReset(&zs_) != Z_OK) {
          Corrupt("decoder could not be reset");
        }
        if (produced > 0 || done_) return produced;
        continue;
      }
      if (ret == Z_OK || ret == Z_BUF_ERROR) {
        if (produced > 0) return produced;
        if (RawAvail() == 0 && raw_eof_) Truncated();
        continue;
      }
      Corrupt(std::string("is corrupt: ") + (zs_.msg ? zs_.msg : "inflate error"));
    }
  }

  // --- bzip2, concatenated streams allowed (pbzip2 output).
  void InitBzip2() {
    bz_ = {};
    if (BZ2_bzDecompressInit(&bz_, 0, 0) != BZ_OK) Corrupt("decoder could not be initialised");
    bz_active_ = true;
  }
  std::size_t ReadBzip2(char* out, std::size_t cap) {
    if (done_) return 0;
    for (;;) {
      EnsureRaw();
      if (!bz_active_) InitBzip2();
      bz_.next_in = reinterpret_cast<char*>(raw_.data() + raw_pos_);
      bz_.avail_in = static_cast<unsigned>(RawAvail());
      bz_.next_out = out;
      bz_.avail_out = static_cast<unsigned>(cap);
      const int ret = BZ2_bzDecompress(&bz_);
      raw_pos_ = raw_len_ - bz_.avail_in;
      const std::size_t produced = cap - bz_.avail_out;
      if (ret == BZ_STREAM_END) {
        BZ2_bzDecompressEnd(&bz_);
        bz_active_ = false;
        if (!EnsureRaw()) done_ = true;
        if (produced > 0 || done_) return produced;
        continue;
      }
      if (ret == BZ_OK) {
        if (produced > 0) return produced;
        if (RawAvail() == 0 && raw_eof_) Truncated();
        continue;
      }
      Corrupt(ret == BZ_DATA_ERROR_MAGIC ? "is corrupt: bad stream header"
                                         : "is corrupt: bad block data");
    }
  }

  // --- xz (concatenated streams and padding handled by liblzma).
  void InitXz() {
    xz_ = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&xz_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      Corrupt("decoder could not be initialised");
    }
  }
  std::size_t ReadXz(char* out, std::size_t cap) {
    if (done_) return 0;
    for (;;) {
      EnsureRaw();
      xz_.next_in = raw_.data() + raw_pos_;
      xz_.avail_in = RawAvail();
      xz_.next_out = reinterpret_cast<std::uint8_t*>(out);
      xz_.avail_out = cap;
      const lzma_action action = (RawAvail() == 0 && raw_eof_) ? LZMA_FINISH : LZMA_RUN;
      const lzma_ret ret = lzma_code(&xz_, action);
      raw_pos_ = raw_len_ - xz_.avail_in;
      const std::size_t produced = cap - xz_.avail_out;
      if (ret == LZMA_STREAM_END) {
        done_ = true;
        return produced;
      }
      if (ret == LZMA_OK) {
        if (produced > 0) return produced;
        continue;  // at the end, LZMA_FINISH without progress turns into LZMA_BUF_ERROR
      }
      if (ret == LZMA_BUF_ERROR) Truncated();
      if (ret == LZMA_MEM_ERROR || ret == LZMA_MEMLIMIT_ERROR) Corrupt("needs too much memory");
      Corrupt(ret == LZMA_FORMAT_ERROR ? "is corrupt: bad stream header"
                                       : "is corrupt: bad block data");
    }
  }

  std::string shown_;
  FdInput in_;
  std::vector<unsigned char> raw_;
  std::size_t raw_pos_ = 0, raw_len_ = 0;
  std::uint64_t raw_total_ = 0;  // raw bytes read by RefillRaw
  bool raw_eof_ = false;
  bool done_ = false;
  Compression kind_ = Compression::kNone;
  z_stream zs_{};
  bz_stream bz_{};
  bool bz_active_ = false;
  lzma_stream xz_ = LZMA_STREAM_INIT;
};

std::string ShownName(const std::string& path) { return path == "-" ? "<stdin>" : path; }

// ---------------------------------------------------------------------------------------------
// Number parsing: the whole token must be consumed.

enum class Num { kOk, kSyntax, kOverflow, kNotFinite };

template <class T>
Num ParseReal(const char* b, const char* e, T& out) {
  const char* s = b;
  if (s < e && *s == '+') {  // strtod accepts a leading '+', from_chars does not
    ++s;
    if (s == e || *s == '+' || *s == '-') return Num::kSyntax;
  }
  auto [ptr, ec] = std::from_chars(s, e, out);
  if (ec == std::errc::invalid_argument || ptr != e) return Num::kSyntax;
  if (ec == std::errc::result_out_of_range) {
    // Overflow is an error; underflow reads as 0 or a subnormal (rare path).
    const std::string copy(b, e);
    const double d = std::strtod(copy.c_str(), nullptr);
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max())) {
      return Num::kOverflow;
    }
    out = static_cast<T>(d);
    return Num::kOk;
  }
  if (!std::isfinite(out)) return Num::kNotFinite;
  return Num::kOk;
}

bool HasBinaryByte(std::string_view tok) {
  for (char c : tok) {
    const auto u = static_cast<unsigned char>(c);
    if (u == 0 || (u < 0x20 && u != '\t') || u == 0x7f) return true;
  }
  return false;
}

// Character classes: 0 token byte, 1 blank, 2 '#' (starts a comment).
constexpr std::array<unsigned char, 256> MakeClasses() {
  std::array<unsigned char, 256> t{};
  t[' '] = t['\t'] = t['\r'] = t['\v'] = t['\f'] = 1;
  t['#'] = 2;
  return t;
}
constexpr auto kClass = MakeClasses();
inline unsigned Cls(char c) { return kClass[static_cast<unsigned char>(c)]; }

// ---------------------------------------------------------------------------------------------
// Up-front memory check: refuse a file that cannot fit before spending minutes parsing it.
//
// Estimate. The first block of text (up to 1 MiB, the whole file when smaller) is sampled for its
// entries (':' bytes) and rows ('\n' bytes) per byte of text; the text size is the file size
// (plain files) or the file size times the expansion the decoder has shown so far (compressed
// files). Loaded data costs 8 bytes per entry (int32 index + float32 value) and 24 per row
// (row pointer, parsed label, -1/+1 label), so
//     needed = text bytes * (entries per byte * 8 + rows per byte * 24).
// This is what the loaded data set holds (growth of the vectors while reading can briefly take
// more), so a refused file certainly does not fit; a file that passes may still be too large.
// Available memory: MemAvailable from /proc/meminfo (else sysconf's available pages), lowered to
// the room left under a cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes).
// MEMSGD_MEMORY_LIMIT=N[K|M|G|T] replaces the available figure (bytes); =off skips the check.
// Input of unknown size (standard input, pipes) is not checked.

std::uint64_t ReadNumberFile(const char* path, bool& ok) {
  ok = false;
  std::FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char buf[64] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  char* end = nullptr;
  const unsigned long long v = std::strtoull(buf, &end, 10);
  if (end == buf) return 0;  // e.g. "max"
  ok = true;
  return v;
}

// Bytes of memory available to this process; 0 when unknown.
std::uint64_t AvailableMemory(std::string& source) {
  std::uint64_t avail = 0;
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long kb = 0;
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        avail = kb * 1024ULL;
        source = "MemAvailable in /proc/meminfo";
        break;
      }
    }
    std::fclose(f);
  }
  if (avail == 0) {
    const long pages = ::sysconf(_SC_AVPHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) {
      avail = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
      source = "available pages (sysconf)";
    }
  }
  struct Limit {
    const char* max;
    const char* used;
  };
  for (const Limit l : {Limit{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                        Limit{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    bool has_max = false, has_used = false;
    const std::uint64_t max = ReadNumberFile(l.max, has_max);
    const std::uint64_t used = ReadNumberFile(l.used, has_used);
    if (!has_max || max >= (1ULL << 60)) continue;  // no limit ("max", or v1's huge number)
    const std::uint64_t room = has_used && used < max ? max - used : 0;
    if (avail == 0 || room < avail) {
      avail = room;
      source = std::string("the cgroup memory limit (") + l.max + ")";
    }
    break;
  }
  return avail;
}

std::string Bytes(double b) {
  static constexpr const char* kUnit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) {
    b /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, kUnit[u]);
  return buf;
}

// The memory the checks compare against: MEMSGD_MEMORY_LIMIT, else AvailableMemory(); 0 when
// unknown or the checks are off.
std::uint64_t MemoryBudget(std::string& source) {
  if (const char* env = std::getenv("MEMSGD_MEMORY_LIMIT"); env && *env) {
    if (std::strcmp(env, "off") == 0) return 0;
    char* end = nullptr;
    double v = std::strtod(env, &end);
    if (end == env || !(v >= 0)) return AvailableMemory(source);  // unparsable: ignored
    switch (*end) {
      case 'K': case 'k': v *= 1024.0; break;
      case 'M': case 'm': v *= 1024.0 * 1024; break;
      case 'G': case 'g': v *= 1024.0 * 1024 * 1024; break;
      case 'T': case 't': v *= 1024.0 * 1024 * 1024 * 1024; break;
      default: break;
    }
    source = "MEMSGD_MEMORY_LIMIT";
    return static_cast<std::uint64_t>(std::clamp(v, 1.0, 1.8e19));
  }
  return AvailableMemory(source);
}

// Longest line accepted: 1 GiB, and at most a quarter of the memory budget (the line's text and
// what it parses into must fit). Lines that long are not LIBSVM data (a dense row of 10^7
// features is about 100 MB); a file without line breaks (binary data, /dev/zero) ends here
// instead of exhausting the memory.
constexpr std::size_t kMaxLine = std::size_t{1} << 30;

// Called before the buffer holding an unfinished line grows to `bytes`.
void CheckLineFits(const std::string& shown, long long line, std::size_t bytes) {
  std::string source;
  const std::uint64_t budget = MemoryBudget(source);
  const std::uint64_t limit =
      budget > 0 ? std::min<std::uint64_t>(kMaxLine, budget / 4) : kMaxLine;
  if (bytes <= limit) return;
  Fail(shown, line, {},
       "line longer than " + Bytes(static_cast<double>(bytes / 2)) + " (lines may be at most " +
           (limit == kMaxLine ? std::string("1 GiB") :
                                Bytes(static_cast<double>(limit)) + ", a quarter of the " +
                                    Bytes(static_cast<double>(budget)) + " available (" + source +
                                    ")") +
           "; not a LIBSVM text file?)");
}

// sample: the first block of text; total_text: the estimated text size of the whole file.
void CheckFitsInMemory(const std::string& shown, const char* sample, std::size_t sample_len,
                       double total_text, const char* how) {
  std::string source;
  const std::uint64_t avail = MemoryBudget(source);
  if (avail == 0 || sample_len == 0) return;  // unknown, or the check is off
  std::size_t colons = 0, newlines = 0;
  for (std::size_t i = 0; i < sample_len; ++i) {
    colons += sample[i] == ':';
    newlines += sample[i] == '\n';
  }
  newlines = std::max<std::size_t>(newlines, 1);
  const double per_byte = (8.0 * static_cast<double>(colons) + 24.0 * static_cast<double>(newlines)) /
                          static_cast<double>(sample_len);
  const double needed = total_text * per_byte;
  if (needed <= static_cast<double>(avail)) return;
  char detail[256];
  std::snprintf(detail, sizeof detail,
                "%s of text (%s), about %.3g entries x 8 bytes + %.3g rows x 24 bytes, "
                "extrapolated from the first %s",
                Bytes(total_text).c_str(), how,
                total_text * static_cast<double>(colons) / static_cast<double>(sample_len),
                total_text * static_cast<double>(newlines) / static_cast<double>(sample_len),
                Bytes(static_cast<double>(sample_len)).c_str());
  Fail(shown, 0, {},
       "too large for the available memory: loading it needs about " + Bytes(needed) + " (" +
           detail + ") but only " + Bytes(static_cast<double>(avail)) + " are available (" +
           source + "; set MEMSGD_MEMORY_LIMIT=off to try anyway)");
}

// ---------------------------------------------------------------------------------------------
// The parser proper.

struct ClassCount {
  double value;
  Offset count;
  long long first_line;
  std::string token;  // the label as written on first_line (for the "more than two classes" error)
};

class Parser {
 public:
  // chunk = true: one piece of a parallel parse. Line numbers are local to the piece, and the
  // "more than two classes" check is left to MergeClasses (it needs the classes of every earlier
  // piece): classes are only recorded, in order of first appearance.
  // Otherwise line numbers are the file's: a byte range's first line is opt.first_line.
  Parser(const std::string& shown, const ReadOptions& opt, bool chunk = false)
      : file_(shown), opt_(opt), line_(chunk ? 0 : opt.first_line - 1), chunk_(chunk) {
    track_classes_ = !opt.fixed_positive_label.has_value();
  }

  // The number of the last line parsed (0 or first_line - 1 before the first).
  long long LinesSeen() const noexcept { return line_; }
  bool TracksClasses() const noexcept { return track_classes_; }
  const std::vector<ClassCount>& Classes() const noexcept { return classes_; }
  long long MaxIndex() const noexcept { return max_index_; }
  Offset Dropped() const noexcept { return dropped_; }
  Offset Rows() const noexcept { return static_cast<Offset>(labels_.size()); }
  Offset Entries() const noexcept { return static_cast<Offset>(col_.size()); }

  // Parallel parse, in file order: adds the classes of the next piece, whose first line is
  // global line base + 1, exactly as NoteClass would have seen them (same error, same line).
  void MergeClasses(const Parser& piece, long long base) {
    for (const ClassCount& c : piece.classes_) {
      line_ = base + c.first_line;
      NoteClass(c.value, c.token, c.count);
    }
  }

  // Parallel parse: the pieces' rows, in order, become this parser's rows (lines: the total).
  // run(n, fn) calls fn(i) for i in [0, n), possibly concurrently.
  template <class Run>
  void AdoptPieces(std::vector<std::unique_ptr<Parser>>& pieces, long long lines, Run&& run) {
    const std::size_t k = pieces.size();
    std::vector<std::size_t> row0(k + 1, 0), ent0(k + 1, 0);
    for (std::size_t i = 0; i < k; ++i) {
      row0[i + 1] = row0[i] + pieces[i]->labels_.size();
      ent0[i + 1] = ent0[i] + pieces[i]->col_.size();
      max_index_ = std::max(max_index_, pieces[i]->max_index_);
      dropped_ += pieces[i]->dropped_;
    }
    line_ = lines;
    // The four arrays are allocated (and zero-filled: page faults and memset) concurrently.
    run(4, [&](std::size_t a) {
      switch (a) {
        case 0: row_ptr_.assign(row0[k] + 1, 0); break;
        case 1: std::vector<Index>(ent0[k]).swap(col_); break;
        case 2: std::vector<Value>(ent0[k]).swap(val_); break;
        default: std::vector<double>(row0[k]).swap(labels_); break;
      }
    });
    run(k, [&](std::size_t i) {
      Parser& p = *pieces[i];
      const auto off = static_cast<Offset>(ent0[i]);
      for (std::size_t r = 1; r < p.row_ptr_.size(); ++r) row_ptr_[row0[i] + r] = p.row_ptr_[r] + off;
      std::copy(p.col_.begin(), p.col_.end(), col_.begin() + static_cast<std::ptrdiff_t>(ent0[i]));
      std::copy(p.val_.begin(), p.val_.end(), val_.begin() + static_cast<std::ptrdiff_t>(ent0[i]));
      std::copy(p.labels_.begin(), p.labels_.end(),
                labels_.begin() + static_cast<std::ptrdiff_t>(row0[i]));
      std::vector<Index>().swap(p.col_);  // free each piece as soon as it is copied
      std::vector<Value>().swap(p.val_);
      std::vector<double>().swap(p.labels_);
      std::vector<Offset>().swap(p.row_ptr_);
    });
  }

  void Reserve(std::uint64_t text_bytes) {
    // Rough guess (about 8 text bytes per entry); the vectors grow if it is low.
    const auto entries = static_cast<std::size_t>(std::min<std::uint64_t>(text_bytes / 8, 1ULL << 28));
    col_.reserve(entries);
    val_.reserve(entries);
  }

  void Line(const char* p, const char* e) {
    ++line_;
    while (p < e && Cls(*p) == 1) ++p;
    if (p == e || *p == '#') return;  // blank or comment line
    const char* t = p;
    while (p < e && Cls(*p) == 0) ++p;
    Label(t, p);

    long long prev = 0;  // previous 1-based index
    bool first = true;
    for (;;) {
      while (p < e && Cls(*p) == 1) ++p;
      if (p == e || *p == '#') break;
      t = p;
      const char* colon = nullptr;
      while (p < e && Cls(*p) == 0) {
        if (*p == ':' && colon == nullptr) colon = p;
        ++p;
      }
      const std::string_view tok(t, static_cast<std::size_t>(p - t));
      if (colon == nullptr) Bad(tok, "missing ':' in feature (expected index:value)");
      if (first && colon - t == 3 && std::memcmp(t, "qid", 3) == 0) {
        long long q = 0;
        auto [qp, qec] = std::from_chars(colon + 1, p, q);
        if (qec != std::errc() || qp != p || colon + 1 == p) Bad(tok, "bad qid (expected qid:N)");
        first = false;
        continue;
      }
      first = false;

      // Index: decimal digits, 1..INT32_MAX.
      const char* q = t;
      if (q == colon) Bad(tok, "empty index");
      if (*q == '-') Bad(tok, "negative index (indices are 1-based)");
      if (*q == '+') ++q;
      if (q == colon) Bad(tok, "bad index (not an integer)");
      long long idx = 0;
      for (; q < colon; ++q) {
        const unsigned d = static_cast<unsigned char>(*q) - static_cast<unsigned>('0');
        if (d > 9) {
          Bad(tok, HasBinaryByte(tok) ? "binary data (not a LIBSVM text file?)"
                                      : "bad index (not an integer)");
        }
        idx = idx * 10 + d;
        if (idx > std::numeric_limits<Index>::max()) {
          Bad(tok, "index exceeds " + std::to_string(std::numeric_limits<Index>::max()));
        }
      }
      if (idx == 0) Bad(tok, "bad index 0 (indices are 1-based)");
      if (idx <= prev) {
        Bad(tok, idx == prev ? "duplicate index " + std::to_string(idx)
                             : "indices not increasing (" + std::to_string(idx) + " after " +
                                   std::to_string(prev) + ")");
      }
      prev = idx;

      // Value.
      if (colon + 1 == p) Bad(tok, "empty value");
      const float v = ParseValue(tok, colon + 1, p);
      if (opt_.num_features > 0 && idx > opt_.num_features) {
        if (opt_.ignore_extra_features) {
          ++dropped_;
          continue;
        }
        Bad(tok, "index " + std::to_string(idx) + " exceeds the number of features (" +
                     std::to_string(opt_.num_features) + ")");
      }
      if (idx > max_index_) max_index_ = idx;
      col_.push_back(static_cast<Index>(idx - 1));
      val_.push_back(v);
    }
    row_ptr_.push_back(static_cast<Offset>(col_.size()));
  }

  Dataset Finish(ReadInfo& info) {
    info.lines = line_ - (opt_.first_line - 1);
    info.dropped_entries = dropped_;
    info.entries = static_cast<Offset>(col_.size()) + dropped_;
    if (labels_.empty()) Fail(file_, 0, {}, "no data rows");

    const std::size_t n = labels_.size();
    std::vector<double> y(n);
    double pos = std::numeric_limits<double>::quiet_NaN();
    double neg = std::numeric_limits<double>::quiet_NaN();

    // Label counts (for info) when we tracked classes; otherwise count the two groups below.
    std::sort(classes_.begin(), classes_.end(),
              [](const ClassCount& a, const ClassCount& b) { return a.value < b.value; });

    auto map_with = [&](double p) {
      Offset np = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const bool is_pos = labels_[i] == p;
        y[i] = is_pos ? 1.0 : -1.0;
        np += is_pos;
      }
      return np;
    };

    if (opt_.fixed_positive_label) {
      pos = *opt_.fixed_positive_label;
      map_with(pos);
      // The negative value is known only if every other row carries the same label.
      bool one_other = true;
      bool seen = false;
      for (double l : labels_) {
        if (l == pos) continue;
        if (!seen) {
          neg = l;
          seen = true;
        } else if (l != neg) {
          one_other = false;
          break;
        }
      }
      if (!one_other) neg = std::numeric_limits<double>::quiet_NaN();
      // Counts per original value.
      std::unordered_map<double, Offset> counts;
      for (double l : labels_) ++counts[l];
      info.label_counts.assign(counts.begin(), counts.end());
      std::sort(info.label_counts.begin(), info.label_counts.end());
    } else {
      // (More than two classes without positive_label were rejected while reading, with the
      // lines they first occur on.)
      for (const auto& c : classes_) info.label_counts.emplace_back(c.value, c.count);
      pos = ChoosePositiveLabel(info.label_counts, opt_, file_);
      map_with(pos);
      // The original -1 value is known when it is the only other class.
      if (classes_.size() <= 2) {
        for (const auto& c : classes_) {
          if (c.value != pos) neg = c.value;
        }
      }
    }

    const Index d =
        opt_.num_features > 0 ? opt_.num_features : static_cast<Index>(max_index_);
    if (col_.capacity() > col_.size() + col_.size() / 4 + 1024) {
      col_.shrink_to_fit();
      val_.shrink_to_fit();
    }
    Dataset ds = Dataset::FromCsr(d, std::move(row_ptr_), std::move(col_), std::move(val_),
                                  std::move(y));
    ds.positive_label = pos;
    ds.negative_label = neg;
    ds.DensifyIfDense(opt_.densify_at);
    return ds;
  }

 private:
  [[noreturn]] void Bad(std::string_view tok, const std::string& reason) const {
    Fail(file_, line_, tok, reason);
  }

  float ParseValue(std::string_view tok, const char* b, const char* e) const {
    // Fast path: a short unsigned integer (binary features "j:1") is exact as a float.
    if (e - b <= 6) {
      unsigned acc = 0;
      const char* c = b;
      for (; c < e; ++c) {
        const unsigned dig = static_cast<unsigned char>(*c) - static_cast<unsigned>('0');
        if (dig > 9) break;
        acc = acc * 10 + dig;
      }
      if (c == e) return static_cast<float>(acc);
    }
    float v = 0;
    switch (ParseReal(b, e, v)) {
      case Num::kOk: break;
      case Num::kSyntax:
        Bad(tok, HasBinaryByte(tok) ? "binary data (not a LIBSVM text file?)"
                                    : "bad value (not a number)");
      case Num::kOverflow: Bad(tok, "value out of range for float32");
      case Num::kNotFinite: Bad(tok, "value is not finite (nan/inf)");
    }
    return v;
  }

  void Label(const char* t, const char* e) {
    const std::string_view tok(t, static_cast<std::size_t>(e - t));
    double y = 0;
    switch (ParseReal(t, e, y)) {
      case Num::kOk: break;
      case Num::kSyntax:
        Bad(tok, HasBinaryByte(tok) ? "binary data (not a LIBSVM text file?)"
                                    : "bad label (not a number)");
      case Num::kOverflow: Bad(tok, "label out of range");
      case Num::kNotFinite: Bad(tok, "label is not finite (nan/inf)");
    }
    if (y == 0) y = 0.0;  // -0 and 0 are one class
    labels_.push_back(y);
    if (track_classes_) NoteClass(y, tok, 1);
  }

  // `count` rows of class y, the first of them on line_ (count > 1 only from MergeClasses).
  void NoteClass(double y, std::string_view tok, Offset count) {
    const std::size_t k = classes_.size();
    if (k > 0 && classes_[0].value == y) {
      classes_[0].count += count;
      return;
    }
    if (k > 1 && classes_[1].value == y) {
      classes_[1].count += count;
      return;
    }
    if (k > 2) {
      auto it = class_index_.find(y);
      if (it != class_index_.end()) {
        classes_[it->second].count += count;
        return;
      }
    }
    if (k == 2 && !opt_.positive_label && !chunk_) {
      Bad(tok, "more than two classes (labels " + NumberText(classes_[0].value) + " (line " +
                   std::to_string(classes_[0].first_line) + "), " +
                   NumberText(classes_[1].value) + " (line " +
                   std::to_string(classes_[1].first_line) + ") and " + NumberText(y) +
                   "); choose the +1 class with a positive label");
    }
    classes_.push_back({y, count, line_, std::string(tok.substr(0, 256))});
    if (classes_.size() > 2) {
      if (class_index_.empty()) {
        for (std::size_t j = 0; j < classes_.size(); ++j) class_index_[classes_[j].value] = j;
      } else {
        class_index_[y] = classes_.size() - 1;
      }
    }
  }

  const std::string& file_;
  const ReadOptions& opt_;
  long long line_ = 0;
  long long max_index_ = 0;
  Offset dropped_ = 0;
  bool chunk_ = false;
  bool track_classes_ = true;
  std::vector<Offset> row_ptr_{0};
  std::vector<Index> col_;
  std::vector<Value> val_;
  std::vector<double> labels_;
  std::vector<ClassCount> classes_;
  std::unordered_map<double, std::size_t> class_index_;
};


// ---------------------------------------------------------------------------------------------
// Parallel parse.
//
// The decompressed text is read in batches of tens of MiB by a reader thread (the next batch is
// read while the current one is parsed). A batch is cut into chunks at line starts; the chunks are
// parsed concurrently, each by its own Parser in chunk mode (local line numbers, classes only
// recorded); then, in file order, the chunks' classes are merged (the "more than two classes"
// check), the first error is rethrown with its global line number, and finally the chunks' CSR
// pieces are copied into one set of arrays. The result, the ReadInfo and every error are those
// of the sequential loop (ReadSequential below):
//  * The reader issues exactly the sequential loop's reads (same sizes: it mirrors the 1 MiB
//    buffer, its carried-over line and its growth), so decompression errors and the memory check
//    happen after the same bytes, and the long-line refusal (CheckLineFits) fires at the same
//    point for an endless line (/dev/zero).
//  * A line as long as the sequential buffer runs through the same CheckLineFits calls before it
//    is parsed (LongLineCheck); whether they fail depends only on the line's length.
//  * Errors in a chunk stop that chunk; chunks after the first failed one stop early. Events
//    of one line come in the sequential order: long-line check, label class, then the rest.

// Sequential buffer growth for a line of `len` bytes (what the sequential loop holds of it: the
// line without its '\n', plus a leading byte-order mark on line 1).
void LongLineCheck(const std::string& shown, long long line, std::size_t len) {
  for (std::size_t s = kBlock; s <= len; s *= 2) CheckLineFits(shown, line, s * 2);
}

// Runs fn(i) for i in [0, n) on up to `threads` threads. ThreadSanitizer builds
// (MEMSGD_STD_THREADS) use std::thread, as the worker pool does (include/memsgd/worker_pool.hpp).
class ChunkRunner {
 public:
  // threads: 0 = all cores; more than the cores is capped (oversubscription only slows parsing).
  explicit ChunkRunner(int threads) : threads_(threads) {
#ifndef MEMSGD_STD_THREADS
    if (threads_ > 0) {
      threads_ = std::min(threads_, std::max(1, tbb::info::default_concurrency()));
      arena_ = std::make_unique<tbb::task_arena>(threads_);
    }
#endif
  }
  template <class F>
  void operator()(std::size_t n, F&& fn) {
    if (n == 0) return;
#ifdef MEMSGD_STD_THREADS
    const auto t = std::min<std::size_t>(n, static_cast<std::size_t>(Threads()));
    if (t <= 1) {
      for (std::size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> pool;
    pool.reserve(t);
    for (std::size_t w = 0; w < t; ++w) {
      pool.emplace_back([&] {
        for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
      });
    }
    for (auto& th : pool) th.join();
#else
    auto body = [&] {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1),
                        [&](const tbb::blocked_range<std::size_t>& r) {
                          for (std::size_t i = r.begin(); i != r.end(); ++i) fn(i);
                        });
    };
    if (arena_) arena_->execute(body);
    else body();
#endif
  }
  // Runs f() inside this runner's arena, so that what it starts in parallel (the dense copy of
  // Dataset::Densify) uses the same threads as the parse.
  template <class F>
  decltype(auto) Within(F&& f) {
#ifndef MEMSGD_STD_THREADS
    if (arena_) return arena_->execute(std::forward<F>(f));
#endif
    return f();
  }
  int Threads() const {
    if (threads_ > 0) return threads_;
#ifdef MEMSGD_STD_THREADS
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#else
    return tbb::this_task_arena::max_concurrency();
#endif
  }

 private:
  int threads_;
#ifndef MEMSGD_STD_THREADS
  std::unique_ptr<tbb::task_arena> arena_;
#endif
};

// One batch of text: [0, parse_end) holds complete lines (the carried-over start of a line from
// the previous batch first); [parse_end, len) is the start of a line continued in the next batch.
// Text bytes (not zero-filled: a batch is written once by the reader).
struct TextBuffer {
  std::unique_ptr<char[]> p;
  std::size_t cap = 0;
  char* data() const noexcept { return p.get(); }
  std::size_t size() const noexcept { return cap; }
  // Grows to at least n bytes keeping the first `keep`.
  void Grow(std::size_t n, std::size_t keep) {
    if (n <= cap) return;
    n = std::max(n, cap + cap / 2);
    std::unique_ptr<char[]> q(new char[n]);
    if (keep > 0) std::memcpy(q.get(), p.get(), keep);
    p = std::move(q);
    cap = n;
  }
};

struct Batch {
  TextBuffer buf;
  std::size_t len = 0;
  std::size_t parse_end = 0;
  std::size_t skip = 0;  // a byte-order mark at the start of the text
  bool eof = false;
  // What stopped the reading (after the lines before it are parsed): a read or decompression
  // error, or (next_line) the long-line refusal of the line continued after parse_end.
  std::exception_ptr error;
  bool error_next_line = false;
};

// Reads batches with the sequential loop's read sizes (see above).
class BatchReader {
 public:
  BatchReader(Source& src, const std::string& shown, std::size_t target)
      : src_(src), shown_(shown), target_(target) {}

  std::uint64_t TextBytes() const noexcept { return text_bytes_; }

  // `start` holds `carried` bytes: the unfinished line of the previous batch.
  Batch Next(TextBuffer start, std::size_t carried) {
    Batch b;
    b.buf = std::move(start);
    b.len = carried;
    b.buf.Grow(target_ + size_, b.len);
    for (;;) {
      if (b.len >= target_ && b.parse_end > 0) break;
      if (have_ == size_) {  // the sequential buffer is full of one unfinished line: it grows
        try {
          CheckLineFits(shown_, 0, size_ * 2);
        } catch (const ParseError&) {
          b.error = std::current_exception();
          b.error_next_line = true;
          break;
        }
        size_ *= 2;
      }
      const std::size_t cap = size_ - have_;
      if (b.buf.size() - b.len < cap) b.buf.Grow(b.len + cap, b.len);
      std::size_t got = 0;
      try {
        got = src_.Read(b.buf.data() + b.len, cap);
      } catch (const ParseError&) {
        if (first_) throw;
        b.error = std::current_exception();
        break;
      }
      text_bytes_ += got;
      if (first_) {  // the memory check of the sequential loop, on the same first block
        first_ = false;
        MemoryCheck(b.buf.data() + b.len, got);
      }
      char* const fresh = b.buf.data() + b.len;
      b.len += got;
      if (got == 0) {
        b.eof = true;
        b.parse_end = b.len;
        break;
      }
      have_ += got;
      if (at_start_ && have_ >= 3) {
        at_start_ = false;
        if (src_.AtFileStart() && std::memcmp(b.buf.data(), "\xEF\xBB\xBF", 3) == 0) b.skip = 3;
        // The first scan covers the whole buffer (a newline before the third byte included).
        if (const void* nl = memrchr(b.buf.data(), '\n', b.len)) {
          b.parse_end = static_cast<std::size_t>(static_cast<const char*>(nl) - b.buf.data()) + 1;
          have_ = b.len - b.parse_end;
        }
      } else if (!at_start_) {
        if (const void* nl = memrchr(fresh, '\n', got)) {
          b.parse_end = static_cast<std::size_t>(static_cast<const char*>(nl) - b.buf.data()) + 1;
          have_ = b.len - b.parse_end;
        }
      }
    }
    if (b.skip > b.parse_end) b.skip = 0;
    return b;
  }

 private:
  void MemoryCheck(const char* sample, std::size_t got) {
    if (src_.SizeHint() == 0 || got == 0) return;
    double total = 0;
    const char* how = "file size";
    if (src_.Kind() == Compression::kNone) {
      total = static_cast<double>(src_.SizeHint());
    } else {
      const double consumed =
          static_cast<double>(std::max<std::uint64_t>(src_.RawConsumed(), 1));
      total = static_cast<double>(src_.SizeHint()) * static_cast<double>(got) / consumed;
      how = "compressed size x the expansion so far";
    }
    CheckFitsInMemory(shown_, sample, got, std::max(total, static_cast<double>(got)), how);
  }

  Source& src_;
  const std::string& shown_;
  std::size_t target_;
  // The sequential loop's buffer: its size and the bytes of the unfinished line it holds.
  std::size_t size_ = kBlock;
  std::size_t have_ = 0;
  bool at_start_ = true;
  bool first_ = true;
  std::uint64_t text_bytes_ = 0;
};

// One chunk of a batch and what parsing it gave.
struct Chunk {
  const char* begin = nullptr;
  const char* end = nullptr;
  std::size_t first_line_extra = 0;  // bytes before begin that belong to its first line (BOM)
  std::unique_ptr<Parser> parser;
  bool failed = false;  // ParseError at local line err_line (its token and reason)
  long long err_line = 0;
  std::string err_token, err_reason;
  std::exception_ptr other;  // anything else (std::bad_alloc)
};

constexpr std::size_t kNoError = std::numeric_limits<std::size_t>::max();

void ParseChunk(Chunk& c, std::size_t index, std::atomic<std::size_t>& first_failed,
                const std::string& shown, const ReadOptions& opt) {
  if (first_failed.load(std::memory_order_relaxed) < index) return;
  auto note_failure = [&] {
    std::size_t cur = first_failed.load(std::memory_order_relaxed);
    while (index < cur && !first_failed.compare_exchange_weak(cur, index, std::memory_order_relaxed)) {
    }
  };
  try {
    c.parser = std::make_unique<Parser>(shown, opt, /*chunk=*/true);
    Parser& parser = *c.parser;
    parser.Reserve(static_cast<std::uint64_t>(c.end - c.begin));
    const char* p = c.begin;
    std::size_t extra = c.first_line_extra;
    unsigned count = 0;
    while (p < c.end) {
      const auto* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(c.end - p)));
      const char* le = nl ? nl : c.end;
      const auto len = static_cast<std::size_t>(le - p) + extra;
      extra = 0;
      if (len >= kBlock) LongLineCheck(shown, parser.LinesSeen() + 1, len);
      parser.Line(p, le);
      p = nl ? nl + 1 : c.end;
      if ((++count & 1023U) == 0 && first_failed.load(std::memory_order_relaxed) < index) return;
    }
  } catch (const ParseError& e) {
    c.failed = true;
    c.err_line = e.Line();
    c.err_token = e.Token();
    c.err_reason = e.Reason();
    note_failure();
  } catch (...) {
    c.other = std::current_exception();
    note_failure();
  }
}

Dataset ReadParallel(Source& src, const std::string& shown, const ReadOptions& options,
                     ReadInfo& info, ChunkRunner& run) {
  const int threads = std::max(1, run.Threads());
  // Bytes per batch: 16 MiB per thread (16-256 MiB); with forced small chunks (tests) small
  // batches, so that small files cross batch boundaries too.
  const std::size_t target =
      options.chunk_bytes > 0
          ? options.chunk_bytes * 4 * static_cast<std::size_t>(threads)
          : std::clamp<std::size_t>(static_cast<std::size_t>(threads) << 24, std::size_t{16} << 20,
                                    std::size_t{256} << 20);
  BatchReader reader(src, shown, target);
  Parser all(shown, options);
  std::vector<std::unique_ptr<Parser>> pieces;
  long long lines = options.first_line - 1;  // the file line before the current batch

  Batch cur = reader.Next({}, 0);
  for (;;) {
    // Start reading the next batch (the carried-over line first) while this one is parsed.
    std::future<Batch> next;
    const bool more = !cur.eof && !cur.error;
    if (more) {
      const std::size_t carried = cur.len - cur.parse_end;
      TextBuffer start;
      start.Grow(std::max(carried, kBlock), 0);
      if (carried > 0) std::memcpy(start.data(), cur.buf.data() + cur.parse_end, carried);
      next = std::async(std::launch::async, [&reader, carried, s = std::move(start)]() mutable {
        return reader.Next(std::move(s), carried);
      });
    }

    // Chunks: about chunk bytes each, cut after a '\n'.
    const char* const text = cur.buf.data() + cur.skip;
    const char* const text_end = cur.buf.data() + cur.parse_end;
    const auto size = static_cast<std::size_t>(text_end - text);
    const std::size_t chunk_bytes =
        options.chunk_bytes > 0
            ? options.chunk_bytes
            : std::clamp<std::size_t>(size / (4 * static_cast<std::size_t>(threads)) + 1,
                                      std::size_t{256} << 10, std::size_t{16} << 20);
    std::vector<Chunk> chunks;
    for (const char* b = text; b < text_end;) {
      const char* e = text_end;
      if (static_cast<std::size_t>(text_end - b) > chunk_bytes) {
        const char* probe = b + chunk_bytes - 1;
        const auto* nl = static_cast<const char*>(
            std::memchr(probe, '\n', static_cast<std::size_t>(text_end - probe)));
        e = nl ? nl + 1 : text_end;
      }
      Chunk c;
      c.begin = b;
      c.end = e;
      chunks.push_back(std::move(c));
      b = e;
    }
    if (!chunks.empty() && cur.skip > 0) chunks.front().first_line_extra = cur.skip;
    std::atomic<std::size_t> first_failed{kNoError};
    run(chunks.size(), [&](std::size_t i) { ParseChunk(chunks[i], i, first_failed, shown, options); });

    // In file order: classes, the first error, line numbers.
    for (Chunk& c : chunks) {
      if (all.TracksClasses() && c.parser) all.MergeClasses(*c.parser, lines);
      if (c.failed) throw ParseError(shown, c.err_line > 0 ? lines + c.err_line : 0, c.err_token, c.err_reason);
      if (c.other) std::rethrow_exception(c.other);
      lines += c.parser->LinesSeen();
      pieces.push_back(std::move(c.parser));
    }
    if (cur.error) {
      if (!cur.error_next_line) std::rethrow_exception(cur.error);
      try {
        std::rethrow_exception(cur.error);
      } catch (const ParseError& e) {
        throw ParseError(shown, lines + 1, e.Token(), e.Reason());
      }
    }
    if (!more) break;
    cur = Batch{};  // free this batch's text before taking the next
    cur = next.get();
  }
  info.text_bytes = reader.TextBytes();
  all.AdoptPieces(pieces, lines, run);
  pieces.clear();
  return all.Finish(info);
}

// The sequential loop: 1 MiB blocks, lines parsed as they complete.
Dataset ReadSequential(Source& src, const std::string& shown, const ReadOptions& options,
                       ReadInfo& info) {
  Parser parser(shown, options);
  if (src.Kind() == Compression::kNone) parser.Reserve(src.SizeHint());
  else parser.Reserve(src.SizeHint() * 4);

  std::vector<char> buf(kBlock);
  std::size_t have = 0;  // carried-over bytes of an unfinished line at the front of buf
  bool at_start = true;
  bool eof = false;
  bool memory_checked = false;
  while (!eof) {
    if (have == buf.size()) {  // a line longer than the buffer
      CheckLineFits(shown, parser.LinesSeen() + 1, buf.size() * 2);
      buf.resize(buf.size() * 2);
    }
    const std::size_t got = src.Read(buf.data() + have, buf.size() - have);
    info.text_bytes += got;
    if (got == 0) eof = true;
    if (!memory_checked) {
      // The first block: estimate what the whole file needs (see CheckFitsInMemory).
      memory_checked = true;
      if (src.SizeHint() > 0 && got > 0) {
        double total = 0;
        const char* how = "file size";
        if (src.Kind() == Compression::kNone) {
          total = static_cast<double>(src.SizeHint());
        } else {
          const double consumed = static_cast<double>(std::max<std::uint64_t>(src.RawConsumed(), 1));
          total = static_cast<double>(src.SizeHint()) * static_cast<double>(got) / consumed;
          how = "compressed size x the expansion so far";
        }
        CheckFitsInMemory(shown, buf.data(), got, std::max(total, static_cast<double>(got)), how);
      }
    }
    // Carried-over bytes hold no '\n', so the search for line ends can start after them.
    std::size_t scanned_from = have;
    have += got;
    char* const b = buf.data();
    char* const end = b + have;
    char* p = b;
    if (at_start && (have >= 3 || eof)) {
      at_start = false;
      scanned_from = 0;
      if (have >= 3 && src.AtFileStart() && std::memcmp(b, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;  // UTF-8 BOM
      }
    }
    if (!at_start) {
      char* search = std::max(p, b + scanned_from);
      for (;;) {
        auto* nl = static_cast<char*>(std::memchr(search, '\n', static_cast<std::size_t>(end - search)));
        if (nl == nullptr) break;
        parser.Line(p, nl);
        p = nl + 1;
        search = p;
      }
      if (eof && p < end) {
        parser.Line(p, end);
        p = end;
      }
    }
    have = static_cast<std::size_t>(end - p);
    if (have > 0 && p != b) std::memmove(b, p, have);
  }
  return parser.Finish(info);
}

// ---------------------------------------------------------------------------------------------
// Shards: counting and finding rows without parsing them (CountLibsvmRows, SeekLibsvmRow).
//
// Only the head of each line is looked at (its first non-blank byte, and for CountLibsvmRows the
// label token); the rest is skipped with memchr, in large blocks. The classification is the
// parser's (Parser::Line): blanks are the bytes of class 1, a line whose first non-blank byte is
// '#' or that has none is skipped, a label token ends at the first byte not of class 0 (or at
// the '\n', which the parser never sees); a UTF-8 byte-order mark at the file's start belongs to
// no line (as there, a file of just the mark has no lines).

constexpr std::size_t kScanBlock = std::size_t{4} << 20;
// A label token carried over a block boundary is kept up to this length; a longer one is not a
// number anyone writes, and is counted as a row without a label (as a bad label is).
constexpr std::size_t kMaxLabel = std::size_t{1} << 20;

// Visits the lines of `in`, whose first byte is at file offset `from`, in file order.
// at_line_start: `from` is a line start; otherwise the bytes up to the first '\n' are skipped.
// start(offset) is called when a line starts (at a byte of it) and returns false to stop there;
// line(offset, row, label) once its head is read: whether it is a data row and (want_label) its
// label token; false stops.
template <class Start, class Line>
void ScanLines(FdInput& in, std::uint64_t from, bool at_line_start, bool want_label,
               Start&& start, Line&& line) {
  enum class State { kStart, kBlanks, kLabel, kSkip };
  State state = at_line_start ? State::kStart : State::kSkip;
  const std::unique_ptr<char[]> buf(new char[kScanBlock]);  // (not zero-filled: read into)
  std::string token;  // the part of a label token in earlier blocks
  std::uint64_t pos = from;  // the file offset of buf[0]
  std::uint64_t line_start = 0;
  bool bom = false;
  for (;;) {
    const std::size_t got = in.Read(buf.get(), kScanBlock);
    if (got == 0) break;
    const char* p = buf.get();
    const char* const e = p + got;
    if (pos == 0 && state == State::kStart && got >= 3 &&
        std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
      p += 3;
      bom = true;
    }
    while (p < e) {
      switch (state) {
        case State::kSkip: {
          const auto* nl =
              static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(e - p)));
          if (nl == nullptr) {
            p = e;
            break;
          }
          p = nl + 1;
          state = State::kStart;
          break;
        }
        case State::kStart:
          line_start = bom ? 0 : pos + static_cast<std::uint64_t>(p - buf.get());
          bom = false;
          if (!start(line_start)) return;
          token.clear();
          state = State::kBlanks;
          [[fallthrough]];
        case State::kBlanks:
          while (p < e && Cls(*p) == 1) ++p;
          if (p == e) break;
          if (*p == '\n' || *p == '#') {  // blank or comment line
            if (!line(line_start, false, std::string_view())) return;
            state = State::kSkip;
            break;
          }
          if (!want_label) {
            if (!line(line_start, true, std::string_view())) return;
            state = State::kSkip;
            break;
          }
          state = State::kLabel;
          [[fallthrough]];
        case State::kLabel: {
          const char* t = p;
          while (p < e && Cls(*p) == 0 && *p != '\n') ++p;
          const auto len = static_cast<std::size_t>(p - t);
          if (p == e) {  // continued in the next block
            if (token.size() <= kMaxLabel) token.append(t, std::min(len, kMaxLabel + 1));
            break;
          }
          std::string_view label(t, len);
          if (!token.empty()) {
            if (token.size() <= kMaxLabel) token.append(t, std::min(len, kMaxLabel + 1));
            label = token;
          }
          if (!line(line_start, true, label.size() <= kMaxLabel ? label : std::string_view())) {
            return;
          }
          state = State::kSkip;
          break;
        }
      }
    }
    pos += got;
  }
  // The last line ends at the end of the file (no final newline) while its head is read.
  if (state == State::kBlanks) line(line_start, false, std::string_view());
  if (state == State::kLabel) {
    const bool fits = token.size() <= kMaxLabel;
    line(line_start, true, fits ? std::string_view(token) : std::string_view());
  }
}

// Rows per label value: a few classes are searched in a short array, many through a hash map.
class LabelTally {
 public:
  void Add(double y) {
    const std::size_t k = std::min(counts_.size(), kLinear);
    for (std::size_t i = 0; i < k; ++i) {
      if (counts_[i].first == y) {
        ++counts_[i].second;
        return;
      }
    }
    if (counts_.size() >= kLinear) {
      const auto [it, fresh] = index_.try_emplace(y, counts_.size());
      if (!fresh) {
        ++counts_[it->second].second;
        return;
      }
    }
    counts_.emplace_back(y, 1);
  }
  // Ascending by value.
  std::vector<std::pair<double, Offset>> Sorted() && {
    std::sort(counts_.begin(), counts_.end());
    return std::move(counts_);
  }

 private:
  static constexpr std::size_t kLinear = 8;
  std::vector<std::pair<double, Offset>> counts_;  // in order of first appearance
  std::unordered_map<double, std::size_t> index_;  // where values after the first kLinear are
};

}  // namespace

ParseError::ParseError(std::string file, long long line, std::string token, std::string reason)
    : std::runtime_error(FormatParseError(file, line, token, reason)),
      file_(std::move(file)),
      line_(line),
      token_(std::move(token)),
      reason_(std::move(reason)) {}

Dataset ReadLibsvm(const std::string& path, const ReadOptions& options) {
  ReadInfo info;
  return ReadLibsvm(path, options, info);
}

Dataset ReadLibsvm(const std::string& path, const ReadOptions& options, ReadInfo& info) {
  info = ReadInfo{};
  const std::string shown = ShownName(path);
  if (options.num_features < 0) Fail(shown, 0, {}, "negative num_features in ReadOptions");
  if (options.threads < 0) Fail(shown, 0, {}, "negative threads in ReadOptions");
  if (options.first_line < 1) Fail(shown, 0, {}, "first_line below 1 in ReadOptions");
  const ByteRange range{options.range_begin, options.range_end};
  const bool ranged = range.begin != ByteRange{}.begin || range.end != ByteRange{}.end;
  Source src(path, shown, ranged ? &range : nullptr);
  info.compression = CompressionName(src.Kind());
  ChunkRunner run(options.threads);
  // One thread, or a small plain file: the sequential loop (no reader thread, no copy).
  const bool small = src.Kind() == Compression::kNone && src.SizeHint() > 0 &&
                     src.SizeHint() < kSmallInput;
  if (options.chunk_bytes == 0 && (small || run.Threads() <= 1)) {
    return run.Within([&] { return ReadSequential(src, shown, options, info); });
  }
  return run.Within([&] { return ReadParallel(src, shown, options, info, run); });
}

RowCount CountLibsvmRows(const std::string& path, std::uint64_t begin, std::uint64_t end) {
  const std::string shown = ShownName(path);
  // From the byte before `begin`: whether it is a '\n' says whether a line starts at `begin`.
  const ByteRange range{begin > 0 ? begin - 1 : 0};
  FdInput in(path, shown, &range);
  RowCount out;
  out.aligned_begin = in.FileSize();
  if (begin >= in.FileSize()) return out;
  bool aligned = false;
  LabelTally tally;
  ScanLines(
      in, range.begin, /*at_line_start=*/begin == 0, /*want_label=*/true,
      [&](std::uint64_t at) {
        if (!aligned) {
          aligned = true;
          out.aligned_begin = at;
        }
        return at < end;
      },
      [&](std::uint64_t, bool row, std::string_view label) {
        ++out.lines;
        if (!row) return true;
        ++out.rows;
        // A label that does not parse is left for ReadLibsvm to report, with its line number.
        double y = 0;
        if (!label.empty() && ParseReal(label.data(), label.data() + label.size(), y) == Num::kOk) {
          tally.Add(y == 0 ? 0.0 : y);  // -0 and 0 are one class
        }
        return true;
      });
  out.label_counts = std::move(tally).Sorted();
  return out;
}

std::uint64_t SeekLibsvmRow(const std::string& path, std::uint64_t from, Offset skip,
                            long long* lines_skipped) {
  const std::string shown = ShownName(path);
  if (skip < 0) Fail(shown, 0, {}, "negative row count for SeekLibsvmRow");
  const ByteRange range{from};
  FdInput in(path, shown, &range);
  std::uint64_t found = in.FileSize();
  long long lines = 0;
  Offset rows = 0;
  if (from < in.FileSize()) {
    ScanLines(
        in, from, /*at_line_start=*/true, /*want_label=*/false, [](std::uint64_t) { return true; },
        [&](std::uint64_t at, bool row, std::string_view) {
          if (row && rows++ == skip) {
            found = at;
            return false;
          }
          ++lines;
          return true;
        });
  }
  if (lines_skipped) *lines_skipped = lines;
  return found;
}

double ChoosePositiveLabel(const std::vector<std::pair<double, Offset>>& label_counts,
                           const ReadOptions& options, const std::string& path) {
  const std::string shown = ShownName(path);
  if (label_counts.empty()) Fail(shown, 0, {}, "no data rows");
  auto values = [&] {
    std::string have;
    for (std::size_t k = 0; k < label_counts.size() && k < 10; ++k) {
      have += (k ? ", " : "") + NumberText(label_counts[k].first);
    }
    if (label_counts.size() > 10) have += ", ...";
    return have;
  };
  if (options.positive_label) {
    const double pos = *options.positive_label;
    const bool present = std::any_of(label_counts.begin(), label_counts.end(),
                                     [&](const auto& c) { return c.first == pos; });
    if (!present) {
      Fail(shown, 0, {},
           "positive label " + NumberText(pos) + " does not occur (labels: " + values() + ")");
    }
    return pos;
  }
  if (label_counts.size() == 1) {
    // One class only: +1 if its value is positive, else -1 (NaN equals no label: every row -1).
    const double c = label_counts[0].first;
    return c > 0 ? c : std::numeric_limits<double>::quiet_NaN();
  }
  if (label_counts.size() == 2) return std::max(label_counts[0].first, label_counts[1].first);
  Fail(shown, 0, {},
       "more than two classes (labels " + values() +
           "); choose the +1 class with a positive label");
}

std::vector<unsigned char> ReadFileBytes(const std::string& path) {
  const std::string shown = ShownName(path);
  Source src(path, shown);
  std::vector<unsigned char> out;
  if (src.Kind() == Compression::kNone && src.SizeHint() > 0) out.reserve(src.SizeHint());
  std::size_t len = 0;
  for (;;) {
    if (out.size() - len < kBlock) out.resize(std::max(out.size() * 2, len + kBlock));
    const std::size_t got = src.Read(reinterpret_cast<char*>(out.data() + len), out.size() - len);
    if (got == 0) break;
    len += got;
  }
  out.resize(len);
  return out;
}

}  // namespace memsgd
