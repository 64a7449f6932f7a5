"""Export fitted estimators for serving: a PyTorch module and an ONNX graph.

A fitted estimator's network maps float32 features to logits; the serving
graph also applies what ``predict_proba`` and ``predict`` add on top of the
network, so that what it returns needs no post-processing:

* a classification task gives its class probabilities, shape
  ``(n_samples, n_classes)``, float32, columns in the order of the task's
  ``classes_`` (class labels stay on the Python side);
* a conditional task (ESMM) gives its conditional probability, like
  ``predict_proba``, and a second output ``<task>_joint`` with the joint
  probability of ``predict_joint_proba`` (pCVR and pCTCVR);
* a regression task gives its predictions in the original units, shape
  ``(n_samples,)``, float64 (the network's float32 output is rescaled in
  float64, as ``predict`` does).

Outputs are named after the tasks (``task_names``, default ``task0``,
``task1``, ...), in task order. :func:`to_torch` returns that computation as
an ``nn.Module`` for ``torch.export``, ``torch.jit.trace`` and
``torch.jit.script``; :func:`to_onnx` returns it as an ONNX graph with a
dynamic batch axis. A model that embeds categorical columns
(``categorical_features_``) is served from its raw columns by the ONNX
graph (one input per column, the vocabulary inside the graph), while the
PyTorch module reads the encoded matrix (see :func:`to_torch`). Importing this module with skl2onnx installed registers a
converter for every estimator of :mod:`sklearn_mmoe`, so that
``skl2onnx.to_onnx`` converts a whole Pipeline (a ColumnTransformer with
OneHotEncoder and StandardScaler steps, then the estimator) into one graph.
:func:`to_onnx` needs the ``onnx`` extra (``pip install sklearn-mmoe[onnx]``:
onnx, onnxscript, onnxruntime, skl2onnx); :func:`to_torch` only PyTorch.
"""

import contextlib
import copy
import logging
import os
import tempfile
import types

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from . import _estimators
from ._base import _BaseMultiTask
from ._data import MIN_INFERENCE_ROWS
from ._multitask import ESMMClassifier, MultiTaskEstimator

__all__ = ["to_torch", "to_onnx", "MIN_OPSET"]

#: Oldest ONNX opset :func:`to_onnx` writes. PyTorch's ONNX exporter
#: translates to opset 18 and later; below it, it would have to convert the
#: graph down operator by operator, which fails for ``Shape`` (its
#: ``start``/``end`` attributes are from opset 15).
MIN_OPSET = 18

_INPUT = "X"

# Values of to_onnx's ``quantize`` parameter: None (float32 weights, the
# default) or "dynamic_int8" (ONNX Runtime's dynamic quantization of the
# matrix products with a constant 2-D weight matrix).
_QUANTIZE_OPTIONS = (None, "dynamic_int8")


# ------------------------------------------------------------------ torch side
class _Probabilities(nn.Module):
    """Class probabilities of task ``task``: ``[1 - p, p]`` or a softmax."""

    def __init__(self, task, n_classes):
        super().__init__()
        self.task, self.n_classes = task, n_classes

    def forward(self, logits):
        if self.n_classes == 2:
            p = torch.sigmoid(logits[:, self.task, 0:1])
            return torch.cat([1.0 - p, p], dim=1)
        return torch.softmax(logits[:, self.task, : self.n_classes], dim=1)


class _JointProbabilities(nn.Module):
    """``[1 - p, p]`` with ``p = p(parent) * p(task | parent)`` (ESMM's pCTCVR)."""

    def __init__(self, task, parent):
        super().__init__()
        self.task, self.parent = task, parent

    def forward(self, logits):
        p = torch.sigmoid(logits[:, self.task, 0:1]) * torch.sigmoid(logits[:, self.parent, 0:1])
        return torch.cat([1.0 - p, p], dim=1)


class _Values(nn.Module):
    """Regression task ``task`` in the original units, float64 like ``predict``."""

    def __init__(self, task, mean, scale):
        super().__init__()
        self.task, self.mean, self.scale = task, float(mean), float(scale)

    def forward(self, logits):
        return logits[:, self.task, 0].double() * self.scale + self.mean


class _ServingModule(nn.Module):
    """Float32 features -> a tuple of per-output tensors, in ``output_names`` order.

    ``encoder`` maps the float32 matrix given to the module to the matrix
    the network reads (the identity today). Under ``torch.jit.script`` the
    network is traced first (its control flow depends only on the
    architecture, never on the data; see ``__prepare_scriptable__``) and the
    module returns a list.
    """

    def __init__(self, encoder, network, heads, output_names, n_features):
        super().__init__()
        self.encoder = encoder
        self.network = network
        self.heads = nn.ModuleList(heads)
        self.output_names = list(output_names)
        self.n_features = n_features

    def forward(self, x):
        logits = self.network(self.encoder(x))
        outputs = []
        for head in self.heads:
            outputs.append(head(logits))
        if torch.jit.is_scripting():
            return outputs
        return tuple(outputs)

    def __prepare_scriptable__(self):
        # Some networks are written with Python that TorchScript does not
        # compile (PLE's per-level generator, CrossStitch's iterators); all
        # of them trace to a graph with a dynamic batch axis. The trace runs
        # on MIN_INFERENCE_ROWS rows: no dimension of size 1 gets baked in.
        scriptable = copy.copy(self)
        scriptable._modules = dict(self._modules)
        example = torch.zeros(MIN_INFERENCE_ROWS, self.n_features)
        scriptable.network = torch.jit.trace(self.network, self.encoder(example))
        return scriptable


def _check_estimator(estimator):
    if not isinstance(estimator, _BaseMultiTask):
        raise TypeError(
            "estimator must be a fitted sklearn_mmoe estimator (e.g. MMoEClassifier or "
            f"MultiTaskEstimator), got {type(estimator).__name__}; other estimators have "
            "their own converters (skl2onnx for scikit-learn's)."
        )
    check_is_fitted(estimator)


def _check_task_names(estimator, task_names):
    n_tasks = estimator.n_tasks_
    if task_names is None:
        return [f"task{t}" for t in range(n_tasks)]
    if isinstance(task_names, str) or not all(isinstance(n, str) and n for n in task_names):
        raise TypeError(f"task_names must be a list of non-empty strings, got {task_names!r}.")
    names = list(task_names)
    if len(names) != n_tasks:
        raise ValueError(
            f"task_names has {len(names)} names but the estimator has {n_tasks} task(s)."
        )
    return names


def _outputs(estimator, task_names=None):
    """``[(name, head, kind)]``, kind "proba" (float32, 2-D) or "values" (float64, 1-D)."""
    outputs = []
    for t, (task, name) in enumerate(zip(estimator._tasks, _check_task_names(estimator, task_names))):
        if task.kind == "regression":
            outputs.append((name, _Values(t, task.mean, task.scale), "values"))
            continue
        outputs.append((name, _Probabilities(t, task.classes.size), "proba"))
        if task.parent is not None:
            outputs.append((f"{name}_joint", _JointProbabilities(t, task.parent), "proba"))
    names = [name for name, _, _ in outputs]
    if len(set(names)) < len(names) or _INPUT in names:
        raise ValueError(
            f"The output names {names} must be distinct and differ from the input name "
            f"{_INPUT!r}; pass other task_names."
        )
    return outputs


def _input_encoder(estimator):
    """The torch module that turns the served float32 matrix into the network's input.

    The identity: today the network reads the features as given. A
    preprocessing step of the estimator on its float32 matrix goes here (and
    its ONNX counterpart in :func:`_network_input`).
    """
    return nn.Identity()


def to_torch(estimator, *, task_names=None):
    """The fitted estimator's prediction as a PyTorch module.

    The module maps a float32 tensor of shape ``(n_samples, n_features)``
    to a tuple of tensors, one per output (see :mod:`sklearn_mmoe.export`):
    class probabilities (float32, ``(n_samples, n_classes)``, columns in the
    order of ``classes_``) for a classification task, followed for a
    conditional task by its joint probabilities, and values in the original
    units (float64, ``(n_samples,)``) for a regression task. Its
    ``output_names`` attribute names them.

    For a model with categorical columns (``categorical_features_``), the
    tensor is the encoded matrix the network reads: the numeric columns in
    their order, then one code per categorical column (in the order of
    ``categorical_features_``): ``i + 1`` for the category
    ``categories_[j][i]``, 0 for a missing, rare or unseen one. (:func:`to_onnx`
    builds that encoding into the graph.)

    The module is a copy on the CPU, in evaluation mode, with frozen
    parameters: it can be exported with ``torch.export.export`` (declare the
    batch dimension dynamic to serve any batch size), traced with
    ``torch.jit.trace`` and scripted with ``torch.jit.script`` (a scripted
    module returns a list).

    Parameters
    ----------
    estimator : fitted sklearn_mmoe estimator
        Any estimator of :mod:`sklearn_mmoe`.
    task_names : list of str, default=None
        Name of each task's output; default ``["task0", "task1", ...]``.
        A conditional task's joint probabilities are ``"<name>_joint"``.

    Returns
    -------
    module : torch.nn.Module
        The serving module.

    Raises
    ------
    TypeError
        If ``estimator`` is not an estimator of :mod:`sklearn_mmoe`.
    sklearn.exceptions.NotFittedError
        If it is not fitted.

    See Also
    --------
    to_onnx : The same computation as an ONNX graph.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_mmoe import MultiTaskEstimator
    >>> from sklearn_mmoe.export import to_torch
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4))
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 1] * 10 + 3])
    >>> est = MultiTaskEstimator(task_types=["classification", "regression"],
    ...                          n_experts=2, max_epochs=5, random_state=0).fit(X, Y)
    >>> module = to_torch(est, task_names=["click", "dwell"])
    >>> module.output_names
    ['click', 'dwell']
    >>> proba, dwell = module(torch.from_numpy(X[:3]).float())
    >>> bool(np.allclose(proba.numpy(), est.predict_proba(X[:3])[0], atol=1e-6))
    True
    >>> bool(np.allclose(dwell.numpy(), est.predict(X[:3])[:, 1]))
    True
    """
    _check_estimator(estimator)
    outputs = _outputs(estimator, task_names)
    network = copy.deepcopy(estimator.net_.module_).cpu().eval().requires_grad_(False)
    return _ServingModule(
        _input_encoder(estimator),
        network,
        [head for _, head, _ in outputs],
        [name for name, _, _ in outputs],
        estimator.n_features_in_,
    ).eval()


# ------------------------------------------------------------------- ONNX side
def _onnx_modules():
    """onnx and skl2onnx, or an ImportError that says how to install them."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (PyTorch's ONNX exporter needs it)
        import skl2onnx
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs onnx, onnxscript and skl2onnx ({exc}); install them with "
            "pip install 'sklearn-mmoe[onnx]'."
        ) from None
    return skl2onnx


def _check_opset(opset):
    if opset < MIN_OPSET:
        raise ValueError(
            f"opset={opset} is too old: the network's graph is written by PyTorch's ONNX "
            f"exporter, which needs opset {MIN_OPSET} or later (e.g. for Shape with "
            "start/end and ReduceMean with axes as an input)."
        )


def _network_graph(estimator, opset, task_names=None):
    """The serving module exported by PyTorch's ONNX exporter, an ``onnx.ModelProto``."""
    _check_opset(opset)
    module = to_torch(estimator, task_names=task_names)
    example = torch.zeros(2, estimator.n_features_in_)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[_INPUT],
            output_names=module.output_names,
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    versions = {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")}
    if versions != {opset}:  # the exporter falls back to another opset with a warning
        raise ValueError(
            f"PyTorch's ONNX exporter wrote opset {sorted(versions)} instead of opset={opset}; "
            f"choose an opset between {MIN_OPSET} and the latest your onnx and onnxruntime "
            "support."
        )
    return model


def _output_types(outputs):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return [
        FloatTensorType([None, head.n_classes if isinstance(head, _Probabilities) else 2])
        if kind == "proba"
        else DoubleTensorType([None])
        for _, head, kind in outputs
    ]


def _parse(scope, model, inputs, custom_parsers=None):
    """skl2onnx parser: one output variable per output of :func:`to_torch`."""
    operator = scope.declare_local_operator(_alias(type(model)), model)
    operator.inputs = inputs
    outputs = _outputs(model)
    for (name, _, _), kind in zip(outputs, _output_types(outputs)):
        variable = scope.declare_local_variable(name, kind)
        operator.outputs.append(variable)
    return operator.outputs


def _shape(operator):
    """skl2onnx shape calculator: the input must be a float matrix of n_features_in_ columns."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    estimator = operator.raw_operator
    if _categorical(estimator):
        _check_column_inputs(estimator, operator.inputs)
        return
    if len(operator.inputs) != 1:
        raise ValueError(
            f"{type(estimator).__name__} reads one feature matrix, got {len(operator.inputs)} "
            "inputs; put a ColumnTransformer before it."
        )
    kind = operator.inputs[0].type
    if not isinstance(kind, (FloatTensorType, DoubleTensorType)):
        raise TypeError(
            f"{type(estimator).__name__} reads a float or double matrix, got {kind}."
        )
    width = kind.shape[1] if len(kind.shape) == 2 else None
    if isinstance(width, int) and width != estimator.n_features_in_:
        raise ValueError(
            f"{type(estimator).__name__} was fitted on {estimator.n_features_in_} features "
            f"but its ONNX input has {width} columns."
        )


def _network_input(scope, operator, container):
    """The name of the float32 matrix the network reads, computed from the operator's input.

    A double input is cast to float32 (as ``predict`` does). A preprocessing
    step of the estimator (e.g. encoding categories) goes here, with its
    torch counterpart in :func:`_input_encoder`.
    """
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType

    if _categorical(operator.raw_operator):
        return _encode_columns(scope, operator, container)
    source = operator.inputs[0]
    if not isinstance(source.type, DoubleTensorType):
        return source.onnx_name
    name = scope.get_unique_variable_name(f"{source.onnx_name}_float")
    container.add_node(
        "Cast", [source.onnx_name], [name], to=TensorProto.FLOAT,
        name=scope.get_unique_operator_name("Cast"),
    )
    return name


# ------------------------------------------------- categorical columns in ONNX
def _categorical(estimator):
    """Whether the estimator encodes categorical columns of its input itself."""
    return len(getattr(estimator, "categorical_features_", ())) > 0


def _string_columns(estimator):
    """Indices of the categorical columns whose values are compared as strings."""
    return {
        int(j) for j, numbers in zip(estimator.categorical_features_, estimator._category_numbers)
        if not numbers
    }


def _column_names(estimator):
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return [f"x{j}" for j in range(estimator.n_features_in_)]
    return [str(n) for n in names]


def _column_types(estimator, X_sample):
    """``[(name, skl2onnx type)]``: one ``(batch, 1)`` input per column of ``X``.

    Numeric columns (and categorical columns that held numbers at fit) are
    float32 where ``X_sample``'s column is float32, int64 where it holds
    integers, double otherwise; categorical columns that held strings are
    string tensors.
    """
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    strings = _string_columns(estimator)
    types_ = []
    for j, name in enumerate(_column_names(estimator)):
        if j in strings:
            types_.append((name, StringTensorType([None, 1])))
            continue
        dtype = None
        if isinstance(X_sample, pd.DataFrame):
            dtype = X_sample.iloc[:, j].dtype
            if isinstance(dtype, pd.CategoricalDtype):
                dtype = dtype.categories.dtype
        if dtype is not None and dtype == np.float32:
            types_.append((name, FloatTensorType([None, 1])))
        elif dtype is not None and np.dtype(dtype).kind in "iub":
            types_.append((name, Int64TensorType([None, 1])))
        else:
            types_.append((name, DoubleTensorType([None, 1])))
    return types_


def _check_column_inputs(estimator, inputs):
    from skl2onnx.common.data_types import StringTensorType

    name = type(estimator).__name__
    if len(inputs) != estimator.n_features_in_:
        raise ValueError(
            f"{name} encodes its categorical columns itself: its ONNX graph reads one "
            f"input per column of X ({estimator.n_features_in_}), got {len(inputs)}."
        )
    strings = _string_columns(estimator)
    for j, variable in enumerate(inputs):
        is_string = isinstance(variable.type, StringTensorType)
        if is_string != (j in strings):
            expected = "strings" if j in strings else "numbers"
            raise TypeError(
                f"{name}: input {variable.onnx_name!r} (column {j}) must hold {expected}, "
                f"got {variable.type}."
            )


def _encode_columns(scope, operator, container):
    """ONNX nodes computing the estimator's float32 matrix from its raw columns.

    As :func:`sklearn_mmoe._inputs.encode_frame`: the numeric columns cast
    to float32, in their order, then per categorical column ``j`` its code:
    ``i + 1`` for the category ``categories_[j][i]``, 0 for anything else
    (unseen, rare or missing: NaN, or a string that is no category, e.g. "").
    """
    from onnx import TensorProto, helper
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    estimator = operator.raw_operator
    categorical = estimator.categorical_features_.tolist()

    def node(op_type, inputs, prefix, **attrs):
        output = scope.get_unique_variable_name(prefix)
        container.add_node(op_type, inputs, [output], name=scope.get_unique_operator_name(op_type),
                           **attrs)
        return output

    def cast(variable, to):
        return node("Cast", [variable.onnx_name], f"{variable.onnx_name}_cast", to=to)

    numeric = [
        v.onnx_name if isinstance(v.type, FloatTensorType) else cast(v, TensorProto.FLOAT)
        for j, v in enumerate(operator.inputs) if j not in categorical
    ]
    codes = []
    for j, categories in zip(categorical, estimator.categories_):
        variable = operator.inputs[j]
        values = np.arange(1, len(categories) + 1, dtype=np.int64)
        if not len(categories):  # every category was rare: code 0 throughout
            shape = node("Shape", [variable.onnx_name], "shape")
            code = node("ConstantOfShape", [shape], "code",
                        value=helper.make_tensor("zero", TensorProto.INT64, [1], [0]))
        elif isinstance(variable.type, StringTensorType):
            code = node("LabelEncoder", [variable.onnx_name], "code", op_domain="ai.onnx.ml",
                        op_version=2, keys_strings=[str(c).encode("utf-8") for c in categories],
                        values_int64s=values.tolist(), default_int64=0)
        else:
            code = _number_codes(scope, container, node, variable, j, categories)
        codes.append(node("Cast", [code], "code_float", to=TensorProto.FLOAT))
    return node("Concat", numeric + codes, "encoded", axis=1)


def _number_codes(scope, container, node, variable, j, categories):
    """Codes of a column whose categories are numbers, compared exactly as float64.

    ai.onnx.ml's LabelEncoder looks up float32 keys (double keys need
    ai.onnx.ml 4, which skl2onnx does not write yet): the looked-up
    category is compared back with the float64 input, so that a value that
    merely rounds to a category's float32 gets code 0, as in ``predict``.
    """
    from onnx import TensorProto

    keys = np.asarray(categories, dtype=np.float64)
    with np.errstate(over="ignore"):
        narrow = keys.astype(np.float32)
    if len(np.unique(narrow)) < len(keys) or not np.isfinite(narrow).all():
        raise ValueError(
            f"Categorical column {j} ({variable.onnx_name!r}) has numeric categories that "
            "are equal in float32 (or beyond its range), which ONNX's LabelEncoder cannot "
            "tell apart; pass that column as strings at fit."
        )
    source = variable.onnx_name
    if variable.type.to_onnx_type().tensor_type.elem_type != TensorProto.DOUBLE:
        source = node("Cast", [source], f"{source}_double", to=TensorProto.DOUBLE)
    looked_up = node(
        "LabelEncoder", [node("Cast", [source], f"{source}_float", to=TensorProto.FLOAT)],
        "code", op_domain="ai.onnx.ml", op_version=2, keys_floats=narrow.tolist(),
        values_int64s=list(range(1, len(keys) + 1)), default_int64=0,
    )
    table = scope.get_unique_variable_name("categories")
    container.add_initializer(table, TensorProto.DOUBLE, [len(keys) + 1], [np.nan, *keys.tolist()])
    zero = scope.get_unique_variable_name("zero")
    container.add_initializer(zero, TensorProto.INT64, [], [0])
    exact = node("Equal", [node("Gather", [table, looked_up], "category"), source], "exact")
    return node("Where", [exact, looked_up, zero], "code")


# ------------------------------------------------------------- quantization
def _check_quantize(quantize):
    if quantize is not None and (not isinstance(quantize, str) or quantize not in _QUANTIZE_OPTIONS):
        raise ValueError(
            f"quantize must be one of {list(_QUANTIZE_OPTIONS)}, got {quantize!r}."
        )
    return quantize


# Nodes that only rearrange their input: folding them on an initializer is exact.
_LAYOUT_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten"}


def _constant_weights(model):
    """``model`` with every layout node on initializers folded into an initializer.

    PyTorch's exporter writes a network's weights as initializers viewed
    through Reshape (e.g. the experts' ``(in, experts, units)`` weight as an
    ``(in, experts * units)`` matrix); the quantizer only quantizes a
    matrix product whose weight is an initializer itself.
    """
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept = []
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type in _LAYOUT_OPS and node.domain in ("", "ai.onnx") and inputs and all(
            name in values for name in inputs
        ):
            (result,) = ReferenceEvaluator(node).run(None, {n: values[n] for n in inputs})
            values[node.output[0]] = result
            graph.initializer.append(numpy_helper.from_array(np.asarray(result), node.output[0]))
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return model


def _as_matmuls(model):
    """Gemm nodes with a constant 2-D weight rewritten as MatMul (+ Add); the names of
    every MatMul node with a constant 2-D weight (the nodes to quantize)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    nodes, names = [], []
    for i, node in enumerate(graph.node):
        if not node.name:  # the quantizer selects nodes by name
            node.name = f"_{node.op_type}_{i}"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        if node.op_type == "MatMul":
            names.append(node.name)
            nodes.append(node)
            continue
        if node.op_type != "Gemm" or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or (
            attrs.get("beta", 1.0) != 1.0
        ):
            nodes.append(node)
            continue
        b = node.input[1]
        if attrs.get("transB", 0):
            b = f"{b}_transposed"
            if b not in weights:
                weights[b] = numpy_helper.from_array(
                    np.ascontiguousarray(numpy_helper.to_array(weight).T), b
                )
                graph.initializer.append(weights[b])
        name = f"{node.name}_MatMul"
        biased = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_product" if biased else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], b], [product], name=name))
        if biased:
            nodes.append(helper.make_node(
                "Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_Add"
            ))
        names.append(name)
    del graph.node[:]
    graph.node.extend(nodes)
    return model, names


@contextlib.contextmanager
def _without_preprocessing_advice():
    """Silence quantize_dynamic's advice to pre-process (its part that matters,
    constant weights, is :func:`_constant_weights`)."""
    def keep(record):
        return not record.getMessage().startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _quantized(model):
    """The network graph with ONNX Runtime's dynamic int8 quantization.

    Every matrix product with a constant 2-D weight matrix (``Linear``
    layers; the experts' and gates' first layers of MMoE) gets int8
    weights, one scale per output column (symmetric), and computes on
    uint8 activations quantized per call (``DynamicQuantizeLinear`` then
    ``MatMulInteger``, standard ONNX operators that ONNX Runtime fuses into
    one kernel). Batched products with 3-D weights (the towers of
    MMoE) and everything else stay float32.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ImportError(
            f"quantize needs onnxruntime ({exc}); install it with "
            "pip install 'sklearn-mmoe[onnx]'."
        ) from None
    import onnx

    model, names = _as_matmuls(_constant_weights(model))
    if not names:
        return model
    with tempfile.TemporaryDirectory() as tmp, _without_preprocessing_advice():
        path = os.path.join(tmp, "quantized.onnx")
        quantize_dynamic(
            model, path, per_channel=True, weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"], nodes_to_quantize=names,
        )
        return onnx.load(path)


def _convert(scope, operator, container):
    """skl2onnx converter: splice the exported network graph into the container."""
    from skl2onnx.helpers import add_onnx_graph

    options = container.get_options(operator.raw_operator, dict(quantize=None))
    quantize = _check_quantize(options["quantize"])
    graph = _network_graph(operator.raw_operator, container.target_opset)
    if quantize is not None:
        graph = _quantized(graph)
    network_input = types.SimpleNamespace(onnx_name=_network_input(scope, operator, container))
    spliced = types.SimpleNamespace(inputs=[network_input], outputs=operator.outputs)
    add_onnx_graph(scope, spliced, container, graph)


def _estimator_classes():
    """Every estimator class of sklearn_mmoe."""
    classes = [getattr(_estimators, name) for name in _estimators.__all__]
    return [*classes, MultiTaskEstimator, ESMMClassifier]


def _alias(cls):
    """The name of ``cls``'s converter in skl2onnx's registry."""
    return f"SklearnMMoE{cls.__name__}"


def _register():
    """Register the converter of every estimator with skl2onnx (if installed)."""
    try:
        from skl2onnx import update_registered_converter
    except ImportError:
        return
    for cls in _estimator_classes():
        update_registered_converter(
            cls, _alias(cls), _shape, _convert, parser=_parse,
            options={"quantize": list(_QUANTIZE_OPTIONS)},
        )


def to_onnx(estimator, X_sample=None, *, opset=None, task_names=None, quantize=None):
    """The fitted estimator's prediction as an ONNX graph.

    The graph has one input, ``"X"``: float32 features of shape
    ``(batch, n_features)`` with a dynamic batch axis (for a model with
    categorical columns: one input per column of ``X``, see below), and one output per
    entry of :func:`to_torch` (class probabilities per classification
    task, named after it; joint probabilities of a conditional task as
    ``"<name>_joint"``; regression predictions in the original units as
    float64). It needs only ONNX Runtime to run.

    A model with categorical columns (``categorical_features_`` not empty)
    gets one input per column of ``X``, named after it (``feature_names_in_``;
    ``x0``, ``x1``, ... without names), of shape ``(batch, 1)``: a string
    tensor for a categorical column that held strings at fit; for the other
    columns float32, int64 or double as the column's dtype in ``X_sample``
    (double without a sample). The graph maps each categorical value to its
    code as ``predict`` does: ``i + 1`` for the category ``categories_[j][i]``
    (numbers compared exactly, as float64), 0 for anything else, e.g. NaN or
    an empty string for a missing value. To include preprocessing,
    convert the whole Pipeline with ``skl2onnx.to_onnx(pipeline, X)``
    instead, after importing this module.

    Parameters
    ----------
    estimator : fitted sklearn_mmoe estimator
        Any estimator of :mod:`sklearn_mmoe`.
    X_sample : array-like of shape (n_samples, n_features), default=None
        Inputs like those the model will serve; checked against the fitted
        estimator (number of columns, column names); with categorical
        columns, its column dtypes choose the input types.
    opset : int, default=None
        ONNX opset of the graph, at least :data:`MIN_OPSET`; default: the
        latest that skl2onnx has tested with ONNX Runtime.
    task_names : list of str, default=None
        Output name of each task; default ``["task0", "task1", ...]``.
    quantize : {None, "dynamic_int8"}, default=None
        None keeps float32 weights: the outputs agree with ``predict_proba``
        and ``predict`` within 1e-5. ``"dynamic_int8"`` applies ONNX
        Runtime's dynamic quantization (``quantize_dynamic`` of
        ``onnxruntime.quantization``) to the network: every matrix product with a
        constant 2-D weight matrix (for MMoE, the first layer of the experts
        and of the gates) gets int8 weights with one scale per output
        column, and quantizes its input to uint8 at each call, with one
        scale for the whole batch (so a row's outputs depend slightly on
        the other rows of the call); the rest of the graph stays float32.
        The graph uses standard ONNX operators (``DynamicQuantizeLinear``,
        ``MatMulInteger``). For the default MMoE on Census-Income the file
        is 3.6x smaller and a call took 0.66 to 0.89x the float graph's
        time on a CPU with int8 dot-product instructions (AVX-512 VNNI),
        but the outputs are no longer exact: probabilities moved by up to
        0.016 on the test split, whose ROC AUC moved by less than 1e-5
        (see the performance notes). Check the quantized graph on held-out
        rows before serving it. With skl2onnx, pass
        ``options={MMoEClassifier: {"quantize": "dynamic_int8"}}`` (the
        estimator's class or ``id``).

    Returns
    -------
    model : onnx.ModelProto
        Save it with ``model.SerializeToString()`` or ``onnx.save``.

    Raises
    ------
    TypeError
        If ``estimator`` is not an estimator of :mod:`sklearn_mmoe`.
    sklearn.exceptions.NotFittedError
        If it is not fitted.
    ValueError
        If ``opset`` is older than :data:`MIN_OPSET`, numeric categories of
        a column are equal in float32 (the graph looks them up as float32),
        or ``quantize`` is not None or ``"dynamic_int8"``.
    ImportError
        If onnx, onnxscript or skl2onnx (or onnxruntime, to quantize) are
        not installed.

    See Also
    --------
    to_torch : The same computation as a PyTorch module.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from sklearn_mmoe import ESMMClassifier
    >>> from sklearn_mmoe.export import to_onnx
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(300, 4)).astype(np.float32)
    >>> click = X[:, 0] > 0
    >>> Y = np.column_stack([click, np.where(click, X[:, 1] > 0, np.nan)]).astype(float)
    >>> esmm = ESMMClassifier(max_epochs=5, random_state=0).fit(X, Y)
    >>> model = to_onnx(esmm, task_names=["click", "buy"])
    >>> [o.name for o in model.graph.output]
    ['click', 'buy', 'buy_joint']
    >>> session = ort.InferenceSession(model.SerializeToString())
    >>> p_ctr, p_cvr, p_ctcvr = session.run(None, {"X": X[:3]})
    >>> bool(np.allclose(p_ctcvr, esmm.predict_joint_proba(X[:3])[1], atol=1e-6))
    True
    >>> small = to_onnx(esmm, task_names=["click", "buy"], quantize="dynamic_int8")
    >>> session = ort.InferenceSession(small.SerializeToString())
    >>> p_ctr, p_cvr, p_ctcvr = session.run(None, {"X": X[:3]})
    >>> bool(np.allclose(p_ctcvr, esmm.predict_joint_proba(X[:3])[1], atol=0.02))
    True
    """
    _check_estimator(estimator)
    _check_quantize(quantize)
    skl2onnx = _onnx_modules()
    from skl2onnx.common.data_types import FloatTensorType

    if X_sample is not None:
        estimator._encode_X(X_sample, reset=False)
    if opset is None:
        opset = skl2onnx.get_latest_tested_opset_version()
    _check_opset(opset)
    outputs = _outputs(estimator, task_names)
    if _categorical(estimator):
        initial_types = _column_types(estimator, X_sample)
    else:
        initial_types = [(_INPUT, FloatTensorType([None, estimator.n_features_in_]))]
    clash = {name for name, _ in initial_types} & {name for name, _, _ in outputs}
    if clash:
        raise ValueError(
            f"The output names {sorted(clash)} are also input (column) names; pass other "
            "task_names."
        )
    model = skl2onnx.convert_sklearn(
        estimator,
        initial_types=initial_types,
        final_types=[(name, kind) for (name, _, _), kind in zip(outputs, _output_types(outputs))],
        target_opset=opset,
        options={id(estimator): {"quantize": quantize}},
    )
    return model


_register()
