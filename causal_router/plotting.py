"""Figures. Every figure the package draws is made here (matplotlib, Agg-safe)."""

from __future__ import annotations

from typing import Mapping

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_experiment_curves", "plot_split_curves", "METHOD_LABELS"]

#: Display names and colours of the experiment's methods.
METHOD_LABELS = {
    "meta_auto": ("Meta-router (auto)", "#d62728"),
    "meta_r": ("Meta-router (R-learner)", "#ff7f0e"),
    "meta_dr": ("Meta-router (DR-learner)", "#9467bd"),
    "meta_forest": ("Meta-router (causal forest)", "#8c564b"),
    "meta_linear": ("Meta-router (linear DR)", "#e377c2"),
    "pooled": ("Pooled", "#1f77b4"),
    "gold_only": ("Gold-only", "#2ca02c"),
    "preference_only": ("Preference-only", "#17becf"),
    "mean_shift": ("Mean shift", "#bcbd22"),
    "all_golden": ("All-Golden (oracle)", "#000000"),
    "random": ("Random", "#7f7f7f"),
}

_YLABEL = {
    "efficiency_gain": "Efficiency gain over random routing\n(share of the all-primary gain)",
    "oracle_share": "Oracle share\n(1 = oracle ranking, 0 = random)",
}
_TITLE = {
    "efficiency_gain": "Efficiency gain against primary-model usage",
    "oracle_share": "Share of the oracle's gain over random, against primary-model usage",
}


def _style(name: str):
    label, colour = METHOD_LABELS.get(name, (name, None))
    return label, colour


def plot_experiment_curves(curves: pd.DataFrame, metric: str = "efficiency_gain", title: str | None = None):
    """Mean curve over runs per method with a band of +- one standard deviation.

    ``curves`` has columns ``run``, ``method``, ``ratio`` and ``metric``; NaN points (a curve
    truncated at the share a method predicts positive) are left out of the mean, as in the
    paper's Figure 1(a). Returns the matplotlib Figure.
    """
    fig, ax = plt.subplots(figsize=(8, 5.2))
    n_runs = curves["run"].nunique()
    for name, part in curves.groupby("method", sort=False):
        stats = part.groupby("ratio")[metric].agg(["mean", "std", "count"])
        stats = stats[stats["count"] > 0]
        label, colour = _style(name)
        lw = 2.4 if name.startswith("meta") or name == "all_golden" else 1.6
        ls = "--" if name in ("all_golden", "random") else "-"
        ax.plot(stats.index, stats["mean"], label=label, color=colour, lw=lw, ls=ls)
        ax.fill_between(stats.index, stats["mean"] - stats["std"].fillna(0),
                        stats["mean"] + stats["std"].fillna(0), color=colour, alpha=0.10, lw=0)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("Primary-model usage ratio r (share of queries routed to the primary)")
    ax.set_ylabel(_YLABEL.get(metric, metric))
    ax.set_title(title or f"{_TITLE.get(metric, metric)} (mean of {n_runs} runs, band = +-1 sd)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_split_curves(predictions: Mapping[str, np.ndarray], gold_gain, metric: str = "efficiency_gain",
                      title: str | None = None):
    """Curves of several methods on one test set: ``predictions`` maps method name to
    predicted gains of shape (n_test,). Returns the matplotlib Figure."""
    from . import evaluate

    rows = []
    for name, pred in predictions.items():
        curve = (evaluate.efficiency_curve(pred, gold_gain) if metric == "efficiency_gain"
                 else evaluate.normalised_curve(pred, gold_gain))
        rows.append(pd.DataFrame({"run": 0, "method": name, "ratio": curve.index.to_numpy(),
                                  metric: curve.to_numpy()}))
    return plot_experiment_curves(pd.concat(rows, ignore_index=True), metric,
                                  title or f"{_TITLE.get(metric, metric)} (one split)")
