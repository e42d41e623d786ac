"""Request limits of the routing server over real HTTP (issue 26, item 7): a body over the limit gets
413 before it is read, a malformed JSON body gets 422 naming the field, never a generic 400 or a 500."""

import json
import socket
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
httpx = pytest.importorskip("httpx", reason="httpx (test extra) is not installed")

from causal_router import MetaRouter  # noqa: E402
from causal_router._validation import DataError  # noqa: E402
from causal_router.bias import BiasEstimator  # noqa: E402
from causal_router.datasets import make_semi_synthetic, reveal_split  # noqa: E402
from causal_router.serve import (  # noqa: E402
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    BodyLimit,
    background_server,
    create_app,
)

LIMIT = 200_000
ROW = "[" + ", ".join(["0.5"] * 12) + "]"


@pytest.fixture(scope="module")
def router():
    split = reveal_split(make_semi_synthetic(800, 12, random_state=0), n_gold=150, n_test=100, random_state=0)
    return MetaRouter(BiasEstimator(cv=2), random_state=0).fit(split.train)


@pytest.fixture(scope="module")
def url(router):
    with background_server(create_app(router, max_body_bytes=LIMIT)) as base:
        yield base


def _post(url, content, **headers):
    return httpx.post(f"{url}/route", content=content, timeout=60,
                      headers={"content-type": "application/json", **headers})


# ---------------------------------------------------------------------------- 413
def _raw_post(url, size: int, head: bytes) -> bytes:
    """POST /route announcing ``size`` bytes and sending ``head`` (at most 64 KB) of them; the
    answer's bytes. A client still uploading when the server's early 413 arrives can fail on the
    closed connection (httpx did, at 5 MB and 80 MB, in some runs): the raw client reads instead."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /route HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        sock.sendall(head[:65_536])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65_536)
            if not chunk:
                break
            answer += chunk
    return answer


@pytest.mark.parametrize("size", [LIMIT + 1, 5 * 2**20, 80 * 2**20])
def test_a_body_over_the_limit_gets_413(url, size):
    body = (b'{"features": [' + b",".join([ROW.encode()] * (65_536 // len(ROW) + 1)) + b"]}")
    answer = _raw_post(url, size, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    out = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert out["message"] == (f"body: a body of {size} bytes: this server takes at most {LIMIT} bytes per request; "
                              "split the batch")
    assert out["detail"][0]["loc"] == ["body"] and out["detail"][0]["type"] == "too_large"
    assert httpx.get(f"{url}/health").json()["max_body_bytes"] == LIMIT  # the server is still up


def test_a_chunked_body_is_counted_as_it_arrives(url):
    sent = []

    def chunks():  # no Content-Length: the limit is found by counting
        for _ in range(10_000):
            sent.append(1)
            yield b"[" + b"0, " * 3_000 + b"0],"

    r = _post(url, chunks())
    assert r.status_code == 413 and "more than 200000 bytes (chunked)" in r.json()["message"]
    small = _post(url, iter([b'{"features": [', ROW.encode(), b"]}"]))
    assert small.status_code == 200, small.text


def test_an_80_mb_body_is_refused_without_being_read(router):
    """Before: an 80 MB body took the server to 1.37 GB. A raw client announces 80 MB, sends the
    first 64 KB and gets the 413 at once; tracemalloc over the process (the server thread is in
    it) saw a peak of 0.4 MB while the whole 80 MB went out (seed-free, measured once)."""
    size = 80 * 2**20
    with background_server(create_app(router)) as base:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        tracemalloc.start()
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /route HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % size)
            sock.sendall(b'{"features": [' + b" " * 65_536)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65_536)
                if not chunk:
                    break
                answer += chunk
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"a body of 83886080 bytes: this server takes at most 16777216 bytes" in answer
    out = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert out["message"] == ("body: a body of 83886080 bytes: this server takes at most 16777216 bytes per "
                              "request; split the batch")
    assert out["detail"][0]["loc"] == ["body"] and out["detail"][0]["type"] == "too_large"
    assert peak < 4 * 2**20, peak  # the body is never read into memory


# ---------------------------------------------------------------------------- 422 naming the field
DEEP = '{"features": ' + "[" * 100_000 + "]" * 100_000 + "}"
BAD = [
    (DEEP, "features[0][0]", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"),       # before: 400
    ('{"features": [[1, ' + "7" * 5_000 + "]]}", "features[0][1]", "a number of 5000 digits"),  # before: 400
    ('{"features": [%s], "cost_weight": 1%s}' % (ROW, "0" * 400), "cost_weight", "a number of 401 digits"),
    ('{"features": [%s, [0.5, 0.%s]]}' % (ROW, "3" * 200), "features[1][1]", "a number of 200 digits"),
    ('{"features": [%s], "cost_weight": 1, "cost_weight": 2}' % ROW, "cost_weight", "given twice"),  # before: 200
    ('{"features": [%s], "\\u0063ost_weight": 1, "cost_weight": 2}' % ROW, "cost_weight", "given twice"),
    ("[" * 40 + "]" * 40, "body[0][0]", "nested deeper"),
    ('{"texts": [%s]}' % ",".join(['"a"'] * 100_001), "body", "more than 100000 strings"),
]


@pytest.mark.parametrize("body, field, fragment", BAD, ids=range(len(BAD)))
def test_malformed_bodies_get_422_naming_the_field(router, body, field, fragment):
    with background_server(create_app(router)) as base:
        r = _post(base, body.encode())
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert message.startswith(f"{field}") and fragment in message, message


def test_text_that_is_not_utf8_gets_422(url):
    r = _post(url, b'{"features": [%s], "cost_weight": "\xff"}' % ROW.encode())  # before: 400
    assert r.status_code == 422 and r.json()["message"].startswith("body: the body is not valid utf-8 text")


def test_brackets_digits_and_colons_inside_texts_are_text(text_router):
    texts = ["[" * 50 + "1" * 300 + ' "a": 1, "a": 2 ' + "}" * 50, "an ordinary question"]
    with background_server(create_app(text_router)) as base:
        r = _post(base, json.dumps({"texts": texts, "pair": "model0|small"}).encode())
    assert r.status_code == 200, r.text


def test_the_texts_of_one_request_are_capped_in_total(text_router):
    with background_server(create_app(text_router, max_text_chars=1_000)) as base:
        ok = _post(base, json.dumps({"texts": ["x" * 500, "y" * 500], "pair": "model0|small"}).encode())
        r = _post(base, json.dumps({"texts": ["x" * 500, "y" * 501], "pair": "model0|small"}).encode())
        health = httpx.get(f"{base}/health").json()
    assert ok.status_code == 200 and health["max_text_chars"] == 1_000
    assert r.status_code == 422
    assert r.json()["message"] == ("texts: the texts hold 1001 characters in all; this server takes at most 1000 per "
                                   "request: split the batch")


def test_every_fuzzed_body_gets_200_413_or_422(url):
    """Deterministic mutations of a valid body mixed with the malformed pieces above (seed 0)."""
    rng = np.random.default_rng(0)
    valid = json.dumps({"features": [[0.5] * 12, [0.1] * 12], "cost_weight": 0.1})
    pieces = ["[" * 50, "9" * 150, '"cost_weight": 3, ', "\\u0000", "\udcff", "{" * 40, '"x":', "1e99999", "]" * 60]
    seen = set()
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(150):
            text = list(valid)
            for _ in range(rng.integers(1, 4)):
                i = int(rng.integers(len(text)))
                text.insert(i, pieces[rng.integers(len(pieces))])
            body = "".join(text).encode("utf-8", "surrogateescape")
            r = client.post("/route", content=body, headers={"content-type": "application/json"})
            seen.add(r.status_code)
            assert r.status_code in (200, 422), (r.status_code, body[:200], r.text)
            assert "message" in r.json()
    assert 422 in seen


# ---------------------------------------------------------------------------- the middleware on its own
def test_body_limit_protects_any_fastapi_app():
    from fastapi import FastAPI, Request

    app = FastAPI()
    reads = []

    @app.post("/echo")
    async def echo(request: Request):
        body = await request.json()
        reads.append(1)
        return {"keys": sorted(body)}

    app.add_middleware(BodyLimit, max_body_bytes=1_000, max_json_depth=4)
    with background_server(app) as base:
        assert httpx.post(f"{base}/echo", json={"a": [1, 2]}).json() == {"keys": ["a"]}
        # one key in two objects, and objects opened and closed between two keys, are fine
        same = httpx.post(f"{base}/echo", content=b'{"a": {"z": 1}, "b": [{}, {}], "c": {"z": {}}}')
        twice = httpx.post(f"{base}/echo", content=b'{"a": {}, "b": [{}, {"z": 1}], "\\u0061": 2}')
        big = httpx.post(f"{base}/echo", json={"a": "x" * 2_000})
        deep = httpx.post(f"{base}/echo", json={"a": [[[[[1]]]]]})
        other = httpx.post(f"{base}/echo", content=b"[" * 10 + b"]" * 10, headers={"content-type": "text/plain"})
    assert same.status_code == 200 and twice.status_code == 422
    assert twice.json()["message"] == "a: this key is given twice in one object (at byte 31)"
    assert big.status_code == 413 and deep.status_code == 422
    assert deep.json()["message"].startswith("a[0][0][0]: JSON nested deeper than 4 levels")
    assert other.status_code == 200  # not JSON to FastAPI: the JSON limits do not apply, the size limit does
    assert len(reads) == 3
    with pytest.raises(DataError, match="max_body_bytes must be a positive integer"):
        BodyLimit(app, max_body_bytes=0)


def test_body_limit_answers_in_the_format_error_body_gives_by_path():
    """error_body(path, status, field, message, kind) shapes the refusals of the paths it answers
    for (the routing proxy's /v1/ paths: OpenAI's format); None keeps the default body."""
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.post("/{name}")
    async def echo(request: Request, name: str):
        return await request.json()

    def error_body(path, status, field, message, kind):
        return {"error": [path, status, field, kind]} if path == "/custom" else None

    app.add_middleware(BodyLimit, max_body_bytes=100, error_body=error_body)
    with background_server(app) as base:
        custom = [httpx.post(f"{base}/custom", content=body) for body in (b'{"a": 1, "a": 2}', b"[" * 200)]
        plain = httpx.post(f"{base}/plain", content=b'{"a": 1, "a": 2}')
    assert [r.status_code for r in custom] == [422, 413]
    assert custom[0].json() == {"error": ["/custom", 422, "a", "json_limit"]}
    assert custom[1].json() == {"error": ["/custom", 413, "body", "too_large"]}
    assert plain.status_code == 422 and plain.json()["detail"][0]["field"] == "a"
    with pytest.raises(DataError, match="error_body must be callable"):
        BodyLimit(app, error_body="openai")


def test_a_large_body_within_the_limit_reaches_the_app_whole(router):
    """Bodies over 1 MiB are checked in a worker thread, then handed to the application whole: a
    13 MB body of 200,000 rows passes the limits and gets the application's own 422 (max_batch)."""
    big = json.dumps({"features": [[0.5] * 12] * 200_000}).encode()
    assert 2**20 < len(big) < MAX_BODY_BYTES
    with background_server(create_app(router, max_batch=10_000)) as base:
        r = _post(base, big)
        ok = _post(base, json.dumps({"features": [[0.5] * 12] * 10_000}).encode())
    assert r.status_code == 422 and r.json()["message"].startswith("features: List should have at most 10000 items")
    assert ok.status_code == 200 and len(ok.json()["routes"]) == 10_000
