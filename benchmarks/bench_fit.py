"""Fit speed: the estimators against a plain PyTorch loop, in one process.

Census-Income (KDD) group 1 (income > 50K, never married): 199,523 rows,
one-hot encoded to 486 float32 columns. For each architecture the script
times one epoch of

* ``plain``: a hand-written PyTorch loop (random permutation, tensor
  slicing, Adam) on a hand-written module, independent of this package: the
  limit to compare against;
* ``plain fused``: the same loop with ``Adam(fused=True)``, the optimizer
  kernel the estimators use by default (where torch has one);
* ``plain+nn``: the plain loop training this package's ``sklearn_mmoe.nn``
  module (isolates the module's speed);
* ``estimator``: ``<Model>Classifier(max_epochs=1).fit(X, y)`` on the numpy
  arrays, everything included (validation, label encoding, set-up, skorch's
  loop and callbacks).

The architectures (``--models``, all five by default), batch 1024, Adam 1e-3:

* ``shared_bottom``: a 128-unit shared bottom, towers of 8 units;
* ``omoe``, ``mmoe``: 8 experts of 16 units, one gate (OMoE) or one per
  task (MMoE), towers of 8 units; the plain module computes all experts in
  one fused ``nn.Linear`` and all gates in another;
* ``ple``: PLE (Tang et al., RecSys 2020) with 2 levels, each with 2
  experts per task and 4 shared experts of 16 units (8 experts per level, as
  MMoE), towers of 8 units. Level 1: every expert and gate reads the input
  (the plain module: all experts in one ``nn.Linear``, all gates in
  another); each task's gate mixes its own and the shared experts, and the
  shared gate mixes all experts into the shared representation. Level 2:
  each task's experts and gate read that task's representation, the shared
  experts the shared one; the towers read the task representations;
* ``esmm``: ``ESMMClassifier`` (Ma et al., SIGIR 2018), the Shared-Bottom
  network above with conversion conditional on click. Click = income > 50K;
  conversion = never married, a label only where click = 1 (NaN elsewhere in
  the estimator's y). The plain loop's loss, written out by hand in log
  space: BCE(pCTR, click) + BCE(pCTR * pCVR, click and conversion) on every
  row, with pCTR = sigmoid(logit 0) and pCVR = sigmoid(logit 1).

The plain module, the ``sklearn_mmoe.nn`` one and the estimator's have the
same number of parameters (checked; printed after the table).

The variants of every model are interleaved ``--repeats`` times; the table
is printed for the medians and for the best (minimum) times, which on a
shared machine are the less disturbed estimate, and the paired ratio: the
median over rounds of the estimator's epoch over the plain epoch measured
next to it in the same round, which cancels the machine's slow drifts;
an epoch during which other processes used more than 10 % of the CPUs is
dropped and run again (``benchmarks/_quiet.py``). The table shows the whole
one-epoch fit over the plain epoch (``fit/plain``), and the estimator's epoch
alone (skorch's recorded duration, without the once-per-fit validation,
label encoding and set-up) over the plain epoch (``epoch/plain``), with the
per-epoch target: at most 1.15 for Shared-Bottom, OMoE and MMoE, at most 1.3
for PLE and ESMM. ``epoch/fused`` compares the estimator's epoch with the
plain loop using the same (fused) Adam kernel: the cost of the estimator's
machinery alone.

``--busy N`` times the same beside N single-threaded torch processes that
the script starts and stops (``benchmarks/_busy.py``), as
``bench_predict.py --busy`` does.

Run::

    python benchmarks/bench_fit.py --data-home ~/scikit_learn_data

(about three minutes on 2 CPU cores), where ``<data-home>/census_income/``
holds ``census-income.data.gz`` and ``census-income.test.gz``
(``fetch_census_income`` downloads them there if they are missing and the
network is reachable).
"""

import os
import statistics
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import torch
import torch.nn.functional as F
from _busy import busy_processes, busy_threshold
from _cli import bench_parser
from _quiet import Sampler
from sklearn.compose import make_column_transformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

from sklearn_mmoe import (
    ESMMClassifier,
    MMoEClassifier,
    OMoEClassifier,
    PLEClassifier,
    SharedBottomClassifier,
)
from sklearn_mmoe import nn as mtnn
from sklearn_mmoe.datasets import fetch_census_income

N_EXPERTS, EXPERT_UNITS, TOWER_UNITS, BOTTOM_UNITS = 8, 16, 8, 128
# PLE: 2 levels of 2 experts per task and 4 shared experts (8 per level for 2 tasks).
PLE_TASK_EXPERTS, PLE_SHARED_EXPERTS = 2, 4
BATCH, LR = 1024, 1e-3


def _towers(n_tasks, width):
    return nn.ModuleList(
        nn.Sequential(nn.Linear(width, TOWER_UNITS), nn.ReLU(), nn.Linear(TOWER_UNITS, 1))
        for _ in range(n_tasks)
    )


class PlainMoE(nn.Module):
    """MMoE / OMoE written out by hand: all experts in one Linear."""

    def __init__(self, d, n_tasks, multi_gate):
        super().__init__()
        self.n_tasks, self.multi_gate = n_tasks, multi_gate
        self.experts = nn.Linear(d, N_EXPERTS * EXPERT_UNITS)
        self.gates = nn.Linear(d, (n_tasks if multi_gate else 1) * N_EXPERTS)
        self.towers = _towers(n_tasks, EXPERT_UNITS)

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
        self.towers = _towers(n_tasks, BOTTOM_UNITS)

    def forward(self, x):
        h = self.bottom(x)
        return torch.cat([t(h) for t in self.towers], dim=1)


def _mix(gate_logits, experts):
    """Softmax gate (b, k) over experts (b, k, units) -> (b, units)."""
    return torch.bmm(torch.softmax(gate_logits, dim=-1).unsqueeze(1), experts).squeeze(1)


class PlainPLE(nn.Module):
    """Two-level PLE written out by hand.

    Experts are numbered task 0's, task 1's, ..., then the shared ones. Level
    1: every expert and gate reads x (all experts in one Linear; the tasks'
    gates and the shared gate in another). Level 2: task t's experts and gate
    read task t's representation, the shared experts the shared
    representation; no shared gate (no level above). Towers read the task
    representations.
    """

    def __init__(self, d, n_tasks):
        super().__init__()
        self.n_tasks = n_tasks
        k, s, units = PLE_TASK_EXPERTS, PLE_SHARED_EXPERTS, EXPERT_UNITS
        self.n_experts = n_tasks * k + s
        self.experts1 = nn.Linear(d, self.n_experts * units)
        self.gates1 = nn.Linear(d, n_tasks * (k + s) + self.n_experts)
        self.task_experts2 = nn.ModuleList(nn.Linear(units, k * units) for _ in range(n_tasks))
        self.task_gates2 = nn.ModuleList(nn.Linear(units, k + s) for _ in range(n_tasks))
        self.shared_experts2 = nn.Linear(units, s * units)
        self.towers = _towers(n_tasks, units)

    def forward(self, x):
        b, k, units = x.shape[0], PLE_TASK_EXPERTS, EXPERT_UNITS
        width = k + PLE_SHARED_EXPERTS  # experts that a task's gate mixes
        experts = torch.relu(self.experts1(x)).view(b, self.n_experts, units)
        gates = self.gates1(x)  # task 0's gate, task 1's, ..., then the shared gate
        shared_experts = experts[:, self.n_tasks * k :]
        shared = _mix(gates[:, self.n_tasks * width :], experts)
        shared_experts2 = torch.relu(self.shared_experts2(shared)).view(b, -1, units)
        out = []
        for t in range(self.n_tasks):
            own = experts[:, t * k : (t + 1) * k]
            task = _mix(gates[:, t * width : (t + 1) * width], torch.cat([own, shared_experts], dim=1))
            own2 = torch.relu(self.task_experts2[t](task)).view(b, k, units)
            task2 = _mix(self.task_gates2[t](task), torch.cat([own2, shared_experts2], dim=1))
            out.append(self.towers[t](task2))
        return torch.cat(out, dim=1)


def bce_loss(logits, y):
    return F.binary_cross_entropy_with_logits(logits, y)


def esmm_loss(logits, y):
    """ESMM's loss: BCE(pCTR, click) + BCE(pCTR * pCVR, click and conversion).

    ``y`` holds click and the joint label. The joint BCE is computed from
    log pCTCVR = logsigmoid(logit 0) + logsigmoid(logit 1), with
    log(1 - pCTCVR) = log(-expm1(log pCTCVR)), so that it stays finite for
    probabilities near 0 and 1.
    """
    ctr = F.binary_cross_entropy_with_logits(logits[:, 0], y[:, 0])
    log_p = F.logsigmoid(logits[:, 0]) + F.logsigmoid(logits[:, 1])
    log_not_p = torch.log(-torch.expm1(log_p.clamp(max=-torch.finfo(log_p.dtype).tiny)))
    ctcvr = -(y[:, 1] * log_p + (1 - y[:, 1]) * log_not_p).mean()
    return ctr + ctcvr


def esmm_targets(Y):
    """Click = task 0, conversion = task 1 where click, else unknown.

    Returns the plain loop's targets (click, click and conversion) and the
    estimator's y (click, conversion or NaN where click = 0).
    """
    click, conversion = Y[:, 0], Y[:, 1]
    plain = np.column_stack([click, click * conversion])
    y = np.column_stack([click, np.where(click == 1, conversion, np.nan)])
    return plain.astype(np.float32), y.astype(np.float32)


# Raw one-hot inputs and one full epoch, as the plain loop gets them.
_RAW = dict(numeric_encoding=None, early_stopping=False)


def _nn(params):
    """The estimator's parameters that its ``sklearn_mmoe.nn`` module takes (not ``_RAW``)."""
    return {k: v for k, v in params.items() if k not in _RAW}


_MOE = dict(**_RAW, n_experts=N_EXPERTS, expert_hidden_sizes=(EXPERT_UNITS,), tower_hidden_sizes=(TOWER_UNITS,))
_SB = dict(**_RAW, bottom_hidden_sizes=(BOTTOM_UNITS,), tower_hidden_sizes=(TOWER_UNITS,))
_PLE = dict(
    **_RAW,
    n_levels=2, n_task_experts=PLE_TASK_EXPERTS, n_shared_experts=PLE_SHARED_EXPERTS,
    expert_hidden_sizes=(EXPERT_UNITS,), tower_hidden_sizes=(TOWER_UNITS,),
)

# estimator: () -> unfitted estimator; plain, ours: (n_features, n_tasks) -> module;
# loss: the plain loop's (set to bce_loss below where not given); targets: Y -> (plain
# loop's Y, estimator's y) (set to Y for both where not given); goal: target of
# estimator / plain.
MODELS = {
    "shared_bottom": dict(
        estimator=lambda: SharedBottomClassifier(**_SB),
        plain=lambda d, t: PlainSharedBottom(d, t),
        ours=lambda d, t: mtnn.SharedBottom(d, [1] * t, **_nn(_SB)),
        goal=1.15,
    ),
    "omoe": dict(
        estimator=lambda: OMoEClassifier(**_MOE),
        plain=lambda d, t: PlainMoE(d, t, multi_gate=False),
        ours=lambda d, t: mtnn.OMoE(d, [1] * t, **_nn(_MOE)),
        goal=1.15,
    ),
    "mmoe": dict(
        estimator=lambda: MMoEClassifier(**_MOE),
        plain=lambda d, t: PlainMoE(d, t, multi_gate=True),
        ours=lambda d, t: mtnn.MMoE(d, [1] * t, **_nn(_MOE)),
        goal=1.15,
    ),
    "ple": dict(
        estimator=lambda: PLEClassifier(**_PLE),
        plain=lambda d, t: PlainPLE(d, t),
        ours=lambda d, t: mtnn.PLE(d, [1] * t, **_nn(_PLE)),
        goal=1.3,
    ),
    "esmm": dict(
        estimator=lambda: ESMMClassifier(**_SB),
        plain=lambda d, t: PlainSharedBottom(d, t),
        ours=lambda d, t: mtnn.SharedBottom(d, [1] * t, **_nn(_SB)),
        loss=esmm_loss,
        targets=esmm_targets,
        goal=1.3,
    ),
}
for _spec in MODELS.values():
    _spec.setdefault("loss", bce_loss)
    _spec.setdefault("targets", lambda Y: (Y, Y))


def load_census(data_home, test=False):
    """Census group 1 train split one-hot encoded: ``(X, Y)`` float32; with ``test=True``
    also the test split through the same encoder: ``(X, Y, X_test, Y_test)``."""
    bunch = fetch_census_income(data_home=data_home, task_group=1, subset="train")
    encoder = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), bunch.categorical_features),
        (StandardScaler(), bunch.numerical_features),
    )
    X = encoder.fit_transform(bunch.data).astype(np.float32)
    train = np.ascontiguousarray(X), bunch.target.to_numpy().astype(np.float32)
    if not test:
        return train
    held_out = fetch_census_income(data_home=data_home, task_group=1, subset="test")
    X_test = np.ascontiguousarray(encoder.transform(held_out.data).astype(np.float32))
    return (*train, X_test, held_out.target.to_numpy())


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def plain_step(module, optimizer, x, y, loss_fn=bce_loss):
    """One batch of the plain loop: forward, loss, backward, optimizer step."""
    optimizer.zero_grad()
    loss_fn(module(x).reshape(len(x), -1), y).backward()
    optimizer.step()


def plain_epoch(module, X, Y, seed, loss_fn=bce_loss, fused=None):
    """One epoch of the plain loop; module construction is not timed."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=LR, fused=fused)
    start = time.perf_counter()
    perm = torch.randperm(X.shape[0])
    for i in range(0, X.shape[0], BATCH):
        idx = perm[i : i + BATCH]
        plain_step(module, optimizer, X[idx], Y[idx], loss_fn)
    return time.perf_counter() - start


def estimator_fit(make, X, Y, seed):
    """Seconds of one-epoch ``fit``, of its epoch alone, and the parameter count.

    The epoch alone is skorch's ``history[-1, "dur"]``: the training loop,
    without the fit's once-per-fit work (input validation, label encoding,
    building the network), which does not grow with the number of epochs.
    """
    est = make().set_params(batch_size=BATCH, learning_rate=LR, max_epochs=1, random_state=seed)
    start = time.perf_counter()
    est.fit(X, Y)
    seconds = time.perf_counter() - start
    return seconds, est.net_.history[-1, "dur"], n_parameters(est.net_.module_)


def parse_model_args(doc, argv, repeats, data_home=True):
    """Parse the shared options (``_cli.bench_parser``) and ``--models``; set
    torch's threads. Returns ``(args, models)``."""
    parser = bench_parser(doc, repeats, data_home)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="time beside N busy single-threaded torch processes started by the script "
                             "(benchmarks/_busy.py); a measurement is then clean when the others used less "
                             "than their share of the CPUs plus 10 %%")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    return args, models


def main(argv=None):
    args, models = parse_model_args(__doc__, argv, repeats=5)
    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch by design
    X, Y = load_census(args.data_home)
    Xt, d, n_tasks = torch.from_numpy(X), X.shape[1], Y.shape[1]

    runs, params = {}, {}
    for name in models:
        spec = MODELS[name]
        Y_plain, y_est = spec["targets"](Y)
        Yt, loss_fn = torch.from_numpy(Y_plain), spec["loss"]
        for v in ("plain", "ours"):
            runs[f"{name} {v}"] = lambda r, m=spec[v], Yt=Yt, f=loss_fn: plain_epoch(m(d, n_tasks), Xt, Yt, r, f)
        runs[f"{name} fused"] = lambda r, m=spec["plain"], Yt=Yt, f=loss_fn: plain_epoch(
            m(d, n_tasks), Xt, Yt, r, f, fused=True)
        runs[f"{name} estimator"] = lambda r, m=spec["estimator"], y=y_est: estimator_fit(m, X, y, r)
        params[name] = {v: n_parameters(spec[v](d, n_tasks)) for v in ("plain", "ours")}
        assert params[name]["plain"] == params[name]["ours"], f"{name}: {params[name]}"
    sampler = Sampler(runs, args.repeats, threshold=busy_threshold(args.busy))
    seeds = dict.fromkeys(runs, 0)
    with busy_processes(args.busy):
        load = os.getloadavg()[0]
        for run in sampler:
            seeds[run] += 1
            sampler.measure(run, runs[run], seeds[run])

    print(f"Census-Income group 1: X {X.shape} float32, {args.threads} threads, batch {BATCH}, "
          f"{args.repeats} clean epochs per variant")
    if args.busy:
        print(f"beside {args.busy} busy single-threaded torch processes (512x512 matmul loops); load "
              f"average once they ran: {load:.2f}, at the end: {os.getloadavg()[0]:.2f}")
    print(sampler.summary())
    print("paired: median over rounds of the estimator's epoch over the plain loop's epoch "
          "measured next to it (slow drifts of the machine cancel out):")
    for name in models:
        paired = {v: statistics.median(e[1] / p for e, p in sampler.pairs(f"{name} estimator", f"{name} {v}"))
                  for v in ("plain", "fused")}
        goal = MODELS[name]["goal"]
        print(f"  {name:<14} epoch/plain {paired['plain']:.2f}  epoch/fused {paired['fused']:.2f}"
              f"  target <= {goal}" + ("" if paired["plain"] <= goal else "  missed"))
    for label, stat in (("median", statistics.median), ("best", min)):
        print(f"{label} of {args.repeats}:")
        print(f"{'model':<14}{'plain s':>9}{'fused s':>9}{'plain+nn s':>12}{'est fit s':>11}"
              f"{'est epoch s':>13}{'nn/plain':>10}{'fit/plain':>11}{'epoch/plain':>13}{'epoch/fused':>13}"
              f"{'target':>9}")
        for name in models:
            fits = sampler.values(f"{name} estimator")
            params[name]["estimator"] = fits[0][2]
            med = {v: stat(sampler.values(f"{name} {v}")) for v in ("plain", "fused", "ours")}
            fit, epoch = (stat(f[i] for f in fits) for i in (0, 1))
            ratio, goal = epoch / med["plain"], MODELS[name]["goal"]
            print(f"{name:<14}{med['plain']:>9.3f}{med['fused']:>9.3f}{med['ours']:>12.3f}{fit:>11.3f}"
                  f"{epoch:>13.3f}{med['ours'] / med['plain']:>10.2f}{fit / med['plain']:>11.2f}"
                  f"{ratio:>13.2f}{epoch / med['fused']:>13.2f}{f'<= {goal}':>9}"
                  + ("" if ratio <= goal else "  missed"))
    print("target: per-epoch time (epoch/plain); fit/plain adds the once-per-fit work "
          "(validation, label encoding, set-up); epoch/fused: against the plain loop with the "
          "estimator's fused Adam")
    print("parameters (plain / plain+nn / estimator): " + "; ".join(
        f"{name} {c['plain']:,} / {c['ours']:,} / {c['estimator']:,}" for name, c in params.items()))
    for name, counts in params.items():
        assert len(set(counts.values())) == 1, f"{name}: the variants' parameter counts differ: {counts}"


if __name__ == "__main__":
    main()
