"""iter_parquet: Parquet data sets streamed in (X, Y) chunks for partial_fit."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import small
from sklearn_mmoe import MMoEClassifier
from sklearn_mmoe.datasets import iter_parquet
from sklearn_mmoe.metrics import masked_roc_auc_score

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_files(folder, n_files, rows_per_file, row_group_size=None):
    """Files part-i.parquet whose column ``row`` numbers the rows globally."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    for i in range(n_files):
        row = np.arange(i * rows_per_file, (i + 1) * rows_per_file)
        table = pa.table({
            "row": row,
            "x": row * 0.5,
            "click": pa.array((row % 2).astype(np.int8)),
            "buy": pa.array([None if r % 3 else float(r % 2) for r in row], pa.float32()),
        })
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=row_group_size)
    return folder


def rows_of(chunks):
    return [X["row"].to_numpy() for X, _ in chunks]


def test_chunks_have_batch_rows_rows_across_files_and_row_groups(tmp_path):
    folder = write_files(tmp_path / "d", n_files=3, rows_per_file=7, row_group_size=3)
    chunks = list(iter_parquet(folder, ["click", "buy"], batch_rows=5, shuffle_files=False))
    assert [len(X) for X, _ in chunks] == [5, 5, 5, 5, 1]
    for X, Y in chunks:
        assert isinstance(X, pd.DataFrame) and list(X.columns) == ["row", "x"]
        assert X.index.equals(pd.RangeIndex(len(X)))
        assert Y.dtype == np.float64 and Y.shape == (len(X), 2) and Y.flags.writeable
    # Unshuffled: the files in sorted order, rows in file order.
    np.testing.assert_array_equal(np.concatenate(rows_of(chunks)), np.arange(21))


def test_labels_and_missing_labels(tmp_path):
    folder = write_files(tmp_path / "d", n_files=2, rows_per_file=10)
    X, Y = next(iter_parquet(folder, ["click", "buy"], batch_rows=100))
    row = X["row"].to_numpy()
    np.testing.assert_array_equal(Y[:, 0], row % 2)
    observed = row % 3 == 0
    np.testing.assert_array_equal(np.isnan(Y[:, 1]), ~observed)  # nulls are NaN
    np.testing.assert_array_equal(Y[observed, 1], row[observed] % 2)
    # One name: 1-D Y, as a pandas column; a boolean target reads as 0/1.
    pq.write_table(pa.table({"a": [1.0, 2.0], "flag": [True, None]}), tmp_path / "b.parquet")
    X, y = next(iter_parquet(tmp_path / "b.parquet", "flag", batch_rows=10))
    assert list(X.columns) == ["a"]
    np.testing.assert_array_equal(y, [1.0, np.nan])


def test_columns_selects_and_orders_the_features(tmp_path):
    folder = write_files(tmp_path / "d", n_files=1, rows_per_file=4)
    X, Y = next(iter_parquet(folder, ["buy"], batch_rows=4, columns=["x", "click"]))
    assert list(X.columns) == ["x", "click"] and Y.shape == (4, 1)


def test_categorical_columns_come_out_as_category(tmp_path):
    # Two row groups with different dictionaries, in one chunk.
    first = pa.table({"city": pa.array(["a", "b"]).dictionary_encode(), "y": [0, 1]})
    second = pa.table({"city": pa.array(["c", "a"]).dictionary_encode(), "y": [1, 0]})
    with pq.ParquetWriter(tmp_path / "c.parquet", first.schema) as writer:
        writer.write_table(first)
        writer.write_table(second)
    X, _ = next(iter_parquet(tmp_path / "c.parquet", ["y"], batch_rows=4))
    assert isinstance(X["city"].dtype, pd.CategoricalDtype)
    assert X["city"].tolist() == ["a", "b", "c", "a"]


def test_an_index_stored_by_pandas_is_not_a_feature(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]},
                         index=pd.Index([10, 20, 30], name="id"))
    frame.to_parquet(tmp_path / "f.parquet")
    X, _ = next(iter_parquet(tmp_path / "f.parquet", "y", batch_rows=2))
    assert list(X.columns) == ["a"] and X.index.equals(pd.RangeIndex(2))
    X, _ = next(iter_parquet(tmp_path / "f.parquet", "y", batch_rows=2, columns=["id", "a"]))
    assert list(X.columns) == ["id", "a"] and X["id"].tolist() == [10, 20]


def file_order(folder, **kwargs):
    """The order in which the files are visited (one file per chunk)."""
    return [int(rows[0]) // 10 for rows in rows_of(iter_parquet(folder, ["click"], batch_rows=10, **kwargs))]


def test_file_order_is_shuffled_reproducibly_and_rows_keep_their_order(tmp_path):
    folder = write_files(tmp_path / "d", n_files=8, rows_per_file=10)
    first = file_order(folder, random_state=0)
    assert sorted(first) == list(range(8))
    assert file_order(folder, random_state=0) == first
    assert file_order(folder, random_state=1) != first
    assert file_order(folder, shuffle_files=False) == list(range(8))
    # A RandomState instance draws a new order on every call, as in scikit-learn.
    rng = np.random.RandomState(0)
    assert file_order(folder, random_state=rng) != file_order(folder, random_state=rng)
    # Within a file, the rows keep their order.
    for rows in rows_of(iter_parquet(folder, ["click"], batch_rows=10, random_state=3)):
        np.testing.assert_array_equal(np.diff(rows), 1)


def test_a_list_of_files_is_visited_in_its_order(tmp_path):
    folder = write_files(tmp_path / "d", n_files=3, rows_per_file=10)
    files = [folder / "part-2.parquet", str(folder / "part-0.parquet")]
    assert file_order(files, shuffle_files=False) == [2, 0]


@pytest.mark.parametrize("batch_rows", [1, 7, 64, 1000])
def test_every_row_is_seen_once_per_pass(tmp_path, batch_rows):
    folder = write_files(tmp_path / "d", n_files=5, rows_per_file=37, row_group_size=10)
    for seed in (0, 1):
        seen = np.concatenate(rows_of(iter_parquet(folder, ["click"], batch_rows=batch_rows,
                                                   random_state=seed)))
        np.testing.assert_array_equal(np.sort(seen), np.arange(5 * 37))


def test_rank_shards_are_disjoint_and_cover_every_file(tmp_path):
    folder = write_files(tmp_path / "d", n_files=7, rows_per_file=10)
    for world_size in (1, 2, 3):
        for epoch in (0, 1):
            shards = [
                np.concatenate(rows_of(iter_parquet(
                    folder, ["click"], batch_rows=4, random_state=epoch, rank=rank,
                    world_size=world_size,
                )))
                for rank in range(world_size)
            ]
            assert sum(len(s) for s in shards) == 70
            np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(70))
            # Each rank reads whole files: 7 // world_size of them or one more.
            assert {len(s) // 10 for s in shards} <= {7 // world_size, 7 // world_size + 1}
    # A new seed deals the files out anew.
    assert set(np.concatenate(rows_of(iter_parquet(
        folder, ["click"], batch_rows=10, random_state=0, rank=0, world_size=2)))) != set(
        np.concatenate(rows_of(iter_parquet(
            folder, ["click"], batch_rows=10, random_state=1, rank=0, world_size=2))))


def test_every_rank_yields_as_many_chunks_whatever_its_share(tmp_path):
    """Data-parallel partial_fit calls go in step: a rank with fewer rows cuts smaller chunks."""
    folder = tmp_path / "d"
    folder.mkdir()
    for i, n in enumerate((100, 100, 37)):  # rank 0 of 2: 137 rows; rank 1: 100
        row = np.arange(1000 * i, 1000 * i + n)
        pq.write_table(pa.table({"row": row, "click": row % 2}), folder / f"part-{i}.parquet")
    shares = [
        [len(rows) for rows in rows_of(iter_parquet(
            folder, ["click"], batch_rows=40, shuffle_files=False, rank=rank, world_size=2))]
        for rank in (0, 1)
    ]
    assert shares == [[34, 34, 34, 35], [25, 25, 25, 25]]  # 4 = ceil(137 / 40) each
    # alone, a rank cuts batch_rows as before
    assert [len(r) for r in rows_of(iter_parquet(folder, ["click"], batch_rows=40,
                                                 shuffle_files=False))] == [40] * 5 + [37]
    # a share too small to cut as many chunks: a clear error
    with pytest.raises(ValueError, match="hold 100 to 137 rows"):
        iter_parquet(folder, ["click"], batch_rows=1, shuffle_files=False, rank=0, world_size=2)


def test_the_process_group_gives_the_rank(tmp_path, monkeypatch):
    torch_distributed = pytest.importorskip("torch.distributed")
    folder = write_files(tmp_path / "d", n_files=4, rows_per_file=10)
    explicit = [
        rows_of(iter_parquet(folder, ["click"], batch_rows=10, random_state=5, rank=r, world_size=2))
        for r in range(2)
    ]
    monkeypatch.setattr(torch_distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch_distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch_distributed, "get_world_size", lambda: 2)
    for rank in range(2):
        monkeypatch.setattr(torch_distributed, "get_rank", lambda rank=rank: rank)
        got = rows_of(iter_parquet(folder, ["click"], batch_rows=10, random_state=5))
        assert [r.tolist() for r in got] == [r.tolist() for r in explicit[rank]]
    with pytest.raises(ValueError, match="random_state must be an int"):
        iter_parquet(folder, ["click"], batch_rows=10)
    monkeypatch.setattr(torch_distributed, "get_world_size", lambda: 5)
    with pytest.raises(ValueError, match="4 Parquet file.*for 5 processes"):
        iter_parquet(folder, ["click"], batch_rows=10, random_state=0)


def test_partial_fit_over_chunks_learns(tmp_path):
    rng = np.random.RandomState(0)
    n, n_files = 4000, 4
    X = rng.randn(n, 5)
    Y = np.column_stack([X[:, 0] + X[:, 1] > 0, X[:, 0] - X[:, 2] > 0]).astype(float)
    Y[rng.rand(n) < 0.3, 1] = np.nan  # the second task's labels are partly missing
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(5)]).assign(a=Y[:, 0], b=Y[:, 1])
    train, test = frame.iloc[:3000], frame.iloc[3000:]
    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(n_files):
        train.iloc[i::n_files].to_parquet(folder / f"part-{i}.parquet")
    model = small(MMoEClassifier, batch_size=32, learning_rate=1e-2)
    for epoch in range(2):
        for X_chunk, Y_chunk in iter_parquet(folder, ["a", "b"], batch_rows=1000, random_state=epoch):
            model.partial_fit(X_chunk, Y_chunk, classes=[[0.0, 1.0], [0.0, 1.0]])
    assert list(model.feature_names_in_) == [f"x{j}" for j in range(5)]
    auc = masked_roc_auc_score(
        test[["a", "b"]], model.predict_proba(test.iloc[:, :5]), multioutput="raw_values"
    )
    assert min(auc) > 0.9, auc


# Runs in a fresh interpreter: the peak resident memory of one pass, over what
# the process held before it (after a warm-up pass over a small file, so that
# lazily loaded code is not counted).
MEMORY = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from sklearn_mmoe.datasets import iter_parquet

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    big, warm = sys.argv[1:3]
    for _ in iter_parquet(warm, ["y"], batch_rows=5_000):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current RSS
    before = status("VmRSS")
    rows = 0
    for X, Y in iter_parquet(big, ["y"], batch_rows=5_000):
        rows += len(X)
    print(rows, status("VmHWM") - before, pa.default_memory_pool().max_memory())
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                    reason="peak-RSS reset needs Linux's /proc/self/clear_refs")
def test_peak_memory_is_bounded_by_the_chunk_not_the_data(tmp_path):
    # 800,000 rows x 16 float64 columns: 98 MiB of data in 5,000-row groups;
    # one chunk of 5,000 rows is 0.6 MiB.
    rng = np.random.default_rng(0)
    n_rows, n_columns = 800_000, 16
    columns = {f"x{j}": rng.standard_normal(n_rows) for j in range(n_columns - 1)}
    table = pa.table({**columns, "y": (columns["x0"] > 0).astype(np.float64)})
    data_bytes = table.nbytes
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=5_000, compression="none")
    pq.write_table(table.slice(0, 20_000), tmp_path / "warm.parquet", row_group_size=5_000)
    del table, columns
    result = subprocess.run(
        [sys.executable, "-c", MEMORY, str(tmp_path / "big.parquet"), str(tmp_path / "warm.parquet")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows, rss_growth, arrow_peak = map(int, result.stdout.split())
    assert rows == n_rows
    # Reading the file whole would take at least data_bytes of both.
    assert rss_growth < data_bytes / 4, (rss_growth, data_bytes)
    assert arrow_peak < data_bytes / 10, (arrow_peak, data_bytes)


def test_bad_arguments(tmp_path):
    folder = write_files(tmp_path / "d", n_files=2, rows_per_file=5)
    with pytest.raises(ValueError, match="'batch_rows' parameter"):
        iter_parquet(folder, ["click"], batch_rows=0)
    with pytest.raises(TypeError, match="'batch_rows' parameter"):
        iter_parquet(folder, ["click"], batch_rows=2.5)
    with pytest.raises(TypeError, match="'path' parameter"):
        iter_parquet(3, ["click"], batch_rows=2)
    with pytest.raises(FileNotFoundError, match="path"):
        iter_parquet(tmp_path / "missing", ["click"], batch_rows=2)
    with pytest.raises(FileNotFoundError, match="path"):
        iter_parquet([folder / "part-0.parquet", tmp_path / "no.parquet"], ["click"], batch_rows=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no Parquet files"):
        iter_parquet(tmp_path / "empty", ["click"], batch_rows=2)
    with pytest.raises(ValueError, match="empty list"):
        iter_parquet([], ["click"], batch_rows=2)
    with pytest.raises(ValueError, match="more than once"):
        iter_parquet([folder / "part-0.parquet"] * 2, ["click"], batch_rows=2)
    with pytest.raises(ValueError, match="pass the directory itself"):
        iter_parquet([folder], ["click"], batch_rows=2)
    with pytest.raises(ValueError, match="target_columns is empty"):
        iter_parquet(folder, [], batch_rows=2)
    with pytest.raises(ValueError, match=r"target_columns: \['nope'\] not in the Parquet schema"):
        iter_parquet(folder, ["click", "nope"], batch_rows=2)
    with pytest.raises(ValueError, match="target_columns must be distinct"):
        iter_parquet(folder, ["click", "click"], batch_rows=2)
    with pytest.raises(ValueError, match=r"columns: \['z'\] not in the Parquet schema"):
        iter_parquet(folder, ["click"], batch_rows=2, columns=["x", "z"])
    with pytest.raises(ValueError, match="also target_columns"):
        iter_parquet(folder, ["click"], batch_rows=2, columns=["x", "click"])
    with pytest.raises(ValueError, match="No feature columns"):
        iter_parquet(folder, ["click"], batch_rows=2, columns=[])
    with pytest.raises(ValueError, match="rank and world_size go together"):
        iter_parquet(folder, ["click"], batch_rows=2, rank=0)
    with pytest.raises(ValueError, match="rank=2 must be smaller than world_size=2"):
        iter_parquet(folder, ["click"], batch_rows=2, rank=2, world_size=2, random_state=0)
    with pytest.raises(ValueError, match="random_state must be an int"):
        iter_parquet(folder, ["click"], batch_rows=2, rank=0, world_size=2)
    with pytest.raises(ValueError, match="2 Parquet file.*for 3 processes"):
        iter_parquet(folder, ["click"], batch_rows=2, rank=0, world_size=3, shuffle_files=False)
    pq.write_table(pa.table({"x": [1.0], "label": ["yes"]}), tmp_path / "s.parquet")
    with pytest.raises(TypeError, match="target_columns: column 'label' has type string"):
        iter_parquet(tmp_path / "s.parquet", ["label"], batch_rows=2)


def test_missing_pyarrow_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow.dataset", None)
    with pytest.raises(ImportError, match=r"sklearn-mmoe\[parquet\]"):
        iter_parquet(tmp_path, ["y"], batch_rows=2)

