"""Figures: every figure the package draws is made here (matplotlib; the backend is left to
the caller: the CLI uses Agg, a notebook its inline backend). Each function returns a Figure."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_experiment_curves", "plot_split_curves", "METHOD_LABELS", "plot_propensity_overlap",
           "plot_calibration", "plot_uplift_curves", "plot_bias_distribution", "plot_group_bias", "plot_bias_tree",
           "plot_feature_importance", "plot_refutations", "plot_multi_frontiers", "MULTI_LABELS",
           "plot_acquisition_curves", "plot_gold_plan"]

#: Display names and colours of the experiment's methods.
METHOD_LABELS = {
    "meta_r": ("Meta-router (R-learner, default)", "#d62728"),
    "meta_auto": ("Meta-router (auto)", "#ff7f0e"),
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
    "oracle_share": "Oracle share against primary-model usage",
}


def _style(name: str):
    label, colour = METHOD_LABELS.get(name, (name, None))
    return label, colour


def plot_experiment_curves(curves: pd.DataFrame, metric: str = "efficiency_gain", title: str | None = None):
    """Mean curve over runs per method with a band of +- one standard deviation.

    ``curves`` has columns ``run``, ``method``, ``ratio`` and ``metric``; NaN points (a curve
    truncated at the share a method predicts positive) are left out of the mean, as in the
    paper's Figure 1(a).

    Parameters
    ----------
    curves : DataFrame
        One row per (run, method, ratio): columns ``run``, ``method``, ``ratio`` (share of
        queries routed to the primary) and ``metric``.
    metric : str, default="efficiency_gain"
        The column drawn (``"efficiency_gain"`` or ``"oracle_share"`` get their own labels).
    title : str or None, default=None
        The title; None: the metric's, with the number of runs.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    fig, ax = plt.subplots(figsize=(9.5, 5.2))
    n_runs = curves["run"].nunique()
    for name, part in curves.groupby("method", sort=False):
        stats = part.groupby("ratio")[metric].agg(["mean", "std", "count"])
        stats = stats[stats["count"] > 0]
        label, colour = _style(name)
        lw = 2.4 if name.startswith("meta") or name == "all_golden" else 1.6
        ls = "--" if name in ("all_golden", "random") else "-"
        ax.plot(stats.index, stats["mean"], label=label, color=colour, lw=lw, ls=ls)
        ax.fill_between(stats.index, stats["mean"] - stats["std"].fillna(0),
                        stats["mean"] + stats["std"].fillna(0), color=colour, alpha=0.07, lw=0)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("Primary-model usage ratio r (share of queries routed to the primary)")
    ax.set_ylabel(_YLABEL.get(metric, metric))
    ax.set_title(title or f"{_TITLE.get(metric, metric)}\n(mean of {n_runs} runs; bands: +-1 sd over runs)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_split_curves(predictions: Mapping[str, np.ndarray], gold_gain, metric: str = "efficiency_gain",
                      title: str | None = None):
    """Curves of several methods on one test set (:func:`plot_experiment_curves` of one run).

    Parameters
    ----------
    predictions : mapping of str to ndarray of shape (n_test,)
        Method name -> predicted gains on the test set.
    gold_gain : array-like of shape (n_test,)
        The test set's gold gains.
    metric : {"efficiency_gain", "oracle_share"}, default="efficiency_gain"
        :func:`causal_router.evaluate.efficiency_curve`, or otherwise
        :func:`causal_router.evaluate.normalised_curve` (the oracle share).
    title : str or None, default=None
        The title; None: the metric's, "(one split)".

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    from .. import evaluate

    rows = []
    for name, pred in predictions.items():
        curve = (evaluate.efficiency_curve(pred, gold_gain) if metric == "efficiency_gain"
                 else evaluate.normalised_curve(pred, gold_gain))
        rows.append(pd.DataFrame({"run": 0, "method": name, "ratio": curve.index.to_numpy(),
                                  metric: curve.to_numpy()}))
    return plot_experiment_curves(pd.concat(rows, ignore_index=True), metric,
                                  title or f"{_TITLE.get(metric, metric)} (one split)")


# ---------------------------------------------------------------------------- CATE diagnostics
# Figures of :class:`causal_router.report.DiagnosticsReport`. Bias values are on the gold scale
# (gold-standard minus preference gain, in gold units).
_GOLD_COLOUR, _PREF_COLOUR = "#d62728", "#1f77b4"
_BIAS_LABEL = "Preference bias (gold minus preference gain, gold scale)"


def plot_propensity_overlap(propensity, is_gold, *, clip: float | None = None, title: str | None = None):
    """Histograms of the cross-fitted propensity p(s) = P(gold | s) of gold and preference rows.

    ``propensity`` and ``is_gold`` have shape (n,); ``clip`` draws the clipping threshold. Bars
    are shares of each source's rows, so sources of very different sizes compare. The x-axis is
    logarithmic when the propensities span more than a factor of 20.

    Parameters
    ----------
    propensity : array-like of shape (n,)
        Cross-fitted propensity of each row, in (0, 1).
    is_gold : array-like of bool, shape (n,)
        Whether each row is gold.
    clip : float or None, default=None
        Clipping threshold drawn as a dashed line; None: none drawn.
    title : str or None, default=None
        The title; None: a default one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    p = np.asarray(propensity, dtype=float)
    gold = np.asarray(is_gold, dtype=bool)
    lo, hi = max(float(p.min()), 1e-6), min(float(p.max()), 1 - 1e-9)
    log = hi / lo > 20
    if hi <= lo:
        lo, hi = max(lo * 0.9, 1e-6), min(hi * 1.1 + 1e-6, 1.0)
    bins = np.geomspace(lo, hi, 41) if log else np.linspace(lo, hi, 41)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for mask, label, colour in ((~gold, "preference rows", _PREF_COLOUR), (gold, "gold rows", _GOLD_COLOUR)):
        if mask.any():
            ax.hist(np.clip(p[mask], lo, hi), bins=bins, weights=np.full(mask.sum(), 1 / mask.sum()),
                    alpha=0.55, color=colour, label=f"{label} (n={int(mask.sum())})")
    if clip is not None:
        ax.axvline(clip, color="black", ls="--", lw=1, label=f"clipping threshold {clip:.3g}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("Estimated propensity p(s) = P(gold | s), cross-fitted" + (" (log scale)" if log else ""))
    ax.set_ylabel("Share of the source's rows")
    ax.set_title(title or "Overlap: propensity of gold and preference rows")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def plot_calibration(table: pd.DataFrame, r_squared: float, *, average: float | None = None,
                     z: float = 1.96, title: str | None = None):
    """Calibration by quantile groups of the estimated bias (econml DRTester, held-out rows).

    ``table`` has one row per group with ``predicted`` (mean estimated bias), ``observed``
    (mean doubly robust outcome) and ``std_error`` (of ``observed``); error bars are
    +- ``z`` standard errors. Points on the diagonal are well calibrated.

    Parameters
    ----------
    table : DataFrame
        One row per quantile group with ``predicted``, ``observed`` and ``std_error`` (gold scale).
    r_squared : float
        The calibration R-squared, shown in the title.
    average : float or None, default=None
        Held-out average bias drawn as a horizontal line; None (or NaN): none drawn.
    z : float, default=1.96
        Error bars are +- ``z`` standard errors.
    title : str or None, default=None
        The title; None: a default one with ``r_squared``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    fig, ax = plt.subplots(figsize=(6.8, 5.4))
    x, y, err = (table[c].to_numpy(dtype=float) for c in ("predicted", "observed", "std_error"))
    ax.errorbar(x, y, yerr=z * err, fmt="o", color=_GOLD_COLOUR, capsize=4, ms=7,
                label="group: observed (doubly robust) mean +- CI")
    finite = np.concatenate([x, y - z * err, y + z * err])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = 0.05 * (hi - lo + 1e-12)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", ls="--", lw=1,
                label="perfect calibration (y = x)")
    if average is not None and np.isfinite(average):
        ax.axhline(average, color=_PREF_COLOUR, lw=1, ls=":", label=f"held-out average bias {average:.3g}")
    for i, (xi, yi) in enumerate(zip(x, y)):
        if np.isfinite(xi) and np.isfinite(yi):
            ax.annotate(f"Q{i + 1}", (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("Mean estimated bias in the group (gold scale)")
    ax.set_ylabel("Mean doubly robust bias in the group (gold scale)")
    ax.set_title(title or f"Calibration by quantile groups of the estimated bias (R\u00b2 = {r_squared:.2f})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_uplift_curves(curves: Mapping[str, pd.DataFrame], summary: Mapping[str, Mapping[str, float]] | None = None,
                       *, z: float = 1.96, title: str | None = None):
    """QINI and TOC curves of the estimated bias with pointwise and uniform bands.

    ``curves`` maps ``"qini"`` / ``"toc"`` to a DataFrame with ``share`` (percent of queries
    with the largest estimated bias), ``value``, ``std_error`` and ``uniform_critical_value``
    (econml's multiplier bootstrap); ``summary`` maps the same names to ``coefficient``,
    ``std_error`` and ``p_value`` shown in the panel titles.

    Parameters
    ----------
    curves : mapping of str to DataFrame
        ``"qini"`` and / or ``"toc"`` -> the curve (one panel each).
    summary : mapping of str to mapping of str to float, optional
        ``"qini"`` / ``"toc"`` -> ``coefficient``, ``std_error``, ``p_value`` of the curve's area.
    z : float, default=1.96
        The pointwise band is +- ``z`` standard errors.
    title : str or None, default=None
        The figure's title; None: a default one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    names = [n for n in ("qini", "toc") if n in curves]
    fig, axes = plt.subplots(1, len(names), figsize=(6.2 * len(names), 4.8), squeeze=False)
    ylabels = {
        "qini": "share x (mean bias in the share - average bias)\n(gold scale)",
        "toc": "Mean bias in the share - average bias\n(gold scale)",
    }
    for ax, name in zip(axes[0], names):
        df = curves[name].sort_values("share")
        s, v, e = (df[c].to_numpy(dtype=float) for c in ("share", "value", "std_error"))
        ucv = float(df["uniform_critical_value"].iloc[0])
        ax.fill_between(s, v - ucv * e, v + ucv * e, color=_GOLD_COLOUR, alpha=0.12, lw=0,
                        label=f"uniform 95% band (bootstrap, x{ucv:.2f} se)")
        ax.fill_between(s, v - z * e, v + z * e, color=_GOLD_COLOUR, alpha=0.25, lw=0, label="pointwise CI")
        ax.plot(s, v, color=_GOLD_COLOUR, lw=2, label=f"{name.upper()} curve")
        ax.axhline(0, color="grey", lw=1, ls="--", label="random ordering (0)")
        ax.set_xlabel("Share of queries with the largest estimated bias (%)")
        ax.set_ylabel(ylabels[name])
        head = {"qini": "QINI curve", "toc": "TOC curve"}[name]
        if summary and name in summary:
            c = summary[name]
            head += f"\narea {c['coefficient']:.3g} (se {c['std_error']:.2g}, p = {c['p_value']:.2g})"
        ax.set_title(head, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8, frameon=False)
    fig.suptitle(title or "Does ranking by the estimated bias find the queries with larger bias? (held-out rows)")
    fig.tight_layout()
    return fig


def plot_bias_distribution(effect, *, average: float | None = None, lower: float | None = None,
                           upper: float | None = None, is_gold=None, title: str | None = None):
    """Histogram of the estimated bias per query, with the average bias and its confidence interval.

    Parameters
    ----------
    effect : array-like of shape (n,)
        Estimated bias of each query, gold scale.
    average : float or None, default=None
        The average bias, drawn as a vertical line; None: not drawn.
    lower, upper : float or None, default=None
        Its confidence interval, shaded when both are given (and ``average`` is).
    is_gold : array-like of bool, shape (n,), optional
        Whether each row is gold; given, the gold rows' histogram is drawn over all rows'.
    title : str or None, default=None
        The title; None: a default one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    tau = np.asarray(effect, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    lo, hi = float(tau.min()), float(tau.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
    ax.hist(tau, bins=bins, color="#7f7f7f", alpha=0.6, label=f"all queries (n={tau.size})")
    if is_gold is not None:
        gold = np.asarray(is_gold, dtype=bool)
        if gold.any():
            ax.hist(tau[gold], bins=bins, color=_GOLD_COLOUR, alpha=0.7, label=f"gold rows (n={int(gold.sum())})")
    ax.axvline(0, color="black", lw=1, label="no bias")
    if average is not None:
        ax.axvline(average, color=_PREF_COLOUR, lw=2, label=f"average bias {average:.3g}")
        if lower is not None and upper is not None:
            ax.axvspan(lower, upper, color=_PREF_COLOUR, alpha=0.15, label=f"CI [{lower:.3g}, {upper:.3g}]")
    ax.set_xlabel("Estimated " + _BIAS_LABEL[0].lower() + _BIAS_LABEL[1:])
    ax.set_ylabel("Number of queries")
    ax.set_title(title or "Distribution of the estimated preference bias")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_group_bias(table: pd.DataFrame, *, average: float | None = None, group_name: str = "group",
                    max_groups: int = 30, order_by_size: bool = True, title: str | None = None):
    """Average bias per group with confidence intervals (point and error bars).

    ``table`` is indexed by group with ``estimate``, ``lower``, ``upper``, ``n`` and ``n_gold``;
    the ``max_groups`` largest groups are shown, largest first (or in table order when
    ``order_by_size`` is False).

    Parameters
    ----------
    table : DataFrame
        Indexed by group, with ``estimate``, ``lower``, ``upper`` (gold scale), ``n`` and ``n_gold``.
    average : float or None, default=None
        The overall average bias, drawn as a dashed line; None: not drawn.
    group_name : str, default="group"
        The name of the grouping (axis label and title).
    max_groups : int, default=30
        Most groups shown (the largest by ``n``).
    order_by_size : bool, default=True
        Largest group first; False: in table order.
    title : str or None, default=None
        The title; None: a default one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    largest = table.sort_values("n", ascending=False, kind="stable").index[:max_groups]
    df = (table.loc[largest] if order_by_size else table[table.index.isin(largest)]).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.38 * len(df)))
    ypos = np.arange(len(df))
    est = df["estimate"].to_numpy(dtype=float)
    err = np.vstack([est - df["lower"].to_numpy(dtype=float), df["upper"].to_numpy(dtype=float) - est])
    ax.errorbar(est, ypos, xerr=err, fmt="o", color=_GOLD_COLOUR, capsize=3, label="group average +- CI")
    ax.set_yticks(ypos)
    ax.set_yticklabels([f"{g} (n={int(n)}, gold={int(k)})" for g, n, k in zip(df.index, df["n"], df["n_gold"])],
                       fontsize=8)
    ax.axvline(0, color="black", lw=1, label="no bias")
    if average is not None:
        ax.axvline(average, color=_PREF_COLOUR, ls="--", lw=1.5, label=f"overall average {average:.3g}")
    ax.set_xlabel(_BIAS_LABEL)
    ax.set_ylabel(group_name)
    shown = "" if len(table) <= max_groups else f" ({max_groups} largest of {len(table)})"
    ax.set_title(title or f"Average bias by {group_name}{shown}")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_bias_tree(interpreter, feature_names, *, title: str | None = None):
    """The shallow tree of econml's ``SingleTreeCateInterpreter`` (fitted on gold-scale bias):
    each node shows its split, sample count, and the mean and sd of the estimated bias.

    Parameters
    ----------
    interpreter : econml.cate_interpreter.SingleTreeCateInterpreter
        The fitted interpreter.
    feature_names : sequence of str
        Names of the features it was fitted on, in column order.
    title : str or None, default=None
        The title; None: a default one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    depth = int(interpreter.tree_model_.get_depth())
    fig, ax = plt.subplots(figsize=(max(8, 4.2 * 2 ** max(depth - 1, 0)), 2.6 + 1.9 * depth))
    interpreter.plot(ax=ax, feature_names=list(feature_names), fontsize=9, precision=3)
    ax.set_title(title or "Where the judge is biased: a shallow tree of the estimated bias\n"
                 "(CATE = bias, gold minus preference, gold scale; green > 0, red < 0)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_feature_importance(values: pd.Series, *, signed: bool = False, xlabel: str = "Importance",
                            top: int = 15, title: str | None = None):
    """Horizontal bars of the ``top`` features by absolute value.

    Parameters
    ----------
    values : Series
        One value per feature, indexed by feature name.
    signed : bool, default=False
        Colour the bars by sign (raises / lowers the bias) and draw zero.
    xlabel : str, default="Importance"
        The x-axis label.
    top : int, default=15
        Number of features shown.
    title : str or None, default=None
        The title; None: a default one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    s = values.reindex(values.abs().sort_values(ascending=False).index).head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.36 * len(s)))
    colours = [(_GOLD_COLOUR if v > 0 else _PREF_COLOUR) for v in s] if signed else "#7f7f7f"
    ax.barh(np.arange(len(s)), s.to_numpy(dtype=float), color=colours)
    ax.set_yticks(np.arange(len(s)))
    ax.set_yticklabels([str(i) for i in s.index], fontsize=8)
    if signed:
        ax.axvline(0, color="black", lw=1)
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=_GOLD_COLOUR, label="raises the bias"),
                           Patch(color=_PREF_COLOUR, label="lowers the bias")], fontsize=8, frameon=False,
                  loc="best")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Feature")
    ax.set_title(title or f"Features of the bias model (top {len(s)})")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_refutations(simulations: Mapping[str, np.ndarray], original: float, sensitivity_path: pd.DataFrame | None = None,
                     *, moderate: float | None = None, title: str | None = None):
    """Refutations of the average bias (gold scale): left, the refitted estimates of each
    resampling refuter (one dot per simulation, box of their spread) against the original
    estimate and zero; right, the estimate under a simulated unobserved confounder of growing
    strength (``sensitivity_path`` with ``strength`` and ``effect``), moderate strengths shaded.

    Parameters
    ----------
    simulations : mapping of str to ndarray
        Refuter name -> its refitted estimates (gold scale); the refuters ``placebo_treatment``,
        ``random_common_cause``, ``data_subset``, ``bootstrap`` and ``dummy_outcome`` are drawn.
    original : float
        The original estimate of the average bias (gold scale).
    sensitivity_path : DataFrame or None, default=None
        The confounder path (``strength``, ``effect``); None or empty: no right panel.
    moderate : float or None, default=None
        Strengths up to this are shaded as moderate; None: no shading.
    title : str or None, default=None
        The figure's title; None: none.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    names = [k for k in ("placebo_treatment", "random_common_cause", "data_subset", "bootstrap", "dummy_outcome")
             if k in simulations and len(simulations[k])]
    has_path = sensitivity_path is not None and len(sensitivity_path) > 0
    fig, axes = plt.subplots(1, 2 if has_path else 1, figsize=(12 if has_path else 7, 4.4), squeeze=False)
    ax = axes[0, 0]
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        v = np.asarray(simulations[name], dtype=float)
        v = v[np.isfinite(v)]
        if len(v) > 1:
            ax.boxplot(v, positions=[i], orientation="horizontal", widths=0.5, showfliers=False,
                       medianprops={"color": "#555555"})
        ax.scatter(v, i + rng.uniform(-0.15, 0.15, len(v)), s=12, color="#1f77b4", alpha=0.7, zorder=3)
    ax.axvline(original, color="#d62728", lw=2, label=f"estimate {original:.3g}")
    ax.axvline(0, color="black", lw=1, label="zero")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([n.replace("_", " ") for n in names])
    ax.set_xlabel("Average bias after refutation (gold scale)")
    ax.set_title("Refitted estimates per refuter")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(loc="best", fontsize=8, frameon=False)
    if has_path:
        ax = axes[0, 1]
        path = sensitivity_path.sort_values("strength")
        ax.plot(np.r_[0.0, path["strength"]], np.r_[original, path["effect"]], "o-", color="#d62728")
        ax.axhline(0, color="black", lw=1)
        if moderate is not None:
            ax.axvspan(0, moderate, color="#2ca02c", alpha=0.12, label=f"moderate (s <= {moderate:g})")
            ax.legend(loc="best", fontsize=8, frameon=False)
        ax.set_xlabel("Strength s of the simulated confounder")
        ax.set_ylabel("Average bias (gold scale)")
        ax.set_title("Unobserved common cause (dowhy direct simulation)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- K-model routing
#: Display names and colours of the K-model experiment's methods (others as in METHOD_LABELS).
MULTI_LABELS = {
    "multi_router": ("MultiRouter (bias-corrected)", "#d62728"),
    "pooled": ("PooledMulti", "#1f77b4"),
    "gold_only": ("GoldOnlyMulti", "#2ca02c"),
    "best_single": ("BestSingle", "#ff7f0e"),
    "all_golden": ("All-Golden (oracle)", "#000000"),
    "oracle": ("Per-query best (test quality)", "#7f7f7f"),
}


def plot_multi_frontiers(frontiers: pd.DataFrame, summary: pd.DataFrame | None = None, *, methods=None,
                         quality_label: str = "Mean quality of the chosen model (gold scale)",
                         title: str | None = None, ax=None):
    """Quality-versus-cost frontiers of K-model routers: the mean over runs of each method's
    non-decreasing concave frontier, with a band of +- one standard error.

    ``frontiers`` has columns ``run``, ``method``, ``cost``, ``quality`` (each run's hull on a
    common cost grid, as :func:`causal_router.multi_experiment.run_multi_experiment` returns);
    ``summary`` (optional, indexed by method, column ``aiq``) adds each AIQ to the legend;
    ``methods`` (optional) selects and orders the methods drawn.

    Parameters
    ----------
    frontiers : DataFrame
        Columns ``run``, ``method``, ``cost`` and ``quality`` (gold scale).
    summary : DataFrame or None, default=None
        Indexed by method, with an ``aiq`` column shown in the legend.
    methods : sequence of str, optional
        The methods drawn, in order; None: all, in the order of ``frontiers``.
    quality_label : str, default="Mean quality of the chosen model (gold scale)"
        The y-axis label.
    title : str or None, default=None
        The title; None: a default one with the number of runs.
    ax : matplotlib.axes.Axes, optional
        The axes to draw on; None: a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (``ax``'s, or a new one), as every figure function of this module.
    """
    fig, ax = (plt.subplots(figsize=(8.5, 5.0)) if ax is None else (ax.figure, ax))
    n_runs = frontiers["run"].nunique()
    if methods is not None:
        frontiers = frontiers[frontiers["method"].isin(methods)]
        order = {m: i for i, m in enumerate(methods)}
        frontiers = frontiers.sort_values("method", key=lambda m: m.map(order), kind="stable")
    for name, part in frontiers.groupby("method", sort=False):
        stats = part.groupby("cost")["quality"].agg(["mean", "std", "count"])
        label, colour = MULTI_LABELS.get(name, METHOD_LABELS.get(name, (name, None)))
        if summary is not None and name in summary.index:
            label = f"{label}: AIQ {summary.loc[name, 'aiq']:.3f}"
        dashed = name in ("all_golden", "oracle")
        ax.plot(stats.index, stats["mean"], label=label, color=colour, lw=1.4 if dashed else 2.2,
                ls="--" if dashed else "-", zorder=3 if name == "multi_router" else 2)
        se = (stats["std"] / np.sqrt(stats["count"])).fillna(0)
        ax.fill_between(stats.index, stats["mean"] - se, stats["mean"] + se, color=colour, alpha=0.12, lw=0)
    ax.set_xlabel("Mean cost per query of the chosen models")
    ax.set_ylabel(quality_label)
    ax.set_title(title or f"Quality-versus-cost frontiers (mean of {n_runs} runs; bands: +-1 s.e.)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    return fig


# ---------------------------------------------------------------------------- choosing gold rows
# Figures of :mod:`causal_router.active`.
_STRATEGY_COLOURS = {"random": "#7f7f7f", "uncertainty": "#1f77b4", "decision": "#d62728", "diverse": "#2ca02c"}


def plot_acquisition_curves(summary: pd.DataFrame, *, title: str | None = None):
    """Oracle share against the number of gold labels, one panel per setting, one line per strategy.

    ``summary`` has columns ``setting``, ``strategy``, ``n_gold``, ``mean`` and ``sem`` (mean
    oracle share over repeats and its standard error; bands are +- 1 s.e.). A dotted line marks
    random acquisition's share at its largest gold count.

    Parameters
    ----------
    summary : DataFrame
        Columns ``setting``, ``strategy``, ``n_gold``, ``mean`` and ``sem``.
    title : str or None, default=None
        The figure's title; None: a default one.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    settings = list(dict.fromkeys(summary["setting"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.3 * len(settings), 4.0), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        part = summary[summary["setting"] == setting]
        for strategy, curve in part.groupby("strategy", sort=False):
            curve = curve.sort_values("n_gold")
            colour = _STRATEGY_COLOURS.get(strategy)
            ax.plot(curve["n_gold"], curve["mean"], "--" if strategy == "random" else "-", marker="o", ms=3,
                    color=colour, label=strategy)
            ax.fill_between(curve["n_gold"], curve["mean"] - curve["sem"], curve["mean"] + curve["sem"],
                            color=colour, alpha=0.12, lw=0)
        random = part[part["strategy"] == "random"].sort_values("n_gold")
        if len(random):
            ax.axhline(random["mean"].iloc[-1], color=_STRATEGY_COLOURS["random"], lw=0.8, ls=":")
        ticks = sorted(part["n_gold"].unique())
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.set_title(setting)
        ax.set_xlabel("Gold labels")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Oracle share (mean +- 1 s.e.)")
    axes[0][-1].legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(title or "Acquisition curves (dotted: random acquisition at its largest gold count)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_gold_plan(plan, *, title: str | None = None):
    """The planner's curves (:class:`causal_router.active.GoldPlan`): the learning curve of the
    oracle share (measured points +- 1.96 s.e., fitted power law with its 95% band) where a
    target share was given, and the width of the average bias's 95% CI against the number of
    gold labels (the law with its band). Targets are dashed, the current count dotted, the
    estimated count needed marked.

    Parameters
    ----------
    plan : GoldPlan
        The result of :func:`causal_router.active.plan_gold`.
    title : str or None, default=None
        The figure's title; None: none.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not shown, not closed).
    """
    panels = (["share"] if plan.learning_curve is not None else []) + ["width"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "share":
            curve, points, name = plan.share_curve, plan.learning_curve, "oracle_share"
            ax.errorbar(points["n_gold"], points["oracle_share"], yerr=1.96 * points["std_error"], fmt="o",
                        color="#d62728", ms=4, capsize=3, label="cross-validated (held-out gold rows)")
            ax.set_ylabel("Oracle share")
            law = plan.share_law
            ax.set_title(f"Learning curve: share = {law['a']:.3f} - {law['b']:.3g} n^-{law['c']:.2f}")
        else:
            curve, name = plan.ci_width_curve, "ci_width"
            ax.set_ylabel("Width of the 95% CI of the average bias (gold scale)")
            ax.set_title("CI width: the 1/sqrt(n) law on the gold rows' share of the variance")
        ax.plot(curve["n_gold"], curve[name], color="#1f77b4", lw=2, label="fitted law")
        ax.fill_between(curve["n_gold"], curve["lower"], curve["upper"], color="#1f77b4", alpha=0.15, lw=0,
                        label="95% band")
        ax.axvline(plan.n_gold, color="black", ls=":", lw=1, label=f"now: {plan.n_gold} gold labels")
        if name in plan.targets.index:
            row = plan.targets.loc[name]
            ax.axhline(row["target"], color="#2ca02c", ls="--", lw=1.2, label=f"target {row['target']:.3g}")
            if np.isfinite(row["n_gold_needed"]) and row["n_gold_needed"] <= curve["n_gold"].max():
                ax.plot([row["n_gold_needed"]], [row["target"]], "D", color="#2ca02c", ms=7,
                        label=f"needed: {row['n_gold_needed']:.0f}")
        ax.set_xscale("log")
        ax.set_xlabel("Gold labels")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
