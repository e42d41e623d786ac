"""Files: users' tables in and out, and router files that cannot run code when read.

Tables. :func:`read_table` picks the reader by extension (CSV / TSV, optionally compressed,
Parquet, JSON lines, JSON records) and :func:`write_table` writes the format its extension names,
refusing any other.

Router files. A router file is a zip archive holding ``router.json`` (format name and version,
library versions, the router's class, scale, feature names and whatever else routing needs, as
JSON) and its fitted models in non-executable formats: LightGBM models as LightGBM's own text
model, arrays as ``.npy`` (read with ``allow_pickle=False``) and other scikit-learn objects in the
``skops`` format, loaded only when every type in them is on skops' trusted list. The header is
read and checked before any model is built. :func:`write_router_file` / :func:`read_router_file`
are the primitives; :meth:`causal_router.router.BaseRouter.save` and ``load`` use them.

Trusted pickles. :func:`save_pickle` / :func:`load_pickle` keep a whole fitted object (the econml
bias model included) with joblib. Unpickling runs whatever code the file names, so
:func:`load_pickle` refuses unless called with ``trusted=True``: use it only on files you wrote.
"""

from __future__ import annotations

import importlib.util
import io as _io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ._validation import DataError

__all__ = [
    "read_table",
    "write_table",
    "TABLE_FORMATS",
    "check_output_path",
    "write_router_file",
    "read_router_file",
    "save_pickle",
    "load_pickle",
    "ROUTER_FORMAT",
    "ROUTER_FORMAT_VERSION",
    "RouterFileError",
    "library_versions",
]

ROUTER_FORMAT = "causal_router.router"
#: Version of the router file layout; files of another version are refused.
ROUTER_FORMAT_VERSION = 2
_HEADER = "router.json"
_PICKLE_FORMAT = "causal_router.trusted_pickle"


class RouterFileError(DataError):
    """A file that is not a readable router file of this version."""


# ---------------------------------------------------------------------------- tables
def _read_csv(p: Path, kw: dict) -> pd.DataFrame:
    return pd.read_csv(p, **kw)


def _read_tsv(p: Path, kw: dict) -> pd.DataFrame:
    return pd.read_csv(p, **{"sep": "\t", **kw})


def _read_parquet(p: Path, kw: dict) -> pd.DataFrame:
    _require_pyarrow(p)
    return pd.read_parquet(p, **kw)


def _read_jsonl(p: Path, kw: dict) -> pd.DataFrame:
    return pd.read_json(p, **{"lines": True, **kw})


def _read_json(p: Path, kw: dict) -> pd.DataFrame:
    return pd.read_json(p, **{"orient": "records", **kw})


def _write_csv(frame: pd.DataFrame, p: Path) -> None:
    frame.to_csv(p, index=False)


def _write_tsv(frame: pd.DataFrame, p: Path) -> None:
    frame.to_csv(p, index=False, sep="\t")


def _write_parquet(frame: pd.DataFrame, p: Path) -> None:
    _require_pyarrow(p)
    frame.to_parquet(p, index=False)


def _write_jsonl(frame: pd.DataFrame, p: Path) -> None:
    frame.to_json(p, orient="records", lines=True)


def _write_json(frame: pd.DataFrame, p: Path) -> None:
    frame.to_json(p, orient="records", indent=1)


_READERS = {
    ".csv": _read_csv, ".tsv": _read_tsv, ".parquet": _read_parquet, ".pq": _read_parquet,
    ".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json,
}
_WRITERS = {
    ".csv": _write_csv, ".tsv": _write_tsv, ".parquet": _write_parquet, ".pq": _write_parquet,
    ".jsonl": _write_jsonl, ".ndjson": _write_jsonl, ".json": _write_json,
}
#: Table formats by extension (read and write).
TABLE_FORMATS = tuple(_READERS)
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")  # pandas infers these for text formats
_TEXT = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")


def _require_pyarrow(path: Path) -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise DataError(f"{path}: Parquet needs pyarrow; install the extra: pip install 'causal_router[parquet]'")


def _table_extension(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    ext = suffixes[-1] if suffixes else ""
    if ext in _COMPRESSIONS and len(suffixes) >= 2 and suffixes[-2] in _TEXT:
        ext = suffixes[-2]
    return ext


def read_table(path: str | os.PathLike, **read_kwargs: Any) -> pd.DataFrame:
    """Read a user's table, choosing the reader by extension.

    ``.csv``, ``.tsv`` (optionally compressed: ``.csv.gz`` etc.), ``.parquet`` / ``.pq``,
    ``.jsonl`` / ``.ndjson`` (one JSON object per line) and ``.json`` (a list of records).
    ``read_kwargs`` go to the pandas reader. Raises :class:`DataError` for an unknown extension
    (naming the supported ones), a missing file, a file the reader cannot parse, a file without
    rows, or a CSV that looks delimited by another character (naming it).
    """
    path = Path(path)
    ext = _table_extension(path)
    reader = _READERS.get(ext)
    if reader is None:
        shown = repr(path.suffix) if path.suffix else "(none)"
        raise DataError(f"unsupported file extension {shown} for {path}; supported: "
                        f"{', '.join(_READERS)} (text formats optionally compressed)")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        frame = reader(path, read_kwargs)
    except (ValueError, OSError) as exc:  # includes pandas / pyarrow parse errors
        raise DataError(f"could not read {path} as {ext[1:]}: {str(exc).strip().splitlines()[0]}") from None
    if ext == ".csv" and frame.shape[1] == 1 and "sep" not in read_kwargs:
        hint = _delimiter_hint(str(frame.columns[0]))
        if hint:
            raise DataError(f"{path} has a single column {str(frame.columns[0])[:60]!r}: it looks delimited by "
                            f"{hint!r}, not ','; convert it or read it with read_table(path, sep={hint!r})")
    if len(frame) == 0:
        raise DataError(f"{path} has no rows (columns: {list(frame.columns)[:20]})")
    return frame


def _delimiter_hint(header: str) -> str | None:
    for sep in (";", "\t", "|"):
        if header.count(sep) >= 1:
            return sep
    return None


def check_output_path(path: str | os.PathLike, *, formats: tuple[str, ...] | None = None,
                      inputs: tuple = ()) -> Path:
    """Check before any work that ``path`` can be written: its folder exists, it is not a folder,
    it is none of ``inputs``, and (when ``formats`` is given) its extension is one of them."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"output {path} is a directory; name a file")
    if not path.parent.is_dir():
        raise DataError(f"output folder {path.parent} does not exist; create it first")
    for other in inputs:
        if other is not None and Path(other).exists() and path.exists() and path.samefile(other):
            raise DataError(f"output {path} is the input file; choose another output path")
    if formats is not None:
        ext = _table_extension(path) if formats is TABLE_FORMATS else path.suffix.lower()
        if ext not in formats:
            raise DataError(f"output {path}: unsupported extension {path.suffix or '(none)'!r}; use one of "
                            f"{', '.join(formats)}")
    if not os.access(path.parent, os.W_OK):
        raise DataError(f"output folder {path.parent} is not writable")
    return path


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` (without its index) in the format named by the extension of ``path``
    (one of :data:`TABLE_FORMATS`; text formats may add a compression suffix such as ``.gz``)."""
    path = check_output_path(path, formats=TABLE_FORMATS)
    _WRITERS[_table_extension(path)](frame, path)
    return path


# ---------------------------------------------------------------------------- router files
def library_versions() -> dict:
    """Versions of the libraries whose changes can change a router's predictions."""
    import lightgbm
    import sklearn

    from . import __version__

    return {"causal_router": __version__, "scikit-learn": sklearn.__version__,
            "lightgbm": lightgbm.__version__, "numpy": np.__version__}


def _dump_model(model) -> tuple[str, bytes]:
    """(kind, bytes) of a fitted model in a non-executable format."""
    if isinstance(model, np.ndarray):
        if model.dtype == object:
            raise RouterFileError("object arrays cannot be stored in a router file")
        buf = _io.BytesIO()
        np.save(buf, model, allow_pickle=False)
        return "npy", buf.getvalue()
    from lightgbm import Booster, LGBMModel

    if isinstance(model, LGBMModel):
        return "lightgbm", model.booster_.model_to_string().encode("utf-8")
    if isinstance(model, Booster):
        return "lightgbm", model.model_to_string().encode("utf-8")
    import skops.io as sio

    data = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=data)
    if untrusted:
        raise RouterFileError(
            f"the model {type(model).__name__} holds types that a safe router file cannot load without "
            f"trusting them ({untrusted[:5]}); use a LightGBM or scikit-learn model, or save_pickle()")
    return "skops", data


def _load_model(kind: str, data: bytes, name: str, path: Path):
    if kind == "npy":
        return np.load(_io.BytesIO(data), allow_pickle=False)
    if kind == "lightgbm":
        from lightgbm import Booster

        return Booster(model_str=data.decode("utf-8"))
    if kind == "skops":
        import skops.io as sio

        untrusted = sio.get_untrusted_types(data=data)
        if untrusted:
            raise RouterFileError(f"{path}: model {name!r} holds untrusted types {untrusted[:5]}; refusing to load it")
        return sio.loads(data)
    raise RouterFileError(f"{path}: model {name!r} has unknown storage kind {kind!r}")


def write_router_file(path: str | os.PathLike, header: Mapping[str, Any], models: Mapping[str, Any]) -> Path:
    """Write a router file: ``header`` (JSON-able) and named fitted models (LightGBM, arrays or
    scikit-learn objects). The header gains the format, its version and the library versions."""
    path = check_output_path(path)
    payload = {"format": ROUTER_FORMAT, "format_version": ROUTER_FORMAT_VERSION, "versions": library_versions(),
               **dict(header), "models": {}}
    blobs = {}
    for name, model in models.items():
        kind, data = _dump_model(model)
        file = f"models/{name}.{ {'npy': 'npy', 'lightgbm': 'txt', 'skops': 'skops'}[kind] }"
        payload["models"][name] = {"kind": kind, "file": file}
        blobs[file] = data
    text = json.dumps(payload, indent=1, allow_nan=False)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_HEADER, text)
        for file, data in blobs.items():
            zf.writestr(file, data)
    tmp.replace(path)
    return path


def read_router_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """(header, models) of a router file, after checking its format and version.

    Raises :class:`RouterFileError` for anything that is not a router file of this version,
    before reading any model; warns (``UserWarning``) when the libraries' versions differ from
    those that wrote it.
    """
    path = Path(path)
    if not path.is_file():
        raise RouterFileError(f"no router file at {path}")
    if not zipfile.is_zipfile(path):
        raise RouterFileError(f"{path} is not a causal_router router file (not a router archive; a trusted "
                              "pickle is read with load_pickle(path, trusted=True))")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _HEADER not in names:
                raise RouterFileError(f"{path} is not a causal_router router file (no {_HEADER})")
            header = json.loads(zf.read(_HEADER).decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != ROUTER_FORMAT:
                raise RouterFileError(f"{path} is not a causal_router router file")
            if header.get("format_version") != ROUTER_FORMAT_VERSION:
                raise RouterFileError(
                    f"{path} was written by an incompatible version (router format {header.get('format_version')}, "
                    f"this causal_router reads format {ROUTER_FORMAT_VERSION}; written with {header.get('versions')}); "
                    "refit the router")
            models = {}
            for name, spec in header.get("models", {}).items():
                if spec.get("file") not in names:
                    raise RouterFileError(f"{path}: model {name!r} is missing from the archive")
                models[name] = _load_model(spec.get("kind"), zf.read(spec["file"]), name, path)
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, KeyError) as exc:
        raise RouterFileError(f"{path} is a damaged router file ({type(exc).__name__}: {exc})") from None
    saved, now = header.get("versions", {}), library_versions()
    mismatched = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
    if mismatched:
        warnings.warn(f"router file {path} was written with other library versions (saved, now): {mismatched}; "
                      "predictions may differ", UserWarning, stacklevel=3)
    return header, models


# ---------------------------------------------------------------------------- trusted pickles
def save_pickle(obj, path: str | os.PathLike) -> Path:
    """Save any fitted object with joblib (a TRUSTED PICKLE: loading it runs code; see
    :func:`load_pickle`). Keeps everything, the econml bias model included."""
    import joblib

    path = check_output_path(path)
    joblib.dump({"format": _PICKLE_FORMAT, "versions": library_versions(), "object": obj}, path)
    return path


def load_pickle(path: str | os.PathLike, *, trusted: bool = False):
    """Load a file written by :func:`save_pickle`. Unpickling executes code named in the file:
    pass ``trusted=True`` only for files you wrote yourself or otherwise trust."""
    if trusted is not True:
        raise DataError(f"refusing to unpickle {path}: a pickle can run arbitrary code when loaded; pass "
                        "trusted=True only for a file you trust, or use a safe router file (router.save / load)")
    import joblib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no file at {path}")
    payload = joblib.load(path)
    if not isinstance(payload, dict) or payload.get("format") != _PICKLE_FORMAT:
        raise DataError(f"{path} is not a causal_router trusted pickle")
    return payload["object"]
