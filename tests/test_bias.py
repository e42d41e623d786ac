"""Bias (CATE) estimation on data whose true bias is known."""

import numpy as np
import pytest
from sklearn.base import clone

from causal_router import BiasEstimator
from causal_router.datasets import make_semi_synthetic, reveal_split


def _true_bias_on_gold_scale(frame, index, scale):
    # the estimator's target: psi - eta / c, with c the estimator's fitted scale constant
    rows = frame.iloc[index]
    return rows["psi"].to_numpy() - rows["eta"].to_numpy() / scale


@pytest.fixture(scope="module")
def r_fit(split):
    return BiasEstimator("r", random_state=0).fit(split.train)


def test_r_learner_recovers_the_heterogeneous_bias(synthetic, split, r_fit):
    # Measured over 10 splits: correlation 0.67 +- 0.11 (min 0.49); the bound leaves margin.
    truth = _true_bias_on_gold_scale(synthetic, split.test_index, r_fit.scale_)
    est = r_fit.effect(split.test_X)
    assert est.shape == (500,)
    assert np.corrcoef(est, truth)[0, 1] > 0.4


def test_ate_interval_covers_the_true_average_bias(synthetic, split, r_fit):
    truth = _true_bias_on_gold_scale(synthetic, split.train_index, r_fit.scale_).mean()
    ate = r_fit.ate(alpha=0.01)
    assert list(ate.index) == ["estimate", "std_error", "lower", "upper"]
    assert ate["lower"] < truth < ate["upper"]
    assert 0 < ate["std_error"] < 0.1


def test_fitted_attributes_and_sklearn_contract(split, r_fit):
    est = BiasEstimator("r", cv=3, random_state=0)
    assert est.get_params()["cv"] == 3
    assert clone(est).get_params() == est.get_params()
    assert r_fit.estimator_.__class__.__name__ == "NonParamDML"
    assert r_fit.propensity_.shape == (len(split.train),)
    assert 0.4 < r_fit.overlap_auc_ < 0.75  # gold rows are a random draw
    # random gold rows: out-of-fold propensities 0.018-0.028 (measured on this split) never reach the
    # default clip at a tenth of the gold share (0.0022); a clip above them clips every row
    assert r_fit.n_clipped_ == 0 and r_fit.min_propensity_ == pytest.approx(0.1 * 100 / 4500)
    forced = BiasEstimator("r", min_propensity=0.1, random_state=0).fit(split.train)
    assert forced.n_clipped_ == len(split.train) and np.all(forced.propensity_ == pytest.approx(0.1))
    assert r_fit.final_stage_ == "linear"
    with pytest.raises(ValueError, match="not available for learner='r'"):
        r_fit.effect_interval(split.test_X)


def test_deterministic_given_random_state(split):
    a = BiasEstimator("r", random_state=3).fit(split.train).effect(split.test_X[:50])
    b = BiasEstimator("r", random_state=3).fit(split.train).effect(split.test_X[:50])
    np.testing.assert_array_equal(a, b)


def test_auto_reports_its_selection(split):
    est = BiasEstimator("auto", random_state=0).fit(split.train)
    table = est.selection_
    assert list(table.index) == ["constant", "linear", "boosting"]
    assert table["chosen"].sum() == 1
    assert est.final_stage_ == table.index[table["chosen"]][0]
    assert table.loc[est.final_stage_, "r_loss"] == table["r_loss"].min()


def test_auto_falls_back_to_a_constant_without_heterogeneity():
    # With a constant true bias the constant final stage should win on most draws.
    frame = make_semi_synthetic(3000, 20, bias="constant", random_state=5)
    picks = []
    for seed in range(4):
        s = reveal_split(frame, n_gold=150, n_test=300, random_state=seed)
        picks.append(BiasEstimator("auto", random_state=seed).fit(s.train).final_stage_)
    assert picks.count("constant") >= 2, picks


@pytest.mark.parametrize("learner", ["linear", "forest"])
def test_learners_with_native_intervals(split, learner):
    est = BiasEstimator(learner, random_state=0).fit(split.train)
    lower, upper = est.effect_interval(split.test_X[:20], alpha=0.1)
    point = est.effect(split.test_X[:20])
    assert lower.shape == upper.shape == point.shape == (20,)
    assert np.all(lower <= point + 1e-9) and np.all(point <= upper + 1e-9)


def test_dr_learner_runs_and_reports_trimmed_rows(split):
    est = BiasEstimator("dr", random_state=0).fit(split.train)
    assert est.estimator_.__class__.__name__ == "DRLearner"
    assert np.isfinite(est.effect(split.test_X[:10])).all()
    assert np.isfinite(est.ate()["estimate"])


def test_effect_checks_feature_count(r_fit):
    from causal_router._validation import DataError

    with pytest.raises(DataError, match="X has 3 features, but BiasEstimator is expecting 50 features as input"):
        r_fit.effect(np.zeros((2, 3)))


@pytest.mark.parametrize("learner", ["r", "dr"])
def test_ray_cross_fitting_gives_identical_results(split, learner, local_ray):
    data = split.train.subset(np.arange(1500))
    local = BiasEstimator(learner, cv=3, random_state=0).fit(data)
    on_ray = BiasEstimator(learner, cv=3, use_ray=True, random_state=0).fit(data)
    np.testing.assert_allclose(on_ray.effect(data.X), local.effect(data.X), rtol=0, atol=1e-10)
    np.testing.assert_allclose(on_ray.propensity_, local.propensity_, rtol=0, atol=1e-12)
