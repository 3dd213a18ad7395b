# scikit-learn's load_svmlight_file on the same files (fastest of 3), for the ratio in
# docs/performance.md ("Parsing"). Run by bench/parse/run.sh when /usr/bin/python3 has sklearn.
import time, sys
from sklearn.datasets import load_svmlight_file
for f in sys.argv[1:]:
    best = 1e9
    for r in range(3):
        t0 = time.perf_counter(); X, y = load_svmlight_file(f); best = min(best, time.perf_counter() - t0)
    import os
    print(f"{os.path.basename(f)} {os.path.getsize(f)/1e6:.1f} MB sklearn best {best:.3f} s {os.path.getsize(f)/1e6/best:.1f} MB/s", flush=True)
