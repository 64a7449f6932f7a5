"""Sphinx configuration of the sklearn-mmoe documentation.

Build (from the repository root, offline, warnings are errors)::

    sphinx-build -W --keep-going -j 1 -b html docs docs/build/html

or ``make -C docs html``. Requirements: ``pip install ".[docs]"``.

The build never uses the network (no intersphinx) and never runs the
examples (sphinx-gallery only renders them). ``nitpicky = True``: every
cross-reference must resolve; the few targets that cannot resolve without
intersphinx (other packages' objects) are listed in ``nitpick_ignore_regex``.
"""

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the package of this checkout, not an installed copy.
sys.path.insert(0, str(ROOT))

import sklearn_mmoe  # noqa: E402

# -- Project -----------------------------------------------------------------
project = "sklearn-mmoe"
author = "sklearn-mmoe developers"
copyright = "sklearn-mmoe developers"
release = sklearn_mmoe.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["build", "_build", "Thumbs.db", ".DS_Store"]

# Every reference must resolve (build with -W --keep-going).
nitpicky = True
# Objects of other packages: without intersphinx (the build is offline) they
# cannot be linked. Ignore references into these packages only; a broken
# reference to anything of sklearn_mmoe still fails the build.
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|sklearn|numpy|pandas|scipy|skorch)(\..+)?"),
]

# -- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # modules' __all__ says what is public
# Data whose value is noise on the page (e.g. a dict of lambdas): docstring only.
autosummary_context = {
    "hide_value": ["sklearn_mmoe.experiments.census.MODELS"],
}
autodoc_member_order = "bysource"
add_module_names = False

# Members come from the templates in _templates/autosummary (one page per
# object, methods on their class's page), not from numpydoc's tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# torch.nn.Module's own API (train, eval, to, state_dict, ...) is inherited by
# every network of sklearn_mmoe.nn; it is documented by PyTorch, not here.
# ``forward`` stays: it is each network's call.
try:
    import torch.nn

    _TORCH_MODULE_MEMBERS = set(dir(torch.nn.Module)) - {"forward"}
except ImportError:  # pragma: no cover - torch is a dependency
    _TORCH_MODULE_MEMBERS = set()
# scikit-learn's estimator API that is worth listing on an estimator's page.
_SKLEARN_API = {"get_params", "set_params"}


def _skip_member(app, what, name, obj, skip, options):
    """Methods of a class page: this package's, plus get_params/set_params.

    Inherited scikit-learn metadata-routing methods (``set_fit_request``,
    ``get_metadata_routing``, ...) and torch.nn.Module's API are left to
    those libraries' documentation.
    """
    if skip or not callable(obj) or name.startswith("_"):
        return None
    if name in _TORCH_MODULE_MEMBERS:
        return True
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] != "sklearn_mmoe" and name not in _SKLEARN_API:
        return True
    return None


# -- Markdown (myst-parser) --------------------------------------------------
myst_heading_anchors = 3

# -- sphinx-gallery ----------------------------------------------------------
# The examples take minutes: render them, never run them.
plot_gallery = "False"
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"^$",  # matches no file: nothing is executed
    "plot_gallery": "False",
    "download_all_examples": False,
    "write_computation_times": False,
    "within_subsection_order": "FileNameSortKey",
    "show_signature": False,
    "remove_config_comments": True,
    # The examples are command-line scripts (argparse): no notebooks.
    "notebook_extensions": set(),
    # Nothing runs, so nothing to scrape or reset.
    "image_scrapers": (),
    "reset_modules": (),
}


_TITLE_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


def _gallery_titles(app, docname, source):
    """Make the first line of an example's docstring the page title.

    sphinx-gallery uses the docstring as the page text and expects it to
    start with a reST title; the examples' docstrings start with a one-line
    summary instead. Underline that line in the generated page (a no-op for
    an example whose docstring already has a title).
    """
    gallery = sphinx_gallery_conf["gallery_dirs"]
    if not docname.startswith(gallery + "/") or docname == gallery + "/index":
        return
    lines = source[0].split("\n")
    label = next(
        (i for i, line in enumerate(lines) if line.startswith(".. _sphx_glr_")), None
    )
    if label is None:
        return
    first = next((i for i in range(label + 1, len(lines)) if lines[i].strip()), None)
    if first is None or first + 1 >= len(lines):
        return
    if _TITLE_UNDERLINE.match(lines[first + 1]) or _TITLE_UNDERLINE.match(lines[first]):
        return  # already a title
    if lines[first + 1].strip():
        return  # a paragraph of several lines: leave it alone
    title = lines[first].strip().rstrip(".")
    lines[first : first + 1] = [title, "=" * len(title)]
    source[0] = "\n".join(lines)


def _no_torch_docstrings(app, what, name, obj, options, lines):
    """Drop the docstring a method inherits from torch.nn.Module.

    A network's ``forward`` has no docstring of its own; autodoc would show
    torch's generic "Define the computation performed at every call" text
    (with references into PyTorch's docs) instead.
    """
    if (
        what == "method"
        and getattr(obj, "__doc__", None) is None
        and getattr(obj, "__name__", None) in _TORCH_MODULE_MEMBERS | {"forward"}
    ):
        lines[:] = []


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    # before numpydoc (priority 500) turns the docstring into reST
    app.connect("autodoc-process-docstring", _no_torch_docstrings, priority=400)
    app.connect("source-read", _gallery_titles)


# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-mmoe {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "auto_examples/index": []}
html_show_sourcelink = False
html_copy_source = False
