"""Data sets for multi-task learning.

- :func:`make_multitask_regression`: the synthetic two-task regression
  generator of the MMoE paper, with a controllable task correlation.
- :func:`fetch_census_income`: the UCI Census-Income (KDD) data set with the
  MMoE paper's task groups and train/validation/test protocol.
"""

# SPDX-License-Identifier: BSD-3-Clause

from ._census import fetch_census_income
from ._synthetic import make_multitask_regression

__all__ = ["fetch_census_income", "make_multitask_regression"]
