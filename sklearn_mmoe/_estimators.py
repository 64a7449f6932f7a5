"""The estimators: one class per architecture and task kind, plus generic ones.

Each architecture is described once, in
:data:`sklearn_mmoe._architectures.ARCHITECTURES`: the
:mod:`sklearn_mmoe.nn` module it builds, the parameters it uses, the
function that turns them into that module's arguments, and its docs. The
per-architecture estimators (``MMoEClassifier``, ...) and the generic
``MultiTaskEstimator`` (any architecture, any mix of task kinds, conditional
tasks) both use it. Everything else lives in :mod:`sklearn_mmoe._base`.
"""

from ._architectures import ARCHITECTURES, PARAM_CONSTRAINTS
from ._base import (
    _BaseMultiTask,
    _MultiTaskClassifierMixin,
    _MultiTaskRegressorMixin,
    _store_params,
)
from ._docs import build_docstring
from ._gates import _GateWeightsMixin

__all__ = [
    "SharedBottomClassifier",
    "SharedBottomRegressor",
    "OMoEClassifier",
    "OMoERegressor",
    "MMoEClassifier",
    "MMoERegressor",
    "CGCClassifier",
    "CGCRegressor",
    "PLEClassifier",
    "PLERegressor",
    "SingleTaskClassifier",
    "SingleTaskRegressor",
    "L2ConstrainedClassifier",
    "L2ConstrainedRegressor",
    "CrossStitchClassifier",
    "CrossStitchRegressor",
    "TensorFactorizationClassifier",
    "TensorFactorizationRegressor",
]

class _Architecture(_BaseMultiTask):
    """The module of an estimator is its architecture's, from ARCHITECTURES."""

    _architecture = None  # set by each architecture's base class

    def _architecture_name(self):
        return self._architecture

    @property
    def _module_class(self):
        return ARCHITECTURES[self._architecture_name()].module

    def _module_kwargs(self):
        return ARCHITECTURES[self._architecture_name()].module_kwargs(self)


def _constraints(names):
    """The base constraints and those of the architecture parameters ``names``."""
    return {**_BaseMultiTask._parameter_constraints, **{n: PARAM_CONSTRAINTS[n] for n in names}}


class _SharedBottomBase(_Architecture):
    _architecture = "shared_bottom"
    _parameter_constraints = _constraints(ARCHITECTURES["shared_bottom"].params)

    def __init__(
        self,
        *,
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
    ):
        _store_params(self, locals())


class _MixtureOfExpertsBase(_Architecture):
    _parameter_constraints = _constraints(ARCHITECTURES["mmoe"].params)

    def __init__(
        self,
        *,
        n_experts=8,
        expert_hidden_sizes=(64,),
        gate_hidden_sizes=(),
        tower_hidden_sizes=(16,),
        top_k=None,
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


class _CGCBase(_Architecture):
    _architecture = "cgc"
    _parameter_constraints = _constraints(ARCHITECTURES["cgc"].params)

    def __init__(
        self,
        *,
        n_shared_experts=1,
        n_task_experts=1,
        expert_hidden_sizes=(64,),
        gate_hidden_sizes=(),
        tower_hidden_sizes=(16,),
        top_k=None,
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


class _PLEBase(_Architecture):
    _architecture = "ple"
    _parameter_constraints = _constraints(ARCHITECTURES["ple"].params)

    def __init__(
        self,
        *,
        n_levels=2,
        n_shared_experts=1,
        n_task_experts=1,
        expert_hidden_sizes=(64,),
        gate_hidden_sizes=(),
        tower_hidden_sizes=(16,),
        top_k=None,
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


class _SingleTaskBase(_Architecture):
    _architecture = "single_task"
    _parameter_constraints = _constraints(ARCHITECTURES["single_task"].params)

    def __init__(
        self,
        *,
        hidden_sizes=(64, 16),
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


class _L2ConstrainedBase(_Architecture):
    _architecture = "l2_constrained"
    _parameter_constraints = _constraints(ARCHITECTURES['l2_constrained'].params)

    def __init__(
        self,
        *,
        hidden_sizes=(64, 16),
        coupling=0.01,
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


class _TensorFactorizationBase(_Architecture):
    _architecture = "tensor_factorization"
    _parameter_constraints = _constraints(ARCHITECTURES["tensor_factorization"].params)

    def __init__(
        self,
        *,
        hidden_sizes=(64, 16),
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


# ----------------------------------------------------------------- docs
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


def _doc(architecture, kind):
    spec = ARCHITECTURES[architecture]
    example = _CLASSIFIER_EXAMPLE if kind == "Classifier" else _REGRESSOR_EXAMPLE
    return build_docstring(
        f"{spec.title} multi-task {kind.lower()}.",
        spec.description,
        kind.lower(),
        spec.params,
        example.format(name=spec.type_name(kind), args=spec.example_args),
        spec.see_also.format(kind=kind),
    )


class SharedBottomClassifier(_MultiTaskClassifierMixin, _SharedBottomBase):
    __doc__ = _doc("shared_bottom", "Classifier")


class SharedBottomRegressor(_MultiTaskRegressorMixin, _SharedBottomBase):
    __doc__ = _doc("shared_bottom", "Regressor")


class OMoEClassifier(_GateWeightsMixin, _MultiTaskClassifierMixin, _MixtureOfExpertsBase):
    _architecture = "omoe"
    __doc__ = _doc("omoe", "Classifier")


class OMoERegressor(_GateWeightsMixin, _MultiTaskRegressorMixin, _MixtureOfExpertsBase):
    _architecture = "omoe"
    __doc__ = _doc("omoe", "Regressor")


class MMoEClassifier(_GateWeightsMixin, _MultiTaskClassifierMixin, _MixtureOfExpertsBase):
    _architecture = "mmoe"
    __doc__ = _doc("mmoe", "Classifier")


class MMoERegressor(_GateWeightsMixin, _MultiTaskRegressorMixin, _MixtureOfExpertsBase):
    _architecture = "mmoe"
    __doc__ = _doc("mmoe", "Regressor")


class CGCClassifier(_GateWeightsMixin, _MultiTaskClassifierMixin, _CGCBase):
    __doc__ = _doc("cgc", "Classifier")


class CGCRegressor(_GateWeightsMixin, _MultiTaskRegressorMixin, _CGCBase):
    __doc__ = _doc("cgc", "Regressor")


class PLEClassifier(_GateWeightsMixin, _MultiTaskClassifierMixin, _PLEBase):
    __doc__ = _doc("ple", "Classifier")


class PLERegressor(_GateWeightsMixin, _MultiTaskRegressorMixin, _PLEBase):
    __doc__ = _doc("ple", "Regressor")


class SingleTaskClassifier(_MultiTaskClassifierMixin, _SingleTaskBase):
    __doc__ = _doc("single_task", "Classifier")


class SingleTaskRegressor(_MultiTaskRegressorMixin, _SingleTaskBase):
    __doc__ = _doc("single_task", "Regressor")


class L2ConstrainedClassifier(_MultiTaskClassifierMixin, _L2ConstrainedBase):
    __doc__ = _doc("l2_constrained", "Classifier")


class L2ConstrainedRegressor(_MultiTaskRegressorMixin, _L2ConstrainedBase):
    __doc__ = _doc("l2_constrained", "Regressor")


class CrossStitchClassifier(_MultiTaskClassifierMixin, _SingleTaskBase):
    _architecture = "cross_stitch"
    __doc__ = _doc("cross_stitch", "Classifier")


class CrossStitchRegressor(_MultiTaskRegressorMixin, _SingleTaskBase):
    _architecture = "cross_stitch"
    __doc__ = _doc("cross_stitch", "Regressor")


class TensorFactorizationClassifier(_MultiTaskClassifierMixin, _TensorFactorizationBase):
    __doc__ = _doc("tensor_factorization", "Classifier")


class TensorFactorizationRegressor(_MultiTaskRegressorMixin, _TensorFactorizationBase):
    __doc__ = _doc("tensor_factorization", "Regressor")


def estimator_class(architecture, kind):
    """The estimator class of ``architecture`` and ``kind`` ("Classifier" or "Regressor")."""
    return globals()[ARCHITECTURES[architecture].type_name(kind)]
