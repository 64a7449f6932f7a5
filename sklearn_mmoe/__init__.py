"""scikit-learn estimators for multi-task learning on PyTorch and skorch.

The estimators take a multi-output ``y`` of shape ``(n_samples, n_tasks)``,
where a missing label (NaN) means the row is outside that task's sample space
and is left out of that task's loss. The PyTorch networks they train live in
:mod:`sklearn_mmoe.nn` and can be used without scikit-learn.

The estimators are imported on first use (PEP 562), so that
``import sklearn_mmoe.nn`` loads PyTorch and NumPy only, not scikit-learn
and skorch.
"""

import importlib

from ._version import __version__

# public name -> the private module that defines it
_LAZY = {
    **dict.fromkeys(
        [
            "CGCClassifier",
            "CGCRegressor",
            "CrossStitchClassifier",
            "CrossStitchRegressor",
            "L2ConstrainedClassifier",
            "L2ConstrainedRegressor",
            "MMoEClassifier",
            "MMoERegressor",
            "OMoEClassifier",
            "OMoERegressor",
            "PLEClassifier",
            "PLERegressor",
            "SharedBottomClassifier",
            "SharedBottomRegressor",
            "SingleTaskClassifier",
            "SingleTaskRegressor",
            "TensorFactorizationClassifier",
            "TensorFactorizationRegressor",
        ],
        "._estimators",
    ),
    "ESMMClassifier": "._multitask",
    "MultiTaskEstimator": "._multitask",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted({*globals(), *__all__})
