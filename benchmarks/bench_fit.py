"""Fit speed: the estimators against a plain PyTorch loop, in one process.

Census-Income (KDD) group 1 (income > 50K, never married): 199,523 rows,
one-hot encoded to 486 float32 columns. For each architecture the script
times one epoch of

* ``plain``: a hand-written PyTorch loop (random permutation, tensor
  slicing, one fused matmul for all experts, Adam) on a hand-written module,
  independent of this package: the limit to compare against;
* ``plain+nn``: the same loop training this package's ``sklearn_mmoe.nn``
  module (isolates the module's speed);
* ``estimator``: ``<Model>Classifier(max_epochs=1).fit(X, Y)`` on the numpy
  arrays, everything included (validation, label encoding, set-up, skorch's
  loop and callbacks);

interleaving the three ``--repeats`` times and printing medians and the
ratio estimator / plain (target: at most 1.15).

Run::

    python benchmarks/bench_fit.py --data-home ~/scikit_learn_data

where ``<data-home>/census_income/`` holds ``census-income.data.gz`` and
``census-income.test.gz`` (``fetch_census_income`` downloads them there if
they are missing and the network is reachable).
"""

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.compose import make_column_transformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

from sklearn_mmoe import MMoEClassifier, OMoEClassifier, SharedBottomClassifier
from sklearn_mmoe import nn as mtnn
from sklearn_mmoe.datasets import fetch_census_income

N_EXPERTS, EXPERT_UNITS, TOWER_UNITS, BOTTOM_UNITS = 8, 16, 8, 128
BATCH, LR = 1024, 1e-3


class PlainMoE(nn.Module):
    """MMoE / OMoE written out by hand: all experts in one Linear."""

    def __init__(self, d, n_tasks, multi_gate):
        super().__init__()
        self.n_tasks, self.multi_gate = n_tasks, multi_gate
        self.experts = nn.Linear(d, N_EXPERTS * EXPERT_UNITS)
        self.gates = nn.Linear(d, (n_tasks if multi_gate else 1) * N_EXPERTS)
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(EXPERT_UNITS, TOWER_UNITS), nn.ReLU(), nn.Linear(TOWER_UNITS, 1))
            for _ in range(n_tasks)
        )

    def forward(self, x):
        b = x.shape[0]
        e = torch.relu(self.experts(x)).view(b, N_EXPERTS, EXPERT_UNITS)
        g = torch.softmax(self.gates(x).view(b, -1, N_EXPERTS), dim=-1)
        mixed = torch.bmm(g, e)  # (b, n_gates, units)
        if not self.multi_gate:
            mixed = mixed.expand(b, self.n_tasks, EXPERT_UNITS)
        return torch.cat([t(mixed[:, i]) for i, t in enumerate(self.towers)], dim=1)


class PlainSharedBottom(nn.Module):
    def __init__(self, d, n_tasks):
        super().__init__()
        self.bottom = nn.Sequential(nn.Linear(d, BOTTOM_UNITS), nn.ReLU())
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(BOTTOM_UNITS, TOWER_UNITS), nn.ReLU(), nn.Linear(TOWER_UNITS, 1))
            for _ in range(n_tasks)
        )

    def forward(self, x):
        h = self.bottom(x)
        return torch.cat([t(h) for t in self.towers], dim=1)


MODELS = {
    "mmoe": dict(
        estimator=lambda: MMoEClassifier(
            n_experts=N_EXPERTS, expert_hidden_sizes=(EXPERT_UNITS,), tower_hidden_sizes=(TOWER_UNITS,)
        ),
        plain=lambda d, t: PlainMoE(d, t, multi_gate=True),
        ours=lambda d, t: mtnn.MMoE(
            d, [1] * t, n_experts=N_EXPERTS, expert_hidden_sizes=(EXPERT_UNITS,), tower_hidden_sizes=(TOWER_UNITS,)
        ),
    ),
    "omoe": dict(
        estimator=lambda: OMoEClassifier(
            n_experts=N_EXPERTS, expert_hidden_sizes=(EXPERT_UNITS,), tower_hidden_sizes=(TOWER_UNITS,)
        ),
        plain=lambda d, t: PlainMoE(d, t, multi_gate=False),
        ours=lambda d, t: mtnn.OMoE(
            d, [1] * t, n_experts=N_EXPERTS, expert_hidden_sizes=(EXPERT_UNITS,), tower_hidden_sizes=(TOWER_UNITS,)
        ),
    ),
    "shared_bottom": dict(
        estimator=lambda: SharedBottomClassifier(
            bottom_hidden_sizes=(BOTTOM_UNITS,), tower_hidden_sizes=(TOWER_UNITS,)
        ),
        plain=lambda d, t: PlainSharedBottom(d, t),
        ours=lambda d, t: mtnn.SharedBottom(
            d, [1] * t, bottom_hidden_sizes=(BOTTOM_UNITS,), tower_hidden_sizes=(TOWER_UNITS,)
        ),
    ),
}


def load_census(data_home):
    bunch = fetch_census_income(data_home=data_home, task_group=1, subset="train")
    encoder = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), bunch.categorical_features),
        (StandardScaler(), bunch.numerical_features),
    )
    X = encoder.fit_transform(bunch.data).astype(np.float32)
    return np.ascontiguousarray(X), bunch.target.to_numpy().astype(np.float32)


def plain_epoch(module, X, Y, seed):
    """One epoch of the plain loop; module construction is not timed."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=LR)
    start = time.perf_counter()
    perm = torch.randperm(X.shape[0])
    for i in range(0, X.shape[0], BATCH):
        idx = perm[i : i + BATCH]
        out = module(X[idx]).reshape(len(idx), -1)
        loss = F.binary_cross_entropy_with_logits(out, Y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def estimator_fit(make, X, Y, seed):
    est = make().set_params(batch_size=BATCH, learning_rate=LR, max_epochs=1, random_state=seed)
    start = time.perf_counter()
    est.fit(X, Y)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None, help="scikit-learn data home (default: ~/scikit_learn_data)")
    parser.add_argument("--models", default="shared_bottom,omoe,mmoe")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, Y = load_census(args.data_home)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    print(f"Census-Income group 1: X {X.shape} float32, {args.threads} threads, batch {BATCH}, "
          f"median of {args.repeats} epochs")
    print(f"{'model':<14}{'plain s':>9}{'plain+nn s':>12}{'estimator s':>13}{'nn/plain':>10}{'est/plain':>11}")
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch by design
    for name in args.models.split(","):
        spec = MODELS[name]
        times = {"plain": [], "ours": [], "estimator": []}
        for r in range(args.repeats):
            times["plain"].append(plain_epoch(spec["plain"](X.shape[1], 2), Xt, Yt, r))
            times["ours"].append(plain_epoch(spec["ours"](X.shape[1], 2), Xt, Yt, r))
            times["estimator"].append(estimator_fit(spec["estimator"], X, Y, r))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name:<14}{med['plain']:>9.3f}{med['ours']:>12.3f}{med['estimator']:>13.3f}"
              f"{med['ours'] / med['plain']:>10.2f}{med['estimator'] / med['plain']:>11.2f}")


if __name__ == "__main__":
    main()
