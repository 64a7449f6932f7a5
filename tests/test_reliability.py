"""Faults during training, continued training, persistence, determinism, threads."""

import pickle
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_mmoe import (
    ESMMClassifier,
    MMoEClassifier,
    MultiTaskEstimator,
    PLEClassifier,
    PLERegressor,
    SharedBottomRegressor,
)
from sklearn_mmoe._version import __version__

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
REPO = Path(__file__).resolve().parents[1]


def _data(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(float)
    Y[::4, 1] = np.nan
    return X, Y


def _model(**params):
    # dropout: so that the tests also cover the per-epoch seeding of dropout;
    # n_iter_no_change large: no convergence stop within these short fits.
    params = {"n_experts": 3, "expert_hidden_sizes": (8,), "dropout": 0.2, "batch_size": 64,
              "n_iter_no_change": 100, "random_state": 0, **params}
    return MMoEClassifier(**params)


def _same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.predict_proba(X_), b.predict_proba(X_)))


X_, Y_ = _data()


class _At(Callback):
    """Run ``action(net)`` at the end of epoch ``epoch`` (or after a batch of it)."""

    def __init__(self, epoch, action, after_batches=None):
        self.epoch, self.action, self.after_batches = epoch, action, after_batches

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.after_batches and len(net.history) == self.epoch:
            if len(net.history[-1]["batches"]) == self.after_batches:
                self.action(net)

    def on_epoch_end(self, net, **kwargs):
        if self.after_batches is None and len(net.history) == self.epoch:
            self.action(net)


def _poison(net):
    # during a training epoch: between epochs the module holds the weight
    # average (ema_half_life), which the next epoch replaces by the trained weights
    with torch.no_grad():
        next(p for p in net.module_.parameters() if p.numel()).fill_(float("nan"))


def _interrupt(net):
    raise KeyboardInterrupt


# ------------------------------------------------------- faults in training
def test_nan_loss_raises_naming_the_epoch_and_leaves_no_fitted_model():
    model = _model(max_epochs=6, callbacks=[("poison", _At(4, _poison, after_batches=1))])
    with pytest.raises(FloatingPointError, match="train_loss is nan at epoch 4"):
        model.fit(X_, Y_)
    assert not hasattr(model, "net_")
    fitted = _model(max_epochs=2).fit(X_, Y_)
    before = fitted.predict_proba(X_)
    with pytest.raises(FloatingPointError):
        fitted.set_params(max_epochs=6, callbacks=[("poison", _At(4, _poison, after_batches=1))]).fit(X_, Y_)
    assert all(np.array_equal(p, q) for p, q in zip(before, fitted.predict_proba(X_)))


def test_nan_loss_restore_keeps_the_last_finite_weights():
    model = _model(max_epochs=6, nan_loss="restore", callbacks=[("poison", _At(4, _poison, after_batches=1))])
    with pytest.warns(RuntimeWarning, match="not finite at epoch 4.*weights of epoch 3"):
        model.fit(X_, Y_)
    # exactly the model of an uninterrupted 3-epoch fit
    assert _same(model, _model(max_epochs=3).fit(X_, Y_))
    assert all(np.all(np.isfinite(p)) for p in model.predict_proba(X_))


def test_keyboard_interrupt_keeps_a_usable_model():
    model = _model(max_epochs=8, callbacks=[("stop", _At(3, _interrupt))])
    with pytest.warns(UserWarning, match="interrupted after 3 epochs"):
        model.fit(X_, Y_)
    assert model.n_iter_ == 3 and len(model.loss_curve_) == 3
    assert _same(model, _model(max_epochs=3).fit(X_, Y_))
    # within an epoch: the epoch cut short is not counted, its updates are kept
    mid = _model(max_epochs=8, callbacks=[("stop", _At(2, _interrupt, after_batches=2))])
    with pytest.warns(UserWarning, match="interrupted after 1 epochs"):
        mid.fit(X_, Y_)
    assert mid.n_iter_ == 1
    assert not _same(mid, _model(max_epochs=1).fit(X_, Y_))
    assert all(np.all(np.isfinite(p)) for p in mid.predict_proba(X_))


# ------------------------------------------------------ continued training
def test_warm_start_continues_to_the_uninterrupted_weights():
    full = _model(max_epochs=5).fit(X_, Y_)
    first = _model(max_epochs=3).fit(X_, Y_)
    first.set_params(warm_start=True, max_epochs=2).fit(X_, Y_)
    assert first.n_iter_ == 5
    assert _same(first, full)
    assert first.loss_curve_ == full.loss_curve_


def test_a_saved_model_resumes_to_the_uninterrupted_weights(tmp_path):
    # A checkpoint: fit part of the epochs, save, load elsewhere, continue.
    # (Without early stopping: it restores each fit's best epoch, so a fit
    # resumed from those weights takes another path.)
    full = _model(max_epochs=5).fit(X_, Y_)
    part = _model(max_epochs=2).fit(X_, Y_)
    (tmp_path / "checkpoint.pkl").write_bytes(pickle.dumps(part))
    resumed = pickle.loads((tmp_path / "checkpoint.pkl").read_bytes())
    resumed.set_params(warm_start=True, max_epochs=3).fit(X_, Y_)
    assert _same(resumed, full)


def test_partial_fit_epochs_equal_fit_epochs():
    model = _model()
    for _ in range(3):
        model.partial_fit(X_, Y_)
    assert model.n_iter_ == 3
    assert _same(model, _model(max_epochs=3).fit(X_, Y_))


def test_partial_fit_classes_and_unseen_labels():
    X, Y = _data()
    first = Y[:, 0] == 0  # the first chunk has a single class in task 0
    model = _model()
    with pytest.raises(ValueError, match="only one class"):
        _model().partial_fit(X[first], Y[first])
    model.partial_fit(X[first], Y[first], classes=[[0.0, 1.0], [0.0, 1.0]])
    model.partial_fit(X[~first], Y[~first])
    assert [list(c) for c in model.classes_] == [[0.0, 1.0], [0.0, 1.0]]
    bad = Y.copy()
    bad[0, 0] = 2.0
    with pytest.raises(ValueError, match=r"labels \[2.0\] that are not among its classes"):
        model.partial_fit(X, bad)
    with pytest.raises(ValueError, match="fitted on 2 tasks"):
        model.partial_fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="X has 4 features"):
        model.partial_fit(X[:, :4], Y)
    reg = SharedBottomRegressor(max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match="regression task"):
        reg.partial_fit(X, X[:, :2], classes=[[0, 1], None])
    # regression scaling is fixed by the first call
    reg.partial_fit(X, X[:, :2])
    scale = [t.scale for t in reg._tasks]
    reg.partial_fit(X, 10 * X[:, :2])
    assert [t.scale for t in reg._tasks] == scale


# --------------------------------------------------------------- persistence
def test_model_fitted_on_a_gpu_loads_on_the_cpu():
    # Simulated: the saved state says "cuda" (what a GPU fit stores); here,
    # without CUDA, it loads on the CPU (torch's map_location) with a warning.
    model = _model(max_epochs=2).fit(X_, Y_)
    state = model.__getstate__()
    state["_net_state"]["device"] = "cuda:0"
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the mapping to CPU is not exercised")
    loaded = MMoEClassifier.__new__(MMoEClassifier)
    with pytest.warns(UserWarning, match="fitted on cuda:0.*loading it on the CPU"):
        loaded.__setstate__(state)
    assert loaded.net_.device == torch.device("cpu")
    assert _same(loaded, model)


def test_pickled_state_holds_no_torch_objects():
    model = PLERegressor(n_levels=2, max_epochs=2, loss_weighting="uncertainty", random_state=0)
    model.fit(X_, X_[:, :2])

    def walk(obj):
        assert not isinstance(obj, (torch.Tensor, torch.nn.Module, torch.optim.Optimizer)), type(obj)
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(model.__getstate__())
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.predict(X_), model.predict(X_))
    # the learned uncertainty weights travel with the model
    torch.testing.assert_close(
        restored.net_.criterion_.weighting.log_vars, model.net_.criterion_.weighting.log_vars
    )


def test_loading_a_model_from_another_version_warns():
    model = _model(max_epochs=1).fit(X_, Y_)
    state = model.__getstate__()
    state["_sklearn_mmoe_version"] = "0.0.1"
    loaded = MMoEClassifier.__new__(MMoEClassifier)
    with pytest.warns(UserWarning, match=f"saved with sklearn-mmoe 0.0.1 and is loaded with {__version__}"):
        loaded.__setstate__(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(pickle.dumps(model))  # same version: no warning


@pytest.mark.parametrize(
    "model",
    [
        _model(max_epochs=2),
        ESMMClassifier(max_epochs=2, random_state=0),
        MultiTaskEstimator(architecture="ple", task_types=["classification"] * 2, loss_weighting="dwa",
                           max_epochs=2, random_state=0),
    ],
    ids=["mmoe", "esmm", "multitask-ple"],
)
def test_skops_round_trip_trusting_only_sklearn_mmoe_types(model, tmp_path):
    sio = pytest.importorskip("skops.io")
    Y = Y_.copy()
    if isinstance(model, ESMMClassifier):
        Y[Y[:, 0] == 0, 1] = np.nan
    model.fit(X_, Y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(name.startswith("sklearn_mmoe.") for name in untrusted), untrusted
    loaded = sio.load(path, trusted=untrusted)
    for a, b in zip(model.predict_proba(X_), loaded.predict_proba(X_)):
        assert np.array_equal(a, b)


# ------------------------------------------------ determinism and threads
def test_same_seed_is_bit_identical_across_processes(tmp_path):
    model = _model(max_epochs=3).fit(X_, Y_)
    np.save(tmp_path / "X.npy", X_)
    np.save(tmp_path / "Y.npy", Y_)
    # Same seed and same number of torch threads (the suite runs with one:
    # conftest.py); a different thread count may change float summation order.
    script = f"""
import numpy as np, torch, warnings
warnings.simplefilter("ignore")
torch.set_num_threads({torch.get_num_threads()})
from sklearn_mmoe import MMoEClassifier
X, Y = np.load(r"{tmp_path / 'X.npy'}"), np.load(r"{tmp_path / 'Y.npy'}")
m = MMoEClassifier(n_experts=3, expert_hidden_sizes=(8,), dropout=0.2, batch_size=64,
                   n_iter_no_change=100, random_state=0, max_epochs=3).fit(X, Y)
np.save(r"{tmp_path / 'p.npy'}", np.stack(m.predict_proba(X)))
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)
    other = np.load(tmp_path / "p.npy")
    assert np.array_equal(other, np.stack(model.predict_proba(X_)))


def test_concurrent_predict_proba_matches_serial():
    model = _model(max_epochs=2).fit(X_, Y_)
    chunks = [X_[i::7] for i in range(7)] * 4
    serial = [model.predict_proba(c) for c in chunks]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(model.predict_proba, chunks))
    for s, p in zip(serial, parallel):
        for a, b in zip(s, p):
            assert np.array_equal(a, b)


# ------------------------------------- failed continued training: a no-op
def _raise(net):
    raise RuntimeError("a user callback failed")


def _state(model):
    return (
        [p.copy() for p in model.predict_proba(X_)],
        model.n_iter_,
        list(model.loss_curve_),
        len(model.net_.history),
        {k: v.clone() for k, v in model.net_.optimizer_.state_dict()["state"][0].items()},
    )


def _assert_unchanged(model, before):
    proba, n_iter, curve, n_rows, optimizer = before
    assert all(np.array_equal(p, q) for p, q in zip(proba, model.predict_proba(X_)))
    assert model.n_iter_ == n_iter and model.loss_curve_ == curve
    assert len(model.net_.history) == n_rows
    after = model.net_.optimizer_.state_dict()["state"][0]
    assert all(torch.equal(v, after[k]) for k, v in optimizer.items())


@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
@pytest.mark.parametrize("failure", ["diverges", "callback-raises", "callback-raises-mid-epoch"])
def test_failed_continued_training_restores_the_model_exactly(method, failure):
    model = _model(max_epochs=2, loss_weighting="dwa").fit(X_, Y_)
    before = _state(model)
    if failure == "diverges":
        params = {}
        expected = FloatingPointError
    else:
        after = 2 if failure.endswith("mid-epoch") else None
        params = dict(callbacks=[("boom", _At(3, _raise, after_batches=after))])
        expected = RuntimeError
    if failure == "diverges":
        # NaN weights after two batches: epoch 3's loss is NaN
        params["callbacks"] = [("poison", _At(3, _poison, after_batches=2))]
    model.set_params(warm_start=True, max_epochs=3, **params)
    with pytest.raises(expected):
        if method == "warm_start":
            model.fit(X_, Y_)
        else:
            model.partial_fit(X_, Y_)
    _assert_unchanged(model, before)
    # and it continues exactly as if the failed call had not happened
    model.set_params(learning_rate=_model().learning_rate, callbacks=None, max_epochs=1)
    model.partial_fit(X_, Y_)
    reference = _model(max_epochs=2, loss_weighting="dwa").fit(X_, Y_)
    reference.partial_fit(X_, Y_)
    assert _same(model, reference)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_keyboard_interrupt_keeps_what_was_trained_and_warns_alike(method):
    model = _model(max_epochs=2).fit(X_, Y_)
    before = _state(model)
    model.set_params(
        warm_start=True, callbacks=[("stop", _At(3, _interrupt, after_batches=2))]
    )
    with pytest.warns(UserWarning, match=rf"{method} was interrupted after 2 epochs.*keeps"):
        getattr(model, method)(X_, Y_)
    # the epoch cut short is not counted; its two batches' updates are kept
    assert model.n_iter_ == 2 and len(model.net_.history) == 2
    assert not _same(model, _model(max_epochs=2).fit(X_, Y_))
    assert model.loss_curve_ == before[2]


# ------------------------------------------------ partial_fit: one epoch
def test_partial_fit_is_one_plain_epoch_whatever_early_stopping_says():
    plain = _model().partial_fit(X_, Y_)
    # a user callback given without a name is kept
    class Count(Callback):
        epochs = 0

        def on_epoch_end(self, net, **kwargs):
            Count.epochs += 1

    _model(callbacks=[Count()], early_stopping=True).partial_fit(X_, Y_)
    assert Count.epochs == 1
    stopping = _model(early_stopping=True).partial_fit(X_, Y_)  # was KeyError: 'valid_loss'
    assert _same(stopping, plain) and stopping.n_iter_ == 1
    # after an early-stopping fit: one more plain epoch on all the data given
    fitted = _model(early_stopping=True, max_epochs=3).fit(X_, Y_)
    n_iter, valid = fitted.n_iter_, list(fitted.validation_loss_curve_)
    fitted.partial_fit(X_, Y_)
    assert fitted.n_iter_ == n_iter + 1
    assert "valid_loss" not in fitted.net_.history[-1]
    assert fitted.validation_loss_curve_ == valid


# ----------------------------------------------- concurrent fits in threads
def test_concurrent_fits_in_threads_are_bit_identical_to_serial_fits():
    specs = [
        dict(random_state=0),
        dict(random_state=1),
        dict(random_state=2, loss_weighting="pcgrad"),
        dict(random_state=0, early_stopping=True),
    ]

    def fit(spec):
        model = _model(max_epochs=3, **spec).fit(X_, Y_)
        return np.stack(model.predict_proba(X_))

    serial = [fit(spec) for spec in specs]
    for _ in range(2):
        with ThreadPoolExecutor(max_workers=4) as pool:
            parallel = list(pool.map(fit, specs))
        assert all(np.array_equal(s, p) for s, p in zip(serial, parallel))


def test_a_fit_neither_reads_nor_changes_torchs_global_generator():
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    first = _model(max_epochs=2).fit(X_, Y_)
    assert torch.equal(torch.rand(5), expected)
    torch.manual_seed(999)
    assert _same(_model(max_epochs=2).fit(X_, Y_), first)


# ------------------------------------ continued training keeps the network
@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
@pytest.mark.parametrize(
    "change",
    [
        dict(n_experts=8),
        dict(expert_hidden_sizes=(16,)),
        dict(dropout=0.5),
        dict(activation="tanh"),
        dict(task_weights=[1.0, 3.0]),
        dict(loss_weighting="uncertainty"),
        dict(optimizer="sgd"),
        dict(optimizer_kwargs={"betas": (0.5, 0.9)}),
    ],
    ids=lambda change: next(iter(change)),
)
def test_continued_training_refuses_a_changed_network_setting(method, change):
    model = _model(max_epochs=2).fit(X_, Y_)
    before = _state(model)
    model.set_params(warm_start=True, **change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=rf"^{name} changed from .* since the model was fitted"):
        model.fit(X_, Y_) if method == "warm_start" else model.partial_fit(X_, Y_)
    _assert_unchanged(model, before)


def test_continued_training_applies_the_training_settings():
    model = _model(max_epochs=2).fit(X_, Y_)
    model.set_params(warm_start=True, max_epochs=1, batch_size=300, learning_rate=0.01).fit(X_, Y_)
    assert model.n_iter_ == 3
    assert model.net_.history[-1]["train_batch_count"] == 1  # one batch of 300 rows
    assert model.net_.optimizer_.param_groups[0]["lr"] == 0.01
    generic = MultiTaskEstimator(max_epochs=1, task_types=["classification"] * 2, random_state=0)
    generic.fit(X_, Y_).set_params(architecture="ple", warm_start=True)
    with pytest.raises(ValueError, match="architecture changed from 'MMoE' to 'PLE'"):
        generic.fit(X_, Y_)


# ----------------------------------------------- loading a crafted file
@pytest.mark.parametrize(
    "crafted",
    [dict(expert_hidden_sizes=(3 * 10**7,)), dict(n_experts=10**9), dict(tower_hidden_sizes=(5, 7))],
    ids=["width-3e7", "n_experts-1e9", "other-shape"],
)
def test_loading_checks_stored_shapes_before_allocating(crafted, tmp_path):
    model = _model(max_epochs=1).fit(X_, Y_)
    for key, value in crafted.items():
        setattr(model, key, value)  # what a crafted file says
    state = model.__getstate__()
    loaded = MMoEClassifier.__new__(MMoEClassifier)
    mismatch = r"stored weights? .*(has shape .* but its parameters give|do not match its parameters)"
    with pytest.raises(ValueError, match=mismatch):
        loaded.__setstate__(state)
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "crafted.skops"
    sio.dump(model, path)
    with pytest.raises(ValueError, match=mismatch):
        sio.load(path, trusted=sio.get_untrusted_types(file=path))


def test_loading_a_network_that_the_parameters_cannot_build_is_a_value_error():
    # n_levels=0 passes the module-kwargs builder; the network asserts on it.
    model = PLEClassifier(n_levels=1, expert_hidden_sizes=(4,), max_epochs=1, random_state=0)
    model.fit(X_, Y_)
    model.n_levels = 0  # what a crafted file says
    state = model.__getstate__()
    loaded = PLEClassifier.__new__(PLEClassifier)
    with pytest.raises(ValueError, match="stored parameters do not build a network"):
        loaded.__setstate__(state)
