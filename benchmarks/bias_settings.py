"""Settings of the bias-learner suite (``bias_suite.py``): generators with a known true bias, and
the two real sets.

Every synthetic setting draws queries s ~ N(0, I_d) (the built-in generator's settings draw its
own features), a gold gain psi(s) + noise and a judge's preference gain on its own scale
pref_scale * (psi(s) - Delta(s) + noise(s)), where Delta(s) is the judge's bias on the gold
scale. Each frame carries ``psi``, ``eta`` (the judge's expected gain, preference scale) and
``bias`` (Delta) next to the two observed gains, as ``causal_router.datasets.make_semi_synthetic``
does. A setting is one frame generator plus the reveal sizes (rows, gold rows, test rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

N_ROWS, N_TEST = 5000, 500
GOLD_3PCT = round(0.03 * (N_ROWS - N_TEST))  # 135 gold rows among 4,500 training rows
N_PAIRS = 10
#: Judge noise (sd, gold scale) of the ``mid_judge`` setting. The base settings' judge (noise
#: 0.35) correlates 0.66 with psi, about what a one-factor model of PandaLM's two judges and its
#: human label gives PandaLM-7B (0.68; GPT-3.5 0.79): the base settings already carry a 7B-class
#: judge. The mid-strength judge is noisier, correlation 0.46 with psi (0.31 with the gold label),
#: between that and the weak judge (0.1).
MID_JUDGE_NOISE = 0.6
N_CATEGORIES = 8


def oracle_aipw(train: pd.DataFrame, data, c: float, p) -> tuple[float, float]:
    """The AIPW average bias with the true nuisances: outcome means c psi (gold) and eta
    (preference) of the frame's rows ``train``, the design's propensity ``p`` (scalar or (n,)),
    the observed gains and sources of ``data`` (an EvalData of those rows), scale constant ``c``.
    Returns (estimate, standard error), gold scale. Its coverage on the same runs as an
    estimator's separates the sampling luck of the gold rows from the cost of estimating the
    nuisances."""
    from causal_router.average import aipw_pseudo_outcomes

    psi, eta = train["psi"].to_numpy(), train["eta"].to_numpy()
    t = data.is_gold.astype(float)
    o = np.where(data.is_gold, c * data.gain, data.gain)
    phi1, phi0 = aipw_pseudo_outcomes(o, t, np.broadcast_to(p, t.shape), eta, c * psi)  # the package's score
    phi = (phi1 - phi0) / c
    return float(phi.mean()), float(phi.std(ddof=1) / np.sqrt(len(phi)))


def _psi(X: np.ndarray) -> np.ndarray:
    """Gold gain (gold scale; mean about 0.3, sd about 0.35) in features 0-4."""
    return 0.3 + 0.3 * np.tanh(X[:, 0]) + 0.2 * np.sin(1.5 * X[:, 1]) + 0.15 * X[:, 2] * X[:, 3] + 0.15 * X[:, 4]


def _sparse_nonlinear_bias(X: np.ndarray) -> np.ndarray:
    """A sine and a threshold in features 7 and 8, which do not drive psi."""
    return 0.1 + 0.3 * np.sin(2.0 * X[:, 7]) + 0.3 * (X[:, 8] > 0.5)


def _frame(X, psi, bias, gold_noise, pref_noise, pref_scale, rng, extra=None) -> pd.DataFrame:
    n, d = X.shape
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(d)])
    eta = pref_scale * (psi - bias)
    frame["psi"], frame["eta"], frame["bias"] = psi, eta, bias
    frame["gold_gain"] = psi + gold_noise * rng.standard_normal(n)
    frame["pref_gain"] = eta + pref_scale * pref_noise * rng.standard_normal(n)
    frame.attrs["pref_scale"] = pref_scale
    for name, values in (extra or {}).items():
        frame[name] = values
    return frame


def gaussian_setting(kind: str, d: int = 50, n: int = N_ROWS) -> Callable[[int], pd.DataFrame]:
    """A frame generator (seed -> DataFrame) for the suite's Gaussian settings.

    kind: ``constant`` (Delta = 0.2), ``unbiased`` (0), ``linear`` (0.2 + 0.25 x5 - 0.15 x6),
    ``sparse_nonlinear`` (:func:`_sparse_nonlinear_bias`), ``heteroscedastic`` (the same bias,
    judge noise sd 0.15 + 0.35 (1 + tanh x11), from 0.15 to 0.85), ``compress`` / ``inflate``
    (the judge's expected gain is eta = a psi + 0.1 with a = 0.5 / 2, so Delta = (1 - a) psi - 0.1),
    ``weak_judge`` (eta is mostly a function of features 9-11 the gold standard ignores,
    standardised to psi's spread; correlation with psi about 0.1), ``near_constant`` (0.2 plus a
    tiny heterogeneous part, 0.05 sin(2 x7) + 0.05 [x8 > 0.5], sd about 0.04 against psi's 0.31),
    ``mid_judge`` (Delta = 0.2, judge noise sd ``MID_JUDGE_NOISE`` = 0.6 instead of 0.35: see
    :data:`MID_JUDGE_NOISE`).
    """
    def make(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, d))
        psi = _psi(X)
        pref_noise = np.full(n, 0.35)
        if kind == "constant":
            bias = np.full(n, 0.2)
        elif kind == "unbiased":
            bias = np.zeros(n)
        elif kind == "linear":
            bias = 0.2 + 0.25 * X[:, 5] - 0.15 * X[:, 6]
        elif kind == "sparse_nonlinear":
            bias = _sparse_nonlinear_bias(X)
        elif kind == "heteroscedastic":
            bias = _sparse_nonlinear_bias(X)
            pref_noise = 0.15 + 0.35 * (1 + np.tanh(X[:, 11]))
        elif kind in ("compress", "inflate"):
            a = 0.5 if kind == "compress" else 2.0
            bias = (1 - a) * psi - 0.1
        elif kind == "near_constant":
            bias = 0.2 + 0.05 * np.sin(2.0 * X[:, 7]) + 0.05 * (X[:, 8] > 0.5)
        elif kind == "mid_judge":
            bias = np.full(n, 0.2)
            pref_noise = np.full(n, MID_JUDGE_NOISE)
        elif kind == "weak_judge":
            other = np.tanh(X[:, 9]) + np.sin(1.5 * X[:, 10]) + 0.5 * X[:, 11]
            z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
            eta = psi.mean() + psi.std() * (0.1 * z(psi) + np.sqrt(1 - 0.1 ** 2) * z(other))
            bias = psi - eta
        else:
            raise ValueError(f"unknown kind {kind!r}")
        return _frame(X, psi, bias, 0.35, pref_noise, 1.5, rng)

    return make


def pair_setting(d: int = 50, n: int = N_ROWS) -> Callable[[int], pd.DataFrame]:
    """Queries answered by one of 10 model pairs (one-hot features ``pair=k`` after the d
    Gaussian ones); each pair shifts psi and carries its own judge bias (drawn once per seed)."""
    def make(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, d))
        pair = rng.integers(0, N_PAIRS, n)
        pair_gain = rng.normal(0.0, 0.2, N_PAIRS)
        pair_bias = rng.normal(0.2, 0.3, N_PAIRS)
        psi = _psi(X) + pair_gain[pair]
        onehot = (pair[:, None] == np.arange(N_PAIRS)).astype(float)
        frame = _frame(np.hstack([X, onehot]), psi, pair_bias[pair], 0.35, 0.35, 1.5, rng,
                       extra={"pair": pair.astype(str)})
        frame.columns = [f"x{j}" for j in range(d + N_PAIRS)] + list(frame.columns[d + N_PAIRS:])
        return frame

    return make


def category_setting(d: int = 30, n: int = N_ROWS) -> Callable[[int], pd.DataFrame]:
    """Queries of 8 categories of unequal frequency (probability proportional to 1 / k, k = 1..8;
    one-hot features after the d Gaussian ones); each category shifts psi (sd 0.15) and carries
    its own judge bias (mean 0.2, sd 0.3), drawn once per seed: the rarest categories have a few
    gold rows only."""
    def make(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, d))
        freq = 1.0 / np.arange(1, N_CATEGORIES + 1)
        cat = rng.choice(N_CATEGORIES, size=n, p=freq / freq.sum())
        cat_gain = rng.normal(0.0, 0.15, N_CATEGORIES)
        cat_bias = rng.normal(0.2, 0.3, N_CATEGORIES)
        onehot = (cat[:, None] == np.arange(N_CATEGORIES)).astype(float)
        frame = _frame(np.hstack([X, onehot]), _psi(X) + cat_gain[cat], cat_bias[cat], 0.35, 0.35, 1.5, rng,
                       extra={"category": cat.astype(str)})
        frame.columns = [f"x{j}" for j in range(d + N_CATEGORIES)] + list(frame.columns[d + N_CATEGORIES:])
        return frame

    return make


def issue_constant(seed: int) -> pd.DataFrame:
    """The issue's "constant judge bias" case: 4,000 rows, 20 features, a gold gain most of whose
    variation a gain model can learn (oracle shares near 0.9), one constant bias (0.2), the judge
    on 1.5x the gold scale; 150 gold rows."""
    rng = np.random.default_rng(seed)
    n, d = 4000, 20
    X = rng.standard_normal((n, d))
    psi = 0.3 + 0.4 * np.tanh(X[:, 0]) + 0.25 * X[:, 1] + 0.15 * np.sin(1.5 * X[:, 2])
    return _frame(X, psi, np.full(n, 0.2), 0.2, 0.25, 1.5, rng)


def other_shape(seed: int) -> pd.DataFrame:
    """The issue's "generator of another shape": 4,000 rows, 30 features; psi has an
    interaction and a kink; the judge's bias is a sine plus a threshold in two features that do
    not drive psi (x10, x11); the judge is on twice the gold scale and its noise grows with a
    third feature (x12)."""
    rng = np.random.default_rng(seed)
    n, d = 4000, 30
    X = rng.standard_normal((n, d))
    psi = 0.2 + 0.35 * (X[:, 0] > 0) * X[:, 1] + 0.25 * np.cos(X[:, 2]) - 0.2 * np.abs(X[:, 3]) + 0.1 * X[:, 4]
    bias = -0.2 + 0.35 * np.sin(2.0 * X[:, 10]) + 0.4 * (X[:, 11] > 0.3)
    pref_noise = 0.15 + 0.25 * np.abs(X[:, 12])
    return _frame(X, psi, bias, 0.3, pref_noise, 2.0, rng)


def builtin_generator(seed: int) -> pd.DataFrame:
    """The package's generator, n = 5,000, d = 50 (heterogeneous bias)."""
    from causal_router.datasets import make_semi_synthetic

    return make_semi_synthetic(N_ROWS, 50, random_state=seed)


@dataclass(frozen=True)
class Setting:
    """A frame generator (seed -> frame) and the reveal sizes. ``heterogeneous``: the true
    bias varies with the query (counted in the gap-closed target); ``weak_judge``: the judge
    carries little information about the gold gain (the Gold-only target); ``real``: the frame is
    fixed and the truth unknown. ``n_test`` counts test queries where the frame's queries repeat (the real
    sets: ``reveal_split`` holds out whole queries there), test rows otherwise."""

    name: str
    make: Callable[[int], pd.DataFrame]
    n_gold: int = GOLD_3PCT
    n_test: int = N_TEST
    heterogeneous: bool = True
    weak_judge: bool = False
    real: bool = False
    pair: str | None = None
    note: str = field(default="", compare=False)


def _real(data_set: str, judge: str):
    """A real setting: ``data_set`` ("pandalm" or "prd") judged by ``judge`` (PandaLM: "gpt35" or
    "pandalm7b"; PRD: "gpt4", "gpt35" or "claude"), TF-IDF + SVD text features (50 components)
    and model-pair indicators, as the CLI's ``experiment`` builds them."""
    def make(seed: int, _cache={}) -> pd.DataFrame:  # noqa: B006 - a per-process cache of the featurised frame
        key = (data_set, judge)
        if key not in _cache:
            from causal_router.datasets import default_data_dir, load_pandalm, load_prd_vicuna80
            from causal_router.text import TextFeaturizer, featurize_queries

            root = default_data_dir()
            if root is None:
                raise SystemExit("real settings need CAUSAL_ROUTER_DATA (a folder with pandalm/ and prd_vicuna80/)")
            if data_set == "pandalm":
                frame = load_pandalm(root / "pandalm")
                if judge == "pandalm7b":  # the second judge's verdicts as the preference labels
                    frame = frame.assign(pref_gain=frame["pref_gain_2"])
            else:
                frame = load_prd_vicuna80(root / "prd_vicuna80", judge=judge)
            frame = frame[frame["pref_gain"].notna()].reset_index(drop=True)
            X, names, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=50), random_state=0)
            feats = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])], index=frame.index)
            _cache[key] = pd.concat([frame, feats], axis=1)
        return _cache[key]

    return make


SETTINGS = {s.name: s for s in [
    Setting("constant", gaussian_setting("constant"), heterogeneous=False),
    Setting("unbiased", gaussian_setting("unbiased"), heterogeneous=False),
    Setting("linear", gaussian_setting("linear")),
    Setting("sparse_nonlinear", gaussian_setting("sparse_nonlinear")),
    Setting("pair", pair_setting(), pair="pair"),
    Setting("compress_a0.5", gaussian_setting("compress")),
    Setting("inflate_a2", gaussian_setting("inflate")),
    Setting("weak_judge", gaussian_setting("weak_judge"), weak_judge=True),
    Setting("weak_judge_1pct", gaussian_setting("weak_judge"), n_gold=45, weak_judge=True),
    Setting("weak_judge_10pct", gaussian_setting("weak_judge"), n_gold=450, weak_judge=True),
    Setting("near_constant", gaussian_setting("near_constant"), heterogeneous=False),
    Setting("mid_judge", gaussian_setting("mid_judge"), heterogeneous=False),
    Setting("issue_constant", issue_constant, n_gold=150, heterogeneous=False),
    Setting("category", category_setting(), pair="category"),
    Setting("heteroscedastic", gaussian_setting("heteroscedastic")),
    Setting("gold_1pct", builtin_generator, n_gold=45),
    Setting("gold_3pct", builtin_generator, n_gold=GOLD_3PCT),
    Setting("gold_10pct", builtin_generator, n_gold=450),
    Setting("d10", gaussian_setting("sparse_nonlinear", d=10)),
    Setting("d300", gaussian_setting("sparse_nonlinear", d=300)),
    Setting("other_shape", other_shape, n_gold=150),
    # whole queries held out (one row per model pair: 974 rows over 169 PandaLM queries, 800 over 80 PRD
    # questions): 35 and 20 test queries, about 200 test rows
    Setting("pandalm_gpt35", _real("pandalm", "gpt35"), n_gold=100, n_test=35, heterogeneous=False, real=True,
            pair="pair"),
    Setting("pandalm_7b", _real("pandalm", "pandalm7b"), n_gold=100, n_test=35, heterogeneous=False, real=True,
            pair="pair"),
    Setting("prd_gpt4", _real("prd", "gpt4"), n_gold=100, n_test=20, heterogeneous=False, real=True, pair="pair"),
    Setting("prd_gpt35", _real("prd", "gpt35"), n_gold=100, n_test=20, heterogeneous=False, real=True, pair="pair"),
    Setting("prd_claude", _real("prd", "claude"), n_gold=100, n_test=20, heterogeneous=False, real=True, pair="pair"),
]}
