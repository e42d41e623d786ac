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
    "NonNumericError",
    "as_float_matrix",
    "as_float_vector",
    "check_consistent_length",
    "check_columns",
    "check_random_state",
    "check_unique_names",
    "check_features",
    "check_same_index",
    "check_no_label_copy",
    "MAX_ABS_VALUE",
]


class DataError(ValueError):
    """Raised for bad input data: the message names the argument or column and the problem."""


class NonNumericError(DataError, TypeError):
    """Input that cannot be read as numbers (also a TypeError, as numpy and scikit-learn raise)."""


#: Largest magnitude accepted in features and gains. Squares and sums of squares of such values
#: stay finite with a wide margin (1e200 x n rows << 1.8e308); larger values overflow in the
#: variance, loss and scaling computations of the estimators.
MAX_ABS_VALUE = 1e100


def _describe_nonfinite(values: np.ndarray) -> str:
    n_nan = int(np.isnan(values).sum())
    n_inf = int(np.isinf(values).sum())
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN")
    if n_inf:
        parts.append(f"{n_inf} infinite")
    return " and ".join(parts) + " value" + ("s" if n_nan + n_inf > 1 else "")


def _to_float(values, name: str) -> np.ndarray:
    """A float copy of ``values``; refuses complex numbers and non-numeric entries, naming ``name``."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    if hasattr(values, "toarray") or type(values).__module__.startswith("scipy.sparse"):
        raise DataError(f"{name}: sparse input is not supported; pass a dense array (e.g. X.toarray())")
    raw = np.asarray(values)
    if raw.dtype.kind == "c" or (raw.dtype.kind == "O" and raw.size
                                 and any(isinstance(v, complex) for v in raw.ravel()[:1000])):
        raise DataError(f"Complex data not supported: {name} has complex values; only real numbers are accepted")
    try:
        return np.array(raw, dtype=float)  # a copy: never a view of the caller's data
    except TypeError as exc:
        raise NonNumericError(f"{name} must be numeric: {exc}") from None
    except ValueError as exc:
        raise DataError(f"{name} must be numeric: {exc}") from None


def _check_values(arr: np.ndarray, name: str, columns: Sequence[str] | None = None) -> None:
    """Raise naming the first column with NaN / infinite values or magnitudes above MAX_ABS_VALUE."""
    arr2 = arr.reshape(len(arr), -1)

    def label(col: int) -> str:
        if columns is not None and col < len(columns):
            return f" (first in feature {columns[col]!r})"
        return "" if arr.ndim == 1 else f" (first in column {col})"

    if arr2.size == 0:
        return
    # column minima and maxima (NaN propagates): no (n, d) temporaries, which at 10M x 50 would
    # double the memory of the data; the element-wise arrays are built only to describe an error
    lo, hi = arr2.min(axis=0), arr2.max(axis=0)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        finite = np.isfinite(arr2)
        col = int(np.where(~finite.all(axis=0))[0][0])
        raise DataError(f"{name} contains {_describe_nonfinite(arr2)}{label(col)}; remove or impute them first")
    if (np.maximum(-lo, hi) > MAX_ABS_VALUE).any():
        big = np.abs(arr2) > MAX_ABS_VALUE
        col = int(np.where(big.any(axis=0))[0][0])
        raise DataError(f"{name} has {int(big.sum())} value(s) of magnitude above {MAX_ABS_VALUE:.0e}{label(col)}, "
                        "whose squares overflow; rescale them first")


def as_float_vector(values, name: str) -> np.ndarray:
    """Return ``values`` as a finite 1-d float array of shape (n,), or raise naming ``name``."""
    arr = _to_float(values, name)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    _check_values(arr, name)
    return arr


def as_float_matrix(values, name: str = "X", columns: Sequence[str] | None = None) -> np.ndarray:
    """Return ``values`` as a finite 2-d float array of shape (n, d), or raise naming the column."""
    if isinstance(values, pd.DataFrame):
        columns = [str(c) for c in values.columns]
        check_unique_names(columns, f"{name} columns")
        bad = [c for c, dt in zip(values.columns, values.dtypes) if not pd.api.types.is_numeric_dtype(dt)
               and not pd.api.types.is_bool_dtype(dt)]
        if bad:
            raise DataError(f"{name}: column(s) {bad} are not numeric; encode them as numbers first")
        complex_cols = [c for c, dt in zip(values.columns, values.dtypes) if pd.api.types.is_complex_dtype(dt)]
        if complex_cols:
            raise DataError(f"Complex data not supported: {name} column(s) {complex_cols} have complex values")
        values = values.to_numpy(dtype=float)
    arr = _to_float(values, name)
    if arr.ndim != 2:
        raise DataError(f"{name} must be two-dimensional (n_rows, n_features), got shape {arr.shape}. Reshape your "
                        "data with array.reshape(-1, 1) for a single feature or array.reshape(1, -1) for one row")
    if arr.shape[0] == 0:
        raise DataError(f"{name} has no rows")
    if arr.shape[1] == 0:
        raise DataError(f"{name} has 0 feature(s) (shape=({arr.shape[0]}, 0)) while a minimum of 1 is required.")
    _check_values(arr, name, columns)
    return arr


def check_unique_names(names: Sequence[str], what: str) -> None:
    """Raise naming the repeated entries of ``names``."""
    seen, repeated = set(), []
    for n in names:
        if n in seen and n not in repeated:
            repeated.append(n)
        seen.add(n)
    if repeated:
        raise DataError(f"{what} repeat the name(s) {repeated[:10]}; every column needs its own name")


def check_same_index(what: str, **objects) -> None:
    """Raise if the pandas objects among ``objects`` carry different row indexes (rows would be
    paired by position, silently, where the indexes say otherwise)."""
    indexed = {k: v.index for k, v in objects.items() if isinstance(v, (pd.Series, pd.DataFrame))}
    if len(indexed) < 2:
        return
    names = list(indexed)
    first = indexed[names[0]]
    for k in names[1:]:
        if len(indexed[k]) == len(first) and not indexed[k].equals(first):
            raise DataError(
                f"{what}: {names[0]} and {k} have different row indexes; align them (or pass "
                "numpy arrays / reset_index(drop=True)) so that rows are not paired by position by mistake")


def check_features(X, feature_names: Sequence[str] | None, who: str, *, n_features: int | None = None,
                   warn_names: bool = False) -> np.ndarray:
    """Features at prediction time as a float array (n, d) in the order they were fitted in.

    ``who`` names the fitted model in messages (its class name). ``feature_names``: the names the
    model was fitted with, or None for a model fitted without names (then ``n_features`` gives d).

    A DataFrame is matched by column name when the model has names: the same names in another
    order are reordered; missing or unexpected names raise :class:`DataError` naming them. An
    array, or any input to a model fitted without names, is taken by position and must have d
    columns. With ``warn_names`` (the routers), scikit-learn's two warnings apply: a DataFrame
    given to a model fitted without names ("X has feature names, but ... was fitted without
    feature names"), and an array given to a model fitted with names ("X does not have valid
    feature names, but ... was fitted with feature names").
    """
    names = None if feature_names is None else [str(n) for n in feature_names]
    expected = len(names) if names is not None else n_features
    named = isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)
    if names is not None and isinstance(X, pd.DataFrame) and (named or not warn_names):
        columns = [str(c) for c in X.columns]
        check_unique_names(columns, "X columns")
        if columns != names:
            missing = [n for n in names if n not in columns]
            extra = [c for c in columns if c not in names]
            if missing or extra:
                raise DataError(
                    f"X has other feature columns than {who} was fitted with: missing {missing[:10]}"
                    f"{' ...' if len(missing) > 10 else ''}, unexpected {extra[:10]}{' ...' if len(extra) > 10 else ''}"
                    " (pass a DataFrame with the fitted column names, or an array in the fitted order)")
            X = X[[X.columns[columns.index(n)] for n in names]]
        return as_float_matrix(X, "X")
    if warn_names:
        import warnings

        if names is None and named:
            warnings.warn(f"X has feature names, but {who} was fitted without feature names", UserWarning,
                          stacklevel=3)
        elif names is not None and not named:
            warnings.warn(f"X does not have valid feature names, but {who} was fitted with feature names",
                          UserWarning, stacklevel=3)
    X = as_float_matrix(X, "X")
    if expected is not None and X.shape[1] != expected:
        raise DataError(f"X has {X.shape[1]} features, but {who} is expecting {expected} features as input")
    return X


#: Rows of each group compared on every column before the candidates are compared in full.
_SCREEN_ROWS = 64


def check_no_label_copy(X: np.ndarray, gain: np.ndarray, is_gold: np.ndarray, feature_names: Sequence[str],
                        label: str) -> None:
    """Refuse a feature column that repeats the label.

    A column of ``X`` (n, d) is a copy of the label when it equals ``gain`` (n,) on every gold
    row or on every preference row (``is_gold`` (n,) bool) where the gains of those rows are not
    all equal (a constant label carries nothing to leak; a binary feature matching it is then a
    coincidence). The typical case is the label itself, or a ``gold_gain`` column, left among the
    features: the model would learn from the answer. ``label`` names the label in the message.

    Cost: every column is compared on the first 64 rows of each group, and only the columns
    that match there are compared in full, one column at a time: no (n, d) temporary is made.
    """
    for rows, group in ((is_gold, "gold"), (~is_gold, "preference")):
        idx = np.flatnonzero(rows)
        if len(idx) < 2:
            continue
        y = gain[idx]
        if y.min() == y.max():
            continue
        head = idx[:_SCREEN_ROWS]
        candidates = np.flatnonzero(np.all(X[head] == gain[head, None], axis=0))
        for col in candidates:
            if np.array_equal(X[idx, col], y):
                name = feature_names[col] if col < len(feature_names) else f"column {col}"
                raise DataError(f"feature {name!r} equals the label {label!r} on every {group} row: a label cannot be "
                                "a feature; drop it from the features")


def check_consistent_length(**arrays) -> int:
    """Raise if the named arrays do not all have the same number of rows; return that number."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise DataError(f"mismatched lengths: {desc}")
    return next(iter(lengths.values()))


#: Most names a message lists (of missing columns, of available columns).
_SHOWN_NAMES = 20


def _names(names: Sequence, limit: int = _SHOWN_NAMES) -> str:
    """``names`` as a list for a message: at most ``limit`` of them, then how many more."""
    names = list(names)
    shown = repr(names[:limit])
    return shown if len(names) <= limit else f"{shown[:-1]}, ... ({len(names) - limit} more)]"


def check_columns(frame: pd.DataFrame, required: Iterable[str], what: str = "data") -> None:
    """Raise naming the columns of ``required`` that ``frame`` lacks (the first 20 of them, each
    with the closest available names) and the available columns (the first 20 and their count):
    a message stays one readable line for a file of 20,000 columns."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        import difflib

        available = [str(c) for c in frame.columns]
        close = {str(m): difflib.get_close_matches(str(m), available, n=3) for m in missing[:3]}
        hint = "; ".join(f"for {m!r} did you mean {c}?" for m, c in close.items() if c)
        raise DataError(f"{what} is missing column(s) {_names(missing)}"
                        + (f" ({hint})" if hint else "")
                        + f"; available columns ({len(available)}): {_names(available)}")


def check_random_state(random_state) -> np.random.Generator:
    """A numpy Generator from None, an int or a Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)
