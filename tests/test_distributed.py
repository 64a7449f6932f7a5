"""Data-parallel training in a torch.distributed process group (2 gloo processes).

The ranks are launched once, by ``torchrun --standalone`` as a user would,
and run the scenarios of ``distributed_worker.py``; the tests compare what
each rank ended with, with each other and with the same fit in one process.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score

pytestmark = [
    pytest.mark.skipif(
        not torch.distributed.is_available(), reason="this torch has no torch.distributed"
    ),
    # one xdist worker launches the ranks once (2 more processes on the cores)
    pytest.mark.xdist_group("torchrun"),
]


def write_parquet(folder):
    """Three files of 300, 250 and 120 rows: the two ranks' shares differ in size."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    folder.mkdir()
    for i, n in enumerate((300, 250, 120)):
        X, y = worker.scenarios()["fit"][1](0)
        rows = slice(100 * i, 100 * i + n)
        table = {f"x{j}": X[rows, j] for j in range(X.shape[1])}
        table.update(y0=y[rows, 0], y1=y[rows, 1])
        pq.write_table(pa.table(table), folder / f"part-{i}.parquet")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    write_parquet(out / "parquet")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent.parent)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(Path(worker.__file__)), str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.fixture(scope="module")
def single():
    """The fit scenarios in this process: the reference of the data-parallel fits."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        models = {}
        for name, (make, rows, method) in worker.scenarios().items():
            if method == "fit":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    models[name] = make().fit(*rows(0))
        return models
    finally:
        torch.set_num_threads(torch_threads)


SCENARIOS = list(worker.scenarios())
FITS = [name for name in SCENARIOS if worker.scenarios()[name][2] == "fit"]


@pytest.mark.parametrize("name", SCENARIOS + ["parquet"])
def test_ranks_end_with_identical_weights_and_history(ranks, name):
    first, second = ranks[0][name], ranks[1][name]
    for key, tensor in first["state"].items():
        assert torch.equal(tensor, second["state"][key]), key
    assert first["loss_curve"] == second["loss_curve"]
    assert first["validation_loss_curve"] == second["validation_loss_curve"]


@pytest.mark.parametrize("name", FITS)
def test_data_parallel_fit_matches_one_process(ranks, single, name):
    """Each rank's share of each batch, masks included, adds up to the global batch's step."""
    model = single[name]
    # each rank trained on a part of every batch, and together on all of them
    rows = [rank[name]["rows_trained"] for rank in ranks]
    history = model.net_.history[:, "batches", :, "train_batch_size"]
    one_process = sum(sum(epoch) for epoch in history)
    n_batches = sum(len(epoch) for epoch in history)
    assert rows[0] + rows[1] == one_process and abs(rows[0] - rows[1]) <= n_batches
    for key, tensor in model.net_.module_.state_dict().items():
        np.testing.assert_allclose(
            ranks[0][name]["state"][key].numpy(), tensor.numpy(), rtol=1e-4, atol=2e-5,
            err_msg=key,
        )
    np.testing.assert_allclose(ranks[0][name]["loss_curve"], model.loss_curve_, rtol=1e-5)


def test_early_stopping_stops_every_rank_at_the_single_process_epoch(ranks, single):
    model = single["early_stopping"]
    curve = ranks[0]["early_stopping"]["validation_loss_curve"]
    assert len(curve) == len(model.validation_loss_curve_) < model.max_epochs
    np.testing.assert_allclose(curve, model.validation_loss_curve_, rtol=1e-5)


def test_partial_fit_trains_on_each_ranks_rows_from_rank_0s_setup(ranks):
    """Uneven shards (300 and 470 rows): the rank with fewer batches waits in empty steps."""
    result = ranks[0]["partial_fit"]
    # the regression target's scale comes from rank 0's first rows, on every rank
    X0, y0 = worker.scenarios()["partial_fit"][1](0)
    observed = y0[~np.isnan(y0[:, 1]), 1]
    assert result["scales"][1] == pytest.approx(observed.std(), rel=1e-6)
    assert ranks[1]["partial_fit"]["scales"] == result["scales"]
    # eight passes: it learns both tasks
    assert len(result["loss_curve"]) == 8
    X, y = worker.scenarios()["partial_fit"][1](99)
    observed = ~np.isnan(y[:, 1])
    assert roc_auc_score(y[:, 0], result["held_out"][:, 0]) > 0.9
    assert r2_score(y[observed, 1], result["held_out"][observed, 1]) > 0.8


def test_unsupported_data_parallel_fits_raise_on_every_rank(ranks):
    for rank in ranks:
        assert "loss_weighting='pcgrad' is not supported in data-parallel" in rank["errors"]["pcgrad"]
        assert "same X and y on every process" in rank["errors"]["rows"]
        assert "between 400 and 401 rows" in rank["errors"]["rows"]


def test_iter_parquet_shards_step_together_in_partial_fit(ranks):
    """Each rank read its own files (uneven shares) and made as many partial_fit calls."""
    calls = [rank["parquet"]["calls"] for rank in ranks]
    # each rank read its own files: together the 670 rows once per pass, apart unequal shares
    rows = [rank["parquet"]["rows"] for rank in ranks]
    assert rows[0] + rows[1] == 2 * 670 and rows[0] != rows[1]
    # two passes; each: the larger share's ceil(rows / 100) chunks, 4 to 6
    assert calls[0] == calls[1] >= 8
