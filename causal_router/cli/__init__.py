"""The ``causal-router`` command line: parser, entry point, and its error and warning policy.

    causal-router demo                       the main job, on built-in data
    causal-router fit DATA --features ...    fit a router on a user's file, save it
    causal-router fit DIR --engine dask      the same fit on a Dask cluster, from a Parquet dataset
    causal-router fit-multi DATA --model-a A --model-b B ...   fit a K-model router on pairwise rows
    causal-router route DATA --router FILE   route the queries of a file (two-model or K-model router)
    causal-router evaluate DATA --router FILE --gold-gain COL
    causal-router experiment                 the paper's Monte Carlo experiment
    causal-router diagnose                   CATE diagnostics of the bias
    causal-router refute                     dowhy refutations of the bias estimate
    causal-router serve --router FILE        serve a router over HTTP: POST /route, GET /health
    causal-router serve --router FILE --upstream primary=URL --upstream alternative=URL
                                             ... and the OpenAI chat API in front of the routed models
    causal-router suggest-gold DATA --budget N   the next queries to send to the gold standard
    causal-router plan-gold DATA --target-ci-width W   how many gold labels reach a target

Query text: every command that reads query data takes ``--text COLUMN`` (features from the
text: TF-IDF + SVD, or ``--text-method minilm``) and ``--pair COLUMN`` (one indicator per model
pair) instead of numeric feature columns. A router fitted from text keeps its featurizer in its
file and applies it itself in ``route``, ``evaluate`` and ``serve``.

Errors: every argument is checked before the work starts (numbers and ranges by the parser,
files, columns and combinations of options by the command before it reads or fits anything).
Bad arguments, the package's own errors (bad data, unreadable files: ``DataError`` and its
subclasses) and file-system errors print one line on stderr and exit with code 2; anything else
is a bug and shows its traceback. ``--debug`` shows the traceback of every error.
Warnings: every warning the libraries raise is printed as one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings

from .._validation import DataError
from ..active import STRATEGIES
from ..active.suggest import AUTO_MIN_GOLD
from ..serve import MAX_BODY_BYTES
from . import commands
from .options import (
    UsageError,
    add_data_options,
    add_model_options,
    add_proxy_options,
    add_text_options,
    backend,
    costs,
    integer,
    n_jobs,
    number,
    port,
    preference_weight_arg,
    seed,
)

__all__ = ["main", "build_parser"]


#: Longest error line printed (a message naming thousands of columns is cut here).
MAX_ERROR_LENGTH = 1000


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, exit code 2 from
    :func:`main`), not a usage block and SystemExit."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = _Parser(prog="causal-router", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and dropped rows")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="fit the meta-router and baselines on built-in data, write a report")
    p.add_argument("--out", default="causal_router_report", help="report folder")
    p.add_argument("--n", type=integer(2), default=5000)
    p.add_argument("--d", type=integer(1), default=50)
    p.add_argument("--n-gold", type=integer(1), default=100)
    p.add_argument("--n-test", type=integer(1), default=500)
    p.add_argument("--seed", type=seed, default=0)
    p.set_defaults(func=commands.demo)

    p = sub.add_parser("fit", help="fit a meta-router on a file and save it as a safe router file")
    add_data_options(p, data_help="CSV, TSV, Parquet or JSON(L) file; with --engine dask a Parquet dataset "
                                  "(a folder of .parquet files, or one file)")
    add_model_options(p)
    p.add_argument("--cv", type=integer(2), default=5, help="cross-fitting folds (default: 5)")
    p.add_argument("--preference-weight", type=preference_weight_arg, default="auto",
                   help="'auto' (default): trust the corrected judge as far as held-out gold labels show it adds "
                        "to the gold rows alone; or a fixed weight >= 0 of each preference row")
    p.add_argument("--out", default="router.cr", help="router file to write (default: router.cr)")
    e = p.add_argument_group("engine (--engine dask: extra [dask])")
    e.add_argument("--engine", default="local", choices=["local", "dask"],
                   help="local: this process reads the file whole (default); dask: the distributed fit, reading "
                        "the Parquet dataset in partitions on a Dask cluster")
    e.add_argument("--address", help="scheduler of a running Dask cluster, e.g. tcp://host:8786 (default: a local "
                                     "cluster of --workers workers, closed after the fit)")
    e.add_argument("--workers", type=integer(1, 256), default=2, help="workers of the local cluster (default: 2)")
    e.add_argument("--memory-limit", default="auto",
                   help="memory per worker of the local cluster, e.g. 4GiB (default: auto, the memory / workers)")
    p.set_defaults(func=commands.fit)

    p = sub.add_parser("fit-multi", help="fit a K-model router on pairwise evaluations and save it")
    add_data_options(p)
    p.add_argument("--model-a", required=True, help="column naming each row's first model (the gain is its gain)")
    p.add_argument("--model-b", required=True, help="column naming each row's second model")
    p.add_argument("--reference", help="model whose utility is 0 (default: the first name in sorted order)")
    add_model_options(p)
    p.add_argument("--cv", type=integer(2), default=5, help="cross-fitting folds (default: 5)")
    p.add_argument("--out", default="router.cr", help="router file to write (default: router.cr)")
    p.set_defaults(func=commands.fit_multi)

    p = sub.add_parser("route", help="route the queries of a file with a saved router")
    p.add_argument("data")
    p.add_argument("--router", required=True, help="router file written by fit or fit-multi")
    p.add_argument("--features", help="feature columns in the router's order (default: the router's names)")
    add_text_options(p, fitting=False)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--cost-weight", type=number(0), default=0.0,
                        help="route where gain > weight (K-model router: the weight w of --costs)")
    budget.add_argument("--primary-share", type=number(0, 1), help="send this share of queries to the primary")
    p.add_argument("--costs", type=costs, help="K-model router: cost of each model, MODEL=COST,... (with --cost-weight "
                                               "w, each query goes to argmax utility - w * cost)")
    p.add_argument("--id-column", help="column copied to the output")
    p.add_argument("--out", default="routes.csv", help="CSV, TSV, Parquet, JSON or JSONL by extension")
    p.set_defaults(func=commands.route)

    p = sub.add_parser("evaluate", help="score a saved router (two-model or K-model) on rows with gold gains")
    p.add_argument("data")
    p.add_argument("--router", required=True, help="router file written by fit or fit-multi")
    p.add_argument("--gold-gain", required=True, help="column of held-out gold gains (K-model router: the gold gain "
                                                      "of --model-a over --model-b on each row)")
    p.add_argument("--model-a", default="model_a", help="K-model router: column naming each row's first model")
    p.add_argument("--model-b", default="model_b", help="K-model router: column naming each row's second model")
    p.add_argument("--costs", type=costs, help="K-model router: cost of each model, MODEL=COST,... (adds the routes at "
                                   "--cost-weight)")
    p.add_argument("--features", help="feature columns in the router's order (default: the router's names)")
    add_text_options(p, fitting=False)
    p.add_argument("--cost-weight", type=number(0), default=0.0)
    p.set_defaults(func=commands.evaluate)

    p = sub.add_parser("serve", help="serve a router over HTTP: POST /route, GET /health; with --upstream also "
                                      "the OpenAI chat API in front of the routed models (extra [serve])")
    p.add_argument("--router", required=True, help="router file written by fit or fit-multi")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=port, default=8000, help="port, 1 to 65535 (default: 8000)")
    p.add_argument("--max-body-bytes", type=integer(1), default=MAX_BODY_BYTES,
                   help=f"largest request body accepted, in bytes; larger ones get 413 (default: {MAX_BODY_BYTES})")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_proxy_options(p)
    p.set_defaults(func=commands.serve)

    p = sub.add_parser("experiment", help="the paper's Monte Carlo experiment")
    p.add_argument("--dataset", default="synthetic", choices=["synthetic", "pandalm", "prd"])
    p.add_argument("--data-dir", help="folder holding the raw upstream pandalm/ and prd_vicuna80/ "
                   "(default: $CAUSAL_ROUTER_DATA if set, else the copy bundled with the package)")
    p.add_argument("--runs", type=integer(1), default=50)
    p.add_argument("--n-gold", type=integer(1), default=100, help="gold-labelled training rows per run (default: 100)")
    p.add_argument("--n-test", type=integer(1), help="test queries per run (test rows with --split-by row); default: "
                   "500 on the generator, a fifth of the queries (rows) of a real data set")
    p.add_argument("--split-by", choices=["query", "row"],
                   help="hold out whole queries or single rows (default: query where a query carries several rows, "
                        "as on the real data sets; the generator has one row per query)")
    p.add_argument("--n", type=integer(2), default=5000, help="synthetic queries")
    p.add_argument("--d", type=integer(1), default=50, help="synthetic features")
    p.add_argument("--text-components", type=integer(1), default=50)
    p.add_argument("--methods", help="comma-separated method names")
    p.add_argument("--n-jobs", type=n_jobs, default=1)
    _add_backend(p)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default="experiment_results")
    p.set_defaults(func=commands.experiment)

    p = sub.add_parser("diagnose", help="CATE diagnostics of the bias: overlap, calibration, heterogeneity")
    add_data_options(p, builtin=True)
    add_model_options(p)
    p.add_argument("--router", help="router file written by fit: diagnose its bias settings (its saved bias model "
                                    "and scale) instead of --learner / --scale")
    p.add_argument("--n-jobs", type=n_jobs, default=1)
    p.add_argument("--group-by", help="column to average the bias by (category, model pair)")
    p.add_argument("--refute", action="store_true",
                   help="also run the default refutation suite and add its section to the report")
    p.add_argument("--out", default="diagnostics_report")
    p.set_defaults(func=commands.diagnose)

    p = sub.add_parser("refute", help="dowhy refutations and sensitivity analysis of the bias estimate")
    add_data_options(p, builtin=True)
    add_model_options(p)
    p.add_argument("--n-jobs", type=n_jobs, default=1)
    p.add_argument("--thorough", action="store_true",
                   help="publication-grade simulation counts (about 10x the default cost)")
    _add_backend(p)
    p.add_argument("--out", default="refutation_report")
    p.set_defaults(func=commands.refute)

    p = sub.add_parser("suggest-gold", help="choose the next queries to send to the gold standard")
    add_data_options(p)
    p.add_argument("--budget", type=integer(1), required=True, help="number of queries to suggest")
    p.add_argument("--router", help="router file written by fit: its predicted gains set the routing decision's "
                                    "boundary (default: a router is fitted on DATA where the strategy needs one)")
    p.add_argument("--strategy", default="auto", choices=list(STRATEGIES),
                   help=f"default: auto (decision on labelled DATA with {AUTO_MIN_GOLD} or more gold rows, diverse otherwise)")
    _add_gold_probability(p)
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    p.add_argument("--out", default="to_label.csv", help="the suggested rows (CSV, TSV, Parquet, JSON or JSONL)")
    p.add_argument("--design-out", help="write DATA again with every row's gold probability after this round "
                                        "(the --gold-probability column) and a 'suggested' column, for the next round")
    p.set_defaults(func=commands.suggest_gold)

    p = sub.add_parser("plan-gold", help="how many gold labels reach a target CI width or oracle share")
    add_data_options(p)
    p.add_argument("--target-ci-width", type=number(above=0), help="width of the average bias's 95%% CI to reach "
                                                                   "(gold scale)")
    p.add_argument("--target-oracle-share", type=number(above=0, maximum=1),
                   help="oracle share to reach, in (0, 1] (learning curve: 25 refits)")
    p.add_argument("--router", help="router file written by fit: plan for its settings (default: MetaRouter())")
    _add_gold_probability(p)
    p.add_argument("--n-jobs", type=n_jobs, default=1)
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    p.add_argument("--out", help="folder for plan.json and plan.png (optional)")
    p.set_defaults(func=commands.plan_gold)
    return parser


def _add_gold_probability(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gold-probability", default=None,
                   help="column holding each row's probability of a gold label under earlier rounds' designs "
                        "(written by suggest-gold --design-out); absent: the gold rows are taken as a random draw")


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="loky", type=backend, choices=["loky", "ray"])
    p.add_argument("--ray-address", default=None, help="ray.init address (default: a local Ray)")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message).strip().splitlines()[0] if str(message).strip() else ""
    print(f"causal-router: warning: {category.__name__}: {text}", file=sys.stderr)


def _error(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr (at most :data:`MAX_ERROR_LENGTH` characters); return 2."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(message) > MAX_ERROR_LENGTH:
        message = f"{message[:MAX_ERROR_LENGTH]} ... ({len(message) - MAX_ERROR_LENGTH} more characters)"
    print(f"causal-router: error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 success, 2 bad arguments, bad input or a
    file-system error). ``--help`` exits through SystemExit(0), as argparse does."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _error(exc)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="causal-router: %(message)s")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except (DataError, OSError) as exc:
            if args.debug:
                traceback.print_exc()
            return _error(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
