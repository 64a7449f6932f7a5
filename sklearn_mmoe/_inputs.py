"""Inputs as users have them: categorical columns and raw numeric columns.

At ``fit`` the estimator resolves which columns are categorical
(``categorical_features``), learns each one's vocabulary with scikit-learn's
:class:`~sklearn.preprocessing.OrdinalEncoder` (rare categories by
``min_frequency`` / ``max_categories``), and, with the piecewise-linear
numeric encoding, the quantile bin edges of each numeric column. Every later
call turns ``X`` into one float matrix that the network's
:class:`~sklearn_mmoe.nn.TabularEmbedding` reads: the numeric columns first,
then one integer code per categorical column, where code 0 stands for a
missing, rare or unseen category. Without categorical columns ``X`` is
validated as a plain numeric (dense or sparse) matrix, as before.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import OrdinalEncoder
from sklearn.utils.validation import validate_data

#: Largest vocabulary a categorical column may have (index 0 included).
MAX_CATEGORIES = 100_000
#: Rows used to compute the quantile bin edges (every k-th row beyond this).
BINNING_ROWS = 200_000
#: Quantiles of each numeric column kept for the normal quantile encoding.
N_QUANTILES = 128


def auto_embedding_dim(n_categories):
    """Embedding width for a table of ``n_categories`` rows (index 0 included).

    fastai's rule ``round(1.6 * n ** 0.56)``, capped at 32: 2 rows -> 2,
    10 -> 6, 50 -> 14, 1,000 and more -> 32.
    """
    return int(min(32, max(1, round(1.6 * n_categories ** 0.56))))


def _is_categorical_dtype(dtype):
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype))


def _column_names(X):
    return list(X.columns) if isinstance(X, pd.DataFrame) else None


def resolve_categorical(categorical_features, X):
    """Indices of the categorical columns of ``X`` (an int array, maybe empty)."""
    if categorical_features is None or sp.issparse(X):
        if sp.issparse(X) and categorical_features not in (None, "from_dtype"):
            raise ValueError(
                "categorical_features: sparse X cannot hold categorical columns; "
                "pass a dense array or a DataFrame, or categorical_features=None."
            )
        return np.zeros(0, dtype=np.intp)
    names = _column_names(X)
    n_features = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else None
    if isinstance(categorical_features, str):  # "from_dtype" (checked by the constraints)
        if names is None:
            return np.zeros(0, dtype=np.intp)
        return np.flatnonzero([_is_categorical_dtype(X[c].dtype) for c in names]).astype(np.intp)
    values = np.asarray(categorical_features)
    if values.ndim != 1:
        raise ValueError(f"categorical_features must be 1-D, got {categorical_features!r}.")
    if n_features is None:
        raise ValueError("categorical_features: X must be 2-D.")
    if values.dtype == bool:
        if values.shape[0] != n_features:
            raise ValueError(
                f"categorical_features: a boolean mask needs one entry per column of X "
                f"({n_features}), got {values.shape[0]}."
            )
        return np.flatnonzero(values).astype(np.intp)
    if values.size and values.dtype.kind in "OUS":
        if names is None:
            raise ValueError("categorical_features: column names need X to be a DataFrame.")
        missing = [v for v in list(categorical_features) if v not in names]
        if missing:
            raise ValueError(f"categorical_features: columns {missing} are not in X.")
        return np.array(sorted({names.index(v) for v in values}), dtype=np.intp)
    if values.size and values.dtype.kind not in "iu":
        raise TypeError(
            "categorical_features must be 'from_dtype', None, column names, integer "
            f"indices or a boolean mask, got {categorical_features!r}."
        )
    bad = [int(v) for v in values if not -n_features <= v < n_features]
    if bad:
        raise ValueError(f"categorical_features: indices {bad} are out of range for {n_features} columns.")
    return np.unique(values % n_features).astype(np.intp)


def _column(X, j):
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else pd.Series(np.asarray(X, dtype=object)[:, j])


def _name(X, j):
    names = _column_names(X)
    return repr(names[j]) if names is not None else str(j)


def _holds_numbers(series):
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.api.types.is_numeric_dtype(dtype.categories.dtype)
    if pd.api.types.is_object_dtype(dtype):
        return bool(series.dropna().map(lambda v: isinstance(v, (int, float, np.number))).all())
    return pd.api.types.is_numeric_dtype(dtype)


def _category_values(series, holds_numbers, label):
    """A column's values for the OrdinalEncoder: floats or strings, missing as NaN."""
    missing = np.asarray(pd.isna(series), dtype=bool)
    if holds_numbers:
        try:
            return np.asarray(series.astype(object).where(~missing, np.nan), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"X: categorical column {label} held numbers at fit but holds other "
                "values now; pass it with the dtype it had at fit."
            ) from None
    values = np.asarray(series, dtype=object).copy()
    values[~missing] = values[~missing].astype(str)
    values[missing] = np.nan
    return values


def _numeric_block(X, columns):
    """The numeric columns of a DataFrame or array as float64, NaN named by column."""
    blocks = []
    for j in columns:
        series = _column(X, j)
        try:
            values = np.asarray(series, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"X: column {_name(X, j)} is numeric for this model but holds non-numeric "
                "values now (e.g. strings or categories). A column that is categorical "
                "must be so at fit: see categorical_features."
            ) from None
        blocks.append(values)
    block = np.column_stack(blocks) if blocks else np.zeros((len(X), 0))
    bad = ~np.isfinite(block).all(axis=0)
    if bad.any():
        names = [_name(X, j) for j in np.asarray(columns)[bad]]
        raise ValueError(
            f"X: numeric columns {', '.join(names)} contain NaN or infinity. Impute them "
            "(e.g. sklearn.impute.SimpleImputer, which can add missing indicators) or mark "
            "them categorical (categorical_features), where a missing value gets the "
            "'unknown' embedding."
        )
    return block


def fit_categories(estimator, X, categorical):
    """Fit the vocabularies of the categorical columns; set the fitted attributes."""
    columns = [_column(X, j) for j in categorical]
    kinds = [_holds_numbers(c) for c in columns]
    if (_all_category_dtype(columns) and estimator.min_frequency is None
            and estimator.max_categories is None):
        # no frequency limit: the vocabulary is the values present, each once
        values, _ = _category_table(X, categorical, columns, kinds)
    else:
        values = _value_matrix(X, categorical, columns, kinds) if columns else None
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1,
        min_frequency=estimator.min_frequency, max_categories=estimator.max_categories,
        dtype=np.float64,
    )
    # min_frequency / max_categories count one row for the unknown index (0),
    # which OrdinalEncoder calls the infrequent category.
    with np.errstate(invalid="ignore"):
        encoder.fit(values)
    infrequent = getattr(encoder, "infrequent_categories_", [None] * len(columns))
    known = []
    for j, (cats, rare) in enumerate(zip(encoder.categories_, infrequent)):
        rare = set() if rare is None else set(rare)
        frequent = np.array([c for c in cats if not pd.isna(c) and c not in rare], dtype=object)
        if len(frequent) + 1 > MAX_CATEGORIES:
            raise ValueError(
                f"X: categorical column {_name(X, categorical[j])} has {len(frequent)} distinct "
                f"values, more than {MAX_CATEGORIES - 1}: an embedding table that large is "
                "mostly untrained rows. Group rare values with max_categories= or "
                "min_frequency=, or hash or drop the column (an ID is not a feature)."
            )
        known.append(frequent)
    estimator._category_encoder = encoder
    estimator._category_numbers = kinds
    estimator.categories_ = known
    estimator.n_categories_ = [len(k) + 1 for k in known]
    estimator.embedding_dims_ = _embedding_dims(estimator, X, categorical, estimator.n_categories_)


def _embedding_dims(estimator, X, categorical, n_categories):
    spec = estimator.embedding_dim
    if isinstance(spec, dict):
        names = _column_names(X)
        keys = set(spec)
        dims = []
        for j, n in zip(categorical, n_categories):
            key = names[j] if names is not None and names[j] in spec else int(j)
            keys.discard(key)
            value = spec.get(key, "auto")
            dims.append(_one_dim(value, n, f"embedding_dim[{key!r}]"))
        if keys:
            raise ValueError(
                f"embedding_dim names {sorted(map(str, keys))}, which are not categorical "
                "columns of X."
            )
        return dims
    return [_one_dim(spec, n, "embedding_dim") for n in n_categories]


def _one_dim(value, n_categories, label):
    if isinstance(value, str) and value == "auto":
        return auto_embedding_dim(n_categories)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(f"{label} must be 'auto' or a positive int, got {value!r}.")


def _transform_categories(estimator, values):
    """The fitted encoder on an object matrix of category values -> codes (0 = unknown)."""
    codes = estimator._category_encoder.transform(values)
    infrequent = getattr(estimator._category_encoder, "infrequent_categories_", None)
    for j, n in enumerate(estimator.n_categories_):
        column = codes[:, j]
        if infrequent is not None and infrequent[j] is not None:
            column[column == n - 1] = -1  # OrdinalEncoder's infrequent code
        column += 1
    return codes


def _value_matrix(X, categorical, columns, kinds):
    """The categorical columns' values row by row, as one object matrix."""
    return np.column_stack(
        [_category_values(c, k, _name(X, j)) for c, k, j in zip(columns, kinds, categorical)]
    ).astype(object)


def _all_category_dtype(columns):
    return bool(columns) and all(isinstance(c.dtype, pd.CategoricalDtype) for c in columns)


def _category_table(X, categorical, columns, kinds):
    """pandas ``category`` columns as a small table of their values, and the rows' codes.

    Row ``i`` of column ``j`` is category ``i`` of that column if a row uses
    it, else missing (NaN), and the last row is missing: a row's value is
    ``table[code, j]`` with its column's integer code (-1, missing, reads the
    last row). A value's encoding depends on the value only, so encoding the
    table and looking the codes up gives every row's code at a fraction of
    the cost of encoding them one by one (Census-Income's 31 columns: about
    2 s for 200,000 rows).
    """
    row_codes = [np.asarray(c.cat.codes, dtype=np.intp) for c in columns]
    size = max(len(c.cat.categories) for c in columns) + 1
    table = np.full((size, len(columns)), np.nan, dtype=object)
    for j, (column, codes, kind, index) in enumerate(zip(columns, row_codes, kinds, categorical)):
        used = np.unique(codes[codes >= 0])
        if len(used):
            table[used, j] = _category_values(
                pd.Series(column.cat.categories[used]), kind, _name(X, index)
            )
    return table, row_codes


def _encode_through_categories(estimator, X, categorical, columns):
    """Codes of pandas ``category`` columns, each distinct value encoded once."""
    table, row_codes = _category_table(X, categorical, columns, estimator._category_numbers)
    table_codes = _transform_categories(estimator, table)
    return np.column_stack([table_codes[codes, j] for j, codes in enumerate(row_codes)])


def encode_categories(estimator, X, categorical):
    """Codes of the categorical columns: 0 unknown/missing/rare, 1.. known categories."""
    if len(categorical) == 0:
        return np.zeros((len(X), 0))
    columns = [_column(X, j) for j in categorical]
    # the table of categories pays off when it is shorter than the rows (not
    # for a single row: 1.2 ms of a 7.7 ms predict_proba on Adult's frame)
    if _all_category_dtype(columns) and len(X) > max(len(c.cat.categories) for c in columns):
        return _encode_through_categories(estimator, X, categorical, columns)
    values = _value_matrix(X, categorical, columns, estimator._category_numbers)
    return _transform_categories(estimator, values)


def encode_frame(estimator, X, reset):
    """A DataFrame or array with categorical columns -> float32 [numeric | codes]."""
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    if not hasattr(X, "iloc"):
        X = np.asarray(X, dtype=object)
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-D array, got shape {X.shape}.")
    categorical = estimator.categorical_features_
    numeric = np.setdiff1d(np.arange(X.shape[1]), categorical)
    if reset:
        fit_categories(estimator, X, categorical)
    block = _numeric_block(X, numeric)
    codes = encode_categories(estimator, X, categorical)
    return np.hstack([block, codes]).astype(np.float32)


def _column_quantiles(X, probabilities, sample_weight):
    """Per column of a float matrix (dense or CSR): its weighted quantiles at
    ``probabilities``, or, for a dense column holding only 0 and 1 (found
    without a sort), the sorted values it holds as ``(values, None)``.

    Weighted quantiles use ``inverted_cdf`` (values of the data), so that a
    weight of 2 is the same as a repeated row; up to BINNING_ROWS rows are
    read (every k-th row beyond).
    """
    n = X.shape[0]
    rows = slice(None) if n <= BINNING_ROWS else slice(None, None, -(-n // BINNING_ROWS))
    sample = X[rows]
    weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[rows]
    if sp.issparse(sample):
        sample = sample.tocsc()
        column = lambda j: sample[:, j].toarray().ravel()  # noqa: E731
        indicator = np.zeros(sample.shape[1], dtype=bool)
    else:
        sample = np.asarray(sample)
        column = lambda j: sample[:, j]  # noqa: E731
        zeros, ones = (sample == 0).any(axis=0), (sample == 1).any(axis=0)
        indicator = ((sample == 0) | (sample == 1)).all(axis=0)
    out = []
    for j in range(sample.shape[1]):
        if indicator[j]:
            out.append((np.array([0.0, 1.0])[[zeros[j], ones[j]]], None))
            continue
        values, w = np.asarray(column(j), dtype=np.float64), weight
        if w is not None:
            values, w = values[w > 0], w[w > 0]
        out.append((np.quantile(values, probabilities, weights=w, method="inverted_cdf"), probabilities))
    return out


def piecewise_linear_edges(X, n_bins, sample_weight=None):
    """Quantile bin edges of each column (distinct values at ``n_bins + 1`` quantiles)."""
    probabilities = np.linspace(0, 1, n_bins + 1)
    return [np.unique(values) for values, _ in _column_quantiles(X, probabilities, sample_weight)]


def normal_quantiles(X, n_quantiles=N_QUANTILES, sample_weight=None):
    """Per column, ``(values, probabilities)`` of its empirical CDF, or None.

    None for 0/1 columns and constant ones, which pass through. Tied
    quantiles (a value held by many rows, e.g. zero capital gains) become one
    point at the mean of their probabilities, as QuantileTransformer does.
    """
    # as many quantiles whatever the number of rows: a weight of 2 and a repeated
    # row give the same ones (ties are merged below)
    probabilities = np.linspace(0, 1, n_quantiles)
    out = []
    for values, probs in _column_quantiles(X, probabilities, sample_weight):
        if probs is None:
            out.append(None)
            continue
        unique, inverse = np.unique(values, return_inverse=True)
        if unique.size < 2:
            out.append(None)
            continue
        mean_probs = np.bincount(inverse, weights=probs) / np.bincount(inverse)
        out.append((unique, mean_probs))
    return out
