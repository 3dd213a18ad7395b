// The binary data cache (include/memsgd/data_cache.hpp) and the CLI's --cache, --cache-file and
// --parse-threads: a round trip gives the identical Dataset and ReadInfo; a stale, truncated,
// corrupt, foreign or other-options cache is refused with its reason and the file re-parsed;
// writes are atomic (no temporary left behind).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "memsgd/data_cache.hpp"
#include "memsgd/generate.hpp"
#include "memsgd/libsvm.hpp"
#include "support.hpp"

using namespace memsgd;
namespace fs = std::filesystem;

namespace {


std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void Spit(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}


// Parses, saves, loads: the same data and info.
void RoundTrip(const std::string& data, const std::string& cache, const ReadOptions& opt) {
  ReadInfo info;
  const Dataset ds = ReadLibsvm(data, opt, info);
  SaveDataCache(cache, data, opt, ds, info);
  ReadInfo info2;
  std::string why;
  auto back = LoadDataCache(cache, data, opt, info2, why);
  INFO(why);
  REQUIRE(back.has_value());
  test::CheckSameRead(ds, info, *back, info2);
}

std::string Why(const std::string& cache, const std::string& data, const ReadOptions& opt = {}) {
  ReadInfo info;
  std::string why;
  auto ds = LoadDataCache(cache, data, opt, info, why);
  return ds ? "loaded" : why;
}

void FlipByte(const std::string& path, std::uint64_t offset) {
  std::string s = Slurp(path);
  REQUIRE(offset < s.size());
  s[offset] = static_cast<char>(s[offset] ^ 0x5a);
  Spit(path, s);
}

// A small mixed data file (comments, three classes needing --positive-label not used here).
std::string SmallText() {
  std::string s = "# header\n";
  for (int i = 0; i < 500; ++i) {
    s += (i % 3 == 0) ? "1" : "-1";
    for (int j = 1 + i % 5; j < 40; j += 1 + (i + j) % 7)
      s.append(" ").append(std::to_string(j)).append(":").append(std::to_string((i * j) % 11 * 0.25));
    s += "\n";
  }
  return s;
}

int Sh(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace

TEST_CASE("Data cache: round trips give the identical Dataset and ReadInfo") {
  test::Scratch tmp;
  Spit(tmp("small.svm"), SmallText());
  ReadOptions opt;
  RoundTrip(tmp("small.svm"), tmp("small.cache"), opt);
  opt.densify_at = 0.1;  // dense storage
  RoundTrip(tmp("small.svm"), tmp("small.cache"), opt);
  opt = {};
  opt.num_features = 20;
  opt.ignore_extra_features = true;  // dropped entries in ReadInfo
  opt.fixed_positive_label = -1;
  RoundTrip(tmp("small.svm"), tmp("small.cache"), opt);
  // Generated dense and sparse data, compressed input.
  GenerateOptions g;
  g.like = Shape::kEpsilon;
  g.rows = 300;
  g.features = 50;
  WriteLibsvm(GenerateLike(g), tmp("eps.svm"));
  RoundTrip(tmp("eps.svm"), tmp("eps.cache"), {});
  if (std::system("command -v gzip >/dev/null 2>&1") == 0) {
    REQUIRE(Sh("gzip -k " + tmp("eps.svm")) == 0);
    RoundTrip(tmp("eps.svm.gz"), tmp("eps.gz.cache"), {});
  }
  for (const char* name : {"a9a", "w8a", "mushrooms"}) {
    if (!test::HaveSharedData(name)) {
      MESSAGE("skipping: ../shared/data/" << name << " not present");
      continue;
    }
    CAPTURE(name);
    RoundTrip(test::SharedData(name), tmp(std::string(name) + ".cache"), {});
  }
  CHECK(tmp.Count(".tmp.") == 0);
}

TEST_CASE("Data cache: ReadLibsvmCached writes once, then loads; the notes say so") {
  test::Scratch tmp;
  const std::string data = tmp("d.svm");
  Spit(data, SmallText());
  const std::string cache = DefaultCachePath(data);
  CHECK(cache == data + ".memsgd-cache");
  std::vector<std::string> notes;
  auto note = [&](const std::string& s) { notes.push_back(s); };
  ReadInfo i1, i2, i0;
  const Dataset ref = ReadLibsvm(data, {}, i0);
  const Dataset a = ReadLibsvmCached(data, cache, {}, i1, note);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "wrote cache " + cache);
  CHECK(fs::exists(cache));
  const Dataset b = ReadLibsvmCached(data, cache, {}, i2, note);
  REQUIRE(notes.size() == 2);
  CHECK(notes[1] == "loaded cache " + cache);
  test::CheckSameRead(ref, i0, a, i1);
  test::CheckSameRead(ref, i0, b, i2);
  CHECK(tmp.Count(".tmp.") == 0);
  // Standard input: no cache.
  std::string why;
  CHECK_FALSE(LoadDataCache(cache, "-", {}, i1, why).has_value());
}

TEST_CASE("Data cache: stale, truncated, corrupt, foreign and other-options caches are refused") {
  test::Scratch tmp;
  const std::string data = tmp("d.svm");
  const std::string cache = tmp("d.cache");
  Spit(data, SmallText());
  ReadInfo info;
  const Dataset ds = ReadLibsvm(data, {}, info);
  auto fresh = [&] { SaveDataCache(cache, data, {}, ds, info); };
  fresh();
  REQUIRE(Why(cache, data) == "loaded");
  CHECK(Why(tmp("none"), data) == "no cache file");

  SUBCASE("source touched (mtime)") {
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 123}};
    REQUIRE(::utimensat(AT_FDCWD, data.c_str(), ts, 0) == 0);
    CHECK(Why(cache, data).find("stale") == 0);
  }
  SUBCASE("source changed, same size and mtime") {
    struct stat st {};
    REQUIRE(::stat(data.c_str(), &st) == 0);
    std::string s = Slurp(data);
    s[2] = 'H';  // inside the "# header" comment
    Spit(data, s);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, data.c_str(), ts, 0) == 0);
    CHECK(Why(cache, data).find("stale") == 0);
  }
  SUBCASE("source grew") {
    Spit(data, SmallText() + "1 1:1\n");
    CHECK(Why(cache, data).find("stale") == 0);
  }
  SUBCASE("other read options") {
    ReadOptions o;
    o.densify_at = 0.25;
    CHECK(Why(cache, data, o).find("made with other read options") == 0);
    o = {};
    o.positive_label = 1;
    CHECK(Why(cache, data, o).find("made with other read options") == 0);
    o = {};
    o.threads = 3;  // does not change the result: accepted
    o.chunk_bytes = 100;
    CHECK(Why(cache, data, o) == "loaded");
  }
  SUBCASE("truncated anywhere") {
    const std::string full = Slurp(cache);
    for (std::size_t len : {std::size_t{0}, std::size_t{7}, std::size_t{100}, full.size() / 2,
                            full.size() - 1}) {
      CAPTURE(len);
      Spit(cache, full.substr(0, len));
      CHECK(Why(cache, data) != "loaded");
    }
    Spit(cache, full + "x");  // trailing garbage
    CHECK(Why(cache, data) != "loaded");
  }
  SUBCASE("a flipped byte anywhere") {
    const std::string full = Slurp(cache);
    for (std::uint64_t at = 0; at < full.size(); at += 1 + at / 7) {
      CAPTURE(at);
      Spit(cache, full);
      FlipByte(cache, at);
      CHECK(Why(cache, data) != "loaded");
    }
    Spit(cache, full);
    FlipByte(cache, full.size() - 1);
    CHECK(Why(cache, data).find("corrupt") == 0);
    Spit(cache, full);
    FlipByte(cache, 100);
    CHECK(Why(cache, data).find("corrupt header") == 0);
  }
  SUBCASE("wrong version, wrong magic, not a cache") {
    std::string s = Slurp(cache);
    s[8] = 2;  // version field
    Spit(cache, s);
    CHECK(Why(cache, data).find("format version 2") == 0);
    s = Slurp(cache);
    s[0] = 'X';
    Spit(cache, s);
    CHECK(Why(cache, data).find("not a memsgd data cache") == 0);
    Spit(cache, SmallText());
    CHECK(Why(cache, data) != "loaded");
    fs::remove(cache);
    fs::create_directory(cache);
    CHECK(Why(cache, data) != "loaded");
    fs::remove(cache);
  }
  // ReadLibsvmCached after any of these re-parses (same data) and writes a valid cache.
  std::vector<std::string> notes;
  ReadInfo again;
  const Dataset d2 = ReadLibsvmCached(data, cache, {}, again, [&](const std::string& s) { notes.push_back(s); });
  ReadInfo now;
  const Dataset d3 = ReadLibsvm(data, {}, now);
  test::CheckSameRead(d3, now, d2, again);
  CHECK(Why(cache, data) == "loaded");
  CHECK(tmp.Count(".tmp.") == 0);
}

TEST_CASE("Data cache: a write that fails leaves nothing behind") {
  test::Scratch tmp;
  const std::string data = tmp("d.svm");
  Spit(data, SmallText());
  ReadInfo info;
  const Dataset ds = ReadLibsvm(data, {}, info);
  CHECK_THROWS_AS(SaveDataCache(tmp("no/such/dir/c"), data, {}, ds, info), std::runtime_error);
  CHECK_THROWS_AS(SaveDataCache(tmp("c"), tmp("missing.svm"), {}, ds, info), std::runtime_error);
  std::vector<std::string> notes;
  ReadInfo i2;
  (void)ReadLibsvmCached(data, tmp("no/such/dir/c"), {}, i2, [&](const std::string& s) { notes.push_back(s); });
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("cache not written") == 0);
  CHECK(tmp.Count(".tmp.") == 0);
  CHECK(tmp.Count("c") == 0);
}

TEST_CASE("CLI: --cache, --cache-file and --parse-threads") {
  test::Scratch tmp;
  const std::string data = tmp("d.svm");
  Spit(data, SmallText());
  const std::string bin = test::Binary();
  auto run = [&](const std::string& args, const std::string& tag) {
    return Sh(bin + " " + args + " > " + tmp(tag + ".out") + " 2> " + tmp(tag + ".err"));
  };
  auto without_time = [](std::string s) {  // `info` output minus its read-time line
    const auto at = s.find("read time");
    return at == std::string::npos ? s : s.substr(0, at);
  };
  // info: written, then loaded; the same report.
  REQUIRE(run("info " + data, "plain") == 0);
  REQUIRE(run("info " + data + " --cache", "c1") == 0);
  CHECK(Slurp(tmp("c1.err")).find("note: wrote cache " + data + ".memsgd-cache") != std::string::npos);
  REQUIRE(run("info --cache " + data, "c2") == 0);  // --cache takes no value
  CHECK(Slurp(tmp("c2.err")).find("note: loaded cache") != std::string::npos);
  CHECK(without_time(Slurp(tmp("c1.out"))) == without_time(Slurp(tmp("plain.out"))));
  CHECK(without_time(Slurp(tmp("c2.out"))) == without_time(Slurp(tmp("plain.out"))));

  // train: the same result line (timings aside) with and without the cache, any thread count.
  auto result = [&](const std::string& tag) {
    std::string s = Slurp(tmp(tag + ".out")), out;
    std::size_t p = 0;
    while (p < s.size()) {
      std::size_t e = s.find_first_of(" \n", p);
      if (e == std::string::npos) e = s.size();
      const std::string tok = s.substr(p, e - p);
      if (tok.rfind("train_seconds=", 0) != 0 && tok.rfind("samples_per_s=", 0) != 0) out += tok;
      out += e < s.size() ? s[e] : ' ';
      p = e + 1;
    }
    return out;
  };
  const std::string train = "train " + data + " --epochs 1 --quiet";
  REQUIRE(run(train, "t0") == 0);
  REQUIRE(run(train + " --cache", "t1") == 0);
  REQUIRE(run(train + " --cache --parse-threads 2", "t2") == 0);
  REQUIRE(run(train + " --parse-threads 1", "t3") == 0);
  CHECK(result("t1") == result("t0"));
  CHECK(result("t2") == result("t0"));
  CHECK(result("t3") == result("t0"));
  CHECK(Slurp(tmp("t1.err")).empty());  // --quiet: a loaded cache is not mentioned

  // A corrupt cache: one note, re-parsed, same result, cache rewritten.
  FlipByte(data + ".memsgd-cache", fs::file_size(data + ".memsgd-cache") - 3);
  REQUIRE(run(train + " --cache", "t4") == 0);
  const std::string err4 = Slurp(tmp("t4.err"));
  CHECK(err4.find("memsgd train: note: ignoring cache " + data + ".memsgd-cache: corrupt") == 0);
  CHECK(std::count(err4.begin(), err4.end(), '\n') == 1);
  CHECK(result("t4") == result("t0"));
  REQUIRE(run(train + " --cache", "t5") == 0);
  CHECK(Slurp(tmp("t5.err")).empty());

  // --cache-file PATH (implies --cache); the test set gets its own default cache.
  REQUIRE(run(train + " --cache-file " + tmp("my.cache") + " --test " + data, "t6") == 0);
  CHECK(fs::exists(tmp("my.cache")));
  REQUIRE(run("optimum " + data + " --cache-file " + tmp("my.cache") + " -q", "o1") == 0);
  REQUIRE(run("optimum " + data + " -q", "o0") == 0);
  auto last_line = [&](const std::string& tag) {  // "fstar <value>"
    std::string s = Slurp(tmp(tag + ".out"));
    s.pop_back();
    return s.substr(s.rfind('\n') + 1);
  };
  CHECK(last_line("o1").rfind("fstar ", 0) == 0);
  CHECK(last_line("o1") == last_line("o0"));

  // Standard input: no cache, a note.
  REQUIRE(Sh("cat " + data + " | " + bin + " info - --cache > " + tmp("s.out") + " 2> " +
             tmp("s.err")) == 0);
  CHECK(Slurp(tmp("s.err")).find("note: no cache for standard input") != std::string::npos);

  // Usage errors.
  CHECK(run(train + " --parse-threads -1", "u1") == 1);
  CHECK(Slurp(tmp("u1.err")).find("--parse-threads must be >= 0") != std::string::npos);
  CHECK(run("info " + data + " --parse-threads x", "u2") == 1);
  CHECK(run("predict", "u3") == 1);
  CHECK(Slurp(tmp("u3.err")).find("memsgd predict: need MODEL and DATA") == 0);
  CHECK(run("train", "u4") == 1);
  CHECK(Slurp(tmp("u4.err")).find("memsgd train: no data file given") == 0);
  // Bad data is still exit 2 with FILE:LINE, and no cache is written.
  Spit(tmp("bad.svm"), "1 1:1\n1 2:x\n");
  CHECK(run("train " + tmp("bad.svm") + " --cache", "b1") == 2);
  CHECK(Slurp(tmp("b1.err")).find(tmp("bad.svm") + ":2: bad value") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp("bad.svm.memsgd-cache")));
  CHECK(tmp.Count(".tmp.") == 0);
}
