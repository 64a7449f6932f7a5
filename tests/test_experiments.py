"""The experiment modules and the command line (in their quick modes)."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mmoe import MMoEClassifier, OMoERegressor, PLEClassifier
from sklearn_mmoe.experiments.gates import (
    average_gate_weights,
    gate_expert_names,
    plot_gate_weights,
)

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
    # the mean of the per-row gate weights of the estimator's gate_weights
    direct = mmoe[-1].gate_weights(mmoe[0].transform(X))
    np.testing.assert_allclose(weights["gates"], [g.mean(axis=0) for g in direct], rtol=1e-6)

    # OMoE: the single gate, as every task's
    omoe = OMoERegressor(n_experts=3, max_epochs=2, random_state=0).fit(X, Y)
    gates = average_gate_weights(omoe, X)["gates"]
    assert gates.shape == (2, 3)
    np.testing.assert_array_equal(gates[0], gates[1])
    ple = PLEClassifier(n_levels=2, n_shared_experts=2, n_task_experts=1, max_epochs=2, random_state=0)
    levels = average_gate_weights(ple.fit(X, Y), X)
    assert {k: v.shape for k, v in levels.items()} == {"level 1": (2, 3), "level 2": (2, 3)}
    assert gate_expert_names(ple, ["a", "b"]) == [["a 0", "shared 0", "shared 1"],
                                                   ["b 0", "shared 0", "shared 1"]]
    assert gate_expert_names(omoe, ["a", "b"]) == [[f"expert {i}" for i in range(3)]] * 2
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
    omoe = OMoERegressor(n_experts=3, max_epochs=1, random_state=0).fit(X[:, :1], Y[:, 0])
    one = plot_gate_weights(average_gate_weights(omoe, X[:, :1]), tmp_path / "one.png")
    assert int.from_bytes(one.read_bytes()[16:20], "big") == 300


def test_plot_gate_weights_labels_ple_experts(tmp_path, monkeypatch):
    """A PLE panel names each task's own experts and the shared ones, in two colours."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    X, Y = _data()
    ple = PLEClassifier(n_levels=2, n_shared_experts=2, n_task_experts=1, max_epochs=1,
                        random_state=0).fit(X, Y)
    saved = {}
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: saved.setdefault("figure", fig))
    names = gate_expert_names(ple, ["a", "b"])
    plot_gate_weights(average_gate_weights(ple, X), tmp_path / "ple.png", ["a", "b"],
                      expert_names=names)
    axes = saved["figure"].axes
    assert [ax.get_title() for ax in axes] == ["a (level 1)", "b (level 1)", "a (level 2)",
                                               "b (level 2)"]
    for ax, task in zip(axes, "abab"):
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{task} 0", "shared 0", "shared 1"]
        own, *shared = (bar.get_facecolor() for bar in ax.patches)
        assert shared[0] == shared[1] != own
    legend = saved["figure"].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["task's own experts", "shared experts"]
