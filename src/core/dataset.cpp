#include "memsgd/dataset.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace memsgd {

Dataset Dataset::FromCsr(Index num_features, std::vector<Offset> row_ptr,
                         std::vector<Index> col_idx, std::vector<Value> values,
                         std::vector<double> labels) {
  if (row_ptr.size() != labels.size() + 1 || col_idx.size() != values.size() ||
      static_cast<std::size_t>(row_ptr.back()) != values.size()) {
    throw std::invalid_argument("Dataset::FromCsr: inconsistent CSR arrays");
  }
  Dataset ds;
  ds.d_ = num_features;
  ds.dense_ = false;
  ds.row_ptr_ = std::move(row_ptr);
  ds.col_idx_ = std::move(col_idx);
  ds.values_ = std::move(values);
  ds.labels_ = std::move(labels);
  return ds;
}

Dataset Dataset::FromDense(Index num_features, std::vector<Value> values,
                           std::vector<double> labels) {
  if (values.size() != labels.size() * static_cast<std::size_t>(num_features)) {
    throw std::invalid_argument("Dataset::FromDense: values size is not n * d");
  }
  Dataset ds;
  ds.d_ = num_features;
  ds.dense_ = true;
  ds.row_ptr_.clear();
  ds.values_ = std::move(values);
  ds.labels_ = std::move(labels);
  return ds;
}

Offset Dataset::NumNonZeros() const noexcept {
  return dense_ ? NumRows() * static_cast<Offset>(d_) : static_cast<Offset>(values_.size());
}

Dataset Dataset::Rows(std::span<const Offset> rows) const {
  std::vector<double> labels;
  labels.reserve(rows.size());
  for (Offset r : rows) labels.push_back(Label(r));
  Dataset out;
  if (dense_) {
    std::vector<Value> vals;
    vals.reserve(rows.size() * static_cast<std::size_t>(d_));
    for (Offset r : rows) {
      auto row = Dense(r);
      vals.insert(vals.end(), row.val, row.val + row.d);
    }
    out = FromDense(d_, std::move(vals), std::move(labels));
  } else {
    std::vector<Offset> ptr{0};
    std::vector<Index> idx;
    std::vector<Value> vals;
    for (Offset r : rows) {
      auto row = Sparse(r);
      idx.insert(idx.end(), row.idx, row.idx + row.nnz);
      vals.insert(vals.end(), row.val, row.val + row.nnz);
      ptr.push_back(static_cast<Offset>(idx.size()));
    }
    out = FromCsr(d_, std::move(ptr), std::move(idx), std::move(vals), std::move(labels));
  }
  out.positive_label = positive_label;
  out.negative_label = negative_label;
  return out;
}

void Dataset::NormalizeRows() {
  for (Offset i = 0; i < NumRows(); ++i) {
    Value* begin;
    Index count;
    if (dense_) {
      begin = values_.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d_);
      count = d_;
    } else {
      begin = values_.data() + row_ptr_[static_cast<std::size_t>(i)];
      count = static_cast<Index>(row_ptr_[static_cast<std::size_t>(i) + 1] -
                                 row_ptr_[static_cast<std::size_t>(i)]);
    }
    double s = 0;
    for (Index j = 0; j < count; ++j) s += static_cast<double>(begin[j]) * begin[j];
    if (s > 0) {
      const double inv = 1.0 / std::sqrt(s);
      for (Index j = 0; j < count; ++j) begin[j] = static_cast<Value>(begin[j] * inv);
    }
  }
}

void Dataset::SetNumFeatures(Index d) {
  if (dense_) {
    throw std::logic_error("Dataset::SetNumFeatures: dense storage (its rows hold d values)");
  }
  if (d < d_) {
    throw std::logic_error("Dataset::SetNumFeatures: " + std::to_string(d) +
                           " is less than the current " + std::to_string(d_) + " features");
  }
  d_ = d;
}

void Dataset::DensifyIfDense(double min_density) {
  if (dense_ || NumRows() == 0 || d_ == 0) return;
  const double density =
      static_cast<double>(values_.size()) / (static_cast<double>(NumRows()) * d_);
  if (density < min_density) return;
  // Never densify when the dense copy would be larger than the CSR arrays (whatever min_density
  // says): a row-sparse file with a huge index must not allocate n * d values.
  const double dense_bytes = static_cast<double>(NumRows()) * d_ * sizeof(Value);
  const double csr_bytes = static_cast<double>(values_.size()) * (sizeof(Value) + sizeof(Index)) +
                           static_cast<double>(row_ptr_.size()) * sizeof(Offset);
  if (dense_bytes > csr_bytes) return;
  Densify();
}


void Dataset::Densify() {
  if (dense_) return;
  std::vector<Value> dense(static_cast<std::size_t>(NumRows()) * static_cast<std::size_t>(d_),
                           Value{0});
  // Rows are independent: filled in parallel (a serial step of the parallel reader otherwise).
  tbb::parallel_for(tbb::blocked_range<Offset>(0, NumRows(), 256), [&](const auto& r) {
    for (Offset i = r.begin(); i < r.end(); ++i) {
      auto row = Sparse(i);
      Value* out = dense.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d_);
      for (Index j = 0; j < row.nnz; ++j) out[row.idx[j]] = row.val[j];
    }
  });
  values_ = std::move(dense);
  col_idx_.clear();
  col_idx_.shrink_to_fit();
  row_ptr_.clear();
  row_ptr_.shrink_to_fit();
  dense_ = true;
}

std::pair<double, double> Dataset::RowNormRange() const {
  double lo = INFINITY, hi = 0;
  for (Offset i = 0; i < NumRows(); ++i) {
    double s = VisitRow(i, [](auto row) {
      double acc = 0;
      if constexpr (std::is_same_v<decltype(row), SparseRow>) {
        for (Index j = 0; j < row.nnz; ++j) acc += static_cast<double>(row.val[j]) * row.val[j];
      } else {
        for (Index j = 0; j < row.d; ++j) acc += static_cast<double>(row.val[j]) * row.val[j];
      }
      return acc;
    });
    lo = std::min(lo, std::sqrt(s));
    hi = std::max(hi, std::sqrt(s));
  }
  if (NumRows() == 0) lo = 0;
  return {lo, hi};
}

}  // namespace memsgd
