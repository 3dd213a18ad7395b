#include "shard.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

namespace memsgd::mpi {

namespace {
inline std::size_t Z(long long i) noexcept { return static_cast<std::size_t>(i); }

template <class T>
std::vector<T> AllgatherOne(T v, MPI_Datatype type, MPI_Comm comm, int size) {
  std::vector<T> all(static_cast<std::size_t>(size));
  MPI_Allgather(&v, 1, type, all.data(), 1, type, comm);
  return all;
}
}  // namespace

void AgreeOnError(MPI_Comm comm, const std::string* error) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int origin = error ? rank : size;
  MPI_Allreduce(MPI_IN_PLACE, &origin, 1, MPI_INT, MPI_MIN, comm);
  if (origin == size) return;
  // The first failing rank's message, to everyone.
  std::string msg = rank == origin ? *error : std::string();
  int len = static_cast<int>(msg.size());
  MPI_Bcast(&len, 1, MPI_INT, origin, comm);
  msg.resize(static_cast<std::size_t>(len));
  MPI_Bcast(msg.data(), len, MPI_CHAR, origin, comm);
  throw CollectiveError(msg, origin);
}

Shard ReadShard(const std::string& path, const ReadOptions& options, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  Shard out;

  // 1. Count the rows of this rank's byte chunk.
  std::uint64_t bytes = 0;
  RowCount mine;
  Agree(comm, [&] {
    struct stat st {};
    if (path == "-") throw ParseError(path, 0, "", "memsgd-mpi cannot read standard input: give a file");
    if (::stat(path.c_str(), &st) != 0) throw ParseError(path, 0, "", std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw ParseError(path, 0, "", "not a regular file");
    bytes = static_cast<std::uint64_t>(st.st_size);
    const std::uint64_t b = bytes * static_cast<std::uint64_t>(rank) / static_cast<std::uint64_t>(size);
    const std::uint64_t e = bytes * static_cast<std::uint64_t>(rank + 1) / static_cast<std::uint64_t>(size);
    mine = CountLibsvmRows(path, b, e);
  });
  const auto rows = AllgatherOne<long long>(mine.rows, MPI_LONG_LONG, comm, size);
  const auto lines = AllgatherOne<long long>(mine.lines, MPI_LONG_LONG, comm, size);
  const auto starts = AllgatherOne<unsigned long long>(mine.aligned_begin, MPI_UNSIGNED_LONG_LONG, comm, size);
  std::vector<long long> row0(Z(size) + 1, 0), line0(Z(size) + 1, 0);
  for (int r = 0; r < size; ++r) {
    row0[Z(r) + 1] = row0[Z(r)] + rows[Z(r)];
    line0[Z(r) + 1] = line0[Z(r)] + lines[Z(r)];
  }
  const long long n = row0[Z(size)];
  out.total_rows = n;

  // The whole file's label counts: (value, count) pairs from every rank, merged.
  std::vector<double> pairs;
  for (const auto& [v, c] : mine.label_counts) {
    pairs.push_back(v);
    pairs.push_back(static_cast<double>(c));
  }
  const auto npairs = AllgatherOne<int>(static_cast<int>(pairs.size()), MPI_INT, comm, size);
  std::vector<int> displs(Z(size), 0);
  int total_pairs = 0;
  for (int r = 0; r < size; ++r) {
    displs[Z(r)] = total_pairs;
    total_pairs += npairs[Z(r)];
  }
  std::vector<double> every(Z(std::max(total_pairs, 1)));
  MPI_Allgatherv(pairs.data(), static_cast<int>(pairs.size()), MPI_DOUBLE, every.data(),
                 npairs.data(), displs.data(), MPI_DOUBLE, comm);
  std::map<double, Offset> merged;
  for (int i = 0; i + 1 < total_pairs; i += 2)
    merged[every[Z(i)]] += static_cast<Offset>(every[Z(i) + 1]);
  const std::vector<std::pair<double, Offset>> label_counts(merged.begin(), merged.end());

  // 2. This rank's rows [q r, q (r+1)) and their bytes; 3. read them.
  ReadOptions ro = options;
  Agree(comm, [&] {
    if (n < size)
      throw ParseError(path, 0, "", "has " + std::to_string(n) + " data rows, fewer than the " +
                                        std::to_string(size) + " ranks");
    ro.fixed_positive_label = ChoosePositiveLabel(label_counts, options, path);
    ro.positive_label.reset();
  });
  const long long q = n / size;
  auto locate = [&](long long row, long long* line) -> std::uint64_t {
    if (row >= n) {
      *line = line0[Z(size)] + 1;
      return bytes;
    }
    int c = 0;  // the chunk holding `row`
    while (row0[Z(c) + 1] <= row) ++c;
    long long skipped = 0;
    const std::uint64_t at = SeekLibsvmRow(path, starts[Z(c)], row - row0[Z(c)], &skipped);
    *line = line0[Z(c)] + skipped + 1;
    return at;
  };
  Agree(comm, [&] {
    const long long begin_row = q * rank;
    const long long end_row = rank + 1 == size ? n : q * (rank + 1);
    long long line = 1, end_line = 1;
    ro.range_begin = locate(begin_row, &line);
    ro.range_end = locate(end_row, &end_line);
    ro.first_line = line;
    ro.densify_at = 2;  // decided below, on the whole file's density
    out.data = ReadLibsvm(path, ro);
    out.first_row = begin_row;
    out.first_line = line;
    if (out.data.NumRows() != end_row - begin_row)
      throw ParseError(path, line, "", "the shard holds " + std::to_string(out.data.NumRows()) +
                                           " rows, expected " + std::to_string(end_row - begin_row) +
                                           " (was the file changed while it was read?)");
  });

  // d and the storage, agreed (dense when the whole file's nnz / (N d) reaches densify_at).
  int d = out.data.NumFeatures();
  MPI_Allreduce(MPI_IN_PLACE, &d, 1, MPI_INT, MPI_MAX, comm);
  long long nnz = out.data.NumNonZeros();
  MPI_Allreduce(MPI_IN_PLACE, &nnz, 1, MPI_LONG_LONG, MPI_SUM, comm);
  out.total_nnz = nnz;
  out.data.SetNumFeatures(d);
  // The model file names the -1 class: the whole file's other label, not the shard's.
  if (label_counts.size() == 2) {
    const double pos = out.data.positive_label;
    out.data.negative_label = label_counts[0].first == pos ? label_counts[1].first : label_counts[0].first;
  }
  if (d > 0 && static_cast<double>(nnz) / (static_cast<double>(n) * d) >= options.densify_at)
    out.data.Densify();
  return out;
}

}  // namespace memsgd::mpi
