"""Routers fitted from text: the featurizer kept, applied at route time, saved in the safe router file."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import make_text_frame
from sklearn.pipeline import make_pipeline

from causal_router import MetaRouter
from causal_router._validation import DataError
from causal_router.baselines import Pooled
from causal_router.bias import BiasEstimator
from causal_router.data import EvalData
from causal_router.evaluate import oracle_share
from causal_router.router import BaseRouter, RoutingWarning
from causal_router.text import TextFeaturizer

COLUMNS = ["query_text", "pair"]


def _featurizer(**kw):
    return TextFeaturizer(n_components=kw.pop("n_components", 8), text_column="query_text", pair_column="pair", **kw)


@pytest.fixture()
def fitted(text_router):
    """The session's router fitted from text (conftest): MetaRouter(featurizer=_featurizer())."""
    return text_router


def test_router_keeps_and_applies_its_featurizer(fitted, text_frame):
    before = text_frame.copy(deep=True)
    assert isinstance(fitted.featurizer_, TextFeaturizer) and fitted.featurizer_ is not fitted.featurizer
    assert list(fitted.feature_names_in_) == [f"text_{j}" for j in range(8)] + ["pair=model0|small",
                                                                               "pair=model1|small"]
    X = fitted.featurizer_.transform(text_frame)
    gains = fitted.predict_gain(text_frame)  # the whole frame: text and pair columns found by name
    np.testing.assert_array_equal(gains, fitted.predict_gain(X))  # numeric features are accepted too
    np.testing.assert_array_equal(fitted.route(text_frame, 0.2), gains > 0.2)
    # repeated texts give tied gains; a share that asks for k rows where the k-th and the (k+1)-th
    # gains tie cannot be met exactly, and ties are never split (a RoutingWarning says so)
    ranked = np.sort(gains)[::-1]
    k = next(i for i in range(1, int(np.sum(gains > 0))) if ranked[i - 1] == ranked[i])
    with pytest.warns(RoutingWarning, match="tie at the threshold"):
        w = fitted.threshold_for_share(text_frame, (k + 0.5) / len(gains))  # floor(share * n) = k
    routed = fitted.route(text_frame, w)
    np.testing.assert_array_equal(routed, gains > w)
    assert routed.sum() < k <= routed.sum() + np.sum(gains == w)
    pd.testing.assert_frame_equal(text_frame, before)
    with pytest.raises(DataError, match="fitted on 2 model pairs"):
        fitted.route(["explain python code, question 1"])  # which pair? the caller must say
    with pytest.raises(DataError, match="has 3 features"):
        fitted.predict_gain(np.zeros((2, 3)))


def test_route_a_list_of_strings(text_frame):
    one = make_text_frame(400, n_pairs=1, seed=3)
    router = MetaRouter(BiasEstimator(cv=2), featurizer=TextFeaturizer(n_components=8), random_state=0)
    router.fit(one["query_text"].tolist(), one["gain"].to_numpy(), source=one["source"].to_numpy())
    decisions = router.route(["explain python code, question 1", "explain small talk, question 1"])
    assert decisions.dtype == bool and decisions.tolist() == [True, False]  # gold gains +1.0 and -0.8
    assert router.score(one["query_text"], one["gold_gain"]) > 0.5


def test_text_router_beats_pooled_on_a_style_biased_judge():
    """The judge over-rewards poems (a style word the TF-IDF sees); the meta-router fitted from
    text corrects it. Measured over 8 seeds (600 training rows, 20% gold, 400 new test rows,
    20 components): meta-router oracle share 0.790 +- 0.008 (min 0.749), Pooled 0.664 +- 0.016,
    difference 0.064 to 0.173; seed 0: 0.780 vs 0.610."""
    train, test = make_text_frame(600, seed=0), make_text_frame(400, seed=100)
    shares = {}
    for name, router in (("meta", MetaRouter(BiasEstimator(cv=2), featurizer=_featurizer(n_components=20),
                                             random_state=0)),
                         ("pooled", Pooled(featurizer=_featurizer(n_components=20), random_state=0))):
        router.fit(train[COLUMNS], train["gain"], source=train["source"])
        shares[name] = oracle_share(router.predict_gain(test[COLUMNS]), test["gold_gain"])
    assert shares["meta"] > 0.7, shares
    assert shares["meta"] > shares["pooled"] + 0.05, shares


def test_saved_router_file_holds_the_featurizer_without_pickles(fitted, text_frame, tmp_path):
    path = fitted.save(tmp_path / "router.cr")
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        header = json.loads(zf.read("router.json"))
    assert names == ["models/featurizer_components.npy", "models/featurizer_idf.npy", "models/gain_model.txt",
                     "router.json"]
    state = header["fitted"]["featurizer"]
    assert state["params"]["text_column"] == "query_text" and state["pairs_"] == ["model0|small", "model1|small"]
    assert len(state["tfidf"]["vocabulary"]) == len(fitted.featurizer_.vectorizer_.vocabulary_)
    loaded = BaseRouter.load(path)
    assert loaded.featurizer.get_params() == fitted.featurizer.get_params()  # the parameter, as it was given
    assert loaded.featurizer_.get_params() == fitted.featurizer_.get_params()  # the fitted one, seeded by the router
    new = pd.DataFrame({"query_text": ["write a poem about tax law", "explain chemistry, question 99", "?"],
                        "pair": ["model0|small", "model1|small", "model0|small"]})
    for X in (new, text_frame):
        np.testing.assert_array_equal(loaded.predict_gain(X), fitted.predict_gain(X))
    assert loaded.threshold_for_share(text_frame, 0.4) == fitted.threshold_for_share(text_frame, 0.4)


def test_pipeline_of_featurizer_and_router(fitted, text_frame):
    pipe = make_pipeline(_featurizer(random_state=0), MetaRouter(BiasEstimator(cv=2), random_state=0))
    pipe.fit(text_frame[COLUMNS], text_frame["gain"], metarouter__source=text_frame["source"])
    # the same features and seeds as the router that holds its featurizer: the same predictions
    np.testing.assert_allclose(pipe.predict(text_frame), fitted.predict_gain(text_frame), rtol=0, atol=1e-12)
    assert pipe.score(text_frame[COLUMNS], text_frame["gold_gain"]) == pytest.approx(
        fitted.score(text_frame[COLUMNS], text_frame["gold_gain"]))


def test_text_fit_errors(text_frame):
    router = MetaRouter(featurizer=_featurizer())
    data = EvalData(np.zeros((4, 2)), [0, 1, 0, 1], ["gold", "preference"] * 2)
    with pytest.raises(DataError, match="fitted from text"):
        router.fit(data)
    with pytest.raises(DataError, match="query_text"):
        router.fit(text_frame[["pair"]], text_frame["gain"], source=text_frame["source"])
    bad = text_frame[COLUMNS].copy()
    bad.iloc[5, 0] = None
    with pytest.raises(DataError, match="position 5"):
        router.fit(bad, text_frame["gain"], source=text_frame["source"])


def test_minilm_router_file_says_the_embed_extra_is_missing(text_frame, tmp_path, monkeypatch):
    """A router fitted with MiniLM (here a fake encoder) loads where [embed] is missing, warns,
    routes features, and names the extra when asked to route text."""
    import sys

    from causal_router import text as text_mod

    def encode(texts):
        return np.array([[len(t), t.count("a"), t.count("e"), t.count(" "), hash(t[:3]) % 7] for t in texts], float)

    monkeypatch.setitem(text_mod._ENCODERS, "minilm", (text_mod.MINILM_MODEL, lambda: encode))
    router = Pooled(featurizer=TextFeaturizer("minilm", n_components=3, cache_dir=tmp_path / "cache"),
                    random_state=0).fit(text_frame["query_text"], text_frame["gain"], source=text_frame["source"])
    path = router.save(tmp_path / "minilm.cr")
    X = router.featurizer_.transform(["explain music"])
    monkeypatch.setitem(text_mod._ENCODERS, "minilm", (text_mod.MINILM_MODEL, text_mod._minilm_encoder))
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setattr("causal_router.router.embed_extra_installed", lambda: False)
    text_mod._load_minilm.cache_clear()
    try:
        with pytest.warns(UserWarning, match=r"all-MiniLM-L6-v2.*\[embed\] extra"):
            loaded = BaseRouter.load(path)
        np.testing.assert_array_equal(loaded.predict_gain(X), router.predict_gain(X))
        with pytest.raises(ImportError, match=r"install the \[embed\] extra"):
            loaded.route(["a prompt never embedded before"])
    finally:
        text_mod._load_minilm.cache_clear()
