"""The experiment modules and the command line (in their quick modes)."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mmoe import MMoEClassifier, OMoERegressor, PLEClassifier
from sklearn_mmoe.experiments.gates import average_gate_weights, plot_gate_weights

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    return X, np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)


def test_average_gate_weights():
    X, Y = _data()
    mmoe = make_pipeline(StandardScaler(), MMoEClassifier(n_experts=4, max_epochs=3, random_state=0))
    weights = average_gate_weights(mmoe.fit(X, Y), X)
    assert list(weights) == ["gates"] and weights["gates"].shape == (2, 4)
    np.testing.assert_allclose(weights["gates"].sum(axis=1), 1.0, rtol=1e-5)
    # the mean of the per-row gate weights, computed directly
    import torch

    module = mmoe[-1].net_.module_
    direct = module.gate_weights(torch.as_tensor(mmoe[0].transform(X), dtype=torch.float32))
    np.testing.assert_allclose(weights["gates"], direct.mean(dim=1).detach().numpy(), rtol=1e-5)
    # fewer rows than an inference chunk: the padding rows are not averaged in
    few = average_gate_weights(mmoe, X[:50])["gates"]
    np.testing.assert_allclose(few, direct[:, :50].mean(dim=1).detach().numpy(), rtol=1e-5)

    omoe = OMoERegressor(n_experts=3, max_epochs=2, random_state=0).fit(X, Y)
    assert average_gate_weights(omoe, X)["gates"].shape == (1, 3)
    ple = PLEClassifier(n_levels=2, n_shared_experts=2, n_task_experts=1, max_epochs=2, random_state=0)
    levels = average_gate_weights(ple.fit(X, Y), X)
    assert {k: v.shape for k, v in levels.items()} == {
        "level 1 tasks": (2, 3), "level 1 shared": (1, 4), "level 2 tasks": (2, 3),
    }
    with pytest.raises(ValueError, match="has no gates"):
        from sklearn_mmoe import SharedBottomClassifier

        average_gate_weights(SharedBottomClassifier(max_epochs=1).fit(X, Y), X)


def test_plot_gate_weights(tmp_path):
    pytest.importorskip("matplotlib")
    X, Y = _data()
    model = MMoEClassifier(n_experts=4, max_epochs=2, random_state=0).fit(X, Y)
    path = plot_gate_weights(average_gate_weights(model, X), tmp_path / "gates.png", ["a", "b"])
    # one 3-inch panel per gate at 100 dpi: a PNG 600 pixels wide for two tasks
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 600
    omoe = OMoERegressor(n_experts=3, max_epochs=1, random_state=0).fit(X, Y)
    one = plot_gate_weights(average_gate_weights(omoe, X), tmp_path / "one.png")
    assert int.from_bytes(one.read_bytes()[16:20], "big") == 300
