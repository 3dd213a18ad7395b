// Per-round costs over MPI ranks, beside memsgd-mpi's own rounds (bench/mpi/run.sh):
//   dense     the data-parallel SGD baseline: every rank a minibatch gradient on its shard (a
//             dense d-vector), MPI_Allreduce of the d values (float32 or float64), x -= gamma sum/n
//   allgather memsgd-mpi's exchange: every rank's k-sparse message (values + packed indices) to
//             every rank with MPI_Allgatherv, each rank applies all of them
//   root      the alternative: MPI_Gatherv of the messages to rank 0, which sums them and
//             broadcasts the union of their supports (index + value) with MPI_Bcast
// Prints one CSV line per pattern: pattern,ranks,d,k,rounds,seconds_per_round,comm_seconds_per_round,bytes_sent_per_rank_per_round
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mpi_transport.hpp"
#include "shard.hpp"
#include "memsgd/error_feedback.hpp"
#include "memsgd/objective.hpp"
#include "memsgd/rng.hpp"

using namespace memsgd;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 5) {
    if (rank == 0) std::fprintf(stderr, "usage: comm_bench DATA ROUNDS K BATCH\n");
    MPI_Finalize();
    return 1;
  }
  const std::string path = argv[1];
  const int rounds = std::atoi(argv[2]);
  const Index k = std::atoi(argv[3]);
  const int batch = std::atoi(argv[4]);
  mpi::Shard shard;
  try {
    shard = mpi::ReadShard(path, ReadOptions{}, MPI_COMM_WORLD);
  } catch (const std::exception& e) {
    if (rank == 0) std::fprintf(stderr, "%s\n", e.what());
    MPI_Finalize();
    return 2;
  }
  const Dataset& data = shard.data;
  const Index d = data.NumFeatures();
  const auto dz = static_cast<std::size_t>(d);
  auto report = [&](const char* name, double total, double comm, double bytes) {
    double v[2] = {total, comm};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
      std::printf("%s,%d,%d,%d,%d,%.6g,%.6g,%.0f\n", name, size, d, k, rounds, v[0] / rounds,
                  v[1] / rounds, bytes);
  };

  // Dense baseline, float64 and float32 on the wire.
  for (int f32 = 0; f32 <= 1; ++f32) {
    std::vector<double> x(dz, 0.0), g(dz);
    std::vector<float> gf(f32 ? dz : 0);
    Rng rng(1, static_cast<std::uint64_t>(rank));
    double comm = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int t = 0; t < rounds; ++t) {
      std::fill(g.begin(), g.end(), 0.0);
      for (int b = 0; b < batch; ++b) {
        const Offset r = static_cast<Offset>(rng.Below(static_cast<std::uint64_t>(data.NumRows())));
        data.VisitRow(r, [&](auto row) {
          const double z = Dot(row, x.data());
          Axpy(LossDerivative(Loss::kLogistic, z, data.Label(r)) / batch, row, g.data());
        });
      }
      const double c0 = MPI_Wtime();
      if (f32) {
        std::copy(g.begin(), g.end(), gf.begin());
        MPI_Allreduce(MPI_IN_PLACE, gf.data(), d, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        std::copy(gf.begin(), gf.end(), g.begin());
      } else {
        MPI_Allreduce(MPI_IN_PLACE, g.data(), d, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      }
      comm += MPI_Wtime() - c0;
      for (std::size_t j = 0; j < dz; ++j) x[j] -= 0.1 * g[j] / size;
    }
    report(f32 ? "dense-allreduce-f32" : "dense-allreduce-f64", MPI_Wtime() - t0, comm,
           (f32 ? 4.0 : 8.0) * d);
  }

  // Sparse k-messages: random supports (what top-k sends has the same size).
  Rng rng(2, static_cast<std::uint64_t>(rank));
  RandKSampler pick;
  pick.Reset(d, k);
  SparseUpdate msg;
  msg.Reserve(std::max<Index>(d, 1));
  {
    mpi::MpiTransport tr(MPI_COMM_WORLD);
    tr.Begin(d, Wire::kFloat32);
    std::vector<double> x(dz, 0.0);
    std::vector<const SparseUpdate*> all;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int t = 0; t < rounds; ++t) {
      msg.size = 0;
      msg.size = pick.Sample(rng, msg);
      for (Index s = 0; s < msg.size; ++s) msg.val[static_cast<std::size_t>(s)] = static_cast<float>(rng.Normal());
      const SparseUpdate* mine[1] = {&msg};
      tr.Exchange(mine, all);
      for (const SparseUpdate* m : all)
        for (Index s = 0; s < m->size; ++s) x[static_cast<std::size_t>(m->idx[static_cast<std::size_t>(s)])] -= 0.1 * m->val[static_cast<std::size_t>(s)] / size;
    }
    report("sparse-allgatherv", MPI_Wtime() - t0, tr.ExchangeSeconds(),
           static_cast<double>(tr.PayloadBytes() + tr.HeaderBytes()) / rounds);
  }
  {
    // Rank 0 as the server: gather, sum, broadcast the union (int32 index + float32 value).
    std::vector<double> x(dz, 0.0), acc(dz, 0.0);
    std::vector<unsigned char> mark(dz, 0);
    std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
    std::vector<std::int32_t> sidx(static_cast<std::size_t>(k)), ridx;
    std::vector<float> sval(static_cast<std::size_t>(k)), rval;
    std::vector<std::int32_t> uidx;
    std::vector<float> uval;
    double comm = 0, bytes = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int t = 0; t < rounds; ++t) {
      msg.size = 0;
      msg.size = pick.Sample(rng, msg);
      for (Index s = 0; s < msg.size; ++s) {
        sidx[static_cast<std::size_t>(s)] = msg.idx[static_cast<std::size_t>(s)];
        sval[static_cast<std::size_t>(s)] = static_cast<float>(rng.Normal());
      }
      const double c0 = MPI_Wtime();
      int m = static_cast<int>(msg.size);
      MPI_Gather(&m, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
      int total = 0;
      if (rank == 0)
        for (int r = 0; r < size; ++r) {
          displs[static_cast<std::size_t>(r)] = total;
          total += counts[static_cast<std::size_t>(r)];
        }
      ridx.resize(static_cast<std::size_t>(std::max(total, 1)));
      rval.resize(static_cast<std::size_t>(std::max(total, 1)));
      MPI_Gatherv(sidx.data(), m, MPI_INT32_T, ridx.data(), counts.data(), displs.data(), MPI_INT32_T, 0, MPI_COMM_WORLD);
      MPI_Gatherv(sval.data(), m, MPI_FLOAT, rval.data(), counts.data(), displs.data(), MPI_FLOAT, 0, MPI_COMM_WORLD);
      int u = 0;
      if (rank == 0) {
        uidx.clear();
        for (int s = 0; s < total; ++s) {
          const auto j = static_cast<std::size_t>(ridx[static_cast<std::size_t>(s)]);
          acc[j] += rval[static_cast<std::size_t>(s)];
          if (!mark[j]) { mark[j] = 1; uidx.push_back(static_cast<std::int32_t>(j)); }
        }
        uval.resize(uidx.size());
        for (std::size_t s = 0; s < uidx.size(); ++s) {
          const auto j = static_cast<std::size_t>(uidx[s]);
          uval[s] = static_cast<float>(acc[j]);
          acc[j] = 0;
          mark[j] = 0;
        }
        u = static_cast<int>(uidx.size());
      }
      MPI_Bcast(&u, 1, MPI_INT, 0, MPI_COMM_WORLD);
      uidx.resize(static_cast<std::size_t>(u));
      uval.resize(static_cast<std::size_t>(u));
      MPI_Bcast(uidx.data(), u, MPI_INT32_T, 0, MPI_COMM_WORLD);
      MPI_Bcast(uval.data(), u, MPI_FLOAT, 0, MPI_COMM_WORLD);
      comm += MPI_Wtime() - c0;
      for (int s = 0; s < u; ++s) x[static_cast<std::size_t>(uidx[static_cast<std::size_t>(s)])] -= 0.1 * uval[static_cast<std::size_t>(s)] / size;
      bytes += 8.0 * m + 4 + (rank == 0 ? 8.0 * u * (size - 1) : 0.0);
    }
    report("sparse-root-gather-bcast", MPI_Wtime() - t0, comm, bytes / rounds / size);
  }
  MPI_Finalize();
  return 0;
}
