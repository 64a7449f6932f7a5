"""Tabular inputs: categorical embeddings, numeric encoding, early stopping by default."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mmoe import MMoEClassifier, MMoERegressor, MultiTaskEstimator, PLEClassifier
from sklearn_mmoe import nn as nn_module
from sklearn_mmoe._training import _validation_split
from sklearn_mmoe.metrics import make_multitask_scorer
from sklearn_mmoe.nn import (
    PLE,
    EmbeddedNetwork,
    MMoE,
    SharedBottom,
    TabularEmbedding,
)

SMALL = dict(n_experts=2, expert_hidden_sizes=(8,), tower_hidden_sizes=(4,), batch_size=64,
             random_state=0)


def _frame(n=400, seed=0):
    """Two tasks that depend only on a categorical column and a heavy-tailed number."""
    rng = np.random.RandomState(seed)
    city = rng.choice(["paris", "rome", "oslo", "lima"], size=n)
    gain = np.where(rng.rand(n) < 0.8, 0.0, rng.lognormal(8, 2, size=n))
    X = pd.DataFrame({
        "city": pd.Categorical(city),
        "gain": gain,
        "noise": rng.randn(n),
        "kind": rng.choice(["a", "b"], size=n).astype(object),
    })
    Y = np.column_stack([np.isin(city, ["paris", "rome"]), gain > 0]).astype(int)
    return X, Y


def _fit(X, Y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MMoEClassifier(**{**SMALL, "max_epochs": 30, "learning_rate": 1e-2, **params}).fit(X, Y)


# ------------------------------------------------------------ the module
def test_embedding_reads_all_columns_in_one_gather_and_row_zero_starts_at_zero():
    emb = TabularEmbedding(n_numeric=0, cardinalities=[3, 2], embedding_dims=[2, 3])
    assert emb.weight.shape == (3 * 2 + 2 * 3,)
    assert torch.equal(emb.table(0)[0], torch.zeros(2)) and torch.equal(emb.table(1)[0], torch.zeros(3))
    x = torch.tensor([[2.0, 1.0], [1.0, 0.0]])
    out = emb(x)
    assert torch.equal(out[0], torch.cat([emb.table(0)[2], emb.table(1)[1]]))
    assert torch.equal(out[1], torch.cat([emb.table(0)[1], emb.table(1)[0]]))
    # an out-of-range or negative code reads row 0, never another column's table
    assert torch.equal(emb(torch.tensor([[7.0, -1.0]]))[0], torch.zeros(5))


def test_embedding_gradient_reaches_only_the_rows_used():
    emb = TabularEmbedding(n_numeric=1, cardinalities=[4], embedding_dims=[3])
    emb(torch.tensor([[0.5, 2.0]])).sum().backward()
    grad = emb.weight.grad.view(4, 3)
    assert torch.count_nonzero(grad.abs().sum(1)) == 1 and grad[2].abs().sum() > 0


def test_piecewise_linear_encoding_matches_the_definition():
    edges = [0.0, 1.0, 3.0, 10.0]
    emb = TabularEmbedding(n_numeric=2, bin_edges=[edges, [0.0, 1.0]])
    x = torch.tensor([[2.0, 1.0], [-5.0, 0.0], [50.0, 0.25]])
    expected = torch.tensor([[1.0, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.25]])
    assert torch.allclose(emb(x), expected)
    assert emb.out_features == 4
    with pytest.raises(ValueError, match="strictly increasing"):
        TabularEmbedding(n_numeric=1, bin_edges=[[0.0, 0.0, 1.0]])


def test_periodic_embedding_gives_each_numeric_column_its_own_embedding():
    # Seeded: with some draws (3 % of seeds) every unit of column 0's layer is
    # inactive at these two rows and no gradient reaches x[:, 0].
    torch.manual_seed(0)
    quantiles = [(np.linspace(-3, 3, 7), np.linspace(0, 1, 7)), None,
                 (np.array([0.0, 1.0, 9.0]), np.array([0.0, 0.5, 1.0]))]
    emb = TabularEmbedding(n_numeric=3, cardinalities=[4], embedding_dims=[2],
                           quantiles=quantiles, periodic=(8, 5, 1.0))
    # the 0/1 column passes through, each encoded column becomes 5 values, then the table
    assert emb.out_features == 1 + 2 * 5 + 2
    x = torch.tensor([[0.3, 1.0, 4.0, 2.0], [0.3, 0.0, 7.0, 1.0]], requires_grad=True)
    out = emb(x)
    assert torch.equal(out[:, 0], x[:, 1])
    # the block of column 0 reads column 0 only: equal inputs, equal embeddings
    assert torch.equal(out[0, 1:6], out[1, 1:6]) and not torch.equal(out[0, 6:11], out[1, 6:11])
    out[:, 1:6].sum().backward()
    assert x.grad[:, 0].abs().sum() > 0 and x.grad[:, 1:].abs().sum() == 0
    assert emb.periodic_weight.grad[1].abs().sum() == 0  # column 2's layer untouched
    with pytest.raises(ValueError, match="give quantiles too"):
        TabularEmbedding(n_numeric=1, periodic=(8, 5, 1.0))


def test_periodic_training_graph_gives_autograds_gradients_to_the_bit(monkeypatch):
    # Training saves cos and sin for the backward pass (_CosSin); inference
    # and export use torch.cos and torch.sin. Same values, same gradients.
    emb = TabularEmbedding(n_numeric=3, quantiles=[(np.linspace(-3, 3, 9), np.linspace(0, 1, 9))] * 3,
                           periodic=(8, 5, 3.0))
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(300, emb.out_features, generator=torch.Generator().manual_seed(1))
    calls = []
    saved = nn_module._CosSin.apply
    monkeypatch.setattr(nn_module._CosSin, "apply", lambda v: calls.append(v) or saved(v))
    trained = emb(x)
    assert len(calls) == 1  # the training graph goes through _CosSin
    (trained * weights).sum().backward()
    grads = [p.grad.clone() for p in emb.parameters()]
    emb.zero_grad()
    with torch.no_grad():
        assert torch.equal(emb(x), trained.detach())
    assert len(calls) == 1  # inference does not
    monkeypatch.setattr(nn_module._CosSin, "apply",
                        lambda v: torch.cat([torch.cos(v), torch.sin(v)], dim=-1))
    (emb(x) * weights).sum().backward()
    for expected, p in zip(grads, emb.parameters()):
        assert p.grad.abs().sum() > 0 and torch.equal(p.grad, expected)


@pytest.mark.parametrize("network", [MMoE, SharedBottom, PLE])
def test_columns_that_pass_through_get_no_input_gradient_and_the_rest_is_unchanged(network):
    # A 0/1 column passes through the periodic encoding: while training the
    # first layer leaves out its input gradient (constant_columns), and the
    # parameters' gradients are those of the plain product (float rounding).
    torch.manual_seed(0)
    quantiles = [(np.linspace(-3, 3, 9), np.linspace(0, 1, 9)), None, None]
    net = EmbeddedNetwork(network, n_features=4, n_outputs=[1, 1],
                          embedding=dict(n_numeric=3, cardinalities=[5], embedding_dims=[3],
                                         quantiles=quantiles, periodic=(4, 3, 1.0)))
    x = torch.cat([torch.randn(300, 1), torch.randint(0, 2, (300, 2)).float(),
                   torch.randint(0, 5, (300, 1)).float()], dim=1)
    assert nn_module._constant_columns(net.embedding(x)) == 2  # the two 0/1 columns
    with torch.no_grad():
        assert nn_module._constant_columns(net.embedding(x)) == 0

    def gradients(drop_mark):
        net.zero_grad()
        h = net.embedding(x)
        if drop_mark:
            del h._sklearn_mmoe_constant_columns
        (net.network(h) * torch.tensor([1.0, -0.5]).view(1, 2, 1)).sum().backward()
        return [p.grad.clone() for p in net.parameters()]

    for marked, plain in zip(gradients(False), gradients(True)):
        assert plain.abs().sum() > 0
        torch.testing.assert_close(marked, plain, rtol=1e-5, atol=1e-6)
    # an input that needs a gradient (e.g. for attributions) gets all of it
    x_grad = x.clone().requires_grad_(True)
    h = net.embedding(x_grad)
    assert nn_module._constant_columns(h) == 0
    net.network(h).sum().backward()
    assert x_grad.grad[:, 1:3].abs().sum() > 0


@pytest.mark.parametrize("periodic", [None, (8, 5, 1.0)])
def test_prepared_rows_give_the_same_embedding(periodic):
    quantiles = [(np.linspace(-3, 3, 7), np.linspace(0, 1, 7)), None,
                 (np.array([0.0, 1.0, 9.0]), np.array([0.0, 0.5, 1.0]))]
    emb = TabularEmbedding(n_numeric=3, cardinalities=[4], embedding_dims=[2],
                           quantiles=quantiles, periodic=periodic)
    x = torch.tensor([[0.3, 1.0, 4.0, 2.0], [-5.0, 0.0, 70.0, 1.0], [1.1, 1.0, 0.5, 3.0]])
    prepared = emb.prepare(x)
    assert not torch.equal(prepared, x) and torch.equal(prepared[:, [1, 3]], x[:, [1, 3]])
    assert torch.equal(emb(prepared, prepared=True), emb(x))
    column = x[:, :1]  # the piecewise-linear encoding has no fixed part to prepare
    assert TabularEmbedding(n_numeric=1, bin_edges=[[0.0, 1.0, 2.0]]).prepare(column) is column


def test_normal_scores_of_many_rows_are_made_in_blocks_with_the_same_values():
    # 40,000 rows x 2 columns x 600 quantiles: well past one block of the
    # comparison temporary, so the scores are computed block by block.
    rng = np.random.RandomState(0)
    table = np.sort(rng.normal(size=600))
    quantiles = [(table, np.linspace(0, 1, 600)), (table * 3, np.linspace(0, 1, 600))]
    emb = TabularEmbedding(n_numeric=2, quantiles=quantiles)
    x = torch.as_tensor(rng.normal(scale=2.0, size=(40_000, 2)), dtype=torch.float32)
    x.requires_grad_(True)
    encoded = x.index_select(1, emb._encoded)
    blocks = 0
    original = emb._block_scores

    def counted(rows):
        nonlocal blocks
        blocks += 1
        return original(rows)

    emb._block_scores = counted
    blocked = emb._scores(x)
    assert blocks > 10
    whole = original(encoded)
    assert torch.equal(blocked, whole)
    (grad_blocked,) = torch.autograd.grad(blocked.sum(), x)
    (grad_whole,) = torch.autograd.grad(whole.sum(), x)
    assert torch.equal(grad_blocked, grad_whole)


def test_training_scores_each_row_once_and_predicts_from_raw_rows(monkeypatch):
    """The quantile scores of the training rows are computed once per fit, not per
    batch; the fit is the same as one scoring every batch, and predict reads raw rows."""
    from sklearn_mmoe import _training

    X, Y = _frame(600)
    params = dict(numeric_encoding="periodic", max_epochs=4, early_stopping=True)
    calls = []
    original = TabularEmbedding._scores
    monkeypatch.setattr(TabularEmbedding, "_scores",
                        lambda self, numeric: calls.append(len(numeric)) or original(self, numeric))
    model = _fit(X, Y, **params)
    assert sum(calls) == len(X)  # training and validation rows, once each
    assert model.net_.module_.prepared_inputs is False
    proba = model.predict_proba(X)
    monkeypatch.setattr(_training, "_prepare_inputs", lambda module, *datasets: False)
    calls.clear()
    every_batch = _fit(X, Y, **params)
    assert sum(calls) > 3 * len(X)
    assert every_batch.loss_curve_ == model.loss_curve_
    assert every_batch.validation_loss_curve_ == model.validation_loss_curve_
    np.testing.assert_array_equal(every_batch.predict_proba(X)[0], proba[0])


def test_embedded_network_shares_the_embedding_between_tasks():
    net = EmbeddedNetwork(MMoE, n_features=2, n_outputs=[1, 1], n_experts=2,
                          embedding=dict(n_numeric=1, cardinalities=[3], embedding_dims=[2]))
    shared = {id(p) for p in net.shared_parameters()}
    assert id(net.embedding.weight) in shared
    assert not {id(p) for p in net.towers.parameters()} & shared
    assert net.gate_weights(torch.zeros(5, 2)).shape == (2, 5, 2)


# --------------------------------------------------------- the estimator
def test_dataframe_with_categories_fits_without_encoders_and_learns_them():
    X, Y = _frame()
    model = _fit(X, Y)
    assert model.categorical_features_.tolist() == [0, 3]
    assert model.categories_[0].tolist() == ["lima", "oslo", "paris", "rome"]
    assert model.n_categories_ == [5, 3] and model.embedding_dims_ == [4, 3]
    assert model.numeric_encoding_ == "quantile"  # a small fit without early stopping
    assert list(model.feature_names_in_) == ["city", "gain", "noise", "kind"]
    X_test, Y_test = _frame(seed=1)
    assert (model.predict(X_test) == Y_test).mean() > 0.95


def test_unknown_and_missing_categories_share_row_zero_at_predict():
    X, Y = _frame()
    model = _fit(X, Y)
    X_new = X.iloc[:3].copy()
    X_new["city"] = pd.Categorical(["tokyo", None, "nowhere"])
    proba = model.predict_proba(X_new)
    # the three rows differ only in "gain", "noise" and "kind"; city is row 0 for all
    same = X_new.assign(gain=0.0, noise=0.0, kind="a")
    p = model.predict_proba(same)
    assert np.allclose(p[0][0], p[0][1]) and np.allclose(p[0][0], p[0][2])
    assert all(np.isfinite(q).all() for q in proba)


def test_category_dtype_with_other_categories_at_predict_uses_values_not_codes():
    X, Y = _frame()
    model = _fit(X, Y)
    X_new = X.copy()
    X_new["city"] = pd.Categorical(X["city"].astype(str), categories=["rome", "oslo", "paris", "lima", "x"])
    for a, b in zip(model.predict_proba(X), model.predict_proba(X_new)):
        assert np.array_equal(a, b)


def test_category_columns_give_the_codes_of_their_values():
    # pandas "category" columns are encoded one category at a time and looked
    # up by their integer codes; object columns value by value: the same codes
    # (rare, missing, unseen and unused categories, numbers as categories)
    rng = np.random.RandomState(0)
    n = 300
    city = rng.choice(["paris", "rome", "oslo", "lima", "rare"], size=n, p=[0.3, 0.3, 0.2, 0.17, 0.03])
    X = pd.DataFrame({
        "city": pd.Categorical(np.where(np.arange(n) % 7 == 0, None, city)),
        "size": pd.Categorical(rng.choice([1.0, 2.0, 3.0], size=n)),
        "x": rng.randn(n),
    })
    Y = np.column_stack([np.isin(city, ["paris", "rome"]), X["x"] > 0]).astype(int)
    model = _fit(X, Y, min_frequency=10, max_epochs=2)
    assert "rare" not in model.categories_[0]
    X_new = X.copy()
    X_new["city"] = pd.Categorical(
        X["city"].astype(object).replace({"oslo": "tokyo"}),
        categories=["unused", "tokyo", "rare", "paris", "rome", "lima"],
    )
    def as_objects(frame):
        return frame.astype({"city": object, "size": object})

    for frame in (X, X_new):
        np.testing.assert_array_equal(
            model._encode_X(frame, reset=False), model._encode_X(as_objects(frame), reset=False)
        )
    for p, q in zip(model.predict_proba(X_new), model.predict_proba(as_objects(X_new))):
        np.testing.assert_array_equal(p, q)
    # fit (without frequency limits, the vocabulary comes from the categories
    # the rows use): the same vocabulary and the same model
    X_unused = X.assign(city=X["city"].cat.add_categories(["unused"]))
    by_category = _fit(X_unused, Y, max_epochs=2)
    by_value = _fit(as_objects(X), Y, max_epochs=2)
    for a, b in zip(by_category.categories_, by_value.categories_):
        assert list(a) == list(b)
    assert "unused" not in by_category.categories_[0]
    for p, q in zip(by_category.predict_proba(X), by_value.predict_proba(X)):
        np.testing.assert_array_equal(p, q)


def test_rare_categories_and_max_categories_map_to_row_zero():
    X, Y = _frame()
    X["city"] = X["city"].astype(object)
    X.loc[:4, "city"] = "rare"
    model = _fit(X, Y, min_frequency=10)
    assert "rare" not in model.categories_[0]
    model = _fit(X, Y, max_categories=3)
    assert model.n_categories_[0] == 3 and len(model.categories_[0]) == 2


@pytest.mark.parametrize("spec", [["city", "kind"], [0, 3], [True, False, False, True]])
def test_categorical_features_by_name_index_or_mask(spec):
    X, Y = _frame()
    X["city"] = X["city"].astype(str).astype(object)
    assert _fit(X, Y, categorical_features=spec, max_epochs=2).categorical_features_.tolist() == [0, 3]


def test_integer_coded_categorical_column_on_a_numpy_array():
    rng = np.random.RandomState(0)
    code = rng.randint(0, 6, size=300)
    X = np.column_stack([code, rng.randn(300)])
    Y = np.column_stack([code % 2, code > 2]).astype(int)
    model = _fit(X, Y, categorical_features=[0], max_epochs=40)
    assert model.n_categories_ == [7]
    assert (model.predict(X) == Y).mean() > 0.95
    # an unseen code is unknown, not an error
    assert np.isfinite(model.predict_proba(np.array([[99.0, 0.0]]))[0]).all()


def test_embedding_dim_int_and_dict():
    X, Y = _frame()
    assert _fit(X, Y, embedding_dim=5, max_epochs=1).embedding_dims_ == [5, 5]
    assert _fit(X, Y, embedding_dim={"kind": 7}, max_epochs=1).embedding_dims_ == [4, 7]
    with pytest.raises(ValueError, match="embedding_dim names"):
        _fit(X, Y, embedding_dim={"gain": 3}, max_epochs=1)


def test_pickle_clone_and_grid_search_with_unseen_categories_in_folds():
    X, Y = _frame(n=300)
    # a category present only in the last fold's rows: unseen when that fold is held out
    X["city"] = X["city"].astype(object)
    X.loc[270:, "city"] = "only_here"
    X["city"] = X["city"].astype("category")
    model = _fit(X, Y, max_epochs=3)
    loaded = pickle.loads(pickle.dumps(model))
    for a, b in zip(model.predict_proba(X), loaded.predict_proba(X)):
        assert np.array_equal(a, b)
    search = GridSearchCV(
        clone(MMoEClassifier(**SMALL, max_epochs=2)), {"embedding_dim": [2, "auto"]},
        cv=KFold(3), scoring=make_multitask_scorer("roc_auc"), error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, Y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_column_transformer_with_pandas_output_keeps_categorical_dtype():
    X, Y = _frame()
    pre = make_column_transformer(
        (StandardScaler(), ["noise"]), ("passthrough", ["city", "kind", "gain"]),
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(pre, MMoEClassifier(**SMALL, max_epochs=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X, Y)
    assert pipe[-1].categorical_features_.tolist() == [1, 2]


def test_partial_fit_maps_categories_first_seen_later_to_row_zero():
    X, Y = _frame()
    model = MMoEClassifier(**SMALL)
    model.partial_fit(X.iloc[:200], Y[:200])
    later = X.iloc[200:].copy()
    later["city"] = pd.Categorical(np.where(later["city"] == "paris", "berlin", later["city"].astype(str)))
    model.partial_fit(later, Y[200:])
    assert "berlin" not in model.categories_[0]
    assert np.isfinite(model.predict_proba(later)[0]).all()


def test_sparse_input_is_unchanged_and_never_encoded():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.RandomState(0)
    X = sp.random(200, 30, density=0.1, format="csr", random_state=0)
    Y = (rng.rand(200, 2) > 0.5).astype(int)
    model = _fit(X, Y, max_epochs=2)
    assert model.numeric_encoding_ is None and model.categorical_features_.size == 0
    assert type(model.net_.module_).__name__ == "MMoE"
    with pytest.raises(ValueError, match="categorical_features: sparse"):
        _fit(X, Y, categorical_features=[0], max_epochs=1)


def test_auto_numeric_encoding_embeds_periodically_when_validated_and_up_to_64_columns(
    monkeypatch,
):
    from sklearn_mmoe import _base

    monkeypatch.setattr(_base, "AUTO_EARLY_STOPPING_ROWS", 250)  # "more than 10,000 rows"
    rng = np.random.RandomState(0)
    Y = rng.randint(0, 2, size=(300, 2))
    # 64 numeric columns plus 0/1 columns (which pass through and do not count)
    X = np.hstack([rng.randn(300, 64), rng.randint(0, 2, size=(300, 30))])
    model = _fit(X, Y, max_epochs=1, early_stopping=True)
    assert model.numeric_encoding_ == "periodic"
    assert model.net_.module_.embedding.out_features == 64 * 16 + 30
    wider = np.hstack([X, rng.randn(300, 1)])
    assert _fit(wider, Y, max_epochs=1, early_stopping=True).numeric_encoding_ == "quantile"
    # without a validation set to stop on, or with fewer rows: quantile
    assert _fit(X, Y, max_epochs=1, early_stopping=False).numeric_encoding_ == "quantile"
    assert _fit(X[:200], Y[:200], max_epochs=1, early_stopping=True).numeric_encoding_ == "quantile"
    assert _fit(X, Y, max_epochs=1).numeric_encoding_ == "periodic"  # auto: 300 > 250 rows
    # asked for explicitly, any width and size
    model = _fit(wider, Y, max_epochs=1, numeric_encoding="periodic")
    assert model.numeric_encoding_ == "periodic"


def test_numeric_encoding_none_reads_raw_values():
    X, Y = _frame()
    model = _fit(X[["noise", "gain"]], Y, numeric_encoding=None, max_epochs=1)
    assert model.numeric_encoding_ is None and type(model.net_.module_).__name__ == "MMoE"


def test_heavy_tailed_column_is_learned_with_either_numeric_encoding():
    rng = np.random.RandomState(0)
    gain = rng.lognormal(6, 3, size=2000)
    X = np.column_stack([gain, rng.randn(2000)])
    Y = np.column_stack([(gain > 400) & (gain < 5000), rng.rand(2000) > 0.5]).astype(int)
    acc = {}
    encodings = ("quantile", "piecewise_linear", "periodic")
    for encoding in (None, *encodings):
        model = _fit(X, Y, numeric_encoding=encoding, max_epochs=40, learning_rate=3e-3)
        acc[encoding] = (model.predict(X)[:, 0] == Y[:, 0]).mean()
    assert min(acc[e] for e in encodings) > 0.97
    assert min(acc[e] for e in encodings) > acc[None] + 0.1


def test_quantile_encoding_matches_scikit_learns_quantile_transformer():
    from sklearn.preprocessing import QuantileTransformer

    rng = np.random.RandomState(0)
    X = np.column_stack([rng.lognormal(3, 2, 3000), rng.randint(0, 2, 3000), rng.randn(3000)])
    model = _fit(X, np.column_stack([X[:, 0] > 20, X[:, 2] > 0]).astype(int), max_epochs=1,
                 numeric_encoding="quantile")
    assert model._quantiles[1] is None  # a 0/1 column passes through
    z = model.net_.module_.embedding(torch.from_numpy(X.astype(np.float32))).detach().numpy()
    reference = QuantileTransformer(output_distribution="normal", random_state=0).fit_transform(X)
    # the same scores up to the interpolation between 128 quantiles; in the
    # outer 1 % tails, where the scores are interpolated over long stretches,
    # both stay within +-5.2
    central = np.abs(reference) < 2.3
    for j in (0, 2):
        assert np.abs(z[central[:, j], j] - reference[central[:, j], j]).max() < 0.05
    assert np.abs(z).max() < 5.21
    assert np.array_equal(z[:, 1], X[:, 1])


# ------------------------------------------------------------- bad input
def test_numeric_nan_is_named_and_the_model_stays_intact():
    X, Y = _frame()
    model = _fit(X, Y, max_epochs=2)
    before = model.predict_proba(X)
    X_bad = X.copy()
    X_bad.loc[3, "gain"] = np.nan
    with pytest.raises(ValueError, match="'gain'.*NaN"):
        model.predict(X_bad)
    with pytest.raises(ValueError, match="'gain'.*NaN"):
        model.fit(X_bad, Y)
    for a, b in zip(before, model.predict_proba(X)):
        assert np.array_equal(a, b)


def test_numeric_column_given_as_strings_at_predict_is_a_clear_error():
    X, Y = _frame()
    model = _fit(X, Y, max_epochs=1)
    X_bad = X.assign(gain=X["gain"].astype(str) + "x")
    with pytest.raises(ValueError, match="'gain' is numeric for this model"):
        model.predict(X_bad)


def test_categorical_column_given_as_numbers_at_predict_is_compared_as_strings():
    X, Y = _frame()
    X["kind"] = np.where(X["kind"] == "a", "1", "2").astype(object)
    model = _fit(X, Y, max_epochs=2)
    X_num = X.assign(kind=X["kind"].astype(int))
    for a, b in zip(model.predict_proba(X), model.predict_proba(X_num)):
        assert np.array_equal(a, b)


def test_mixed_object_column_and_single_value_column():
    X, Y = _frame()
    X["kind"] = pd.Series([1, "b"] * 200, dtype=object)
    X["one"] = "same"
    model = _fit(X, Y, max_epochs=1)
    assert model.n_categories_[1:] == [3, 2]  # kind: "1", "b"; one: "same"


def test_column_with_too_many_categories_suggests_grouping(monkeypatch):
    from sklearn_mmoe import _inputs

    monkeypatch.setattr(_inputs, "MAX_CATEGORIES", 50)
    X, Y = _frame()
    X["id"] = [f"user{i}" for i in range(len(X))]
    with pytest.raises(ValueError, match="'id' has 400 distinct values.*max_categories"):
        _fit(X, Y, max_epochs=1)
    assert _fit(X, Y, max_epochs=1, max_categories=20).n_categories_[-1] == 20


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(categorical_features=["nope"]), "columns \\['nope'\\] are not in X"),
        (dict(categorical_features=[9]), "out of range"),
        (dict(categorical_features=[True, False]), "one entry per column"),
        (dict(categorical_features=[0.5]), "categorical_features must be"),
    ],
)
def test_bad_categorical_features(params, match):
    X, Y = _frame()
    with pytest.raises((ValueError, TypeError), match=match):
        _fit(X, Y, max_epochs=1, **params)


# -------------------------------------------------------- early stopping
def test_auto_early_stopping_follows_the_number_of_rows(monkeypatch):
    from sklearn_mmoe import _base

    X, Y = _frame()
    assert not _fit(X, Y, max_epochs=2).early_stopping_
    monkeypatch.setattr(_base, "AUTO_EARLY_STOPPING_ROWS", 100)
    model = _fit(X, Y, max_epochs=2)
    assert model.early_stopping_ and len(model.validation_loss_curve_) == 2
    assert model.validation_task_loss_curve_.shape == (2, 2)
    assert np.array_equal(model.validation_score_, -np.asarray(model.validation_loss_curve_))


def test_auto_batch_size_is_256_rows_with_or_without_early_stopping(monkeypatch):
    from sklearn_mmoe import _base

    def train_batches(model):
        return sum("train_loss" in batch for batch in model.net_.history[-1]["batches"])

    X, Y = _frame()  # 400 rows
    model = _fit(X, Y, max_epochs=1, batch_size="auto")
    assert model.batch_size_ == 256 and train_batches(model) == 2
    monkeypatch.setattr(_base, "AUTO_EARLY_STOPPING_ROWS", 100)
    model = _fit(X, Y, max_epochs=1, batch_size="auto")  # 360 rows train, 40 validate
    assert model.early_stopping_ and model.batch_size_ == 256 and train_batches(model) == 2
    model = _fit(X, Y, max_epochs=1, batch_size=100)
    assert model.batch_size_ == 100 and train_batches(model) == 4
    model.set_params(batch_size="auto").partial_fit(X[:50], Y[:50])  # the rule, per call
    assert model.batch_size_ == 256


def test_early_stopping_restores_the_best_epoch_by_the_chosen_score():
    X, Y = _frame()
    model = _fit(X, Y, early_stopping=True, scoring="roc_auc", max_epochs=60, n_iter_no_change=5,
                 learning_rate=5e-2)
    assert model.validation_task_scores_.shape == (model.n_iter_, 2)
    assert np.allclose(model.validation_score_, model.validation_task_scores_.mean(1))
    assert model.best_epoch_ == np.argmax(model.validation_score_) + 1
    assert model.n_iter_ < 60 and model.n_iter_ - model.best_epoch_ == 5


def test_validation_split_keeps_every_tasks_labels_on_both_sides():
    observed = np.ones((1000, 3), dtype=bool)
    observed[:, 2] = False
    observed[[5, 17], 2] = True  # a very sparse task: 2 labels
    for seed in range(20):
        valid, train = _validation_split(observed, 0.1, seed)
        assert observed[valid, 2].any() and observed[train, 2].any()
        assert len(valid) < 200 and not set(valid) & set(train)
    observed[17, 2] = False
    with pytest.raises(ValueError, match="task 2 has 1 observed label"):
        _validation_split(observed, 0.1, 0)


def test_regression_scoring_and_mismatched_metric():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 3)
    Y = np.column_stack([X[:, 0] * 100 + 5, X[:, 1]])
    model = MMoERegressor(**SMALL, early_stopping=True, scoring="r2", max_epochs=60,
                          learning_rate=1e-2).fit(X, Y)
    assert model.validation_task_scores_[model.best_epoch_ - 1].min() > 0.5
    with pytest.raises(ValueError, match="scoring='roc_auc' does not apply to regression"):
        MMoERegressor(**SMALL, early_stopping=True, scoring="roc_auc", max_epochs=2).fit(X, Y)


def test_conditional_task_is_scored_on_the_joint_label():
    X, Y = _frame()
    Y = Y.astype(float)
    Y[Y[:, 0] == 0, 1] = np.nan
    model = MultiTaskEstimator(
        architecture="mmoe", conditional_tasks={1: 0}, early_stopping=True, scoring="roc_auc",
        max_epochs=3, **SMALL,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, Y)
    assert np.isfinite(model.validation_task_scores_).all()


def test_ple_on_a_frame():
    X, Y = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PLEClassifier(n_levels=2, expert_hidden_sizes=(8,), max_epochs=2, random_state=0).fit(X, Y)
    assert type(model.net_.module_.network).__name__ == "PLE"


# ------------------------------------------------------ watching training
def test_verbose_prints_per_task_lines_without_colour_codes(capsys, monkeypatch):
    from sklearn_mmoe import _base

    X, Y = _frame()
    monkeypatch.setattr(_base, "AUTO_EARLY_STOPPING_ROWS", 100)
    _fit(X, Y, max_epochs=3, verbose=1, scoring="roc_auc")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "\x1b" not in "".join(lines)
    assert lines[0].startswith("epoch    1 *") and "valid_score" in lines[0]
    assert lines[0].count("tasks [") == 3  # train loss, validation loss, validation score


def test_plot_learning_curves_one_panel_per_task(monkeypatch):
    pytest.importorskip("matplotlib")
    from sklearn_mmoe import _base
    from sklearn_mmoe.plotting import plot_learning_curves

    X, Y = _frame()
    monkeypatch.setattr(_base, "AUTO_EARLY_STOPPING_ROWS", 100)
    model = _fit(X, Y, max_epochs=4)
    figure = plot_learning_curves(model, task_names=["city", "gain"])
    assert [ax.get_title() for ax in figure.axes] == ["city", "gain"]
    lines = figure.axes[0].get_lines()
    assert np.allclose(lines[0].get_ydata(), model.task_loss_curve_[:, 0])
    assert np.allclose(lines[1].get_ydata(), model.validation_task_loss_curve_[:, 0])
    with pytest.raises(ValueError, match="task_names must have 2"):
        plot_learning_curves(model, task_names=["one"])


# how a chunk is checked: numpy (small chunks) or one torch sum (large ones)
CHUNK_CHECKS = {"numpy": 1 << 30, "torch": 0}


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# the same values in the memory layouts users pass (reversed: negative strides)
LAYOUTS = {"C": np.ascontiguousarray, "F": np.asfortranarray,
           "reversed": lambda a: a[::-1].copy()[::-1], "read-only": _read_only}


@pytest.mark.parametrize("rare", [{}, {"min_frequency": 30}])
def test_category_codes_are_the_same_row_by_row_and_through_the_category_table(rare):
    from sklearn_mmoe import _inputs

    rng = np.random.RandomState(1)
    n = 600
    colour = rng.choice(["red", "green", "blue", "pink", "grey", "teal"], size=n, p=[.3, .3, .3, .04, .03, .03])
    size = rng.choice([1.0, 2.0, 3.0, 7.5], size=n)
    X = pd.DataFrame({"colour": pd.Categorical(colour), "size": pd.Categorical(size), "x": rng.randn(n)})
    Y = np.column_stack([np.isin(colour, ["red", "pink"]), size > 2]).astype(int)
    model = _fit(X, Y, max_epochs=2, **rare)
    # new rows: unknown categories, missing values, rare ones, numbers never seen
    new = pd.DataFrame({
        "colour": pd.Categorical(["red", "violet", None, "pink", "teal", "blue", "grey"]),
        "size": pd.Categorical([2.0, 5.0, None, 7.5, 1.0, 3.0, 2.0]),
        "x": rng.randn(7),
    })
    categorical = model.categorical_features_
    columns = [_inputs._column(new, j) for j in categorical]
    through_table = _inputs._encode_through_categories(model, new, categorical, columns)
    row_by_row = _inputs._transform_categories(
        model, _inputs._value_matrix(new, categorical, columns, model._category_numbers))
    assert np.array_equal(through_table, row_by_row)
    assert (through_table[[1, 2], 0] == 0).all() and (through_table[[1, 2], 1] == 0).all()
    # a frame shorter than its largest category list (a single row) is encoded row by
    # row, a longer one through the table: the same predictions either way
    many = pd.concat([new] * 20, ignore_index=True)
    assert 1 < max(len(c.cat.categories) for c in columns) < len(many)
    together = model.predict_proba(many)
    for i in range(len(new)):
        alone = model.predict_proba(new.iloc[[i]])
        for a, b in zip(alone, together):
            np.testing.assert_allclose(a[0], b[i], rtol=1e-6)


@pytest.mark.parametrize("check", CHUNK_CHECKS)
@pytest.mark.parametrize("layout", ["C", "F", "reversed"])
def test_float64_input_is_cast_per_chunk_with_the_same_results(monkeypatch, layout, check):
    from sklearn_mmoe import _data

    rng = np.random.RandomState(0)
    X = rng.randn(300, 4)
    model = _fit(X, (X[:, :2] > 0).astype(int), max_epochs=2)
    # several chunks (cast into one shared buffer) and a padded one
    monkeypatch.setattr(_data, "INFERENCE_CHUNK", 128)
    monkeypatch.setattr(_data, "_NUMPY_CHECK_VALUES", CHUNK_CHECKS[check])
    arrange = LAYOUTS[layout]
    X_test = rng.randn(1000, 4) * 1e3
    X32 = X_test.astype(np.float32)
    for a, b in zip(model.predict_proba(arrange(X_test)), model.predict_proba(X32)):
        assert np.array_equal(a, b)
    for a, b in zip(model.gate_weights(arrange(X_test)), model.gate_weights(X32)):
        assert np.array_equal(a, b)
    # finite values whose float32 sum overflows: not an error
    X_big = np.full((200, 4), 3e38)
    X_big[::2] *= -0.5
    with np.errstate(over="ignore", invalid="ignore"):  # scikit-learn's own sum check
        for a, b in zip(model.predict_proba(arrange(X_big)),
                        model.predict_proba(X_big.astype(np.float32))):
            assert np.array_equal(a, b)
    X_test[700, 2] = 1e39  # beyond float32, in a later chunk
    with pytest.raises(ValueError, match="float32 range"):
        model.predict(arrange(X_test))
    X_test[700, 2] = -np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        model.predict(arrange(X_test))
    X_test[700, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict_proba(arrange(X_test))


@pytest.mark.parametrize("check", CHUNK_CHECKS)
@pytest.mark.parametrize("layout", ["C", "F", "reversed", "read-only"])
def test_float32_input_is_checked_per_chunk(monkeypatch, layout, check):
    from sklearn_mmoe import _data

    rng = np.random.RandomState(0)
    X = rng.randn(300, 4).astype(np.float32)
    model = _fit(X, (X[:, :2] > 0).astype(int), max_epochs=2)
    monkeypatch.setattr(_data, "INFERENCE_CHUNK", 128)  # several chunks, a padded one
    monkeypatch.setattr(_data, "_NUMPY_CHECK_VALUES", CHUNK_CHECKS[check])
    arrange = LAYOUTS[layout]

    X_test = (rng.randn(1000, 4) * 1e3).astype(np.float32)
    expected = model.predict_proba(X_test)
    for a, b in zip(model.predict_proba(arrange(X_test)), expected):
        assert np.array_equal(a, b)
    # the same rows predicted alone: the chunked check changes no result
    for a, b in zip(model.predict_proba(X_test[700:828]), expected):
        assert np.array_equal(a, b[700:828])
    # finite values whose float32 sum overflows: not an error
    X_big = np.full((200, 4), 3e38, dtype=np.float32)
    X_big[::2] *= -0.5
    with np.errstate(over="ignore"):
        assert np.isinf(X_big[1::2].sum(dtype=np.float32))
    for a, b in zip(model.predict_proba(arrange(X_big)),
                    model.predict_proba(X_big.astype(np.float64))):
        assert np.array_equal(a, b)  # as the float64 path reads the same values
    for value, message in [(np.inf, "Input X contains infinity"),
                           (-np.inf, "Input X contains infinity"), (np.nan, "Input X contains NaN")]:
        bad = X_test.copy()
        bad[700, 2] = value  # in a later chunk
        for method in (model.predict, model.predict_proba, model.gate_weights):
            with pytest.raises(ValueError, match=message):
                method(arrange(bad))
    bad = X_test.copy()
    bad[700, 1], bad[701, 1] = np.inf, -np.inf  # a sum of NaN
    with pytest.raises(ValueError, match="Input X contains infinity"):
        model.predict(arrange(bad))


def test_skops_round_trip_of_a_model_with_embeddings(tmp_path):
    sio = pytest.importorskip("skops.io")
    X, Y = _frame()
    model = _fit(X, Y, max_epochs=2)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(name.startswith("sklearn_mmoe.") for name in untrusted), untrusted
    loaded = sio.load(path, trusted=untrusted)
    for a, b in zip(model.predict_proba(X), loaded.predict_proba(X)):
        assert np.array_equal(a, b)
