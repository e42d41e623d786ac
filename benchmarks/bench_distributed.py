"""The distributed fit (causal_router.distributed) against the single-process fit. Prints its
figures and writes CSV to benchmarks/results/distributed/; asserts nothing. Extra [dask].

    python benchmarks/bench_distributed.py generate --pref-rows 1000000 10000000 30000000 --out /tmp/cr_parquet
    python benchmarks/bench_distributed.py fit /tmp/cr_parquet/pref_1000000 --engine dask --workers 2
    python benchmarks/bench_distributed.py fit /tmp/cr_parquet/pref_1000000 --engine local
    python benchmarks/bench_distributed.py agree --n 20000 --seeds 0 1 2 3 4
    python benchmarks/bench_distributed.py report      # per-phase memory peaks from the fits above

``generate``: the built-in generator (``make_semi_synthetic``, d = 50) written to Parquet in
files of ``--file-rows`` rows (default 500,000), one file at a time (no frame of the whole size
exists): ``--pref-rows`` preference rows plus ``--gold-rows`` gold rows (default 1,000) at
random positions; features float32, ``gain`` float64, ``source`` "gold" / "preference".

``fit``: one fit of the default ``MetaRouter(random_state=0)`` on such a folder, timed, with
peak memory: ``--engine dask`` runs :func:`causal_router.distributed.fit_distributed` on a local
cluster of ``--workers`` worker processes (one thread each, ``--memory-limit`` each) and samples
every worker's RSS (psutil, every 0.2 s) and this process's (the client, where the bias model is
fitted), reporting each one's peak before the gain model's training (reading, checks, sample,
correction) and during it; ``--engine local`` reads the folder with pandas and fits
``MetaRouter`` in a child process, whose peak RSS (``ru_maxrss``) it reports, or, above
``--max-gib``, the step it had reached and its RSS when it was stopped. Each run appends a row to
``results/distributed/fits.csv`` with the machine's load average.

``agree``: on data that fits in memory (the generator, ``--n`` rows of which ``--n-gold`` gold, ``--d`` features,
written to Parquet in 5 files), the distributed fit (2 workers) against the local fit with the
same seed, and, for scale, the local fit against itself with another seed: the share of 2,000
test queries routed the same way at primary shares 0.2, 0.5, 0.8, the correlation of the
predicted gains, and each fit's oracle share. Writes ``results/distributed/agreement.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "distributed"
D = 50
FEATURES = [f"x{j}" for j in range(D)]


def _append_csv(name: str, row: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split(" ")[:3])


# ---------------------------------------------------------------------------- generate
def write_dataset(out: Path, n_pref: int, n_gold: int, file_rows: int, seed: int = 0, d: int = D) -> None:
    """``n_pref + n_gold`` generator rows (d features) to ``out``/part-NNNNN.parquet, one file at a time."""
    from causal_router.datasets import make_semi_synthetic

    n = n_pref + n_gold
    gold = np.sort(np.random.default_rng(seed).choice(n, size=n_gold, replace=False))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for i, start in enumerate(range(0, n, file_rows)):
        stop = min(n, start + file_rows)
        frame = make_semi_synthetic(stop - start, d, random_state=seed + 1 + i)
        is_gold = np.zeros(stop - start, dtype=bool)
        is_gold[gold[(gold >= start) & (gold < stop)] - start] = True
        part = frame[[f"x{j}" for j in range(d)]].astype(np.float32)
        part["gain"] = np.where(is_gold, frame["gold_gain"], frame["pref_gain"])
        part["source"] = np.where(is_gold, "gold", "preference")
        part.to_parquet(out / f"part-{i:05d}.parquet", index=False)


def cmd_generate(args) -> None:
    for n_pref in args.pref_rows:
        t0 = time.perf_counter()
        out = Path(args.out) / f"pref_{n_pref}"
        write_dataset(out, n_pref, args.gold_rows, args.file_rows)
        size = sum(p.stat().st_size for p in out.glob("*.parquet")) / 1024 ** 3
        print(f"{out}: {n_pref} preference + {args.gold_rows} gold rows, {len(list(out.glob('*.parquet')))} files, "
              f"{size:.2f} GiB, {time.perf_counter() - t0:.0f} s", flush=True)


# ---------------------------------------------------------------------------- fit
class RssSampler(threading.Thread):
    """Samples the RSS of some processes every ``interval`` seconds: (time, {name: bytes})."""

    def __init__(self, pids: dict, interval: float = 0.2):
        super().__init__(daemon=True)
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval, self.samples, self._halt = interval, [], threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            row = {}
            for name, proc in self.procs.items():
                try:
                    row[name] = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    row[name] = 0
            self.samples.append((time.perf_counter(), row))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, name: str, start: float = -np.inf, stop: float = np.inf) -> float:
        values = [row[name] for t, row in self.samples if start <= t <= stop]
        return max(values) / 1024 ** 3 if values else float("nan")


def _rows_in(folder: Path) -> tuple[int, int]:
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files), len(files)


def fit_dask(folder: Path, workers: int, memory_limit: str) -> dict:
    from distributed import Client

    from causal_router import MetaRouter
    from causal_router.distributed import fit_distributed, local_cluster

    n_rows, n_files = _rows_in(folder)
    with local_cluster(workers, memory_limit=memory_limit) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        names = {f"worker{i}": pids[w] for i, w in enumerate(sorted(pids))}
        sampler = RssSampler({**names, "client": os.getpid()})
        base = {k: v / 1024 ** 3 for k, v in client.run(lambda: __import__("psutil").Process().memory_info().rss).items()}
        sampler.start()
        t0 = time.perf_counter()
        router = fit_distributed(folder, features=FEATURES, router=MetaRouter(random_state=0), client=client,
                                 progress=False)
        secs = time.perf_counter() - t0
        sampler.stop()
    summary = router.distributed_summary_
    steps = summary["seconds"]
    train_start = t0 + steps["check"] + steps["bias"] + steps["correct"]
    row = {"engine": "dask", "workers": workers, "memory_limit": memory_limit, "n_rows": n_rows, "files": n_files,
           "rows_per_worker": n_rows // workers, "seconds": round(secs, 1),
           **{f"seconds_{k}": round(v, 1) for k, v in steps.items()},
           "worker_baseline_gib": round(max(base.values()), 2),
           "worker_peak_before_training_gib": round(max(sampler.peak(n, t0, train_start) for n in names), 2),
           "worker_peak_training_gib": round(max(sampler.peak(n, train_start) for n in names), 2),
           "client_peak_gib": round(sampler.peak("client"), 2),
           "process_peak_gib": "", "stopped_at": "", "loadavg": _loadavg()}
    (RESULTS / "rss").mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "rss" / f"dask_{n_rows}_{workers}w.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", *names, "client"])
        for t, sample in sampler.samples:
            w.writerow([round(t - t0, 2), *(round(sample[n] / 1024 ** 2) for n in [*names, "client"])])
    return row


def _local_child(folder: str) -> None:
    """In a child process: read the folder whole, fit MetaRouter, print steps and the peak RSS."""
    from causal_router import EvalData, MetaRouter

    def step(name):
        print(json.dumps({"step": name, "t": time.perf_counter()}), flush=True)

    step("reading")
    frame = pd.read_parquet(folder)
    step("building EvalData")
    data = EvalData.from_frame(frame, FEATURES)
    del frame
    step("fitting")
    t0 = time.perf_counter()
    MetaRouter(random_state=0).fit(data)
    print(json.dumps({"step": "done", "fit_seconds": time.perf_counter() - t0,
                      "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}), flush=True)


def fit_local(folder: Path, max_gib: float) -> dict:
    import psutil

    n_rows, n_files = _rows_in(folder)
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "_local", str(folder)], stdout=subprocess.PIPE, text=True)
    proc, peak, stopped, lines = psutil.Process(child.pid), 0, "", []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
    reader.start()
    while child.poll() is None:
        try:
            rss = proc.memory_info().rss / 1024 ** 3
        except psutil.NoSuchProcess:
            break
        peak = max(peak, rss)
        if rss > max_gib:
            child.kill()
            child.wait()
            reader.join(timeout=5)
            last = [json.loads(x) for x in lines if x.startswith("{")]
            stopped = f"{last[-1]['step'] if last else 'start'} (RSS {rss:.2f} GiB > {max_gib} GiB, {time.perf_counter() - t0:.0f} s)"
            break
        time.sleep(0.2)
    reader.join(timeout=30)
    secs = time.perf_counter() - t0
    done = [json.loads(x) for x in lines if x.startswith("{") and '"done"' in x]
    return {"engine": "local", "workers": 1, "memory_limit": "", "n_rows": n_rows, "files": n_files,
            "rows_per_worker": n_rows, "seconds": round(secs, 1),
            "seconds_check": "", "seconds_bias": "", "seconds_correct": "", "seconds_gain_model": "",
            "worker_baseline_gib": "", "worker_peak_before_training_gib": "", "worker_peak_training_gib": "",
            "client_peak_gib": "",
            "process_peak_gib": round(done[0]["peak"], 2) if done else round(peak, 2),
            "stopped_at": stopped, "loadavg": _loadavg()}


def cmd_fit(args) -> None:
    folder = Path(args.folder)
    before = _loadavg()
    row = fit_dask(folder, args.workers, args.memory_limit) if args.engine == "dask" else fit_local(folder, args.max_gib)
    row["loadavg_before"] = before
    print(json.dumps(row), flush=True)
    _append_csv("fits.csv", row)


# ---------------------------------------------------------------------------- agreement
def cmd_agree(args) -> None:
    from distributed import Client

    from causal_router import EvalData, MetaRouter
    from causal_router.datasets import make_semi_synthetic
    from causal_router.distributed import fit_distributed, local_cluster
    from causal_router.evaluate import oracle_share

    features = [f"x{j}" for j in range(args.d)]
    test = make_semi_synthetic(2000, args.d, random_state=10_000)
    X_test, truth = test[features], test["psi"].to_numpy()
    shares = (0.2, 0.5, 0.8)
    folder = Path(args.tmp)
    with local_cluster(2) as cluster, Client(cluster) as client:
        for seed in args.seeds:
            write_dataset(folder, args.n - args.n_gold, args.n_gold, file_rows=-(-args.n // 5), seed=seed, d=args.d)
            frame = pd.read_parquet(folder)
            data = EvalData.from_frame(frame, features)
            local = MetaRouter(random_state=seed).fit(data)
            reseeded = MetaRouter(random_state=seed + 1000).fit(data)
            dist = fit_distributed(folder, features=features, router=MetaRouter(random_state=seed), client=client,
                                   progress=False)
            gains = {k: r.predict_gain(X_test) for k, r in (("local", local), ("reseeded", reseeded), ("dask", dist))}
            for other in ("dask", "reseeded"):
                row = {"seed": seed, "n": args.n, "n_gold": args.n_gold, "d": args.d, "compared": f"local vs {other}",
                       "gain_correlation": round(float(np.corrcoef(gains["local"], gains[other])[0, 1]), 4),
                       "max_abs_gain_difference": round(float(np.max(np.abs(gains["local"] - gains[other]))), 4),
                       "bias_effect_identical": bool(np.array_equal(local.bias_.effect(X_test),
                                                                    (dist if other == "dask" else reseeded).bias_.effect(X_test))),
                       "scale_local": local.scale_, "scale_other": (dist if other == "dask" else reseeded).scale_}
                for share in shares:
                    a = gains["local"] >= np.quantile(gains["local"], 1 - share)
                    b = gains[other] >= np.quantile(gains[other], 1 - share)
                    row[f"same_route_{share}"] = round(float(np.mean(a == b)), 4)
                row["oracle_share_local"] = round(oracle_share(gains["local"], truth), 4)
                row["oracle_share_other"] = round(oracle_share(gains[other], truth), 4)
                print(json.dumps(row), flush=True)
                _append_csv("agreement.csv", row)
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- report
def cmd_report(args) -> None:
    """Per-phase peaks of the workers' RSS from results/distributed/rss/*.csv and the step times in
    fits.csv: reading (the check and sample passes), correction (streaming into the block) and
    training (the largest worker's; ``rows_per_worker`` is n_rows / workers, the split the runs
    aim at)."""
    fits = pd.read_csv(RESULTS / "fits.csv")
    rows = []
    for _, fit in fits[fits.engine == "dask"].iterrows():
        path = RESULTS / "rss" / f"dask_{fit.n_rows}_{fit.workers}w.csv"
        if not path.exists():
            continue
        rss = pd.read_csv(path)
        workers = [c for c in rss.columns if c.startswith("worker")]
        read_end = fit.seconds_check + fit.seconds_bias
        correct_end = read_end + fit.seconds_correct
        phases = {"read_check_sample": rss.seconds <= read_end,
                  "correct_into_block": (rss.seconds > read_end) & (rss.seconds <= correct_end),
                  "train": rss.seconds > correct_end}
        row = {"n_rows": fit.n_rows, "workers": fit.workers, "rows_per_worker": fit.rows_per_worker,
               "seconds": fit.seconds, "loadavg": fit.loadavg}
        for name, mask in phases.items():
            row[f"worker_peak_{name}_gib"] = round(float(rss.loc[mask, workers].to_numpy().max()) / 1024, 2)
        row["client_peak_gib"] = round(float(rss["client"].max()) / 1024, 2)
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["rows_per_worker", "workers"])
    print(table.to_string(index=False))
    table.to_csv(RESULTS / "phases.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("generate")
    p.add_argument("--pref-rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 30_000_000])
    p.add_argument("--gold-rows", type=int, default=1000)
    p.add_argument("--file-rows", type=int, default=500_000)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("fit")
    p.add_argument("folder")
    p.add_argument("--engine", choices=["dask", "local"], default="dask")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="6GiB", help="per worker (dask); a worker above 95%% is restarted")
    p.add_argument("--max-gib", type=float, default=12.0, help="stop the local fit above this RSS")
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("agree")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--n-gold", type=int, default=500)
    p.add_argument("--d", type=int, default=D)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--tmp", default="/tmp/cr_agree_parquet")
    p.set_defaults(func=cmd_agree)
    p = sub.add_parser("report")
    p.set_defaults(func=cmd_report)
    if len(sys.argv) > 2 and sys.argv[1] == "_local":
        _local_child(sys.argv[2])
        return
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
