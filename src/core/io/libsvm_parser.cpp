// The LIBSVM reader's error text (ParseError's message, Fail) and its up-front memory checks
// (CheckLineFits, CheckFitsInMemory); the parser itself is inline in libsvm_parser.hpp.
#include "libsvm_parser.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "memsgd/libsvm.hpp"

namespace memsgd::io {

namespace {

constexpr std::size_t kMaxTokenShown = 48;

// A token as shown in a message: non-printable bytes escaped, long tokens cut.
std::string ShowToken(std::string_view tok) {
  std::string s;
  const std::size_t n = std::min(tok.size(), kMaxTokenShown);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(tok[i]);
    if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      s += hex;
    } else {
      s += static_cast<char>(c);
    }
  }
  if (tok.size() > n) s += "...";
  return s;
}

std::string FormatParseError(const std::string& file, long long line, const std::string& token,
                             const std::string& reason) {
  // (append() rather than operator+ chains: GCC 12 gives a false -Wrestrict on the latter)
  std::string s;
  s.reserve(file.size() + reason.size() + token.size() + 32);
  s.append(file);
  if (line > 0) s.append(":").append(std::to_string(line));
  s.append(": ").append(reason);
  if (!token.empty()) s.append(" (token '").append(ShowToken(token)).append("')");
  return s;
}

}  // namespace

std::string NumberText(double x) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

[[noreturn]] void Fail(const std::string& file, long long line, std::string_view token,
                       const std::string& reason) {
  throw ParseError(file, line, std::string(token.substr(0, 256)), reason);
}

// ---------------------------------------------------------------------------------------------
// Up-front memory check: refuse a file that cannot fit before spending minutes parsing it.
//
// Estimate. The first block of text (up to 1 MiB, the whole file when smaller) is sampled for its
// entries (':' bytes) and rows ('\n' bytes) per byte of text; the text size is the file size
// (plain files) or the file size times the expansion the decoder has shown so far (compressed
// files). Loaded data costs 8 bytes per entry (int32 index + float32 value) and 24 per row
// (row pointer, parsed label, -1/+1 label), so
//     needed = text bytes * (entries per byte * 8 + rows per byte * 24).
// This is what the loaded data set holds (growth of the vectors while reading can briefly take
// more), so a refused file certainly does not fit; a file that passes may still be too large.
// Available memory: MemAvailable from /proc/meminfo (else sysconf's available pages), lowered to
// the room left under a cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes).
// MEMSGD_MEMORY_LIMIT=N[K|M|G|T] replaces the available figure (bytes); =off skips the check.
// Input of unknown size (standard input, pipes) is not checked.

namespace {

std::uint64_t ReadNumberFile(const char* path, bool& ok) {
  ok = false;
  std::FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char buf[64] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  char* end = nullptr;
  const unsigned long long v = std::strtoull(buf, &end, 10);
  if (end == buf) return 0;  // e.g. "max"
  ok = true;
  return v;
}

// Bytes of memory available to this process; 0 when unknown.
std::uint64_t AvailableMemory(std::string& source) {
  std::uint64_t avail = 0;
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long kb = 0;
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        avail = kb * 1024ULL;
        source = "MemAvailable in /proc/meminfo";
        break;
      }
    }
    std::fclose(f);
  }
  if (avail == 0) {
    const long pages = ::sysconf(_SC_AVPHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) {
      avail = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
      source = "available pages (sysconf)";
    }
  }
  struct Limit {
    const char* max;
    const char* used;
  };
  for (const Limit l : {Limit{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                        Limit{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    bool has_max = false, has_used = false;
    const std::uint64_t max = ReadNumberFile(l.max, has_max);
    const std::uint64_t used = ReadNumberFile(l.used, has_used);
    if (!has_max || max >= (1ULL << 60)) continue;  // no limit ("max", or v1's huge number)
    const std::uint64_t room = has_used && used < max ? max - used : 0;
    if (avail == 0 || room < avail) {
      avail = room;
      source = std::string("the cgroup memory limit (") + l.max + ")";
    }
    break;
  }
  return avail;
}

std::string Bytes(double b) {
  static constexpr const char* kUnit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (b >= 1024 && u < 5) {
    b /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, kUnit[u]);
  return buf;
}

// The memory the checks compare against: MEMSGD_MEMORY_LIMIT, else AvailableMemory(); 0 when
// unknown or the checks are off.
std::uint64_t MemoryBudget(std::string& source) {
  if (const char* env = std::getenv("MEMSGD_MEMORY_LIMIT"); env && *env) {
    if (std::strcmp(env, "off") == 0) return 0;
    char* end = nullptr;
    double v = std::strtod(env, &end);
    if (end == env || !(v >= 0)) return AvailableMemory(source);  // unparsable: ignored
    switch (*end) {
      case 'K': case 'k': v *= 1024.0; break;
      case 'M': case 'm': v *= 1024.0 * 1024; break;
      case 'G': case 'g': v *= 1024.0 * 1024 * 1024; break;
      case 'T': case 't': v *= 1024.0 * 1024 * 1024 * 1024; break;
      default: break;
    }
    source = "MEMSGD_MEMORY_LIMIT";
    return static_cast<std::uint64_t>(std::clamp(v, 1.0, 1.8e19));
  }
  return AvailableMemory(source);
}

// Longest line accepted: 1 GiB, and at most a quarter of the memory budget (the line's text and
// what it parses into must fit). Lines that long are not LIBSVM data (a dense row of 10^7
// features is about 100 MB); a file without line breaks (binary data, /dev/zero) ends here
// instead of exhausting the memory.
constexpr std::size_t kMaxLine = std::size_t{1} << 30;

}  // namespace

// Called before the buffer holding an unfinished line grows to `bytes`.
void CheckLineFits(const std::string& shown, long long line, std::size_t bytes) {
  std::string source;
  const std::uint64_t budget = MemoryBudget(source);
  const std::uint64_t limit =
      budget > 0 ? std::min<std::uint64_t>(kMaxLine, budget / 4) : kMaxLine;
  if (bytes <= limit) return;
  Fail(shown, line, {},
       "line longer than " + Bytes(static_cast<double>(bytes / 2)) + " (lines may be at most " +
           (limit == kMaxLine ? std::string("1 GiB") :
                                Bytes(static_cast<double>(limit)) + ", a quarter of the " +
                                    Bytes(static_cast<double>(budget)) + " available (" + source +
                                    ")") +
           "; not a LIBSVM text file?)");
}

// sample: the first block of text; total_text: the estimated text size of the whole file.
void CheckFitsInMemory(const std::string& shown, const char* sample, std::size_t sample_len,
                       double total_text, const char* how) {
  std::string source;
  const std::uint64_t avail = MemoryBudget(source);
  if (avail == 0 || sample_len == 0) return;  // unknown, or the check is off
  std::size_t colons = 0, newlines = 0;
  for (std::size_t i = 0; i < sample_len; ++i) {
    colons += sample[i] == ':';
    newlines += sample[i] == '\n';
  }
  newlines = std::max<std::size_t>(newlines, 1);
  const double per_byte = (8.0 * static_cast<double>(colons) + 24.0 * static_cast<double>(newlines)) /
                          static_cast<double>(sample_len);
  const double needed = total_text * per_byte;
  if (needed <= static_cast<double>(avail)) return;
  char detail[256];
  std::snprintf(detail, sizeof detail,
                "%s of text (%s), about %.3g entries x 8 bytes + %.3g rows x 24 bytes, "
                "extrapolated from the first %s",
                Bytes(total_text).c_str(), how,
                total_text * static_cast<double>(colons) / static_cast<double>(sample_len),
                total_text * static_cast<double>(newlines) / static_cast<double>(sample_len),
                Bytes(static_cast<double>(sample_len)).c_str());
  Fail(shown, 0, {},
       "too large for the available memory: loading it needs about " + Bytes(needed) + " (" +
           detail + ") but only " + Bytes(static_cast<double>(avail)) + " are available (" +
           source + "; set MEMSGD_MEMORY_LIMIT=off to try anyway)");
}

}  // namespace memsgd::io

namespace memsgd {

ParseError::ParseError(std::string file, long long line, std::string token, std::string reason)
    : std::runtime_error(io::FormatParseError(file, line, token, reason)),
      file_(std::move(file)),
      line_(line),
      token_(std::move(token)),
      reason_(std::move(reason)) {}

}  // namespace memsgd
