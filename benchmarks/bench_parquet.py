"""Out-of-core data: stream a 10-million-row Parquet data set with iter_parquet.

The script writes a synthetic data set of Census-like width into a temporary
folder (deleted at the end): ``--rows`` rows (default 10,000,000) in
``--files`` files, 10 continuous float32 columns and 30 integer-coded ones
(codes 0 to 9, like ordinal-encoded categories, also float32), a ``click``
target (about 30 % positive) and a ``purchase`` target observed only on
clicks (null elsewhere: a missing label). Row groups hold ``--chunk`` rows.

Then, each in a fresh subprocess so that its peak memory is its own:

1. ``stream``: one pass of ``iter_parquet(..., batch_rows=--chunk)`` over
   every row, doing nothing with the chunks: rows/s, and the peak resident
   memory of the pass (``VmHWM``, reset with ``/proc/self/clear_refs`` once
   the imports and a warm-up are done; Linux only) against the size of the
   data as float32 in memory (``ru_maxrss`` would include the peak of the
   parent, which has just written the files);
2. ``train parquet``: a default ``MMoEClassifier`` trained by ``partial_fit``
   on the chunks of the first ``--train-rows`` rows (default 1,000,000),
   read from the files as they are needed: training rows/s and peak memory;
3. ``train memory``: the same ``partial_fit`` calls on the same chunks,
   read into memory before the clock starts: the reference for the ratio
   (parquet / memory) that says what streaming costs a training pass.

Each phase reports the share of the machine that other processes used while
it ran (``benchmarks/_quiet.py``); the script waits for a quiet machine
before each phase (at most ``BENCH_QUIET_TIMEOUT`` s).

Run::

    nice python benchmarks/bench_parquet.py

(about 5 minutes on 2 CPU cores; ``--rows 1000000`` for a quick look).
It needs pyarrow (``pip install "sklearn-mmoe[parquet]"``) and about 1.5 GB
of free disk in the temporary folder (``--dir``).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np

N_CONTINUOUS, N_CODED = 10, 30
TARGETS = ["click", "purchase"]
MB = 2**20


def write_data(folder, n_rows, n_files, row_group, seed=0):
    """The synthetic files; returns their size on disk in bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_file = -(-n_rows // n_files)
    for i in range(n_files):
        n = min(per_file, n_rows - i * per_file)
        rng = np.random.default_rng([seed, i])
        cont = rng.standard_normal((n, N_CONTINUOUS), dtype=np.float32)
        coded = rng.integers(0, 10, (n, N_CODED)).astype(np.float32)
        logit = cont[:, 0] + 0.5 * cont[:, 1] + 0.3 * (coded[:, 0] - 4.5) - 1.0
        click = rng.random(n) < 1 / (1 + np.exp(-logit))
        bought = rng.random(n) < 1 / (1 + np.exp(-(cont[:, 2] + 0.5 * cont[:, 0])))
        columns = {f"num{j}": cont[:, j] for j in range(N_CONTINUOUS)}
        columns.update({f"code{j}": coded[:, j] for j in range(N_CODED)})
        columns["click"] = click.astype(np.float32)
        columns["purchase"] = pa.array(bought.astype(np.float32), mask=~click)
        pq.write_table(pa.table(columns), os.path.join(folder, f"part-{i:03d}.parquet"),
                       row_group_size=row_group)
        del cont, coded, columns
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def _measure(run):
    """Run ``run()`` (returns rows); time, CPU time, peak memory, contention."""
    from _memory import reset_peak, status_bytes
    from _quiet import Monitor

    rss_before = status_bytes("VmRSS")
    reset = reset_peak()
    cpu0, t0 = time.process_time(), time.perf_counter()
    with Monitor() as monitor:
        rows = run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = status_bytes("VmHWM") if reset else None
    return {
        "rows": rows, "wall_s": wall, "cpu_s": cpu, "rows_per_s": rows / wall,
        "rss_before_mb": rss_before / MB,
        "peak_mb": None if peak is None else peak / MB,
        "others": monitor.others,
    }


def phase(args):
    """One measurement in this (fresh) process; prints a JSON line."""
    import torch

    from sklearn_mmoe import MMoEClassifier
    from sklearn_mmoe.datasets import iter_parquet

    torch.set_num_threads(args.threads)

    def chunks(n_rows=None):
        seen = 0
        for X, Y in iter_parquet(args.path, TARGETS, batch_rows=args.chunk, shuffle_files=False):
            yield X, Y
            seen += len(X)
            if n_rows is not None and seen >= n_rows:
                return

    def stream():
        return sum(len(X) for X, _ in chunks())

    def train(source):
        model = MMoEClassifier(random_state=0)
        rows = 0
        for X, Y in source:
            model.partial_fit(X, Y, classes=[[0.0, 1.0], [0.0, 1.0]])
            rows += len(X)
        return rows

    # Warm up what loads lazily (pyarrow's readers, torch's kernels) on one chunk.
    X, Y = next(chunks())
    MMoEClassifier(random_state=0, batch_size=1024).partial_fit(
        X.iloc[:2048], Y[:2048], classes=[[0.0, 1.0], [0.0, 1.0]])
    del X, Y
    if args.phase == "stream":
        result = _measure(stream)
    elif args.phase == "train-parquet":
        result = _measure(lambda: train(chunks(args.train_rows)))
    else:
        loaded = list(chunks(args.train_rows))
        result = _measure(lambda: train(loaded))
    print(json.dumps(result))


def run_phase(name, args, path):
    from _quiet import wait_quiet

    wait_quiet()
    command = [
        sys.executable, __file__, "--phase", name, "--path", path, "--chunk", str(args.chunk),
        "--train-rows", str(args.train_rows), "--threads", str(args.threads),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"phase {name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=100_000,
                        help="batch_rows of iter_parquet, and the files' row-group size")
    parser.add_argument("--train-rows", type=int, default=1_000_000)
    # 1 thread: on a shared 2-core machine, torch's second OpenMP thread spins
    # at its barriers whenever another process runs (measured here: a
    # partial_fit on 20,000 rows took 16 CPU s with 2 threads, 0.8 with 1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--dir", default=None, help="parent of the temporary data folder")
    parser.add_argument("--phase", choices=["stream", "train-parquet", "train-memory"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return phase(args)

    import pandas as pd
    import pyarrow as pa
    import torch

    in_memory = args.rows * (N_CONTINUOUS + N_CODED + len(TARGETS)) * 4
    parent = args.dir or tempfile.gettempdir()
    free = shutil.disk_usage(parent).free
    if free < 1.5 * in_memory:
        sys.exit(f"{parent} has {free / 2**30:.1f} GiB free; the data needs up to "
                 f"{in_memory / 2**30:.1f} GiB (use --dir or fewer --rows).")
    print(f"pyarrow {pa.__version__}, pandas {pd.__version__}, torch {torch.__version__}, "
          f"{args.threads} torch threads, {os.cpu_count()} CPUs")
    folder = tempfile.mkdtemp(prefix="bench_parquet_", dir=parent)
    try:
        t0 = time.perf_counter()
        on_disk = write_data(folder, args.rows, args.files, args.chunk)
        print(f"wrote {args.rows:,} rows x {N_CONTINUOUS + N_CODED} features + 2 targets in "
              f"{args.files} files ({on_disk / MB:,.0f} MB on disk, {in_memory / MB:,.0f} MB as "
              f"float32 in memory; row groups of {args.chunk:,} rows) in "
              f"{time.perf_counter() - t0:.0f} s")
        results = {name: run_phase(name, args, folder)
                   for name in ("stream", "train-parquet", "train-memory")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    chunk_mb = args.chunk * (N_CONTINUOUS + N_CODED + len(TARGETS)) * 4 / MB
    print(f"\nbatch_rows={args.chunk:,} (one chunk: {chunk_mb:.0f} MB as float32)")
    print(f"{'phase':<15} {'rows':>11} {'wall s':>7} {'CPU s':>7} {'rows/s':>10} "
          f"{'rows/CPU s':>10} {'RSS before':>10} {'peak RSS':>9} {'growth':>7} {'others':>7}")
    for name, r in results.items():
        peak, growth = ("n/a", "n/a") if r["peak_mb"] is None else (
            f"{r['peak_mb']:.0f} MB", f"{r['peak_mb'] - r['rss_before_mb']:.0f} MB")
        print(f"{name:<15} {r['rows']:>11,} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} "
              f"{r['rows_per_s']:>10,.0f} {r['rows'] / r['cpu_s']:>10,.0f} "
              f"{r['rss_before_mb']:>7.0f} MB {peak:>9} {growth:>7} {r['others']:>6.0%}")
    ratio = results["train-parquet"]["wall_s"] / results["train-memory"]["wall_s"]
    print(f"training time, parquet / memory: {ratio:.2f}")
    stream, train = results["stream"], results["train-parquet"]
    print(f"streaming rows/s / training rows/s: {stream['rows_per_s'] / train['rows_per_s']:.0f}")
    if stream["peak_mb"] is not None:
        growth = (stream["peak_mb"] - stream["rss_before_mb"]) * MB
        print(f"stream: peak growth / data in memory: {growth / in_memory:.3f}, "
              f"/ one chunk: {growth / (chunk_mb * MB):.1f}")


if __name__ == "__main__":
    main()
