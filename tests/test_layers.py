"""The package's layers: dependencies run one way (cli -> report -> validate -> estimators -> models,
data, io, _utils), and no module imports another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import causal_router

PACKAGE = Path(causal_router.__file__).resolve().parent
#: Layer of each subpackage; every other module of the package is below ``validate``.
LAYERS = {"cli": 3, "report": 2, "validate": 1}
#: Private modules whose private names other modules may import.
SHARED_PRIVATE = {"_utils", "_validation", "_parallel", "_compiled"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, imported names) of every import in ``path``, inside functions too."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names]


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 and parts[0] == "causal_router" else 0


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for path in MODULES:
        own = _layer(_module_name(path))
        for module, names in _imports(path):
            targets = [module] + [f"{module}.{n}" for n in names]  # "from . import report"
            if any(t.startswith("causal_router") and _layer(t) > own for t in targets):
                upward.append(f"{_module_name(path)} imports {module} {names}")
    assert not upward, upward


def test_no_private_names_imported_across_modules():
    private = []
    for path in MODULES:
        for module, names in _imports(path):
            if not module.startswith("causal_router") or module.rsplit(".", 1)[-1] in SHARED_PRIVATE:
                continue
            own_package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
            bad = [n for n in names if n.startswith("_") and n != "__version__"
                   and not (n in SHARED_PRIVATE or (module == own_package and _is_module(module, n)))]
            if bad:
                private.append(f"{_module_name(path)} imports {bad} from {module}")
            parent, _, last = module.rpartition(".")
            if last.startswith("_") and last not in SHARED_PRIVATE and parent != own_package:
                private.append(f"{_module_name(path)} imports {module}, private to {parent}")
    assert not private, private


def _is_module(package: str, name: str) -> bool:
    """Whether ``name`` is a module of ``package`` (a package's own private helper module)."""
    folder = PACKAGE.parent.joinpath(*package.split("."))
    return (folder / f"{name}.py").exists()
