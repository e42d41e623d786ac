"""The average bias: one cross-fitted AIPW estimator, with its interval. This is where it is estimated.

The average bias over rows with features s is theta = E[psi(s) - eta(s) / c] on the gold scale
(psi the gold gain, eta the preference gain, c the gold-to-preference scale constant,
:func:`causal_router.data.scale_constant`). With the gains pooled on the preference scale as o
(gold rows multiplied by c; t = 1 for a gold row) it is the average treatment effect of the
mechanism, divided by c, and its doubly robust (AIPW) score for row i is (Robins, Rotnitzky and
Zhao 1994; the score of econml's ``DRLearner``)::

    phi_i = mu1(s_i) - mu0(s_i) + t_i (o_i - mu1(s_i)) / p(s_i) - (1 - t_i) (o_i - mu0(s_i)) / (1 - p(s_i))

with mu_t(s) = E[o | s, t] (one outcome model per mechanism,
:class:`~causal_router.models.MechanismOutcomes`) and p(s) = P(t = 1 | s), both cross-fitted: each
row's nuisances come from models fitted on the other folds. :class:`AverageBias` reports the mean
of phi / c with a cluster-robust interval (:mod:`causal_router.clusters`; by query where queries
repeat). Every average bias of the package is this one: :meth:`causal_router.BiasEstimator.ate`
(which gives it the learner's propensity and folds), the refutations
(:mod:`causal_router.validate`, through dowhy, which refits it on each perturbed data set) and
the diagnostics' group averages (means of its pseudo-outcomes over a group's rows).

Propensity. Estimated propensities (a model, or the learner's out-of-fold ones) are clipped to
[min_propensity, 1 - min_propensity]. Probabilities known by design (``gold_probability``: gold
rows drawn with those probabilities) are never clipped: clipping them would bias the weights
exactly on the rows the design drew least. Where a known probability is below the clip level an
estimated one would get, an :class:`ExtremeWeightsWarning` says so; the effective number of gold
rows under the 1/p weights, ``gold_ess`` = (sum w)^2 / sum w^2, is reported either way.

The scale constant's uncertainty. With a fitted constant (``scale`` a method name) theta = G - P / c,
G the AIPW mean of the gold gains (gold scale: mu1 and phi's gold part scale with c exactly, since
the gold outcome model is linear in o) and P the AIPW mean of the preference gains (preference
scale). c is estimated from the same rows, so its sampling error moves theta by P / c^2 per unit:
the interval carries it by the delta method. For ``scale="variance"`` (the default; c is a
smooth function of each side's weighted first and second moments) the derivative of c with
respect to a weight on each row is exact, and the standard
error is the cluster-robust one of phi / c + n k dc/dw_i with k = P / c^2 (the linearised
estimator; measured against a 1,000-draw cluster bootstrap of c, G and P together, standard
errors 0.0335 / 0.0335 and 0.0896 / 0.0905 on the generator, 1,500 rows, with the judge's mean gain
0.2 and 3.2, and 0.227 / 0.237 on 60 repeated queries: the same to 0-4%). For ``"amplitude"`` and ``"wasserstein"`` (a range and quantiles: not smooth
in the weights) var = var(mean phi / c) + k^2 var(c) + 2 k cov(G - P / c, c), with var(c) and the
covariance from a cluster bootstrap of c together with G and P (:data:`N_SCALE_BOOTSTRAP`
resamples of whole queries, or rows; the cross-fitted scores held fixed, as in
:mod:`causal_router.clusters`). With fewer than :data:`~causal_router.clusters.MIN_CLUSTERS`
queries the interval is a percentile cluster bootstrap (of the linearised scores for "variance",
of G - P / c for the others). With
``scale=None`` (c = 1) or a constant given as a number, nothing is added and the interval is
that of the scores alone. Where gold rows were chosen by design, c is fitted with the design's
weights (:func:`causal_router.data.fitted_scale`), and so is every bootstrap copy of it.

Paired rows. The judge is cheap, so it often labels the gold rows too (``preference_gain``); then
the judge's gain j is observed on every row and only the gold gain is missing on preference rows.
The score becomes (prediction-powered, as PPI++ and the AIPW estimator of a mean with a
surrogate)::

    phi_i = m(s_i, j_i) + t_i (y_i - m(s_i, j_i)) / p(s_i) - j_i / c

with m(s, j) = E[gold gain | s, j] cross-fitted on the gold rows
(:func:`cross_fitted_paired_means`). The judge's average needs no model (every row has it), and
the gold gain's average leans on the judge wherever the judge predicts it; the scale constant
then matches the gold gains against the judge's gains on every row. Its mean is unbiased for the
same theta whatever m is (m only changes the variance), with p known or consistently estimated.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ._utils import resolve_seed
from ._validation import DataError, as_float_vector
from .clusters import MIN_CLUSTERS, cluster_std_error, clustered_mean
from .data import SCALE_METHODS, scale_constant_weighted, pooled_outcome
from .models import (
    ClippedClassifier,
    KnownPropensity,
    MechanismOutcomes,
    cross_fitting_folds,
    default_propensity,
    repeated_groups,
)

__all__ = ["AverageBias", "ExtremeWeightsWarning", "aipw_pseudo_outcomes", "cross_fitted_outcome_means",
           "cross_fitted_paired_means", "effective_sample_size", "model_means", "N_SCALE_BOOTSTRAP", "PAIRED_MODELS",
           "PAIRED_ROWS_PER_PARAMETER"]

#: Resamples of whole queries (or rows) behind the scale constant's variance.
N_SCALE_BOOTSTRAP = 1000


class ExtremeWeightsWarning(UserWarning):
    """Known design probabilities so small that a few gold rows carry the average (never clipped)."""


def effective_sample_size(weights) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of the weights (n,): n for equal weights.

    Parameters
    ----------
    weights : array-like of shape (n,)
        Non-negative weights.

    Returns
    -------
    float
        The effective sample size; 0.0 for no weights.
    """
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / np.sum(w ** 2)) if len(w) else 0.0


def cross_fitted_outcome_means(X, o, t, folds, outcomes) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted outcome means (mu0, mu1) of every row, two arrays of shape (n,), on the scale
    of ``o`` (n,): ``outcomes`` (an unfitted :class:`~causal_router.models.MechanismOutcomes`, one
    outcome model per mechanism) fitted on the other folds only (``folds``: (train, test) index
    pairs covering every row once).

    Parameters
    ----------
    X : ndarray of shape (n, d)
        The features.
    o : ndarray of shape (n,)
        The outcomes.
    t : ndarray of shape (n,)
        The gold indicator (1 / True = gold).
    folds : sequence of tuple of ndarray
        (train, test) index pairs covering every row once.
    outcomes : MechanismOutcomes
        Unfitted; cloned for each fold.

    Returns
    -------
    mu0 : ndarray of shape (n,)
        The out-of-fold E[o | s, preference].
    mu1 : ndarray of shape (n,)
        The out-of-fold E[o | s, gold].
    """
    mu0, mu1 = np.empty(len(o)), np.empty(len(o))
    for train, test in folds:
        fitted = clone(outcomes).fit(np.column_stack([X[train], t[train]]), o[train])
        mu0[test], mu1[test] = fitted.mechanism_means(X[test])
    return mu0, mu1


def aipw_pseudo_outcomes(o, t, propensity, mu0, mu1) -> tuple[np.ndarray, np.ndarray]:
    """The two parts of the AIPW score of the average bias, each of shape (n,), on the scale of ``o``:

        phi1 = mu1(s) + t (o - mu1(s)) / p(s),   phi0 = mu0(s) + (1 - t) (o - mu0(s)) / (1 - p(s)),

    whose difference phi1 - phi0 is the doubly robust score econml's ``DRLearner`` regresses on s
    (module docstring).

    Parameters
    ----------
    o : ndarray of shape (n,)
        The outcomes.
    t : ndarray of shape (n,)
        The gold indicator (1 / True = gold).
    propensity : ndarray of shape (n,)
        The cross-fitted propensity p(s), in (0, 1).
    mu0, mu1 : ndarray of shape (n,)
        The cross-fitted outcome means of the preference and the gold mechanism.

    Returns
    -------
    phi1 : ndarray of shape (n,)
        The gold part.
    phi0 : ndarray of shape (n,)
        The preference part.
    """
    p = propensity
    return mu1 + t * (o - mu1) / p, mu0 + (1 - t) * (o - mu0) / (1 - p)


class AverageBias(BaseEstimator):
    """The average bias (gold minus preference gain, gold scale) by cross-fitted AIPW, with a
    cluster-robust interval (module docstring).

    Parameters
    ----------
    model_y : regressor, optional
        The preference rows' outcome model inside :class:`~causal_router.models.MechanismOutcomes`
        (default ridge then LightGBM).
    model_t : classifier, optional
        Propensity model P(gold | s) (default regularised logistic regression); not used where
        ``fit`` is given the propensity or the design's probabilities. A
        :class:`~causal_router.models.KnownPropensity` reads the design's probabilities from the
        last column of W (where dowhy puts a common cause named like ``*propensity``): they are then
        known, never clipped, and that column is no feature of the outcome models.
    scale : {"variance", "amplitude", "wasserstein", None} or float
        The gold-to-preference scale constant: fitted on the rows given to ``fit`` by that method
        (with the design's weights where there are design probabilities), its uncertainty carried
        into the interval; None: 1 (the gains are on one scale); a positive number: that
        constant, taken as known.
    cv : int or splitter
        Cross-fitting folds: an integer (stratified by source; by query where queries repeat) or a
        splitter with ``split(X, t[, groups])``.
    min_propensity : float, optional
        Clip estimated propensities to [min_propensity, 1 - min_propensity]; default a tenth of
        the smaller source's share of the rows (at least 1e-6). Known ones are never clipped.
    random_state : int or None
        Seeds the folds, the nuisance models and the bootstraps.

    Attributes
    ----------
    pseudo_outcomes_ : ndarray (n,), the scores phi / c (gold scale); their mean is the estimate.
    gold_part_, preference_part_ : ndarray (n,), phi1 / c (gold scale) and phi0 (preference scale).
    propensity_ : ndarray (n,), the propensity used (out-of-fold; clipped unless known).
    known_propensity_ : bool, whether the propensity was known by design.
    n_clipped_ : int, rows whose estimated propensity was clipped.
    gold_ess_ : float, effective number of gold rows under the 1/p weights.
    scale_ : float, the scale constant c.
    scale_std_error_ : float, its standard error (delta method for "variance", cluster bootstrap
        otherwise; 0 where it is taken as known).
    paired_ : bool, whether the judge's gains on gold rows were used (paired rows).
    paired_models_ : list of str or None, with paired rows the surrogate model chosen in each fold
        (:data:`PAIRED_MODELS`, :func:`cross_fitted_paired_means`).
    clusters_ : ndarray (n,) of int or None, query codes where a query repeats.
    n_clusters_ : int, the units of the standard error (queries, or rows).
    seed_ : int, the seed of this fit.
    """

    def __init__(self, model_y=None, model_t=None, *, scale=None, cv=5, min_propensity: float | None = None,
                 random_state=None):
        self.model_y = model_y
        self.model_t = model_t
        self.scale = scale
        self.cv = cv
        self.min_propensity = min_propensity
        self.random_state = random_state

    def fit(self, Y, T, *, X, W=None, groups=None, gold_probability=None, propensity=None, folds=None,
            outcome_means=None, preference_gain=None) -> "AverageBias":
        """Fit the nuisances and the scores; returns self.

        The signature is econml's (``fit(Y, T, X=..., W=...)``), so that dowhy can refit it on a
        perturbed data set.

        Parameters
        ----------
        Y : array-like (n,)
            Gains, each row on its mechanism's own scale (gold rows on the gold scale).
        T : array-like (n,)
            1 (or True) for a gold row, 0 for a preference row.
        X : array-like (n, d)
            Features.
        W : array-like (n, k), optional
            More features for the nuisances (dowhy's common causes); columns equal to a column of
            X are dropped.
        groups : array-like (n,), optional
            The query of each row: folds keep a query's rows together and the standard error is
            clustered by query where a query repeats.
        gold_probability : array-like (n,), optional
            Known P(gold | s) of a selection design: the propensity, never clipped.
        propensity : array-like (n,), optional
            Out-of-fold propensities already estimated (a learner's), used as given.
        folds : list of (train, test) index pairs, optional
            The cross-fitting folds, where already drawn.
        outcome_means : (mu0, mu1), optional
            Cross-fitted outcome means (:func:`cross_fitted_outcome_means` on these folds, on the
            preference scale), where already computed (not used with paired rows).
        preference_gain : array-like (n,), optional
            Paired rows: the judge's gain (preference scale) on every gold row as well (module
            docstring, "Paired rows"); on preference rows it must be NaN or equal Y.

        Returns
        -------
        self : AverageBias
            The fitted estimator.
        """
        t = np.asarray(T, dtype=float).reshape(-1)
        if not np.isin(t, (0.0, 1.0)).all():
            raise DataError("T must be 0 / 1 (1 = gold)")
        t = t.astype(bool)
        y = as_float_vector(np.asarray(Y, dtype=float).reshape(-1), "Y")
        if isinstance(self.model_t, KnownPropensity) and gold_probability is None and propensity is None:
            if W is None:
                raise DataError("model_t=KnownPropensity() reads the design probabilities from the last column of W, "
                                "and W is missing")
            W = np.asarray(W, dtype=float).reshape(len(y), -1)
            gold_probability, W = W[:, -1], (W[:, :-1] if W.shape[1] > 1 else None)
        F = _features(X, W, len(y))
        if len(t) != len(y):
            raise DataError(f"T has {len(t)} rows for {len(y)} gains")
        if t.all() or not t.any():
            raise DataError("the average bias needs gold (T = 1) and preference (T = 0) rows")
        seed = self.seed_ = resolve_seed(self.random_state)
        self.clusters_ = None if groups is None else pd.factorize(pd.Series(np.asarray(groups, dtype=object)))[0]
        if self.clusters_ is not None and (self.clusters_ < 0).any():
            raise DataError("groups has missing labels")
        repeated = repeated_groups(self.clusters_)
        known = None if gold_probability is None else as_float_vector(gold_probability, "gold_probability")
        if known is not None and not ((known > 0) & (known < 1)).all():
            raise DataError("gold_probability must lie in (0, 1) on every row")
        design = None if known is None else np.where(t, 1 / known, 1 / (1 - known))

        judge = None if preference_gain is None else _paired_judge(preference_gain, y, t)
        # the scale constant (module docstring): gold gains (design-weighted) against the judge's
        # gains, on the preference rows, or on every row where the rows are paired
        if judge is None:
            sides = (y[t], None if design is None else design[t], t, y[~t], None if design is None else design[~t], ~t)
        else:
            sides = (y[t], None if design is None else design[t], t, judge, None, np.ones(len(t), dtype=bool))
        if self.scale is None or isinstance(self.scale, str):
            if self.scale not in SCALE_METHODS:
                raise DataError(f"scale must be one of {SCALE_METHODS} or a number > 0, got {self.scale!r}")
            self.scale_ = scale_constant_weighted(sides[0], sides[3], self.scale, sides[1], sides[4])
        else:
            c = float(self.scale)
            if not (np.isfinite(c) and c > 0):
                raise DataError(f"a numeric scale must be a finite number > 0, got {self.scale!r}")
            self.scale_ = c
        o = pooled_outcome(y, t, self.scale_)

        if folds is None:
            if isinstance(self.cv, (int, np.integer)):
                folds = cross_fitting_folds(F, t, int(self.cv), seed, repeated)
            else:
                folds = list(self.cv.split(F, t) if repeated is None else self.cv.split(F, t, repeated))
        share = min(t.sum(), (~t).sum()) / len(t)
        self.min_propensity_ = self.min_propensity if self.min_propensity is not None else max(1e-6, 0.1 * share)
        self.known_propensity_ = known is not None
        self.n_clipped_ = 0
        if known is not None:
            p = known
            if p[t].min() < self.min_propensity_ or p.max() > 1 - self.min_propensity_:
                warnings.warn(
                    f"design probabilities of gold rows as small as {p[t].min():.3g} (an estimated propensity would be clipped "
                    f"at {self.min_propensity_:.3g}): they are used unclipped, and the average rests on "
                    f"{effective_sample_size(1 / p[t]):.1f} effective gold rows of {int(t.sum())}",
                    ExtremeWeightsWarning, stacklevel=2)
        elif propensity is not None:
            p = as_float_vector(propensity, "propensity")
        else:
            p = np.empty(len(t))
            model = ClippedClassifier(clone(self.model_t) if self.model_t is not None else default_propensity(seed),
                                      self.min_propensity_)
            lo = self.min_propensity_
            for train, test in folds:
                fitted = clone(model).fit(F[train], t[train])
                raw = np.asarray(fitted.estimator_.predict_proba(F[test]))[:, 1]
                self.n_clipped_ += int(np.sum((raw <= lo) | (raw >= 1 - lo)))
                p[test] = fitted.predict_proba(F[test])[:, 1]
        if len(p) != len(t):
            raise DataError(f"the propensity has {len(p)} rows for {len(t)} gains")
        self.propensity_ = p
        self.paired_ = judge is not None
        self.paired_models_ = None
        if judge is None:
            if outcome_means is None:
                outcome_means = cross_fitted_outcome_means(F, o, t.astype(float), folds,
                                                           MechanismOutcomes(self.model_y, random_state=seed))
            mu0, mu1 = outcome_means
            phi1, phi0 = aipw_pseudo_outcomes(o, t.astype(float), p, mu0, mu1)
            self.gold_part_, self.preference_part_ = phi1 / self.scale_, phi0
            self.pseudo_outcomes_ = (phi1 - phi0) / self.scale_
            self._sensitivity_inputs = (o, t, p, mu0, mu1)
        else:  # every row carries the judge's gain: only the gold gain is missing on preference rows
            m, self.paired_models_ = cross_fitted_paired_means(F, judge, y, t, folds, self.model_y, seed)
            self.gold_part_ = m + t * (y - m) / p
            self.preference_part_ = judge
            self._sensitivity_inputs = None
            self.pseudo_outcomes_ = self.gold_part_ - self.preference_part_ / self.scale_
        self.gold_ess_ = effective_sample_size(1 / p[t])
        self.n_clusters_ = len(t) if self.clusters_ is None else int(self.clusters_.max()) + 1
        self._scale_draws = self._scale_influence = None
        self.scale_std_error_ = 0.0
        if self.scale == "variance":  # smooth in the weights: the exact derivative (module docstring)
            self._scale_influence = _variance_scale_influence(sides, self.scale_)
            units = repeated
            self.scale_std_error_ = cluster_std_error(len(t) * self._scale_influence, units)
        elif isinstance(self.scale, str):
            self._scale_draws = self._bootstrap_scale(sides, seed)
            self.scale_std_error_ = float(np.std(self._scale_draws[:, 2], ddof=1))
        self.n_gold_ = int(t.sum())
        return self

    def _bootstrap_scale(self, sides, seed) -> np.ndarray:
        """(B, 3): the means G and P and the constant c on :data:`N_SCALE_BOOTSTRAP` resamples of
        whole queries (rows without repeated queries), the scores held fixed; ``sides``: the gold
        and preference gains behind c, with their design weights (or None) and rows."""
        gold_values, gold_design, gold_rows, pref_values, pref_design, pref_rows = sides
        n = len(self.gold_part_)
        units = self.clusters_ if repeated_groups(self.clusters_) is not None else np.arange(n)
        n_units = int(units.max()) + 1
        rng = np.random.default_rng(np.random.SeedSequence([seed, 27]))
        parts = np.column_stack([self.gold_part_, self.preference_part_])
        block = max(1, min(N_SCALE_BOOTSTRAP, 4_000_000 // max(n, n_units)))  # about 32 MB of counts at a time
        draws = []
        for start in range(0, N_SCALE_BOOTSTRAP, block):
            b = min(block, N_SCALE_BOOTSTRAP - start)
            picks = rng.integers(0, n_units, (b, n_units)) + n_units * np.arange(b)[:, None]
            counts = np.bincount(picks.ravel(), minlength=b * n_units).reshape(b, n_units).astype(float)[:, units]
            gw = counts[:, gold_rows] if gold_design is None else counts[:, gold_rows] * gold_design
            pw = counts[:, pref_rows] if pref_design is None else counts[:, pref_rows] * pref_design
            c = scale_constant_weighted(gold_values, pref_values, self.scale, gw, pw)
            c[((gw > 0).sum(axis=1) < 2) | ((pw > 0).sum(axis=1) < 2)] = np.nan
            means = (counts @ parts) / counts.sum(axis=1, keepdims=True)
            draws.append(np.column_stack([means, c]))
        draws = np.concatenate(draws)
        return draws[np.isfinite(draws).all(axis=1)]

    def result(self, alpha: float = 0.05) -> pd.Series:
        """The estimate with a (1 - alpha) interval.

        The interval is normal with the cluster-robust standard error, widened by the scale
        constant's uncertainty where it is fitted (module docstring); with fewer than
        :data:`~causal_router.clusters.MIN_CLUSTERS` repeated queries it is a percentile cluster
        bootstrap (:func:`causal_router.clusters.clustered_mean`).

        Parameters
        ----------
        alpha : float, default 0.05
            One minus the interval's coverage, in (0, 1).

        Returns
        -------
        Series
            ``estimate``, ``std_error``, ``lower``, ``upper`` (gold scale), ``n_clusters``
            (queries, or rows without repeated queries), ``gold_ess`` (effective number of gold
            rows under the 1/p weights), ``n_gold``, ``scale`` (c) and ``scale_std_error``.
        """
        check_is_fitted(self, "pseudo_outcomes_")
        if not 0 < alpha < 1:
            raise DataError(f"alpha must be in (0, 1), got {alpha!r}")
        phi = self.pseudo_outcomes_
        clusters = repeated_groups(self.clusters_)
        if self._scale_influence is not None:  # phi plus the scale's linear term (mean 0): the delta method
            k = float(np.mean(self.preference_part_)) / self.scale_ ** 2
            phi = phi + len(phi) * k * self._scale_influence
        out = clustered_mean(phi, clusters, alpha=alpha, random_state=self.seed_, warn=False)
        estimate, se, lower, upper = (float(out[k]) for k in ("estimate", "std_error", "lower", "upper"))
        estimate = float(np.mean(self.pseudo_outcomes_))
        draws = self._scale_draws
        if draws is not None and len(draws) > 1:
            c, P = self.scale_, float(np.mean(self.preference_part_))
            k = P / c ** 2
            fixed = draws[:, 0] - draws[:, 1] / c
            cov = np.cov(fixed, draws[:, 2])
            se = float(np.sqrt(max(se ** 2 + k ** 2 * cov[1, 1] + 2 * k * cov[0, 1], 0.0)))
            if clusters is not None and self.n_clusters_ < MIN_CLUSTERS:
                lower, upper = (float(v) for v in np.quantile(draws[:, 0] - draws[:, 1] / draws[:, 2],
                                                              [alpha / 2, 1 - alpha / 2]))
            else:
                z = stats.norm.ppf(1 - alpha / 2)
                lower, upper = estimate - z * se, estimate + z * se
        return pd.Series({"estimate": estimate, "std_error": se, "lower": lower, "upper": upper,
                          "n_clusters": float(self.n_clusters_), "gold_ess": self.gold_ess_,
                          "n_gold": float(self.n_gold_), "scale": self.scale_,
                          "scale_std_error": self.scale_std_error_})

    def gold_mean(self, alpha: float = 0.05) -> pd.Series:
        """The average gold gain E[psi] over the fitted rows (gold scale; with gains in [-1, 1] from
        one model's side, its win rate with ties counted half, as 2 w - 1), by the same AIPW fit:
        the mean of ``gold_part_`` (the gold outcome model's prediction, corrected by the gold
        rows' weighted residuals; with paired rows, the prediction from the judge's gain). It does
        not depend on the scale constant (the gold model is linear in o), so nothing is added for c.

        Parameters
        ----------
        alpha : float, default 0.05
            One minus the interval's level.

        Returns
        -------
        pandas.Series
            ``estimate``, ``std_error``, ``lower``, ``upper`` (gold scale), ``n_clusters``,
            ``gold_ess`` and ``n_gold``, as :meth:`result`: the interval clustered by query where
            queries repeat (a percentile cluster bootstrap under
            :data:`~causal_router.clusters.MIN_CLUSTERS` queries).
        """
        check_is_fitted(self, "gold_part_")
        clusters = repeated_groups(self.clusters_)
        out = clustered_mean(self.gold_part_, clusters, alpha=alpha, random_state=self.seed_, warn=False)
        return pd.Series({"estimate": float(np.mean(self.gold_part_)), "std_error": float(out["std_error"]),
                          "lower": float(out["lower"]), "upper": float(out["upper"]),
                          "n_clusters": float(self.n_clusters_), "gold_ess": self.gold_ess_,
                          "n_gold": float(self.n_gold_)})

    # ------------------------------------------------------------------ econml / dowhy interface
    def effect(self, X=None, T0=0, T1=1) -> np.ndarray:
        """The average bias on the scale of Y's preference rows (c times the gold-scale estimate),
        repeated for each of the n rows of X, shape (n,): what dowhy averages into its estimate.

        Parameters
        ----------
        X : array-like of shape (n, d), optional
            Rows (only their number is used); None: one row.
        T0, T1 : int, default 0, 1
            econml's treatment levels; unused (the effect is of gold over preference).

        Returns
        -------
        ndarray of shape (n,)
            The average bias times c on every row (n = 1 without X).
        """
        check_is_fitted(self, "pseudo_outcomes_")
        n = 1 if X is None else len(X)
        return np.full(n, float(np.mean(self.pseudo_outcomes_)) * self.scale_)

    def sensitivity(self, alpha: float = 0.05, c_y: float = 0.05, c_t: float = 0.05) -> dict:
        """econml's omitted-variable-bias sensitivity of the estimate (Chernozhukov et al. 2022;
        ``econml.validate.sensitivity_analysis``, the figures of ``DRLearner.sensitivity_interval``
        computed on this fit's nuisances), on the gold scale: theta, its bounds and confidence
        bounds with confounding of strength ``c_y`` (outcome) and ``c_t`` (treatment), and the
        robustness values (the strength at which the bounds, or the interval, reach 0).

        Available for unpaired rows only (a fit without ``preference_gain``).

        Parameters
        ----------
        alpha : float, default 0.05
            One minus the confidence level of the confidence bounds.
        c_y : float, default 0.05
            The strength of the omitted confounding on the outcome, in [0, 1) (econml's ``c_y``).
        c_t : float, default 0.05
            Its strength on the treatment, in [0, 1) (econml's ``c_t``).

        Returns
        -------
        dict
            ``theta``, ``theta_lower``, ``theta_upper``, ``ci_lower``, ``ci_upper`` (gold scale),
            ``robustness_value``, ``robustness_value_ci``, ``c_y`` and ``c_t``.
        """
        from econml.validate.sensitivity_analysis import RV, dr_sensitivity_values, sensitivity_interval

        check_is_fitted(self, "pseudo_outcomes_")
        if self._sensitivity_inputs is None:
            raise DataError("the sensitivity analysis is available for unpaired rows only (fit without preference_gain)")
        o, t, p, mu0, mu1 = self._sensitivity_inputs
        tf = t.astype(float)
        y_pred = np.column_stack([mu0 + (1 - tf) * (o - mu0) / (1 - p), mu1 + tf * (o - mu1) / p])
        params = dr_sensitivity_values(o, tf.reshape(-1, 1), y_pred, np.column_stack([1 - p, p]))
        args = (float(params.theta[0]), float(params.sigma[0]), float(params.nu[0]), params.cov[0], alpha)
        c = self.scale_
        tl, tu = sensitivity_interval(*args, c_y, c_t, 1.0, interval_type="theta")
        cl, cu = sensitivity_interval(*args, c_y, c_t, 1.0, interval_type="ci")
        return {"theta": args[0] / c, "theta_lower": float(tl) / c, "theta_upper": float(tu) / c,
                "ci_lower": float(cl) / c, "ci_upper": float(cu) / c,
                "robustness_value": float(RV(*args, interval_type="theta")),
                "robustness_value_ci": float(RV(*args, interval_type="ci")), "c_y": c_y, "c_t": c_t}


def model_means(data, *, gold_probability=None, preference_gain=None, alpha: float = 0.05, cv: int = 5,
                model_y=None, random_state=None) -> pd.DataFrame:
    """Each model's and each pair's average gold-scale gain, with clustered intervals, by
    :class:`AverageBias` (:meth:`AverageBias.gold_mean`): the numbers an evaluation of K models
    reports, from few gold and many judge rows.

    For model k, the rows that compare k (either side) are turned so that the gain is k's over its
    opponent, and the average gold gain over those rows is estimated (with verdicts in [-1, 1],
    2 w - 1 for k's win rate w, ties half): it depends on the opponents k met, as a win rate does.
    For a pair (a, b) (sorted names), the average gold gain of a over b over that pair's rows.
    Each is one AIPW fit on its rows (features ``data.X``, the judge's rows as the surrogate, the
    propensity estimated or the design's, folds and interval by query where queries repeat).

    Parameters
    ----------
    data : PairwiseData
        The comparisons (:class:`~causal_router.pairwise.PairwiseData`), gold and judge rows.
    gold_probability : array-like of shape (n,), optional
        Known P(gold | s) of each row where gold rows were drawn by a design.
    preference_gain : array-like of shape (n,), optional
        Paired rows: the judge's gain of ``model_a`` over ``model_b`` on gold rows as well (NaN or
        equal to the gain on judge rows).
    alpha : float, default 0.05
        One minus the intervals' level.
    cv : int, default 5
        Cross-fitting folds of each fit.
    model_y : regressor, optional
        The outcome model of :class:`AverageBias`.
    random_state : int or None
        Seeds every fit (the same seed for each).

    Returns
    -------
    pandas.DataFrame
        One row per model, then one per pair; columns ``kind`` ("model" or "pair"), ``name``
        (the model, or "a|b"), ``estimate``, ``std_error``, ``lower``, ``upper`` (gold scale),
        ``n_rows``, ``n_gold``, ``n_clusters`` and ``gold_ess``. Where a model or pair has fewer
        than ``2 * cv`` gold or judge rows the figures are NaN, with a warning naming them.
    """
    seed = resolve_seed(random_state)
    a, b = np.asarray(data.model_a, dtype=object), np.asarray(data.model_b, dtype=object)
    n = len(a)
    known = None if gold_probability is None else as_float_vector(gold_probability, "gold_probability")
    judge = None if preference_gain is None else np.asarray(preference_gain, dtype=float).reshape(-1)
    for name, arr in (("gold_probability", known), ("preference_gain", judge)):
        if arr is not None and len(arr) != n:
            raise DataError(f"{name} has {len(arr)} rows for {n} comparisons")
    groups = None if data.query_id is None else np.asarray(data.query_id, dtype=object)
    models = sorted(set(a) | set(b), key=str)
    pairs = sorted({tuple(sorted((x, y), key=str)) for x, y in zip(a, b)}, key=lambda p: (str(p[0]), str(p[1])))
    subsets = [("model", str(m), (a == m) | (b == m), np.where(a == m, 1.0, -1.0)) for m in models]
    subsets += [("pair", f"{x}|{y}", ((a == x) & (b == y)) | ((a == y) & (b == x)), np.where(a == x, 1.0, -1.0))
                for x, y in pairs]
    records, thin = [], []
    for kind, name, rows, sign in subsets:
        t = data.is_gold[rows]
        record = {"kind": kind, "name": name, "n_rows": int(rows.sum()), "n_gold": int(t.sum())}
        if t.sum() < 2 * cv or (~t).sum() < 2 * cv:
            thin.append(name)
            records.append({**record, **dict.fromkeys(
                ("estimate", "std_error", "lower", "upper", "n_clusters", "gold_ess"), np.nan)})
            continue
        fit = AverageBias(model_y, scale=None, cv=cv, random_state=seed).fit(
            (sign * data.gain)[rows], t, X=data.X[rows], groups=None if groups is None else groups[rows],
            gold_probability=None if known is None else known[rows],
            preference_gain=None if judge is None else (sign * judge)[rows])
        out = fit.gold_mean(alpha)
        records.append({**record, **{k: float(out[k]) for k in ("estimate", "std_error", "lower", "upper",
                                                                   "n_clusters", "gold_ess")}})
    if thin:
        warnings.warn(f"fewer than {2 * cv} gold or judge rows for {thin}: their averages are NaN "
                      f"(lower cv, or label more of their rows)", UserWarning, stacklevel=2)
    return pd.DataFrame(records, columns=["kind", "name", "estimate", "std_error", "lower", "upper", "n_rows",
                                          "n_gold", "n_clusters", "gold_ess"])


#: The surrogate models m(s, j) of paired rows, simplest first (:func:`cross_fitted_paired_means`).
PAIRED_MODELS = ("judge", "judge+eta", "judge+eta+features")
#: Training gold rows per coefficient before a richer surrogate model is a candidate. Without it,
#: on a pair with 26 gold rows and 20 features (``make_multi_model(1000, 20, random_state=0)``,
#: gold rows ``rng([0, 5]).random(n) < 0.1``, large against medium) the features model won two
#: inner CVs by chance and the pair's standard error was 0.44 (0.19 without the judge's labels);
#: with it, 0.089 (``benchmarks/model_means.py``, seed 0).
PAIRED_ROWS_PER_PARAMETER = 10


def cross_fitted_paired_means(X, judge, y, t, folds, model_y=None,
                              random_state=None) -> tuple[np.ndarray, list[str]]:
    """Cross-fitted m(s, j) = E[gold gain | s, judge's gain j] of every row, gold scale.

    On the gold rows of the other folds, one of three nested linear models (:data:`PAIRED_MODELS`):
    ``judge`` gold = a + b j (the regression estimator; PPI++'s power-tuned prediction is this
    line); ``judge+eta`` adds b' eta(s), eta(s) = E[j | s] (``model_y``, fitted on every row of the
    other folds: the judge labels them all); and ``judge+eta+features`` adds z(s) beta, z the
    features standardised on the gold rows, beta ridge with its penalty by leave-one-out CV after
    a, b and b' are partialled out (as :class:`~causal_router.models.MechanismOutcomes` fits its
    gold model on mu0(s)). In each fold the model is chosen by 5-fold CV of its squared error on
    that fold's training gold rows, the simplest within one standard error of the best, among the
    models with at least :data:`PAIRED_ROWS_PER_PARAMETER` training gold rows per coefficient (the
    judge line always): a few dozen gold rows cannot carry d features, and m only moves the
    variance (the mean is unbiased for any m fitted on other folds).

    Parameters
    ----------
    X : ndarray of shape (n, d)
        The features.
    judge : ndarray of shape (n,)
        The judge's gain on every row, preference scale.
    y : ndarray of shape (n,)
        The gains (read on gold rows).
    t : ndarray of bool, shape (n,)
        True on the gold rows.
    folds : sequence of tuple of ndarray
        (train, test) index pairs covering every row once.
    model_y : regressor, optional
        The model of eta(s) = E[j | s] (cloned per fold); None: ridge then LightGBM
        (:class:`~causal_router.models.RidgeThenBoosting`).
    random_state : int, numpy Generator or None
        Seeds the default ``model_y`` and the inner folds.

    Returns
    -------
    m : ndarray of shape (n,)
        The out-of-fold m(s, j), gold scale.
    chosen : list of str
        The model chosen in each fold (a name of :data:`PAIRED_MODELS`).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    from .models import RidgeThenBoosting

    def fit(Z, z, target):
        """(coef of Z, beta of z or None): a, b, b' unpenalised, beta ridge (LOO penalty)."""
        if z is None:
            return np.linalg.lstsq(Z, target, rcond=None)[0], None
        proj = np.linalg.lstsq(Z, np.column_stack([z, target]), rcond=None)[0]
        rz, ry = z - Z @ proj[:, :-1], target - Z @ proj[:, -1]
        beta = RidgeCV(alphas=np.logspace(-2, 4, 25), fit_intercept=False).fit(rz, ry).coef_
        return np.linalg.lstsq(Z, target - z @ beta, rcond=None)[0], beta

    def predict(coef, beta, Z, z):
        return Z @ coef + (0.0 if beta is None else z @ beta)

    m = np.empty(len(y))
    chosen = []
    for train, test in folds:
        model = clone(model_y) if model_y is not None else RidgeThenBoosting(random_state=random_state)
        model.fit(X[train], judge[train])
        eta = np.asarray(model.predict(X), dtype=float).reshape(-1)  # in-fold on train rows, out-of-fold on test
        rows = train[t[train]]
        scaler = StandardScaler().fit(X[rows])
        design = {"judge": lambda r: (np.column_stack([np.ones(len(r)), judge[r]]), None),
                  "judge+eta": lambda r: (np.column_stack([np.ones(len(r)), judge[r], eta[r]]), None),
                  "judge+eta+features": lambda r: (np.column_stack([np.ones(len(r)), judge[r], eta[r]]),
                                                   scaler.transform(X[r]))}
        # a candidate needs PAIRED_ROWS_PER_PARAMETER training gold rows per coefficient
        size = {"judge": 2, "judge+eta": 3, "judge+eta+features": 3 + X.shape[1]}
        candidates = [n for n in PAIRED_MODELS if n == "judge" or len(rows) >= PAIRED_ROWS_PER_PARAMETER * size[n]]
        name = "judge"
        if len(candidates) > 1:  # at least 30 training gold rows: an inner CV can choose
            inner = KFold(5, shuffle=True, random_state=resolve_seed(random_state))
            errors = {name: np.empty(len(rows)) for name in candidates}
            for fit_idx, val_idx in inner.split(rows):
                for name in candidates:
                    Zf, zf = design[name](rows[fit_idx])
                    coef, beta = fit(Zf, zf, y[rows[fit_idx]])
                    Zv, zv = design[name](rows[val_idx])
                    errors[name][val_idx] = (y[rows[val_idx]] - predict(coef, beta, Zv, zv)) ** 2
            means = {name: float(np.mean(e)) for name, e in errors.items()}
            best = min(means, key=means.get)
            limit = means[best] + float(np.std(errors[best], ddof=1)) / np.sqrt(len(rows))
            name = next(n for n in candidates if means[n] <= limit)
        chosen.append(name)
        Zf, zf = design[name](rows)
        coef, beta = fit(Zf, zf, y[rows])
        Zt, zt = design[name](test)
        m[test] = predict(coef, beta, Zt, zt)
    return m, chosen


def _paired_judge(preference_gain, y, t) -> np.ndarray:
    """The judge's gain on every row (n,): ``preference_gain`` on gold rows (finite on each), Y on
    preference rows (where ``preference_gain`` must be NaN or equal it)."""
    j = np.asarray(preference_gain, dtype=float).reshape(-1)
    if len(j) != len(y):
        raise DataError(f"preference_gain has {len(j)} rows for {len(y)} gains")
    missing = int(np.sum(~np.isfinite(j[t])))
    if missing:
        raise DataError(f"preference_gain is missing (NaN or infinite) on {missing} of {int(t.sum())} gold rows: "
                        "paired rows need the judge's gain on every gold row (or pass none)")
    off = ~t & np.isfinite(j) & (j != y)
    if off.any():
        raise DataError(f"preference_gain differs from the gain on {int(off.sum())} preference rows "
                        f"(first: row {int(np.flatnonzero(off)[0])}); leave it NaN there")
    return np.where(t, j, y)


def _variance_scale_influence(sides, c: float) -> np.ndarray:
    """dc / dw_i (n,): the derivative of the "variance" scale constant c = sd_pref / sd_gold (each
    side's standard deviation under its design weights d) with respect to a weight w_i multiplying
    row i, at w = 1. For side s with total weight D_s, mean m_s and variance v_s:
    d sd_s / dw_i = d_i ((x_i - m_s)^2 - v_s) / (2 sd_s D_s), and
    dc / dw_i = c (d sd_pref / dw_i / sd_pref - d sd_gold / dw_i / sd_gold). Their sum is 0 (c does not
    change when every weight does)."""
    gold_values, gold_design, gold_rows, pref_values, pref_design, pref_rows = sides
    out = np.zeros(len(gold_rows))
    for values, design, rows, sign in ((pref_values, pref_design, pref_rows, 1.0),
                                       (gold_values, gold_design, gold_rows, -1.0)):
        d = np.ones(len(values)) if design is None else design
        m = np.average(values, weights=d)
        v = np.average((values - m) ** 2, weights=d)
        out[rows] += sign * c * d * ((values - m) ** 2 - v) / (2 * v * d.sum())
    return out


def _features(X, W, n: int) -> np.ndarray:
    """The nuisances' features: the columns of W not equal to a column of X, then X (n, d): X
    last, where :class:`~causal_router.models.DuplicateAwareKFold` looks for the query's features."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or len(X) != n:
        raise DataError(f"X must have shape (n, d) with n = {n} rows, got {X.shape}")
    if W is None:
        return X
    W = np.asarray(W, dtype=float).reshape(n, -1)
    extra = [j for j in range(W.shape[1]) if not any(np.array_equal(W[:, j], X[:, i]) for i in range(X.shape[1]))]
    return np.column_stack([W[:, extra], X]) if extra else X
