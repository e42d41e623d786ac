"""Baseline routers with the MetaRouter interface (fit / predict_gain / route).

- :class:`GoldOnly`: the gain model on the gold rows alone. Fitted on data whose every row is
  gold, it is the paper's All-Golden oracle.
- :class:`PreferenceOnly`: on the preference rows alone.
- :class:`Pooled`: gold and preference rows as one regression with no bias correction, as
  RouteLLM-style routers do (gold put on the preference scale by the same constant as the
  meta-router, which makes this baseline stronger, not weaker).
- :class:`MeanShift`: one global correction, preference + (mean gold - mean preference).
- :class:`RandomRouter`: random gains.
"""

from __future__ import annotations

import numpy as np

from ._validation import DataError
from .data import EvalData
from .router import BaseRouter, _fit_gain_model

__all__ = ["GoldOnly", "PreferenceOnly", "Pooled", "MeanShift", "RandomRouter"]


class _LabelRouter(BaseRouter):
    """A gain model fitted on rows and labels chosen by :meth:`_training_rows`."""

    def __init__(self, outcome_model=None, random_state=None):
        self.outcome_model = outcome_model
        self.random_state = random_state

    def fit(self, data: EvalData):
        """Fit the gain model; returns self."""
        if not isinstance(data, EvalData):
            raise DataError(f"fit expects an EvalData, got {type(data).__name__}")
        rows, labels = self._training_rows(data)
        self.scale_ = data.scale_
        self.gain_model_ = _fit_gain_model(self.outcome_model, data.X[rows], labels, None, self.random_state)
        self._record_features(data)
        return self

    def _training_rows(self, data: EvalData):
        raise NotImplementedError


class GoldOnly(_LabelRouter):
    """Gain model on the gold rows only (the All-Golden oracle on all-gold data)."""

    def _training_rows(self, data):
        if data.n_gold == 0:
            raise DataError("GoldOnly needs gold rows: the data have no row with source 'gold'")
        return data.is_gold, data.outcome[data.is_gold]


class PreferenceOnly(_LabelRouter):
    """Gain model on the preference rows only."""

    def _training_rows(self, data):
        if data.n_preference == 0:
            raise DataError("PreferenceOnly needs preference rows: every row is gold")
        return ~data.is_gold, data.outcome[~data.is_gold]


class Pooled(_LabelRouter):
    """Gain model on gold and preference rows pooled without correction."""

    def _training_rows(self, data):
        return np.ones(len(data), dtype=bool), data.outcome


class MeanShift(_LabelRouter):
    """Pooled after adding one global bias (mean gold minus mean preference outcome) to the
    preference rows. ``shift_`` is that bias on the gold scale."""

    def _training_rows(self, data):
        data.require_both_sources("MeanShift")
        o = data.outcome
        shift = o[data.is_gold].mean() - o[~data.is_gold].mean()
        self.shift_ = float(shift / data.scale_)
        return np.ones(len(data), dtype=bool), np.where(data.is_gold, o, o + shift)


class RandomRouter(BaseRouter):
    """Predicts independent uniform(0, 1) gains: a random ordering that routes everything at
    w = 0. Deterministic given ``random_state`` (the same draws on every call)."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, data: EvalData) -> "RandomRouter":
        if not isinstance(data, EvalData):
            raise DataError(f"fit expects an EvalData, got {type(data).__name__}")
        self.scale_ = 1.0
        self._record_features(data)
        return self

    def predict_gain(self, X) -> np.ndarray:
        X = self._check_X(X)
        return np.random.default_rng(self.random_state).uniform(size=len(X))
