"""Command-line options shared by the commands: one data-option group, feature selection, outputs,
and the validators (argparse ``type=``) of every number, range and list an option takes."""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from .._validation import DataError
from ..data import SCALE_METHODS, EvalData
from ..io import check_output_path, read_table

__all__ = ["UsageError", "add_data_options", "add_model_options", "add_text_options", "add_proxy_options",
           "preference_weight_arg", "scale_arg",
           "select_features", "read_data", "eval_data", "load_input", "text_featurizer", "text_fit_input",
           "router_text_input", "check_out_dir", "Steps", "LARGE_FILE_ROWS", "integer", "number", "seed",
           "n_jobs", "port", "costs", "backend", "upstream", "upstream_model", "upstream_key", "MAX_SEED"]

#: Files with at least this many rows get a progress display on stderr.
LARGE_FILE_ROWS = 20_000
#: Largest ``--seed``: seeds reach numpy, scikit-learn and LightGBM, whose seeds are 32-bit signed.
MAX_SEED = 2**31 - 1


class UsageError(DataError):
    """A bad command-line argument: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------- argument validators
def _bounds(minimum, maximum) -> str:
    def show(v):
        return str(v) if isinstance(v, int) else f"{v:g}"

    if minimum is not None and maximum is not None:
        return f" from {show(minimum)} to {show(maximum)}"
    if minimum is not None:
        return f" >= {show(minimum)}"
    return f" <= {show(maximum)}" if maximum is not None else ""


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [minimum, maximum] (either bound optional)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer{_bounds(minimum, maximum)}, got {text[:40]!r}")
        return value

    parse.__name__ = "integer"
    return parse


def number(minimum: float | None = None, maximum: float | None = None, *,
           above: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [minimum, maximum], or > ``above``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        bad = (not math.isfinite(value) or (minimum is not None and value < minimum)
               or (maximum is not None and value > maximum) or (above is not None and value <= above))
        if bad:
            rule = f" > {above:g}" if above is not None else _bounds(minimum, maximum)
            raise argparse.ArgumentTypeError(f"must be a finite number{rule}, got {text[:40]!r}")
        return value

    parse.__name__ = "number"
    return parse


def seed(text: str) -> int:
    """``--seed``: an integer from 0 to :data:`MAX_SEED`."""
    return integer(0, MAX_SEED)(text)


def n_jobs(text: str) -> int:
    """``--n-jobs``: a nonzero integer, as joblib reads it (-1: every core, -2: all but one)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a nonzero integer (1: one process, -1: every core), got {text[:40]!r}")
    return value


def port(text: str) -> int:
    """``--port``: a TCP port from 1 to 65535."""
    return integer(1, 65535)(text)


def costs(text: str) -> dict[str, float]:
    """``--costs MODEL=COST,...``: one finite cost per model, each model named once."""
    parsed: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.strip().rpartition("=")
        name = name.strip()
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{item.strip()[:40]!r} is not MODEL=COST (e.g. --costs small=0.1,large=1)")
        if name in parsed:
            raise argparse.ArgumentTypeError(f"model {name[:40]!r} is given twice; give one cost per model")
        try:
            parsed[name] = number()(value)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"the cost of {name[:40]!r} {exc}") from None
    return parsed


def _assignment(text: str, example: str) -> tuple[str, str]:
    """(NAME, VALUE) of ``NAME=VALUE``: a name without spaces, ``=`` or ``,``, and a value."""
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value or any(c.isspace() or c == "," for c in name):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not {example}")
    return name, value


def upstream(text: str) -> str:
    """``--upstream NAME=URL``: an http(s) URL with a host (:class:`causal_router.proxy.Upstream`
    checks it); returned as given."""
    name, url = _assignment(text, "NAME=URL (e.g. primary=http://127.0.0.1:8001/v1)")
    from ..proxy import Upstream
    from ..serve import SERVE_EXTRA_MESSAGE

    try:
        Upstream(name, url)
    except ImportError:  # httpx
        raise argparse.ArgumentTypeError(SERVE_EXTRA_MESSAGE) from None
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def upstream_model(text: str) -> str:
    """``--upstream-model NAME=MODEL``; returned as given."""
    _assignment(text, "NAME=MODEL (e.g. primary=gpt-4o)")
    return text


def upstream_key(text: str) -> str:
    """``--upstream-key NAME=ENV_VAR``: ENV_VAR a variable name that is set, not empty, in the
    environment (its value, the key, is read when the server starts and never shown); returned
    as given."""
    _, var = _assignment(text, "NAME=ENV_VAR (e.g. primary=OPENAI_API_KEY)")
    if not var.isidentifier():
        raise argparse.ArgumentTypeError(f"{var[:80]!r} is not the name of an environment variable")
    if not os.environ.get(var, "").strip():
        raise argparse.ArgumentTypeError(f"the environment variable {var} is not set or empty")
    return text


def backend(text: str) -> str:
    """``--backend``: loky, or ray where Ray is installed."""
    if text == "ray" and importlib.util.find_spec("ray") is None:
        raise argparse.ArgumentTypeError("ray needs Ray, which is not installed: pip install 'causal_router[ray]', "
                                         "or use --backend loky")
    return text


def add_data_options(p: argparse.ArgumentParser, *, builtin: bool = False,
                     data_help: str = "CSV, TSV, Parquet or JSON(L) file") -> None:
    """The data file and the options naming its columns. ``builtin``: the file is optional and the
    built-in generator is used without one (``--n``, ``--n-gold``, ``--seed``)."""
    if builtin:
        p.add_argument("data", nargs="?", help=f"{data_help} (default: built-in generator)")
    else:
        p.add_argument("data", help=data_help)
    g = p.add_argument_group("columns of the data file")
    g.add_argument("--features", help="comma-separated feature columns")
    g.add_argument("--feature-prefix", default="x",
                   help="use every numeric column starting with this (default: x); the gain, source and id "
                        "columns are never features")
    g.add_argument("--gain", default="gain", help="column of observed gains (default: gain)")
    g.add_argument("--source", default="source", help="column of evaluation sources (default: source)")
    g.add_argument("--gold-value", default="gold", help="source value of gold rows (default: gold)")
    g.add_argument("--preference-value", default="preference", help="source value of preference rows")
    g.add_argument("--query-id", help="column of query ids (optional)")
    g.add_argument("--preference-gain", help="column of the judge's gain on gold rows too (paired rows; empty on rows "
                                             "the judge did not label): the average bias then uses the pairing")
    add_text_options(p)
    if builtin:
        b = p.add_argument_group("built-in data (without a file)")
        b.add_argument("--n", type=integer(2), default=5000, help="queries (default: 5000)")
        b.add_argument("--n-gold", type=integer(1), default=250, help="gold rows (default: 250)")


def add_text_options(p: argparse.ArgumentParser, *, fitting: bool = True) -> None:
    """``--text`` / ``--pair``: features from the query text instead of numeric columns. Where a
    featurizer is fitted (``fitting``) also its method and size; where a saved router reads the
    file, the options rename the columns its featurizer reads."""
    g = p.add_argument_group("query text (instead of numeric feature columns)")
    if fitting:
        g.add_argument("--text", metavar="COLUMN", help="column of query texts: features from the text")
        g.add_argument("--pair", metavar="COLUMN", help="column of model-pair labels: one indicator feature per pair")
        g.add_argument("--text-method", default="tfidf-svd", choices=["tfidf-svd", "minilm"],
                       help="TF-IDF + truncated SVD (default), or MiniLM embeddings + PCA (extra [embed])")
        g.add_argument("--text-components", type=integer(1), default=50, help="text feature dimension (default: 50)")
    else:
        g.add_argument("--text", metavar="COLUMN", help="column of query texts (default: the router's)")
        g.add_argument("--pair", metavar="COLUMN", help="column of model-pair labels (default: the router's)")


def add_proxy_options(p: argparse.ArgumentParser) -> None:
    """``serve``'s proxy options: the upstream of each routed name, the budget, failures, limits."""
    g = p.add_argument_group("routing proxy: the OpenAI chat API in front of the routed models "
                             "(POST /v1/chat/completions, GET /v1/models, GET /metrics)")
    g.add_argument("--upstream", action="append", default=[], type=upstream, metavar="NAME=URL",
                   help="base URL of the OpenAI-compatible API serving a routed name, e.g. primary=http://HOST:PORT/v1; "
                        "one per name (two-model router: primary and alternative; K-model: each model)")
    g.add_argument("--upstream-model", action="append", default=[], type=upstream_model, metavar="NAME=MODEL",
                   help="model name written into the requests sent to that upstream (default: the client's)")
    g.add_argument("--upstream-key", action="append", default=[], type=upstream_key, metavar="NAME=ENV_VAR",
                   help="send that upstream the API key held in the environment variable ENV_VAR (default: forward "
                        "the client's Authorization header)")
    budget = g.add_mutually_exclusive_group()
    budget.add_argument("--primary-share", type=number(0, 1), metavar="R",
                        help="send about this share of queries to the primary (threshold from the router file's "
                             "training queries)")
    budget.add_argument("--cost-weight", type=number(0), metavar="W",
                        help="route where predicted gain > W (K-model router: the weight of --costs); default 0")
    g.add_argument("--costs", type=costs, help="K-model router: cost of each model, MODEL=COST,...")
    g.add_argument("--fallback", action="store_true",
                   help="where the chosen upstream fails (unreachable, timeout, 5xx), try the other one once")
    g.add_argument("--timeout", type=number(above=0), default=60.0, metavar="S",
                   help="seconds to wait for an upstream to connect and between bytes of its answer (default: 60)")
    g.add_argument("--max-concurrency", type=integer(1), default=100, metavar="N",
                   help="requests forwarded at a time; more get 503 (default: 100)")
    g.add_argument("--route-on", default="last-user", choices=["last-user", "conversation"],
                   help="text the router reads: the last user message (default) or the whole conversation")
    g.add_argument("--route-pair", metavar="LABEL",
                   help="model-pair label given with every text (a router fitted on several model pairs)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options of the bias model and the random seed."""
    from ..bias import LEARNERS

    p.add_argument("--learner", default="r", choices=list(LEARNERS), help="CATE learner of the bias (default: r)")
    p.add_argument("--scale", default="variance", choices=[str(m).lower() for m in SCALE_METHODS],
                   help="gold-to-preference scale constant (default: variance; none: 1)")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")


def preference_weight_arg(text: str) -> float | str:
    """``--preference-weight``: "auto" or a finite number >= 0."""
    if text == "auto":
        return text
    try:
        return number(0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a finite number >= 0, got {text[:40]!r}") from None


def scale_arg(args) -> str | None:
    return None if args.scale == "none" else args.scale


def read_data(path: str) -> pd.DataFrame:
    return read_table(path)


def select_features(frame: pd.DataFrame, args, *, reserved: tuple = ()) -> list[str]:
    """Feature columns: ``--features`` as given, or the numeric columns starting with
    ``--feature-prefix``. The label and bookkeeping columns (``reserved`` and the gain, source and
    query-id columns) are never features: naming one explicitly is an error, a prefix skips them."""
    labels = {c for c in (*reserved, getattr(args, "gain", None), getattr(args, "source", None),
                          getattr(args, "query_id", None), getattr(args, "preference_gain", None)) if c}
    if getattr(args, "text", None):
        if args.features:
            raise UsageError("pass either --text (features from the query text) or --features, not both")
        return []
    if getattr(args, "pair", None):
        raise UsageError("--pair adds model-pair indicators to text features: pass --text COLUMN too")
    if args.features:
        names = [c.strip() for c in args.features.split(",") if c.strip()]
        if not names:
            raise UsageError("--features is empty: name at least one column")
        clash = [c for c in names if c in labels]
        if clash:
            raise UsageError(f"--features names {clash}, which the command uses as the label, source or id; "
                             "a label cannot be a feature")
        return names
    cols = [c for c in frame.columns if str(c).startswith(args.feature_prefix) and c not in labels]
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if not cols:
        raise UsageError(f"no column starts with --feature-prefix {args.feature_prefix!r}; pass --features a,b,c")
    if not numeric:
        raise UsageError(f"the columns starting with --feature-prefix {args.feature_prefix!r} are not numeric "
                         f"({cols[:10]}); pass --features a,b,c")
    return numeric


def text_featurizer(args):
    """The TextFeaturizer of ``--text``, ``--pair``, ``--text-method`` and ``--text-components``;
    a missing ``[embed]`` extra for ``--text-method minilm`` is a UsageError."""
    from ..text import TextFeaturizer

    featurizer = TextFeaturizer(args.text_method, args.text_components, text_column=args.text, pair_column=args.pair,
                                random_state=getattr(args, "seed", 0))
    try:
        featurizer.check_available()
    except ImportError as exc:
        raise UsageError(f"--text-method {args.text_method}: {exc}") from None
    return featurizer


def _with_text_features(frame: pd.DataFrame, args) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with the features of ``--text`` / ``--pair`` appended (``text_*``, ``pair=*``)."""
    from ..text import featurize_queries

    X, names, _ = featurize_queries(frame, text_column=args.text, pair_column=args.pair,
                                    featurizer=text_featurizer(args))
    clash = [n for n in names if n in frame.columns]
    if clash:
        raise UsageError(f"data file {args.data} already has columns named like text features {clash[:5]}; "
                         "rename them")
    return pd.concat([frame, pd.DataFrame(X, columns=names, index=frame.index)], axis=1), names


def text_fit_input(frame: pd.DataFrame, args) -> tuple[pd.DataFrame, pd.Series, EvalData]:
    """(text and pair columns, gains, EvalData of the text features) for fitting a router from
    ``--text``: the router fits its own featurizer on the first; the EvalData (same rows, its
    source read with ``--gold-value`` / ``--preference-value``) gives the gold mask and counts."""
    data = eval_data(frame, args)
    columns = [args.text] + ([args.pair] if args.pair else [])
    return frame[columns], frame[args.gain], data


def router_text_input(frame: pd.DataFrame, router, args) -> pd.DataFrame:
    """The text (and pair) columns of ``frame`` under the names the router's featurizer reads;
    ``--text`` / ``--pair`` name them where the file's columns are called otherwise."""
    from .._validation import check_columns

    featurizer = router.featurizer_
    text = args.text or featurizer.text_column
    if text is None:
        raise UsageError(f"the router {args.router} was fitted from a list of texts: pass --text COLUMN")
    pair = args.pair or featurizer.pair_column
    if pair is not None and pair not in frame.columns and len(featurizer.pairs_) <= 1 and not args.pair:
        pair = None  # one pair fitted: the column may be absent
    columns = {text: featurizer.text_column or text}
    if pair is not None:
        columns[pair] = featurizer.pair_column or pair
    check_columns(frame, list(columns), f"data file {args.data}")
    return frame[list(columns)].rename(columns=columns)


def eval_data(frame: pd.DataFrame, args) -> EvalData:
    """EvalData from a user's frame and the data options (``--text``: text features appended)."""
    features = select_features(frame, args)
    if not features:
        frame, features = _with_text_features(frame, args)
    return EvalData.from_frame(
        frame, features, gain=args.gain, source=args.source,
        gold_value=args.gold_value, preference_value=args.preference_value, query_id=args.query_id,
        preference_gain=getattr(args, "preference_gain", None),
    )


def load_input(args) -> tuple[EvalData, pd.DataFrame | None]:
    """(EvalData, the frame read or None) from ``args.data``, or the built-in generator's reveal split."""
    if args.data:
        frame = read_data(args.data)
        return eval_data(frame, args), frame
    from ..datasets import make_semi_synthetic, reveal_split

    frame = make_semi_synthetic(args.n, 50, random_state=args.seed)
    return reveal_split(frame, n_gold=args.n_gold, n_test=1, random_state=args.seed).train, None


def check_out_dir(path: str) -> Path:
    """A report folder: created if missing; an existing file of that name, or a folder that cannot
    be written, is an error."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; name a folder for the report")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--out {folder} is not writable")
    return folder


def check_out_file(path: str, *, formats=None, inputs: tuple = ()) -> Path:
    """An output file, checked before any work (see :func:`causal_router.io.check_output_path`)."""
    return check_output_path(path, formats=formats, inputs=inputs)


class Steps:
    """Progress of a long command on stderr: one line per step with the elapsed time. Shown for
    large inputs (``n_rows >= LARGE_FILE_ROWS``) or with ``-v``."""

    def __init__(self, enabled: bool):
        import time

        self.enabled = enabled
        self._time = time.perf_counter
        self._start = self._time()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"causal-router: [{self._time() - self._start:6.1f} s] {message}", file=sys.stderr, flush=True)
