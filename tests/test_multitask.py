"""Mixed task kinds and conditional (ESMM) tasks."""

import numpy as np
import pandas as pd
import pytest
import torch

from sklearn_mmoe import ESMMClassifier, MMoEClassifier, MultiTaskEstimator
from sklearn_mmoe.metrics import masked_r2_score
from sklearn_mmoe.nn import MaskedMultiTaskLoss

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _mixed(n=1500, seed=0):
    """A binary task, a 3-class string task and a regression task (masked)."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6))
    Y = np.empty((n, 3), dtype=object)
    Y[:, 0] = (X[:, 0] > 0).astype(int)
    Y[:, 1] = np.array(["low", "mid", "high"])[np.digitize(X[:, 1] + X[:, 2], [-0.7, 0.7])]
    Y[:, 2] = 5 * X[:, 3] - 2 * X[:, 0] + 100.0  # e.g. watch time
    Y[::4, 2] = np.nan
    return X, Y


def _clicks(n=3000, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6))
    click = rng.uniform(size=n) < 1 / (1 + np.exp(-(X[:, 0] - 0.5)))
    buy = rng.uniform(size=n) < 1 / (1 + np.exp(-X[:, 1]))
    Y = np.column_stack([click, np.where(click, buy & click, np.nan)]).astype(float)
    return X, Y


@pytest.mark.parametrize("architecture", ["shared_bottom", "omoe", "mmoe", "cgc", "ple"])
def test_mixed_tasks_are_learned_together(architecture):
    X, Y = _mixed()
    model = MultiTaskEstimator(
        architecture=architecture, task_types=["classification", "classification", "regression"],
        n_experts=4, expert_hidden_sizes=(16,), max_epochs=40, learning_rate=5e-3, random_state=0,
    ).fit(X[:1000], Y[:1000])
    assert model.task_types_ == ["binary", "multiclass", "regression"]
    assert list(model.classes_[0]) == [0, 1] and list(model.classes_[1]) == ["high", "low", "mid"]
    assert model.classes_[2] is None
    pred = model.predict(X[1000:])
    assert pred.shape == (500, 3) and pred.dtype == object
    assert np.mean(pred[:, 0] == Y[1000:, 0]) > 0.9
    assert np.mean(pred[:, 1] == Y[1000:, 1]) > 0.8
    assert masked_r2_score(Y[1000:, 2], pred[:, 2].astype(float)) > 0.8
    proba = model.predict_proba(X[1000:])
    assert proba[0].shape == (500, 2) and proba[1].shape == (500, 3) and proba[2] is None
    assert model.score(X[1000:], Y[1000:]) > 0.8


def test_task_types_inference_and_validation():
    X, Y = _mixed(n=300)
    model = MultiTaskEstimator(n_experts=2, max_epochs=2, random_state=0).fit(X, Y)
    assert model.task_types_ == ["binary", "multiclass", "regression"]
    # Never classification from floats: whole-number floats are a regression
    # task, with a warning that says how to get a classification task.
    counts = np.column_stack([X[:, 0] > 0, np.arange(300) % 7]).astype(float)
    with pytest.warns(UserWarning, match=r"task 0 has float targets that are all whole numbers"):
        inferred = MultiTaskEstimator(n_experts=2, max_epochs=2, random_state=0).fit(X, counts)
    assert inferred.task_types_ == ["regression", "regression"]
    labels = MultiTaskEstimator(n_experts=2, max_epochs=2, random_state=0).fit(X, counts.astype(int))
    assert labels.task_types_ == ["binary", "multiclass"]
    # Explicit kinds override the inference: integers as a regression target.
    explicit = MultiTaskEstimator(
        n_experts=2, max_epochs=2, random_state=0, task_types=["classification", "regression"]
    ).fit(X, counts)
    assert explicit.task_types_ == ["binary", "regression"]
    assert explicit.predict(X).dtype == np.float64
    with pytest.raises(ValueError, match="task_types must list one of"):
        MultiTaskEstimator(task_types=["classification"]).fit(X, Y)
    with pytest.raises(ValueError, match="task_types must list one of"):
        MultiTaskEstimator(task_types=["classification", "ranking", "regression"]).fit(X, Y)
    with pytest.raises(ValueError, match="task 1 is a regression task but its targets are not numeric"):
        MultiTaskEstimator(task_types=["classification", "regression", "regression"]).fit(X, Y)
    regression_only = MultiTaskEstimator(n_experts=2, max_epochs=2, task_types=["regression"]).fit(X, Y[:, 2])
    with pytest.raises(ValueError, match="every task is a regression task"):
        regression_only.predict_proba(X)


# ----------------------------------------------------------- conditional tasks
def test_conditional_loss_is_trained_on_the_entire_space():
    # Rows where the parent (click) is negative still train the child's
    # output through the joint probability: that is ESMM's point.
    loss = MaskedMultiTaskLoss(["binary", "binary"], [1, 1], parents=[None, 0])
    logits = torch.zeros(4, 2, 1, requires_grad=True)
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    weight = torch.ones(4, 2)
    loss(logits, target, weight).backward()
    assert torch.all(logits.grad[:2, 1, 0] != 0)  # non-clicked rows move pCVR
    # and it is the BCE of p(click) * p(conversion | click) on the joint label
    value = loss.per_task(logits.detach(), target, weight)[1]
    expected = torch.nn.functional.binary_cross_entropy(torch.full((4,), 0.25), target[:, 1])
    torch.testing.assert_close(value, expected)


def test_esmm_outputs_and_the_two_ways_to_mark_non_clicks():
    X, Y = _clicks()
    esmm = ESMMClassifier(bottom_hidden_sizes=(32,), max_epochs=10, random_state=0).fit(X, Y)
    p_ctr, p_cvr = (p[:, 1] for p in esmm.predict_proba(X))
    joint = esmm.predict_joint_proba(X)
    assert np.array_equal(joint[0], esmm.predict_proba(X)[0])
    np.testing.assert_allclose(joint[1][:, 1], p_ctr * p_cvr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(joint[1].sum(axis=1), 1.0)
    # Conversion given as 0 instead of NaN where there is no click: same model.
    Y0 = Y.copy()
    Y0[Y[:, 0] == 0, 1] = 0
    esmm0 = ESMMClassifier(bottom_hidden_sizes=(32,), max_epochs=10, random_state=0).fit(X, Y0)
    assert np.array_equal(esmm0.predict_proba(X)[1], esmm.predict_proba(X)[1])
    # score: conversion counts on clicked rows only, whichever marker is used.
    assert esmm0.score(X, Y0) == esmm.score(X, Y)
    clicked = Y[:, 0] == 1
    pred = esmm.predict(X)
    expected = (np.mean(pred[:, 0] == Y[:, 0]) + np.mean(pred[clicked, 1] == Y[clicked, 1])) / 2
    assert esmm.score(X, Y) == pytest.approx(expected)


def test_conditional_task_learns_the_conditional_rate():
    # With plenty of data the conditional output approaches p(buy | click).
    X, Y = _clicks(n=8000, seed=1)
    model = MultiTaskEstimator(
        architecture="mmoe", conditional_tasks={1: 0}, n_experts=4, expert_hidden_sizes=(16,),
        max_epochs=30, learning_rate=3e-3, random_state=0,
        # a smooth simulated rate: the encoding for it (see test_cvr_objectives)
        numeric_encoding="quantile",
    ).fit(X, Y)
    p_cvr = model.predict_proba(X)[1][:, 1]
    true_cvr = 1 / (1 + np.exp(-X[:, 1]))
    assert np.corrcoef(p_cvr, true_cvr)[0, 1] > 0.9
    assert abs(p_cvr.mean() - true_cvr.mean()) < 0.05


def test_conditional_tasks_validation():
    X, Y = _clicks(n=300)
    bad = Y.copy()
    bad[np.flatnonzero(Y[:, 0] == 0)[:3], 1] = 1  # conversions without a click
    with pytest.raises(ValueError, match="positive label for task 1 where task 0 is negative"):
        ESMMClassifier().fit(X, bad)
    with pytest.raises(ValueError, match="two columns"):
        ESMMClassifier().fit(X, np.column_stack([Y, Y[:, 0]]))
    single = ESMMClassifier(max_epochs=2, random_state=0).fit(X, Y[:, 0])  # a click model
    assert single.predict_proba(X).shape == (300, 2)
    for conditions in ({1: 1}, {1: 5}, {1: 0, 0: 1}, {"1": 0}):
        with pytest.raises(ValueError, match="conditional_tasks must map"):
            MultiTaskEstimator(conditional_tasks=conditions).fit(X, Y)
    reg = np.column_stack([Y[:, 0], X[:, 0]])
    with pytest.raises(ValueError, match="both are binary classification tasks"):
        MultiTaskEstimator(conditional_tasks={1: 0}, task_types=["classification", "regression"]).fit(X, reg)


def test_esmm_labels_can_be_strings_and_nullable():
    X, Y = _clicks(n=600)
    frame = pd.DataFrame({
        "click": np.where(Y[:, 0] == 1, "yes", "no"),
        "buy": pd.array(np.where(np.isnan(Y[:, 1]), -1, Y[:, 1]).astype(int), dtype="Int64"),
    })
    frame.loc[Y[:, 0] == 0, "buy"] = pd.NA
    model = ESMMClassifier(max_epochs=3, random_state=0).fit(X, frame)
    assert [list(c) for c in model.classes_] == [["no", "yes"], [0, 1]]
    assert model.predict(X).shape == (600, 2)


def test_mmoe_classifier_has_no_conditional_tasks():
    # Conditional tasks are a MultiTaskEstimator option (any architecture).
    assert "conditional_tasks" not in MMoEClassifier().get_params()
    assert "conditional_tasks" in MultiTaskEstimator().get_params()


def test_scorers_score_the_conditional_task_on_parent_rows_like_score():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_mmoe.metrics import make_multitask_scorer

    X, Y = _clicks(n=1500)
    Y0 = Y.copy()
    Y0[Y[:, 0] == 0, 1] = 0  # non-clicks coded 0 instead of NaN
    pipe = make_pipeline(StandardScaler(), ESMMClassifier(max_epochs=3, random_state=0)).fit(X, Y)
    for metric in ("roc_auc", "accuracy", "neg_log_loss"):
        scorer = make_multitask_scorer(metric, multioutput="raw_values")
        assert scorer(pipe, X, Y0) == scorer(pipe, X, Y)
    assert pipe.score(X, Y0) == pipe.score(X, Y)


def test_label_mask_says_which_entries_are_scored():
    X, Y = _clicks(n=400)
    Y0 = Y.copy()
    Y0[Y[:, 0] == 0, 1] = 0  # non-clicks coded 0 instead of NaN
    Y0[5, 0] = np.nan  # a row without a click label: its conversion is not scored either
    esmm = ESMMClassifier(max_epochs=2, random_state=0).fit(X, Y)
    mask = esmm.label_mask(Y0)
    assert mask.shape == Y0.shape and mask.dtype == bool
    np.testing.assert_array_equal(mask[:, 0], ~np.isnan(Y0[:, 0]))
    np.testing.assert_array_equal(mask[:, 1], (Y0[:, 0] == 1) & ~np.isnan(Y0[:, 1]))
    # Labels compared as the fitted classes: strings, and a DataFrame.
    frame = pd.DataFrame({"click": np.where(Y[:, 0] == 1, "yes", "no"), "buy": Y0[:, 1]})
    frame.loc[5, "click"] = None
    strings = ESMMClassifier(max_epochs=2, random_state=0).fit(X, frame.fillna({"click": "no"}))
    np.testing.assert_array_equal(strings.label_mask(frame), mask)
    # Without conditional tasks: the observed entries, with y's shape (1-D too).
    plain = MMoEClassifier(n_experts=2, max_epochs=2, random_state=0).fit(X, Y[:, 0])
    np.testing.assert_array_equal(plain.label_mask(Y0[:, 0]), ~np.isnan(Y0[:, 0]))
    with pytest.raises(ValueError, match=r"y must have shape \(n_samples, 2\)"):
        esmm.label_mask(Y0[:, :1])


def test_scorers_ask_any_estimator_for_its_label_mask():
    """The scorers use the public label_mask, whoever implements it."""
    from sklearn_mmoe.metrics import make_multitask_scorer, masked_accuracy_score

    class OnlyFirstHalf:
        """An estimator whose second task is scored on the first half of the rows."""

        def predict(self, X):
            return np.zeros((len(X), 2))

        def label_mask(self, y):
            mask = ~pd.isna(np.asarray(y, dtype=object))
            mask[len(mask) // 2:, 1] = False
            return mask

    y = np.column_stack([np.zeros(10), np.r_[np.zeros(5), np.ones(5)]])
    scorer = make_multitask_scorer("accuracy", multioutput="raw_values")
    assert scorer(OnlyFirstHalf(), np.zeros((10, 1)), y) == {"task0": 1.0, "task1": 1.0, "mean": 1.0}
    assert masked_accuracy_score(y, np.zeros((10, 2))) == 0.75


def test_fitted_task_types_are_accepted_as_task_types():
    X, Y = _mixed(n=300)
    model = MultiTaskEstimator(n_experts=2, max_epochs=2, random_state=0).fit(X, Y)
    assert model.task_types_ == ["binary", "multiclass", "regression"]
    again = MultiTaskEstimator(
        n_experts=2, max_epochs=2, random_state=0, task_types=model.task_types_
    ).fit(X, Y)
    assert again.task_types_ == model.task_types_
    assert np.array_equal(again.predict(X), model.predict(X))
    # the kinds mix with the types
    mixed = ["classification", "multiclass", "regression"]
    assert MultiTaskEstimator(n_experts=2, max_epochs=1, task_types=mixed).fit(X, Y).task_types_ == (
        model.task_types_
    )
    # a declared type is checked against the classes y gives
    with pytest.raises(ValueError, match=r"task_types: task 1 is declared 'binary', but y gives it 3"):
        MultiTaskEstimator(task_types=["binary", "binary", "regression"]).fit(X, Y)
    with pytest.raises(ValueError, match=r"task 0 is declared 'multiclass'.*a binary task"):
        MultiTaskEstimator(task_types=["multiclass", "multiclass", "regression"]).fit(X, Y)
    with pytest.raises(ValueError, match=r"task 0 is declared 'multiclass'"):
        MultiTaskEstimator(task_types=["multiclass", "multiclass", "regression"]).partial_fit(
            X, Y, classes=[[0, 1], None, None]
        )
