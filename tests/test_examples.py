"""The examples run (in their fast mode) and learn what their data contain."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_fast(capsys):
    auc = _load("quickstart").main(["--fast"])
    out = capsys.readouterr().out
    assert "pickled model predicts identically: True" in out
    # Both tasks are learnt, close to what the true probabilities reach
    # (0.70 / 0.71 on this data): well above chance.
    assert auc[0] > 0.64 and auc[1] > 0.62


def test_gate_distributions_fast(tmp_path, capsys):
    out = _load("gate_distributions").main(["--fast", "--out", str(tmp_path / "gates")])
    printed = capsys.readouterr().out
    assert "total variation distance" in printed and "Census-Income: skipped" in printed
    distances = list(out["distances"].values())
    assert all(0.0 <= d <= 1.0 for d in distances)
    assert [p.name for p in out["paths"]] == ["gates_synthetic_p1.png", "gates_synthetic_p0.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out["paths"])
