"""Random generators owned by one fit, for the draws of :mod:`sklearn_mmoe.nn`.

torch's global generator is shared by every thread of the process: two fits
in threads (joblib's threading backend, a web server) would interleave their
draws, and each would change the other's results and the ``torch.rand``
stream of the rest of the program. Instead, a fit makes its own
``torch.Generator`` objects and runs its initialisation and training inside
``with generators(...)``: within that block, in that thread only, parameter
initialisation, dropout masks and other draws of :mod:`sklearn_mmoe.nn` and
:mod:`sklearn_mmoe.weighting` come from them. Outside such a block (plain
PyTorch use of the modules) they come from torch's global generator.

Pure PyTorch: no scikit-learn here.
"""

import contextlib
import threading

import numpy as np
import torch

_local = threading.local()


@contextlib.contextmanager
def generators(*owned):
    """Draw from ``owned`` (at most one generator per device type) in this thread."""
    previous = getattr(_local, "generators", None)
    _local.generators = {g.device.type: g for g in owned}
    try:
        yield
    finally:
        _local.generators = previous


def active():
    """The generators of the innermost ``generators`` block of this thread (or ())."""
    owned = getattr(_local, "generators", None)
    return tuple(owned.values()) if owned else ()


def generator(device=None):
    """This thread's generator for ``device`` (default CPU), or None for torch's global one."""
    owned = getattr(_local, "generators", None)
    if not owned:
        return None
    kind = "cpu" if device is None else torch.device(device).type
    return owned.get(kind)


@contextlib.contextmanager
def seeded(seed, device):
    """Run the block with generators of its own for the CPU and ``device``, seeded.

    Initialisation, dropout and the other draws of :mod:`sklearn_mmoe.nn` in
    the block, in this thread, come from them: torch's global generator is
    neither read nor changed, so a fit depends only on its seed whatever runs
    beside it in other threads.
    """
    owned = [torch.Generator().manual_seed(seed)]
    if device.type != "cpu":
        owned.append(torch.Generator(device=device).manual_seed(seed))
    with generators(*owned):
        yield


def epoch_seed(seed, epoch):
    """A seed that depends only on ``(seed, epoch)``.

    Each epoch's draws (its batch order, its dropout masks) are seeded with
    it, so a fit resumed at an epoch draws what an uninterrupted one would.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
