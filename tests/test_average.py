"""The average bias as one estimator (causal_router.average.AverageBias, issue 27)."""

import warnings

import numpy as np
import pytest

from causal_router import AverageBias, BiasEstimator
from causal_router.average import ExtremeWeightsWarning
from causal_router.clusters import clustered_mean
from causal_router.data import EvalData
from causal_router.datasets import make_repeated_queries, make_semi_synthetic
from causal_router.models import RidgeThenBoosting

D = 12


def _generator(seed=3, n=800, gold_share=0.1, scale=2.0):
    f = make_semi_synthetic(n, D, pref_scale=scale, random_state=seed)
    X = f[[f"x{j}" for j in range(D)]].to_numpy()
    gold = np.random.default_rng(seed).random(n) < gold_share
    return f, X, gold, np.where(gold, f["gold_gain"], f["pref_gain"])


# Recorded from the previous implementation of ate() (its own AIPW code in bias.py, commit
# 2539c49), with /tmp script: make_semi_synthetic(800, 12, random_state=3), gold rows
# rng(3).random(800) < 0.1, model_final="constant", random_state=3. Its interval took the scale
# constant as known: its std_error is the one of the scores alone.
PREVIOUS = {
    "r": {"estimate": 0.20613048079555418, "std_error": 0.05878638323543499,
          "phi": [0.9544494045933581, 0.3396280140705842, 0.41553513985282275, -0.8396708561247795,
                  1.9844740415847415]},
    "dr": {"estimate": 0.20613048079585203, "std_error": 0.05878638323547779,
           "phi": [0.9544494045929115, 0.33962801407065935, 0.41553513985272034, -0.8396708561252476,
                   1.9844740415844968]},
}


@pytest.mark.parametrize("learner", ["r", "dr"])
def test_ate_is_the_previous_estimate(learner):
    _, X, gold, y = _generator()
    est = BiasEstimator(learner, model_final="constant", random_state=3).fit(X, y, source=gold)
    ate, prev = est.ate(), PREVIOUS[learner]
    np.testing.assert_allclose(est.pseudo_outcomes_[:5], prev["phi"], rtol=1e-10)
    assert ate["estimate"] == pytest.approx(prev["estimate"], rel=1e-10)
    # the scores' own standard error is the previous one; the scale constant's uncertainty comes on top
    assert clustered_mean(est.pseudo_outcomes_)["std_error"] == pytest.approx(prev["std_error"], rel=1e-10)
    assert ate["std_error"] > prev["std_error"]
    assert est.pseudo_outcomes_ is est.average_.pseudo_outcomes_  # the diagnostics' group averages use these


def test_ate_with_queries_and_with_a_design_is_the_previous_estimate():
    q = make_repeated_queries(60, 10, random_state=5)
    Xq = q[[f"x{j}" for j in range(11)]].to_numpy()
    gq = np.random.default_rng(5).random(len(q)) < 0.15
    yq = np.where(gq, q["gold_gain"], q["pref_gain"])
    est = BiasEstimator(model_final="constant", random_state=5).fit(Xq, yq, source=gq, groups=q["query_id"].to_numpy())
    ate = est.ate()
    # previous implementation (commit 2539c49): estimate 0.32183080057028024, clustered std_error 0.08825333289091271
    assert ate["estimate"] == pytest.approx(0.32183080057028024, rel=1e-10)
    assert clustered_mean(est.pseudo_outcomes_, est.query_groups_)["std_error"] == pytest.approx(
        0.08825333289091271, rel=1e-10)
    assert ate["n_clusters"] == 60
    # a design with probabilities 0.08 / 0.15 (nothing to clip), scale=None: every figure unchanged
    _, X, _, _ = _generator()
    f = make_semi_synthetic(800, D, random_state=3)
    p = np.where(X[:, 0] > 0, 0.15, 0.08)
    g2 = np.random.default_rng(4).random(800) < p
    y2 = np.where(g2, f["gold_gain"], f["pref_gain"])
    ate = BiasEstimator(model_final="constant", scale=None, random_state=3).fit(
        X, y2, source=g2, gold_probability=p).ate()
    previous = {"estimate": 0.18867232606280612, "std_error": 0.06120026537365303, "lower": 0.06872201008615243,
                "upper": 0.3086226420394598, "gold_ess": 81.86254471129278}
    for key, value in previous.items():
        assert ate[key] == pytest.approx(value, rel=1e-10), key
    assert ate["scale_std_error"] == 0


def test_refutation_scores_are_the_ate_scores():
    from causal_router.validate import _refuters

    _, X, gold, y = _generator()
    bias = BiasEstimator(model_final="constant", model_y=RidgeThenBoosting(random_state=3), random_state=3)
    bias.fit(X, y, source=gold)
    setup = _refuters.DowhySetup(EvalData(X, y, gold), bias, min_propensity=bias.min_propensity_, cv=bias.cv,
                                 seed=3, thorough=True)
    refuted = setup.estimate.estimator.estimator
    assert isinstance(refuted, AverageBias)
    # one code path: with the bias model's nuisances and folds, the same scores (measured: to 6e-11,
    # the learner's propensity is t minus econml's residual, rounded to 12 digits)
    np.testing.assert_allclose(refuted.pseudo_outcomes_ / setup.scale, bias.pseudo_outcomes_, atol=1e-9)
    assert setup.original_raw / setup.scale == pytest.approx(bias.ate()["estimate"], abs=1e-9)
    sens = setup.econml_sensitivity(0.05, 0.05)
    assert sens["available"] and sens["theta_lower"] < sens["theta"] < sens["theta_upper"]


def test_refutations_use_the_design_probabilities_unclipped():
    # gold rows drawn with known probabilities 0.08 / 0.15: dowhy's frame carries them as a common
    # cause that KnownPropensity reads; every refit weighs by them, none is estimated or clipped
    from causal_router.models import KnownPropensity
    from causal_router.validate import _refuters

    _, X, _, _ = _generator()
    f = make_semi_synthetic(800, D, random_state=3)
    p = np.where(X[:, 0] > 0, 0.15, 0.08)
    g = np.random.default_rng(4).random(800) < p
    y = np.where(g, f["gold_gain"], f["pref_gain"])
    bias = BiasEstimator(model_final="constant", model_y=RidgeThenBoosting(random_state=3), random_state=3)
    bias.fit(X, y, source=g, gold_probability=p)
    setup = _refuters.DowhySetup(EvalData(X, y, g, gold_probability=p), bias, min_propensity=0.2, cv=bias.cv,
                                 seed=3, thorough=True)
    refuted = setup.estimate.estimator.estimator
    assert isinstance(refuted.model_t, KnownPropensity) and refuted.known_propensity_
    np.testing.assert_array_equal(refuted.propensity_, p)  # min_propensity 0.2 would have clipped both levels
    assert refuted.n_clipped_ == 0
    # the design's column is no feature of the outcome models: the scores are ate()'s (measured: equal to 0.0)
    np.testing.assert_allclose(refuted.pseudo_outcomes_ / setup.scale, bias.pseudo_outcomes_, atol=1e-9)
    new, error = _refuters.simulate("bootstrap", 1, setup.payload, None)
    assert error is None and np.isfinite(new)
    with pytest.raises(ValueError, match="KnownPropensity.*last column of W"):
        AverageBias(model_t=KnownPropensity()).fit(y, g, X=X)


def test_gold_mean_is_the_gold_part_and_ignores_the_scale():
    f, X, gold, y = _generator(n=1500)
    fitted = AverageBias(scale="variance", random_state=0).fit(y, gold, X=X)
    none = AverageBias(scale=None, random_state=0).fit(y, gold, X=X)
    a, b = fitted.gold_mean(), none.gold_mean()
    # the gold outcome model is linear in o = c * gold: the gold-scale mean does not depend on c
    assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-6)
    assert a["std_error"] == pytest.approx(b["std_error"], rel=1e-6)
    plain = clustered_mean(none.gold_part_)
    assert (b["estimate"], b["std_error"]) == (plain["estimate"], plain["std_error"])
    # against the truth (the 1,500 rows' mean gold gain without noise): measured z = 0.4 (seed 3)
    truth = float(f["psi"].mean())
    assert abs(b["estimate"] - truth) < 3 * b["std_error"] and b["std_error"] < 0.05


def _multi(seed, n_queries=1000, share=0.1):
    from causal_router.datasets import make_multi_model
    from causal_router.pairwise import PairwiseData

    f = make_multi_model(n_queries, 20, random_state=seed)
    gold = np.random.default_rng([seed, 5]).random(len(f)) < share
    data = PairwiseData(f[[f"x{j}" for j in range(20)]], np.where(gold, f["gold_gain"], f["pref_gain"]), gold,
                        f["model_a"], f["model_b"], query_id=f["query_id"])
    return f, gold, data


def _model_truth(f, name):
    """The generator's mean gain (gold scale, without noise) over the rows the model or pair is on."""
    a, b, gain = f["model_a"].to_numpy(), f["model_b"].to_numpy(), f["gain"].to_numpy()
    if "|" in name:
        x, y = name.split("|")
        rows = ((a == x) & (b == y)) | ((a == y) & (b == x))
        return float(np.mean(np.where(a == x, 1.0, -1.0)[rows] * gain[rows]))
    rows = (a == name) | (b == name)
    return float(np.mean(np.where(a == name, 1.0, -1.0)[rows] * gain[rows]))


def test_model_means_against_the_truth_of_the_generator():
    from causal_router.average import model_means

    f, gold, data = _multi(0)
    means = model_means(data, random_state=0)
    assert list(means["kind"]) == ["model"] * 4 + ["pair"] * 6
    assert set(means.loc[means["kind"] == "model", "name"]) == {"small", "medium", "large", "xlarge"}
    truth = means["name"].map(lambda name: _model_truth(f, name))
    z = (means["estimate"] - truth) / means["std_error"]
    # `python benchmarks/model_means.py --seeds 30` (seeds 0-29, this data at seed 0): coverage
    # 0.958 (models) and 0.944 (pairs), largest |z| 2.83 over the 600 estimates; seed 0: 1.50
    assert (z.abs() < 3).all(), z
    # every model's average is on its own rows, turned to its side: the four models' rows count
    # each comparison twice
    assert means.loc[means["kind"] == "model", "n_rows"].sum() == 2 * len(f)
    assert means.loc[means["kind"] == "pair", "n_rows"].sum() == len(f)
    # the intervals are real ones (same run: models 0.040-0.066 over seeds 0-29; pairs on seed 0
    # 0.072-0.206, about 50 gold rows each): neither zero nor unbounded
    models = means["kind"] == "model"
    assert means.loc[models, "std_error"].between(0.02, 0.1).all()
    assert means.loc[~models, "std_error"].between(0.03, 0.4).all()
    # the judge paired on the gold rows narrows the models' intervals (same run: on 100 of 120
    # model averages, median 0.048 against 0.051; seed 0: every model, by 7-16%) and keeps them
    # honest (seed 0: largest |z| 2.11)
    paired = model_means(data, preference_gain=np.where(gold, f["pref_gain"], np.nan), random_state=0)
    assert paired["std_error"][:4].mean() < means["std_error"][:4].mean()
    truth_p = paired["name"].map(lambda name: _model_truth(f, name))
    assert (((paired["estimate"] - truth_p) / paired["std_error"]).abs() < 3).all()


def test_model_means_name_thin_pairs():
    from causal_router.average import model_means

    f, gold, data = _multi(1, n_queries=150, share=0.1)
    with pytest.warns(UserWarning, match="fewer than 10 gold or judge rows"):
        means = model_means(data, random_state=0)
    thin = means["n_gold"] < 10
    assert thin.any() and means.loc[thin, "estimate"].isna().all() and means.loc[~thin, "estimate"].notna().all()
    with pytest.raises(ValueError, match="preference_gain has 3 rows"):
        model_means(data, preference_gain=np.zeros(3))


def test_known_design_probabilities_are_never_clipped():
    f, X, _, _ = _generator(n=1000)
    p = np.where(X[:, 0] > 1.0, 0.001, 0.2)
    gold = np.random.default_rng(1).random(1000) < p
    tiny = np.flatnonzero(p == 0.001)[:2]
    gold[tiny] = True  # two gold rows the design drew with probability 0.001
    y = np.where(gold, f["gold_gain"], f["pref_gain"])
    with pytest.warns(ExtremeWeightsWarning, match="0.001"):
        est = BiasEstimator(model_final="constant", random_state=0).fit(X, y, source=gold, gold_probability=p)
    assert est.known_propensity_ and est.n_clipped_ == 0
    np.testing.assert_array_equal(est.average_.propensity_, p)  # unclipped: 1/p = 1000 on those rows
    ate = est.ate()
    assert ate["propensity_min"] == 0.001 and ate["clipped_share"] == 0
    # two rows of weight 1000 among ~180 of weight 5: Kish's effective size about 2.7 gold rows
    w = 1 / p[gold]
    assert ate["gold_ess"] == pytest.approx(w.sum() ** 2 / np.sum(w ** 2)) and ate["gold_ess"] < 5
    # negative control: with moderate probabilities nothing is said
    p2 = np.full(1000, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtremeWeightsWarning)
        AverageBias(random_state=0).fit(y, gold, X=X, gold_probability=p2)


def test_estimated_propensities_are_clipped():
    f, X, gold, y = _generator(n=1000)
    ab = AverageBias(scale=None, min_propensity=0.09, random_state=0).fit(y, gold, X=X)
    assert ab.propensity_.min() >= 0.09 - 1e-12 and ab.n_clipped_ > 0


def test_scale_uncertainty_widens_the_interval_only_where_the_scale_is_fitted():
    f, X, gold, y = _generator(n=1500)
    y = y + np.where(gold, 0.0, 3.0)  # a judge whose gains sit 3 above 0: theta moves by P / c^2 per unit of c
    fitted = AverageBias(scale="variance", random_state=0).fit(y, gold, X=X).result()
    known = AverageBias(scale=float(fitted["scale"]), random_state=0).fit(y, gold, X=X).result()
    assert fitted["estimate"] == pytest.approx(known["estimate"], rel=1e-12)
    assert fitted["scale_std_error"] > 0 and known["scale_std_error"] == 0
    # measured (seed 3): std_error 0.0353 with c known, 0.0912 with its uncertainty (c = 2.13, se 0.124)
    assert fitted["std_error"] > 2 * known["std_error"]
    assert fitted["upper"] - fitted["lower"] > 2 * (known["upper"] - known["lower"])
    # scale=None: the interval is that of the scores alone, to the last digit
    none = AverageBias(scale=None, random_state=0).fit(y, gold, X=X)
    plain = clustered_mean(none.pseudo_outcomes_)
    for key in ("estimate", "std_error", "lower", "upper"):
        assert none.result()[key] == plain[key]


def test_scale_is_fitted_with_the_design_weights():
    # the design draws gold rows where the gold gain is spread out; unweighted, their spread
    # overstates the gold scale and c is too small; the 1/p weights recover it
    from causal_router.data import fitted_scale

    rng = np.random.default_rng(0)
    n = 20000
    x = rng.standard_normal(n)
    gold_gain = x + 0.3 * rng.standard_normal(n)
    pref_gain = 2 * gold_gain
    p = np.where(np.abs(x) > 1, 0.3, 0.03)
    gold = rng.random(n) < p
    gain = np.where(gold, gold_gain, pref_gain)
    weighted = fitted_scale(EvalData(x[:, None], gain, gold, gold_probability=p), "variance")
    unweighted = fitted_scale(EvalData(x[:, None], gain, gold), "variance")
    assert abs(weighted - 2) < 0.1 and unweighted < 1.6


def test_paired_rows_are_used_where_the_judge_labels_the_gold_rows():
    f, X, gold, y = _generator()
    judge = np.where(gold, f["pref_gain"], np.nan)
    data = EvalData(X, y, gold, preference_gain=judge)
    assert np.array_equal(data.subset(np.flatnonzero(gold)).preference_gain, f["pref_gain"].to_numpy()[gold])
    est = BiasEstimator(model_final="constant", random_state=3).fit(data)
    assert est.average_.paired_
    # on a paired gold row the judge's gain is in the score: the preference part is the judge's gain on every row
    np.testing.assert_array_equal(est.average_.preference_part_, f["pref_gain"].to_numpy())
    ate = est.ate()
    # the estimate of the same average bias: within two standard errors of the unpaired one (measured 0.177
    # against 0.206, standard errors 0.057 and 0.061)
    unpaired = BiasEstimator(model_final="constant", random_state=3).fit(X, y, source=gold).ate()
    assert abs(ate["estimate"] - unpaired["estimate"]) < 2 * unpaired["std_error"]


def test_paired_rows_bad_input_is_named():
    f, X, gold, y = _generator()
    with pytest.raises(ValueError, match="preference_gain differs from the gain on .* preference rows"):
        EvalData(X, y, gold, preference_gain=np.where(gold, f["pref_gain"], 0.5))
    with pytest.raises(ValueError, match="infinite"):
        EvalData(X, y, gold, preference_gain=np.where(gold, np.inf, np.nan))
    half = np.where(gold, f["pref_gain"], np.nan)
    half[np.flatnonzero(gold)[:3]] = np.nan
    with pytest.raises(ValueError, match="missing .* on 3 of"):
        AverageBias(random_state=0).fit(y, gold, X=X, preference_gain=half)
    frame = EvalData(X, y, gold, preference_gain=np.where(gold, f["pref_gain"], np.nan)).to_frame()
    with pytest.raises(ValueError, match="judge's gain"):
        EvalData.from_frame(frame, ["x0", "preference_gain"], preference_gain="preference_gain")


def test_cli_reads_the_preference_gain_column(tmp_path):
    from causal_router.cli import build_parser
    from causal_router.cli.options import eval_data

    f, X, gold, y = _generator()
    frame = EvalData(X, y, gold, preference_gain=np.where(gold, f["pref_gain"], np.nan)).to_frame()
    args = build_parser().parse_args(["diagnose", "data.csv", "--preference-gain", "preference_gain"])
    data = eval_data(frame, args)
    assert "preference_gain" not in data.feature_names and data.X.shape[1] == D
    np.testing.assert_array_equal(data.preference_gain[gold], f["pref_gain"].to_numpy()[gold])


def _offset_judge_z(seed: int) -> tuple[float, float]:
    """z = (estimate - truth) / std_error with and without the scale constant's uncertainty, on a
    judge on twice the gold scale whose gains also sit 2 above 0 (truth: the generator's bias minus
    1.0 on the gold scale, with the TRUE scale 2, not the fitted c); 100 of 1,000 rows drawn as gold
    (known probability 0.1), ridge outcome models (fast)."""
    from sklearn.linear_model import RidgeCV

    f = make_semi_synthetic(1000, D, bias="constant", pref_scale=2.0, random_state=seed)
    X = f[[f"x{j}" for j in range(D)]].to_numpy()
    gold = np.zeros(1000, dtype=bool)
    gold[np.random.default_rng([seed, 27]).choice(1000, 100, replace=False)] = True
    y = np.where(gold, f["gold_gain"], f["pref_gain"] + 2.0)
    ab = AverageBias(RidgeCV(), scale="variance", random_state=seed).fit(y, gold, X=X,
                                                                         gold_probability=np.full(1000, 0.1))
    res, truth = ab.result(), f["bias"].mean() - 1.0
    return ((res["estimate"] - truth) / res["std_error"],
            (res["estimate"] - truth) / clustered_mean(ab.pseudo_outcomes_)["std_error"])


def test_negative_control_an_interval_taking_the_scale_as_known_undercovers():
    # seeds 0-39 (about 5 s). Measured (seeds 0-59, /tmp script = this helper): with the scale's
    # uncertainty coverage 0.93 and sd(z) 1.00; taking c as known coverage 0.67 and sd(z) 2.06 (20-seed
    # blocks: 0.70 / 0.75 / 0.55, sd(z) 2.08 / 1.80 / 2.22)
    z = np.array([_offset_judge_z(seed) for seed in range(40)])
    aware, known = z[:, 0], z[:, 1]
    assert np.mean(np.abs(known) < 1.96) < 0.85 and known.std() > 1.5
    assert np.mean(np.abs(aware) < 1.96) >= 0.85 and 0.75 < aware.std() < 1.3


@pytest.mark.slow  # 40 default fits, about 40 s
def test_coverage_against_the_truth_on_the_gold_scale():
    """The interval against the generator's truth on the gold scale (the judge on twice the gold
    scale; truth with the true scale 2, not the fitted c), the benchmark's "random" setting
    (benchmarks/average_bias.py: 2,000 rows, 100 random gold rows, default nuisances)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from average_bias import one_seed

    runs = [one_seed("random", seed) for seed in range(40)]
    covered = np.mean([r["cover_scale_aware"] for r in runs])
    z = np.array([(r["estimate"] - r["truth"]) / r["se_scale_aware"] for r in runs])
    # measured (python benchmarks/average_bias.py --seeds 200 --n-jobs 1): coverage 0.92 over seeds 0-199,
    # 0.925 on seeds 0-39 (40-seed blocks 0.90-0.95); z mean 0.07, sd 1.04 (blocks 0.92-1.22)
    assert covered >= 0.8
    assert abs(z.mean()) < 0.5 and 0.7 < z.std() < 1.4
