"""The estimator machinery shared by every architecture.

An estimator validates its inputs, encodes the targets per task, builds a
pure PyTorch network from :mod:`sklearn_mmoe.nn` and trains it with a skorch
``NeuralNet`` that it holds as the fitted attribute ``net_`` (composition:
the estimator itself is a plain scikit-learn estimator, not a skorch net).
"""

import contextlib
import copy
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

from ._data import BatchIterator, MultiTaskDataset, as_float32_rows, predict_logits
from ._targets import decode, encode_targets
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
    if X.dtype == np.float64 and values.size and np.abs(values).max() > _FLOAT32_MAX:
        raise ValueError(
            f"X contains values beyond the float32 range (|x| > {_FLOAT32_MAX:.3g}), "
            "which the network computes in; rescale X."
        )
    return X


def _check_sizes(value, name, allow_empty):
    """Layer sizes as a tuple of positive ints, or a ValueError naming ``name``."""
    sizes = (value,) if isinstance(value, Integral) else tuple(value)
    if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in sizes):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}.")
    if any(s < 1 for s in sizes) or (not sizes and not allow_empty):
        need = "" if allow_empty else "a non-empty "
        raise ValueError(f"{name} must be {need}sequence of positive ints, got {value!r}.")
    return tuple(int(s) for s in sizes)


class _TrainingNet(NeuralNet):
    """skorch's training loop with the masked multi-task loss.

    Batches are ``(X, (target, weight))``; the loss reads both parts. A
    training step hands the per-task losses to the loss-weighting strategy,
    which computes the gradients; the loss it reports (and the validation
    loss) uses the fixed task weights, so epochs stay comparable.
    """

    def get_loss(self, y_pred, y_true, X=None, training=False):
        target, weight = y_true
        return self.criterion_(y_pred, target, weight)

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        X, (target, weight) = batch
        y_pred = self.infer(X, **fit_params)
        losses = self.criterion_.per_task(y_pred, target, weight)
        self.criterion_.weighting.backward(losses, self.module_)
        return {"loss": torch.dot(losses.detach(), self.criterion_.task_weights), "y_pred": y_pred}


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
        previous = dict(vars(self))
        try:
            return self._fit(X, y, sample_weight)
        except BaseException:
            # Bad input or a failed fit leaves a fitted model as it was.
            vars(self).clear()
            vars(self).update(previous)
            raise

    def _fit(self, X, y, sample_weight):
        X = _validate_X(self, X, reset=True)
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
        with _argument("sample_weight"):
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        n_tasks = Y.shape[1]
        targets, observed, tasks = encode_targets(
            Y, self._task_kinds(Y), sample_weight, self._conditional_tasks(n_tasks)
        )
        weight = self._entry_weights(observed, sample_weight)
        task_weights = self._check_task_weights(n_tasks)
        net = self._train(X, targets, weight, tasks, task_weights)

        self._y_is_1d = y.ndim == 1
        self.n_tasks_ = n_tasks
        self._tasks = tasks
        for name, value in self._task_attributes(tasks).items():
            setattr(self, name, value)
        self.net_ = net
        history = net.history
        self.n_iter_ = len(history)
        self.loss_curve_ = list(history[:, "train_loss"])
        if self.early_stopping:
            self.validation_loss_curve_ = list(history[:, "valid_loss"])
            self.best_validation_loss_ = min(self.validation_loss_curve_)
        return self

    def _conditional_tasks(self, n_tasks):
        """{child: parent} of conditional tasks (none unless a subclass says so)."""
        return {}

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

    def _callbacks(self):
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
        own = [("task_weights", _EpochWeights()), ("stopping", stop)]
        return own + copy.deepcopy(list(self.callbacks or []))

    def _optimizer_kwargs(self):
        kwargs = dict(self.optimizer_kwargs or {})
        reserved = sorted({"lr", "weight_decay", "params"} & set(kwargs))
        if reserved:
            raise ValueError(
                f"optimizer_kwargs must not set {reserved}: use the learning_rate and "
                "weight_decay parameters."
            )
        return kwargs

    def _train(self, X, target, weight, tasks, task_weights):
        device = self._check_device()
        module_kwargs = self._module_kwargs()
        optimizer = self._optimizer_class()
        rng = check_random_state(self.random_state)
        torch_seed, batch_seed = (int(s) for s in rng.randint(np.iinfo(np.int32).max, size=2))

        X = as_float32_rows(X)
        data = MultiTaskDataset(
            X if not isinstance(X, torch.Tensor) else X.to(device),
            torch.from_numpy(target).to(device),
            torch.from_numpy(weight).to(device),
        )
        train_split = None
        if self.early_stopping:
            n = len(data)
            n_valid = int(round(n * self.validation_fraction))
            if n_valid < 1 or n_valid >= n:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no "
                    f"training or no validation row out of {n} samples."
                )
            order = torch.from_numpy(rng.permutation(n))
            train_split = predefined_split(data.subset(order[:n_valid]))
            data = data.subset(order[n_valid:])

        net = _TrainingNet(
            module=self._module_class,
            **{f"module__{k}": v for k, v in module_kwargs.items()},
            module__n_features=X.shape[1],
            module__n_outputs=[task.n_outputs for task in tasks],
            criterion=MaskedMultiTaskLoss,
            criterion__task_types=[task.type for task in tasks],
            criterion__n_outputs=[task.n_outputs for task in tasks],
            criterion__task_weights=task_weights,
            criterion__parents=[task.parent for task in tasks],
            criterion__weighting=self.loss_weighting,
            optimizer=optimizer,
            lr=self.learning_rate,
            optimizer__weight_decay=self.weight_decay,
            **{f"optimizer__{k}": v for k, v in self._optimizer_kwargs().items()},
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train=BatchIterator,
            iterator_train__shuffle=True,
            iterator_train__seed=batch_seed,
            iterator_valid=BatchIterator,
            train_split=train_split,
            callbacks=self._callbacks(),
            predict_nonlinearity=None,
            device=device,
            verbose=self.verbose,
        )
        with _seeded(torch_seed, device):
            net.fit(data, None)
        # Keep no reference to the training data in the fitted model.
        net.train_split = None
        net.module_.eval()
        stop = dict(net.callbacks_)["stopping"]
        if stop.misses_ < stop.patience:
            warnings.warn(
                f"{type(self).__name__} reached max_epochs={self.max_epochs} while "
                f"the {stop.monitor} was still improving (by more than "
                f"tol={self.tol} within n_iter_no_change={self.n_iter_no_change} "
                "epochs). Increase max_epochs or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
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
            label = self._tasks[parent].classes[1]
            positive = np.array([not pd.isna(v) and v == label for v in Y[:, parent]], dtype=bool)
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
