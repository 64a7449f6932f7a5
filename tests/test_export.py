"""Export for serving: to_torch, to_onnx and the skl2onnx converter of a Pipeline.

Every architecture is fitted once (tiny sizes, a few epochs) on four tasks
that cover every kind of output: a binary task, a binary task conditional on
it (ESMM: conditional and joint probabilities), a 3-class task with string
labels and a regression task far from unit scale. The exported computation
must give what predict_proba, predict_joint_proba and predict give, within
1e-5, on a batch of 1 and a batch of 10,000 held-out rows.
"""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import sklearn_mmoe
from sklearn_mmoe import (
    ESMMClassifier,
    MMoEClassifier,
    MMoERegressor,
    MultiTaskEstimator,
)
from sklearn_mmoe._architectures import ARCHITECTURES
from sklearn_mmoe.export import MIN_OPSET, to_onnx, to_torch

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # one pytest-xdist worker runs the module: its fitted models are fitted once
    pytest.mark.xdist_group("export-models"),
]

ATOL = 1e-5
NAMES = ["task0", "task1", "task1_joint", "task2", "task3"]
TINY = dict(
    n_experts=3, n_shared_experts=2, n_task_experts=1, n_levels=2, top_k=2,
    bottom_hidden_sizes=(4,), expert_hidden_sizes=(4,), tower_hidden_sizes=(3,),
    hidden_sizes=(4, 3), rank=2, max_epochs=3, batch_size=64, random_state=0,
)
# the parameters of TINY that MMoEClassifier/MMoERegressor take
MOE = {k: v for k, v in TINY.items() if k not in {
    "n_shared_experts", "n_task_experts", "n_levels", "bottom_hidden_sizes", "hidden_sizes", "rank"}}


def _tasks(X, rng):
    """Click, buy given click, a 3-class string label, a regression target near 100."""
    n = X.shape[0]
    Y = np.empty((n, 4), dtype=object)
    click = X[:, 0] + rng.normal(size=n) > 0
    Y[:, 0] = click.astype(float)
    Y[:, 1] = np.where(click, (X[:, 1] > 0).astype(float), np.nan)
    Y[:, 2] = np.array(["low", "mid", "high"])[np.digitize(X[:, 2], [-0.5, 0.5])]
    Y[:, 3] = 100.0 + 20.0 * X[:, 3]
    return Y


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 5))
    X_test = rng.normal(size=(10_000, 5)).astype(np.float32)
    return X, _tasks(X, rng), X_test


@pytest.fixture(scope="module")
def fitted(data):
    X, Y, _ = data
    models = {}
    for architecture in ARCHITECTURES:
        models[architecture] = MultiTaskEstimator(
            architecture=architecture,
            task_types=["classification", "classification", "classification", "regression"],
            conditional_tasks={1: 0},
            **TINY,
        ).fit(X, Y)
    return models


def _expected(est, X):
    """What the exported outputs must equal, in output order."""
    proba, joint = est.predict_proba(X), est.predict_joint_proba(X)
    return [proba[0], proba[1], joint[1], proba[2], est.predict(X)[:, 3].astype(np.float64)]


def _assert_matches(outputs, est, X):
    expected = _expected(est, X)
    assert len(outputs) == len(expected)
    for got, want, kind in zip(outputs, expected, ("p", "p", "p", "p", "v")):
        got = got.detach().numpy() if isinstance(got, torch.Tensor) else got
        assert got.shape == want.shape
        assert got.dtype == (np.float32 if kind == "p" else np.float64)
        # Probabilities within 1e-5; regression values (near 100 here) within
        # 1e-5 of their float32 resolution: the runtimes' cos/sin (periodic
        # numeric embeddings) may differ in the last bits.
        rtol = 0 if kind == "p" else 1e-6
        np.testing.assert_allclose(got, want, rtol=rtol, atol=ATOL)


def _batches(X_test):
    return X_test[:1], X_test


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_torch_module_trace_script_and_export_match_predict(fitted, data, architecture):
    est, X_test = fitted[architecture], data[2]
    module = to_torch(est)
    assert module.output_names == NAMES
    example = torch.from_numpy(X_test[:7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notices
        traced = torch.jit.trace(module, example)  # gradients on: the serving layout
        scripted = torch.jit.script(module)
    exported = torch.export.export(
        module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
    ).module()
    for X in _batches(X_test):
        x = torch.from_numpy(X)
        for runnable in (module, traced, scripted, exported):
            with torch.no_grad():
                _assert_matches(runnable(x), est, X)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_onnx_graph_matches_predict(fitted, data, architecture):
    ort = pytest.importorskip("onnxruntime")
    est, X_test = fitted[architecture], data[2]
    model = to_onnx(est)
    (graph_input,) = model.graph.input
    assert graph_input.name == "X"
    batch, width = graph_input.type.tensor_type.shape.dim
    assert not batch.HasField("dim_value") and width.dim_value == 5  # any batch size
    assert [o.name for o in model.graph.output] == NAMES
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for X in _batches(X_test):
        _assert_matches(session.run(None, {"X": X}), est, X)


def test_output_columns_map_to_classes_and_task_names(data):
    X, Y, X_test = data
    # 1-D y with string labels: the probability columns follow classes_.
    clf = MMoEClassifier(**MOE).fit(X, Y[:, 2])
    (proba,) = to_torch(clf)(torch.from_numpy(X_test[:50]))
    np.testing.assert_array_equal(clf.classes_[proba.numpy().argmax(axis=1)], clf.predict(X_test[:50]))
    # Regressors: values in the original units; names given by the user.
    Y_reg = np.column_stack([Y[:, 3].astype(float), 3.0 - 0.01 * Y[:, 3].astype(float)])
    reg = MMoERegressor(**MOE).fit(X, Y_reg)
    module = to_torch(reg, task_names=["watch_time", "margin"])
    assert module.output_names == ["watch_time", "margin"]
    outputs = module(torch.from_numpy(X_test[:50]))
    np.testing.assert_allclose(np.column_stack(outputs), reg.predict(X_test[:50]), atol=ATOL, rtol=0)



def _frame(n, rng):
    X = pd.DataFrame(
        {
            "age": rng.uniform(18, 90, size=n),
            "income": rng.lognormal(10, 1, size=n),
            "city": rng.choice(["paris", "lyon", "nice"], size=n),
            "device": rng.choice(["ios", "android"], size=n),
        }
    )
    return X


def _pipeline_targets(X, rng):
    young = (X["age"] < 40).to_numpy()
    paris = (X["city"] == "paris").to_numpy()
    return np.column_stack([young | paris, rng.uniform(size=len(X)) < 0.5]).astype(float)


def test_skl2onnx_converts_a_whole_pipeline_into_one_graph():
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    rng = np.random.RandomState(1)
    X = _frame(300, rng)
    pipe = make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), ["age", "income"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "device"]),
            ]
        ),
        MMoEClassifier(**MOE),
    ).fit(X, _pipeline_targets(X, rng))
    # float64 numeric columns: the scaler runs in double, the estimator casts to float32
    model = skl2onnx.to_onnx(pipe, X[:1])
    assert [o.name for o in model.graph.output] == ["task0", "task1"]
    assert {"OneHotEncoder", "MatMul"} <= {node.op_type for node in model.graph.node}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    X_test = _frame(10_000, rng)
    X_test.loc[0, "city"] = "rome"  # unseen category: ignored, as in scikit-learn
    for rows in (X_test[:1], X_test):
        feeds = {c: rows[[c]].to_numpy() for c in X.columns}
        for got, want in zip(session.run(None, feeds), pipe.predict_proba(rows)):
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_exported_file_runs_in_a_fresh_process_with_onnxruntime_only(fitted, data, tmp_path):
    pytest.importorskip("onnxruntime")
    est, X_test = fitted["mmoe"], data[2]
    path = tmp_path / "model.onnx"
    path.write_bytes(to_onnx(est).SerializeToString())
    np.save(tmp_path / "X.npy", X_test[:100])
    code = f"""
import sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
outputs = session.run(None, {{"X": np.load({str(tmp_path / "X.npy")!r})}})
np.savez({str(tmp_path / "out.npz")!r}, *outputs)
assert not {{"torch", "sklearn", "sklearn_mmoe", "skl2onnx"}} & set(sys.modules), sorted(sys.modules)
"""
    # -I: isolated from the environment and the working directory (no sklearn_mmoe)
    subprocess.run([sys.executable, "-I", "-c", code], check=True, timeout=120)
    with np.load(tmp_path / "out.npz") as saved:
        _assert_matches([saved[f"arr_{i}"] for i in range(len(NAMES))], est, X_test[:100])


def test_every_estimator_has_a_converter():
    skl2onnx = pytest.importorskip("skl2onnx")
    for name in sklearn_mmoe.__all__:
        obj = getattr(sklearn_mmoe, name)
        if isinstance(obj, type):
            assert skl2onnx.get_model_alias(obj) == f"SklearnMMoE{name}"


def test_raw_network_traces_scripts_and_exports_with_gradients_on(fitted, data):
    """The narrow-weight layout is training only: a recorded graph computes inference's."""
    est, X_test = fitted["mmoe"], data[2]
    network = est.net_.module_
    assert any(p.requires_grad for p in network.parameters())
    x = torch.from_numpy(X_test[:300])
    with torch.no_grad():
        reference = network(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, x[:20])
        scripted = torch.jit.script(network)
    exported = torch.export.export(network, (x[:20],)).module()
    with torch.no_grad():
        for runnable in (traced, scripted):
            torch.testing.assert_close(runnable(x), reference, rtol=0, atol=1e-6)
        torch.testing.assert_close(exported(x[:20]), reference[:20], rtol=0, atol=1e-6)
    # the copy to column-major is not in the recorded graphs
    assert "contiguous" not in str(traced.graph) and "contiguous" not in str(exported.graph)


def test_bad_input(fitted, data):
    pytest.importorskip("skl2onnx")
    est = fitted["mmoe"]
    for export in (to_torch, to_onnx):
        with pytest.raises(NotFittedError):
            export(MMoEClassifier())
        with pytest.raises(TypeError, match="sklearn_mmoe estimator.*LogisticRegression"):
            export(LogisticRegression().fit(data[0], data[1][:, 0].astype(float)))
        with pytest.raises(ValueError, match="task_names has 2 names but the estimator has 4"):
            export(est, task_names=["a", "b"])
        with pytest.raises(ValueError, match="must be distinct"):
            export(est, task_names=["b_joint", "b", "c", "d"])
    with pytest.raises(ValueError, match=f"opset=13 is too old.*opset {MIN_OPSET}"):
        to_onnx(est, opset=13)
    with pytest.raises(ValueError, match="X has 3 features"):
        to_onnx(est, data[2][:5, :3])


def test_old_opset_in_a_pipeline():
    skl2onnx = pytest.importorskip("skl2onnx")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    pipe = make_pipeline(StandardScaler(), ESMMClassifier(
        bottom_hidden_sizes=(4,), tower_hidden_sizes=(2,), max_epochs=2, random_state=0
    ))
    pipe.fit(X, np.column_stack([X[:, 0] > 0, np.where(X[:, 0] > 0, X[:, 1] > 0, np.nan)]))
    with pytest.raises(ValueError, match="opset=15 is too old"):
        skl2onnx.to_onnx(pipe, X[:1].astype(np.float32), target_opset=15)


# ------------------------------------------------------- categorical columns
def _categorical_frame(n, rng):
    """A category column, a string column, numbers as categories and numeric columns."""
    return pd.DataFrame(
        {
            "age": rng.uniform(18, 90, size=n),
            "color": pd.Categorical(rng.choice(["red", "green", "blue"], size=n)),
            "city": rng.choice(["paris", "lyon", "nice", "rome"], size=n).astype(object),
            "visits": rng.randint(0, 20, size=n),
            "plan": rng.choice([1.5, 2.0, 7.0], size=n),
        }
    )


def _with_unknowns(X):
    """Unseen and missing values in every categorical column."""
    X = X.copy()
    X["color"] = X["color"].cat.add_categories(["pink"])
    X.loc[0, "color"], X.loc[1, "color"] = "pink", np.nan
    X.loc[2, "city"], X.loc[3, "city"] = "oslo", None
    X.loc[4, "plan"], X.loc[5, "plan"] = np.nan, 3.0
    X.loc[6, "plan"] = 2.0 + 1e-12  # rounds to a category in float32, is none
    return X


def _feeds(session, X):
    """The graph's inputs from a DataFrame: one column each, missing strings as ""."""
    feeds = {}
    for node in session.get_inputs():
        column = X[node.name]
        if node.type == "tensor(string)":
            values = column.astype(object).where(column.notna(), "").astype(str).to_numpy()
        else:
            dtype = {"tensor(double)": np.float64, "tensor(int64)": np.int64}[node.type]
            values = column.to_numpy(dtype=dtype, na_value=np.nan)
        feeds[node.name] = values.reshape(-1, 1)
    return feeds


@pytest.fixture(scope="module")
def categorical():
    rng = np.random.RandomState(2)
    X = _categorical_frame(400, rng)
    Y = np.column_stack([
        (X["age"] < 40) | (X["city"] == "paris"), (X["color"] == "red") ^ (X["plan"] > 2),
    ]).astype(float)
    est = MMoEClassifier(categorical_features=["color", "city", "plan"], **MOE).fit(X, Y)
    return est, _with_unknowns(_categorical_frame(1_000, rng))


def test_onnx_graph_encodes_categorical_columns_like_predict(categorical):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    est, X_test = categorical
    assert list(est.categorical_features_) == [1, 2, 4]
    model = to_onnx(est, X_test[:5])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [(node.name, node.type) for node in session.get_inputs()] == [
        ("age", "tensor(double)"), ("color", "tensor(string)"), ("city", "tensor(string)"),
        ("visits", "tensor(int64)"), ("plan", "tensor(double)"),
    ]
    # the rows made unknown get code 0 (columns: age, visits, then the codes)
    encoded = est._encode_X(X_test, reset=False)
    column = {"color": 2, "city": 3, "plan": 4}
    for row, name in enumerate(["color", "color", "city", "city", "plan", "plan", "plan"]):
        assert encoded[row, column[name]] == 0
    known = X_test[4:7].assign(plan=2.0)  # and code 0 changes the predictions
    change = [np.abs(a - b).max() for a, b in
              zip(est.predict_proba(known), est.predict_proba(X_test[4:7]))]
    assert max(change) > 1e-4
    for rows in (X_test[:1], X_test[1:2], X_test):
        for got, want in zip(session.run(None, _feeds(session, rows)), est.predict_proba(rows)):
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    # to_torch reads the encoded matrix: numeric columns, then the codes
    module = to_torch(est)
    with torch.no_grad():
        outputs = module(torch.from_numpy(encoded))
    for got, want in zip(outputs, est.predict_proba(X_test)):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=ATOL)


def test_skl2onnx_converts_a_pipeline_on_raw_categorical_columns():
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    rng = np.random.RandomState(3)
    # skl2onnx guesses a string input for an object column (not for a category dtype)
    X = _categorical_frame(300, rng).assign(color=lambda d: d["color"].astype(object))
    Y = np.column_stack([X["age"] < 40, X["city"] == "paris"]).astype(float)
    est = MMoEClassifier(categorical_features=["color", "city", "plan"], **MOE)
    pipe = make_pipeline(est).fit(X, Y)
    model = skl2onnx.to_onnx(pipe, X[:1])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    X_test = _with_unknowns(_categorical_frame(200, rng))
    for got, want in zip(session.run(None, _feeds(session, X_test)), pipe.predict_proba(X_test)):
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    # one matrix, or a number where a string column is expected: clear errors
    with pytest.raises(ValueError, match="one input per column of X \\(5\\), got 1"):
        skl2onnx.convert_sklearn(est, initial_types=[("X", FloatTensorType([None, 5]))])
    types = [(c, DoubleTensorType([None, 1])) for c in X.columns]
    with pytest.raises(TypeError, match="input 'color' \\(column 1\\) must hold strings"):
        skl2onnx.convert_sklearn(est, initial_types=types)


def test_numeric_categories_equal_in_float32_are_refused():
    pytest.importorskip("skl2onnx")
    rng = np.random.RandomState(4)
    X = pd.DataFrame({"x": rng.normal(size=60), "code": np.repeat([1.0, 1.0 + 1e-12, 2.0], 20)})
    est = MMoEClassifier(categorical_features=["code"], **MOE).fit(X, rng.randint(0, 2, (60, 2)))
    assert len(est.categories_[0]) == 3
    with pytest.raises(ValueError, match="column 1 \\('code'\\) has numeric categories that are equal"):
        to_onnx(est, X)


# ------------------------------------------------------- int8 quantization
# probabilities of the dynamic_int8 graph against predict_proba: the largest
# difference (0.022 on these small models; 0.016 on the default Census model,
# docs/performance.md) and the mean one
QUANT_ATOL, QUANT_MEAN = 0.05, 0.005


def _wide_data(n, rng):
    """6 numbers and a 30-way one-hot column, two binary tasks (Census-like, small)."""
    numbers = rng.normal(size=(n, 6))
    code = rng.randint(0, 30, size=n)
    X = np.column_stack([numbers, np.eye(30)[code]]).astype(np.float32)
    logits = np.column_stack([
        numbers[:, 0] + np.sin(numbers[:, 1]) + (code % 3 == 0) - 0.5,
        numbers[:, 2] * numbers[:, 3] + (code < 10),
    ])
    return X, (rng.uniform(size=(n, 2)) < 1 / (1 + np.exp(-2 * logits))).astype(float)


@pytest.fixture(scope="module")
def quantizable():
    """An MMoE whose first layers are wide enough for int8 weights to matter."""
    rng = np.random.RandomState(5)
    X, Y = _wide_data(2_000, rng)
    est = MMoEClassifier(n_experts=4, expert_hidden_sizes=(64,), tower_hidden_sizes=(8,),
                         max_epochs=10, random_state=0).fit(X, Y)
    return est, _wide_data(10_000, rng)[0]


def _quantized_ops(model):
    """The graph's operators and its int8 weight matrices (not the 1-D zero points)."""
    ops = [node.op_type for node in model.graph.node]
    int8 = [i for i in model.graph.initializer if i.data_type == 3 and len(i.dims) == 2]  # INT8
    return ops, int8


def test_dynamic_int8_graph_stays_close_to_predict_proba(quantizable):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    est, X_test = quantizable
    model = to_onnx(est, quantize="dynamic_int8")
    ops, int8 = _quantized_ops(model)
    # the experts' and the gates' first layers read int8 weights (one input
    # quantization for both); the expert mixture's and the towers' batched
    # products stay float32
    assert ops.count("MatMulInteger") == 2 and ops.count("DynamicQuantizeLinear") == 1
    assert ops.count("MatMul") == 3
    assert sorted(tuple(w.dims)[1] for w in int8) == [4 * 2, 4 * 64]
    # standard operators only: any ONNX runtime can run it
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx", "ai.onnx.ml"}
    assert [o.name for o in model.graph.output] == ["task0", "task1"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    float_session = ort.InferenceSession(to_onnx(est).SerializeToString(),
                                         providers=["CPUExecutionProvider"])
    for X in _batches(X_test):
        want = est.predict_proba(X)
        for got, exact, w in zip(session.run(None, {"X": X}), float_session.run(None, {"X": X}), want):
            assert got.shape == w.shape and got.dtype == np.float32
            np.testing.assert_allclose(got.sum(axis=1), 1, rtol=0, atol=1e-6)
            np.testing.assert_allclose(got, w, rtol=0, atol=QUANT_ATOL)
            assert np.abs(got - w).mean() < QUANT_MEAN
            np.testing.assert_allclose(exact, w, rtol=0, atol=ATOL)
    # approximate, not the float graph: int8 weights move the probabilities
    assert np.abs(got - w).max() > 1e-4


def test_dynamic_int8_graph_runs_in_a_fresh_process_with_onnxruntime_only(quantizable, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    est, X_test = quantizable
    model = to_onnx(est, quantize="dynamic_int8").SerializeToString()
    path = tmp_path / "int8.onnx"
    path.write_bytes(model)
    np.save(tmp_path / "X.npy", X_test[:100])
    code = f"""
import sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
np.savez({str(tmp_path / "out.npz")!r}, *session.run(None, {{"X": np.load({str(tmp_path / "X.npy")!r})}}))
assert not {{"torch", "sklearn", "sklearn_mmoe", "skl2onnx"}} & set(sys.modules), sorted(sys.modules)
"""
    subprocess.run([sys.executable, "-I", "-c", code], check=True, timeout=120)
    here = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": X_test[:100]})
    with np.load(tmp_path / "out.npz") as saved:
        for i, want in enumerate(here):
            np.testing.assert_array_equal(saved[f"arr_{i}"], want)


def test_skl2onnx_quantizes_the_estimator_of_a_pipeline(quantizable):
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    rng = np.random.RandomState(6)
    X, Y = _wide_data(1_000, rng)
    pipe = make_pipeline(StandardScaler(), MMoEClassifier(
        n_experts=4, expert_hidden_sizes=(64,), max_epochs=5, random_state=0)).fit(X, Y)
    model = skl2onnx.to_onnx(pipe, X[:1], options={MMoEClassifier: {"quantize": "dynamic_int8"}})
    ops, _ = _quantized_ops(model)
    assert ops.count("MatMulInteger") == 2 and "Scaler" in ops
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    X_test = _wide_data(2_000, rng)[0]
    for rows in _batches(X_test):
        for got, want in zip(session.run(None, {"X": rows}), pipe.predict_proba(rows)):
            np.testing.assert_allclose(got, want, rtol=0, atol=QUANT_ATOL)
    with pytest.raises(ValueError, match="'int8'.*quantize"):
        skl2onnx.to_onnx(pipe, X[:1], options={MMoEClassifier: {"quantize": "int8"}})


@pytest.mark.parametrize("architecture", ["ple", "tensor_factorization"])
def test_dynamic_int8_on_other_architectures_and_task_kinds(fitted, data, architecture):
    """Every output keeps its name, shape and dtype; a network without 2-D weight matrices
    (tensor factorisation: 3-D weights only) is left as it is."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    est, X_test = fitted[architecture], data[2]
    model = to_onnx(est, quantize="dynamic_int8")
    ops, int8 = _quantized_ops(model)
    assert [o.name for o in model.graph.output] == NAMES
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    if architecture == "tensor_factorization":
        assert not int8 and "MatMulInteger" not in ops
        _assert_matches(session.run(None, {"X": X_test}), est, X_test)
        return
    assert len(int8) >= 2 and ops.count("MatMulInteger") == len(int8)
    for X in _batches(X_test):
        got, want = session.run(None, {"X": X}), _expected(est, X)
        for g, w, dtype in zip(got, want, [np.float32] * 4 + [np.float64]):
            assert g.shape == w.shape and g.dtype == dtype
        # tiny network on 5 standard normal columns: probabilities within 0.1
        for g, w in zip(got[:4], want[:4]):
            np.testing.assert_allclose(g, w, rtol=0, atol=0.1)


def test_bad_quantize(fitted):
    pytest.importorskip("skl2onnx")
    for bad in ("int8", "INT8", True, 8):
        with pytest.raises(ValueError, match=r"quantize must be one of \[None, 'dynamic_int8'\]"):
            to_onnx(fitted["mmoe"], quantize=bad)
