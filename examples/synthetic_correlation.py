"""Task correlation and trainability: the MMoE paper's synthetic study (Fig. 4 and 5).

Two regression tasks are drawn with ``make_multitask_regression``, the MMoE
paper's generator, whose "task correlation" p is the cosine of the two tasks'
weight vectors. For each p and run, Shared-Bottom, OMoE and MMoE (sizes from
the paper, comparable parameter counts) are fitted on the same fresh data set
with a fresh seed, and scored by their test MSE. The script prints the
parameter counts, the median [IQR] test MSE per correlation and model, the
paired head-to-head comparison, and writes the runs (CSV) and the two figures
(PNG, if matplotlib is installed).

The work is done by :mod:`sklearn_mmoe.experiments.synthetic`; see
docs/reproductions.md for the settings, the results and how they compare with
the paper.

Run: ``python examples/synthetic_correlation.py`` (5 correlations x 3 models x
20 runs = 300 fits, about an hour of CPU time, half an hour with ``--n-jobs 2``; ``--runs`` to change the
number of runs; ``--fast`` for a smoke run of about a minute).
"""

import argparse
import time
from pathlib import Path

import pandas as pd

from sklearn_mmoe.experiments import synthetic


def main(argv=None):
    parser = argparse.ArgumentParser(description="MMoE paper, synthetic task-correlation study")
    parser.add_argument("--fast", action="store_true",
                        help="2 correlations x 2 runs on small data: a smoke run of about a minute")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per correlation and model (default 20; 2 with --fast)")
    parser.add_argument("--correlations", type=float, nargs="+", default=None,
                        help="task correlations (default 1.0 0.9 0.8 0.5 0.0; 1.0 0.5 with --fast)")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the study (default 0)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel processes (default 1; -1: all CPUs)")
    parser.add_argument("--out", default="synthetic_correlation",
                        help="prefix of the outputs: <out>.csv (all runs), "
                             "<out>_correlation.png and <out>_trainability.png")
    parser.add_argument("--figures", default=None,
                        help="prefix of the two PNGs if not --out (e.g. docs/images/synthetic)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    config = dict(synthetic.FAST) if args.fast else {}
    if args.runs is not None:
        config["n_runs"] = args.runs
    if args.correlations is not None:
        config["correlations"] = tuple(args.correlations)
    start = time.perf_counter()
    results = synthetic.run_correlation_experiment(
        **config, random_state=args.seed, n_jobs=args.n_jobs, progress=not args.no_progress
    )
    elapsed = time.perf_counter() - start

    first = results.iloc[0]
    print(f"{results['run'].nunique()} runs x {results['correlation'].nunique()} correlations "
          f"x {results['model'].nunique()} models = {len(results)} fits in {elapsed:.0f} s "
          f"({results['epochs'].max()} epochs each, {results['fit_seconds'].median():.1f} s "
          f"median per fit); data seed of run 0: {first['seed']}")
    print(synthetic.report(results))

    out = Path(args.out)
    csv = out.with_name(out.name + ".csv")
    csv.parent.mkdir(parents=True, exist_ok=True)
    results.to_csv(csv, index=False)
    written = [csv]
    figures = Path(args.figures) if args.figures else out
    figures.parent.mkdir(parents=True, exist_ok=True)
    try:
        written.append(synthetic.plot_correlation(
            results, figures.with_name(figures.name + "_correlation.png")))
        written.append(synthetic.plot_trainability(
            results, figures.with_name(figures.name + "_trainability.png")))
    except ImportError as exc:
        print(f"\nno figures: {exc}")
    print("\nwritten: " + ", ".join(str(p) for p in written))
    return dict(results=results, summary=synthetic.summarize(results),
                pairs=synthetic.paired_comparison(results), paths=written)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
