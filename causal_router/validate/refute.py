"""Robustness refutations of the average bias with dowhy and econml: the numbers and verdicts.

:func:`refute` returns a :class:`Refutation` (table, simulations, confounder path, econml's
sensitivity); its figure and pages are drawn by :class:`causal_router.report.RefutationReport`
(``causal-router refute`` on the command line).

The pooled rows are put into a dowhy :class:`~dowhy.CausalModel`:

- treatment ``t`` = 1 for a gold-standard evaluation, 0 for a preference one (int 0/1);
- outcome ``o`` = the observed gain on the preference scale (gold gains times the scale constant
  fitted on all rows with the bias model's ``scale`` method);
- common causes = the query features. They are what may drive both which mechanism evaluates a
  query (a team sends hard or long queries to the experts) and the gain; unconfoundedness says
  they are the only such variables. Identification uses dowhy's ``maximal-adjustment`` backdoor
  set (all features), because its default exhaustive search takes minutes with 50 features;
- effect modifiers = the same features (the bias varies with the query; without them econml
  gets X=None and fits one constant effect).

dowhy hands the effect modifiers to the estimator as X and the common causes as W, so the
nuisance models would see every feature twice; :class:`~causal_router.average.AverageBias` drops
the copies, and its nuisances see each feature once (plus any column a refuter adds, such as the
random common cause).

The refuted estimate is the average bias the package reports, :meth:`BiasEstimator.ate`: the
cross-fitted AIPW (doubly robust) average over the rows, made here by the same estimator,
:class:`~causal_router.average.AverageBias`, through dowhy's econml interface (it has econml's
``fit(Y, T, X=, W=)`` and ``effect``; ``estimate.value`` is the mean of the doubly robust scores),
reported on the gold scale (divided by the bias model's scale constant). With the bias model's
nuisances and folds (``thorough=True`` and an explicit ``model_y``) its scores are ``ate()``'s to
rounding (tests/test_average.py); the default suite's 3 folds, frozen propensity penalty and
column-complete trees (below) move it by cross-fitting noise (measured on the generator, 3,000 rows
and 250 gold, seeds 3-7: within 0.42 standard errors of ``ate()``). It does not depend on the
learner that routes: refuting the mean of a CATE learner's predictions would refute a number the
package does not report, and one that is biased where the final stage is misspecified (the AIPW
average's coverage on IHDP: :doc:`/results`, "The average bias where gold rows are not a random
draw, and IHDP"; the R-learner's average it replaced: "History of measurements" there). Every
refuter simulation refits the whole estimator, cross-fitting included.

Nuisances of the refits:

- outcome model: :class:`~causal_router.models.MechanismOutcomes` (one model per mechanism, as
  in ``ate()``, ridge then the router's LightGBM for the preference rows), but offering every
  feature to every tree (``colsample_bytree=1``). With column subsampling, adding any column
  (the random common cause) redraws LightGBM's feature subsets and moves the estimate by the
  model's seed noise, which the refuter would read as sensitivity to an irrelevant covariate;
- propensity: where the data carry design probabilities (gold rows drawn by a design, e.g.
  :func:`~causal_router.active.suggest_gold`), those: they travel with their rows as a common
  cause and :class:`~causal_router.models.KnownPropensity` hands them to every refit, never
  clipped, as ``ate()`` uses them. Otherwise the router's L2 logistic regression clipped by
  :class:`ClippedClassifier`; in the default suite its penalty is chosen once by cross-validation
  on the data and then frozen for every refit (the cross-validated search is two thirds of a
  refit's cost); ``thorough=True`` keeps the cross-validated search in every refit;
- folds: 3 in the default suite, the estimator's ``cv`` (5) with ``thorough=True``; stratified by
  source, and identical rows (bootstrap duplicates) are kept in one fold, otherwise a row's copy
  trains the nuisance model that predicts it and the bias shrinks (measured on the generator:
  -8% on average). Where the data's queries repeat (``EvalData.query_id``), each query's rows, and
  their copies, share a fold in every refit (:class:`~causal_router.models.DuplicateAwareKFold`
  with the queries, matched by features, since dowhy hands econml resampled frames without ids).
  dowhy's own resampling (its bootstrap and data-subset refuters, the permuted placebo) draws
  rows, not queries: with repeated queries the spread of its bootstrap refits, the standard error
  the verdicts use as a yardstick, is a row-level one.

Refuters (one row each in :attr:`Refutation.table`; rules in :data:`RULES`):
placebo treatment (permuted), random common cause, data subset (80%), bootstrap, dummy outcome
(permuted outcome), unobserved common cause (dowhy's direct simulation over a path of
strengths: the tipping point), and econml's omitted-variable-bias sensitivity (robustness
value, computed by econml's ``sensitivity_interval`` and ``RV`` on the refuted fit's
nuisances). dowhy's own ``n_jobs`` is not used: its refuters pass one ``RandomState`` to every
joblib task (parallel tasks then draw identical placebos) or reseed ``data.sample`` with the same
integer (every subset identical), and its 2-D sensitivity grid modifies the data in place across
grid cells. Here every simulation is one call of the dowhy refuter with its own seed, run in a
joblib pool (``n_jobs``) with a progress bar, so results reproduce with ``random_state`` and do not
depend on ``n_jobs``.

Cost: the default suite refits the estimator 93 times (its time on the generator:
:doc:`/results`, "Speed"); ``thorough=True`` several hundred times.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from joblib import delayed
from scipy import stats

from .._parallel import run_parallel
from .._utils import to_jsonable
from .._validation import DataError
from ..io import atomic_write
from ..bias import BiasEstimator
from ..data import EvalData
from ._refuters import OUTCOME, TREATMENT, DowhySetup, simulate

__all__ = ["refute", "Refutation", "REFUTERS", "RULES", "DEFAULT_SIMULATIONS", "THOROUGH_SIMULATIONS",
           "DEFAULT_STRENGTHS", "THOROUGH_STRENGTHS", "SUBSET_FRACTION", "ALPHA", "MATERIAL_SE",
           "MODERATE_STRENGTH", "MODERATE_R2"]

logger = logging.getLogger("causal_router")

#: Simulations (estimator refits) per resampling refuter in the default suite.
DEFAULT_SIMULATIONS = {"placebo_treatment": 20, "random_common_cause": 10, "data_subset": 20,
                       "bootstrap": 20, "dummy_outcome": 10}
#: ... and with ``thorough=True`` (100 each: dowhy then uses its percentile test).
THOROUGH_SIMULATIONS = {k: 100 for k in DEFAULT_SIMULATIONS}
#: Strengths s of the simulated unobserved confounder and the draws of it per strength (the
#: estimate at a strength is the mean over draws). At s the confounder U ~ N(0, 1) flips the
#: mechanism of the s x (gold share) rows with the largest U and moves the gain by s sd(gain) per
#: unit of U, toward zero effect.
DEFAULT_STRENGTHS = (0.05, 0.1, 0.15, 0.25, 0.5, 1.0)
DEFAULT_DRAWS = 2
THOROUGH_STRENGTHS = tuple(float(s) for s in np.round(np.arange(0.05, 1.0001, 0.05), 2))
THOROUGH_DRAWS = 3
DEFAULT_CV = 3
SUBSET_FRACTION = 0.8

ALPHA = 0.05
#: A shift smaller than this many standard errors of the estimate is immaterial.
MATERIAL_SE = 0.5
#: The placebo's z for "the real assignment stands out" (two-sided, ALPHA).
STANDOUT_Z = float(stats.norm.ppf(1 - ALPHA / 2))
#: The largest "moderate" strength of the simulated confounder; the sign must survive it. At
#: s = 0.25 the simulated confounder has a partial R^2 of about 0.09 with the gain and 0.02 with
#: the gold/preference assignment (measured on the generator, 5,000 and 1,500 rows): the order of
#: econml's default 5% level below.
MODERATE_STRENGTH = 0.25
#: econml's default level of confounding (partial R^2 with treatment and with outcome).
MODERATE_R2 = 0.05

REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset", "bootstrap", "dummy_outcome",
            "unobserved_common_cause", "sensitivity_robustness_value")

#: The pass rule of each refuter, as printed in the table.
RULES = {
    "placebo_treatment": (
        f"pass if zero lies within the placebo estimates (two-sided p > {ALPHA} from dowhy's test, or their "
        f"mean within {MATERIAL_SE} SE of zero) and the estimate stands out from them "
        f"(|estimate - placebo mean| > {STANDOUT_Z:.2f} placebo sd)"),
    "random_common_cause": (
        f"pass if the estimate lies within the refits' distribution (two-sided p > {ALPHA} from dowhy's test) "
        f"or their mean moved by less than {MATERIAL_SE} SE"),
    "data_subset": (
        f"pass if the estimate lies within the subsets' distribution (two-sided p > {ALPHA} from dowhy's test) "
        f"or their mean moved by less than {MATERIAL_SE} SE"),
    "bootstrap": (
        f"pass if the estimate lies within the bootstrap distribution (two-sided p > {ALPHA} from dowhy's test) "
        f"or its mean moved by less than {MATERIAL_SE} SE"),
    "dummy_outcome": (
        f"pass if zero lies within the dummy-outcome estimates (two-sided p > {ALPHA} from dowhy's test) "
        f"or their mean is within {MATERIAL_SE} SE of zero"),
    "unobserved_common_cause": (
        f"pass if the estimate keeps its sign under every simulated confounder of strength s <= "
        f"{MODERATE_STRENGTH} (it reassigns the mechanism of s x n_gold rows and moves the gain by "
        "s sd per sd of the confounder)"),
    "sensitivity_robustness_value": (
        f"pass if the robustness value exceeds {MODERATE_R2}: a confounder explaining {MODERATE_R2:.0%} of the "
        "residual variance of both treatment and outcome cannot move the (doubly robust) estimate to zero"),
}


# ---------------------------------------------------------------------------- result
@dataclass
class Refutation:
    """Result of :func:`refute` (figure and pages: :class:`causal_router.report.RefutationReport`).

    Each parameter is kept as the attribute of the same name.

    Parameters
    ----------
    table : DataFrame
        One row per refuter (``REFUTERS``) with ``refuter``, ``original_effect``,
        ``refuted_effect``, ``p_value``, ``passed``, ``rule``, ``reading``, ``n_simulations``
        (finite refits), ``refuted_sd``, ``tipping_point``. Effects on the gold scale;
        ``p_value`` is NaN where none is defined.
    simulations : dict of str to ndarray
        Refuter -> the refitted estimates (gold scale; NaN for a failed refit).
    sensitivity_path : DataFrame
        ``strength``, ``kappa_t`` (flip probability), ``kappa_y`` (outcome coefficient,
        preference scale), ``effect`` (gold scale, mean over draws), ``draws``.
    econml_sensitivity : dict
        econml's sensitivity numbers (theta, bounds, robustness values).
    meta : dict
        Rows, estimator, dowhy method, common causes, folds, counts, failed simulations,
        ``runtime_seconds``, ...
    """

    table: pd.DataFrame
    simulations: dict
    sensitivity_path: pd.DataFrame
    econml_sensitivity: dict
    meta: dict

    @property
    def passed(self) -> bool:
        """True if every refuter passed."""
        return bool(self.table["passed"].all())

    @property
    def failed(self) -> list[str]:
        """Names of the refuters that failed."""
        return [str(r) for r in self.table.loc[~self.table["passed"], "refuter"]]

    def __repr__(self) -> str:
        return (f"Refutation(passed={self.passed}, failed={self.failed}, "
                f"estimate={self.meta['original_effect']:.4g}, runtime={self.meta['runtime_seconds']:.1f}s)")

    def summary(self) -> str:
        """A plain-text summary: one line per refuter.

        Returns
        -------
        str
            A head line (the estimate, the method, the sizes, the verdict) and one line per
            refuter with its verdict and reading.
        """
        m = self.meta
        lines = [f"Refutations of the average bias {m['original_effect']:.4f} (gold scale; AIPW via "
                 f"{m['method_name']}; {m['n']} rows, {m['n_gold']} gold); "
                 f"{'all passed' if self.passed else 'FAILED: ' + ', '.join(self.failed)}"]
        for _, r in self.table.iterrows():
            lines.append(f"  [{'pass' if r['passed'] else 'FAIL'}] {r['refuter']}: {r['reading']}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Every number as JSON-ready types (NaN -> None).

        Returns
        -------
        dict
            ``passed``, ``table`` (records), ``simulations``, ``sensitivity_path`` (records),
            ``econml_sensitivity``, ``rules`` and ``meta``.
        """
        return to_jsonable({
            "passed": self.passed,
            "table": self.table.to_dict(orient="records"),
            "simulations": {k: np.asarray(v, dtype=float) for k, v in self.simulations.items()},
            "sensitivity_path": self.sensitivity_path.to_dict(orient="records"),
            "econml_sensitivity": self.econml_sensitivity,
            "rules": RULES,
            "meta": self.meta,
        })

    def to_json(self, path: str | os.PathLike | None = None, indent: int = 2) -> str:
        """The result as a JSON string (:meth:`to_dict`; no NaN: missing numbers are null).

        Parameters
        ----------
        path : str, PathLike or None, default=None
            Also write the text to this file (atomically: :func:`causal_router.io.atomic_write`);
            None: nothing is written.
        indent : int, default=2
            JSON indentation.

        Returns
        -------
        str
            The JSON text.
        """
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            with atomic_write(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        return text


# ---------------------------------------------------------------------------- main entry point
def refute(
    data: EvalData,
    bias: BiasEstimator | None = None,
    *,
    thorough: bool = False,
    n_jobs: int = 1,
    backend: str = "loky",
    random_state=None,
    progress: bool = True,
    n_simulations: int | dict | None = None,
) -> Refutation:
    """Run dowhy's refuters and econml's sensitivity analysis on the average bias.

    Parameters
    ----------
    data : EvalData with gold and preference rows (n rows, d features).
    bias : BiasEstimator, optional
        Supplies custom nuisance models (``model_y``, ``model_t``), ``scale``,
        ``min_propensity`` and, with ``thorough=True``, ``cv``. Its learner and final stage do
        not enter: the refuted estimate is the AIPW average of ``ate()``. It is not modified.
    thorough : bool
        Publication-grade counts (100 simulations per refuter, 20 confounder strengths x 3
        draws, the estimator's folds and cross-validated propensity in every refit): about 10x
        the default cost.
    n_jobs : int
        Parallel simulations (joblib processes; -1 = all cores). Results do not depend on it.
    backend : {"loky", "ray"}
        joblib backend of the simulations. ``"ray"`` runs them on the Ray cluster that
        ``ray.init(address=...)`` connected to (extra ``[ray]``; a local one is started
        otherwise); results are identical to ``"loky"`` for the same ``random_state``.
    random_state : int or None
        Seeds every simulation and the estimator; the same value reproduces the result.
    progress : bool
        Show a tqdm progress bar over the simulations.
    n_simulations : int or dict, optional
        Override the simulations per resampling refuter (an int for all, or a dict by name).

    Returns
    -------
    Refutation

    Warnings
    --------
    A refit that fails on a perturbed data set (scikit-learn or econml refusing a degenerate
    fold: ``ValueError``, or a singular system: ``LinAlgError``) is recorded as NaN and counted in
    ``meta["failed_simulations"]``; a RuntimeWarning names the refuter and the first error. Any
    other exception raises.

    Raises
    ------
    DataError (a ValueError) for bad arguments, naming the argument, and for data too small to refute.
    """
    start = time.perf_counter()
    _check_inputs(data, bias, n_jobs, backend)
    counts = dict(THOROUGH_SIMULATIONS if thorough else DEFAULT_SIMULATIONS)
    if n_simulations is not None:
        if isinstance(n_simulations, dict):
            unknown = set(n_simulations) - set(counts)
            if unknown:
                raise DataError(f"n_simulations has unknown refuters {sorted(unknown)}; choose from {sorted(counts)}")
            counts.update(n_simulations)
        else:
            counts = {k: n_simulations for k in counts}
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 2 for v in counts.values()):
            raise DataError(f"n_simulations must be integers >= 2, got {counts}")
    strengths = THOROUGH_STRENGTHS if thorough else DEFAULT_STRENGTHS
    draws = THOROUGH_DRAWS if thorough else DEFAULT_DRAWS

    bias = BiasEstimator() if bias is None else bias
    rng = np.random.default_rng(random_state)
    seed = int(rng.integers(2**31 - 1))
    cv = int(bias.cv) if thorough else min(DEFAULT_CV, int(bias.cv))
    _check_rows(data, cv)
    setup = DowhySetup(data, bias, min_propensity=bias.propensity_clip(data), cv=cv, seed=seed,
                       thorough=thorough)
    scale = setup.scale

    # simulations: one dowhy call each, own seed
    jobs: list[tuple[str, int, Any]] = []
    for name in DEFAULT_SIMULATIONS:
        arg = SUBSET_FRACTION if name == "data_subset" else None
        jobs += [(name, int(s), arg) for s in rng.integers(2**31 - 1, size=counts[name])]
    sd_o = float(np.std(setup.frame[OUTCOME]))
    share = float(np.mean(setup.frame[TREATMENT]))
    sign = 1.0 if setup.original_raw >= 0 else -1.0
    for s in strengths:
        kt, ky = float(s * share), float(sign * s * sd_o)
        jobs += [("unobserved_common_cause", int(z), (float(s), kt, ky)) for z in rng.integers(2**31 - 1, size=draws)]
    values = run_parallel((delayed(simulate)(kind, z, setup.payload, arg) for kind, z, arg in jobs), n_jobs=n_jobs,
                          backend=backend, progress=progress, desc="refuting", unit="refit")

    sims: dict[str, list] = {k: [] for k in DEFAULT_SIMULATIONS}
    path_values: dict[tuple, list] = {}
    errors: dict[str, str] = {}
    n_failed: dict[str, int] = {}
    for (name, _, arg), (value, err) in zip(jobs, values):
        if err:
            errors.setdefault(name, err)
            n_failed[name] = n_failed.get(name, 0) + 1
        if name == "unobserved_common_cause":
            path_values.setdefault(arg, []).append(value / scale)
        else:
            sims[name].append(value / scale)
    for name, k in n_failed.items():
        total = sum(1 for job in jobs if job[0] == name)
        warnings.warn(f"{k} of {total} {name} refits failed and are left out (first: {errors[name]})",
                      RuntimeWarning, stacklevel=2)
    simulations = {k: np.asarray(v, dtype=float) for k, v in sims.items()}
    path = pd.DataFrame(
        [{"strength": a[0], "kappa_t": a[1], "kappa_y": a[2], "effect": float(np.nanmean(v)) if np.isfinite(v).any()
          else np.nan, "draws": len(v)} for a, v in path_values.items()])
    simulations["unobserved_common_cause"] = path["effect"].to_numpy(dtype=float)

    econml_sens = setup.econml_sensitivity(ALPHA, MODERATE_R2)
    original = setup.original_raw / scale
    table = _verdicts(original, simulations, path, econml_sens, errors)
    runtime = time.perf_counter() - start
    meta = {
        "original_effect": original, "n": len(data), "n_gold": data.n_gold, "n_preference": data.n_preference,
        "n_features": data.X.shape[1], "scale_constant": scale,
        "estimator": ("AIPW: causal_router.average.AverageBias, one outcome model per mechanism "
                      "(MechanismOutcomes), through dowhy's econml interface"),
        "method_name": "backdoor.causal_router.average.AverageBias", "cv": cv,
        "propensity": setup.propensity_desc, "suite": "thorough" if thorough else "default",
        "simulations": counts, "strengths": list(strengths), "draws_per_strength": draws,
        "n_refits": len(jobs) + 1,
        "failed_simulations": n_failed,
        "standard_error": _standard_error(simulations), "n_jobs": n_jobs, "random_state": random_state,
        "runtime_seconds": runtime,
        "common_causes": ("the query features: they may drive both which mechanism evaluates a query and its "
                          "gain; unconfoundedness assumes nothing else does"),
        "effect_modifiers": "the query features (the bias varies with the query)",
        "treatment": "1 = gold-standard evaluation, 0 = preference evaluation",
        "outcome": "observed gain, gold rows multiplied by the scale constant (preference scale)",
        "units": "effects on the gold scale (preference-scale estimates divided by the scale constant)",
    }
    return Refutation(table=table, simulations=simulations, sensitivity_path=path,
                      econml_sensitivity=econml_sens, meta=meta)


# ---------------------------------------------------------------------------- verdicts
def _p_within(value: float, sims: np.ndarray) -> float:
    """Two-sided p-value that ``value`` belongs to the distribution of ``sims`` (dowhy's tests).

    dowhy uses a percentile test from 100 simulations on (already two-sided) and a normal test
    below; its normal test returns the tail probability on one side only, so it is doubled here.
    """
    from dowhy.causal_refuter import perform_bootstrap_test, perform_normal_distribution_test

    sims = sims[np.isfinite(sims)]
    if len(sims) == 0:
        return float("nan")
    est = SimpleNamespace(value=value)
    if len(sims) >= 100:
        return float(perform_bootstrap_test(est, sims))
    if np.std(sims) == 0:
        return 1.0 if np.isclose(value, np.mean(sims)) else 0.0
    return float(min(1.0, 2 * perform_normal_distribution_test(est, sims)))


def _standard_error(simulations: dict) -> float:
    """Standard error of the estimate: the sd of the bootstrap refits (placebo refits as fallback)."""
    for name in ("bootstrap", "placebo_treatment"):
        v = simulations.get(name, np.array([]))
        v = v[np.isfinite(v)]
        if len(v) >= 2:
            return float(np.std(v, ddof=1))
    return float("nan")


def _verdicts(original: float, sims: dict, path: pd.DataFrame, es: dict, errors: dict) -> pd.DataFrame:
    se = _standard_error(sims)
    tol = MATERIAL_SE * se if np.isfinite(se) else 0.0
    rows = []

    def row(name, refuted, p, passed, reading, n, sd, original_effect=original):
        rows.append({"refuter": name, "original_effect": original_effect, "refuted_effect": refuted,
                     "p_value": p, "passed": bool(passed), "rule": RULES[name], "reading": reading,
                     "n_simulations": n, "refuted_sd": sd})

    for name in ("placebo_treatment", "random_common_cause", "data_subset", "bootstrap", "dummy_outcome"):
        v = sims[name]
        ok = v[np.isfinite(v)]
        if len(ok) < 2:
            row(name, np.nan, np.nan, False, f"could not be computed ({errors.get(name, 'no finite refit')}).",
                len(ok), np.nan)
            continue
        mean, sd = float(ok.mean()), float(ok.std(ddof=1))
        if name in ("placebo_treatment", "dummy_outcome"):
            p = _p_within(0.0, ok)
            centred = p > ALPHA or abs(mean) <= tol
            if name == "placebo_treatment":
                gap = abs(original - mean)
                z = gap / sd if sd > 0 else (np.inf if gap > 0 else 0.0)  # identical refits: equal is not apart
                stands_out = z > STANDOUT_Z
                passed = centred and stands_out
                if passed:
                    reading = (f"Randomly permuted gold/preference assignments give an average bias of {mean:.3g} "
                               f"(sd {sd:.3g}) against {original:.3g} estimated: the estimator does not invent a "
                               f"bias from a meaningless assignment, and the real one stands out (z = {z:.1f}).")
                elif not stands_out:
                    reading = (f"The estimate {original:.3g} is within the range that randomly permuted "
                               f"assignments produce (mean {mean:.3g}, sd {sd:.3g}, z = {z:.1f} <= "
                               f"{STANDOUT_Z:.2f}): the data show no bias distinguishable from noise.")
                else:
                    reading = (f"Permuted assignments still give a non-zero average bias ({mean:.3g}, p = {p:.3g}): "
                               "the estimator produces a bias where there is none.")
            else:
                passed = centred
                reading = (f"On a permuted outcome, which the assignment cannot affect, the estimated bias is "
                           f"{mean:.3g} (sd {sd:.3g}, p = {p:.3g}): "
                           + ("consistent with zero, as it should be." if passed else
                              "not zero: the estimator finds a bias in an outcome that has none."))
            row(name, mean, p, passed, reading, len(ok), sd)
            continue
        p = _p_within(original, ok)
        shift = mean - original
        passed = p > ALPHA or abs(shift) <= tol
        what = {"random_common_cause": "adding a random common cause",
                "data_subset": f"re-estimating on random {SUBSET_FRACTION:.0%} subsets",
                "bootstrap": "re-estimating on bootstrap samples"}[name]
        reading = (f"After {what} the average bias is {mean:.3g} (sd {sd:.3g}) against {original:.3g} "
                   f"(shift {shift:+.3g} = {shift / se if se > 0 else np.nan:+.2f} SE, p = {p:.3g}): "
                   + ("stable." if passed else "the estimate moves; it depends on "
                      + {"random_common_cause": "an irrelevant covariate.",
                         "data_subset": "which rows are used.",
                         "bootstrap": "sampling more than its spread suggests."}[name]))
        row(name, mean, p, passed, reading, len(ok), sd)

    # unobserved common cause: tipping point along the strength path
    name = "unobserved_common_cause"
    if len(path) and np.isfinite(path["effect"]).any():
        sign = 1.0 if original >= 0 else -1.0
        flipped = path[np.isfinite(path["effect"]) & (sign * path["effect"] <= 0)]
        tipping = float(flipped["strength"].min()) if len(flipped) else np.nan
        moderate = path[path["strength"] <= MODERATE_STRENGTH + 1e-12]
        survives = bool(len(moderate)) and bool((sign * moderate["effect"] > 0).all())
        at = moderate.iloc[-1] if len(moderate) else path.iloc[0]
        tip_text = (f"its sign flips at strength {tipping:.3g}" if np.isfinite(tipping)
                    else f"its sign survives every strength up to {path['strength'].max():.3g}")
        reading = (f"A simulated hidden confounder of strength {at['strength']:.3g} moves the estimate from "
                   f"{original:.3g} to {at['effect']:.3g}; {tip_text} (tipping point). "
                   + ("The sign survives moderate confounding." if survives else
                      "A moderate hidden confounder could explain the bias away."))
        row(name, float(at["effect"]), np.nan, survives, reading, int(path["draws"].sum()),
            float(np.nanstd(path["effect"])))
    else:
        row(name, np.nan, np.nan, False, f"could not be computed ({errors.get(name, 'no finite refit')}).", 0, np.nan)
    rows[-1]["tipping_point"] = tipping if len(path) and np.isfinite(path["effect"]).any() else np.nan

    name = "sensitivity_robustness_value"
    if es.get("available"):
        rv = es["robustness_value"]
        passed = rv > MODERATE_R2
        toward = es["theta_lower"] if es["theta"] >= 0 else es["theta_upper"]
        reading = (f"{es['estimator']}: theta = {es['theta']:.3g}; a confounder explaining {MODERATE_R2:.0%} of the "
                   f"residual variance of treatment and outcome moves it to {toward:.3g}; robustness value "
                   f"{rv:.3f} (confidence interval: {es['robustness_value_ci']:.3f}): "
                   + ("the sign survives that confounding." if passed else
                      "confounding of that size could explain the estimate away."))
        row(name, toward, np.nan, passed, reading, 1, np.nan, original_effect=es["theta"])
    else:
        row(name, np.nan, np.nan, False, f"could not be computed ({es.get('error', 'unavailable')}).", 0, np.nan)
    table = pd.DataFrame(rows)
    cols = ["refuter", "original_effect", "refuted_effect", "p_value", "passed", "rule", "reading",
            "n_simulations", "refuted_sd", "tipping_point"]
    return table[cols]


# ---------------------------------------------------------------------------- checks
def _check_inputs(data, bias, n_jobs, backend) -> None:
    if not isinstance(data, EvalData):
        raise DataError(f"refute expects an EvalData, got {type(data).__name__}; build one with EvalData(...)")
    if bias is not None and not isinstance(bias, BiasEstimator):
        raise DataError(f"bias must be a BiasEstimator or None, got {type(bias).__name__}")
    if bias is not None:
        bias.check_params()
    if not isinstance(n_jobs, (int, np.integer)) or isinstance(n_jobs, bool) or n_jobs == 0 or n_jobs < -1:
        raise DataError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}")
    if backend not in ("loky", "ray"):
        raise DataError(f"backend must be 'loky' or 'ray', got {backend!r}")
    data.require_both_sources("refute")


def _check_rows(data: EvalData, cv: int) -> None:
    need = max(10, 4 * cv)  # the 80% subsets must still cross-fit with cv folds
    for name, count in (("gold", data.n_gold), ("preference", data.n_preference)):
        if count < need:
            raise DataError(f"too few {name} rows for the refutations: {cv}-fold refits on subsets need at "
                            f"least {need} {name} rows, got {count}")
    if np.std(data.gain[data.is_gold]) == 0 and np.std(data.gain[~data.is_gold]) == 0:
        raise DataError("the gains are constant: there is no effect to refute")


