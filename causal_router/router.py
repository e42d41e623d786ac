"""Routers: the one router contract, and where labels are corrected.

:class:`BaseRouter` is the contract every router keeps, for two models and for K
(:mod:`causal_router.multi`): ``fit(X, y, *, source, groups, ...)``, ``predict`` /
``predict_gain``, ``score``, ``route(X, *, costs, cost_weight)``, ``save`` and ``load``. Routes
are decided by the rules of :mod:`causal_router.routing`; a two-model router predicts the
gold-standard gain psi(q) of the primary model over the alternative and routes q to the primary iff

    D(q) = psi_hat(q) - w * (C_p(q) - C_a(q)) > 0        (costs 1 / 0 unless given per query).

:class:`MetaRouter` learns the preference bias Delta(s) (:class:`~causal_router.BiasEstimator`),
corrects every preference label y_j to y_j + Delta_hat(q_j) (:func:`correct_labels`), blended
toward the gold rows' own model as far as the held-out gold labels show the judge adds nothing
to them (:func:`judge_evidence`, the weak-judge fallback), and fits the gain model on the gold
rows plus the corrected preference rows. The baselines (:mod:`causal_router.baselines`) share
:class:`BaseRouter` and differ only in the labels they train on.

``decide``, ``threshold_for_share`` and ``RoutingWarning`` are defined in
:mod:`causal_router.routing` and importable from here as well.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from . import io
from ._compiled import compiled_model
from ._parallel import thread_count
from ._utils import as_seed, resolve_seed
from ._validation import DataError, check_features, check_same_index
from .bias import BiasEstimator
from .data import EvalData, as_eval_data, pooled_outcome
from .evaluate import oracle_share
from .models import EVIDENCE_THRESHOLD, calibration_slope, evidence_share, fit_gain_model, repeated_groups
from .routing import RoutingWarning, decide, threshold_for_share, two_model_costs
from .text import TextFeaturizer, embed_extra_installed

__all__ = ["BaseRouter", "MetaRouter", "RoutingWarning", "correct_labels", "decide", "threshold_for_share",
           "weigh_judge", "judge_evidence", "describe_judge", "check_preference_weight"]


class BaseRouter(BaseEstimator):
    """The router contract, shared by the two-model and the K-model routers.

    ``fit(X, y, *, source=None, groups=None)`` takes features X (array or DataFrame, (n, d)),
    gains y (n,), ``source`` (n,) ("gold" / "preference" or booleans, True = gold; None = every
    row gold) and ``groups`` (n,), the query of each row (kept as the data's ``query_id``), or
    one :class:`~causal_router.data.EvalData`; K-model routers add ``model_a`` and ``model_b``
    (:mod:`causal_router.multi`). Fit builds every fitted attribute first and sets them only
    when it succeeds: a fit that raises leaves the router unfitted. ``random_state`` None draws
    fresh entropy for each fit, as in scikit-learn; ``n_jobs`` bounds the threads a fit starts
    (None: 1 outside a ``joblib.parallel_config`` context).

    ``predict`` is :meth:`predict_gain` (the label ``y`` of ``fit``), so routers work as the last
    step of a ``Pipeline`` and in model selection; :meth:`score` is a higher-is-better routing
    score (two models: the oracle share on the gold rows); :meth:`route` applies the rule of
    :mod:`causal_router.routing`: a boolean array (True = the primary) for two models, the chosen
    model's name for K models. :meth:`save` writes a safe router file and :meth:`load` reads any
    router file back as the class it names (:func:`causal_router.io.load_router`).

    Feature names follow scikit-learn: ``feature_names_in_`` is set only when the features were
    named (a DataFrame with string columns); a DataFrame is then matched by column name, in any
    order, everywhere (``predict``, ``route``, ``score``); names given where the fit had none,
    or none where it had them, warn as scikit-learn warns.

    A router whose ``featurizer`` parameter is a :class:`~causal_router.text.TextFeaturizer` is
    fitted from text (X: a sequence of query strings, or a DataFrame with the featurizer's text
    and pair columns), keeps the fitted featurizer as ``featurizer_``, applies it to text given
    to every method (numeric features named by ``feature_names_in_`` are still accepted) and
    saves it in its router file.

    A two-model router's ``fit`` also records ``training_gains_``, the sorted predicted gains of
    the training queries (one per distinct query where ``groups`` name them; all of them up to
    :data:`~causal_router.io.MAX_TRAINING_GAINS` queries, that many quantiles beyond), kept in its
    router file: ``threshold_for_share(None, r)`` turns a primary share into a cost weight from
    them, for routing a stream of single queries (``causal-router serve --primary-share``). They
    are in-sample predictions, so a share set from them is approximate on new queries.

    Attributes
    ----------
    family : str
        ``"two-model"`` (routes are booleans: True = the primary) or ``"k-model"`` (routes are
        model names); a class attribute.
    """

    family = "two-model"

    def fit(self, X, y=None, *, source=None, groups=None) -> "BaseRouter":
        """Fit on features X (n, d), gains y (n,), ``source`` (n,) and ``groups`` (n,), or on one
        EvalData; returns self.

        ``source`` and ``groups`` are routed by scikit-learn's metadata routing
        (``set_fit_request(source=True, groups=True)``), e.g. ``GridSearchCV(router, grid,
        cv=GroupKFold(5)).fit(X, y, source=source, groups=queries)``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or EvalData
            The rows' features (a DataFrame with string columns names them), or one
            :class:`~causal_router.data.EvalData` holding features, gains, sources and queries
            (then ``y`` and ``source`` are None). Text for a router with a ``featurizer``.
        y : array-like of shape (n,), optional
            The gain of the primary over the alternative on each row, on its mechanism's scale.
        source : array-like of shape (n,), optional
            ``"gold"`` / ``"preference"`` or booleans (True = gold); None: every row is gold.
        groups : array-like of shape (n,), optional
            The query of each row (as ``EvalData.query_id``; both given, they must group the rows
            alike). Where queries repeat, the bias model cross-fits by query and its averages are
            clustered by query. None: every row is its own query.

        Returns
        -------
        self : BaseRouter
            The fitted router.
        """
        return self._fit(X, y, source=source, groups=groups)

    # ------------------------------------------------------------------ the one fit flow
    def _fit(self, X, y, **metadata) -> "BaseRouter":
        try:
            fitted = self._fitted_state(X, y, metadata)
        except BaseException:
            self._forget_fit()
            raise
        self._forget_fit()
        self.__dict__.update(fitted)
        return self

    def _forget_fit(self) -> None:
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            del self.__dict__[name]

    def _fitted_state(self, X, y, metadata: dict) -> dict:
        """Every fitted attribute, in a dict: nothing is set on the router here."""
        seed = resolve_seed(getattr(self, "random_state", None))
        n_jobs = getattr(self, "n_jobs", None)
        thread_count(n_jobs)  # checks n_jobs before any work
        fitted = {}
        featurizer = getattr(self, "featurizer", None)
        if featurizer is not None:
            X, y, metadata, fitted["featurizer_"] = self._featurize_for_fit(featurizer, X, y, metadata, seed)
        data = self._make_data(X, y, **metadata)
        fitted.update(self._fit_data(data, seed=seed, n_jobs=n_jobs))
        if self.family == "two-model":
            trial = copy.copy(self)  # the fitted router, not yet set on self
            trial.__dict__.update(fitted)
            fitted["training_gains_"] = _training_gains(trial._predict_raw, fitted["scale_"], data)
        fitted["n_features_in_"] = int(data.X.shape[1])
        if data.named_features:
            fitted["feature_names_in_"] = np.asarray(data.feature_names, dtype=object)
        return fitted

    def _featurize_for_fit(self, featurizer, X, y, metadata: dict, seed: int):
        """(features as a DataFrame named by the featurizer, y, metadata, fitted featurizer)."""
        name = type(self).__name__
        if not isinstance(featurizer, TextFeaturizer):
            raise DataError(f"{name}: featurizer must be a causal_router.text.TextFeaturizer, got "
                            f"{type(featurizer).__name__}")
        if isinstance(X, EvalData) or hasattr(X, "model_a"):
            raise DataError(f"{name}.fit: a router with a featurizer is fitted from text: pass the texts (or a "
                            "DataFrame with the text column) and the labels, not an EvalData or PairwiseData")
        fitted = clone(featurizer)
        if fitted.random_state is None:
            fitted.set_params(random_state=seed)
        features = fitted.fit_transform(X)
        names = [str(n) for n in fitted.get_feature_names_out()]
        if isinstance(X, (pd.DataFrame, pd.Series)):  # keep the index: rows pair with y by it
            return pd.DataFrame(features, columns=names, index=X.index), y, metadata, fitted
        # a list of texts pairs with the labels by position
        positional = {k: (v.to_numpy() if isinstance(v, (pd.Series, pd.Index)) else v) for k, v in metadata.items()}
        y = y.to_numpy() if isinstance(y, (pd.Series, pd.Index)) else y
        return pd.DataFrame(features, columns=names), y, positional, fitted

    def _make_data(self, X, y, *, source=None, groups=None) -> EvalData:
        return as_eval_data(X, y, source, who=f"{type(self).__name__}.fit", groups=groups)

    def _fit_data(self, data: EvalData, *, seed: int, n_jobs) -> dict:
        """The fitted attributes of this router on ``data`` (``scale_``, ``gain_model_``, ...)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ input at prediction
    def _validate_X(self, X) -> np.ndarray:
        """X as floats (n, d) in the fitted feature order: text through the fitted featurizer,
        a DataFrame matched by column name (scikit-learn's feature-name rules)."""
        check_is_fitted(self, "n_features_in_")
        who = type(self).__name__
        featurizer = self.__dict__.get("featurizer_")
        if featurizer is not None and featurizer.accepts_text(X):
            return check_features(featurizer.transform(X), None, who, n_features=self.n_features_in_)
        if isinstance(X, EvalData):
            X = _data_features(X)
        return check_features(X, getattr(self, "feature_names_in_", None), who, n_features=self.n_features_in_,
                              warn_names=True)

    # ------------------------------------------------------------------ two-model prediction
    def predict_gain(self, X) -> np.ndarray:
        """Predicted gold-standard gain of the primary over the alternative.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or EvalData
            Features (a DataFrame is matched by column name where the fit's features were named);
            text for a router fitted with a ``featurizer``.

        Returns
        -------
        ndarray of shape (n,)
            The predicted gain psi_hat(q) of each row, on the gold scale.
        """
        return self._predict_raw(self._validate_X(X)) / self.scale_

    def predict(self, X) -> np.ndarray:
        """Alias of :meth:`predict_gain` (scikit-learn's name, for pipelines and model selection).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or EvalData
            Features, as in :meth:`predict_gain`.

        Returns
        -------
        ndarray of shape (n,)
            The predicted gold-scale gain of each row.
        """
        return self.predict_gain(X)

    def _predict_raw(self, X: np.ndarray) -> np.ndarray:
        """Predictions of ``gain_model_``: a LightGBM gain model is compiled on first use
        (:mod:`causal_router._compiled`: used only where it reproduces LightGBM exactly)."""
        compiled = compiled_model(self.gain_model_)
        if compiled is not None:
            return compiled.predict(X)
        return np.asarray(self.gain_model_.predict(X), dtype=float).reshape(-1)

    def score(self, X, y, *, source=None) -> float:
        """Oracle share (:func:`causal_router.evaluate.oracle_share`) of the predicted gains
        against the gold gains ``y`` of the gold-labelled rows (``source`` as in :meth:`fit`;
        None = all gold): 1 = the oracle's ranking, 0 = a random one; higher is better. X is
        matched by column name as in :meth:`predict`. Needs at least two gold rows.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or EvalData
            Features (or an EvalData holding features, gains and sources; then ``y`` and
            ``source`` are None).
        y : array-like of shape (n,)
            The observed gains; only the gold rows' are used.
        source : array-like of shape (n,), optional
            As in :meth:`fit`; None: every row is gold.

        Returns
        -------
        float
            The oracle share of the predicted gains on the gold rows.
        """
        check_is_fitted(self, "n_features_in_")
        name = type(self).__name__
        if isinstance(X, EvalData):
            data = as_eval_data(X, y, source, who=f"{name}.score")
            features = self._validate_X(X)
        else:
            check_same_index(f"{name}.score", X=X, y=y, source=source)
            features = self._validate_X(X)
            data = as_eval_data(features, _values(y), _values(source), who=f"{name}.score")
        if data.n_gold < 2:
            raise DataError(f"score needs at least 2 gold rows, got {data.n_gold}")
        pred = self._predict_raw(features[data.is_gold]) / self.scale_
        return oracle_share(pred, data.gain[data.is_gold])

    def route(self, X, *args, costs=None, cost_weight: float = 0.0, **deprecated) -> np.ndarray:
        """Boolean array of shape (n,): True = send the query to the primary model.

        The rule of :func:`causal_router.routing.decide`: primary where predicted gain -
        ``cost_weight`` * (C_primary - C_alternative) > 0. ``costs``: None (1 and 0), or a mapping
        ``{"primary": c_p, "alternative": c_a}`` of scalars or per-query arrays (n,)
        (:func:`causal_router.routing.two_model_costs`). ``cost_weight``: a finite number >= 0.
        The old call ``route(X, w, cost_primary, cost_alternative)`` still works and warns
        (DeprecationWarning).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n, d), or EvalData
            The queries' features, as in :meth:`predict_gain`.
        *args : float
            Deprecated positional ``cost_weight, cost_primary, cost_alternative``.
        costs : mapping, optional
            ``{"primary": c_p, "alternative": c_a}``, each a scalar or an array of shape (n,);
            None: 1 for the primary and 0 for the alternative.
        cost_weight : float, default 0.0
            The weight w of the cost difference, in gain units per cost unit; finite, >= 0.
        **deprecated : float or array-like
            Deprecated keywords ``cost_primary`` and ``cost_alternative`` (DeprecationWarning).

        Returns
        -------
        ndarray of bool, shape (n,)
            True where the query goes to the primary model.
        """
        cost_weight, costs = _old_cost_arguments("route", args, deprecated, cost_weight, costs)
        gain = self.predict_gain(X)
        cost_primary, cost_alternative = two_model_costs(costs, len(gain))
        return decide(gain, cost_weight, cost_primary, cost_alternative)

    def threshold_for_share(self, X_ref, primary_share: float, *args, costs=None, **deprecated) -> float:
        """The cost weight w >= 0 that sends ``primary_share`` of the queries ``X_ref`` to the
        primary (:func:`causal_router.routing.threshold_for_share` of their predicted gains;
        ``costs`` as in :meth:`route`). The old positional costs still work and warn.

        Parameters
        ----------
        X_ref : array-like or DataFrame of shape (n, d), or None
            Reference queries; None: the training queries' predicted gains ``training_gains_``
            (kept in the router file; for costs 1 and 0 only).
        primary_share : float
            The share of the reference queries to send to the primary, in [0, 1].
        *args : float or array-like
            Deprecated positional ``cost_primary, cost_alternative``.
        costs : mapping, optional
            ``{"primary": c_p, "alternative": c_a}`` as in :meth:`route`; None: 1 and 0.
        **deprecated : float or array-like
            Deprecated keywords ``cost_primary`` and ``cost_alternative`` (DeprecationWarning).

        Returns
        -------
        float
            The cost weight w >= 0 to pass to :meth:`route`.
        """
        _, costs = _old_cost_arguments("threshold_for_share", (None, *args), deprecated, 0.0, costs)
        if X_ref is None:
            check_is_fitted(self, "n_features_in_")
            if "training_gains_" not in self.__dict__:
                raise DataError(f"this {type(self).__name__} records no training gains: pass reference queries X_ref, "
                                "or set a cost weight")
            if costs is not None:
                raise DataError("the training queries' threshold is for costs 1 and 0; pass X_ref for other costs")
            return threshold_for_share(self.training_gains_, primary_share)
        gain = self.predict_gain(X_ref)
        cost_primary, cost_alternative = two_model_costs(costs, len(gain)) if costs is not None else (None, None)
        return threshold_for_share(gain, primary_share, cost_primary, cost_alternative)

    # ------------------------------------------------------------------ summaries and files
    def bias_summary(self) -> dict | None:
        """The judge's estimated bias in brief (gold scale), as the router file keeps it; read from
        the file for a loaded router; None for a router without a bias model.

        Returns
        -------
        dict or None
            For :class:`MetaRouter`: ``learner``, ``final_stage``, ``ate`` (estimate, std_error,
            lower, upper and the overlap figures of :meth:`BiasEstimator.ate`),
            ``heterogeneous_share`` and ``judge_weight``; None for a router without a bias model.
        """
        check_is_fitted(self, "n_features_in_")
        if "bias_" in self.__dict__:
            return self._bias_summary()
        return self.__dict__.get("file_info_", {}).get("bias")

    def _bias_summary(self) -> dict | None:
        return None

    def to_state(self) -> tuple[dict, dict]:
        """The fitted router as (JSON-able state, members): what its router file holds beside its
        class and parameters (:mod:`causal_router.io` declares the schema and checks it). Members
        are the fitted models and arrays by name (a LightGBM or scikit-learn gain model, the
        featurizer's arrays).

        Returns
        -------
        state : dict
            JSON-able fitted state (features, scale, bias summary, featurizer, training gains).
        members : dict
            The fitted models and arrays by name.
        """
        state, members = self._common_state()
        members["gain_model"] = self.gain_model_
        gains = self.__dict__.get("training_gains_")
        state["training_gains"] = None if gains is None else [float(g) for g in gains]
        return state, members

    def _common_state(self) -> tuple[dict, dict]:
        """The part of the state every router file holds: features, scale, bias summary, featurizer."""
        check_is_fitted(self, "n_features_in_")
        names = self.__dict__.get("feature_names_in_")
        state = {"n_features_in": int(self.n_features_in_),
                 "feature_names_in": None if names is None else [str(n) for n in names],
                 "scale": float(self.scale_), "bias": self.bias_summary(), "featurizer": None}
        members = {}
        featurizer = self.__dict__.get("featurizer_")
        if featurizer is not None:
            state["featurizer"], arrays = featurizer.to_state()
            members.update({f"featurizer_{k}": v for k, v in arrays.items()})
        return state, members

    def _restore_common(self, state: dict, members: dict, path) -> None:
        """Set the fitted attributes of :meth:`_common_state` from a checked router file."""
        self.n_features_in_ = int(state["n_features_in"])
        if state["feature_names_in"] is not None:
            self.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        self.scale_ = float(state["scale"])
        self.file_info_ = {"bias": state.get("bias")}
        if state.get("featurizer") is not None:
            arrays = {k.removeprefix("featurizer_"): v for k, v in members.items() if k.startswith("featurizer_")}
            try:
                self.featurizer_ = TextFeaturizer.from_state(state["featurizer"], arrays)
            except DataError as exc:
                raise io.RouterFileError(f"{path}: field fitted.featurizer: {exc}") from None
            if self.featurizer_.method == "minilm" and not embed_extra_installed():
                warnings.warn(f"{path}: this router embeds text with {self.featurizer_.model_}, which needs the "
                              "[embed] extra: pip install 'causal_router[embed]' (install torch==2.13.0 first for "
                              "a CPU build); until then it routes numeric features only", UserWarning, stacklevel=5)

    @classmethod
    def from_state(cls, params: dict, state: dict, members: dict, *, path="router file") -> "BaseRouter":
        """A fitted router from its parameters and :meth:`to_state`'s output, checked by
        :func:`causal_router.io.read_router_file`; it predicts and routes as the saved one.

        Parameters
        ----------
        params : dict
            The router's constructor parameters.
        state : dict
            The JSON-able state of :meth:`to_state`.
        members : dict
            The fitted models and arrays of :meth:`to_state`, by name.
        path : str or path-like, default "router file"
            Where the state was read from, named in error messages only.

        Returns
        -------
        BaseRouter
            The fitted router, of this class.
        """
        router = cls(**params)
        router.gain_model_ = members["gain_model"]
        router._restore_common(state, members, path)
        if state.get("training_gains") is not None:
            router.training_gains_ = np.asarray(state["training_gains"], dtype=float)
        return router

    def save(self, path) -> Path:
        """Write a safe router file (:func:`causal_router.io.save_router`): JSON, LightGBM text,
        ``.npy`` and skops members that loading never executes; returns the path. The econml bias
        model is not in it (routing does not need it): :func:`causal_router.io.save_pickle`
        keeps the whole fitted object as a trusted pickle.

        Parameters
        ----------
        path : str or path-like
            The router file to write (written atomically).

        Returns
        -------
        Path
            The path written.
        """
        return io.save_router(self, path)

    @classmethod
    def load(cls, path) -> "BaseRouter":
        """Read a router file (:func:`causal_router.io.load_router`): the router of the class the
        file names, which predicts and routes exactly as the saved one; its parameters, nested
        ones included, are those it was fitted with (``clone(load(path))`` refits the same
        configuration). ``MetaRouter.load`` refuses a file holding another class;
        ``BaseRouter.load`` reads any router file.

        Parameters
        ----------
        path : str or path-like
            A router file written by :meth:`save`.

        Returns
        -------
        BaseRouter
            The fitted router; a :class:`~causal_router.io.RouterFileError` where the file holds
            a router that is not an instance of this class.
        """
        router = io.load_router(path)
        if not isinstance(router, cls):
            raise io.RouterFileError(f"{path} holds a {type(router).__name__}, not a {cls.__name__}")
        return router

    @classmethod
    def from_router_file(cls, header: dict, models: dict, *, path="router file") -> "BaseRouter":
        """Deprecated: use :func:`causal_router.io.router_from_file` (the router of a file already read).

        Parameters
        ----------
        header : dict
            The router file's header.
        models : dict
            Its members (fitted models and arrays), by name.
        path : str or path-like, default "router file"
            Where the file was read from, named in error messages only.

        Returns
        -------
        BaseRouter
            The fitted router, an instance of this class.
        """
        warnings.warn("BaseRouter.from_router_file is deprecated and will be removed in the next release; use "
                      "causal_router.io.router_from_file(header, members, path=...)", DeprecationWarning, stacklevel=2)
        router = io.router_from_file(header, models, path=path)
        if not isinstance(router, cls):
            raise io.RouterFileError(f"{path} holds a {type(router).__name__}, not a {cls.__name__}")
        return router


class MetaRouter(BaseRouter):
    """Meta-Router: learn the preference bias, correct the preference labels, fit the gain model.

    Parameters
    ----------
    bias : BiasEstimator, optional
        The bias model (default ``BiasEstimator()``: the R-learner with the stacked final stage,
        whose heterogeneous part is used as far as held-out evidence supports it); cloned at fit,
        its ``random_state`` and ``n_jobs`` set from this router's where they are None.
    outcome_model : regressor, optional
        Gain model fitted on gold plus corrected preference rows (default LightGBM).
    preference_weight : "auto" or float
        ``"auto"`` (default): the corrected preference labels are trusted as far as held-out gold
        labels show that they add to the gold rows alone (:func:`judge_evidence`): each is the
        blend w (y + Delta(s)) + (1 - w) g(s), g the gain model fitted on the gold rows alone and
        w the judge's weight (1 for a judge that clearly adds, 0 for one within noise of
        uninformative: the router then learns the gold rows' model). It needs out-of-fold bias
        estimates (the default stack or ``learner="auto"``; with another final stage w is 1).
        A number lambda >= 0: every corrected preference row carries weight lambda relative to
        a gold row, with no evidence rule (lambda = 1 is the paper's method).
    scale : {"variance", "amplitude", "wasserstein", None}
        How the gold-to-preference scale constant is fitted on the training rows
        (:func:`causal_router.data.scale_constant`); it is given to the bias model (whose own
        ``scale`` it replaces), so that the bias and the gain model share one constant ``scale_``.
    featurizer : TextFeaturizer, optional
        Fit from text: the featurizer is cloned, fitted on X and kept as ``featurizer_``.
    n_jobs : int or None
        Most threads the fit starts (given to the bias model): -1 (default) every core, None 1
        outside a ``joblib.parallel_config`` context (scikit-learn's reading). The default uses
        the cores deliberately: the default bias model's evidence rule refits its candidates 225
        times on held-out folds, and one default fit at n = 5,000, d = 50 took a median 3.16 s on
        one thread against 2.29 s on two (``benchmarks/bench_pipeline.py fittime``, 2 cores;
        the target is 3 s). The estimates do not depend on it. Inside parallel workers pass 1.
    random_state : int or None
        Seeds the bias estimator (unless it has its own), the featurizer (likewise) and the gain
        model; None draws fresh entropy for each fit.

    Attributes
    ----------
    bias_ : the fitted BiasEstimator.
    gain_model_ : the fitted gain model (preference scale; predictions are divided by ``scale_``).
    scale_ : float, the gold-to-preference scale constant c.
    corrected_gain_ : ndarray (n,), training labels on the gold scale after correction.
    judge_weight_ : float, the judge's weight w in the preference labels (1 with a numeric
        ``preference_weight``).
    judge_ : Series or None, the evidence behind it (:func:`judge_evidence`; None with a numeric
        ``preference_weight``). What the bias model used and why: ``bias_.selection_``,
        ``bias_.heterogeneity_`` and ``bias_.correction_``.
    n_features_in_ : int; ``feature_names_in_`` : ndarray of str, for named features only.
    """

    def __init__(self, bias: BiasEstimator | None = None, outcome_model=None,
                 preference_weight: float | str = "auto", scale: str | None = "variance",
                 featurizer: TextFeaturizer | None = None, n_jobs: int | None = -1, random_state=None):
        self.bias = bias
        self.outcome_model = outcome_model
        self.preference_weight = preference_weight
        self.scale = scale
        self.featurizer = featurizer
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _fit_data(self, data: EvalData, *, seed: int, n_jobs) -> dict:
        """Fit the bias, weigh the judge, correct the preference labels, fit the gain model."""
        auto = check_preference_weight(self.preference_weight)
        data.require_both_sources("MetaRouter")
        bias = clone(self.bias) if self.bias is not None else BiasEstimator()
        bias.set_params(scale=self.scale)
        if bias.random_state is None:
            bias.set_params(random_state=seed)
        if bias.n_jobs is None:
            bias.set_params(n_jobs=n_jobs)
        bias.fit(data)
        scale = bias.scale_
        judge, gold_model = None, None
        if auto:
            judge, gold_model = weigh_judge(data, bias, self.outcome_model, random_state=seed)
        judge_weight = 1.0 if judge is None else float(judge["weight"])
        labels = correct_labels(bias, data.X, data.gain, data.is_gold, judge_weight=judge_weight,
                                gold_model=gold_model)
        weight = None if auto else np.where(data.is_gold, 1.0, float(self.preference_weight))
        gain_model = fit_gain_model(self.outcome_model, data.X, labels, weight, seed)
        return {"bias_": bias, "scale_": scale, "gain_model_": gain_model, "corrected_gain_": labels / scale,
                "judge_": judge, "judge_weight_": judge_weight}

    def _bias_summary(self) -> dict:
        """``learner``, ``final_stage``, the average bias ``ate`` (estimate, std_error, lower,
        upper and the overlap figures of :meth:`BiasEstimator.ate`), the ``heterogeneous_share``
        of the default stack in use (None for other final stages) and the ``judge_weight``."""
        ate = self.bias_.ate()
        evidence = self.bias_.heterogeneity_
        return {"learner": self.bias_.learner, "final_stage": self.bias_.final_stage_,
                "ate": {k: float(v) for k, v in ate.items()},
                "heterogeneous_share": None if evidence is None else float(evidence["share"]),
                "judge_weight": float(self.judge_weight_)}


def correct_labels(bias: BiasEstimator, X: np.ndarray, gain: np.ndarray, is_gold: np.ndarray, *,
                   judge_weight: float = 1.0, gold_model=None) -> np.ndarray:
    """The gain model's training labels, shape (n,), on the preference scale. This is where the
    preference labels are corrected.

    Gold rows: the gold gain times ``bias.scale_`` (c). Preference rows: the gain plus the
    estimated bias there, y + c Delta_hat(s), blended toward the gold rows' model g by the
    judge's weight w (:func:`weigh_judge`):

        w (y + c Delta_hat(s)) + (1 - w) c g(s)

    (w = 1: the corrected label as it is, the paper's method; w = 0: the gold rows' model in
    place of the judge).

    Row by row: the labels of a block of rows do not depend on the other rows, so the distributed
    fit applies it partition by partition with the one bias model, weight and gold model.

    Parameters
    ----------
    bias : BiasEstimator
        The fitted bias model (its ``scale_`` is c).
    X : ndarray of shape (n, d)
        The rows' features.
    gain : ndarray of shape (n,)
        The observed gains, each on its mechanism's scale.
    is_gold : ndarray of bool, shape (n,)
        True on the gold rows.
    judge_weight : float, default 1.0
        The judge's weight w, in [0, 1].
    gold_model : regressor, optional
        Fitted regressor of the gold gain (gold scale), needed where ``judge_weight`` < 1.

    Returns
    -------
    ndarray of shape (n,)
        The training labels, on the preference scale.
    """
    w = float(judge_weight)
    if not 0 <= w <= 1:
        raise DataError(f"judge_weight must be in [0, 1], got {judge_weight!r}")
    if w < 1 and gold_model is None:
        raise DataError("correct_labels: a judge_weight below 1 needs the gold rows' model (gold_model)")
    labels = pooled_outcome(gain, is_gold, bias.scale_)
    pref = ~np.asarray(is_gold, dtype=bool)
    labels[pref] += bias.effect(X)[pref] * bias.scale_  # effect on every row: no copy of X[pref]
    if w < 1:
        gold_pred = np.asarray(gold_model.predict(X), dtype=float).reshape(-1)  # every row: no copy of X[pref]
        labels[pref] = w * labels[pref] + (1 - w) * bias.scale_ * gold_pred[pref]
    return labels


def check_preference_weight(value) -> bool:
    """True for ``"auto"``, False for a finite number >= 0; a DataError naming
    ``preference_weight`` otherwise.

    Parameters
    ----------
    value : str or float
        A ``preference_weight``: ``"auto"`` or a finite number >= 0.

    Returns
    -------
    bool
        Whether the weight is ``"auto"``.
    """
    if isinstance(value, str) and value == "auto":
        return True
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not np.isfinite(value) or value < 0:
        raise DataError(f"preference_weight must be 'auto' or a finite number >= 0, got {value!r}")
    return False


def weigh_judge(data: EvalData, bias: BiasEstimator, outcome_model=None, *, threshold: float = EVIDENCE_THRESHOLD,
                cv: int = 5, random_state=None) -> tuple[pd.Series, object]:
    """The weak-judge fallback: the judge's weight (:func:`judge_evidence`) and, where it is below
    1, the gain model fitted on the gold rows alone (gold scale), toward which
    :func:`correct_labels` blends the preference labels; (evidence, None) at weight 1.

    Parameters
    ----------
    data : EvalData
        The rows ``bias`` was fitted on.
    bias : BiasEstimator
        The fitted bias model, as in :func:`judge_evidence`.
    outcome_model : regressor, optional
        The gain model (default LightGBM).
    threshold : float, default ``EVIDENCE_THRESHOLD``
        Standard errors within which the judge's worth counts as nothing.
    cv : int, default 5
        Folds of the gold rows.
    random_state : int or None
        Seeds the folds and the gain models.

    Returns
    -------
    evidence : Series
        :func:`judge_evidence`'s output (``weight`` among it).
    gold_model : regressor or None
        The gain model fitted on the gold rows alone (gold scale) where the weight is below 1;
        None at weight 1.
    """
    judge = judge_evidence(data, bias, outcome_model, threshold=threshold, cv=cv, random_state=random_state)
    if judge["weight"] >= 1:
        return judge, None
    gold = data.is_gold
    return judge, fit_gain_model(outcome_model, data.X[gold], data.gain[gold], None, random_state)


def judge_evidence(data: EvalData, bias: BiasEstimator, outcome_model=None, *, threshold: float = EVIDENCE_THRESHOLD,
                   cv: int = 5, random_state=None) -> pd.Series:
    """How far the corrected judge is worth trusting beside the gold rows alone, from
    out-of-fold predictions of the gold labels.

    On the gold rows (n of them, gold scale): r the gold gain; J the corrected judge's
    out-of-fold prediction, ``bias.judge_oof_`` (the preference outcome model cross-fitted on
    preference rows plus the bias model's out-of-fold estimate: what a gain model fitted on the
    corrected preference rows learns, without the row's own gold label); G the out-of-fold
    prediction of the gain model fitted on the other folds' gold rows alone (``outcome_model``,
    default LightGBM; folds keep a query's rows together). The weight b of J in the blend
    G + b (J - G) that predicts r best (least squares: :func:`~causal_router.models.calibration_slope`
    of r - G on J - G, its standard error clustered by query) is the judge's worth beyond the gold
    rows: b = 0, it adds nothing; b = 1, the gold rows add nothing to it. The weight in use is b
    clipped to [0, 1] times :func:`~causal_router.models.evidence_share` (b, se, ``threshold``),
    the non-negative garrote of the bias model's heterogeneity: 0 where b is within
    ``threshold`` standard errors of 0, so that a judge the gold labels cannot tell from noise
    does not pull the router below the gold rows' own model. (Here b is a size as well as the
    evidence: the best blend weight. The stack's slope is not, and is not multiplied in.)

    Parameters
    ----------
    data : EvalData
        The rows ``bias`` was fitted on.
    bias : BiasEstimator
        Fitted, with a final stage that gives out-of-fold estimates (the default stack, or
        ``learner="auto"``).
    outcome_model : regressor, optional
        The gold-only gain model G (default LightGBM).
    threshold : float, default ``EVIDENCE_THRESHOLD``
        Standard errors within which b counts as 0 (:func:`~causal_router.models.evidence_share`).
    cv : int, default 5
        Folds of the gold rows (at most n_gold // 2 are used).
    random_state : int or None
        Seeds the folds and the gain models.

    Returns
    -------
    Series
        ``weight`` (in [0, 1]), ``slope`` (b), ``std_error``, ``z``, ``threshold``,
        ``judge_correlation`` (of J with r) and ``ppi_threshold`` (prediction-powered inference's
        rule of thumb: a judge whose correlation with the gold labels is below about 1 / sqrt(n - 2)
        buys nothing), ``mse_gold_only``, ``mse_judge`` and ``mse_blend`` (out-of-fold mean squared
        error of G, J and G + weight (J - G), gold scale), ``n_gold``, ``n_clusters``. All NaN but
        ``weight`` = 1 where the bias model gives no out-of-fold estimates (a fixed final stage
        other than the stack) or there are fewer than 4 gold rows: then there is no evidence to weigh
        and the judge is used as given.
    """
    check_is_fitted(bias, "judge_oof_")
    rows = bias.sample_index_
    on_gold = data.is_gold[rows]
    gold = rows[on_gold]
    J = bias.judge_oof_[on_gold]
    n = len(gold)
    nan = float("nan")
    out = {"weight": 1.0, "slope": nan, "std_error": nan, "z": nan, "threshold": float(threshold),
           "judge_correlation": nan, "ppi_threshold": 1 / np.sqrt(n - 2) if n > 2 else nan,
           "mse_gold_only": nan, "mse_judge": nan, "mse_blend": nan, "n_gold": float(n), "n_clusters": nan}
    if n < 4 or not np.all(np.isfinite(J)):
        return pd.Series(out)
    r = data.gain[gold]
    groups = repeated_groups(None if data.query_id is None else data.query_id[gold])
    G = _gold_only_out_of_fold(outcome_model, data.X[gold], r, groups, min(cv, n // 2), random_state)
    b, se = calibration_slope(J - G, r - G, None, groups)
    if not np.isfinite(b):  # J = G on every gold row: the judge adds nothing the gold rows lack
        b, se = 0.0, nan
    weight = min(max(b, 0.0), 1.0) * evidence_share(b, se, threshold)
    out.update(weight=float(weight), slope=b, std_error=se, z=b / se if se > 0 else nan,
               judge_correlation=float(np.corrcoef(J, r)[0, 1]) if np.std(J) > 0 and np.std(r) > 0 else nan,
               mse_gold_only=float(np.mean((r - G) ** 2)), mse_judge=float(np.mean((r - J) ** 2)),
               mse_blend=float(np.mean((r - G - weight * (J - G)) ** 2)),
               n_clusters=float(len(np.unique(groups)) if groups is not None else n))
    return pd.Series(out)


def describe_judge(evidence: pd.Series | dict) -> str:
    """One sentence on the judge's weight and why, from :func:`judge_evidence`'s output.

    Parameters
    ----------
    evidence : Series or dict
        :func:`judge_evidence`'s output (``weight``, ``slope``, ``std_error``, ``threshold``,
        ``judge_correlation``, ``ppi_threshold``, ``n_gold``).

    Returns
    -------
    str
        The sentence.
    """
    e = dict(evidence)
    w, b, se, k = e["weight"], e["slope"], e["std_error"], e["threshold"]
    if b is None or not np.isfinite(b):
        return "the judge is used as given (weight 1): the bias model gives no out-of-fold estimates to weigh it by"
    facts = (f"on held-out gold rows the corrected judge's best weight beside the gold rows' own model is {b:.2f} "
             f"(standard error {se:.2f}; 1 = the gold rows add nothing to the judge, 0 = the judge adds nothing); "
             f"its correlation with the gold labels is {e['judge_correlation']:.2f} "
             f"(a judge below about {e['ppi_threshold']:.2f} buys nothing at {e['n_gold']:.0f} gold rows)")
    if w <= 0:
        return (f"judge weight 0, the router learns from the gold rows alone, because the judge's worth is within "
                f"{k:g} standard error{'s' if k != 1 else ''} of nothing: {facts}")
    return f"judge weight {w:.2f} (the preference labels blend {1 - w:.0%} toward the gold rows' model), because {facts}"


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
        pred[test] = np.asarray(fit_gain_model(model, X[train], y[train], None, seed).predict(X[test]),
                                dtype=float).reshape(-1)
    return pred


# ---------------------------------------------------------------------------- shared helpers
def _training_gains(predict_raw, scale: float, data: EvalData) -> np.ndarray:
    """Sorted predicted gold-scale gains of the distinct training queries (the first row of each
    ``query_id``; every row without ids): at most MAX_TRAINING_GAINS points, midpoint quantiles
    beyond, predicted on at most 100,000 queries (a fixed random subset beyond)."""
    rows = (np.arange(len(data)) if data.query_id is None
            else np.sort(np.unique(data.query_id, return_index=True)[1]))
    if len(rows) > 100_000:
        rows = np.sort(np.random.default_rng(0).choice(rows, 100_000, replace=False))
    gain = np.sort(np.asarray(predict_raw(data.X[rows]), dtype=float) / scale)
    if len(gain) > io.MAX_TRAINING_GAINS:
        gain = np.quantile(gain, (np.arange(io.MAX_TRAINING_GAINS) + 0.5) / io.MAX_TRAINING_GAINS)
    return gain


def _values(v):
    """A pandas object's values (rows already aligned by index), anything else as is."""
    return v.to_numpy() if isinstance(v, (pd.Series, pd.Index, pd.DataFrame)) else v


def _data_features(data) -> np.ndarray | pd.DataFrame:
    """The features of an EvalData / PairwiseData as the router should see them: a DataFrame
    when they were named, else the array."""
    return pd.DataFrame(data.X, columns=data.feature_names) if data.named_features else data.X


def _old_cost_arguments(method: str, args: tuple, deprecated: dict, cost_weight, costs):
    """(cost_weight, costs) from the deprecated positional / keyword ``cost_weight,
    cost_primary, cost_alternative`` of the two-model methods, with a DeprecationWarning."""
    unknown = sorted(set(deprecated) - {"cost_primary", "cost_alternative"})
    if unknown:
        raise TypeError(f"{method}() got unexpected keyword argument(s) {unknown}")
    if len(args) > 3:
        raise TypeError(f"{method}() takes at most 3 positional arguments after X, got {len(args)}")
    old = dict(zip(("cost_weight", "cost_primary", "cost_alternative"), args))
    if old.get("cost_weight") is None:
        old.pop("cost_weight", None)
    for key in ("cost_primary", "cost_alternative"):
        if key in deprecated:
            if key in old:
                raise TypeError(f"{method}() got multiple values for argument {key!r}")
            old[key] = deprecated[key]
    if not old:
        return cost_weight, costs
    warnings.warn(f"{method}(X, cost_weight, cost_primary, cost_alternative) is deprecated and will be removed in "
                  f"the next release: call {method}(X, cost_weight=w, costs={{'primary': c_p, 'alternative': c_a}})",
                  DeprecationWarning, stacklevel=3)
    if "cost_weight" in old:
        cost_weight = old["cost_weight"]
    cp, ca = old.get("cost_primary"), old.get("cost_alternative")
    if cp is not None or ca is not None:
        if costs is not None:
            raise TypeError(f"{method}(): pass costs= or the deprecated cost_primary / cost_alternative, not both")
        costs = {"primary": 1.0 if cp is None else cp, "alternative": 0.0 if ca is None else ca}
    return cost_weight, costs
