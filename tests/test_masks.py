"""Missing labels and sample weights: masked entries must not influence training."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from conftest import small
from sklearn_mmoe import (
    MMoEClassifier,
    MMoERegressor,
    OMoEClassifier,
    SharedBottomClassifier,
    SharedBottomRegressor,
)
from sklearn_mmoe.nn import MaskedMultiTaskLoss, MMoE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(float)
    return X, Y


# ----------------------------------------------------------------- loss level
def test_loss_ignores_values_behind_the_mask():
    torch.manual_seed(0)
    net = MMoE(5, [1, 3, 1], n_experts=3, expert_hidden_sizes=(8,))
    loss = MaskedMultiTaskLoss(["binary", "multiclass", "regression"], [1, 3, 1])
    x = torch.randn(32, 5)
    target = torch.stack(
        [torch.randint(0, 2, (32,)), torch.randint(0, 3, (32,)), torch.randn(32)], 1
    ).float()
    weight = (torch.rand(32, 3) > 0.4).float()

    def grads(target):
        net.zero_grad()
        out = net(x)
        out.retain_grad()
        value = loss(out, target, weight)
        value.backward()
        return value.detach(), [p.grad.clone() for p in net.parameters()], out.grad

    value, param_grads, out_grad = grads(target)
    # Different (valid) values behind the mask: same loss, same gradients.
    other = target.clone()
    masked = weight == 0
    other[:, 0][masked[:, 0]] = 1 - other[:, 0][masked[:, 0]]
    other[:, 1][masked[:, 1]] = (other[:, 1][masked[:, 1]] + 1) % 3
    other[:, 2][masked[:, 2]] = 1e3
    value2, param_grads2, _ = grads(other)
    assert torch.equal(value, value2)
    for a, b in zip(param_grads, param_grads2):
        assert torch.equal(a, b)
    # The masked entries' outputs receive exactly zero gradient...
    assert torch.all(out_grad[:, :, 0][masked] == 0)
    # ...and each observed task does move the network.
    assert all(out_grad[:, t][~masked[:, t]].abs().sum() > 0 for t in range(3))


def test_loss_is_mean_over_observed_rows_per_task():
    loss = MaskedMultiTaskLoss(["regression", "regression"], [1, 1], task_weights=[1.0, 2.0])
    logits = torch.zeros(4, 2, 1)
    target = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 0.0], [7.0, 0.0]])
    weight = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    per_task = loss.per_task(logits, target, weight)
    # Task 0: rows 0, 1, 3 -> (1 + 9 + 49) / 3; task 1: row 0 only -> 4.
    assert torch.allclose(per_task, torch.tensor([59 / 3, 4.0]))
    assert torch.allclose(loss(logits, target, weight), torch.tensor(59 / 3 + 2 * 4.0))
    # A task with no observed row in the batch contributes zero, not NaN.
    assert loss.per_task(logits, target, torch.zeros(4, 2)).tolist() == [0.0, 0.0]


# ------------------------------------------------------------ estimator level
@pytest.mark.parametrize(
    "cls", [SharedBottomClassifier, OMoEClassifier, MMoEClassifier, MMoERegressor]
)
def test_fully_masked_rows_are_as_if_absent(cls):
    # A row whose labels are all missing adds nothing to any gradient: with
    # one full batch, training on the data with those rows equals training
    # without them (up to float32 summation order).
    X, Y = _data()
    if cls is MMoERegressor:
        Y = X[:, :2] @ np.array([[1.0, -1.0], [0.5, 2.0]])
    Y_masked = Y.copy()
    Y_masked[::4] = np.nan
    keep = ~np.isnan(Y_masked).all(axis=1)
    params = dict(batch_size=1000, max_epochs=5)
    full = small(cls, **params).fit(X, Y_masked)
    subset = small(cls, **params).fit(X[keep], Y[keep])
    method = "predict_proba" if hasattr(full, "predict_proba") else "predict"
    np.testing.assert_allclose(
        np.asarray(getattr(full, method)(X)), np.asarray(getattr(subset, method)(X)), atol=1e-5
    )


@pytest.mark.parametrize("cls", [OMoEClassifier, MMoEClassifier, SharedBottomRegressor])
def test_masked_entries_of_one_task_are_as_if_absent_for_that_task(cls):
    # With task 0's loss weighted 0, only task 1 trains the network; masking
    # task 1 on some rows (task 0 still labelled there) must then equal
    # dropping those rows.
    X, Y = _data()
    if cls is SharedBottomRegressor:
        Y = X[:, :2] @ np.array([[1.0, -1.0], [0.5, 2.0]])
    Y_masked = Y.copy()
    Y_masked[::3, 1] = np.nan
    keep = ~np.isnan(Y_masked[:, 1])
    # Raw inputs: the default numeric encoding learns its quantiles from every
    # row with a label in some task, so the rows dropped below would move it.
    params = dict(batch_size=1000, max_epochs=5, task_weights=[0.0, 1.0], numeric_encoding=None)
    full = small(cls, **params).fit(X, Y_masked)
    subset = small(cls, **params).fit(X[keep], Y[keep])
    if hasattr(full, "predict_proba"):
        a, b = full.predict_proba(X)[1], subset.predict_proba(X)[1]
    else:
        a, b = full.predict(X)[:, 1], subset.predict(X)[:, 1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    # Control: the same fit with task 1 also labelled on those rows differs.
    unmasked = small(cls, **params).fit(X, Y)
    other = unmasked.predict_proba(X)[1] if hasattr(full, "predict_proba") else unmasked.predict(X)[:, 1]
    assert not np.allclose(a, other, atol=1e-5)


@pytest.mark.parametrize("missing", [np.nan, None, pd.NA], ids=["nan", "None", "NA"])
def test_missing_label_markers_are_equivalent(missing):
    X, Y = _data()
    labels = np.where(Y == 1, "yes", "no").astype(object)
    labels[::3, 1] = np.nan
    reference = small(MMoEClassifier, max_epochs=5).fit(X, labels)
    other = labels.copy()
    other[::3, 1] = missing
    model = small(MMoEClassifier, max_epochs=5).fit(X, other)
    for p, q in zip(reference.predict_proba(X), model.predict_proba(X)):
        assert np.array_equal(p, q)


def test_nullable_dataframe_targets():
    X, Y = _data()
    frame = pd.DataFrame({"click": Y[:, 0].astype(int), "kind": np.where(Y[:, 1] > 0, "a", "b")})
    frame["click"] = frame["click"].astype("Int64")
    frame.loc[::3, "click"] = pd.NA
    frame.loc[1::4, "kind"] = None
    model = small(MMoEClassifier, max_epochs=5).fit(X, frame)
    assert [list(c) for c in model.classes_] == [[0, 1], ["a", "b"]]
    pred = model.predict(X)
    assert pred.shape == (len(X), 2) and pred.dtype == object
    assert set(pred[:, 1]) <= {"a", "b"}


def test_zero_sample_weight_is_as_if_absent():
    X, Y = _data()
    weight = np.ones(len(X))
    weight[::5] = 0
    params = dict(batch_size=1000, max_epochs=5)
    a = small(MMoEClassifier, **params).fit(X, Y, sample_weight=weight)
    b = small(MMoEClassifier, **params).fit(X[weight > 0], Y[weight > 0])
    for p, q in zip(a.predict_proba(X), b.predict_proba(X)):
        np.testing.assert_allclose(p, q, atol=1e-5)


@pytest.mark.parametrize("cls", [MMoEClassifier, SharedBottomRegressor])
def test_integer_sample_weight_is_as_if_repeated(cls):
    # scikit-learn's check runs this for a few epochs only (float32 rounding
    # compounds over Adam steps); after a full training the two fits still
    # agree to float32 precision.
    X, Y = _data(n=40)
    if cls is SharedBottomRegressor:
        Y = X[:, :2] @ np.array([[1.0, -1.0], [0.5, 2.0]])
    Y = Y.copy()
    Y[::3, 1] = np.nan
    weight = np.random.RandomState(1).randint(0, 4, size=len(X))
    params = dict(batch_size=1000, max_epochs=60)
    a = small(cls, **params).fit(X, Y, sample_weight=weight)
    b = small(cls, **params).fit(X.repeat(weight, axis=0), Y.repeat(weight, axis=0))
    method = "predict_proba" if hasattr(a, "predict_proba") else "predict"
    np.testing.assert_allclose(
        np.asarray(getattr(a, method)(X)), np.asarray(getattr(b, method)(X)), rtol=1e-3, atol=1e-4
    )


def test_masked_labels_do_not_count_in_validation_loss_or_score():
    X, Y = _data(n=400)
    Y_masked = Y.copy()
    Y_masked[::2, 1] = np.nan
    model = small(MMoEClassifier, early_stopping=True, max_epochs=20).fit(X, Y_masked)
    assert np.all(np.isfinite(model.validation_loss_curve_))
    assert model.best_validation_loss_ == min(model.validation_loss_curve_)
    # score: the mean over tasks of accuracy on observed labels only.
    pred = model.predict(X)
    observed = ~np.isnan(Y_masked[:, 1])
    expected = np.mean([np.mean(pred[:, 0] == Y[:, 0]), np.mean(pred[observed, 1] == Y[observed, 1])])
    assert model.score(X, Y_masked) == pytest.approx(expected)


@pytest.mark.parametrize("cls", [MMoEClassifier, MMoERegressor])
def test_task_without_labels_or_with_infinity_raises(cls):
    X, Y = _data()
    if cls is MMoERegressor:
        Y = X[:, :2].copy()
    Y_empty = Y.copy()
    Y_empty[:, 1] = np.nan
    with pytest.raises(ValueError, match="task 1 has no observed label"):
        cls().fit(X, Y_empty)
    Y_inf = Y.copy()
    Y_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        cls().fit(X, Y_inf)
    # Task 1's only labels (one of each class) sit on zero-weight rows.
    Y_one = Y.copy()
    Y_one[2:, 1] = np.nan
    Y_one[:2, 1] = [0, 1]
    weight = np.ones(len(X))
    weight[:2] = 0
    with pytest.raises(ValueError, match="task 1 has no observed label with a non-zero sample_weight"):
        cls().fit(X, Y_one, sample_weight=weight)


def test_object_infinity_label_raises():
    X, Y = _data()
    labels = Y.astype(object)
    labels[0, 1] = float("inf")
    with pytest.raises(ValueError, match="infinity"):
        MMoEClassifier().fit(X, labels)


def test_convergence_warning_when_max_epochs_is_reached():
    X, Y = _data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        small(MMoEClassifier, max_epochs=2).fit(X, Y)
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)


@pytest.mark.parametrize("cls", [MMoEClassifier, SharedBottomRegressor])
def test_failed_refit_leaves_the_fitted_model_intact(cls):
    X, Y = _data()
    if cls is SharedBottomRegressor:
        Y = X[:, :2].copy()
    model = small(cls, max_epochs=2).fit(X, Y)
    before = model.predict(X)
    state = dict(vars(model))
    bad = Y[:, :1].copy()
    bad[:, 0] = np.nan  # a task without any label
    for args in [(X[:, :3], bad), (X, bad), (X, Y[:-1])]:
        with pytest.raises(ValueError):
            model.fit(*args)
        assert vars(model).keys() == state.keys()
        assert all(vars(model)[k] is v for k, v in state.items())
        np.testing.assert_array_equal(model.predict(X), before)
