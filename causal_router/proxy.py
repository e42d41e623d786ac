"""A routing proxy: the OpenAI chat API in front of the routed models (extra ``[serve]``).

:func:`create_proxy_app` adds to the routing server of :func:`causal_router.serve.create_app`
(which keeps ``POST /route``) the endpoints of an OpenAI-compatible server, so that an
application keeps its OpenAI client and changes only its base URL:

- ``POST /v1/chat/completions``: the router reads the text of the conversation (the last user
  message, or with ``route_on="conversation"`` every message), decides, and forwards the body to
  the chosen upstream's ``/chat/completions`` with ``model`` replaced by that upstream's model
  name where one is configured. The upstream's answer comes back unchanged, with the headers
  ``x-causal-router-route`` (the chosen name) and ``x-causal-router-gain`` (the predicted
  gold-scale gain); ``"stream": true`` relays the server-sent events chunk by chunk.
- ``GET /v1/models``: the routed names; ``GET /health`` adds the upstreams, the routing budget
  and the realised share of each route over the last :data:`RECENT_WINDOW` requests;
  ``GET /metrics``: Prometheus text (``prometheus_client``): requests by route, latency,
  upstream errors, fallbacks.

The decision for a text is the router's own: :class:`RouteAdapter` maps it to an upstream name
for both router families (a two-model router's ``route`` is True for ``"primary"``; a K-model
router's ``route`` names the model), so that the choice for a text equals
``router.route([text], ...)`` at the same cost weight; a primary share becomes a cost weight
through the router file's training gains (``router.threshold_for_share(None, share)``).

Failures. An upstream that cannot be reached, refuses, times out or answers 5xx gives an
OpenAI-style error body ``{"error": {"message", "type", "param", "code"}}`` with 502 (504 for a
timeout) naming the upstream (its URL without credentials, never its key); with ``fallback`` the
next upstream of the decision (the other one of two) is tried once, and
``x-causal-router-route`` says ``"<name>; fallback-from=<first>"``. An upstream's 4xx answer is
passed back (a configured key it echoes is redacted). A stream cut by its upstream ends with an
error event. At most ``max_concurrency`` requests are forwarded at a time (more get 503 with
``Retry-After``); a client that disconnects cancels its upstream request; a stream is relayed
chunk by chunk, never held whole.

Limits. The chat endpoints sit behind the routing server's own limits
(:class:`~causal_router.serve.BodyLimit`, added by :func:`~causal_router.serve.create_app`): a
body over ``max_body_bytes`` gets 413 before it is read, a body that breaks its JSON limits
(nesting, long numbers, repeated keys, bad UTF-8) gets 422, both in OpenAI's error format with
``param`` naming the field. A body that is not a chat-completions request gets 422 naming the
field too (``type`` ``"invalid_request_error"``), before any upstream is called.

Keys. An upstream with a key (read from the environment by :func:`parse_upstreams`) gets
``Authorization: Bearer <key>`` and never the client's; an upstream without one gets the
client's ``Authorization`` header as sent. Keys never appear in logs, errors, ``/health`` or
metrics.
"""

import contextlib
import functools
import json
import logging
import math
import os
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ._validation import DataError
from .router import BaseRouter
from .routing import check_cost_weight, choose, cost_matrix, decide
from .serve import MAX_BODY_BYTES, MAX_REQUEST_CHARS, MAX_TEXT_LENGTH, SERVE_EXTRA_MESSAGE, create_app, serve

__all__ = ["create_proxy_app", "serve_proxy", "parse_upstreams", "Upstream", "RouteAdapter", "Choice",
           "ProxyConfigError", "ROUTE_HEADER", "GAIN_HEADER", "ROUTE_ON", "DEFAULT_TIMEOUT",
           "DEFAULT_MAX_CONCURRENCY", "RECENT_WINDOW"]

#: Response headers naming the chosen upstream and the predicted gain.
ROUTE_HEADER = "x-causal-router-route"
GAIN_HEADER = "x-causal-router-gain"
#: Which text of a conversation the router reads.
ROUTE_ON = ("last-user", "conversation")
#: Seconds to wait for an upstream to connect, and then between the bytes of its answer.
DEFAULT_TIMEOUT = 60.0
#: Requests forwarded at a time; more get 503 (the OpenAI clients retry it).
DEFAULT_MAX_CONCURRENCY = 100
#: Requests over which ``/health`` reports the realised share of each route.
RECENT_WINDOW = 1000

logger = logging.getLogger(__name__)

# Headers not forwarded: hop-by-hop (RFC 9110 7.6.1), recomputed (length, host), cookies (scoped
# to another host), and the proxy's own.
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
        "trailer", "transfer-encoding", "upgrade", "content-length", "host"}
_NOT_FORWARDED = _HOP | {"cookie", "authorization", "accept-encoding"}
_NOT_RETURNED = _HOP | {"set-cookie", "date", "server", ROUTE_HEADER, GAIN_HEADER}
_NAME = re.compile(r"[^\s=,]+")


class ProxyConfigError(DataError):
    """A proxy configuration that cannot work: an upstream missing or unknown, a bad URL, an
    unset key variable, a budget the router cannot take."""


# ---------------------------------------------------------------------------- upstreams
@dataclass(frozen=True)
class Upstream:
    """One upstream OpenAI-compatible server.

    Parameters
    ----------
    name : str
        The routed name it serves (``"primary"`` / ``"alternative"``, or a K-model router's model).
    url : str
        Base URL of its OpenAI API, e.g. ``http://127.0.0.1:8001/v1``: the proxy posts to
        ``url + "/chat/completions"``.
    model : str, optional
        Model name written into the forwarded body's ``model`` (None: the client's is kept).
    key : str, optional
        API key sent as ``Authorization: Bearer``; never shown (not in ``repr``, errors, logs,
        ``/health`` or metrics). None: the client's ``Authorization`` header is forwarded.
    key_env : str, optional
        The environment variable the key was read from (shown by ``/health``).

    Raises
    ------
    ProxyConfigError
        For a name with spaces, ``=`` or ``,``, or a URL that is not http(s) with a host. A
        trailing ``/`` of the URL is dropped.
    """

    name: str
    url: str
    model: str | None = None
    key: str | None = field(default=None, repr=False, compare=False)
    key_env: str | None = None

    def __post_init__(self):
        import httpx

        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ProxyConfigError(f"upstream name {str(self.name)[:80]!r} must be a word without spaces, '=' or ','")
        try:
            u = httpx.URL(self.url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise ProxyConfigError(f"upstream {self.name!r}: {str(self.url)[:200]!r} is not a URL ({exc})") from None
        if u.scheme not in ("http", "https") or not u.host:
            raise ProxyConfigError(f"upstream {self.name!r}: the URL must be http:// or https:// with a host, e.g. "
                                   "http://127.0.0.1:8001/v1")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @property
    def display_url(self) -> str:
        """The URL without user, password, query or fragment."""
        import httpx

        u = httpx.URL(self.url)
        port = f":{u.port}" if u.port else ""
        return f"{u.scheme}://{u.host}{port}{u.path}".rstrip("/")

    def describe(self) -> str:
        """How messages name this upstream.

        Returns
        -------
        str
            ``upstream '<name>' (<display_url>)``: no key, no user or password.
        """
        return f"upstream {self.name!r} ({self.display_url})"


def parse_upstreams(upstream: Sequence[str], models: Sequence[str] = (), keys: Sequence[str] = (),
                    environ: Mapping[str, str] | None = None) -> dict[str, Upstream]:
    """Upstreams from the command line's ``NAME=URL``, ``NAME=MODEL`` and ``NAME=ENV_VAR`` strings.

    Parameters
    ----------
    upstream : sequence of str
        ``NAME=URL`` (``--upstream``), one per routed name; URL is http or https.
    models : sequence of str
        ``NAME=MODEL`` (``--upstream-model``), at most one per upstream.
    keys : sequence of str
        ``NAME=ENV_VAR`` (``--upstream-key``): the key is read from that environment variable,
        which must be set and not empty.
    environ : mapping, optional
        Where keys are read (default ``os.environ``).

    Returns
    -------
    dict of str to Upstream
        The upstreams by routed name, in the order given.

    Raises
    ------
    ProxyConfigError
        Naming the option at fault (never a key's value).
    """
    environ = os.environ if environ is None else environ
    urls = _pairs(upstream, "--upstream", "NAME=URL (e.g. primary=http://127.0.0.1:8001/v1)")
    model = _pairs(models, "--upstream-model", "NAME=MODEL (e.g. primary=gpt-4o)")
    env = _pairs(keys, "--upstream-key", "NAME=ENV_VAR (e.g. primary=OPENAI_API_KEY)")
    for option, given in (("--upstream-model", model), ("--upstream-key", env)):
        unknown = [n for n in given if n not in urls]
        if unknown:
            raise ProxyConfigError(f"{option} names {unknown}, which no --upstream names (upstreams: {list(urls)})")
    secrets = {}
    for name, var in env.items():
        value = environ.get(var, "")
        if not value.strip():
            raise ProxyConfigError(f"--upstream-key {name}={var}: the environment variable {var} is not set or empty")
        secrets[name] = value.strip()
    return {name: Upstream(name, url, model.get(name), secrets.get(name), env.get(name)) for name, url in urls.items()}


def _pairs(items: Sequence[str], option: str, form: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = str(item).partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _NAME.fullmatch(name) or not value:
            raise ProxyConfigError(f"{option} {str(item)[:80]!r} is not {form}")
        if name in out:
            raise ProxyConfigError(f"{option} names {name!r} twice")
        out[name] = value
    return out


# ---------------------------------------------------------------------------- the decision
class Choice(NamedTuple):
    """The decision for one text: the upstream name, the predicted gold-scale gain, and the
    names to fall back to in order.

    Parameters
    ----------
    route : str
        The upstream name chosen.
    gain : float
        Two-model routers: the predicted gain of the primary over the alternative; K-model
        routers: the chosen model's predicted utility minus the best other model's (gold scale).
    fallbacks : tuple of str
        The other upstream names, in the order to try them.
    """

    route: str
    gain: float
    fallbacks: tuple[str, ...]


class RouteAdapter:
    """A fitted router's decision for a text, as an upstream name, for both router families.

    Two-model routers (``router.family == "two-model"``): names ``("primary", "alternative")``;
    the route is ``"primary"`` where ``router.route([text], cost_weight=w)`` is True; the gain is
    the predicted gain of the primary over the alternative; the fallback is the other name.
    K-model routers (``"k-model"``): names ``router.models_``; the route is
    ``router.route([text], costs=costs, cost_weight=w)``; the gain is the chosen model's predicted
    utility minus the best other model's (gold scale; negative where a cheaper model is chosen);
    the fallbacks are the other models by decreasing utility net of cost. Both apply the rules
    of :mod:`causal_router.routing` to the router's own predictions for the text.

    The router must hold a fitted text featurizer (``featurizer_``): a chat request carries text.

    Parameters
    ----------
    router : fitted router with ``featurizer_``
        A two-model or K-model router fitted from text.
    cost_weight : float >= 0, optional
        The routing rule's cost weight (default 0).
    primary_share : float, optional
        Two-model routers: the share of queries for the primary, turned into a cost weight from the
        router's training gains (``router.threshold_for_share(None, primary_share)``).
    costs : mapping of str to float, optional
        K-model routers: the cost of each model (needed for a cost weight other than 0).
    pair : str, optional
        The model-pair label given to the featurizer with every text (a router fitted on several
        pairs needs one; default: the router's only pair).
    """

    def __init__(self, router, *, cost_weight: float | None = None, primary_share: float | None = None,
                 costs: Mapping[str, float] | None = None, pair: str | None = None):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        if not isinstance(router, BaseRouter):
            raise ProxyConfigError(f"{type(router).__name__} is not a causal_router router")
        try:
            check_is_fitted(router, "n_features_in_")
        except NotFittedError:
            raise ProxyConfigError(f"the {type(router).__name__} is not fitted") from None
        self.router = router
        self.multi = router.family == "k-model"
        self.featurizer = getattr(router, "featurizer_", None)
        if self.featurizer is None:
            raise ProxyConfigError(
                f"this {type(router).__name__} routes numeric features, but a chat request carries text: serve a "
                "router fitted from text (causal-router fit DATA --text COLUMN)")
        self.featurizer.check_available()
        if primary_share is not None and cost_weight is not None:
            raise ProxyConfigError("give a primary share or a cost weight, not both")
        self.costs = None
        if self.multi:
            self.names = tuple(str(m) for m in router.models_)
            if primary_share is not None:
                raise ProxyConfigError("a primary share applies to two-model routers; a K-model router takes costs "
                                       "and a cost weight")
            self.cost_weight = check_cost_weight(0.0 if cost_weight is None else cost_weight)
            if costs is not None:
                self.costs = dict(costs)
                cost_matrix(self.costs, self.names, 1)  # a finite cost for each model, no other name
            elif self.cost_weight:
                raise ProxyConfigError("a cost weight needs costs (the cost of each model)")
        else:
            self.names = ("primary", "alternative")
            if costs is not None:
                raise ProxyConfigError("costs apply to K-model routers; a two-model router takes a cost weight or a "
                                       "primary share")
            self.cost_weight = (router.threshold_for_share(None, primary_share) if primary_share is not None
                                else check_cost_weight(0.0 if cost_weight is None else cost_weight))
        self.primary_share = primary_share
        self.pair = self._pair(pair)

    def _pair(self, pair: str | None) -> str | None:
        f = self.featurizer
        known = [str(p) for p in f.pairs_]
        if pair is None:
            if len(known) > 1:
                raise ProxyConfigError(f"the router was fitted on {len(known)} model pairs {known}: name the pair "
                                       "of the two upstreams (--route-pair LABEL)")
            return known[0] if known and f.pair_column is not None else None
        if f.pair_column is None or str(pair) not in known:
            raise ProxyConfigError(f"model pair {pair!r}: the router knows {known or 'no model pairs'}")
        return str(pair)

    def inputs(self, texts: Sequence[str]):
        """What the router reads for ``texts``.

        Parameters
        ----------
        texts : sequence of str
            The request texts.

        Returns
        -------
        list of str or DataFrame
            The texts, or (where the featurizer reads a text column) a DataFrame of the
            featurizer's text column and, where the adapter has a pair, its pair column.
        """
        f = self.featurizer
        if f.text_column is None:
            return list(texts)
        columns = {f.text_column: list(texts)}
        if self.pair is not None:
            columns[f.pair_column] = [self.pair] * len(columns[f.text_column])
        return pd.DataFrame(columns, dtype=object)  # object columns: cheaper than Arrow strings for a few rows

    def choose(self, texts: Sequence[str]) -> list[Choice]:
        """The decision for each text, in order (one prediction for all of them).

        Parameters
        ----------
        texts : sequence of str
            The request texts.

        Returns
        -------
        list of Choice
            One decision per text, in order.
        """
        X = self.inputs(texts)
        if not self.multi:
            gain = np.asarray(self.router.predict_gain(X), dtype=float)
            primary = decide(gain, self.cost_weight)  # router.route(X, cost_weight=w), from the same prediction
            return [Choice("primary", g, ("alternative",)) if p else Choice("alternative", g, ("primary",))
                    for p, g in zip(primary.tolist(), gain.tolist())]
        U = self.router.predict_utility(X).to_numpy()
        C = cost_matrix(self.costs, self.names, len(U))
        chosen = choose(U, self.cost_weight, C)  # router.route(X, costs=..., cost_weight=w), likewise
        net = U - self.cost_weight * C
        out = []
        for j, u, v in zip(chosen.tolist(), U, net):
            others = [k for k in np.argsort(-v, kind="stable").tolist() if k != j]
            out.append(Choice(self.names[j], float(u[j] - max(u[k] for k in others)),
                              tuple(self.names[k] for k in others)))
        return out


# ---------------------------------------------------------------------------- request bodies
class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _message_text(content, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _BadRequest(f"{where}.content[{j}] must be an object with a 'type'", f"{where}.content")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise _BadRequest(f"{where}.content[{j}].text must be a string", f"{where}.content")
                parts.append(part["text"])
        return "\n".join(parts)
    raise _BadRequest(f"{where}.content must be a string, a list of content parts or null", f"{where}.content")


def _parse_chat(raw: bytes, route_on: str, max_chars: int) -> tuple[dict, str, bool]:
    """(body, text to route: its first ``max_chars`` characters, stream) of a chat-completions
    request; _BadRequest naming the field."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge integers, deep nesting
        raise _BadRequest(f"the body is not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty list", "messages")
    texts, last_user = [], None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _BadRequest(f"messages[{i}] must be an object with a string 'role'", f"messages[{i}]")
        texts.append(_message_text(m.get("content"), f"messages[{i}]"))
        if m["role"] == "user":
            last_user = texts[-1]
    if "model" in body and not isinstance(body["model"], str):
        raise _BadRequest("model must be a string", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _BadRequest("stream must be true or false", "stream")
    if route_on == "last-user":
        if last_user is None:
            raise _BadRequest("messages holds no user message to route on", "messages")
        text = last_user
    else:
        text = "\n\n".join(t for t in texts if t)
    return body, text[:max_chars], stream


def _refusal(path: str, status: int, field: str, message: str, kind: str) -> dict | None:
    """The body of a :class:`~causal_router.serve.BodyLimit` refusal on the OpenAI paths: OpenAI's
    error format (elsewhere None: the routing server's own)."""
    if not path.startswith("/v1/"):
        return None
    return {"error": {"message": f"{field}: {message}", "type": "invalid_request_error",
                      "param": None if field == "body" else field, "code": kind}}


def _error(status: int, message: str, kind: str, code: str | None = None, param: str | None = None,
           headers: Mapping[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=dict(headers or {}))


# ---------------------------------------------------------------------------- metrics and state
class _Metrics:
    """The proxy's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter as PCounter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        ns = "causal_router_proxy"
        self.requests = PCounter("requests", "Chat requests by the router's decision, the upstream that answered "
                                 "and the status returned", ["route", "served_by", "status"], namespace=ns,
                                 registry=self.registry)
        self.latency = Histogram("request_duration_seconds", "Seconds from a chat request's arrival to the end of "
                                 "its answer (a stream's last chunk), by decision", ["route"], namespace=ns,
                                 registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.decision = Histogram("decision_duration_seconds", "Seconds to featurize and decide one batch of texts "
                                  "(the texts of the requests that arrived together)", namespace=ns,
                                  registry=self.registry,
                                  buckets=(.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1))
        self.batch = Histogram("decision_batch_texts", "Texts decided in one call", namespace=ns,
                               registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.upstream_errors = PCounter("upstream_errors", "Failed upstream requests by upstream and kind "
                                        "(connect, timeout, status_5xx, protocol, stream_interrupted)",
                                        ["upstream", "kind"], namespace=ns, registry=self.registry)
        self.fallbacks = PCounter("fallbacks", "Requests sent to a fallback upstream", ["from_upstream", "to_upstream"],
                                  namespace=ns, registry=self.registry)
        self.rejected = PCounter("rejected", "Chat requests refused before routing, by reason", ["reason"],
                                 namespace=ns, registry=self.registry)
        self.in_flight = Gauge("in_flight", "Chat requests being forwarded", namespace=ns, registry=self.registry)


class _DecisionBatcher:
    """Decides the texts of concurrent requests in one call of the adapter.

    A request puts its text in the queue and lets the event loop run the other requests that are
    ready (one turn, no timer: a lone request is decided at once); the first request to resume
    decides the queued texts in queue order, at most ``MAX_BATCH`` texts and ``max_chars``
    characters per call (the routing server's ``max_text_chars`` of one request; a text alone
    always goes). Featurizing and predicting a batch costs far less per text than one text at a
    time, and the numbers are the same: TF-IDF features, their projection and the trees are
    computed row by row.
    """

    MAX_BATCH = 256

    def __init__(self, adapter: RouteAdapter, metrics: "_Metrics", max_chars: int = MAX_REQUEST_CHARS):
        self.adapter, self.metrics, self.max_chars = adapter, metrics, max_chars
        self.queue: list = []  # (text, future)

    async def choose(self, text: str) -> Choice:
        import asyncio

        future = asyncio.get_running_loop().create_future()
        self.queue.append((text, future))
        await asyncio.sleep(0)  # one turn of the loop: requests that are ready queue their texts
        while not future.done():  # in queue order, MAX_BATCH texts and max_chars characters at a time
            size, chars = 1, len(self.queue[0][0])
            while size < min(len(self.queue), self.MAX_BATCH) and chars + len(self.queue[size][0]) <= self.max_chars:
                chars += len(self.queue[size][0])
                size += 1
            batch, self.queue = self.queue[:size], self.queue[size:]
            self._decide(batch, future)
        return future.result()

    def _decide(self, batch: list, own) -> None:
        t0 = time.perf_counter()
        choices = None
        try:
            choices = self.adapter.choose([text for text, _ in batch])
        finally:  # a failure raises here, in the request that ran the batch; the others are told
            for i, (_, future) in enumerate(batch):
                if choices is not None:
                    future.set_result(choices[i])
                elif future is own:
                    future.cancel()
                else:
                    future.set_exception(RuntimeError("the routing decision failed (see the traceback of the "
                                                      "request decided with this one)"))
        self.metrics.decision.observe(time.perf_counter() - t0)
        self.metrics.batch.observe(len(batch))


class _Failure(NamedTuple):
    status: int  # 502 or 504
    kind: str    # the metric's kind
    message: str


# ---------------------------------------------------------------------------- the application
def create_proxy_app(router, upstreams: Mapping[str, Upstream] | Sequence[Upstream], *,
                     cost_weight: float | None = None, primary_share: float | None = None,
                     costs: Mapping[str, float] | None = None, pair: str | None = None, fallback: bool = False,
                     timeout: float = DEFAULT_TIMEOUT, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                     route_on: str = "last-user", version: str | None = None, **server_options: Any):
    """The routing server of :func:`causal_router.serve.create_app` with the OpenAI-compatible
    proxy endpoints added (``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /metrics``,
    a ``proxy`` section in ``GET /health``).

    Parameters
    ----------
    router : fitted router holding a text featurizer
        Two-model (:class:`~causal_router.router.BaseRouter`) or K-model (``MultiRouter``);
        its decisions are mapped to upstream names by :class:`RouteAdapter`.
    upstreams : mapping of name to Upstream, or a sequence of Upstream
        Exactly one per routed name (:func:`parse_upstreams` builds them).
    cost_weight : float >= 0, optional
        The routing rule's cost weight, as in :class:`RouteAdapter` (default 0).
    primary_share : float, optional
        Two-model routers: the share of queries for the primary, as in :class:`RouteAdapter`.
    costs : mapping of str to float, optional
        K-model routers: the cost of each model, as in :class:`RouteAdapter`.
    pair : str, optional
        The model-pair label given to the featurizer, as in :class:`RouteAdapter`.
    fallback : bool, default=False
        Try the next upstream once where the chosen one fails (cannot be reached, times out,
        answers 5xx).
    timeout : float, default=DEFAULT_TIMEOUT
        Seconds to wait for an upstream to connect, and then between the bytes of its answer.
    max_concurrency : int, default=DEFAULT_MAX_CONCURRENCY
        Chat requests forwarded at a time; more get 503 with ``Retry-After: 1``.
    route_on : {"last-user", "conversation"}, default="last-user"
        The text the router reads: the last user message, or every message's text joined by blank
        lines; its first ``max_text_chars`` characters at most (and at most
        :data:`~causal_router.serve.MAX_TEXT_LENGTH`). The body is forwarded whole.
    version : str, optional
        The router's version, as in :func:`~causal_router.serve.create_app`.
    **server_options : Any
        Passed to :func:`~causal_router.serve.create_app`: its request limits, which hold for the
        proxy's endpoints too (``max_body_bytes``: a larger chat body gets 413; the JSON limits of
        :class:`~causal_router.serve.BodyLimit`: 422; both in OpenAI's error format;
        ``max_text_chars``: the characters the router reads of one request, and of the requests
        decided together).

    Returns
    -------
    fastapi.FastAPI
        The application.

    Raises
    ------
    ProxyConfigError
        For a configuration that cannot work.
    ImportError
        Without the ``[serve]`` extra.
    """
    try:
        import anyio
        import httpx
        from fastapi import Request
        from fastapi.responses import Response, StreamingResponse
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    except ImportError as exc:
        raise ImportError(f"{SERVE_EXTRA_MESSAGE} (missing: {exc.name})") from exc

    adapter = RouteAdapter(router, cost_weight=cost_weight, primary_share=primary_share, costs=costs, pair=pair)
    ups = dict(upstreams) if isinstance(upstreams, Mapping) else {}
    if not isinstance(upstreams, Mapping):
        for u in upstreams:
            if u.name in ups:
                raise ProxyConfigError(f"two upstreams are named {u.name!r}")
            ups[u.name] = u
    missing = [n for n in adapter.names if n not in ups]
    extra = [n for n in ups if n not in adapter.names]
    if missing or extra:
        raise ProxyConfigError(
            f"the router routes to {list(adapter.names)}: give exactly one --upstream NAME=URL for each"
            + (f"; missing: {missing}" if missing else "") + (f"; not routed: {extra}" if extra else ""))
    if route_on not in ROUTE_ON:
        raise ProxyConfigError(f"route_on must be one of {ROUTE_ON}, got {route_on!r}")
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ProxyConfigError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < math.inf:
        raise ProxyConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    keys = [u.key for u in ups.values() if u.key]
    endpoints = {n: httpx.URL(f"{u.url}/chat/completions") for n, u in ups.items()}

    def redact(text: str) -> str:
        for key in keys:
            text = text.replace(key, "[redacted]")
        return text

    app = create_app(router, version=version, error_body=_refusal, **server_options)
    max_chars = min(MAX_TEXT_LENGTH, app.state.limits["max_text_chars"])  # of one request's text
    adapter.choose(["warm-up"])  # featurizer and gain model ready before the first request
    metrics = _Metrics()
    decisions = _DecisionBatcher(adapter, metrics, app.state.limits["max_text_chars"])
    recent: deque = deque(maxlen=RECENT_WINDOW)  # (decision, served_by)
    state = {"client": None, "in_flight": 0}
    started = int(time.time())

    def client() -> "httpx.AsyncClient":
        if state["client"] is None:  # created in the serving event loop, closed at shutdown
            state["client"] = httpx.AsyncClient(
                timeout=httpx.Timeout(float(timeout)), follow_redirects=False,
                limits=httpx.Limits(max_connections=max_concurrency + 8, max_keepalive_connections=max_concurrency))
        return state["client"]

    inner_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a):
        async with inner_lifespan(a) as value:
            try:
                yield value
            finally:
                if state["client"] is not None:
                    await state["client"].aclose()
                    state["client"] = None

    app.router.lifespan_context = lifespan

    def proxy_health() -> dict:
        window = list(recent)
        routes = Counter(d for d, _ in window)
        share = {n: routes[n] / len(window) for n in adapter.names} if window else {n: None for n in adapter.names}
        return {"proxy": {
            "upstreams": {n: {"url": u.display_url, "model": u.model,
                              "authorization": f"key from ${u.key_env}" if u.key else "the client's"}
                          for n, u in ups.items()},
            "routing": {"names": list(adapter.names), "cost_weight": adapter.cost_weight,
                        "primary_share": adapter.primary_share, "costs": adapter.costs, "pair": adapter.pair,
                        "route_on": route_on, "fallback": fallback},
            "recent": {"window": RECENT_WINDOW, "requests": len(window), "share": share,
                       "primary_share": share.get("primary") if not adapter.multi else None,
                       "fallbacks": sum(1 for d, s in window if s is not None and s != d),
                       "unanswered": sum(1 for _, s in window if s is None)},
            "in_flight": state["in_flight"], "max_concurrency": max_concurrency}}

    app.state.health_sections.append(proxy_health)

    @app.get("/v1/models")
    def models() -> dict:
        """The routed names, as OpenAI model objects."""
        return {"object": "list", "data": [{"id": n, "object": "model", "created": started, "owned_by": "causal-router",
                                            "upstream_model": ups[n].model} for n in adapter.names]}

    @app.get("/metrics")
    def prometheus() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def forward_headers(request: Request, upstream: Upstream) -> dict:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        headers["accept-encoding"] = "identity"  # bodies pass through as received
        if upstream.key:
            headers["authorization"] = f"Bearer {upstream.key}"
        elif "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        return headers

    def returned_headers(resp: "httpx.Response", route_value: str, gain: float) -> dict:
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in _NOT_RETURNED}
        headers[ROUTE_HEADER] = route_value
        headers[GAIN_HEADER] = repr(gain)
        return headers

    async def attempt(name: str, body: dict, raw: bytes, request: Request, stream: bool):
        """One upstream request: (response, its body as received or None for a stream, None), or
        (None, None, _Failure)."""
        upstream = ups[name]
        if upstream.model is not None and body.get("model") != upstream.model:
            raw = json.dumps({**body, "model": upstream.model}, ensure_ascii=False).encode()
        req = client().build_request("POST", endpoints[name], content=raw, headers=forward_headers(request, upstream))
        resp, keep = None, False
        try:
            resp = await client().send(req, stream=True)
            if resp.status_code >= 500:
                failure = _Failure(502, "status_5xx", f"{upstream.describe()} answered {resp.status_code} "
                                                      f"{resp.reason_phrase}".rstrip())
            else:
                content = None
                if not stream or resp.status_code >= 400:
                    content = await resp.aread()  # decoded where the upstream compressed it anyway
                keep = True
                return resp, content, None
        except httpx.TimeoutException as exc:
            failure = _Failure(504, "timeout", f"{upstream.describe()} timed out after {timeout:g} s "
                                               f"({type(exc).__name__})")
        except httpx.ConnectError as exc:
            failure = _Failure(502, "connect", f"{upstream.describe()} could not be reached "
                                               f"({str(exc) or type(exc).__name__})")
        except httpx.TransportError as exc:  # the connection broke, or the answer was not HTTP
            failure = _Failure(502, "protocol", f"{upstream.describe()} failed ({type(exc).__name__}: {exc})")
        finally:
            if resp is not None and not keep:  # a failure, or the client went away (cancelled)
                with anyio.CancelScope(shield=True):
                    await resp.aclose()
        failure = failure._replace(message=redact(failure.message))
        metrics.upstream_errors.labels(name, failure.kind).inc()
        logger.warning("causal_router proxy: %s", failure.message)
        return None, None, failure

    async def until_disconnected(request: Request) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    def finish(choice: Choice, served_by: str | None, status: int, t0: float) -> None:
        recent.append((choice.route, served_by))
        metrics.requests.labels(choice.route, served_by or "none", str(status)).inc()
        metrics.latency.labels(choice.route).observe(time.perf_counter() - t0)

    class Relay(StreamingResponse):
        """A StreamingResponse whose ``close`` runs however the stream ends (the client gone too)."""

        def __init__(self, content, close, **kwargs):
            super().__init__(content, **kwargs)
            self._close = close

        async def __call__(self, scope, receive, send):
            try:
                await super().__call__(scope, receive, send)
            finally:
                await self._close()

    def release() -> None:
        state["in_flight"] -= 1
        metrics.in_flight.dec()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """Route an OpenAI chat-completions request to the chosen upstream and relay its answer."""
        t0 = time.perf_counter()
        raw = await request.body()
        try:
            body, text, stream = _parse_chat(raw, route_on, max_chars)
        except _BadRequest as exc:
            metrics.rejected.labels("invalid_request").inc()
            return _error(422, str(exc), "invalid_request_error", "invalid_request", exc.param)
        if state["in_flight"] >= max_concurrency:
            metrics.rejected.labels("overloaded").inc()
            return _error(503, f"the proxy is forwarding its limit of {max_concurrency} requests; retry shortly",
                          "server_error", "overloaded", headers={"retry-after": "1"})
        state["in_flight"] += 1
        metrics.in_flight.inc()
        handed_over = False  # a stream releases its slot when it ends
        try:
            choice = await decisions.choose(text)
            if not math.isfinite(choice.gain):
                raise RuntimeError("the router returned a non-finite gain")  # a bug: 500
            names = [choice.route, *choice.fallbacks[:1]] if fallback else [choice.route]
            resp, content, served, failures, gone = None, None, None, [], False
            async with anyio.create_task_group() as tg:
                async def watch():
                    nonlocal gone
                    await until_disconnected(request)
                    gone = True
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                for i, name in enumerate(names):
                    if i:
                        metrics.fallbacks.labels(names[i - 1], name).inc()
                    resp, content, failure = await attempt(name, body, raw, request, stream)
                    if resp is not None:
                        served = name
                        break
                    failures.append(failure)
                tg.cancel_scope.cancel()
            if gone and served is None:  # the client went away; its upstream request was cancelled
                finish(choice, None, 499, t0)
                return Response(status_code=499)
            last = served or names[len(failures) - 1]
            route_value = choice.route if last == choice.route else f"{last}; fallback-from={choice.route}"
            if served is None:
                status = 504 if failures[-1].status == 504 else 502
                finish(choice, None, status, t0)
                return _error(status, "; then ".join(f.message for f in failures), "upstream_error",
                              f"upstream_{failures[-1].kind}",
                              headers={ROUTE_HEADER: route_value, GAIN_HEADER: repr(choice.gain)})
            headers = returned_headers(resp, route_value, choice.gain)
            if content is not None:
                headers.pop("content-encoding", None)  # the body was decoded
                if resp.status_code >= 400 and keys:
                    content = _redacted(content, resp.encoding, redact)
                finish(choice, served, resp.status_code, t0)
                return Response(content, status_code=resp.status_code, headers=headers)

            async def relay():
                try:
                    async for chunk in resp.aiter_raw():
                        yield chunk
                except httpx.TransportError as exc:
                    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "stream_interrupted"
                    metrics.upstream_errors.labels(served, kind).inc()
                    message = redact(f"{ups[served].describe()} broke off its stream ({type(exc).__name__})")
                    logger.warning("causal_router proxy: %s", message)
                    event = {"error": {"message": message, "type": "upstream_error", "param": None,
                                       "code": "upstream_stream_interrupted"}}
                    yield f"data: {json.dumps(event)}\n\n".encode()

            async def close():
                with anyio.CancelScope(shield=True):
                    await resp.aclose()
                    release()
                    finish(choice, served, resp.status_code, t0)

            handed_over = True
            return Relay(relay(), close, status_code=resp.status_code, headers=headers)
        finally:
            if not handed_over:
                release()

    app.state.proxy = {"adapter": adapter, "upstreams": ups, "metrics_registry": metrics.registry}
    return app


def _redacted(content: bytes, encoding: str | None, redact) -> bytes:
    """An upstream's error body with any configured key removed (where it decodes as text)."""
    try:
        text = content.decode(encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return content
    return redact(text).encode(encoding or "utf-8")


# ---------------------------------------------------------------------------- running it
def serve_proxy(router_path: str | os.PathLike, upstreams: Mapping[str, Upstream] | Sequence[Upstream], *,
                host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                max_body_bytes: int = MAX_BODY_BYTES, **options: Any) -> None:
    """Load a router file and serve it with the proxy until interrupted (blocking):
    :func:`causal_router.serve.serve` (its address bound first, ``max_body_bytes`` its body
    limit) with :func:`create_proxy_app` and ``options`` as the application.

    Parameters
    ----------
    router_path : str or PathLike
        The router file (:func:`causal_router.io.load_router`).
    upstreams : mapping of name to Upstream, or a sequence of Upstream
        Exactly one per routed name (:func:`parse_upstreams` builds them).
    host : str, default="127.0.0.1"
        The address to listen on (a non-loopback address is logged as a warning: there is no
        authentication).
    port : int, default=8000
        The port to listen on (0: any free port).
    log_level : str, default="info"
        uvicorn's log level.
    max_body_bytes : int, default=MAX_BODY_BYTES
        The largest request body, in bytes; a larger one gets 413.
    **options : Any
        The other keyword arguments of :func:`create_proxy_app` (budget, pair, fallback,
        timeout, concurrency, ``route_on`` and the request limits).

    Raises
    ------
    DataError
        For an address that cannot be bound, before the router is loaded.
    ProxyConfigError
        For a configuration that cannot work.
    """
    serve(router_path, host=host, port=port, log_level=log_level, max_body_bytes=max_body_bytes,
          make_app=functools.partial(create_proxy_app, upstreams=upstreams, **options))
