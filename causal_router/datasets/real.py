"""Loaders of the two real gold-vs-preference data sets (PandaLM, PRD Vicuna80).

Each real-data loader returns one row per (query, model pair) that carries both a human (gold)
and an LLM-judge (preference) verdict, oriented so that a positive gain means ``model_p``'s
answer is better than ``model_a``'s:

* ``gold_gain``  = mean over the human votes of {+1 model_p better, -1 model_a better, 0 tie};
* ``pref_gain``  = the same mapping of the primary LLM judge's verdict(s);
* ``pref_gain_2`` = the same for a second, independent judge (NaN where it has no verdict).

Common columns: ``query_id``, ``query_text``, ``model_p``, ``model_a``, ``pair``
("model_p|model_a"), ``gold_gain``, ``pref_gain``, ``pref_gain_2``, ``category``. Rows that
cannot be used are never dropped silently: the count per reason is logged (logger
``"causal_router"``, WARNING) and stored in ``frame.attrs["dropped"]`` ({reason: count}).
``frame.attrs["judges"]`` names the judge of ``pref_gain`` and of ``pref_gain_2``.

Where the data are read from
----------------------------
Every loader reads, in this order of precedence:

1. ``path``, when given: the folder of the raw upstream files of that data set;
2. else ``$CAUSAL_ROUTER_DATA/<name>/`` when the environment variable ``CAUSAL_ROUTER_DATA``
   is set (:func:`default_data_dir`; a folder holding ``pandalm/`` and ``prd_vicuna80/``);
3. else the processed copy bundled with the package (``causal_router/datasets/data/``, built
   from the upstream files by these same loaders; see its NOTICE and licence files). It is the
   loader's output, so both routes give identical frames (a test checks this), and
   ``attrs["dropped"]`` holds the drop counts recorded when the copy was built.

The package never guesses a path on the machine it runs on.

Upstream sources: PandaLM, github.com/WeOpenML/PandaLM ``data/`` (Apache-2.0): files
``testset-v1.json``, ``gpt-3.5-turbo-testset-v1.json``, ``pandalm-7b-testset-v1.json``; PRD,
github.com/bcdnlp/PRD ``data/vicuna80/`` (MIT): ``prompts/``, ``ratings-human/``,
``ratings-gpt4/``, ``ratings-gpt35/``, ``ratings-claude/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import DataError
from . import _bundled

__all__ = ["load_pandalm", "load_prd_vicuna80", "default_data_dir", "ENV_VAR", "PRD_JUDGES"]

logger = logging.getLogger("causal_router")

ENV_VAR = "CAUSAL_ROUTER_DATA"

#: Columns shared by both real-data loaders, in order.
COLUMNS = ["query_id", "query_text", "model_p", "model_a", "pair", "gold_gain", "pref_gain",
           "pref_gain_2", "category"]


def default_data_dir() -> Path | None:
    """The folder named by ``$CAUSAL_ROUTER_DATA`` (holding ``pandalm/`` and ``prd_vicuna80/``), or None.

    A setting that is not a directory raises :class:`DataError`, so that a mistyped path fails
    loudly instead of silently reading nothing.

    Returns
    -------
    Path or None
        The folder (``~`` expanded); None where the variable is unset or empty.

    Raises
    ------
    DataError
        If the variable names something that is not a directory.
    """
    env = os.environ.get(ENV_VAR)
    if not env:
        return None
    path = Path(env).expanduser()
    if not path.is_dir():
        raise DataError(f"{ENV_VAR}={env} is not a directory")
    return path


# ---------------------------------------------------------------------------- helpers
def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{what}: {path.name} not found at {path}")
    return path


def _read_json_list(path: Path, what: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """A JSON file holding a list of dicts that all have the ``required`` keys."""
    _require(path, what)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{what}: {path} is not valid JSON: {exc}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{what}: {path} must hold a JSON list of objects")
    for i, rec in enumerate(records):
        missing = [k for k in required if k not in rec]
        if missing:
            raise DataError(f"{what}: {path.name} record {i} lacks field(s) {missing}")
    return records


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line of a JSON-lines file."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {lineno} is not valid JSON: {exc}") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}: line {lineno} is not a JSON object")
            out.append((lineno, rec))
    return out


def _raw_folder(path: str | os.PathLike | None, name: str) -> Path | None:
    """The folder of raw upstream files to read: ``path``, else ``$CAUSAL_ROUTER_DATA/name``,
    else None (read the bundled copy)."""
    if path is not None:
        return Path(path)
    root = default_data_dir()
    if root is None:
        return None
    if not (root / name).is_dir():
        raise DataError(f"{ENV_VAR}={root} holds no {name}/ folder: point it at the folder holding "
                        f"pandalm/ and prd_vicuna80/, or unset it to read the copy bundled with the package")
    return root / name


def _record_drops(frame: pd.DataFrame, dropped: dict[str, int], name: str, n_in: int | None,
                  judges: dict[str, str]) -> pd.DataFrame:
    frame.attrs["dropped"] = {reason: int(n) for reason, n in dropped.items() if n}
    frame.attrs["judges"] = dict(judges)
    for reason, count in frame.attrs["dropped"].items():
        logger.warning("%s: dropped %d: %s", name, count, reason)
    if n_in is None:
        logger.info("%s: %d rows read from the bundled copy", name, len(frame))
    else:
        logger.info("%s: %d rows kept of %d candidates", name, len(frame), n_in)
    return frame


# ---------------------------------------------------------------------------- PandaLM
_PANDALM_HUMAN = {"1": 1.0, "2": -1.0, "0": 0.0}   # annotator codes and PandaLM-7B verdicts
_PANDALM_GPT = {"1": 1.0, "2": -1.0, "Tie": 0.0}    # GPT-3.5 verdicts; "garbage" = unparseable
#: The judges of PandaLM's ``pref_gain`` and ``pref_gain_2``.
PANDALM_JUDGES = {"pref_gain": "gpt-3.5-turbo", "pref_gain_2": "pandalm-7b"}
_PANDALM_FILES = {
    "test": ("testset-v1.json", "PandaLM test set"),
    "gpt": ("gpt-3.5-turbo-testset-v1.json", "PandaLM GPT-3.5 verdicts"),
    "p7b": ("pandalm-7b-testset-v1.json", "PandaLM-7B verdicts"),
}


def _code(value: Any, mapping: dict[str, float]) -> float | None:
    """The gain for a verdict code (int, float or string), None if missing or unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not np.isfinite(value) or not float(value).is_integer():
            return None
        value = int(value)
    return mapping.get(str(value).strip())


def _by_idx(records: list[dict[str, Any]], file: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        key = str(rec["idx"])
        if key in out:
            raise DataError(f"{file}: idx {key} appears more than once; cannot join on idx")
        out[key] = rec
    return out


def load_pandalm(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """PandaLM's human-annotated test set, judged by GPT-3.5 (preference) and PandaLM-7B.

    ``path`` is the folder holding the raw ``testset-v1.json``, ``gpt-3.5-turbo-testset-v1.json``
    and ``pandalm-7b-testset-v1.json`` (a DataError names any that is missing); without it,
    ``$CAUSAL_ROUTER_DATA/pandalm/``, else the copy bundled with the package (974 rows; see the
    module docstring). The judge files are joined to the test set on ``idx``. One row per test
    item, columns:

    * ``query_id``: "pandalm-q<NNN>", NNN = index of the distinct query text in order of first
      appearance in the test set (counted over all items, so drops do not renumber it);
    * ``item_id``: the upstream ``idx`` (int);
    * ``query_text``: ``instruction``, plus "\\n\\n" + ``input`` when ``input`` is non-empty;
    * ``model_p``, ``model_a``: from ``cmp_key`` "X_Y" (response1 is X's), model_p = X,
      model_a = Y, so +1 means response1 is better; ``pair`` = "model_p|model_a";
    * ``gold_gain``: mean over the three annotators of {code 1: +1, code 2: -1, code 0: 0};
    * ``pref_gain``: GPT-3.5's verdict {"1": +1, "2": -1, "Tie": 0} (one answer order only,
      so its position bias is left in);
    * ``pref_gain_2``: PandaLM-7B's verdict {"1": +1, "2": -1, "0": 0}, NaN where absent or
      unparseable (the row is kept);
    * ``category``: ``motivation_app``.

    Rows whose human codes or GPT-3.5 verdict are missing or unparseable ("garbage") are
    dropped; counts per reason are logged and kept in ``attrs["dropped"]``.

    Parameters
    ----------
    path : str, PathLike or None, default=None
        Folder of the raw files; None: ``$CAUSAL_ROUTER_DATA/pandalm/`` where set, else the
        bundled copy.

    Returns
    -------
    DataFrame
        One row per kept test item with the columns above; ``attrs["dropped"]`` counts the
        dropped rows per reason.
    """
    root = _raw_folder(path, "pandalm")
    if root is None:
        frame, entry = _bundled.read_table("pandalm")
        return _record_drops(frame, entry["dropped"], "load_pandalm", None, PANDALM_JUDGES)
    if not root.is_dir():
        raise DataError(f"PandaLM folder not found: {root}")
    test = _read_json_list(root / _PANDALM_FILES["test"][0], _PANDALM_FILES["test"][1],
                           ("idx", "cmp_key", "instruction"))
    gpt = _by_idx(_read_json_list(root / _PANDALM_FILES["gpt"][0], _PANDALM_FILES["gpt"][1],
                                  ("idx", "gpt_result")), _PANDALM_FILES["gpt"][0])
    p7b = _by_idx(_read_json_list(root / _PANDALM_FILES["p7b"][0], _PANDALM_FILES["p7b"][1],
                                  ("idx",)), _PANDALM_FILES["p7b"][0])

    dropped: Counter = Counter()
    query_ids: dict[str, str] = {}
    rows = []
    for item in test:
        extra = str(item.get("input") or "")
        text = str(item["instruction"]) + (f"\n\n{extra}" if extra.strip() else "")
        qid = query_ids.setdefault(text, f"pandalm-q{len(query_ids):03d}")
        idx = str(item["idx"])
        models = str(item["cmp_key"]).split("_")
        if len(models) != 2 or not all(models):
            dropped["cmp_key not of the form 'modelX_modelY'"] += 1
            continue
        votes = [_code(item.get(f"annotator{k}"), _PANDALM_HUMAN) for k in (1, 2, 3)]
        if any(v is None for v in votes):
            dropped["human annotator code missing or not in {0, 1, 2}"] += 1
            continue
        if idx not in gpt:
            dropped["no GPT-3.5 verdict for this idx"] += 1
            continue
        pref = _code(gpt[idx].get("gpt_result"), _PANDALM_GPT)
        if pref is None:
            dropped["GPT-3.5 verdict unparseable ('garbage' or not 1/2/Tie)"] += 1
            continue
        second = _code(p7b.get(idx, {}).get("pandalm_result"), _PANDALM_HUMAN)
        model_p, model_a = models
        rows.append({
            "query_id": qid, "item_id": item["idx"], "query_text": text,
            "model_p": model_p, "model_a": model_a, "pair": f"{model_p}|{model_a}",
            "gold_gain": float(np.mean(votes)), "pref_gain": pref,
            "pref_gain_2": np.nan if second is None else second,
            "category": item.get("motivation_app"),
        })
    n_missing_second = sum(1 for r in rows if np.isnan(r["pref_gain_2"]))
    if n_missing_second:
        logger.info("load_pandalm: %d kept rows lack a PandaLM-7B verdict (pref_gain_2 = NaN)",
                    n_missing_second)
    frame = pd.DataFrame(rows, columns=["query_id", "item_id", *COLUMNS[1:]])
    frame = frame.astype({"gold_gain": float, "pref_gain": float, "pref_gain_2": float})
    return _record_drops(frame, dropped, "load_pandalm", len(test), PANDALM_JUDGES)


# ---------------------------------------------------------------------------- PRD Vicuna80
# File names vary upstream: "answer_X-vs-answer_Y-gpt4-reviewer_threeclass.jsonl",
# "...-reviewer-threeclass.jsonl" and "answer-X-vs-answer-Y-...". X is the first answer.
_PRD_FILE = re.compile(
    r"^answer[_-](?P<x>.+?)-vs-answer[_-](?P<y>.+?)-(?P<judge>[A-Za-z0-9]+)-reviewer[_-]threeclass\.jsonl$")
_PRD_SCORE = {1: 1.0, 2: -1.0, 3: 0.0}  # 1 = first answer better, 2 = second, 3 = tie
#: Judges with a ratings-<judge>/ folder in PRD's vicuna80 data.
PRD_JUDGES = ("gpt4", "gpt35", "claude")


def _prd_score(value: Any) -> float | None:
    try:
        return _PRD_SCORE.get(int(value))
    except (TypeError, ValueError):
        return None


def _prd_votes(folder: Path, rater: str, dropped: Counter) -> pd.DataFrame:
    """Every verdict in one ratings folder, oriented to the alphabetically first model.

    Columns: question_id, model_p, model_a, order ("first" if the file shows model_p's answer
    first, else "second"), vote (+1 = model_p better, -1 = model_a better, 0 = tie).
    """
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise DataError(f"PRD {rater} ratings: no .jsonl files in {folder}")
    records, n_used = [], 0
    for file in files:
        match = _PRD_FILE.match(file.name)
        if not match:
            logger.warning("PRD %s ratings: skipped %s (name not 'answer_X-vs-answer_Y-%s-reviewer_"
                           "threeclass.jsonl')", rater, file.name, rater)
            continue
        if match["judge"] != rater:
            logger.warning("PRD %s ratings: skipped %s (rated by %r)", rater, file.name, match["judge"])
            continue
        n_used += 1
        x, y = match["x"], match["y"]
        model_p, model_a, sign, order = (x, y, 1.0, "first") if x <= y else (y, x, -1.0, "second")
        for lineno, rec in _read_jsonl(file):
            vote = _prd_score(rec.get("score"))
            try:
                qid = int(rec["question_id"])
            except (KeyError, TypeError, ValueError):
                dropped[f"{rater} votes without a question_id"] += 1
                continue
            if vote is None:
                dropped[f"{rater} votes whose score is not 1, 2 or 3"] += 1
                continue
            records.append((qid, model_p, model_a, order, sign * vote))
    if not n_used:
        raise DataError(f"PRD {rater} ratings: no file in {folder} is named "
                        f"'answer_X-vs-answer_Y-{rater}-reviewer_threeclass.jsonl'")
    return pd.DataFrame(records, columns=["question_id", "model_p", "model_a", "order", "vote"])


_KEY = ["question_id", "model_p", "model_a"]


def _judge_mean(votes: pd.DataFrame) -> pd.DataFrame:
    """Per (question, pair): order-balanced mean (mean of the per-order means) and vote count."""
    per_order = votes.groupby([*_KEY, "order"])["vote"].mean()
    return pd.DataFrame({"mean": per_order.groupby(level=_KEY).mean(),
                         "size": votes.groupby(_KEY)["vote"].size()})


def load_prd_vicuna80(path: str | os.PathLike | None = None, judge: str = "gpt4") -> pd.DataFrame:
    """PRD's Vicuna80 questions: crowd-worker votes (gold) and an LLM judge's (preference).

    ``path`` is the raw ``prd_vicuna80`` folder (``prompts/vicuna_questions.jsonl``,
    ``ratings-human/`` and ``ratings-<judge>/``; file ``answer_X-vs-answer_Y-...jsonl`` shows
    X's answer first, score 1 = first better, 2 = second better, 3 = tie); without it,
    ``$CAUSAL_ROUTER_DATA/prd_vicuna80/``, else the copy bundled with the package, which holds
    the verdicts of all three judges (800 rows each; see the module docstring). One row per
    (question, unordered model pair), oriented to the alphabetically first model name:
    ``model_p`` < ``model_a``; votes from files in the other order are sign-flipped. Columns:

    * ``query_id`` "vicuna-<question_id>", ``question_id`` (int), ``query_text``, ``category``
      (from the questions file), ``model_p``, ``model_a``, ``pair`` = "model_p|model_a";
    * ``gold_gain``: mean of all human votes on the pair for the question (both file orders),
      +1 model_p better, -1 model_a better, 0 tie; ``n_gold_votes``: how many;
    * ``pref_gain``: ``judge``'s verdicts ("gpt4", "gpt35" or "claude") mapped the same way,
      averaged within each answer order and then over the orders present, so when both orders
      exist (as they do upstream for the five judged models) the judge's position bias
      cancels; repeated runs (e.g. two gpt35 files for gpt35 vs gpt4) are averaged;
      ``n_pref_votes``: how many verdicts;
    * ``pref_gain_2``: the same for a second judge (gpt35 when ``judge`` is gpt4, else gpt4),
      NaN where it has no verdict or its folder is absent.

    Only (question, pair) combinations with at least one human vote and one ``judge`` verdict
    are kept (human-only pairs, e.g. the guanaco models, are dropped); counts per reason are
    logged and kept in ``attrs["dropped"]``.

    Parameters
    ----------
    path : str, PathLike or None, default=None
        The raw ``prd_vicuna80`` folder; None: ``$CAUSAL_ROUTER_DATA/prd_vicuna80/`` where set,
        else the bundled copy.
    judge : {"gpt4", "gpt35", "claude"}, default="gpt4"
        The LLM judge whose verdicts are ``pref_gain``.

    Returns
    -------
    DataFrame
        One row per kept (question, model pair) with the columns above; ``attrs["dropped"]``
        counts the dropped combinations per reason.
    """
    if judge not in PRD_JUDGES:
        raise DataError(f"judge must be one of {PRD_JUDGES}, got {judge!r}")
    second = "gpt35" if judge == "gpt4" else "gpt4"
    name, judges = f"load_prd_vicuna80(judge={judge!r})", {"pref_gain": judge, "pref_gain_2": second}
    root = _raw_folder(path, "prd_vicuna80")
    if root is None:
        wide, entry = _bundled.read_table("prd_vicuna80")
        frame = _bundled.prd_for_judge(wide, judge, second)
        return _record_drops(frame, entry["dropped"][judge], name, None, judges)
    if not root.is_dir():
        raise DataError(f"PRD vicuna80 folder not found: {root}")
    qfile = _require(root / "prompts" / "vicuna_questions.jsonl", "PRD questions")
    questions = {}
    for lineno, rec in _read_jsonl(qfile):
        if "question_id" not in rec or "text" not in rec:
            raise DataError(f"{qfile}: line {lineno} lacks question_id or text")
        questions[int(rec["question_id"])] = (str(rec["text"]), rec.get("category"))

    dropped: Counter = Counter()
    human = _prd_votes(_require(root / "ratings-human", "PRD human ratings"), "human", dropped)
    pref = _prd_votes(_require(root / f"ratings-{judge}", f"PRD {judge} ratings"), judge, dropped)
    gold = human.groupby(_KEY)["vote"].agg(["mean", "size"])
    judged = _judge_mean(pref)

    n_gold_only = len(gold.index.difference(judged.index))
    if n_gold_only:
        dropped[f"(question, pair) with human votes but no {judge} verdict"] = n_gold_only
    n_pref_only = len(judged.index.difference(gold.index))
    if n_pref_only:
        dropped[f"(question, pair) with a {judge} verdict but no human vote"] = n_pref_only
    frame = gold.add_suffix("_gold").join(judged.add_suffix("_pref"), how="inner").reset_index()
    n_candidates = len(gold.index.union(judged.index))

    other_dir = root / f"ratings-{second}"
    if other_dir.is_dir():
        other = _prd_votes(other_dir, second, Counter())
        frame = frame.join(_judge_mean(other)["mean"].rename("pref_gain_2"), on=_KEY)
    else:
        logger.info("load_prd_vicuna80: %s absent; pref_gain_2 is NaN", other_dir)
        frame["pref_gain_2"] = np.nan

    known = frame["question_id"].isin(list(questions))
    if not known.all():
        dropped["question_id not in prompts/vicuna_questions.jsonl"] = int((~known).sum())
        frame = frame[known]
    qid = frame["question_id"].astype(int)
    frame = pd.DataFrame({
        "query_id": "vicuna-" + qid.astype(str),
        "question_id": qid,
        "query_text": [questions[q][0] for q in qid],
        "model_p": frame["model_p"], "model_a": frame["model_a"],
        "pair": frame["model_p"] + "|" + frame["model_a"],
        "gold_gain": frame["mean_gold"].astype(float), "pref_gain": frame["mean_pref"].astype(float),
        "pref_gain_2": frame["pref_gain_2"].astype(float),
        "category": [questions[q][1] for q in qid],
        "n_gold_votes": frame["size_gold"].astype(int), "n_pref_votes": frame["size_pref"].astype(int),
    }).sort_values(["question_id", "pair"], kind="stable").reset_index(drop=True)
    return _record_drops(frame, dropped, name, n_candidates, judges)
