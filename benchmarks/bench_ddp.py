"""Data-parallel training (torch.distributed, gloo on CPU) against one process.

The same ``fit()`` of the default MMoEClassifier on Census-Income (group 1,
the paper's split) runs in one process with ``--threads`` torch threads, then
in ``--nproc`` processes launched by ``torchrun --standalone`` with
``--threads / --nproc`` threads each, so both use the same cores. Each prints
epochs, seconds per epoch, fit wall time and test ROC AUC per task; the
data-parallel run should reach the same epochs and AUC (its steps are the
one-process steps up to float rounding), whatever its speed. On a machine
with GPUs, ``--device cuda --backend nccl`` gives each process its GPU.

Examples::

    python benchmarks/bench_ddp.py                       # 1 process vs 2, on the CPU
    python benchmarks/bench_ddp.py --nproc 8 --device cuda --backend nccl --threads 8
"""

import argparse
import os
import subprocess
import sys
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np


def fit_and_score(args, distributed):
    import torch
    from _tabular import load
    from sklearn.metrics import roc_auc_score

    from sklearn_mmoe import MMoEClassifier

    rank = 0
    if distributed:
        torch.distributed.init_process_group(args.backend)
        rank = torch.distributed.get_rank()
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    torch.set_num_threads(max(1, args.threads // (args.nproc if distributed else 1)))
    parts, names = load(args.dataset)
    (X, Y), (X_test, Y_test) = parts["train"], parts["test"]
    model = MMoEClassifier(random_state=args.seed, device=args.device)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, Y)
    wall = time.perf_counter() - start
    if rank == 0:  # rank 0 alone reports (and would save the model)
        proba = model.predict_proba(X_test)
        aucs = [roc_auc_score(Y_test[:, t], proba[t][:, 1]) for t in range(Y.shape[1])]
        epochs = model.n_iter_
        label = f"{args.nproc} processes" if distributed else "1 process"
        print(
            f"{label:12s} threads/process {torch.get_num_threads()}  epochs {epochs:3d} "
            f"(best {model.best_epoch_})  {wall / epochs:6.2f} s/epoch  fit {wall:7.1f} s  "
            f"AUC " + "  ".join(f"{n} {a:.4f}" for n, a in zip(names, aucs)),
            flush=True,
        )
    if distributed:
        torch.distributed.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="census1", help="census1, census2 or adult")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return fit_and_score(args, distributed=True)
    fit_and_score(args, distributed=False)
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={args.nproc}", os.path.abspath(__file__), "--worker"]
        + [a for a in sys.argv[1:]],
        check=True, env=env,
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
