"""Fixtures shared by the test modules."""

import importlib
import importlib.util
import inspect
import os
import pkgutil
import shutil
from pathlib import Path

import pytest

from sklearn_mmoe.datasets import _census, fetch_census_income

REPO_ROOT = Path(__file__).resolve().parents[1]
CENSUS_FILES = ("census-income.data.gz", "census-income.test.gz")


def load_example(name):
    """The module of ``examples/<name>.py`` (its ``main`` is not run)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_estimators(kind=None):
    """The package's public estimator classes, found by walking its modules.

    As scikit-learn's and imbalanced-learn's ``all_estimators``: every class
    of a ``sklearn_mmoe`` module that subclasses ``BaseEstimator``, has
    ``fit`` and a public name, sorted by name. ``kind`` "classifier" or
    "regressor" keeps those (``MultiTaskEstimator`` is neither).
    """
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    import sklearn_mmoe

    found = {}
    for info in pkgutil.walk_packages(sklearn_mmoe.__path__, "sklearn_mmoe."):
        if info.name.endswith("__main__"):
            continue
        for name, obj in inspect.getmembers(importlib.import_module(info.name), inspect.isclass):
            if (issubclass(obj, BaseEstimator) and hasattr(obj, "fit")
                    and obj.__module__.startswith("sklearn_mmoe.")
                    and not name.startswith("_") and not inspect.isabstract(obj)):
                found[name] = obj
    mixin = {"classifier": ClassifierMixin, "regressor": RegressorMixin, None: object}[kind]
    return [cls for _, cls in sorted(found.items()) if issubclass(cls, mixin)]


def small(cls, width=8, **params):
    """A small, quick configuration of any estimator of the package.

    Layer sizes follow ``width``: ``(width,)`` for a shared bottom and each
    expert, ``(width, width // 2)`` for the baselines' task networks,
    ``(width // 2,)`` for the towers; 3 experts (2 shared ones for CGC and
    PLE), Tucker rank 2, ``random_state=0``. Only the parameters ``cls``
    has are set; ``params`` override them.
    """
    sizes = dict(
        bottom_hidden_sizes=(width,), n_experts=3, n_shared_experts=2,
        expert_hidden_sizes=(width,), tower_hidden_sizes=(width // 2,),
        hidden_sizes=(width, width // 2), rank=2, random_state=0,
    )
    accepted = cls().get_params()
    return cls(**{**{k: v for k, v in sizes.items() if k in accepted}, **params})


def network(model):
    """The architecture module of a fitted estimator (behind its input embedding, if any)."""
    module = model.net_.module_
    return getattr(module, "network", module)


def shared_data_dir():
    """The project's shared data folder: $SKLEARN_MMOE_DATA or ../shared/data."""
    return Path(os.environ.get("SKLEARN_MMOE_DATA", REPO_ROOT.parent / "shared" / "data"))


def make_census_home(root, source):
    """A scikit-learn data home holding copies of the raw UCI files."""
    census_dir = Path(root) / _census.DATA_SUBFOLDER
    census_dir.mkdir(parents=True)
    for name in CENSUS_FILES:
        shutil.copyfile(source / name, census_dir / name)
    return Path(root)


@pytest.fixture(scope="session")
def census_source():
    """Folder holding the real Census-Income files (tests never download)."""
    folder = shared_data_dir() / "census-income"
    if not all((folder / name).is_file() for name in CENSUS_FILES):
        pytest.skip(f"Census-Income files not found in {folder} (set SKLEARN_MMOE_DATA)")
    return folder


@pytest.fixture(scope="session")
def census_home(census_source, tmp_path_factory):
    """Data home with the raw files and the parsed cache (parsed once per run)."""
    home = make_census_home(tmp_path_factory.mktemp("census_home"), census_source)
    fetch_census_income(data_home=home, download_if_missing=False)
    return home
