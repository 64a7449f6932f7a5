"""The skorch internals that the training loop (sklearn_mmoe._training) relies on.

``_TrainingNet`` overrides ``notify``, ``run_single_epoch``,
``train_step_single`` and ``get_loss``, and calls ``_set_training``: these
are skorch's internals, not its documented API. These tests fail, naming
what changed, when the installed skorch no longer has the signatures, the
call pattern or the history records that the overrides reproduce.
"""

import inspect
import re

import numpy as np
import pytest
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.history import History

from sklearn_mmoe import MMoEClassifier
from sklearn_mmoe._training import _BATCH_HOOKS, _TrainingNet

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(
    "name", ["get_loss", "notify", "run_single_epoch", "train_step_single"]
)
def test_overridden_methods_keep_skorchs_signature(name):
    assert name in vars(_TrainingNet), f"_TrainingNet no longer overrides {name}"
    assert _parameters(getattr(_TrainingNet, name)) == _parameters(getattr(NeuralNet, name)), (
        f"skorch's NeuralNet.{name} changed its signature; review _TrainingNet.{name}"
    )


def test_internals_called_by_the_overrides_exist():
    assert _parameters(NeuralNet._set_training) == [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("training", inspect.Parameter.POSITIONAL_OR_KEYWORD, True),
    ]
    assert [p[0] for p in _parameters(NeuralNet.infer)][:2] == ["self", "x"]
    for method in ("record", "record_batch"):
        assert [p[0] for p in _parameters(getattr(History, method))] == ["self", "attr", "value"]
    # The per-batch hooks skipped when a callback leaves them as skorch's no-ops.
    for hook in _BATCH_HOOKS:
        assert callable(getattr(Callback, hook)), hook
        assert callable(getattr(NeuralNet, hook)), hook


def test_run_single_epoch_records_what_the_override_records():
    """skorch's epoch, as _TrainingNet.run_single_epoch reproduces it.

    If skorch's own epoch loop starts recording another batch or epoch entry,
    or notifying another hook, the override would silently drop it.
    """
    source = inspect.getsource(NeuralNet.run_single_epoch)
    assert set(re.findall(r"record_batch\(prefix \+ [\"'](\w+)[\"']", source)) == {
        "_loss", "_batch_size"
    }
    assert set(re.findall(r"\.record\(prefix \+ [\"'](\w+)[\"']", source)) == {"_batch_count"}
    assert set(re.findall(r"notify\([\"'](\w+)[\"']", source)) == {"on_batch_begin", "on_batch_end"}
    # and the epoch loop calls it by these keywords, with the train and valid prefixes
    loop = inspect.getsource(NeuralNet.fit_loop)
    for prefix in ("train", "valid"):
        assert re.search(
            rf"run_single_epoch\(\s*iterator_{prefix}, training=\w+, prefix=[\"']{prefix}[\"'],"
            r"\s*step_fn=self\.\w+", loop
        ), f"fit_loop no longer calls run_single_epoch for {prefix}"
    # train_step notifies on_grad_computed through notify (which _TrainingNet routes)
    assert re.search(r"notify\(\s*[\"']on_grad_computed[\"']", inspect.getsource(NeuralNet.train_step))


class _Recorder(Callback):
    def initialize(self):
        self.calls = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        self.calls.append(("begin", training, net.module_.training))

    def on_grad_computed(self, net, named_parameters, batch=None, training=False, **kwargs):
        self.calls.append(("grad", training, net.module_.training))

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        self.calls.append(("end", training, net.module_.training, float(kwargs["loss"])))


def test_every_batch_hook_and_history_record_as_skorch():
    """A fit through the overrides: each hook per batch, in order, and skorch's records."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    recorder = _Recorder()
    model = MMoEClassifier(
        n_experts=2, expert_hidden_sizes=(4,), tower_hidden_sizes=(), batch_size=32,
        max_epochs=2, early_stopping=True, validation_fraction=0.2, dropout=0.1,
        callbacks=[recorder], random_state=0,
    ).fit(X, Y)
    calls = dict(model.net_.callbacks_)["_Recorder"].calls
    history = model.net_.history
    n_train, n_valid = -(-80 // 32), -(-20 // 32)
    expected = []
    for _ in range(2):
        expected += ["begin", "grad", "end"] * n_train + ["begin", "end"] * n_valid
    assert [c[0] for c in calls] == expected
    # training steps run in train mode (dropout on), validation steps in eval mode
    assert all(c[2] for c in calls if c[0] in ("grad", "end") and c[1])
    assert not any(c[2] for c in calls if c[0] == "end" and not c[1])
    for row in history:
        assert row["train_batch_count"] == n_train and row["valid_batch_count"] == n_valid
        assert len(row["batches"]) == n_train + n_valid
        train = [b for b in row["batches"] if "train_loss" in b]
        assert [b["train_batch_size"] for b in train] == [32, 32, 16]
    # the losses the callbacks saw are those written in the history's batch rows
    seen = [c[3] for c in calls if c[0] == "end"]
    written = [
        b[key] for row in history for b in row["batches"] for key in ("train_loss", "valid_loss")
        if key in b
    ]
    np.testing.assert_allclose(seen, written, rtol=1e-6)
