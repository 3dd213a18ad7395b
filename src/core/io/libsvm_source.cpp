// The LIBSVM reader's byte source (libsvm_source.hpp): reading a file descriptor, a byte range of
// a plain file, and the gzip, bzip2 and xz decoders; also ReadFileBytes (a whole file into memory,
// decompressed; used by the IDX reader).
#include "libsvm_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "libsvm_parser.hpp"
#include "memsgd/libsvm.hpp"

namespace memsgd {

namespace io {

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

FdInput::FdInput(const std::string& path, const std::string& shown, const ByteRange* range)
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

std::size_t FdInput::Read(void* buf, std::size_t n) {
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

std::size_t FdInput::ReadFd(void* buf, std::size_t n) {
  for (;;) {
    const ssize_t got = ::read(fd_, buf, n);
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno == EINTR) continue;
    Fail(shown_, 0, {}, std::string("read error: ") + std::strerror(errno));
  }
}

void FdInput::Close() noexcept {
  if (owned_ && fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Source::Source(const std::string& path, const std::string& shown, const ByteRange* range)
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

Source::~Source() {
  switch (kind_) {
    case Compression::kNone: break;
    case Compression::kGzip: inflateEnd(&zs_); break;
    case Compression::kBzip2:
      if (bz_active_) BZ2_bzDecompressEnd(&bz_);
      break;
    case Compression::kXz: lzma_end(&xz_); break;
  }
}

void Source::RefillRaw(bool keep) {
  if (!keep) {
    raw_pos_ = 0;
    raw_len_ = 0;
  }
  const std::size_t got = in_.Read(raw_.data() + raw_len_, raw_.size() - raw_len_);
  if (got == 0) raw_eof_ = true;
  raw_len_ += got;
  raw_total_ += got;
}

void Source::Corrupt(const std::string& what) const {
  Fail(shown_, 0, {}, std::string(CompressionName(kind_)) + " data " + what);
}

void Source::Truncated() const {
  Corrupt("is truncated (unexpected end of compressed stream)");
}

std::size_t Source::ReadPlain(char* out, std::size_t cap) {
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

bool Source::EnsureRaw() {
  if (RawAvail() == 0 && !raw_eof_) RefillRaw(false);
  return RawAvail() > 0;
}

void Source::InitGzip() {
  zs_ = {};
  if (inflateInit2(&zs_, 15 + 16) != Z_OK) Corrupt("decoder could not be initialised");
}

std::size_t Source::ReadGzip(char* out, std::size_t cap) {
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

void Source::InitBzip2() {
  bz_ = {};
  if (BZ2_bzDecompressInit(&bz_, 0, 0) != BZ_OK) Corrupt("decoder could not be initialised");
  bz_active_ = true;
}

std::size_t Source::ReadBzip2(char* out, std::size_t cap) {
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

void Source::InitXz() {
  xz_ = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&xz_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
    Corrupt("decoder could not be initialised");
  }
}

std::size_t Source::ReadXz(char* out, std::size_t cap) {
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

std::string ShownName(const std::string& path) { return path == "-" ? "<stdin>" : path; }

}  // namespace io

using namespace io;  // the internals above and in the io headers

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
