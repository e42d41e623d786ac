"""Loaders: the two real gold-vs-preference data sets, and a user's table.

Each real-data loader returns one row per (query, model pair) that carries both a human (gold)
and an LLM-judge (preference) verdict, oriented so that +1 means ``model_p``'s answer is
better: ``gold_gain`` = mean over human votes of {+1 model_p better, -1 model_a better, 0 tie},
``pref_gain`` the same for the judge. Rows that cannot be used are dropped, never silently: the
count per reason is logged (logger "causal_router") and stored in ``frame.attrs["dropped"]``.

The package ships no copy of the data. Upstream sources: PandaLM (github.com/WeOpenML/PandaLM,
``data/``, Apache-2.0) and PRD (github.com/bcdnlp/PRD, ``data/vicuna80/``, MIT). Point the
loaders at a folder, or set ``CAUSAL_ROUTER_DATA`` to a folder holding ``pandalm/`` and
``prd_vicuna80/`` (see :func:`default_data_dir`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ._validation import DataError

__all__ = ["load_pandalm", "load_prd_vicuna80", "load_table", "default_data_dir"]

logger = logging.getLogger("causal_router")

COLUMNS = ["query_id", "query_text", "model_p", "model_a", "pair", "gold_gain", "pref_gain",
           "pref_gain_2", "category"]


def default_data_dir() -> Path | None:
    """Where the real data are looked for: ``$CAUSAL_ROUTER_DATA``, else ``../shared/data``
    relative to the working directory or to the repository root; None if none exists."""
    env = os.environ.get("CAUSAL_ROUTER_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd().parent / "shared" / "data",
                   Path(__file__).resolve().parent.parent.parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    return None


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{what} not found at {path}")
    return path


def _record_drops(frame: pd.DataFrame, dropped: Counter, name: str) -> pd.DataFrame:
    frame.attrs["dropped"] = dict(dropped)
    for reason, count in dropped.items():
        logger.warning("%s: dropped %d rows: %s", name, count, reason)
    return frame


# ---------------------------------------------------------------------------- PandaLM
_PANDALM_HUMAN = {"1": 1.0, "2": -1.0, "0": 0.0}
_PANDALM_GPT = {"1": 1.0, "2": -1.0, "Tie": 0.0}


def load_pandalm(path) -> pd.DataFrame:
    """PandaLM's human-annotated test set judged by GPT-3.5 (preference) and PandaLM-7B.

    ``path`` holds ``testset-v1.json``, ``gpt-3.5-turbo-testset-v1.json`` and
    ``pandalm-7b-testset-v1.json``. One row per test item (joined on ``idx``); ``cmp_key``
    "X_Y" means response1 is model X's, so model_p = X, model_a = Y. gold_gain = mean of the
    three annotators' verdicts; pref_gain = GPT-3.5's ("garbage" verdicts drop the row);
    pref_gain_2 = PandaLM-7B's (NaN where missing). ``query_id`` numbers the distinct query
    texts in order of first appearance ("pandalm-q000"); ``category`` = motivation_app.
    Columns: ``item_id`` and those of :data:`COLUMNS`.
    """
    root = Path(path)
    test = json.loads(_require(root / "testset-v1.json", "PandaLM test set").read_text())
    gpt = {str(r["idx"]): r for r in json.loads(_require(root / "gpt-3.5-turbo-testset-v1.json",
                                                    "PandaLM GPT-3.5 verdicts").read_text())}
    p7b_path = root / "pandalm-7b-testset-v1.json"
    p7b = {str(r["idx"]): r for r in json.loads(p7b_path.read_text())} if p7b_path.exists() else {}
    dropped: Counter = Counter()
    rows, query_ids = [], {}
    for item in test:
        idx = str(item["idx"])
        votes = [_PANDALM_HUMAN.get(str(item.get(f"annotator{k}"))) for k in (1, 2, 3)]
        votes = [v for v in votes if v is not None]
        if not votes:
            dropped["no parseable human annotation"] += 1
            continue
        verdict = gpt.get(idx, {}).get("gpt_result")
        if verdict not in _PANDALM_GPT:
            dropped["GPT-3.5 verdict missing or unparseable ('garbage')"] += 1
            continue
        second = _PANDALM_HUMAN.get(str(p7b.get(idx, {}).get("pandalm_result")), np.nan)
        model_p, model_a = str(item["cmp_key"]).split("_", 1)
        text = item["instruction"] + (f"\n\n{item['input']}" if str(item.get("input") or "").strip() else "")
        qid = query_ids.setdefault(text, f"pandalm-q{len(query_ids):03d}")
        rows.append({"query_id": qid, "item_id": idx, "query_text": text, "model_p": model_p,
                     "model_a": model_a, "pair": f"{model_p}|{model_a}", "gold_gain": float(np.mean(votes)),
                     "pref_gain": _PANDALM_GPT[verdict], "pref_gain_2": second,
                     "category": item.get("motivation_app")})
    frame = pd.DataFrame(rows, columns=["query_id", "item_id", *COLUMNS[1:]])
    return _record_drops(frame, dropped, "load_pandalm")


# ---------------------------------------------------------------------------- PRD Vicuna80
_PRD_FILE = re.compile(r"answer[_-](?P<x>.+?)-vs-answer[_-](?P<y>.+?)-(?P<judge>[a-z0-9]+)-reviewer[_-]threeclass\.jsonl$")
_PRD_SCORE = {1: 1.0, 2: -1.0, 3: 0.0}
PRD_JUDGES = ("gpt4", "gpt35", "claude")


def _prd_votes(folder: Path) -> pd.DataFrame:
    """All verdicts of one rating folder, oriented to the alphabetically first model (model_p):
    columns question_id, model_p, model_a, vote."""
    records = []
    for file in sorted(folder.glob("*.jsonl")):
        match = _PRD_FILE.match(file.name)
        if not match:
            logger.warning("PRD: skipped file with an unexpected name %s", file.name)
            continue
        x, y = match["x"], match["y"]
        model_p, model_a, sign = (x, y, 1.0) if x <= y else (y, x, -1.0)
        for line in file.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            vote = _PRD_SCORE.get(rec.get("score"))
            records.append({"question_id": int(rec["question_id"]), "model_p": model_p, "model_a": model_a,
                            "vote": np.nan if vote is None else sign * vote})
    return pd.DataFrame(records, columns=["question_id", "model_p", "model_a", "vote"])


def load_prd_vicuna80(path, judge: str = "gpt4") -> pd.DataFrame:
    """PRD's Vicuna80 questions: crowd-worker votes (gold) and an LLM judge's (preference).

    ``path`` is the ``prd_vicuna80`` folder. One row per (question, unordered model pair),
    oriented to the alphabetically first model (model_p); votes from files in the reverse
    answer order are sign-flipped, so averaging over both orders cancels the judge's position
    bias. gold_gain = mean of all human votes (score 1 = first answer better, 2 = second,
    3 = tie); pref_gain = mean of ``judge``'s verdicts ("gpt4", "gpt35" or "claude");
    pref_gain_2 = a second judge (gpt35 for gpt4, else gpt4), NaN where absent. Rows need
    both a human and a ``judge`` verdict. Extra columns: ``n_gold_votes``, ``n_pref_votes``.
    """
    if judge not in PRD_JUDGES:
        raise DataError(f"judge must be one of {PRD_JUDGES}, got {judge!r}")
    root = Path(path)
    questions = pd.read_json(_require(root / "prompts" / "vicuna_questions.jsonl", "PRD questions"), lines=True)
    second = "gpt35" if judge == "gpt4" else "gpt4"
    key = ["question_id", "model_p", "model_a"]
    human = _prd_votes(_require(root / "ratings-human", "PRD human ratings"))
    pref = _prd_votes(_require(root / f"ratings-{judge}", f"PRD {judge} ratings"))
    other = _prd_votes(root / f"ratings-{second}") if (root / f"ratings-{second}").exists() else None
    dropped: Counter = Counter()
    for name, votes in (("human", human), (judge, pref)):
        bad = int(votes["vote"].isna().sum())
        if bad:
            dropped[f"{name} votes with an unknown score"] += bad
    agg = lambda v: v.dropna().groupby(key)["vote"].agg(["mean", "size"])  # noqa: E731
    gold, judged = agg(human), agg(pref)
    frame = gold.join(judged, how="inner", lsuffix="_gold", rsuffix="_pref")
    n_pairs_gold_only = len(gold.index.difference(judged.index))
    if n_pairs_gold_only:
        dropped[f"(question, pair) with human votes but no {judge} verdict"] += n_pairs_gold_only
    n_pairs_pref_only = len(judged.index.difference(gold.index))
    if n_pairs_pref_only:
        dropped[f"(question, pair) with a {judge} verdict but no human vote"] += n_pairs_pref_only
    frame = frame.reset_index()
    if other is not None:
        second_mean = agg(other)["mean"].rename("pref_gain_2")
        frame = frame.join(second_mean, on=key)
    else:
        frame["pref_gain_2"] = np.nan
    frame = frame.merge(questions.rename(columns={"text": "query_text"}), on="question_id", how="left")
    frame = pd.DataFrame({
        "query_id": [f"vicuna-{q}" for q in frame["question_id"]],
        "question_id": frame["question_id"],
        "query_text": frame["query_text"],
        "model_p": frame["model_p"], "model_a": frame["model_a"],
        "pair": frame["model_p"] + "|" + frame["model_a"],
        "gold_gain": frame["mean_gold"], "pref_gain": frame["mean_pref"], "pref_gain_2": frame["pref_gain_2"],
        "category": frame["category"],
        "n_gold_votes": frame["size_gold"].astype(int), "n_pref_votes": frame["size_pref"].astype(int),
    }).sort_values(["question_id", "pair"], kind="stable").reset_index(drop=True)
    return _record_drops(frame, dropped, "load_prd_vicuna80")


# ---------------------------------------------------------------------------- user tables
_READERS = {
    ".csv": lambda p, kw: pd.read_csv(p, **kw),
    ".tsv": lambda p, kw: pd.read_csv(p, sep="\t", **kw),
    ".parquet": lambda p, kw: pd.read_parquet(p, **kw),
    ".pq": lambda p, kw: pd.read_parquet(p, **kw),
    ".jsonl": lambda p, kw: pd.read_json(p, lines=True, **kw),
    ".ndjson": lambda p, kw: pd.read_json(p, lines=True, **kw),
    ".json": lambda p, kw: pd.read_json(p, **kw),
}


def load_table(path, **read_kwargs) -> pd.DataFrame:
    """Read a user's CSV / TSV, Parquet or JSONL (JSON records) file, chosen by extension."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"unsupported file extension {path.suffix!r} for {path}; use one of {sorted(_READERS)}")
    if not path.exists():
        raise DataError(f"no such file: {path}")
    try:
        return reader(path, read_kwargs)
    except (ValueError, OSError) as exc:
        raise DataError(f"could not read {path}: {exc}") from None
