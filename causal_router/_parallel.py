"""Run independent tasks in parallel with a progress bar: joblib processes, or a Ray cluster."""

from __future__ import annotations

from typing import Iterable

from joblib import Parallel, parallel_config

__all__ = ["run_parallel", "connect_ray"]


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


def connect_ray(address: str | None = None) -> None:
    """Connect to the Ray cluster at ``address`` ("ray://head:10001", "auto") or start a local one
    (None); a second call in the same process keeps the first connection. Extra ``[ray]``."""
    import ray

    ray.init(address=address, ignore_reinit_error=True)
