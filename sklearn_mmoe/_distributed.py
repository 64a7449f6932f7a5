"""Data-parallel training inside an initialised ``torch.distributed`` process group.

When ``fit`` or ``partial_fit`` runs in a process group of more than one
process (launched with ``torchrun``, Hugging Face Accelerate, Ray Train's
``TorchTrainer``, or ``torch.distributed.init_process_group`` by hand), the
training loop of :mod:`sklearn_mmoe._training` trains data-parallel with the
helpers here:

- each rank computes one share of every global batch (``BatchIterator``);
- each task's loss on a rank is its share of the *global* batch's weighted
  mean: the rank's weighted sum over the global weight of the batch
  (:func:`weight_totals`, one small all-reduce per step), times the number
  of ranks, so that averaging the ranks' gradients gives the gradient of the
  global batch whatever the masks put on each rank;
- after the step's backward pass(es) the gradients of every trainable
  parameter (the network's and the loss weighting's) are averaged across
  ranks in one all-reduce (:func:`average_gradients`), so every rank takes
  the same optimizer step and keeps identical weights;
- the epoch's figures (batch losses and sizes, per-task losses, the
  validation set's outputs) are all-reduced or gathered, so every rank has
  the same history and early stopping stops every rank at the same epoch.

This is what ``DistributedDataParallel`` computes (the mean of the ranks'
gradients), done once after the step instead of overlapping with the
backward pass: the training steps here may run several backward passes
(a penalty, PCGrad's per-task gradients) and train parameters outside the
network (the loss weighting's), which DDP's reducer does not allow.
"""

import torch


def world():
    """``(rank, world_size)`` of the current process group, or None outside one.

    None also for a group of one process: training is then the plain loop.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    size = dist.get_world_size()
    return (dist.get_rank(), size) if size > 1 else None


def _reduce(tensor, op="sum"):
    ops = {"sum": torch.distributed.ReduceOp.SUM, "max": torch.distributed.ReduceOp.MAX}
    torch.distributed.all_reduce(tensor, op=ops[op])
    return tensor


def reduced(values, device, op="sum"):
    """A float64 tensor of ``values`` reduced over the ranks (a copy)."""
    tensor = torch.as_tensor(values, dtype=torch.float64).to(device).clone()
    return _reduce(tensor, op)


def weight_totals(weight, size):
    """Per-task denominators of the ranks' shares of a global batch's loss.

    Each rank's task loss is ``sum(w * loss) / (W / size)`` with ``W`` the
    task's total weight over the global batch: the mean of the ranks' losses
    (and gradients) is the global batch's weighted mean.
    """
    total = weight.sum(0)
    _reduce(total)
    return total / size


def average_gradients(parameters, size):
    """Replace each (trainable) parameter's gradient by its mean over the ranks, in one all-reduce.

    A parameter without a gradient on a rank counts as a zero gradient
    there; one without a gradient on every rank keeps none (an optimizer
    skips it, as in a single-process step).
    """
    if not parameters:
        return
    reference = parameters[0]
    flat = torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in parameters
        ]
        + [torch.tensor([p.grad is not None for p in parameters], device=reference.device).float()]
    )
    _reduce(flat)
    offset = 0
    has_grad = flat[-len(parameters):]
    for i, p in enumerate(parameters):
        n = p.numel()
        if has_grad[i] > 0:
            grad = (flat[offset: offset + n] / size).view_as(p).to(p.dtype)
            if p.grad is None:
                p.grad = grad.clone()
            else:
                p.grad.copy_(grad)
        offset += n


def gather_rows(tensor):
    """Concatenation of every rank's ``tensor`` (same trailing shape), in rank order."""
    size = torch.distributed.get_world_size()
    counts = reduced_counts(tensor.shape[0], tensor.device, size)
    most = max(counts)
    padded = tensor.new_zeros((most,) + tuple(tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(size)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)])


def reduced_counts(n, device, size):
    """Every rank's ``n``, in rank order."""
    counts = torch.zeros(size, dtype=torch.float64, device=device)
    counts[torch.distributed.get_rank()] = n
    return [int(c) for c in _reduce(counts).tolist()]


def broadcast_modules(*modules):
    """Rank 0's parameters and buffers, copied to every rank."""
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            with torch.no_grad():
                torch.distributed.broadcast(tensor.data, src=0)


def broadcast_object(obj):
    """Rank 0's ``obj`` (a picklable Python object) on every rank."""
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
