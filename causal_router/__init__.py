"""causal_router: LLM routers trained on scarce gold-standard and abundant, biased preference
evaluations, with the preference bias estimated as a conditional average treatment effect
(the Meta-Router method, arXiv 2509.25535)."""

__version__ = "0.1.0"

from .average import AverageBias
from .bias import BiasEstimator
from .data import EvalData
from .multi import MultiRouter
from .router import MetaRouter

__all__ = ["EvalData", "BiasEstimator", "AverageBias", "MetaRouter", "MultiRouter", "__version__"]
