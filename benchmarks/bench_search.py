"""Distributed hyper-parameter search: GridSearchCV on joblib's backends.

One 12-candidate grid (``learning_rate`` 1e-3, 3e-3, 1e-2 x ``n_experts``
4, 8 x ``expert_hidden_sizes`` (16,), (32,)) of ``MMoEClassifier`` (towers of
8 units, batch 1024, ``--epochs`` epochs, ``random_state=0``), 2-fold
(``KFold(shuffle=True, random_state=0)``), scored by the mean ROC AUC over
the two tasks, no refit, on the first ``--rows`` rows of a fixed permutation
of Census-Income (KDD) group 1 train (``fetch_census_income``: a DataFrame of
7 numerical and 31 categorical columns, which the estimator encodes itself).
The search runs

* ``sequential``: ``n_jobs=1`` in this process, with 1 torch thread (the
  reference for identical scores) and with ``--threads`` torch threads
  (default 2: the cores a single process would use);
* ``loky``: joblib's default process backend, ``n_jobs=2``;
* ``dask``: ``joblib.parallel_config(backend="dask")`` on a
  ``dask.distributed.LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)`` on loopback (skipped if dask.distributed is missing);
* ``dask-no-trim``: the same without the ``MALLOC_TRIM_THRESHOLD_=65536``
  that dask's nanny sets in its workers by default (dask config
  ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: None``):
  setting that variable turns off glibc's adaptive mmap threshold, so that
  torch's large per-batch buffers are likely mapped and unmapped at every
  batch;
* ``ray``: Ray's joblib backend on ``ray.init(num_cpus=2)`` (skipped if
  ray is missing).

Worker start-up is measured apart from the search: the time to start the
workers and import torch and ``sklearn_mmoe`` in each (a first ``Parallel``
call; for Dask the cluster and a ``client.run``, for Ray ``ray.init``). The
Dask search then reuses those workers. loky's search starts workers of its
own (loky restarts a worker whose memory grows by 300 MB over its size after
its first call, which warmed-up workers would hit), so the table shows its
search time less the start-up measured apart. Ray's joblib backend starts a
new pool of actors for every ``Parallel`` call, so its search time includes
starting its two workers (printed apart too). The start-up probe also reports
``torch.get_num_threads()`` and ``OMP_NUM_THREADS`` in each worker.

The table gives wall times, the speed-up over each sequential run, and
whether the per-candidate mean scores are identical to the 1-thread
sequential run (and the best parameters the same). Run::

    nice python benchmarks/bench_search.py --data-home ~/scikit_learn_data

Timings on a shared machine vary with its load, printed before each run.
"""

import os
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import joblib
import numpy as np
import torch
from _cli import bench_parser
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid

from sklearn_mmoe import MMoEClassifier
from sklearn_mmoe.datasets import fetch_census_income
from sklearn_mmoe.metrics import make_multitask_scorer

GRID = {
    "learning_rate": [1e-3, 3e-3, 1e-2],
    "n_experts": [4, 8],
    "expert_hidden_sizes": [(16,), (32,)],
}
N_WORKERS = 2


def _worker_probe():
    """Import what a fit needs; report the worker's pid and torch threads."""
    import sklearn_mmoe.metrics  # noqa: F401  (and the estimators, below)
    from sklearn_mmoe import MMoEClassifier  # noqa: F401

    return os.getpid(), torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def _search(X, Y, epochs, n_jobs):
    search = GridSearchCV(
        MMoEClassifier(tower_hidden_sizes=(8,), batch_size=1024, max_epochs=epochs,
                       random_state=0),
        GRID, cv=KFold(2, shuffle=True, random_state=0), refit=False, n_jobs=n_jobs,
        scoring=make_multitask_scorer("roc_auc"),
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, Y)
    return search, time.perf_counter() - start


def _probe_workers(n_jobs):
    return joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_worker_probe)() for _ in range(n_jobs))


def _load():
    return os.getloadavg()[0]


def run_loky(X, Y, epochs):
    from joblib.externals.loky import get_reusable_executor

    start = time.perf_counter()
    with joblib.parallel_config(backend="loky"):
        probes = _probe_workers(N_WORKERS)
        startup = time.perf_counter() - start
        # Not reused: loky restarts a worker whose memory grew by 300 MB over
        # its size after its first call (its leak check), so workers warmed by
        # the probe would be restarted by the first fits. The search starts
        # its own; its time includes that start.
        get_reusable_executor().shutdown(wait=True)
        search, seconds = _search(X, Y, epochs, N_WORKERS)
    return search, seconds - startup, startup, probes


def run_dask(X, Y, epochs, malloc_trim=True):
    import dask
    from dask.distributed import Client, LocalCluster

    environ = dict(os.environ)
    # The nanny's default MALLOC_TRIM_THRESHOLD_=65536; None: leave it unset.
    trim = {} if malloc_trim else {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    start = time.perf_counter()
    with dask.config.set(trim), LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        probes = list(client.run(_worker_probe).values())
        startup = time.perf_counter() - start
        with joblib.parallel_config(backend="dask"):
            search, seconds = _search(X, Y, epochs, -1)
    # The nanny wrote OMP_NUM_THREADS=1 and others into this process's
    # environment before starting the workers: undo it for the next backend.
    os.environ.clear()
    os.environ.update(environ)
    return search, seconds, startup, probes


def run_ray(X, Y, epochs):
    import ray
    from ray.util.joblib import register_ray

    start = time.perf_counter()
    ray.init(num_cpus=N_WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        startup = time.perf_counter() - start
        register_ray()
        with joblib.parallel_config(backend="ray"):
            pool_start = time.perf_counter()
            probes = _probe_workers(N_WORKERS)  # a pool of its own: start cost only
            print(f"  ray: a Parallel call of {N_WORKERS} probes took "
                  f"{time.perf_counter() - pool_start:.1f} s (actor start + imports)")
            search, seconds = _search(X, Y, epochs, N_WORKERS)
    finally:
        ray.shutdown()
    return search, seconds, startup, probes


def main(argv=None):
    parser = bench_parser(__doc__, repeats=1)
    parser.add_argument("--rows", type=int, default=40_000,
                        help="rows of Census-Income train searched over (default 40,000)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["loky", "dask", "dask-no-trim", "ray"],
                        choices=["loky", "dask", "dask-no-trim", "ray"])
    args = parser.parse_args(argv)

    X, Y = fetch_census_income(data_home=args.data_home, return_X_y=True,
                               download_if_missing=False)
    rows = np.random.RandomState(0).permutation(len(X))[:args.rows]
    X, Y = X.iloc[rows].reset_index(drop=True), Y.to_numpy()[rows]
    n_candidates = len(ParameterGrid(GRID))
    print(f"{len(X):,} rows x {X.shape[1]} columns, {n_candidates} candidates x 2 folds, "
          f"{args.epochs} epochs, {os.cpu_count()} CPUs")

    results = {}
    threads = torch.get_num_threads()
    for n_threads in sorted({1, args.threads}):
        torch.set_num_threads(n_threads)
        print(f"sequential, {n_threads} torch thread(s); load {_load():.1f}", flush=True)
        search, seconds = _search(X, Y, args.epochs, 1)
        results[f"sequential, {n_threads} thread(s)"] = (search, seconds, 0.0)
    torch.set_num_threads(threads)
    runners = {"loky": run_loky, "dask": run_dask, "ray": run_ray,
               "dask-no-trim": lambda *a: run_dask(*a, malloc_trim=False)}
    for name in args.backends:
        module = {"dask": "dask.distributed", "dask-no-trim": "dask.distributed",
                  "ray": "ray.util.joblib"}.get(name)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                print(f"{name}: not installed, skipped")
                continue
        print(f"{name}, {N_WORKERS} workers; load {_load():.1f}", flush=True)
        search, seconds, startup, probes = runners[name](X, Y, args.epochs)
        print(f"  workers (pid, torch threads, OMP_NUM_THREADS): {probes}")
        results[f"{name}, {N_WORKERS} workers"] = (search, seconds, startup)

    reference = results["sequential, 1 thread(s)"][0].cv_results_
    fit = reference["mean_fit_time"] + reference["mean_score_time"]
    print(f"\nper fit + score (sequential, 1 thread): median {np.median(fit):.2f} s, "
          f"{np.min(fit):.2f} to {np.max(fit):.2f} s; {2 * n_candidates} fits")
    baselines = {k: v[1] for k, v in results.items() if k.startswith("sequential")}
    header = ["search", "start-up s", "search s"] + [f"x vs {k}" for k in baselines] + [
        "scores identical", "max |diff|", "same best"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    best = reference["params"][int(np.argmax(reference["mean_test_score"]))]
    for name, (search, seconds, startup) in results.items():
        scores = search.cv_results_["mean_test_score"]
        diff = float(np.max(np.abs(scores - reference["mean_test_score"])))
        this_best = search.cv_results_["params"][int(np.argmax(scores))]
        speedups = [f"{base / (seconds + startup):.2f}" for base in baselines.values()]
        print(f"| {name} | {startup:.1f} | {seconds:.1f} | " + " | ".join(speedups)
              + f" | {np.array_equal(scores, reference['mean_test_score'])} | {diff:.1e}"
              + f" | {this_best == best} |")
    print(f"\nbest (sequential, 1 thread): {best}, mean AUC "
          f"{np.max(reference['mean_test_score']):.4f}")
    print("speed-ups count start-up + search against the sequential search")


if __name__ == "__main__":
    main()
