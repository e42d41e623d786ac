"""Files: users' tables in and out, and router files that cannot run code when read.

Tables. :func:`read_table` picks the reader by extension (CSV / TSV, optionally compressed,
Parquet, JSON lines, JSON records) and :func:`write_table` writes the format its extension names,
refusing any other.

Outputs. Every file the package writes (tables, router files, pickles, reports, experiment
results) goes through :func:`atomic_write`: a temporary file in the same folder, renamed onto
the target when complete, removed on failure (an interrupt included). A reader sees the
previous file or the new one, never a part.

Router files: the one router-file schema. A router file is a zip archive holding ``router.json``
and the router's fitted members in formats that loading never executes: LightGBM models as
LightGBM's own text model, float arrays as ``.npy`` (read with ``allow_pickle=False``) and other
scikit-learn models in the ``skops`` format, loaded only when every type in them is on skops'
trusted list. ``router.json`` holds the format and its version (:data:`ROUTER_FORMAT_VERSION`; a
file of another version is refused with one error saying to refit), the library versions, the
router's class (one of :data:`ROUTER_CLASSES`, the one registry of router classes), its
parameters with nested estimators (:func:`params_to_state`, so that ``clone(load_router(path))``
refits the same configuration), its fitted state (``router.to_state()``: features, scale, bias
summary, featurizer state, gain or utility model) and the member table. The schema is declared
here, field by field, for both router families (two-model and K-model), and every file is
checked against it before anything is built from it (:func:`read_router_file`): one
:class:`RouterFileError` naming the file and the field for anything else, never another
exception. :func:`save_router` / :func:`load_router` are what ``router.save`` and
``BaseRouter.load`` call; :func:`write_router_file` / :func:`read_router_file` /
:func:`router_from_file` are the steps.

Trusted pickles. :func:`save_pickle` / :func:`load_pickle` keep a whole fitted object (the econml
bias model included) with joblib. Unpickling runs whatever code the file names, so
:func:`load_pickle` refuses unless called with ``trusted=True``: use it only on files you wrote.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io as _io
import json
import lzma
import math
import os
import re
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
    "save_router",
    "load_router",
    "write_router_file",
    "read_router_file",
    "router_from_file",
    "params_to_state",
    "save_pickle",
    "load_pickle",
    "ROUTER_FORMAT",
    "ROUTER_FORMAT_VERSION",
    "ROUTER_CLASSES",
    "MAX_HEADER_BYTES",
    "MAX_MEMBER_BYTES",
    "MAX_TOTAL_BYTES",
    "MAX_MEMBERS",
    "MAX_TRAINING_GAINS",
    "RouterFileError",
    "library_versions",
]

ROUTER_FORMAT = "causal_router.router"
#: Version of the router file layout; files of another version are refused (refit the router).
#: 3: one schema for two-model and K-model routers, nested parameters, checked members.
ROUTER_FORMAT_VERSION = 3
_HEADER_NAME = "router.json"
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

    Parameters
    ----------
    path : str or PathLike
        The file; its extension chooses the reader.
    **read_kwargs : Any
        Keyword arguments of the pandas reader (``pandas.read_csv`` etc.).

    Returns
    -------
    DataFrame
        The table, at least one row.

    Raises
    ------
    DataError
        For the cases above.
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
    """Check before any work that ``path`` can be written.

    Its folder exists and is writable, it is not a folder, it is none of ``inputs``, and (when
    ``formats`` is given) its extension is one of them. Nothing is written.

    Parameters
    ----------
    path : str or PathLike
        The output file.
    formats : tuple of str or None, default=None
        Allowed extensions (with the dot, lower case); :data:`TABLE_FORMATS` also allows a
        compression suffix after a text format. None: any extension.
    inputs : tuple of (str, PathLike or None), default=()
        The run's input files, which the output must not overwrite (None entries are ignored).

    Returns
    -------
    Path
        ``path`` as a :class:`pathlib.Path`.

    Raises
    ------
    DataError
        Naming the problem: a folder, a missing or read-only folder, an input file, an extension
        not in ``formats``.
    """
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

    Parameters
    ----------
    path : str or PathLike
        The file to write (its folder must exist).

    Yields
    ------
    Path
        The temporary file to write to, in the same folder as ``path``.

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
    NaN and infinities become null.

    Parameters
    ----------
    frame : DataFrame
        The table to write (its index is not written); not modified.
    path : str or PathLike
        The output file, checked first (:func:`check_output_path`).

    Returns
    -------
    Path
        The path written.
    """
    path = check_output_path(path, formats=TABLE_FORMATS)
    with atomic_write(path) as tmp:
        _WRITERS[_table_extension(path)](frame, tmp, path.name)
    return path


# ---------------------------------------------------------------------------- router files
def library_versions() -> dict:
    """Versions of the libraries whose changes can change a router's predictions.

    Returns
    -------
    dict of str to str
        Version of ``causal_router``, ``scikit-learn``, ``lightgbm`` and ``numpy``.
    """
    import lightgbm
    import sklearn

    from . import __version__

    return {"causal_router": __version__, "scikit-learn": sklearn.__version__,
            "lightgbm": lightgbm.__version__, "numpy": np.__version__}


#: Router classes a router file may name: class name -> (module, family). The one registry: a
#: class not listed here is neither written nor read (``save_pickle`` keeps any object).
ROUTER_CLASSES = {
    "MetaRouter": ("causal_router.router", "two-model"),
    "GoldOnly": ("causal_router.baselines", "two-model"),
    "PreferenceOnly": ("causal_router.baselines", "two-model"),
    "Pooled": ("causal_router.baselines", "two-model"),
    "MeanShift": ("causal_router.baselines", "two-model"),
    "KNNRouter": ("causal_router.baselines", "two-model"),
    "MultiRouter": ("causal_router.multi", "k-model"),
    "PooledMulti": ("causal_router.multi", "k-model"),
    "GoldOnlyMulti": ("causal_router.multi", "k-model"),
    "BestSingle": ("causal_router.multi", "k-model"),
}

#: Size limits of a router file, checked on the archive's directory before anything is inflated
#: (the zip reader never inflates a member beyond its declared size): router.json, any other
#: member, all members together, and the number of members.
MAX_HEADER_BYTES = 64 * 2**20
MAX_MEMBER_BYTES = 512 * 2**20
MAX_TOTAL_BYTES = 1024 * 2**20
MAX_MEMBERS = 16
#: Most trees of a LightGBM member, and most leaves of one tree (LightGBM's own maximum).
MAX_TREES = 1_000_000
MAX_LEAVES = 131_072
#: Largest magnitude of a stored number (a leaf value, an array entry, a scale): far enough below
#: the float range that sums over every tree and products with features stay finite.
MAX_STORED_VALUE = 1e100
#: Most points of a two-model router's ``training_gains`` (the sorted predicted gains of its
#: training queries; more queries are summarised by this many quantiles).
MAX_TRAINING_GAINS = 1000
_MEMBER_FILE = {"npy": "npy", "lightgbm": "txt", "skops": "skops"}
_MEMBER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class _Invalid(Exception):
    """A value that does not fit the schema: (field, message)."""

    def __init__(self, field: str, message: str):
        super().__init__(field, message)
        self.field, self.message = field, message


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


# ---- the schema's building blocks: each checks one value at a field path and returns it
class _Str:
    def __init__(self, max_len: int = 1000, choices=None, pattern: str | None = None):
        self.max_len, self.choices = max_len, choices
        self.pattern = re.compile(pattern) if pattern else None

    def __call__(self, value, field):
        if not isinstance(value, str):
            raise _Invalid(field, f"expected a string, got {_kind(value)}")
        if len(value) > self.max_len:
            raise _Invalid(field, f"a string of {len(value)} characters (at most {self.max_len})")
        if self.choices is not None and value not in self.choices:
            raise _Invalid(field, f"{value[:80]!r} is not one of {sorted(self.choices)[:12]}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise _Invalid(field, f"{value[:80]!r} is not a valid value")
        return value


class _Int:
    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def __call__(self, value, field):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(field, f"expected an integer, got {_kind(value)} {str(value)[:40]}")
        if not self.lo <= value <= self.hi:
            raise _Invalid(field, f"{value} is outside [{self.lo}, {self.hi}]")
        return value


class _Float:
    def __init__(self, lo: float = -MAX_STORED_VALUE, hi: float = MAX_STORED_VALUE, positive: bool = False):
        self.lo, self.hi, self.positive = lo, hi, positive

    def __call__(self, value, field):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(field, f"expected a number, got {_kind(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise _Invalid(field, f"must be finite, got {value}")
        if self.positive and value <= 0:
            raise _Invalid(field, f"must be positive, got {value}")
        if not self.lo <= value <= self.hi:
            raise _Invalid(field, f"{value:g} is outside [{self.lo:g}, {self.hi:g}]")
        return value


class _Const:
    def __init__(self, *values):
        self.values = values

    def __call__(self, value, field):
        if not any(type(value) is type(v) and value == v for v in self.values):
            raise _Invalid(field, f"expected {' or '.join(map(repr, self.values))}, got {_kind(value)} "
                                  f"{str(value)[:40]!r}")
        return value


class _Bool(_Const):
    def __init__(self):
        super().__init__(True, False)


class _Nullable:
    def __init__(self, spec):
        self.spec = spec

    def __call__(self, value, field):
        return None if value is None else self.spec(value, field)


class _List:
    def __init__(self, item, min_len: int = 0, max_len: int = 10_000_000, unique: bool = False):
        self.item, self.min_len, self.max_len, self.unique = item, min_len, max_len, unique

    def __call__(self, value, field):
        if not isinstance(value, list):
            raise _Invalid(field, f"expected a list, got {_kind(value)}")
        if not self.min_len <= len(value) <= self.max_len:
            raise _Invalid(field, f"a list of {len(value)} entries (expected {self.min_len} to {self.max_len})")
        out = [self.item(v, f"{field}[{i}]") for i, v in enumerate(value)]
        if self.unique and len(set(out)) != len(out):
            seen, twice = set(), None
            for v in out:
                if v in seen:
                    twice = v
                    break
                seen.add(v)
            raise _Invalid(field, f"repeats the entry {str(twice)[:80]!r}")
        return out


class _Ascending(_List):
    def __call__(self, value, field):
        out = super().__call__(value, field)
        for i in range(1, len(out)):
            if out[i] < out[i - 1]:
                raise _Invalid(f"{field}[{i}]", f"{out[i]:g} is below the entry before it: the list must be ascending")
        return out


class _Map:
    def __init__(self, value, key=None, max_len: int = 100_000):
        self.value, self.key, self.max_len = value, key or _Str(), max_len

    def __call__(self, value, field):
        if not isinstance(value, dict):
            raise _Invalid(field, f"expected an object, got {_kind(value)}")
        if len(value) > self.max_len:
            raise _Invalid(field, f"an object of {len(value)} entries (at most {self.max_len})")
        return {self.key(k, f"{field} key"): self.value(v, f"{field}.{k}") for k, v in value.items()}


class _Obj:
    def __init__(self, required: dict, optional: dict | None = None):
        self.required, self.optional = required, optional or {}

    def __call__(self, value, field):
        if not isinstance(value, dict):
            raise _Invalid(field, f"expected an object, got {_kind(value)}")
        missing = [k for k in self.required if k not in value]
        if missing:
            raise _Invalid(f"{field}.{missing[0]}", "is missing")
        unknown = [k for k in value if k not in self.required and k not in self.optional]
        if unknown:
            raise _Invalid(f"{field}.{unknown[0]}", "is not a field of this schema")
        return {k: {**self.required, **self.optional}[k](v, f"{field}.{k}") for k, v in value.items()}


# ---- the router-file schema (router.json), for both families
_NAME = _Str(max_len=1000)
_FEATURIZER = _Obj(
    {"kind": _Const("causal_router.TextFeaturizer"), "state_version": _Int(0, 10**6),
     "params": _Obj({"method": _Str(choices=("tfidf-svd", "minilm")), "n_components": _Int(1, 100_000),
                     "text_column": _Nullable(_NAME), "pair_column": _Nullable(_NAME),
                     "random_state": _Nullable(_Int(0, 2**32 - 1))}),
     "n_components_": _Int(1, 100_000), "pairs_": _List(_NAME, max_len=100_000, unique=True)},
    {"tfidf": _Obj({"ngram_range": _List(_Int(1, 3), 2, 2), "sublinear_tf": _Bool(), "min_df": _Int(1, 1),
                    "analyzer": _Const("word"), "token_pattern": _Const(r"(?u)\b\w\w+\b"), "lowercase": _Const(True),
                    "strip_accents": _Const(None),
                    "vocabulary": _List(_Str(max_len=10_000), 1, 10_000_000, unique=True)}),
     "embedding_model": _NAME})
_NULLABLE_NUMBER = _Nullable(_Float(-math.inf, math.inf))
_SHARE = _Nullable(_Float(0.0, 1.0))
_TWO_MODEL_BIAS = _Nullable(_Obj({"learner": _NAME, "final_stage": _NAME, "ate": _Map(_NULLABLE_NUMBER, max_len=100)},
                                 {"heterogeneous_share": _SHARE, "judge_weight": _SHARE}))
_K_MODEL_BIAS = _Nullable(_Obj({"model": _NAME, "per_model_constant": _Map(_NULLABLE_NUMBER, max_len=10_000),
                                "order_effect": _NULLABLE_NUMBER, "average": _NULLABLE_NUMBER}, {"share": _SHARE}))
_COMMON_FITTED = {
    "n_features_in": _Int(1, 10_000_000),
    "feature_names_in": _Nullable(_List(_NAME, 1, 10_000_000, unique=True)),
    "scale": _Float(1 / MAX_STORED_VALUE, MAX_STORED_VALUE, positive=True),
    "featurizer": _Nullable(_FEATURIZER),
}
_FITTED = {
    "two-model": _Obj({**_COMMON_FITTED, "bias": _TWO_MODEL_BIAS},
                      {"training_gains": _Nullable(_Ascending(_Float(), 1, MAX_TRAINING_GAINS))}),
    "k-model": _Obj({**_COMMON_FITTED, "bias": _K_MODEL_BIAS,
                     "models": _List(_NAME, 2, 10_000, unique=True), "reference": _NAME,
                     "utility_model": _Obj({"kind": _Str(choices=("ridge", "boosting")), "n_contrasts": _Int(1, 9_999)},
                                           {"terms": _Str(choices=("linear", "constant", "none"))})}),
}
_HEADER = _Obj({"format": _Const(ROUTER_FORMAT), "format_version": _Int(0, 10**9),
                "versions": _Map(_Str(max_len=100), max_len=100), "router": _Str(choices=tuple(ROUTER_CLASSES)),
                "params": _Map(lambda v, f: v, max_len=1000), "fitted": lambda v, f: v,
                "members": _Map(_Str(choices=tuple(_MEMBER_FILE)), key=_Str(pattern=_MEMBER_NAME.pattern),
                                max_len=MAX_MEMBERS)})


def _member_expectations(header: dict) -> dict:
    """{member name: (kind(s) allowed, expected shape or output spec)} of a header whose fields
    are checked: which members the file must hold, and what each must be."""
    fitted = header["fitted"]
    family = ROUTER_CLASSES[header["router"]][1]
    d = fitted["n_features_in"]
    expect = {}
    if family == "two-model":
        expect["gain_model"] = (("lightgbm", "skops"), {"outputs": 1, "n_features": d})
    else:
        k = fitted["utility_model"]["n_contrasts"]
        expect["utility_const"] = (("npy",), (k,))
        if fitted["utility_model"]["kind"] == "ridge":
            expect["utility_coef"] = (("npy",), (k, d))
        else:
            expect["utility_booster"] = (("lightgbm",), {"outputs": k, "n_features": d})
    featurizer = fitted["featurizer"]
    if featurizer is not None:
        n = featurizer["n_components_"]
        if featurizer["params"]["method"] == "tfidf-svd":
            terms = len(featurizer["tfidf"]["vocabulary"])
            expect["featurizer_components"] = (("npy",), (n, terms))
            expect["featurizer_idf"] = (("npy",), (terms,))
        else:
            expect["featurizer_components"] = (("npy",), (n, None))
            expect["featurizer_mean"] = (("npy",), (None,))
    return expect


def _check_header(header, path) -> dict:
    """The header checked field by field against the schema (one RouterFileError naming the file
    and the field), then across fields; returns it with its values normalised."""
    if not isinstance(header, dict):
        raise RouterFileError(f"{path} is not a causal_router router file (router.json holds {_kind(header)})")
    if header.get("format") != ROUTER_FORMAT:
        raise RouterFileError(f"{path} is not a causal_router router file (format {str(header.get('format'))[:40]!r})")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise RouterFileError(f"{path}: field format_version: expected an integer, got {_kind(version)} "
                              f"{str(version)[:20]!r}")
    if version != ROUTER_FORMAT_VERSION:
        raise RouterFileError(f"{path} was written by an incompatible version (router format {version}, this "
                              f"causal_router reads format {ROUTER_FORMAT_VERSION}; written with "
                              f"{str(header.get('versions'))[:200]}); refit the router")
    try:
        header = _HEADER(header, "router.json")
        family = ROUTER_CLASSES[header["router"]][1]
        header["fitted"] = _FITTED[family](header["fitted"], "fitted")
        _check_across_fields(header, family)
    except _Invalid as exc:
        raise RouterFileError(f"{path}: field {exc.field.removeprefix('router.json.')}: {exc.message}") from None
    return header


def _check_across_fields(header: dict, family: str) -> None:
    fitted = header["fitted"]
    d = fitted["n_features_in"]
    names = fitted["feature_names_in"]
    if names is not None and len(names) != d:
        raise _Invalid("fitted.feature_names_in", f"{len(names)} names for n_features_in = {d}")
    featurizer = fitted["featurizer"]
    if featurizer is not None:
        method = featurizer["params"]["method"]
        needed = "tfidf" if method == "tfidf-svd" else "embedding_model"
        if needed not in featurizer:
            raise _Invalid(f"fitted.featurizer.{needed}", f"is missing (method {method!r})")
        pairs = len(featurizer["pairs_"])
        width = featurizer["n_components_"] + (pairs if pairs > 1 else 0)
        if width != d:
            raise _Invalid("fitted.featurizer", f"makes {width} features, the router takes n_features_in = {d}")
    if family == "k-model":
        models = fitted["models"]
        if fitted["reference"] not in models:
            raise _Invalid("fitted.reference", f"{fitted['reference'][:80]!r} is not among the models")
        if fitted["utility_model"]["n_contrasts"] != len(models) - 1:
            raise _Invalid("fitted.utility_model.n_contrasts",
                           f"{fitted['utility_model']['n_contrasts']} for {len(models)} models (expected K - 1)")
        bias = fitted["bias"]
        if bias is not None and set(bias["per_model_constant"]) - set(models):
            raise _Invalid("fitted.bias.per_model_constant", "names a model the router does not know")
    expect = _member_expectations(header)
    members = header["members"]
    for name in sorted(set(members) | set(expect)):
        if name not in expect:
            raise _Invalid(f"members.{name}", "is not a member of this router's file")
        if name not in members:
            raise _Invalid(f"members.{name}", "is missing")
        if members[name] not in expect[name][0]:
            raise _Invalid(f"members.{name}", f"must be stored as {' or '.join(expect[name][0])}, not {members[name]}")


# ---- members: .npy, LightGBM text, skops
_NPY_HEADER = re.compile(r"\{'descr': '(?P<descr>[<>|]?[a-zA-Z][0-9]{0,2})', 'fortran_order': (?P<fortran>False|True), "
                         r"'shape': \((?P<shape>(\d{1,12}, )*(\d{1,12},?)?)\), \} *\n")


def _load_npy(data: bytes, shape: tuple, field: str) -> np.ndarray:
    """A float64 array of ``shape`` (None: any length) from .npy bytes. The header is matched
    against the exact text numpy writes (magic, version, a dict of descr, fortran_order and shape)
    rather than evaluated; no pickles, no object arrays; the data's length must equal the shape's."""
    if len(data) < 10 or data[:6] != b"\x93NUMPY" or data[6] not in (1, 2, 3):
        raise _Invalid(field, "not a readable .npy array (no .npy magic and version)")
    width = 2 if data[6] == 1 else 4
    size = int.from_bytes(data[8:8 + width], "little")
    start = 8 + width + size
    if size > 10_000 or start > len(data):
        raise _Invalid(field, "not a readable .npy array (its header runs past the data)")
    match = _NPY_HEADER.fullmatch(data[8 + width:start].decode("latin-1"))
    if match is None:
        raise _Invalid(field, "not a readable .npy array (an unexpected header)")
    if match["descr"] != "<f8" or match["fortran"] == "True":
        raise _Invalid(field, f"an array of dtype {match['descr']}{' (Fortran order)' if match['fortran'] == 'True' else ''}; "
                              "expected float64 ('<f8')")
    found = tuple(int(t) for t in match["shape"].replace(" ", "").split(",") if t)
    if len(found) != len(shape) or any(e is not None and e != f for e, f in zip(shape, found)):
        raise _Invalid(field, f"an array of shape {found}; expected {tuple('n' if e is None else e for e in shape)}")
    if len(data) - start != math.prod(found) * 8:
        raise _Invalid(field, f"holds {len(data) - start} data bytes for shape {found}")
    array = np.frombuffer(data, dtype="<f8", offset=start).reshape(found).copy()
    if array.size and not (np.isfinite(array).all() and np.abs(array).max() <= MAX_STORED_VALUE):
        raise _Invalid(field, f"holds values that are not finite or exceed {MAX_STORED_VALUE:g} in magnitude")
    return array


_INT = re.compile(r"-?\d{1,12}")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?")
_OBJECTIVES = {"regression", "regression_l1", "huber", "fair", "quantile", "mape"}
_OBJECTIVE_PARAM = re.compile(r"[a-z_]{1,40}:[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?")
_FEATURE_INFO = re.compile(r"none|\[[-+0-9.eEinf]{1,40}:[-+0-9.eEinf]{1,40}\]")
_TREE_KEYS = ("num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type", "left_child",
              "right_child", "leaf_value", "leaf_weight", "leaf_count", "internal_value", "internal_weight",
              "internal_count", "is_linear", "shrinkage")


def _numbers(text: str, pattern, field: str, count) -> list[str]:
    tokens = text.split(" ") if text else []
    if len(tokens) not in count:
        expected = (f"{count.start} to {count.stop - 1}" if isinstance(count, range)
                    else " or ".join(map(str, sorted(set(count)))))
        raise _Invalid(field, f"{len(tokens)} values (expected {expected})")
    for t in tokens:
        if not pattern.fullmatch(t):
            raise _Invalid(field, f"{t[:40]!r} is not a valid number")
    return tokens


def _lightgbm_text(data: bytes, spec: dict, field: str) -> str:
    """The LightGBM model text of ``data`` after a full check of its grammar, re-emitted from the
    checked parts (so LightGBM parses only text of the shape it writes itself, and never text
    that could make it read past its buffer, loop, or abort the interpreter).

    Checked: the header's keys and values (``num_tree_per_iteration`` = ``spec["outputs"]``,
    ``max_feature_idx`` = ``spec["n_features"]`` - 1, an identity-output objective), every tree's
    sixteen fields with the right number of finite numbers, split features in range, no
    categorical splits or linear leaves, children forming one tree, leaf values at most
    MAX_STORED_VALUE, and the byte sizes LightGBM jumps by."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _Invalid(field, "LightGBM model text must be ASCII") from None
    if "\r" in text or "\x00" in text:
        raise _Invalid(field, "LightGBM model text holds carriage returns or NUL characters")
    first = text.find("\nTree=0\n")
    if not text.startswith("tree\n") or first < 0:
        raise _Invalid(field, "not a LightGBM model text (no 'tree' header or no 'Tree=0')")
    header_lines = text[:first].split("\n")
    keys: dict = {}
    for line in header_lines[1:]:
        if line == "" or line == "average_output":
            keys.setdefault(line or "blank", True)
            continue
        key, sep, value = line.partition("=")
        if not sep or key in keys or key not in ("version", "num_class", "num_tree_per_iteration", "label_index",
                                                 "max_feature_idx", "objective", "feature_names", "feature_infos",
                                                 "tree_sizes", "monotone_constraints"):
            raise _Invalid(field, f"unexpected LightGBM header line {line[:60]!r}")
        keys[key] = value
    for key in ("version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx", "feature_names",
                "feature_infos", "tree_sizes"):
        if key not in keys:
            raise _Invalid(field, f"LightGBM header has no {key}")
    if keys["version"] != "v4":
        raise _Invalid(field, f"LightGBM model version {keys['version'][:20]!r}; expected v4")
    n_features, outputs = spec["n_features"], spec["outputs"]
    ints = {k: _numbers(keys[k], _INT, f"{field} ({k})", (1,))[0] for k in
            ("num_class", "num_tree_per_iteration", "label_index", "max_feature_idx")}
    if int(ints["num_tree_per_iteration"]) != outputs or int(ints["num_class"]) != outputs \
            or int(ints["label_index"]) != 0:
        raise _Invalid(field, f"a LightGBM model of {ints['num_tree_per_iteration']} outputs; the router needs {outputs}")
    if int(ints["max_feature_idx"]) != n_features - 1:
        raise _Invalid(field, f"a LightGBM model of {int(ints['max_feature_idx']) + 1} features; the router has "
                              f"{n_features}")
    if "objective" in keys:  # none: a custom objective, whose predictions are the raw scores
        words = keys["objective"].split(" ")
        if words[0] not in _OBJECTIVES or not all(w == "sqrt" or _OBJECTIVE_PARAM.fullmatch(w) for w in words[1:]):
            raise _Invalid(field, f"LightGBM objective {keys['objective'][:60]!r} is not an identity-output "
                                  "regression objective")
    names = keys["feature_names"].split(" ")
    if len(names) != n_features or not all(_Str(200, pattern=r"[^\s=]+")(n, field) for n in names):
        raise _Invalid(field, "LightGBM feature_names do not match the model's features")
    infos = keys["feature_infos"].split(" ")
    if len(infos) != n_features or not all(_FEATURE_INFO.fullmatch(i) for i in infos):
        raise _Invalid(field, "LightGBM feature_infos do not match the model's features")
    if "monotone_constraints" in keys:
        _numbers(keys["monotone_constraints"], _INT, f"{field} (monotone_constraints)", (n_features,))
    sizes = [int(t) for t in _numbers(keys["tree_sizes"], _INT, f"{field} (tree_sizes)", range(1, MAX_TREES + 1))]
    if len(sizes) % outputs:
        raise _Invalid(field, f"{len(sizes)} trees for {outputs} outputs per iteration")
    start = first + 1
    trees = []
    for i, size in enumerate(sizes):
        if size < 1 or start + size > len(text):
            raise _Invalid(field, f"LightGBM tree {i}: size {size} runs past the end of the text")
        trees.append(_lightgbm_tree(text[start:start + size], i, n_features, f"{field} (tree {i})"))
        start += size
    if not text.startswith("end of trees\n", start) and text[start:] != "end of trees":
        raise _Invalid(field, "LightGBM trees do not end where tree_sizes say ('end of trees' expected)")
    # re-emit: the checked header lines, the checked trees with their sizes, no trailing sections
    body = ["tree", "version=v4", f"num_class={outputs}", f"num_tree_per_iteration={outputs}", "label_index=0",
            f"max_feature_idx={n_features - 1}"]
    if "objective" in keys:
        body.append(f"objective={keys['objective']}")
    if "average_output" in keys:
        body.append("average_output")
    body += [f"feature_names={keys['feature_names']}", f"feature_infos={keys['feature_infos']}"]
    if "monotone_constraints" in keys:
        body.append(f"monotone_constraints={keys['monotone_constraints']}")
    body.append("tree_sizes=" + " ".join(str(len(t)) for t in trees))
    return "\n".join(body) + "\n\n" + "".join(trees) + "end of trees\n"


def _lightgbm_tree(block: str, index: int, n_features: int, field: str) -> str:
    lines = block.rstrip("\n").split("\n")
    if lines[0] != f"Tree={index}" or not block.endswith("\n\n"):
        raise _Invalid(field, f"expected a block starting 'Tree={index}' and ending in a blank line")
    values = {}
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if key in ("leaf_const", "num_features", "leaf_features", "leaf_coeff", "cat_boundaries", "cat_threshold"):
            raise _Invalid(field, "categorical splits or linear leaves (a router file stores plain numerical trees)")
        if not sep or key not in _TREE_KEYS or key in values:
            raise _Invalid(field, f"unexpected line {line[:60]!r}")
        values[key] = value
    missing = [k for k in _TREE_KEYS if k not in values]
    if missing:
        raise _Invalid(field, f"no {missing[0]} line")
    leaves = int(_numbers(values["num_leaves"], _INT, field, (1,))[0])
    if not 1 <= leaves <= MAX_LEAVES:
        raise _Invalid(field, f"num_leaves={leaves} (1 to {MAX_LEAVES})")
    if values["num_cat"] != "0" or values["is_linear"] != "0":
        raise _Invalid(field, "categorical splits or linear leaves (a router file stores plain numerical trees)")
    inner = leaves - 1
    split = [int(v) for v in _numbers(values["split_feature"], _INT, f"{field} split_feature", (inner,))]
    if any(not 0 <= f < n_features for f in split):
        raise _Invalid(field, "a split on a feature the model does not have")
    _numbers(values["threshold"], _FLOAT, f"{field} threshold", (inner,))
    decision = [int(v) for v in _numbers(values["decision_type"], _INT, f"{field} decision_type", (inner,))]
    if any(v not in (0, 2, 4, 6, 8, 10) for v in decision):
        raise _Invalid(field, "a decision_type that is not a numerical split")
    left = [int(v) for v in _numbers(values["left_child"], _INT, f"{field} left_child", (inner,))]
    right = [int(v) for v in _numbers(values["right_child"], _INT, f"{field} right_child", (inner,))]
    seen_nodes, seen_leaves = {0} if inner else set(), set() if inner else {0}
    for node, children in enumerate(zip(left, right)):
        for child in children:
            if child >= 0:  # an inner node, numbered after its parent: no cycles
                if not node < child < inner or child in seen_nodes:
                    raise _Invalid(field, f"node {node} has an invalid child {child}")
                seen_nodes.add(child)
            else:
                leaf = ~child
                if not 0 <= leaf < leaves or leaf in seen_leaves:
                    raise _Invalid(field, f"node {node} has an invalid leaf {child}")
                seen_leaves.add(leaf)
    if len(seen_nodes) != inner or len(seen_leaves) != leaves:
        raise _Invalid(field, "the children do not form one tree")
    leaf_values = _numbers(values["leaf_value"], _FLOAT, f"{field} leaf_value", (leaves,))
    if any(abs(float(v)) > MAX_STORED_VALUE for v in leaf_values):
        raise _Invalid(field, f"a leaf value beyond {MAX_STORED_VALUE:g}")
    _numbers(values["split_gain"], _FLOAT, f"{field} split_gain", (inner,))
    _numbers(values["leaf_weight"], _FLOAT, f"{field} leaf_weight", (leaves,) + ((0,) if leaves == 1 else ()))
    _numbers(values["leaf_count"], _INT, f"{field} leaf_count", (leaves,))
    for key in ("internal_value", "internal_weight"):
        _numbers(values[key], _FLOAT, f"{field} {key}", (inner,))
    _numbers(values["internal_count"], _INT, f"{field} internal_count", (inner,))
    _numbers(values["shrinkage"], _FLOAT, f"{field} shrinkage", (1,))
    return f"Tree={index}\n" + "".join(f"{k}={values[k]}\n" for k in _TREE_KEYS) + "\n\n"


def _load_lightgbm(data: bytes, spec: dict, field: str):
    from lightgbm import Booster
    from lightgbm.basic import LightGBMError

    text = _lightgbm_text(data, spec, field)
    try:
        return Booster(model_str=text)
    except LightGBMError as exc:  # the checked text should always parse; say so if it does not
        raise _Invalid(field, f"LightGBM refused the model text ({str(exc)[:200]})") from None


def _load_skops(data: bytes, spec: dict, field: str):
    """A scikit-learn model from skops bytes: the inner archive's sizes checked before inflating,
    every type on skops' trusted list, every stored number finite."""
    import skops.io as sio

    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as inner:
            try:
                _check_archive(inner, field, header_name=None)
            except RouterFileError as exc:
                raise _Invalid(field, str(exc).removeprefix(f"{field}: ")) from None
        untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError,
            RecursionError, EOFError, OSError) as exc:
        raise _Invalid(field, f"not a readable skops model ({type(exc).__name__})") from None
    if untrusted:
        raise _Invalid(field, f"holds types outside skops' trusted list {untrusted[:5]}; refusing to load it")
    try:
        model = sio.loads(data)
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError, AttributeError, IndexError, json.JSONDecodeError,
            UnicodeDecodeError, RecursionError, EOFError, OSError) as exc:
        raise _Invalid(field, f"not a readable skops model ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not hasattr(model, "predict") or getattr(model, "n_features_in_", spec["n_features"]) != spec["n_features"]:
        raise _Invalid(field, f"not a fitted regressor of {spec['n_features']} features")
    if not _all_finite(model):
        raise _Invalid(field, "the model holds non-finite numbers")
    return model


def _all_finite(obj, depth: int = 0) -> bool:
    if depth > 20:
        return True
    if isinstance(obj, np.ndarray):
        return obj.dtype.kind not in "fc" or bool(np.isfinite(obj).all())
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, (list, tuple)):
        return all(_all_finite(v, depth + 1) for v in obj)
    if isinstance(obj, dict):
        return all(_all_finite(v, depth + 1) for v in obj.values())
    if hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in ("sklearn", "numpy"):
        return all(_all_finite(v, depth + 1) for v in vars(obj).values())
    return True


def _dump_member(model) -> tuple[str, bytes]:
    """(kind, bytes) of a fitted model or array in a format loading never executes."""
    if isinstance(model, np.ndarray):
        if model.dtype.kind != "f":
            raise RouterFileError(f"a router file stores float arrays, not {model.dtype}")
        buf = _io.BytesIO()
        np.save(buf, np.ascontiguousarray(model, dtype="<f8"), allow_pickle=False)
        return "npy", buf.getvalue()
    from lightgbm import Booster, LGBMModel

    if isinstance(model, LGBMModel):
        return "lightgbm", model.booster_.model_to_string().encode("ascii")
    if isinstance(model, Booster):
        return "lightgbm", model.model_to_string().encode("ascii")
    import skops.io as sio

    data = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=data)
    if untrusted:
        raise RouterFileError(
            f"the model {type(model).__name__} holds types that a safe router file cannot load without "
            f"trusting them ({untrusted[:5]}); use a LightGBM or scikit-learn model, or save_pickle()")
    return "skops", data


def _load_member(kind: str, data: bytes, expectation, field: str):
    if kind == "npy":
        return _load_npy(data, expectation, field)
    if kind == "lightgbm":
        return _load_lightgbm(data, expectation, field)
    return _load_skops(data, expectation, field)


# ---- estimator parameters, nested ones included
_PARAM_ROOTS = ("causal_router", "sklearn", "lightgbm")
_MODULE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*(\.[a-z][a-z0-9]*(_[a-z0-9]+)*){0,4}")
_CLASS = re.compile(r"[A-Z][A-Za-z0-9]{0,99}")


def _public_path(cls) -> str:
    """``package.Class`` from which ``cls`` is importable: its module up to the first private part."""
    parts = cls.__module__.split(".")
    public = []
    for part in parts:
        if part.startswith("_"):
            break
        public.append(part)
    for depth in range(len(public), 0, -1):
        module = ".".join(public[:depth])
        if getattr(importlib.import_module(module), cls.__name__, None) is cls:
            return f"{module}.{cls.__name__}"
    raise RouterFileError(f"{cls.__module__}.{cls.__qualname__} is not importable from a public module")


def params_to_state(estimator) -> dict:
    """The parameters of ``estimator`` as JSON, nested estimators included (their class by its
    public import path and their own parameters), so that the router rebuilt from a file has the
    same ``get_params()``. Tuples and numeric arrays keep their type. A parameter of another kind
    (a function, a random generator, a class outside scikit-learn, LightGBM and causal_router)
    cannot be stored: RouterFileError names it (``save_pickle`` keeps any object).

    Parameters
    ----------
    estimator : estimator
        Any object with scikit-learn's ``get_params``.

    Returns
    -------
    dict
        Parameter name -> JSON-compatible value.

    Raises
    ------
    RouterFileError
        Naming a parameter that cannot be stored.
    """
    return {k: _param_to_state(v, k) for k, v in estimator.get_params(deep=False).items()}


def _param_to_state(value, where: str):
    from sklearn.base import BaseEstimator

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, tuple):
        return {"__tuple__": [_param_to_state(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_param_to_state(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _param_to_state(v, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, np.ndarray) and value.dtype.kind in "if" and value.ndim == 1:
        return {"__array__": [_param_to_state(v, where) for v in value.tolist()], "dtype": value.dtype.kind}
    if isinstance(value, BaseEstimator) and type(value).__module__.split(".")[0] in _PARAM_ROOTS:
        path = _public_path(type(value))
        unsaved = getattr(type(value), "_unsaved_params", ())  # e.g. a cache folder of this machine
        return {"__estimator__": path,
                "params": {k: _param_to_state(v, f"{where}__{k}") for k, v in value.get_params(deep=False).items()
                           if k not in unsaved}}
    raise RouterFileError(f"parameter {where!r} of type {type(value).__name__} cannot be stored in a router file "
                          "(numbers, strings, lists, tuples and scikit-learn, LightGBM or causal_router estimators "
                          "can); set it to one of those, or keep the whole object with save_pickle()")


def _param_from_state(value, where: str, depth: int = 0):
    from sklearn.base import BaseEstimator

    if depth > 12:
        raise _Invalid(where, "parameters nested too deep")
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(where, f"must be finite, got {value}")
        return value
    if isinstance(value, list):
        if len(value) > 100_000:
            raise _Invalid(where, "a list of more than 100000 parameters")
        return [_param_from_state(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise _Invalid(where, f"expected a parameter value, got {_kind(value)}")
    if set(value) == {"__float__"}:
        text = value["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise _Invalid(where, f"{str(text)[:20]!r} is not a non-finite float")
        return float(text)
    if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
        return tuple(_param_from_state(value["__tuple__"], where, depth + 1))
    if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
        return {str(k): _param_from_state(v, f"{where}.{k}", depth + 1) for k, v in value["__dict__"].items()}
    if set(value) == {"__array__", "dtype"} and value["dtype"] in ("i", "f") and isinstance(value["__array__"], list):
        items = value["__array__"]
        if len(items) > 100_000 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            raise _Invalid(where, "an array parameter must be a list of numbers")
        return np.asarray(items, dtype=int if value["dtype"] == "i" else float)
    if set(value) == {"__estimator__", "params"}:
        cls = _estimator_class(value["__estimator__"], where)
        params = value["params"]
        if not isinstance(params, dict):
            raise _Invalid(f"{where}.params", f"expected an object, got {_kind(params)}")
        unsaved = [k for k in params if k in getattr(cls, "_unsaved_params", ())]
        if unsaved:  # e.g. a cache folder: a file never names a path of the machine that reads it
            raise _Invalid(f"{where}.params.{unsaved[0]}", f"is not a parameter of {cls.__name__} a router file may set")
        known = set(cls._get_param_names()) if issubclass(cls, BaseEstimator) else set()
        unknown = [k for k in params if k not in known]
        if unknown and not _takes_kwargs(cls):
            raise _Invalid(f"{where}.params.{unknown[0]}", f"is not a parameter of {cls.__name__}")
        return cls(**{k: _param_from_state(v, f"{where}__{k}", depth + 1) for k, v in params.items()})
    raise _Invalid(where, "an object that is not a stored parameter value")


def _takes_kwargs(cls) -> bool:
    import inspect

    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())


def _estimator_class(path, where: str):
    """The estimator class at ``path`` ("package.Class"): a public module of scikit-learn,
    LightGBM or causal_router, and a scikit-learn estimator; anything else is refused unimported."""
    from sklearn.base import BaseEstimator

    if not isinstance(path, str) or "." not in path:
        raise _Invalid(where, f"expected a class path, got {_kind(path)}")
    module, _, name = path.rpartition(".")
    if not _MODULE.fullmatch(module) or module.split(".")[0] not in _PARAM_ROOTS or not _CLASS.fullmatch(name) \
            or module.split(".")[:2] == ["causal_router", "cli"]:
        raise _Invalid(where, f"class {path[:100]!r} is not one a router file may name (scikit-learn, LightGBM or "
                              "causal_router estimators)")
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        raise _Invalid(where, f"class {path[:100]!r} cannot be imported here") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise _Invalid(where, f"{path[:100]!r} is not a scikit-learn estimator")
    return cls


def _router_class(name: str):
    module, _ = ROUTER_CLASSES[name]
    return getattr(importlib.import_module(module), name)


# ---- reading and writing
def _check_archive(zf: zipfile.ZipFile, where, header_name: str | None = _HEADER_NAME) -> None:
    """Refuse an archive whose directory breaks the limits, before inflating anything: too many
    members, two members of one name, encrypted or unusually compressed members, a member or a
    total beyond the size limits."""
    infos = zf.infolist()
    if len(infos) > (MAX_MEMBERS + 1 if header_name else 10_000):
        raise RouterFileError(f"{where}: {len(infos)} members in the archive (at most {MAX_MEMBERS + 1})")
    names = [i.filename for i in infos]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RouterFileError(f"{where}: the archive holds two members named {twice[0][:80]!r}")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise RouterFileError(f"{where}: member {info.filename[:80]!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise RouterFileError(f"{where}: member {info.filename[:80]!r} uses compression {info.compress_type}")
        limit = MAX_HEADER_BYTES if info.filename == header_name else MAX_MEMBER_BYTES
        if info.file_size > limit:
            raise RouterFileError(f"{where}: member {info.filename[:80]!r} inflates to {info.file_size} bytes "
                                  f"(at most {limit})")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise RouterFileError(f"{where}: the members inflate to {total} bytes in all (at most {MAX_TOTAL_BYTES})")


def _json_pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the key {twice[:80]!r} appears twice in one object")
    return dict(pairs)


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _read_member(zf: zipfile.ZipFile, name: str, path) -> bytes:
    """A member's bytes (never more than its declared size, checked by :func:`_check_archive`)."""
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise RouterFileError(f"{path}: member {name!r} is damaged ({type(exc).__name__}: {str(exc)[:200]})") from None


def read_router_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """The header and the members of a router file, checked against the router-file schema before
    anything is built from it.

    In order: the archive's directory (members, names, sizes: :data:`MAX_MEMBER_BYTES` and the
    other limits, before inflating), ``router.json`` (JSON without NaN or repeated keys), its
    format and version, every field of the schema (types,
    ranges, shapes: a positive finite ``scale``, one name per model, the featurizer's settings
    from the allow-list of :data:`causal_router.text.TFIDF_STATE_VALUES`, the members each router
    needs), then each member in its own format with the shape the header implies (``.npy`` read
    with ``allow_pickle=False`` after its header; LightGBM text checked for completeness before
    LightGBM parses it; skops with its trusted types only). Anything else is one
    :class:`RouterFileError` naming the file and the field. Warns (``UserWarning``) when the
    libraries' versions differ from those that wrote it.

    Parameters
    ----------
    path : str or PathLike
        The router file.

    Returns
    -------
    header : dict
        The checked ``router.json``.
    members : dict
        Name -> loaded member (float arrays, ``lightgbm.Booster``, scikit-learn models).

    Raises
    ------
    RouterFileError
        Naming the file and the field, for anything that does not fit the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise RouterFileError(f"no router file at {path}")
    if not zipfile.is_zipfile(path):
        raise RouterFileError(f"{path} is not a causal_router router file (not a router archive; a trusted "
                              "pickle is read with load_pickle(path, trusted=True))")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError) as exc:
        raise RouterFileError(f"{path} is a damaged router file ({type(exc).__name__}: {str(exc)[:200]})") from None
    with zf:
        _check_archive(zf, path)
        names = set(zf.namelist())
        if _HEADER_NAME not in names:
            raise RouterFileError(f"{path} is not a causal_router router file (no {_HEADER_NAME})")
        raw = _read_member(zf, _HEADER_NAME, path)
        try:
            parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_json_pairs, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RouterFileError(f"{path}: {_HEADER_NAME} is not valid JSON ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from None
        header = _check_header(parsed, path)
        expect = _member_expectations(header)
        files = {f"models/{name}.{_MEMBER_FILE[kind]}": name for name, kind in header["members"].items()}
        extra = sorted(names - set(files) - {_HEADER_NAME})
        if extra:
            raise RouterFileError(f"{path}: the archive holds {extra[0][:80]!r}, which router.json does not list")
        members = {}
        for file, name in files.items():
            if file not in names:
                raise RouterFileError(f"{path}: member {file!r} is missing from the archive")
            try:
                members[name] = _load_member(header["members"][name], _read_member(zf, file, path), expect[name][1],
                                             f"member {name}")
            except _Invalid as exc:
                raise RouterFileError(f"{path}: {exc.field}: {exc.message}") from None
    saved, now = header["versions"], library_versions()
    mismatched = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
    if mismatched:
        warnings.warn(f"router file {path} was written with other library versions (saved, now): {mismatched}; "
                      "predictions may differ", UserWarning, stacklevel=3)
    return header, members


def router_from_file(header: dict, members: dict, *, path: str | os.PathLike = "router file"):
    """The router of a router file already read (:func:`read_router_file`).

    The class it names (from :data:`ROUTER_CLASSES`) with its parameters, nested estimators
    included, and its fitted state (:meth:`~causal_router.router.BaseRouter.from_state`). The
    header is checked again against the schema.

    Parameters
    ----------
    header : dict
        The router file's ``router.json``, as :func:`read_router_file` returns it.
    members : dict
        The loaded members, as :func:`read_router_file` returns them.
    path : str or PathLike, default="router file"
        The name the error messages give the file.

    Returns
    -------
    router
        The fitted router, of the class the header names, with ``file_info_`` (its class name,
        format version, library versions and bias summary).

    Raises
    ------
    RouterFileError
        For a header or state that does not fit the schema or the class.
    """
    header = _check_header(header, path)  # (again, for a header that did not come from read_router_file)
    name = header["router"]
    cls = _router_class(name)
    try:
        params = {}
        known = set(cls._get_param_names())
        for key, value in header["params"].items():
            if key not in known:
                raise _Invalid(f"params.{key}", f"is not a parameter of {name}")
            params[key] = _param_from_state(value, f"params.{key}")
        router = cls.from_state(params, header["fitted"], members, path=path)
    except _Invalid as exc:
        raise RouterFileError(f"{path}: field {exc.field}: {exc.message}") from None
    except RouterFileError:
        raise
    except DataError as exc:  # a component refused its state
        raise RouterFileError(f"{path}: {exc}") from None
    router.file_info_ = {"router": name, "format_version": header["format_version"],
                         "versions": dict(header["versions"]), "bias": header["fitted"].get("bias")}
    return router


def load_router(path: str | os.PathLike):
    """The router a router file holds, as the class it names (two-model or K-model): it predicts
    and routes exactly as the saved one, and ``clone(load_router(path))`` refits the same
    configuration. Checked against the schema before anything is built (:func:`read_router_file`).

    Parameters
    ----------
    path : str or PathLike
        The router file.

    Returns
    -------
    router
        The fitted router, of the class the file names (:data:`ROUTER_CLASSES`).

    Raises
    ------
    RouterFileError
        For a file that is not a readable router file of this version.
    """
    return router_from_file(*read_router_file(path), path=path)


def write_router_file(path: str | os.PathLike, header: Mapping[str, Any], members: Mapping[str, Any]) -> Path:
    """Write a router file: ``header`` (``router``, ``params`` as :func:`params_to_state` gives
    them, ``fitted``) and the named members (float arrays, LightGBM models, scikit-learn models).
    The header gains the format, its version, the library versions and the member table, and is
    checked against the same schema as :func:`read_router_file` (members too), so that a file
    this writes is one it reads. The file is written atomically (:func:`atomic_write`).

    Parameters
    ----------
    path : str or PathLike
        The output file (checked first: :func:`check_output_path`).
    header : Mapping of str to Any
        ``router`` (the class name), ``params`` and ``fitted`` (JSON-compatible).
    members : Mapping of str to Any
        Member name -> float array, LightGBM model or scikit-learn model.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    RouterFileError
        If the header or a member does not fit the schema (nothing is written).
    """
    path = check_output_path(path)
    blobs, kinds = {}, {}
    for name, model in members.items():
        kind, data = _dump_member(model)
        kinds[name] = kind
        blobs[f"models/{name}.{_MEMBER_FILE[kind]}"] = (name, data)
    payload = {"format": ROUTER_FORMAT, "format_version": ROUTER_FORMAT_VERSION, "versions": library_versions(),
               **{k: v for k, v in dict(header).items() if k not in ("format", "format_version", "versions")},
               "members": kinds}
    from ._utils import to_jsonable

    text = json.dumps(to_jsonable(payload), indent=1, allow_nan=False)
    checked = _check_header(json.loads(text), path)
    expect = _member_expectations(checked)
    for file, (name, data) in blobs.items():
        try:
            _load_member(kinds[name], data, expect[name][1], f"member {name}") if kinds[name] != "skops" else None
        except _Invalid as exc:
            raise RouterFileError(f"cannot write {path}: {exc.field}: {exc.message}") from None
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_HEADER_NAME, text)
        for file, (_, data) in blobs.items():
            zf.writestr(file, data)
    return path


def save_router(router, path: str | os.PathLike) -> Path:
    """Write ``router`` (a fitted router of :data:`ROUTER_CLASSES`) to a router file: its class,
    its parameters with nested estimators (:func:`params_to_state`), its fitted state
    (``router.to_state()``: features, scale, bias summary, featurizer, gain or utility model) and
    the library versions. Loading it runs no code.

    Parameters
    ----------
    router : router
        A fitted router of one of the classes of :data:`ROUTER_CLASSES`.
    path : str or PathLike
        The output file.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    RouterFileError
        For a router of another class, or a parameter that cannot be stored.
    """
    name = type(router).__name__
    if name not in ROUTER_CLASSES or _router_class(name) is not type(router):
        raise RouterFileError(f"{type(router).__module__}.{name} is not a router class a router file may hold "
                              f"({sorted(ROUTER_CLASSES)}); keep it with save_pickle()")
    path = check_output_path(path)
    params = params_to_state(router)
    fitted, members = router.to_state()
    return write_router_file(path, {"router": name, "params": params, "fitted": fitted}, members)


# ---------------------------------------------------------------------------- trusted pickles
def save_pickle(obj, path: str | os.PathLike) -> Path:
    """Save any fitted object with joblib (a TRUSTED PICKLE: loading it runs code; see
    :func:`load_pickle`). Keeps everything, the econml bias model included.

    The file is written atomically (:func:`atomic_write`) with the library versions.

    Parameters
    ----------
    obj : object
        Any picklable object.
    path : str or PathLike
        The output file.

    Returns
    -------
    Path
        The path written.
    """
    import joblib

    path = check_output_path(path)
    with atomic_write(path) as tmp:
        joblib.dump({"format": _PICKLE_FORMAT, "versions": library_versions(), "object": obj}, tmp)
    return path


def load_pickle(path: str | os.PathLike, *, trusted: bool = False):
    """Load a file written by :func:`save_pickle`. Unpickling executes code named in the file:
    pass ``trusted=True`` only for files you wrote yourself or otherwise trust.

    Parameters
    ----------
    path : str or PathLike
        The file written by :func:`save_pickle`.
    trusted : bool, default=False
        Must be True: the caller vouches for the file.

    Returns
    -------
    object
        The saved object.

    Raises
    ------
    DataError
        Without ``trusted=True``, for a missing file, or for a file that is not a causal_router
        trusted pickle.
    """
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
