"""EvalData construction, scale normalisation and every input error."""

import numpy as np
import pandas as pd
import pytest

from causal_router import BiasEstimator, EvalData, MetaRouter
from causal_router._validation import DataError
from causal_router.baselines import GoldOnly, Pooled, PreferenceOnly
from causal_router.bias import OverlapError
from causal_router.data import scale_constant


def test_from_frame_roundtrip_and_no_mutation(small_frame):
    before = small_frame.copy(deep=True)
    data = EvalData.from_frame(small_frame, ["a", "b", "c"], gain="gain", source="source", query_id="qid")
    pd.testing.assert_frame_equal(small_frame, before)
    assert data.X.shape == (400, 3)
    assert data.n_gold == 80 and data.n_preference == 320
    assert data.feature_names == ["a", "b", "c"]
    assert list(data.treatment[:5]) == [1, 0, 0, 0, 0]
    # the user's arrays are copied, not referenced
    data.X[0, 0] = 99.0
    assert small_frame.loc[0, "a"] != 99.0


def test_source_accepts_booleans_and_01():
    X = np.zeros((4, 1))
    a = EvalData(X, [1, 2, 3, 4], [True, False, True, False])
    b = EvalData(X, [1, 2, 3, 4], [1, 0, 1, 0])
    c = EvalData(X, [1, 2, 3, 4], ["gold", "preference", "gold", "preference"])
    assert (a.is_gold == b.is_gold).all() and (b.is_gold == c.is_gold).all()


@pytest.mark.parametrize("method,expected", [("variance", 2.0), ("amplitude", 2.0), ("wasserstein", 2.0), (None, 1.0)])
def test_scale_constant_recovers_a_known_scale(method, expected):
    g = np.linspace(-1, 1, 101)
    assert scale_constant(g, 2 * g[::-1], method) == pytest.approx(expected, rel=1e-6)


def test_scale_constant_orders_methods_sensibly():
    """A judge whose gains are the gold gains times 3, but for ten wild votes of +-40 (1 in 300):
    the peak-to-peak amplitude is set by the wild votes alone, the variance partly, and the
    Wasserstein fit, over the 0.25th to 99.75th percentiles, not at all."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal(2000)
    p = 3 * rng.standard_normal(3000)
    assert scale_constant(g, p, "variance") == pytest.approx(3, rel=0.05)
    assert scale_constant(g, p, "wasserstein") == pytest.approx(3, rel=0.05)
    p[:10] = np.r_[[40.0] * 5, [-40.0] * 5]
    c = {m: scale_constant(g, p, m) for m in ("amplitude", "variance", "wasserstein")}
    # measured with np.random.default_rng(0) .. (4): amplitude 10.8-12.9, variance 3.75-3.85,
    # wasserstein 3.02-3.13
    assert c["amplitude"] > 2 * c["variance"] and c["variance"] > 1.15 * c["wasserstein"], c
    assert c["wasserstein"] == pytest.approx(3, rel=0.05)


def test_one_source_is_valid_data_but_refused_by_bias_and_router():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2))
    y = X[:, 0] + 0.1 * rng.standard_normal(50)  # not X[:, 0] itself: a feature equal to the label is refused
    gold = EvalData(X, y, np.ones(50, dtype=bool))
    assert GoldOnly().fit(gold).scale_ == 1.0
    with pytest.raises(DataError, match="preference rows"):
        BiasEstimator().fit(gold)
    with pytest.raises(DataError, match="preference rows"):
        MetaRouter().fit(gold)
    pref = EvalData(X, y, np.zeros(50, dtype=bool))
    PreferenceOnly().fit(pref)
    with pytest.raises(DataError, match="no row with source 'gold'"):
        BiasEstimator().fit(pref)
    with pytest.raises(DataError, match="no row with source 'gold'"):
        GoldOnly().fit(pref)


# ------------------------------------------------------------------ every input error
def test_missing_columns(small_frame):
    with pytest.raises(DataError, match=r"missing column\(s\) \['zz'\]"):
        EvalData.from_frame(small_frame, ["a", "zz"], gain="gain", source="source")
    with pytest.raises(DataError, match="missing column"):
        EvalData.from_frame(small_frame, ["a"], gain="nope", source="source")


def test_nan_and_infinite_values_name_the_column(small_frame):
    bad = small_frame.copy()
    bad.loc[3, "b"] = np.nan
    with pytest.raises(DataError, match="NaN.*'b'"):
        EvalData.from_frame(bad, ["a", "b"], gain="gain", source="source")
    bad = small_frame.copy()
    bad.loc[3, "gain"] = np.inf
    with pytest.raises(DataError, match="'gain'.*infinite"):
        EvalData.from_frame(bad, ["a", "b"], gain="gain", source="source")
    with pytest.raises(DataError, match="gain contains 1 infinite"):
        EvalData(np.zeros((3, 1)), [0.0, np.inf, 1.0], [True, False, False])


def test_unknown_source_labels(small_frame):
    bad = small_frame.copy()
    bad.loc[0, "source"] = "gpt4"
    with pytest.raises(DataError, match=r"unknown source labels \['gpt4'\]"):
        EvalData.from_frame(bad, ["a"], gain="gain", source="source")
    with pytest.raises(DataError, match="unknown labels"):
        EvalData(np.zeros((2, 1)), [0, 1], ["gold", "judge"])
    with pytest.raises(DataError, match="unknown labels"):
        EvalData(np.zeros((2, 1)), [0, 1], [0, 2])


def test_custom_source_values(small_frame):
    frame = small_frame.assign(source=small_frame["source"].map({"gold": "human", "preference": "gpt4"}))
    data = EvalData.from_frame(frame, ["a"], gain="gain", source="source", gold_value="human",
                               preference_value="gpt4")
    assert data.n_gold == 80


def test_mismatched_lengths():
    with pytest.raises(DataError, match="mismatched lengths: X=3, gain=2"):
        EvalData(np.zeros((3, 1)), [0.0, 1.0], [True, False, True])
    with pytest.raises(DataError, match="mismatched lengths"):
        EvalData(np.zeros((2, 1)), [0.0, 1.0], [True, False], query_id=["a"])


def test_non_numeric_features(small_frame):
    with pytest.raises(DataError, match="not numeric"):
        EvalData.from_frame(small_frame, ["a", "qid"], gain="gain", source="source")


def test_bad_scale_argument(small_frame):
    data = EvalData.from_frame(small_frame, ["a"], gain="gain", source="source")
    with pytest.raises(DataError, match="scale must be one of"):
        MetaRouter(scale="std").fit(data)


def test_constant_gains_cannot_be_scaled():
    X = np.zeros((4, 1))
    with pytest.raises(DataError, match="scale constant"):
        Pooled().fit(EvalData(X, [1.0, 1.0, 0.0, 2.0], [True, True, False, False]))


def test_too_few_rows_for_cross_fitting(small_frame):
    frame = small_frame.copy()
    frame.loc[frame.index[frame.source.eq("gold")][6:], "source"] = "preference"
    data = EvalData.from_frame(frame, ["a", "b"], gain="gain", source="source")
    with pytest.raises(DataError, match="too few gold rows for cross-fitting: cv=5 folds need at least 10"):
        BiasEstimator(cv=5).fit(data)


def test_no_overlap_between_gold_and_preference_queries():
    rng = np.random.default_rng(0)
    n = 600
    gold = np.arange(n) < 100
    X = rng.standard_normal((n, 3))
    X[gold, 0] += 8.0  # gold queries live far from the preference queries
    data = EvalData(X, X[:, 1] + rng.standard_normal(n), gold)
    with pytest.raises(OverlapError, match="no overlap between the gold and preference"):
        BiasEstimator("r", random_state=0).fit(data)
    assert issubclass(OverlapError, ValueError)


def test_bad_estimator_parameters(split):
    with pytest.raises(ValueError, match="learner must be one of"):
        BiasEstimator("tlearner").fit(split.train)
    with pytest.raises(ValueError, match="cv must be"):
        BiasEstimator(cv=1).fit(split.train)
    with pytest.raises(ValueError, match="preference_weight"):
        MetaRouter(preference_weight=-1).fit(split.train)
    with pytest.raises(DataError, match=r"y \(the observed gains\) is required"):
        MetaRouter().fit(split.train.X)
    with pytest.raises(DataError, match="either an EvalData or X, y and source"):
        MetaRouter().fit(split.train, split.train.gain)
