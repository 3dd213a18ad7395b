// The row counts and seeks for reading a plain LIBSVM file in shards, one byte range per process
// (CountLibsvmRows, SeekLibsvmRow), and the label mapping of a whole file from its label counts
// (ChoosePositiveLabel); see include/memsgd/libsvm.hpp. The lines are classified as the parser
// (libsvm_parser.hpp) does, without parsing them.
#include "memsgd/libsvm.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "libsvm_parser.hpp"
#include "libsvm_source.hpp"

namespace memsgd {

namespace io {

namespace {

// ---------------------------------------------------------------------------------------------
// Shards: counting and finding rows without parsing them (CountLibsvmRows, SeekLibsvmRow).
//
// Only the head of each line is looked at (its first non-blank byte, and for CountLibsvmRows the
// label token); the rest is skipped with memchr, in large blocks. The classification is the
// parser's (Parser::Line): blanks are the bytes of class 1, a line whose first non-blank byte is
// '#' or that has none is skipped, a label token ends at the first byte not of class 0 (or at
// the '\n', which the parser never sees); a UTF-8 byte-order mark at the file's start belongs to
// no line (as there, a file of just the mark has no lines).

constexpr std::size_t kScanBlock = std::size_t{4} << 20;
// A label token carried over a block boundary is kept up to this length; a longer one is not a
// number anyone writes, and is counted as a row without a label (as a bad label is).
constexpr std::size_t kMaxLabel = std::size_t{1} << 20;

// Visits the lines of `in`, whose first byte is at file offset `from`, in file order.
// at_line_start: `from` is a line start; otherwise the bytes up to the first '\n' are skipped.
// start(offset) is called when a line starts (at a byte of it) and returns false to stop there;
// line(offset, row, label) once its head is read: whether it is a data row and (want_label) its
// label token; false stops.
template <class Start, class Line>
void ScanLines(FdInput& in, std::uint64_t from, bool at_line_start, bool want_label,
               Start&& start, Line&& line) {
  enum class State { kStart, kBlanks, kLabel, kSkip };
  State state = at_line_start ? State::kStart : State::kSkip;
  const std::unique_ptr<char[]> buf(new char[kScanBlock]);  // (not zero-filled: read into)
  std::string token;  // the part of a label token in earlier blocks
  std::uint64_t pos = from;  // the file offset of buf[0]
  std::uint64_t line_start = 0;
  bool bom = false;
  for (;;) {
    const std::size_t got = in.Read(buf.get(), kScanBlock);
    if (got == 0) break;
    const char* p = buf.get();
    const char* const e = p + got;
    if (pos == 0 && state == State::kStart && got >= 3 &&
        std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
      p += 3;
      bom = true;
    }
    while (p < e) {
      switch (state) {
        case State::kSkip: {
          const auto* nl =
              static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(e - p)));
          if (nl == nullptr) {
            p = e;
            break;
          }
          p = nl + 1;
          state = State::kStart;
          break;
        }
        case State::kStart:
          line_start = bom ? 0 : pos + static_cast<std::uint64_t>(p - buf.get());
          bom = false;
          if (!start(line_start)) return;
          token.clear();
          state = State::kBlanks;
          [[fallthrough]];
        case State::kBlanks:
          while (p < e && Cls(*p) == 1) ++p;
          if (p == e) break;
          if (*p == '\n' || *p == '#') {  // blank or comment line
            if (!line(line_start, false, std::string_view())) return;
            state = State::kSkip;
            break;
          }
          if (!want_label) {
            if (!line(line_start, true, std::string_view())) return;
            state = State::kSkip;
            break;
          }
          state = State::kLabel;
          [[fallthrough]];
        case State::kLabel: {
          const char* t = p;
          while (p < e && Cls(*p) == 0 && *p != '\n') ++p;
          const auto len = static_cast<std::size_t>(p - t);
          if (p == e) {  // continued in the next block
            if (token.size() <= kMaxLabel) token.append(t, std::min(len, kMaxLabel + 1));
            break;
          }
          std::string_view label(t, len);
          if (!token.empty()) {
            if (token.size() <= kMaxLabel) token.append(t, std::min(len, kMaxLabel + 1));
            label = token;
          }
          if (!line(line_start, true, label.size() <= kMaxLabel ? label : std::string_view())) {
            return;
          }
          state = State::kSkip;
          break;
        }
      }
    }
    pos += got;
  }
  // The last line ends at the end of the file (no final newline) while its head is read.
  if (state == State::kBlanks) line(line_start, false, std::string_view());
  if (state == State::kLabel) {
    const bool fits = token.size() <= kMaxLabel;
    line(line_start, true, fits ? std::string_view(token) : std::string_view());
  }
}

// Rows per label value: a few classes are searched in a short array, many through a hash map.
class LabelTally {
 public:
  void Add(double y) {
    const std::size_t k = std::min(counts_.size(), kLinear);
    for (std::size_t i = 0; i < k; ++i) {
      if (counts_[i].first == y) {
        ++counts_[i].second;
        return;
      }
    }
    if (counts_.size() >= kLinear) {
      const auto [it, fresh] = index_.try_emplace(y, counts_.size());
      if (!fresh) {
        ++counts_[it->second].second;
        return;
      }
    }
    counts_.emplace_back(y, 1);
  }
  // Ascending by value.
  std::vector<std::pair<double, Offset>> Sorted() && {
    std::sort(counts_.begin(), counts_.end());
    return std::move(counts_);
  }

 private:
  static constexpr std::size_t kLinear = 8;
  std::vector<std::pair<double, Offset>> counts_;  // in order of first appearance
  std::unordered_map<double, std::size_t> index_;  // where values after the first kLinear are
};


}  // namespace

}  // namespace io

using namespace io;  // the internals above and in the io headers

RowCount CountLibsvmRows(const std::string& path, std::uint64_t begin, std::uint64_t end) {
  const std::string shown = ShownName(path);
  // From the byte before `begin`: whether it is a '\n' says whether a line starts at `begin`.
  const ByteRange range{begin > 0 ? begin - 1 : 0};
  FdInput in(path, shown, &range);
  RowCount out;
  out.aligned_begin = in.FileSize();
  if (begin >= in.FileSize()) return out;
  bool aligned = false;
  LabelTally tally;
  ScanLines(
      in, range.begin, /*at_line_start=*/begin == 0, /*want_label=*/true,
      [&](std::uint64_t at) {
        if (!aligned) {
          aligned = true;
          out.aligned_begin = at;
        }
        return at < end;
      },
      [&](std::uint64_t, bool row, std::string_view label) {
        ++out.lines;
        if (!row) return true;
        ++out.rows;
        // A label that does not parse is left for ReadLibsvm to report, with its line number.
        double y = 0;
        if (!label.empty() && ParseReal(label.data(), label.data() + label.size(), y) == Num::kOk) {
          tally.Add(y == 0 ? 0.0 : y);  // -0 and 0 are one class
        }
        return true;
      });
  out.label_counts = std::move(tally).Sorted();
  return out;
}

std::uint64_t SeekLibsvmRow(const std::string& path, std::uint64_t from, Offset skip,
                            long long* lines_skipped) {
  const std::string shown = ShownName(path);
  if (skip < 0) Fail(shown, 0, {}, "negative row count for SeekLibsvmRow");
  const ByteRange range{from};
  FdInput in(path, shown, &range);
  std::uint64_t found = in.FileSize();
  long long lines = 0;
  Offset rows = 0;
  if (from < in.FileSize()) {
    ScanLines(
        in, from, /*at_line_start=*/true, /*want_label=*/false, [](std::uint64_t) { return true; },
        [&](std::uint64_t at, bool row, std::string_view) {
          if (row && rows++ == skip) {
            found = at;
            return false;
          }
          ++lines;
          return true;
        });
  }
  if (lines_skipped) *lines_skipped = lines;
  return found;
}

double ChoosePositiveLabel(const std::vector<std::pair<double, Offset>>& label_counts,
                           const ReadOptions& options, const std::string& path) {
  const std::string shown = ShownName(path);
  if (label_counts.empty()) Fail(shown, 0, {}, "no data rows");
  auto values = [&] {
    std::string have;
    for (std::size_t k = 0; k < label_counts.size() && k < 10; ++k) {
      have += (k ? ", " : "") + NumberText(label_counts[k].first);
    }
    if (label_counts.size() > 10) have += ", ...";
    return have;
  };
  if (options.positive_label) {
    const double pos = *options.positive_label;
    const bool present = std::any_of(label_counts.begin(), label_counts.end(),
                                     [&](const auto& c) { return c.first == pos; });
    if (!present) {
      Fail(shown, 0, {},
           "positive label " + NumberText(pos) + " does not occur (labels: " + values() + ")");
    }
    return pos;
  }
  if (label_counts.size() == 1) {
    // One class only: +1 if its value is positive, else -1 (NaN equals no label: every row -1).
    const double c = label_counts[0].first;
    return c > 0 ? c : std::numeric_limits<double>::quiet_NaN();
  }
  if (label_counts.size() == 2) return std::max(label_counts[0].first, label_counts[1].first);
  Fail(shown, 0, {},
       "more than two classes (labels " + values() +
           "); choose the +1 class with a positive label");
}

}  // namespace memsgd
