"""Validation of the bias estimate: CATE diagnostics and refutations, computed (result objects, no rendering).

- :func:`diagnose` -> :class:`Diagnostics`: overlap, held-out calibration / BLP / uplift tests
  (econml DRTester), the average and group biases, interpretation.
- :func:`refute` -> :class:`Refutation`: dowhy's refuters and econml's sensitivity analysis of
  the average bias.

Readings, figures and HTML pages: :mod:`causal_router.report`.
"""

from .diagnostics import (
    NUMBER_KEYS,
    OVERLAP_MAX_AUC,
    OVERLAP_MAX_CLIPPED_SHARE,
    OVERLAP_MIN_ESS_SHARE,
    Diagnostics,
    OverlapWarning,
    diagnose,
    heldout_tests,
)
from .refute import DEFAULT_SIMULATIONS, REFUTERS, RULES, THOROUGH_SIMULATIONS, Refutation, refute

__all__ = [
    "diagnose", "heldout_tests", "Diagnostics", "OverlapWarning", "NUMBER_KEYS",
    "OVERLAP_MAX_AUC", "OVERLAP_MIN_ESS_SHARE", "OVERLAP_MAX_CLIPPED_SHARE",
    "refute", "Refutation", "REFUTERS", "RULES", "DEFAULT_SIMULATIONS", "THOROUGH_SIMULATIONS",
]
