"""Data sets for multi-task learning.

- :func:`make_multitask_regression`: the synthetic two-task regression
  generator of the MMoE paper, with a controllable task correlation.
- :func:`fetch_census_income`: the UCI Census-Income (KDD) data set with the
  MMoE paper's task groups and train/validation/test protocol.
- :func:`iter_parquet`: a Parquet data set larger than memory, streamed in
  ``(X, Y)`` chunks for ``partial_fit`` (sharded by rank under
  ``torch.distributed``).
"""

# SPDX-License-Identifier: BSD-3-Clause

from ._census import fetch_census_income
from ._parquet import iter_parquet
from ._synthetic import make_multitask_regression

__all__ = ["fetch_census_income", "iter_parquet", "make_multitask_regression"]
