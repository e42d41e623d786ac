"""Acquisition scores: what a gold label at each query is worth to each strategy.

- Bias uncertainty (:func:`bias_uncertainty`): the R-learner of :mod:`causal_router.bias` (econml's
  ``NonParamDML``, cross-fitted outcome model, the propensity known by design) whose final stage is
  refitted on Poisson-bootstrap weights of the cross-fitted residuals; the standard deviation of
  the refits' bias estimates at a query is its uncertainty (gold scale). For a row that is already
  gold, only the refits that left it out count (out of bag), so its score is what it would have
  been without its own label.
- Decision value (:func:`decision_value`): the expected loss of routing a query the wrong way,
  E[(D - w)^- or (D - w)^+] under a normal belief D ~ N(predicted gain, uncertainty^2), averaged
  over the cost weights w that send 20% to 80% of the queries to the primary (the range on which
  routers are scored): sd * (phi(z) - z * Phi(-z)), z = |gain - w| / sd. Large where the decision
  is close to a threshold and the bias is uncertain.
- Coverage strata (:func:`coverage_strata`): k-means clusters of the standardised features, one per
  gold label to draw; sampling along the clusters spreads the draw over the feature space.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin, clone

from .._utils import as_seed
from .._validation import DataError
from ..data import EvalData, fitted_scale, pooled_outcome
from ..evaluate import DEFAULT_RATIOS
from ..models import KnownPropensity, default_regressor, final_stage, fold_splitter, repeated_groups

__all__ = ["BootstrapFinalStage", "bias_uncertainty", "decision_value", "coverage_strata"]


class BootstrapFinalStage(RegressorMixin, BaseEstimator):
    """A weighted regressor plus ``n_boot`` refits on Poisson(1) bootstrap weights.

    A regressor that tunes a penalty over ``alphas`` (ridge) is tuned once, on all rows; the
    refits keep that penalty (the spread is conditional on the tuning, and 20 times cheaper).

    ``predict`` uses the fit on all rows; :meth:`spread` is the standard deviation over the refits
    at new rows, shape (n,); :meth:`spread_out_of_bag` the same at training rows over the refits
    that did not see them.

    ``groups`` (n,): query codes of the rows ``fit`` will see, in order (set before fitting, as
    :class:`~causal_router.models.StackedFinalStage`'s): the Poisson weights are then drawn per
    query, every row of a query sharing its query's weight (a cluster bootstrap), and a row is out
    of bag where its query is.

    Parameters
    ----------
    estimator : regressor or None, default=None
        The weighted regressor fitted on all rows and refitted on the bootstrap weights (it must
        accept ``sample_weight``). None: ``final_stage("linear")``.
    n_boot : int, default=20
        Number of bootstrap refits.
    random_state : int, Generator or None, default=None
        Seed of the Poisson weights.
    groups : array-like of shape (n,) of int, or None, default=None
        Query codes (0..n_queries-1) of the rows ``fit`` will see, in order; None: weights per row.
    """

    def __init__(self, estimator=None, n_boot: int = 20, random_state=None, groups=None):
        self.estimator = estimator
        self.n_boot = n_boot
        self.random_state = random_state
        self.groups = groups

    def fit(self, X, y, sample_weight=None):
        """Fit the regressor on all rows, then its ``n_boot`` refits on Poisson(1) weights.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Features.
        y : array-like of shape (n,)
            Target.
        sample_weight : array-like of shape (n,), optional
            Row weights (None: 1), multiplied by the bootstrap weights in the refits.

        Returns
        -------
        self : BootstrapFinalStage
            The fitted estimator.
        """
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float).reshape(-1)
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float).reshape(-1)
        rng = np.random.default_rng(self.random_state)
        base = self.estimator if self.estimator is not None else final_stage("linear")
        self.full_ = clone(base).fit(X, y, sample_weight=weight)
        member = clone(base)
        if hasattr(self.full_, "alpha_") and "alphas" in member.get_params():
            member.set_params(alphas=np.array([float(self.full_.alpha_)]))  # refits keep the penalty chosen on all rows
        if self.groups is None:
            self.counts_ = rng.poisson(1.0, (self.n_boot, len(y)))
        else:
            codes = np.asarray(self.groups)
            if len(codes) != len(y):
                raise DataError(f"BootstrapFinalStage: groups has {len(codes)} codes for the {len(y)} rows it is fitted on")
            self.counts_ = rng.poisson(1.0, (self.n_boot, int(codes.max()) + 1))[:, codes]
        self.members_ = [clone(member).fit(X, y, sample_weight=weight * c) for c in self.counts_]
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        """Predictions of the fit on all rows.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Features.

        Returns
        -------
        ndarray of shape (n,)
            The predictions.
        """
        return np.asarray(self.full_.predict(X), dtype=float).reshape(-1)

    def _member_predictions(self, X) -> np.ndarray:
        return np.array([np.asarray(m.predict(X), dtype=float).reshape(-1) for m in self.members_])

    def spread(self, X) -> np.ndarray:
        """Standard deviation of the refits' predictions at new rows.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Features.

        Returns
        -------
        ndarray of shape (n,)
            The standard deviation over the ``n_boot`` refits (ddof=1), the target's units.
        """
        return self._member_predictions(X).std(axis=0, ddof=1)

    def spread_out_of_bag(self, X, rows) -> np.ndarray:
        """Spread at training rows ``rows`` (positions) with features ``X`` (len(rows), d), over the
        refits whose bootstrap weight of that row is 0 (all refits where fewer than 3 left it out).

        Parameters
        ----------
        X : array-like of shape (len(rows), d)
            Features of the training rows ``rows``.
        rows : array-like of shape (len(rows),) of int
            Positions of the rows among those the estimator was fitted on.

        Returns
        -------
        ndarray of shape (len(rows),)
            The standard deviation of the refits' predictions at each row (the target's units).
        """
        pred = self._member_predictions(X)
        out = self.counts_[:, rows] == 0
        enough = out.sum(axis=0) >= 3
        masked = np.where(out, pred, np.nan)
        oob = np.nanstd(np.where(enough, masked, pred), axis=0, ddof=1)
        return oob


def bias_uncertainty(data: EvalData, *, final: str = "linear", n_boot: int = 20, cv: int = 5,
                     scale: str | float | None = "variance", random_state=None) -> np.ndarray:
    """Bootstrap standard deviation of the estimated bias at every row of ``data``, shape (n,), gold scale.

    The R-learner with the propensity known by design (``data.gold_probability``; where absent,
    the share of gold rows on every row, i.e. the gold rows taken as a uniform random draw), its
    final stage ``final`` (a name of :func:`causal_router.models.final_stage`) refitted on
    ``n_boot`` Poisson-bootstrap weights of the cross-fitted residuals. Gold rows get their
    out-of-bag spread. Where the data's queries repeat, the folds and the bootstrap weights are
    drawn by query. The spread of a constant final stage is the same on every row.

    Parameters
    ----------
    data : EvalData
        Gold and preference rows (at least ``2 * cv`` of each).
    final : str, default="linear"
        The final stage, a name of :func:`causal_router.models.final_stage`.
    n_boot : int, default=20
        Bootstrap refits of the final stage.
    cv : int, default=5
        Cross-fitting folds of the outcome model (by query where queries repeat).
    scale : str, float or None, default="variance"
        The gold-to-preference constant, as every estimator of the package takes it: a method of
        :func:`causal_router.data.fitted_scale` (design-weighted where the data carry design
        probabilities), a number (a fitted router's ``scale_``), or None for 1.
    random_state : int, Generator or None, default=None
        Seed of the folds, the models and the bootstrap weights.

    Returns
    -------
    ndarray of shape (n_rows,)
        Bootstrap standard deviation of the estimated bias at each row, gold scale (out of bag
        at gold rows).

    Raises
    ------
    DataError
        With fewer than ``2 * cv`` gold or preference rows.
    """
    from econml.dml import NonParamDML

    data.require_both_sources("bias_uncertainty")
    seed = as_seed(random_state)
    scale = fitted_scale(data, scale)
    outcome = pooled_outcome(data.gain, data.is_gold, scale)
    propensity = data.gold_probability if data.gold_probability is not None else np.full(len(data), data.n_gold / len(data))
    for name, count in (("gold", data.n_gold), ("preference", data.n_preference)):
        if count < 2 * cv:
            raise DataError(f"bias_uncertainty needs at least {2 * cv} {name} rows for {cv}-fold cross-fitting, "
                            f"got {count}")
    groups = repeated_groups(data.query_groups)  # where queries repeat: folds and bootstrap weights by query
    est = NonParamDML(model_y=default_regressor(seed), model_t=KnownPropensity(),
                      model_final=BootstrapFinalStage(final_stage(final, seed), n_boot, seed, groups=groups),
                      discrete_treatment=True, cv=cv if groups is None else fold_splitter(cv, seed, grouped=True),
                      random_state=seed)
    est.fit(outcome, data.treatment, X=data.X, W=propensity.reshape(-1, 1),
            **({} if groups is None else {"groups": groups}))
    model = est.model_final_
    spread = model.spread(data.X)
    gold = np.flatnonzero(data.is_gold)
    spread[gold] = model.spread_out_of_bag(data.X[gold], gold)
    return spread / scale


def decision_value(gain, sd, reference_gain, ratios=DEFAULT_RATIOS) -> np.ndarray:
    """Expected loss of the routing decision at each query, averaged over thresholds, shape (n,).

    Gold scale in, gold scale out.

    Parameters
    ----------
    gain : array-like of shape (n,)
        Predicted gains.
    sd : array-like of shape (n,)
        Their uncertainty (standard deviations, same units).
    reference_gain : array-like of shape (n_reference,)
        Predicted gains of the queries that set the thresholds: the cost weights that send each
        share in ``ratios`` of them to the primary.
    ratios : array-like of float, default=DEFAULT_RATIOS
        Shares of the reference queries sent to the primary (default: 61 shares from 0.2 to
        0.8, :data:`causal_router.evaluate.DEFAULT_RATIOS`).

    Returns
    -------
    ndarray of shape (n,)
        sd * (phi(z) - z Phi(-z)) averaged over the thresholds, z = abs(gain - w) / sd.
    """
    gain, sd = np.asarray(gain, dtype=float), np.asarray(sd, dtype=float)
    thresholds = np.quantile(np.asarray(reference_gain, dtype=float), 1.0 - np.asarray(ratios, dtype=float))
    sd = np.maximum(sd, 1e-12 * max(float(np.std(reference_gain)), 1e-12))
    z = np.abs(gain[:, None] - thresholds[None, :]) / sd[:, None]
    loss = stats.norm.pdf(z) - z * stats.norm.sf(z)
    return sd * loss.mean(axis=1)


def coverage_strata(X, n_strata: int, random_state=None) -> np.ndarray:
    """Cluster label of each row: k-means on the standardised features (constant features dropped).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Features of the rows.
    n_strata : int
        Number of clusters (at least 1, at most the number of distinct rows).
    random_state : int, Generator or None, default=None
        Seed of k-means.

    Returns
    -------
    ndarray of shape (n,) of int
        Cluster label of each row, in 0..n_strata-1.
    """
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0)
    Z = (X[:, sd > 0] - X[:, sd > 0].mean(axis=0)) / sd[sd > 0] if np.any(sd > 0) else np.zeros((len(X), 1))
    n_strata = int(min(max(n_strata, 1), len(np.unique(Z, axis=0))))
    return KMeans(n_strata, n_init=1, random_state=as_seed(random_state)).fit_predict(Z)
