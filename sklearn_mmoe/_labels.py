"""Label helpers shared by the estimators and the metrics."""

import numbers

import numpy as np


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
