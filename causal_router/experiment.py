"""The Meta-Router paper's Monte Carlo experiment on any data set carrying both labels per query.

Each run draws a test set, reveals gold labels for ``n_gold`` of the remaining rows and
preference labels for the rest (:func:`causal_router.datasets.reveal_split`), fits every method
and scores it on the held-out gold gains. Where a query carries several rows (real data: one row
per model pair) the test set is whole queries (``split_by="query"``, the default there), so that
every method is judged on queries it has never seen, and the bias models cross-fit by query. Runs are seeded from one ``SeedSequence``, so results
do not depend on ``n_jobs`` or on the backend (joblib's processes, or a Ray cluster with
``backend="ray"``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from joblib import delayed

from . import evaluate
from ._parallel import run_parallel
from ._utils import to_jsonable
from ._validation import DataError
from .baselines import GoldOnly, KNNRouter, MeanShift, Pooled, PreferenceOnly, RandomRouter
from .bias import BiasEstimator
from .datasets import SPLIT_BY, RevealedSplit, reveal_split
from .io import atomic_write
from .router import MetaRouter

__all__ = ["METHODS", "DEFAULT_METHODS", "fit_methods", "run_experiment", "ExperimentResult"]


def _meta(learner: str) -> Callable:
    return lambda seed, scale: MetaRouter(BiasEstimator(learner), scale=scale, random_state=seed)


def _labels(cls) -> Callable:
    return lambda seed, scale: cls(scale=scale, random_state=seed)


#: Method name -> factory(seed, scale) of an unfitted router. "all_golden" is fitted on the oracle data.
METHODS: dict[str, Callable] = {
    "meta_r": _meta("r"),
    "meta_auto": _meta("auto"),
    "meta_dr": _meta("dr"),
    "meta_forest": _meta("forest"),
    "meta_linear": _meta("linear"),
    "pooled": _labels(Pooled),
    "gold_only": _labels(GoldOnly),
    "preference_only": _labels(PreferenceOnly),
    "mean_shift": _labels(MeanShift),
    "knn": _labels(KNNRouter),
    "all_golden": _labels(GoldOnly),
    "random": lambda seed, scale: RandomRouter(random_state=seed),
}
DEFAULT_METHODS = ("meta_r", "meta_auto", "meta_dr", "pooled", "gold_only", "preference_only",
                   "mean_shift", "knn", "all_golden", "random")


def fit_methods(split: RevealedSplit, methods: Sequence[str] = DEFAULT_METHODS, *, scale: str | None = "variance",
                n_jobs: int | None = None, random_state=None) -> dict:
    """Fit each method on one split; returns {method: (fitted router, predicted test gains)}.

    Parameters
    ----------
    split : RevealedSplit
        One split of :func:`~causal_router.datasets.reveal_split` ("all_golden" is fitted on its
        ``oracle`` data, every other method on its ``train`` data).
    methods : sequence of str, default ``DEFAULT_METHODS``
        Names in :data:`METHODS`.
    scale : {"variance", "amplitude", "wasserstein", None}, default "variance"
        How every router fits its gold-to-preference scale constant.
    n_jobs : int or None
        The threads of every router that takes them; None: each router's own default.
    random_state : int or None
        Seeds every router.

    Returns
    -------
    dict
        {method: (fitted router, ndarray of shape (n_test,) of its predicted gold-scale gains on
        the split's test features)}.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DataError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    out = {}
    for name in methods:
        router = METHODS[name](random_state, scale)
        if n_jobs is not None and "n_jobs" in router.get_params():
            router.set_params(n_jobs=n_jobs)
        router.fit(split.oracle if name == "all_golden" else split.train)
        out[name] = (router, router.predict_gain(split.test_X))
    return out


def _one_run(run: int, seed: int, frame, features, methods, split_args, scale, threads):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _score_run(run, seed, frame, features, methods, split_args, scale, threads)


def _score_run(run, seed, frame, features, methods, split_args, scale, threads):
    split = reveal_split(frame, features, random_state=seed, **split_args)
    fitted = fit_methods(split, methods, scale=scale, n_jobs=threads, random_state=seed)
    rows, curves = [], []
    for name, (router, pred) in fitted.items():
        metrics = evaluate.summarise(pred, split.test_gold)
        bias = getattr(router, "bias_", None)
        if bias is not None:
            metrics["ate"] = float(bias.ate()["estimate"])
            metrics["final_stage"] = bias.final_stage_
        rows.append({"run": run, "seed": seed, "method": name, "split_by": split.by, **metrics})
        share = evaluate.normalised_curve(pred, split.test_gold)
        try:
            eg = evaluate.efficiency_curve(pred, split.test_gold)
        except DataError:  # the test gold gains sum to zero: the paper's curve is undefined
            eg = share * np.nan
        curves.append(pd.DataFrame({"run": run, "method": name, "ratio": eg.index.to_numpy(),
                                    "efficiency_gain": eg.to_numpy(), "oracle_share": share.to_numpy()}))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


@dataclass
class ExperimentResult:
    """Per-run metrics (one row per run and method), per-run curves, and their summary.

    Parameters
    ----------
    runs : DataFrame
        One row per run and method: ``run``, ``seed``, ``method``, ``split_by`` and the metrics of
        :func:`causal_router.evaluate.summarise` (``ate`` and ``final_stage`` for the Meta-Routers).
    curves : DataFrame
        One row per run, method and ratio: ``efficiency_gain`` and ``oracle_share``.
    summary : DataFrame
        Mean and standard error over runs per method, and the share of the Pooled-to-All-Golden
        gap closed, indexed by method.
    """

    runs: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame

    def save(self, folder) -> Path:
        """Write runs.csv, curves.csv, summary.csv and summary.json (no NaN: missing numbers are
        null) to ``folder`` (created if missing), each file atomically
        (:func:`causal_router.io.atomic_write`); returns it as a Path. The figures:
        :func:`causal_router.report.save_experiment`.

        Parameters
        ----------
        folder : str or path-like
            The folder to write into (created if missing; existing files of those names are
            replaced).

        Returns
        -------
        Path
            ``folder``.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, table, index in (("runs.csv", self.runs, False), ("curves.csv", self.curves, False),
                                   ("summary.csv", self.summary, True)):
            with atomic_write(folder / name) as tmp:
                table.to_csv(tmp, index=index)
        with atomic_write(folder / "summary.json") as tmp:
            tmp.write_text(json.dumps(to_jsonable(self.summary.to_dict(orient="index")), indent=2, allow_nan=False))
        return folder


def summarise_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over runs per method, and the share of the Pooled-to-All-Golden
    gap closed (in mean oracle share and mean peak efficiency gain) where both are present."""
    metrics = ["oracle_share", "peak_efficiency_gain", "efficiency_auc", "apgr", "cpt50", "cpt80"]
    grouped = runs.groupby("method", sort=False)[metrics]
    summary = grouped.mean()
    se = grouped.std(ddof=1) / np.sqrt(grouped.count())
    summary = summary.join(se[["oracle_share", "peak_efficiency_gain"]].add_suffix("_se"))
    summary.insert(0, "n_runs", grouped.size())
    if {"pooled", "all_golden"} <= set(summary.index):
        for metric in ("oracle_share", "peak_efficiency_gain"):
            lo, hi = summary.loc["pooled", metric], summary.loc["all_golden", metric]
            # undefined where the oracle does not beat Pooled: there is no gap to close
            summary[f"gap_closed_{metric}"] = (summary[metric] - lo) / (hi - lo) if hi > lo else np.nan
    return summary


def run_experiment(
    frame: pd.DataFrame,
    features: Sequence[str] | None = None,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    n_runs: int = 50,
    n_gold: int = 100,
    n_test: int = 500,
    pair: str | None = None,
    split_by: str | None = None,
    query_id: str = "query_id",
    scale: str | None = "variance",
    n_jobs: int | None = 1,
    backend: str = "loky",
    random_state=0,
    progress: bool = True,
) -> ExperimentResult:
    """Repeat the reveal-split experiment ``n_runs`` times and aggregate.

    Parameters
    ----------
    frame : DataFrame
        The feature columns and ``gold_gain`` / ``pref_gain`` on every row.
    features : sequence of str, optional
        Feature column names (default: columns ``x<j>``).
    methods : sequence of str, default ``DEFAULT_METHODS``
        Names in :data:`METHODS`.
    n_runs : int, default 50
        The number of splits (at least 1).
    n_gold, n_test : int, default 100, 500
        Gold-labelled training rows, and test queries (``split_by="query"``) or test rows
        (``split_by="row"``) per run.
    pair : str, optional
        The column of model-pair labels, carried into the split's data.
    split_by : {None, "query", "row"}
        What the test set holds out (:func:`~causal_router.datasets.reveal_split`'s ``by``): whole
        queries, the default where the ``query_id`` column repeats an id; rows otherwise.
    query_id : str, default "query_id"
        The column of query ids (where present).
    scale : {"variance", "amplitude", "wasserstein", None}, default "variance"
        How every router fits its gold-to-preference scale constant.
    n_jobs, backend : int or None, str
        Joblib parallelism over runs (default 1 and "loky"); ``backend="ray"`` runs on the Ray
        cluster that ``ray.init`` connected to (extra ``[ray]``). Seeds are fixed per run, so
        results are identical across ``n_jobs`` and backends.
    random_state : int or None, default 0
        Seeds the ``SeedSequence`` from which every run's seed is drawn.
    progress : bool, default True
        Show a progress bar over runs.

    Returns
    -------
    ExperimentResult
        Per-run metrics, curves and their summary.
    """
    if n_runs < 1:
        raise DataError(f"n_runs must be at least 1, got {n_runs}")
    if split_by not in (None, *SPLIT_BY):
        raise DataError(f"split_by must be None, 'query' or 'row', got {split_by!r}")
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_state).spawn(n_runs)]
    # one thread per run when runs are parallel: LightGBM's OpenMP threads oversubscribe the
    # cores otherwise (measured: 4 runs took 42 s with n_jobs=2 against 6.6 s with n_jobs=1)
    threads = None if n_jobs in (None, 1) else 1
    split_args = dict(n_gold=n_gold, n_test=n_test, pair=pair, by=split_by, query_id=query_id)
    tasks = (delayed(_one_run)(i, seed, frame, features, tuple(methods), split_args, scale, threads)
             for i, seed in enumerate(seeds))
    results = run_parallel(tasks, n_jobs=n_jobs, backend=backend, progress=progress, desc="Monte Carlo runs",
                           unit="run")
    runs = pd.concat([r for r, _ in results], ignore_index=True)
    curves = pd.concat([c for _, c in results], ignore_index=True)
    return ExperimentResult(runs=runs, curves=curves, summary=summarise_runs(runs))
