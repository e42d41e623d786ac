"""The Monte Carlo experiment for K-model routers: many query-level splits, each router's
quality-versus-cost frontier on held-out queries, its AIQ, and their summary.

Each run draws a split with :func:`causal_router.datasets.reveal_multi_split` (test queries held
out, gold labels on the rows of ``n_gold_queries`` training queries, preference labels on the
rest), fits every method and scores the model it chooses for each test query at every cost
weight against the test quality (true utilities for the generator, held-out human quality for
real data). Runs are seeded from one ``SeedSequence``: results do not depend on ``n_jobs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from joblib import delayed

from . import evaluate
from ._parallel import run_parallel
from ._validation import DataError
from .datasets import reveal_multi_split
from .multi import BestSingle, GoldOnlyMulti, MultiRouter, PooledMulti

__all__ = ["MULTI_METHODS", "run_multi_experiment", "MultiExperimentResult", "summarise_multi_runs"]

#: Method name -> factory(seed) of an unfitted K-model router (methods whose name starts with
#: "all_golden" are fitted on the gold labels of every training row).
MULTI_METHODS: dict[str, Callable] = {
    "multi_router": lambda seed: MultiRouter(random_state=seed),
    "pooled": lambda seed: PooledMulti(random_state=seed),
    "gold_only": lambda seed: GoldOnlyMulti(random_state=seed),
    "best_single": lambda seed: BestSingle(),
    "all_golden": lambda seed: GoldOnlyMulti(random_state=seed),
}
#: Points of the cost grid on which each run's frontier hull is stored (for averaging).
N_GRID = 101


@dataclass
class MultiExperimentResult:
    """The K-model experiment's results. Method ``"oracle"`` routes by the test quality itself
    (the ceiling of any router).

    Parameters
    ----------
    runs : DataFrame
        One row per run and method: ``run``, ``seed``, ``method``, ``aiq``, ``quality_w0`` and
        ``cost_w0`` (the mean quality and cost of the chosen models at cost weight 0), and for
        :class:`~causal_router.multi.MultiRouter` ``bias_model`` and ``bias_share``.
    frontiers : DataFrame
        Each run's non-decreasing concave frontier on a common cost grid of ``N_GRID`` points
        (``run``, ``method``, ``cost``, ``quality``).
    summary : DataFrame
        :func:`summarise_multi_runs` of ``runs``.
    """

    runs: pd.DataFrame
    frontiers: pd.DataFrame
    summary: pd.DataFrame


def summarise_multi_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over runs of ``aiq`` and ``quality_w0`` per method, and the share
    of the Pooled-to-All-Golden gap in mean AIQ that each method closes (NaN where All-Golden
    does not beat Pooled: there is no gap to close).

    Parameters
    ----------
    runs : DataFrame
        ``MultiExperimentResult.runs``: columns ``method``, ``aiq``, ``quality_w0``, ``cost_w0``.

    Returns
    -------
    DataFrame
        Indexed by method: ``n_runs``, the means of ``aiq``, ``quality_w0`` and ``cost_w0``,
        ``aiq_se``, ``quality_w0_se`` and, where "pooled" and "all_golden" are both present,
        ``gap_closed``.
    """
    grouped = runs.groupby("method", sort=False)
    summary = grouped[["aiq", "quality_w0", "cost_w0"]].mean()
    se = grouped[["aiq", "quality_w0"]].std(ddof=1) / np.sqrt(grouped.size().to_numpy()[:, None])
    summary = summary.join(se.add_suffix("_se"))
    summary.insert(0, "n_runs", grouped.size())
    if {"pooled", "all_golden"} <= set(summary.index):
        lo, hi = summary.loc["pooled", "aiq"], summary.loc["all_golden", "aiq"]
        summary["gap_closed"] = (summary["aiq"] - lo) / (hi - lo) if hi > lo else np.nan
    return summary


def _one_run(run, seed, frame, features, costs, methods, split_args, threads):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        split = reveal_multi_split(frame, features, random_state=seed, **split_args)
        rows, curves = [], []
        predictions, extra = {}, {}
        for name, factory in methods.items():
            router = factory(seed)
            router.fit(split.oracle if name.startswith("all_golden") else split.train)
            predictions[name] = router.predict_utility(split.test_X)
            if hasattr(router, "bias_model_"):
                extra[name] = {"bias_model": router.bias_model_, "bias_share": router.bias_share_}
        predictions["oracle"] = split.test_quality
        for name, utility in predictions.items():
            table = evaluate.frontier(utility, split.test_quality, costs)
            lo, hi = table.attrs["cost_range"]
            grid = np.linspace(lo, hi, N_GRID)
            rows.append({"run": run, "seed": seed, "method": name, "aiq": evaluate.aiq(table),
                         "quality_w0": float(table["quality"].iloc[0]), "cost_w0": float(table["cost"].iloc[0]),
                         **extra.get(name, {})})
            curves.append(pd.DataFrame({"run": run, "method": name, "cost": grid,
                                        "quality": evaluate.frontier_hull(table, grid)["quality"].to_numpy()}))
        return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def run_multi_experiment(
    frame: pd.DataFrame,
    features: Sequence[str] | None = None,
    *,
    costs,
    methods: Sequence[str] = tuple(MULTI_METHODS),
    n_runs: int = 20,
    n_gold_queries: int = 100,
    n_test_queries: int = 500,
    gold_pairs=None,
    model_a: str = "model_a",
    model_b: str = "model_b",
    query_id: str = "query_id",
    n_jobs: int | None = 1,
    backend: str = "loky",
    random_state=0,
    progress: bool = True,
) -> MultiExperimentResult:
    """Repeat the K-model split ``n_runs`` times and aggregate.

    Parameters
    ----------
    frame : DataFrame
        One row per (query, pair) with both labels (``gold_gain``, ``pref_gain``), as
        :func:`~causal_router.datasets.make_multi_model` returns (real data: the loader's frame
        with feature columns added and ``model_a="model_p", model_b="model_a"``).
    features : sequence of str, optional
        Feature columns (default: the columns ``x<j>``).
    costs : mapping or array-like
        The models' costs ({model: cost}, as in :func:`causal_router.evaluate.frontier`).
    methods : sequence of str or mapping, default every name of ``MULTI_METHODS``
        Names in :data:`MULTI_METHODS`, or a mapping {name: factory(seed) -> unfitted router}
        to compare routers of one's own (names starting with "all_golden" are fitted on the
        oracle data).
    n_runs : int, default 20
        The number of splits (at least 1).
    n_gold_queries, n_test_queries, gold_pairs : int, int, iterable of (str, str) or None
        The split (:func:`~causal_router.datasets.reveal_multi_split`; defaults 100, 500 and
        None: gold labels on every pair).
    model_a, model_b : str, default "model_a", "model_b"
        The columns of the two compared models.
    query_id : str, default "query_id"
        The column of query ids.
    n_jobs, backend : int or None, str
        Joblib parallelism over runs (default 1 and "loky"; ``backend="ray"``: a Ray cluster).
    random_state : int or None, default 0
        Seeds the ``SeedSequence`` of the runs' seeds.
    progress : bool, default True
        Show a progress bar over runs.

    Returns
    -------
    MultiExperimentResult
        Per-run AIQs, frontiers and their summary.
    """
    if not isinstance(methods, dict):
        unknown = [m for m in methods if m not in MULTI_METHODS]
        if unknown:
            raise DataError(f"unknown method(s) {unknown}; choose from {sorted(MULTI_METHODS)}")
        methods = {m: MULTI_METHODS[m] for m in methods}
    if n_runs < 1:
        raise DataError(f"n_runs must be at least 1, got {n_runs}")
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_state).spawn(n_runs)]
    split_args = dict(n_gold_queries=n_gold_queries, n_test_queries=n_test_queries, gold_pairs=gold_pairs,
                      model_a=model_a, model_b=model_b, query_id=query_id)
    threads = None if n_jobs in (None, 1) else 1
    tasks = (delayed(_one_run)(i, seed, frame, features, costs, dict(methods), split_args, threads)
             for i, seed in enumerate(seeds))
    results = run_parallel(tasks, n_jobs=n_jobs, backend=backend, progress=progress, desc="K-model runs", unit="run")
    runs = pd.concat([r for r, _ in results], ignore_index=True)
    frontiers = pd.concat([c for _, c in results], ignore_index=True)
    return MultiExperimentResult(runs=runs, frontiers=frontiers, summary=summarise_multi_runs(runs))
