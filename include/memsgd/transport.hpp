// Where the workers of the error-feedback engines run (src/core/engine/error_feedback.cpp).
//
// The engines are written once, for n workers and a server that adds their messages in worker
// order. A transport says which of the n workers this process runs (a contiguous block) and
// brings the other workers' messages and totals here:
//   * in-process (the default, InProcessTransport): every worker is local, nothing moves;
//   * Open MPI (src/mpi/mpi_transport.cpp, `memsgd-mpi`): one worker per rank, the messages
//     exchanged with MPI_Allgatherv, the server's step replayed on every rank.
// Because every process applies all n messages in worker order, the iterates are the same
// whatever the transport (docs/distributed.md).
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "memsgd/compressor.hpp"
#include "memsgd/config.hpp"

namespace memsgd::ef {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int Workers() const = 0;  // n, over all processes
  virtual int First() const = 0;    // this process runs workers First() .. First() + Local() - 1
  virtual int Local() const = 0;
  // Called once by the engine before any exchange: the vectors' dimension and the value format.
  virtual void Begin(Index /*d*/, Wire /*wire*/) {}
  // all[i] = worker i's message for i in 0..n-1; local[l] is worker First() + l's. all[i] may
  // point into `local` or into the transport's own buffers (valid until the next call).
  virtual void Exchange(std::span<const SparseUpdate* const> local,
                        std::vector<const SparseUpdate*>& all) = 0;
  // out (n m doubles) = every worker's block of m doubles, in worker order; `local` holds this
  // process's Local() blocks. values: the blocks are dense messages (the EF21 family's g_i^0),
  // already rounded to the wire format: sent in it and counted as message bytes.
  virtual void Allgather(std::span<const double> local, std::span<double> out,
                         bool values = false) = 0;
  // v = the elementwise sum of v over the processes (the same on every process).
  virtual void Sum(std::span<double> v) = 0;
  // Whether any process passed true (a stop request seen by one rank stops all at one round).
  virtual bool Any(bool flag) = 0;
  // The process that runs worker 0 gets every process's bytes, in worker order; the others get
  // nothing (checkpoints: that process writes the file).
  virtual std::vector<std::string> Gather(std::string mine) = 0;
  // True when every worker is in this process (no collective is needed).
  virtual bool InProcess() const { return false; }
};

// Every worker in this process.
class InProcessTransport final : public Transport {
 public:
  explicit InProcessTransport(int workers) : n_(workers) {}
  int Workers() const override { return n_; }
  int First() const override { return 0; }
  int Local() const override { return n_; }
  void Exchange(std::span<const SparseUpdate* const> local,
                std::vector<const SparseUpdate*>& all) override {
    all.assign(local.begin(), local.end());
  }
  void Allgather(std::span<const double> local, std::span<double> out, bool) override {
    std::copy(local.begin(), local.end(), out.begin());
  }
  void Sum(std::span<double>) override {}
  bool Any(bool flag) override { return flag; }
  std::vector<std::string> Gather(std::string mine) override {
    std::vector<std::string> all;
    all.push_back(std::move(mine));
    return all;
  }
  bool InProcess() const override { return true; }

 private:
  int n_;
};

}  // namespace memsgd::ef
