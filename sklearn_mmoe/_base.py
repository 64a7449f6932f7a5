"""The estimator machinery shared by every architecture.

An estimator validates its inputs, encodes the targets per task, builds a
pure PyTorch network from :mod:`sklearn_mmoe.nn` and trains it with a skorch
``NeuralNet`` that it holds as the fitted attribute ``net_`` (composition:
the estimator itself is a plain scikit-learn estimator, not a skorch net).
The training loop lives in :mod:`sklearn_mmoe._training` and the
persistence (pickle, skops) in :mod:`sklearn_mmoe._persistence`; this module
orchestrates: parameters, input and target validation, fit and predict.
"""

import contextlib
import inspect
import re
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MultiOutputMixin,
    RegressorMixin,
    _fit_context,
)
from sklearn.utils import assert_all_finite, check_array, check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    RealNotInt,
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _distributed, _inputs
from ._data import FLOAT32_RANGE_MESSAGE, MIN_INFERENCE_ROWS, predict_logits
from ._labels import nullable_as_object
from ._persistence import _PersistenceMixin
from ._targets import (
    class_weight_factors,
    classification_task,
    decode,
    encode_targets,
    kind_of,
    label_mask,
)
from ._training import OPTIMIZERS, _NetSnapshot, _TrainingMixin
from .metrics import (
    _METRICS,
    _check_sample_weight,
    _scored_labels,
    masked_accuracy_score,
    masked_r2_score,
)
from .nn import ACTIVATIONS
from .weighting import _NAMES as _WEIGHTING_NAMES
from .weighting import LossWeighting, make_weighting

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

    ``check_range=False`` leaves the checks of a dense array (finite, and
    within the float32 range) to the consumer: inference checks each chunk,
    once cast to float32, with one sum (see ``_data._finite``). A separate
    pass over X cost a quarter of the inference time of a float64 X, and
    scikit-learn's finiteness check (a float64 sum) 8 % of a float32 one.
    """
    deferred = not check_range
    with _argument("X"):
        X = validate_data(estimator, X, reset=reset, ensure_all_finite=not deferred, **_X_CHECKS)
        if deferred and not sp.issparse(X):
            return X  # checked chunk by chunk
        if deferred:
            assert_all_finite(X, input_name="X", estimator_name=type(estimator).__name__)
    values = X.data if sp.issparse(X) else X
    # max and min, not abs().max(): no temporary copy of X (validate_data has
    # already rejected NaN and infinity).
    if X.dtype == np.float64 and values.size and (
        values.max() > _FLOAT32_MAX or values.min() < -_FLOAT32_MAX
    ):
        raise ValueError(FLOAT32_RANGE_MESSAGE)
    return X


def _passes_validation_as_is(estimator, X):
    """Whether ``validate_data(estimator, X, reset=False)`` would return ``X`` itself.

    True for a short, C-contiguous, finite float32 or float64 ndarray of the
    fitted width, for an estimator fitted without feature names: what a
    single-row ``predict`` usually gets, where scikit-learn's generic checks
    cost more than the network. Anything else, invalid inputs included, goes
    through ``validate_data`` and its errors and warnings.
    """
    return (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.dtype in (np.float32, np.float64)
        and 1 <= X.shape[0] <= MIN_INFERENCE_ROWS
        and X.shape[1] == getattr(estimator, "n_features_in_", None)
        and X.flags.c_contiguous
        and not hasattr(estimator, "feature_names_in_")
        and bool(np.isfinite(X).all())
    )


def _sample_weight_per_task(sample_weight, X, n_tasks):
    """Validated ``sample_weight`` as ``(n_samples, n_tasks)`` float64.

    1-D (or a scalar, or None) is one weight per row, in every task; 2-D is a
    weight per row and task.
    """
    n_samples = X.shape[0]
    with _argument("sample_weight"):
        if sample_weight is None:
            weight = np.ones(n_samples)
        else:
            if np.ndim(np.asarray(sample_weight, dtype=object)) == 0:  # a scalar: every row
                sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
            weight = _check_sample_weight(sample_weight, n_samples, n_tasks)
    if weight.ndim == 1:
        return np.broadcast_to(weight[:, None], (n_samples, n_tasks))
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


def _curve(history, key):
    """The per-task values of ``key`` over the epochs that have it: (n_epochs, n_tasks)."""
    rows = [row[key] for row in history if key in row]
    return np.array(rows, dtype=np.float64) if rows else np.zeros((0, 0))


#: With ``early_stopping="auto"``, early stopping is on above this many
#: training rows (HistGradientBoosting's rule).
AUTO_EARLY_STOPPING_ROWS = 10_000
#: batch_size="auto": rows per batch (chosen on tuning splits, docs/performance.md)
AUTO_BATCH_SIZE = 256
# numeric_encoding="periodic": frequencies, embedding width and initial frequency scale
PERIODIC = (16, 16, 3.0)
# numeric_encoding="auto" embeds at most this many numeric columns periodically
AUTO_PERIODIC_COLUMNS = 64


class _BaseMultiTask(_PersistenceMixin, _TrainingMixin, MultiOutputMixin, BaseEstimator):
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
        "ema_half_life": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
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
        if epochs and not self._resuming(epochs) and _distributed.world() is not None:
            # A new model in data-parallel partial_fit: every process sets it up
            # (tasks, classes, vocabularies, quantiles, target scaling) from
            # rank 0's rows, as one process would from its first call, then
            # trains on its own rows.
            first = _distributed.broadcast_object((X, y, sample_weight, classes))
            self._fit(*first[:3], epochs=0, classes=first[3])
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
            self._fit_numeric_encoding(
                X, (observed * sample_weight).max(axis=1),
                early_stops=epochs is None and self._uses_early_stopping(X.shape[0]),
            )
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

    def _batch_size(self):
        """Rows per batch: ``batch_size``, or :data:`AUTO_BATCH_SIZE` for "auto"."""
        if self.batch_size == "auto":
            return AUTO_BATCH_SIZE
        return self.batch_size

    def _uses_early_stopping(self, n_samples):
        if self.early_stopping == "auto":
            return n_samples > AUTO_EARLY_STOPPING_ROWS
        return bool(self.early_stopping)

    def _encode_X(self, X, reset, chunked=False):
        """Validated ``X`` as the network reads it (see :mod:`sklearn_mmoe._inputs`).

        ``reset=True`` (a new fit) first learns what the columns are: which
        are categorical and their vocabularies, and the numeric encoding.
        ``chunked=True``: X goes to :func:`~sklearn_mmoe._data.inference_chunks`,
        which checks a dense X (finite, in the float32 range) chunk by chunk,
        casting a float64 one as it goes.
        """
        if reset:
            with _argument("categorical_features"):
                self.categorical_features_ = _inputs.resolve_categorical(
                    self.categorical_features, X
                )
        if len(getattr(self, "categorical_features_", ())) == 0:
            # predict: a short, finite ndarray needs none of validate_data's work
            if reset or not (chunked and _passes_validation_as_is(self, X)):
                X = _validate_X(self, X, reset, check_range=not chunked)
            if reset:  # no categorical column: the same attributes, empty
                self.categories_, self.n_categories_, self.embedding_dims_ = [], [], []
        else:
            with _argument("X"):
                X = _inputs.encode_frame(self, X, reset)
        return X

    def _fit_numeric_encoding(self, X, sample_weight, early_stops):
        """Choose the numeric encoding and learn its bin edges (a new fit only).

        "auto" is None for sparse X, else "quantile", or the periodic embeddings
        (many parameters per column) when the fit early-stops on more than
        AUTO_EARLY_STOPPING_ROWS rows and at most AUTO_PERIODIC_COLUMNS columns
        are encoded: on small data, and on smooth relations, they fit noise
        (docs/performance.md).
        """
        n_numeric = X.shape[1] - len(self.categorical_features_)
        encoding = self.numeric_encoding
        auto = encoding == "auto"
        if auto:
            encoding = None if sp.issparse(X) else "quantile"
        if not n_numeric:
            encoding = None
        self._bin_edges = self._quantiles = None
        numeric = X[:, :n_numeric]
        if encoding == "piecewise_linear":
            self._bin_edges = _inputs.piecewise_linear_edges(numeric, self.n_bins, sample_weight)
        elif encoding in ("quantile", "periodic"):
            self._quantiles = _inputs.normal_quantiles(numeric, sample_weight=sample_weight)
            n_encoded = sum(q is not None for q in self._quantiles)
            if (auto and early_stops and X.shape[0] > AUTO_EARLY_STOPPING_ROWS
                    and n_encoded <= AUTO_PERIODIC_COLUMNS):
                encoding = "periodic"
        self.numeric_encoding_ = encoding
        # kept with the model: a later release may change PERIODIC
        self._periodic = PERIODIC if encoding == "periodic" else None

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
            periodic=getattr(self, "_periodic", None),
            quantiles=None if quantiles is None else [
                None if q is None else (q[0].tolist(), q[1].tolist()) for q in quantiles
            ],
        )

    def _check_unchanged(self, net, task_weights, epochs):
        """Continued training keeps the network: a changed setting of it is an error.

        The architecture, the loss (task weights, loss weighting), the
        optimizer and the device are those of the fitted net; silently
        keeping them would ignore the user's change. (The learning rate,
        weight decay, weight average's half-life, batch size, epochs, early
        stopping and callbacks are applied.)
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
            if labels is not None and kind_of(kind) != "classification":
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

    # -------------------------------------------------------------- predict
    def _logits(self, X):
        """Validated ``X`` -> float32 logits ``(n_samples, n_tasks, n_out)``."""
        check_is_fitted(self)
        X = self._encode_X(X, reset=False, chunked=True)
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

    def label_mask(self, y):
        """Which entries of ``y`` count as labels when the model is scored.

        An entry counts where it is observed (not NaN, None or ``pd.NA``)
        and, for a conditional task (ESMM's conversion, declared with
        ``conditional_tasks={j: i}``), where its parent task's label is the
        parent's positive class: elsewhere the conditional task's label does
        not exist, whatever ``y`` holds there (often 0). ``score`` and the
        scorers of :func:`sklearn_mmoe.metrics.make_multitask_scorer` score
        each task on these entries only; custom scoring code can use it to
        do the same.

        Parameters
        ----------
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            Labels, with the tasks (columns) of the fitted model.

        Returns
        -------
        mask : ndarray of bool, with y's shape
            True where the entry is a label of its task.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_mmoe import ESMMClassifier
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 3))
        >>> click = (X[:, 0] > 0).astype(float)
        >>> Y = np.column_stack([click, click * (X[:, 1] > 0)])  # conversion 0 unless clicked
        >>> model = ESMMClassifier(max_epochs=2, random_state=0).fit(X, Y)
        >>> model.label_mask([[1.0, 0.0], [0.0, 0.0], [np.nan, 0.0]])
        array([[ True,  True],
               [ True, False],
               [False, False]])
        """
        check_is_fitted(self)
        Y = np.array(y, dtype=object)
        columns = Y.reshape(Y.shape[0], -1) if Y.ndim in (1, 2) else None
        if columns is None or columns.shape[1] != self.n_tasks_:
            raise ValueError(
                f"y must have shape (n_samples, {self.n_tasks_}), one column per task of "
                f"the fitted model, got {Y.shape}."
            )
        return label_mask(columns, self._tasks).reshape(Y.shape)

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
            _scored_labels(y, self.label_mask(y)), self.predict(X), sample_weight=sample_weight
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
