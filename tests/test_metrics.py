"""Tests for sklearn_mmoe.metrics (masked multi-task metrics and scorers)."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mmoe.metrics import (
    make_multitask_scorer,
    masked_accuracy_score,
    masked_average_precision_score,
    masked_balanced_accuracy_score,
    masked_log_loss,
    masked_mean_absolute_error,
    masked_mean_squared_error,
    masked_r2_score,
    masked_roc_auc_score,
    masked_root_mean_squared_error,
)

# ---------------------------------------------------------------------------
# Stand-in estimators following the multi-task output contract
# ---------------------------------------------------------------------------


def _target_columns(y):
    if isinstance(y, pd.DataFrame):
        return [y.iloc[:, t].to_numpy() for t in range(y.shape[1])], False
    y = np.asarray(y)
    if y.ndim == 1:
        return [y], True
    return [y[:, t] for t in range(y.shape[1])], False


def _native(values):
    values = np.asarray(values)
    if values.dtype == object:
        if all(isinstance(v, str) for v in values):
            return values.astype(str)
        return np.asarray(values.tolist())
    return values


class _PerTaskModel(BaseEstimator):
    """Fit one scikit-learn model per task on that task's observed rows."""

    def _make(self):
        raise NotImplementedError

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        cols, self.one_d_ = _target_columns(y)
        self.models_ = []
        for col in cols:
            observed = ~np.asarray(pd.isna(col), dtype=bool)
            self.models_.append(self._make().fit(X[observed], _native(col[observed])))
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        preds = [m.predict(X) for m in self.models_]
        if self.one_d_:
            return preds[0]
        if len({p.dtype for p in preds}) > 1:
            preds = [p.astype(object) for p in preds]
        return np.column_stack(preds)


class MaskedLogisticRegression(ClassifierMixin, _PerTaskModel):
    def __init__(self, C=1.0):
        self.C = C

    def _make(self):
        return LogisticRegression(C=self.C)

    @property
    def classes_(self):
        classes = [m.classes_ for m in self.models_]
        return classes[0] if self.one_d_ else classes

    def predict_proba(self, X):
        X = np.asarray(X, dtype=float)
        probas = [m.predict_proba(X) for m in self.models_]
        return probas[0] if self.one_d_ else probas


class MaskedRidge(RegressorMixin, _PerTaskModel):
    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def _make(self):
        return Ridge(alpha=self.alpha)

    def predict(self, X):
        return super().predict(X).astype(np.float64)


class FixedOutput(BaseEstimator):
    """Return preset predictions (ignores X except for its length)."""

    def __init__(self, pred=None, proba=None, classes=None):
        self.pred = pred
        self.proba = proba
        self.classes = classes

    def fit(self, X, y=None):
        return self

    @property
    def classes_(self):
        return self.classes

    def predict(self, X):
        return self.pred

    def predict_proba(self, X):
        return self.proba


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _dirichlet(rng, n, k):
    return rng.dirichlet(np.ones(k), size=n)


@pytest.fixture
def clf_data():
    """Two fully observed tasks: binary {0, 1} and multiclass {0, 1, 2}."""
    rng = np.random.default_rng(0)
    n = 60
    y = np.column_stack([rng.integers(0, 2, n), rng.integers(0, 3, n)])
    proba = [_dirichlet(rng, n, 2), _dirichlet(rng, n, 3)]
    pred = np.column_stack([rng.integers(0, 2, n), rng.integers(0, 3, n)])
    sw = rng.uniform(0.1, 2.0, n)
    return y, proba, pred, sw


@pytest.fixture
def reg_data():
    rng = np.random.default_rng(1)
    n = 50
    y = rng.normal(size=(n, 2))
    pred = y + rng.normal(scale=0.7, size=(n, 2))
    sw = rng.uniform(0.1, 2.0, n)
    return y, pred, sw


@pytest.fixture
def cv_data():
    """Features, a 2-task float target with NaN, and a string version."""
    rng = np.random.default_rng(2)
    n = 120
    X = rng.normal(size=(n, 4))
    y0 = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(float)
    y1 = np.digitize(X[:, 1] + 0.5 * rng.normal(size=n), [-0.5, 0.5]).astype(float)
    y = np.column_stack([y0, y1])
    y[rng.random(n) < 0.25, 0] = np.nan
    y[rng.random(n) < 0.25, 1] = np.nan
    return X, y


PROBA_PAIRS = [
    (masked_roc_auc_score,
     lambda y, p, w: roc_auc_score(y, p[:, 1] if p.shape[1] == 2 else p,
                                   multi_class="ovr", sample_weight=w)),
    (masked_average_precision_score,
     lambda y, p, w: average_precision_score(y, p[:, 1] if p.shape[1] == 2 else p,
                                             sample_weight=w)),
    (masked_log_loss, lambda y, p, w: log_loss(y, p, sample_weight=w)),
]
LABEL_PAIRS = [
    (masked_accuracy_score, accuracy_score),
    (masked_balanced_accuracy_score, balanced_accuracy_score),
]
REG_PAIRS = [
    (masked_r2_score, r2_score),
    (masked_mean_squared_error, mean_squared_error),
    (masked_root_mean_squared_error, root_mean_squared_error),
    (masked_mean_absolute_error, mean_absolute_error),
]


def _ids(pairs):
    return [p[0].__name__ for p in pairs]


# ---------------------------------------------------------------------------
# Agreement with scikit-learn on fully observed data
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("masked, reference", PROBA_PAIRS, ids=_ids(PROBA_PAIRS))
def test_proba_metrics_match_sklearn_when_fully_observed(clf_data, masked,
                                                         reference, weighted):
    y, proba, _, sw = clf_data
    w = sw if weighted else None
    expected = [reference(y[:, t], proba[t], w) for t in range(2)]
    raw = masked(y, proba, sample_weight=w, multioutput="raw_values")
    np.testing.assert_allclose(raw, expected, rtol=1e-12)
    assert masked(y, proba, sample_weight=w) == pytest.approx(np.mean(expected))
    # each task alone (binary and multiclass, 1-D y)
    for t in range(2):
        assert masked(y[:, t], proba[t], sample_weight=w) == pytest.approx(expected[t])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("masked, reference", LABEL_PAIRS, ids=_ids(LABEL_PAIRS))
def test_label_metrics_match_sklearn_when_fully_observed(clf_data, masked,
                                                         reference, weighted):
    y, _, pred, sw = clf_data
    w = sw if weighted else None
    expected = [reference(y[:, t], pred[:, t], sample_weight=w) for t in range(2)]
    raw = masked(y, pred, sample_weight=w, multioutput="raw_values")
    np.testing.assert_allclose(raw, expected, rtol=1e-12)
    assert masked(y, pred, sample_weight=w) == pytest.approx(np.mean(expected))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("masked, reference", REG_PAIRS, ids=_ids(REG_PAIRS))
def test_regression_metrics_match_sklearn_when_fully_observed(reg_data, masked,
                                                              reference, weighted):
    y, pred, sw = reg_data
    w = sw if weighted else None
    expected = reference(y, pred, sample_weight=w, multioutput="raw_values")
    raw = masked(y, pred, sample_weight=w, multioutput="raw_values")
    np.testing.assert_allclose(raw, expected, rtol=1e-12)
    assert masked(y, pred, sample_weight=w) == pytest.approx(np.mean(expected))
    assert masked(y[:, 1], pred[:, 1], sample_weight=w) == pytest.approx(expected[1])


# ---------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------


def _mask(n, seed):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.random(n) < 0.3, rng.random(n) < 0.4])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("masked, reference", PROBA_PAIRS, ids=_ids(PROBA_PAIRS))
def test_proba_metrics_use_observed_rows_only(clf_data, masked, reference, weighted):
    y, proba, _, sw = clf_data
    w = sw if weighted else None
    missing = _mask(len(y), 3)
    y_masked = y.astype(float)
    y_masked[missing] = np.nan
    expected = [
        reference(y[~missing[:, t], t], proba[t][~missing[:, t]],
                  None if w is None else w[~missing[:, t]])
        for t in range(2)
    ]
    # different from the unmasked score, so the comparison below is meaningful
    assert not np.allclose(expected, masked(y, proba, multioutput="raw_values",
                                            sample_weight=w))
    raw = masked(y_masked, proba, sample_weight=w, multioutput="raw_values")
    np.testing.assert_allclose(raw, expected, rtol=1e-12)

    # garbage (even NaN) behind the mask changes nothing
    garbage = [p.copy() for p in proba]
    garbage[0][missing[:, 0]] = np.nan
    garbage[1][missing[:, 1]] = [1.0, 0.0, 0.0]
    np.testing.assert_allclose(
        masked(y_masked, garbage, sample_weight=w, multioutput="raw_values"),
        expected, rtol=1e-12)


@pytest.mark.parametrize("masked, reference", LABEL_PAIRS, ids=_ids(LABEL_PAIRS))
def test_label_metrics_use_observed_rows_only(clf_data, masked, reference):
    y, _, pred, sw = clf_data
    missing = _mask(len(y), 4)
    y_masked = y.astype(object)
    y_masked[missing] = None
    expected = [
        reference(y[~missing[:, t], t], pred[~missing[:, t], t],
                  sample_weight=sw[~missing[:, t]])
        for t in range(2)
    ]
    raw = masked(y_masked, pred, sample_weight=sw, multioutput="raw_values")
    np.testing.assert_allclose(raw, expected, rtol=1e-12)

    pred_garbage = pred.astype(object)
    pred_garbage[missing] = "garbage"
    y_placeholder = y_masked.copy()
    y_placeholder[missing[:, 0], 0] = pd.NA
    y_placeholder[missing[:, 1], 1] = np.nan
    raw2 = masked(y_placeholder, pred_garbage, sample_weight=sw,
                  multioutput="raw_values")
    np.testing.assert_allclose(raw2, expected, rtol=1e-12)


@pytest.mark.parametrize("masked, reference", REG_PAIRS, ids=_ids(REG_PAIRS))
def test_regression_metrics_use_observed_rows_only(reg_data, masked, reference):
    y, pred, sw = reg_data
    missing = _mask(len(y), 5)
    y_masked = np.where(missing, np.nan, y)
    expected = [
        reference(y[~missing[:, t], t], pred[~missing[:, t], t],
                  sample_weight=sw[~missing[:, t]])
        for t in range(2)
    ]
    raw = masked(y_masked, pred, sample_weight=sw, multioutput="raw_values")
    np.testing.assert_allclose(raw, expected, rtol=1e-12)
    pred_garbage = np.where(missing, 1e6, pred)
    pred_garbage[missing[:, 1], 1] = np.nan
    np.testing.assert_allclose(
        masked(y_masked, pred_garbage, sample_weight=sw, multioutput="raw_values"),
        expected, rtol=1e-12)


@pytest.mark.parametrize("marker", [np.nan, None, pd.NA], ids=["nan", "None", "NA"])
def test_all_missing_markers_work(marker):
    y = np.array([[1, "a"], [0, "b"], [1, "a"], [0, "b"], [0, "a"]], dtype=object)
    y[4, 0] = marker
    y[1, 1] = marker
    proba = [np.array([[.2, .8], [.7, .3], [.4, .6], [.6, .4], [.0, 1.]]),
             np.array([[.9, .1], [.9, .1], [.6, .4], [.3, .7], [.8, .2]])]
    # row 4 of task 0 and row 1 of task 1 would make the AUC < 1 if used
    np.testing.assert_allclose(
        masked_roc_auc_score(y, proba, multioutput="raw_values"), [1.0, 1.0])


def test_dataframe_with_nullable_int_and_string_columns():
    y = pd.DataFrame({
        "clicked": pd.array([1, 0, pd.NA, 1, 0, 1], dtype="Int64"),
        "kind": pd.Series(["x", None, "y", "z", "y", "x"], dtype="str"),
    })
    pred = np.array([[1, "x"], [1, "y"], [0, "y"], [1, "z"], [0, "x"], [0, "x"]],
                    dtype=object)
    expected = [accuracy_score([1, 0, 1, 0, 1], [1, 1, 1, 0, 0]),
                accuracy_score(["x", "y", "z", "y", "x"], ["x", "y", "z", "x", "x"])]
    np.testing.assert_allclose(
        masked_accuracy_score(y, pred, multioutput="raw_values"), expected)

    proba = [np.tile([0.3, 0.7], (6, 1)), np.tile([0.5, 0.3, 0.2], (6, 1))]
    got = masked_log_loss(y, proba, multioutput="raw_values",
                          classes=[[0, 1], ["x", "y", "z"]])
    assert got[0] == pytest.approx(log_loss([1, 0, 1, 0, 1], proba[0][:5]))
    assert got[1] == pytest.approx(
        log_loss(["x", "y", "z", "y", "x"], proba[1][:5], labels=["x", "y", "z"]))


def test_string_labels_and_mixed_label_types():
    # str, float and int tasks in one object array
    y = np.array([["cat", 1.0, 0], ["dog", None, 2], [None, 2.0, 1],
                  ["cat", 1.0, None], ["dog", 2.0, 2]], dtype=object)
    pred = np.array([["cat", 1.0, 0], ["cat", 0.0, 2], ["dog", 2.0, 0],
                     ["cat", 2.0, 1], ["dog", 2.0, 1]], dtype=object)
    np.testing.assert_allclose(
        masked_accuracy_score(y, pred, multioutput="raw_values"),
        [3 / 4, 3 / 4, 2 / 4])
    np.testing.assert_allclose(
        masked_balanced_accuracy_score(y, pred, multioutput="raw_values"),
        [balanced_accuracy_score(["cat", "dog", "cat", "dog"],
                                 ["cat", "cat", "cat", "dog"]),
         balanced_accuracy_score([1, 2, 1, 2], [1, 2, 2, 2]),
         balanced_accuracy_score([0, 2, 1, 2], [0, 2, 0, 1])])


def test_classes_reorder_columns_and_pick_positive_class():
    rng = np.random.default_rng(6)
    y = rng.choice(["no", "yes"], 40)
    p_yes = rng.random(40)
    reference = roc_auc_score(y == "yes", p_yes)
    two_cols = np.column_stack([1 - p_yes, p_yes])
    assert masked_roc_auc_score(y, two_cols) == pytest.approx(reference)
    assert masked_roc_auc_score(y, p_yes) == pytest.approx(reference)
    # the positive class is classes[1]: here the score of "no"
    assert masked_roc_auc_score(y, 1 - p_yes, classes=["yes", "no"]) == (
        pytest.approx(reference))
    assert masked_log_loss(y, 1 - p_yes, classes=["yes", "no"]) == pytest.approx(
        log_loss(y, two_cols))

    y3 = rng.choice(["a", "b", "c"], 40)
    p3 = _dirichlet(rng, 40, 3)
    order = [2, 0, 1]
    for metric in (masked_roc_auc_score, masked_average_precision_score,
                   masked_log_loss):
        assert metric(y3, p3[:, order], classes=np.array(["a", "b", "c"])[order]) == (
            pytest.approx(metric(y3, p3)))


def test_positive_score_matrix_for_binary_tasks():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, (30, 3)).astype(float)
    y[::5, 1] = np.nan
    scores = rng.random((30, 3))
    as_list = [np.column_stack([1 - scores[:, t], scores[:, t]]) for t in range(3)]
    for metric in (masked_roc_auc_score, masked_average_precision_score,
                   masked_log_loss):
        np.testing.assert_allclose(
            metric(y, scores, multioutput="raw_values"),
            metric(y, as_list, multioutput="raw_values"))


def test_single_task_as_list_and_column():
    rng = np.random.default_rng(8)
    y = rng.choice(["a", "b", "c"], 30).astype(object)
    y[:4] = None
    proba = _dirichlet(rng, 30, 3)
    classes = np.array(["a", "b", "c"])
    expected = roc_auc_score(y[4:].astype(str), proba[4:], multi_class="ovr")
    assert masked_roc_auc_score(y, proba) == pytest.approx(expected)
    assert masked_roc_auc_score(y[:, None], [proba], classes=[classes]) == (
        pytest.approx(expected))
    raw = masked_roc_auc_score(y, proba, multioutput="raw_values", classes=classes)
    assert raw.shape == (1,)
    assert raw[0] == pytest.approx(expected)


def test_multiclass_task_missing_a_class_in_observed_rows_uses_classes():
    y = np.array([0, 1, 0, 1, np.nan])
    proba = np.array([[.6, .3, .1], [.2, .7, .1], [.5, .2, .3], [.1, .6, .3],
                      [0., 0., 1.]])
    expected = log_loss([0, 1, 0, 1], proba[:4], labels=[0, 1, 2])
    assert masked_log_loss(y, proba, classes=[0, 1, 2]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="pass classes"):
        masked_log_loss(y, proba)


def test_single_class_task_roc_auc_is_nan_with_warning():
    y = np.array([[1, 0], [1, 1], [np.nan, 0], [1, 1]])
    proba = [np.tile([0.5, 0.5], (4, 1)), np.array([[.9, .1], [.2, .8],
                                                    [.9, .1], [.3, .7]])]
    with pytest.warns(UndefinedMetricWarning):
        raw = masked_roc_auc_score(y, proba, classes=[[0, 1], [0, 1]],
                                   multioutput="raw_values")
    assert np.isnan(raw[0]) and raw[1] == 1.0
    # a zero weight skips the undefined task
    assert masked_roc_auc_score(y, proba, classes=[[0, 1], [0, 1]],
                                multioutput=[0, 1]) == 1.0


# ---------------------------------------------------------------------------
# multioutput
# ---------------------------------------------------------------------------


def test_multioutput_options(reg_data):
    y, pred, _ = reg_data
    raw = masked_mean_absolute_error(y, pred, multioutput="raw_values")
    assert isinstance(raw, np.ndarray) and raw.shape == (2,)
    uniform = masked_mean_absolute_error(y, pred)
    assert isinstance(uniform, float) and uniform == pytest.approx(raw.mean())
    assert masked_mean_absolute_error(y, pred, multioutput=[1, 3]) == pytest.approx(
        (raw[0] + 3 * raw[1]) / 4)
    assert masked_mean_absolute_error(y, pred, multioutput=np.array([0, 2])) == (
        pytest.approx(raw[1]))
    one = masked_mean_absolute_error(y[:, 0], pred[:, 0], multioutput="raw_values")
    assert one.shape == (1,) and one[0] == pytest.approx(raw[0])


def test_zero_weight_task_is_not_evaluated():
    y = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    pred = np.array([[1.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    got = masked_mean_squared_error(y, pred, multioutput=[1, 0])
    assert got == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="task 1 has no observed label"):
        masked_mean_squared_error(y, pred)


@pytest.mark.parametrize("multioutput, match", [
    ([1, 2, 3], r"multioutput weights must have shape \(2,\)"),
    ("variance_weighted", "multioutput must be 'raw_values', 'uniform_average'"),
    ([1, -1], "multioutput weights must be finite and non-negative"),
    ([0, 0], "multioutput weights must not all be zero"),
])
def test_multioutput_errors(reg_data, multioutput, match):
    y, pred, _ = reg_data
    with pytest.raises(ValueError, match=match):
        masked_r2_score(y, pred, multioutput=multioutput)


# ---------------------------------------------------------------------------
# Errors name the offending argument
# ---------------------------------------------------------------------------


def test_input_errors_name_the_argument(clf_data):
    y, proba, pred, _ = clf_data
    y_inf = y.astype(float)
    y_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="y_true contains infinity"):
        masked_mean_squared_error(y_inf, y.astype(float))
    with pytest.raises(ValueError, match="y_true: task 1 has no observed label"):
        masked_accuracy_score(np.column_stack([y[:, 0], np.full(len(y), np.nan)]),
                              pred)
    with pytest.raises(ValueError, match="y_true must have shape"):
        masked_accuracy_score(np.zeros((2, 2, 2)), pred)
    with pytest.raises(ValueError, match="y_pred must have the shape of y_true"):
        masked_accuracy_score(y, pred[:, 0])
    with pytest.raises(ValueError, match="y_pred must have the shape of y_true"):
        masked_accuracy_score(y, pred[:-1])
    pred_nan = pred.astype(float)
    pred_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"y_pred contains missing .*task 1"):
        masked_accuracy_score(y, pred_nan)
    with pytest.raises(ValueError, match=r"y_pred contains missing .*task 1"):
        masked_r2_score(y.astype(float), pred_nan)
    proba_nan = [proba[0], proba[1].copy()]
    proba_nan[1][0] = np.nan
    with pytest.raises(ValueError, match=r"y_pred contains missing .*task 1"):
        masked_log_loss(y, proba_nan)
    pred_inf = pred.astype(float)
    pred_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="y_pred contains infinity"):
        masked_mean_absolute_error(y, pred_inf)
    with pytest.raises(ValueError, match="y_pred is a list of 1 arrays"):
        masked_roc_auc_score(y, proba[:1])
    with pytest.raises(ValueError, match=r"y_pred for task 1 has 3 columns but "
                                         r"classes has 2"):
        masked_roc_auc_score(y, proba, classes=[[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="y_pred for task 1 is 1-D"):
        masked_roc_auc_score(y, [proba[0], proba[1][:, 0]])
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(60,\)"):
        masked_accuracy_score(y, pred, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        masked_accuracy_score(y, pred, sample_weight=np.full(len(y), np.nan))
    with pytest.raises(ValueError, match="classes must be a list of 2 label arrays"):
        masked_roc_auc_score(y, proba, classes=[[0, 1]])
    with pytest.raises(ValueError, match="classes for task 0 contains duplicate"):
        masked_roc_auc_score(y, proba, classes=[[1, 1], [0, 1, 2]])
    with pytest.raises(ValueError, match=r"y_true contains labels not in classes "
                                         r"for task 1: \[2\]"):
        masked_roc_auc_score(y, [proba[0], proba[1][:, :2]],
                             classes=[[0, 1], [0, 1]])


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------


@pytest.fixture
def fitted(cv_data):
    X, y = cv_data
    return X, y, MaskedLogisticRegression().fit(X, y)


@pytest.mark.parametrize("name, metric, sign", [
    ("accuracy", masked_accuracy_score, 1),
    ("balanced_accuracy", masked_balanced_accuracy_score, 1),
    ("roc_auc", masked_roc_auc_score, 1),
    ("average_precision", masked_average_precision_score, 1),
    ("neg_log_loss", masked_log_loss, -1),
])
def test_classification_scorer_equals_direct_metric(fitted, name, metric, sign):
    X, y, est = fitted
    w = np.linspace(0.5, 1.5, len(y))
    proba = metric in (masked_roc_auc_score, masked_average_precision_score,
                       masked_log_loss)
    kwargs = {"classes": est.classes_} if proba else {}
    y_pred = est.predict_proba(X) if proba else est.predict(X)
    expected = sign * metric(y, y_pred, sample_weight=w, **kwargs)
    scorer = make_multitask_scorer(name)
    assert scorer(est, X, y, sample_weight=w) == pytest.approx(expected)
    raw = sign * metric(y, y_pred, multioutput="raw_values", **kwargs)
    assert make_multitask_scorer(name, task=1)(est, X, y) == pytest.approx(raw[1])


@pytest.mark.parametrize("name, metric", [
    ("r2", masked_r2_score),
    ("neg_mean_squared_error", masked_mean_squared_error),
    ("neg_root_mean_squared_error", masked_root_mean_squared_error),
    ("neg_mean_absolute_error", masked_mean_absolute_error),
])
def test_regression_scorer_equals_direct_metric(cv_data, name, metric):
    X, _ = cv_data
    rng = np.random.default_rng(9)
    y = X[:, :2] + rng.normal(size=(len(X), 2))
    y[::4, 0] = np.nan
    est = MaskedRidge().fit(X, y)
    sign = -1 if name.startswith("neg_") else 1
    expected = sign * metric(y, est.predict(X))
    assert make_multitask_scorer(name)(est, X, y) == pytest.approx(expected)
    if sign < 0:
        assert expected < 0


def test_neg_log_loss_is_negated(fitted):
    X, y, est = fitted
    score = make_multitask_scorer("neg_log_loss")(est, X, y)
    assert score < 0
    assert score == pytest.approx(-masked_log_loss(y, est.predict_proba(X)))
    # a masked loss function follows make_scorer: greater_is_better decides
    assert make_multitask_scorer(masked_log_loss, greater_is_better=False)(
        est, X, y) == pytest.approx(score)
    assert make_multitask_scorer(masked_log_loss)(est, X, y) == pytest.approx(-score)


def test_cross_validate_with_missing_labels(cv_data):
    X, y = cv_data
    est = MaskedLogisticRegression()
    cv = KFold(3, shuffle=True, random_state=0)
    scorer = make_multitask_scorer("roc_auc")
    result = cross_validate(est, X, y, cv=cv, scoring=scorer)
    assert np.isfinite(result["test_score"]).all()
    manual = [masked_roc_auc_score(y[test], MaskedLogisticRegression().fit(
        X[train], y[train]).predict_proba(X[test]))
        for train, test in cv.split(X)]
    np.testing.assert_allclose(result["test_score"], manual)
    scores = cross_val_score(est, X, y, cv=cv,
                             scoring=make_multitask_scorer("accuracy", task=0))
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_grid_search_pipeline_with_missing_labels(cv_data):
    X, y = cv_data
    pipe = make_pipeline(StandardScaler(), MaskedLogisticRegression())
    search = GridSearchCV(pipe, {"maskedlogisticregression__C": [0.001, 1.0]},
                          scoring=make_multitask_scorer("neg_log_loss"), cv=KFold(3))
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (scores < 0).all()
    assert search.best_params_ == {"maskedlogisticregression__C": 1.0}
    assert search.score(X, y) == pytest.approx(
        -masked_log_loss(y, search.predict_proba(X)))


def test_raw_values_scorer_gives_per_task_columns_and_refit_mean(cv_data):
    X, y = cv_data
    scorer = make_multitask_scorer("roc_auc", multioutput="raw_values",
                                   task_names=["click", "kind"])
    est = MaskedLogisticRegression().fit(X, y)
    out = scorer(est, X, y)
    assert list(out) == ["click", "kind", "mean"]
    raw = masked_roc_auc_score(y, est.predict_proba(X), multioutput="raw_values")
    assert [out["click"], out["kind"]] == pytest.approx(raw.tolist())
    assert out["mean"] == pytest.approx(raw.mean())

    search = GridSearchCV(MaskedLogisticRegression(), {"C": [0.001, 0.1, 10.0]},
                          scoring=scorer, cv=KFold(3), refit="mean")
    search.fit(X, y)
    res = search.cv_results_
    for key in ("mean_test_click", "mean_test_kind", "mean_test_mean",
                "rank_test_mean", "split0_test_click"):
        assert key in res
    np.testing.assert_allclose(res["mean_test_mean"],
                               (res["mean_test_click"] + res["mean_test_kind"]) / 2)
    assert search.best_index_ == np.argmax(res["mean_test_mean"])
    assert search.best_score_ == pytest.approx(res["mean_test_mean"].max())
    assert hasattr(search, "best_estimator_")

    cv_out = cross_validate(MaskedLogisticRegression(), X, y, cv=KFold(3),
                            scoring=make_multitask_scorer("accuracy",
                                                          multioutput="raw_values"))
    assert {"test_task0", "test_task1", "test_mean"} <= set(cv_out)


def test_task_selection_by_index_and_name(fitted):
    X, y, est = fitted
    names = ["click", "kind"]
    raw = make_multitask_scorer("average_precision", multioutput="raw_values",
                                task_names=names)(est, X, y)
    by_index = make_multitask_scorer("average_precision", task=1)(est, X, y)
    by_name = make_multitask_scorer("average_precision", task="kind",
                                    task_names=names)(est, X, y)
    assert by_index == pytest.approx(raw["kind"]) and by_name == pytest.approx(by_index)
    assert raw["click"] != pytest.approx(raw["kind"])
    weighted = make_multitask_scorer("average_precision", multioutput=[3, 1])(est, X, y)
    assert weighted == pytest.approx((3 * raw["click"] + raw["kind"]) / 4)


def test_task_selection_skips_other_tasks(cv_data):
    X, y = cv_data
    est = MaskedLogisticRegression().fit(X, y)
    y_test = y.copy()
    y_test[:, 1] = np.nan  # no label of task 1 in this "fold"
    assert np.isfinite(make_multitask_scorer("roc_auc", task=0)(est, X, y_test))
    with pytest.raises(ValueError, match="task 1 has no observed label"):
        make_multitask_scorer("roc_auc")(est, X, y_test)


def test_scorer_pickle_round_trip_and_repr(fitted):
    X, y, est = fitted
    scorer = make_multitask_scorer("roc_auc", multioutput="raw_values",
                                   task_names=["a", "b"])
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone(est, X, y) == scorer(est, X, y)
    assert repr(clone) == repr(scorer)
    assert repr(scorer) == ("make_multitask_scorer('roc_auc', response_method="
                            "'predict_proba', multioutput='raw_values', "
                            "task_names=['a', 'b'])")
    custom = make_multitask_scorer(f1_score, response_method="predict",
                                   average="macro")
    assert pickle.loads(pickle.dumps(custom))(est, X, y) == custom(est, X, y)
    assert "f1_score" in repr(custom) and "average='macro'" in repr(custom)


def test_custom_callable_scorers(fitted):
    X, y, est = fitted
    pred = est.predict(X)
    observed = ~np.isnan(y[:, 1])
    expected = f1_score(y[observed, 1], pred[observed, 1], average="macro")
    scorer = make_multitask_scorer(f1_score, response_method="predict", task=1,
                                   average="macro")
    assert scorer(est, X, y) == pytest.approx(expected)

    def brier(y_true, proba, sample_weight=None):
        return np.average((proba[:, 1] - y_true) ** 2, weights=sample_weight)

    proba = est.predict_proba(X)[0]
    observed = ~np.isnan(y[:, 0])
    loss = brier(y[observed, 0], proba[observed])
    scorer = make_multitask_scorer(brier, response_method="predict_proba", task=0,
                                   greater_is_better=False)
    assert scorer(est, X, y) == pytest.approx(-loss)


def test_string_label_roc_auc_under_grid_search():
    rng = np.random.default_rng(10)
    n = 90
    X = rng.normal(size=(n, 3))
    y = np.column_stack([
        np.where(X[:, 0] + rng.normal(size=n) > 0, "yes", "no"),
        rng.choice(["red", "green", "blue"], n),
    ]).astype(object)
    y[::7, 0] = None
    y[::5, 1] = None
    search = GridSearchCV(MaskedLogisticRegression(), {"C": [0.1, 1.0]},
                          scoring=make_multitask_scorer("roc_auc"), cv=KFold(3))
    search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_cross_validate_with_dataframe_target_of_mixed_types(cv_data):
    X, y = cv_data
    df = pd.DataFrame({
        "clicked": pd.array([None if np.isnan(v) else int(v) for v in y[:, 0]],
                            dtype="Int64"),
        "kind": pd.Series([None if np.isnan(v) else "abc"[int(v)] for v in y[:, 1]],
                          dtype="str"),
    })
    cv = KFold(3, shuffle=True, random_state=1)
    for name in ("accuracy", "roc_auc"):
        ours = cross_validate(MaskedLogisticRegression(), X, df, cv=cv,
                              scoring=make_multitask_scorer(name))["test_score"]
        numeric = cross_validate(MaskedLogisticRegression(), X, y, cv=cv,
                                 scoring=make_multitask_scorer(name))["test_score"]
        np.testing.assert_allclose(ours, numeric)


def test_sklearn_builtin_roc_auc_scorer_fails_on_multitask_string_labels():
    # Why this module exists: scikit-learn's "roc_auc" scorer cannot read the
    # list-of-probabilities output for string labels (nor any masked y); under
    # GridSearchCV the error becomes a nan score with only a warning.
    rng = np.random.default_rng(11)
    n = 60
    X = rng.normal(size=(n, 2))
    labels = np.where(X[:, 0] > 0, "yes", "no")
    y = np.column_stack([labels, labels[::-1]])
    search = GridSearchCV(MaskedLogisticRegression(), {"C": [1.0]},
                          scoring="roc_auc", cv=KFold(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Scoring failed" / non-finite scores
        search.fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_score"]).all()
    ours = GridSearchCV(MaskedLogisticRegression(), {"C": [1.0]},
                        scoring=make_multitask_scorer("roc_auc"), cv=KFold(3)).fit(X, y)
    assert np.isfinite(ours.cv_results_["mean_test_score"]).all()


def test_scorer_uses_classes_of_1d_estimator():
    y = np.array(["b", "a", None, "b"], dtype=object)
    est = FixedOutput(proba=np.array([[.2, .8], [.9, .1], [.5, .5], [.3, .7]]),
                      classes=np.array(["a", "b"]))
    assert make_multitask_scorer("roc_auc")(est, np.zeros((4, 1)), y) == 1.0
    # classes_ drive the column labels: swapping them inverts the ranking
    est.classes = np.array(["b", "a"])
    assert make_multitask_scorer("roc_auc")(est, np.zeros((4, 1)), y) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "f1"}, r"Unknown metric 'f1'; valid names are \['accuracy'"),
    ({"metric": f1_score}, "response_method .* is required"),
    ({"metric": "roc_auc", "response_method": "predict"},
     "response_method='predict' does not match"),
    ({"metric": "accuracy", "response_method": "decision_function"},
     "response_method must be None"),
    ({"metric": "neg_log_loss", "greater_is_better": False},
     "greater_is_better=False cannot be combined"),
    ({"metric": "r2", "task": "b"}, "task='b' is not one of task_names"),
    ({"metric": "r2", "task": -1}, "task must be a non-negative int"),
    ({"metric": "r2", "task": 0, "multioutput": "raw_values"},
     "multioutput must be left at 'uniform_average' when task is given"),
    ({"metric": "r2", "multioutput": "sum"}, "multioutput must be 'raw_values'"),
    ({"metric": "r2", "multioutput": [1, 2, 3], "task_names": ["a", "b"]},
     "multioutput weights have 3 entries but task_names has 2"),
    ({"metric": "r2", "task_names": ["a", "mean"]}, "task_names must be unique"),
])
def test_make_scorer_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multitask_scorer(**kwargs)


def test_scorer_call_errors(fitted):
    X, y, est = fitted
    with pytest.raises(ValueError, match="task_names has 3 names but y_true has 2"):
        make_multitask_scorer("accuracy", task_names=["a", "b", "c"])(est, X, y)
    with pytest.raises(ValueError, match="task=5 is out of range"):
        make_multitask_scorer("accuracy", task=5)(est, X, y)
    with pytest.raises(ValueError, match=r"multioutput weights must have shape \(2,\)"):
        make_multitask_scorer("accuracy", multioutput=[1, 1, 1])(est, X, y)
