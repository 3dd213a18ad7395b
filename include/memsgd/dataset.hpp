// Dataset: n labelled rows over d features, stored as CSR (sparse) or dense row-major.
//
// Dense storage is chosen when the data is dense (epsilon-like data must not pay 4 bytes of index
// per value). Values are float32 (Value); arithmetic is double. Labels are -1/+1; the original
// label values are kept for the LIBLINEAR model file.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "memsgd/types.hpp"

namespace memsgd {

// One sparse row: idx[0..nnz) strictly increasing, 0-based.
struct SparseRow {
  const Index* idx;
  const Value* val;
  Index nnz;
};

// One dense row of d values.
struct DenseRow {
  const Value* val;
  Index d;
};

class Dataset {
 public:
  Dataset() = default;

  // Builders (used by the readers and the generator).
  static Dataset FromCsr(Index num_features, std::vector<Offset> row_ptr, std::vector<Index> col_idx,
                         std::vector<Value> values, std::vector<double> labels);
  static Dataset FromDense(Index num_features, std::vector<Value> values,
                           std::vector<double> labels);

  Offset NumRows() const noexcept { return static_cast<Offset>(labels_.size()); }
  Index NumFeatures() const noexcept { return d_; }
  // Stored entries (for dense storage: n * d).
  Offset NumNonZeros() const noexcept;
  bool IsDense() const noexcept { return dense_; }
  double Label(Offset i) const noexcept { return labels_[static_cast<std::size_t>(i)]; }
  std::span<const double> Labels() const noexcept { return labels_; }

  SparseRow Sparse(Offset i) const noexcept {
    const auto b = row_ptr_[static_cast<std::size_t>(i)];
    const auto e = row_ptr_[static_cast<std::size_t>(i) + 1];
    return {col_idx_.data() + b, values_.data() + b, static_cast<Index>(e - b)};
  }
  DenseRow Dense(Offset i) const noexcept {
    return {values_.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(d_), d_};
  }

  // Calls f(row) with a SparseRow or DenseRow: for code that is generic over the two layouts.
  template <class F>
  [[gnu::always_inline]] decltype(auto) VisitRow(Offset i, F&& f) const {
    if (dense_) return f(Dense(i));
    return f(Sparse(i));
  }

  // Subset of rows (in the given order), same feature space.
  Dataset Rows(std::span<const Offset> rows) const;
  // Scale every row to unit L2 norm (rows of norm 0 are left as they are).
  void NormalizeRows();
  // Convert to dense storage if nnz / (n d) >= min_density and the dense copy is not larger.
  void DensifyIfDense(double min_density = 0.5);
  // Convert to dense storage unconditionally (n * d values: for tests and small data).
  void Densify();
  // Widens the feature space to d >= NumFeatures() (sparse storage only: the rows are unchanged,
  // the new features are zero in every row). For shards read apart that must agree on d.
  // Throws std::logic_error for dense storage or a smaller d.
  void SetNumFeatures(Index d);
  // Row norms (min, max) for `info`.
  std::pair<double, double> RowNormRange() const;

  // Original label values mapped to +1 and -1 (for the model file); NaN when unknown.
  double positive_label = 1.0;
  double negative_label = -1.0;

  // Raw access (for evaluation kernels and serialisation).
  std::span<const Offset> RowPtr() const noexcept { return row_ptr_; }
  std::span<const Index> ColIdx() const noexcept { return col_idx_; }
  std::span<const Value> Values() const noexcept { return values_; }

 private:
  Index d_ = 0;
  bool dense_ = false;
  std::vector<Offset> row_ptr_{0};  // CSR only
  std::vector<Index> col_idx_;      // CSR only
  std::vector<Value> values_;       // CSR values or dense n*d row-major
  std::vector<double> labels_;
};

}  // namespace memsgd
