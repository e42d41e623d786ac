"""Sampling designs with known inclusion probabilities: how a round of gold rows is drawn, and
each row's probability of a gold label after several rounds.

A round of a design gives every query a probability pi(s) of being sent to the gold standard:

    pi(s) = min(cap, k * [floor + (1 - floor) * a(s) / mean_pool(a)])

with a(s) >= 0 the strategy's acquisition score, ``floor`` the share of the budget spread
uniformly (every query keeps a positive probability: positivity by design) and k set so that the
probabilities of the candidate rows (the pool) sum to the budget. Exactly ``budget`` rows are
then drawn with these first-order inclusion probabilities by systematic sampling (Madow 1949) on
a randomly ordered list, or on a list ordered by strata, which spreads the sample over the strata
without changing any inclusion probability (implicit stratification).

Over rounds r = 1..R a query is gold iff some round draws it, so its probability of a gold label
is q(s) = 1 - prod_r (1 - pi_r(s)) (:func:`combine_probabilities`), evaluated for every row: for
a row that is already gold, pi_r is the probability the round's design would have given it. The
rounds' designs depend on the labels seen so far (that is what makes them adaptive); q is exact
when a gold row's pi_r is that of the design the round would have run without the row's own
label (tested: unbiased inverse-probability weighting over adaptive rounds). The strategies
approximate it: a gold row's uncertainty is its out-of-bag bootstrap spread, which its own label
did not shape, and its influence on the design's normalisation (one of the gold labels) is
ignored. Measured consequence for the average bias: README, "Choosing gold rows" (coverage of its
interval over many seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import DataError, as_float_vector

__all__ = ["SamplingDesign", "systematic_sample", "combine_probabilities"]


@dataclass(frozen=True)
class SamplingDesign:
    """One round's design: pi(s) = min(cap, factor * (floor + (1 - floor) * score(s) / score_mean)).

    Build it with :meth:`for_budget`; :meth:`probability` evaluates it on any rows' scores (the
    pool's, or rows outside the pool: the probability they would have had).

    Parameters
    ----------
    floor : float
        Share of the budget spread uniformly over the pool, in (0, 1]; 1 is a uniform design.
    cap : float
        Largest inclusion probability of a row in one round, in (0, 1).
    factor : float
        The normalisation k that makes the pool's probabilities sum to the budget.
    score_mean : float
        Mean acquisition score over the pool (scores are divided by it; 0 makes every row's
        relative score 1).
    """

    floor: float
    cap: float
    factor: float
    score_mean: float

    @classmethod
    def for_budget(cls, pool_score, budget: int, *, floor: float, cap: float) -> "SamplingDesign":
        """The design whose probabilities over the pool rows sum to ``budget``.

        Rows above ``cap`` are set to it and the rest rescaled.

        Parameters
        ----------
        pool_score : array-like of shape (n_pool,)
            Acquisition scores of the pool rows, >= 0 (the strategy's units).
        budget : int
            Number of rows the round draws: the sum of the pool's probabilities, between 1 and
            ``cap * n_pool``.
        floor : float
            Share of the budget spread uniformly, in (0, 1].
        cap : float
            Largest inclusion probability of a row, in (0, 1).

        Returns
        -------
        SamplingDesign
            The design; :meth:`probability` of ``pool_score`` sums to ``budget``.

        Raises
        ------
        DataError
            On a negative score, or ``floor``, ``cap`` or ``budget`` out of range.
        """
        score = as_float_vector(pool_score, "acquisition scores")
        if np.any(score < 0):
            raise DataError("acquisition scores must be non-negative")
        if not 0 < floor <= 1:
            raise DataError(f"floor must be in (0, 1], got {floor!r}")
        if not 0 < cap < 1:
            raise DataError(f"cap must be in (0, 1), got {cap!r}")
        if not 0 < budget <= cap * len(score):
            raise DataError(f"budget must be between 1 and {int(cap * len(score))} ({cap:g} of the {len(score)} "
                            f"candidate rows, so that no query is certain to be drawn), got {budget}")
        mean = float(score.mean())
        weight = _weights(score, floor, mean)
        capped = np.zeros(len(weight), dtype=bool)
        while True:  # at most one pass per capped row; usually none
            factor = (budget - cap * capped.sum()) / weight[~capped].sum()
            over = ~capped & (factor * weight > cap)
            if not over.any():
                return cls(floor=float(floor), cap=float(cap), factor=float(factor), score_mean=mean)
            capped |= over

    def probability(self, score) -> np.ndarray:
        """Inclusion probability of rows under this design.

        Parameters
        ----------
        score : array-like of shape (n,)
            Acquisition scores of the rows (pool rows or any others).

        Returns
        -------
        ndarray of shape (n,)
            Each row's inclusion probability in this round, in (0, cap].
        """
        score = np.asarray(score, dtype=float)
        return np.minimum(self.cap, self.factor * _weights(score, self.floor, self.score_mean))


def _weights(score: np.ndarray, floor: float, mean: float) -> np.ndarray:
    relative = score / mean if mean > 0 else np.ones_like(score)
    return floor + (1.0 - floor) * relative


def systematic_sample(probability, random_state, order=None) -> np.ndarray:
    """Draw exactly round(sum(probability)) rows, row i with probability ``probability[i]``.

    Systematic sampling: the rows, in ``order`` (default: a random permutation), cover
    consecutive intervals of lengths ``probability`` on [0, n); the rows whose interval holds one
    of the points u, u + 1, ... (u uniform on [0, 1)) are drawn. Each row's inclusion probability
    is exactly its ``probability`` (<= 1); ordering by strata spreads the draw over them.

    Parameters
    ----------
    probability : array-like of shape (n,)
        Inclusion probability of each row, in [0, 1].
    random_state : int, Generator or None
        Seed of the random order (when ``order`` is None) and of the start point u.
    order : array-like of shape (n,) of int, optional
        A permutation of the rows: the order in which they are laid out (e.g. sorted by
        strata). None: a random permutation.

    Returns
    -------
    ndarray of shape (round(sum(probability)),) of int
        The sorted positions of the drawn rows.

    Raises
    ------
    DataError
        If a probability lies outside [0, 1] or ``order`` is not a permutation of the rows.
    """
    p = np.asarray(probability, dtype=float)
    if np.any(p < 0) or np.any(p > 1):
        raise DataError("inclusion probabilities must lie in [0, 1]")
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(p)) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(len(p))):
        raise DataError("order must be a permutation of the rows")
    total = p.sum()
    size = int(round(total))
    edges = np.concatenate([[0.0], np.cumsum(p[order])])
    edges *= size / total if total > 0 else 1.0  # sum exactly the sample size despite rounding
    u = rng.uniform()
    hits = np.floor(edges[1:] - u) > np.floor(edges[:-1] - u)
    return np.sort(order[hits])


def combine_probabilities(previous, current) -> np.ndarray:
    """Probability of a gold label after one more round: 1 - (1 - previous) * (1 - current).

    Parameters
    ----------
    previous : array-like of shape (n,)
        Each row's probability of a gold label before the round.
    current : array-like of shape (n,)
        Each row's inclusion probability in the round.

    Returns
    -------
    ndarray of shape (n,)
        Each row's probability of a gold label after the round (elementwise).
    """
    previous, current = np.asarray(previous, dtype=float), np.asarray(current, dtype=float)
    return 1.0 - (1.0 - previous) * (1.0 - current)
