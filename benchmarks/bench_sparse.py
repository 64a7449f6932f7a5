"""Sparse input: fit on the CSR one-hot matrix against fit on the same data densified.

Census-Income (KDD) group 1 (199,523 rows) goes through a ``ColumnTransformer``
with ``OneHotEncoder(handle_unknown="ignore")`` (sparse output, the default)
on the 31 categorical columns and ``StandardScaler`` on the 7 numerical ones:
a float64 CSR matrix of 486 columns with ~38 non-zeros per row. The script
fits ``MMoEClassifier`` (8 experts x 16 units, towers 8, batch 1024, Adam
1e-3, one epoch) on

* ``dense f32``: the same matrix densified to a float32 numpy array (what
  ``bench_fit.py`` uses);
* ``sparse f64``: the CSR matrix exactly as the ``ColumnTransformer``
  produced it (the estimator makes a float32 copy of it once per fit);
* ``sparse f32``: the CSR matrix cast to float32 beforehand;

and reports, interleaving the variants ``--repeats`` times (medians):

1. time: the whole ``fit`` and the epoch alone (skorch's ``history[-1,
   "dur"]``), and the ratio sparse / dense (target: at most 1.5);
2. where a sparse epoch's extra time goes: the per-batch cost of building
   the dense batch from the CSR matrix (``sklearn_mmoe._data.dense_rows``:
   ``X[idx]`` with a random index array, then ``toarray()``) against the
   dense path (one ``index_select``), summed over an epoch's batches;
3. peak memory of the fit: each variant is fitted in a fresh subprocess
   that loads the saved matrix, runs a small warm-up fit (so that torch's
   one-time allocations are not counted), resets the kernel's peak-RSS mark
   (``/proc/self/clear_refs``), fits, and reads the new peak (``VmHWM``);
   growth = peak during fit - RSS before fit. The table also shows the sizes
   of the CSR data, of the dense matrix and of the model's parameters
   (target: growth at most CSR data + model + a few batches).

Timed fits during which other processes used more than 10 % of the CPUs
are dropped and run again (``benchmarks/_quiet.py``).

Run::

    python benchmarks/bench_sparse.py --data-home ~/scikit_learn_data

(about four minutes on 2 CPU cores; ``--profile`` adds a cProfile listing of
one sparse fit). The alternatives to the per-batch densification are
measured by ``benchmarks/bench_sparse_batches.py``.
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import scipy.sparse as sp
import torch
from _cli import bench_parser
from _memory import reset_peak, status_bytes
from _quiet import Sampler
from sklearn.compose import make_column_transformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_mmoe import MMoEClassifier
from sklearn_mmoe._data import dense_rows
from sklearn_mmoe.datasets import fetch_census_income

BATCH = 1024
MB = 2**20


def make_estimator(seed=0):
    return MMoEClassifier(
        n_experts=8, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,),
        batch_size=BATCH, learning_rate=1e-3, max_epochs=1, random_state=seed,
        numeric_encoding=None, early_stopping=False,
    )


def load_census_csr(data_home):
    bunch = fetch_census_income(data_home=data_home, task_group=1, subset="train")
    encoder = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), bunch.categorical_features),
        (StandardScaler(), bunch.numerical_features),
    )
    X = encoder.fit_transform(bunch.data)
    assert sp.issparse(X) and X.format == "csr", type(X)
    return X, bunch.target.to_numpy().astype(np.float32)


def csr_bytes(X):
    return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes


def fit_times(X, Y, seed):
    est = make_estimator(seed)
    start = time.perf_counter()
    est.fit(X, Y)
    return time.perf_counter() - start, est.net_.history[-1, "dur"]


def batch_costs(X, n_batches, seed):
    """Seconds to build ``n_batches`` random batches, summed, per component."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(X.shape[0], generator=g)
    idxs = [perm[i * BATCH : (i + 1) * BATCH] for i in range(n_batches)]
    out = {}
    if sp.issparse(X):
        start = time.perf_counter()
        for idx in idxs:
            dense_rows(X, idx, "cpu")
        out["dense_rows"] = time.perf_counter() - start
        np_idxs = [i.numpy() for i in idxs]
        start = time.perf_counter()
        parts = [X[i] for i in np_idxs]
        out["X[idx]"] = time.perf_counter() - start
        start = time.perf_counter()
        for p in parts:
            p.toarray()
        out["toarray"] = time.perf_counter() - start
    else:
        start = time.perf_counter()
        for idx in idxs:
            dense_rows(X, idx, "cpu")
        out["dense_rows"] = time.perf_counter() - start
    return out


# ------------------------------------------------------------------ memory
def child(path, threads):
    """Runs in a fresh process: RSS growth of one fit on the saved matrix."""
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    Y = np.load(path + ".y.npy")
    X = sp.load_npz(path + ".npz") if path.endswith("sparse") else np.load(path + ".npy")
    make_estimator().fit(X[:4096], Y[:4096])  # warm-up: torch/skorch one-time allocations
    gc.collect()
    before = status_bytes("VmRSS")
    method = "VmHWM after reset" if reset_peak() else "VmHWM (not reset: peak since start)"
    est = make_estimator().fit(X, Y)
    peak = status_bytes("VmHWM")
    params = sum(p.numel() * p.element_size() for p in est.net_.module_.parameters())
    print(json.dumps({"before": before, "peak": peak, "method": method, "params": params}))


def measure_memory(path, threads):
    out = subprocess.run(
        [sys.executable, __file__, "--child", path, "--threads", str(threads)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = bench_parser(__doc__, repeats=5)
    parser.add_argument("--mem-repeats", type=int, default=2, help="subprocess fits per variant")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one sparse fit")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.threads)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch by design
    load_at_start = os.getloadavg()[0]

    Xs, Y = load_census_csr(args.data_home)
    Xs32 = Xs.astype(np.float32)
    Xd = Xs32.toarray()
    n, d = Xs.shape
    variants = {"dense f32": Xd, "sparse f64": Xs, "sparse f32": Xs32}

    print(f"Census-Income group 1: CSR {Xs.shape} {Xs.dtype}, {Xs.nnz / n:.1f} non-zeros per row "
          f"(density {Xs.nnz / (n * d):.3f}); {args.threads} threads, batch {BATCH}, MMoE 8x16, towers 8")
    print(f"load average at the start: {load_at_start:.2f}")

    # ------------------------------------------------------------ time
    n_batches = -(-n // BATCH)
    names = list(variants) + ["batches dense", "batches sparse"]
    sampler = Sampler(names, args.repeats)
    seeds = dict.fromkeys(names, 0)
    for name in sampler:
        seeds[name] += 1
        if name == "batches dense":
            sampler.measure(name, batch_costs, torch.from_numpy(Xd), n_batches, seeds[name])
        elif name == "batches sparse":
            sampler.measure(name, batch_costs, Xs32, n_batches, seeds[name])
        else:
            sampler.measure(name, fit_times, variants[name], Y, seeds[name])
    med_fit = {k: statistics.median(f for f, _ in sampler.values(k)) for k in variants}
    med_epoch = {k: statistics.median(e for _, e in sampler.values(k)) for k in variants}
    costs = {"dense": sampler.values("batches dense"), "sparse": sampler.values("batches sparse")}
    print(sampler.summary())
    print()
    print(f"one-epoch fit, median of {args.repeats} clean fits")
    print(f"{'variant':<12}{'fit s':>8}{'epoch s':>9}{'fit/dense':>11}{'epoch/dense':>13}")
    for name in variants:
        print(f"{name:<12}{med_fit[name]:>8.3f}{med_epoch[name]:>9.3f}"
              f"{med_fit[name] / med_fit['dense f32']:>11.2f}{med_epoch[name] / med_epoch['dense f32']:>13.2f}")
    print("(target: sparse epoch at most 1.5x dense)")

    print()
    print(f"building the {n_batches} batches of one epoch (random index arrays), median")
    dense_cost = statistics.median(c["dense_rows"] for c in costs["dense"])
    sparse_cost = {k: statistics.median(c[k] for c in costs["sparse"]) for k in costs["sparse"][0]}
    print(f"{'path':<42}{'s / epoch':>10}{'ms / batch':>12}")
    rows = [
        ("dense: tensor[idx] (dense_rows)", dense_cost),
        ("sparse: dense_rows = X[idx].toarray() + torch", sparse_cost["dense_rows"]),
        ("  of which scipy X[idx] (CSR row gather)", sparse_cost["X[idx]"]),
        ("  of which .toarray()", sparse_cost["toarray"]),
    ]
    for label, s in rows:
        print(f"{label:<42}{s:>10.3f}{1e3 * s / n_batches:>12.3f}")
    gap = med_epoch["sparse f32"] - med_epoch["dense f32"]
    print(f"(epoch gap sparse f32 - dense: {gap:.3f} s; batch-building gap: "
          f"{sparse_cost['dense_rows'] - dense_cost:.3f} s)")

    # ---------------------------------------------------------- memory
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "dense.y.npy"), Y)
        np.save(os.path.join(tmp, "sparse.y.npy"), Y)
        np.save(os.path.join(tmp, "dense.npy"), Xd)
        sp.save_npz(os.path.join(tmp, "sparse.npz"), Xs, compressed=False)
        mem = {"dense f32": [], "sparse f64": []}
        for _ in range(args.mem_repeats):
            mem["dense f32"].append(measure_memory(os.path.join(tmp, "dense"), args.threads))
            mem["sparse f64"].append(measure_memory(os.path.join(tmp, "sparse"), args.threads))
    params = mem["dense f32"][0]["params"]
    batch_bytes = BATCH * d * 4
    print()
    print("sizes")
    print(f"{'CSR float64 (as produced: data+indices+indptr)':<52}{csr_bytes(Xs) / MB:>9.1f} MB")
    print(f"{'CSR float32 (the copy the estimator trains on)':<52}{csr_bytes(Xs32) / MB:>9.1f} MB")
    print(f"{'dense float32 matrix':<52}{Xd.nbytes / MB:>9.1f} MB")
    print(f"{'model parameters (x4 with grads + Adam moments)':<52}{params / MB:>9.2f} MB  "
          f"({4 * params / MB:.2f} MB)")
    print(f"{f'one dense float32 batch ({BATCH} x {d})':<52}{batch_bytes / MB:>9.1f} MB")
    print()
    print(f"peak RSS growth during one-epoch fit, fresh subprocess each, median of {args.mem_repeats} "
          f"({mem['dense f32'][0]['method']})")
    print(f"{'variant':<12}{'RSS before MB':>15}{'peak MB':>10}{'growth MB':>11}")
    for name, runs in mem.items():
        before = statistics.median(r["before"] for r in runs) / MB
        peak = statistics.median(r["peak"] for r in runs) / MB
        growth = statistics.median(r["peak"] - r["before"] for r in runs) / MB
        print(f"{name:<12}{before:>15.1f}{peak:>10.1f}{growth:>11.1f}")
    budget = csr_bytes(Xs32) + 4 * params + 4 * batch_bytes
    print(f"(target for sparse: growth <= CSR float32 + model + a few batches = "
          f"{csr_bytes(Xs32) / MB:.1f} + {4 * params / MB:.1f} + 4 x {batch_bytes / MB:.1f} = {budget / MB:.1f} MB)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores; above ~2 the timings are contended)")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        make_estimator().fit(Xs32, Y)
        profiler.disable()
        print()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
