"""Baseline routers with the router contract of :class:`~causal_router.router.BaseRouter`.

- :class:`GoldOnly`: the gain model on the gold rows alone. Fitted on data whose every row is
  gold, it is the paper's All-Golden oracle.
- :class:`PreferenceOnly`: on the preference rows alone.
- :class:`Pooled`: gold and preference rows as one regression with no bias correction, as
  RouteLLM-style routers do (gold put on the preference scale by a constant fitted the same way
  as the meta-router's, which makes this baseline stronger, not weaker).
- :class:`MeanShift`: one global correction, preference + (mean gold - mean preference).
- :class:`KNNRouter`: the gain of a query is the mean pooled label (as Pooled's) of its k nearest
  training rows on standardised features, k chosen by cross-validation grouped by query: the
  field's simple, strong baseline (a tuned kNN ties most learned routers on the routing
  benchmarks of 2025-26).
- :class:`RandomRouter`: random gains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold
from sklearn.neighbors import KNeighborsRegressor, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._validation import DataError
from .data import EvalData, fitted_scale, pooled_outcome
from .models import fit_gain_model, repeated_groups
from .router import BaseRouter

__all__ = ["GoldOnly", "PreferenceOnly", "Pooled", "MeanShift", "KNNRouter", "KNN_GRID", "RandomRouter"]

#: The numbers of neighbours :class:`KNNRouter` chooses from by cross-validation.
KNN_GRID = (5, 10, 20, 50, 100, 200)


class _LabelRouter(BaseRouter):
    """A gain model fitted on rows and labels chosen by :meth:`_training_rows`.

    Parameters
    ----------
    outcome_model : regressor, optional
        The gain model (default LightGBM, as the meta-router's).
    scale : {"variance", "amplitude", "wasserstein", None}
        Gold-to-preference scale constant fitted on the training rows (1 with one source only).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the gain model (and the featurizer, where its own is None); None: fresh entropy.
    """

    def __init__(self, outcome_model=None, scale: str | None = "variance", featurizer=None, random_state=None):
        self.outcome_model = outcome_model
        self.scale = scale
        self.featurizer = featurizer
        self.random_state = random_state

    def _fit_data(self, data: EvalData, *, seed: int, n_jobs) -> dict:
        scale = fitted_scale(data, self.scale)
        rows, labels, extra = self._training_rows(data, pooled_outcome(data.gain, data.is_gold, scale), scale)
        gain_model = fit_gain_model(self.outcome_model, data.X[rows], labels, None, seed)
        return {"scale_": scale, "gain_model_": gain_model, **extra}

    def _training_rows(self, data: EvalData, outcome: np.ndarray, scale: float):
        """(rows, their labels, further fitted attributes) of the gain model."""
        raise NotImplementedError


class GoldOnly(_LabelRouter):
    """Gain model on the gold rows only (the All-Golden oracle on all-gold data).

    Parameters
    ----------
    outcome_model : regressor, optional
        The gain model (default LightGBM, as the meta-router's).
    scale : {"variance", "amplitude", "wasserstein", None}
        Gold-to-preference scale constant fitted on the training rows (1 with one source only).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the gain model (and the featurizer, where its own is None); None: fresh entropy.
    """

    def _training_rows(self, data, outcome, scale):
        if data.n_gold == 0:
            raise DataError("GoldOnly needs gold rows: the data have no row with source 'gold'")
        return data.is_gold, outcome[data.is_gold], {}


class PreferenceOnly(_LabelRouter):
    """Gain model on the preference rows only.

    Parameters
    ----------
    outcome_model : regressor, optional
        The gain model (default LightGBM, as the meta-router's).
    scale : {"variance", "amplitude", "wasserstein", None}
        Gold-to-preference scale constant fitted on the training rows (1 with one source only).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the gain model (and the featurizer, where its own is None); None: fresh entropy.
    """

    def _training_rows(self, data, outcome, scale):
        if data.n_preference == 0:
            raise DataError("PreferenceOnly needs preference rows: every row is gold")
        return ~data.is_gold, outcome[~data.is_gold], {}


class Pooled(_LabelRouter):
    """Gain model on gold and preference rows pooled without correction.

    Parameters
    ----------
    outcome_model : regressor, optional
        The gain model (default LightGBM, as the meta-router's).
    scale : {"variance", "amplitude", "wasserstein", None}
        Gold-to-preference scale constant fitted on the training rows (1 with one source only).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the gain model (and the featurizer, where its own is None); None: fresh entropy.
    """

    def _training_rows(self, data, outcome, scale):
        return np.ones(len(data), dtype=bool), outcome, {}


class MeanShift(_LabelRouter):
    """Pooled after adding one global bias (mean gold minus mean preference outcome) to the
    preference rows.

    Parameters
    ----------
    outcome_model : regressor, optional
        The gain model (default LightGBM, as the meta-router's).
    scale : {"variance", "amplitude", "wasserstein", None}
        Gold-to-preference scale constant fitted on the training rows (1 with one source only).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the gain model (and the featurizer, where its own is None); None: fresh entropy.

    Attributes
    ----------
    shift_ : float
        That bias on the gold scale.
    """

    def _training_rows(self, data, outcome, scale):
        data.require_both_sources("MeanShift")
        shift = outcome[data.is_gold].mean() - outcome[~data.is_gold].mean()
        return (np.ones(len(data), dtype=bool), np.where(data.is_gold, outcome, outcome + shift),
                {"shift_": float(shift / scale)})


class KNNRouter(BaseRouter):
    """k-nearest-neighbour router: a query's gain is the mean pooled label of its k nearest training rows.

    Labels are Pooled's (gold gains times the scale constant ``scale_``, fitted on the training
    rows as every router's; preference gains as they are; no bias correction); distances are
    Euclidean on the features standardised over the training rows; the k nearest rows weigh
    equally. A neighbour is a training row (a query, or a query and model pair where rows are
    pairs). k is chosen from ``k_grid`` by the cross-validated mean squared error of the pooled
    labels over ``cv`` folds that hold out whole queries where queries repeat (``groups`` /
    ``EvalData.query_id``: a row's neighbours from its own query would favour a small k), rows
    otherwise; ``n_neighbors`` fixes k instead. Gains are reported on the gold scale.

    Parameters
    ----------
    n_neighbors : int, optional
        A fixed k (no cross-validation).
    k_grid : sequence of int
        Candidate k (default :data:`KNN_GRID`); values above a fold's training rows are skipped.
    cv : int
        Folds of the choice of k.
    scale : {"variance", "amplitude", "wasserstein", None}
        Gold-to-preference scale constant fitted on the training rows (1 with one source only).
    featurizer : TextFeaturizer, optional
        Fit from text (see :class:`~causal_router.router.BaseRouter`).
    random_state : int or None
        Seeds the folds; None: fresh entropy at each fit.

    Attributes
    ----------
    n_neighbors_ : int, the k in use.
    cv_error_ : Series or None, cross-validated mean squared error (preference scale) by k (None
        with a fixed ``n_neighbors``, and in a router read from a file).
    gain_model_ : Pipeline of StandardScaler and KNeighborsRegressor (brute-force search: exact,
        and a router file holds it as plain arrays), on the preference scale.
    """

    def __init__(self, n_neighbors: int | None = None, k_grid=KNN_GRID, cv: int = 5, scale: str | None = "variance",
                 featurizer=None, random_state=None):
        self.n_neighbors = n_neighbors
        self.k_grid = k_grid
        self.cv = cv
        self.scale = scale
        self.featurizer = featurizer
        self.random_state = random_state

    def _fit_data(self, data: EvalData, *, seed: int, n_jobs) -> dict:
        scale = fitted_scale(data, self.scale)
        X, o = data.X, pooled_outcome(data.gain, data.is_gold, scale)
        cv_error = None
        if self.n_neighbors is not None:
            k = self.n_neighbors
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(o):
                raise DataError(f"n_neighbors must be an integer in [1, {len(o)}] (the training rows), got {k!r}")
            k = int(k)
        else:
            cv_error = self._cv_errors(X, o, repeated_groups(data.query_groups), seed)
            k = int(cv_error.idxmin())
        gain_model = make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=k, algorithm="brute")).fit(X, o)
        return {"scale_": scale, "gain_model_": gain_model, "n_neighbors_": k, "cv_error_": cv_error}

    @classmethod
    def from_state(cls, params: dict, state: dict, members: dict, *, path="router file") -> "KNNRouter":
        """A fitted kNN router from its router file (:meth:`BaseRouter.from_state`); ``n_neighbors_``
        is read from the stored gain model, ``cv_error_`` is not kept in the file (None).

        Parameters
        ----------
        params : dict
            The router's constructor parameters.
        state : dict
            The JSON-able state of :meth:`~causal_router.router.BaseRouter.to_state`.
        members : dict
            The fitted models and arrays, by name.
        path : str or path-like, default "router file"
            Where the state was read from, named in error messages only.

        Returns
        -------
        KNNRouter
            The fitted router.
        """
        router = super().from_state(params, state, members, path=path)
        router.n_neighbors_ = int(router.gain_model_[-1].n_neighbors)
        router.cv_error_ = None
        return router

    def _cv_errors(self, X: np.ndarray, o: np.ndarray, groups, seed: int) -> pd.Series:
        """Mean squared error of the k-neighbour mean on held-out rows, for every k of the grid
        (folds by query where ``groups``, the query codes (n,), repeat; seeded by ``seed``)."""
        grid = sorted({int(k) for k in self.k_grid})
        if not grid or grid[0] < 1:
            raise DataError(f"k_grid must hold positive integers, got {self.k_grid!r}")
        cv = int(self.cv)
        if cv < 2:
            raise DataError(f"cv must be an integer >= 2, got {self.cv!r}")
        if groups is not None:
            if len(np.unique(groups)) < cv:
                raise DataError(f"KNNRouter needs at least cv={cv} queries to choose k, got {len(np.unique(groups))}")
            folds = GroupKFold(cv, shuffle=True, random_state=seed).split(X, o, groups)
        else:
            if len(o) < cv:
                raise DataError(f"KNNRouter needs at least cv={cv} rows to choose k, got n_samples={len(o)}")
            folds = KFold(cv, shuffle=True, random_state=seed).split(X)
        sse, count = np.zeros(len(grid)), np.zeros(len(grid))
        for train, test in folds:
            usable = [j for j, k in enumerate(grid) if k <= len(train)]
            if not usable:
                continue
            scaler = StandardScaler().fit(X[train])
            k_max = grid[usable[-1]]
            _, idx = NearestNeighbors(n_neighbors=k_max).fit(scaler.transform(X[train])).kneighbors(
                scaler.transform(X[test]))
            means = np.cumsum(o[train][idx], axis=1) / np.arange(1, k_max + 1)
            for j in usable:
                sse[j] += np.sum((means[:, grid[j] - 1] - o[test]) ** 2)
                count[j] += len(test)
        if not count.any():
            raise DataError(f"no k in k_grid={self.k_grid!r} fits the folds' training rows")
        keep = count > 0
        return pd.Series(sse[keep] / count[keep], index=pd.Index(np.array(grid)[keep], name="k"), name="mse")


class RandomRouter(BaseRouter):
    """Predicts independent uniform(0, 1) gains: a random ordering that routes everything at
    w = 0. The same draws on every call of one fit (``seed_``, from ``random_state``).

    Parameters
    ----------
    random_state : int or None
        Seeds the draws; None: fresh entropy at each fit.
    """

    def __init__(self, random_state=None):
        self.random_state = random_state

    def _fit_data(self, data: EvalData, *, seed: int, n_jobs) -> dict:
        return {"scale_": 1.0, "seed_": seed}

    def _predict_raw(self, X: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed_).uniform(size=len(X))

    def to_state(self):
        """Not available: a random router has no model to save."""
        raise DataError("RandomRouter has no model to save")
