"""One rank of the data-parallel training checks of tests/test_distributed.py.

Run by ``torchrun --standalone --nproc_per_node=2 distributed_worker.py OUT``
(or any launcher that sets the torch.distributed environment): every rank
runs the same scenarios and saves what it ended with to ``OUT/rank{r}.pt``;
the test compares the ranks with each other and with one process.
"""

import sys
import warnings

import numpy as np
import torch
import torch.distributed as dist


def scenarios():
    """``name -> (make_estimator, rows of rank r -> (X, y), method)``, also run in one process."""
    from sklearn_mmoe import (
        ESMMClassifier,
        L2ConstrainedClassifier,
        MMoEClassifier,
        MultiTaskEstimator,
    )

    def masked(seed, n):
        rng = np.random.RandomState(seed)
        X = rng.normal(size=(n, 6)).astype(np.float32)
        y = np.c_[X[:, 0] + X[:, 1] > 0, X[:, 2] - X[:, 3] > 0.3].astype(float)
        y[rng.rand(n) < 0.5, 1] = np.nan  # task 1 observed on about half the rows
        return X, y

    def mixed(seed, n):
        X, y = masked(seed, n)
        y[:, 1] = 3 * X[:, 2] + 5 + 0.1 * np.random.RandomState(seed).normal(size=n)
        y[np.random.RandomState(seed + 1).rand(n) < 0.4, 1] = np.nan
        return X, y

    def clicks(seed, n):
        rng = np.random.RandomState(seed)
        X = rng.normal(size=(n, 5)).astype(np.float32)
        click = (X[:, 0] + rng.normal(size=n) > 0.5).astype(float)
        buy = np.where(click == 1, (X[:, 1] + rng.normal(size=n) > 0).astype(float), np.nan)
        return X, np.c_[click, buy]

    same = lambda data, n: (lambda rank: data(0, n))  # noqa: E731  fit: every rank the same rows
    return {
        # masks, top-k gates, 3 epochs
        "fit": (lambda: MMoEClassifier(max_epochs=3, batch_size=64, top_k=1, early_stopping=False,
                                       random_state=0), same(masked, 500), "fit"),
        # early stopping on the validation AUC; the validation rows split 31/30 over the ranks
        "early_stopping": (lambda: MMoEClassifier(max_epochs=40, batch_size=128, early_stopping=True,
                                                  scoring="roc_auc", n_iter_no_change=3,
                                                  validation_fraction=0.1, random_state=1),
                           same(masked, 610), "fit"),
        # a penalty's second backward pass; learned loss weights (the loss's own parameters)
        "penalty_uncertainty": (lambda: L2ConstrainedClassifier(max_epochs=3, batch_size=50,
                                                                loss_weighting="uncertainty",
                                                                early_stopping=False, random_state=2),
                                same(masked, 300), "fit"),
        # a conditional task with the doubly robust objective (an imputation head)
        "esmm_dr": (lambda: ESMMClassifier(cvr_objective="dr", max_epochs=3, batch_size=100,
                                           early_stopping=False, random_state=3),
                    same(clicks, 400), "fit"),
        # partial_fit: each rank its own rows (as many as it has), set up from rank 0's
        "partial_fit": (lambda: MultiTaskEstimator(task_types=["binary", "regression"], batch_size=64,
                                                   loss_weighting="dwa", random_state=4),
                        lambda rank: mixed(10 + rank, 300 + 170 * rank), "partial_fit"),
    }


def count_training_rows():
    """A list whose first item counts the rows the training steps of this process see."""
    from sklearn_mmoe import _training

    seen = [0]
    step = _training._TrainingNet.train_step_single

    def counting(self, batch, **fit_params):
        seen[0] += len(batch[0])
        return step(self, batch, **fit_params)

    _training._TrainingNet.train_step_single = counting
    return seen


def parquet(folder):
    """partial_fit over this rank's share of Parquet files of uneven sizes (iter_parquet)."""
    from sklearn_mmoe import MMoEClassifier
    from sklearn_mmoe.datasets import iter_parquet

    model = MMoEClassifier(batch_size=64, random_state=5)
    calls = rows = 0
    for epoch in range(2):
        for X, Y in iter_parquet(folder, ["y0", "y1"], batch_rows=100, random_state=epoch):
            model.partial_fit(X, Y, classes=[[0, 1], [0, 1]])
            calls += 1
            rows += len(X)
    return {
        "state": {k: v.clone() for k, v in model.net_.module_.state_dict().items()},
        "loss_curve": list(model.loss_curve_), "validation_loss_curve": [], "calls": calls,
        "rows": rows,
    }


def main(out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    warnings.simplefilter("ignore")
    results = {}
    seen = count_training_rows()
    for name, (make, rows, method) in scenarios().items():
        X, y = rows(rank)
        model = make()
        seen[0] = 0
        for _ in range(8 if method == "partial_fit" else 1):
            getattr(model, method)(X, y)
        results[name] = {
            "state": {k: v.clone() for k, v in model.net_.module_.state_dict().items()},
            "loss_curve": list(model.loss_curve_),
            "validation_loss_curve": list(getattr(model, "validation_loss_curve_", [])),
            "scales": [task.scale for task in model._tasks],
            "held_out": model.predict(rows(99)[0]),
            "rows_trained": seen[0],
        }
    # errors: a loss weighting that cannot run data-parallel; fit on different rows
    from sklearn_mmoe import MMoEClassifier

    X, y = scenarios()["fit"][1](rank)
    errors = {}
    for name, model, data in (
        ("pcgrad", MMoEClassifier(max_epochs=1, loss_weighting="pcgrad"), (X, y)),
        ("rows", MMoEClassifier(max_epochs=1), (X[: 400 + rank], y[: 400 + rank])),
    ):
        try:
            model.fit(*data)
        except ValueError as exc:
            errors[name] = str(exc)
    results["errors"] = errors
    results["parquet"] = parquet(f"{out}/parquet")
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
