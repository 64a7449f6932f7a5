"""The documentation builds offline, with warnings as errors, and is complete.

One ``sphinx-build -W --keep-going -j 1 -b html`` run (about half a minute on
2 CPU cores; the examples are rendered, never executed). The sources are
copied to a temporary folder first, so that the files autosummary and
sphinx-gallery generate (docs/generated, docs/auto_examples) never land in the
checkout. Sphinx and its extensions come with the test extra (``pip install ".[test]"``).
"""

import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sphinx  # noqa: F401  (a test dependency: pip install ".[test]")

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
EXAMPLES = REPO_ROOT / "examples"
# Modules whose __all__ is the public API (the estimators are in sklearn_mmoe).
PUBLIC_MODULES = [
    "sklearn_mmoe",
    "sklearn_mmoe.nn",
    "sklearn_mmoe.export",
    "sklearn_mmoe.weighting",
    "sklearn_mmoe.metrics",
    "sklearn_mmoe.datasets",
]


# Under pytest-xdist (the suite runs with ``-n 2``), the tests of the built
# docs run in one worker so that the docs are built once.
built_docs = pytest.mark.xdist_group("docs-build")


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """Build the docs once; return the HTML output folder."""
    tmp = tmp_path_factory.mktemp("docs")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "build", "_build", "generated", "auto_examples")
    for name in ("docs", "examples", "sklearn_mmoe"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
    out = tmp / "html"
    cmd = [
        sys.executable, "-m", "sphinx",
        "-W", "--keep-going", "-j", "1", "-q", "-b", "html",
        str(src / "docs"), str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=src)
    assert result.returncode == 0, (
        f"sphinx-build failed (exit {result.returncode}):\n{result.stderr[-20000:]}"
    )
    return out


def _read(path):
    assert path.is_file(), f"{path.name} was not built"
    return path.read_text(encoding="utf-8")


@built_docs
def test_index(html):
    page = _read(html / "index.html")
    assert "First example" in page
    assert "MMoEClassifier" in page
    for target in ("user_guide.html", "api.html", "auto_examples/index.html"):
        assert f'href="{target}' in page, target


@built_docs
def test_markdown_pages(html):
    """Every Markdown page of docs/ is built (myst-parser)."""
    pages = sorted(DOCS.glob("*.md"))
    assert {p.stem for p in pages} >= {"user_guide", "esmm", "performance", "reproductions"}
    for page in pages:
        _read(html / f"{page.stem}.html")
    assert "Targets with missing labels" in _read(html / "user_guide.html")


@built_docs
def test_estimator_page(html):
    """A class docstring built from sklearn_mmoe._docs renders every section."""
    page = _read(html / "generated" / "sklearn_mmoe.MMoEClassifier.html")
    for text in ("Parameters", "n_experts", "Attributes", "classes_", "See also",
                 "OMoEClassifier", "Examples", "Methods", "predict_proba"):
        assert text in page, text
    # scikit-learn's metadata-routing methods are left to its own docs
    assert "set_fit_request" not in page


@built_docs
def test_api_reference_is_complete(html):
    """Every public object (``__all__``) and every experiment has a page."""
    generated = html / "generated"
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        missing += [
            f"{module_name}.{name}"
            for name in module.__all__
            if name != "__version__"
            and not (generated / f"{module_name}.{name}.html").is_file()
        ]
    experiments = importlib.import_module("sklearn_mmoe.experiments")
    missing += [
        f"sklearn_mmoe.experiments.{info.name}"
        for info in pkgutil.iter_modules(experiments.__path__)
        if not info.name.startswith("_") and not (generated / f"sklearn_mmoe.experiments.{info.name}.html").is_file()
    ]
    assert not missing, f"no API page for {missing} (add them to docs/api.rst)"


@built_docs
def test_gallery(html):
    """Every example is a gallery page, rendered without being run."""
    index = _read(html / "auto_examples" / "index.html")
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert {p.stem for p in scripts} >= {"quickstart", "esmm_simulation"}
    for script in scripts:
        assert f"{script.stem}.html" in index, script.name
        page = _read(html / "auto_examples" / f"{script.stem}.html")
        assert "sphx-glr-script-out" not in page, f"{script.name} was executed"
    assert "<h1>Quickstart" in _read(html / "auto_examples" / "quickstart.html")


# ------------------------------------------------------------------ snippets
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def snippets(path):
    """``(line, code)`` of each ```python block of a Markdown page, in order."""
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in SNIPPET.finditer(text)]


@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p)], ids=lambda p: p.name)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_snippets_run_as_written(page, tmp_path, monkeypatch):
    """A page's Python snippets run in order in one namespace, as a reader pastes them."""
    monkeypatch.chdir(tmp_path)  # the snippets write files (model.onnx, ...)
    namespace = {"__name__": "__snippets__"}
    for line, code in snippets(page):
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"the snippet at {page.name}:{line} raised {exc!r}")
