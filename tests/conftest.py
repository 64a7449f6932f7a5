"""Fixtures shared by the test modules."""

import importlib.util
import os
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
