// LIBSVM / SVMlight text input.
//
// Format: `label idx:val idx:val ... [# comment]`, indices 1-based and strictly increasing,
// optional `qid:N` (ignored), blank lines and `#` comment lines skipped, final newline optional.
// `.gz`, `.bz2` and `.xz` files are decompressed on the fly; "-" reads standard input.
// Labels: exactly two distinct values map to -1/+1 (the larger is +1); with more classes
// ReadOptions::positive_label picks the +1 class (all others -1), else it is an error.
// A file with a single class c (e.g. a small test split) maps it to +1 if c > 0, else to -1;
// use ReadOptions::fixed_positive_label to read a test set with the training set's mapping.
// Errors read `FILE:LINE: REASON (token 'TOK')` (ParseError::what()).
// Parsing runs on ReadOptions::threads threads (all cores by default): text is read in batches
// by a reader thread and parsed in chunks concurrently; the result and any error are exactly
// those of the sequential parse (the first bad line in file order, its line number).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "memsgd/dataset.hpp"

namespace memsgd {

// Bad input: names the file, the 1-based line (0 when not line-specific), the token and why.
class ParseError : public std::runtime_error {
 public:
  ParseError(std::string file, long long line, std::string token, std::string reason);
  const std::string& File() const noexcept { return file_; }
  long long Line() const noexcept { return line_; }
  const std::string& Token() const noexcept { return token_; }
  const std::string& Reason() const noexcept { return reason_; }

 private:
  std::string file_;
  long long line_;
  std::string token_;
  std::string reason_;
};

struct ReadOptions {
  // Feature-space size. 0: the largest index seen. > 0: fixed; with `ignore_extra_features`
  // larger indices are dropped (a test file read in the training file's space), otherwise error.
  Index num_features = 0;
  bool ignore_extra_features = false;
  // Original label value that becomes +1 (required when the file has more than two classes).
  std::optional<double> positive_label;
  // When reading a test set: the training set's label mapping (value -> +1, everything else -1).
  std::optional<double> fixed_positive_label;
  // Store dense (row-major) when nnz / (n d) >= this; > 1 never densifies.
  double densify_at = 0.5;
  // Parser threads: 0 = all cores (oneTBB's default), 1 = the sequential reader, P = at most P.
  // The result (data, ReadInfo, errors and their line numbers) is the same for every value.
  // Plain files under 1 MiB are always read sequentially.
  int threads = 0;
  // Bytes per chunk of the parallel parser; 0 = automatic. > 0 forces the parallel parser even
  // for one thread and tiny files (for tests of chunk boundaries).
  std::size_t chunk_bytes = 0;
  // A byte range of the file: only the lines that start in [range_begin, range_end) are read
  // (the last of them to its end, past range_end if need be). range_begin must be a line start
  // (0, or just after a '\n'). Only a plain file can be read by range (not standard input, not
  // compressed data). Errors give line numbers counted from first_line, the file line of
  // range_begin; ReadInfo describes the range (its lines and bytes). Everything else (label
  // mapping, num_features, densify_at) is as for a whole file holding just these lines, so a
  // shard read uses fixed_positive_label (see ChoosePositiveLabel) to map labels as the whole
  // file would.
  std::uint64_t range_begin = 0;
  std::uint64_t range_end = UINT64_MAX;
  long long first_line = 1;
};

// Reads a whole file (or the byte range of ReadOptions). Throws ParseError on any malformed
// input (nothing partial is returned).
Dataset ReadLibsvm(const std::string& path, const ReadOptions& options = {});

// What ReadLibsvm saw besides the data (for `memsgd info` and diagnostics).
struct ReadInfo {
  std::string compression;  // "none", "gzip", "bzip2" or "xz" (detected by magic bytes)
  std::uint64_t text_bytes = 0;  // decompressed bytes parsed
  long long lines = 0;           // physical lines, blank and comment lines included
  // Rows per original label value, ascending by value.
  std::vector<std::pair<double, Offset>> label_counts;
  // index:value entries read, explicit zeros included (dense storage keeps no count of them).
  Offset entries = 0;
  // Entries dropped because their index exceeded a fixed num_features (ignore_extra_features).
  Offset dropped_entries = 0;
};

// As above, and fills `info`.
Dataset ReadLibsvm(const std::string& path, const ReadOptions& options, ReadInfo& info);

// Building blocks for reading a plain file in shards (one per process), each by a byte range.
// A line starts at byte 0 or just after a '\n'; a data row is a line that is neither blank nor a
// comment (the reader's rule: its first non-blank byte is '#' or there is none).

// The lines that start in [begin, end), counted without parsing them.
struct RowCount {
  Offset rows = 0;       // data rows
  long long lines = 0;   // physical lines, blank and comment lines included
  // Rows per original label value, ascending by value; rows whose label does not parse are left
  // out (ReadLibsvm reports them, with their line numbers).
  std::vector<std::pair<double, Offset>> label_counts;
  std::uint64_t aligned_begin = 0;  // the first line start >= begin (the file size if none)
};

// Counts the lines starting in [aligned_begin, end) of a plain file, aligned_begin being the
// first line start at or after `begin`. Chunks [c S/p, (c+1) S/p) of a file of S bytes count
// every line exactly once. Throws ParseError (line 0) for standard input, compressed data or an
// unreadable file; never for the text itself.
RowCount CountLibsvmRows(const std::string& path, std::uint64_t begin, std::uint64_t end);

// The byte offset of the line holding data row `skip` (0-based) counted from the line start
// `from`: skip = 0 gives the first data row at or after `from`. *lines_skipped (when not null):
// the physical lines from `from` up to that offset. With fewer than skip + 1 data rows after
// `from`: the file size, and the lines up to the end. Plain files only, as CountLibsvmRows.
std::uint64_t SeekLibsvmRow(const std::string& path, std::uint64_t from, Offset skip,
                            long long* lines_skipped);

// The label mapping of ReadLibsvm from a file's label counts (ascending by value, as
// RowCount::label_counts and ReadInfo::label_counts): the original value that becomes +1, for
// ReadOptions::fixed_positive_label, so that reading any part of the file with it maps labels as
// the whole-file read does. options.positive_label when set (it must occur); else the larger of
// two classes; a single class c: c when c > 0, else NaN (no row equals NaN: all become -1, and
// the data set's positive_label is NaN, "unknown", as after the whole-file read). Throws
// ParseError (line 0, naming `path`) for no rows, or more than two classes without
// options.positive_label.
double ChoosePositiveLabel(const std::vector<std::pair<double, Offset>>& label_counts,
                           const ReadOptions& options, const std::string& path);

// Reads a whole file ("-": standard input) into memory, decompressing gzip, bzip2 or xz data
// (detected by magic bytes). Throws ParseError (line 0) when it cannot be opened or read, or
// when the compressed data is corrupt or truncated. Used by the IDX reader.
std::vector<unsigned char> ReadFileBytes(const std::string& path);

// Writes a dataset in LIBSVM text format (labels as -1/+1 unless original labels are known),
// to a temporary file (path + ".tmp.<pid>") renamed into place; "-" writes to standard output.
// Zero values of dense rows are omitted; values are written in the shortest form that reads back
// bit-exactly as float32 (std::to_chars). Throws std::runtime_error when it cannot write, and
// then leaves no file behind.
void WriteLibsvm(const Dataset& data, const std::string& path);

}  // namespace memsgd
