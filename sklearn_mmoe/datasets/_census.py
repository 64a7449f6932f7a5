"""UCI Census-Income (KDD) data set, as used in the MMoE and PLE papers.

The data set page is available from the UCI Machine Learning Repository

    https://archive.ics.uci.edu/dataset/117/census+income+kdd

Donors: Terran Lane and Ronny Kohavi (Silicon Graphics). Licence: CC BY 4.0.
"""

# SPDX-License-Identifier: BSD-3-Clause

import contextlib
import gzip
import hashlib
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import namedtuple
from importlib import resources
from numbers import Integral
from os.path import exists, join

import numpy as np
import pandas as pd
from sklearn.datasets import get_data_home
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Options, StrOptions, validate_params

__all__ = ["fetch_census_income"]

logger = logging.getLogger(__name__)

# Remote gzip file. `size` and `sha256` describe the *decompressed* content:
# the gzip wrapping of the copies found in the wild differs (header name,
# mtime, compression level) while the content does not.
RemoteGzipMetadata = namedtuple(
    "RemoteGzipMetadata", ["filename", "url", "size", "sha256"]
)

_BASE_URL = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"
)

ARCHIVES = {
    "train": RemoteGzipMetadata(
        filename="census-income.data.gz",
        url=_BASE_URL + "census-income.data.gz",
        size=103_874_469,
        sha256="3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
    ),
    "test": RemoteGzipMetadata(
        filename="census-income.test.gz",
        url=_BASE_URL + "census-income.test.gz",
        size=51_918_813,
        sha256="98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
    ),
}

# Sub-folder of the data home holding the raw files and the parsed cache.
DATA_SUBFOLDER = "census_income"
# Parsed frames, written once after the raw files passed their checksum, as
# a .npz of plain arrays read with allow_pickle=False: a planted file cannot
# run code. Bump _CACHE_VERSION whenever the parsed representation changes.
_CACHE_FILENAME = "census_income_frames.npz"
_CACHE_VERSION = 2

# Seed of the fixed 1:1 validation/test split of census-income.test.
SPLIT_SEED = 2018

# Column names, in file order (short names used by MMoE reproductions).
COLUMN_NAMES = [
    "age",
    "class_worker",
    "det_ind_code",
    "det_occ_code",
    "education",
    "wage_per_hour",
    "hs_college",
    "marital_stat",
    "major_ind_code",
    "major_occ_code",
    "race",
    "hisp_origin",
    "sex",
    "union_member",
    "unemp_reason",
    "full_or_part_emp",
    "capital_gains",
    "capital_losses",
    "stock_dividends",
    "tax_filer_stat",
    "region_prev_res",
    "state_prev_res",
    "det_hh_fam_stat",
    "det_hh_summ",
    "instance_weight",
    "mig_chg_msa",
    "mig_chg_reg",
    "mig_move_reg",
    "mig_same",
    "mig_prev_sunbelt",
    "num_emp",
    "fam_under_18",
    "country_father",
    "country_mother",
    "country_self",
    "citizenship",
    "own_or_self",
    "vet_question",
    "vet_benefits",
    "weeks_worked",
    "year",
    "income",
]

NUMERICAL_FEATURES = [
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "stock_dividends",
    "num_emp",
    "weeks_worked",
]

# Columns that are never input features: education and marital status are
# removed by the MMoE paper (they define labels), income is a label, and UCI
# says the instance weight must not be used as a feature.
EXCLUDED_COLUMNS = ["education", "marital_stat", "income", "instance_weight"]

FEATURE_NAMES = [name for name in COLUMN_NAMES if name not in EXCLUDED_COLUMNS]
CATEGORICAL_FEATURES = [
    name for name in FEATURE_NAMES if name not in NUMERICAL_FEATURES
]
# Every nominal column of the file, features and label sources alike.
_NOMINAL_COLUMNS = [
    name
    for name in COLUMN_NAMES
    if name not in NUMERICAL_FEATURES and name != "instance_weight"
]

INCOME_POSITIVE = "50000+."
NEVER_MARRIED = "Never married"
# "Education level is at least college": an associates degree or higher.
COLLEGE_DEGREES = (
    "Associates degree-occup /vocational",
    "Associates degree-academic program",
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)

TASK_GROUPS = {
    1: ("income_50k", "never_married"),
    2: ("education_college", "never_married"),
}

SUBSETS = ("train", "validation", "test")

_CHUNK_SIZE = 1 << 20
_N_RETRIES = 3
_RETRY_DELAY = 1.0


@contextlib.contextmanager
def _atomic_file(dirname, filename):
    """Yield a temporary path in `dirname` that becomes `filename` on success.

    The rename is atomic on one file system, so `filename` is either absent
    or complete; on any error the temporary file is removed. Files created
    with ``open(path, "xb")`` get the usual umask-based permissions (unlike
    ``tempfile.mkstemp``, which makes them private).
    """
    temp_path = join(dirname, f".{filename}.{uuid.uuid4().hex}.part")
    try:
        yield temp_path
        os.replace(temp_path, join(dirname, filename))
    except BaseException:
        if exists(temp_path):
            os.remove(temp_path)
        raise


def _gzip_content_digest(path):
    """Return ``(size, sha256 hexdigest)`` of the decompressed content.

    The file is streamed, so memory use does not depend on its size. Raise an
    OSError, EOFError or zlib.error if `path` is not a valid gzip file.
    """
    digest = hashlib.sha256()
    size = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(_CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _verify_gzip(path, metadata, *, source):
    """Raise an OSError if the decompressed content of `path` is not right."""
    try:
        size, sha256 = _gzip_content_digest(path)
    except (OSError, EOFError, zlib.error) as exc:
        reason = f"it is not a valid gzip file ({exc})"
    else:
        if size == metadata.size and sha256 == metadata.sha256:
            return
        reason = (
            f"its decompressed content has {size} bytes and sha256 {sha256}, "
            f"expected {metadata.size} bytes and sha256 {metadata.sha256}"
        )
    raise OSError(f"The file {metadata.filename} {source} is corrupted: {reason}.")


def _download_gzip(metadata, dirname, *, n_retries=_N_RETRIES, delay=_RETRY_DELAY):
    """Download `metadata.url` into `dirname`, verify it, move it into place.

    The file is written to a temporary file in `dirname` and only renamed to
    its final name (an atomic operation on the same file system) once its
    decompressed content matches the expected size and sha256. A corrupted
    download raises an OSError and leaves no file behind.
    """
    logger.info("Downloading %s", metadata.url)
    with _atomic_file(dirname, metadata.filename) as temp_path:
        with open(temp_path, "xb") as out:
            while True:
                try:
                    out.seek(0)
                    out.truncate()
                    with urllib.request.urlopen(metadata.url) as response:
                        shutil.copyfileobj(response, out, _CHUNK_SIZE)
                    break
                except (urllib.error.URLError, TimeoutError) as exc:
                    if n_retries <= 0:
                        raise
                    logger.warning("Retrying download of %s after %r", metadata.url, exc)
                    n_retries -= 1
                    time.sleep(delay)
        _verify_gzip(temp_path, metadata, source=f"downloaded from {metadata.url}")
    return join(dirname, metadata.filename)


def _read_raw(path):
    """Parse one raw census-income gzip file into a DataFrame."""
    return pd.read_csv(
        path,
        header=None,
        names=COLUMN_NAMES,
        skipinitialspace=True,
        # Keep every value as written: "?" is a category of its own, and
        # hisp_origin has a genuine "NA" category that pandas would otherwise
        # read as a missing value.
        keep_default_na=False,
    )


def _parse_raw_files(paths):
    """Parse the raw files; nominal columns share one dtype across files."""
    frames = {name: _read_raw(path) for name, path in paths.items()}
    for column in _NOMINAL_COLUMNS:
        values = pd.concat([frame[column] for frame in frames.values()]).unique()
        dtype = pd.CategoricalDtype(categories=np.sort(np.asarray(values)))
        for frame in frames.values():
            frame[column] = frame[column].astype(dtype)
    for frame in frames.values():
        frame["instance_weight"] = frame["instance_weight"].astype(np.float64)
    return frames


def _source_digests():
    """The sha256 of the raw files' content that a cache must have been built from."""
    return np.array([ARCHIVES[name].sha256 for name in sorted(ARCHIVES)])


def _arrays_digest(arrays):
    """sha256 over the names, dtypes, shapes and bytes of ``arrays`` (sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _plain_values(values):
    """A column's values (or categories) as a numpy array that needs no pickle."""
    array = np.asarray(values)
    if array.dtype == object:  # pandas' string columns
        array = array.astype(str)
    return array


def _frames_to_arrays(frames):
    """Frames -> a flat dict of plain arrays: categorical columns as codes + categories."""
    arrays = {"version": np.array(_CACHE_VERSION), "source_sha256": _source_digests()}
    arrays["frames"] = np.array(list(frames))
    for name, frame in frames.items():
        arrays[f"{name}/columns"] = np.array(list(frame.columns))
        for column in frame.columns:
            values = frame[column]
            if isinstance(values.dtype, pd.CategoricalDtype):
                arrays[f"{name}/{column}/codes"] = values.cat.codes.to_numpy()
                arrays[f"{name}/{column}/categories"] = _plain_values(values.cat.categories)
            else:
                arrays[f"{name}/{column}/values"] = _plain_values(values)
    arrays["sha256"] = np.array(_arrays_digest(arrays))
    return arrays


def _arrays_to_frames(arrays):
    """Inverse of :func:`_frames_to_arrays`."""
    frames = {}
    for name in arrays["frames"].tolist():
        columns = {}
        for column in arrays[f"{name}/columns"].tolist():
            if f"{name}/{column}/codes" in arrays:
                columns[column] = pd.Categorical.from_codes(
                    arrays[f"{name}/{column}/codes"],
                    categories=arrays[f"{name}/{column}/categories"],
                )
            else:
                columns[column] = arrays[f"{name}/{column}/values"]
        frames[name] = pd.DataFrame(columns)
    return frames


def _load_cache(cache_path):
    """Return the cached parsed frames, or None if there is no usable cache.

    The cache is read with ``allow_pickle=False`` and used only if it was
    built from raw files with the expected checksums and its arrays match
    the digest written with them; anything else is rebuilt from the raw files.
    """
    if not exists(cache_path):
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        digest = arrays.pop("sha256").item()
        if arrays["version"].item() != _CACHE_VERSION:
            return None
        if not np.array_equal(arrays["source_sha256"], _source_digests()):
            raise ValueError("built from other raw files than the expected ones")
        if digest != _arrays_digest(arrays):
            raise ValueError("its content does not match its sha256")
        return _arrays_to_frames(arrays)
    except Exception as exc:  # unreadable or not ours: rebuild it from the raw files
        logger.warning("Ignoring unusable cache %s: %r", cache_path, exc)
        return None


def _fetch_frames(data_home, download_if_missing):
    """Return the parsed train and test files as a dict of DataFrames."""
    census_dir = join(get_data_home(data_home=data_home), DATA_SUBFOLDER)
    cache_path = join(census_dir, _CACHE_FILENAME)
    frames = _load_cache(cache_path)
    if frames is not None:
        return frames

    paths = {name: join(census_dir, meta.filename) for name, meta in ARCHIVES.items()}
    missing = [name for name, path in paths.items() if not exists(path)]
    if missing and not download_if_missing:
        raise OSError("Data not found and `download_if_missing` is False")

    os.makedirs(census_dir, exist_ok=True)
    for name, meta in ARCHIVES.items():
        if name in missing:
            _download_gzip(meta, census_dir)  # verified before being kept
        else:
            _verify_gzip(
                paths[name],
                meta,
                source=f"in {census_dir} (delete it to download it again)",
            )

    frames = _parse_raw_files(paths)

    # The cache's presence means the raw files passed their checksum.
    with _atomic_file(census_dir, _CACHE_FILENAME) as temp_path:
        with open(temp_path, "xb") as f:
            np.savez(f, **_frames_to_arrays(frames))
    return frames


def _split_indices(n_rows):
    """Fixed 1:1 random split of census-income.test: (validation, test)."""
    permutation = np.random.RandomState(SPLIT_SEED).permutation(n_rows)
    half = n_rows // 2
    return np.sort(permutation[:half]), np.sort(permutation[half:])


def _make_targets(frame, task_group):
    """Binary targets (int64 columns) of a task group."""
    columns = {
        "income_50k": lambda: frame["income"] == INCOME_POSITIVE,
        "never_married": lambda: frame["marital_stat"] == NEVER_MARRIED,
        "education_college": lambda: frame["education"].isin(COLLEGE_DEGREES),
    }
    return pd.DataFrame(
        {
            name: columns[name]().to_numpy(dtype=np.int64)
            for name in TASK_GROUPS[task_group]
        },
        index=frame.index,
    )


def _load_descr():
    descr = resources.files("sklearn_mmoe.datasets").joinpath(
        "descr", "census_income.rst"
    )
    return descr.read_text(encoding="utf-8")


@validate_params(
    {
        "data_home": [str, os.PathLike, None],
        "task_group": [Options(Integral, {1, 2})],
        "subset": [StrOptions({"train", "validation", "test", "all"})],
        "as_frame": ["boolean"],
        "return_X_y": ["boolean"],
        "download_if_missing": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def fetch_census_income(
    *,
    data_home=None,
    task_group=1,
    subset="train",
    as_frame=True,
    return_X_y=False,
    download_if_missing=True,
):
    """Load the UCI Census-Income (KDD) data set with MMoE task groups.

    Download it if necessary.

    ==================  ====================================
    Tasks                          2 binary classifications
    Samples train                                   199,523
    Samples validation                               49,881
    Samples test                                     49,881
    Features                38 (7 numerical, 31 categorical)
    ==================  ====================================

    This is the real-data benchmark of the MMoE paper (Ma et al., KDD 2018,
    section 6.3) and of the PLE paper. The protocol follows the MMoE paper:

    - train is ``census-income.data`` (199,523 rows);
    - ``census-income.test`` (99,762 rows) is split 1:1 at random into a
      validation and a test set (49,881 rows each). The split is fixed: the
      rows are permuted with ``np.random.RandomState(2018).permutation``, the
      first half is the validation set and the second half the test set
      (each half is then put back in file order), so it is identical on every
      call and every machine.

    Task groups (targets are 0/1 integers):

    - ``task_group=1``: ``income_50k`` (income is ``"50000+."``) and
      ``never_married`` (marital status is ``"Never married"``);
    - ``task_group=2``: ``education_college`` and ``never_married``.
      The paper never defines "education level is at least college"; here
      it means an associates degree or higher (associates occupational or
      academic, bachelors, masters, professional school or doctorate
      degree). With this definition the absolute Pearson correlation of the
      two labels is 0.2400 on the train file, close to the 0.2373 the paper
      reports (group 1: 0.1782 against the paper's 0.1768).

    In both groups the input features exclude ``education`` and
    ``marital_stat`` (as in the paper), ``income`` (a label) and
    ``instance_weight``, which UCI says must not be used as a feature; it is
    returned separately as ``sample_weight``. Missing values, written ``"?"``
    in the files, are kept as a category of their own.

    The raw files are downloaded into ``<data_home>/census_income/`` and
    checked against the sha256 of their decompressed content. The parsed
    frames are then cached in the same folder as a ``.npz`` of plain arrays
    (read without pickle, so that a file planted there cannot run code, and
    used only if its content matches the sha256 written with it), so later
    calls do not parse the files again.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Specify another download and cache folder for the data sets. By
        default all scikit-learn data is stored in '~/scikit_learn_data'
        subfolders.

    task_group : {1, 2}, default=1
        Which pair of tasks to return as targets: 1 for
        ``("income_50k", "never_married")``, 2 for
        ``("education_college", "never_married")``.

    subset : {"train", "validation", "test", "all"}, default="train"
        Which split to load. "all" returns the train, validation and test
        sets concatenated in that order; the ``subset`` attribute of the
        result then tells which split each row belongs to.

    as_frame : bool, default=True
        If True, the data is a pandas DataFrame with numerical columns and
        categorical (``category`` dtype) columns, and the target is a
        DataFrame with one integer column per task. If False, the data is a
        numpy array of dtype object and the target an integer array.

    return_X_y : bool, default=False
        If True, returns ``(data, target)`` instead of a Bunch object.

    download_if_missing : bool, default=True
        If False, raise an OSError if the data is not locally available
        instead of trying to download the data from the source site.

    Returns
    -------
    dataset : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : {DataFrame, ndarray} of shape (n_samples, 38)
            The input features. A DataFrame if `as_frame` is True, otherwise
            an ndarray of dtype object.
        target : {DataFrame, ndarray} of shape (n_samples, 2)
            The two binary targets of the task group (int64).
        sample_weight : ndarray of shape (n_samples,)
            The census instance weight (float64). Use it only as a sample
            weight, never as a feature.
        frame : DataFrame of shape (n_samples, 40) or None
            `data` and `target` side by side, if `as_frame` is True;
            None otherwise.
        feature_names : list of str
            The names of the feature columns.
        target_names : list of str
            The names of the target columns.
        categorical_features : list of str
            The names of the categorical (nominal) features.
        numerical_features : list of str
            The names of the numerical features.
        subset : ndarray of shape (n_samples,)
            The split ("train", "validation" or "test") of each row.
        DESCR : str
            Description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        The `data` and `target` described above.

    Examples
    --------
    >>> from sklearn_mmoe.datasets import fetch_census_income
    >>> census = fetch_census_income(task_group=1)  # doctest: +SKIP
    >>> census.data.shape  # doctest: +SKIP
    (199523, 38)
    >>> census.target_names  # doctest: +SKIP
    ['income_50k', 'never_married']
    >>> census.target.mean().round(3)  # doctest: +SKIP
    income_50k       0.062
    never_married    0.433
    dtype: float64
    """
    frames = _fetch_frames(data_home, download_if_missing)

    validation_idx, test_idx = _split_indices(len(frames["test"]))
    parts = {
        "train": frames["train"],
        "validation": frames["test"].iloc[validation_idx],
        "test": frames["test"].iloc[test_idx],
    }
    if subset == "all":
        frame = pd.concat([parts[name] for name in SUBSETS], ignore_index=True)
        subset_names = np.repeat(
            np.array(SUBSETS, dtype=object), [len(parts[name]) for name in SUBSETS]
        )
    else:
        frame = parts[subset].reset_index(drop=True)
        subset_names = np.full(len(frame), subset, dtype=object)

    data = frame[FEATURE_NAMES]
    target = _make_targets(frame, task_group)
    sample_weight = frame["instance_weight"].to_numpy(dtype=np.float64)
    target_names = list(TASK_GROUPS[task_group])

    if as_frame:
        full_frame = pd.concat([data, target], axis=1)
    else:
        full_frame = None
        data = data.to_numpy(dtype=object)
        target = target.to_numpy(dtype=np.int64)

    if return_X_y:
        return data, target

    return Bunch(
        data=data,
        target=target,
        sample_weight=sample_weight,
        frame=full_frame,
        feature_names=list(FEATURE_NAMES),
        target_names=target_names,
        categorical_features=list(CATEGORICAL_FEATURES),
        numerical_features=list(NUMERICAL_FEATURES),
        subset=subset_names,
        DESCR=_load_descr(),
    )
