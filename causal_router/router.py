"""Routers: where labels are corrected and where routes are decided.

Every router predicts the gold-standard gain psi(q) of the primary model over the alternative
and routes q to the primary iff

    D(q) = psi_hat(q) - w * (C_p(q) - C_a(q)) > 0        (costs 1 / 0 unless given per query).

:class:`MetaRouter` learns the preference bias Delta(s) (:class:`~causal_router.BiasEstimator`),
corrects every preference label y_j to y_j + Delta_hat(q_j), and fits the gain model on the gold
rows plus the corrected preference rows. The baselines (:mod:`causal_router.baselines`) share
:class:`BaseRouter` and differ only in the labels they train on.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ._utils import as_seed
from ._validation import DataError, as_float_matrix, as_float_vector, check_consistent_length
from .bias import BiasEstimator
from .data import EvalData
from .models import default_regressor

__all__ = ["BaseRouter", "MetaRouter", "FORMAT_VERSION"]

FORMAT_VERSION = 1


class BaseRouter(BaseEstimator):
    """Shared routing logic. Subclasses implement ``fit(data)`` and set ``gain_model_``,
    ``scale_`` (predictions of ``gain_model_`` divided by it are on the gold scale) and
    ``n_features_in_``."""

    def _record_features(self, data: EvalData) -> None:
        self.__dict__.pop("_compiled", None)  # a refit invalidates the compiled trees
        self.n_features_in_ = data.X.shape[1]
        self.feature_names_in_ = np.asarray(data.feature_names, dtype=object)

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        X = as_float_matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features, the router was fitted with {self.n_features_in_}")
        return X

    def predict_gain(self, X) -> np.ndarray:
        """Predicted gold-standard gain of the primary over the alternative, shape (n,)."""
        X = self._check_X(X)
        return self._predict_raw(X) / self.scale_

    def _predict_raw(self, X: np.ndarray) -> np.ndarray:
        """Predictions of ``gain_model_``: a LightGBM gain model is compiled on first use
        (:mod:`causal_router._compiled`, identical predictions, several times faster in batch)."""
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            from ._compiled import compile_lightgbm

            compiled = self._compiled = compile_lightgbm(self.gain_model_) or False
        if compiled:
            return compiled.predict(X)
        return np.asarray(self.gain_model_.predict(X), dtype=float).reshape(-1)

    def route(self, X, cost_weight: float = 0.0, cost_primary=None, cost_alternative=None) -> np.ndarray:
        """Boolean array of shape (n,): True = send the query to the primary model.

        Routes where gain - cost_weight * (cost_primary - cost_alternative) > 0; costs default
        to 1 and 0 (then the rule is gain > cost_weight).
        """
        gain = self.predict_gain(X)
        return gain - cost_weight * _cost_gap(len(gain), cost_primary, cost_alternative) > 0

    def threshold_for_share(self, X_ref, primary_share: float, cost_primary=None, cost_alternative=None) -> float:
        """The cost weight w that sends ``primary_share`` of the queries ``X_ref`` to the primary.

        With per-query costs the rule compares gain / (C_p - C_a) to w (C_p > C_a required).
        ``route(X_ref, w)`` then sends floor(primary_share * n) queries to the primary (fewer
        where predicted gains tie at the threshold).
        """
        if not 0 <= primary_share <= 1:
            raise DataError(f"primary_share must be in [0, 1], got {primary_share!r}")
        gain = self.predict_gain(X_ref)
        gap = _cost_gap(len(gain), cost_primary, cost_alternative)
        if np.any(gap <= 0):
            raise DataError("cost_primary must exceed cost_alternative on every query to set a budget")
        ratio = np.sort(gain / gap)[::-1]
        k = int(np.floor(primary_share * len(ratio)))
        if k == 0:
            return float(ratio[0])
        if k == len(ratio):
            return float(np.nextafter(ratio[-1], -np.inf))
        return float((ratio[k - 1] + ratio[k]) / 2) if ratio[k - 1] > ratio[k] else float(ratio[k])

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted router to ``path`` (joblib), with the format and library versions."""
        check_is_fitted(self, "n_features_in_")
        joblib.dump({"format": "causal_router", "format_version": FORMAT_VERSION,
                     "versions": _versions(), "router": self}, Path(path))

    @classmethod
    def load(cls, path) -> "BaseRouter":
        """Read a router written by :meth:`save`; refuses files of another format version."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"no router file at {path}")
        try:
            payload = joblib.load(path)
        except Exception as exc:  # unpickling errors come in many types
            raise DataError(f"{path} is not a causal_router router file ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != "causal_router":
            raise DataError(f"{path} is not a causal_router router file")
        if payload.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{path} was written by an incompatible version (router format "
                f"{payload.get('format_version')}, this causal_router reads format {FORMAT_VERSION}; "
                f"written with {payload.get('versions')}); refit the router"
            )
        saved, now = payload.get("versions", {}), _versions()
        mismatched = {k: (saved.get(k), v) for k, v in now.items() if k != "causal_router" and saved.get(k) != v}
        if mismatched:
            import warnings
            warnings.warn(f"router file {path} was written with other library versions {mismatched}; "
                          "predictions may differ", UserWarning, stacklevel=2)
        router = payload["router"]
        if not isinstance(router, cls):
            raise DataError(f"{path} holds a {type(router).__name__}, not a {cls.__name__}")
        return router


class MetaRouter(BaseRouter):
    """Meta-Router: learn the preference bias, correct the preference labels, fit the gain model.

    Parameters
    ----------
    bias : BiasEstimator, optional
        The bias model (default ``BiasEstimator("r")``, the R-learner with a ridge final
        stage: best measured across the generator and the real data); cloned at fit.
    outcome_model : regressor, optional
        Gain model fitted on gold plus corrected preference rows (default LightGBM).
    preference_weight : float
        Weight lambda >= 0 of each corrected preference row relative to a gold row.
    random_state : int or None
        Seeds the bias estimator (unless it has its own) and the gain model.

    Attributes
    ----------
    bias_ : the fitted BiasEstimator.
    gain_model_ : the fitted gain model (preference scale; predictions are divided by ``scale_``).
    corrected_gain_ : ndarray (n,), training labels on the gold scale after correction.
    """

    def __init__(self, bias: BiasEstimator | None = None, outcome_model=None,
                 preference_weight: float = 1.0, random_state=None):
        self.bias = bias
        self.outcome_model = outcome_model
        self.preference_weight = preference_weight
        self.random_state = random_state

    def fit(self, data: EvalData) -> "MetaRouter":
        """Fit the bias, correct the preference labels, fit the gain model; returns self."""
        if not isinstance(data, EvalData):
            raise DataError(f"fit expects an EvalData, got {type(data).__name__}")
        if not np.isfinite(self.preference_weight) or self.preference_weight < 0:
            raise ValueError(f"preference_weight must be a finite number >= 0, got {self.preference_weight!r}")
        data.require_both_sources("MetaRouter")
        bias = clone(self.bias) if self.bias is not None else BiasEstimator()
        if bias.random_state is None:
            bias.set_params(random_state=self.random_state)
        self.bias_ = bias.fit(data)
        self.scale_ = data.scale_
        pref = ~data.is_gold
        labels = data.outcome.copy()
        labels[pref] += self.bias_.effect(data.X)[pref] * self.scale_  # no copy of X[pref]
        weight = np.where(data.is_gold, 1.0, float(self.preference_weight))
        self.gain_model_ = _fit_gain_model(self.outcome_model, data.X, labels, weight, self.random_state)
        self.corrected_gain_ = labels / self.scale_
        self._record_features(data)
        return self


def _fit_gain_model(model, X, y, weight, random_state):
    """Fit (a clone of) ``model`` or the default regressor, with sample weights where not all 1."""
    model = clone(model) if model is not None else default_regressor(as_seed(random_state))
    if weight is None or np.all(weight == 1):
        return model.fit(X, y)
    return model.fit(X, y, sample_weight=weight)


def _cost_gap(n: int, cost_primary, cost_alternative) -> np.ndarray:
    cp = np.ones(n) if cost_primary is None else as_float_vector(cost_primary, "cost_primary")
    ca = np.zeros(n) if cost_alternative is None else as_float_vector(cost_alternative, "cost_alternative")
    if len(cp) == 1:
        cp = np.full(n, cp[0])
    if len(ca) == 1:
        ca = np.full(n, ca[0])
    check_consistent_length(X=np.empty(n), cost_primary=cp, cost_alternative=ca)
    return cp - ca


def _versions() -> dict:
    import econml
    import sklearn

    from . import __version__

    return {"causal_router": __version__, "scikit-learn": sklearn.__version__,
            "econml": econml.__version__, "numpy": np.__version__}
