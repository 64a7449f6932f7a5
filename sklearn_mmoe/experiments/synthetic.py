"""Task correlation and trainability: the synthetic study of the MMoE paper.

Ma et al. (KDD 2018, section 5) train Shared-Bottom, OMoE and MMoE on two
synthetic regression tasks whose relatedness is set by a "task correlation"
``p``: the cosine similarity of the two tasks' weight vectors (see
:func:`sklearn_mmoe.datasets.make_multitask_regression`). The paper reports

- Fig. 4: every model's loss grows as ``p`` drops, Shared-Bottom's most;
  MMoE is best, and its advantage is largest at low correlation; OMoE is in
  between;
- Fig. 5: over repeated runs (new data and new initialisation each time),
  MMoE's final losses are concentrated, Shared-Bottom's spread out with a heavy
  tail of bad runs, and OMoE's spread grows as ``p`` drops.

:func:`run_correlation_experiment` repeats that protocol with the estimators
of this package and returns one row per fit; :func:`summarize`,
:func:`summary_table` and :func:`paired_comparison` condense it, and
:func:`plot_correlation` and :func:`plot_trainability` draw the two figures
(they need matplotlib, which is not a dependency of the package).

Network sizes follow the paper: 8 experts, each one ReLU layer of 16 units,
towers of one ReLU layer of 8 units, and a Shared-Bottom whose single bottom
layer has as many weights as the experts and towers together (113 units for
100 features). The training budget is a fixed number of epochs of Adam; the
paper does not state it, see :data:`MAX_EPOCHS` and :data:`LEARNING_RATES`.

Every fit uses one torch thread (the caller's setting is restored
afterwards); ``n_jobs`` runs data sets in parallel processes. The full
default run (5 correlations x 3 models x 20 runs = 300 fits on 10,000
training rows) takes about half an hour of CPU time (14 minutes with
``n_jobs=2`` on 2 idle cores); ``run_correlation_experiment(**FAST)`` is a smoke
configuration of 12 small fits (about a minute on 2 cores).
"""

# SPDX-License-Identifier: BSD-3-Clause

import sys
import time
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning

from .._architectures import ARCHITECTURES
from .._estimators import estimator_class
from ..datasets import make_multitask_regression
from ._plotting import new_figure

__all__ = [
    "FAST",
    "LEARNING_RATES",
    "MAX_EPOCHS",
    "MODELS",
    "make_model",
    "paired_comparison",
    "plot_correlation",
    "plot_trainability",
    "report",
    "run_correlation_experiment",
    "shared_bottom_width",
    "summarize",
    "summary_table",
]

#: Model key -> display name, in the order used by tables and figures.
MODELS = {name: ARCHITECTURES[name].label for name in ("shared_bottom", "omoe", "mmoe")}

#: Number of experts of OMoE and MMoE (paper, section 5).
N_EXPERTS = 8
#: Units of each expert's single hidden layer (paper, section 5).
EXPERT_UNITS = 16
#: Units of each task tower's single hidden layer (paper, section 5).
TOWER_UNITS = 8

#: Adam learning rate of each model. The paper grid-searches it over
#: {1e-4, 1e-3, 1e-2}; these are the winners of a pilot on data seeds that the
#: experiment does not use (docs/reproductions.md).
LEARNING_RATES = {"shared_bottom": 1e-3, "omoe": 1e-3, "mmoe": 1e-3}
#: Mini-batch size (the paper does not state one).
BATCH_SIZE = 256
#: Training epochs of every fit: a fixed budget, no early stopping (the paper
#: trains for a fixed number of steps and does not state how many).
MAX_EPOCHS = 100
#: Default numbers of training and test rows per data set (not stated in the
#: paper).
N_TRAIN = 10_000
N_TEST = 10_000

#: A configuration of about a minute (12 small fits) for smoke tests:
#: ``run_correlation_experiment(**FAST)``.
FAST = dict(correlations=(1.0, 0.5), n_runs=2, n_train=2000, n_test=2000, max_epochs=30)

_COLORS = {"shared_bottom": "tab:blue", "omoe": "tab:orange", "mmoe": "tab:green"}


def shared_bottom_width(n_features, n_tasks=2):
    """Width of the Shared-Bottom layer that matches the MoE models' size.

    The paper's rule (section 5): the experts and towers of the MoE models
    have ``n_features * 16 * 8 + n_tasks * 16 * 8`` weights (13,056 for 100
    features); the Shared-Bottom layer of width ``h`` feeding towers of 8
    units has ``h * (n_features + n_tasks * 8)`` weights, so
    ``h = round(13056 / 116) = 113``. Biases, gates and output layers are
    not counted by that rule; the exact parameter counts of the three models
    are reported in the ``n_parameters`` column of the results.

    Parameters
    ----------
    n_features : int
        Input dimension.
    n_tasks : int, default=2
        Number of tasks (towers).

    Returns
    -------
    width : int
        Units of the single shared-bottom layer.

    Examples
    --------
    >>> shared_bottom_width(100)
    113
    """
    moe_weights = n_features * EXPERT_UNITS * N_EXPERTS + n_tasks * EXPERT_UNITS * TOWER_UNITS
    return int(round(moe_weights / (n_features + n_tasks * TOWER_UNITS)))


def make_model(name, n_features, *, max_epochs=MAX_EPOCHS, random_state=None):
    """One unfitted model of the study, with the paper's sizes.

    Parameters
    ----------
    name : {"shared_bottom", "omoe", "mmoe"}
        Which model.
    n_features : int
        Input dimension (sets the Shared-Bottom width, see
        :func:`shared_bottom_width`).
    max_epochs : int, default=MAX_EPOCHS
        Training epochs. Every fit runs all of them (no convergence stop).
    random_state : int or None, default=None
        Seed of the initialisation and batch order.

    Returns
    -------
    estimator : SharedBottomRegressor, OMoERegressor or MMoERegressor
        The unfitted estimator.

    Examples
    --------
    >>> make_model("mmoe", 100).get_params()["expert_hidden_sizes"]
    (16,)
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; expected one of {sorted(MODELS)}.")
    training = dict(
        learning_rate=LEARNING_RATES[name],
        batch_size=BATCH_SIZE,
        max_epochs=max_epochs,
        # A fixed budget: the convergence check can never stop a fit early.
        n_iter_no_change=max_epochs + 1,
        # A diverging fit keeps its last finite weights instead of aborting
        # the whole study; it is flagged in the results.
        nan_loss="restore",
        # The paper's setting: raw inputs, a fixed number of epochs.
        numeric_encoding=None,
        # as measured (docs/reproductions.md): no weight average
        ema_half_life=None,
        early_stopping=False,
        random_state=random_state,
    )
    if name == "shared_bottom":
        sizes = dict(bottom_hidden_sizes=(shared_bottom_width(n_features),))
    else:
        sizes = dict(n_experts=N_EXPERTS, expert_hidden_sizes=(EXPERT_UNITS,), gate_hidden_sizes=())
    cls = estimator_class(name, "Regressor")
    return cls(**sizes, tower_hidden_sizes=(TOWER_UNITS,), **training)


def _check_int(value, name, low):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    return int(value)


def _run_seeds(random_state, n_runs):
    """(data seed, model seed) of each run.

    Run ``r``'s seeds come from child ``r`` of ``SeedSequence(random_state)``,
    so they do not depend on ``n_runs``: the first runs of a long study are
    the runs of a short one.
    """
    children = np.random.SeedSequence(random_state).spawn(n_runs)
    return [tuple(int(s) for s in child.generate_state(2, dtype=np.uint32)) for child in children]


def _mse(Y_true, Y_pred):
    return np.mean((Y_true - Y_pred) ** 2, axis=0)


def _fit_one(name, X_train, Y_train, X_test, Y_test, max_epochs, model_seed):
    model = make_model(name, X_train.shape[1], max_epochs=max_epochs, random_state=model_seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)  # expected: fixed budget
        model.fit(X_train, Y_train)
    fit_seconds = time.perf_counter() - start
    diverged = any(issubclass(w.category, RuntimeWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, RuntimeWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    test = _mse(Y_test, model.predict(X_test))
    train = _mse(Y_train, model.predict(X_train))
    return dict(
        mse=float(test.mean()),
        mse_task0=float(test[0]),
        mse_task1=float(test[1]),
        train_mse=float(train.mean()),
        epochs=int(model.n_iter_),
        n_parameters=int(sum(p.numel() for p in model.net_.module_.parameters())),
        diverged=bool(diverged),
        fit_seconds=fit_seconds,
    )


def _fit_data_set(run, p, data_seed, model_seed, *, n_train, n_test, n_features, models,
                  max_epochs):
    """Fit every model on the data set of one (correlation, run): one job."""
    X, Y = make_multitask_regression(
        n_train + n_test, n_features, correlation=p, random_state=data_seed
    )
    X_train, Y_train, X_test, Y_test = X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]
    label_var = float(Y_test.var(axis=0).mean())
    threads = torch.get_num_threads()
    # One thread per fit: these networks are too small to gain from more, and
    # on a small shared machine a second thread mostly waits (parallelism
    # comes from n_jobs).
    torch.set_num_threads(1)
    try:
        return [
            dict(correlation=p, model=name, run=run, seed=data_seed, model_seed=model_seed,
                 label_var=label_var,
                 **_fit_one(name, X_train, Y_train, X_test, Y_test, max_epochs, model_seed))
            for name in models
        ]
    finally:
        torch.set_num_threads(threads)


def run_correlation_experiment(
    correlations=(1.0, 0.9, 0.8, 0.5, 0.0),
    n_runs=20,
    *,
    n_train=N_TRAIN,
    n_test=N_TEST,
    n_features=100,
    models=("shared_bottom", "omoe", "mmoe"),
    max_epochs=MAX_EPOCHS,
    random_state=0,
    n_jobs=None,
    progress=True,
):
    """Fit every model on fresh synthetic data, for each task correlation and run.

    For run ``r`` and correlation ``p``, a data set of ``n_train + n_test``
    rows is drawn with :func:`~sklearn_mmoe.datasets.make_multitask_regression`
    (the paper's generator: 2 tasks, ``c = 1``, 10 sine terms, noise
    standard deviation 0.1) from run ``r``'s data seed; the first
    ``n_train`` rows train, the others test. Every model of ``(p, r)`` sees
    the same data and is initialised from run ``r``'s model seed. The data
    seed does not depend on ``p``: the generator then draws the same inputs,
    directions and sine parameters, and only the second task's weight vector
    changes with ``p`` (paired comparisons across correlations).

    Each model trains for exactly ``max_epochs`` epochs of Adam (batch 256,
    learning rate :data:`LEARNING_RATES`), with one torch thread. The
    results do not depend on ``n_jobs``.

    Parameters
    ----------
    correlations : sequence of float, default=(1.0, 0.9, 0.8, 0.5, 0.0)
        Task correlations ``p`` in [-1, 1].
    n_runs : int, default=20
        Repetitions per correlation and model, each with new data and a new
        initialisation.
    n_train, n_test : int, default=10000
        Training and test rows of each data set.
    n_features : int, default=100
        Input dimension (the paper's is 100).
    models : sequence of {"shared_bottom", "omoe", "mmoe"}, default=all three
        Models to fit.
    max_epochs : int, default=MAX_EPOCHS
        Training epochs of every fit.
    random_state : int or None, default=0
        Seed of all data and model seeds. The same int gives identical
        results (except ``fit_seconds``); None draws fresh entropy.
    n_jobs : int or None, default=None
        Number of processes fitting in parallel (joblib), one (correlation,
        run) data set per job. None means 1 (in this process), -1 all CPUs.
    progress : bool, default=True
        Show a tqdm progress bar over all fits on stderr.

    Returns
    -------
    results : pandas.DataFrame
        One row per (correlation, model, run), sorted in that order, with
        columns

        - ``correlation``, ``model`` (key of :data:`MODELS`), ``run``;
        - ``seed`` (the data seed) and ``model_seed``;
        - ``mse``: test MSE averaged over the two tasks, on the labels'
          scale; ``mse_task0``, ``mse_task1``: each task's test MSE;
        - ``train_mse``: the same on the training rows;
        - ``label_var``: variance of the test labels, averaged over the
          tasks (the MSE of predicting each task's mean; it varies a lot
          between data seeds because of the random sine parameters);
        - ``epochs``: epochs trained; ``n_parameters``: trainable
          parameters of the network; ``diverged``: the loss became
          non-finite and the last finite weights were kept;
          ``fit_seconds``: wall time of the fit.

    Examples
    --------
    >>> from sklearn_mmoe.experiments.synthetic import FAST, run_correlation_experiment
    >>> results = run_correlation_experiment(**FAST, progress=False)  # doctest: +SKIP
    >>> results.shape  # doctest: +SKIP
    (12, 16)
    """
    correlations = [float(p) for p in np.atleast_1d(np.asarray(correlations, dtype=float))]
    if not correlations or not all(-1.0 <= p <= 1.0 for p in correlations):
        raise ValueError(f"correlations must be non-empty and in [-1, 1], got {correlations}.")
    if len(set(correlations)) != len(correlations):
        raise ValueError(f"correlations must be distinct, got {correlations}.")
    n_runs = _check_int(n_runs, "n_runs", 1)
    n_train = _check_int(n_train, "n_train", 2)
    n_test = _check_int(n_test, "n_test", 1)
    n_features = _check_int(n_features, "n_features", 2)
    max_epochs = _check_int(max_epochs, "max_epochs", 1)
    models = [models] if isinstance(models, str) else list(models)
    unknown = [m for m in models if m not in MODELS]
    if not models or unknown or len(set(models)) != len(models):
        raise ValueError(
            f"models must be distinct names among {list(MODELS)}, got {models}."
        )
    if random_state is not None and (
        not isinstance(random_state, Integral) or isinstance(random_state, bool) or random_state < 0
    ):
        raise ValueError(f"random_state must be a non-negative int or None, got {random_state!r}.")

    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    jobs = [
        (run, p, data_seed, model_seed)
        for run, (data_seed, model_seed) in enumerate(_run_seeds(random_state, n_runs))
        for p in correlations
    ]
    config = dict(n_train=n_train, n_test=n_test, n_features=n_features, models=models,
                  max_epochs=max_epochs)
    rows = []
    with tqdm(total=len(jobs) * len(models), desc="synthetic correlation study", unit="fit",
              file=sys.stderr, disable=not progress) as bar:
        done = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_fit_data_set)(*job, **config) for job in jobs
        )
        for fits in done:
            rows += fits
            bar.update(len(fits))

    columns = [
        "correlation", "model", "run", "seed", "model_seed", "mse", "mse_task0", "mse_task1",
        "train_mse", "label_var", "epochs", "n_parameters", "diverged", "fit_seconds",
    ]
    results = pd.DataFrame(rows, columns=columns)
    return _sorted(results, ["run"]).reset_index(drop=True)


def _sorted(frame, extra=()):
    """Rows by decreasing correlation, then model in MODELS order, then ``extra``."""
    order = {name: i for i, name in enumerate(MODELS)}
    key = frame.assign(
        _p=-frame["correlation"].astype(float),
        _m=frame["model"].map(order).fillna(len(order)),
    )
    return key.sort_values(["_p", "_m", *extra], kind="stable").drop(columns=["_p", "_m"])


def summarize(results):
    """Distribution of the test MSE per (correlation, model).

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run_correlation_experiment` (or its CSV).

    Returns
    -------
    summary : pandas.DataFrame
        One row per (correlation, model), correlations decreasing and models
        in :data:`MODELS` order, with columns ``correlation``, ``model``,
        ``n_runs``, ``median``, ``q25``, ``q75`` (25th and 75th percentiles),
        ``min``, ``max``, ``mean`` of ``mse``, and ``n_parameters``.

    Examples
    --------
    >>> import pandas as pd
    >>> results = pd.DataFrame({"correlation": [0.5, 0.5, 1.0], "model": ["mmoe"] * 3,
    ...                         "mse": [0.1, 0.3, 0.2], "n_parameters": [14834] * 3})
    >>> summarize(results)[["correlation", "n_runs", "median"]].to_string(index=False)
    ' correlation  n_runs  median\\n         1.0       1     0.2\\n         0.5       2     0.2'
    """
    _check_results(results, ["correlation", "model", "mse"])
    grouped = results.groupby(["correlation", "model"], sort=False)
    mse = grouped["mse"]
    summary = pd.DataFrame(
        {
            "n_runs": mse.count(),
            "median": mse.median(),
            "q25": mse.quantile(0.25),
            "q75": mse.quantile(0.75),
            "min": mse.min(),
            "max": mse.max(),
            "mean": mse.mean(),
        }
    )
    if "n_parameters" in results:
        summary["n_parameters"] = grouped["n_parameters"].max()
    return _sorted(summary.reset_index()).reset_index(drop=True)


def summary_table(results, digits=3):
    """Median [25th, 75th percentile] test MSE: correlations by models.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run_correlation_experiment`.
    digits : int, default=3
        Decimals shown.

    Returns
    -------
    table : pandas.DataFrame
        Strings, one row per correlation (decreasing) and one column per
        model (display names), plus the number of runs per cell.
    """
    summary = summarize(results)
    cell = summary.apply(
        lambda r: f"{r['median']:.{digits}f} [{r['q25']:.{digits}f}, {r['q75']:.{digits}f}]",
        axis=1,
    )
    table = summary.assign(cell=cell).pivot(index="correlation", columns="model", values="cell")
    names = [m for m in MODELS if m in table.columns] + [m for m in table.columns if m not in MODELS]
    table = table[names].rename(columns=MODELS).sort_index(ascending=False)
    runs = summary.groupby("correlation")["n_runs"].agg(
        lambda s: str(s.iloc[0]) if s.nunique() == 1 else f"{s.min()}-{s.max()}"
    )
    table["runs"] = runs.reindex(table.index)
    table.columns.name = None
    return table


def paired_comparison(results):
    """Head-to-head comparison of the models on the same data and seeds.

    For each correlation and pair of models ``(a, b)`` (``a`` the later model
    in :data:`MODELS` order: OMoE vs Shared-Bottom, MMoE vs Shared-Bottom,
    MMoE vs OMoE), the runs are matched on ``run``, so both fits saw the same
    data set and seed.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run_correlation_experiment`.

    Returns
    -------
    comparison : pandas.DataFrame
        Columns ``correlation``, ``model``, ``baseline``, ``n_runs``,
        ``wins`` (runs where ``model`` has the lower test MSE),
        ``median_ratio`` and ``q25_ratio``, ``q75_ratio`` (of
        ``mse(model) / mse(baseline)`` over the runs; below 1 favours
        ``model``).
    """
    _check_results(results, ["correlation", "model", "run", "mse"])
    present = [m for m in MODELS if m in set(results["model"])]
    rows = []
    for p in sorted(results["correlation"].unique(), reverse=True):
        at_p = results[results["correlation"] == p].pivot(index="run", columns="model", values="mse")
        for i, baseline in enumerate(present):
            for model in present[i + 1:]:
                pair = at_p[[model, baseline]].dropna()
                ratio = pair[model] / pair[baseline]
                rows.append(
                    dict(
                        correlation=p, model=model, baseline=baseline, n_runs=len(pair),
                        wins=int((pair[model] < pair[baseline]).sum()),
                        median_ratio=ratio.median(), q25_ratio=ratio.quantile(0.25),
                        q75_ratio=ratio.quantile(0.75),
                    )
                )
    return pd.DataFrame(rows)


def report(results):
    """The study's results as text: sizes, MSE table, paired comparison.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run_correlation_experiment`.

    Returns
    -------
    text : str
        Parameter counts, the median [25th, 75th percentile] test MSE per
        correlation and model (:func:`summary_table`), the paired
        comparison (:func:`paired_comparison`: runs won and median [IQR]
        MSE ratio) and the median variance of the test labels.
    """
    _check_results(results, ["correlation", "model", "run", "mse"])
    lines = []
    if "n_parameters" in results:
        counts = results.groupby("model", sort=False)["n_parameters"].max()
        lines.append("parameters: " + ", ".join(
            f"{MODELS.get(m, m)} {counts[m]:,}" for m in _model_order(results)))
    if "diverged" in results and results["diverged"].any():
        lines.append(f"{int(results['diverged'].sum())} fit(s) diverged (last finite weights kept)")
    lines += ["", "Test MSE (mean of the 2 tasks), median [25th, 75th percentile] over runs:",
              summary_table(results).to_string()]
    pairs = paired_comparison(results)
    if len(pairs):
        pairs["pair"] = pairs["model"].map(MODELS) + " vs " + pairs["baseline"].map(MODELS)
        pairs["cell"] = [
            f"{r.wins}/{r.n_runs}  {r.median_ratio:.2f} [{r.q25_ratio:.2f}, {r.q75_ratio:.2f}]"
            for r in pairs.itertuples()
        ]
        table = pairs.pivot(index="correlation", columns="pair", values="cell")
        lines += ["", "Same data and seed, model vs baseline: runs won, median [IQR] MSE ratio:",
                  table.sort_index(ascending=False).to_string()]
    if "label_var" in results:
        variance = results.groupby("correlation")["label_var"].median().sort_index(ascending=False)
        lines += ["", "median test-label variance (the MSE of predicting the mean): "
                  + ", ".join(f"p={p:g}: {v:.3f}" for p, v in variance.items())]
    return "\n".join(lines)


def _check_results(results, columns):
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}.")
    missing = [c for c in columns if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks the columns {missing}.")
    if results.empty:
        raise ValueError("results is empty.")


def _model_order(results):
    names = list(dict.fromkeys(results["model"]))
    return [m for m in MODELS if m in names] + [m for m in names if m not in MODELS]


def plot_correlation(results, path):
    """Fig. 4: median test MSE against task correlation, with the IQR band.

    Left panel: the median over runs of each model's test MSE at each
    correlation, with a band from the 25th to the 75th percentile. Right
    panel: the same for the paired ratio ``mse(model) / mse(Shared-Bottom)``
    on the same data and seed (drawn when Shared-Bottom is among the models),
    which removes the large run-to-run differences in how hard the data set
    is.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run_correlation_experiment`.
    path : str or path-like
        PNG file to write.

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    _check_results(results, ["correlation", "model", "run", "mse"])
    summary = summarize(results)
    models = _model_order(results)
    paired = "shared_bottom" in models and len(models) > 1
    fig = new_figure(figsize=(11.0, 4.2) if paired else (6.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2 if paired else 1, squeeze=False)[0]
    ax = axes[0]
    for name in models:
        s = summary[summary["model"] == name].sort_values("correlation")
        color = _COLORS.get(name)
        ax.plot(s["correlation"], s["median"], "o-", color=color, label=MODELS.get(name, name))
        ax.fill_between(s["correlation"], s["q25"], s["q75"], color=color, alpha=0.18, lw=0)
    n = int(summary["n_runs"].min())
    ax.set(
        xlabel="task correlation p",
        ylabel="test MSE (mean of the 2 tasks)",
        title=f"Median test MSE and IQR over {n}+ runs",
    )
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    if paired:
        ax = axes[1]
        wide = results.pivot_table(index=["correlation", "run"], columns="model", values="mse")
        for name in models:
            ratio = (wide[name] / wide["shared_bottom"]).dropna().groupby(level="correlation")
            q = pd.DataFrame(
                {"median": ratio.median(), "q25": ratio.quantile(0.25), "q75": ratio.quantile(0.75)}
            ).sort_index()
            color = _COLORS.get(name)
            style = "--" if name == "shared_bottom" else "o-"
            ax.plot(q.index, q["median"], style, color=color, label=MODELS.get(name, name))
            if name != "shared_bottom":
                ax.fill_between(q.index, q["q25"], q["q75"], color=color, alpha=0.18, lw=0)
        ax.set(
            xlabel="task correlation p",
            ylabel="test MSE / Shared-Bottom's (same data, same seed)",
            title="Paired ratio to Shared-Bottom: median and IQR",
        )
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend()
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path


def plot_trainability(results, path, bins=24):
    """Fig. 5: histograms of the final test MSE of every run, per correlation.

    One panel per correlation (decreasing), one step histogram per model,
    on common logarithmic bins.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run_correlation_experiment`.
    path : str or path-like
        PNG file to write.
    bins : int, default=24
        Number of logarithmic bins spanning all runs' MSE.

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    _check_results(results, ["correlation", "model", "mse"])
    models = _model_order(results)
    correlations = sorted(results["correlation"].unique(), reverse=True)
    mse = results["mse"].to_numpy(dtype=float)
    finite = mse[np.isfinite(mse) & (mse > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1e-3, 1.0)
    if high <= low:
        low, high = low / 1.5, high * 1.5
    edges = np.geomspace(low, high * (1 + 1e-9), bins + 1)
    n_cols = len(correlations)
    fig = new_figure(figsize=(2.6 * n_cols + 1.0, 3.4), layout="constrained")
    axes = fig.subplots(1, n_cols, sharex=True, sharey=True, squeeze=False)[0]
    for ax, p in zip(axes, correlations):
        at_p = results[results["correlation"] == p]
        for name in models:
            values = at_p.loc[at_p["model"] == name, "mse"].to_numpy(dtype=float)
            ax.hist(
                values, bins=edges, histtype="step", lw=1.6, color=_COLORS.get(name),
                label=f"{MODELS.get(name, name)}",
            )
        ax.set_xscale("log")
        ax.set_title(f"p = {p:g}")
        ax.set_xlabel("final test MSE")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("runs")
    axes[0].legend(fontsize="small")
    n = int(results.groupby(["correlation", "model"]).size().min())
    fig.suptitle(f"Final test MSE of {n}+ runs per model (new data and seed each run)")
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path
