"""Quickstart: a multi-task classifier with masked labels, in a Pipeline.

A recommender-style toy problem made on the spot: each row is an impression
with a few numeric and categorical features. Task 1, ``click``, is observed on
every row; task 2, ``purchase``, only exists for clicked impressions (NaN
elsewhere: those rows are outside that task's sample space and are left out of
its loss and its score).

The script fits ``MMoEClassifier`` in a ``Pipeline`` with a
``ColumnTransformer``, scores it per task with the masked metrics, tunes the
number of experts with ``GridSearchCV(cv=KFold(...))`` and a masked scorer,
and checks that a pickled model predicts the same.

Run: ``python examples/quickstart.py`` (about a minute on 2 CPU cores;
``--fast`` for a few seconds).
"""

import argparse
import pickle
import time

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_mmoe import MMoEClassifier
from sklearn_mmoe.metrics import make_multitask_scorer, masked_roc_auc_score


def make_impressions(n_samples, random_state=0):
    """Impressions, their labels (purchase on clicks only) and true probabilities."""
    rng = np.random.RandomState(random_state)
    X = pd.DataFrame(
        {
            "price": rng.lognormal(3, 0.6, n_samples),
            "user_activity": rng.gamma(2.0, 1.0, n_samples),
            "position": rng.randint(1, 11, n_samples),
            "category": rng.choice(["books", "games", "garden", "music", "toys"], n_samples),
            "device": rng.choice(["mobile", "desktop", "tablet"], n_samples, p=[0.6, 0.3, 0.1]),
        }
    )
    affinity = X["category"].map({"books": 0.4, "games": 0.9, "garden": -0.6, "music": 0.1, "toys": 0.5})
    click_logit = (
        -1.0 + 0.6 * np.log1p(X["user_activity"]) - 0.15 * X["position"] + affinity
        + 0.3 * (X["device"] == "desktop") + rng.normal(0, 0.5, n_samples)
    )
    buy_logit = (
        0.5 - 0.9 * (np.log(X["price"]) - 3) + 0.8 * affinity
        + 0.5 * (X["device"] == "desktop") + rng.normal(0, 0.5, n_samples)
    )
    # The noise terms above are unobserved: even the true model is uncertain.
    p_click, p_buy = 1 / (1 + np.exp(-click_logit)), 1 / (1 + np.exp(-buy_logit))
    click = rng.uniform(size=n_samples) < p_click
    purchase = rng.uniform(size=n_samples) < p_buy
    Y = np.column_stack([click, purchase]).astype(float)
    Y[~click, 1] = np.nan  # no purchase label without a click
    return X, Y, np.column_stack([p_click, p_buy])


def main(argv=None):
    parser = argparse.ArgumentParser(description="sklearn-mmoe quickstart")
    parser.add_argument("--fast", action="store_true", help="small data, for a smoke test")
    args = parser.parse_args(argv)
    n = 4000 if args.fast else 40000
    start = time.perf_counter()

    X, Y, P = make_impressions(n)
    X_train, X_test, Y_train, Y_test, _, P_test = train_test_split(X, Y, P, test_size=0.25, random_state=0)
    ceiling = masked_roc_auc_score(Y_test, [P_test[:, 0], P_test[:, 1]], multioutput="raw_values")
    print(f"{n} impressions: click rate {np.mean(Y[:, 0]):.3f}, purchase label on "
          f"{np.mean(~np.isnan(Y[:, 1])):.1%} of rows, purchase rate among clicks "
          f"{np.nanmean(Y[:, 1]):.3f}")

    pre = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["category", "device"]),
        (StandardScaler(), ["price", "user_activity", "position"]),
    )
    model = make_pipeline(
        pre,
        MMoEClassifier(
            n_experts=4, expert_hidden_sizes=(32,), early_stopping=True, random_state=0,
            # simulated data: smooth in its numbers, where the scores alone do best
            # (the default picks periodic embeddings for real data of this size)
            numeric_encoding="quantile",
        ),
    )
    model.fit(X_train, Y_train)
    proba = model.predict_proba(X_test)  # one (n, 2) array per task
    auc = masked_roc_auc_score(Y_test, proba, multioutput="raw_values")
    mmoe = model[-1]
    print(f"MMoE: {mmoe.n_iter_} epochs, test ROC AUC click {auc[0]:.3f}, purchase "
          f"{auc[1]:.3f} (purchase scored on clicked rows only), mean accuracy "
          f"{model.score(X_test, Y_test):.3f}")
    print(f"(the generating probabilities themselves reach ROC AUC click {ceiling[0]:.3f}, "
          f"purchase {ceiling[1]:.3f}: the labels are noisy by construction)")

    # Stratified splitters reject NaN targets: use KFold with masked labels.
    search = GridSearchCV(
        model,
        {"mmoeclassifier__n_experts": [2, 4, 8]},
        cv=KFold(3, shuffle=True, random_state=0),
        scoring=make_multitask_scorer("roc_auc", multioutput="raw_values", task_names=["click", "purchase"]),
        refit="mean",
    )
    search.fit(X_train, Y_train)
    table = pd.DataFrame(search.cv_results_)[
        ["param_mmoeclassifier__n_experts", "mean_test_click", "mean_test_purchase", "mean_test_mean"]
    ]
    print("Grid search (3-fold CV ROC AUC):")
    print(table.round(4).to_string(index=False))
    best = search.best_estimator_
    print(f"best n_experts={search.best_params_['mmoeclassifier__n_experts']}, test mean ROC AUC "
          f"{masked_roc_auc_score(Y_test, best.predict_proba(X_test)):.4f}")

    restored = pickle.loads(pickle.dumps(best))
    same = all(np.array_equal(a, b) for a, b in zip(best.predict_proba(X_test), restored.predict_proba(X_test)))
    print(f"pickled model predicts identically: {same}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return auc


if __name__ == "__main__":
    main()
