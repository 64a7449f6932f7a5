"""Tensors for training and inference: batches are slices, never per-row items.

skorch's default iteration builds every batch from ``Dataset.__getitem__``
calls and a collate function, which costs as much as the model itself on
tabular data. Here a batch is one slice (or one ``index_select``) of
tensors that live on the training device, and a sparse input is densified one
batch at a time.
"""

import numpy as np
import scipy.sparse as sp
import torch

from . import _random

# Inference reads at most INFERENCE_CHUNK rows at a time and pads any chunk
# shorter than MIN_INFERENCE_ROWS. BLAS picks its kernel (and so its summation
# order) from the matrix shapes: a short matrix, e.g. one row through a
# one-column output layer, is summed differently from a long one. Measured
# here (MKL, 1 and 2 threads, several layer widths): a row's output differs in
# the last float32 bits below 16 to 32 rows, and is bit-identical at every
# height from 32 rows up, whether or not a multiple of anything. So with at
# least 128 rows per call, a row's output is bit-identical whatever else is
# predicted with it (tests/test_estimators.py checks this wherever the suite
# runs). One padded row costs ~0.4 ms of network time for the Census model;
# chunks of 2048 rows are as fast per row as one call over 100,000 rows
# (faster, in fact) and keep memory bounded.
MIN_INFERENCE_ROWS = 128
INFERENCE_CHUNK = 2048


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
    return X[index].to(device, non_blocking=True)


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
        labels = self.labels[index]
        return dense_rows(self.X, index, self.device), (labels[:, 0], labels[:, 1])

    def subset(self, index):
        """A dataset holding the rows ``index`` (a LongTensor)."""
        X = self.X[index.numpy()] if sp.issparse(self.X) else self.X[index]
        labels = self.labels[index]
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
    """

    def __init__(self, dataset, batch_size, shuffle=False, seed=0, first_epoch=0):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = first_epoch

    def __len__(self):
        return -(-len(self.dataset) // self.batch_size)

    def _permutation(self):
        generator = torch.Generator().manual_seed(_random.epoch_seed(self.seed, self.epoch))
        return torch.randperm(len(self.dataset), generator=generator).to(
            self.dataset.device
        )

    def __iter__(self):
        n, size = len(self.dataset), self.batch_size
        order = self._permutation() if self.shuffle else None
        self.epoch += 1
        for start in range(0, n, size):
            stop = min(start + size, n)
            index = slice(start, stop) if order is None else order[start:stop]
            yield self.dataset.batch(index)


#: The error for inputs the network's float32 arithmetic cannot hold.
FLOAT32_RANGE_MESSAGE = (
    f"X contains values beyond the float32 range (|x| > {np.finfo(np.float32).max:.3g}), "
    "which the network computes in; rescale X."
)


def _float32_chunk(X, index, device):
    """Rows ``index`` of a float64 array, cast to float32 one chunk at a time.

    Casting per chunk reads the user's float64 matrix once, instead of a
    whole-matrix range check and a whole-matrix cast; a value beyond the
    float32 range becomes infinite in the cast and is reported here.
    """
    with np.errstate(over="ignore"):  # reported below, as a ValueError
        chunk = torch.from_numpy(np.ascontiguousarray(X[index], dtype=np.float32))
    if not torch.isfinite(chunk).all():
        raise ValueError(FLOAT32_RANGE_MESSAGE)
    return chunk.to(device, non_blocking=True)


def inference_chunks(X, device):
    """Yield ``(chunk, rows)``: X's rows, at least 128 per chunk, on ``device``.

    Chunks hold :data:`INFERENCE_CHUNK` rows of ``X`` (validated: a float32
    tensor, a CSR matrix, or a finite float32 or float64 array, cast one
    chunk at a time); a shorter one (the last, or the only one) is padded
    with zero rows to :data:`MIN_INFERENCE_ROWS`, and ``rows`` says how many
    of its rows are real.
    """
    n = X.shape[0]
    per_chunk_cast = isinstance(X, np.ndarray) and X.dtype != np.float32
    if not per_chunk_cast and not isinstance(X, torch.Tensor):
        X = as_float32_rows(X)
    for start in range(0, n, INFERENCE_CHUNK):
        stop = min(start + INFERENCE_CHUNK, n)
        index = slice(start, stop)
        chunk = _float32_chunk(X, index, device) if per_chunk_cast else dense_rows(X, index, device)
        rows = stop - start
        if rows < MIN_INFERENCE_ROWS:
            padding = chunk.new_zeros((MIN_INFERENCE_ROWS - rows, chunk.shape[1]))
            chunk = torch.cat([chunk, padding])
        yield chunk, rows


def predict_logits(module, X, device):
    """Evaluate ``module`` on validated inputs, in chunks of at least 128 rows.

    Returns a float32 numpy array of logits ``(n_samples, n_tasks, n_out)``
    (see :func:`inference_chunks`). The module must already be in evaluation
    mode; nothing about it is changed, so concurrent calls are safe.
    """
    with torch.inference_mode():
        outputs = [module(chunk)[:rows] for chunk, rows in inference_chunks(X, device)]
    return torch.cat(outputs).cpu().numpy()
