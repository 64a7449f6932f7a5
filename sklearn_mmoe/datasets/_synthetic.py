"""Synthetic multi-task regression data with controllable task correlation.

The generator follows the synthetic data experiment of the MMoE paper:

    Jiaqi Ma, Zhe Zhao, Xinyang Yi, Jilin Chen, Lichan Hong and Ed H. Chi.
    "Modeling Task Relationships in Multi-task Learning with Multi-gate
    Mixture-of-Experts." KDD 2018, section 5.1.
"""

# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["make_multitask_regression"]


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 2, None, closed="left")],
        "correlation": [Interval(Real, -1, 1, closed="both")],
        "n_sin": [Interval(Integral, 0, None, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_multitask_regression(
    n_samples=10000,
    n_features=100,
    *,
    correlation=0.5,
    n_sin=10,
    scale=1.0,
    noise=0.1,
    random_state=None,
):
    r"""Generate two regression tasks with a controlled task correlation.

    This is the synthetic data generator of the MMoE paper (Ma et al., KDD
    2018, section 5.1). Two tasks share the same inputs and the same
    non-linear link; they differ only through their weight vectors, whose
    cosine similarity (the paper's "task correlation") is set exactly by
    `correlation`.

    The generative process is:

    1. Draw two orthogonal unit vectors :math:`u_1, u_2 \in \mathbb{R}^d`
       (Gram-Schmidt on two standard Gaussian draws).
    2. Set :math:`w_1 = c\,u_1` and
       :math:`w_2 = c\,(p\,u_1 + \sqrt{1 - p^2}\,u_2)`, where :math:`c` is
       `scale` and :math:`p` is `correlation`, so that
       :math:`\cos(w_1, w_2) = p`.
    3. Draw the inputs :math:`x \sim \mathcal{N}(0, I_d)`.
    4. For each task :math:`t \in \{1, 2\}`,

       .. math::

           y_t = w_t^\top x + \sum_{i=1}^{m} \sin(\alpha_i\, w_t^\top x
           + \beta_i) + \epsilon_t,

       where :math:`m` is `n_sin`, :math:`\alpha_i, \beta_i \sim
       \mathcal{N}(0, 1)` are drawn once and shared by both tasks, and
       :math:`\epsilon_t \sim \mathcal{N}(0, \sigma^2)` with :math:`\sigma`
       equal to `noise`.

    The paper uses :math:`d = 100`, :math:`m = 10`, :math:`c = 1` and a noise
    variance of 0.01 (i.e. ``noise=0.1``), which are the defaults here.

    The "task correlation" :math:`p` is the cosine similarity of the two
    weight vectors, not the correlation of the labels. The Pearson
    correlation of the two label columns increases with :math:`p` (and equals
    1 for ``correlation=1, noise=0``), but because of the sine terms and the
    noise it is in general not equal to :math:`p`.

    All random draws (directions, sine parameters, inputs and noise) come from
    `random_state`; the inputs do not depend on `correlation`, so two calls
    with the same seed and different correlations return the same `X`.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of samples.

    n_features : int, default=100
        Input dimension :math:`d`. Must be at least 2, since two orthogonal
        directions are needed.

    correlation : float, default=0.5
        Task correlation :math:`p \in [-1, 1]`: the cosine similarity of the
        two tasks' weight vectors.

    n_sin : int, default=10
        Number :math:`m` of sine terms added to each label. With ``n_sin=0``
        and ``noise=0`` the labels are linear in the inputs.

    scale : float, default=1.0
        Norm :math:`c > 0` of both weight vectors.

    noise : float, default=0.1
        Standard deviation :math:`\sigma \ge 0` of the Gaussian noise added to
        each label.

    random_state : int, RandomState instance or None, default=None
        Determines all random number generation. Pass an int for reproducible
        output across multiple function calls.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype=float64
        The input samples.

    Y : ndarray of shape (n_samples, 2), dtype=float64
        The labels of the two tasks, one column per task.

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling
           Task Relationships in Multi-task Learning with Multi-gate
           Mixture-of-Experts", Proceedings of the 24th ACM SIGKDD
           International Conference on Knowledge Discovery & Data Mining
           (KDD), 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mmoe.datasets import make_multitask_regression
    >>> X, Y = make_multitask_regression(
    ...     n_samples=1000, n_features=10, correlation=0.9, random_state=0
    ... )
    >>> X.shape, Y.shape
    ((1000, 10), (1000, 2))
    >>> X_same, Y_same = make_multitask_regression(
    ...     n_samples=1000, n_features=10, correlation=0.9, random_state=0
    ... )
    >>> bool(np.array_equal(Y, Y_same))
    True
    """
    generator = check_random_state(random_state)
    n_samples = int(n_samples)
    n_features = int(n_features)
    n_sin = int(n_sin)
    p = float(correlation)
    c = float(scale)

    # Two orthonormal directions by Gram-Schmidt on Gaussian draws. The second
    # draw is re-done in the (probability zero) case where it is numerically
    # parallel to the first one.
    u1 = generator.standard_normal(n_features)
    u1 /= np.linalg.norm(u1)
    while True:
        u2 = generator.standard_normal(n_features)
        u2 -= (u2 @ u1) * u1
        norm = np.linalg.norm(u2)
        if norm > 1e-8:
            break
    u2 /= norm

    w1 = c * u1
    w2 = c * (p * u1 + np.sqrt(max(1.0 - p * p, 0.0)) * u2)

    # Sine parameters shared by both tasks.
    alphas = generator.standard_normal(n_sin)
    betas = generator.standard_normal(n_sin)

    X = generator.standard_normal((n_samples, n_features))
    eps = generator.standard_normal((n_samples, 2))

    # One matrix-vector product per task, so that identical weight vectors
    # (correlation=1) give bit-identical projections.
    Z = np.column_stack([X @ w1, X @ w2])
    Y = Z.copy()
    for alpha, beta in zip(alphas, betas):
        Y += np.sin(alpha * Z + beta)
    Y += noise * eps

    return X, Y
