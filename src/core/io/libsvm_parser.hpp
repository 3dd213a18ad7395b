// The LIBSVM line parser: number parsing (ParseReal), the character classes, and class Parser,
// which turns lines of text into CSR rows and labels and, at the end, a Dataset with labels
// mapped to -1/+1. Also the error helpers (Fail, NumberText) and the memory checks
// (CheckLineFits, CheckFitsInMemory), defined in libsvm_parser.cpp. Internal to the library (not
// installed). Parser::Line is the hot loop: everything it calls per line or token is defined
// here, inline; only the error paths leave this header.
#pragma once
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "memsgd/dataset.hpp"
#include "memsgd/libsvm.hpp"

namespace memsgd::io {

// ---------------------------------------------------------------------------------------------
// Error text (libsvm_parser.cpp).

// A number in the shortest form that reads back exactly (std::to_chars).
std::string NumberText(double x);

// Throws ParseError(file, line, token (at most 256 bytes of it), reason).
[[noreturn]] void Fail(const std::string& file, long long line, std::string_view token,
                       const std::string& reason);

// ---------------------------------------------------------------------------------------------
// Up-front memory checks (libsvm_parser.cpp, where the estimate is explained). Both throw
// ParseError; MEMSGD_MEMORY_LIMIT=N[K|M|G|T] replaces the available memory, =off skips them.

// Called before the buffer holding an unfinished line grows to `bytes`.
void CheckLineFits(const std::string& shown, long long line, std::size_t bytes);

// sample: the first block of text; total_text: the estimated text size of the whole file.
void CheckFitsInMemory(const std::string& shown, const char* sample, std::size_t sample_len,
                       double total_text, const char* how);

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

inline bool HasBinaryByte(std::string_view tok) {
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
inline constexpr auto kClass = MakeClasses();
inline unsigned Cls(char c) { return kClass[static_cast<unsigned char>(c)]; }

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

}  // namespace memsgd::io
