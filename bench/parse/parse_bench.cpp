// Parse throughput of ReadLibsvm for thread counts 1..N, and the binary cache (save once, load
// R times), on the given files. One CSV row per (file, mode, threads): best and median wall time
// of R repeats and MB/s of text (decimal MB: bytes / 1e6 / best seconds; for the cache the text
// size over the load time, i.e. the equivalent parse speed, and the cache file's own MB/s).
//   memsgd_bench_parse --threads 2 --repeats 5 --csv out.csv --md out.md
//       [--machine NAME] [--chunk BYTES] FILE...  (one command line)
// The interleaving is file-major, threads inner, repeats innermost; the first read of each file
// is a warm-up (page cache) and is not timed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "memsgd/data_cache.hpp"
#include "memsgd/libsvm.hpp"

using namespace memsgd;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Row {
  std::string file, mode;
  int threads;
  std::uint64_t bytes;  // text bytes
  std::uint64_t rows, nnz;
  double best, median;
  std::uint64_t cache_bytes = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: memsgd_bench_parse [--threads N] [--repeats R] [--chunk BYTES] "
               "[--csv FILE] [--md FILE] [--machine NAME] FILE...\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int max_threads = 2, repeats = 5;
  std::size_t chunk = 0;
  std::string csv_path, md_path, machine;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    if (a == "--threads") max_threads = std::atoi(next().c_str());
    else if (a == "--repeats") repeats = std::atoi(next().c_str());
    else if (a == "--chunk") chunk = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--csv") csv_path = next();
    else if (a == "--md") md_path = next();
    else if (a == "--machine") machine = next();
    else if (!a.empty() && a[0] == '-') Usage();
    else files.push_back(a);
  }
  if (files.empty() || max_threads < 1 || repeats < 1) Usage();

  std::vector<Row> rows;
  for (const std::string& file : files) {
    const std::string name = std::filesystem::path(file).filename().string();
    ReadInfo info;
    ReadOptions warm;
    const Dataset ref = ReadLibsvm(file, warm, info);  // warm-up: page cache
    const std::uint64_t bytes = info.text_bytes;
    for (int t = 1; t <= max_threads; ++t) {
      std::vector<double> times;
      for (int r = 0; r < repeats; ++r) {
        ReadOptions opt;
        opt.threads = t;
        opt.chunk_bytes = chunk;
        const double t0 = Now();
        const Dataset ds = ReadLibsvm(file, opt);
        times.push_back(Now() - t0);
        if (ds.NumRows() != ref.NumRows()) {
          std::fprintf(stderr, "row count differs\n");
          return 1;
        }
      }
      rows.push_back({name, "parse", t, bytes, static_cast<std::uint64_t>(ref.NumRows()),
                      static_cast<std::uint64_t>(info.entries),
                      *std::min_element(times.begin(), times.end()), Median(times)});
      std::fprintf(stderr, "%s parse threads=%d best %.3f s  %.1f MB/s\n", name.c_str(), t,
                   rows.back().best, static_cast<double>(bytes) / 1e6 / rows.back().best);
    }
    // Cache: written once next to a temporary copy name, loaded R times.
    const std::string cache = (std::filesystem::temp_directory_path() /
                               ("memsgd_parse_bench_" + name + ".memsgd-cache"))
                                  .string();
    double t0 = Now();
    SaveDataCache(cache, file, {}, ref, info);
    const double save = Now() - t0;
    const auto cache_bytes = static_cast<std::uint64_t>(std::filesystem::file_size(cache));
    std::vector<double> times;
    for (int r = 0; r < repeats + 1; ++r) {  // the first load warms the page cache
      ReadInfo li;
      std::string why;
      t0 = Now();
      auto ds = LoadDataCache(cache, file, {}, li, why);
      const double dt = Now() - t0;
      if (!ds) {
        std::fprintf(stderr, "cache not loaded: %s\n", why.c_str());
        return 1;
      }
      if (r > 0) times.push_back(dt);
    }
    std::filesystem::remove(cache);
    rows.push_back({name, "cache-save", 0, bytes, static_cast<std::uint64_t>(ref.NumRows()),
                    static_cast<std::uint64_t>(info.entries), save, save, cache_bytes});
    rows.push_back({name, "cache-load", 0, bytes, static_cast<std::uint64_t>(ref.NumRows()),
                    static_cast<std::uint64_t>(info.entries),
                    *std::min_element(times.begin(), times.end()), Median(times), cache_bytes});
    std::fprintf(stderr, "%s cache load best %.3f s (%.0f MB/s of cache file)\n", name.c_str(),
                 rows.back().best, static_cast<double>(cache_bytes) / 1e6 / rows.back().best);
  }

  if (!csv_path.empty()) {
    std::ofstream f(csv_path);
    f << "file,mode,threads,text_bytes,rows,entries,best_s,median_s,text_MB_per_s,"
         "median_text_MB_per_s,cache_bytes\n";
    for (const Row& r : rows) {
      char buf[512];
      std::snprintf(buf, sizeof buf, "%s,%s,%d,%llu,%llu,%llu,%.6f,%.6f,%.1f,%.1f,%llu\n",
                    r.file.c_str(), r.mode.c_str(), r.threads,
                    static_cast<unsigned long long>(r.bytes),
                    static_cast<unsigned long long>(r.rows), static_cast<unsigned long long>(r.nnz),
                    r.best, r.median, static_cast<double>(r.bytes) / 1e6 / r.best,
                    static_cast<double>(r.bytes) / 1e6 / r.median,
                    static_cast<unsigned long long>(r.cache_bytes));
      f << buf;
    }
  }
  if (!md_path.empty()) {
    std::ofstream f(md_path);
    f << "# LIBSVM parse throughput and cache load\n\n";
    if (!machine.empty()) f << "Machine: " << machine << "\n\n";
    f << "Best (median) of " << repeats
      << " runs, after one untimed warm-up read (files in the page cache). MB/s = decimal MB of "
         "text per second; for cache rows it is the text size over the load time (the parse "
         "speed a cache load is equivalent to), with the cache file's own size alongside.\n\n";
    f << "| file | text MB | rows | entries | mode | threads | seconds | text MB/s | speedup vs 1 thread |\n";
    f << "|---|---:|---:|---:|---|---:|---:|---:|---:|\n";
    double one = 0;
    for (const Row& r : rows) {
      if (r.mode == "parse" && r.threads == 1) one = r.best;
      char buf[768];
      const double mbs = static_cast<double>(r.bytes) / 1e6 / r.best;
      const double mbs_med = static_cast<double>(r.bytes) / 1e6 / r.median;
      std::string mode = r.mode;
      if (r.cache_bytes > 0) {
        char extra[96];
        std::snprintf(extra, sizeof extra, " (%.0f MB file, %.0f MB/s)",
                      static_cast<double>(r.cache_bytes) / 1e6,
                      static_cast<double>(r.cache_bytes) / 1e6 / r.best);
        mode += extra;
      }
      std::snprintf(buf, sizeof buf, "| %s | %.1f | %llu | %llu | %s | %s | %.4f (%.4f) | %.0f (%.0f) | %s |\n",
                    r.file.c_str(), static_cast<double>(r.bytes) / 1e6,
                    static_cast<unsigned long long>(r.rows), static_cast<unsigned long long>(r.nnz),
                    mode.c_str(), r.threads > 0 ? std::to_string(r.threads).c_str() : "-",
                    r.best, r.median, mbs, mbs_med,
                    r.mode == "parse" && one > 0 ? (std::to_string(one / r.best).substr(0, 4) + "x").c_str() : "");
      f << buf;
    }
  }
  return 0;
}
