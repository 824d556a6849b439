"""k nearest centres: streamreg's ``knn_mc`` against the seed's broadcast, ``cdist`` + ``topk`` and faiss.

Cases (uniform points in [0, 1)^d, float32, k = 5):
  * d = 3: 20000 queries against 50000 centres (the reference's figure: janelia's
    ``knn_mc`` 30-34 s, faiss 3.3 s, on a loaded 2-core machine);
  * d = 64: 5000 queries against 50000 centres.

Each method runs in a fresh child process (best of ``--repeats``), which reports its
time and its peak RSS (VmHWM, whole process, and growth over the RSS after the data
were made), and then checks exactness on 500 queries: the float64 distances of the
returned centres must equal the k smallest float64 distances.

Methods: ``streamreg`` (``knn_mc(x, ctrs, k, m=4096)``); ``seed`` (the janelia_core
broadcast: blocks of m centres, an ``(n, m, d)`` difference tensor, ``pow``, ``sum``,
``topk`` over the running best; m = 1000 for d = 3 and 100 for d = 64, the baseline);
``cdist`` (``torch.cdist`` + ``topk`` in 2000-query chunks); ``faiss`` (``IndexFlatL2``,
skipped with a message when faiss is not installed).

Goal: streamreg at most faiss's time, at <= 1 GB peak RSS, and exact.

Run:  python benchmarks/bench_knn.py [--quick] [--repeats N] [--threads N] [--skip-seed] [--dims 3,64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _util import print_result, reset_peak_rss, result_row, run_child, status_kb

K = 5
CASES = [{"d": 3, "n": 20000, "n_ctrs": 50000, "seed_m": 1000}, {"d": 64, "n": 5000, "n_ctrs": 50000, "seed_m": 100}]
QUICK = [{"d": 3, "n": 2000, "n_ctrs": 10000, "seed_m": 1000}, {"d": 64, "n": 500, "n_ctrs": 10000, "seed_m": 100}]
METHODS = ["streamreg", "seed", "cdist", "faiss"]
GOAL_RSS_GB = 1.0


def seed_knn_mc(x, ctrs, k: int, m: int):
    """The janelia_core algorithm (baseline): broadcast differences per block of m centres."""
    import torch

    best_d = best_i = None
    for c0 in range(0, ctrs.shape[0], m):
        block = ctrs[c0 : c0 + m]
        dist = (x[:, None, :] - block[None, :, :]).pow(2).sum(2)  # (n, m, d) temporary
        ids = torch.arange(c0, c0 + block.shape[0]).expand(x.shape[0], -1)
        if best_d is not None:
            dist, ids = torch.cat([best_d, dist], 1), torch.cat([best_i, ids], 1)
        best_d, pos = dist.topk(k, dim=1, largest=False)
        best_i = ids.gather(1, pos)
    return best_i.T


def cdist_knn(x, ctrs, k: int, rows: int = 2000):
    """``torch.cdist`` + ``topk`` over chunks of query rows (the reference's best torch figure)."""
    import torch

    out = [torch.cdist(x[i : i + rows], ctrs).topk(k, dim=1, largest=False).indices for i in range(0, len(x), rows)]
    return torch.cat(out).T


def exact_check(x, ctrs, idx, k: int, n_check: int = 500) -> int:
    """Queries (of the first n_check) whose returned float64 distances are not the k smallest."""
    import torch

    xs, c64 = x[:n_check].double(), ctrs.double()
    dist = torch.zeros(xs.shape[0], c64.shape[0], dtype=torch.float64)
    for j in range(xs.shape[1]):
        dist += (xs[:, j : j + 1] - c64[None, :, j]) ** 2
    got = dist.gather(1, torch.as_tensor(idx[:, :n_check]).T.long()).sort(1).values
    want = dist.topk(k, dim=1, largest=False).values.sort(1).values
    return int((got != want).any(1).sum())


def child(spec: dict) -> None:
    """Runs in a fresh interpreter; prints one JSON line."""
    import torch

    torch.set_num_threads(spec["threads"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(spec["n"], spec["d"], generator=g)
    ctrs = torch.rand(spec["n_ctrs"], spec["d"], generator=g)
    method = spec["method"]
    if method == "faiss":
        import faiss

        faiss.omp_set_num_threads(spec["threads"])
        index = faiss.IndexFlatL2(spec["d"])
        index.add(ctrs.numpy())
        run = lambda: torch.from_numpy(index.search(x.numpy(), K)[1]).T  # noqa: E731
    elif method == "streamreg":
        from streamreg.functional import knn_mc

        run = lambda: knn_mc(x, ctrs, K, 4096)  # noqa: E731
    elif method == "seed":
        run = lambda: seed_knn_mc(x, ctrs, K, spec["seed_m"])  # noqa: E731
    else:
        run = lambda: cdist_knn(x, ctrs, K)  # noqa: E731
    base_kb = reset_peak_rss()
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        idx = run()
        times.append(time.perf_counter() - t0)
    peak_kb = status_kb("VmHWM")
    bad = exact_check(x, ctrs, idx, K)
    growth_gb = (peak_kb - base_kb) * 1024 / 1e9
    print(json.dumps({"seconds": min(times), "peak_gb": peak_kb * 1024 / 1e9, "growth_gb": growth_gb, "inexact": bad}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-seed", action="store_true", help="leave out the slow seed baseline")
    ap.add_argument("--dims", default="3,64", help="cases to run, by d (default: 3,64)")
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    try:
        import faiss  # noqa: F401

        methods = METHODS
    except ImportError:
        print("faiss is not installed (pip install faiss-cpu): its rows are skipped.")
        methods = [m for m in METHODS if m != "faiss"]
    if args.skip_seed:
        methods = [m for m in methods if m != "seed"]
    print(f"load average before: {os.getloadavg()[0]:.1f}; threads: {args.threads}; k = {K}")
    header = f"{'case':<22}{'method':<11}{'best s':>9}{'peak RSS GB':>13}{'growth GB':>11}{'inexact/500':>13}"
    print(header + f"{'vs faiss':>10}")
    dims, results = {int(v) for v in args.dims.split(",")}, []
    for case in [c for c in (QUICK if args.quick else CASES) if c["d"] in dims]:
        name = f"{case['n']}x{case['d']} vs {case['n_ctrs']}"
        rows = {}
        for method in methods:
            repeats = 1 if args.quick or method == "seed" else args.repeats
            spec = {**case, "method": method, "repeats": repeats, "threads": args.threads}
            rows[method] = run_child(__file__, spec)
        ref = rows.get("faiss", {}).get("seconds")
        for method, r in rows.items():
            ratio = f"{r['seconds'] / ref:.2f}x" if ref else "-"
            print(f"{name:<22}{method:<11}{r['seconds']:>9.3f}{r['peak_gb']:>13.3f}{r['growth_gb']:>11.3f}"
                  f"{r['inexact']:>13}{ratio:>10}")
        s = rows["streamreg"]
        results.append((name, s["seconds"], ref))
        if ref:
            met = s["seconds"] <= ref and s["peak_gb"] <= GOAL_RSS_GB and s["inexact"] == 0
            print(f"goal ({name}): streamreg {s['seconds']:.3f} s vs faiss {ref:.3f} s, peak {s['peak_gb']:.3f} GB, "
                  f"inexact {s['inexact']}: {'met' if met else 'MISSED'}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print_result("bench_knn", [result_row(f"knn {c} streamreg/faiss s", s, f, "<= 1") for c, s, f in results if f])
    return 0


if __name__ == "__main__":
    sys.exit(main())
