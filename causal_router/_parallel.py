"""Run independent tasks in parallel with a progress bar: joblib processes, or a Ray cluster."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from joblib import Parallel, parallel_config

__all__ = ["run_parallel", "connect_ray", "thread_count"]


def run_parallel(tasks: Iterable, *, n_jobs: int | None, backend: str = "loky", progress: bool = True,
                 desc: str, unit: str) -> list:
    """Results of joblib ``delayed`` tasks, in task order.

    ``backend="ray"`` runs them on the Ray cluster that ``ray.init(address=...)`` connected to
    (a local one otherwise); Ray's joblib backend cannot stream, so its bar advances only when
    every task is done. Results do not depend on ``n_jobs`` or the backend when every task
    carries its own seed.
    """
    from tqdm.auto import tqdm

    tasks = list(tasks)
    if backend == "ray":
        from ray.util.joblib import register_ray

        register_ray()
    with parallel_config(backend=backend, n_jobs=n_jobs):
        results = Parallel(return_as="list" if backend == "ray" else "generator")(tasks)
        return list(tqdm(results, total=len(tasks), desc=desc, unit=unit, disable=not progress))


def thread_count(n_jobs: int | None, tasks: int | None = None) -> int:
    """Threads a fit may start for ``tasks`` independent pieces of work, read as scikit-learn reads
    ``n_jobs`` (joblib's ``effective_n_jobs``): None is 1 unless a ``joblib.parallel_config(n_jobs=...)``
    context says otherwise, -1 all cores, -2 all but one. Never more than ``tasks``."""
    from joblib import effective_n_jobs

    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0):
        from ._validation import DataError

        raise DataError(f"n_jobs must be None or a non-zero integer (-1: all cores), got {n_jobs!r}")
    threads = max(1, int(effective_n_jobs(None if n_jobs is None else int(n_jobs))))
    return threads if tasks is None else max(1, min(threads, int(tasks)))


def connect_ray(address: str | None = None) -> None:
    """Connect to the Ray cluster at ``address`` ("ray://head:10001", "auto") or start a local one
    (None); a second call in the same process keeps the first connection. Extra ``[ray]``."""
    import ray

    ray.init(address=address, ignore_reinit_error=True)
