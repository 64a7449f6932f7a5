"""Test configuration shared by tests/ and the doctests in sklearn_mmoe/."""

import os

# scikit-learn's array-API input check is skipped unless SciPy's array API
# mode is switched on before SciPy is imported; switch it on so that no
# estimator check is skipped.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


def pytest_configure(config):
    """One torch thread for the whole suite.

    The tests fit tiny networks on tiny data, where a second intra-op thread
    gains nothing. On a small shared machine it costs a lot: torch's OpenMP
    threads spin at their barriers, and when another process is busy every
    fit waits for a descheduled thread (measured on 2 cores with two busy
    processes: scikit-learn's checks of one estimator took 4.6 CPU-minutes
    with 2 threads, 0.75 with 1). Tests about threading set their own count.
    """
    import torch

    torch.set_num_threads(1)
