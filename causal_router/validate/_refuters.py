"""The dowhy side of the refutations: the model, the AIPW estimate, one simulation, econml's sensitivity."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.base import clone

from .._utils import seeded_global_random
from .._validation import DataError
from ..average import AverageBias
from ..bias import BiasEstimator
from ..data import EvalData, fitted_scale, pooled_outcome
from ..models import (
    DuplicateAwareKFold,
    KnownPropensity,
    RidgeThenBoosting,
    default_propensity,
    default_regressor,
    repeated_groups,
)

__all__ = ["DowhySetup", "simulate", "SIMULATION_ERRORS", "TREATMENT", "OUTCOME"]

#: Column names of the treatment (1 = gold) and the outcome (gain, preference scale) in dowhy's
#: frame; the refuters add 'placebo', 'w_random', 'dummy_outcome', 'simulated'.
TREATMENT, OUTCOME = "t_gold", "o_gain"

#: The column of the design's P(gold | s) where gold rows were drawn with known probabilities: a
#: common cause that dowhy's econml interface puts last in W (a name containing "propensity").
KNOWN_PROPENSITY = "gold_propensity"

#: The exceptions a refit legitimately fails with on a perturbed data set (scikit-learn and econml
#: refuse a degenerate fold or sample with ValueError; a singular system raises LinAlgError). A
#: failed simulation is recorded, counted and reported; any other exception is a bug and raises.
SIMULATION_ERRORS = (ValueError, np.linalg.LinAlgError)


class _DropRecords(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().lstrip().startswith(self.prefixes)


@contextmanager
def _without(logger_name: str, *prefixes: str):
    """Drop the records of logger ``logger_name`` whose message starts with one of ``prefixes``."""
    logger_ = logging.getLogger(logger_name)
    drop = _DropRecords(prefixes)
    logger_.addFilter(drop)
    try:
        yield
    finally:
        logger_.removeFilter(drop)


@contextmanager
def _one_simulation_noise():
    """Silence what dowhy says about its own significance test inside a one-simulation call.

    Every dowhy refuter here runs one simulation per call (the p-values are computed over all
    calls by :mod:`causal_router.validate.refute`), so dowhy's per-call test sees a single
    estimate with zero spread: its log record "We assume a Normal Distribution as the sample has
    less than 100 examples" and numpy's RuntimeWarning "divide by zero (or invalid value)
    encountered in scalar divide" raised in ``dowhy.causal_refuter`` (the z-score of that single
    estimate) are noise and are dropped. Every other warning and log record goes through.
    """
    with warnings.catch_warnings(), _without("dowhy.causal_refuter", "We assume a Normal Distribution"):
        warnings.filterwarnings("ignore", message="(divide by zero|invalid value) encountered in scalar divide",
                                category=RuntimeWarning, module="dowhy.causal_refuter")
        yield


class DowhySetup:
    """The dowhy model, the identified estimand and the original estimate of the average bias.

    The estimate is the AIPW average of :meth:`causal_router.BiasEstimator.ate`, made by the same
    estimator, :class:`~causal_router.average.AverageBias`, through dowhy (:meth:`average_bias`):
    outcome model :class:`~causal_router.models.MechanismOutcomes` (one per mechanism), the bias
    model's propensity, ``cv`` duplicate-aware folds (by query where queries repeat). ``thorough`` keeps the cross-validated
    propensity penalty in every refit (otherwise it is chosen once on all rows and frozen).
    ``scale`` is the gold-to-preference constant fitted on all rows with the bias model's method;
    ``original_raw`` the estimate on the preference scale.
    """

    def __init__(self, data: EvalData, bias: BiasEstimator, *, min_propensity: float, cv: int, seed: int,
                 thorough: bool):
        from dowhy import CausalModel

        self.data, self.bias, self.cv, self.seed, self.thorough = data, bias, cv, seed, thorough
        d = data.X.shape[1]
        self.features = [f"s{j}" for j in range(d)]
        frame = pd.DataFrame(data.X, columns=self.features)
        frame[TREATMENT] = data.treatment.astype(int)
        self.scale = fitted_scale(data, bias.scale)
        frame[OUTCOME] = pooled_outcome(data.gain, data.is_gold, self.scale)
        common_causes = list(self.features)
        if data.gold_probability is not None:  # the design's probabilities travel with their rows as a
            # common cause that dowhy orders last (its name ends in "propensity"), where KnownPropensity reads them
            frame[KNOWN_PROPENSITY] = data.gold_probability
            common_causes.append(KNOWN_PROPENSITY)
        self.frame = frame
        self.min_propensity = min_propensity
        self.model_t, self.propensity_desc = self._propensity()
        # no causal graph: the common causes and effect modifiers define it (dowhy logs that it
        # builds one; that record is dropped)
        with _without("dowhy.causal_model", "Causal Graph not provided"):
            model = CausalModel(frame, treatment=TREATMENT, outcome=OUTCOME, common_causes=common_causes,
                                effect_modifiers=self.features)
        self.estimand = model.identify_effect(proceed_when_unidentifiable=True, method_name="maximal-adjustment")
        self.estimate = self._estimate()
        self.original_raw = float(self.estimate.value)
        if not np.isfinite(self.original_raw):
            raise DataError("the original estimate of the average bias is not finite; check the data "
                            "(overlap, constant gains)")

    def _estimate(self):
        """dowhy's estimate of the average effect with an unfitted :class:`AverageBias` (AIPW),
        through dowhy's econml interface (it refits it on every perturbed data set)."""
        from dowhy.causal_estimator import estimate_effect
        from dowhy.causal_estimators.econml import Econml

        estimator = Econml(self.estimand, econml_estimator=self.average_bias())
        return estimate_effect(self.frame, TREATMENT, OUTCOME, "backdoor", estimator, effect_modifiers=self.features,
                               method_params={})

    @property
    def payload(self):
        """What a simulation needs: (frame, estimand, estimate, feature names)."""
        return (self.frame, self.estimand, self.estimate, self.features)

    def _propensity(self):
        b = self.bias
        if self.data.gold_probability is not None:
            return KnownPropensity(), "the design's probabilities (known, never clipped)"
        if b.model_t is not None:
            return clone(b.model_t), "the estimator's propensity model"
        if self.thorough:
            return default_propensity(self.seed), "L2 logistic regression, penalty cross-validated in every refit"
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        cv_model = default_propensity(self.seed).fit(self.data.X, self.data.treatment)
        C = float(np.ravel(cv_model[-1].C_)[0])
        return (make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)),
                f"L2 logistic regression, penalty C={C:.3g} cross-validated once on all rows and frozen")

    def average_bias(self) -> AverageBias:
        """The unfitted :class:`AverageBias` dowhy fits and refits: the bias model's outcome model
        (default ridge then LightGBM offering every feature to every tree, module docstring of
        :mod:`causal_router.validate.refute`), this set-up's propensity model clipped at
        ``min_propensity``, ``cv`` duplicate-aware folds (by query where queries repeat) and no
        scale (the outcome is already pooled on the preference scale)."""
        b = self.bias
        model_y = clone(b.model_y) if b.model_y is not None else RidgeThenBoosting(
            default_regressor(self.seed).set_params(colsample_bytree=1.0))
        return AverageBias(model_y, clone(self.model_t), scale=None, min_propensity=self.min_propensity,
                           cv=DuplicateAwareKFold(self.cv, self.seed, queries=self._queries()),
                           random_state=self.seed)

    def _queries(self):
        """(features, query codes) of the rows where queries repeat, else None: every refit's folds then
        keep a query's rows (and their bootstrap copies) together, matched by their features."""
        groups = repeated_groups(self.data.query_groups)
        return None if groups is None else (self.data.X, groups)

    def econml_sensitivity(self, alpha: float, level: float) -> dict:
        """econml's omitted-variable-bias sensitivity (Chernozhukov et al. 2022) of the estimate
        (:meth:`AverageBias.sensitivity`, econml's ``sensitivity_interval`` and ``RV`` on the
        refuted fit's nuisances): theta, its bounds and confidence bounds at ``c_y = c_t = level``,
        robustness values at ``alpha`` (gold scale). A computation that fails with one of
        :data:`SIMULATION_ERRORS` is reported (``available`` False, ``error``), not raised."""
        try:
            values = self.estimate.estimator.estimator.sensitivity(alpha, c_y=level, c_t=level)
        except SIMULATION_ERRORS as exc:  # reported, not raised: the other refuters stand on their own
            message = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"econml's sensitivity analysis of the average bias failed: {message}", RuntimeWarning,
                          stacklevel=3)
            return {"available": False, "error": message}
        scaled = {k: (v / self.scale if k.startswith(("theta", "ci_")) else v) for k, v in values.items()}
        return {"available": True, "estimator": "AverageBias (the refuted AIPW estimate)", **scaled}


def _one_simulation(kind: str, seed: int, payload, arg):
    """One refit under one dowhy refuter; returns the new estimate (preference scale)."""
    from dowhy.causal_refuters import add_unobserved_common_cause as ucc
    from dowhy.causal_refuters.bootstrap_refuter import refute_bootstrap
    from dowhy.causal_refuters.data_subset_refuter import refute_data_subset
    from dowhy.causal_refuters.dummy_outcome_refuter import refute_dummy_outcome
    from dowhy.causal_refuters.placebo_treatment_refuter import PlaceboType, refute_placebo_treatment
    from dowhy.causal_refuters.random_common_cause import refute_random_common_cause

    frame, estimand, estimate, features = payload
    frame = frame.copy(deep=True)  # writable (joblib memory-maps large arguments read-only)
    if kind == "placebo_treatment":
        r = refute_placebo_treatment(frame, estimand, estimate, [TREATMENT], num_simulations=1,
                                     placebo_type=PlaceboType.PERMUTE, random_state=seed)
    elif kind == "random_common_cause":
        r = refute_random_common_cause(frame, estimand, estimate, num_simulations=1, random_state=seed)
    elif kind == "data_subset":
        r = refute_data_subset(frame, estimand, estimate, subset_fraction=arg, num_simulations=1,
                               random_state=seed)
    elif kind == "bootstrap":
        # required_variables=False: no added measurement noise, so duplicated rows stay identical
        # and DuplicateAwareKFold keeps them in one fold
        r = refute_bootstrap(frame, estimand, estimate, num_simulations=1, random_state=seed,
                             required_variables=False)
    elif kind == "dummy_outcome":
        # the permuted outcome has the outcome's distribution and no relation to anything; the
        # zero-noise step returns a fresh array (pandas 3 hands out read-only views)
        r = refute_dummy_outcome(frame, estimand, estimate, [TREATMENT], OUTCOME, required_variables=features,
                                 num_simulations=1,
                                 transformation_list=[("permute", {"permute_fraction": 1}),
                                                      ("noise", {"std_dev": 0.0})])[0]
    elif kind == "unobserved_common_cause":
        _, kappa_t, kappa_y = arg
        r = ucc.sensitivity_simulation(frame, estimand, estimate, [TREATMENT], [OUTCOME], kappa_t=kappa_t,
                                       kappa_y=kappa_y, confounders_effect_on_treatment="binary_flip",
                                       confounders_effect_on_outcome="linear")
    else:  # pragma: no cover - the caller builds the jobs
        raise ValueError(f"unknown refuter {kind!r}")
    return float(np.ravel(r.new_effect)[0])


def simulate(kind: str, seed: int, payload, arg) -> tuple[float, str | None]:
    """One simulation of refuter ``kind`` with numpy's global generator seeded by ``seed`` (dowhy
    draws bootstrap noise, permutations and the simulated confounder from it; the caller's state
    is restored). Returns (new estimate on the preference scale, None), or (NaN, message) when
    the refit fails with one of :data:`SIMULATION_ERRORS`."""
    with seeded_global_random(seed), _one_simulation_noise():
        try:
            return _one_simulation(kind, seed, payload, arg), None
        except SIMULATION_ERRORS as exc:
            return float("nan"), f"{type(exc).__name__}: {exc}"
