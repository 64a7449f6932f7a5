"""The estimators: one class per architecture and task kind, plus generic ones.

Each architecture is described once, in ``ARCHITECTURES``: the
:mod:`sklearn_mmoe.nn` module it builds and the function that turns the
estimator's parameters into that module's arguments. The per-architecture
estimators (``MMoEClassifier``, ...) and the generic ``MultiTaskEstimator``
(any architecture, any mix of task kinds, conditional tasks) both use it.
Everything else lives in :mod:`sklearn_mmoe._base`.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from ._base import (
    _SIZES,
    _BaseMultiTask,
    _check_sizes,
    _MultiTaskClassifierMixin,
    _MultiTaskRegressorMixin,
    _store_params,
)
from ._docs import build_docstring
from ._gates import _GateWeightsMixin
from .nn import (
    PLE,
    CrossStitch,
    L2Constrained,
    MMoE,
    OMoE,
    SharedBottom,
    SingleTask,
    TensorFactorization,
)

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

_COUNT = [Interval(Integral, 0, None, closed="left")]
_POSITIVE = [Interval(Integral, 1, None, closed="left")]


def _layers(est, *names):
    """Validated layer sizes of ``names`` (only the experts' must be non-empty)."""
    return {
        name: _check_sizes(getattr(est, name), name, allow_empty=name != "expert_hidden_sizes")
        for name in names
    }


def _check_top_k(est, n_experts):
    if est.top_k is not None and est.top_k > n_experts:
        raise ValueError(
            f"top_k={est.top_k} is larger than the {n_experts} experts each gate weighs."
        )
    return est.top_k


def _shared_bottom_kwargs(est):
    sizes = _layers(est, "bottom_hidden_sizes", "tower_hidden_sizes")
    if not sizes["bottom_hidden_sizes"]:
        raise ValueError("bottom_hidden_sizes must be a non-empty sequence of positive ints.")
    return dict(**sizes, activation=est.activation, dropout=est.dropout)


def _moe_kwargs(est):
    return dict(
        n_experts=est.n_experts,
        **_layers(est, "expert_hidden_sizes", "gate_hidden_sizes", "tower_hidden_sizes"),
        activation=est.activation,
        dropout=est.dropout,
        top_k=_check_top_k(est, est.n_experts),
    )


def _ple_kwargs(est, n_levels):
    n_gate_experts = est.n_shared_experts + est.n_task_experts
    if n_gate_experts < 1:
        raise ValueError(
            "n_shared_experts + n_task_experts must be at least 1: each task's gate "
            "needs an expert."
        )
    return dict(
        n_levels=n_levels,
        n_shared_experts=est.n_shared_experts,
        n_task_experts=est.n_task_experts,
        **_layers(est, "expert_hidden_sizes", "gate_hidden_sizes", "tower_hidden_sizes"),
        activation=est.activation,
        dropout=est.dropout,
        top_k=_check_top_k(est, n_gate_experts),
    )


def _task_networks_kwargs(est, **extra):
    sizes = _check_sizes(est.hidden_sizes, "hidden_sizes", allow_empty=False)
    return dict(hidden_sizes=sizes, activation=est.activation, dropout=est.dropout, **extra)


#: architecture name -> (module class, estimator -> module keyword arguments)
ARCHITECTURES = {
    "shared_bottom": (SharedBottom, _shared_bottom_kwargs),
    "omoe": (OMoE, _moe_kwargs),
    "mmoe": (MMoE, _moe_kwargs),
    "cgc": (PLE, lambda est: _ple_kwargs(est, n_levels=1)),
    "ple": (PLE, lambda est: _ple_kwargs(est, n_levels=est.n_levels)),
    "single_task": (SingleTask, _task_networks_kwargs),
    "l2_constrained": (L2Constrained, lambda est: _task_networks_kwargs(est, coupling=est.coupling)),
    "cross_stitch": (CrossStitch, _task_networks_kwargs),
    "tensor_factorization": (
        TensorFactorization, lambda est: _task_networks_kwargs(est, rank=est.rank)
    ),
}


class _Architecture(_BaseMultiTask):
    """The module of an estimator is its architecture's, from ARCHITECTURES."""

    _architecture = None  # set by each architecture's base class

    def _architecture_name(self):
        return self._architecture

    @property
    def _module_class(self):
        return ARCHITECTURES[self._architecture_name()][0]

    def _module_kwargs(self):
        return ARCHITECTURES[self._architecture_name()][1](self)


# Each architecture's parameters, in its __init__ signature and in its docs.
_SB_PARAMS = ["bottom_hidden_sizes", "tower_hidden_sizes"]
_MOE_PARAMS = ["n_experts", "expert_hidden_sizes", "gate_hidden_sizes", "tower_hidden_sizes", "top_k"]
_CGC_PARAMS = [
    "n_shared_experts", "n_task_experts", "expert_hidden_sizes", "gate_hidden_sizes",
    "tower_hidden_sizes", "top_k",
]
_PLE_PARAMS = ["n_levels", *_CGC_PARAMS]
_TASK_NETWORK_PARAMS = ["hidden_sizes"]
_L2_PARAMS = ["hidden_sizes", "coupling"]
_TF_PARAMS = ["hidden_sizes", "rank"]

_ARCH_CONSTRAINTS = {
    "bottom_hidden_sizes": _SIZES,
    "tower_hidden_sizes": _SIZES,
    "expert_hidden_sizes": _SIZES,
    "gate_hidden_sizes": _SIZES,
    "n_experts": _POSITIVE,
    "n_shared_experts": _COUNT,
    "n_task_experts": _COUNT,
    "n_levels": _POSITIVE,
    "top_k": [Interval(Integral, 1, None, closed="left"), None],
    "hidden_sizes": _SIZES,
    "coupling": [Interval(Real, 0, None, closed="left")],
    "rank": _POSITIVE,
}


def _constraints(names):
    return {**_BaseMultiTask._parameter_constraints, **{n: _ARCH_CONSTRAINTS[n] for n in names}}


class _SharedBottomBase(_Architecture):
    _architecture = "shared_bottom"
    _parameter_constraints = _constraints(_SB_PARAMS)

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
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
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
    _parameter_constraints = _constraints(_MOE_PARAMS)

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
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
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
    _parameter_constraints = _constraints(_CGC_PARAMS)

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
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
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
    _parameter_constraints = _constraints(_PLE_PARAMS)

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
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
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
    _parameter_constraints = _constraints(_TASK_NETWORK_PARAMS)

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
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
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
    _parameter_constraints = _constraints(_L2_PARAMS)

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
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
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
    _parameter_constraints = _constraints(_TF_PARAMS)

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
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
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
_DESCRIPTIONS = {
    "shared_bottom": (
        "Shared-Bottom",
        """Shared-Bottom network (Caruana, 1997): one MLP shared by all tasks feeds
one tower per task. The baseline of the MMoE paper (Ma et al., KDD 2018).""",
    ),
    "omoe": (
        "One-gate Mixture-of-Experts",
        """One-gate Mixture-of-Experts (OMoE, the MMoE paper's ablation): ``n_experts``
expert MLPs read the input and a single softmax gate ``softmax(W x)`` mixes
their outputs into one representation shared by every task's tower.""",
    ),
    "mmoe": (
        "Multi-gate Mixture-of-Experts",
        """Multi-gate Mixture-of-Experts (MMoE, Ma et al., KDD 2018): ``n_experts``
expert MLPs read the input and every task has its own softmax gate
``softmax(W_k x)`` that mixes the experts' outputs for that task's tower, so
tasks can share experts to the degree they are related. The experts run as
one batched matrix product.""",
    ),
    "cgc": (
        "Customized Gate Control",
        """Customized Gate Control (CGC, Tang et al., RecSys 2020): shared experts
and task-specific experts; each task's gate mixes its own experts and the
shared ones. One level of :class:`PLEClassifier` (same implementation).""",
    ),
    "single_task": (
        "Single-Task",
        """Single-Task baseline: one independent MLP per task, nothing shared (the
tasks' networks are evaluated together, one matrix product per layer).""",
    ),
    "l2_constrained": (
        "L2-Constrained",
        """L2-Constrained baseline (Duong et al., ACL 2015; the MMoE paper's
baseline): one network per task, with ``coupling`` times the squared
distance of each hidden layer's task parameters from their mean added to the
training objective (soft parameter sharing).""",
    ),
    "cross_stitch": (
        "Cross-Stitch",
        """Cross-Stitch networks (Misra et al., CVPR 2016; a baseline of the MMoE
paper): one network column per task, whose activations are mixed across
tasks after every hidden layer by a learned cross-stitch matrix.""",
    ),
    "tensor_factorization": (
        "Tensor-Factorization",
        """Tensor-Factorization baseline (Yang and Hospedales, ICLR 2017; a baseline of
the MMoE paper): each hidden layer's task-specific weights are a Tucker
decomposition with factors shared by the tasks; output layers are per task.""",
    ),
    "ple": (
        "Progressive Layered Extraction",
        """Progressive Layered Extraction (PLE, Tang et al., RecSys 2020): ``n_levels``
levels of shared and task-specific experts. At each level, task ``k``'s gate
mixes task ``k``'s experts and the shared ones; at every level but the last
a shared gate mixes all experts into the input of the next level's shared
experts (progressive separation routing). Each task's tower reads its last
level's representation.""",
    ),
}
#: architecture name -> the estimator parameters its module uses
ARCHITECTURE_PARAMS = {
    "shared_bottom": _SB_PARAMS,
    "omoe": _MOE_PARAMS,
    "mmoe": _MOE_PARAMS,
    "cgc": _CGC_PARAMS,
    "ple": _PLE_PARAMS,
    "single_task": _TASK_NETWORK_PARAMS,
    "l2_constrained": _L2_PARAMS,
    "cross_stitch": _TASK_NETWORK_PARAMS,
    "tensor_factorization": _TF_PARAMS,
}
_EXAMPLE_ARGS = {
    "shared_bottom": "",
    "omoe": "n_experts=4, ",
    "mmoe": "n_experts=4, ",
    "cgc": "n_shared_experts=2, ",
    "ple": "n_levels=2, ",
    "single_task": "",
    "l2_constrained": "coupling=0.1, ",
    "cross_stitch": "",
    "tensor_factorization": "rank=4, learning_rate=3e-3, ",
}
_SEE_ALSO = {
    "shared_bottom": "MMoE{kind} : One gate per task over shared experts.",
    "omoe": "MMoE{kind} : One gate per task instead of one shared gate.",
    "mmoe": "OMoE{kind} : A single gate shared by all tasks.\n"
    "SharedBottom{kind} : One shared MLP, no experts.",
    "cgc": "PLE{kind} : Several levels with progressive separation routing.",
    "ple": "CGC{kind} : One level (n_levels=1).\nMMoE{kind} : Shared experts only.",
    "single_task": "L2Constrained{kind} : The same networks, softly tied.",
    "l2_constrained": "SingleTask{kind} : No tie (coupling=0).",
    "cross_stitch": "SingleTask{kind} : No mixing between the columns.",
    "tensor_factorization": "SingleTask{kind} : Unfactorised task weights.",
}

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
    title, description = _DESCRIPTIONS[architecture]
    name = type_name(architecture, kind)
    example = _CLASSIFIER_EXAMPLE if kind == "Classifier" else _REGRESSOR_EXAMPLE
    return build_docstring(
        f"{title} multi-task {kind.lower()}.",
        description,
        kind.lower(),
        ARCHITECTURE_PARAMS[architecture],
        example.format(name=name, args=_EXAMPLE_ARGS[architecture]),
        _SEE_ALSO[architecture].format(kind=kind),
    )


def type_name(architecture, kind):
    prefix = {
        "shared_bottom": "SharedBottom", "omoe": "OMoE", "mmoe": "MMoE", "cgc": "CGC",
        "ple": "PLE", "single_task": "SingleTask", "l2_constrained": "L2Constrained",
        "cross_stitch": "CrossStitch", "tensor_factorization": "TensorFactorization",
    }
    return prefix[architecture] + kind


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
