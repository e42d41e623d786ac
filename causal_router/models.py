"""Nuisance, final-stage and outcome models, chosen by measurement (README, "Measured"; ``docs/results.md``), the
propensity clipper, and the column and fold helpers that feed them.

- Nuisances (E[o | s] and the gain model of every router): LightGBM, 100 trees of at most 15
  leaves, half the features per tree, 63 bins, leaves of at least 5 rows, one thread. About
  0.1 s per fit at 4,000 x 50; as accurate as a 100-tree random forest on the generator and
  ten times faster. Leaves of 5 rather than LightGBM's 20 rows: with model-pair indicators
  among the features and a hundred gold rows, a pair has about ten rows and could never be
  split off (measured, ``benchmarks/leaf_size.py``: oracle share of Gold-only on PRD Vicuna80
  with whole questions held out, 100 gold rows, 20 splits, 0.506 against 0.008; on the
  generator 0.34 against 0.40, Pooled, meta-router and All-Golden unchanged). One thread:
  LightGBM's OpenMP threads in parallel Monte Carlo workers slowed runs thirtyfold.
- Propensity P(t=1 | s): L2-regularised logistic regression on standardised features, the
  penalty chosen by 3-fold cross-validated log-loss. With a few percent of gold rows a
  flexible or weakly penalised classifier fits noise and pushes propensities toward 0, where
  1/p weights explode (measured on the generator: C=0.1 gave propensities spread over 0.18 and
  a standard error of the average bias twice as large); the cross-validated penalty shrinks to
  a near-constant propensity when the gold rows are a random draw and still follows a selection
  of gold rows that depends on the features.
- Final stages of the bias (CATE) model, all taking ``sample_weight`` (:data:`FINAL_STAGES`):
  ``constant`` (the weighted mean: one global bias); ``linear`` (ridge on the raw features,
  penalty by leave-one-out CV: low-variance features, like trailing principal components, are
  penalised more; with model-pair indicators it shrinks one bias per pair toward the global
  bias); ``ridge`` (the same on standardised features); ``boosting`` (weighted boosted trees
  of 4 leaves whose leaves must carry a minimum share of the total weight, i.e. of the gold
  rows); ``additive`` (boosted stumps: an additive model that uses few features); and
  ``stack`` (the default: :class:`StackedFinalStage`, non-negative stacking of the five by
  out-of-fold R-loss).
- Cross-fitting folds (:func:`fold_splitter`, :func:`cross_fitting_folds`): K folds stratified by
  source, shuffled; where a query carries several rows, scikit-learn's
  :class:`~sklearn.model_selection.StratifiedGroupKFold`, which keeps each query's rows in one
  fold (a model never predicts a row from another row of the same query). Measured
  (``bench_pipeline.py fittime --rows-per-query``): see ``docs/results.md``, "Speed".
- Outcome model of the average bias (:class:`MechanismOutcomes`): E[o | s, t] as one model per
  evaluation mechanism, the gold one starting from the preference one; it feeds the AIPW scores
  of ``BiasEstimator.ate`` and, inside econml's DRLearner, the refutations.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ._parallel import thread_count
from ._utils import as_seed
from ._validation import DataError
from .clusters import score_std_error

__all__ = [
    "default_regressor",
    "default_classifier",
    "fit_gain_model",
    "default_propensity",
    "final_stage",
    "FINAL_STAGES",
    "ClippedClassifier",
    "WeightedBoosting",
    "WeightedRidgeLOO",
    "StackedFinalStage",
    "out_of_fold_predictions",
    "fold_ids",
    "repeated_groups",
    "clustered_std_error",
    "calibration_slope",
    "evidence_share",
    "STACK_REPEATS",
    "EVIDENCE_THRESHOLD",
    "STACK_CANDIDATES",
    "KnownPropensity",
    "MechanismOutcomes",
    "RidgeThenBoosting",
    "UniqueColumns",
    "DuplicateAwareKFold",
    "fold_splitter",
    "cross_fitting_folds",
]

FINAL_STAGES = ("constant", "linear", "ridge", "boosting", "additive", "stack")
#: The final stages :class:`StackedFinalStage` combines (the default), simplest first.
STACK_CANDIDATES = ("constant", "linear", "ridge", "boosting", "additive")


def repeated_groups(groups) -> np.ndarray | None:
    """``groups`` (n,) where some group holds two or more rows, else None: with one row per
    query the rows are the units and folds are drawn over rows.

    Parameters
    ----------
    groups : array-like of shape (n,) or None
        Query codes or ids of the rows.

    Returns
    -------
    ndarray of shape (n,) or None
        ``groups`` as an array where a group repeats; None otherwise or for None.
    """
    if groups is None:
        return None
    groups = np.asarray(groups)
    return groups if len(np.unique(groups)) < len(groups) else None


def fold_splitter(n_splits: int, random_state, grouped: bool = False):
    """The cross-fitting splitter: ``StratifiedKFold(n_splits, shuffle=True, random_state)``, or with
    ``grouped`` ``StratifiedGroupKFold`` with the same settings, whose ``split(X, y, groups)`` keeps
    each group's rows in one fold while balancing y (the source) across folds.

    Parameters
    ----------
    n_splits : int
        The number of folds.
    random_state : int or None
        Seeds the shuffle.
    grouped : bool, default False
        Keep each group's rows in one fold.

    Returns
    -------
    StratifiedKFold or StratifiedGroupKFold
        The splitter (not yet split).
    """
    cls = StratifiedGroupKFold if grouped else StratifiedKFold
    return cls(n_splits, shuffle=True, random_state=random_state)


def cross_fitting_folds(X, strata, n_splits: int, random_state, groups=None) -> list:
    """(train, test) index pairs of :func:`fold_splitter` over the rows of X (n, d), stratified by
    ``strata`` (n,); with ``groups`` (n,, e.g. query codes) no group has rows on both sides.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The rows handed to the splitter.
    strata : array-like of shape (n,)
        The labels balanced across folds (the source).
    n_splits : int
        The number of folds.
    random_state : int or None
        Seeds the shuffle.
    groups : array-like of shape (n,), optional
        Query codes; None: rows are split one by one.

    Returns
    -------
    list of tuple of ndarray
        ``n_splits`` (train, test) index pairs.
    """
    if groups is None:
        return list(fold_splitter(n_splits, random_state).split(X, strata))
    if len(groups) != len(strata):
        raise DataError(f"groups has {len(groups)} labels for {len(strata)} rows")
    return list(fold_splitter(n_splits, random_state, grouped=True).split(X, strata, groups))


def default_regressor(random_state=None) -> LGBMRegressor:
    """Fast gradient-boosted trees for E[o | s] and for the router's gain model.

    Parameters
    ----------
    random_state : int, numpy Generator or None
        Seeds the model (a Generator draws an int seed); None: LightGBM's default seed.

    Returns
    -------
    LGBMRegressor
        Unfitted: 100 trees of at most 15 leaves, learning rate 0.1, one thread.
    """
    return LGBMRegressor(
        n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=5,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.5, max_bin=63,
        random_state=as_seed(random_state), verbose=-1, n_jobs=1,
    )


def fit_gain_model(model, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, random_state=None):
    """Fit (a clone of) ``model``, or :func:`default_regressor`, on X (n, d) and gains y (n,),
    with sample weights where they are not all 1; returns the fitted model.

    Parameters
    ----------
    model : regressor or None
        The gain model to clone; None: :func:`default_regressor`.
    X : ndarray of shape (n, d)
        Features.
    y : ndarray of shape (n,)
        Gains.
    weight : ndarray of shape (n,) or None
        Sample weights; None (or all 1): unweighted.
    random_state : int, numpy Generator or None
        Seeds the default regressor (a given ``model`` keeps its own seed).

    Returns
    -------
    regressor
        The fitted clone.
    """
    model = clone(model) if model is not None else default_regressor(as_seed(random_state))
    if weight is None or np.all(weight == 1):
        return model.fit(X, y)
    return model.fit(X, y, sample_weight=weight)


def default_classifier(random_state=None) -> LGBMClassifier:
    """Fast gradient-boosted trees for classification (two-sample tests in diagnostics).

    Parameters
    ----------
    random_state : int, numpy Generator or None
        Seeds the model (a Generator draws an int seed); None: LightGBM's default seed.

    Returns
    -------
    LGBMClassifier
        Unfitted: 100 trees of at most 15 leaves, learning rate 0.1, one thread.
    """
    return LGBMClassifier(
        n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=20,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.5, max_bin=63,
        random_state=as_seed(random_state), verbose=-1, n_jobs=1,
    )


def default_propensity(random_state=None):
    """Regularised logistic regression for P(gold | s).

    Parameters
    ----------
    random_state : object, optional
        Unused (the model is deterministic); kept so that every default model is built alike.

    Returns
    -------
    Pipeline
        Unfitted: StandardScaler, then L2 ``LogisticRegressionCV`` (C in 1e-4 .. 1, 3 folds,
        log-loss).
    """
    return make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(Cs=np.logspace(-4, 0, 5), cv=3, scoring=neg_log_loss, max_iter=2000,
                             l1_ratios=(0.0,), use_legacy_attributes=False),
    )


def neg_log_loss(estimator, X, y) -> float:
    """Minus the mean log-loss of a binary classifier: sklearn's ``"neg_log_loss"`` scorer
    (probabilities clipped to [eps, 1 - eps]) without its input validation, which took two
    thirds of the propensity model's time in a default fit."""
    proba = np.clip(estimator.predict_proba(X)[:, 1], np.finfo(float).eps, 1 - np.finfo(float).eps)
    positive = np.asarray(y) == estimator.classes_[1]
    return float(np.mean(np.where(positive, np.log(proba), np.log1p(-proba))))


def final_stage(kind: str, random_state=None, n_jobs: int | None = None):
    """A final-stage regressor of the bias, by name (one of :data:`FINAL_STAGES`); ``n_jobs``
    limits the threads of the stack (:class:`StackedFinalStage`).

    Parameters
    ----------
    kind : {"constant", "linear", "ridge", "boosting", "additive", "stack"}
        The final stage.
    random_state : int, numpy Generator or None
        Seeds the boosted and stacked stages.
    n_jobs : int or None
        Most threads of the stack; None: 1 outside a ``joblib.parallel_config`` context.

    Returns
    -------
    regressor
        The unfitted final stage.
    """
    if kind == "constant":
        return DummyRegressor(strategy="mean")
    if kind == "linear":
        return WeightedRidgeLOO(alphas=tuple(np.logspace(-2, 4, 25)), standardize=False)
    if kind == "ridge":
        return WeightedRidgeLOO()
    if kind == "boosting":
        return WeightedBoosting(n_estimators=60, learning_rate=0.08, random_state=as_seed(random_state))
    if kind == "additive":  # stumps: an additive model, sparse by the features it splits on
        return WeightedBoosting(n_estimators=100, learning_rate=0.1, num_leaves=2, random_state=as_seed(random_state))
    if kind == "stack":
        return StackedFinalStage(random_state=as_seed(random_state), n_jobs=n_jobs)
    raise DataError(f"unknown final stage {kind!r}; choose one of {FINAL_STAGES}")


class ClippedClassifier(ClassifierMixin, BaseEstimator):
    """Wrap a classifier so that ``predict_proba`` is clipped to [min_propensity, 1 - min_propensity].

    Used for the propensity of the R-learner (econml's DML has no clipping of its own).

    Parameters
    ----------
    estimator : classifier, optional
        The wrapped classifier (cloned at fit); None: :func:`default_propensity`.
    min_propensity : float, default 1e-3
        The clipping bound, in (0, 0.5).
    """

    def __init__(self, estimator=None, min_propensity: float = 1e-3):
        self.estimator = estimator
        self.min_propensity = min_propensity

    def fit(self, X, y, sample_weight=None):
        self.estimator_ = clone(self.estimator if self.estimator is not None else default_propensity())
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.estimator_.fit(X, y, **kwargs)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X):
        proba = np.clip(self.estimator_.predict_proba(X), self.min_propensity, 1 - self.min_propensity)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]



class KnownPropensity(ClassifierMixin, BaseEstimator):
    """The propensity P(gold | s) known by design, read from the last input column.

    For gold rows selected with known probabilities (:mod:`causal_router.active`): the bias
    estimator passes the probabilities to econml as the last column of the controls W, which
    econml appends to X for its nuisance models; this "model" learns nothing and returns them.
    """

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise DataError(f"KnownPropensity needs two classes (gold and preference), got {self.classes_.tolist()}")
        return self

    def predict_proba(self, X):
        p = np.asarray(X, dtype=float)[:, -1]
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


class MechanismOutcomes(RegressorMixin, BaseEstimator):
    """E[o | s, t]: one outcome model per evaluation mechanism, for the AIPW scores of the average bias.

    Input [s, t] of shape (n, d + 1), the last column the gold indicator t (0 or 1): the layout
    econml's ``DRLearner`` gives its ``model_regression``. Output shape (n,), on the scale of o.

    - t = 0: mu0(s) = E[o | s, preference], ``model_y`` (default :class:`RidgeThenBoosting`)
      fitted on the preference rows alone;
    - t = 1: mu1(s) = E[o | s, gold] = a + b mu0(s) + z(s) beta, fitted on the gold rows, z the
      standardised features (scaled on the gold rows), beta ridge with its penalty by
      leave-one-out CV, a and b unpenalised (partialled out, Frisch-Waugh-Lovell). b = 1 with
      beta = 0 says the gold gain is the preference gain shifted by a constant bias; b free
      absorbs a judge that compresses or inflates gains; beta the part of the bias linear in s.

    A single model of o on (s, t), econml's default, hardly splits on t when a few percent of
    rows are gold: its E[o | s, gold] is then the preference model and the AIPW estimate leans on
    the propensity alone.

    Parameters
    ----------
    model_y : regressor, optional
        The preference outcome model mu0 (cloned at fit); None: :class:`RidgeThenBoosting`.
    random_state : int, numpy Generator or None
        Seeds the default ``model_y``.
    """

    def __init__(self, model_y=None, random_state=None):
        self.model_y = model_y
        self.random_state = random_state

    def fit(self, X, y):
        s, t = _features_and_mechanism(X)
        y = np.asarray(y, dtype=float).reshape(-1)
        gold = t == 1
        if gold.all() or not gold.any():
            raise DataError("MechanismOutcomes needs gold (t = 1) and preference (t = 0) rows")
        model = self.model_y
        if model is None:
            model = RidgeThenBoosting(random_state=as_seed(self.random_state))
        self.preference_model_ = clone(model).fit(s[~gold], y[~gold])
        m = self.preference_model_.predict(s[gold])
        self.scaler_ = StandardScaler().fit(s[gold])
        z = self.scaler_.transform(s[gold])
        Z = np.column_stack([np.ones(len(m)), m])

        def resid(A):
            return A - Z @ np.linalg.lstsq(Z, A, rcond=None)[0]

        ridge = RidgeCV(alphas=np.logspace(-2, 4, 25), fit_intercept=False).fit(resid(z), resid(y[gold]))
        self.coef_ = ridge.coef_
        self.intercept_, self.slope_ = np.linalg.lstsq(Z, y[gold] - z @ self.coef_, rcond=None)[0]
        self.n_features_in_ = s.shape[1] + 1
        return self

    def predict(self, X):
        s, t = _features_and_mechanism(X)
        mu0, mu1 = self.mechanism_means(s)
        return np.where(t == 1, mu1, mu0)

    def mechanism_means(self, s) -> tuple[np.ndarray, np.ndarray]:
        """(mu0(s), mu1(s)), each of shape (n,), for features s (n, d) without the indicator.

        Parameters
        ----------
        s : array-like of shape (n, d)
            Features, without the gold indicator.

        Returns
        -------
        mu0 : ndarray of shape (n,)
            E[o | s, preference].
        mu1 : ndarray of shape (n,)
            E[o | s, gold].
        """
        s = np.asarray(s, dtype=float)
        mu0 = np.asarray(self.preference_model_.predict(s), dtype=float).reshape(-1)
        return mu0, self.intercept_ + self.slope_ * mu0 + self.scaler_.transform(s) @ self.coef_


class RidgeThenBoosting(RegressorMixin, BaseEstimator):
    """Ridge regression, then boosted trees (``trees``, default :func:`default_regressor`) on its
    residuals: X (n, d) -> (n,).

    The preference outcome model of :class:`MechanismOutcomes`. Boosted trees approximate a
    linear trend by steps and need many rows to do it; the ridge (:class:`WeightedRidgeLOO`,
    standardised features, penalty by leave-one-out CV) takes the trend and the trees the rest.
    Measured on the AIPW average bias (``benchmarks/ihdp.py``, 100 replications each): on IHDP
    surface A, a linear surface, 95% interval coverage 0.92 against 0.88 with LightGBM alone and
    error 0.094 against 0.104; on IHDP B error 0.083 against 0.089, coverage 0.97 in both; on the
    generator (50 runs each with random and with selected gold rows) no change.

    Parameters
    ----------
    trees : regressor, optional
        The boosted trees on the ridge's residuals (cloned at fit); None: :func:`default_regressor`.
    random_state : int, numpy Generator or None
        Seeds the default trees.
    """

    def __init__(self, trees=None, random_state=None):
        self.trees = trees
        self.random_state = random_state

    def fit(self, X, y):
        X, y, _ = _weighted_xy(X, y, None)
        self.ridge_ = WeightedRidgeLOO().fit(X, y)
        trees = clone(self.trees) if self.trees is not None else default_regressor(as_seed(self.random_state))
        self.trees_ = trees.fit(X, y - self.ridge_.predict(X))
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return self.ridge_.predict(X) + self.trees_.predict(np.asarray(X, dtype=float))


def _features_and_mechanism(X) -> tuple[np.ndarray, np.ndarray]:
    """Split [s, t] (n, d + 1) into s (n, d) and t (n,), checking that t is 0/1."""
    X = np.asarray(X, dtype=float)
    t = X[:, -1]
    if not np.isin(t, (0.0, 1.0)).all():
        raise DataError("MechanismOutcomes expects the gold indicator (0 or 1) as the last input column")
    return X[:, :-1], t


class WeightedBoosting(RegressorMixin, BaseEstimator):
    """Gradient-boosted trees for a weighted final stage: every leaf must carry at least
    ``min_weight_fraction`` of the total sample weight.

    In the R-learner's final stage the weights (t - p)^2 are about 1 on gold rows and about
    p^2 on preference rows, so the constraint is on gold rows, where a count-based minimum
    leaf size would count the thousands of nearly weightless preference rows.

    Parameters
    ----------
    n_estimators : int, default 100
        Boosting rounds.
    learning_rate : float, default 0.05
        Shrinkage.
    num_leaves : int, default 4
        Most leaves per tree.
    min_weight_fraction : float, default 0.05
        Least share of the total sample weight in a leaf.
    random_state : int, numpy Generator or None
        Seeds LightGBM.
    """

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.05, num_leaves: int = 4,
                 min_weight_fraction: float = 0.05, random_state=None):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_weight_fraction = min_weight_fraction
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.model_ = LGBMRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=1, min_child_weight=self.min_weight_fraction * weight.sum(),
            subsample=0.8, subsample_freq=1, colsample_bytree=0.5, max_bin=63,
            random_state=self.random_state, verbose=-1, n_jobs=1,
        ).fit(X, y, sample_weight=weight)
        self.n_features_in_ = self.model_.n_features_in_
        return self

    def predict(self, X):
        return self.model_.predict(X)


class UniqueColumns(TransformerMixin, BaseEstimator):
    """Drop columns that repeat an earlier column (learned at fit; shape (n, d) -> (n, d_unique)).

    dowhy passes the query features to econml as both X and W; econml stacks [X, W] for the
    nuisance models, so each feature arrives twice.
    """

    def fit(self, X, y=None):
        X = np.asarray(X)
        _, first = np.unique(X, axis=1, return_index=True)
        self.keep_ = np.sort(first)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return np.asarray(X)[:, self.keep_]


class DuplicateAwareKFold:
    """Stratified K-fold cross-fitting splitter that keeps identical rows, and optionally each
    query's rows, in one fold.

    A bootstrap sample repeats rows; with ordinary folds a row's copy trains the outcome model
    that predicts it, its residual shrinks and so does the estimated bias. Without duplicates
    (or when one group of identical rows would exceed half a fold) this is
    ``StratifiedKFold(n_splits, shuffle=True, random_state)``.

    Parameters
    ----------
    n_splits : int, default 3
        The number of folds.
    random_state : int or None
        Seeds the shuffle.
    queries : tuple of (ndarray of shape (m, d), ndarray of shape (m,)), optional
        (features, query codes) of the original rows, for callers that cannot pass ``groups`` to
        ``split`` (dowhy's refuters hand econml resampled frames). The rows given to ``split``
        are matched to them by their last d columns (econml puts the effect modifiers X last) and
        split with ``StratifiedGroupKFold`` by query, so a query's rows, and copies of them,
        share a fold; a row that matches none is its own query (identical such rows share one).
        ``groups`` given to ``split`` take precedence.
    """

    def __init__(self, n_splits: int = 3, random_state=None, queries=None):
        self.n_splits = n_splits
        self.random_state = random_state
        self.queries = queries

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def _query_of(self, X: np.ndarray) -> np.ndarray:
        features, codes = self.queries
        features = np.ascontiguousarray(features, dtype=float)
        table = {row.tobytes(): int(c) for row, c in zip(features, codes)}
        keys = np.ascontiguousarray(X[:, -features.shape[1]:])
        out = np.empty(len(X), dtype=np.int64)
        unknown: dict = {}
        top = int(np.max(codes)) + 1 if len(codes) else 0
        for i, row in enumerate(keys):
            key = row.tobytes()
            code = table.get(key)
            if code is None:
                code = unknown.setdefault(key, top + len(unknown))
            out[i] = code
        return out

    def split(self, X, y, groups=None):
        X = np.asarray(X, dtype=float)
        y = np.asarray(y).reshape(len(X), -1)[:, 0]
        if groups is None and self.queries is not None:
            groups = self._query_of(X)
        if groups is not None:
            yield from fold_splitter(self.n_splits, self.random_state, grouped=True).split(X, y, groups)
            return
        plain = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.random_state)
        _, first, inverse, counts = np.unique(X, axis=0, return_index=True, return_inverse=True,
                                              return_counts=True)
        if len(first) == len(X) or counts.max() > len(X) / (2 * self.n_splits):
            yield from plain.split(X, y)
            return
        # representatives in the order of their first row, not np.unique's lexicographic order, so
        # that the folds do not depend on the order of the columns (dowhy's is a set's order)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        inverse = rank[inverse.reshape(-1)]
        first = first[order]
        try:
            rep_folds = list(plain.split(X[first], y[first]))
        except ValueError:  # too few representatives of a class: fall back to plain folds
            yield from plain.split(X, y)
            return
        for _, test_rep in rep_folds:
            test = np.isin(inverse, test_rep)
            yield np.flatnonzero(~test), np.flatnonzero(test)


class WeightedRidgeLOO(RegressorMixin, BaseEstimator):
    """Weighted ridge regression with an intercept, the penalty chosen by exact weighted
    leave-one-out error over ``alphas`` (what :class:`~sklearn.linear_model.RidgeCV` computes by
    default, same result), from one thin SVD of the weighted, centred design: O(n d^2) once,
    then O(n d) per penalty (sklearn's takes 0.4-0.8 s CPU at 4,500 x 50, this about 10 ms).

    ``standardize=True`` first scales every feature to unit standard deviation over all rows
    (unweighted: in the R-learner's final stage the gold rows alone would give a noisier scale),
    so the penalty treats features alike; ``False`` penalises low-variance features more (for
    principal-component features, a prior that trailing components matter less).

    Parameters
    ----------
    alphas : sequence of float, default 25 values from 1e-1 to 1e5 (log-spaced)
        The penalties tried.
    standardize : bool, default True
        Scale every feature to unit standard deviation before penalising.
    """

    def __init__(self, alphas=tuple(np.logspace(-1, 5, 25)), standardize: bool = True):
        self.alphas = alphas
        self.standardize = standardize

    def fit(self, X, y, sample_weight=None):
        X, y, w = _weighted_xy(X, y, sample_weight)
        self.n_features_in_ = X.shape[1]
        self.scale_ = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        self.scale_[self.scale_ == 0] = 1.0
        Z = X / self.scale_
        total = w.sum()
        z_mean, y_mean = w @ Z / total, float(w @ y / total)
        root = np.sqrt(w)
        A = (Z - z_mean) * root[:, None]
        b = (y - y_mean) * root
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        Ub, s2, u2 = U.T @ b, s ** 2, U ** 2
        best = (np.inf, None)
        for alpha in np.asarray(self.alphas, dtype=float):
            shrink = s2 / (s2 + alpha)
            fitted = U @ (shrink * Ub)
            leverage = u2 @ shrink + w / total  # hat diagonal, intercept included
            loo = (b - fitted) / (1.0 - leverage)
            err = float(loo @ loo)
            if err < best[0]:
                best = (err, alpha)
        self.alpha_ = float(best[1])
        coef = Vt.T @ (s / (s2 + self.alpha_) * Ub)
        self.coef_ = coef / self.scale_
        self.intercept_ = y_mean - float(z_mean @ coef)
        return self

    def predict(self, X):
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_


#: The evidence rule's defaults (:func:`evidence_share`, :class:`StackedFinalStage`): fold draws
#: averaged, and the threshold in standard errors. Chosen on the bias-learner suite's development
#: seeds (``benchmarks/bias_variants.py``; README, "The bias learner on a suite of settings").
STACK_REPEATS = 3
EVIDENCE_THRESHOLD = 1.0
#: Rows of the lighter-weighted source kept in the stack's cross-validation: at most
#: max(CV_LIGHT_ROWS_MIN, CV_LIGHT_ROWS_PER_HEAVY * heavy rows), reweighted (StackedFinalStage, "Cost").
CV_LIGHT_ROWS_MIN = 500
CV_LIGHT_ROWS_PER_HEAVY = 4


def fold_ids(strata: np.ndarray, groups: np.ndarray | None, n_splits: int, random_state, X=None) -> np.ndarray:
    """Fold number (0 .. n_splits - 1) of every row, shape (n,): shuffled K folds stratified by
    ``strata`` (0/1) and, where ``groups`` are given, keeping each group's rows in one fold
    (:class:`~sklearn.model_selection.StratifiedGroupKFold`). Plain shuffled (group) K folds where a
    stratum has fewer than ``n_splits`` rows or groups.

    Parameters
    ----------
    strata : ndarray of shape (n,)
        0/1 labels balanced across folds (the source).
    groups : ndarray of shape (n,) or None
        Query codes (at least ``n_splits`` distinct); None: rows are split one by one.
    n_splits : int
        The number of folds.
    random_state : int or None
        Seeds the shuffle.
    X : array-like of shape (n, d), optional
        The rows handed to the splitter (the folds do not depend on them).

    Returns
    -------
    ndarray of int, shape (n,)
        The fold of each row.
    """
    strata = np.asarray(strata).astype(int)
    n = len(strata)
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < n_splits:
            raise DataError(f"cross-fitting needs at least {n_splits} distinct query ids, got {n_groups}")
        counts = [len(np.unique(groups[strata == v])) for v in (0, 1)]
        splitter = (StratifiedGroupKFold(n_splits, shuffle=True, random_state=random_state) if min(counts) >= n_splits
                    else GroupKFold(n_splits, shuffle=True, random_state=random_state))
        splits = splitter.split(np.zeros((n, 1)) if X is None else X, strata, groups)
    else:
        counts = np.bincount(strata, minlength=2)
        splitter = (StratifiedKFold(n_splits, shuffle=True, random_state=random_state) if counts.min() >= n_splits
                    else KFold(n_splits, shuffle=True, random_state=random_state))
        splits = splitter.split(np.zeros((n, 1)) if X is None else X, strata)
    fold = np.empty(n, dtype=int)
    for k, (_, test) in enumerate(splits):
        fold[test] = k
    return fold


def clustered_std_error(scores: np.ndarray, groups: np.ndarray | None) -> float:
    """Deprecated alias of :func:`causal_router.clusters.score_std_error` (one cluster-robust
    formula for the package); removed in the next release.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        The terms of an estimating equation.
    groups : ndarray of shape (n,) or None
        Cluster labels; None: every row its own cluster.

    Returns
    -------
    float
        :func:`~causal_router.clusters.score_std_error` of the arguments.
    """
    warnings.warn("causal_router.models.clustered_std_error is deprecated: use "
                  "causal_router.clusters.score_std_error", DeprecationWarning, stacklevel=2)
    return score_std_error(scores, groups)


def calibration_slope(h: np.ndarray, e: np.ndarray, weight: np.ndarray | None = None,
                      groups: np.ndarray | None = None) -> tuple[float, float]:
    """How much of a held-out prediction's signal is real: the weighted least-squares slope b of
    ``e`` on ``h`` through the origin and its cluster-robust standard error.

    ``h`` (n,) is an out-of-fold prediction's departure from a reference (the stack minus the
    constant; the corrected judge minus the gold rows' model; a bias model minus "no bias"), ``e``
    (n,) the target's departure from the same reference, ``weight`` (n,) the rows' weights (default
    1), ``groups`` (n,) their query ids (default: every row its own cluster).

        b = sum w h e / sum w h^2,   se = sqrt(G / (G - 1) sum_g (sum_{i in g} w h (e - b h))^2) / sum w h^2.

    b = 1: the departure is right in size; b = 0: it is noise (econml's best-linear-predictor test,
    in R-loss form for the bias model).

    Parameters
    ----------
    h : ndarray of shape (n,)
        The prediction's departure from the reference.
    e : ndarray of shape (n,)
        The target's departure from the same reference.
    weight : ndarray of shape (n,), optional
        Row weights; None: 1.
    groups : ndarray of shape (n,), optional
        Query ids; None: every row its own cluster.

    Returns
    -------
    slope : float
        b; NaN where h is 0 on every row (nothing to calibrate).
    std_error : float
        se; NaN with it.
    """
    h, e = np.asarray(h, dtype=float), np.asarray(e, dtype=float)
    w = np.ones(len(h)) if weight is None else np.asarray(weight, dtype=float)
    A = float(w @ h ** 2)
    if not A > 1e-12 * max(float(w @ e ** 2), 1e-300):
        return float("nan"), float("nan")
    b = float(w @ (h * e)) / A
    return b, score_std_error(w * h * (e - b * h), groups) / A


def evidence_share(slope: float, std_error: float, threshold: float = EVIDENCE_THRESHOLD) -> float:
    """The share of a departure in use given its calibration slope and standard error
    (:func:`calibration_slope`): the non-negative garrote (Breiman 1995) at ``threshold``
    standard errors of z = slope / std_error,

        share = max(0, 1 - (threshold / z)^2) for z > 0, else 0,

    so within noise (z <= threshold) nothing of it is used and beyond it the share fades in
    (threshold 1: z = 2 gives 0.75, z = 4 0.94). 0 for a NaN slope; 1 for a positive slope with a
    zero standard error. The one evidence rule of the package: the bias model's heterogeneity
    (:class:`StackedFinalStage`), the judge's weight (:func:`causal_router.router.judge_evidence`)
    and the K-model bias model (:class:`~causal_router.pairwise.PairwiseSelect`).

    Parameters
    ----------
    slope : float
        The calibration slope b.
    std_error : float
        Its standard error.
    threshold : float, default ``EVIDENCE_THRESHOLD``
        Standard errors within which nothing is used.

    Returns
    -------
    float
        The share, in [0, 1].
    """
    if not np.isfinite(slope) or slope <= 0:
        return 0.0
    if not std_error > 0:
        return 1.0
    z = slope / std_error
    return float(max(0.0, 1.0 - (threshold / z) ** 2))


class StackedFinalStage(RegressorMixin, BaseEstimator):
    """Non-negative stacking of final stages by out-of-fold R-loss, used beyond the constant only as
    far as nested out-of-fold evidence supports it.

    For the R-learner's final stage (target y_res / t_res, weight t_res^2) the weighted squared
    error sum t_res^2 (y_res / t_res - tau)^2 = sum (y_res - t_res tau)^2 is the R-loss, so this
    is stacking by out-of-fold R-loss (econml's :class:`~econml.score.RScorer` criterion, here
    without giving up a validation split). The prediction is

        tau(s) = c + share * (sum_k beta_k f_k(s) - c),

    c the weighted mean (the constant final stage: one global bias), f_k the ``candidates``
    (names of :func:`final_stage`) refitted on every row, beta >= 0 their stacking weights and
    ``share`` in [0, 1] the part of the stack's departure from the constant in use, by the
    evidence held-out rows give for it:

    1. Out-of-fold predictions of every candidate, each fitted on K - 1 folds, averaged over
       ``n_repeats`` fold draws (folds keep a query's rows together where ``groups`` are given);
       beta = non-negative least squares of the target on them, weighted (Breiman's stacked
       regressions).
    2. Nested: the stacked prediction of each fold with weights fitted on the other folds only
       (their candidates fitted without both folds), and the constant fitted without the fold:
       honest out-of-fold predictions of the stack, S, and of the constant, C (the weights beta
       are in-sample in step 1; S is not).
    3. Evidence: the calibration slope b of S - C for the target (:func:`calibration_slope`:
       weighted least squares of y - C on S - C, with its standard error clustered by
       ``groups``, else by row).
    4. share = :func:`evidence_share` (b, se, ``threshold``): the non-negative garrote at
       ``threshold`` standard errors. Within noise the fit is the constant; beyond it the
       heterogeneous part fades in. b measures the evidence, not the size: the nested fits see
       3/5 of the rows and their slope is attenuated against the refit on all of them, so the
       share is not multiplied by b.

    Measured on the bias-learner suite's development seeds (``benchmarks/bias_variants.py``,
    splits seeded 0-11; README, "The bias learner on a suite of settings"): against the stack
    used in full, this rule kept a constant correction on the constant-bias settings (share 0 on
    every split of ``constant`` and ``near_constant``) and cost 0.002-0.03 oracle share on
    heterogeneous ones; multiplying the share by b as well cost 3-6 points of the gap closed; a
    hard gate (all of the stack beyond one standard error) and the garrote at half a standard
    error measured within noise of it. A soft rule: a hard gate on the mean R-loss cost 0.04
    oracle share on a heterogeneous setting (REFERENCE, section 6).

    Cost. In the R-learner's final stage with a few percent of gold rows, the rows of the rarer
    source carry weight about 1 and the others about p^2; the cross-validation keeps every row
    of weight above 1/4 and at most max(CV_LIGHT_ROWS_MIN, CV_LIGHT_ROWS_PER_HEAVY * n_heavy) of
    the others (seeded, their weights scaled by the inverse of the share kept, so that sums
    over rows are unchanged in expectation); the refits use every row. Each draw fits every
    candidate K + K (K - 1) / 2 times (15 for K = 5), on at most ``n_jobs`` threads (None: 1
    outside a ``joblib.parallel_config`` context, as in scikit-learn).

    Parameters
    ----------
    candidates : sequence of str, default ``STACK_CANDIDATES``
        Final stages of :func:`final_stage` to stack.
    cv : int
        Folds of each draw.
    n_repeats : int
        Fold draws averaged (seeds random_state, random_state + 1, ...).
    threshold : float
        Standard errors of the evidence rule (0: the stack without it).
    groups : array-like (n,), optional
        Query id of each row passed to ``fit``, in that order (econml calls a final stage's
        ``fit`` without groups; :class:`~causal_router.BiasEstimator` sets this from the data's
        ``query_id``): folds keep a query's rows together and standard errors are clustered by
        query. A ``fit`` on a different number of rows is an error.
    random_state : int or None
        Seeds the rows kept in the cross-validation, the fold draws and every candidate.
    n_jobs : int or None
        Most threads of the candidates' fits; None: 1 outside a ``joblib.parallel_config``
        context.

    Attributes
    ----------
    weights_ : ndarray (n_candidates,), the stacking weights beta (non-negative, not normalised).
    share_ : float, the share of the stack's departure from the constant in use.
    constant_ : float, c.
    slope_, slope_std_error_ : float, b and its standard error (NaN where S = C: the nested stack
        is the constant).
    cv_loss_ : ndarray (n_candidates,), each candidate's out-of-fold weighted squared error
        (mean per row, averaged over the draws); ``constant_cv_loss_`` and ``stacked_cv_loss_``
        the same for the nested predictions C and S.
    loss_gain_, loss_gain_std_error_ : float, the constant's out-of-fold loss minus the stack's
        (mean per row; paired row by row, clustered).
    n_clusters_ : int, clusters behind the standard errors.
    oof_ : ndarray (n,), the honest out-of-fold prediction C + share (S - C) of each row (NaN
        for rows left out of the cross-validation, see "Cost").
    oof_stack_, oof_constant_ : ndarray (n,), S and C (NaN likewise).
    estimators_ : list, the refitted candidates (None where beta = 0 or share = 0).
    """

    def __init__(self, candidates=STACK_CANDIDATES, cv: int = 5, n_repeats: int = STACK_REPEATS,
                 threshold: float = EVIDENCE_THRESHOLD, groups=None, random_state=None, n_jobs: int | None = None):
        self.candidates = candidates
        self.cv = cv
        self.n_repeats = n_repeats
        self.threshold = threshold
        self.groups = groups
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y, sample_weight=None):
        from scipy.optimize import nnls

        X, y, weight = _weighted_xy(X, y, sample_weight)
        n = len(y)
        if not isinstance(self.n_repeats, (int, np.integer)) or self.n_repeats < 1:
            raise DataError(f"n_repeats must be an integer >= 1, got {self.n_repeats!r}")
        if not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise DataError(f"cv must be an integer >= 2, got {self.cv!r}")
        if not np.isfinite(self.threshold) or self.threshold < 0:
            raise DataError(f"threshold must be a finite number >= 0, got {self.threshold!r}")
        groups = None if self.groups is None else np.asarray(self.groups)
        if groups is not None and len(groups) != n:
            raise DataError(f"StackedFinalStage: groups has {len(groups)} entries for the {n} rows it is fitted on")
        groups = repeated_groups(groups)  # one row per query: the rows are the units
        seed = as_seed(self.random_state)
        names = tuple(self.candidates)
        rows, w = _cross_validation_rows(weight, seed)
        Xc, yc, gc = X[rows], y[rows], None if groups is None else groups[rows]
        heavy = weight[rows] > 0.25
        R = int(self.n_repeats)
        level1, S, C = np.zeros((len(rows), len(names))), np.zeros(len(rows)), np.zeros(len(rows))
        for r in range(R):
            fold = fold_ids(heavy, gc, int(self.cv), None if seed is None else seed + r, X=Xc)
            F, s, c = _nested_out_of_fold(names, Xc, yc, w, fold, seed, self.n_jobs)
            level1 += F / R
            S += s / R
            C += c / R
        root = np.sqrt(w)
        self.weights_, _ = nnls(level1 * root[:, None], yc * root)

        # the evidence: calibration slope of the nested stack's departure from the constant
        h, e = S - C, yc - C
        self.slope_, self.slope_std_error_ = calibration_slope(h, e, w, gc)
        self.share_ = evidence_share(self.slope_, self.slope_std_error_, self.threshold)
        self.n_clusters_ = len(np.unique(gc)) if gc is not None else len(yc)
        d = w * (e ** 2 - (yc - S) ** 2)
        self.loss_gain_ = float(d.sum() / n)
        self.loss_gain_std_error_ = score_std_error(d - d.mean(), gc) / n
        self.cv_loss_ = (w[:, None] * (yc[:, None] - level1) ** 2).sum(axis=0) / n
        self.constant_cv_loss_ = float(w @ e ** 2) / n
        self.stacked_cv_loss_ = float(w @ (yc - S) ** 2) / n
        self.oof_stack_, self.oof_constant_ = np.full(n, np.nan), np.full(n, np.nan)
        self.oof_stack_[rows], self.oof_constant_[rows] = S, C
        self.oof_ = self.oof_constant_ + self.share_ * (self.oof_stack_ - self.oof_constant_)

        self.constant_ = float(weight @ y / weight.sum())
        used = self.weights_ * (self.share_ > 0)
        with ThreadPoolExecutor(max_workers=thread_count(self.n_jobs, len(names))) as pool:  # refits, no copy
            self.estimators_ = list(pool.map(
                lambda nb: final_stage(nb[0], seed).fit(X, y, sample_weight=weight) if nb[1] > 0 else None,
                zip(names, used)))
        self.n_features_in_ = X.shape[1]
        return self

    @property
    def effective_weights_(self) -> np.ndarray:
        """Weight of each candidate in the prediction, (n_candidates,): share * beta, plus
        1 - share on the constant (c) where "constant" is a candidate."""
        check_is_fitted(self, "share_")
        eff = self.share_ * np.asarray(self.weights_, dtype=float)
        names = list(self.candidates)
        if "constant" in names:
            eff[names.index("constant")] += 1.0 - self.share_
        return eff

    def predict(self, X):
        check_is_fitted(self, "share_")
        X = np.asarray(X, dtype=float)
        out = np.zeros(len(X))
        for b, model in zip(self.weights_, self.estimators_):
            if model is not None:
                out += b * np.asarray(model.predict(X), dtype=float).reshape(-1)
        return self.constant_ + self.share_ * (out - self.constant_)


def _cross_validation_rows(weight: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights) of the stack's cross-validation: every row of weight above 1/4 and at most
    max(CV_LIGHT_ROWS_MIN, CV_LIGHT_ROWS_PER_HEAVY * n_heavy) of the others, drawn with ``seed``,
    whose weights are scaled by (rows of their kind) / (rows kept)."""
    heavy = weight > 0.25
    light = np.flatnonzero(~heavy)
    keep = max(CV_LIGHT_ROWS_MIN, CV_LIGHT_ROWS_PER_HEAVY * int(heavy.sum()))
    if len(light) <= keep:
        return np.arange(len(weight)), weight
    kept = np.random.default_rng(seed).choice(light, size=keep, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(heavy), kept]))
    w = weight[rows].copy()
    w[~heavy[rows]] *= len(light) / keep
    return rows, w


def _nested_out_of_fold(names, X, y, w, fold, seed, n_jobs=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold predictions of the candidates ``names`` (n, n_names), and the nested
    out-of-fold predictions of their non-negative stack (n,) and of the constant (n,), for the
    folds ``fold`` (n,). Fold k's stack weights are fitted on the other folds' predictions by
    candidates fitted without fold k and that fold: K + K (K - 1) / 2 fits of each candidate, on
    at most ``n_jobs`` threads."""
    from scipy.optimize import nnls

    K = int(fold.max()) + 1
    members = [np.flatnonzero(fold == k) for k in range(K)]
    tasks = [(k,) for k in range(K)] + [(j, k) for j in range(K) for k in range(j + 1, K)]

    def run(task):
        test = np.isin(fold, task)
        train = ~test
        return task, np.column_stack([final_stage(name, seed).fit(X[train], y[train], sample_weight=w[train])
                                      .predict(X[test]) for name in names])

    F = np.zeros((len(y), len(names)))
    inner = np.zeros((len(y), K, len(names)))  # inner[i, k]: row i predicted without its fold and fold k
    with ThreadPoolExecutor(max_workers=thread_count(n_jobs, len(tasks))) as pool:
        for task, pred in pool.map(run, tasks):
            rows = np.flatnonzero(np.isin(fold, task))
            if len(task) == 1:
                F[rows] = pred
            else:
                j, k = task
                in_j = fold[rows] == j
                inner[rows[in_j], k] = pred[in_j]
                inner[rows[~in_j], j] = pred[~in_j]
    S, C = np.zeros(len(y)), np.zeros(len(y))
    root = np.sqrt(w)
    for k in range(K):
        others = fold != k
        beta, _ = nnls(inner[others, k] * root[others, None], y[others] * root[others])
        S[members[k]] = F[members[k]] @ beta
        C[members[k]] = w[others] @ y[others] / w[others].sum()
    return F, S, C


def out_of_fold_predictions(names, X: np.ndarray, y: np.ndarray, weight: np.ndarray, folds, seed: int,
                            n_jobs: int | None = None) -> np.ndarray:
    """Out-of-fold predictions (n, len(names)) of the final stages ``names`` (of
    :func:`final_stage`), each fitted on the other folds with ``sample_weight=weight``; ``folds``
    are (train, test) index pairs covering every row once. The folds run on at most ``n_jobs``
    threads (scikit-learn's reading of ``n_jobs``: None is 1 outside a ``joblib.parallel_config``
    context; LightGBM and BLAS release the GIL); each fit is seeded, so the result does not
    depend on their order or number.

    Parameters
    ----------
    names : sequence of str
        Final stages of :func:`final_stage`.
    X : ndarray of shape (n, d)
        Features.
    y : ndarray of shape (n,)
        Targets.
    weight : ndarray of shape (n,)
        Sample weights.
    folds : sequence of tuple of ndarray
        (train, test) index pairs covering every row once.
    seed : int
        Seeds every final stage.
    n_jobs : int or None
        Most threads.

    Returns
    -------
    ndarray of shape (n, len(names))
        The out-of-fold predictions.
    """
    def held_out(fold):
        train, test = fold
        return test, np.column_stack([final_stage(name, seed).fit(X[train], y[train], sample_weight=weight[train])
                                      .predict(X[test]) for name in names])

    oof = np.zeros((len(y), len(names)))
    with ThreadPoolExecutor(max_workers=thread_count(n_jobs, len(folds))) as pool:
        for test, pred in pool.map(held_out, folds):
            oof[test] = pred
    return oof


def _weighted_xy(X, y, sample_weight):
    """(X (n, d), y (n,), weights (n,)) as float arrays; unit weights where none are given."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float).reshape(-1)
    return X, y, weight
