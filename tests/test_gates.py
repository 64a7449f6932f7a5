"""``gate_weights(X)``: the public gates of the mixtures of experts."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from conftest import network, small
from sklearn_mmoe import (
    CGCRegressor,
    MMoEClassifier,
    MMoERegressor,
    MultiTaskEstimator,
    OMoEClassifier,
    PLERegressor,
    SharedBottomClassifier,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
FEW = dict(width=4, max_epochs=2)  # small() layers of 4 units, two epochs


def _data(n=150, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    return X, np.column_stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0]).astype(int)


def _check_distributions(gates, n_rows, n_experts):
    for g in gates:
        assert g.shape == (n_rows, n_experts) and g.dtype == np.float64
        assert np.all(g >= 0)
        np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("model, n_experts", [
    (small(MMoEClassifier, n_experts=4, **FEW), 4),
    (small(OMoEClassifier, n_experts=3, **FEW), 3),
    (small(CGCRegressor, n_shared_experts=2, n_task_experts=1, **FEW), 3),
    (small(MultiTaskEstimator, architecture="cgc", n_shared_experts=3, n_task_experts=2,
           **FEW), 5),
])
def test_one_array_per_task_whose_rows_are_distributions(model, n_experts):
    X, Y = _data()
    gates = model.fit(X, Y).gate_weights(X[:7])
    assert isinstance(gates, list) and len(gates) == 3
    _check_distributions(gates, 7, n_experts)
    # a row's weights do not depend on the other rows (fixed-size inference chunks)
    np.testing.assert_array_equal(model.gate_weights(X[3:4])[1][0], gates[1][3])


def test_omoe_gives_its_single_gate_to_every_task():
    X, Y = _data()
    gates = small(OMoEClassifier, n_experts=3, **FEW).fit(X, Y).gate_weights(X)
    np.testing.assert_array_equal(gates[0], gates[2])
    gates[0][:] = 0  # independent arrays
    assert gates[2].sum() > 0


@pytest.mark.parametrize("n_levels", [1, 2, 3])
@pytest.mark.parametrize("estimator", [PLERegressor, MultiTaskEstimator])
def test_ple_gives_one_list_per_level(n_levels, estimator):
    X, Y = _data()
    extra = {"architecture": "ple"} if estimator is MultiTaskEstimator else {}
    model = small(estimator, n_levels=n_levels, n_shared_experts=2, n_task_experts=1, **extra,
                  **FEW)
    levels = model.fit(X, Y).gate_weights(X[:9])
    assert len(levels) == n_levels
    for level in levels:
        assert len(level) == 3
        _check_distributions(level, 9, 1 + 2)


def test_gates_equal_the_softmax_of_the_fitted_gate_layer():
    """MMoE's gate is softmax(x W_t + b_t): recompute it from the fitted parameters."""
    X, Y = _data()
    model = small(MMoERegressor, n_experts=4, numeric_encoding=None, **FEW).fit(X, Y)
    layer = model.net_.module_.gates.layers[-1]  # (in, n_gates, n_experts) shared-input weight
    weight, bias = layer.weight.detach().double(), layer.bias.detach().double()
    x = torch.as_tensor(X[:20])
    for t, gate in enumerate(model.gate_weights(X[:20])):
        expected = torch.softmax(x @ weight[:, t] + bias[t], dim=-1).numpy()
        np.testing.assert_allclose(gate, expected, atol=1e-6)


def test_dataframe_with_categorical_columns_and_one_task():
    """X is validated and encoded as for predict; 1-D y still gives a list per task."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame({"city": pd.Categorical(rng.choice(["a", "b", "c"], 120)),
                      "x": rng.randn(120)})
    y = (X["city"] == "a").to_numpy().astype(int)
    model = small(MMoEClassifier, n_experts=3, **FEW).fit(X, y)
    gates = model.gate_weights(X.iloc[:4])
    assert len(gates) == 1
    _check_distributions(gates, 4, 3)
    # an unseen category is read like predict reads it
    unseen = X.iloc[:1].assign(city=pd.Categorical(["zzz"]))
    _check_distributions(model.gate_weights(unseen), 1, 3)
    # as the unknown category (a missing one), not as the row's known one
    missing = X.iloc[:1].assign(city=pd.Categorical([np.nan]))
    np.testing.assert_array_equal(model.gate_weights(unseen)[0], model.gate_weights(missing)[0])
    assert not np.array_equal(model.gate_weights(unseen)[0], gates[0][:1])
    # a pickled model gives the same gates
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).gate_weights(X)[0],
                                  model.gate_weights(X)[0])
    with pytest.raises(ValueError, match="feature names"):
        model.gate_weights(X[["x", "city"]])


def test_errors():
    X, Y = _data()
    with pytest.raises(NotFittedError):
        MMoEClassifier().gate_weights(X)
    model = small(MMoEClassifier, n_experts=2, **FEW).fit(X, Y)
    with pytest.raises(ValueError, match="5 features"):
        model.gate_weights(X[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        model.gate_weights(np.full((2, 5), np.nan))
    # architectures without gates have no gate_weights
    assert not hasattr(SharedBottomClassifier(), "gate_weights")
    assert not hasattr(MultiTaskEstimator(architecture="cross_stitch"), "gate_weights")
    assert hasattr(MultiTaskEstimator(architecture="omoe"), "gate_weights")
    with pytest.raises(AttributeError, match="has no attribute 'gate_weights'") as exc:
        MultiTaskEstimator(architecture="shared_bottom").gate_weights(X)
    # the traceback says why
    assert "architecture='shared_bottom' has no gates" in str(exc.value.__cause__)


def test_an_imputation_head_is_not_a_task():
    """Multi-DR's imputation tower has a gate of its own; gate_weights gives the tasks'."""
    X, Y = _data()
    Y = Y[:, :2].astype(float)
    Y[Y[:, 0] == 0, 1] = np.nan  # conversion only after a click
    model = small(MultiTaskEstimator, architecture="mmoe", conditional_tasks={1: 0},
                  cvr_objective="dr", **FEW).fit(X, Y)
    assert network(model).gates.layers[-1].n_parallel == 3  # two tasks and the head
    gates = model.gate_weights(X)
    assert len(gates) == 2
    _check_distributions(gates, len(X), 3)
