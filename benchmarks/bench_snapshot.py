"""Cost of the transactional snapshot of continued training (warm start, partial_fit).

A warm-start ``fit`` or a ``partial_fit`` trains the fitted net in place, so
it first copies what it may change (the module's, loss's and optimizer's
state dicts, the net's attributes, the history's rows) to put it back if the
call fails (``_NetSnapshot`` in ``sklearn_mmoe/_training.py``, used by
``_base._transaction``, where this script swaps it). This script
measures what that costs on Census-Income (KDD) group 1 (199,523 rows,
one-hot encoded to 486 float32 columns), MMoE with 8 experts, towers of 8
units, batch 1024, Adam, 1 torch thread:

* ``snapshot``: taking one snapshot of the fitted net (median of 20 and,
  ``--repeats`` times, once next to each timed call below);
* ``warm start``: per-epoch time of ``set_params(warm_start=True,
  max_epochs=E).fit(X, y)`` with the snapshot, and with it replaced by a
  no-op, interleaved (``--repeats`` rounds; a measurement disturbed by other
  processes is retried, ``benchmarks/_quiet.py``). ``with/without`` is the
  median over rounds of the paired per-epoch ratio (over the clean rounds,
  or over all rounds if too few were clean, which the line below says);
  ``snapshot/epoch`` is the snapshot's time over the epoch measured with
  it: the cost per epoch, exact where the paired ratio is within the
  machine's noise;
* ``partial_fit``: the same for one ``partial_fit`` call (one epoch), where
  the snapshot is taken once per epoch: the worst case.

for experts of 16 units (the paper's Census model) and of 256 units (a model
whose state is 40 times larger).

Run::

    python benchmarks/bench_snapshot.py --data-home ~/scikit_learn_data --threads 1
"""

import statistics
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import torch
from _cli import bench_parser
from _quiet import Sampler
from bench_fit import load_census
from sklearn.exceptions import ConvergenceWarning

from sklearn_mmoe import MMoEClassifier, _base

_SNAPSHOT = _base._NetSnapshot


class _NoSnapshot:
    """The snapshot replaced by nothing: what continued training cost before."""

    def __init__(self, net):
        pass

    def restore(self):
        raise AssertionError("not reached: the benchmark's fits do not fail")


def _continue(model, X, y, epochs, snapshot, method):
    _base._NetSnapshot = snapshot
    try:
        start = time.perf_counter()
        if method == "partial_fit":
            model.partial_fit(X, y)
        else:
            model.set_params(warm_start=True, max_epochs=epochs).fit(X, y)
        return (time.perf_counter() - start) / (1 if method == "partial_fit" else epochs)
    finally:
        _base._NetSnapshot = _SNAPSHOT


def _pairs(sampler, a, b):
    """Paired values of the clean rounds, or of every round if none was clean."""
    pairs = sampler.pairs(a, b)
    if pairs:
        return pairs
    by_round = {name: {r: v for v, _, r in sampler.samples[name]} for name in (a, b)}
    return [(by_round[a][r], by_round[b][r]) for r in sorted(by_round[a].keys() & by_round[b].keys())]


def main():
    parser = bench_parser(__doc__, repeats=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per warm-start fit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_census(args.data_home)
    print(f"Census-Income group 1: {X.shape[0]} rows x {X.shape[1]} columns, "
          f"{args.threads} torch thread(s), {args.epochs} epochs per warm-start fit\n")
    print(f"{'experts':>8} {'state MB':>9} {'snapshot ms':>12} {'method':>12} "
          f"{'epoch s (with)':>15} {'epoch s (without)':>18} {'with/without':>13} "
          f"{'snapshot/epoch':>15}")
    for width in (16, 256):
        model = MMoEClassifier(
            n_experts=8, expert_hidden_sizes=(width,), tower_hidden_sizes=(8,),
            batch_size=1024, max_epochs=1, random_state=0,
        ).fit(X, y)
        net = model.net_
        state_mb = sum(
            t.numel() * t.element_size()
            for t in [*net.module_.state_dict().values(),
                      *(v for s in net.optimizer_.state_dict()["state"].values()
                        for v in s.values() if torch.is_tensor(v))]
        ) / 2**20
        times = []
        for _ in range(20):
            start = time.perf_counter()
            _SNAPSHOT(net)
            times.append(time.perf_counter() - start)
        snapshot_ms = 1e3 * statistics.median(times)
        for method in ("warm start", "partial_fit"):
            sampler = Sampler(["with", "without"], args.repeats, max_rounds=args.repeats + 2,
                              timeout=10)
            for name in sampler:
                snapshot = _SNAPSHOT if name == "with" else _NoSnapshot
                sampler.measure(name, _continue, model, X, y, args.epochs, snapshot, method)
            ratio = statistics.median(a / b for a, b in _pairs(sampler, "with", "without"))
            epoch = statistics.median(sampler.values("with"))
            print(f"{f'8 x {width}':>8} {state_mb:9.2f} {snapshot_ms:12.2f} {method:>12} "
                  f"{epoch:15.3f} {statistics.median(sampler.values('without')):18.3f} "
                  f"{ratio:13.3f} {snapshot_ms / 1e3 / epoch:15.5f}")
            print(f"{'':>8} ({sampler.summary()})")


if __name__ == "__main__":
    main()
