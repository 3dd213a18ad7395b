// IDX reader and IDX -> binary classification task (see include/memsgd/idx.hpp).
#include "memsgd/idx.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "memsgd/libsvm.hpp"

namespace memsgd {

namespace {

[[noreturn]] void Bad(const std::string& path, const std::string& reason) {
  throw ParseError(path == "-" ? "<stdin>" : path, 0, "", reason);
}

std::uint32_t BigEndian32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

}  // namespace

IdxArray ReadIdx(const std::string& path) {
  std::vector<unsigned char> bytes = ReadFileBytes(path);
  if (bytes.size() < 4) Bad(path, "not an IDX file (shorter than the 4-byte magic)");
  if (bytes[0] != 0 || bytes[1] != 0) {
    Bad(path, "not an IDX file (bad magic: the first two bytes must be zero)");
  }
  if (bytes[2] != 0x08) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", bytes[2]);
    Bad(path, std::string("unsupported IDX element type ") + hex +
                  " (only 0x08, unsigned byte, is supported)");
  }
  const unsigned ndim = bytes[3];
  if (ndim == 0) Bad(path, "IDX header has no dimensions");
  const std::size_t header = 4 + 4 * std::size_t{ndim};
  if (bytes.size() < header) Bad(path, "IDX file truncated inside the header");
  IdxArray out;
  unsigned long long count = 1;
  for (unsigned k = 0; k < ndim; ++k) {
    const std::uint32_t dim = BigEndian32(bytes.data() + 4 + 4 * k);
    if (dim == 0) Bad(path, "IDX dimension " + std::to_string(k) + " is zero");
    out.dims.push_back(dim);
    if (count > std::numeric_limits<unsigned long long>::max() / dim) {
      Bad(path, "IDX dimensions overflow");
    }
    count *= dim;
  }
  const std::size_t body = bytes.size() - header;
  if (body < count) {
    Bad(path, "IDX file truncated: header promises " + std::to_string(count) + " bytes of data, " +
                  std::to_string(body) + " present");
  }
  if (body > count) {
    Bad(path, "IDX file has " + std::to_string(body - count) +
                  " trailing bytes after the data the header describes");
  }
  out.data = std::move(bytes);  // drop the header in place (no second copy of the data)
  out.data.erase(out.data.begin(), out.data.begin() + static_cast<std::ptrdiff_t>(header));
  return out;
}

std::vector<int> FashionMnistDefaultPositive() { return {0, 2, 3, 4, 6}; }

Dataset IdxBinaryTask(const std::string& images_path, const std::string& labels_path,
                      const IdxTaskOptions& options) {
  if (!(options.scale > 0) || !std::isfinite(options.scale)) {
    throw std::invalid_argument("scale must be a positive number");
  }
  bool positive[256] = {};
  for (int c : options.positive_classes) {
    if (c < 0 || c > 255) throw std::invalid_argument("class " + std::to_string(c) + " is outside 0..255");
    positive[c] = true;
  }
  const IdxArray images = ReadIdx(images_path);
  const IdxArray labels = ReadIdx(labels_path);
  if (images.dims.size() < 2) {
    Bad(images_path, "IDX images must have at least 2 dimensions (count x pixels), found " +
                         std::to_string(images.dims.size()));
  }
  if (labels.dims.size() != 1) {
    Bad(labels_path, "IDX labels must have 1 dimension, found " + std::to_string(labels.dims.size()));
  }
  const std::size_t n = images.dims[0];
  if (labels.dims[0] != n) {
    Bad(labels_path, "label count " + std::to_string(labels.dims[0]) + " does not match image count " +
                         std::to_string(n) + " in " + images_path);
  }
  unsigned long long d = 1;
  for (std::size_t k = 1; k < images.dims.size(); ++k) d *= images.dims[k];
  if (d > static_cast<unsigned long long>(std::numeric_limits<Index>::max())) {
    Bad(images_path, "too many pixels per image");
  }
  const auto du = static_cast<std::size_t>(d);

  std::vector<Offset> row_ptr{0};
  row_ptr.reserve(n + 1);
  std::vector<Index> col;
  std::vector<Value> val;
  std::vector<double> y(n);
  // 256 possible values: precompute pixel / scale once.
  Value table[256];
  for (int v = 0; v < 256; ++v) table[v] = static_cast<Value>(v / options.scale);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* img = images.data.data() + i * du;
    for (std::size_t j = 0; j < du; ++j) {
      if (img[j] == 0) continue;
      col.push_back(static_cast<Index>(j));
      val.push_back(table[img[j]]);
    }
    row_ptr.push_back(static_cast<Offset>(col.size()));
    y[i] = positive[labels.data[i]] ? 1.0 : -1.0;
  }
  Dataset ds = Dataset::FromCsr(static_cast<Index>(d), std::move(row_ptr), std::move(col),
                                std::move(val), std::move(y));
  ds.positive_label = 1.0;
  ds.negative_label = -1.0;
  return ds;
}

}  // namespace memsgd
