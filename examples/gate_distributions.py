"""Gate distributions: how much each task uses each expert (MMoE paper, Fig. 6).

An MMoE's gates decide, per task, how to mix the shared experts. This script
fits MMoE and plots the average softmax weight that each task's gate gives
each expert (the estimator's ``gate_weights(X)``, averaged over the rows by
:func:`sklearn_mmoe.experiments.gates.average_gate_weights`):

1. on the paper's synthetic data (``make_multitask_regression``, 8 experts of
   16 units, towers of 8, as in the synthetic study) at task correlation
   p = 1.0 and p = 0.0: with identical tasks there is no reason for the two
   gates to differ, with unrelated tasks they can specialise;
2. on Census-Income group 1 (income > 50K, never married; the shipped MMoE
   defaults, epoch chosen on the validation split), when the data are
   available (``--data-dir``, a scikit-learn data home holding
   ``census_income/``; skipped otherwise, never downloaded).

For each setting it prints the two tasks' mean gate weights and their total
variation distance (half the L1 distance between the two distributions: 0
when both tasks mix the experts alike, 1 when they use disjoint experts),
and writes one PNG per setting.

Run: ``python examples/gate_distributions.py --data-dir ~/scikit_learn_data``
(about three minutes on 2 CPU cores; ``--fast`` for a few seconds, synthetic
data only).
"""

import argparse
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_mmoe.datasets import make_multitask_regression
from sklearn_mmoe.experiments import census, synthetic
from sklearn_mmoe.experiments.gates import average_gate_weights, plot_gate_weights


def total_variation(gates):
    """Half the L1 distance between the first two rows (two tasks' gates)."""
    return 0.5 * float(np.abs(gates[0] - gates[1]).sum())


def synthetic_gates(correlation, n_samples, max_epochs, random_state=0):
    X, Y = make_multitask_regression(
        2 * n_samples, 100, correlation=correlation, random_state=random_state
    )
    model = synthetic.make_model("mmoe", 100, max_epochs=max_epochs, random_state=random_state)
    model.fit(X[:n_samples], Y[:n_samples])
    return average_gate_weights(model, X[n_samples:])["gates"]


def census_gates(data_home, random_state=0):
    data, task_names = census.load(data_home, task_group=1, download_if_missing=False)
    model, best_epoch, _ = census.fit_with_validation(census.MODELS["MMoE"](random_state), data)
    return average_gate_weights(model, data["test"][0])["gates"], task_names, best_epoch


def report(label, gates, task_names):
    print(f"\n{label}: mean gate weight per expert")
    for name, row in zip(task_names, gates):
        print(f"  {name:<18}" + " ".join(f"{w:.3f}" for w in row))
    distance = total_variation(gates)
    print(f"  total variation distance between the tasks' gates: {distance:.3f}")
    return distance


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="scikit-learn data home with census_income/ (Census part)")
    parser.add_argument("--out", default="gates", help="prefix of the PNG files")
    parser.add_argument("--fast", action="store_true", help="small synthetic data, no Census")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)  # fixed training budgets

    n_samples, max_epochs = (2000, 10) if args.fast else (10_000, synthetic.MAX_EPOCHS)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    gates_by_setting, distances, written = {}, {}, []
    for p in (1.0, 0.0):
        gates = synthetic_gates(p, n_samples, max_epochs)
        label = f"synthetic, task correlation {p:g}"
        gates_by_setting[label] = gates
        distances[label] = report(label, gates, ["task 1", "task 2"])
        written.append(out.with_name(f"{out.name}_synthetic_p{p:g}.png"))
        plot_gate_weights({"gates": gates}, written[-1], ["task 1", "task 2"],
                          title=f"MMoE gates, {label}")
    census_home = Path(args.data_dir).expanduser() if args.data_dir else None
    if args.fast or census_home is None or not (census_home / "census_income").is_dir():
        print("\nCensus-Income: skipped (pass --data-dir with a census_income/ folder)")
    else:
        gates, task_names, epoch = census_gates(census_home)
        label = f"Census-Income group 1 (epoch {epoch})"
        gates_by_setting[label] = gates
        distances[label] = report(label, gates, task_names)
        written.append(out.with_name(f"{out.name}_census.png"))
        plot_gate_weights({"gates": gates}, written[-1], task_names,
                          title=f"MMoE gates, {label}, test split")
    print("\nwritten: " + ", ".join(str(p) for p in written))
    return dict(gates=gates_by_setting, distances=distances, paths=written)


if __name__ == "__main__":
    main()
