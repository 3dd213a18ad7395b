// LIBSVM text writer (WriteLibsvm, include/memsgd/libsvm.hpp): shortest round-trip numbers,
// buffered, to a temporary name renamed into place (or to stdout for "-").
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "memsgd/libsvm.hpp"

namespace memsgd {

namespace {

constexpr std::size_t kBlock = 1 << 20;  // bytes buffered between writes

class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path) {
    if (path == "-") {
      fd_ = STDOUT_FILENO;
      return;
    }
    tmp_ = path + ".tmp." + std::to_string(::getpid());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) Error("cannot create " + tmp_);
    buf_.reserve(kBlock + 4096);
  }
  ~Writer() {
    if (!tmp_.empty()) {  // not committed: remove the partial file
      if (fd_ >= 0) ::close(fd_);
      ::unlink(tmp_.c_str());
    }
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  std::string& Buf() { return buf_; }
  void MaybeFlush() {
    if (buf_.size() >= kBlock) Flush();
  }
  void Commit() {
    Flush();
    if (tmp_.empty()) return;
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) Error("cannot write " + tmp_);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) Error("cannot rename " + tmp_ + " to " + path_);
    tmp_.clear();
  }

 private:
  void Flush() {
    const char* p = buf_.data();
    std::size_t left = buf_.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        Error("cannot write " + (tmp_.empty() ? std::string("<stdout>") : tmp_));
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    buf_.clear();
  }
  [[noreturn]] void Error(const std::string& what) const {
    throw std::runtime_error(what + ": " + std::strerror(errno));
  }

  std::string path_, tmp_;
  int fd_ = -1;
  std::string buf_;
};

inline void AppendNumber(std::string& s, auto x) {
  char tmp[64];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, x);  // shortest round-trip form
  s.append(tmp, r.ptr);
}

}  // namespace

void WriteLibsvm(const Dataset& data, const std::string& path) {
  Writer w(path);
  std::string& s = w.Buf();
  const double pos = std::isnan(data.positive_label) ? 1.0 : data.positive_label;
  const double neg = std::isnan(data.negative_label) ? -1.0 : data.negative_label;
  for (Offset i = 0; i < data.NumRows(); ++i) {
    AppendNumber(s, data.Label(i) > 0 ? pos : neg);
    data.VisitRow(i, [&](auto row) {
      if constexpr (std::is_same_v<decltype(row), SparseRow>) {
        for (Index j = 0; j < row.nnz; ++j) {
          s += ' ';
          AppendNumber(s, row.idx[j] + 1);
          s += ':';
          AppendNumber(s, row.val[j]);
        }
      } else {
        for (Index j = 0; j < row.d; ++j) {
          if (row.val[j] == 0) continue;
          s += ' ';
          AppendNumber(s, j + 1);
          s += ':';
          AppendNumber(s, row.val[j]);
        }
      }
    });
    s += '\n';
    w.MaybeFlush();
  }
  w.Commit();
}

}  // namespace memsgd
