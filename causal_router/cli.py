"""The ``causal-router`` command line.

    causal-router demo                       the main job, on built-in data
    causal-router fit DATA --features ...    fit a router on a user's file, save it
    causal-router route DATA --router FILE   route the queries of a file
    causal-router evaluate DATA --router FILE --gold-gain COL
    causal-router experiment                 the paper's Monte Carlo experiment
    causal-router diagnose                   CATE diagnostics of the bias

Bad arguments or bad data print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------- helpers
def _read(path: str) -> pd.DataFrame:
    from .io import read_table

    return read_table(path)


def _features(frame: pd.DataFrame, args) -> list[str]:
    if args.features:
        return [c.strip() for c in args.features.split(",") if c.strip()]
    cols = [c for c in frame.columns if str(c).startswith(args.feature_prefix)]
    if not cols:
        raise UsageError(f"no column starts with --feature-prefix {args.feature_prefix!r}; pass --features a,b,c")
    return cols


def _write_table(frame: pd.DataFrame, path: str) -> None:
    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif path.suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)


def _metrics_table(fitted: dict, gold) -> pd.DataFrame:
    from . import evaluate

    rows = {}
    for name, (router, pred) in fitted.items():
        row = evaluate.summarise(pred, gold)
        bias = getattr(router, "bias_", None)
        if bias is not None:
            ate = bias.ate()
            row.update(bias_ate=ate["estimate"], bias_lower=ate["lower"], bias_upper=ate["upper"],
                       final_stage=bias.final_stage_)
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------------------- commands
def cmd_demo(args) -> int:
    from .datasets import make_semi_synthetic, reveal_split
    from .experiment import fit_methods
    from .plotting import plot_split_curves

    frame = make_semi_synthetic(args.n, args.d, random_state=args.seed)
    split = reveal_split(frame, n_gold=args.n_gold, n_test=args.n_test, random_state=args.seed)
    methods = ("meta_r", "meta_auto", "meta_dr", "pooled", "gold_only", "preference_only",
               "mean_shift", "all_golden", "random")
    print(f"causal-router demo: {args.n} queries x {args.d} features; {split.train.n_gold} gold and "
          f"{split.train.n_preference} preference training rows; {len(split.test_gold)} test queries")
    fitted = fit_methods(split, methods, random_state=args.seed)
    table = _metrics_table(fitted, split.test_gold)
    cols = ["oracle_share", "peak_efficiency_gain", "efficiency_auc", "apgr", "cpt50", "cpt80",
            "bias_ate", "bias_lower", "bias_upper"]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table[[c for c in cols if c in table]].round(3).to_string(na_rep=""))
    true_ate = float(frame["bias"].iloc[split.train_index].mean())
    print(f"true average bias on the training queries: {true_ate:.3f} (gold scale)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preds = {k: v[1] for k, v in fitted.items()}
    for metric in ("efficiency_gain", "oracle_share"):
        fig = plot_split_curves(preds, split.test_gold, metric)
        fig.savefig(out / f"{metric}.png", dpi=150, bbox_inches="tight")
    metrics = json.loads(table.to_json(orient="index"))
    (out / "metrics.json").write_text(json.dumps(
        {"config": vars(args) | {"func": None}, "true_average_bias": true_ate, "methods": metrics}, indent=2,
        default=str))
    print(f"report written to {out}/ (efficiency_gain.png, oracle_share.png, metrics.json)")
    return 0


def _eval_data(frame: pd.DataFrame, args):
    from .data import EvalData

    return EvalData.from_frame(
        frame, _features(frame, args), gain=args.gain, source=args.source,
        gold_value=args.gold_value, preference_value=args.preference_value,
        query_id=args.query_id, scale=None if args.scale == "none" else args.scale,
    )


def cmd_fit(args) -> int:
    from .bias import BiasEstimator
    from .router import MetaRouter

    data = _eval_data(_read(args.data), args)
    router = MetaRouter(BiasEstimator(args.learner, cv=args.cv), preference_weight=args.preference_weight,
                        random_state=args.seed).fit(data)
    router.save(args.out)
    ate = router.bias_.ate()
    print(f"fitted on {data.n_gold} gold and {data.n_preference} preference rows "
          f"(scale constant {data.scale_:.4g}); bias final stage: {router.bias_.final_stage_}")
    print(f"average bias (gold minus preference, gold scale): {ate['estimate']:.4f} "
          f"[{ate['lower']:.4f}, {ate['upper']:.4f}]")
    print(f"router saved to {args.out}")
    return 0


def _load_router(path: str):
    from .router import BaseRouter

    return BaseRouter.load(path)


def _router_X(frame: pd.DataFrame, router, args) -> np.ndarray:
    names = ([c.strip() for c in args.features.split(",")] if args.features
             else list(getattr(router, "feature_names_in_", [])))
    if not names:
        raise UsageError("pass --features: the router file does not name its features")
    from ._validation import as_float_matrix, check_columns

    check_columns(frame, names, f"data file {args.data}")
    return as_float_matrix(frame[names], "features", names)


def cmd_route(args) -> int:
    router = _load_router(args.router)
    frame = _read(args.data)
    X = _router_X(frame, router, args)
    weight = args.cost_weight
    if args.primary_share is not None:
        weight = router.threshold_for_share(X, args.primary_share)
    out = pd.DataFrame({"predicted_gain": router.predict_gain(X), "route_primary": router.route(X, weight)})
    if args.id_column:
        out.insert(0, args.id_column, frame[args.id_column].to_numpy())
    _write_table(out, args.out)
    print(f"routed {len(out)} queries: {int(out['route_primary'].sum())} to the primary model "
          f"(cost weight {weight:.4g}); written to {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from . import evaluate
    from ._validation import check_columns

    router = _load_router(args.router)
    frame = _read(args.data)
    check_columns(frame, [args.gold_gain], f"data file {args.data}")
    X = _router_X(frame, router, args)
    gold = frame[args.gold_gain].to_numpy(dtype=float)
    pred = router.predict_gain(X)
    result = evaluate.summarise(pred, gold)
    result["routing_value"] = evaluate.routing_value(router.route(X, args.cost_weight), gold,
                                                     cost_weight=args.cost_weight, random_state=0)
    print(json.dumps(result, indent=2, default=float))
    return 0


def cmd_experiment(args) -> int:
    from .experiment import DEFAULT_METHODS, run_experiment

    frame, features, pair = _experiment_data(args)
    methods = args.methods.split(",") if args.methods else DEFAULT_METHODS
    if args.backend == "ray":
        import ray

        ray.init(address=args.ray_address, ignore_reinit_error=True)
    result = run_experiment(frame, features, methods=methods, n_runs=args.runs, n_gold=args.n_gold,
                            n_test=args.n_test, pair=pair, n_jobs=args.n_jobs, backend=args.backend,
                            random_state=args.seed)
    out = result.save(args.out)
    cols = ["n_runs", "oracle_share", "oracle_share_se", "peak_efficiency_gain", "efficiency_auc", "apgr",
            "gap_closed_oracle_share", "gap_closed_peak_efficiency_gain"]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(result.summary[[c for c in cols if c in result.summary]].round(3).to_string())
    print(f"results written to {out}/")
    return 0


def _experiment_data(args):
    """(frame with gold_gain / pref_gain, feature columns, pair column) for a named data set."""
    if args.dataset == "synthetic":
        from .datasets import feature_columns, make_semi_synthetic

        return make_semi_synthetic(args.n, args.d, random_state=args.seed), feature_columns(args.d), None
    from .datasets import default_data_dir, load_pandalm, load_prd_vicuna80
    from .text import TextFeaturizer, featurize_queries

    root = Path(args.data_dir) if args.data_dir else default_data_dir()
    if root is None:
        raise UsageError("real data not found: pass --data-dir or set CAUSAL_ROUTER_DATA")
    if args.dataset == "pandalm":
        frame = load_pandalm(root / "pandalm")
    else:
        frame = load_prd_vicuna80(root / "prd_vicuna80")
    X, names, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=args.text_components))
    features = pd.DataFrame(X, columns=names, index=frame.index)
    return pd.concat([frame, features], axis=1), names, "pair"


def cmd_diagnose(args) -> int:
    from .diagnostics import run_cli

    return run_cli(args)


def cmd_refute(args) -> int:
    from .refute import run_cli

    return run_cli(args)


def _add_input_options(p: argparse.ArgumentParser) -> None:
    """Options of diagnose and refute: built-in data by default, or a user's file."""
    p.add_argument("data", nargs="?", help="CSV, Parquet or JSONL file (default: built-in generator)")
    p.add_argument("--features", help="comma-separated feature columns")
    p.add_argument("--feature-prefix", default="x", help="use every column starting with this (default: x)")
    p.add_argument("--gain", default="gain")
    p.add_argument("--source", default="source")
    p.add_argument("--gold-value", default="gold")
    p.add_argument("--preference-value", default="preference")
    p.add_argument("--query-id", help="column of query ids (optional)")
    p.add_argument("--scale", default="variance", choices=["variance", "amplitude", "wasserstein", "none"])
    p.add_argument("--learner", default="r", choices=["r", "auto", "dr", "forest", "linear"])
    p.add_argument("--n", type=int, default=5000, help="built-in data: queries")
    p.add_argument("--n-gold", type=int, default=250, help="built-in data: gold rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=1)


def load_input(args):
    """EvalData from ``args.data`` or, without a file, the built-in generator (reveal split)."""
    if args.data:
        return _eval_data(_read(args.data), args)
    from .datasets import make_semi_synthetic, reveal_split

    frame = make_semi_synthetic(args.n, 50, random_state=args.seed)
    return reveal_split(frame, n_gold=args.n_gold, n_test=1, random_state=args.seed).train


# ---------------------------------------------------------------------------- parser
def _add_data_columns(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV, Parquet or JSONL file")
    p.add_argument("--features", help="comma-separated feature columns")
    p.add_argument("--feature-prefix", default="x", help="use every column starting with this (default: x)")
    p.add_argument("--gain", default="gain", help="column of observed gains (default: gain)")
    p.add_argument("--source", default="source", help="column of evaluation sources (default: source)")
    p.add_argument("--gold-value", default="gold", help="source value of gold rows (default: gold)")
    p.add_argument("--preference-value", default="preference", help="source value of preference rows")
    p.add_argument("--query-id", help="column of query ids (optional)")
    p.add_argument("--scale", default="variance", choices=["variance", "amplitude", "wasserstein", "none"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="causal-router", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and dropped rows")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="fit the meta-router and baselines on built-in data, write a report")
    p.add_argument("--out", default="causal_router_report", help="report folder")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--n-gold", type=int, default=100)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", help="fit a meta-router on a file and save it")
    _add_data_columns(p)
    p.add_argument("--learner", default="r", choices=["r", "auto", "dr", "forest", "linear"])
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--preference-weight", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="router.joblib")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("route", help="route the queries of a file with a saved router")
    p.add_argument("data")
    p.add_argument("--router", required=True)
    p.add_argument("--features", help="comma-separated feature columns (default: the router's)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--cost-weight", type=float, default=0.0, help="route where gain > weight")
    budget.add_argument("--primary-share", type=float, help="send this share of queries to the primary")
    p.add_argument("--id-column", help="column copied to the output")
    p.add_argument("--out", default="routes.csv")
    p.set_defaults(func=cmd_route)

    p = sub.add_parser("evaluate", help="score a saved router on rows with gold gains")
    p.add_argument("data")
    p.add_argument("--router", required=True)
    p.add_argument("--gold-gain", required=True, help="column of held-out gold gains")
    p.add_argument("--features", help="comma-separated feature columns (default: the router's)")
    p.add_argument("--cost-weight", type=float, default=0.0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("experiment", help="the paper's Monte Carlo experiment")
    p.add_argument("--dataset", default="synthetic", choices=["synthetic", "pandalm", "prd"])
    p.add_argument("--data-dir", help="folder holding pandalm/ and prd_vicuna80/")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--n-gold", type=int, default=100)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--n", type=int, default=5000, help="synthetic queries")
    p.add_argument("--d", type=int, default=50, help="synthetic features")
    p.add_argument("--text-components", type=int, default=50)
    p.add_argument("--methods", help="comma-separated method names")
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--backend", default="loky", choices=["loky", "ray"])
    p.add_argument("--ray-address", default=None, help="ray.init address (default: local)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="experiment_results")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("diagnose", help="CATE diagnostics of the bias: overlap, calibration, heterogeneity")
    _add_input_options(p)
    p.add_argument("--group-by", help="column to average the bias by (category, model pair)")
    p.add_argument("--refute", action="store_true",
                   help="also run the default refutation suite and add its section to the report")
    p.add_argument("--out", default="diagnostics_report")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("refute", help="dowhy refutations and sensitivity analysis of the bias estimate")
    _add_input_options(p)
    p.add_argument("--thorough", action="store_true",
                   help="publication-grade simulation counts (about 10x the default cost)")
    p.add_argument("--backend", default="loky", choices=["loky", "ray"])
    p.add_argument("--ray-address", default=None, help="ray.init address (default: local)")
    p.add_argument("--out", default="refutation_report")
    p.set_defaults(func=cmd_refute)
    return parser


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:
        warnings.filterwarnings("ignore")
    try:
        return args.func(args)
    except (UsageError, ValueError, KeyError, FileNotFoundError, ImportError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"causal-router: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
