"""Load benchmark of the routing server (``causal-router serve``). Prints its figures; asserts nothing.

    python benchmarks/bench_serve.py                      # both parts, PandaLM (the bundled copy)
    python benchmarks/bench_serve.py --parts proxy --requests 2000 --max-seconds 20 --concurrency 1 10 50

Fits a text router (TF-IDF + SVD, 50 components, model-pair indicators; PandaLM's instructions
with 100 gold rows, cross-fitted by instruction: ``load_pandalm()``, the bundled copy or the raw files under
``$CAUSAL_ROUTER_DATA``) and saves it as a router file.

Part ``route``: starts ``causal-router serve`` on a free loopback port in a child process (one
uvicorn worker) and sends it ``POST /route`` requests from this process: single prompts and
batches of 100 prompts (``texts``), and the same as precomputed ``features``, with 1 and 4
concurrent clients (``--route-concurrency``).

Part ``proxy``: the routing proxy's own overhead. A stub OpenAI upstream (a bare ASGI app under
uvicorn, in a child process) answers every chat completion with a fixed body after
``--upstream-delay-ms``; ``causal-router serve --upstream primary=... --upstream alternative=...``
runs in another child process (one uvicorn worker, both names served by the stub). At each
concurrency (``--concurrency``, default 1, 10 and 50 clients) the same chat requests (one
PandaLM instruction each) go first straight to the stub, then through the proxy: the overhead is
the proxy's latency minus the stub's, at p50 and p99. Then the sustained rate: 50 clients through
the proxy with an upstream that answers at once (``--upstream-delay-ms 0``).

Part ``share``: how close a primary share set from the training queries' gains (what
``serve --primary-share`` does) comes on new queries: realised shares at 0.1, 0.3 and 0.5 on the
500 test queries of reveal splits of the generator (``--share-splits``).

Every scenario runs after 20 warm-up requests per client, closed loop (each client sends its
next request when the answer arrives), until ``--requests`` requests or ``--max-seconds``
seconds, whichever comes first. Reported: requests/s, latency p50 / p99 in ms (from sending a
request to reading its whole answer) and the server process's CPU time per request (from /proc;
one core serves about 1000 / that many requests per second). Clients: this process (threads and
httpx for ``route``; asyncio and one pooled ``httpx.AsyncClient`` for ``proxy``).

Traffic goes only to 127.0.0.1; every child process is stopped at the end. Clients, proxy and
stub share the machine's cores, so the figures are a lower bound of what the server does alone.
``--out FILE.json`` also writes the figures, with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from warning_counts import WarningCounts

HOST = "127.0.0.1"  # loopback only


def _frame(n_gold: int, seed: int) -> tuple[pd.DataFrame, str]:
    """Training rows (query_text, pair, gain, source) and the name of the data."""
    from causal_router.datasets import load_pandalm

    rng = np.random.default_rng(seed)
    frame = load_pandalm()  # query_id: the instruction (one row per model pair), the fit's groups
    name = f"PandaLM ({len(frame)} rows, {frame['query_text'].nunique()} distinct instructions)"
    gold = np.zeros(len(frame), dtype=bool)
    gold[rng.choice(len(frame), n_gold, replace=False)] = True
    frame = frame.assign(gain=np.where(gold, frame["gold_gain"], frame["pref_gain"]),
                         source=np.where(gold, "gold", "preference"))
    return frame, name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start(argv: list[str], port: int, path: str = "/health", timeout: float = 120.0, env=None) -> subprocess.Popen:
    """A child process serving on HOST:port, once ``path`` answers (any status below 500)."""
    import httpx

    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://{HOST}:{port}{path}", timeout=1.0).status_code < 500:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the server did not answer {path} within {timeout} s")


def _cli(*args: str) -> list[str]:
    return ["-c", "import sys; from causal_router.cli import main; sys.exit(main())", *args]


# ---------------------------------------------------------------------------- the stub upstream
ANSWER = json.dumps({"id": "chatcmpl-stub", "object": "chat.completion", "created": 1, "model": "stub",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "stub answer " * 20},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 50, "completion_tokens": 40, "total_tokens": 90}}).encode()


def run_stub(port: int, delay_ms: float) -> None:
    """A bare ASGI OpenAI upstream: reads the body, waits ``delay_ms``, answers ANSWER (blocking)."""
    import uvicorn

    delay = delay_ms / 1000

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if delay and scope["path"].endswith("/chat/completions"):
            await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
        await send({"type": "http.response.body", "body": ANSWER})

    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="off")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(url: str, bodies: list[dict], concurrency: int, max_requests: int, max_seconds: float,
         server_pid: int) -> dict:
    """Closed-loop load: ``concurrency`` clients, each sending bodies in turn."""
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + max_seconds
    sent = [0]
    errors = []

    def client(offset: int):
        with httpx.Client(base_url=url, timeout=30.0) as c:
            for body in bodies[:20]:  # warm-up, not timed
                c.post("/route", json=body)
            i = offset
            while time.monotonic() < stop:
                with lock:
                    if sent[0] >= max_requests:
                        return
                    sent[0] += 1
                t0 = time.perf_counter()
                r = c.post("/route", json=bodies[i % len(bodies)])
                r.read()
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append(r.text[:200])
                with lock:
                    latencies.append(dt)
                i += concurrency

    threads = [threading.Thread(target=client, args=(j,)) for j in range(concurrency)]
    cpu0 = _cpu_seconds(server_pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cpu = _cpu_seconds(server_pid) - cpu0  # includes the untimed warm-up requests
    lat = np.asarray(latencies) * 1000
    per = len(next(iter(bodies[0].values())))
    return {"requests": len(lat), "errors": len(errors), "seconds": wall,
            "requests_per_s": len(lat) / wall, "queries_per_s": len(lat) * per / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "server_cpu_ms_per_request": 1000 * cpu / (len(lat) + 20 * concurrency)}


def _run_async(url: str, bodies: list[bytes], concurrency: int, max_requests: int, max_seconds: float,
               server_pid: int | None) -> dict:
    """Closed-loop load from ``concurrency`` asyncio clients sharing one pooled AsyncClient."""
    import httpx

    async def load() -> tuple[list[float], int, float, float]:
        latencies, errors, sent = [], [0], [0]
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
            async def one(j: int, timed: bool, stop: float):
                i = j
                for _ in range(20) if not timed else iter(int, 1):
                    if timed:
                        if time.monotonic() > stop or sent[0] >= max_requests:
                            return
                        sent[0] += 1
                    t0 = time.perf_counter()
                    try:
                        r = await client.post(url, content=bodies[i % len(bodies)], headers=headers)
                        ok = r.status_code == 200
                    except httpx.TransportError as exc:  # counted, and the first few shown
                        ok = False
                        if len(failures) < 3:
                            failures.append(f"{type(exc).__name__}: {exc}")
                    dt = time.perf_counter() - t0
                    if timed:
                        latencies.append(dt)
                        errors[0] += not ok
                    i += concurrency

            await asyncio.gather(*(one(j, False, 0.0) for j in range(concurrency)))  # warm-up, not timed
            cpu0 = _cpu_seconds(server_pid) if server_pid else float("nan")
            start = time.perf_counter()
            stop = time.monotonic() + max_seconds
            await asyncio.gather(*(one(j, True, stop) for j in range(concurrency)))
            wall = time.perf_counter() - start
            cpu = (_cpu_seconds(server_pid) if server_pid else float("nan")) - cpu0
        return latencies, errors[0], wall, cpu

    failures: list[str] = []
    latencies, errors, wall, cpu = asyncio.run(load())
    if failures:
        print(f"    transport errors at {url} (first {len(failures)}): {failures}", flush=True)
    lat = np.asarray(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "seconds": wall, "requests_per_s": len(lat) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "server_cpu_ms_per_request": 1000 * cpu / len(lat)}


def _proxy_part(router_path: Path, texts: list[str], pair: str, args) -> list[dict]:
    """The proxy's overhead over a stub upstream at each concurrency, and its sustained rate."""
    rng = np.random.default_rng(args.seed)
    bodies = [json.dumps({"model": "client-model", "messages": [{"role": "user", "content": texts[i]}]}).encode()
              for i in rng.integers(len(texts), size=500)]
    rows = []

    def proxied(delay_ms: float, concurrency_levels, label: str, direct: bool) -> None:
        stub_port, proxy_port = _free_port(), _free_port()
        stub = _start([__file__, "stub", "--port", str(stub_port), "--delay-ms", str(delay_ms)], stub_port, "/")
        procs = [stub]
        try:
            upstream = f"http://{HOST}:{stub_port}"
            proxy = _start(_cli("serve", "--router", str(router_path), "--host", HOST, "--port", str(proxy_port),
                                "--log-level", "warning", "--route-pair", pair,
                                "--upstream", f"primary={upstream}/p/v1", "--upstream", f"alternative={upstream}/a/v1",
                                "--max-concurrency", "200"), proxy_port)
            procs.append(proxy)
            for c in concurrency_levels:
                direct_out = (_run_async(f"{upstream}/p/v1/chat/completions", bodies, c, args.requests,
                                         args.max_seconds, stub.pid) if direct else None)
                out = _run_async(f"http://{HOST}:{proxy_port}/v1/chat/completions", bodies, c, args.requests,
                                 args.max_seconds, proxy.pid)
                row = {"scenario": label, "clients": c, "upstream_delay_ms": delay_ms, **out}
                if direct_out is not None:
                    row.update(stub_p50_ms=direct_out["p50_ms"], stub_p99_ms=direct_out["p99_ms"],
                               overhead_p50_ms=out["p50_ms"] - direct_out["p50_ms"],
                               overhead_p99_ms=out["p99_ms"] - direct_out["p99_ms"],
                               stub_cpu_ms_per_request=direct_out["server_cpu_ms_per_request"],
                               stub_errors=direct_out["errors"])
                rows.append(row)
                text = (f"  {label:<24} clients={c:>3}: {out['requests_per_s']:7.1f} req/s  proxy p50 {out['p50_ms']:7.2f}"
                        f" p99 {out['p99_ms']:7.2f} ms")
                if direct_out is not None:
                    text += (f"  stub p50 {direct_out['p50_ms']:6.2f} p99 {direct_out['p99_ms']:6.2f} ms  overhead "
                             f"p50 {row['overhead_p50_ms']:6.2f} p99 {row['overhead_p99_ms']:6.2f} ms")
                text += f"  proxy CPU {out['server_cpu_ms_per_request']:5.2f} ms/request"
                if direct_out is not None:
                    text += f" (bare stub {direct_out['server_cpu_ms_per_request']:5.2f})"
                print(text + f"  ({out['requests']} requests, {out['errors']} errors)", flush=True)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)

    proxied(args.upstream_delay_ms, args.concurrency, "overhead", direct=True)
    proxied(0.0, [max(args.concurrency)], "sustained (upstream 0 ms)", direct=False)
    return rows


def _share_part(splits: list[int]) -> list[dict]:
    """The share of new queries sent to the primary at the cost weight of a primary share set from
    the training queries' gains (``threshold_for_share(None, r)``: what ``serve --primary-share``
    does), on the generator: make_semi_synthetic(5000, 50, random_state=0), reveal splits with 100
    gold rows and 500 test queries, MetaRouter(BiasEstimator("r"), random_state=0)."""
    from causal_router import BiasEstimator, MetaRouter
    from causal_router.datasets import make_semi_synthetic, reveal_split

    frame = make_semi_synthetic(5000, 50, random_state=0)
    rows = []
    for seed in splits:
        split = reveal_split(frame, n_gold=100, n_test=500, random_state=seed)
        router = MetaRouter(BiasEstimator("r"), random_state=0).fit(split.train)
        gain = router.predict_gain(split.test_X)
        for share in (0.1, 0.3, 0.5):
            rows.append({"split": seed, "primary_share": share,
                         "realised_on_500_new_queries": float(np.mean(gain > router.threshold_for_share(None, share)))})
    table = pd.DataFrame(rows)
    summary = table.groupby("primary_share")["realised_on_500_new_queries"].agg(["min", "mean", "max"])
    print(summary.round(3).to_string())
    return rows


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["stub"]:  # the child process serving the stub upstream
        stub = argparse.ArgumentParser()
        stub.add_argument("stub")
        stub.add_argument("--port", type=int, required=True)
        stub.add_argument("--delay-ms", type=float, default=0.0)
        a = stub.parse_args(argv)
        run_stub(a.port, a.delay_ms)
        return
    counts = WarningCounts()
    with counts.record():  # this process's warnings (fit, clients) counted and printed, never silenced
        _main(argv)
    counts.report()


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=["route", "proxy", "share"], default=["route", "proxy", "share"])
    parser.add_argument("--share-splits", type=int, nargs="+", default=[1, 2, 3, 4],
                        help="reveal splits of the share part (default: 1 2 3 4)")
    parser.add_argument("--requests", type=int, default=2000, help="most requests per scenario")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="most seconds per scenario")
    parser.add_argument("--route-concurrency", type=int, nargs="+", default=[1, 4], help="clients of POST /route")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50], help="clients of the proxy")
    parser.add_argument("--upstream-delay-ms", type=float, default=50.0,
                        help="the stub upstream's answer time in the overhead scenarios (default: 50 ms)")
    parser.add_argument("--batch", type=int, default=100, help="prompts per batch request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.max_seconds <= 0 or min(args.concurrency + args.route_concurrency) < 1:
        parser.error("--requests, --max-seconds and the client counts must be positive")

    from causal_router import MetaRouter
    from causal_router.text import TextFeaturizer

    load_start = os.getloadavg()
    frame, name = _frame(100, args.seed)
    featurizer = TextFeaturizer(n_components=50, text_column="query_text", pair_column="pair", random_state=0)
    t0 = time.perf_counter()
    router = MetaRouter(featurizer=featurizer, random_state=args.seed).fit(
        frame[["query_text", "pair"]], frame["gain"], source=frame["source"], groups=frame["query_id"])
    print(f"data: {name}; router fitted from text in {time.perf_counter() - t0:.1f} s "
          f"({router.n_features_in_} features)")
    rng = np.random.default_rng(args.seed)
    texts, pairs = frame["query_text"].tolist(), frame["pair"].tolist()
    pick = rng.integers(len(texts), size=(200, args.batch))
    X = router.featurizer_.transform(frame[["query_text", "pair"]])
    scenarios = {
        "texts, 1 prompt": [{"texts": [texts[i]], "pair": pairs[i]} for i in pick[:, 0]],
        f"texts, batch of {args.batch}": [{"texts": [texts[i] for i in row], "pair": [pairs[i] for i in row]}
                                          for row in pick[:20]],
        "features, 1 query": [{"features": [X[i].tolist()]} for i in pick[:, 0]],
        f"features, batch of {args.batch}": [{"features": X[row].tolist()} for row in pick[:20]],
    }
    print(f"machine: {os.cpu_count()} cores, load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
          "(1, 5, 15 min) at the start (shared with other work: figures are indicative); servers: one uvicorn "
          "worker each in a child process; clients: this process, httpx, keep-alive")
    rows, proxy_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = router.save(Path(tmp) / "router.cr")
        if "route" in args.parts:
            print("POST /route:")
            port = _free_port()
            proc = _start(_cli("serve", "--router", str(path), "--host", HOST, "--port", str(port),
                               "--log-level", "warning"), port)
            try:
                for label, bodies in scenarios.items():
                    for c in args.route_concurrency:
                        out = _run(f"http://{HOST}:{port}", bodies, c, args.requests, args.max_seconds, proc.pid)
                        rows.append({"scenario": label, "clients": c, **out})
                        print(f"  {label:<22} clients={c}: {out['requests_per_s']:8.1f} req/s "
                              f"{out['queries_per_s']:9.0f} queries/s  p50 {out['p50_ms']:6.2f} ms  "
                              f"p99 {out['p99_ms']:7.2f} ms  server CPU {out['server_cpu_ms_per_request']:6.2f} "
                              f"ms/request  ({out['requests']} requests, {out['errors']} errors)", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        if "proxy" in args.parts:
            pair = pd.Series(pairs).value_counts().index[0]
            print(f"POST /v1/chat/completions through the proxy (model pair {pair!r}; stub upstream answering after "
                  f"{args.upstream_delay_ms:g} ms):")
            proxy_rows = _proxy_part(path, texts, pair, args)
    share_rows = []
    if "share" in args.parts:
        print("share of new queries sent to the primary at a primary share set from the training queries:")
        share_rows = _share_part(args.share_splits)
    load_end = os.getloadavg()
    print(f"load average at the end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for table in (rows, proxy_rows):
            if table:
                print(pd.DataFrame(table).round(2).to_string(index=False))
    if args.out:
        from causal_router.io import atomic_write

        with atomic_write(args.out) as tmp:
            tmp.write_text(json.dumps({
                "command": "python benchmarks/bench_serve.py " + " ".join(argv), "cores": os.cpu_count(),
                "load_average_start": load_start, "load_average_end": load_end, "data": name,
                "route": rows, "proxy": proxy_rows, "share": share_rows}, indent=2))


if __name__ == "__main__":
    main()
