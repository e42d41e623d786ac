"""The saved results of the Monte Carlo experiment: its tables and its two figures."""

from __future__ import annotations

from pathlib import Path

from ..experiment import ExperimentResult
from ..io import atomic_write
from .plotting import plot_experiment_curves

__all__ = ["save_experiment", "EXPERIMENT_FIGURES"]

#: Figure file -> the curve it shows (a column of :attr:`ExperimentResult.curves`).
EXPERIMENT_FIGURES = {"efficiency_gain.png": "efficiency_gain", "oracle_share.png": "oracle_share"}


def save_experiment(result: ExperimentResult, folder, *, dpi: int = 150) -> Path:
    """Write the result's tables (:meth:`ExperimentResult.save`: runs.csv, curves.csv, summary.csv,
    summary.json) and the mean curves per method (efficiency_gain.png, oracle_share.png) into
    ``folder``, each file atomically (:func:`causal_router.io.atomic_write`); returns the folder as a Path."""
    import matplotlib.pyplot as plt

    folder = result.save(folder)
    for name, metric in EXPERIMENT_FIGURES.items():
        fig = plot_experiment_curves(result.curves, metric)
        with atomic_write(folder / name) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        plt.close(fig)
    return folder
