"""Sphinx configuration of the causal_router documentation.

Build (warnings are errors; nothing is fetched from the internet)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

or ``make docs``, which does the same in a virtual environment of its own. The notebooks in
``notebooks/`` are copied into ``docs/notebooks/`` and executed at build time at the reduced
sizes below (the ``CR_NB_*`` environment variables each notebook reads in its ``parameters``
cell); set them before the build to execute at other sizes.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))  # document this checkout, not another installed copy

import causal_router  # noqa: E402

# ----------------------------------------------------------------------------- notebooks
#: Sizes at which the notebooks are executed, unless set in the environment (the test suite's).
NOTEBOOK_SIZES = {"CR_NB_RUNS": "3", "CR_NB_JOBS": "2"}
for _name, _value in NOTEBOOK_SIZES.items():
    os.environ.setdefault(_name, _value)
# the kernel imports this checkout and draws no progress bars into the pages
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
os.environ["TQDM_DISABLE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


def _copy_notebooks() -> list[str]:
    """Copy notebooks/*.ipynb into docs/notebooks/ (only those that changed); returns their names."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    names = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        copy = target / path.name
        if not copy.exists() or not filecmp.cmp(path, copy, shallow=False):
            shutil.copyfile(path, copy)
        names.append(path.stem)
    for stale in target.glob("*.ipynb"):
        if stale.stem not in names:
            stale.unlink()
    return names


NOTEBOOKS = _copy_notebooks()

# ----------------------------------------------------------------------------- project
project = "causal_router"
author = "the causal_router developers"
copyright = "the causal_router developers"
release = version = causal_router.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "sphinxarg.ext",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: pages render offline
]

exclude_patterns = ["_build", "_templates", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_static_path = ["_static"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# ----------------------------------------------------------------------------- API reference
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "signature"  # type hints rendered in the signatures; the numpydoc sections say the types too
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# numpydoc validation of every public callable in the API reference (errors under -W): each
# parameter documented with a type and a description, no documented parameter that does not
# exist, a Returns section wherever a value is returned.
numpydoc_validation_checks = {"PR01", "PR02", "PR03", "PR04", "PR10", "RT01"}
add_module_names = False
# No intersphinx: the build must not reach the internet. Names of other libraries stay plain text.

# ----------------------------------------------------------------------------- notebooks (myst-nb)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "substitution"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_timeout = 1800  # per cell; a shared 2-core machine ran notebook 04 in 15 minutes
nb_execution_raise_on_error = True
nb_execution_in_temp = True  # files the notebooks write go to a scratch folder
nb_merge_streams = True
myst_substitutions = {
    "notebook_sizes": ", ".join(f"``{k}={os.environ[k]}``" for k in NOTEBOOK_SIZES),
}

# ----------------------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"causal_router {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False


# ----------------------------------------------------------------------------- hooks
def _skip_foreign_member(app, what, name, obj, skip, options):
    """Document the members causal_router defines (its own base classes' included) and no member
    inherited from scikit-learn or another library (``set_params``, ``set_fit_request``, ...)."""
    if what != "class" or skip:
        return None
    target = getattr(obj, "fget", None) or getattr(obj, "__func__", None) or obj
    module = getattr(target, "__module__", None) or getattr(getattr(target, "__objclass__", None), "__module__", None)
    if isinstance(module, str) and not module.startswith("causal_router"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_member)
