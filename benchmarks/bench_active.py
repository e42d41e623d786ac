"""Choosing gold rows, measured. Prints its tables; asserts nothing.

    python benchmarks/bench_active.py curves --repeats 20 --n-jobs 2 --out bench_active_out
    python benchmarks/bench_active.py curves --settings pocket groups --repeats 5 --strategies random decision
    python benchmarks/bench_active.py coverage --seeds 200 --strategies decision --n-jobs 2 --out bench_active_coverage

``curves``: acquisition curves, oracle share against the number of gold labels, for every
strategy of ``causal_router.active.suggest_gold`` against random acquisition.

Each repeat draws a frame (synthetic settings) and a test set, reveals gold labels on 25 random
training queries (the same 25 for every strategy of a repeat: paired comparisons), and then, round
by round, lets the strategy choose the next gold labels (25 -> 50 -> 100 -> 150 -> ... -> 400)
with ``suggest_gold(router, data, budget, strategy=...)``; the chosen rows reveal their gold label
(``SuggestedGold.apply``, which also carries every row's probability of a gold label). After every
round ``MetaRouter(random_state=seed)`` is refitted and scored by its oracle share on the held-out
gold gains.

Settings (heterogeneous judge biases; ``bias`` = the true Delta(s), gold scale):

- ``generator``: ``causal_router.datasets.make_semi_synthetic(5000, 50)``.
- ``pocket``: 5,000 queries, 50 Gaussian features; gold gain in features 0-4; the judge is
  badly wrong (bias +0.6) in a pocket of about 8% of queries (x7 > 1 and x8 > 0) and mildly
  biased elsewhere (0.1 + 0.15 sin 2 x9): a sparse, nonlinear bias in features unrelated to the gain.
- ``groups``: 5,000 queries in 12 topic groups of very unequal sizes (from 36% down to 2.3%),
  40 Gaussian features plus the one-hot group; each group has its own judge bias (drawn once per
  repeat, N(0.1, 0.35)) and its own gain offset: bias by a categorical group.
- ``pandalm``: PandaLM (human verdicts are the gold labels, GPT-3.5's the preference labels);
  TF-IDF + SVD text features (50 components) plus model-pair indicators; 35 test queries held out
  whole (about 200 rows; a query carries one row per model pair), the routers cross-fitted by
  query. Needs ``CAUSAL_ROUTER_DATA``.

``coverage``: the average bias's 95% interval (``BiasEstimator.ate()``) under active selection.
Per seed: the generator at n = 1,500, d = 12 (all rows are training rows; the size of
``ate_coverage.py``), 25 random gold labels, then two rounds chosen by a strategy (25 -> 75 -> 150,
``MetaRouter`` refitted between rounds), and the default ``BiasEstimator`` fitted on the result with
the design's ``gold_probability`` (the propensity known by design); with ``--contrast`` also
without it (the propensity estimated, the design ignored). Target: the mean of psi - eta / c_hat
over the rows, c_hat the fitted scale constant (the quantity ``ate()`` estimates). Coverage, mean
error and its standard error, per strategy and fit. Each seed's rows are cached in ``--out/cache``
(an interrupted run resumes; ``--summarise`` prints the table of what is cached). Writes
``coverage_runs.csv`` and ``coverage.csv``.

Outputs of ``curves`` in ``--out``: ``runs.csv`` (one row per repeat, strategy and gold count), ``summary.csv``
(mean and standard error; difference to random, paired), ``efficiency.csv`` (labels each strategy
needs to reach random's oracle share at the largest gold count, with a bootstrap interval over
repeats), ``acquisition.png``. Completed (setting, repeat, strategy) runs are cached in
``--out/cache`` and skipped when the command is run again.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import delayed

CHECKPOINTS = (25, 50, 100, 150, 200, 250, 300, 400)
STRATEGIES = ("random", "uncertainty", "decision", "diverse")
HETEROGENEOUS = ("generator", "pocket", "groups")
N_GROUPS = 12


# ---------------------------------------------------------------------------- settings
def _gain(X):
    return 0.3 + 0.3 * np.tanh(X[:, 0]) + 0.2 * np.sin(1.5 * X[:, 1]) + 0.15 * X[:, 2] * X[:, 3] + 0.15 * X[:, 4]


def _frame(X, psi, bias, rng, pref_scale=1.5, noise=0.35):
    n = len(X)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    frame["psi"], frame["eta"], frame["bias"] = psi, pref_scale * (psi - bias), bias
    frame["gold_gain"] = psi + noise * rng.standard_normal(n)
    frame["pref_gain"] = frame["eta"] + pref_scale * noise * rng.standard_normal(n)
    return frame


def make_pocket(seed: int, n: int = 5000, d: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    pocket = (X[:, 7] > 1.0) & (X[:, 8] > 0.0)
    bias = 0.1 + 0.15 * np.sin(2.0 * X[:, 9]) + 0.6 * pocket
    return _frame(X, _gain(X), bias, rng)


def make_groups(seed: int, n: int = 5000, d: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    share = 1.0 / np.arange(1, N_GROUPS + 1) ** 1.1
    group = rng.choice(N_GROUPS, n, p=share / share.sum())
    X = np.hstack([rng.standard_normal((n, d)), (group[:, None] == np.arange(N_GROUPS)).astype(float)])
    bias = rng.normal(0.1, 0.35, N_GROUPS)[group]
    psi = _gain(X) + rng.normal(0.0, 0.15, N_GROUPS)[group]
    return _frame(X, psi, bias, rng)


def make_generator(seed: int) -> pd.DataFrame:
    from causal_router.datasets import make_semi_synthetic

    return make_semi_synthetic(5000, 50, random_state=seed)


_PANDALM: dict = {}


def make_pandalm(seed: int) -> pd.DataFrame:
    if "frame" not in _PANDALM:
        from causal_router.datasets import default_data_dir, load_pandalm
        from causal_router.text import TextFeaturizer, featurize_queries

        root = default_data_dir()
        if root is None:
            raise SystemExit("the pandalm setting needs CAUSAL_ROUTER_DATA (a folder holding pandalm/)")
        frame = load_pandalm(root / "pandalm").reset_index(drop=True)
        X, _, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=50), random_state=0)
        feats = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
        _PANDALM["frame"] = pd.concat([frame, feats], axis=1)
    return _PANDALM["frame"]


#: setting -> (frame maker, test rows; test queries where queries repeat)
SETTINGS = {"generator": (make_generator, 1000), "pocket": (make_pocket, 1000), "groups": (make_groups, 1000),
            "pandalm": (make_pandalm, 35)}


# ---------------------------------------------------------------------------- one run
def run_one(setting: str, repeat: int, strategy: str, seed: int, checkpoints, cache: Path | None):
    from threadpoolctl import threadpool_limits

    path = None if cache is None else cache / f"{setting}_{repeat:03d}_{strategy}.csv"
    if path is not None and path.exists():
        return pd.read_csv(path)
    with threadpool_limits(limits=1):
        rows = _run(setting, repeat, strategy, seed, checkpoints)
    result = pd.DataFrame(rows)
    if path is not None:
        result.to_csv(path, index=False)
    return result


def _run(setting, repeat, strategy, seed, checkpoints):
    from causal_router import EvalData, MetaRouter
    from causal_router.active import suggest_gold
    from causal_router.evaluate import oracle_share

    make, n_test = SETTINGS[setting]
    frame = make(seed)
    features = [c for c in frame.columns if c[:1] == "x" and c[1:].isdigit()]
    rng = np.random.default_rng(seed)
    queries = frame["query_id"].to_numpy() if "query_id" in frame and frame["query_id"].duplicated().any() else None
    if queries is None:  # one row per query: n_test rows
        order = rng.permutation(len(frame))
        test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    else:  # whole queries held out: n_test queries
        codes = pd.factorize(pd.Series(queries))[0]
        held = np.isin(codes, rng.permutation(codes.max() + 1)[:n_test])
        test, train = np.flatnonzero(held), np.flatnonzero(~held)
    X, X_test = frame[features].to_numpy()[train], frame[features].to_numpy()[test]
    gold, pref = frame["gold_gain"].to_numpy()[train], frame["pref_gain"].to_numpy()[train]
    test_gold = frame["gold_gain"].to_numpy()[test]
    n = len(train)
    is_gold = np.zeros(n, dtype=bool)
    is_gold[rng.choice(n, checkpoints[0], replace=False)] = True
    data = EvalData(X, np.where(is_gold, gold, pref), is_gold, gold_probability=np.full(n, checkpoints[0] / n),
                    query_id=None if queries is None else queries[train], feature_names=features)
    draws = np.random.SeedSequence([seed, STRATEGIES.index(strategy) if strategy in STRATEGIES else 99]).spawn(
        len(checkpoints))
    rows = []
    for k, n_gold in enumerate(checkpoints):
        start = time.perf_counter()
        router = MetaRouter(random_state=seed).fit(data)
        ate = router.bias_.ate()
        row = {"setting": setting, "repeat": repeat, "strategy": strategy, "n_gold": data.n_gold,
               "oracle_share": oracle_share(router.predict_gain(X_test), test_gold),
               "ate": ate["estimate"], "ate_se": ate["std_error"], "scale": router.scale_,
               "gold_probability_min": data.gold_probability.min(), "gold_probability_max": data.gold_probability.max(),
               "final_stage": router.bias_.final_stage_}
        if "psi" in frame:
            truth = frame["psi"].to_numpy()[train] - frame["eta"].to_numpy()[train] / router.scale_
            row["true_ate"] = float(truth.mean())
        if k + 1 < len(checkpoints):
            suggestion = suggest_gold(router, data, checkpoints[k + 1] - n_gold, strategy=strategy,
                                      random_state=np.random.default_rng(draws[k]))
            data = suggestion.apply(data, gold[suggestion.index])
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- summaries
def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean oracle share and standard error per setting, strategy and gold count; the paired
    difference to random with its standard error."""
    keys = ["setting", "strategy", "n_gold"]
    table = runs.groupby(keys)["oracle_share"].agg(["mean", "sem", "count"])
    base = runs[runs["strategy"] == "random"].set_index(["setting", "repeat", "n_gold"])["oracle_share"]
    diff = runs.set_index(["setting", "repeat", "n_gold"]).join(base.rename("random_share"), how="inner")
    diff["diff"] = diff["oracle_share"] - diff["random_share"]
    d = diff.reset_index().groupby(keys)["diff"].agg(["mean", "sem"]).rename(columns={"mean": "diff", "sem": "diff_se"})
    return table.join(d)


def _reach(curve_n, curve, level) -> float:
    """Smallest gold count at which a mean curve reaches ``level`` (linear interpolation in log n
    between checkpoints); inf if it never does."""
    above = np.flatnonzero(curve >= level)
    if len(above) == 0:
        return np.inf
    k = int(above[0])
    if k == 0:
        return float(curve_n[0])
    x0, x1, y0, y1 = np.log(curve_n[k - 1]), np.log(curve_n[k]), curve[k - 1], curve[k]
    return float(np.exp(x0 + (level - y0) / (y1 - y0) * (x1 - x0)))


def efficiency(runs: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per setting and strategy: gold labels needed to reach random's mean oracle share at the largest
    gold count, the label efficiency (that count over it), and 95% bootstrap intervals over repeats."""
    rng = np.random.default_rng(seed)
    out = []
    for setting, part in runs.groupby("setting"):
        wide = part.pivot_table(index=["repeat", "n_gold"], columns="strategy", values="oracle_share")
        n_axis = np.sort(part["n_gold"].unique())
        repeats = np.sort(part["repeat"].unique())
        cube = {s: wide[s].unstack("n_gold").reindex(index=repeats, columns=n_axis).to_numpy() for s in wide.columns}
        for strategy, values in cube.items():
            def needed(take):
                level = np.nanmean(cube["random"][take, -1])
                return _reach(n_axis, np.nanmean(values[take], axis=0), level)
            point = needed(np.arange(len(repeats)))
            boot = np.array([needed(rng.integers(0, len(repeats), len(repeats))) for _ in range(n_boot)])
            out.append({"setting": setting, "strategy": strategy, "n_needed": point,
                        "n_needed_lower": float(np.quantile(boot, 0.025, method="inverted_cdf")),
                        "n_needed_upper": float(np.quantile(boot, 0.975, method="inverted_cdf")),
                        "efficiency": n_axis[-1] / point, "repeats": len(repeats)})
    return pd.DataFrame(out)


def plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from causal_router.report.plotting import plot_acquisition_curves

    counts = summary.groupby("setting")["count"].max()
    table = summary.reset_index()
    table["setting"] = [f"{s} ({int(counts[s])} repeats)" for s in table["setting"]]
    fig = plot_acquisition_curves(table)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("curves", help="acquisition curves of every strategy against random")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--checkpoints", type=int, nargs="+", default=list(CHECKPOINTS),
                   help="gold counts at which routers are scored (the first is drawn at random)")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench_active_out")
    p.add_argument("--no-cache", action="store_true", help="recompute runs that are cached in --out/cache")
    p.set_defaults(func=cmd_curves)
    p = sub.add_parser("coverage", help="coverage of the average bias's interval under active selection")
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--strategies", nargs="+", default=["random", "uncertainty", "decision"], choices=list(STRATEGIES))
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench_active_coverage")
    p.add_argument("--contrast", action="store_true", help="also fit without the design's probabilities")
    p.add_argument("--summarise", action="store_true", help="only summarise the runs cached in --out/cache")
    p.set_defaults(func=cmd_coverage)
    args = parser.parse_args(argv)
    args.func(args)


def cmd_curves(args) -> None:
    from causal_router._parallel import run_parallel

    if "random" not in args.strategies:
        args.strategies = ["random", *args.strategies]
    out = Path(args.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if args.no_cache:
        for f in cache.glob("*.csv"):
            f.unlink()
    seeds = {s: [int(x.generate_state(1)[0]) for x in np.random.SeedSequence([args.seed, k]).spawn(args.repeats)]
             for k, s in enumerate(SETTINGS)}
    tasks = [delayed(run_one)(s, r, strategy, seeds[s][r], tuple(args.checkpoints), cache)
             for r in range(args.repeats) for s in args.settings for strategy in args.strategies]
    start = time.perf_counter()
    results = run_parallel(tasks, n_jobs=args.n_jobs, desc="acquisition runs", unit="run")
    print(f"{len(tasks)} runs in {time.perf_counter() - start:.0f} s (n_jobs={args.n_jobs}, {os.cpu_count()} cores)")
    runs = pd.concat(results, ignore_index=True)
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarise(runs)
    summary.to_csv(out / "summary.csv")
    eff = efficiency(runs)
    eff.to_csv(out / "efficiency.csv", index=False)
    plot(summary, out / "acquisition.png")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(summary.round(4).to_string())
        print(eff.round(3).to_string(index=False))
        cov = runs.dropna(subset=["true_ate"]) if "true_ate" in runs else runs.iloc[:0]
        if len(cov):
            cov = cov.assign(covered=(cov["ate"] - cov["true_ate"]).abs() <= 1.96 * cov["ate_se"],
                             error=cov["ate"] - cov["true_ate"])
            print(cov.groupby(["setting", "strategy"])[["covered", "error"]].mean().round(3).to_string())
    print(f"written to {out}/ (runs.csv, summary.csv, efficiency.csv, acquisition.png)")


def coverage_one(seed: int, strategy: str, contrast: bool, cache: Path | None, rounds=(25, 75, 150),
                 n: int = 1500, d: int = 12) -> list[dict]:
    from threadpoolctl import threadpool_limits

    path = None if cache is None else cache / f"{strategy}_{seed}.csv"
    if path is not None and path.exists():
        rows = pd.read_csv(path).to_dict(orient="records")
        if contrast <= any(r["propensity"] == "ignored" for r in rows):
            return rows
    with threadpool_limits(limits=1):
        rows = _coverage_one(seed, strategy, contrast, rounds, n, d)
    if path is not None:
        pd.DataFrame(rows).to_csv(path, index=False)
    return rows


def _coverage_one(seed, strategy, contrast, rounds, n, d):
    from causal_router import BiasEstimator, EvalData, MetaRouter
    from causal_router.active import suggest_gold
    from causal_router.datasets import make_semi_synthetic

    frame = make_semi_synthetic(n, d, random_state=seed)
    X = frame[[f"x{j}" for j in range(d)]].to_numpy()
    gold, pref = frame["gold_gain"].to_numpy(), frame["pref_gain"].to_numpy()
    psi, eta = frame["psi"].to_numpy(), frame["eta"].to_numpy()
    rng = np.random.default_rng(seed)
    is_gold = np.zeros(n, dtype=bool)
    is_gold[rng.choice(n, rounds[0], replace=False)] = True
    data = EvalData(X, np.where(is_gold, gold, pref), is_gold, gold_probability=np.full(n, rounds[0] / n))
    for k in range(1, len(rounds)):
        router = MetaRouter(random_state=seed).fit(data)
        suggestion = suggest_gold(router, data, rounds[k] - rounds[k - 1], strategy=strategy,
                                  random_state=np.random.default_rng([seed, k]))
        data = suggestion.apply(data, gold[suggestion.index])
    fits = [("known", data)]
    if contrast:
        ignored = data.subset(np.arange(n))
        ignored.gold_probability = None
        fits.append(("ignored", ignored))
    rows = []
    for fit, part in fits:
        bias = BiasEstimator(random_state=seed).fit(part)
        ate = bias.ate()
        truth = float(np.mean(psi - eta / bias.scale_))
        rows.append({"seed": seed, "strategy": strategy, "propensity": fit, "estimate": ate["estimate"],
                     "std_error": ate["std_error"], "truth": truth, "covered": bool(ate["lower"] <= truth <= ate["upper"]),
                     "gold_probability_min": data.gold_probability.min(),
                     "gold_probability_max": data.gold_probability.max()})
    return rows


def cmd_coverage(args) -> None:
    from causal_router._parallel import run_parallel

    out = Path(args.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if args.summarise:
        results = [pd.read_csv(f).to_dict(orient="records") for f in sorted(cache.glob("*.csv"))]
        if not results:
            raise SystemExit(f"no runs cached in {cache}")
    else:
        seeds = [int(x.generate_state(1)[0]) for x in np.random.SeedSequence(args.seed).spawn(args.seeds)]
        tasks = [delayed(coverage_one)(seed, strategy, args.contrast, cache)
                 for seed in seeds for strategy in args.strategies]
        start = time.perf_counter()
        results = run_parallel(tasks, n_jobs=args.n_jobs, desc="coverage seeds", unit="run")
        print(f"{len(tasks)} runs in {time.perf_counter() - start:.0f} s (n_jobs={args.n_jobs})")
    runs = pd.DataFrame([row for rows in results for row in rows])
    runs.to_csv(out / "coverage_runs.csv", index=False)
    runs["error"] = runs["estimate"] - runs["truth"]
    table = runs.groupby(["strategy", "propensity"]).agg(
        seeds=("seed", "size"), coverage=("covered", "mean"), mean_error=("error", "mean"),
        error_se=("error", "sem"), mean_std_error=("std_error", "mean"), sd_estimate=("error", "std"),
        min_gold_probability=("gold_probability_min", "mean"), max_gold_probability=("gold_probability_max", "mean"))
    table["coverage_se"] = np.sqrt(table["coverage"] * (1 - table["coverage"]) / table["seeds"])
    table.to_csv(out / "coverage.csv")
    with pd.option_context("display.width", 200):
        print(table.round(4).to_string())
    print(f"written to {out}/ (coverage_runs.csv, coverage.csv)")


if __name__ == "__main__":
    main()
