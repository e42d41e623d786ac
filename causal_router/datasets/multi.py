"""K-model data: a generator of pairwise evaluations of four models whose judge is biased per
model, PandaLM's five models with query features, the query-level reveal split, and held-out
quality of each model per test query.

Generator. Query features as in :func:`~causal_router.datasets.make_semi_synthetic` (the first
eleven carry the signal at unit scale, the rest decay like trailing principal components). Four
models with costs 0.1, 0.25, 0.5 and 1.0 have gold-scale utilities u_k(s) relative to the
cheapest ("small", u = 0); the expensive models are better on average, but each has query
regions where a cheaper one is as good, so the best model varies with the query. Each query is
evaluated on ``pairs_per_query`` random pairs in random order. The gold gain of a over b is
u_a(s) - u_b(s) + noise; the judge's expected preference gain is

    eta(s, a, b) = pref_scale * (u_a(s) - u_b(s) - (beta_a(s) - beta_b(s)) + position)

with beta_k(s) the judge's per-model bias (gold minus preference, gold scale: how much it
underrates model k on query s) and ``position`` its extra preference for the first-listed answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from .._validation import DataError, check_columns, check_random_state
from ..pairwise import PairwiseData, contrast_codes

__all__ = ["make_multi_model", "reveal_multi_split", "MultiSplit", "heldout_quality", "load_pandalm_multi",
           "MULTI_MODELS", "MULTI_COSTS", "PANDALM_COSTS"]

#: The generator's models, cheapest first, and their costs per query.
MULTI_MODELS = ("small", "medium", "large", "xlarge")
MULTI_COSTS = {"small": 0.1, "medium": 0.25, "large": 0.5, "xlarge": 1.0}


def _utilities(X: np.ndarray) -> np.ndarray:
    """True gold-scale utilities (n, 4), columns in :data:`MULTI_MODELS` order, u_small = 0.
    Means about 0.25, 0.40, 0.55; query-level spread about 0.3 each."""
    medium = 0.25 + 0.30 * np.tanh(1.5 * X[:, 0]) + 0.15 * np.sin(1.5 * X[:, 1])
    large = 0.40 + 0.30 * np.sin(1.5 * X[:, 1]) - 0.20 * np.tanh(X[:, 2]) + 0.15 * X[:, 3] * X[:, 4]
    xlarge = 0.75 + 0.30 * np.tanh(1.5 * X[:, 3]) - 0.25 * np.abs(X[:, 5]) + 0.15 * np.sin(2.0 * X[:, 0])
    return np.column_stack([np.zeros(len(X)), medium, large, xlarge])


def _judge_bias(X: np.ndarray) -> np.ndarray:
    """Per-model judge bias beta_k(s) (n, 4), gold scale, beta_small = 0: the judge overrates
    "medium" (more so where feature 6 is high: a verbose, confident style), misses the part of
    "large"'s quality carried by feature 1, and underrates "xlarge" where feature 10 is high."""
    medium = -0.25 - 0.20 * np.tanh(1.5 * X[:, 6])
    large = 0.10 + 0.20 * np.sin(1.5 * X[:, 1])
    xlarge = 0.25 * np.tanh(1.2 * X[:, 10]) + 0.05
    return np.column_stack([np.zeros(len(X)), medium, large, xlarge])


def make_multi_model(
    n_queries: int = 3000,
    d: int = 20,
    *,
    pairs_per_query: int = 2,
    bias: str = "per_model",
    position: float = 0.0,
    gold_noise: float = 0.35,
    pref_noise: float = 0.35,
    pref_scale: float = 2.0,
    random_state=None,
) -> pd.DataFrame:
    """Pairwise gold and preference evaluations of four models with known truth.

    Parameters
    ----------
    n_queries, d : int
        Number of queries and of features (d >= 11).
    pairs_per_query : int in 1..6
        Distinct model pairs evaluated on each query (random pairs, random order).
    bias : {"per_model", "none"}
        The judge's per-model bias beta_k(s) (module docstring), or none.
    position : float
        The judge's extra preference for the first-listed answer (gold scale).
    gold_noise, pref_noise : float
        Noise standard deviations of a gold label and (before scaling) of a preference label.
    pref_scale : float
        The preference scale relative to the gold scale.
    random_state : int, Generator or None

    Returns
    -------
    DataFrame, one row per (query, pair): ``query_id``, ``x0 .. x{d-1}``, ``model_a``,
    ``model_b``, ``gain`` (true u_a - u_b), ``bias`` (true gold-scale bias of the row:
    beta_a - beta_b - position), ``gold_gain``, ``pref_gain`` (observed labels) and
    ``u_<model>`` for every model (the query's true utilities, gold scale, u_small = 0) and
    ``beta_<model>`` (the judge's true per-model bias on the query, gold scale, beta_small = 0).
    ``attrs``: ``models`` (cheapest first), ``costs`` ({model: cost}), ``reference`` ("small"),
    ``pref_scale``.
    """
    if d < 11:
        raise DataError(f"d must be at least 11 for the generator's functions, got {d}")
    if n_queries < 10:
        raise DataError(f"n_queries must be at least 10, got {n_queries}")
    pairs = list(combinations(range(len(MULTI_MODELS)), 2))
    if not 1 <= pairs_per_query <= len(pairs):
        raise DataError(f"pairs_per_query must be in 1..{len(pairs)}, got {pairs_per_query}")
    if bias not in ("per_model", "none"):
        raise DataError(f"bias must be 'per_model' or 'none', got {bias!r}")
    rng = check_random_state(random_state)
    sd = (1.0 + np.arange(d) / 4.0) ** -0.5
    X = rng.standard_normal((n_queries, d)) * sd
    X[:, :11] /= sd[:11]
    U = _utilities(X)
    B = _judge_bias(X) if bias == "per_model" else np.zeros_like(U)

    chosen = np.argsort(rng.random((n_queries, len(pairs))), axis=1)[:, :pairs_per_query]
    q = np.repeat(np.arange(n_queries), pairs_per_query)
    pair = np.asarray(pairs)[chosen.reshape(-1)]
    flip = rng.random(len(q)) < 0.5
    a = np.where(flip, pair[:, 1], pair[:, 0])
    b = np.where(flip, pair[:, 0], pair[:, 1])
    gain = U[q, a] - U[q, b]
    delta = B[q, a] - B[q, b] - position
    names = np.asarray(MULTI_MODELS, dtype=object)

    frame = pd.DataFrame(X[q], columns=[f"x{j}" for j in range(d)])
    frame.insert(0, "query_id", [f"q{i:06d}" for i in q])
    frame["model_a"], frame["model_b"] = names[a], names[b]
    frame["gain"], frame["bias"] = gain, delta
    frame["gold_gain"] = gain + gold_noise * rng.standard_normal(len(q))
    frame["pref_gain"] = pref_scale * (gain - delta + pref_noise * rng.standard_normal(len(q)))
    for k, name in enumerate(MULTI_MODELS):
        frame[f"u_{name}"] = U[q, k]
    for k, name in enumerate(MULTI_MODELS):
        frame[f"beta_{name}"] = B[q, k]
    frame.attrs.update(models=list(MULTI_MODELS), costs=dict(MULTI_COSTS), reference=MULTI_MODELS[0],
                       pref_scale=pref_scale)
    return frame


def heldout_quality(frame: pd.DataFrame, models, reference: str, *, gain: str = "gold_gain",
                    model_a: str = "model_a", model_b: str = "model_b", query_id: str = "query_id") -> pd.DataFrame:
    """Each model's quality on each query from that query's own gold comparisons.

    Per query, least squares of the gold gains on the contrast codes, min sum (g - (v_a - v_b))^2
    with v_reference = 0: v_k is model k's gold-scale quality relative to the reference on that
    query (for a query compared only on some pairs, the quality the human verdicts imply). Rows:
    queries (index ``query_id``, in order of first appearance); columns: ``models``. NaN for every
    model of a query whose comparisons do not connect all models (its quality is not identified).

    Parameters
    ----------
    frame : DataFrame
        One row per (query, pair) comparison; not modified.
    models : iterable of str
        The K model names (the columns of the result).
    reference : str
        The model whose quality is 0 on every query (one of ``models``).
    gain : str, default="gold_gain"
        Column of the gold gain of ``model_a`` over ``model_b`` (gold scale).
    model_a, model_b : str, default="model_a", "model_b"
        Columns naming the two models compared on each row.
    query_id : str, default="query_id"
        Column of the query ids.

    Returns
    -------
    DataFrame of shape (n_queries, K)
        Each model's quality relative to ``reference`` on each query, gold scale, indexed by
        ``query_id``.
    """
    check_columns(frame, [gain, model_a, model_b, query_id], "frame")
    models = list(models)
    out = {}
    for qid, rows in frame.groupby(query_id, sort=False):
        D = contrast_codes(rows[model_a], rows[model_b], models, reference)
        v = np.full(len(models), np.nan)
        if np.linalg.matrix_rank(D) == len(models) - 1:
            coef = np.linalg.lstsq(D, rows[gain].to_numpy(dtype=float), rcond=None)[0]
            v = np.insert(coef, models.index(reference), 0.0)
        out[qid] = v
    return pd.DataFrame.from_dict(out, orient="index", columns=models).rename_axis(query_id)


@dataclass
class MultiSplit:
    """One K-model experiment draw, split by query.

    ``train`` reveals gold labels on every row of ``n_gold_queries`` training queries (on
    ``gold_pairs`` only, when given) and preference labels on the other rows; ``oracle`` gives
    every training row its gold label (the All-Golden oracle); ``test_X`` (n_test, d) holds one
    row of features per test query and ``test_quality`` (n_test, K) each model's quality on it,
    gold scale, relative to ``reference`` (true utilities for the generator, held-out human
    quality from :func:`heldout_quality` for real data). Built by :func:`reveal_multi_split`;
    each parameter is kept as the attribute of the same name.

    Parameters
    ----------
    train : PairwiseData
        The training rows: gold labels on the gold queries' rows, preference labels elsewhere.
    oracle : PairwiseData
        The same training rows, every one with its gold label (the All-Golden oracle).
    test_X : DataFrame of shape (n_test, d)
        Features of the test queries (one row each, indexed by query id).
    test_quality : DataFrame of shape (n_test, K)
        Each model's gold-scale quality on each test query relative to ``reference``.
    models : list of str
        The K model names, in the column order of ``test_quality``.
    reference : str
        The model whose quality is 0.
    """

    train: PairwiseData
    oracle: PairwiseData
    test_X: pd.DataFrame
    test_quality: pd.DataFrame
    models: list
    reference: str


def reveal_multi_split(
    frame: pd.DataFrame,
    features=None,
    *,
    n_gold_queries: int = 100,
    n_test_queries: int = 500,
    gold_pairs=None,
    gold_gain: str = "gold_gain",
    pref_gain: str = "pref_gain",
    model_a: str = "model_a",
    model_b: str = "model_b",
    query_id: str = "query_id",
    random_state=None,
) -> MultiSplit:
    """Hold out ``n_test_queries`` queries, reveal gold labels on ``n_gold_queries`` of the rest.

    ``frame`` has one row per (query, pair) with both labels (the generator, or
    :func:`load_pandalm_multi`). ``features`` defaults to ``frame.attrs["features"]``, else the
    columns ``x<j>``. Test quality: the ``u_<model>`` columns when
    present (the generator's truth), otherwise :func:`heldout_quality` of the test queries'
    gold rows; then only queries whose comparisons connect every model can be test queries.
    ``gold_pairs`` (iterable of (model, model)) restricts gold labels to those pairs, in either
    order: the gold queries' other rows reveal their preference label. The frame is not modified.

    Parameters
    ----------
    frame : DataFrame
        One row per (query, pair) with both labels; its ``attrs`` may name ``features``,
        ``models`` and ``reference``.
    features : list of str, optional
        Feature columns; None: ``frame.attrs["features"]``, else the columns ``x<j>``.
    n_gold_queries : int, default=100
        Training queries whose rows reveal their gold label.
    n_test_queries : int, default=500
        Held-out queries.
    gold_pairs : iterable of (str, str), optional
        The model pairs on which gold labels are revealed; None: every pair.
    gold_gain, pref_gain : str, default="gold_gain", "pref_gain"
        Columns of the gold and preference gains.
    model_a, model_b : str, default="model_a", "model_b"
        Columns naming the two models compared on each row.
    query_id : str, default="query_id"
        Column of the query ids.
    random_state : int, Generator or None, default=None
        Seed of the draw.

    Returns
    -------
    MultiSplit
        The training, oracle and test data of the draw.

    Raises
    ------
    DataError
        On a missing column, or query counts that leave no test, gold or preference queries.
    """
    if features is None:
        features = frame.attrs.get("features") or [
            c for c in frame.columns if isinstance(c, str) and c[:1] == "x" and c[1:].isdigit()]
    features = list(features)
    check_columns(frame, [*features, gold_gain, pref_gain, model_a, model_b, query_id], "frame")
    models = list(frame.attrs.get("models") or sorted(set(frame[model_a]) | set(frame[model_b])))
    reference = frame.attrs.get("reference", models[0])
    truth = [f"u_{m}" for m in models]
    qids = pd.unique(frame[query_id])
    if all(c in frame.columns for c in truth):
        quality = frame.drop_duplicates(query_id).set_index(query_id)[truth]
        quality.columns = models
        quality = quality.sub(quality[reference], axis=0)
    else:
        quality = heldout_quality(frame, models, reference, gain=gold_gain, model_a=model_a,
                                  model_b=model_b, query_id=query_id)
    eligible = quality.index[quality.notna().all(axis=1)].to_numpy()
    if n_test_queries < 1 or n_gold_queries < 1:
        raise DataError(f"n_test_queries={n_test_queries} and n_gold_queries={n_gold_queries} must be positive")
    if n_test_queries > len(eligible):
        raise DataError(f"n_test_queries={n_test_queries} but only {len(eligible)} queries have a quality for "
                        "every model (their gold comparisons must connect all models)")
    if n_test_queries + n_gold_queries >= len(qids):
        raise DataError(f"n_test_queries={n_test_queries} and n_gold_queries={n_gold_queries} leave no preference "
                        f"queries among the {len(qids)} queries")
    rng = check_random_state(random_state)
    test = rng.permutation(eligible)[:n_test_queries]
    rest = np.setdiff1d(qids, test)
    gold_q = rng.permutation(rest)[:n_gold_queries]

    is_test = frame[query_id].isin(test).to_numpy()
    train = frame[~is_test]
    is_gold = train[query_id].isin(gold_q).to_numpy()
    if gold_pairs is not None:
        allowed = {frozenset(p) for p in gold_pairs}
        in_pairs = np.array([frozenset(p) in allowed for p in zip(train[model_a], train[model_b])])
        is_gold = is_gold & in_pairs
    gold, pref = train[gold_gain].to_numpy(dtype=float), train[pref_gain].to_numpy(dtype=float)
    args = dict(model_a=train[model_a], model_b=train[model_b], query_id=train[query_id], feature_names=features)
    X = train[features]  # named features: the routers match test_X's columns by name
    test_rows = frame[is_test].drop_duplicates(query_id).set_index(query_id).loc[test]
    return MultiSplit(
        train=PairwiseData(X, np.where(is_gold, gold, pref), is_gold, **args),
        oracle=PairwiseData(X, gold, np.ones(len(train), dtype=bool), **args),
        test_X=test_rows[features].copy(),
        test_quality=quality.loc[test, models].copy(),
        models=models,
        reference=reference,
    )


#: Notional per-query costs of PandaLM's five models, cheapest first. The five are all 6.7-7.1B
#: parameter models, so their serving costs are nearly equal; this ladder orders them by their
#: overall human win rate (measured on all rows: cerebras-gpt-6.7B < opt-7b < bloom-7b <
#: pythia-6.9b < llama-7b), the usual shape of a model menu, so that the frontier trades quality
#: for cost.
PANDALM_COSTS = {"cerebras-gpt-6.7B": 0.2, "opt-7b": 0.4, "bloom-7b": 0.6, "pythia-6.9b": 0.8, "llama-7b": 1.0}


def load_pandalm_multi(path=None, n_components: int = 20, random_state: int = 0) -> pd.DataFrame:
    """PandaLM (:func:`~causal_router.datasets.load_pandalm`: the raw files in ``path``, else in
    ``$CAUSAL_ROUTER_DATA/pandalm/``, else the bundled copy) as K = 5 model data: one row per
    (query, model pair), text features of the query added.

    Columns of the loader plus ``text_0 .. text_{k-1}`` (TF-IDF + SVD of the query text,
    :class:`~causal_router.text.TextFeaturizer`, fitted on the distinct queries) and the
    K-model names ``model_a`` (the loader's ``model_p``, the first answer shown to the judge)
    and ``model_b`` (the loader's ``model_a``). ``attrs``: ``models`` (sorted), ``reference``
    (the first), ``costs`` (:data:`PANDALM_COSTS`, notional), ``features``.

    Parameters
    ----------
    path : str, PathLike or None, default=None
        Folder of the raw PandaLM files (as for :func:`~causal_router.datasets.load_pandalm`).
    n_components : int, default=20
        SVD components of the text features.
    random_state : int, default=0
        Seed of the SVD.

    Returns
    -------
    DataFrame
        One row per (query, model pair) with the columns and ``attrs`` above.
    """
    from ..text import TextFeaturizer
    from .real import load_pandalm

    raw = load_pandalm(path)
    X = TextFeaturizer(n_components=n_components, random_state=random_state).fit_transform(raw["query_text"].tolist())
    features = [f"text_{j}" for j in range(X.shape[1])]
    frame = raw.rename(columns={"model_a": "model_b"}).rename(columns={"model_p": "model_a"}).reset_index(drop=True)
    frame = pd.concat([frame, pd.DataFrame(X, columns=features)], axis=1)
    models = sorted(set(frame["model_a"]) | set(frame["model_b"]))
    frame.attrs.update(raw.attrs)
    frame.attrs.update(models=models, reference=models[0], costs=dict(PANDALM_COSTS), features=features)
    return frame
