"""The semi-synthetic generator with known truth, and the gold/preference reveal split.

The generator is shaped like the Meta-Router paper's HealthBench setting: query features play
the role of the leading principal components of a text embedding (independent Gaussians with
decaying variance), the gold gain psi(s) is a smooth nonlinear function of a few of them, and
the LLM judge's expected preference gain eta(s) misses part of psi and rewards something psi
does not care about, so the bias Delta(s) = psi(s) - eta(s) / pref_scale varies with the query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import DataError, check_columns, check_random_state
from ..data import EvalData

__all__ = ["make_semi_synthetic", "reveal_split", "RevealedSplit", "feature_columns"]


def _psi(X: np.ndarray) -> np.ndarray:
    """Gold-standard expected gain (gold scale, mean about 0.3, sd about 0.4): many small
    nonlinear effects, so that a hundred gold labels cannot learn it alone."""
    return (0.40 + 0.25 * np.tanh(1.5 * X[:, 0]) + 0.20 * np.sin(1.5 * X[:, 1])
            + 0.15 * X[:, 2] * X[:, 3] + 0.15 * np.tanh(X[:, 4]) - 0.15 * np.abs(X[:, 5])
            + 0.12 * X[:, 6] + 0.10 * np.sin(2.0 * X[:, 7]) + 0.10 * X[:, 8] * X[:, 9])


def _bias(X: np.ndarray) -> np.ndarray:
    """Heterogeneous judge bias on the gold scale (mean about 0.2, sd about 0.3): simpler than
    psi. The judge rewards feature 10 (a verbosity-like trait the gold standard ignores) and
    misses the part of psi carried by feature 1."""
    return 0.20 - 0.30 * np.tanh(1.2 * X[:, 10]) + 0.20 * np.sin(1.5 * X[:, 1])


def feature_columns(d: int) -> list[str]:
    """Names of the generator's feature columns, ``x0 .. x{d-1}``."""
    return [f"x{j}" for j in range(d)]


def make_semi_synthetic(
    n: int = 5000,
    d: int = 50,
    *,
    bias: str = "heterogeneous",
    gold_noise: float = 0.35,
    pref_noise: float = 0.35,
    pref_scale: float = 2.0,
    random_state=None,
) -> pd.DataFrame:
    """Queries with both a gold and a preference label and the true functions behind them.

    Parameters
    ----------
    n, d : int
        Number of queries and of features (d >= 11).
    bias : {"heterogeneous", "constant", "none"}
        Shape of the judge's bias Delta(s) on the gold scale: varying with the query (default),
        its mean (0.2) everywhere, or zero.
    gold_noise, pref_noise : float
        Noise standard deviations of the gold label and (before scaling) of the preference label.
    pref_scale : float
        The preference scale relative to the gold scale: pref = pref_scale * (psi - Delta + noise).
    random_state : int, Generator or None

    Returns
    -------
    DataFrame with columns ``query_id``, ``x0 .. x{d-1}`` (features; feature j has standard
    deviation 1 for j < 11, the features that carry the signal, and (1 + j/4) ** -0.5 beyond,
    like trailing principal components), ``psi`` (true expected gold gain),
    ``eta`` (true expected preference gain, preference scale), ``bias`` (true
    psi - eta / pref_scale, gold scale), ``gold_gain`` and ``pref_gain`` (observed labels).
    ``attrs["pref_scale"]`` holds ``pref_scale``.
    """
    if d < 11:
        raise DataError(f"d must be at least 11 for the generator's functions, got {d}")
    if n < 10:
        raise DataError(f"n must be at least 10, got {n}")
    if bias not in ("heterogeneous", "constant", "none"):
        raise DataError(f"bias must be 'heterogeneous', 'constant' or 'none', got {bias!r}")
    rng = check_random_state(random_state)
    sd = (1.0 + np.arange(d) / 4.0) ** -0.5
    X = rng.standard_normal((n, d)) * sd
    X[:, :11] /= sd[:11]  # the first eleven carry the signal at unit scale
    psi = _psi(X)
    delta = {"heterogeneous": _bias(X), "constant": np.full(n, 0.2), "none": np.zeros(n)}[bias]
    eta = pref_scale * (psi - delta)
    frame = pd.DataFrame(X, columns=feature_columns(d))
    frame.insert(0, "query_id", [f"q{i:06d}" for i in range(n)])
    frame["psi"] = psi
    frame["eta"] = eta
    frame["bias"] = delta
    frame["gold_gain"] = psi + gold_noise * rng.standard_normal(n)
    frame["pref_gain"] = eta + pref_scale * pref_noise * rng.standard_normal(n)
    frame.attrs["pref_scale"] = pref_scale
    return frame


@dataclass
class RevealedSplit:
    """One experiment draw: what a router may train on, the oracle's data, and the test set.

    ``train`` reveals gold labels on ``n_gold`` random training queries and preference labels on
    the rest; ``oracle`` gives every training query its gold label (the All-Golden oracle);
    ``test_X`` (n_test, d) and ``test_gold`` (n_test,) are held-out features and gold gains.
    """

    train: EvalData
    oracle: EvalData
    test_X: np.ndarray
    test_gold: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray


def reveal_split(
    frame: pd.DataFrame,
    features=None,
    *,
    n_gold: int = 100,
    n_test: int = 500,
    gold_gain: str = "gold_gain",
    pref_gain: str = "pref_gain",
    pair: str | None = None,
    random_state=None,
) -> RevealedSplit:
    """Hold out ``n_test`` random queries, reveal gold labels for ``n_gold`` of the rest.

    ``frame`` carries both labels on every row (as the generator and the real loaders do).
    ``features`` defaults to the columns named ``x<j>``. The frame is not modified.
    """
    if features is None:
        features = [c for c in frame.columns if isinstance(c, str) and c[:1] == "x" and c[1:].isdigit()]
    check_columns(frame, [*features, gold_gain, pref_gain, *([pair] if pair else [])], "frame")
    n = len(frame)
    if n_test < 1 or n_gold < 1 or n_test + n_gold >= n:
        raise DataError(
            f"n_test={n_test} and n_gold={n_gold} must be positive and leave preference rows "
            f"among the {n} rows"
        )
    rng = check_random_state(random_state)
    order = rng.permutation(n)
    test_index, train_index = np.sort(order[:n_test]), order[n_test:]
    is_gold = np.zeros(len(train_index), dtype=bool)
    is_gold[:n_gold] = True
    train_index_sorted = np.argsort(train_index, kind="stable")
    train_index, is_gold = train_index[train_index_sorted], is_gold[train_index_sorted]
    train = frame.iloc[train_index]
    X = train[list(features)].to_numpy(dtype=float)
    gold = train[gold_gain].to_numpy(dtype=float)
    pref = train[pref_gain].to_numpy(dtype=float)
    pairs = None if pair is None else train[pair].to_numpy()
    revealed = EvalData(X, np.where(is_gold, gold, pref), is_gold, pair=pairs, feature_names=list(features))
    oracle = EvalData(X, gold, np.ones(len(train), dtype=bool), pair=pairs, feature_names=list(features))
    test = frame.iloc[test_index]
    return RevealedSplit(
        train=revealed,
        oracle=oracle,
        test_X=test[list(features)].to_numpy(dtype=float),
        test_gold=test[gold_gain].to_numpy(dtype=float),
        train_index=train_index,
        test_index=test_index,
    )
