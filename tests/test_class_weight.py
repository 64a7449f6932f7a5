"""What classifier users expect: class_weight, predict_log_proba, per-task sample weights."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.class_weight import compute_class_weight

from conftest import small
from sklearn_mmoe import (
    CGCClassifier,
    ESMMClassifier,
    MMoEClassifier,
    MMoERegressor,
    MultiTaskEstimator,
    PLEClassifier,
    SharedBottomClassifier,
    SharedBottomRegressor,
    SingleTaskClassifier,
    TensorFactorizationClassifier,
)
from sklearn_mmoe.metrics import (
    make_multitask_scorer,
    masked_accuracy_score,
    masked_r2_score,
    masked_roc_auc_score,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _small(cls, **params):
    return small(cls, learning_rate=0.01, batch_size=64, **params)


def _data(n=200, seed=0):
    """Task 0 imbalanced (about 15% positive), task 1 balanced, a third of it missing."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    Y = np.column_stack(
        [X[:, 0] + rng.normal(size=n) > 1.5, X[:, 1] + 0.5 * rng.normal(size=n) > 0]
    ).astype(float)
    Y[::3, 1] = np.nan
    return X, Y


def _same(a, b):
    """Bit-identical per-task probabilities of two fitted classifiers on X."""
    return all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def _entry_weights(Y, per_task):
    """The (n, n_tasks) sample weight that gives each observed entry its class's weight."""
    weight = np.ones(Y.shape)
    for t, weights in enumerate(per_task):
        if weights is not None:
            for label, w in weights.items():
                weight[Y[:, t] == label, t] = w
    return weight


# ------------------------------------------------------ 2-D sample_weight
def test_2d_sample_weight_with_equal_columns_is_the_1d_weight():
    X, Y = _data()
    w = np.random.RandomState(1).uniform(0.2, 3, size=len(X))
    for cls, y in [(MMoEClassifier, Y), (SharedBottomRegressor, X[:, :2] @ [[1.0, 2], [-1, 0.5]])]:
        one_d = _small(cls, max_epochs=3).fit(X, y, sample_weight=w)
        two_d = _small(cls, max_epochs=3).fit(X, y, sample_weight=np.column_stack([w, w]))
        if cls is MMoEClassifier:
            assert _same(one_d.predict_proba(X), two_d.predict_proba(X))
        else:
            assert np.array_equal(one_d.predict(X), two_d.predict(X))


def test_2d_zero_weight_removes_a_row_from_one_task_only():
    # A zero weight for (row, task 0) is a missing label there: the row leaves
    # task 0's loss and gradient and still trains task 1.
    X, Y = _data()
    rows = np.arange(len(X)) % 4 == 0
    weight = np.ones(Y.shape)
    weight[rows, 0] = 0
    params = dict(max_epochs=15)
    weighted = _small(MMoEClassifier, **params).fit(X, Y, sample_weight=weight)
    Y_masked = Y.copy()
    Y_masked[rows, 0] = np.nan
    masked = _small(MMoEClassifier, **params).fit(X, Y_masked)
    for p, q in zip(weighted.predict_proba(X), masked.predict_proba(X), strict=True):
        np.testing.assert_allclose(p, q, atol=1e-5)
    # Removing the rows from both tasks is a different model.
    weight[rows, 1] = 0
    both = _small(MMoEClassifier, **params).fit(X, Y, sample_weight=weight)
    assert np.abs(both.predict_proba(X)[1] - weighted.predict_proba(X)[1]).max() > 1e-3


def test_2d_sample_weight_scales_each_regression_task_with_its_own_column():
    X, _ = _data()
    Y = X[:, :2] @ np.array([[1.0, 2.0], [-1.0, 0.5]]) + [10.0, -3.0]
    rows = X[:, 2] > 0.5  # not at random: dropping them moves each task's mean
    weight = np.ones(Y.shape)
    weight[rows, 1] = 0
    Y_masked = Y.copy()
    Y_masked[rows, 1] = np.nan
    a = _small(SharedBottomRegressor, max_epochs=10).fit(X, Y, sample_weight=weight)
    b = _small(SharedBottomRegressor, max_epochs=10).fit(X, Y_masked)
    assert [t.mean for t in a._tasks] == pytest.approx([t.mean for t in b._tasks], rel=1e-12)
    assert a._tasks[0].mean != pytest.approx(a._tasks[1].mean)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-4)


def test_2d_sample_weight_in_partial_fit():
    X, Y = _data()
    weight = np.ones(Y.shape)
    weight[::2, 1] = 0
    Y_masked = Y.copy()
    Y_masked[::2, 1] = np.nan
    a, b = _small(MMoEClassifier), _small(MMoEClassifier)
    for _ in range(3):
        a.partial_fit(X, Y, sample_weight=weight)
        b.partial_fit(X, Y_masked)
    for p, q in zip(a.predict_proba(X), b.predict_proba(X), strict=True):
        np.testing.assert_allclose(p, q, atol=1e-5)


@pytest.mark.parametrize(
    "weight, message",
    [
        (np.ones((200, 3)), r"sample_weight must have shape \(200,\) or \(200, 2\)"),
        (np.ones((200, 2, 1)), r"sample_weight must have shape \(200,\) or \(200, 2\)"),
        (np.ones((199, 2)), r"sample_weight must have shape \(200,\) or \(200, 2\)"),
        (np.full((200, 2), -1.0), "sample_weight must be non-negative"),
        (np.full((200, 2), np.nan), "sample_weight"),
        (np.ones(199), "sample_weight"),
    ],
)
def test_sample_weight_shape_errors(weight, message):
    X, Y = _data()
    with pytest.raises(ValueError, match=message):
        _small(MMoEClassifier, max_epochs=1).fit(X, Y, sample_weight=weight)
    with pytest.raises(ValueError, match=message):
        _small(MMoEClassifier).partial_fit(X, Y, sample_weight=weight)


def test_1d_y_takes_a_single_weight_column():
    X, Y = _data()
    w = np.random.RandomState(1).uniform(0.2, 3, size=len(X))
    a = _small(SharedBottomClassifier, max_epochs=2).fit(X, Y[:, 0], sample_weight=w)
    b = _small(SharedBottomClassifier, max_epochs=2).fit(X, Y[:, 0], sample_weight=w[:, None])
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(200,\) or \(200, 1\)"):
        _small(SharedBottomClassifier, max_epochs=1).fit(X, Y[:, 0], sample_weight=np.ones((200, 2)))


def test_score_takes_a_weight_per_row_and_task():
    X, Y = _data()
    weight = np.random.RandomState(2).uniform(0, 2, size=Y.shape)
    weight[::5, 0] = 0
    clf = _small(MMoEClassifier, max_epochs=3).fit(X, Y)
    pred = clf.predict(X)
    expected = []
    for t in range(2):
        observed = ~np.isnan(Y[:, t])
        hit = pred[observed, t] == Y[observed, t]
        expected.append(np.average(hit, weights=weight[observed, t]))
    assert clf.score(X, Y, sample_weight=weight) == pytest.approx(np.mean(expected))
    assert masked_accuracy_score(Y, pred, sample_weight=weight, multioutput="raw_values") == (
        pytest.approx(expected)
    )
    # Probability metrics and scorers too.
    proba = clf.predict_proba(X)
    auc = [
        masked_roc_auc_score(Y[:, t], proba[t], sample_weight=weight[:, t]) for t in range(2)
    ]
    assert masked_roc_auc_score(Y, proba, sample_weight=weight, multioutput="raw_values") == (
        pytest.approx(auc)
    )
    scorer = make_multitask_scorer("roc_auc")
    assert scorer(clf, X, Y, sample_weight=weight) == pytest.approx(np.mean(auc))
    # The generic estimator scores each task with its column, classification and regression.
    Y_mixed = np.column_stack([Y[:, 0], X[:, 1] * 3.0])
    model = _small(
        MultiTaskEstimator, max_epochs=3, task_types=["classification", "regression"]
    ).fit(X, Y_mixed)
    pred = model.predict(X)
    expected = np.mean([
        masked_accuracy_score(Y_mixed[:, 0], pred[:, 0], sample_weight=weight[:, 0]),
        masked_r2_score(Y_mixed[:, 1], pred[:, 1], sample_weight=weight[:, 1]),
    ])
    assert model.score(X, Y_mixed, sample_weight=weight) == pytest.approx(expected)
    for est, y in [(clf, Y), (model, Y_mixed)]:
        with pytest.raises(ValueError, match=r"sample_weight must have shape \(200,\) or \(200, 2\)"):
            est.score(X, y, sample_weight=np.ones((200, 3)))


# ------------------------------------------------------------ class_weight
@pytest.mark.parametrize(
    "cls", [MMoEClassifier, SharedBottomClassifier, PLEClassifier, TensorFactorizationClassifier]
)
def test_class_weight_is_the_equivalent_2d_sample_weight_bit_for_bit(cls):
    X, Y = _data()
    per_task = [{0.0: 1.0, 1.0: 4.0}, {0.0: 2.5, 1.0: 0.5}]
    a = _small(cls, max_epochs=3, class_weight=per_task).fit(X, Y)
    b = _small(cls, max_epochs=3).fit(X, Y, sample_weight=_entry_weights(Y, per_task))
    assert _same(a.predict_proba(X), b.predict_proba(X))
    # With a sample weight, the two multiply.
    w = np.random.RandomState(1).uniform(0.2, 3, size=len(X))
    a = _small(cls, max_epochs=3, class_weight=per_task).fit(X, Y, sample_weight=w)
    b = _small(cls, max_epochs=3).fit(X, Y, sample_weight=w[:, None] * _entry_weights(Y, per_task))
    assert _same(a.predict_proba(X), b.predict_proba(X))
    # ... and the weights matter.
    c = _small(cls, max_epochs=3).fit(X, Y, sample_weight=w)
    assert not _same(a.predict_proba(X), c.predict_proba(X))


def test_balanced_is_computed_per_task_on_observed_labels_only():
    X, Y = _data()
    # Hide most of task 1's positives: were the missing labels counted (or
    # the other task's), the balance would differ.
    Y[(Y[:, 1] == 1) & (np.arange(len(Y)) % 2 == 0), 1] = np.nan
    w = np.random.RandomState(1).uniform(0.2, 3, size=len(X))
    per_task = []
    for t in range(2):
        observed = ~np.isnan(Y[:, t])
        classes = np.unique(Y[observed, t])
        weights = compute_class_weight(
            "balanced", classes=classes, y=Y[observed, t], sample_weight=w[observed]
        )
        per_task.append(dict(zip(classes, weights)))
    assert per_task[1][1.0] > 1.5 * per_task[1][0.0]
    a = _small(MMoEClassifier, max_epochs=3, class_weight="balanced").fit(X, Y, sample_weight=w)
    b = _small(MMoEClassifier, max_epochs=3).fit(
        X, Y, sample_weight=w[:, None] * _entry_weights(Y, per_task)
    )
    assert _same(a.predict_proba(X), b.predict_proba(X))
    # A list entry per task, None for no weights.
    c = _small(MMoEClassifier, max_epochs=3, class_weight=["balanced", None]).fit(X, Y)
    d = _small(MMoEClassifier, max_epochs=3, class_weight=[per_task[0], None])
    w0 = compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=Y[:, 0])
    d.set_params(class_weight=[dict(zip([0.0, 1.0], w0)), None]).fit(X, Y)
    assert _same(c.predict_proba(X), d.predict_proba(X))


def test_balanced_moves_the_decision_threshold_towards_the_rare_class():
    X, Y = _data(n=600)
    y = Y[:, 0]
    assert 0.05 < y.mean() < 0.25
    params = dict(max_epochs=30, n_iter_no_change=100)
    plain = _small(MMoEClassifier, **params).fit(X, Y)
    balanced = _small(MMoEClassifier, class_weight=["balanced", None], **params).fit(X, Y)
    p_plain, p_balanced = plain.predict_proba(X)[0][:, 1], balanced.predict_proba(X)[0][:, 1]
    # Trained without weights, the mean probability is about the positive
    # rate; balanced, both classes weigh half, so the mean of the two classes'
    # mean probabilities is about 1/2.
    assert abs(p_plain.mean() - y.mean()) < 0.05
    class_mean = (p_balanced[y == 1].mean() + p_balanced[y == 0].mean()) / 2
    assert abs(class_mean - 0.5) < 0.08
    # So more rows are predicted positive, and more positives are found.
    pred_plain, pred_balanced = plain.predict(X)[:, 0], balanced.predict(X)[:, 0]
    assert pred_balanced.mean() > 1.5 * pred_plain.mean()
    assert pred_balanced[y == 1].mean() > pred_plain[y == 1].mean() + 0.1


def test_class_weight_on_1d_string_multiclass_labels():
    X, _ = _data()
    y = np.array(["a", "b", "c"])[np.digitize(X[:, 0], [-0.5, 1.0])]
    weights = {"a": 0.5, "c": 3.0}  # "b" weighs 1
    a = _small(SingleTaskClassifier, max_epochs=3, class_weight=weights).fit(X, y)
    entry = np.select([y == "a", y == "c"], [0.5, 3.0], 1.0)
    b = _small(SingleTaskClassifier, max_epochs=3).fit(X, y, sample_weight=entry)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    # A one-entry list is the same for 1-D y.
    c = _small(SingleTaskClassifier, max_epochs=3, class_weight=[weights]).fit(X, y)
    assert np.array_equal(a.predict_proba(X), c.predict_proba(X))
    # A dict naming a label the task lacks is fine when it weighs every class
    # (scikit-learn's rule: a fold may miss a rare class).
    full = {"a": 0.5, "b": 1.0, "c": 3.0, "d": 7.0}
    d = _small(SingleTaskClassifier, max_epochs=3, class_weight=full).fit(X, y)
    assert np.array_equal(a.predict_proba(X), d.predict_proba(X))


def test_esmm_balance_counts_only_the_clicked_rows():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 5))
    click = rng.uniform(size=400) < 0.4
    buy = click & (rng.uniform(size=400) < 0.2)
    # Conversion given as 0 (not missing) where there is no click: those zeros
    # are not conversion labels, so they do not count in its balance.
    Y = np.column_stack([click, buy]).astype(float)
    w_conv = compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=buy[click])
    w_click = compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=click)
    entry = np.column_stack([w_click[click.astype(int)], w_conv[buy.astype(int)]])
    for cls, extra in [(ESMMClassifier, {}), (MultiTaskEstimator, dict(conditional_tasks={1: 0}))]:
        a = _small(cls, max_epochs=3, class_weight="balanced", **extra).fit(X, Y)
        # The weight applies to the joint label, class 0 where there is no click.
        b = _small(cls, max_epochs=3, **extra).fit(X, Y, sample_weight=entry)
        assert _same(a.predict_proba(X), b.predict_proba(X))
        # Counting every row would give other weights.
        w_all = compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=buy)
        entry_all = np.column_stack([entry[:, 0], w_all[buy.astype(int)]])
        c = _small(cls, max_epochs=3, **extra).fit(X, Y, sample_weight=entry_all)
        assert not _same(a.predict_proba(X), c.predict_proba(X))


def test_class_weight_on_mixed_tasks_skips_regression_tasks():
    X, Y = _data()
    Y_mixed = np.column_stack([Y[:, 0], X[:, 1] * 3.0])
    kinds = dict(task_types=["classification", "regression"], max_epochs=3)
    a = _small(MultiTaskEstimator, class_weight="balanced", **kinds).fit(X, Y_mixed)
    b = _small(MultiTaskEstimator, class_weight=["balanced", None], **kinds).fit(X, Y_mixed)
    assert np.array_equal(a.predict(X), b.predict(X))
    with pytest.raises(ValueError, match="class_weight: task 1 is a regression task"):
        _small(MultiTaskEstimator, class_weight=[None, {0: 1}], **kinds).fit(X, Y_mixed)
    with pytest.raises(ValueError, match="class_weight: task 0 is a regression task"):
        _small(MultiTaskEstimator, class_weight={0: 2.0}, task_types=["regression"]).fit(
            X, Y_mixed[:, 1]
        )


def test_regressors_have_no_class_weight():
    for cls in (MMoERegressor, SharedBottomRegressor):
        assert "class_weight" not in cls().get_params()
        assert not hasattr(cls(), "predict_log_proba")
        with pytest.raises(TypeError, match="class_weight"):
            cls(class_weight="balanced")


def test_class_weight_is_a_parameter_of_every_classifier():
    for cls in (MMoEClassifier, CGCClassifier, ESMMClassifier, MultiTaskEstimator):
        est = cls(class_weight="balanced")
        assert est.get_params()["class_weight"] == "balanced"
        assert clone(est).class_weight == "balanced"
        assert cls().class_weight is None
    with pytest.raises(TypeError):
        MMoEClassifier(class_wieght="balanced")
    with pytest.raises(TypeError):
        MMoEClassifier("balanced")  # keyword-only, as the other parameters


@pytest.mark.parametrize(
    "class_weight, message",
    [
        ({0: 1.0, 1: 2.0}, "class_weight: a dict weighs the classes of one task; y has 2 tasks"),
        ([None], r"class_weight must have one entry per task \(2\), got 1"),
        ([None, None, None], r"class_weight must have one entry per task \(2\), got 3"),
        ([{0: 1, 7: 2}, None], r"class_weight: task 0 has no class \[7\]"),
        ([None, "balance"], "class_weight: the entry of task 1 must be None, 'balanced' or a dict"),
        ([{0: -1.0}, None], "class_weight: task 0's weights must be finite non-negative"),
        ([{0: np.inf}, None], "class_weight: task 0's weights must be finite non-negative"),
        ([{0: "x"}, None], "class_weight: task 0's weights must be finite non-negative"),
        ([{0: 0.0, 1: 0.0}, None], "task 0 has no observed label with a non-zero sample_weight"),
    ],
)
def test_class_weight_errors(class_weight, message):
    X, Y = _data()
    with pytest.raises(ValueError, match=message):
        _small(MMoEClassifier, max_epochs=1, class_weight=class_weight).fit(X, Y)


def test_partial_fit_takes_class_weight_dicts_but_not_balanced():
    X, Y = _data()
    per_task = [{0.0: 1.0, 1.0: 4.0}, None]
    a = _small(MMoEClassifier, class_weight=per_task).partial_fit(X, Y)
    b = _small(MMoEClassifier).partial_fit(X, Y, sample_weight=_entry_weights(Y, per_task))
    assert _same(a.predict_proba(X), b.predict_proba(X))
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported by partial_fit"):
        _small(MMoEClassifier, class_weight=["balanced", None]).partial_fit(X, Y)
    # A failed call leaves the fitted model as it was.
    before = a.predict_proba(X)
    with pytest.raises(ValueError, match="not supported by partial_fit"):
        a.set_params(class_weight="balanced").partial_fit(X, Y)
    assert _same(before, a.predict_proba(X))


# -------------------------------------------------------- predict_log_proba
def test_predict_log_proba_is_the_log_of_predict_proba():
    X, Y = _data()
    Y3 = Y.copy()
    Y3[:, 1] = np.digitize(X[:, 1], [-0.5, 0.5])  # a 3-class task
    for y in (Y3, Y3[:, 1], Y[:, 0]):
        clf = _small(MMoEClassifier, max_epochs=5).fit(X, y)
        proba, log_proba = clf.predict_proba(X), clf.predict_log_proba(X)
        if y.ndim == 1:
            assert isinstance(log_proba, np.ndarray)
            proba, log_proba = [proba], [log_proba]
        assert len(log_proba) == len(proba)
        for p, lp in zip(proba, log_proba, strict=True):
            assert lp.shape == p.shape and lp.dtype == np.float64
            np.testing.assert_allclose(np.exp(lp), p, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(lp, np.log(p), rtol=1e-9, atol=1e-15)


def test_predict_log_proba_stays_finite_where_probabilities_saturate():
    X, Y = _data()
    Y3 = Y.copy()
    Y3[:, 1] = np.digitize(X[:, 1], [-0.5, 0.5])
    # Raw inputs (no numeric encoding), so that scaled-up rows give huge logits.
    clf = _small(MMoEClassifier, max_epochs=20, numeric_encoding=None).fit(X, Y3)
    # Log-probabilities below -40: predict_proba keeps probabilities of 1e-18
    # and less (1 - p would round them to 0), so the two agree.
    near = X * 10
    for p, lp in zip(clf.predict_proba(near), clf.predict_log_proba(near), strict=True):
        assert lp.min() < -40
        np.testing.assert_allclose(lp, np.log(p), rtol=1e-9, atol=1e-15)
    far = X * 1e4  # logits of thousands: probabilities round to exactly 0 and 1
    with np.errstate(divide="ignore"):
        logs_of_proba = [np.log(p) for p in clf.predict_proba(far)]
    assert all(np.isneginf(lp).any() for lp in logs_of_proba)
    log_proba = clf.predict_log_proba(far)
    for lp, naive in zip(log_proba, logs_of_proba, strict=True):
        assert np.isfinite(lp).all()
        assert (lp <= 0).all()
        # Where the naive log is exact, they agree.
        exact = naive > -30
        np.testing.assert_allclose(lp[exact], naive[exact], atol=1e-9)


def test_predict_log_proba_of_conditional_and_mixed_tasks():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 5))
    click = rng.uniform(size=300) < 1 / (1 + np.exp(-X[:, 0]))
    Y = np.column_stack([click, np.where(click, X[:, 1] > 0, np.nan)]).astype(float)
    esmm = _small(ESMMClassifier, max_epochs=5).fit(X, Y)
    for p, lp in zip(esmm.predict_proba(X), esmm.predict_log_proba(X), strict=True):
        np.testing.assert_allclose(np.exp(lp), p, rtol=1e-12, atol=1e-15)  # pCVR conditional
    Y_mixed = np.column_stack([Y[:, 0], X[:, 2] * 3.0])
    model = _small(
        MultiTaskEstimator, max_epochs=3, task_types=["classification", "regression"]
    ).fit(X, Y_mixed)
    proba, log_proba = model.predict_proba(X), model.predict_log_proba(X)
    assert log_proba[1] is None and proba[1] is None
    np.testing.assert_allclose(np.exp(log_proba[0]), proba[0], rtol=1e-12, atol=1e-15)
    regression_only = _small(
        MultiTaskEstimator, max_epochs=1, task_types=["regression"]
    ).fit(X, Y_mixed[:, 1])
    with pytest.raises(ValueError, match="every task is a regression task"):
        regression_only.predict_log_proba(X)
