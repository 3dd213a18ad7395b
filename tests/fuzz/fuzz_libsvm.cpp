// libFuzzer target for the LIBSVM reader (src/core/io/libsvm_{source,parser,read,scan}.cpp).
//
// Input: byte 0 selects the ReadOptions, the rest is the file content (plain text, or gzip /
// bzip2 / xz data: the reader detects compression by magic bytes, so the decoders are fuzzed
// too). The content is written to an in-memory file (memfd) and read through its
// /proc/self/fd path, exactly as a file on disk.
//
// Contract checked: ReadLibsvm and ReadFileBytes either return or throw memsgd::ParseError.
// Any other exception escapes and libFuzzer reports it; a returned Dataset must be consistent
// (CSR invariants, indices < d, finite values, labels -1/+1), else the target traps.
//
// Build and run: scripts/fuzz.sh [seconds] (clang++ -fsanitize=fuzzer,address,undefined).
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "memsgd/libsvm.hpp"

namespace {

int MemFd() {
  static const int fd = [] {
    const int f = ::memfd_create("memsgd_fuzz", 0);
    if (f < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    return f;
  }();
  return fd;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_libsvm: invariant violated: %s\n", what);
    __builtin_trap();
  }
}

void CheckDataset(const memsgd::Dataset& ds, const memsgd::ReadOptions& opt) {
  using memsgd::Index;
  using memsgd::Offset;
  Check(ds.NumRows() > 0, "a returned data set has rows");
  Check(ds.NumFeatures() >= 0, "d >= 0");
  if (opt.num_features > 0) Check(ds.NumFeatures() == opt.num_features, "fixed d kept");
  for (double y : ds.Labels()) Check(y == 1.0 || y == -1.0, "labels are -1/+1");
  for (float v : ds.Values()) Check(std::isfinite(v), "values are finite");
  if (ds.IsDense()) {
    Check(ds.Values().size() ==
              static_cast<std::size_t>(ds.NumRows()) * static_cast<std::size_t>(ds.NumFeatures()),
          "dense size n*d");
    return;
  }
  const auto rp = ds.RowPtr();
  const auto col = ds.ColIdx();
  Check(rp.size() == static_cast<std::size_t>(ds.NumRows()) + 1, "row_ptr has n+1 entries");
  Check(rp.front() == 0 && static_cast<std::size_t>(rp.back()) == col.size(), "row_ptr ends");
  Check(col.size() == ds.Values().size(), "one value per index");
  for (Offset i = 0; i < ds.NumRows(); ++i) {
    const auto r = ds.Sparse(i);
    Check(r.nnz >= 0, "row nnz >= 0");
    for (Index j = 0; j < r.nnz; ++j) {
      Check(r.idx[j] >= 0 && r.idx[j] < ds.NumFeatures(), "index in [0, d)");
      if (j > 0) Check(r.idx[j] > r.idx[j - 1], "indices strictly increasing");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t sel = data[0];
  ++data;
  --size;

  const int fd = MemFd();
  if (::ftruncate(fd, 0) != 0) std::abort();
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<std::size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);

  memsgd::ReadOptions opt;
  static constexpr memsgd::Index kFeatures[4] = {0, 1, 7, 300};
  opt.num_features = kFeatures[sel & 3];
  opt.ignore_extra_features = (sel & 4) != 0;
  if (sel & 8) opt.positive_label = (sel & 16) ? 1.0 : 2.0;
  if (sel & 32) opt.fixed_positive_label = 1.0;
  static constexpr double kDensify[4] = {0.5, 0.0, 2.0, 0.1};
  opt.densify_at = kDensify[(sel >> 6) & 3];

  try {
    memsgd::ReadInfo info;
    const memsgd::Dataset ds = memsgd::ReadLibsvm(path, opt, info);
    CheckDataset(ds, opt);
    Check(info.lines >= 1, "a file with rows has lines");
  } catch (const memsgd::ParseError& e) {
    Check(e.what()[0] != '\0', "a ParseError has a message");
  }
  if (sel == 0xff) {
    try {
      (void)memsgd::ReadFileBytes(path);
    } catch (const memsgd::ParseError&) {
    }
  }
  return 0;
}
