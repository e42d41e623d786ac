"""Input checks shared by every public entry point.

Each check raises :class:`DataError` (a :class:`ValueError`) whose message names the argument
or column at fault and the problem, so that a user can fix the input without reading code.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DataError",
    "as_float_matrix",
    "as_float_vector",
    "check_consistent_length",
    "check_columns",
    "check_random_state",
]


class DataError(ValueError):
    """Raised for bad input data: the message names the argument or column and the problem."""


def _describe_nonfinite(values: np.ndarray) -> str:
    n_nan = int(np.isnan(values).sum())
    n_inf = int(np.isinf(values).sum())
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN")
    if n_inf:
        parts.append(f"{n_inf} infinite")
    return " and ".join(parts) + " value" + ("s" if n_nan + n_inf > 1 else "")


def as_float_vector(values, name: str) -> np.ndarray:
    """Return ``values`` as a finite 1-d float array of shape (n,), or raise naming ``name``."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    try:
        arr = np.array(values, dtype=float)  # a copy: never a view of the caller's data
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric: {exc}") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains {_describe_nonfinite(arr)}; remove or impute them first")
    return arr


def as_float_matrix(values, name: str = "X", columns: Sequence[str] | None = None) -> np.ndarray:
    """Return ``values`` as a finite 2-d float array of shape (n, d), or raise naming the column."""
    if isinstance(values, pd.DataFrame):
        columns = [str(c) for c in values.columns]
        bad = [c for c, dt in zip(values.columns, values.dtypes) if not pd.api.types.is_numeric_dtype(dt)
               and not pd.api.types.is_bool_dtype(dt)]
        if bad:
            raise DataError(f"{name}: column(s) {bad} are not numeric; encode them as numbers first")
        values = values.to_numpy(dtype=float)
    try:
        arr = np.array(values, dtype=float)  # a copy: never a view of the caller's data
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric: {exc}") from None
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise DataError(f"{name} must be two-dimensional (n_rows, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} has no rows")
    if arr.shape[1] == 0:
        raise DataError(f"{name} has no feature columns")
    finite = np.isfinite(arr)
    if not finite.all():
        col = int(np.where(~finite.all(axis=0))[0][0])
        label = columns[col] if columns is not None and col < len(columns) else f"column {col}"
        raise DataError(
            f"{name} contains {_describe_nonfinite(arr)} (first in feature {label!r}); "
            "remove or impute them first"
        )
    return arr


def check_consistent_length(**arrays) -> int:
    """Raise if the named arrays do not all have the same number of rows; return that number."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise DataError(f"mismatched lengths: {desc}")
    return next(iter(lengths.values()))


def check_columns(frame: pd.DataFrame, required: Iterable[str], what: str = "data") -> None:
    """Raise naming every column of ``required`` that ``frame`` lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        shown = list(frame.columns)[:12]
        raise DataError(f"{what} is missing column(s) {missing}; available columns start {shown}")


def check_random_state(random_state) -> np.random.Generator:
    """A numpy Generator from None, an int or a Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)
