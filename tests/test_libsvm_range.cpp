// Reading a LIBSVM file in shards (the building blocks of a multi-process read): byte ranges of
// ReadOptions, CountLibsvmRows, SeekLibsvmRow, ChoosePositiveLabel and Dataset::SetNumFeatures.
// Every text has blank lines, comment lines, CRLF endings and (some) no final newline; the
// expected values come from a whole-file read and from plain string scans written here.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "memsgd/libsvm.hpp"
#include "support.hpp"

using namespace memsgd;

namespace {

// Every kind of line: comments (also indented, also '#' alone), blank lines (empty, blanks only,
// "\r" alone), CRLF, qid, label-only rows, tabs, trailing comments; no final newline.
const std::string kMixed =
    "# header comment\n"
    "\n"
    "1 1:0.5 3:-2 10:1e-3\n"
    "  -1 qid:3 2:4 5:0\r\n"
    "\r\n"
    "   # indented comment 1:1\n"
    "1\n"
    " \t \n"
    "-1 4:125 7:-0.25 # trailing comment\r\n"
    "1\t2:1\t9:3\n"
    "#\n"
    "-1 1:1 2:2 3:3 4:4 5:5 6:6 7:7 8:8\n"
    "1 12:0.125";

// CRLF throughout, blank lines first and last, a final newline.
const std::string kCrlf =
    "\r\n"
    "  \r\n"
    "0 1:1 2:2\r\n"
    "5 3:0.5\r\n"
    "# 5 1:1\r\n"
    "0 2:-1 4:1\r\n"
    "\r\n"
    "5 1:3\r\n"
    "5 4:4 6:6\r\n"
    "\t\r\n";

// A UTF-8 byte-order mark before the first line, which is a row.
const std::string kBom = "\xEF\xBB\xBF" "2 1:1\n-2 2:1\n\n2 3:1\n# c\n-2 1:2 3:4\n";

// Generated lines: ~1 in 5 blank or a comment, a third CRLF, labels 2 and -3.5 written in
// different ways ("+2", "2.0"), rows of 0 to 11 entries.
std::vector<std::string> GeneratedLines(std::uint64_t seed, int lines) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  static const char* const kLabels[] = {"2", "+2", "2.0", "-3.5", "-3.50"};
  std::vector<std::string> out;
  for (int i = 0; i < lines; ++i) {
    const char* eol = pick(3) == 0 ? "\r\n" : "\n";
    std::string s;
    switch (pick(10)) {
      case 0: break;  // empty
      case 1: s = "  \t"; break;
      case 2: s = pick(2) ? "# comment 1 2:3" : "   #"; break;
      default: {
        s = pick(6) == 0 ? " " : "";
        s += kLabels[pick(5)];
        int idx = 0;
        const int nnz = pick(12);
        for (int j = 0; j < nnz; ++j) {
          idx += 1 + pick(9);
          s.append(pick(4) == 0 ? "\t" : " ").append(std::to_string(idx)).append(":");
          s.append(std::to_string(pick(2001) - 1000)).append("e-2");
        }
        if (pick(7) == 0) s += " # trailing";
      }
    }
    s += eol;  // (not s + eol: GCC 12 gives a false -Wrestrict)
    out.push_back(std::move(s));
  }
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l;
  return s;
}

std::string Generated(std::uint64_t seed, int lines, bool final_newline) {
  std::string s = Join(GeneratedLines(seed, lines));
  if (!final_newline) s += "-3.5 1:1 4:2";
  return s;
}

struct Text {
  const char* name;
  std::string text;
};

std::vector<Text> Texts() {
  return {{"mixed", kMixed},
          {"crlf", kCrlf},
          {"bom", kBom},
          {"blanks, no final newline", "1 1:1\n-1 2:1\n\n  \t"},
          {"a label alone, no final newline", "1 1:1\n# c\n-1"},
          {"generated", Generated(11, 300, true)},
          {"generated, no final newline", Generated(12, 257, false)}};
}

// --- Independent scans of the text ---------------------------------------------------------

std::size_t Bom(const std::string& t) { return t.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0; }

// Offsets of the line starts (a byte-order mark alone is no line).
std::vector<std::uint64_t> LineStarts(const std::string& t) {
  std::vector<std::uint64_t> s;
  if (t.size() > Bom(t)) s.push_back(0);
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '\n' && i + 1 < t.size()) s.push_back(i + 1);
  }
  return s;
}

// Whether the line starting at `at` is a data row: its first byte that is not ' ', '\t', '\r',
// '\v' or '\f' exists, is not '\n' and is not '#'.
bool IsRow(const std::string& t, std::uint64_t at) {
  std::size_t i = at == 0 ? Bom(t) : at;
  while (i < t.size() && std::strchr(" \t\r\v\f", t[i]) != nullptr && t[i] != '\0') ++i;
  return i < t.size() && t[i] != '\n' && t[i] != '#';
}

std::uint64_t AlignUp(const std::string& t, std::uint64_t b) {
  if (b == 0) return 0;
  if (b >= t.size()) return t.size();
  if (t[b - 1] == '\n') return b;
  const std::size_t nl = t.find('\n', b);
  return nl == std::string::npos ? t.size() : nl + 1;
}

// The offsets of the lines holding data rows.
std::vector<std::uint64_t> RowStarts(const std::string& t) {
  std::vector<std::uint64_t> r;
  for (std::uint64_t s : LineStarts(t)) {
    if (IsRow(t, s)) r.push_back(s);
  }
  return r;
}

// --- Reads -----------------------------------------------------------------------------------

ReadOptions Options() {
  ReadOptions o;
  o.densify_at = 2;  // CSR always: rows compared entry by entry
  o.threads = 1;
  return o;
}

// The same read by the sequential loop and by the parallel parser (tiny chunks): both must give
// the same result; returns the first.
Dataset ReadBothWays(const std::string& path, const ReadOptions& opt, ReadInfo& info) {
  ReadOptions par = opt;
  par.threads = 2;
  par.chunk_bytes = 16;
  ReadInfo pinfo;
  const Dataset seq = ReadLibsvm(path, opt, info);
  const Dataset p = ReadLibsvm(path, par, pinfo);
  test::CheckSameRead(seq, info, p, pinfo);
  return seq;
}

// Rows appended one data set after another.
struct Rows {
  std::vector<double> y;
  std::vector<Offset> ptr{0};
  std::vector<Index> idx;
  std::vector<Value> val;
  void Append(const Dataset& d) {
    REQUIRE_FALSE(d.IsDense());
    for (Offset i = 0; i < d.NumRows(); ++i) {
      const SparseRow r = d.Sparse(i);
      y.push_back(d.Label(i));
      idx.insert(idx.end(), r.idx, r.idx + r.nnz);
      val.insert(val.end(), r.val, r.val + r.nnz);
      ptr.push_back(static_cast<Offset>(idx.size()));
    }
  }
};

void CheckSameRows(const Rows& a, const Dataset& whole) {
  CHECK(test::SameBytes<double>(a.y, whole.Labels()));
  CHECK(test::SameBytes<Offset>(a.ptr, whole.RowPtr()));
  CHECK(test::SameBytes<Index>(a.idx, whole.ColIdx()));
  CHECK(test::SameBytes<Value>(a.val, whole.Values()));
}

std::string ErrorOf(const std::string& path, const ReadOptions& opt, long long* line) {
  try {
    ReadLibsvm(path, opt);
  } catch (const ParseError& e) {
    *line = e.Line();
    return e.what();
  }
  *line = -1;
  return "no error";
}

}  // namespace

TEST_CASE("CountLibsvmRows: byte chunks count every line once, rows and labels as a full read") {
  test::Scratch tmp;
  for (const Text& t : Texts()) {
    CAPTURE(t.name);
    const std::string path = tmp("f.svm");
    test::WriteText(path, t.text);
    ReadInfo info;
    const Dataset whole = ReadLibsvm(path, Options(), info);
    const auto starts = LineStarts(t.text);
    REQUIRE(static_cast<long long>(starts.size()) == info.lines);
    const auto size = static_cast<std::uint64_t>(t.text.size());

    // aligned_begin for every begin in the first and last 600 bytes, every 13th in between (each
    // call scans to the end: every byte of a long text would be quadratic under the sanitizers).
    for (std::uint64_t b = 0; b <= size + 2; b += (b < 600 || b + 600 > size) ? 1 : 13) {
      CAPTURE(b);
      const RowCount rc = CountLibsvmRows(path, b, size);
      CHECK(rc.aligned_begin == AlignUp(t.text, b));
    }

    for (std::uint64_t p = 1; p <= 7; ++p) {
      CAPTURE(p);
      Offset rows = 0;
      long long lines = 0;
      std::map<double, Offset> labels;
      for (std::uint64_t c = 0; c < p; ++c) {
        CAPTURE(c);
        const std::uint64_t b = size * c / p, e = size * (c + 1) / p;
        const RowCount rc = CountLibsvmRows(path, b, e);
        CHECK(rc.aligned_begin == AlignUp(t.text, b));
        long long want_lines = 0;
        Offset want_rows = 0;
        for (std::uint64_t s : starts) {
          if (s >= rc.aligned_begin && s < e) {
            ++want_lines;
            want_rows += IsRow(t.text, s);
          }
        }
        CHECK(rc.lines == want_lines);
        CHECK(rc.rows == want_rows);
        for (std::size_t k = 1; k < rc.label_counts.size(); ++k) {
          CHECK(rc.label_counts[k - 1].first < rc.label_counts[k].first);
        }
        for (const auto& [v, n] : rc.label_counts) labels[v] += n;
        rows += rc.rows;
        lines += rc.lines;
        // Read by that byte range, the chunk holds just the rows counted.
        if (rc.rows > 0) {
          ReadOptions ro = Options();
          ro.range_begin = rc.aligned_begin;
          ro.range_end = e;
          ro.fixed_positive_label = whole.positive_label;
          ReadInfo ri;
          CHECK(ReadBothWays(path, ro, ri).NumRows() == rc.rows);
          CHECK(ri.lines == rc.lines);
        }
      }
      CHECK(rows == whole.NumRows());
      CHECK(lines == info.lines);
      CHECK(std::vector<std::pair<double, Offset>>(labels.begin(), labels.end()) ==
            info.label_counts);
    }
  }
}

TEST_CASE("SeekLibsvmRow: the line of the k-th data row, and the lines before it") {
  test::Scratch tmp;
  for (const Text& t : Texts()) {
    CAPTURE(t.name);
    const std::string path = tmp("f.svm");
    test::WriteText(path, t.text);
    const auto starts = LineStarts(t.text);
    const auto rows = RowStarts(t.text);
    const auto size = static_cast<std::uint64_t>(t.text.size());
    auto lines_before = [&](std::uint64_t from, std::uint64_t at) {
      long long n = 0;
      for (std::uint64_t s : starts) n += s >= from && s < at;
      return n;
    };
    // From every line start (every 17th of long texts), every row (every 3rd of long texts, and
    // the last ones) and one past the last.
    const bool long_text = starts.size() > 50;
    const std::size_t stride = long_text ? 17 : 1;
    for (std::size_t i = 0; i < starts.size(); i += stride) {
      const std::uint64_t from = starts[i];
      const auto first = static_cast<std::size_t>(
          std::lower_bound(rows.begin(), rows.end(), from) - rows.begin());
      for (std::size_t k = 0; first + k <= rows.size();
           k += (long_text && first + k + 5 < rows.size()) ? 3 : 1) {
        CAPTURE(from);
        CAPTURE(k);
        long long skipped = -1;
        const std::uint64_t at = SeekLibsvmRow(path, from, static_cast<Offset>(k), &skipped);
        const std::uint64_t want = first + k < rows.size() ? rows[first + k] : size;
        CHECK(at == want);
        CHECK(skipped == lines_before(from, want));
      }
    }
    // Far past the end; no line count wanted.
    CHECK(SeekLibsvmRow(path, 0, 1000000, nullptr) == size);
    long long skipped = -1;
    CHECK(SeekLibsvmRow(path, size + 5, 0, &skipped) == size);
    CHECK(skipped == 0);
  }
}

TEST_CASE("ReadLibsvm by row ranges: the shards, concatenated, are the whole-file read") {
  test::Scratch tmp;
  for (const Text& t : Texts()) {
    CAPTURE(t.name);
    const std::string path = tmp("f.svm");
    test::WriteText(path, t.text);
    ReadInfo info;
    const Dataset whole = ReadLibsvm(path, Options(), info);
    const Offset n = whole.NumRows();
    const auto size = static_cast<std::uint64_t>(t.text.size());
    const RowCount all = CountLibsvmRows(path, 0, size);
    REQUIRE(all.label_counts == info.label_counts);
    Dataset dense_whole = whole;
    dense_whole.Densify();

    for (Offset p = 1; p <= 7; ++p) {
      CAPTURE(p);
      const Offset q = n / p;
      if (q == 0) continue;
      // The launcher's way to the rows: chunk counts, then a seek inside the chunk holding them.
      std::vector<RowCount> chunks;
      std::vector<Offset> row0{0};
      std::vector<long long> line0{0};
      for (Offset c = 0; c < p; ++c) {
        const auto uc = static_cast<std::uint64_t>(c), up = static_cast<std::uint64_t>(p);
        chunks.push_back(CountLibsvmRows(path, size * uc / up, size * (uc + 1) / up));
        row0.push_back(row0.back() + chunks.back().rows);
        line0.push_back(line0.back() + chunks.back().lines);
      }
      auto locate = [&](Offset row, long long* line) -> std::uint64_t {
        long long from_start = -1;
        const std::uint64_t direct = SeekLibsvmRow(path, 0, row, &from_start);
        std::size_t c = 0;
        while (row0[c + 1] <= row) ++c;
        long long in_chunk = -1;
        const std::uint64_t via =
            SeekLibsvmRow(path, chunks[c].aligned_begin, row - row0[c], &in_chunk);
        CHECK(via == direct);
        CHECK(line0[c] + in_chunk == from_start);
        *line = from_start + 1;
        return direct;
      };

      ReadOptions ro = Options();
      ro.fixed_positive_label = ChoosePositiveLabel(all.label_counts, ReadOptions{}, path);
      Rows cat;
      long long shard_lines = 0, first_row_line = 0;
      for (Offset r = 0; r < p; ++r) {
        CAPTURE(r);
        const Offset end_row = r + 1 == p ? n : (r + 1) * q;
        long long line = 0, end_line = 0;
        ro.range_begin = locate(r * q, &line);
        ro.range_end = end_row < n ? locate(end_row, &end_line) : size;
        ro.first_line = line;
        if (r == 0) first_row_line = line;
        ReadInfo ri;
        Dataset shard = ReadBothWays(path, ro, ri);
        REQUIRE(shard.NumRows() == end_row - r * q);
        CHECK(ri.text_bytes == ro.range_end - ro.range_begin);
        CHECK(ri.compression == "none");
        CHECK(shard.NumFeatures() <= whole.NumFeatures());
        CHECK(shard.positive_label == whole.positive_label);
        shard_lines += ri.lines;
        cat.Append(shard);
        // Widened to the whole file's d, a shard densifies to exactly its rows of the whole file.
        shard.SetNumFeatures(whole.NumFeatures());
        CHECK(shard.NumFeatures() == whole.NumFeatures());
        shard.Densify();
        const auto d = static_cast<std::size_t>(whole.NumFeatures());
        const auto row_begin = static_cast<std::size_t>(r * q);
        CHECK(std::memcmp(shard.Values().data(), dense_whole.Values().data() + row_begin * d,
                          shard.Values().size_bytes()) == 0);
        CHECK(shard.Values().size() == static_cast<std::size_t>(shard.NumRows()) * d);
      }
      CheckSameRows(cat, whole);
      // The shards hold every line from the first row's on.
      CHECK(shard_lines == info.lines - (first_row_line - 1));
    }
  }
}

TEST_CASE("ReadLibsvm byte range: a line that range_end falls inside is read whole") {
  test::Scratch tmp;
  const std::string path = tmp("f.svm");
  test::WriteText(path, kMixed);
  const std::uint64_t b = kMixed.find("1 1:0.5");
  const std::uint64_t next = kMixed.find("  -1 qid");
  ReadOptions ro = Options();
  ro.fixed_positive_label = 1.0;
  ro.range_begin = b;
  ro.first_line = 3;
  for (std::uint64_t e : {b + 1, b + 7, next - 1, next}) {
    CAPTURE(e);
    ro.range_end = e;
    ReadInfo info;
    const Dataset ds = ReadBothWays(path, ro, info);
    REQUIRE(ds.NumRows() == 1);
    CHECK(ds.Label(0) == 1.0);
    REQUIRE(ds.Sparse(0).nnz == 3);
    CHECK(ds.Sparse(0).idx[2] == 9);
    CHECK(ds.Sparse(0).val[2] == 1e-3f);
    CHECK(ds.NumFeatures() == 10);
    CHECK(info.lines == 1);
    CHECK(info.text_bytes == next - b);
  }
  // One byte more: the next line starts in the range.
  ro.range_end = next + 1;
  CHECK(ReadLibsvm(path, ro).NumRows() == 2);
  // The last line has no newline: a range inside it reads to the end of the file.
  ro.range_begin = kMixed.rfind("1 12:0.125");
  ro.range_end = ro.range_begin + 2;
  ReadInfo info;
  const Dataset last = ReadLibsvm(path, ro, info);
  REQUIRE(last.NumRows() == 1);
  CHECK(last.NumFeatures() == 12);
  CHECK(info.text_bytes == 10);
  // An empty range, or one of blank and comment lines only, holds no data rows.
  ro.range_begin = ro.range_end = b;
  CHECK_THROWS_WITH_AS(ReadLibsvm(path, ro), doctest::Contains("no data rows"), ParseError);
  ro.range_begin = 0;
  ro.range_end = b;
  CHECK_THROWS_WITH_AS(ReadLibsvm(path, ro), doctest::Contains("no data rows"), ParseError);
  ro.first_line = 0;
  CHECK_THROWS_WITH_AS(ReadLibsvm(path, ro), doctest::Contains("first_line below 1"), ParseError);
}

TEST_CASE("ReadLibsvm byte range: a bad line in the 2nd shard has its file line number") {
  test::Scratch tmp;
  const std::string path = tmp("f.svm");
  struct Bad {
    const char* name;
    std::string line;
    const char* reason;
  };
  // (A byte-order mark starts only the file: elsewhere it is part of the label, in a whole-file
  // read and in a range that starts at that line.)
  const Bad bads[] = {{"indices", "2 3:1 2:1", "indices not increasing"},
                      {"label", "abc 1:1", "bad label"},
                      {"byte-order mark", "\xEF\xBB\xBF" "2 1:1", "bad label"},
                      {"value", "-3.5 4:x", "bad value"}};
  for (const Bad& bad : bads) {
    CAPTURE(bad.name);
    std::vector<std::string> lines = GeneratedLines(21, 240);
    // The bad line: 10 data rows into the second third of the rows.
    std::vector<std::size_t> row_lines;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (IsRow(lines[i], 0)) row_lines.push_back(i);
    }
    const Offset n = static_cast<Offset>(row_lines.size());
    const Offset q = n / 3;
    const std::size_t at = row_lines[static_cast<std::size_t>(q) + 10];
    lines[at] = bad.line + "\r\n";
    const long long bad_line = static_cast<long long>(at) + 1;
    test::WriteText(path, Join(lines));

    long long whole_line = 0;
    const std::string whole_error = ErrorOf(path, Options(), &whole_line);
    CHECK(whole_line == bad_line);
    CHECK(whole_error.find(bad.reason) != std::string::npos);

    // The counts never fail on the text: the bad line is a row (without a label for "label").
    const RowCount all = CountLibsvmRows(path, 0, std::numeric_limits<std::uint64_t>::max());
    CHECK(all.rows == n);
    Offset labelled = 0;
    for (const auto& lc : all.label_counts) labelled += lc.second;
    CHECK(labelled == (std::string(bad.name) == "indices" || std::string(bad.name) == "value"
                           ? n
                           : n - 1));

    ReadOptions ro = Options();
    ro.fixed_positive_label = 2.0;
    for (Offset r = 0; r < 3; ++r) {
      CAPTURE(r);
      long long skipped = 0, unused = 0;
      ro.range_begin = SeekLibsvmRow(path, 0, r * q, &skipped);
      ro.range_end = r == 2 ? std::numeric_limits<std::uint64_t>::max()
                            : SeekLibsvmRow(path, 0, (r + 1) * q, &unused);
      ro.first_line = skipped + 1;
      for (const std::size_t chunk : {std::size_t{0}, std::size_t{16}}) {
        ReadOptions o = ro;
        o.chunk_bytes = chunk;
        o.threads = chunk ? 2 : 1;
        long long line = 0;
        const std::string error = ErrorOf(path, o, &line);
        if (r == 1) {
          CHECK(line == bad_line);
          CHECK(error == whole_error);
        } else {
          CHECK(error == "no error");
        }
      }
    }
    // A range that starts at the bad line (a byte-order mark there is no file start).
    ro.range_begin = 0;
    for (std::size_t i = 0; i < at; ++i) ro.range_begin += lines[i].size();
    ro.range_end = ro.range_begin + 1;
    ro.first_line = bad_line;
    for (const std::size_t chunk : {std::size_t{0}, std::size_t{16}}) {
      ReadOptions o = ro;
      o.chunk_bytes = chunk;
      o.threads = chunk ? 2 : 1;
      long long line = 0;
      CHECK(ErrorOf(path, o, &line) == whole_error);
      CHECK(line == bad_line);
    }
  }
}

TEST_CASE("Byte ranges, row counts and seeks refuse compressed input and standard input") {
  const std::pair<const char*, const char*> fixtures[] = {
      {"golden.svm.gz", "gzip"}, {"golden.svm.bz2", "bzip2"}, {"golden.svm.xz", "xz"}};
  for (const auto& [name, kind] : fixtures) {
    CAPTURE(kind);
    const std::string fx = test::Fixture(name);
    const std::string want = fx +
                             ": a byte range can only be read from a plain file; the file is " +
                             kind + " compressed: decompress it first";
    auto check = [&](auto&& f) {
      try {
        f();
        FAIL("no error");
      } catch (const ParseError& e) {
        CHECK(std::string(e.what()) == want);
        CHECK(e.Line() == 0);
      }
    };
    ReadOptions ro;
    ro.range_end = 100;
    check([&] { ReadLibsvm(fx, ro); });
    ro.range_begin = 1;  // the file's first bytes decide, not the range's
    ro.range_end = std::numeric_limits<std::uint64_t>::max();
    check([&] { ReadLibsvm(fx, ro); });
    check([&] { CountLibsvmRows(fx, 0, 100); });
    check([&] { CountLibsvmRows(fx, 7, 8); });
    check([&] { SeekLibsvmRow(fx, 0, 0, nullptr); });
    // Without a range the file reads as before.
    CHECK(ReadLibsvm(fx).NumRows() == 5);
  }
  ReadOptions ro;
  ro.range_end = 10;
  CHECK_THROWS_WITH_AS(ReadLibsvm("-", ro),
                       "<stdin>: a byte range can only be read from a plain file, not from "
                       "standard input",
                       ParseError);
  CHECK_THROWS_WITH_AS(CountLibsvmRows("-", 0, 10), doctest::Contains("not from standard input"),
                       ParseError);
}

TEST_CASE("ChoosePositiveLabel gives the whole-file read's label mapping") {
  test::Scratch tmp;
  const std::string path = tmp("f.svm");
  struct Case {
    const char* name;
    std::string text;
    std::optional<double> positive_label;
    double want;  // NaN: every row -1
    std::vector<double> y;
    double negative;  // the original -1 value (NaN: unknown)
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Case cases[] = {
      {"two classes: the larger", "0 1:1\n3 2:1\n\n0 3:1\r\n3 1:2\n", {}, 3.0, {-1, 1, -1, 1},
       0.0},
      {"two classes, positive_label the smaller", "0 1:1\n3 2:1\n0 3:1\n", 0.0, 0.0, {1, -1, 1},
       3.0},
      {"three classes with positive_label", "1 1:1\n# x\n2 2:1\n3 1:1\n2 2:2\n", 2.0, 2.0,
       {-1, 1, -1, 1}, nan},
      {"single class, positive", "4 1:1\n4 2:1\n", {}, 4.0, {1, 1}, nan},
      {"single class, negative", "-2 1:1\n\n-2 2:1\n-2.0 1:3", {}, nan, {-1, -1, -1}, -2.0},
      {"single class, zero (-0 first)", "-0 1:1\n0 2:1\n", {}, nan, {-1, -1}, 0.0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    test::WriteText(path, c.text);
    ReadOptions whole_opt = Options();
    whole_opt.positive_label = c.positive_label;
    ReadInfo info;
    const Dataset whole = ReadLibsvm(path, whole_opt, info);
    const RowCount rc = CountLibsvmRows(path, 0, c.text.size());
    CHECK(rc.label_counts == info.label_counts);
    // -0 counts as 0 (== alone would not tell them apart).
    for (const auto& lc : rc.label_counts) CHECK_FALSE(test::SameBits(lc.first, -0.0));
    const double pos = ChoosePositiveLabel(rc.label_counts, whole_opt, path);
    CHECK(test::SameBits(pos, c.want));
    CHECK(test::SameBits(whole.positive_label, c.want));
    CHECK(test::SameBits(whole.negative_label, c.negative));
    REQUIRE(whole.NumRows() == static_cast<Offset>(c.y.size()));
    CHECK(std::equal(c.y.begin(), c.y.end(), whole.Labels().begin()));
    // Read with the chosen mapping fixed (as a shard is): the same labels and +1 value.
    ReadOptions fixed = Options();
    fixed.fixed_positive_label = pos;
    const Dataset shard = ReadLibsvm(path, fixed);
    CHECK(test::SameBytes(shard.Labels(), whole.Labels()));
    CHECK(test::SameBits(shard.positive_label, whole.positive_label));
    // A shard holding only the last row maps it as the whole file does.
    fixed.range_begin = c.text.rfind('\n', c.text.size() - 2) + 1;
    const Dataset tail = ReadLibsvm(path, fixed);
    REQUIRE(tail.NumRows() == 1);
    CHECK(tail.Label(0) == c.y.back());
  }

  // Errors, as the whole-file read gives them.
  test::WriteText(path, "1 1:1\n2 1:1\n3 1:1\n");
  const RowCount three = CountLibsvmRows(path, 0, 100);
  const std::string more =
      path + ": more than two classes (labels 1, 2, 3); choose the +1 class with a positive label";
  CHECK_THROWS_WITH_AS(ChoosePositiveLabel(three.label_counts, ReadOptions{}, path), more.c_str(),
                       ParseError);
  CHECK_THROWS_WITH_AS(ReadLibsvm(path), doctest::Contains("more than two classes"), ParseError);
  ReadOptions seven;
  seven.positive_label = 7.0;
  long long line = 0;
  const std::string whole_error = ErrorOf(path, seven, &line);
  CHECK(whole_error == path + ": positive label 7 does not occur (labels: 1, 2, 3)");
  CHECK_THROWS_WITH_AS(ChoosePositiveLabel(three.label_counts, seven, path), whole_error.c_str(),
                       ParseError);
  const std::string none = path + ": no data rows";
  CHECK_THROWS_WITH_AS(ChoosePositiveLabel({}, ReadOptions{}, path), none.c_str(), ParseError);
}

TEST_CASE("CountLibsvmRows and SeekLibsvmRow across the 4 MiB blocks they read") {
  test::Scratch tmp;
  const std::string path = tmp("big.svm");
  constexpr std::size_t kBlock = std::size_t{4} << 20;
  // A comment line up to 2 bytes before the block boundary, so that the label "-17.25" of the
  // next line is split across it; then a blank line across the second boundary, then a row.
  std::string text = "1 1:1\n#";
  text.append(kBlock - 2 - text.size() - 1, 'x');
  text += "\n";
  REQUIRE(text.size() == kBlock - 2);
  text += "-17.25 2:1\n";
  text.append(2 * kBlock - 1 - text.size(), ' ');
  text += "\t\r\n+1 3:1";
  test::WriteText(path, text);

  const RowCount rc = CountLibsvmRows(path, 0, text.size());
  CHECK(rc.rows == 3);
  CHECK(rc.lines == 5);
  const std::vector<std::pair<double, Offset>> want{{-17.25, 1}, {1.0, 2}};
  CHECK(rc.label_counts == want);
  ReadInfo info;
  const Dataset whole = ReadLibsvm(path, Options(), info);
  CHECK(info.label_counts == want);
  CHECK(info.lines == 5);
  long long skipped = 0;
  CHECK(SeekLibsvmRow(path, 0, 1, &skipped) == kBlock - 2);
  CHECK(skipped == 2);
  CHECK(SeekLibsvmRow(path, 6, 1, &skipped) == text.rfind("+1"));
  CHECK(skipped == 3);
  // A chunk boundary inside the split label: that line belongs to the first chunk only.
  const RowCount first = CountLibsvmRows(path, 0, kBlock);
  const RowCount second = CountLibsvmRows(path, kBlock, text.size());
  const std::vector<std::pair<double, Offset>> first_want{{-17.25, 1}, {1.0, 1}};
  CHECK(first.label_counts == first_want);
  CHECK(first.rows == 2);
  CHECK(second.aligned_begin == text.find("\n", kBlock) + 1);
  CHECK(second.rows == 1);
  CHECK(second.lines == 2);
}

TEST_CASE("Dataset::SetNumFeatures widens sparse data; dense data and narrowing are refused") {
  Dataset ds = Dataset::FromCsr(3, {0, 2, 3}, {0, 2, 1}, {1.5f, -2.0f, 4.0f}, {1.0, -1.0});
  ds.SetNumFeatures(3);
  CHECK(ds.NumFeatures() == 3);
  ds.SetNumFeatures(5);
  CHECK(ds.NumFeatures() == 5);
  CHECK(ds.NumNonZeros() == 3);
  CHECK_THROWS_AS(ds.SetNumFeatures(4), std::logic_error);
  CHECK(ds.NumFeatures() == 5);
  ds.Densify();
  const std::vector<Value> dense{1.5f, 0, -2.0f, 0, 0, 0, 4.0f, 0, 0, 0};
  REQUIRE(ds.Values().size() == dense.size());
  CHECK(std::equal(dense.begin(), dense.end(), ds.Values().begin()));
  CHECK_THROWS_AS(ds.SetNumFeatures(6), std::logic_error);
  CHECK(ds.NumFeatures() == 5);
}
