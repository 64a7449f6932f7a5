"""ESMM in a simulation with known probabilities: pCVR on the entire impression space.

Post-click conversion (CVR) is only observed on clicked impressions. The ESMM
paper (Ma et al., SIGIR 2018) argues that a CVR model trained on clicked rows
only suffers from sample selection bias (it is trained on the clicked
population and used on every impression) and from data sparsity (few clicks),
and that modelling pCTCVR = pCTR * pCVR on every impression fixes both.

This script simulates impressions whose true click and conversion
probabilities are known, so pCVR can be evaluated where it is used, on *all*
impressions of a held-out test set: against the true pCVR, and against the
counterfactual conversion label of every impression (whether it would have
converted had it been clicked), which only a simulation can draw.

The world (fixed across seeds, written out below):

- ``x ~ N(0, I_16)``.
- ``z_ctr = a . x`` reads features 0-7; ``z_own = b . x`` reads features 8-15
  (``a``, ``b`` unit vectors, so both are N(0, 1) and independent).
- ``logit pCTR = c + z_ctr + 0.5 x2 x3`` (one interaction, true CTR AUC ~0.76-0.79).
- ``logit pCVR = v + rho z_ctr + sqrt(1 - rho^2) z_own + 0.5 x10 x11``
  (true CVR AUC ~0.77).
- ``click ~ Bernoulli(pCTR)``; counterfactual conversion ``~ Bernoulli(pCVR)``
  on every impression, independent of the click given x; observed
  ``conversion = click and counterfactual conversion``.

``rho`` (``--rho``, default 0.5) is the selection-bias knob: the correlation
between the click and the conversion propensities. With ``rho = 0`` the
clicked impressions have the same pCVR distribution as all impressions; with
``rho = 0.5`` clicked impressions convert more often than the average
impression (users who are interested click and buy), and the fewer the
clicks, the more selected the clicked population. The intercepts are solved
so that the mean true pCTR is the regime's (dense: 30 %, sparse: 3 %) and the
mean true pCVR over all impressions is 8 % in both regimes.

Models (same network sizes, same optimiser and the same stopping rule:
``early_stopping=True`` on 10 % of each model's own training rows, patience
10 epochs):

- ``ESMM (shared-bottom)``: ``ESMMClassifier`` on every impression,
  ``y = (click, conversion)`` with conversion NaN where not clicked.
- ``CVR on clicks (baseline)``: the ESMM paper's baseline, a
  ``SharedBottomClassifier`` of the same sizes fitted on the clicked rows only.
- ``ESMM (MMoE)``: ``MultiTaskEstimator(architecture="mmoe",
  conditional_tasks={1: 0})``, ESMM on another architecture.

Beyond ESMM (``--models``; all shared-bottom, same sizes):

- ``masked multi-task``: ``SharedBottomClassifier`` on every impression with
  y = (click, conversion), conversion NaN where not clicked and *not*
  conditional: the conversion tower trains on clicked rows only, the bottom
  on every impression.
- ``IPS (shared-bottom)``, ``DR (shared-bottom)``:
  ``ESMMClassifier(cvr_objective="ips")`` and ``(cvr_objective="dr")``, with
  their defaults (ESCM²-IPS and -DR: ESMM's losses plus a counterfactual CVR
  risk weighted by the inverse of the detached, clipped pCTR).

Run: ``python examples/esmm_simulation.py`` (5 seeds per regime, 6-8 minutes
on 2 shared CPU cores; ``--fast`` for one small seed in ~25 s). The study of
the debiased objectives (several ``--rho`` values, paired against ESMM)::

    python examples/esmm_simulation.py --models clicked masked esmm ips dr \
        --rho 0 0.5 0.8 --seeds 10 --n-train 20000 --n-test 20000 \
        --batch-size 1024 --learning-rate 2e-3 --reference esmm

Results and conclusions: docs/esmm.md.
"""

import argparse
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from sklearn_mmoe import ESMMClassifier, MultiTaskEstimator, SharedBottomClassifier

N_FEATURES = 16
# Click propensity reads features 0-7, the conversion propensity's own part
# features 8-15; rho mixes the click direction into the conversion logit.
_A = np.r_[[1.0, -0.8, 0.6, 0.5, -0.4, 0.3, 0.3, -0.2], np.zeros(8)]
_B = np.r_[np.zeros(8), [1.0, 0.8, -0.7, 0.5, -0.5, 0.4, 0.3, 0.2]]
CTR_DIRECTION = _A / np.linalg.norm(_A)
CVR_DIRECTION = _B / np.linalg.norm(_B)
INTERACTION = 0.5
REGIMES = {"dense": 0.30, "sparse": 0.03}  # mean true pCTR
MEAN_CVR = 0.08  # mean true pCVR over all impressions
RHO = 0.5

NETWORK = dict(bottom_hidden_sizes=(128,), tower_hidden_sizes=(16,))
MMOE_NETWORK = dict(n_experts=4, expert_hidden_sizes=(32,), tower_hidden_sizes=(16,))
TRAINING = dict(
    early_stopping=True, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
    numeric_encoding=None,  # the measured setting: raw Gaussian features
    max_epochs=200, batch_size=256, learning_rate=1e-3,
    ema_half_life=None,  # as measured (before the weight average existed)
)
MODELS = (
    "ESMM (shared-bottom)", "CVR on clicks (baseline)", "ESMM (MMoE)",
    "masked multi-task", "IPS (shared-bottom)", "DR (shared-bottom)",
)
# --models names -> models
SHORT_NAMES = {
    "esmm": "ESMM (shared-bottom)",
    "clicked": "CVR on clicks (baseline)",
    "esmm-mmoe": "ESMM (MMoE)",
    "masked": "masked multi-task",
    "ips": "IPS (shared-bottom)",
    "dr": "DR (shared-bottom)",
}
DEFAULT_MODELS = ("esmm", "clicked", "esmm-mmoe")


def _logits_without_intercepts(X, rho):
    """Click and conversion logits without their intercepts."""
    z_ctr, z_own = X @ CTR_DIRECTION, X @ CVR_DIRECTION
    ctr = z_ctr + INTERACTION * X[:, 2] * X[:, 3]
    cvr = rho * z_ctr + np.sqrt(1.0 - rho**2) * z_own + INTERACTION * X[:, 10] * X[:, 11]
    return ctr, cvr


@lru_cache
def intercepts(mean_ctr, rho):
    """Intercepts giving mean true pCTR ``mean_ctr`` and mean true pCVR MEAN_CVR."""
    X = np.random.default_rng(12345).normal(size=(400_000, N_FEATURES))
    ctr, cvr = _logits_without_intercepts(X, rho)
    c = brentq(lambda b: expit(ctr + b).mean() - mean_ctr, -20, 20)
    v = brentq(lambda b: expit(cvr + b).mean() - MEAN_CVR, -20, 20)
    return c, v


def simulate(n, mean_ctr, rng, rho=RHO):
    """Impressions with labels, counterfactual conversions and true probabilities."""
    X = rng.normal(size=(n, N_FEATURES))
    ctr, cvr = _logits_without_intercepts(X, rho)
    c, v = intercepts(mean_ctr, rho)
    p_ctr, p_cvr = expit(ctr + c), expit(cvr + v)
    click = rng.uniform(size=n) < p_ctr
    conversion_cf = rng.uniform(size=n) < p_cvr  # had it been clicked
    Y = np.column_stack([click, click & conversion_cf]).astype(float)
    Y[~click, 1] = np.nan  # no conversion label without a click
    return dict(X=X, Y=Y, click=click, conversion_cf=conversion_cf, p_ctr=p_ctr, p_cvr=p_cvr)


def calibration(pred, true, n_bins=10):
    """(mean predicted - mean true, ECE against the true probabilities).

    ECE: rows in ``n_bins`` equal-count bins of the predicted probability,
    ``sum_b n_b / n * |mean predicted_b - mean true_b|``. Equal-count bins,
    because with rates of a few percent equal-width bins would put almost
    every row in the first one.
    """
    order = np.argsort(pred, kind="stable")
    gaps = [abs(pred[b].mean() - true[b].mean()) * b.size for b in np.array_split(order, n_bins)]
    return pred.mean() - true.mean(), sum(gaps) / pred.size


def _models(seed, patience=TRAINING["n_iter_no_change"], **training):
    common = dict(TRAINING, n_iter_no_change=patience, random_state=seed, **training)
    return {
        "ESMM (shared-bottom)": ESMMClassifier(**NETWORK, **common),
        "CVR on clicks (baseline)": SharedBottomClassifier(**NETWORK, **common),
        "ESMM (MMoE)": MultiTaskEstimator(
            architecture="mmoe", conditional_tasks={1: 0}, **MMOE_NETWORK, **common
        ),
        "masked multi-task": SharedBottomClassifier(**NETWORK, **common),
        "IPS (shared-bottom)": ESMMClassifier(cvr_objective="ips", **NETWORK, **common),
        "DR (shared-bottom)": ESMMClassifier(cvr_objective="dr", **NETWORK, **common),
    }


def _evaluate(model, name, train, test):
    """Fit one model, return its metrics on all test impressions."""
    start = time.perf_counter()
    if name.startswith("CVR on clicks"):
        clicked = train["click"]
        X_fit, y_fit = train["X"][clicked], train["Y"][clicked, 1]
    else:
        X_fit, y_fit = train["X"], train["Y"]
    model.fit(X_fit, y_fit)
    fit_s = time.perf_counter() - start
    n_fit = X_fit.shape[0] - round(X_fit.shape[0] * TRAINING["validation_fraction"])
    row = dict(model=name, epochs=model.n_iter_, steps=model.n_iter_ * -(-n_fit // model.batch_size),
               fit_s=fit_s, train_rows=X_fit.shape[0])

    X, clicked = test["X"], test["click"]
    if name.startswith("CVR on clicks"):
        p_cvr = model.predict_proba(X)[:, 1]
    elif not hasattr(model, "predict_joint_proba"):  # the masked multi-task model
        p_ctr, p_cvr = (p[:, 1] for p in model.predict_proba(X))
        row["ctr_auc"] = roc_auc_score(clicked, p_ctr)
    else:
        p_ctr, p_cvr = (p[:, 1] for p in model.predict_proba(X))
        _, p_ctcvr = (p[:, 1] for p in model.predict_joint_proba(X))
        row["max_joint_gap"] = float(np.max(np.abs(p_ctcvr - p_ctr * p_cvr)))
        row["ctr_auc"] = roc_auc_score(clicked, p_ctr)
        row["ctr_bias"], row["ctr_ece"] = calibration(p_ctr, test["p_ctr"])
        row["ctcvr_bias"], row["ctcvr_ece"] = calibration(p_ctcvr, test["p_ctr"] * test["p_cvr"])
        row["ctr_true_mean"] = test["p_ctr"].mean()
        row["ctcvr_true_mean"] = (test["p_ctr"] * test["p_cvr"]).mean()
    row["cvr_auc_all"] = roc_auc_score(test["conversion_cf"], p_cvr)
    row["cvr_auc_clicked"] = roc_auc_score(test["Y"][clicked, 1], p_cvr[clicked])
    row["cvr_corr"] = np.corrcoef(p_cvr, test["p_cvr"])[0, 1]
    row["cvr_bias"], row["cvr_ece"] = calibration(p_cvr, test["p_cvr"])
    return row


def _reference(test):
    """The true pCVR scored like a model: the ceiling of each metric."""
    clicked = test["click"]
    return dict(
        model="true pCVR (reference)",
        cvr_auc_all=roc_auc_score(test["conversion_cf"], test["p_cvr"]),
        cvr_auc_clicked=roc_auc_score(test["Y"][clicked, 1], test["p_cvr"][clicked]),
        cvr_corr=1.0, cvr_bias=0.0, cvr_ece=0.0,
    )


def _mean_std(values, fmt=".4f"):
    values = np.asarray(values, dtype=float)
    if np.all(np.isnan(values)):
        return ""
    if values.size == 1:
        return f"{values[0]:{fmt}}"
    return f"{np.mean(values):{fmt}} ± {np.std(values, ddof=1):{fmt}}"


FORMATS = {"epochs": ".0f", "steps": ".0f", "max_joint_gap": ".1e"}


CVR_COLUMNS = {
    "cvr_auc_all": "pCVR AUC all (cf)",
    "cvr_auc_clicked": "pCVR AUC clicked",
    "cvr_corr": "corr(pCVR, true)",
    "cvr_bias": "pCVR mean - true",
    "cvr_ece": "pCVR ECE",
    "epochs": "epochs",
    "steps": "steps",
}
ESMM_COLUMNS = {
    "max_joint_gap": "max|pCTCVR-pCTR*pCVR|",
    "ctr_auc": "pCTR AUC",
    "ctr_bias": "pCTR mean - true",
    "ctr_ece": "pCTR ECE",
    "ctcvr_bias": "pCTCVR mean - true",
    "ctcvr_ece": "pCTCVR ECE",
}


def summarize(runs):
    """Mean ± std over seeds, one row per (regime, model)."""
    frame = pd.DataFrame(runs)
    order = {m: i for i, m in enumerate(("true pCVR (reference)", *MODELS))}
    rows = []
    for (rho, regime, model), group in frame.groupby(["rho", "regime", "model"], sort=False):
        row = {"rho": rho, "regime": regime, "model": model, "seeds": group["seed"].nunique()}
        for column in (*CVR_COLUMNS, *ESMM_COLUMNS):
            if column in group:
                row[f"{column}_mean"] = group[column].mean()
                row[f"{column}_std"] = group[column].std(ddof=1) if len(group) > 1 else np.nan
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["_order"] = summary["model"].map(order)
    regimes = {r: i for i, r in enumerate(REGIMES)}
    summary["_regime"] = summary["regime"].map(regimes)
    return summary.sort_values(["rho", "_regime", "_order"]).drop(columns=["_order", "_regime"])


def _table(runs, columns, models):
    frame = pd.DataFrame(runs)
    frame = frame[frame["model"].isin(models)]
    if frame.empty:
        return "(none)"
    lines = []
    for (rho, regime, model), group in frame.groupby(["rho", "regime", "model"], sort=False):
        line = {"rho": rho, "regime": regime, "model": model}
        for column, title in columns.items():
            fmt = FORMATS.get(column, ".4f")
            line[title] = _mean_std(group[column], fmt) if column in group else ""
        lines.append(line)
    table = pd.DataFrame(lines)
    table["_m"] = table["model"].map({m: i for i, m in enumerate(models)})
    table["_r"] = table["regime"].map({r: i for i, r in enumerate(REGIMES)})
    return table.sort_values(["rho", "_r", "_m"]).drop(columns=["_m", "_r"]).to_string(index=False)


# Paired comparisons: (column, +1 if higher is better else -1); calibration
# compares |mean predicted - mean true|.
PAIRED = (("cvr_auc_all", 1), ("cvr_corr", 1), ("cvr_abs_bias", -1), ("cvr_ece", -1))


def paired(runs, reference):
    """Each model minus ``reference``, per seed (same data), per rho and regime.

    Returns one row per (rho, regime, model): the mean and std of each paired
    difference and the number of seeds where the model beats the reference.
    """
    frame = pd.DataFrame(runs)
    frame = frame[frame["model"] != "true pCVR (reference)"]
    frame["cvr_abs_bias"] = frame["cvr_bias"].abs()
    frame = frame.set_index(["rho", "regime", "seed", "model"])
    rows = []
    for (rho, regime), sub in frame.groupby(level=["rho", "regime"], sort=False):
        sub = sub.droplevel(["rho", "regime"])
        models = sub.index.get_level_values("model").unique()
        if reference not in models:
            continue
        base = sub.xs(reference, level="model")
        for model in models.drop(reference):
            diff = (sub.xs(model, level="model") - base).dropna(how="all")
            row = dict(rho=rho, regime=regime, model=model, reference=reference, seeds=len(diff))
            for column, better in PAIRED:
                d = diff[column].to_numpy()
                row[f"d_{column}_mean"], row[f"d_{column}_std"] = d.mean(), d.std(ddof=1) if d.size > 1 else np.nan
                row[f"{column}_wins"] = int(np.sum(better * d > 0))
            rows.append(row)
    return pd.DataFrame(rows)


def _paired_text(table):
    lines = []
    for _, row in table.iterrows():
        parts = [
            f"{column} {row[f'd_{column}_mean']:+.4f} ± {row[f'd_{column}_std']:.4f} "
            f"({row[f'{column}_wins']}/{row['seeds']})"
            for column, _ in PAIRED
        ]
        lines.append(f"  rho={row['rho']} {row['regime']:6s} {row['model']} - {row['reference']}: "
                     + "; ".join(parts))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="ESMM vs a CVR model trained on clicks, in simulation")
    parser.add_argument("--fast", action="store_true", help="one seed, small data: a smoke test")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per regime (default 5; 1 with --fast)")
    parser.add_argument("--n-train", type=int, default=None,
                        help="training impressions per regime and seed (default 100000; 20000 with --fast)")
    parser.add_argument("--n-test", type=int, default=None,
                        help="test impressions (default 50000; 10000 with --fast)")
    parser.add_argument("--rho", type=float, nargs="+", default=[RHO],
                        help="selection-bias knob(s): correlation of click and conversion "
                             "propensities (default 0.5; several values run one after another)")
    parser.add_argument("--models", nargs="+", choices=list(SHORT_NAMES), default=list(DEFAULT_MODELS),
                        help="models to fit (default: esmm clicked esmm-mmoe)")
    parser.add_argument("--reference", choices=list(SHORT_NAMES), default="clicked",
                        help="model the paired differences are taken against (default: clicked)")
    parser.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES),
                        help="click regimes to run (default: both)")
    parser.add_argument("--no-mmoe", action="store_true", help="leave out the ESMM (MMoE) line")
    parser.add_argument("--batch-size", type=int, default=TRAINING["batch_size"],
                        help="mini-batch size of every model (default 256)")
    parser.add_argument("--learning-rate", type=float, default=TRAINING["learning_rate"],
                        help="Adam learning rate of every model (default 1e-3)")
    parser.add_argument("--patience", type=int, default=TRAINING["n_iter_no_change"],
                        help="early-stopping patience in epochs, for every model (default 10)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on 2 shared cores, faster per epoch than 2)")
    parser.add_argument("--out", default="esmm_simulation.csv",
                        help="CSV of the summary table; the per-seed rows go to <out>_runs.csv, "
                             "rewritten after every seed")
    parser.add_argument("--from-runs", nargs="+", default=None, metavar="RUNS_CSV",
                        help="fit nothing: print the tables of earlier runs (their <out>_runs.csv "
                             "files, e.g. one per --rho run in parallel)")
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (1 if args.fast else 5)
    n_train = args.n_train or (20_000 if args.fast else 100_000)
    n_test = args.n_test or (10_000 if args.fast else 50_000)
    chosen = {SHORT_NAMES[m] for m in args.models}
    models = [m for m in MODELS if m in chosen and not (args.no_mmoe and "MMoE" in m)]
    reference = SHORT_NAMES[args.reference]
    if not all(-1 < rho < 1 for rho in args.rho):
        parser.error("--rho must be in (-1, 1)")

    start = time.perf_counter()
    if args.from_runs:
        runs = pd.concat([pd.read_csv(f) for f in args.from_runs]).to_dict("records")
        models = [m for m in MODELS if m in {r["model"] for r in runs}]
        return _report(runs, models, reference, args, start, data={})

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    runs, data = [], {}
    cells = [(rho, r, regime, mean_ctr) for rho in args.rho
             for r, (regime, mean_ctr) in enumerate(REGIMES.items()) if regime in args.regimes]
    try:
        for rho, r, regime, mean_ctr in cells:
            for seed in range(n_seeds):
                rng = np.random.default_rng([seed, r])
                train = simulate(n_train, mean_ctr, rng, rho)
                test = simulate(n_test, mean_ctr, rng, rho)
                if seed == 0:
                    _describe(data, train, regime, rho, n_train)
                runs.append(dict(_reference(test), rho=rho, regime=regime, seed=seed))
                training = dict(batch_size=args.batch_size, learning_rate=args.learning_rate)
                for name, model in _models(seed, args.patience, **training).items():
                    if name not in models:
                        continue
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        row = _evaluate(model, name, train, test)
                    row["warnings"] = len(caught)
                    runs.append(dict(row, rho=rho, regime=regime, seed=seed))
                # Written after every seed, so that an interrupted run keeps its
                # finished seeds (print them with --from-runs).
                pd.DataFrame(runs).to_csv(_runs_path(args.out), index=False)
                print(f"  rho={rho} {regime} seed {seed} done ({time.perf_counter() - start:.0f} s)",
                      flush=True)
    finally:
        torch.set_num_threads(threads)
    return _report(runs, models, reference, args, start, data)


def _report(runs, models, reference, args, start, data):
    """Print the tables, write the CSVs; the result of ``main``."""
    frame = pd.DataFrame(runs)
    print(f"\npCVR on all test impressions, mean ± std over {frame['seed'].nunique()} seed(s), "
          f"patience={args.patience}")
    print("(AUC all (cf): against the counterfactual conversion of every impression; "
          "AUC clicked: against observed conversions on clicked rows; "
          "ECE: 10 equal-count bins, against the true pCVR)")
    print(_table(runs, CVR_COLUMNS, ["true pCVR (reference)", *models]))
    print("\nESMM's click and joint outputs, against the true pCTR and pCTR * pCVR:")
    print(_table(runs, ESMM_COLUMNS, [m for m in models if m.startswith(("ESMM", "IPS", "DR"))]))
    pairs = paired(runs, reference)
    print(f"\nPaired differences, model - {reference} (same data and seed), mean ± std "
          "(seeds where the model is better; abs_bias: |mean pCVR - mean true pCVR|):")
    print(_paired_text(pairs))
    n_warned = sum(r.get("warnings", 0) for r in runs)
    if n_warned:
        print(f"\n{n_warned} warning(s) during fits (e.g. max_epochs reached)")

    summary = summarize(runs)
    summary.to_csv(args.out, index=False)
    stem = str(Path(args.out).with_suffix(""))
    pd.DataFrame(runs).to_csv(_runs_path(args.out), index=False)
    pairs.to_csv(stem + "_paired.csv", index=False)
    print(f"\nsummary written to {args.out}, per-seed rows to {stem}_runs.csv, paired "
          f"differences to {stem}_paired.csv; done in {time.perf_counter() - start:.1f} s")
    return dict(runs=runs, summary=summary, paired=pairs, data=data)


def _runs_path(out):
    """``<out>_runs.csv``: the per-seed rows."""
    return str(Path(out).with_suffix("")) + "_runs.csv"


def _describe(data, train, regime, rho, n_train):
    """Record and print the first seed's data of a (rho, regime) cell."""
    clicked = train["click"]
    d = dict(
        ctr=clicked.mean(), clicks=int(clicked.sum()),
        conversions=int(np.nansum(train["Y"][:, 1])),
        cvr_all=train["p_cvr"].mean(), cvr_clicked=train["p_cvr"][clicked].mean(),
    )
    data.setdefault(regime, d)  # the first rho's
    print(f"rho={rho} {regime}: {n_train} training impressions (seed 0): click rate "
          f"{d['ctr']:.3f}, {d['clicks']} clicks, {d['conversions']} conversions; mean true "
          f"pCVR {d['cvr_all']:.3f} on all impressions vs {d['cvr_clicked']:.3f} on clicked "
          "ones (selection shift)", flush=True)


if __name__ == "__main__":
    main()
