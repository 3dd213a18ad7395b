// What the subcommands that read LIBSVM data share: the command-line parse with positional
// arguments, and the data-loading options (--parse-threads, --cache, --cache-file) with the
// loader that applies them.
#pragma once
#include <boost/program_options.hpp>

#include <string>
#include <utility>
#include <vector>

#include "memsgd/dataset.hpp"
#include "memsgd/libsvm.hpp"

namespace memsgd::cli {

// Parses `PROGRAM CMD` arguments (PROGRAM: memsgd, or memsgd-mpi): the `visible` options plus required positional arguments
// (name, where it goes), in order. Prints `help` and the options for --help (returns kOk), or
// "memsgd CMD: ..." for a usage error or, when a positional argument is missing, "memsgd CMD:
// <missing> (see memsgd CMD --help)" (returns kUsage). Returns -1 when the command should go on.
int ParseCommandLine(const char* cmd, int argc, char** argv,
                     const boost::program_options::options_description& visible,
                     const std::vector<std::pair<const char*, std::string*>>& positional,
                     const char* help, const char* missing, boost::program_options::variables_map& vm,
                     const char* program = "memsgd");

struct DataLoadOptions {
  int parse_threads = 0;   // 0: all cores
  bool cache = false;      // --cache: DATA.memsgd-cache
  std::string cache_file;  // --cache-file PATH (implies --cache) for the main data file
};

// Adds --parse-threads, --cache and --cache-file to `opts`.
void AddDataLoadOptions(boost::program_options::options_description& opts, DataLoadOptions& o);

// Checks the values; "" when fine, else the message of a usage error.
std::string CheckDataLoadOptions(const DataLoadOptions& o);

// Reads `path` with `ro` on --parse-threads threads and, with --cache or --cache-file, through
// the binary cache (main = true: the --cache-file path if given; else PATH.memsgd-cache).
// Notes go to stderr as "memsgd CMD: note: ..." (a cache ignored or not written always, a cache
// loaded or written unless quiet). Throws what ReadLibsvm throws.
Dataset LoadData(const char* cmd, const std::string& path, ReadOptions ro,
                 const DataLoadOptions& o, bool main, bool quiet, ReadInfo* info = nullptr);

}  // namespace memsgd::cli
