"""Queries as the unit of real data (issue 23): splits that hold out whole queries, cross-fitting
that keeps a query's rows in one fold at every fold-based step, averages clustered by query, the
kNN baseline, and nothing changed where every row is its own query."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.model_selection import _split as sk_split

import causal_router.bias as bias_module
from causal_router import BiasEstimator, EvalData, MetaRouter
from causal_router._validation import DataError
from causal_router.baselines import GoldOnly, KNNRouter, MeanShift
from causal_router.clusters import FewClustersWarning, cluster_std_error, clustered_mean
from causal_router.data import query_codes
from causal_router.datasets import make_repeated_queries, make_semi_synthetic, reveal_split
from causal_router.evaluate import oracle_share
from causal_router.experiment import METHODS, run_experiment


@pytest.fixture(scope="module")
def repeated():
    """90 queries of 8 rows with a query-level gain offset and judge bias."""
    return make_repeated_queries(90, 8, d=5, random_state=3)


# ---------------------------------------------------------------------------- the split
def test_reveal_split_holds_out_whole_queries_by_default(repeated):
    split = reveal_split(repeated, n_gold=60, n_test=15, random_state=0)
    assert split.by == "query"
    test_q = set(repeated["query_id"].iloc[split.test_index])
    train_q = set(repeated["query_id"].iloc[split.train_index])
    assert len(test_q) == 15 and not test_q & train_q
    assert len(split.test_gold) == 15 * 8  # every row of a test query is held out
    assert len(split.train_index) + len(split.test_index) == len(repeated)
    assert split.train.n_gold == 60 and split.oracle.n_gold == len(split.train) == len(split.oracle)
    # the query ids travel with the training rows, so that estimators cross-fit by query
    np.testing.assert_array_equal(split.train.query_id, repeated["query_id"].to_numpy()[split.train_index])
    np.testing.assert_array_equal(split.oracle.query_id, split.train.query_id)
    # by="row" holds out rows: its test rows share queries with the training rows
    rows = reveal_split(repeated, n_gold=60, n_test=120, by="row", random_state=0)
    assert rows.by == "row" and len(rows.test_gold) == 120
    assert set(repeated["query_id"].iloc[rows.test_index]) & set(repeated["query_id"].iloc[rows.train_index])


def test_gold_rows_are_a_uniform_draw_of_training_rows(repeated):
    """n_gold counts rows drawn uniformly among the training rows (a constant design propensity):
    over 400 draws, a row that is a training row T times is gold Binomial(T, 40/640) times (chi-square
    test over the 720 rows: measured p = 0.31), and the gold rows of a draw spread over 32.5 (measured)
    of the 80 training queries on average (whole-query draws would cover 5)."""
    from scipy import stats

    hits, trained, spread = np.zeros(len(repeated)), np.zeros(len(repeated)), []
    for seed in range(400):
        split = reveal_split(repeated, n_gold=40, n_test=10, random_state=seed)
        trained[split.train_index] += 1
        hits[split.train_index[split.train.is_gold]] += 1
        spread.append(len(np.unique(split.train.query_id[split.train.is_gold])))
    p = 40 / 640
    chi2 = np.sum((hits - trained * p) ** 2 / (trained * p * (1 - p)))
    assert stats.chi2.sf(chi2, len(repeated)) > 0.001
    assert 28 < np.mean(spread) < 36


def test_by_query_equals_by_row_on_the_generator():
    """The generator has one row per query: the query split is the row split, bit for bit."""
    frame = make_semi_synthetic(600, 12, random_state=2)
    a = reveal_split(frame, n_gold=50, n_test=100, by="query", random_state=4)
    b = reveal_split(frame, n_gold=50, n_test=100, by="row", random_state=4)
    assert reveal_split(frame, n_gold=50, n_test=100, random_state=4).by == "row"  # no repeated ids: rows
    np.testing.assert_array_equal(a.train_index, b.train_index)
    np.testing.assert_array_equal(a.test_index, b.test_index)
    np.testing.assert_array_equal(a.train.is_gold, b.train.is_gold)
    np.testing.assert_array_equal(a.train.gain, b.train.gain)


def test_reveal_split_errors(repeated):
    frame = repeated.drop(columns="query_id")
    with pytest.raises(DataError, match="query column 'query_id'"):
        reveal_split(frame, by="query", n_gold=10, n_test=5)
    with pytest.raises(DataError, match="by must be"):
        reveal_split(repeated, by="queries", n_gold=10, n_test=5)
    with pytest.raises(DataError, match="test queries"):
        reveal_split(repeated, n_gold=10, n_test=90)
    with pytest.raises(DataError, match="n_gold=700"):
        reveal_split(repeated, n_gold=700, n_test=5)


def test_a_row_split_inflates_all_golden_and_the_query_split_does_not():
    """Protocol, over 12 seeds of a generator whose queries carry 8 rows and a gain offset the
    features do not show: the All-Golden oracle (GoldOnly on every training row's gold label)
    scored on its own test set against the same model scored on 1,200 rows of 150 fresh queries.
    Measured (seeds 0-11): row split 0.784 on its test rows against 0.416 on fresh queries; query
    split 0.412 against 0.414; row minus query split 0.371 (smallest seed 0.254)."""
    own, fresh = {"row": [], "query": []}, {"row": [], "query": []}
    for seed in range(12):
        frame = make_repeated_queries(150, 8, d=5, random_state=seed)
        new = make_repeated_queries(150, 8, d=5, random_state=10_000 + seed)
        features = [c for c in frame.columns if c.startswith("x")]
        for by, n_test in (("row", 240), ("query", 30)):
            split = reveal_split(frame, n_gold=100, n_test=n_test, by=by, random_state=seed)
            oracle = GoldOnly(random_state=seed).fit(split.oracle)
            own[by].append(oracle_share(oracle.predict_gain(split.test_X), split.test_gold))
            fresh[by].append(oracle_share(oracle.predict_gain(new[features].to_numpy()), new["gold_gain"].to_numpy()))
    own = {k: np.array(v) for k, v in own.items()}
    fresh = {k: np.array(v) for k, v in fresh.items()}
    assert own["row"].mean() - own["query"].mean() > 0.2
    assert own["row"].mean() - fresh["row"].mean() > 0.2  # the row split's figure is not what a user gets
    gap = own["query"] - fresh["query"]  # measured mean -0.002, sd 0.08 over the seeds
    assert abs(gap.mean()) < 0.07


# ---------------------------------------------------------------------------- nothing changes without queries
#: Numbers of the code before queries were known (main at c728938), on
#: reveal_split(make_semi_synthetic(800, 12, random_state=1), n_gold=80, n_test=100, random_state=2):
#: the split and MeanShift. The bias learners' own numbers changed with issue 24's evidence rule
#: (the default stack); for them the test asserts that unique query ids and no ids at all give the
#: same numbers to the last bit.
BEFORE = {
    "train_index_head": [1, 2, 3, 5, 6, 8, 9, 10], "test_index_head": [0, 4, 7, 23, 38, 45, 47, 54],
    "gold_rows": [2, 16, 28, 41, 54, 62, 70, 81],
    "mean_shift": [0.28283726196728937, 0.2524651416100229, 0.7535575306961386],
}


def _numbers(data, X) -> dict:
    out = {}
    for learner in ("r", "auto", "dr"):
        est = BiasEstimator(learner, random_state=0).fit(data)
        ate = est.ate()
        out[learner] = (est.effect(X).tolist(), [ate[k] for k in ("estimate", "std_error", "lower", "upper")],
                        int(ate["n_clusters"]))
    out["meta"] = MetaRouter(random_state=0).fit(data).predict_gain(X).tolist()
    out["mean_shift"] = MeanShift(random_state=0).fit(data).predict_gain(X).tolist()
    return out


def test_without_repeated_queries_every_number_is_unchanged():
    split = reveal_split(make_semi_synthetic(800, 12, random_state=1), n_gold=80, n_test=100, random_state=2)
    data = split.train
    assert data.query_id is not None and len(np.unique(data.query_id)) == len(data)  # unique ids
    bare = EvalData(data.X, data.gain, data.is_gold, feature_names=data.feature_names)  # no ids
    assert split.train_index[:8].tolist() == BEFORE["train_index_head"]
    assert split.test_index[:8].tolist() == BEFORE["test_index_head"]
    assert np.flatnonzero(data.is_gold)[:8].tolist() == BEFORE["gold_rows"]
    X = split.test_X[:3]
    with_ids, without = _numbers(data, X), _numbers(bare, X)
    assert with_ids == without
    assert without["mean_shift"] == BEFORE["mean_shift"]
    assert all(without[learner][2] == len(data) for learner in ("r", "auto", "dr"))  # rows are the clusters


# ---------------------------------------------------------------------------- folds
def _query_of(X) -> np.ndarray:
    """The query of each row of a matrix handed to a splitter: the one entry >= 500 (x0 = 1000 + query)."""
    X = np.asarray(X, dtype=float)
    marked = np.where(X >= 500, X, -np.inf).max(axis=1)
    assert np.all(np.isfinite(marked)), "a splitter got rows without their query's marker"
    return np.rint(marked - 1000).astype(int)


def _callers() -> set:
    names, frame = set(), sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(("causal_router", "econml", "dowhy", "sklearn.linear_model")):
            names.add(f"{module}:{frame.f_code.co_qualname}")
        frame = frame.f_back
    return names


@pytest.fixture()
def recorded_folds(monkeypatch):
    """Every split made by a scikit-learn splitter, and every set of folds the bias module hands to
    its out-of-fold fits, with the rows they split and their callers."""
    calls = []

    def wrap(original):
        def split(self, X, y=None, groups=None):
            folds = list(original(self, X, y, groups))
            calls.append({"splitter": type(self).__name__, "callers": _callers(), "folds": folds, "X": np.asarray(X)})
            yield from folds
        return split

    def given(original):  # folds drawn once and handed on (the auto selection reuses fit's)
        def out_of_fold_predictions(names, X, y, weight, folds, seed, **kwargs):
            folds = list(folds)
            calls.append({"splitter": "folds handed on", "callers": _callers(), "folds": folds, "X": np.asarray(X)})
            return original(names, X, y, weight, folds, seed, **kwargs)
        return out_of_fold_predictions

    monkeypatch.setattr(sk_split.BaseCrossValidator, "split", wrap(sk_split.BaseCrossValidator.split))
    monkeypatch.setattr(sk_split.BaseShuffleSplit, "split", wrap(sk_split.BaseShuffleSplit.split))
    monkeypatch.setattr(bias_module, "out_of_fold_predictions", given(bias_module.out_of_fold_predictions))
    return calls


@pytest.fixture(scope="module")
def marked():
    """36 queries of 5 rows, 60 gold rows; feature x0 = 1000 + query index marks each row's query."""
    frame = make_repeated_queries(36, 5, d=4, random_state=5)
    q = query_codes(frame["query_id"])
    frame["x0"] = 1000.0 + q
    rng = np.random.default_rng(0)
    gold = np.zeros(len(frame), dtype=bool)
    gold[rng.choice(len(frame), 60, replace=False)] = True
    features = [c for c in frame.columns if c.startswith("x")]
    return EvalData(frame[features], np.where(gold, frame["gold_gain"], frame["pref_gain"]), gold,
                    query_id=frame["query_id"])


STEPS = {
    "econml's nuisance folds": "econml._ortho_learner:_OrthoLearner._fit_nuisances",
    "ate()'s outcome-model folds": "causal_router.bias:BiasEstimator.fit",
    "the stacked final stage": "causal_router.models:StackedFinalStage.fit",
    "learner='auto''s selection": "causal_router.bias:_select_final_stage",
    "inference='bootstrap' refits": "causal_router.bias:BiasEstimator._bootstrap_refits",
    "the refutations' refits": "causal_router.validate._refuters:_one_simulation",
    "diagnostics: held-out split": "causal_router.validate.diagnostics:_split",
    "diagnostics: two-sample classifier": "causal_router.validate.diagnostics:_overlap",
    "diagnostics: DRTester's folds": "causal_router.validate._heldout:heldout_numbers",
    "active: bias uncertainty": "causal_router.active.scores:bias_uncertainty",
    "active: learning curve": "causal_router.active.plan:_share_plan",
    "kNN's choice of k": "causal_router.baselines:KNNRouter._cv_errors",
}


def test_no_query_has_rows_on_both_sides_of_any_fold(marked, recorded_folds, monkeypatch):
    """Every fold of every fold-based step on data whose queries repeat keeps each query's rows on
    one side. Each splitter call is read back (the queries of its rows from the marker feature) and
    its callers named, so that a step that stopped splitting, or split by rows, fails the test.
    Left out by design: the propensity's penalty search (LogisticRegressionCV's own 3 folds inside
    the default propensity model), an inner model selection that sees rows only."""
    from causal_router.active import plan_gold, suggest_gold
    from causal_router.validate import diagnose, refute

    import importlib

    plan_module = importlib.import_module("causal_router.active.plan")
    refute_module = importlib.import_module("causal_router.validate.refute")  # the package exports a function refute

    # fewer refits of the same steps: 3 bootstrap refits, one confounder strength, two curve sizes
    monkeypatch.setattr(bias_module, "N_BOOTSTRAP", 3)
    monkeypatch.setattr(refute_module, "DEFAULT_STRENGTHS", (0.25,))
    monkeypatch.setattr(refute_module, "DEFAULT_DRAWS", 1)
    monkeypatch.setattr(plan_module, "CURVE_FRACTIONS", (0.5, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # econml's uplift bands on tiny held-out parts
        router = MetaRouter(BiasEstimator(cv=3), random_state=0).fit(marked)  # econml, ate(), the stack
        BiasEstimator("auto", inference="bootstrap", cv=3, random_state=0).fit(marked)
        diagnostics = diagnose(marked, BiasEstimator(model_final="linear", cv=3), random_state=0, progress=False)
        refute(marked, BiasEstimator(cv=3), random_state=0, progress=False, n_simulations=2)
        suggest_gold(router, marked, 10, strategy="uncertainty", random_state=0)
        plan_gold(marked, target_oracle_share=0.5, router=router, n_folds=3, random_state=0, progress=False)
        KNNRouter(random_state=0).fit(marked)
    checked, seen = 0, set()
    for call in recorded_folds:
        if any("LogisticRegressionCV" in c for c in call["callers"]):
            continue
        queries = _query_of(call["X"])
        for train, test in call["folds"]:
            straddle = set(queries[train]) & set(queries[test])
            assert not straddle, f"{call['splitter']} from {sorted(call['callers'])[:3]}: queries {sorted(straddle)[:5]}"
        checked += 1
        seen |= call["callers"]
    # the averages report the queries they are clustered over, next to the overlap figures
    assert diagnostics.numbers["overlap"]["n_clusters"] == 36 and diagnostics.numbers["bias"]["n_clusters"] == 36
    assert "clustered over 36 queries" in diagnostics.summary()
    missing = [step for step, marker in STEPS.items() if not any(c.startswith(marker) for c in seen)]
    assert not missing, f"steps whose folds were never seen: {missing}"
    assert checked > 20


def test_the_bootstrap_resamples_whole_queries(marked, recorded_folds, monkeypatch):
    """Every refit of inference='bootstrap' sees each drawn query with all its rows, as often as it
    was drawn: per query, a multiple of its row count."""
    monkeypatch.setattr(bias_module, "N_BOOTSTRAP", 4)
    BiasEstimator("dr", inference="bootstrap", cv=3, random_state=1).fit(marked)
    refits = [c for c in recorded_folds if any("_bootstrap_refits" in x for x in c["callers"])
              and not any("LogisticRegressionCV" in x for x in c["callers"])]
    assert len(refits) >= 4
    sizes = np.bincount(query_codes(marked.query_id))
    for call in refits:
        counts = pd.Series(_query_of(call["X"])).value_counts()
        assert all(n % sizes[q] == 0 for q, n in counts.items())
        assert counts.max() > sizes[counts.idxmax()]  # some query drawn twice: a resample, not the data


# ---------------------------------------------------------------------------- intervals
def test_cluster_standard_error_formula():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=60)
    groups = np.repeat(np.arange(12), 5)
    totals = np.bincount(groups, weights=phi - phi.mean())
    expected = np.sqrt(12 / 11 * np.sum(totals ** 2)) / 60
    assert cluster_std_error(phi, groups) == pytest.approx(expected)
    # one value per cluster: the plain formula, bit for bit
    assert cluster_std_error(phi, np.arange(60)) == np.std(phi, ddof=1) / np.sqrt(60)
    assert cluster_std_error(phi) == np.std(phi, ddof=1) / np.sqrt(60)


def test_few_clusters_use_a_seeded_cluster_bootstrap():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(12), 5)
    phi = rng.normal(size=12)[groups] + rng.normal(size=60)
    with pytest.warns(FewClustersWarning, match="12 queries"):
        a = clustered_mean(phi, groups, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = clustered_mean(phi, groups, random_state=3, warn=False)
        many = clustered_mean(phi, np.repeat(np.arange(30), 2), random_state=3)  # 30 queries: normal interval
    pd.testing.assert_series_equal(a, b)
    assert a["n_clusters"] == 12 and a["lower"] < a["estimate"] < a["upper"]
    z = 1.959963984540054
    assert a["upper"] - a["lower"] != pytest.approx(2 * z * a["std_error"], rel=1e-3)  # not the normal interval
    assert many["upper"] - many["estimate"] == pytest.approx(z * many["std_error"])


def test_ate_reports_clusters_and_warns_below_thirty(repeated):
    small = repeated[repeated["query_id"].isin(repeated["query_id"].unique()[:20])]
    split = reveal_split(small, n_gold=50, n_test=2, random_state=0)
    est = BiasEstimator(random_state=0, cv=3).fit(split.train)
    with pytest.warns(FewClustersWarning, match="18 queries"):
        ate = est.ate()
    assert ate["n_clusters"] == 18


def test_clustered_standard_error_exceeds_the_row_one_where_the_bias_varies_by_query():
    """The issue's generator (60 queries x 30 rows, judge bias varying by query around 0.3, 10%
    gold rows), seed 0: rows as units understate the standard error. Measured (``python
    benchmarks/query_coverage.py --settings generator --draws 100``, seeds 0-99): clustered over
    rows-as-units standard error 1.92 on average, 1.50 at the smallest, 1.69 on seed 0; asserted
    at least 1.3 here. The slow test below checks the coverage itself."""
    frame = make_repeated_queries(60, 30, random_state=0)
    rng = np.random.default_rng(0)
    gold = np.zeros(len(frame), dtype=bool)
    gold[rng.choice(len(frame), 180, replace=False)] = True
    X = frame[[c for c in frame.columns if c.startswith("x")]]
    gain = np.where(gold, frame["gold_gain"], frame["pref_gain"])
    rows = BiasEstimator(scale=None, random_state=0).fit(EvalData(X, gain, gold)).ate()
    clustered = BiasEstimator(scale=None, random_state=0).fit(EvalData(X, gain, gold, query_id=frame["query_id"])).ate()
    assert clustered["n_clusters"] == 60 and rows["n_clusters"] == len(frame)
    assert clustered["std_error"] > 1.3 * rows["std_error"]


# ---------------------------------------------------------------------------- groups= and metadata routing
def test_groups_reach_fit_and_must_agree(repeated):
    split = reveal_split(repeated, n_gold=80, n_test=10, random_state=0)
    data = split.train
    plain = EvalData(data.X, data.gain, data.is_gold, feature_names=data.feature_names)
    a = BiasEstimator(random_state=0).fit(plain, groups=data.query_id)
    b = BiasEstimator(random_state=0).fit(data)
    c = BiasEstimator(random_state=0).fit(data.X, data.gain, source=data.is_gold, groups=data.query_id)
    assert a.ate().equals(b.ate()) and b.ate().equals(c.ate())
    renamed = np.array([f"other-{q}" for q in data.query_id])  # the same partition under other labels
    assert BiasEstimator(random_state=0).fit(data, groups=renamed).ate().equals(b.ate())
    with pytest.raises(DataError, match="disagree"):
        BiasEstimator(random_state=0).fit(data, groups=np.roll(data.query_id, 1))
    three = np.isin(data.query_id, np.unique(data.query_id)[:3])  # 24 gold rows on 3 queries: 5 folds impossible
    with pytest.raises(DataError, match="too few queries with gold rows"):
        BiasEstimator(random_state=0).fit(EvalData(data.X, data.gain, three, query_id=data.query_id))
    router = MetaRouter(random_state=0).fit(data.X, data.gain, source=data.is_gold, groups=data.query_id)
    assert router.bias_.query_groups_ is not None and router.bias_.ate()["n_clusters"] == 80


def test_grid_search_routes_groups_through_metadata(repeated):
    """GridSearchCV over a real two-value grid, folds by query (GroupKFold), groups routed to the
    splitter and to every fit: each fitted bias model saw the query ids."""
    split = reveal_split(make_repeated_queries(45, 6, d=4, random_state=2), n_gold=80, n_test=5, random_state=1)
    data = split.train
    X, y, source, groups = data.X, data.gain, data.is_gold, data.query_id
    seen = []

    class Recording(MetaRouter):
        def fit(self, X, y=None, *, source=None, groups=None):
            seen.append(None if groups is None else len(np.unique(groups)))
            return super().fit(X, y, source=source, groups=groups)

    with sklearn.config_context(enable_metadata_routing=True):
        router = Recording(BiasEstimator(cv=3), random_state=0).set_fit_request(source=True, groups=True)
        router = router.set_score_request(source=True)
        search = GridSearchCV(router, {"preference_weight": [0.25, 1.0]}, cv=GroupKFold(3)).fit(
            X, y, source=source, groups=groups)
    assert len(search.cv_results_["mean_test_score"]) == 2 and np.isfinite(search.best_score_)
    assert len(seen) == 2 * 3 + 1 and all(n is not None for n in seen)
    assert seen[-1] == 40  # the refit on all rows saw every training query
    assert search.best_estimator_.bias_.query_groups_ is not None


# ---------------------------------------------------------------------------- the kNN baseline
def test_knn_router_chooses_k_by_query_folds_and_routes(repeated):
    split = reveal_split(repeated, n_gold=150, n_test=20, random_state=0)
    knn = KNNRouter(random_state=0).fit(split.train)
    assert knn.n_neighbors_ == int(knn.cv_error_.idxmin()) and knn.n_neighbors_ in (5, 10, 20, 50, 100, 200)
    gain = knn.predict_gain(split.test_X)
    assert gain.shape == (len(split.test_gold),)
    # the prediction is the mean pooled label of the k nearest training rows on standardised features
    Z = (split.train.X - split.train.X.mean(0)) / split.train.X.std(0)
    z = (split.test_X[:1] - split.train.X.mean(0)) / split.train.X.std(0)
    nearest = np.argsort(((Z - z) ** 2).sum(1), kind="stable")[: knn.n_neighbors_]
    labels = np.where(split.train.is_gold, split.train.gain * knn.scale_, split.train.gain)
    assert gain[0] == pytest.approx(labels[nearest].mean() / knn.scale_)
    assert KNNRouter(n_neighbors=7).fit(split.train).n_neighbors_ == 7
    with pytest.raises(DataError, match="n_neighbors"):
        KNNRouter(n_neighbors=0).fit(split.train)
    assert "knn" in METHODS


def test_knn_router_saves_to_a_router_file_and_loads_back(repeated, tmp_path):
    """KNNRouter is in the one registry of router classes (io.ROUTER_CLASSES): its router file (the
    standardiser and the brute-force neighbour search as a skops member, no tree to trust) loads back
    as a KNNRouter that predicts exactly as the saved one, with its parameters and its k."""
    from sklearn.base import clone

    from causal_router.io import ROUTER_CLASSES, load_router
    from causal_router.router import BaseRouter

    assert ROUTER_CLASSES["KNNRouter"] == ("causal_router.baselines", "two-model")
    split = reveal_split(repeated, n_gold=150, n_test=20, random_state=0)
    frame = split.train.to_frame()
    names = split.train.feature_names
    knn = KNNRouter(k_grid=(5, 20, 50), random_state=0).fit(frame[names], frame["gain"], source=frame["source"],
                                                           groups=split.train.query_id)
    path = knn.save(tmp_path / "knn.cr")
    loaded = BaseRouter.load(path)
    assert type(loaded) is KNNRouter and type(load_router(path)) is KNNRouter
    assert loaded.get_params()["k_grid"] == (5, 20, 50) and loaded.n_neighbors_ == knn.n_neighbors_
    test = pd.DataFrame(split.test_X, columns=names)
    np.testing.assert_array_equal(loaded.predict_gain(test), knn.predict_gain(test))
    np.testing.assert_array_equal(loaded.route(test, cost_weight=0.1), knn.route(test, cost_weight=0.1))
    assert clone(loaded).fit(frame[names], frame["gain"], source=frame["source"],
                             groups=split.train.query_id).n_neighbors_ == knn.n_neighbors_
    with pytest.raises(DataError, match="n_neighbors"):
        KNNRouter(n_neighbors=2.5).fit(split.train)


def test_knn_beats_random_on_the_generator():
    """Measured (generator n = 5000, d = 50, 100 gold rows, seed 0): kNN's oracle share 0.39,
    k = 50 chosen; Pooled 0.52 on the same split. Asserted: clearly above random (0)."""
    frame = make_semi_synthetic(3000, 20, random_state=0)
    split = reveal_split(frame, n_gold=100, n_test=500, random_state=0)
    knn = KNNRouter(random_state=0).fit(split.train)
    assert oracle_share(knn.predict_gain(split.test_X), split.test_gold) > 0.2


def test_experiment_splits_by_query_and_records_it(repeated):
    result = run_experiment(repeated, methods=["pooled", "knn", "all_golden"], n_runs=2, n_gold=60, n_test=15,
                            progress=False, random_state=0)
    assert set(result.runs["split_by"]) == {"query"}
    rows = run_experiment(repeated, methods=["pooled"], n_runs=1, n_gold=60, n_test=100, split_by="row",
                          progress=False, random_state=0)
    assert set(rows.runs["split_by"]) == {"row"}
    with pytest.raises(DataError, match="split_by"):
        run_experiment(repeated, methods=["pooled"], n_runs=1, split_by="queries", progress=False)


@pytest.mark.slow
def test_ate_covers_the_population_average_bias_with_query_ids():
    """The issue's generator: 60 queries x 30 rows, the judge's bias varying by query around a
    population mean of 0.3 (the truth: ``scale=None``, judge and gold on one scale), 180 gold rows
    (10%) drawn uniformly, every row a training row. Measured with ``python
    benchmarks/query_coverage.py --settings generator --draws 100 --n-jobs 2`` (the same frames,
    draws and fits): with query ids the 95% interval covers 0.3 in 0.94 of seeds 0-99 and 39 of the
    40 seeds 0-39 used here (mean standard error 0.068 against an sd of the estimates of 0.068);
    without them (rows as units) in 0.76 of seeds 0-99 and 31 of 40 here, the issue's 0.775.
    Asserted on seeds 0-39: at least 0.90 with query ids, at most 0.85 without (the control)."""
    covered = {"clustered": [], "rows": []}
    for seed in range(40):
        frame = make_repeated_queries(60, 30, random_state=seed)
        rng = np.random.default_rng(seed)
        gold = np.zeros(len(frame), dtype=bool)
        gold[rng.choice(len(frame), 180, replace=False)] = True
        X = frame[[c for c in frame.columns if c.startswith("x")]].to_numpy()
        gain = np.where(gold, frame["gold_gain"], frame["pref_gain"])
        for name, ids in (("clustered", frame["query_id"].to_numpy()), ("rows", None)):
            ate = BiasEstimator(scale=None, random_state=seed).fit(EvalData(X, gain, gold, query_id=ids)).ate()
            covered[name].append(ate["lower"] <= 0.3 <= ate["upper"])
    assert np.mean(covered["clustered"]) >= 0.90
    assert np.mean(covered["rows"]) <= 0.85


def test_cli_experiment_splits_real_data_by_query(tmp_path, monkeypatch, capsys):
    """`experiment --dataset prd` holds out whole questions by default (a fifth of the 80: 16 test
    queries, 160 rows); `--split-by row` holds out rows (a fifth of the 800)."""
    from causal_router.cli import main

    monkeypatch.delenv("CAUSAL_ROUTER_DATA", raising=False)
    base = ["experiment", "--dataset", "prd", "--runs", "1", "--methods", "pooled,knn", "--n-gold", "60",
            "--text-components", "10"]
    assert main([*base, "--out", str(tmp_path / "q")]) == 0
    assert "holds out 16 test queries" in capsys.readouterr().out
    assert set(pd.read_csv(tmp_path / "q" / "runs.csv")["split_by"]) == {"query"}
    assert main([*base, "--split-by", "row", "--out", str(tmp_path / "r")]) == 0
    assert "holds out 160 test rows" in capsys.readouterr().out


def test_knn_router_passes_scikit_learn_checks():
    from sklearn.utils import estimator_checks as checks

    failed = [r for r in checks.check_estimator(KNNRouter(), on_fail=None) if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:200]) for r in failed]
