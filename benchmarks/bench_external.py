"""Fit speed against DeepCTR-Torch and torch-rechub, in one process.

An extension of ``bench_fit.py`` (MMoE only). On Census-Income (KDD) group 1
(199,523 rows; income > 50K and never married) it times one training epoch
of the same architecture in four implementations: 8 experts of one 16-unit
ReLU layer, one linear softmax gate per task, towers of one 8-unit ReLU
layer and one output logit, batch 1024, Adam with learning rate 1e-3, no
weight decay or L2 penalty, 2 CPU threads:

* ``plain``: the hand-written PyTorch loop of ``bench_fit.py`` (random
  permutation, tensor slicing, all experts in one ``nn.Linear``);
* ``estimator``: ``MMoEClassifier(max_epochs=1).fit(X, Y)``, everything
  included (validation, label encoding, set-up, skorch's loop);
* ``deepctr``: ``deepctr_torch.models.MMOE`` (``gate_dnn_hidden_units=()``,
  ``l2_reg_embedding=0``, ``l2_reg_linear=0``), compiled with
  ``torch.optim.Adam(lr=1e-3)`` and two ``"binary_crossentropy"`` losses,
  timed around ``model.fit(x, y, batch_size=1024, epochs=1, verbose=0)``
  (its documented training entry point; ``verbose=0`` skips the per-batch
  training metrics, which would only slow it down);
* ``rechub``: ``torch_rechub.models.multi_task.MMOE`` (``n_expert=8``,
  ``expert_params={"dims": [16]}``, towers ``{"dims": [8]}``) trained by
  ``torch_rechub.trainers.MTLTrainer`` (Adam, lr 1e-3, weight_decay 0), timed
  around building the ``DataLoader(TorchDataset(x, y), batch_size=1024,
  shuffle=True)`` that its ``DataGenerator`` builds and one
  ``trainer.train_one_epoch(loader)``: the training epoch of
  ``MTLTrainer.fit`` without the validation pass and the ``torch.save`` that
  ``fit`` adds after each epoch. torch-rechub's ``MLP`` puts a
  ``BatchNorm1d`` after every linear layer (experts, gates and towers) and
  this cannot be switched off: its network does a little more work.

Inputs. ``plain`` and ``estimator`` read the one-hot matrix of ``bench_fit.py``
(31 categorical columns one-hot encoded, 7 numerical ones standardised: 486
float32 columns). The two libraries want feature-column specs; they are
given two encodings (``--encodings``):

* ``native``: their documented Census set-up (torch-rechub's
  ``examples/ranking/run_census.py`` and DeepCTR-Torch's multitask example):
  each categorical column label-encoded to int (``OrdinalEncoder``) and
  declared as a sparse feature with a 4-dimensional embedding
  (``SparseFeat(name, vocabulary_size, embedding_dim=4)`` /
  ``SparseFeature(name, vocab_size, embed_dim=4)``), each numerical column
  standardised and declared as a 1-dimensional dense feature
  (``DenseFeat(name, 1)`` / ``DenseFeature(name)``). The experts and gates
  then read 31 * 4 + 7 = 131 inputs instead of 486: less arithmetic than
  the one-hot layer, plus 31 embedding look-ups per row. Inputs are passed
  as a dict of one numpy column per feature (DeepCTR-Torch concatenates
  them into one float64 array inside ``fit``; torch-rechub indexes the dict
  row by row in its ``Dataset``).
* ``onehot``: the same 486-column float32 one-hot matrix as ``plain``,
  declared as one dense feature of dimension 486 (``DenseFeat("onehot",
  486)`` / ``DenseFeature("onehot", embed_dim=486)``): the same input and
  layer sizes as ``plain`` and ``estimator``.

The variants are interleaved ``--repeats`` times (medians; an epoch during
which other processes used more than 10 % of the CPUs is dropped and run
again, see ``benchmarks/_quiet.py``), and the table
shows each time and its ratio to ``estimator`` (goals: DeepCTR-Torch at
least 3x and torch-rechub at least 6x the estimator's time) and to
``plain``. The libraries are optional and never a dependency of the package;
install them in a separate virtual environment so that pip does not replace
the CPU build of torch (DeepCTR-Torch imports ``requests``, for a version
check at import, without declaring it)::

    python -m venv /work/venv-ext
    /work/venv-ext/bin/pip install torch==2.13.0
    /work/venv-ext/bin/pip install numpy scipy pandas scikit-learn skorch tqdm
    /work/venv-ext/bin/pip install deepctr-torch torch-rechub requests
    PYTHONPATH=. /work/venv-ext/bin/python benchmarks/bench_external.py --data-home ~/scikit_learn_data

(about four minutes on 2 CPU cores; checked with deepctr-torch 0.3.0 and
torch-rechub 0.9.0). Without either library the script says so and exits
with status 0.
"""

import contextlib
import io
import os
import statistics
import sys
import threading
import time
import warnings

import _checkout  # noqa: F401  (the checkout's sklearn_mmoe, not an installed copy)
import numpy as np
import torch
from _cli import bench_parser
from _quiet import Sampler
from bench_fit import MODELS, estimator_fit, load_census, plain_epoch
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from sklearn_mmoe.datasets import fetch_census_income

N_EXPERTS, EXPERT_UNITS, TOWER_UNITS = 8, 16, 8
BATCH, LR, EMBED_DIM = 1024, 1e-3, 4


def available():
    libs = {}
    try:
        # Its import starts a thread that asks PyPI for the latest version and
        # prints when it cannot: let that thread finish (5 s at most) while quiet.
        threads = set(threading.enumerate())
        with quiet():
            import deepctr_torch  # noqa: F401

            for thread in set(threading.enumerate()) - threads:
                thread.join(timeout=5)
        libs["deepctr"] = "deepctr-torch " + getattr(deepctr_torch, "__version__", "?")
    except ImportError as exc:
        print(f"DeepCTR-Torch is not installed ({exc}); pip install deepctr-torch")
    try:
        from importlib.metadata import version

        import torch_rechub  # noqa: F401

        libs["rechub"] = "torch-rechub " + version("torch-rechub")
    except ImportError as exc:
        print(f"torch-rechub is not installed ({exc}); pip install torch-rechub")
    return libs


def load_native(data_home):
    """Label-encoded categorical columns and standardised numerical ones."""
    bunch = fetch_census_income(data_home=data_home, task_group=1, subset="train")
    cat, num = bunch.categorical_features, bunch.numerical_features
    codes = OrdinalEncoder(dtype=np.int64).fit_transform(bunch.data[cat])
    dense = StandardScaler().fit_transform(bunch.data[num]).astype(np.float32)
    columns = {c: codes[:, i] for i, c in enumerate(cat)}
    columns.update({c: dense[:, i] for i, c in enumerate(num)})
    vocab = {c: int(codes[:, i].max()) + 1 for i, c in enumerate(cat)}
    return columns, vocab, cat, num


@contextlib.contextmanager
def quiet():
    """The libraries print progress; keep it out of the table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# ------------------------------------------------------------ DeepCTR-Torch
def deepctr_epoch(x, Y, columns_spec, seed):
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import MMOE

    features = [
        SparseFeat(name, vocabulary_size=v, embedding_dim=EMBED_DIM) if kind == "sparse" else DenseFeat(name, v)
        for name, kind, v in columns_spec
    ]
    model = MMOE(
        features, num_experts=N_EXPERTS, expert_dnn_hidden_units=(EXPERT_UNITS,), gate_dnn_hidden_units=(),
        tower_dnn_hidden_units=(TOWER_UNITS,), l2_reg_linear=0, l2_reg_embedding=0, l2_reg_dnn=0,
        task_types=("binary", "binary"), task_names=("income_50k", "never_married"), seed=seed, device="cpu",
    )
    model.compile(torch.optim.Adam(model.parameters(), lr=LR), loss=["binary_crossentropy"] * 2)
    with quiet():
        start = time.perf_counter()
        model.fit(dict(x), Y, batch_size=BATCH, epochs=1, verbose=0)
        return time.perf_counter() - start


# ------------------------------------------------------------ torch-rechub
def rechub_epoch(x, Y, columns_spec, seed):
    from torch.utils.data import DataLoader
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import TorchDataset

    torch.manual_seed(seed)
    # New feature objects every time: a SparseFeature caches its embedding.
    features = [
        SparseFeature(name, vocab_size=v, embed_dim=EMBED_DIM) if kind == "sparse" else DenseFeature(name, v)
        for name, kind, v in columns_spec
    ]
    model = MMOE(
        features, ["classification", "classification"], N_EXPERTS,
        expert_params={"dims": [EXPERT_UNITS]}, tower_params_list=[{"dims": [TOWER_UNITS]}] * 2,
    )
    trainer = MTLTrainer(
        model, task_types=["classification", "classification"],
        optimizer_params={"lr": LR, "weight_decay": 0.0}, n_epoch=1, device="cpu",
    )
    with quiet():
        start = time.perf_counter()
        loader = DataLoader(TorchDataset(x, Y), batch_size=BATCH, shuffle=True)
        trainer.train_one_epoch(loader)
        return time.perf_counter() - start


def main(argv=None):
    parser = bench_parser(__doc__, repeats=5)
    parser.add_argument("--encodings", default="native,onehot", help="inputs of the libraries: native, onehot")
    args = parser.parse_args(argv)
    libs = available()
    if not libs:
        print("Neither DeepCTR-Torch nor torch-rechub is importable: nothing to compare.")
        return 0
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch by design
    warnings.simplefilter("ignore", UserWarning)  # the libraries' own chatter
    load_at_start = os.getloadavg()[0]

    X, Y = load_census(args.data_home)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    encodings = args.encodings.split(",")
    inputs = {}
    if "native" in encodings:
        columns, vocab, cat, num = load_native(args.data_home)
        spec = [(c, "sparse", vocab[c]) for c in cat] + [(c, "dense", 1) for c in num]
        inputs["native"] = (columns, spec)
    if "onehot" in encodings:
        inputs["onehot"] = ({"onehot": X}, [("onehot", "dense", X.shape[1])])

    variants = {
        "plain": lambda r: plain_epoch(MODELS["mmoe"]["plain"](X.shape[1], 2), Xt, Yt, r),
        "estimator": lambda r: estimator_fit(MODELS["mmoe"]["estimator"], X, Y, r)[0],
    }
    for enc, (x, spec) in inputs.items():
        if "deepctr" in libs:
            variants[f"deepctr {enc}"] = lambda r, x=x, spec=spec: deepctr_epoch(x, Y, spec, r)
        if "rechub" in libs:
            variants[f"rechub {enc}"] = lambda r, x=x, spec=spec: rechub_epoch(x, Y, spec, r)
    sampler = Sampler(variants, args.repeats)
    seeds = dict.fromkeys(variants, 0)
    for name in sampler:
        seeds[name] += 1
        sampler.measure(name, variants[name], seeds[name])
    med = {k: statistics.median(sampler.values(k)) for k in variants}

    print(f"Census-Income group 1: {X.shape[0]} rows; MMoE 8 experts x 16, linear gates, towers 8, "
          f"batch {BATCH}, Adam {LR}; {args.threads} threads; median of {args.repeats} clean epochs")
    print(f"{', '.join(libs.values())}, torch {torch.__version__}, python {sys.version.split()[0]}; "
          f"load average at the start: {load_at_start:.2f}")
    print("inputs: plain/estimator one-hot (486 float32); native = 31 label-encoded columns with "
          "4-d embeddings + 7 dense; onehot = one 486-d dense feature")
    print(sampler.summary())
    print()
    print(f"{'variant':<18}{'s / epoch':>10}{'/ estimator':>13}{'/ plain':>9}")
    for name in variants:
        print(f"{name:<18}{med[name]:>10.3f}{med[name] / med['estimator']:>13.2f}{med[name] / med['plain']:>9.2f}")
    print("(goals: deepctr / estimator >= 3, rechub / estimator >= 6)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores; above ~2 the timings are contended)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
