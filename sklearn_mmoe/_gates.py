"""``gate_weights(X)``: the public view of a fitted mixture's gates.

The estimators whose network has gates (OMoE, MMoE, CGC, PLE, and
``MultiTaskEstimator`` on one of them) get the method from
:class:`_GateWeightsMixin`; on ``MultiTaskEstimator`` with another
architecture it is absent (``hasattr(model, "gate_weights")`` is False), as
scikit-learn's ``available_if`` hides ``predict_proba`` from estimators
without probabilities.
"""

import numpy as np
import torch
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._data import inference_chunks


def _has_gates(estimator):
    """True when the estimator's network has gates, else an AttributeError saying so."""
    if not hasattr(estimator._module_class, "gate_weights"):
        raise AttributeError(
            f"gate_weights: architecture={estimator._architecture_name()!r} has no gates "
            "(the mixtures of experts omoe, mmoe, cgc and ple have)."
        )
    return True


class _GateWeightsMixin:
    """``gate_weights``, for the estimators whose network has gates."""

    @available_if(_has_gates)
    def gate_weights(self, X):
        """Weight that each task's gate gives each expert, for each row of ``X``.

        A gate is a softmax over experts: row ``i`` of a task's array says
        how that task mixed the experts for sample ``i`` (each row sums to
        1; with ``top_k`` all but ``top_k`` weights are exactly 0). Averaged
        over rows, they show which experts each task uses (the MMoE paper's
        Fig. 6).

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Inputs, validated and encoded as for ``predict``.

        Returns
        -------
        gate_weights : list of ndarray, or list of list of ndarray
            One float64 array per task, of shape ``(n_samples, n_experts)``
            (a list of one array when ``y`` was 1-D at fit).

            - MMoE: each task's gate over the ``n_experts`` shared experts.
            - OMoE: the single gate, the same array for every task.
            - CGC: task ``t``'s gate over its ``n_task_experts`` own experts
              (first columns) then the ``n_shared_experts`` shared experts.
            - PLE (``PLEClassifier``, ``PLERegressor`` and
              ``MultiTaskEstimator(architecture="ple")``): a list over the
              ``n_levels`` levels, each holding the per-task arrays of that
              level, laid out as for CGC.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_mmoe import MMoEClassifier
        >>> rng = np.random.RandomState(0)
        >>> X = rng.randn(100, 4)
        >>> Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
        >>> model = MMoEClassifier(n_experts=3, max_epochs=2, random_state=0).fit(X, Y)
        >>> gates = model.gate_weights(X[:5])
        >>> len(gates), gates[0].shape
        (2, (5, 3))
        >>> np.allclose(gates[1].sum(axis=1), 1.0)
        True
        """
        check_is_fitted(self)
        X = self._encode_X(X, reset=False, chunked=True)
        module = self.net_.module_
        chunks = []
        with torch.inference_mode():
            for chunk, rows in inference_chunks(X, self.net_.device):
                gates = module.gate_weights(chunk)
                # MoE: (n_gates, batch, n_experts); PLE: per level (task gates, shared gate)
                levels = [gates] if isinstance(gates, torch.Tensor) else [g for g, _ in gates]
                chunks.append([g[:, :rows].cpu() for g in levels])
        n_tasks = self.n_tasks_
        per_level = []
        for parts in zip(*chunks):
            gates = torch.cat(parts, dim=1).numpy().astype(np.float64)
            # one shared gate (OMoE) serves every task; extra outputs (DR) are not tasks
            per_level.append([gates[min(t, gates.shape[0] - 1)].copy() for t in range(n_tasks)])
        return per_level if self._architecture_name() == "ple" else per_level[0]
