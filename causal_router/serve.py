"""A routing server: a fitted router behind ``POST /route`` and ``GET /health`` (extra ``[serve]``).

:func:`create_app` wraps a fitted router in a FastAPI (ASGI) application; :func:`serve` runs one
with uvicorn (what ``causal-router serve --router router.cr`` does); :func:`background_server`
runs one in a thread on a free local port, for tests, notebooks and benchmarks.
The OpenAI-compatible routing proxy (:mod:`causal_router.proxy`) adds its endpoints to this
application.

``POST /route`` takes JSON ``{"texts": [...]}`` (a router fitted from text: it applies its own
featurizer) or ``{"features": [[...], ...]}`` (n rows of the router's numeric features), an
optional ``"pair"`` (one model-pair label for every text, or one per text, for a router fitted
on several pairs) and at most one budget:

- ``"cost_weight": w``: send a query to the primary model iff its predicted gold-scale gain
  exceeds w (costs 1 and 0); the default is 0.
- ``"primary_share": r``: send the share r of *this request's* queries with the highest
  predicted gains, floor(r * n) of them (:meth:`~causal_router.router.BaseRouter.threshold_for_share`
  on the request's own queries). A share is a property of a batch: a one-query request with
  r < 1 sends nothing. For a budget over a stream of single queries, compute the cost weight
  once on a reference set (``router.threshold_for_share(X_ref, r)``) and send ``cost_weight``.

The answer holds, per query in request order, the decision (``"primary"`` or
``"alternative"``) and the predicted gold-scale gain, with the router's version and the cost
weight applied.

A K-model router (:mod:`causal_router.multi`) takes the same ``texts`` or ``features`` with
``"costs"`` ({model: cost}, each a number or one number per query) and ``"cost_weight"`` w;
the answer holds, per query, the chosen ``model`` (argmax_k u_k - w C_k,
:func:`causal_router.routing.choose`) and every model's predicted ``utilities``, with the count
of queries per model. ``/health`` says which (``"family"``, ``"models"``).

The cost weight is a finite number >= 0 for both (:func:`causal_router.routing.check_cost_weight`).
Malformed JSON, wrong types, unknown fields, empty lists, non-finite numbers, a negative cost
weight, a wrong feature count, both inputs or both budgets get a 422 whose ``message`` names the
field (``detail`` lists every error with its location); no input error gives a 500.

Limits, checked before anything parses the body (:class:`BodyLimit`, an ASGI middleware any
FastAPI or Starlette application can add): a body over ``max_body_bytes`` (default
:data:`MAX_BODY_BYTES`, 16 MiB; 10,000 rows of 50 features take about 10 MB) gets a 413, from
its ``Content-Length`` before it is read, or as soon as a chunked body passes the limit; JSON
nested deeper than :data:`MAX_JSON_DEPTH` levels, holding a number of more than
:data:`MAX_NUMBER_DIGITS` digits or more than :data:`MAX_JSON_STRINGS` strings, giving a key
twice in one object, or text that is not UTF-8 gets a 422 naming where. The texts of one
request hold at most ``max_text_chars`` characters in all (default :data:`MAX_REQUEST_CHARS`;
422 naming ``texts``, before any text is featurized), each at most :data:`MAX_TEXT_LENGTH`.
:func:`serve` binds its address before it loads the router (a port in use or a host that does
not resolve is one ``DataError``, a ValueError); the server has no authentication.
"""

import contextlib
import hashlib
import ipaddress
import json
import logging
import math
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Annotated, Iterator, Literal

import numpy as np
import pandas as pd

from ._validation import DataError

# No ``from __future__ import annotations`` here: FastAPI reads the request models' annotations
# at run time, and they are defined inside create_app (their limits depend on the router).

__all__ = ["create_app", "serve", "background_server", "file_version", "BodyLimit", "MAX_BATCH", "MAX_TEXT_LENGTH",
           "MAX_REQUEST_CHARS", "MAX_BODY_BYTES", "MAX_JSON_DEPTH", "MAX_NUMBER_DIGITS", "MAX_JSON_STRINGS",
           "SERVE_EXTRA_MESSAGE"]

logger = logging.getLogger(__name__)

#: Most queries in one request, and most characters in one text.
MAX_BATCH = 10_000
MAX_TEXT_LENGTH = 100_000
#: Most characters of all the texts of one request together (TF-IDF featurizing of 1.9 million
#: characters in 10,000 texts took 1.1 s on the 2-core development machine).
MAX_REQUEST_CHARS = 2_000_000
#: Largest request body, in bytes (16 MiB).
MAX_BODY_BYTES = 16 * 2**20
#: Deepest nesting of a JSON body (a route request nests 3 levels: ``{"features": [[...]]}``).
MAX_JSON_DEPTH = 32
#: Most digits in one JSON number (a double needs at most 17 significant digits; Python refuses
#: to convert an integer of more than 4,300).
MAX_NUMBER_DIGITS = 100
#: Most strings (keys included) in one JSON body: a route request of ``MAX_BATCH`` texts, each
#: with its pair, holds about 20,000.
MAX_JSON_STRINGS = 100_000
SERVE_EXTRA_MESSAGE = "the routing server needs the [serve] extra: pip install 'causal_router[serve]'"


def _require_serve_extra():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(SERVE_EXTRA_MESSAGE) from exc


def file_version(path: str | os.PathLike) -> str:
    """A router file's version: ``"sha256:"`` + the first 16 hex digits of its contents' hash.

    Parameters
    ----------
    path : str or PathLike
        The router file.

    Returns
    -------
    str
        ``"sha256:"`` followed by 16 hex digits.
    """
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"sha256:{digest[:16]}"


def _loc(loc) -> str:
    """("body", "features", 2, 1) -> "features[2][1]"; ("body", 20) (a JSON syntax error at
    character 20) -> "body[20]"."""
    parts = list(loc[1:]) if loc and loc[0] == "body" and len(loc) > 1 and isinstance(loc[1], str) else list(loc)
    parts = parts or ["body"]
    out = str(parts[0])
    for p in parts[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


# ---------------------------------------------------------------------------- request limits
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'  # a JSON string, escapes included
_STRINGS = re.compile(_STRING)
_TOKENS = re.compile(_STRING + rb"|[\[\]{},:]|[0-9]+")
_SPACE = b" \t\r\n"
#: bytes.translate tables: digits to "1", everything else to "0"; everything but brackets deleted.
_DIGIT_MAP = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_NOT_BRACKETS = bytes(i for i in range(256) if i not in b"[]{}")
_NOT_BRACES = bytes(i for i in range(256) if i not in b"{}")
#: Bodies larger than this are checked in a worker thread, not on the server's event loop.
_THREAD_BYTES = 2**20
#: Most tokens walked to name the field of a body at fault (about 0.7 s); beyond it, "body".
_WALK_TOKENS = 500_000


def _check_json(body: bytes, max_depth: int, max_digits: int, max_strings: int) -> tuple[list, str] | None:
    """(location, message) where a JSON body breaks a limit, or None: text that is not in the
    encoding its first bytes announce (as :func:`json.loads` reads bytes), more than
    ``max_strings`` strings, nesting deeper than ``max_depth``, a number of more than
    ``max_digits`` digits, or a key given twice in one object. The location is as the server's
    422s give it (["body", "features", 2, 1]).

    The checks run at C speed on the bytes (a regex substitution, translations, numpy, memchr
    searches) with Python work per string at most: about 0.08 s for a 10 MB body of numbers,
    0.2 s for 100,000 strings. Only a body found at fault is walked token by token to name the
    field (:func:`_json_problem`, at most :data:`_WALK_TOKENS` tokens). Brackets, digits and
    colons inside strings are text.
    """
    encoding = json.detect_encoding(body)
    try:
        body.decode(encoding)
    except UnicodeDecodeError as exc:  # FastAPI answered a generic 400
        return ["body"], f"the body is not valid {encoding} text (at byte {exc.start})"
    # every string has two quotes not preceded by a backslash: a lower bound on their number,
    # counted before the substitution below, whose cost grows with it
    at_least = (body.count(b'"') - body.count(b'\\"')) // 2
    if at_least > max_strings:
        return ["body"], f"more than {max_strings} strings (at least {at_least}); this server takes at most {max_strings}"
    bare = _STRINGS.sub(b'""', body)
    n_strings = bare.count(b'""')
    if n_strings > max_strings:
        return ["body"], f"{n_strings} strings; this server takes at most {max_strings} per request"
    if b"1" * (max_digits + 1) in bare.translate(_DIGIT_MAP):
        fault = f"a number of more than {max_digits} digits"
    elif _too_deep(bare, max_depth):
        fault = f"JSON nested deeper than {max_depth} levels"
    elif _duplicate_key(body):
        fault = "a key given twice in one object"
    else:
        return None
    return _json_problem(body, max_depth, max_digits) or (["body"], fault)


def _too_deep(bare: bytes, max_depth: int) -> bool:
    """Whether the brackets of ``bare`` (a body without its strings' contents) nest deeper than
    ``max_depth``."""
    brackets = bare.translate(None, _NOT_BRACKETS)
    depth = 0
    for start in range(0, len(brackets), 2**20):
        part = np.frombuffer(brackets, np.uint8, count=min(2**20, len(brackets) - start), offset=start)
        levels = np.cumsum(np.where((part == ord("[")) | (part == ord("{")), 1, -1), dtype=np.int64) + depth
        if levels.max() > max_depth:
            return True
        depth = int(levels[-1])
    return False


def _duplicate_key(body: bytes) -> bool:
    """Whether an object of the body gives one key twice (compared decoded: ``"a"`` and
    ``"\\u0061"`` are one key). json.loads keeps the last value silently, so a body could mean
    one thing to a proxy in front and another to the server. Run on a body nested at most
    ``max_depth`` deep: Python work per string, C work per byte."""
    keys: list[set] = []  # the keys of every open object

    def braces(lo: int, hi: int) -> None:  # the objects closed and opened between two strings
        if body.find(b"{", lo, hi) < 0 and body.find(b"}", lo, hi) < 0:
            return
        steps = body[lo:hi].translate(None, _NOT_BRACES)  # "{" and "}" in order
        levels = np.cumsum(np.where(np.frombuffer(steps, np.uint8) == ord("{"), 1, -1))
        low = min(0, int(levels.min()))
        del keys[max(len(keys) + low, 0):]  # objects closed here (empty ones opened and closed cancel)
        keys.extend(set() for _ in range(int(levels[-1]) - low))  # objects opened and still open

    end = 0
    for match in _STRINGS.finditer(body):
        braces(end, match.start())
        end = match.end()
        if keys:
            after = end
            while body[after:after + 1] and body[after:after + 1] in _SPACE:
                after += 1
            if body[after:after + 1] == b":":
                key = json.loads(match.group())
                if key in keys[-1]:
                    return True
                keys[-1].add(key)
    return False


def _json_problem(body: bytes, max_depth: int, max_digits: int) -> tuple[list, str] | None:
    """(location, message) of the first place a JSON body nests deeper than ``max_depth``, holds
    a number of more than ``max_digits`` digits or repeats a key; None where none happens within
    the first :data:`_WALK_TOKENS` tokens. A token-by-token walk in Python, run only on a body
    :func:`_check_json` found at fault."""
    stack: list[list] = []  # per open container: [is_object, key or index, expecting a key, keys seen]
    for n, match in enumerate(_TOKENS.finditer(body)):
        if n >= _WALK_TOKENS:
            return None
        token = match.group()
        problem = None
        if token in (b"[", b"{"):
            stack.append([token == b"{", None if token == b"{" else 0, token == b"{", set()])
            if len(stack) > max_depth:
                problem = f"JSON nested deeper than {max_depth} levels"
        elif token in (b"]", b"}"):
            if stack:
                stack.pop()
        elif token[:1].isdigit():
            if len(token) > max_digits:
                problem = f"a number of {len(token)} digits (at most {max_digits})"
        elif not stack:
            continue
        elif token == b",":
            if stack[-1][0]:
                stack[-1][2] = True
            else:
                stack[-1][1] += 1
        elif token == b":":
            stack[-1][2] = False
        elif stack[-1][0] and stack[-1][2]:  # an object's key
            try:
                key = str(json.loads(token))
            except ValueError:
                key = "?"
            stack[-1][1] = key
            if key in stack[-1][3]:
                problem = "this key is given twice in one object"
            stack[-1][3].add(key)
        if problem is not None:  # located at the container that opens too deep, not inside it
            inside = stack[:-1] if problem.startswith("JSON nested") else stack
            loc = ["body", *(entry[1] for entry in inside if entry[1] is not None)]
            return loc, f"{problem} (at byte {match.start()})"
    return None


def _is_json(headers: dict) -> bool:
    """Whether FastAPI would parse the body as JSON: no content type, or ``application/json`` /
    ``application/*+json``."""
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return not kind or kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


class BodyLimit:
    """ASGI middleware: request limits checked before the application reads the body.

    - A body of more than ``max_body_bytes`` bytes gets 413 (Content Too Large): at once from
      its ``Content-Length`` header, without reading it; for a chunked body (no length given),
      as soon as the bytes received pass the limit. A body within the limit is read once,
      counted, and handed to the application whole.
    - A JSON body (no content type, ``application/json`` or ``application/*+json``: what FastAPI
      parses as JSON) that is not valid UTF-8 (or the UTF-16 / 32 its first bytes announce),
      holds more than ``max_json_strings`` strings, nests deeper than ``max_json_depth``, holds
      a number of more than ``max_number_digits`` digits, or gives a key twice in one object
      gets 422 naming the field where it happens. FastAPI's parser answered the first, the
      deep nesting and the long number with a generic 400, and kept the last of two keys
      silently. These checks run on the bytes at C speed (about 0.08 s for 10 MB of numbers;
      bodies over 1 MiB are checked in a worker thread).

    Both answers are JSON ``{"message": "<field>: <problem>", "detail": [{"loc", "field",
    "msg", "type"}]}``, as the routing server's other 422s, unless ``error_body`` gives another
    body for the request's path (the routing proxy answers its OpenAI paths in OpenAI's error
    format). Memory per request stays within about ``max_body_bytes`` plus what the application
    makes of the body.

    Add it to any FastAPI or Starlette application::

        app.add_middleware(BodyLimit, max_body_bytes=2**20)

    :func:`create_app` adds it with its ``max_body_bytes``.

    Parameters
    ----------
    app : ASGI application
        The application the checked requests are handed to.
    max_body_bytes : int, default :data:`MAX_BODY_BYTES`
        Largest request body, in bytes (more: 413).
    max_json_depth : int, default :data:`MAX_JSON_DEPTH`
        Deepest nesting of arrays and objects in a JSON body (deeper: 422).
    max_number_digits : int, default :data:`MAX_NUMBER_DIGITS`
        Most digits of one number in a JSON body (more: 422).
    max_json_strings : int, default :data:`MAX_JSON_STRINGS`
        Most strings (keys included) in a JSON body (more: 422).
    error_body : callable, optional
        ``error_body(path, status, field, message, kind)`` returns the JSON-able body of a refusal
        of a request to ``path`` (``field`` as in ``detail``, e.g. ``"messages[0].content"`` or
        ``"body"``; ``kind`` ``"too_large"``, ``"json_limit"`` or ``"invalid_length"``), or None
        for the default body above.
    """

    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES, max_json_depth: int = MAX_JSON_DEPTH,
                 max_number_digits: int = MAX_NUMBER_DIGITS, max_json_strings: int = MAX_JSON_STRINGS,
                 error_body=None):
        for name, value in (("max_body_bytes", max_body_bytes), ("max_json_depth", max_json_depth),
                            ("max_number_digits", max_number_digits), ("max_json_strings", max_json_strings)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"{name} must be a positive integer, got {value!r}")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.max_number_digits = max_number_digits
        self.max_json_strings = max_json_strings
        if error_body is not None and not callable(error_body):
            raise DataError(f"error_body must be callable, got {type(error_body).__name__}")
        self.error_body = error_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:  # servers refuse these first; a bare ASGI server may not
                await self._answer(scope, send, 400, ["body"], f"invalid Content-Length {declared[:40]!r}", "invalid_length")
                return
            if length > self.max_body_bytes:
                await self._too_large(scope, send, f"a body of {length} bytes")
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, send, f"a body of more than {self.max_body_bytes} bytes (chunked)")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        if body and _is_json(headers):
            problem = await self._json_problem(body)
            if problem is not None:
                await self._answer(scope, send, 422, problem[0], problem[1], "json_limit")
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: the client disconnecting

        await self.app(scope, replay, send)

    async def _json_problem(self, body: bytes) -> tuple[list, str] | None:
        """(location, message) where the body breaks a JSON limit, or None; a large body is checked in
        a worker thread so that the event loop keeps serving other requests."""
        import anyio

        limits = (self.max_json_depth, self.max_number_digits, self.max_json_strings)
        if len(body) <= _THREAD_BYTES:
            return _check_json(body, *limits)
        return await anyio.to_thread.run_sync(_check_json, body, *limits)

    async def _too_large(self, scope, send, what: str) -> None:
        await self._answer(scope, send, 413, ["body"], f"{what}: this server takes at most {self.max_body_bytes} bytes per "
                                                "request; split the batch", "too_large")

    async def _answer(self, scope, send, status: int, loc: list, msg: str, kind: str) -> None:
        field = _loc(loc)
        field = field if len(field) <= 80 else field[:80] + "..."
        content = None
        if self.error_body is not None:
            content = self.error_body(scope.get("path", ""), status, field, msg, kind)
        if content is None:
            content = {"message": f"{field}: {msg}", "detail": [{"loc": loc, "field": field, "msg": msg, "type": kind}]}
        payload = json.dumps(content).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


def create_app(router, *, version: str | None = None, max_batch: int = MAX_BATCH,
               max_body_bytes: int = MAX_BODY_BYTES, max_text_chars: int = MAX_REQUEST_CHARS, error_body=None):
    """A FastAPI application serving ``router`` (a fitted causal_router router).

    Parameters
    ----------
    router : fitted router (a :class:`~causal_router.router.BaseRouter`, two-model or K-model)
        Two models: decisions follow :func:`causal_router.routing.decide` and
        :func:`~causal_router.routing.threshold_for_share` on its predicted gains, as its own
        ``route`` / ``threshold_for_share`` do. K models: the chosen model of
        :func:`causal_router.routing.choose`, as its ``route`` does. A router fitted from text
        (holding a ``featurizer_``) also takes ``texts``.
    version : str, optional
        Reported with every answer and by ``/health`` (default: the router's class name,
        marked as not from a file; :func:`serve` uses :func:`file_version`).
    max_batch : int, default=MAX_BATCH
        Most queries accepted in one request (more: 422).
    max_body_bytes : int, default=MAX_BODY_BYTES
        Largest request body, in bytes (more: 413, before the body is read; :class:`BodyLimit`).
    max_text_chars : int, default=MAX_REQUEST_CHARS
        Most characters of all the texts of one request together (more: 422 naming ``texts``,
        before any text is featurized).
    error_body : callable, optional
        The body of :class:`BodyLimit`'s refusals by path (see there; default: this server's).

    Returns
    -------
    fastapi.FastAPI
        The application: ``GET /health`` and ``POST /route``.

    Raises
    ------
    ImportError
        Without the ``[serve]`` extra, or without the ``[embed]`` extra for a MiniLM featurizer.
    sklearn.exceptions.NotFittedError
        For a router that is not fitted.

    Notes
    -----
    The router is checked and warmed up here (its compiled gain model built, a MiniLM
    featurizer's model loaded, raising ImportError naming the ``[embed]`` extra when missing).
    """
    _require_serve_extra()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
    from sklearn.utils.validation import check_is_fitted

    from . import __version__
    from .routing import choose, cost_matrix, decide, threshold_for_share

    check_is_fitted(router, "n_features_in_")
    n_features = int(router.n_features_in_)
    feature_names = [str(n) for n in getattr(router, "feature_names_in_", [])]
    featurizer = getattr(router, "featurizer_", None)
    multi = getattr(router, "family", "two-model") == "k-model"
    models = [str(m) for m in getattr(router, "models_", [])]
    if featurizer is not None:
        featurizer.check_available()
    version = version if version is not None else f"{type(router).__name__} (in memory, unversioned)"
    for name, value in (("max_batch", max_batch), ("max_text_chars", max_text_chars)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{name} must be a positive integer, got {value!r}")

    def named(X: np.ndarray):
        """Rows in the router's feature order, under its feature names where it has them."""
        return pd.DataFrame(X, columns=feature_names) if feature_names else X

    # compile / warm up before the first request
    (router.predict_utility if multi else router.predict_gain)(named(np.zeros((1, n_features))))

    Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]

    class RouteRequest(BaseModel):
        """Queries to route: ``texts`` or ``features``, optional ``pair``, at most one budget."""

        model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
        texts: list[Text] | None = Field(None, min_length=1, max_length=max_batch,
                                         description="query texts (a router fitted from text)")
        features: list[list[float]] | None = Field(None, min_length=1, max_length=max_batch,
                                                   description=f"n rows of {n_features} numbers")
        pair: list[str] | None = Field(None, min_length=1, max_length=max_batch,
                                       description="model pair of every text (one label), or of each")
        cost_weight: float | None = Field(None, ge=0, description="route where predicted gain > cost_weight "
                                                                   "(K models: the weight w of the costs)")
        if multi:
            costs: dict[str, float | list[float]] | None = Field(
                None, description=f"cost of each model {models}: a number, or one per query")
        else:
            primary_share: float | None = Field(None, ge=0, le=1,
                                                description="share of this request's queries sent to the primary")

        @field_validator("pair", mode="before")
        @classmethod
        def _one_pair_for_all(cls, value):
            return [value] if isinstance(value, str) else value

        @field_validator("texts")
        @classmethod
        def _text_budget(cls, value):
            total = sum(map(len, value)) if value is not None else 0
            if total > max_text_chars:
                raise ValueError(f"the texts hold {total} characters in all; this server takes at most "
                                 f"{max_text_chars} per request: split the batch")
            return value

        @model_validator(mode="after")
        def _one_input_one_budget(self):
            if (self.texts is None) == (self.features is None):
                raise ValueError("send exactly one of 'texts' or 'features'")
            if not multi and self.cost_weight is not None and self.primary_share is not None:
                raise ValueError("send at most one of 'cost_weight' or 'primary_share'")
            if self.pair is not None and self.texts is None:
                raise ValueError("'pair' goes with 'texts'; with 'features' the pair indicators are features")
            return self

    class Decision(BaseModel):
        decision: Literal["primary", "alternative"]
        predicted_gain: float

    class RouteResponse(BaseModel):
        router_version: str
        cost_weight: float
        primary_share: float | None
        n_primary: int
        routes: list[Decision]

    class Choice(BaseModel):
        model: str
        utilities: dict[str, float]

    class MultiRouteResponse(BaseModel):
        router_version: str
        cost_weight: float
        models: list[str]
        counts: dict[str, int]
        routes: list[Choice]

    app = FastAPI(title="causal_router", version=__version__,
                  description="Route each query to the primary or the alternative LLM by its predicted "
                              "gold-standard gain (Meta-Router).")
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes, error_body=error_body)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "field": _loc(e.get("loc", ())),
                   "msg": str(e.get("msg", "")).removeprefix("Value error, "),
                   "type": str(e.get("type", ""))} for e in exc.errors()]  # no raw input: it may hold NaN
        message = "; ".join(f"{e['field']}: {e['msg']}" for e in errors[:5]) or "invalid request"
        return JSONResponse(status_code=422, content={"message": message, "detail": errors})

    def invalid(field: tuple, msg: str):
        return RequestValidationError([{"loc": ("body", *field), "msg": msg, "type": "value_error"}])

    def features_of(req: RouteRequest) -> np.ndarray:
        if req.features is not None:
            for i, row in enumerate(req.features):
                if len(row) != n_features:
                    raise invalid(("features", i), f"has {len(row)} values; the router expects {n_features}"
                                  + (f" ({', '.join(feature_names[:5])}{', ...' if n_features > 5 else ''})"
                                     if feature_names else ""))
            return np.asarray(req.features, dtype=float)
        if featurizer is None:
            raise invalid(("texts",), f"this router was fitted on numeric features, not text: send 'features' "
                                      f"(rows of {n_features} numbers)")
        pairs = req.pair
        known = [str(p) for p in featurizer.pairs_]
        if pairs is not None:
            if featurizer.pair_column is None:
                raise invalid(("pair",), "this router was not fitted with model pairs; leave 'pair' out")
            if len(pairs) not in (1, len(req.texts)):
                raise invalid(("pair",), f"has {len(pairs)} labels for {len(req.texts)} texts; send one label, "
                                         "or one per text")
            pairs = pairs * len(req.texts) if len(pairs) == 1 else pairs
            unknown = sorted(set(pairs) - set(known))
            if unknown:
                raise invalid(("pair",), f"unknown model pair(s) {unknown[:5]}; the router knows {known}")
        elif len(known) > 1:
            raise invalid(("pair",), f"this router was fitted on {len(known)} model pairs: send 'pair' (one of "
                                     f"{known}) for every text or one per text")
        X = (req.texts if pairs is None
             else pd.DataFrame({featurizer.text_column: req.texts, featurizer.pair_column: pairs}))
        try:
            return featurizer.transform(X)
        except DataError as exc:
            raise invalid(("texts",), str(exc)) from None

    @app.get("/health")
    def health() -> dict:
        """Liveness and what the router accepts."""
        info = {"status": "ok", "router_version": version, "router": type(router).__name__,
                "family": "k-model" if multi else "two-model",
                "n_features": n_features, "inputs": ["features"] + (["texts"] if featurizer is not None else []),
                "max_batch": max_batch, "max_body_bytes": max_body_bytes, "max_text_chars": max_text_chars,
                "causal_router": __version__}
        if multi:
            info["models"] = models
        if featurizer is not None:
            info["featurizer"] = {"method": featurizer.method, "text_column": featurizer.text_column,
                                  "pair_column": featurizer.pair_column, "pairs": [str(p) for p in featurizer.pairs_]}
        for section in app.state.health_sections:  # sections added to the app (the proxy's)
            info.update(section())
        return info

    def route_multi(req: RouteRequest) -> JSONResponse:
        X = features_of(req)
        field = "texts" if req.texts is not None else "features"
        try:
            U = router.predict_utility(named(X))
        except DataError as exc:
            raise invalid((field,), str(exc)) from None
        try:
            C = cost_matrix(req.costs, models, len(U))
        except DataError as exc:
            raise invalid(("costs",), str(exc)) from None
        weight = float(req.cost_weight or 0.0)
        if weight and req.costs is None:
            raise invalid(("cost_weight",), f"a cost weight needs 'costs' (the cost of each model {models})")
        values = U.to_numpy()
        if not np.all(np.isfinite(values)):
            raise RuntimeError("the router returned non-finite utilities")  # a bug, not an input error: 500
        chosen = [models[k] for k in choose(values, weight, C)]
        return JSONResponse({
            "router_version": version, "cost_weight": weight, "models": models,
            "counts": {m: chosen.count(m) for m in models},
            "routes": [{"model": c, "utilities": dict(zip(models, row))} for c, row in zip(chosen, values.tolist())]})

    @app.post("/route", response_model=MultiRouteResponse if multi else RouteResponse)
    def route(req: RouteRequest) -> JSONResponse:
        """Decisions and predicted gold-scale gains (K models: the chosen model and every model's
        utility), one per query, in request order."""
        if multi:
            return route_multi(req)
        X = features_of(req)
        try:
            gain = np.asarray(router.predict_gain(named(X)), dtype=float)  # one prediction; the rule is the router's
            weight = (threshold_for_share(gain, req.primary_share) if req.primary_share is not None
                      else float(req.cost_weight or 0.0))
            primary = decide(gain, weight)
        except DataError as exc:
            raise invalid(("texts" if req.texts is not None else "features",), str(exc)) from None
        if not math.isfinite(weight) or not np.all(np.isfinite(gain)):
            raise RuntimeError("the router returned non-finite gains")  # a bug, not an input error: 500
        # built as plain JSON (the response model documents it): no second validation per query
        return JSONResponse({
            "router_version": version, "cost_weight": weight, "primary_share": req.primary_share,
            "n_primary": int(primary.sum()),
            "routes": [{"decision": "primary" if p else "alternative", "predicted_gain": g}
                       for p, g in zip(primary.tolist(), gain.tolist())]})

    app.state.router = router
    app.state.router_version = version
    app.state.limits = {"max_batch": max_batch, "max_body_bytes": max_body_bytes, "max_text_chars": max_text_chars}
    app.state.health_sections = []  # callables returning dicts merged into GET /health
    return app


def serve(router_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info", *, max_body_bytes: int = MAX_BODY_BYTES, make_app=None) -> None:
    """Load a router file (two-model or K-model) and serve it with uvicorn until interrupted (blocking).

    The address is bound first: a host that does not resolve, a port out of range or in use, or
    one this user may not bind, raise ``DataError`` (a ValueError) naming it before the
    router is loaded. A host other than a loopback address is logged as a warning: the server
    has no authentication, so anyone who can reach the address can call it.
    ``make_app(router, version=..., max_body_bytes=...)`` builds the application (default
    :func:`create_app`; the routing proxy passes :func:`causal_router.proxy.create_proxy_app`
    with its options).

    Parameters
    ----------
    router_path : str or PathLike
        The router file (:func:`causal_router.io.load_router`); its :func:`file_version` is
        the served version.
    host : str, default="127.0.0.1"
        The address to listen on.
    port : int, default=8000
        The port to listen on, 0 to 65535 (0: any free port).
    log_level : str, default="info"
        uvicorn's log level.
    max_body_bytes : int, default=MAX_BODY_BYTES
        Largest request body, in bytes (more: 413).
    make_app : callable or None, default=None
        Builds the application from the router; None: :func:`create_app`.

    Raises
    ------
    DataError
        For an address that cannot be bound, before the router is loaded.
    ImportError
        Without the ``[serve]`` extra.
    """
    _require_serve_extra()
    import uvicorn

    from .io import load_router

    sock = _bind(host, port)
    try:
        router = load_router(router_path)
        app = (make_app or create_app)(router, version=file_version(router_path), max_body_bytes=max_body_bytes)
        if not _is_loopback(sock.getsockname()[0]):
            logger.warning("serving on %s, reachable from other machines: the routing server has no "
                           "authentication; put it behind a proxy that authenticates", host)
        config = uvicorn.Config(app, log_level=log_level)  # configures uvicorn's loggers
        bound_host, bound_port = sock.getsockname()[:2]
        url = f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}"
        # what uvicorn logs when it binds the socket itself (config.bind_socket)
        logging.getLogger("uvicorn.error").info("Uvicorn running on %s (Press CTRL+C to quit)", url)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), as uvicorn binds one; DataError naming the problem."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise DataError(f"port must be an integer from 0 to 65535, got {port!r}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise DataError(f"cannot serve on host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise DataError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a daemon thread; yield its base URL; stop it on exit.

    Parameters
    ----------
    app : ASGI application
        The application to serve (e.g. :func:`create_app`'s).
    host : str, default="127.0.0.1"
        The address to listen on.
    port : int, default=0
        The port to listen on; 0 binds a free port chosen by the system.
    timeout : float, default=30.0
        Seconds to wait for the server to start, and for its thread to stop on exit.

    Yields
    ------
    str
        The server's base URL, ``http://host:port``.

    Raises
    ------
    RuntimeError
        When the server has not started within ``timeout`` seconds.
    """
    _require_serve_extra()
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"causal_router-serve-{bound}",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the routing server did not start on {host}:{bound} within {timeout} s")
        time.sleep(0.01)
    try:
        yield f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
