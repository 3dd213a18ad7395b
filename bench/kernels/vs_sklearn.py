#!/usr/bin/python3
"""Whole-run throughput: memsgd `sgd` and `mem-sgd` top-1 against scikit-learn's SGDClassifier.

Same data, same lambda (= alpha), same epochs, one thread, log loss, no intercept, final iterate
(sklearn: average=False; memsgd: averaging final). Timed: sklearn's fit() only (data loaded and
normalised first); memsgd's Train() through bench/kernels/memsgd_bench_train (data loaded first,
no checkpoint evaluation during training, as fit(); train_seconds). Every configuration runs
--repeats times, interleaved, and the table reports the fastest run (the least disturbed by other
load on a shared machine) and the median, with the CPU time of that fastest run. Also: LIBSVM
parsing time, sklearn.datasets.load_svmlight_file vs memsgd's reader (`memsgd info`).

Run with Debian's /usr/bin/python3 (python3-sklearn). Writes CSV and Markdown.
"""
import argparse
import csv
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.datasets import load_svmlight_file  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.preprocessing import normalize  # noqa: E402

RESULT = re.compile(r"train_seconds ([0-9.eE+-]+) cpu_seconds ([0-9.eE+-]+) loss ([0-9.eE+-]+)")
READ = re.compile(r"read time\s+([0-9.]+) s")

PREVIOUS = "topk=heap,sgd=dense,isa=scalar"  # the plain scalar kernels (about the pre-issue-5 code)


def objective(X, y, w, lam):
    z = y * (X @ w)
    return float(np.mean(np.logaddexp(0.0, -z)) + 0.5 * lam * float(w @ w))


def run_sklearn(X, y, lam, epochs, seed):
    clf = SGDClassifier(loss="log_loss", alpha=lam, fit_intercept=False, max_iter=epochs,
                        tol=None, shuffle=True, random_state=seed, average=False,
                        learning_rate="optimal")
    c0 = time.process_time()
    t0 = time.perf_counter()
    clf.fit(X, y)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return secs, cpu, objective(X, y, clf.coef_.ravel(), lam)


def run_memsgd(train_bin, path, normalize_rows, method, lam, epochs, kernels, seed):
    # One warm-up run in the process first: sklearn's fit() runs in a warm interpreter too.
    cmd = [train_bin, path, "--lambda", repr(lam), "--epochs", str(epochs), "--repeats", "1",
           "--warmup", "1", "--seed", str(seed + 1)] + method
    if normalize_rows:
        cmd.append("--normalize")
    env = dict(os.environ)
    if kernels:
        env["MEMSGD_KERNELS"] = kernels
    else:
        env.pop("MEMSGD_KERNELS", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    m = RESULT.search(out.strip().splitlines()[-1])
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


def parse_times(binary, path, repeats):
    sk, ms = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_svmlight_file(path)
        sk.append(time.perf_counter() - t0)
        # One parse thread: the comparison is one thread against one (bench/parse/ measures the
        # multi-threaded reader and the cache).
        out = subprocess.run([binary, "info", "--parse-threads", "1", path], capture_output=True,
                             text=True, check=True).stdout
        ms.append(float(READ.search(out).group(1)))
    return min(sk), min(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memsgd", required=True, help="memsgd binary (generate, info)")
    ap.add_argument("--train-bin", required=True, help="bench/kernels/memsgd_bench_train")
    ap.add_argument("--w8a", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/w8a"))
    ap.add_argument("--eps-rows", type=int, default=20000)
    ap.add_argument("--eps-features", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--w8a-repeats", type=int, default=15, help="w8a runs are short (~0.03 s): more of them")
    ap.add_argument("--machine", required=True, help="machine name for the table")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    a = ap.parse_args()

    eps = os.path.join(a.workdir, f"memsgd_eps_{a.eps_rows}x{a.eps_features}.svm")
    if not os.path.exists(eps):
        subprocess.run([a.memsgd, "generate", "--like", "epsilon", "--rows", str(a.eps_rows),
                        "--features", str(a.eps_features), "--out", eps], check=True,
                       capture_output=True)
    sets = [("w8a (--normalize)", a.w8a, True, a.w8a_repeats),
            (f"epsilon-like {a.eps_rows}x{a.eps_features}", eps, False, a.repeats)]
    load_before = os.getloadavg()
    rows = []
    parse_rows = []
    for name, path, norm, repeats in sets:
        X, y = load_svmlight_file(path)
        if norm:
            X = normalize(X)
        n, d = X.shape
        density = X.nnz / (n * d)
        if density > 0.5:
            X = np.ascontiguousarray(X.toarray())  # dense data as a dense array (what a user passes)
        lam = 1.0 / n
        configs = [
            ("sklearn SGDClassifier", None, None),
            ("memsgd sgd", ["--method", "sgd"], ""),
            ("memsgd sgd (plain kernels)", ["--method", "sgd"], PREVIOUS),
            ("memsgd mem-sgd top-1", ["--method", "mem-sgd", "--k", "1"], ""),
            ("memsgd mem-sgd top-1 (plain kernels)", ["--method", "mem-sgd", "--k", "1"], PREVIOUS),
        ]
        times = {c[0]: [] for c in configs}
        cpus = {c[0]: [] for c in configs}
        losses = {}
        for r in range(repeats):
            for label, method, kern in configs:
                if method is None:
                    secs, cpu, loss = run_sklearn(X, y, lam, a.epochs, r)
                else:
                    secs, cpu, loss = run_memsgd(a.train_bin, path, norm, method, lam, a.epochs, kern, r)
                times[label].append(secs)
                cpus[label].append(cpu)
                losses[label] = loss
        samples = n * a.epochs
        base = samples / min(times["sklearn SGDClassifier"])
        base_median = samples / statistics.median(times["sklearn SGDClassifier"])
        for label, _, kern in configs:
            best = min(times[label])
            best_cpu = cpus[label][times[label].index(best)]
            rows.append({
                "dataset": name, "n": n, "d": d, "nnz_per_row": round(X.nnz / n if hasattr(X, "nnz") else d, 2),
                "solver": label, "kernels": kern if kern else ("default" if kern == "" else "-"),
                "epochs": a.epochs, "lambda": lam, "repeats": repeats,
                "fit_seconds_min": round(best, 5), "fit_seconds_median": round(statistics.median(times[label]), 5),
                "cpu_seconds_of_fastest": round(best_cpu, 5),
                "samples_per_s": round(samples / best), "vs_sklearn": round(samples / best / base, 2),
                "vs_sklearn_median": round(samples / statistics.median(times[label]) / base_median, 2),
                "final_objective": round(losses[label], 6),
            })
        sk_s, ms_s = parse_times(a.memsgd, path, 3)
        size = os.path.getsize(path)
        parse_rows.append((name, size, sk_s, ms_s))
    load_after = os.getloadavg()

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    machine = (f"{a.machine}: {cpu}, {os.cpu_count()} logical CPUs; load average {load_before[0]:.1f} "
               f"before, {load_after[0]:.1f} after (the fastest of "
               f"{a.w8a_repeats} (w8a) / {a.repeats} (epsilon-like) interleaved runs and the median are reported); Python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
               f"numpy {np.__version__}")
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) + ["machine"])
        w.writeheader()
        for r in rows:
            w.writerow(dict(r, machine=machine))
    with open(a.md, "w") as f:
        f.write(f"# memsgd vs scikit-learn SGDClassifier, one thread\n\nMachine: {machine}.\n\n")
        f.write(f"Protocol: log loss, alpha = lambda = 1/n, no intercept, {a.epochs} epochs, final "
                "iterate; sklearn `fit()` time (data loaded and normalised first; dense data as a "
                "dense float64 array), memsgd `Train()` via `memsgd_bench_train` (data read first, "
                "`averaging final`, no checkpoint evaluation during training, one untimed warm-up run in the "
                "process first; `train_seconds`). "
                "samples/s = n x epochs / the fastest of the runs; 'x sklearn' compares fastest with fastest and median with median. 'plain kernels' = "
                f"`MEMSGD_KERNELS={PREVIOUS}` (the pre-issue-5 kernels).\n\n")
        f.write("| data | solver | fastest s | median s | samples/s (fastest) | x sklearn (fastest) | x sklearn (median) | final objective |\n")
        f.write("|---|---|---:|---:|---:|---:|---:|---:|\n")
        for r in rows:
            f.write(f"| {r['dataset']} | {r['solver']} | {r['fit_seconds_min']:.4f} | "
                    f"{r['fit_seconds_median']:.4f} | {r['samples_per_s']:,} | {r['vs_sklearn']:.2f} | "
                    f"{r['vs_sklearn_median']:.2f} | {r['final_objective']:.6f} |\n")
        f.write("\n## LIBSVM parsing (one thread, fastest of 3)\n\n")
        f.write("| file | MB | sklearn load_svmlight_file s | memsgd reader s | x sklearn |\n|---|---:|---:|---:|---:|\n")
        for name, size, sk_s, ms_s in parse_rows:
            f.write(f"| {name} | {size / 1e6:.1f} | {sk_s:.3f} | {ms_s:.3f} | {sk_s / ms_s:.1f} |\n")
    print(open(a.md).read())


if __name__ == "__main__":
    sys.exit(main())
