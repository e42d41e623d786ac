"""The commands of ``causal-router``: each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import to_jsonable
from .._validation import check_columns
from ..data import numeric_column
from ..io import TABLE_FORMATS, write_table
from ..router import decide, threshold_for_share
from .options import (
    LARGE_FILE_ROWS,
    Steps,
    UsageError,
    check_out_dir,
    check_out_file,
    eval_data,
    load_input,
    read_data,
    router_text_input,
    scale_arg,
    text_featurizer,
    text_fit_input,
)

__all__ = ["demo", "fit", "route", "evaluate", "serve", "experiment", "diagnose", "refute"]

#: Rows predicted per step when routing a large file (progress is shown per chunk).
ROUTE_CHUNK = 100_000


def _print_table(table: pd.DataFrame, **round_kw) -> None:
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.round(3).to_string(na_rep=""))


def _metrics_table(fitted: dict, gold) -> pd.DataFrame:
    from .. import evaluate

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


# ---------------------------------------------------------------------------- demo
def demo(args) -> int:
    """The meta-router and every baseline on the built-in generator, with a report folder."""
    from ..datasets import make_semi_synthetic, reveal_split
    from ..experiment import fit_methods
    from ..report.plotting import plot_split_curves

    out = check_out_dir(args.out)
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
    _print_table(table[[c for c in cols if c in table]])
    scale = fitted["meta_r"][0].scale_
    rows = frame.iloc[split.train_index]
    true_ate = float(np.mean(rows["psi"] - rows["eta"] / scale))
    print(f"true average bias on the training queries (psi - eta / c, c = {scale:.3g}): {true_ate:.3f} (gold scale)")
    preds = {k: v[1] for k, v in fitted.items()}
    for metric in ("efficiency_gain", "oracle_share"):
        fig = plot_split_curves(preds, split.test_gold, metric)
        fig.savefig(out / f"{metric}.png", dpi=150, bbox_inches="tight")
    config = {k: v for k, v in vars(args).items() if k != "func"}
    (out / "metrics.json").write_text(json.dumps(to_jsonable(
        {"config": config, "true_average_bias": true_ate, "methods": json.loads(table.to_json(orient="index"))}),
        indent=2, allow_nan=False))
    print(f"report written to {out}/ (efficiency_gain.png, oracle_share.png, metrics.json)")
    return 0


# ---------------------------------------------------------------------------- fit / route / evaluate
def fit(args) -> int:
    """Fit a meta-router on a user's file and save it as a safe router file."""
    from ..bias import BiasEstimator
    from ..router import MetaRouter

    out = check_out_file(args.out, inputs=(args.data,))
    frame = read_data(args.data)
    steps = Steps(args.verbose or len(frame) >= LARGE_FILE_ROWS)
    steps(f"read {len(frame)} rows from {args.data}")
    router = MetaRouter(BiasEstimator(args.learner, cv=args.cv), preference_weight=args.preference_weight,
                        scale=scale_arg(args), random_state=args.seed)
    if args.text:  # the router fits its featurizer and keeps it
        X, gain, data = text_fit_input(frame, args)
        router.set_params(featurizer=text_featurizer(args))
    else:
        data = eval_data(frame, args)
        X, gain = data, None
    steps(f"fitting the bias model ({args.learner}) and the gain model on {data.n_gold} gold and "
          f"{data.n_preference} preference rows")
    router.fit(X, gain, source=None if gain is None else data.is_gold)
    steps("saving the router")
    router.save(out)
    ate = router.bias_.ate()
    if args.text:
        f = router.featurizer_
        print(f"text features from column {args.text!r}: {f.method}, {f.n_components_} components"
              + (f", plus {len(f.pairs_)} model-pair indicators from column {args.pair!r}" if len(f.pairs_) > 1
                 else ""))
    print(f"fitted on {data.n_gold} gold and {data.n_preference} preference rows "
          f"(scale constant {router.scale_:.4g}); bias final stage: {router.bias_.final_stage_}")
    print(f"average bias (gold minus preference, gold scale): {ate['estimate']:.4f} "
          f"[{ate['lower']:.4f}, {ate['upper']:.4f}]")
    print(f"router saved to {out}")
    return 0


def _load_router(path: str, *, text: bool = True):
    """A router file; one fitted from MiniLM text is checked for the ``[embed]`` extra here, so
    that a missing extra is one line, not a traceback (``text=False``: features only)."""
    from ..router import BaseRouter

    router = BaseRouter.load(path)
    featurizer = getattr(router, "featurizer_", None)
    if text and featurizer is not None:
        try:
            featurizer.check_available()
        except ImportError as exc:
            raise UsageError(f"{path}: {exc} (or route precomputed features with --features)") from None
    return router


def _router_features(frame: pd.DataFrame, router, args, *, reserved: tuple = ()) -> pd.DataFrame:
    """The router's input from ``frame``. A router fitted from text gets its text (and pair)
    columns, which it featurizes itself. Otherwise its feature columns, matched by name.
    ``--features`` may name the router's own features in any order (they are matched by name),
    or, for a file whose columns are named otherwise, as many other columns, taken in the
    router's order (an explicit rename)."""
    if getattr(router, "featurizer_", None) is not None and not args.features:
        return router_text_input(frame, router, args)
    if args.text or args.pair:
        raise UsageError(f"the router {args.router} was fitted on numeric features, not text: drop --text / --pair "
                         "(or fit a router from text: causal-router fit DATA --text COLUMN)")
    names = [str(n) for n in router.feature_names_in_]
    if not args.features:
        check_columns(frame, names, f"data file {args.data}")
        return frame[names]
    given = [c.strip() for c in args.features.split(",") if c.strip()]
    clash = [c for c in given if c in reserved]
    if clash:
        raise UsageError(f"--features names {clash}, which the command uses as a label or id")
    if set(given) == set(names):
        check_columns(frame, names, f"data file {args.data}")
        return frame[names]
    if set(given) & set(names):
        raise UsageError(f"--features names some of the router's features ({sorted(set(given) & set(names))[:5]}) "
                         f"but not all of them: name exactly the router's features {names[:10]}"
                         f"{' ...' if len(names) > 10 else ''} (any order), or only columns the router does not know "
                         "to map them in the router's order")
    if len(given) != len(names):
        raise UsageError(f"--features names {len(given)} columns, the router was fitted with {len(names)}: {names[:10]}")
    check_columns(frame, given, f"data file {args.data}")
    return frame[given].set_axis(names, axis=1)


def _predict_chunked(router, X: pd.DataFrame, steps: Steps) -> np.ndarray:
    parts = []
    for start in range(0, len(X), ROUTE_CHUNK):
        parts.append(router.predict_gain(X.iloc[start:start + ROUTE_CHUNK]))
        if len(X) > ROUTE_CHUNK:
            steps(f"predicted {min(start + ROUTE_CHUNK, len(X))} of {len(X)} rows")
    return np.concatenate(parts)


def route(args) -> int:
    """Route the queries of a file with a saved router; write one decision per query."""
    out = check_out_file(args.out, formats=TABLE_FORMATS, inputs=(args.data, args.router))
    router = _load_router(args.router, text=not args.features)
    frame = read_data(args.data)
    if args.id_column:
        check_columns(frame, [args.id_column], f"data file {args.data} (--id-column)")
    steps = Steps(args.verbose or len(frame) >= LARGE_FILE_ROWS)
    X = _router_features(frame, router, args, reserved=(args.id_column,))
    gain = _predict_chunked(router, X, steps)
    weight = args.cost_weight
    if args.primary_share is not None:
        weight = threshold_for_share(gain, args.primary_share)
    decision = decide(gain, weight)
    result = pd.DataFrame({"predicted_gain": gain, "route_primary": decision})
    if args.id_column:
        result.insert(0, args.id_column, frame[args.id_column].to_numpy())
    write_table(result, out)
    print(f"routed {len(result)} queries: {int(decision.sum())} to the primary model "
          f"(cost weight {weight:.4g}); written to {out}")
    return 0


def evaluate(args) -> int:
    """Score a saved router on held-out rows with gold gains; print the metrics as JSON."""
    from .. import evaluate as ev

    router = _load_router(args.router, text=not args.features)
    frame = read_data(args.data)
    check_columns(frame, [args.gold_gain], f"data file {args.data} (--gold-gain)")
    gold = numeric_column(frame, args.gold_gain)
    steps = Steps(args.verbose or len(frame) >= LARGE_FILE_ROWS)
    X = _router_features(frame, router, args, reserved=(args.gold_gain,))
    pred = _predict_chunked(router, X, steps)
    result = ev.summarise(pred, gold)
    result["routing_value"] = ev.routing_value(decide(pred, args.cost_weight), gold, cost_weight=args.cost_weight,
                                               random_state=0)
    print(json.dumps(to_jsonable(result), indent=2, allow_nan=False))
    return 0


def serve(args) -> int:
    """Serve a router file over HTTP until interrupted (``POST /route``, ``GET /health``)."""
    try:
        from ..serve import serve as run_server

        run_server(args.router, host=args.host, port=args.port, log_level=args.log_level)
    except ImportError as exc:  # the [serve] or [embed] extra is missing
        raise UsageError(str(exc)) from None
    return 0


# ---------------------------------------------------------------------------- experiment
def experiment(args) -> int:
    """The paper's Monte Carlo experiment on the generator or a real data set."""
    from .._parallel import connect_ray
    from ..experiment import DEFAULT_METHODS, run_experiment
    from ..report import save_experiment

    out = check_out_dir(args.out)
    frame, features, pair = _experiment_data(args)
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else DEFAULT_METHODS
    if args.backend == "ray":
        connect_ray(args.ray_address)
    result = run_experiment(frame, features, methods=methods, n_runs=args.runs, n_gold=args.n_gold,
                            n_test=args.n_test, pair=pair, n_jobs=args.n_jobs, backend=args.backend,
                            random_state=args.seed)
    save_experiment(result, out)
    cols = ["n_runs", "oracle_share", "oracle_share_se", "peak_efficiency_gain", "efficiency_auc", "apgr",
            "gap_closed_oracle_share", "gap_closed_peak_efficiency_gain"]
    _print_table(result.summary[[c for c in cols if c in result.summary]])
    print(f"results written to {out}/")
    return 0


def _experiment_data(args):
    """(frame with gold_gain / pref_gain, feature columns, pair column) for a named data set."""
    if args.dataset == "synthetic":
        from ..datasets import feature_columns, make_semi_synthetic

        return make_semi_synthetic(args.n, args.d, random_state=args.seed), feature_columns(args.d), None
    from ..datasets import load_pandalm, load_prd_vicuna80
    from ..text import TextFeaturizer, featurize_queries

    root = Path(args.data_dir) if args.data_dir else None  # None: $CAUSAL_ROUTER_DATA, else the bundled copy
    if args.dataset == "pandalm":
        frame = load_pandalm(None if root is None else root / "pandalm")
    else:
        frame = load_prd_vicuna80(None if root is None else root / "prd_vicuna80")
    X, names, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=args.text_components))
    features = pd.DataFrame(X, columns=names, index=frame.index)
    return pd.concat([frame, features], axis=1), names, "pair"


# ---------------------------------------------------------------------------- validation
def _bias_model(args):
    from ..bias import BiasEstimator

    return BiasEstimator(args.learner, scale=scale_arg(args), random_state=args.seed)


def _groups(args, data, frame):
    """Group labels for ``--group-by``: a column of the file, or quintile bins of a built-in feature."""
    col = args.group_by
    if not col:
        return None
    if frame is not None:
        check_columns(frame, [col], f"data file {args.data} (--group-by)")
        return frame[col].rename(col)
    if col not in data.feature_names:
        raise UsageError(f"--group-by {col!r}: the built-in data have no such column; group by a feature "
                         "(e.g. --group-by x10 for quintile bins of x10)")
    values = data.X[:, data.feature_names.index(col)]
    bins = pd.qcut(values, 5, duplicates="drop")
    labels = [f"Q{k + 1} {iv}" for k, iv in enumerate(bins.categories)]
    return pd.Series(bins.rename_categories(labels), name=f"{col} (quintile bins)")


def _texts(args, frame):
    if frame is None:
        return None
    for col in (getattr(args, "text", None), "text", "query_text"):
        if col in frame.columns:
            return frame[col].astype(str).to_numpy()
    return None


def diagnose(args) -> int:
    """CATE diagnostics of the bias; with ``--refute`` the refutation section too."""
    from ..report import DiagnosticsReport, RefutationReport
    from ..validate import diagnose as run_diagnose
    from ..validate import refute as run_refute

    out = check_out_dir(args.out)
    data, frame = load_input(args)
    groups = _groups(args, data, frame)
    bias = _bias_model(args)
    diag = run_diagnose(data, bias, groups=groups, texts=_texts(args, frame), n_jobs=args.n_jobs,
                        random_state=args.seed, progress=True)
    sections = None
    if args.refute:
        refutation = run_refute(data, bias, n_jobs=args.n_jobs, random_state=args.seed, progress=True)
        refutation_report = RefutationReport(refutation)
        refutation_report.save(out)
        sections = [("Refutation tests", refutation_report.html())]
        print(refutation.summary())
    DiagnosticsReport(diag).save(out, extra_sections=sections)
    print(diag.summary())
    print(f"report written to {out / 'report.html'} (figures and diagnostics.json in {out}/)")
    return 0


def refute(args) -> int:
    """dowhy refutations and econml's sensitivity analysis of the average bias."""
    from .._parallel import connect_ray
    from ..report import RefutationReport
    from ..validate import refute as run_refute

    out = check_out_dir(args.out)
    data, _ = load_input(args)
    if args.backend == "ray":
        connect_ray(args.ray_address)
    refutation = run_refute(data, _bias_model(args), thorough=args.thorough, n_jobs=args.n_jobs,
                            backend=args.backend, random_state=args.seed, progress=True)
    RefutationReport(refutation).save(out)
    cols = ["refuter", "original_effect", "refuted_effect", "p_value", "passed"]
    with pd.option_context("display.width", 160, "display.max_columns", 10):
        print(refutation.table[cols].round(4).to_string(index=False))
    meta = refutation.meta
    print(f"verdict: {'all refuters passed' if refutation.passed else 'failed: ' + ', '.join(refutation.failed)} "
          f"({meta['suite']} suite, {meta['n_refits']} refits, {meta['runtime_seconds']:.1f} s)")
    print(f"report written to {out / 'refutations.html'} (refutations.csv, refutations.json, refutations.png in {out}/)")
    return 0
