"""Gate distributions: how much each task uses each expert (MMoE paper, Fig. 6).

For a fitted mixture-of-experts estimator (MMoE, OMoE, CGC, PLE, or a
``MultiTaskEstimator`` / ``Pipeline`` ending in one), the average weight that
each task's gate gives each expert over a set of inputs, from the
estimator's public ``gate_weights``, and a bar chart of it.
"""

from pathlib import Path

import numpy as np

from ._plotting import new_figure

__all__ = ["average_gate_weights", "gate_expert_names", "plot_gate_weights"]


def _final_step(model):
    """The last step of a Pipeline (and X transformed up to it), or the model."""
    if hasattr(model, "steps"):
        return model[:-1], model[-1]
    return None, model


def average_gate_weights(model, X):
    """Mean gate weight per expert, for each task's gate of a fitted model.

    Parameters
    ----------
    model : fitted estimator or Pipeline
        An estimator with ``gate_weights`` (MMoE, OMoE, CGC, PLE, or
        ``MultiTaskEstimator`` on one of them), or a Pipeline ending in one.
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        Inputs to average over (untransformed if ``model`` is a Pipeline),
        validated as for ``predict``.

    Returns
    -------
    dict of str to ndarray of shape (n_tasks, n_experts)
        ``{"gates": ...}``, or for PLE ``{"level 1": ..., "level 2": ...}``:
        row ``t`` is task ``t``'s mean weight per expert (for CGC and PLE,
        its own experts then the shared ones, see :func:`gate_expert_names`).
    """
    transform, estimator = _final_step(model)
    if transform is not None:
        X = transform.transform(X)
    if not hasattr(estimator, "gate_weights"):
        raise ValueError(f"{type(estimator).__name__}'s network has no gates.")
    gates = estimator.gate_weights(X)
    if isinstance(gates[0], np.ndarray):
        return {"gates": _task_means(gates)}
    return {f"level {i + 1}": _task_means(level) for i, level in enumerate(gates)}


def _task_means(per_task):
    """(n_tasks, n_experts): each task's mean gate weight per expert."""
    return np.stack([g.mean(axis=0) for g in per_task])


def gate_expert_names(model, task_names):
    """Names of the experts each task's gate weighs, in the order of its columns.

    Parameters
    ----------
    model : fitted estimator or Pipeline
        As for :func:`average_gate_weights`.
    task_names : sequence of str
        One name per task.

    Returns
    -------
    list of list of str
        For MMoE and OMoE every task's gate weighs the same shared experts
        ``"expert 0"``, ...; for CGC and PLE task ``t``'s gate weighs its own
        experts (``"<task t> 0"``, ...) then the shared ones
        (``"shared 0"``, ...).
    """
    params = _final_step(model)[1].get_params()
    # CGC and PLE estimators (and MultiTaskEstimator on them) have task experts
    if "n_task_experts" not in params or params.get("architecture") in ("omoe", "mmoe"):
        n_experts = params["n_experts"]
        return [[f"expert {i}" for i in range(n_experts)] for _ in task_names]
    shared = [f"shared {j}" for j in range(params["n_shared_experts"])]
    return [[f"{name} {i}" for i in range(params["n_task_experts"])] + shared for name in task_names]


def plot_gate_weights(weights, path, task_names=None, title=None, expert_names=None):
    """Bar chart of the mean gate weight per expert, one panel per task's gate.

    Parameters
    ----------
    weights : dict of str to ndarray of shape (n_tasks, n_experts)
        The output of :func:`average_gate_weights`.
    path : str or path-like
        PNG file to write.
    task_names : sequence of str, default=None
        Names of the tasks (panel titles); "task i" by default.
    title : str, default=None
        Title of the figure.
    expert_names : list of list of str, default=None
        For each task, the names of the experts its gate weighs (x-axis
        labels; :func:`gate_expert_names` gives them for a model). Experts named
        ``"shared ..."`` are drawn in another colour than the task's own.
        Default: the expert numbers.

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    panels = [(name, row, t) for name, matrix in weights.items() for t, row in enumerate(matrix)]
    wide = expert_names is not None and max(len(n) for n in expert_names) > 4
    fig = new_figure(figsize=((3.6 if wide else 3.0) * len(panels), 3.4 if wide else 2.9),
                     layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    top = max(float(np.max(row)) for _, row, _ in panels)
    for ax, (name, row, t) in zip(axes, panels):
        label = task_names[t] if task_names is not None else f"task {t}"
        names = expert_names[t] if expert_names is not None else [str(i) for i in range(len(row))]
        shared = [n.startswith("shared") for n in names]
        colors = ["tab:orange" if s else "tab:blue" for s in shared]
        ax.bar(np.arange(len(row)), row, color=colors)
        ax.axhline(1 / len(row), color="0.5", lw=0.8, ls="--")  # uniform weights
        ax.set_title(label + ("" if name == "gates" else f" ({name})"), fontsize=9)
        ax.set_xticks(np.arange(len(row)), names, rotation=90 if expert_names else 0, fontsize=8)
        ax.set_xlabel("expert")
        ax.set_ylim(0, max(top, 1e-9) * 1.1)
    axes[0].set_ylabel("mean gate weight")
    if expert_names is not None and any(n.startswith("shared") for ns in expert_names for n in ns):
        from matplotlib.patches import Patch  # matplotlib is there: new_figure made the figure

        handles = [Patch(color="tab:blue", label="task's own experts"),
                   Patch(color="tab:orange", label="shared experts")]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
