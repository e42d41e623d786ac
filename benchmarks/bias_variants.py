"""Development measurements behind the evidence rules of the default (issue 24), on the suite's
development seeds only (splits seeded 0, 1, ...; the README table is measured on the report
seeds, ``bias_suite.py --seeds report``).

    python benchmarks/bias_variants.py --settings constant sparse_nonlinear weak_judge --splits 4 --out dev
    python benchmarks/bias_variants.py --from-csv dev/variants.csv

Per split of a synthetic setting, on one set of cross-fitted nuisances (as ``bias_suite.py``):

- ``old_stack``: the stacked final stage before issue 24 (one fold draw, in-sample NNLS weights,
  no evidence rule), for reference;
- the stacked final stage with ``n_repeats`` = 1, 2, 3 fold draws and the soft rule at one
  standard error (``stack_r1``, ``stack_r2``, ``stack_r3``);
- on the two-draw stack's evidence: the share rule varied (``share_t0``: the calibrated stack, no
  threshold; ``share_t1.5``, ``share_t2``: soft rule at 1.5 and 2 standard errors;
  ``hard_t1``, ``hard_t2``: all of the calibrated stack beyond 1 or 2 standard errors, nothing
  below; ``share_t1_max1.5``: the soft rule with the slope allowed up to 1.5);
- the weak-judge fallback on the two-draw stack (:func:`causal_router.router.judge_evidence`),
  three ways of using its weight w, each with w from the soft rule at one standard error
  (``soft``), the plain clipped weight (``plain``) and a hard rule (``hard``: w = 1 beyond one
  standard error, else 0): ``judge_weight_*`` (the preference rows' weight in the gain model is
  w), ``judge_label_*`` (each preference label is w (y + Delta(s)) + (1 - w) c g(s), g the
  gain model on the gold rows alone), ``judge_blend_*`` (the router's prediction is
  w meta(s) + (1 - w) g(s)).

Writes ``variants.csv`` (one row per split and method, oracle share, plus each stack's evidence)
and prints the mean oracle share per setting and method, and each method's shortfall against the
better of Pooled and MeanShift and against Gold-only.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import delayed
from sklearn.base import BaseEstimator, RegressorMixin

_HERE = str(Path(__file__).resolve().parent)
sys.path.insert(0, _HERE)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_HERE, os.environ.get("PYTHONPATH")) if p)
from bias_settings import SETTINGS  # noqa: E402
from bias_suite import CANDIDATES, _gain_predictions  # noqa: E402


class OldStack(RegressorMixin, BaseEstimator):
    """The stacked final stage before issue 24: NNLS weights on one draw of 5-fold out-of-fold
    predictions, refits on every row, no evidence rule."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        from scipy.optimize import nnls
        from sklearn.model_selection import KFold, StratifiedKFold

        from causal_router.models import final_stage, out_of_fold_predictions

        X, y = np.asarray(X, float), np.asarray(y, float)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        strata = (w > 0.25).astype(int)
        if np.bincount(strata, minlength=2).min() >= 5:
            folds = list(StratifiedKFold(5, shuffle=True, random_state=self.random_state).split(w, strata))
        else:
            folds = list(KFold(5, shuffle=True, random_state=self.random_state).split(w))
        oof = out_of_fold_predictions(CANDIDATES, X, y, w, folds, self.random_state)
        root = np.sqrt(w)
        self.weights_, _ = nnls(oof * root[:, None], y * root)
        self.models_ = [final_stage(n, self.random_state).fit(X, y, sample_weight=w) if b > 0 else None
                        for n, b in zip(CANDIDATES, self.weights_)]
        return self

    def predict(self, X):
        return np.zeros(len(X)) + sum(b * m.predict(X) for b, m in zip(self.weights_, self.models_) if m is not None)


def dev_stack(**params):
    """A StackedFinalStage that also refits the candidates it does not use (share 0), so that
    other share rules can be applied to its evidence afterwards (``departure``), and keeps what
    round 3's semi-nested evidence needs (``dev_draws_``: each fold draw's folds and out-of-fold
    candidate predictions, recomputed with the stack's own seeds and rows; ``dev_cv_``: the
    cross-validation rows, their targets, weights and groups)."""
    from causal_router._utils import as_seed
    from causal_router.models import StackedFinalStage, final_stage, fold_ids, out_of_fold_predictions

    class DevStack(StackedFinalStage):
        def fit(self, X, y, sample_weight=None):
            super().fit(X, y, sample_weight)
            X, y = np.asarray(X, float), np.asarray(y, float).reshape(-1)
            w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
            self.estimators_ = [m if m is not None or b == 0 else final_stage(n, self.random_state).fit(
                X, y, sample_weight=w) for n, b, m in zip(self.candidates, self.weights_, self.estimators_)]
            rows = np.flatnonzero(np.isfinite(self.oof_stack_))
            heavy = w > 0.25
            wc = w[rows].copy()
            light_kept = int((~heavy[rows]).sum())
            if light_kept < int((~heavy).sum()):  # the stack's reweighting of the light rows it kept
                wc[~heavy[rows]] *= (~heavy).sum() / light_kept
            g = None if self.groups is None else np.asarray(self.groups)[rows]
            seed = as_seed(self.random_state)
            self.dev_draws_ = []
            for r in range(self.n_repeats):
                fold = fold_ids(heavy[rows], g, int(self.cv), None if seed is None else seed + r)
                folds = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(int(self.cv))]
                self.dev_draws_.append((fold, out_of_fold_predictions(tuple(self.candidates), X[rows], y[rows], wc,
                                                                      folds, seed)))
            self.dev_cv_ = (rows, y[rows], wc, g)
            return self

        def departure(self, X):
            return (np.zeros(len(X)) - self.constant_
                    + sum(b * m.predict(X) for b, m in zip(self.weights_, self.estimators_) if m is not None))

    return DevStack(**params)


class Stages(RegressorMixin, BaseEstimator):
    """Fits every named final stage (name -> unfitted estimator) on the same residuals;
    ``predict`` uses the one named by ``use``; ``oof_`` is the two-draw stack's."""

    def __init__(self, stages=None, oof_of="stack_r2"):
        self.stages = stages
        self.oof_of = oof_of

    def fit(self, X, y, sample_weight=None):
        from sklearn.base import clone

        self.models_ = {n: clone(m).fit(X, y, sample_weight=sample_weight) for n, m in self.stages.items()}
        self.oof_ = self.models_[self.oof_of].oof_
        self.use = self.oof_of
        return self

    def predict(self, X):
        return self.models_[self.use].predict(X)


def _share(stack, threshold, hard=False, cap=1.0):
    b, se = stack.slope_, stack.slope_std_error_
    if not np.isfinite(b) or b <= 0:
        return 0.0
    z = b / se if se > 0 else np.inf
    if hard:
        return min(b, cap) if z > threshold else 0.0
    return min(b, cap) * max(0.0, 1 - (threshold / z) ** 2)


def run_split(name: str, split_no: int, seed: int, round_no: int = 2) -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), warnings.catch_warnings():
        # econml warns on every fit that the final stage has a nonzero intercept (it predicts the
        # constant bias at zero features); nothing else is filtered
        warnings.filterwarnings("ignore", message="The final model has a nonzero intercept")
        return {1: _run_split, 2: _run_split_round2, 3: _run_split_round3}[round_no](name, split_no, seed)


def _run_split(name, split_no, seed):
    from causal_router import BiasEstimator
    from causal_router._utils import as_seed
    from causal_router.baselines import GoldOnly, MeanShift, Pooled
    from causal_router.data import pooled_outcome
    from causal_router.datasets import reveal_split
    from causal_router.evaluate import oracle_share
    from causal_router.models import default_regressor, final_stage
    from causal_router.router import judge_evidence

    setting = SETTINGS[name]
    frame = setting.make(seed)
    features = [c for c in frame.columns if c[:1] == "x" and c[1:].isdigit()]
    split = reveal_split(frame, features, n_gold=setting.n_gold, n_test=setting.n_test, random_state=seed)
    data, test_X, gold = split.train, split.test_X, split.test_gold
    rows = []

    def add(method, pred, **extra):
        rows.append({"setting": name, "split": split_no, "seed": seed, "method": method,
                     "oracle_share": oracle_share(pred, gold), **extra})

    stages = {c: final_stage(c, seed) for c in CANDIDATES}
    stages["old_stack"] = OldStack(random_state=seed)
    for r in (1, 2, 3):
        stages[f"stack_r{r}"] = dev_stack(n_repeats=r, random_state=seed)
    bias = BiasEstimator(model_final=Stages(stages), random_state=seed).fit(data)
    model = bias.estimator_.model_final_
    pref = ~data.is_gold
    c = bias.scale_
    effects = {}
    for m in stages:
        model.use = m
        effects[m] = bias.effect(data.X) * c
        evidence = {}
        if m.startswith("stack_r"):
            st = model.models_[m]
            evidence = {"share": st.share_, "slope": st.slope_, "slope_se": st.slope_std_error_,
                        "loss_gain": st.loss_gain_, "loss_gain_se": st.loss_gain_std_error_}
        add(m, _gain_predictions(data, c, effects[m][pref], test_X, seed), **evidence)
    # share rules on the two-draw stack's evidence
    st = model.models_["stack_r2"]
    model.use = "stack_r2"
    departure = st.departure(data.X)
    for label, kw in {"share_t0": dict(threshold=0), "share_t1.5": dict(threshold=1.5),
                      "share_t2": dict(threshold=2), "hard_t1": dict(threshold=1, hard=True),
                      "hard_t2": dict(threshold=2, hard=True), "share_t1_max1.5": dict(threshold=1, cap=1.5)}.items():
        share = _share(st, **kw)
        eff = st.constant_ + share * departure
        add(label, _gain_predictions(data, c, eff[pref], test_X, seed), share=share)
    # the weak-judge fallback, on the two-draw stack
    ev = judge_evidence(data, bias, random_state=seed)
    b, se = ev["slope"], ev["std_error"]
    z = b / se if se > 0 else np.inf
    weights = {"soft": ev["weight"], "plain": float(np.clip(b, 0, 1)), "hard": 1.0 if z > 1 else 0.0}
    labels = pooled_outcome(data.gain, data.is_gold, c)
    corrected = labels.copy()
    corrected[pref] += effects["stack_r2"][pref]
    g_model = default_regressor(as_seed(seed)).fit(data.X[data.is_gold], data.gain[data.is_gold])
    g_pref = g_model.predict(data.X[pref]) * c
    g_test = g_model.predict(test_X)
    meta_test = default_regressor(as_seed(seed)).fit(data.X, corrected).predict(test_X) / c
    for kind, w in weights.items():
        extra = {"judge_w": w, "judge_b": b, "judge_se": se, "judge_corr": ev["judge_correlation"]}
        sw = np.where(data.is_gold, 1.0, w)
        if w > 0:
            pred = default_regressor(as_seed(seed)).fit(data.X, corrected, sample_weight=sw).predict(test_X) / c
        else:
            pred = default_regressor(as_seed(seed)).fit(data.X[data.is_gold], labels[data.is_gold]).predict(test_X) / c
        add(f"judge_weight_{kind}", pred, **extra)
        blended = corrected.copy()
        blended[pref] = w * corrected[pref] + (1 - w) * g_pref
        add(f"judge_label_{kind}", default_regressor(as_seed(seed)).fit(data.X, blended).predict(test_X) / c, **extra)
        add(f"judge_blend_{kind}", w * meta_test + (1 - w) * g_test, **extra)
    add("pooled", Pooled(random_state=seed).fit(data).predict_gain(test_X))
    add("mean_shift", MeanShift(random_state=seed).fit(data).predict_gain(test_X))
    add("gold_only", GoldOnly(random_state=seed).fit(data).predict_gain(test_X))
    add("all_golden", GoldOnly(random_state=seed).fit(split.oracle).predict_gain(test_X))
    return pd.DataFrame(rows)


#: Round 2: share rules on the three-draw stack's nested evidence (b, its se, z = b / se).
SHARE_RULES = {
    "none": lambda b, z: 1.0,
    "b": lambda b, z: min(max(b, 0.0), 1.0),
    "garrote_b_k1": lambda b, z: min(max(b, 0.0), 1.0) * max(0.0, 1 - (1 / z) ** 2) if z > 0 else 0.0,
    "gate_soft_k0.5": lambda b, z: max(0.0, 1 - (0.5 / z) ** 2) if z > 0 else 0.0,
    "gate_soft_k1": lambda b, z: max(0.0, 1 - (1 / z) ** 2) if z > 0 else 0.0,
    "gate_hard_0": lambda b, z: 1.0 if z > 0 else 0.0,
    "gate_hard_1": lambda b, z: 1.0 if z > 1 else 0.0,
}


def _run_split_round2(name, split_no, seed):
    """Round 2: the share rules of SHARE_RULES on a three-draw stack, each with the preference
    labels corrected as they are (``<rule>``) and blended toward the gold rows' model by the
    judge's weight at one standard error (``<rule>+judge``; at two for two rules, ``+judge_k2``)."""
    from causal_router import BiasEstimator
    from causal_router._utils import as_seed
    from causal_router.baselines import GoldOnly, MeanShift, Pooled
    from causal_router.data import pooled_outcome
    from causal_router.datasets import reveal_split
    from causal_router.evaluate import oracle_share
    from causal_router.models import default_regressor, final_stage
    from causal_router.router import judge_evidence

    setting = SETTINGS[name]
    frame = setting.make(seed)
    features = [c for c in frame.columns if c[:1] == "x" and c[1:].isdigit()]
    split = reveal_split(frame, features, n_gold=setting.n_gold, n_test=setting.n_test, random_state=seed)
    data, test_X, gold = split.train, split.test_X, split.test_gold
    rows = []

    def add(method, pred, **extra):
        rows.append({"setting": name, "split": split_no, "seed": seed, "method": method,
                     "oracle_share": oracle_share(pred, gold), **extra})

    stages = {c: final_stage(c, seed) for c in CANDIDATES}
    stages["old_stack"] = OldStack(random_state=seed)
    stages["stack_r3"] = dev_stack(n_repeats=3, random_state=seed)
    bias = BiasEstimator(model_final=Stages(stages, oof_of="stack_r3"), random_state=seed).fit(data)
    model = bias.estimator_.model_final_
    pref, c = ~data.is_gold, bias.scale_
    for m in (*CANDIDATES, "old_stack"):
        model.use = m
        add(m, _gain_predictions(data, c, bias.effect(data.X)[pref] * c, test_X, seed))
    st = model.models_["stack_r3"]
    cv_rows = st.dev_cv_[0]
    S, C = st.oof_stack_[cv_rows], st.oof_constant_[cv_rows]
    oof_ref = bias.judge_oof_ * c  # mu0 + the stack's own oof, preference scale
    mu0 = oof_ref[cv_rows] - st.oof_[cv_rows]
    b, se = st.slope_, st.slope_std_error_
    z = (b / se if se > 0 else np.inf) if np.isfinite(b) else 0.0
    b = b if np.isfinite(b) else 0.0
    departure = st.departure(data.X)
    labels0 = pooled_outcome(data.gain, data.is_gold, c)
    g_model = default_regressor(as_seed(seed)).fit(data.X[data.is_gold], data.gain[data.is_gold])
    g_pref = g_model.predict(data.X[pref]) * c
    for rule, fn in SHARE_RULES.items():
        share = fn(b, z)
        corrected = labels0.copy()
        corrected[pref] += (st.constant_ + share * departure)[pref]
        extra = {"share": share, "slope": b, "slope_se": se}
        add(rule, default_regressor(as_seed(seed)).fit(data.X, corrected).predict(test_X) / c, **extra)
        judge_oof = np.full(len(bias.judge_oof_), np.nan)
        judge_oof[cv_rows] = (mu0 + C + share * (S - C)) / c
        saved, bias.judge_oof_ = bias.judge_oof_, judge_oof
        for k in ((1, 2) if rule in ("gate_soft_k1", "gate_hard_0") else (1,)):
            ev = judge_evidence(data, bias, threshold=k, random_state=seed)
            w = ev["weight"]
            blended = corrected.copy()
            blended[pref] = w * corrected[pref] + (1 - w) * g_pref
            add(f"{rule}+judge" + ("" if k == 1 else "_k2"),
                default_regressor(as_seed(seed)).fit(data.X, blended).predict(test_X) / c,
                judge_w=w, judge_b=ev["slope"], judge_se=ev["std_error"], **extra)
        bias.judge_oof_ = saved
    add("pooled", Pooled(random_state=seed).fit(data).predict_gain(test_X))
    add("mean_shift", MeanShift(random_state=seed).fit(data).predict_gain(test_X))
    add("gold_only", GoldOnly(random_state=seed).fit(data).predict_gain(test_X))
    add("all_golden", GoldOnly(random_state=seed).fit(split.oracle).predict_gain(test_X))
    return pd.DataFrame(rows)


def _semi_nested_evidence(st):
    """Evidence from the candidates' out-of-fold predictions without nested refits: per draw,
    fold k's stack weights fitted on the other folds' out-of-fold predictions (whose candidates
    saw fold k: cheaper, slightly optimistic), averaged over the draws; slope, se, z as the stack's."""
    from scipy.optimize import nnls

    from causal_router.clusters import score_std_error

    rows, y, w, g = st.dev_cv_
    C = st.oof_constant_[rows]
    S = np.zeros(len(y))
    root = np.sqrt(w)
    for fold, F in st.dev_draws_:
        for k in range(int(fold.max()) + 1):
            out = fold != k
            beta, _ = nnls(F[out] * root[out, None], y[out] * root[out])
            S[fold == k] += F[fold == k] @ beta / len(st.dev_draws_)
    h, e = S - C, y - C
    A = float(w @ h ** 2)
    if A <= 0:
        return 0.0, float("nan"), 0.0
    b = float(w @ (h * e)) / A
    se = score_std_error(w * h * (e - b * h), g) / A
    return b, se, (b / se if se > 0 else np.inf)


def _run_split_round3(name, split_no, seed):
    """Round 3, the finalists: the three-draw stack used in full (``none``), or gated by the soft
    rule on its nested evidence (``gate_soft_k0.5``, ``gate_soft_k1``) or on the cheaper
    semi-nested evidence (``semi_soft_k0.5``, ``semi_soft_k1``), each with the judge's blend at
    one (``+judge``) or two (``+judge_k2``) standard errors."""
    from causal_router import BiasEstimator
    from causal_router._utils import as_seed
    from causal_router.baselines import GoldOnly, MeanShift, Pooled
    from causal_router.data import pooled_outcome
    from causal_router.datasets import reveal_split
    from causal_router.evaluate import oracle_share
    from causal_router.models import default_regressor
    from causal_router.router import judge_evidence

    setting = SETTINGS[name]
    frame = setting.make(seed)
    features = [c for c in frame.columns if c[:1] == "x" and c[1:].isdigit()]
    split = reveal_split(frame, features, n_gold=setting.n_gold, n_test=setting.n_test, random_state=seed)
    data, test_X, gold = split.train, split.test_X, split.test_gold
    rows = []

    def add(method, pred, **extra):
        rows.append({"setting": name, "split": split_no, "seed": seed, "method": method,
                     "oracle_share": oracle_share(pred, gold), **extra})

    bias = BiasEstimator(model_final=Stages({"stack_r3": dev_stack(n_repeats=3, random_state=seed)},
                                            oof_of="stack_r3"), random_state=seed).fit(data)
    st = bias.estimator_.model_final_.models_["stack_r3"]
    pref, c = ~data.is_gold, bias.scale_
    cv_rows = st.dev_cv_[0]
    S, C = st.oof_stack_[cv_rows], st.oof_constant_[cv_rows][:3]
    mu0 = bias.judge_oof_[cv_rows] * c - st.oof_[cv_rows]
    b, se = st.slope_, st.slope_std_error_
    z = (b / se if se > 0 else np.inf) if np.isfinite(b) else 0.0
    sb, sse, sz = _semi_nested_evidence(st)
    departure = st.departure(data.X)
    labels0 = pooled_outcome(data.gain, data.is_gold, c)
    g_model = default_regressor(as_seed(seed)).fit(data.X[data.is_gold], data.gain[data.is_gold])
    g_pref = g_model.predict(data.X[pref]) * c
    rules = {"none": 1.0, "gate_soft_k0.5": SHARE_RULES["gate_soft_k0.5"](b, z),
             "gate_soft_k1": SHARE_RULES["gate_soft_k1"](b, z),
             "semi_soft_k0.5": SHARE_RULES["gate_soft_k0.5"](sb, sz), "semi_soft_k1": SHARE_RULES["gate_soft_k1"](sb, sz)}
    for rule, share in rules.items():
        corrected = labels0.copy()
        corrected[pref] += (st.constant_ + share * departure)[pref]
        extra = {"share": share, "z": z, "semi_z": sz}
        add(rule, default_regressor(as_seed(seed)).fit(data.X, corrected).predict(test_X) / c, **extra)
        judge_oof = np.full(len(bias.judge_oof_), np.nan)
        judge_oof[cv_rows] = (mu0 + C + share * (S - C)) / c
        saved, bias.judge_oof_ = bias.judge_oof_, judge_oof
        for k in (1, 2):
            ev = judge_evidence(data, bias, threshold=k, random_state=seed)
            w = ev["weight"]
            blended = corrected.copy()
            blended[pref] = w * corrected[pref] + (1 - w) * g_pref
            add(f"{rule}+judge" + ("" if k == 1 else "_k2"),
                default_regressor(as_seed(seed)).fit(data.X, blended).predict(test_X) / c, judge_w=w, **extra)
        bias.judge_oof_ = saved
    add("pooled", Pooled(random_state=seed).fit(data).predict_gain(test_X))
    add("mean_shift", MeanShift(random_state=seed).fit(data).predict_gain(test_X))
    add("gold_only", GoldOnly(random_state=seed).fit(data).predict_gain(test_X))
    add("all_golden", GoldOnly(random_state=seed).fit(split.oracle).predict_gain(test_X))
    return pd.DataFrame(rows)


def report(runs: pd.DataFrame) -> str:
    means = runs.groupby(["setting", "method"])["oracle_share"].mean().unstack()
    order = [s for s in SETTINGS if s in means.index]
    means = means.loc[order]
    base = means[["pooled", "mean_shift"]].max(axis=1)
    methods = [m for m in means.columns if m not in ("pooled", "mean_shift", "gold_only", "all_golden")]
    lines = [f"splits per setting: {runs.groupby('setting')['split'].nunique().to_dict()}", "",
             "mean oracle share:", means.round(3).to_string(), "",
             "minus the better of Pooled and MeanShift (min over settings | mean):"]
    for m in methods:
        d = means[m] - base
        g = means[m] - means["gold_only"]
        het = [s for s in order if SETTINGS[s].heterogeneous]
        gap = (means.loc[het, m] - base[het]) / (means.loc[het, "all_golden"] - base[het])
        gap = gap[(means.loc[het, "all_golden"] - base[het]) > 0.02]
        weak = [s for s in order if SETTINGS[s].weak_judge]
        lines.append(f"  {m:22s} min {d.min():+.3f} ({d.idxmin()}), mean {d.mean():+.4f}; below by > 0.005 on "
                     f"{int((d < -0.005).sum())}; vs Gold-only on weak judges min "
                     f"{g[weak].min() if weak else np.nan:+.3f}; gap closed (heterogeneous) {gap.mean():.0%}")
    return "\n".join(lines)


def main(argv=None) -> None:
    from causal_router._parallel import run_parallel

    synthetic = [s for s, v in SETTINGS.items() if not v.real]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=synthetic, choices=synthetic)
    parser.add_argument("--splits", type=int, default=4)
    parser.add_argument("--first-split", type=int, default=0, help="splits first-split .. splits - 1 (seed = split)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default="bias_variants_out")
    parser.add_argument("--round", type=int, choices=(1, 2, 3), default=2, help="which round of variants")
    parser.add_argument("--from-csv")
    args = parser.parse_args(argv)
    if args.from_csv:
        print(report(pd.read_csv(args.from_csv)))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"variants_round{args.round}.csv"
    earlier = pd.read_csv(path) if path.exists() else None
    done = set() if earlier is None else set(zip(earlier["setting"], earlier["split"]))
    tasks = [delayed(run_split)(s, i, i, args.round) for i in range(args.first_split, args.splits) for s in args.settings if (s, i) not in done]
    runs = run_parallel(tasks, n_jobs=args.n_jobs, desc="splits", unit="split") if tasks else []
    allruns = pd.concat(([earlier] if earlier is not None else []) + runs, ignore_index=True)
    allruns.to_csv(path, index=False)
    print(report(allruns))


if __name__ == "__main__":
    main()
