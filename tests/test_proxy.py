"""The routing proxy end to end: the official ``openai`` client -> the proxy -> stub upstreams,
every server a uvicorn on a free 127.0.0.1 port (causal_router.serve.background_server)."""

import asyncio
import json
import logging
import threading
import time

import numpy as np
import pandas as pd
import pytest
from conftest import make_text_frame

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("prometheus_client", reason="the [serve] extra is not installed")
httpx = pytest.importorskip("httpx", reason="the [serve] extra is not installed")
openai = pytest.importorskip("openai", reason="openai (test extra) is not installed")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from causal_router import BiasEstimator, MetaRouter  # noqa: E402
from causal_router._validation import DataError  # noqa: E402
from causal_router.proxy import (GAIN_HEADER, ROUTE_HEADER, ProxyConfigError, RouteAdapter,  # noqa: E402
                                 create_proxy_app, parse_upstreams)
from causal_router.serve import background_server  # noqa: E402
from causal_router.text import TextFeaturizer  # noqa: E402

KEY = "sk-test-0123456789abcdef-secret"  # an upstream key, set in the environment by the tests
TEXTS = [f"{style} {topic}, question {k}" for k, (style, topic) in enumerate(
    [(s, t) for s in ("write a poem about", "explain", "list facts about", "summarise")
     for t in ("python code", "sql queries", "tax law", "chemistry", "music", "travel", "cooking", "small talk")])]


# --------------------------------------------------------------------------- stub upstreams
class Stub:
    """An OpenAI-compatible upstream on 127.0.0.1 that records what it receives.

    ``mode``: "ok"; "500" / "503" (that status); "slow" (answers after 10 s, or stops when the
    caller disconnects, recording it); "echo401" (401 whose body repeats the Authorization header
    received); "cut" (a stream that breaks off after one chunk). Streams send their first chunk,
    then wait until the test sets ``first_chunk_seen`` (so a proxy that buffered the stream would
    make them wait in vain: ``waited_in_vain``)."""

    def __init__(self, name: str):
        self.name, self.mode = name, "ok"
        self.seen: list[tuple[dict, dict]] = []
        self.answers: list[bytes] = []
        self.disconnected = threading.Event()
        self.first_chunk_seen = threading.Event()
        self.waited_in_vain = False
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)

    def answer(self, body: dict) -> dict:
        text = body["messages"][-1]["content"]
        return {"id": f"chatcmpl-{self.name}", "object": "chat.completion", "created": 1, "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"{self.name} says: {text}"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}

    async def chat(self, request: Request):
        body = await request.json()
        self.seen.append((dict(request.headers), body))
        if self.mode in ("500", "503"):
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, int(self.mode))
        if self.mode == "echo401":
            return JSONResponse({"error": {"message": f"bad key {request.headers.get('authorization')}",
                                           "type": "invalid_request_error", "code": "invalid_api_key"}}, 401)
        if self.mode == "slow":
            for _ in range(1000):
                if await request.is_disconnected():
                    self.disconnected.set()
                    return JSONResponse({}, 499)
                await asyncio.sleep(0.01)
        if body.get("stream"):
            return StreamingResponse(self.stream(body, request), media_type="text/event-stream")
        content = json.dumps(self.answer(body)).encode()
        self.answers.append(content)
        return Response(content, media_type="application/json", headers={"x-request-id": f"req-{self.name}"})

    def chunk(self, body: dict, token: str) -> bytes:
        return ("data: " + json.dumps({"id": f"chatcmpl-{self.name}", "object": "chat.completion.chunk", "created": 1,
                                       "model": body.get("model"), "choices": [{"index": 0, "delta": {"content": token},
                                                                                "finish_reason": None}]})
                + "\n\n").encode()

    async def stream(self, body: dict, request: Request):
        yield self.chunk(body, self.name)
        if self.mode == "cut":
            raise RuntimeError("the stub breaks off its stream")  # uvicorn drops the connection
        if self.mode == "endless":
            try:
                for i in range(1000):
                    yield self.chunk(body, f" {i}")
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:  # the caller went away (Starlette cancels the stream)
                self.disconnected.set()
                raise
        else:
            seen = await asyncio.to_thread(self.first_chunk_seen.wait, 5.0)
            self.waited_in_vain = self.waited_in_vain or not seen
            for token in (" one", " two"):
                yield self.chunk(body, token)
        yield b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def router():
    """A MetaRouter fitted from text (one model pair, TF-IDF + SVD, 8 components)."""
    frame = make_text_frame(400, n_pairs=1, seed=3)
    featurizer = TextFeaturizer(n_components=8, text_column="query_text")
    return MetaRouter(BiasEstimator(cv=2), featurizer=featurizer, random_state=0).fit(
        frame[["query_text"]], frame["gain"], source=frame["source"])


@pytest.fixture(scope="module")
def stubs():
    """Running stub upstreams: {name: (Stub, base URL ending in /v1)}."""
    made = {n: Stub(n) for n in ("primary", "alternative", "third")}
    with background_server(made["primary"].app) as p, background_server(made["alternative"].app) as a, \
            background_server(made["third"].app) as t:
        yield {"primary": (made["primary"], f"{p}/v1"), "alternative": (made["alternative"], f"{a}/v1"),
               "third": (made["third"], f"{t}/v1")}


@pytest.fixture()
def fresh(stubs):
    """The stubs reset to "ok" with empty records."""
    for stub, _ in stubs.values():
        stub.mode, stub.seen, stub.answers, stub.waited_in_vain = "ok", [], [], False
        stub.disconnected.clear()
        stub.first_chunk_seen.clear()
    return stubs


def _refused_url() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


class _Hangup:
    """A TCP server on 127.0.0.1 that accepts and closes without answering (a dead backend)."""

    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    def __exit__(self, *exc):
        self.sock.close()


def _proxy(router, urls: dict, **options):
    ups = parse_upstreams([f"{n}={u}" for n, u in urls.items()], options.pop("models", ()), options.pop("keys", ()),
                          environ=options.pop("environ", None))
    return background_server(create_proxy_app(router, ups, **options))


def _client(url: str, key: str = "client-key") -> "openai.OpenAI":
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=20.0)


def _ask(client, text: str, **kw):
    """(parsed completion, response headers) of a non-streaming request."""
    raw = client.chat.completions.with_raw_response.create(
        model=kw.pop("model", "client-model"), messages=[{"role": "user", "content": text}], **kw)
    return raw.parse(), raw.headers


def _primary_text(router, weight=0.0) -> str:
    return next(t for t in TEXTS if router.route([t], cost_weight=weight)[0])


def _metric(url: str, name: str) -> dict:
    """{labels tuple: value} of one metric's samples from GET /metrics."""
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


# --------------------------------------------------------------------------- answers
def test_the_decision_is_the_routers_and_the_answer_passes_unchanged(router, fresh):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(router, urls, models=["primary=big-model"]) as url:
        client = _client(url)
        routes = []
        for text in TEXTS:
            completion, headers = _ask(client, text, temperature=0.25)
            route = headers[ROUTE_HEADER]
            routes.append(route)
            # exactly router.route([text]) at the same cost weight (0), and its predicted gain
            assert (route == "primary") == bool(router.route([text], cost_weight=0.0)[0]), text
            assert float(headers[GAIN_HEADER]) == router.predict_gain([text])[0]
            stub = fresh[route][0]
            assert completion.choices[0].message.content == f"{route} says: {text}"
            assert headers["x-request-id"] == f"req-{route}"  # the upstream's headers come back too
            sent_headers, sent = stub.seen[-1]
            # the body is forwarded unchanged but for the model name, rewritten where one is configured
            assert sent["model"] == ("big-model" if route == "primary" else "client-model")
            assert sent["messages"] == [{"role": "user", "content": text}] and sent["temperature"] == 0.25
        # the answer's bytes are the upstream's
        raw = httpx.post(f"{url}/v1/chat/completions",
                         json={"model": "m", "messages": [{"role": "user", "content": TEXTS[0]}]})
        assert raw.content == fresh[raw.headers[ROUTE_HEADER]][0].answers[-1]
    assert {"primary", "alternative"} <= set(routes)  # both routes taken on these texts


def test_primary_share_sets_the_cost_weight_from_the_router_file(router, fresh, tmp_path):
    from causal_router.router import BaseRouter

    loaded = BaseRouter.load(router.save(tmp_path / "r.cr"))  # the share's threshold comes from the file
    weight = loaded.threshold_for_share(None, 0.3)
    train = make_text_frame(400, n_pairs=1, seed=3)
    sent = np.mean(router.predict_gain(train[["query_text"]]) > weight)
    assert sent == pytest.approx(0.3, abs=0.01)  # of the training queries (one row each here)
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(loaded, urls, primary_share=0.3) as url:
        client = _client(url)
        for text in TEXTS[:12]:
            _, headers = _ask(client, text)
            assert (headers[ROUTE_HEADER] == "primary") == bool(router.route([text], cost_weight=weight)[0])
        health = httpx.get(f"{url}/health").json()["proxy"]
        assert health["routing"]["cost_weight"] == weight and health["routing"]["primary_share"] == 0.3


def test_streams_are_relayed_chunk_by_chunk(router, fresh):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    text = _primary_text(router)
    with _proxy(router, urls, models=["primary=big-model"]) as url:
        client = _client(url)
        with client.chat.completions.with_streaming_response.create(
                model="m", messages=[{"role": "user", "content": text}], stream=True) as response:
            assert response.headers[ROUTE_HEADER] == "primary"
            assert response.headers["content-type"].startswith("text/event-stream")
            tokens = []
            for chunk in response.parse():
                tokens.append(chunk.choices[0].delta.content)
                fresh["primary"][0].first_chunk_seen.set()  # the stub sends the rest only now
                assert chunk.model == "big-model"
    assert tokens == ["primary", " one", " two"]
    assert not fresh["primary"][0].waited_in_vain  # the first chunk reached the client before the stream ended


def test_models_lists_the_routed_names(router, fresh):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(router, urls, models=["alternative=small-model"], max_batch=7) as url:
        models = _client(url).models.list()
        health = httpx.get(f"{url}/health").json()
    assert [m.id for m in models.data] == ["primary", "alternative"]
    assert [m.upstream_model for m in models.data] == [None, "small-model"]
    assert health["max_batch"] == 7  # the routing server's own options reach create_app


def test_health_reports_the_realised_share_and_metrics_count_requests(router, fresh):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(router, urls) as url:
        client = _client(url)
        routes = [_ask(client, t)[1][ROUTE_HEADER] for t in TEXTS[:20]]
        recent = httpx.get(f"{url}/health").json()["proxy"]["recent"]
        assert recent["requests"] == 20
        assert recent["primary_share"] == routes.count("primary") / 20
        counts = _metric(url, "causal_router_proxy_requests_total")
        for name in ("primary", "alternative"):
            assert counts.get((("route", name), ("served_by", name), ("status", "200")), 0) == routes.count(name)
        latency = _metric(url, "causal_router_proxy_request_duration_seconds_count")
        assert sum(latency.values()) == 20
        assert sum(_metric(url, "causal_router_proxy_decision_duration_seconds_count").values()) == 20


# --------------------------------------------------------------------------- failures
FAILURES = ["refused", "hangup", "timeout", "500", "503"]


def _failing(kind: str, fresh, hangup):
    """The primary's URL for a failure of ``kind`` (the stub's mode set where the stub fails)."""
    if kind == "refused":
        return _refused_url()
    if kind == "hangup":
        return hangup.url
    fresh["primary"][0].mode = "slow" if kind == "timeout" else kind
    return fresh["primary"][1]


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failing_upstream_gives_an_openai_error_naming_it(router, fresh, kind):
    text = _primary_text(router)
    with _Hangup() as hangup:
        urls = {"primary": _failing(kind, fresh, hangup), "alternative": fresh["alternative"][1]}
        with _proxy(router, urls, timeout=0.5) as url:
            with pytest.raises(openai.APIStatusError) as info:
                _ask(_client(url), text)
            error = info.value
            assert error.status_code == (504 if kind == "timeout" else 502)
            assert error.body["type"] == "upstream_error"
            assert error.body["code"] == {"refused": "upstream_connect", "hangup": "upstream_protocol",
                                          "timeout": "upstream_timeout"}.get(kind, "upstream_status_5xx")
            assert "upstream 'primary' (http://127.0.0.1:" in error.body["message"]
            assert error.response.headers[ROUTE_HEADER] == "primary"
            errors = _metric(url, "causal_router_proxy_upstream_errors_total")
            assert sum(v for k, v in errors.items() if ("upstream", "primary") in k) == 1
            assert not fresh["alternative"][0].seen  # no fallback unless asked
    if kind == "timeout":  # the proxy gave up on the slow upstream, which saw the request cancelled
        assert fresh["primary"][0].disconnected.wait(5)


@pytest.mark.parametrize("kind", FAILURES)
def test_fallback_tries_the_other_upstream_once_and_says_so(router, fresh, kind):
    text = _primary_text(router)
    with _Hangup() as hangup:
        urls = {"primary": _failing(kind, fresh, hangup), "alternative": fresh["alternative"][1]}
        with _proxy(router, urls, timeout=0.5, fallback=True) as url:
            completion, headers = _ask(_client(url), text)
            assert headers[ROUTE_HEADER] == "alternative; fallback-from=primary"
            assert completion.choices[0].message.content == f"alternative says: {text}"
            assert len(fresh["alternative"][0].seen) == 1
            assert _metric(url, "causal_router_proxy_fallbacks_total") == {
                (("from_upstream", "primary"), ("to_upstream", "alternative")): 1.0}
            # both down: one error naming both, after one try each
            fresh["alternative"][0].mode = "503"
            with pytest.raises(openai.APIStatusError) as info:
                _ask(_client(url), text)
            assert info.value.status_code == 502  # the last failure decides: the alternative's 503
            message = info.value.body["message"]
            assert "upstream 'primary'" in message and "upstream 'alternative'" in message
            assert info.value.response.headers[ROUTE_HEADER] == "alternative; fallback-from=primary"
            assert len(fresh["alternative"][0].seen) == 2


def test_streaming_failures(router, fresh):
    text = _primary_text(router)
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(router, urls) as url:
        client = _client(url)
        fresh["primary"][0].mode = "503"  # before the stream starts: an error status, as without streaming
        with pytest.raises(openai.InternalServerError) as info:
            list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], stream=True))
        assert info.value.status_code == 502
        fresh["primary"][0].mode = "cut"  # during the stream: the chunks so far, then an error event
        got = []
        with pytest.raises(openai.APIError, match="upstream 'primary'.*broke off its stream"):
            for chunk in client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}],
                                                        stream=True):
                got.append(chunk.choices[0].delta.content)
        assert got == ["primary"]
        errors = _metric(url, "causal_router_proxy_upstream_errors_total")
        assert errors[(("kind", "stream_interrupted"), ("upstream", "primary"))] == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_disconnects_cancels_the_upstream_request(router, fresh, stream):
    text = _primary_text(router)
    fresh["primary"][0].mode = "slow" if not stream else "endless"
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(router, urls) as url:
        body = {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}
        if stream:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as r:
                lines = r.iter_lines()
                assert next(lines).startswith("data: ")  # the stream is flowing; now hang up
        else:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.5)
        assert fresh["primary"][0].disconnected.wait(5)  # the upstream saw its request cancelled
        deadline = time.monotonic() + 5
        while httpx.get(f"{url}/health").json()["proxy"]["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{url}/health").json()["proxy"]["in_flight"] == 0  # the slot was released


def test_bounded_concurrency(router, fresh):
    text = _primary_text(router)
    fresh["primary"][0].mode = "slow"
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(router, urls, max_concurrency=1) as url:
        first = threading.Thread(target=_swallow, args=(url, text), daemon=True)
        first.start()
        deadline = time.monotonic() + 5
        while not fresh["primary"][0].seen and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(openai.APIStatusError) as info:
            _ask(_client(url), text)
        assert info.value.status_code == 503 and info.value.body["code"] == "overloaded"
        assert info.value.response.headers["retry-after"] == "1"
        first.join(10)


def _swallow(url, text):
    try:
        httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": text}]}, timeout=1.0)
    except httpx.TimeoutException:
        pass


@pytest.mark.parametrize("body, param", [
    (b'{"messages": [', None),                                          # not JSON
    (b"[1, 2]", None),                                                  # not an object
    (b'{"model": "m"}', "messages"),                                     # no messages
    (b'{"messages": []}', "messages"),
    (b'{"messages": [{"content": "hi"}]}', "messages[0]"),              # no role
    (b'{"messages": [{"role": "system", "content": "be brief"}]}', "messages"),  # no user message
    (b'{"messages": [{"role": "user", "content": 3}]}', "messages[0].content"),
    (b'{"messages": [{"role": "user", "content": [{"text": "x"}]}]}', "messages[0].content"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "stream"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "model": 4}', "model"),
    # the routing server's JSON limits (serve.BodyLimit), checked before the proxy reads the body
    (b"[" * 100_000 + b"]" * 100_000, "body[0][0][0]"),                 # nested too deep: where (cut at 80)
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1' + b"0" * 200 + b"}", "temperature"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "messages": []}', "messages"),  # a key twice
    (b'{"messages": [{"role": "user", "content": "\xff"}]}', None),     # not UTF-8
], ids=lambda v: v[:40].decode("latin-1") if isinstance(v, bytes) else None)
def test_malformed_bodies_get_an_openai_422_naming_the_field(router, fresh, body, param):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    with _proxy(router, urls) as url:
        r = httpx.post(f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        with pytest.raises(openai.UnprocessableEntityError):  # what the official client makes of it
            _client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": 3}])
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param or (param.startswith("body") and error["param"].startswith(param))
    assert param is None or param in error["message"]
    assert not fresh["primary"][0].seen and not fresh["alternative"][0].seen


def test_the_routing_servers_body_limit_holds_for_the_proxy(router, fresh):
    """One limit (serve.BodyLimit via create_app's max_body_bytes) for POST /route and the chat
    endpoint: 413 before the body is read, or as soon as a chunked body passes it; OpenAI's error
    format on /v1/, the routing server's own on /route."""
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    small = {"model": "m", "messages": [{"role": "user", "content": TEXTS[0]}]}
    large = {"model": "m", "messages": [{"role": "user", "content": "x" * 5_000}]}
    with _proxy(router, urls, max_body_bytes=4_096) as url:
        assert httpx.post(f"{url}/v1/chat/completions", json=small).status_code == 200
        r = httpx.post(f"{url}/v1/chat/completions", json=large)
        assert r.status_code == 413
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "too_large" and "4096 bytes" in error["message"]
        chunked = httpx.post(f"{url}/v1/chat/completions", content=iter([json.dumps(large).encode()]),
                             headers={"content-type": "application/json"})  # no Content-Length
        assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "too_large"
        with pytest.raises(openai.APIStatusError) as info:  # the official client sees the 413 too
            _client(url).chat.completions.create(**large)
        assert info.value.status_code == 413
        route = httpx.post(f"{url}/route", json={"texts": ["x" * 5_000]})
        assert route.status_code == 413 and "detail" in route.json()  # the routing server's format stays
        assert httpx.get(f"{url}/health").json()["max_body_bytes"] == 4_096
    assert len(fresh["primary"][0].seen) + len(fresh["alternative"][0].seen) == 1  # only the small request


def test_the_router_reads_at_most_max_text_chars(router, fresh):
    """The routed text is cut to the server's max_text_chars (the body is forwarded whole), and
    the texts decided together hold at most that many characters."""
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    text = " ".join(TEXTS)
    with _proxy(router, urls, max_text_chars=40) as url:
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200
    assert float(r.headers[GAIN_HEADER]) == router.predict_gain([text[:40]])[0]
    assert fresh[r.headers[ROUTE_HEADER]][0].seen[-1][1]["messages"][0]["content"] == text


def test_route_on_the_conversation_and_content_parts(router, fresh):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    primary, alternative = _primary_text(router), next(t for t in TEXTS if not router.route([t])[0])
    messages = [{"role": "user", "content": [{"type": "text", "text": alternative}]},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": primary}]
    for route_on, text in (("last-user", primary), ("conversation", f"{alternative}\n\nok\n\n{primary}")):
        with _proxy(router, urls, route_on=route_on) as url:
            r = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": messages})
        assert r.status_code == 200
        assert float(r.headers[GAIN_HEADER]) == router.predict_gain([text])[0]


# --------------------------------------------------------------------------- keys
def test_keys_go_only_where_configured_and_are_never_echoed(router, fresh, caplog):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    environ = {"CR_PRIMARY_KEY": KEY}
    caplog.set_level(logging.INFO)
    texts = {True: _primary_text(router), False: next(t for t in TEXTS if not router.route([t])[0])}
    with _proxy(router, urls, keys=["primary=CR_PRIMARY_KEY"], environ=environ) as url:
        client = _client(url, key="client-key")
        _ask(client, texts[True])
        _ask(client, texts[False])
        assert fresh["primary"][0].seen[-1][0]["authorization"] == f"Bearer {KEY}"  # the configured key, not the client's
        assert fresh["alternative"][0].seen[-1][0]["authorization"] == "Bearer client-key"  # no key: the client's
        fresh["primary"][0].mode = "echo401"  # an upstream that repeats the key it got
        with pytest.raises(openai.AuthenticationError) as info:
            _ask(client, texts[True])
        assert KEY not in info.value.response.text and "[redacted]" in info.value.response.text
        fresh["primary"][0].mode = "503"
        with pytest.raises(openai.APIStatusError) as info:
            _ask(client, texts[True])
        outputs = [info.value.response.text, httpx.get(f"{url}/health").text, httpx.get(f"{url}/metrics").text]
        assert "CR_PRIMARY_KEY" in outputs[1]  # /health says where the key comes from ...
    outputs += [r.getMessage() for r in caplog.records]
    assert any("upstream 'primary'" in o for o in outputs[3:])  # the failure was logged
    assert not any(KEY in o for o in outputs)  # ... and no output holds the key itself
    assert KEY not in repr(parse_upstreams([f"primary={urls['primary']}"], keys=["primary=K"], environ={"K": KEY}))


# --------------------------------------------------------------------------- configuration
def test_configuration_errors_name_the_problem(router, text_router, fresh):
    url = fresh["primary"][1]
    cases = [
        (lambda: create_proxy_app(router, parse_upstreams([f"primary={url}"])), r"missing: \['alternative'\]"),
        (lambda: create_proxy_app(router, parse_upstreams([f"primary={url}", f"alternative={url}", f"third={url}"])),
         r"not routed: \['third'\]"),
        (lambda: parse_upstreams([f"primary={url}", f"primary={url}"]), "--upstream names 'primary' twice"),
        (lambda: parse_upstreams(["primary=ftp://host/v1"]), "must be http:// or https://"),
        (lambda: parse_upstreams(["primary"]), "is not NAME=URL"),
        (lambda: parse_upstreams([f"primary={url}"], ["other=m"]), r"--upstream-model names \['other'\]"),
        (lambda: parse_upstreams([f"primary={url}"], keys=["primary=CR_UNSET_VAR"], environ={}),
         "environment variable CR_UNSET_VAR is not set"),
        (lambda: RouteAdapter(router, costs={"primary": 1.0}), "costs apply to K-model routers"),
        (lambda: RouteAdapter(router, primary_share=1.5), r"primary_share must be a number in \[0, 1\]"),
        (lambda: RouteAdapter(router, cost_weight=-0.5), "cost_weight must be a finite number >= 0"),
        (lambda: RouteAdapter(text_router), r"fitted on 2 model pairs .*--route-pair"),
        (lambda: RouteAdapter(text_router, pair="model9|x"), "model pair 'model9|x'"),
    ]
    for make, match in cases:
        with pytest.raises(ProxyConfigError if "must be a" not in match else DataError, match=match):
            make()


def test_a_numeric_router_cannot_route_chat_text(fresh):
    from causal_router.datasets import make_semi_synthetic, reveal_split

    split = reveal_split(make_semi_synthetic(300, 12, random_state=0), n_gold=60, n_test=20, random_state=0)
    numeric = MetaRouter(BiasEstimator(cv=2), random_state=0).fit(split.train)
    with pytest.raises(ProxyConfigError, match="routes numeric features, but a chat request carries text"):
        RouteAdapter(numeric)


def test_a_router_of_several_pairs_routes_one_named_pair(text_router, fresh):
    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    text = "explain python code, question 1"
    with _proxy(text_router, urls, pair="model1|small") as url:
        _, headers = _ask(_client(url), text)
    expected = text_router.predict_gain(pd.DataFrame({"query_text": [text], "pair": "model1|small"}))[0]
    assert float(headers[GAIN_HEADER]) == expected


# --------------------------------------------------------------------------- K models
@pytest.fixture(scope="module")
def k_router_file(tmp_path_factory):
    """The router file of a K-model router fitted from text (GoldOnlyMulti, ridge utilities,
    TF-IDF + SVD). Three models: "large" gains on code topics, "small" on small talk."""
    from causal_router.multi import GoldOnlyMulti
    from causal_router.pairwise import PairwiseRidge

    frame = make_text_frame(600, n_pairs=1, seed=5)
    rng = np.random.default_rng(0)
    models = np.array(["small", "medium", "large"])
    quality = {"small": 0.0 * frame["gold_gain"].to_numpy(), "medium": 0.5 * frame["gold_gain"].to_numpy(),
               "large": frame["gold_gain"].to_numpy()}
    a = rng.integers(3, size=len(frame))
    b = (a + rng.integers(1, 3, size=len(frame))) % 3
    rows = np.arange(len(frame))
    gain = np.array([quality[models[i]][r] - quality[models[j]][r] for r, i, j in zip(rows, a, b)])
    router = GoldOnlyMulti(PairwiseRidge(), reference="small", featurizer=TextFeaturizer(n_components=8),
                           random_state=0)
    router.fit(frame["query_text"].tolist(), gain + 0.1 * rng.standard_normal(len(frame)), model_a=models[a],
               model_b=models[b])
    return router.save(tmp_path_factory.mktemp("k") / "k.cr")


@pytest.fixture(scope="module")
def k_router(k_router_file):
    """That K-model router, read back from its file."""
    from causal_router.io import load_router

    return load_router(k_router_file)


def test_k_model_router_routes_to_named_upstreams(k_router, fresh):
    urls = {"small": fresh["primary"][1], "medium": fresh["alternative"][1], "large": fresh["third"][1]}
    stub_of = {"small": "primary", "medium": "alternative", "large": "third"}
    costs = {"small": 0.0, "medium": 0.3, "large": 1.0}
    with _proxy(k_router, urls, costs=costs, cost_weight=0.4, fallback=True) as url:
        client = _client(url)
        assert [m.id for m in client.models.list().data] == list(k_router.models_) == ["large", "medium", "small"]
        routes = []
        for text in TEXTS:
            completion, headers = _ask(client, text)
            expected = k_router.route([text], costs=costs, cost_weight=0.4)[0]
            assert headers[ROUTE_HEADER] == expected
            assert completion.choices[0].message.content.startswith(f"{stub_of[expected]} says")
            U = k_router.predict_utility([text]).iloc[0]
            assert float(headers[GAIN_HEADER]) == U[expected] - U.drop(expected).max()
            routes.append(expected)
        assert len(set(routes)) >= 2
        # fallback: the next model by utility net of cost
        text = next(t for t, r in zip(TEXTS, routes) if r == "large")
        net = k_router.predict_utility([text]).iloc[0] - 0.4 * pd.Series(costs)
        runner_up = net.drop("large").idxmax()
        fresh["third"][0].mode = "503"
        _, headers = _ask(client, text)
        assert headers[ROUTE_HEADER] == f"{runner_up}; fallback-from=large"
        health = httpx.get(f"{url}/health").json()["proxy"]
        assert health["recent"]["primary_share"] is None and set(health["recent"]["share"]) == set(costs)


def test_k_model_configuration_errors(k_router):
    with pytest.raises(ProxyConfigError, match="primary share applies to two-model routers"):
        RouteAdapter(k_router, primary_share=0.3)
    with pytest.raises(ProxyConfigError, match="cost weight needs costs"):
        RouteAdapter(k_router, cost_weight=0.5)
    with pytest.raises(DataError, match=r"costs names unknown model\(s\) \['huge'\]"):
        RouteAdapter(k_router, costs={"small": 0, "medium": 1, "large": 2, "huge": 3})


# --------------------------------------------------------------------------- the command line
class _ServeCommand:
    """``causal-router serve ARGS`` in a subprocess on a free 127.0.0.1 port, until /health answers
    (at most 120 s); terminated on exit. ``health``: its first /health; ``stderr``: its stderr."""

    def __init__(self, args: list, env: dict | None = None):
        self.args, self.env = args, env

    def __enter__(self):
        import os
        import socket
        import subprocess
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code = "import sys; from causal_router.cli import main; sys.exit(main())"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", str(port), "--log-level",
                                      "warning", *self.args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(self.env or {})})
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read().decode()[-2000:])
            try:
                self.health = httpx.get(f"{self.url}/health", timeout=1.0).json()
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise AssertionError("the proxy did not start within 120 s")
                time.sleep(0.25)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.stderr = self.proc.stderr.read().decode()


def test_serve_command_runs_the_proxy(router, fresh, tmp_path):
    from causal_router.router import BaseRouter

    path = router.save(tmp_path / "router.cr")
    args = ["--router", str(path), "--upstream", f"primary={fresh['primary'][1]}",
            "--upstream", f"alternative={fresh['alternative'][1]}", "--upstream-model", "primary=big-model",
            "--upstream-key", "primary=CR_TEST_PRIMARY_KEY", "--primary-share", "0.3", "--fallback", "--timeout", "5",
            "--max-body-bytes", "20000"]
    with _ServeCommand(args, env={"CR_TEST_PRIMARY_KEY": KEY}) as server:
        url, health = server.url, server.health
        assert health["router_version"].startswith("sha256:") and health["max_body_bytes"] == 20_000
        loaded = BaseRouter.load(path)
        weight = loaded.threshold_for_share(None, 0.3)
        assert health["proxy"]["routing"]["cost_weight"] == weight
        client = _client(url)
        for text in TEXTS[:8]:
            _, headers = _ask(client, text)
            assert (headers[ROUTE_HEADER] == "primary") == bool(loaded.route([text], cost_weight=weight)[0])
        assert all(h["authorization"] == f"Bearer {KEY}" for h, _ in fresh["primary"][0].seen)
        assert httpx.post(f"{url}/route", json={"texts": TEXTS[:2]}).status_code == 200  # POST /route stays
        too_large = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 30_000}]})
        assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "too_large"  # --max-body-bytes
    assert KEY not in server.stderr


def test_serve_command_runs_the_proxy_for_a_k_model_router(k_router, k_router_file, fresh):
    """--costs and --cost-weight reach the K-model decision: each answer comes from
    k_router.route([text], costs=..., cost_weight=0.4)'s model."""
    urls = {"small": fresh["primary"][1], "medium": fresh["alternative"][1], "large": fresh["third"][1]}
    stub_of = {"small": "primary", "medium": "alternative", "large": "third"}
    costs = {"small": 0.0, "medium": 0.3, "large": 1.0}
    args = ["--router", str(k_router_file), *[a for n, u in urls.items() for a in ("--upstream", f"{n}={u}")],
            "--costs", ",".join(f"{m}={c}" for m, c in costs.items()), "--cost-weight", "0.4"]
    with _ServeCommand(args) as server:
        assert server.health["family"] == "k-model"
        assert server.health["proxy"]["routing"]["costs"] == costs
        assert server.health["proxy"]["routing"]["cost_weight"] == 0.4
        client = _client(server.url)
        routes = []
        for text in TEXTS[:12]:
            completion, headers = _ask(client, text)
            expected = k_router.route([text], costs=costs, cost_weight=0.4)[0]
            assert headers[ROUTE_HEADER] == expected
            assert completion.choices[0].message.content.startswith(f"{stub_of[expected]} says")
            routes.append(expected)
    assert len(set(routes)) >= 2, routes  # the costs change routes: at weight 0 ...
    assert set(k_router.route(TEXTS[:12], cost_weight=0.0)) != set(routes)


UP = ["--upstream", "primary=http://127.0.0.1:9/v1", "--upstream", "alternative=http://127.0.0.1:9/v1"]


@pytest.mark.parametrize("args, message", [
    # each argument by the parser (cli.options)
    (["--upstream", "primary"], "argument --upstream: 'primary' is not NAME=URL"),
    (["--upstream", "primary=ftp://host/v1"], "argument --upstream: upstream 'primary': the URL must be http://"),
    (["--upstream", "primary=http://"], "argument --upstream: upstream 'primary'"),
    (UP + ["--upstream-model", "primary"], "argument --upstream-model: 'primary' is not NAME=MODEL"),
    (UP + ["--upstream-key", "primary=CR_SURELY_UNSET_VARIABLE"],
     "argument --upstream-key: the environment variable CR_SURELY_UNSET_VARIABLE is not set"),
    (UP + ["--upstream-key", "primary=not a variable"], "is not the name of an environment variable"),
    (UP + ["--timeout", "0"], "argument --timeout: must be a finite number > 0, got '0'"),
    (UP + ["--timeout", "inf"], "argument --timeout: must be a finite number > 0"),
    (UP + ["--max-concurrency", "0"], "argument --max-concurrency: must be an integer >= 1"),
    (UP + ["--primary-share", "1.5"], "argument --primary-share: must be a finite number from 0 to 1"),
    (UP + ["--cost-weight", "-0.1"], "argument --cost-weight: must be a finite number >= 0"),
    (UP + ["--costs", "a=1,a=2"], "argument --costs: model 'a' is given twice"),
    (UP + ["--primary-share", "0.3", "--cost-weight", "0.1"], "not allowed with argument"),
    # the arguments together, before the server binds its port (commands.serve)
    (UP + ["--upstream", "primary=http://127.0.0.1:9/v1"], "--upstream names 'primary' twice"),
    (UP + ["--upstream-model", "third=m"], "--upstream-model names ['third'], which no --upstream names"),
    (["--fallback"], "--fallback configure the routing proxy"),
    # against the router, after it is loaded and before the server starts
    (["--upstream", "primary=http://127.0.0.1:9/v1"], "missing: ['alternative']"),
    (UP + ["--costs", "primary=1,alternative=0"], "costs apply to K-model routers"),
])
def test_serve_command_refuses_a_bad_proxy_configuration(router, tmp_path, capsys, args, message):
    from causal_router.cli import main

    path = router.save(tmp_path / "router.cr")
    assert main(["serve", "--router", str(path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert "Traceback" not in err[0]


def test_serve_command_refuses_a_k_model_budget_it_cannot_take(k_router_file, capsys):
    from causal_router.cli import main

    up = [a for m in ("small", "medium", "large") for a in ("--upstream", f"{m}=http://127.0.0.1:9/v1")]
    for args, message in ((up + ["--primary-share", "0.3"], "a primary share applies to two-model routers"),
                          (up + ["--cost-weight", "0.3"], "a cost weight needs costs"),
                          (up + ["--costs", "small=0,medium=1"], "costs has no entry for model(s) ['large']"),
                          (up[:4], "missing: ['large']")):
        assert main(["serve", "--router", str(k_router_file), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_concurrent_requests_are_decided_together_with_the_same_numbers(router, fresh):
    """Texts of requests that arrive together are featurized and predicted in one call: the
    decision and gain of each equal router.route / predict_gain of that text alone."""
    from concurrent.futures import ThreadPoolExecutor

    urls = {n: u for n, (_, u) in fresh.items() if n != "third"}
    texts = TEXTS * 2
    with _proxy(router, urls) as url:
        def ask(text):
            r = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": text}]},
                           timeout=30)
            return text, r.headers[ROUTE_HEADER], float(r.headers[GAIN_HEADER])

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, texts))
        batches = _metric(url, "causal_router_proxy_decision_batch_texts_count")
        decided = _metric(url, "causal_router_proxy_decision_batch_texts_sum")
    for text, route, gain in answers:
        assert gain == router.predict_gain([text])[0]
        assert (route == "primary") == bool(router.route([text], cost_weight=0.0)[0])
    assert sum(decided.values()) == len(texts) and sum(batches.values()) <= len(texts)


def test_decisions_of_waiting_requests_are_batched_and_failures_reach_every_request(router):
    import asyncio

    from causal_router.proxy import _DecisionBatcher, _Metrics

    adapter = RouteAdapter(router)
    metrics = _Metrics()
    batcher = _DecisionBatcher(adapter, metrics)

    async def together(texts):
        return await asyncio.gather(*(batcher.choose(t) for t in texts), return_exceptions=True)

    choices = asyncio.run(together(TEXTS))  # all queued before any resumes: one call
    assert choices == adapter.choose(TEXTS)
    value = metrics.registry.get_sample_value
    assert value("causal_router_proxy_decision_batch_texts_count") == 1  # one call ...
    assert value("causal_router_proxy_decision_batch_texts_sum") == len(TEXTS)  # ... for the 32 texts
    _DecisionBatcher.MAX_BATCH, saved = 10, _DecisionBatcher.MAX_BATCH
    try:
        assert asyncio.run(together(TEXTS)) == adapter.choose(TEXTS)  # 10, 10, 10, 2
    finally:
        _DecisionBatcher.MAX_BATCH = saved
    capped = _DecisionBatcher(adapter, _Metrics(), max_chars=70)  # about two texts of TEXTS per call

    async def capped_together(texts):
        return await asyncio.gather(*(capped.choose(t) for t in texts))

    assert asyncio.run(capped_together(TEXTS)) == adapter.choose(TEXTS)
    sizes = capped.metrics.registry.get_sample_value
    assert sizes("causal_router_proxy_decision_batch_texts_count") >= len(TEXTS) / 2
    assert sizes("causal_router_proxy_decision_batch_texts_bucket", {"le": "2.0"}) == \
        sizes("causal_router_proxy_decision_batch_texts_count")  # no call decided more than 70 characters

    class Broken:
        def choose(self, texts):
            raise ValueError("a bug in the router")

    batcher = _DecisionBatcher(Broken(), metrics)
    outcome = asyncio.run(together(["a", "b", "c"]))
    assert isinstance(outcome[0], ValueError)  # the request that ran the batch: the original error
    assert all(isinstance(o, RuntimeError) and "decision failed" in str(o) for o in outcome[1:])
