"""The saved results of the Monte Carlo experiment: its tables and its two figures."""

from __future__ import annotations

import os
from pathlib import Path

from ..experiment import ExperimentResult
from ..io import atomic_write
from .plotting import plot_experiment_curves

__all__ = ["save_experiment", "EXPERIMENT_FIGURES"]

#: Figure file -> the curve it shows (a column of :attr:`ExperimentResult.curves`).
EXPERIMENT_FIGURES = {"efficiency_gain.png": "efficiency_gain", "oracle_share.png": "oracle_share"}


def save_experiment(result: ExperimentResult, folder: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write the result's tables and figures into ``folder``, each file atomically.

    The tables of :meth:`ExperimentResult.save` (runs.csv, curves.csv, summary.csv,
    summary.json) and the mean curves per method (efficiency_gain.png, oracle_share.png),
    each written with :func:`causal_router.io.atomic_write`.

    Parameters
    ----------
    result : ExperimentResult
        The result of :func:`causal_router.experiment.run_experiment`.
    folder : str or PathLike
        The output folder (as :meth:`ExperimentResult.save` takes it).
    dpi : int, default=150
        Resolution of the figures, dots per inch.

    Returns
    -------
    Path
        The folder.
    """
    import matplotlib.pyplot as plt

    folder = result.save(folder)
    for name, metric in EXPERIMENT_FIGURES.items():
        fig = plot_experiment_curves(result.curves, metric)
        with atomic_write(folder / name) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        plt.close(fig)
    return folder
