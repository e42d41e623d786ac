"""K-model routing with the judge's bias corrected: :class:`MultiRouter` and its baselines.

Evaluations are pairwise (:class:`~causal_router.pairwise.PairwiseData`): a row is a query s, two
models a and b, and the observed gain of a over b on the scale of the mechanism that evaluated it
(gold standard or preference). Every router here predicts one utility per model on the gold
scale, u_k(s), relative to a reference model (u_ref = 0), so that the expected gold gain of a
over b is u_a(s) - u_b(s), and routes a query to argmax_k u_k(s) - w C_k.

:class:`MultiRouter` carries the Meta-Router method over to K models. Rows are first turned so
that each pair's models are in sorted order (gain negated where turned; ``listed_first`` = -1
there, +1 elsewhere), so that nothing fitted depends on how a user orients the rows. Pool them as
(z, t, o): z = (s, listed_first, a, b) in the contrast design
(:func:`~causal_router.pairwise.contrast_design`), t = 1 for a gold row, o = the gain (gold rows
multiplied by the scale constant c, fitted on the turned gains). The judge's bias
Delta(s, a, b) = E[o(1) - o(0) | z] is a CATE of the evaluation mechanism, estimated by one
:class:`~causal_router.BiasEstimator` over the pairwise design (econml's R-learner, nuisances
E[o | z] and P(gold | z) cross-fitted), with a per-model final stage:

    Delta(s, a, b) = beta_a(s) - beta_b(s) + c0 * listed_first,   beta_reference = 0,

beta_k the judge's bias for model k (gold minus preference, gold scale: how much it under-rates
k) and c0 its preference for the answer listed first. The final stage is chosen by out-of-fold
R-loss (:class:`~causal_router.pairwise.PairwiseSelect`) among no bias, per-model constants and
per-model linear functions of s (:data:`~causal_router.pairwise.BIAS_CANDIDATES`), over two
fold draws, and used only as far as held-out evidence supports it: the chosen model's
out-of-fold calibration slope, shrunk by the non-negative garrote at one standard error
(clustered by query; the rule of the two-model stack, :class:`~causal_router.models.StackedFinalStage`).
Where the gold rows cannot support a bias model the router makes no correction and equals
:class:`PooledMulti`. Per model rather than per pair: K - 1 functions instead of K (K - 1) / 2,
each learned from every gold comparison of its model, and defined for pairs no gold row covers
(measured against a per-pair final stage with ``benchmarks/bench_multi.py --design``, 20 splits:
AIQ 0.480 either way when gold rows cover all six pairs of the K = 4 generator, 0.471 per model
against 0.036 per pair when they cover three). Each
preference label is corrected, y + Delta_hat, and the utility model (default
:class:`~causal_router.pairwise.PairwiseSelect`: ridge or boosted per-model utilities, chosen by
cross-validation) is fitted on the gold rows plus the corrected preference rows. Utilities are
reported on the gold scale.

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

from ._validation import DataError, check_features
from .bias import BiasEstimator
from .data import EvalData, pooled_outcome
from .io import RouterFileError, read_router_file, write_router_file
from .models import EVIDENCE_THRESHOLD, STACK_REPEATS
from .pairwise import (BIAS_CANDIDATES, PairwiseBoosting, PairwiseData, PairwiseRegressor, PairwiseRidge, PairwiseSelect,
                       contrast_codes, cost_matrix)

__all__ = ["MultiRouter", "PooledMulti", "GoldOnlyMulti", "BestSingle", "load_multi_router",
           "multi_router_from_file", "is_multi_router_header", "cost_matrix", "MULTI_ROUTER_KIND"]

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

    def _design(self, data: PairwiseData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Z = [S, D], gains, listed_first) of the rows turned to sorted model order
        (:meth:`PairwiseData.oriented`), so that nothing fitted depends on how rows are oriented."""
        gain, a, b, first = data.oriented()
        D = contrast_codes(a, b, self.models_, self.reference_)
        return np.hstack([data.X, D]), gain, first

    def _utility_model(self, template=None):
        model = clone(template) if template is not None else PairwiseSelect(random_state=self.random_state)
        if not isinstance(model, PairwiseRegressor):
            raise DataError("outcome_model must be a pairwise regressor (PairwiseSelect, PairwiseBoosting or "
                            f"PairwiseRidge), got {type(model).__name__}")
        return model.set_params(n_contrasts=len(self._contrasts))

    def _check_X(self, X) -> np.ndarray:
        """X as floats (n, d) in the fitted feature order (a DataFrame is matched by column name)."""
        check_is_fitted(self, "utility_model_")
        return check_features(X, self.feature_names_in_, "the router")

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
        if isinstance(cost_weight, (bool, np.bool_)) or not isinstance(cost_weight, (int, float, np.number)) \
                or not np.isfinite(cost_weight) or cost_weight < 0:
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
    def save(self, path):
        """Write the fitted router to a safe router file (:mod:`causal_router.io`: JSON header,
        the utility model as LightGBM text or ``.npy`` arrays; no pickle). Returns the path."""
        check_is_fitted(self, "utility_model_")
        um = getattr(self.utility_model_, "estimator_", self.utility_model_)  # PairwiseSelect: the chosen model
        models = {"const": np.asarray(um.const_, dtype=float)}
        if isinstance(um, PairwiseBoosting):
            kind, models["booster"] = "boosting", um.booster_
        elif isinstance(um, PairwiseRidge):
            kind, models["coef"] = "ridge", np.asarray(um.coef_, dtype=float)
        else:
            raise RouterFileError(f"a router file stores PairwiseBoosting or PairwiseRidge utility models, not "
                                  f"{type(um).__name__}; use causal_router.io.save_pickle")
        params = {k: v for k, v in self.get_params(deep=False).items()
                  if v is None or isinstance(v, (bool, int, float, str))}
        header = {"router": type(self).__name__, "kind": MULTI_ROUTER_KIND, "params": params,
                  "scale": float(self.scale_), "feature_names": [str(c) for c in self.feature_names_in_],
                  "model_names": list(self.models_), "reference": self.reference_,
                  "utility_model": {"kind": kind, "n_contrasts": len(self._contrasts)},
                  "bias": self.bias_summary()}
        return write_router_file(path, header, models)

    def bias_summary(self) -> dict | None:
        """The judge's estimated bias in brief; None for a router without a bias model."""
        return None


class MultiRouter(_MultiBase):
    """K-model Meta-Router: per-model utilities from gold rows plus bias-corrected preference rows.

    Parameters
    ----------
    bias : BiasEstimator, optional
        The bias model over the pairwise design (cloned at fit; its ``scale`` is replaced by
        this router's). Default ``BiasEstimator("r")`` with the final stage
        ``PairwiseSelect(candidates=BIAS_CANDIDATES, order_effect=True)`` (module docstring). A
        BiasEstimator whose ``model_final`` is None gets that final stage; a pairwise final
        stage is sized to the models; any other learner sees the design as features.
    outcome_model : PairwiseSelect, PairwiseBoosting or PairwiseRidge, optional
        The utility model (default ``PairwiseSelect()``: ridge or boosting by cross-validation).
    reference : str, optional
        The model whose utility is 0 (default: the first model name in sorted order). Routes
        depend on it only through the fit (boosted utilities are shrunk toward the reference's).
    scale : {"variance", "amplitude", "wasserstein", None}
        How the gold-to-preference scale constant is fitted (on the turned gains; see
        :func:`causal_router.data.scale_constant`).
    random_state : int or None

    Attributes
    ----------
    models_ : list of model names (sorted).
    reference_ : str, the reference model (u = 0).
    scale_ : float, c in ``c * gold ~ preference``.
    bias_ : the fitted BiasEstimator. Its features are the design [s, listed_first, D]
        (:meth:`bias_data` rebuilds the EvalData it was fitted on: every CATE diagnostic of
        :func:`causal_router.validate.diagnose` runs on ``(router.bias_data(data), router.bias_)``).
    bias_model_ : str, the bias final stage chosen ("PairwiseRidge(none)": no correction).
    order_effect_ : float or None, c0 on the gold scale.
    utility_model_ : the fitted utility model (preference scale).
    corrected_gain_ : ndarray (n,), training labels (rows turned to sorted order) after
        correction, gold scale.
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
        bias = clone(self.bias) if self.bias is not None else BiasEstimator("r")
        final = bias.model_final if bias.model_final is not None else PairwiseSelect(
            candidates=BIAS_CANDIDATES, order_effect=True, threshold=EVIDENCE_THRESHOLD, n_repeats=STACK_REPEATS,
            random_state=self.random_state)
        if isinstance(final, PairwiseRegressor):
            bias.set_params(model_final=clone(final).set_params(n_contrasts=len(self._contrasts)))
        # the order column goes to every bias model except a pairwise final stage without it
        self.bias_order_column_ = not (isinstance(final, PairwiseRegressor) and not final.order_effect)
        bias.set_params(scale=self.scale)
        if bias.random_state is None:
            bias.set_params(random_state=self.random_state)
        bias_data = self.bias_data(data)
        self.bias_ = bias.fit(bias_data)
        self.scale_ = self.bias_.scale_
        Z, gain, _ = self._design(data)
        labels = pooled_outcome(gain, data.is_gold, self.scale_)
        pref = ~data.is_gold
        labels[pref] += self.bias_.effect(bias_data.X[pref]) * self.scale_
        self.utility_model_ = self._utility_model(self.outcome_model).fit(Z, labels)
        self.corrected_gain_ = labels / self.scale_
        final_ = self._bias_final()
        self.order_effect_ = (float(final_.order_) / self.scale_ if self._bias_is_ridge() and final_.order_effect
                              else None)

    def bias_data(self, data: PairwiseData) -> EvalData:
        """The rows as the bias model sees them: an EvalData of the rows turned to sorted model
        order, whose features are the design [s, listed_first, D] (``listed_first`` = +1 where
        the row's first model was listed first, -1 where the row was turned; left out for a
        pairwise final stage without an order effect), named by the features, ``listed_first``
        and ``D[<model>]``; ``pair`` holds "model_a|model_b". The CATE diagnostics run on it:
        ``causal_router.validate.diagnose(router.bias_data(data), router.bias_)``."""
        check_is_fitted(self, "bias_order_column_")
        Z, gain, first = self._design(data)
        d = data.X.shape[1]
        names = list(data.feature_names)
        if self.bias_order_column_:
            Z = np.hstack([Z[:, :d], first[:, None], Z[:, d:]])
            names.append("listed_first")
        names += [f"D[{m}]" for m in self._contrasts]
        a, b = np.where(first > 0, data.model_a, data.model_b), np.where(first > 0, data.model_b, data.model_a)
        pairs = np.array([f"{x}|{y}" for x, y in zip(a, b)], dtype=object)
        return EvalData(Z, gain, data.is_gold, pair=pairs, query_id=data.query_id, feature_names=names)

    def bias_per_model(self, X) -> pd.DataFrame:
        """The judge's estimated bias per model, beta_k(s) (gold scale, beta_reference = 0):
        DataFrame (n, K). Defined when the bias final stage is a PairwiseRidge; the common order
        effect is ``order_effect_``."""
        check_is_fitted(self, "bias_")
        S = self._check_X(X)
        final = self._bias_final()
        if not self._bias_is_ridge():
            raise DataError("bias_per_model needs a PairwiseRidge final stage of the bias model")
        B = np.zeros((len(S), len(self.models_)))
        B[:, [self.models_.index(m) for m in self._contrasts]] = final.utilities(S) / self.scale_
        return pd.DataFrame(B, columns=list(self.models_), index=X.index if isinstance(X, pd.DataFrame) else None)

    def _bias_final(self):
        """The fitted final stage of the bias model (a PairwiseSelect predicts its chosen
        candidate times its share)."""
        return self.bias_.estimator_.model_final_

    def _bias_is_ridge(self) -> bool:
        """Whether the bias model is per-model linear (a PairwiseRidge, or a PairwiseSelect that chose one)."""
        final = self._bias_final()
        return isinstance(getattr(final, "estimator_", final), PairwiseRidge)

    @property
    def bias_model_(self) -> str:
        """Name of the bias model in use: the chosen candidate (e.g. "PairwiseRidge(none)": no
        correction, also where the evidence rule left none of the chosen one, ``bias_share_`` = 0),
        or the final stage's class name."""
        final = self._bias_final()
        if getattr(final, "share_", 1.0) == 0:
            return "PairwiseRidge(none)"
        return getattr(final, "chosen_", type(final).__name__)

    @property
    def bias_share_(self) -> float:
        """The share of the chosen bias model in use (the evidence rule of
        :class:`~causal_router.pairwise.PairwiseSelect`; 1 for a final stage without one)."""
        return float(getattr(self._bias_final(), "share_", 1.0))

    def bias_summary(self) -> dict | None:
        """The judge's estimated bias in brief (gold scale): the chosen bias ``model``, the
        ``per_model_constant`` beta_k at s = 0 (vs the reference), the ``order_effect`` and the
        ``average`` bias over the training rows; None for a final stage that is not a PairwiseRidge."""
        check_is_fitted(self, "bias_")
        final = self._bias_final()
        if not self._bias_is_ridge():
            return None
        return {"model": self.bias_model_, "share": self.bias_share_,
                "per_model_constant": {m: float(v) / self.scale_ for m, v in zip(self._contrasts, final.const_)},
                "order_effect": self.order_effect_, "average": float(self.bias_.ate()["estimate"])}


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
        Z, gain, _ = self._design(data)
        labels = pooled_outcome(gain, data.is_gold, self.scale_)
        self.utility_model_ = self._utility_model(self.outcome_model).fit(Z, labels)


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
        Z, gain, _ = self._design(data.subset(data.is_gold))
        self.utility_model_ = self._utility_model(self.outcome_model).fit(Z, gain)


class BestSingle(_MultiBase):
    """One utility per model, the same for every query: the gold mean gain over the reference,
    by least squares on the gold comparisons. Routes every query to the model with the best
    gold mean (net of ``cost_weight`` times its cost)."""

    _gold_rows_only = True

    def __init__(self, reference: str | None = None):
        self.reference = reference

    def _fit(self, data: PairwiseData) -> None:
        self.scale_ = 1.0
        Z, gain, _ = self._design(data.subset(data.is_gold))
        self.utility_model_ = PairwiseRidge(len(self._contrasts), terms="constant").fit(Z, gain)


ROUTER_CLASSES = {cls.__name__: cls for cls in (MultiRouter, PooledMulti, GoldOnlyMulti, BestSingle)}


def load_multi_router(path) -> _MultiBase:
    """Read a K-model router written by ``save``, for routing: it predicts utilities and routes
    exactly as the saved one; it holds no bias model (the header's per-model bias averages are in
    ``file_info_["bias"]``). Refuses files that are not K-model router files."""
    return multi_router_from_file(*read_router_file(path), path=path)


def is_multi_router_header(header: dict) -> bool:
    """Whether a router file's header (:func:`causal_router.io.read_router_file`) is a K-model router's."""
    return header.get("kind") == MULTI_ROUTER_KIND


def multi_router_from_file(header: dict, models: dict, *, path="router file") -> _MultiBase:
    """The K-model router of a router file already read (``read_router_file(path)``)."""
    name = header.get("router")
    if header.get("kind") != MULTI_ROUTER_KIND or name not in ROUTER_CLASSES:
        raise RouterFileError(f"{path} is not a K-model router file (router {name!r}); a two-model router is "
                              "read with BaseRouter.load")
    cls = ROUTER_CLASSES[name]
    valid = cls._get_param_names()
    router = cls(**{k: v for k, v in header.get("params", {}).items() if k in valid})
    try:
        router.models_ = [str(m) for m in header["model_names"]]
        router.reference_ = str(header["reference"])
        router.scale_ = float(header["scale"])
        names = [str(f) for f in header["feature_names"]]
        spec = header["utility_model"]
        n_contrasts = int(spec["n_contrasts"])
        if spec["kind"] == "boosting":
            um = PairwiseBoosting(n_contrasts)
            um.booster_ = models["booster"]
        elif spec["kind"] == "ridge":
            um = PairwiseRidge(n_contrasts)
            um.coef_ = np.asarray(models["coef"], dtype=float)
        else:
            raise RouterFileError(f"{path}: unknown utility model kind {spec['kind']!r}")
        um.const_ = np.asarray(models["const"], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise RouterFileError(f"{path} is a damaged K-model router file (missing or invalid {exc})") from None
    if n_contrasts != len(router.models_) - 1 or um.const_.shape != (n_contrasts,):
        raise RouterFileError(f"{path} is a damaged K-model router file (utility model for {n_contrasts + 1} models, "
                              f"header names {len(router.models_)})")
    um.order_ = 0.0
    um.n_features_in_ = len(names) + n_contrasts
    router.utility_model_ = um
    router.feature_names_in_ = np.asarray(names, dtype=object)
    router.n_features_in_ = len(names)
    router.file_info_ = {k: v for k, v in header.items() if k != "models"}
    return router
