"""Choosing gold rows: designs with known probabilities, the strategies, the planner, the commands."""

import numpy as np
import pandas as pd
import pytest

from causal_router import BiasEstimator, EvalData, MetaRouter
from causal_router._validation import DataError
from causal_router.active import (
    SamplingDesign,
    SuggestedGold,
    combine_probabilities,
    plan_gold,
    suggest_gold,
    systematic_sample,
)
from causal_router.active.scores import bias_uncertainty, decision_value
from causal_router.active.suggest import AUTO_MIN_GOLD
from causal_router.cli import main
from causal_router.datasets import make_semi_synthetic, reveal_split
from causal_router.evaluate import oracle_share


@pytest.fixture(scope="module")
def small():
    """1,500 generated queries, 12 features, 60 random gold rows among the 1,200 training rows."""
    frame = make_semi_synthetic(1500, 12, random_state=5)
    return frame, reveal_split(frame, n_gold=60, n_test=300, random_state=5)


# ---------------------------------------------------------------------------- the design
def test_design_spends_the_budget_with_a_floor_and_a_cap():
    score = np.r_[np.zeros(50), np.ones(45), np.full(5, 200.0)]
    design = SamplingDesign.for_budget(score, 20, floor=0.3, cap=0.9)
    p = design.probability(score)
    assert p.sum() == pytest.approx(20)
    assert p.max() == pytest.approx(0.9)             # the five top scores are capped ...
    assert p[:50].min() > 0                           # ... and a zero score keeps the floor
    assert p[:50].min() == pytest.approx(design.factor * 0.3)
    assert np.all(np.diff(p[45:55]) >= 0)             # the probability follows the score
    with pytest.raises(DataError, match="budget"):
        SamplingDesign.for_budget(score, 95, floor=0.3, cap=0.9)


def test_systematic_sampling_draws_the_size_with_the_stated_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 1.0, 40)
    p = np.minimum(p * 12 / p.sum(), 1.0)
    p *= 12 / p.sum()  # 12 draws (one rescale keeps every p below 1 here)
    assert p.max() <= 1
    counts = np.zeros(40)
    n_draws = 4000
    for seed in range(n_draws):
        drawn = systematic_sample(p, seed)
        assert len(drawn) == 12 and len(np.unique(drawn)) == 12
        counts[drawn] += 1
    # inclusion frequencies within 4.5 binomial standard errors of the stated probabilities
    assert np.all(np.abs(counts / n_draws - p) <= 4.5 * np.sqrt(p * (1 - p) / n_draws) + 1e-9)


def test_sampling_along_strata_spreads_the_draw():
    strata = np.repeat(np.arange(10), 30)             # 10 strata of 30 rows, 10 draws of p = 1/30
    order = np.argsort(strata, kind="stable")
    for seed in range(20):
        drawn = systematic_sample(np.full(300, 1 / 30), seed, order=order)
        assert sorted(strata[drawn]) == list(range(10))  # exactly one per stratum, every time


def test_combined_probabilities_make_inverse_probability_weighting_unbiased_over_adaptive_rounds():
    """Two rounds; the second round's design depends on the gold labels of the first (it favours
    rows whose feature is near the first round's mean gold value). Every row's probability of a
    gold label is 1 - (1 - p1)(1 - p2), with p2 for a first-round gold row the probability the
    second round's design would have given it without its own label. The Horvitz-Thompson mean of
    the gold values with these probabilities is then unbiased. (With p2 taken from the design that
    saw the row's own label instead, the same experiment measured a bias of -0.016, 6 s.e.)"""
    rng = np.random.default_rng(1)
    n = 300
    x = rng.standard_normal(n)
    y = 1.0 + x + 0.5 * x ** 2 + 0.3 * rng.standard_normal(n)

    def second_round(labelled):
        score = np.exp(-np.abs(x - y[labelled].mean()))
        return SamplingDesign.for_budget(score[~labelled], 25, floor=0.3, cap=0.9), score

    estimates = []
    for seed in range(800):
        draw = np.random.default_rng(seed)
        gold = draw.uniform(size=n) < 15 / n                  # first round: Poisson sampling, p1 = 0.05
        if gold.sum() < 2:
            continue
        design, score = second_round(gold)
        p2 = design.probability(score)
        for i in np.flatnonzero(gold):
            without = gold.copy()
            without[i] = False
            design_i, score_i = second_round(without)
            p2[i] = design_i.probability(score_i[[i]])[0]
        pool = np.flatnonzero(~gold)
        gold[pool[systematic_sample(p2[~gold], draw)]] = True
        q = combine_probabilities(np.full(n, 15 / n), p2)
        estimates.append(np.sum(y[gold] / q[gold]) / n)
    estimates = np.asarray(estimates)
    se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    # measured: error -0.002 +- 0.003 (4,000 draws), +0.006 +- 0.004 (2,000 draws); 4 s.e. allowed
    # (800 draws here, for time: the bound scales with their standard error)
    assert abs(estimates.mean() - y.mean()) < 4 * se


# ---------------------------------------------------------------------------- suggestions
@pytest.mark.parametrize("strategy", ["random", "diverse", "uncertainty", "decision"])
def test_suggestions_are_candidates_drawn_with_known_probabilities(small, strategy):
    _, split = small
    data = split.train
    suggestion = suggest_gold(None, data, 40, strategy=strategy, random_state=0)
    assert isinstance(suggestion, SuggestedGold) and len(suggestion) == 40
    assert not data.is_gold[suggestion.index].any()                       # only preference rows
    assert len(np.unique(suggestion.index)) == 40
    assert np.allclose(suggestion.probability, suggestion.design_probability[suggestion.index])
    assert suggestion.design_probability[~data.is_gold].sum() == pytest.approx(40)
    q = suggestion.gold_probability
    assert q.shape == (len(data),) and np.all((q > 0) & (q < 1))
    # earlier rows were a random draw of 60 of 1,200: 1 - (1 - 0.05)(1 - p)
    assert np.allclose(q, 1 - (1 - 60 / 1200) * (1 - suggestion.design_probability))
    frame = suggestion.to_frame()
    # the generator's split carries its query ids: the table names each suggested query
    assert list(frame.columns) == ["row", "query_id", "probability", "gold_probability", "score"] and len(frame) == 40
    assert np.array_equal(frame["query_id"], data.query_id[suggestion.index])
    again = suggest_gold(None, data, 40, strategy=strategy, random_state=0)
    assert np.array_equal(again.index, suggestion.index)                   # deterministic given the seed


def test_auto_runs_decision_on_labelled_data_and_diverse_on_a_plain_pool(small):
    frame, split = small
    labelled = suggest_gold(None, split.train, 10, random_state=0)           # 60 gold rows
    assert labelled.strategy == "decision"
    assert np.ptp(labelled.design_probability[~split.train.is_gold]) > 0     # a targeted design
    plain = pd.DataFrame(split.test_X, columns=split.train.feature_names)
    assert suggest_gold(None, plain, 10, random_state=0).strategy == "diverse"
    few = reveal_split(frame, n_gold=AUTO_MIN_GOLD - 1, n_test=300, random_state=5).train
    assert suggest_gold(None, few, 10, random_state=0).strategy == "diverse"  # too few gold rows to fit the router


def test_apply_carries_the_design_into_the_next_round(small):
    frame, split = small
    data = split.train
    gold_gain = frame["gold_gain"].to_numpy()[split.train_index]
    first = suggest_gold(None, data, 30, strategy="random", random_state=1)
    after = first.apply(data, gold_gain[first.index])
    assert after.n_gold == 90 and data.n_gold == 60                          # the input is untouched
    assert data.gold_probability is None
    assert np.array_equal(after.gain[first.index], gold_gain[first.index])
    assert np.allclose(after.gold_probability, first.gold_probability)
    second = suggest_gold(None, after, 30, strategy="diverse", random_state=2)
    assert np.allclose(second.gold_probability, 1 - (1 - first.gold_probability) * (1 - second.design_probability))
    final = second.apply(after, gold_gain[second.index])
    bias = BiasEstimator(random_state=0).fit(final)
    assert bias.known_propensity_ and final.n_gold == 120
    with pytest.raises(DataError, match="already gold"):
        first.apply(after, gold_gain[first.index])


def test_features_only_pool(small):
    _, split = small
    X = pd.DataFrame(split.test_X, columns=split.train.feature_names)
    suggestion = suggest_gold(None, X, 20, strategy="diverse", random_state=0)
    assert len(suggestion) == 20 and np.allclose(suggestion.gold_probability, 20 / 300)
    router = MetaRouter(random_state=0).fit(split.train)
    assert len(suggest_gold(router, X[X.columns[::-1]], 20, strategy="random", random_state=0)) == 20
    with pytest.raises(DataError, match="needs labelled rows"):
        suggest_gold(router, X, 20, strategy="decision")


@pytest.mark.parametrize("kwargs,message", [
    ({"strategy": "greedy"}, "strategy must be one of"),
    ({"budget": 0}, "budget must be a positive integer"),
    ({"budget": 2.5}, "budget must be a positive integer"),
    ({"budget": 1100}, "more than 90%"),
])
def test_bad_arguments(small, kwargs, message):
    _, split = small
    args = {"budget": 10, **kwargs}
    with pytest.raises(DataError, match=message):
        suggest_gold(None, split.train, args.pop("budget"), **args)


def test_uncertainty_is_highest_where_gold_labels_are_missing():
    """Gold rows drawn with probability 0.2 where x0 < 0 and 0.01 where x0 > 0: the bias is
    least certain where x0 > 0 (out-of-bag spread for the gold rows)."""
    rng = np.random.default_rng(3)
    n = 1500
    X = rng.standard_normal((n, 4))
    q = np.where(X[:, 0] < 0, 0.2, 0.01)
    gold = rng.uniform(size=n) < q
    gain = np.where(gold, X[:, 1] + 0.5 * X[:, 0], 2 * X[:, 1]) + 0.3 * rng.standard_normal(n)
    data = EvalData(X, gain, gold, gold_probability=q)
    sd = bias_uncertainty(data, random_state=0)
    ratio = np.median(sd[X[:, 0] > 1]) / np.median(sd[X[:, 0] < -1])
    # measured over 6 data seeds x 2 bootstrap seeds: ratio 1.24 - 1.96 (this seed: 1.48)
    assert ratio > 1.1


def test_decision_value_peaks_at_the_thresholds_and_grows_with_uncertainty():
    reference = np.linspace(-1, 1, 201)                        # thresholds at the 20%-80% quantiles
    gain = np.array([0.0, 0.7, 3.0])
    low = decision_value(gain, np.full(3, 0.1), reference)
    high = decision_value(gain, np.full(3, 0.3), reference)
    assert low[0] > low[1] > low[2] >= 0                       # inside, at the edge, far outside
    assert np.all(high > low)


# ---------------------------------------------------------------------------- planning
def test_ci_width_law_predicts_the_width_with_four_times_the_gold_labels():
    """Plan from 50 random gold rows among 2,000, then reveal 200: the law's width at 200
    against the width measured with 200 (same queries)."""
    frame = make_semi_synthetic(2300, 12, random_state=7)
    few = reveal_split(frame, n_gold=50, n_test=300, random_state=7)
    plan = plan_gold(few.train, target_ci_width=0.1, random_state=0)
    curve = plan.ci_width_curve.set_index("n_gold")["ci_width"]
    predicted = float(np.interp(200, curve.index, curve.to_numpy()))
    many = reveal_split(frame, n_gold=200, n_test=300, random_state=7)
    ate = BiasEstimator(random_state=0).fit(many.train).ate()
    # measured over 5 generator seeds (7-11): predicted / observed 0.90 - 1.08 (this seed: 0.94)
    assert 0.75 < predicted / (ate["upper"] - ate["lower"]) < 1.3
    row = plan.targets.loc["ci_width"]
    assert row["lower"] <= row["n_gold_needed"] <= row["upper"] and row["n_more"] == row["n_gold_needed"] - 50
    assert "needs about" in plan.summary()


@pytest.mark.slow
def test_learning_curve_plan_agrees_with_a_held_out_test_set():
    """The planner's oracle share at the current number of gold labels (cross-validated over the
    gold rows, then the fitted law) against the share of the router fitted on all rows, scored on
    300 held-out test queries. Slow: 16 router refits (120 s on 2 shared cores)."""
    frame = make_semi_synthetic(1100, 11, random_state=5)
    split = reveal_split(frame, n_gold=100, n_test=300, random_state=5)
    plan = plan_gold(split.train, target_oracle_share=0.99, n_folds=3, random_state=0, progress=False)
    points = plan.learning_curve
    assert len(points) == 5 and np.all(points["std_error"] > 0)
    share = oracle_share(MetaRouter(random_state=0).fit(split.train).predict_gain(split.test_X), split.test_gold)
    # measured over seeds 5-9 (this test with make_semi_synthetic(1100, 11, seed) and
    # reveal_split(..., random_state=seed)): planner minus test share -0.15 to +0.08 (each about
    # +- 0.08 noise); the bound leaves 0.05 either side of that range
    assert -0.2 < plan.targets.loc["oracle_share", "current"] - share < 0.13
    row = plan.targets.loc["oracle_share"]
    assert row["lower"] <= row["upper"]
    with pytest.raises(DataError, match="name a target"):
        plan_gold(split.train)
    with pytest.raises(DataError, match="target_oracle_share"):
        plan_gold(split.train, target_oracle_share=1.5)


# ---------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def files(tmp_path_factory, small):
    folder = tmp_path_factory.mktemp("gold")
    _, split = small
    table = split.train.to_frame()
    table["qid"] = [f"q{i}" for i in range(len(table))]
    table.to_csv(folder / "data.csv", index=False)
    table.drop(columns=["gain", "source"]).to_csv(folder / "pool.csv", index=False)
    return folder


def test_suggest_gold_command_two_rounds(files, capsys):
    out, design = files / "to_label.csv", files / "design.csv"
    assert main(["suggest-gold", str(files / "data.csv"), "--budget", "25", "--strategy", "diverse",
                 "--query-id", "qid", "--out", str(out), "--design-out", str(design)]) == 0
    assert "suggested 25 of 1140" in capsys.readouterr().out
    chosen = pd.read_csv(out)
    assert list(chosen.columns) == ["row", "qid", "probability", "gold_probability", "score"] and len(chosen) == 25
    table = pd.read_csv(design)
    assert table["suggested"].sum() == 25 and table["qid"].iloc[chosen["row"]].tolist() == chosen["qid"].tolist()
    # the experts grade the suggested rows; the next round reads the carried probabilities
    table.loc[table["suggested"], "source"] = "gold"
    table.drop(columns="suggested").to_csv(files / "round2.csv", index=False)
    assert main(["suggest-gold", str(files / "round2.csv"), "--budget", "25", "--strategy", "random",
                 "--gold-probability", "gold_probability", "--out", str(files / "to_label2.csv")]) == 0
    second = pd.read_csv(files / "to_label2.csv")
    assert not set(second["row"]) & set(chosen["row"])
    assert np.all(second["gold_probability"] > table["gold_probability"].iloc[0])


def test_suggest_gold_command_default_on_a_plain_pool(files, capsys):
    out = files / "to_label_pool.csv"
    assert main(["suggest-gold", str(files / "pool.csv"), "--budget", "20", "--query-id", "qid", "--out", str(out)]) == 0
    assert "(strategy diverse;" in capsys.readouterr().out      # auto, with no labels to run decision on
    assert len(pd.read_csv(out)) == 20


def test_plan_gold_command(files, capsys):
    # the AIPW interval is 0.231 wide with these 60 gold rows; the law reaches 0.15 at 156 [104, 218] gold
    # labels (measured), while 0.10 is out of its reach (0.102 at half the rows gold)
    assert main(["plan-gold", str(files / "data.csv"), "--target-ci-width", "0.15", "--out", str(files / "plan")]) == 0
    assert "needs about" in capsys.readouterr().out
    assert (files / "plan" / "plan.png").stat().st_size > 10_000 and (files / "plan" / "plan.json").exists()


def test_suggest_gold_command_from_query_text(tmp_path, capsys):
    """PandaLM (the bundled copy): features from the query text and the model pair of a labelled file."""
    from causal_router.datasets import load_pandalm

    frame = load_pandalm().reset_index(drop=True)
    rng = np.random.default_rng(0)
    gold = np.zeros(len(frame), dtype=bool)
    gold[rng.choice(len(frame), 80, replace=False)] = True
    table = frame[["query_id", "query_text", "pair"]].assign(
        gain=np.where(gold, frame["gold_gain"], frame["pref_gain"]), source=np.where(gold, "gold", "preference"))
    table.to_csv(tmp_path / "pandalm.csv", index=False)
    out = tmp_path / "to_label.csv"
    assert main(["suggest-gold", str(tmp_path / "pandalm.csv"), "--text", "query_text", "--pair", "pair",
                 "--query-id", "query_id", "--budget", "20", "--strategy", "diverse", "--out", str(out)]) == 0
    chosen = pd.read_csv(out)
    assert len(chosen) == 20 and not gold[chosen["row"]].any()
    assert chosen["query_id"].tolist() == table["query_id"].iloc[chosen["row"]].tolist()


@pytest.mark.parametrize("argv,message", [
    (["suggest-gold", "{pool}", "--budget", "10", "--strategy", "uncertainty"], "needs labelled rows"),
    (["suggest-gold", "{data}", "--budget", "5000"], "more than 90%"),
    (["suggest-gold", "{data}", "--budget", "10", "--gold-probability", "nope"], "missing column(s) ['nope']"),
    (["plan-gold", "{data}"], "give a target"),
    (["plan-gold", "{data}", "--target-ci-width", "-1"], "argument --target-ci-width: must be a finite number > 0"),
])
def test_bad_input_gives_one_line_and_exit_code_2(files, capsys, argv, message):
    argv = [a.format(pool=files / "pool.csv", data=files / "data.csv") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("causal-router: error:") and message.lower() in err.lower()
    assert len(err.strip().splitlines()) == 1
