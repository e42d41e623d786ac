"""The routing rule and its costs: where a route is decided from predicted gains or utilities.

Two models, a primary and an alternative (:func:`decide`): send query q to the primary iff

    D(q) = gain(q) - w * (C_primary(q) - C_alternative(q)) > 0,

``gain`` the predicted gold-scale gain of the primary over the alternative; costs 1 and 0 unless
given, so that the rule is gain > w. K models (:func:`choose`): send q to

    argmax_k  u_k(q) - w * C_k(q),

``u_k`` the predicted gold-scale utility of model k; ties go to the model listed first. The two
rules agree for K = 2 (utilities gain and 0, the alternative listed first).

The cost weight w converts cost into quality units. It must be a finite number >= 0
(:func:`check_cost_weight`, one rule and one message everywhere): a negative weight would pay for
spending more. A budget (a share of queries for the primary, :func:`threshold_for_share`) is met
by the weight that sends that share, and never by a negative one: past the share of queries whose
predicted gain is positive, the primary is predicted to be worse, and a :class:`RoutingWarning`
says that fewer are sent.

Costs are scalars or per-query arrays wherever costs are accepted, broadcast by one function
(:func:`per_query`): ``cost_primary`` / ``cost_alternative`` of the two-model rule, and each
model's cost in :func:`cost_matrix` (a mapping {model: scalar or (n,) array}, an array of K costs,
an (n, K) array or a DataFrame with one column per model). A two-model router takes the same
mapping with the models ``"primary"`` and ``"alternative"`` (:data:`TWO_MODELS`).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ._validation import DataError, as_float_matrix, as_float_vector

__all__ = ["decide", "choose", "threshold_for_share", "check_cost_weight", "per_query", "cost_matrix",
           "two_model_costs", "RoutingWarning", "TWO_MODELS"]

#: The two models of a two-model router, in the order of :func:`cost_matrix` (a tie goes to the first).
TWO_MODELS = ("alternative", "primary")


class RoutingWarning(UserWarning):
    """A routing request that cannot be met as asked (e.g. tied predictions at a budget)."""


def check_cost_weight(cost_weight) -> float:
    """``cost_weight`` as a float, or a :class:`DataError`: it must be a finite real number >= 0.

    Parameters
    ----------
    cost_weight : float
        The weight to check (a bool is refused).

    Returns
    -------
    float
        ``cost_weight`` as a float.
    """
    if isinstance(cost_weight, (bool, np.bool_)) or not isinstance(cost_weight, numbers.Real) \
            or not np.isfinite(cost_weight) or cost_weight < 0:
        raise DataError(f"cost_weight must be a finite number >= 0, got {cost_weight!r}")
    return float(cost_weight)


def per_query(values, n: int, name: str) -> np.ndarray:
    """``values`` (a scalar, or n values) as a finite float array of shape (n,): the one broadcast
    of costs. Raises DataError naming ``name`` for another length or non-finite values.

    Parameters
    ----------
    values : float or array-like of shape (n,)
        One value for every query, or one per query.
    n : int
        The number of queries.
    name : str
        The argument's name, for the error message.

    Returns
    -------
    ndarray of shape (n,)
        The values as floats.
    """
    if np.ndim(values) == 0 and not isinstance(values, (str, bytes)):
        values = [values]
    arr = as_float_vector(values, name)
    if arr.size == 1:
        return np.full(n, arr[0])
    if arr.size != n:
        raise DataError(f"{name} has {arr.size} values for {n} queries; give one value, or one per query")
    return arr


def cost_matrix(costs, models: Sequence[str], n: int, *, default=None) -> np.ndarray:
    """Costs as an (n, K) float array in ``models`` order.

    ``costs``: None (``default``: K costs, zeros unless given), a mapping or Series {model: cost}
    whose costs are scalars or (n,) arrays, an array of K costs in ``models`` order, or per-query
    costs of shape (n, K) (a DataFrame's columns are matched by model name). Every model needs a
    cost, no other name may appear, and costs must be finite.

    Parameters
    ----------
    costs : None, mapping, Series, array-like of shape (K,) or (n, K), or DataFrame
        The costs, in any of the forms above.
    models : sequence of str
        The K model names, in column order.
    n : int
        The number of queries.
    default : array-like of shape (K,), optional
        The costs where ``costs`` is None; None: zeros.

    Returns
    -------
    ndarray of shape (n, K)
        The cost of each model on each query.
    """
    models = [str(m) for m in models]
    K = len(models)
    if costs is None:
        row = np.zeros(K) if default is None else np.asarray(default, dtype=float)
        return np.broadcast_to(row, (n, K)).astype(float)
    if isinstance(costs, pd.DataFrame):
        missing = [m for m in models if m not in costs.columns]
        if missing:
            raise DataError(f"costs has no column for model(s) {missing}")
        extra = [str(c) for c in costs.columns if str(c) not in models]
        if extra:
            raise DataError(f"costs names unknown model(s) {extra[:5]}; the models are {models}")
        arr = as_float_matrix(costs[models], "costs")
    elif isinstance(costs, (Mapping, pd.Series)):
        costs = {str(k): v for k, v in dict(costs).items()}
        missing = [m for m in models if m not in costs]
        if missing:
            raise DataError(f"costs has no entry for model(s) {missing}; give a cost for each of {models}")
        extra = [k for k in costs if k not in models]
        if extra:
            raise DataError(f"costs names unknown model(s) {extra[:5]}; the models are {models}")
        arr = np.column_stack([per_query(costs[m], n, f"costs[{m!r}]") for m in models])
    else:
        try:
            arr = np.array(costs, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"costs must be numbers (a mapping {{model: cost}}, K costs or an (n, K) array), "
                            f"got {type(costs).__name__}") from None
        if arr.ndim == 1:
            arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != K or arr.shape[0] not in (1, n):
        raise DataError(f"costs must give K={K} costs (one per model) or an ({n}, {K}) array, got shape "
                        f"{np.shape(arr)}")
    if not np.all(np.isfinite(arr)):
        raise DataError("costs contain NaN or infinite values")
    return np.broadcast_to(arr, (n, K)).astype(float)


def two_model_costs(costs, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(cost_primary, cost_alternative), two arrays of shape (n,), from a two-model ``costs``
    (None: 1 and 0; otherwise as :func:`cost_matrix` with the models ``"primary"`` and
    ``"alternative"``, e.g. ``{"primary": 2.0, "alternative": per_query_array}``).

    Parameters
    ----------
    costs : mapping, Series, array-like or DataFrame, optional
        The two models' costs, as in :func:`cost_matrix` with the models ``"alternative"`` and
        ``"primary"`` (an array of two costs is in that order); None: 1 and 0.
    n : int
        The number of queries.

    Returns
    -------
    cost_primary : ndarray of shape (n,)
        The primary's cost on each query.
    cost_alternative : ndarray of shape (n,)
        The alternative's cost on each query.
    """
    C = cost_matrix(costs, TWO_MODELS, n, default=(0.0, 1.0))
    return C[:, 1], C[:, 0]


def decide(gain, cost_weight: float = 0.0, cost_primary=None, cost_alternative=None) -> np.ndarray:
    """The two-model rule: True (primary) where gain - cost_weight * (cost_primary - cost_alternative) > 0.

    Parameters
    ----------
    gain : array-like of shape (n,)
        Predicted gold-scale gains of the primary over the alternative.
    cost_weight : float, default 0.0
        Quality units per unit of cost; finite, >= 0.
    cost_primary, cost_alternative : float or array-like of shape (n,), optional
        Costs per query (default 1 and 0: then the rule is gain > cost_weight).

    Returns
    -------
    ndarray of bool, shape (n,)
        True = send the query to the primary.
    """
    cost_weight = check_cost_weight(cost_weight)
    gain = as_float_vector(gain, "gain")
    gap = _cost_gap(len(gain), cost_primary, cost_alternative)
    return gain - cost_weight * gap > 0


def choose(utility, cost_weight: float = 0.0, costs=None) -> np.ndarray:
    """The K-model rule: the column index of argmax_k utility[i, k] - cost_weight * costs[i, k].

    Parameters
    ----------
    utility : array-like or DataFrame of shape (n, K)
        Predicted gold-scale utilities (a DataFrame's columns name the models).
    cost_weight : float, default 0.0
        Quality units per unit of cost; finite, >= 0.
    costs : mapping, array-like or DataFrame, optional
        As in :func:`cost_matrix` (models: the DataFrame's columns, else 0 .. K-1); None: no costs.

    Returns
    -------
    ndarray of int, shape (n,)
        The chosen column per query; ties go to the first column.
    """
    cost_weight = check_cost_weight(cost_weight)
    models = ([str(c) for c in utility.columns] if isinstance(utility, pd.DataFrame)
              else [str(k) for k in range(np.shape(utility)[1])])
    U = as_float_matrix(utility, "utility")
    C = costs if isinstance(costs, np.ndarray) and costs.shape == U.shape else cost_matrix(costs, models, len(U))
    return np.argmax(U - cost_weight * C, axis=1)


def threshold_for_share(gain, primary_share: float, cost_primary=None, cost_alternative=None) -> float:
    """The cost weight w >= 0 at which :func:`decide` sends ``primary_share`` of the queries to the primary.

    ``decide(gain, w, cost_primary, cost_alternative)`` then sends floor(primary_share * n)
    queries to the primary, fewer where predicted gains tie at the threshold, and at most those
    whose predicted gain is positive (w is never negative); a :class:`RoutingWarning` says how
    many are sent when fewer. With per-query costs the rule compares gain / (C_p - C_a) to w
    (C_p > C_a required).

    Parameters
    ----------
    gain : array-like of shape (n,)
        Predicted gold-scale gains of the primary over the alternative.
    primary_share : float
        The share of the queries to send to the primary, in [0, 1].
    cost_primary, cost_alternative : float or array-like of shape (n,), optional
        Costs per query (default 1 and 0).

    Returns
    -------
    float
        The cost weight w (>= 0).
    """
    if isinstance(primary_share, (bool, np.bool_)) or not isinstance(primary_share, numbers.Real) \
            or not 0 <= primary_share <= 1:
        raise DataError(f"primary_share must be a number in [0, 1], got {primary_share!r}")
    gain = as_float_vector(gain, "gain")
    gap = _cost_gap(len(gain), cost_primary, cost_alternative)
    if np.any(gap <= 0):
        raise DataError("the primary's cost must exceed the alternative's on every query to set a budget")
    ratio = np.sort(gain / gap)[::-1]
    n = len(ratio)
    k = int(np.floor(float(primary_share) * n))
    positive = int(np.sum(ratio > 0))
    if k > positive:
        warnings.warn(f"{k} of {n} queries were asked for the primary, but only {positive} have a positive "
                      "predicted gain (net of cost): those are sent (cost weight 0; a negative cost weight would "
                      "send queries the primary is predicted to answer worse)", RoutingWarning, stacklevel=3)
        return 0.0
    if k == 0:
        return float(max(ratio[0], 0.0))
    if k == n:
        return float(max(np.nextafter(ratio[-1], -np.inf), 0.0))
    if ratio[k - 1] > ratio[k]:
        middle = (ratio[k - 1] + ratio[k]) / 2  # rounds onto ratio[k - 1] when the two are adjacent floats
        return float(max(middle if middle < ratio[k - 1] else ratio[k], 0.0))
    sent = int(np.sum(ratio > ratio[k]))
    warnings.warn(f"{k} of {n} queries were asked for the primary, but the predicted gains tie at the "
                  f"threshold: {sent} are sent ({int(np.sum(ratio == ratio[k]))} share the value {ratio[k]:.4g})",
                  RoutingWarning, stacklevel=3)
    return float(max(ratio[k], 0.0))


def _cost_gap(n: int, cost_primary, cost_alternative) -> np.ndarray:
    cp = np.ones(n) if cost_primary is None else per_query(cost_primary, n, "cost_primary")
    ca = np.zeros(n) if cost_alternative is None else per_query(cost_alternative, n, "cost_alternative")
    return cp - ca
