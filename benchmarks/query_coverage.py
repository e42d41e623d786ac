"""Coverage of ``BiasEstimator.ate()``'s 95% interval where queries carry several rows, by resampling.
Prints its table; asserts nothing.

    python benchmarks/query_coverage.py --settings pandalm prd --draws 500 --n-jobs 2 --out benchmarks/results/query_coverage
    python benchmarks/query_coverage.py --settings generator --draws 100 --n-jobs 2 --out benchmarks/results/query_coverage

Real data (PandaLM: 974 rows over 169 queries; PRD Vicuna80 with the GPT-4 judge: 800 rows over
80 questions). Every row carries both labels, so the truth is known: the full-data average of the
gold gain minus the judge's gain. Each draw reveals the gold label of 100 rows and the judge's
label of the others, and fits ``BiasEstimator(scale=None, random_state=draw)`` on all rows with
the package's text features (TF-IDF + SVD, 50 components, plus model-pair indicators, as the CLI's
``experiment`` does) and the query ids. ``scale=None``: gold and judge gains are on one scale
(-1 to 1) and the estimand is the average of gold minus judge itself, which does not move with a
fitted scale constant (with scale normalisation it would be psi - eta / c_hat, a different
number in every draw). Two designs of the 100 gold rows:

- ``rows``: 100 rows drawn uniformly (the design of ``reveal_split``);
- ``queries``: whole queries in random order, all their rows gold, until 100 rows (the last query
  cut at 100): gold labels bought per query, as an annotation campaign often does.

Per draw two intervals from the same fit: ``clustered`` (what ``ate()`` reports with query ids:
the cluster-robust standard error over queries, normal interval with at least 30 queries) and
``rows`` (the same pseudo-outcomes with rows as units, sd / sqrt(n): the standard error before
issue 23). The truth here is the average over these rows, for which the clustered interval (built
for the average over the population of queries) is conservative: it also counts the spread of
the bias between queries, which does not vary between draws of the gold rows.

``generator``: :func:`causal_router.datasets.make_repeated_queries` (60 queries x 30 rows, judge
bias varying by query around a population mean of 0.3, the truth), a new frame per draw (seed =
draw), 10% of the rows gold (180, uniform), ``BiasEstimator(scale=None)`` fitted with the query
ids (``clustered``) and, separately, without them (``no_ids``: rows as units, the fit before
issue 23). The slow test of ``tests/test_queries.py`` quotes it.

Writes ``runs_<setting>.csv`` (one row per draw and design) and ``summary.csv`` (coverage, its
binomial standard error, mean width, mean standard error, the sd of the estimates and their mean
error, per setting, design and interval) to ``--out``; completed draws are cached in
``--out/cache`` and not rerun.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import delayed

N_GOLD = 100
Z = 1.959963984540054

_FRAMES: dict = {}


def real_frame(name: str):
    """(frame, features (n, d), query ids) of a real set, featurised as the CLI's experiment does."""
    if name not in _FRAMES:
        from causal_router.datasets import load_pandalm, load_prd_vicuna80
        from causal_router.text import TextFeaturizer, featurize_queries

        frame = (load_pandalm() if name == "pandalm" else load_prd_vicuna80()).reset_index(drop=True)
        X, _, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=50))
        _FRAMES[name] = (frame, X)
    return _FRAMES[name]


def _gold_rows(design: str, queries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(queries)
    if design == "rows":
        return rng.choice(n, N_GOLD, replace=False)
    codes = pd.factorize(pd.Series(queries))[0]
    order = rng.permutation(codes.max() + 1)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    rows = np.lexsort((np.arange(n), rank[codes]))  # rows of the queries in random query order
    return rows[:N_GOLD]


def run_real(setting: str, draw: int, design: str, cache: Path | None) -> dict:
    from threadpoolctl import threadpool_limits

    from causal_router import BiasEstimator, EvalData

    path = None if cache is None else cache / f"{setting}_{design}_{draw:04d}.csv"
    if path is not None and path.exists():
        return pd.read_csv(path).iloc[0].to_dict()
    frame, X = real_frame(setting)
    queries = frame["query_id"].to_numpy()
    truth = float((frame["gold_gain"] - frame["pref_gain"]).mean())
    rng = np.random.default_rng([draw, 0 if design == "rows" else 1])
    gold = np.zeros(len(frame), dtype=bool)
    gold[_gold_rows(design, queries, rng)] = True
    gain = np.where(gold, frame["gold_gain"], frame["pref_gain"])
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        est = BiasEstimator(scale=None, random_state=draw).fit(EvalData(X, gain, gold, query_id=queries))
        ate = est.ate()
    phi = est.pseudo_outcomes_
    se_rows = float(np.std(phi, ddof=1) / np.sqrt(len(phi)))
    row = {"setting": setting, "draw": draw, "design": design, "truth": truth, "estimate": float(ate["estimate"]),
           "clustered_se": float(ate["std_error"]), "clustered_lower": float(ate["lower"]),
           "clustered_upper": float(ate["upper"]), "rows_se": se_rows,
           "rows_lower": float(ate["estimate"]) - Z * se_rows, "rows_upper": float(ate["estimate"]) + Z * se_rows,
           "n_clusters": float(ate["n_clusters"]), "n_gold_queries": int(len(np.unique(queries[gold]))),
           "seconds": time.perf_counter() - start}
    if path is not None:
        pd.DataFrame([row]).to_csv(path, index=False)
    return row


def run_generator(draw: int, cache: Path | None) -> dict:
    from threadpoolctl import threadpool_limits

    from causal_router import BiasEstimator, EvalData
    from causal_router.datasets import make_repeated_queries

    path = None if cache is None else cache / f"generator_rows_{draw:04d}.csv"
    if path is not None and path.exists():
        return pd.read_csv(path).iloc[0].to_dict()
    frame = make_repeated_queries(60, 30, random_state=draw)
    rng = np.random.default_rng(draw)
    gold = np.zeros(len(frame), dtype=bool)
    gold[rng.choice(len(frame), 180, replace=False)] = True
    X = frame[[c for c in frame.columns if c.startswith("x")]].to_numpy()
    gain = np.where(gold, frame["gold_gain"], frame["pref_gain"])
    truth = frame.attrs["bias_mean"]
    row = {"setting": "generator", "draw": draw, "design": "rows", "truth": truth,
           "sample_mean_bias": float(frame["bias"].mean())}
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        for name, ids in (("clustered", frame["query_id"].to_numpy()), ("no_ids", None)):
            ate = BiasEstimator(scale=None, random_state=draw).fit(EvalData(X, gain, gold, query_id=ids)).ate()
            row.update({f"{name}_estimate": float(ate["estimate"]), f"{name}_se": float(ate["std_error"]),
                        f"{name}_lower": float(ate["lower"]), f"{name}_upper": float(ate["upper"])})
    row["estimate"] = row["clustered_estimate"]
    row["seconds"] = time.perf_counter() - start
    if path is not None:
        pd.DataFrame([row]).to_csv(path, index=False)
    return row


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    out = []
    intervals = [c[:-6] for c in runs.columns if c.endswith("_lower")]
    for (setting, design), part in runs.groupby(["setting", "design"], sort=False):
        for name in intervals:
            lower, upper = part[f"{name}_lower"], part[f"{name}_upper"]
            if lower.isna().all():
                continue
            column = f"{name}_estimate"
            estimate = part[column] if column in part and part[column].notna().all() else part["estimate"]
            cover = (lower <= part["truth"]) & (part["truth"] <= upper)
            out.append({"setting": setting, "design": design, "interval": name, "draws": len(part),
                        "coverage": cover.mean(), "coverage_se": np.sqrt(cover.mean() * (1 - cover.mean()) / len(part)),
                        "mean_width": (upper - lower).mean(), "mean_se": part[f"{name}_se"].mean(),
                        "sd_estimate": estimate.std(ddof=1), "mean_error": (estimate - part["truth"]).mean(),
                        "truth": part["truth"].mean()})
    return pd.DataFrame(out)


def main(argv=None) -> None:
    import os
    import sys

    from causal_router._parallel import run_parallel

    # run the draws from this file imported as a module: the workers then keep the featurised frames
    # between draws (functions of __main__ are shipped by value, their cache with them)
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    import query_coverage as module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=["pandalm", "prd"], choices=["pandalm", "prd", "generator"])
    parser.add_argument("--designs", nargs="+", default=["rows", "queries"], choices=["rows", "queries"])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default="query_coverage_out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        if setting == "generator":
            tasks = [delayed(module.run_generator)(d, cache) for d in range(args.draws)]
        else:
            tasks = [delayed(module.run_real)(setting, d, design, cache) for design in args.designs
                     for d in range(args.draws)]
        runs = pd.DataFrame(run_parallel(tasks, n_jobs=args.n_jobs, desc=setting, unit="draw"))
        runs.to_csv(out / f"runs_{setting}.csv", index=False)
    all_runs = pd.concat([pd.read_csv(p) for p in sorted(out.glob("runs_*.csv"))], ignore_index=True)
    summary = summarise(all_runs)
    summary.to_csv(out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
