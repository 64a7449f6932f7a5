"""Command line: reproduce the MMoE paper's experiments.

``python -m sklearn_mmoe`` (or ``sklearn-mmoe``) runs the synthetic
task-correlation experiment (MMoE paper, Fig. 4 and 5) on its embedded
default, with no data needed: a progress bar, a summary table, a CSV of all
runs and, when matplotlib is installed, two plots.

``python -m sklearn_mmoe census --data-dir DIR`` runs the Census-Income
benchmark (the paper's Tables 1 and 2). ``DIR`` is a scikit-learn data home
(with a ``census_income/`` folder) or a folder holding the UCI files
``census-income.data.gz`` and ``census-income.test.gz``; without
``--data-dir`` the files are downloaded into scikit-learn's data home.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

RAW_FILES = ("census-income.data.gz", "census-income.test.gz")


def _write_plots(results, out, module, plots):
    for name in plots:
        try:
            path = getattr(module, name)(results, out / f"{name.removeprefix('plot_')}.png")
        except ImportError as exc:  # matplotlib is optional
            print(f"no plots: {exc}")
            return
        print(f"plot written to {path}")


def _synthetic(args):
    from .experiments import synthetic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(synthetic.FAST) if args.fast else {}
    options.update(n_runs=args.runs if args.runs is not None else options.get("n_runs", 20))
    if args.correlations:
        options["correlations"] = tuple(args.correlations)
    print(f"Task-correlation experiment (MMoE paper, Fig. 4 and 5): {options}")
    results = synthetic.run_correlation_experiment(
        random_state=args.random_state, n_jobs=args.n_jobs, progress=not args.quiet, **options
    )
    results.to_csv(out / "synthetic_correlation_runs.csv", index=False)
    synthetic.summarize(results).to_csv(out / "synthetic_correlation_summary.csv", index=False)
    print(synthetic.report(results))
    print(f"results written to {out}/synthetic_correlation_{{runs,summary}}.csv")
    _write_plots(results, out, synthetic, ("plot_correlation", "plot_trainability"))
    return results


def census_data_home(data_dir, workdir):
    """A data home for ``fetch_census_income`` from a data home or a folder of raw files."""
    data_dir = Path(data_dir)
    if (data_dir / "census_income").is_dir():
        return data_dir
    if all((data_dir / name).is_file() for name in RAW_FILES):
        home = Path(workdir) / "data_home"
        (home / "census_income").mkdir(parents=True, exist_ok=True)
        for name in RAW_FILES:
            shutil.copyfile(data_dir / name, home / "census_income" / name)
        return home
    raise SystemExit(
        f"--data-dir {data_dir}: expected a census_income/ folder or the files {RAW_FILES}."
    )


def _census(args):
    from .experiments import census

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(
        task_groups=tuple(args.task_groups), models=tuple(args.models or census.MODELS),
        seeds=tuple(range(args.seeds)), max_epochs=args.max_epochs, patience=args.patience,
    )
    if args.fast:
        options.update(seeds=(0,), max_epochs=2, patience=1, max_train_rows=20_000)
    print(f"Census-Income benchmark (MMoE paper, Tables 1 and 2): {options}")
    with tempfile.TemporaryDirectory() as workdir:
        home = census_data_home(args.data_dir, workdir) if args.data_dir else None
        results = census.run_census_benchmark(home, progress=not args.quiet, **options)
    results.to_csv(out / "census_runs.csv", index=False)
    summary = census.summarize(results)
    summary.to_csv(out / "census_summary.csv", index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"results written to {out}/census_{{runs,summary}}.csv")
    return results


def _add_common_options(parser, command):
    """--out and --quiet, accepted before and after the command.

    The main parser holds the defaults; a command's parser has none
    (``argparse.SUPPRESS``), so that an option absent after the command
    keeps the value parsed before it.
    """
    out, quiet = (argparse.SUPPRESS,) * 2 if command else ("sklearn-mmoe-results", False)
    parser.add_argument("--out", default=out, help="output folder (default: sklearn-mmoe-results)")
    parser.add_argument("--quiet", action="store_true", default=quiet, help="no progress bar")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_mmoe", description=__doc__.split("\n\n")[0]
    )
    _add_common_options(parser, command=False)
    commands = parser.add_subparsers(dest="command")

    synthetic = commands.add_parser(
        "synthetic", help="task-correlation experiment on synthetic data (the default)"
    )
    _add_common_options(synthetic, command=True)
    synthetic.add_argument(
        "--runs", type=int, help="runs per correlation and model (default 20; 2 with --fast)"
    )
    synthetic.add_argument("--correlations", type=float, nargs="+", help="task correlations")
    synthetic.add_argument("--random-state", type=int, default=0)
    synthetic.add_argument(
        "--n-jobs", type=int, default=-1, help="parallel processes (default: all CPUs)"
    )
    synthetic.add_argument("--fast", action="store_true", help="a small smoke run")

    census = commands.add_parser("census", help="Census-Income benchmark (Tables 1 and 2)")
    _add_common_options(census, command=True)
    census.add_argument("--data-dir", help="data home, or folder with the UCI .gz files")
    census.add_argument("--task-groups", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    census.add_argument("--models", nargs="+", help="models to run (default: all)")
    census.add_argument("--seeds", type=int, default=5, help="number of seeds")
    census.add_argument("--max-epochs", type=int, default=50)
    census.add_argument("--patience", type=int, default=5)
    census.add_argument("--fast", action="store_true", help="a small smoke run")

    args = parser.parse_args(argv)
    if args.command is None:  # the embedded default: the synthetic experiment
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "synthetic"])
    return _synthetic(args) if args.command == "synthetic" else _census(args)


if __name__ == "__main__":
    main()
