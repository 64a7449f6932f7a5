"""The fused networks of ``sklearn_mmoe.nn`` against naive reference implementations.

The modules stack their experts, gates and towers into batched products and
route PLE with views and slices. The references below are written for
reading: a Python loop over experts, one softmax gate per task, PLE's routing
spelled out level by level. They take the fused module's parameters (one
``(W, b)`` per layer of each member of a stack) and compute in float64; the
fused module, in float32 and in evaluation mode, must agree within float32
tolerance.
"""

import itertools

import pytest
import torch

from sklearn_mmoe import nn as mnn

ATOL, RTOL = 2e-5, 1e-4


# ----------------------------------------------------------- parameters
def member_layers(stack, p):
    """``[(W, b), ...]``: member ``p``'s affine layers of a stack of ParallelLinear, float64.

    ``W`` is ``(in, out)``: a layer computes ``x @ W + b``.
    """
    layers = []
    for module in stack.modules():
        if isinstance(module, mnn.ParallelLinear):
            weight = module.weight[:, p] if module.shared_input else module.weight[p]
            layers.append((weight.detach().double(), module.bias[p, 0].detach().double()))
    return layers


# ----------------------------------------------------------- references
def mlp(x, layers, activate_last):
    """Affine layers with ReLU after each (after the last one too if ``activate_last``)."""
    for i, (weight, bias) in enumerate(layers):
        x = x @ weight + bias
        if activate_last or i < len(layers) - 1:
            x = torch.relu(x)
    return x


def softmax_gate(x, layers, top_k=None):
    """A gate: softmax over its logits, or over the ``top_k`` largest (the others get 0)."""
    logits = mlp(x, layers, activate_last=False)
    weights = torch.zeros_like(logits)
    for row in range(logits.shape[0]):
        kept = torch.argsort(logits[row], descending=True)[: top_k or logits.shape[1]]
        weights[row, kept] = torch.softmax(logits[row, kept], dim=0)
    return weights


def mix(gate, expert_outputs):
    """Sum over experts of gate weight times expert output."""
    return sum(gate[:, [e]] * out for e, out in enumerate(expert_outputs))


def towers(net, task_inputs):
    """Each task's tower on its input: logits (batch, n_tasks, max n_outputs)."""
    return torch.stack(
        [mlp(h, member_layers(net.towers, t), activate_last=False) for t, h in enumerate(task_inputs)],
        dim=1,
    )


def shared_bottom(net, x):
    h = mlp(x, member_layers(net.bottom, 0), activate_last=True)
    return towers(net, [h] * len(net.n_outputs))


def mixture_of_experts(net, x):
    n_experts = net.experts.layers[0].n_parallel
    experts = [mlp(x, member_layers(net.experts, e), activate_last=True) for e in range(n_experts)]
    top_k = net.gates.top_k
    task_inputs = []
    for t in range(len(net.n_outputs)):
        gate = member_layers(net.gates, t if net.multi_gate else 0)
        task_inputs.append(mix(softmax_gate(x, gate, top_k), experts))
    return towers(net, task_inputs)


def ple(net, x):
    """Progressive layered extraction, level by level, expert by expert."""
    n_tasks, own, n_shared = len(net.n_outputs), net.n_task_experts, net.n_shared_experts
    task_in, shared_in = [x] * n_tasks, x
    for level, (experts, task_gates) in enumerate(zip(net.experts, net.task_gates)):
        # experts: task 0's, task 1's, ..., then the shared ones
        task_experts = [
            [mlp(task_in[t], member_layers(experts, t * own + i), True) for i in range(own)]
            for t in range(n_tasks)
        ]
        shared_experts = [
            mlp(shared_in, member_layers(experts, n_tasks * own + j), True) for j in range(n_shared)
        ]
        top_k = task_gates.top_k
        new_task_in = []
        for t in range(n_tasks):
            gate = softmax_gate(task_in[t], member_layers(task_gates, t), top_k)
            new_task_in.append(mix(gate, task_experts[t] + shared_experts))
        if level < len(net.shared_gates):  # every level but the last, when there are shared experts
            gate = softmax_gate(shared_in, member_layers(net.shared_gates[level], 0), top_k)
            all_experts = [out for outs in task_experts for out in outs] + shared_experts
            shared_in = mix(gate, all_experts)
        task_in = new_task_in
    return towers(net, task_in)


def single_task(net, x):
    return towers(net, [x] * len(net.n_outputs))


def cross_stitch(net, x):
    n_tasks = len(net.n_outputs)
    columns = [member_layers(net.columns, t) for t in range(n_tasks)]
    h = [x] * n_tasks
    for depth, stitch in enumerate(net.stitches):
        h = [torch.relu(h[t] @ columns[t][depth][0] + columns[t][depth][1]) for t in range(n_tasks)]
        alpha = stitch.detach().double()
        h = [sum(alpha[t, s] * h[s] for s in range(n_tasks)) for t in range(n_tasks)]
    return towers(net, h)


def tensor_factorization(net, x):
    n_tasks = len(net.n_outputs)
    h = [x] * n_tasks
    for layer in range(len(net.biases)):
        core = net.cores[layer].detach().double()
        u_task = net.task_factors[layer].detach().double()
        u_in = net.in_factors[layer].detach().double()
        u_out = net.out_factors[layer].detach().double()
        bias = net.biases[layer].detach().double()
        for t in range(n_tasks):
            # task t's weight: the core contracted with its task factor, then U_in and U_out
            g_t = sum(u_task[t, a] * core[a] for a in range(core.shape[0]))
            weight = u_in @ g_t @ u_out.T
            h[t] = torch.relu(h[t] @ weight + bias[t, 0])
    return towers(net, h)


def l2_penalty(net):
    """coupling * sum over hidden layers and tasks of ||theta_t - mean theta||^2."""
    n_tasks = len(net.n_outputs)
    hidden = list(zip(*[member_layers(net.towers, t)[:-1] for t in range(n_tasks)]))
    total = 0.0
    for per_task in hidden:  # one hidden layer: (W_t, b_t) of every task
        for part in range(2):
            mean = sum(p[part] for p in per_task) / n_tasks
            total += sum(float(((p[part] - mean) ** 2).sum()) for p in per_task)
    return net.coupling * total


# ----------------------------------------------------------- comparisons
def assert_matches(net, reference, n_features, seed=0):
    net.eval()
    x = torch.randn(37, n_features, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        fused = net(x).double()
    expected = reference(net, x.double())
    assert fused.shape == expected.shape
    torch.testing.assert_close(fused, expected, atol=ATOL, rtol=RTOL)


def _net(cls, seed=0, **kwargs):
    torch.manual_seed(seed)
    return cls(**kwargs)


@pytest.mark.parametrize("n_outputs", [[1], [1, 3], [2, 1, 1]])
def test_shared_bottom(n_outputs):
    net = _net(mnn.SharedBottom, n_features=5, n_outputs=n_outputs,
               bottom_hidden_sizes=(8, 6), tower_hidden_sizes=(4,))
    assert_matches(net, shared_bottom, 5)


@pytest.mark.parametrize("cls", [mnn.MMoE, mnn.OMoE])
@pytest.mark.parametrize("top_k", [None, 1, 2])
@pytest.mark.parametrize("gate_hidden_sizes", [(), (3,)])
def test_mixture_of_experts(cls, top_k, gate_hidden_sizes):
    net = _net(cls, n_features=6, n_outputs=[1, 3, 1], n_experts=4, expert_hidden_sizes=(8, 5),
               gate_hidden_sizes=gate_hidden_sizes, tower_hidden_sizes=(4,), top_k=top_k)
    assert_matches(net, mixture_of_experts, 6)


@pytest.mark.parametrize(
    "n_levels, n_task_experts, n_shared_experts",
    [c for c in itertools.product([1, 2, 3], [0, 1, 2], [0, 1, 2, 3]) if c[1] + c[2] > 0],
)
def test_ple(n_levels, n_task_experts, n_shared_experts):
    net = _net(mnn.PLE, n_features=5, n_outputs=[1, 2, 1], n_levels=n_levels,
               n_task_experts=n_task_experts, n_shared_experts=n_shared_experts,
               expert_hidden_sizes=(6,), tower_hidden_sizes=(3,))
    assert_matches(net, ple, 5)


@pytest.mark.parametrize("n_levels", [1, 2])
@pytest.mark.parametrize("top_k", [1, 2])
def test_ple_top_k_and_gate_layers(n_levels, top_k):
    net = _net(mnn.PLE, n_features=5, n_outputs=[1, 1], n_levels=n_levels, n_task_experts=2,
               n_shared_experts=2, expert_hidden_sizes=(6, 4), gate_hidden_sizes=(3,),
               tower_hidden_sizes=(), top_k=top_k)
    assert_matches(net, ple, 5)


def test_gate_weights_match_the_reference_gates():
    net = _net(mnn.MMoE, n_features=4, n_outputs=[1, 1], n_experts=3, top_k=2).eval()
    x = torch.randn(9, 4)
    with torch.no_grad():
        fused = net.gate_weights(x).double()
    for t in range(2):
        expected = softmax_gate(x.double(), member_layers(net.gates, t), top_k=2)
        torch.testing.assert_close(fused[t], expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("cls", [mnn.SingleTask, mnn.L2Constrained])
def test_single_task_networks(cls):
    net = _net(cls, n_features=5, n_outputs=[1, 3], hidden_sizes=(7, 4))
    assert_matches(net, single_task, 5)


def test_l2_constrained_penalty():
    net = _net(mnn.L2Constrained, n_features=5, n_outputs=[1, 1, 2], hidden_sizes=(7, 4),
               coupling=0.3)
    assert float(net.penalty().detach()) == pytest.approx(l2_penalty(net), rel=1e-5)


@pytest.mark.parametrize("n_outputs", [[1, 1], [1, 2, 3]])
def test_cross_stitch(n_outputs):
    net = _net(mnn.CrossStitch, n_features=5, n_outputs=n_outputs, hidden_sizes=(6, 4))
    with torch.no_grad():  # stitches away from their initial value
        for stitch in net.stitches:
            stitch.add_(0.1 * torch.randn_like(stitch))
    assert_matches(net, cross_stitch, 5)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_tensor_factorization(rank):
    net = _net(mnn.TensorFactorization, n_features=5, n_outputs=[1, 2, 1], hidden_sizes=(6, 4),
               rank=rank)
    with torch.no_grad():  # non-zero biases
        for bias in net.biases:
            bias.normal_()
    assert_matches(net, tensor_factorization, 5)
