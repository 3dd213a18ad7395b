#include "mpi_transport.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "memsgd/error_feedback.hpp"

namespace memsgd::mpi {

namespace {
inline std::size_t Z(Index i) noexcept { return static_cast<std::size_t>(i); }
constexpr std::size_t kMaxBytes = static_cast<std::size_t>(std::numeric_limits<int>::max());
}  // namespace

MpiTransport::MpiTransport(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

void MpiTransport::Begin(Index d, Wire wire) {
  d_ = d;
  wire_ = wire;
  remote_.assign(static_cast<std::size_t>(size_), {});
  for (auto& m : remote_) m.Reserve(std::max<Index>(d, 1));
  headers_.assign(2 * static_cast<std::size_t>(size_), 0);
  counts_.assign(static_cast<std::size_t>(size_), 0);
  displs_.assign(static_cast<std::size_t>(size_), 0);
}

std::size_t MpiTransport::EncodedBytes(Index d, Wire wire, Index sent, bool* dense) {
  const auto v = static_cast<std::uint64_t>(ValueBits(wire));
  const std::uint64_t sparse = static_cast<std::uint64_t>(sent) * (v + ef::IndexBits(d));
  const std::uint64_t full = static_cast<std::uint64_t>(d) * v;
  *dense = sparse > full;  // the accounting's min(sent (v + ceil log2 d), v d)
  return static_cast<std::size_t>(((*dense ? full : sparse) + 7) / 8);
}

bool MpiTransport::Encode(const SparseUpdate& m, Index d, Wire wire,
                          std::vector<unsigned char>& out) {
  bool dense = false;
  out.assign(EncodedBytes(d, wire, m.size, &dense), 0);
  unsigned char* p = out.data();
  auto put = [&](double v) {
    if (wire == Wire::kFloat32) {
      const float f = static_cast<float>(v);  // exact: the engine rounded it already
      std::memcpy(p, &f, 4);
      p += 4;
    } else {
      std::memcpy(p, &v, 8);
      p += 8;
    }
  };
  if (dense) {
    // Every coordinate's value, zeros where nothing was sent.
    std::vector<double> full(Z(d), 0.0);
    for (Index s = 0; s < m.size; ++s) full[Z(m.idx[Z(s)])] = m.val[Z(s)];
    for (double v : full) put(v);
    return true;
  }
  for (Index s = 0; s < m.size; ++s) put(m.val[Z(s)]);
  // Indices: ceil(log2 d) bits each, little-endian bit order.
  const int b = ef::IndexBits(d);
  std::uint64_t acc = 0;
  int have = 0;
  for (Index s = 0; s < m.size; ++s) {
    acc |= static_cast<std::uint64_t>(m.idx[Z(s)]) << have;
    have += b;
    while (have >= 8) {
      *p++ = static_cast<unsigned char>(acc & 0xff);
      acc >>= 8;
      have -= 8;
    }
  }
  if (have > 0) *p++ = static_cast<unsigned char>(acc & 0xff);
  return false;
}

void MpiTransport::Decode(const unsigned char* in, Index sent, bool dense, Index d, Wire wire,
                          SparseUpdate& m) {
  auto get = [&]() {
    double v;
    if (wire == Wire::kFloat32) {
      float f;
      std::memcpy(&f, in, 4);
      in += 4;
      v = f;
    } else {
      std::memcpy(&v, in, 8);
      in += 8;
    }
    return v;
  };
  m.size = 0;
  if (dense) {
    for (Index j = 0; j < d; ++j) {
      const double v = get();
      if (v != 0) m.Push(j, v);
    }
    return;
  }
  for (Index s = 0; s < sent; ++s) m.val[Z(s)] = get();
  const int b = ef::IndexBits(d);
  const std::uint64_t mask = b == 0 ? 0 : (std::uint64_t{1} << b) - 1;
  std::uint64_t acc = 0;
  int have = 0;
  for (Index s = 0; s < sent; ++s) {
    while (have < b) {
      acc |= static_cast<std::uint64_t>(*in++) << have;
      have += 8;
    }
    const auto j = static_cast<Index>(acc & mask);
    if (j >= d) throw std::runtime_error("memsgd-mpi: corrupt message (index out of range)");
    m.idx[Z(s)] = j;
    acc >>= b;
    have -= b;
  }
  m.size = sent;
}

void MpiTransport::Exchange(std::span<const SparseUpdate* const> local,
                            std::vector<const SparseUpdate*>& all) {
  const double t0 = MPI_Wtime();
  const SparseUpdate& mine = *local[0];
  const bool dense = Encode(mine, d_, wire_, send_);
  if (send_.size() > kMaxBytes) throw std::runtime_error("memsgd-mpi: message over 2 GiB");
  const std::int32_t header[2] = {static_cast<std::int32_t>(mine.size), dense ? 1 : 0};
  MPI_Allgather(header, 2, MPI_INT32_T, headers_.data(), 2, MPI_INT32_T, comm_);
  std::size_t total = 0;
  for (int r = 0; r < size_; ++r) {
    bool dr = false;
    const std::size_t bytes = EncodedBytes(d_, wire_, headers_[2 * Z(r)], &dr);
    counts_[Z(r)] = static_cast<int>(bytes);
    displs_[Z(r)] = static_cast<int>(total);
    total += bytes;
    if (total > kMaxBytes) throw std::runtime_error("memsgd-mpi: round over 2 GiB");
  }
  recv_.resize(std::max<std::size_t>(total, 1));
  MPI_Allgatherv(send_.data(), static_cast<int>(send_.size()), MPI_BYTE, recv_.data(),
                 counts_.data(), displs_.data(), MPI_BYTE, comm_);
  all.assign(static_cast<std::size_t>(size_), nullptr);
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) {
      all[Z(r)] = &mine;  // the same values: the engine rounded them to the wire format
      continue;
    }
    Decode(recv_.data() + displs_[Z(r)], headers_[2 * Z(r)], headers_[2 * Z(r) + 1] != 0, d_,
           wire_, remote_[Z(r)]);
    all[Z(r)] = &remote_[Z(r)];
  }
  payload_bytes_ += send_.size();
  header_bytes_ += sizeof header;
  ++exchanges_;
  exchange_seconds_ += MPI_Wtime() - t0;
}

void MpiTransport::Allgather(std::span<const double> local, std::span<double> out, bool values) {
  if (local.size() > kMaxBytes / 8) throw std::runtime_error("memsgd-mpi: block over 2 GiB");
  const int m = static_cast<int>(local.size());
  if (!values || wire_ == Wire::kFloat64) {
    MPI_Allgather(local.data(), m, MPI_DOUBLE, out.data(), m, MPI_DOUBLE, comm_);
    if (values) {
      payload_bytes_ += 8 * local.size();
      init_bytes_ += 8 * local.size();
    }
    return;
  }
  std::vector<float> mine(local.begin(), local.end()), every(out.size());  // exact: rounded
  MPI_Allgather(mine.data(), m, MPI_FLOAT, every.data(), m, MPI_FLOAT, comm_);
  std::copy(every.begin(), every.end(), out.begin());
  payload_bytes_ += 4 * local.size();
  init_bytes_ += 4 * local.size();
}

void MpiTransport::Sum(std::span<double> v) {
  MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, comm_);
}

bool MpiTransport::Any(bool flag) {
  int f = flag ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_LOR, comm_);
  return f != 0;
}

std::vector<std::string> MpiTransport::Gather(std::string mine) {
  // Checkpoint states: a few vectors of d doubles per rank, far below MPI's int counts.
  if (mine.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::length_error("a rank's checkpoint state exceeds 2 GiB");
  const int bytes = static_cast<int>(mine.size());
  std::vector<int> sizes(rank_ == 0 ? static_cast<std::size_t>(size_) : 0);
  MPI_Gather(&bytes, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, comm_);
  std::vector<int> displs(sizes.size());
  std::vector<char> all;
  if (rank_ == 0) {
    long long total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total > std::numeric_limits<int>::max())
        throw std::length_error("the ranks' checkpoint states exceed 2 GiB");
      displs[static_cast<std::size_t>(r)] = static_cast<int>(total);
      total += sizes[static_cast<std::size_t>(r)];
    }
    all.resize(static_cast<std::size_t>(total));
  }
  MPI_Gatherv(mine.data(), bytes, MPI_BYTE, all.data(), sizes.data(), displs.data(), MPI_BYTE, 0,
              comm_);
  std::vector<std::string> out;
  for (std::size_t r = 0; r < sizes.size(); ++r)
    out.emplace_back(all.data() + displs[r], static_cast<std::size_t>(sizes[r]));
  return out;
}

}  // namespace memsgd::mpi
