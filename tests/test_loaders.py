"""Real-data loaders against the raw files (../shared/data), and user tables."""

import numpy as np
import pandas as pd
import pytest

from causal_router._validation import DataError
from causal_router.loaders import default_data_dir, load_pandalm, load_prd_vicuna80, load_table

DATA = default_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="real data not found: set CAUSAL_ROUTER_DATA or place ../shared/data")


@pytest.fixture(scope="module")
def pandalm():
    return load_pandalm(DATA / "pandalm")


@pytest.fixture(scope="module")
def prd():
    return load_prd_vicuna80(DATA / "prd_vicuna80")


@needs_data
def test_pandalm_counts_columns_and_drops(pandalm):
    # 999 items, 25 GPT-3.5 verdicts are "garbage": 974 rows, 10 model pairs, 169 distinct queries
    assert len(pandalm) == 974
    assert pandalm.attrs["dropped"] == {"GPT-3.5 verdict missing or unparseable ('garbage')": 25}
    assert pandalm["pair"].nunique() == 10 and pandalm["query_id"].nunique() == 169
    assert {"query_id", "query_text", "model_p", "model_a", "pair", "gold_gain", "pref_gain",
            "pref_gain_2", "category"} <= set(pandalm.columns)
    assert pandalm["gold_gain"].between(-1, 1).all() and pandalm["pref_gain"].isin([-1.0, 0.0, 1.0]).all()
    assert pandalm[["gold_gain", "pref_gain"]].notna().all().all()


@needs_data
def test_pandalm_rows_checked_by_hand(pandalm):
    # idx 0: cmp_key bloom-7b_llama-7b, annotators 2, 2, 2 (response2 = llama better), GPT-3.5 "1"
    row = pandalm.set_index("item_id").loc["0"]
    assert (row.model_p, row.model_a) == ("bloom-7b", "llama-7b")
    assert (row.gold_gain, row.pref_gain, row.pref_gain_2) == (-1.0, 1.0, -1.0)
    assert row.query_text.startswith("The sentence you are given might be too wordy") and "\n\n" in row.query_text
    # idx 500: llama-7b_pythia-6.9b, annotators 1, 1, 1, GPT-3.5 "1"
    row = pandalm.set_index("item_id").loc["500"]
    assert (row.model_p, row.gold_gain, row.pref_gain) == ("llama-7b", 1.0, 1.0)


@needs_data
def test_pandalm_agreement_matches_the_data_readme(pandalm):
    agree = np.mean(np.sign(pandalm.gold_gain) == np.sign(pandalm.pref_gain))
    corr = np.corrcoef(pandalm.gold_gain, pandalm.pref_gain)[0, 1]
    assert agree == pytest.approx(0.729, abs=0.005) and corr == pytest.approx(0.596, abs=0.005)


@needs_data
def test_prd_counts_orientation_and_a_row_by_hand(prd):
    # 80 questions x 10 pairs of the five models GPT-4 judged
    assert len(prd) == 800 and prd["pair"].nunique() == 10
    assert (prd["model_p"] < prd["model_a"]).all()  # oriented to the alphabetically first model
    assert prd["n_gold_votes"].ge(1).all() and prd["pref_gain_2"].notna().all()
    # question 1, bard vs gpt4: three human votes, all in answer_gpt4-vs-answer_bard, score 1
    # (gpt4 better) -> -1 each for bard; GPT-4 judged both orders: score 2 in bard-vs-gpt4 and
    # score 1 in gpt4-vs-bard, both "gpt4 better" -> -1.
    row = prd[(prd.question_id == 1) & (prd.pair == "bard|gpt4")].iloc[0]
    assert (row.gold_gain, row.pref_gain, row.n_gold_votes, row.n_pref_votes) == (-1.0, -1.0, 3, 2)
    assert row.query_text == "How can I improve my time management skills?" and row.category == "generic"
    corr = np.corrcoef(prd.gold_gain, prd.pref_gain)[0, 1]
    assert 0.5 < corr < 0.7  # measured 0.598


@needs_data
def test_prd_other_judges_and_bad_judge():
    claude = load_prd_vicuna80(DATA / "prd_vicuna80", judge="claude")
    assert len(claude) > 700
    with pytest.raises(DataError, match="judge must be one of"):
        load_prd_vicuna80(DATA / "prd_vicuna80", judge="llama")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="PandaLM test set not found"):
        load_pandalm(tmp_path)
    with pytest.raises(DataError, match="PRD questions not found"):
        load_prd_vicuna80(tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".tsv"])
def test_load_table_round_trips(tmp_path, suffix):
    frame = pd.DataFrame({"x0": [0.5, 1.5], "gain": [1.0, -1.0], "source": ["gold", "preference"]})
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    pd.testing.assert_frame_equal(load_table(path), frame, check_dtype=False)


def test_load_table_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_table(tmp_path / "absent.csv")
    with pytest.raises(DataError, match=r"unsupported file extension '\.xlsx'"):
        load_table(tmp_path / "data.xlsx")
