"""Property-based tests (hypothesis) of the estimators on random valid data.

The data sets vary the number of rows, features and tasks, each task's label
type (binary ints, multiclass ints, strings; floats for regressors), 1-D vs
2-D y, and a random pattern of missing labels in which every task keeps at
least two observed labels (two classes for a classifier) and some rows have
no label at all. Runs are derandomized, so CI sees the same examples.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from conftest import small
from sklearn_mmoe import (
    MMoEClassifier,
    MMoERegressor,
    OMoEClassifier,
    OMoERegressor,
    SharedBottomClassifier,
    SharedBottomRegressor,
)

CLASSIFIERS = [SharedBottomClassifier, OMoEClassifier, MMoEClassifier]
REGRESSORS = [SharedBottomRegressor, OMoERegressor, MMoERegressor]

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,  # nothing written to the working tree
    suppress_health_check=[HealthCheck.too_slow],
)

LABEL_SETS = {
    "binary": [0, 1],
    "multiclass3": [0, 1, 2],
    "multiclass4": [1, 2, 5, 7],
    "strings2": ["no", "yes"],
    "strings3": ["no", "yes", "maybe"],
}


@dataclass
class Data:
    X: np.ndarray
    labels: np.ndarray  # (n, T) object array of the true labels, none missing
    missing: np.ndarray  # (n, T) bool, True where the label is missing
    one_d: bool
    regression: bool

    def y(self, marker=np.nan, *, as_object=False):
        """y with ``marker`` at missing entries, in its natural dtype.

        Regression: float64. Classification: float64 with NaN when every
        task is numeric and some label is missing, the labels' own dtype when
        none is missing, else an object array. ``as_object`` forces an
        object array (the only one that can hold None / pd.NA).
        """
        y = self.labels.copy()
        y[self.missing] = marker
        if as_object:
            pass
        elif self.regression:
            y = y.astype(np.float64)
        elif not any(isinstance(v, str) for v in self.labels.ravel()):
            y = y.astype(np.float64 if self.missing.any() else np.int64)
        elif not self.missing.any() and all(isinstance(v, str) for v in self.labels.ravel()):
            y = y.astype(str)
        return y[:, 0] if self.one_d else y

    @property
    def fully_missing(self):
        return self.missing.all(axis=1)


@st.composite
def datasets(draw, regression, always_missing=False, max_tasks=3):
    n = draw(st.integers(20, 80))
    p = draw(st.integers(1, 6))
    n_tasks = draw(st.integers(1, max_tasks))
    one_d = n_tasks == 1 and draw(st.booleans())
    kinds = draw(
        st.lists(
            st.just("float") if regression else st.sampled_from(sorted(LABEL_SETS)),
            min_size=n_tasks,
            max_size=n_tasks,
        )
    )
    with_missing = always_missing or draw(st.booleans())
    missing_rate = draw(st.sampled_from([0.1, 0.3, 0.6]))
    n_empty_rows = draw(st.integers(1, n // 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    X = rng.normal(size=(n, p))
    labels = np.empty((n, n_tasks), dtype=object)
    for t, kind in enumerate(kinds):
        score = X @ rng.normal(size=p) + 0.5 * rng.normal(size=n)
        if kind == "float":
            labels[:, t] = (3.0 * score + rng.normal()).tolist()
        else:
            values = LABEL_SETS[kind]
            # Quantile bins of a linear score: every class is frequent.
            edges = np.quantile(score, np.linspace(0, 1, len(values) + 1)[1:-1])
            labels[:, t] = [values[i] for i in np.searchsorted(edges, score)]

    missing = np.zeros((n, n_tasks), dtype=bool)
    if with_missing:
        missing = rng.random((n, n_tasks)) < missing_rate
        empty = rng.choice(n, size=n_empty_rows, replace=False)
        missing[empty] = True
        others = np.setdiff1d(np.arange(n), empty)
        for t, kind in enumerate(kinds):
            # Each task keeps two observed labels, of two different classes.
            keep = rng.choice(others, size=2, replace=False)
            missing[keep, t] = False
            if kind != "float":
                labels[keep, t] = LABEL_SETS[kind][:2]
    return Data(X, labels, missing, one_d, regression)


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _probas(model, X):
    proba = model.predict_proba(X)
    return [proba] if isinstance(proba, np.ndarray) else proba


def _observed_classes(data, t):
    values = data.labels[~data.missing[:, t], t].tolist()
    return sorted(set(values))


training = st.fixed_dictionaries(
    {"max_epochs": st.integers(2, 4), "batch_size": st.sampled_from([16, 32, 256])}
)


# ------------------------------------------------------------------ outputs
@settings(max_examples=100, **SETTINGS)
@given(data=datasets(regression=False), cls=st.sampled_from(CLASSIFIERS), params=training)
def test_classifier_outputs_are_valid(data, cls, params):
    y = data.y()
    model = _fit(small(cls, **params), data.X, y)
    classes = [model.classes_] if data.one_d else model.classes_
    assert len(classes) == data.labels.shape[1]
    probas = _probas(model, data.X)
    assert len(probas) == len(classes)
    for t, (proba, task_classes) in enumerate(zip(probas, classes)):
        assert task_classes.tolist() == _observed_classes(data, t)
        assert proba.shape == (len(data.X), len(task_classes))
        assert proba.dtype == np.float64
        assert np.all(np.isfinite(proba))
        assert np.all(proba >= 0)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-6)

    pred = model.predict(data.X)
    assert pred.shape == y.shape
    columns = [pred] if data.one_d else [pred[:, t] for t in range(pred.shape[1])]
    for column, proba, task_classes in zip(columns, probas, classes):
        assert set(column.tolist()) <= set(task_classes.tolist())
        # predict is the most probable class (ties aside).
        assert column.tolist() == task_classes[proba.argmax(axis=1)].tolist()


@settings(max_examples=60, **SETTINGS)
@given(data=datasets(regression=True), cls=st.sampled_from(REGRESSORS), params=training)
def test_regressor_outputs_are_valid(data, cls, params):
    y = data.y()
    model = _fit(small(cls, **params), data.X, y)
    pred = model.predict(data.X)
    assert pred.shape == y.shape
    assert pred.dtype == np.float64
    assert np.all(np.isfinite(pred))


@settings(max_examples=30, **SETTINGS)
@given(
    data=datasets(regression=False, max_tasks=1),
    cls=st.sampled_from(CLASSIFIERS + REGRESSORS),
)
def test_one_task_as_1d_or_2d_y_trains_the_same_model(data, cls):
    regression = cls in REGRESSORS
    if regression:
        data = Data(data.X, data.X[:, :1].astype(object) * 2.0 + 1.0, data.missing, True, True)
    y = data.y().reshape(-1)
    a = _fit(small(cls, max_epochs=3), data.X, y)
    b = _fit(small(cls, max_epochs=3), data.X, y.reshape(-1, 1))
    if regression:
        assert np.array_equal(a.predict(data.X), b.predict(data.X)[:, 0])
    else:
        assert np.array_equal(a.predict_proba(data.X), b.predict_proba(data.X)[0])
        assert np.array_equal(a.classes_, b.classes_[0])


# ----------------------------------------------- masked entries are inert
@settings(max_examples=50, **SETTINGS)
@given(
    data=datasets(regression=False, always_missing=True),
    cls=st.sampled_from(CLASSIFIERS),
    params=training,
)
def test_classifier_missing_markers_are_equivalent(data, cls, params):
    X = data.X
    reference = _fit(small(cls, **params), X, data.y(np.nan, as_object=True))
    expected = _probas(reference, X)
    for marker in [None, pd.NA]:
        model = _fit(small(cls, **params), X, data.y(marker, as_object=True))
        for p, q in zip(expected, _probas(model, X), strict=True):
            assert np.array_equal(p, q)
        for a, b in zip(reference.classes_, model.classes_):
            assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "marker",
    [None, pd.NA],
    ids=["None", "NA"],
)
@settings(max_examples=30, **SETTINGS)
@given(
    data=datasets(regression=True, always_missing=True),
    cls=st.sampled_from(REGRESSORS),
    params=training,
)
def test_regressor_missing_markers_are_equivalent(marker, data, cls, params):
    X = data.X
    # The marker under test first: a failure there needs no training.
    model = _fit(small(cls, **params), X, data.y(marker, as_object=True))
    reference = _fit(small(cls, **params), X, data.y(np.nan))
    assert np.array_equal(model.predict(X), reference.predict(X))


@settings(max_examples=60, **SETTINGS)
@given(
    data=datasets(regression=False, always_missing=True),
    cls=st.sampled_from(CLASSIFIERS + REGRESSORS),
    epochs=st.integers(2, 5),
)
def test_rows_without_labels_can_be_dropped(data, cls, epochs):
    # One full batch: the only difference is the summation order of the rows
    # in the batch (float32 rounding), which stays below 1e-5 for a few epochs.
    if cls in REGRESSORS:
        floats = data.X @ np.linspace(1.0, -1.0, data.X.shape[1]) + 0.1
        labels = np.repeat(floats[:, None], data.labels.shape[1], axis=1).astype(object)
        data = Data(data.X, labels, data.missing, data.one_d, True)
    keep = ~data.fully_missing
    assert not keep.all()
    y = data.y()
    params = dict(batch_size=1000, max_epochs=epochs)
    full = _fit(small(cls, **params), data.X, y)
    subset = _fit(small(cls, **params), data.X[keep], y[keep])
    if cls in REGRESSORS:
        np.testing.assert_allclose(full.predict(data.X), subset.predict(data.X), rtol=0, atol=1e-5)
    else:
        for p, q in zip(_probas(full, data.X), _probas(subset, data.X), strict=True):
            np.testing.assert_allclose(p, q, rtol=0, atol=1e-5)
