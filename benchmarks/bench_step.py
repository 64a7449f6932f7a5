"""Where an estimator's epoch goes: its per-batch work beside one training step.

The epoch timings of ``bench_fit.py`` swing by ±10 % between identical runs
on a shared machine, more than the few percent that the training loop adds
to a hand-written one. This script times that per-batch work directly, with
``timeit`` (best of ``--repeats``), next to one full training step, so the
overhead can be read without that noise.

For each architecture of ``bench_fit.py`` (Census-sized: 486 float32
columns, batch 1024, 2 threads; random data, since only shapes matter here),
it fits the estimator for one epoch on 4,096 rows and then times, per batch:

* ``plain step``: one step of ``bench_fit.py``'s plain loop (forward,
  loss, backward, fused Adam) on its hand-written module, and on this
  package's ``sklearn_mmoe.nn`` module (``plain+nn``);
* ``step``: one training step of the fitted network (``zero_grad``, the
  estimator's ``train_step_single``: forward, masked multi-task loss,
  backward; then the Adam step), the work every loop has to do; with the
  fused Adam it compares with ``plain step`` without an epoch's noise;
* ``adam``: the optimizer step alone, with PyTorch's default (for-loop) Adam
  and with the fused kernel the estimators use (``fused=True``);
* what skorch's loop adds per batch, and what this package's loop adds:

  - ``train mode``: skorch calls ``train()`` on every submodule at every
    batch; the estimators check one flag and do so only after a switch;
  - ``notify x3``: ``on_batch_begin``, ``on_grad_computed`` and
    ``on_batch_end`` through every callback (skorch), or only through the
    callbacks that define them (this package);
  - ``history``: the batch's row in the history (both);
  - ``loss read``: skorch's ``loss.item()`` per batch (which on a GPU waits
    for the batch), or appending the loss tensor to a list read once per epoch.

Run::

    python benchmarks/bench_step.py
"""

import timeit
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import torch
from bench_fit import BATCH, LR, MODELS, parse_model_args, plain_step
from sklearn.exceptions import ConvergenceWarning
from skorch import NeuralNet

N_FEATURES, N_ROWS = 486, 4096


def _best_us(fn, number, repeats):
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e6


def measure(name, repeats):
    """{label: microseconds per batch} for one architecture."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
    Y = (rng.uniform(size=(N_ROWS, 2)) < 0.3).astype(np.float32)
    if name == "esmm":  # conversion only observed where click
        Y[:, 1] = np.where(Y[:, 0] == 1, Y[:, 1], np.nan)
    est = MODELS[name]["estimator"]().set_params(
        batch_size=BATCH, learning_rate=LR, max_epochs=1, random_state=0
    )
    est.fit(X, Y)
    net = est.net_
    xb = torch.from_numpy(X[:BATCH])
    target = torch.from_numpy(np.nan_to_num(Y[:BATCH]))
    weight = torch.from_numpy((~np.isnan(Y[:BATCH])).astype(np.float32))
    optimizers = {
        "fused": net.optimizer_,
        "default": torch.optim.Adam(net.module_.parameters(), lr=LR, foreach=False),
    }

    def step(optimizer):  # the estimator's own step, with either optimizer
        optimizer.zero_grad()
        net.train_step_single((xb, (target, weight)))
        optimizer.step()

    spec = MODELS[name]
    plain_y = torch.from_numpy(spec["targets"](np.nan_to_num(Y[:BATCH]))[0])
    plain_steps = {}
    for label, v in (("plain step (fused Adam)", "plain"), ("plain+nn step (fused Adam)", "ours")):
        module = spec[v](N_FEATURES, 2)
        optimizer = torch.optim.Adam(module.parameters(), lr=LR, fused=True)
        plain_steps[label] = lambda m=module, o=optimizer: plain_step(m, o, xb, plain_y, spec["loss"])
    for optimizer in optimizers.values():  # create the optimizers' state
        step(optimizer)
    for fn in plain_steps.values():
        fn()
    loss = torch.tensor(0.5)
    losses = []
    net.history.new_epoch()
    net.history.new_batch()
    n = 20
    result = {label: _best_us(fn, n, repeats) for label, fn in plain_steps.items()}
    result.update({
        "step (fused Adam)": _best_us(lambda: step(optimizers["fused"]), n, repeats),
        "step (default Adam)": _best_us(lambda: step(optimizers["default"]), n, repeats),
        "adam fused": _best_us(optimizers["fused"].step, n, repeats),
        "adam default": _best_us(optimizers["default"].step, n, repeats),
    })
    n = 2000
    result["skorch train mode"] = _best_us(lambda: net._set_training(True), n, repeats)
    result["ours train mode"] = _best_us(net._train_mode, n, repeats)

    def notify3(notify=net.notify):
        notify("on_batch_begin", batch=None, training=True)
        notify("on_grad_computed", named_parameters=None, batch=None, training=True)
        notify("on_batch_end", batch=None, training=True)

    def skorch_notify3():
        notify3(lambda *args, **kwargs: NeuralNet.notify(net, *args, **kwargs))

    result["skorch notify x3"] = _best_us(skorch_notify3, n, repeats)
    net._batch_hooks = net._listening_hooks()
    result["ours notify x3"] = _best_us(notify3, n, repeats)
    net._batch_hooks = None
    result["history"] = _best_us(
        lambda: (net.history.new_batch(), net.history.record_batch("train_batch_size", BATCH)),
        n,
        repeats,
    )
    result["skorch loss read"] = _best_us(loss.item, n, repeats)
    result["ours loss read"] = _best_us(lambda: losses.append(loss.detach()), n, repeats)
    return result


def main(argv=None):
    args, models = parse_model_args(__doc__, argv, repeats=7, data_home=False)
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = {name: measure(name, args.repeats) for name in models}
    labels = list(next(iter(results.values())))
    print(f"microseconds per batch (best of {args.repeats}), {N_FEATURES} columns, batch {BATCH}, "
          f"{args.threads} threads")
    print(f"{'':<27}" + "".join(f"{name:>15}" for name in models))
    for label in labels:
        print(f"{label:<27}" + "".join(f"{results[name][label]:>15.1f}" for name in models))
    for who in ("skorch", "ours"):
        print(f"{who + ' loop adds':<27}" + "".join(
            f"{_added(results[name], who):>15.1f}" for name in models))
    print(f"{'step / plain step':<27}" + "".join(
        f"{results[name]['step (fused Adam)'] / results[name]['plain step (fused Adam)']:>15.2f}"
        for name in models))
    print(f"{'  % of fused step':<27}" + "".join(
        f"{100 * _added(results[name], 'ours') / results[name]['step (fused Adam)']:>14.2f}%"
        for name in models))
    print("'loop adds': train mode + notify x3 + history + loss read (skorch's, or this package's)")


def _added(result, who):
    return sum(result[f"{who} {k}"] for k in ("train mode", "notify x3", "loss read")) + result["history"]


if __name__ == "__main__":
    main()
