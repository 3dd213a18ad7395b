// The error-feedback engines' transport over Open MPI ranks: one worker per rank, every round's
// messages exchanged with MPI_Allgatherv and applied by every rank in worker order (the server's
// step replayed on every rank, so that no rank waits for a broadcast of x). docs/distributed.md.
//
// Wire format of one message (what the in-process engine's accounting counts, see
// ef::MessageBits): the cheaper of
//   sparse  sent values (float32 or float64, as --wire says), then the sent indices packed in
//           ceil(log2 d) bits each: ceil(sent (v + ceil log2 d) / 8) bytes;
//   dense   the d values: v d / 8 bytes (the receiver applies the nonzero ones).
// Each rank also sends one 8-byte header per round (sent count and encoding), counted apart.
// The EF21 family's dense g_i^0 goes once as d values (v d / 8 bytes) with MPI_Allgather.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "memsgd/transport.hpp"

namespace memsgd::mpi {

class MpiTransport final : public ef::Transport {
 public:
  explicit MpiTransport(MPI_Comm comm);
  int Workers() const override { return size_; }
  int First() const override { return rank_; }
  int Local() const override { return 1; }
  void Begin(Index d, Wire wire) override;
  void Exchange(std::span<const SparseUpdate* const> local,
                std::vector<const SparseUpdate*>& all) override;
  void Allgather(std::span<const double> local, std::span<double> out, bool values) override;
  void Sum(std::span<double> v) override;
  bool Any(bool flag) override;
  std::vector<std::string> Gather(std::string mine) override;

  // What this rank sent in the message exchanges (payload: the encoded messages; header: the
  // per-round counts), and how long the exchanges took (wall seconds, on this rank).
  std::uint64_t PayloadBytes() const noexcept { return payload_bytes_; }  // init included
  std::uint64_t InitBytes() const noexcept { return init_bytes_; }  // the dense g_i^0 alone
  std::uint64_t HeaderBytes() const noexcept { return header_bytes_; }
  std::uint64_t Exchanges() const noexcept { return exchanges_; }
  double ExchangeSeconds() const noexcept { return exchange_seconds_; }

  // Encoding helpers (public for the tests and the benchmark).
  static std::size_t EncodedBytes(Index d, Wire wire, Index sent, bool* dense);
  // Returns whether the dense encoding was used.
  static bool Encode(const SparseUpdate& m, Index d, Wire wire, std::vector<unsigned char>& out);
  static void Decode(const unsigned char* in, Index sent, bool dense, Index d, Wire wire,
                     SparseUpdate& m);

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  Index d_ = 0;
  Wire wire_ = Wire::kFloat32;
  std::vector<unsigned char> send_, recv_;
  std::vector<std::int32_t> headers_;
  std::vector<int> counts_, displs_;
  std::vector<SparseUpdate> remote_;
  std::uint64_t payload_bytes_ = 0, init_bytes_ = 0, header_bytes_ = 0, exchanges_ = 0;
  double exchange_seconds_ = 0;
};

}  // namespace memsgd::mpi
