"""The synthetic task-correlation study runs (fast configuration) and is sound.

These tests assert what must hold whatever the comparison says: the shape of
the result table, determinism, that every model learns, that the models are
of comparable size, and that the figures and the example's outputs are
written. They do not assert the paper's ordering of the models: that is what
the full study measures (docs/reproductions.md).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import load_example
from sklearn_mmoe.experiments import synthetic
from sklearn_mmoe.experiments.synthetic import FAST, run_correlation_experiment

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["correlation", "model", "run", "seed", "mse", "mse_task0", "mse_task1",
           "epochs", "n_parameters"]


# one pytest-xdist worker runs the module: the fast experiment runs once
pytestmark = pytest.mark.xdist_group("synthetic-fast-results")


@pytest.fixture(scope="module")
def fast_results():
    return run_correlation_experiment(**FAST, progress=False)


def test_result_table(fast_results):
    results = fast_results
    n_corr, n_runs, n_models = len(FAST["correlations"]), FAST["n_runs"], len(synthetic.MODELS)
    assert len(results) == n_corr * n_runs * n_models
    assert set(COLUMNS) <= set(results.columns)
    assert set(results["model"]) == set(synthetic.MODELS)
    assert sorted(results["correlation"].unique()) == sorted(FAST["correlations"])
    assert (results.groupby(["correlation", "model"]).size() == n_runs).all()
    assert results[["mse", "mse_task0", "mse_task1", "train_mse", "label_var"]].gt(0).all().all()
    np.testing.assert_allclose(results["mse"], (results["mse_task0"] + results["mse_task1"]) / 2)
    assert (results["epochs"] == FAST["max_epochs"]).all()
    assert not results["diverged"].any()
    # All models of one (correlation, run) see the same data; each run has its own data
    # seed, shared by the correlations (the generator then only changes task 2).
    seeds = results.groupby("run")["seed"].nunique()
    assert (seeds == 1).all() and results["seed"].nunique() == n_runs
    assert (results.groupby(["correlation", "run"])["label_var"].nunique() == 1).all()


def test_parameter_counts_comparable(fast_results):
    counts = fast_results.groupby("model")["n_parameters"].unique()
    assert all(len(c) == 1 for c in counts)  # the size does not depend on the data
    counts = counts.map(lambda c: int(c[0]))
    assert synthetic.shared_bottom_width(100) == 113  # the paper's Shared-Bottom width
    # Within ~12 % of one another (the MoE models carry their gates on top).
    assert counts.max() / counts.min() < 1.15, counts.to_dict()


def test_models_learn(fast_results):
    # At high correlation every model explains most of the label variance (on the fast
    # config's 2,000 rows and 30 epochs; measured: median MSE / label variance 0.2-0.5).
    high = fast_results[fast_results["correlation"] == max(FAST["correlations"])]
    ratio = (high["mse"] / high["label_var"]).groupby(high["model"]).median()
    assert (ratio < 0.75).all(), ratio.to_dict()
    # Training rows are fitted at least as well as unseen ones, on the median.
    assert (fast_results["train_mse"] <= fast_results["mse"] * 1.05).mean() > 0.5


def test_deterministic(fast_results):
    config = dict(FAST, correlations=(0.5,), n_runs=1, max_epochs=5)
    first = run_correlation_experiment(**config, progress=False)
    second = run_correlation_experiment(**config, progress=False)
    timing = ["fit_seconds"]
    pd.testing.assert_frame_equal(first.drop(columns=timing), second.drop(columns=timing))
    # A run's seeds do not depend on how many runs the study has.
    assert first["seed"].iloc[0] == fast_results.loc[fast_results["run"] == 0, "seed"].iloc[0]
    # Parallel processes give the same results.
    parallel = run_correlation_experiment(**dict(config, correlations=(0.5, 1.0)), n_jobs=2,
                                          progress=False)
    pd.testing.assert_frame_equal(
        parallel[parallel["correlation"] == 0.5].drop(columns=timing).reset_index(drop=True),
        first.drop(columns=timing))
    other = run_correlation_experiment(**config, random_state=1, progress=False)
    assert other["seed"].iloc[0] != first["seed"].iloc[0]
    assert not np.allclose(other["mse"], first["mse"])


def test_summaries(fast_results):
    summary = synthetic.summarize(fast_results)
    assert len(summary) == len(FAST["correlations"]) * len(synthetic.MODELS)
    assert list(summary["correlation"]) == sorted(summary["correlation"], reverse=True)
    assert list(summary["model"][:3]) == list(synthetic.MODELS)
    assert (summary["n_runs"] == FAST["n_runs"]).all()
    assert (summary["min"] <= summary["q25"]).all() and (summary["q25"] <= summary["median"]).all()
    assert (summary["median"] <= summary["q75"]).all() and (summary["q75"] <= summary["max"]).all()
    table = synthetic.summary_table(fast_results)
    assert list(table.columns) == [*synthetic.MODELS.values(), "runs"]
    pairs = synthetic.paired_comparison(fast_results)
    assert len(pairs) == 3 * len(FAST["correlations"])
    assert (pairs["wins"] <= pairs["n_runs"]).all()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="correlations"):
        run_correlation_experiment(correlations=(1.5,), progress=False)
    with pytest.raises(ValueError, match="models"):
        run_correlation_experiment(models=("mmoe", "ple"), progress=False)
    with pytest.raises(ValueError, match="n_runs"):
        run_correlation_experiment(n_runs=0, progress=False)


def test_import_is_light():
    # Importing the package does not import the experiments (nor matplotlib).
    code = ("import sys, sklearn_mmoe; "
            "print('sklearn_mmoe.experiments' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    assert out == ["False", "False"]


def test_plots(fast_results, tmp_path):
    pytest.importorskip("matplotlib")
    fig4 = synthetic.plot_correlation(fast_results, tmp_path / "fig4.png")
    fig5 = synthetic.plot_trainability(fast_results, tmp_path / "fig5.png")
    for path in (fig4, fig5):
        assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 5_000 < path.stat().st_size < 150_000
    width = {p.name: int.from_bytes(p.read_bytes()[16:20], "big") for p in (fig4, fig5)}
    # Fig. 4: the MSE panel and the paired-ratio panel (11 in at 90 dpi); Fig. 5: one
    # 2.6-in panel per correlation plus the axis labels (2 correlations: 6.2 in).
    assert width == {"fig4.png": 990, "fig5.png": 558}


def test_example_fast(tmp_path, capsys):
    module = load_example("synthetic_correlation")
    out = module.main(["--fast", "--runs", "1", "--correlations", "0.5", "--no-progress",
                       "--out", str(tmp_path / "run")])
    printed = capsys.readouterr().out
    assert "parameters: Shared-Bottom" in printed and "median [25th, 75th percentile]" in printed
    saved = pd.read_csv(tmp_path / "run.csv")
    assert len(saved) == len(out["results"]) == len(synthetic.MODELS)
    assert set(COLUMNS) <= set(saved.columns)
    assert out["paths"][0] == tmp_path / "run.csv"
    if importlib.util.find_spec("matplotlib") is not None:
        assert [p.name for p in out["paths"][1:]] == ["run_correlation.png", "run_trainability.png"]
