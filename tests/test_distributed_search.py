"""Hyper-parameter search on joblib's distributed backends: Dask, Ray, loky.

A ``GridSearchCV`` run in worker processes must give the same ``cv_results_``
scores as the same search run sequentially in this process, and torch inside
a worker must not use more intra-op threads than its share of the cores. Two
extra scorers record, for every split, the id of the process that fitted it
(so a backend that quietly fell back to this process would fail) and
``torch.get_num_threads()`` there.

Each cluster starts once per module (starting workers and importing torch in
them is most of the cost). The variables that cap the threads
(``OMP_NUM_THREADS`` and friends) are removed from the environment the
workers start from, so that the cap measured is the backend's own, not one
inherited from the shell that runs the tests.
"""

import contextlib
import logging
import os
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_mmoe import SharedBottomClassifier
from sklearn_mmoe.metrics import make_multitask_scorer

# the clusters and the sequential reference, built once, in one xdist worker
pytestmark = pytest.mark.xdist_group("distributed-search")

N_WORKERS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
GRID = {"learning_rate": [0.01, 0.1]}


def _pid(estimator, X, y):
    """A 'score': the id of the process that fitted and scores the split."""
    return float(os.getpid())


def _torch_threads(estimator, X, y):
    """A 'score': torch's intra-op thread count in that process."""
    return float(torch.get_num_threads())


def _search(**kwargs):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4)).astype(np.float32)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(int)
    search = GridSearchCV(
        SharedBottomClassifier(bottom_hidden_sizes=(8,), tower_hidden_sizes=(4,), max_epochs=3,
                               random_state=0),
        GRID, cv=KFold(2, shuffle=True, random_state=0), refit=False,
        scoring={"log_loss": make_multitask_scorer("neg_log_loss"), "pid": _pid,
                 "threads": _torch_threads},
        **kwargs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X, Y)


@contextlib.contextmanager
def _without_thread_variables():
    """Remove the thread variables inside the block; restore all of os.environ after it.

    All of it: a dask nanny writes its ``pre-spawn-environ`` variables
    (``OMP_NUM_THREADS=1``, ``PYTHONHASHSEED``, ...) into this process's
    environment before it starts a worker, and leaves them there.
    """
    saved = dict(os.environ)
    for name in THREAD_VARIABLES:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def sequential():
    return _search(n_jobs=1)


def _check_distributed(search, sequential):
    split_keys = [f"split{i}_test_log_loss" for i in range(2)]
    for key in ["mean_test_log_loss", *split_keys]:
        # Bit for bit: every fit seeds its own generators from random_state and
        # runs on one torch thread in both places.
        np.testing.assert_array_equal(search.cv_results_[key], sequential.cv_results_[key],
                                      err_msg=key)
    assert list(search.cv_results_["params"]) == list(sequential.cv_results_["params"])
    pids = np.concatenate([search.cv_results_[f"split{i}_test_pid"] for i in range(2)])
    assert os.getpid() not in pids
    threads = np.concatenate([search.cv_results_[f"split{i}_test_threads"] for i in range(2)])
    assert threads.min() >= 1
    assert threads.max() <= max(1, (os.cpu_count() or 1) // N_WORKERS), threads


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("dask.distributed")
    with _without_thread_variables(), distributed.LocalCluster(
        n_workers=N_WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_dask_search_matches_sequential(dask_client, sequential):
    with joblib.parallel_backend("dask"):
        search = _search(n_jobs=-1)
    _check_distributed(search, sequential)


@pytest.fixture(scope="module")
def ray_backend():
    ray = pytest.importorskip("ray")
    ray_joblib = pytest.importorskip("ray.util.joblib")
    from joblib.pool import PicklingPool

    # Ray's backend swaps the base class of joblib's PicklingPool (used by the
    # "multiprocessing" backend) for its own Pool: put it back afterwards.
    bases = PicklingPool.__bases__
    with _without_thread_variables():
        # Ray's workers do not get this process's sys.path: let them import
        # this module, which defines the probe scorers.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")]))
        ray.init(num_cpus=N_WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        ray_joblib.register_ray()
        yield
    finally:
        ray.shutdown()
        PicklingPool.__bases__ = bases


def test_ray_search_matches_sequential(ray_backend, sequential):
    with joblib.parallel_backend("ray"):
        search = _search(n_jobs=N_WORKERS)
    _check_distributed(search, sequential)


def test_loky_search_matches_sequential(sequential):
    # joblib's default backend sets the thread variables that the environment
    # leaves unset to cpu_count() // n_jobs in its workers.
    with _without_thread_variables(), joblib.parallel_backend("loky"):
        search = _search(n_jobs=N_WORKERS)
    _check_distributed(search, sequential)
