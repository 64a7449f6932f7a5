"""Resident memory of this process, from Linux's /proc/self (the benchmarks' peak-memory figures)."""


def status_bytes(field):
    """A memory field of /proc/self/status (``"VmRSS"``, ``"VmHWM"``, ...) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak():
    """Reset the peak-RSS mark (``VmHWM``) to the current RSS; False where the kernel cannot.

    ``resource.getrusage(...).ru_maxrss`` cannot be reset, and on Linux a child
    process starts with its parent's peak: it inherits it across ``exec``.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
