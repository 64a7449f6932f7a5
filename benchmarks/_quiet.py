"""Timing on a shared machine: keep only the passes that ran undisturbed.

On a small shared machine another process that wakes up while torch runs its
thread pool slows a measurement down by far more than its own share of the
CPU: torch's OpenMP threads spin at their barriers, and on 2 cores a third
busy process can make a 0.2 s call take 10-30 s. Interleaving and medians do
not help when such an episode lasts minutes.

So the benchmarks run their interleaved repeats in *passes* (one pass = every
variant once), and around every pass they read ``/proc/stat``: the CPU time
that the machine spent outside this process (busy time of all CPUs, steal
included, minus this process's own user + system time) over the capacity of
the pass (wall time x CPUs). A pass where other processes used more than
``threshold`` (default 10 %) of the machine is *contended* and is dropped;
before each pass the benchmark waits (up to ``BENCH_QUIET_TIMEOUT`` s,
default 120, from the environment) for a quiet moment. Medians are taken over clean passes; if too few are clean the
benchmark says so.

Linux only (``/proc/stat``); elsewhere every pass counts as clean.
"""

import os
import time

# Seconds to wait for a quiet machine before each pass or measurement.
TIMEOUT = float(os.environ.get("BENCH_QUIET_TIMEOUT", 120))
_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_NCPU = os.cpu_count() or 1


def _machine_busy_s():
    """Busy CPU seconds of the whole machine since boot, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _CLK


def _self_cpu_s():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Monitor:
    """``with Monitor() as m: ...``; then ``m.others`` is the share of the
    machine used by other processes during the block (0 to 1)."""

    def __enter__(self):
        self._busy, self._self, self._wall = _machine_busy_s(), _self_cpu_s(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy, own, wall = _machine_busy_s(), _self_cpu_s(), time.perf_counter()
        if busy is None or self._busy is None:
            self.others = 0.0
            return False
        capacity = max(wall - self._wall, 1e-9) * _NCPU
        # Tick granularity (10 ms per CPU) makes short blocks imprecise: allow it.
        slack = 2 * _NCPU / _CLK
        others = (busy - self._busy) - (own - self._self) - slack
        self.others = min(max(others / capacity, 0.0), 1.0)
        return False


def wait_quiet(threshold=0.1, window=1.0, timeout=None):
    """Sleep until other processes use less than ``threshold`` of the machine
    over ``window`` seconds; give up after ``timeout`` s. Returns the last share seen."""
    deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
    while True:
        with Monitor() as m:
            time.sleep(window)
        if m.others < threshold or time.monotonic() > deadline:
            return m.others


class Passes:
    """Run interleaved passes until ``wanted`` are clean (at most ``max_passes``).

    ``for p in Passes(5): with p: <one pass>`` ... then ``p.clean`` holds the
    indexes of the clean passes (all passes if none was clean).
    """

    def __init__(self, wanted, max_passes=None, threshold=0.1, timeout=None):
        self.wanted, self.threshold, self.timeout = wanted, threshold, timeout
        self.max_passes = max_passes or 3 * wanted
        self.shares = []

    def __iter__(self):
        while self.n_clean < self.wanted and len(self.shares) < self.max_passes:
            wait_quiet(self.threshold, timeout=self.timeout)
            yield self

    def __enter__(self):
        self._monitor = Monitor().__enter__()
        return self

    def __exit__(self, *exc):
        self._monitor.__exit__(*exc)
        self.shares.append(self._monitor.others)
        return False

    @property
    def n_clean(self):
        return sum(s < self.threshold for s in self.shares)

    @property
    def enough(self):
        return self.n_clean >= self.wanted

    @property
    def clean(self):
        """Indexes of the clean passes, or of all passes if none was clean."""
        idx = [i for i, s in enumerate(self.shares) if s < self.threshold]
        return idx or list(range(len(self.shares)))

    def summary(self):
        text = (f"{self.n_clean} clean passes of {len(self.shares)} (a pass is clean when other "
                f"processes used < {self.threshold:.0%} of the CPUs)")
        if self.n_clean == 0:
            text += "; NO CLEAN PASS: medians over all passes, which were contended"
        elif not self.enough:
            text += f"; fewer than the {self.wanted} wanted: medians over those"
        return text

    def select(self, values):
        """The entries of a per-pass list that belong to the retained passes."""
        return [values[i] for i in self.clean]


class Sampler:
    """Interleaved measurements, each monitored on its own, retried until clean.

    For measurements of a second or more (a fit, an epoch). Each round
    measures, in order, every name that still lacks ``wanted`` clean values;
    rounds stop when none lacks any, or after ``max_rounds``.

    ``s = Sampler(names, 5)``; ``for name in s: s.measure(name, fn, *args)``
    (``fn(*args)`` returns the value to keep, e.g. seconds); then ``s.values(name)``.
    """

    def __init__(self, names, wanted, max_rounds=None, threshold=0.1, timeout=None):
        self.names, self.wanted, self.threshold, self.timeout = list(names), wanted, threshold, timeout
        self.max_rounds = max_rounds or 3 * wanted
        self.samples = {n: [] for n in self.names}  # (value, share of others, round)
        self._round = 0

    def _n_clean(self, name):
        return sum(share < self.threshold for _, share, _ in self.samples[name])

    def __iter__(self):
        for round_ in range(self.max_rounds):
            self._round = round_
            todo = [n for n in self.names if self._n_clean(n) < self.wanted]
            if not todo:
                return
            yield from todo

    def measure(self, name, fn, *args):
        wait_quiet(self.threshold, timeout=self.timeout)
        with Monitor() as m:
            value = fn(*args)
        self.samples[name].append((value, m.others, self._round))
        return value

    def values(self, name):
        """Clean values (all values if none was clean)."""
        clean = [v for v, share, _ in self.samples[name] if share < self.threshold]
        return clean or [v for v, _, _ in self.samples[name]]

    def pairs(self, a, b):
        """``[(value of a, value of b)]`` for the rounds where both were measured clean."""
        def by_round(name):
            return {r: v for v, share, r in self.samples[name] if share < self.threshold}
        va, vb = by_round(a), by_round(b)
        return [(va[r], vb[r]) for r in sorted(va.keys() & vb.keys())]

    def summary(self):
        total = sum(len(v) for v in self.samples.values())
        clean = sum(self._n_clean(n) for n in self.names)
        text = (f"{clean} clean measurements of {total} (clean: other processes used < "
                f"{self.threshold:.0%} of the CPUs meanwhile)")
        short = [n for n in self.names if self._n_clean(n) < self.wanted]
        if short:
            text += "; fewer clean than wanted for: " + ", ".join(
                f"{n} ({self._n_clean(n)})" for n in short)
        return text
