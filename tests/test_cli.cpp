// The memsgd program under hostile input and interruptions: every bad LIBSVM fixture through
// `memsgd train` and `memsgd info` (exit code 2, file and line in the message, no output files),
// usage errors (exit 1, naming the option and value), unreadable inputs, the up-front memory
// refusal, NaN divergence (exit 3), and kill-and-resume (exit 130, then bit for bit).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "memsgd/generate.hpp"
#include "memsgd/libsvm.hpp"
#include "support.hpp"

using namespace memsgd;
namespace fs = std::filesystem;

namespace {

// Starts `memsgd args...` with stdout and stderr sent to files; env: extra NAME=VALUE entries.
pid_t Spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err,
            const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv_s{test::Binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0) ::_exit(126);
    ::dup2(o, 1);
    ::dup2(e, 2);
    for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

// Exit code, or 128 + signal number when killed by a signal.
int Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

struct Outcome {
  int rc;
  std::string out, err;
};

Outcome Memsgd(const test::Scratch& tmp, const std::vector<std::string>& args,
               const std::vector<std::string>& env = {}) {
  const std::string out = tmp("stdout.txt"), err = tmp("stderr.txt");
  const int rc = Wait(Spawn(args, out, err, env));
  Outcome r{rc, test::ReadText(out), test::ReadText(err)};
  fs::remove(out);
  fs::remove(err);
  return r;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The line ReadLibsvm reports for a bad file (0: not line-specific).
long long ExpectedLine(const std::string& path) {
  try {
    (void)ReadLibsvm(path);
  } catch (const ParseError& e) {
    return e.Line();
  }
  FAIL("no ParseError for ", path);
  return -1;
}

// Trace rows without the seconds column (the only one that may differ between runs).
std::vector<std::string> TraceWithoutSeconds(const std::string& path) {
  std::vector<std::string> rows;
  std::istringstream in(test::ReadText(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cols;
    std::string col;
    std::istringstream ls(line);
    while (std::getline(ls, col, ',')) cols.push_back(col);
    if (cols.size() > 2) cols.erase(cols.begin() + 2);
    std::string joined;
    for (const auto& c : cols) joined += c + ",";
    rows.push_back(joined);
  }
  return rows;
}

// A data set large enough that a run takes a while (d = 1000: every step costs O(d)).
std::string LargerData(const test::Scratch& tmp) {
  GenerateOptions g;
  g.like = Shape::kRcv1;
  g.rows = 20000;
  g.features = 1000;
  g.avg_nnz = 20;
  g.seed = test::Seed();
  const std::string path = tmp("large.svm");
  WriteLibsvm(GenerateLike(g), path);
  return path;
}

}  // namespace

TEST_CASE("CLI hardening: every bad fixture fails with file and line, exit 2, no outputs") {
  test::Scratch tmp;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(test::Fixture("bad"))) {
    const std::string path = entry.path().string();
    CAPTURE(path);
    ++files;
    const long long line = ExpectedLine(path);
    const std::string where = line > 0 ? path + ":" + std::to_string(line) + ": " : path + ": ";
    const std::string model = tmp("model.txt"), trace = tmp("trace.csv"), ck = tmp("state.ck");

    const Outcome t = Memsgd(tmp, {"train", path, "--model", model, "--trace", trace,
                                   "--checkpoint", ck, "-q"});
    CHECK(t.rc == 2);
    CHECK(Contains(t.err, "memsgd train: " + where));
    CHECK(t.out.empty());
    CHECK_FALSE(fs::exists(model));
    CHECK_FALSE(fs::exists(trace));
    CHECK_FALSE(fs::exists(ck));
    CHECK(tmp.Count(".tmp.") == 0);

    const Outcome i = Memsgd(tmp, {"info", path});
    CHECK(i.rc == 2);
    CHECK(Contains(i.err, "memsgd info: " + where));
  }
  CHECK(files >= 30);
}

TEST_CASE("CLI hardening: unreadable inputs, empty data, a file too large for memory") {
  test::Scratch tmp;
  const std::string model = tmp("m.txt"), trace = tmp("t.csv");
  auto train = [&](const std::string& data, const std::vector<std::string>& env = {}) {
    return Memsgd(tmp, {"train", data, "--model", model, "--trace", trace, "-q"}, env);
  };
  Outcome r = train(tmp("missing.svm"));
  CHECK(r.rc == 2);
  CHECK(Contains(r.err, tmp("missing.svm") + ": cannot open: No such file or directory"));
  fs::create_directories(tmp("adir"));
  r = train(tmp("adir"));
  CHECK(r.rc == 2);
  CHECK(Contains(r.err, tmp("adir") + ": cannot read: is a directory"));
  r = Memsgd(tmp, {"info", tmp("adir")});
  CHECK(r.rc == 2);
  CHECK(Contains(r.err, "is a directory"));
  test::WriteText(tmp("secret.svm"), "1 1:1\n-1 2:1\n");
  ::chmod(tmp("secret.svm").c_str(), 0);
  if (::geteuid() != 0) {
    r = train(tmp("secret.svm"));
    CHECK(r.rc == 2);
    CHECK(Contains(r.err, tmp("secret.svm") + ": cannot open: Permission denied"));
  }
  // Rows but no features at all.
  test::WriteText(tmp("nofeat.svm"), "1\n-1\n");
  r = train(tmp("nofeat.svm"));
  CHECK(r.rc == 2);
  CHECK(Contains(r.err, "no features"));
  // Too large for the (simulated) available memory: refused before parsing.
  std::string text;
  for (int i = 0; i < 3000; ++i) text += (i % 2 ? "1 1:0.5 7:1.25\n" : "-1 2:0.25 3:1\n");
  test::WriteText(tmp("big.svm"), text);
  r = train(tmp("big.svm"), {"MEMSGD_MEMORY_LIMIT=4K"});
  CHECK(r.rc == 2);
  CHECK(Contains(r.err, tmp("big.svm") + ": too large for the available memory"));
  CHECK(Contains(r.err, "4.0 KiB are available (MEMSGD_MEMORY_LIMIT"));
  CHECK(Memsgd(tmp, {"info", tmp("big.svm")}, {"MEMSGD_MEMORY_LIMIT=4K"}).rc == 2);
  CHECK(train(tmp("big.svm"), {"MEMSGD_MEMORY_LIMIT=off"}).rc == 0);
  fs::remove(model);
  fs::remove(trace);
  // Nothing was written by any failing run.
  r = train(tmp("big.svm"), {"MEMSGD_MEMORY_LIMIT=1"});
  CHECK(r.rc == 2);
  CHECK_FALSE(fs::exists(model));
  CHECK_FALSE(fs::exists(trace));
  CHECK(tmp.Count(".tmp.") == 0);
}

TEST_CASE("CLI hardening: usage errors exit 1 naming the option and the value, no outputs") {
  test::Scratch tmp;
  const std::string data = test::Fixture("golden.svm");  // d = 10
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {{"--threads", "abc"}, {"--threads", "'abc'"}},
      {{"--threads", "-1"}, {"--threads", "'-1'"}},
      {{"--threads", "2.5"}, {"--threads", "'2.5'"}},
      {{"--threads", ""}, {"--threads", "''"}},
      {{"--threads", "99999999999999"}, {"--threads", "99999999999999"}},
      {{"--threads", "5000"}, {"--threads 5000", "4096"}},
      {{"--k", "0"}, {"--k", "0"}},
      {{"--k", "-3"}, {"--k", "-3"}},
      {{"--k", "11"}, {"--k 11", "d = 10"}},
      {{"--k", "nan"}, {"--k", "nan"}},
      {{"--k", "x"}, {"'x'", "--k"}},
      {{"--lambda", "-0.5"}, {"--lambda", "-0.5"}},
      {{"--lambda", "nan"}, {"--lambda", "nan"}},
      {{"--epochs", "0"}, {"--epochs", "0"}},
      {{"--epochs", "-1"}, {"--epochs", "-1"}},
      {{"--epochs", "1e300"}, {"--epochs", "1e+300"}},
      {{"--gamma", "0"}, {"--gamma", "0"}},
      {{"--gamma", "inf"}, {"--gamma", "inf"}},
      {{"--init-std", "inf"}, {"--init-std", "inf"}},
      {{"--eval-every", "-5"}, {"--eval-every"}},
      {{"--method", "adam"}, {"method", "'adam'"}},
      {{"--compressor", "zip"}, {"compressor", "'zip'"}},
      {{"--step", "cosine"}, {"cosine"}},
      {{"--sampling", "sometimes"}, {"--sampling", "'sometimes'"}},
      {{"--write", "maybe"}, {"--write", "'maybe'"}},
      {{"--fstar", "abc"}, {"--fstar", "'abc'"}},
      {{"--method", "qsgd", "--qsgd-bits", "99"}, {"--qsgd-bits", "99"}},
      {{"--checkpoint-every", "5"}, {"--checkpoint-every needs --checkpoint"}},
      {{"--checkpoint", "CK", "--checkpoint-every", "0"}, {"--checkpoint-every", "0"}},
      {{"--no-such-option"}, {"'--no-such-option'"}},
      {{"--k"}, {"'--k'", "missing"}},
      {{"--model", "DIR"}, {"--model", "is a directory"}},
      {{"--trace", "/nonexistent-dir/t.csv"}, {"--trace", "/nonexistent-dir/t.csv"}},
  };
  const std::string model = tmp("m.txt"), trace = tmp("t.csv");
  fs::create_directories(tmp("dir"));
  for (const auto& c : cases) {
    std::vector<std::string> args{"train", data, "-q"};
    const bool has_model = std::find(c.args.begin(), c.args.end(), "--model") != c.args.end();
    const bool has_trace = std::find(c.args.begin(), c.args.end(), "--trace") != c.args.end();
    if (!has_model) args.insert(args.end(), {"--model", model});
    if (!has_trace) args.insert(args.end(), {"--trace", trace});
    std::string shown;
    for (auto a : c.args) {  // last: "--k" without its value must end the command line
      if (a == "CK") a = tmp("ck");
      if (a == "DIR") a = tmp("dir");
      shown += a + " ";
      args.push_back(a);
    }
    CAPTURE(shown);
    const Outcome r = Memsgd(tmp, args);
    CHECK(r.rc == 1);
    for (const auto& f : c.fragments) {
      CAPTURE(f);
      CHECK(Contains(r.err, f));
    }
    CHECK(r.err.find("memsgd train: ") == 0);
    CHECK_FALSE(fs::exists(model));
    CHECK_FALSE(fs::exists(trace));
    CHECK_FALSE(fs::exists(tmp("ck")));
    CHECK(tmp.Count(".tmp.") == 0);
  }
  // An output that would replace an input or another output (on a copy of the data).
  fs::copy_file(data, tmp("copy.svm"));
  const std::string original = test::ReadText(tmp("copy.svm"));
  for (const char* opt : {"--model", "--trace", "--checkpoint"}) {
    CAPTURE(opt);
    const Outcome r = Memsgd(tmp, {"train", tmp("copy.svm"), opt, tmp("copy.svm"), "-q"});
    CHECK(r.rc == 1);
    CHECK(Contains(r.err, std::string(opt) + " '" + tmp("copy.svm") + "' would overwrite DATA"));
    CHECK(test::ReadText(tmp("copy.svm")) == original);
  }
  CHECK(Memsgd(tmp, {"train", data, "--model", tmp("same"), "--trace", tmp("same"), "-q"}).rc == 1);
  CHECK_FALSE(fs::exists(tmp("same")));
  // No data file; unknown subcommand.
  CHECK(Memsgd(tmp, {"train"}).rc == 1);
  CHECK(Memsgd(tmp, {"frobnicate"}).rc == 1);
  CHECK(Memsgd(tmp, {}).rc == 1);
  // More threads than cores: allowed (documented), with a note.
  const Outcome over = Memsgd(tmp, {"train", data, "--threads", "64", "--epochs", "1"});
  CHECK(over.rc == 0);
  if (std::thread::hardware_concurrency() < 64) CHECK(Contains(over.err, "oversubscribed"));
}

TEST_CASE("CLI hardening: NaN/inf stops at once, exit 3, trace kept, no model") {
  test::Scratch tmp;
  const std::string data = LargerData(tmp);
  for (const char* threads : {"0", "2"}) {
    CAPTURE(threads);
    const std::string model = tmp("m.txt"), trace = tmp("t.csv");
    const Outcome r = Memsgd(tmp, {"train", data, "--step", "constant", "--gamma", "1e300",
                                   "--threads", threads, "--model", model, "--trace", trace,
                                   "--epochs", "5", "-q"});
    CHECK(r.rc == 3);
    CHECK(Contains(r.err, "NaN or infinite"));
    CHECK(Contains(r.err, "try a smaller --gamma (this run: 1e+300)"));
    CHECK_FALSE(fs::exists(model));
    REQUIRE(fs::exists(trace));
    const auto rows = TraceWithoutSeconds(trace);
    REQUIRE(rows.size() == 3);  // header, the start, where it stopped
    // At once: far before the first evaluation point (2000 samples).
    const long long stopped_at = std::stoll(rows[2].substr(rows[2].find(',') + 1));
    CHECK(stopped_at <= 600);
    CHECK(tmp.Count(".tmp.") == 0);
  }
}

TEST_CASE("CLI hardening: Ctrl-C writes trace, model and checkpoint (exit 130); resume is exact") {
  test::Scratch tmp;
  const std::string data = LargerData(tmp);
  struct Case {
    const char* threads;
    int sig;
    const char* method;
  };
  // The error-feedback engine is deterministic whatever the thread count: exact in parallel too.
  for (const Case c : {Case{"0", SIGINT, "mem-sgd"}, Case{"2", SIGTERM, "mem-sgd"},
                       Case{"2", SIGINT, "ef21-sgdm"}}) {
    const std::string threads = c.threads, method = c.method;
    CAPTURE(threads);
    CAPTURE(method);
    const bool exact = std::string(c.threads) == "0" || std::string(c.method) != "mem-sgd";
    const std::vector<std::string> common{"train", data, "--epochs", "12", "--threads", c.threads,
                                          "--method", c.method, "--workers", "4", "-q"};
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> a = common;
      a.insert(a.end(), extra.begin(), extra.end());
      return a;
    };
    // The uninterrupted run.
    const Outcome full = Memsgd(tmp, with({"--model", tmp("full.model"), "--trace", tmp("full.csv")}));
    REQUIRE(full.rc == 0);

    // Interrupted as soon as the first checkpoint (after 1 of 12 epochs) exists.
    const std::string ck = tmp("run.ck");
    fs::remove(ck);
    const pid_t pid = Spawn(with({"--model", tmp("cut.model"), "--trace", tmp("cut.csv"),
                                  "--checkpoint", ck, "--checkpoint-every", "20000"}),
                            tmp("cut.out"), tmp("cut.err"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (!fs::exists(ck) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    REQUIRE(fs::exists(ck));
    ::kill(pid, c.sig);
    const int rc = Wait(pid);
    CHECK(rc == 130);
    const std::string err = test::ReadText(tmp("cut.err"));
    CHECK(Contains(err, "interrupted after"));
    CHECK(Contains(err, "continue with --resume " + ck));
    REQUIRE(fs::exists(tmp("cut.model")));
    REQUIRE(fs::exists(tmp("cut.csv")));
    const auto cut_rows = TraceWithoutSeconds(tmp("cut.csv"));
    const auto full_rows = TraceWithoutSeconds(tmp("full.csv"));
    CHECK(cut_rows.size() >= 12);
    CHECK(cut_rows.size() < full_rows.size());
    CHECK(tmp.Count(".tmp.") == 0);

    // Resumed: exit 0; sequential: the same model file and trace as the uninterrupted run.
    const Outcome res = Memsgd(tmp, with({"--model", tmp("res.model"), "--trace", tmp("res.csv"),
                                          "--resume", ck}));
    CHECK(res.rc == 0);
    const auto res_rows = TraceWithoutSeconds(tmp("res.csv"));
    CHECK(res_rows.size() == full_rows.size());
    if (exact) {
      CHECK(test::ReadText(tmp("res.model")) == test::ReadText(tmp("full.model")));
      CHECK(res_rows == full_rows);
    } else {
      // Parallel: the trace up to the checkpoint is the interrupted run's; the end is equivalent.
      const std::string last_full = full_rows.back(), last_res = res_rows.back();
      const double lf = std::stod(last_full.substr(last_full.find(',', last_full.find(',') + 1) + 1));
      const double lr = std::stod(last_res.substr(last_res.find(',', last_res.find(',') + 1) + 1));
      CHECK(std::fabs(lf - lr) <= 1e-2 * std::fabs(lf));
    }
    // A checkpoint of this run does not resume a different one.
    const Outcome other = Memsgd(tmp, with({"--resume", ck, "--seed", "2"}));
    CHECK(other.rc == 1);
    CHECK(Contains(other.err, "other options"));
  }
  // Corrupt and missing checkpoints: exit 2 before any training.
  test::WriteText(tmp("bad.ck"), "MEMSGDCK garbage");
  Outcome r = Memsgd(tmp, {"train", data, "--resume", tmp("bad.ck"), "-q"});
  CHECK(r.rc == 2);
  CHECK(Contains(r.err, tmp("bad.ck")));
  r = Memsgd(tmp, {"train", data, "--resume", tmp("nope.ck"), "-q"});
  CHECK(r.rc == 2);
  CHECK(Contains(r.err, "cannot read checkpoint '" + tmp("nope.ck") + "'"));
}
