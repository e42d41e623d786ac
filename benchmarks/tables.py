"""Write the measured tables of README.md and docs/results.md from the files in benchmarks/results/.

Every measured table in the two pages sits in a marked block::

    <!-- table: bias_suite -->

    | setting | default | ... |
    |---|---|---|

    <!-- /table -->

and is built here from the result files the benchmarks wrote, by one small function per table
(which files, which rows and columns, which rounding), registered in :data:`TABLES` with the
files it reads. Nothing is rerun: the numbers are those measured.

    python benchmarks/tables.py            # rewrite every marked block (atomic file writes)
    python benchmarks/tables.py --check    # exit 1 naming each table that differs from its files

A table that is hand-written on purpose (its numbers have no result file) is not marked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from causal_router.io import atomic_write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: The pages whose marked blocks are generated (paths relative to the repository root).
PAGES = ("README.md", "docs/results.md")

BLOCK = re.compile(r"^<!-- table: (?P<name>[\w-]+) -->\n(?P<body>.*?)^<!-- /table -->$", re.MULTILINE | re.DOTALL)
OPEN = re.compile(r"^<!-- table: ([\w-]+) -->$", re.MULTILINE)


class Table(NamedTuple):
    """One generated table: the function that builds it and the result files it reads."""

    build: Callable[[], pd.DataFrame]
    sources: tuple[str, ...]


#: Name -> table; the name is the one in the Markdown marker.
TABLES: dict[str, Table] = {}


def table(name: str, *sources: str):
    """Register the decorated function as the builder of table ``name``, reading ``sources``
    (paths under benchmarks/results/)."""
    def register(build):
        TABLES[name] = Table(build, sources)
        return build
    return register


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame``'s cells as they are (strings; a ``|`` escaped), its columns as the header."""
    def row(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(frame.columns), "|" + "---|" * frame.shape[1]]
    lines += [row(cells) for cells in frame.itertuples(index=False)]
    return "\n".join(lines)


def read_csv(path: str, **kwargs) -> pd.DataFrame:
    """A CSV file under benchmarks/results/."""
    return pd.read_csv(RESULTS / path, **kwargs)


def f3(x: float) -> str:
    return f"{x:.3f}"


def pm(x: float, se: float, digits: int = 3, se_digits: int | None = None) -> str:
    """``x ± se`` at the given decimals."""
    return f"{x:.{digits}f} ± {se:.{digits if se_digits is None else se_digits}f}"


def paired(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Mean and standard error of the paired difference a - b (aligned on the index)."""
    d = (a - b).dropna()
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


# --- The bias learner suite -------------------------------------------------------------------

@table("bias_suite", "bias_suite/summary.csv", "bias_suite/runs.csv")
def bias_suite() -> pd.DataFrame:
    """README, "The bias learner on a suite of settings": one row per setting, the report seeds."""
    summary = read_csv("bias_suite/summary.csv", index_col=0)
    runs = read_csv("bias_suite/runs.csv").pivot_table(index=["setting", "split"], columns="method",
                                                         values="oracle_share")
    rows = []
    for setting, r in summary.iterrows():
        better = "pooled" if r["pooled"] >= r["mean_shift"] else "mean_shift"
        split = runs.loc[setting]
        diff, se = paired(split["default"], split[better])
        rows.append({
            "setting": setting,
            "default": f"**{f3(r['default'])}** ± {f3(r['default_se'])}",
            "Pooled": f3(r["pooled"]), "MeanShift": f3(r["mean_shift"]), "Gold-only": f3(r["gold_only"]),
            "kNN": f3(r["knn"]), "All-Golden": f3(r["all_golden"]),
            "default minus the better of Pooled, MeanShift (paired)": f"{diff:+.3f} ± {se:.3f}",
            "best fixed": f"{f3(r[r['best_fixed']])} ({r['best_fixed']})",
            "regret": f"{r['regret']:+.3f}",
            "gap closed": "" if pd.isna(r["gap_closed"]) else f"{r['gap_closed']:.0%}",
            "judge weight": f"{r['mean_judge_weight']:.2f}",
        })
    return pd.DataFrame(rows)


# --- Real data, new queries -------------------------------------------------------------------

REAL_RUNS = {  # folder -> (data set, test set), from the commands in real_data/README.md
    "pandalm_row": ("PandaLM", "200 random rows"),
    "pandalm_query": ("PandaLM", "35 new instructions (~200 rows)"),
    "prd_row": ("PRD Vicuna80", "200 random rows"),
    "prd_query": ("PRD Vicuna80", "20 new questions (200 rows)"),
}


def _real_summary(folder: str) -> pd.DataFrame:
    return read_csv(f"real_data/{folder}/summary.csv", index_col="method")


@table("real_data_splits", *(f"real_data/{k}/summary.csv" for k in REAL_RUNS))
def real_data_splits() -> pd.DataFrame:
    """README, "Real data, new queries": rows held out against whole queries held out."""
    methods = {"meta_r": "default", "pooled": "Pooled", "mean_shift": "MeanShift", "knn": "kNN",
               "gold_only": "Gold-only", "all_golden": "All-Golden"}
    rows = []
    for folder, (data, test) in REAL_RUNS.items():
        s = _real_summary(folder)["oracle_share"]
        row = {"data set": data, "test set": test}
        row.update({label: f3(s[m]) for m, label in methods.items()})
        if folder.endswith("_query"):  # the design every later real-data figure uses
            row["default"] = f"**{row['default']}**"
        rows.append(row)
    return pd.DataFrame(rows)


@table("real_data_methods", "real_data/pandalm_query/summary.csv", "real_data/prd_query/summary.csv")
def real_data_methods() -> pd.DataFrame:
    """docs/results.md, "Routing quality": every method, whole queries held out."""
    methods = {"meta_r": "**Meta-router, R-learner (default)**", "meta_auto": "Meta-router, auto final stage",
               "meta_dr": "Meta-router, DR-learner", "pooled": "Pooled (RouteLLM-style)",
               "mean_shift": "Mean shift", "knn": "kNN router", "preference_only": "Preference-only",
               "gold_only": "Gold-only", "all_golden": "All-Golden (oracle)", "random": "Random"}
    sets = {"pandalm_query": "PandaLM (35 new instructions per run)",
            "prd_query": "PRD Vicuna80 (20 new questions per run)"}
    frame = pd.DataFrame({"method": list(methods.values())})
    for folder, label in sets.items():
        s = _real_summary(folder)
        cells = [pm(s.loc[m, "oracle_share"], s.loc[m, "oracle_share_se"]) for m in methods]
        cells[0] = "**{}** ± {}".format(*cells[0].split(" ± "))
        frame[label] = cells
    return frame


# --- The average bias's interval where queries repeat -----------------------------------------

COVERAGE_SETTINGS = {"pandalm": "PandaLM", "prd": "PRD Vicuna80", "generator": "generator, 60 x 30"}
DESIGNS = {"rows": "rows", "queries": "whole queries"}


def _coverage(c: float, draws: int) -> str:
    """Coverage to the precision its number of draws supports: 2 decimals at 100 draws, 3 above."""
    return f"{c:.{2 if draws <= 100 else 3}f}"


def _coverage_pairs():
    """(setting, design, clustered row, rows-as-units row) of query_coverage/summary.csv."""
    s = read_csv("query_coverage/summary.csv")
    for (setting, design), g in s.groupby(["setting", "design"], sort=False):
        g = g.set_index("interval")
        units = g.loc["rows"] if "rows" in g.index else g.loc["no_ids"]  # the generator: fit without ids
        yield setting, design, g.loc["clustered"], units


@table("query_coverage_short", "query_coverage/summary.csv")
def query_coverage_short() -> pd.DataFrame:
    """README, "The average bias's interval where queries repeat"."""
    rows = []
    for setting, design, clus, units in _coverage_pairs():
        draws = int(clus["draws"])
        noun = "seeds" if setting == "generator" else "draws"
        rows.append({"setting": f"{COVERAGE_SETTINGS[setting]} ({draws} {noun})", "gold rows drawn as": DESIGNS[design],
                     "interval clustered by query: coverage (width)":
                         f"{_coverage(clus['coverage'], draws)} ({clus['mean_width']:.2f})",
                     "rows as units: coverage (width)": f"{_coverage(units['coverage'], draws)} ({units['mean_width']:.2f})"})
    return pd.DataFrame(rows)


@table("query_coverage", "query_coverage/summary.csv")
def query_coverage() -> pd.DataFrame:
    """docs/results.md, "The average bias's interval by query": with standard errors and the estimate's sd."""
    rows = []
    for setting, design, clus, units in _coverage_pairs():
        draws = int(clus["draws"])
        noun = "seeds" if setting == "generator" else "draws"
        rows.append([COVERAGE_SETTINGS[setting], f"{DESIGNS[design]} ({draws} {noun})",
                     f"{_coverage(clus['coverage'], draws)} ± {clus['coverage_se']:.3f}", f3(clus["mean_width"]),
                     f"{_coverage(units['coverage'], draws)} ± {units['coverage_se']:.3f}", f3(units["mean_width"]),
                     f3(clus["sd_estimate"])])
    return pd.DataFrame(rows, columns=["setting", "gold rows drawn as", "clustered: coverage ± s.e.", "mean width",
                                       "rows as units: coverage ± s.e.", "mean width", "sd of the estimate"])


# --- Choosing gold rows -----------------------------------------------------------------------

@table("active_curves", "active/curves/summary.csv", "active/curves/efficiency.csv")
def active_curves() -> pd.DataFrame:
    """README, "Choosing gold rows": the acquisition curves at 100, 250 and 400 labels."""
    s = read_csv("active/curves/summary.csv").set_index(["setting", "strategy", "n_gold"])
    eff = read_csv("active/curves/efficiency.csv").set_index(["setting", "strategy"])

    def labels(n: float) -> str:
        return "not reached" if np.isinf(n) else f"{n:.0f}"

    rows = []
    for setting in ("generator", "pocket", "groups", "pandalm"):
        for strategy in ("random", "uncertainty", "decision", "diverse"):
            e = eff.loc[(setting, strategy)]
            at400 = s.loc[(setting, strategy, 400)]
            random = strategy == "random"
            rows.append({
                "setting (repeats)": f"{setting} ({int(e['repeats'])})", "strategy": strategy,
                "oracle share at 100": f3(s.loc[(setting, strategy, 100), "mean"]),
                "at 250": f3(s.loc[(setting, strategy, 250), "mean"]), "at 400": f3(at400["mean"]),
                "at 400 minus random (paired)": "" if random else f"{at400['diff']:+.3f} ± {at400['diff_se']:.3f}",
                "labels to reach random's share at 400 (95% interval)": "n/a" if random else
                f"{labels(e['n_needed'])} ({labels(e['n_needed_lower'])}-{labels(e['n_needed_upper'])})",
            })
    return pd.DataFrame(rows)


# --- K-model routing --------------------------------------------------------------------------

MULTI_SETS = {"generator": "K = 4 generator", "generator-3pairs": "generator, gold on 3 of 6 pairs",
              "pandalm": "PandaLM, 5 models"}


@table("multi_aiq", *(f"multi/{kind}_{d}.csv" for d in MULTI_SETS for kind in ("summary", "runs")))
def multi_aiq() -> pd.DataFrame:
    """README and docs/results.md, "K-model routing": AIQ per set; MultiRouter in bold where it is
    ahead of PooledMulti by more than two paired standard errors."""
    methods = {"multi_router": "MultiRouter", "pooled": "PooledMulti", "gold_only": "GoldOnlyMulti",
               "best_single": "BestSingle", "all_golden": "All-Golden"}
    rows = []
    for d, label in MULTI_SETS.items():
        s = read_csv(f"multi/summary_{d}.csv", index_col="method")["aiq"]
        runs = read_csv(f"multi/runs_{d}.csv").pivot(index="run", columns="method", values="aiq")
        diff, se = paired(runs["multi_router"], runs["pooled"])
        ahead = int((runs["multi_router"] > runs["pooled"]).sum())
        row = {"set": label, **{name: f3(s[m]) for m, name in methods.items()}}
        if diff > 2 * se:
            row["MultiRouter"] = f"**{row['MultiRouter']}**"
        row["MultiRouter minus PooledMulti (paired)"] = f"{diff:+.3f} ± {se:.3f} (ahead on {ahead} of {len(runs)})"
        rows.append(row)
    return pd.DataFrame(rows)


# --- IHDP -------------------------------------------------------------------------------------

#: Published within-sample figures on IHDP B (Shalit, Johansson and Sontag 2017, Table 1), not a
#: measurement of this package: BART, causal forest, TARNet, CFR-Wass.
IHDP_PUBLISHED = {"method": "BART / causal forest / TARNet / CFR-Wass (published)",
                  "B: sqrt PEHE within": "2.1 / 3.8 / 0.88 / 0.71", "B: ATE error": "0.23 / 0.18 / 0.26 / 0.25"}


@table("ihdp", "ihdp/summary.csv")
def ihdp() -> pd.DataFrame:
    """README and docs/results.md: IHDP surfaces A and B, 100 replications each."""
    s = read_csv("ihdp/summary.csv").set_index(["setting", "method"])
    methods = {"r": "`BiasEstimator()` (default)", "dr": '`BiasEstimator("dr")`',
               "econml_cf": "econml `CausalForestDML()` defaults", "econml_dr": "econml `DRLearner()` defaults"}

    def coverage(r) -> str:  # every run covered: the standard error is 0, the width says more
        if r["coverage_se"] == 0:
            return f"{r['coverage']:.2f} (width {r['ci_width']:.1f})"
        return pm(r["coverage"], r["coverage_se"], 2)

    rows = []
    for m, label in methods.items():
        a, b = s.loc[("ihdp_a", m)], s.loc[("ihdp_b", m)]
        rows.append({"method": label,
                     "A: sqrt PEHE": pm(a["pehe_within"], a["pehe_within_se"], 2),
                     "A: ATE error": pm(a["ate_abs_error"], a["ate_abs_error_se"]), "A: coverage": coverage(a),
                     "B: sqrt PEHE within": pm(b["pehe_within"], b["pehe_within_se"], 2),
                     "B: held-out": pm(b["pehe_heldout"], b["pehe_heldout_se"], 2),
                     "B: ATE error": pm(b["ate_abs_error"], b["ate_abs_error_se"]), "B: coverage": coverage(b)})
    rows.append(IHDP_PUBLISHED)
    return pd.DataFrame(rows).fillna("")


# --- The routing proxy ------------------------------------------------------------------------

SERVE_RUNS = ("serve/proxy_run1.json", "serve/proxy_run2.json", "serve/proxy_run3.json")


def _ms(x: float) -> str:
    """Milliseconds: one decimal below 100 ms, whole above."""
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


@table("serve_proxy", *SERVE_RUNS)
def serve_proxy() -> pd.DataFrame:
    """docs/results.md, "The routing proxy": the median of the three loaded runs, per column."""
    runs = pd.concat([pd.DataFrame(json.loads((RESULTS / p).read_text())["proxy"]).assign(run=p) for p in SERVE_RUNS])
    med = runs.groupby(["scenario", "clients"], sort=False).median(numeric_only=True)
    rows = []
    for (scenario, clients), r in med.iterrows():
        overhead = scenario == "overhead"
        rows.append({
            "clients": f"{clients}" if overhead else f"{clients}, stub answering at once (sustained)",
            "overhead p50": f"{_ms(r['overhead_p50_ms'])} ms" if overhead else "",
            "overhead p99": f"{_ms(r['overhead_p99_ms'])} ms" if overhead else "",
            "proxy p50 / p99": f"{_ms(r['p50_ms'])} / {_ms(r['p99_ms'])} ms",
            "stub p50 / p99": f"{_ms(r['stub_p50_ms'])} / {_ms(r['stub_p99_ms'])} ms" if overhead else "",
            "requests/s": f"{r['requests_per_s']:.1f}",
            "proxy CPU per request": f"{r['server_cpu_ms_per_request']:.2f} ms",
        })
    return pd.DataFrame(rows)


# --- The average bias against the truth -------------------------------------------------------

AVERAGE_BIAS_RUNS = {  # summary file -> settings taken from it, with their labels
    "average_bias/summary_seeds0-199_random_heterogeneous_selected.json": {
        "random": "random gold rows, constant bias", "heterogeneous": "random gold rows, heterogeneous bias",
        "selected": "gold rows selected by a known design (feature-selected)"},
    "average_bias/summary_seeds0-199_random_paired_active.json": {
        "active": "half the gold rows by active labelling (uncertainty)",
        "paired": "paired rows (judge labels the gold rows)"},
    "average_bias/summary_seeds0-199_random_paired_offset.json": {
        "offset": "judge's gains offset by +2"},
}


@table("average_bias_generator", *AVERAGE_BIAS_RUNS)
def average_bias_generator() -> pd.DataFrame:
    """docs/results.md: coverage against the truth on the gold scale, 200 seeds per setting."""
    rows = []
    for path, settings in AVERAGE_BIAS_RUNS.items():
        summary = json.loads((RESULTS / path).read_text())["summary"]
        for key, label in settings.items():
            r = summary[key]
            rows.append({"setting": label, "coverage": f3(r["coverage_scale_aware"]),
                         "c taken as known": f3(r["coverage_scale_known"]),
                         "same, vs psi - eta / c_hat": f3(r["coverage_scale_known_moving_target"]),
                         "mean width (aware / known)": f"{r['width_scale_aware']:.3f} / {r['width_scale_known']:.3f}"})
    return pd.DataFrame(rows)


AVERAGE_BIAS_REAL = "average_bias/runs_real_pandalm_prd_draws0-199.csv"


@table("average_bias_real", AVERAGE_BIAS_REAL)
def average_bias_real() -> pd.DataFrame:
    """docs/results.md and README: the real sets, 200 resamples of whole queries, 100 gold rows;
    coverage / mean width of the 95% intervals of the average bias, of each model's gold win
    rate (2 w - 1) and of each pair's gold gain, pooled over the 5 models and 10 pairs."""
    runs = read_csv(AVERAGE_BIAS_REAL)
    stats = runs.groupby(["setting", "target_kind", "method"]).agg(
        coverage=("covered", "mean"), width=("width", "mean"), failed=("estimate", lambda e: int(e.isna().sum())))
    methods = {"average_bias": "AverageBias", "average_bias_paired": "AverageBias, paired rows",
               "ppi++": "PPI++ (`ppi_python`)", "cje": "CJE (`cje-eval`)", "gold_rows_alone": "gold rows alone"}
    targets = {"average_bias": "average bias", "win_rate": "each model's win rate",
               "pair_gain": "each pair's gain"}
    rows = []
    for setting, label in (("pandalm", "PandaLM"), ("prd", "PRD Vicuna80")):
        for kind, target in targets.items():
            row = {"set": label, "target (coverage / width)": target}
            for m, name in methods.items():
                if (setting, kind, m) not in stats.index:
                    row[name] = ""
                    continue
                r = stats.loc[(setting, kind, m)]
                failed = f" ({int(r['failed'])} refused)" if r["failed"] else ""
                row[name] = f"{r['coverage']:.3f} / {r['width']:.3f}{failed}"
            rows.append(row)
    return pd.DataFrame(rows)


# --- Rewriting and checking the pages ---------------------------------------------------------

def render(name: str) -> str:
    """The body of table ``name``'s marked block: a blank line, the table, a blank line."""
    return "\n" + markdown(TABLES[name].build()) + "\n\n"


def update(text: str, page: str, rendered: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every marked block rewritten, and the names of the blocks that changed."""
    opened = OPEN.findall(text)
    blocks = list(BLOCK.finditer(text))
    if len(opened) != len(blocks):
        raise SystemExit(f"{page}: {len(opened)} table markers opened, {len(blocks)} closed by <!-- /table -->")
    changed = []
    for match in blocks:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"{page}: unknown table {name!r} (known: {', '.join(TABLES)})")
        if name not in rendered:
            rendered[name] = render(name)
        if match["body"] != rendered[name]:
            changed.append(name)

    def body(match):
        return f"<!-- table: {match['name']} -->\n{rendered[match['name']]}<!-- /table -->"

    return BLOCK.sub(body, text), changed


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    """Rewrite (or, with ``--check``, compare) every marked table of :data:`PAGES` under ``root``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming each table that differs from its result files")
    args = parser.parse_args(argv)
    rendered: dict[str, str] = {}
    differ = []
    for page in PAGES:
        path = root / page
        text = path.read_text(encoding="utf-8")
        new, changed = update(text, page, rendered)
        for name in changed:
            sources = ", ".join(f"benchmarks/results/{s}" for s in TABLES[name].sources)
            differ.append(f"{page}: table {name!r} differs from {sources}")
        if changed and not args.check:
            with atomic_write(path) as tmp:  # the package's atomic write: a reader never sees a part
                tmp.write_text(new, encoding="utf-8", newline="")
    unused = sorted(set(TABLES) - set(rendered))
    if unused:
        print(f"tables in no page: {', '.join(unused)}", file=sys.stderr)
    if args.check:
        for line in differ:
            print(line)
        if differ:
            print("run: python benchmarks/tables.py", file=sys.stderr)
        return 1 if differ or unused else 0
    for line in differ:
        print(line.replace("differs from", "rewritten from"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
