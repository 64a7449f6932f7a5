"""The package imports lazily: the PyTorch part does not load scikit-learn and skorch."""

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sklearn_mmoe

# In one fresh interpreter (an import costs seconds): the PyTorch modules, then
# a pickled estimator, then the public names.
FRESH = """
import pickle, sys
import numpy as np
import torch
import sklearn_mmoe.nn as nn, sklearn_mmoe.weighting
net = nn.MMoE(3, [1, 2], n_experts=2)
print(tuple(net(torch.zeros(4, 3)).shape))
print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skorch', 'pandas'}))
model = pickle.loads(open(sys.argv[1] + '/model.pkl', 'rb').read())
np.save(sys.argv[1] + '/proba.npy', model.predict_proba(np.load(sys.argv[1] + '/X.npy'))[1])
from sklearn_mmoe import MMoEClassifier, MultiTaskEstimator
print(type(model) is MMoEClassifier, MultiTaskEstimator.__name__)
"""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_nn_imports_without_scikit_learn_and_a_pickle_loads_after(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    model = sklearn_mmoe.MMoEClassifier(n_experts=2, max_epochs=1, random_state=0).fit(X, Y)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    np.save(tmp_path / "X.npy", X)
    result = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["(4, 2, 2)", "[]", "True MultiTaskEstimator"]
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), model.predict_proba(X)[1])


def test_public_names_resolve_and_are_listed():
    for name in sklearn_mmoe.__all__:
        value = getattr(sklearn_mmoe, name)
        assert name == "__version__" or value.__name__ == name, name
        assert name in dir(sklearn_mmoe)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchEstimator'"):
        sklearn_mmoe.NoSuchEstimator  # noqa: B018
    with pytest.raises(ImportError):
        from sklearn_mmoe import NoSuchEstimator  # noqa: F401


BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))


def test_benchmarks_measure_the_checkout_they_live_in():
    """Every benchmark imports ``_checkout`` before anything that imports the package,
    and a script run from ``benchmarks/`` then gets this checkout's ``sklearn_mmoe``,
    whatever copy is installed (CI's non-editable install, say)."""
    assert BENCHMARKS
    for script in BENCHMARKS:
        tree = ast.parse(script.read_text(encoding="utf-8"))
        names = [(node.names[0].name if isinstance(node, ast.Import) else node.module or "")
                 for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert "_checkout" in names, script.name
        first = names.index("_checkout")
        local = [n for n in names if n.startswith(("sklearn_mmoe", "_", "bench_")) and n != "_checkout"]
        assert all(names.index(n) > first for n in local), script.name
    out = subprocess.run(
        [sys.executable, "-c", "import _checkout, sklearn_mmoe; print(sklearn_mmoe.__file__)"],
        cwd=BENCHMARKS[0].parent, env={**os.environ, "PYTHONPATH": str(BENCHMARKS[0].parent)},
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(out).resolve() == BENCHMARKS[0].parents[1] / "sklearn_mmoe" / "__init__.py"
