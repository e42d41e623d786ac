"""K-model routing with the judge's bias corrected: :class:`MultiRouter` and its baselines.

Evaluations are pairwise (:class:`~causal_router.pairwise.PairwiseData`): a row is a query s, two
models a and b, and the observed gain of a over b on the scale of the mechanism that evaluated it
(gold standard or preference). Every router here predicts one utility per model on the gold
scale, u_k(s), relative to a reference model (u_ref = 0), so that the expected gold gain of a
over b is u_a(s) - u_b(s), and routes a query to argmax_k u_k(s) - w C_k.

:class:`MultiRouter` carries the Meta-Router method over to K models. Pool the rows as
(z, t, o): z = (s, a, b) in the contrast design (:func:`~causal_router.pairwise.contrast_design`),
t = 1 for a gold row, o = the gain (gold rows multiplied by the scale constant c). The judge's bias
Delta(s, a, b) = E[o(1) - o(0) | s, a, b] is a CATE of the evaluation mechanism, estimated by one
:class:`~causal_router.BiasEstimator` (econml's R-learner, cross-fitted nuisances E[o | z] and
P(gold | z)) over the pairwise design, with a per-model final stage
(:class:`~causal_router.pairwise.PairwiseRidge`):

    Delta(s, a, b) = beta_a(s) - beta_b(s) + c0,    beta_k(s) = gamma_k + s' theta_k,

beta_k the judge's bias for model k (gold minus preference: how much it under-rates k) and c0 a
common order effect (a preference for the first-listed answer). Per model rather than per pair:
K - 1 functions instead of K (K - 1) / 2, learned from every comparison of the model, and defined
for pairs that no gold row covers (measured: README, "K-model routing"). Each preference label
is corrected, y + Delta_hat(s, a, b), and the utility model
(:class:`~causal_router.pairwise.PairwiseBoosting` by default) is fitted on the gold rows plus
the corrected preference rows. Utilities are reported on the gold scale.

Baselines with the same interface: :class:`PooledMulti` (the same utility model on gold and
preference rows pooled, no correction), :class:`GoldOnlyMulti` (gold rows only; fitted on data
whose every row is gold it is the All-Golden oracle), :class:`BestSingle` (always the model with
the best gold mean, net of cost).

Router files: :meth:`save` writes the safe router file of :mod:`causal_router.io` (JSON header,
LightGBM text model, ``.npy`` arrays); :func:`load_multi_router` reads it back. The bias model is
not stored (routing does not need it); its per-model averages are, in the header.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ._validation import DataError, as_float_matrix
from .bias import BiasEstimator
from .data import EvalData
from .io import RouterFileError, read_router_file, write_router_file
from .pairwise import (PairwiseBoosting, PairwiseData, PairwiseRegressor, PairwiseRidge, PairwiseSelect,
                       contrast_design, cost_matrix)

__all__ = ["MultiRouter", "PooledMulti", "GoldOnlyMulti", "BestSingle", "load_multi_router", "cost_matrix",
           "MULTI_ROUTER_KIND"]

#: ``kind`` of a K-model router file's header.
MULTI_ROUTER_KIND = "multi"


class _MultiBase(BaseEstimator):
    """Shared parts of the K-model routers: input checks, the contrast design, utilities, routes,
    the frontier and router files. Subclasses implement :meth:`_fit`."""

    _gold_rows_only = False

    def fit(self, X, gain=None, *, source=None, model_a=None, model_b=None):
        """Fit on pairwise evaluations; returns self.

        Parameters
        ----------
        X : array-like or DataFrame (n, d), query features of each row; or a
            :class:`~causal_router.pairwise.PairwiseData` (then pass nothing else).
        gain : array-like (n,), observed gain of ``model_a`` over ``model_b``, on the scale of
            the row's evaluation mechanism.
        source : array-like (n,), ``"gold"`` / ``"preference"`` (or booleans, True = gold).
        model_a, model_b : array-like (n,), model names.
        """
        if isinstance(X, PairwiseData):
            if any(v is not None for v in (gain, source, model_a, model_b)):
                raise DataError("pass either a PairwiseData or X, gain, source, model_a and model_b, not both")
            data = X
        else:
            absent = [k for k, v in (("gain", gain), ("source", source), ("model_a", model_a),
                                     ("model_b", model_b)) if v is None]
            if absent:
                raise DataError(f"fit needs {absent} besides X (or a PairwiseData)")
            data = PairwiseData(X, gain, source, model_a, model_b)
        self.__dict__.pop("_compiled", None)
        self.models_ = data.models
        reference = self.models_[0] if getattr(self, "reference", None) is None else str(self.reference)
        if reference not in self.models_:
            raise DataError(f"reference {reference!r} is not among the models {self.models_}")
        self.reference_ = reference
        self.n_features_in_ = data.X.shape[1]
        self.feature_names_in_ = np.asarray(data.feature_names, dtype=object)
        rows = data.is_gold if self._gold_rows_only else None
        self._check_connected(data, rows)
        self._fit(data)
        return self

    def _check_connected(self, data: PairwiseData, rows) -> None:
        if rows is not None and not rows.any():
            raise DataError(f"{type(self).__name__} needs gold rows: the data have no row with source 'gold'")
        parts = data.components(rows)
        seen = set().union(*parts)
        absent = [m for m in self.models_ if m not in seen]
        which = "gold comparisons" if rows is not None else "comparisons"
        if absent:
            raise DataError(f"{type(self).__name__}: model(s) {absent} have no {which}; their utility cannot be "
                            "estimated")
        if len(parts) > 1:
            raise DataError(f"{type(self).__name__}: the {which} split the models into unconnected groups "
                            f"{[sorted(p) for p in parts]}; utilities of models never compared, directly or "
                            "through others, are not comparable")

    def _fit(self, data: PairwiseData) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ design and models
    @property
    def _contrasts(self) -> list[str]:
        return [m for m in self.models_ if m != self.reference_]

    def _design(self, data: PairwiseData) -> np.ndarray:
        return contrast_design(data.X, data.model_a, data.model_b, self.models_, self.reference_)

    def _utility_model(self, template=None):
        model = clone(template) if template is not None else PairwiseSelect(random_state=self.random_state)
        if not isinstance(model, PairwiseRegressor):
            raise DataError("outcome_model must be a pairwise regressor (PairwiseSelect, PairwiseBoosting or "
                            f"PairwiseRidge), got {type(model).__name__}")
        return model.set_params(n_contrasts=len(self._contrasts))

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "utility_model_")
        if isinstance(X, pd.DataFrame):
            names = [str(c) for c in X.columns]
            expected = list(self.feature_names_in_)
            if names != expected:
                missing = [c for c in expected if c not in names]
                extra = [c for c in names if c not in expected]
                raise DataError(f"X's columns differ from those the router was fitted with: missing {missing[:5]}, "
                                f"unexpected {extra[:5]}" + ("" if missing or extra else " (order differs)"))
        X = as_float_matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features, the router was fitted with {self.n_features_in_}")
        return X

    # ------------------------------------------------------------------ prediction and routing
    def predict_utility(self, X) -> pd.DataFrame:
        """Gold-scale utility of each model for each query, relative to ``reference_`` (whose
        column is 0): DataFrame (n, K), columns ``models_``, X's index when X is a DataFrame."""
        S = self._check_X(X)
        U = np.zeros((len(S), len(self.models_)))
        others = [self.models_.index(m) for m in self._contrasts]
        U[:, others] = self.utility_model_.utilities(S) / self.scale_
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(U, columns=list(self.models_), index=index)

    def predict_gain(self, X, model_a, model_b) -> np.ndarray:
        """Predicted gold-scale gain of ``model_a`` over ``model_b`` (names, scalars or (n,)), shape (n,)."""
        U = self.predict_utility(X)
        n = len(U)
        a = np.broadcast_to(np.asarray(model_a, dtype=object), (n,))
        b = np.broadcast_to(np.asarray(model_b, dtype=object), (n,))
        unknown = sorted((set(a) | set(b)) - set(self.models_))
        if unknown:
            raise DataError(f"unknown model name(s) {unknown[:5]}; the router knows {self.models_}")
        col = {m: j for j, m in enumerate(self.models_)}
        rows = np.arange(n)
        V = U.to_numpy()
        return V[rows, [col[m] for m in a]] - V[rows, [col[m] for m in b]]

    def route(self, X, *, costs=None, cost_weight: float = 0.0) -> np.ndarray:
        """The chosen model per query, argmax_k u_k(s) - cost_weight * C_k: array (n,) of names.

        ``costs``: see :func:`cost_matrix` (default: no costs, the model of highest utility).
        Ties go to the model listed first in ``models_``.
        """
        if not np.isfinite(cost_weight) or cost_weight < 0:
            raise DataError(f"cost_weight must be a finite number >= 0, got {cost_weight!r}")
        U = self.predict_utility(X).to_numpy()
        C = cost_matrix(costs, self.models_, len(U))
        return np.asarray(self.models_, dtype=object)[np.argmax(U - cost_weight * C, axis=1)]

    def frontier(self, X, quality, costs, *, cost_weights=None) -> pd.DataFrame:
        """The quality-versus-cost frontier of routing ``X`` over cost weights, with ``quality``
        (n, K) each model's true or held-out quality per query: see
        :func:`causal_router.evaluate.frontier` (its AIQ: :func:`causal_router.evaluate.aiq`)."""
        from .evaluate import frontier

        return frontier(self.predict_utility(X), quality, costs, cost_weights=cost_weights)

    # ------------------------------------------------------------------ router files
    def save(self, path) -> None:
        """Write the fitted router to a safe router file (no pickle; see :mod:`causal_router.io`)."""
        check_is_fitted(self, "utility_model_")
        um = self.utility_model_
        um = getattr(um, "estimator_", um)  # PairwiseSelect: the chosen model
        arrays = {"const": np.asarray(um.const_, dtype=float)}
        if isinstance(um, PairwiseBoosting):
            kind, models = "boosting", {"booster": um.booster_}
        else:
            kind, models = "ridge", {"coef": np.asarray(um.coef_, dtype=float)}
        header = {
            "kind": MULTI_ROUTER_KIND, "router_class": type(self).__name__,
            "params": {k: v for k, v in self.get_params(deep=False).items()
                       if isinstance(v, (str, int, float, bool, type(None)))},
            "models_": list(self.models_), "reference_": self.reference_, "scale_": float(self.scale_),
            "feature_names_in_": [str(c) for c in self.feature_names_in_],
            "utility_model": {"kind": kind, "order": float(um.order_)},
            "bias": self._bias_summary(),
        }
        write_router_file(path, header, {**arrays, **models})

    def _bias_summary(self):
        return None


class MultiRouter(_MultiBase):
    """K-model Meta-Router: per-model utilities from gold rows plus bias-corrected preference rows.

    Parameters
    ----------
    bias : BiasEstimator, optional
        The bias model over the pairwise design (cloned at fit). Default
        ``BiasEstimator("r", model_final=PairwiseRidge(order_effect=True))``: the R-learner
        with a per-model linear bias and a common order effect. A BiasEstimator whose
        ``model_final`` is None gets that final stage; a
        :class:`~causal_router.pairwise.PairwiseRidge` final stage is sized to the models.
    outcome_model : PairwiseBoosting or PairwiseRidge, optional
        The utility model (default ``PairwiseBoosting``: gradient-boosted per-model utilities).
    reference : str, optional
        The model whose utility is 0 (default: the first model name in sorted order). Routing
        does not depend on it.
    scale : {"variance", "amplitude", "wasserstein", None}
        How the gold-to-preference scale constant is computed
        (:meth:`PairwiseData.scale_constant`; gains oriented alphabetically).
    random_state : int or None

    Attributes
    ----------
    models_ : list of model names (sorted).  reference_ : str.
    scale_ : float, c in ``c * gold ~ preference``.
    bias_ : the fitted BiasEstimator. Its features are the contrast design
        (:meth:`bias_data` rebuilds the EvalData it was fitted on, for
        :func:`causal_router.diagnostics.diagnose`).
    utility_model_ : the fitted utility model (preference scale).
    corrected_gain_ : ndarray (n,), training labels after correction, gold scale.
    """

    def __init__(self, bias: BiasEstimator | None = None, outcome_model=None, reference: str | None = None,
                 scale: str | None = "variance", random_state=None):
        self.bias = bias
        self.outcome_model = outcome_model
        self.reference = reference
        self.scale = scale
        self.random_state = random_state

    def _fit(self, data: PairwiseData) -> None:
        if data.n_gold == 0 or data.n_preference == 0:
            which = "gold" if data.n_gold == 0 else "preference"
            raise DataError(f"MultiRouter needs gold and preference rows: the data have no {which} row "
                            "(use GoldOnlyMulti or PooledMulti)")
        self.scale_ = data.scale_constant(self.scale)
        bias = clone(self.bias) if self.bias is not None else BiasEstimator("r")
        final = bias.model_final
        if final is None:
            final = PairwiseRidge(order_effect=True)
        if isinstance(final, PairwiseRegressor):
            bias.set_params(model_final=clone(final).set_params(n_contrasts=len(self._contrasts)))
        if bias.random_state is None:
            bias.set_params(random_state=self.random_state)
        bias_data = self.bias_data(data)
        self.bias_ = bias.fit(bias_data)
        Z = bias_data.X
        labels = bias_data.outcome.copy()
        pref = ~data.is_gold
        labels[pref] += self.bias_.effect(Z[pref]) * self.scale_
        self.utility_model_ = self._utility_model(self.outcome_model).fit(Z, labels)
        self.corrected_gain_ = labels / self.scale_

    def bias_data(self, data: PairwiseData) -> EvalData:
        """The rows as the bias model sees them: an EvalData whose features are the contrast
        design [s, D] (named by the features and ``D[<model>]``), with this router's scale
        constant. ``diagnose(router.bias_data(data), router.bias_)`` runs the CATE diagnostics
        of :mod:`causal_router.diagnostics` on the K-model bias (``groups``: the model pair)."""
        check_is_fitted(self, "scale_")
        Z = self._design(data)
        names = [*data.feature_names, *(f"D[{m}]" for m in self._contrasts)]
        pairs = np.array([f"{a}|{b}" for a, b in zip(data.model_a, data.model_b)], dtype=object)
        out = EvalData(Z, data.gain, data.is_gold, pair=pairs, scale=None, feature_names=names)
        out.scale_ = self.scale_  # the scale constant of the pairwise data (orientation-free)
        return out

    def bias_per_model(self, X) -> pd.DataFrame:
        """The judge's estimated bias per model, beta_k(s) (gold scale, beta_reference = 0):
        DataFrame (n, K). Defined when the bias final stage is a PairwiseRidge; the common order
        effect is in ``bias_.estimator_.model_final_.order_`` (divided by ``scale_``)."""
        check_is_fitted(self, "bias_")
        S = self._check_X(X)
        final = self.bias_.estimator_.model_final_
        if not isinstance(final, PairwiseRidge):
            raise DataError("bias_per_model needs a PairwiseRidge final stage of the bias model")
        B = np.zeros((len(S), len(self.models_)))
        B[:, [self.models_.index(m) for m in self._contrasts]] = final.utilities(S) / self.scale_
        return pd.DataFrame(B, columns=list(self.models_), index=X.index if isinstance(X, pd.DataFrame) else None)

    def _bias_summary(self):
        final = self.bias_.estimator_.model_final_
        if not isinstance(final, PairwiseRidge):
            return None
        return {"per_model_constant": {m: float(v) / self.scale_ for m, v in zip(self._contrasts, final.const_)},
                "order_effect": float(final.order_) / self.scale_, "average": float(self.bias_.ate()["estimate"])}


class PooledMulti(_MultiBase):
    """The utility model on gold and preference rows pooled, no bias correction (gold rows put
    on the preference scale by the same constant as :class:`MultiRouter`, which makes this
    baseline stronger, not weaker)."""

    def __init__(self, outcome_model=None, reference: str | None = None, scale: str | None = "variance",
                 random_state=None):
        self.outcome_model = outcome_model
        self.reference = reference
        self.scale = scale
        self.random_state = random_state

    def _fit(self, data: PairwiseData) -> None:
        self.scale_ = data.scale_constant(self.scale)
        labels = np.where(data.is_gold, data.gain * self.scale_, data.gain)
        self.utility_model_ = self._utility_model(self.outcome_model).fit(self._design(data), labels)


class GoldOnlyMulti(_MultiBase):
    """The utility model on the gold rows alone. Fitted on data whose every row is gold (the
    gold labels of every training query), it is the All-Golden oracle."""

    _gold_rows_only = True

    def __init__(self, outcome_model=None, reference: str | None = None, random_state=None):
        self.outcome_model = outcome_model
        self.reference = reference
        self.random_state = random_state

    def _fit(self, data: PairwiseData) -> None:
        self.scale_ = 1.0
        gold = data.subset(data.is_gold)
        self.utility_model_ = self._utility_model(self.outcome_model).fit(self._design(gold), gold.gain)


class BestSingle(_MultiBase):
    """One utility per model, the same for every query: the gold mean gain over the reference,
    by least squares on the gold comparisons. Routes every query to the model with the best
    gold mean (net of ``cost_weight`` times its cost)."""

    _gold_rows_only = True

    def __init__(self, reference: str | None = None):
        self.reference = reference

    def _fit(self, data: PairwiseData) -> None:
        self.scale_ = 1.0
        gold = data.subset(data.is_gold)
        model = PairwiseRidge(len(self._contrasts), slopes=False)
        self.utility_model_ = model.fit(self._design(gold), gold.gain)


ROUTER_CLASSES = {cls.__name__: cls for cls in (MultiRouter, PooledMulti, GoldOnlyMulti, BestSingle)}


def load_multi_router(path) -> _MultiBase:
    """Read a K-model router written by ``save``: it predicts utilities and routes; it holds no
    bias model (``bias_`` is absent; the header's per-model bias averages are in ``bias_summary_``)."""
    header, models = read_router_file(path)
    if header.get("kind") != MULTI_ROUTER_KIND or header.get("router_class") not in ROUTER_CLASSES:
        raise RouterFileError(f"{path} is not a K-model router file (kind {header.get('kind')!r}); read "
                              "two-model routers with their own loader")
    cls = ROUTER_CLASSES[header["router_class"]]
    router = cls(**{k: v for k, v in header["params"].items() if k in cls._get_param_names()})
    router.models_ = list(header["models_"])
    router.reference_ = header["reference_"]
    router.scale_ = float(header["scale_"])
    router.feature_names_in_ = np.asarray(header["feature_names_in_"], dtype=object)
    router.n_features_in_ = len(router.feature_names_in_)
    router.bias_summary_ = header.get("bias")
    n_contrasts = len(router.models_) - 1
    spec = header["utility_model"]
    if spec["kind"] == "boosting":
        um = PairwiseBoosting(n_contrasts)
        um.booster_ = models["booster"]
    elif spec["kind"] == "ridge":
        um = PairwiseRidge(n_contrasts)
        um.coef_ = np.asarray(models["coef"], dtype=float)
    else:
        raise RouterFileError(f"{path}: unknown utility model kind {spec['kind']!r}")
    um.const_ = np.asarray(models["const"], dtype=float)
    um.order_ = float(spec["order"])
    um.n_features_in_ = router.n_features_in_ + n_contrasts
    router.utility_model_ = um
    return router
