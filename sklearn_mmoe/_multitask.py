"""Generic multi-task estimators: any architecture, mixed task kinds, ESMM.

``MultiTaskEstimator`` takes the architecture by name and a kind per task, so
one model can learn classification and regression tasks together, and a
binary task can be conditional on another (ESMM). ``ESMMClassifier`` is the
ESMM paper's click/conversion model with those settings fixed.
"""

import warnings
from numbers import Real

import numpy as np
from sklearn.utils import ClassifierTags
from sklearn.utils._param_validation import Interval, StrOptions

from ._architectures import ALL_PARAMS, ARCHITECTURES
from ._base import (
    _CLASS_WEIGHT_CONSTRAINT,
    _LogProbaMixin,
    _MultiTaskClassifierMixin,
    _store_params,
)
from ._docs import PARAMS, build_docstring
from ._estimators import _Architecture, _constraints, _SharedBottomBase
from ._gates import _GateWeightsMixin
from ._labels import as_labels, observed
from ._targets import DECLARED_TYPES, check_conditions, joint
from .metrics import (
    _check_sample_weight,
    _scored_labels,
    _task_sample_weight,
    masked_accuracy_score,
    masked_r2_score,
)
from .nn import CVR_OBJECTIVES, PROPENSITY_NORMALIZATIONS

__all__ = ["MultiTaskEstimator", "ESMMClassifier"]


_CVR_PARAMS = [
    "cvr_objective", "cvr_weight", "ctcvr_weight", "propensity_clip", "propensity_normalization",
]
_CVR_CONSTRAINTS = {
    "cvr_objective": [StrOptions(set(CVR_OBJECTIVES))],
    "cvr_weight": [Interval(Real, 0, None, closed="left")],
    "ctcvr_weight": [Interval(Real, 0, None, closed="left")],
    "propensity_clip": [Interval(Real, 0, 1, closed="right")],
    "propensity_normalization": [StrOptions(set(PROPENSITY_NORMALIZATIONS))],
}


class _JointProbaMixin:
    """Conditional tasks: their loss options and ``predict_joint_proba``."""

    def _loss_options(self, conditions):
        """The ``cvr_objective`` options of the loss (none for ESMM's, the default)."""
        if self.cvr_objective == "esmm":
            return {}
        if not conditions:
            raise ValueError(
                f"cvr_objective={self.cvr_objective!r} trains a conditional task, but there "
                f"is none: {self._no_condition_hint}"
            )
        return {name: getattr(self, name) for name in _CVR_PARAMS}

    def predict_joint_proba(self, X):
        """Probabilities with each conditional task's replaced by the joint one.

        For a task ``j`` conditional on task ``i`` (``conditional_tasks={j: i}``,
        ESMM's conversion given click) ``predict_proba`` gives
        ``p(j | i, x)`` (pCVR); this gives ``p(i and j | x) = p(i | x) *
        p(j | i, x)`` (pCTCVR) as ``[1 - p, p]`` columns. Other tasks are as in
        ``predict_proba``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        proba : ndarray or list
            Same layout as ``predict_proba``.
        """
        return self._unwrap(self._probas(joint(self._outputs(X), self._tasks)))


# Which architectures use each architecture parameter.
_USED_BY = {p: [a.name for a in ARCHITECTURES.values() if p in a.params] for p in ALL_PARAMS}


_ARCHITECTURE_PARAM = "architecture : {" + ", ".join(f'"{a}"' for a in ARCHITECTURES) + """}, \
default="mmoe"
    The network: Shared-Bottom, OMoE, MMoE, CGC, PLE, or one of the MMoE
    paper's baselines (see the per-architecture estimators). Parameters that
    the architecture does not use are ignored."""

_TASK_TYPES_PARAM = """task_types : list of {"classification", "binary", "multiclass", \
"regression"}, default=None
    Kind of each task (column of y). "binary" and "multiclass" are
    classification tasks that fit checks have 2, or more than 2, classes: the
    fitted ``task_types_`` can be passed back. None infers it per column: a task
    named in ``conditional_tasks`` is a classification task, and otherwise
    float targets are regression, integer, string and boolean labels
    classification. Classification is never inferred from floats: a float
    column of whole numbers (e.g. 0./1. stored as float to hold NaN) is a
    regression task, with a warning; give the kinds explicitly, or the
    labels as int, bool or str (missing ones as None / pd.NA in an object or
    pandas nullable column)."""

_CONDITIONAL_PARAM = """conditional_tasks : dict {int: int}, default=None
    ``{j: i}`` declares binary task ``j`` conditional on binary task ``i``
    (ESMM, Ma et al., SIGIR 2018): task ``j``'s label only exists where task
    ``i`` is positive (elsewhere give 0 or a missing value). Its output
    ``p(j | i, x)`` is trained through the joint ``p(i | x) p(j | i, x)``
    against "i and j" on every row where task ``i`` is observed.
    ``predict_proba`` gives the conditional probability,
    ``predict_joint_proba`` the joint one."""


class MultiTaskEstimator(_GateWeightsMixin, _JointProbaMixin, _LogProbaMixin, _Architecture):
    _parameter_constraints = {
        **_constraints(ALL_PARAMS),
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "task_types": ["array-like", None],
        "conditional_tasks": [dict, None],
        "class_weight": _CLASS_WEIGHT_CONSTRAINT,
        **_CVR_CONSTRAINTS,
    }
    _no_condition_hint = "declare one with conditional_tasks={child: parent}."
    _y_check_params = dict(dtype=None)
    __doc__ = build_docstring(
        "Multi-task estimator for any architecture and any mix of task kinds.",
        """The generic estimator: the architecture is a parameter, each task (column
of y) is a classification or a regression task, and binary tasks can be
conditional on other binary tasks (ESMM). ``predict`` returns labels for
classification tasks and values for regression tasks (an object array when
they mix); ``predict_proba`` returns one entry per task, a probability array
for a classification task and None for a regression task;
``predict_joint_proba`` is the same with conditional tasks' joint
probabilities; ``score`` is the mean over tasks of accuracy (classification)
and R^2 (regression) on observed labels.""",
        "mixed",
        [
            _ARCHITECTURE_PARAM,
            _TASK_TYPES_PARAM,
            _CONDITIONAL_PARAM,
            PARAMS["class_weight"] + "\n    A regression task's entry must be None.",
            *(PARAMS[p] for p in _CVR_PARAMS),
            *(f"{PARAMS[p]}\n    Used by: {', '.join(_USED_BY[p])}." for p in ALL_PARAMS),
        ],
        """>>> import numpy as np
>>> from sklearn_mmoe import MultiTaskEstimator
>>> rng = np.random.RandomState(0)
>>> X = rng.normal(size=(400, 5))
>>> click = (X[:, 0] + rng.normal(size=400) > 0).astype(float)
>>> watch_time = np.where(click == 1, 30 + 10 * X[:, 1], np.nan)  # only after a click
>>> Y = np.column_stack([click, watch_time])
>>> model = MultiTaskEstimator(architecture="mmoe", n_experts=4,
...                            task_types=["classification", "regression"],
...                            early_stopping=True, random_state=0).fit(X, Y)
>>> model.task_types_
['binary', 'regression']
>>> proba = model.predict_proba(X[:3])  # [click probabilities, None]
>>> proba[0].shape, proba[1] is None
((3, 2), True)
>>> model.predict(X[:3]).shape
(3, 2)""",
        "MMoEClassifier, PLEClassifier : One architecture, one task kind (and the\n"
        "    other per-architecture estimators).\n"
        "ESMMClassifier : Click and conversion with ESMM's conditional task.",
    )

    def __init__(
        self,
        *,
        architecture="mmoe",
        task_types=None,
        conditional_tasks=None,
        class_weight=None,
        cvr_objective="esmm",
        cvr_weight=1.0,
        ctcvr_weight=1.0,
        propensity_clip=0.01,
        propensity_normalization="none",
        n_experts=8,
        n_shared_experts=1,
        n_task_experts=1,
        n_levels=2,
        bottom_hidden_sizes=(128,),
        expert_hidden_sizes=(64,),
        gate_hidden_sizes=(),
        tower_hidden_sizes=(16,),
        top_k=None,
        hidden_sizes=(64, 16),
        coupling=0.01,
        rank=8,
        activation="relu",
        dropout=0.0,
        categorical_features="from_dtype",
        embedding_dim="auto",
        min_frequency=None,
        max_categories=None,
        numeric_encoding="auto",
        n_bins=16,
        optimizer="adam",
        optimizer_kwargs=None,
        learning_rate=3e-3,
        weight_decay=0.0,
        ema_half_life=1.0,
        batch_size="auto",
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=3,
        early_stopping="auto",
        validation_fraction=0.1,
        scoring="loss",
        task_weights=None,
        loss_weighting=None,
        callbacks=None,
        warm_start=False,
        nan_loss="raise",
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        _store_params(self, locals())

    def _architecture_name(self):
        return self.architecture

    def __sklearn_tags__(self):
        # Not a classifier (tasks may be regressions), but it classifies:
        # describe that for code that reads classifier tags of anything with
        # predict_proba.
        tags = super().__sklearn_tags__()
        tags.classifier_tags = ClassifierTags()
        return tags

    def _task_kinds(self, Y):
        n_tasks = Y.shape[1]
        if self.task_types is None:
            # Tasks named in conditional_tasks are declared binary.
            declared = {t for pair in self._conditional_tasks(n_tasks).items() for t in pair}
            kinds = []
            for t in range(n_tasks):  # a loop, not a comprehension: the warning's stacklevel
                kinds.append("classification" if t in declared else _infer_kind(Y[:, t], t))
            return kinds
        kinds = list(self.task_types)
        if len(kinds) != n_tasks or any(
            not isinstance(k, str) or k not in DECLARED_TYPES for k in kinds
        ):
            raise ValueError(
                f"task_types must list one of {DECLARED_TYPES} per task ({n_tasks} tasks), "
                f"got {self.task_types!r}."
            )
        return kinds

    def _conditional_tasks(self, n_tasks):
        return check_conditions(self.conditional_tasks, n_tasks)

    def _task_attributes(self, tasks):
        return {
            "classes_": self._unwrap([t.classes for t in tasks]),
            "task_types_": [t.type for t in tasks],
        }

    def _probas(self, outputs):
        if all(t.kind == "regression" for t in self._tasks):
            raise ValueError("predict_proba: every task is a regression task.")
        return [out if t.kind == "classification" else None for t, out in zip(self._tasks, outputs)]

    def predict(self, X):
        """Labels of classification tasks and values of regression tasks.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_tasks)
            With y's shape; an object array when the tasks' outputs have
            different dtypes (e.g. string labels and floats).
        """
        return self._as_y_shape(self._labels(self._outputs(X)))

    def predict_proba(self, X):
        """Class probabilities of the classification tasks.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        proba : ndarray or list
            For 2-D y, a list with one entry per task: an
            ``(n_samples, n_classes_t)`` array for a classification task
            (columns in the order of ``classes_[t]``; for a conditional task
            the conditional probability) and None for a regression task. For
            1-D y, that task's array.
        """
        return self._unwrap(self._probas(self._outputs(X)))

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of accuracy (classification) or R^2 (regression).

        Each task is scored on its observed labels; a conditional task on the
        rows where its parent task is positive.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            True targets; missing labels (NaN, None, pd.NA) are ignored.
        sample_weight : array-like of shape (n_samples,) or (n_samples, n_tasks), \
default=None
            Sample weights, per row or per row and task.

        Returns
        -------
        score : float
        """
        Y = np.asarray(_scored_labels(y, self.label_mask(y)), dtype=object).reshape(-1, self.n_tasks_)
        P = np.asarray(self.predict(X), dtype=object).reshape(-1, self.n_tasks_)
        weight = _check_sample_weight(sample_weight, Y.shape[0], self.n_tasks_)
        scores = [
            (masked_accuracy_score if task.kind == "classification" else masked_r2_score)(
                Y[:, t], P[:, t], sample_weight=_task_sample_weight(weight, t)
            )
            for t, task in enumerate(self._tasks)
        ]
        return float(np.mean(scores))


def _infer_kind(column, t):
    """Regression for float targets, classification for ints, strings, booleans.

    Never classification from float values: a float column of whole numbers
    (hours per week, counts, or 0./1. labels stored as floats to hold NaN) is
    ambiguous, so it is a regression task with a warning that says how to
    make it a classification task.
    """
    values = as_labels(column[observed(column)])
    if values.dtype.kind != "f":
        return "classification"
    if values.size and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        warnings.warn(
            f"MultiTaskEstimator: task {t} has float targets that are all whole numbers "
            f"(e.g. {values[:3].tolist()}); with task_types=None it is trained as a "
            "regression task. For a classification task, pass task_types, or give its "
            "labels as int, bool or str (an object or pandas nullable column holds "
            "missing labels as None / pd.NA).",
            UserWarning,
            stacklevel=7,
        )
    return "regression"


class ESMMClassifier(_JointProbaMixin, _MultiTaskClassifierMixin, _SharedBottomBase):
    _parameter_constraints = {
        **_SharedBottomBase._parameter_constraints, **_CVR_CONSTRAINTS,
        "class_weight": _CLASS_WEIGHT_CONSTRAINT,
    }
    _no_condition_hint = "y has one column (click), give two (click, conversion)."
    __doc__ = build_docstring(
        "Entire Space Multi-task Model for click and conversion (ESMM).",
        """ESMM (Ma et al., SIGIR 2018): a click model and a conversion model share
their bottom layers; the conversion output is the post-click conversion rate
pCVR, trained through pCTCVR = pCTR * pCVR on every impression. A
Shared-Bottom network with task 1 conditional on task 0; for ESMM on
another architecture use ``MultiTaskEstimator(architecture=...,
conditional_tasks={1: 0})``.""",
        "esmm",
        [*_CVR_PARAMS, *ARCHITECTURES["shared_bottom"].params],
        """>>> import numpy as np
>>> from sklearn_mmoe import ESMMClassifier
>>> rng = np.random.RandomState(0)
>>> X = rng.normal(size=(2000, 5))
>>> click = rng.uniform(size=2000) < 1 / (1 + np.exp(-X[:, 0]))
>>> buy = rng.uniform(size=2000) < 1 / (1 + np.exp(-X[:, 1]))
>>> Y = np.column_stack([click, np.where(click, buy, np.nan)]).astype(float)
>>> esmm = ESMMClassifier(early_stopping=True, random_state=0).fit(X, Y)
>>> p_ctr, p_cvr = (p[:, 1] for p in esmm.predict_proba(X[:3]))
>>> p_ctcvr = esmm.predict_joint_proba(X[:3])[1][:, 1]
>>> bool(np.allclose(p_ctcvr, p_ctr * p_cvr))
True""",
        "MultiTaskEstimator : ESMM's conditional tasks on any architecture.",
    )

    def __init__(
        self,
        *,
        cvr_objective="esmm",
        cvr_weight=1.0,
        ctcvr_weight=1.0,
        propensity_clip=0.01,
        propensity_normalization="none",
        bottom_hidden_sizes=(128,),
        tower_hidden_sizes=(16,),
        activation="relu",
        dropout=0.0,
        categorical_features="from_dtype",
        embedding_dim="auto",
        min_frequency=None,
        max_categories=None,
        numeric_encoding="auto",
        n_bins=16,
        optimizer="adam",
        optimizer_kwargs=None,
        learning_rate=3e-3,
        weight_decay=0.0,
        ema_half_life=1.0,
        batch_size="auto",
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=3,
        early_stopping="auto",
        validation_fraction=0.1,
        scoring="loss",
        task_weights=None,
        loss_weighting=None,
        callbacks=None,
        warm_start=False,
        nan_loss="raise",
        device="cpu",
        random_state=None,
        verbose=0,
        class_weight=None,
    ):
        _store_params(self, locals())

    def _conditional_tasks(self, n_tasks):
        if n_tasks > 2:
            raise ValueError(
                f"ESMMClassifier takes y with two columns (click, conversion); got {n_tasks}."
            )
        return {1: 0} if n_tasks == 2 else {}
