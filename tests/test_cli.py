"""The causal-router command: the demo, fit / route / evaluate on a user's file, exit code 2."""

import json

import pandas as pd
import pytest

from causal_router.cli import main
from causal_router.datasets import make_semi_synthetic, reveal_split


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    frame = make_semi_synthetic(1500, 12, random_state=3)
    split = reveal_split(frame, n_gold=150, n_test=300, random_state=3)
    train = split.train.to_frame()
    train.to_csv(folder / "train.csv", index=False)
    test = pd.DataFrame(split.test_X, columns=split.train.feature_names)
    test["gold_gain"] = split.test_gold
    test["qid"] = [f"t{i}" for i in range(len(test))]
    test.to_parquet(folder / "test.parquet", index=False)
    return folder


def test_demo_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--n", "1500", "--d", "20", "--n-test", "300", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "meta_r" in printed and "pooled" in printed and "all_golden" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"meta_auto", "meta_r", "meta_dr", "pooled", "gold_only", "mean_shift", "random"} <= set(metrics["methods"])
    assert "bias_ate" in metrics["methods"]["meta_r"]
    assert (out / "efficiency_gain.png").stat().st_size > 10_000
    assert (out / "oracle_share.png").exists()


def test_fit_route_evaluate_on_user_files(user_files, capsys):
    router = user_files / "router.joblib"
    assert main(["fit", str(user_files / "train.csv"), "--learner", "r", "--out", str(router)]) == 0
    assert "average bias" in capsys.readouterr().out
    routes = user_files / "routes.csv"
    assert main(["route", str(user_files / "test.parquet"), "--router", str(router), "--primary-share", "0.3",
                 "--id-column", "qid", "--out", str(routes)]) == 0
    out = pd.read_csv(routes)
    assert list(out.columns) == ["qid", "predicted_gain", "route_primary"]
    assert out["route_primary"].sum() == 90
    capsys.readouterr()
    assert main(["evaluate", str(user_files / "test.parquet"), "--router", str(router),
                 "--gold-gain", "gold_gain"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["oracle_share"] > 0.1 and "routing_value" in result


@pytest.mark.parametrize("argv,message", [
    (["fit", "missing.csv"], "no such file"),
    (["fit", "{train}", "--features", "x0,nope"], "missing column(s) ['nope']"),
    (["fit", "{train}", "--gold-value", "expert"], "unknown source labels"),
    (["fit", "{train}", "--feature-prefix", "zzz"], "no column starts with"),
    (["route", "{train}", "--router", "{train}"], "not a causal_router router file"),
    (["evaluate", "{test}", "--router", "nothere.joblib", "--gold-gain", "gold_gain"], "no router file"),
    (["experiment", "--dataset", "pandalm", "--data-dir", "nowhere"], "PandaLM folder not found"),
])
def test_bad_input_gives_one_line_and_exit_code_2(user_files, capsys, argv, message):
    argv = [a.format(train=user_files / "train.csv", test=user_files / "test.parquet") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("causal-router: error:") and message.lower() in err.lower()
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_experiment_runs_on_the_bundled_real_data(tmp_path, monkeypatch):
    """Without --data-dir or CAUSAL_ROUTER_DATA, `experiment --dataset prd` reads the copy in the package."""
    monkeypatch.delenv("CAUSAL_ROUTER_DATA", raising=False)
    out = tmp_path / "experiment"
    argv = ["experiment", "--dataset", "prd", "--runs", "1", "--methods", "pooled,gold_only",
            "--text-components", "10", "--out", str(out)]
    assert main(argv) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["method"]) == ["gold_only", "pooled"] and runs["oracle_share"].notna().all()


def test_argparse_errors_exit_2(capsys):
    assert main(["fit"]) == 2  # one line, as every other bad argument (it was a usage block and SystemExit)
    err = capsys.readouterr().err
    assert err == ("causal-router: error: the following arguments are required: data (see causal-router fit "
                   "--help)\n")
    with pytest.raises(SystemExit) as info:  # --help still exits through argparse, with 0
        main(["fit", "--help"])
    assert info.value.code == 0


def test_diagnose_reads_the_bias_settings_of_a_router_file(user_files, tmp_path, capsys):
    """diagnose --router: the bias model the router was fitted with (its nested parameters, kept in
    the file); one clear line for a router without one."""
    import argparse

    from causal_router import BiasEstimator, MetaRouter
    from causal_router.baselines import Pooled
    from causal_router.cli.commands import _bias_model

    frame = pd.read_csv(user_files / "train.csv")
    names = [c for c in frame.columns if c.startswith("x")]
    MetaRouter(BiasEstimator("auto", cv=3), scale="amplitude", random_state=0).fit(
        frame[names], frame["gain"], source=frame["source"]).save(tmp_path / "meta.cr")
    Pooled(random_state=0).fit(frame[names], frame["gain"], source=frame["source"]).save(tmp_path / "pooled.cr")
    bias = _bias_model(argparse.Namespace(router=str(tmp_path / "meta.cr"), command="diagnose", seed=4))
    assert (bias.learner, bias.cv, bias.scale, bias.random_state) == ("auto", 3, "amplitude", 4)
    code = main(["diagnose", str(user_files / "train.csv"), "--router", str(tmp_path / "pooled.cr"),
                 "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and "holds a Pooled, which has no bias model to diagnose" in err
