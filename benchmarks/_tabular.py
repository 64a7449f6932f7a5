"""Real tabular data sets for the defaults benchmarks, as a user would load them.

* Census-Income (KDD), task groups 1 and 2, the paper's split (train;
  validation and test halves of ``census-income.test``), through
  :func:`sklearn_mmoe.datasets.fetch_census_income` (raw DataFrame: pandas
  ``category`` columns and numbers).
* UCI Adult, the original train and test files: income > 50K and never
  married as two tasks. ``marital-status`` (the second label's source) is
  dropped from the inputs; ``relationship`` stays, as in the issue's runs.

Each loader returns ``{"train": (X, Y), "validation": (X, Y) or None,
"test": (X, Y)}`` with X a DataFrame and Y an int64 array, plus the task
names. ``one_hot(train_X)`` is the Pipeline preprocessing users write today.
"""

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import make_column_selector, make_column_transformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SHARED = Path(os.environ.get("SKLEARN_MMOE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
]


def _read_adult(path):
    with gzip.open(path, "rt") as f:
        frame = pd.read_csv(
            f, header=None, names=ADULT_COLUMNS, skipinitialspace=True,
            comment="|", na_values="?",
        )
    return frame.dropna(how="all")


def load_adult(folder=None):
    """Adult: X (DataFrame with ``category`` columns), Y (income >50K, never married)."""
    folder = Path(folder or SHARED / "adult")
    parts = {}
    for subset, name in (("train", "adult.data.gz"), ("test", "adult.test.gz")):
        frame = _read_adult(folder / name)
        income = frame["income"].str.rstrip(".").eq(">50K")
        never = frame["marital-status"].eq("Never-married")
        X = frame.drop(columns=["income", "marital-status"])
        for column in X.columns:
            if not pd.api.types.is_numeric_dtype(X[column]):
                X[column] = X[column].astype("category")
        parts[subset] = (X.reset_index(drop=True), np.column_stack([income, never]).astype(np.int64))
    parts["validation"] = None
    return parts, ["income_50k", "never_married"]


def load_census(task_group=1, data_home=None):
    """Census-Income: X (DataFrame with ``category`` columns), Y, per split."""
    from sklearn_mmoe.datasets import fetch_census_income

    parts, names = {}, None
    for subset in ("train", "validation", "test"):
        bunch = fetch_census_income(data_home=data_home, task_group=task_group, subset=subset,
                                    download_if_missing=False)
        parts[subset] = (bunch.data, bunch.target.to_numpy(dtype=np.int64))
        names = list(bunch.target_names)
    return parts, names


def one_hot():
    """The Pipeline preprocessing users write today: one-hot + standard scaling."""
    return make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         make_column_selector(dtype_include=["category", "object"])),
        (StandardScaler(), make_column_selector(dtype_include="number")),
    )


def load(name, data_home=None):
    """``"adult"``, ``"census1"`` or ``"census2"``."""
    if name == "adult":
        return load_adult()
    return load_census(int(name[-1]), data_home=data_home)
