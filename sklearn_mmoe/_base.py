"""The estimator machinery shared by every architecture.

An estimator validates its inputs, encodes the targets per task, builds a
pure PyTorch network from :mod:`sklearn_mmoe.nn` and trains it with a skorch
``NeuralNet`` that it holds as the fitted attribute ``net_`` (composition:
the estimator itself is a plain scikit-learn estimator, not a skorch net).
"""

import contextlib
import copy
import inspect
import re
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
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.helper import predefined_split
from skorch.history import History

from ._data import BatchIterator, MultiTaskDataset, as_float32_rows, predict_logits
from ._targets import classification_task, decode, encode_targets
from ._version import __version__
from .metrics import masked_accuracy_score, masked_r2_score
from .nn import ACTIVATIONS, MaskedMultiTaskLoss
from .weighting import _NAMES as _WEIGHTING_NAMES
from .weighting import LossWeighting

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


def _validate_X(estimator, X, reset):
    """Validated 2-D float input; values must also fit in float32."""
    with _argument("X"):
        X = validate_data(estimator, X, reset=reset, **_X_CHECKS)
    values = X.data if sp.issparse(X) else X
    # max and min, not abs().max(): no temporary copy of X (validate_data has
    # already rejected NaN and infinity).
    if X.dtype == np.float64 and values.size and (
        values.max() > _FLOAT32_MAX or values.min() < -_FLOAT32_MAX
    ):
        raise ValueError(
            f"X contains values beyond the float32 range (|x| > {_FLOAT32_MAX:.3g}), "
            "which the network computes in; rescale X."
        )
    return X


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
        return {"loss": loss, "y_pred": y_pred}

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
        losses, rows = [], []
        batches = self.history[-1]["batches"]
        self._batch_hooks = self._listening_hooks()
        try:
            for batch in iterator:
                self.notify("on_batch_begin", batch=batch, training=training)
                step = step_fn(batch, **fit_params)
                losses.append(step["loss"].detach())
                rows.append(batches[-1])
                self.history.record_batch(prefix + "_batch_size", len(batch[0]))
                self.notify("on_batch_end", batch=batch, training=training, **step)
        finally:
            self._batch_hooks = None
        if losses:
            for row, value in zip(rows, torch.stack(losses).tolist()):
                row[prefix + "_loss"] = value
        self.history.record(prefix + "_batch_count", len(losses))


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
    """Seed torch's generator at each epoch from (seed, epoch).

    Dropout and any other randomness of epoch ``e`` then depend only on the
    seed and ``e``: a fit resumed at an epoch (warm start, a reloaded model)
    draws what an uninterrupted fit would have drawn.
    """

    def __init__(self, seed):
        self.seed = seed

    def on_epoch_begin(self, net, **kwargs):
        seed = _epoch_seed(self.seed, len(net.history))
        torch.default_generator.manual_seed(seed)
        if torch.device(net.device).type == "cuda":
            torch.cuda.manual_seed(seed)


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


class _EpochWeights(Callback):
    """Record the task weights an epoch used, then let the strategy update them."""

    def on_epoch_end(self, net, **kwargs):
        weighting = net.criterion_.weighting
        net.history.record("task_weights", weighting.current_weights().tolist())
        weighting.end_epoch(len(net.history))


@contextlib.contextmanager
def _seeded(seed, device):
    """Seed torch's generators for ``device`` and restore them afterwards."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else [], device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed(seed)
        yield


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
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
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
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in every task's loss.

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
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in every task's loss.
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

    def _transaction(self, *args, **kwargs):
        previous = dict(vars(self))
        try:
            return self._fit(*args, **kwargs)
        except BaseException:
            # Bad input or a failed fit leaves a fitted model as it was.
            vars(self).clear()
            vars(self).update(previous)
            raise

    def _fit(self, X, y, sample_weight, epochs, classes):
        resume = hasattr(self, "net_") and (epochs is not None or self.warm_start)
        X = _validate_X(self, X, reset=not resume)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        with _argument("y"):
            y = check_array(
                y, input_name="y", ensure_2d=False, ensure_all_finite="allow-nan",
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
        with _argument("sample_weight"):
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
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
        weight = self._entry_weights(observed, sample_weight)
        task_weights = self._check_task_weights(n_tasks)
        if resume:
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

    def _set_curves(self, history):
        self.n_iter_ = len(history)
        self.loss_curve_ = [row["train_loss"] for row in history]
        if self.early_stopping:
            valid = [row["valid_loss"] for row in history if "valid_loss" in row]
            self.validation_loss_curve_ = valid
            self.best_validation_loss_ = min(valid) if valid else np.nan

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

    def _loss_options(self, conditions):
        """Validated keyword arguments of the loss beyond the tasks' (subclasses add some)."""
        return {}

    def _fitted_loss_options(self):
        # Models saved before the loss had options have none.
        return getattr(self, "_loss", {})

    def _entry_weights(self, observed, sample_weight):
        """Mask times sample weight, scaled to mean 1 over observed entries."""
        weight = observed * sample_weight[:, None]
        empty = np.flatnonzero(weight.sum(axis=0) == 0)
        if empty.size:
            raise ValueError(
                f"y: task {empty[0]} has no observed label with a non-zero "
                "sample_weight; every task needs at least one."
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

    def _optimizer_class(self):
        if isinstance(self.optimizer, str):
            return OPTIMIZERS[self.optimizer]
        if not (isinstance(self.optimizer, type) and issubclass(self.optimizer, torch.optim.Optimizer)):
            raise TypeError(
                "optimizer must be one of "
                f"{sorted(OPTIMIZERS)} or a torch.optim.Optimizer subclass, "
                f"got {self.optimizer!r}."
            )
        return self.optimizer

    def _callbacks(self, seed):
        if self.early_stopping:
            monitor, load_best = "valid_loss", True
        else:
            monitor, load_best = "train_loss", False
        stop = EarlyStopping(
            monitor=monitor,
            patience=self.n_iter_no_change,
            threshold=self.tol,
            threshold_mode="abs",
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
        return own + copy.deepcopy(list(self.callbacks or []))

    def _optimizer_kwargs(self, device):
        kwargs = dict(self.optimizer_kwargs or {})
        reserved = sorted({"lr", "weight_decay", "params"} & set(kwargs))
        if reserved:
            raise ValueError(
                f"optimizer_kwargs must not set {reserved}: use the learning_rate and "
                "weight_decay parameters."
            )
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
        return _TrainingNet(
            module=self._module_class,
            **{f"module__{k}": v for k, v in self._module_kwargs().items()},
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
            verbose=self.verbose,
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
        if self.early_stopping and epochs is None:
            n = len(data)
            n_valid = int(round(n * self.validation_fraction))
            if n_valid < 1 or n_valid >= n:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no "
                    f"training or no validation row out of {n} samples."
                )
            rng = np.random.RandomState(seeds[1])
            order = torch.from_numpy(rng.permutation(n))
            valid, data = data.subset(order[:n_valid]), data.subset(order[n_valid:])

        if net is None:
            net = self._make_net(X.shape[1], tasks, task_weights, seeds, device, loss_options)
        else:  # continue with the current hyper-parameters
            net.callbacks = self._callbacks(seeds[0])
            net.initialize_callbacks()
            for group in net.optimizer_.param_groups:
                group.update(lr=self.learning_rate, weight_decay=self.weight_decay)
        net.train_split = None if valid is None else predefined_split(valid)
        net.max_epochs = epochs or self.max_epochs
        net.iterator_train__first_epoch = start
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
        finite, stop = callbacks["finite"], callbacks["stopping"]
        name = type(self).__name__
        if finite.restored_epoch_ is not None:
            warnings.warn(
                f"{name}: the loss was not finite at epoch {finite.restored_epoch_}; "
                f"training stopped and the weights of epoch {finite.restored_epoch_ - 1} "
                "were restored (nan_loss='restore').",
                RuntimeWarning,
                stacklevel=3,
            )
        elif stop.misses_ >= stop.patience or epochs is not None:
            pass  # converged (or stopped early), or partial_fit
        elif interrupted:
            warnings.warn(
                f"{name}: fit was interrupted after {len(history)} epochs; the model "
                "keeps the weights reached so far.",
                UserWarning,
                stacklevel=3,
            )
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
        with torch.random.fork_rng(devices=[]):  # initialisation draws: not the user's
            net.initialize()
        net.module_.load_state_dict(_torch_tree(state["module"], device))
        net.criterion_.load_state_dict(_torch_tree(state["criterion"], device))
        net.optimizer_.load_state_dict(_torch_tree(state["optimizer"], device))
        net.history = History([dict(row) for row in state["history"]])
        net.module_.eval()
        return net

    # -------------------------------------------------------------- predict
    def _logits(self, X):
        """Validated ``X`` -> float32 logits ``(n_samples, n_tasks, n_out)``."""
        check_is_fitted(self)
        X = _validate_X(self, X, reset=False)
        return predict_logits(self.net_.module_, X, self.net_.device)

    def _outputs(self, X):
        """Per-task outputs: probabilities (classification) or values (regression)."""
        return decode(self._logits(X), self._tasks)

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


class _MultiTaskClassifierMixin(ClassifierMixin):
    """Every task is a classification task: ``predict_proba`` and ``predict``."""

    _y_check_params = dict(dtype=None)

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
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

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
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean R^2 over tasks (for 1-D y, the R^2).
        """
        return masked_r2_score(y, self.predict(X), sample_weight=sample_weight)
