// ReadLibsvm (include/memsgd/libsvm.hpp): the sequential and the parallel read of a LIBSVM text
// file. The byte source is in libsvm_source.hpp, the line parser in libsvm_parser.hpp, the row
// counts and seeks for reading a file in shards in libsvm_scan.cpp, the writer in
// libsvm_writer.cpp.
//
// Input is read in 1 MiB blocks straight from the file descriptor (or through zlib, libbz2 or
// liblzma when the magic bytes say so); complete lines are parsed in place with std::from_chars
// and a hand-written index scanner, and the partial last line of a block is carried over to the
// next. Rows go into growable CSR vectors; labels are mapped to -1/+1 once the file is read.
// With more than one thread (and more than a few MiB of text) the text is read in large batches
// on a reader thread and each batch is parsed in chunks concurrently ("Parallel parse" below),
// with the sequential loop's result, ReadInfo and errors.
#include "memsgd/libsvm.hpp"

#include <tbb/blocked_range.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "libsvm_parser.hpp"
#include "libsvm_source.hpp"

namespace memsgd {

namespace io {

namespace {

// Plain files smaller than this are parsed by the sequential loop whatever the thread count.
constexpr std::size_t kSmallInput = std::size_t{1} << 20;

// ---------------------------------------------------------------------------------------------
// Parallel parse.
//
// The decompressed text is read in batches of tens of MiB by a reader thread (the next batch is
// read while the current one is parsed). A batch is cut into chunks at line starts; the chunks are
// parsed concurrently, each by its own Parser in chunk mode (local line numbers, classes only
// recorded); then, in file order, the chunks' classes are merged (the "more than two classes"
// check), the first error is rethrown with its global line number, and finally the chunks' CSR
// pieces are copied into one set of arrays. The result, the ReadInfo and every error are those
// of the sequential loop (ReadSequential below):
//  * The reader issues exactly the sequential loop's reads (same sizes: it mirrors the 1 MiB
//    buffer, its carried-over line and its growth), so decompression errors and the memory check
//    happen after the same bytes, and the long-line refusal (CheckLineFits) fires at the same
//    point for an endless line (/dev/zero).
//  * A line as long as the sequential buffer runs through the same CheckLineFits calls before it
//    is parsed (LongLineCheck); whether they fail depends only on the line's length.
//  * Errors in a chunk stop that chunk; chunks after the first failed one stop early. Events
//    of one line come in the sequential order: long-line check, label class, then the rest.

// Sequential buffer growth for a line of `len` bytes (what the sequential loop holds of it: the
// line without its '\n', plus a leading byte-order mark on line 1).
void LongLineCheck(const std::string& shown, long long line, std::size_t len) {
  for (std::size_t s = kBlock; s <= len; s *= 2) CheckLineFits(shown, line, s * 2);
}

// Runs fn(i) for i in [0, n) on up to `threads` threads. ThreadSanitizer builds
// (MEMSGD_STD_THREADS) use std::thread, as the worker pool does (include/memsgd/worker_pool.hpp).
class ChunkRunner {
 public:
  // threads: 0 = all cores; more than the cores is capped (oversubscription only slows parsing).
  explicit ChunkRunner(int threads) : threads_(threads) {
#ifndef MEMSGD_STD_THREADS
    if (threads_ > 0) {
      threads_ = std::min(threads_, std::max(1, tbb::info::default_concurrency()));
      arena_ = std::make_unique<tbb::task_arena>(threads_);
    }
#endif
  }
  template <class F>
  void operator()(std::size_t n, F&& fn) {
    if (n == 0) return;
#ifdef MEMSGD_STD_THREADS
    const auto t = std::min<std::size_t>(n, static_cast<std::size_t>(Threads()));
    if (t <= 1) {
      for (std::size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> pool;
    pool.reserve(t);
    for (std::size_t w = 0; w < t; ++w) {
      pool.emplace_back([&] {
        for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
      });
    }
    for (auto& th : pool) th.join();
#else
    auto body = [&] {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1),
                        [&](const tbb::blocked_range<std::size_t>& r) {
                          for (std::size_t i = r.begin(); i != r.end(); ++i) fn(i);
                        });
    };
    if (arena_) arena_->execute(body);
    else body();
#endif
  }
  // Runs f() inside this runner's arena, so that what it starts in parallel (the dense copy of
  // Dataset::Densify) uses the same threads as the parse.
  template <class F>
  decltype(auto) Within(F&& f) {
#ifndef MEMSGD_STD_THREADS
    if (arena_) return arena_->execute(std::forward<F>(f));
#endif
    return f();
  }
  int Threads() const {
    if (threads_ > 0) return threads_;
#ifdef MEMSGD_STD_THREADS
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#else
    return tbb::this_task_arena::max_concurrency();
#endif
  }

 private:
  int threads_;
#ifndef MEMSGD_STD_THREADS
  std::unique_ptr<tbb::task_arena> arena_;
#endif
};

// One batch of text: [0, parse_end) holds complete lines (the carried-over start of a line from
// the previous batch first); [parse_end, len) is the start of a line continued in the next batch.
// Text bytes (not zero-filled: a batch is written once by the reader).
struct TextBuffer {
  std::unique_ptr<char[]> p;
  std::size_t cap = 0;
  char* data() const noexcept { return p.get(); }
  std::size_t size() const noexcept { return cap; }
  // Grows to at least n bytes keeping the first `keep`.
  void Grow(std::size_t n, std::size_t keep) {
    if (n <= cap) return;
    n = std::max(n, cap + cap / 2);
    std::unique_ptr<char[]> q(new char[n]);
    if (keep > 0) std::memcpy(q.get(), p.get(), keep);
    p = std::move(q);
    cap = n;
  }
};

struct Batch {
  TextBuffer buf;
  std::size_t len = 0;
  std::size_t parse_end = 0;
  std::size_t skip = 0;  // a byte-order mark at the start of the text
  bool eof = false;
  // What stopped the reading (after the lines before it are parsed): a read or decompression
  // error, or (next_line) the long-line refusal of the line continued after parse_end.
  std::exception_ptr error;
  bool error_next_line = false;
};

// Reads batches with the sequential loop's read sizes (see above).
class BatchReader {
 public:
  BatchReader(Source& src, const std::string& shown, std::size_t target)
      : src_(src), shown_(shown), target_(target) {}

  std::uint64_t TextBytes() const noexcept { return text_bytes_; }

  // `start` holds `carried` bytes: the unfinished line of the previous batch.
  Batch Next(TextBuffer start, std::size_t carried) {
    Batch b;
    b.buf = std::move(start);
    b.len = carried;
    b.buf.Grow(target_ + size_, b.len);
    for (;;) {
      if (b.len >= target_ && b.parse_end > 0) break;
      if (have_ == size_) {  // the sequential buffer is full of one unfinished line: it grows
        try {
          CheckLineFits(shown_, 0, size_ * 2);
        } catch (const ParseError&) {
          b.error = std::current_exception();
          b.error_next_line = true;
          break;
        }
        size_ *= 2;
      }
      const std::size_t cap = size_ - have_;
      if (b.buf.size() - b.len < cap) b.buf.Grow(b.len + cap, b.len);
      std::size_t got = 0;
      try {
        got = src_.Read(b.buf.data() + b.len, cap);
      } catch (const ParseError&) {
        if (first_) throw;
        b.error = std::current_exception();
        break;
      }
      text_bytes_ += got;
      if (first_) {  // the memory check of the sequential loop, on the same first block
        first_ = false;
        MemoryCheck(b.buf.data() + b.len, got);
      }
      char* const fresh = b.buf.data() + b.len;
      b.len += got;
      if (got == 0) {
        b.eof = true;
        b.parse_end = b.len;
        break;
      }
      have_ += got;
      if (at_start_ && have_ >= 3) {
        at_start_ = false;
        if (src_.AtFileStart() && std::memcmp(b.buf.data(), "\xEF\xBB\xBF", 3) == 0) b.skip = 3;
        // The first scan covers the whole buffer (a newline before the third byte included).
        if (const void* nl = memrchr(b.buf.data(), '\n', b.len)) {
          b.parse_end = static_cast<std::size_t>(static_cast<const char*>(nl) - b.buf.data()) + 1;
          have_ = b.len - b.parse_end;
        }
      } else if (!at_start_) {
        if (const void* nl = memrchr(fresh, '\n', got)) {
          b.parse_end = static_cast<std::size_t>(static_cast<const char*>(nl) - b.buf.data()) + 1;
          have_ = b.len - b.parse_end;
        }
      }
    }
    if (b.skip > b.parse_end) b.skip = 0;
    return b;
  }

 private:
  void MemoryCheck(const char* sample, std::size_t got) {
    if (src_.SizeHint() == 0 || got == 0) return;
    double total = 0;
    const char* how = "file size";
    if (src_.Kind() == Compression::kNone) {
      total = static_cast<double>(src_.SizeHint());
    } else {
      const double consumed =
          static_cast<double>(std::max<std::uint64_t>(src_.RawConsumed(), 1));
      total = static_cast<double>(src_.SizeHint()) * static_cast<double>(got) / consumed;
      how = "compressed size x the expansion so far";
    }
    CheckFitsInMemory(shown_, sample, got, std::max(total, static_cast<double>(got)), how);
  }

  Source& src_;
  const std::string& shown_;
  std::size_t target_;
  // The sequential loop's buffer: its size and the bytes of the unfinished line it holds.
  std::size_t size_ = kBlock;
  std::size_t have_ = 0;
  bool at_start_ = true;
  bool first_ = true;
  std::uint64_t text_bytes_ = 0;
};

// One chunk of a batch and what parsing it gave.
struct Chunk {
  const char* begin = nullptr;
  const char* end = nullptr;
  std::size_t first_line_extra = 0;  // bytes before begin that belong to its first line (BOM)
  std::unique_ptr<Parser> parser;
  bool failed = false;  // ParseError at local line err_line (its token and reason)
  long long err_line = 0;
  std::string err_token, err_reason;
  std::exception_ptr other;  // anything else (std::bad_alloc)
};

constexpr std::size_t kNoError = std::numeric_limits<std::size_t>::max();

void ParseChunk(Chunk& c, std::size_t index, std::atomic<std::size_t>& first_failed,
                const std::string& shown, const ReadOptions& opt) {
  if (first_failed.load(std::memory_order_relaxed) < index) return;
  auto note_failure = [&] {
    std::size_t cur = first_failed.load(std::memory_order_relaxed);
    while (index < cur && !first_failed.compare_exchange_weak(cur, index, std::memory_order_relaxed)) {
    }
  };
  try {
    c.parser = std::make_unique<Parser>(shown, opt, /*chunk=*/true);
    Parser& parser = *c.parser;
    parser.Reserve(static_cast<std::uint64_t>(c.end - c.begin));
    const char* p = c.begin;
    std::size_t extra = c.first_line_extra;
    unsigned count = 0;
    while (p < c.end) {
      const auto* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(c.end - p)));
      const char* le = nl ? nl : c.end;
      const auto len = static_cast<std::size_t>(le - p) + extra;
      extra = 0;
      if (len >= kBlock) LongLineCheck(shown, parser.LinesSeen() + 1, len);
      parser.Line(p, le);
      p = nl ? nl + 1 : c.end;
      if ((++count & 1023U) == 0 && first_failed.load(std::memory_order_relaxed) < index) return;
    }
  } catch (const ParseError& e) {
    c.failed = true;
    c.err_line = e.Line();
    c.err_token = e.Token();
    c.err_reason = e.Reason();
    note_failure();
  } catch (...) {
    c.other = std::current_exception();
    note_failure();
  }
}

Dataset ReadParallel(Source& src, const std::string& shown, const ReadOptions& options,
                     ReadInfo& info, ChunkRunner& run) {
  const int threads = std::max(1, run.Threads());
  // Bytes per batch: 16 MiB per thread (16-256 MiB); with forced small chunks (tests) small
  // batches, so that small files cross batch boundaries too.
  const std::size_t target =
      options.chunk_bytes > 0
          ? options.chunk_bytes * 4 * static_cast<std::size_t>(threads)
          : std::clamp<std::size_t>(static_cast<std::size_t>(threads) << 24, std::size_t{16} << 20,
                                    std::size_t{256} << 20);
  BatchReader reader(src, shown, target);
  Parser all(shown, options);
  std::vector<std::unique_ptr<Parser>> pieces;
  long long lines = options.first_line - 1;  // the file line before the current batch

  Batch cur = reader.Next({}, 0);
  for (;;) {
    // Start reading the next batch (the carried-over line first) while this one is parsed.
    std::future<Batch> next;
    const bool more = !cur.eof && !cur.error;
    if (more) {
      const std::size_t carried = cur.len - cur.parse_end;
      TextBuffer start;
      start.Grow(std::max(carried, kBlock), 0);
      if (carried > 0) std::memcpy(start.data(), cur.buf.data() + cur.parse_end, carried);
      next = std::async(std::launch::async, [&reader, carried, s = std::move(start)]() mutable {
        return reader.Next(std::move(s), carried);
      });
    }

    // Chunks: about chunk bytes each, cut after a '\n'.
    const char* const text = cur.buf.data() + cur.skip;
    const char* const text_end = cur.buf.data() + cur.parse_end;
    const auto size = static_cast<std::size_t>(text_end - text);
    const std::size_t chunk_bytes =
        options.chunk_bytes > 0
            ? options.chunk_bytes
            : std::clamp<std::size_t>(size / (4 * static_cast<std::size_t>(threads)) + 1,
                                      std::size_t{256} << 10, std::size_t{16} << 20);
    std::vector<Chunk> chunks;
    for (const char* b = text; b < text_end;) {
      const char* e = text_end;
      if (static_cast<std::size_t>(text_end - b) > chunk_bytes) {
        const char* probe = b + chunk_bytes - 1;
        const auto* nl = static_cast<const char*>(
            std::memchr(probe, '\n', static_cast<std::size_t>(text_end - probe)));
        e = nl ? nl + 1 : text_end;
      }
      Chunk c;
      c.begin = b;
      c.end = e;
      chunks.push_back(std::move(c));
      b = e;
    }
    if (!chunks.empty() && cur.skip > 0) chunks.front().first_line_extra = cur.skip;
    std::atomic<std::size_t> first_failed{kNoError};
    run(chunks.size(), [&](std::size_t i) { ParseChunk(chunks[i], i, first_failed, shown, options); });

    // In file order: classes, the first error, line numbers.
    for (Chunk& c : chunks) {
      if (all.TracksClasses() && c.parser) all.MergeClasses(*c.parser, lines);
      if (c.failed) throw ParseError(shown, c.err_line > 0 ? lines + c.err_line : 0, c.err_token, c.err_reason);
      if (c.other) std::rethrow_exception(c.other);
      lines += c.parser->LinesSeen();
      pieces.push_back(std::move(c.parser));
    }
    if (cur.error) {
      if (!cur.error_next_line) std::rethrow_exception(cur.error);
      try {
        std::rethrow_exception(cur.error);
      } catch (const ParseError& e) {
        throw ParseError(shown, lines + 1, e.Token(), e.Reason());
      }
    }
    if (!more) break;
    cur = Batch{};  // free this batch's text before taking the next
    cur = next.get();
  }
  info.text_bytes = reader.TextBytes();
  all.AdoptPieces(pieces, lines, run);
  pieces.clear();
  return all.Finish(info);
}

// The sequential loop: 1 MiB blocks, lines parsed as they complete.
Dataset ReadSequential(Source& src, const std::string& shown, const ReadOptions& options,
                       ReadInfo& info) {
  Parser parser(shown, options);
  if (src.Kind() == Compression::kNone) parser.Reserve(src.SizeHint());
  else parser.Reserve(src.SizeHint() * 4);

  std::vector<char> buf(kBlock);
  std::size_t have = 0;  // carried-over bytes of an unfinished line at the front of buf
  bool at_start = true;
  bool eof = false;
  bool memory_checked = false;
  while (!eof) {
    if (have == buf.size()) {  // a line longer than the buffer
      CheckLineFits(shown, parser.LinesSeen() + 1, buf.size() * 2);
      buf.resize(buf.size() * 2);
    }
    const std::size_t got = src.Read(buf.data() + have, buf.size() - have);
    info.text_bytes += got;
    if (got == 0) eof = true;
    if (!memory_checked) {
      // The first block: estimate what the whole file needs (see CheckFitsInMemory).
      memory_checked = true;
      if (src.SizeHint() > 0 && got > 0) {
        double total = 0;
        const char* how = "file size";
        if (src.Kind() == Compression::kNone) {
          total = static_cast<double>(src.SizeHint());
        } else {
          const double consumed = static_cast<double>(std::max<std::uint64_t>(src.RawConsumed(), 1));
          total = static_cast<double>(src.SizeHint()) * static_cast<double>(got) / consumed;
          how = "compressed size x the expansion so far";
        }
        CheckFitsInMemory(shown, buf.data(), got, std::max(total, static_cast<double>(got)), how);
      }
    }
    // Carried-over bytes hold no '\n', so the search for line ends can start after them.
    std::size_t scanned_from = have;
    have += got;
    char* const b = buf.data();
    char* const end = b + have;
    char* p = b;
    if (at_start && (have >= 3 || eof)) {
      at_start = false;
      scanned_from = 0;
      if (have >= 3 && src.AtFileStart() && std::memcmp(b, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;  // UTF-8 BOM
      }
    }
    if (!at_start) {
      char* search = std::max(p, b + scanned_from);
      for (;;) {
        auto* nl = static_cast<char*>(std::memchr(search, '\n', static_cast<std::size_t>(end - search)));
        if (nl == nullptr) break;
        parser.Line(p, nl);
        p = nl + 1;
        search = p;
      }
      if (eof && p < end) {
        parser.Line(p, end);
        p = end;
      }
    }
    have = static_cast<std::size_t>(end - p);
    if (have > 0 && p != b) std::memmove(b, p, have);
  }
  return parser.Finish(info);
}

}  // namespace

}  // namespace io

using namespace io;  // the internals above and in the io headers

Dataset ReadLibsvm(const std::string& path, const ReadOptions& options) {
  ReadInfo info;
  return ReadLibsvm(path, options, info);
}

Dataset ReadLibsvm(const std::string& path, const ReadOptions& options, ReadInfo& info) {
  info = ReadInfo{};
  const std::string shown = ShownName(path);
  if (options.num_features < 0) Fail(shown, 0, {}, "negative num_features in ReadOptions");
  if (options.threads < 0) Fail(shown, 0, {}, "negative threads in ReadOptions");
  if (options.first_line < 1) Fail(shown, 0, {}, "first_line below 1 in ReadOptions");
  const ByteRange range{options.range_begin, options.range_end};
  const bool ranged = range.begin != ByteRange{}.begin || range.end != ByteRange{}.end;
  Source src(path, shown, ranged ? &range : nullptr);
  info.compression = CompressionName(src.Kind());
  ChunkRunner run(options.threads);
  // One thread, or a small plain file: the sequential loop (no reader thread, no copy).
  const bool small = src.Kind() == Compression::kNone && src.SizeHint() > 0 &&
                     src.SizeHint() < kSmallInput;
  if (options.chunk_bytes == 0 && (small || run.Threads() <= 1)) {
    return run.Within([&] { return ReadSequential(src, shown, options, info); });
  }
  return run.Within([&] { return ReadParallel(src, shown, options, info, run); });
}

}  // namespace memsgd
