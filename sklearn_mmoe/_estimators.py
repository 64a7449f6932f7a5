"""Shared-Bottom, OMoE and MMoE classifiers and regressors.

Each architecture is a small class that stores its parameters and says which
:mod:`sklearn_mmoe.nn` module to build; the task kind (classifier or
regressor) is a mixin. Everything else lives in :mod:`sklearn_mmoe._base`.
"""

from numbers import Integral

from sklearn.utils._param_validation import Interval

from ._base import (
    _SIZES,
    _BaseMultiTask,
    _check_sizes,
    _MultiTaskClassifierMixin,
    _MultiTaskRegressorMixin,
)
from ._docs import build_docstring
from .nn import MMoE, OMoE, SharedBottom

__all__ = [
    "SharedBottomClassifier",
    "SharedBottomRegressor",
    "OMoEClassifier",
    "OMoERegressor",
    "MMoEClassifier",
    "MMoERegressor",
]


class _SharedBottomBase(_BaseMultiTask):
    _module_class = SharedBottom
    _parameter_constraints = {
        **_BaseMultiTask._parameter_constraints,
        "bottom_hidden_sizes": _SIZES,
        "tower_hidden_sizes": _SIZES,
    }

    def __init__(
        self,
        *,
        bottom_hidden_sizes=(128,),
        tower_hidden_sizes=(16,),
        activation="relu",
        dropout=0.0,
        optimizer="adam",
        optimizer_kwargs=None,
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        task_weights=None,
        callbacks=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.bottom_hidden_sizes = bottom_hidden_sizes
        self.tower_hidden_sizes = tower_hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.task_weights = task_weights
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _module_kwargs(self):
        return dict(
            bottom_hidden_sizes=_check_sizes(
                self.bottom_hidden_sizes, "bottom_hidden_sizes", allow_empty=False
            ),
            tower_hidden_sizes=_check_sizes(
                self.tower_hidden_sizes, "tower_hidden_sizes", allow_empty=True
            ),
            activation=self.activation,
            dropout=self.dropout,
        )


class _MixtureOfExpertsBase(_BaseMultiTask):
    _parameter_constraints = {
        **_BaseMultiTask._parameter_constraints,
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "expert_hidden_sizes": _SIZES,
        "gate_hidden_sizes": _SIZES,
        "tower_hidden_sizes": _SIZES,
    }

    def __init__(
        self,
        *,
        n_experts=8,
        expert_hidden_sizes=(64,),
        gate_hidden_sizes=(),
        tower_hidden_sizes=(16,),
        activation="relu",
        dropout=0.0,
        optimizer="adam",
        optimizer_kwargs=None,
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        task_weights=None,
        callbacks=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.n_experts = n_experts
        self.expert_hidden_sizes = expert_hidden_sizes
        self.gate_hidden_sizes = gate_hidden_sizes
        self.tower_hidden_sizes = tower_hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.task_weights = task_weights
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _module_kwargs(self):
        return dict(
            n_experts=self.n_experts,
            expert_hidden_sizes=_check_sizes(
                self.expert_hidden_sizes, "expert_hidden_sizes", allow_empty=False
            ),
            gate_hidden_sizes=_check_sizes(
                self.gate_hidden_sizes, "gate_hidden_sizes", allow_empty=True
            ),
            tower_hidden_sizes=_check_sizes(
                self.tower_hidden_sizes, "tower_hidden_sizes", allow_empty=True
            ),
            activation=self.activation,
            dropout=self.dropout,
        )


_SHARED_BOTTOM = """Shared-Bottom network (Caruana, 1997): one MLP shared by all tasks feeds
one tower per task. The baseline of the MMoE paper (Ma et al., KDD 2018)."""

_OMOE = """One-gate Mixture-of-Experts (OMoE, the MMoE paper's ablation): ``n_experts``
expert MLPs read the input and a single softmax gate ``softmax(W x)`` mixes
their outputs into one representation shared by every task's tower."""

_MMOE = """Multi-gate Mixture-of-Experts (MMoE, Ma et al., KDD 2018): ``n_experts``
expert MLPs read the input and every task has its own softmax gate
``softmax(W_k x)`` that mixes the experts' outputs for that task's tower, so
tasks can share experts to the degree they are related. The experts run as
one batched matrix product."""

_MOE_PARAMS = ["n_experts", "expert_hidden_sizes", "gate_hidden_sizes", "tower_hidden_sizes"]
_SB_PARAMS = ["bottom_hidden_sizes", "tower_hidden_sizes"]

_CLASSIFIER_EXAMPLE = """>>> import numpy as np
>>> from sklearn_mmoe import {name}
>>> rng = np.random.RandomState(0)
>>> X = rng.normal(size=(300, 5))
>>> Y = np.column_stack([X[:, 0] > 0, X[:, 0] + X[:, 1] > 0]).astype(float)
>>> Y[::3, 1] = np.nan  # task 1 is unlabelled on a third of the rows
>>> clf = {name}({args}early_stopping=True, random_state=0).fit(X, Y)
>>> [p.shape for p in clf.predict_proba(X[:2])]
[(2, 2), (2, 2)]
>>> clf.predict(X[:2]).shape
(2, 2)
>>> clf.score(X, Y) > 0.8
True"""

_REGRESSOR_EXAMPLE = """>>> import numpy as np
>>> from sklearn_mmoe import {name}
>>> rng = np.random.RandomState(0)
>>> X = rng.normal(size=(300, 5))
>>> Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 0] - X[:, 2]])
>>> Y[::3, 1] = np.nan  # task 1 is unobserved on a third of the rows
>>> reg = {name}({args}early_stopping=True, random_state=0).fit(X, Y)
>>> reg.predict(X[:2]).shape
(2, 2)
>>> reg.score(X, Y) > 0.8
True"""


def _doc(name, title, architecture, kind, params, args, see_also):
    example = _CLASSIFIER_EXAMPLE if kind == "classifier" else _REGRESSOR_EXAMPLE
    return build_docstring(
        f"{title} multi-task {kind}.",
        architecture,
        kind,
        params,
        example.format(name=name, args=args),
        see_also,
    )


class SharedBottomClassifier(_MultiTaskClassifierMixin, _SharedBottomBase):
    __doc__ = _doc(
        "SharedBottomClassifier",
        "Shared-Bottom",
        _SHARED_BOTTOM,
        "classifier",
        _SB_PARAMS,
        "",
        "MMoEClassifier : One gate per task over shared experts.",
    )


class SharedBottomRegressor(_MultiTaskRegressorMixin, _SharedBottomBase):
    __doc__ = _doc(
        "SharedBottomRegressor",
        "Shared-Bottom",
        _SHARED_BOTTOM,
        "regressor",
        _SB_PARAMS,
        "",
        "MMoERegressor : One gate per task over shared experts.",
    )


class OMoEClassifier(_MultiTaskClassifierMixin, _MixtureOfExpertsBase):
    _module_class = OMoE
    __doc__ = _doc(
        "OMoEClassifier",
        "One-gate Mixture-of-Experts",
        _OMOE,
        "classifier",
        _MOE_PARAMS,
        "n_experts=4, ",
        "MMoEClassifier : One gate per task instead of one shared gate.",
    )


class OMoERegressor(_MultiTaskRegressorMixin, _MixtureOfExpertsBase):
    _module_class = OMoE
    __doc__ = _doc(
        "OMoERegressor",
        "One-gate Mixture-of-Experts",
        _OMOE,
        "regressor",
        _MOE_PARAMS,
        "n_experts=4, ",
        "MMoERegressor : One gate per task instead of one shared gate.",
    )


class MMoEClassifier(_MultiTaskClassifierMixin, _MixtureOfExpertsBase):
    _module_class = MMoE
    __doc__ = _doc(
        "MMoEClassifier",
        "Multi-gate Mixture-of-Experts",
        _MMOE,
        "classifier",
        _MOE_PARAMS,
        "n_experts=4, ",
        "OMoEClassifier : A single gate shared by all tasks.\n"
        "SharedBottomClassifier : One shared MLP, no experts.",
    )


class MMoERegressor(_MultiTaskRegressorMixin, _MixtureOfExpertsBase):
    _module_class = MMoE
    __doc__ = _doc(
        "MMoERegressor",
        "Multi-gate Mixture-of-Experts",
        _MMOE,
        "regressor",
        _MOE_PARAMS,
        "n_experts=4, ",
        "OMoERegressor : A single gate shared by all tasks.\n"
        "SharedBottomRegressor : One shared MLP, no experts.",
    )
