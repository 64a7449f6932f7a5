"""Label helpers shared by the estimators and the metrics."""

import numbers

import numpy as np
import pandas as pd


def as_labels(values):
    """Give an object array of labels a native dtype where possible.

    scikit-learn's ``type_of_target`` calls an object array of numbers
    "unknown", and such arrays are common: a DataFrame target with an int and
    a string column, or a nullable column with ``pd.NA``, becomes an object
    array. Numbers become a numeric array and strings a string array; mixed
    labels stay object.
    """
    values = np.asarray(values)
    if values.dtype == object and values.size:
        if all(isinstance(v, str) for v in values):
            return values.astype(str)
        if all(isinstance(v, (numbers.Number, np.bool_)) for v in values):
            return np.asarray(values.tolist())
    return values


def nullable_as_object(y):
    """A pandas ``y`` with nullable boolean or integer columns, as an object array.

    scikit-learn's ``check_array`` turns pandas' nullable ``boolean`` and
    ``Int64`` columns into float64 with NaN for ``pd.NA``, which loses the
    label type (``True`` becomes ``1.0``, ``5`` becomes ``5.0``). As an
    object array the labels keep their Python type and ``pd.NA`` stays a
    missing label, so that ``classes_`` are what numpy bool and int columns
    give. Anything else is returned as is.
    """
    if not isinstance(y, (pd.Series, pd.DataFrame)):
        return y
    dtypes = [y.dtype] if isinstance(y, pd.Series) else list(y.dtypes)
    if any(
        isinstance(d, pd.api.extensions.ExtensionDtype)
        and (pd.api.types.is_bool_dtype(d) or pd.api.types.is_integer_dtype(d))
        for d in dtypes
    ):
        return y.astype(object).to_numpy()
    return y


def observed(values):
    """Boolean mask of the entries of ``values`` that hold a label.

    A missing label is NaN, None or ``pd.NA`` (whatever the dtype).
    """
    return ~np.asarray(pd.isna(values), dtype=bool)
