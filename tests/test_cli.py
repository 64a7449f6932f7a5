"""The command line (``python -m sklearn_mmoe``) runs both experiments and writes their outputs."""

import importlib.util
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT
from sklearn_mmoe import __main__ as cli
from sklearn_mmoe.experiments import synthetic


def test_synthetic_fast_writes_table_csv_and_plots(tmp_path, capsys):
    results = cli.main(["--quiet", "--out", str(tmp_path), "synthetic", "--fast",
                        "--runs", "1", "--correlations", "0.5"])
    printed = capsys.readouterr().out
    assert "median [25th, 75th percentile]" in printed and "MMoE vs Shared-Bottom" in printed
    assert len(results) == len(synthetic.MODELS)  # 1 correlation x 1 run x 3 models
    assert (results["correlation"] == 0.5).all()
    assert (results["epochs"] == synthetic.FAST["max_epochs"]).all()
    runs = pd.read_csv(tmp_path / "synthetic_correlation_runs.csv")
    pd.testing.assert_series_equal(runs["mse"], results["mse"])
    summary = pd.read_csv(tmp_path / "synthetic_correlation_summary.csv")
    assert list(summary["model"]) == list(synthetic.MODELS)
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("correlation.png", "trainability.png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_no_command_runs_the_synthetic_default(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "_synthetic", lambda args: seen.append(args) or "ran")
    assert cli.main(["--out", str(tmp_path)]) == "ran"
    (args,) = seen
    assert args.command == "synthetic" and args.runs is None and not args.fast
    assert args.random_state == 0 and args.correlations is None


def test_census_fast_from_a_data_home(census_home, tmp_path, capsys):
    results = cli.main(["--quiet", "--out", str(tmp_path), "census", "--data-dir",
                        str(census_home), "--fast", "--models", "MMoE", "--task-groups", "2"])
    assert set(results["model"]) == {"MMoE"} and set(results["task_group"]) == {2}
    # Group 2: education at least college, never married; both learned well above chance.
    assert (results["auc"] > 0.8).all(), results
    assert (tmp_path / "census_runs.csv").is_file() and (tmp_path / "census_summary.csv").is_file()
    assert "MMoE" in capsys.readouterr().out


def test_census_data_dir_of_raw_files(census_source, tmp_path):
    home = cli.census_data_home(census_source, tmp_path)
    for name in cli.RAW_FILES:
        assert (home / "census_income" / name).stat().st_size == (census_source / name).stat().st_size
    assert cli.census_data_home(home, tmp_path / "other") == home  # a data home is used as is
    with pytest.raises(SystemExit, match="--data-dir"):
        cli.census_data_home(tmp_path / "missing", tmp_path)


def test_help_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "sklearn_mmoe", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)
    assert "synthetic" in done.stdout and "census" in done.stdout


@pytest.mark.parametrize("argv, out, quiet", [
    (["synthetic", "--fast", "--quiet"], "sklearn-mmoe-results", True),
    (["--quiet", "synthetic", "--fast"], "sklearn-mmoe-results", True),
    (["synthetic", "--fast", "--out", "after"], "after", False),
    (["--out", "before", "synthetic", "--fast"], "before", False),
    (["--out", "before", "synthetic", "--out", "after"], "after", False),
    (["--quiet"], "sklearn-mmoe-results", True),
    (["census", "--quiet", "--out", "c"], "c", True),
])
def test_common_options_before_or_after_the_command(argv, out, quiet, monkeypatch):
    seen = []
    for command in ("_synthetic", "_census"):
        monkeypatch.setattr(cli, command, seen.append)
    cli.main(argv)
    (args,) = seen
    assert (args.out, args.quiet) == (out, quiet)
