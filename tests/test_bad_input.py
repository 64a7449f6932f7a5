"""Bad input: the right exception, a message naming the argument, and no harm done.

Every case in ``CASES`` is run against a fitted classifier and, where it
applies, a fitted regressor. Two tests per case:

* ``test_bad_input_error``: the exception type, and a message that names the
  offending argument (``X``, ``y``, ``sample_weight`` or the parameter).
* ``test_bad_input_leaves_model_intact``: whatever is raised, the fitted
  model keeps the very same attributes (same keys, identical objects) and
  ``predict`` / ``predict_proba`` give bit-identical results afterwards.

A case marked ``bug`` is a known defect of the package; it is an
``xfail(strict=True)``, so it turns into a failure (and the marker must go)
once the package is fixed.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from conftest import small
from sklearn_mmoe import MMoEClassifier, SharedBottomRegressor
from sklearn_mmoe.metrics import masked_log_loss, masked_roc_auc_score

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # The float32-overflow cases make numpy warn when they are checked.
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]

N, P = 40, 4
FEATURES = [f"f{i}" for i in range(P)]
ESTIMATORS = {"clf": MMoEClassifier, "reg": SharedBottomRegressor}


def _small(kind, **params):
    return small(ESTIMATORS[kind], max_epochs=2, **params)


def _data(kind):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(N, P))
    if kind == "clf":
        Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(float)
    else:
        Y = X[:, :2] @ np.array([[1.0, -1.0], [0.5, 2.0]])
    Y[::4, 1] = np.nan  # the realistic case: task 1 is partly unlabelled
    return X, Y


def _outputs(model, X):
    out = [np.asarray(model.predict(X))]
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        out += list(proba) if isinstance(proba, list) else [proba]
    return out


def _with(X, i, j, value):
    X = X.astype(object if isinstance(value, str) else X.dtype, copy=True)
    X[i, j] = value
    return X


def _column(Y, t, value):
    Y = Y.copy()
    Y[:, t] = value
    return Y


@dataclass
class Case:
    id: str
    call: object  # (model, X, Y) -> anything; must raise
    exc: object  # exception type or tuple of types
    match: str  # regex that the message must contain (re.search)
    kinds: tuple = ("clf", "reg")
    params: dict = field(default_factory=dict)  # set_params before the failing call
    frame: bool = False  # fit (and call) on a DataFrame with FEATURES columns
    bug: object = None  # str, or {kind: str}: xfail reason of test_bad_input_error
    bug_intact: object = None  # same, for test_bad_input_leaves_model_intact


def _fit(**params):
    """A case that sets ``params`` and refits on the same (valid) data."""
    return dict(call=lambda m, X, Y: m.fit(X, Y), params=params)


def _fit_data(X=None, Y=None, **fit_kw):
    """A case that refits with X and/or Y replaced by ``f(X)`` / ``f(Y)``."""

    def call(m, X_, Y_):
        return m.fit(X(X_) if X else X_, Y(Y_) if Y else Y_, **fit_kw)

    return call


def _sw(make):
    return lambda m, X, Y: m.fit(X, Y, sample_weight=make(len(X)))


CASES = [
    # ---------------------------------------------------------------- X
    Case("fit-X-nan", _fit_data(X=lambda X: _with(X, 3, 1, np.nan)), ValueError, r"\bX\b.*NaN"),
    Case(
        "predict-X-nan",
        lambda m, X, Y: m.predict(_with(X, 3, 1, np.nan)),
        ValueError,
        r"\bX\b.*NaN",
    ),
    Case(
        "predict_proba-X-nan",
        lambda m, X, Y: m.predict_proba(_with(X, 3, 1, np.nan)),
        ValueError,
        r"\bX\b.*NaN",
        kinds=("clf",),
    ),
    Case(
        "fit-X-inf", _fit_data(X=lambda X: _with(X, 0, 0, np.inf)), ValueError, r"\bX\b.*infinity"
    ),
    Case(
        "predict-X-inf",
        lambda m, X, Y: m.predict(_with(X, 0, 0, -np.inf)),
        ValueError,
        r"\bX\b.*infinity",
    ),
    Case(
        "fit-X-overflows-float32",
        _fit_data(X=lambda X: _with(X, 0, 0, 1e39)),
        ValueError,
        r"\bX\b",

    ),
    Case(
        "predict-X-overflows-float32",
        lambda m, X, Y: m.predict(_with(X, 0, 0, 1e39)),
        ValueError,
        r"\bX\b",

    ),
    Case(
        "predict-X-wrong-n-features",
        lambda m, X, Y: m.predict(X[:, :3]),
        ValueError,
        r"\bX\b has 3 features",
    ),
    Case(
        "predict_proba-X-wrong-n-features",
        lambda m, X, Y: m.predict_proba(X[:, 1:]),
        ValueError,
        r"\bX\b has 3 features",
        kinds=("clf",),
    ),
    Case(
        "score-X-wrong-n-features",
        lambda m, X, Y: m.score(X[:, :3], Y),
        ValueError,
        r"\bX\b has 3 features",
    ),
    Case(
        "predict-X-sparse-wrong-n-features",
        lambda m, X, Y: m.predict(sp.csr_matrix(X[:, :2])),
        ValueError,
        r"\bX\b has 2 features",
    ),
    Case(
        "predict-frame-renamed-columns",
        lambda m, X, Y: m.predict(X.rename(columns={"f0": "g0"})),
        ValueError,
        r"feature names should match",
        frame=True,
    ),
    Case(
        "predict-frame-reordered-columns",
        lambda m, X, Y: m.predict(X[FEATURES[::-1]]),
        ValueError,
        r"feature names should match",
        frame=True,
    ),
    Case("fit-X-3d", _fit_data(X=lambda X: X[:, :, None]), ValueError, r"\bX\b", ),
    Case(
        "predict-X-3d",
        lambda m, X, Y: m.predict(X[:, :, None]),
        ValueError,
        r"\bX\b",
    ),
    Case("predict-X-1d", lambda m, X, Y: m.predict(X[0]), ValueError, r"\bX\b", ),
    Case("fit-X-empty", lambda m, X, Y: m.fit(X[:0], Y[:0]), ValueError, r"\bX\b", ),
    Case(
        "predict-X-empty", lambda m, X, Y: m.predict(X[:0]), ValueError, r"\bX\b",
    ),
    Case(
        "fit-X-no-features", _fit_data(X=lambda X: X[:, :0]), ValueError, r"\bX\b",
    ),
    Case(
        "predict-X-no-features",
        lambda m, X, Y: m.predict(X[:, :0]),
        ValueError,
        r"\bX\b",
    ),
    Case(
        "fit-X-strings",
        _fit_data(X=lambda X: _with(X, 2, 1, "abc")),
        ValueError,
        r"\bX\b",
    ),
    Case(
        "predict-X-strings",
        lambda m, X, Y: m.predict(_with(X, 2, 1, "abc")),
        ValueError,
        r"\bX\b",
    ),
    Case("fit-X-complex", _fit_data(X=lambda X: X + 1j), ValueError, r"\bX\b", ),
    Case(
        "predict-X-complex",
        lambda m, X, Y: m.predict(X + 1j),
        ValueError,
        r"\bX\b",
    ),
    # ---------------------------------------------------------------- y
    Case(
        "fit-y-wrong-length", _fit_data(Y=lambda Y: Y[:-1]), ValueError, r"\by\b",
    ),
    Case(
        "fit-y-inf", _fit_data(Y=lambda Y: _with(Y, 5, 0, np.inf)), ValueError, r"\by\b.*infinity"
    ),
    Case(
        "fit-y-task-all-missing",
        _fit_data(Y=lambda Y: _column(Y, 1, np.nan)),
        ValueError,
        r"\by\b: task 1 has no observed label",
    ),
    Case(
        "fit-y-single-class",
        _fit_data(Y=lambda Y: np.where(np.isnan(Y), Y, _column(Y, 1, 1.0))),
        ValueError,
        r"\by\b: task 1 has only one class",
        kinds=("clf",),
    ),
    Case("fit-y-3d", _fit_data(Y=lambda Y: Y[:, :, None]), ValueError, r"\by\b", ),
    Case(
        "fit-y-no-task",
        _fit_data(Y=lambda Y: Y[:, :0]),
        ValueError,
        r"\by\b",
    ),
    Case(
        "fit-y-continuous-to-classifier",
        _fit_data(Y=lambda Y: np.linspace(0, 1, len(Y))),
        ValueError,
        r"\by\b: task 0: Unknown label type",
        kinds=("clf",),
    ),
    Case(
        "fit-y-mixed-label-types",
        _fit_data(Y=lambda Y: _with(Y, 0, 0, "a")),
        ValueError,
        r"\by\b: task 0: Unknown label type",
        kinds=("clf",),
    ),
    Case(
        "fit-y-strings-to-regressor",
        _fit_data(Y=lambda Y: np.where(Y > 0, "a", "b")),
        ValueError,
        r"\by\b",
        kinds=("reg",),
    ),
    Case("score-y-wrong-length", lambda m, X, Y: m.score(X, Y[:-1]), ValueError, r"\by(_true)?\b"),
    # ----------------------------------------------------- sample_weight
    Case("fit-sw-wrong-length", _sw(lambda n: np.ones(n - 1)), ValueError, r"sample_weight"),
    Case(
        "fit-sw-negative", _sw(lambda n: np.r_[-1.0, np.ones(n - 1)]), ValueError, r"sample_weight"
    ),
    Case("fit-sw-nan", _sw(lambda n: np.r_[np.nan, np.ones(n - 1)]), ValueError, r"sample_weight"),
    Case(
        "fit-sw-all-zero",
        _sw(np.zeros),
        ValueError,
        r"sample_weight",
    ),
    Case(  # 2-D is a weight per row and task: y has 2 tasks
        "fit-sw-2d-3-columns",
        _sw(lambda n: np.ones((n, 3))),
        ValueError,
        r"sample_weight must have shape \(\d+,\) or \(\d+, 2\)",
    ),
    Case(
        "score-sw-wrong-length",
        lambda m, X, Y: m.score(X, Y, sample_weight=np.ones(3)),
        ValueError,
        r"sample_weight",
    ),
    # --------------------------------------------------- hyper-parameters
    Case(
        "n_experts=0",
        exc=InvalidParameterError,
        match=r"'n_experts'",
        kinds=("clf",),
        **_fit(n_experts=0),
    ),
    Case(
        "learning_rate<0",
        exc=InvalidParameterError,
        match=r"'learning_rate'",
        **_fit(learning_rate=-0.1),
    ),
    Case(
        "learning_rate=0",
        exc=InvalidParameterError,
        match=r"'learning_rate'",
        **_fit(learning_rate=0.0),
    ),
    Case(
        "optimizer=unknown",
        exc=InvalidParameterError,
        match=r"'optimizer'",
        **_fit(optimizer="adamax2"),
    ),
    Case(
        "optimizer=not-an-optimizer",
        exc=(InvalidParameterError, TypeError),
        match=r"optimizer",
        **_fit(optimizer=len),
    ),
    Case(
        "activation=unknown",
        exc=InvalidParameterError,
        match=r"'activation'",
        **_fit(activation="swish2"),
    ),
    Case(
        "task_weights-wrong-length",
        exc=ValueError,
        match=r"task_weights.*one entry per task",
        **_fit(task_weights=[1.0]),
    ),
    Case(
        "task_weights-negative",
        exc=ValueError,
        match=r"task_weights",
        **_fit(task_weights=[1.0, -0.5]),
    ),
    Case(
        "task_weights-all-zero",
        exc=ValueError,
        match=r"task_weights",
        **_fit(task_weights=[0.0, 0.0]),
    ),
    Case(
        "task_weights-strings",
        exc=ValueError,
        match=r"task_weights",
        **_fit(task_weights=["a", "b"]),
    ),
    Case("batch_size=0", exc=InvalidParameterError, match=r"'batch_size'", **_fit(batch_size=0)),
    Case("max_epochs=0", exc=InvalidParameterError, match=r"'max_epochs'", **_fit(max_epochs=0)),
    Case("dropout=1.0", exc=InvalidParameterError, match=r"'dropout'", **_fit(dropout=1.0)),
    Case(
        "validation_fraction=1.5",
        exc=InvalidParameterError,
        match=r"'validation_fraction'",
        **_fit(validation_fraction=1.5, early_stopping=True),
    ),
    Case(
        "expert_hidden_sizes-with-0",
        exc=ValueError,
        match=r"expert_hidden_sizes",
        kinds=("clf",),
        **_fit(expert_hidden_sizes=(8, 0)),
    ),
    Case(
        "bottom_hidden_sizes-with-0",
        exc=ValueError,
        match=r"bottom_hidden_sizes",
        kinds=("reg",),
        **_fit(bottom_hidden_sizes=(8, 0)),
    ),
    Case(
        "tower_hidden_sizes-float",
        exc=TypeError,
        match=r"tower_hidden_sizes",
        **_fit(tower_hidden_sizes=(4.5,)),
    ),
    Case("device=not-a-device", exc=ValueError, match=r"device", **_fit(device="not-a-device")),
    Case(
        "device=meta",
        exc=ValueError,
        match=r"device",
        **_fit(device="meta"),
    ),
    Case(
        "callbacks-not-callbacks",
        exc=(TypeError, ValueError),
        match=r"callbacks",
        **_fit(callbacks=["print_log"]),
    ),
    Case(
        "optimizer_kwargs-weight_decay",
        exc=ValueError,
        match=r"optimizer_kwargs",
        **_fit(optimizer_kwargs={"weight_decay": 0.1}),
    ),
    # ------------------------------------- reliability, round 2 (#17, case 9)
    Case("n_experts=True", exc=InvalidParameterError, match=r"'n_experts'.*bool", kinds=("clf",),
         **_fit(n_experts=True)),
    Case("batch_size=True", exc=InvalidParameterError, match=r"'batch_size'.*bool",
         **_fit(batch_size=True)),
    Case("optimizer_kwargs-bad-betas", exc=ValueError, match=r"optimizer_kwargs=.*not valid for Adam",
         **_fit(optimizer_kwargs={"betas": "x"})),
    Case("optimizer=LBFGS", exc=ValueError, match=r"optimizer=LBFGS is not supported.*closure",
         **_fit(optimizer=torch.optim.LBFGS)),
    Case("task_weights-overflow", exc=ValueError, match=r"task_weights must be at most",
         **_fit(task_weights=[1e308, 1e308])),
    Case("expert_hidden_sizes-too-large", exc=ValueError,
         match=r"GiB.*comes from expert_hidden_sizes=\(1000000000,\)", kinds=("clf",),
         **_fit(expert_hidden_sizes=(10**9,))),
    Case("n_experts-too-large", exc=ValueError, match=r"GiB.*comes from n_experts=100000000",
         kinds=("clf",), **_fit(n_experts=10**8)),
    Case("bottom_hidden_sizes-too-large", exc=ValueError,
         match=r"GiB.*comes from bottom_hidden_sizes=\(1000000000,\)", kinds=("reg",),
         **_fit(bottom_hidden_sizes=(10**9,))),
]


def _params(test):
    out = []
    for case in CASES:
        for kind in case.kinds:
            reason = case.bug if test == "error" else case.bug_intact
            if isinstance(reason, dict):
                reason = reason.get(kind)
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            out.append(pytest.param(case, kind, id=f"{case.id}-{kind}", marks=marks))
    return out


def _fitted(case, kind):
    X, Y = _data(kind)
    if case.frame:
        X = pd.DataFrame(X, columns=FEATURES)
    model = _small(kind).fit(X, Y)
    return model, X, Y


@pytest.mark.parametrize("case, kind", _params("error"))
def test_bad_input_error(case, kind):
    model, X, Y = _fitted(case, kind)
    model.set_params(**case.params)
    with pytest.raises(Exception) as info:
        case.call(model, X, Y)
    # No low-level error may reach the user, whatever the case expects.
    assert not isinstance(
        info.value, (RuntimeError, IndexError, AttributeError, AssertionError, KeyError)
    ), f"{type(info.value).__name__} reached the user: {info.value}"
    assert isinstance(info.value, case.exc), f"{type(info.value).__name__}: {info.value}"
    info.match(case.match)


@pytest.mark.parametrize("case, kind", _params("intact"))
def test_bad_input_leaves_model_intact(case, kind):
    model, X, Y = _fitted(case, kind)
    before = _outputs(model, X)
    model.set_params(**case.params)
    state = dict(vars(model))
    try:
        case.call(model, X, Y)
    except Exception:  # any error: this test is about what it leaves behind
        pass
    else:
        pytest.fail("the bad call did not raise")
    assert vars(model).keys() == state.keys()
    changed = [k for k, v in state.items() if vars(model)[k] is not v]
    assert not changed, f"attributes replaced by the failed call: {changed}"
    for a, b in zip(before, _outputs(model, X), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


# ------------------------------------------------------------ not fitted
@pytest.mark.parametrize(
    "kind, method",
    [(k, m) for k in ("clf", "reg") for m in ("predict", "predict_proba", "score") if (k, m) != ("reg", "predict_proba")],
)
def test_not_fitted(kind, method):
    model = _small(kind)
    X, Y = _data(kind)
    state = dict(vars(model))
    args = (X, Y) if method == "score" else (X,)
    with pytest.raises(NotFittedError, match=r"not fitted yet.*'fit'"):
        getattr(model, method)(*args)
    assert vars(model) == state


# ---------------------------------------------------- labels unseen in fit
def test_score_counts_unseen_labels_as_wrong_like_scikit_learn():
    X, Y = _data("clf")
    labels = np.where(Y == 1, "yes", "no").astype(object)
    labels[np.isnan(Y)] = None
    model = _small("clf").fit(X, labels)
    unseen = labels.copy()
    unseen[:6, 0] = "maybe"  # never seen in fit
    unseen[1:8:2, 1] = "perhaps"
    pred = model.predict(X)
    observed = [np.array([v is not None for v in unseen[:, t]]) for t in range(2)]
    expected = np.mean([np.mean(pred[o, t] == unseen[o, t]) for t, o in enumerate(observed)])
    assert model.score(X, unseen) == pytest.approx(expected)
    assert model.score(X, unseen) < model.score(X, labels)
    # One task: exactly scikit-learn's ClassifierMixin.score (accuracy).
    model_1d = _small("clf").fit(X, labels[:, 0])
    assert model_1d.score(X, unseen[:, 0]) == pytest.approx(
        ClassifierMixin.score(model_1d, X, unseen[:, 0])
    )


@pytest.mark.parametrize("metric", [masked_roc_auc_score, masked_log_loss])
@pytest.mark.parametrize("one_task", [False, True], ids=["2-tasks", "1-task"])
def test_probability_metrics_reject_unseen_labels(metric, one_task):
    X, Y = _data("clf")
    labels = np.where(Y == 1, "yes", "no").astype(object)
    labels[np.isnan(Y)] = None
    unseen = labels.copy()
    unseen[:3, 0] = "maybe"
    if one_task:
        model = _small("clf").fit(X, labels[:, 0])
        y_true = unseen[:, 0]
    else:
        model = _small("clf").fit(X, labels)
        y_true = unseen
    with pytest.raises(ValueError, match=r"y_true contains labels not in classes.*maybe"):
        metric(y_true, model.predict_proba(X), classes=model.classes_)


# ------------------------------------------- valid input, non-finite result
def test_regressor_with_huge_finite_targets_predicts_finite_values():
    X, Y = _data("reg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        predicted = _small("reg").fit(X, Y * 1e160).predict(X)
    assert np.all(np.isfinite(predicted))
    assert np.nanmax(np.abs(Y * 1e160)) / 100 < np.max(np.abs(predicted)) < np.inf  # in y's units


def test_tiny_positive_sample_weights_train_a_finite_model():
    X, Y = _data("clf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model = _small("clf").fit(X, Y, sample_weight=np.full(N, 1e-320))
    assert all(np.all(np.isfinite(p)) for p in model.predict_proba(X))


def test_no_cuda_device_is_a_value_error_naming_device():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    X, Y = _data("clf")
    with pytest.raises(ValueError, match=r"device='cuda'.*not available"):
        _small("clf", device="cuda").fit(X, Y)


# --------------------------------------------- reliability, round 2 (#17)
def test_partial_fit_classes_never_hold_a_missing_label_marker():
    X, Y = _data("clf")
    # np.unique of a column with NaN lists NaN as a value
    with_nan = [np.unique(Y[:, t]) for t in range(2)]
    assert np.isnan(with_nan[1]).any()
    for classes in (with_nan, [[0.0, 1.0], [None, 0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0, pd.NA]]):
        model = _small("clf")
        with pytest.raises(ValueError, match=r"classes: task 1 contains a missing-label marker"):
            model.partial_fit(X, Y, classes=classes)
        assert not hasattr(model, "net_")
    model = _small("clf").partial_fit(X, Y, classes=[[0.0, 1.0], [0.0, 1.0]])
    assert [c.tolist() for c in model.classes_] == [[0.0, 1.0], [0.0, 1.0]]
    assert [t.type for t in model._tasks] == ["binary", "binary"]  # not 3-class


def test_nullable_label_dtypes_keep_their_labels():
    X, _ = _data("clf")
    rng = np.random.RandomState(1)
    flag = pd.array(rng.uniform(size=N) < 0.5, dtype="boolean")
    flag[::5] = pd.NA
    grade = pd.array(np.where(rng.uniform(size=N) < 0.5, 5, 6), dtype="Int64")
    grade[1::6] = pd.NA
    y = pd.DataFrame({"flag": flag, "grade": grade})
    model = _small("clf").fit(X, y)
    assert model.classes_[0].dtype == bool and model.classes_[0].tolist() == [False, True]
    assert model.classes_[1].dtype.kind == "i" and model.classes_[1].tolist() == [5, 6]
    # the same classes as numpy bool / int columns without missing labels give
    numpy = _small("clf").fit(X, np.column_stack([np.arange(N) % 2, 5 + np.arange(N) % 2]))
    assert model.classes_[1].dtype == numpy.classes_[1].dtype
    assert set(model.predict(X)[:, 0]) <= {False, True}
    one = _small("clf").fit(X, y["grade"])
    assert one.classes_.tolist() == [5, 6] and one.predict(X).dtype.kind == "i"


def test_float_targets_are_never_inferred_to_be_classes():
    from sklearn_mmoe import MultiTaskEstimator

    X, _ = _data("clf")
    rng = np.random.RandomState(0)
    hours = rng.randint(1, 80, size=N).astype(float)  # whole numbers, many values
    hours[::7] = np.nan
    label = (X[:, 0] > 0).astype(int)
    Y = np.empty((N, 2), dtype=object)
    Y[:, 0], Y[:, 1] = label.tolist(), hours.tolist()  # int labels, float targets
    Y[::7, 1] = None
    params = dict(n_experts=2, expert_hidden_sizes=(8,), max_epochs=1, random_state=0)
    with pytest.warns(UserWarning, match=r"task 1 has float targets that are all whole numbers"):
        model = MultiTaskEstimator(**params).fit(X, Y)
    assert model.task_types_ == ["binary", "regression"]
    # a classification task with many classes: no "regression problem?" warning
    many = np.arange(N) % 25
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_epochs=1
        MMoEClassifier(**params).fit(X, many)
        MultiTaskEstimator(task_types=["classification"], **params).fit(X, many.astype(float))


def test_conditional_tasks_with_bools_is_a_clear_error():
    from sklearn_mmoe import MultiTaskEstimator

    X, Y = _data("clf")
    with pytest.raises(ValueError, match=r"conditional_tasks must map a task index.*\{True: False\}"):
        MultiTaskEstimator(conditional_tasks={True: False}, max_epochs=1).fit(X, Y)
