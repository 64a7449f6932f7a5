"""Sparse input: ways to feed CSR rows to the network, measured standalone.

A companion to ``bench_sparse.py``. It does not change the package; it
measures alternatives to what ``sklearn_mmoe._data.dense_rows`` does today
for a CSR input (``torch.from_numpy(X[idx].toarray())`` with ``idx`` a random
index array, once per batch), on the Census-Income group 1 one-hot CSR matrix
(199,523 x 486, 38 non-zeros per row, float32), batch 1024, 2 threads.

Table 1, building the dense float32 batches of one epoch (195 batches, a new
random permutation per repeat):

* ``scipy X[idx].toarray()``: today's path;
* ``pre-permuted CSR slices``: ``Xp = X[perm]`` once per epoch, then
  ``Xp[start:stop].toarray()`` (contiguous CSR slices are cheap);
* ``numpy scatter``: gather the rows' (column, value) pairs through
  ``indptr`` and write them into ``np.zeros((b, d))`` with one fancy-index
  assignment;
* ``torch index_put_``: the same, in torch, into ``torch.zeros(b, d)``;
* ``torch sparse COO index_select``: ``torch.index_select`` on a sparse COO
  tensor of all rows, then ``.to_dense()`` (CSR tensors have no
  ``index_select`` in torch 2.13);
* ``dense tensor[idx]``: the dense reference, a gather from the densified
  370 MB float32 tensor.

Table 2, one training epoch of this package's ``sklearn_mmoe.nn.MMoE``
(8 experts x 16, towers 8, Adam 1e-3, masked loss as in ``bench_fit.py``'s
plain loop) with the batches fed in different ways:

* ``dense tensor``: slices of a random permutation of the dense tensor
  (reference);
* ``CSR, X[idx].toarray()`` and ``CSR, pre-permuted slices``: dense
  batches built from the CSR matrix, as in table 1;
* ``CSR, sparse first layer (embedding_bag)`` and
  ``CSR, sparse first layer (torch.sparse.mm)``: no dense batch at all; the
  first layer of the experts and of the gates (one ``(b, 486) @ (486, 144)``
  product) is computed from the CSR batch with ``F.embedding_bag(...,
  per_sample_weights=values, mode="sum")`` or with ``torch.sparse.mm`` on a
  COO batch, using the module's own parameters; the rest of the module runs
  unchanged. Both give the dense forward's outputs to float32 rounding
  (checked before timing).

Measurements during which other processes used more than 10 % of the CPUs
are dropped and run again (``benchmarks/_quiet.py``).

Run::

    python benchmarks/bench_sparse_batches.py --data-home ~/scikit_learn_data

(about two minutes on 2 CPU cores).
"""

import os
import statistics
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import torch
import torch.nn.functional as F
from _cli import bench_parser
from _quiet import Sampler, wait_quiet
from bench_sparse import load_census_csr

from sklearn_mmoe import nn as mtnn

BATCH = 1024


# ------------------------------------------------------- batch builders
def positions(indptr, idx):
    """Positions in ``indices``/``data`` of the non-zeros of rows ``idx``, and their row in the batch."""
    start = indptr[idx]
    lens = indptr[idx + 1] - start
    rows = np.repeat(np.arange(len(idx)), lens)
    offsets = np.cumsum(lens) - lens
    pos = np.arange(lens.sum()) - np.repeat(offsets - start, lens)
    return rows, pos


def scipy_rows(X, idx):
    return torch.from_numpy(X[idx].toarray())


def numpy_scatter(X, idx):
    rows, pos = positions(X.indptr, idx)
    out = np.zeros((len(idx), X.shape[1]), dtype=np.float32)
    out[rows, X.indices[pos]] = X.data[pos]
    return torch.from_numpy(out)


def torch_index_put(T, idx):
    indptr, indices, data, d = T
    start = indptr[idx]
    lens = indptr[idx + 1] - start
    rows = torch.repeat_interleave(torch.arange(len(idx)), lens)
    offsets = torch.cumsum(lens, 0) - lens
    pos = torch.arange(int(lens.sum())) - torch.repeat_interleave(offsets - start, lens)
    return torch.zeros(len(idx), d).index_put_((rows, indices[pos]), data[pos])


def epoch_batches(kind, data, perm):
    """All dense batches of one epoch, built the ``kind`` way."""
    n = len(perm)
    if kind == "scipy X[idx].toarray()":
        for s in range(0, n, BATCH):
            scipy_rows(data, perm[s : s + BATCH])
    elif kind == "pre-permuted CSR slices":
        Xp = data[perm]
        for s in range(0, n, BATCH):
            torch.from_numpy(Xp[s : s + BATCH].toarray())
    elif kind == "numpy scatter":
        for s in range(0, n, BATCH):
            numpy_scatter(data, perm[s : s + BATCH])
    elif kind == "torch index_put_":
        p = torch.from_numpy(perm)
        for s in range(0, n, BATCH):
            torch_index_put(data, p[s : s + BATCH])
    elif kind == "torch sparse COO index_select":
        p = torch.from_numpy(perm)
        for s in range(0, n, BATCH):
            torch.index_select(data, 0, p[s : s + BATCH]).to_dense()
    elif kind == "dense tensor[idx]":
        p = torch.from_numpy(perm)
        for s in range(0, n, BATCH):
            data[p[s : s + BATCH]]


# ---------------------------------------------------- sparse first layer
def first_layer_weight(module):
    """The experts' and the gates' first layers as one (d, 144) matrix and bias."""
    e, g = module.experts.layers[0], module.gates.layers[0]
    d = e.in_features
    weight = torch.cat([e.weight.view(d, -1), g.weight.view(d, -1)], dim=1)
    bias = torch.cat([e.bias.view(-1), g.bias.view(-1)])
    return weight, bias, e, g


def moe_from_first(module, h, b):
    """The rest of ``MixtureOfExperts.forward`` given the first-layer product ``h``."""
    _, _, e, g = first_layer_weight(module)
    ne = e.n_parallel * e.out_features
    experts = h[:, :ne].view(b, e.n_parallel, e.out_features).transpose(0, 1)
    for layer in module.experts.layers[1:]:
        experts = layer(experts)
    gates = h[:, ne:].view(b, g.n_parallel, g.out_features).transpose(0, 1)
    for layer in module.gates.layers[1:]:
        gates = layer(gates)
    mixed = torch.einsum("gbe,ebd->gbd", torch.softmax(gates, dim=-1), experts)
    return module.towers(mixed).transpose(0, 1)


def forward_embedding_bag(module, csr):
    weight, bias, _, _ = first_layer_weight(module)
    indptr, indices, data = (torch.from_numpy(a) for a in (csr.indptr, csr.indices, csr.data))
    h = F.embedding_bag(indices, weight, indptr[:-1], mode="sum", per_sample_weights=data) + bias
    return moe_from_first(module, h, csr.shape[0])


def forward_sparse_mm(module, csr):
    weight, bias, _, _ = first_layer_weight(module)
    coo = csr.tocoo()
    x = torch.sparse_coo_tensor(
        torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)), torch.from_numpy(coo.data),
        csr.shape, is_coalesced=True,
    )
    h = torch.sparse.mm(x, weight) + bias
    return moe_from_first(module, h, csr.shape[0])


def train_epoch(kind, module, Xs, Xd, Y, seed):
    """One epoch of the plain loop; the batches of X are fed the ``kind`` way."""
    torch.manual_seed(seed)
    loss_fn = mtnn.MaskedMultiTaskLoss(["binary", "binary"], [1, 1])
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    weight = torch.ones(BATCH, Y.shape[1])
    n = Y.shape[0]
    start = time.perf_counter()
    perm = torch.randperm(n)
    perm_np = perm.numpy()
    Xp = Xs[perm_np] if kind != "dense tensor" and kind != "CSR, X[idx].toarray()" else None
    for s in range(0, n, BATCH):
        idx = perm[s : s + BATCH]
        if kind == "dense tensor":
            out = module(Xd[idx])
        elif kind == "CSR, X[idx].toarray()":
            out = module(torch.from_numpy(Xs[perm_np[s : s + BATCH]].toarray()))
        elif kind == "CSR, pre-permuted slices":
            out = module(torch.from_numpy(Xp[s : s + BATCH].toarray()))
        elif kind == "CSR, sparse first layer (embedding_bag)":
            out = forward_embedding_bag(module, Xp[s : s + BATCH])
        elif kind == "CSR, sparse first layer (torch.sparse.mm)":
            out = forward_sparse_mm(module, Xp[s : s + BATCH])
        y = Y[idx]
        loss = loss_fn(out, y, weight[: len(idx)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main(argv=None):
    parser = bench_parser(__doc__, repeats=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)  # torch's "sparse is beta" notices
    load_at_start = os.getloadavg()[0]

    Xs, Y = load_census_csr(args.data_home)
    Xs = Xs.astype(np.float32)
    Xs.sort_indices()
    Xd = torch.from_numpy(Xs.toarray())
    Yt = torch.from_numpy(Y)
    n, d = Xs.shape
    n_batches = -(-n // BATCH)
    torch_csr = (
        torch.from_numpy(Xs.indptr.astype(np.int64)), torch.from_numpy(Xs.indices.astype(np.int64)),
        torch.from_numpy(Xs.data), d,
    )
    coo = Xs.tocoo()
    torch_coo = torch.sparse_coo_tensor(
        torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)), torch.from_numpy(coo.data), (n, d)
    ).coalesce()

    # Every builder gives the same batch.
    idx = np.random.default_rng(0).permutation(n)[:BATCH]
    ref = Xd[torch.from_numpy(idx)]
    for got in (scipy_rows(Xs, idx), numpy_scatter(Xs, idx), torch_index_put(torch_csr, torch.from_numpy(idx)),
                torch.index_select(torch_coo, 0, torch.from_numpy(idx)).to_dense()):
        assert torch.equal(got, ref)
    # The sparse first layers give the dense forward's outputs.
    module = mtnn.MMoE(d, [1, 1], n_experts=8, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,))
    with torch.no_grad():
        dense_out = module(ref)
        for fwd in (forward_embedding_bag, forward_sparse_mm):
            err = (fwd(module, Xs[idx]) - dense_out).abs().max().item()
            assert err < 1e-5, (fwd.__name__, err)

    builders = {
        "scipy X[idx].toarray()": Xs,
        "pre-permuted CSR slices": Xs,
        "numpy scatter": Xs,
        "torch index_put_": torch_csr,
        "torch sparse COO index_select": torch_coo,
        "dense tensor[idx]": Xd,
    }
    kinds = [
        "dense tensor", "CSR, X[idx].toarray()", "CSR, pre-permuted slices",
        "CSR, sparse first layer (embedding_bag)", "CSR, sparse first layer (torch.sparse.mm)",
    ]
    slow = "torch sparse COO index_select"  # ~10 s an epoch: measured once
    names = [f"build {b}" for b in builders if b != slow] + [f"epoch {k}" for k in kinds]
    sampler = Sampler(names, args.repeats)
    seeds = dict.fromkeys(names, 0)

    def build(name, seed):
        perm = np.random.default_rng(seed).permutation(n)
        start = time.perf_counter()
        epoch_batches(name, builders[name], perm)
        return time.perf_counter() - start

    def epoch(kind, seed):
        torch.manual_seed(seed)
        module = mtnn.MMoE(d, [1, 1], n_experts=8, expert_hidden_sizes=(16,), tower_hidden_sizes=(8,))
        return train_epoch(kind, module, Xs, Xd, Yt, seed)

    for name in sampler:
        seeds[name] += 1
        kind, what = name.split(" ", 1)
        sampler.measure(name, build if kind == "build" else epoch, what, seeds[name])
    wait_quiet()
    slow_t = build(slow, 0)
    build_t = {b: (sampler.values(f"build {b}") if b != slow else [slow_t]) for b in builders}
    epoch_t = {k: sampler.values(f"epoch {k}") for k in kinds}

    print(f"Census-Income group 1: CSR {Xs.shape} float32, {Xs.nnz / n:.0f} non-zeros per row; batch {BATCH}, "
          f"{args.threads} threads; load average at the start: {load_at_start:.2f}")
    print(f"medians of {args.repeats} clean measurements ({slow}: one); {sampler.summary()}")
    print()
    print(f"1. building the {n_batches} dense batches of one epoch")
    print(f"{'method':<34}{'s / epoch':>10}{'ms / batch':>12}{'/ today':>9}")
    today = statistics.median(build_t["scipy X[idx].toarray()"])
    for name, v in build_t.items():
        m = statistics.median(v)
        print(f"{name:<34}{m:>10.3f}{1e3 * m / n_batches:>12.3f}{m / today:>9.2f}")
    print()
    print("2. one training epoch of sklearn_mmoe.nn.MMoE (8 x 16, towers 8, Adam), plain loop")
    print(f"{'input':<44}{'s / epoch':>10}{'/ dense':>9}")
    dense = statistics.median(epoch_t["dense tensor"])
    for kind, v in epoch_t.items():
        m = statistics.median(v)
        print(f"{kind:<44}{m:>10.3f}{m / dense:>9.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores; above ~2 the timings are contended)")


if __name__ == "__main__":
    main()
