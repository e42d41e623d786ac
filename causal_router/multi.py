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
per-model linear functions of s (:data:`~causal_router.pairwise.BIAS_CANDIDATES`), over three
fold draws, and used only as far as held-out evidence supports it: the share of the chosen
model in use is the non-negative garrote at one standard error of its out-of-fold calibration
slope (clustered by query), the rule of the two-model bias model
(:func:`~causal_router.models.evidence_share`). Where the gold rows cannot support a bias model
(the chosen model is "no bias", or its slope is within noise) the router makes no correction and equals
:class:`PooledMulti`. Per model rather than per pair: K - 1 functions instead of K (K - 1) / 2,
each learned from every gold comparison of its model, and defined for pairs no gold row covers
(measured with ``benchmarks/bench_multi.py --design``, 20 splits, a per-model against a per-pair
bias linear in s: AIQ 0.480 either way when gold rows cover all six pairs of the K = 4
generator, 0.471 per model against 0.036 per pair when they cover three; the default, whose
final stage R-loss chooses, 0.478 and 0.467 in the same runs; ``benchmarks/results/multi/README.md``;
the report run's AIQ of every method: :doc:`/results`, "K-model routing"). Each
preference label is corrected, y + Delta_hat, and the utility model (default
:class:`~causal_router.pairwise.PairwiseSelect`: ridge or boosted per-model utilities, chosen by
cross-validation) is fitted on the gold rows plus the corrected preference rows. Utilities are
reported on the gold scale.

Baselines with the same interface: :class:`PooledMulti` (the same utility model on gold and
preference rows pooled, no correction), :class:`GoldOnlyMulti` (gold rows only; fitted on data
whose every row is gold it is the All-Golden oracle), :class:`BestSingle` (always the model with
the best gold mean, net of cost).

Every router here keeps the contract of :class:`~causal_router.router.BaseRouter`: ``fit(X, y, *,
source, groups, model_a, model_b)`` (y the observed gain of ``model_a`` over ``model_b``; the
old ``gain=`` still works and warns), ``predict`` / ``predict_gain`` (the predicted gold-scale
gain of ``model_a`` over ``model_b``, shape (n,)), :meth:`~_MultiBase.predict_utility` (every
model's utility), ``score`` (:func:`causal_router.evaluate.choice_share` on the gold
comparisons: higher is better, usable by ``GridSearchCV``), ``route(X, *, costs, cost_weight)``
(the chosen model's name per query) and ``save`` / ``load``: the safe router file of
:mod:`causal_router.io` (JSON, LightGBM text, ``.npy``). The bias model is not stored (routing does
not need it); its per-model averages are, as :meth:`bias_summary`.

Deprecated (one release, with a DeprecationWarning): ``load_multi_router(path)`` (use
``BaseRouter.load`` or :func:`causal_router.io.load_router`), ``multi_router_from_file``,
``is_multi_router_header`` and ``MULTI_ROUTER_KIND``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from ._validation import DataError, as_float_matrix, check_same_index
from .bias import BiasEstimator
from .data import EvalData, as_eval_data, pooled_outcome
from .evaluate import choice_share
from .models import EVIDENCE_THRESHOLD, STACK_REPEATS
from .pairwise import (BIAS_CANDIDATES, PairwiseBoosting, PairwiseData, PairwiseRegressor, PairwiseRidge, PairwiseSelect,
                       contrast_codes)
from .router import BaseRouter
from .routing import choose, cost_matrix

__all__ = ["MultiRouter", "PooledMulti", "GoldOnlyMulti", "BestSingle", "cost_matrix"]


class _MultiBase(BaseRouter):
    """Shared parts of the K-model routers: input checks, the contrast design, utilities, routes,
    the frontier and the router-file state. Subclasses implement :meth:`_fit_models`."""

    family = "k-model"
    _gold_rows_only = False

    def fit(self, X, y=None, *, source=None, groups=None, model_a=None, model_b=None, gain=None):
        """Fit on pairwise evaluations; returns self.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or PairwiseData
            Query features of each row (or texts, for a router with a featurizer); or a
            :class:`~causal_router.pairwise.PairwiseData` (then pass nothing else but ``groups``).
        y : array-like of shape (n,), optional
            Observed gain of ``model_a`` over ``model_b``, on the scale of the row's evaluation
            mechanism.
        source : array-like of shape (n,), optional
            ``"gold"`` / ``"preference"`` (or booleans, True = gold); None: every row gold.
        groups : array-like of shape (n,), optional
            The query of each row (the data's ``query_id``; with a PairwiseData, labels that group
            its rows as its ``query_id`` does, or label them where it has none): the bias model
            cross-fits by query.
        model_a, model_b : array-like of shape (n,)
            The names of the two models each row compares.
        gain : array-like of shape (n,), optional
            Deprecated alias of ``y`` (a DeprecationWarning; removed in the next release).

        Returns
        -------
        self : _MultiBase
            The fitted router.
        """
        if gain is not None:
            warnings.warn(f"{type(self).__name__}.fit(X, gain=...) is deprecated and will be removed in the next "
                          "release: pass the gains as y, fit(X, y, source=..., model_a=..., model_b=...)",
                          DeprecationWarning, stacklevel=2)
            if y is not None:
                raise TypeError("fit() got both y and the deprecated gain; pass y only")
            y = gain
        return self._fit(X, y, source=source, groups=groups, model_a=model_a, model_b=model_b)

    def _make_data(self, X, y, *, source=None, groups=None, model_a=None, model_b=None) -> PairwiseData:
        name = type(self).__name__
        if isinstance(X, PairwiseData):
            if any(v is not None for v in (y, source, model_a, model_b)):
                raise DataError(f"{name}.fit: pass either a PairwiseData or X, y, source, model_a and model_b, "
                                "not both")
            if groups is None:
                return X
            # groups label the queries of a PairwiseData without query ids, or repeat its own (the same
            # partition of the rows); checked as an EvalData's are: groups that disagree are an error
            rows = EvalData(X.X, X.gain, X.is_gold, query_id=X.query_id, feature_names=X.feature_names)
            data = X.subset(np.arange(len(X)))
            data.query_id = as_eval_data(rows, groups=groups, who=f"{name}.fit").query_id
            return data
        # the features are checked first (NaN, complex, sparse, empty input: the same messages as the
        # two-model routers), then the pairwise columns
        check_same_index(f"{name}.fit", X=X, y=y, source=source, groups=groups, model_a=model_a, model_b=model_b)
        named = isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)
        names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
        features = as_float_matrix(X, "X")
        absent = [k for k, v in (("y", y), ("model_a", model_a), ("model_b", model_b)) if v is None]
        if absent:
            raise DataError(f"{name}.fit needs {absent} besides X (or a PairwiseData)")
        values = [v.to_numpy() if isinstance(v, (pd.Series, pd.Index)) else v for v in (y, source, groups)]
        if values[1] is None:
            values[1] = np.ones(len(features), dtype=bool)
        data = PairwiseData(features, values[0], values[1], model_a, model_b, query_id=values[2], feature_names=names)
        data.named_features = named
        return data

    def _fit_data(self, data: PairwiseData, *, seed: int, n_jobs) -> dict:
        models = data.models
        reference = models[0] if getattr(self, "reference", None) is None else str(self.reference)
        if reference not in models:
            raise DataError(f"reference {reference!r} is not among the models {models}")
        self._check_connected(data, data.is_gold if self._gold_rows_only else None, models)
        design = _Design(models, reference)
        return {"models_": models, "reference_": reference,
                **self._fit_models(data, design, seed=seed, n_jobs=n_jobs)}

    def _fit_models(self, data: PairwiseData, design: "_Design", *, seed: int, n_jobs) -> dict:
        raise NotImplementedError

    def _check_connected(self, data: PairwiseData, rows, models) -> None:
        name = type(self).__name__
        if rows is not None and not rows.any():
            raise DataError(f"{name} needs gold rows: the data have no row with source 'gold'")
        parts = data.components(rows)
        seen = set().union(*parts)
        absent = [m for m in models if m not in seen]
        which = "gold comparisons" if rows is not None else "comparisons"
        if absent:
            raise DataError(f"{name}: model(s) {absent} have no {which}; their utility cannot be estimated")
        if len(parts) > 1:
            raise DataError(f"{name}: the {which} split the models into unconnected groups "
                            f"{[sorted(p) for p in parts]}; utilities of models never compared, directly or "
                            "through others, are not comparable")

    def _utility_model(self, template, design: "_Design", seed: int):
        model = clone(template) if template is not None else PairwiseSelect(random_state=seed)
        if not isinstance(model, PairwiseRegressor):
            raise DataError("outcome_model must be a pairwise regressor (PairwiseSelect, PairwiseBoosting or "
                            f"PairwiseRidge), got {type(model).__name__}")
        if "random_state" in model.get_params() and model.get_params()["random_state"] is None:
            model.set_params(random_state=seed)
        return model.set_params(n_contrasts=len(design.contrasts))

    @property
    def _contrasts(self) -> list[str]:
        return [m for m in self.models_ if m != self.reference_]

    # ------------------------------------------------------------------ prediction and routing
    def predict_utility(self, X) -> pd.DataFrame:
        """Gold-scale utility of each model for each query, relative to ``reference_`` (whose
        column is 0).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features (matched by column name where the fit's were named), or texts for a
            router with a featurizer.

        Returns
        -------
        DataFrame of shape (n, K)
            Columns ``models_``; X's index when X is a DataFrame.
        """
        S = self._validate_X(X)
        U = np.zeros((len(S), len(self.models_)))
        others = [self.models_.index(m) for m in self._contrasts]
        U[:, others] = self.utility_model_.utilities(S) / self.scale_
        index = X.index if isinstance(X, pd.DataFrame) and len(X) == len(U) else None
        return pd.DataFrame(U, columns=list(self.models_), index=index)

    def predict_gain(self, X, model_a, model_b) -> np.ndarray:
        """Predicted gold-scale gain of ``model_a`` over ``model_b``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features, as in :meth:`predict_utility`.
        model_a, model_b : str or array-like of shape (n,)
            One model name for every query, or one per query.

        Returns
        -------
        ndarray of shape (n,)
            u_a(s) - u_b(s) on the gold scale.
        """
        U = self.predict_utility(X)
        n = len(U)
        try:
            a = np.broadcast_to(np.asarray(model_a, dtype=object), (n,))
            b = np.broadcast_to(np.asarray(model_b, dtype=object), (n,))
        except ValueError:
            raise DataError(f"model_a and model_b must be one model name or one per query ({n})") from None
        unknown = sorted({str(m) for m in (set(a) | set(b))} - set(self.models_))
        if unknown:
            raise DataError(f"unknown model name(s) {unknown[:5]}; the router knows {self.models_}")
        col = {m: j for j, m in enumerate(self.models_)}
        rows = np.arange(n)
        V = U.to_numpy()
        return V[rows, [col[str(m)] for m in a]] - V[rows, [col[str(m)] for m in b]]

    def predict(self, X, model_a=None, model_b=None) -> np.ndarray:
        """The predicted gain of each row's ``model_a`` over its ``model_b`` (:meth:`predict_gain`):
        the label ``y`` of :meth:`fit`, for pipelines and model selection (route them with
        ``set_predict_request(model_a=True, model_b=True)`` under metadata routing).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features, as in :meth:`predict_utility`.
        model_a, model_b : str or array-like of shape (n,)
            The compared models (required; None raises a DataError).

        Returns
        -------
        ndarray of shape (n,)
            The predicted gold-scale gain of ``model_a`` over ``model_b``.
        """
        check_is_fitted(self, "n_features_in_")
        if model_a is None or model_b is None:
            raise DataError(f"{type(self).__name__}.predict needs model_a and model_b (the models each row "
                            "compares); route(X) gives the chosen model, predict_utility(X) every model's utility")
        return self.predict_gain(X, model_a, model_b)

    def score(self, X, y, *, source=None, model_a=None, model_b=None) -> float:
        """Choice share on the gold comparisons (:func:`causal_router.evaluate.choice_share`): of
        the gold gain that always choosing the better model of each compared pair earns over a
        random choice, the share that choosing by the predicted gain earns; 1 = always the better
        model, 0 = a random choice, -1 = always the worse; higher is better, so that
        ``GridSearchCV`` can select K-model routers with it. X, y, ``source`` (None: all gold),
        ``model_a``, ``model_b`` as in :meth:`fit` (held-out comparisons), or one PairwiseData.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or PairwiseData
            Features of the held-out comparisons, or one PairwiseData (then nothing else).
        y : array-like of shape (n,)
            Observed gain of ``model_a`` over ``model_b``; only the gold rows' are used.
        source : array-like of shape (n,), optional
            As in :meth:`fit`; None: every row gold.
        model_a, model_b : array-like of shape (n,)
            The names of the two models each row compares.

        Returns
        -------
        float
            The choice share on the gold rows, in [-1, 1].
        """
        check_is_fitted(self, "n_features_in_")
        name = type(self).__name__
        if isinstance(X, PairwiseData):
            if any(v is not None for v in (y, source, model_a, model_b)):
                raise DataError(f"{name}.score: pass either a PairwiseData or X, y, source, model_a and model_b")
            data = X
            features = self._validate_X(pd.DataFrame(data.X, columns=data.feature_names)
                                        if data.named_features else data.X)
        else:
            check_same_index(f"{name}.score", X=X, y=y, source=source, model_a=model_a, model_b=model_b)
            if model_a is None or model_b is None or y is None:
                raise DataError(f"{name}.score needs y, model_a and model_b (held-out comparisons)")
            features = self._validate_X(X)
            values = [v.to_numpy() if isinstance(v, (pd.Series, pd.Index)) else v for v in (y, source, model_a, model_b)]
            src = values[1] if values[1] is not None else np.ones(len(features), dtype=bool)
            data = PairwiseData(features, values[0], src, values[2], values[3])
        gold = data.is_gold
        if gold.sum() < 1:
            raise DataError(f"{name}.score needs gold comparisons: no row has source 'gold'")
        pred = self._gain_of_rows(features[gold], data.model_a[gold], data.model_b[gold])
        return choice_share(pred, data.gain[gold])

    def _gain_of_rows(self, S: np.ndarray, model_a, model_b) -> np.ndarray:
        U = np.zeros((len(S), len(self.models_)))
        U[:, [self.models_.index(m) for m in self._contrasts]] = self.utility_model_.utilities(S) / self.scale_
        unknown = sorted((set(model_a) | set(model_b)) - set(self.models_))
        if unknown:
            raise DataError(f"unknown model name(s) {unknown[:5]}; the router knows {self.models_}")
        col = {m: j for j, m in enumerate(self.models_)}
        rows = np.arange(len(S))
        return U[rows, [col[m] for m in model_a]] - U[rows, [col[m] for m in model_b]]

    def route(self, X, *, costs=None, cost_weight: float = 0.0) -> np.ndarray:
        """The chosen model per query, argmax_k u_k(s) - cost_weight * C_k(s): object array (n,)
        of model names (:func:`causal_router.routing.choose`).

        ``costs``: see :func:`causal_router.routing.cost_matrix` ({model: scalar or per-query
        array}, K costs, or (n, K); default: no costs, the model of highest utility).
        ``cost_weight``: a finite number >= 0. Ties go to the model listed first in ``models_``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features, as in :meth:`predict_utility`.
        costs : mapping, array-like of shape (K,) or (n, K), or DataFrame, optional
            Each model's cost (:func:`causal_router.routing.cost_matrix`); None: no costs.
        cost_weight : float, default 0.0
            Quality units per unit of cost; finite, >= 0.

        Returns
        -------
        ndarray of object, shape (n,)
            The chosen model's name per query.
        """
        U = self.predict_utility(X)
        C = cost_matrix(costs, self.models_, len(U))
        return np.asarray(self.models_, dtype=object)[choose(U.to_numpy(), cost_weight, C)]

    def frontier(self, X, quality, costs, *, cost_weights=None) -> pd.DataFrame:
        """The quality-versus-cost frontier of routing ``X`` over cost weights, with ``quality``
        (n, K) each model's true or held-out quality per query: see
        :func:`causal_router.evaluate.frontier` (its AIQ: :func:`causal_router.evaluate.aiq`).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features, as in :meth:`predict_utility`.
        quality : DataFrame of shape (n, K)
            Each model's true or held-out quality per query: a column per model of ``models_``
            (matched by name), the row index of X (a RangeIndex where X is not a DataFrame).
        costs : mapping, array-like of shape (K,) or (n, K)
            Each model's cost, as in :func:`causal_router.evaluate.frontier`.
        cost_weights : array-like, optional
            The cost weights w >= 0 to trace; None: 0 and the weights at which a query's choice
            changes (:func:`causal_router.evaluate.frontier`).

        Returns
        -------
        DataFrame
            One row per frontier point, as :func:`causal_router.evaluate.frontier` returns.
        """
        from .evaluate import frontier

        return frontier(self.predict_utility(X), quality, costs, cost_weights=cost_weights)

    def threshold_for_share(self, X_ref, primary_share, *args, **kwargs):
        """Not defined for K models (a budget over K models is not one number): route with
        ``costs`` and ``cost_weight``, and trace budgets with :meth:`frontier`.

        Always raises a :class:`~causal_router.DataError`.

        Parameters
        ----------
        X_ref : array-like
            Ignored.
        primary_share : float
            Ignored.
        *args : object
            Ignored.
        **kwargs : object
            Ignored.
        """
        raise DataError(f"{type(self).__name__} routes among {len(self.models_) if hasattr(self, 'models_') else 'K'} "
                        "models: a primary share does not apply; route with costs= and cost_weight=")

    # ------------------------------------------------------------------ router files
    def to_state(self) -> tuple[dict, dict]:
        """The fitted router as (JSON-able state, members) for its router file: features, scale,
        model names, reference, the utility model (PairwiseRidge or PairwiseBoosting state), the
        bias summary and the featurizer.

        Returns
        -------
        state : dict
            JSON-able fitted state.
        members : dict
            The fitted arrays by name (the utility model's and the featurizer's).
        """
        check_is_fitted(self, "utility_model_")
        um = getattr(self.utility_model_, "estimator_", self.utility_model_)  # PairwiseSelect: the chosen model
        if not isinstance(um, (PairwiseRidge, PairwiseBoosting)):
            from .io import RouterFileError

            raise RouterFileError(f"a router file stores PairwiseBoosting or PairwiseRidge utility models, not "
                                  f"{type(um).__name__}; use causal_router.io.save_pickle")
        ustate, arrays = um.to_state()
        state, members = self._common_state()
        state.update(models=[str(m) for m in self.models_], reference=str(self.reference_), utility_model=ustate)
        members.update({f"utility_{k}": v for k, v in arrays.items()})
        return state, members

    @classmethod
    def from_state(cls, params: dict, state: dict, members: dict, *, path="router file") -> "_MultiBase":
        """A fitted K-model router from its parameters and :meth:`to_state`'s output (checked by
        :func:`causal_router.io.read_router_file`).

        Parameters
        ----------
        params : dict
            The router's constructor parameters.
        state : dict
            The JSON-able state of :meth:`to_state`.
        members : dict
            The fitted arrays of :meth:`to_state`, by name.
        path : str or path-like, default "router file"
            Where the state was read from, named in error messages only.

        Returns
        -------
        _MultiBase
            The fitted router, of this class.
        """
        router = cls(**params)
        router.models_ = [str(m) for m in state["models"]]
        router.reference_ = str(state["reference"])
        arrays = {k.removeprefix("utility_"): v for k, v in members.items() if k.startswith("utility_")}
        kind = state["utility_model"]["kind"]
        um_class = PairwiseBoosting if kind == "boosting" else PairwiseRidge
        router.utility_model_ = um_class.from_state(state["utility_model"], arrays, n_features=state["n_features_in"])
        router._restore_common(state, members, path)
        return router


class _Design:
    """The contrast design of one fit: model names, the reference, the non-reference models."""

    def __init__(self, models, reference):
        self.models, self.reference = list(models), reference
        self.contrasts = [m for m in self.models if m != reference]

    def __call__(self, data: PairwiseData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Z = [S, D], gains, listed_first) of the rows turned to sorted model order
        (:meth:`PairwiseData.oriented`), so that nothing fitted depends on how rows are oriented."""
        gain, a, b, first = data.oriented()
        D = contrast_codes(a, b, self.models, self.reference)
        return np.hstack([data.X, D]), gain, first

    def bias_data(self, data: PairwiseData, order_column: bool) -> EvalData:
        """The rows as the bias model sees them (:meth:`MultiRouter.bias_data`)."""
        Z, gain, first = self(data)
        d = data.X.shape[1]
        names = list(data.feature_names)
        if order_column:
            Z = np.hstack([Z[:, :d], first[:, None], Z[:, d:]])
            names.append("listed_first")
        names += [f"D[{m}]" for m in self.contrasts]
        a, b = np.where(first > 0, data.model_a, data.model_b), np.where(first > 0, data.model_b, data.model_a)
        pairs = np.array([f"{x}|{y}" for x, y in zip(a, b)], dtype=object)
        rows = EvalData(data.X, gain, data.is_gold, pair=pairs, query_id=data.query_id,
                        feature_names=data.feature_names)
        # the design's own columns may equal a judge's +-1 labels (a judge that always prefers the
        # answer listed first): they are not label copies, so they join after EvalData's checks
        rows.X, rows.feature_names = Z, names
        return rows


class MultiRouter(_MultiBase):
    """K-model Meta-Router: per-model utilities from gold rows plus bias-corrected preference rows.

    Parameters
    ----------
    bias : BiasEstimator, optional
        The bias model over the pairwise design (cloned at fit; its ``scale`` is replaced by
        this router's, its ``random_state`` and ``n_jobs`` set from this router's where None).
        Default ``BiasEstimator("r")`` with the final stage
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
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    n_jobs : int or None
        Most threads the fit starts (given to the bias model).
    random_state : int or None
        Seeds the bias model, the utility model and the featurizer (where theirs are None);
        None: fresh entropy for each fit.

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
                 scale: str | None = "variance", featurizer=None, n_jobs: int | None = None, random_state=None):
        self.bias = bias
        self.outcome_model = outcome_model
        self.reference = reference
        self.scale = scale
        self.featurizer = featurizer
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _fit_models(self, data: PairwiseData, design: _Design, *, seed: int, n_jobs) -> dict:
        if data.n_gold == 0 or data.n_preference == 0:
            which = "gold" if data.n_gold == 0 else "preference"
            raise DataError(f"MultiRouter needs gold and preference rows: the data have no {which} row "
                            "(use GoldOnlyMulti or PooledMulti)")
        bias = clone(self.bias) if self.bias is not None else BiasEstimator("r")
        final = bias.model_final if bias.model_final is not None else PairwiseSelect(
            candidates=BIAS_CANDIDATES, order_effect=True, threshold=EVIDENCE_THRESHOLD, n_repeats=STACK_REPEATS,
            random_state=seed)
        if isinstance(final, PairwiseRegressor):
            bias.set_params(model_final=clone(final).set_params(n_contrasts=len(design.contrasts)))
        # the order column goes to every bias model except a pairwise final stage without it
        order_column = not (isinstance(final, PairwiseRegressor) and not final.order_effect)
        bias.set_params(scale=self.scale)
        if bias.random_state is None:
            bias.set_params(random_state=seed)
        if bias.n_jobs is None:
            bias.set_params(n_jobs=n_jobs)
        bias_data = design.bias_data(data, order_column)
        bias.fit(bias_data)
        scale = bias.scale_
        Z, gain, _ = design(data)
        labels = pooled_outcome(gain, data.is_gold, scale)
        pref = ~data.is_gold
        labels[pref] += bias.effect(bias_data.X[pref]) * scale
        utility = self._utility_model(self.outcome_model, design, seed).fit(Z, labels)
        final_ = bias.estimator_.model_final_
        order = (float(final_.order_) / scale if _per_model_linear(final_) and final_.order_effect else None)
        return {"bias_": bias, "bias_order_column_": order_column, "scale_": scale, "utility_model_": utility,
                "corrected_gain_": labels / scale, "order_effect_": order}

    def bias_data(self, data: PairwiseData) -> EvalData:
        """The rows as the bias model sees them: an EvalData of the rows turned to sorted model
        order, whose features are the design [s, listed_first, D] (``listed_first`` = +1 where
        the row's first model was listed first, -1 where the row was turned; left out for a
        pairwise final stage without an order effect), named by the features, ``listed_first``
        and ``D[<model>]``; ``pair`` holds "model_a|model_b". The CATE diagnostics run on it:
        ``causal_router.validate.diagnose(router.bias_data(data), router.bias_)``.

        Parameters
        ----------
        data : PairwiseData
            The pairwise rows (those of the fit, for the diagnostics of the fitted bias model).

        Returns
        -------
        EvalData
            The rows turned to sorted model order, with the design as features.
        """
        check_is_fitted(self, "bias_order_column_")
        return _Design(self.models_, self.reference_).bias_data(data, self.bias_order_column_)

    def bias_per_model(self, X) -> pd.DataFrame:
        """The judge's estimated bias per model, beta_k(s) (gold scale, beta_reference = 0):
        DataFrame (n, K). Defined when the bias final stage is a PairwiseRidge; the common order
        effect is ``order_effect_``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d)
            Query features, as in :meth:`predict_utility`.

        Returns
        -------
        DataFrame of shape (n, K)
            beta_k(s) per query, columns ``models_``; X's index when X is a DataFrame.
        """
        check_is_fitted(self, "bias_")
        S = self._validate_X(X)
        final = self.bias_.estimator_.model_final_
        if not _per_model_linear(final):
            raise DataError("bias_per_model needs a PairwiseRidge final stage of the bias model")
        B = np.zeros((len(S), len(self.models_)))
        B[:, [self.models_.index(m) for m in self._contrasts]] = final.utilities(S) / self.scale_
        return pd.DataFrame(B, columns=list(self.models_), index=X.index if isinstance(X, pd.DataFrame) else None)

    @property
    def bias_model_(self) -> str:
        """Name of the bias model in use: the chosen candidate (e.g. "PairwiseRidge(none)": no
        correction, also where the evidence rule left none of the chosen one, ``bias_share_`` = 0),
        or the final stage's class name."""
        final = self.bias_.estimator_.model_final_
        if getattr(final, "share_", 1.0) == 0:
            return "PairwiseRidge(none)"
        return getattr(final, "chosen_", type(final).__name__)

    @property
    def bias_share_(self) -> float:
        """The share of the chosen bias model in use (the evidence rule of
        :class:`~causal_router.pairwise.PairwiseSelect`; 1 for a final stage without one)."""
        return float(getattr(self.bias_.estimator_.model_final_, "share_", 1.0))

    def _bias_summary(self) -> dict | None:
        """The judge's estimated bias in brief (gold scale): the chosen bias ``model``, the
        ``per_model_constant`` beta_k at s = 0 (vs the reference), the ``order_effect`` and the
        ``average`` bias over the training rows; None for a final stage that is not a PairwiseRidge."""
        final = self.bias_.estimator_.model_final_
        if not _per_model_linear(final):
            return None
        return {"model": self.bias_model_, "share": self.bias_share_,
                "per_model_constant": {m: float(v) / self.scale_ for m, v in zip(self._contrasts, final.const_)},
                "order_effect": self.order_effect_, "average": float(self.bias_.ate()["estimate"])}


def _per_model_linear(final) -> bool:
    """Whether a fitted bias final stage is per-model linear: a PairwiseRidge, or a PairwiseSelect
    that chose one (whose ``utilities``, ``const_`` and ``order_`` are the chosen candidate's
    times its share)."""
    return isinstance(getattr(final, "estimator_", final), PairwiseRidge)


class PooledMulti(_MultiBase):
    """The utility model on gold and preference rows pooled, no bias correction (gold rows put
    on the preference scale by the same constant as :class:`MultiRouter`, which makes this
    baseline stronger, not weaker).

    Parameters
    ----------
    outcome_model : PairwiseSelect, PairwiseBoosting or PairwiseRidge, optional
        The utility model (default ``PairwiseSelect()``).
    reference : str, optional
        The model whose utility is 0 (default: the first model name in sorted order).
    scale : {"variance", "amplitude", "wasserstein", None}
        How the gold-to-preference scale constant is fitted
        (:meth:`causal_router.pairwise.PairwiseData.scale_constant`).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the utility model and the featurizer (where theirs are None); None: fresh entropy
        for each fit.
    """

    def __init__(self, outcome_model=None, reference: str | None = None, scale: str | None = "variance",
                 featurizer=None, random_state=None):
        self.outcome_model = outcome_model
        self.reference = reference
        self.scale = scale
        self.featurizer = featurizer
        self.random_state = random_state

    def _fit_models(self, data: PairwiseData, design: _Design, *, seed: int, n_jobs) -> dict:
        scale = data.scale_constant(self.scale)
        Z, gain, _ = design(data)
        labels = pooled_outcome(gain, data.is_gold, scale)
        return {"scale_": scale, "utility_model_": self._utility_model(self.outcome_model, design, seed).fit(Z, labels)}


class GoldOnlyMulti(_MultiBase):
    """The utility model on the gold rows alone. Fitted on data whose every row is gold (the
    gold labels of every training query), it is the All-Golden oracle.

    Parameters
    ----------
    outcome_model : PairwiseSelect, PairwiseBoosting or PairwiseRidge, optional
        The utility model (default ``PairwiseSelect()``).
    reference : str, optional
        The model whose utility is 0 (default: the first model name in sorted order).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the utility model and the featurizer (where theirs are None); None: fresh entropy
        for each fit.
    """

    _gold_rows_only = True

    def __init__(self, outcome_model=None, reference: str | None = None, featurizer=None, random_state=None):
        self.outcome_model = outcome_model
        self.reference = reference
        self.featurizer = featurizer
        self.random_state = random_state

    def _fit_models(self, data: PairwiseData, design: _Design, *, seed: int, n_jobs) -> dict:
        Z, gain, _ = design(data.subset(data.is_gold))
        return {"scale_": 1.0, "utility_model_": self._utility_model(self.outcome_model, design, seed).fit(Z, gain)}


class BestSingle(_MultiBase):
    """One utility per model, the same for every query: the gold mean gain over the reference,
    by least squares on the gold comparisons. Routes every query to the model with the best
    gold mean (net of ``cost_weight`` times its cost).

    Parameters
    ----------
    reference : str, optional
        The model whose utility is 0 (default: the first model name in sorted order).
    featurizer : TextFeaturizer, optional
        To route texts (see :class:`~causal_router.router.BaseRouter`).
    """

    _gold_rows_only = True

    def __init__(self, reference: str | None = None, featurizer=None):
        self.reference = reference
        self.featurizer = featurizer

    def _fit_models(self, data: PairwiseData, design: _Design, *, seed: int, n_jobs) -> dict:
        Z, gain, _ = design(data.subset(data.is_gold))
        return {"scale_": 1.0, "utility_model_": PairwiseRidge(len(design.contrasts), terms="constant").fit(Z, gain)}


# ---------------------------------------------------------------------------- deprecated names
def load_multi_router(path) -> _MultiBase:
    """Deprecated: use ``BaseRouter.load(path)`` or :func:`causal_router.io.load_router`."""
    warnings.warn("load_multi_router is deprecated and will be removed in the next release; use "
                  "BaseRouter.load(path) or causal_router.io.load_router(path), which read any router file",
                  DeprecationWarning, stacklevel=2)
    from .io import RouterFileError, load_router

    router = load_router(path)
    if not isinstance(router, _MultiBase):
        raise RouterFileError(f"{path} is not a K-model router file (it holds a {type(router).__name__})")
    return router


def multi_router_from_file(header: dict, models: dict, *, path="router file") -> _MultiBase:
    """Deprecated: use :func:`causal_router.io.router_from_file`."""
    warnings.warn("multi_router_from_file is deprecated and will be removed in the next release; use "
                  "causal_router.io.router_from_file", DeprecationWarning, stacklevel=2)
    from .io import RouterFileError, router_from_file

    router = router_from_file(header, models, path=path)
    if not isinstance(router, _MultiBase):
        raise RouterFileError(f"{path} is not a K-model router file (it holds a {type(router).__name__})")
    return router


def is_multi_router_header(header: dict) -> bool:
    """Deprecated: a router file's class says its family (``router.family``)."""
    warnings.warn("is_multi_router_header is deprecated and will be removed in the next release; load the file "
                  "(causal_router.io.load_router) and read router.family", DeprecationWarning, stacklevel=2)
    return header.get("router") in ("MultiRouter", "PooledMulti", "GoldOnlyMulti", "BestSingle")


def __getattr__(name):
    if name == "MULTI_ROUTER_KIND":
        warnings.warn("MULTI_ROUTER_KIND is deprecated and will be removed in the next release: router files no "
                      "longer carry a kind; a router's family is router.family", DeprecationWarning, stacklevel=2)
        return "multi"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
