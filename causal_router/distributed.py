"""The meta-router's fit on a Dask cluster, out of core: Parquet partitions in, the same router out.

Extra ``[dask]`` (``dask[dataframe]``, ``distributed``, ``pyarrow``). :func:`fit_distributed`
fits the router :class:`~causal_router.MetaRouter` fits, on a Parquet dataset (a folder of files)
that no process holds whole:

1. **Read and check**, partition by partition (``dask.dataframe.read_parquet``): the checks and
   error messages of the single-machine fit (missing columns, non-numeric columns, NaN / infinite
   values naming the column, unknown source labels, no gold rows, one source only, a feature
   equal to the label), from per-partition counts combined on the client, so that the message
   names the same column and the same counts as the single-machine fit would.
2. **Scale constant** from partition-wise sufficient statistics of the gains per source:
   ``"variance"`` (counts, means and sums of squared deviations, combined exactly: Chan, Golub
   and LeVeque's pairwise update) and ``"amplitude"`` (minima and maxima) are exact (to the last
   bits of rounding); ``"wasserstein"`` needs quantiles of every preference gain and is computed
   from the bias sample of step 3 (every gold row and the uniform sample of preference rows), an
   estimate from at least 50,000 preference rows. Below the cap the sample is every row and the
   constant is computed from it as the single-machine fit does, bit for bit, whatever the method.
3. **Bias model**, fitted in one process (the client) on every gold row plus a uniform sample of
   max(PREFERENCE_ROWS_MIN, PREFERENCE_ROWS_PER_GOLD * n_gold) preference rows without
   replacement, the sample :class:`~causal_router.BiasEstimator` draws itself above that cap
   (``bias.py``, "Cost"). It is drawn partition by partition: the cap is split over the partitions
   by a seeded multivariate hypergeometric draw of their preference counts, and each partition
   draws its share with its own seeded generator, which is exactly a uniform draw without
   replacement from the union. Below the cap every row is kept, in file order, and the bias model
   is the single-machine one.
4. **Correction**: under ``preference_weight="auto"`` (the default) the judge is weighed on the
   client as the single-machine fit weighs it (:func:`~causal_router.router.weigh_judge`: every
   gold row is in the bias sample) and, where its weight is below 1, the gold rows' own gain
   model is fitted there; the fitted bias model, the weight and that model (small) are
   scattered to every worker and each partition's preference labels are corrected there
   (:func:`~causal_router.router.correct_labels`, the single-machine correction, row by row).
5. **Gain model**: LightGBM's own data-parallel training across the Dask workers (the machinery
   of ``lightgbm.dask``, started with fixed ranks: "Determinism" below) with the parameters of
   the router's gain model (:func:`~causal_router.models.default_regressor` by default). Each worker streams its
   partitions into one float32 block (features cast to float32 do not change the model: the same
   splits, thresholds within 6e-8, identical predictions on 20,000 test rows, measured at
   300,000 x 50) and trains on it.

The result is a fitted :class:`~causal_router.MetaRouter` (``bias_``, ``scale_``, ``gain_model_``
a ``lightgbm.Booster``, as in a loaded router file) that routes with the compiled kernel and
saves the same router file.

Memory. Reading, checking and sampling hold one partition per task (measured: a worker's peak
1.14 GiB with 333,000-row partitions, 1.26 GiB with 500,000-row ones, at 1M and at 10M rows,
d = 50). The training step does not: LightGBM's data-parallel learner keeps each worker's share
of the rows in memory, the float32 block (4 d bytes per row), the labels and weights, its binned
copy (83 bytes per row at d = 50, 63 bins) and its training arrays, so a worker's memory grows
with its rows (measured: about 410-450 bytes per row at d = 50), not with the partition size:
keep the rows per worker fixed (add workers as rows grow) to keep it flat (measured: 5M rows on
1 worker and 10M on 2 peaked at 2.57 and 2.59 GiB). ``benchmarks/bench_distributed.py``; the
guide page "Fit on a cluster, out of core".

Determinism. Given ``random_state`` the result does not change between runs on the same
cluster: partitions go to the workers (sorted by address) in contiguous runs, each worker
streams its run into one block, and LightGBM's machine ranks follow the sorted workers.
``lightgbm.dask.DaskLGBMRegressor`` does not give that: it ranks the machines in the iteration
order of a set of task keys and concatenates each worker's parts in that order, and LightGBM's
data-parallel learner bins each feature on one rank's rows, so refits on the same data and seed
differed (measured: three fits of 20,000 x 20 on a 2-worker cluster, predictions up to 0.6 apart
between fits). The fit therefore starts LightGBM's data-parallel training on the Dask workers
itself, with the network parameters lightgbm.dask sets (``tree_learner="data"``, ``machines``,
``local_listen_port``, ``num_machines``) and the ranks in worker order: about twenty lines in
place of lightgbm.dask's glue, the same LightGBM network code underneath.

Why Dask: ``lightgbm.dask`` ships with LightGBM (4.7 here) and is maintained with it, whereas
lightgbm-ray was last released in 2023; ``dask.dataframe.read_parquet`` reads the input in
partitions, and ``distributed.LocalCluster`` gives the same cluster on one machine.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from sklearn.base import clone

from ._utils import as_seed, resolve_seed
from ._validation import MAX_ABS_VALUE, DataError, check_columns, check_unique_names
from .bias import PREFERENCE_ROWS_MIN, PREFERENCE_ROWS_PER_GOLD, BiasEstimator
from .data import SCALE_METHODS, EvalData, scale_constant
from .models import default_regressor
from .router import MetaRouter, check_preference_weight, correct_labels, weigh_judge

__all__ = ["fit_distributed", "local_cluster", "read_partitions", "DASK_EXTRA_MESSAGE", "EXACT_SCALE_METHODS"]

#: Scale methods computed exactly from partition statistics ("wasserstein" is estimated from the bias sample).
EXACT_SCALE_METHODS = ("variance", "amplitude", None)
DASK_EXTRA_MESSAGE = ("the distributed fit needs the [dask] extra: pip install 'causal_router[dask]' "
                      "(dask[dataframe], distributed, pyarrow)")
logger = logging.getLogger("causal_router")


def _require_dask():
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
        import lightgbm.dask  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{DASK_EXTRA_MESSAGE} ({exc})") from None


@dataclass(frozen=True)
class _Columns:
    """The columns of the input and how to read them (what ``EvalData.from_frame`` is given)."""

    features: tuple
    gain: str
    source: str
    gold_value: object
    preference_value: object
    query_id: str | None

    @property
    def read(self) -> list:
        return [*self.features, self.gain, self.source, *([self.query_id] if self.query_id else [])]


# ---------------------------------------------------------------------------- the cluster
def local_cluster(n_workers: int = 2, *, threads_per_worker: int = 1, memory_limit: str | int | float = "auto",
                  processes: bool = True):
    """The default cluster of :func:`fit_distributed`: ``distributed.LocalCluster`` on this machine.

    ``n_workers`` workers of ``threads_per_worker`` threads, listening on 127.0.0.1, with
    ``memory_limit`` each ("auto": the machine's memory / n_workers, or a size such as "4GiB"; a
    worker above 95% of it is restarted by its nanny, which fails the fit rather than the
    machine), no spilling to disk (the training needs each worker's block in memory) and no
    dashboard. ``processes=False`` runs the workers as threads of this process
    (quick to start: tests). Close it with ``cluster.close()`` or use it as a context manager.

    Parameters
    ----------
    n_workers : int, default=2
        Number of workers (>= 1).
    threads_per_worker : int, default=1
        Threads of each worker.
    memory_limit : str, int or float, default="auto"
        Memory of each worker: ``"auto"`` (the machine's memory / n_workers), a size such as
        ``"4GiB"``, or bytes (as ``distributed.LocalCluster`` takes it).
    processes : bool, default=True
        Workers in processes of their own; False: threads of this process.

    Returns
    -------
    distributed.LocalCluster
        The running cluster (its address is what :func:`fit_distributed` connects to).

    Raises
    ------
    DataError
        If ``n_workers`` is not an integer >= 1.
    ImportError
        Without the ``[dask]`` extra.
    """
    _require_dask()
    import dask
    from distributed import LocalCluster

    if not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise DataError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    # no spilling to disk: the gain model trains on each worker's block in memory, so spilling
    # it would add disk traffic and free nothing; pausing and the nanny's restart stay on
    with dask.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False}):
        return LocalCluster(n_workers=int(n_workers), threads_per_worker=threads_per_worker, processes=processes,
                            memory_limit=memory_limit, host="127.0.0.1", protocol="tcp://", dashboard_address=":0",
                            scheduler_kwargs={"dashboard": False}, silence_logs=logging.WARNING)


# ---------------------------------------------------------------------------- reading
def read_partitions(path: str | os.PathLike):
    """The Parquet dataset at ``path`` as a lazy ``dask.dataframe.DataFrame``.

    Parameters
    ----------
    path : str or PathLike
        A folder of ``.parquet`` (or ``.pq``) files, or one Parquet file.

    Returns
    -------
    dask.dataframe.DataFrame
        The dataset, not read yet: one partition per file or row group.

    Raises
    ------
    DataError
        Naming a missing path or a folder without Parquet files.
    ImportError
        Without the ``[dask]`` extra.
    """
    _require_dask()
    import dask.dataframe as dd

    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    if path.is_dir() and not any(path.glob("*.parquet")) and not any(path.glob("*.pq")):
        raise DataError(f"{path} holds no .parquet files (the distributed fit reads a Parquet dataset: a folder of "
                        "Parquet files, or one Parquet file)")
    return dd.read_parquet(str(path))


def _schema(ddf) -> pd.DataFrame:
    """An empty frame with the columns and dtypes of the dask DataFrame ``ddf``."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in ddf.dtypes.items()})


def _check_schema(ddf, cols: _Columns) -> None:
    """The single-machine fit's checks that need only the columns and dtypes (``EvalData.from_frame``)."""
    if not cols.features:
        raise DataError("features is empty: name at least one feature column")
    check_unique_names(list(cols.features), "features")
    schema = _schema(ddf)
    check_columns(schema, cols.read, "data frame")
    labels = [c for c in (cols.gain, cols.source) if c in cols.features]
    if labels:
        raise DataError(f"column(s) {labels} are the label, the source or the gold probability and cannot also be "
                        "features; drop them from the features")
    if not pd.api.types.is_numeric_dtype(schema[cols.gain]):
        raise DataError(f"column {cols.gain!r} must be numeric, got dtype {schema[cols.gain].dtype}")
    bad = [c for c in cols.features if not pd.api.types.is_numeric_dtype(schema[c])
           and not pd.api.types.is_bool_dtype(schema[c])]
    if bad:
        raise DataError(f"X: column(s) {bad} are not numeric; encode them as numbers first")
    complex_cols = [c for c in cols.features if pd.api.types.is_complex_dtype(schema[c])]
    if complex_cols:
        raise DataError(f"Complex data not supported: X column(s) {complex_cols} have complex values")


def _is_gold(frame: pd.DataFrame, cols: _Columns) -> tuple[np.ndarray, list]:
    """(gold mask (n,), sorted unknown labels, at most 5) of a partition's source column."""
    src = frame[cols.source]
    if pd.api.types.is_bool_dtype(src):
        return src.to_numpy(dtype=bool), []
    values = src.astype("object")
    known = values.isin([cols.gold_value, cols.preference_value])
    unknown = sorted(map(str, pd.unique(values[~known])))[:5] if not known.all() else []
    return (values == cols.gold_value).to_numpy(dtype=bool), unknown


def _value_counts(values: np.ndarray) -> np.ndarray:
    """Per column (n, d) -> (3, d): NaN, infinite and too-large (> MAX_ABS_VALUE) counts."""
    values = values.reshape(len(values), -1)
    nan, inf = np.isnan(values), np.isinf(values)
    big = np.abs(np.where(nan | inf, 0.0, values)) > MAX_ABS_VALUE
    return np.vstack([nan.sum(axis=0), inf.sum(axis=0), big.sum(axis=0)])


def _moments(x: np.ndarray) -> np.ndarray:
    """(count, mean, sum of squared deviations, min, max) of x; NaN where x is empty."""
    if len(x) == 0:
        return np.array([0.0, 0.0, 0.0, np.inf, -np.inf])
    mean = float(np.mean(x))
    return np.array([len(x), mean, float(np.sum((x - mean) ** 2)), float(np.min(x)), float(np.max(x))])


def _combine_moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Moments of the union of two disjoint sets (Chan, Golub and LeVeque's pairwise update)."""
    n = a[0] + b[0]
    if n == 0:
        return a.copy()
    delta = b[1] - a[1]
    mean = a[1] + delta * b[0] / n
    m2 = a[2] + b[2] + delta ** 2 * a[0] * b[0] / n
    return np.array([n, mean, m2, min(a[3], b[3]), max(a[4], b[4])])


def _summarise(frame: pd.DataFrame, cols: _Columns) -> dict:
    """Pass 1, one partition: counts for the checks, the gains' moments per source, label copies."""
    is_gold, unknown = _is_gold(frame, cols)
    gain = frame[cols.gain].to_numpy(dtype=float)
    X = frame[list(cols.features)].to_numpy(dtype=float)
    out = {"n": len(frame), "n_gold": int(is_gold.sum()), "unknown": unknown,
           "gain_values": _value_counts(gain), "X_values": _value_counts(X),
           "query_id_missing": int(frame[cols.query_id].isna().sum()) if cols.query_id else 0}
    finite = np.isfinite(gain)
    out["gold"] = _moments(gain[is_gold & finite])
    out["preference"] = _moments(gain[~is_gold & finite])
    out["copy_gold"] = np.all(X[is_gold] == gain[is_gold, None], axis=0)
    out["copy_preference"] = np.all(X[~is_gold] == gain[~is_gold, None], axis=0)
    return out


def _values_error(name: str, counts: np.ndarray, columns: Sequence[str] | None) -> DataError | None:
    """The single-machine message (``_validation``) for summed per-column value counts (3, d)."""
    def label(col: int) -> str:
        return f" (first in feature {columns[col]!r})" if columns is not None else ""

    n_nan, n_inf = int(counts[0].sum()), int(counts[1].sum())
    if n_nan or n_inf:
        parts = [f"{n_nan} NaN"] * bool(n_nan) + [f"{n_inf} infinite"] * bool(n_inf)
        col = int(np.flatnonzero(counts[0] + counts[1])[0])
        return DataError(f"{name} contains {' and '.join(parts)} value{'s' if n_nan + n_inf > 1 else ''}{label(col)}; "
                         "remove or impute them first")
    if counts[2].sum():
        col = int(np.flatnonzero(counts[2])[0])
        return DataError(f"{name} has {int(counts[2].sum())} value(s) of magnitude above {MAX_ABS_VALUE:.0e}"
                         f"{label(col)}, whose squares overflow; rescale them first")
    return None


def _check_summaries(parts: list[dict], cols: _Columns) -> dict:
    """Raise the single-machine fit's first error for the combined partition summaries; else the
    totals: n, n_gold, n_preference, the gains' moments per source, rows per partition."""
    n = sum(p["n"] for p in parts)
    if n == 0:
        raise DataError("the data frame has no rows")
    unknown = sorted({u for p in parts for u in p["unknown"]})[:5]
    if unknown:
        raise DataError(f"column {cols.source!r} has unknown source labels {unknown}; expected "
                        f"{cols.gold_value!r} (gold) or {cols.preference_value!r} (preference)")
    for name, key, columns in ((f"column {cols.gain!r}", "gain_values", None), ("X", "X_values", cols.features)):
        error = _values_error(name, sum(p[key] for p in parts), columns)
        if error is not None:
            raise error
    missing = sum(p["query_id_missing"] for p in parts)
    if missing:
        raise DataError(f"query_id has {missing} missing values")
    n_gold = sum(p["n_gold"] for p in parts)
    for name, count in (("gold", n_gold), ("preference", n - n_gold)):
        if count < 2:
            continue
        same = np.logical_and.reduce([p[f"copy_{name}"] for p in parts])
        if same.any():
            raise DataError(f"feature {cols.features[int(np.argmax(same))]!r} equals the label {cols.gain!r} on every "
                            f"{name} row: a label cannot be a feature; drop it from the features")
    totals = {"n": n, "n_gold": n_gold, "n_preference": n - n_gold, "rows": [p["n"] for p in parts],
              "preference_rows": [p["n"] - p["n_gold"] for p in parts]}
    for name in ("gold", "preference"):
        moments = parts[0][name]
        for p in parts[1:]:
            moments = _combine_moments(moments, p[name])
        totals[name] = moments
    return totals


def _scale_from_moments(gold: np.ndarray, pref: np.ndarray, method: str | None) -> float:
    """:func:`causal_router.data.scale_constant` ("variance" or "amplitude") from the moments
    (count, mean, sum of squared deviations, min, max) of every gold and preference gain."""
    if method is None:
        return 1.0
    for name, m in (("gold", gold), ("preference", pref)):
        if m[0] < 2:
            raise DataError(f"too few {name} rows to compute the {method!r} scale constant: got {int(m[0])}, "
                            "need at least 2 (or pass scale=None)")
    sd_g, sd_p = np.sqrt(gold[2] / gold[0]), np.sqrt(pref[2] / pref[0])
    num, den = (sd_p, sd_g) if method == "variance" else (pref[4] - pref[3], gold[4] - gold[3])
    if not (np.isfinite(num) and np.isfinite(den)) or den <= 0 or num <= 0:
        raise DataError(
            f"cannot compute the {method!r} scale constant: the gold gains "
            f"(sd={sd_g:.3g}) or preference gains (sd={sd_p:.3g}) are constant, or the "
            "two are anti-aligned; pass scale=None to skip scale normalisation"
        )
    return float(num / den)


# ---------------------------------------------------------------------------- the bias sample
def _sample_sizes(pref_rows: list[int], n_gold: int, seed) -> tuple[list[int], list]:
    """(preference rows to keep per partition, one seed sequence per partition): every row below
    the cap, else a multivariate hypergeometric split of the cap (a uniform draw without
    replacement of cap rows from the union, counted per partition)."""
    root = np.random.SeedSequence(seed)
    seeds = root.spawn(len(pref_rows) + 1)
    cap = max(PREFERENCE_ROWS_MIN, PREFERENCE_ROWS_PER_GOLD * n_gold)
    if sum(pref_rows) <= cap:
        return list(pref_rows), seeds[1:]
    keep = np.random.default_rng(seeds[0]).multivariate_hypergeometric(np.asarray(pref_rows, dtype=np.int64), cap)
    return [int(k) for k in keep], seeds[1:]


def _bias_rows(frame: pd.DataFrame, cols: _Columns, keep: int, seed) -> pd.DataFrame:
    """Pass 2, one partition: its gold rows and ``keep`` of its preference rows drawn uniformly
    without replacement (``seed``), in file order, as features (float64), gain, is_gold, row."""
    is_gold, _ = _is_gold(frame, cols)
    pref = np.flatnonzero(~is_gold)
    chosen = pref if keep >= len(pref) else np.random.default_rng(seed).choice(pref, size=keep, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(is_gold), chosen]))
    out = pd.DataFrame(frame[list(cols.features)].to_numpy(dtype=float)[rows], columns=list(cols.features))
    out["__gain"] = frame[cols.gain].to_numpy(dtype=float)[rows]
    out["__is_gold"] = is_gold[rows]
    out["__row"] = rows
    if cols.query_id:  # the bias model cross-fits by query where queries repeat
        out["__query"] = frame[cols.query_id].to_numpy()[rows]
    return out


# ---------------------------------------------------------------------------- the training blocks
def _load_block(ddf, partitions: list[int], n_rows: int, cols: _Columns, correction: tuple, weight: float):
    """On one worker: stream its partitions (one at a time, read here) into one float32 block of
    features with the corrected labels (``correction``: the fitted bias model, the judge's weight
    and the gold rows' model, :func:`~causal_router.router.correct_labels`) and the weights;
    returns (X DataFrame, labels, weights)."""
    bias, judge_weight, gold_model = correction
    import dask

    d = len(cols.features)
    X = np.empty((n_rows, d), dtype=np.float32, order="F")  # the (d, n) block pandas keeps: no copy
    labels, weights = np.empty(n_rows), np.empty(n_rows)
    start = 0
    for i in partitions:
        (frame,) = dask.compute(ddf.partitions[i], scheduler="sync")
        is_gold, _ = _is_gold(frame, cols)
        features = frame[list(cols.features)].to_numpy(dtype=float)
        stop = start + len(frame)
        labels[start:stop] = correct_labels(bias, features, frame[cols.gain].to_numpy(dtype=float), is_gold,
                                            judge_weight=judge_weight, gold_model=gold_model)
        weights[start:stop] = np.where(is_gold, 1.0, weight)
        X[start:stop] = features
        start = stop
        del frame, features
    if start != n_rows:
        raise DataError(f"the input changed while it was read: {start} rows read where {n_rows} were counted")
    return (pd.DataFrame(X, columns=[str(c) for c in cols.features], copy=False),
            pd.Series(labels, name="label"), pd.Series(weights, name="weight"))


def _assign_partitions(rows: list[int], n_workers: int) -> list[list[int]]:
    """Contiguous runs of partitions, one per worker in order, each ending at the partition
    boundary nearest to an equal share of the rows (partition order kept; a run may be empty
    when there are fewer partitions than workers)."""
    ends = np.cumsum(rows)
    cuts = [0]
    for k in range(1, n_workers):
        target = ends[-1] * k / n_workers
        cut = int(np.argmin(np.abs(ends - target))) + 1  # the run ends after this partition
        cuts.append(min(max(cut, cuts[-1]), len(rows)))
    cuts.append(len(rows))
    return [list(range(a, b)) for a, b in zip(cuts[:-1], cuts[1:])]


#: LightGBM's network parameters at their single-machine values, as the model text records them
#: (``Booster.reset_parameter`` of these crashed the interpreter in LightGBM 4.7: the text is edited).
_SINGLE_MACHINE = {"tree_learner": "serial", "pre_partition": "0", "num_machines": "1", "local_listen_port": "12400",
                   "machines": ""}


def _single_machine_text(text: str) -> str:
    """LightGBM model text with the network parameters of its ``parameters:`` section (written
    for the record; loading ignores them) set to single-machine values, so that the router file
    carries no host or port and is the same from one fit to the next."""
    head, sep, params = text.partition("\nparameters:\n")
    lines = []
    for line in params.split("\n"):
        name = line[1:].split(":", 1)[0] if line.startswith("[") else None
        lines.append(f"[{name}: {_SINGLE_MACHINE[name]}]" if name in _SINGLE_MACHINE else line)
    return head + sep + "\n".join(lines)


def _train_block(block, params: dict, machines: str, port: int, rank: int, threads: int, weighted: bool):
    """On one worker: LightGBM's data-parallel training on the worker's block (the
    ``LGBMRegressor`` of ``params`` with the network parameters lightgbm.dask sets), as the machine
    of rank ``rank`` in ``machines``. Rank 0 returns the model text with its network parameters
    reset to single-machine values; the others return None (every machine holds the same trees)."""
    from lightgbm import LGBMRegressor

    X, labels, weights = block
    model = LGBMRegressor(**params, n_jobs=threads, tree_learner="data", machines=machines, local_listen_port=port,
                          num_machines=len(machines.split(",")), pre_partition=True)
    try:
        model.fit(X, labels, sample_weight=weights if weighted else None)
    finally:
        if getattr(model, "fitted_", False):
            model.booster_.free_network()
    return _single_machine_text(model.booster_.model_to_string()) if rank == 0 else None


def _train_gain_model(client, blocks: list, workers: list[str], params: dict, *, weighted: bool):
    """The gain model, trained by LightGBM's data-parallel learner across ``workers`` (each on
    its block, ranks in the given order), as a ``lightgbm.Booster``."""
    from lightgbm import Booster

    ports = client.run(_free_port, workers=workers)
    threads = client.ncores(workers)
    hosts = [urlparse(w).hostname for w in workers]
    machines = ",".join(f"{h}:{ports[w]}" for h, w in zip(hosts, workers))
    futures = [client.submit(_train_block, b, params, machines, ports[w], rank, threads[w], weighted, workers=[w],
                             allow_other_workers=False, pure=False)
               for rank, (b, w) in enumerate(zip(blocks, workers))]
    text = client.gather(futures)[0]
    return Booster(model_str=text)


def _free_port() -> int:
    """A TCP port free on this machine now (for LightGBM's ``machines`` list)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _gain_model_params(router: MetaRouter, seed: int) -> dict:
    """The LightGBM parameters of the router's gain model (the distributed fit trains LightGBM only)."""
    from lightgbm import LGBMRegressor

    model = router.outcome_model
    if model is None:
        model = default_regressor(seed)
    elif not isinstance(model, LGBMRegressor):
        raise DataError("the distributed fit trains its gain model with LightGBM's data-parallel learner: "
                        f"outcome_model must be None or an LGBMRegressor, got {type(model).__name__}")
    params = model.get_params()
    params.pop("n_jobs", None)  # Dask sets LightGBM's threads to each worker's
    return params


# ---------------------------------------------------------------------------- the router
def _assemble_router(template: MetaRouter, bias: BiasEstimator, judge: pd.Series | None, gain_model,
                     features: Sequence[str]) -> MetaRouter:
    """The fitted router from its fitted pieces: the attributes ``MetaRouter.fit`` sets (the
    router contract's fit flow, ``BaseRouter._fit``), without ``corrected_gain_`` (one label per
    row of the whole dataset). The one place that knows the router's fitted attributes."""
    router = clone(template)
    bias.set_params(scale=template.scale)  # the method, as a single-machine fit's bias_ holds it
    router.__dict__.update({"bias_": bias, "scale_": bias.scale_, "gain_model_": gain_model, "judge_": judge,
                            "judge_weight_": 1.0 if judge is None else float(judge["weight"]),
                            "n_features_in_": len(features),  # Parquet columns are named
                            "feature_names_in_": np.asarray([str(f) for f in features], dtype=object)})
    return router


def fit_distributed(data, *, features: Sequence[str], gain: str = "gain", source: str = "source",
                    gold_value="gold", preference_value="preference", query_id: str | None = None,
                    router: MetaRouter | None = None, address: str | None = None, client=None,
                    n_workers: int = 2, memory_limit: str | int | float = "auto",
                    progress: bool = True) -> MetaRouter:
    """Fit a meta-router on a Parquet dataset with a Dask cluster, never holding the data in one process.

    Parameters
    ----------
    data : str, path or dask.dataframe.DataFrame
        A Parquet dataset (a folder of ``.parquet`` files, or one file), or a lazy dask DataFrame
        computable from storage (e.g. ``dask.dataframe.read_parquet(..., filters=...)``; not one
        persisted on a cluster: each worker reads its partitions itself).
    features : sequence of str
        The feature columns (numeric), as :meth:`causal_router.EvalData.from_frame` takes them.
    gain : str, default="gain"
        The column of the observed gain (gold or preference scale by row).
    source : str, default="source"
        The column saying which evaluation produced each row (a boolean column is taken as
        is: True = gold).
    gold_value : object, default="gold"
        The value of ``source`` on gold rows.
    preference_value : object, default="preference"
        The value of ``source`` on preference rows.
    query_id : str or None, default=None
        The column of the query ids (checked as by :meth:`~causal_router.EvalData.from_frame`;
        where a query repeats, the bias model cross-fits by query and its average is clustered
        by query, as in a single-machine fit). None: one query per row.
    router : MetaRouter, optional
        The unfitted router whose settings to fit (default ``MetaRouter()``): its bias model,
        preference weight, scale method, random state, and a gain model that is None (LightGBM
        defaults) or an ``LGBMRegressor`` (its parameters). Not modified; no text featurizer.
    address : str, optional
        Scheduler address of a running Dask cluster ("tcp://host:8786"). Default: a local
        cluster of ``n_workers`` workers (:func:`local_cluster`, one thread each,
        ``memory_limit`` each), closed after the fit.
    client : distributed.Client, optional
        A connected client to use instead of ``address``.
    n_workers : int, default=2
        Workers of the local cluster started when neither ``address`` nor ``client`` is given.
    memory_limit : str, int or float, default="auto"
        Memory of each worker of that local cluster (:func:`local_cluster`).
    progress : bool, default=True
        Progress bars of the passes over the partitions (tqdm).

    Returns
    -------
    MetaRouter
        Fitted: ``bias_`` (fitted in the client process on every gold row and the capped uniform
        sample of preference rows; ``sample_index_`` holds their row numbers in the dataset), ``scale_``,
        ``gain_model_`` (a ``lightgbm.Booster``), ``feature_names_in_``; and
        ``distributed_summary_``, a dict of rows, partitions, workers and seconds per step. No
        ``corrected_gain_``. It routes, saves and loads as a single-machine fit.

    Raises
    ------
    DataError
        For bad input, with the single-machine fit's message (module docstring).
    ImportError
        Without the ``[dask]`` extra.
    """
    _require_dask()
    template = router if router is not None else MetaRouter()
    if not isinstance(template, MetaRouter):
        raise DataError(f"router must be a MetaRouter, got {type(template).__name__}")
    if template.featurizer is not None:
        raise DataError("the distributed fit takes numeric feature columns: featurize the text first "
                        "(router.featurizer must be None)")
    if template.scale not in SCALE_METHODS:
        raise DataError(f"scale must be one of {SCALE_METHODS}, got {template.scale!r}")
    auto = check_preference_weight(template.preference_weight)
    weight = 1.0 if auto else float(template.preference_weight)
    seed = resolve_seed(template.random_state)  # one int per fit, as MetaRouter.fit draws it
    bias = clone(template.bias) if template.bias is not None else BiasEstimator()
    if bias.random_state is None:
        bias.set_params(random_state=seed)
    if bias.n_jobs is None:
        bias.set_params(n_jobs=template.n_jobs)
    bias.check_params()
    params = _gain_model_params(template, seed)
    if address is not None and client is not None:
        raise DataError("pass either address or client, not both")
    features = [features] if isinstance(features, str) else list(features)
    cols = _Columns(tuple(features), gain, source, gold_value, preference_value, query_id)
    ddf = read_partitions(data) if isinstance(data, (str, os.PathLike)) else data
    if not hasattr(ddf, "npartitions"):
        raise DataError(f"data must be a path to a Parquet dataset or a dask DataFrame, got {type(data).__name__}")
    _check_schema(ddf, cols)
    ddf = ddf[cols.read]

    from distributed import Client

    cluster = None
    if client is None:
        if address is None:
            cluster = local_cluster(n_workers, memory_limit=memory_limit)
            address = cluster
        client = Client(address)
        own_client = True
    else:
        own_client = False
    try:
        return _fit(ddf, cols, template, bias, params, weight, auto, seed, client, progress)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _wait(futures, desc: str, progress: bool, unit: str = "partition") -> None:
    """Wait for ``futures`` (their results stay where they were computed), with a progress bar."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, unit=unit, disable=not progress):
        pass


def _gather(client, futures, desc: str, progress: bool) -> list:
    """Results of ``futures`` in their order (small ones: they come to the client), with a progress bar."""
    _wait(futures, desc, progress)
    return client.gather(futures)


def _fit(ddf, cols: _Columns, template: MetaRouter, bias: BiasEstimator, params: dict, weight: float, auto: bool,
         router_seed: int, client, progress: bool) -> MetaRouter:
    import dask

    seconds, t0 = {}, time.perf_counter()
    parts = ddf.to_delayed()
    summarise = dask.delayed(_summarise, pure=True)
    totals = _check_summaries(_gather(client, client.compute([summarise(p, cols) for p in parts]),
                                      "checking partitions", progress), cols)
    for name, count in (("gold", totals["n_gold"]), ("preference", totals["n_preference"])):
        if count == 0:
            raise DataError(f"MetaRouter needs {name} rows: " + (
                "the data have no row with source 'gold'" if name == "gold" else
                "every row is gold (source has one class only); use baselines.GoldOnly for gold-only data"))
    for name, count in (("gold", totals["n_gold"]), ("preference", totals["n_preference"])):
        if count < 2 * bias.cv:  # BiasEstimator's own check, before the scale constant as there
            raise DataError(f"too few {name} rows for cross-fitting: cv={bias.cv} folds need at least "
                            f"{2 * bias.cv} {name} rows, got {count}; lower cv or add {name} rows")
    complete = sum(totals["preference_rows"]) <= max(PREFERENCE_ROWS_MIN, PREFERENCE_ROWS_PER_GOLD * totals["n_gold"])
    if template.scale in EXACT_SCALE_METHODS and not complete:
        scale = _scale_from_moments(totals["gold"], totals["preference"], template.scale)
    seconds["check"] = time.perf_counter() - t0

    # ---- the bias model: every gold row and a uniform sample of preference rows, fitted here
    t0 = time.perf_counter()
    seed = as_seed(bias.random_state)
    keep, seeds = _sample_sizes(totals["preference_rows"], totals["n_gold"], seed)
    draw = dask.delayed(_bias_rows, pure=True)
    sample = _gather(client, client.compute([draw(p, cols, k, s) for p, k, s in zip(parts, keep, seeds)]),
                     "drawing the bias sample", progress)
    offsets = np.concatenate([[0], np.cumsum(totals["rows"])[:-1]])
    rows = np.concatenate([s["__row"].to_numpy() + o for s, o in zip(sample, offsets)])
    sample = pd.concat(sample, ignore_index=True)
    is_gold = sample["__is_gold"].to_numpy(dtype=bool)
    if complete or template.scale not in EXACT_SCALE_METHODS:
        # every row (below the cap: the single-machine constant, bit for bit), or "wasserstein"
        # above it: quantiles of the sample's gains
        g = sample["__gain"].to_numpy()
        scale = scale_constant(g[is_gold], g[~is_gold], template.scale)
    bias_data = EvalData(sample[list(cols.features)].to_numpy(), sample["__gain"].to_numpy(), is_gold,
                         query_id=sample["__query"].to_numpy() if cols.query_id else None,
                         feature_names=[str(f) for f in cols.features])
    del sample
    # below the cap the bias model fits the constant itself from the same rows (the same number), so
    # that ate() carries its uncertainty as a single-machine fit's does; above it the constant of
    # every row is given as a number (its uncertainty, from thousands of rows per source, is left out)
    bias.set_params(scale=template.scale if complete else scale)
    bias.fit(bias_data)
    judge, gold_model = (weigh_judge(bias_data, bias, template.outcome_model, random_state=router_seed) if auto
                         else (None, None))
    bias.sample_index_ = rows  # row numbers in the whole dataset, as a single-machine fit's
    seconds["bias"] = time.perf_counter() - t0
    logger.info("bias model fitted on %d gold and %d of %d preference rows", totals["n_gold"],
                len(rows) - totals["n_gold"], totals["n_preference"])

    # ---- correct every preference label where it is read; LightGBM's data-parallel gain model
    t0 = time.perf_counter()
    workers = _sorted_workers(client)
    runs = [run for run in _assign_partitions(totals["rows"], len(workers)) if run]
    workers = workers[:len(runs)]
    judge_weight = 1.0 if judge is None else float(judge["weight"])
    bias_future = client.scatter((bias, judge_weight, gold_model), broadcast=True)
    blocks = [client.submit(_load_block, ddf, run, int(sum(totals["rows"][i] for i in run)), cols, bias_future,
                            weight, workers=[w], allow_other_workers=False, pure=False)
              for w, run in zip(workers, runs)]
    _wait(blocks, "correcting labels", progress, unit="worker")  # the blocks stay on their workers
    seconds["correct"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gain_model = _train_gain_model(client, blocks, workers, params, weighted=weight != 1.0)
    seconds["gain_model"] = time.perf_counter() - t0
    del blocks, bias_future

    fitted = _assemble_router(template, bias, judge, gain_model, cols.features)
    fitted.distributed_summary_ = {
        "n_rows": totals["n"], "n_gold": totals["n_gold"], "n_preference": totals["n_preference"],
        "bias_rows": len(rows), "n_partitions": len(parts), "workers": list(workers),
        "partitions_per_worker": [len(r) for r in runs], "scale_method": template.scale,
        "scale_exact": template.scale in EXACT_SCALE_METHODS or len(rows) == totals["n"],
        "seconds": {k: round(v, 3) for k, v in seconds.items()}}
    return fitted


def _sorted_workers(client) -> list[str]:
    """The cluster's worker addresses, sorted (by host address, then port)."""
    try:
        client.wait_for_workers(1, timeout=120)
    except TimeoutError:
        raise DataError("the Dask cluster has no workers (none joined within 120 s)") from None
    workers = list(client.scheduler_info(n_workers=-1)["workers"])

    def key(address: str):
        parsed = urlparse(address)
        try:
            host = tuple(int(x) for x in (parsed.hostname or "").split("."))
        except ValueError:
            host = (parsed.hostname or "",)
        return host, parsed.port or 0

    return sorted(workers, key=key)
