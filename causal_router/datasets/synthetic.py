"""The semi-synthetic generator with known truth, and the gold/preference reveal split.

The generator is shaped like the Meta-Router paper's HealthBench setting: query features play
the role of the leading principal components of a text embedding (independent Gaussians with
decaying variance), the gold gain psi(s) is a smooth nonlinear function of a few of them, and
the LLM judge's expected preference gain eta(s) misses part of psi and rewards something psi
does not care about, so the bias Delta(s) = psi(s) - eta(s) / pref_scale varies with the query.
It has one row per query. :func:`make_repeated_queries` is its counterpart for real data's shape:
each query carries several rows, which share the query's features and what the features do not
say about it.

:func:`reveal_split` draws an experiment's split. Where a query carries several rows it holds out
whole queries: a router is used on queries it has never seen, and a row split lets the gain model
recognise the test queries from their other rows in training (measured with this module's
generators in ``tests/test_queries.py``; on real data see the README, "Measured").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import DataError, check_columns, check_random_state
from ..data import EvalData, query_codes

__all__ = ["make_semi_synthetic", "make_repeated_queries", "reveal_split", "RevealedSplit", "feature_columns",
           "SPLIT_BY"]

#: What :func:`reveal_split` may hold out: whole queries or single rows.
SPLIT_BY = ("query", "row")


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
    """Names of the generator's feature columns.

    Parameters
    ----------
    d : int
        Number of features.

    Returns
    -------
    list of str
        ``x0``, ``x1``, ..., ``x{d-1}``.
    """
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


def make_repeated_queries(
    n_queries: int = 60,
    rows_per_query: int = 30,
    d: int = 10,
    *,
    bias_mean: float = 0.3,
    bias_sd: float = 0.35,
    query_effect: float = 0.4,
    gold_noise: float = 0.35,
    pref_noise: float = 0.35,
    pref_scale: float = 1.0,
    random_state=None,
) -> pd.DataFrame:
    """Queries that each carry several rows (answers of several model pairs, several votes), with
    known truth.

    Query q has features z_q (d standard normals, shared by its rows: the query's embedding) and
    two things its features do not say: a gain offset a_q ~ N(0, ``query_effect``^2), added to the
    gold gain of every row of q (how much the primary gains on this query beyond what its features
    predict), and the judge's bias on it, Delta_q = ``bias_mean`` + 0.15 tanh(z_q0) + v_q with
    v_q ~ N(0, ``bias_sd``^2): the bias varies by query, and its average over the population of
    queries is ``bias_mean``. Row r of q adds a row feature w_r ~ N(0, 1) (an answer's length, a
    model pair's trait): psi = 0.3 + 0.25 tanh(1.5 z_q0) + 0.2 sin(1.5 z_q1) + 0.15 z_q2 +
    a_q + 0.2 w_r; eta = pref_scale (psi - Delta_q).

    Parameters
    ----------
    n_queries, rows_per_query, d : int
        Queries, rows per query and query features (d >= 3).
    bias_mean, bias_sd : float
        Population mean of the judge's bias (gold scale) and the sd of its query-level part v_q.
    query_effect : float
        Standard deviation of the query-level gain offset a_q.
    gold_noise, pref_noise, pref_scale : float
        As in :func:`make_semi_synthetic`.
    random_state : int, Generator or None

    Returns
    -------
    DataFrame of n_queries * rows_per_query rows, a query's rows together: ``query_id``,
    ``x0 .. x{d-1}`` (the query's features, equal on its rows), ``x{d}`` (the row feature),
    ``psi``, ``eta``, ``bias`` (Delta_q, gold scale), ``gold_gain``, ``pref_gain``.
    ``attrs``: ``pref_scale`` and ``bias_mean``.
    """
    if d < 3:
        raise DataError(f"d must be at least 3, got {d}")
    if n_queries < 2 or rows_per_query < 1:
        raise DataError(f"need at least 2 queries and 1 row per query, got {n_queries} and {rows_per_query}")
    rng = check_random_state(random_state)
    z = rng.standard_normal((n_queries, d))
    offset = query_effect * rng.standard_normal(n_queries)
    delta_q = bias_mean + 0.15 * np.tanh(z[:, 0]) + bias_sd * rng.standard_normal(n_queries)
    q = np.repeat(np.arange(n_queries), rows_per_query)
    n = len(q)
    w = rng.standard_normal(n)
    Z = z[q]
    psi = (0.3 + 0.25 * np.tanh(1.5 * Z[:, 0]) + 0.2 * np.sin(1.5 * Z[:, 1]) + 0.15 * Z[:, 2]
           + offset[q] + 0.2 * w)
    delta = delta_q[q]
    eta = pref_scale * (psi - delta)
    frame = pd.DataFrame(np.column_stack([Z, w]), columns=feature_columns(d + 1))
    frame.insert(0, "query_id", [f"q{i:05d}" for i in q])
    frame["psi"] = psi
    frame["eta"] = eta
    frame["bias"] = delta
    frame["gold_gain"] = psi + gold_noise * rng.standard_normal(n)
    frame["pref_gain"] = eta + pref_scale * pref_noise * rng.standard_normal(n)
    frame.attrs.update(pref_scale=pref_scale, bias_mean=bias_mean)
    return frame


@dataclass
class RevealedSplit:
    """One experiment draw: what a router may train on, the oracle's data, and the test set.

    ``train`` reveals gold labels on ``n_gold`` random training rows and preference labels on
    the rest; ``oracle`` gives every training row its gold label (the All-Golden oracle, on the
    same training queries); ``test_X`` (n_test_rows, d) and ``test_gold`` (n_test_rows,) are the
    held-out features and gold gains. ``by``: ``"query"`` (whole queries held out) or ``"row"``.
    ``train`` and ``oracle`` carry the query ids where the frame has them, so that estimators
    cross-fit by query. Built by :func:`reveal_split`; each parameter is kept as the attribute
    of the same name.

    Parameters
    ----------
    train : EvalData
        The training rows: gold labels on ``n_gold`` of them, preference labels on the rest.
    oracle : EvalData
        The same training rows, every one with its gold label (the All-Golden oracle).
    test_X : ndarray of shape (n_test_rows, d)
        Features of the held-out rows.
    test_gold : ndarray of shape (n_test_rows,)
        Gold gains of the held-out rows.
    train_index : ndarray of shape (n_train_rows,) of int
        Positions in the frame of the training rows, in the order of ``train``'s rows.
    test_index : ndarray of shape (n_test_rows,) of int
        Positions in the frame of the held-out rows (sorted).
    by : {"row", "query"}, default="row"
        Whether single rows or whole queries were held out.
    """

    train: EvalData
    oracle: EvalData
    test_X: np.ndarray
    test_gold: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    by: str = "row"


def reveal_split(
    frame: pd.DataFrame,
    features=None,
    *,
    n_gold: int = 100,
    n_test: int = 500,
    gold_gain: str = "gold_gain",
    pref_gain: str = "pref_gain",
    pair: str | None = None,
    by: str | None = None,
    query_id: str = "query_id",
    random_state=None,
) -> RevealedSplit:
    """Hold out ``n_test`` random queries, reveal gold labels for ``n_gold`` of the remaining rows.

    ``frame`` carries both labels on every row (as the generators and the real loaders do).
    ``features`` defaults to the columns named ``x<j>``. The frame is not modified.

    ``by="query"`` (the default where the ``query_id`` column repeats an id) holds out whole
    queries: ``n_test`` counts test queries, all of whose rows are held out, and the training rows
    are the other queries' rows. ``by="row"`` (the default otherwise, and the only choice without
    a query column) holds out ``n_test`` rows. Either way ``n_gold`` counts gold-labelled rows (a
    label is the unit of cost), drawn uniformly among the training rows (so every training row has
    the same probability of a gold label), and the All-Golden oracle gets the gold label of every
    training row. With one row per query the two are the same draw (the row draw is made).
    The query ids, where the frame has them, are carried into ``train`` and ``oracle``.

    Parameters
    ----------
    frame : DataFrame
        Rows with features and both labels; not modified.
    features : list of str, optional
        Feature columns; None: the columns named ``x<j>``.
    n_gold : int, default=100
        Gold-labelled training rows.
    n_test : int, default=500
        Held-out queries (``by="query"``) or rows (``by="row"``).
    gold_gain, pref_gain : str, default="gold_gain", "pref_gain"
        Columns of the gold and preference gains.
    pair : str or None, default=None
        Column naming each row's model pair, carried into the EvalData; None: no pair.
    by : {"query", "row"} or None, default=None
        What is held out; None: ``"query"`` where the ``query_id`` column repeats an id,
        ``"row"`` otherwise.
    query_id : str, default="query_id"
        Column of the query ids (absent column: one query per row).
    random_state : int, Generator or None, default=None
        Seed of the draw.

    Returns
    -------
    RevealedSplit
        The training, oracle and test data of the draw.

    Raises
    ------
    DataError
        On a missing column, an unknown ``by``, or ``n_test`` / ``n_gold`` that leave no test,
        gold or preference rows.
    """
    if features is None:
        features = [c for c in frame.columns if isinstance(c, str) and c[:1] == "x" and c[1:].isdigit()]
    check_columns(frame, [*features, gold_gain, pref_gain, *([pair] if pair else [])], "frame")
    if by not in (None, *SPLIT_BY):
        raise DataError(f"by must be None, 'query' or 'row', got {by!r}")
    has_queries = query_id is not None and query_id in frame.columns
    if by == "query" and not has_queries:
        raise DataError(f"by='query' needs the query column {query_id!r}, which the frame lacks")
    codes = query_codes(frame[query_id]) if has_queries else None
    n_queries = len(frame) if codes is None else int(codes.max()) + 1
    if by is None:
        by = "query" if n_queries < len(frame) else "row"
    n = len(frame)
    rng = check_random_state(random_state)
    if by == "row" or n_queries == n:
        if n_test < 1 or n_gold < 1 or n_test + n_gold >= n:
            raise DataError(
                f"n_test={n_test} and n_gold={n_gold} must be positive and leave preference rows "
                f"among the {n} rows"
            )
        order = rng.permutation(n)
        test_index, train_index = np.sort(order[:n_test]), order[n_test:]
        is_gold = np.zeros(len(train_index), dtype=bool)
        is_gold[:n_gold] = True
        train_index_sorted = np.argsort(train_index, kind="stable")
        train_index, is_gold = train_index[train_index_sorted], is_gold[train_index_sorted]
    else:
        if n_test < 1 or n_test >= n_queries:
            raise DataError(f"n_test={n_test} must be a positive number of test queries below the {n_queries} "
                            f"queries of the frame (by='query' holds out whole queries)")
        test_queries = rng.permutation(n_queries)[:n_test]
        is_test = np.isin(codes, test_queries)
        test_index, train_index = np.flatnonzero(is_test), np.flatnonzero(~is_test)
        if n_gold < 1 or n_gold >= len(train_index):
            raise DataError(f"n_gold={n_gold} must be positive and leave preference rows among the "
                            f"{len(train_index)} rows of the {n_queries - n_test} training queries")
        is_gold = np.zeros(len(train_index), dtype=bool)
        is_gold[rng.permutation(len(train_index))[:n_gold]] = True
    train = frame.iloc[train_index]
    X = train[list(features)].to_numpy(dtype=float)
    gold = train[gold_gain].to_numpy(dtype=float)
    pref = train[pref_gain].to_numpy(dtype=float)
    pairs = None if pair is None else train[pair].to_numpy()
    queries = train[query_id].to_numpy() if has_queries else None
    revealed = EvalData(X, np.where(is_gold, gold, pref), is_gold, pair=pairs, query_id=queries,
                        feature_names=list(features))
    oracle = EvalData(X, gold, np.ones(len(train), dtype=bool), pair=pairs, query_id=queries,
                      feature_names=list(features))
    test = frame.iloc[test_index]
    return RevealedSplit(
        train=revealed,
        oracle=oracle,
        test_X=test[list(features)].to_numpy(dtype=float),
        test_gold=test[gold_gain].to_numpy(dtype=float),
        train_index=train_index,
        test_index=test_index,
        by=by,
    )
