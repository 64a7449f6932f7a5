"""Serving latency: ONNX Runtime against ``predict_proba`` and plain PyTorch inference.

A default ``MMoEClassifier`` (8 experts of 64 units, towers of 16 units) is
fitted for one epoch on the first ``--fit-rows`` (20,000) rows of
Census-Income (KDD) group 1, one-hot encoded to 486 float32 columns as in
``bench_fit.py`` (the weights do not matter for latency). It is exported
with :func:`sklearn_mmoe.export.to_onnx` and the script times calls on 1 row
and on 1,000 rows (held-out rows). Each pass times a block of consecutive
calls per variant (after a few untimed ones), as a service makes them: calls
interleaved across runtimes would time each runtime against the other's
still-spinning thread pool and the cache it evicted. The variants:

* ``onnxruntime``: ``session.run`` on the float32 rows (CPU provider,
  ``--threads`` intra-op threads, the graph optimised by ONNX Runtime);
* ``predict_proba``: the estimator on the same float32 rows (validation
  included; one row is padded to 128 before the network);
* ``plain torch``: the fitted module (``est.net_.module_``) on a tensor
  under ``torch.inference_mode()``, then ``torch.sigmoid`` and ``.numpy()``
  (logits to probabilities, as a user would write it);
* ``to_torch``: the module of :func:`sklearn_mmoe.export.to_torch` (the
  same graph as the ONNX one: probabilities per task) under
  ``torch.inference_mode()``.

It prints the median and the 99th percentile of each, and each median over
ONNX Runtime's, and checks that all give the same probabilities (within
1e-5). Target: single-row ONNX Runtime median at most 0.1 ms.

Passes during which other processes used more than 10 % of the CPUs are
dropped (``benchmarks/_quiet.py``); the output says how many were clean and
the load average.

Run::

    python benchmarks/bench_export.py --data-home ~/scikit_learn_data

It takes about a minute on 2 CPU cores, plus the export (half a minute).
"""

import os
import statistics
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch
from _cli import bench_parser
from _quiet import Passes
from bench_fit import load_census
from sklearn.exceptions import ConvergenceWarning

from sklearn_mmoe import MMoEClassifier
from sklearn_mmoe.export import to_onnx, to_torch

SIZES = (1, 1000)
WARM_CALLS = 10  # untimed calls before each timed block


def plain_proba(module, x):
    with torch.inference_mode():
        return torch.sigmoid(module(x)).numpy()


def served_proba(module, x):
    with torch.inference_mode():
        return [p.numpy() for p in module(x)]


def main(argv=None):
    parser = bench_parser(__doc__, repeats=10)
    parser.add_argument("--fit-rows", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=100, help="calls per variant and size in a pass")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch by design
    load_at_start = os.getloadavg()

    X, Y = load_census(args.data_home)
    est = MMoEClassifier(max_epochs=1, random_state=0).fit(X[: args.fit_rows], Y[: args.fit_rows])
    start = time.perf_counter()
    model = to_onnx(est)
    export_s = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    module, served = est.net_.module_, to_torch(est)

    held_out = np.ascontiguousarray(X[args.fit_rows : args.fit_rows + max(SIZES)])
    variants = {}
    for n in SIZES:
        x = held_out[:n]
        xt = torch.from_numpy(x)
        want = [p[:, 1] for p in est.predict_proba(x)]
        got = {
            "onnxruntime": [p[:, 1] for p in session.run(None, {"X": x})],
            "plain torch": list(plain_proba(module, xt)[:, :, 0].T),
            "to_torch": [p[:, 1] for p in served_proba(served, xt)],
        }
        for name, values in got.items():
            err = max(float(np.abs(a - b).max()) for a, b in zip(values, want))
            assert err <= 1e-5, (name, n, err)
        variants[("onnxruntime", n)] = lambda x=x: session.run(None, {"X": x})
        variants[("predict_proba", n)] = lambda x=x: est.predict_proba(x)
        variants[("plain torch", n)] = lambda xt=xt: plain_proba(module, xt)
        variants[("to_torch", n)] = lambda xt=xt: served_proba(served, xt)
    for fn in variants.values():  # warm-up
        for _ in range(20):
            fn()

    times = {k: [] for k in variants}
    passes = Passes(args.repeats)
    for p in passes:
        with p:
            for k in times:
                times[k].append([])
            # A block of consecutive calls per variant, as a service makes them:
            # interleaving runtimes would time each one against the other's
            # spinning thread pool and the cache lines it evicted.
            for key, fn in variants.items():
                for _ in range(WARM_CALLS):
                    fn()
                for _ in range(args.calls):
                    start = time.perf_counter()
                    fn()
                    times[key][-1].append(time.perf_counter() - start)
    times = {k: [t for block in passes.select(v) for t in block] for k, v in times.items()}

    n_params = sum(p.numel() for p in module.parameters())
    print(f"Census-Income group 1 ({X.shape[1]} float32 columns), default MMoEClassifier "
          f"({n_params} parameters); {args.threads} threads; torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}")
    print(f"to_onnx took {export_s:.1f} s; load average at the start: "
          + " ".join(f"{v:.2f}" for v in load_at_start))
    print(f"{passes.summary()}; {args.calls} calls per variant and size in each pass")
    print("all variants agree with predict_proba within 1e-5")
    print()
    print(f"{'rows':>5}  {'variant':<15}{'median ms':>11}{'p99 ms':>9}{'/ onnxruntime':>15}")
    for n in SIZES:
        reference = statistics.median(times[("onnxruntime", n)])
        for name in ("onnxruntime", "predict_proba", "plain torch", "to_torch"):
            values = times[(name, n)]
            median = statistics.median(values)
            print(f"{n:>5}  {name:<15}{1e3 * median:>11.3f}{1e3 * np.percentile(values, 99):>9.3f}"
                  f"{median / reference:>15.2f}")
    print("(target: single-row onnxruntime median <= 0.1 ms)")
    print("load average at the end: " + " ".join(f"{v:.2f}" for v in os.getloadavg())
          + f" ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
