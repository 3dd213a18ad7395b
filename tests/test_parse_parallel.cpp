// The parallel LIBSVM parser (ReadOptions::threads, chunk_bytes) against the sequential one:
// the same Dataset bit for bit, the same ReadInfo, and the same first error (message and line)
// on real data sets, on generated adversarial text (chunk boundaries inside long lines, CRLF,
// blank and comment lines, a byte-order mark, no final newline, compressed input) and on bad
// lines placed in different chunks, for thread counts 1, 2, 3 and 8.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "memsgd/generate.hpp"
#include "memsgd/libsvm.hpp"
#include "support.hpp"

using namespace memsgd;
namespace fs = std::filesystem;

namespace {


void Write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

bool HaveTool(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// What one read gave: the data and ReadInfo, or the error.
struct Outcome {
  bool ok = false;
  Dataset data;
  ReadInfo info;
  std::string what;
  long long line = -1;
};

Outcome Read(const std::string& path, ReadOptions opt, int threads, std::size_t chunk) {
  opt.threads = threads;
  opt.chunk_bytes = chunk;
  Outcome o;
  try {
    o.data = ReadLibsvm(path, opt, o.info);
    o.ok = true;
  } catch (const ParseError& e) {
    o.what = e.what();
    o.line = e.Line();
  }
  return o;
}

void CheckSame(const Outcome& a, const Outcome& b) {
  REQUIRE(a.ok == b.ok);
  if (!a.ok) {
    CHECK(a.what == b.what);
    CHECK(a.line == b.line);
    return;
  }
  test::CheckSameRead(a.data, a.info, b.data, b.info);
}

// Every thread count and chunk size against the sequential reader (threads 1, automatic chunks).
void CheckAllWays(const std::string& path, const ReadOptions& opt,
                  const std::vector<std::size_t>& chunks) {
  const Outcome ref = Read(path, opt, 1, 0);
  for (int threads : {1, 2, 3, 8, 0}) {
    for (std::size_t chunk : chunks) {
      CAPTURE(threads);
      CAPTURE(chunk);
      CheckSame(ref, Read(path, opt, threads, chunk));
    }
  }
}

// Adversarial text: rows of very different lengths (some far longer than the chunks), CRLF and
// LF endings, blank and comment lines, trailing comments, qid, tabs, explicit zeros, '+' signs,
// exponents; optionally a byte-order mark and no final newline.
std::string AdversarialText(std::uint64_t seed, int rows, bool bom, bool final_newline) {
  std::mt19937_64 rng(seed);
  std::string s;
  if (bom) s += "\xEF\xBB\xBF";
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  for (int i = 0; i < rows; ++i) {
    const int kind = pick(20);
    const char* eol = pick(3) == 0 ? "\r\n" : "\n";
    if (kind == 0) {
      s += eol;  // blank
      continue;
    }
    if (kind == 1) {
      s += "# a comment line: 1 2:3\n";
      continue;
    }
    if (kind == 2) {
      s += " \t \n";
      continue;
    }
    s += pick(2) ? "+1" : "-1";
    if (pick(5) == 0) s.append(" qid:").append(std::to_string(pick(100)));
    const int nnz = pick(10) == 0 ? 2000 + pick(4000) : pick(30);
    int idx = 0;
    for (int j = 0; j < nnz; ++j) {
      idx += 1 + pick(7);
      s += pick(4) == 0 ? "\t" : " ";
      s.append(std::to_string(idx)).append(":");
      switch (pick(5)) {
        case 0: s += "1"; break;
        case 1: s += "0"; break;
        case 2: s.append(std::to_string(pick(1000) - 500)).append("e-3"); break;
        case 3: s.append("+0.").append(std::to_string(pick(100000))); break;
        default: s += std::to_string(static_cast<double>(pick(1 << 20)) / 7.0); break;
      }
    }
    if (pick(8) == 0) s += "  # trailing comment";
    s += eol;
  }
  if (!final_newline) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    s += "\n-1 3:0.5 7:2";
  }
  return s;
}

const std::vector<std::size_t> kSmallChunks = {0, 1, 7, 64, 1000, 65536};

}  // namespace

TEST_CASE("Parallel parse: real data sets read exactly as the sequential reader") {
  for (const char* name : {"a9a", "w8a", "mushrooms", "rcv1_small"}) {
    CAPTURE(name);
    if (!test::HaveSharedData(name)) {
      MESSAGE("skipping: ../shared/data/" << name << " not present");
      continue;
    }
    CheckAllWays(test::SharedData(name), {}, {0, 4096, 100000});
  }
}

TEST_CASE("Parallel parse: adversarial text, every chunk size and thread count") {
  test::Scratch tmp;
  int k = 0;
  for (bool bom : {false, true}) {
    for (bool final_newline : {true, false}) {
      CAPTURE(bom);
      CAPTURE(final_newline);
      const std::string path = tmp("adv" + std::to_string(k++) + ".svm");
      Write(path, AdversarialText(test::Seed() + static_cast<std::uint64_t>(k), 300, bom,
                                  final_newline));
      CheckAllWays(path, {}, kSmallChunks);
    }
  }
  // Degenerate inputs: empty, only blank lines, one line without a newline, a lone BOM.
  for (const std::string& text : {std::string(), std::string("\n\n\r\n"), std::string("1 1:1"),
                                 std::string("\xEF\xBB\xBF"), std::string("\xEF\xBB\xBF" "1 2:3\n"),
                                 std::string("1\n"), std::string("#\n-1 1:2\n")}) {
    const std::string path = tmp("tiny.svm");
    Write(path, text);
    CheckAllWays(path, {}, {0, 1, 2, 3});
  }
}

TEST_CASE("Parallel parse: options that change the result (labels, features, densify)") {
  test::Scratch tmp;
  // Three classes: needs positive_label; fixed label; fixed feature count with dropping.
  std::string text;
  std::mt19937_64 rng(test::Seed());
  for (int i = 0; i < 2000; ++i) {
    text += std::to_string(static_cast<int>(rng() % 3) + 1);
    for (int j = 1; j <= 12; ++j) {
      if (rng() % 2) text.append(" ").append(std::to_string(j)).append(":").append(std::to_string(rng() % 9));
    }
    text += "\n";
  }
  const std::string path = tmp("multi.svm");
  Write(path, text);
  ReadOptions opt;
  CheckAllWays(path, opt, {0, 1, 100, 5000});  // an error: more than two classes
  opt.positive_label = 2;
  CheckAllWays(path, opt, {0, 1, 100, 5000});
  opt.positive_label.reset();
  opt.fixed_positive_label = 3;
  CheckAllWays(path, opt, {0, 100});
  opt.fixed_positive_label.reset();
  opt.positive_label = 1;
  opt.num_features = 8;
  opt.ignore_extra_features = true;
  CheckAllWays(path, opt, {0, 100});
  opt.ignore_extra_features = false;
  CheckAllWays(path, opt, {0, 100});  // an error: index beyond num_features
  opt.num_features = 0;
  opt.densify_at = 0.1;  // dense storage
  CheckAllWays(path, opt, {0, 100});
  opt.densify_at = 2;
  CheckAllWays(path, opt, {0, 100});
}

TEST_CASE("Parallel parse: the first bad line in file order, with its line number") {
  test::Scratch tmp;
  const std::string good = AdversarialText(test::Seed() + 99, 400, false, true);
  std::vector<std::string> lines;
  for (std::size_t p = 0; p < good.size();) {
    const std::size_t nl = good.find('\n', p);
    lines.push_back(good.substr(p, nl - p + 1));
    p = nl + 1;
  }
  const std::vector<std::string> bad = {
      "1 3:abc\n",  "1 5:1 4:1\n", "x 1:1\n", "1 0:1\n",   "1 2:1e99\n",
      "1 2:nan\n",  "1 2\n",       "3 1:1\n",  "7 1:1 1:2\n" /* third class and a duplicate */};
  std::mt19937_64 rng(test::Seed());
  int k = 0;
  for (int trial = 0; trial < 24; ++trial) {
    std::vector<std::string> l = lines;
    // One to three bad lines at random places (so the first may be in any chunk).
    const int nbad = 1 + static_cast<int>(rng() % 3);
    for (int b = 0; b < nbad; ++b) {
      const auto at = static_cast<std::size_t>(rng() % l.size());
      l.insert(l.begin() + static_cast<std::ptrdiff_t>(at), bad[rng() % bad.size()]);
    }
    std::string text;
    for (const auto& s : l) text += s;
    const std::string path = tmp("bad" + std::to_string(k++) + ".svm");
    Write(path, text);
    const Outcome ref = Read(path, {}, 1, 0);
    REQUIRE_FALSE(ref.ok);
    REQUIRE(ref.line > 0);
    for (int threads : {2, 3, 8}) {
      for (std::size_t chunk : {std::size_t{1}, std::size_t{50}, std::size_t{700},
                                std::size_t{10000}}) {
        CAPTURE(threads);
        CAPTURE(chunk);
        CAPTURE(ref.what);
        CheckSame(ref, Read(path, {}, threads, chunk));
      }
    }
  }
}

TEST_CASE("Parallel parse: multi-batch files and compressed input") {
  test::Scratch tmp;
  // ~5 MiB: more than one batch with small chunks, parallel with automatic chunks too.
  GenerateOptions g;
  g.rows = 9000;
  g.features = 5000;
  g.avg_nnz = 60;
  const std::string path = tmp("big.svm");
  WriteLibsvm(GenerateLike(g), path);
  REQUIRE(fs::file_size(path) > (std::uintmax_t{4} << 20));
  CheckAllWays(path, {}, {0, 4096, 300000});
  for (const char* tool : {"gzip", "bzip2", "xz"}) {
    if (!HaveTool(tool)) continue;
    CAPTURE(tool);
    const std::string z = path + "." + tool;
    REQUIRE(std::system((std::string(tool) + " -1 -c " + path + " > " + z).c_str()) == 0);
    const Outcome plain = Read(path, {}, 1, 0);
    const Outcome ref = Read(z, {}, 1, 0);
    REQUIRE(ref.ok);
    CHECK(ref.data.NumRows() == plain.data.NumRows());
    for (int threads : {2, 3}) {
      for (std::size_t chunk : {std::size_t{0}, std::size_t{5000}}) {
        CAPTURE(threads);
        CAPTURE(chunk);
        CheckSame(ref, Read(z, {}, threads, chunk));
      }
    }
  }
  // A truncated gzip stream after good lines: the same error (bytes read before it are the same).
  if (HaveTool("gzip")) {
    const std::string z = tmp("cut.svm.gz");
    REQUIRE(std::system(("gzip -1 -c " + path + " | head -c 600000 > " + z).c_str()) == 0);
    const Outcome ref = Read(z, {}, 1, 0);
    REQUIRE_FALSE(ref.ok);
    for (int threads : {2, 8}) CheckSame(ref, Read(z, {}, threads, 3000));
  }
}

TEST_CASE("Parallel parse: lines longer than the sequential buffer, and the long-line refusal") {
  test::Scratch tmp;
  std::string text = "1 1:1\n-1 2:1\n";
  std::string longline = "+1";
  for (int j = 1; j <= 250000; ++j) longline.append(" ").append(std::to_string(j)).append(":1");
  text += longline + "\n-1 5:1e-50 6:2.5\n" + longline;  // the second long line: no newline
  const std::string path = tmp("long.svm");
  Write(path, text);
  REQUIRE(text.size() > (std::size_t{2} << 20));
  CheckAllWays(path, {}, {0, 100, 1 << 20});
  struct Env {
    explicit Env(const char* v) { ::setenv("MEMSGD_MEMORY_LIMIT", v, 1); }
    ~Env() { ::unsetenv("MEMSGD_MEMORY_LIMIT"); }
  };
  {
    Env e("6M");  // lines may be at most 1.5 MiB: the 2.6 MB line 3 is refused
    const Outcome ref = Read(path, {}, 1, 0);
    REQUIRE_FALSE(ref.ok);
    CHECK(ref.line == 3);
    CHECK(ref.what.find("line longer than") != std::string::npos);
    for (int threads : {2, 3, 8}) {
      for (std::size_t chunk : {std::size_t{0}, std::size_t{100}}) CheckSame(ref, Read(path, {}, threads, chunk));
    }
    if (fs::exists("/dev/zero")) {
      const Outcome z = Read("/dev/zero", {}, 1, 0);
      REQUIRE_FALSE(z.ok);
      for (int threads : {2, 3}) CheckSame(z, Read("/dev/zero", {}, threads, 0));
    }
  }
}
