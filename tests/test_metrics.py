"""Metric definitions against small hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from causal_router import evaluate as ev
from causal_router._validation import DataError

# Five test queries. Gold gains sum to 5.5; prediction order: q0 (0.9), then q2 and q3 tied
# at 0.5, then q1 (0.1), then q4 (0.0).
GOLD = np.array([3.0, 1.0, 2.0, -1.0, 0.5])
PRED = np.array([0.9, 0.1, 0.5, 0.5, 0.0])


def test_top_k_gain_breaks_ties_in_expectation():
    # k=1: q0 -> 3; k=2: q0 + half of (2 - 1) -> 3.5; k=3: 3 + 2 - 1 = 4; k=4: +1 -> 5; k=5: 5.5
    np.testing.assert_allclose(ev._top_k_gain(PRED, GOLD, np.arange(6)), [0, 3, 3.5, 4, 5, 5.5])


def test_efficiency_curve_hand_case():
    # r=0.4 -> k=2: (3.5 - 0.4 * 5.5) / 5.5 = 1.3 / 5.5; r=0.6 -> k=3: (4 - 3.3) / 5.5
    # 4 of 5 predictions are > 0 (0.9, 0.5, 0.5, 0.1), so the curve stops after r=0.8.
    curve = ev.efficiency_curve(PRED, GOLD, ratios=[0.4, 0.6, 0.8, 1.0])
    assert curve.name == "efficiency_gain" and curve.index.name == "ratio"
    assert curve[0.4] == pytest.approx(1.3 / 5.5)
    assert curve[0.6] == pytest.approx(0.7 / 5.5)
    assert curve[0.8] == pytest.approx((5 - 4.4) / 5.5)
    assert np.isnan(curve[1.0])
    assert ev.peak_efficiency_gain(curve) == pytest.approx(1.3 / 5.5)


def test_efficiency_auc_is_the_trapezoid_over_defined_points():
    curve = pd.Series([0.0, 1.0, 1.0, np.nan], index=pd.Index([0.2, 0.4, 0.6, 0.8], name="ratio"))
    # trapezoids: 0.2 * (0 + 1) / 2 + 0.2 * (1 + 1) / 2 = 0.1 + 0.2; the NaN tail adds 0
    assert ev.efficiency_auc(curve) == pytest.approx(0.3)
    assert ev.efficiency_auc(curve.iloc[:1]) == 0.0


def test_oracle_share_hand_case_and_extremes():
    # r=0.4, k=2: pred 3.5, oracle 3 + 2 = 5, random 2.2 -> (3.5 - 2.2) / (5 - 2.2)
    assert ev.oracle_share(PRED, GOLD, ratios=[0.4]) == pytest.approx(1.3 / 2.8)
    assert ev.oracle_share(GOLD, GOLD) == pytest.approx(1.0)
    assert ev.oracle_share(np.full(5, 7.0), GOLD) == pytest.approx(0.0, abs=1e-12)
    assert ev.oracle_share(-GOLD, GOLD) < 0


def test_constant_prediction_is_exactly_random():
    rng = np.random.default_rng(0)
    gold = rng.normal(0.3, 1, 200)
    curve = ev.efficiency_curve(np.ones(200), gold)
    np.testing.assert_allclose(curve.to_numpy(), 0.0, atol=1e-12)
    assert ev.apgr(np.ones(200), gold) == pytest.approx(0.5)


def test_pgr_apgr_cpt_hand_case():
    # PGR at k/N for k = 0..5: 0, 3, 3.5, 4, 5, 5.5 divided by 5.5
    pgr = ev.pgr_curve(PRED, GOLD, ratios=np.arange(6) / 5)
    np.testing.assert_allclose(pgr.to_numpy(), np.array([0, 3, 3.5, 4, 5, 5.5]) / 5.5)
    # trapezoid with step 0.2: 0.2 * (0/2 + 3 + 3.5 + 4 + 5 + 5.5/2) / 5.5
    assert ev.apgr(PRED, GOLD) == pytest.approx(0.2 * (3 + 3.5 + 4 + 5 + 2.75) / 5.5)
    assert ev.cpt(PRED, GOLD, 0.5) == pytest.approx(0.2)   # 3 / 5.5 = 0.545 at k = 1
    assert ev.cpt(PRED, GOLD, 0.8) == pytest.approx(0.8)   # 4 / 5.5 = 0.73 < 0.8 <= 5 / 5.5
    assert ev.apgr(GOLD, GOLD) > 0.5


def test_routing_value():
    route = np.array([True, False, True, False, True])
    out = ev.routing_value(route, GOLD, random_state=0)
    assert out["value"] == pytest.approx((3 + 2 + 0.5) / 5)
    assert out["share_primary"] == pytest.approx(0.6) and out["n"] == 5
    assert out["lower"] <= out["value"] <= out["upper"]
    assert ev.routing_value(route, GOLD, random_state=0) == out
    costs = ev.routing_value(route, GOLD, cost_weight=0.5, cost_primary=np.full(5, 2.0),
                             cost_alternative=np.ones(5), random_state=0)
    assert costs["value"] == pytest.approx((2.5 + 1.5 + 0.0) / 5)


def test_summarise_keys():
    out = ev.summarise(PRED, GOLD)
    assert set(out) == {"oracle_share", "peak_efficiency_gain", "efficiency_auc", "apgr", "cpt50",
                        "cpt80", "share_predicted_positive"}


@pytest.mark.parametrize("call,match", [
    (lambda: ev.oracle_share([1.0, np.nan], [1.0, 2.0]), "pred_gain contains 1 NaN"),
    (lambda: ev.oracle_share([1.0, 2.0], [1.0, np.inf]), "gold_gain contains 1 infinite"),
    (lambda: ev.oracle_share([1.0, 2.0, 3.0], [1.0, 2.0]), "mismatched lengths"),
    (lambda: ev.efficiency_curve([1.0, 2.0], [1.0, -1.0]), "sum to zero"),
    (lambda: ev.efficiency_curve([1.0, 2.0], [1.0, 2.0], ratios=[1.5]), r"ratios must lie in \[0, 1\]"),
    (lambda: ev.routing_value([0.5, 1.0], [1.0, 2.0]), "route must be boolean"),
    (lambda: ev.cpt([1.0, 2.0], [1.0, 2.0], target=2), "target must be in"),
])
def test_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()
