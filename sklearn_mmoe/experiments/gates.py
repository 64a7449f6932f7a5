"""Gate distributions: how much each task uses each expert (MMoE paper, Fig. 6).

For a fitted mixture-of-experts estimator (MMoE, OMoE, CGC, PLE, or a
``MultiTaskEstimator`` / ``Pipeline`` ending in one), the average softmax
weight that each gate gives each expert over a set of inputs.
"""

from pathlib import Path

import numpy as np
import torch

from .._data import inference_chunks
from ._plotting import new_figure

__all__ = ["average_gate_weights", "plot_gate_weights"]


def _final_step(model):
    """The last step of a Pipeline (and X transformed up to it), or the model."""
    if hasattr(model, "steps"):
        return model[:-1], model[-1]
    return None, model


def average_gate_weights(model, X):
    """Mean gate weight per expert, for each gate of a fitted model.

    Parameters
    ----------
    model : fitted estimator or Pipeline
        Its network must be a mixture of experts (``net_.module_`` has
        ``gate_weights``).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Inputs to average over (untransformed if ``model`` is a Pipeline),
        validated as for ``predict``.

    Returns
    -------
    dict
        For MMoE/OMoE ``{"gates": array (n_gates, n_experts)}``; for CGC/PLE
        ``{"level 1 tasks": (n_tasks, k), "level 1 shared": (1, n_experts), ...}``.
    """
    transform, estimator = _final_step(model)
    if transform is not None:
        X = transform.transform(X)
    module = estimator.net_.module_
    if not hasattr(getattr(module, "network", module), "gate_weights"):
        raise ValueError(f"{type(estimator).__name__}'s network has no gates.")
    X = estimator._encode_X(X, reset=False)
    sums = {}
    with torch.inference_mode():
        for chunk, rows in inference_chunks(X, estimator.net_.device):
            gates = module.gate_weights(chunk)
            named = (
                {"gates": gates}
                if isinstance(gates, torch.Tensor)
                else {
                    f"level {level + 1} {kind}": g
                    for level, pair in enumerate(gates)
                    for kind, g in zip(("tasks", "shared"), pair)
                    if g is not None
                }
            )
            for name, g in named.items():
                total = g[:, :rows].sum(dim=1).cpu().numpy().astype(np.float64)
                sums[name] = sums.get(name, 0.0) + total
    return {name: total / X.shape[0] for name, total in sums.items()}


def plot_gate_weights(weights, path, task_names=None, title=None):
    """Bar chart of the mean gate weight per expert, one panel per gate.

    Parameters
    ----------
    weights : dict of str to ndarray of shape (n_gates, n_experts)
        The output of :func:`average_gate_weights`.
    path : str or path-like
        PNG file to write.
    task_names : sequence of str, default=None
        Names of the tasks' gates (panel titles); "gate i" by default.
        Shared gates (CGC/PLE) are always titled "gate i (level ... shared)".
    title : str, default=None
        Title of the figure.

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    panels = [(name, row, i) for name, matrix in weights.items() for i, row in enumerate(matrix)]
    fig = new_figure(figsize=(3.0 * len(panels), 2.9), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    top = max(float(np.max(row)) for _, row, _ in panels)
    for ax, (name, row, i) in zip(axes, panels):
        named = task_names is not None and "shared" not in name
        label = task_names[i] if named else f"gate {i}"
        ax.bar(np.arange(len(row)), row, color="tab:blue")
        ax.axhline(1 / len(row), color="0.5", lw=0.8, ls="--")  # uniform weights
        ax.set_title(label + ("" if name == "gates" else f" ({name})"), fontsize=9)
        ax.set_xlabel("expert")
        ax.set_xticks(np.arange(len(row)))
        ax.set_ylim(0, max(top, 1e-9) * 1.1)
    axes[0].set_ylabel("mean gate weight")
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
