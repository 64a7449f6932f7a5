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
