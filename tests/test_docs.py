"""The API reference lists every public name (parsed from the sources; the site is not built here).

The documentation build (``make docs``, or ``python -m sphinx -W --keep-going -b html docs
docs/_build/html`` with the ``[docs]`` extra) renders the pages; this test only reads
``docs/api/*.rst``, so it runs in well under a second and needs no Sphinx.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import causal_router

API_DIR = Path(__file__).resolve().parent.parent / "docs" / "api"
#: Top-level modules and packages that are not part of the Python API (the command line has its
#: own page, generated from its parser).
NOT_API = {"cli"}

_DIRECTIVE = re.compile(r"^\.\. (?:py:)?(\w+)::\s*(\S*)")


def public_modules() -> list[str]:
    """``causal_router`` and every module and package below it (subpackages' modules included, such
    as ``causal_router.report.plotting``) with no part of its name starting with _."""
    names = [m.name for m in pkgutil.walk_packages(causal_router.__path__, "causal_router.")]
    public = [n for n in names if not any(p.startswith("_") for p in n.split(".")[1:])
              and n.split(".")[1] not in NOT_API]
    return ["causal_router"] + sorted(public)


def documented_entries() -> dict[str, list[tuple[str, str, bool]]]:
    """Per reference page: (current module, entry as written, listed with a :toctree:) for every
    autosummary entry and every ``auto*`` / ``py:data`` directive."""
    pages = {}
    for page in sorted(API_DIR.glob("*.rst")):
        module, entries, in_summary, toctree = None, [], False, False
        for line in page.read_text(encoding="utf-8").splitlines():
            match = _DIRECTIVE.match(line)
            if match:
                kind, arg = match.groups()
                in_summary, toctree = kind == "autosummary", False
                if kind in ("currentmodule", "automodule", "module"):
                    module = arg
                elif kind in ("autoclass", "autofunction", "autodata", "autoexception", "data", "class",
                              "function", "exception"):
                    entries.append((module, arg, False))
                continue
            if in_summary:
                text = line.strip()
                if text.startswith(":toctree:"):
                    toctree = True
                elif text.startswith(":") or not text:
                    continue
                elif line.startswith("   "):
                    entries.append((module, text.lstrip("~"), toctree))
                else:
                    in_summary = False
        pages[page.name] = entries
    return pages


def _resolve(module: str | None, entry: str):
    """(full dotted name, object) of an entry, relative to ``module`` first, as autosummary does."""
    candidates = ([f"{module}.{entry}"] if module and not entry.startswith(module + ".") else []) + [entry]
    for full in candidates:
        parent, _, name = full.rpartition(".")
        if not parent:
            continue
        try:
            owner = importlib.import_module(parent)
        except ImportError:
            continue
        if hasattr(owner, name):
            return full, getattr(owner, name)
    return None, None


def _documented() -> tuple[set[str], list[object]]:
    names, objects = set(), []
    for entries in documented_entries().values():
        for module, entry, _ in entries:
            full, obj = _resolve(module, entry)
            if full is not None:
                names.add(full)
                objects.append(obj)
    return names, objects


def test_reference_pages_exist():
    assert sorted(API_DIR.glob("*.rst")), f"no reference pages in {API_DIR}"


@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_name_is_in_the_reference(module_name):
    """Each name in a public module's ``__all__`` is listed under its module, or (for a re-export)
    the same object is listed where it is defined."""
    module = importlib.import_module(module_name)
    public = getattr(module, "__all__", None)
    assert public is not None, f"{module_name} has no __all__: say which of its names are public"
    names, objects = _documented()
    missing = []
    for name in public:
        obj = getattr(module, name)
        if f"{module_name}.{name}" in names:
            continue
        # a class or function is documented wherever it is listed; a constant (a value, with no
        # identity of its own) only under its own name, e.g. validate.NUMBER_KEYS for
        # validate.diagnostics.NUMBER_KEYS
        same_name = {full for full in names if full.rpartition(".")[2] == name}
        if inspect.isclass(obj) or inspect.isfunction(obj):
            documented = any(obj is o for o in objects)
        else:
            documented = any(_resolve(None, full)[1] is obj for full in same_name)
        if not documented:
            missing.append(name)
    assert not missing, (f"{module_name}: {missing} are public (in __all__) but not in the API reference: "
                         f"list them in an autosummary of docs/api/*.rst")


def test_every_reference_entry_exists_and_is_public():
    """No entry names a removed object, and no private object gets a page of its own."""
    problems = []
    for page, entries in documented_entries().items():
        for module, entry, toctree in entries:
            full, obj = _resolve(module, entry)
            if full is None:
                problems.append(f"{page}: {entry!r} (module {module}) cannot be imported")
                continue
            parent, _, name = full.rpartition(".")
            if toctree and name not in getattr(importlib.import_module(parent), "__all__", ()):
                problems.append(f"{page}: {full} is not in {parent}.__all__")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_readme_quickstart_runs_without_warnings_and_prints_what_the_readme_says(tmp_path, monkeypatch, capsys):
    """The README's first Python block, run as a new user would (in an empty folder), with every
    warning an error: it must print the average bias and the oracle shares the README quotes."""
    import re
    import warnings

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    said = re.search(r"This prints the average bias ([\d.]+) \[([\d.]+), ([\d.]+)\].*?oracle shares\s+([\d.]+) for the "
                     r"meta-router against ([\d.]+) for Pooled", readme, re.S)
    estimate, lower, upper, meta, pooled = said.groups()
    assert f"{float(estimate):.2f}" in out and f"{float(meta):.3f}" in out and f"{float(pooled):.3f}" in out, out
    assert (tmp_path / "router.cr").exists()
