"""CATE diagnostics of the preference bias: the numbers that say whether the estimated bias can be trusted.

:func:`diagnose` fits the bias model and checks it in four ways; it returns a :class:`Diagnostics`
holding every number, the fitted models and the arrays the figures need. The readings, figures
and the HTML report are drawn from it by :class:`causal_router.report.DiagnosticsReport`
(``causal-router diagnose`` on the command line).

1. Overlap and positivity (cross-fitted, on the rows the bias model is fitted on: all of them
   unless the preference rows exceed :class:`~causal_router.bias.BiasEstimator`'s cap, where a
   seeded subset of them is used, as for the group averages): the out-of-fold propensity p(s) of the bias
   model on gold and preference rows, the share of clipped propensities, the effective sample
   size (ESS) of the gold rows under weights 1/p, and a classifier two-sample test (out-of-fold
   AUC of a LightGBM classifier telling gold from preference rows; one-sided Mann-Whitney
   p-value of its scores, i.e. the null distribution of the AUC given the out-of-fold scores).
   Poor overlap raises :class:`OverlapWarning` (rule: :func:`overlap_problems`).
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
the primary model's gain). The model validated on held-out rows is fitted on the training part
only, its scale constant included; the held-out outcomes are put on the preference scale with
that constant. Dimensionless numbers (AUC, R^2, BLP slope, p-values) are unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit, cross_val_predict, train_test_split

from .._utils import as_seed, to_jsonable
from .._validation import DataError
from ..io import atomic_write
from ..bias import BiasEstimator
from ..clusters import MIN_CLUSTERS, clustered_mean
from ..data import EvalData
from ..models import cross_fitting_folds, default_classifier, repeated_groups
from ..router import describe_judge, judge_evidence
from ._heldout import heldout_numbers, heldout_warnings
from ._interpret import interpretation_numbers

__all__ = ["diagnose", "heldout_tests", "Diagnostics", "OverlapWarning", "overlap_problems", "NUMBER_KEYS",
           "OVERLAP_MAX_AUC", "OVERLAP_MIN_ESS_SHARE", "OVERLAP_MAX_CLIPPED_SHARE", "MIN_GOLD_PER_GROUP"]

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
#: Groups with fewer gold rows than this are listed in the warnings.
MIN_GOLD_PER_GROUP = 5
_MIN_GOLD_PER_PART = 10


class OverlapWarning(UserWarning):
    """Gold and preference queries overlap poorly: the bias is extrapolated from few gold rows."""


# ---------------------------------------------------------------------------- result object
@dataclass
class Diagnostics:
    """Result of :func:`diagnose`; each parameter is kept as the attribute of the same name.

    Readings, figures and the report: :class:`causal_router.report.DiagnosticsReport`.

    Parameters
    ----------
    numbers : dict
        Every number, JSON-serialisable (NaN as None). Top-level keys (:data:`NUMBER_KEYS`):
        ``meta`` (sizes, learner, scale constants, seed, runtime), ``overlap``, ``calibration``,
        ``blp``, ``uplift`` (QINI and TOC), ``bias`` (average and distribution), ``groups``
        (None without groups), ``interpretation`` (tree leaves, importances, top queries) and
        ``warnings`` (list of str). Bias values are on the gold scale.
    bias : BiasEstimator or None, default=None
        Fitted on all rows (the model whose bias is described).
    bias_heldout : BiasEstimator or None, default=None
        Fitted on the training part only (the model validated).
    tester : econml DRTester or None, default=None
        Fitted on the held-out part (None if the model is constant).
    interpreter : econml SingleTreeCateInterpreter or None, default=None
        The interpretation tree (None if the model is constant).
    effect : ndarray of shape (n,) or None, default=None
        The estimated bias of every row (``bias.effect(data.X)``, gold scale).
    is_gold : ndarray of bool, shape (n,), or None, default=None
        True for the gold rows.
    """

    numbers: dict
    bias: BiasEstimator | None = None
    bias_heldout: BiasEstimator | None = None
    tester: Any = None
    interpreter: Any = None
    effect: np.ndarray | None = field(default=None, repr=False)
    is_gold: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        meta = self.numbers.get("meta", {})
        return (f"Diagnostics(n={meta.get('n')}, n_gold={meta.get('n_gold')}, "
                f"warnings={len(self.numbers.get('warnings', []))})")

    @property
    def warnings(self) -> list[str]:
        """The warnings (poor overlap, held-out checks, groups with few gold rows), as text."""
        return list(self.numbers.get("warnings", []))

    def summary(self) -> str:
        """A few lines with the key numbers and the warnings.

        Returns
        -------
        str
            Sizes and learner, the average bias with its interval, the correction and judge
            readings, overlap, the held-out tests (or why they were skipped), and the warnings.
        """
        n = self.numbers
        meta, ov, bias = n["meta"], n["overlap"], n["bias"]
        lines = [
            f"CATE diagnostics of the preference bias: {meta['n']} rows ({meta['n_gold']} gold), learner "
            f"{meta['learner']!r} (final stage {meta['final_stage']}), scale constant {meta['scale_constant']:.4g}",
            f"  average bias (gold minus preference, gold scale): {bias['average']['estimate']:.4f} "
            f"[{bias['average']['lower']:.4f}, {bias['average']['upper']:.4f}]"
            + (f", clustered over {ov['n_clusters']} queries" if ov["n_clusters"] < ov["n_rows"] else ""),
            *([f"  correction: {bias['correction']['reading']}"] if bias.get("correction") else []),
            *([f"  judge: {bias['judge']['reading']}"] if bias.get("judge") else []),
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

    def to_json(self, path: str | os.PathLike | None = None, indent: int = 2) -> str:
        """:attr:`numbers` as a JSON string (no NaN: missing numbers are null).

        Parameters
        ----------
        path : str, PathLike or None, default=None
            Also write the text to this file (atomically: :func:`causal_router.io.atomic_write`);
            None: nothing is written.
        indent : int, default=2
            JSON indentation.

        Returns
        -------
        str
            The JSON text.
        """
        text = json.dumps(self.numbers, indent=indent, allow_nan=False)
        if path is not None:
            with atomic_write(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        return text


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
    n_jobs: int | None = 1,
    progress: bool = True,
    random_state=None,
) -> Diagnostics:
    """Diagnose the preference-bias (CATE) model on ``data``.

    Parameters
    ----------
    data : EvalData
        Gold and preference rows (n rows, d features).
    bias : BiasEstimator, optional
        Its parameters define the model (it is cloned and refitted, never modified). Default
        ``BiasEstimator("r", random_state=random_state)``.
    groups : array-like of shape (n,), optional
        Group label per row (category, model pair, ...) for group averages; a pandas Series
        lends its name, a categorical keeps its category order. Default ``data.pair`` when
        present, else no group section.
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
        Every number (:attr:`Diagnostics.numbers`), the fitted models and the estimated bias of
        every row.

    Raises
    ------
    DataError
        A ValueError, for bad arguments, naming the argument.
    OverlapError
        From the bias model, when gold and preference queries do not overlap at all.

    Notes
    -----
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
    """
    t_start = time.perf_counter()
    _check_args(data, bias, test_size, alpha, n_bootstrap, n_groups, tree_depth, top_k)
    if n_jobs is not None and (not isinstance(n_jobs, (int, np.integer)) or isinstance(n_jobs, bool) or n_jobs == 0):
        raise DataError(f"n_jobs must be None or a non-zero integer (-1: all cores), got {n_jobs!r}")
    n = len(data)
    group_labels, group_name, group_order = _group_labels(groups, data, n)
    text_values = _texts(texts, data, n)
    seed = as_seed(random_state)
    template = _template(bias, seed)

    t = data.treatment
    train, held = _split(data, test_size, seed)

    steps = _Steps(progress, 6)
    numbers: dict = {}
    warn_list: list[str] = []

    steps.next("bias models (all rows; training part)")
    if n_jobs is not None and n_jobs == 1:
        est_all = clone(template).fit(data)
        est_train = clone(template).fit(data.subset(train))
    else:  # the two fits are independent: run them side by side
        from joblib import Parallel, delayed

        est_all, est_train = Parallel(n_jobs=min(2, n_jobs) if n_jobs and n_jobs > 0 else 2)(
            delayed(_fit)(clone(template), part) for part in (data, data.subset(train)))
    X = data.X

    steps.next("overlap")
    numbers["overlap"] = _overlap(data, est_all, seed, n_jobs)
    problems = overlap_problems(numbers["overlap"])
    if problems:
        poor = "Poor overlap: " + "; ".join(problems) + "."
        warn_list.append(poor)
        warnings.warn(poor, OverlapWarning, stacklevel=2)

    steps.next("held-out tests (econml DRTester)")
    tester, held_numbers = heldout_numbers(data, est_train, train, held, seed, alpha, n_bootstrap, n_groups)
    numbers.update(held_numbers)
    warn_list += heldout_warnings(numbers, alpha)

    steps.next("average and distribution of the bias")
    effect = est_all.effect(X)
    numbers["bias"] = _bias_numbers(est_all, effect, alpha, numbers)
    numbers["bias"]["judge"] = _judge_numbers(data, est_all, seed)

    steps.next("group averages")
    if group_labels is None:
        numbers["groups"] = None
    else:
        rows = est_all.sample_index_  # the pseudo-outcomes are those of the rows the bias model used
        table, test = _group_table(est_all.pseudo_outcomes_, effect[rows], data.is_gold[rows], group_labels[rows],
                                   alpha, group_order, est_all.query_groups_, seed)
        numbers["groups"] = {"by": group_name, "table": _records(table, index_name="group"), "equality_test": test,
                             "n_groups": int(len(table))}
        few = table.index[table["n_gold"] < MIN_GOLD_PER_GROUP].tolist()
        if few:
            warn_list.append(f"{len(few)} of {len(table)} groups by {group_name} have fewer than "
                             f"{MIN_GOLD_PER_GROUP} gold rows: their averages rest on the model, not on gold labels")
        if est_all.query_groups_ is not None and (table["n_clusters"] < MIN_CLUSTERS).any():
            thin = int((table["n_clusters"] < MIN_CLUSTERS).sum())
            warn_list.append(f"{thin} of {len(table)} groups by {group_name} hold fewer than {MIN_CLUSTERS} queries: "
                             "their intervals are percentile cluster bootstraps over those queries")

    steps.next("interpretation")
    numbers["interpretation"], interpreter = interpretation_numbers(
        est_all, X, effect, data, text_values, tree_depth, top_k, seed)
    steps.close()

    numbers["warnings"] = warn_list
    numbers["meta"] = {
        "n": n, "n_gold": data.n_gold, "n_preference": data.n_preference, "n_features": int(X.shape[1]),
        "n_train": int(len(train)), "n_heldout": int(len(held)), "n_gold_heldout": int(t[held].sum()),
        "learner": est_all.learner, "final_stage": est_all.final_stage_,
        "scale_constant": float(est_all.scale_), "scale_constant_train": float(est_train.scale_),
        "scale_method": est_all.scale, "alpha": alpha, "test_size": test_size, "n_bootstrap": n_bootstrap,
        "random_state": seed,
        "units": "bias values are gold-standard minus preference gain on the gold scale (econml's "
                 "preference-scale numbers divided by c: the held-out numbers by the training part's c, "
                 "the others by the c of all rows); AUC, R^2, slopes and p-values have no unit.",
        "runtime_seconds": time.perf_counter() - t_start,
    }
    numbers = {k: to_jsonable(numbers[k]) for k in NUMBER_KEYS}
    logger.info("diagnostics done in %.1f s", numbers["meta"]["runtime_seconds"])
    return Diagnostics(numbers=numbers, bias=est_all, bias_heldout=est_train, tester=tester,
                       interpreter=interpreter, effect=effect, is_gold=data.is_gold.copy())


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
    """Only the held-out checks of :func:`diagnose` (no overlap, group or interpretation numbers).

    Fits ``bias`` (default ``BiasEstimator("r")``, cloned) on a training part stratified by
    source and runs econml's DRTester on the rest. For repeated-sampling checks of the tests
    themselves.

    Parameters
    ----------
    data : EvalData
        Gold and preference rows.
    bias : BiasEstimator, optional
        Its parameters define the model (cloned and refitted, never modified). Default
        ``BiasEstimator("r", random_state=random_state)``.
    test_size : float in (0, 1), default=0.5
        Held-out share (stratified by source; the share of queries where queries repeat).
    alpha : float in (0, 1), default=0.05
        Tests at level alpha, intervals at 1 - alpha.
    n_bootstrap : int, default=1000
        Multiplier-bootstrap draws of the QINI / TOC uniform bands.
    n_groups : int, default=4
        Quantile groups of the calibration test.
    random_state : int, Generator or None, default=None
        Seeds the split, DRTester's bootstrap and the bias model when it has no random_state
        of its own.

    Returns
    -------
    dict
        The keys ``"calibration"``, ``"blp"`` and ``"uplift"`` of :attr:`Diagnostics.numbers`
        (same contents; JSON-serialisable).

    Raises
    ------
    DataError
        For bad arguments, or a split that leaves too few gold or preference rows in a part.
    """
    _check_args(data, bias, test_size, alpha, n_bootstrap, n_groups, 1, 1)
    seed = as_seed(random_state)
    template = _template(bias, seed)
    train, held = _split(data, test_size, seed)
    est_train = clone(template).fit(data.subset(train))
    _, numbers = heldout_numbers(data, est_train, train, held, seed, alpha, n_bootstrap, n_groups)
    return to_jsonable(numbers)


def overlap_problems(overlap: dict) -> list[str]:
    """The overlap rule applied to ``numbers["overlap"]``.

    Parameters
    ----------
    overlap : dict
        ``Diagnostics.numbers["overlap"]``: ``classifier_auc``, ``propensity_auc``,
        ``gold_ess``, ``gold_ess_share``, ``n_gold``, ``clipped_share`` and ``min_propensity``.

    Returns
    -------
    list of str
        One sentence per violated condition (empty when overlap is adequate).
    """
    ov = overlap
    problems = []
    if max(ov["classifier_auc"], ov["propensity_auc"]) > OVERLAP_MAX_AUC:
        problems.append(f"gold and preference queries can be told apart (classifier AUC "
                        f"{ov['classifier_auc']:.3f}, propensity AUC {ov['propensity_auc']:.3f} > {OVERLAP_MAX_AUC})")
    if ov["gold_ess_share"] < OVERLAP_MIN_ESS_SHARE:
        problems.append(f"the gold rows' effective sample size under 1/p weights is {ov['gold_ess']:.0f} of "
                        f"{ov['n_gold']} ({100 * ov['gold_ess_share']:.0f}% < {100 * OVERLAP_MIN_ESS_SHARE:.0f}%)")
    if ov["clipped_share"] > OVERLAP_MAX_CLIPPED_SHARE:
        problems.append(f"{100 * ov['clipped_share']:.1f}% of the propensities were clipped at "
                        f"{ov['min_propensity']:.3g} (> {100 * OVERLAP_MAX_CLIPPED_SHARE:.0f}%)")
    return problems


# ---------------------------------------------------------------------------- fitting and splitting
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


def _split(data: EvalData, test_size: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (training, held-out) row indices, stratified by source; where queries repeat, whole
    queries are held out (``GroupShuffleSplit``: ``test_size`` is then the share of queries)."""
    t = data.treatment
    groups = repeated_groups(data.query_groups)
    if groups is None:
        train, held = train_test_split(np.arange(len(data)), test_size=test_size, stratify=t, random_state=seed)
    else:
        train, held = next(GroupShuffleSplit(1, test_size=test_size, random_state=seed).split(data.X, t, groups))
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
        raise DataError(f"bias must be a BiasEstimator or None, got {type(bias).__name__}")
    if not isinstance(test_size, (float, int)) or not 0 < test_size < 1:
        raise DataError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    if not isinstance(alpha, (float, int)) or not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1), got {alpha!r}")
    for name, value, low in (("n_bootstrap", n_bootstrap, 10), ("n_groups", n_groups, 2),
                             ("tree_depth", tree_depth, 1), ("top_k", top_k, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise DataError(f"{name} must be an integer >= {low}, got {value!r}")


def _group_labels(groups, data: EvalData, n: int):
    name = "group"
    if groups is None:
        if data.pair is None:
            return None, name, None
        groups, name = data.pair, "pair"
    if isinstance(groups, str):
        raise DataError(f"groups must be an array of one label per row, got the string {groups!r}; "
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
        raise DataError(f"groups must be one-dimensional, got shape {arr.shape}")
    if len(arr) != n:
        raise DataError(f"groups has {len(arr)} labels for {n} rows of data")
    labels = np.array(["(missing)" if pd.isna(v) else str(v) for v in arr], dtype=object)
    return labels, name, order


def _texts(texts, data: EvalData, n: int):
    if texts is None:
        return data.text
    if isinstance(texts, str):
        raise DataError("texts must be an array of one query text per row, got a single string")
    arr = np.asarray(texts.to_numpy() if isinstance(texts, (pd.Series, pd.Index)) else texts, dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"texts must have one entry per row: got shape {arr.shape} for {n} rows")
    return arr


# ---------------------------------------------------------------------------- 1. overlap
def _ess(weights: np.ndarray) -> float:
    return float(weights.sum() ** 2 / np.sum(weights ** 2)) if weights.size else float("nan")


def _overlap(data: EvalData, est: BiasEstimator, seed, n_jobs) -> dict:
    """Overlap numbers on the rows the bias model was fitted on (``est.sample_index_``: all rows
    unless the preference rows exceed its cap)."""
    rows = est.sample_index_
    data = data if len(rows) == len(data) else data.subset(rows)
    p = np.asarray(est.propensity_, dtype=float)
    gold = data.is_gold
    t = data.treatment
    folds = cross_fitting_folds(data.X, t, 5, seed, repeated_groups(data.query_groups))  # a query in one fold
    scores = cross_val_predict(default_classifier(seed), data.X, t, cv=folds, method="predict_proba",
                               n_jobs=n_jobs)[:, 1]
    auc = float(roc_auc_score(t, scores))
    mw = stats.mannwhitneyu(scores[gold], scores[~gold], alternative="greater")
    ess_gold = _ess(1 / p[gold])
    ess_pref = _ess(1 / (1 - p[~gold]))
    qs = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)
    return {
        "n_rows": len(data), "n_gold": data.n_gold, "n_preference": data.n_preference,
        "gold_share": data.n_gold / len(data),
        "classifier": "LightGBM (models.default_classifier), 5-fold out-of-fold scores (folds by query where "
                      "queries repeat)",
        "n_clusters": int(len(data) if data.query_id is None else len(np.unique(data.query_groups))),
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


# ---------------------------------------------------------------------------- 3. the bias
def _bias_numbers(est: BiasEstimator, effect: np.ndarray, alpha: float, numbers: dict) -> dict:
    ate = est.ate(alpha)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    out = {
        "average": {k: float(ate[k]) for k in ("estimate", "std_error", "lower", "upper")},
        "average_method": "mean of the doubly robust pseudo-outcomes of the model fitted on all rows "
                          "(BiasEstimator.ate, causal_router.average.AverageBias); normal interval, clustered by "
                          "query where queries repeat (the percentile cluster bootstrap under 30 queries); the "
                          "fitted scale constant's uncertainty included (delta method)",
        "n_clusters": float(ate["n_clusters"]),
        "confidence_level": 1 - alpha,
        "estimated": {
            "mean": float(np.mean(effect)), "sd": float(np.std(effect)),
            "min": float(np.min(effect)), "max": float(np.max(effect)),
            "quantiles": dict(zip([f"q{int(100 * q)}" for q in qs], np.quantile(effect, qs).tolist())),
            "share_positive": float(np.mean(effect > 0)),
        },
        "final_stage": est.final_stage_,
        "correction": _correction_numbers(est),
    }
    cal = numbers.get("calibration", {})
    if cal.get("available"):
        z = stats.norm.ppf(1 - alpha / 2)
        m, se = cal["heldout_average"], cal["heldout_average_std_error"]
        out["heldout_average"] = {"estimate": m, "std_error": se, "lower": m - z * se, "upper": m + z * se}
    return out


def _correction_numbers(est: BiasEstimator) -> dict | None:
    """What the stacked final stage used and why (``BiasEstimator.heterogeneity_`` and
    ``correction_``); None for a final stage without an evidence rule."""
    if est.heterogeneity_ is None:
        return None
    return {**{k: float(v) for k, v in est.heterogeneity_.items()}, "reading": est.correction_,
            "rule": "share = max(0, 1 - (threshold / z)^2) for z = b / se > 0, else 0: the non-negative garrote "
                    "at threshold standard errors of b, the calibration slope of the stacked fit's departure "
                    "from the constant on nested out-of-fold rows (se clustered by query)"}


def _judge_numbers(data: EvalData, est: BiasEstimator, seed: int) -> dict | None:
    """The judge's weight against the gold rows alone and its evidence
    (:func:`causal_router.router.judge_evidence`, the weak-judge fallback of
    ``MetaRouter(preference_weight="auto")``), with a one-sentence ``reading``; None where the
    bias model gives no out-of-fold estimates (a fixed final stage other than the stack)."""
    judge = judge_evidence(data, est, random_state=seed)
    if not np.isfinite(judge["slope"]):
        return None
    out = {k: float(v) for k, v in judge.items()}
    out["reading"] = describe_judge(judge)
    return out


def _group_table(phi, effect, is_gold, labels, alpha, order=None, queries=None, seed=None):
    """Per group: rows, gold rows, queries, mean pseudo-outcome with its interval, model's mean; and
    a Wald test. With query codes (``queries``) each group's standard error is clustered by query
    and a group of fewer than 30 queries gets the percentile cluster bootstrap interval
    (:func:`causal_router.clusters.clustered_mean`); without them, rows are the units. Rows in
    category order when ``order`` is given, else largest group first."""
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
    if queries is None:
        table["n_clusters"] = table["n"]
    else:
        stats_by_group = {}
        for name, idx in g.indices.items():
            if len(idx) < 2:
                continue
            stats_by_group[name] = clustered_mean(phi[idx], queries[idx], alpha=alpha, random_state=seed, warn=False)
        clustered = pd.DataFrame(stats_by_group).T.reindex(table.index)
        for col in ("std_error", "lower", "upper"):
            table[col] = clustered[col]
        table["n_clusters"] = frame.assign(q=queries).groupby("group", sort=False)["q"].nunique()
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


# ---------------------------------------------------------------------------- helpers
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


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def _records(table: pd.DataFrame, index_name: str) -> list[dict]:
    return [{index_name: str(idx), **{k: v for k, v in row.items()}} for idx, row in table.iterrows()]
