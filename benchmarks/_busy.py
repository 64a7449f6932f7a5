"""Busy neighbours: single-threaded torch processes that keep the CPUs taken.

``with busy_processes(3): ...`` starts 3 processes, each multiplying two
512 x 512 float32 matrices in a loop on one torch thread, and stops them when
the block ends, however it ends (exception, Ctrl-C). Each process also stops
by itself after ``seconds`` or when the benchmark that started it is gone,
so none outlives it.
"""

import contextlib
import os
import subprocess
import sys

_LOOP = r"""
import os, sys, time
import torch
torch.set_num_threads(1)
a = torch.randn(512, 512)
parent, deadline = os.getppid(), time.monotonic() + float(sys.argv[1])
print("ready", flush=True)
while time.monotonic() < deadline and os.getppid() == parent:
    for _ in range(10):
        a @ a
"""


@contextlib.contextmanager
def busy_processes(n, seconds=1800):
    """Run ``n`` busy single-threaded torch processes during the block."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", _LOOP, str(seconds)], env=env,
                                          stdout=subprocess.PIPE, text=True))
        for p in procs:  # wait until each one computes
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a busy process failed to start")
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()


def busy_threshold(n, default=0.1):
    """Share of the CPUs other processes may use in a clean pass beside ``n`` busy ones."""
    return default + min(n / (os.cpu_count() or 1), 1.0) if n else default
