"""Tensors for training and inference: batches are slices, never per-row items.

skorch's default iteration builds every batch from ``Dataset.__getitem__``
calls and a collate function, which costs as much as the model itself on
tabular data. Here a batch is one slice (or one ``index_select``) of
tensors that live on the training device, and a sparse input is densified one
batch at a time.
"""

import contextlib
import ctypes
import threading
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import assert_all_finite

from . import _distributed, _random
from .nn import EmbeddedNetwork

# Inference reads X in chunks of at most INFERENCE_CHUNK rows (fewer when a row
# is wide: at most INFERENCE_CHUNK_VALUES values in the widest per-row tensor,
# see _values_per_row) and pads any chunk
# shorter than MIN_INFERENCE_ROWS. BLAS picks its kernel (and so its summation
# order) from the matrix shapes: a short matrix, e.g. one row through a
# one-column output layer, is summed differently from a long one. Measured
# here (MKL, 1 and 2 threads, several layer widths): a row's output differs in
# the last float32 bits below 16 to 32 rows, and is bit-identical at every
# height from 32 rows up, whether or not a multiple of anything, and with 1 or
# 2 threads, for raw inputs and the quantile encoding: with at least 128 rows
# per call, such a row's output is bit-identical whatever else is predicted
# with it (tests/test_inference.py checks this wherever the suite runs). With
# a categorical column or the piecewise-linear and periodic encodings a row
# alone can still differ in its last bits from the same row in a long call
# (docs/performance.md, "Predict").
#
# Every chunk is a handful of OpenMP parallel regions (one or two per layer);
# when other processes hold the cores, each one waits for a descheduled pool
# thread. Chunks of 16,384 rows make 100,000 rows 7 chunks instead of 49 at
# the same speed per row on a quiet machine; an input that fits in one padded
# chunk runs on the calling thread alone (see single_thread).
MIN_INFERENCE_ROWS = 128
INFERENCE_CHUNK = 16384
INFERENCE_CHUNK_VALUES = 1 << 23  # 32 MB of float32 per chunk in the widest tensor


def as_float32_rows(X):
    """Float32 view of a validated 2-D input: a tensor, or CSR kept sparse."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float32)
    X = np.ascontiguousarray(X, dtype=np.float32)
    # torch warns on read-only arrays (memmaps, pandas copy-on-write
    # buffers); nothing here writes to X, but copy rather than warn.
    return torch.from_numpy(X if X.flags.writeable else X.copy())


def dense_rows(X, index, device):
    """Rows ``index`` (a slice or a LongTensor) of ``X`` as a dense tensor."""
    if sp.issparse(X):
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return torch.from_numpy(X[index].toarray()).to(device, non_blocking=True)
    return _rows(X, index).to(device, non_blocking=True)


def _rows(tensor, index):
    """``tensor[index]``; a LongTensor index through ``index_select`` (2.5 times
    faster than advanced indexing for a 512-row batch, same values)."""
    if isinstance(index, torch.Tensor):
        return tensor.index_select(0, index)
    return tensor[index]


class MultiTaskDataset(torch.utils.data.Dataset):
    """Inputs, targets and per-entry weights of a multi-task training set.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features) or scipy CSR matrix
        Float32 inputs. Dense inputs should already be on the training device;
        sparse ones stay on the host and are densified batch by batch.
    target : torch.Tensor of shape (n_samples, n_tasks)
        Encoded targets (class index as float, or the scaled regression
        target); any value where the weight is zero.
    weight : torch.Tensor of shape (n_samples, n_tasks)
        Mask times sample weight: zero where a label is missing.
    """

    def __init__(self, X, target, weight):
        self.X = X
        # One (n_samples, 2, n_tasks) tensor: a batch gathers both at once.
        self.labels = torch.stack((target, weight), dim=1)

    @property
    def device(self):
        return self.labels.device

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, i):
        return self.batch(slice(i, i + 1))

    def batch(self, index):
        """``(X, (target, weight))`` for the rows in ``index``."""
        labels = _rows(self.labels, index)
        return dense_rows(self.X, index, self.device), (labels[:, 0], labels[:, 1])

    def subset(self, index):
        """A dataset holding the rows ``index`` (a LongTensor)."""
        X = self.X[index.numpy()] if sp.issparse(self.X) else _rows(self.X, index)
        labels = _rows(self.labels, index)
        return MultiTaskDataset(X, labels[:, 0], labels[:, 1])


class BatchIterator:
    """Iterate over a :class:`MultiTaskDataset` in contiguous batches.

    skorch calls it as ``iterator(dataset, batch_size=..., **kwargs)`` once
    per ``fit``; each ``iter()`` is one epoch.

    Parameters
    ----------
    dataset : MultiTaskDataset
    batch_size : int
    shuffle : bool, default=False
        Draw a new permutation of the rows at every epoch.
    seed : int, default=0
        Seed of the permutations; epoch ``e``'s permutation depends only on
        ``(seed, first_epoch + e)``, so a fit resumed at an epoch sees the
        same batches as an uninterrupted one.
    first_epoch : int, default=0
        Number of the first epoch this iterator produces.
    distributed : {None, "global", "local"}, default=None
        Data-parallel training (:mod:`sklearn_mmoe._distributed`). ``"global"``:
        every rank holds the same rows and yields its share (a contiguous
        part, in rank order) of each of the single-process batches, which
        are the global batches: the ranks' shares of the last one may be
        empty. ``"local"``: each rank holds its own rows and yields its
        batches of ``ceil(batch_size / world_size)`` rows, then empty ones
        until every rank has yielded as many as the rank with the most.
    """

    def __init__(self, dataset, batch_size, shuffle=False, seed=0, first_epoch=0,
                 distributed=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = first_epoch
        self._world = _distributed.world() if distributed else None
        self._global = self._world is not None and distributed == "global"
        self._steps = None  # "local": the most batches of any rank
        if self._world is not None and distributed == "local":
            self.batch_size = -(-batch_size // self._world[1])
            self._steps = int(_distributed.reduced(
                [-(-len(dataset) // self.batch_size)], dataset.device, op="max"
            )[0])

    def __len__(self):
        return self._steps or -(-len(self.dataset) // self.batch_size)

    def _permutation(self):
        generator = torch.Generator().manual_seed(_random.epoch_seed(self.seed, self.epoch))
        return torch.randperm(len(self.dataset), generator=generator).to(
            self.dataset.device
        )

    def __iter__(self):
        n, size = len(self.dataset), self.batch_size
        order = self._permutation() if self.shuffle else None
        self.epoch += 1
        for start, stop in self._bounds(n, size):
            index = slice(start, stop) if order is None else order[start:stop]
            yield self.dataset.batch(index)

    def _bounds(self, n, size):
        """``(start, stop)`` of this rank's batches (in the epoch's order of the rows)."""
        bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
        if self._global:  # this rank's contiguous share of each global batch
            rank, ranks = self._world
            return [(a + (b - a) * rank // ranks, a + (b - a) * (rank + 1) // ranks)
                    for a, b in bounds]
        if self._steps is not None:  # empty batches until the rank with the most is done
            bounds += [(n, n)] * (self._steps - len(bounds))
        return bounds


#: The error for inputs the network's float32 arithmetic cannot hold.
FLOAT32_RANGE_MESSAGE = (
    f"X contains values beyond the float32 range (|x| > {np.finfo(np.float32).max:.3g}), "
    "which the network computes in; rescale X."
)


_NUMPY_CHECK_VALUES = 1 << 14


def _finite(cast, source=None):
    """``cast`` (float32 rows of ``source``, by default ``cast`` itself) if every
    value is finite, else raise.

    One sum of the chunk: it is finite only if every value is (NaN and
    infinity propagate), and an overflowing sum of finite values is told
    apart by an exact check. A non-finite value of a float32 cast of float64
    rows is either NaN or infinity in ``source`` (scikit-learn's message) or
    a finite value beyond the float32 range. A small chunk (a single-row
    prediction) is checked by numpy, whose call costs less than torch's two.
    """
    if cast.numel() <= _NUMPY_CHECK_VALUES:
        finite = bool(np.isfinite(cast.numpy()).all())
    else:
        finite = bool(torch.isfinite(cast.sum())) or bool(torch.isfinite(cast).all())
    if not finite:
        with np.errstate(over="ignore", invalid="ignore"):  # its sum of inf and -inf
            assert_all_finite(cast.numpy() if source is None else source, input_name="X")
        raise ValueError(FLOAT32_RANGE_MESSAGE)
    return cast


def _float32_chunk(X, index, device, out):
    """Rows ``index`` (a slice) of a float64 array, cast to float32 into ``out``.

    Casting per chunk reads the user's float64 matrix once, instead of a
    whole-matrix range check and a whole-matrix cast; a value beyond the
    float32 range becomes infinite in the cast and is reported by
    :func:`_finite`. The cast is torch's ``copy_`` (on the intra-op threads).
    Every chunk is cast into the same buffer ``out`` (one per call: no fresh
    pages to fault in per chunk). On 16,384 x 486 chunks this took 0.55x the
    time of numpy's ``copyto`` and ``isfinite(...).all()`` per 256-row block
    (2026-12-03).
    """
    rows = index.stop - index.start
    chunk = out[:rows]
    source = X[index]
    cast = torch.from_numpy(chunk)
    if all(step >= 0 for step in source.strides):
        cast.copy_(torch.from_numpy(source))
    else:  # torch cannot view negative strides
        with np.errstate(over="ignore"):  # reported by _finite, as a ValueError
            np.copyto(chunk, source, casting="same_kind")
    return _finite(cast, source).to(device, non_blocking=True)


def _chunk_rows(width):
    """Rows per inference chunk when a row's widest tensor holds ``width`` values."""
    return max(MIN_INFERENCE_ROWS, min(INFERENCE_CHUNK, INFERENCE_CHUNK_VALUES // max(width, 1)))


def _values_per_row(module, n_features):
    """Values in the widest tensor ``module`` computes per input row (an estimate).

    The input row, or a numeric encoding's expansion: the quantile and
    piecewise-linear encodings of :class:`sklearn_mmoe.nn.TabularEmbedding`
    compare every encoded value with its column's whole table
    (``quantile_lower``, ``bin_lower``), one value per table entry.
    """
    widest = n_features
    for name, buffer in module.named_buffers():
        if name.rpartition(".")[2] in ("quantile_lower", "bin_lower"):
            widest = max(widest, buffer.numel())
    return widest


def inference_chunks(X, device, width=None, pad=True):
    """Yield ``(chunk, rows)``: X's rows, at least 128 per chunk, on ``device``.

    Chunks hold up to :data:`INFERENCE_CHUNK` rows of ``X`` (fewer when a row
    is wide: at most :data:`INFERENCE_CHUNK_VALUES` values in a tensor of
    ``width`` values per row, by default X's width; ``X`` validated: a
    finite float32 tensor or CSR matrix, or a float32 or float64 array,
    which is checked (finite, within the float32 range: :func:`_finite`)
    and cast one chunk at a time); a shorter one (the last, or the only
    one) is padded with zero rows to :data:`MIN_INFERENCE_ROWS` (left to
    the caller with ``pad=False``, see :func:`pad_rows`), and ``rows`` says
    how many of its rows are real. The chunks of a float64 X share one buffer: a chunk is
    only valid until the next one is drawn.
    """
    n = X.shape[0]
    size = _chunk_rows(X.shape[1] if width is None else width)
    checked = isinstance(X, np.ndarray)  # dense: checked chunk by chunk
    per_chunk_cast = checked and X.dtype != np.float32
    if not per_chunk_cast and not isinstance(X, torch.Tensor):
        X = as_float32_rows(X)
    if per_chunk_cast:  # every chunk is cast into this one buffer, in turn
        buffer = np.empty((min(size, n), X.shape[1]), dtype=np.float32)
    for start in range(0, n, size):
        stop = min(start + size, n)
        index = slice(start, stop)
        if per_chunk_cast:
            chunk = _float32_chunk(X, index, device, buffer)
        else:
            if checked:  # a float32 array, viewed as a CPU tensor
                _finite(X[index])
            chunk = dense_rows(X, index, device)
        yield (pad_rows(chunk) if pad else chunk), stop - start


def pad_rows(chunk):
    """``chunk`` with zero rows appended up to :data:`MIN_INFERENCE_ROWS` rows."""
    rows = chunk.shape[0]
    if rows >= MIN_INFERENCE_ROWS:
        return chunk
    return torch.cat([chunk, chunk.new_zeros((MIN_INFERENCE_ROWS - rows, *chunk.shape[1:]))])


# ------------------------------------------------ one thread, this thread only
_thread_controls = None
_thread_controls_lock = threading.Lock()


def _torch_cpu_library():
    """ctypes handle of torch's CPU library (symbols resolve through its dependencies)."""
    folder = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        if (folder / name).is_file():
            return ctypes.CDLL(str(folder / name))
    raise OSError("torch's CPU library was not found")


def _find_thread_controls():
    """``(omp_set_num_threads, MKL_Set_Num_Threads_Local or None)`` of torch's runtimes.

    Both set a thread count for the calling thread only. They are looked up
    through torch's own CPU library, so they are the OpenMP runtime and MKL
    that torch calls, and used only if setting the OpenMP count demonstrably
    changes ``torch.get_num_threads()`` (torch built with OpenMP); otherwise
    ``None``.
    """
    try:
        library = _torch_cpu_library()
        omp_set = library.omp_set_num_threads
    except (OSError, AttributeError):
        return None
    current = torch.get_num_threads()  # also initialises this thread's count
    probe = 1 if current != 1 else 2
    omp_set(probe)
    try:
        if torch.get_num_threads() != probe:
            return None
    finally:
        omp_set(current)
    mkl_set = getattr(library, "MKL_Set_Num_Threads_Local", None)
    mkl_get = getattr(library, "MKL_Get_Max_Threads", None)
    if mkl_set is None or mkl_get is None:
        return omp_set, None
    previous = mkl_set(probe)  # returns this thread's previous count (0: none)
    try:
        works = mkl_get() == probe
    finally:
        mkl_set(previous)
    return omp_set, mkl_set if works else None


def _controls():
    global _thread_controls
    if _thread_controls is None:
        with _thread_controls_lock:
            if _thread_controls is None:
                _thread_controls = _find_thread_controls() or ()
    return _thread_controls


@contextlib.contextmanager
def single_thread():
    """Run the calling thread's torch operations on one thread, inside the block.

    ``torch.set_num_threads`` is process-wide (a thread that starts meanwhile
    takes its value), so it is not used. Instead the calling thread's own
    OpenMP and MKL thread counts are set to 1 and restored on exit: torch's
    elementwise kernels and MKL's GEMMs then run inline instead of waking the
    intra-op pool, while other threads, those started inside the block
    included, keep the user's setting. Where torch does not run on OpenMP (or
    its runtime cannot be reached), this does nothing.
    """
    controls = _controls()
    threads = torch.get_num_threads()
    if not controls or threads == 1:
        yield
        return
    omp_set, mkl_set = controls
    omp_set(1)
    previous = mkl_set(1) if mkl_set is not None else None
    try:
        yield
    finally:
        if mkl_set is not None:
            mkl_set(previous)
        omp_set(threads)


def _row_by_row_embedding(module):
    """``(embedding, network)`` of ``module`` when its input embedding is computed row by row.

    Each row's embedding is then bit-identical whatever the chunk's height:
    elementwise arithmetic, gathers and reductions within a row (the
    quantile and piecewise-linear encodings, the categorical tables). The
    periodic encoding is not (its per-column linear layers are a batched
    matrix product, whose summation order follows the height), and neither
    is a module without an embedding: ``(None, module)``.
    """
    if not isinstance(module, EmbeddedNetwork) or getattr(module.embedding, "periodic", True):
        return None, module
    return module.embedding, module.network


def predict_logits(module, X, device):
    """Evaluate ``module`` on validated inputs, in chunks of at least 128 rows.

    Returns a float32 numpy array of logits ``(n_samples, n_tasks, n_out)``
    (see :func:`inference_chunks`). An input that fits in one padded chunk is
    computed on the calling thread alone (:func:`single_thread`): starting
    the intra-op pool would cost more than the arithmetic, and far more when
    other processes hold the cores. A short chunk is padded after a row-by-row
    input embedding (:func:`_row_by_row_embedding`), not before: the padding
    only matters to the matrix products behind it, and a single row then
    costs one row's encoding. The module must already be in evaluation mode;
    nothing about it is changed, so concurrent calls are safe.
    """
    n = X.shape[0]
    small = n <= MIN_INFERENCE_ROWS and torch.device(device).type == "cpu"
    embedding, network = _row_by_row_embedding(module)
    # the chunk height only matters when X does not fit in one chunk
    width = _values_per_row(module, X.shape[1]) if n > MIN_INFERENCE_ROWS else None
    with torch.inference_mode(), single_thread() if small else contextlib.nullcontext():
        chunks = inference_chunks(X, device, width, pad=embedding is None)
        if embedding is None:
            outputs = [module(chunk)[:rows] for chunk, rows in chunks]
        else:
            outputs = [network(pad_rows(embedding(chunk)))[:rows] for chunk, rows in chunks]
    return torch.cat(outputs).cpu().numpy()
