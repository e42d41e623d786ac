"""The measured tables of README.md and docs/results.md agree with the result files they come from.

``benchmarks/tables.py`` builds every marked table (``<!-- table: name -->``) from
``benchmarks/results/``; these tests check that the pages in the repository agree with it, and
that a changed cell in a copy of a page is caught and named. Reading the result files takes
about a second; nothing is rerun.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "tables.py"


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("benchmark_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pages(tmp_path, tables):
    """A copy of the pages whose tables are generated, under a temporary root."""
    for page in tables.PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / page, tmp_path / page)
    return tmp_path


def test_check_passes_on_the_repository():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_every_table_is_on_a_page(tables):
    text = "".join((ROOT / page).read_text(encoding="utf-8") for page in tables.PAGES)
    assert set(tables.OPEN.findall(text)) == set(tables.TABLES)


def test_a_changed_cell_is_named_and_rewritten(pages, tables, capsys):
    readme = pages / "README.md"
    original = readme.read_text(encoding="utf-8")
    cell = "| PandaLM | 35 new instructions (~200 rows) | **0.263** |"
    assert original.count(cell) == 1
    readme.write_text(original.replace(cell, cell.replace("0.263", "0.293")), encoding="utf-8")

    assert tables.main(["--check"], root=pages) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["README.md: table 'real_data_splits' differs from "
                   + ", ".join(f"benchmarks/results/real_data/{k}/summary.csv" for k in tables.REAL_RUNS)]

    assert tables.main([], root=pages) == 0  # rewrites the block from its files
    assert readme.read_text(encoding="utf-8") == original
    assert tables.main(["--check"], root=pages) == 0


def test_a_changed_cell_in_docs_results(pages, tables, capsys):
    results = pages / "docs" / "results.md"
    text = results.read_text(encoding="utf-8")
    cell = "| PandaLM | average bias | 0.965 / 0.393 |"
    assert text.count(cell) == 1
    results.write_text(text.replace(cell, "| PandaLM | average bias | 0.965 / 0.394 |"), encoding="utf-8")
    assert tables.main(["--check"], root=pages) == 1
    assert capsys.readouterr().out.startswith("docs/results.md: table 'average_bias_real' differs from")


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.replace("<!-- table: ihdp -->", "<!-- table: no_such_table -->", 1), "unknown table 'no_such_table'"),
    (lambda t: t.replace("<!-- /table -->", "", 1), "opened"),
])
def test_a_broken_marker_is_one_clear_error(pages, tables, damage, message):
    readme = pages / "README.md"
    readme.write_text(damage(readme.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(SystemExit, match=message):
        tables.main(["--check"], root=pages)
