#!/usr/bin/python3
"""Turns Google Benchmark JSON (bench/kernels, with --benchmark_repetitions) into CSV + Markdown.

For every benchmark: fastest and median CPU time per iteration over the repetitions (CPU time:
on a shared, loaded machine the process's own CPU time is far less disturbed than wall time;
wall time is kept in the CSV), the counters of the fastest repetition, and for the Mem-SGD top-k
step the speedup of each kernel over the nth_element reference measured in the same run.
"""
import argparse
import csv
import json
import statistics
import sys
from collections import OrderedDict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--machine", required=True)
    a = ap.parse_args()
    doc = json.load(open(a.json))
    runs = OrderedDict()
    for b in doc["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        runs.setdefault(b["run_name"], []).append(b)
    ctx = doc["context"]
    rows = []
    for name, reps in runs.items():
        unit = reps[0]["time_unit"]
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[unit]
        cpu = [r["cpu_time"] * scale for r in reps]
        wall = [r["real_time"] * scale for r in reps]
        best = min(reps, key=lambda r: r["cpu_time"])
        row = OrderedDict(
            benchmark=name, label=best.get("label", ""), repetitions=len(reps),
            cpu_us_min=round(min(cpu), 4), cpu_us_median=round(statistics.median(cpu), 4),
            wall_us_min=round(min(wall), 4), wall_us_median=round(statistics.median(wall), 4),
            iterations=best["iterations"])
        for key in ("cand_per_step", "rescans_per_1k", "full_per_1k", "bytes_per_second"):
            if key in best:
                row[key] = round(best[key], 3)
        rows.append(row)
    keys = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    machine = (f"{a.machine}: {ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, "
               f"load average {', '.join(f'{x:.1f}' for x in ctx.get('load_avg', []))} at start, "
               f"{ctx.get('date')}")
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys + ["machine"])
        w.writeheader()
        for r in rows:
            w.writerow(dict(r, machine=machine))

    def ref_time(k):
        for r in rows:
            if r["benchmark"].startswith("BM_MemSgdTopKStep/kernel:2/k:%d/" % k):
                return r["cpu_us_min"]
        return None

    with open(a.md, "w") as f:
        f.write("# Kernel micro-benchmarks (Google Benchmark)\n\n")
        f.write(f"Machine: {machine}.\n\n")
        f.write("Times are CPU time per iteration (this process's own CPU time: the machine was "
                "shared with other jobs, so wall time is inflated; both are in the CSV), fastest and "
                "median of the repetitions.\n\n")
        if any(r["benchmark"].startswith("BM_MemSgdTopKStep") for r in rows):  # not in a filtered run
            f.write("## Mem-SGD top-k step, RCV1-shaped (d = 47,236, ~73 nnz/row, lambda = 1/677,399)\n\n")
            f.write("One whole step per iteration: gradient, dense L2 term over all d, exact top-k "
                    "selection, send. Every kernel selects the same set.\n\n")
            f.write("| kernel | k | fastest us/step | median us/step | x faster than nth_element | candidates/step | re-scans per 1k | full selections per 1k |\n")
            f.write("|---|---:|---:|---:|---:|---:|---:|---:|\n")
            for r in rows:
                if not r["benchmark"].startswith("BM_MemSgdTopKStep"):
                    continue
                k = int(r["benchmark"].split("/k:")[1].split("/")[0])
                ref = ref_time(k)
                sp = f"{ref / r['cpu_us_min']:.1f}" if ref else "-"
                f.write(f"| {r['label']} | {k} | {r['cpu_us_min']:.2f} | {r['cpu_us_median']:.2f} | {sp} | "
                        f"{r.get('cand_per_step', '-')} | {r.get('rescans_per_1k', '-')} | {r.get('full_per_1k', '-')} |\n")
        f.write("\n## Parts and other kernels\n\n| benchmark | what | fastest us | median us |\n|---|---|---:|---:|\n")
        for r in rows:
            if r["benchmark"].startswith("BM_MemSgdTopKStep"):
                continue
            f.write(f"| {r['benchmark']} | {r['label']} | {r['cpu_us_min']:.3f} | {r['cpu_us_median']:.3f} |\n")
    print(open(a.md).read())


if __name__ == "__main__":
    sys.exit(main())
