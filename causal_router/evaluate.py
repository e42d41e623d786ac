"""Evaluation metrics for routers that rank queries by a predicted gain.

A router predicts, for each of N test queries, the quality gain ``pred_gain`` of the expensive
*primary* model over the cheap *alternative*; ``gold_gain`` holds the true (gold-standard) gains
of the same queries, aligned by position (pandas indexes are ignored). Every metric here scores
the *ranking* induced by ``pred_gain``.

Ranking semantics (used by every function)
------------------------------------------
Queries are ranked by ``pred_gain``, highest first, and the top ``k`` go to the primary model.
The *top-k gain* ``G(k)`` is the sum of the gold gains of those ``k`` queries. Ties in
``pred_gain`` are resolved **in expectation over a uniformly random tie-break**: a tie group
that straddles the cutoff contributes the mean gold gain of the group times the number of its
members taken. Hence a constant prediction scores exactly like a random ordering,
``G(k) = k / N * sum(gold_gain)``.

A share (ratio) ``r`` of calls to the primary model is turned into a count with
``k = np.rint(r * N)`` (round half to even, so e.g. ``r * N = 2.5`` gives ``k = 2``). The
random-ordering baseline at ``r`` is ``G_random(k) = k / N * sum(gold_gain)``, i.e. it uses the
*realised* share ``k / N``; this equals ``r * sum(gold_gain)`` whenever ``r * N`` is an integer
and makes a random (or constant) ranking score exactly 0 at every ``r``.

Metrics
-------
* :func:`efficiency_curve`, :func:`peak_efficiency_gain`, :func:`efficiency_auc` -- the
  efficiency gain of the Meta-Router paper (arXiv 2509.25535).
* :func:`normalised_curve`, :func:`oracle_share` -- the share of the oracle's improvement over
  random ordering that the router recovers (headline metric: 1 = oracle, 0 = random).
* :func:`pgr_curve`, :func:`apgr`, :func:`cpt` -- RouteLLM's performance gap recovered, its
  area and the call-performance threshold.
* :func:`routing_value` -- value of a concrete routing decision with a bootstrap interval.
* :func:`choice_share` -- for pairwise comparisons (K-model routers' ``score``): the share of the
  oracle's gain over a random choice between the two models of each comparison.
* :func:`summarise` -- the scalar metrics in one dict.

K-model routers (:mod:`causal_router.multi`) choose one of K models per query; they are scored
by :func:`frontier` (the quality-versus-cost frontier over the cost weight), :func:`frontier_hull`
(its non-decreasing concave hull) and :func:`aiq` (RouterBench's average improvement in
quality: the mean height of that hull over the cost range), defined in
:mod:`causal_router.quality_cost` and exported here.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from ._validation import DataError, as_float_vector, check_consistent_length, check_random_state
from .quality_cost import aiq, frontier, frontier_hull
from .routing import check_cost_weight, per_query

__all__ = [
    "efficiency_curve",
    "peak_efficiency_gain",
    "efficiency_auc",
    "normalised_curve",
    "oracle_share",
    "pgr_curve",
    "apgr",
    "cpt",
    "routing_value",
    "choice_share",
    "summarise",
    "frontier",
    "frontier_hull",
    "aiq",
]

#: Default share grid of the efficiency and oracle-share curves (as in the Meta-Router paper).
DEFAULT_RATIOS = np.linspace(0.2, 0.8, 61)
#: Default share grid of :func:`pgr_curve`.
DEFAULT_PGR_RATIOS = np.linspace(0.0, 1.0, 101)

# Relative tolerance used to decide that a float sum or difference of gold gains is zero and to
# compare shares; far below any meaningful difference, far above floating-point rounding.
_RTOL = 1e-12
_SHARE_TOL = 1e-9


# ----------------------------------------------------------------------------- validation
def _check_pair(pred_gain, gold_gain) -> tuple[np.ndarray, np.ndarray]:
    pred = as_float_vector(pred_gain, "pred_gain")
    gold = as_float_vector(gold_gain, "gold_gain")
    check_consistent_length(pred_gain=pred, gold_gain=gold)
    return pred, gold


def _check_ratios(ratios, default: np.ndarray) -> np.ndarray:
    if ratios is None:
        return np.array(default, dtype=float)
    if np.ndim(ratios) == 0 and not isinstance(ratios, (str, bytes)):
        ratios = [ratios]
    arr = as_float_vector(ratios, "ratios")
    if np.any((arr < 0) | (arr > 1)):
        bad = arr[(arr < 0) | (arr > 1)]
        raise DataError(f"ratios must lie in [0, 1]; got {bad[:5].tolist()}")
    return arr


def _check_scalar(value, name: str, lo: float | None = None, hi: float | None = None,
                  lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise DataError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise DataError(f"{name} must be finite, got {value}")
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise DataError(f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {value:g}")
    return value


def _gold_total(gold: np.ndarray) -> float:
    """sum(gold); raise if it is zero (up to floating-point rounding)."""
    total = float(np.cumsum(gold)[-1])  # the same float as the helper's cumulative sum
    if abs(total) <= _RTOL * float(np.abs(gold).sum()) or total == 0.0:
        raise DataError(
            "gold_gain values sum to zero, so metrics normalised by sum(gold_gain) are undefined"
        )
    return total


def _check_curve(curve) -> pd.Series:
    if not isinstance(curve, pd.Series):
        raise DataError(f"curve must be a pandas Series indexed by ratio, got {type(curve).__name__}")
    try:
        index = np.asarray(curve.index, dtype=float)
        values = np.asarray(curve.to_numpy(), dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"curve must have a numeric ratio index and numeric values: {exc}") from None
    if np.any(~np.isfinite(index)):
        raise DataError("curve index (ratio) contains NaN or infinite values")
    if np.any(np.isinf(values)):
        raise DataError("curve contains infinite values")
    return pd.Series(values, index=pd.Index(index, name="ratio"))


def _ks(ratios: np.ndarray, n: int) -> np.ndarray:
    """Counts k = rint(r * n) for shares r, clipped to [0, n]."""
    return np.clip(np.rint(ratios * n).astype(np.int64), 0, n)


# ----------------------------------------------------------------------------- core helper
def _top_k_gain(pred: np.ndarray, gold: np.ndarray, ks) -> np.ndarray:
    """Expected sum of ``gold`` over the top ``k`` queries by ``pred``, for each k in ``ks``.

    Parameters
    ----------
    pred, gold : ndarray of shape (n,)
        Validated predictions and gold gains.
    ks : array-like of int, shape (m,)
        Numbers of queries taken, each in ``0..n``.

    Returns
    -------
    ndarray of shape (m,)
        ``G(k)``: queries sorted by ``pred`` descending; a tie group (equal ``pred``) of size
        ``s`` with gold sum ``S`` of which ``j`` members are taken contributes ``j * S / s``,
        the expectation over random tie-breaking. ``G(0) = 0`` and ``G(n) = sum(gold)``.
    """
    pred = np.asarray(pred, dtype=float)
    gold = np.asarray(gold, dtype=float)
    ks = np.asarray(ks, dtype=np.int64)
    n = pred.shape[0]
    order = np.argsort(-pred, kind="stable")
    p = pred[order]
    csum = np.concatenate(([0.0], np.cumsum(gold[order])))
    new_group = np.concatenate(([True], p[1:] != p[:-1]))
    group_id = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n)

    out = np.zeros(ks.shape, dtype=float)
    pos = ks > 0
    k = ks[pos]
    g = group_id[k - 1]  # group holding the k-th ranked query
    s, e = starts[g], ends[g]
    partial = csum[s] + (k - s) * (csum[e] - csum[s]) / (e - s)
    out[pos] = np.where(k == e, csum[e], partial)
    return out


def _random_gain(ks: np.ndarray, n: int, total: float) -> np.ndarray:
    """Random-ordering gain k / n * total, computed with the same float operations as a single
    tie group in :func:`_top_k_gain`, so that a constant prediction gives exactly zero lift."""
    ks = np.asarray(ks, dtype=np.int64)
    return np.where(ks == n, total, ks * total / n)


# ----------------------------------------------------------------------------- efficiency gain
def _efficiency_values(pred, gold, ratios) -> np.ndarray:
    n = pred.shape[0]
    total = _gold_total(gold)
    ks = _ks(ratios, n)
    eg = (_top_k_gain(pred, gold, ks) - _random_gain(ks, n, total)) / total
    share_pos = float(np.mean(pred > 0))
    eg[ratios > share_pos + _SHARE_TOL] = np.nan
    return eg


def efficiency_curve(pred_gain, gold_gain, ratios=None) -> pd.Series:
    """Efficiency gain of routing by ``pred_gain`` as a function of the share sent to the primary.

    Following the Meta-Router paper (arXiv 2509.25535), for each share ``r``::

        EG(r) = (G(k) - k / N * sum(gold_gain)) / sum(gold_gain),   k = rint(r * N)

    i.e. the gain over random routing of the same share, in units of the total gain of sending
    every query to the primary (``EG = 1`` is that total). ``G(k)`` is the top-k gain with ties
    in expectation (see the module docstring); ``k / N`` equals ``r`` when ``r * N`` is whole.

    The curve is **truncated** at the share of queries predicted positive: ``EG(r) = NaN`` for
    ``r > mean(pred_gain > 0)`` (a method's curve only extends up to the share it would route
    to the primary at zero cost).

    Parameters
    ----------
    pred_gain : array-like of shape (n,)
        Predicted gain of the primary over the alternative.
    gold_gain : array-like of shape (n,)
        Gold-standard gain, aligned by position with ``pred_gain``.
    ratios : array-like of shape (m,), optional
        Shares in [0, 1]; default ``np.linspace(0.2, 0.8, 61)``.

    Returns
    -------
    pandas.Series of shape (m,)
        Named ``"efficiency_gain"``, indexed by ``ratio``.

    Raises
    ------
    DataError
        Non-finite, empty or mismatched inputs, ratios outside [0, 1], or ``sum(gold_gain) == 0``
        (the normalisation is undefined; it is unstable when the sum is merely near zero).
    """
    pred, gold = _check_pair(pred_gain, gold_gain)
    ratios = _check_ratios(ratios, DEFAULT_RATIOS)
    values = _efficiency_values(pred, gold, ratios)
    return pd.Series(values, index=pd.Index(ratios, name="ratio"), name="efficiency_gain")


def peak_efficiency_gain(curve: pd.Series) -> float:
    """Maximum of an efficiency curve over its non-NaN points (NaN if every point is NaN).

    Parameters
    ----------
    curve : pandas.Series
        Output of :func:`efficiency_curve` (any Series of floats indexed by ratio).

    Returns
    -------
    float
        The largest non-NaN value of the curve; NaN if every point is NaN.
    """
    values = _check_curve(curve).to_numpy()
    values = values[~np.isnan(values)]
    return float(values.max()) if values.size else float("nan")


def efficiency_auc(curve: pd.Series, lo: float = 0.2, hi: float = 0.8) -> float:
    """Area under an efficiency curve between shares ``lo`` and ``hi`` (trapezoid rule).

    Uses the non-NaN points with ``lo <= ratio <= hi``, sorted by ratio. The truncated part of
    the curve (NaN beyond the share predicted positive) contributes 0, so a method that routes
    few queries to the primary is not credited beyond that share. The area is *not* divided by
    ``hi - lo``; the paper reports it on [0.2, 0.8] (e.g. oracle AUC 0.77 with peak 1.43).

    Parameters
    ----------
    curve : pandas.Series
        Output of :func:`efficiency_curve`.
    lo, hi : float
        Integration range, ``0 <= lo <= hi <= 1``.

    Returns
    -------
    float
        The area; 0.0 when fewer than two points are usable.
    """
    lo = _check_scalar(lo, "lo", 0.0, 1.0)
    hi = _check_scalar(hi, "hi", 0.0, 1.0)
    if lo > hi:
        raise DataError(f"lo must not exceed hi, got lo={lo:g}, hi={hi:g}")
    curve = _check_curve(curve)
    x = curve.index.to_numpy(dtype=float)
    y = curve.to_numpy()
    keep = ~np.isnan(y) & (x >= lo - _SHARE_TOL) & (x <= hi + _SHARE_TOL)
    x, y = x[keep], y[keep]
    if x.size < 2:
        return 0.0
    order = np.argsort(x, kind="stable")
    return float(np.trapezoid(y[order], x[order]))


# ----------------------------------------------------------------------------- oracle share
def _normalised_values(pred, gold, ratios) -> np.ndarray:
    n = pred.shape[0]
    total = float(np.cumsum(gold)[-1])
    ks = _ks(ratios, n)
    random = _random_gain(ks, n, total)
    num = _top_k_gain(pred, gold, ks) - random
    den = _top_k_gain(gold, gold, ks) - random
    zero = np.abs(den) <= _RTOL * float(np.abs(gold).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(zero, np.nan, num / np.where(zero, 1.0, den))
    return out


def normalised_curve(pred_gain, gold_gain, ratios=None) -> pd.Series:
    """Share of the oracle's improvement over random routing that ``pred_gain`` recovers.

    For each share ``r`` with ``k = rint(r * N)``::

        share(r) = (G_pred(k) - k / N * sum(gold)) / (G_gold(k) - k / N * sum(gold))

    where ``G_pred`` ranks by ``pred_gain`` (ties in expectation) and ``G_gold`` ranks by
    ``gold_gain`` itself (the oracle). 1 = oracle ranking, 0 = random (or constant) ranking,
    negative = worse than random. No truncation is applied. Where the denominator is zero
    (up to rounding: e.g. ``k = 0``, ``k = N`` or all gold gains equal) the value is NaN.

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (n,)
        Predicted and gold-standard gains, aligned by position.
    ratios : array-like of shape (m,), optional
        Shares in [0, 1]; default ``np.linspace(0.2, 0.8, 61)``.

    Returns
    -------
    pandas.Series of shape (m,)
        Named ``"oracle_share"``, indexed by ``ratio``.
    """
    pred, gold = _check_pair(pred_gain, gold_gain)
    ratios = _check_ratios(ratios, DEFAULT_RATIOS)
    values = _normalised_values(pred, gold, ratios)
    return pd.Series(values, index=pd.Index(ratios, name="ratio"), name="oracle_share")


def oracle_share(pred_gain, gold_gain, ratios=None) -> float:
    """Mean of :func:`normalised_curve` over ``ratios`` (NaN points ignored) -- the headline metric.

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (n,)
        Predicted and gold-standard gains, aligned by position.
    ratios : array-like of shape (m,), optional
        Shares in [0, 1]; default ``np.linspace(0.2, 0.8, 61)``.

    Returns
    -------
    float
        1 for an oracle ranking, 0 for a random or constant one; NaN if every point is NaN.
    """
    values = normalised_curve(pred_gain, gold_gain, ratios).to_numpy()
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


# ----------------------------------------------------------------------------- RouteLLM metrics
def pgr_curve(pred_gain, gold_gain, ratios=None) -> pd.Series:
    """Performance gap recovered (RouteLLM) at share ``r`` of calls to the primary (strong) model.

    With quality measured relative to always calling the alternative (weak) model (0) and
    always calling the primary (``sum(gold_gain)``)::

        PGR(r) = G(k) / sum(gold_gain),   k = rint(r * N)

    A random or constant ranking gives ``PGR(r) = k / N``. When some gold gains are negative,
    PGR can exceed 1 (routing only the positive-gain queries beats always calling the primary).
    Unstable when ``sum(gold_gain)`` is near zero.

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (n,)
        Predicted and gold-standard gains, aligned by position.
    ratios : array-like of shape (m,), optional
        Shares in [0, 1]; default ``np.linspace(0, 1, 101)``.

    Returns
    -------
    pandas.Series of shape (m,)
        Named ``"pgr"``, indexed by ``ratio``.

    Raises
    ------
    DataError
        Bad inputs or ``sum(gold_gain) == 0``.
    """
    pred, gold = _check_pair(pred_gain, gold_gain)
    ratios = _check_ratios(ratios, DEFAULT_PGR_RATIOS)
    total = _gold_total(gold)
    values = _top_k_gain(pred, gold, _ks(ratios, pred.shape[0])) / total
    return pd.Series(values, index=pd.Index(ratios, name="ratio"), name="pgr")


def _pgr_fine(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    """Shares k/N and PGR at k = 0..N."""
    n = pred.shape[0]
    total = _gold_total(gold)
    ks = np.arange(n + 1)
    return ks / n, _top_k_gain(pred, gold, ks) / total


def apgr(pred_gain, gold_gain) -> float:
    """Average performance gap recovered: the area under PGR(r) for r in [0, 1].

    Computed exactly on the fine grid ``r = k / N`` (k = 0..N) with the trapezoid rule, i.e.
    PGR is linearly interpolated between whole numbers of routed queries. A random or constant
    ranking gives 0.5, an oracle ranking more. Unstable when ``sum(gold_gain)`` is near zero.

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (n,)
        Predicted and gold-standard gains, aligned by position.

    Returns
    -------
    float
        The area under the PGR curve over r in [0, 1].

    Raises
    ------
    DataError
        Bad inputs or ``sum(gold_gain) == 0``.
    """
    pred, gold = _check_pair(pred_gain, gold_gain)
    r, pgr = _pgr_fine(pred, gold)
    return float(np.trapezoid(pgr, r))


def cpt(pred_gain, gold_gain, target: float = 0.5) -> float:
    """Call-performance threshold (RouteLLM): the smallest share of primary calls reaching PGR >= target.

    Searches the fine grid ``r = k / N`` (k = 0..N); ``target`` is compared with a tolerance of
    1e-12 to absorb rounding. Returns NaN if the target is never reached (a safeguard only:
    ``PGR(1) = 1``, so any target in [0, 1] is reached at the latest at ``r = 1``). Unstable
    when ``sum(gold_gain)`` is near 0, where PGR is a ratio of two small numbers.

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (n,)
        Predicted and gold-standard gains, aligned by position.
    target : float, default 0.5
        Share of the performance gap to recover, in [0, 1] (RouteLLM reports 0.5 and 0.8).

    Returns
    -------
    float
        The smallest share r of queries sent to the primary with PGR(r) >= ``target``; NaN if
        never reached.

    Raises
    ------
    DataError
        Bad inputs, ``target`` outside [0, 1] or ``sum(gold_gain) == 0``.
    """
    target = _check_scalar(target, "target", 0.0, 1.0)
    pred, gold = _check_pair(pred_gain, gold_gain)
    r, pgr = _pgr_fine(pred, gold)
    hit = np.flatnonzero(pgr >= target - _RTOL)
    return float(r[hit[0]]) if hit.size else float("nan")


# ----------------------------------------------------------------------------- routing value
def _check_route(route) -> np.ndarray:
    if isinstance(route, (pd.Series, pd.Index)):
        route = route.to_numpy()
    arr = np.asarray(route)
    if arr.dtype == bool:
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        if arr.ndim != 1:
            raise DataError(f"route must be one-dimensional, got shape {arr.shape}")
        if arr.size == 0:
            raise DataError("route is empty")
        return arr
    values = as_float_vector(arr, "route")
    if not np.all((values == 0) | (values == 1)):
        bad = np.unique(values[(values != 0) & (values != 1)])[:5].tolist()
        raise DataError(f"route must be boolean (True/False or 0/1); got values {bad}")
    return values.astype(bool)


def routing_value(route, gold_gain, *, cost_weight: float = 0.0, cost_primary=None,
                  cost_alternative=None, n_bootstrap: int = 1000, alpha: float = 0.05,
                  random_state=None) -> dict:
    """Value of a concrete routing decision on held-out rows with gold gains.

    Per query ``v_i = route_i * (gold_i - cost_weight * (Cp_i - Ca_i))``: the gain over always
    using the alternative, net of the weighted extra cost of the primary. ``value`` is the mean
    of ``v`` over all N queries; the interval is the percentile bootstrap (resampling queries
    with replacement) at level ``1 - alpha``.

    Parameters
    ----------
    route : array-like of shape (n,)
        Boolean-like (bool, or numbers equal to 0/1): True = send to the primary.
    gold_gain : array-like of shape (n,)
        Gold-standard gain of the primary over the alternative.
    cost_weight : float, default 0
        Weight >= 0 converting cost into quality units (:func:`causal_router.routing.check_cost_weight`).
    cost_primary, cost_alternative : float or array-like of shape (n,), optional
        Per-query costs; default 1 and 0.
    n_bootstrap : int, default 1000
        Number of bootstrap resamples (>= 1).
    alpha : float in (0, 1), default 0.05
        The interval has nominal coverage ``1 - alpha``.
    random_state : None, int or numpy.random.Generator
        Seed of the bootstrap; equal seeds give equal results.

    Returns
    -------
    dict
        ``{"value", "lower", "upper", "share_primary", "n"}`` (floats; ``n`` an int).
    """
    route_arr = _check_route(route)
    gold = as_float_vector(gold_gain, "gold_gain")
    n = check_consistent_length(route=route_arr, gold_gain=gold)
    cost_weight = check_cost_weight(cost_weight)
    alpha = _check_scalar(alpha, "alpha", 0.0, 1.0, lo_open=True, hi_open=True)
    if isinstance(n_bootstrap, (bool, np.bool_)) or not isinstance(n_bootstrap, numbers.Integral) \
            or n_bootstrap < 1:
        raise DataError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}")
    cp = np.ones(n) if cost_primary is None else per_query(cost_primary, n, "cost_primary")
    ca = np.zeros(n) if cost_alternative is None else per_query(cost_alternative, n, "cost_alternative")

    v = np.where(route_arr, gold - cost_weight * (cp - ca), 0.0)
    rng = check_random_state(random_state)
    means = np.empty(int(n_bootstrap))
    block = max(1, 2_000_000 // n)  # bound memory of the (block, n) index array
    for start in range(0, int(n_bootstrap), block):
        stop = min(start + block, int(n_bootstrap))
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = v[idx].mean(axis=1)
    lower, upper = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {
        "value": float(v.mean()),
        "lower": float(lower),
        "upper": float(upper),
        "share_primary": float(route_arr.mean()),
        "n": int(n),
    }


def choice_share(pred_gain, gold_gain) -> float:
    """Share of the oracle's gold gain over a random choice that choosing by ``pred_gain`` recovers,
    on pairwise comparisons: the score of the K-model routers.

    Each row compares two models a and b: ``gold_gain`` is the gold gain of a over b and
    ``pred_gain`` the predicted one. Choosing a where the prediction is positive (b where it is
    negative; either at random where it is 0) earns sign(pred) * gold over a random choice
    between the two, and the oracle earns abs(gold)::

        choice_share = sum_i sign(pred_i) * gold_i / sum_i abs(gold_i)

    1 = always the better model of the pair, 0 = a random (or constant) choice, -1 = always the
    worse. Like :func:`oracle_share` for two models it counts each comparison by what is at
    stake on it (``abs(gold)``), so that near-ties matter little.

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (n,)
        Predicted and gold-standard gains of each row's first model over its second.

    Returns
    -------
    float
        The choice share, in [-1, 1].

    Raises
    ------
    DataError
        Bad inputs, or every gold gain 0 (nothing to choose between).
    """
    pred, gold = _check_pair(pred_gain, gold_gain)
    stake = float(np.abs(gold).sum())
    if stake == 0:
        raise DataError("every gold gain is 0: the comparisons do not tell the models apart")
    return float(np.sum(np.sign(pred) * gold) / stake)


# ----------------------------------------------------------------------------- summary
def summarise(pred_gain, gold_gain, ratios=None) -> dict:
    """The scalar metrics of one prediction on one test set.

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (n,)
        Predicted and gold-standard gains, aligned by position.
    ratios : array-like, optional
        Share grid of the efficiency and oracle-share curves; default
        ``np.linspace(0.2, 0.8, 61)``. The efficiency AUC integrates over [min, max] of it.

    Returns
    -------
    dict of float
        ``oracle_share`` (:func:`oracle_share`), ``peak_efficiency_gain``, ``efficiency_auc``
        (of :func:`efficiency_curve`), ``apgr``, ``cpt50``, ``cpt80`` (:func:`cpt` at 0.5 / 0.8)
        and ``share_predicted_positive`` (``mean(pred_gain > 0)``). The metrics normalised by
        ``sum(gold_gain)`` (efficiency gain, APGR, CPT) are NaN when that sum is zero;
        ``oracle_share`` is defined all the same.

    Raises
    ------
    DataError
        Bad inputs.
    """
    pred, gold = _check_pair(pred_gain, gold_gain)
    ratios = _check_ratios(ratios, DEFAULT_RATIOS)
    out = {"oracle_share": oracle_share(pred, gold, ratios)}
    try:
        eg = efficiency_curve(pred, gold, ratios)
        out.update({
            "peak_efficiency_gain": peak_efficiency_gain(eg),
            "efficiency_auc": efficiency_auc(eg, float(ratios.min()), float(ratios.max())),
            "apgr": apgr(pred, gold),
            "cpt50": cpt(pred, gold, 0.5),
            "cpt80": cpt(pred, gold, 0.8),
        })
    except DataError:  # sum(gold_gain) == 0: the normalised metrics are undefined
        out.update(dict.fromkeys(("peak_efficiency_gain", "efficiency_auc", "apgr", "cpt50", "cpt80"), np.nan))
    out["share_predicted_positive"] = float(np.mean(pred > 0))
    return out
