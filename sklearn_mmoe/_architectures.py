"""One specification per architecture; the estimators and docs derive from it.

Each architecture is described once, by an :class:`Architecture`: its name,
the :mod:`sklearn_mmoe.nn` module it builds, the estimator parameters that
module uses and how they become its arguments (validated here: the
estimator layer validates, the modules only assert), and the pieces of its
estimators' docstrings. The estimator classes keep their explicit
``__init__`` signatures, as scikit-learn requires;
``tests/test_architecture_specs.py`` checks that they, the modules and the
documentation agree on the parameters and their defaults.
"""

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from . import nn

_SIZES = ["array-like", Interval(Integral, 1, None, closed="left")]
_COUNT = [Interval(Integral, 0, None, closed="left")]
_POSITIVE = [Interval(Integral, 1, None, closed="left")]

#: Constraint of every architecture parameter (scikit-learn's validation).
PARAM_CONSTRAINTS = {
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

# Layer sizes that must name at least one layer (the others may be empty).
_NON_EMPTY_SIZES = {"bottom_hidden_sizes", "expert_hidden_sizes", "hidden_sizes"}


def check_sizes(value, name):
    """Layer sizes as a tuple of positive ints, or a TypeError/ValueError naming ``name``."""
    allow_empty = name not in _NON_EMPTY_SIZES
    sizes = (value,) if isinstance(value, Integral) else tuple(value)
    if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in sizes):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}.")
    if any(s < 1 for s in sizes) or (not sizes and not allow_empty):
        need = "" if allow_empty else "a non-empty "
        raise ValueError(f"{name} must be {need}sequence of positive ints, got {value!r}.")
    return tuple(int(s) for s in sizes)


def _layers(est, *names):
    """Validated layer sizes of ``names``."""
    return {name: check_sizes(getattr(est, name), name) for name in names}


def _check_top_k(est, n_experts):
    if est.top_k is not None and est.top_k > n_experts:
        raise ValueError(
            f"top_k={est.top_k} is larger than the {n_experts} experts each gate weighs."
        )
    return est.top_k


def _shared_bottom_kwargs(est):
    return dict(
        **_layers(est, "bottom_hidden_sizes", "tower_hidden_sizes"),
        activation=est.activation,
        dropout=est.dropout,
    )


def _moe_kwargs(est):
    return dict(
        n_experts=est.n_experts,
        **_layers(est, "expert_hidden_sizes", "gate_hidden_sizes", "tower_hidden_sizes"),
        activation=est.activation,
        dropout=est.dropout,
        top_k=_check_top_k(est, est.n_experts),
    )


def _ple_kwargs(est, n_levels=None):
    n_gate_experts = est.n_shared_experts + est.n_task_experts
    if n_gate_experts < 1:
        raise ValueError(
            "n_shared_experts + n_task_experts must be at least 1: each task's gate "
            "needs an expert."
        )
    return dict(
        n_levels=est.n_levels if n_levels is None else n_levels,
        n_shared_experts=est.n_shared_experts,
        n_task_experts=est.n_task_experts,
        **_layers(est, "expert_hidden_sizes", "gate_hidden_sizes", "tower_hidden_sizes"),
        activation=est.activation,
        dropout=est.dropout,
        top_k=_check_top_k(est, n_gate_experts),
    )


def _cgc_kwargs(est):
    return _ple_kwargs(est, n_levels=1)


def _task_networks_kwargs(est, **extra):
    return dict(**_layers(est, "hidden_sizes"), activation=est.activation, dropout=est.dropout, **extra)


def _l2_constrained_kwargs(est):
    return _task_networks_kwargs(est, coupling=est.coupling)


def _tensor_factorization_kwargs(est):
    return _task_networks_kwargs(est, rank=est.rank)


@dataclass(frozen=True)
class Architecture:
    """Everything the package says about one architecture."""

    #: key of ARCHITECTURES, and MultiTaskEstimator's ``architecture``
    name: str
    #: estimator class names are ``type_prefix + "Classifier"`` / ``"Regressor"``
    type_prefix: str
    #: short name in tables and plots
    label: str
    #: first words of the estimators' docstring summary
    title: str
    #: the docstring's description of the network
    description: str
    #: the :mod:`sklearn_mmoe.nn` module it builds
    module: type
    #: the estimator parameters the module uses, in signature order
    params: tuple
    #: estimator -> the module's keyword arguments (validated)
    module_kwargs: Callable
    #: arguments of the docstring example (``"n_experts=4, "``)
    example_args: str = ""
    #: the docstring's See Also, with ``{kind}`` for Classifier/Regressor
    see_also: str = ""

    def type_name(self, kind):
        """Name of the estimator class of ``kind`` ("Classifier" or "Regressor")."""
        return self.type_prefix + kind


_MOE_PARAMS = ("n_experts", "expert_hidden_sizes", "gate_hidden_sizes", "tower_hidden_sizes", "top_k")
_CGC_PARAMS = (
    "n_shared_experts", "n_task_experts", "expert_hidden_sizes", "gate_hidden_sizes",
    "tower_hidden_sizes", "top_k",
)

#: architecture name -> its specification
ARCHITECTURES = {
    spec.name: spec
    for spec in (
        Architecture(
            name="shared_bottom",
            type_prefix="SharedBottom",
            label="Shared-Bottom",
            title="Shared-Bottom",
            description="""Shared-Bottom network (Caruana, 1997): one MLP shared by all tasks feeds
one tower per task. The baseline of the MMoE paper (Ma et al., KDD 2018).""",
            module=nn.SharedBottom,
            params=("bottom_hidden_sizes", "tower_hidden_sizes"),
            module_kwargs=_shared_bottom_kwargs,
            example_args="",
            see_also="MMoE{kind} : One gate per task over shared experts.",
        ),
        Architecture(
            name="omoe",
            type_prefix="OMoE",
            label="OMoE",
            title="One-gate Mixture-of-Experts",
            description="""One-gate Mixture-of-Experts (OMoE, the MMoE paper's ablation): ``n_experts``
expert MLPs read the input and a single softmax gate ``softmax(W x)`` mixes
their outputs into one representation shared by every task's tower.""",
            module=nn.OMoE,
            params=_MOE_PARAMS,
            module_kwargs=_moe_kwargs,
            example_args="n_experts=4, ",
            see_also="MMoE{kind} : One gate per task instead of one shared gate.",
        ),
        Architecture(
            name="mmoe",
            type_prefix="MMoE",
            label="MMoE",
            title="Multi-gate Mixture-of-Experts",
            description="""Multi-gate Mixture-of-Experts (MMoE, Ma et al., KDD 2018): ``n_experts``
expert MLPs read the input and every task has its own softmax gate
``softmax(W_k x)`` that mixes the experts' outputs for that task's tower, so
tasks can share experts to the degree they are related. The experts run as
one batched matrix product.""",
            module=nn.MMoE,
            params=_MOE_PARAMS,
            module_kwargs=_moe_kwargs,
            example_args="n_experts=4, ",
            see_also=(
                "OMoE{kind} : A single gate shared by all tasks.\n"
                "SharedBottom{kind} : One shared MLP, no experts."
            ),
        ),
        Architecture(
            name="cgc",
            type_prefix="CGC",
            label="CGC",
            title="Customized Gate Control",
            description="""Customized Gate Control (CGC, Tang et al., RecSys 2020): shared experts
and task-specific experts; each task's gate mixes its own experts and the
shared ones. One level of :class:`PLEClassifier` (same implementation).""",
            module=nn.PLE,
            params=_CGC_PARAMS,
            module_kwargs=_cgc_kwargs,
            example_args="n_shared_experts=2, ",
            see_also="PLE{kind} : Several levels with progressive separation routing.",
        ),
        Architecture(
            name="ple",
            type_prefix="PLE",
            label="PLE",
            title="Progressive Layered Extraction",
            description="""Progressive Layered Extraction (PLE, Tang et al., RecSys 2020): ``n_levels``
levels of shared and task-specific experts. At each level, task ``k``'s gate
mixes task ``k``'s experts and the shared ones; at every level but the last
a shared gate mixes all experts into the input of the next level's shared
experts (progressive separation routing). Each task's tower reads its last
level's representation.""",
            module=nn.PLE,
            params=("n_levels", *_CGC_PARAMS),
            module_kwargs=_ple_kwargs,
            example_args="n_levels=2, ",
            see_also="CGC{kind} : One level (n_levels=1).\nMMoE{kind} : Shared experts only.",
        ),
        Architecture(
            name="single_task",
            type_prefix="SingleTask",
            label="Single-Task",
            title="Single-Task",
            description="""Single-Task baseline: one independent MLP per task, nothing shared (the
tasks' networks are evaluated together, one matrix product per layer).""",
            module=nn.SingleTask,
            params=("hidden_sizes",),
            module_kwargs=_task_networks_kwargs,
            example_args="",
            see_also="L2Constrained{kind} : The same networks, softly tied.",
        ),
        Architecture(
            name="l2_constrained",
            type_prefix="L2Constrained",
            label="L2-Constrained",
            title="L2-Constrained",
            description="""L2-Constrained baseline (Duong et al., ACL 2015; the MMoE paper's
baseline): one network per task, with ``coupling`` times the squared
distance of each hidden layer's task parameters from their mean added to the
training objective (soft parameter sharing).""",
            module=nn.L2Constrained,
            params=("hidden_sizes", "coupling"),
            module_kwargs=_l2_constrained_kwargs,
            example_args="coupling=0.1, ",
            see_also="SingleTask{kind} : No tie (coupling=0).",
        ),
        Architecture(
            name="cross_stitch",
            type_prefix="CrossStitch",
            label="Cross-Stitch",
            title="Cross-Stitch",
            description="""Cross-Stitch networks (Misra et al., CVPR 2016; a baseline of the MMoE
paper): one network column per task, whose activations are mixed across
tasks after every hidden layer by a learned cross-stitch matrix.""",
            module=nn.CrossStitch,
            params=("hidden_sizes",),
            module_kwargs=_task_networks_kwargs,
            example_args="",
            see_also="SingleTask{kind} : No mixing between the columns.",
        ),
        Architecture(
            name="tensor_factorization",
            type_prefix="TensorFactorization",
            label="Tensor-Factorization",
            title="Tensor-Factorization",
            description="""Tensor-Factorization baseline (Yang and Hospedales, ICLR 2017; a baseline of
the MMoE paper): each hidden layer's task-specific weights are a Tucker
decomposition with factors shared by the tasks; output layers are per task.""",
            module=nn.TensorFactorization,
            params=("hidden_sizes", "rank"),
            module_kwargs=_tensor_factorization_kwargs,
            example_args="rank=4, learning_rate=3e-3, ",
            see_also="SingleTask{kind} : Unfactorised task weights.",
        ),
    )
}

#: Every architecture parameter, in first-use order.
ALL_PARAMS = tuple(dict.fromkeys(p for spec in ARCHITECTURES.values() for p in spec.params))
