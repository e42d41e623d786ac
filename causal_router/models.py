"""Nuisance, final-stage and outcome models, chosen by measurement (see README, "Defaults"), the
propensity clipper, and the column and fold helpers that feed them.

- Nuisances (E[o | s] and the gain model of every router): LightGBM, 100 trees of at most 15
  leaves, half the features per tree, 63 bins, leaves of at least 5 rows, one thread. About
  0.1 s per fit at 4,000 x 50; as accurate as a 100-tree random forest on the generator and
  ten times faster. Leaves of 5 rather than LightGBM's 20 rows: with model-pair indicators
  among the features and a hundred gold rows, a pair has about ten rows and could never be
  split off (measured, oracle share of Gold-only on PRD Vicuna80: 0.34 against -0.01; on the
  generator 0.34 against 0.40, Pooled, meta-router and All-Golden unchanged). One thread:
  LightGBM's OpenMP threads in parallel Monte Carlo workers slowed runs thirtyfold.
- Propensity P(t=1 | s): L2-regularised logistic regression on standardised features, the
  penalty chosen by 3-fold cross-validated log-loss. With a few percent of gold rows a
  flexible or weakly penalised classifier fits noise and pushes propensities toward 0, where
  1/p weights explode (measured on the generator: C=0.1 gave propensities spread over 0.18 and
  a standard error of the average bias twice as large); the cross-validated penalty shrinks to
  a near-constant propensity when the gold rows are a random draw and still follows a selection
  of gold rows that depends on the features.
- Final stages of the bias (CATE) model, all taking ``sample_weight``:
  ``constant`` (the weighted mean: one global bias), ``linear`` (ridge on standardised
  features, penalty chosen by efficient leave-one-out CV: with model-pair indicators among the
  features this shrinks one bias per pair toward the global bias) and ``forest`` (a random
  forest whose leaves must carry a minimum share of the total weight, i.e. of the gold rows).
"""

from __future__ import annotations

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._utils import as_seed
from ._validation import DataError

__all__ = [
    "default_regressor",
    "default_classifier",
    "fit_gain_model",
    "default_propensity",
    "final_stage",
    "FINAL_STAGES",
    "ClippedClassifier",
    "WeightedBoosting",
    "KnownPropensity",
    "UniqueColumns",
    "DuplicateAwareKFold",
]

FINAL_STAGES = ("constant", "linear", "boosting")


def default_regressor(random_state=None) -> LGBMRegressor:
    """Fast gradient-boosted trees for E[o | s] and for the router's gain model."""
    return LGBMRegressor(
        n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=5,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.5, max_bin=63,
        random_state=as_seed(random_state), verbose=-1, n_jobs=1,
    )


def fit_gain_model(model, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, random_state=None):
    """Fit (a clone of) ``model``, or :func:`default_regressor`, on X (n, d) and gains y (n,),
    with sample weights where they are not all 1; returns the fitted model."""
    model = clone(model) if model is not None else default_regressor(as_seed(random_state))
    if weight is None or np.all(weight == 1):
        return model.fit(X, y)
    return model.fit(X, y, sample_weight=weight)


def default_classifier(random_state=None) -> LGBMClassifier:
    """Fast gradient-boosted trees for classification (two-sample tests in diagnostics)."""
    return LGBMClassifier(
        n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=20,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.5, max_bin=63,
        random_state=as_seed(random_state), verbose=-1, n_jobs=1,
    )


def default_propensity(random_state=None):
    """Regularised logistic regression for P(gold | s)."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(Cs=np.logspace(-4, 0, 5), cv=3, scoring="neg_log_loss", max_iter=2000,
                             l1_ratios=(0.0,), use_legacy_attributes=False),
    )


def final_stage(kind: str, random_state=None):
    """A final-stage regressor of the bias, by name (one of :data:`FINAL_STAGES`)."""
    if kind == "constant":
        return DummyRegressor(strategy="mean")
    if kind == "linear":
        return RidgeCV(alphas=np.logspace(-2, 4, 25))
    if kind == "boosting":
        return WeightedBoosting(random_state=as_seed(random_state))
    raise DataError(f"unknown final stage {kind!r}; choose one of {FINAL_STAGES}")


class ClippedClassifier(ClassifierMixin, BaseEstimator):
    """Wrap a classifier so that ``predict_proba`` is clipped to [min_propensity, 1 - min_propensity].

    Used for the propensity of the R-learner (econml's DML has no clipping of its own).
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


class WeightedBoosting(RegressorMixin, BaseEstimator):
    """Gradient-boosted trees for a weighted final stage: every leaf must carry at least
    ``min_weight_fraction`` of the total sample weight.

    In the R-learner's final stage the weights (t - p)^2 are about 1 on gold rows and about
    p^2 on preference rows, so the constraint is on gold rows, where a count-based minimum
    leaf size would count the thousands of nearly weightless preference rows.
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
    """Stratified K-fold cross-fitting splitter that keeps identical rows in one fold.

    A bootstrap sample repeats rows; with ordinary folds a row's copy trains the outcome model
    that predicts it, its residual shrinks and so does the estimated bias. Without duplicates
    (or when one group of identical rows would exceed half a fold) this is
    ``StratifiedKFold(n_splits, shuffle=True, random_state)``.
    """

    def __init__(self, n_splits: int = 3, random_state=None):
        self.n_splits = n_splits
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X, y, groups=None):
        X = np.asarray(X, dtype=float)
        y = np.asarray(y).reshape(len(X), -1)[:, 0]
        plain = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.random_state)
        _, first, inverse, counts = np.unique(X, axis=0, return_index=True, return_inverse=True,
                                              return_counts=True)
        inverse = inverse.reshape(-1)
        if len(first) == len(X) or counts.max() > len(X) / (2 * self.n_splits):
            yield from plain.split(X, y)
            return
        try:
            rep_folds = list(plain.split(X[first], y[first]))
        except ValueError:  # too few representatives of a class: fall back to plain folds
            yield from plain.split(X, y)
            return
        for _, test_rep in rep_folds:
            test = np.isin(inverse, test_rep)
            yield np.flatnonzero(~test), np.flatnonzero(test)
