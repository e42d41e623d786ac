"""Execute every notebook in notebooks/ at a small size, and check that none is stored with outputs.

Each notebook's first code cell (tagged ``parameters``) reads its sizes from environment
variables (``CR_NB_RUNS``, ``CR_NB_N``, ...); the kernel inherits the ones set here. Notebooks
that read the real data sets (PandaLM, PRD Vicuna80) run on the copy bundled with the package
(or on the raw files under ``$CAUSAL_ROUTER_DATA`` when it is set); they are skipped only in an
installation that lacks the bundled copy and has no ``$CAUSAL_ROUTER_DATA``.

Measured on the 2-core machine with these settings (kernel start included; `python -m pytest -q
--durations=30` on 3 December 2026, load falling from 7 to 0): 06 83 s, 05 67 s, 02 66 s, 03 46 s,
07 45 s, 08 34 s, 01 23 s. Notebooks 04 (the refutation suite, 139 s), 05 (the paper's
experiment) and 06 (acquisition curves) are marked slow: with them the default run took 13.4
minutes on an idle machine, against the project's budget of about 10.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: Small sizes for CI, read by each notebook's ``parameters`` cell.
SMALL_SIZES = {
    "CR_NB_RUNS": "3",
    "CR_NB_JOBS": "2",
}
#: Smaller data where a notebook's default size dominates its run time.
NOTEBOOK_SIZES = {"07_k_models.ipynb": {"CR_NB_N": "1200"}}
#: Code that marks a notebook as one that reads the real data sets.
REAL_DATA_MARKERS = ("default_data_dir(", "load_pandalm(", "load_prd_vicuna80(")


def _bundled_real_data() -> bool:
    """Whether the installed package carries its copy of the real data sets."""
    from causal_router.datasets import _bundled

    files = [_bundled.MANIFEST, *_bundled.TABLE_FILES.values()]
    return all((_bundled.DATA / name).is_file() for name in files)


def _ids(paths):
    return [p.name for p in paths]


def _code_sources(nb_json: dict) -> str:
    return "\n".join("".join(c.get("source", "")) for c in nb_json.get("cells", [])
                     if c.get("cell_type") == "code")


@pytest.fixture(scope="module")
def python3_kernel():
    """The Jupyter kernel ``python3`` (ipykernel in this environment)."""
    pytest.importorskip("nbclient")
    pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel", reason="ipykernel is needed to run notebooks: pip install -e '.[test]'")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail("no Jupyter kernel named 'python3': run `python -m ipykernel install --user`")
    return "python3"


def test_notebooks_found():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_no_outputs(path):
    """Notebooks are committed clean: no outputs, no execution counts."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4, f"{path.name}: not an nbformat 4 notebook"
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell.get("cell_type") == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} have stored outputs or execution counts; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_parameters_cell(path):
    """The first code cell holds the sizes (papermill's ``parameters`` tag)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c.get("cell_type") == "code")
    assert "parameters" in first.get("metadata", {}).get("tags", []), \
        f"{path.name}: the first code cell is not tagged 'parameters'"


#: Notebooks whose runs keep the default run over its budget (04: the refutation suite three times,
#: 139 s; 05: the paper's experiment, 67 s; 06: acquisition curves, 83 s): marked slow (CI runs them).
SLOW_NOTEBOOKS = {"04_refutations.ipynb", "05_reproduce_paper.ipynb", "06_active_gold.ipynb"}


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_NOTEBOOKS else p
                                  for p in NOTEBOOKS], ids=_ids(NOTEBOOKS))
def test_notebook_runs(path, python3_kernel, tmp_path, monkeypatch):
    """The notebook executes top to bottom without error at the small sizes, in a scratch folder."""
    import nbclient
    import nbformat

    from causal_router.datasets import default_data_dir

    nb = nbformat.read(path, as_version=4)
    if any(marker in _code_sources(nb) for marker in REAL_DATA_MARKERS):
        if default_data_dir() is None and not _bundled_real_data():
            pytest.skip(f"{path.name} reads the real data sets (PandaLM, PRD Vicuna80): this installation lacks "
                        "the bundled copy; reinstall causal_router or set CAUSAL_ROUTER_DATA to a folder holding "
                        "pandalm/ and prd_vicuna80/")
    for name, value in {**SMALL_SIZES, **NOTEBOOK_SIZES.get(path.name, {})}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)

    client = nbclient.NotebookClient(nb, timeout=600, kernel_name=python3_kernel,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
