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
    check_no_label_copy,
    check_same_index,
    check_unique_names,
)

__all__ = ["EvalData", "as_eval_data", "numeric_column", "fitted_scale", "pooled_outcome", "scale_constant",
           "scale_constant_weighted",
           "query_codes", "SCALE_METHODS", "MAX_ROW_INFLUENCE", "GOLD", "PREFERENCE"]

GOLD = "gold"
PREFERENCE = "preference"
SCALE_METHODS = ("variance", "amplitude", "wasserstein", None)
_ROW_FIELDS = ("X", "gain", "is_gold", "query_id", "text", "pair", "cost_primary", "cost_alternative",
               "gold_probability", "preference_gain")


#: Largest factor by which leaving out one row may change the scale constant. A row beyond it
#: sets the constant by itself (one gain orders of magnitude beyond the other gains of its
#: mechanism) and is refused, naming the row: see :func:`scale_constant`.
MAX_ROW_INFLUENCE = 10.0
#: Mechanisms with fewer rows are not checked for a dominating row: leaving one of 3 to 9
#: ordinary rows out changes a spread by more than 10-fold too often (15% of normal samples of 3).
_MIN_ROWS_INFLUENCE = 10


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
        c = int Qg Qp du / int Qg^2 du over quantile functions (200 quantiles, from the 0.25th
        to the 99.75th percentile); ``None`` gives 1.

    Returns
    -------
    float
        The constant c > 0.

    Raises
    ------
    DataError
        For too few rows, constant gains, and a gain that sets the constant by itself: where a
        mechanism has at least 10 rows and leaving out its smallest or its largest gain changes
        c by more than :data:`MAX_ROW_INFLUENCE` (10-fold), that row is refused, naming its
        position. Such a row lies orders of magnitude beyond the other gains of its mechanism
        (one preference gain of 1e99 among gains of order 1 made c = 6e97 and sent no query to
        the primary); it is an error in the data far more often than a judge's legitimate gain,
        and the constant it would set is that one row's, not the mechanism's. The rule refuses
        rather than estimating the scale robustly because the robust spreads (median absolute
        deviation, interquartile range) are zero or unstable on the discrete gains judges give
        (+1 / 0 / -1 with many ties) and would change the paper's estimator on every data set.
        Heavy but ordinary tails pass (``benchmarks/scale_influence.py``, seed 0, 2,000 samples
        of 10 to 1,000 preference rows per size, ``"variance"``): normal gains and +1 / 0 / -1
        votes were never refused, Student-t gains with 3 degrees of freedom in at most 0.05% of
        samples, with 2 degrees of freedom in at most 0.4%; a -999 sentinel among 1,000 normal
        gains and 1e6 among 10,000 were refused. A judge whose gains are Cauchy-like (5-8% of
        samples refused) has no variance to match: use ``"wasserstein"``, which no single row
        moved in samples of 1,000 rows, or ``None``.
    """
    return _scale_constant(gold_gain, pref_gain, method,
                           lambda side, i: f"position {i} of {'gold_gain' if side == 'gold' else 'pref_gain'}")


def scale_constant_weighted(gold_gain, pref_gain, method, gold_weight=None, pref_weight=None, *,
                            check_influence: bool = True) -> float:
    """:func:`scale_constant` with row weights (n_gold,), (n_pref,): the spreads, ranges and
    quantiles of each side taken under its weights (None: equal weights, the unweighted constant
    bit for bit). Where gold rows were chosen by a design with probabilities p, the weights 1 / p
    on gold rows and 1 / (1 - p) on preference rows make each side's gains stand for every query
    (:func:`fitted_scale`); :class:`causal_router.average.AverageBias` also draws bootstrap copies
    with them (``check_influence=False`` skips the dominating-row check there).

    Weights of shape (b, n_gold) and (b, n_pref) (non-negative; both given) give b constants at
    once, an array of shape (b,) (NaN where one is undefined), without the checks: the bootstrap
    copies of :class:`causal_router.average.AverageBias`, computed together.

    Parameters
    ----------
    gold_gain, pref_gain : array-like of shape (n_gold,), (n_pref,)
        Observed gains of each mechanism.
    method : {"variance", "amplitude", "wasserstein", None}
        As in :func:`scale_constant`.
    gold_weight, pref_weight : array-like of shape (n_gold,), (n_pref,), or (b, n_gold), (b, n_pref), optional
        Non-negative row weights of each side (rows of weight 0 are left out); None: equal.
    check_influence : bool, default True
        Refuse a row that sets the constant by itself, and an undefined constant, as
        :func:`scale_constant` does (1-D weights only); False returns NaN where it is undefined.

    Returns
    -------
    float or ndarray of shape (b,)
        The constant c (> 0), or b constants (NaN where undefined) for 2-D weights.
    """
    if gold_weight is not None and np.ndim(gold_weight) == 2:
        return _batch_constants(np.asarray(gold_gain, dtype=float), np.asarray(pref_gain, dtype=float), method,
                                np.asarray(gold_weight, dtype=float), np.asarray(pref_weight, dtype=float))
    return _scale_constant(gold_gain, pref_gain, method,
                           lambda side, i: f"position {i} of {'gold_gain' if side == 'gold' else 'pref_gain'}",
                           gold_weight, pref_weight, check_influence)


def _scale_constant(gold_gain, pref_gain, method, where, gw=None, pw=None, check_influence=True) -> float:
    """:func:`scale_constant`; ``where(side, i)`` describes the i-th gain of a side in messages;
    ``gw`` / ``pw`` row weights of each side (None: equal)."""
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
    if gw is not None:
        gw = as_float_vector(gw, "gold weights")
        g, gw = g[gw > 0], gw[gw > 0]
    if pw is not None:
        pw = as_float_vector(pw, "preference weights")
        p, pw = p[pw > 0], pw[pw > 0]
    c = _raw_constant(g, p, method, gw, pw)
    if not check_influence:
        return c
    if not np.isfinite(c):
        raise DataError(
            f"cannot compute the {method!r} scale constant: the gold gains "
            f"(sd={np.std(g):.3g}) or preference gains (sd={np.std(p):.3g}) are constant, or the "
            "two are anti-aligned; pass scale=None to skip scale normalisation"
        )
    worst = None
    for side, values in (("gold", g), ("preference", p)):
        if len(values) < _MIN_ROWS_INFLUENCE:
            continue
        for i in {int(np.argmin(values)), int(np.argmax(values))}:
            rest = np.delete(values, i)
            if side == "gold":
                c_rest = _raw_constant(rest, p, method, None if gw is None else np.delete(gw, i), pw)
            else:
                c_rest = _raw_constant(g, rest, method, gw, None if pw is None else np.delete(pw, i))
            if np.isfinite(c_rest):  # the other rows all equal: no spread to compare with
                factor = max(c / c_rest, c_rest / c)
                if factor > MAX_ROW_INFLUENCE and (worst is None or factor > worst[2]):
                    worst = (side, i, factor)
    if worst is not None:
        side, i, factor = worst
        values = g if side == "gold" else p
        others = np.delete(values, i)
        raise DataError(
            f"the {side} gain {values[i]:.6g} at {where(side, i)} sets the {method!r} scale constant by itself: "
            f"leaving it out changes the constant {factor:.3g}-fold (the limit is {MAX_ROW_INFLUENCE:g}); the other "
            f"{side} gains lie in [{others.min():.4g}, {others.max():.4g}]. Correct or remove the row (a unit, a "
            "sentinel such as -999, an overflow), or, for a judge with gains that heavy-tailed, pass "
            "scale='wasserstein' (quantile-based) or scale=None")
    return c


def _raw_constant(g: np.ndarray, p: np.ndarray, method: str, gw=None, pw=None) -> float:
    """The constant of ``method`` (not None), or NaN where it is undefined (a constant side, or
    gold and preference gains anti-aligned); ``gw`` / ``pw`` positive row weights (None: equal)."""
    if method == "variance":
        num, den = _weighted_std(p, pw), _weighted_std(g, gw)
    elif method == "amplitude":
        num, den = np.ptp(p), np.ptp(g)
    else:
        u = (np.arange(200) + 0.5) / 200
        qg, qp = _weighted_quantile(g, u, gw), _weighted_quantile(p, u, pw)
        num, den = float(np.mean(qg * qp)), float(np.mean(qg * qg))
    if not (np.isfinite(num) and np.isfinite(den)) or den <= 0 or num <= 0:
        return float("nan")
    return float(num / den)


def _batch_constants(g, p, method, GW, PW) -> np.ndarray:
    """:func:`_raw_constant` for each row of the weight matrices GW (b, n_gold), PW (b, n_pref)."""
    if method is None:
        return np.ones(len(GW))
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "variance":
            num, den = _batch_std(p, PW), _batch_std(g, GW)
        elif method == "amplitude":
            num = np.where(PW > 0, p, -np.inf).max(axis=1) - np.where(PW > 0, p, np.inf).min(axis=1)
            den = np.where(GW > 0, g, -np.inf).max(axis=1) - np.where(GW > 0, g, np.inf).min(axis=1)
        else:
            u = (np.arange(200) + 0.5) / 200
            qg, qp = _batch_quantiles(g, u, GW), _batch_quantiles(p, u, PW)
            num, den = np.mean(qg * qp, axis=1), np.mean(qg * qg, axis=1)
        c = num / den
    return np.where(np.isfinite(num) & np.isfinite(den) & (den > 0) & (num > 0), c, np.nan)


def _batch_std(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    x = x - x.mean()  # centred once: the one-pass variance below loses no digits to a large mean
    total = W.sum(axis=1)
    m = (W @ x) / total
    return np.sqrt(np.maximum((W @ (x * x)) / total - m * m, 0.0))


def _batch_quantiles(x: np.ndarray, u: np.ndarray, W: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    xs, Ws = x[order], W[:, order]
    cdf = (np.cumsum(Ws, axis=1) - 0.5 * Ws) / Ws.sum(axis=1, keepdims=True)
    out = np.empty((len(W), len(u)))
    for b in range(len(W)):
        keep = Ws[b] > 0
        out[b] = np.interp(u, cdf[b, keep], xs[keep])
    return out


def _weighted_std(x: np.ndarray, w) -> float:
    if w is None:
        return float(np.std(x))
    m = np.average(x, weights=w)
    return float(np.sqrt(np.average((x - m) ** 2, weights=w)))


def _weighted_quantile(x: np.ndarray, u: np.ndarray, w) -> np.ndarray:
    """Quantiles at levels u of x under weights w (None: numpy's linear quantiles); weighted: the
    piecewise-linear inverse of the midpoint cumulative distribution (Hazen's rule, which equal
    weights reduce to)."""
    if w is None:
        return np.quantile(x, u)
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cdf = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    return np.interp(u, cdf, xs)


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


def _paired_gain(values) -> np.ndarray | None:
    """``preference_gain`` as floats (n,): NaN allowed (rows the judge did not label), infinity not."""
    if values is None:
        return None
    arr = np.asarray(values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else values)
    if arr.ndim != 1:
        raise DataError(f"preference_gain must be one-dimensional, got shape {arr.shape}")
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"preference_gain must be numeric: {exc}") from None
    if np.isinf(arr).any():
        raise DataError(f"preference_gain has {int(np.isinf(arr).sum())} infinite values")
    return arr


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
    query_id : array-like of shape (n,), optional
        The query each row evaluates. Rows of one query are not independent (one instruction
        answered by several model pairs, several votes on one question): where a query id repeats,
        the query is the unit of the data. Estimators cross-fit with each query's rows in one fold,
        and averages of the bias get standard errors clustered by query
        (:mod:`causal_router.clusters`); splits hold out whole queries
        (:func:`causal_router.datasets.reveal_split`). Without it every row is its own query.
    text, pair : array-like of shape (n,), optional
        Query text and model-pair labels, carried along for reports.
    cost_primary, cost_alternative : array-like of shape (n,), optional
        Per-query costs; routing uses 1 / 0 when absent.
    gold_probability : array-like of shape (n,), optional
        The known probability with which each row's query was selected for a gold label, where
        a design chose the gold rows (:mod:`causal_router.active`); in (0, 1) on every row. The
        bias estimator then uses it as the propensity instead of estimating one.
    preference_gain : array-like of shape (n,), optional
        Paired rows: the judge's gain (preference scale) on gold rows too, where the judge labelled
        them as well (NaN where it did not; on preference rows NaN or equal to ``gain``). The
        average bias then uses the pairing (:class:`causal_router.average.AverageBias`, "Paired
        rows"); it needs the judge's gain on every gold row.
    feature_names : sequence of str, optional
        Names of the columns of X (taken from a DataFrame's columns by default; ``x0 .. x{d-1}``
        otherwise).

    Attributes
    ----------
    named_features : bool
        Whether X came as a DataFrame with string column names: estimators fitted on such data
        record ``feature_names_in_`` and match a DataFrame's columns by name, as scikit-learn
        does; names given to an array label reports only.

    Notes
    -----
    Pandas inputs must share one row index (rows are never paired by position where the
    indexes disagree). A feature that repeats the label (equal to ``gain`` on every gold row,
    or on every preference row, where those gains vary) is refused: it would leak the answer
    into the model (checked column by column, without copying X). Data with a
    single source is valid (gold-only and preference-only baselines, the All-Golden oracle);
    the bias estimator refuses it.
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
        preference_gain=None,
        feature_names: Sequence[str] | None = None,
    ):
        self._build(X, gain, source, query_id=query_id, text=text, pair=pair, cost_primary=cost_primary,
                    cost_alternative=cost_alternative, gold_probability=gold_probability,
                    preference_gain=preference_gain, feature_names=feature_names, label="gain")

    def _build(self, X, gain, source, *, query_id, text, pair, cost_primary, cost_alternative, gold_probability,
               feature_names, label: str, preference_gain=None) -> None:
        """The checks and conversions of ``__init__``; ``label`` names the gains in messages."""
        check_same_index("EvalData", X=X, gain=gain, source=source, query_id=query_id, text=text, pair=pair,
                         cost_primary=cost_primary, cost_alternative=cost_alternative,
                         gold_probability=gold_probability, preference_gain=preference_gain)
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
        self.preference_gain = _paired_gain(preference_gain)
        check_consistent_length(
            X=self.X, gain=self.gain, source=self.is_gold, query_id=self.query_id, text=self.text,
            pair=self.pair, cost_primary=self.cost_primary, cost_alternative=self.cost_alternative,
            gold_probability=self.gold_probability, preference_gain=self.preference_gain,
        )
        if self.preference_gain is not None:
            off = ~self.is_gold & ~np.isnan(self.preference_gain) & (self.preference_gain != self.gain)
            if off.any():
                raise DataError(f"preference_gain differs from the gain on {int(off.sum())} preference rows (first: "
                                f"row {int(np.flatnonzero(off)[0])}); on a preference row the gain is the judge's: "
                                "leave preference_gain NaN there or equal to it")
        if self.gold_probability is not None and not np.all((self.gold_probability > 0) & (self.gold_probability < 1)):
            raise DataError("gold_probability must lie strictly between 0 and 1 on every row (every query keeps a "
                            "chance of either label: positivity)")
        if feature_names is None:
            feature_names = [f"x{j}" for j in range(self.X.shape[1])]
        if len(feature_names) != self.X.shape[1]:
            raise DataError(f"feature_names has {len(feature_names)} names for {self.X.shape[1]} columns of X")
        self.feature_names = [str(f) for f in feature_names]
        check_unique_names(self.feature_names, "feature names")
        check_no_label_copy(self.X, self.gain, self.is_gold, self.feature_names, label)

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
        preference_gain: str | None = None,
    ) -> "EvalData":
        """Build from a DataFrame; arguments name its columns. The frame is not modified.

        ``source`` values equal to ``gold_value`` are gold rows, those equal to
        ``preference_value`` preference rows; any other value is an error. A boolean source
        column is taken as is (True = gold). The gain and source columns cannot also be features.

        Parameters
        ----------
        df : DataFrame
            One row per evaluation.
        features : str or sequence of str
            The feature columns (at least one).
        gain : str, default "gain"
            The column of the observed gain (numeric).
        source : str, default "source"
            The column of the evaluation mechanism.
        gold_value : object, default "gold"
            The ``source`` value of gold rows.
        preference_value : object, default "preference"
            The ``source`` value of preference rows.
        query_id, text, pair, cost_primary, cost_alternative, gold_probability, preference_gain : str, optional
            The columns of the optional fields of the same names (see :class:`EvalData`); None:
            the field is absent.

        Returns
        -------
        EvalData
            The checked data; features named by their columns.
        """
        features = [features] if isinstance(features, str) else list(features)
        if not features:
            raise DataError("features is empty: name at least one feature column")
        check_unique_names(features, "features")
        optional = {"query_id": query_id, "text": text, "pair": pair, "cost_primary": cost_primary,
                    "cost_alternative": cost_alternative, "gold_probability": gold_probability,
                    "preference_gain": preference_gain}
        check_columns(df, [*features, gain, source, *[c for c in optional.values() if c]], "data frame")
        if len(df) == 0:
            raise DataError("the data frame has no rows")
        labels = [c for c in (gain, source, gold_probability, preference_gain) if c in features]
        if labels:
            raise DataError(f"column(s) {labels} are the label, the source, the gold probability or the judge's gain "
                            "and cannot also be features; drop them from the features")
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
        data = cls.__new__(cls)
        data._build(df[features], numeric_column(df, gain), src, feature_names=None, label=gain,
                    **{k: (None if c is None else df[c].to_numpy()) for k, c in optional.items()})
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
    def query_groups(self) -> np.ndarray | None:
        """Integer code (n,) of each row's query (:func:`query_codes` of ``query_id``), or None
        without query ids."""
        return None if self.query_id is None else query_codes(self.query_id)

    @property
    def treatment(self) -> np.ndarray:
        """t of shape (n,): 1 for gold rows, 0 for preference rows (int)."""
        return self.is_gold.astype(int)

    def subset(self, rows) -> "EvalData":
        """A new EvalData with the given rows (boolean mask or indices).

        Parameters
        ----------
        rows : array-like of bool of shape (n,), or of int
            A boolean mask or row positions.

        Returns
        -------
        EvalData
            The selected rows, every optional field with them.
        """
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self),):
            raise DataError(f"row mask has length {rows.shape[0]} for {len(self)} rows")
        new = object.__new__(EvalData)
        new.__dict__.update(self.__dict__)
        for name in _ROW_FIELDS:
            value = getattr(self, name, None)
            setattr(new, name, None if value is None else value[rows])
        return new

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame of the features, ``gain``, ``source`` and the optional columns.

        Returns
        -------
        DataFrame
            One row per evaluation: the features (by ``feature_names``), ``gain``, ``source``
            ("gold" / "preference") and each optional field that is present.
        """
        frame = pd.DataFrame(self.X, columns=self.feature_names)
        frame["gain"] = self.gain
        frame["source"] = np.where(self.is_gold, GOLD, PREFERENCE)
        for name in _ROW_FIELDS[3:]:
            value = getattr(self, name, None)
            if value is not None:
                frame[name] = value
        return frame

    def require_both_sources(self, who: str) -> None:
        """Raise if the data lack gold rows or preference rows (the bias is then undefined).

        Parameters
        ----------
        who : str
            The caller, named in the DataError.
        """
        if self.n_gold == 0:
            raise DataError(f"{who} needs gold rows: the data have no row with source 'gold'")
        if self.n_preference == 0:
            raise DataError(
                f"{who} needs preference rows: every row is gold (source has one class only); "
                "use baselines.GoldOnly for gold-only data"
            )


def numeric_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` of ``df`` as finite floats (n,), or DataError naming it.

    Parameters
    ----------
    df : DataFrame
        The frame.
    name : str
        The column (of a numeric dtype).

    Returns
    -------
    ndarray of shape (n,)
        The column's values as floats.
    """
    values = df[name]
    if not pd.api.types.is_numeric_dtype(values):
        raise DataError(f"column {name!r} must be numeric, got dtype {values.dtype}")
    return as_float_vector(values.to_numpy(), f"column {name!r}")


def fitted_scale(data: "EvalData", method) -> float:
    """The scale constant of ``data`` (:func:`scale_constant` of its gold and preference gains;
    where the data carry ``gold_probability``, weighted by the design, 1 / p on gold rows and
    1 / (1 - p) on preference rows, :func:`scale_constant_weighted`), 1.0 where the data have one
    source only. ``method`` may also be a positive number: a constant
    fitted elsewhere, returned as is (the distributed fit computes it from every row's partition
    statistics and fits the bias model on a sample, :mod:`causal_router.distributed`).

    Parameters
    ----------
    data : EvalData
        The rows.
    method : {"variance", "amplitude", "wasserstein", None} or float
        The method of :func:`scale_constant`, or a finite constant > 0 returned as is.

    Returns
    -------
    float
        The scale constant c.
    """
    if isinstance(method, (int, float, np.integer, np.floating)) and not isinstance(method, (bool, np.bool_)):
        if not (np.isfinite(method) and method > 0):
            raise DataError(f"a numeric scale must be a finite number > 0, got {method!r}")
        return float(method)
    if method not in SCALE_METHODS:
        raise DataError(f"scale must be one of {SCALE_METHODS}, got {method!r}")
    if data.n_gold == 0 or data.n_preference == 0:
        return 1.0
    rows = {"gold": np.flatnonzero(data.is_gold), "preference": np.flatnonzero(~data.is_gold)}
    gw = pw = None
    if data.gold_probability is not None:  # gold rows chosen by design: each side stands for every query
        gw, pw = 1 / data.gold_probability[data.is_gold], 1 / (1 - data.gold_probability[~data.is_gold])
    return _scale_constant(data.gain[data.is_gold], data.gain[~data.is_gold], method,
                           lambda side, i: f"row {rows[side][i]} (0-based, of the data given to fit)", gw, pw)


def pooled_outcome(gain: np.ndarray, is_gold: np.ndarray, scale: float) -> np.ndarray:
    """o of shape (n,): gains on the preference scale (gold rows multiplied by ``scale``).

    Parameters
    ----------
    gain : ndarray of shape (n,)
        Observed gains, each on its mechanism's scale.
    is_gold : ndarray of bool, shape (n,)
        True on the gold rows.
    scale : float
        The gold-to-preference scale constant c.

    Returns
    -------
    ndarray of shape (n,)
        c * gain on gold rows, gain on preference rows.
    """
    return np.where(is_gold, gain * scale, gain)


def query_codes(query_id) -> np.ndarray:
    """Integer codes 0, 1, ... of query ids (any hashable labels), numbered in order of first
    appearance; shape (n,). Two rows share a code iff they share a query id.

    Parameters
    ----------
    query_id : array-like of shape (n,)
        Query ids (no missing values).

    Returns
    -------
    ndarray of int64, shape (n,)
        The codes.
    """
    labels = np.asarray(query_id.to_numpy() if isinstance(query_id, (pd.Series, pd.Index)) else query_id,
                        dtype=object)
    if labels.ndim != 1:
        raise DataError(f"query ids must be one-dimensional, got shape {labels.shape}")
    codes, _ = pd.factorize(pd.Series(labels, dtype=object), sort=False, use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(f"query ids have {int((codes < 0).sum())} missing values")
    return codes.astype(np.int64)


def as_eval_data(X, y=None, source=None, who: str = "fit", groups=None, **optional) -> EvalData:
    """The :class:`EvalData` behind an estimator's ``fit(X, y, source=..., groups=...)``.

    ``X`` is either an :class:`EvalData` (then ``y`` and ``source`` must be None) or the
    features (array or DataFrame, shape (n, d)) with ``y`` the gains (n,) and ``source`` the
    mechanisms (n,); ``source=None`` means every row is gold. ``groups`` (n,) are query ids (the
    ``query_id`` of the EvalData built; scikit-learn's name, so that ``GridSearchCV(...).fit(X,
    y, source=..., groups=...)`` routes them). With an EvalData, ``groups`` may label the queries
    of one without ``query_id``, or repeat those it has (the same partition of the rows, under
    any labels); groups that disagree with its ``query_id`` are an error.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n, d), or EvalData
        The features, or an EvalData.
    y : array-like of shape (n,), optional
        The gains (required unless X is an EvalData).
    source : array-like of shape (n,), optional
        The mechanisms; None: every row gold.
    who : str, default "fit"
        The caller, named in error messages.
    groups : array-like of shape (n,), optional
        Query ids.
    **optional : array-like of shape (n,)
        Further EvalData fields (``gold_probability``, ``text``, ...).

    Returns
    -------
    EvalData
        X itself where it is an EvalData that needs no query ids added, else a new EvalData.
    """
    if isinstance(X, EvalData):
        if y is not None or source is not None or any(v is not None for v in optional.values()):
            raise DataError(f"{who}: pass either an EvalData or X, y and source, not both")
        if groups is None:
            return X
        labels = _optional_labels(groups, "groups")
        if len(labels) != len(X):
            raise DataError(f"{who}: groups has {len(labels)} labels for {len(X)} rows")
        if X.query_id is not None:
            if not np.array_equal(query_codes(labels), query_codes(X.query_id)):
                raise DataError(f"{who}: groups and the EvalData's query_id disagree (they group the rows "
                                "differently); pass one of them")
            return X
        data = X.subset(np.arange(len(X)))
        data.query_id = labels
        return data
    if y is None:
        raise DataError(f"{who}: y (the observed gains) is required with array or DataFrame input")
    if source is None:
        source = np.ones(len(y), dtype=bool)
    if groups is not None:
        if optional.get("query_id") is not None:
            raise DataError(f"{who}: pass the query ids once, as groups")
        optional["query_id"] = groups
    data = EvalData.__new__(EvalData)
    fields = {k: optional.get(k) for k in _ROW_FIELDS[3:]}
    unknown = sorted(set(optional) - set(fields))
    if unknown:
        raise TypeError(f"{who}: unexpected EvalData field(s) {unknown}")
    data._build(X, y, source, feature_names=None, label="y", **fields)
    return data
