"""Out-of-the-box accuracy: ``fit()`` with shipped defaults against gradient boosting.

What a new user does: load the data, ``fit(X_train, Y_train)`` with the
defaults, score the test split. On the same split and in the same process
the script fits HistGradientBoostingClassifier (native categoricals) and,
if installed, LightGBM, one model per task with their defaults (with
``onehot`` inputs, HistGradientBoosting on the one-hot Pipeline too), and prints
test ROC AUC per task, fit wall time, CPU time, epochs and parameters, and
each model's mean CPU time over HistGradientBoosting's on the raw frame (and a
one-hot row's over HistGradientBoosting's on the one-hot input). Last, each
model's AUC minus HistGradientBoosting's on the same rows, with DeLong's standard
error of that difference: whether the test split can tell the gap from the luck
of its sample. Imports are not timed: torch._dynamo, which torch's optimizers import on their first use in
a process (about 1 s), is imported first and its time printed.

Data sets (``--datasets``): ``census1`` and ``census2`` (Census-Income
groups 1 and 2, the paper's split: train on ``census-income.data``, test on
the fixed half of ``census-income.test``), ``adult`` (income > 50K and never
married; train on ``adult.data``, test on ``adult.test``). Only the
training rows are given to ``fit``; the estimators' early stopping holds out
its validation rows from them, and no choice is made on the test split.

Inputs (``--inputs``): ``raw`` (the DataFrame as loaded: ``category``
columns embedded, numbers read by the default numeric encoding) and
``onehot`` (the Pipeline users write today: OneHotEncoder + StandardScaler).

Examples::

    python benchmarks/bench_defaults.py --datasets adult --seeds 0,1,2
    python benchmarks/bench_defaults.py --datasets census1,census2 --models mmoe \\
        --inputs raw,onehot --seeds 0,1,2
    python benchmarks/bench_defaults.py --datasets adult --models mmoe --set numeric_encoding=None
"""

import argparse
import ast
import multiprocessing
import resource
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import torch
from _delong import paired_auc_difference
from _tabular import load, one_hot
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

import sklearn_mmoe

MODELS = {
    "shared_bottom": sklearn_mmoe.SharedBottomClassifier,
    "omoe": sklearn_mmoe.OMoEClassifier,
    "mmoe": sklearn_mmoe.MMoEClassifier,
    "cgc": sklearn_mmoe.CGCClassifier,
    "ple": sklearn_mmoe.PLEClassifier,
    "single_task": sklearn_mmoe.SingleTaskClassifier,
    "l2_constrained": sklearn_mmoe.L2ConstrainedClassifier,
    "cross_stitch": sklearn_mmoe.CrossStitchClassifier,
    "tensor_factorization": sklearn_mmoe.TensorFactorizationClassifier,
}


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _timed(fit):
    wall, cpu = time.perf_counter(), time.process_time()
    model = fit()
    return model, time.perf_counter() - wall, time.process_time() - cpu


def boosting_rows(dataset, parts, names, seed, one_hot_too=False):
    """HistGradientBoosting and LightGBM per task on the raw frame; with
    ``one_hot_too``, HistGradientBoosting also on the one-hot Pipeline's output
    (the same input as the network's ``onehot`` rows)."""
    X, Y = parts["train"]
    X_test, Y_test = parts["test"]
    makers = {"HGB": lambda: HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)}
    try:
        import lightgbm

        makers["LightGBM"] = lambda: lightgbm.LGBMClassifier(verbose=-1, n_jobs=1, random_state=seed)
    except ImportError:
        pass
    runs = [(name, "raw", make) for name, make in makers.items()]
    if one_hot_too:
        runs.append(("HGB", "onehot", lambda: make_pipeline(one_hot(), makers["HGB"]())))
    for name, inputs, make in runs:
        probas, wall, cpu = [], 0.0, 0.0
        for t in range(Y.shape[1]):
            model, w, c = _timed(lambda make=make, t=t: make().fit(X, Y[:, t]))
            probas.append(model.predict_proba(X_test)[:, 1])
            wall, cpu = wall + w, cpu + c
        proba = np.column_stack(probas)
        aucs = [roc_auc_score(Y_test[:, t], proba[:, t]) for t in range(Y.shape[1])]
        yield dict(dataset=dataset, inputs=inputs, model=name, seed=seed, auc=aucs, wall=wall,
                   cpu=cpu, epochs=None, best=None, params=None, proba=proba, y_test=Y_test)


def network_row(dataset, parts, names, model_name, inputs, seed, overrides):
    X, Y = parts["train"]
    X_test, Y_test = parts["test"]
    estimator = MODELS[model_name](random_state=seed).set_params(**overrides)
    model = make_pipeline(one_hot(), estimator) if inputs == "onehot" else clone(estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, wall, cpu = _timed(lambda: model.fit(X, Y))
    proba = np.column_stack([p[:, 1] for p in model.predict_proba(X_test)])
    fitted = model[-1] if inputs == "onehot" else model
    aucs = [roc_auc_score(Y_test[:, t], proba[:, t]) for t in range(Y.shape[1])]
    n_params = sum(p.numel() for p in fitted.net_.module_.parameters())
    return dict(dataset=dataset, inputs=inputs, model=model_name, seed=seed, auc=aucs, wall=wall,
                cpu=cpu, epochs=fitted.n_iter_, best=getattr(fitted, "best_epoch_", None),
                params=n_params, proba=proba, y_test=Y_test)


def _import_dynamo():
    """Import ``torch._dynamo`` now; returns the CPU seconds it took.

    ``torch.optim``'s optimizers import it on their first use in a process
    (their methods are wrapped by ``torch._disable_dynamo``), which put
    about 1 s into the first network fit of every run. Like the imports of
    torch, scikit-learn and LightGBM, it is done before anything is timed.
    """
    start = time.process_time()
    import torch._dynamo  # noqa: F401

    return time.process_time() - start


def tuning_split(parts):
    """Train on a fixed 80 % of the training split, score on the other 20 %."""
    X, Y = parts["train"]
    order = np.random.RandomState(12345).permutation(len(Y))
    cut = int(0.8 * len(Y))
    fit_rows, score_rows = np.sort(order[:cut]), np.sort(order[cut:])
    return {"train": (X.iloc[fit_rows].reset_index(drop=True), Y[fit_rows]),
            "test": (X.iloc[score_rows].reset_index(drop=True), Y[score_rows]), "validation": None}


def _child_row(queue, *args):
    """network_row in a fresh process; its peak resident memory goes with the row."""
    torch.set_num_threads(args[-1])
    row = network_row(*args[:-1])
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(row)


def isolated_row(*args):
    """network_row in a spawned process (``--memory``): the peak RSS of that fit alone,
    data loading included (load the same data without fitting to get the baseline)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child_row, args=(queue, *args))
    process.start()
    row = queue.get()
    process.join()
    return row


def _print(row, names):
    aucs = "  ".join(f"{n} {a:.4f}" for n, a in zip(names, row["auc"]))
    extra = "" if row["epochs"] is None else (
        f"  epochs {row['epochs']:3d} (best {row['best']})  {row['params'] / 1e3:.0f}k params  "
        f"{row['wall'] / row['epochs']:.2f} s/epoch"
    )
    if "peak_mb" in row:
        extra += f"  peak RSS {row['peak_mb']:.0f} MB"
    print(f"{row['dataset']:8s} {row['inputs']:6s} {row['model']:20s} seed {row['seed']}  {aucs}  "
          f"fit {row['wall']:6.2f} s wall {row['cpu']:6.2f} s CPU{extra}", flush=True)


def _groups(rows):
    """The rows of each (dataset, inputs, model), seeds in run order, keys sorted."""
    groups = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["inputs"], r["model"]), []).append(r)
    return dict(sorted(groups.items(), key=lambda item: str(item[0])))


def _boosting(rows):
    """HistGradientBoosting's row of each (dataset, inputs, seed): every model's reference.

    HGB on the raw frame (native categoricals) is every row's reference; a
    onehot row is also compared with HGB on the same one-hot input.
    """
    return {(r["dataset"], r["inputs"], r["seed"]): r for r in rows if r["model"] == "HGB"}


def _references(model, inputs):
    """The inputs of the HGB rows a model's rows on ``inputs`` are compared with."""
    if model == "HGB":
        return []
    return ["raw"] if inputs == "raw" else ["raw", inputs]


def summarize(rows, names_by_dataset):
    """Mean (std) AUC per task over seeds, mean wall and CPU seconds, and the CPU time
    over HistGradientBoosting's mean CPU time on the same data set in the same run
    (with the range of each seed's fit over HGB's fit of that seed)."""
    print("\nMean (std) over seeds")
    groups, boosting = _groups(rows), _boosting(rows)
    mean_cpu = {(dataset, inputs): np.mean([r["cpu"] for r in group])
                for (dataset, inputs, model), group in groups.items() if model == "HGB"}
    for (dataset, inputs, model), group in groups.items():
        auc = np.array([r["auc"] for r in group])
        cells = "  ".join(f"{n} {m:.4f} ({s:.4f})"
                          for n, m, s in zip(names_by_dataset[dataset], auc.mean(0), auc.std(0)))
        wall = np.mean([r["wall"] for r in group])
        epochs = [r["epochs"] for r in group if r["epochs"] is not None]
        ep = f"  epochs {np.mean(epochs):.1f}" if epochs else ""
        cpu = np.mean([r["cpu"] for r in group])
        raw = mean_cpu.get((dataset, "raw"))
        ratio = f" = {cpu / raw:.2f}x HGB" if raw else ""
        # each seed's fit over HGB's fit of the same seed, run just before it: the
        # machine's slow drifts between seeds cancel
        paired = [r["cpu"] / boosting[dataset, "raw", r["seed"]]["cpu"] for r in group
                  if (dataset, "raw", r["seed"]) in boosting]
        if model != "HGB" and paired:
            ratio += f" (seeds {min(paired):.2f}-{max(paired):.2f}x)"
        if "onehot" in _references(model, inputs) and (dataset, "onehot") in mean_cpu:
            ratio += f", {cpu / mean_cpu[dataset, 'onehot']:.2f}x HGB one-hot"
        print(f"{dataset:8s} {inputs:6s} {model:20s} n={len(group)}  {cells}  fit {wall:.2f} s wall"
              f"  {cpu:.2f} s CPU{ratio}{ep}")


def compare_with_boosting(rows, names_by_dataset):
    """Each model's AUC minus HistGradientBoosting's, seed by seed on the same test rows,
    with DeLong's standard error of that difference: how large a gap the test split
    can tell from the luck of its sample (``_delong.py``)."""
    boosting = _boosting(rows)
    if not boosting:
        return
    print("\nAUC minus HistGradientBoosting's on the same test rows and seed: mean over seeds "
          "+- 1.96 DeLong standard errors (test-sample noise; mean SE over seeds), the seeds' "
          "range, and the range of the seeds' two-sided p-values")
    for (dataset, inputs, model), group in _groups(rows).items():
        for reference in _references(model, inputs):
            pairs = [(r, boosting[dataset, reference, r["seed"]]) for r in group
                     if (dataset, reference, r["seed"]) in boosting]
            if not pairs:
                continue
            cells = []
            for t, name in enumerate(names_by_dataset[dataset]):
                tests = np.array([paired_auc_difference(r["y_test"][:, t], r["proba"][:, t],
                                                        h["proba"][:, t]) for r, h in pairs])
                d, se, p = tests.T
                cells.append(f"{name} {d.mean():+.4f} +- {1.96 * se.mean():.4f} "
                             f"[{d.min():+.4f}, {d.max():+.4f}] p {p.min():.2f}-{p.max():.2f}")
            print(f"{dataset:8s} {inputs:6s} {model:20s} vs HGB {reference:6s} n={len(pairs)}  "
                  + "  ".join(cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="adult,census1,census2")
    parser.add_argument("--models", default="mmoe")
    parser.add_argument("--inputs", default="raw,onehot")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-boosting", action="store_true")
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--memory", action="store_true",
                        help="fit each network in a spawned process and report its peak RSS")
    parser.add_argument("--tune", action="store_true",
                        help="score on a fixed 20%% of the training split instead of the test "
                             "split (for choosing defaults; the test split is never read)")
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                        help="override an estimator parameter (repeatable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: _value(v) for k, v in overrides.items()}
    rows, names_by_dataset = [], {}
    print(f"torch threads {args.threads}; overrides {overrides or 'none'}")
    print(f"one-time import of torch._dynamo: {_import_dynamo():.2f} s CPU, not in the fit times "
          "below (imports are not timed)")
    one_hot_too = "onehot" in args.inputs.split(",")  # HGB on the networks' one-hot input too
    for dataset in args.datasets.split(","):
        parts, names = load(dataset, data_home=args.data_home)
        if args.tune:
            parts = tuning_split(parts)
        names_by_dataset[dataset] = names
        for seed in map(int, args.seeds.split(",")):
            if not args.no_boosting:
                for row in boosting_rows(dataset, parts, names, seed, one_hot_too):
                    rows.append(row)
                    _print(row, names)
            for model_name in args.models.split(","):
                for inputs in args.inputs.split(","):
                    args_ = (dataset, parts, names, model_name, inputs, seed, overrides)
                    row = (isolated_row(*args_, args.threads) if args.memory
                           else network_row(*args_))
                    rows.append(row)
                    _print(row, names)
    summarize(rows, names_by_dataset)
    compare_with_boosting(rows, names_by_dataset)


if __name__ == "__main__":
    main()
