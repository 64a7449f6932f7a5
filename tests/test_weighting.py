"""Loss-weighting strategies, each on a case where its effect is visible."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from conftest import all_estimators, small
from sklearn_mmoe import MMoERegressor
from sklearn_mmoe.nn import MaskedMultiTaskLoss, ParallelLinear, SharedBottom
from sklearn_mmoe.weighting import DWA, Decay, GradNorm, PCGrad, Uncertainty, project_conflicting

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _two_tasks(n=2000, noise=(0.0, 2.0), seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    Y = np.column_stack([X[:, 0] + noise[0] * rng.normal(size=n), X[:, 1] + noise[1] * rng.normal(size=n)])
    return X, Y


def _fit(weighting, X, Y, **params):
    params = dict(n_experts=4, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,), random_state=0, **params)
    return MMoERegressor(loss_weighting=weighting, **params).fit(X, Y)


def test_uncertainty_learns_a_larger_variance_for_the_noisy_task():
    # Task 1 is mostly noise (80 % of its variance): at the optimum its
    # log-variance is log(its loss), so it is weighted down.
    X, Y = _two_tasks()
    model = _fit("uncertainty", X, Y, max_epochs=40, learning_rate=1e-2)
    log_vars = model.net_.criterion_.weighting.log_vars.detach().numpy()
    assert log_vars[1] > log_vars[0] + 1.0, log_vars
    weights = model.net_.history[-1, "task_weights"]
    assert weights[1] < weights[0]


def test_dwa_follows_its_formula():
    dwa = DWA(temperature=2.0).build([1.0, 1.0], ["regression", "regression"])
    for losses in ([1.0, 1.0], [0.5, 1.0]):  # task 0 halves, task 1 stalls
        dwa._accumulate(torch.tensor(losses))
        dwa.end_epoch(1)
    ratio = torch.tensor([0.5, 1.0])
    expected = 2 * torch.softmax(ratio / 2.0, dim=0)
    torch.testing.assert_close(dwa.weights, expected)
    assert dwa.weights[1] > 1 > dwa.weights[0]  # the stalling task gets more weight


def test_dwa_in_training_weights_the_slower_task_up():
    # Task 0 is learned within the first epochs, task 1 keeps improving:
    # after epoch 2 DWA reweights, and the weights always sum to n_tasks.
    X, Y = _two_tasks(noise=(0.0, 0.0))
    Y[:, 1] = np.sin(3 * X[:, 1]) * X[:, 2]
    model = _fit("dwa", X, Y, max_epochs=8, learning_rate=3e-3)
    history = np.array(model.net_.history[:, "task_weights"])
    np.testing.assert_allclose(history[:2], 1.0)
    assert not np.allclose(history[2:], 1.0)
    np.testing.assert_allclose(history.sum(axis=1), 2.0, rtol=1e-5)


def test_decay_weights_follow_gamma_per_epoch():
    X, Y = _two_tasks(n=500)
    model = _fit(Decay(gamma=[1.0, 0.5]), X, Y, max_epochs=4, task_weights=[2.0, 1.0])
    history = np.array(model.net_.history[:, "task_weights"])
    expected = np.array([[2.0, 0.5 ** (e - 1)] for e in range(1, 5)])  # epochs 1..4
    np.testing.assert_allclose(history, expected)
    with pytest.raises(ValueError, match="gamma must be in"):
        _fit(Decay(gamma=1.5), X, Y, max_epochs=1)


def test_gradnorm_weights_the_slower_training_task_up():
    # Task 0 (linear) trains fast, task 1 (non-linear) slowly: GradNorm moves
    # weight to task 1, keeping the total fixed.
    X, Y = _two_tasks(noise=(0.0, 0.0))
    Y[:, 1] = np.sin(3 * X[:, 1]) * X[:, 2]
    model = _fit(GradNorm(alpha=1.5), X, Y, max_epochs=10, learning_rate=3e-3)
    weights = model.net_.criterion_.weighting.weights.numpy()
    assert weights[1] > weights[0], weights
    assert weights.sum() == pytest.approx(2.0, rel=1e-3)


def test_project_conflicting_gradients():
    # Conflicting gradients are projected onto each other's normal plane.
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    combined = project_conflicting(g, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(combined, torch.tensor([0.5, 1.5]))
    assert torch.all(g @ combined >= 0)
    # Non-conflicting gradients are simply summed.
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(project_conflicting(g), torch.tensor([2.0, 1.0]))


def test_pcgrad_step_does_not_conflict_with_any_task():
    # Identical towers, outputs near zero and opposite targets: the two
    # tasks' gradients on the shared bottom point in opposite directions.
    # After PCGrad the update agrees with both.
    torch.manual_seed(0)
    net = SharedBottom(5, [1, 1], bottom_hidden_sizes=(8,), tower_hidden_sizes=(4,))
    with torch.no_grad():
        for layer in net.towers.layers:
            if isinstance(layer, ParallelLinear):
                layer.weight[1] = layer.weight[0]
                layer.bias[1] = layer.bias[0]
        net.towers.layers[-1].weight.mul_(0.01)
        net.towers.layers[-1].bias.zero_()
    X = torch.randn(64, 5)
    target = torch.stack([X[:, 0], -X[:, 0]], dim=1)
    weight = torch.ones(64, 2)
    loss = MaskedMultiTaskLoss(["regression"] * 2, [1, 1], weighting="pcgrad")
    per_task_grads = []
    for t in range(2):
        net.zero_grad()
        loss.per_task(net(X), target, weight)[t].backward()
        per_task_grads.append(torch.cat([p.grad.flatten() for p in net.shared_parameters()]))
    net.zero_grad()
    loss.weighting.backward(loss.per_task(net(X), target, weight), net)
    combined = torch.cat([p.grad.flatten() for p in net.shared_parameters()])
    assert torch.dot(per_task_grads[0], per_task_grads[1]) < 0  # they conflict
    for g in per_task_grads:
        assert torch.dot(combined, g) >= -1e-6
    assert not torch.allclose(combined, per_task_grads[0] + per_task_grads[1])
    # Towers get their own task's gradient, unprojected.
    assert all(p.grad is not None for p in net.towers.parameters())


@pytest.mark.parametrize("cls", all_estimators("regressor"), ids=lambda c: c.__name__)
@pytest.mark.parametrize("weighting", ["uncertainty", "dwa", "gradnorm", "decay", "pcgrad"])
def test_every_strategy_trains_every_architecture(weighting, cls):
    X, Y = _two_tasks(n=256)
    model = small(cls, loss_weighting=weighting, task_weights=[1.0, 0.5], max_epochs=3,
                  batch_size=128)
    if weighting == "gradnorm" and cls.__name__.startswith(("SingleTask", "L2Constrained")):
        with pytest.raises(ValueError, match="has no shared layer"):
            model.fit(X, Y)
        return
    model.fit(X, Y)
    assert np.all(np.isfinite(model.predict(X)))
    assert len(model.net_.history[:, "task_weights"]) == 3
    # The reported training loss uses the fixed task weights, whatever the
    # strategy weighs the objective with (equal batches: the epoch's loss is
    # the mean of the batches' losses, as each task's).
    fixed = np.asarray(model.task_loss_curve_) @ np.array([1.0, 0.5])
    np.testing.assert_allclose(model.loss_curve_, fixed, rtol=1e-6)


def test_strategies_are_parameters_like_any_other():
    est = MMoERegressor(loss_weighting=DWA(temperature=3.0))
    assert est.get_params()["loss_weighting__temperature"] == 3.0
    copy = clone(est).set_params(loss_weighting__temperature=1.0)
    assert copy.loss_weighting.temperature == 1.0 and est.loss_weighting.temperature == 3.0
    X, Y = _two_tasks(n=300)
    strategy = Uncertainty()
    model = MMoERegressor(loss_weighting=strategy, max_epochs=2, random_state=0).fit(X, Y)
    assert model.net_.criterion_.weighting is not strategy  # the module is built from it
    assert vars(strategy) == {}  # and the configuration is left untouched
    with pytest.raises(InvalidParameterError, match="loss_weighting"):
        MMoERegressor(loss_weighting="softmax").fit(X, Y)
    assert repr(PCGrad()) == "PCGrad()" and "temperature=2.0" in repr(DWA())
