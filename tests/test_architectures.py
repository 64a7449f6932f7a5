"""Structure of the networks: CGC/PLE routing, expert counts, top-k gates."""

import numpy as np
import pytest
import torch

from conftest import network
from sklearn_mmoe import (
    CGCClassifier,
    CGCRegressor,
    MMoEClassifier,
    MultiTaskEstimator,
    OMoERegressor,
    PLEClassifier,
    PLERegressor,
)
from sklearn_mmoe.datasets import make_multitask_regression
from sklearn_mmoe.nn import PLE, Gates, MMoE, OMoE, ParallelLinear, _gemm_layout

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6))
    return X, np.column_stack([X[:, 0] > 0, X[:, 1] - X[:, 2] > 0, X[:, 3] > 0.5]).astype(float)


# ------------------------------------------------------------------ PLE / CGC
def test_ple_expert_and_gate_counts():
    # 3 tasks, 2 experts per task, 3 shared experts, 3 levels.
    net = PLE(6, [1, 1, 1], n_levels=3, n_shared_experts=3, n_task_experts=2, expert_hidden_sizes=(8,))
    assert len(net.experts) == 3
    for level_experts in net.experts:
        assert level_experts.layers[0].n_parallel == 3 * 2 + 3  # all experts of a level at once
    levels = net.gate_weights(torch.zeros(5, 6))
    for level, (task_gates, shared_gate) in enumerate(levels):
        # each task gate mixes its own 2 experts and the 3 shared ones
        assert task_gates.shape == (3, 5, 2 + 3)
        # the shared gate mixes every expert, except after the last level
        if level < 2:
            assert shared_gate.shape == (1, 5, 9)
        else:
            assert shared_gate is None
    # Shared experts are built with their own count, not the task count
    # (a mistake of existing implementations).
    other = PLE(6, [1, 1, 1], n_levels=1, n_shared_experts=5, n_task_experts=1)
    assert other.experts[0].layers[0].n_parallel == 3 * 1 + 5


def test_ple_routing_reaches_every_parameter():
    # Every expert, gate and tower is on some task's path: a loss on the
    # outputs gives every parameter a gradient (the shared gates feed the
    # next level's shared experts, which feed every task gate).
    torch.manual_seed(0)
    net = PLE(6, [1, 3], n_levels=3, n_shared_experts=2, n_task_experts=2, expert_hidden_sizes=(8,))
    net(torch.randn(16, 6)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_task_specific_experts_only_reach_their_own_task():
    # In CGC, task 0's own experts have no path to task 1's output.
    torch.manual_seed(0)
    net = PLE(6, [1, 1], n_levels=1, n_shared_experts=1, n_task_experts=2, expert_hidden_sizes=(8,))
    out = net(torch.randn(16, 6))
    out[:, 1].sum().backward()
    first = net.experts[0].layers[0]
    grad = first.weight.grad  # (in, experts, out) for the shared-input first layer
    assert grad[:, :2].abs().sum() == 0  # task 0's experts
    assert grad[:, 2:].abs().sum() > 0  # task 1's experts and the shared one


def test_cgc_is_ple_with_one_level():
    X, Y = _data()
    params = dict(n_shared_experts=2, n_task_experts=1, expert_hidden_sizes=(8,), max_epochs=3, random_state=0)
    cgc = CGCClassifier(**params).fit(X, Y)
    ple = PLEClassifier(n_levels=1, **params).fit(X, Y)
    assert isinstance(network(cgc), PLE) and len(network(cgc).experts) == 1
    for a, b in zip(cgc.predict_proba(X), ple.predict_proba(X)):
        assert np.array_equal(a, b)
    generic = MultiTaskEstimator(architecture="cgc", task_types=["classification"] * Y.shape[1], **params).fit(X, Y)
    for a, b in zip(cgc.predict_proba(X), generic.predict_proba(X)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cls", [CGCRegressor, PLERegressor])
def test_cgc_and_ple_learn_the_synthetic_tasks(cls):
    X, Y = make_multitask_regression(n_samples=3000, n_features=16, correlation=0.5, random_state=0)
    model = cls(n_shared_experts=2, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,),
                max_epochs=60, learning_rate=1e-2, random_state=0).fit(X[:2000], Y[:2000])
    mse = np.mean((model.predict(X[2000:]) - Y[2000:]) ** 2, axis=0)
    assert np.all(mse < 0.25 * Y[2000:].var(axis=0)), mse


def test_expert_counts_are_validated():
    X, Y = _data()
    with pytest.raises(ValueError, match="n_shared_experts \\+ n_task_experts"):
        CGCClassifier(n_shared_experts=0, n_task_experts=0).fit(X, Y)
    with pytest.raises(ValueError, match="n_levels"):
        PLEClassifier(n_levels=0).fit(X, Y)


# ---------------------------------------------------------------------- top-k
@pytest.mark.parametrize(
    "net",
    [
        MMoE(6, [1, 1, 1], n_experts=6, top_k=2),
        OMoE(6, [1, 1, 1], n_experts=6, top_k=3),
        PLE(6, [1, 1, 1], n_levels=2, n_shared_experts=3, n_task_experts=2, top_k=2),
    ],
    ids=["mmoe", "omoe", "ple"],
)
def test_top_k_gates_keep_exactly_k_experts(net):
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    weights = net.gate_weights(x)
    gates = [g for level in weights for g in level if g is not None] if isinstance(weights, list) else [weights]
    expected = 3 if isinstance(net, OMoE) else 2
    for g in gates:
        nonzero = (g > 0).sum(-1)
        assert torch.all(nonzero == expected), nonzero.unique()
        torch.testing.assert_close(g.sum(-1), torch.ones_like(g.sum(-1)))


def test_top_k_gradients_flow_through_the_selected_experts_only():
    torch.manual_seed(0)
    gates = Gates(1, 4, 5, top_k=2)
    x = torch.randn(1, 4)
    expert_out = torch.randn(5, 1, 3, requires_grad=True)
    g = gates(x)
    mixed = torch.einsum("gbe,ebd->gbd", g, expert_out)
    mixed.sum().backward()
    selected = (g[0, 0] > 0).nonzero().flatten().tolist()
    per_expert = expert_out.grad.abs().sum(dim=(1, 2))
    assert len(selected) == 2
    assert all(per_expert[e] > 0 for e in selected)
    assert all(per_expert[e] == 0 for e in range(5) if e not in selected)
    # and the gate itself learns from the selected logits
    assert gates.layers[-1].weight.grad.abs().sum() > 0


def test_top_k_estimators():
    X, Y = _data()
    model = MMoEClassifier(n_experts=4, top_k=1, max_epochs=20, random_state=0).fit(X, Y)
    x = torch.as_tensor(X[:50], dtype=torch.float32)
    assert torch.all((model.net_.module_.gate_weights(x) > 0).sum(-1) == 1)
    assert model.score(X, Y) > 0.8
    with pytest.raises(ValueError, match="top_k=5 is larger than the 4 experts"):
        MMoEClassifier(n_experts=4, top_k=5).fit(X, Y)
    with pytest.raises(ValueError, match="top_k=3 is larger than the 2 experts"):
        PLEClassifier(n_shared_experts=1, n_task_experts=1, top_k=3).fit(X, Y)
    reg = OMoERegressor(n_experts=4, top_k=2, max_epochs=2, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == Y.shape


def _row_major_parallel_linear(layer, x, weight):
    """ParallelLinear's product written with the row-major weight as stored."""
    if layer.shared_input:
        out = torch.addmm(layer.bias.detach().view(1, -1), x, weight.view(x.shape[-1], -1))
        return out.view(x.shape[0], layer.n_parallel, layer.out_features).transpose(0, 1)
    return torch.baddbmm(layer.bias.detach(), x, weight)


@pytest.mark.parametrize("shared_input", [True, False])
@pytest.mark.parametrize("n_parallel, out_features", [(1, 8), (2, 1), (3, 4), (2, 8), (1, 64)])
def test_parallel_linear_layout_does_not_change_the_maths(shared_input, n_parallel, out_features):
    # Narrow products are computed with a column-major copy of the weight when
    # gradients are on (faster on MKL); the outputs and the parameter's
    # gradient are those of the row-major product, up to float32 rounding,
    # and inference uses the row-major product itself.
    torch.manual_seed(0)
    layer = ParallelLinear(n_parallel, 37, out_features, shared_input=shared_input)
    x = torch.randn(200, 37) if shared_input else torch.randn(n_parallel, 200, 37)
    weight = layer.weight.detach().clone().requires_grad_()
    ref = _row_major_parallel_linear(layer, x, weight)
    ref.square().sum().backward()
    out = layer(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, ref.detach(), rtol=1e-5, atol=1e-5)
    assert layer.weight.grad.shape == layer.weight.shape
    torch.testing.assert_close(layer.weight.grad, weight.grad, rtol=1e-5, atol=1e-4)
    with torch.no_grad():
        assert torch.equal(layer(x), _row_major_parallel_linear(layer, x, layer.weight))


def test_narrow_weights_are_multiplied_column_major_only_with_gradients():
    narrow = torch.zeros(37, 8, requires_grad=True)
    wide = torch.zeros(37, 16, requires_grad=True)
    assert _gemm_layout(narrow).stride() == (1, 37)  # column-major copy
    assert _gemm_layout(wide) is wide
    with torch.no_grad():
        assert _gemm_layout(narrow) is narrow
    assert _gemm_layout(narrow.detach()).stride() == (8, 1)


@pytest.mark.parametrize("n_gates, n_experts, width", [(1, 4, 16), (2, 8, 64), (3, 5, 7)])
def test_expert_mixing_equals_the_einsum_to_the_bit(n_gates, n_experts, width):
    # The mixture reads the gates and experts as ParallelLinear leaves them
    # (transposed views of row-major products) and multiplies them with one
    # bmm over the rows; outputs and both gradients must be those of the
    # einsum it replaced, bit for bit, so that fitted models are unchanged.
    from sklearn_mmoe.nn import _mix_experts

    torch.manual_seed(0)
    rows = 300
    logits = torch.randn(rows, n_gates * n_experts, requires_grad=True)
    hidden = torch.randn(rows, n_experts * width, requires_grad=True)
    grad_out = torch.randn(n_gates, rows, width)
    results = []
    for mix in (_mix_experts, lambda g, e: torch.einsum("gbe,ebd->gbd", g, e)):
        gates = torch.softmax(logits.view(rows, n_gates, n_experts).transpose(0, 1), -1)
        experts = hidden.view(rows, n_experts, width).transpose(0, 1)
        out = mix(gates, experts)
        out.backward(grad_out)
        results.append((out.detach(), logits.grad, hidden.grad))
        logits.grad = hidden.grad = None
    assert results[0][0].shape == (n_gates, rows, width)
    for new, old in zip(*results):
        assert torch.equal(new, old)
