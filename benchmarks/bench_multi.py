"""K-model routing benchmark: MultiRouter against PooledMulti, GoldOnlyMulti, BestSingle and the
All-Golden oracle on the K = 4 generator and on PandaLM's five models. Prints the table; asserts
nothing.

    python benchmarks/bench_multi.py --runs 20 --n-jobs 2 --out bench_multi/
    python benchmarks/bench_multi.py --dataset generator --runs 5

Each run splits by query (:func:`causal_router.datasets.reveal_multi_split`) and scores the model
each router chooses for each held-out query at every cost weight w against the test quality:
the true utilities (generator) or the quality implied by the held-out human verdicts (PandaLM,
test queries whose human comparisons connect all five models). Columns: AIQ (RouterBench's area
under the non-decreasing concave quality-cost frontier, divided by the cost range) with its
standard error over runs; the quality and cost of the chosen models at w = 0; the share of the
Pooled-to-All-Golden AIQ gap closed. ``oracle`` routes by the test quality itself.

Settings. Generator: 3,000 queries x 20 features, 2 random pairs per query, 100 gold queries
(200 gold rows), 500 test queries, costs 0.1 / 0.25 / 0.5 / 1.0. PandaLM: 20 TF-IDF + SVD
features of the query text, 20 gold queries (about 115 gold rows), 40 test queries, the notional
cost ladder ``PANDALM_COSTS``. The PandaLM part needs ``CAUSAL_ROUTER_DATA``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

warnings.filterwarnings("ignore")

SETTINGS = {
    "generator": dict(n_gold_queries=100, n_test_queries=500),
    "pandalm": dict(n_gold_queries=20, n_test_queries=40),
}


def load(name: str):
    from causal_router.datasets import default_data_dir, load_pandalm_multi, make_multi_model

    if name == "generator":
        return make_multi_model(3000, 20, random_state=0)
    data_dir = default_data_dir()
    if data_dir is None or not (data_dir / "pandalm").is_dir():
        raise SystemExit("PandaLM not found: set CAUSAL_ROUTER_DATA to a folder holding pandalm/")
    return load_pandalm_multi(data_dir / "pandalm", n_components=20)


def table(summary: pd.DataFrame) -> pd.DataFrame:
    cols = {"aiq": "AIQ", "aiq_se": "s.e.", "quality_w0": "quality at w=0", "quality_w0_se": "s.e. (w=0)",
            "cost_w0": "cost at w=0", "gap_closed": "gap closed"}
    return summary[[c for c in cols if c in summary]].rename(columns=cols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("generator", "pandalm", "both"), default="both")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for runs / summary CSVs and the frontier figures")
    args = parser.parse_args()

    from causal_router.multi_experiment import run_multi_experiment

    names = ("generator", "pandalm") if args.dataset == "both" else (args.dataset,)
    for name in names:
        frame = load(name)
        start = time.perf_counter()
        result = run_multi_experiment(frame, costs=frame.attrs["costs"], n_runs=args.runs, n_jobs=args.n_jobs,
                                      random_state=args.seed, **SETTINGS[name])
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
        diff = paired["multi_router"] - paired["pooled"]
        print(f"paired over runs: MultiRouter - Pooled = {diff.mean():+.4f} +- {diff.std(ddof=1) / len(diff) ** 0.5:.4f} "
              f"(s.e.), MultiRouter ahead on {int((diff > 0).sum())} of {len(diff)} runs")
        if args.out:
            import matplotlib

            matplotlib.use("Agg")
            from causal_router.plotting import plot_multi_frontiers

            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            result.runs.to_csv(out / f"runs_{name}.csv", index=False)
            s.to_csv(out / f"summary_{name}.csv")
            fig = plot_multi_frontiers(result.frontiers, s, title=f"K-model routing, {name}: quality-versus-cost "
                                       f"frontiers\n(mean of {args.runs} runs; bands: +-1 s.e.)")
            fig.savefig(out / f"frontiers_{name}.png", dpi=150, bbox_inches="tight")


if __name__ == "__main__":
    main()
