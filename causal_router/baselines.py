"""Baseline routers with the router contract of :class:`~causal_router.router.BaseRouter`.

- :class:`GoldOnly`: the gain model on the gold rows alone. Fitted on data whose every row is
  gold, it is the paper's All-Golden oracle.
- :class:`PreferenceOnly`: on the preference rows alone.
- :class:`Pooled`: gold and preference rows as one regression with no bias correction, as
  RouteLLM-style routers do (gold put on the preference scale by a constant fitted the same way
  as the meta-router's, which makes this baseline stronger, not weaker).
- :class:`MeanShift`: one global correction, preference + (mean gold - mean preference).
- :class:`RandomRouter`: random gains.
"""

from __future__ import annotations

import numpy as np

from ._validation import DataError
from .data import EvalData, fitted_scale, pooled_outcome
from .models import fit_gain_model
from .router import BaseRouter

__all__ = ["GoldOnly", "PreferenceOnly", "Pooled", "MeanShift", "RandomRouter"]


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
    """Gain model on the gold rows only (the All-Golden oracle on all-gold data)."""

    def _training_rows(self, data, outcome, scale):
        if data.n_gold == 0:
            raise DataError("GoldOnly needs gold rows: the data have no row with source 'gold'")
        return data.is_gold, outcome[data.is_gold], {}


class PreferenceOnly(_LabelRouter):
    """Gain model on the preference rows only."""

    def _training_rows(self, data, outcome, scale):
        if data.n_preference == 0:
            raise DataError("PreferenceOnly needs preference rows: every row is gold")
        return ~data.is_gold, outcome[~data.is_gold], {}


class Pooled(_LabelRouter):
    """Gain model on gold and preference rows pooled without correction."""

    def _training_rows(self, data, outcome, scale):
        return np.ones(len(data), dtype=bool), outcome, {}


class MeanShift(_LabelRouter):
    """Pooled after adding one global bias (mean gold minus mean preference outcome) to the
    preference rows. ``shift_`` is that bias on the gold scale."""

    def _training_rows(self, data, outcome, scale):
        data.require_both_sources("MeanShift")
        shift = outcome[data.is_gold].mean() - outcome[~data.is_gold].mean()
        return (np.ones(len(data), dtype=bool), np.where(data.is_gold, outcome, outcome + shift),
                {"shift_": float(shift / scale)})


class RandomRouter(BaseRouter):
    """Predicts independent uniform(0, 1) gains: a random ordering that routes everything at
    w = 0. The same draws on every call of one fit (``seed_``, from ``random_state``; None:
    fresh entropy at each fit)."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def _fit_data(self, data: EvalData, *, seed: int, n_jobs) -> dict:
        return {"scale_": 1.0, "seed_": seed}

    def _predict_raw(self, X: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed_).uniform(size=len(X))

    def to_state(self):
        """Not available: a random router has no model to save."""
        raise DataError("RandomRouter has no model to save")
