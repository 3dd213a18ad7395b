#!/usr/bin/python3
"""Figure 3, communication to a common accuracy: from the traces fig3.py wrote, how many bits each
method sends before its averaged iterate first reaches a common suboptimality target, and how many
epochs that takes. Target = the largest 10-epoch suboptimality among SGD, top-1, QSGD-8 and
QSGD-4 (the four methods of the paper's claim "top-1 converges as fast as QSGD 8/4-bit with two
orders of magnitude fewer bits"), so each of these four reaches it.

Reads DIR/fig3_<dataset>.csv, writes DIR/fig3_bits_to_target.csv and prints a Markdown table.
No training: run it after fig3.py.

  /usr/bin/python3 bench/repro/fig3_bits.py [--dir bench/results/repro]
"""
import argparse
import csv
import glob
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", default=C.OUT)
    a = ap.parse_args()
    rows = []
    for path in sorted(glob.glob(os.path.join(a.dir, "fig3_*.csv"))):
        base = os.path.basename(path)[len("fig3_"):-len(".csv")]
        if base in ("tuning", "runs", "compare", "bits_to_target", "meta"):
            continue
        runs = {}
        with open(path) as f:
            for r in csv.DictReader(f):
                runs.setdefault(r["run"], []).append(r)
        if "top1" not in runs:
            continue
        target = max(float(runs[m][-1]["suboptimality"])
                     for m in ("sgd", "top1", "qsgd8", "qsgd4") if m in runs)
        def first_hit(tr):
            for p in tr:
                s = float(p["suboptimality"])
                if math.isfinite(s) and s <= target:
                    return p
            return None

        top1_bits = float(first_hit(runs["top1"])["bits"])
        for name, tr in runs.items():
            hit = first_hit(tr)
            bits = float(hit["bits"]) if hit else math.nan
            rows.append({"dataset": base, "run": name, "variant": tr[0]["variant"],
                         "gamma0": tr[0]["gamma0"], "target_subopt": target,
                         "epochs_to_target": float(hit["epoch"]) if hit else math.nan,
                         "MB_to_target": bits / 8e6,
                         "bits_ratio_vs_top1": bits / top1_bits,
                         "final_subopt": float(tr[-1]["suboptimality"])})
    out = os.path.join(a.dir, "fig3_bits_to_target.csv")
    C.write_rows(out, rows)
    print(C.md_table(["data set", "run", "γ0", "target f−f*", "epochs to target", "MB to target",
                      "bits ÷ top-1's bits to target"],
                     [[r["dataset"], r["run"], r["gamma0"], C.fmt_e(r["target_subopt"]),
                       "never" if math.isnan(r["epochs_to_target"]) else f"{r['epochs_to_target']:.3g}",
                       "" if math.isnan(r["MB_to_target"]) else f"{r['MB_to_target']:.3g}",
                       "" if math.isnan(r["bits_ratio_vs_top1"]) else
                       f"{r['bits_ratio_vs_top1']:.3g}"] for r in rows]))
    print(f"\nwrote {os.path.relpath(out, C.ROOT)}")


if __name__ == "__main__":
    main()
