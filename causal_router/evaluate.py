"""Routing metrics on held-out gold gains.

Every metric ranks the N test queries by predicted gain, highest first, and routes the top
k = rint(r * N) to the primary model at usage ratio r. Ties in the prediction are broken at
random *in expectation*: a tie group that straddles the cut-off contributes its mean gold gain
times the number of its members taken, so a constant prediction scores exactly as a random
ordering does.

- :func:`efficiency_curve`: the Meta-Router paper's efficiency gain EG(r) (its Figure 1),
  with :func:`peak_efficiency_gain` and :func:`efficiency_auc` on [0.2, 0.8].
- :func:`oracle_share` (headline): the share of the oracle ranking's gain over random that a
  method achieves, averaged over r in [0.2, 0.8]. Unlike EG it does not divide by the mean
  gold gain, which swings wildly when that mean is near zero.
- :func:`apgr`, :func:`cpt`: RouteLLM's average performance gap recovered and cost to reach a
  share of the weak-to-strong gap.
- :func:`routing_value`: the value of a routing rule, with a bootstrap confidence interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._validation import DataError, as_float_vector, check_consistent_length, check_random_state

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
    "summarise",
    "DEFAULT_RATIOS",
]

#: The paper's grid: 61 usage ratios from 0.2 to 0.8.
DEFAULT_RATIOS = np.linspace(0.2, 0.8, 61)


def _inputs(pred_gain, gold_gain) -> tuple[np.ndarray, np.ndarray]:
    pred = as_float_vector(pred_gain, "pred_gain")
    gold = as_float_vector(gold_gain, "gold_gain")
    check_consistent_length(pred_gain=pred, gold_gain=gold)
    return pred, gold


def _ratios(ratios, default=DEFAULT_RATIOS) -> np.ndarray:
    r = default if ratios is None else as_float_vector(ratios, "ratios")
    if np.any((r < 0) | (r > 1)):
        raise DataError("ratios must lie in [0, 1]")
    return np.asarray(r, dtype=float)


def _top_k_gain(pred: np.ndarray, gold: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Expected sum of ``gold`` over the top-k queries by ``pred`` (ties broken at random),
    for each k in ``ks`` (ints in [0, N]); shape (len(ks),)."""
    order = np.argsort(-pred, kind="stable")
    p, g = pred[order], gold[order]
    # tie groups of equal prediction: start index and total gold gain of each group
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    ends = np.r_[starts[1:], len(p)]
    group_sum = np.add.reduceat(g, starts)
    before = np.r_[0.0, np.cumsum(group_sum)]  # gain of all groups before group j
    ks = np.asarray(ks, dtype=int)
    j = np.searchsorted(ends, ks, side="left")  # group containing the k-th item (or k == end)
    j = np.minimum(j, len(starts) - 1)
    taken = np.clip(ks - starts[j], 0, ends[j] - starts[j])
    out = before[j] + taken * group_sum[j] / (ends[j] - starts[j])
    return np.where(ks <= 0, 0.0, out)


def _ks(ratios: np.ndarray, n: int) -> np.ndarray:
    return np.rint(ratios * n).astype(int)


def _nonzero_total(gold: np.ndarray, what: str) -> float:
    total = float(gold.sum())
    if total == 0:
        raise DataError(f"{what} is undefined: the gold gains sum to zero")
    return total


def efficiency_curve(pred_gain, gold_gain, ratios=None) -> pd.Series:
    """The paper's efficiency gain EG(r) at each usage ratio r.

    EG(r) = (G_pred(k) - (k / N) sum(gold)) / (N * mean(gold)), k = rint(r N), where G_pred(k)
    is the gold gain of the top k queries by prediction and (k / N) sum(gold) the expected gain
    of k random queries: the gain over a random ordering, with
    1.0 = the gain of sending every query to the primary. The curve stops at the share of
    queries the method predicts positive: EG(r) is NaN for r > mean(pred_gain > 0).

    Parameters
    ----------
    pred_gain, gold_gain : array-like of shape (N,)
    ratios : array-like in [0, 1], default 61 points on [0.2, 0.8].

    Returns
    -------
    Series named "efficiency_gain", indexed by "ratio".
    """
    pred, gold = _inputs(pred_gain, gold_gain)
    r = _ratios(ratios)
    total = _nonzero_total(gold, "the efficiency gain")
    ks = _ks(r, len(gold))
    eg = (_top_k_gain(pred, gold, ks) - ks / len(gold) * total) / total
    eg[r > np.mean(pred > 0) + 1e-12] = np.nan
    return pd.Series(eg, index=pd.Index(r, name="ratio"), name="efficiency_gain")


def peak_efficiency_gain(curve: pd.Series) -> float:
    """Maximum of an efficiency curve over its defined points (NaN if none)."""
    values = curve.to_numpy(dtype=float)
    return float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")


def efficiency_auc(curve: pd.Series, lo: float = 0.2, hi: float = 0.8) -> float:
    """Trapezoid area under an efficiency curve on [lo, hi] over its defined points.

    The truncated part (beyond the share predicted positive) contributes 0; fewer than two
    defined points give 0.0.
    """
    r = curve.index.to_numpy(dtype=float)
    v = curve.to_numpy(dtype=float)
    keep = (r >= lo - 1e-12) & (r <= hi + 1e-12) & np.isfinite(v)
    if keep.sum() < 2:
        return 0.0
    return float(np.trapezoid(v[keep], r[keep]))


def normalised_curve(pred_gain, gold_gain, ratios=None) -> pd.Series:
    """(G_pred(k) - (k/N) sum(gold)) / (G_oracle(k) - (k/N) sum(gold)) at each ratio r, k = rint(r N).

    G_oracle ranks by the true gold gain: 1 = oracle ranking, 0 = random, negative = worse
    than random. No truncation; NaN where the oracle's gain over random is zero.
    Series named "oracle_share", indexed by "ratio".
    """
    pred, gold = _inputs(pred_gain, gold_gain)
    r = _ratios(ratios)
    ks = _ks(r, len(gold))
    base = ks / len(gold) * gold.sum()
    num = _top_k_gain(pred, gold, ks) - base
    den = _top_k_gain(gold, gold, ks) - base
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.abs(den) > 1e-12, num / np.where(den == 0, 1, den), np.nan)
    return pd.Series(share, index=pd.Index(r, name="ratio"), name="oracle_share")


def oracle_share(pred_gain, gold_gain, ratios=None) -> float:
    """Mean of :func:`normalised_curve` over the ratios (default 61 points on [0.2, 0.8])."""
    curve = normalised_curve(pred_gain, gold_gain, ratios)
    return float(np.nanmean(curve.to_numpy())) if curve.notna().any() else float("nan")


def pgr_curve(pred_gain, gold_gain, ratios=None) -> pd.Series:
    """RouteLLM's performance gap recovered at share r of calls to the primary (strong) model.

    PGR(r) = G_pred(k) / sum(gold): routing nothing recovers 0, routing everything 1. Default
    ratios: 101 points on [0, 1]. Unstable when sum(gold) is near zero.
    """
    pred, gold = _inputs(pred_gain, gold_gain)
    r = _ratios(ratios, np.linspace(0, 1, 101))
    total = _nonzero_total(gold, "the performance gap recovered")
    return pd.Series(_top_k_gain(pred, gold, _ks(r, len(gold))) / total,
                     index=pd.Index(r, name="ratio"), name="pgr")


def apgr(pred_gain, gold_gain) -> float:
    """Average performance gap recovered: trapezoid integral of PGR over r in [0, 1] on the
    exact grid k / N (a random ordering gives 0.5)."""
    pred, gold = _inputs(pred_gain, gold_gain)
    n = len(gold)
    r = np.arange(n + 1) / n
    curve = pgr_curve(pred, gold, r)
    return float(np.trapezoid(curve.to_numpy(), r))


def cpt(pred_gain, gold_gain, target: float = 0.5) -> float:
    """Call-performance threshold: the smallest share k / N of calls to the primary at which
    PGR reaches ``target``; NaN if it never does."""
    if not 0 <= target <= 1:
        raise DataError(f"target must be in [0, 1], got {target!r}")
    pred, gold = _inputs(pred_gain, gold_gain)
    n = len(gold)
    r = np.arange(n + 1) / n
    pgr = pgr_curve(pred, gold, r).to_numpy()
    hit = np.flatnonzero(pgr >= target - 1e-12)
    return float(r[hit[0]]) if hit.size else float("nan")


def routing_value(route, gold_gain, *, cost_weight: float = 0.0, cost_primary=None,
                  cost_alternative=None, n_bootstrap: int = 1000, alpha: float = 0.05,
                  random_state=None) -> dict:
    """Mean value per query of a routing rule on held-out gold rows, with a bootstrap CI.

    v_i = route_i * (gold_i - cost_weight * (C_p,i - C_a,i)) (costs 1 / 0 by default): the
    gain over sending every query to the alternative. Returns ``value``, ``lower``,
    ``upper`` (percentile bootstrap, level 1 - alpha), ``share_primary`` and ``n``.
    """
    r = np.asarray(route)
    if r.dtype != bool:
        if r.dtype.kind not in "iuf" or not np.all(np.isin(r, [0, 1])):
            raise DataError("route must be boolean (True = primary) or 0/1")
        r = r.astype(bool)
    gold = as_float_vector(gold_gain, "gold_gain")
    n = check_consistent_length(route=r, gold_gain=gold)
    cp = np.ones(n) if cost_primary is None else as_float_vector(cost_primary, "cost_primary")
    ca = np.zeros(n) if cost_alternative is None else as_float_vector(cost_alternative, "cost_alternative")
    check_consistent_length(route=r, cost_primary=cp, cost_alternative=ca)
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1), got {alpha!r}")
    v = r * (gold - cost_weight * (cp - ca))
    rng = check_random_state(random_state)
    boot = v[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1)
    lower, upper = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return {"value": float(v.mean()), "lower": float(lower), "upper": float(upper),
            "share_primary": float(r.mean()), "n": int(n)}


def summarise(pred_gain, gold_gain, ratios=None) -> dict:
    """Headline metrics of one prediction: oracle_share, peak_efficiency_gain,
    efficiency_auc, apgr, cpt50, cpt80 and share_predicted_positive."""
    pred, gold = _inputs(pred_gain, gold_gain)
    curve = efficiency_curve(pred, gold, ratios)
    return {
        "oracle_share": oracle_share(pred, gold, ratios),
        "peak_efficiency_gain": peak_efficiency_gain(curve),
        "efficiency_auc": efficiency_auc(curve),
        "apgr": apgr(pred, gold),
        "cpt50": cpt(pred, gold, 0.5),
        "cpt80": cpt(pred, gold, 0.8),
        "share_predicted_positive": float(np.mean(pred > 0)),
    }
