"""Tests for sklearn_mmoe.datasets (fully offline)."""

import gzip
import io
import os
import urllib.request

import numpy as np
import pandas as pd
import pytest

from conftest import CENSUS_FILES
from sklearn_mmoe.datasets import _census, fetch_census_income, make_multitask_regression

# ---------------------------------------------------------------------------
# make_multitask_regression
# ---------------------------------------------------------------------------


def test_make_multitask_regression_shapes_and_dtypes():
    X, Y = make_multitask_regression(n_samples=50, n_features=7, random_state=0)
    assert X.shape == (50, 7)
    assert Y.shape == (50, 2)
    assert X.dtype == np.float64
    assert Y.dtype == np.float64
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(Y))

    X, Y = make_multitask_regression(random_state=0)
    assert X.shape == (10000, 100)
    assert Y.shape == (10000, 2)


def test_make_multitask_regression_random_state():
    kwargs = dict(n_samples=200, n_features=10, correlation=0.3)
    X1, Y1 = make_multitask_regression(**kwargs, random_state=42)
    X2, Y2 = make_multitask_regression(
        **kwargs, random_state=np.random.RandomState(42)
    )
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(Y1, Y2)

    X3, Y3 = make_multitask_regression(**kwargs, random_state=43)
    assert not np.allclose(X1, X3)
    assert not np.allclose(Y1, Y3)


def test_make_multitask_regression_inputs_do_not_depend_on_correlation():
    X1, Y1 = make_multitask_regression(200, 10, correlation=0.1, random_state=0)
    X2, Y2 = make_multitask_regression(200, 10, correlation=0.9, random_state=0)
    np.testing.assert_array_equal(X1, X2)
    # Same first task (w1 does not depend on p), different second task.
    np.testing.assert_array_equal(Y1[:, 0], Y2[:, 0])
    assert not np.allclose(Y1[:, 1], Y2[:, 1])


@pytest.mark.parametrize("correlation", [-1.0, -0.4, 0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_make_multitask_regression_weight_cosine(correlation, scale):
    # Without sine terms and noise, Y = X @ [w1, w2]: recover the weights by
    # least squares and check their cosine and norms.
    X, Y = make_multitask_regression(
        n_samples=300,
        n_features=20,
        correlation=correlation,
        n_sin=0,
        scale=scale,
        noise=0.0,
        random_state=0,
    )
    W, *_ = np.linalg.lstsq(X, Y, rcond=None)
    np.testing.assert_allclose(X @ W, Y, atol=1e-10)
    norms = np.linalg.norm(W, axis=0)
    np.testing.assert_allclose(norms, [scale, scale], rtol=1e-10)
    cosine = W[:, 0] @ W[:, 1] / (norms[0] * norms[1])
    assert cosine == pytest.approx(correlation, abs=1e-10)


def test_make_multitask_regression_label_correlation_increases():
    correlations = [0.0, 0.5, 0.8, 0.9, 1.0]
    label_corr = []
    for p in correlations:
        _, Y = make_multitask_regression(
            n_samples=20000, correlation=p, random_state=0
        )
        label_corr.append(np.corrcoef(Y.T)[0, 1])
    assert np.all(np.diff(label_corr) > 0), label_corr
    assert abs(label_corr[0]) < 0.05
    assert label_corr[-1] < 1.0  # the noise keeps it below 1


def test_make_multitask_regression_identical_tasks():
    X, Y = make_multitask_regression(
        n_samples=500, n_features=10, correlation=1.0, noise=0.0, random_state=0
    )
    np.testing.assert_array_equal(Y[:, 0], Y[:, 1])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 1.5}, "n_samples"),
        ({"n_features": 1}, "n_features"),
        ({"correlation": 1.5}, "correlation"),
        ({"correlation": -1.01}, "correlation"),
        ({"correlation": "high"}, "correlation"),
        ({"n_sin": -1}, "n_sin"),
        ({"scale": 0.0}, "scale"),
        ({"scale": -1.0}, "scale"),
        ({"noise": -0.1}, "noise"),
        ({"random_state": "seed"}, "random_state"),
    ],
)
def test_make_multitask_regression_invalid_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=f"'{name}' parameter"):
        make_multitask_regression(**kwargs)


def test_make_multitask_regression_edge_values():
    X, Y = make_multitask_regression(n_samples=1, n_features=2, random_state=0)
    assert X.shape == (1, 2) and Y.shape == (1, 2)


# ---------------------------------------------------------------------------
# fetch_census_income
# ---------------------------------------------------------------------------


def _assert_frame_equal(left, right):
    # check_exact=True: the default approximate comparison of categorical
    # columns with integer categories is very slow (~10 s per 200k rows).
    pd.testing.assert_frame_equal(left, right, check_exact=True)


@pytest.fixture
def no_network(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(urllib.request, "urlopen", fail)


def _fake_urlopen(payloads, requested):
    def urlopen(url, *args, **kwargs):
        requested.append(url)
        return io.BytesIO(payloads[url])

    return urlopen


def test_fetch_census_income_missing_data(tmp_path, no_network):
    with pytest.raises(OSError, match="Data not found and `download_if_missing`"):
        fetch_census_income(data_home=tmp_path, download_if_missing=False)
    # Only one of the two files: still missing.
    census_dir = tmp_path / _census.DATA_SUBFOLDER
    census_dir.mkdir()
    (census_dir / CENSUS_FILES[0]).write_bytes(b"")
    with pytest.raises(OSError, match="Data not found and `download_if_missing`"):
        fetch_census_income(data_home=tmp_path, download_if_missing=False)


def test_fetch_census_income_download(tmp_path, monkeypatch, census_source):
    payloads = {
        meta.url: (census_source / meta.filename).read_bytes()
        for meta in _census.ARCHIVES.values()
    }
    requested = []
    monkeypatch.setattr(urllib.request, "urlopen", _fake_urlopen(payloads, requested))

    X, Y = fetch_census_income(data_home=tmp_path, subset="test", return_X_y=True)
    assert sorted(requested) == sorted(payloads)
    assert X.shape == (49881, 38)
    assert Y.shape == (49881, 2)

    census_dir = tmp_path / _census.DATA_SUBFOLDER
    assert sorted(os.listdir(census_dir)) == sorted(
        [*CENSUS_FILES, _census._CACHE_FILENAME]
    )
    for name in CENSUS_FILES:  # stored as served
        assert (census_dir / name).read_bytes() == (census_source / name).read_bytes()

    # Everything is cached now: no more downloads.
    requested.clear()
    fetch_census_income(data_home=tmp_path, subset="validation")
    assert requested == []


def _truncated_train_gzip(census_source):
    with open(census_source / CENSUS_FILES[0], "rb") as f:
        return f.read(100_000)


@pytest.mark.parametrize(
    "make_payload",
    [
        lambda _: gzip.compress(b"39, Private, 0, 0, Bachelors, 0\n"),
        lambda _: b"this is not gzip data",
        _truncated_train_gzip,
    ],
    ids=["wrong-content", "not-gzip", "truncated"],
)
def test_fetch_census_income_corrupted_download(
    tmp_path, monkeypatch, make_payload, census_source
):
    payload = make_payload(census_source)
    payloads = {meta.url: payload for meta in _census.ARCHIVES.values()}
    monkeypatch.setattr(urllib.request, "urlopen", _fake_urlopen(payloads, []))

    with pytest.raises(OSError, match=r"census-income\.data\.gz .*is corrupted"):
        fetch_census_income(data_home=tmp_path)
    # The corrupted download is not kept, and no temporary file is left.
    assert os.listdir(tmp_path / _census.DATA_SUBFOLDER) == []


def test_fetch_census_income_corrupted_cached_file(tmp_path, no_network):
    census_dir = tmp_path / _census.DATA_SUBFOLDER
    census_dir.mkdir()
    for name in CENSUS_FILES:
        (census_dir / name).write_bytes(gzip.compress(b"1, 2, 3\n"))
    with pytest.raises(OSError, match=r"census-income\.data\.gz in .* is corrupted"):
        fetch_census_income(data_home=tmp_path, download_if_missing=False)
    assert not (census_dir / _census._CACHE_FILENAME).exists()


def test_fetch_census_income_served_from_cache(census_home, monkeypatch, no_network):
    def fail(*args, **kwargs):
        raise AssertionError("the raw files must not be parsed or verified again")

    monkeypatch.setattr(pd, "read_csv", fail)
    monkeypatch.setattr(_census, "_gzip_content_digest", fail)
    bunch = fetch_census_income(data_home=str(census_home), download_if_missing=False)
    assert bunch.data.shape == (199523, 38)


@pytest.mark.parametrize(
    "subset, n_rows, rates",
    [
        ("train", 199523, (0.06206, 0.43346, 0.19638)),
        # validation and test: 49,881 rows each; label counts pin the split.
        ("validation", 49881, (3106 / 49881, 21731 / 49881, 9693 / 49881)),
        ("test", 49881, (3080 / 49881, 21412 / 49881, 9763 / 49881)),
    ],
)
def test_fetch_census_income_rows_and_label_rates(census_home, subset, n_rows, rates):
    g1 = fetch_census_income(data_home=census_home, subset=subset, task_group=1)
    g2 = fetch_census_income(data_home=census_home, subset=subset, task_group=2)
    assert g1.data.shape == (n_rows, 38)
    assert g1.target.shape == (n_rows, 2)
    assert g1.sample_weight.shape == (n_rows,)
    assert g1.frame.shape == (n_rows, 40)
    assert list(g1.target.columns) == g1.target_names
    assert g1.target_names == ["income_50k", "never_married"]
    assert g2.target_names == ["education_college", "never_married"]

    income, never_married, college = rates
    assert g1.target["income_50k"].mean() == pytest.approx(income, abs=5e-6)
    assert g1.target["never_married"].mean() == pytest.approx(never_married, abs=5e-6)
    assert g2.target["education_college"].mean() == pytest.approx(college, abs=5e-6)
    pd.testing.assert_series_equal(
        g1.target["never_married"], g2.target["never_married"]
    )
    _assert_frame_equal(g1.data, g2.data)
    assert np.all(np.unique(g1.target) == [0, 1])


def test_fetch_census_income_test_file_rates_and_correlations(census_home):
    g1 = fetch_census_income(data_home=census_home, subset="all", task_group=1)
    g2 = fetch_census_income(data_home=census_home, subset="all", task_group=2)
    assert g1.data.shape == (299285, 38)
    names, counts = np.unique(g1.subset, return_counts=True)
    assert dict(zip(names, counts)) == {
        "train": 199523,
        "validation": 49881,
        "test": 49881,
    }
    # Rows come in the order train, validation, test.
    assert list(pd.unique(g1.subset)) == ["train", "validation", "test"]

    test_file = g1.subset != "train"
    assert round(g1.target["income_50k"][test_file].mean() * 100, 3) == 6.201
    assert round(g1.target["never_married"][test_file].mean() * 100, 3) == 43.246
    assert round(g2.target["education_college"][test_file].mean() * 100, 3) == 19.502

    train = g1.subset == "train"
    r1 = np.corrcoef(g1.target[train].to_numpy().T)[0, 1]
    r2 = np.corrcoef(g2.target[train].to_numpy().T)[0, 1]
    assert abs(r1) == pytest.approx(0.1782, abs=5e-5)
    assert abs(r2) == pytest.approx(0.2400, abs=5e-5)


def test_fetch_census_income_features(census_home):
    bunch = fetch_census_income(data_home=census_home)
    data = bunch.data
    assert list(data.columns) == bunch.feature_names
    assert len(bunch.feature_names) == 38
    for excluded in ("education", "marital_stat", "income", "instance_weight"):
        assert excluded not in bunch.feature_names
        assert excluded not in bunch.frame.columns
    assert bunch.numerical_features == [
        "age",
        "wage_per_hour",
        "capital_gains",
        "capital_losses",
        "stock_dividends",
        "num_emp",
        "weeks_worked",
    ]
    assert len(bunch.categorical_features) == 31
    assert set(bunch.categorical_features) | set(bunch.numerical_features) == set(
        bunch.feature_names
    )
    for name in bunch.numerical_features:
        assert pd.api.types.is_numeric_dtype(data[name]), name
        assert not isinstance(data[name].dtype, pd.CategoricalDtype), name
    for name in bunch.categorical_features:
        assert isinstance(data[name].dtype, pd.CategoricalDtype), name
    for name in ("det_ind_code", "det_occ_code", "own_or_self", "vet_benefits"):
        assert isinstance(data[name].dtype, pd.CategoricalDtype), name
    assert list(data["year"].cat.categories) == [94, 95]

    # Missing values are a category of their own; nothing is NaN (hisp_origin
    # has a genuine "NA" category).
    assert "?" in data["country_self"].cat.categories
    assert "NA" in data["hisp_origin"].cat.categories
    assert not data.isna().any().any()

    # Splits share the categories, so encoders fitted on train apply to test.
    test = fetch_census_income(data_home=census_home, subset="test").data
    for name in bunch.categorical_features:
        assert test[name].dtype == data[name].dtype, name

    weight = bunch.sample_weight
    assert weight.dtype == np.float64
    assert np.all(weight > 0)

    assert bunch.target.dtypes.tolist() == [np.dtype(np.int64)] * 2
    _assert_frame_equal(
        bunch.frame, pd.concat([bunch.data, bunch.target], axis=1)
    )
    assert "CC BY 4.0" in bunch.DESCR
    assert "RandomState(2018)" in bunch.DESCR


def test_fetch_census_income_split_is_fixed_and_disjoint(census_home):
    validation_idx, test_idx = _census._split_indices(99762)
    assert len(validation_idx) == len(test_idx) == 49881
    assert np.intersect1d(validation_idx, test_idx).size == 0
    np.testing.assert_array_equal(
        np.sort(np.concatenate([validation_idx, test_idx])), np.arange(99762)
    )
    # Pinned values: the split must be the same on every machine.
    np.testing.assert_array_equal(validation_idx[:5], [1, 2, 3, 4, 7])
    np.testing.assert_array_equal(test_idx[:5], [0, 5, 6, 9, 10])

    first = fetch_census_income(data_home=census_home, subset="validation")
    second = fetch_census_income(data_home=census_home, subset="validation")
    _assert_frame_equal(first.frame, second.frame)
    np.testing.assert_array_equal(first.sample_weight, second.sample_weight)
    assert first.sample_weight.sum() == pytest.approx(86822782.74)

    # "all" is train, validation and test concatenated.
    everything = fetch_census_income(data_home=census_home, subset="all")
    parts = [
        fetch_census_income(data_home=census_home, subset=name)
        for name in ("train", "validation", "test")
    ]
    _assert_frame_equal(
        everything.frame, pd.concat([p.frame for p in parts], ignore_index=True)
    )
    np.testing.assert_array_equal(
        everything.sample_weight, np.concatenate([p.sample_weight for p in parts])
    )


def test_fetch_census_income_numpy_and_return_X_y(census_home):
    bunch = fetch_census_income(
        data_home=census_home, subset="validation", as_frame=False, task_group=2
    )
    assert isinstance(bunch.data, np.ndarray)
    assert bunch.data.shape == (49881, 38)
    assert bunch.data.dtype == object
    assert isinstance(bunch.target, np.ndarray)
    assert bunch.target.shape == (49881, 2)
    assert bunch.target.dtype == np.int64
    assert bunch.frame is None
    frame_version = fetch_census_income(
        data_home=census_home, subset="validation", task_group=2
    )
    np.testing.assert_array_equal(bunch.target, frame_version.target.to_numpy())
    np.testing.assert_array_equal(
        bunch.data[:, 0], frame_version.data["age"].to_numpy()
    )

    X, Y = fetch_census_income(data_home=census_home, subset="test", return_X_y=True)
    assert isinstance(X, pd.DataFrame) and X.shape == (49881, 38)
    assert isinstance(Y, pd.DataFrame) and Y.shape == (49881, 2)

    X, Y = fetch_census_income(
        data_home=census_home, subset="test", return_X_y=True, as_frame=False
    )
    assert X.shape == (49881, 38) and Y.shape == (49881, 2)
    assert Y.dtype == np.int64


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"task_group": 3}, "task_group"),
        ({"task_group": "1"}, "task_group"),
        ({"subset": "valid"}, "subset"),
        ({"as_frame": "yes"}, "as_frame"),
        ({"return_X_y": 1.5}, "return_X_y"),
        ({"download_if_missing": None}, "download_if_missing"),
        ({"data_home": 3}, "data_home"),
    ],
)
def test_fetch_census_income_invalid_arguments(tmp_path, kwargs, name, no_network):
    kwargs = {"data_home": tmp_path, **kwargs}
    with pytest.raises((ValueError, TypeError), match=f"'{name}' parameter"):
        fetch_census_income(**kwargs)


# --------------------------------------- the parsed cache runs no code (#17)
def _small_frames():
    return {
        "train": pd.DataFrame({
            "age": np.array([39, 50, 38]),
            "class_worker": pd.Categorical(["Private", "?", "Private"], categories=["?", "Private"]),
            "det_ind_code": pd.Categorical([0, 4, 0], categories=[0, 4]),
            "instance_weight": np.array([1.5, 2.0, 3.25]),
        }),
        "test": pd.DataFrame({
            "age": np.array([20]),
            "class_worker": pd.Categorical(["?"], categories=["?", "Private"]),
            "det_ind_code": pd.Categorical([4], categories=[0, 4]),
            "instance_weight": np.array([0.5]),
        }),
    }


def test_census_cache_is_plain_arrays_checked_against_checksums(tmp_path, caplog):
    frames = _small_frames()
    path = tmp_path / _census._CACHE_FILENAME
    with open(path, "xb") as f:
        np.savez(f, **_census._frames_to_arrays(frames))
    with np.load(path, allow_pickle=False) as npz:  # no object array in it
        assert all(npz[name].dtype != object for name in npz.files)
    loaded = _census._load_cache(str(path))
    for name in frames:
        _assert_frame_equal(loaded[name], frames[name])
    # a cache whose content or sources do not match its checksums is not used
    for key, value in [("train/age/values", np.array([39, 51, 38])),
                       ("source_sha256", np.array(["0" * 64, "1" * 64]))]:
        arrays = _census._frames_to_arrays(frames)
        arrays[key] = value
        if key == "source_sha256":
            arrays["sha256"] = np.array(_census._arrays_digest(
                {k: v for k, v in arrays.items() if k != "sha256"}))
        path.unlink()
        with open(path, "xb") as f:
            np.savez(f, **arrays)
        assert _census._load_cache(str(path)) is None


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("as_npz", [False, True], ids=["pickle", "npz-with-object-array"])
def test_a_planted_census_cache_runs_no_code(tmp_path, as_npz):
    import pickle

    marker = tmp_path / "code-ran"
    path = tmp_path / _census._CACHE_FILENAME
    if as_npz:
        with open(path, "xb") as f:
            np.savez(f, frames=np.array([_Planted(str(marker))], dtype=object))
    else:
        path.write_bytes(pickle.dumps(_Planted(str(marker))))
    assert _census._load_cache(str(path)) is None
    assert not marker.exists()


def test_census_cache_round_trips_the_parsed_files(census_home, census_source):
    cached = _census._load_cache(
        str(census_home / _census.DATA_SUBFOLDER / _census._CACHE_FILENAME)
    )
    parsed = _census._parse_raw_files(
        {name: census_source / meta.filename for name, meta in _census.ARCHIVES.items()}
    )
    assert list(cached) == list(parsed)
    for name in parsed:
        _assert_frame_equal(cached[name], parsed[name])
