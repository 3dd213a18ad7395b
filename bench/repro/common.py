"""Shared helpers for the Mem-SGD reproduction scripts (fig2.py, fig3.py, fig3_bits.py,
report_tables.py).

Options, data sets, the memsgd binary, f* via `memsgd optimum`, running `memsgd train ... --trace`,
CSV / Markdown / plot output and the paper's recorded numbers (../shared/papers/mem-sgd.md sections
6 and 7, from the authors' pickled results in epfml/sparsifiedSGD).
"""
import argparse
import csv
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED_DATA = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "bench", "results", "repro")
DATA_DIR = os.path.join(ROOT, "build-repro", "data")   # generated data (ignored by git: build*/)

# Paper sizes (Table 1) and the scaled-down defaults used here.
PAPER_ROWS = {"epsilon": 400_000, "rcv1": 677_399}
DEFAULT_ROWS = {"epsilon": 20_000, "rcv1": 20_000}

# name -> (kind, protocol). kind: "synthetic" (memsgd generate --like NAME) or "real"
# (../shared/data/NAME). protocol: which of the paper's two settings the data set follows:
# "epsilon" (dense-ish, k in {1,2,3}) or "rcv1" (sparse, high-dimensional, k in {10,20,30}).
DATASETS = {
    "epsilon": ("synthetic", "epsilon"),
    "rcv1": ("synthetic", "rcv1"),
    "w8a": ("real", "epsilon"),
    "a9a": ("real", "epsilon"),
    "rcv1_small": ("real", "rcv1"),
}
LABELS = {
    "epsilon": "epsilon-like (synthetic)",
    "rcv1": "RCV1-like (synthetic)",
    "w8a": "w8a (real)",
    "a9a": "a9a (real)",
    "rcv1_small": "rcv1_small (real RCV1-v2 subset)",
}

# ---------------------------------------------------------------------------------------------
# The paper's recorded numbers (mem-sgd.md; [R-data] = the authors' pickles).

# Figure 2, training loss at epoch 1 and at the last epoch (epsilon: 3, RCV1-test: 5).
PAPER_FIG2 = {
    "epsilon": {
        "sgd": (0.29244, 0.28294),
        "top1": (0.28838, 0.28269),
        "rand1": (0.30645, 0.28325),
        "rand2": (0.29503, 0.28304),
        "rand3": (0.29393, 0.28299),
        "rand1 no-shift": (1.13955, 0.28655),
        "top1 no-memory": (2.79629, 2.50184),
    },
    "rcv1": {
        "sgd": (0.08703, 0.08480),
        "top10": (0.08704, 0.08480),
        "rand10": (0.08807, 0.08481),
        "rand20": (0.08740, 0.08480),
        "rand30": (0.08727, 0.08480),
        "rand10 no-shift": (0.41685, 0.08493),
        "top1": (0.08721, 0.08480),
    },
}
# sklearn SGDClassifier baselines the paper draws as dotted lines (not f*; bug B4 on epsilon).
PAPER_BASELINE = {"epsilon": 0.2824156, "rcv1": 0.0847738}

# Figure 3: chosen gamma0 of the Bottou schedule and training loss at epoch 1 / epoch 10.
PAPER_FIG3_GAMMA = {
    "epsilon": {"sgd": 10, "top1": 10, "rand1": 10, "qsgd8": 10, "qsgd4": 1, "qsgd2": 1},
    "rcv1": {"sgd": 10, "top1": 10, "rand1": 1, "rand10": 1, "qsgd8": 10, "qsgd4": 10,
             "qsgd2": 10},
}
PAPER_FIG3_LOSS = {
    "epsilon": {"sgd": (0.28838, 0.28234), "top1": (0.28568, 0.28228),
                "rand1": (0.30537, 0.28265), "qsgd8": (0.28851, 0.28235),
                "qsgd4": (0.29046, 0.28326), "qsgd2": (0.36134, 0.29384)},
    "rcv1": {"sgd": (0.08696, 0.08477), "top1": (0.08714, 0.08477), "rand1": (0.11637, 0.08552),
             "rand10": (0.08822, 0.08484), "qsgd8": (0.08697, 0.08477),
             "qsgd4": (0.08738, 0.08480), "qsgd2": (0.09634, 0.08531)},
}
# Bits per update in the paper's plots (notebooks/plots.ipynb; RCV1 with a fixed d_eff = 70).
PAPER_FIG3_BITS = {
    "epsilon": {"sgd": 128000, "top1": 64, "rand1": 64, "qsgd2": 617, "qsgd4": 2947,
                "qsgd8": 18000},
    "rcv1": {"sgd": 4480, "top1": 64, "rand1": 64, "rand10": 640, "qsgd2": 2450, "qsgd4": 2590,
             "qsgd8": 2870},
}

# Figure 4: speedup at the "24-core" point (25 processes, bug B3), median of 3 repeats, each
# method against its own best 1-core time (mem-sgd.md section 8.3; "top" is really rand-k, B1).
PAPER_FIG4_24 = {
    "epsilon": {"rand10": 18.4, "top10 (B1: rand-k)": 16.1, "sgd": 15.0},
    "rcv1": {"rand50": 16.2, "top50 (B1: rand-k)": 18.3, "sgd": 13.3},
}


def write_paper_values(out):
    """All recorded paper numbers used by the report, as one CSV (so every number is in a CSV)."""
    path = os.path.join(out, "paper_values.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure", "dataset", "run", "quantity", "value", "source"])
        src = "../shared/papers/mem-sgd.md"
        for ds, runs in PAPER_FIG2.items():
            last = 3 if ds == "epsilon" else 5
            for run, (e1, ef) in runs.items():
                w.writerow(["fig2", ds, run, "loss_epoch1", e1, src + " section 6"])
                w.writerow(["fig2", ds, run, f"loss_epoch{last}", ef, src + " section 6"])
        for ds, v in PAPER_BASELINE.items():
            w.writerow(["fig2+fig3", ds, "sklearn baseline", "loss", v, src + " section 5"])
        for ds, runs in PAPER_FIG3_GAMMA.items():
            for run, g in runs.items():
                w.writerow(["fig3", ds, run, "gamma0", g, src + " section 7"])
        for ds, runs in PAPER_FIG3_LOSS.items():
            for run, (e1, e10) in runs.items():
                w.writerow(["fig3", ds, run, "loss_epoch1", e1, src + " section 7"])
                w.writerow(["fig3", ds, run, "loss_epoch10", e10, src + " section 7"])
        for ds, runs in PAPER_FIG3_BITS.items():
            for run, b in runs.items():
                w.writerow(["fig3", ds, run, "bits_per_update", b, src + " section 7"])
        for ds, runs in PAPER_FIG4_24.items():
            for run, v in runs.items():
                w.writerow(["fig4", ds, run, "speedup_24cores_25procs", v, src + " section 8.3"])
    return path


# ---------------------------------------------------------------------------------------------

def machine():
    """(cpu model, logical cores, 1-minute load average) of this machine."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return cpu, os.cpu_count(), os.getloadavg()[0]


def git_head():
    p = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True)
    return p.stdout.strip()


def write_meta(out, name, fields):
    """One-row CSV with how a script ran (command, wall times, machine, load): <out>/<name>_meta.csv."""
    cpu, cores, load = machine()
    row = {"command": "/usr/bin/python3 " + " ".join(
               [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
           "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "git_head": git_head(), "cpu": cpu, "logical_cores": cores, "loadavg1_end": load}
    row.update(fields)
    with open(os.path.join(out, f"{name}_meta.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(row.keys()))
        w.writerow(list(row.values()))


def parse_args(doc, seed_flag, **seed_kwargs):
    """The options of fig2.py and fig3.py; they differ only in the seed option (seed_flag)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--binary", default=None)
    ap.add_argument("--paper", action="store_true", help="paper-size synthetic data")
    ap.add_argument("--rows-epsilon", type=int, default=None)
    ap.add_argument("--rows-rcv1", type=int, default=None)
    ap.add_argument("--datasets", default="epsilon,rcv1,w8a,a9a,rcv1_small")
    ap.add_argument(seed_flag, **seed_kwargs)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--data-dir", default=DATA_DIR)
    return ap.parse_args()


def synthetic_rows(a):
    """Rows of each synthetic set: the paper's (--paper) or the scaled defaults, or --rows-*."""
    rows_of = dict(PAPER_ROWS if a.paper else DEFAULT_ROWS)
    if a.rows_epsilon:
        rows_of["epsilon"] = a.rows_epsilon
    if a.rows_rcv1:
        rows_of["rcv1"] = a.rows_rcv1
    return rows_of


def command_line(script):
    """How the script was called, as the summaries show it."""
    return "/usr/bin/python3 bench/repro/" + script + "".join(" " + x for x in sys.argv[1:])


def finish(fig, out, summary, fields, binary, load_start, total):
    """Writes <out>/<fig>_summary.md (the Markdown lines `summary`) and <fig>_meta.csv (`fields`,
    then the binary and the load average at the start)."""
    with open(os.path.join(out, f"{fig}_summary.md"), "w") as f:
        f.write("\n".join(summary))
    write_meta(out, fig, dict(fields, binary=os.path.relpath(binary, ROOT),
                              loadavg1_start=load_start))
    log(f"{fig} done in {total:.0f} s; outputs in {os.path.relpath(out, ROOT)}")


def find_binary(arg):
    cands = [arg] if arg else [os.path.join(ROOT, "build-repro", "memsgd"),
                               os.path.join(ROOT, "build", "memsgd")]
    for c in cands:
        if c and os.path.exists(c):
            return os.path.abspath(c)
    sys.exit("no memsgd binary found (tried " + ", ".join(cands) + "): build it with\n"
             "  cmake -S . -B build-repro && make -C build-repro -j2 memsgd\nor pass --binary")


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def prepare(binary, name, rows, data_dir):
    """Path to the data file of `name` (generating synthetic data once; cached by rows/seed)."""
    kind, _ = DATASETS[name]
    if kind == "real":
        path = os.path.join(SHARED_DATA, name)
        if not os.path.exists(path):
            sys.exit(f"missing {path}")
        return path
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, f"{name}_like_rows{rows}_seed1.svm")
    if not os.path.exists(path):
        log(f"generating {name}-like data, {rows} rows -> {path}")
        subprocess.run([binary, "generate", "--like", name, "--rows", str(rows), "--seed", "1",
                        "--out", path], check=True, capture_output=True, text=True)
    return path


def load_datasets(binary, datasets, rows_of, data_dir):
    """{name: {path, n, d, fstar, protocol, kind}} for each data set (see prepare and fstar)."""
    meta = {}
    for ds in datasets:
        kind, protocol = DATASETS[ds]
        path = prepare(binary, ds, rows_of.get(ds), data_dir)
        n, d = info(binary, path)
        t0 = time.time()
        fs = fstar(binary, path)
        log(f"{ds}: n={n} d={d} f*={fs:.10f} ({time.time() - t0:.1f} s)")
        meta[ds] = {"path": path, "n": n, "d": d, "fstar": fs, "protocol": protocol, "kind": kind}
    return meta


def info(binary, path):
    """(rows, features) as memsgd sees the file."""
    p = subprocess.run([binary, "info", path], check=True, capture_output=True, text=True)
    vals = {}
    for line in p.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            vals[parts[0]] = parts[1].strip()
    rows = int(vals["rows"].replace(",", ""))
    feats = int(vals["features"].replace(",", ""))
    return rows, feats


def fstar(binary, path, lam=None):
    """f* of the L2-regularised logistic objective on unit-norm rows (--normalize)."""
    cmd = [binary, "optimum", path, "--normalize", "-q"]
    if lam is not None:
        cmd += ["--lambda", repr(lam)]
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("fstar"):
            return float(line.split()[1])
    raise RuntimeError("no fstar in output of " + " ".join(cmd))


def subsample(path, n_rows, fraction, seed, data_dir, tag):
    """Write a seeded uniform row subsample (without replacement) of a LIBSVM file."""
    m = max(1, int(round(n_rows * fraction)))
    os.makedirs(data_dir, exist_ok=True)
    out = os.path.join(data_dir, f"{tag}_sub{m}_seed{seed}.svm")
    if os.path.exists(out):
        return out, m
    keep = set(random.Random(seed).sample(range(n_rows), m))
    tmp = out + ".tmp"
    with open(path, "rb") as fi, open(tmp, "wb") as fo:
        i = 0
        for line in fi:
            if not line.strip():
                continue  # w8a ends with an empty line
            if i in keep:
                fo.write(line if line.endswith(b"\n") else line + b"\n")
            i += 1
    if i != n_rows:
        raise RuntimeError(f"{path}: {i} rows read, expected {n_rows}")
    os.replace(tmp, out)
    return out, m


def train(binary, path, args, fstar_value=None):
    """Run `memsgd train PATH ARGS --trace` and return (trace rows, result dict, wall s, cmd)."""
    fd, trace = tempfile.mkstemp(suffix=".csv", prefix="memsgd-repro-")
    os.close(fd)
    cmd = [binary, "train", path] + [str(a) for a in args] + ["--quiet", "--trace", trace]
    if fstar_value is not None:
        cmd += ["--fstar", repr(fstar_value)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode not in (0, 3):
        raise RuntimeError(" ".join(cmd) + f"\nexit {p.returncode}\n" + p.stderr[-2000:])
    rows = []
    with open(trace) as f:
        for r in csv.DictReader(f):
            rows.append({k: (float(v) if v not in ("", None) else math.nan) for k, v in r.items()})
    os.unlink(trace)
    result = {"diverged": p.returncode == 3}
    for line in (p.stdout + "\n" + p.stderr).splitlines():
        if line.startswith("result:"):
            for tok in line.split()[1:]:
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    result[k] = v
    def rel(c):
        return os.path.relpath(c, ROOT) if isinstance(c, str) and os.path.isabs(c) else str(c)
    shown = [rel(binary), "train", rel(path)] + [str(a) for a in args]
    if fstar_value is not None:
        shown += ["--fstar", f"{fstar_value:.12g}"]
    shown += ["--quiet", "--trace", "TRACE.csv"]
    return rows, result, wall, " ".join(shown)


def parallel(fn, items, jobs):
    """[fn(item) for item in items], on `jobs` threads (each fn runs a memsgd process)."""
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        return list(ex.map(fn, items))


def train_all(binary, meta, jobs, n_jobs, describe):
    """Runs every job (dataset, args, cost) on its full data set with its f*, the costliest first,
    on n_jobs processes; returns the jobs with trace, result, wall and cmd added. describe(job):
    the job in the log."""
    def go(j):
        m = meta[j["dataset"]]
        trace, res, wall, cmd = train(binary, m["path"], j["args"], m["fstar"])
        log(f"  {describe(j)}: loss {trace[-1]['loss']:.6f} ({wall:.1f} s)")
        return dict(j, trace=trace, result=res, wall=wall, cmd=cmd)

    return parallel(go, sorted(jobs, key=lambda j: -j["cost"]), n_jobs)


def at_epoch(rows, epoch, key="loss"):
    """Value of `key` at the checkpoint closest to `epoch` (within 1e-6)."""
    best = None
    for r in rows:
        if abs(r["epoch"] - epoch) < 1e-6:
            best = r[key]
    return best if best is not None else math.nan


def fmt(x, digits=5):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if abs(x) >= 10:
        return f"{x:.6g}"
    return f"{x:.{digits}f}"


def fmt_e(x, digits=2):
    if x is None or (isinstance(x, float) and (math.isnan(x))):
        return ""
    return f"{x:.{digits}e}"


def write_rows(path, rows):
    """Dicts with the same keys as a CSV: floats to 6 significant digits, NaN as an empty cell."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(rows[0].keys()))
        for r in rows:
            w.writerow([(f"{v:.6g}" if isinstance(v, float) and not math.isnan(v) else
                         ("" if isinstance(v, float) else v)) for v in r.values()])


def paper_column(protocol):
    """The summaries' name for the paper's numbers of a protocol."""
    return "paper(eps)" if protocol == "epsilon" else "paper(RCV1)"


def dataset_heading(fig, ds, m):
    """Markdown lines opening a data set's section of a summary: sizes, f*, the plot."""
    return [f"## {LABELS[ds]} — {m['protocol']} protocol, n = {m['n']}, d = {m['d']}, "
            f"f* = {m['fstar']:.6f}", "", f"![{fig} {ds}]({fig}_{ds}.png)", ""]


def pyplot():
    """matplotlib.pyplot without a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)
