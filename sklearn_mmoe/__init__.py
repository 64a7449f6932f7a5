"""scikit-learn estimators for multi-task learning on PyTorch and skorch.

The estimators take a multi-output ``y`` of shape ``(n_samples, n_tasks)``,
where a missing label (NaN) means the row is outside that task's sample space
and is left out of that task's loss. The PyTorch networks they train live in
:mod:`sklearn_mmoe.nn` and can be used without scikit-learn.
"""

from ._estimators import (
    CGCClassifier,
    CGCRegressor,
    CrossStitchClassifier,
    CrossStitchRegressor,
    L2ConstrainedClassifier,
    L2ConstrainedRegressor,
    MMoEClassifier,
    MMoERegressor,
    OMoEClassifier,
    OMoERegressor,
    PLEClassifier,
    PLERegressor,
    SharedBottomClassifier,
    SharedBottomRegressor,
    SingleTaskClassifier,
    SingleTaskRegressor,
    TensorFactorizationClassifier,
    TensorFactorizationRegressor,
)
from ._multitask import ESMMClassifier, MultiTaskEstimator
from ._version import __version__

__all__ = [
    "CGCClassifier",
    "CGCRegressor",
    "CrossStitchClassifier",
    "CrossStitchRegressor",
    "L2ConstrainedClassifier",
    "L2ConstrainedRegressor",
    "SingleTaskClassifier",
    "SingleTaskRegressor",
    "TensorFactorizationClassifier",
    "TensorFactorizationRegressor",
    "ESMMClassifier",
    "MultiTaskEstimator",
    "PLEClassifier",
    "PLERegressor",
    "MMoEClassifier",
    "MMoERegressor",
    "OMoEClassifier",
    "OMoERegressor",
    "SharedBottomClassifier",
    "SharedBottomRegressor",
    "__version__",
]
