// Shared helpers for the test suite.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "memsgd/dataset.hpp"
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
