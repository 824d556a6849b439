"""HDF5 -> cheap model -> HDF5 throughput of ``Layer.run`` and ``Runner`` vs a plain h5py copy.

An input dataset ``(T, 64, 64)`` float32 (default T = 32768, i.e. 512 MiB), chunked
``(256, 64, 64)``, is written once into a temporary folder and synced to disk (it stays
in the page cache). Then, interleaved over ``--repeats`` rounds (the order rotates every
round, so page-cache state and machine load hit every variant alike), three variants
move the whole recording from that file into a new file:

  * baseline: a plain h5py copy that reads slabs of ``dt`` frames and writes them into a
    new resizable dataset ``maxshape=(None, 64, 64)`` with the chunk shape streamreg gives
    the output it creates for that dt (read from a short warm-up run, and checked again on
    the timed outputs) and the HDF5 1.10 object formats streamreg writes (an extensible-array
    chunk index, faster to grow than h5py's default 1.8 B-tree), growing it per slab and
    flushing once, when the file is closed
    (streamreg's ``HDF5Stream`` buffers to whole chunks and flushes only at checkpoints and
    close, so the plain copy is the fair bound);
  * ``Sequential(nn.ReLU()).run("in.h5:/x", dt, output="out.h5:/y")``;
  * ``Runner(model, "in.h5:/x", "out2.h5:/y", dt=dt)``, started and joined;
  * for information, the same plain copy with the output created without an HDF5 chunk cache
    (``rdcc_nbytes=0``), as streamreg creates its outputs: a 1 MiB chunk just fits the default
    1 MiB cache, so the default copies every chunk once more on its way to the file.

Times include opening and closing the files; output files are deleted before every run.
Before every timed run an untimed scratch file of the output's size is written and
deleted (``--no-prime`` skips it): on a VM with free-page reporting, memory that stayed
free for ~2 s goes back to the host and costs ~1 s of system time per 512 MiB to touch
again, which would otherwise land on whichever variant runs first after a pause.
streamreg's output is checked once (a few slabs against ``relu(x)``, bitwise) so the
benchmark cannot pass by writing nothing. Reported: median and best frames/s and GB/s
(input bytes, 1 GB = 1e9 B) per variant, streamreg/baseline (ratio of median times, of
best times, and the lowest ratio within one round), the system CPU time of each run, and
the machine's write bound: the median GB/s of three back-to-back plain ``write()``s of
the output's size in 16 MiB blocks into a new file in the same folder (no fsync),
measured before and after the timings, with every variant's median GB/s as a fraction
of the higher one. Torch uses ``--threads`` threads (default 1).

Goal: streamreg >= 0.8x the plain copy (ratio of medians, both run() and Runner, default
5 rounds), and in every round (the lowest per-round ratio is printed next to it); stretch
goal (issue 10): >= 1.0x.

Secondary figure (no goal): overlap of compute and I/O. A ``LowPass(tau=5, n_stages)``
(default 2 stages, about as costly as the copy on 64x64 frames) is timed on in-memory
data alone (chunk loop, no I/O), in a one-thread h5py read -> model -> write loop (no
overlap possible), and through ``run()`` HDF5 -> HDF5 (its I/O thread may overlap). Perfect
overlap gives run() = max(compute, copy); none gives compute + copy.

Run:  python benchmarks/bench_runner_io.py [--quick] [--frames T] [--dt N] [--repeats N]
      [--threads N] [--stages N] [--no-overlap] [--no-prime] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import statistics
import tempfile
import time

import h5py
import numpy as np
import torch
from _util import print_result, result_row

import streamreg
from streamreg.filters import LowPass

GOAL_RATIO = 0.8  # issue 8: in every run
GOAL_RATIO_STRETCH = 1.0  # issue 10: run() and Runner at least as fast as the plain copy
FRAME = (64, 64)
IN_CHUNK = 256  # input chunk length along time


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def remove(*paths: str) -> None:
    for p in paths:
        if os.path.exists(p):
            os.remove(p)


def write_input(path: str, n: int, slab: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(n, *FRAME), dtype="float32", chunks=(min(IN_CHUNK, n), *FRAME))
        for t0 in range(0, n, slab):
            t1 = min(t0 + slab, n)
            ds[t0:t1] = rng.random((t1 - t0, *FRAME), dtype=np.float32) - 0.5  # half negative: ReLU works


def streamreg_chunks(model, src: str, dst: str, dt: int, n: int) -> tuple[int, ...]:
    """Chunk shape streamreg gives the output it creates for this dt (from a short warm-up run)."""
    sr_run(model, src, dst, dt, n=min(n, 2 * dt))
    with h5py.File(dst, "r") as f:
        chunks = f["y"].chunks
    remove(dst)
    return chunks


def h5_loop(src: str, dst: str, dt: int, chunks: tuple[int, ...], fn=None, n: int | None = None,
            cache: bool = True) -> None:
    """Plain h5py: read slabs of dt frames, (optionally apply ``fn``), append; flushed when closed.

    ``cache=False`` creates the output without an HDF5 chunk cache (``rdcc_nbytes=0``), as streamreg does.
    """
    with h5py.File(src, "r") as fi, h5py.File(dst, "w", libver=("v110", "latest")) as fo:
        x = fi["x"]
        n = len(x) if n is None else n
        extra = {} if cache else {"rdcc_nbytes": 0}
        y = fo.create_dataset("y", shape=(0, *FRAME), maxshape=(None, *FRAME), chunks=chunks, dtype="float32",
                              **extra)
        for t0 in range(0, n, dt):
            t1 = min(t0 + dt, n)
            s = x[t0:t1]
            if fn is not None:
                s = fn(s)
            y.resize(t1, axis=0)
            y[t0:t1] = s


def sr_run(model, src: str, dst: str, dt: int, n: int | None = None) -> None:
    y = model.run(f"{src}:/x", dt, output=f"{dst}:/y", progress=False, n_frames=n)
    close_result(y)


def close_result(y) -> None:
    """Close what run() handed back, whatever its convention (a dataset with its file open, a stream, a path)."""
    file = getattr(y, "file", None)
    if isinstance(file, h5py.File):
        file.close()
    elif hasattr(y, "close"):
        y.close()


def sr_runner(model, src: str, dst: str, dt: int, n: int | None = None) -> None:
    runner = streamreg.Runner(model, f"{src}:/x", f"{dst}:/y", dt=dt, n_frames=n)
    runner.start()
    runner.join()


def prime(path: str | None, nbytes: int) -> None:
    """Write and delete a scratch file of ``nbytes`` (untimed), so the timed run gets recently freed pages.

    On a VM with free-page reporting (virtio-balloon), memory freed for more than ~2 s is handed
    back to the host, and touching it again costs about 1 s of system time per 512 MiB; without
    this step that cost lands on whichever variant runs first after any pause.
    """
    if path is None:
        return
    write_file(path, nbytes)
    os.remove(path)


def write_file(path: str, nbytes: int) -> float:
    """Seconds to write ``nbytes`` into a new file ``path`` in 16 MiB blocks with plain write() (no fsync)."""
    block = bytes(16 << 20)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(-(-nbytes // len(block))):
            f.write(block)
    return time.perf_counter() - t0


def write_bound(folder: str, nbytes: int, rounds: int = 4) -> float:
    """The machine's write bound in GB/s: median of plain writes of ``nbytes`` into a new file in ``folder``,
    each right after the previous one (the first, which meets cold page-cache pages, is dropped)."""
    path = os.path.join(folder, "bound.bin")
    times = []
    for _ in range(rounds):
        times.append(write_file(path, nbytes))
        os.remove(path)
    return nbytes / statistics.median(times[1:]) / 1e9


def timed(fn, dst: str, scratch: str | None, nbytes: int) -> tuple[float, float]:
    """Wall time of ``fn()`` and the system CPU time it took (all threads), in seconds."""
    remove(dst)
    gc.collect()
    prime(scratch, nbytes)
    sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0


def verify(src: str, dst: str, model, dt: int, chunks: tuple[int, ...], what: str) -> None:
    """Output has every frame, the streamreg chunk shape, and equals the model on a few slabs (bitwise)."""
    with h5py.File(src, "r") as fi, h5py.File(dst, "r") as fo:
        x, y = fi["x"], fo["y"]
        n = len(x)
        if y.shape != x.shape:
            msg = f"{what}: output shape {y.shape}, expected {x.shape}"
            raise AssertionError(msg)
        if y.chunks != chunks:
            msg = f"{what}: output chunks {y.chunks}, the baseline uses {chunks}: unfair comparison"
            raise AssertionError(msg)
        starts = sorted({0, max(0, n // 2 - dt // 3), max(0, n - dt - 7), max(0, n - dt // 2)})
        for t0 in starts:
            t1 = min(t0 + dt, n)
            with torch.no_grad():
                want = model(torch.from_numpy(x[t0:t1])).numpy()
            if not np.array_equal(y[t0:t1], want):
                msg = f"{what}: output frames [{t0}, {t1}) differ from the model applied to the input"
                raise AssertionError(msg)


def summary(runs: list[tuple[float, float]], nbytes: int, n: int) -> dict:
    walls = [w for w, _ in runs]
    med, best = statistics.median(walls), min(walls)
    return {"med": med, "best": best, "fps_med": n / med, "fps_best": n / best, "gbs_med": nbytes / med / 1e9,
            "gbs_best": nbytes / best / 1e9, "sys_med": statistics.median(s for _, s in runs),
            "runs": " ".join(f"{w:.2f}({s:.2f})" for w, s in runs), "walls": walls}


def interleaved(variants: dict, args: argparse.Namespace, after_first=None) -> dict[str, list[tuple[float, float]]]:
    """Time every variant ``repeats`` times, rotating the order each round; return (wall, sys) times."""
    names = list(variants)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn, dst = variants[name]
            times[name].append(timed(fn, dst, args.scratch, args.nbytes))
            if r == 0 and after_first is not None:
                after_first(name, dst)
            remove(dst)
    return times


def io_section(args: argparse.Namespace, src: str, work: str, n: int, nbytes: int) -> dict:
    dt = args.dt
    model = streamreg.Sequential(torch.nn.ReLU())
    outs = {k: os.path.join(work, f"{k}.h5") for k in ("copy", "nocache", "run", "runner")}
    chunks = args.chunks = streamreg_chunks(model, src, outs["run"], dt, n)  # also warms up run()
    print(f"output chunks: {chunks} (what streamreg creates for dt={dt}; the baseline uses the same)")
    variants = {
        "h5py copy (baseline)": (lambda: h5_loop(src, outs["copy"], dt, chunks), outs["copy"]),
        "h5py copy, no cache": (lambda: h5_loop(src, outs["nocache"], dt, chunks, cache=False), outs["nocache"]),
        "Layer.run": (lambda: sr_run(model, src, outs["run"], dt), outs["run"]),
        "Runner": (lambda: sr_runner(model, src, outs["runner"], dt), outs["runner"]),
    }
    # warm-up: imports, allocator, HDF5 library state (two chunks each)
    h5_loop(src, outs["copy"], dt, chunks, n=min(n, 2 * dt))
    sr_runner(model, src, outs["runner"], dt, n=min(n, 2 * dt))
    remove(*outs.values())

    def check(name: str, dst: str) -> None:
        if not name.startswith("h5py copy"):
            verify(src, dst, model, dt, chunks, name)

    times = interleaved(variants, args, after_first=check)
    print(f"output check: Layer.run and Runner outputs have shape {(n, *FRAME)}, chunks {chunks} "
          "(as the baseline) and equal relu(x) bitwise on 4 slabs: OK")
    return {k: summary(v, nbytes, n) for k, v in times.items()}


def overlap_section(args: argparse.Namespace, src: str, work: str, n: int) -> dict:
    dt = args.dt
    model = LowPass(tau=5.0, n_stages=args.stages)
    with h5py.File(src, "r") as f:
        x = f["x"][...]  # in memory, for the compute-only figure

    def compute_only() -> None:
        model.reset_state()
        with torch.no_grad():
            for t0 in range(0, n, dt):
                model(torch.from_numpy(x[t0:t0 + dt]))

    def serial_model(s: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(s)).numpy()

    def serial() -> None:
        model.reset_state()
        h5_loop(src, outs["serial"], dt, args.chunks, fn=serial_model)

    outs = {k: os.path.join(work, f"ov_{k}.h5") for k in ("copy", "serial", "run", "none")}
    variants = {
        "compute only (in memory)": (compute_only, outs["none"]),
        "h5py copy (no model)": (lambda: h5_loop(src, outs["copy"], dt, args.chunks), outs["copy"]),
        "h5py read->model->write": (serial, outs["serial"]),
        "Layer.run": (lambda: sr_run(model, src, outs["run"], dt), outs["run"]),
    }
    sr_run(model, src, outs["run"], dt, n=min(n, 2 * dt))  # warm-up
    remove(outs["run"])

    def check(name: str, dst: str) -> None:
        if name != "Layer.run":
            return
        model.reset_state()
        with torch.no_grad(), h5py.File(dst, "r") as fo:
            for t0 in range(0, min(n, 2 * dt), dt):
                want = model(torch.from_numpy(x[t0:t0 + dt])).numpy()
                if not np.array_equal(fo["y"][t0:t0 + dt], want):
                    msg = f"LowPass Layer.run output frames [{t0}, {t0 + dt}) differ from the in-memory model"
                    raise AssertionError(msg)

    times = interleaved(variants, args, after_first=check)
    return {k: summary(v, 0, n) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 20 s)")
    parser.add_argument("--frames", type=int, default=32768, help="T (default 32768 = 512 MiB of input)")
    parser.add_argument("--dt", type=int, default=1024, help="chunk / slab length in frames")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    parser.add_argument("--stages", type=int, default=2, help="LowPass stages of the overlap model")
    parser.add_argument("--no-overlap", action="store_true", help="skip the secondary overlap figure")
    parser.add_argument("--tmpdir", default=None, help="folder for the temporary HDF5 files")
    parser.add_argument("--no-prime", action="store_true",
                        help="skip the untimed scratch-file write before every timed run (see prime())")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.dt, args.repeats = 4096, 512, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.frames
    nbytes = args.nbytes = n * FRAME[0] * FRAME[1] * 4

    print(f"streamreg {streamreg.__version__}, torch {torch.__version__} ({torch.get_num_threads()} thread(s)), "
          f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), {os.cpu_count()} CPUs")
    print(f"input ({n}, 64, 64) float32 = {nbytes / 2**20:.0f} MiB, chunks ({min(IN_CHUNK, n)}, 64, 64); "
          f"dt={args.dt}; {args.repeats} interleaved rounds; "
          f"{'no priming' if args.no_prime else 'untimed scratch write of the output size before each run'}")
    print(f"load avg (1/5/15 min) before: {load()}")
    work = tempfile.mkdtemp(prefix="streamreg_bench_io_", dir=args.tmpdir)
    try:
        src = os.path.join(work, "in.h5")
        args.scratch = None if args.no_prime else os.path.join(work, "scratch.bin")
        t0 = time.perf_counter()
        write_input(src, n, args.dt)
        t1 = time.perf_counter()
        os.sync()  # its dirty pages must not be written back during the timings
        print(f"wrote input in {t1 - t0:.1f} s, synced in {time.perf_counter() - t1:.1f} s; tmp={work}")
        bound = [write_bound(work, nbytes)]
        rows = io_section(args, src, work, n, nbytes)
        bound.append(write_bound(work, nbytes))
        over = None if args.no_overlap else overlap_section(args, src, work, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load avg (1/5/15 min) after:  {load()}\n")

    base = rows["h5py copy (baseline)"]
    head = (f"{'variant':<22} {'median s':>9} {'best s':>7} {'med frames/s':>13} {'best frames/s':>14} "
            f"{'med GB/s':>9} {'best GB/s':>10} {'ratio med':>10} {'ratio best':>11} {'med sys s':>10}   "
            "all runs: wall(sys) s")
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        print(f"{name:<22} {r['med']:>9.3f} {r['best']:>7.3f} {r['fps_med']:>13,.0f} {r['fps_best']:>14,.0f} "
              f"{r['gbs_med']:>9.2f} {r['gbs_best']:>10.2f} {base['med'] / r['med']:>10.2f} "
              f"{base['best'] / r['best']:>11.2f} {r['sys_med']:>10.2f}   {r['runs']}")
    ratios = {k: base["med"] / rows[k]["med"] for k in ("Layer.run", "Runner")}
    result = [result_row(f"runner_io {k} vs h5py copy, frames/s (medians)", rows[k]["fps_med"], base["fps_med"],
                         f">= {GOAL_RATIO}") for k in ratios]
    best = {k: base["best"] / rows[k]["best"] for k in ("Layer.run", "Runner")}
    lowest = {k: min(b / w for b, w in zip(base["walls"], rows[k]["walls"])) for k in ("Layer.run", "Runner")}
    ok = all(v >= GOAL_RATIO for v in ratios.values())
    every = all(v >= GOAL_RATIO for v in lowest.values())
    print(f"\nstreamreg / plain h5py copy, ratio of medians: Layer.run {ratios['Layer.run']:.2f}, "
          f"Runner {ratios['Runner']:.2f} (of best times: {best['Layer.run']:.2f}, {best['Runner']:.2f}; "
          f"lowest within one round: {lowest['Layer.run']:.2f}, {lowest['Runner']:.2f}) "
          f"-> {'PASS' if ok else 'FAIL'} (goal: ratio of medians >= {GOAL_RATIO}); every round: "
          f"{'PASS' if every else 'FAIL'}; stretch goal >= {GOAL_RATIO_STRETCH}: "
          f"{'PASS' if all(v >= GOAL_RATIO_STRETCH for v in ratios.values()) else 'FAIL'}")
    top = max(bound)
    shares = ", ".join(f"{k} {r['gbs_med'] / top:.2f}" for k, r in rows.items())
    print(f"write bound of this machine (plain write() of {nbytes / 2**20:.0f} MiB into a new file, no fsync, "
          f"median of 3 back-to-back, before/after the timings): {bound[0]:.2f}/{bound[1]:.2f} GB/s; "
          f"median GB/s of each variant as a fraction of the higher: {shares}")
    print("(sys = system CPU time of the process during the run; on a VM, spikes of it in single runs are "
          "page-cache allocation cost, not the variant's own work)")

    if over is not None:
        print(f"\noverlap, LowPass(tau=5, n_stages={args.stages}), {args.repeats} interleaved rounds:")
        print(f"  {'variant':<26} {'median s':>9} {'best s':>7} {'med frames/s':>13}   all runs: wall(sys) s")
        for name, r in over.items():
            print(f"  {name:<26} {r['med']:>9.3f} {r['best']:>7.3f} {r['fps_med']:>13,.0f}   {r['runs']}")
        for key in ("med", "best"):
            comp, copy = over["compute only (in memory)"][key], over["h5py copy (no model)"][key]
            ser, run = over["h5py read->model->write"][key], over["Layer.run"][key]
            lo, hi = max(comp, copy), comp + copy
            share = (hi - run) / (hi - lo) if hi > lo else float("nan")
            print(f"  {'medians' if key == 'med' else 'best   '}: no overlap (compute + copy) {hi:.3f} s, perfect "
                  f"(max) {lo:.3f} s, Layer.run {run:.3f} s -> hides {100 * share:.0f}% of the smaller part; "
                  f"Layer.run / one-thread h5py loop = {run / ser:.2f}")
    print_result("bench_runner_io", result)

if __name__ == "__main__":
    main()
