"""Inference clustered by query: the standard error and interval of an average over rows whose queries repeat.

On real evaluation data one query carries several rows (one per model pair, one per vote), and
rows of one query share its difficulty, its topic and the judge's bias on it: they are not
independent. The estimand of an average of per-row scores phi_i (the doubly robust
pseudo-outcomes of :class:`~causal_router.BiasEstimator`) is then the average over the
population of queries that the data's queries are a random sample from, and its sampling
variance is that of a mean of G independent query totals.

- Cluster-robust standard error (Liang and Zeger 1986; the CR1 small-sample factor G / (G - 1),
  as Stata's ``vce(cluster)`` for a mean)::

      se = sqrt(G / (G - 1) * sum_g (sum_{i in g} (phi_i - mean phi))^2) / n,

  n rows in G queries. With one row per query it is sd(phi) / sqrt(n) with ddof = 1, the
  standard error rows-as-units gives, to the last digit of the formula (the code then uses that
  formula itself, so numbers without repeated queries are unchanged).
- Interval: normal, mean +- z se, with at least :data:`MIN_CLUSTERS` (30) queries. Below that
  the cluster-robust variance rests on few query totals (about G - 1 degrees of freedom) and the
  normal interval is too short; a :class:`FewClustersWarning` says so and the interval is the
  percentile cluster bootstrap: :data:`N_CLUSTER_BOOTSTRAP` (4,000) resamples of G whole queries
  drawn with replacement, the mean of each resample's rows, seeded by ``random_state``. The
  scores are not refitted (the bootstrap is of the average given the cross-fitted scores: cheap,
  and the nuisance error is second order for a doubly robust score).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ._utils import as_seed
from ._validation import DataError, as_float_vector

__all__ = ["cluster_std_error", "score_std_error", "clustered_mean", "FewClustersWarning", "MIN_CLUSTERS", "N_CLUSTER_BOOTSTRAP"]

#: Fewest queries for a normal interval; below it, the percentile cluster bootstrap.
MIN_CLUSTERS = 30
#: Resamples of whole queries behind the cluster bootstrap interval.
N_CLUSTER_BOOTSTRAP = 4000


class FewClustersWarning(UserWarning):
    """An average over fewer than :data:`MIN_CLUSTERS` queries: its interval is a cluster bootstrap."""


def _codes(clusters, n: int) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(np.asarray(clusters, dtype=object)), sort=False)
    if len(codes) != n:
        raise DataError(f"clusters has {len(codes)} labels for {n} values")
    if (codes < 0).any():
        raise DataError(f"clusters has {int((codes < 0).sum())} missing labels")
    return codes


def score_std_error(scores, clusters=None) -> float:
    """Standard error of the sum of ``scores`` (n,), the terms of an estimating equation (mean
    zero at the solution; not centred here): the terms of one cluster summed before squaring, with
    the factor G / (G - 1) for G clusters (CR1), as the sandwich of an M-estimator takes them.
    :func:`cluster_std_error` is this of the centred values, divided by n.

    Parameters
    ----------
    scores : array-like of shape (n,)
        The terms (finite).
    clusters : array-like of shape (n,), optional
        Cluster labels (query ids; any hashable labels, none missing); None: every term its own
        cluster.

    Returns
    -------
    float
        sqrt(G / (G - 1) * sum over clusters of (the cluster's sum of scores)^2).
    """
    scores = as_float_vector(scores, "scores")
    if clusters is not None:
        codes = _codes(clusters, len(scores))
        scores = np.bincount(codes, weights=scores, minlength=int(codes.max()) + 1 if len(codes) else 0)
    g = len(scores)
    return float(np.sqrt(g / max(g - 1, 1) * np.sum(scores ** 2)))


def cluster_std_error(values, clusters=None) -> float:
    """Standard error of the mean of ``values`` (n,), clustered by ``clusters`` (n,) with the
    factor G / (G - 1) (module docstring); sd / sqrt(n) (ddof = 1) without clusters or where every
    cluster holds one value. NaN with fewer than two clusters.

    Parameters
    ----------
    values : array-like of shape (n,)
        Finite values.
    clusters : array-like of shape (n,), optional
        Cluster labels (query ids; any hashable labels, none missing); None: every value its own
        cluster.

    Returns
    -------
    float
        The standard error of the mean; NaN with fewer than two clusters (or values).
    """
    values = as_float_vector(values, "values")
    n = len(values)
    if clusters is None:
        return float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    codes = _codes(clusters, n)
    n_clusters = int(codes.max()) + 1 if n else 0
    if n_clusters == n:  # one value per cluster: the plain formula, bit for bit
        return cluster_std_error(values)
    if n_clusters < 2:
        return float("nan")
    return score_std_error(values - values.mean(), codes) / n


def clustered_mean(values, clusters=None, *, alpha: float = 0.05, random_state=None,
                   warn: bool = True) -> pd.Series:
    """The mean of ``values`` (n,) with a (1 - alpha) interval, the rows clustered by ``clusters`` (n,).

    Returns a Series: ``estimate``, ``std_error`` (:func:`cluster_std_error`), ``lower``,
    ``upper`` and ``n_clusters`` (G; n without clusters). The interval is normal, except where
    clusters are given and G < :data:`MIN_CLUSTERS`: then it is the percentile cluster bootstrap
    (seeded by ``random_state``), announced by a :class:`FewClustersWarning` unless ``warn`` is
    False. Without clusters every value is its own unit and the interval is normal.

    Parameters
    ----------
    values : array-like of shape (n,)
        Finite values (at least one).
    clusters : array-like of shape (n,), optional
        Cluster labels (query ids); None: every value its own cluster.
    alpha : float, default 0.05
        One minus the interval's coverage, in (0, 1).
    random_state : int, numpy Generator or None
        Seeds the cluster bootstrap (used only below :data:`MIN_CLUSTERS` clusters).
    warn : bool, default True
        Warn (:class:`FewClustersWarning`) where the bootstrap interval is used.

    Returns
    -------
    Series
        ``estimate``, ``std_error``, ``lower``, ``upper`` and ``n_clusters`` (floats).
    """
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1), got {alpha!r}")
    values = as_float_vector(values, "values")
    n = len(values)
    if n == 0:
        raise DataError("no values to average")
    estimate = float(np.mean(values))
    se = cluster_std_error(values, clusters)
    n_clusters = n if clusters is None else int(_codes(clusters, n).max()) + 1
    z = stats.norm.ppf(1 - alpha / 2)
    lower, upper = estimate - z * se, estimate + z * se
    if clusters is not None and n_clusters < MIN_CLUSTERS:
        if warn:
            warnings.warn(f"the average rests on {n_clusters} queries (< {MIN_CLUSTERS}): the normal interval would be "
                          f"too short; using the percentile cluster bootstrap ({N_CLUSTER_BOOTSTRAP} resamples of whole "
                          "queries)", FewClustersWarning, stacklevel=2)
        lower, upper = _cluster_bootstrap(values, _codes(clusters, n), n_clusters, alpha, random_state)
    return pd.Series({"estimate": estimate, "std_error": se, "lower": lower, "upper": upper,
                      "n_clusters": float(n_clusters)})


def _cluster_bootstrap(values, codes, n_clusters, alpha, random_state) -> tuple[float, float]:
    """Percentile interval of the mean over resamples of whole clusters (NaN with one cluster)."""
    if n_clusters < 2:
        return float("nan"), float("nan")
    sums = np.bincount(codes, weights=values, minlength=n_clusters)
    sizes = np.bincount(codes, minlength=n_clusters).astype(float)
    rng = np.random.default_rng(as_seed(random_state))
    draws = rng.integers(0, n_clusters, size=(N_CLUSTER_BOOTSTRAP, n_clusters))
    means = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    lower, upper = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lower), float(upper)
