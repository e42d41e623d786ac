"""The refutation report: the figure, the HTML section for the diagnostics page, and the saved files.

:class:`RefutationReport` presents a :class:`causal_router.validate.Refutation` (the numbers come
from :func:`causal_router.validate.refute`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .._validation import DataError
from ..io import atomic_write
from ..validate.refute import MODERATE_R2, MODERATE_STRENGTH, RULES, SUBSET_FRACTION, Refutation
from .html import escape, figure_html, number, page, png_bytes

__all__ = ["RefutationReport", "TITLES"]

#: Display title of each refuter.
TITLES = {
    "placebo_treatment": "Placebo treatment (permuted)",
    "random_common_cause": "Random common cause",
    "data_subset": f"Data subset ({SUBSET_FRACTION:.0%})",
    "bootstrap": "Bootstrap",
    "dummy_outcome": "Dummy outcome (permuted)",
    "unobserved_common_cause": "Unobserved common cause (dowhy direct simulation)",
    "sensitivity_robustness_value": "Omitted-variable sensitivity (econml robustness value)",
}


class RefutationReport:
    """Figure, HTML and files of a :class:`Refutation`.

    ``RefutationReport(refutation).html()`` is the section that goes into the diagnostics report
    (``DiagnosticsReport(diag).save(folder, extra_sections=[("Refutation tests", ...)])``);
    :meth:`save` writes the refutation's own files.

    Parameters
    ----------
    refutation : Refutation
        The result of :func:`causal_router.validate.refute`.

    Raises
    ------
    DataError
        If ``refutation`` is not a :class:`Refutation`.
    """

    def __init__(self, refutation: Refutation):
        if not isinstance(refutation, Refutation):
            raise DataError(f"refutation must be the Refutation that validate.refute returns, "
                            f"got {type(refutation).__name__}")
        self.refutation = refutation
        self._figure = None

    def __repr__(self) -> str:
        return f"RefutationReport({self.refutation!r})"

    def figure(self):
        """The refutation figure (simulated estimates per refuter and the confounder path); drawn once.

        Returns
        -------
        matplotlib.figure.Figure
            The figure of :func:`~causal_router.report.plotting.plot_refutations` (closed in
            pyplot; the same object on every call).
        """
        if self._figure is None:
            import matplotlib.pyplot as plt

            from .plotting import plot_refutations

            r = self.refutation
            self._figure = plot_refutations(r.simulations, r.meta["original_effect"], r.sensitivity_path,
                                            moderate=MODERATE_STRENGTH)
            plt.close(self._figure)
        return self._figure

    def html(self, include_figure: bool = True, *, dpi: int = 110) -> str:
        """An HTML fragment (no <html>/<body>) for the diagnostics report.

        Uses the report's CSS classes (``reading fine|warning|info``, ``grid``, ``kv``, ``meta``).

        Parameters
        ----------
        include_figure : bool, default=True
            Embed the refutation figure (base64 PNG).
        dpi : int, default=110
            Resolution of the embedded figure, dots per inch.

        Returns
        -------
        str
            The fragment: the verdict, the table of refuters, the confounder path, econml's
            sensitivity analysis where available, the rules, and the figure.
        """
        r = self.refutation
        m = r.meta
        status = "fine" if r.passed else "warning"
        head = ("All refuters passed: nothing in these checks contradicts the estimated average bias."
                if r.passed else
                "Failed: " + ", ".join(TITLES[f].lower() for f in r.failed)
                + ". Read the failing rows before trusting the bias correction.")
        parts = [
            f"<p class='meta'>Average bias (AIPW, the estimate of <code>ate()</code>; gold scale) "
            f"{m['original_effect']:.4g}, re-estimated "
            f"by every refuter with econml <code>{escape(m['method_name'].split('.', 1)[1])}</code> through dowhy "
            f"({m['cv']} cross-fitting folds; {m['n']} rows, {m['n_gold']} gold). Treatment: gold (1) vs "
            f"preference (0) evaluation; outcome: the gain; common causes and effect modifiers: the "
            f"{m['n_features']} query features. {escape(m['suite'])} suite, {m['n_refits']} refits in "
            f"{m['runtime_seconds']:.1f} s (n_jobs={m['n_jobs']}).</p>",
            f"<div class='reading {status}'><b>{escape(head)}</b></div>",
        ]
        head_cells = ["refuter", "estimate", "refuted", "p-value", "verdict", "reading"]
        rows = []
        for _, row in r.table.iterrows():
            verdict = "pass" if row["passed"] else "<b style='color:#d62728'>FAIL</b>"
            rows.append("<tr>" + "".join([
                f"<td>{escape(TITLES[row['refuter']])}</td>", f"<td>{number(row['original_effect'])}</td>",
                f"<td>{number(row['refuted_effect'])}</td>", f"<td>{number(row['p_value'])}</td>",
                f"<td>{verdict}</td>", f"<td>{escape(row['reading'])}</td>"]) + "</tr>")
        parts.append("<table class='grid'><tr>" + "".join(f"<th>{h}</th>" for h in head_cells) + "</tr>"
                     + "".join(rows) + "</table>")
        path = r.sensitivity_path
        if len(path):
            steps = path[["strength", "kappa_t", "kappa_y", "effect"]].itertuples(index=False)
            cells = "".join(f"<tr><td>{s:.3g}</td><td>{kt:.3g}</td><td>{ky:.3g}</td><td>{number(v)}</td></tr>"
                            for s, kt, ky, v in steps)
            parts.append("<h3>Simulated unobserved confounder</h3><table class='grid'><tr><th>strength s</th>"
                         "<th>flip probability</th><th>outcome coefficient</th><th>estimate (gold scale)</th>"
                         f"</tr>{cells}</table>")
        es = r.econml_sensitivity
        if es.get("available"):
            level = f"c_y = c_t = {MODERATE_R2}"
            rows_es = [("estimator", es["estimator"]), ("theta (gold scale)", es["theta"]),
                       (f"theta bounds at {level}", f"[{es['theta_lower']:.4g}, {es['theta_upper']:.4g}]"),
                       (f"confidence bounds at {level}", f"[{es['ci_lower']:.4g}, {es['ci_upper']:.4g}]"),
                       ("robustness value (theta)", es["robustness_value"]),
                       ("robustness value (confidence interval)", es["robustness_value_ci"])]
            parts.append("<h3>econml sensitivity analysis</h3><table class='kv'>" + "".join(
                f"<tr><th>{escape(k)}</th><td>{number(v) if not isinstance(v, str) else escape(v)}</td></tr>"
                for k, v in rows_es) + "</table>")
        parts.append("<details><summary>Rules</summary><ul>" + "".join(
            f"<li><b>{escape(TITLES[k])}</b>: {escape(v)}</li>" for k, v in RULES.items()) + "</ul></details>")
        if include_figure:
            parts.append(figure_html("refutations", png_bytes(self.figure(), dpi)))
        return "\n".join(parts)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the refutation's files into ``folder``, each file atomically.

        ``refutations.csv``, ``refutations.json``, ``refutations.png`` and a standalone
        ``refutations.html``, each written with :func:`causal_router.io.atomic_write`.

        Parameters
        ----------
        folder : str or PathLike
            The output folder (created if missing).

        Returns
        -------
        Path
            The folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / "refutations.csv") as tmp:
            self.refutation.table.to_csv(tmp, index=False)
        self.refutation.to_json(folder / "refutations.json")
        with atomic_write(folder / "refutations.png") as tmp:
            tmp.write_bytes(png_bytes(self.figure(), 110))
        with atomic_write(folder / "refutations.html") as tmp:
            tmp.write_text(page("causal-router: refutations of the bias estimate", self.html(),
                                heading="Refutation tests of the preference bias"), encoding="utf-8")
        return folder
