"""The estimator machinery shared by every architecture.

An estimator validates its inputs, encodes the targets per task, builds a
pure PyTorch network from :mod:`sklearn_mmoe.nn` and trains it with a skorch
``NeuralNet`` that it holds as the fitted attribute ``net_`` (composition:
the estimator itself is a plain scikit-learn estimator, not a skorch net).
"""

import contextlib
import copy
import inspect
import os
import re
import sys
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MultiOutputMixin,
    RegressorMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    RealNotInt,
    StrOptions,
)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, ProgressBar
from skorch.helper import predefined_split
from skorch.history import History

from . import _inputs, _random
from ._data import (
    FLOAT32_RANGE_MESSAGE,
    BatchIterator,
    MultiTaskDataset,
    as_float32_rows,
    predict_logits,
)
from ._labels import nullable_as_object
from ._targets import class_weight_factors, classification_task, decode, encode_targets, joint
from ._version import __version__
from .metrics import _METRICS, masked_accuracy_score, masked_r2_score
from .nn import ACTIVATIONS, EmbeddedNetwork, MaskedMultiTaskLoss
from .weighting import _NAMES as _WEIGHTING_NAMES
from .weighting import LossWeighting, make_weighting

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


_SIZES = ["array-like", Interval(Integral, 1, None, closed="left")]
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Task weights above this make float32 losses overflow (a loss of 1e20 at most).
_MAX_TASK_WEIGHT = 1e18
_X_CHECKS = dict(accept_sparse="csr", dtype=(np.float32, np.float64))


@contextlib.contextmanager
def _argument(name):
    """Name the argument in scikit-learn's generic validation messages.

    ``check_array`` and friends say e.g. "Expected 2D array, got 1D array"
    without saying which argument; prefix the name unless it is there.
    """
    try:
        yield
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if re.search(rf"\b{re.escape(name)}\b", message):
            raise
        raise type(exc)(f"{name}: {message}") from exc


def _validate_X(estimator, X, reset, check_range=True):
    """Validated 2-D float input; values must also fit in float32.

    ``check_range=False`` leaves the float32 range check of a dense float64
    array to the consumer (inference casts and checks it chunk by chunk).
    """
    with _argument("X"):
        X = validate_data(estimator, X, reset=reset, **_X_CHECKS)
    if not check_range and not sp.issparse(X):
        return X
    values = X.data if sp.issparse(X) else X
    # max and min, not abs().max(): no temporary copy of X (validate_data has
    # already rejected NaN and infinity).
    if X.dtype == np.float64 and values.size and (
        values.max() > _FLOAT32_MAX or values.min() < -_FLOAT32_MAX
    ):
        raise ValueError(FLOAT32_RANGE_MESSAGE)
    return X


def _sample_weight_per_task(sample_weight, X, n_tasks):
    """Validated ``sample_weight`` as ``(n_samples, n_tasks)`` float64.

    1-D (or a scalar, or None) is one weight per row, in every task; 2-D is a
    weight per row and task.
    """
    n_samples = X.shape[0]
    with _argument("sample_weight"):  # np.asarray: np.ndim calls __array_function__
        ndim = 0 if sample_weight is None else np.asarray(sample_weight).ndim
    if ndim < 2:
        with _argument("sample_weight"):
            weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        return np.broadcast_to(weight[:, None], (n_samples, n_tasks))
    expected = f"({n_samples},) or ({n_samples}, {n_tasks})"
    if ndim > 2:
        raise ValueError(
            f"sample_weight must have shape {expected} (a weight per row, or per row "
            f"and task), got {np.asarray(sample_weight).shape}."
        )
    with _argument("sample_weight"):
        weight = check_array(sample_weight, input_name="sample_weight", dtype=np.float64)
    if weight.shape != (n_samples, n_tasks):
        raise ValueError(
            f"sample_weight must have shape {expected} (a weight per row, or per row "
            f"and task), got {weight.shape}."
        )
    if (weight < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    return weight


def _with_parameter(init, name, default):
    """``init`` with one more keyword-only parameter, ``name``, after the others.

    The new ``__init__`` stores every argument (as ``init`` does, by the
    convention of :func:`_store_params`), and its signature, which
    scikit-learn reads for ``get_params``, lists ``init``'s parameters and
    ``name``.
    """
    signature = inspect.signature(init)
    extra = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
    signature = signature.replace(parameters=[*signature.parameters.values(), extra])

    def __init__(self, **params):
        arguments = signature.bind(self, **params)
        arguments.apply_defaults()
        _store_params(self, arguments.arguments)

    __init__.__signature__ = signature
    return __init__


def _store_params(estimator, arguments):
    """Store every ``__init__`` argument untouched, as scikit-learn requires.

    Called as ``_store_params(self, locals())`` from an explicit ``__init__``
    signature, so that the signature stays the single list of parameters.
    """
    for name in type(estimator)._get_param_names():
        setattr(estimator, name, arguments[name])


def _check_sizes(value, name, allow_empty):
    """Layer sizes as a tuple of positive ints, or a ValueError naming ``name``."""
    sizes = (value,) if isinstance(value, Integral) else tuple(value)
    if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in sizes):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}.")
    if any(s < 1 for s in sizes) or (not sizes and not allow_empty):
        need = "" if allow_empty else "a non-empty "
        raise ValueError(f"{name} must be {need}sequence of positive ints, got {value!r}.")
    return tuple(int(s) for s in sizes)


_BATCH_HOOKS = ("on_batch_begin", "on_grad_computed", "on_batch_end")


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

    def get_loss(self, y_pred, y_true, X=None, training=False):
        target, weight = y_true
        return self.criterion_(y_pred, target, weight)

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
        losses = self.criterion_.per_task(y_pred, target, weight)
        self.criterion_.weighting.backward(losses, self.module_)
        penalty = self.module_.penalty()
        if penalty is not None:  # e.g. L2-Constrained's coupling; its gradient adds up
            penalty.backward()
        loss = self.criterion_.monitored(y_pred, target, weight, losses)
        return {"loss": loss, "y_pred": y_pred, "task_losses": losses.detach()}

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
        if losses:
            for row, value in zip(rows, torch.stack(losses).tolist()):
                row[prefix + "_loss"] = value
            if training:
                self.history.record("train_task_loss", torch.stack(kept).mean(0).tolist())
            else:
                self._record_validation(kept)
        self.history.record(prefix + "_batch_count", len(losses))

    #: ``(logits, target, weight)`` numpy arrays -> per-task validation
    #: scores (greater is better), or None to score by the loss alone.
    validation_scorer = None

    def _record_validation(self, kept):
        """Per-task losses (and scores) of the whole validation set, in the history."""
        logits = torch.cat([y_pred for y_pred, _ in kept])
        target = torch.cat([labels[0] for _, labels in kept])
        weight = torch.cat([labels[1] for _, labels in kept])
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


def _curve(history, key):
    """The per-task values of ``key`` over the epochs that have it: (n_epochs, n_tasks)."""
    rows = [row[key] for row in history if key in row]
    return np.array(rows, dtype=np.float64) if rows else np.zeros((0, 0))


def _numpy_tree(obj):
    """Tensors -> numpy arrays, recursively (dict keys become strings)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {str(k): _numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_numpy_tree(v) for v in obj)
    return obj


def _torch_tree(obj, device):
    """Inverse of _numpy_tree: numpy arrays -> tensors, integer-like keys -> ints."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj)).to(device)
    if isinstance(obj, dict):
        return {(int(k) if k.isdigit() else k): _torch_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_tree(v, device) for v in obj)
    return obj


def _plain_row(row):
    """A skorch history row as plain data (numbers, strings, lists, dicts)."""
    return {
        k: [dict(b) for b in v] if k == "batches" else (v.tolist() if hasattr(v, "tolist") else v)
        for k, v in row.items()
    }


def _epoch_seed(seed, epoch):
    """A seed that depends only on (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class _EpochSeed(Callback):
    """Reseed the fit's generators at each epoch from (seed, epoch).

    Dropout and any other randomness of epoch ``e`` then depend only on the
    seed and ``e``: a fit resumed at an epoch (warm start, a reloaded model)
    draws what an uninterrupted fit would have drawn. The generators are the
    fit's own (see :func:`_seeded`), never torch's global one.
    """

    def __init__(self, seed):
        self.seed = seed

    def on_epoch_begin(self, net, **kwargs):
        seed = _epoch_seed(self.seed, len(net.history))
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


#: With ``early_stopping="auto"``, early stopping is on above this many
#: training rows (HistGradientBoosting's rule).
AUTO_EARLY_STOPPING_ROWS = 10_000
# numeric_encoding="periodic": frequencies, embedding width and initial frequency scale
PERIODIC = (16, 16, 3.0)
# numeric_encoding="auto" embeds at most this many numeric columns periodically
AUTO_PERIODIC_COLUMNS = 64


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


@contextlib.contextmanager
def _seeded(seed, device):
    """Run the block with generators of its own for the CPU and ``device``, seeded.

    Initialisation, dropout and the other draws of :mod:`sklearn_mmoe.nn` in
    the block, in this thread, come from them (:mod:`sklearn_mmoe._random`):
    torch's global generator is neither read nor changed, so a fit depends
    only on its seed whatever runs beside it in other threads.
    """
    owned = [torch.Generator().manual_seed(seed)]
    if device.type != "cpu":
        owned.append(torch.Generator(device=device).manual_seed(seed))
    with _random.generators(*owned):
        yield


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


# Training holds a parameter, its gradient and two optimizer moments (Adam).
_TRAINING_COPIES = 4


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


class _BaseMultiTask(MultiOutputMixin, BaseEstimator):
    """Fit/predict machinery; subclasses add the architecture and task kind.

    An architecture subclass defines ``__init__`` (storing every parameter),
    ``_module_class`` and ``_module_kwargs()``; a task-kind mixin defines
    ``_y_check_params`` (how y is validated), ``_task_kinds(Y)``
    ("classification" or "regression" per column) and
    ``_task_attributes(tasks)`` (the public fitted attributes derived from the
    tasks, e.g. ``classes_``), plus the predict methods. Per-task encoding
    and decoding live in :mod:`sklearn_mmoe._targets`.
    """

    _parameter_constraints: dict = {
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), callable],
        "optimizer_kwargs": [dict, None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "scoring": [StrOptions({"loss", *_METRICS})],
        "categorical_features": [StrOptions({"from_dtype"}), "array-like", None],
        "embedding_dim": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), dict],
        "min_frequency": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
            None,
        ],
        "max_categories": [Interval(Integral, 2, None, closed="left"), None],
        "numeric_encoding": [StrOptions({"auto", "quantile", "piecewise_linear", "periodic"}), None],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "task_weights": ["array-like", None],
        "loss_weighting": [None, StrOptions(set(_WEIGHTING_NAMES)), LossWeighting],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "nan_loss": [StrOptions({"raise", "restore"})],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``X`` and the multi-task targets ``y``.

        With ``warm_start=True`` and a fitted model, training continues from
        the fitted weights and optimizer state for ``max_epochs`` more epochs,
        keeping the tasks, classes and target scaling of the first fit.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training inputs. Sparse inputs are densified one batch at a time.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            Targets, one column per task. A missing label (NaN, or ``None`` /
            ``pd.NA`` in object or nullable columns) means the row is outside
            that task's sample space: it is left out of that task's loss.
        sample_weight : array-like of shape (n_samples,) or (n_samples, n_tasks), \
default=None
            Non-negative weight of each row in every task's loss, or (2-D) of
            each row in each task's loss. Multiplied by ``class_weight`` where
            the estimator has one.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._transaction(X, y, sample_weight, epochs=None, classes=None)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Train one epoch on ``(X, y)``, continuing from the fitted model if any.

        The first call sets up the tasks from ``y`` (or from ``classes``); later
        calls keep them, so their labels must be among the first call's
        classes. No validation split, early stopping or convergence check is
        made: each call is one pass over the data given.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            Targets, as in :meth:`fit`.
        sample_weight : array-like of shape (n_samples,) or (n_samples, n_tasks), \
default=None
            As in :meth:`fit`.
        classes : array-like or list of array-like, default=None
            Classification tasks' labels, for the first call when ``y`` does
            not show them all: an array for 1-D y, a list with one array (or
            None) per task for 2-D y. Ignored on later calls.

        Returns
        -------
        self : object
            The estimator.
        """
        return self._transaction(X, y, sample_weight, epochs=1, classes=classes)

    def _transaction(self, X, y, sample_weight, epochs, classes):
        """Fit, warm-start fit or partial_fit; on any failure, nothing changes.

        The estimator's attributes are restored, and a net trained in place
        (continued training) gets back its module, loss, optimizer, callbacks
        and history as they were: predictions stay bit-identical. A
        KeyboardInterrupt within training is not a failure: skorch stops
        there and the model keeps what was trained (``_report`` warns).
        """
        previous = dict(vars(self))
        snapshot = _NetSnapshot(self.net_) if self._resuming(epochs) else None
        try:
            return self._fit(X, y, sample_weight, epochs, classes)
        except BaseException:
            vars(self).clear()
            vars(self).update(previous)
            if snapshot is not None:
                snapshot.restore()
            raise

    def _resuming(self, epochs):
        """Whether this call continues training the fitted net (in place)."""
        return hasattr(self, "net_") and (epochs is not None or self.warm_start)

    def _fit(self, X, y, sample_weight, epochs, classes):
        self._check_int_parameters()
        resume = self._resuming(epochs)
        X = self._encode_X(X, reset=not resume)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        with _argument("y"):
            y = check_array(
                nullable_as_object(y), input_name="y", ensure_2d=False, ensure_all_finite="allow-nan",
                **self._y_check_params,
            )
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] == 0):
            raise ValueError(f"y must have shape (n_samples,) or (n_samples, n_tasks), got {y.shape}.")
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y has {y.shape[0]} rows but X has {X.shape[0]}: inconsistent numbers of samples."
            )
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        n_tasks = Y.shape[1]
        if resume and (n_tasks != self.n_tasks_ or (y.ndim == 1) != self._y_is_1d):
            raise ValueError(
                f"y has shape {y.shape}, but the model was fitted on "
                f"{'1-D y' if self._y_is_1d else f'{self.n_tasks_} tasks'}."
            )
        sample_weight = _sample_weight_per_task(sample_weight, X, n_tasks)
        if resume:
            kinds, known = [t.kind for t in self._tasks], self._tasks
        else:
            kinds = self._task_kinds(Y)
            known = self._tasks_from_classes(classes, kinds) if classes is not None else None
        conditions = self._conditional_tasks(n_tasks)
        loss_options = self._loss_options(conditions)
        if resume and loss_options != self._fitted_loss_options():
            raise ValueError(
                f"The loss options {loss_options} differ from those of the fitted model "
                f"({self._fitted_loss_options()}); warm_start and partial_fit continue "
                "with the fitted loss. Refit with warm_start=False to change them."
            )
        targets, observed, tasks = encode_targets(
            Y, kinds, sample_weight, conditions, tasks=known
        )
        class_weight = self._class_weight(tasks, partial=epochs is not None)
        if any(spec is not None for spec in class_weight):
            sample_weight = sample_weight * class_weight_factors(
                class_weight, targets, observed, tasks, sample_weight
            )
        weight = self._entry_weights(observed, sample_weight)
        if not resume:
            # The input quantiles weigh a row by its largest weight over the tasks
            # (labels, sample and class weights): a zero weight in one task is a
            # missing label there, not a missing row; a row without any label
            # counts nowhere, as in the loss.
            self._fit_numeric_encoding(X, (observed * sample_weight).max(axis=1))
        task_weights = self._check_task_weights(n_tasks)
        if resume:
            self._check_unchanged(self.net_, task_weights, epochs)
            seeds, net = self._seeds, self.net_
        else:
            rng = check_random_state(self.random_state)
            seeds, net = tuple(int(s) for s in rng.randint(np.iinfo(np.int32).max, size=2)), None
        net = self._train(net, X, targets, weight, tasks, task_weights, seeds, epochs, loss_options)

        self._y_is_1d = y.ndim == 1
        self._loss = loss_options
        self.n_tasks_ = n_tasks
        self._tasks = tasks
        self._seeds = seeds
        for name, value in self._task_attributes(tasks).items():
            setattr(self, name, value)
        self.net_ = net
        self._set_curves(net.history)
        return self

    def _uses_early_stopping(self, n_samples):
        if self.early_stopping == "auto":
            return n_samples > AUTO_EARLY_STOPPING_ROWS
        return bool(self.early_stopping)

    def _encode_X(self, X, reset):
        """Validated ``X`` as the network reads it (see :mod:`sklearn_mmoe._inputs`).

        ``reset=True`` (a new fit) first learns what the columns are: which
        are categorical and their vocabularies, and the numeric encoding.
        """
        if reset:
            with _argument("categorical_features"):
                self.categorical_features_ = _inputs.resolve_categorical(
                    self.categorical_features, X
                )
        if len(getattr(self, "categorical_features_", ())) == 0:
            # predict: inference_chunks casts and range-checks float64 per chunk
            X = _validate_X(self, X, reset, check_range=reset)
            if reset:  # no categorical column: the same attributes, empty
                self.categories_, self.n_categories_, self.embedding_dims_ = [], [], []
        else:
            with _argument("X"):
                X = _inputs.encode_frame(self, X, reset)
        return X

    def _fit_numeric_encoding(self, X, sample_weight):
        """Choose the numeric encoding and learn its bin edges (a new fit only)."""
        n_numeric = X.shape[1] - len(self.categorical_features_)
        encoding = self.numeric_encoding
        if encoding == "auto":
            encoding = None if sp.issparse(X) else "periodic"
        if not n_numeric:
            encoding = None
        self._bin_edges = self._quantiles = None
        numeric = X[:, :n_numeric]
        if encoding == "piecewise_linear":
            self._bin_edges = _inputs.piecewise_linear_edges(numeric, self.n_bins, sample_weight)
        elif encoding in ("quantile", "periodic"):
            self._quantiles = _inputs.normal_quantiles(numeric, sample_weight=sample_weight)
            n_encoded = sum(q is not None for q in self._quantiles)
            if self.numeric_encoding == "auto" and n_encoded > AUTO_PERIODIC_COLUMNS:
                encoding = "quantile"
        self.numeric_encoding_ = encoding

    def _embedding_kwargs(self):
        """Keyword arguments of the input embedding, or None when there is none."""
        categorical = getattr(self, "categorical_features_", ())
        edges = getattr(self, "_bin_edges", None)
        quantiles = getattr(self, "_quantiles", None)
        if len(categorical) == 0 and edges is None and quantiles is None:
            return None
        return dict(
            n_numeric=self.n_features_in_ - len(categorical),
            cardinalities=list(self.n_categories_),
            embedding_dims=list(self.embedding_dims_),
            bin_edges=None if edges is None else [e.tolist() for e in edges],
            periodic=PERIODIC if self.numeric_encoding_ == "periodic" and quantiles else None,
            quantiles=None if quantiles is None else [
                None if q is None else (q[0].tolist(), q[1].tolist()) for q in quantiles
            ],
        )

    def _check_unchanged(self, net, task_weights, epochs):
        """Continued training keeps the network: a changed setting of it is an error.

        The architecture, the loss (task weights, loss weighting), the
        optimizer and the device are those of the fitted net; silently
        keeping them would ignore the user's change. (The learning rate,
        weight decay, batch size, epochs, early stopping and callbacks are
        applied.)
        """
        fitted = dict(net.get_params_for("module"))
        # behind an input embedding (EmbeddedNetwork), the architecture is "network"
        architecture = fitted.pop("network", net.module)
        fitted = {k: v for k, v in fitted.items() if k not in ("n_features", "n_outputs", "embedding")}
        current = self._module_kwargs()
        changes = [(k, fitted[k], current.get(k)) for k in fitted if fitted[k] != current.get(k)]
        if architecture is not self._module_class:
            changes.insert(0, ("architecture", architecture.__name__, self._module_class.__name__))
        if not np.array_equal(net.criterion__task_weights, task_weights):
            changes.append(("task_weights", net.criterion__task_weights.tolist(), task_weights.tolist()))
        old, new = make_weighting(net.criterion__weighting), make_weighting(self.loss_weighting)
        if type(old) is not type(new) or vars(old) != vars(new):
            changes.append(("loss_weighting", net.criterion__weighting, self.loss_weighting))
        if net.optimizer is not self._optimizer_class():
            changes.append(("optimizer", net.optimizer.__name__, self._optimizer_class().__name__))
        device = torch.device(net.device)
        fitted_kwargs = {
            k: v for k, v in net.get_params_for("optimizer").items() if k != "weight_decay"
        }
        if fitted_kwargs != self._optimizer_kwargs(device):
            fitted_kwargs.pop("fused", None)  # chosen by the package, not the user
            changes.append(("optimizer_kwargs", fitted_kwargs, self.optimizer_kwargs))
        if self._check_device() != device:
            changes.append(("device", str(device), self.device))
        if changes:
            name, before, after = changes[0]
            how = "partial_fit" if epochs is not None else "warm_start=True"
            raise ValueError(
                f"{name} changed from {before!r} to {after!r} since the model was fitted, "
                f"but {how} continues the fitted network, which keeps it. Set {name} "
                "back, or fit a new network (warm_start=False)."
            )

    def _set_curves(self, history):
        """The fitted curves, from the history: per epoch, and per epoch with validation.

        The validation curves cover the epochs that held rows out (a later
        ``partial_fit`` epoch has none, and leaves them as they were).
        """
        self.n_iter_ = len(history)
        self.loss_curve_ = [row["train_loss"] for row in history]
        self.task_loss_curve_ = _curve(history, "train_task_loss")
        for name in ("validation_loss_curve_", "validation_task_loss_curve_", "validation_score_",
                     "validation_task_scores_", "best_validation_loss_", "best_epoch_"):
            vars(self).pop(name, None)
        rows = [row for row in history if "valid_loss" in row]
        if not rows:
            return
        valid = [row["valid_loss"] for row in rows]
        self.validation_loss_curve_ = valid
        self.best_validation_loss_ = min(valid)
        self.validation_task_loss_curve_ = _curve(rows, "valid_task_loss")
        if all("valid_score" in row for row in rows):
            self.validation_score_ = np.array([row["valid_score"] for row in rows])
            self.validation_task_scores_ = _curve(rows, "valid_task_score")
        else:
            self.validation_score_ = -np.asarray(valid, dtype=np.float64)
            self.validation_task_scores_ = -self.validation_task_loss_curve_
        if np.isfinite(self.validation_score_).any():
            self.best_epoch_ = int(rows[int(np.nanargmax(self.validation_score_))]["epoch"])

    def _tasks_from_classes(self, classes, kinds):
        """partial_fit's ``classes`` as tasks to encode y against (None: learn from y)."""
        per_task = [classes] if len(kinds) == 1 and np.ndim(classes[0]) == 0 else list(classes)
        if len(per_task) != len(kinds):
            raise ValueError(
                f"classes must give one array of labels per task ({len(kinds)}), got {classes!r}."
            )
        tasks = []
        for t, (kind, labels) in enumerate(zip(kinds, per_task)):
            if labels is not None and kind != "classification":
                raise ValueError(f"classes: task {t} is a regression task; pass None for it.")
            tasks.append(None if labels is None else classification_task(labels, t))
        return tasks

    def _conditional_tasks(self, n_tasks):
        """{child: parent} of conditional tasks (none unless a subclass says so)."""
        return {}

    def _class_weight(self, tasks, partial):
        """``class_weight`` as one entry per task: None, "balanced" or a dict.

        Estimators without the parameter (regressors) weigh no class.
        """
        class_weight = getattr(self, "class_weight", None)
        n_tasks = len(tasks)
        if class_weight is None:
            return [None] * n_tasks
        if isinstance(class_weight, str):  # "balanced": every classification task
            per_task = [
                class_weight if task.kind == "classification" else None for task in tasks
            ]
        elif isinstance(class_weight, dict):
            if n_tasks > 1:
                raise ValueError(
                    f"class_weight: a dict weighs the classes of one task; y has {n_tasks} "
                    "tasks, so pass a list with one entry (None, 'balanced' or a dict) "
                    "per task."
                )
            per_task = [class_weight]
        else:
            per_task = list(class_weight)
            if len(per_task) != n_tasks:
                raise ValueError(
                    f"class_weight must have one entry per task ({n_tasks}), got "
                    f"{len(per_task)}: {class_weight!r}."
                )
        for t, (spec, task) in enumerate(zip(per_task, tasks)):
            if spec is None:
                continue
            balanced = isinstance(spec, str) and spec == "balanced"
            if not (balanced or isinstance(spec, dict)):
                raise ValueError(
                    f"class_weight: the entry of task {t} must be None, 'balanced' or a "
                    f"dict {{label: weight}}, got {spec!r}."
                )
            if task.kind != "classification":
                raise ValueError(
                    f"class_weight: task {t} is a regression task; its entry must be None."
                )
            if partial and balanced:
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit: one call's "
                    "labels do not give the class frequencies of the data. Compute them "
                    "over the training labels, e.g. with sklearn.utils.class_weight."
                    "compute_class_weight('balanced', classes=..., y=...), and pass the "
                    "weights as a dict {label: weight}."
                )
        return per_task

    def _loss_options(self, conditions):
        """Validated keyword arguments of the loss beyond the tasks' (subclasses add some)."""
        return {}

    def _fitted_loss_options(self):
        # Models saved before the loss had options have none.
        return getattr(self, "_loss", {})

    def _entry_weights(self, observed, sample_weight):
        """Mask times sample weight, scaled to mean 1 over observed entries."""
        weight = observed * sample_weight
        empty = np.flatnonzero(weight.sum(axis=0) == 0)
        if empty.size:
            raise ValueError(
                f"y: task {empty[0]} has no observed label with a non-zero "
                "sample_weight (times class_weight); every task needs at least one."
            )
        # Scale to mean 1 over observed entries; divide by the maximum first so
        # that neither tiny nor huge weights overflow.
        weight /= weight.max()
        weight *= observed.sum() / weight.sum()
        return weight.astype(np.float32)

    def _check_task_weights(self, n_tasks):
        if self.task_weights is None:
            return np.ones(n_tasks)
        try:
            weights = np.asarray(self.task_weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"task_weights must be numbers, got {self.task_weights!r}: {exc}") from None
        if weights.shape != (n_tasks,):
            raise ValueError(
                f"task_weights must have one entry per task ({n_tasks}), "
                f"got shape {weights.shape}."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() == 0:
            raise ValueError(
                "task_weights must be finite and non-negative with a positive sum, "
                f"got {self.task_weights!r}."
            )
        if weights.max() > _MAX_TASK_WEIGHT:
            raise ValueError(
                f"task_weights must be at most {_MAX_TASK_WEIGHT:.0e}, got {self.task_weights!r}: "
                "the weighted losses are computed in float32 and would overflow. Only "
                "their ratios matter with adaptive optimizers such as Adam: rescale them."
            )
        return weights

    def _check_device(self):
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={self.device!r} is not a torch device: {exc}") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: only 'cpu' and 'cuda' devices are supported.")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} but CUDA is not available.")
        return device

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
        if memory is None or _TRAINING_COPIES * n_bytes <= memory:
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
            f"training needs about {_TRAINING_COPIES}x that), more than the "
            f"{memory / 2**30:.3g} GiB of memory of {device}. Its largest weight, {name} of "
            f"shape {shape}, comes from {', '.join(causes)}: reduce it."
        )

    def _check_int_parameters(self):
        """``True`` is an Integral for scikit-learn's validation, not a size."""
        for name, constraints in self._parameter_constraints.items():
            value = getattr(self, name, None)
            if isinstance(value, (bool, np.bool_)) and any(
                isinstance(c, Interval) and c.type is Integral for c in constraints
            ):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, "
                    f"got {value!r} (a bool)."
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
        if self.verbose:
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
            batch_size=self.batch_size,
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
        valid = None
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
            net.batch_size = self.batch_size
        if epochs is not None:
            # partial_fit: one plain epoch on the data given, whatever
            # early_stopping says: no validation split, no stopping rule.
            net.callbacks = [
                item for item in net.callbacks
                if not (isinstance(item, tuple) and item[0] == "stopping")
            ]
            if net.initialized_:
                net.initialize_callbacks()
        net.train_split = None if valid is None else predefined_split(valid)
        net.validation_scorer = (
            None if self.scoring == "loss" else _validation_scorer(self.scoring, tasks)
        )
        net.max_epochs = epochs or self.max_epochs
        net.iterator_train__first_epoch = start
        if not net.initialized_:
            self._check_network_size(net, device)
        with _seeded(seeds[0], device):
            if not net.initialized_:
                net.initialize()
            net.partial_fit(data, None)
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
            interrupted = len(history) - start < (epochs or self.max_epochs)
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

    # ---------------------------------------------------------- persistence
    def __getstate__(self):
        """Portable state: no torch objects, only numpy arrays and plain data.

        The network, loss and optimizer are saved as numpy state dicts and the
        history as plain lists, so a model fitted on a GPU loads on a CPU-only
        machine, and ``skops.io`` can persist it without pickled code.
        """
        # a copy: BaseEstimator returns the instance's own __dict__ here
        state = dict(super().__getstate__())
        net = state.pop("net_", None)
        if net is not None:
            state["_net_state"] = {
                "device": str(net.device),
                "module": _numpy_tree(net.module_.state_dict()),
                "criterion": _numpy_tree(net.criterion_.state_dict()),
                "optimizer": _numpy_tree(net.optimizer_.state_dict()),
                "history": [_plain_row(row) for row in net.history],
            }
        state["_sklearn_mmoe_version"] = __version__
        return state

    def __setstate__(self, state):
        state = dict(state)
        version = state.pop("_sklearn_mmoe_version", None)
        net_state = state.pop("_net_state", None)
        if version != __version__:
            warnings.warn(
                f"This {type(self).__name__} was saved with sklearn-mmoe {version} and is "
                f"loaded with {__version__}; it may not work or give other results. "
                "Refit it with this version if you can.",
                UserWarning,
                stacklevel=2,
            )
        super().__setstate__(state)
        if net_state is not None:
            self.net_ = self._restore_net(net_state)

    def _restore_net(self, state):
        device = torch.device(state["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(
                f"{type(self).__name__} was fitted on {device}, but CUDA is not available "
                "here: loading it on the CPU.",
                UserWarning,
                stacklevel=3,
            )
            device = torch.device("cpu")
        net = self._make_net(
            self.n_features_in_, self._tasks, self._check_task_weights(self.n_tasks_),
            self._seeds, device, self._fitted_loss_options(),
        )
        self._check_stored_state(net, state, device)
        with _seeded(0, device):  # initialisation draws, overwritten: not the user's
            net.initialize()
        net.module_.load_state_dict(_torch_tree(state["module"], device))
        net.criterion_.load_state_dict(_torch_tree(state["criterion"], device))
        net.optimizer_.load_state_dict(_torch_tree(state["optimizer"], device))
        net.history = History([dict(row) for row in state["history"]])
        net.module_.eval()
        return net

    def _check_stored_state(self, net, state, device):
        """The stored weights must have the shapes that the parameters give.

        A loaded file (skops, pickle) holds the parameters and the weights
        separately. Before anything is allocated from the parameters, the
        network they describe is built on the meta device and its shapes are
        compared with the stored arrays, whose sizes the file itself bounds: a
        crafted parameter (a width of 1e9) is an error, not an allocation.
        """
        name = type(self).__name__
        try:
            expected = {k: tuple(v.shape) for k, v in _meta_module(net).state_dict().items()}
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"This {name}'s stored parameters do not build a network: {exc}") from None
        stored = state["module"]
        if not isinstance(stored, dict) or set(stored) != set(expected):
            raise ValueError(
                f"This {name}'s stored weights do not match its parameters: expected the "
                f"tensors {sorted(expected)}."
            )
        for key, shape in expected.items():
            array = stored[key]
            if not isinstance(array, np.ndarray) or array.shape != shape:
                raise ValueError(
                    f"This {name}'s stored weight {key} has shape "
                    f"{getattr(array, 'shape', type(array).__name__)}, but its parameters "
                    f"give {shape}: the file is damaged or was not written by sklearn-mmoe."
                )
        self._check_network_size(net, device)

    # -------------------------------------------------------------- predict
    def _logits(self, X):
        """Validated ``X`` -> float32 logits ``(n_samples, n_tasks, n_out)``."""
        check_is_fitted(self)
        X = self._encode_X(X, reset=False)
        return predict_logits(self.net_.module_, X, self.net_.device)

    def _outputs(self, X, log=False):
        """Per-task outputs: probabilities (or their logs) or values (regression)."""
        return decode(self._logits(X), self._tasks, log=log)

    def _probas(self, outputs):
        """Per-task outputs as ``predict_proba`` returns them."""
        return outputs

    def _labels(self, outputs):
        """Per-task predictions: labels for classification tasks, values otherwise."""
        return [
            out if task.kind == "regression" else task.classes[out.argmax(axis=1)]
            for task, out in zip(self._tasks, outputs)
        ]

    def _as_y_shape(self, columns):
        """Per-task 1-D outputs -> y's shape: (n,) for 1-D y, else (n, n_tasks)."""
        if self._y_is_1d:
            return columns[0]
        if len({c.dtype for c in columns}) == 1:
            return np.column_stack(columns)
        out = np.empty((columns[0].shape[0], len(columns)), dtype=object)
        for t, column in enumerate(columns):
            out[:, t] = column
        return out

    def _scoring_view(self, y):
        """``y`` as scored: a conditional task counts where its parent is positive.

        A conditional task's label (conversion) only exists where its parent
        (click) is positive; a 0 given on other rows is not a label of that
        task, so it is masked for scoring.
        """
        check_is_fitted(self)
        parents = {t: task.parent for t, task in enumerate(self._tasks) if task.parent is not None}
        if not parents:
            return y
        Y = np.array(y, dtype=object)
        for child, parent in parents.items():
            column = Y[:, parent]
            observed = ~np.asarray(pd.isna(column), dtype=bool)
            positive = np.zeros(len(column), dtype=bool)
            positive[observed] = column[observed] == self._tasks[parent].classes[1]
            Y[~positive, child] = None
        return Y

    def _unwrap(self, per_task):
        """A per-task list as returned to the user: unwrapped for 1-D y."""
        return per_task[0] if self._y_is_1d else per_task


class _LogProbaMixin:
    """``predict_log_proba``, the logarithm of ``predict_proba`` from the logits."""

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities of every classification task.

        Computed from the network's logits (log-sigmoid for a binary task,
        log-softmax for a multiclass one): it equals ``np.log(predict_proba(X))``
        up to rounding, and stays finite where a probability underflows to 0
        (below about 1e-308).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes) or list
            The layout of :meth:`predict_proba`: one array for 1-D y, else a
            list with one entry per task.
        """
        return self._unwrap(self._probas(self._outputs(X, log=True)))


_CLASS_WEIGHT_CONSTRAINT = [StrOptions({"balanced"}), dict, list, None]


class _MultiTaskClassifierMixin(_LogProbaMixin, ClassifierMixin):
    """Every task is a classification task: ``predict_proba`` and ``predict``.

    A classifier takes its architecture's parameters and ``class_weight``:
    its ``__init__`` is the architecture's, with ``class_weight`` added at the
    end of the signature, so the architecture's signature stays the one list
    of the parameters that classifiers and regressors share.
    """

    _y_check_params = dict(dtype=None)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls) or "class_weight" in inspect.signature(cls.__init__).parameters:
            return
        cls.__init__ = _with_parameter(cls.__init__, "class_weight", None)
        cls._parameter_constraints = {
            **cls._parameter_constraints, "class_weight": _CLASS_WEIGHT_CONSTRAINT
        }

    def _task_kinds(self, Y):
        return ["classification"] * Y.shape[1]

    def _task_attributes(self, tasks):
        return {"classes_": self._unwrap([task.classes for task in tasks])}

    def predict_proba(self, X):
        """Class probabilities of every task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or list of ndarray
            For 1-D y, one array with columns in the order of ``classes_``.
            For 2-D y, a list with one ``(n_samples, n_classes_t)`` array per
            task, columns in the order of ``classes_[t]``.
        """
        return self._unwrap(self._outputs(X))

    def predict(self, X):
        """Most probable label of every task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_tasks)
            Predicted labels (the original label values), with y's shape. An
            object array when the tasks' labels have different dtypes.
        """
        return self._as_y_shape(self._labels(self._outputs(X)))

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of the accuracy on each task's observed labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            True labels; missing labels (NaN, None, pd.NA) are ignored.
        sample_weight : array-like of shape (n_samples,) or (n_samples, n_tasks), \
default=None
            Sample weights, per row or per row and task.

        Returns
        -------
        score : float
            Mean accuracy over tasks (for 1-D y, the accuracy).
        """
        return masked_accuracy_score(
            self._scoring_view(y), self.predict(X), sample_weight=sample_weight
        )


class _MultiTaskRegressorMixin(RegressorMixin):
    """Every task is a regression task: ``predict``."""

    # dtype=None: object columns with None / pd.NA are converted per task.
    _y_check_params = dict(dtype=None)

    def _task_kinds(self, Y):
        return ["regression"] * Y.shape[1]

    def _task_attributes(self, tasks):
        return {}

    def predict(self, X):
        """Predicted targets of every task.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_tasks)
            Float64 predictions with y's shape.
        """
        return self._as_y_shape(self._outputs(X))

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of R^2 on each task's observed targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            True targets; NaN marks a missing target, which is ignored.
        sample_weight : array-like of shape (n_samples,) or (n_samples, n_tasks), \
default=None
            Sample weights, per row or per row and task.

        Returns
        -------
        score : float
            Mean R^2 over tasks (for 1-D y, the R^2).
        """
        return masked_r2_score(y, self.predict(X), sample_weight=sample_weight)
