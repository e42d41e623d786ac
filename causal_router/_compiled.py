"""Compiled batch prediction of a fitted LightGBM regressor, for routing large batches.

LightGBM predicts about 200k rows per second per thread with the default gain model (100
trees of 15 leaves, 50 features). :class:`CompiledTrees` evaluates the same trees with the
QuickScorer algorithm (Lucchese et al., SIGIR 2015) in a numba kernel, parallel over blocks of
rows: every split of a tree is tested against a block of rows at once (no branching on the
path), a split that sends a row right clears the bits of the leaves in its left subtree, and
the row's leaf is the lowest bit left set. Measured with ``benchmarks/bench_pipeline.py
routing``: see ``docs/results.md``, "Speed".

It reproduces LightGBM's predictions exactly (the split rule ``x <= threshold`` goes left,
the trees' leaf values are summed in LightGBM's order) for what it supports: gradient boosting
(``gbdt``; not ``rf``, whose output is an average, nor ``dart``), constant leaves (no
``linear_tree``), numerical splits without missing-value handling (``missing_type`` "None":
what LightGBM learns from finite data), at most 64 leaves per tree, one output, an
identity-link objective without output transformation (not ``reg_sqrt``). For anything else
:func:`compile_lightgbm` returns None and the caller keeps LightGBM's own ``predict``. Every
compilation is checked at compile time: the compiled trees must give LightGBM's predictions
bit for bit on rows placed at, just below and just above every split threshold and on random
rows spanning the thresholds; otherwise None.
"""

from __future__ import annotations

import weakref

import numpy as np

__all__ = ["CompiledTrees", "compile_lightgbm", "compiled_model"]

_IDENTITY_OBJECTIVES = ("regression", "regression_l2", "l2", "mse", "regression_l1", "l1", "huber", "fair",
                        "quantile")
_ALL = (1 << 64) - 1
_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold
#: Rows per block: the block's features stay in cache while every tree is applied to it.
BLOCK = 256
#: From this many rows the kernel runs in parallel over blocks (numba threads).
PARALLEL_MIN_ROWS = 4 * BLOCK


class CompiledTrees:
    """A tree ensemble in QuickScorer layout.

    Tree k owns the splits ``node_start[k]:node_start[k + 1]`` (feature index, threshold,
    uint64 mask clearing its left subtree's leaves) and the leaves
    ``leaf_start[k]:leaf_start[k + 1]`` in left-to-right order.
    """

    def __init__(self, feature, threshold, mask, node_start, leaf_start, leaf_value, n_features: int):
        self.feature = np.ascontiguousarray(feature, dtype=np.int64)
        self.threshold = np.ascontiguousarray(threshold, dtype=np.float64)
        self.mask = np.ascontiguousarray(mask, dtype=np.uint64)
        self.node_start = np.ascontiguousarray(node_start, dtype=np.int64)
        self.leaf_start = np.ascontiguousarray(leaf_start, dtype=np.int64)
        self.leaf_value = np.ascontiguousarray(leaf_value, dtype=np.float64)
        self.n_features = int(n_features)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf values, shape (n,), for finite X of shape (n, n_features)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {X.shape}")
        # LightGBM reads rows as sparse (index, value) pairs and drops |value| <= kZeroThreshold
        # (1e-35 as a float32): such values reach the trees as 0
        X = np.where(np.abs(X) <= _ZERO_THRESHOLD, 0.0, X)
        XT = np.ascontiguousarray(X.T)  # (n_features, n): a split reads one contiguous run per block
        out = np.empty(len(X))
        kernel = _kernels()[len(X) >= PARALLEL_MIN_ROWS]
        kernel(XT, self.feature, self.threshold, self.mask, self.node_start, self.leaf_start, self.leaf_value,
               out, BLOCK)
        return out


def compile_lightgbm(model) -> CompiledTrees | None:
    """:class:`CompiledTrees` of a fitted ``LGBMRegressor`` (or its Booster), or None when the
    model has anything the kernel does not reproduce exactly, or numba is missing."""
    try:
        _kernels()
    except ImportError:  # pragma: no cover - numba comes with econml (through shap)
        return None
    booster = getattr(model, "booster_", model)
    if not hasattr(booster, "dump_model"):
        return None
    dump = booster.dump_model()
    objective_words = str(dump.get("objective") or "").split(" ")
    params = getattr(booster, "params", {}) or {}
    if (dump.get("num_tree_per_iteration", 1) != 1 or objective_words[0] not in _IDENTITY_OBJECTIVES
            or "sqrt" in objective_words or dump.get("average_output", False)
            or str(params.get("boosting", params.get("boosting_type", "gbdt"))) not in ("gbdt", "gbrt")
            or params.get("linear_tree", False)):
        return None
    feature, threshold, mask, node_start, leaf_start, leaf_value = [], [], [], [0], [0], []

    def walk(node) -> int:
        """Append the subtree's splits (pre-order) and leaves (in order); return its leaf count."""
        if "leaf_value" in node:
            if "leaf_coeff" in node or "leaf_features" in node:  # a linear leaf
                raise _Unsupported
            leaf_value.append(float(node["leaf_value"]))
            return 1
        if node.get("decision_type") != "<=" or node.get("missing_type", "None") != "None":
            raise _Unsupported
        first = len(leaf_value) - leaf_start[-1]
        i = len(feature)
        feature.append(int(node["split_feature"]))
        threshold.append(float(node["threshold"]))
        mask.append(0)
        n_left = walk(node["left_child"])
        mask[i] = _ALL & ~(((1 << n_left) - 1) << first)
        return n_left + walk(node["right_child"])

    try:
        for tree in dump["tree_info"]:
            if walk(tree["tree_structure"]) > 64:
                return None
            node_start.append(len(feature))
            leaf_start.append(len(leaf_value))
    except _Unsupported:
        return None
    compiled = CompiledTrees(feature, threshold, np.array(mask, dtype=np.uint64), node_start, leaf_start,
                             leaf_value, dump["max_feature_idx"] + 1)
    rows = _probe_rows(compiled)
    if not np.array_equal(compiled.predict(rows), np.asarray(booster.predict(rows), dtype=float).reshape(-1)):
        return None
    return compiled


def _probe_rows(trees: CompiledTrees, n_random: int = 512) -> np.ndarray:
    """Rows that exercise every split: each threshold, just below and just above it (one
    feature at a time, the others at random values), and random rows spanning the thresholds."""
    rng = np.random.default_rng(0)
    d = trees.n_features
    lo = np.zeros(d)
    hi = np.ones(d)
    for j in range(d):
        t = trees.threshold[trees.feature == j]
        if len(t):
            lo[j], hi[j] = t.min() - 1.0, t.max() + 1.0
    random_rows = rng.uniform(lo, hi, size=(n_random, d))
    probes = []
    for s in range(min(len(trees.feature), 4096)):
        base = random_rows[s % n_random]
        for value in (np.nextafter(trees.threshold[s], -np.inf), trees.threshold[s],
                      np.nextafter(trees.threshold[s], np.inf)):
            row = base.copy()
            row[trees.feature[s]] = value
            probes.append(row)
    return np.vstack([random_rows, *([np.array(probes)] if probes else [])])


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def compiled_model(model) -> CompiledTrees | None:
    """:func:`compile_lightgbm` of ``model``, computed once per fitted model object and cached
    beside it (a refit makes a new model object, so stale trees are never used)."""
    try:
        cached = _CACHE.get(model)
    except TypeError:  # an unhashable or unreferenceable model: no cache
        return compile_lightgbm(model)
    if cached is None:
        cached = compile_lightgbm(model) or False
        _CACHE[model] = cached
    return cached or None


class _Unsupported(Exception):
    pass


def _quickscorer(XT, feature, threshold, mask, node_start, leaf_start, leaf_value, out, block):
    n = XT.shape[1]
    n_trees = node_start.shape[0] - 1
    for b in prange((n + block - 1) // block):
        lo = b * block
        width = min(n, lo + block) - lo
        bits = np.empty(width, np.uint64)
        total = np.zeros(width)
        for k in range(n_trees):
            bits[:] = np.uint64(0xFFFFFFFFFFFFFFFF)
            for s in range(node_start[k], node_start[k + 1]):
                row = XT[feature[s]]
                t = threshold[s]
                m = mask[s]
                for j in range(width):
                    if row[lo + j] > t:
                        bits[j] &= m
            base = leaf_start[k]
            for j in range(width):
                total[j] += leaf_value[base + trailing_zeros(bits[j])]
        out[lo:lo + width] = total


_KERNELS = None
prange = range
trailing_zeros = None


def _kernels() -> dict:
    """{False: one-thread kernel, True: parallel kernel}, compiled on first use, cached on disk."""
    global _KERNELS, prange, trailing_zeros
    if _KERNELS is None:
        import numba
        from numba.cpython.unsafe.numbers import trailing_zeros as tz

        prange, trailing_zeros = numba.prange, tz
        _KERNELS = {False: numba.njit(cache=True, nogil=True)(_renamed(_quickscorer, "_serial")),
                    True: numba.njit(cache=True, nogil=True, parallel=True)(_renamed(_quickscorer, "_parallel"))}
    return _KERNELS


def _renamed(fn, suffix: str):
    """``fn`` under another qualified name. numba names its cache files by a function's qualified
    name and line, not by its compile options: compiled from one function, the serial and the
    parallel kernel shared one cache entry, so whichever was compiled first served both (the
    one-row kernel of the routing server then started OpenMP threads on every call)."""
    import types

    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    return copy
