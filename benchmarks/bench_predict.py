"""Predict speed: ``predict_proba`` against plain PyTorch inference, in one process.

An ``MMoEClassifier`` (8 experts x 16 units, towers of 8 units) is fitted for
one epoch on Census-Income (KDD) group 1 (199,523 rows, one-hot encoded to
486 float32 columns, as in ``bench_fit.py``). Then, on the first
``--rows`` (100,000) rows, the script times, interleaving every variant
``--repeats`` times and printing medians:

* ``estimator``: ``est.predict_proba(X)`` with X float32, and with X
  float64 (which the estimator casts to float32: the difference is the cost
  of the cast); ``before``: the same with inference as it was before issue
  19 (2048-row chunks, and small inputs on the intra-op pool), for a
  before/after ratio measured in the same run;
* ``plain``: the same fitted module (``est.net_.module_``) called on the
  same float32 tensor under ``torch.no_grad()`` and under
  ``torch.inference_mode()``, followed by ``torch.sigmoid`` and ``.numpy()``
  (probabilities, as a user would write it), both as one call over all rows
  and in chunks of 128 to 16,384 rows; the best chunking is the reference.

Target: estimator at most 1.2x the plain reference.

Then single-row latency: ``predict_proba`` on one row (float32 and float64),
validation included, one call at a time, interleaved with the plain module on
one row and on one row padded to 128, 256, 512 and 1024 rows (the network
time of a single-row prediction if the inference chunk had that size),
``--calls`` (>= 1000) calls each: median, p90 and p99 (target: median under
1 ms). Last, where the time goes: the pieces of ``predict_proba``
(the validation of X, the network, the chunking/padding around it, the
conversion to probabilities) timed with ``time.perf_counter`` by calling the
package's own functions in the order ``predict_proba`` calls them, for 1 row
and for all rows; with ``--profile`` also a cProfile listing of the
single-row call. The network time is measured with a thin wrapper module
around the fitted module.

The machine these numbers come from is shared: passes of the interleaved
variants during which other processes used more than 10 % of the CPUs are
dropped and run again (``benchmarks/_quiet.py``), and the output says how
many passes were clean.

``--busy N`` measures the same beside N busy neighbours that the script
starts itself after fitting (``benchmarks/_busy.py``: single-threaded torch
processes multiplying 512 x 512 matrices in a loop, stopped at the end, also
on an error or Ctrl-C). A pass is then clean when other processes used less
than the busy ones' share of the CPUs plus 10 %. The plain chunkings and the
padded single-row variants are left out in that mode; the targets are 100,000
rows at most 1.5x one plain call with N = 3, and a single row under 1 ms
with N = 1.

Run::

    python benchmarks/bench_predict.py --data-home ~/scikit_learn_data

where ``<data-home>/census_income/`` holds ``census-income.data.gz`` and
``census-income.test.gz``. It takes about two minutes on 2 CPU cores.
"""

import contextlib
import cProfile
import os
import pstats
import statistics
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import torch
from _busy import busy_processes, busy_threshold
from _cli import bench_parser
from _quiet import Passes
from bench_fit import load_census
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from sklearn_mmoe import MMoEClassifier, _data
from sklearn_mmoe._data import (
    INFERENCE_CHUNK,
    MIN_INFERENCE_ROWS,
    _chunk_rows,
    _values_per_row,
    predict_logits,
)
from sklearn_mmoe._targets import decode

CHUNKS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PADDED = (128, 256, 512, 1024)
MODES = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


def plain_proba(module, Xt, chunk, mode):
    """Probabilities of every task from the bare module: the reference."""
    with MODES[mode]():
        if chunk is None:
            logits = module(Xt)
        else:
            logits = torch.cat([module(Xt[i : i + chunk]) for i in range(0, Xt.shape[0], chunk)])
        return torch.sigmoid(logits).numpy()


@contextlib.contextmanager
def inference_before_issue_19():
    """Inference as it was before issue 19: 2048-row chunks, no single-thread small inputs."""
    saved = _data.INFERENCE_CHUNK, _data.single_thread
    _data.INFERENCE_CHUNK, _data.single_thread = 2048, contextlib.nullcontext
    try:
        yield
    finally:
        _data.INFERENCE_CHUNK, _data.single_thread = saved


def before(fn):
    """``fn`` run with :func:`inference_before_issue_19`."""
    def run():
        with inference_before_issue_19():
            return fn()
    return run


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class TimedModule(torch.nn.Module):
    """Wraps a module and adds up the time spent in its forward calls."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.seconds = 0.0

    def forward(self, x):
        start = time.perf_counter()
        out = self.module(x)
        self.seconds += time.perf_counter() - start
        return out


def split_predict_proba(est, X):
    """``predict_proba`` cut into its pieces, each timed (seconds).

    Same calls, in the same order, as ``_BaseMultiTask._logits`` and
    ``_BaseMultiTask._outputs``: ``_encode_X`` (``validate_data``; the
    finiteness and float32-range checks of a dense X are left to the
    chunks), ``predict_logits`` (which casts and checks each chunk: part
    of "chunk/pad/cat"), ``decode``.
    """
    t0 = time.perf_counter()
    check_is_fitted(est)
    Xv = est._encode_X(X, reset=False, chunked=True)
    t1 = time.perf_counter()
    module = TimedModule(est.net_.module_)
    logits = predict_logits(module, Xv, est.net_.device)
    t2 = time.perf_counter()
    decode(logits, est._tasks)
    t3 = time.perf_counter()
    return {
        "validate X": t1 - t0,
        "network": module.seconds,
        "chunk/pad/cat": (t2 - t1) - module.seconds,
        "to probas": t3 - t2,
    }


def main(argv=None):
    parser = bench_parser(__doc__, repeats=7)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2000, help="single-row calls per variant (>= 1000)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of single-row predict_proba")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="measure beside N busy single-threaded torch processes started by the script")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch by design
    load_at_start = os.getloadavg()[0]

    X, Y = load_census(args.data_home)
    est = MMoEClassifier(
        n_experts=8, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,),
        batch_size=1024, learning_rate=1e-3, max_epochs=1, random_state=0,
        numeric_encoding=None, early_stopping=False,
    ).fit(X, Y)
    module = est.net_.module_
    X32 = np.ascontiguousarray(X[: args.rows])
    X64 = X32.astype(np.float64)
    Xt = torch.from_numpy(X32)
    n, d = X32.shape
    neighbours = busy_processes(args.busy) if args.busy else contextlib.nullcontext()
    with neighbours:
        measure(args, est, module, X32, X64, Xt, Y.shape[1], load_at_start)


def measure(args, est, module, X32, X64, Xt, n_tasks, load_at_start):
    """Time the variants (beside the busy processes, if any) and print the tables."""
    n, d = X32.shape
    threshold = busy_threshold(args.busy)
    chunks, padded = ((), ()) if args.busy else (CHUNKS, PADDED)
    # Same numbers from the estimator and the reference.
    ref = plain_proba(module, Xt, None, "inference_mode")
    got = est.predict_proba(X32)
    err = max(float(np.abs(got[t][:, 1] - ref[:, t, 0]).max()) for t in range(n_tasks))

    # ------------------------------------------------------------ bulk
    variants = {
        "estimator f32": lambda: est.predict_proba(X32),
        "estimator f64": lambda: est.predict_proba(X64),
        "before f32": before(lambda: est.predict_proba(X32)),
        "cast f64->f32": lambda: X64.astype(np.float32),
    }
    for mode in MODES:
        variants[f"{mode} one call"] = lambda m=mode: plain_proba(module, Xt, None, m)
        for c in chunks:
            variants[f"{mode} chunk {c}"] = lambda m=mode, c=c: plain_proba(module, Xt, c, m)
    times = {k: [] for k in variants}
    split_bulk = {"f32": [], "f64": []}
    bulk = Passes(args.repeats, threshold=threshold)
    for p in bulk:
        with p:
            for name, fn in variants.items():
                times[name].append(timed(fn))
            split_bulk["f32"].append(split_predict_proba(est, X32))
            split_bulk["f64"].append(split_predict_proba(est, X64))
    med = {k: statistics.median(bulk.select(v)) for k, v in times.items()}
    split_bulk = {k: bulk.select(v) for k, v in split_bulk.items()}

    print(f"Census-Income group 1, MMoE 8x16 experts, towers 8, fitted 1 epoch; "
          f"predict_proba on X ({n}, {d}); {args.threads} threads; load average at the start: {load_at_start:.2f}")
    if args.busy:
        print(f"beside {args.busy} busy single-threaded torch processes (512x512 matmul loops); "
              f"load average once they run: {os.getloadavg()[0]:.2f}")
    print(f"bulk: {bulk.summary()}")
    rows = _chunk_rows(_values_per_row(module, d))
    print(f"max |estimator - plain| probability: {err:.1e}; estimator chunks: {rows} rows "
          f"(at most {INFERENCE_CHUNK}), padded to at least {MIN_INFERENCE_ROWS}; inputs of at most "
          f"{MIN_INFERENCE_ROWS} rows on the calling thread alone")
    print()
    print(f"{'plain reference':<22}{'no_grad s':>11}{'inference_mode s':>18}")
    print(f"{'one call':<22}{med['no_grad one call']:>11.3f}{med['inference_mode one call']:>18.3f}")
    for c in chunks:
        print(f"{f'chunks of {c}':<22}{med[f'no_grad chunk {c}']:>11.3f}{med[f'inference_mode chunk {c}']:>18.3f}")
    plain_keys = [k for k in med if k.startswith(("no_grad", "inference_mode"))]
    best = min(plain_keys, key=med.get)
    one = min(("no_grad one call", "inference_mode one call"), key=med.get)
    print()
    print(f"{'estimator':<16}{'s':>8}{'/ one call':>12}{'/ best chunk':>14}")
    for name in ("estimator f32", "estimator f64", "before f32"):
        print(f"{name:<16}{med[name]:>8.3f}{med[name] / med[one]:>12.2f}{med[name] / med[best]:>14.2f}")
    target = "target <= 1.5 beside 3 busy processes" if args.busy else "target <= 1.2"
    print(f"(one call = {one}, {med[one]:.3f} s; best = {best}, {med[best]:.3f} s; {target})")
    print(f"float64 input: +{med['estimator f64'] - med['estimator f32']:.3f} s over float32 "
          f"(a bare X.astype(float32) of these rows: {med['cast f64->f32']:.3f} s)")

    # ------------------------------------------------------- single row
    x32, x64 = X32[:1], X64[:1]
    x1t = Xt[:1]
    single = {
        "predict_proba f32": lambda: est.predict_proba(x32),
        "predict_proba f64": lambda: est.predict_proba(x64),
        "before f32": before(lambda: est.predict_proba(x32)),
        "plain 1 row": lambda: plain_proba(module, x1t, None, "inference_mode"),
    }
    # The network on one row padded to a fixed chunk: what a single-row
    # prediction would cost with MIN_INFERENCE_ROWS = c.
    for c in padded:
        pad = torch.zeros(c, d)
        pad[:1] = x1t
        single[f"plain {c} rows"] = lambda pad=pad: plain_proba(module, pad, None, "inference_mode")
    for fn in single.values():  # warm-up
        for _ in range(20):
            fn()
    lat = {k: [] for k in single}
    split_single = {"f32": [], "f64": []}
    block = 200
    blocks = Passes(-(-args.calls // block), threshold=threshold)
    for p in blocks:
        with p:
            for k in lat:
                lat[k].append([])
            for k in split_single:
                split_single[k].append([])
            for _ in range(block):
                for name, fn in single.items():
                    lat[name][-1].append(timed(fn))
                split_single["f32"][-1].append(split_predict_proba(est, x32))
                split_single["f64"][-1].append(split_predict_proba(est, x64))
    lat = {k: [t for b in blocks.select(v) for t in b] for k, v in lat.items()}
    split_single = {k: [t for b in blocks.select(v) for t in b] for k, v in split_single.items()}
    print()
    print(f"single-row latency, {len(lat['plain 1 row'])} interleaved calls each, in blocks of {block}: "
          f"{blocks.summary()}")
    print(f"{'variant':<22}{'median ms':>11}{'p90 ms':>9}{'p99 ms':>9}")
    for name, v in lat.items():
        print(f"{name:<22}{1e3 * statistics.median(v):>11.3f}{1e3 * np.percentile(v, 90):>9.3f}"
              f"{1e3 * np.percentile(v, 99):>9.3f}")
    print("(target: predict_proba median < 1 ms" + (", with 1 busy process" if args.busy else "")
          + ("" if args.busy else "; 'plain c rows' is the network alone on one row padded to c rows: "
             f"a single-row prediction's network time if MIN_INFERENCE_ROWS were c; it is {MIN_INFERENCE_ROWS}")
          + ")")

    # ------------------------------------------------------- breakdown
    print()
    print("where predict_proba's time goes (medians; perf_counter around the package's own calls)")
    pieces = ["validate X", "network", "chunk/pad/cat", "to probas"]
    print(f"{'input':<16}" + "".join(f"{p:>15}" for p in pieces) + f"{'sum':>10}{'measured':>10}")
    cases = [
        ("1 row f32", split_single["f32"], "predict_proba f32", 1e3, "ms"),
        ("1 row f64", split_single["f64"], "predict_proba f64", 1e3, "ms"),
        (f"{n} rows f32", split_bulk["f32"], "estimator f32", 1.0, "s"),
        (f"{n} rows f64", split_bulk["f64"], "estimator f64", 1.0, "s"),
    ]
    for label, parts, key, scale, unit in cases:
        m = {p: statistics.median(r[p] for r in parts) for p in pieces}
        total = statistics.median(lat[key]) if key in lat else med[key]
        print(f"{label:<16}" + "".join(f"{scale * m[p]:>12.3f} {unit:<2}" for p in pieces)
              + f"{scale * sum(m.values()):>7.3f} {unit:<2}{scale * total:>7.3f} {unit}")
    print("(pieces timed in calls interleaved with the measured ones, same passes; 'measured' is "
          "the median of the whole call above)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores; above ~2 the timings are contended)")

    if args.profile:
        print()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(2000):
            est.predict_proba(x32)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
