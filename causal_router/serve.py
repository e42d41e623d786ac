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
"""

import contextlib
import hashlib
import math
import os
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

__all__ = ["create_app", "serve", "background_server", "file_version", "MAX_BATCH", "MAX_TEXT_LENGTH",
           "SERVE_EXTRA_MESSAGE"]

#: Most queries in one request, and most characters in one text.
MAX_BATCH = 10_000
MAX_TEXT_LENGTH = 100_000
SERVE_EXTRA_MESSAGE = "the routing server needs the [serve] extra: pip install 'causal_router[serve]'"


def _require_serve_extra():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(SERVE_EXTRA_MESSAGE) from exc


def file_version(path: str | os.PathLike) -> str:
    """A router file's version: ``"sha256:"`` + the first 16 hex digits of its contents' hash."""
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


def create_app(router, *, version: str | None = None, max_batch: int = MAX_BATCH):
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
    max_batch : int
        Most queries accepted in one request (more: 422).

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
                "max_batch": max_batch, "causal_router": __version__}
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
    app.state.health_sections = []  # callables returning dicts merged into GET /health
    return app


def serve(router_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info", *, make_app=None) -> None:
    """Load a router file (two-model or K-model) and serve it with uvicorn until interrupted (blocking).

    ``make_app(router, version=...)`` builds the application (default :func:`create_app`; the
    routing proxy passes :func:`causal_router.proxy.create_proxy_app` with its options).
    """
    _require_serve_extra()
    import uvicorn

    from .io import load_router

    router = load_router(router_path)
    app = (make_app or create_app)(router, version=file_version(router_path))
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@contextlib.contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a daemon thread; yield its base URL; stop it on exit.

    ``port=0`` binds a free port chosen by the system. Raises RuntimeError when the server has
    not started within ``timeout`` seconds.
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
