// Reading a LIBSVM file over MPI ranks, each rank only its own shard (docs/distributed.md):
//   1. rank r counts the data rows of the lines that start in bytes [r S/p, (r+1) S/p) of the
//      file (S bytes, p ranks), with their labels; the counts are all-gathered, so every rank
//      knows N and where each rank's chunk of rows begins;
//   2. the shards are `--split contiguous`'s: rows [r q, (r+1) q), q = floor(N/p), the remainder
//      to the last rank (the in-process engine's SplitRows). Rank r finds the byte offset of its
//      first row by a scan of one chunk, and reads the byte range up to the next rank's first row;
//   3. the label mapping comes from the whole file's label counts and d is the largest index over
//      all ranks, so every shard is read exactly as that part of a whole-file read would be;
//      the dense storage decision uses the whole file's nnz / (N d).
// Any rank's error (a bad line, an unreadable or compressed file) stops every rank with that
// error (FILE:LINE: REASON, the file's true line number).
#pragma once
#include <mpi.h>

#include <stdexcept>
#include <string>

#include "memsgd/dataset.hpp"
#include "memsgd/libsvm.hpp"

namespace memsgd::mpi {

// Thrown on every rank when one rank failed; what() is that rank's error.
class CollectiveError : public std::runtime_error {
 public:
  CollectiveError(const std::string& what, int origin) : std::runtime_error(what), origin_(origin) {}
  int Origin() const noexcept { return origin_; }  // the lowest rank that failed

 private:
  int origin_;
};

// Runs f() on every rank; if any rank threw, every rank throws CollectiveError with the message
// of the lowest such rank (a collective call: every rank must reach it).
template <class F>
void Agree(MPI_Comm comm, F&& f);

struct Shard {
  Dataset data;          // this rank's rows, in file order
  Offset total_rows = 0; // N
  Offset first_row = 0;  // index of this rank's first row in the file's data rows
  long long first_line = 1;  // the file line of that row
  Offset total_nnz = 0;
};

// Collective. `options`: the whole-file read's options (num_features, positive_label, densify_at);
// the range fields are set here.
Shard ReadShard(const std::string& path, const ReadOptions& options, MPI_Comm comm);

// ---- implementation of Agree ----------------------------------------------------------------
void AgreeOnError(MPI_Comm comm, const std::string* error);  // throws when any rank failed
template <class F>
void Agree(MPI_Comm comm, F&& f) {
  std::string error;
  bool failed = false;
  try {
    f();
  } catch (const std::bad_alloc&) {
    error = "out of memory";
    failed = true;
  } catch (const std::exception& e) {
    error = e.what();
    failed = true;
  }
  AgreeOnError(comm, failed ? &error : nullptr);
}

}  // namespace memsgd::mpi
