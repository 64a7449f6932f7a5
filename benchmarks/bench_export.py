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
* ``ort iobinding``: the same session through an ``IOBinding`` whose input
  is bound once and whose outputs are preallocated arrays
  (``run_with_iobinding``: no per-call dict, no output allocation);
* ``ort int8``: ``session.run`` on the graph of
  ``to_onnx(est, quantize="dynamic_int8")`` (int8 first layers, see
  :func:`sklearn_mmoe.export.to_onnx`), same session options;
* ``predict_proba``: the estimator on the same float32 rows (validation
  included; one row is padded to 128 before the network);
* ``plain torch``: the fitted module (``est.net_.module_``) on a tensor
  under ``torch.inference_mode()``, then ``torch.sigmoid`` and ``.numpy()``
  (logits to probabilities, as a user would write it);
* ``to_torch``: the module of :func:`sklearn_mmoe.export.to_torch` (the
  same graph as the ONNX one: probabilities per task) under
  ``torch.inference_mode()``.

It prints the median and the 99th percentile of each, and each median over
ONNX Runtime's, and checks that all float variants give the same
probabilities (within 1e-5); for ``ort int8`` it prints the largest
difference from ``predict_proba`` on the 1,000 held-out rows. Target:
single-row ONNX Runtime median at most 0.1 ms.

``--session-options ROUNDS`` also times the float graph on one row under
ONNX Runtime session settings (threads, spinning, denormals, optimisation
levels, IOBinding, ``run_with_ort_values``, and an Identity graph for the
cost of a call) and says whether each gives the same outputs bit for bit.

``--accuracy`` also fits the default ``MMoEClassifier`` (early stopping
on) on the whole training split (about 100 s on 2 cores), exports it with
and without ``quantize="dynamic_int8"`` and prints each graph's test ROC AUC
per task (paper split) and each graph's largest probability difference
from ``predict_proba`` on the test split, in one call and with the first 2,000 test
rows sent one per call (the int8 graph quantizes its input with one scale
per call).

Passes during which other processes used more than 10 % of the CPUs are
dropped (``benchmarks/_quiet.py``); the output says how many were clean and
the load average.

Run::

    python benchmarks/bench_export.py --data-home ~/scikit_learn_data

It takes about a minute on 2 CPU cores, plus the exports (a few seconds each).
"""

import os
import statistics
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import onnxruntime as ort
import torch
from _cli import bench_parser
from _quiet import Passes
from bench_fit import load_census
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from sklearn_mmoe import MMoEClassifier
from sklearn_mmoe.datasets._census import TASK_GROUPS
from sklearn_mmoe.export import to_onnx, to_torch

SIZES = (1, 1000)
WARM_CALLS = 10  # untimed calls before each timed block
SINGLE_ROWS = 2000  # --accuracy: test rows sent one per call
VARIANTS = ("onnxruntime", "ort iobinding", "ort int8", "predict_proba", "plain torch", "to_torch")


def plain_proba(module, x):
    with torch.inference_mode():
        return torch.sigmoid(module(x)).numpy()


def served_proba(module, x):
    with torch.inference_mode():
        return [p.numpy() for p in module(x)]


def bound_session(session, x):
    """``session``'s ``run_with_iobinding`` on ``x``, outputs written into preallocated arrays."""
    binding = session.io_binding()
    binding.bind_cpu_input("X", x)
    outputs = []
    for node in session.get_outputs():
        out = np.empty((x.shape[0], 2), dtype=np.float32)  # binary tasks
        binding.bind_output(node.name, "cpu", 0, np.float32, out.shape, out.ctypes.data)
        outputs.append(out)

    def run():
        session.run_with_iobinding(binding)
        return outputs

    return run


def make_session(model, threads, inter=None, level=None, config=()):
    """A CPU session of ``model`` (a ModelProto) with these session options."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if inter is not None:
        options.inter_op_num_threads = inter
    if level is not None:
        options.graph_optimization_level = level
    for key, value in dict(config).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def accuracy(data_home, threads):
    """Test ROC AUC of the float and the int8 graph of a fully fitted default MMoE."""
    X, Y, X_test, Y_test = load_census(data_home, test=True)
    start = time.perf_counter()
    est = MMoEClassifier(random_state=0).fit(X, Y)
    fit_s = time.perf_counter() - start
    print(f"--accuracy: default MMoEClassifier fitted on {X.shape[0]} rows in {fit_s:.0f} s "
          f"({len(est.net_.history)} epochs); test split {X_test.shape[0]} rows")
    probas, single = {}, {}
    reference = [p[:, 1] for p in est.predict_proba(X_test)]
    for name, quantize in (("float32 graph", None), ("dynamic_int8 graph", "dynamic_int8")):
        session = make_session(to_onnx(est, quantize=quantize), threads)
        probas[name] = [p[:, 1] for p in session.run(None, {"X": X_test})]
        # one call per row, as a service: the int8 input scale is then the row's own
        rows = [session.run(None, {"X": X_test[i : i + 1]}) for i in range(SINGLE_ROWS)]
        single[name] = max(
            float(np.abs(row[t][0, 1] - reference[t][i]).max())
            for i, row in enumerate(rows) for t in range(len(reference))
        )
    names = list(TASK_GROUPS[1])
    print(f"{'':<20}" + "".join(f"{'AUC ' + n:>20}" for n in names)
          + "".join(f"{'max |dp| ' + n:>24}" for n in names))
    for name, proba in probas.items():
        aucs = [roc_auc_score(Y_test[:, t], p) for t, p in enumerate(proba)]
        diffs = [float(np.abs(p - r).max()) for p, r in zip(proba, reference)]
        print(f"{name:<20}" + "".join(f"{a:>20.6f}" for a in aucs)
              + "".join(f"{d:>24.2e}" for d in diffs))
    print("(max |dp|: largest difference from predict_proba over the test split, in one call)")
    print(f"one call per row, first {SINGLE_ROWS} test rows, max |dp| over both tasks: "
          + ", ".join(f"{name} {d:.2e}" for name, d in single.items()))
    print()


def session_options(model, x1, X_check, rounds):
    """Single-row latency of the float graph under session settings (``--session-options``).

    Each setting gets its own session; passes of 500 timed calls (after 50
    untimed) go through the settings in turn (contended passes dropped), and
    the median of the pass medians is printed, with whether the outputs on ``X_check`` are
    bit-identical to those of a default one-thread session.
    """
    from onnx import TensorProto, helper

    level = ort.GraphOptimizationLevel
    settings = {
        "2 threads": dict(threads=2),
        "1 thread": dict(threads=1),
        "2 threads, no spinning": dict(threads=2, config={"session.intra_op.allow_spinning": "0"}),
        "1 thread, no spinning": dict(threads=1, config={"session.intra_op.allow_spinning": "0"}),
        "2 threads, denormal as zero": dict(threads=2, config={"session.set_denormal_as_zero": "1"}),
        "1 thread, inter_op 1": dict(threads=1, inter=1),
        "1 thread, ORT_ENABLE_BASIC": dict(threads=1, level=level.ORT_ENABLE_BASIC),
        "1 thread, ORT_ENABLE_EXTENDED": dict(threads=1, level=level.ORT_ENABLE_EXTENDED),
        "1 thread, ORT_DISABLE_ALL": dict(threads=1, level=level.ORT_DISABLE_ALL),
    }
    def build(threads, **kwargs):
        return make_session(model, threads, **kwargs)

    reference = build(1).run(None, {"X": X_check})
    calls, exact = {}, {}
    for name, kwargs in settings.items():
        session = build(**kwargs)
        exact[name] = all(
            np.array_equal(a, b) for a, b in zip(session.run(None, {"X": X_check}), reference)
        )
        calls[name] = lambda session=session: session.run(None, {"X": x1})
    single = build(1)
    names = [o.name for o in single.get_outputs()]
    binding = bound_session(single, x1)
    value = ort.OrtValue.ortvalue_from_numpy(x1)
    calls["1 thread, IOBinding, preallocated outputs"] = binding
    calls["1 thread, run_with_ort_values"] = lambda: single.run_with_ort_values(names, {"X": value})
    identity = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["X"], ["Y"])], "identity",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, x1.shape[1]])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, x1.shape[1]])],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    trivial = make_session(identity, 1)
    calls["(an Identity graph: the cost of a call)"] = lambda: trivial.run(None, {"X": x1})
    times = {name: [] for name in calls}
    passes = Passes(rounds)
    for p in passes:
        with p:
            for name, fn in calls.items():
                for _ in range(50):
                    fn()
                block = []
                for _ in range(500):
                    start = time.perf_counter()
                    fn()
                    block.append(time.perf_counter() - start)
                times[name].append((statistics.median(block), np.percentile(block, 99)))
    times = {name: passes.select(values) for name, values in times.items()}
    print(f"session settings, float graph, 1 row ({passes.summary()}; a pass: 500 calls "
          "per setting; median of the pass medians and of the pass p99s):")
    print(f"{'setting':<44}{'median us':>10}{'p99 us':>9}  outputs")
    for name, values in times.items():
        median = statistics.median(m for m, _ in values)
        p99 = statistics.median(p for _, p in values)
        same = {True: "identical", False: "differ", None: ""}[exact.get(name)]
        print(f"{name:<44}{1e6 * median:>10.1f}{1e6 * p99:>9.1f}  {same}")
    print()


def main(argv=None):
    parser = bench_parser(__doc__, repeats=10)
    parser.add_argument("--fit-rows", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=100, help="calls per variant and size in a pass")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated variants to time (default: all); e.g. "
                             "'onnxruntime,ort int8' times ONNX Runtime without torch running "
                             "in the same passes")
    parser.add_argument("--session-options", type=int, default=0, metavar="ROUNDS",
                        help="also time the float graph on one row under ONNX Runtime session "
                             "settings, in ROUNDS rounds (a few seconds each)")
    parser.add_argument("--accuracy", action="store_true",
                        help="also compare the test AUC of the float and int8 graphs of a fully "
                             "fitted model (about 100 s more)")
    args = parser.parse_args(argv)
    timed = [v.strip() for v in args.variants.split(",")]
    unknown = sorted(set(timed) - set(VARIANTS))
    if unknown or "onnxruntime" not in timed:
        parser.error(f"--variants must include 'onnxruntime' and name only {list(VARIANTS)}, "
                     f"got {unknown or timed}")
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch by design
    load_at_start = os.getloadavg()

    if args.accuracy:
        accuracy(args.data_home, args.threads)
    X, Y = load_census(args.data_home)
    est = MMoEClassifier(max_epochs=1, random_state=0).fit(X[: args.fit_rows], Y[: args.fit_rows])
    start = time.perf_counter()
    model = to_onnx(est)
    export_s = time.perf_counter() - start
    start = time.perf_counter()
    int8_model = to_onnx(est, quantize="dynamic_int8")
    int8_export_s = time.perf_counter() - start
    session = make_session(model, args.threads)
    int8_session = make_session(int8_model, args.threads)
    module, served = est.net_.module_, to_torch(est)
    int8_error = {}

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
        bound = bound_session(session, x)
        got["ort iobinding"] = [p[:, 1] for p in bound()]
        for name, values in got.items():
            err = max(float(np.abs(a - b).max()) for a, b in zip(values, want))
            assert err <= 1e-5, (name, n, err)
        int8_error[n] = max(
            float(np.abs(a[:, 1] - b).max())
            for a, b in zip(int8_session.run(None, {"X": x}), want)
        )
        variants[("onnxruntime", n)] = lambda x=x: session.run(None, {"X": x})
        variants[("ort iobinding", n)] = bound
        variants[("ort int8", n)] = lambda x=x: int8_session.run(None, {"X": x})
        variants[("predict_proba", n)] = lambda x=x: est.predict_proba(x)
        variants[("plain torch", n)] = lambda xt=xt: plain_proba(module, xt)
        variants[("to_torch", n)] = lambda xt=xt: served_proba(served, xt)
    if args.session_options:
        session_options(model, held_out[:1], held_out, args.session_options)
    variants = {key: fn for key, fn in variants.items() if key[0] in timed}
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
    print(f"to_onnx took {export_s:.1f} s, with quantize='dynamic_int8' {int8_export_s:.1f} s; "
          "load average at the start: " + " ".join(f"{v:.2f}" for v in load_at_start))
    print(f"{passes.summary()}; {args.calls} calls per variant and size in each pass")
    print("all float variants agree with predict_proba within 1e-5; ort int8 differs by at most "
          + ", ".join(f"{int8_error[n]:.1e} ({n} row{'s' if n > 1 else ''})" for n in SIZES))
    print()
    print(f"{'rows':>5}  {'variant':<15}{'median ms':>11}{'p99 ms':>9}{'/ onnxruntime':>15}")
    for n in SIZES:
        reference = statistics.median(times[("onnxruntime", n)])
        for name in (v for v in VARIANTS if v in timed):
            values = times[(name, n)]
            median = statistics.median(values)
            print(f"{n:>5}  {name:<15}{1e3 * median:>11.3f}{1e3 * np.percentile(values, 99):>9.3f}"
                  f"{median / reference:>15.2f}")
    print("(target: single-row onnxruntime median <= 0.1 ms)")
    print("load average at the end: " + " ".join(f"{v:.2f}" for v in os.getloadavg())
          + f" ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
