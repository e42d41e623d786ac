"""Files: users' tables in and out, and router files that cannot run code when read.

Tables. :func:`read_table` picks the reader by extension (CSV / TSV, optionally compressed,
Parquet, JSON lines, JSON records) and :func:`write_table` writes the format its extension names,
refusing any other.

Outputs. Every file the package writes (tables, router files, pickles, reports, experiment
results) goes through :func:`atomic_write`: a temporary file in the same folder, renamed onto
the target when complete, removed on failure (an interrupt included). A reader sees the
previous file or the new one, never a part.

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

import contextlib
import importlib.util
import io as _io
import json
import lzma
import math
import os
import secrets
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from ._validation import DataError

__all__ = [
    "read_table",
    "write_table",
    "TABLE_FORMATS",
    "check_output_path",
    "atomic_write",
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


def _read_json_exact(p: Path, kw: dict) -> pd.DataFrame:
    """pandas' JSON reader with exact floats (``precise_float``; its default parser can be off in
    the last digits). That parser refuses subnormal numbers (below 2.2e-308): such a file is read
    again with the default parser, with a warning."""
    try:
        return pd.read_json(p, **{"precise_float": True, **kw})
    except ValueError as exc:
        if "Range error" not in str(exc) or "precise_float" in kw:
            raise
    warnings.warn(f"{p} holds numbers below 2.2e-308 (subnormal), which pandas' exact JSON parser refuses: read "
                  "with its default parser, accurate to about 15 significant digits (subnormals to about 1e-308)",
                  UserWarning, stacklevel=4)
    return pd.read_json(p, **kw)


def _read_jsonl(p: Path, kw: dict) -> pd.DataFrame:
    return _read_json_exact(p, {"lines": True, **kw})


def _read_json(p: Path, kw: dict) -> pd.DataFrame:
    return _read_json_exact(p, {"orient": "records", **kw})


def _compression(name: str) -> dict | str:
    """pandas' ``compression`` for a text file named ``name``: by extension, a zip member named
    as the file without ``.zip`` (not as the temporary file it is written to)."""
    if name.lower().endswith(".zip"):
        return {"method": "zip", "archive_name": name[:-4]}
    return "infer"


def _write_csv(frame: pd.DataFrame, p: Path, name: str) -> None:
    frame.to_csv(p, index=False, compression=_compression(name))


def _write_tsv(frame: pd.DataFrame, p: Path, name: str) -> None:
    frame.to_csv(p, index=False, sep="\t", compression=_compression(name))


def _write_parquet(frame: pd.DataFrame, p: Path, name: str) -> None:
    _require_pyarrow(p)
    frame.to_parquet(p, index=False)


#: Rows encoded per step by the JSON writers (bounds their memory).
_JSON_CHUNK = 50_000


_NATIVE = (str, int, float, bool, type(None))


def _json_cells(column: pd.Series, encode) -> list[str]:
    """The JSON text of every value of ``column``. Floats (in float columns or among the Python
    values of an object or string column) with Python's shortest round-trip repr, NaN and
    infinities as null; other values as pandas encodes them (timestamps as ISO 8601 with
    nanoseconds)."""
    dtype = column.dtype
    if pd.api.types.is_float_dtype(dtype):
        values = column.to_numpy(dtype=float, na_value=np.nan)
        text = list(map(float.__repr__, values.tolist()))
        if not np.isfinite(values).all():
            text = [t if np.isfinite(v) else "null" for t, v in zip(text, values.tolist())]
        return text
    if pd.api.types.is_bool_dtype(dtype) and not column.hasnans:
        return ["true" if v else "false" for v in column.tolist()]
    if pd.api.types.is_integer_dtype(dtype) and not column.hasnans:
        return list(map(str, column.tolist()))
    values = column.tolist()
    if all(type(v) in _NATIVE for v in values):  # str, object and string columns of Python values
        return [encode(None if isinstance(v, float) and not math.isfinite(v) else v) for v in values]
    encoded = json.loads(column.to_frame().to_json(orient="values", date_format="iso", date_unit="ns"))
    return [encode(row[0]) for row in encoded]


def _json_records(frame: pd.DataFrame) -> Iterator[list[str]]:
    """The rows as JSON objects (one string each), in chunks of :data:`_JSON_CHUNK` rows, exact
    (:func:`_json_cells`; pandas' ``to_json`` keeps at most 15 significant digits, which do not
    round-trip)."""
    if not frame.columns.is_unique:
        repeated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))[:5]
        raise DataError(f"cannot write JSON records: the column names {repeated} repeat")
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    keys = [encode(str(c)) + ":" for c in frame.columns]
    for start in range(0, len(frame), _JSON_CHUNK):
        part = frame.iloc[start:start + _JSON_CHUNK]
        cells = [[key + t for t in _json_cells(part.iloc[:, j], encode)] for j, key in enumerate(keys)]
        yield ["{" + ",".join(row) + "}" for row in zip(*cells)]


@contextlib.contextmanager
def _text_output(p: Path, name: str) -> Iterator[Any]:
    """A text handle on ``p``, compressed as its last suffix says (.gz, .bz2, .xz, .zip, .zst);
    ``name``: the file's final name (a zip member is named after it)."""
    ext = p.suffix.lower()
    if ext not in _COMPRESSIONS:
        with open(p, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
        return
    if ext == ".zip":
        with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open(name[: -len(ext)], "w", force_zip64=True) as raw:
                with _io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as fh:
                    yield fh
        return
    if ext == ".zst":
        if importlib.util.find_spec("zstandard") is None:
            raise DataError(f"{p}: writing .zst needs the zstandard package (pip install zstandard)")
        import zstandard as opener
    else:
        import bz2
        import gzip
        import lzma

        opener = {".gz": gzip, ".bz2": bz2, ".xz": lzma}[ext]
    level = {"compresslevel": 6} if ext == ".gz" else {}  # pandas' and gzip's tool default, not 9
    with opener.open(p, "wt", encoding="utf-8", newline="\n", **level) as fh:
        yield fh


def _write_jsonl(frame: pd.DataFrame, p: Path, name: str) -> None:
    with _text_output(p, name) as fh:
        for records in _json_records(frame):
            fh.write("\n".join(records))
            fh.write("\n")


def _write_json(frame: pd.DataFrame, p: Path, name: str) -> None:
    with _text_output(p, name) as fh:
        fh.write("[")
        for i, records in enumerate(_json_records(frame)):
            fh.write(",\n" if i else "\n")
            fh.write(",\n".join(records))
        fh.write("\n]\n")


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
    (naming the supported ones), a missing file, a file the reader cannot parse (a truncated or
    damaged compressed file included), a file without rows, or a CSV that looks delimited by
    another character (naming it).
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
    except (ValueError, OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
        # pandas / pyarrow parse errors, and damaged compressed files (a truncated .gz raises EOFError)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"could not read {path} as {ext[1:]}: {detail[:300]}"
                        + (" (the compressed file is truncated or damaged)" if isinstance(exc, EOFError) else "")) from None
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


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Write ``path`` atomically: yield a temporary path in the same folder to write to.

    When the block ends normally, the temporary file is flushed to disk and renamed onto
    ``path`` (:func:`os.replace`, atomic on one file system): a reader sees the previous file or
    the complete new one, never a part. When the block raises (an error, a full disk, a
    file-size limit, ``KeyboardInterrupt``), the temporary file is removed and ``path`` is left
    as it was. The temporary is named ``.<random>.tmp.<name>``: hidden, and ending with the
    target's name, so that writers choosing a format or a compression by extension (pandas,
    matplotlib) choose the same one.

    Examples
    --------
    >>> with atomic_write("summary.json") as tmp:          # doctest: +SKIP
    ...     tmp.write_text(json.dumps(summary))
    """
    path = Path(path)
    tmp = path.with_name(f".{secrets.token_hex(6)}.tmp.{path.name}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` (without its index) in the format named by the extension of ``path``
    (one of :data:`TABLE_FORMATS`; text formats may add a compression suffix such as ``.gz``),
    atomically (:func:`atomic_write`). Every format keeps floats exactly: CSV and JSON write the
    shortest decimal that reads back to the same double, Parquet the doubles themselves; in JSON,
    NaN and infinities become null."""
    path = check_output_path(path, formats=TABLE_FORMATS)
    with atomic_write(path) as tmp:
        _WRITERS[_table_extension(path)](frame, tmp, path.name)
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
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_HEADER, text)
        for file, data in blobs.items():
            zf.writestr(file, data)
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
    with atomic_write(path) as tmp:
        joblib.dump({"format": _PICKLE_FORMAT, "versions": library_versions(), "object": obj}, tmp)
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
