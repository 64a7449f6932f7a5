"""Plots of fitted estimators (needs matplotlib: ``pip install "sklearn-mmoe[plot]"``)."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .experiments._plotting import new_figure

__all__ = ["plot_learning_curves"]


def plot_learning_curves(estimator, *, task_names=None, figure=None):
    """Training and validation loss of each task over the epochs, one panel per task.

    Parameters
    ----------
    estimator : fitted estimator of this package
        Reads ``task_loss_curve_`` and, after a fit with early stopping,
        ``validation_task_loss_curve_`` and ``best_epoch_`` (a dotted line
        marks the epoch whose weights were kept).
    task_names : list of str, default=None
        Panel titles (default: "task 0", "task 1", ...).
    figure : matplotlib.figure.Figure, default=None
        Figure to draw in (default: a new one, without pyplot).

    Returns
    -------
    figure : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe import MMoEClassifier
    >>> from sklearn_mmoe.plotting import plot_learning_curves
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(200, 4)
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    >>> model = MMoEClassifier(n_experts=2, early_stopping=True, max_epochs=5,
    ...                        random_state=0).fit(X, Y)
    >>> fig = plot_learning_curves(model, task_names=["a", "b"])
    >>> len(fig.axes)
    2
    """
    check_is_fitted(estimator, "task_loss_curve_")
    train = np.asarray(estimator.task_loss_curve_)
    valid = getattr(estimator, "validation_task_loss_curve_", None)
    n_tasks = train.shape[1]
    names = list(task_names) if task_names is not None else [f"task {t}" for t in range(n_tasks)]
    if len(names) != n_tasks:
        raise ValueError(f"task_names must have {n_tasks} names, got {len(names)}.")
    figure = figure if figure is not None else new_figure(figsize=(4 * n_tasks, 3.2))
    axes = figure.subplots(1, n_tasks, squeeze=False)[0]
    epochs = np.arange(1, train.shape[0] + 1)
    for t, ax in enumerate(axes):
        ax.plot(epochs, train[:, t], label="training")
        if valid is not None and len(valid):
            ax.plot(epochs[: len(valid)], np.asarray(valid)[:, t], label="validation")
            best = getattr(estimator, "best_epoch_", None)
            if best is not None:
                ax.axvline(best, linestyle=":", color="grey", label=f"kept (epoch {best})")
        ax.set_title(names[t])
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
    figure.tight_layout()
    return figure
