"""Scaling: epoch time of ``MMoEClassifier.fit`` against n_samples and n_experts.

Synthetic data made with numpy (seed 0): ``n_features`` (100) standard-normal
float32 features and two binary tasks, each the sign of its own random
linear function of the features plus noise. The largest X (10^6 x 100
float32) is 400 MB; smaller sizes are its leading rows (views, no copy).

The script fits ``MMoEClassifier`` (16 units per expert, towers of 8, batch
1024, Adam 1e-3, 2 epochs) and records the duration of the last epoch
(skorch's ``history[-1, "dur"]``: the epoch alone, without the fit's fixed
set-up), for

* n_samples in 10^4, 3*10^4, 10^5, 3*10^5, 10^6 with 8 experts; the slope
  of a least-squares line through (log n, log time) is the scaling exponent
  (expected ~1: linear);
* n_experts in 1, 2, 4, 8, 16 at 10^5 samples; the ratio
  time(16 experts) / time(1 expert) is expected to be far below 16, because
  all experts are one batched matrix product.

Every configuration is run once per repeat and the repeats are interleaved
(medians over ``--repeats``); a fit during which other processes used more
than 10 % of the CPUs is dropped and run again (``benchmarks/_quiet.py``). The table is printed, and a PNG plot is saved
to ``docs/images/scaling.png`` (``--plot`` to change; the plot needs
matplotlib, a benchmark-only dependency that the package does not use:
``pip install matplotlib``; it is imported only when a plot is written).

Run::

    python benchmarks/bench_scaling.py            # full grid, ~10 minutes on 2 cores
    python benchmarks/bench_scaling.py --quick    # smaller grid, under a minute, no plot

``--data-home`` is accepted for symmetry with the other scripts and unused:
the data are synthetic.
"""

import argparse
import os
import statistics
import warnings
from pathlib import Path

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import torch
from _quiet import Sampler
from sklearn.exceptions import ConvergenceWarning

from sklearn_mmoe import MMoEClassifier

FULL = dict(sizes=(10_000, 30_000, 100_000, 300_000, 1_000_000), experts=(1, 2, 4, 8, 16),
            experts_n=100_000, repeats=5, epochs=2)
QUICK = dict(sizes=(3_000, 10_000, 30_000), experts=(1, 4, 16), experts_n=10_000, repeats=3, epochs=2)
DEFAULT_EXPERTS = 8
DEFAULT_PLOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "scaling.png"


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    W = rng.standard_normal((d, 2), dtype=np.float32) / np.sqrt(d)
    noise = 0.5 * rng.standard_normal((n, 2), dtype=np.float32)
    Y = (X @ W + noise > 0).astype(np.float32)
    return X, Y


def epoch_time(X, Y, n_experts, epochs, seed):
    est = MMoEClassifier(
        n_experts=n_experts, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,),
        batch_size=1024, learning_rate=1e-3, max_epochs=epochs, random_state=seed,
        numeric_encoding=None, early_stopping=False,
    ).fit(X, Y)
    return est.net_.history[-1, "dur"]


def plot(path, sizes, size_t, slope, intercept, experts, expert_t, experts_n):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    n = np.asarray(sizes, dtype=float)
    a.loglog(n, size_t, "o-", label="measured (median)")
    a.loglog(n, np.exp(intercept) * n**slope, "--", label=f"fit: slope {slope:.2f}")
    a.loglog(n, size_t[0] * n / n[0], ":", color="grey", label="linear (slope 1)")
    a.set_xticks(n, [f"{int(v):,}" for v in n], rotation=30)
    a.minorticks_off()
    a.set_xlabel("n_samples")
    a.set_ylabel("epoch time (s)")
    a.set_title(f"MMoE, {DEFAULT_EXPERTS} experts x 16")
    a.legend()
    b.plot(experts, expert_t, "o-", label="measured (median)")
    b.plot(experts, expert_t[0] * np.asarray(experts) / experts[0], ":", color="grey",
           label="proportional to n_experts")
    b.set_ylim(0, max(expert_t) * 1.3)
    b.set_xscale("log", base=2)
    b.set_xticks(experts, [str(e) for e in experts])
    b.set_xlabel("n_experts")
    b.set_ylabel("epoch time (s)")
    b.set_title(f"{experts_n:,} samples: t(16)/t(1) = {expert_t[-1] / expert_t[0]:.2f}")
    b.legend()
    fig.suptitle("sklearn-mmoe: MMoEClassifier epoch time, 100 features, batch 1024, 2 CPU threads")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None, help="unused: the data are synthetic")
    parser.add_argument("--quick", action="store_true", help="smaller grid (under a minute), no plot")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", default=None, help=f"PNG to write (default: {DEFAULT_PLOT}; none with --quick)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else FULL
    repeats = args.repeats or grid["repeats"]
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs by design
    load_at_start = os.getloadavg()[0]

    X, Y = make_data(max(grid["sizes"] + (grid["experts_n"],)), args.features)
    configs = [("n", n, DEFAULT_EXPERTS) for n in grid["sizes"]]
    configs += [("e", grid["experts_n"], e) for e in grid["experts"]]
    label = {c: f"n={c[1]} experts={c[2]}" for c in configs}
    sampler = Sampler(label.values(), repeats)
    by_label = {v: c for c, v in label.items()}
    seeds = dict.fromkeys(configs, 0)
    for name in sampler:
        c = by_label[name]
        _, n, e = c
        seeds[c] += 1
        sampler.measure(name, epoch_time, X[:n], Y[:n], e, grid["epochs"], seeds[c])
    med = {c: statistics.median(sampler.values(label[c])) for c in configs}

    print(f"synthetic: {args.features} float32 features, 2 binary tasks; MMoEClassifier 16 units per expert, "
          f"towers 8, batch 1024; {args.threads} threads")
    print(f"time of epoch {grid['epochs']} of a {grid['epochs']}-epoch fit, median of {repeats} clean fits; "
          f"load average at the start: {load_at_start:.2f}")
    print(sampler.summary())
    print()
    print(f"{'n_samples':>10}{'n_experts':>11}{'epoch s':>10}{'us / row':>10}")
    size_t = np.array([med[("n", n, DEFAULT_EXPERTS)] for n in grid["sizes"]])
    for n, t in zip(grid["sizes"], size_t):
        print(f"{n:>10}{DEFAULT_EXPERTS:>11}{t:>10.3f}{1e6 * t / n:>10.2f}")
    slope, intercept = np.polyfit(np.log(grid["sizes"]), np.log(size_t), 1)
    print(f"log-log slope of epoch time against n_samples: {slope:.3f} (1 = linear)")
    print()
    print(f"{'n_samples':>10}{'n_experts':>11}{'epoch s':>10}{'/ 1 expert':>12}")
    expert_t = np.array([med[("e", grid["experts_n"], e)] for e in grid["experts"]])
    for e, t in zip(grid["experts"], expert_t):
        print(f"{grid['experts_n']:>10}{e:>11}{t:>10.3f}{t / expert_t[0]:>12.2f}")
    print(f"time({grid['experts'][-1]} experts) / time({grid['experts'][0]} expert) = "
          f"{expert_t[-1] / expert_t[0]:.2f} (proportional would be {grid['experts'][-1] / grid['experts'][0]:.0f})")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores; above ~2 the timings are contended)")

    path = None if args.no_plot else (Path(args.plot) if args.plot else (None if args.quick else DEFAULT_PLOT))
    if path is not None:
        try:
            plot(path, grid["sizes"], size_t, slope, intercept, list(grid["experts"]), expert_t,
                 grid["experts_n"])
            print(f"plot written to {path}")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)")


if __name__ == "__main__":
    main()
