// Binary cache of a parsed LIBSVM file, so that a second run loads at disk speed.
//
// A cache file holds the Dataset (CSR or dense arrays, -1/+1 labels, original label values) and
// the ReadInfo of one parse, behind a header that says what it is a cache of:
//   * magic "MEMSGDC1" and a format version (kDataCacheVersion);
//   * the source file's size, modification time (ns) and a hash of its first and last 64 KiB;
//   * every ReadOptions field that changes the result (num_features, ignore_extra_features,
//     positive_label, fixed_positive_label, densify_at; not threads or chunk_bytes);
//   * the payload's size and a 64-bit checksum of it.
// LoadDataCache accepts a cache only when all of these match and the arrays are consistent
// (row pointers increasing, indices within the feature count), so a stale, truncated, corrupt
// or foreign file is never used: the caller re-parses. Native byte order (a cache made on a
// machine of the other order fails the magic check). Not for standard input.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "memsgd/dataset.hpp"
#include "memsgd/libsvm.hpp"

namespace memsgd {

inline constexpr std::uint32_t kDataCacheVersion = 1;

// The cache of DATA by default: DATA + ".memsgd-cache", next to the data file.
std::string DefaultCachePath(const std::string& data_path);

// Loads `cache_path` when it is a valid cache of `data_path` as read with `options` (info is
// filled as the parse filled it). Otherwise returns nullopt and puts the reason in `why`
// ("no cache file" when it does not exist). Never throws for a bad cache file (std::bad_alloc
// aside).
std::optional<Dataset> LoadDataCache(const std::string& cache_path, const std::string& data_path,
                                     const ReadOptions& options, ReadInfo& info, std::string& why);

// Writes the cache of `data_path` (which must still be the file `data` was read from) to a
// temporary file next to `cache_path` and renames it into place. Throws std::runtime_error when
// it cannot (and then leaves no file behind).
void SaveDataCache(const std::string& cache_path, const std::string& data_path,
                   const ReadOptions& options, const Dataset& data, const ReadInfo& info);

// ReadLibsvm through a cache: loads `cache_path` when valid; otherwise parses `data_path` and
// writes the cache (unless the data file changed while it was read). `note` receives one line
// for each thing worth telling (a cache ignored and why, a cache loaded or written, a cache that
// could not be written); parse errors are thrown as by ReadLibsvm. `data_path` "-" (standard
// input) is read without a cache.
Dataset ReadLibsvmCached(const std::string& data_path, const std::string& cache_path,
                         const ReadOptions& options, ReadInfo& info,
                         const std::function<void(const std::string&)>& note = {});

}  // namespace memsgd
