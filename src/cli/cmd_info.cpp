// memsgd info: shape and statistics of a LIBSVM data file.
#include <boost/program_options.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "commands.hpp"
#include "data_options.hpp"
#include "memsgd/libsvm.hpp"

namespace po = boost::program_options;

namespace memsgd::cli {

namespace {

std::string Num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", x);
  return buf;
}

std::string Grouped(long long x) {
  std::string digits = std::to_string(x < 0 ? -x : x);
  std::string out;
  const int n = static_cast<int>(digits.size());
  for (int i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0) out += ',';
    out += digits[static_cast<std::size_t>(i)];
  }
  return x < 0 ? "-" + out : out;
}

}  // namespace

int RunInfo(int argc, char** argv) {
  po::options_description visible(
      "Usage: memsgd info FILE [options]\n\n"
      "Reads a LIBSVM/SVMlight file (plain, .gz, .bz2 or .xz; '-' for standard input) and prints\n"
      "rows, features, nonzeros, density, storage, label counts (original values and their -1/+1\n"
      "mapping), the range of row norms, average nonzeros per row and the bytes held in memory.\n"
      "Labels: two classes map to -1/+1 (the larger is +1); a file with more classes needs\n"
      "--positive-label.\n\nOptions");
  visible.add_options()
      ("help,h", "show this help")
      ("positive-label", po::value<double>(), "original label value that becomes +1 "
                                               "(required for files with more than two classes)")
      ("num-features", po::value<long long>(), "fixed feature-space size (larger indices are "
                                                "an error)")
      ("densify-at", po::value<double>()->default_value(0.5, "0.5"),
       "store dense when nnz / (rows * features) >= this (> 1: never)");
  DataLoadOptions load;
  AddDataLoadOptions(visible, load);
  po::options_description hidden;
  hidden.add_options()("file", po::value<std::string>(), "input file");
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description pos;
  pos.add("file", 1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "memsgd info: %s\n(see memsgd info --help)\n", e.what());
    return kUsage;
  }
  if (vm.count("help")) {
    std::cout << visible << "\n";
    return kOk;
  }
  if (!vm.count("file")) {
    std::fprintf(stderr, "memsgd info: missing FILE\n(see memsgd info --help)\n");
    return kUsage;
  }
  const std::string file = vm["file"].as<std::string>();
  ReadOptions opt;
  if (vm.count("positive-label")) {
    const double p = vm["positive-label"].as<double>();
    if (!std::isfinite(p)) {
      std::fprintf(stderr, "memsgd info: --positive-label must be finite\n");
      return kUsage;
    }
    opt.positive_label = p;
  }
  if (vm.count("num-features")) {
    const long long d = vm["num-features"].as<long long>();
    if (d < 1 || d > 2147483647LL) {
      std::fprintf(stderr, "memsgd info: --num-features must be in [1, 2147483647]\n");
      return kUsage;
    }
    opt.num_features = static_cast<Index>(d);
  }
  opt.densify_at = vm["densify-at"].as<double>();
  if (const std::string err = CheckDataLoadOptions(load); !err.empty()) {
    std::fprintf(stderr, "memsgd info: %s\n", err.c_str());
    return kUsage;
  }

  Dataset ds;
  ReadInfo info;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ds = LoadData("info", file, opt, load, /*main=*/true, /*quiet=*/false, &info);
  } catch (const ParseError& e) {
    std::fprintf(stderr, "memsgd info: %s\n", e.what());
    return kDataError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "memsgd info: %s: out of memory\n", file.c_str());
    return kDataError;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const auto n = ds.NumRows();
  const auto d = ds.NumFeatures();
  // Entries as in the file (explicit zeros included) and the values actually nonzero.
  const long long entries = info.entries - info.dropped_entries;
  long long nonzero = 0;
  for (Value v : ds.Values()) nonzero += v != 0;
  const long long nnz = entries;
  const double density = (n > 0 && d > 0) ? static_cast<double>(nnz) / (static_cast<double>(n) * d) : 0;
  const auto [lo, hi] = ds.RowNormRange();
  const std::size_t bytes = ds.RowPtr().size_bytes() + ds.ColIdx().size_bytes() +
                            ds.Values().size_bytes() + ds.Labels().size_bytes();

  std::printf("file          %s\n", file == "-" ? "<stdin>" : file.c_str());
  std::printf("compression   %s\n", info.compression.c_str());
  std::printf("rows          %s\n", Grouped(n).c_str());
  std::printf("features      %s\n", Grouped(d).c_str());
  std::printf("nonzeros      %s", Grouped(nnz).c_str());
  if (nonzero != nnz) {
    std::printf(" (index:value entries; %s of them nonzero)", Grouped(nonzero).c_str());
  }
  std::printf("\n");
  std::printf("density       %.6g\n", density);
  std::printf("storage       %s\n", ds.IsDense() ? "dense (row-major float32)" : "sparse (CSR, float32)");
  std::printf("labels       ");
  for (const auto& [value, count] : info.label_counts) {
    const char* mapped = (value == ds.positive_label) ? "+1" : "-1";
    std::printf(" %s: %s (-> %s)", Num(value).c_str(), Grouped(count).c_str(), mapped);
    if (&value != &info.label_counts.back().first) std::printf(",");
  }
  std::printf("\n");
  std::printf("row norm      min %.6g  max %.6g\n", lo, hi);
  std::printf("nnz/row       %.4g avg\n", n > 0 ? static_cast<double>(nnz) / static_cast<double>(n) : 0.0);
  std::printf("memory        %s bytes (%.1f MiB)\n", Grouped(static_cast<long long>(bytes)).c_str(),
              static_cast<double>(bytes) / (1024.0 * 1024.0));
  if (info.dropped_entries > 0) {
    std::printf("dropped       %s entries beyond the fixed feature count\n",
                Grouped(info.dropped_entries).c_str());
  }
  std::printf("read time     %.3f s (%.0f MB/s of text)\n", secs,
              secs > 0 ? static_cast<double>(info.text_bytes) / secs / 1e6 : 0.0);
  return kOk;
}

}  // namespace memsgd::cli
