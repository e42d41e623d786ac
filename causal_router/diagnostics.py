"""CATE diagnostics of the preference bias: can the estimated bias be trusted before routing on it?

:func:`diagnose` fits the bias model and checks it in four ways; :class:`Diagnostics` holds every
number, figure and a short reading of each, and writes a self-contained report
(``causal-router diagnose`` on the command line).

1. Overlap and positivity (all rows, cross-fitted): the out-of-fold propensity p(s) of the bias
   model on gold and preference rows, the share of clipped propensities, the effective sample
   size (ESS) of the gold rows under weights 1/p, and a classifier two-sample test (out-of-fold
   AUC of a LightGBM classifier telling gold from preference rows; one-sided Mann-Whitney
   p-value of its scores, i.e. the null distribution of the AUC given the out-of-fold scores).
   Poor overlap raises :class:`OverlapWarning` (rule in :func:`diagnose`).
2. Validity (sample splitting): the bias model is fitted on a training part (stratified by
   source) and econml's :class:`~econml.validate.DRTester` checks it on the held-out part with
   doubly robust outcomes whose nuisances are fitted on the training part: calibration by
   quantile groups (R^2), the best linear predictor (BLP) test, QINI and TOC curves with
   multiplier-bootstrap bands.
3. The bias: the average with a confidence interval, group averages (doubly robust
   pseudo-outcomes of the model fitted on all rows) and the distribution of the estimated bias.
4. Interpretation: econml's :class:`~econml.cate_interpreter.SingleTreeCateInterpreter`, feature
   importances of the bias model and, with texts, the queries of largest positive / negative bias.

Units. econml sees the outcome on the preference scale (gold gains times the bias model's fitted
constant ``scale_``); every bias number reported here is divided by it and is on the gold scale:
the gold-standard gain minus the preference gain, in gold units (positive: the judge under-rates
the primary model's gain). Dimensionless numbers (AUC, R^2, BLP slope, p-values) are unchanged.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

from ._validation import DataError
from .bias import BiasEstimator
from .data import EvalData, pooled_outcome
from ._utils import as_seed, seeded_global_random, to_jsonable
from .models import default_classifier, default_propensity, default_regressor

__all__ = ["diagnose", "heldout_tests", "Diagnostics", "OverlapWarning", "run_cli", "NUMBER_KEYS",
           "OVERLAP_MAX_AUC", "OVERLAP_MIN_ESS_SHARE", "OVERLAP_MAX_CLIPPED_SHARE"]

logger = logging.getLogger("causal_router")

#: Top-level keys of :attr:`Diagnostics.numbers` (and of ``diagnostics.json``).
NUMBER_KEYS = ("meta", "overlap", "calibration", "blp", "uplift", "bias", "groups", "interpretation",
               "warnings")
#: Poor overlap when a classifier tells gold from preference rows with AUC above this ...
OVERLAP_MAX_AUC = 0.8
#: ... or the gold rows' effective sample size under 1/p weights is below this share of them ...
OVERLAP_MIN_ESS_SHARE = 0.5
#: ... or more than this share of the propensities were clipped.
OVERLAP_MAX_CLIPPED_SHARE = 0.05
_MIN_GOLD_PER_PART = 10
_MIN_GOLD_PER_GROUP = 5
_TEXT_CHARS = 300

_SECTIONS = (
    ("overlap", "1. Overlap and positivity"),
    ("calibration", "2a. Calibration of the estimated bias (held-out rows)"),
    ("blp", "2b. Best linear predictor test: is there heterogeneity, does the estimate predict it?"),
    ("uplift", "2c. QINI and TOC curves (held-out rows)"),
    ("bias", "3a. The average bias and its distribution"),
    ("groups", "3b. Average bias by group"),
    ("interpretation", "4. Interpretation: where is the judge biased?"),
)
_FIGURE_SECTION = {
    "propensity_overlap": "overlap", "calibration": "calibration", "uplift_curves": "uplift",
    "bias_distribution": "bias", "group_bias": "groups", "bias_tree": "interpretation",
    "feature_importance": "interpretation",
}


class OverlapWarning(UserWarning):
    """Gold and preference queries overlap poorly: the bias is extrapolated from few gold rows."""


# ---------------------------------------------------------------------------- result object
@dataclass
class Diagnostics:
    """Result of :func:`diagnose`.

    Attributes
    ----------
    numbers : dict
        Every number, JSON-serialisable (NaN as None). Top-level keys (:data:`NUMBER_KEYS`):
        ``meta`` (sizes, learner, scale constant, seed, runtime), ``overlap``, ``calibration``,
        ``blp``, ``uplift`` (QINI and TOC), ``bias`` (average and distribution), ``groups``
        (None without groups), ``interpretation`` (tree leaves, importances, top queries) and
        ``warnings`` (list of str). Bias values are on the gold scale.
    figures : dict of str -> matplotlib Figure
        ``propensity_overlap``, ``calibration``, ``uplift_curves``, ``bias_distribution``,
        ``group_bias``, ``bias_tree``, ``feature_importance`` (those that apply).
    readings : dict of str -> str
        A short reading per section (keys as in ``numbers``): what is fine, what is a warning,
        what to do.
    bias : BiasEstimator fitted on all rows (the model whose bias is described).
    bias_heldout : BiasEstimator fitted on the training part only (the model validated).
    tester : econml DRTester fitted on the held-out part (None if the model is constant).
    interpreter : econml SingleTreeCateInterpreter (None if the model is constant).
    status : dict of str -> str
        Per section ``"fine"``, ``"warning"`` or ``"info"`` (the colour of its reading).
    """

    numbers: dict
    figures: dict
    readings: dict
    bias: BiasEstimator | None = None
    bias_heldout: BiasEstimator | None = None
    tester: Any = None
    interpreter: Any = None
    status: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        meta = self.numbers.get("meta", {})
        return (f"Diagnostics(n={meta.get('n')}, n_gold={meta.get('n_gold')}, "
                f"warnings={len(self.numbers.get('warnings', []))}, figures={sorted(self.figures)})")

    @property
    def warnings(self) -> list[str]:
        return list(self.numbers.get("warnings", []))

    def summary(self) -> str:
        """A few lines with the key numbers and the warnings."""
        n = self.numbers
        meta, ov, bias = n["meta"], n["overlap"], n["bias"]
        lines = [
            f"CATE diagnostics of the preference bias: {meta['n']} rows ({meta['n_gold']} gold), learner "
            f"{meta['learner']!r} (final stage {meta['final_stage']}), scale constant {meta['scale_constant']:.4g}",
            f"  average bias (gold minus preference, gold scale): {bias['average']['estimate']:.4f} "
            f"[{bias['average']['lower']:.4f}, {bias['average']['upper']:.4f}]",
            f"  overlap: two-sample AUC {ov['classifier_auc']:.3f} (p = {ov['classifier_p_value']:.3g}), "
            f"gold ESS {ov['gold_ess']:.0f} of {ov['n_gold']} ({100 * ov['gold_ess_share']:.0f}%), "
            f"clipped {100 * ov['clipped_share']:.1f}%",
        ]
        cal, blp = n["calibration"], n["blp"]
        if cal.get("available"):
            lines.append(f"  held-out: calibration R^2 {_fmt(cal['r_squared'], '.3f')}, BLP slope "
                         f"{_fmt(blp['slope'], '.3f')} (se {_fmt(blp['slope_std_error'], '.3f')}, "
                         f"one-sided p = {_fmt(blp['p_value'], '.3g')}); heterogeneity detected: "
                         f"{blp['heterogeneity_detected']}")
            up = n["uplift"]
            q, c = up["qini"], up["toc"]
            lines.append(f"  QINI area {_fmt(q['coefficient'], '.3g')} (p = {_fmt(q['p_value'], '.3g')}), "
                         f"TOC area {_fmt(c['coefficient'], '.3g')} (p = {_fmt(c['p_value'], '.3g')})")
        else:
            lines.append(f"  held-out tests skipped: {cal.get('reason')}")
        for w in n["warnings"]:
            lines.append(f"  WARNING: {w}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ output
    def save(self, folder, extra_sections: Sequence[tuple[str, str]] | None = None, *, dpi: int = 120) -> Path:
        """Write ``<name>.png`` per figure, ``diagnostics.json`` and ``report.html`` into ``folder``.

        ``extra_sections`` is a list of (title, html) appended to the report after the
        diagnostics (the extension point for refutation results); the html is
        inserted as is. The report embeds the figures (base64), so it is self-contained.
        Returns the folder as a Path.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if extra_sections is not None:
            extra_sections = list(extra_sections)
            for item in extra_sections:
                if not (isinstance(item, (tuple, list)) and len(item) == 2
                        and all(isinstance(s, str) for s in item)):
                    raise ValueError(f"extra_sections must be a list of (title, html) string pairs, got {item!r}")
        images = {}
        for name, fig in self.figures.items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
            data = buf.getvalue()
            (folder / f"{name}.png").write_bytes(data)
            images[name] = base64.b64encode(data).decode("ascii")
        (folder / "diagnostics.json").write_text(json.dumps(self.numbers, indent=2, allow_nan=False))
        (folder / "report.html").write_text(self._html(images, extra_sections or []), encoding="utf-8")
        return folder

    def _html(self, images: dict, extra_sections: list) -> str:
        n = self.numbers
        meta = n["meta"]
        parts = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<title>causal-router: CATE diagnostics of the preference bias</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>CATE diagnostics of the preference bias</h1>",
            f"<p class='meta'>{meta['n']} rows: {meta['n_gold']} gold, {meta['n_preference']} preference; "
            f"{meta['n_features']} features. Bias model: learner <code>{_e(meta['learner'])}</code>, final stage "
            f"<code>{_e(meta['final_stage'])}</code>. Held-out tests on {meta['n_heldout']} rows "
            f"({meta['n_gold_heldout']} gold), model validated fitted on the other {meta['n_train']}. "
            f"Scale constant c = {meta['scale_constant']:.4g}: {_e(meta['units'])} "
            f"Confidence level {100 * (1 - meta['alpha']):.0f}%. Runtime {meta['runtime_seconds']:.1f} s.</p>",
        ]
        if n["warnings"]:
            items = "".join(f"<li>{_e(w)}</li>" for w in n["warnings"])
            parts.append(f"<div class='reading warning'><b>Warnings</b><ul>{items}</ul></div>")
        else:
            parts.append("<div class='reading fine'><b>No warnings.</b> Overlap is adequate and no held-out "
                         "check contradicts the bias model; read each section below.</div>")
        for key, title in _SECTIONS:
            parts.append(f"<h2>{_e(title)}</h2>")
            status = self.status.get(key, "info")
            parts.append(f"<div class='reading {status}'>{_e(self.readings.get(key, ''))}</div>")
            parts.append(_section_table(key, n))
            for name, section in _FIGURE_SECTION.items():
                if section == key and name in images:
                    parts.append(f"<figure><img alt='{_e(name)}' src='data:image/png;base64,{images[name]}'>"
                                 f"<figcaption>{_e(name)}.png</figcaption></figure>")
        if extra_sections:
            for title, body in extra_sections:
                parts.append(f"<h2>{_e(title)}</h2>{body}")
        else:
            parts.append("<h2>Refutation tests</h2><p class='meta'>Not part of this report: run "
                         "<code>causal-router diagnose --refute</code>, or pass "
                         "<code>extra_sections=[(\"Refutation tests\", refute(data).html())]</code> to "
                         "<code>Diagnostics.save</code>, to add dowhy's refutations of the bias estimate "
                         "(placebo, random common cause, data subset, bootstrap, dummy outcome, "
                         "unobserved common cause).</p>")
        parts.append("<h2>All numbers</h2><details><summary>diagnostics.json</summary><pre>"
                     f"{_e(json.dumps(n, indent=2, allow_nan=False))}</pre></details>")
        parts.append("</body></html>")
        return "\n".join(parts)


# ---------------------------------------------------------------------------- main entry point
def diagnose(
    data: EvalData,
    bias: BiasEstimator | None = None,
    *,
    groups=None,
    texts=None,
    test_size: float = 0.5,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    n_groups: int = 4,
    tree_depth: int = 2,
    top_k: int = 10,
    plots: bool = True,
    n_jobs: int | None = 1,
    progress: bool = True,
    random_state=None,
) -> Diagnostics:
    """Diagnose the preference-bias (CATE) model on ``data``.

    Parameters
    ----------
    data : EvalData with gold and preference rows (n rows, d features).
    bias : BiasEstimator, optional
        Its parameters define the model (it is cloned and refitted, never modified). Default
        ``BiasEstimator("r", random_state=random_state)``.
    groups : array-like of shape (n,), optional
        Group label per row (category, model pair, ...) for group averages; a pandas Series
        lends its name. Default ``data.pair`` when present, else no group section.
    texts : array-like of str of shape (n,), optional
        Query texts for the table of largest positive / negative bias. Default ``data.text``.
    test_size : float in (0, 1)
        Held-out share (stratified by source) for the DRTester checks.
    alpha : float in (0, 1)
        Tests at level alpha, intervals at 1 - alpha (the uniform bands of the uplift curves
        are econml's, 95%).
    n_bootstrap : int
        Multiplier-bootstrap draws of the QINI / TOC uniform bands.
    n_groups : int
        Quantile groups of the calibration test (econml's default 4).
    tree_depth : int
        Depth of the interpretation tree (leaves hold at least 5% of the rows).
    top_k : int
        Queries listed at each end of the bias distribution (when texts are known).
    plots : bool
        Draw the figures (False: numbers and readings only, faster).
    n_jobs : int or None
        1 (default): sequential. Otherwise the two fits of the bias model run side by side
        (joblib processes) and the two-sample classifier's cross-validation uses n_jobs.
    progress : bool
        Show a progress bar over the steps.
    random_state : int, Generator or None
        Seeds the split, the classifier, DRTester's bootstrap and the bias model when the bias
        model has no random_state of its own.

    Returns
    -------
    Diagnostics

    What is fitted. The bias model is fitted twice: on all rows (overlap numbers from its
    out-of-fold propensities, average and group bias from its doubly robust pseudo-outcomes,
    distribution and interpretation of its estimate) and on the training part only (validated
    on the held-out part by DRTester: outcome models per source and a propensity model fitted on
    the training part, the bias model's ``model_y`` / ``model_t`` when it names them, else the
    package defaults (LightGBM, regularised logistic regression); calibration, BLP, QINI/TOC).

    Overlap rule (:class:`OverlapWarning`, also listed in ``numbers["warnings"]``): overlap is
    poor when (a) the two-sample classifier's AUC or the propensity model's AUC exceeds
    :data:`OVERLAP_MAX_AUC` (0.8), or (b) the gold rows' ESS under weights 1/p is below
    :data:`OVERLAP_MIN_ESS_SHARE` (50%) of the gold rows, or (c) more than
    :data:`OVERLAP_MAX_CLIPPED_SHARE` (5%) of the propensities were clipped.

    BLP test: OLS of the held-out doubly robust outcomes on 1 and the centred estimated bias
    with heteroskedasticity-robust (HC1) standard errors; heterogeneity is claimed when the
    slope is positive with one-sided p < alpha (econml's own classical two-sided p-value is
    also reported).

    Raises
    ------
    ValueError (DataError) for bad arguments, naming the argument; OverlapError (from the bias
    model) when gold and preference queries do not overlap at all.
    """
    t_start = time.perf_counter()
    _check_args(data, bias, test_size, alpha, n_bootstrap, n_groups, tree_depth, top_k)
    n = len(data)
    group_labels, group_name, group_order = _group_labels(groups, data, n)
    text_values = _texts(texts, data, n)
    seed = as_seed(random_state)
    template = _template(bias, seed)

    t = data.treatment
    train, held = _split(data, test_size, seed)

    steps = _Steps(progress, 6)
    numbers: dict = {}
    figures: dict = {}
    readings: dict = {}
    status: dict = {}
    warn_list: list[str] = []

    steps.next("bias models (all rows; training part)")
    if n_jobs is not None and n_jobs == 1:
        est_all = clone(template).fit(data)
        est_train = clone(template).fit(data.subset(train))
    else:  # the two fits are independent: run them side by side
        from joblib import Parallel, delayed

        est_all, est_train = Parallel(n_jobs=min(2, n_jobs) if n_jobs and n_jobs > 0 else 2)(
            delayed(_fit)(clone(template), part) for part in (data, data.subset(train)))
    scale = float(est_all.scale_)
    X = data.X

    steps.next("overlap")
    numbers["overlap"] = _overlap(data, est_all, seed, n_jobs)
    readings["overlap"], status["overlap"], poor = _read_overlap(numbers["overlap"])
    if poor:
        warn_list.append(poor)
        warnings.warn(poor, OverlapWarning, stacklevel=2)
    if plots:
        figures["propensity_overlap"] = _close(_plotting().plot_propensity_overlap(
            est_all.propensity_, data.is_gold, clip=est_all.min_propensity_))

    steps.next("held-out tests (econml DRTester)")
    tester, held_numbers = _heldout_tests(data, est_train, train, held, seed, alpha, n_bootstrap, n_groups)
    numbers.update(held_numbers)
    for key in ("calibration", "blp", "uplift"):
        readings[key], status[key] = _read_heldout(key, numbers, alpha)
    warn_list += _heldout_warnings(numbers, alpha)
    if plots and numbers["calibration"].get("available"):
        cal = numbers["calibration"]
        z = stats.norm.ppf(1 - alpha / 2)
        figures["calibration"] = _close(_plotting().plot_calibration(
            pd.DataFrame(cal["groups"]), _nan(cal["r_squared"]), average=_nan(cal["heldout_average"]), z=z))
        up = numbers["uplift"]
        curves = {k: pd.DataFrame(up[k]["curve"]).assign(uniform_critical_value=up[k]["uniform_critical_value"])
                  for k in ("qini", "toc")}
        figures["uplift_curves"] = _close(_plotting().plot_uplift_curves(
            curves, {k: {c: _nan(up[k][c]) for c in ("coefficient", "std_error", "p_value")} for k in ("qini", "toc")},
            z=z))

    steps.next("average and distribution of the bias")
    effect = est_all.effect(X)
    numbers["bias"] = _bias_numbers(est_all, effect, alpha, numbers)
    readings["bias"], status["bias"] = _read_bias(numbers["bias"], alpha)
    if plots:
        avg = numbers["bias"]["average"]
        figures["bias_distribution"] = _close(_plotting().plot_bias_distribution(
            effect, average=avg["estimate"], lower=avg["lower"], upper=avg["upper"], is_gold=data.is_gold))

    steps.next("group averages")
    if group_labels is None:
        numbers["groups"] = None
        readings["groups"] = ("No groups given: pass groups= (or --group-by COLUMN) to average the bias by "
                              "category or model pair.")
        status["groups"] = "info"
    else:
        table, test = _group_table(est_all.pseudo_outcomes_, effect, data.is_gold, group_labels, alpha, group_order)
        numbers["groups"] = {"by": group_name, "table": _records(table, index_name="group"), "equality_test": test,
                             "n_groups": int(len(table))}
        readings["groups"], status["groups"] = _read_groups(table, test, group_name, alpha)
        few = table.index[table["n_gold"] < _MIN_GOLD_PER_GROUP].tolist()
        if few:
            warn_list.append(f"{len(few)} of {len(table)} groups by {group_name} have fewer than "
                             f"{_MIN_GOLD_PER_GROUP} gold rows: their averages rest on the model, not on gold labels")
        if plots:
            figures["group_bias"] = _close(_plotting().plot_group_bias(
                table, average=numbers["bias"]["average"]["estimate"], group_name=group_name,
                order_by_size=group_order is None))

    steps.next("interpretation")
    interp_numbers, interpreter, importances = _interpretation(
        est_all, X, effect, data, text_values, tree_depth, top_k, seed)
    numbers["interpretation"] = interp_numbers
    readings["interpretation"], status["interpretation"] = _read_interpretation(interp_numbers)
    if plots and interpreter is not None:
        figures["bias_tree"] = _close(_plotting().plot_bias_tree(interpreter, data.feature_names))
    if plots and importances is not None and np.any(importances.to_numpy() != 0):
        imp = interp_numbers["importance"]
        figures["feature_importance"] = _close(_plotting().plot_feature_importance(
            importances, signed=imp["signed"], xlabel=imp["label"],
            title=f"Features of the bias model: {imp['label'].split(' (')[0].lower()}"))
    steps.close()

    numbers["warnings"] = warn_list
    numbers["meta"] = {
        "n": n, "n_gold": data.n_gold, "n_preference": data.n_preference, "n_features": int(X.shape[1]),
        "n_train": int(len(train)), "n_heldout": int(len(held)), "n_gold_heldout": int(t[held].sum()),
        "learner": est_all.learner, "final_stage": est_all.final_stage_, "scale_constant": scale,
        "scale_method": est_all.scale, "alpha": alpha, "test_size": test_size, "n_bootstrap": n_bootstrap,
        "random_state": seed,
        "units": "bias values are gold-standard minus preference gain on the gold scale (econml's "
                 "preference-scale numbers divided by c); AUC, R^2, slopes and p-values have no unit.",
        "runtime_seconds": time.perf_counter() - t_start,
    }
    numbers = {k: to_jsonable(numbers[k]) for k in NUMBER_KEYS}
    logger.info("diagnostics done in %.1f s", numbers["meta"]["runtime_seconds"])
    return Diagnostics(numbers=numbers, figures=figures, readings=readings, bias=est_all,
                       bias_heldout=est_train, tester=tester, interpreter=interpreter, status=status)


def _template(bias: BiasEstimator | None, seed) -> BiasEstimator:
    """An unfitted copy of the bias model, seeded by ``seed`` unless it has its own random_state."""
    if bias is None:
        return BiasEstimator("r", random_state=seed)
    template = clone(bias)
    if template.random_state is None:
        template.set_params(random_state=seed)
    return template


def _fit(est: BiasEstimator, data: EvalData) -> BiasEstimator:
    return est.fit(data)


def heldout_tests(
    data: EvalData,
    bias: BiasEstimator | None = None,
    *,
    test_size: float = 0.5,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    n_groups: int = 4,
    random_state=None,
) -> dict:
    """Only the held-out checks of :func:`diagnose` (no overlap, figures or interpretation).

    Fits ``bias`` (default ``BiasEstimator("r")``, cloned) on a training part stratified by
    source and runs econml's DRTester on the rest. Returns a dict with the keys
    ``"calibration"``, ``"blp"`` and ``"uplift"`` of :attr:`Diagnostics.numbers` (same
    contents; JSON-serialisable). For repeated-sampling checks of the tests themselves.
    """
    _check_args(data, bias, test_size, alpha, n_bootstrap, n_groups, 1, 1)
    seed = as_seed(random_state)
    template = _template(bias, seed)
    train, held = _split(data, test_size, seed)
    est_train = clone(template).fit(data.subset(train))
    _, numbers = _heldout_tests(data, est_train, train, held, seed, alpha, n_bootstrap, n_groups)
    return to_jsonable(numbers)


def _split(data: EvalData, test_size: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (training, held-out) row indices, stratified by source."""
    t = data.treatment
    train, held = train_test_split(np.arange(len(data)), test_size=test_size, stratify=t, random_state=seed)
    train, held = np.sort(train), np.sort(held)
    for name, rows in (("training", train), ("held-out", held)):
        k = int(t[rows].sum())
        if k < _MIN_GOLD_PER_PART or len(rows) - k < _MIN_GOLD_PER_PART:
            raise DataError(
                f"test_size={test_size} leaves {k} gold and {len(rows) - k} preference rows in the {name} "
                f"part; each part needs at least {_MIN_GOLD_PER_PART} of each (add gold rows or change test_size)"
            )
    return train, held


# ---------------------------------------------------------------------------- argument checks
def _check_args(data, bias, test_size, alpha, n_bootstrap, n_groups, tree_depth, top_k) -> None:
    if not isinstance(data, EvalData):
        raise DataError(f"data must be an EvalData, got {type(data).__name__}; build one with EvalData(...)")
    data.require_both_sources("diagnose")
    if bias is not None and not isinstance(bias, BiasEstimator):
        raise ValueError(f"bias must be a BiasEstimator or None, got {type(bias).__name__}")
    if not isinstance(test_size, (float, int)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    if not isinstance(alpha, (float, int)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    for name, value, low in (("n_bootstrap", n_bootstrap, 10), ("n_groups", n_groups, 2),
                             ("tree_depth", tree_depth, 1), ("top_k", top_k, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _group_labels(groups, data: EvalData, n: int):
    name = "group"
    if groups is None:
        if data.pair is None:
            return None, name, None
        groups, name = data.pair, "pair"
    if isinstance(groups, str):
        raise ValueError(f"groups must be an array of one label per row, got the string {groups!r}; "
                         "pass the column's values (e.g. frame[column])")
    order = None
    if isinstance(groups, (pd.Series, pd.Index)):
        name = str(groups.name) if groups.name is not None else name
        if isinstance(groups.dtype, pd.CategoricalDtype):
            order = [str(c) for c in groups.cat.categories]
        groups = groups.to_numpy()
    elif isinstance(groups, pd.Categorical):
        order = [str(c) for c in groups.categories]
    arr = np.asarray(groups, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"groups must be one-dimensional, got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"groups has {len(arr)} labels for {n} rows of data")
    labels = np.array(["(missing)" if pd.isna(v) else str(v) for v in arr], dtype=object)
    return labels, name, order


def _texts(texts, data: EvalData, n: int):
    if texts is None:
        return data.text
    if isinstance(texts, str):
        raise ValueError("texts must be an array of one query text per row, got a single string")
    arr = np.asarray(texts.to_numpy() if isinstance(texts, (pd.Series, pd.Index)) else texts, dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"texts must have one entry per row: got shape {arr.shape} for {n} rows")
    return arr


# ---------------------------------------------------------------------------- 1. overlap
def _ess(weights: np.ndarray) -> float:
    return float(weights.sum() ** 2 / np.sum(weights ** 2)) if weights.size else float("nan")


def _overlap(data: EvalData, est: BiasEstimator, seed, n_jobs) -> dict:
    p = np.asarray(est.propensity_, dtype=float)
    gold = data.is_gold
    t = data.treatment
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_predict(default_classifier(seed), data.X, t, cv=folds, method="predict_proba",
                               n_jobs=n_jobs)[:, 1]
    auc = float(roc_auc_score(t, scores))
    mw = stats.mannwhitneyu(scores[gold], scores[~gold], alternative="greater")
    ess_gold = _ess(1 / p[gold])
    ess_pref = _ess(1 / (1 - p[~gold]))
    qs = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)
    return {
        "n_gold": data.n_gold, "n_preference": data.n_preference,
        "gold_share": data.n_gold / len(data),
        "classifier": "LightGBM (models.default_classifier), 5-fold out-of-fold scores",
        "classifier_auc": auc,
        "classifier_p_value": float(mw.pvalue),
        "classifier_test": "one-sided Mann-Whitney U test of the out-of-fold scores of gold vs preference rows "
                           "(H0: AUC = 0.5)",
        "propensity_auc": float(est.overlap_auc_),
        "min_propensity": float(est.min_propensity_),
        "n_clipped": int(est.n_clipped_),
        "clipped_share": est.n_clipped_ / len(data),
        "gold_ess": ess_gold,
        "gold_ess_share": ess_gold / data.n_gold,
        "preference_ess": ess_pref,
        "preference_ess_share": ess_pref / data.n_preference,
        "propensity_quantiles": {
            "quantiles": list(qs),
            "gold": np.quantile(p[gold], qs).tolist(),
            "preference": np.quantile(p[~gold], qs).tolist(),
        },
        "rule": {"max_auc": OVERLAP_MAX_AUC, "min_gold_ess_share": OVERLAP_MIN_ESS_SHARE,
                 "max_clipped_share": OVERLAP_MAX_CLIPPED_SHARE},
    }


def _read_overlap(ov: dict):
    problems = []
    auc = max(ov["classifier_auc"], ov["propensity_auc"])
    if auc > OVERLAP_MAX_AUC:
        problems.append(f"gold and preference queries can be told apart (classifier AUC "
                        f"{ov['classifier_auc']:.3f}, propensity AUC {ov['propensity_auc']:.3f} > {OVERLAP_MAX_AUC})")
    if ov["gold_ess_share"] < OVERLAP_MIN_ESS_SHARE:
        problems.append(f"the gold rows' effective sample size under 1/p weights is {ov['gold_ess']:.0f} of "
                        f"{ov['n_gold']} ({100 * ov['gold_ess_share']:.0f}% < {100 * OVERLAP_MIN_ESS_SHARE:.0f}%)")
    if ov["clipped_share"] > OVERLAP_MAX_CLIPPED_SHARE:
        problems.append(f"{100 * ov['clipped_share']:.1f}% of the propensities were clipped at "
                        f"{ov['min_propensity']:.3g} (> {100 * OVERLAP_MAX_CLIPPED_SHARE:.0f}%)")
    facts = (f"two-sample AUC {ov['classifier_auc']:.3f} (p = {ov['classifier_p_value']:.3g}; 0.5 = "
             f"indistinguishable), gold ESS {ov['gold_ess']:.0f} of {ov['n_gold']} "
             f"({100 * ov['gold_ess_share']:.0f}%), {100 * ov['clipped_share']:.1f}% of propensities clipped")
    if problems:
        warning = "Poor overlap: " + "; ".join(problems) + "."
        text = (f"Warning. {warning} The bias is then extrapolated from few gold rows to queries the gold "
                "standard rarely sees, and doubly robust weights 1/p explode. What to do: send a random (or "
                "stratified) sample of queries to the gold standard, add gold rows where the propensity is low, "
                "or restrict routing to the region both sources cover.")
        return text, "warning", warning
    detail = ""
    if ov["classifier_p_value"] < 0.05:
        detail = (" The two-sample test detects a difference, but it is small; check the propensity "
                  "figure for regions without gold rows.")
    return (f"Fine: {facts}. Gold and preference queries come from overlapping populations, so "
            f"positivity is plausible.{detail}", "fine", None)


# ---------------------------------------------------------------------------- 2. held-out tests
def _heldout_tests(data, est_train, train, held, seed, alpha, n_bootstrap, n_groups):
    """DRTester on the held-out rows; returns (tester or None, {calibration, blp, uplift})."""
    from econml.validate import DRTester

    scale = float(est_train.scale_)
    X, T, Y = data.X, data.treatment, pooled_outcome(data.gain, data.is_gold, scale)
    cate_train = np.asarray(est_train.estimator_.effect(X[train]), dtype=float).reshape(-1)
    spread = float(np.std(cate_train))
    if not np.isfinite(spread) or spread <= 1e-10 * (1.0 + abs(float(np.mean(cate_train)))):
        reason = (f"the bias model predicts one constant bias (final stage {est_train.final_stage_!r}): there is "
                  "no estimated heterogeneity to calibrate or test")
        off = {"available": False, "reason": reason}
        return None, {"calibration": dict(off), "blp": dict(off), "uplift": dict(off)}

    # cv: folds of DRTester's cross-fitted outcomes on the training part, which only its calibration
    # check's bookkeeping needs (held-out outcomes use nuisances fitted on the whole training part)
    model_y = clone(est_train.model_y) if est_train.model_y is not None else default_regressor(seed)
    model_t = clone(est_train.model_t) if est_train.model_t is not None else default_propensity(seed)
    tester = DRTester(model_regression=model_y, model_propensity=model_t, cate=est_train.estimator_, cv=2)
    tester.get_cv_splitter(random_state=seed if seed is not None else 123)
    tester.fit_nuisance(X[held], T[held], Y[held], X[train], T[train], Y[train])
    tester.get_cate_preds(X[held], X[train])
    dr = np.asarray(tester.dr_val_, dtype=float).reshape(-1)
    cate = np.asarray(tester.cate_preds_val_, dtype=float).reshape(-1)
    heldout_average = float(np.mean(dr)) / scale
    heldout_se = float(np.std(dr, ddof=1) / np.sqrt(len(dr))) / scale

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cal = tester.evaluate_cal(n_groups=n_groups)
    cal_df = cal.plot_data_dict[cal.treatments[1]]
    cuts = np.quantile(np.asarray(tester.cate_preds_train_, dtype=float).reshape(-1), np.linspace(0, 1, n_groups + 1))
    probs = np.array([np.mean((cate >= cuts[i]) & (cate <= cuts[i + 1])) for i in range(n_groups)])  # as econml
    gap = (cal_df["gate"].to_numpy(dtype=float) - cal_df["g_cate"].to_numpy(dtype=float)) / scale
    ok = np.isfinite(gap) & (probs > 0)
    level_offset = float(np.sum(probs[ok] * gap[ok]) / np.sum(probs[ok])) if ok.any() else float("nan")
    calibration = {
        "available": True,
        "r_squared": float(cal.cal_r_squared[0]),
        "level_offset": level_offset,
        "n_groups": n_groups,
        "heldout_average": heldout_average,
        "heldout_average_std_error": heldout_se,
        "groups": {
            "group": [f"Q{i + 1}" for i in range(len(cal_df))],
            "predicted": (cal_df["g_cate"].to_numpy(dtype=float) / scale).tolist(),
            "observed": (cal_df["gate"].to_numpy(dtype=float) / scale).tolist(),
            "std_error": (cal_df["se_gate"].to_numpy(dtype=float) / scale).tolist(),
        },
        "method": "econml DRTester.evaluate_cal: held-out rows grouped by quantiles (cut on the training "
                  "part) of the estimated bias; R^2 = 1 - sum_k pi_k |observed_k - predicted_k| / "
                  "sum_k pi_k |observed_k - average|; level_offset = sum_k pi_k (observed_k - predicted_k) "
                  "(gold scale): how far the groups sit above (+) or below (-) the diagonal on average",
    }

    econml_blp = tester.evaluate_blp()
    blp = _blp(dr / scale, cate / scale, alpha)
    blp.update({
        "available": True,
        "slope_econml": float(econml_blp.params[0]),
        "slope_std_error_econml": float(econml_blp.errs[0]),
        "p_value_econml": float(econml_blp.pvals[0]),
        "method": "OLS of held-out doubly robust outcomes on 1 and the centred estimated bias, HC1 standard "
                  "errors; p_value one-sided (H1: slope > 0); *_econml: DRTester.evaluate_blp "
                  "(classical standard errors, two-sided)",
    })

    uplift = {"available": True}
    with seeded_global_random(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for metric in ("qini", "toc"):
            res = tester.evaluate_uplift(metric=metric, n_bootstrap=n_bootstrap)
            curve = res.curves[res.treatments[1]]
            coef, se = float(res.params[0]) / scale, float(res.errs[0]) / scale
            uplift[metric] = {
                "coefficient": coef,
                "std_error": se,
                "p_value": float(stats.norm.sf(coef / se)) if se > 0 else float("nan"),
                "p_value_econml": float(res.pvals[0]),
                "uniform_critical_value": float(curve["uniform_critical_value"].iloc[0]),
                "curve": {
                    "share": curve["Percentage treated"].to_numpy(dtype=float).tolist(),
                    "value": (curve["value"].to_numpy(dtype=float) / scale).tolist(),
                    "std_error": (curve["err"].to_numpy(dtype=float) / scale).tolist(),
                },
            }
    uplift["method"] = ("econml DRTester.evaluate_uplift on held-out rows ranked by the estimated bias; "
                        "area = coefficient (gold scale); p_value one-sided (H1: area > 0); "
                        "bands: multiplier bootstrap (uniform 95%)")
    return tester, {"calibration": calibration, "blp": blp, "uplift": uplift}


def _blp(dr: np.ndarray, cate: np.ndarray, alpha: float) -> dict:
    """BLP regression dr ~ 1 + (cate - mean cate) with HC1 standard errors (shapes (n,))."""
    import statsmodels.api as sm

    design = np.column_stack([np.ones_like(cate), cate - cate.mean()])
    fit = sm.OLS(dr, design).fit(cov_type="HC1")
    intercept, slope = (float(v) for v in fit.params)
    se_int, se = (float(v) for v in fit.bse)
    p = float(stats.norm.sf(slope / se)) if se > 0 else float("nan")
    return {
        "slope": slope,
        "slope_std_error": se,
        "p_value": p,
        "p_value_slope_is_one": float(2 * stats.norm.sf(abs(slope - 1) / se)) if se > 0 else float("nan"),
        "intercept": intercept,
        "intercept_std_error": se_int,
        "heterogeneity_detected": bool(np.isfinite(p) and p < alpha),
        "n_heldout": int(len(dr)),
    }


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


def _heldout_warnings(numbers: dict, alpha: float) -> list[str]:
    out = []
    cal, blp = numbers["calibration"], numbers["blp"]
    if not cal.get("available"):
        return out
    slope, se = blp["slope"], blp["slope_std_error"]
    if slope < 0 and se > 0 and stats.norm.cdf(slope / se) < alpha:
        out.append(f"the BLP slope is significantly negative ({blp['slope']:.2f}): the estimated bias ranks "
                   "queries the wrong way round on held-out rows")
    if blp["heterogeneity_detected"] and np.isfinite(cal["r_squared"]) and cal["r_squared"] < 0:
        out.append(f"calibration R^2 is negative ({cal['r_squared']:.2f}): the estimated bias is miscalibrated on "
                   f"held-out rows (groups {cal['level_offset']:+.3g} from the diagonal on average)")
    return out


# ---------------------------------------------------------------------------- 3. the bias
def _bias_numbers(est: BiasEstimator, effect: np.ndarray, alpha: float, numbers: dict) -> dict:
    ate = est.ate(alpha)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    out = {
        "average": {k: float(ate[k]) for k in ("estimate", "std_error", "lower", "upper")},
        "average_method": "mean of the doubly robust pseudo-outcomes of the model fitted on all rows "
                          "(BiasEstimator.ate); normal interval; scale-constant uncertainty not included",
        "confidence_level": 1 - alpha,
        "estimated": {
            "mean": float(np.mean(effect)), "sd": float(np.std(effect)),
            "min": float(np.min(effect)), "max": float(np.max(effect)),
            "quantiles": dict(zip([f"q{int(100 * q)}" for q in qs], np.quantile(effect, qs).tolist())),
            "share_positive": float(np.mean(effect > 0)),
        },
        "final_stage": est.final_stage_,
    }
    cal = numbers.get("calibration", {})
    if cal.get("available"):
        z = stats.norm.ppf(1 - alpha / 2)
        m, se = cal["heldout_average"], cal["heldout_average_std_error"]
        out["heldout_average"] = {"estimate": m, "std_error": se, "lower": m - z * se, "upper": m + z * se}
    return out


def _read_bias(b: dict, alpha: float):
    a, e = b["average"], b["estimated"]
    level = f"{100 * (1 - alpha):.0f}%"
    if a["lower"] > 0:
        sign = ("positive: on average the judge under-rates the primary model's gain relative to the gold "
                "standard, so uncorrected preference labels undervalue the primary model")
    elif a["upper"] < 0:
        sign = ("negative: on average the judge over-rates the primary model's gain relative to the gold "
                "standard, so uncorrected preference labels overvalue the primary model")
    else:
        sign = "not distinguishable from zero on average"
    return (f"Average bias {a['estimate']:.3g} ({level} CI [{a['lower']:.3g}, {a['upper']:.3g}], gold scale): "
            f"{sign}. Per query the estimated bias ranges from {e['quantiles']['q5']:.3g} to "
            f"{e['quantiles']['q95']:.3g} (5th to 95th percentile, sd {e['sd']:.3g}); "
            f"{100 * e['share_positive']:.0f}% of queries have a positive estimate. Trust the spread only as "
            "far as the held-out tests above support it."), "info"


def _group_table(phi, effect, is_gold, labels, alpha, order=None):
    """Per group: rows, gold rows, mean pseudo-outcome with normal CI, model's mean; and a Wald test."""
    z = stats.norm.ppf(1 - alpha / 2)
    frame = pd.DataFrame({"group": labels, "phi": phi, "effect": effect, "gold": is_gold.astype(int)})
    g = frame.groupby("group", sort=False)
    table = pd.DataFrame({
        "n": g.size(),
        "n_gold": g["gold"].sum(),
        "estimate": g["phi"].mean(),
        "std_error": g["phi"].std(ddof=1) / np.sqrt(g.size()),
        "model_mean": g["effect"].mean(),
    })
    table["lower"] = table["estimate"] - z * table["std_error"]
    table["upper"] = table["estimate"] + z * table["std_error"]
    if order is not None:  # categorical groups keep their category order
        table = table.reindex([c for c in order if c in table.index] + [c for c in table.index if c not in order])
    else:
        table = table.sort_values("n", ascending=False, kind="stable")
    ok = table[(table["n_gold"] >= 2) & (table["std_error"] > 0)]
    test = {"statistic": None, "df": None, "p_value": None,
            "method": "Wald chi-square test that the group averages are equal (groups with >= 2 gold rows)"}
    if len(ok) >= 2:
        w = 1 / ok["std_error"] ** 2
        pooled = float(np.sum(w * ok["estimate"]) / np.sum(w))
        chi2 = float(np.sum(w * (ok["estimate"] - pooled) ** 2))
        test.update(statistic=chi2, df=int(len(ok) - 1), p_value=float(stats.chi2.sf(chi2, len(ok) - 1)))
    return table, test


def _read_groups(table, test, name, alpha):
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


# ---------------------------------------------------------------------------- 4. interpretation
class _GoldScaleCate:
    """Adapter for econml's interpreter: const_marginal_effect of a BiasEstimator on the gold scale."""

    def __init__(self, est: BiasEstimator):
        self.est = est

    def const_marginal_effect(self, X):
        return self.est.effect(X).reshape(-1, 1)


def _final_coefficients(est: BiasEstimator) -> np.ndarray | None:
    """Coefficients (preference scale, shape (d,)) of a linear final stage, else None."""
    econ = est.estimator_
    d = est.n_features_in_
    candidates = []
    if est.learner == "linear":
        try:
            candidates.append(econ.coef_(T=1))
        except Exception:  # pragma: no cover - econml API variations
            pass
    for attr in ("model_final_",):
        model = getattr(econ, attr, None)
        if model is not None:
            candidates.append(getattr(model, "coef_", None))
    models = getattr(econ, "fitted_models_final", None)
    if models:
        candidates.append(getattr(models[0], "coef_", None))
    for coef in candidates:
        if coef is not None:
            coef = np.asarray(coef, dtype=float).reshape(-1)
            if coef.size == d:
                return coef
    return None


def _importances(est: BiasEstimator, X: np.ndarray, names, seed) -> tuple[pd.Series | None, dict]:
    if est.final_stage_ == "constant":
        return None, {"method": "none", "signed": False, "label": "none",
                      "note": "the final stage is a constant: no feature moves the estimated bias"}
    coef = _final_coefficients(est)
    if coef is not None:
        values = pd.Series(coef * X.std(axis=0) / est.scale_, index=names)
        return values, {"method": "standardised_coefficient", "signed": True,
                        "label": "Change of the estimated bias per +1 sd of the feature (gold scale)",
                        "note": "coefficients of the linear final stage times the feature's standard deviation"}
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(X), size=min(len(X), 2000), replace=False)
    Xs = X[rows]
    base = est.effect(Xs)
    out = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        Xp = Xs.copy()
        Xp[:, j] = rng.permutation(Xp[:, j])
        out[j] = float(np.sqrt(np.mean((est.effect(Xp) - base) ** 2)))
    return pd.Series(out, index=names), {
        "method": "permutation", "signed": False,
        "label": "RMS change of the estimated bias when the feature is permuted (gold scale)",
        "note": f"permutation importance of the estimated bias on {len(rows)} rows (the model is not refitted)"}


def _tree_leaves(interpreter, names, effect) -> list[dict]:
    """Leaves of the interpretation tree: rule, size, share and mean / sd of the estimated bias."""
    tree = interpreter.tree_model_.tree_
    leaves = []

    def rule(conditions) -> str:
        bounds: dict = {}
        for f, upper, thr in conditions:  # keep the tightest bound per feature and side
            lo, hi = bounds.get(f, (-np.inf, np.inf))
            bounds[f] = (lo, min(hi, thr)) if upper else (max(lo, thr), hi)
        parts = []
        for f, (lo, hi) in bounds.items():
            if np.isfinite(lo) and np.isfinite(hi):
                parts.append(f"{lo:.3g} < {f} <= {hi:.3g}")
            else:
                parts.append(f"{f} <= {hi:.3g}" if np.isfinite(hi) else f"{f} > {lo:.3g}")
        return " and ".join(parts) or "all queries"

    def walk(node, conditions):
        left, right = tree.children_left[node], tree.children_right[node]
        if left < 0:
            info = interpreter.node_dict_[node]
            leaves.append({"rule": rule(conditions),
                           "n": int(tree.n_node_samples[node]),
                           "mean_bias": float(np.ravel(info["mean"])[0]),
                           "sd_bias": float(np.ravel(info["std"])[0])})
            return
        f, thr = names[tree.feature[node]], float(tree.threshold[node])
        walk(left, conditions + [(f, True, thr)])
        walk(right, conditions + [(f, False, thr)])

    walk(0, [])
    for leaf in leaves:
        leaf["share"] = leaf["n"] / len(effect)
    return sorted(leaves, key=lambda r: r["mean_bias"])


def _interpretation(est, X, effect, data, texts, depth, top_k, seed):
    from econml.cate_interpreter import SingleTreeCateInterpreter

    names = list(data.feature_names)
    out: dict = {}
    interpreter = None
    if float(np.std(effect)) > 1e-12:
        interpreter = SingleTreeCateInterpreter(max_depth=depth, min_samples_leaf=max(10, int(0.05 * len(X))),
                                                random_state=seed)
        interpreter.interpret(_GoldScaleCate(est), X)
        leaves = _tree_leaves(interpreter, names, effect)
        fitted = interpreter.tree_model_.predict(X)
        r2 = 1 - float(np.mean((effect - fitted) ** 2) / np.var(effect))
        out["tree"] = {"max_depth": depth, "leaves": leaves, "r_squared": r2,
                       "method": "econml SingleTreeCateInterpreter on the estimated bias (gold scale) of all rows; "
                                 "r_squared = share of the estimated bias's variance the tree reproduces"}
    else:
        out["tree"] = None
    importances, meta = _importances(est, X, names, seed)
    meta["values"] = (None if importances is None else
                      {k: float(v) for k, v in importances.reindex(
                          importances.abs().sort_values(ascending=False).index).items()})
    out["importance"] = meta
    out["top_queries"] = None
    if texts is not None:
        order = np.argsort(effect, kind="stable")
        k = min(top_k, len(effect) // 2)

        def rows(idx):
            return [{"row": int(i),
                     "query_id": None if data.query_id is None else str(data.query_id[i]),
                     "text": _truncate(str(texts[i])),
                     "estimated_bias": float(effect[i]),
                     "source": "gold" if data.is_gold[i] else "preference"} for i in idx]

        out["top_queries"] = {"largest_positive": rows(order[::-1][:k]), "largest_negative": rows(order[:k])}
    return out, interpreter, importances


def _read_interpretation(it: dict):
    parts = []
    tree = it["tree"]
    if tree is None:
        return ("The estimated bias is the same for every query: nothing to interpret beyond its average."), "info"
    leaves = tree["leaves"]
    hi, lo = leaves[-1], leaves[0]
    parts.append(f"The estimated bias (gold minus preference) is highest where {hi['rule']} "
                 f"({100 * hi['share']:.0f}% of queries, mean {hi['mean_bias']:.3g}) and lowest where "
                 f"{lo['rule']} ({100 * lo['share']:.0f}%, mean {lo['mean_bias']:.3g}); "
                 f"a depth-{tree['max_depth']} tree "
                 f"reproduces {100 * max(tree['r_squared'], 0):.0f}% of the estimated bias's variance.")
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


# ---------------------------------------------------------------------------- CLI
def run_cli(args) -> int:
    """``causal-router diagnose``: diagnose the bias on built-in data or a user's file, write the report."""
    from .cli import load_input

    data = load_input(args)
    groups, texts = None, None
    frame = None
    if args.data:
        from .io import read_table as load_table

        frame = load_table(args.data)
        for col in ("text", "query_text"):
            if col in frame.columns and len(frame) == len(data):
                texts = frame[col].astype(str).to_numpy()
                break
    if getattr(args, "group_by", None):
        col = args.group_by
        if frame is not None:
            if col not in frame.columns:
                raise DataError(f"--group-by column {col!r} is not in {args.data}; columns start "
                                f"{list(frame.columns)[:12]}")
            groups = frame[col].rename(col)
        elif col in data.feature_names:
            values = data.X[:, data.feature_names.index(col)]
            bins = pd.qcut(values, 5, duplicates="drop")
            labels = [f"Q{k + 1} {iv}" for k, iv in enumerate(bins.categories)]
            groups = pd.Series(bins.rename_categories(labels), name=f"{col} (quintile bins)")
        else:
            print(f"--group-by {col!r}: the built-in data have no such column; group by a feature "
                  f"(e.g. --group-by x10 for quintile bins of x10). Skipping group averages.")
    bias = BiasEstimator(args.learner, scale=None if args.scale == "none" else args.scale, random_state=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverlapWarning)  # printed from the numbers below
        diag = diagnose(data, bias, groups=groups, texts=texts, n_jobs=args.n_jobs, random_state=args.seed,
                        progress=True)
    sections = None
    if getattr(args, "refute", False):
        from .refute import refute

        report = refute(data, bias, n_jobs=args.n_jobs, random_state=args.seed, progress=True)
        report.save(args.out)
        sections = [("Refutation tests", report.html())]
        print(report.summary())
    out = diag.save(args.out, extra_sections=sections)
    print(diag.summary())
    print(f"report written to {out / 'report.html'} (figures and diagnostics.json in {out}/)")
    return 0


# ---------------------------------------------------------------------------- helpers
def _plotting():
    from . import plotting

    return plotting


def _close(fig):
    """Detach a figure from pyplot (it stays drawable and savable) so figures do not pile up."""
    import matplotlib.pyplot as plt

    plt.close(fig)
    return fig


class _Steps:
    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="diagnostics", unit="step", leave=False)
        self.started = False

    def next(self, label: str) -> None:
        logger.info("diagnostics: %s", label)
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.bar.set_postfix_str(label)
        self.started = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.close()


def _truncate(text: str, limit: int = _TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def _records(table: pd.DataFrame, index_name: str) -> list[dict]:
    return [{index_name: str(idx), **{k: v for k, v in row.items()}} for idx, row in table.iterrows()]


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return _e(value)


def _kv_table(pairs) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs)
    return f"<table class='kv'>{rows}</table>"


def _grid_table(records: list[dict], columns: list[str], headers: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in (headers or columns))
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in records)
    return f"<table class='grid'><tr>{head}</tr>{body}</table>"


def _section_table(key: str, n: dict) -> str:
    s = n.get(key)
    if key == "overlap":
        return _kv_table([
            ("two-sample classifier AUC (out-of-fold)", s["classifier_auc"]),
            ("two-sample p-value (Mann-Whitney, one-sided)", s["classifier_p_value"]),
            ("propensity model AUC (out-of-fold)", s["propensity_auc"]),
            ("gold ESS under 1/p weights", f"{s['gold_ess']:.1f} of {s['n_gold']} ({100 * s['gold_ess_share']:.0f}%)"),
            ("preference ESS under 1/(1-p) weights",
             f"{s['preference_ess']:.1f} of {s['n_preference']} ({100 * s['preference_ess_share']:.0f}%)"),
            ("clipped propensities",
             f"{s['n_clipped']} ({100 * s['clipped_share']:.2f}%) at {s['min_propensity']:.3g}"),
            ("propensity of gold rows (median, 1%-99%)",
             f"{s['propensity_quantiles']['gold'][3]:.3g} ({s['propensity_quantiles']['gold'][1]:.3g} - "
             f"{s['propensity_quantiles']['gold'][5]:.3g})"),
            ("propensity of preference rows (median, 1%-99%)",
             f"{s['propensity_quantiles']['preference'][3]:.3g} ({s['propensity_quantiles']['preference'][1]:.3g} - "
             f"{s['propensity_quantiles']['preference'][5]:.3g})"),
            ("poor-overlap rule", f"AUC > {OVERLAP_MAX_AUC}, or gold ESS < {OVERLAP_MIN_ESS_SHARE:.0%} of gold rows, "
                                  f"or clipped > {OVERLAP_MAX_CLIPPED_SHARE:.0%}"),
        ])
    if s is None or (isinstance(s, dict) and s.get("available") is False):
        return ""
    if key == "calibration":
        g = s["groups"]
        recs = [dict(zip(g, vals)) for vals in zip(*g.values())]
        return (_kv_table([("calibration R^2", s["r_squared"]), ("held-out average bias", s["heldout_average"])])
                + _grid_table(recs, ["group", "predicted", "observed", "std_error"],
                              ["group", "mean estimated bias", "mean doubly robust bias", "std. error"]))
    if key == "blp":
        return _kv_table([("slope (HC1)", s["slope"]), ("slope std. error", s["slope_std_error"]),
                          ("one-sided p-value (slope > 0)", s["p_value"]),
                          ("p-value of slope = 1", s["p_value_slope_is_one"]),
                          ("heterogeneity detected", str(s["heterogeneity_detected"])),
                          ("econml slope / se / two-sided p",
                           f"{s['slope_econml']:.3g} / {s['slope_std_error_econml']:.3g} / {s['p_value_econml']:.3g}")])
    if key == "uplift":
        recs = [{"curve": k.upper(), **{c: s[k][c] for c in ("coefficient", "std_error", "p_value",
                                                             "uniform_critical_value")}} for k in ("qini", "toc")]
        return _grid_table(recs, ["curve", "coefficient", "std_error", "p_value", "uniform_critical_value"],
                           ["curve", "area (gold scale)", "std. error", "one-sided p", "uniform band multiplier"])
    if key == "bias":
        a, e = s["average"], s["estimated"]
        pairs = [("average bias (all rows, doubly robust)", a["estimate"]), ("std. error", a["std_error"]),
                 ("interval", f"[{a['lower']:.4g}, {a['upper']:.4g}]")]
        if "heldout_average" in s:
            h = s["heldout_average"]
            pairs.append(("average bias on held-out rows (DRTester)", f"{h['estimate']:.4g} [{h['lower']:.4g}, "
                                                                      f"{h['upper']:.4g}]"))
        pairs += [("estimated bias: sd across queries", e["sd"]),
                  ("estimated bias: 5% / 50% / 95%", f"{e['quantiles']['q5']:.3g} / {e['quantiles']['q50']:.3g} / "
                                                     f"{e['quantiles']['q95']:.3g}"),
                  ("share of queries with positive estimate", e["share_positive"])]
        return _kv_table(pairs)
    if key == "groups":
        return _grid_table(s["table"][:50], ["group", "n", "n_gold", "estimate", "lower", "upper", "model_mean"],
                           [s["by"], "rows", "gold rows", "average bias", "lower", "upper", "model's mean"])
    if key == "interpretation":
        html_parts = []
        if s["tree"]:
            html_parts.append(_grid_table(s["tree"]["leaves"], ["rule", "n", "share", "mean_bias", "sd_bias"],
                                          ["leaf", "rows", "share", "mean estimated bias", "sd"]))
        if s["top_queries"]:
            cols = ["query_id", "text", "estimated_bias", "source"]
            for k, title in (("largest_positive", "Largest positive estimated bias (judge under-rates the primary)"),
                             ("largest_negative", "Largest negative estimated bias (judge over-rates the primary)")):
                html_parts.append(f"<h3>{_e(title)}</h3>" + _grid_table(s["top_queries"][k], cols))
        return "".join(html_parts)
    return ""


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em}
.meta{color:#555;font-size:.92em}
.reading{padding:.7em 1em;border-radius:6px;margin:.8em 0;border-left:5px solid #999;background:#f6f6f6}
.reading.fine{border-color:#2ca02c;background:#eef8ee}.reading.warning{border-color:#d62728;background:#fdeeee}
.reading.info{border-color:#1f77b4;background:#eef4fb}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
table.kv th{background:#fafafa;font-weight:600;width:45%}
table.grid th{background:#fafafa}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#777;font-size:.8em}
pre{background:#f8f8f8;padding:1em;overflow-x:auto;font-size:.8em}
code{background:#f3f3f3;padding:0 .2em}
"""
