"""The MMoE paper's baselines: Single-Task, L2-Constrained, Cross-Stitch, Tensor-Factorization."""

import numpy as np
import pytest
import torch

from conftest import network
from sklearn_mmoe import (
    CrossStitchClassifier,
    L2ConstrainedClassifier,
    L2ConstrainedRegressor,
    MultiTaskEstimator,
    SingleTaskClassifier,
    SingleTaskRegressor,
    TensorFactorizationRegressor,
)
from sklearn_mmoe.datasets import make_multitask_regression
from sklearn_mmoe.nn import ParallelLinear, TensorFactorization

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=500, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6))
    return X, np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(float)


def _hidden_task_params(model):
    """Per-task hidden-layer parameters of a SingleTask-like module: (n_tasks, -1)."""
    layers = [m for m in network(model).towers.layers if isinstance(m, ParallelLinear)][:-1]
    parts = []
    for layer in layers:
        weight = layer.weight.transpose(0, 1) if layer.shared_input else layer.weight
        parts += [weight.reshape(weight.shape[0], -1), layer.bias.reshape(layer.bias.shape[0], -1)]
    return torch.cat(parts, dim=1).detach()


def test_single_task_networks_are_independent():
    X, Y = _data()
    other = Y.copy()
    other[:, 1] = 1 - other[:, 1]  # task 1's labels flipped
    a = SingleTaskClassifier(max_epochs=5, random_state=0).fit(X, Y)
    b = SingleTaskClassifier(max_epochs=5, random_state=0).fit(X, other)
    np.testing.assert_array_equal(a.predict_proba(X)[0], b.predict_proba(X)[0])
    assert not np.allclose(a.predict_proba(X)[1], b.predict_proba(X)[1])
    assert network(a).shared_parameters() == []
    with pytest.raises(ValueError, match="no shared layer"):
        SingleTaskClassifier(loss_weighting="gradnorm", max_epochs=1).fit(X, Y)


def test_l2_constrained_interpolates_between_independent_and_tied_networks():
    X, Y = make_multitask_regression(n_samples=1000, n_features=8, correlation=0.5, random_state=0)
    independent = SingleTaskRegressor(max_epochs=10, random_state=0).fit(X, Y)
    zero = L2ConstrainedRegressor(coupling=0.0, max_epochs=10, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(independent.predict(X), zero.predict(X))  # coupling 0: no tie

    def spread(model):
        params = _hidden_task_params(model)
        return (params - params.mean(0)).square().sum().item()

    # (Adam moves each parameter ~learning_rate per step whatever the
    # penalty's scale: give the tie enough steps to show.)
    spreads = [
        spread(
            L2ConstrainedRegressor(coupling=c, max_epochs=40, learning_rate=1e-2, random_state=0)
            .fit(X, Y)
        )
        for c in (0.0, 0.1, 10.0)
    ]
    assert spreads[0] > spreads[1] > spreads[2], spreads
    assert spreads[2] < 0.1 * spreads[0], spreads


def test_l2_penalty_value():
    X, Y = _data(n=50)
    model = L2ConstrainedClassifier(coupling=0.5, max_epochs=1, random_state=0).fit(X, Y)
    params = _hidden_task_params(model)
    expected = 0.5 * (params - params.mean(0)).square().sum()
    torch.testing.assert_close(model.net_.module_.penalty().detach(), expected)


def test_cross_stitch_learns_its_mixing():
    X, Y = _data()
    model = CrossStitchClassifier(hidden_sizes=(16, 8), max_epochs=20, learning_rate=1e-2, random_state=0)
    model.fit(X, Y)
    stitches = [s.detach() for s in network(model).stitches]
    assert len(stitches) == 2 and stitches[0].shape == (2, 2)
    initial = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert all(not torch.allclose(s, initial) for s in stitches)
    assert model.score(X, Y) > 0.85


def test_tensor_factorization_weights_have_the_tucker_ranks():
    torch.manual_seed(0)
    net = TensorFactorization(10, [1, 1, 1], hidden_sizes=(12,), rank=2)
    weights = net.layer_weights(0)  # (3 tasks, 10, 12)
    assert torch.linalg.matrix_rank(weights.reshape(3, -1)) <= 2  # task mode
    assert torch.linalg.matrix_rank(weights.permute(1, 0, 2).reshape(10, -1)) <= 2  # input mode
    assert torch.linalg.matrix_rank(weights.permute(2, 0, 1).reshape(12, -1)) <= 2  # output mode


@pytest.mark.parametrize(
    "cls", [SingleTaskRegressor, L2ConstrainedRegressor, TensorFactorizationRegressor]
)
def test_baselines_learn_the_synthetic_tasks(cls):
    X, Y = make_multitask_regression(n_samples=3000, n_features=16, correlation=0.5, random_state=0)
    model = cls(max_epochs=60, learning_rate=1e-2, random_state=0).fit(X[:2000], Y[:2000])
    mse = np.mean((model.predict(X[2000:]) - Y[2000:]) ** 2, axis=0)
    assert np.all(mse < 0.3 * Y[2000:].var(axis=0)), mse


@pytest.mark.parametrize("architecture", ["single_task", "l2_constrained", "cross_stitch", "tensor_factorization"])
def test_baselines_in_the_generic_estimator(architecture):
    X, Y = _data(n=200)
    Y = Y.astype(object)
    Y[:, 1] = np.where(Y[:, 1] == 1, "yes", "no")
    model = MultiTaskEstimator(
        architecture=architecture, task_types=["classification"] * 2, max_epochs=3, random_state=0
    ).fit(X, Y)
    assert model.predict(X).shape == (200, 2)
