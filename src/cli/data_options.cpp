// Shared command-line parse and data loading of the subcommands (see data_options.hpp).
#include "data_options.hpp"

#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "memsgd/data_cache.hpp"

namespace po = boost::program_options;

namespace memsgd::cli {

int ParseCommandLine(const char* cmd, int argc, char** argv, const po::options_description& visible,
                     const std::vector<std::pair<const char*, std::string*>>& positional,
                     const char* help, const char* missing, po::variables_map& vm,
                     const char* program) {
  po::options_description hidden;
  po::positional_options_description pos;
  for (const auto& [name, target] : positional) {
    hidden.add_options()(name, po::value(target));
    pos.add(name, 1);
  }
  po::options_description all;
  all.add(visible).add(hidden);
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "%s %s: %s\n(see %s %s --help)\n", program, cmd, e.what(), program, cmd);
    return kUsage;
  }
  if (vm.count("help")) {
    std::cout << help << "\n" << visible << "\n";
    return kOk;
  }
  for (const auto& p : positional) {
    if (p.second->empty()) {
      std::fprintf(stderr, "%s %s: %s (see %s %s --help)\n", program, cmd, missing, program, cmd);
      return kUsage;
    }
  }
  return -1;
}

void AddDataLoadOptions(po::options_description& opts, DataLoadOptions& o) {
  // clang-format off
  opts.add_options()
    ("parse-threads", po::value(&o.parse_threads)->default_value(0),
     "threads that parse the data files: 0 = all cores, 1 = sequential (the result is the "
     "same for every value)")
    ("cache", po::bool_switch(&o.cache),
     "binary cache of the parsed data next to each data file (FILE.memsgd-cache): loaded "
     "instead of parsing when it matches the file and the read options, else written after the "
     "parse (not for standard input)")
    ("cache-file", po::value(&o.cache_file),
     "the cache of the (training) data file at this path instead of DATA.memsgd-cache "
     "(implies --cache)");
  // clang-format on
}

std::string CheckDataLoadOptions(const DataLoadOptions& o) {
  if (o.parse_threads < 0)
    return "--parse-threads must be >= 0 (got " + std::to_string(o.parse_threads) + ")";
  return {};
}

Dataset LoadData(const char* cmd, const std::string& path, ReadOptions ro,
                 const DataLoadOptions& o, bool main, bool quiet, ReadInfo* info) {
  ro.threads = o.parse_threads;
  ReadInfo local;
  ReadInfo& inf = info ? *info : local;
  if (!o.cache && o.cache_file.empty()) return ReadLibsvm(path, ro, inf);
  const std::string cache = main && !o.cache_file.empty() ? o.cache_file : DefaultCachePath(path);
  return ReadLibsvmCached(path, cache, ro, inf, [&](const std::string& note) {
    const bool problem = note.rfind("ignoring", 0) == 0 || note.rfind("cache not", 0) == 0 ||
                         note.rfind("no cache", 0) == 0;
    if (problem || !quiet) std::fprintf(stderr, "memsgd %s: note: %s\n", cmd, note.c_str());
  });
}

}  // namespace memsgd::cli
