import numpy as np
import pandas as pd
import pytest

from causal_router.datasets import make_semi_synthetic, reveal_split


@pytest.fixture(scope="session")
def synthetic():
    """The built-in generator at the paper's size: 5,000 queries, 50 features."""
    return make_semi_synthetic(5000, 50, random_state=0)


@pytest.fixture(scope="session")
def split(synthetic):
    """One reveal split: 100 gold rows, 500 test queries."""
    return reveal_split(synthetic, n_gold=100, n_test=500, random_state=1)


@pytest.fixture()
def small_frame():
    """A small pooled frame in the user-facing layout (features, gain, source)."""
    rng = np.random.default_rng(0)
    n = 400
    X = rng.standard_normal((n, 3))
    source = np.where(np.arange(n) % 5 == 0, "gold", "preference")
    gain = X[:, 0] + np.where(source == "gold", 0.5, 0.0) + 0.1 * rng.standard_normal(n)
    return pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "gain": gain, "source": source,
                         "qid": [f"q{i}" for i in range(n)]})


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray instance shared by the Ray tests (skipped without the [ray] extra)."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


_TOPICS = {"python code": 1.0, "sql queries": 0.8, "tax law": 0.6, "chemistry": 0.4, "music": -0.2,
           "travel": -0.4, "cooking": -0.6, "small talk": -0.8}
_STYLES = {"write a poem about": 0.8, "explain": 0.0, "list facts about": -0.4, "summarise": 0.2}


def make_text_frame(n: int = 600, n_pairs: int = 2, gold_share: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Rows of query text, model pair, observed gain and source, with known gold gains.

    The gold gain depends on the topic (and the pair: the second pair gains half as much); the
    judge's bias depends on the style of the request (it over-rewards poems). Columns:
    ``query_text, pair, gain, source, gold_gain, pref_gain``; texts repeat (40 x 8 x 4 variants).
    """
    rng = np.random.default_rng(seed)
    topics, styles = list(_TOPICS), list(_STYLES)
    t = rng.integers(len(topics), size=n)
    s = rng.integers(len(styles), size=n)
    k = rng.integers(40, size=n)
    pairs = [f"model{j}|small" for j in range(n_pairs)]
    p = rng.integers(n_pairs, size=n)
    text = [f"{styles[a]} {topics[b]}, question {c}" for a, b, c in zip(s, t, k)]
    gold = np.array([_TOPICS[topics[b]] for b in t]) / (1 + p) + 0.3 * rng.standard_normal(n)
    pref = gold + np.array([_STYLES[styles[a]] for a in s]) + 0.3 * rng.standard_normal(n)
    is_gold = rng.random(n) < gold_share
    return pd.DataFrame({"query_text": text, "pair": [pairs[j] for j in p],
                         "gain": np.where(is_gold, gold, pref), "source": np.where(is_gold, "gold", "preference"),
                         "gold_gain": gold, "pref_gain": pref})


@pytest.fixture(scope="session")
def text_frame():
    """600 rows of text queries over 2 model pairs, 20% gold (see :func:`make_text_frame`)."""
    return make_text_frame()


@pytest.fixture(scope="session")
def text_router(text_frame):
    """A MetaRouter fitted from the text of ``text_frame`` (TF-IDF + SVD, 8 components, 2 pair
    indicators), holding its featurizer; cv=2 to keep it quick."""
    from causal_router import BiasEstimator, MetaRouter
    from causal_router.text import TextFeaturizer

    featurizer = TextFeaturizer(n_components=8, text_column="query_text", pair_column="pair")
    return MetaRouter(BiasEstimator(cv=2), featurizer=featurizer, random_state=0).fit(
        text_frame[["query_text", "pair"]], text_frame["gain"], source=text_frame["source"])
