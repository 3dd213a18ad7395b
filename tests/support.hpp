// Shared helpers for the test suite.
#pragma once
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "memsgd/dataset.hpp"
#include "memsgd/libsvm.hpp"
#include "memsgd/rng.hpp"

namespace memsgd::test {

// Seed for stochastic tests: MEMSGD_TEST_SEED or a fixed default, printed by the test main.
inline std::uint64_t Seed() {
  const char* s = std::getenv("MEMSGD_TEST_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 20181ULL;
}

inline std::string SourcePath(const std::string& rel) {
  return std::string(MEMSGD_SOURCE_DIR) + "/" + rel;
}
inline std::string SharedData(const std::string& name) {
  return std::string(MEMSGD_SHARED_DATA_DIR) + "/" + name;
}
// Real data sets live in ../shared/data; tests that need them skip cleanly without it.
inline bool HaveSharedData(const std::string& name) {
  return std::filesystem::exists(SharedData(name));
}
inline std::string Binary() { return MEMSGD_BINARY; }
inline std::string Fixture(const std::string& name) { return SourcePath("tests/fixtures/" + name); }

// A fresh scratch directory per test case, removed with everything in it at the end (even where
// a test took its permissions away).
struct Scratch {
  std::filesystem::path dir;
  Scratch() {
    static int counter = 0;
    dir = std::filesystem::temp_directory_path() /
          ("memsgd_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(dir, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  std::string operator()(const std::string& name) const { return (dir / name).string(); }
  // Files whose name contains `part` (".tmp." finds temporaries left behind).
  int Count(const std::string& part) const {
    int k = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      k += e.path().filename().string().find(part) != std::string::npos;
    return k;
  }
};

// Same length and the same bytes (an empty array may have a null data pointer: no memcmp then).
template <class T>
bool SameBytes(std::span<const T> a, std::span<const T> b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size_bytes()) == 0);
}

// max_j |a_j - b_j| / max_j |b_j| (the plain difference when b is all zeros).
inline double MaxRelDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double scale = 0, diff = 0;
  for (std::size_t j = 0; j < a.size(); ++j) {
    scale = std::max(scale, std::abs(b[j]));
    diff = std::max(diff, std::abs(a[j] - b[j]));
  }
  return scale > 0 ? diff / scale : diff;
}

// The same bits (NaN payloads and signed zeros included).
inline bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Two reads of the same data: identical arrays, labels, label mapping and ReadInfo.
inline void CheckSameRead(const Dataset& x, const ReadInfo& a, const Dataset& y,
                          const ReadInfo& b) {
  REQUIRE(x.NumRows() == y.NumRows());
  CHECK(x.NumFeatures() == y.NumFeatures());
  REQUIRE(x.IsDense() == y.IsDense());
  CHECK(SameBits(x.positive_label, y.positive_label));
  CHECK(SameBits(x.negative_label, y.negative_label));
  REQUIRE(x.Values().size() == y.Values().size());
  REQUIRE(x.ColIdx().size() == y.ColIdx().size());
  REQUIRE(x.RowPtr().size() == y.RowPtr().size());
  CHECK(SameBytes(x.Labels(), y.Labels()));
  CHECK(SameBytes(x.RowPtr(), y.RowPtr()));
  CHECK(SameBytes(x.ColIdx(), y.ColIdx()));
  CHECK(SameBytes(x.Values(), y.Values()));
  CHECK(a.compression == b.compression);
  CHECK(a.text_bytes == b.text_bytes);
  CHECK(a.lines == b.lines);
  CHECK(a.entries == b.entries);
  CHECK(a.dropped_entries == b.dropped_entries);
  CHECK(a.label_counts == b.label_counts);
}

// A whole file's bytes, and a file written with exactly these bytes.
inline std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// Random sparse problem: n rows of nnz_row distinct columns each (normal values, then unit-norm
// rows) and labels +-1 with equal odds, all drawn from Rng(seed, 77).
inline Dataset RandomSparse(Offset n, Index d, Index nnz_row, std::uint64_t seed) {
  Rng rng(seed, 77);
  std::vector<Offset> ptr{0};
  std::vector<Index> idx;
  std::vector<Value> val;
  std::vector<double> y;
  for (Offset i = 0; i < n; ++i) {
    std::vector<Index> cols;
    while (static_cast<Index>(cols.size()) < nnz_row) {
      auto j = static_cast<Index>(rng.Below(static_cast<std::uint64_t>(d)));
      if (std::find(cols.begin(), cols.end(), j) == cols.end()) cols.push_back(j);
    }
    std::sort(cols.begin(), cols.end());
    for (Index j : cols) {
      idx.push_back(j);
      val.push_back(static_cast<Value>(rng.Normal()));
    }
    ptr.push_back(static_cast<Offset>(idx.size()));
    y.push_back(rng.Uniform() < 0.5 ? -1.0 : 1.0);
  }
  auto ds = Dataset::FromCsr(d, ptr, idx, val, y);
  ds.NormalizeRows();
  return ds;
}

}  // namespace memsgd::test
