// The LIBSVM reader's byte source: a raw file descriptor (a file, standard input, or a byte range
// of a plain file), optionally behind a gzip, bzip2 or xz decoder chosen by the magic bytes.
// Read in 1 MiB blocks (kBlock). Internal to the library (not installed); the parser is in
// libsvm_parser.hpp, the readers that use this in libsvm_read.cpp and libsvm_scan.cpp.
#pragma once
#include <bzlib.h>
#include <lzma.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace memsgd::io {

constexpr std::size_t kBlock = std::size_t{1} << 20;  // bytes per read / decompression step

// ---------------------------------------------------------------------------------------------
// Byte sources: a raw file descriptor, optionally behind a decompressor.

enum class Compression { kNone, kGzip, kBzip2, kXz };

const char* CompressionName(Compression c);

Compression DetectCompression(const unsigned char* p, std::size_t n);

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
  FdInput(const std::string& path, const std::string& shown, const ByteRange* range = nullptr);
  ~FdInput() { Close(); }
  FdInput(const FdInput&) = delete;
  FdInput& operator=(const FdInput&) = delete;

  // Reads up to n bytes; 0 means end of file (of the range).
  std::size_t Read(void* buf, std::size_t n);
  // Bytes to expect (the file's or the range's size; 0 when unknown).
  std::uint64_t SizeHint() const noexcept { return size_hint_; }
  // The size of a regular file (0 for other input).
  std::uint64_t FileSize() const noexcept { return file_size_; }
  // Whether the bytes read start at the file's first byte (where a byte-order mark may be).
  bool AtFileStart() const noexcept { return at_file_start_; }

 private:
  std::size_t ReadFd(void* buf, std::size_t n);
  void Close() noexcept;
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
  Source(const std::string& path, const std::string& shown, const ByteRange* range = nullptr);
  ~Source();
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
  void RefillRaw(bool keep);
  std::size_t RawAvail() const noexcept { return raw_len_ - raw_pos_; }
  [[noreturn]] void Corrupt(const std::string& what) const;
  [[noreturn]] void Truncated() const;

  std::size_t ReadPlain(char* out, std::size_t cap);

  // Makes raw input available for the next decoder step; false at end of input.
  bool EnsureRaw();

  // --- gzip (RFC 1952), concatenated members allowed as gzip(1) does.
  void InitGzip();
  std::size_t ReadGzip(char* out, std::size_t cap);

  // --- bzip2, concatenated streams allowed (pbzip2 output).
  void InitBzip2();
  std::size_t ReadBzip2(char* out, std::size_t cap);

  // --- xz (concatenated streams and padding handled by liblzma).
  void InitXz();
  std::size_t ReadXz(char* out, std::size_t cap);

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

// The file name in messages: "<stdin>" for "-".
std::string ShownName(const std::string& path);

}  // namespace memsgd::io
