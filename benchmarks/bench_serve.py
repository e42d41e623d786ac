"""Load benchmark of the routing server (``causal-router serve``). Prints its figures; asserts nothing.

    python benchmarks/bench_serve.py                      # PandaLM (the copy bundled with the package)
    python benchmarks/bench_serve.py --requests 2000 --max-seconds 30 --concurrency 1 4

Fits a text router (TF-IDF + SVD, 50 components, model-pair indicators; PandaLM's instructions
with 100 gold rows: ``load_pandalm()``, the bundled copy or the raw files under
``$CAUSAL_ROUTER_DATA``), saves
it as a router file, starts ``causal-router serve`` on a free loopback port in a child process
(one uvicorn worker) and sends it ``POST /route`` requests from this process: single prompts and
batches of 100 prompts (``texts``), and the same as precomputed ``features``. Each scenario runs
after 20 warm-up requests, closed loop (each client sends its next request when the answer
arrives), with 1 and with 4 concurrent clients by default, until ``--requests`` requests or
``--max-seconds`` seconds, whichever comes first. Reported per scenario: requests/s, queries/s,
latency p50 / p99 in ms (time from sending a request to reading its whole answer) and the
server process's CPU time per request (from /proc; less sensitive than wall time to other work
on a shared machine: one core serves about 1000 / that many requests per second).

Traffic goes only to 127.0.0.1; the server is stopped at the end. The client and the server
share the machine's cores, so the figures are a lower bound of what the server does alone.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
HOST = "127.0.0.1"  # loopback only


def _frame(n_gold: int, seed: int) -> tuple[pd.DataFrame, str]:
    """Training rows (query_text, pair, gain, source) and the name of the data."""
    from causal_router.datasets import load_pandalm

    rng = np.random.default_rng(seed)
    frame = load_pandalm()
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


def _start_server(router_path: Path, port: int, timeout: float = 120.0) -> subprocess.Popen:
    import httpx

    code = "import sys; from causal_router.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--router", str(router_path), "--host", HOST,
                             "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1.0).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the server did not answer /health within {timeout} s")


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="most requests per scenario")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="most seconds per scenario")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch", type=int, default=100, help="prompts per batch request")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from causal_router import MetaRouter
    from causal_router.text import TextFeaturizer

    frame, name = _frame(100, args.seed)
    featurizer = TextFeaturizer(n_components=50, text_column="query_text", pair_column="pair", random_state=0)
    t0 = time.perf_counter()
    router = MetaRouter(featurizer=featurizer, random_state=args.seed).fit(
        frame[["query_text", "pair"]], frame["gain"], source=frame["source"])
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
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start (shared with "
          "other work: figures are indicative); "
          f"server: one uvicorn worker in a child process; client: this process, httpx, keep-alive")
    with tempfile.TemporaryDirectory() as tmp:
        path = router.save(Path(tmp) / "router.cr")
        port = _free_port()
        proc = _start_server(path, port)
        try:
            rows = []
            for label, bodies in scenarios.items():
                for c in args.concurrency:
                    out = _run(f"http://{HOST}:{port}", bodies, c, args.requests, args.max_seconds, proc.pid)
                    rows.append({"scenario": label, "clients": c, **out})
                    print(f"  {label:<22} clients={c}: {out['requests_per_s']:8.1f} req/s "
                          f"{out['queries_per_s']:9.0f} queries/s  p50 {out['p50_ms']:6.2f} ms  "
                          f"p99 {out['p99_ms']:7.2f} ms  server CPU {out['server_cpu_ms_per_request']:6.2f} ms/request  "
                          f"({out['requests']} requests, {out['errors']} errors)",
                          flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    with pd.option_context("display.width", 160):
        print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
