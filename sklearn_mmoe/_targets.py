"""Per-task target encoding and decoding, shared by every estimator.

A fitted estimator keeps one :class:`Task` per column of y. Encoding turns y
into the float32 training targets, the mask of observed entries and the task
descriptions; decoding turns the network's logits back into probabilities,
labels or values on the original scale.
"""

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import expit, log_softmax, softmax
from sklearn.utils.multiclass import check_classification_targets

from ._labels import as_labels
from ._labels import observed as observed_labels
from .nn import TASK_TYPES

#: What ``task_types`` accepts: a task's kind ("classification" or
#: "regression", :attr:`Task.kind`), or its type ("binary", "multiclass",
#: "regression": the fitted ``task_types_``, :attr:`Task.type`, and the loss
#: types of :mod:`sklearn_mmoe.nn`); a type names a classification task whose
#: number of classes ``encode_targets`` checks.
DECLARED_TYPES = ("classification", *TASK_TYPES)


def kind_of(declared):
    """The kind ("classification" or "regression") of a declared task type."""
    return "regression" if declared == "regression" else "classification"


class Task(NamedTuple):
    """What a fitted estimator knows about one task."""

    kind: str  # "classification" or "regression"
    classes: np.ndarray = None  # sorted labels (classification)
    mean: float = 0.0  # target standardisation (regression)
    scale: float = 1.0
    parent: int = None  # the task this one is conditional on (ESMM)

    @property
    def type(self):
        """The loss type: "binary", "multiclass" or "regression"."""
        if self.kind == "regression":
            return "regression"
        return "binary" if self.classes.size == 2 else "multiclass"

    @property
    def n_outputs(self):
        return self.classes.size if self.type == "multiclass" else 1


def _observed_labels(column, t):
    observed = observed_labels(column)
    if not observed.any():
        raise ValueError(f"y: task {t} has no observed label; every task needs at least one.")
    values = as_labels(column[observed])
    if values.dtype.kind == "f" and np.isinf(values).any():
        raise ValueError(f"Input y contains infinity (task {t}).")
    return observed, values


def _encode_known_classes(column, t, task):
    """Codes of ``column`` in the classes of an already-fitted ``task``."""
    observed, labels = _observed_labels(column, t)
    codes = pd.Index(task.classes).get_indexer(labels)
    unknown = codes < 0
    if unknown.any():
        raise ValueError(
            f"y: task {t} has labels {np.unique(labels[unknown]).tolist()[:5]} that are not "
            f"among its classes {task.classes.tolist()} (fixed by the first fit, or by "
            "partial_fit's classes)."
        )
    encoded = np.zeros(column.shape[0], dtype=np.float32)
    encoded[observed] = codes
    return encoded, observed


def _encode_known_scale(column, t, task):
    """Standardise ``column`` with the scaling of an already-fitted ``task``."""
    observed, values = _observed_labels(column, t)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"y: task {t} is a regression task but its targets are not numeric.")
    encoded = np.zeros(column.shape[0], dtype=np.float32)
    encoded[observed] = (values.astype(np.float64) - task.mean) / task.scale
    return encoded, observed


def _encode_classification(column, t):
    observed, labels = _observed_labels(column, t)
    try:
        # Hash-based and sorted: codes index the sorted classes. The label
        # type only depends on the distinct values, so check those rather
        # than every row.
        codes, classes = pd.factorize(labels, sort=True)
        classes = np.asarray(classes, dtype=labels.dtype)
        # Each class twice: type_of_target's "more than 50% of the samples
        # are distinct classes: a regression problem?" warning is about y's
        # rows, and would fire for any list of more than 20 classes.
        check_classification_targets(np.repeat(classes, 2))
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"y: task {t}: {exc}") from None
    if classes.size < 2:
        raise ValueError(
            f"y: task {t} has only one class ({classes.tolist()[0]!r}) among its "
            "observed labels; a classifier needs at least 2 classes per task."
        )
    encoded = np.zeros(column.shape[0], dtype=np.float32)
    encoded[observed] = codes
    return encoded, observed, Task("classification", classes=classes)


def _encode_regression(column, t, sample_weight):
    observed, values = _observed_labels(column, t)
    if values.dtype.kind not in "biuf":
        raise ValueError(
            f"y: task {t} is a regression task but its targets are not numeric "
            f"(dtype {values.dtype})."
        )
    values = values.astype(np.float64)
    mean, scale = 0.0, 1.0
    weights = sample_weight[observed]
    if weights.sum() > 0:  # else the caller raises: no usable label
        # Statistics of values / max|value|, so that squares cannot overflow.
        magnitude = np.abs(values).max() or 1.0
        unit = values / magnitude
        unit_mean = np.average(unit, weights=weights)
        std = float(np.sqrt(np.average((unit - unit_mean) ** 2, weights=weights)) * magnitude)
        mean = float(unit_mean * magnitude)
        scale = std if std > 0 else 1.0
    encoded = np.zeros(column.shape[0], dtype=np.float32)
    encoded[observed] = (values - mean) / scale
    return encoded, observed, Task("regression", mean=mean, scale=scale)


def check_conditions(conditions, n_tasks):
    """Validated conditional tasks ``{child: parent}`` (task indices).

    The one check of the mapping: indices of two different tasks, and a
    parent that is not conditional itself. That both tasks are binary is
    checked when y is encoded (:func:`encode_targets`).
    """
    checked = dict(conditions or {})
    for child, parent in checked.items():
        valid = all(
            isinstance(t, (int, np.integer)) and not isinstance(t, bool) and 0 <= t < n_tasks
            for t in (child, parent)
        )
        if not valid or child == parent or parent in checked:
            raise ValueError(
                "conditional_tasks must map a task index to a different task index "
                f"(0..{n_tasks - 1}) that is not conditional itself, got {conditions!r}."
            )
    return checked


def _condition(targets, observed, tasks, child, parent):
    """Joint labels "parent and child" of a conditional task, over the parent's rows.

    The child's label only means something where the parent is positive; where
    the parent is negative the joint label is 0 whatever the child says (0 or
    missing), and a positive child there is an error.
    """
    for t in (child, parent):
        if tasks[t].type != "binary":
            raise ValueError(
                f"conditional_tasks: task {child} can only be conditional on task "
                f"{parent} if both are binary classification tasks (task {t} is "
                f"{tasks[t].type})."
            )
    parent_positive = observed[:, parent] & (targets[:, parent] == 1)
    parent_negative = observed[:, parent] & (targets[:, parent] == 0)
    child_positive = observed[:, child] & (targets[:, child] == 1)
    conflict = np.flatnonzero(parent_negative & child_positive)
    if conflict.size:
        raise ValueError(
            f"y: task {child} is conditional on task {parent}, but row {conflict[0]} "
            f"(and {conflict.size - 1} more) has a positive label for task {child} "
            f"where task {parent} is negative."
        )
    joint_observed = parent_negative | (parent_positive & observed[:, child])
    targets[:, child] = (parent_positive & child_positive).astype(np.float32)
    observed[:, child] = joint_observed
    tasks[child] = tasks[child]._replace(parent=parent)


def encode_targets(Y, kinds, sample_weight, parents=None, tasks=None):
    """Encode a 2-D target, one column per task.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_tasks)
        Validated targets; missing labels are NaN, None or pd.NA.
    kinds : sequence of {"classification", "binary", "multiclass", "regression"}
        Kind of each task; "binary" and "multiclass" are classification
        tasks whose number of classes is checked (2, more than 2).
    sample_weight : ndarray of shape (n_samples, n_tasks)
        Validated sample weights, per row and task (used for the regression
        scaling).
    parents : dict {child: parent}, default=None
        Conditional tasks.
    tasks : list of Task, default=None
        Tasks of an earlier fit to encode against (warm start, partial_fit,
        or classes given up front): their classes and scaling are kept, and
        a label outside a task's classes is an error. A task may be None to
        be learned from Y.

    Returns
    -------
    targets : float32 ndarray (n_samples, n_tasks)
        Class codes or standardised values; joint labels for conditional
        tasks; 0 where unobserved.
    observed : bool ndarray (n_samples, n_tasks)
        Entries that enter the loss.
    tasks : list of Task
    """
    known = tasks if tasks is not None else [None] * len(kinds)
    columns, tasks = [], []
    for t, (declared, task) in enumerate(zip(kinds, known)):
        kind = kind_of(declared)
        if task is not None:
            task = task._replace(parent=None)
            encode = _encode_known_classes if kind == "classification" else _encode_known_scale
            encoded, observed = encode(Y[:, t], t, task)
        elif kind == "classification":
            encoded, observed, task = _encode_classification(Y[:, t], t)
        else:
            encoded, observed, task = _encode_regression(Y[:, t], t, sample_weight[:, t])
        if declared in TASK_TYPES and task.type != declared:
            raise ValueError(
                f"task_types: task {t} is declared {declared!r}, but y gives it "
                f"{task.classes.size} classes ({task.classes.tolist()[:5]}), a "
                f"{task.type} task."
            )
        columns.append((encoded, observed))
        tasks.append(task)
    targets = np.column_stack([c[0] for c in columns])
    observed = np.column_stack([c[1] for c in columns])
    for child, parent in (parents or {}).items():
        _condition(targets, observed, tasks, child, parent)
    return targets, observed, tasks


def _labelled_rows(targets, observed, tasks, t):
    """Rows where task ``t``'s own label exists.

    For a conditional task, the rows where its parent is positive: elsewhere
    its training label is the joint one, 0 whatever the task's label.
    """
    rows = observed[:, t].copy()
    parent = tasks[t].parent
    if parent is not None:
        rows &= observed[:, parent] & (targets[:, parent] == 1)
    return rows


def label_mask(Y, tasks):
    """Which entries of a raw 2-D ``Y`` are labels of their task (bool, Y's shape).

    An entry is a label where it is observed and, for a conditional task,
    where its parent's label is the parent's positive class: elsewhere the
    conditional task's label does not exist, whatever ``Y`` holds there
    (often 0). The raw-label counterpart of :func:`_labelled_rows`.
    """
    mask = observed_labels(Y)
    for t, task in enumerate(tasks):
        if task.parent is not None:
            column, known = Y[:, task.parent], mask[:, task.parent]
            positive = np.zeros(len(column), dtype=bool)
            positive[known] = column[known] == tasks[task.parent].classes[1]
            mask[:, t] &= positive
    return mask


def _class_weight_vector(spec, task, t, codes, weights):
    """Weight of each of ``task``'s classes (an array in the order of its classes)."""
    n_classes = task.classes.size
    if isinstance(spec, str):  # "balanced"
        # compute_class_weight("balanced", sample_weight=...): total / (k * n_c)
        # over the classes present, k of them.
        counts = np.bincount(codes, weights=weights, minlength=n_classes)
        present = counts > 0
        vector = np.ones(n_classes)
        vector[present] = counts.sum() / (present.sum() * counts[present])
        return vector
    labels = task.classes.tolist()
    unknown = [key for key in spec if key not in set(labels)]
    if unknown and any(label not in spec for label in labels):
        # As scikit-learn: labels the task does not have are allowed only in a
        # dict that weighs every class (e.g. a fold that lacks a rare class).
        raise ValueError(
            f"class_weight: task {t} has no class {unknown[:5]}; its classes are {labels}."
        )
    try:
        vector = np.array([spec.get(label, 1.0) for label in labels], dtype=np.float64)
    except (TypeError, ValueError):
        vector = np.array([np.nan])
    if not (np.all(np.isfinite(vector)) and np.all(vector >= 0)):
        raise ValueError(
            f"class_weight: task {t}'s weights must be finite non-negative numbers, got {spec!r}."
        )
    return vector


def class_weight_factors(class_weight, targets, observed, tasks, sample_weight):
    """Per-entry factors ``(n_samples, n_tasks)`` of the class weights.

    Parameters
    ----------
    class_weight : list
        One entry per task: None (factor 1), "balanced" or a dict
        ``{label: weight}`` (classes it leaves out weigh 1).
    targets, observed, tasks :
        As returned by :func:`encode_targets`.
    sample_weight : ndarray of shape (n_samples, n_tasks)
        Validated sample weights; "balanced" counts each class by its rows'
        weights, as ``compute_class_weight`` with ``sample_weight``.

    Returns
    -------
    factors : float64 ndarray (n_samples, n_tasks)
        Each entry's class weight, by its training label (for a conditional
        task, the joint label: class 0 where the parent is negative).
        "balanced" counts only the rows where the task's label exists: missing
        labels never count, nor, for a conditional task, the rows where its
        parent is not positive.
    """
    factors = np.ones(targets.shape)
    for t, (spec, task) in enumerate(zip(class_weight, tasks)):
        if spec is None:
            continue
        codes = targets[:, t].astype(np.intp)
        rows = _labelled_rows(targets, observed, tasks, t)
        vector = _class_weight_vector(spec, task, t, codes[rows], sample_weight[rows, t])
        factors[:, t] = vector[codes]
    return factors


def classification_task(classes, t):
    """A classification task with the given classes (partial_fit's ``classes``)."""
    classes = np.asarray(classes)
    if classes.ndim != 1:
        raise ValueError(f"classes: task {t} needs a 1-D array of labels, got {classes!r}.")
    if not observed_labels(classes).all():
        raise ValueError(
            f"classes: task {t} contains a missing-label marker (NaN, None or pd.NA), got "
            f"{classes.tolist()!r}; missing labels are never a class: list only the labels."
        )
    try:
        classes = np.unique(as_labels(classes))
    except TypeError as exc:  # e.g. numbers and strings mixed
        raise ValueError(f"classes: task {t} has labels that cannot be sorted: {exc}") from None
    if classes.size < 2:
        raise ValueError(f"classes: task {t} needs at least 2 distinct classes, got {classes!r}.")
    return Task("classification", classes=classes)


def decode(logits, tasks, log=False):
    """Per-task outputs from float32 logits (n, n_tasks, n_out).

    Classification: float64 probabilities (n, n_classes) (for a conditional
    task, the conditional probability), or with ``log=True`` their logarithms,
    computed from the logits (log-sigmoid, log-softmax), finite wherever the
    probability is not 0 in float64. Regression: float64 values (n,) in both
    cases.
    """
    logits = logits.astype(np.float64)
    outputs = []
    for t, task in enumerate(tasks):
        if task.type == "regression":
            outputs.append(logits[:, t, 0] * task.scale + task.mean)
        elif task.type == "binary":
            # Each class from the logit, not p0 = 1 - p1: a probability of
            # 1e-20 is not rounded to 0, and its log is finite like log_proba's.
            z = logits[:, t, 0]
            if log:  # log(sigmoid(-z)) = -log(1 + e^z), log(sigmoid(z)) = -log(1 + e^-z)
                outputs.append(np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)]))
            else:
                outputs.append(np.column_stack([expit(-z), expit(z)]))
        else:
            normalise = log_softmax if log else softmax
            outputs.append(normalise(logits[:, t, : task.classes.size], axis=1))
    return outputs


def joint(outputs, tasks):
    """Replace conditional tasks' probabilities by the joint ones (parent and child)."""
    joined = list(outputs)
    for t, task in enumerate(tasks):
        if task.parent is not None:
            p = outputs[t][:, 1] * outputs[task.parent][:, 1]
            joined[t] = np.column_stack([1.0 - p, p])
    return joined
