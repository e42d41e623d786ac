"""The dowhy side of the refutations: the causal model, one refuter simulation, econml's sensitivity."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.base import clone

from .._utils import seeded_global_random
from .._validation import DataError
from ..bias import LEARNERS, BiasEstimator, econml_params, fitted_final_stage
from ..data import EvalData, fitted_scale, pooled_outcome
from ..models import (
    ClippedClassifier,
    DuplicateAwareKFold,
    FrozenStackedFinalStage,
    UniqueColumns,
    default_propensity,
    default_regressor,
    final_stage,
)

__all__ = ["DowhySetup", "simulate", "SIMULATION_ERRORS", "TREATMENT", "OUTCOME"]

logger = logging.getLogger("causal_router")

#: Column names of the treatment (1 = gold) and the outcome (gain, preference scale) in dowhy's
#: frame; the refuters add 'placebo', 'w_random', 'dummy_outcome', 'simulated'.
TREATMENT, OUTCOME = "t_gold", "o_gain"

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
    """The dowhy model, the identified estimand and the original estimate for a bias model's settings.

    ``cv`` folds per refit; ``thorough`` keeps the cross-validated propensity penalty and the
    stacking of the default final stage in every refit (otherwise both are fitted once on all
    rows and frozen). ``scale`` is the gold-to-preference constant
    fitted on all rows with the bias model's method; ``original_raw`` the estimate on the
    preference scale.
    """

    def __init__(self, data: EvalData, bias: BiasEstimator, *, min_propensity: float, cv: int, seed: int,
                 thorough: bool):
        from dowhy import CausalModel

        self.data, self.bias, self.cv, self.seed, self.thorough = data, bias, cv, seed, thorough
        self.learner = bias.learner
        d = data.X.shape[1]
        self.features = [f"s{j}" for j in range(d)]
        frame = pd.DataFrame(data.X, columns=self.features)
        frame[TREATMENT] = data.treatment.astype(int)
        self.scale = fitted_scale(data, bias.scale)
        frame[OUTCOME] = pooled_outcome(data.gain, data.is_gold, self.scale)
        self.frame = frame
        self.min_propensity = min_propensity
        self.final_name = self._final_name()
        self.model_t, self.propensity_desc = self._propensity()
        # no causal graph: the common causes and effect modifiers define it (dowhy logs that it
        # builds one; that record is dropped)
        with _without("dowhy.causal_model", "Causal Graph not provided"):
            model = CausalModel(frame, treatment=TREATMENT, outcome=OUTCOME, common_causes=self.features,
                                effect_modifiers=self.features)
        self.estimand = model.identify_effect(proceed_when_unidentifiable=True, method_name="maximal-adjustment")
        self.estimate = self._estimate(LEARNERS[self.learner].econml_class()(**self.init_params()))
        self.original_raw = float(self.estimate.value)
        if not np.isfinite(self.original_raw):
            raise DataError("the original estimate of the average bias is not finite; check the data "
                            "(overlap, constant gains)")
        self.final_desc = self.final_name
        if self.final_name == "stack" and not thorough:
            # the refits reuse the stacking weights of the original fit (dowhy deep-copies this
            # econml object for every refit, which reads model_final when it fits)
            econml_estimator = self.estimate.estimator.estimator
            stack = fitted_final_stage(econml_estimator)
            weights = tuple(float(w) for w in stack.weights_)
            econml_estimator.model_final = FrozenStackedFinalStage(tuple(stack.candidates), weights, stack.random_state)
            shown = ", ".join(f"{n} {w:.2f}" for n, w in zip(stack.candidates, weights) if w > 0)
            self.final_desc = f"stack, weights fitted once on all rows and frozen in the refits ({shown})"

    def _estimate(self, econml_estimator):
        """dowhy's estimate of the average effect with ``econml_estimator`` (an unfitted econml object)."""
        from dowhy.causal_estimator import estimate_effect
        from dowhy.causal_estimators.econml import Econml

        estimator = Econml(self.estimand, econml_estimator=econml_estimator)
        return estimate_effect(self.frame, TREATMENT, OUTCOME, "backdoor", estimator, effect_modifiers=self.features,
                               method_params={})

    @property
    def payload(self):
        """What a simulation needs: (frame, estimand, estimate, feature names)."""
        return (self.frame, self.estimand, self.estimate, self.features)

    def _final_name(self) -> str:
        b = self.bias
        if self.learner in ("forest", "linear"):
            return self.learner
        if self.learner == "auto" and b.model_final is None:
            if not hasattr(b, "final_stage_"):
                logger.info("refute: fitting the auto learner once to choose its final stage")
                b = clone(b).fit(self.data)
            return b.final_stage_
        if b.model_final is None:
            return "stack"  # BiasEstimator's default final stage
        return b.model_final if isinstance(b.model_final, str) else "custom"

    def _final(self):
        b = self.bias
        if self.final_name == "custom":
            return clone(b.model_final)
        return final_stage(self.final_name, self.seed)

    def _propensity(self):
        b = self.bias
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

    def nuisances(self):
        """(outcome model, clipped propensity model) of a refit; both drop dowhy's duplicated columns."""
        from sklearn.pipeline import make_pipeline

        b = self.bias
        model_y = clone(b.model_y) if b.model_y is not None else default_regressor(self.seed).set_params(
            colsample_bytree=1.0)
        model_y = make_pipeline(UniqueColumns(), model_y)
        model_t = ClippedClassifier(make_pipeline(UniqueColumns(), clone(self.model_t)), self.min_propensity)
        return model_y, model_t

    def init_params(self, learner: str | None = None) -> dict:
        """econml keyword arguments for ``learner`` (default: the estimator's; "linear_dml" for the
        sensitivity analysis) with this set-up's nuisances, final stage and duplicate-aware folds."""
        learner = learner or self.learner
        model_y, model_t = self.nuisances()
        folds = DuplicateAwareKFold(self.cv, self.seed)
        if learner == "linear_dml":
            return {"model_y": model_y, "model_t": model_t, "discrete_treatment": True, "cv": folds,
                    "random_state": self.seed}
        final = self._final() if LEARNERS[learner].final_stage else None
        return econml_params(learner, model_y=model_y, model_t=model_t, model_final=final,
                             min_propensity=self.min_propensity, cv=folds, random_state=self.seed)

    def econml_sensitivity(self, alpha: float, level: float) -> dict:
        """econml's omitted-variable-bias sensitivity (Chernozhukov et al. 2022) of the estimate:
        theta, its bounds and confidence bounds at ``c_y = c_t = level``, robustness values at
        ``alpha`` (gold scale where a bias).

        NonParamDML (learners "r", "auto") has none: the closest linear variant, LinearDML with
        the same nuisances and folds, is fitted through dowhy for it (same residuals; its theta is
        the overlap-weighted average effect of the partially linear model). A fit that fails with
        one of :data:`SIMULATION_ERRORS` is reported (``available`` False, ``error``), not raised.
        """
        scale = self.scale
        try:
            if self.learner in ("r", "auto"):
                from econml.dml import LinearDML

                obj = self._estimate(LinearDML(**self.init_params("linear_dml"))).estimator.estimator
                args, name = (), "LinearDML (same nuisances; NonParamDML has none)"
            else:
                obj = self.estimate.estimator.estimator
                args = (1,) if self.learner in ("dr", "linear") else ()
                name = type(obj).__name__
            theta = float(np.ravel(obj.sensitivity_interval(*args, alpha=alpha, c_y=0, c_t=0,
                                                            interval_type="theta"))[0])
            tl, tu = (float(np.ravel(v)[0]) for v in obj.sensitivity_interval(
                *args, alpha=alpha, c_y=level, c_t=level, interval_type="theta"))
            cl, cu = (float(np.ravel(v)[0]) for v in obj.sensitivity_interval(
                *args, alpha=alpha, c_y=level, c_t=level, interval_type="ci"))
            rv = float(obj.robustness_value(*args, alpha=alpha, interval_type="theta"))
            rv_ci = float(obj.robustness_value(*args, alpha=alpha, interval_type="ci"))
        except SIMULATION_ERRORS as exc:  # reported, not raised: the other refuters stand on their own
            message = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"econml's sensitivity analysis of the average bias failed: {message}", RuntimeWarning,
                          stacklevel=3)
            return {"available": False, "error": message}
        return {"available": True, "estimator": name, "theta": theta / scale, "theta_lower": tl / scale,
                "theta_upper": tu / scale, "ci_lower": cl / scale, "ci_upper": cu / scale,
                "robustness_value": rv, "robustness_value_ci": rv_ci, "c_y": level, "c_t": level}


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
