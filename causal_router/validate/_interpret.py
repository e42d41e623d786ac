"""Interpretation of a fitted bias model: econml's shallow CATE tree, feature importances, extreme queries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..bias import BiasEstimator
from ..data import EvalData

__all__ = ["interpretation_numbers"]

_TEXT_CHARS = 300


class _GoldScaleCate:
    """Adapter for econml's interpreter: const_marginal_effect of a BiasEstimator on the gold scale."""

    def __init__(self, est: BiasEstimator):
        self.est = est

    def const_marginal_effect(self, X):
        return self.est.effect(X).reshape(-1, 1)


def interpretation_numbers(est: BiasEstimator, X: np.ndarray, effect: np.ndarray, data: EvalData, texts,
                           depth: int, top_k: int, seed):
    """Interpret ``est`` (fitted on ``data``; ``effect`` = its estimated bias of the rows, shape (n,)).

    Returns (numbers {"tree", "importance", "top_queries"}, econml SingleTreeCateInterpreter or
    None when the estimate is constant). ``texts`` (n,) or None.
    """
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
    return out, interpreter


def _truncate(text: str, limit: int = _TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _final_coefficients(est: BiasEstimator) -> np.ndarray | None:
    """Coefficients (preference scale, shape (d,)) of a linear final stage, else None."""
    econ = est.estimator_
    d = est.n_features_in_
    candidates = []
    if est.learner == "linear":
        candidates.append(econ.coef_(T=1))
    model = getattr(econ, "model_final_", None)
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
