"""The preference bias as a conditional average treatment effect. This is where it is estimated.

Pool the gold and preference rows as (s, t, o): query features s, treatment t = 1 for a gold
evaluation and 0 for a preference one, observed gain o (gold rows put on the preference scale
by the fitted constant ``scale_`` = c, see :func:`causal_router.data.scale_constant`). Under unconfoundedness and positivity the bias

    Delta(s) = E[o(1) - o(0) | s] = c * psi(s) - eta(s)      (preference scale)

is a CATE; :class:`BiasEstimator` reports it divided by c, on the gold scale.

Learners (all econml, nuisances cross-fitted with folds stratified by source):

- ``"r"`` (default): R-learner, :class:`econml.dml.NonParamDML`: minimise
  sum [(o - mu(s)) - (t - p(s)) Delta(s)]^2, i.e. regress (o - mu) / (t - p) on s with weights
  (t - p)^2. Default final stage (``"stack"``, :class:`~causal_router.models.StackedFinalStage`):
  a non-negative combination of a constant (one global bias), ridge on the raw and on
  standardised features, weighted boosted trees and an additive model (boosted stumps), with
  weights fitted to their out-of-fold predictions by the weighted squared error, which for this
  regression is the R-loss; the stack's departure from the constant is used only as far as
  held-out evidence supports it (the non-negative garrote at one standard error of its nested
  out-of-fold calibration slope, clustered by query: :func:`~causal_router.models.evidence_share`).
  It adapts inside ``fit`` to the data it is given: where the data show no heterogeneity the
  constant takes the weight and the router falls back to a global correction; where the bias is
  sparse and nonlinear the trees take it; where candidates are equally good it averages them.
  Why a stack and not one final stage: no single one is best across the settings of the
  bias-learner suite (``benchmarks/bias_suite.py``), and the stack stays near the best of them on
  each (table and regret: :doc:`/results`, "The bias learner suite").
- ``"dr"``: DR-learner, :class:`econml.dr.DRLearner`, pseudo-outcome
  phi = (t - p) / (p (1 - p)) (o - mu_t(s)) + mu_1(s) - mu_0(s) regressed on s (same default
  final stage).
- ``"forest"``: :class:`econml.dml.CausalForestDML` (honest generalised random forest).
- ``"linear"``: :class:`econml.dr.LinearDRLearner` (linear final, statsmodels inference).
- ``"auto"``: the R-learner whose final stage is the single candidate of the stack with the
  lowest out-of-fold R-loss (each fitted on K-1 folds of the cross-fitted residuals, scored on
  the held-out fold: econml's :class:`~econml.score.RScorer` criterion without giving up a
  validation split). Picking one is noisier than combining them, which is why it is not the
  default. The DR family is not among the candidates: with a few percent of gold rows its
  pseudo-outcomes carry weights of 1/p (about 50) and its final stage is the noisiest.

With n gold rows among n + m, p(s) is about n / (n + m) everywhere: an extreme-propensity
regime. Estimated propensities are clipped to [min_propensity, 1 - min_propensity] and the number
of clipped rows is reported (``n_clipped_``); probabilities known by design (``gold_probability``)
are never clipped (:mod:`causal_router.average`).

Cost. In the few-percent-gold regime the final-stage weights (t - p)^2 are about 1 on gold rows
and p^2 on preference rows, so preference rows beyond what the nuisances need buy nothing. The
bias model is fitted on every gold row and at most max(PREFERENCE_ROWS_MIN,
PREFERENCE_ROWS_PER_GOLD * n_gold) = max(50,000, 20 n_gold) preference rows, drawn uniformly
with ``random_state`` (``sample_index_``); the router's gain model still sees every row.
Subsampling on the source leaves the CATE unchanged (it changes P(t | s), not E[o | s, t]). The
R-learner's effective sample for the bias is about N p (1 - p) = n_gold r / (1 + r) with r
preference rows per gold row: r = 20 keeps 95% of it, and routing lost nothing down to ten
times fewer preference rows than the cap (:doc:`/results`, "Speed").

Threads. With ``n_jobs`` of 2 or more the outcome models of :meth:`ate` are fitted in a second
thread while econml fits the learner and the stack's folds run on up to ``n_jobs`` threads
(``n_jobs=None`` is one thread, as in scikit-learn, unless a
``joblib.parallel_config(n_jobs=...)`` context says otherwise); BLAS runs one thread per task
(its n x d matrices are too small to share: a two-thread BLAS spent more time synchronising).
The estimates do not depend on the number of threads.

Queries. On real evaluation data one query carries several rows (one per model pair, one per
vote); they share the query and are not independent. Where the data name each row's query
(``EvalData.query_id``, or ``groups=`` in ``fit``) and a query repeats, every fold-based step keeps
each query's rows in one fold, so that no model predicts a row from another row of its query:
econml's nuisance folds (``StratifiedGroupKFold`` by source, passed to econml with ``groups``), the
AIPW outcome models of :meth:`BiasEstimator.ate` (the same folds), the stacked final stage's
out-of-fold fits (:class:`~causal_router.models.StackedFinalStage`, like any final stage with a
``groups`` parameter, receives the training rows' query codes in it, since econml fits a final
stage without groups), the
selection of ``learner="auto"`` and the refits of ``inference="bootstrap"`` (whole queries drawn
with replacement; the copies of a query share a fold). :meth:`BiasEstimator.ate` and every average
of ``pseudo_outcomes_`` are then clustered by query (:mod:`causal_router.clusters`): where rows of
a query move together, an interval with rows as units is too narrow (coverage by query and by
row: :doc:`/results`, "Routing quality"). Without query ids, or with one row
per query, the rows are the units (the folds are ``StratifiedKFold``'s).

The average bias (:meth:`BiasEstimator.ate`, and every average of the bias over rows or groups
built from ``pseudo_outcomes_``) does not come from the learner's CATE model: it is
:class:`~causal_router.average.AverageBias`, a cross-fitted AIPW estimate with its own outcome
model for each mechanism and the learner's propensity (the design's, unclipped, where known),
with the scale constant's uncertainty in its interval, so it is the same, and valid where gold
rows are selected on the features, whatever learner routes. An average of the CATE model's
predictions is biased wherever the final stage is misspecified (coverage on IHDP and the
generator: :doc:`/results`, "The average bias where gold rows are not a random draw, and IHDP";
the superseded measurements: "History of measurements" there).
"""

from __future__ import annotations

import importlib
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from ._parallel import thread_count
from ._utils import resolve_seed
from ._validation import DataError, check_features
from .average import AverageBias, cross_fitted_outcome_means
from .clusters import MIN_CLUSTERS, FewClustersWarning, cluster_std_error
from .data import EvalData, as_eval_data, fitted_scale, pooled_outcome
from .models import (
    FINAL_STAGES,
    STACK_CANDIDATES,
    ClippedClassifier,
    KnownPropensity,
    StackedFinalStage,
    MechanismOutcomes,
    cross_fitting_folds,
    default_propensity,
    default_regressor,
    final_stage,
    fold_splitter,
    out_of_fold_predictions,
    repeated_groups,
)

__all__ = ["BiasEstimator", "LEARNERS", "Learner", "OverlapError", "N_BOOTSTRAP", "econml_params", "fitted_final_stage",
           "describe_correction"]

@dataclass(frozen=True)
class Learner:
    """A CATE learner: its econml class (module path) and the estimation family.

    Parameters
    ----------
    econml_path : str
        The econml class, as ``"module.Class"`` (e.g. ``"econml.dml.NonParamDML"``).
    family : {"r", "dr"}
        "r": the orthogonal / R-learner loss, with outcome nuisance E[o | s]; "dr": doubly robust
        pseudo-outcomes, with outcome nuisances E[o | s, t].
    final_stage : bool
        Whether the class takes a ``model_final``.
    intervals : bool
        Whether it gives ``effect_interval`` without bootstrap.
    """

    econml_path: str
    family: str
    final_stage: bool  # takes a model_final
    intervals: bool    # effect_interval without bootstrap

    def econml_class(self):
        module, name = self.econml_path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)


#: The one registry of learners: name -> econml class and settings.
LEARNERS = {
    "r": Learner("econml.dml.NonParamDML", "r", True, False),
    "auto": Learner("econml.dml.NonParamDML", "r", True, False),
    "dr": Learner("econml.dr.DRLearner", "dr", True, False),
    "forest": Learner("econml.dml.CausalForestDML", "r", False, True),
    "linear": Learner("econml.dr.LinearDRLearner", "dr", False, True),
}
INTERVAL_LEARNERS = tuple(k for k, v in LEARNERS.items() if v.intervals)
#: CausalForestDML's settings for learner "forest".
FOREST_SETTINGS = {"n_estimators": 200, "min_samples_leaf": 10}


def econml_params(learner: str, *, model_y, model_t, model_final, min_propensity: float, cv, random_state) -> dict:
    """Keyword arguments of the econml class of ``learner`` (:data:`LEARNERS`), given the nuisance
    models, the final stage (ignored by learners without one), the propensity clip and the
    cross-fitting folds (an int or a splitter).

    Parameters
    ----------
    learner : str
        A key of :data:`LEARNERS`.
    model_y : regressor
        The outcome nuisance (E[o | s] for the "r" family, E[o | s, t] for "dr").
    model_t : classifier
        The propensity model P(gold | s).
    model_final : regressor or None
        The final stage, for learners that take one.
    min_propensity : float
        The propensity clip of the "dr" family (the "r" family clips in ``model_t``).
    cv : int or splitter
        The cross-fitting folds.
    random_state : int or None
        econml's seed.

    Returns
    -------
    dict
        The keyword arguments of the econml class.
    """
    spec = LEARNERS[learner]
    common = {"cv": cv, "random_state": random_state}
    if spec.family == "r":
        params = {"model_y": model_y, "model_t": model_t, "discrete_treatment": True, **common}
        if spec.final_stage:
            params["model_final"] = model_final
        if learner == "forest":
            params.update(FOREST_SETTINGS)
        return params
    params = {"model_propensity": model_t, "model_regression": model_y, "min_propensity": min_propensity, **common}
    if spec.final_stage:
        params["model_final"] = model_final
    return params
_MIN_ROWS_PER_FOLD = 2
_UNCLIPPED = 1e-12  # econml's DRLearner clips at a positive floor; known probabilities sit far above it
_NO_OVERLAP_AUC = 0.99
#: Preference rows the bias model keeps at most: max(PREFERENCE_ROWS_MIN, PREFERENCE_ROWS_PER_GOLD * n_gold).
PREFERENCE_ROWS_MIN = 50_000
PREFERENCE_ROWS_PER_GOLD = 20
#: Refits behind ``inference="bootstrap"``.
N_BOOTSTRAP = 100
_EFFECT_BLOCK = 1 << 16  # rows per block in effect(): bounds the copies of a large X
logger = logging.getLogger("causal_router")


class OverlapError(DataError):
    """Gold and preference query populations do not overlap (positivity fails)."""


class BiasEstimator(BaseEstimator):
    """Estimate the preference bias Delta(s) = psi(s) - eta(s) with an econml meta-learner.

    Parameters
    ----------
    learner : {"r", "auto", "dr", "forest", "linear"}
        Which CATE learner (module docstring). The default "r" measured best across the
        generator and the two real data sets (README, "Measured").
    model_y : regressor, optional
        Nuisance model of E[o | s] (R family) or E[o | s, t] (DR family). Default LightGBM.
    model_t : classifier, optional
        Propensity model P(t = 1 | s). Default regularised logistic regression. Where the data
        carry ``gold_probability`` (gold rows chosen by a design with known probabilities) those
        are the propensity (:class:`~causal_router.models.KnownPropensity`) and ``model_t`` is not used.
    model_final : regressor taking ``sample_weight``, or a name in
        :data:`~causal_router.models.FINAL_STAGES`, optional
        Final stage for ``"r"`` and ``"dr"`` (default ``"stack"``: the non-negative stack of
        the candidates, module docstring); for ``"auto"`` a fixed final stage skips the
        selection. Ignored by ``"forest"`` and ``"linear"``. A final stage with a ``groups``
        parameter has it set to the training rows' query codes before fitting (module docstring,
        "Queries").
    scale : {"variance", "amplitude", "wasserstein", None} or float
        How the gold-to-preference scale constant ``scale_`` is fitted on the training rows
        (:func:`causal_router.data.scale_constant`; None: 1), or the constant itself (a positive
        number fitted elsewhere: the distributed fit passes the constant of every row).
    cv : int
        Cross-fitting folds (stratified by source; by query where queries repeat); also the folds
        of the auto selection and of the stacked final stage.
    min_propensity : float, optional
        Clip propensities to [min_propensity, 1 - min_propensity]. Default: a tenth of the
        smaller source's share (at least 1e-6), so that clipping bites only where the
        propensity model puts a row far below the overall share of gold rows.
    inference : {None, "bootstrap"}
        ``"bootstrap"`` makes :meth:`effect_interval` available for every learner (:data:`N_BOOTSTRAP`
        = 100 refits of the learner: slow; pivot intervals, as econml's bootstrap). The resamples
        draw whole queries where query ids are known, else rows within each source; each refit's
        folds keep the copies of a query (or row) together. Seeded by ``random_state``.
        ``"forest"`` and ``"linear"`` have intervals without it (econml's, not clustered by query).
    use_ray : bool
        Fit the cross-fitting folds as Ray tasks (econml's ``use_ray``; extra ``[ray]``) on the
        cluster ``ray.init(address=...)`` connected to, or a local one. Same result as without.
    n_jobs : int or None
        Most threads ``fit`` starts (the outcome models of :meth:`ate` beside the learner, the
        folds of the stacked final stage), read as scikit-learn reads it: None is 1 unless a
        ``joblib.parallel_config(n_jobs=...)`` context says otherwise, -1 is every core. The
        estimates do not depend on it (module docstring, "Wall time").
    random_state : int or None
        Seeds every random step of the fit (folds, nuisance models, the final stage); None draws
        fresh entropy, as in scikit-learn.

    Attributes
    ----------
    estimator_ : the fitted econml estimator (for experts).
    final_stage_ : str, name of the final stage in use (one of ``FINAL_STAGES``, "custom", or
        the learner's own: "forest" / "linear").
    selection_ : DataFrame or None, what the final stage chose: the candidates with their
        out-of-fold R-loss (mean per row); for the default stack, their stacking weight
        (``stack_weight``) and their weight in the bias model in use (``weight``: the share of
        the stack's heterogeneity times the stacking weight, plus 1 - share on the constant),
        and a row ``stack`` with the nested stack's R-loss and the share; for ``"auto"``, which
        was chosen.
    heterogeneity_ : Series or None, why (default stack only): the evidence behind the share of
        its heterogeneous part in use (``share``, the held-out calibration ``slope`` of its
        departure from the constant, ``slope_std_error``, ``z``, ``threshold``, the
        out-of-fold R-losses of the constant and the stack and their paired difference with its
        standard error, ``n_clusters``, ``n_repeats``; :class:`~causal_router.models.StackedFinalStage`).
    correction_ : str or None, the same in one sentence (:func:`describe_correction`); the
        diagnostics report prints it.
    judge_oof_ : ndarray (len(``sample_index_``),), the corrected judge's out-of-fold prediction of
        the gold gain, gold scale (the preference outcome model, cross-fitted, plus the final
        stage's out-of-fold bias estimate; NaN for a final stage without one): the input of the
        weak-judge fallback (:func:`causal_router.router.judge_evidence`).
    sample_index_ : ndarray, the training rows the bias model used (all of them unless the
        preference rows exceed the cap in the module docstring, "Cost"); ``propensity_`` and
        ``pseudo_outcomes_`` refer to these rows.
    propensity_ : ndarray (n,), out-of-fold propensities of the training rows (clipped).
    n_clipped_ : int, training rows whose propensity was clipped.
    overlap_auc_ : float, out-of-fold AUC of the propensity for telling gold from preference rows.
    known_propensity_ : bool, whether the propensity was known by design (``gold_probability``).
    scale_ : float, gold-to-preference scale constant fitted on the training rows.
    n_features_in_, feature_names_in_ : the training features (names of a DataFrame's columns,
        or ``x0 .. x{d-1}``).
    pseudo_outcomes_ : ndarray (n,), cross-fitted AIPW pseudo-outcomes (gold scale) behind :meth:`ate`
        and every average of the bias over rows or groups: their mean over any set of training rows
        estimates the average bias there (:meth:`ate` says under which assumptions).
    overlap_ : Series, the overlap figures :meth:`ate` reports next to the estimate.
    query_groups_ : ndarray (n,) of int or None, the query code of each row in ``sample_index_``
        (None without query ids); folds and intervals are grouped by it where a query repeats.
    bootstrap_estimators_ : list or None, the refits of ``inference="bootstrap"``.
    seed_ : int, the seed of this fit (``random_state``, or one drawn from fresh entropy where it is
        None): everything the fit seeds derives from it, and so does :meth:`ate`'s cluster bootstrap.
    """

    def __init__(
        self,
        learner: str = "r",
        *,
        model_y=None,
        model_t=None,
        model_final=None,
        scale: str | None = "variance",
        cv: int = 5,
        min_propensity: float | None = None,
        inference: str | None = None,
        use_ray: bool = False,
        n_jobs: int | None = None,
        random_state=None,
    ):
        self.learner = learner
        self.model_y = model_y
        self.model_t = model_t
        self.model_final = model_final
        self.scale = scale
        self.cv = cv
        self.min_propensity = min_propensity
        self.inference = inference
        self.use_ray = use_ray
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, *, source=None, gold_probability=None, groups=None) -> "BiasEstimator":
        """Fit the bias model on pooled gold and preference rows; returns self.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or an :class:`EvalData` (then no y / source)
            Query features (finite numbers).
        y : array-like of shape (n,)
            Observed gains, each row on the scale of the mechanism that evaluated it.
        source : array-like of shape (n,)
            "gold" / "preference" labels, or booleans / 0-1 (True = gold).
        gold_probability : array-like of shape (n,), optional
            Known probability of each row's gold label under a selection design; used as the
            propensity instead of estimating one.
        groups : array-like of shape (n,), optional
            The query of each row (an EvalData's ``query_id`` does the same; both given, they must
            agree). Where a query carries several rows, every fold-based step keeps its rows in one
            fold and the averages of the bias are clustered by query (module docstring, "Queries").
            Routed by scikit-learn's metadata routing (``set_fit_request(groups=True)``).

        Returns
        -------
        self : BiasEstimator
            The fitted estimator.
        """
        self.check_params()
        data = as_eval_data(X, y, source, who="BiasEstimator.fit", groups=groups, gold_probability=gold_probability)
        data.require_both_sources("BiasEstimator")
        need = _MIN_ROWS_PER_FOLD * self.cv
        for name, count in (("gold", data.n_gold), ("preference", data.n_preference)):
            if count < need:
                raise DataError(
                    f"too few {name} rows for cross-fitting: cv={self.cv} folds need at least "
                    f"{need} {name} rows, got {count}; lower cv or add {name} rows"
                )
        seed = self.seed_ = resolve_seed(self.random_state)
        threads = thread_count(self.n_jobs)
        # The bias model's cost follows the gold rows: above a cap, a seeded random subset of
        # the preference rows (every gold row kept) trains it (module docstring, "Cost").
        self.sample_index_ = _bias_rows(data.is_gold, seed)
        if len(self.sample_index_) < len(data):
            logger.info("bias model fitted on %d of %d preference rows (all %d gold rows)",
                        len(self.sample_index_) - data.n_gold, data.n_preference, data.n_gold)
            kept = (len(self.sample_index_) - data.n_gold) / data.n_preference
            data = data.subset(self.sample_index_)
            if data.gold_probability is not None:  # P(gold | s) among the kept rows
                p = data.gold_probability
                data.gold_probability = p / (p + (1 - p) * kept)
        self.scale_ = fitted_scale(data, self.scale)  # on the rows the bias model uses, design-weighted
        X, o, t = data.X, pooled_outcome(data.gain, data.is_gold, self.scale_), data.treatment
        self.query_groups_ = data.query_groups
        groups = repeated_groups(self.query_groups_)  # None: one row per query, the rows are the units
        if groups is not None:
            _check_queries_per_fold(groups, t, self.cv)
        self.min_propensity_ = self.propensity_clip(data)
        known = data.gold_probability is not None
        W = data.gold_probability.reshape(-1, 1) if known else None
        selecting = self.learner == "auto" and self.model_final is None
        group_kwargs = {} if groups is None else {"groups": groups}
        # The outcome models of the average bias (ate) do not depend on the learner: they are
        # fitted in a second thread while econml fits it (LightGBM and BLAS release the GIL; the
        # same numbers as one after the other). Folds drawn as econml draws the learner's; by query,
        # drawn once and handed to econml (StratifiedGroupKFold's assignment is a Python loop over
        # the queries: about 0.2 s at 900 queries). BLAS runs one thread per task: its matrices
        # here are small (n x d), and a multithreaded BLAS spent more time synchronising than
        # computing (module docstring, "Wall time").
        folds = cross_fitting_folds(X, t, self.cv, seed, groups)
        est = self._make_estimator(seed, known_propensity=known, groups=groups, cv=None if groups is None else folds)
        outcomes = MechanismOutcomes(self.model_y, random_state=seed)
        with threadpool_limits(limits=1, user_api="blas"):
            if threads > 1:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    means = pool.submit(cross_fitted_outcome_means, X, o, t, folds, outcomes)
                    est.fit(o, t, X=X, W=W, cache_values=True, **group_kwargs)
                    mu0, mu1 = means.result()
            else:
                est.fit(o, t, X=X, W=W, cache_values=True, **group_kwargs)
                mu0, mu1 = cross_fitted_outcome_means(X, o, t, folds, outcomes)
        self.estimator_ = est
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(data.feature_names, dtype=object)

        nuisances = est._cached_values.nuisances
        if self._family == "r":
            y_res, t_res = (np.asarray(v, dtype=float).reshape(len(o), -1)[:, 0] for v in nuisances[:2])
            propensity = np.round(t - t_res, 12)  # t - (t - p) carries rounding error in the last bits
            raw = propensity
        else:
            _, clipped, raw = nuisances
            propensity, raw = np.asarray(clipped)[:, 1], np.asarray(raw)[:, 1]
        self.propensity_ = propensity
        lo = self.min_propensity_
        self.n_clipped_ = 0 if known else int(np.sum((raw <= lo * (1 + 1e-9)) | (raw >= 1 - lo * (1 + 1e-9))))
        self.overlap_auc_ = float(roc_auc_score(t, propensity))
        self.known_propensity_ = known
        if self.overlap_auc_ >= _NO_OVERLAP_AUC and not known:
            raise OverlapError(
                "no overlap between the gold and preference query populations: out-of-fold "
                f"propensities tell them apart with AUC {self.overlap_auc_:.3f}; the bias cannot be "
                "learned where one mechanism never evaluates (draw gold rows from the same queries)"
            )
        if self.n_clipped_:
            logger.info("propensity clipped to [%.3g, %.3g] on %d of %d rows",
                        lo, 1 - lo, self.n_clipped_, len(o))

        self.selection_, self.heterogeneity_, self.correction_ = None, None, None
        oof = np.full(len(o), np.nan)  # honest out-of-fold bias estimate (preference scale), where known
        if selecting:
            self.selection_, oof = _select_final_stage(X, y_res, t_res, t, self.cv, seed, groups,
                                                       folds=None if groups is None else folds, n_jobs=self.n_jobs)
            chosen = str(self.selection_.index[self.selection_["chosen"]][0])
            est.model_final = final_stage(chosen, seed, self.n_jobs)
            est.refit_final()
            self.final_stage_ = chosen
        elif self.learner in ("forest", "linear"):
            self.final_stage_ = self.learner
        else:
            final = fitted_final_stage(est)
            self.final_stage_ = self.model_final if isinstance(self.model_final, str) else (
                "stack" if self.model_final is None else "custom")
            if isinstance(final, StackedFinalStage):
                self.selection_, self.heterogeneity_ = _stack_summary(final)
                self.correction_ = describe_correction(self.heterogeneity_)
            if np.shape(getattr(final, "oof_", None)) == (len(o),):  # a final stage with honest out-of-fold predictions
                oof = np.asarray(final.oof_, dtype=float)
        # the corrected judge's out-of-fold prediction of the gold gain: the preference outcome
        # model (cross-fitted on preference rows) plus the out-of-fold bias estimate
        self.judge_oof_ = (mu0 + oof) / self.scale_
        self.bootstrap_estimators_ = None
        if self.inference == "bootstrap":
            final = est.model_final if LEARNERS[self.learner].final_stage else None
            self.bootstrap_estimators_ = self._bootstrap_refits(X, o, t, W, self.query_groups_, seed, known, final)

        # ---- the average bias (ate): AverageBias with its own outcome models (the same whatever
        # learner routes), the learner's propensity and folds, or the design's probabilities unclipped
        self.average_ = AverageBias(self.model_y, scale=self.scale,
                                    cv=self.cv, min_propensity=self.min_propensity_, random_state=seed)
        self.average_.fit(data.gain, t, X=X, groups=self.query_groups_, folds=folds, outcome_means=(mu0, mu1),
                          gold_probability=data.gold_probability, propensity=None if known else propensity,
                          preference_gain=getattr(data, "preference_gain", None))
        self.pseudo_outcomes_ = self.average_.pseudo_outcomes_
        n_queries = len(o) if self.query_groups_ is None else int(self.query_groups_.max()) + 1
        self.overlap_ = pd.Series({
            "propensity_min": float(propensity.min()), "propensity_max": float(propensity.max()),
            "clipped_share": self.n_clipped_ / len(o), "gold_ess": self.average_.gold_ess_,
            "n_gold": float(np.sum(t == 1)), "n_clusters": float(n_queries),
        })
        est._cached_values = None  # release the cached copy of the training data
        return self

    def _bootstrap_refits(self, X, o, t, W, codes, seed, known, final) -> list:
        """:data:`N_BOOTSTRAP` refits of the econml learner on resamples (module docstring,
        "Queries"): whole queries drawn with replacement where query ids are known, else rows drawn
        with replacement within each source (as econml's bootstrap draws); the folds of every refit
        keep the copies of a query (or of a row) together. The scale constant is held fixed."""
        units = codes if codes is not None else np.arange(len(o))
        n_units = int(units.max()) + 1
        order = np.argsort(units, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(units, minlength=n_units))[:-1])
        unit_gold = np.bincount(units, weights=t, minlength=n_units) > 0
        unit_pref = np.bincount(units, weights=1 - t, minlength=n_units) > 0
        gold_units, pref_units = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
        children = np.random.SeedSequence(seed).spawn(N_BOOTSTRAP)
        fits = []
        for child in children:
            rng = np.random.default_rng(child)
            b_seed = int(child.generate_state(1)[0] % (2**31 - 1))
            for _ in range(100):  # redraw a resample too thin to cross-fit (rare)
                if codes is None:
                    drawn = np.concatenate([rng.choice(gold_units, len(gold_units)), rng.choice(pref_units, len(pref_units))])
                else:
                    drawn = rng.integers(0, n_units, n_units)
                if unit_gold[drawn].sum() >= self.cv and unit_pref[drawn].sum() >= self.cv:
                    break
            rows = np.concatenate([members[u] for u in drawn])
            groups = units[rows]  # copies of a unit share its code, hence a fold
            est = self._make_estimator(b_seed, known_propensity=known, groups=groups, final=final)
            est.fit(o[rows], t[rows], X=X[rows], W=None if W is None else W[rows], groups=groups)
            fits.append(est)
        return fits

    def check_params(self) -> None:
        """Check the parameters (a DataError names the one at fault). ``fit`` calls it first, and
        so does :func:`causal_router.validate.refute`, which uses the settings without fitting."""
        if self.learner not in LEARNERS:
            raise DataError(f"learner must be one of {tuple(LEARNERS)}, got {self.learner!r}")
        if not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise DataError(f"cv must be an integer >= 2, got {self.cv!r}")
        if self.inference not in (None, "bootstrap"):
            raise DataError(f"inference must be None or 'bootstrap', got {self.inference!r}")
        if self.min_propensity is not None and not 0 < self.min_propensity < 0.5:
            raise DataError(f"min_propensity must be in (0, 0.5), got {self.min_propensity!r}")
        if isinstance(self.model_final, str) and self.model_final not in FINAL_STAGES:
            raise DataError(f"model_final must be a regressor or one of {FINAL_STAGES}, got {self.model_final!r}")

    def propensity_clip(self, data: EvalData) -> float:
        """The propensity clip level for ``data``: ``min_propensity``, or a tenth of the smaller
        source's share of the rows (at least 1e-6).

        Parameters
        ----------
        data : EvalData
            The rows to fit on.

        Returns
        -------
        float
            The clip level, in (0, 0.5).
        """
        if self.min_propensity is not None:
            return self.min_propensity
        return max(1e-6, 0.1 * min(data.n_gold, data.n_preference) / len(data))

    @property
    def _family(self) -> str:
        return LEARNERS[self.learner].family

    def _make_estimator(self, seed, known_propensity: bool = False, groups=None, final=None, cv=None):
        """The unfitted econml learner. ``groups`` (n,): the query codes of the rows it will be
        fitted on (then its folds are grouped, and so are the stacked final stage's); ``final``:
        a final-stage model to use (cloned) instead of the parameter's; ``cv``: the folds, as
        (train, test) pairs, where already drawn."""
        model_y = clone(self.model_y) if self.model_y is not None else default_regressor(seed)
        if known_propensity:  # known by design: never clipped
            model_t = KnownPropensity()
        else:
            model_t = clone(self.model_t) if self.model_t is not None else default_propensity(seed)
            # the clipper also hides CV-tuned models (LogisticRegressionCV) from econml's own
            # model selection, which would otherwise replace their tuning
            model_t = ClippedClassifier(model_t, self.min_propensity_)
        if final is None:
            final = self.model_final if self.model_final is not None else "stack"
        final = final_stage(final, seed, self.n_jobs) if isinstance(final, str) else clone(final)
        if "groups" in getattr(final, "get_params", dict)():  # e.g. StackedFinalStage: folds by query
            final.set_params(groups=groups)
        if cv is None:
            cv = self.cv if groups is None else fold_splitter(self.cv, seed, grouped=True)
        params = econml_params(self.learner, model_y=model_y, model_t=model_t, model_final=final,
                               min_propensity=_UNCLIPPED if known_propensity else self.min_propensity_, cv=cv,
                               random_state=seed)
        return LEARNERS[self.learner].econml_class()(use_ray=bool(self.use_ray), **params)

    # ------------------------------------------------------------------ prediction
    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return check_features(X, self.feature_names_in_, type(self).__name__)

    def effect(self, X) -> np.ndarray:
        """Estimated bias (gold minus preference gain, gold scale), shape (n,).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features (a DataFrame is matched by column name where the fit's were named).

        Returns
        -------
        ndarray of shape (n,)
            Delta_hat(s) of each row, gold scale.
        """
        if hasattr(X, "shape") and len(X.shape) == 2 and X.shape[0] > _EFFECT_BLOCK:
            rows = X.iloc if isinstance(X, pd.DataFrame) else X
            return np.concatenate([self.effect(rows[i:i + _EFFECT_BLOCK])
                                   for i in range(0, X.shape[0], _EFFECT_BLOCK)])
        X = self._check_X(X)
        return np.asarray(self.estimator_.effect(X), dtype=float).reshape(-1) / self.scale_

    def effect_interval(self, X, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise (1 - alpha) confidence interval of the bias, two arrays of shape (n,).

        Available for ``learner="forest"`` and ``"linear"``, and for every learner fitted with
        ``inference="bootstrap"`` (then the pivot interval over the refits).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features.
        alpha : float, default 0.05
            One minus the coverage, in (0, 1).

        Returns
        -------
        lower : ndarray of shape (n,)
            Lower bounds, gold scale.
        upper : ndarray of shape (n,)
            Upper bounds, gold scale.
        """
        X = self._check_X(X)
        if self.learner not in INTERVAL_LEARNERS and self.inference != "bootstrap":
            raise DataError(
                f"effect_interval is not available for learner={self.learner!r} without "
                f"bootstrap: use learner in {INTERVAL_LEARNERS} or refit with inference='bootstrap'"
            )
        if not 0 < alpha < 1:
            raise DataError(f"alpha must be in (0, 1), got {alpha!r}")
        if self.bootstrap_estimators_ is not None:  # pivot interval over the refits, as econml's bootstrap
            point = np.asarray(self.estimator_.effect(X), dtype=float).reshape(-1)
            draws = np.array([np.asarray(e.effect(X), dtype=float).reshape(-1) for e in self.bootstrap_estimators_])
            high, low = np.quantile(draws, [1 - alpha / 2, alpha / 2], axis=0)
            return (2 * point - high) / self.scale_, (2 * point - low) / self.scale_
        lower, upper = self.estimator_.effect_interval(X, alpha=alpha)
        return (np.asarray(lower, dtype=float).reshape(-1) / self.scale_,
                np.asarray(upper, dtype=float).reshape(-1) / self.scale_)

    def ate(self, alpha: float = 0.05) -> pd.Series:
        """Average bias over the training rows, doubly robust, with a (1 - alpha) interval and the
        overlap behind it: :class:`causal_router.average.AverageBias` (``average_``) fitted with the
        learner's propensity and folds (or the design's probabilities, unclipped).

        Estimand: the mean of Delta(s_i) = E[o(1) - o(0) | s_i] / c over the n training rows, on
        the gold scale (c the scale constant of the fit, 1 with ``scale=None``); where query ids
        repeat, the average bias over the population of queries the data's queries are a random
        sample from (rows weighted as in the data). Above the preference-row cap (module
        docstring, "Cost") the rows are those the bias model used (``sample_index_``: every gold row
        and the kept preference rows).
        Estimator: the mean of ``pseudo_outcomes_``, cross-fitted AIPW scores (augmented inverse
        propensity weighting, Robins, Rotnitzky and Zhao 1994; the score of econml's
        ``DRLearner``) built from their own outcome models for each mechanism
        (:mod:`causal_router.average`), never from the CATE model: the same estimate whatever
        learner routes, and valid where its final stage is misspecified.
        Standard error: sd(phi) / sqrt(n) with the rows as units; where query ids repeat, the
        cluster-robust standard error over the G queries with the factor G / (G - 1)
        (:func:`causal_router.clusters.cluster_std_error`); where the scale constant is fitted
        (``scale`` a method name), its uncertainty is added by the delta method
        (:mod:`causal_router.average`). Interval: normal; with query ids and fewer than 30 queries
        a percentile cluster bootstrap, announced by a
        :class:`~causal_router.clusters.FewClustersWarning`.

        Assumptions: consistency; unconfoundedness given s (the features are all that drives both
        which mechanism evaluates a query and its gain); positivity (p(s) bounded away from 0 and
        1; see the overlap figures below); and either the propensity or the two outcome models
        consistent (double robustness), with the product of their errors small against
        1 / sqrt(n) for the interval; rows of different queries independent. For the average over
        these rows the interval is conservative where the bias varies (it also covers the spread
        of Delta(s) between samples).

        Parameters
        ----------
        alpha : float, default 0.05
            One minus the interval's coverage, in (0, 1).

        Returns
        -------
        Series
            ``estimate``, ``std_error``, ``lower``, ``upper`` (gold scale), and the overlap
            figures: ``propensity_min`` / ``propensity_max`` (out-of-fold, after clipping; known
            probabilities are never clipped), ``clipped_share`` (share of rows whose propensity
            was clipped), ``gold_ess`` (effective number of gold rows under the 1/p weights,
            (sum w)^2 / sum w^2; far below the number of gold rows means a few of them carry the
            average), ``n_gold`` and ``n_clusters`` (the queries the rows come from: the number of
            rows without query ids), then ``scale`` (c) and ``scale_std_error`` (its standard
            error; 0 where it is not fitted).
        """
        check_is_fitted(self, "average_")
        if not 0 < alpha < 1:
            raise DataError(f"alpha must be in (0, 1), got {alpha!r}")
        result = self.average_.result(alpha)
        if repeated_groups(self.query_groups_) is not None and self.overlap_["n_clusters"] < MIN_CLUSTERS:
            warnings.warn(f"the average bias rests on {int(self.overlap_['n_clusters'])} queries (< {MIN_CLUSTERS}): "
                          "its interval is the percentile cluster bootstrap, not the normal interval",
                          FewClustersWarning, stacklevel=2)
        return pd.concat([result[["estimate", "std_error", "lower", "upper"]], self.overlap_,
                          result[["scale", "scale_std_error"]]])


def _check_queries_per_fold(groups: np.ndarray, t: np.ndarray, cv: int) -> None:
    """Cross-fitting by query needs at least ``cv`` queries with a gold row and ``cv`` with a
    preference row (else a fold holds no row of one source)."""
    for name, rows in (("gold", t == 1), ("preference", t == 0)):
        count = len(np.unique(groups[rows]))
        if count < cv:
            raise DataError(f"too few queries with {name} rows for cross-fitting by query: cv={cv} folds need at "
                            f"least {cv}, got {count}; lower cv or add {name} rows on more queries")


def _bias_rows(is_gold: np.ndarray, seed) -> np.ndarray:
    """Sorted indices of the rows that train the bias model: every gold row, and the
    preference rows up to max(PREFERENCE_ROWS_MIN, PREFERENCE_ROWS_PER_GOLD * n_gold), drawn
    uniformly without replacement with ``seed`` (all of them below the cap)."""
    gold = np.flatnonzero(is_gold)
    pref = np.flatnonzero(~is_gold)
    cap = max(PREFERENCE_ROWS_MIN, PREFERENCE_ROWS_PER_GOLD * len(gold))
    if len(pref) <= cap:
        return np.arange(len(is_gold))
    keep = np.random.default_rng(seed).choice(pref, size=cap, replace=False)
    return np.sort(np.concatenate([gold, keep]))


def fitted_final_stage(econml_estimator):
    """The fitted final-stage model of a fitted econml NonParamDML or DRLearner (binary treatment).

    NonParamDML exposes it as ``model_final_``; DRLearner's ``model_final_`` is the unfitted
    template and the fitted model is ``fitted_models_final[0]``.

    Parameters
    ----------
    econml_estimator : econml estimator
        A fitted NonParamDML or DRLearner.

    Returns
    -------
    regressor
        The fitted final stage.
    """
    models = getattr(econml_estimator, "fitted_models_final", None)
    return models[0] if models else econml_estimator.model_final_


def _stack_summary(stack: StackedFinalStage) -> tuple[pd.DataFrame, pd.Series]:
    """The stacked final stage's candidates and its evidence: (selection, heterogeneity).

    selection: one row per candidate and one for the nested stack ("stack"), with the out-of-fold
    R-loss (mean per row), the stacking weight beta (``stack_weight``) and the weight in the bias
    model (``weight``: share * beta, plus 1 - share on the constant; on the "stack" row the share).
    heterogeneity: the evidence behind the share (:class:`~causal_router.models.StackedFinalStage`).
    """
    names = list(stack.candidates)
    selection = pd.DataFrame(
        {"r_loss": [*stack.cv_loss_, stack.stacked_cv_loss_],
         "weight": [*stack.effective_weights_, stack.share_],
         "stack_weight": [*stack.weights_, np.nan]},
        index=pd.Index([*names, "stack"], name="final_stage"))
    z = stack.slope_ / stack.slope_std_error_ if stack.slope_std_error_ > 0 else np.nan
    evidence = pd.Series({
        "share": stack.share_, "slope": stack.slope_, "slope_std_error": stack.slope_std_error_, "z": z,
        "threshold": float(stack.threshold), "r_loss_constant": stack.constant_cv_loss_,
        "r_loss_stack": stack.stacked_cv_loss_, "r_loss_gain": stack.loss_gain_,
        "r_loss_gain_std_error": stack.loss_gain_std_error_, "n_clusters": float(stack.n_clusters_),
        "n_repeats": float(stack.n_repeats)})
    return selection, evidence


def describe_correction(evidence: pd.Series | dict) -> str:
    """One sentence on the correction a stacked bias model uses and why, from its evidence
    (``BiasEstimator.heterogeneity_``: share, calibration slope, its standard error, z, threshold).

    Parameters
    ----------
    evidence : Series or dict
        ``share``, ``slope``, ``slope_std_error``, ``z`` and ``threshold``.

    Returns
    -------
    str
        The sentence.
    """
    e = dict(evidence)
    share, slope, se, z, k = (e.get(key) for key in ("share", "slope", "slope_std_error", "z", "threshold"))
    if slope is None or not np.isfinite(slope):
        return ("constant correction only: the stacked fit put all its weight on the constant, so there is no "
                "heterogeneous part to weigh")
    facts = (f"its departure from the constant predicts held-out rows with calibration slope {slope:.2f} "
             f"(standard error {se:.2f}: {z:.1f} standard errors; 1 = the variation is right, 0 = it is noise)")
    if share > 0:
        return (f"heterogeneous correction used at {share:.0%} of the stacked fit, because {facts}, beyond the "
                f"threshold of {k:g}")
    return (f"constant correction only, because the stacked fit's heterogeneity is within noise: {facts}, "
            f"not beyond the threshold of {k:g}")


def _select_final_stage(X, y_res, t_res, t, cv, seed, groups=None, folds=None,
                        n_jobs=None) -> tuple[pd.DataFrame, np.ndarray]:
    """Out-of-fold R-loss of each final stage in :data:`STACK_CANDIDATES`; the lowest wins.

    Each candidate is fitted on K-1 folds of the cross-fitted residuals (target y_res / t_res,
    weight t_res^2) and scored on the held-out fold by the R-loss (y_res - t_res * tau(s))^2.
    Returns a DataFrame indexed by candidate (simplest first) with ``r_loss`` (mean per row),
    ``excess`` (over the best), ``std_error`` (of the paired per-row excess; clustered by
    ``groups``, the query codes, where given) and ``chosen``. The folds keep a query's rows together
    (``folds``: the same folds, where already drawn).
    """
    if folds is None:
        folds = cross_fitting_folds(X, t, cv, seed, groups)
    tau = out_of_fold_predictions(STACK_CANDIDATES, X, y_res / t_res, t_res ** 2, folds, seed, n_jobs=n_jobs)
    losses = ((y_res[:, None] - t_res[:, None] * tau) ** 2).T
    mean = losses.mean(axis=1)
    best = int(np.argmin(mean))
    diff = losses - losses[best]
    se = np.array([cluster_std_error(d, groups) for d in diff])
    excess = mean - mean[best]
    chosen = best
    table = pd.DataFrame(
        {"r_loss": mean, "excess": excess, "std_error": se,
         "chosen": np.arange(len(STACK_CANDIDATES)) == chosen},
        index=pd.Index(STACK_CANDIDATES, name="final_stage"),
    )
    return table, tau[:, chosen]
