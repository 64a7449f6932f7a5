"""Loss-weighting strategies: how per-task losses become the training objective.

Pass one to any estimator as ``loss_weighting=...``: a name (``"uncertainty"``,
``"dwa"``, ``"gradnorm"``, ``"decay"``, ``"pcgrad"``) for the defaults, or an
instance to set its hyper-parameters, e.g. ``loss_weighting=DWA(temperature=1.0)``
(grid-searchable as ``loss_weighting__temperature``). Without one, the
objective is ``sum_t task_weights[t] * L_t`` with fixed weights.

The classes here are plain configuration objects (hyper-parameters only, so
they clone, pickle and persist like any scikit-learn parameter). Each builds
the PyTorch module that does the work (PyTorch only, no scikit-learn), which
:class:`sklearn_mmoe.nn.MaskedMultiTaskLoss` holds as ``weighting``: it
computes the gradients of a training step from the per-task losses
(``backward``) and updates epoch-level weights (``end_epoch``). The fitted
module is ``net_.criterion_.weighting``, and the weights it used in each epoch
are in ``net_.history[:, "task_weights"]``. The training and validation
losses that the estimators report (and that early stopping monitors) always
use the fixed ``task_weights``, so epochs stay comparable whatever the
strategy does.

Cost: ``"uncertainty"``, ``"dwa"`` and ``"decay"`` cost nothing noticeable.
``"gradnorm"`` and ``"pcgrad"`` need one gradient per task at every step:
``"pcgrad"`` runs one backward pass per task (its cost grows linearly with
the number of tasks); ``"gradnorm"`` differentiates each task's loss with
respect to the last shared layer, with a graph for the second-order term.
"""

import inspect

import torch
from torch import nn

from . import _distributed, _random

__all__ = [
    "LossWeighting",
    "Uncertainty",
    "DWA",
    "GradNorm",
    "Decay",
    "PCGrad",
    "make_weighting",
    "project_conflicting",
]


# ------------------------------------------------------------ configuration
class LossWeighting:
    """Fixed weights: the objective is ``sum_t task_weights[t] L_t``.

    The base of the strategies: hyper-parameters are the ``__init__``
    arguments, stored as attributes of the same name (``get_params`` /
    ``set_params`` as in scikit-learn); :meth:`build` makes the PyTorch
    module for given tasks.
    """

    def build(self, task_weights, task_types):
        """The PyTorch module of this strategy for these tasks."""
        return _Fixed(task_weights, task_types)

    @classmethod
    def _param_names(cls):
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.name != "self" and p.kind in named]

    def get_params(self, deep=True):
        """Hyper-parameters as a dict (scikit-learn's protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set hyper-parameters (scikit-learn's protocol)."""
        for name, value in params.items():
            if name not in self._param_names():
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class Uncertainty(LossWeighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018).

    Each task has a learned log-variance ``s_t``; the objective is
    ``sum_t w_t (c_t exp(-s_t) L_t + s_t / 2)`` with ``c_t = 1/2`` for a
    regression task (Gaussian likelihood) and 1 for a classification task. A
    noisy task learns a large ``s_t`` and so a small effective weight
    ``c_t exp(-s_t)``.
    """

    def build(self, task_weights, task_types):
        return _Uncertainty(task_weights, task_types)


class DWA(LossWeighting):
    """Dynamic Weight Average (Liu, Johns and Davison, CVPR 2019).

    From the third epoch on, ``w_t = T softmax_t(r_t / temperature)`` with
    ``r_t = L_t(e-1) / L_t(e-2)`` the ratio of the task's mean training loss
    over the last two epochs: a task whose loss falls slowly gets more
    weight. Weights are 1 for the first two epochs and are multiplied by
    ``task_weights``.

    Parameters
    ----------
    temperature : float, default=2.0
        Softness of the weighting (large: close to uniform).
    """

    def __init__(self, temperature=2.0):
        self.temperature = temperature

    def build(self, task_weights, task_types):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}.")
        return _DWA(task_weights, task_types, self.temperature)


class Decay(LossWeighting):
    """Decaying task weights, as in PLE (Tang et al., RecSys 2020).

    In epoch ``e`` (from 1), ``w_t = task_weights[t] * gamma_t ** (e - 1)``.

    Parameters
    ----------
    gamma : float or sequence of float, default=0.9
        Decay rate of every task, or of each task (1 keeps a task's weight).
    """

    def __init__(self, gamma=0.9):
        self.gamma = gamma

    def build(self, task_weights, task_types):
        return _Decay(task_weights, task_types, self.gamma)


class GradNorm(LossWeighting):
    """GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018).

    The task weights ``w_t`` are learned so that the gradient norms
    ``G_t = ||d(w_t L_t)/dW||`` at the last shared layer ``W`` approach
    ``mean(G) * r_t ** alpha``, where ``r_t`` is task ``t``'s loss relative to
    its first-step loss, divided by the mean of those ratios: a task that
    trains slower gets larger gradients. The weights are renormalised to sum
    to ``sum(task_weights)`` at every step. Costs one gradient per task with
    respect to ``W`` (with a graph) per step.

    Parameters
    ----------
    alpha : float, default=1.5
        Strength of the pull towards equal training rates.
    """

    def __init__(self, alpha=1.5):
        self.alpha = alpha

    def build(self, task_weights, task_types):
        return _GradNorm(task_weights, task_types, self.alpha)


class PCGrad(LossWeighting):
    """Projecting Conflicting Gradients (Yu et al., NeurIPS 2020).

    For the parameters shared between tasks (everything but the towers),
    each task's gradient ``g_i`` is projected, in random task order, onto the
    normal plane of every other task's gradient ``g_j`` it conflicts with
    (``g_i . g_j < 0``); the projected gradients are summed. Tower parameters
    get their task's gradient. Runs one backward pass per task.
    """

    def build(self, task_weights, task_types):
        return _PCGrad(task_weights, task_types)


_NAMES = {
    "uncertainty": Uncertainty,
    "dwa": DWA,
    "gradnorm": GradNorm,
    "decay": Decay,
    "pcgrad": PCGrad,
}


def make_weighting(spec):
    """A strategy configuration from a name, an instance or None (fixed weights)."""
    if spec is None:
        return LossWeighting()
    if isinstance(spec, str):
        if spec not in _NAMES:
            raise ValueError(
                f"loss_weighting={spec!r} is not one of {sorted(_NAMES)} or a "
                "sklearn_mmoe.weighting.LossWeighting instance."
            )
        return _NAMES[spec]()
    if isinstance(spec, LossWeighting):
        return spec
    raise TypeError(
        f"loss_weighting must be None, one of {sorted(_NAMES)} or a LossWeighting "
        f"instance, got {spec!r}."
    )


# ------------------------------------------------------------- PyTorch side
class _Fixed(nn.Module):
    """Fixed weights; the base of the strategies' modules.

    ``weights`` holds the weights of the current objective; ``backward``
    computes one step's gradients; ``end_epoch`` is called after each epoch.
    Everything a strategy learns or remembers is a parameter or a buffer, so
    it travels with ``state_dict``.
    """

    def __init__(self, task_weights, task_types):
        super().__init__()
        task_weights = torch.as_tensor(task_weights, dtype=torch.float32)
        self.register_buffer("base_weights", task_weights.clone())
        self.register_buffer("weights", task_weights.clone())
        self.task_types = list(task_types)
        self._epoch_losses, self._steps = None, 0

    #: Whether data-parallel training (:mod:`sklearn_mmoe._distributed`)
    #: trains it as one process would: the mean of the ranks' gradients is
    #: the global batch's gradient.
    data_parallel = True

    def current_weights(self):
        """The weights of the tasks' losses in the current objective."""
        return self.weights

    def objective(self, losses):
        """The scalar whose gradient trains the network."""
        return torch.dot(self.weights, losses)

    def backward(self, losses, module):
        """Set the gradients of one step from the per-task ``losses``."""
        self._accumulate(losses)
        self.objective(losses).backward()

    def _accumulate(self, losses):
        losses = losses.detach()
        self._epoch_losses = losses if self._epoch_losses is None else self._epoch_losses + losses
        self._steps += 1

    def end_epoch(self, epoch):
        """Called after each training epoch (numbered from 1); returns its mean losses."""
        mean = (
            self._epoch_losses / self._steps
            if self._steps
            else torch.zeros_like(self.base_weights)
        )
        self._epoch_losses, self._steps = None, 0
        world = _distributed.world()
        if world is not None:  # data-parallel: the ranks' shares make the global mean
            mean = _distributed.reduced(mean, mean.device).to(mean.dtype) / world[1]
        return mean


class _Uncertainty(_Fixed):
    def __init__(self, task_weights, task_types):
        super().__init__(task_weights, task_types)
        self.log_vars = nn.Parameter(torch.zeros(len(self.task_types)))
        scale = [0.5 if kind == "regression" else 1.0 for kind in self.task_types]
        self.register_buffer("_scale", torch.tensor(scale))

    def current_weights(self):
        return (self.base_weights * self._scale * torch.exp(-self.log_vars)).detach()

    def objective(self, losses):
        precision = self._scale * torch.exp(-self.log_vars)
        return torch.dot(self.base_weights, precision * losses + 0.5 * self.log_vars)


class _DWA(_Fixed):
    def __init__(self, task_weights, task_types, temperature):
        super().__init__(task_weights, task_types)
        self.temperature = temperature
        # mean losses of the last two epochs, and how many of them are known
        self.register_buffer("_history", torch.zeros(2, len(self.task_types)))
        self.register_buffer("_known", torch.zeros((), dtype=torch.long))

    def end_epoch(self, epoch):
        mean = super().end_epoch(epoch)
        self._history.copy_(torch.stack([self._history[1], mean]))
        self._known.add_(1)
        if self._known >= 2:
            ratio = self._history[1] / self._history[0].clamp_min(1e-12)
            relative = torch.softmax(ratio / self.temperature, dim=0) * len(ratio)
            self.weights.copy_(self.base_weights * relative)
        return mean


class _Decay(_Fixed):
    def __init__(self, task_weights, task_types, gamma):
        super().__init__(task_weights, task_types)
        gamma_ = torch.as_tensor(gamma, dtype=torch.float32).expand(len(self.task_types))
        if torch.any(gamma_ <= 0) or torch.any(gamma_ > 1):
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}.")
        self.register_buffer("_gamma", gamma_.clone())

    def end_epoch(self, epoch):
        self.weights.copy_(self.base_weights * self._gamma**epoch)
        return super().end_epoch(epoch)


class _GradNorm(_Fixed):
    # its weights follow the norms of each rank's own task gradients
    data_parallel = False

    def __init__(self, task_weights, task_types, alpha):
        super().__init__(task_weights, task_types)
        self.alpha = alpha
        self.learned_weights = nn.Parameter(self.base_weights.clone())
        self.register_buffer("_initial", torch.zeros(len(self.task_types)))
        self.register_buffer("_started", torch.zeros((), dtype=torch.bool))

    def backward(self, losses, module):
        self._accumulate(losses)
        w = self.learned_weights
        with torch.no_grad():  # keep the weights positive with a fixed total
            w.clamp_(min=1e-3).mul_(self.base_weights.sum() / w.sum())
            if not self._started:
                self._initial.copy_(losses.detach())
                self._started.fill_(True)
        shared = module.last_shared_layer()
        norms = torch.stack(
            [
                torch.autograd.grad(
                    w[t] * losses[t], shared, retain_graph=True, create_graph=True
                )[0].norm()
                for t in range(len(losses))
            ]
        )
        ratio = losses.detach() / self._initial.clamp_min(1e-12)
        target = (norms.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
        (weight_grad,) = torch.autograd.grad((norms - target).abs().sum(), w, retain_graph=True)
        torch.dot(w.detach(), losses).backward()
        w.grad = weight_grad
        self.weights.copy_(w.detach())


class _PCGrad(_Fixed):
    # the projection of the ranks' gradients is not that of the global ones
    data_parallel = False

    def backward(self, losses, module):
        shared = [p for p in module.shared_parameters() if p.requires_grad]
        if not shared:  # no parameter shared between tasks (SingleTask): nothing conflicts
            return super().backward(losses, module)
        self._accumulate(losses)
        shared_ids = {id(p) for p in shared}
        own = [p for p in module.parameters() if p.requires_grad and id(p) not in shared_ids]
        n_tasks = len(losses)
        task_grads = []
        for t in range(n_tasks):
            grads = torch.autograd.grad(
                self.weights[t] * losses[t],
                shared + own,
                retain_graph=t < n_tasks - 1,
                allow_unused=True,
            )
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(shared + own, grads)]
            task_grads.append(grads)
        flat = torch.stack(
            [torch.cat([g.reshape(-1) for g in grads[: len(shared)]]) for grads in task_grads]
        )
        projected = project_conflicting(flat)
        offset = 0
        for p in shared:
            p.grad = projected[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        for i, p in enumerate(own):
            p.grad = sum(grads[len(shared) + i] for grads in task_grads)


def project_conflicting(grads, generator=None):
    """PCGrad's projection of per-task gradients ``grads`` (T, P); returns their sum (P,).

    Uses the running fit's generator (see ``sklearn_mmoe._random``), else
    torch's global one, for the task order unless a ``generator`` is given.
    """
    if generator is None:
        generator = _random.generator()
    projected = grads.clone()
    n_tasks = grads.shape[0]
    for i in range(n_tasks):
        for j in torch.randperm(n_tasks, generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(projected[i], grads[j])
            if dot < 0:
                projected[i] -= dot / grads[j].square().sum().clamp_min(1e-20) * grads[j]
    return projected.sum(0)
