"""Reports: readings, figures and pages drawn from the results of :mod:`causal_router.validate`.

- :class:`DiagnosticsReport` (``report/diagnostics.py``): readings and status per section, the
  figures, ``report.html`` and ``diagnostics.json``.
- :class:`RefutationReport` (``report/refutation.py``): the refutation figure, its HTML section
  and files.
- :func:`save_experiment` (``report/experiment.py``): the Monte Carlo experiment's tables and figures.
- ``report/plotting.py`` draws every figure; ``report/html.py`` holds the page skeleton and tables.
"""

from .diagnostics import DiagnosticsReport
from .experiment import save_experiment
from .refutation import RefutationReport

__all__ = ["DiagnosticsReport", "RefutationReport", "save_experiment"]
