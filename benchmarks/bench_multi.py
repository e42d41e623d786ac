"""K-model routing benchmark: MultiRouter against PooledMulti, GoldOnlyMulti, BestSingle and the
All-Golden oracle on the K = 4 generator and on PandaLM's five models. Prints the table; asserts
nothing.

    python benchmarks/bench_multi.py --runs 20 --n-jobs 2 --out bench_multi/
    python benchmarks/bench_multi.py --dataset generator --runs 5
    python benchmarks/bench_multi.py --replot bench_multi/     # figure and table again, from the saved runs

Each run splits by query (:func:`causal_router.datasets.reveal_multi_split`) and scores the model
each router chooses for each held-out query at every cost weight w against the test quality:
the true utilities (generator) or the quality implied by the held-out human verdicts (PandaLM,
test queries whose human comparisons connect all five models). Columns: AIQ (RouterBench's area
under the non-decreasing concave quality-cost frontier, divided by the cost range) with its
standard error over runs; the quality and cost of the chosen models at w = 0; the share of the
Pooled-to-All-Golden AIQ gap closed. ``oracle`` routes by the test quality itself.

``--design`` adds the measurements behind the design choices, on the same splits: the bias
model chosen by out-of-fold R-loss and used in full, without the evidence rule of issue 24
(``bias: no evidence rule``); its final stage fixed to per-model linear (with the order effect), per-model constant (with
the order effect) or per *pair* linear (one function per unordered pair, defined below: the
alternative to per-model), and the utility model fixed to ridge or to boosting for PooledMulti
and All-Golden (the default selects between them by cross-validation).

Settings. Generator: 3,000 queries x 20 features, 2 random pairs per query, 100 gold queries
(200 gold rows), 500 test queries, costs 0.1 / 0.25 / 0.5 / 1.0; ``generator-3pairs``: the same
with gold labels on three of the six pairs only (small-medium, medium-large, large-xlarge). PandaLM: 20 TF-IDF + SVD
features of the query text, 20 gold queries (about 115 gold rows), 40 test queries, the notional
cost ladder ``PANDALM_COSTS`` (PandaLM from ``$CAUSAL_ROUTER_DATA/pandalm``, else the copy
bundled with the package: the same 974 rows).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

SETTINGS = {
    "generator": dict(n_gold_queries=100, n_test_queries=500),
    "pandalm": dict(n_gold_queries=20, n_test_queries=40),
    # gold labels on three of the six pairs only (a chain); the gold queries' other rows reveal
    # their preference label: gold and preference rows cover different pairs
    "generator-3pairs": dict(n_gold_queries=100, n_test_queries=500,
                             gold_pairs=[("small", "medium"), ("medium", "large"), ("large", "xlarge")]),
}


def load(name: str):
    from causal_router.datasets import load_pandalm_multi, make_multi_model

    if name.startswith("generator"):
        return make_multi_model(3000, 20, random_state=0)
    return load_pandalm_multi(n_components=20)  # $CAUSAL_ROUTER_DATA/pandalm, else the bundled copy


def design_methods() -> dict:
    """The design variants (see the module docstring), as {name: factory(seed)}."""
    import numpy as np

    from causal_router import BiasEstimator, MultiRouter
    from causal_router.multi import GoldOnlyMulti, PooledMulti
    from causal_router.pairwise import PairwiseBoosting, PairwiseRidge

    class PerPairRouter(MultiRouter):
        """MultiRouter whose bias is one linear function per unordered pair p (and the order
        effect): Delta(s, a, b) = +-(g_p + s' th_p) + c0 * listed_first (+ where a < b), with the
        same R-learner and nuisances; the utilities as MultiRouter's."""

        def _fit(self, data):
            from causal_router.data import pooled_outcome

            rows = self.bias_data_per_pair(data)
            n_pairs = rows.X.shape[1] - data.X.shape[1] - 1
            bias = BiasEstimator("r", model_final=PairwiseRidge(n_pairs, order_effect=True), scale=self.scale,
                                 random_state=self.random_state)
            self.bias_ = bias.fit(rows)
            self.scale_ = self.bias_.scale_
            Z, gain, _ = self._design(data)
            labels = pooled_outcome(gain, data.is_gold, self.scale_)
            pref = ~data.is_gold
            labels[pref] += self.bias_.effect(rows.X[pref]) * self.scale_
            self.utility_model_ = self._utility_model(self.outcome_model).fit(Z, labels)

        def bias_data_per_pair(self, data):
            from causal_router.data import EvalData

            _, gain, first = self._design(data)
            pair = np.array([f"{min(a, b)}|{max(a, b)}" for a, b in zip(data.model_a, data.model_b)], dtype=object)
            names = sorted(set(pair))
            P = np.zeros((len(pair), len(names)))
            P[np.arange(len(pair)), [names.index(p) for p in pair]] = 1.0  # rows are in sorted order: sign +
            return EvalData(np.hstack([data.X, first[:, None], P]), gain, data.is_gold, pair=pair)

    def fixed(terms):
        return BiasEstimator("r", model_final=PairwiseRidge(terms=terms, order_effect=True))

    def no_rule(seed):  # the bias model chosen by out-of-fold R-loss and used in full (before issue 24)
        from causal_router.pairwise import BIAS_CANDIDATES, PairwiseSelect

        return MultiRouter(BiasEstimator("r", model_final=PairwiseSelect(candidates=BIAS_CANDIDATES, order_effect=True,
                                                                          random_state=seed)), random_state=seed)

    return {
        "bias: no evidence rule": no_rule,
        "bias: per-model linear": lambda seed: MultiRouter(fixed("linear"), random_state=seed),
        "bias: per-model constant": lambda seed: MultiRouter(fixed("constant"), random_state=seed),
        "bias: per-pair linear": lambda seed: PerPairRouter(random_state=seed),
        "pooled, ridge utilities": lambda seed: PooledMulti(PairwiseRidge(), random_state=seed),
        "pooled, boosted utilities": lambda seed: PooledMulti(PairwiseBoosting(random_state=seed), random_state=seed),
        "all_golden, ridge utilities": lambda seed: GoldOnlyMulti(PairwiseRidge(), random_state=seed),
        "all_golden, boosted utilities": lambda seed: GoldOnlyMulti(PairwiseBoosting(random_state=seed),
                                                                    random_state=seed),
    }


def table(summary: pd.DataFrame) -> pd.DataFrame:
    cols = {"aiq": "AIQ", "aiq_se": "s.e.", "quality_w0": "quality at w=0", "quality_w0_se": "s.e. (w=0)",
            "cost_w0": "cost at w=0", "gap_closed": "gap closed"}
    return summary[[c for c in cols if c in summary]].rename(columns=cols)


FIGURE_METHODS = ("multi_router", "pooled", "gold_only", "best_single", "all_golden")
QUALITY_LABELS = {"generator": "Mean true utility of the chosen model (gold scale)",
                  "generator-3pairs": "Mean true utility of the chosen model (gold scale)",
                  "pandalm": "Mean held-out human quality of the chosen model"}
TITLES = {"generator": "K = 4 generator", "generator-3pairs": "K = 4 generator, gold on 3 of 6 pairs",
          "pandalm": "PandaLM, 5 models"}


def figure(folder: Path) -> Path:
    """The README figure, ``folder/frontiers.png``: one panel per data set found in ``folder``
    (frontiers_<name>.csv and summary_<name>.csv), the main methods only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from causal_router.report.plotting import plot_multi_frontiers

    names = [n for n in ("generator", "generator-3pairs", "pandalm") if (folder / f"frontiers_{n}.csv").exists()]
    if not names:
        raise SystemExit(f"no frontiers_<dataset>.csv in {folder}")
    fig, axes = plt.subplots(1, len(names), figsize=(6.0 * len(names), 5.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        frontiers = pd.read_csv(folder / f"frontiers_{name}.csv")
        summary = pd.read_csv(folder / f"summary_{name}.csv", index_col=0)
        shown = FIGURE_METHODS + (("oracle",) if name.startswith("generator") else ())
        plot_multi_frontiers(frontiers, summary, methods=shown, quality_label=QUALITY_LABELS[name], ax=ax,
                             title=f"{TITLES[name]}: {frontiers['run'].nunique()} runs, bands +-1 s.e.")
    fig.tight_layout()
    path = folder / "frontiers.png"
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path


def markdown(folder: Path) -> Path:
    """``folder/summary.md``: per data set found in ``folder``, AIQ (+- s.e. over runs), the
    paired AIQ difference from PooledMulti, the runs ahead of it and the gap closed."""
    lines = ["# K-model routing: frontier area (AIQ) over random splits", "",
             "Written by `benchmarks/bench_multi.py` from the runs in this folder. AIQ: mean height of the "
             "non-decreasing concave quality-cost frontier over the cost range (RouterBench); "
             "quality is the true utility (generator) or the held-out human quality (PandaLM). "
             "Paired: AIQ minus PooledMulti's on the same split, mean +- s.e. over runs. Gap closed: "
             "(AIQ - Pooled) / (All-Golden - Pooled), shown only where All-Golden beats Pooled.", ""]
    for name in ("generator", "generator-3pairs", "pandalm"):
        if not (folder / f"runs_{name}.csv").exists():
            continue
        runs = pd.read_csv(folder / f"runs_{name}.csv")
        summary = pd.read_csv(folder / f"summary_{name}.csv", index_col=0)
        paired = runs.pivot(index="run", columns="method", values="aiq")
        diff = paired.sub(paired["pooled"], axis=0)
        gap = summary.loc["all_golden", "aiq"] > summary.loc["pooled", "aiq"]
        lines += [f"## {TITLES[name]} ({len(paired)} runs)", "",
                  "| method | AIQ | s.e. | minus Pooled (paired) | runs ahead of Pooled | gap closed |",
                  "|---|---|---|---|---|---|"]
        for method in summary.index:
            d = diff[method]
            ahead = "" if method == "pooled" else f"{int((d > 0).sum())} of {len(d)}"
            closed = f"{summary.loc[method, 'gap_closed']:.2f}" if gap and method != "oracle" else ""
            lines.append(f"| {MULTI_NAMES.get(method, method)} | {summary.loc[method, 'aiq']:.4f} | "
                         f"{summary.loc[method, 'aiq_se']:.4f} | {d.mean():+.4f} +- {d.std(ddof=1) / len(d) ** 0.5:.4f} "
                         f"| {ahead} | {closed} |")
        chosen = runs.loc[runs["method"] == "multi_router", "bias_model"].value_counts()
        lines += ["", "MultiRouter's bias final stage (out-of-fold R-loss): "
                  + ", ".join(f"{k} on {v} runs" for k, v in chosen.items()) + ".", ""]
    path = folder / "summary.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


MULTI_NAMES = {"multi_router": "MultiRouter", "pooled": "PooledMulti", "gold_only": "GoldOnlyMulti",
               "best_single": "BestSingle", "all_golden": "All-Golden (oracle)",
               "oracle": "per-query best (test quality)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=(*SETTINGS, "both"), default="both",
                        help="both: generator and pandalm")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for runs / summary CSVs and the frontier figures")
    parser.add_argument("--design", action="store_true", help="add the design variants (module docstring)")
    parser.add_argument("--methods", nargs="+", help="only these methods (names of MULTI_METHODS and --design's), "
                                                      "with pooled and all_golden")
    parser.add_argument("--replot", metavar="FOLDER", help="only redraw the figure and table from a folder of saved runs")
    args = parser.parse_args()
    if args.replot:
        print(f"figure written to {figure(Path(args.replot))}; table to {markdown(Path(args.replot))}")
        return

    from causal_router.multi_experiment import MULTI_METHODS, run_multi_experiment

    methods = dict(MULTI_METHODS)
    if args.design or args.methods:
        methods.update(design_methods())
    if args.methods:
        unknown = sorted(set(args.methods) - set(methods))
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; choose from {sorted(methods)}")
        # Pooled and the All-Golden oracle are always run: the table is read against them
        methods = {k: v for k, v in methods.items() if k in (*args.methods, "pooled", "all_golden")}

    names = ("generator", "pandalm") if args.dataset == "both" else (args.dataset,)
    for name in names:
        frame = load(name)
        start = time.perf_counter()
        result = run_multi_experiment(frame, costs=frame.attrs["costs"], methods=methods, n_runs=args.runs,
                                      n_jobs=args.n_jobs, random_state=args.seed, **SETTINGS[name])
        secs = time.perf_counter() - start
        s = result.summary
        print(f"\n{name}: {args.runs} runs, {secs:.0f} s with n_jobs={args.n_jobs}")
        with pd.option_context("display.width", 160, "display.precision", 3):
            print(table(s).to_string())
        beats = (s["aiq"] - s.loc["pooled", "aiq"])
        if s.loc["all_golden", "aiq"] > s.loc["pooled", "aiq"]:
            print(f"All-Golden beats Pooled by {s.loc['all_golden', 'aiq'] - s.loc['pooled', 'aiq']:.4f} AIQ; "
                  f"MultiRouter closes {s.loc['multi_router', 'gap_closed']:.0%} of the gap "
                  f"(MultiRouter - Pooled = {beats['multi_router']:+.4f}, "
                  f"{beats['multi_router'] / (s.loc['multi_router', 'aiq_se'] ** 2 + s.loc['pooled', 'aiq_se'] ** 2) ** 0.5:+.1f} s.e.)")
        else:
            print(f"All-Golden does not beat Pooled (no gap); MultiRouter - Pooled = {beats['multi_router']:+.4f}")
        paired = result.runs.pivot(index="run", columns="method", values="aiq")
        diff = paired.sub(paired["pooled"], axis=0)
        print("paired over runs, AIQ minus Pooled's (mean +- s.e.; runs ahead):")
        for method in s.index.drop(["pooled", "oracle"]):
            d = diff[method]
            print(f"  {method:32s} {d.mean():+.4f} +- {d.std(ddof=1) / len(d) ** 0.5:.4f}  ({int((d > 0).sum())} of {len(d)})")
        chosen = result.runs.loc[result.runs["method"] == "multi_router", "bias_model"].value_counts()
        print("MultiRouter's bias model, chosen by out-of-fold R-loss: "
              + ", ".join(f"{k} on {v} runs" for k, v in chosen.items()))
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            result.runs.to_csv(out / f"runs_{name}.csv", index=False)
            result.frontiers.to_csv(out / f"frontiers_{name}.csv", index=False)
            s.to_csv(out / f"summary_{name}.csv")
    if args.out:
        print(f"figure written to {figure(Path(args.out))}; table to {markdown(Path(args.out))}")


if __name__ == "__main__":
    main()
