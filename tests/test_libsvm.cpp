// LIBSVM reader/writer, IDX conversion and the info/convert command line.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "memsgd/generate.hpp"
#include "memsgd/idx.hpp"
#include "memsgd/libsvm.hpp"
#include "support.hpp"

using namespace memsgd;
namespace fs = std::filesystem;

namespace {

bool HaveTool(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// Exit code of a shell command.
int Run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

void CheckSameData(const Dataset& a, const Dataset& b) {
  REQUIRE(a.NumRows() == b.NumRows());
  REQUIRE(a.NumFeatures() == b.NumFeatures());
  REQUIRE(a.IsDense() == b.IsDense());
  REQUIRE(a.Values().size() == b.Values().size());
  CHECK(std::equal(a.Labels().begin(), a.Labels().end(), b.Labels().begin()));
  CHECK(std::equal(a.ColIdx().begin(), a.ColIdx().end(), b.ColIdx().begin(), b.ColIdx().end()));
  CHECK(std::equal(a.RowPtr().begin(), a.RowPtr().end(), b.RowPtr().begin(), b.RowPtr().end()));
  // Bit-exact values.
  CHECK(std::memcmp(a.Values().data(), b.Values().data(), a.Values().size_bytes()) == 0);
}

void CheckGolden(const Dataset& ds) {
  REQUIRE(ds.NumRows() == 5);
  CHECK(ds.NumFeatures() == 10);
  CHECK_FALSE(ds.IsDense());
  CHECK(ds.NumNonZeros() == 8);
  CHECK(ds.positive_label == 1.0);
  CHECK(ds.negative_label == -1.0);
  const std::vector<double> labels{1, -1, 1, -1, 1};
  CHECK(std::equal(labels.begin(), labels.end(), ds.Labels().begin()));
  auto r0 = ds.Sparse(0);
  REQUIRE(r0.nnz == 3);
  CHECK(r0.idx[0] == 0);
  CHECK(r0.idx[1] == 2);
  CHECK(r0.idx[2] == 9);
  CHECK(r0.val[0] == 0.5f);
  CHECK(r0.val[1] == -2.0f);
  CHECK(r0.val[2] == 1e-3f);
  auto r1 = ds.Sparse(1);  // qid ignored, explicit zero kept
  REQUIRE(r1.nnz == 2);
  CHECK(r1.idx[0] == 1);
  CHECK(r1.val[0] == 4.0f);
  CHECK(r1.idx[1] == 4);
  CHECK(r1.val[1] == 0.0f);
  CHECK(ds.Sparse(2).nnz == 0);  // label-only row
  auto r3 = ds.Sparse(3);
  REQUIRE(r3.nnz == 2);
  CHECK(r3.idx[0] == 3);
  CHECK(r3.val[0] == 125.0f);
  CHECK(r3.idx[1] == 6);
  CHECK(r3.val[1] == -0.0078125f);
  auto r4 = ds.Sparse(4);  // last line without a final newline
  REQUIRE(r4.nnz == 1);
  CHECK(r4.idx[0] == 9);
  CHECK(r4.val[0] == 3.0f);
}

}  // namespace

TEST_CASE("ReadLibsvm: golden file (comments, blank lines, qid, tabs, explicit zeros, label-only "
          "rows, no final newline)") {
  ReadInfo info;
  const Dataset ds = ReadLibsvm(test::Fixture("golden.svm"), {}, info);
  CheckGolden(ds);
  CHECK(info.compression == "none");
  CHECK(info.lines == 7);
  CHECK(info.entries == 8);
  REQUIRE(info.label_counts.size() == 2);
  CHECK(info.label_counts[0] == std::pair<double, Offset>{-1.0, 2});
  CHECK(info.label_counts[1] == std::pair<double, Offset>{1.0, 3});
}

TEST_CASE("ReadLibsvm: CRLF line endings read the same") {
  CheckGolden(ReadLibsvm(test::Fixture("golden_crlf.svm")));
}

TEST_CASE("ReadLibsvm: gzip, bzip2 and xz fixtures, detected by magic bytes") {
  for (const char* name : {"golden.svm.gz", "golden.svm.bz2", "golden.svm.xz",
                           "golden_gzip_no_extension.dat"}) {
    CAPTURE(name);
    ReadInfo info;
    CheckGolden(ReadLibsvm(test::Fixture(name), {}, info));
    CHECK(info.compression != "none");
  }
}

TEST_CASE("ReadLibsvm: label mappings") {
  SUBCASE("{0,1}: 1 is +1") {
    const Dataset ds = ReadLibsvm(test::Fixture("labels_01.svm"));
    const std::vector<double> y{-1, 1, -1};
    CHECK(std::equal(y.begin(), y.end(), ds.Labels().begin()));
    CHECK(ds.positive_label == 1.0);
    CHECK(ds.negative_label == 0.0);
  }
  SUBCASE("{1,2}: 2 is +1") {
    const Dataset ds = ReadLibsvm(test::Fixture("labels_12.svm"));
    CHECK(ds.Label(0) == 1.0);
    CHECK(ds.Label(1) == -1.0);
    CHECK(ds.positive_label == 2.0);
    CHECK(ds.negative_label == 1.0);
  }
  SUBCASE("positive_label picks the +1 class of a multi-class file") {
    ReadOptions opt;
    opt.positive_label = 2.0;
    ReadInfo info;
    const Dataset ds = ReadLibsvm(test::Fixture("multiclass.svm"), opt, info);
    const std::vector<double> y{-1, 1, -1, 1};
    CHECK(std::equal(y.begin(), y.end(), ds.Labels().begin()));
    CHECK(ds.positive_label == 2.0);
    CHECK(std::isnan(ds.negative_label));  // two other classes
    REQUIRE(info.label_counts.size() == 3);
    CHECK(info.label_counts[1] == std::pair<double, Offset>{2.0, 2});
  }
  SUBCASE("positive_label on a two-class file can pick the smaller value") {
    ReadOptions opt;
    opt.positive_label = 0.0;
    const Dataset ds = ReadLibsvm(test::Fixture("labels_01.svm"), opt);
    CHECK(ds.Label(0) == 1.0);
    CHECK(ds.Label(1) == -1.0);
    CHECK(ds.positive_label == 0.0);
    CHECK(ds.negative_label == 1.0);
  }
  SUBCASE("positive_label that does not occur is an error") {
    ReadOptions opt;
    opt.positive_label = 7.0;
    CHECK_THROWS_WITH_AS(ReadLibsvm(test::Fixture("labels_01.svm"), opt),
                         doctest::Contains("positive label 7 does not occur"), ParseError);
  }
  SUBCASE("fixed_positive_label (test sets): any number of classes") {
    ReadOptions opt;
    opt.fixed_positive_label = 1.0;
    const Dataset ds = ReadLibsvm(test::Fixture("multiclass.svm"), opt);
    const std::vector<double> y{1, -1, -1, -1};
    CHECK(std::equal(y.begin(), y.end(), ds.Labels().begin()));
    CHECK(ds.positive_label == 1.0);
    CHECK(std::isnan(ds.negative_label));
    // A value absent from the file is fine for a test set: every row is -1.
    opt.fixed_positive_label = 5.0;
    const Dataset none = ReadLibsvm(test::Fixture("labels_12.svm"), opt);
    CHECK(none.Label(0) == -1.0);
    CHECK(none.Label(1) == -1.0);
  }
  SUBCASE("a single class maps to +1 if positive, else -1") {
    test::Scratch tmp;
    test::WriteText(tmp("pos"), "3 1:1\n3 2:1\n");
    test::WriteText(tmp("neg"), "0 1:1\n0 2:1\n");
    const Dataset p = ReadLibsvm(tmp("pos"));
    CHECK(p.Label(0) == 1.0);
    CHECK(p.positive_label == 3.0);
    CHECK(std::isnan(p.negative_label));
    const Dataset n = ReadLibsvm(tmp("neg"));
    CHECK(n.Label(1) == -1.0);
    CHECK(n.negative_label == 0.0);
    CHECK(std::isnan(n.positive_label));
  }
  SUBCASE("1, +1, 1.0 and 1e0 are one class; -0 and 0 too") {
    test::Scratch tmp;
    test::WriteText(tmp("f"), "1 1:1\n+1 1:1\n1.0 1:1\n1e0 1:1\n-0 1:1\n0 1:1\n");
    const Dataset ds = ReadLibsvm(tmp("f"));
    const std::vector<double> y{1, 1, 1, 1, -1, -1};
    CHECK(std::equal(y.begin(), y.end(), ds.Labels().begin()));
  }
}

TEST_CASE("ReadLibsvm: fixed num_features and ignore_extra_features") {
  ReadOptions opt;
  opt.num_features = 5;
  CHECK_THROWS_WITH_AS(ReadLibsvm(test::Fixture("golden.svm"), opt),
                       doctest::Contains("golden.svm:2: index 10 exceeds the number of features (5)"),
                       ParseError);
  opt.ignore_extra_features = true;
  ReadInfo info;
  const Dataset ds = ReadLibsvm(test::Fixture("golden.svm"), opt, info);
  CHECK(ds.NumFeatures() == 5);
  CHECK(ds.NumNonZeros() == 5);  // 1:0.5 3:-2 | 2:4 5:0 | 4:125
  CHECK(info.dropped_entries == 3);
  opt = {};
  opt.num_features = 20;  // larger than the file's largest index
  CHECK(ReadLibsvm(test::Fixture("golden.svm"), opt).NumFeatures() == 20);
}

TEST_CASE("ReadLibsvm: dense files become dense storage") {
  const Dataset ds = ReadLibsvm(test::Fixture("dense.svm"));
  REQUIRE(ds.IsDense());
  CHECK(ds.NumFeatures() == 3);
  CHECK(ds.Dense(1).val[2] == 6.0f);
  CHECK(ds.Dense(2).val[1] == 0.0f);
  ReadOptions opt;
  opt.densify_at = 2.0;  // never
  CHECK_FALSE(ReadLibsvm(test::Fixture("dense.svm"), opt).IsDense());
}

TEST_CASE("ReadLibsvm: every bad fixture fails with its line number and reason") {
  struct Case {
    const char* file;
    long long line;
    const char* fragment;
  };
  const std::vector<Case> cases = {
      {"bad_label.svm", 3, "bad label"},
      {"missing_label.svm", 1, "bad label"},
      {"index_zero.svm", 3, "bad index 0 (indices are 1-based)"},
      {"crlf_index_zero.svm", 3, "bad index 0"},
      {"negative_index.svm", 2, "negative index"},
      {"nonincreasing_index.svm", 3, "indices not increasing (2 after 3)"},
      {"duplicate_index.svm", 1, "duplicate index 3"},
      {"missing_colon.svm", 2, "missing ':'"},
      {"empty_value.svm", 2, "empty value"},
      {"empty_index.svm", 1, "empty index"},
      {"bad_index_text.svm", 1, "bad index (not an integer)"},
      {"bad_value.svm", 2, "bad value"},
      {"hex_value.svm", 1, "bad value"},
      {"value_trailing_garbage.svm", 1, "bad value"},
      {"double_colon.svm", 1, "bad value"},
      {"nan_value.svm", 2, "value is not finite"},
      {"inf_value.svm", 2, "value is not finite"},
      {"nan_label.svm", 2, "label is not finite"},
      {"inf_label.svm", 3, "label is not finite"},
      {"overflow_value.svm", 2, "value out of range"},
      {"float_overflow_value.svm", 1, "value out of range for float32"},
      {"overflow_label.svm", 2, "label out of range"},
      {"index_too_large.svm", 2, "index exceeds 2147483647"},
      {"index_overflow.svm", 1, "index exceeds 2147483647"},
      {"bad_qid.svm", 1, "bad qid"},
      {"three_classes.svm", 5, "more than two classes"},
      {"empty.svm", 0, "no data rows"},
      {"only_comments.svm", 0, "no data rows"},
      {"binary_garbage.bin", 3, "binary data"},
      {"nul_in_token.svm", 2, "binary data"},
      {"truncated.svm.gz", 0, "gzip data is truncated"},
      {"truncated.svm.bz2", 0, "bzip2 data is truncated"},
      {"truncated.svm.xz", 0, "xz data is truncated"},
      {"corrupt.svm.gz", 0, "gzip data is corrupt"},
  };
  std::set<std::string> listed;
  for (const auto& c : cases) {
    listed.insert(c.file);
    CAPTURE(c.file);
    const std::string path = test::Fixture(std::string("bad/") + c.file);
    REQUIRE(fs::exists(path));
    try {
      (void)ReadLibsvm(path);
      FAIL("no ParseError for ", c.file);
    } catch (const ParseError& e) {
      CHECK(e.Line() == c.line);
      CHECK(e.File() == path);
      CHECK(std::string(e.what()).find(c.fragment) != std::string::npos);
      // what() = FILE[:LINE]: REASON [(token 'TOK')]
      const std::string prefix = c.line > 0 ? path + ":" + std::to_string(c.line) + ": " : path + ": ";
      CHECK(std::string(e.what()).rfind(prefix, 0) == 0);
      if (c.line > 0) CHECK_FALSE(e.Token().empty());
    }
  }
  // Every file in bad/ has an expectation above.
  for (const auto& e : fs::directory_iterator(test::Fixture("bad"))) {
    CAPTURE(e.path().string());
    CHECK(listed.count(e.path().filename().string()) == 1);
  }
}

TEST_CASE("ReadLibsvm: error message format") {
  try {
    (void)ReadLibsvm(test::Fixture("bad/index_zero.svm"));
    FAIL("expected a ParseError");
  } catch (const ParseError& e) {
    CHECK(std::string(e.what()) == test::Fixture("bad/index_zero.svm") +
                                       ":3: bad index 0 (indices are 1-based) (token '0:1')");
    CHECK(e.Token() == "0:1");
    CHECK(e.Reason() == "bad index 0 (indices are 1-based)");
  }
}

TEST_CASE("ReadLibsvm: unreadable inputs") {
  test::Scratch tmp;
  CHECK_THROWS_WITH_AS(ReadLibsvm(tmp("missing.svm")),
                       doctest::Contains("cannot open: No such file or directory"), ParseError);
  CHECK_THROWS_WITH_AS(ReadLibsvm(tmp.dir.string()), doctest::Contains("is a directory"),
                       ParseError);
  test::WriteText(tmp("secret.svm"), "1 1:1\n");
  ::chmod(tmp("secret.svm").c_str(), 0);
  if (::geteuid() == 0) {
    MESSAGE("running as root: the no-permission case cannot be tested");
  } else {
    CHECK_THROWS_WITH_AS(ReadLibsvm(tmp("secret.svm")), doctest::Contains("Permission denied"),
                         ParseError);
  }
}

TEST_CASE("ReadLibsvm: lines longer than the read block, many blocks, underflow") {
  test::Scratch tmp;
  std::string text = "1";
  for (int j = 1; j <= 300000; ++j) {
    text.append(" ").append(std::to_string(j)).append(":").append(std::to_string(j % 7));
  }
  text += "\n-1 5:1e-50 6:2.5\n";  // 1e-50 underflows float32 to 0: read as an explicit zero
  test::WriteText(tmp("long.svm"), text);
  ReadOptions opt;
  opt.densify_at = 2;
  const Dataset ds = ReadLibsvm(tmp("long.svm"), opt);
  REQUIRE(ds.NumRows() == 2);
  CHECK(ds.NumFeatures() == 300000);
  CHECK(ds.Sparse(0).nnz == 300000);
  CHECK(ds.Sparse(0).val[299999] == static_cast<float>(300000 % 7));
  CHECK(ds.Sparse(1).nnz == 2);
  CHECK(ds.Sparse(1).val[0] == 0.0f);
  CHECK(ds.Sparse(1).val[1] == 2.5f);
}

TEST_CASE("WriteLibsvm -> ReadLibsvm round trip is bit-exact") {
  test::Scratch tmp;
  GenerateOptions g;
  g.like = Shape::kRcv1;
  g.rows = 3000;
  g.features = 5000;
  g.seed = test::Seed();
  Dataset ds = GenerateLike(g);
  WriteLibsvm(ds, tmp("rt.svm"));
  CHECK(tmp.Count(".tmp.") == 0);
  ReadOptions opt;
  opt.num_features = ds.NumFeatures();
  const Dataset back = ReadLibsvm(tmp("rt.svm"), opt);
  CheckSameData(ds, back);

  // Dense storage writes only nonzeros and reads back the same dense matrix.
  Dataset dense = ReadLibsvm(test::Fixture("dense.svm"));
  REQUIRE(dense.IsDense());
  WriteLibsvm(dense, tmp("dense.svm"));
  CHECK(test::ReadText(tmp("dense.svm")) == "1 1:1 2:2 3:3\n-1 1:4 2:5 3:6\n1 1:7 3:9\n");
  CheckSameData(dense, ReadLibsvm(tmp("dense.svm")));

  // Extreme float values survive: smallest normal, subnormal, largest, -0, thirds, 2^24 + 2.
  const std::vector<Value> vals{1.17549435e-38f, 1.4e-45f, 3.40282347e+38f, -0.0f, 1.0f / 3.0f,
                                16777218.0f, -0.1f};
  const std::vector<Index> idx{0, 1, 2, 3, 4, 5, 6};
  Dataset ex = Dataset::FromCsr(7, {0, 7}, idx, vals, {1.0});
  WriteLibsvm(ex, tmp("ex.svm"));
  opt.num_features = 7;
  opt.densify_at = 2;  // keep CSR to compare
  CheckSameData(ex, ReadLibsvm(tmp("ex.svm"), opt));
}

TEST_CASE("WriteLibsvm writes the original label values") {
  test::Scratch tmp;
  const Dataset ds = ReadLibsvm(test::Fixture("labels_12.svm"));
  WriteLibsvm(ds, tmp("out.svm"));
  CHECK(test::ReadText(tmp("out.svm")) == "2 1:1\n1 1:2\n");
  const Dataset back = ReadLibsvm(tmp("out.svm"));
  CHECK(back.positive_label == 2.0);
  CHECK(back.negative_label == 1.0);
  // Unwritable destination: an exception, nothing left behind.
  CHECK_THROWS(WriteLibsvm(ds, tmp("no/such/dir/out.svm")));
}

TEST_CASE("ReadLibsvm: gzip/bzip2/xz round trips of a multi-block file") {
  test::Scratch tmp;
  GenerateOptions g;
  g.like = Shape::kRcv1;
  g.rows = 3000;  // about 3.7 MB of text, 1.3-1.7 MB compressed: several blocks either way
  g.features = 20000;
  g.seed = test::Seed() + 1;
  const Dataset ds = GenerateLike(g);
  const std::string plain = tmp("data.svm");
  WriteLibsvm(ds, plain);
  ReadOptions opt;
  opt.num_features = ds.NumFeatures();
  struct Tool {
    const char* name;
    const char* cmd;
    const char* kind;
  };
  for (const Tool& t : {Tool{"gzip", "gzip -1 -c", "gzip"}, Tool{"bzip2", "bzip2 -1 -c", "bzip2"},
                        Tool{"xz", "xz -0 -T1 -c", "xz"}}) {
    CAPTURE(t.name);
    if (!HaveTool(t.name)) {
      MESSAGE("skipping the ", t.name, " round trip: the tool is not installed");
      continue;
    }
    const std::string packed = tmp(std::string("data.") + t.name);
    REQUIRE(Run(std::string(t.cmd) + " " + Quote(plain) + " > " + Quote(packed)) == 0);
    ReadInfo info;
    CheckSameData(ds, ReadLibsvm(packed, opt, info));
    CHECK(info.compression == t.kind);
    // ReadFileBytes decompresses the same bytes.
    if (info.compression == "gzip") {
      const auto bytes = ReadFileBytes(packed);
      CHECK(std::string(bytes.begin(), bytes.end()) == test::ReadText(plain));
    }
  }
}

TEST_CASE("ReadLibsvm: concatenated gzip/bzip2/xz streams read as one file") {
  test::Scratch tmp;
  for (const char* ext : {".gz", ".bz2", ".xz"}) {
    CAPTURE(ext);
    const std::string one = test::ReadText(test::Fixture(std::string("golden.svm") + ext));
    // golden.svm has no final newline: the first copy's last line runs into the second's
    // comment line, which is fine ("+1 10:3# golden file: ...").
    test::WriteText(tmp("twice"), one + one);
    ReadInfo info;
    const Dataset ds = ReadLibsvm(tmp("twice"), {}, info);
    CHECK(ds.NumRows() == 10);
    CHECK(ds.NumNonZeros() == 16);
    CHECK(info.lines == 13);
    // Trailing garbage after the last stream is an error, not silently ignored.
    test::WriteText(tmp("garbage"), one + "garbage");
    CHECK_THROWS_AS(ReadLibsvm(tmp("garbage")), ParseError);
  }
}

TEST_CASE("ReadLibsvm: a9a (shared data)") {
  if (!test::HaveSharedData("a9a")) {
    MESSAGE("skipping: ../shared/data/a9a not present");
    return;
  }
  ReadInfo info;
  const Dataset ds = ReadLibsvm(test::SharedData("a9a"), {}, info);
  CHECK(ds.NumRows() == 32561);
  CHECK(ds.NumFeatures() == 123);
  CHECK(ds.NumNonZeros() == 451592);
  CHECK_FALSE(ds.IsDense());
  Offset negatives = 0;
  for (double y : ds.Labels()) negatives += y < 0;
  CHECK(negatives == 24720);
  CHECK(ds.positive_label == 1.0);
  CHECK(ds.negative_label == -1.0);
}

// ---------------------------------------------------------------------------------------------
// IDX

namespace {

std::string IdxBytes(std::uint8_t type, const std::vector<std::uint32_t>& dims,
                     const std::vector<std::uint8_t>& data) {
  std::string s{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (auto d : dims) {
    for (int k = 3; k >= 0; --k) s += static_cast<char>((d >> (8 * k)) & 0xff);
  }
  s.append(data.begin(), data.end());
  return s;
}

}  // namespace

TEST_CASE("IDX: read, validate, convert to a binary task") {
  test::Scratch tmp;
  // 3 images of 2x2 pixels, labels 0, 5, 2.
  test::WriteText(tmp("img"),
                  IdxBytes(0x08, {3, 2, 2}, {0, 255, 51, 0, 0, 0, 0, 0, 10, 20, 30, 40}));
  test::WriteText(tmp("lab"), IdxBytes(0x08, {3}, {0, 5, 2}));
  const IdxArray a = ReadIdx(tmp("img"));
  CHECK(a.dims == std::vector<std::uint32_t>{3, 2, 2});
  CHECK(a.data.size() == 12);

  IdxTaskOptions opt;
  opt.positive_classes = {2};
  const Dataset ds = IdxBinaryTask(tmp("img"), tmp("lab"), opt);
  REQUIRE(ds.NumRows() == 3);
  CHECK(ds.NumFeatures() == 4);
  CHECK(ds.Label(0) == -1.0);
  CHECK(ds.Label(2) == 1.0);
  REQUIRE(ds.Sparse(0).nnz == 2);
  CHECK(ds.Sparse(0).idx[0] == 1);
  CHECK(ds.Sparse(0).val[0] == 1.0f);
  CHECK(ds.Sparse(0).val[1] == static_cast<float>(51 / 255.0));
  CHECK(ds.Sparse(1).nnz == 0);
  CHECK(ds.Sparse(2).nnz == 4);

  // Errors.
  test::WriteText(tmp("short"), IdxBytes(0x08, {3, 2, 2}, {1, 2, 3}));
  CHECK_THROWS_WITH_AS(ReadIdx(tmp("short")), doctest::Contains("truncated"), ParseError);
  test::WriteText(tmp("long"), IdxBytes(0x08, {1}, {1, 2}));
  CHECK_THROWS_WITH_AS(ReadIdx(tmp("long")), doctest::Contains("trailing bytes"), ParseError);
  test::WriteText(tmp("magic"), "\x01\x02\x08\x01");
  CHECK_THROWS_WITH_AS(ReadIdx(tmp("magic")), doctest::Contains("bad magic"), ParseError);
  test::WriteText(tmp("float"), IdxBytes(0x0D, {1}, {0, 0, 0, 0}));
  CHECK_THROWS_WITH_AS(ReadIdx(tmp("float")), doctest::Contains("unsupported IDX element type"),
                       ParseError);
  test::WriteText(tmp("lab2"), IdxBytes(0x08, {2}, {0, 1}));
  CHECK_THROWS_WITH_AS(IdxBinaryTask(tmp("img"), tmp("lab2"), opt),
                       doctest::Contains("does not match image count"), ParseError);
  CHECK_THROWS_WITH_AS(IdxBinaryTask(tmp("lab"), tmp("lab"), opt),
                       doctest::Contains("at least 2 dimensions"), ParseError);
}

TEST_CASE("IDX: Fashion-MNIST test set (Debian dataset-fashion-mnist)") {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  if (!fs::exists(dir + "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipping: dataset-fashion-mnist is not installed");
    return;
  }
  const Dataset ds = IdxBinaryTask(dir + "t10k-images-idx3-ubyte.gz",
                                   dir + "t10k-labels-idx1-ubyte.gz",
                                   {FashionMnistDefaultPositive(), 255.0});
  CHECK(ds.NumRows() == 10000);
  CHECK(ds.NumFeatures() == 784);
  Offset pos = 0;
  for (double y : ds.Labels()) pos += y > 0;
  CHECK(pos == 5000);  // 1,000 images per class, 5 positive classes
  float hi = 0;
  for (Value v : ds.Values()) hi = std::max(hi, v);
  CHECK(hi == 1.0f);
}

// ---------------------------------------------------------------------------------------------
// Command line

TEST_CASE("CLI: memsgd info") {
  test::Scratch tmp;
  const std::string bin = Quote(test::Binary());
  const std::string quiet = " >" + Quote(tmp("out")) + " 2>" + Quote(tmp("err"));
  CHECK(Run(bin + " info " + Quote(test::Fixture("golden.svm")) + quiet) == 0);
  const std::string out = test::ReadText(tmp("out"));
  CHECK(out.find("rows          5") != std::string::npos);
  CHECK(out.find("-1: 2 (-> -1), 1: 3 (-> +1)") != std::string::npos);
  CHECK(Run(bin + " info - < " + Quote(test::Fixture("golden.svm.xz")) + quiet) == 0);  // stdin
  CHECK(test::ReadText(tmp("out")).find("compression   xz") != std::string::npos);
  CHECK(Run(bin + " info --help" + quiet) == 0);
  CHECK(Run(bin + " info" + quiet) == 1);
  CHECK(Run(bin + " info --no-such-option x" + quiet) == 1);
  CHECK(Run(bin + " info " + Quote(test::Fixture("bad/index_zero.svm")) + quiet) == 2);
  CHECK(test::ReadText(tmp("err")).find("index_zero.svm:3: bad index 0") != std::string::npos);
  CHECK(Run(bin + " info " + Quote(tmp("missing")) + quiet) == 2);
  CHECK(Run(bin + " info " + Quote(test::Fixture("multiclass.svm")) + quiet) == 2);
  CHECK(Run(bin + " info --positive-label 2 " + Quote(test::Fixture("multiclass.svm")) + quiet) ==
        0);
}

TEST_CASE("CLI: memsgd convert idx") {
  test::Scratch tmp;
  const std::string bin = Quote(test::Binary());
  const std::string quiet = " >" + Quote(tmp("log")) + " 2>&1";
  test::WriteText(tmp("img"), IdxBytes(0x08, {2, 1, 3}, {0, 128, 255, 7, 0, 0}));
  test::WriteText(tmp("lab"), IdxBytes(0x08, {2}, {3, 1}));
  test::WriteText(tmp("lab3"), IdxBytes(0x08, {3}, {3, 1, 1}));
  const std::string io = " --images " + Quote(tmp("img")) + " --labels " + Quote(tmp("lab"));
  CHECK(Run(bin + " convert idx" + io + " --positive-class 1 --out " + Quote(tmp("a.svm")) + quiet) == 0);
  CHECK(test::ReadText(tmp("a.svm")) == "-1 2:0.5019608 3:1\n1 1:0.02745098\n");
  CHECK(Run(bin + " convert idx" + io + " --scale 1 --out " + Quote(tmp("b.svm")) + quiet) == 0);
  CHECK(test::ReadText(tmp("b.svm")) == "1 2:128 3:255\n-1 1:7\n");  // default positives 0,2,3,4,6
  CHECK(Run(bin + " convert --help" + quiet) == 0);
  // Usage errors: exit 1, no output.
  CHECK(Run(bin + " convert idx" + io + quiet) == 1);  // no --out
  CHECK(Run(bin + " convert csv" + io + " --out " + Quote(tmp("c.svm")) + quiet) == 1);
  CHECK(Run(bin + " convert idx" + io + " --positive-classes 1,x --out " + Quote(tmp("c.svm")) + quiet) == 1);
  CHECK(Run(bin + " convert idx" + io + " --positive-class 1 --positive-classes 2 --out " +
            Quote(tmp("c.svm")) + quiet) == 1);
  // Data errors: exit 2, nothing left behind.
  CHECK(Run(bin + " convert idx --images " + Quote(tmp("img")) + " --labels " + Quote(tmp("lab3")) +
            " --out " + Quote(tmp("c.svm")) + quiet) == 2);
  CHECK(test::ReadText(tmp("log")).find("does not match image count") != std::string::npos);
  CHECK(Run(bin + " convert idx --images " + Quote(tmp("nope")) + " --labels " + Quote(tmp("lab")) +
            " --out " + Quote(tmp("c.svm")) + quiet) == 2);
  CHECK_FALSE(fs::exists(tmp("c.svm")));
  CHECK(tmp.Count(".tmp.") == 0);
}
