"""Real-data loaders on both routes: the raw upstream files ($CAUSAL_ROUTER_DATA; .ci/run points it at
../shared/data; skipped without them) and the copy bundled with the package (always run); that the two
routes give identical frames; the loaders and the bundled-table format on tiny hand-made folders."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from causal_router._validation import DataError
from causal_router.datasets import _bundled, default_data_dir, load_pandalm, load_prd_vicuna80
from causal_router.datasets.real import PRD_JUDGES

DATA = default_data_dir()
SKIP_REASON = "raw data not found: set CAUSAL_ROUTER_DATA to the folder holding pandalm/ and prd_vicuna80/"
COLUMNS = {"query_id", "query_text", "model_p", "model_a", "pair", "gold_gain", "pref_gain",
           "pref_gain_2", "category"}
ROUTES = ["raw", "bundled"]


def _real(name):
    if DATA is None or not (DATA / name).is_dir():
        pytest.skip(f"{SKIP_REASON} (looked for {name}/ in {DATA})")
    return DATA / name


def _bundled_copy(loader, **kwargs):
    """``loader`` with no path and $CAUSAL_ROUTER_DATA unset: the copy bundled with the package."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CAUSAL_ROUTER_DATA", raising=False)
        return loader(**kwargs)


def _load(route, loader, name, **kwargs):
    return loader(_real(name), **kwargs) if route == "raw" else _bundled_copy(loader, **kwargs)


@pytest.fixture(scope="module", params=ROUTES)
def pandalm(request):
    return _load(request.param, load_pandalm, "pandalm")


@pytest.fixture(scope="module", params=ROUTES)
def prd_route(request):
    return request.param


@pytest.fixture(scope="module")
def prd(prd_route):
    return _load(prd_route, load_prd_vicuna80, "prd_vicuna80")


def _bits(values):
    return np.asarray(values, dtype=np.float64).view(np.int64)


def _assert_identical(a, b):
    """Same columns, dtypes and values (floats bit for bit, so -0.0 is not 0.0) and the same attrs."""
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for col in a.columns[a.dtypes == "float64"]:
        np.testing.assert_array_equal(_bits(a[col]), _bits(b[col]), err_msg=col)
    assert a.attrs == b.attrs


def _agreement(frame, label):
    gold, pref = frame["gold_gain"].to_numpy(), frame["pref_gain"].to_numpy()
    agree = float(np.mean(np.sign(gold) == np.sign(pref)))
    corr = float(np.corrcoef(gold, pref)[0, 1])
    print(f"{label}: n={len(frame)} sign agreement={agree:.3f} pearson={corr:.3f}")
    return agree, corr


# ---------------------------------------------------------------------------- PandaLM (real)
def test_pandalm_counts_columns_and_drops(pandalm):
    # 999 items; 25 GPT-3.5 verdicts are "garbage" -> 974 rows (README: ~974)
    assert len(pandalm) == 974 and abs(len(pandalm) - 974) <= 10
    assert pandalm.attrs["dropped"] == {"GPT-3.5 verdict unparseable ('garbage' or not 1/2/Tie)": 25}
    assert pandalm.attrs["judges"] == {"pref_gain": "gpt-3.5-turbo", "pref_gain_2": "pandalm-7b"}
    assert COLUMNS | {"item_id"} == set(pandalm.columns)
    assert pandalm["item_id"].is_unique and pandalm["pair"].nunique() == 10
    assert pandalm["query_id"].nunique() == 169  # 170 distinct queries, one lost all its rows
    assert set(pandalm["model_p"]) | set(pandalm["model_a"]) == {
        "llama-7b", "bloom-7b", "cerebras-gpt-6.7B", "opt-7b", "pythia-6.9b"}
    assert pandalm[["gold_gain", "pref_gain"]].notna().all().all()
    assert pandalm["gold_gain"].between(-1, 1).all()
    assert set(np.round(pandalm["gold_gain"] * 3)) <= {-3, -2, -1, 0, 1, 2, 3}
    assert pandalm["pref_gain"].isin([-1.0, 0.0, 1.0]).all()
    assert pandalm["pref_gain_2"].dropna().isin([-1.0, 0.0, 1.0]).all()
    # query_id identifies the query text
    assert (pandalm.groupby("query_id")["query_text"].nunique() == 1).all()


def test_pandalm_rows_checked_by_hand(pandalm):
    rows = pandalm.set_index("item_id")
    # idx 0: cmp_key bloom-7b_llama-7b, annotators 2,2,2, GPT-3.5 "1", PandaLM-7B 2
    r = rows.loc[0]
    assert (r.model_p, r.model_a, r.pair) == ("bloom-7b", "llama-7b", "bloom-7b|llama-7b")
    assert (r.gold_gain, r.pref_gain, r.pref_gain_2) == (-1.0, 1.0, -1.0)
    assert (r.query_id, r.category) == ("pandalm-q000", "Grammarly")
    assert r.query_text.startswith("The sentence you are given might be too wordy") and "\n\n" in r.query_text
    # idx 4: empty input -> query text is the instruction alone; annotators 2,2,2, GPT "2", 7B 2
    r = rows.loc[4]
    assert r.query_text == "Come up with some search queries on google about coding stuff."
    assert (r.model_p, r.model_a, r.gold_gain, r.pref_gain, r.pref_gain_2) == (
        "cerebras-gpt-6.7B", "pythia-6.9b", -1.0, -1.0, -1.0)
    # idx 87: cerebras-gpt-6.7B_pythia-6.9b, annotators 1,0,1, GPT "Tie", 7B 1
    r = rows.loc[87]
    assert r.query_text == "What sound does this make?\n\n好" and r.category == "Doulingo"
    assert r.gold_gain == pytest.approx(2 / 3) and (r.pref_gain, r.pref_gain_2) == (0.0, 1.0)
    # idx 229: bloom-7b_cerebras-gpt-6.7B, annotators 2,0,0, GPT "1", 7B 0
    r = rows.loc[229]
    assert (r.model_p, r.model_a, r.category) == ("bloom-7b", "cerebras-gpt-6.7B", "Messenger")
    assert r.gold_gain == pytest.approx(-1 / 3) and (r.pref_gain, r.pref_gain_2) == (1.0, 0.0)
    # idx 114 and 116: GPT-3.5 "garbage" -> dropped
    assert 114 not in rows.index and 116 not in rows.index


def test_pandalm_agreement_matches_the_data_readme(pandalm):
    agree, corr = _agreement(pandalm, "PandaLM gold vs GPT-3.5")
    assert 0.65 < agree < 0.80 and 0.4 < corr < 0.75  # README: ~0.73 and ~0.60
    # measured 0.729 and 0.596
    assert agree == pytest.approx(0.729, abs=0.002) and corr == pytest.approx(0.596, abs=0.002)
    both = pandalm.dropna(subset=["pref_gain_2"])
    c2 = float(np.corrcoef(both.gold_gain, both.pref_gain_2)[0, 1])
    print(f"PandaLM gold vs PandaLM-7B: pearson={c2:.3f}")
    assert c2 > 0.3


# ---------------------------------------------------------------------------- PRD (real)
def test_prd_counts_columns_and_drops(prd):
    # 80 questions x 10 pairs of the five models the judges rated (README: ~800); the 1760
    # (question, pair) combinations with only human votes involve the guanaco models
    assert len(prd) == 800 and abs(len(prd) - 800) <= 10
    assert prd.attrs["dropped"] == {"(question, pair) with human votes but no gpt4 verdict": 1760}
    assert prd.attrs["judges"] == {"pref_gain": "gpt4", "pref_gain_2": "gpt35"}
    assert COLUMNS | {"question_id", "n_gold_votes", "n_pref_votes"} == set(prd.columns)
    assert prd["pair"].nunique() == 10 and prd["query_id"].nunique() == 80
    assert not prd.duplicated(["query_id", "pair"]).any()
    assert (prd["model_p"] < prd["model_a"]).all()  # canonical: alphabetically first is model_p
    assert prd[["gold_gain", "pref_gain", "pref_gain_2"]].notna().all().all()
    for col in ("gold_gain", "pref_gain", "pref_gain_2"):
        assert prd[col].between(-1, 1).all()
    assert prd["n_gold_votes"].value_counts().to_dict() == {3: 480, 1: 320}
    assert (prd["n_pref_votes"] == 2).all()  # GPT-4 judged both answer orders everywhere
    assert prd["category"].value_counts()["coding"] == 70


def test_prd_rows_checked_by_hand(prd):
    rows = prd.set_index(["question_id", "pair"])
    # q1 bard|gpt4: human votes only in answer_gpt4-vs-answer_bard, scores 1,1,1 (gpt4 better)
    # -> -1 each; GPT-4: bard-vs-gpt4 score 2 and gpt4-vs-bard score 1, both gpt4 -> -1.
    r = rows.loc[(1, "bard|gpt4")]
    assert (r.gold_gain, r.pref_gain, r.n_gold_votes, r.n_pref_votes) == (-1.0, -1.0, 3, 2)
    assert r.query_text == "How can I improve my time management skills?" and r.category == "generic"
    assert r.query_id == "vicuna-1"
    # q1 bard|vicuna-13b: humans in the reverse file answer_vicuna-13b-vs-answer_bard, scores
    # 3,2,3 -> toward bard 0,+1,0 -> 1/3. GPT-4: vicuna-vs-bard 1 (-1 for bard), bard-vs-vicuna
    # 1 (+1): position bias cancels -> 0. GPT-3.5: vicuna-vs-bard 2 (+1), bard-vs-vicuna 3 (0) -> 0.5
    r = rows.loc[(1, "bard|vicuna-13b")]
    assert r.gold_gain == pytest.approx(1 / 3) and (r.pref_gain, r.pref_gain_2) == (0.0, 0.5)
    # q3 bard|gpt35: humans in answer_gpt35-vs-answer_bard, scores 2,2,1 -> +1,+1,-1 -> 1/3;
    # GPT-4 1 in both orders -> 0; GPT-3.5: gpt35-vs-bard 2 (+1), bard-vs-gpt35 3 (0) -> 0.5
    r = rows.loc[(3, "bard|gpt35")]
    assert r.gold_gain == pytest.approx(1 / 3) and (r.pref_gain, r.pref_gain_2) == (0.0, 0.5)


def test_prd_agreement(prd):
    agree, corr = _agreement(prd, "PRD gold vs GPT-4")
    assert corr > 0.4 and agree > 0.5  # measured 0.651 and 0.598
    assert corr == pytest.approx(0.598, abs=0.002)


def test_prd_other_judges_and_repeated_runs(prd_route, prd):
    gpt35 = _load(prd_route, load_prd_vicuna80, "prd_vicuna80", judge="gpt35")
    assert len(gpt35) == 800 and gpt35["pref_gain_2"].notna().all()
    assert gpt35.attrs["judges"] == {"pref_gain": "gpt35", "pref_gain_2": "gpt4"}
    # the judges swap roles: GPT-3.5's pref_gain is GPT-4's pref_gain_2 and the other way round
    np.testing.assert_array_equal(gpt35["pref_gain"], prd["pref_gain_2"])
    np.testing.assert_array_equal(gpt35["pref_gain_2"], prd["pref_gain"])
    # gpt35 vs gpt4 was judged twice per order by GPT-3.5 (answer-... and answer_... files).
    # q1 (model_p = gpt35): gpt35 first: scores 3, 2 -> 0, -1; gpt4 first: 1, 1 -> -1, -1;
    # order-balanced mean = (-0.5 + -1) / 2 = -0.75. Humans (gpt4-vs-gpt35: 1,1,1) -> -1;
    # GPT-4 as second judge: gpt35-vs-gpt4 2, gpt4-vs-gpt35 1 -> -1.
    r = gpt35.set_index(["question_id", "pair"]).loc[(1, "gpt35|gpt4")]
    assert (r.pref_gain, r.n_pref_votes, r.gold_gain, r.pref_gain_2) == (-0.75, 4, -1.0, -1.0)
    assert gpt35["n_pref_votes"].value_counts().to_dict() == {2: 720, 4: 80}
    claude = _load(prd_route, load_prd_vicuna80, "prd_vicuna80", judge="claude")
    assert len(claude) == 800 and (claude["n_pref_votes"] == 2).all()
    np.testing.assert_array_equal(claude["pref_gain_2"], prd["pref_gain"])  # second judge: GPT-4
    assert claude.attrs["dropped"] == {"(question, pair) with human votes but no claude verdict": 1760}
    _agreement(gpt35, "PRD gold vs GPT-3.5")
    _agreement(claude, "PRD gold vs Claude")


def test_prd_bad_judge():
    with pytest.raises(DataError, match="judge must be one of"):
        load_prd_vicuna80("anywhere", judge="llama")


# ---------------------------------------------------------------------------- hand-made folders
def _write_json(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _item(idx, key, codes, instruction="Say hi.", inp=""):
    return {"idx": idx, "motivation_app": "app", "cmp_key": key, "instruction": instruction,
            "input": inp, "response1": "a", "response2": "b",
            **{f"annotator{k}": c for k, c in zip((1, 2, 3), codes)}}


@pytest.fixture()
def tiny_pandalm(tmp_path):
    _write_json(tmp_path / "testset-v1.json", [
        _item(0, "m1_m2", [1, 1, 0]),                          # kept
        _item(1, "m2_m1", [2, 2, 2], inp="world"),             # kept, other orientation
        _item(2, "m1_m2", [1, 1, 1]),                          # GPT garbage -> dropped
        _item(3, "m1_m2", [1, None, 1]),                       # missing annotator -> dropped
        _item(4, "m1_m2", [1, 1, 1], instruction="Other."),    # no GPT verdict -> dropped
        _item(5, "m1_m2", [0, 0, 0], instruction="Later."),    # kept, no PandaLM-7B verdict
    ])
    _write_json(tmp_path / "gpt-3.5-turbo-testset-v1.json", [
        {"idx": i, "gpt_result": v} for i, v in [(0, "Tie"), (1, "2"), (2, "garbage"), (3, "1"), (5, "1")]])
    _write_json(tmp_path / "pandalm-7b-testset-v1.json", [
        {"idx": 0, "pandalm_result": 1}, {"idx": 1, "pandalm_result": "0"}, {"idx": 5, "pandalm_result": "x"}])
    return tmp_path


def test_pandalm_logic_on_a_tiny_folder(tiny_pandalm, caplog):
    with caplog.at_level(logging.INFO, logger="causal_router"):
        frame = load_pandalm(tiny_pandalm)
    assert frame["item_id"].tolist() == [0, 1, 5]
    assert frame["gold_gain"].tolist() == pytest.approx([2 / 3, -1.0, 0.0])
    assert frame["pref_gain"].tolist() == [0.0, -1.0, 1.0]
    assert frame["pref_gain_2"].iloc[:2].tolist() == [1.0, 0.0] and np.isnan(frame["pref_gain_2"].iloc[2])
    assert frame["pair"].tolist() == ["m1|m2", "m2|m1", "m1|m2"]
    assert frame["query_text"].tolist() == ["Say hi.", "Say hi.\n\nworld", "Later."]
    # ids number distinct texts over the whole test set: the dropped "Other." keeps q002
    assert frame["query_id"].tolist() == ["pandalm-q000", "pandalm-q001", "pandalm-q003"]
    assert frame.attrs["dropped"] == {
        "GPT-3.5 verdict unparseable ('garbage' or not 1/2/Tie)": 1,
        "human annotator code missing or not in {0, 1, 2}": 1,
        "no GPT-3.5 verdict for this idx": 1,
    }
    assert "dropped 1: no GPT-3.5 verdict" in caplog.text


def test_pandalm_missing_files_are_named(tiny_pandalm, tmp_path_factory):
    (tiny_pandalm / "pandalm-7b-testset-v1.json").unlink()
    with pytest.raises(DataError, match="pandalm-7b-testset-v1.json not found"):
        load_pandalm(tiny_pandalm)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataError, match="testset-v1.json not found"):
        load_pandalm(empty)
    with pytest.raises(DataError, match="PandaLM folder not found"):
        load_pandalm(empty / "nope")


def test_pandalm_duplicate_idx_and_bad_json(tiny_pandalm):
    _write_json(tiny_pandalm / "gpt-3.5-turbo-testset-v1.json", [{"idx": 0, "gpt_result": "1"}] * 2)
    with pytest.raises(DataError, match="idx 0 appears more than once"):
        load_pandalm(tiny_pandalm)
    (tiny_pandalm / "gpt-3.5-turbo-testset-v1.json").write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        load_pandalm(tiny_pandalm)


@pytest.fixture()
def tiny_prd(tmp_path):
    (tmp_path / "prompts").mkdir()
    _write_jsonl(tmp_path / "prompts" / "vicuna_questions.jsonl", [
        {"question_id": 1, "text": "Q one?", "category": "generic"},
        {"question_id": 2, "text": "Q two?", "category": "math"}])
    for d in ("ratings-human", "ratings-gpt4", "ratings-gpt35"):
        (tmp_path / d).mkdir()
    human, gpt4, gpt35 = tmp_path / "ratings-human", tmp_path / "ratings-gpt4", tmp_path / "ratings-gpt35"
    # humans: q1 zz vs aa in the reverse file (zz first): 1 (zz better), 3 (tie) -> toward aa -1, 0;
    # plus the forward file: 1 (aa better) -> +1; mean 0. q2: only a pair no judge rated.
    _write_jsonl(human / "answer_zz-vs-answer_aa-human-reviewer_threeclass.jsonl",
                 [{"question_id": 1, "text": "Q one?", "score": 1}, {"question_id": 1, "text": "Q one?", "score": 3}])
    _write_jsonl(human / "answer_aa-vs-answer_zz-human-reviewer_threeclass.jsonl",
                 [{"question_id": 1, "text": "Q one?", "score": 1}, {"question_id": 1, "text": "Q one?", "score": 7}])
    _write_jsonl(human / "answer_aa-vs-answer_mm-human-reviewer_threeclass.jsonl",
                 [{"question_id": 2, "text": "Q two?", "score": 2}])
    # GPT-4: aa-vs-zz 1 (+1 for aa), zz-vs-aa 1 (-1): position bias cancels -> 0
    _write_jsonl(gpt4 / "answer_aa-vs-answer_zz-gpt4-reviewer-threeclass.jsonl", [{"question_id": 1, "score": 1}])
    _write_jsonl(gpt4 / "answer_zz-vs-answer_aa-gpt4-reviewer_threeclass.jsonl", [{"question_id": 1, "score": 1}])
    # GPT-3.5: zz-vs-aa twice (2 and 3 -> toward aa +1, 0), aa-vs-zz once (2 -> -1): (0.5 + -1) / 2
    _write_jsonl(gpt35 / "answer_zz-vs-answer_aa-gpt35-reviewer_threeclass.jsonl", [{"question_id": 1, "score": 2}])
    _write_jsonl(gpt35 / "answer-zz-vs-answer-aa-gpt35-reviewer-threeclass.jsonl", [{"question_id": 1, "score": 3}])
    _write_jsonl(gpt35 / "answer_aa-vs-answer_zz-gpt35-reviewer_threeclass.jsonl", [{"question_id": 1, "score": 2}])
    return tmp_path


def test_prd_logic_on_a_tiny_folder(tiny_prd):
    frame = load_prd_vicuna80(tiny_prd)
    assert len(frame) == 1
    r = frame.iloc[0]
    assert (r.query_id, r.question_id, r.query_text, r.category) == ("vicuna-1", 1, "Q one?", "generic")
    assert (r.model_p, r.model_a, r.pair) == ("aa", "zz", "aa|zz")
    assert (r.gold_gain, r.n_gold_votes, r.pref_gain, r.n_pref_votes) == (0.0, 3, 0.0, 2)
    assert r.pref_gain_2 == pytest.approx(-0.25)
    assert frame.attrs["dropped"] == {"human votes whose score is not 1, 2 or 3": 1,
                                      "(question, pair) with human votes but no gpt4 verdict": 1}
    # GPT-3.5 as the primary judge, GPT-4 second
    frame = load_prd_vicuna80(tiny_prd, judge="gpt35")
    assert (frame.iloc[0].pref_gain, frame.iloc[0].n_pref_votes, frame.iloc[0].pref_gain_2) == (-0.25, 3, 0.0)


def test_prd_missing_parts_are_named(tiny_prd, tmp_path_factory):
    for d in (tiny_prd / "ratings-gpt35").iterdir():
        d.unlink()
    (tiny_prd / "ratings-gpt35").rmdir()
    assert load_prd_vicuna80(tiny_prd)["pref_gain_2"].isna().all()  # second judge optional
    with pytest.raises(DataError, match="ratings-claude"):
        load_prd_vicuna80(tiny_prd, judge="claude")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataError, match="vicuna_questions.jsonl not found"):
        load_prd_vicuna80(empty)


# ---------------------------------------------------------------------------- default_data_dir
def test_default_data_dir_is_the_env_var_only(monkeypatch, tmp_path):
    monkeypatch.setenv("CAUSAL_ROUTER_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("CAUSAL_ROUTER_DATA")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")  # a ../shared/data beside the working directory is not read
    assert default_data_dir() is None
    monkeypatch.setenv("CAUSAL_ROUTER_DATA", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="CAUSAL_ROUTER_DATA=.*absent is not a directory"):
        default_data_dir()




# ---------------------------------------------------------------------------- the bundled copy
def test_bundled_copy_is_identical_to_the_raw_files():
    """Both routes give the same frame, floats bit for bit, and the same attrs (drops, judges)."""
    _assert_identical(_bundled_copy(load_pandalm), load_pandalm(_real("pandalm")))
    for judge in PRD_JUDGES:
        _assert_identical(_bundled_copy(load_prd_vicuna80, judge=judge),
                          load_prd_vicuna80(_real("prd_vicuna80"), judge=judge))


def test_where_the_data_are_read_from(tiny_pandalm, monkeypatch, tmp_path_factory):
    """Precedence: explicit path > $CAUSAL_ROUTER_DATA/<name> > the bundled copy."""
    monkeypatch.delenv("CAUSAL_ROUTER_DATA", raising=False)
    assert len(load_pandalm()) == 974                        # bundled
    root = tiny_pandalm.parent
    tiny_pandalm.rename(root / "pandalm")
    monkeypatch.setenv("CAUSAL_ROUTER_DATA", str(root))
    assert load_pandalm()["item_id"].tolist() == [0, 1, 5]   # the env var's raw files
    other = tmp_path_factory.mktemp("elsewhere")
    with pytest.raises(DataError, match="PandaLM folder not found"):
        load_pandalm(other / "nope")                         # an explicit path wins over the env var
    # an env var without the data set's folder fails loudly instead of falling back
    with pytest.raises(DataError, match="CAUSAL_ROUTER_DATA=.* holds no prd_vicuna80/ folder.*unset it"):
        load_prd_vicuna80()


def _write_bundle(folder, tables):
    manifest = {"format": 1, "tables": {}}
    for name, (table, extra) in tables.items():
        manifest["tables"][name] = {**_bundled.write_table(table, folder, name), **extra}
    (folder / _bundled.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def test_bundle_round_trip_on_tiny_folders(tiny_pandalm, tiny_prd, tmp_path_factory):
    """The build script's path on hand-made data: NaN, 2/3, -0.25, texts with newlines."""
    pandalm = load_pandalm(tiny_pandalm)
    prd = {j: load_prd_vicuna80(tiny_prd, judge=j) for j in ("gpt4", "gpt35")}
    wide = _bundled.prd_wide(prd)
    assert list(wide.columns[wide.columns.str.startswith("pref_gain")]) == ["pref_gain_gpt4", "pref_gain_gpt35"]
    assert "pref_gain_2" not in wide and len(wide) == 1
    out = tmp_path_factory.mktemp("bundle")
    _write_bundle(out, {"pandalm": (pandalm, {}), "prd_vicuna80": (wide, {})})
    back, entry = _bundled.read_table("pandalm", out)
    back.attrs = pandalm.attrs
    _assert_identical(back, pandalm)
    assert entry["dtypes"]["item_id"] == "int64" and entry["rows"] == 3
    wide_back, _ = _bundled.read_table("prd_vicuna80", out)
    for judge, second in (("gpt4", "gpt35"), ("gpt35", "gpt4")):
        back = _bundled.prd_for_judge(wide_back, judge, second)
        back.attrs = prd[judge].attrs
        _assert_identical(back, prd[judge])
    with pytest.raises(DataError, match="no verdicts of judge 'claude'"):
        _bundled.prd_for_judge(wide_back, "claude", "gpt4")


def test_bundled_table_keeps_awkward_values_exactly(tmp_path):
    frame = pd.DataFrame({
        "text": ["NA", "", 'say "hi", then\nleave', "好 ", "null"],
        "n": np.array([0, -1, 2**40, 3, 4], dtype=np.int64),
        "x": [1 / 3, -0.0, np.nan, 0.1 + 0.2, 5e-324],
        "k": pd.array([1, None, 3, 4, 5], dtype="Int64"),
    })
    _write_bundle(tmp_path, {"pandalm": (frame, {})})
    back, _ = _bundled.read_table("pandalm", tmp_path)
    _assert_identical(back, frame)
    first = (tmp_path / "pandalm.csv.gz").read_bytes()
    _write_bundle(tmp_path, {"pandalm": (frame, {})})
    assert (tmp_path / "pandalm.csv.gz").read_bytes() == first  # deterministic bytes
    with pytest.raises(DataError, match="column 'text' has missing text values"):
        _bundled.write_table(frame.assign(text=["a", None, "b", "c", "d"]), tmp_path, "pandalm")


def test_missing_or_altered_bundled_copy_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CAUSAL_ROUTER_DATA", raising=False)
    monkeypatch.setattr(_bundled, "DATA", tmp_path)
    with pytest.raises(DataError, match="bundled real data are missing.*reinstall"):
        load_pandalm()
    _write_bundle(tmp_path, {"pandalm": (pd.DataFrame({"a": [1.0]}), {})})
    table = tmp_path / "pandalm.csv.gz"
    payload = table.read_bytes()
    table.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))  # one bit flipped
    with pytest.raises(DataError, match="does not match the checksum in manifest.json"):
        _bundled.read_table("pandalm")
    table.unlink()
    with pytest.raises(DataError, match="bundled copy of pandalm is missing"):
        _bundled.read_table("pandalm")


def test_bundled_copy_ships_its_licences_and_notice():
    """Each table names its upstream licence file, shipped beside it, and the NOTICE names both sources."""
    manifest = _bundled.read_manifest()
    expected = {"pandalm": ("Apache-2.0", "Apache License"), "prd_vicuna80": ("MIT", "MIT License")}
    for name, (spdx, title) in expected.items():
        entry = manifest["tables"][name]
        assert entry["upstream"]["licence"] == spdx
        assert (_bundled.DATA / entry["licence_file"]).read_text(encoding="utf-8").lstrip().startswith(title)
        assert entry["sha256"] and entry["upstream"]["sha256_of_sha256sum_listing"]
    notice = (_bundled.DATA / "NOTICE").read_text(encoding="utf-8")
    assert "github.com/WeOpenML/PandaLM" in notice and "github.com/bcdnlp/PRD" in notice
    assert set(manifest["tables"]["prd_vicuna80"]["dropped"]) == set(PRD_JUDGES)
