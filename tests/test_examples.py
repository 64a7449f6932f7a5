"""The examples run (in their fast mode) and learn what their data contain."""

import numpy as np
import pytest

from conftest import load_example


def test_quickstart_fast(capsys):
    auc = load_example("quickstart").main(["--fast"])
    out = capsys.readouterr().out
    assert "pickled model predicts identically: True" in out
    # Both tasks are learnt, close to what the true probabilities reach
    # (0.70 / 0.71 on this data): well above chance.
    assert auc[0] > 0.64 and auc[1] > 0.62


def test_gate_distributions_fast(tmp_path, capsys):
    out = load_example("gate_distributions").main(["--fast", "--out", str(tmp_path / "gates")])
    printed = capsys.readouterr().out
    assert "total variation distance" in printed and "Census-Income: skipped" in printed
    example = load_example("gate_distributions")
    assert example.total_variation(np.array([[0.5, 0.5], [0.5, 0.5]])) == 0.0
    assert example.total_variation(np.array([[1.0, 0.0], [0.0, 1.0]])) == 1.0
    assert list(out["gates"]) == list(out["distances"])
    for label, gates in out["gates"].items():
        # two tasks' gates over the 8 experts, each a probability distribution
        assert gates.shape == (2, 8)
        np.testing.assert_allclose(gates.sum(axis=1), 1.0, rtol=1e-5)
        assert out["distances"][label] == pytest.approx(0.5 * np.abs(gates[0] - gates[1]).sum())
    assert [p.name for p in out["paths"]] == ["gates_synthetic_p1.png", "gates_synthetic_p0.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out["paths"])
