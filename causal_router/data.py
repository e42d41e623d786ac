"""Evaluation data: pooled gold-standard and preference-based rows, and scale normalisation.

A row is a query (features ``X``), the evaluation mechanism that labelled it (``source``: the
treatment, 1 = gold standard, 0 = preference) and the observed gain of the primary model over
the alternative (``gain``, on that mechanism's own scale).

Gold and preference gains live on different scales (Meta-Router, Remark 1). The estimators
compute a constant c (:func:`scale_constant`, their ``scale`` parameter, fitted attribute
``scale_``) such that ``c * gold`` is on the preference scale, work on that common scale
(:func:`pooled_outcome`) and divide by c to report on the gold scale. The constant is fitted on
the training rows, like any other fitted quantity; :class:`EvalData` only holds the data.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ._validation import (
    DataError,
    as_float_matrix,
    as_float_vector,
    check_columns,
    check_consistent_length,
    check_same_index,
    check_unique_names,
)

__all__ = ["EvalData", "as_eval_data", "numeric_column", "fitted_scale", "pooled_outcome", "scale_constant", "SCALE_METHODS", "GOLD", "PREFERENCE"]

GOLD = "gold"
PREFERENCE = "preference"
SCALE_METHODS = ("variance", "amplitude", "wasserstein", None)
_ROW_FIELDS = ("X", "gain", "is_gold", "query_id", "text", "pair", "cost_primary", "cost_alternative",
               "gold_probability")


def scale_constant(gold_gain, pref_gain, method: str | None = "variance") -> float:
    """The constant c that puts gold gains on the preference scale (``c * gold ~ pref``).

    Parameters
    ----------
    gold_gain, pref_gain : array-like of shape (n_gold,), (n_pref,)
        Observed gains of each mechanism (different queries; the two need not be paired).
    method : {"variance", "amplitude", "wasserstein", None}
        ``"variance"`` matches standard deviations (the paper's experiments);
        ``"amplitude"`` matches peak-to-peak ranges; ``"wasserstein"`` minimises the
        2-Wasserstein distance between the distributions of ``c * gold`` and ``pref``, i.e.
        c = int Qg Qp du / int Qg^2 du over quantile functions; ``None`` gives 1.

    Returns
    -------
    float, c > 0.
    """
    if method not in SCALE_METHODS:
        raise DataError(f"scale must be one of {SCALE_METHODS}, got {method!r}")
    if method is None:
        return 1.0
    g = as_float_vector(gold_gain, "gold gains")
    p = as_float_vector(pref_gain, "preference gains")
    for name, values in (("gold", g), ("preference", p)):
        if len(values) < 2:
            raise DataError(f"too few {name} rows to compute the {method!r} scale constant: got {len(values)}, "
                            "need at least 2 (or pass scale=None)")
    if method == "variance":
        num, den = np.std(p), np.std(g)
    elif method == "amplitude":
        num, den = np.ptp(p), np.ptp(g)
    else:
        u = (np.arange(200) + 0.5) / 200
        qg, qp = np.quantile(g, u), np.quantile(p, u)
        num, den = float(np.mean(qg * qp)), float(np.mean(qg * qg))
    if not (np.isfinite(num) and np.isfinite(den)) or den <= 0 or num <= 0:
        raise DataError(
            f"cannot compute the {method!r} scale constant: the gold gains "
            f"(sd={np.std(g):.3g}) or preference gains (sd={np.std(p):.3g}) are constant, or the "
            "two are anti-aligned; pass scale=None to skip scale normalisation"
        )
    return float(num / den)


def _as_source(source, n: int | None = None) -> np.ndarray:
    """Boolean treatment vector (True = gold) from labels "gold"/"preference", bools or 0/1."""
    if isinstance(source, (pd.Series, pd.Index)):
        source = source.to_numpy()
    arr = np.asarray(source)
    if arr.ndim != 1:
        raise DataError(f"source must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.copy()
    if arr.dtype.kind in "iuf":
        if not np.all(np.isin(arr, [0, 1])):
            bad = sorted(set(np.unique(arr[~np.isin(arr, [0, 1])]).tolist()))[:5]
            raise DataError(f"source has unknown labels {bad}; numeric sources must be 0/1 (1 = gold)")
        return arr.astype(bool)
    labels = pd.Series(arr, dtype="object")
    if labels.isna().any():
        raise DataError(f"source has {int(labels.isna().sum())} missing labels")
    labels = labels.astype(str)
    unknown = sorted(set(labels) - {GOLD, PREFERENCE})
    if unknown:
        raise DataError(
            f"source has unknown labels {unknown[:5]}; expected {GOLD!r} or {PREFERENCE!r} "
            "(or booleans, True = gold)"
        )
    return (labels == GOLD).to_numpy()


def _optional_vector(values, name: str) -> np.ndarray | None:
    return None if values is None else as_float_vector(values, name)


def _optional_labels(values, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else values, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if pd.isna(arr).any():
        raise DataError(f"{name} has {int(pd.isna(arr).sum())} missing values")
    return arr


class EvalData:
    """Pooled gold-standard and preference evaluations of a primary vs an alternative model.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n, d)
        Query features (finite floats).
    gain : array-like of shape (n,)
        Observed gain of the primary model over the alternative, each row on the scale of the
        mechanism that evaluated it.
    source : array-like of shape (n,)
        ``"gold"`` / ``"preference"`` labels, or booleans / 0-1 (True = gold). The treatment t.
    query_id, text, pair : array-like of shape (n,), optional
        Query identifiers, query text and model-pair labels, carried along for reports.
    cost_primary, cost_alternative : array-like of shape (n,), optional
        Per-query costs; routing uses 1 / 0 when absent.
    gold_probability : array-like of shape (n,), optional
        The known probability with which each row's query was selected for a gold label, where
        a design chose the gold rows (:mod:`causal_router.active`); in (0, 1) on every row. The
        bias estimator then uses it as the propensity instead of estimating one.
    feature_names : sequence of str, optional
        Names of the columns of X (taken from a DataFrame's columns by default; ``x0 .. x{d-1}``
        otherwise).

    ``named_features`` (bool) says whether X came as a DataFrame with string column names:
    estimators fitted on such data record ``feature_names_in_`` and match a DataFrame's columns
    by name, as scikit-learn does; names given to an array label reports only.
    Pandas inputs must share one row index (rows are never paired by position where the
    indexes disagree). Data with a single source is valid (gold-only and preference-only
    baselines, the All-Golden oracle); the bias estimator refuses it.
    """

    def __init__(
        self,
        X,
        gain,
        source,
        *,
        query_id=None,
        text=None,
        pair=None,
        cost_primary=None,
        cost_alternative=None,
        gold_probability=None,
        feature_names: Sequence[str] | None = None,
    ):
        check_same_index("EvalData", X=X, gain=gain, source=source, query_id=query_id, text=text, pair=pair,
                         cost_primary=cost_primary, cost_alternative=cost_alternative,
                         gold_probability=gold_probability)
        self.named_features = isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)
        if feature_names is None and isinstance(X, pd.DataFrame):
            feature_names = [str(c) for c in X.columns]
        self.X = as_float_matrix(X, "X", feature_names)
        self.gain = as_float_vector(gain, "gain")
        self.is_gold = _as_source(source)
        self.query_id = _optional_labels(query_id, "query_id")
        self.text = _optional_labels(text, "text")
        self.pair = _optional_labels(pair, "pair")
        self.cost_primary = _optional_vector(cost_primary, "cost_primary")
        self.cost_alternative = _optional_vector(cost_alternative, "cost_alternative")
        self.gold_probability = _optional_vector(gold_probability, "gold_probability")
        check_consistent_length(
            X=self.X, gain=self.gain, source=self.is_gold, query_id=self.query_id, text=self.text,
            pair=self.pair, cost_primary=self.cost_primary, cost_alternative=self.cost_alternative,
            gold_probability=self.gold_probability,
        )
        if self.gold_probability is not None and not np.all((self.gold_probability > 0) & (self.gold_probability < 1)):
            raise DataError("gold_probability must lie strictly between 0 and 1 on every row (every query keeps a "
                            "chance of either label: positivity)")
        if feature_names is None:
            feature_names = [f"x{j}" for j in range(self.X.shape[1])]
        if len(feature_names) != self.X.shape[1]:
            raise DataError(f"feature_names has {len(feature_names)} names for {self.X.shape[1]} columns of X")
        self.feature_names = [str(f) for f in feature_names]
        check_unique_names(self.feature_names, "feature names")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        features: Sequence[str],
        gain: str = "gain",
        source: str = "source",
        *,
        gold_value="gold",
        preference_value="preference",
        query_id: str | None = None,
        text: str | None = None,
        pair: str | None = None,
        cost_primary: str | None = None,
        cost_alternative: str | None = None,
        gold_probability: str | None = None,
    ) -> "EvalData":
        """Build from a DataFrame; arguments name its columns. The frame is not modified.

        ``source`` values equal to ``gold_value`` are gold rows, those equal to
        ``preference_value`` preference rows; any other value is an error. A boolean source
        column is taken as is (True = gold). The gain and source columns cannot also be features.
        """
        features = [features] if isinstance(features, str) else list(features)
        if not features:
            raise DataError("features is empty: name at least one feature column")
        check_unique_names(features, "features")
        optional = {"query_id": query_id, "text": text, "pair": pair, "cost_primary": cost_primary,
                    "cost_alternative": cost_alternative, "gold_probability": gold_probability}
        check_columns(df, [*features, gain, source, *[c for c in optional.values() if c]], "data frame")
        if len(df) == 0:
            raise DataError("the data frame has no rows")
        labels = [c for c in (gain, source, gold_probability) if c in features]
        if labels:
            raise DataError(f"column(s) {labels} are the label, the source or the gold probability and cannot also be "
                            "features; drop them from the features")
        src = df[source]
        if not pd.api.types.is_bool_dtype(src):
            values = src.astype("object")
            known = values.isin([gold_value, preference_value])
            if not known.all():
                unknown = sorted(map(str, pd.unique(values[~known])))[:5]
                raise DataError(
                    f"column {source!r} has unknown source labels {unknown}; expected "
                    f"{gold_value!r} (gold) or {preference_value!r} (preference)"
                )
            src = (values == gold_value).to_numpy(dtype=bool)
        data = cls(
            df[features],
            numeric_column(df, gain),
            src,
            **{k: (None if c is None else df[c].to_numpy()) for k, c in optional.items()},
        )
        _check_no_label_copy(data, gain)
        return data

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return self.X.shape[0]

    def __repr__(self) -> str:
        return (f"EvalData(n_gold={self.n_gold}, n_preference={self.n_preference}, "
                f"n_features={self.X.shape[1]})")

    @property
    def n_gold(self) -> int:
        return int(self.is_gold.sum())

    @property
    def n_preference(self) -> int:
        return int((~self.is_gold).sum())

    @property
    def treatment(self) -> np.ndarray:
        """t of shape (n,): 1 for gold rows, 0 for preference rows (int)."""
        return self.is_gold.astype(int)

    def subset(self, rows) -> "EvalData":
        """A new EvalData with the given rows (boolean mask or indices)."""
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self),):
            raise DataError(f"row mask has length {rows.shape[0]} for {len(self)} rows")
        new = object.__new__(EvalData)
        new.__dict__.update(self.__dict__)
        for name in _ROW_FIELDS:
            value = getattr(self, name)
            setattr(new, name, None if value is None else value[rows])
        return new

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame of the features, ``gain``, ``source`` and the optional columns."""
        frame = pd.DataFrame(self.X, columns=self.feature_names)
        frame["gain"] = self.gain
        frame["source"] = np.where(self.is_gold, GOLD, PREFERENCE)
        for name in _ROW_FIELDS[3:]:
            value = getattr(self, name)
            if value is not None:
                frame[name] = value
        return frame

    def require_both_sources(self, who: str) -> None:
        """Raise if the data lack gold rows or preference rows (the bias is then undefined)."""
        if self.n_gold == 0:
            raise DataError(f"{who} needs gold rows: the data have no row with source 'gold'")
        if self.n_preference == 0:
            raise DataError(
                f"{who} needs preference rows: every row is gold (source has one class only); "
                "use baselines.GoldOnly for gold-only data"
            )


def numeric_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` of ``df`` as finite floats (n,), or DataError naming it."""
    values = df[name]
    if not pd.api.types.is_numeric_dtype(values):
        raise DataError(f"column {name!r} must be numeric, got dtype {values.dtype}")
    return as_float_vector(values.to_numpy(), f"column {name!r}")


def _check_no_label_copy(data: "EvalData", gain: str) -> None:
    """Refuse a feature that repeats the label: equal to the gain on every gold row or on every
    preference row (at least two of them), e.g. a ``gold_gain`` column left among the features."""
    for rows, name in ((data.is_gold, "gold"), (~data.is_gold, "preference")):
        if rows.sum() < 2:
            continue
        same = np.all(data.X[rows] == data.gain[rows, None], axis=0)
        if same.any():
            col = data.feature_names[int(np.argmax(same))]
            raise DataError(f"feature {col!r} equals the label {gain!r} on every {name} row: a label cannot be a "
                            "feature; drop it from the features")


def fitted_scale(data: "EvalData", method: str | None) -> float:
    """The scale constant of ``data`` (:func:`scale_constant` of its gold and preference gains),
    1.0 where the data have one source only."""
    if method not in SCALE_METHODS:
        raise DataError(f"scale must be one of {SCALE_METHODS}, got {method!r}")
    if data.n_gold == 0 or data.n_preference == 0:
        return 1.0
    return scale_constant(data.gain[data.is_gold], data.gain[~data.is_gold], method)


def pooled_outcome(gain: np.ndarray, is_gold: np.ndarray, scale: float) -> np.ndarray:
    """o of shape (n,): gains on the preference scale (gold rows multiplied by ``scale``)."""
    return np.where(is_gold, gain * scale, gain)


def as_eval_data(X, y=None, source=None, who: str = "fit", **optional) -> EvalData:
    """The :class:`EvalData` behind an estimator's ``fit(X, y, source=...)``.

    ``X`` is either an :class:`EvalData` (then ``y`` and ``source`` must be None) or the
    features (array or DataFrame, shape (n, d)) with ``y`` the gains (n,) and ``source`` the
    mechanisms (n,); ``source=None`` means every row is gold. ``optional`` are further
    EvalData fields (``gold_probability``, ...) given as arrays.
    """
    if isinstance(X, EvalData):
        if y is not None or source is not None or any(v is not None for v in optional.values()):
            raise DataError(f"{who}: pass either an EvalData or X, y and source, not both")
        return X
    if y is None:
        raise DataError(f"{who}: y (the observed gains) is required with array or DataFrame input")
    if source is None:
        source = np.ones(len(y), dtype=bool)
    return EvalData(X, y, source, **optional)
