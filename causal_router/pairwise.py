"""Pairwise comparisons of K models: the data, the contrast design, and regressors on it.

A comparison is a row (s, a, b, o): query features s, two different models a and b, and the
observed gain o of a over b. With one utility function per model, u_ref = 0 for a reference
model, the expected gain is

    E[o | s, a, b] = u_a(s) - u_b(s)  (+ c, a common order effect, where a model allows it).

The **contrast design** stacks the query features and the contrast codes: Z = [S, D], S of shape
(n, d), D of shape (n, K - 1) with D[i, k] = +1 if row i's first model is model k, -1 if its
second, 0 otherwise; the reference model has no column. u_a(s) - u_b(s) = sum_k D[i, k] u_k(s).
The regressors below take Z like any scikit-learn regressor (``fit(Z, y, sample_weight)``,
``predict(Z)``), so that econml can use them as the final stage of the bias, and expose the
per-model functions with ``utilities(S)`` (n, K - 1).

- :class:`PairwiseRidge`: u_k(s) = gamma_k + s' theta_k. The per-model constants gamma (and the
  order effect) are not penalised; the slopes theta get one ridge penalty chosen by
  leave-one-out CV (RidgeCV on the slope block after projecting out the constants).
  ``terms="constant"`` drops the slopes, ``terms="none"`` predicts 0.
- :class:`PairwiseBoosting`: u_k(s) = gamma_k + boosted trees in s, fitted jointly by gradient
  boosting on the squared loss of the contrast (LightGBM with a K - 1 output custom objective:
  each boosting round grows one tree per model on the rows that compare it).
- :class:`PairwiseSelect`: the candidate of lowest cross-validated (weighted) squared error,
  folds grouped by query.

A model of the judge's bias may add an order effect: the design then carries a column
``listed_first`` (+1 / -1) between S and D, and the prediction adds c0 * listed_first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import RidgeCV
from sklearn.utils.validation import check_is_fitted

from ._utils import resolve_seed
from ._validation import (DataError, as_float_matrix, as_float_vector, check_columns, check_consistent_length,
                          check_same_index)
from .data import GOLD, PREFERENCE, EvalData, scale_constant
from .models import calibration_slope, evidence_share
from .routing import cost_matrix  # noqa: F401  (re-exported: the one cost broadcast lives in routing)

__all__ = ["PairwiseData", "PairwiseRegressor", "PairwiseRidge", "PairwiseBoosting", "PairwiseSelect", "BIAS_CANDIDATES", "contrast_codes", "contrast_design", "cost_matrix"]


def _labels(values, name: str) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    missing = pd.isna(arr)
    if missing.any():
        raise DataError(f"{name} has {int(missing.sum())} missing model names (first at row "
                        f"{int(np.flatnonzero(missing)[0])})")
    return arr.astype(str).astype(object)


def contrast_codes(model_a, model_b, models: Sequence[str], reference: str) -> np.ndarray:
    """D of shape (n, K - 1): +1 in the column of ``model_a``, -1 in that of ``model_b`` (the
    reference model has no column; columns follow ``models`` without it).

    Parameters
    ----------
    model_a, model_b : array-like of shape (n,)
        The names of the two models each row compares.
    models : sequence of str
        The K model names (every name in ``model_a`` and ``model_b`` among them).
    reference : str
        The reference model, whose utility is 0 (it has no column).

    Returns
    -------
    ndarray of shape (n, K - 1)
        The contrast codes.
    """
    a, b = _labels(model_a, "model_a"), _labels(model_b, "model_b")
    check_consistent_length(model_a=a, model_b=b)
    others = [m for m in models if m != reference]
    column = {m: j for j, m in enumerate(others)}
    unknown = sorted((set(a) | set(b)) - set(models))
    if unknown:
        raise DataError(f"unknown model name(s) {unknown[:5]}; the router knows {list(models)}")
    D = np.zeros((len(a), len(others)))
    rows = np.arange(len(a))
    ia = np.array([column.get(m, -1) for m in a])
    ib = np.array([column.get(m, -1) for m in b])
    D[rows[ia >= 0], ia[ia >= 0]] += 1.0
    D[rows[ib >= 0], ib[ib >= 0]] -= 1.0
    return D


def contrast_design(S, model_a, model_b, models: Sequence[str], reference: str) -> np.ndarray:
    """Z = [S, D] of shape (n, d + K - 1) (see the module docstring).

    Parameters
    ----------
    S : array-like of shape (n, d)
        Query features (finite).
    model_a, model_b : array-like of shape (n,)
        The names of the two models each row compares.
    models : sequence of str
        The K model names.
    reference : str
        The reference model (no column in D).

    Returns
    -------
    ndarray of shape (n, d + K - 1)
        The features followed by the contrast codes of :func:`contrast_codes`.
    """
    S = as_float_matrix(S, "X")
    D = contrast_codes(model_a, model_b, models, reference)
    check_consistent_length(X=S, model_a=D)
    return np.hstack([S, D])


class PairwiseData:
    """Pairwise evaluations of K models: one row per (query, model a, model b), gold or preference.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n, d)
        Query features (finite floats).
    gain : array-like of shape (n,)
        Observed gain of ``model_a`` over ``model_b``, on the scale of the mechanism that
        evaluated the row.
    source : array-like of shape (n,)
        ``"gold"`` / ``"preference"`` labels, or booleans / 0-1 (True = gold).
    model_a, model_b : array-like of shape (n,)
        Model names; ``model_a != model_b`` on every row. ``model_a`` is the model whose answer
        was listed first (where the judge saw an order), which the order effect of the bias
        model refers to.
    query_id : array-like of shape (n,), optional
        The query of each row; None: every row its own query.
    feature_names : sequence of str, optional
        Names of the features (default: a DataFrame's columns, else ``x0``, ``x1``, ... as
        :class:`~causal_router.data.EvalData` names them).

    Notes
    -----
    Features, gains and sources are checked as :class:`~causal_router.data.EvalData` checks them.
    """

    def __init__(self, X, gain, source, model_a, model_b, *, query_id=None, feature_names=None):
        check_same_index("PairwiseData", X=X, gain=gain, source=source, model_a=model_a, model_b=model_b,
                         query_id=query_id)
        rows = EvalData(X, gain, source, query_id=query_id, feature_names=feature_names)
        self.X, self.gain, self.is_gold = rows.X, rows.gain, rows.is_gold
        self.query_id, self.feature_names = rows.query_id, rows.feature_names
        self.named_features = rows.named_features
        self.model_a = _labels(model_a, "model_a")
        self.model_b = _labels(model_b, "model_b")
        check_consistent_length(X=self.X, model_a=self.model_a, model_b=self.model_b)
        same = self.model_a == self.model_b
        if same.any():
            raise DataError(f"model_a equals model_b on {int(same.sum())} rows (first at row "
                            f"{int(np.flatnonzero(same)[0])}, model {self.model_a[same][0]!r}); a comparison "
                            "needs two different models")

    @classmethod
    def from_frame(cls, df: pd.DataFrame, features: Sequence[str], gain: str = "gain", source: str = "source",
                   model_a: str = "model_a", model_b: str = "model_b", *, gold_value="gold",
                   preference_value="preference", query_id: str | None = None) -> "PairwiseData":
        """Build from a DataFrame whose columns the arguments name; the frame is not modified.
        ``source`` values equal to ``gold_value`` are gold rows, to ``preference_value``
        preference rows (any other value is an error); a boolean column is taken as is.

        Parameters
        ----------
        df : DataFrame
            One row per comparison.
        features : str or sequence of str
            The feature columns (not the model columns).
        gain : str, default "gain"
            The column of the observed gain of ``model_a`` over ``model_b``.
        source : str, default "source"
            The column of the evaluation mechanism.
        model_a, model_b : str, default "model_a", "model_b"
            The columns of the two model names.
        gold_value : object, default "gold"
            The ``source`` value of gold rows.
        preference_value : object, default "preference"
            The ``source`` value of preference rows.
        query_id : str, optional
            The column of the query ids; None: every row its own query.

        Returns
        -------
        PairwiseData
            The checked data.
        """
        features = [features] if isinstance(features, str) else list(features)
        check_columns(df, [model_a, model_b], "data frame")
        clash = [c for c in (model_a, model_b) if c in features]
        if clash:
            raise DataError(f"column(s) {clash} name the models and cannot also be features")
        rows = EvalData.from_frame(df, features, gain, source, gold_value=gold_value,
                                   preference_value=preference_value, query_id=query_id)
        data = cls(rows.X, rows.gain, rows.is_gold, df[model_a].to_numpy(), df[model_b].to_numpy(),
                   query_id=rows.query_id, feature_names=rows.feature_names)
        data.named_features = rows.named_features
        return data

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return self.X.shape[0]

    def __repr__(self) -> str:
        return (f"PairwiseData(n_gold={self.n_gold}, n_preference={self.n_preference}, "
                f"models={self.models}, n_features={self.X.shape[1]})")

    @property
    def n_gold(self) -> int:
        return int(self.is_gold.sum())

    @property
    def n_preference(self) -> int:
        return int((~self.is_gold).sum())

    @property
    def models(self) -> list[str]:
        """The model names, sorted."""
        return sorted(set(self.model_a) | set(self.model_b))

    def subset(self, rows) -> "PairwiseData":
        """A new PairwiseData with the given rows (boolean mask or indices).

        Parameters
        ----------
        rows : array-like of bool of shape (n,), or of int
            A boolean mask or row positions.

        Returns
        -------
        PairwiseData
            The selected rows (feature names and flags kept).
        """
        rows = np.asarray(rows)
        new = object.__new__(PairwiseData)
        new.__dict__.update(self.__dict__)
        for name in ("X", "gain", "is_gold", "model_a", "model_b", "query_id"):
            value = getattr(self, name)
            setattr(new, name, None if value is None else value[rows])
        return new

    def to_frame(self) -> pd.DataFrame:
        """Features, ``model_a``, ``model_b``, ``gain``, ``source`` (and ``query_id``) as a DataFrame.

        Returns
        -------
        DataFrame of shape (n, d + 4) or (n, d + 5)
            One row per comparison; ``source`` holds "gold" / "preference".
        """
        frame = pd.DataFrame(self.X, columns=self.feature_names)
        frame["model_a"], frame["model_b"] = self.model_a, self.model_b
        frame["gain"] = self.gain
        frame["source"] = np.where(self.is_gold, GOLD, PREFERENCE)
        if self.query_id is not None:
            frame["query_id"] = self.query_id
        return frame

    def components(self, rows=None) -> list[set]:
        """Connected components of the comparison graph (models as nodes, compared pairs as
        edges) over ``rows`` (all rows by default), largest first.

        Parameters
        ----------
        rows : array-like of bool of shape (n,), or of int, optional
            The rows whose comparisons count; None: every row.

        Returns
        -------
        list of set of str
            The model names of each component, largest first.
        """
        a, b = (self.model_a, self.model_b) if rows is None else (self.model_a[rows], self.model_b[rows])
        parent = {m: m for m in (*a, *b)}

        def root(m):
            while parent[m] != m:
                parent[m] = parent[parent[m]]
                m = parent[m]
            return m

        for x, y in set(zip(a, b)):
            parent[root(x)] = root(y)
        groups: dict = {}
        for m in parent:
            groups.setdefault(root(m), set()).add(m)
        return sorted(groups.values(), key=len, reverse=True)

    def oriented(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The rows turned so that each pair's models are in sorted order: (gain, model_a,
        model_b, listed_first) with ``listed_first`` = +1 where the row already was in that
        order (its first model was listed first) and -1 where it was turned (gain negated).
        Estimates fitted on oriented rows do not depend on how a user orients the rows.

        Returns
        -------
        gain : ndarray of shape (n,)
            The gain of the row's first model in sorted order over its second.
        model_a, model_b : ndarray of object, shape (n,)
            The model names in sorted order.
        listed_first : ndarray of shape (n,)
            +1.0 where the row was not turned, -1.0 where it was.
        """
        first = np.where(self.model_a < self.model_b, 1.0, -1.0)
        turned = first < 0
        a = np.where(turned, self.model_b, self.model_a).astype(object)
        b = np.where(turned, self.model_a, self.model_b).astype(object)
        return first * self.gain, a, b, first

    def scale_constant(self, method: str | None = "variance") -> float:
        """The gold-to-preference scale constant c (``c * gold ~ preference``) of
        :func:`causal_router.data.scale_constant` on the :meth:`oriented` gains, so that c does
        not depend on how the rows are oriented. 1 with one source only or ``method=None``.

        Parameters
        ----------
        method : {"variance", "amplitude", "wasserstein", None}, default "variance"
            The fit of c (:func:`causal_router.data.scale_constant`); None: 1.

        Returns
        -------
        float
            The scale constant c.
        """
        if method is None or self.n_gold == 0 or self.n_preference == 0:
            return 1.0
        gain = self.oriented()[0]
        return scale_constant(gain[self.is_gold], gain[~self.is_gold], method)


# ---------------------------------------------------------------------------- regressors
class PairwiseRegressor(RegressorMixin, BaseEstimator):
    """Base of the regressors on the contrast design: splitting Z into its blocks, the per-model
    constants, prediction. Subclasses implement ``fit`` and :meth:`utilities`.

    Z = [S, D], or [S, o, D] for a model with an order effect: o (+1 / -1) says whether the
    row's first model was listed first, and the prediction adds ``order_ * o``."""

    order_effect = False

    def _split(self, Z) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        Z = as_float_matrix(Z, "Z")
        k = int(self.n_contrasts)
        extra = k + int(bool(self.order_effect))
        if k < 1 or Z.shape[1] <= extra:
            raise DataError(f"the contrast design needs query features and {extra} design columns "
                            f"(n_contrasts={k}{', an order column' if self.order_effect else ''}); "
                            f"got {Z.shape[1]} columns")
        if hasattr(self, "n_features_in_") and Z.shape[1] != self.n_features_in_:
            raise DataError(f"Z has {Z.shape[1]} columns, the model was fitted with {self.n_features_in_}")
        order = Z[:, -extra] if self.order_effect else None
        return Z[:, :-extra], order, Z[:, -k:]

    def _fit_constants(self, D, order, y, w):
        """Weighted least squares of y on D (and the order column): the per-model constants
        (and the order effect); pseudo-inverse, so models absent from the rows get 0."""
        A = D if order is None else np.hstack([D, order[:, None]])
        sw = np.sqrt(w)[:, None]
        coef = np.linalg.lstsq(A * sw, y * sw[:, 0], rcond=None)[0]
        return A, coef

    def predict(self, Z) -> np.ndarray:
        """Predicted gain of each row's first model over its second.

        Parameters
        ----------
        Z : array-like of shape (n, d + K - 1), or (n, d + K) with an order column
            The contrast design [S, D] (or [S, o, D]) of :func:`contrast_design`.

        Returns
        -------
        ndarray of shape (n,)
            sum_k D_ik u_k(s_i), plus ``order_ * o_i`` with an order effect.
        """
        check_is_fitted(self, "const_")
        S, order, D = self._split(Z)
        pred = (D * self.utilities(S)).sum(axis=1)
        return pred if order is None else pred + self.order_ * order

    def utilities(self, S) -> np.ndarray:
        """u_k(s) for the K - 1 non-reference models (columns in contrast order).

        Parameters
        ----------
        S : array-like of shape (n, d)
            Query features.

        Returns
        -------
        ndarray of shape (n, K - 1)
            The utilities relative to the reference model.
        """
        raise NotImplementedError


def _check_weight(sample_weight, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = as_float_vector(sample_weight, "sample_weight")
    check_consistent_length(y=np.empty(n), sample_weight=w)
    if np.any(w < 0):
        raise DataError("sample_weight must be non-negative")
    return w


class PairwiseRidge(PairwiseRegressor):
    """u_k(s) = gamma_k + s' theta_k, ridge on the slopes (penalty by leave-one-out CV).

    Parameters
    ----------
    n_contrasts : int
        K - 1, the number of contrast columns at the end of Z (set by the routers).
    terms : {"linear", "constant", "none"}
        "linear": constants and slopes; "constant": u_k does not depend on s; "none": u_k = 0
        (and no order effect: the model predicts 0, a candidate meaning "no bias").
    order_effect : bool
        Z carries an order column o before the contrast codes and the prediction adds c * o
        (a judge's preference for the answer listed first).
    alphas : array-like
        Penalties tried by RidgeCV (on the slope block, after projecting out the constants).

    Attributes
    ----------
    const_ : ndarray (K - 1,), the constants of the contrasts.
    coef_ : ndarray (K - 1, d), their slopes.
    order_ : float, the order effect (0 without one).
    alpha_ : float or None, the ridge penalty chosen.
    """

    def __init__(self, n_contrasts: int = 1, *, terms: str = "linear", order_effect: bool = False,
                 alphas=tuple(float(a) for a in np.logspace(-2, 4, 25))):
        self.n_contrasts = n_contrasts
        self.terms = terms
        self.order_effect = order_effect
        self.alphas = alphas

    def fit(self, Z, y, sample_weight=None) -> "PairwiseRidge":
        S, order, D = self._split(Z)
        y = as_float_vector(y, "y")
        check_consistent_length(Z=S, y=y)
        w = _check_weight(sample_weight, len(y))
        if self.terms not in ("linear", "constant", "none"):
            raise ValueError(f"terms must be 'linear', 'constant' or 'none', got {self.terms!r}")
        A, gamma = self._fit_constants(D, order, y, w)
        d, k = S.shape[1], D.shape[1]
        if self.terms == "none":
            gamma = np.zeros_like(gamma)
        self.coef_, self.alpha_ = np.zeros((k, d)), None
        if self.terms == "linear":
            # Frisch-Waugh-Lovell: project the constants out of the slope block and of y, ridge on
            # the rest (the constants stay unpenalised), then refit the constants.
            B = (D[:, :, None] * S[:, None, :]).reshape(len(y), k * d)
            sw = np.sqrt(w)[:, None]
            Aw = A * sw
            proj = np.linalg.pinv(Aw)
            Bt = B * sw - Aw @ (proj @ (B * sw))
            yt = y * sw[:, 0] - Aw @ (proj @ (y * sw[:, 0]))
            ridge = RidgeCV(alphas=np.asarray(self.alphas, dtype=float), fit_intercept=False).fit(Bt, yt)
            theta = ridge.coef_
            self.coef_, self.alpha_ = theta.reshape(k, d), float(ridge.alpha_)
            gamma = np.linalg.lstsq(Aw, (y - B @ theta) * sw[:, 0], rcond=None)[0]
        self.const_ = gamma[:k]
        self.order_ = float(gamma[k]) if self.order_effect else 0.0
        self.n_features_in_ = S.shape[1] + A.shape[1]
        return self

    def utilities(self, S) -> np.ndarray:
        check_is_fitted(self, "const_")
        S = as_float_matrix(S, "X")
        return self.const_[None, :] + S @ self.coef_.T

    def to_state(self) -> tuple[dict, dict]:
        """The fitted utilities as (JSON-able dict, arrays) for a router file: ``kind`` "ridge",
        ``n_contrasts``, ``terms``; arrays ``const`` (K - 1,) and ``coef`` (K - 1, d). A model with
        an order effect is not a utility model and is refused.

        Returns
        -------
        state : dict
            ``kind``, ``n_contrasts`` and ``terms``.
        arrays : dict
            ``const`` and ``coef``, float arrays.
        """
        check_is_fitted(self, "const_")
        if self.order_effect:
            raise DataError("a PairwiseRidge with an order effect is a bias model, not a utility model")
        return ({"kind": "ridge", "n_contrasts": int(self.n_contrasts), "terms": str(self.terms)},
                {"const": np.asarray(self.const_, dtype=float), "coef": np.asarray(self.coef_, dtype=float)})

    @classmethod
    def from_state(cls, state: dict, arrays: dict, *, n_features: int) -> "PairwiseRidge":
        """A fitted PairwiseRidge from :meth:`to_state`'s output (shapes checked by the caller,
        :func:`causal_router.io.read_router_file`).

        Parameters
        ----------
        state : dict
            ``n_contrasts`` and ``terms``.
        arrays : dict
            ``const`` of shape (K - 1,) and ``coef`` of shape (K - 1, d).
        n_features : int
            d, the number of query features.

        Returns
        -------
        PairwiseRidge
            The fitted model (no order effect).
        """
        self = cls(int(state["n_contrasts"]), terms=state.get("terms", "linear"))
        self.const_ = np.asarray(arrays["const"], dtype=float)
        self.coef_ = np.asarray(arrays["coef"], dtype=float)
        if self.const_.shape != (self.n_contrasts,) or self.coef_.shape != (self.n_contrasts, n_features):
            raise DataError(f"PairwiseRidge state: const of shape {self.const_.shape} and coef of shape "
                            f"{self.coef_.shape} for {self.n_contrasts} contrasts and {n_features} features")
        self.order_, self.alpha_ = 0.0, None
        self.n_features_in_ = n_features + self.n_contrasts
        return self


class PairwiseBoosting(PairwiseRegressor):
    """u_k(s) = gamma_k + f_k(s), the f_k boosted jointly on the contrast's squared loss.

    Gradient boosting with LightGBM and a custom objective of K - 1 outputs (one per
    non-reference model): for row i the loss w_i (y_i - sum_k D_ik F_ik)^2 / 2 has gradient
    -w_i r_i D_ik and hessian w_i D_ik^2 in output k, so model k's tree in each round is grown
    on the rows that compare model k. Boosting starts from the weighted least-squares constants
    gamma. Tree settings follow the package's default regressor
    (:func:`causal_router.models.default_regressor`), with the minimum leaf size counted in
    comparisons of the model (the hessian).

    Parameters
    ----------
    n_contrasts : int, default 1
        K - 1, the number of contrast columns at the end of Z (set by the routers).
    n_estimators : int, default 100
        Boosting rounds.
    learning_rate : float, default 0.1
        LightGBM's shrinkage.
    num_leaves : int, default 15
        Most leaves per tree.
    min_leaf_weight : float, default 5.0
        Least hessian (comparisons of the model, weighted) in a leaf.
    random_state : int or None
        Seeds LightGBM's bagging and feature sampling; None: fresh entropy at each fit.

    Attributes
    ----------
    booster_ : lightgbm.Booster, the fitted trees.
    const_ : ndarray (K - 1,), the constants of the contrasts.
    order_ : float, 0.0 (no order effect).
    """

    def __init__(self, n_contrasts: int = 1, *, n_estimators: int = 100, learning_rate: float = 0.1,
                 num_leaves: int = 15, min_leaf_weight: float = 5.0, random_state=None):
        self.n_contrasts = n_contrasts
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_leaf_weight = min_leaf_weight
        self.random_state = random_state

    def _params(self) -> dict:
        return {"num_class": int(self.n_contrasts), "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_data_in_leaf": 1,
                "min_sum_hessian_in_leaf": self.min_leaf_weight, "bagging_fraction": 0.8, "bagging_freq": 1,
                "feature_fraction": 0.5, "max_bin": 63, "boost_from_average": False,
                "seed": resolve_seed(self.random_state), "deterministic": True, "num_threads": 1,
                "verbose": -1}

    def fit(self, Z, y, sample_weight=None) -> "PairwiseBoosting":
        import lightgbm as lgb

        S, _, D = self._split(Z)
        y = as_float_vector(y, "y")
        check_consistent_length(Z=S, y=y)
        w = _check_weight(sample_weight, len(y))
        _, gamma = self._fit_constants(D, None, y, w)
        k = D.shape[1]
        resid = y - D @ gamma

        def objective(preds, _data):
            F = preds.reshape(len(y), k)
            r = resid - (D * F).sum(axis=1)
            return -(w * r)[:, None] * D, w[:, None] * D ** 2

        params = {**self._params(), "objective": objective}
        if k == 1:
            params.pop("num_class")
        train = lgb.Dataset(S, free_raw_data=True, params={"max_bin": 63, "verbose": -1})
        self.booster_ = lgb.train(params, train, num_boost_round=int(self.n_estimators))
        self.const_ = gamma
        self.order_ = 0.0
        self.n_features_in_ = S.shape[1] + k
        return self

    def utilities(self, S) -> np.ndarray:
        check_is_fitted(self, "const_")
        S = as_float_matrix(S, "X")
        raw = np.asarray(self.booster_.predict(S, raw_score=True), dtype=float).reshape(len(S), -1)
        return self.const_[None, :] + raw

    def to_state(self) -> tuple[dict, dict]:
        """The fitted utilities as (JSON-able dict, members) for a router file: ``kind``
        "boosting", ``n_contrasts``; members ``const`` (K - 1,) and ``booster`` (the LightGBM
        Booster, stored as LightGBM's text model).

        Returns
        -------
        state : dict
            ``kind`` and ``n_contrasts``.
        members : dict
            ``const`` (float array) and ``booster`` (lightgbm.Booster).
        """
        check_is_fitted(self, "const_")
        return ({"kind": "boosting", "n_contrasts": int(self.n_contrasts)},
                {"const": np.asarray(self.const_, dtype=float), "booster": self.booster_})

    @classmethod
    def from_state(cls, state: dict, arrays: dict, *, n_features: int) -> "PairwiseBoosting":
        """A fitted PairwiseBoosting from :meth:`to_state`'s output (the booster's outputs and
        features checked by :func:`causal_router.io.read_router_file`).

        Parameters
        ----------
        state : dict
            ``n_contrasts``.
        arrays : dict
            ``const`` of shape (K - 1,) and ``booster`` (lightgbm.Booster).
        n_features : int
            d, the number of query features.

        Returns
        -------
        PairwiseBoosting
            The fitted model.
        """
        self = cls(int(state["n_contrasts"]))
        self.const_ = np.asarray(arrays["const"], dtype=float)
        if self.const_.shape != (self.n_contrasts,):
            raise DataError(f"PairwiseBoosting state: const of shape {self.const_.shape} for {self.n_contrasts} "
                            "contrasts")
        self.booster_ = arrays["booster"]
        self.order_ = 0.0
        self.n_features_in_ = n_features + self.n_contrasts
        return self


class PairwiseSelect(PairwiseRegressor):
    """The candidate of lowest cross-validated (weighted) squared error, refitted on all rows;
    optionally used only as far as held-out evidence supports it.

    Folds keep the rows of one query together (rows with identical query features S), so the
    score is that of predicting new queries. Default candidates: :class:`PairwiseRidge` (linear
    utilities: best with few rows or few informative features; measured on PandaLM) and
    :class:`PairwiseBoosting` (nonlinear utilities: best with many rows; measured on the
    K-model generator). As the R-learner's final stage (target (o - mu) / (t - p), weight
    (t - p)^2) the weighted squared error is the out-of-fold R-loss, the criterion of econml's
    RScorer; :class:`~causal_router.MultiRouter` selects its bias model so among
    :data:`BIAS_CANDIDATES`.

    With ``threshold`` set (the bias model's rule, as in
    :class:`~causal_router.models.StackedFinalStage`): the chosen candidate's out-of-fold
    predictions f, averaged over ``n_repeats`` fold draws, give a calibration slope b of the
    target on f (:func:`~causal_router.models.calibration_slope`: weighted least squares through
    0, the prediction "no bias", with its standard error clustered by query); the prediction is
    share * f(s), share = :func:`~causal_router.models.evidence_share` (b, se, ``threshold``), the
    non-negative garrote of the two-model bias model. Within noise the model predicts 0: for the
    bias, no correction, so that :class:`~causal_router.MultiRouter` falls back to
    :class:`~causal_router.multi.PooledMulti`.

    Parameters
    ----------
    n_contrasts : int
        K - 1, the number of contrast columns at the end of Z (set on every candidate).
    candidates : sequence of PairwiseRegressor, optional
        The candidates (cloned); None: ``PairwiseRidge()`` and ``PairwiseBoosting()``.
    cv : int
        Folds of the selection.
    order_effect : bool
        Z carries an order column (set on every candidate, which must then accept it).
    threshold : float, optional
        Standard errors of the evidence rule (None: no rule, the chosen candidate as fitted).
    n_repeats : int
        Fold draws averaged (seeds random_state, random_state + 1, ...).
    random_state : int or None
        Seeds the folds and the candidates that have a ``random_state`` (and none of their own);
        None: fresh entropy for each fit, as in scikit-learn.

    Attributes
    ----------
    scores_ : DataFrame, mean out-of-fold squared error (``mse``) and its standard error per
        candidate (``std_error``, over rows), ``chosen``.
    chosen_ : str, the chosen candidate's name.
    estimator_ : the chosen candidate, refitted on every row.
    share_ : float, the share of the chosen candidate's prediction in use (1 without ``threshold``).
    slope_, slope_std_error_ : float, b and its standard error (NaN without ``threshold``, or where
        the chosen candidate predicts 0).
    """

    def __init__(self, n_contrasts: int = 1, *, candidates=None, cv: int = 5, order_effect: bool = False,
                 threshold: float | None = None, n_repeats: int = 1, random_state=None):
        self.n_contrasts = n_contrasts
        self.candidates = candidates
        self.cv = cv
        self.order_effect = order_effect
        self.threshold = threshold
        self.n_repeats = n_repeats
        self.random_state = random_state

    def _candidates(self, seed: int) -> dict:
        from sklearn.base import clone

        cands = self.candidates if self.candidates is not None else (PairwiseRidge(), PairwiseBoosting())
        out = {}
        for c in cands:
            c = clone(c).set_params(n_contrasts=self.n_contrasts)
            if c.get_params().get("random_state", False) is None:
                c.set_params(random_state=seed)
            if self.order_effect:
                if "order_effect" not in c.get_params():
                    raise ValueError(f"candidate {type(c).__name__} has no order effect; the design has an order column")
                c.set_params(order_effect=True)
            name = type(c).__name__ + (f"({c.terms})" if isinstance(c, PairwiseRidge) and c.terms != "linear" else "")
            out[name if name not in out else f"{name}_{len(out)}"] = c
        return out

    def fit(self, Z, y, sample_weight=None) -> "PairwiseSelect":
        from sklearn.base import clone
        from sklearn.model_selection import GroupKFold

        S, order, D = self._split(Z)
        Z = np.hstack([S, D] if order is None else [S, order[:, None], D])
        y = as_float_vector(y, "y")
        check_consistent_length(Z=S, y=y)
        w = _check_weight(sample_weight, len(y))
        seed = resolve_seed(self.random_state)
        cands = self._candidates(seed)
        _, groups = np.unique(S, axis=0, return_inverse=True)
        groups = groups.reshape(-1)
        n_groups = int(groups.max()) + 1
        if not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ValueError(f"cv must be an integer >= 2, got {self.cv!r}")
        if not isinstance(self.n_repeats, (int, np.integer)) or self.n_repeats < 1:
            raise ValueError(f"n_repeats must be an integer >= 1, got {self.n_repeats!r}")
        if n_groups < self.cv:
            raise DataError(f"PairwiseSelect needs at least cv={self.cv} distinct queries, got {n_groups}")
        losses = np.zeros((len(cands), len(y)))
        oof = np.zeros((len(cands), len(y)))
        for r in range(int(self.n_repeats)):
            folds = GroupKFold(int(self.cv), shuffle=True, random_state=seed + r)
            for train, test in folds.split(Z, y, groups):
                for j, model in enumerate(cands.values()):
                    pred = clone(model).fit(Z[train], y[train], sample_weight=w[train]).predict(Z[test])
                    oof[j, test] += pred / self.n_repeats
                    losses[j, test] += w[test] * (y[test] - pred) ** 2 / self.n_repeats
        mse = losses.mean(axis=1)
        best = int(np.argmin(mse))
        self.scores_ = pd.DataFrame({"mse": mse, "std_error": losses.std(axis=1, ddof=1) / np.sqrt(len(y)),
                                     "chosen": np.arange(len(cands)) == best}, index=pd.Index(list(cands), name="model"))
        self.chosen_ = list(cands)[best]
        self.estimator_ = list(cands.values())[best].fit(Z, y, sample_weight=w)
        self.share_, self.slope_, self.slope_std_error_ = 1.0, float("nan"), float("nan")
        if self.threshold is not None:  # the evidence rule: the chosen candidate's departure from "no bias"
            self.slope_, self.slope_std_error_ = calibration_slope(oof[best], y, w, groups)
            self.share_ = evidence_share(self.slope_, self.slope_std_error_, self.threshold)
        self.const_ = self.share_ * self.estimator_.const_
        self.order_ = self.share_ * self.estimator_.order_
        self.n_features_in_ = Z.shape[1]
        return self

    def utilities(self, S) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self.share_ * self.estimator_.utilities(S)


#: Candidates of the K-model bias model (MultiRouter's default final stage), simplest first:
#: no bias (no correction: the router then equals PooledMulti), per-model constants, per-model
#: linear functions; each with the order effect when the design has one.
BIAS_CANDIDATES = (PairwiseRidge(terms="none"), PairwiseRidge(terms="constant"), PairwiseRidge(terms="linear"))
