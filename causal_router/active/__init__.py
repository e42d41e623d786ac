"""Choosing which queries get gold labels, and how many.

- :func:`suggest_gold` draws the next queries to send to the gold standard, each with a known
  probability (:mod:`.design`), by a strategy's acquisition score (:mod:`.scores`); the result,
  :class:`SuggestedGold`, carries every row's probability of a gold label into the next
  :class:`~causal_router.EvalData` (``gold_probability``), which the bias estimator uses as the
  propensity: a designed selection of gold rows keeps the bias estimate causally valid.
- :func:`plan_gold` estimates how many gold labels reach a target oracle share or confidence
  interval width, from a learning curve and the 1/sqrt(n) law (:mod:`.plan`).
"""

from .design import SamplingDesign, combine_probabilities, systematic_sample
from .plan import GoldPlan, plan_gold
from .suggest import STRATEGIES, SuggestedGold, auto_strategy, suggest_gold

__all__ = ["suggest_gold", "SuggestedGold", "auto_strategy", "STRATEGIES", "plan_gold", "GoldPlan",
           "SamplingDesign", "combine_probabilities", "systematic_sample"]
