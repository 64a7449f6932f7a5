"""Masked multi-task metrics and scorers.

Multi-task estimators are fitted on a target ``y`` of shape ``(n_samples,)``
(one task) or ``(n_samples, n_tasks)``. A missing label (``NaN``, or ``None``
/ ``pd.NA`` in object and nullable columns) means that the row is outside
that task's sample space. Every metric in this module therefore scores each
task **on its observed rows only**: for task ``t`` it drops the rows where
``y_true[:, t]`` is missing (together with their sample weights), applies the
ordinary scikit-learn metric to what is left, and then aggregates the
per-task scores according to ``multioutput``:

- ``"uniform_average"`` (default): the mean of the per-task scores (a float);
- ``"raw_values"``: an array of shape ``(n_tasks,)`` with one score per task;
- an array-like of ``n_tasks`` non-negative weights: the weighted mean (tasks
  with weight zero are not evaluated at all).

What is behind the mask never matters: predictions on rows where a task's
label is missing may hold anything, including ``NaN``. Labels may be of any
type (integers, floats, strings), and different tasks may have different
label types.

Probability metrics (:func:`masked_roc_auc_score`,
:func:`masked_average_precision_score`, :func:`masked_log_loss`) take what the
estimators' ``predict_proba`` returns: for one task an array of shape
``(n_samples, n_classes)``, for ``n_tasks`` tasks a list of such arrays, one
per task, with columns in the order of ``classes_[t]``.

:func:`make_multitask_scorer` turns any of these metrics into a scorer for
``GridSearchCV``, ``cross_validate`` or ``cross_val_score``. For probability
metrics it reads ``classes`` from the estimator's ``classes_``. It exists
because scikit-learn's built-in scorers (``scoring="roc_auc"`` etc.) do not
handle masked multi-task targets: they validate ``y_true`` with
``type_of_target``, which rejects ``NaN``; they cannot read the list of
probability arrays when the labels of a 2-D ``y`` are strings; and for a 2-D
numeric ``y`` they compute something else (``"accuracy"`` is the subset
accuracy over all tasks at once). In a search, a failing scorer only yields a
``nan`` score and a warning (``error_score=np.nan``).

Cross-validation with masked labels
-----------------------------------
scikit-learn's stratified splitters (an integer ``cv`` for a classifier,
``StratifiedKFold``, ``train_test_split(..., stratify=y)``) call
``type_of_target`` on ``y`` and therefore reject targets containing ``NaN``.
With masked labels pass an unstratified splitter explicitly, e.g.
``cv=KFold(n_splits, shuffle=True, random_state=...)`` or ``ShuffleSplit``,
together with a scorer from :func:`make_multitask_scorer`:

.. code-block:: python

    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn_mmoe.metrics import make_multitask_scorer

    search = GridSearchCV(
        estimator,  # a multi-task classifier, possibly inside a Pipeline
        param_grid={"lr": [1e-3, 1e-2]},
        cv=KFold(5, shuffle=True, random_state=0),
        # one column per task in cv_results_, select on their mean
        scoring=make_multitask_scorer(
            "roc_auc", multioutput="raw_values", task_names=["click", "buy"]
        ),
        refit="mean",
    )
    search.fit(X, Y)  # Y: (n_samples, 2), NaN where a label is missing
    search.cv_results_["mean_test_click"], search.best_score_

Use ``scoring=make_multitask_scorer("roc_auc")`` for a single averaged score
(then ``refit=True``), or ``task="buy"`` / ``task=1`` to tune on one task.
"""

import numbers
from collections import namedtuple

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.preprocessing import label_binarize

from ._labels import as_labels as _as_labels
from ._labels import observed as _observed_mask

__all__ = [
    "make_multitask_scorer",
    "masked_accuracy_score",
    "masked_average_precision_score",
    "masked_balanced_accuracy_score",
    "masked_log_loss",
    "masked_mean_absolute_error",
    "masked_mean_squared_error",
    "masked_r2_score",
    "masked_roc_auc_score",
    "masked_root_mean_squared_error",
]


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------


def _columns(y, name):
    """Split ``y`` of shape (n,) or (n, T) into a list of T 1-D arrays."""
    if isinstance(y, pd.DataFrame):
        return [y.iloc[:, t].to_numpy() for t in range(y.shape[1])]
    if isinstance(y, (pd.Series, pd.Index)):
        return [y.to_numpy()]
    try:
        arr = np.asarray(y)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be array-like of shape (n_samples,) or "
                         f"(n_samples, n_tasks): {exc}") from exc
    if arr.ndim == 1:
        return [arr]
    if arr.ndim == 2:
        if arr.shape[1] == 0:
            raise ValueError(f"{name} has no task (shape {arr.shape}).")
        return [arr[:, t] for t in range(arr.shape[1])]
    raise ValueError(
        f"{name} must have shape (n_samples,) or (n_samples, n_tasks), "
        f"got an array with {arr.ndim} dimension(s)."
    )


def _check_finite(values, name, task):
    if values.dtype.kind in "fc" and np.isinf(values).any():
        raise ValueError(f"{name} contains infinity (task {task}).")


def _y_true_columns(y_true):
    cols = _columns(y_true, "y_true")
    n = len(cols[0])
    return cols, n


def _observed(col, task):
    """Mask of observed rows and the normalized observed labels of a task."""
    observed = _observed_mask(col)
    if not observed.any():
        raise ValueError(
            f"y_true: task {task} has no observed label (all values are "
            "missing), so its metric is undefined."
        )
    labels = _as_labels(col[observed])
    _check_finite(labels, "y_true", task)
    return observed, labels


def _check_sample_weight(sample_weight, n, n_tasks=None):
    """Validated weights of shape (n,) (per row) or (n, n_tasks) (per row and task).

    None stays None. The one check of ``sample_weight`` for the metrics and
    the estimators (``fit``, ``score``).
    """
    if sample_weight is None:
        return None
    try:
        sw = np.asarray(sample_weight, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must be numeric: {exc}") from exc
    if sw.shape != (n,) and (n_tasks is None or sw.shape != (n, n_tasks)):
        shapes = f"({n},)" if n_tasks is None else f"({n},) or ({n}, {n_tasks})"
        raise ValueError(
            f"sample_weight must have shape {shapes} (a weight per row, or per row "
            f"and task), got {sw.shape}."
        )
    if not np.isfinite(sw).all():
        raise ValueError("sample_weight contains NaN or infinity.")
    if (sw < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    return sw


def _scored_labels(y_true, mask):
    """``y_true`` with the observed entries outside ``mask`` made missing.

    ``mask`` is an estimator's ``label_mask(y_true)``: a conditional task's
    entry where its parent is not positive is no label of that task. Returns
    ``y_true`` itself when the mask leaves out no observed entry, else an
    object array with None there.
    """
    Y = np.array(y_true, dtype=object)
    drop = ~np.asarray(mask, dtype=bool) & _observed_mask(Y)
    if not drop.any():
        return y_true
    Y[drop] = None
    return Y


def _task_sample_weight(sw, t):
    """Task ``t``'s weights from validated ``sw`` (None, per row, or per row and task)."""
    return sw if sw is None or sw.ndim == 1 else sw[:, t]


def _check_multioutput(multioutput, n_tasks):
    """Return "raw_values", "uniform_average" or an array of task weights."""
    if isinstance(multioutput, str):
        if multioutput not in ("raw_values", "uniform_average"):
            raise ValueError(
                "multioutput must be 'raw_values', 'uniform_average' or an "
                f"array-like of task weights, got {multioutput!r}."
            )
        return multioutput
    try:
        weights = np.asarray(multioutput, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "multioutput must be 'raw_values', 'uniform_average' or an "
            f"array-like of task weights, got {multioutput!r}."
        ) from exc
    if weights.ndim != 1 or (n_tasks is not None and weights.shape[0] != n_tasks):
        expected = "n_tasks" if n_tasks is None else n_tasks
        raise ValueError(
            f"multioutput weights must have shape ({expected},), one weight "
            f"per task, got shape {weights.shape}."
        )
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("multioutput weights must be finite and non-negative.")
    if weights.sum() <= 0:
        raise ValueError("multioutput weights must not all be zero.")
    return weights


def _pred_label_columns(y_pred, n_tasks, n_samples):
    cols = _columns(y_pred, "y_pred")
    if len(cols) != n_tasks or len(cols[0]) != n_samples:
        shape = (len(cols[0]),) if len(cols) == 1 else (len(cols[0]), len(cols))
        raise ValueError(
            f"y_pred must have the shape of y_true ({n_samples} samples, "
            f"{n_tasks} task(s)), got shape {shape}."
        )
    return cols


def _is_array_container(obj):
    return isinstance(obj, (np.ndarray, pd.DataFrame, pd.Series))


def _proba_columns(y_pred, n_tasks, n_samples):
    """Split probability predictions into one array per task."""
    if (
        isinstance(y_pred, (list, tuple))
        and len(y_pred) > 0
        and all(_is_array_container(p) for p in y_pred)
    ):
        probas = list(y_pred)
        if len(probas) != n_tasks:
            raise ValueError(
                f"y_pred is a list of {len(probas)} arrays but y_true has "
                f"{n_tasks} task(s); pass one probability array per task."
            )
    else:
        arr = np.asarray(y_pred)
        if arr.ndim in (1, 2) and n_tasks == 1:
            probas = [arr]
        elif arr.ndim == 2 and arr.shape[1] == n_tasks:
            # (n_samples, n_tasks) positive-class scores of binary tasks
            probas = [arr[:, t] for t in range(n_tasks)]
        elif arr.ndim == 3 and arr.shape[0] == n_tasks:
            probas = list(arr)
        else:
            raise ValueError(
                f"y_pred must be what predict_proba returns: for {n_tasks} "
                f"task(s) a list of {n_tasks} arrays of shape (n_samples, "
                "n_classes) or (n_samples,), or an (n_samples, n_tasks) array "
                f"of positive-class scores; got an array of shape {arr.shape}."
            )
    out = []
    for t, p in enumerate(probas):
        try:
            p = np.asarray(p, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y_pred for task {t} must be numeric: {exc}") from exc
        if p.ndim not in (1, 2) or p.shape[0] != n_samples:
            raise ValueError(
                f"y_pred for task {t} must have shape ({n_samples}, n_classes) "
                f"or ({n_samples},), got {p.shape}."
            )
        out.append(p)
    return out


def _classes_per_task(classes, n_tasks):
    """Return a list of n_tasks label arrays (or None entries)."""
    if classes is None:
        return [None] * n_tasks
    if n_tasks == 1:
        if (
            isinstance(classes, (list, tuple))
            and len(classes) == 1
            and np.ndim(classes[0]) == 1
        ):
            classes = classes[0]
        per_task = [classes]
    else:
        if isinstance(classes, np.ndarray) and classes.ndim == 2:
            classes = list(classes)
        if (
            not isinstance(classes, (list, tuple, np.ndarray))
            or len(classes) != n_tasks
        ):
            raise ValueError(
                f"classes must be a list of {n_tasks} label arrays, one per "
                "task (as in a fitted estimator's classes_)."
            )
        per_task = list(classes)
    out = []
    for t, c in enumerate(per_task):
        c = _as_labels(np.asarray(c))
        if c.ndim != 1:
            raise ValueError(
                f"classes for task {t} must be a 1-D array of labels, got "
                f"shape {c.shape}."
            )
        if len(np.unique(c)) != len(c):
            raise ValueError(f"classes for task {t} contains duplicate labels.")
        out.append(c)
    return out


# ---------------------------------------------------------------------------
# Per-task metrics
# ---------------------------------------------------------------------------


def _sw_kwargs(sample_weight):
    return {} if sample_weight is None else {"sample_weight": sample_weight}


def _binary_target(y, classes):
    """0/1 target of a binary task whose positive class is ``classes[1]``."""
    return (y == classes[1]).astype(int)


def _positive_scores(proba):
    return proba if proba.ndim == 1 else proba[:, 1]


def _sorted_proba(proba, classes):
    """Sort ``classes`` and permute the columns of ``proba`` to match."""
    order = np.argsort(classes, kind="stable")
    classes = classes[order]
    if proba.ndim == 1:  # binary: score of the original classes[1]
        if order[1] != 1:
            proba = 1.0 - proba
        return proba, classes
    return proba[:, order], classes


def _task_accuracy(y, pred, sample_weight, classes, **kwargs):
    return accuracy_score(y, pred, **_sw_kwargs(sample_weight), **kwargs)


def _task_balanced_accuracy(y, pred, sample_weight, classes, **kwargs):
    return balanced_accuracy_score(y, pred, **_sw_kwargs(sample_weight), **kwargs)


def _task_roc_auc(y, proba, sample_weight, classes, **kwargs):
    if len(classes) == 2:
        return roc_auc_score(
            _binary_target(y, classes),
            _positive_scores(proba),
            **_sw_kwargs(sample_weight),
            **kwargs,
        )
    proba, classes = _sorted_proba(proba, classes)
    kwargs = {"multi_class": "ovr", **kwargs}
    return roc_auc_score(
        y, proba, labels=classes, **_sw_kwargs(sample_weight), **kwargs
    )


def _task_average_precision(y, proba, sample_weight, classes, **kwargs):
    if len(classes) == 2:
        return average_precision_score(
            _binary_target(y, classes),
            _positive_scores(proba),
            **_sw_kwargs(sample_weight),
            **kwargs,
        )
    proba, classes = _sorted_proba(proba, classes)
    kwargs = {"average": "macro", **kwargs}
    return average_precision_score(
        label_binarize(y, classes=classes),
        proba,
        **_sw_kwargs(sample_weight),
        **kwargs,
    )


def _task_log_loss(y, proba, sample_weight, classes, **kwargs):
    proba, classes = _sorted_proba(proba, classes)
    return log_loss(y, proba, labels=classes, **_sw_kwargs(sample_weight), **kwargs)


def _task_r2(y, pred, sample_weight, classes, **kwargs):
    return r2_score(y, pred, **_sw_kwargs(sample_weight), **kwargs)


def _task_mse(y, pred, sample_weight, classes, **kwargs):
    return mean_squared_error(y, pred, **_sw_kwargs(sample_weight), **kwargs)


def _task_rmse(y, pred, sample_weight, classes, **kwargs):
    return root_mean_squared_error(y, pred, **_sw_kwargs(sample_weight), **kwargs)


def _task_mae(y, pred, sample_weight, classes, **kwargs):
    return mean_absolute_error(y, pred, **_sw_kwargs(sample_weight), **kwargs)


# kind: "label" (predicted labels), "proba" (predict_proba output) or
# "regression" (float predictions); the kind fixes the response method.
_Metric = namedtuple("_Metric", ["kind", "func"])

_METRICS = {
    "accuracy": _Metric("label", _task_accuracy),
    "balanced_accuracy": _Metric("label", _task_balanced_accuracy),
    "roc_auc": _Metric("proba", _task_roc_auc),
    "average_precision": _Metric("proba", _task_average_precision),
    "log_loss": _Metric("proba", _task_log_loss),
    "r2": _Metric("regression", _task_r2),
    "mean_squared_error": _Metric("regression", _task_mse),
    "root_mean_squared_error": _Metric("regression", _task_rmse),
    "mean_absolute_error": _Metric("regression", _task_mae),
}

_RESPONSE_METHOD = {
    "label": "predict",
    "regression": "predict",
    "proba": "predict_proba",
    "custom_predict": "predict",
    "custom_predict_proba": "predict_proba",
}


def _task_inputs(kind, t, observed, pred_col, classes_t, labels, classes_given):
    """Validate and select one task's predictions on its observed rows."""
    if kind == "proba" or kind == "custom_predict_proba":
        proba = pred_col[observed]
        if np.isnan(proba).any():
            raise ValueError(
                f"y_pred contains missing values (NaN) on rows where y_true "
                f"is observed (task {t})."
            )
        if kind == "custom_predict_proba":
            return labels, proba, None
        hint = "" if classes_given else (
            " classes were inferred from the observed labels of y_true; pass "
            "classes=... (e.g. the estimator's classes_) to give the label of "
            "each probability column."
        )
        if len(classes_t) < 2:
            raise ValueError(
                f"classes for task {t} has {len(classes_t)} label(s); a "
                f"probability metric needs at least 2.{hint}"
            )
        if proba.ndim == 2 and proba.shape[1] == 1 and len(classes_t) == 2:
            proba = proba[:, 0]
        if proba.ndim == 1 and len(classes_t) != 2:
            raise ValueError(
                f"y_pred for task {t} is 1-D (positive-class scores), which "
                f"needs a binary task, but the task has {len(classes_t)} "
                f"classes.{hint}"
            )
        if proba.ndim == 2 and proba.shape[1] != len(classes_t):
            raise ValueError(
                f"y_pred for task {t} has {proba.shape[1]} columns but classes "
                f"has {len(classes_t)} labels {classes_t.tolist()}.{hint}"
            )
        unknown = ~np.isin(labels, classes_t)
        if unknown.any():
            raise ValueError(
                f"y_true contains labels not in classes for task {t}: "
                f"{np.unique(labels[unknown]).tolist()} not in "
                f"{classes_t.tolist()}."
            )
        return labels, proba, classes_t

    pred = pred_col[observed]
    if np.asarray(pd.isna(pred), dtype=bool).any():
        raise ValueError(
            f"y_pred contains missing values on rows where y_true is observed "
            f"(task {t})."
        )
    if kind == "regression":
        try:
            labels = np.asarray(labels, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"y_true must be numeric for a regression metric (task {t})."
            ) from exc
        try:
            pred = np.asarray(pred, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"y_pred must be numeric for a regression metric (task {t})."
            ) from exc
        _check_finite(pred, "y_pred", t)
        return labels, pred, None
    return labels, _as_labels(pred), None


def _per_task_scores(
    y_true_cols, y_pred, kind, func, *, sample_weight, classes, tasks, kwargs
):
    """Score the tasks listed in ``tasks`` on their observed rows."""
    n_tasks, n_samples = len(y_true_cols), len(y_true_cols[0])
    sw = _check_sample_weight(sample_weight, n_samples, n_tasks)
    if kind in ("proba", "custom_predict_proba"):
        pred_cols = _proba_columns(y_pred, n_tasks, n_samples)
    else:
        pred_cols = _pred_label_columns(y_pred, n_tasks, n_samples)
    classes_given = classes is not None
    classes_list = (
        _classes_per_task(classes, n_tasks) if kind == "proba" else [None] * n_tasks
    )
    scores = np.empty(len(tasks), dtype=float)
    for i, t in enumerate(tasks):
        observed, labels = _observed(y_true_cols[t], t)
        classes_t = classes_list[t]
        if kind == "proba" and classes_t is None:
            classes_t = np.unique(labels)
        y_t, pred_t, classes_t = _task_inputs(
            kind, t, observed, pred_cols[t], classes_t, labels, classes_given
        )
        sw_t = _task_sample_weight(sw, t)
        sw_t = None if sw_t is None else sw_t[observed]
        scores[i] = func(y_t, pred_t, sw_t, classes_t, **kwargs)
    return scores


def _masked_metric(name, y_true, y_pred, *, sample_weight, multioutput, classes=None):
    """Shared implementation of the public masked metrics."""
    kind, func = _METRICS[name]
    cols, _ = _y_true_columns(y_true)
    n_tasks = len(cols)
    multioutput = _check_multioutput(multioutput, n_tasks)
    if isinstance(multioutput, np.ndarray):
        tasks = np.flatnonzero(multioutput > 0)
    else:
        tasks = np.arange(n_tasks)
    scores = _per_task_scores(
        cols, y_pred, kind, func, sample_weight=sample_weight, classes=classes,
        tasks=tasks, kwargs={},
    )
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return scores
        return float(np.mean(scores))
    return float(np.average(scores, weights=multioutput[tasks]))


# ---------------------------------------------------------------------------
# Public masked metrics
# ---------------------------------------------------------------------------

_SHARED_PARAMS = """
    sample_weight : array-like of shape (n_samples,) or (n_samples, n_tasks), \
default=None
        Non-negative sample weights, per row or (2-D) per row and task; each
        task uses the weights of its observed rows.

    multioutput : {"uniform_average", "raw_values"} or array-like of shape \
(n_tasks,), default="uniform_average"
        How to aggregate the per-task scores: their mean, all of them (an
        array of shape ``(n_tasks,)``, also for a single task), or their
        average weighted by the given non-negative task weights (tasks with
        weight zero are not evaluated)."""


def masked_accuracy_score(y_true, y_pred, *, sample_weight=None,
                          multioutput="uniform_average"):
    """Accuracy of each task on its observed rows, aggregated over tasks.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True labels; ``NaN``, ``None`` or ``pd.NA`` marks a missing label.

    y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Predicted labels, as returned by ``predict``. Values on rows where
        the task's label is missing are ignored.
    {shared}

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)
        Per-task :func:`sklearn.metrics.accuracy_score`, aggregated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_accuracy_score
    >>> y_true = np.array([[0, "a"], [1, None], [1, "b"], [None, "b"]],
    ...                   dtype=object)
    >>> y_pred = np.array([[0, "a"], [0, "a"], [1, "a"], [1, "b"]],
    ...                   dtype=object)
    >>> masked_accuracy_score(y_true, y_pred, multioutput="raw_values")
    array([0.66666667, 0.66666667])
    """
    return _masked_metric("accuracy", y_true, y_pred,
                          sample_weight=sample_weight, multioutput=multioutput)


def masked_balanced_accuracy_score(y_true, y_pred, *, sample_weight=None,
                                   multioutput="uniform_average"):
    """Balanced accuracy of each task on its observed rows, aggregated.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True labels; ``NaN``, ``None`` or ``pd.NA`` marks a missing label.

    y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Predicted labels, as returned by ``predict``.
    {shared}

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)
        Per-task :func:`sklearn.metrics.balanced_accuracy_score`, aggregated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_balanced_accuracy_score
    >>> y_true = np.array([0, 0, 0, 1, np.nan])
    >>> y_pred = np.array([0, 0, 1, 1, 0])
    >>> round(masked_balanced_accuracy_score(y_true, y_pred), 4)
    0.8333
    """
    return _masked_metric("balanced_accuracy", y_true, y_pred,
                          sample_weight=sample_weight, multioutput=multioutput)


def masked_roc_auc_score(y_true, y_pred, *, sample_weight=None,
                         multioutput="uniform_average", classes=None):
    """ROC AUC of each task on its observed rows, aggregated over tasks.

    A binary task uses ``classes[1]`` as the positive class and the score
    column ``y_pred[:, 1]`` (or a 1-D ``y_pred`` of positive-class scores); a
    multiclass task uses the one-vs-rest macro average
    (``roc_auc_score(..., multi_class="ovr", labels=classes)``).

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True labels; ``NaN``, ``None`` or ``pd.NA`` marks a missing label.

    y_pred : ndarray or list of ndarray
        What ``predict_proba`` returns: for one task an array of shape
        ``(n_samples, n_classes)`` (or ``(n_samples,)`` positive-class scores
        of a binary task); for ``n_tasks`` tasks a list of such arrays. An
        ``(n_samples, n_tasks)`` array of positive-class scores is accepted
        when every task is binary.
    {shared}

    classes : array-like or list of array-like, default=None
        Labels of the probability columns: an array for one task, a list of
        arrays for several tasks (a fitted estimator's ``classes_``). By
        default the sorted unique observed labels of each task.

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)
        Per-task ROC AUC, aggregated. As in scikit-learn, a task whose
        observed rows hold a single class scores ``nan`` (with an
        ``UndefinedMetricWarning``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_roc_auc_score
    >>> y_true = np.array([["no", "x"], ["yes", None], ["yes", "y"],
    ...                    ["no", "z"], [None, "y"]], dtype=object)
    >>> proba = [np.array([[.8, .2], [.3, .7], [.6, .4], [.7, .3], [.5, .5]]),
    ...          np.array([[.6, .3, .1], [.3, .3, .4], [.2, .7, .1],
    ...                    [.1, .2, .7], [.3, .4, .3]])]
    >>> masked_roc_auc_score(y_true, proba, multioutput="raw_values")
    array([1., 1.])
    """
    return _masked_metric("roc_auc", y_true, y_pred, sample_weight=sample_weight,
                          multioutput=multioutput, classes=classes)


def masked_average_precision_score(y_true, y_pred, *, sample_weight=None,
                                   multioutput="uniform_average", classes=None):
    """Average precision of each task on its observed rows, aggregated.

    A binary task uses ``classes[1]`` as the positive class and the score
    column ``y_pred[:, 1]``; a multiclass task uses the one-vs-rest macro
    average over ``label_binarize(y, classes=classes)``.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True labels; ``NaN``, ``None`` or ``pd.NA`` marks a missing label.

    y_pred : ndarray or list of ndarray
        What ``predict_proba`` returns (see :func:`masked_roc_auc_score`).
    {shared}

    classes : array-like or list of array-like, default=None
        Labels of the probability columns (a fitted estimator's
        ``classes_``); by default the sorted unique observed labels.

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)
        Per-task :func:`sklearn.metrics.average_precision_score`, aggregated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_average_precision_score
    >>> y_true = np.array([0, 1, np.nan, 1, 0])
    >>> scores = np.array([0.1, 0.8, 0.9, 0.4, 0.6])
    >>> round(masked_average_precision_score(y_true, scores), 4)
    0.8333
    """
    return _masked_metric("average_precision", y_true, y_pred,
                          sample_weight=sample_weight, multioutput=multioutput,
                          classes=classes)


def masked_log_loss(y_true, y_pred, *, sample_weight=None,
                    multioutput="uniform_average", classes=None):
    """Log loss of each task on its observed rows, aggregated over tasks.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True labels; ``NaN``, ``None`` or ``pd.NA`` marks a missing label.

    y_pred : ndarray or list of ndarray
        What ``predict_proba`` returns (see :func:`masked_roc_auc_score`).
    {shared}

    classes : array-like or list of array-like, default=None
        Labels of the probability columns (a fitted estimator's
        ``classes_``), passed to :func:`sklearn.metrics.log_loss` as
        ``labels``; by default the sorted unique observed labels.

    Returns
    -------
    loss : float or ndarray of shape (n_tasks,)
        Per-task log loss (lower is better), aggregated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_log_loss
    >>> y_true = np.array(["a", None, "c"], dtype=object)
    >>> proba = np.array([[.5, .25, .25], [0., 0., 1.], [.25, .25, .5]])
    >>> round(masked_log_loss(y_true, proba, classes=["a", "b", "c"]), 4)
    0.6931
    """
    return _masked_metric("log_loss", y_true, y_pred, sample_weight=sample_weight,
                          multioutput=multioutput, classes=classes)


def masked_r2_score(y_true, y_pred, *, sample_weight=None,
                    multioutput="uniform_average"):
    """R^2 of each task on its observed rows, aggregated over tasks.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True targets; ``NaN``, ``None`` or ``pd.NA`` marks a missing target.

    y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Predicted targets.
    {shared}

    Returns
    -------
    score : float or ndarray of shape (n_tasks,)
        Per-task :func:`sklearn.metrics.r2_score`, aggregated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_r2_score
    >>> y_true = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 4.0]])
    >>> y_pred = np.array([[1.0, 2.0], [2.0, 100.0], [3.0, 5.0]])
    >>> masked_r2_score(y_true, y_pred, multioutput="raw_values")
    array([1. , 0.5])
    """
    return _masked_metric("r2", y_true, y_pred, sample_weight=sample_weight,
                          multioutput=multioutput)


def masked_mean_squared_error(y_true, y_pred, *, sample_weight=None,
                              multioutput="uniform_average"):
    """Mean squared error of each task on its observed rows, aggregated.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True targets; ``NaN``, ``None`` or ``pd.NA`` marks a missing target.

    y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Predicted targets.
    {shared}

    Returns
    -------
    loss : float or ndarray of shape (n_tasks,)
        Per-task :func:`sklearn.metrics.mean_squared_error`, aggregated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_mean_squared_error
    >>> y_true = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 4.0]])
    >>> y_pred = np.array([[1.0, 2.0], [2.0, 100.0], [3.0, 5.0]])
    >>> masked_mean_squared_error(y_true, y_pred, multioutput=[1, 3])
    0.375
    """
    return _masked_metric("mean_squared_error", y_true, y_pred,
                          sample_weight=sample_weight, multioutput=multioutput)


def masked_root_mean_squared_error(y_true, y_pred, *, sample_weight=None,
                                   multioutput="uniform_average"):
    """Root mean squared error of each task on its observed rows, aggregated.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True targets; ``NaN``, ``None`` or ``pd.NA`` marks a missing target.

    y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Predicted targets.
    {shared}

    Returns
    -------
    loss : float or ndarray of shape (n_tasks,)
        Per-task :func:`sklearn.metrics.root_mean_squared_error`, aggregated
        (the mean of the per-task RMSEs, as in scikit-learn).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_root_mean_squared_error
    >>> y_true = np.array([1.0, np.nan, 3.0, 5.0])
    >>> y_pred = np.array([2.0, 0.0, 4.0, 6.0])
    >>> masked_root_mean_squared_error(y_true, y_pred)
    1.0
    """
    return _masked_metric("root_mean_squared_error", y_true, y_pred,
                          sample_weight=sample_weight, multioutput=multioutput)


def masked_mean_absolute_error(y_true, y_pred, *, sample_weight=None,
                               multioutput="uniform_average"):
    """Mean absolute error of each task on its observed rows, aggregated.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, n_tasks)
        True targets; ``NaN``, ``None`` or ``pd.NA`` marks a missing target.

    y_pred : array-like of shape (n_samples,) or (n_samples, n_tasks)
        Predicted targets.
    {shared}

    Returns
    -------
    loss : float or ndarray of shape (n_tasks,)
        Per-task :func:`sklearn.metrics.mean_absolute_error`, aggregated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import masked_mean_absolute_error
    >>> y_true = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 4.0]])
    >>> y_pred = np.array([[1.5, 2.0], [2.0, 100.0], [3.0, 5.0]])
    >>> masked_mean_absolute_error(y_true, y_pred, multioutput="raw_values")
    array([0.16666667, 0.5       ])
    """
    return _masked_metric("mean_absolute_error", y_true, y_pred,
                          sample_weight=sample_weight, multioutput=multioutput)


_MASKED_FUNCTIONS = {
    masked_accuracy_score: "accuracy",
    masked_balanced_accuracy_score: "balanced_accuracy",
    masked_roc_auc_score: "roc_auc",
    masked_average_precision_score: "average_precision",
    masked_log_loss: "log_loss",
    masked_r2_score: "r2",
    masked_mean_squared_error: "mean_squared_error",
    masked_root_mean_squared_error: "root_mean_squared_error",
    masked_mean_absolute_error: "mean_absolute_error",
}

for _f in _MASKED_FUNCTIONS:
    _f.__doc__ = _f.__doc__.replace("    {shared}", _SHARED_PARAMS)
del _f


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------

# scorer name -> (metric name, sign)
_SCORER_NAMES = {
    "accuracy": ("accuracy", 1),
    "balanced_accuracy": ("balanced_accuracy", 1),
    "roc_auc": ("roc_auc", 1),
    "average_precision": ("average_precision", 1),
    "neg_log_loss": ("log_loss", -1),
    "r2": ("r2", 1),
    "neg_mean_squared_error": ("mean_squared_error", -1),
    "neg_root_mean_squared_error": ("root_mean_squared_error", -1),
    "neg_mean_absolute_error": ("mean_absolute_error", -1),
}


class _MultitaskScorer:
    """Scorer returned by :func:`make_multitask_scorer` (picklable)."""

    def __init__(self, metric, kind, sign, task, multioutput, task_names,
                 kwargs, label):
        self._metric = metric  # a key of _METRICS or a user callable
        self._kind = kind
        self._sign = sign
        self._task = task
        self._multioutput = multioutput
        self._task_names = task_names
        self._kwargs = kwargs
        self._label = label

    @property
    def _response_method(self):
        return _RESPONSE_METHOD[self._kind]

    def _func(self):
        if isinstance(self._metric, str):
            return _METRICS[self._metric].func
        return _CustomTaskMetric(self._metric)

    def _names(self, n_tasks):
        if self._task_names is None:
            return [f"task{t}" for t in range(n_tasks)]
        if len(self._task_names) != n_tasks:
            raise ValueError(
                f"task_names has {len(self._task_names)} names but y_true has "
                f"{n_tasks} task(s)."
            )
        return list(self._task_names)

    def __call__(self, estimator, X, y_true, sample_weight=None):
        """Score ``estimator`` on ``X`` against the masked ``y_true``.

        Parameters
        ----------
        estimator : object
            Fitted multi-task estimator (or Pipeline) with ``predict`` or
            ``predict_proba`` (and ``classes_`` for probability metrics).
        X : array-like
            Test inputs.
        y_true : array-like or DataFrame of shape (n_samples,) or \
(n_samples, n_tasks)
            True labels with missing entries.
        sample_weight : array-like of shape (n_samples,) or (n_samples, n_tasks), \
default=None
            Sample weights, per row or per row and task.

        Returns
        -------
        score : float or dict
            A float, or ``{task_name: score, ..., "mean": score}`` when the
            scorer was made with ``multioutput="raw_values"``.
        """
        cols, _ = _y_true_columns(y_true)
        n_tasks = len(cols)
        names = self._names(n_tasks)
        if self._task is not None:
            if isinstance(self._task, str):
                tasks = np.array([names.index(self._task)])
            else:
                if self._task >= n_tasks:
                    raise ValueError(
                        f"task={self._task} is out of range for y_true with "
                        f"{n_tasks} task(s)."
                    )
                tasks = np.array([self._task])
            weights = None
        else:
            weights = _check_multioutput(self._multioutput, n_tasks)
            if isinstance(weights, np.ndarray):
                tasks = np.flatnonzero(weights > 0)
            else:
                tasks = np.arange(n_tasks)

        # Each task is scored on the entries the estimator says are its labels
        # (label_mask): a conditional task (ESMM's conversion) where its parent
        # is positive, as the estimator's own score does, whether the user
        # coded the other rows as missing or as 0. Estimators without
        # label_mask: every observed entry.
        final = estimator[-1] if hasattr(estimator, "steps") else estimator
        if hasattr(final, "label_mask"):
            y_true = _scored_labels(y_true, final.label_mask(y_true))
            cols, _ = _y_true_columns(y_true)
        y_pred = getattr(estimator, self._response_method)(X)
        classes = None
        if self._kind == "proba":
            classes = getattr(estimator, "classes_", None)
        scores = self._sign * _per_task_scores(
            cols, y_pred, self._kind, self._func(),
            sample_weight=sample_weight, classes=classes, tasks=tasks,
            kwargs=self._kwargs,
        )
        if self._task is not None:
            return float(scores[0])
        if isinstance(weights, np.ndarray):
            return float(np.average(scores, weights=weights[tasks]))
        if weights == "raw_values":
            result = {names[t]: float(s) for t, s in zip(tasks, scores)}
            result["mean"] = float(np.mean(scores))
            return result
        return float(np.mean(scores))

    def __repr__(self):
        parts = [repr(self._label), f"response_method={self._response_method!r}"]
        if self._sign < 0 and not (
            isinstance(self._label, str) and self._label.startswith("neg_")
        ):
            parts.append("greater_is_better=False")
        if self._task is not None:
            parts.append(f"task={self._task!r}")
        else:
            multioutput = self._multioutput
            if isinstance(multioutput, np.ndarray):
                multioutput = multioutput.tolist()
            parts.append(f"multioutput={multioutput!r}")
        if self._task_names is not None:
            parts.append(f"task_names={list(self._task_names)!r}")
        parts += [f"{k}={v!r}" for k, v in self._kwargs.items()]
        return f"make_multitask_scorer({', '.join(parts)})"


class _CustomTaskMetric:
    """Adapt ``f(y_true, y_pred, sample_weight=None, **kw)`` to a task metric."""

    def __init__(self, func):
        self.func = func

    def __call__(self, y, pred, sample_weight, classes, **kwargs):
        return self.func(y, pred, **_sw_kwargs(sample_weight), **kwargs)


def make_multitask_scorer(metric, *, task=None, multioutput="uniform_average",
                          task_names=None, response_method=None,
                          greater_is_better=True, **kwargs):
    """Make a scorer for multi-task estimators with masked (missing) labels.

    The scorer has the signature ``scorer(estimator, X, y_true,
    sample_weight=None)`` and can be passed as ``scoring=`` to
    ``GridSearchCV``, ``RandomizedSearchCV``, ``cross_validate`` or
    ``cross_val_score``. Each task is scored on the rows where its label is
    observed. For probability metrics the scorer calls
    ``estimator.predict_proba(X)`` and reads the label of each probability
    column from ``estimator.classes_``, so any label type works.

    Parameters
    ----------
    metric : str or callable
        One of ``"accuracy"``, ``"balanced_accuracy"``, ``"roc_auc"``,
        ``"average_precision"``, ``"neg_log_loss"``, ``"r2"``,
        ``"neg_mean_squared_error"``, ``"neg_root_mean_squared_error"``,
        ``"neg_mean_absolute_error"`` (losses are negated so that greater is
        better, as in scikit-learn's scorer names); or one of the
        ``masked_*`` functions of this module (then ``greater_is_better``
        says whether to negate, as in :func:`sklearn.metrics.make_scorer`);
        or any callable ``f(y_true_task, y_pred_task, sample_weight=None,
        **kwargs)`` scoring one task on its observed rows, which requires
        ``response_method``. With ``"predict_proba"`` such a callable gets
        the task's probability array (rows observed, columns in the order of
        ``classes_``).

    task : int or str, default=None
        Score only this task (an index, or a name from ``task_names``).
        By default all tasks are scored and aggregated with ``multioutput``.

    multioutput : {"uniform_average", "raw_values"} or array-like of shape \
(n_tasks,), default="uniform_average"
        ``"uniform_average"``: the mean of the task scores; array-like: their
        weighted mean (tasks with weight zero are not evaluated);
        ``"raw_values"``: the scorer returns a dict ``{name: score, ...,
        "mean": mean_score}``, which scikit-learn's searches and
        ``cross_validate`` treat as multi-metric scoring: ``cv_results_``
        gets ``mean_test_<name>`` columns, and ``refit="mean"`` selects on
        the average over tasks.

    task_names : list of str, default=None
        Names of the tasks, used as keys with ``multioutput="raw_values"``
        and to select ``task`` by name. Default: ``"task0"``, ``"task1"``, ...

    response_method : {"predict", "predict_proba"}, default=None
        Estimator method whose output is scored. Required for a custom
        callable; inferred for names and ``masked_*`` functions.

    greater_is_better : bool, default=True
        For a callable ``metric``: whether it is a score (``True``) or a loss
        to be negated (``False``). Names already encode the direction, so
        ``False`` is an error with a name.

    **kwargs
        Extra keyword arguments passed to the per-task metric (e.g.
        ``adjusted=True`` for ``"balanced_accuracy"``).

    Returns
    -------
    scorer : callable
        A picklable scorer returning a float, or a dict with
        ``multioutput="raw_values"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.metrics import make_multitask_scorer
    >>> class Constant:
    ...     classes_ = [np.array([0.0, 1.0]), np.array(["a", "b", "c"])]
    ...     def predict_proba(self, X):
    ...         n = len(X)
    ...         return [np.tile([0.4, 0.6], (n, 1)),
    ...                 np.tile([0.2, 0.3, 0.5], (n, 1))]
    >>> y = np.array([[1.0, "a"], [0.0, None], [np.nan, "c"]], dtype=object)
    >>> scorer = make_multitask_scorer(
    ...     "neg_log_loss", multioutput="raw_values", task_names=["buy", "kind"])
    >>> scores = scorer(Constant(), np.zeros((3, 2)), y)
    >>> {k: round(v, 4) for k, v in scores.items()}
    {'buy': -0.7136, 'kind': -1.1513, 'mean': -0.9324}
    >>> make_multitask_scorer("roc_auc", task="kind", task_names=["buy", "kind"])
    make_multitask_scorer('roc_auc', response_method='predict_proba', \
task='kind', task_names=['buy', 'kind'])
    """
    if response_method not in (None, "predict", "predict_proba"):
        raise ValueError(
            "response_method must be None, 'predict' or 'predict_proba', got "
            f"{response_method!r}."
        )
    if isinstance(metric, str):
        if metric not in _SCORER_NAMES:
            raise ValueError(
                f"Unknown metric {metric!r}; valid names are "
                f"{sorted(_SCORER_NAMES)}, a masked_* function of "
                "sklearn_mmoe.metrics, or a callable with response_method."
            )
        if not greater_is_better:
            raise ValueError(
                "greater_is_better=False cannot be combined with a metric name; "
                "names already encode the direction (use the 'neg_' names for "
                "losses)."
            )
        name, sign = _SCORER_NAMES[metric]
        kind = _METRICS[name].kind
        label = metric
    elif metric in _MASKED_FUNCTIONS:
        name = _MASKED_FUNCTIONS[metric]
        kind = _METRICS[name].kind
        sign = 1 if greater_is_better else -1
        label = metric.__name__
    elif callable(metric):
        if response_method is None:
            raise ValueError(
                "response_method ('predict' or 'predict_proba') is required "
                "when metric is a custom callable."
            )
        name = metric
        kind = f"custom_{response_method}"
        sign = 1 if greater_is_better else -1
        label = getattr(metric, "__name__", metric)
    else:
        raise ValueError(
            f"metric must be a name in {sorted(_SCORER_NAMES)} or a callable, "
            f"got {metric!r}."
        )
    if response_method is not None and response_method != _RESPONSE_METHOD[kind]:
        raise ValueError(
            f"response_method={response_method!r} does not match metric "
            f"{label!r}, which uses {_RESPONSE_METHOD[kind]!r}."
        )

    if task_names is not None:
        if isinstance(task_names, str):
            raise ValueError("task_names must be a list of strings, not a string.")
        task_names = [str(n) for n in task_names]
        if len(set(task_names)) != len(task_names) or "mean" in task_names:
            raise ValueError(
                "task_names must be unique and must not contain 'mean' (the "
                "key of the average with multioutput='raw_values')."
            )
    if task is not None:
        if isinstance(task, str):
            if task_names is None or task not in task_names:
                raise ValueError(
                    f"task={task!r} is not one of task_names={task_names!r}."
                )
        elif (
            not isinstance(task, numbers.Integral)
            or isinstance(task, bool)
            or task < 0
        ):
            raise ValueError(
                f"task must be a non-negative int or a name from task_names, "
                f"got {task!r}."
            )
        else:
            task = int(task)
            if task_names is not None and task >= len(task_names):
                raise ValueError(
                    f"task={task} is out of range for {len(task_names)} task_names."
                )
        if not (isinstance(multioutput, str) and multioutput == "uniform_average"):
            raise ValueError(
                "multioutput must be left at 'uniform_average' when task is "
                "given (a single task's score is returned)."
            )
    multioutput = _check_multioutput(multioutput, None)
    if task_names is not None and isinstance(multioutput, np.ndarray) and (
        len(multioutput) != len(task_names)
    ):
        raise ValueError(
            f"multioutput weights have {len(multioutput)} entries but "
            f"task_names has {len(task_names)}."
        )
    return _MultitaskScorer(name, kind, sign, task, multioutput, task_names,
                            kwargs, label)
