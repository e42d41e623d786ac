"""Command-line options shared by the commands: one data-option group, feature selection, outputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .._validation import DataError
from ..data import SCALE_METHODS, EvalData
from ..io import check_output_path, read_table

__all__ = ["UsageError", "add_data_options", "add_model_options", "scale_arg", "select_features",
           "read_data", "eval_data", "load_input", "check_out_dir", "Steps", "LARGE_FILE_ROWS"]

#: Files with at least this many rows get a progress display on stderr.
LARGE_FILE_ROWS = 20_000


class UsageError(DataError):
    """A bad command-line argument: printed as one line, exit code 2."""


def add_data_options(p: argparse.ArgumentParser, *, builtin: bool = False) -> None:
    """The data file and the options naming its columns. ``builtin``: the file is optional and the
    built-in generator is used without one (``--n``, ``--n-gold``, ``--seed``)."""
    if builtin:
        p.add_argument("data", nargs="?", help="CSV, TSV, Parquet or JSON(L) file (default: built-in generator)")
    else:
        p.add_argument("data", help="CSV, TSV, Parquet or JSON(L) file")
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
    if builtin:
        b = p.add_argument_group("built-in data (without a file)")
        b.add_argument("--n", type=int, default=5000, help="queries (default: 5000)")
        b.add_argument("--n-gold", type=int, default=250, help="gold rows (default: 250)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options of the bias model and the random seed."""
    from ..bias import LEARNERS

    p.add_argument("--learner", default="r", choices=list(LEARNERS), help="CATE learner of the bias (default: r)")
    p.add_argument("--scale", default="variance", choices=[str(m).lower() for m in SCALE_METHODS],
                   help="gold-to-preference scale constant (default: variance; none: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def scale_arg(args) -> str | None:
    return None if args.scale == "none" else args.scale


def read_data(path: str) -> pd.DataFrame:
    return read_table(path)


def select_features(frame: pd.DataFrame, args, *, reserved: tuple = ()) -> list[str]:
    """Feature columns: ``--features`` as given, or the numeric columns starting with
    ``--feature-prefix``. The label and bookkeeping columns (``reserved`` and the gain, source and
    query-id columns) are never features: naming one explicitly is an error, a prefix skips them."""
    labels = {c for c in (*reserved, getattr(args, "gain", None), getattr(args, "source", None),
                          getattr(args, "query_id", None)) if c}
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
    if not numeric:
        skipped = f" (non-numeric: {[c for c in cols if c not in numeric][:10]})" if cols else ""
        raise UsageError(f"no numeric column starts with --feature-prefix {args.feature_prefix!r}{skipped}; "
                         "pass --features a,b,c")
    return numeric


def eval_data(frame: pd.DataFrame, args) -> EvalData:
    """EvalData from a user's frame and the data options."""
    return EvalData.from_frame(
        frame, select_features(frame, args), gain=args.gain, source=args.source,
        gold_value=args.gold_value, preference_value=args.preference_value, query_id=args.query_id,
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
    """A report folder: created if missing; an existing file of that name is an error."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; name a folder for the report")
    folder.mkdir(parents=True, exist_ok=True)
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
