"""Pure PyTorch building blocks for multi-task networks.

Nothing in this module depends on scikit-learn: the networks here can be
trained with any PyTorch loop. The estimators in :mod:`sklearn_mmoe` wrap
them.

Every architecture maps a float tensor ``x`` of shape ``(batch, n_features)``
to logits of shape ``(batch, n_tasks, max(n_outputs))``. Task ``t`` uses the
first ``n_outputs[t]`` columns of ``logits[:, t]``: one column for a binary or
a regression task, one per class for a multiclass task.

Parallel sub-networks (the experts of a mixture, the gates, the per-task
towers) are stored as stacked parameters and evaluated with one batched matrix
multiplication per layer instead of a Python loop over modules. A stack of
``P`` layers that all read the same input is a single
``(batch, in) @ (in, P * out)`` product.
"""

import math
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _random
from .weighting import make_weighting

__all__ = [
    "ACTIVATIONS",
    "ParallelLinear",
    "Dropout",
    "ParallelMLP",
    "Gates",
    "Towers",
    "SharedBottom",
    "MixtureOfExperts",
    "OMoE",
    "MMoE",
    "PLE",
    "SingleTask",
    "L2Constrained",
    "CrossStitch",
    "TensorFactorization",
    "TabularEmbedding",
    "EmbeddedNetwork",
    "MaskedMultiTaskLoss",
    "CVR_OBJECTIVES",
]

#: Activation functions by name.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}

ACTIVATIONS_TYPES = tuple(ACTIVATIONS.values())
TASK_TYPES = ("binary", "multiclass", "regression")
#: Training objectives of a conditional task's output (see MaskedMultiTaskLoss).
CVR_OBJECTIVES = ("esmm", "ips", "dr")
#: Normalisations of the inverse-propensity weights (see MaskedMultiTaskLoss).
PROPENSITY_NORMALIZATIONS = ("none", "batch")


# Output width below which a weight is multiplied in column-major layout.
_NARROW = 16


def _gemm_layout(weight, narrow: int = _NARROW):
    """``weight`` (``(..., in, out)``), in the memory layout its product wants.

    When gradients are computed, a product ``x @ weight`` with fewer than 16
    output columns runs 2 to 5 times slower (forward and weight gradient)
    with ``weight`` row-major than column-major, as :class:`torch.nn.Linear`
    stores it, on MKL (measured for 2 to 12 columns, 16 to 2,000 inputs, 256
    to 4,096 rows); from 16 columns up the two are within about 10 %. Such a
    weight is small, so it is copied to column-major for the product, and its
    gradient copied back; the parameter keeps its documented shape.

    Without gradients (inference) the row-major product is kept: there, a
    row's result does not depend on the other rows of the batch, which the
    column-major kernel does not guarantee for these shapes. A graph recorded
    for serving (``torch.jit.trace``, ``torch.export``, the ONNX exporter)
    is inference too, whether or not gradients were on while recording: it
    keeps the row-major product, so it computes what ``predict`` does. Under
    TorchScript the choice stays a run-time branch (``narrow`` is an
    argument because TorchScript reads no module-level ints).
    """
    if weight.shape[-1] >= narrow or not (weight.requires_grad and torch.is_grad_enabled()):
        return weight
    if _recording():
        return weight
    return weight.transpose(-1, -2).contiguous().transpose(-1, -2)


def _mix_experts(gates, experts):
    """Per gate and row, the gate-weighted sum of the experts' outputs.

    ``gates`` is ``(n_gates, batch, n_experts)`` and ``experts``
    ``(n_experts, batch, width)``; the result is ``(n_gates, batch, width)``,
    ``einsum("gbe,ebd->gbd", gates, experts)`` to the bit (tested). One
    ``bmm`` over the rows reads both operands in the layout that
    :class:`ParallelLinear` leaves them in (row-major ``(batch, n, ...)``
    seen through a transpose); the einsum's forward and backward passes took
    1.15 to 1.2 times as long (2 gates, 8 experts of 64 units, 256 rows:
    about 60 us of a 4 ms training step).
    """
    return torch.bmm(gates.transpose(0, 1), experts.transpose(0, 1)).transpose(0, 1)


def _recording():
    """Whether this forward pass is being recorded by a tracer or exporter."""
    if torch.jit.is_scripting():
        return False
    return torch.jit.is_tracing() or _is_exporting()


# torch.compiler.is_exporting is in torch >= 2.5; before it, torch.export
# recorded through dynamo, which is_compiling reports (torch >= 2.3).
_is_exporting = getattr(
    torch.compiler, "is_exporting", getattr(torch.compiler, "is_compiling", lambda: False)
)
# dynamo (torch.compile, and torch.export's strict mode) is tracing.
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def _constant_columns(x) -> int:
    """How many leading columns of ``x`` are known to need no gradient (0: none known).

    :class:`TabularEmbedding` marks its output while training when its
    first columns are a fixed function of the input (the numeric columns
    that pass through, or are encoded without trained parameters) and the
    input needs no gradient: a one-hot Pipeline's 0/1 columns, for example.
    Only that tensor object carries the mark; anything computed from it does
    not.
    """
    return getattr(x, "_sklearn_mmoe_constant_columns", 0)


class _AddmmConstantColumns(torch.autograd.Function):
    """``addmm(bias, x, weight)`` whose backward pass leaves out the input
    gradient of ``x``'s first ``k`` columns (zeros: no parameter reads them).

    The first layer's input gradient is one GEMM over all input columns; on
    a one-hot Pipeline most of them are 0/1 columns that pass through, and
    an MMoE training step on Adult's one-hot Pipeline took 13 % less time.
    """

    @staticmethod
    def forward(ctx, bias, x, weight, k):
        ctx.save_for_backward(x, weight)
        ctx.k = k
        return torch.addmm(bias, x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        k = ctx.k
        grad_bias = grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_bias = grad.sum(0, keepdim=True)
        if ctx.needs_input_grad[1]:
            grad_x = torch.cat(
                [grad.new_zeros(grad.shape[0], k), grad.mm(weight[k:].t())], dim=1
            )
        if ctx.needs_input_grad[2]:
            grad_weight = x.t().mm(grad)
        return grad_bias, grad_x, grad_weight, None


class ParallelLinear(nn.Module):
    """``n_parallel`` independent affine maps evaluated as one batched product.

    Parameters
    ----------
    n_parallel : int
        Number of independent maps ``P``.
    in_features, out_features : int
        Input and output width of each map.
    shared_input : bool, default=False
        If True, every map reads the same input of shape ``(batch, in)`` and
        the layer is one ``(batch, in) @ (in, P * out)`` matrix product (the
        weight is stored as ``(in, P, out)`` so that no copy is needed). If
        False, map ``p`` reads ``x[p]`` of an input of shape
        ``(P, batch, in)`` (weight stored as ``(P, in, out)``, one
        ``torch.baddbmm``).

    Notes
    -----
    The output always has shape ``(P, batch, out)``. Parameters are
    initialised like :class:`torch.nn.Linear`: uniform on
    ``[-1/sqrt(in), 1/sqrt(in)]``. While gradients are computed, a product
    with fewer than 16 output columns (``P * out`` with a shared input,
    ``out`` otherwise) reads a column-major copy of the weight, which BLAS
    multiplies several times faster at that width; inference uses the weight
    as stored, so that a row's output does not depend on the other rows.
    With a shared input whose leading columns ``_constant_columns(x)``
    reports as needing no gradient (a :class:`TabularEmbedding`'s output
    while training), the backward pass computes the input gradient of the
    other columns only.
    """

    def __init__(self, n_parallel, in_features, out_features, shared_input=False):
        super().__init__()
        self.n_parallel = n_parallel
        self.in_features = in_features
        self.out_features = out_features
        self.shared_input = shared_input
        shape = (
            (in_features, n_parallel, out_features)
            if shared_input
            else (n_parallel, in_features, out_features)
        )
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(n_parallel, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        generator = _random.generator()
        nn.init.uniform_(self.weight, -bound, bound, generator=generator)
        nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x):
        if self.shared_input:
            bias = self.bias.view(1, -1)
            weight = _gemm_layout(self.weight.view(self.in_features, -1))
            if torch.jit.is_scripting():
                out = torch.addmm(bias, x, weight)
            else:
                constant = _constant_columns(x)
                out = (_AddmmConstantColumns.apply(bias, x, weight, constant) if constant
                       else torch.addmm(bias, x, weight))
            return out.view(x.shape[0], self.n_parallel, self.out_features).transpose(
                0, 1
            )
        return torch.baddbmm(self.bias, x, _gemm_layout(self.weight))

    def extra_repr(self):
        return (
            f"n_parallel={self.n_parallel}, in_features={self.in_features}, "
            f"out_features={self.out_features}, shared_input={self.shared_input}"
        )


class Dropout(nn.Module):
    """:class:`torch.nn.Dropout` whose mask comes from the fit's own generator.

    In training mode, each element is zeroed with probability ``p`` and the
    others are scaled by ``1 / (1 - p)``. The mask is drawn from the
    generator that the running fit owns for the input's device (see
    ``sklearn_mmoe._random``), so that fits in concurrent threads do not
    share torch's global generator; outside a fit, from the global one like
    :class:`torch.nn.Dropout`.

    Parameters
    ----------
    p : float
        Probability of an element to be zeroed, in ``[0, 1)``.
    """

    def __init__(self, p):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}.")
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=_random.generator(x.device))
        return x * mask.div_(keep)

    def extra_repr(self):
        return f"p={self.p}"


def _hidden_stack(n_parallel, in_features, sizes, activation, dropout, shared_input):
    """Layers of a stack of parallel MLPs, each followed by activation/dropout."""
    layers = []
    for i, size in enumerate(sizes):
        layers.append(
            ParallelLinear(n_parallel, in_features, size, shared_input and i == 0)
        )
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(Dropout(dropout))
        in_features = size
    return layers, in_features


def _output_stack(n_parallel, in_features, hidden_sizes, out_features, activation, dropout,
                  shared_input):
    """Hidden layers (activation, dropout) followed by a linear output layer."""
    layers, width = _hidden_stack(
        n_parallel, in_features, hidden_sizes, activation, dropout, shared_input
    )
    layers.append(
        ParallelLinear(n_parallel, width, out_features, shared_input and not hidden_sizes)
    )
    return nn.Sequential(*layers)


class ParallelMLP(nn.Module):
    """``n_parallel`` MLPs of identical shape, evaluated together.

    Each hidden layer is a :class:`ParallelLinear` followed by the activation
    and, if ``dropout > 0``, dropout. The experts of a mixture-of-experts
    layer are one ``ParallelMLP``.

    Parameters
    ----------
    n_parallel : int
        Number of MLPs ``P``.
    in_features : int
        Input width.
    hidden_sizes : sequence of int
        Width of each layer. Must not be empty.
    activation : str, default="relu"
        A key of :data:`ACTIVATIONS`.
    dropout : float, default=0.0
        Dropout probability after each activation.
    shared_input : bool, default=True
        Whether all MLPs read the same ``(batch, in)`` input (otherwise the
        input is ``(P, batch, in)``).

    Examples
    --------
    >>> import torch
    >>> experts = ParallelMLP(8, in_features=5, hidden_sizes=(16,))
    >>> experts(torch.zeros(3, 5)).shape
    torch.Size([8, 3, 16])
    """

    def __init__(
        self,
        n_parallel,
        in_features,
        hidden_sizes,
        activation="relu",
        dropout=0.0,
        shared_input=True,
    ):
        super().__init__()
        # Sizes are validated by the estimators (sklearn_mmoe._architectures).
        assert len(hidden_sizes) > 0, "hidden_sizes must contain at least one layer size."
        layers, self.out_features = _hidden_stack(
            n_parallel, in_features, hidden_sizes, activation, dropout, shared_input
        )
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class Gates(nn.Module):
    """Softmax gates over experts: ``g_k(x) = softmax(W_k x)``.

    With ``hidden_sizes`` non-empty each gate is ``softmax(W_k MLP_k(x))``.
    All gates are computed together.

    Parameters
    ----------
    n_gates : int
        Number of gates (one per task for MMoE, one for OMoE).
    in_features : int
        Input width.
    n_experts : int
        Number of experts each gate weighs.
    hidden_sizes : sequence of int, default=()
        Optional hidden layers before the softmax layer.
    activation : str, default="relu"
        Activation of the hidden layers.
    dropout : float, default=0.0
        Dropout after each hidden activation.
    shared_input : bool, default=True
        Whether every gate reads the same ``(batch, in)`` input, or gate ``k``
        reads ``x[k]`` of a ``(n_gates, batch, in)`` input (PLE's upper
        levels, where each task's gate reads that task's representation).
    top_k : int, default=None
        Sparse gating: keep the ``top_k`` largest logits of each row and set
        the other experts' weights to exactly zero (softmax over the kept
        logits). Gradients flow through the selected experts. None keeps all.

    Returns
    -------
    Gate weights of shape ``(n_gates, batch, n_experts)``; each row sums to 1.
    """

    def __init__(
        self,
        n_gates,
        in_features,
        n_experts,
        hidden_sizes=(),
        activation="relu",
        dropout=0.0,
        shared_input=True,
        top_k=None,
    ):
        super().__init__()
        self.layers = _output_stack(
            n_gates, in_features, hidden_sizes, n_experts, activation, dropout, shared_input
        )
        self.top_k = top_k if top_k is not None and top_k < n_experts else None

    def forward(self, x):
        logits = self.layers(x)
        if self.top_k is not None:
            kept, index = logits.topk(self.top_k, dim=-1)
            logits = torch.full_like(logits, float("-inf")).scatter(-1, index, kept)
        return torch.softmax(logits, dim=-1)


class Towers(nn.Module):
    """One tower per task: hidden layers, then an output layer of logits.

    Parameters
    ----------
    n_tasks : int
        Number of towers.
    in_features : int
        Width of the representation each tower reads.
    n_outputs : int
        Logits per tower (the largest number any task needs).
    hidden_sizes : sequence of int, default=()
        Hidden layers of each tower (may be empty: a linear output layer).
    activation : str, default="relu"
        Activation of the hidden layers.
    dropout : float, default=0.0
        Dropout after each hidden activation.
    shared_input : bool, default=False
        Whether every tower reads the same ``(batch, in)`` representation
        (Shared-Bottom, OMoE) or its own slice of a ``(n_tasks, batch, in)``
        input (MMoE).

    Returns
    -------
    Logits of shape ``(n_tasks, batch, n_outputs)``.
    """

    def __init__(
        self,
        n_tasks,
        in_features,
        n_outputs,
        hidden_sizes=(),
        activation="relu",
        dropout=0.0,
        shared_input=False,
    ):
        super().__init__()
        self.layers = _output_stack(
            n_tasks, in_features, hidden_sizes, n_outputs, activation, dropout, shared_input
        )

    def forward(self, x):
        return self.layers(x)


class _MultiTaskNetwork(nn.Module):
    """Common interface of the architectures (used by loss-weighting strategies)."""

    def shared_parameters(self):
        """Parameters shared between tasks: all but the towers'."""
        towers = {id(p) for p in self.towers.parameters()}
        return [p for p in self.parameters() if id(p) not in towers]

    def last_shared_layer(self):
        """Weight of the last layer before the towers (GradNorm's ``W``)."""
        return self._last_shared_stack().layers[-1 - self._trailing_modules()].weight

    def penalty(self):
        """A regularisation term added to the training objective, or None."""
        return None

    def _trailing_modules(self):
        # activation (and dropout) follow the last ParallelLinear of a stack
        stack = self._last_shared_stack().layers
        return next(i for i, m in enumerate(reversed(stack)) if isinstance(m, ParallelLinear))


class SharedBottom(_MultiTaskNetwork):
    """Shared-Bottom multi-task network (Caruana, 1997).

    One MLP shared by all tasks feeds one tower per task.

    Parameters
    ----------
    n_features : int
        Input width.
    n_outputs : sequence of int
        Logits needed by each task (1 for binary and regression tasks, the
        number of classes for a multiclass task).
    bottom_hidden_sizes : sequence of int, default=(128,)
        Layers of the shared bottom MLP.
    tower_hidden_sizes : sequence of int, default=(16,)
        Hidden layers of each task tower.
    activation : str, default="relu"
        Activation of every hidden layer.
    dropout : float, default=0.0
        Dropout after every hidden activation.

    Examples
    --------
    >>> import torch
    >>> net = SharedBottom(n_features=5, n_outputs=[1, 3])
    >>> net(torch.zeros(4, 5)).shape
    torch.Size([4, 2, 3])
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        bottom_hidden_sizes=(128,),
        tower_hidden_sizes=(16,),
        activation="relu",
        dropout=0.0,
    ):
        super().__init__()
        self.n_outputs = tuple(int(k) for k in n_outputs)
        self.bottom = ParallelMLP(
            1, n_features, bottom_hidden_sizes, activation, dropout, shared_input=True
        )
        self.towers = Towers(
            len(self.n_outputs),
            self.bottom.out_features,
            max(self.n_outputs),
            tower_hidden_sizes,
            activation,
            dropout,
            shared_input=True,
        )

    def _last_shared_stack(self):
        return self.bottom

    def forward(self, x):
        return self.towers(self.bottom(x)[0]).transpose(0, 1)


class MixtureOfExperts(_MultiTaskNetwork):
    """Mixture-of-experts multi-task network (MMoE or OMoE).

    ``n_experts`` expert MLPs read the input; a softmax gate mixes their
    outputs, and each task's tower reads a mixture. With ``multi_gate=True``
    every task has its own gate (MMoE, Ma et al., KDD 2018); with
    ``multi_gate=False`` one gate is shared by all tasks (OMoE).

    Parameters
    ----------
    n_features : int
        Input width.
    n_outputs : sequence of int
        Logits needed by each task.
    n_experts : int, default=8
        Number of experts.
    expert_hidden_sizes : sequence of int, default=(64,)
        Layers of each expert MLP (ReLU after each, as in the paper).
    gate_hidden_sizes : sequence of int, default=()
        Optional hidden layers of each gate before its softmax layer.
    tower_hidden_sizes : sequence of int, default=(16,)
        Hidden layers of each task tower.
    activation : str, default="relu"
        Activation of every hidden layer.
    dropout : float, default=0.0
        Dropout after every hidden activation.
    multi_gate : bool, default=True
        One gate per task (MMoE) or a single shared gate (OMoE).
    top_k : int, default=None
        Sparse gating: each gate keeps its ``top_k`` largest experts per row
        (see :class:`Gates`).

    Examples
    --------
    >>> import torch
    >>> net = MixtureOfExperts(n_features=5, n_outputs=[1, 1], n_experts=4)
    >>> net(torch.zeros(3, 5)).shape
    torch.Size([3, 2, 1])
    >>> net.gate_weights(torch.zeros(3, 5)).shape  # (n_gates, batch, n_experts)
    torch.Size([2, 3, 4])
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        n_experts=8,
        expert_hidden_sizes=(64,),
        gate_hidden_sizes=(),
        tower_hidden_sizes=(16,),
        activation="relu",
        dropout=0.0,
        multi_gate=True,
        top_k=None,
    ):
        super().__init__()
        self.n_outputs = tuple(int(k) for k in n_outputs)
        n_tasks = len(self.n_outputs)
        self.multi_gate = multi_gate
        self.experts = ParallelMLP(
            n_experts, n_features, expert_hidden_sizes, activation, dropout
        )
        self.gates = Gates(
            n_tasks if multi_gate else 1,
            n_features,
            n_experts,
            gate_hidden_sizes,
            activation,
            dropout,
            top_k=top_k,
        )
        self.towers = Towers(
            n_tasks,
            self.experts.out_features,
            max(self.n_outputs),
            tower_hidden_sizes,
            activation,
            dropout,
            shared_input=not multi_gate,
        )

    def gate_weights(self, x):
        """Gate weights of shape ``(n_gates, batch, n_experts)``."""
        return self.gates(x)

    def _last_shared_stack(self):
        return self.experts

    def forward(self, x):
        mixed = _mix_experts(self.gates(x), self.experts(x))
        if not self.multi_gate:
            mixed = mixed[0]
        return self.towers(mixed).transpose(0, 1)


class MMoE(MixtureOfExperts):
    """Multi-gate Mixture-of-Experts: one softmax gate per task.

    See :class:`MixtureOfExperts` for the parameters (``multi_gate`` is fixed
    to True).
    """

    def __init__(self, n_features, n_outputs, **kwargs):
        super().__init__(n_features, n_outputs, multi_gate=True, **kwargs)


class OMoE(MixtureOfExperts):
    """One-gate Mixture-of-Experts: a single softmax gate shared by all tasks.

    See :class:`MixtureOfExperts` for the parameters (``multi_gate`` is fixed
    to False).
    """

    def __init__(self, n_features, n_outputs, **kwargs):
        super().__init__(n_features, n_outputs, multi_gate=False, **kwargs)


class PLE(_MultiTaskNetwork):
    """Progressive Layered Extraction (Tang et al., RecSys 2020).

    Every level has ``n_shared_experts`` shared experts and, for every task,
    ``n_task_experts`` task-specific experts. Task ``k``'s gate mixes its own
    experts and the shared ones into task ``k``'s representation; at every
    level but the last, a shared gate mixes all experts into the shared
    representation that the next level's shared experts read (progressive
    separation routing). At the first level every expert and gate reads the
    input; above it, task ``k``'s experts and gate read task ``k``'s
    representation and the shared ones read the shared representation. Each
    task's tower reads its representation from the last level. With
    ``n_levels=1`` this is CGC (Customized Gate Control).

    The experts of a level (task-specific and shared) run as one batched
    matrix product.

    Parameters
    ----------
    n_features : int
        Input width.
    n_outputs : sequence of int
        Logits needed by each task.
    n_levels : int, default=2
        Number of extraction levels (1: CGC).
    n_shared_experts : int, default=1
        Shared experts per level.
    n_task_experts : int, default=1
        Experts per task per level.
    expert_hidden_sizes : sequence of int, default=(64,)
        Layers of each expert MLP (every level).
    gate_hidden_sizes : sequence of int, default=()
        Optional hidden layers of each gate.
    tower_hidden_sizes : sequence of int, default=(16,)
        Hidden layers of each task tower.
    activation : str, default="relu"
        Activation of every hidden layer.
    dropout : float, default=0.0
        Dropout after every hidden activation.
    top_k : int, default=None
        Sparse gating (see :class:`Gates`).

    Examples
    --------
    >>> import torch
    >>> net = PLE(n_features=5, n_outputs=[1, 1, 1], n_levels=2, n_shared_experts=2)
    >>> net(torch.zeros(4, 5)).shape
    torch.Size([4, 3, 1])
    >>> [tuple(g.shape) for g in net.gate_weights(torch.zeros(4, 5))[0]]  # level 0
    [(3, 4, 3), (1, 4, 5)]
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        n_levels=2,
        n_shared_experts=1,
        n_task_experts=1,
        expert_hidden_sizes=(64,),
        gate_hidden_sizes=(),
        tower_hidden_sizes=(16,),
        activation="relu",
        dropout=0.0,
        top_k=None,
    ):
        super().__init__()
        self.n_outputs = tuple(int(k) for k in n_outputs)
        n_tasks = len(self.n_outputs)
        # Counts are validated by the estimators (sklearn_mmoe._architectures).
        assert n_levels >= 1 and n_shared_experts >= 0 and n_task_experts >= 0, (
            "n_levels must be >= 1 and expert counts >= 0."
        )
        assert n_shared_experts + n_task_experts >= 1, "Each task's gate needs at least one expert."
        n_experts = n_tasks * n_task_experts + n_shared_experts
        # Experts are numbered task 0's, task 1's, ..., then the shared ones.
        shared = list(range(n_tasks * n_task_experts, n_experts))
        task_experts = [
            list(range(t * n_task_experts, (t + 1) * n_task_experts)) + shared
            for t in range(n_tasks)
        ]
        self.n_task_experts, self.n_shared_experts = n_task_experts, n_shared_experts

        self.experts, self.task_gates, self.shared_gates = (
            nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        )
        width = n_features
        for level in range(n_levels):
            first = level == 0
            self.experts.append(
                ParallelMLP(n_experts, width, expert_hidden_sizes, activation, dropout, first)
            )
            gate_args = (gate_hidden_sizes, activation, dropout)
            self.task_gates.append(
                Gates(n_tasks, width, len(task_experts[0]), *gate_args, first, top_k)
            )
            if level < n_levels - 1 and n_shared_experts:
                self.shared_gates.append(Gates(1, width, n_experts, *gate_args, True, top_k))
            width = self.experts[-1].out_features
        self.towers = Towers(
            n_tasks, width, max(self.n_outputs), tower_hidden_sizes, activation, dropout
        )

    # Experts are numbered task 0's, task 1's, ..., then the shared ones. The
    # two helpers below route with views, expand and slices rather than index
    # gathers, whose backward is a scatter-add (index_put).
    def _expert_inputs(self, task_rep, shared_rep):
        """Above the first level: each expert's input, (n_experts, batch, width).

        Task ``t``'s experts read task ``t``'s representation, the shared
        experts the shared one.
        """
        n_tasks, batch, width = task_rep.shape
        parts = []
        if self.n_task_experts:
            own = task_rep.unsqueeze(1).expand(n_tasks, self.n_task_experts, batch, width)
            parts.append(own.reshape(-1, batch, width))
        if self.n_shared_experts:
            parts.append(shared_rep.unsqueeze(0).expand(self.n_shared_experts, batch, width))
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _mix_tasks(self, gates, out):
        """Each task's gate (T, batch, own + shared) over its own and the shared experts."""
        n_tasks, n_own = gates.shape[0], self.n_task_experts
        mixed = 0
        if n_own:
            own = out[: n_tasks * n_own].unflatten(0, (n_tasks, n_own))
            mixed = torch.einsum("tbk,tkbh->tbh", gates[..., :n_own], own)
        if self.n_shared_experts:
            shared = out[n_tasks * n_own :]
            mixed = mixed + torch.einsum("tbk,kbh->tbh", gates[..., n_own:], shared)
        return mixed

    def _levels(self, x):
        """Yield each level's (task gates, shared gate or None, task reps)."""
        task_rep = shared_rep = x
        for level, (experts, task_gates) in enumerate(zip(self.experts, self.task_gates)):
            if level == 0:
                out = experts(x)
            else:
                out = experts(self._expert_inputs(task_rep, shared_rep))
            gates = task_gates(task_rep)
            task_rep = self._mix_tasks(gates, out)
            shared_gate = None
            if level < len(self.shared_gates):
                shared_gate = self.shared_gates[level](shared_rep)
                shared_rep = torch.einsum("be,ebh->bh", shared_gate[0], out)
            yield gates, shared_gate, task_rep

    def _last_shared_stack(self):
        return self.experts[-1]

    def gate_weights(self, x):
        """Per level: ``(task gates (T, batch, k), shared gate (1, batch, E) or None)``."""
        return [(gates, shared) for gates, shared, _ in self._levels(x)]

    def forward(self, x):
        *_, (_, _, task_rep) = self._levels(x)
        return self.towers(task_rep).transpose(0, 1)


def _task_major(layer):
    """A ParallelLinear's weight as (n_parallel, in, out)."""
    return layer.weight.transpose(0, 1) if layer.shared_input else layer.weight


class SingleTask(_MultiTaskNetwork):
    """One independent MLP per task: the single-task baseline (no sharing).

    All task networks are evaluated together (one matrix product per layer),
    but no parameter is shared.

    Parameters
    ----------
    n_features : int
        Input width.
    n_outputs : sequence of int
        Logits needed by each task.
    hidden_sizes : sequence of int, default=(64, 16)
        Hidden layers of each task's network.
    activation : str, default="relu"
        Activation of every hidden layer.
    dropout : float, default=0.0
        Dropout after every hidden activation.

    Examples
    --------
    >>> import torch
    >>> SingleTask(n_features=5, n_outputs=[1, 1])(torch.zeros(3, 5)).shape
    torch.Size([3, 2, 1])
    """

    def __init__(self, n_features, n_outputs, hidden_sizes=(64, 16), activation="relu", dropout=0.0):
        super().__init__()
        self.n_outputs = tuple(int(k) for k in n_outputs)
        self.towers = Towers(
            len(self.n_outputs), n_features, max(self.n_outputs), hidden_sizes, activation,
            dropout, shared_input=True,
        )

    def last_shared_layer(self):
        raise ValueError(f"{type(self).__name__} has no shared layer (GradNorm needs one).")

    def forward(self, x):
        return self.towers(x).transpose(0, 1)


class L2Constrained(SingleTask):
    """Task networks tied by an L2 penalty between their parameters.

    The MMoE paper's "L2-Constrained" baseline (Duong et al., ACL 2015): each
    task has its own network of the same shape, and
    ``coupling * sum_layers sum_t ||theta_t - mean_t(theta)||^2`` over the
    hidden layers' weights and biases is added to the training objective
    (for two tasks, half the squared distance between their parameters).

    Parameters
    ----------
    n_features, n_outputs, hidden_sizes, activation, dropout
        As in :class:`SingleTask`.
    coupling : float, default=0.01
        Strength of the penalty (0: independent single-task networks).
    """

    def __init__(self, n_features, n_outputs, hidden_sizes=(64, 16), activation="relu",
                 dropout=0.0, coupling=0.01):
        super().__init__(n_features, n_outputs, hidden_sizes, activation, dropout)
        self.coupling = coupling

    def penalty(self):
        hidden = [m for m in self.towers.layers if isinstance(m, ParallelLinear)][:-1]
        total = 0.0
        for layer in hidden:
            for values in (_task_major(layer), layer.bias):
                total = total + torch.square(values - values.mean(0, keepdim=True)).sum()
        return self.coupling * total


class CrossStitch(_MultiTaskNetwork):
    """Cross-stitch networks (Misra et al., CVPR 2016).

    One network column per task; after each hidden layer, the columns'
    activations are mixed by a learned ``(n_tasks, n_tasks)`` cross-stitch
    matrix (initialised to ``alpha`` on the diagonal and the rest spread over
    the other tasks), so the tasks learn how much to share at each depth.

    Parameters
    ----------
    n_features, n_outputs, hidden_sizes, activation, dropout
        As in :class:`SingleTask`.
    alpha : float, default=0.9
        Initial weight of a task's own column in each mixture.

    Examples
    --------
    >>> import torch
    >>> CrossStitch(n_features=5, n_outputs=[1, 3])(torch.zeros(3, 5)).shape
    torch.Size([3, 2, 3])
    """

    def __init__(self, n_features, n_outputs, hidden_sizes=(64, 16), activation="relu",
                 dropout=0.0, alpha=0.9):
        super().__init__()
        self.n_outputs = tuple(int(k) for k in n_outputs)
        n_tasks = len(self.n_outputs)
        self.columns = ParallelMLP(n_tasks, n_features, hidden_sizes, activation, dropout)
        off = (1 - alpha) / (n_tasks - 1) if n_tasks > 1 else 0.0
        init = torch.full((n_tasks, n_tasks), off) + torch.eye(n_tasks) * (
            (alpha if n_tasks > 1 else 1.0) - off
        )
        self.stitches = nn.ParameterList(nn.Parameter(init.clone()) for _ in hidden_sizes)
        self.towers = Towers(n_tasks, self.columns.out_features, max(self.n_outputs))

    def _last_shared_stack(self):
        return self.columns

    def forward(self, x):
        h = x
        stitches = iter(self.stitches)
        for module in self.columns.layers:
            h = module(h)
            if isinstance(module, ACTIVATIONS_TYPES):
                h = torch.einsum("ts,sbd->tbd", next(stitches), h)
        return self.towers(h).transpose(0, 1)


class TensorFactorization(_MultiTaskNetwork):
    """Deep multi-task representation learning by tensor factorisation.

    Yang and Hospedales (ICLR 2017), Tucker version: the stacked weights of
    the tasks' hidden layer ``l``, a ``(n_tasks, in, out)`` tensor, are
    ``S x U_task x U_in x U_out`` with a core ``S`` of size ``rank`` in each
    mode, so the tasks share the factors; biases are per task. Each task has
    its own linear output layer.

    Parameters
    ----------
    n_features, n_outputs, hidden_sizes, activation, dropout
        As in :class:`SingleTask`.
    rank : int, default=8
        Tucker rank in each mode (capped by the mode's size).

    Examples
    --------
    >>> import torch
    >>> TensorFactorization(n_features=5, n_outputs=[1, 1], rank=3)(torch.zeros(3, 5)).shape
    torch.Size([3, 2, 1])
    """

    def __init__(self, n_features, n_outputs, hidden_sizes=(64, 16), activation="relu",
                 dropout=0.0, rank=8):
        super().__init__()
        self.n_outputs = tuple(int(k) for k in n_outputs)
        n_tasks = len(self.n_outputs)
        assert len(hidden_sizes) > 0, "hidden_sizes must contain at least one layer size."
        self.cores, self.task_factors, self.in_factors, self.out_factors = (
            nn.ParameterList() for _ in range(4)
        )
        self.biases = nn.ParameterList()
        width = n_features
        for size in hidden_sizes:
            r_task, r_in, r_out = min(rank, n_tasks), min(rank, width), min(rank, size)
            # With orthonormal factors, a composed weight has the core's standard
            # deviation times sqrt(r_task r_in r_out / (n_tasks in out)); choose
            # the core's so that the weights start like nn.Linear's
            # (std 1 / sqrt(3 in)).
            scale = (n_tasks * size / (3.0 * r_task * r_in * r_out)) ** 0.5
            g = _random.generator()
            self.cores.append(nn.Parameter(torch.randn(r_task, r_in, r_out, generator=g) * scale))
            self.task_factors.append(
                nn.Parameter(torch.linalg.qr(torch.randn(n_tasks, r_task, generator=g))[0])
            )
            self.in_factors.append(
                nn.Parameter(torch.linalg.qr(torch.randn(width, r_in, generator=g))[0])
            )
            self.out_factors.append(
                nn.Parameter(torch.linalg.qr(torch.randn(size, r_out, generator=g))[0])
            )
            self.biases.append(nn.Parameter(torch.zeros(n_tasks, 1, size)))
            width = size
        self.activation = ACTIVATIONS[activation]()
        self.dropout = Dropout(dropout) if dropout else nn.Identity()
        self.towers = Towers(n_tasks, width, max(self.n_outputs))

    def layer_weights(self, layer):
        """The ``(n_tasks, in, out)`` weights of hidden layer ``layer``."""
        # (core x task factor) first, then U_in @ G_t @ U_out^T: two small
        # matrix products instead of a four-way contraction.
        per_task = torch.einsum("abc,ta->tbc", self.cores[layer], self.task_factors[layer])
        return self.in_factors[layer] @ per_task @ self.out_factors[layer].T

    def last_shared_layer(self):
        return self.cores[-1]

    def forward(self, x):
        h = None
        for layer, bias in enumerate(self.biases):
            weights = self.layer_weights(layer)
            h = torch.einsum("bi,tij->tbj", x, weights) if h is None else torch.bmm(h, weights)
            h = self.dropout(self.activation(h + bias))
        return self.towers(h).transpose(0, 1)


# Cumulative probabilities are kept within [1e-7, 1 - 1e-7] before the normal
# quantile function (scikit-learn's QuantileTransformer bound): scores within +-5.2.
_QUANTILE_BOUND = 1e-7


class _CosSin(torch.autograd.Function):
    """``cat([cos(v), sin(v)], -1)``, whose backward reuses the forward's values.

    Autograd's own graph computes ``sin(v)`` and ``cos(v)`` again for the
    derivatives; these are saved instead (the gradients are bit-identical).
    Training only: inference, TorchScript and exported graphs use
    ``torch.cos`` and ``torch.sin``.
    """

    @staticmethod
    def forward(ctx, v):
        cos, sin = torch.cos(v), torch.sin(v)
        ctx.save_for_backward(cos, sin)
        return torch.cat([cos, sin], dim=-1)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        k = cos.shape[-1]
        return grad[..., k:] * cos - grad[..., :k] * sin


class TabularEmbedding(nn.Module):
    """Numeric and categorical columns of one float matrix -> one dense vector.

    The input is a float tensor of shape ``(batch, n_numeric + n_categorical)``:
    numeric columns first, then one integer code per categorical column
    (stored as a float, exact below 2**24). Code 0 of every categorical
    column is its "unknown" entry (missing, rare or unseen categories); a
    code outside ``[0, cardinality)`` is read as 0.

    * Categorical column ``j`` gets an embedding table of
      ``cardinalities[j]`` rows of width ``embedding_dims[j]``. All tables are
      one flat parameter, read for a whole batch by a single gather (no loop
      over columns); row 0 of each table starts at zero.
    * Numeric columns pass through unchanged, or are mapped to a standard
      normal through their training distribution (``quantiles``: as
      :class:`~sklearn.preprocessing.QuantileTransformer` with
      ``output_distribution="normal"`` does, except that the normal scores
      are interpolated linearly between the quantiles; robust to heavy tails
      and outliers, one value per column),
      or get the piecewise-linear encoding of Gorishniy et al. (NeurIPS
      2022, ``bin_edges``): with bin
      edges ``b_0 < ... < b_T`` of column ``f``, component ``t`` is
      ``clip((x - b_{t-1}) / (b_t - b_{t-1}), 0, 1)``, so the column becomes
      ``T`` values (a column with only two distinct values stays itself,
      rescaled to [0, 1]). The encoding has no parameter; the next layer
      learns a piecewise-linear function of each column, and values beyond
      the edges saturate instead of growing without bound.

    Parameters
    ----------
    n_numeric : int
        Number of numeric columns (the first columns of the input).
    cardinalities : sequence of int, default=()
        Table size of each categorical column, index 0 included (>= 1).
    embedding_dims : sequence of int, default=()
        Embedding width of each categorical column.
    bin_edges : sequence of 1-D float sequences, default=None
        Increasing bin edges of each numeric column for the piecewise-linear
        encoding (fewer than 2 edges: the column is constant and dropped).
    quantiles : sequence of (values, probabilities) pairs or None, default=None
        For the normal quantile encoding: per numeric column, increasing
        values and their cumulative probabilities in [0, 1] (at least 2), or
        None to pass that column through. At most one of ``bin_edges`` and
        ``quantiles``; with neither, numeric columns pass through.
    periodic : (n_frequencies, width, scale) or None, default=None
        With ``quantiles``: periodic embeddings of the normal scores
        (Gorishniy et al., NeurIPS 2022, "PLR"). Encoded column ``f`` becomes
        ``relu(W_f [cos(2 pi c_f z), sin(2 pi c_f z)] + b_f)``, ``width``
        values, with ``n_frequencies`` trained frequencies ``c_f`` drawn from
        N(0, scale^2) and a linear layer per column; passed-through columns
        come first, then the embedded ones.

    Examples
    --------
    >>> import torch
    >>> emb = TabularEmbedding(n_numeric=1, cardinalities=[3, 5], embedding_dims=[2, 4],
    ...                        bin_edges=[[0.0, 1.0, 10.0]])
    >>> emb.out_features  # 2 bins + 2 + 4
    8
    >>> x = torch.tensor([[0.5, 1.0, 4.0], [20.0, 0.0, 9.0]])
    >>> out = emb(x)
    >>> out[:, :2].tolist()  # piecewise-linear encoding of 0.5 and 20
    [[0.5, 0.0], [1.0, 1.0]]
    >>> bool((out[1, 2:] == 0).all())  # code 0 and out-of-range code 9: the unknown rows
    True
    """

    def __init__(self, n_numeric, cardinalities=(), embedding_dims=(), bin_edges=None,
                 quantiles=None, periodic=None):
        super().__init__()
        if bin_edges is not None and quantiles is not None:
            raise ValueError("Give bin_edges or quantiles, not both.")
        if periodic is not None and quantiles is None:
            raise ValueError("periodic embeddings read the normal scores: give quantiles too.")
        self.n_numeric = int(n_numeric)
        self.cardinalities = tuple(int(c) for c in cardinalities)
        self.embedding_dims = tuple(int(d) for d in embedding_dims)
        if len(self.cardinalities) != len(self.embedding_dims):
            raise ValueError("cardinalities and embedding_dims must have the same length.")
        # Index arithmetic in numpy: the module can be built on the meta device
        # (shapes only), where tensors have no values to compute with.
        cards = np.array(self.cardinalities, dtype=np.int64)
        dims = np.array(self.embedding_dims, dtype=np.int64)
        sizes = cards * dims
        # no parameter at all without categorical columns (not an empty one)
        self.weight = nn.Parameter(torch.empty(int(sizes.sum()))) if len(cards) else None
        # Output element e reads column col[e], at weight[code * dims[col] + base[e]].
        col = np.repeat(np.arange(len(dims)), dims)
        within = np.arange(len(col)) - np.repeat(np.cumsum(dims) - dims, dims)
        self.register_buffer("_col", torch.as_tensor(col), persistent=False)
        self.register_buffer("_stride", torch.as_tensor(dims[col]), persistent=False)
        self.register_buffer("_base", torch.as_tensor((np.cumsum(sizes) - sizes)[col] + within),
                             persistent=False)
        self.register_buffer("_card", torch.as_tensor(cards[col]), persistent=False)
        self.piecewise_linear = bin_edges is not None
        widths = []
        if self.piecewise_linear:
            if len(bin_edges) != self.n_numeric:
                raise ValueError("bin_edges must give one sequence of edges per numeric column.")
            edges = [np.asarray(e, dtype=np.float32).reshape(-1) for e in bin_edges]
            n_bins = max([len(e) - 1 for e in edges] + [1])
            lower = np.zeros((self.n_numeric, n_bins), dtype=np.float32)
            width = np.ones((self.n_numeric, n_bins), dtype=np.float32)
            keep = []
            for f, e in enumerate(edges):
                t = max(len(e) - 1, 0)
                if t and not (e[1:] > e[:-1]).all():
                    raise ValueError(f"bin_edges[{f}] must be strictly increasing.")
                lower[f, :t], width[f, :t] = e[:-1], e[1:] - e[:-1]
                keep += range(f * n_bins, f * n_bins + t)
                widths.append(t)
            self.register_buffer("bin_lower", torch.as_tensor(lower))
            self.register_buffer("bin_width", torch.as_tensor(width))
            self.register_buffer("_keep", torch.as_tensor(np.array(keep, dtype=np.int64)),
                                 persistent=False)
        self.quantile = quantiles is not None
        self.periodic = periodic is not None
        if self.quantile:
            self._init_quantiles(quantiles)
        if self.periodic:
            self._init_periodic(*periodic)
            n_encoded = len(self._encoded_columns)
            widths = [self.n_numeric - n_encoded, n_encoded * self.periodic_dim]
        # TorchScript compiles both branches of forward: the buffers of the
        # encoding not in use exist too, empty (and not saved).
        for name in ("bin_lower", "bin_width", "_keep", "quantile_lower", "quantile_width",
                     "quantile_step", "quantile_first", "_encoded", "_order", "_passthrough"):
            if not hasattr(self, name):
                dtype = torch.int64 if name.startswith("_") else torch.float32
                self.register_buffer(name, torch.zeros(0, dtype=dtype), persistent=False)
        for name in ("frequencies", "periodic_weight", "periodic_bias"):
            if not hasattr(self, name):  # TorchScript: a tensor attribute, unused and not saved
                self.register_buffer(name, torch.zeros(0), persistent=False)
        self.numeric_out_features = (
            sum(widths) if self.piecewise_linear or self.periodic else self.n_numeric
        )
        self.out_features = self.numeric_out_features + int(dims.sum())
        self.reset_parameters()

    def _init_quantiles(self, quantiles):
        if len(quantiles) != self.n_numeric:
            raise ValueError("quantiles must give one pair (or None) per numeric column.")
        encoded = [f for f, q in enumerate(quantiles) if q is not None]
        self._encoded_columns = encoded
        pairs = [tuple(np.asarray(v, dtype=np.float64).reshape(-1) for v in quantiles[f])
                 for f in encoded]
        size = max([len(v) for v, _ in pairs] + [2])
        lower = np.zeros((len(encoded), size - 1))
        width = np.ones((len(encoded), size - 1))
        step = np.zeros((len(encoded), size - 1))
        first = np.zeros(len(encoded))
        for i, (v, p) in enumerate(pairs):
            if len(v) < 2 or len(v) != len(p) or not (v[1:] > v[:-1]).all():
                raise ValueError(
                    f"quantiles[{encoded[i]}] needs at least 2 strictly increasing values, one "
                    "probability each."
                )
            # normal scores at the knots; linear in between
            u = torch.as_tensor(np.clip(p, _QUANTILE_BOUND, 1 - _QUANTILE_BOUND), device="cpu")
            z = (math.sqrt(2) * torch.erfinv(2 * u - 1)).numpy()
            k = len(v) - 1
            lower[i, :k], width[i, :k], step[i, :k] = v[:-1], v[1:] - v[:-1], z[1:] - z[:-1]
            first[i] = z[0]
        for name, value in (("quantile_lower", lower), ("quantile_width", width),
                            ("quantile_step", step), ("quantile_first", first)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))
        self.register_buffer("_encoded", torch.as_tensor(np.array(encoded, dtype=np.int64)),
                             persistent=False)
        # output column f: raw column f, or normal score i of the appended block
        order = np.arange(self.n_numeric)
        order[encoded] = self.n_numeric + np.arange(len(encoded))
        self.register_buffer("_order", torch.as_tensor(order), persistent=False)

    def _init_periodic(self, n_frequencies, dim, scale):
        n_encoded = len(self._encoded_columns)
        self.periodic_dim, self.periodic_scale = int(dim), float(scale)
        self.frequencies = nn.Parameter(torch.empty(n_encoded, int(n_frequencies)))
        self.periodic_weight = nn.Parameter(torch.empty(n_encoded, 2 * int(n_frequencies), self.periodic_dim))
        self.periodic_bias = nn.Parameter(torch.empty(n_encoded, self.periodic_dim))
        passthrough = np.setdiff1d(np.arange(self.n_numeric), self._encoded_columns)
        self.register_buffer("_passthrough", torch.as_tensor(passthrough.astype(np.int64)),
                             persistent=False)

    def _periodic(self, scores):
        """Periodic embeddings of the normal scores (Gorishniy et al., NeurIPS 2022, "PLR").

        Score ``z`` of column ``f`` becomes ``relu(W_f [cos(2 pi c_f z), sin(2 pi c_f z)] + b_f)``,
        with trained frequencies ``c_f`` and a linear layer per column: each
        numeric column gets its own small non-linear embedding. Returns
        ``(batch, n_encoded * width)``.

        Computed column-major, ``(n_encoded, batch, ...)``: the per-column
        layers are then one ``baddbmm`` on contiguous operands, and while
        training the cosines and sines are computed once (:class:`_CosSin`)
        instead of again in the backward pass (together 20 % less time for
        the embedding's step on Adult, bit-identical).
        """
        v = (2 * math.pi) * scores.t().unsqueeze(-1) * self.frequencies.unsqueeze(1)
        if not torch.jit.is_scripting() and v.requires_grad and not _recording():
            features = _CosSin.apply(v)
        else:
            features = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)
        embedded = torch.relu(
            torch.baddbmm(self.periodic_bias.unsqueeze(1), features, self.periodic_weight)
        )
        return embedded.transpose(0, 1).flatten(1)

    def _normal_scores(self, numeric):
        """Normal scores of the encoded columns, piecewise linear between quantiles.

        ``z(x) = z_0 + sum_k (z_k - z_{k-1}) * clip((x - v_{k-1}) / (v_k - v_{k-1}), 0, 1)``:
        elementwise operations only (no search, no inverse error function), so
        the graph exports to ONNX and TorchScript as it is.
        """
        return torch.cat([numeric, self._scores(numeric)], dim=1).index_select(1, self._order)

    def _scores(self, numeric):
        """The normal scores of the encoded columns, shape ``(batch, n_encoded)``.

        The comparison with every table entry makes a ``(batch, n_encoded,
        n_quantiles)`` temporary; in eager mode it is made a block of rows at
        a time, about 2 MB each, so that it stays in the cache (6 times faster
        than one 32 MB block on Adult's 32,561 rows; the scores are the same,
        elementwise). A recorded graph (export) keeps the one-block form.
        """
        x = numeric.index_select(1, self._encoded)
        # 2 MB of float32 per block (a literal: TorchScript reads no module-level ints)
        rows = max(1, 524288 // max(1, self.quantile_lower.numel()))
        if _recording() or _is_compiling() or x.shape[0] <= rows:
            return self._block_scores(x)
        return torch.cat([self._block_scores(block) for block in x.split(rows)])

    def _block_scores(self, x):
        t = ((x.unsqueeze(-1) - self.quantile_lower) / self.quantile_width).clamp(0, 1)
        return self.quantile_first + (t * self.quantile_step).sum(-1)

    def reset_parameters(self):
        """Uniform in +-1/sqrt(width) per table, row 0 (unknown) at zero."""
        if self.periodic:
            with torch.no_grad():
                g = _random.generator()
                self.frequencies.normal_(0.0, self.periodic_scale, generator=g)
                bound = 1 / math.sqrt(self.periodic_weight.shape[1])
                self.periodic_weight.uniform_(-bound, bound, generator=g)
                self.periodic_bias.uniform_(-bound, bound, generator=g)
        if self.weight is None:
            return
        with torch.no_grad():
            offset = 0
            for card, dim in zip(self.cardinalities, self.embedding_dims):
                table = self.weight[offset:offset + card * dim].view(card, dim)
                bound = 1 / math.sqrt(dim)
                nn.init.uniform_(table, -bound, bound, generator=_random.generator())
                table[0] = 0
                offset += card * dim

    def table(self, j):
        """The embedding table of categorical column ``j``, shape ``(cardinality, dim)``."""
        offsets = [0]
        for card, dim in zip(self.cardinalities, self.embedding_dims):
            offsets.append(offsets[-1] + card * dim)
        return self.weight[offsets[j]:offsets[j + 1]].view(self.cardinalities[j], self.embedding_dims[j])

    def prepare(self, x):
        """``x`` with the encoding's fixed (untrained) part done: ``forward(x)`` is
        ``forward(prepare(x), prepared=True)``.

        With ``quantiles`` (and ``periodic``), the encoded numeric columns hold
        their normal scores instead of their values; otherwise ``x`` itself.
        Training prepares its rows once instead of at every epoch: the scores
        compare each value with its column's whole quantile table, which cost
        about 12 % of an epoch on Adult.
        """
        if not self.quantile:
            return x
        numeric = self._normal_scores(x[:, : self.n_numeric])
        return torch.cat([numeric, x[:, self.n_numeric:]], dim=1)

    def forward(self, x, prepared: bool = False):
        numeric = x[:, : self.n_numeric]
        if self.periodic:
            scores = (numeric.index_select(1, self._encoded) if prepared
                      else self._scores(numeric))
            parts = [numeric.index_select(1, self._passthrough), self._periodic(scores)]
        else:
            if self.quantile:
                if not prepared:
                    numeric = self._normal_scores(numeric)
            elif self.piecewise_linear:
                encoded = ((numeric.unsqueeze(-1) - self.bin_lower) / self.bin_width).clamp(0, 1)
                numeric = encoded.flatten(1).index_select(1, self._keep)
            parts = [numeric]
        if self.weight is not None:  # categorical columns (a static check under TorchScript)
            codes = x[:, self.n_numeric:].index_select(1, self._col).long()
            codes = torch.where((codes >= 0) & (codes < self._card), codes, 0)
            flat = codes * self._stride + self._base
            # index_select (backward: index_add_) is about twice as fast as
            # weight[flat] (backward: index_put_ with accumulation)
            parts.append(self.weight.index_select(0, flat.view(-1)).view(flat.shape))
        if len(parts) == 1:
            return parts[0]
        out = torch.cat(parts, dim=1)
        if not torch.jit.is_scripting():
            # the first part is a fixed function of x: when x needs no
            # gradient, the next layer need not compute one for it
            if not x.requires_grad and out.requires_grad and not _recording():
                out._sklearn_mmoe_constant_columns = parts[0].shape[1]
        return out

    def extra_repr(self):
        return (
            f"n_numeric={self.n_numeric}, cardinalities={self.cardinalities}, "
            f"embedding_dims={self.embedding_dims}, piecewise_linear={self.piecewise_linear}, "
            f"quantile={self.quantile}, "
            f"out_features={self.out_features}"
        )


class EmbeddedNetwork(nn.Module):
    """A :class:`TabularEmbedding` in front of a multi-task network.

    Parameters
    ----------
    network : type
        The architecture, e.g. :class:`MMoE`; built with
        ``network(n_features=embedding.out_features, n_outputs=n_outputs, **kwargs)``.
    n_features : int
        Input width: the embedding's numeric plus categorical columns.
    n_outputs : sequence of int
        Logits needed by each task.
    embedding : dict
        Keyword arguments of :class:`TabularEmbedding`.
    **kwargs
        Further keyword arguments of ``network``.

    Examples
    --------
    >>> import torch
    >>> net = EmbeddedNetwork(MMoE, n_features=3, n_outputs=[1, 1], n_experts=2,
    ...                       embedding=dict(n_numeric=1, cardinalities=[4, 3], embedding_dims=[2, 2]))
    >>> net(torch.tensor([[0.3, 2.0, 1.0]])).shape
    torch.Size([1, 2, 1])
    """

    def __init__(self, network, n_features, n_outputs, embedding, **kwargs):
        super().__init__()
        self.embedding = TabularEmbedding(**embedding)
        width = self.embedding.n_numeric + len(self.embedding.cardinalities)
        if width != n_features:
            raise ValueError(f"The embedding reads {width} columns, but n_features={n_features}.")
        self.network = network(n_features=self.embedding.out_features, n_outputs=n_outputs, **kwargs)
        # True while training on rows passed through prepare() (set by the
        # training loop only); raw rows otherwise, as in inference and export
        self.prepared_inputs = False

    def __setstate__(self, state):
        state.setdefault("prepared_inputs", False)  # pickled before the attribute existed
        super().__setstate__(state)

    @property
    def towers(self):
        return self.network.towers

    @property
    def n_outputs(self):
        return self.network.n_outputs

    def shared_parameters(self):
        """The embedding's parameters and the network's shared ones."""
        return list(self.embedding.parameters()) + list(self.network.shared_parameters())

    def last_shared_layer(self):
        return self.network.last_shared_layer()

    def penalty(self):
        return self.network.penalty()

    def gate_weights(self, x):
        """The network's gate weights for input ``x`` (networks with gates only)."""
        return self.network.gate_weights(self.embedding(x, self.prepared_inputs))

    def prepare(self, x):
        """``x`` with the embedding's fixed part done (:meth:`TabularEmbedding.prepare`);
        the network reads such rows while ``prepared_inputs`` is True."""
        return self.embedding.prepare(x)

    def forward(self, x):
        return self.network(self.embedding(x, self.prepared_inputs))


def _index(tasks, n_tasks):
    """A slice when ``tasks`` is every task in order, else a LongTensor."""
    if list(tasks) == list(range(n_tasks)):
        return slice(None)
    return torch.as_tensor(tasks, dtype=torch.long)


def _log1mexp(a):
    """``log(1 - exp(a))`` for ``a <= 0``, accurate over the whole range.

    Each branch of the ``where`` reads only inputs of its own range: the
    branch not taken is still differentiated, and ``log1p(-exp(a))`` at an
    ``a`` so close to 0 that ``exp(a)`` rounds to 1 has an infinite gradient,
    which the ``where`` would turn into NaN (0 * inf) even though its value is
    not used. (An ESMM fit that drove its joint probability to 1 went NaN
    that way.)
    """
    a = a.clamp(max=-torch.finfo(a.dtype).tiny)
    near = a > -0.6931
    a_near, a_far = torch.where(near, a, -1.0), torch.where(near, -1.0, a)
    return torch.where(near, torch.log(-torch.expm1(a_near)), torch.log1p(-torch.exp(a_far)))


class MaskedMultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses, each averaged over observed rows only.

    ``loss = sum_t task_weights[t] * L_t`` with
    ``L_t = sum_i w[i, t] * l(logits[i, t], target[i, t]) / sum_i w[i, t]``,
    where ``l`` is binary cross-entropy on one logit (``"binary"``),
    cross-entropy over ``n_outputs[t]`` logits (``"multiclass"``) or squared
    error on one output (``"regression"``). A weight of zero marks a missing
    label: that entry adds nothing to the loss or its gradient, and a task
    with no observed row in a batch contributes zero. ``w`` combines the mask
    and the sample weights.

    A binary task ``j`` with ``parents[j] = i`` is *conditional* on the binary
    task ``i`` (ESMM, Ma et al., SIGIR 2018): its logit models
    ``p(j | i, x)``, and its loss is the binary cross-entropy of the joint
    probability ``p(i | x) * p(j | i, x)`` against the joint label "i and j",
    computed over every row where task ``i`` is observed (the entire space),
    so ``p(j | i, x)`` is learned without training on the selected rows only.

    ``cvr_objective`` adds a counterfactual risk for ``p(j | i, x)`` over that
    entire space (ESCM², Wang et al., SIGIR 2022; Multi-IPW and Multi-DR,
    Zhang et al., WWW 2020). Write ``o`` for task ``i``'s label (the click),
    ``e = BCE(logit_j, y_j)`` for the conditional task's own loss (zero weight
    where ``o = 0``), and ``p = clip(sigmoid(logit_i))`` for the propensity:
    the parent's probability, **detached** from the graph (no gradient of the
    counterfactual terms reaches the parent's output through it) and clipped
    below at ``propensity_clip``, so every weight ``o / p`` lies in
    ``[0, 1 / propensity_clip]``. Task ``j``'s loss is then, averaged per row
    over the entire space like the ESMM loss ``ctcvr``:

    - ``"esmm"``: ``ctcvr`` (the default; the loss described above).
    - ``"ips"``: ``ctcvr_weight * ctcvr + cvr_weight * o / p * e``. With
      ``ctcvr_weight=0`` this is Multi-IPW.
    - ``"dr"``: ``ctcvr_weight * ctcvr + cvr_weight * (r + m)`` with the
      doubly robust risk ``r = ê + o / p * (e - ê)`` and the imputation loss
      ``m = o / p * (e - ê)**2``. ``ê = BCE(logit_j, q)`` is the error that
      an imputed conversion probability ``q`` predicts for the conditional
      output, and ``q = sigmoid`` of an extra output of the network, the
      imputation head (one per conditional task, after the tasks' outputs:
      see :meth:`extra_outputs`). As in the joint learning of Wang et al.
      (ICML 2019) each part trains its own model: ``q`` is detached in ``r``
      (which trains the conditional output, on every row) and the
      conditional output is detached in ``m`` (which trains the imputation
      head).

    With ``propensity_normalization="batch"`` the weights ``o / p`` are
    divided by their weighted mean over the batch (self-normalised IPS).

    :meth:`per_task` gives the training objective (these losses);
    :meth:`forward`, the loss reported and monitored for early stopping,
    leaves the counterfactual risk out (see there).

    Parameters
    ----------
    task_types : sequence of {"binary", "multiclass", "regression"}
        Type of each task.
    n_outputs : sequence of int
        Logits used by each task (1 for binary and regression tasks).
    task_weights : sequence of float, default=None
        Weight of each task's loss in the sum (default: all 1).
    parents : sequence of int or None, default=None
        ``parents[j]`` is the task that task ``j`` is conditional on, or None.
        Conditional tasks and their parents must be binary; the targets of a
        conditional task are the joint labels.
    weighting : str or LossWeighting, default=None
        Strategy of :mod:`sklearn_mmoe.weighting` (a name or a configuration)
        that turns the per-task losses into the training objective; its
        PyTorch module is the submodule ``weighting``. Default: the fixed
        ``task_weights``. :meth:`forward` always uses ``task_weights``, so
        losses stay comparable across epochs (for validation and early
        stopping) whatever the strategy does.
    cvr_objective : {"esmm", "ips", "dr"}, default="esmm"
        Objective of the conditional tasks (see above).
    cvr_weight : float, default=1.0
        Weight of the counterfactual risk (``"ips"`` and ``"dr"``).
    ctcvr_weight : float, default=1.0
        Weight of the joint (ESMM) loss (``"ips"`` and ``"dr"``; ``"esmm"``
        always uses 1).
    propensity_clip : float in (0, 1], default=0.01
        Lower bound of the propensity (``"ips"`` and ``"dr"``).
    propensity_normalization : {"none", "batch"}, default="none"
        Self-normalise the inverse-propensity weights per batch.

    Examples
    --------
    >>> import torch
    >>> loss = MaskedMultiTaskLoss(["binary", "regression"], [1, 1])
    >>> logits = torch.zeros(2, 2, 1)
    >>> target = torch.tensor([[1.0, 0.5], [0.0, 0.0]])
    >>> weight = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # row 1 of task 1 missing
    >>> loss.per_task(logits, target, weight)
    tensor([0.6931, 0.2500])
    """

    def __init__(
        self,
        task_types,
        n_outputs,
        task_weights=None,
        parents=None,
        weighting=None,
        cvr_objective="esmm",
        cvr_weight=1.0,
        ctcvr_weight=1.0,
        propensity_clip=0.01,
        propensity_normalization="none",
    ):
        super().__init__()
        task_types = list(task_types)
        n_outputs = [int(k) for k in n_outputs]
        n_tasks = len(task_types)
        if len(n_outputs) != n_tasks:
            raise ValueError("task_types and n_outputs must have the same length.")
        unknown = set(task_types) - set(TASK_TYPES)
        if unknown:
            raise ValueError(f"Unknown task types {sorted(unknown)}; use {TASK_TYPES}.")
        parents = [None] * n_tasks if parents is None else list(parents)
        # Validated by the estimators (sklearn_mmoe._targets.check_conditions
        # and encode_targets).
        for child, parent in enumerate(parents):
            assert parent is None or (
                parent != child
                and parents[parent] is None
                and task_types[child] == "binary"
                and task_types[parent] == "binary"
            ), (
                f"Task {child} cannot be conditional on task {parent}: both must be "
                "binary, distinct, and the parent must not be conditional itself."
            )
        self._check_cvr_options(
            parents, cvr_objective, cvr_weight, ctcvr_weight, propensity_clip,
            propensity_normalization,
        )
        self.cvr_objective = cvr_objective
        self.cvr_weight, self.ctcvr_weight = float(cvr_weight), float(ctcvr_weight)
        self.propensity_clip = float(propensity_clip)
        self.propensity_normalization = propensity_normalization
        if task_weights is None:
            task_weights = [1.0] * n_tasks
        self.register_buffer("task_weights", torch.as_tensor(task_weights, dtype=torch.float32))
        self.n_outputs = n_outputs
        kinds = [
            "conditional" if parents[t] is not None else task_types[t] for t in range(n_tasks)
        ]
        groups = {k: [t for t in range(n_tasks) if kinds[t] == k] for k in (*TASK_TYPES, "conditional")}
        self._groups = {k: tasks for k, tasks in groups.items() if tasks}
        for name, tasks in self._groups.items():
            index = _index(tasks, n_tasks)
            if isinstance(index, slice):
                setattr(self, f"_{name}_index", index)
            else:
                self.register_buffer(f"_{name}_index", index, persistent=False)
        if "conditional" in self._groups:
            parent_index = [parents[t] for t in self._groups["conditional"]]
            self.register_buffer("_parent_index", torch.tensor(parent_index), persistent=False)
            n_conditional = len(parent_index)
            self.register_buffer(
                "_imputation_index",
                torch.arange(n_tasks, n_tasks + n_conditional),
                persistent=False,
            )
        if "multiclass" in self._groups:
            unused = torch.arange(max(n_outputs))[None, :] >= torch.tensor(
                [n_outputs[t] for t in self._groups["multiclass"]]
            )[:, None]
            self.register_buffer("_unused_classes", unused, persistent=False)
        order = [t for tasks in self._groups.values() for t in tasks]
        self._in_order = order == list(range(n_tasks))
        self.register_buffer(
            "_inverse_order",
            torch.argsort(torch.as_tensor(order, dtype=torch.long)),
            persistent=False,
        )
        self.weighting = make_weighting(weighting).build(task_weights, task_types)

    @staticmethod
    def _check_cvr_options(parents, objective, cvr_weight, ctcvr_weight, clip, normalization):
        if objective not in CVR_OBJECTIVES:
            raise ValueError(f"cvr_objective must be one of {CVR_OBJECTIVES}, got {objective!r}.")
        if normalization not in PROPENSITY_NORMALIZATIONS:
            raise ValueError(
                f"propensity_normalization must be one of {PROPENSITY_NORMALIZATIONS}, "
                f"got {normalization!r}."
            )
        for name, value in (("cvr_weight", cvr_weight), ("ctcvr_weight", ctcvr_weight)):
            if not (isinstance(value, Real) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if not (isinstance(clip, Real) and 0 < clip <= 1):
            raise ValueError(f"propensity_clip must be in (0, 1], got {clip!r}.")
        if objective != "esmm":
            if all(p is None for p in parents):
                raise ValueError(
                    f"cvr_objective={objective!r} needs a conditional task (parents); "
                    "without one, use cvr_objective='esmm'."
                )
            if cvr_weight == 0 and ctcvr_weight == 0:
                raise ValueError(
                    "cvr_weight and ctcvr_weight are both 0: the conditional task would "
                    "not be trained."
                )

    @staticmethod
    def extra_outputs(parents, cvr_objective="esmm"):
        """Outputs the network needs beyond the tasks' own: the imputation heads.

        ``"dr"`` needs one imputation head per conditional task: logit column
        ``n_tasks + k`` of the network is that of the ``k``-th conditional
        task (in task order). The other objectives need none.
        """
        return sum(p is not None for p in parents) if cvr_objective == "dr" else 0

    def propensity(self, logits):
        """Clipped, detached propensities ``(batch, n_conditional)``: the parents' probabilities."""
        parent = logits[:, self._parent_index, 0].detach()
        return torch.sigmoid(parent).clamp(min=self.propensity_clip)

    def _counterfactual(self, logits, target, weight):
        """Per-row counterfactual risk of the conditional tasks (``"ips"``, ``"dr"``)."""
        index = self._conditional_index
        z, y = logits[:, index, 0], target[:, index]
        ipw = target[:, self._parent_index] / self.propensity(logits)  # o / p
        if self.propensity_normalization == "batch" and weight is not None:
            w = weight[:, index]
            ipw = ipw * (w.sum(0) / (w * ipw).sum(0).clamp_min(1e-12))
        error = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        if self.cvr_objective == "ips":
            return ipw * error
        imputed = torch.sigmoid(logits[:, self._imputation_index, 0])
        imputed_error = F.binary_cross_entropy_with_logits(z, imputed.detach(), reduction="none")
        risk = imputed_error + ipw * (error - imputed_error)
        # e - ê with the conditional output fixed: (q - y) * logit
        gap = (imputed - y) * z.detach()
        return risk + ipw * torch.square(gap)

    def elementwise(self, logits, target, weight=None, objective=True):
        """Unreduced loss of shape ``(batch, n_tasks)``, in task order.

        ``objective=False`` gives the monitored loss: conditional tasks' joint
        loss without the counterfactual risk. ``weight`` is only read by
        ``propensity_normalization="batch"``.
        """
        parts = []
        for name in self._groups:
            index = getattr(self, f"_{name}_index")
            if name == "binary":
                parts.append(
                    F.binary_cross_entropy_with_logits(
                        logits[:, index, 0], target[:, index], reduction="none"
                    )
                )
            elif name == "regression":
                parts.append(torch.square(logits[:, index, 0] - target[:, index]))
            elif name == "multiclass":
                z = logits[:, index, :].masked_fill(self._unused_classes, float("-inf"))
                parts.append(
                    F.cross_entropy(
                        z.transpose(1, 2), target[:, index].long(), reduction="none"
                    )
                )
            else:  # conditional: joint probability p(parent) * p(child | parent)
                log_p = F.logsigmoid(logits[:, index, 0]) + F.logsigmoid(
                    logits[:, self._parent_index, 0]
                )
                y = target[:, index]
                joint = -(y * log_p + (1 - y) * _log1mexp(log_p))
                if objective and self.cvr_objective != "esmm":
                    joint = self.ctcvr_weight * joint + self.cvr_weight * self._counterfactual(
                        logits, target, weight
                    )
                parts.append(joint)
        loss = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return loss if self._in_order else loss[:, self._inverse_order]

    def per_task(self, logits, target, weight, objective=True, total=None):
        """Per-task losses of shape ``(n_tasks,)``, each a weighted mean.

        The training objective; with ``objective=False`` the monitored loss
        (see :meth:`forward`). ``total`` replaces the denominator, the
        per-task sum of ``weight``: data-parallel training passes the share
        of the global batch's weight that makes the mean of the processes'
        losses the global batch's loss.
        """
        loss = self.elementwise(logits, target, weight, objective)
        total = weight.sum(0) if total is None else total
        return (loss * weight).sum(0) / total.clamp_min(1e-12)

    def forward(self, logits, target, weight, total=None):
        """The monitored loss: ``sum_t task_weights[t] * L_t``, ESMM's loss for conditional tasks.

        With ``cvr_objective="ips"`` or ``"dr"`` the counterfactual risk is
        left out: its value depends on the model's own propensities (a model
        that overestimates the parent's probability gets a smaller weighted
        risk) and, for ``"dr"``, on the imputation head, so it does not
        compare epochs fairly. What is monitored (reported, early-stopped on)
        is the joint loss of every objective alike.
        """
        return torch.dot(
            self.per_task(logits, target, weight, objective=False, total=total), self.task_weights
        )

    def monitored(self, logits, target, weight, losses, total=None):
        """:meth:`forward`, reusing the training step's per-task ``losses`` where they are the same."""
        if self.cvr_objective == "esmm":
            return torch.dot(losses.detach(), self.task_weights)
        with torch.no_grad():
            return self.forward(logits, target, weight, total=total)
