"""Tests of causal_router.evaluate against small hand-computed cases."""

import itertools

import numpy as np
import pandas as pd
import pytest

from causal_router import evaluate as ev
from causal_router._validation import DataError

# Four test queries, gold gains summing to 8.
# Ranking by PRED: q0 (0.8), then q1 and q2 tied at 0.6 (gold 3 and -1, mean 1), then q3 (-0.2).
# Top-k gain with ties in expectation:
#   G(0) = 0, G(1) = 4, G(2) = 4 + mean(3, -1) = 5, G(3) = 4 + 3 - 1 = 6, G(4) = 8.
# Oracle (rank by gold: 4, 3, 2, -1): G*(1) = 4, G*(2) = 7, G*(3) = 9, G*(4) = 8.
# Random ranking: k / 4 * 8 = 2k. Three of four predictions are > 0: curve truncated after 0.75.
GOLD = np.array([4.0, 3.0, -1.0, 2.0])
PRED = np.array([0.8, 0.6, 0.6, -0.2])
R = [0.25, 0.5, 0.75, 1.0]


# ----------------------------------------------------------------------------- top-k helper
def test_top_k_gain_hand_case_with_straddling_tie():
    np.testing.assert_allclose(ev._top_k_gain(PRED, GOLD, np.arange(5)), [0, 4, 5, 6, 8])


def test_top_k_gain_tie_does_not_depend_on_row_order():
    perm = [3, 2, 1, 0]  # puts q2 (gold -1) before q1 (gold 3) among the tied pair
    np.testing.assert_allclose(ev._top_k_gain(PRED[perm], GOLD[perm], np.arange(5)), [0, 4, 5, 6, 8])


def test_two_element_tie_straddling_cutoff():
    # pred ranks a (gold 10) first, then b, c tied (gold 1 and 5); k=2 takes a + mean(1, 5) = 13.
    gold = np.array([10.0, 1.0, 5.0])
    pred = np.array([2.0, 1.0, 1.0])
    assert ev._top_k_gain(pred, gold, [2])[0] == pytest.approx(13.0)
    # efficiency at r = 2/3 (k = 2): (13 - 2/3 * 16) / 16
    curve = ev.efficiency_curve(pred, gold, ratios=[2 / 3])
    assert curve.iloc[0] == pytest.approx((13 - 32 / 3) / 16)


# ----------------------------------------------------------------------------- efficiency gain
def test_efficiency_curve_hand_case_and_truncation():
    curve = ev.efficiency_curve(PRED, GOLD, ratios=R)
    assert curve.name == "efficiency_gain" and curve.index.name == "ratio"
    # EG = (G(k) - 2k) / 8
    assert curve[0.25] == pytest.approx((4 - 2) / 8)    # 0.25
    assert curve[0.5] == pytest.approx((5 - 4) / 8)     # 0.125
    assert curve[0.75] == pytest.approx((6 - 6) / 8)    # 0
    assert np.isnan(curve[1.0])                         # 1.0 > share predicted positive 0.75
    assert ev.peak_efficiency_gain(curve) == pytest.approx(0.25)


def test_efficiency_curve_default_grid_and_all_negative_prediction():
    curve = ev.efficiency_curve(PRED, GOLD)
    np.testing.assert_array_equal(curve.index.to_numpy(), np.linspace(0.2, 0.8, 61))
    assert curve.loc[:0.75].notna().all() and curve.loc[0.76:].isna().all()
    # nothing predicted positive: the whole curve is truncated
    empty = ev.efficiency_curve(-np.abs(PRED) - 1, GOLD)
    assert empty.isna().all()
    assert np.isnan(ev.peak_efficiency_gain(empty))
    assert ev.efficiency_auc(empty) == 0.0


def test_ratio_rounding_uses_rint():
    # r * N = 0.5 -> k = 0 (round half to even); r * N = 1.5 -> k = 2
    pgr = ev.pgr_curve(PRED, GOLD, ratios=[0.125, 0.375])
    np.testing.assert_allclose(pgr.to_numpy(), [0 / 8, 5 / 8])


def test_constant_prediction_is_exactly_random():
    gold = np.random.default_rng(3).normal(0.4, 1.0, 37)  # 37: r * N is mostly not whole
    const = np.full(37, 0.3)
    curve = ev.efficiency_curve(const, gold)
    assert (curve.to_numpy() == 0.0).all()
    assert (ev.normalised_curve(const, gold).to_numpy() == 0.0).all()
    assert ev.oracle_share(const, gold) == 0.0
    assert ev.apgr(const, gold) == pytest.approx(0.5, abs=1e-12)


def test_efficiency_auc_trapezoid_hand_case():
    curve = ev.efficiency_curve(PRED, GOLD, ratios=R)   # 0.25, 0.125, 0, NaN
    # 0.25 * (0.25 + 0.125) / 2 + 0.25 * (0.125 + 0) / 2 = 0.046875 + 0.015625; NaN tail adds 0
    assert ev.efficiency_auc(curve, lo=0.0, hi=1.0) == pytest.approx(0.0625)
    assert ev.efficiency_auc(curve) == pytest.approx(0.0625)           # [0.2, 0.8]
    assert ev.efficiency_auc(curve, lo=0.3) == pytest.approx(0.015625)  # points 0.5, 0.75
    assert ev.efficiency_auc(curve, lo=0.5, hi=0.5) == 0.0              # one point
    # unsorted index is sorted before integrating
    assert ev.efficiency_auc(curve.iloc[::-1], 0.0, 1.0) == pytest.approx(0.0625)


# ----------------------------------------------------------------------------- oracle share
def test_normalised_curve_and_oracle_share_hand_case():
    curve = ev.normalised_curve(PRED, GOLD, ratios=[0.0] + R)
    assert curve.name == "oracle_share" and curve.index.name == "ratio"
    # (G(k) - 2k) / (G*(k) - 2k): k=1 (4-2)/(4-2) = 1; k=2 (5-4)/(7-4) = 1/3; k=3 0/(9-6) = 0;
    # k=0 and k=4: denominator 0 -> NaN
    np.testing.assert_allclose(curve.to_numpy(), [np.nan, 1.0, 1 / 3, 0.0, np.nan])
    assert ev.oracle_share(PRED, GOLD, ratios=R) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_oracle_share_extremes():
    gold = np.random.default_rng(0).normal(0.2, 1.0, 50)
    assert ev.oracle_share(gold, gold) == 1.0
    assert ev.oracle_share(3 * gold + 1, gold) == pytest.approx(1.0)
    assert ev.oracle_share(-gold, gold) < 0
    assert ev.normalised_curve(gold, gold).notna().all()  # no truncation


def test_oracle_share_all_gold_equal_is_nan():
    assert np.isnan(ev.oracle_share([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------- RouteLLM metrics
def test_pgr_apgr_cpt_hand_case():
    pgr = ev.pgr_curve(PRED, GOLD, ratios=[0.0] + R)
    assert pgr.name == "pgr" and pgr.index.name == "ratio"
    np.testing.assert_allclose(pgr.to_numpy(), [0, 0.5, 0.625, 0.75, 1.0])   # G(k) / 8
    np.testing.assert_array_equal(ev.pgr_curve(PRED, GOLD).index.to_numpy(), np.linspace(0, 1, 101))
    # trapezoid, step 0.25: 0.25 * (0/2 + 0.5 + 0.625 + 0.75 + 1/2) = 0.59375
    assert ev.apgr(PRED, GOLD) == pytest.approx(0.59375)
    assert ev.cpt(PRED, GOLD) == pytest.approx(0.25)          # PGR(0.25) = 0.5 >= 0.5
    assert ev.cpt(PRED, GOLD, 0.7) == pytest.approx(0.75)     # 0.625 < 0.7 <= 0.75
    assert ev.cpt(PRED, GOLD, 0.8) == pytest.approx(1.0)
    assert ev.cpt(PRED, GOLD, 0.0) == 0.0


def test_apgr_random_is_half_and_oracle_above():
    # exact expectation over all 24 orderings of four distinct predictions is 0.5
    values = [ev.apgr(np.array(p, dtype=float), GOLD) for p in itertools.permutations(range(4))]
    assert np.mean(values) == pytest.approx(0.5)
    assert ev.apgr(np.zeros(4), GOLD) == pytest.approx(0.5)
    assert ev.apgr(GOLD, GOLD) > 0.5
    assert ev.apgr(GOLD, GOLD) == pytest.approx(max(values))


# ----------------------------------------------------------------------------- routing value
def test_routing_value_hand_case_with_costs():
    route = np.array([1, 0, 1, 1])
    # cost gaps Cp - Ca = [2, 1, 2, 0]; v = route * (gold - 0.5 * gap) = [3, 0, -2, 2]; mean 0.75
    out = ev.routing_value(route, GOLD, cost_weight=0.5, cost_primary=[2.0, 1.0, 3.0, 1.0],
                           cost_alternative=[0.0, 0.0, 1.0, 1.0], n_bootstrap=200, random_state=0)
    assert out["value"] == pytest.approx(0.75)
    assert out["share_primary"] == pytest.approx(0.75) and out["n"] == 4
    assert out["lower"] <= out["value"] <= out["upper"]
    # default costs 1 / 0: v = [4 - 0.5, 0, -1 - 0.5, 2 - 0.5] -> 3.5 / 4
    default = ev.routing_value(route.astype(bool), GOLD, cost_weight=0.5, n_bootstrap=50, random_state=0)
    assert default["value"] == pytest.approx(0.875)
    # scalar costs broadcast
    scalar = ev.routing_value(route, GOLD, cost_weight=0.5, cost_primary=2.0, cost_alternative=1.0,
                              n_bootstrap=50, random_state=0)
    assert scalar["value"] == pytest.approx(0.875)


def test_routing_value_bootstrap_determinism():
    rng = np.random.default_rng(1)
    gold = rng.normal(0.1, 1.0, 300)
    route = pd.Series(rng.random(300) < 0.4)
    a = ev.routing_value(route, gold, random_state=7)
    assert ev.routing_value(route, gold, random_state=7) == a
    assert ev.routing_value(route, gold, random_state=8) != a
    b = ev.routing_value(route, gold, random_state=np.random.default_rng(7))
    assert b == a
    assert a["lower"] < a["value"] < a["upper"]
    narrow = ev.routing_value(route, gold, alpha=0.5, random_state=7)
    assert a["lower"] < narrow["lower"] <= narrow["upper"] < a["upper"]


def test_routing_value_bootstrap_in_blocks():
    # n large enough that the bootstrap is drawn in several memory-bounded blocks
    gold = np.ones(5000)
    out = ev.routing_value(np.ones(5000, dtype=bool), gold, n_bootstrap=900, random_state=0)
    assert out["value"] == out["lower"] == out["upper"] == 1.0


# ----------------------------------------------------------------------------- summary
def test_summarise_matches_the_individual_metrics():
    out = ev.summarise(PRED, GOLD)
    curve = ev.efficiency_curve(PRED, GOLD)
    assert out == pytest.approx({
        "oracle_share": ev.oracle_share(PRED, GOLD),
        "peak_efficiency_gain": ev.peak_efficiency_gain(curve),
        "efficiency_auc": ev.efficiency_auc(curve),
        "apgr": 0.59375,
        "cpt50": 0.25,
        "cpt80": 1.0,
        "share_predicted_positive": 0.75,
    })
    assert all(isinstance(v, float) for v in out.values())
    assert set(ev.__all__) >= {"efficiency_curve", "peak_efficiency_gain", "efficiency_auc",
                               "normalised_curve", "oracle_share", "pgr_curve", "apgr", "cpt",
                               "routing_value", "summarise"}


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call,match", [
    (lambda: ev.efficiency_curve([1.0, np.nan], [1.0, 2.0]), "pred_gain contains 1 NaN"),
    (lambda: ev.normalised_curve([1.0, 2.0], [1.0, np.inf]), "gold_gain contains 1 infinite"),
    (lambda: ev.oracle_share([1.0, 2.0, 3.0], [1.0, 2.0]), "mismatched lengths"),
    (lambda: ev.pgr_curve([], []), "pred_gain is empty"),
    (lambda: ev.apgr([1.0], [[1.0, 2.0], [3.0, 4.0]]), "gold_gain must be one-dimensional"),
    (lambda: ev.efficiency_curve([1.0, 2.0], [1.0, 2.0], ratios=[1.5]), r"ratios must lie in \[0, 1\]"),
    (lambda: ev.normalised_curve([1.0, 2.0], [1.0, 2.0], ratios=[-0.1, 0.5]), "ratios must lie"),
    (lambda: ev.oracle_share([1.0, 2.0], [1.0, 2.0], ratios=[np.nan]), "ratios contains 1 NaN"),
    (lambda: ev.pgr_curve([1.0, 2.0], [1.0, 2.0], ratios=[]), "ratios is empty"),
    (lambda: ev.efficiency_curve([1.0, 2.0], [1.0, -1.0]), "sum to zero"),
    (lambda: ev.efficiency_curve([1.0, 2.0, 3.0], [0.1, 0.2, -0.3]), "sum to zero"),  # up to rounding
    (lambda: ev.pgr_curve([1.0, 2.0], [0.0, 0.0]), "sum to zero"),
    (lambda: ev.apgr([1.0, 2.0], [2.0, -2.0]), "sum to zero"),
    (lambda: ev.cpt([1.0, 2.0], [2.0, -2.0]), "sum to zero"),
    (lambda: ev.cpt([1.0, 2.0], [1.0, 2.0], target=2), r"target must be in \[0, 1\]"),
    (lambda: ev.cpt([1.0, 2.0], [1.0, 2.0], target=np.nan), "target must be finite"),
    (lambda: ev.efficiency_auc(np.array([1.0, 2.0])), "curve must be a pandas Series"),
    (lambda: ev.peak_efficiency_gain([1.0]), "curve must be a pandas Series"),
    (lambda: ev.efficiency_auc(pd.Series([1.0, 2.0], index=[0.2, 0.4]), lo=0.6, hi=0.4),
     "lo must not exceed hi"),
    (lambda: ev.efficiency_auc(pd.Series([1.0, 2.0], index=[0.2, 0.4]), hi=1.2), r"hi must be in"),
    (lambda: ev.routing_value([0.5, 1.0], [1.0, 2.0]), "route must be boolean"),
    (lambda: ev.routing_value([2, 1], [1.0, 2.0]), "route must be boolean"),
    (lambda: ev.routing_value(["yes", "no"], [1.0, 2.0]), "route must be numeric"),
    (lambda: ev.routing_value([True, np.nan], [1.0, 2.0]), "route contains 1 NaN"),
    (lambda: ev.routing_value([True, False, True], [1.0, 2.0]), "mismatched lengths"),
    (lambda: ev.routing_value([True, False], [1.0, np.nan]), "gold_gain contains 1 NaN"),
    (lambda: ev.routing_value([True, False], [1.0, 2.0], cost_primary=[1.0, 2.0, 3.0]),
     "cost_primary has 3 values for 2 queries"),
    (lambda: ev.routing_value([True, False], [1.0, 2.0], cost_alternative=[0.0, np.inf]),
     "cost_alternative contains 1 infinite"),
    (lambda: ev.routing_value([True, False], [1.0, 2.0], cost_weight=-1.0), "cost_weight must be a finite number >= 0"),
    (lambda: ev.routing_value([True, False], [1.0, 2.0], alpha=1.0), r"alpha must be in \(0, 1\)"),
    (lambda: ev.routing_value([True, False], [1.0, 2.0], n_bootstrap=0), "n_bootstrap must be"),
    (lambda: ev.routing_value([True, False], [1.0, 2.0], n_bootstrap=10.5), "n_bootstrap must be"),
])
def test_errors_name_the_argument(call, match):
    with pytest.raises(DataError, match=match):
        call()


def test_summarise_gives_nan_for_normalised_metrics_when_gold_sums_to_zero():
    out = ev.summarise([1.0, 2.0, 3.0], [1.0, -1.0, 0.0])
    assert np.isfinite(out["oracle_share"])
    for key in ("peak_efficiency_gain", "efficiency_auc", "apgr", "cpt50", "cpt80"):
        assert np.isnan(out[key]), key
