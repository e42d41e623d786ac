"""Benchmarks of the meta-router pipeline. Prints its figures; asserts nothing.

    python benchmarks/bench_pipeline.py reference --splits 20     # ours vs the paper's procedure
    python benchmarks/bench_pipeline.py scale --sizes 5000 50000 500000 1000000
    python benchmarks/bench_pipeline.py scale --sizes 1000000 10000000
    python benchmarks/bench_pipeline.py subsample                 # preference rows the bias model needs
    python benchmarks/bench_pipeline.py fittime --splits 10       # the default fit at n=5000, d=50
    python benchmarks/bench_pipeline.py routing                   # throughput and latency
    python benchmarks/bench_pipeline.py refute                    # wall time of the refutation suite

``reference``: a faithful re-implementation of the paper's published procedure, written here
from REFERENCE section 1 (random forests fitted and evaluated on the same rows, propensity
clipped to [0.1, 0.9], R-learner pseudo-outcomes (o - mu) / (t - p) with weights (t - p)^2, a
random-forest final stage, then a random-forest refit on gold plus corrected preference rows),
against our default ``MetaRouter()`` on the generator (n=5000, d=50, 100 gold, 500 test), over
the same splits in the same run: fit time ratio, oracle share and efficiency AUC of both.

``scale``: wall and CPU time and peak RSS of one default fit (bias + refit) at each number of
preference rows, d = 50, with 100 gold rows and with 1% gold rows; each size runs in a fresh
process so that peak RSS is that fit's own (data generated in blocks, features passed as
float32: the peak includes EvalData's float64 copy of them).

``subsample``: oracle share (5,000 test queries) and RMSE of the bias against the truth when
the bias model sees at most ``cap`` preference rows of 100k (the gain model sees all), for 100
and 2,000 gold rows: the measurement behind the cap in ``causal_router.bias``.

``fittime``: wall and CPU seconds of ``MetaRouter().fit`` at n=5000, d=50, 100 gold rows, with
the machine's load average (the wall time depends on what else runs). ``--rows-per-query r``
(r > 1): the data of ``make_repeated_queries(5000 // r, r, d=49)`` with their query ids, so that
every fold is ``StratifiedGroupKFold`` by query (the cost of cross-fitting by query); without it,
the generator's one row per query (``StratifiedKFold``).

``routing``: ``route`` on 100k queries (median and best of 7 batches, after the first calls
that compile or load the numba kernels), LightGBM's own ``predict`` for comparison, and the
latency of 2,000 single-query calls.

``refute``: wall time of ``causal_router.validate.refute`` (default suite; ``--thorough`` for the
publication-grade one) on the generator, n=5000, d=50, with 100 and 250 gold rows, for each
``--n-jobs``; also prints whether every refuter passed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from warning_counts import WarningCounts


# ---------------------------------------------------------------------------- the paper's procedure
def paper_meta_router(X, o, t, scale, random_state=0):
    """The published procedure: in-sample random forests, p clipped to [0.1, 0.9]."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    mu = RandomForestRegressor(100, random_state=random_state, n_jobs=-1).fit(X, o).predict(X)
    p = RandomForestClassifier(100, random_state=random_state, n_jobs=-1).fit(X, t).predict_proba(X)[:, 1]
    p = np.clip(p, 0.1, 0.9)
    pseudo, weight = (o - mu) / (t - p), (t - p) ** 2
    tau = RandomForestRegressor(100, random_state=random_state, n_jobs=-1).fit(X, pseudo, sample_weight=weight)
    labels = np.where(t == 1, o, o + tau.predict(X))
    gain = RandomForestRegressor(100, random_state=random_state, n_jobs=-1).fit(X, labels)
    return lambda Z: gain.predict(Z) / scale


def cmd_reference(args) -> None:
    from tqdm import tqdm

    from causal_router import MetaRouter
    from causal_router.data import pooled_outcome
    from causal_router.datasets import make_semi_synthetic, reveal_split
    from causal_router.evaluate import efficiency_auc, efficiency_curve, oracle_share

    frame = make_semi_synthetic(5000, 50, random_state=0)
    rows = []
    for seed in tqdm(range(args.splits), desc="splits"):
        split = reveal_split(frame, n_gold=100, n_test=500, random_state=seed)
        data = split.train
        t0 = time.perf_counter()
        ours = MetaRouter(random_state=seed).fit(data)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        scale = ours.scale_
        paper = paper_meta_router(data.X, pooled_outcome(data.gain, data.is_gold, scale), data.treatment, scale,
                                  random_state=seed)
        t_paper = time.perf_counter() - t0
        for name, pred, secs in (("ours", ours.predict_gain(split.test_X), t_ours),
                                 ("paper", paper(split.test_X), t_paper)):
            rows.append({"method": name, "seed": seed, "seconds": secs,
                         "oracle_share": oracle_share(pred, split.test_gold),
                         "auc": efficiency_auc(efficiency_curve(pred, split.test_gold))})
    import pandas as pd

    table = pd.DataFrame(rows).groupby("method")[["seconds", "oracle_share", "auc"]].agg(["mean", "std"])
    print(table.round(3).to_string())
    means = pd.DataFrame(rows).groupby("method").mean(numeric_only=True)
    print(f"time ratio paper / ours: {means.loc['paper', 'seconds'] / means.loc['ours', 'seconds']:.2f}x; "
          f"oracle share ours {means.loc['ours', 'oracle_share']:.3f} vs paper {means.loc['paper', 'oracle_share']:.3f}")


# ---------------------------------------------------------------------------- scale
def _generate(n: int, d: int, seed: int, block: int = 500_000):
    """Features (float32, to halve the peak: EvalData copies them to float64) and both gains of
    the built-in generator, drawn in blocks of ``block`` rows so that no frame of n rows exists."""
    from causal_router.datasets import make_semi_synthetic

    X = np.empty((n, d), dtype=np.float32)
    gold, pref = np.empty(n), np.empty(n)
    for i, start in enumerate(range(0, n, block)):
        frame = make_semi_synthetic(min(block, n - start), d, random_state=seed + i)
        stop = start + len(frame)
        X[start:stop] = frame[[f"x{j}" for j in range(d)]].to_numpy()
        gold[start:stop], pref[start:stop] = frame["gold_gain"], frame["pref_gain"]
    return X, gold, pref


def _one_size(n_pref: int, gold: str) -> dict:
    from causal_router import EvalData, MetaRouter

    n_gold = 100 if gold == "100" else max(100, n_pref // 99)
    X, gold_gain, pref_gain = _generate(n_pref + n_gold, 50, seed=0)
    is_gold = np.zeros(len(X), dtype=bool)
    is_gold[:n_gold] = True
    data = EvalData(X, np.where(is_gold, gold_gain, pref_gain), is_gold)
    del X, gold_gain, pref_gain
    t0, c0 = time.perf_counter(), time.process_time()
    router = MetaRouter(random_state=0).fit(data)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
    return {"n_pref": n_pref, "n_gold": n_gold, "bias_rows": len(router.bias_.sample_index_),
            "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "peak_rss_gib": round(peak, 2)}


def cmd_scale(args) -> None:
    for n in args.sizes:
        for gold in args.gold:
            out = subprocess.run([sys.executable, __file__, "_one", str(n), gold], capture_output=True, text=True)
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-500:]
            print(line, flush=True)


# ---------------------------------------------------------------------------- subsample / fittime
def cmd_subsample(args) -> None:
    """Oracle share and bias error when the bias model sees only ``cap`` preference rows (the
    gain model sees all), on the built-in generator: the measurement behind the cap in bias.py."""
    import pandas as pd
    from tqdm import tqdm

    import causal_router.bias as bias_module
    from causal_router import MetaRouter
    from causal_router.datasets import make_semi_synthetic, reveal_split
    from causal_router.evaluate import oracle_share

    rows = []
    configs = [(g, c, s) for g in args.gold for c in args.caps for s in range(args.seeds)]
    for n_gold, cap, seed in tqdm(configs, desc="fits"):
        frame = make_semi_synthetic(args.n_pref + n_gold + 5000, 50, random_state=seed)
        split = reveal_split(frame, n_gold=n_gold, n_test=5000, random_state=seed)
        bias_module.PREFERENCE_ROWS_MIN, bias_module.PREFERENCE_ROWS_PER_GOLD = min(cap, args.n_pref), 0
        t0, c0 = time.perf_counter(), time.process_time()
        router = MetaRouter(random_state=seed).fit(split.train)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        test = frame.iloc[split.test_index]
        truth = test["psi"].to_numpy() - test["eta"].to_numpy() / router.scale_
        err = router.bias_.effect(split.test_X) - truth
        rows.append({"n_gold": n_gold, "cap": min(cap, args.n_pref), "seed": seed, "seconds": secs, "cpu_seconds": cpu,
                     "oracle_share": oracle_share(router.predict_gain(split.test_X), split.test_gold),
                     "bias_rmse": float(np.sqrt(np.mean(err ** 2)))})
    table = pd.DataFrame(rows).groupby(["n_gold", "cap"])[["oracle_share", "bias_rmse", "cpu_seconds", "seconds"]]
    print(table.agg(["mean", "std"]).round(4).to_string())


def cmd_fittime(args) -> None:
    """Wall and CPU time of the default MetaRouter().fit at n=5000, d=50 (100 gold), per split."""
    from causal_router import MetaRouter
    from causal_router.datasets import make_repeated_queries, make_semi_synthetic, reveal_split

    r = args.rows_per_query
    if r > 1:
        frame = make_repeated_queries(5000 // r, r, d=49, random_state=0)
        n_test = 500 // r  # test queries: about 500 rows, as below
    else:
        frame, n_test = make_semi_synthetic(5000, 50, random_state=0), 500
    MetaRouter(random_state=0).fit(reveal_split(frame, n_test=n_test, random_state=0).train)  # warm-up: imports
    wall, cpu = [], []
    for seed in range(args.splits):
        data = reveal_split(frame, n_gold=100, n_test=n_test, random_state=seed).train
        t0, c0 = time.perf_counter(), time.process_time()
        MetaRouter(n_jobs=args.n_jobs, random_state=seed).fit(data)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"fits": args.splits, "n_jobs": args.n_jobs, "rows_per_query": r, "rows": len(data),
                      "d": data.X.shape[1], "wall_median_s": round(float(np.median(wall)), 2),
                      "wall_min_s": round(min(wall), 2), "wall_max_s": round(max(wall), 2),
                      "cpu_median_s": round(float(np.median(cpu)), 2),
                      "load_average_1min": round(os.getloadavg()[0], 1), "cores": os.cpu_count()}))


# ---------------------------------------------------------------------------- routing
def cmd_routing(args) -> None:
    from causal_router import MetaRouter
    from causal_router.datasets import make_semi_synthetic, reveal_split

    split = reveal_split(make_semi_synthetic(5000, 50, random_state=0), random_state=0)
    router = MetaRouter(random_state=0).fit(split.train)
    Q = np.random.default_rng(0).standard_normal((100_000, 50))
    t0 = time.perf_counter()
    router.route(Q[:1])
    router.route(Q[:10_000])  # first calls: compile (or load from numba's cache) both kernels
    first = time.perf_counter() - t0
    batch = []
    for _ in range(7):
        t0 = time.perf_counter()
        router.route(Q)
        batch.append(time.perf_counter() - t0)
    lightgbm = []
    for _ in range(3):
        t0 = time.perf_counter()
        router.gain_model_.predict(Q)
        lightgbm.append(time.perf_counter() - t0)
    lat = []
    for i in range(2000):
        t0 = time.perf_counter()
        router.route(Q[i:i + 1])
        lat.append(time.perf_counter() - t0)
    lat = np.array(lat) * 1e3
    print(json.dumps({"batch_queries_per_second_median": round(len(Q) / np.median(batch)),
                      "batch_queries_per_second_best": round(len(Q) / min(batch)),
                      "lightgbm_predict_queries_per_second_median": round(len(Q) / np.median(lightgbm)),
                      "first_calls_seconds": round(first, 3),
                      "single_query_ms_p50": round(float(np.percentile(lat, 50)), 3),
                      "single_query_ms_p99": round(float(np.percentile(lat, 99)), 3)}))


# ---------------------------------------------------------------------------- refutations
def cmd_refute(args) -> None:
    from causal_router.datasets import make_semi_synthetic, reveal_split
    from causal_router.validate import refute

    frame = make_semi_synthetic(5000, 50, random_state=0)
    for n_gold in (100, 250):
        data = reveal_split(frame, n_gold=n_gold, n_test=1, random_state=0).train
        for n_jobs in args.n_jobs:
            t0 = time.perf_counter()
            rep = refute(data, thorough=args.thorough, n_jobs=n_jobs, random_state=0, progress=False)
            print(json.dumps({"rows": len(data), "n_gold": n_gold, "suite": rep.meta["suite"], "n_jobs": n_jobs,
                              "refits": rep.meta["n_refits"], "seconds": round(time.perf_counter() - t0, 1),
                              "passed": rep.passed, "failed": rep.failed}), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        print(json.dumps(_one_size(int(sys.argv[2]), sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("reference")
    p.add_argument("--splits", type=int, default=20)
    p.set_defaults(func=cmd_reference)
    p = sub.add_parser("scale")
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000, 500000, 1000000])
    p.add_argument("--gold", nargs="+", default=["100", "1%"], choices=["100", "1%"])
    p.set_defaults(func=cmd_scale)
    p = sub.add_parser("subsample")
    p.add_argument("--n-pref", type=int, default=100_000)
    p.add_argument("--gold", type=int, nargs="+", default=[100, 2000])
    p.add_argument("--caps", type=int, nargs="+", default=[10_000, 25_000, 50_000, 100_000])
    p.add_argument("--seeds", type=int, default=3)
    p.set_defaults(func=cmd_subsample)
    p = sub.add_parser("fittime")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--rows-per-query", type=int, default=1, help="rows per query (> 1: folds by query)")
    p.add_argument("--n-jobs", type=int, default=None, help="MetaRouter(n_jobs=...): threads of the fit (default 1)")
    p.set_defaults(func=cmd_fittime)
    p = sub.add_parser("routing")
    p.set_defaults(func=cmd_routing)
    p = sub.add_parser("refute")
    p.add_argument("--n-jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--thorough", action="store_true")
    p.set_defaults(func=cmd_refute)
    args = parser.parse_args()
    counts = WarningCounts()
    with counts.record():  # counted and printed, never silenced
        args.func(args)
    counts.report()


if __name__ == "__main__":
    main()
