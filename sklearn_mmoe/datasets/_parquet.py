"""Stream a Parquet data set in chunks, for training with ``partial_fit``.

Reading is done by ``pyarrow.dataset`` (the optional ``parquet`` extra).
"""

# SPDX-License-Identifier: BSD-3-Clause

import itertools
import os
import sys
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["iter_parquet"]


def _pyarrow():
    """pyarrow and pyarrow.dataset, or an ImportError that says how to install them."""
    try:
        import pyarrow
        import pyarrow.dataset
    except ImportError as exc:
        raise ImportError(
            f"iter_parquet needs pyarrow ({exc}); install it with "
            "pip install 'sklearn-mmoe[parquet]'."
        ) from None
    return pyarrow, pyarrow.dataset


def _process_group():
    """(rank, world size) of the initialised torch.distributed process group, or (0, 1)."""
    # No process group can exist unless torch was imported: reading data does
    # not import it.
    if "torch" not in sys.modules:
        return 0, 1
    from .._distributed import world

    return world() or (0, 1)


def _shard(rank, world_size, random_state, shuffle_files):
    """This process's rank and the world size: the arguments, else the process group."""
    if (rank is None) != (world_size is None):
        raise ValueError(
            f"rank and world_size go together: got rank={rank!r}, world_size={world_size!r}."
        )
    if rank is None:
        rank, world_size = _process_group()
    elif rank >= world_size:
        raise ValueError(f"rank={rank} must be smaller than world_size={world_size}.")
    if world_size > 1 and shuffle_files and not isinstance(random_state, Integral):
        raise ValueError(
            f"random_state must be an int when the files are shuffled and shared among "
            f"{world_size} processes, got {random_state!r}: every rank must draw the same "
            "file order for the shards to be disjoint (pass e.g. random_state=seed + epoch)."
        )
    return rank, world_size


def _discover(ds, path):
    """The Parquet files that ``path`` names, in a fixed order, and their dataset."""
    if isinstance(path, (str, os.PathLike)):
        source = os.fspath(path)
    else:
        source = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in path]
        if not source:
            raise ValueError("path is an empty list: give at least one Parquet file.")
        bad = [p for p in source if not isinstance(p, str)]
        if bad:
            raise TypeError(f"path: a list must hold file paths (str or os.PathLike), got {bad[0]!r}.")
        if len(set(source)) != len(source):
            raise ValueError("path lists a file more than once: its rows would be read twice.")
    try:
        dataset = ds.dataset(source, format="parquet")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"path: no such file or directory: {exc}") from None
    except IsADirectoryError:
        raise ValueError(
            "path: a list must name Parquet files; to read a directory, pass the "
            "directory itself."
        ) from None
    # Directory listings come in no guaranteed order; a list keeps the caller's.
    files = sorted(dataset.files) if isinstance(source, str) else list(dataset.files)
    if not files:
        raise ValueError(f"path: no Parquet files found in {source!r}.")
    return dataset, files


def _checked_names(names, argument, schema):
    """``names`` as a list of distinct columns of ``schema``, or a ValueError naming ``argument``."""
    names = list(names)
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        raise ValueError(f"{argument} must be distinct column names, got {names!r}.")
    missing = [name for name in names if name not in schema.names]
    if missing:
        raise ValueError(
            f"{argument}: {missing} not in the Parquet schema (columns: {schema.names})."
        )
    return names


def _column_names(target_columns, columns, schema):
    """Feature and target column names, checked against ``schema``."""
    names = [target_columns] if isinstance(target_columns, str) else target_columns
    if not names:
        raise ValueError("target_columns is empty: name at least one target column.")
    names = _checked_names(names, "target_columns", schema)
    if columns is None:
        # A DataFrame index that pandas stored as a column holds row labels, not a feature.
        index = [
            name for name in (schema.pandas_metadata or {}).get("index_columns", [])
            if isinstance(name, str)
        ]
        features = [name for name in schema.names if name not in names and name not in index]
    else:
        features = _checked_names(columns, "columns", schema)
        overlap = [name for name in features if name in names]
        if overlap:
            raise ValueError(f"columns {overlap} are also target_columns: a target is not a feature.")
    if not features:
        raise ValueError("No feature columns: columns is empty or every column is a target.")
    return features, names


def _check_target_types(pa, schema, targets):
    for name in targets:
        kind = schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind) or pa.types.is_null(kind)
        ):
            raise TypeError(
                f"target_columns: column {name!r} has type {kind}; targets are read as "
                "float labels (null = missing), so they must be numbers or booleans. "
                "Encode other labels as numbers when writing the files."
            )


def _row_groups(dataset, columns):
    """The tables of ``dataset``'s row groups, file after file, in order.

    One row group is read at a time, when the previous one has been consumed:
    pyarrow's scanner (``Dataset.to_batches``) reads ahead in a background
    thread, and a consumer as slow as a training step let it buffer most of a
    file (measured: 39 MB of a 61 MB file of 5,000-row groups, batches of
    10,000 rows).
    """
    for fragment in dataset.get_fragments():  # the order of the list of files
        for piece in fragment.split_by_row_group():
            yield piece.to_table(schema=dataset.schema, columns=columns)


def _chunks(pa, tables, sizes, features, targets, squeeze):
    """``(X, Y)`` chunks of the rows of ``tables``, of the successive ``sizes``
    (then of what is left)."""
    sizes = iter(sizes)
    size, pending, n_pending = next(sizes, None), [], 0
    for table in tables:
        while table.num_rows:
            take = table.num_rows if size is None else min(size - n_pending, table.num_rows)
            pending.append(table.slice(0, take))
            n_pending += take
            table = table.slice(take)
            if n_pending == size:
                yield _to_xy(pa, pending, features, targets, squeeze)
                size, pending, n_pending = next(sizes, None), [], 0
    if n_pending:
        yield _to_xy(pa, pending, features, targets, squeeze)


def _chunk_sizes(ds, dataset, shards, rank, batch_rows):
    """Sizes of this rank's chunks: as many chunks on every rank, none larger than ``batch_rows``.

    Data-parallel ``partial_fit`` steps every process together, so each rank
    must make as many calls: as many as the rank with the most rows (counted
    from the files' metadata) needs for chunks of at most ``batch_rows``.
    Every rank cuts its own rows into that many near-equal chunks.
    """
    rows = [
        ds.dataset(files, format="parquet", filesystem=dataset.filesystem,
                   schema=dataset.schema).count_rows()
        for files in shards
    ]
    n_chunks = max(-(-n // batch_rows) for n in rows)
    if min(rows) < n_chunks:
        raise ValueError(
            f"The processes' shares of the files hold {min(rows)} to {max(rows)} rows: with "
            f"batch_rows={batch_rows}, each must cut {n_chunks} chunks (as many calls of "
            "partial_fit on every process), which the smallest share cannot. Write files of "
            "more even sizes, or raise batch_rows."
        )
    mine = rows[rank]
    return [mine * (i + 1) // n_chunks - mine * i // n_chunks for i in range(n_chunks)]


def _to_xy(pa, tables, features, targets, squeeze):
    table = pa.concat_tables(tables)
    # Without the pandas metadata: the columns asked for, and a fresh RangeIndex.
    X = table.select(features).to_pandas(ignore_metadata=True)
    Y = np.empty((table.num_rows, len(targets)), dtype=np.float64)
    for j, name in enumerate(targets):
        # A null becomes NaN: the estimators' missing label.
        Y[:, j] = table.column(name).cast(pa.float64()).to_numpy()
    return X, (Y[:, 0] if squeeze else Y)


@validate_params(
    {
        "path": [str, os.PathLike, list, tuple],
        "target_columns": [str, list, tuple],
        "batch_rows": [Interval(Integral, 1, None, closed="left")],
        "columns": [list, tuple, None],
        "shuffle_files": ["boolean"],
        "random_state": ["random_state"],
        "rank": [Interval(Integral, 0, None, closed="left"), None],
        "world_size": [Interval(Integral, 1, None, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
def iter_parquet(
    path,
    target_columns,
    *,
    batch_rows,
    columns=None,
    shuffle_files=True,
    random_state=None,
    rank=None,
    world_size=None,
):
    """Iterate over a Parquet data set in ``(X, Y)`` chunks of at most `batch_rows` rows.

    This is the way to train on data larger than memory: pass each chunk to
    ``partial_fit`` (one call per chunk, one pass over the files per epoch).
    Only the chunk being returned and the Parquet row group it is cut from
    are held in memory, so the peak memory depends on `batch_rows` and on
    the files' row-group size, not on the size of the data set (see the
    notes). Reading is done by ``pyarrow.dataset``; install it with
    ``pip install 'sklearn-mmoe[parquet]'``.

    Files are read one after another. When `shuffle_files` is true, their
    order is drawn anew on each call, from `random_state`. **Rows within a file
    keep their order**, and chunks are cut from consecutive rows: to shuffle
    rows, write the files with their rows shuffled, or write many smaller
    files. Each ``partial_fit`` call also shuffles the rows of its chunk into
    mini-batches.

    Under an initialised :mod:`torch.distributed` process group (``torchrun``,
    Accelerate, Ray Train), each process reads only its shard of the files:
    after the shuffle, which every rank draws alike from the same int
    `random_state`, rank ``r`` of ``w`` reads the files at positions ``i`` with
    ``i % w == r``. The shards are disjoint and together cover every file.
    `rank` and `world_size` override the process group.

    Parameters
    ----------
    path : str, path-like, or list of them
        A Parquet file, a directory (searched recursively for data files;
        names starting with ``"."`` or ``"_"`` are skipped), or a list of
        files. Anything ``pyarrow.dataset.dataset`` accepts as a source,
        including URIs such as ``"s3://bucket/prefix"``.

    target_columns : str or list of str
        The label columns, read as floats: integers and booleans are
        converted, and nulls become NaN (a missing label, which the
        estimators mask out of the loss). A single name gives a 1-D `Y`, a
        list a 2-D one with one column per task, in this order.

    batch_rows : int
        Number of rows per chunk. Every chunk has exactly this many rows
        except the last one of the pass, which has what is left; chunks span
        file boundaries. When the files are shared among several processes,
        every rank cuts its rows into as many near-equal chunks of at most
        `batch_rows` rows (see the notes).

    columns : list of str, default=None
        The feature columns, in this order. None: every column that is not a
        target, in the files' order, except a DataFrame index that pandas
        stored in the files (row labels, not a feature; name it here to use
        it).

    shuffle_files : bool, default=True
        Whether to visit the files in a random order (otherwise: the order of
        the list, or the sorted paths of a directory).

    random_state : int, RandomState instance or None, default=None
        Draws the file order. Pass an int for the same order on every call,
        e.g. ``random_state=epoch`` for a new, reproducible order per epoch.
        Must be an int when the files are shared among several processes.

    rank, world_size : int, default=None
        This process's rank and the number of processes sharing the files;
        both or neither. None: read from :mod:`torch.distributed` when its
        process group is initialised, otherwise 0 and 1 (every file).

    Returns
    -------
    chunks : iterator of (X, Y)
        `X` is a :class:`pandas.DataFrame` of the feature columns (a
        dictionary-encoded column comes out as a pandas ``category``), with
        a fresh ``RangeIndex``; `Y` is a float64 ndarray of shape
        ``(n_rows,)`` or ``(n_rows, n_tasks)``. The arguments and the files'
        schema are checked when the function is called, before the first
        chunk is read.

    Raises
    ------
    FileNotFoundError
        If `path` (or a file in its list) does not exist.
    ValueError
        If `path` holds no Parquet file, if a column named does not exist,
        or if there are fewer files than processes.
    TypeError
        If a target column is not numeric or boolean.

    Notes
    -----
    **Memory.** The files are read one row group at a time, only when the
    chunk being built needs it, so a pass holds about one chunk (its Arrow
    data and its pandas copy) and the row group being cut. Parquet files
    written by pyarrow have row groups of up to 1,048,576 rows by default;
    with chunks smaller than that, write smaller row groups to bound the
    memory by the chunk size: ``pyarrow.parquet.write_table(table, where,
    row_group_size=batch_rows)``. Reading does not overlap with training:
    the next row group is read when the next chunk is asked for.

    **First chunk.** The first ``partial_fit`` call of a fresh estimator
    sets up its tasks, input encoding (numeric quantiles, categories) and
    classes from that chunk, so make the first chunk large enough to be
    representative, and pass ``classes=`` for classification tasks.

    **Several processes.** A rank gets ``len(files) // world_size`` files or
    one more. Data-parallel ``partial_fit`` steps every process together, so
    every rank yields the same number of chunks, as many as the rank with
    the most rows (counted from the files' metadata) needs for chunks of at
    most `batch_rows` rows; each rank cuts its rows into that many near-equal
    chunks (a ValueError if a rank has fewer rows than that). Within a call, a process
    with fewer rows takes empty steps until the others are done; files of
    similar sizes keep that waste small.

    Examples
    --------
    One file of 10 rows and two tasks, the second with missing labels:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_mmoe.datasets import iter_parquet
    >>> frame = pd.DataFrame({
    ...     "x0": np.arange(10.0), "x1": np.arange(10.0) ** 2,
    ...     "click": [0, 1] * 5, "buy": [0.0, None] * 5,
    ... })
    >>> folder = tempfile.TemporaryDirectory()
    >>> frame.to_parquet(Path(folder.name) / "part-0.parquet")
    >>> for X, Y in iter_parquet(folder.name, ["click", "buy"], batch_rows=4):
    ...     print(list(X.columns), X.shape, Y.shape)
    ['x0', 'x1'] (4, 2) (4, 2)
    ['x0', 'x1'] (4, 2) (4, 2)
    ['x0', 'x1'] (2, 2) (2, 2)
    >>> Y
    array([[ 0.,  0.],
           [ 1., nan]])
    >>> folder.cleanup()
    """
    pa, ds = _pyarrow()
    rank, world_size = _shard(rank, world_size, random_state, shuffle_files)
    dataset, files = _discover(ds, path)
    features, targets = _column_names(target_columns, columns, dataset.schema)
    _check_target_types(pa, dataset.schema, targets)
    if len(files) < world_size:
        raise ValueError(
            f"path has {len(files)} Parquet file(s) for {world_size} processes: each "
            "rank reads whole files, so write at least as many files as processes."
        )
    if shuffle_files:
        files = [files[i] for i in check_random_state(random_state).permutation(len(files))]
    shards = [files[r::world_size] for r in range(world_size)]
    shard = ds.dataset(
        shards[rank], format="parquet", filesystem=dataset.filesystem, schema=dataset.schema,
    )
    sizes = (
        itertools.repeat(batch_rows) if world_size == 1
        else _chunk_sizes(ds, dataset, shards, rank, batch_rows)
    )
    columns = features + [name for name in targets if name not in features]
    return _chunks(
        pa, _row_groups(shard, columns), sizes, features, targets,
        isinstance(target_columns, str),
    )
