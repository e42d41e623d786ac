"""Held-out checks of a bias model with econml's DRTester: calibration, BLP test, QINI and TOC curves."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.base import clone

from .._utils import seeded_global_random
from ..bias import BiasEstimator
from ..clusters import cluster_std_error
from ..data import EvalData, pooled_outcome
from ..models import cross_fitting_folds, default_propensity, default_regressor, repeated_groups

__all__ = ["heldout_numbers", "heldout_warnings", "blp_test"]


def heldout_numbers(data: EvalData, est_train: BiasEstimator, train: np.ndarray, held: np.ndarray, seed,
                    alpha: float, n_bootstrap: int, n_groups: int):
    """DRTester on the ``held`` rows of ``data`` for the bias model ``est_train`` fitted on the ``train`` rows.

    Outcomes are put on the preference scale with the constant fitted on the training part
    (``est_train.scale_``), the scale of the model's own predictions; every bias number returned
    is divided by it (gold scale). Returns (fitted DRTester or None when the model predicts one
    constant bias, {"calibration", "blp", "uplift"}).
    """
    from econml.validate import DRTester

    scale = float(est_train.scale_)
    X, T, Y = data.X, data.treatment, pooled_outcome(data.gain, data.is_gold, scale)
    cate_train = np.asarray(est_train.estimator_.effect(X[train]), dtype=float).reshape(-1)
    spread = float(np.std(cate_train))
    if not np.isfinite(spread) or spread <= 1e-10 * (1.0 + abs(float(np.mean(cate_train)))):
        reason = (f"the bias model predicts one constant bias (final stage {est_train.final_stage_!r}): there is "
                  "no estimated heterogeneity to calibrate or test")
        off = {"available": False, "reason": reason}
        return None, {"calibration": dict(off), "blp": dict(off), "uplift": dict(off)}

    # cv: folds of DRTester's cross-fitted outcomes on the training part, which only its calibration
    # check's bookkeeping needs (held-out outcomes use nuisances fitted on the whole training part)
    model_y = clone(est_train.model_y) if est_train.model_y is not None else default_regressor(seed)
    model_t = clone(est_train.model_t) if est_train.model_t is not None else default_propensity(seed)
    groups = repeated_groups(data.query_groups)
    # where queries repeat, DRTester's folds on the training part keep a query's rows together
    cv = 2 if groups is None else cross_fitting_folds(X[train], T[train], 2, seed, groups[train])
    tester = DRTester(model_regression=model_y, model_propensity=model_t, cate=est_train.estimator_, cv=cv)
    tester.get_cv_splitter(random_state=seed if seed is not None else 123)
    tester.fit_nuisance(X[held], T[held], Y[held], X[train], T[train], Y[train])
    tester.get_cate_preds(X[held], X[train])
    dr = np.asarray(tester.dr_val_, dtype=float).reshape(-1)
    cate = np.asarray(tester.cate_preds_val_, dtype=float).reshape(-1)
    held_groups = None if groups is None else groups[held]
    heldout_average = float(np.mean(dr)) / scale
    heldout_se = cluster_std_error(dr, held_groups) / scale

    cal = tester.evaluate_cal(n_groups=n_groups)
    cal_df = cal.plot_data_dict[cal.treatments[1]]
    cuts = np.quantile(np.asarray(tester.cate_preds_train_, dtype=float).reshape(-1), np.linspace(0, 1, n_groups + 1))
    probs = np.array([np.mean((cate >= cuts[i]) & (cate <= cuts[i + 1])) for i in range(n_groups)])  # as econml
    gap = (cal_df["gate"].to_numpy(dtype=float) - cal_df["g_cate"].to_numpy(dtype=float)) / scale
    ok = np.isfinite(gap) & (probs > 0)
    level_offset = float(np.sum(probs[ok] * gap[ok]) / np.sum(probs[ok])) if ok.any() else float("nan")
    calibration = {
        "available": True,
        "r_squared": float(cal.cal_r_squared[0]),
        "level_offset": level_offset,
        "n_groups": n_groups,
        "heldout_average": heldout_average,
        "heldout_average_std_error": heldout_se,
        "groups": {
            "group": [f"Q{i + 1}" for i in range(len(cal_df))],
            "predicted": (cal_df["g_cate"].to_numpy(dtype=float) / scale).tolist(),
            "observed": (cal_df["gate"].to_numpy(dtype=float) / scale).tolist(),
            "std_error": (cal_df["se_gate"].to_numpy(dtype=float) / scale).tolist(),
        },
        "method": "econml DRTester.evaluate_cal: held-out rows grouped by quantiles (cut on the training "
                  "part) of the estimated bias; R^2 = 1 - sum_k pi_k |observed_k - predicted_k| / "
                  "sum_k pi_k |observed_k - average|; level_offset = sum_k pi_k (observed_k - predicted_k) "
                  "(gold scale): how far the groups sit above (+) or below (-) the diagonal on average",
    }

    econml_blp = tester.evaluate_blp()
    blp = blp_test(dr / scale, cate / scale, alpha, held_groups)
    blp.update({
        "available": True,
        "slope_econml": float(econml_blp.params[0]),
        "slope_std_error_econml": float(econml_blp.errs[0]),
        "p_value_econml": float(econml_blp.pvals[0]),
        "method": "OLS of held-out doubly robust outcomes on 1 and the centred estimated bias, HC1 standard "
                  "errors (clustered by query where queries repeat); p_value one-sided (H1: slope > 0); "
                  "*_econml: DRTester.evaluate_blp (classical standard errors, two-sided)",
    })

    uplift = {"available": True}
    with seeded_global_random(seed):
        for metric in ("qini", "toc"):
            res = tester.evaluate_uplift(metric=metric, n_bootstrap=n_bootstrap)
            curve = res.curves[res.treatments[1]]
            coef, se = float(res.params[0]) / scale, float(res.errs[0]) / scale
            uplift[metric] = {
                "coefficient": coef,
                "std_error": se,
                "p_value": float(stats.norm.sf(coef / se)) if se > 0 else float("nan"),
                "p_value_econml": float(res.pvals[0]),
                "uniform_critical_value": float(curve["uniform_critical_value"].iloc[0]),
                "curve": {
                    "share": curve["Percentage treated"].to_numpy(dtype=float).tolist(),
                    "value": (curve["value"].to_numpy(dtype=float) / scale).tolist(),
                    "std_error": (curve["err"].to_numpy(dtype=float) / scale).tolist(),
                },
            }
    uplift["method"] = ("econml DRTester.evaluate_uplift on held-out rows ranked by the estimated bias; "
                        "area = coefficient (gold scale); p_value one-sided (H1: area > 0); "
                        "bands: multiplier bootstrap (uniform 95%)")
    return tester, {"calibration": calibration, "blp": blp, "uplift": uplift}


def blp_test(dr: np.ndarray, cate: np.ndarray, alpha: float, groups=None) -> dict:
    """Best linear predictor test: OLS of ``dr`` on 1 and ``cate - mean(cate)`` (both shape (n,))
    with HC1 standard errors, or with ``groups`` (n,, query codes) cluster-robust ones (statsmodels'
    ``cov_type="cluster"``); heterogeneity is detected when the slope is positive with one-sided
    p < ``alpha``."""
    import statsmodels.api as sm

    design = np.column_stack([np.ones_like(cate), cate - cate.mean()])
    if groups is None:
        fit = sm.OLS(dr, design).fit(cov_type="HC1")
    else:
        fit = sm.OLS(dr, design).fit(cov_type="cluster", cov_kwds={"groups": np.asarray(groups)})
    intercept, slope = (float(v) for v in fit.params)
    se_int, se = (float(v) for v in fit.bse)
    p = float(stats.norm.sf(slope / se)) if se > 0 else float("nan")
    return {
        "slope": slope,
        "slope_std_error": se,
        "p_value": p,
        "p_value_slope_is_one": float(2 * stats.norm.sf(abs(slope - 1) / se)) if se > 0 else float("nan"),
        "intercept": intercept,
        "intercept_std_error": se_int,
        "heterogeneity_detected": bool(np.isfinite(p) and p < alpha),
        "n_heldout": int(len(dr)),
    }


def heldout_warnings(numbers: dict, alpha: float) -> list[str]:
    """Warnings (str) from the held-out numbers: a significantly negative BLP slope, or a negative
    calibration R^2 where heterogeneity was detected."""
    out = []
    cal, blp = numbers["calibration"], numbers["blp"]
    if not cal.get("available"):
        return out
    slope, se = blp["slope"], blp["slope_std_error"]
    if slope < 0 and se > 0 and stats.norm.cdf(slope / se) < alpha:
        out.append(f"the BLP slope is significantly negative ({blp['slope']:.2f}): the estimated bias ranks "
                   "queries the wrong way round on held-out rows")
    if blp["heterogeneity_detected"] and np.isfinite(cal["r_squared"]) and cal["r_squared"] < 0:
        out.append(f"calibration R^2 is negative ({cal['r_squared']:.2f}): the estimated bias is miscalibrated on "
                   f"held-out rows (groups {cal['level_offset']:+.3g} from the diagonal on average)")
    return out
