"""The routing server over real HTTP: uvicorn on a free loopback port, httpx as the client."""

import json
import math
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
httpx = pytest.importorskip("httpx", reason="httpx (test extra) is not installed")

from causal_router import MetaRouter  # noqa: E402
from causal_router.bias import BiasEstimator  # noqa: E402
from causal_router.datasets import make_semi_synthetic, reveal_split  # noqa: E402
from causal_router.routing import RoutingWarning  # noqa: E402
from causal_router.serve import background_server, create_app, file_version  # noqa: E402


@pytest.fixture(scope="module")
def numeric():
    """(router fitted on 12 numeric features, test features)."""
    split = reveal_split(make_semi_synthetic(800, 12, random_state=0), n_gold=150, n_test=100, random_state=0)
    router = MetaRouter(BiasEstimator(cv=2), random_state=0).fit(split.train)
    return router, split.test_X


@pytest.fixture(scope="module")
def numeric_url(numeric):
    with background_server(create_app(numeric[0], version="test-v1", max_batch=500)) as url:
        yield url


@pytest.fixture(scope="module")
def text_url(text_router):
    with background_server(create_app(text_router)) as url:
        yield url


def _post(url, body):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/route", content=content, headers={"content-type": "application/json"})


# --------------------------------------------------------------------------- answers
def test_health(numeric_url):
    r = httpx.get(f"{numeric_url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["router_version"] == "test-v1" and body["router"] == "MetaRouter"
    assert body["n_features"] == 12 and body["inputs"] == ["features"] and "featurizer" not in body


def test_route_features_matches_the_router(numeric, numeric_url):
    router, X = numeric
    for weight in (None, 0.0, 0.25, 1.5):
        body = {"features": X.tolist()} | ({} if weight is None else {"cost_weight": weight})
        r = _post(numeric_url, body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["router_version"] == "test-v1" and out["cost_weight"] == (weight or 0.0)
        gains = np.array([d["predicted_gain"] for d in out["routes"]])
        np.testing.assert_array_equal(gains, router.predict_gain(X))  # JSON floats round-trip exactly
        primary = np.array([d["decision"] == "primary" for d in out["routes"]])
        np.testing.assert_array_equal(primary, router.route(X, cost_weight=weight or 0.0))
        assert out["n_primary"] == primary.sum()


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 1.0])
def test_primary_share_is_a_share_of_the_request(numeric, numeric_url, share):
    router, X = numeric
    out = _post(numeric_url, {"features": X[:40].tolist(), "primary_share": share}).json()
    positive = int(np.sum(router.predict_gain(X[:40]) > 0))  # 36 of 40 on this fit: a share of 1.0 sends those
    assert out["primary_share"] == share and out["n_primary"] == min(math.floor(share * 40), positive)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RoutingWarning)  # share 1.0: fewer than asked, as the server's answer says
        assert out["cost_weight"] == router.threshold_for_share(X[:40], share)
    gains = np.array([d["predicted_gain"] for d in out["routes"]])
    primary = np.array([d["decision"] == "primary" for d in out["routes"]])
    if 0 < share < 1:  # the primary gets the highest predicted gains
        assert gains[primary].min() > gains[~primary].max()


def test_concurrent_clients_get_their_own_answers(numeric, numeric_url):
    router, X = numeric
    expected = router.predict_gain(X)
    results, errors = {}, []

    def client(i):
        with httpx.Client(base_url=numeric_url) as c:
            for j in range(5):
                rows = slice((i * 5 + j) % 90, (i * 5 + j) % 90 + 10)
                r = c.post("/route", json={"features": X[rows].tolist()})
                if r.status_code != 200:
                    errors.append(r.text)
                results[(i, j)] = (rows, [d["predicted_gain"] for d in r.json()["routes"]])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 30
    for rows, gains in results.values():
        np.testing.assert_array_equal(gains, expected[rows])


def test_route_texts_with_pairs(text_router, text_url, text_frame):
    health = httpx.get(f"{text_url}/health").json()
    assert health["inputs"] == ["features", "texts"]
    assert health["featurizer"]["pairs"] == ["model0|small", "model1|small"]
    texts = ["write a poem about python code, question 3", "explain cooking, question 7", "an unseen prompt"]
    frame = pd.DataFrame({"query_text": texts, "pair": "model1|small"})
    expected = text_router.predict_gain(frame)
    for pair in ("model1|small", ["model1|small"], ["model1|small"] * 3):
        out = _post(text_url, {"texts": texts, "pair": pair, "cost_weight": 0.1}).json()
        np.testing.assert_array_equal([d["predicted_gain"] for d in out["routes"]], expected)
        assert [d["decision"] == "primary" for d in out["routes"]] == list(expected > 0.1)
    # the gain learnt from text follows the topic: code gains, small talk does not (gold +1.0 vs -0.8)
    out = _post(text_url, {"texts": ["explain python code, question 1", "explain small talk, question 1"],
                           "pair": "model0|small"}).json()
    assert out["routes"][0]["predicted_gain"] > out["routes"][1]["predicted_gain"] + 0.5
    # numeric features of the same router are accepted too
    X = text_router.featurizer_.transform(frame)
    out = _post(text_url, {"features": X.tolist()}).json()
    np.testing.assert_array_equal([d["predicted_gain"] for d in out["routes"]], expected)


# --------------------------------------------------------------------------- bad requests: 422 naming the field
ROW = "[" + ", ".join(["0"] * 12) + "]"  # one valid row of the numeric router's 12 features
BAD = [
    ('{"features": [[1, 2]', "body"),                                   # malformed JSON
    ("", "body"),                                                       # no body
    ("[1, 2]", "body"),                                                 # not an object
    ('{"features": []}', "features"),                                   # empty list
    ('{"features": [[]]}', "features[0]"),
    ('{"features": [[1, 2, 3]]}', "features[0]"),                       # wrong feature count
    ('{"features": [[NaN' + ", 0" * 11 + "]]}", "features[0][0]"),      # NaN
    ('{"features": [[Infinity' + ", 0" * 11 + "]]}", "features[0][0]"),
    ('{"features": [["1"' + ", 0" * 11 + "]]}", "features[0][0]"),      # wrong type
    ('{"features": [[true' + ", 0" * 11 + "]]}", "features[0][0]"),
    ('{"features": "abc"}', "features"),
    ('{"features": [%s], "cost_weight": 1, "primary_share": 0.5}' % ROW, "cost_weight"),  # both budgets
    ('{"features": [%s], "primary_share": 1.5}' % ROW, "primary_share"),
    ('{"features": [%s], "cost_weight": "high"}' % ROW, "cost_weight"),
    ('{"features": [%s], "cost_weight": NaN}' % ROW, "cost_weight"),
    ('{"features": [%s], "cost_weight": -0.5}' % ROW, "cost_weight"),  # one sign rule: w >= 0
    ('{"features": [%s], "costs": {"a": 1}}' % ROW, "costs"),          # costs are for K-model routers
    ('{"features": [%s], "budget": 3}' % ROW, "budget"),                # unknown field
    ("{}", "texts"),                                                    # neither input
    ('{"texts": ["a"], "features": [%s]}' % ROW, "texts"),             # both inputs
    ('{"texts": ["what is 2 + 2?"]}', "texts"),                         # a numeric router takes no text
    ('{"features": [%s]}' % ",".join([ROW] * 501), "features"),         # over max_batch
]


@pytest.mark.parametrize("body, field", BAD, ids=range(len(BAD)))
def test_bad_requests_get_422_naming_the_field(numeric_url, body, field):
    r = _post(numeric_url, body.encode())
    assert r.status_code == 422, r.text
    out = r.json()
    assert field in out["message"], out
    assert out["detail"] and all({"loc", "field", "msg"} <= set(e) for e in out["detail"])


@pytest.mark.parametrize("body, field, fragment", [
    ({"texts": []}, "texts", "at least 1"),
    ({"texts": ["a", 3]}, "texts[1]", "string"),
    ({"texts": [None]}, "texts[0]", "string"),
    ({"texts": ["a" * 100_001], "pair": "model0|small"}, "texts[0]", "at most 100000"),
    ({"texts": ["a", "b"]}, "pair", "fitted on 2 model pairs"),
    ({"texts": ["a", "b"], "pair": "gpt9|small"}, "pair", "unknown model pair"),
    ({"texts": ["a", "b", "c"], "pair": ["model0|small"] * 2}, "pair", "2 labels for 3 texts"),
    ({"texts": ["a"], "pair": 3}, "pair", "valid list"),
    ({"features": [[0.0] * 10], "pair": "model0|small"}, "body", "'pair' goes with 'texts'"),
])
def test_bad_text_requests(text_url, body, field, fragment):
    r = _post(text_url, body)
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert message.startswith(f"{field}:") and fragment in message, message


def test_fuzzed_bodies_never_give_500(numeric_url):
    """Deterministic mutations of a valid request: every answer is 200 or 422."""
    rng = np.random.default_rng(0)
    valid = json.dumps({"features": [[0.5] * 12, [0.1] * 12], "primary_share": 0.5})
    junk = ['"x"', "null", "-1e999", "[]", "{}", "true", "1e308", '"\\u0000"', "[[", "0"]
    seen = set()
    with httpx.Client(base_url=numeric_url) as c:
        for _ in range(100):
            text = list(valid)
            for _ in range(rng.integers(1, 4)):
                i = int(rng.integers(len(text)))
                op = rng.integers(3)
                if op == 0:
                    del text[i]
                elif op == 1:
                    text.insert(i, junk[rng.integers(len(junk))])
                else:
                    text[i] = chr(int(rng.integers(32, 127)))
            r = c.post("/route", content="".join(text).encode(), headers={"content-type": "application/json"})
            seen.add(r.status_code)
            assert r.status_code in (200, 422), (r.status_code, "".join(text), r.text)
    assert seen == {200, 422}


def test_create_app_needs_a_fitted_router(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        create_app(MetaRouter())
    path = tmp_path / "r.bin"
    path.write_bytes(b"router bytes")
    assert file_version(path) == "sha256:" + __import__("hashlib").sha256(b"router bytes").hexdigest()[:16]


# --------------------------------------------------------------------------- a K-model router over HTTP
@pytest.fixture(scope="module")
def kmodel(tmp_path_factory):
    """(K-model router loaded from its file, test features, the file): PooledMulti with ridge
    utilities on the K = 4 generator, served by serve()'s own loader."""
    from causal_router.datasets import make_multi_model, reveal_multi_split
    from causal_router.io import load_router
    from causal_router.multi import PooledMulti
    from causal_router.pairwise import PairwiseRidge

    split = reveal_multi_split(make_multi_model(300, 12, pairs_per_query=3, random_state=0), n_gold_queries=40,
                               n_test_queries=60, random_state=1)
    path = PooledMulti(PairwiseRidge(), reference="small", random_state=0).fit(split.train).save(
        tmp_path_factory.mktemp("k") / "multi.cr")
    return load_router(path), split.test_X, path


@pytest.fixture(scope="module")
def kmodel_url(kmodel):
    router, _, path = kmodel
    with background_server(create_app(router, version=file_version(path))) as url:
        yield url


def test_k_model_router_over_http(kmodel, kmodel_url):
    from causal_router.datasets import MULTI_COSTS

    router, X, path = kmodel
    health = httpx.get(f"{kmodel_url}/health").json()
    assert health["family"] == "k-model" and health["models"] == ["large", "medium", "small", "xlarge"]
    assert health["router_version"] == file_version(path)
    for body, (costs, weight) in (({}, (None, 0.0)), ({"costs": MULTI_COSTS, "cost_weight": 0.3}, (MULTI_COSTS, 0.3))):
        out = _post(kmodel_url, {"features": X.to_numpy().tolist(), **body}).json()
        chosen = [r["model"] for r in out["routes"]]
        np.testing.assert_array_equal(chosen, router.route(X, costs=costs, cost_weight=weight))
        utilities = pd.DataFrame([r["utilities"] for r in out["routes"]])[router.models_]
        np.testing.assert_array_equal(utilities.to_numpy(), router.predict_utility(X).to_numpy())
        assert out["cost_weight"] == weight and sum(out["counts"].values()) == len(X)
    # per-query costs: the dearest model gets free on the first query only
    per_query = {m: [c] * len(X) for m, c in MULTI_COSTS.items()} | {"xlarge": [0.0] + [1.0] * (len(X) - 1)}
    out = _post(kmodel_url, {"features": X.to_numpy().tolist(), "costs": per_query, "cost_weight": 5.0}).json()
    expected = router.route(X, costs={m: np.asarray(v) for m, v in per_query.items()}, cost_weight=5.0)
    assert [r["model"] for r in out["routes"]] == list(expected) and expected[0] == "xlarge"


@pytest.mark.parametrize("body, field, fragment", [
    ({"cost_weight": -1, "costs": {"small": 1}}, "cost_weight", "greater than or equal to 0"),
    ({"costs": {"small": 0.1}}, "costs", "no entry for model(s)"),
    ({"costs": {"small": 0.1, "medium": 1, "large": 1, "xlarge": 1, "gpt9": 2}}, "costs", "unknown model"),
    ({"costs": {"small": [0.1, 0.2], "medium": 1, "large": 1, "xlarge": 1}}, "costs", "has 2 values for 3 queries"),
    ({"cost_weight": 0.5}, "cost_weight", "needs 'costs'"),
    ({"primary_share": 0.5}, "primary_share", "Extra inputs are not permitted"),
])
def test_bad_k_model_requests_get_422(kmodel_url, body, field, fragment):
    r = _post(kmodel_url, {"features": [[0.0] * 12] * 3, **body})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(f"{field}") and fragment in r.json()["message"], r.json()["message"]
