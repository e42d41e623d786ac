"""The CATE diagnostics report: a reading and a status per section, the figures, the HTML page.

:class:`DiagnosticsReport` presents a :class:`causal_router.validate.Diagnostics` (the numbers
come from :func:`causal_router.validate.diagnose`; nothing is re-estimated here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd
from scipy import stats

from .._validation import DataError
from ..io import atomic_write
from ..validate.diagnostics import (
    OVERLAP_MAX_AUC,
    OVERLAP_MAX_CLIPPED_SHARE,
    OVERLAP_MIN_ESS_SHARE,
    Diagnostics,
    overlap_problems,
)
from . import plotting
from .html import escape, figure_html, grid_table, kv_table, page, png_bytes

__all__ = ["DiagnosticsReport", "SECTIONS", "FIGURE_SECTION"]

#: Report sections, in order: key of :attr:`Diagnostics.numbers` -> title.
SECTIONS = (
    ("overlap", "1. Overlap and positivity"),
    ("calibration", "2a. Calibration of the estimated bias (held-out rows)"),
    ("blp", "2b. Best linear predictor test: is there heterogeneity, does the estimate predict it?"),
    ("uplift", "2c. QINI and TOC curves (held-out rows)"),
    ("bias", "3a. The average bias and its distribution"),
    ("groups", "3b. Average bias by group"),
    ("interpretation", "4. Interpretation: where is the judge biased?"),
)
#: Figure name -> the section it belongs to.
FIGURE_SECTION = {
    "propensity_overlap": "overlap", "calibration": "calibration", "uplift_curves": "uplift",
    "bias_distribution": "bias", "group_bias": "groups", "bias_tree": "interpretation",
    "feature_importance": "interpretation",
}


class DiagnosticsReport:
    """Readings, figures and the self-contained HTML report of a :class:`Diagnostics`.

    Parameters
    ----------
    diagnostics : Diagnostics
        The result of :func:`causal_router.validate.diagnose`.
    plots : bool, default=True
        Draw the figures (False: a page of numbers and readings only, faster).

    Attributes
    ----------
    readings : dict of str -> str
        A short reading per section (keys as in ``numbers``): what is fine, what is a warning,
        what to do.
    status : dict of str -> str
        Per section ``"fine"``, ``"warning"`` or ``"info"`` (the colour of its reading).
    figures : dict of str -> matplotlib Figure
        ``propensity_overlap``, ``calibration``, ``uplift_curves``, ``bias_distribution``,
        ``group_bias``, ``bias_tree``, ``feature_importance`` (those that apply; drawn on first
        access; empty with ``plots=False``).
    """

    def __init__(self, diagnostics: Diagnostics, *, plots: bool = True):
        if not isinstance(diagnostics, Diagnostics):
            raise DataError(f"diagnostics must be the Diagnostics that validate.diagnose returns, "
                            f"got {type(diagnostics).__name__}")
        self.diagnostics = diagnostics
        self.plots = bool(plots)
        self.readings, self.status = _readings(diagnostics.numbers)
        self._figures: dict | None = None

    def __repr__(self) -> str:
        return f"DiagnosticsReport({self.diagnostics!r}, plots={self.plots})"

    @property
    def figures(self) -> dict:
        """The report's figures by name (drawn on first access; empty with ``plots=False``)."""
        if self._figures is None:
            self._figures = _figures(self.diagnostics) if self.plots else {}
        return self._figures

    def html(self, extra_sections: Sequence[tuple[str, str]] | None = None, *, dpi: int = 120) -> str:
        """The report as one self-contained HTML page (figures embedded as base64 PNG).

        ``extra_sections`` is a list of (title, html) appended after the diagnostics (the
        extension point for refutation results:
        ``[("Refutation tests", RefutationReport(refutation).html())]``); the html is inserted as is.

        Parameters
        ----------
        extra_sections : sequence of (str, str), optional
            (title, html) of the sections appended after the diagnostics.
        dpi : int, default=120
            Resolution of the embedded figures, dots per inch.

        Returns
        -------
        str
            The whole HTML document.
        """
        return self._page({k: png_bytes(f, dpi) for k, f in self.figures.items()}, _check_sections(extra_sections))

    def save(self, folder: str | os.PathLike, extra_sections: Sequence[tuple[str, str]] | None = None, *,
             dpi: int = 120) -> Path:
        """Write the report's files into ``folder``, each file atomically.

        ``<name>.png`` per figure, ``diagnostics.json`` and ``report.html`` (see :meth:`html`),
        each written with :func:`causal_router.io.atomic_write`.

        Parameters
        ----------
        folder : str or PathLike
            The output folder (created if missing).
        extra_sections : sequence of (str, str), optional
            (title, html) of the sections appended to the page after the diagnostics.
        dpi : int, default=120
            Resolution of the figures, dots per inch.

        Returns
        -------
        Path
            The folder.
        """
        sections = _check_sections(extra_sections)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        images = {}
        for name, fig in self.figures.items():
            images[name] = png_bytes(fig, dpi)
            with atomic_write(folder / f"{name}.png") as tmp:
                tmp.write_bytes(images[name])
        self.diagnostics.to_json(folder / "diagnostics.json")
        with atomic_write(folder / "report.html") as tmp:
            tmp.write_text(self._page(images, sections), encoding="utf-8")
        return folder

    def _page(self, images: dict, extra_sections: list) -> str:
        n = self.diagnostics.numbers
        meta = n["meta"]
        parts = [
            f"<p class='meta'>{meta['n']} rows: {meta['n_gold']} gold, {meta['n_preference']} preference; "
            f"{meta['n_features']} features. Bias model: learner <code>{escape(meta['learner'])}</code>, final stage "
            f"<code>{escape(meta['final_stage'])}</code>. Held-out tests on {meta['n_heldout']} rows "
            f"({meta['n_gold_heldout']} gold), model validated fitted on the other {meta['n_train']}. "
            f"Scale constant c = {meta['scale_constant']:.4g}: {escape(meta['units'])} "
            f"Confidence level {100 * (1 - meta['alpha']):.0f}%. Runtime {meta['runtime_seconds']:.1f} s.</p>",
        ]
        if n["warnings"]:
            items = "".join(f"<li>{escape(w)}</li>" for w in n["warnings"])
            parts.append(f"<div class='reading warning'><b>Warnings</b><ul>{items}</ul></div>")
        else:
            parts.append("<div class='reading fine'><b>No warnings.</b> Overlap is adequate and no held-out "
                         "check contradicts the bias model; read each section below.</div>")
        for key, title in SECTIONS:
            parts.append(f"<h2>{escape(title)}</h2>")
            reading = escape(self.readings.get(key, ""))
            parts.append(f"<div class='reading {self.status.get(key, 'info')}'>{reading}</div>")
            parts.append(_section_table(key, n))
            for name, section in FIGURE_SECTION.items():
                if section == key and name in images:
                    parts.append(figure_html(name, images[name]))
        if extra_sections:
            for title, body in extra_sections:
                parts.append(f"<h2>{escape(title)}</h2>{body}")
        else:
            parts.append("<h2>Refutation tests</h2><p class='meta'>Not part of this report: run "
                         "<code>causal-router diagnose --refute</code>, or pass "
                         "<code>extra_sections=[(\"Refutation tests\", RefutationReport(refute(data)).html())]</code> "
                         "to <code>DiagnosticsReport.save</code>, to add dowhy's refutations of the bias estimate "
                         "(placebo, random common cause, data subset, bootstrap, dummy outcome, "
                         "unobserved common cause).</p>")
        parts.append("<h2>All numbers</h2><details><summary>diagnostics.json</summary><pre>"
                     f"{escape(json.dumps(n, indent=2, allow_nan=False))}</pre></details>")
        return page("causal-router: CATE diagnostics of the preference bias", "\n".join(parts),
                    heading="CATE diagnostics of the preference bias")


def _check_sections(extra_sections) -> list:
    if extra_sections is None:
        return []
    sections = list(extra_sections)
    for item in sections:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            raise DataError(f"extra_sections must be a list of (title, html) string pairs, got {item!r}")
    return sections


# ---------------------------------------------------------------------------- figures
def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _figures(diag: Diagnostics) -> dict:
    """Every figure that applies, detached from pyplot (they stay drawable and savable)."""
    import matplotlib.pyplot as plt

    n, bias = diag.numbers, diag.bias
    z = stats.norm.ppf(1 - n["meta"]["alpha"] / 2)
    figures = {"propensity_overlap": plotting.plot_propensity_overlap(
        bias.propensity_, diag.is_gold[bias.sample_index_], clip=bias.min_propensity_)}
    cal = n["calibration"]
    if cal.get("available"):
        figures["calibration"] = plotting.plot_calibration(
            pd.DataFrame(cal["groups"]), _nan(cal["r_squared"]), average=_nan(cal["heldout_average"]), z=z)
        up = n["uplift"]
        curves = {k: pd.DataFrame(up[k]["curve"]).assign(uniform_critical_value=_nan(up[k]["uniform_critical_value"]))
                  for k in ("qini", "toc")}
        figures["uplift_curves"] = plotting.plot_uplift_curves(
            curves, {k: {c: _nan(up[k][c]) for c in ("coefficient", "std_error", "p_value")} for k in ("qini", "toc")},
            z=z)
    avg = n["bias"]["average"]
    figures["bias_distribution"] = plotting.plot_bias_distribution(
        diag.effect, average=avg["estimate"], lower=avg["lower"], upper=avg["upper"], is_gold=diag.is_gold)
    if n["groups"] is not None:
        # the table is in display order already (categories, or largest group first)
        figures["group_bias"] = plotting.plot_group_bias(
            _group_frame(n["groups"]), average=avg["estimate"], group_name=n["groups"]["by"], order_by_size=False)
    if diag.interpreter is not None:
        figures["bias_tree"] = plotting.plot_bias_tree(diag.interpreter, list(bias.feature_names_in_))
    imp = n["interpretation"]["importance"]
    values = pd.Series(imp.get("values") or {}, dtype=float)
    if values.ne(0).any():
        figures["feature_importance"] = plotting.plot_feature_importance(
            values, signed=imp["signed"], xlabel=imp["label"],
            title=f"Features of the bias model: {imp['label'].split(' (')[0].lower()}")
    for fig in figures.values():
        plt.close(fig)
    return figures


def _group_frame(groups: dict) -> pd.DataFrame:
    return pd.DataFrame(groups["table"]).set_index("group")


# ---------------------------------------------------------------------------- readings
def _readings(numbers: dict) -> tuple[dict, dict]:
    """(reading, status) per section of ``numbers`` (:attr:`Diagnostics.numbers`)."""
    alpha = numbers["meta"]["alpha"]
    text, status = {}, {}
    text["overlap"], status["overlap"] = _read_overlap(numbers["overlap"])
    for key in ("calibration", "blp", "uplift"):
        text[key], status[key] = _read_heldout(key, numbers, alpha)
    text["bias"], status["bias"] = _read_bias(numbers["bias"], alpha)
    if numbers["groups"] is None:
        text["groups"] = ("No groups given: pass groups= (or --group-by COLUMN) to average the bias by "
                          "category or model pair.")
        status["groups"] = "info"
    else:
        g = numbers["groups"]
        text["groups"], status["groups"] = _read_groups(_group_frame(g), g["equality_test"], g["by"], alpha)
    text["interpretation"], status["interpretation"] = _read_interpretation(numbers["interpretation"])
    return text, status


def _read_overlap(ov: dict):
    problems = overlap_problems(ov)
    facts = (f"two-sample AUC {ov['classifier_auc']:.3f} (p = {ov['classifier_p_value']:.3g}; 0.5 = "
             f"indistinguishable), gold ESS {ov['gold_ess']:.0f} of {ov['n_gold']} "
             f"({100 * ov['gold_ess_share']:.0f}%), {100 * ov['clipped_share']:.1f}% of propensities clipped")
    if problems:
        warning = "Poor overlap: " + "; ".join(problems) + "."
        return (f"Warning. {warning} The bias is then extrapolated from few gold rows to queries the gold "
                "standard rarely sees, and doubly robust weights 1/p explode. What to do: send a random (or "
                "stratified) sample of queries to the gold standard, add gold rows where the propensity is low, "
                "or restrict routing to the region both sources cover."), "warning"
    detail = ""
    if ov["classifier_p_value"] < 0.05:
        detail = (" The two-sample test detects a difference, but it is small; check the propensity "
                  "figure for regions without gold rows.")
    return (f"Fine: {facts}. Gold and preference queries come from overlapping populations, so "
            f"positivity is plausible.{detail}"), "fine"


def _read_heldout(key: str, numbers: dict, alpha: float):
    section = numbers[key]
    if not section.get("available"):
        return f"Skipped: {section['reason']}.", "info"
    blp = numbers["blp"]
    hetero = blp["heterogeneity_detected"]
    if key == "blp":
        s, se, p = blp["slope"], blp["slope_std_error"], blp["p_value"]
        if hetero:
            scale_note = ("close to 1: the estimated differences are on the right scale"
                          if blp["p_value_slope_is_one"] >= alpha else
                          ("below 1: the estimated differences are exaggerated; shrink them (a simpler final stage)"
                           if s < 1 else "above 1: the estimated differences are understated"))
            return (f"Fine: the estimated bias predicts the held-out variation of the bias: BLP slope {s:.2f} "
                    f"(se {se:.2f}, one-sided p = {p:.2g}), {scale_note}. There is heterogeneity and the "
                    "model captures it, so a query-dependent correction is justified."), "fine"
        return (f"No evidence that the bias varies in a way the model captures: BLP slope {s:.2f} (se {se:.2f}, "
                f"one-sided p = {p:.2g} >= {alpha}). Either the bias is (nearly) constant or the model cannot "
                "find its variation. What to do: correct with one global bias (learner='auto' then picks the "
                "constant final stage) or collect more gold rows before trusting query-level differences."), "info"
    if key == "calibration":
        r2 = section["r_squared"]
        base = (f"Calibration R^2 = {r2:.2f} over {section['n_groups']} quantile groups of the estimated bias "
                "(1 = group means match the doubly robust means; 0 = no better than the overall average).")
        if not hetero:
            return (base + " With no heterogeneity detected by the BLP test the groups differ by noise only, so "
                    "this R^2 says little; read it together with the BLP test."), "info"
        if r2 >= 0.5:
            return base + " Fine: the estimated bias is well calibrated across its range.", "fine"
        if r2 >= 0:
            return (base + " Partly calibrated: the ordering is right but the group means are off; check "
                    "the figure for over- or under-stated extremes."), "info"
        return (base + f" Warning: worse than a constant. The groups sit {section['level_offset']:+.3g} from the "
                "diagonal on average: if the points run parallel to it, the level (average) of the estimate is "
                "off while its ordering holds (ranking is unharmed, corrected labels are shifted); otherwise the "
                "differences are miscalibrated: use a simpler final stage or a global correction."), "warning"
    qini, toc = section["qini"], section["toc"]
    ok = qini["p_value"] < alpha and toc["p_value"] < alpha
    text = (f"QINI area {qini['coefficient']:.3g} (se {qini['std_error']:.2g}, one-sided p = {qini['p_value']:.2g}); "
            f"TOC area {toc['coefficient']:.3g} (se {toc['std_error']:.2g}, p = {toc['p_value']:.2g}). A positive area "
            "means the queries the model ranks as most biased are indeed more biased than average (gold scale).")
    if ok:
        return "Fine: " + text, "fine"
    return (text + " Not significant here: ranking queries by the estimated bias does no better than a random "
            "order on the held-out rows."), ("info" if not hetero else "warning")


def _read_bias(b: dict, alpha: float):
    a, e = b["average"], b["estimated"]
    correction = b.get("correction")
    used = ""
    if correction:
        text = correction["reading"]
        used = "Correction: " + text[0].upper() + text[1:] + ". "
    judge = b.get("judge")
    if judge:
        text = judge["reading"]
        used += "Judge: " + text[0].upper() + text[1:] + ". "
    level = f"{100 * (1 - alpha):.0f}%"
    if a["lower"] > 0:
        sign = ("positive: on average the judge under-rates the primary model's gain relative to the gold "
                "standard, so uncorrected preference labels undervalue the primary model")
    elif a["upper"] < 0:
        sign = ("negative: on average the judge over-rates the primary model's gain relative to the gold "
                "standard, so uncorrected preference labels overvalue the primary model")
    else:
        sign = "not distinguishable from zero on average"
    return (f"{used}Average bias {a['estimate']:.3g} ({level} CI [{a['lower']:.3g}, {a['upper']:.3g}], gold scale): "
            f"{sign}. Per query the estimated bias ranges from {e['quantiles']['q5']:.3g} to "
            f"{e['quantiles']['q95']:.3g} (5th to 95th percentile, sd {e['sd']:.3g}); "
            f"{100 * e['share_positive']:.0f}% of queries have a positive estimate. Trust the spread only as "
            "far as the held-out tests above support it."), "info"


def _read_groups(table: pd.DataFrame, test: dict, name: str, alpha: float):
    top = table.sort_values("estimate")
    lo, hi = top.iloc[0], top.iloc[-1]
    text = (f"Average bias by {name} over {len(table)} groups: lowest {top.index[0]} {lo['estimate']:.3g} "
            f"[{lo['lower']:.3g}, {lo['upper']:.3g}], highest {top.index[-1]} {hi['estimate']:.3g} "
            f"[{hi['lower']:.3g}, {hi['upper']:.3g}].")
    if test["p_value"] is None:
        return text + " Too few groups with gold rows to test whether they differ.", "info"
    if test["p_value"] < alpha:
        return (text + f" The groups differ (chi-square p = {test['p_value']:.2g}): a per-group correction "
                "(group indicators among the features) is worthwhile."), "fine"
    return (text + f" No evidence that the groups differ (chi-square p = {test['p_value']:.2g}); intervals of "
            "groups with few gold rows are wide."), "info"


def _read_interpretation(it: dict):
    tree = it["tree"]
    if tree is None:
        return "The estimated bias is the same for every query: nothing to interpret beyond its average.", "info"
    leaves = tree["leaves"]
    hi, lo = leaves[-1], leaves[0]
    parts = [f"The estimated bias (gold minus preference) is highest where {hi['rule']} "
             f"({100 * hi['share']:.0f}% of queries, mean {hi['mean_bias']:.3g}) and lowest where "
             f"{lo['rule']} ({100 * lo['share']:.0f}%, mean {lo['mean_bias']:.3g}); "
             f"a depth-{tree['max_depth']} tree "
             f"reproduces {100 * max(tree['r_squared'], 0):.0f}% of the estimated bias's variance."]
    imp = it["importance"]
    if imp.get("values"):
        top = list(imp["values"].items())[:3]
        fmt = ", ".join(f"{k} ({v:+.3g})" if imp["signed"] else f"{k} ({v:.3g})" for k, v in top)
        parts.append(f"Features that move the estimate most: {fmt} [{imp['label']}].")
    if it["top_queries"]:
        parts.append("The queries with the largest positive and negative estimated bias are listed below; read "
                     "them to name what the judge gets wrong.")
    parts.append("These describe the model, not causal mechanisms: trust them as far as the held-out tests do.")
    return " ".join(parts), "info"


# ---------------------------------------------------------------------------- tables
def _section_table(key: str, n: dict) -> str:
    s = n.get(key)
    if key == "overlap":
        q = s["propensity_quantiles"]
        return kv_table([
            ("two-sample classifier AUC (out-of-fold)", s["classifier_auc"]),
            ("two-sample p-value (Mann-Whitney, one-sided)", s["classifier_p_value"]),
            ("propensity model AUC (out-of-fold)", s["propensity_auc"]),
            ("gold ESS under 1/p weights", f"{s['gold_ess']:.1f} of {s['n_gold']} ({100 * s['gold_ess_share']:.0f}%)"),
            ("queries (clusters of the averages)", f"{s['n_clusters']} from {s['n_rows']} rows"),
            ("preference ESS under 1/(1-p) weights",
             f"{s['preference_ess']:.1f} of {s['n_preference']} ({100 * s['preference_ess_share']:.0f}%)"),
            ("clipped propensities",
             f"{s['n_clipped']} ({100 * s['clipped_share']:.2f}%) at {s['min_propensity']:.3g}"),
            ("propensity of gold rows (median, 1%-99%)",
             f"{q['gold'][3]:.3g} ({q['gold'][1]:.3g} - {q['gold'][5]:.3g})"),
            ("propensity of preference rows (median, 1%-99%)",
             f"{q['preference'][3]:.3g} ({q['preference'][1]:.3g} - {q['preference'][5]:.3g})"),
            ("poor-overlap rule", f"AUC > {OVERLAP_MAX_AUC}, or gold ESS < {OVERLAP_MIN_ESS_SHARE:.0%} of gold rows, "
                                  f"or clipped > {OVERLAP_MAX_CLIPPED_SHARE:.0%}"),
        ])
    if s is None or (isinstance(s, dict) and s.get("available") is False):
        return ""
    if key == "calibration":
        g = s["groups"]
        recs = [dict(zip(g, vals)) for vals in zip(*g.values())]
        return (kv_table([("calibration R^2", s["r_squared"]), ("held-out average bias", s["heldout_average"])])
                + grid_table(recs, ["group", "predicted", "observed", "std_error"],
                             ["group", "mean estimated bias", "mean doubly robust bias", "std. error"]))
    if key == "blp":
        return kv_table([("slope (HC1)", s["slope"]), ("slope std. error", s["slope_std_error"]),
                         ("one-sided p-value (slope > 0)", s["p_value"]),
                         ("p-value of slope = 1", s["p_value_slope_is_one"]),
                         ("heterogeneity detected", str(s["heterogeneity_detected"])),
                         ("econml slope / se / two-sided p",
                          f"{s['slope_econml']:.3g} / {s['slope_std_error_econml']:.3g} / {s['p_value_econml']:.3g}")])
    if key == "uplift":
        recs = [{"curve": k.upper(), **{c: s[k][c] for c in ("coefficient", "std_error", "p_value",
                                                             "uniform_critical_value")}} for k in ("qini", "toc")]
        return grid_table(recs, ["curve", "coefficient", "std_error", "p_value", "uniform_critical_value"],
                          ["curve", "area (gold scale)", "std. error", "one-sided p", "uniform band multiplier"])
    if key == "bias":
        a, e = s["average"], s["estimated"]
        pairs = [("average bias (all rows, doubly robust)", a["estimate"]), ("std. error", a["std_error"]),
                 ("interval", f"[{a['lower']:.4g}, {a['upper']:.4g}]"),
                 ("queries behind it (clusters)", f"{int(s['n_clusters'])}")]
        if "heldout_average" in s:
            h = s["heldout_average"]
            pairs.append(("average bias on held-out rows (DRTester)", f"{h['estimate']:.4g} [{h['lower']:.4g}, "
                                                                      f"{h['upper']:.4g}]"))
        c = s.get("correction")
        if c:
            slope = ("n/a (the stack is the constant)" if c["slope"] is None
                     else f"{c['slope']:.3g} (se {c['slope_std_error']:.3g}, z "
                          f"{'n/a' if c['z'] is None else format(c['z'], '.2f')})")
            pairs += [("heterogeneous part used (share of the stack's departure from the constant)",
                       f"{100 * c['share']:.0f}%"),
                      ("held-out calibration slope of that departure", slope),
                      ("out-of-fold R-loss: constant / stack (gain, se)",
                       f"{c['r_loss_constant']:.4g} / {c['r_loss_stack']:.4g} ({c['r_loss_gain']:.3g}, "
                       f"{c['r_loss_gain_std_error']:.2g})")]
        j = s.get("judge")
        if j:
            pairs += [("judge weight (MetaRouter's preference_weight='auto')", f"{j['weight']:.2f}"),
                      ("judge's best weight beside the gold rows' model, held out",
                       f"{j['slope']:.3g} (se {_num(j['std_error'])}, z {_num(j['z'])})"),
                      ("judge's correlation with gold labels (PPI's 1/sqrt(n-2))",
                       f"{_num(j['judge_correlation'])} ({_num(j['ppi_threshold'])})"),
                      ("held-out MSE: gold rows' model / judge / blend",
                       f"{_num(j['mse_gold_only'])} / {_num(j['mse_judge'])} / {_num(j['mse_blend'])}")]
        pairs += [("estimated bias: sd across queries", e["sd"]),
                  ("estimated bias: 5% / 50% / 95%", f"{e['quantiles']['q5']:.3g} / {e['quantiles']['q50']:.3g} / "
                                                     f"{e['quantiles']['q95']:.3g}"),
                  ("share of queries with positive estimate", e["share_positive"])]
        return kv_table(pairs)
    if key == "groups":
        return grid_table(s["table"][:50], ["group", "n", "n_gold", "estimate", "lower", "upper", "model_mean"],
                          [s["by"], "rows", "gold rows", "average bias", "lower", "upper", "model's mean"])
    if key == "interpretation":
        html_parts = []
        if s["tree"]:
            html_parts.append(grid_table(s["tree"]["leaves"], ["rule", "n", "share", "mean_bias", "sd_bias"],
                                         ["leaf", "rows", "share", "mean estimated bias", "sd"]))
        if s["top_queries"]:
            cols = ["query_id", "text", "estimated_bias", "source"]
            for k, title in (("largest_positive", "Largest positive estimated bias (judge under-rates the primary)"),
                             ("largest_negative", "Largest negative estimated bias (judge over-rates the primary)")):
                html_parts.append(f"<h3>{escape(title)}</h3>" + grid_table(s["top_queries"][k], cols))
        return "".join(html_parts)
    return ""


def _num(value, fmt: str = ".3g") -> str:
    """A number of the saved numbers (None where it was NaN) as text."""
    return "n/a" if value is None else format(value, fmt)
