"""Inference chunks and threads: bit-identical rows, small inputs on one thread."""

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

from sklearn_mmoe import MMoEClassifier, _data
from sklearn_mmoe._targets import decode

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.xdist_group("inference-model"),  # model_and_X: 100,000 rows and a fit, once
]

N_ROWS = 100_000


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    """Run the test with this many torch threads (the suite runs with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_and_X():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(N_ROWS, 40))
    Y = np.column_stack([X[:, 0] + X[:, 1] > 0, X[:, 2] * X[:, 3] > 0]).astype(int)
    model = MMoEClassifier(
        n_experts=4, expert_hidden_sizes=(32,), tower_hidden_sizes=(16,), max_epochs=2,
        numeric_encoding=None, early_stopping=False, random_state=0,
    ).fit(X[:2000], Y[:2000])
    return model, X


def _old_logits(model, X):
    """Logits as inference computed them before issue 19: 2048-row chunks,
    a shorter one padded with zero rows to 128, all threads."""
    module = model.net_.module_
    X = torch.from_numpy(X.astype(np.float32))
    outputs = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], 2048):
            chunk = X[start : start + 2048]
            rows = chunk.shape[0]
            if rows < 128:
                chunk = torch.cat([chunk, chunk.new_zeros((128 - rows, chunk.shape[1]))])
            outputs.append(module(chunk)[:rows])
    return torch.cat(outputs).numpy()


def test_rows_are_bit_identical_to_the_old_chunking_whatever_the_chunk(
    model_and_X, threads, monkeypatch
):
    model, X = model_and_X
    expected = _old_logits(model, X)
    # Today's chunks, then others; INFERENCE_CHUNK_VALUES must not cut them.
    monkeypatch.setattr(_data, "INFERENCE_CHUNK_VALUES", 1 << 30)
    for chunk in (_data.INFERENCE_CHUNK, 128, 1000, 2048, 5000, N_ROWS):
        monkeypatch.setattr(_data, "INFERENCE_CHUNK", chunk)
        assert np.array_equal(model._logits(X), expected), chunk
    # One row, short padded inputs (run on one thread), one chunk's height
    # exactly, and a short last chunk.
    for start, stop in [(0, 1), (777, 778), (N_ROWS - 1, N_ROWS), (10, 110), (0, 128),
                        (3, 132), (N_ROWS - 16390, N_ROWS)]:
        assert np.array_equal(model._logits(X[start:stop]), expected[start:stop]), (start, stop)
    for a, b in zip(model.predict_proba(X[:1]), decode(expected[:1], model._tasks)):
        assert np.array_equal(a, b)


def test_chunks_are_bounded_in_values_for_wide_rows(model_and_X):
    assert _data._chunk_rows(40) == _data.INFERENCE_CHUNK
    wide = _data._chunk_rows(50_000)
    assert _data.MIN_INFERENCE_ROWS <= wide < _data.INFERENCE_CHUNK
    assert wide * 50_000 <= _data.INFERENCE_CHUNK_VALUES
    assert _data._chunk_rows(10**9) == _data.MIN_INFERENCE_ROWS
    # A numeric encoding compares each value with its column's whole table:
    # a row of 40 columns becomes 40 x 128 values.
    model, X = model_and_X
    assert _data._values_per_row(model.net_.module_, 40) == 40
    encoded = MMoEClassifier(n_experts=2, max_epochs=1, early_stopping=False).fit(
        X[:300], (X[:300, :2] > 0).astype(int)
    )
    width = _data._values_per_row(encoded.net_.module_, 40)
    assert width == 40 * len(encoded.net_.module_.embedding.quantile_lower[0])
    chunks = list(_data.inference_chunks(X[:30_000], "cpu", width))
    assert max(c.shape[0] for c, _ in chunks) == _data._chunk_rows(width) < _data.INFERENCE_CHUNK


def _on_openmp():
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def test_thread_controls_are_found_where_torch_runs_on_openmp():
    if _on_openmp() and sys.platform.startswith("linux"):
        assert _data._controls(), "torch's OpenMP runtime was not reached"


def _mkl_threads():
    return _data._torch_cpu_library().MKL_Get_Max_Threads()


class _Record:
    """Forward pre-hook: this thread's torch and MKL thread counts, and what
    a thread that was already running and one started now see meanwhile."""

    def __init__(self):
        self.seen = []
        self.ask, self.answer = threading.Event(), []
        self.waiting = threading.Thread(target=self._wait)
        self.waiting.start()

    def _wait(self):
        torch.get_num_threads()  # initialised before the call
        self.ask.wait()
        self.answer.append(torch.get_num_threads())

    def __call__(self, module, args):
        born = []
        thread = threading.Thread(target=lambda: born.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        self.ask.set()
        self.waiting.join()
        mkl = _mkl_threads() if _data._controls() and _data._controls()[1] else None
        self.seen.append((torch.get_num_threads(), mkl, born[0], self.answer[0]))


def test_small_inputs_run_on_the_calling_thread_only(model_and_X):
    if not _data._controls():
        pytest.skip("torch does not run on OpenMP here: nothing to limit")
    model, X = model_and_X
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for rows, inside in [(1, 1), (100, 1), (_data.MIN_INFERENCE_ROWS, 1), (129, 2), (3000, 2)]:
            record = _Record()
            handle = model.net_.module_.register_forward_pre_hook(record)
            try:
                model.predict_proba(X[:rows])
            finally:
                handle.remove()
            threads, mkl, born, running = record.seen[0]
            assert threads == inside, rows
            assert mkl in (None, inside), rows
            # Other threads keep the user's setting, whether already running
            # or started during the call, and so does this one afterwards.
            assert (born, running) == (2, 2), rows
            assert torch.get_num_threads() == 2
            if mkl is not None:
                assert _mkl_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_concurrent_small_and_large_predictions_match_serial(model_and_X, threads):
    model, X = model_and_X
    inputs = [X[i : i + n] for i, n in zip(range(0, 4000, 500), [1, 3000, 7, 128, 129, 1, 2000, 50])]
    serial = [model.predict_proba(x) for x in inputs]

    def predict(x):
        out = model.predict_proba(x)
        return out, torch.get_num_threads()

    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(predict, inputs * 3))
    for s, (p, after) in zip(serial * 3, parallel):
        assert after == threads
        for a, b in zip(s, p):
            assert np.array_equal(a, b)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize(
    "value, message",
    [(np.nan, "Input X contains NaN"), (-np.inf, "Input X contains infinity"),
     (1e300, "beyond the float32 range")],
)
def test_float64_rows_are_checked_in_the_chunk_that_holds_them(model_and_X, monkeypatch,
                                                               value, message):
    """A float64 X is checked as each chunk is cast: a bad value in the last chunk raises."""
    model, X = model_and_X
    monkeypatch.setattr(_data, "INFERENCE_CHUNK", 256)
    bad = X[:1000].copy()
    bad[-1, 5] = value
    for method in (model.predict, model.predict_proba, model.predict_log_proba):
        with pytest.raises(ValueError, match=message):
            method(bad)
    # a fitted model continued by partial_fit checks X before training (and is left as it was)
    before = model.predict_proba(X[:50])
    with pytest.raises(ValueError, match=message):
        model.partial_fit(bad, np.zeros((len(bad), 2), dtype=int))
    np.testing.assert_array_equal(model.predict_proba(X[:50])[1], before[1])


def _with_city(encoding):
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(300, 6)), columns=[f"x{j}" for j in range(6)])
    X["city"] = pd.Categorical(rng.choice(["a", "b", "c"], size=300))
    Y = np.column_stack([X["x0"] + (X["city"] == "a") > 0, X["x1"] * X["x2"] > 0]).astype(int)
    model = MMoEClassifier(n_experts=3, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,),
                           max_epochs=2, numeric_encoding=encoding, random_state=0).fit(X, Y)
    return model, X


def test_the_periodic_embedding_is_padded_in_front():
    """Its per-column products follow the chunk height: not computed row by row."""
    model, _ = _with_city("periodic")
    assert _data._row_by_row_embedding(model.net_.module_) == (None, model.net_.module_)


@pytest.mark.parametrize("encoding", ["quantile", "piecewise_linear", None])
def test_padding_after_the_embedding_changes_no_bit(encoding, monkeypatch):
    # A short chunk is padded behind a row-by-row input embedding (quantile,
    # piecewise-linear, categorical codes): the outputs are those of padding
    # the input rows.
    model, X = _with_city(encoding)
    assert _data._row_by_row_embedding(model.net_.module_)[0] is not None
    slices = [(0, 1), (299, 300), (17, 20), (100, 227), (0, 128), (0, 300)]
    outputs = [model._logits(X.iloc[start:stop]) for start, stop in slices]
    monkeypatch.setattr(_data, "_row_by_row_embedding", lambda module: (None, module))
    for (start, stop), out in zip(slices, outputs):
        assert np.array_equal(out, model._logits(X.iloc[start:stop])), (start, stop)


def test_single_rows_skip_no_input_check():
    # Short float arrays skip scikit-learn's generic validation when they pass
    # it as they are; every check still applies to a single row.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    model = MMoEClassifier(n_experts=2, expert_hidden_sizes=(8,), tower_hidden_sizes=(4,),
                           max_epochs=1, random_state=0).fit(X, Y)
    for bad in (np.nan, np.inf):
        row = X[:1].copy()
        row[0, 2] = bad
        with pytest.raises(ValueError, match="X contains"):
            model.predict_proba(row)
    with pytest.raises(ValueError, match="X has 3 features"):
        model.predict_proba(X[:1, :3].copy())
    with pytest.raises(ValueError, match="float32 range"):
        model.predict_proba(np.full((1, 4), 1e300))
    assert np.array_equal(model.predict(X[:1].astype(np.float32)), model.predict(X)[:1])
    framed = MMoEClassifier(n_experts=2, expert_hidden_sizes=(8,), tower_hidden_sizes=(4,),
                            max_epochs=1, random_state=0).fit(pd.DataFrame(X, columns=list("abcd")), Y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        framed.predict_proba(X[:1].copy())
