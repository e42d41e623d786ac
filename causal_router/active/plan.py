"""How many gold labels reach a target: :func:`plan_gold` and its result, :class:`GoldPlan`.

Two targets, two laws.

- The average bias's confidence interval (``target_ci_width``). ``ate()``'s standard error is
  the spread of per-row doubly robust terms over sqrt(n_rows). With the N queries fixed and n of
  them gold, a gold row's term carries the weight 1 / P(gold) ~ N / n, so the gold rows' sum of
  squared terms falls as 1 / n (the 1/sqrt(n) law), while the preference rows' grows as
  1 / (N - n) (fewer rows, each weighted by 1 / P(preference)): width(n) = 2 z sqrt(S_gold n_now /
  n + S_pref (N - n_now) / (N - n)) / N, with S_gold and S_pref the sums over the current gold and
  preference rows. Solved for the target (a quadratic in n); the interval is the bootstrap (over
  rows) of S_gold and S_pref. Where queries repeat, ``ate()``'s standard error is clustered by
  query: its variance is G / (G - 1) (S_gold + S_pref + S_cross) / N^2, S_cross the sum over
  queries of the products of different rows' centred terms; more gold labels on the same queries
  shrink the row terms as above but not S_cross (what the queries share: the bias varying between
  queries, their common noise), which is held fixed: width(n) = 2 z sqrt(G / (G - 1) (S_gold n_now
  / n + S_pref (N - n_now) / (N - n) + S_cross)) / N, a floor no number of labels on these queries
  goes below. The bootstrap then resamples whole queries.
- The oracle share (``target_oracle_share``). A learning curve: the gold rows are split into K
  folds; for each fold the router is refitted on nested subsamples (20%, 40%, ..., 100%) of the
  other folds' gold rows plus every preference row and predicts the held-out gold rows; the
  out-of-fold predictions of all folds at one size give one oracle share on all gold rows. An
  inverse power law share(n) = a - b n^-c (c in [0.1, 2]) is fitted to the points and solved for
  the target; the interval is the bootstrap over gold rows of the whole curve. Held-out rows
  chosen by a design (``gold_probability``) are weighted by 1 / gold_probability, so the share is
  the population's. Extrapolation assumes further gold labels come from the same design. Where
  queries repeat, the folds hold out whole queries (their gold rows are predicted by routers
  trained without any row of those queries) and the bootstrap resamples queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import delayed
from scipy import optimize, stats
from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from .._parallel import run_parallel
from .._utils import as_seed
from .._validation import DataError
from ..data import EvalData
from ..evaluate import oracle_share
from ..models import repeated_groups

__all__ = ["plan_gold", "GoldPlan", "CURVE_FRACTIONS"]

#: Nested subsample sizes of the learning curve, as fractions of the training folds' gold rows.
CURVE_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
#: Bootstrap resamples behind the intervals.
N_BOOTSTRAP = 400
_Z = stats.norm.ppf(0.975)


@dataclass
class GoldPlan:
    """How many gold labels reach the targets, with 95% intervals.

    Built by :func:`plan_gold`; each parameter is kept as the attribute of the same name.

    Parameters
    ----------
    n_gold : int
        Gold rows in the data now.
    targets : DataFrame
        One row per target given (``"ci_width"``, ``"oracle_share"``): ``target``, ``current``
        (the value now), ``n_gold_needed`` (total gold labels; ``inf`` where the fitted law never
        reaches the target), ``lower`` and ``upper`` (95% bootstrap interval of it) and
        ``n_more`` (labels to add, ``n_gold_needed - n_gold``, at least 0).
    ci_width_curve : DataFrame
        The law's CI width at a grid of gold-label counts (``n_gold``, ``ci_width``, ``lower``,
        ``upper``).
    learning_curve : DataFrame or None, default=None
        The measured points (``n_gold``, ``oracle_share``, ``std_error``) where a target oracle
        share was given.
    share_curve : DataFrame or None, default=None
        The fitted power law and its band on a grid (``n_gold``, ``oracle_share``, ``lower``, ``upper``).
    share_law : dict or None, default=None
        The fitted ``a`` (ceiling), ``b``, ``c`` of share = a - b n^-c (None without a target
        oracle share).
    """

    n_gold: int
    targets: pd.DataFrame
    ci_width_curve: pd.DataFrame
    learning_curve: pd.DataFrame | None = None
    share_curve: pd.DataFrame | None = None
    share_law: dict | None = field(default=None)

    def summary(self) -> str:
        """One sentence per target.

        Returns
        -------
        str
            The sentences, one line per row of :attr:`targets`: the target, the current value,
            the gold labels needed with their 95% interval, or that the law never reaches it.
        """
        lines = []
        for name, row in self.targets.iterrows():
            what = "a 95% CI of the average bias" if name == "ci_width" else "an oracle share"
            if np.isfinite(row["n_gold_needed"]):
                lines.append(f"{what} of {row['target']:.4g} (now {row['current']:.4g} with {self.n_gold} gold labels) "
                             f"needs about {row['n_gold_needed']:.0f} gold labels in all (95% interval "
                             f"{_fmt(row['lower'])}-{_fmt(row['upper'])}): {row['n_more']:.0f} more")
            else:
                lines.append(f"{what} of {row['target']:.4g} (now {row['current']:.4g} with {self.n_gold} gold labels) "
                             "is not reached by the fitted law at any number of gold labels"
                             + (f" (its ceiling is {self.share_law['a']:.3f})" if name == "oracle_share" else ""))
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if np.isfinite(value) else "never"


def plan_gold(data: EvalData, *, target_oracle_share: float | None = None, target_ci_width: float | None = None,
              router=None, n_folds: int = 5, random_state=None, n_jobs: int | None = 1,
              progress: bool = True) -> GoldPlan:
    """How many gold labels reach a target oracle share or a target width of the average bias's CI.

    Parameters
    ----------
    data : EvalData
        The gold and preference rows at hand (with ``gold_probability`` where a design chose
        the gold rows).
    target_oracle_share : float in (0, 1), optional
        Oracle share (:func:`causal_router.evaluate.oracle_share`) to reach: learning curve by
        cross-validation over the gold rows (``n_folds`` x 5 router refits).
    target_ci_width : float > 0, optional
        Width (upper minus lower, gold scale) of the 95% CI of the average bias to reach.
    router : router, optional
        The router to plan for, fitted or not (its parameters are cloned; default
        ``MetaRouter(random_state=random_state)``). Its ``bias`` model gives the CI width.
    n_folds : int
        Folds over the gold rows for the learning curve.
    random_state : int or None
        Seed of the router, of the folds and of the bootstraps.
    n_jobs : int or None
        Parallel refits of the learning curve (joblib).
    progress : bool
        Show a progress bar over the refits.

    Returns
    -------
    GoldPlan
        The gold labels needed for each target given, with 95% intervals, and the curves.
    """
    from ..bias import BiasEstimator
    from ..router import MetaRouter

    if not isinstance(data, EvalData):
        raise DataError(f"data must be an EvalData, got {type(data).__name__}")
    if target_oracle_share is None and target_ci_width is None:
        raise DataError("name a target: target_oracle_share or target_ci_width")
    if target_ci_width is not None and not (np.isfinite(target_ci_width) and target_ci_width > 0):
        raise DataError(f"target_ci_width must be a positive number, got {target_ci_width!r}")
    if target_oracle_share is not None and not (0 < target_oracle_share < 1):
        raise DataError(f"target_oracle_share must be in (0, 1), got {target_oracle_share!r}")
    data.require_both_sources("plan_gold")
    seed = as_seed(random_state)
    template = clone(router) if router is not None else MetaRouter(random_state=seed)
    bias_template = getattr(template, "bias", None)
    bias = clone(bias_template) if bias_template is not None else BiasEstimator(random_state=seed)
    if bias.random_state is None:
        bias.set_params(random_state=seed)
    if "scale" in template.get_params():
        bias.set_params(scale=template.get_params()["scale"])  # as MetaRouter.fit does
    rng = np.random.default_rng(seed)

    rows: dict = {}
    width_curve = _width_plan(bias.fit(data), data, target_ci_width, rng, rows)
    learning = share_curve = law = None
    if target_oracle_share is not None:
        learning, share_curve, law = _share_plan(template, data, target_oracle_share, n_folds, rng, n_jobs,
                                                 progress, rows)
    targets = pd.DataFrame.from_dict(rows, orient="index")
    if len(targets):
        targets["n_more"] = np.maximum(targets["n_gold_needed"] - data.n_gold, 0)
    return GoldPlan(n_gold=data.n_gold, targets=targets, ci_width_curve=width_curve, learning_curve=learning,
                    share_curve=share_curve, share_law=law)


# ---------------------------------------------------------------------------- CI width
def _width_parts(phi: np.ndarray, is_gold: np.ndarray, groups=None) -> tuple[float, float, float]:
    """(S_gold, S_pref, S_cross): the sums of squared centred doubly robust terms over gold and
    preference rows, and (with query codes ``groups``) the sum over queries of the products of
    different rows' centred terms, (sum_g c)^2 - sum_g c^2 summed over queries (0 without groups)."""
    centred = phi - phi.mean()
    squared = centred ** 2
    cross = 0.0
    if groups is not None:
        totals = np.bincount(groups, weights=centred)
        cross = float(np.sum(totals ** 2) - squared.sum())
    return float(squared[is_gold].sum()), float(squared[~is_gold].sum()), cross


def _width_at(n, s_gold, s_pref, n_gold, n_rows, s_cross=0.0, factor=1.0):
    """CI width with n of the n_rows rows gold (the law):
    2 z sqrt(factor (S_gold n_gold / n + S_pref (n_rows - n_gold) / (n_rows - n) + S_cross)) / n_rows."""
    n = np.asarray(n, dtype=float)
    inner = s_gold * n_gold / n + s_pref * (n_rows - n_gold) / (n_rows - n)
    if s_cross or factor != 1.0:
        inner = factor * np.maximum(inner + s_cross, 0.0)
    return 2 * _Z * np.sqrt(inner) / n_rows


def _n_for_width(target, s_gold, s_pref, n_gold, n_rows, s_cross=0.0, factor=1.0) -> float:
    """Smallest n with width(n) <= target: the smaller root of C n^2 + (B - A - C N) n + A N = 0,
    A = S_gold n_gold, B = S_pref (N - n_gold), C = (target N / 2z)^2 / factor - S_cross; inf where
    there is none (also where the queries' shared part S_cross alone reaches the target)."""
    a, b, c = s_gold * n_gold, s_pref * (n_rows - n_gold), (target * n_rows / (2 * _Z)) ** 2
    if s_cross or factor != 1.0:
        c = c / factor - s_cross
    if c <= 0:
        return np.inf
    disc = (b - a - c * n_rows) ** 2 - 4 * c * a * n_rows
    if disc < 0:
        return np.inf
    root = (-(b - a - c * n_rows) - np.sqrt(disc)) / (2 * c)
    return float(np.ceil(root)) if 0 < root < n_rows else np.inf


def _width_plan(bias, data: EvalData, target, rng, rows: dict) -> pd.DataFrame:
    phi, gold = bias.pseudo_outcomes_, data.is_gold
    n_rows, n_gold = len(phi), data.n_gold
    groups = repeated_groups(bias.query_groups_)
    idx_gold, idx_pref = np.flatnonzero(gold), np.flatnonzero(~gold)
    boot = []
    if groups is None:
        factor = 1.0
        parts = _width_parts(phi, gold)
        for _ in range(N_BOOTSTRAP):
            take = np.concatenate([rng.choice(idx_gold, len(idx_gold)), rng.choice(idx_pref, len(idx_pref))])
            boot.append(_width_parts(phi[take], gold[take]))
    else:  # clustered: the law with the queries' shared part, the bootstrap over whole queries
        n_groups = int(groups.max()) + 1
        factor = n_groups / (n_groups - 1)
        parts = _width_parts(phi, gold, groups)
        order = np.argsort(groups, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(groups, minlength=n_groups))[:-1])
        for _ in range(N_BOOTSTRAP):
            drawn = rng.integers(0, n_groups, n_groups)
            take = np.concatenate([members[g] for g in drawn])
            codes = np.repeat(np.arange(n_groups), [len(members[g]) for g in drawn])
            boot.append(_width_parts(phi[take], gold[take], codes))
    s_gold, s_pref, s_cross = parts
    grid = _grid(n_gold, n_rows)
    widths = np.array([_width_at(grid, g, p, n_gold, n_rows, x, factor) for g, p, x in boot])
    curve = pd.DataFrame({"n_gold": grid, "ci_width": _width_at(grid, s_gold, s_pref, n_gold, n_rows, s_cross, factor),
                          "lower": np.quantile(widths, 0.025, axis=0), "upper": np.quantile(widths, 0.975, axis=0)})
    if target is not None:
        needed = np.array([_n_for_width(target, g, p, n_gold, n_rows, x, factor) for g, p, x in boot])
        rows["ci_width"] = {"target": float(target),
                            "current": float(_width_at(n_gold, s_gold, s_pref, n_gold, n_rows, s_cross, factor)),
                            "n_gold_needed": _n_for_width(target, s_gold, s_pref, n_gold, n_rows, s_cross, factor),
                            "lower": _quantile(needed, 0.025), "upper": _quantile(needed, 0.975)}
    return curve


def _grid(n_gold: int, n_rows: int) -> np.ndarray:
    """Gold-label counts on which the curves are drawn: a quarter of the current count to half the
    rows (or twice the current count), never all rows."""
    top = min(max(n_rows // 2, 2 * n_gold), n_rows - 1)
    return np.unique(np.round(np.geomspace(max(2, n_gold // 4), max(top, n_gold + 1), 60)).astype(int))


# ---------------------------------------------------------------------------- learning curve
def _fold_fit(template, data: EvalData, train_gold, test_gold, fraction_sizes, seed):
    """Predictions at the held-out gold rows of routers refitted on nested subsamples of the
    training gold rows (prefixes of ``train_gold``) plus every preference row (of the other queries
    only, where queries repeat: no row of a held-out query trains its router); shape (n_sizes, n_test)."""
    pref = np.flatnonzero(~data.is_gold)
    if repeated_groups(data.query_groups) is not None:
        pref = pref[~np.isin(data.query_groups[pref], data.query_groups[test_gold])]
    out = []
    for size in fraction_sizes:
        keep = np.sort(np.concatenate([train_gold[:size], pref]))
        part = data.subset(keep)
        if data.gold_probability is not None:  # the subsample keeps each row's design, thinned
            part.gold_probability = data.gold_probability[keep] * size / len(train_gold)
        router = clone(template)
        if "random_state" in router.get_params():
            router.set_params(random_state=seed)
        router.fit(part)
        test = data.X[test_gold]
        out.append(router.predict_gain(pd.DataFrame(test, columns=data.feature_names) if data.named_features else test))
    return np.array(out)


def _power_law(n, a, b, c):
    return a - b * np.power(n, -c)


def _fit_law(n, share) -> tuple[float, float, float]:
    """Least-squares fit of share = a - b n^-c with b >= 0, c in [0.1, 2]."""
    n, share = np.asarray(n, dtype=float), np.asarray(share, dtype=float)
    start = (float(share.max()), max(float((share.max() - share.min()) * n.min() ** 0.5), 1e-3), 0.5)
    try:
        params, _ = optimize.curve_fit(_power_law, n, share, p0=start, bounds=([-1.0, 0.0, 0.1], [1.5, np.inf, 2.0]),
                                       maxfev=20000)
    except (RuntimeError, ValueError):  # no convergence: a flat curve at the mean
        return float(share.mean()), 0.0, 0.5
    return tuple(float(p) for p in params)


def _n_for_share(target, a, b, c) -> float:
    if target >= a:
        return np.inf
    if b <= 0:
        return 1.0
    return float(np.ceil((b / (a - target)) ** (1.0 / c)))


def _share_plan(template, data: EvalData, target, n_folds, rng, n_jobs, progress, rows: dict):
    gold = np.flatnonzero(data.is_gold)
    if len(gold) < 5 * n_folds:
        raise DataError(f"a learning curve over {n_folds} folds needs at least {5 * n_folds} gold rows, got {len(gold)}")
    groups = repeated_groups(data.query_groups)
    if groups is None:
        folds = np.array_split(rng.permutation(gold), n_folds)
    else:  # whole queries held out: a query's gold rows share a fold
        if len(np.unique(groups[gold])) < n_folds:
            raise DataError(f"a learning curve over {n_folds} folds by query needs gold rows on at least {n_folds} "
                            f"queries, got {len(np.unique(groups[gold]))}")
        split = GroupKFold(n_folds, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
        folds = [gold[test] for _, test in split.split(data.X[gold], groups=groups[gold])]
    min_gold = 2 * getattr(getattr(template, "bias", None), "cv", 5)  # cross-fitting needs 2 gold rows per fold
    tasks, sizes_per_fold = [], []
    for k in range(n_folds):
        train = rng.permutation(np.concatenate([folds[j] for j in range(n_folds) if j != k]))
        sizes = [max(min_gold, int(round(f * len(train)))) for f in CURVE_FRACTIONS]
        sizes_per_fold.append(sizes)
        tasks.append(delayed(_fold_fit)(template, data, train, np.sort(folds[k]), sizes,
                                        int(rng.integers(2**31 - 1))))
    preds = run_parallel(tasks, n_jobs=n_jobs, progress=progress, desc="learning curve", unit="fold")
    order = np.concatenate([np.sort(f) for f in folds])
    pred = np.concatenate(preds, axis=1)  # (n_sizes, n_gold) in the order of ``order``
    truth = data.gain[order]
    weight = 1.0 / data.gold_probability[order] if data.gold_probability is not None else np.ones(len(order))
    n_axis = np.mean(sizes_per_fold, axis=0)

    def shares(take):
        return np.array([oracle_share(p[take], truth[take]) for p in pred])

    prob = weight / weight.sum()
    if groups is None:
        boot = np.array([shares(rng.choice(len(order), len(order), p=prob)) for _ in range(N_BOOTSTRAP // 4)])
    else:  # whole queries, drawn with the probability of their gold rows' total weight
        codes = pd.factorize(groups[order])[0]
        members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
        q_prob = np.bincount(codes, weights=prob)
        boot = np.array([shares(np.concatenate([members[g] for g in rng.choice(len(members), len(members), p=q_prob)]))
                         for _ in range(N_BOOTSTRAP // 4)])
    point = boot.mean(axis=0) if data.gold_probability is not None else shares(np.arange(len(order)))
    learning = pd.DataFrame({"n_gold": n_axis, "oracle_share": point, "std_error": boot.std(axis=0, ddof=1)})
    a, b, c = _fit_law(n_axis, point)
    laws = np.array([_fit_law(n_axis, s) for s in boot])
    grid = _grid(data.n_gold, len(data))
    band = np.array([_power_law(grid, *law) for law in laws])
    share_curve = pd.DataFrame({"n_gold": grid, "oracle_share": _power_law(grid, a, b, c),
                                "lower": np.quantile(band, 0.025, axis=0), "upper": np.quantile(band, 0.975, axis=0)})
    needed = np.array([_n_for_share(target, *law) for law in laws])
    rows["oracle_share"] = {"target": float(target), "current": float(_power_law(data.n_gold, a, b, c)),
                            "n_gold_needed": _n_for_share(target, a, b, c),
                            "lower": _quantile(needed, 0.025), "upper": _quantile(needed, 0.975)}
    return learning, share_curve, {"a": a, "b": b, "c": c}


def _quantile(values: np.ndarray, q: float) -> float:
    """A sample quantile that may be infinite (a bootstrap law that never reaches the target)."""
    return float(np.quantile(values, q, method="inverted_cdf"))
