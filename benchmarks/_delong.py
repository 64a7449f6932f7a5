"""DeLong's test for two ROC AUCs measured on the same rows.

How far apart can two models' test AUCs be by the luck of the test sample
alone? When both score the same rows, their AUCs are correlated, and the
standard error of their difference is much smaller than either AUC's own.
DeLong, DeLong and Clarke-Pearson (Biometrics, 1988) estimate it from each
row's placement among the other class; this is the O(n log n) form of Sun and
Xu (IEEE Signal Processing Letters, 2014): midranks instead of the pairwise
comparison of every positive with every negative.

Used by ``bench_defaults.py`` to say whether a gap to gradient boosting of a
few ten-thousandths is larger than the test split can resolve.
"""

import numpy as np
from scipy.stats import norm, rankdata


def _placements(y_true, scores):
    """AUCs and DeLong's structural components of each model (rows of ``scores``).

    ``v10[k, i]``: the fraction of negatives that positive ``i`` outranks under
    model ``k`` (ties count a half); ``v01[k, j]``: the fraction of positives
    that outrank negative ``j``.
    """
    positive = np.asarray(y_true) == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError("y_true needs both classes to compare AUCs.")
    pos, neg = scores[:, positive], scores[:, ~positive]
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # midranks among all rows
    within_pos = rankdata(pos, axis=1)
    within_neg = rankdata(neg, axis=1)
    v10 = (ranks[:, :m] - within_pos) / n
    v01 = 1.0 - (ranks[:, m:] - within_neg) / m
    auc = v10.mean(axis=1)
    return auc, v10, v01


def paired_auc_difference(y_true, score_a, score_b):
    """AUC(a) - AUC(b) on the same rows, its standard error and two-sided p-value.

    Returns ``(difference, standard_error, p_value)``; a standard error of 0
    (identical rankings) gives a p-value of 1.
    """
    scores = np.vstack([np.asarray(score_a, dtype=np.float64).ravel(),
                        np.asarray(score_b, dtype=np.float64).ravel()])
    auc, v10, v01 = _placements(y_true, scores)
    covariance = np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]
    contrast = np.array([1.0, -1.0])
    variance = max(float(contrast @ covariance @ contrast), 0.0)
    difference = float(auc[0] - auc[1])
    se = variance ** 0.5
    p_value = 1.0 if se == 0 else float(2 * norm.sf(abs(difference) / se))
    return difference, se, p_value
