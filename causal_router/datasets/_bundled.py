"""The processed copies of the real data sets that ship inside the package (folder ``data/``).

``data/`` holds one gzip-compressed CSV per data set (the loaders' output, see :mod:`.real`),
``manifest.json`` (per table: file, row count, column dtypes, SHA-256, the judges, the rows
the loader dropped when the copy was built, a digest of the upstream files it was built
from), the upstream licence texts and a NOTICE. The tables are rebuilt from the raw upstream
files by the maintainer script ``scripts/build_bundled_data.py``; a test checks that the
bundled and the raw route give identical frames.

PRD Vicuna80 is stored once for all its judges ("wide"): the loader's judge-specific columns
``pref_gain`` and ``n_pref_votes`` become ``pref_gain_<judge>`` and ``n_pref_votes_<judge>``
(NaN where that judge gave no verdict), ``pref_gain_2`` is left out (it is another judge's
``pref_gain``), and :func:`prd_for_judge` turns the wide table back into the loader's frame.

CSV keeps the copy readable by pandas alone. Floats are written in their shortest round-trip
form and parsed back by Python's ``float`` (correctly rounded, unlike a CSV parser's fast path):
every value comes back bit-identical (the gains are means of small integers, e.g. 1/3). Gzip runs with ``mtime=0`` so that a rebuild
from unchanged raw files gives byte-identical files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._validation import DataError
from ..io import atomic_write

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The folder of the bundled copies inside the installed package.
DATA = resources.files(__package__) / "data"
MANIFEST = "manifest.json"
#: Files of the bundled tables, by data set name.
TABLE_FILES = {"pandalm": "pandalm.csv.gz", "prd_vicuna80": "prd_vicuna80.csv.gz"}
#: Loader columns that depend on the PRD judge; ``pref_gain_2`` is recovered from the others.
_PER_JUDGE = ("pref_gain", "n_pref_votes")
_PRD_KEY = ["question_id", "pair"]


# ---------------------------------------------------------------------------- tables
def _root(folder: Traversable | str | os.PathLike | None) -> Traversable | Path:
    """``folder`` as a path (the package's ``data/`` when None; a Traversable is kept as it is)."""
    if folder is None:
        return DATA
    return Path(folder) if isinstance(folder, (str, os.PathLike)) else folder


def _dtype_name(dtype) -> str:
    if pd.api.types.is_string_dtype(dtype):
        return "str"
    name = str(dtype)
    if name not in ("int64", "float64", "Int64"):
        raise TypeError(f"cannot bundle a column of dtype {name}")
    return name


def write_table(frame: pd.DataFrame, folder: str | os.PathLike, name: str) -> dict[str, Any]:
    """Write ``frame`` as ``folder/TABLE_FILES[name]``; return its manifest entry.

    Text columns must hold strings only (no missing values): the CSV would not tell "" from a
    missing value. Deterministic: the same frame gives the same bytes.
    """
    dtypes = {col: _dtype_name(frame[col].dtype) for col in frame.columns}
    for col, kind in dtypes.items():
        if kind == "str" and frame[col].isna().any():
            raise DataError(f"column {col!r} has missing text values, which CSV cannot keep apart from ''")
    text = frame.to_csv(index=False, lineterminator="\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    payload = buffer.getvalue()
    file = TABLE_FILES[name]
    with atomic_write(Path(folder, file)) as tmp:
        tmp.write_bytes(payload)
    return {"file": file, "rows": len(frame), "sha256": hashlib.sha256(payload).hexdigest(),
            "dtypes": dtypes}


def read_manifest(folder: Traversable | str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of the bundled copies (in ``folder``, default: the package's ``data/``)."""
    root = _root(folder)
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"the bundled real data are missing ({MANIFEST} not found in {root}): reinstall "
                        "causal_router, or pass the folder of the raw upstream files") from None


def read_table(name: str, folder: Traversable | str | os.PathLike | None = None
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The bundled table ``name`` with the dtypes it was written with, and its manifest entry."""
    root = _root(folder)
    entry = read_manifest(root)["tables"][name]
    dtypes = entry["dtypes"]
    floats = [c for c, kind in dtypes.items() if kind == "float64"]
    try:
        payload = (root / entry["file"]).read_bytes()
    except FileNotFoundError:
        raise DataError(f"the bundled copy of {name} is missing ({entry['file']} not found in {root}): "
                        "reinstall causal_router, or pass the folder of the raw upstream files") from None
    if hashlib.sha256(payload).hexdigest() != entry["sha256"]:
        raise DataError(f"the bundled copy of {name} ({entry['file']} in {root}) does not match the checksum "
                        f"in {MANIFEST}: the file was altered; reinstall causal_router")
    frame = pd.read_csv(io.BytesIO(payload), compression="gzip", encoding="utf-8", keep_default_na=False,
                        dtype={c: str if kind in ("str", "float64") else kind for c, kind in dtypes.items()},
                        na_values={c: [""] for c, kind in dtypes.items() if kind == "Int64"})
    for col in floats:  # Python's float() is correctly rounded: the shortest repr comes back bit for bit
        frame[col] = np.array([float(v) if v else np.nan for v in frame[col]], dtype=np.float64)
    if list(frame.columns) != list(dtypes) or len(frame) != entry["rows"]:
        raise DataError(f"the bundled copy of {name} ({entry['file']}) does not match {MANIFEST}: "
                        f"{len(frame)} rows and columns {list(frame.columns)}")
    return frame, entry


# ---------------------------------------------------------------------------- PRD: one table, every judge
def prd_wide(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One PRD table for several judges from ``{judge: load_prd_vicuna80(raw, judge=judge)}``.

    Rows: every (question, pair) of any judge's frame, in the loader's order (question_id, pair).
    Columns: the loaders' shared columns in their order, with ``pref_gain`` and ``n_pref_votes``
    expanded to one column per judge. Raises if the frames disagree on a shared value or if a
    frame's ``pref_gain_2`` is not another judge's ``pref_gain``.
    """
    judges = list(frames)
    order = list(frames[judges[0]].columns)
    shared = [c for c in order if c not in (*_PER_JUDGE, "pref_gain_2")]
    base = pd.concat([f[shared] for f in frames.values()], ignore_index=True)
    wide = base.drop_duplicates(_PRD_KEY).set_index(_PRD_KEY)
    if len(base.drop_duplicates()) != len(wide):
        raise DataError("the judges' frames disagree on a shared column (texts, gold gains, vote counts)")
    for judge, frame in frames.items():
        per_judge = frame.set_index(_PRD_KEY)[list(_PER_JUDGE)]
        wide = wide.join(per_judge.add_suffix(f"_{judge}"))
    for judge, frame in frames.items():
        second = frame.attrs.get("judges", {}).get("pref_gain_2")
        expected = wide[f"pref_gain_{second}"].reindex(frame.set_index(_PRD_KEY).index).to_numpy()
        if second not in frames or not _same_floats(frame["pref_gain_2"].to_numpy(), expected):
            raise DataError(f"{judge}: pref_gain_2 is not the pref_gain of judge {second!r}")
    columns = []
    for col in order:
        if col in _PER_JUDGE:
            columns += [f"{col}_{j}" for j in judges]
        elif col != "pref_gain_2":
            columns.append(col)
    wide = wide.reset_index().sort_values(_PRD_KEY, kind="stable").reset_index(drop=True)
    return wide[columns].astype({f"n_pref_votes_{j}": "Int64" for j in judges})


def prd_for_judge(wide: pd.DataFrame, judge: str, second: str) -> pd.DataFrame:
    """The loader's frame for ``judge`` (``pref_gain_2`` from ``second``) from :func:`prd_wide`'s table."""
    judges = [c.removeprefix("pref_gain_") for c in wide.columns if c.startswith("pref_gain_")]
    if judge not in judges:
        raise DataError(f"the bundled PRD copy has no verdicts of judge {judge!r} (it has {judges})")
    rows = wide[wide[f"pref_gain_{judge}"].notna()]
    out = {}
    for col in wide.columns:
        if col == f"pref_gain_{judge}":
            out["pref_gain"] = rows[col]
            out["pref_gain_2"] = rows[f"pref_gain_{second}"] if second in judges else float("nan")
        elif col == f"n_pref_votes_{judge}":
            out["n_pref_votes"] = rows[col].astype("int64")
        elif not col.startswith(("pref_gain_", "n_pref_votes_")):
            out[col] = rows[col]
    return pd.DataFrame(out).reset_index(drop=True)


def _same_floats(a, b) -> bool:
    """Equal as bit patterns (so 0.0 differs from -0.0; any NaN equals any NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    return bool(((a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))).all())
