"""Quality-versus-cost frontier of K-model routers and its area, RouterBench's AIQ (exported by
:mod:`causal_router.evaluate`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._validation import DataError, as_float_vector, check_consistent_length, check_same_index
from .routing import check_cost_weight, choose, cost_matrix

__all__ = ["frontier", "frontier_hull", "aiq"]


def _frontier_weights(U: np.ndarray, C: np.ndarray, max_points: int) -> np.ndarray:
    """Cost weights at which some query's choice can change (where two models' net utilities
    cross), thinned to at most ``max_points`` quantiles; with 0 and the points between them."""
    K = U.shape[1]
    cross = []
    for j in range(K):
        for k in range(j + 1, K):
            dc = C[:, k] - C[:, j]
            ok = dc != 0
            w = (U[ok, k] - U[ok, j]) / dc[ok]
            cross.append(w[w > 0])
    w = np.unique(np.concatenate(cross)) if cross else np.empty(0)
    if w.size > max_points:
        w = np.unique(np.quantile(w, np.linspace(0, 1, max_points)))
    if w.size == 0:
        return np.array([0.0])
    mids = (w[1:] + w[:-1]) / 2
    return np.unique(np.concatenate([[0.0], mids, [w[-1] * 1.5 + 1e-12]]))


def frontier(pred_utility, quality, costs, *, cost_weights=None, max_points: int = 256) -> pd.DataFrame:
    """Quality-versus-cost frontier of a K-model router over cost weights w.

    At each w every query goes to argmax_k pred_utility[i, k] - w * C[i, k] (ties to the first
    column: :func:`causal_router.routing.choose`); the point is (mean cost of the chosen models, mean quality of the chosen models).
    The frontier always ends with w = inf: every query to its cheapest model (ties broken by
    predicted utility).

    Parameters
    ----------
    pred_utility : DataFrame (n, K)
        Predicted utility of each model (columns: model names), e.g. ``router.predict_utility(X)``.
    quality : DataFrame (n, K)
        Each model's true (or held-out human) quality on each query, the same columns in any
        order, the same row index. Any common per-query offset (the reference model)
        shifts every router's quality equally.
    costs : mapping {model: cost}, array (K,) in ``pred_utility``'s column order, or (n, K)
        Cost of each model (per query or the same for all).
    cost_weights : array-like of w >= 0, optional
        Default: 0, and the points between consecutive weights at which a query's choice
        changes (at most ``max_points`` of them, as quantiles), which traces every distinct
        routing when there are fewer.
    max_points : int, default 256
        The most cost weights traced where ``cost_weights`` is None.

    Returns
    -------
    DataFrame
        One row per w (increasing): ``cost_weight``, ``cost``, ``quality`` and ``share:<model>``
        (share of queries sent to each model). ``attrs["cost_range"]``: the mean over queries of
        the cheapest and of the dearest model's cost (the range of :func:`aiq`).
    """
    if not isinstance(pred_utility, pd.DataFrame) or not isinstance(quality, pd.DataFrame):
        raise DataError("pred_utility and quality must be DataFrames with one column per model")
    models = [str(c) for c in pred_utility.columns]
    missing = [m for m in models if m not in quality.columns]
    if missing:
        raise DataError(f"quality has no column for model(s) {missing}")
    check_same_index("frontier", pred_utility=pred_utility, quality=quality)
    U = np.asarray(pred_utility.to_numpy(dtype=float))
    Q = np.asarray(quality[models].to_numpy(dtype=float))
    check_consistent_length(pred_utility=U, quality=Q)
    if not (np.all(np.isfinite(U)) and np.all(np.isfinite(Q))):
        raise DataError("pred_utility and quality must be finite (a NaN quality: a model without a held-out "
                        "quality on a query)")
    n = len(U)
    C = cost_matrix(costs, models, n)
    if cost_weights is None:
        weights = _frontier_weights(U, C, int(max_points))
    else:
        weights = np.sort([check_cost_weight(w) for w in as_float_vector(cost_weights, "cost_weights")])
    rows = np.arange(n)
    records = [(w, choose(U, w, C)) for w in weights]  # the K-model rule of causal_router.routing
    cheapest = C.min(axis=1, keepdims=True)
    records.append((np.inf, np.argmax(np.where(C == cheapest, U, -np.inf), axis=1)))
    out = []
    for w, choice in records:
        shares = np.bincount(choice, minlength=len(models)) / n
        out.append({"cost_weight": float(w), "cost": float(C[rows, choice].mean()),
                    "quality": float(Q[rows, choice].mean()),
                    **{f"share:{m}": float(s) for m, s in zip(models, shares)}})
    table = pd.DataFrame(out)
    table.attrs["cost_range"] = (float(C.min(axis=1).mean()), float(C.max(axis=1).mean()))
    return table


def _upper_hull(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing concave majorant of points (x, y): upper convex hull, then flat from its
    highest point on (RouterBench's non-decreasing convex hull)."""
    order = np.lexsort((-y, x))
    x, y = x[order], y[order]
    hull: list[int] = []
    for i in range(len(x)):
        if hull and x[hull[-1]] == x[i]:
            continue  # same cost, lower quality (sorted by -y within x)
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = (x[hull[-2]], y[hull[-2]]), (x[hull[-1]], y[hull[-1]])
            if (y2 - y1) * (x[i] - x1) <= (y[i] - y1) * (x2 - x1):
                hull.pop()  # the middle point lies on or below the chord
            else:
                break
        hull.append(i)
    hx, hy = x[hull], y[hull]
    top = int(np.argmax(hy))
    return hx[: top + 1], hy[: top + 1]


def frontier_hull(frontier_table: pd.DataFrame, costs=None) -> pd.DataFrame:
    """The non-decreasing concave hull of a frontier (the curve whose mean height is :func:`aiq`):
    its vertices, or its height at ``costs`` (flat beyond its end points).

    Parameters
    ----------
    frontier_table : DataFrame
        The output of :func:`frontier` (columns ``cost`` and ``quality`` are used).
    costs : array-like of shape (m,), optional
        Costs at which to read the hull's height; None: the hull's vertices.

    Returns
    -------
    DataFrame
        Columns ``cost`` and ``quality``: the vertices, or one row per entry of ``costs``.
    """
    x, y = _frontier_points(frontier_table)
    hx, hy = _upper_hull(x, y)
    if costs is None:
        return pd.DataFrame({"cost": hx, "quality": hy})
    grid = as_float_vector(costs, "costs")
    return pd.DataFrame({"cost": grid, "quality": np.interp(grid, hx, hy)})


def _frontier_points(frontier_table) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(frontier_table, pd.DataFrame) or not {"cost", "quality"} <= set(frontier_table.columns):
        raise DataError("expected the DataFrame of frontier() (columns 'cost' and 'quality')")
    return (as_float_vector(frontier_table["cost"], "cost"), as_float_vector(frontier_table["quality"], "quality"))


def aiq(frontier_table: pd.DataFrame, cost_range=None) -> float:
    """Average improvement in quality (RouterBench, Hu et al. 2024): the mean height of the
    router's non-decreasing concave quality-cost frontier over a cost range.

        AIQ = 1 / (c_hi - c_lo) * integral_{c_lo}^{c_hi} Q~(c) dc

    Q~ is the upper concave hull of the frontier's points (mixing two routings at random
    reaches any point between them), kept flat beyond its highest point (a larger budget
    need not be spent) and beyond its dearest point. Below its cheapest point (absent when the
    frontier comes from :func:`frontier`, which ends at w = inf) Q~ is its cheapest point's
    quality.

    Parameters
    ----------
    frontier_table : DataFrame
        Columns ``cost`` and ``quality`` (from :func:`frontier`).
    cost_range : (c_lo, c_hi), optional
        Default ``frontier_table.attrs["cost_range"]``, else the range of its costs. Compare
        routers on one range.

    Returns
    -------
    float
        The AIQ, in quality units.
    """
    x, y = _frontier_points(frontier_table)
    lo, hi = cost_range if cost_range is not None else frontier_table.attrs.get(
        "cost_range", (float(x.min()), float(x.max())))
    lo, hi = float(lo), float(hi)
    hx, hy = _upper_hull(x, y)
    if hi <= lo:
        return float(np.interp(lo, hx, hy))
    grid = np.unique(np.concatenate([[lo, hi], hx[(hx > lo) & (hx < hi)]]))
    return float(np.trapezoid(np.interp(grid, hx, hy), grid) / (hi - lo))
