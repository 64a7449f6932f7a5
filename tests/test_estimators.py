"""Behaviour of the estimators: outputs, persistence, pipelines, learning."""

import os
import pickle
import traceback

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from skorch.callbacks import Callback

from conftest import small
from sklearn_mmoe import (
    MMoEClassifier,
    MMoERegressor,
    OMoEClassifier,
    OMoERegressor,
    SharedBottomClassifier,
    SharedBottomRegressor,
)
from sklearn_mmoe._training import _fused_works
from sklearn_mmoe.datasets import fetch_census_income, make_multitask_regression
from sklearn_mmoe.metrics import make_multitask_scorer, masked_roc_auc_score

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CLASSIFIERS = [SharedBottomClassifier, OMoEClassifier, MMoEClassifier]
REGRESSORS = [SharedBottomRegressor, OMoERegressor, MMoERegressor]
ALL = CLASSIFIERS + REGRESSORS


def _small(cls, **params):
    return small(cls, width=16, **params)


def _classification(n=300, seed=0):
    """Two tasks: a binary one with int labels, a 3-class one with strings."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    binary = (X[:, 0] > 0).astype(int)
    kind = np.array(["low", "mid", "high"])[np.digitize(X[:, 1] + X[:, 2], [-0.7, 0.7])]
    Y = np.empty((n, 2), dtype=object)
    Y[:, 0], Y[:, 1] = binary, kind
    return X, Y


def _regression(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    return X, np.column_stack([X[:, 0] + 0.5 * X[:, 1], 10 * (X[:, 0] - X[:, 2]) + 3])


def _data_for(cls, **kwargs):
    return _classification(**kwargs) if cls in CLASSIFIERS else _regression(**kwargs)


def _outputs(est, X):
    """Everything an estimator predicts, as a list of arrays."""
    out = [np.asarray(est.predict(X))]
    if hasattr(est, "predict_proba"):
        proba = est.predict_proba(X)
        out += proba if isinstance(proba, list) else [proba]
    return out


# ------------------------------------------------------------ output contract
def test_classifier_outputs_for_mixed_label_types():
    X, Y = _classification()
    model = _small(MMoEClassifier, max_epochs=40).fit(X, Y)
    assert [list(c) for c in model.classes_] == [[0, 1], ["high", "low", "mid"]]
    assert model.n_tasks_ == 2
    proba = model.predict_proba(X)
    assert [p.shape for p in proba] == [(300, 2), (300, 3)]
    for p in proba:
        assert p.dtype == np.float64
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    pred = model.predict(X)
    assert pred.shape == (300, 2) and pred.dtype == object  # int task + str task
    for t, (classes, p) in enumerate(zip(model.classes_, proba)):
        assert list(pred[:, t]) == list(classes[p.argmax(axis=1)])


def test_one_dimensional_y_behaves_like_a_single_output_estimator():
    X, Y = _classification()
    y = Y[:, 1].astype(str)
    model = _small(MMoEClassifier, max_epochs=40).fit(X, y)
    assert isinstance(model.classes_, np.ndarray) and list(model.classes_) == ["high", "low", "mid"]
    assert model.predict(X).shape == (300,) and model.predict(X).dtype.kind == "U"
    assert model.predict_proba(X).shape == (300, 3)
    assert model.score(X, y) == accuracy_score(y, model.predict(X))
    Xr, Yr = _regression()
    reg = _small(MMoERegressor, max_epochs=40).fit(Xr, Yr[:, 1])
    assert reg.predict(Xr).shape == (300,) and reg.predict(Xr).dtype == np.float64


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_multitask_classifier_learns_binary_and_multiclass_tasks(cls):
    # The multi-task counterpart of sklearn's check_classifiers_train.
    X, Y = _classification(n=600)
    model = _small(cls, max_epochs=80, learning_rate=0.01).fit(X, Y)
    pred = model.predict(X)
    for t in range(2):
        assert np.mean(pred[:, t] == Y[:, t]) > 0.83


@pytest.mark.parametrize("cls", ALL)
def test_sparse_input_gives_the_dense_results(cls):
    # Sparse inputs are densified batch by batch: the same numbers reach the
    # network, so the fitted models and predictions coincide. (The default
    # numeric encoding applies to dense inputs only: compare without it.)
    X, Y = _data_for(cls)
    X[np.abs(X) < 0.8] = 0
    dense = _small(cls, max_epochs=5, numeric_encoding=None).fit(X, Y)
    for container in (sp.csr_matrix, sp.csr_array, sp.csc_matrix):
        sparse = _small(cls, max_epochs=5, numeric_encoding=None).fit(container(X), Y)
        for a, b in zip(_outputs(dense, X), _outputs(sparse, container(X))):
            if a.dtype.kind == "f":
                np.testing.assert_allclose(a, b, atol=1e-6)
            else:
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", ALL)
def test_predictions_do_not_depend_on_batch_or_row_order(cls):
    X, Y = _data_for(cls)
    model = _small(cls, max_epochs=5).fit(X, Y)
    order = np.random.RandomState(0).permutation(len(X))
    full = _outputs(model, X)
    for a, b in zip(full, _outputs(model, X[order])):
        assert np.array_equal(a[order], b)
    # Alone, or in batches of any size and offset, a row's output is
    # bit-identical (inference pads short chunks to 128 rows).
    for start, stop in [(0, 1), (37, 38), (5, 9), (100, 229), (290, 300)]:
        for a, b in zip(full, _outputs(model, X[start:stop])):
            assert np.array_equal(a[start:stop], b)


def test_rows_predict_identically_across_inference_chunks():
    # predict_logits pads short chunks to 128 rows: a row's output must not
    # depend on how long a chunk it falls in (BLAS's summation order is fixed
    # from 32 rows up). Chunk boundaries: tests/test_inference.py.
    X, Y = make_multitask_regression(5000, 30, random_state=0)
    model = MMoERegressor(n_experts=4, max_epochs=1, random_state=0).fit(X, Y)
    full = model.predict(X)
    for start, stop in [(0, 1), (4999, 5000), (1, 130), (2000, 2100), (1500, 4100), (7, 4999)]:
        assert np.array_equal(model.predict(X[start:stop]), full[start:stop]), (start, stop)


# ------------------------------------------------------- persistence, seeds
@pytest.mark.parametrize("cls", ALL)
def test_pickle_and_joblib_round_trip_predict_identically(cls, tmp_path):
    X, Y = _data_for(cls)
    model = _small(cls, max_epochs=5).fit(X, Y)
    expected = _outputs(model, X)
    restored = pickle.loads(pickle.dumps(model))
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    for other in (restored, loaded):
        for a, b in zip(expected, _outputs(other, X)):
            assert np.array_equal(a, b)
    # The fitted model keeps no reference to its training data.
    assert restored.net_.train_split is None


@pytest.mark.parametrize("cls", ALL)
def test_random_state_makes_fits_reproducible(cls):
    X, Y = _data_for(cls)
    params = dict(max_epochs=4, dropout=0.2, early_stopping=True)
    a = _small(cls, **params).fit(X, Y)
    b = _small(cls, **params).fit(X, Y)
    c = _small(cls, **{**params, "random_state": 1}).fit(X, Y)
    for x, y in zip(_outputs(a, X), _outputs(b, X)):
        assert np.array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(_outputs(a, X), _outputs(c, X)))
    # Fitting does not touch torch's global random state.
    state = torch.random.get_rng_state()
    _small(cls, **params).fit(X, Y)
    assert torch.equal(state, torch.random.get_rng_state())


# ------------------------------------------------------------ architectures
def test_gate_structure():
    X, Y = _regression()
    omoe = _small(OMoERegressor, n_experts=4, max_epochs=2).fit(X, Y)
    mmoe = _small(MMoERegressor, n_experts=4, max_epochs=2).fit(X, Y)
    # OMoE: one gate shared by the tasks; MMoE: one gate per task.
    shared, own = omoe.gate_weights(X[:7]), mmoe.gate_weights(X[:7])
    assert [g.shape for g in shared + own] == [(7, 4)] * 4
    np.testing.assert_array_equal(shared[0], shared[1])
    assert not np.allclose(own[0], own[1])
    for weights in shared + own:
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert not hasattr(_small(SharedBottomRegressor), "gate_weights")


@pytest.mark.parametrize("cls", REGRESSORS)
def test_every_architecture_learns_the_synthetic_tasks(cls):
    # A small, fast version of the MMoE paper's synthetic benchmark. Which
    # architecture wins is a many-seed question (examples/); here each one
    # must learn: test MSE well below the label variance.
    X, Y = make_multitask_regression(n_samples=3000, n_features=16, correlation=0.5, random_state=0)
    X_train, X_test, Y_train, Y_test = X[:2000], X[2000:], Y[:2000], Y[2000:]
    model = _small(cls, max_epochs=60, learning_rate=1e-2).fit(X_train, Y_train)
    mse = np.mean((model.predict(X_test) - Y_test) ** 2, axis=0)
    assert np.all(mse < 0.25 * Y_test.var(axis=0)), (mse, Y_test.var(axis=0))


# ------------------------------------------------------------- scikit-learn
@pytest.fixture(scope="module")
def census_slice(census_home):
    bunch = fetch_census_income(data_home=census_home, task_group=1, subset="train")
    rows = np.random.RandomState(0).choice(len(bunch.data), 3000, replace=False)
    X = bunch.data.iloc[rows].reset_index(drop=True)
    Y = bunch.target.iloc[rows].to_numpy().astype(float)
    Y[::4, 0] = np.nan  # income unknown for a quarter of the people
    return X, Y, bunch.categorical_features, bunch.numerical_features


def test_census_pipeline_in_grid_search(census_slice):
    X, Y, categorical, numerical = census_slice
    pre = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), categorical), (StandardScaler(), numerical)
    )
    model = make_pipeline(
        pre,
        MMoEClassifier(expert_hidden_sizes=(16,), max_epochs=15, learning_rate=3e-3, random_state=0),
    )
    search = GridSearchCV(
        model,
        {"mmoeclassifier__n_experts": [2, 4]},
        cv=KFold(3, shuffle=True, random_state=0),
        scoring=make_multitask_scorer("roc_auc", multioutput="raw_values", task_names=["income", "never_married"]),
        refit="mean",
    )
    search.fit(X, Y)
    results = search.cv_results_
    for key in ("mean_test_income", "mean_test_never_married", "mean_test_mean"):
        assert np.all(np.isfinite(results[key]))
    # The tasks are learnable from these features: well above chance.
    assert np.all(results["mean_test_income"] > 0.88)
    assert np.all(results["mean_test_never_married"] > 0.95)
    best = search.best_estimator_
    assert best[-1].n_experts in (2, 4)
    proba = best.predict_proba(X)
    assert [p.shape for p in proba] == [(3000, 2), (3000, 2)]
    assert masked_roc_auc_score(Y, proba) > 0.9


@pytest.mark.parametrize("cls", [MMoERegressor, SharedBottomClassifier])
def test_cross_validate_and_clone(cls):
    X, Y = _data_for(cls)
    Y = Y.copy()
    Y[::5, 1] = np.nan if cls in REGRESSORS else None
    scoring = make_multitask_scorer("r2" if cls in REGRESSORS else "accuracy")
    result = cross_validate(_small(cls, max_epochs=20), X, Y, cv=KFold(3), scoring=scoring)
    assert np.all(np.isfinite(result["test_score"]))
    fitted = _small(cls, max_epochs=2).fit(X, Y)
    fresh = clone(fitted)
    assert not hasattr(fresh, "net_") and fresh.get_params() == fitted.get_params()


# ----------------------------------------------------------------- training
def test_early_stopping_stops_and_restores_the_best_epoch():
    X, Y = _classification(n=600)
    model = _small(MMoEClassifier, early_stopping=True, n_iter_no_change=3, max_epochs=200,
                   learning_rate=0.05).fit(X, Y)
    assert model.n_iter_ < 200
    curve = model.validation_loss_curve_
    assert len(curve) == len(model.loss_curve_) == model.n_iter_
    best_epoch = int(np.argmin(curve))
    assert model.best_validation_loss_ == curve[best_epoch]
    # It stopped n_iter_no_change epochs after its best epoch.
    assert model.n_iter_ == best_epoch + 1 + 3


class _RecordWeights(Callback):
    """The trainable weights after every optimizer step and at every epoch's end."""

    def initialize(self):
        self.steps, self.epochs = [], []
        return self

    @staticmethod
    def _weights(net):
        return [p.detach().clone() for p in net.module_.parameters() if p.requires_grad]

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.steps.append(self._weights(net))

    def on_epoch_end(self, net, **kwargs):
        self.epochs.append(self._weights(net))


def _fitted_weights(model):
    return [p.detach() for p in model.net_.module_.parameters() if p.requires_grad]


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_fit_keeps_the_exponential_average_of_the_weights():
    X, Y = _classification()
    model = _small(MMoEClassifier, max_epochs=3, n_iter_no_change=100, ema_half_life=0.5,
                   callbacks=[("record", _RecordWeights())]).fit(X, Y)
    steps = dict(model.net_.callbacks_)["record"].steps
    n_batches = len(steps) // 3
    decay = 0.5 ** (1 / (0.5 * n_batches))  # half-life: half an epoch
    average = steps[0]
    for n, weights in enumerate(steps[1:], start=2):
        rate = max(1 - decay, 1 / n)  # the plain mean of the first steps, then exponential
        average = [a + rate * (w - a) for a, w in zip(average, weights)]
    fitted = _fitted_weights(model)
    for f, a in zip(fitted, average):
        torch.testing.assert_close(f, a, rtol=1e-5, atol=1e-6)
    assert not _same_weights(fitted, steps[-1])
    # without averaging the fit leaves the optimizer's last weights
    plain = _small(MMoEClassifier, max_epochs=3, n_iter_no_change=100, ema_half_life=None,
                   callbacks=[("record", _RecordWeights())]).fit(X, Y)
    assert _same_weights(_fitted_weights(plain), dict(plain.net_.callbacks_)["record"].steps[-1])


def test_early_stopping_scores_and_restores_the_average_then_continues_from_it():
    X, Y = _classification(n=600)
    model = _small(MMoEClassifier, early_stopping=True, n_iter_no_change=3, learning_rate=0.05,
                   callbacks=[("record", _RecordWeights())]).fit(X, Y)
    record = dict(model.net_.callbacks_)["record"]
    assert model.best_epoch_ < model.n_iter_
    # between epochs (validation, the best-epoch snapshot) the module holds the
    # average, not the epoch's last trained weights
    n_batches = len(record.steps) // model.n_iter_
    best = model.best_epoch_ - 1
    assert _same_weights(_fitted_weights(model), record.epochs[best])
    assert not _same_weights(record.epochs[best], record.steps[(best + 1) * n_batches - 1])
    # continued training starts from the restored best weights (not from the
    # trained weights of the last epoch): with a negligible step it stays there
    before = model.predict_proba(X)
    model.set_params(learning_rate=1e-12, callbacks=None).partial_fit(X, Y)
    for p, q in zip(before, model.predict_proba(X)):
        np.testing.assert_allclose(p, q, atol=1e-6)


def test_stored_weight_average_is_checked_and_optional():
    X, Y = _classification()
    model = _small(MMoEClassifier, max_epochs=2).fit(X, Y)
    state = model.__getstate__()
    damaged = pickle.loads(pickle.dumps(state))
    damaged["_net_state"]["weight_average"]["trained"][0] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="weight average does not match"):
        MMoEClassifier.__new__(MMoEClassifier).__setstate__(damaged)
    # a file written before the average existed loads and predicts the same
    old = pickle.loads(pickle.dumps(state))
    del old["_net_state"]["weight_average"]
    loaded = MMoEClassifier.__new__(MMoEClassifier)
    loaded.__setstate__(old)
    for p, q in zip(model.predict_proba(X), loaded.predict_proba(X)):
        np.testing.assert_array_equal(p, q)


def test_user_callbacks_run_and_are_not_mutated():
    class CountEpochs(Callback):
        def __init__(self):
            self.epochs = 0

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    counter = CountEpochs()
    X, Y = _classification()
    model = _small(MMoEClassifier, max_epochs=3, callbacks=[("count", counter)]).fit(X, Y)
    assert dict(model.net_.callbacks_)["count"].epochs == 3
    assert counter.epochs == 0  # the estimator's parameter is left untouched


def test_task_weights_switch_a_task_off():
    X, Y = _classification()
    Y_other = Y.copy()
    Y_other[:, 1] = np.random.RandomState(1).permutation(Y[:, 1])
    params = dict(max_epochs=5, task_weights=[1.0, 0.0])
    a = _small(MMoEClassifier, **params).fit(X, Y)
    b = _small(MMoEClassifier, **params).fit(X, Y_other)
    # Task 1's labels have no influence when its loss weight is zero.
    np.testing.assert_array_equal(a.predict_proba(X)[0], b.predict_proba(X)[0])
    c = _small(MMoEClassifier, max_epochs=5).fit(X, Y_other)
    assert not np.array_equal(a.predict_proba(X)[0], c.predict_proba(X)[0])


def test_optimizer_options(capsys):
    X, Y = _regression()
    for optimizer in ("sgd", "adamw", "rmsprop", "adagrad", torch.optim.Adam):
        model = _small(MMoERegressor, optimizer=optimizer, max_epochs=2,
                       optimizer_kwargs={"momentum": 0.9} if optimizer == "sgd" else None).fit(X, Y)
        assert isinstance(model.net_.optimizer_, torch.optim.Optimizer)
    model = _small(MMoERegressor, max_epochs=2, verbose=1).fit(X, Y)
    assert "train_loss" in capsys.readouterr().out


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "adagrad"])
def test_named_optimizers_run_fused_where_torch_has_it(optimizer):
    X, Y = _regression()
    group = _small(MMoERegressor, optimizer=optimizer, max_epochs=1).fit(X, Y).net_.optimizer_.param_groups[0]
    # torch has fused CPU kernels for these since 2.5 (Adam, AdamW since 2.4);
    # with an older torch the default implementation must be left in place.
    has_kernel = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 5)
    assert bool(group.get("fused")) is has_kernel


def test_fused_optimizer_learns_what_the_default_one_learns():
    X, Y = _regression()
    fused = _small(MMoERegressor, max_epochs=20).fit(X, Y)
    loop = _small(MMoERegressor, max_epochs=20, optimizer_kwargs={"fused": False}).fit(X, Y)
    assert not loop.net_.optimizer_.param_groups[0]["fused"]
    # The same arithmetic up to float32 rounding: predictions agree closely.
    np.testing.assert_allclose(fused.predict(X), loop.predict(X), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "optimizer, kwargs, fused",
    [
        ("adam", {"foreach": True}, None),  # the user's implementation choice stands
        ("adam", {"fused": False}, False),
        ("rmsprop", None, None),  # no fused kernel
        (torch.optim.Adam, None, None),  # a class is used exactly as given
    ],
)
def test_fused_only_when_the_user_left_the_choice_open(optimizer, kwargs, fused):
    X, Y = _regression()
    model = _small(MMoERegressor, optimizer=optimizer, optimizer_kwargs=kwargs, max_epochs=1)
    group = model.fit(X, Y).net_.optimizer_.param_groups[0]
    assert group.get("fused") is fused
    assert model.optimizer_kwargs == kwargs  # not modified


def test_fused_probe_says_no_to_options_fused_does_not_support():
    assert not _fused_works(torch.optim.Adam, "cpu", {"differentiable": True})
    assert not _fused_works(torch.optim.RMSprop, "cpu", {})


class _BatchCounter(Callback):
    def initialize(self):
        self.calls = {"begin": 0, "grad": 0, "end": 0}
        self.modes = []
        return self

    def on_batch_begin(self, net, **kwargs):
        self.calls["begin"] += 1

    def on_grad_computed(self, net, named_parameters, **kwargs):
        self.calls["grad"] += 1
        self.modes.append(net.module_.training)

    def on_batch_end(self, net, **kwargs):
        self.calls["end"] += 1
        net.module_.eval()  # the next training step must switch back


class _InheritedCounter(_BatchCounter):
    pass


def test_batch_callbacks_get_every_call_and_steps_always_train():
    X, Y = _regression()
    model = _small(MMoERegressor, max_epochs=3, batch_size=64, dropout=0.2, callbacks=[
        ("counter", _BatchCounter()), ("inherited", _InheritedCounter()),
    ]).fit(X, Y)
    batches = 3 * -(-len(X) // 64)
    for name in ("counter", "inherited"):
        callback = dict(model.net_.callbacks_)[name]
        assert callback.calls == {"begin": batches, "grad": batches, "end": batches}
        assert callback.modes == [True] * batches
    # Outside the epochs, notify is skorch's own again.
    assert model.net_._batch_hooks is None

# --------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(task_weights=[1.0]), ValueError, "task_weights must have one entry per task"),
        (dict(task_weights=[1.0, -1.0]), ValueError, "task_weights must be finite and non-negative"),
        (dict(expert_hidden_sizes=()), ValueError, "expert_hidden_sizes must be a non-empty"),
        (dict(expert_hidden_sizes=(8, 0)), ValueError, "expert_hidden_sizes"),
        (dict(tower_hidden_sizes=(2.5,)), TypeError, "tower_hidden_sizes must be a sequence of ints"),
        (dict(device="gpu7"), ValueError, "device='gpu7'"),
        (dict(optimizer=object), TypeError, "optimizer must be one of"),
        (dict(early_stopping=True, validation_fraction=0.001), ValueError, "validation_fraction"),
    ],
)
def test_bad_parameters_raise_naming_them(params, error, match):
    X, Y = _classification()
    with pytest.raises(error, match=match):
        _small(MMoEClassifier, max_epochs=1, **params).fit(X, Y)


def test_bad_targets_raise_naming_y():
    X, Y = _classification()
    with pytest.raises(ValueError, match="y: task 0 has only one class"):
        MMoEClassifier().fit(X, np.ones(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        MMoEClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MMoEClassifier().fit(X, Y[:-1])
    with pytest.raises(ValueError, match="dim 3"):
        MMoEClassifier().fit(X, np.zeros((len(X), 2, 2)))
    with pytest.raises(ValueError):
        MMoERegressor().fit(X, pd.DataFrame({"a": ["x"] * len(X)}))


def test_training_loop_waits_for_the_device_once_per_epoch(monkeypatch):
    # On a GPU, reading a tensor's value on the host (.item(), .tolist(),
    # float(), bool(), .numpy(), .cpu()) waits for the queued work to finish.
    # The number of such reads during fit must not grow with the number of
    # batches: skorch's loop reads every batch's loss, ours once per epoch.
    # Adam reads its step counter with .item(): a CPU tensor even when the
    # parameters are on a GPU (torch's default, capturable=False), so no wait.
    X, Y = make_multitask_regression(400, 6, random_state=0)
    reads = ("item", "tolist", "__float__", "__bool__", "numpy", "cpu")

    def host_reads(batch_size):
        calls = []
        with monkeypatch.context() as patch:
            for name in reads:
                original = getattr(torch.Tensor, name)

                def counted(self, *args, _original=original, **kwargs):
                    caller = traceback.extract_stack(limit=2)[0].filename
                    if f"torch{os.sep}optim{os.sep}" not in caller:
                        calls.append(caller)
                    return _original(self, *args, **kwargs)

                patch.setattr(torch.Tensor, name, counted)
            model = MMoERegressor(n_experts=2, batch_size=batch_size, max_epochs=3,
                                  random_state=0).fit(X, Y)
        assert len(model.net_.history[-1]["batches"]) == -(-400 // batch_size)
        assert all(np.isfinite(b["train_loss"]) for b in model.net_.history[-1]["batches"])
        return len(calls)

    assert host_reads(batch_size=8) == host_reads(batch_size=200)
