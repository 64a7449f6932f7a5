"""The skorch training loop of the estimators.

:class:`_TrainingNet` is skorch's ``NeuralNet`` with the masked multi-task
loss, a per-task record of each epoch and an epoch loop that does not wait
for the device at every batch; the callbacks here seed each epoch, stop on a
non-finite loss, log and record the task weights. :class:`_TrainingMixin`
gives the estimator the methods that build such a net from its parameters
(``_make_net``, one factory for fit and load) and train it (``_train``).

``_TrainingNet`` overrides skorch internals (``notify``,
``run_single_epoch``, ``train_step_single``, and calls ``_set_training``);
``tests/test_skorch_contract.py`` checks that the installed skorch still
has the signatures and attributes they rely on.
"""

import copy
import inspect
import os
import sys
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, ProgressBar
from skorch.helper import predefined_split
from skorch.history import History

from . import _distributed, _random
from ._data import BatchIterator, MultiTaskDataset, as_float32_rows
from ._targets import decode, joint
from .metrics import _METRICS
from .nn import EmbeddedNetwork, MaskedMultiTaskLoss

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def _fused_works(optimizer_class, device_type, kwargs):
    """Whether ``optimizer_class(..., fused=True, **kwargs)`` works on this device type."""
    if "fused" not in inspect.signature(optimizer_class).parameters:
        return False
    probe = torch.zeros(1, device=device_type, requires_grad=True)
    try:  # e.g. no fused CPU kernel before torch 2.4, or kwargs it does not support
        optimizer_class([probe], lr=1e-3, fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        return False
    return True



_BATCH_HOOKS = ("on_batch_begin", "on_grad_computed", "on_batch_end")


class _WeightAverage:
    """The exponential moving average of the weights that training keeps (``ema_half_life``).

    After the ``n``-th optimizer step the average moves towards the new
    weights by ``max(1 - decay, 1 / n)`` (the plain mean of the first steps,
    then exponential), where ``decay`` gives a half-life of ``half_life``
    epochs. Between epochs the module holds the average: the validation
    epoch scores it, early stopping keeps it as the best weights, and it is
    what a fit leaves. The optimizer's own weights (``trained``) and the step
    count are kept with the net, so continued training (``warm_start``,
    ``partial_fit``, a reloaded model) resumes exactly where it stopped; a
    fit whose module ends with other weights (the best epoch restored, an
    interrupted epoch) starts the average afresh from them.
    """

    def __init__(self, half_life, trained=None, steps=0):
        self.half_life = half_life
        self.trained = trained
        self.steps = steps
        self._params = self._average = None  # within a fit
        self.decay = 0.0

    @staticmethod
    def parameters(module):
        return [p for p in module.parameters() if p.requires_grad]

    def start_epoch(self, module, n_batches):
        """Before a training epoch: the average aside, the trained weights in the module."""
        # detached views of the parameters, taken once per epoch: the steps
        # update them in place, so the per-batch update reads them as they are
        self._params = [p.detach() for p in self.parameters(module)]
        self._average = [p.clone() for p in self._params]
        if self.trained is not None:
            torch._foreach_copy_(self._params, self.trained)
        self.decay = 0.5 ** (1.0 / (self.half_life * max(n_batches, 1)))

    def update(self):
        """After an optimizer step."""
        self.steps += 1
        torch._foreach_lerp_(self._average, self._params, max(1.0 - self.decay, 1.0 / self.steps))

    def end_epoch(self):
        """After a training epoch: the trained weights aside, the average in the module."""
        if self.trained is None:
            self.trained = [p.clone() for p in self._params]
        else:
            torch._foreach_copy_(self.trained, self._params)
        torch._foreach_copy_(self._params, self._average)

    def finish(self, module):
        """At the end of a fit: keep the state only if the module holds its average."""
        average, self._params, self._average = self._average, None, None
        params = self.parameters(module)
        if average is None or not all(torch.equal(p, a) for p, a in zip(params, average)):
            self.trained, self.steps = None, 0


def _prepare_inputs(module, *datasets):
    """Do the input embedding's fixed part once, on the training and validation rows.

    The quantile (and periodic) encodings' normal scores depend on the
    inputs only; computed once per fit instead of in every batch of every
    epoch. The network reads prepared rows until ``prepared_inputs`` is
    reset. Returns whether it prepared anything.
    """
    datasets = [dataset for dataset in datasets if dataset is not None]
    if (
        not isinstance(module, EmbeddedNetwork)
        or not module.embedding.quantile
        or not all(isinstance(dataset.X, torch.Tensor) for dataset in datasets)
    ):
        return False
    with torch.no_grad():  # (the scores bound their own temporaries, block by block)
        for dataset in datasets:
            dataset.X = module.prepare(dataset.X)
    module.prepared_inputs = True
    return True


class _TrainingNet(NeuralNet):
    """skorch's training loop with the masked multi-task loss.

    Batches are ``(X, (target, weight))``; the loss reads both parts. A
    training step hands the per-task losses to the loss-weighting strategy,
    which computes the gradients; the loss it reports (and the validation
    loss) is the criterion's monitored loss (the fixed task weights, without
    the counterfactual CVR risk), so epochs stay comparable.

    Per batch, skorch's contract holds (every callback that defines
    ``on_batch_begin``, ``on_grad_computed`` or ``on_batch_end`` gets each
    call, and the history gets each batch), at a cost that does not grow with
    the number of callbacks that leave these hooks as skorch's no-ops.
    """

    _batch_hooks = None  # {hook: [bound methods]} during an epoch, else None
    #: ``(rank, world_size)`` in data-parallel training, else None
    #: (see :mod:`sklearn_mmoe._distributed`)
    distributed_ = None
    #: the trainable parameters whose gradients data-parallel training averages
    _synchronized = ()
    #: the running :class:`_WeightAverage` of a fit (``ema_half_life``), else None
    weight_average = None

    def _weight_total(self, weight):
        """The loss denominators of data-parallel training (None: the batch's own)."""
        if self.distributed_ is None:
            return None
        return _distributed.weight_totals(weight, self.distributed_[1])

    def get_loss(self, y_pred, y_true, X=None, training=False):
        target, weight = y_true
        return self.criterion_(y_pred, target, weight, total=self._weight_total(weight))

    def notify(self, method_name, **cb_kwargs):
        hooks = self._batch_hooks
        if hooks is None or method_name not in hooks:
            return super().notify(method_name, **cb_kwargs)
        for hook in hooks[method_name]:
            hook(self, **cb_kwargs)

    def _listening_hooks(self):
        """Per batch hook, the net's method and the callbacks' that are not no-ops."""
        hooks = {}
        for name in _BATCH_HOOKS:
            # The net's own (on_batch_begin starts the batch's history row).
            hooks[name] = [getattr(self, name)]
            hooks[name] += [
                getattr(cb, name)
                for _, cb in self.callbacks_
                if getattr(type(cb), name) is not getattr(Callback, name)
            ]
        return hooks

    def _train_mode(self):
        """Training mode for the step, walking the submodules only after a switch.

        skorch calls ``train()`` on every submodule at every batch (tens of
        microseconds); a validation step is the only thing that switches to
        ``eval()`` during training.
        """
        if not (self.module_.training and self.criterion_.training):
            self._set_training(True)

    def train_step_single(self, batch, **fit_params):
        self._train_mode()
        X, (target, weight) = batch
        y_pred = self.infer(X, **fit_params)
        total = self._weight_total(weight)
        losses = self.criterion_.per_task(y_pred, target, weight, total=total)
        self.criterion_.weighting.backward(losses, self.module_)
        penalty = self.module_.penalty()
        if penalty is not None:  # e.g. L2-Constrained's coupling; its gradient adds up
            penalty.backward()
        if self.distributed_ is not None:
            _distributed.average_gradients(self._synchronized, self.distributed_[1])
        loss = self.criterion_.monitored(y_pred, target, weight, losses, total=total)
        return {"loss": loss, "y_pred": y_pred, "task_losses": losses.detach()}

    def train_step(self, batch, **fit_params):
        step = super().train_step(batch, **fit_params)
        if self.weight_average is not None:
            self.weight_average.update()
        return step

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch, without waiting for the device at every batch.

        skorch records each batch's loss with ``loss.item()``, which on a GPU
        waits for the batch to finish before the next one can be queued. Here
        the losses stay on the device until the epoch ends, and one transfer
        fills in the batch records of the history. Callbacks get every
        ``on_batch_end`` as before, with the step's loss tensor; the batch's
        ``{prefix}_loss`` entry of the history is written at the epoch's end.
        """
        if iterator is None:
            return
        losses, rows, kept = [], [], []
        batches = self.history[-1]["batches"]
        average = self.weight_average if training else None
        if average is not None:
            average.start_epoch(self.module_, len(iterator))
        self._batch_hooks = self._listening_hooks()
        try:
            for batch in iterator:
                self.notify("on_batch_begin", batch=batch, training=training)
                step = step_fn(batch, **fit_params)
                losses.append(step["loss"].detach())
                # per-task figures of the epoch: the training step's task
                # losses; the validation batches' outputs and labels
                kept.append(step["task_losses"] if training else (step["y_pred"], batch[1]))
                rows.append(batches[-1])
                self.history.record_batch(prefix + "_batch_size", len(batch[0]))
                self.notify("on_batch_end", batch=batch, training=training, **step)
        finally:
            self._batch_hooks = None
        if average is not None:
            average.end_epoch()
        if losses:
            losses = torch.stack(losses)
            task_losses = torch.stack(kept).mean(0) if training else None
            if self.distributed_ is not None:
                losses, task_losses = self._global_epoch(rows, prefix, losses, task_losses)
            for row, value in zip(rows, losses.tolist()):
                row[prefix + "_loss"] = value
            if training:
                self.history.record("train_task_loss", task_losses.tolist())
            else:
                self._record_validation(kept)
        self.history.record(prefix + "_batch_count", len(losses))

    #: ``(logits, target, weight)`` numpy arrays -> per-task validation
    #: scores (greater is better), or None to score by the loss alone.
    validation_scorer = None

    def _global_epoch(self, rows, prefix, losses, task_losses):
        """Data-parallel training: the epoch's figures of the global batches.

        Each rank's batch losses are its shares of the global batches' (see
        :func:`sklearn_mmoe._distributed.weight_totals`), so their mean over
        the ranks is the global batch's loss; the batch sizes add up. Every
        rank records the same figures, so callbacks (early stopping) decide
        alike everywhere.
        """
        size_key = prefix + "_batch_size"
        device = losses.device
        parts = [losses.double(), torch.tensor([row[size_key] for row in rows], device=device).double()]
        if task_losses is not None:
            parts.append(task_losses.double())
        flat = _distributed.reduced(torch.cat(parts), device)
        n, ranks = len(rows), self.distributed_[1]
        for row, size in zip(rows, flat[n: 2 * n].tolist()):
            row[size_key] = int(size)
        return flat[:n] / ranks, None if task_losses is None else flat[2 * n:] / ranks

    def _record_validation(self, kept):
        """Per-task losses (and scores) of the whole validation set, in the history."""
        logits = torch.cat([y_pred for y_pred, _ in kept])
        target = torch.cat([labels[0] for _, labels in kept])
        weight = torch.cat([labels[1] for _, labels in kept])
        if self.distributed_ is not None:  # the validation rows of every rank
            logits, target, weight = (
                _distributed.gather_rows(t) for t in (logits, target, weight)
            )
        with torch.no_grad():
            self.history.record(
                "valid_task_loss", self.criterion_.per_task(logits, target, weight).tolist()
            )
        if self.validation_scorer is not None:
            scores = self.validation_scorer(
                logits.float().cpu().numpy(), target.cpu().numpy(), weight.cpu().numpy()
            )
            self.history.record("valid_task_score", list(scores))
            with warnings.catch_warnings():  # a task without a defined score is left out
                warnings.simplefilter("ignore", RuntimeWarning)
                self.history.record("valid_score", float(np.nanmean(scores)))



class _EpochSeed(Callback):
    """Reseed the fit's generators at each epoch from (seed, epoch).

    Dropout and any other randomness of epoch ``e`` then depend only on the
    seed and ``e``: a fit resumed at an epoch (warm start, a reloaded model)
    draws what an uninterrupted fit would have drawn. The generators are the
    fit's own (see :func:`sklearn_mmoe._random.seeded`), never torch's global one.
    """

    def __init__(self, seed):
        self.seed = seed

    def on_epoch_begin(self, net, **kwargs):
        seed = _random.epoch_seed(self.seed, len(net.history))
        if net.distributed_ is not None and net.distributed_[0] > 0:
            # each rank its own draws (dropout of different rows)
            seed = _random.epoch_seed(seed, net.distributed_[0])
        for generator in _random.active():
            generator.manual_seed(seed)


class _FiniteLoss(Callback):
    """Stop on a NaN or infinite epoch loss: raise, or restore the last finite weights."""

    def __init__(self, policy):
        self.policy = policy

    def initialize(self):
        self.snapshot_, self.restored_epoch_ = None, None
        return self

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        losses = {k: row[k] for k in ("train_loss", "valid_loss") if k in row}
        if all(np.isfinite(v) for v in losses.values()):
            if self.policy == "restore":
                self.snapshot_ = copy.deepcopy(
                    [net.module_.state_dict(), net.criterion_.state_dict(), net.optimizer_.state_dict()]
                )
            return
        epoch = row["epoch"]
        name, value = next((k, v) for k, v in losses.items() if not np.isfinite(v))
        if self.policy == "raise" or self.snapshot_ is None:
            raise FloatingPointError(
                f"The {name} is {value} at epoch {epoch}: training diverged. Lower "
                "learning_rate, check X for extreme values, or set nan_loss='restore' "
                "to keep the last weights with a finite loss."
            )
        module, criterion, optimizer = self.snapshot_
        net.module_.load_state_dict(module)
        net.criterion_.load_state_dict(criterion)
        net.optimizer_.load_state_dict(optimizer)
        self.restored_epoch_ = epoch
        raise KeyboardInterrupt  # skorch's way to stop training


class _EpochLog(Callback):
    """With ``verbose``: one plain-text line per epoch, per task figures included.

    No colour codes (logs are often files); a star marks the epoch that the
    monitored quantity says is best so far. On a terminal, a progress bar
    runs over the batches of each epoch.
    """

    def __init__(self, monitor, lower_is_better, stream=None):
        self.monitor = monitor
        self.lower_is_better = lower_is_better
        self.stream = stream

    def initialize(self):
        self.best_ = None
        return self

    def _write(self, text):
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        cells = [f"epoch {row['epoch']:4d}", f"train_loss {row['train_loss']:.4f}"]
        cells.append("tasks [" + " ".join(f"{v:.4f}" for v in row["train_task_loss"]) + "]")
        if "valid_loss" in row:
            cells.append(f"valid_loss {row['valid_loss']:.4f}")
            cells.append("tasks [" + " ".join(f"{v:.4f}" for v in row["valid_task_loss"]) + "]")
        if "valid_score" in row:
            cells.append(f"valid_score {row['valid_score']:.4f}")
            cells.append("tasks [" + " ".join(f"{v:.4f}" for v in row["valid_task_score"]) + "]")
        value = row.get(self.monitor)
        if value is not None and np.isfinite(value):
            better = self.best_ is None or (
                value < self.best_ if self.lower_is_better else value > self.best_
            )
            if better:
                self.best_ = value
                cells[0] += " *"
        cells.append(f"{row['dur']:.2f} s")
        self._write("  ".join(cells))


class _EpochWeights(Callback):
    """Record the task weights an epoch used, then let the strategy update them."""

    def on_epoch_end(self, net, **kwargs):
        weighting = net.criterion_.weighting
        net.history.record("task_weights", weighting.current_weights().tolist())
        weighting.end_epoch(len(net.history))




def _validation_split(observed, fraction, seed):
    """Row indices ``(valid, train)``: a random split in which every task keeps
    observed labels on both sides.

    The split is random over rows; where a task's observed rows all fell on
    one side, a random share ``fraction`` of them (at least one) is moved to
    the other.
    """
    n, n_tasks = observed.shape
    n_valid = int(round(n * fraction))
    if n_valid < 1 or n_valid >= n:
        raise ValueError(
            f"validation_fraction={fraction} leaves no training or no validation row "
            f"out of {n} samples."
        )
    rng = np.random.RandomState(seed)
    in_valid = np.zeros(n, dtype=bool)
    in_valid[rng.permutation(n)[:n_valid]] = True
    for t in range(n_tasks):
        rows = np.flatnonzero(observed[:, t])
        if rows.size < 2:
            raise ValueError(
                f"y: task {t} has {rows.size} observed label(s); early stopping needs "
                "at least 2 (one to train on, one to validate), or set early_stopping=False."
            )
        for side in (True, False):
            if not (in_valid[rows] == side).any():
                k = max(1, int(round(rows.size * (fraction if side else 1 - fraction))))
                in_valid[rng.choice(rows, size=min(k, rows.size - 1), replace=False)] = side
    return np.flatnonzero(in_valid), np.flatnonzero(~in_valid)


def _validation_scorer(metric, tasks):
    """Per-task validation scores (greater is better) of the logits, for ``metric``.

    Each task is scored on its validation rows with a non-zero weight, with
    the masked metric of :mod:`sklearn_mmoe.metrics`; a conditional task
    (ESMM) on its joint probability against the joint label, which is what
    it is trained on over all of its parent's rows.
    """
    kind, func = _METRICS[metric]
    sign = -1.0 if metric in _LOWER_IS_BETTER else 1.0

    def score(logits, target, weight):
        outputs = joint(decode(logits, tasks), tasks)
        scores = []
        for t, task in enumerate(tasks):
            rows = weight[:, t] > 0
            if task.kind == "regression":
                if kind != "regression":
                    raise ValueError(f"scoring={metric!r} does not apply to regression task {t}.")
                y, pred, classes = target[rows, t] * task.scale + task.mean, outputs[t][rows], None
            else:
                if kind == "regression":
                    raise ValueError(f"scoring={metric!r} does not apply to classification task {t}.")
                classes = np.arange(outputs[t].shape[1])
                y, pred = target[rows, t].astype(np.intp), outputs[t][rows]
                if kind == "label":
                    pred = pred.argmax(axis=1)
                elif len(np.unique(y)) < 2 and metric in ("roc_auc", "average_precision"):
                    scores.append(np.nan)  # undefined on one class: not counted
                    continue
            scores.append(sign * func(y, pred, weight[rows, t], classes))
        return scores

    return score


# Metrics where lower is better: their validation score is negated.
_LOWER_IS_BETTER = {"log_loss", "mean_squared_error", "root_mean_squared_error", "mean_absolute_error"}



def _check_same_rows(n_rows, n_features, device):
    """Data-parallel ``fit``: a ValueError unless every rank got the same shape of X."""
    # one all-reduce: the largest of (n, -n) is (max, -min)
    extremes = _distributed.reduced(
        [n_rows, n_features, -n_rows, -n_features], device, op="max"
    ).tolist()
    high, low = extremes[:2], [-v for v in extremes[2:]]
    if low != high:
        raise ValueError(
            "fit in a torch.distributed process group expects the same X and y on every "
            f"process (each trains on its share of every batch), got between {int(low[0])} "
            f"and {int(high[0])} rows, {int(low[1])} and {int(high[1])} columns. To train "
            "on rows that differ per process (e.g. sklearn_mmoe.datasets.iter_parquet's "
            "shards), call partial_fit."
        )


def _meta_module(net):
    """The net's module built on the meta device: its shapes, without allocating."""
    with torch.device("meta"):
        return net.module(**net.get_params_for("module"))


def _memory_bytes(device):
    """Memory of ``device`` (bytes): the GPU's, or the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


# Training holds a parameter, its gradient and two optimizer moments (Adam);
# with ema_half_life, also the weight average and the trained weights beside it.
_TRAINING_COPIES = 4
_AVERAGE_COPIES = 2


class _NetSnapshot:
    """What continued training changes in a fitted net, to put back on failure.

    A copy of the module's, loss's and optimizer's state dicts (the weights,
    buffers and optimizer state: the one cost that grows with the model), the
    modules' other attributes (e.g. a loss weighting's running sums), the
    net's attributes (callbacks, epochs, ...) and the history's rows.
    """

    def __init__(self, net):
        self.net = net
        self.attributes = dict(vars(net))
        # its tensors change in place during training: a copy, as for the states
        self.attributes["weight_average"] = copy.deepcopy(net.weight_average)
        self.modules = [net.module_, net.criterion_]
        self.states = copy.deepcopy([m.state_dict() for m in self.modules])
        self.optimizer = copy.deepcopy(net.optimizer_.state_dict())
        self.plain = [
            [(m, _plain_attributes(m)) for m in module.modules()] for module in self.modules
        ]
        self.history = [dict(row) for row in net.history]

    def restore(self):
        net = self.net
        vars(net).clear()
        vars(net).update(self.attributes)
        for module, state, plain in zip(self.modules, self.states, self.plain):
            module.load_state_dict(state)
            for submodule, attributes in plain:
                vars(submodule).update(attributes)
        net.optimizer_.load_state_dict(self.optimizer)
        net.history = History([dict(row) for row in self.history])
        net.module_.eval()


def _plain_attributes(module):
    """A module's own attributes other than its parameters, buffers and submodules."""
    return {
        k: v for k, v in vars(module).items()
        if k not in ("_parameters", "_buffers", "_modules")
    }



class _TrainingMixin:
    """Build the estimator's skorch net from its parameters, and train it.

    Mixed into :class:`sklearn_mmoe._base._BaseMultiTask`, whose ``_fit``
    validates the data and calls ``_train``.
    """

    def _check_network_size(self, net, device):
        """A ValueError naming the size parameters when the network cannot fit in memory.

        Checked on the meta device, before anything is allocated: an
        allocation of a huge network can fail with a raw error, or succeed
        and then get the process killed when the memory is touched.
        """
        module = _meta_module(net)
        tensors = dict(module.named_parameters())
        n_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
        memory = _memory_bytes(device)
        # (a model saved before ema_half_life existed has no such attribute)
        averaged = getattr(self, "ema_half_life", None) is not None
        copies = _TRAINING_COPIES + (_AVERAGE_COPIES if averaged else 0)
        if memory is None or copies * n_bytes <= memory:
            return
        name, largest = max(tensors.items(), key=lambda item: item[1].numel())
        shape = tuple(largest.shape)
        causes = [  # the parameters that set the weight's largest dimension
            f"{key}={value!r}"
            for key, value in self._module_kwargs().items()
            if max(shape) in (value if isinstance(value, tuple) else (value,))
            and not isinstance(value, bool)
        ] or [f"the {max(shape)} columns of X"]
        raise ValueError(
            f"The network of {type(self).__name__} would have "
            f"{sum(t.numel() for t in tensors.values()):,} parameters ({n_bytes / 2**30:.3g} GiB; "
            f"training needs about {copies}x that), more than the "
            f"{memory / 2**30:.3g} GiB of memory of {device}. Its largest weight, {name} of "
            f"shape {shape}, comes from {', '.join(causes)}: reduce it."
        )


    def _optimizer_class(self):
        if isinstance(self.optimizer, str):
            return OPTIMIZERS[self.optimizer]
        if not (isinstance(self.optimizer, type) and issubclass(self.optimizer, torch.optim.Optimizer)):
            raise TypeError(
                "optimizer must be one of "
                f"{sorted(OPTIMIZERS)} or a torch.optim.Optimizer subclass, "
                f"got {self.optimizer!r}."
            )
        closure = inspect.signature(self.optimizer.step).parameters.get("closure")
        if closure is not None and closure.default is inspect.Parameter.empty:
            raise ValueError(
                f"optimizer={self.optimizer.__name__} is not supported: its step needs a "
                "closure that re-evaluates the loss (e.g. LBFGS); use an optimizer whose "
                "step works from the gradients, such as 'adam' or 'sgd'."
            )
        return self.optimizer

    def _callbacks(self, seed):
        lower_is_better = True
        if not getattr(self, "early_stopping_", False):
            monitor, load_best = "train_loss", False
        elif self.scoring == "loss":
            monitor, load_best = "valid_loss", True
        else:
            monitor, load_best, lower_is_better = "valid_score", True, False
        stop = EarlyStopping(
            monitor=monitor,
            patience=self.n_iter_no_change,
            threshold=self.tol,
            threshold_mode="abs",
            lower_is_better=lower_is_better,
            load_best=load_best,
        )
        for item in self.callbacks or []:
            callback = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if not isinstance(callback, Callback):
                raise TypeError(
                    "callbacks must be a list of skorch Callback instances or (name, "
                    f"Callback) tuples, got {item!r}."
                )
        # The user's callbacks are copied so that fitting never mutates them.
        own = [
            ("seed", _EpochSeed(seed)),
            ("finite", _FiniteLoss(self.nan_loss)),
            ("task_weights", _EpochWeights()),
            ("stopping", stop),
        ]
        world = _distributed.world()
        if self.verbose and (world is None or world[0] == 0):  # one log: rank 0's
            own.append(("log", _EpochLog(monitor, lower_is_better)))
            if sys.stderr.isatty():
                own.append(("progress", ProgressBar()))
        return own + copy.deepcopy(list(self.callbacks or []))

    def _optimizer_kwargs(self, device):
        kwargs = dict(self.optimizer_kwargs or {})
        reserved = sorted({"lr", "weight_decay", "params"} & set(kwargs))
        if reserved:
            raise ValueError(
                f"optimizer_kwargs must not set {reserved}: use the learning_rate and "
                "weight_decay parameters."
            )
        optimizer = self._optimizer_class()
        try:  # on a probe parameter: a clear error now rather than a raw one later
            optimizer(
                [torch.zeros(1, requires_grad=True)], lr=self.learning_rate,
                weight_decay=self.weight_decay, **kwargs,
            )
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"optimizer_kwargs={self.optimizer_kwargs!r} are not valid for "
                f"{optimizer.__name__}: {exc}"
            ) from None
        # A named optimizer runs as PyTorch's fused kernel where this torch
        # has one for the device and the options (one kernel per parameter
        # instead of a loop of a dozen ops: Adam's step takes about a third
        # of the time on a CPU), unless the user chose an implementation.
        if (
            isinstance(self.optimizer, str)
            and not {"fused", "foreach"} & set(kwargs)
            and _fused_works(OPTIMIZERS[self.optimizer], torch.device(device).type, kwargs)
        ):
            kwargs["fused"] = True
        return kwargs

    def _make_net(self, n_features, tasks, task_weights, seeds, device, loss_options):
        """The skorch net for these tasks (uninitialised); one factory for fit and load.

        The network has one output per task, then the extra outputs the loss
        needs (the imputation heads of ``cvr_objective="dr"``), which predict
        never reads.
        """
        parents = [task.parent for task in tasks]
        n_extra = MaskedMultiTaskLoss.extra_outputs(
            parents, loss_options.get("cvr_objective", "esmm")
        )
        module_kwargs = {f"module__{k}": v for k, v in self._module_kwargs().items()}
        embedding = self._embedding_kwargs()
        if embedding is None:
            module = self._module_class
        else:
            module = EmbeddedNetwork
            module_kwargs.update(module__network=self._module_class, module__embedding=embedding)
        return _TrainingNet(
            module=module,
            **module_kwargs,
            module__n_features=n_features,
            module__n_outputs=[task.n_outputs for task in tasks] + [1] * n_extra,
            criterion=MaskedMultiTaskLoss,
            criterion__task_types=[task.type for task in tasks],
            criterion__n_outputs=[task.n_outputs for task in tasks],
            criterion__task_weights=task_weights,
            criterion__parents=parents,
            criterion__weighting=self.loss_weighting,
            **{f"criterion__{k}": v for k, v in loss_options.items()},
            optimizer=self._optimizer_class(),
            lr=self.learning_rate,
            optimizer__weight_decay=self.weight_decay,
            **{f"optimizer__{k}": v for k, v in self._optimizer_kwargs(device).items()},
            max_epochs=self.max_epochs,
            # batch_size_ is set by _train; a model pickled before it existed had an int
            batch_size=getattr(self, "batch_size_", self.batch_size),
            iterator_train=BatchIterator,
            iterator_train__shuffle=True,
            iterator_train__seed=seeds[1],
            iterator_valid=BatchIterator,
            train_split=None,
            callbacks=self._callbacks(seeds[0]),
            predict_nonlinearity=None,
            device=device,
            # the estimator prints its own log (_EpochLog), not skorch's table
            verbose=0,
        )

    def _train(self, net, X, target, weight, tasks, task_weights, seeds, epochs, loss_options):
        """Train a new net (``net=None``) or continue one, for ``epochs`` or max_epochs."""
        device = self._check_device() if net is None else torch.device(net.device)
        X = as_float32_rows(X)
        data = MultiTaskDataset(
            X if not isinstance(X, torch.Tensor) else X.to(device),
            torch.from_numpy(target).to(device),
            torch.from_numpy(weight).to(device),
        )
        start = 0 if net is None else len(net.history)
        self.batch_size_ = self._batch_size()
        valid = None
        world = _distributed.world()
        if world is not None and epochs is None:
            _check_same_rows(len(data), X.shape[1], device)
        self.early_stopping_ = epochs is None and self._uses_early_stopping(len(data))
        if self.early_stopping_:
            valid_rows, train_rows = _validation_split(weight > 0, self.validation_fraction, seeds[1])
            valid = data.subset(torch.from_numpy(valid_rows))
            data = data.subset(torch.from_numpy(train_rows))

        if net is None:
            net = self._make_net(X.shape[1], tasks, task_weights, seeds, device, loss_options)
        else:  # continue with the current hyper-parameters
            net.callbacks = self._callbacks(seeds[0])
            net.initialize_callbacks()
            for group in net.optimizer_.param_groups:
                group.update(lr=self.learning_rate, weight_decay=self.weight_decay)
            net.batch_size = self.batch_size_
        if epochs is not None:
            # partial_fit: one plain epoch on the data given, whatever
            # early_stopping says: no validation split, no stopping rule.
            net.callbacks = [
                item for item in net.callbacks
                if not (isinstance(item, tuple) and item[0] == "stopping")
            ]
            if net.initialized_:
                net.initialize_callbacks()
        # fit: every rank holds all rows and trains on its share of each batch;
        # partial_fit: each rank trains on the rows it was given
        net.iterator_train__distributed = None if world is None else (
            "global" if epochs is None else "local"
        )
        net.iterator_valid__distributed = None if world is None else "global"
        net.train_split = None if valid is None else predefined_split(valid)
        net.validation_scorer = (
            None if self.scoring == "loss" else _validation_scorer(self.scoring, tasks)
        )
        net.max_epochs = self.max_epochs if epochs is None else epochs
        net.iterator_train__first_epoch = start
        if not net.initialized_:
            self._check_network_size(net, device)
        with _random.seeded(seeds[0], device):
            if not net.initialized_:
                net.initialize()
                if world is not None:  # the same start everywhere, whatever the devices
                    _distributed.broadcast_modules(net.module_, net.criterion_)
            net.distributed_ = world
            net._synchronized = [
                p for module in (net.module_, net.criterion_) for p in module.parameters()
                if p.requires_grad
            ] if world is not None else ()
            if world is not None and not net.criterion_.weighting.data_parallel:
                raise ValueError(
                    f"loss_weighting={self.loss_weighting!r} is not supported in data-parallel "
                    "training (torch.distributed): it computes per-task gradients of each "
                    "process's own rows. Use another loss_weighting, or train in one process."
                )
            prepared = _prepare_inputs(net.module_, data, valid)
            if self.ema_half_life is None:
                net.weight_average = None
            elif net.weight_average is None:
                net.weight_average = _WeightAverage(self.ema_half_life)
            else:  # continued training: the average goes on, at the current half-life
                net.weight_average.half_life = self.ema_half_life
            try:
                net.partial_fit(data, None)
            finally:
                net.distributed_, net._synchronized = None, ()
                if net.weight_average is not None:
                    net.weight_average.finish(net.module_)
                if prepared:
                    net.module_.prepared_inputs = False
        # Keep no reference to the training data in the fitted model.
        net.train_split = None
        net.module_.eval()
        self._report(net, start, epochs)
        return net

    def _report(self, net, start, epochs):
        """Warn about how training ended (and drop an epoch cut short)."""
        history = net.history
        if history and "train_loss" not in history[-1]:
            history.pop()  # interrupted within an epoch: its weights are kept
            interrupted = True
        else:
            interrupted = len(history) - start < (self.max_epochs if epochs is None else epochs)
        callbacks = dict(net.callbacks_)
        finite, stop = callbacks["finite"], callbacks.get("stopping")
        name = type(self).__name__
        if finite.restored_epoch_ is not None:
            warnings.warn(
                f"{name}: the loss was not finite at epoch {finite.restored_epoch_}; "
                f"training stopped and the weights of epoch {finite.restored_epoch_ - 1} "
                "were restored (nan_loss='restore').",
                RuntimeWarning,
                stacklevel=3,
            )
        elif stop is not None and stop.misses_ >= stop.patience:
            pass  # converged (or stopped early)
        elif interrupted:
            method = "fit" if epochs is None else "partial_fit"
            warnings.warn(
                f"{name}: {method} was interrupted after {len(history)} epochs; the model "
                "keeps the weights reached so far.",
                UserWarning,
                stacklevel=3,
            )
        elif epochs is not None:
            pass  # partial_fit: one epoch, no convergence check
        else:
            warnings.warn(
                f"{name} reached max_epochs={self.max_epochs} while the {stop.monitor} "
                f"was still improving (by more than tol={self.tol} within "
                f"n_iter_no_change={self.n_iter_no_change} epochs). Increase max_epochs "
                "or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )

