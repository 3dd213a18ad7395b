"""Medians of bench/mpi/run.sh's raw.csv -> rounds.csv, README.md and per_round.png."""
import csv, statistics, sys
from collections import defaultdict

raw, out, load, machine = sys.argv[1:5]
rows = list(csv.DictReader(open(raw)))
groups = defaultdict(list)
for r in rows:
    groups[(r["data"], int(r["ranks"]), r["what"])].append(r)
table = []
for (data, ranks, what), rs in groups.items():
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    table.append(dict(data=data, ranks=ranks, what=what, k=rs[0]["k"], d=rs[0]["d"],
                      rounds=rs[0]["rounds"], us_per_round=1e6 * med("seconds_per_round"),
                      comm_us_per_round=1e6 * med("comm_seconds_per_round"),
                      bytes_per_rank_per_round=med("bytes_per_rank_per_round"),
                      init_bytes_per_rank=med("init_bytes_per_rank"), repeats=len(rs)))
order = {"a9a": 0, "rcv1_small": 1, "rcv1-like-30k": 2}
table.sort(key=lambda t: (order.get(t["data"], 9), t["ranks"], t["what"]))
with open(f"{out}/rounds.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(table[0].keys()))
    w.writeheader()
    w.writerows(table)
dense = {(t["data"], t["ranks"]): t["bytes_per_rank_per_round"] for t in table
         if t["what"] == "dense-allreduce-f32"}
lines = ["# memsgd-mpi per round: time and bytes (bench/mpi/run.sh)", "",
         f"Machine: {machine}; all ranks on this one machine (shared memory). Load before: `{load.strip()}`.",
         f"Medians of {table[0]['repeats']} interleaved repeats. Bytes: what one rank hands to MPI per round "
         "(memsgd-mpi: its encoded message + the 8-byte header, the EF21 family's one-time dense g_i^0 "
         "apart in `init bytes`; dense: the d-vector it reduces). "
         "`x fewer` = dense float32 Allreduce bytes / this row's bytes; the goal is >= d/(2k).", "",
         "Rows: `memsgd-mpi` = whole training rounds (1 epoch, top-k, lambda 0); `in-process` = its twin "
         "`memsgd train --workers N --threads 0`, the same iterates with the N workers one after the other "
         "in one process (per round: N workers' work on one core); `dense-allreduce-*` = minibatch-1 SGD "
         "whose gradient is reduced with MPI_Allreduce (the baseline); `sparse-allgatherv` = memsgd-mpi's "
         "exchange alone on random k-sparse messages; `sparse-root-gather-bcast` = the rank-0-server "
         "alternative (gather, sum, broadcast the union). The 4-rank rows run 4 ranks on 2 cores "
         "(oversubscribed, Open MPI busy-polls): their times measure time-sharing, not communication.", "",
         "| data | ranks | what | d | k | us/round | comm us/round | bytes/rank/round | init bytes/rank | x fewer than dense f32 | d/(2k) |",
         "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for t in table:
    dz = dense.get((t["data"], t["ranks"]))
    ratio = dz / t["bytes_per_rank_per_round"] if dz and t["bytes_per_rank_per_round"] > 0 else float("nan")
    goal = int(t["d"]) / (2 * int(t["k"])) if t["d"] else float("nan")
    lines.append(f"| {t['data']} | {t['ranks']} | {t['what']} | {t['d']} | {t['k']} | {t['us_per_round']:.2f} | "
                 f"{t['comm_us_per_round']:.2f} | {t['bytes_per_rank_per_round']:.0f} | {t['init_bytes_per_rank']:.0f} | "
                 + (f"{ratio:.0f}" if ratio == ratio else "-") + f" | {goal:.1f} |")
open(f"{out}/README.md", "w").write("\n".join(lines) + "\n")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, data in zip(axes, ["a9a", "rcv1_small", "rcv1-like-30k"]):
        ts = [t for t in table if t["data"] == data]
        whats = sorted({t["what"].split(" (")[0] for t in ts})
        for i, np_ in enumerate([2, 4]):
            vals = [next((t["us_per_round"] for t in ts if t["ranks"] == np_ and t["what"].split(" (")[0] == w), 0) for w in whats]
            ax.barh([j + 0.4 * i for j in range(len(whats))], vals, height=0.4, label=f"{np_} ranks")
        ax.set_yticks([j + 0.2 for j in range(len(whats))], whats, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("microseconds per round")
        ax.set_title(data)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}/per_round.png", dpi=110)
except ImportError:
    pass
