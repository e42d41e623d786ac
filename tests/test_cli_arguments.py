"""Every command checks its arguments before the work starts and reports one line with exit code 2
(issue 26, item 6): one test per class of bad argument, each checked on the commands that take it."""

import gzip
import importlib.util
import socket

import numpy as np
import pandas as pd
import pytest

import causal_router.io
from causal_router import MetaRouter
from causal_router.cli import MAX_ERROR_LENGTH, main
from causal_router.datasets import make_semi_synthetic, reveal_split
from causal_router.router import BaseRouter


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("arguments")
    split = reveal_split(make_semi_synthetic(700, 12, random_state=4), n_gold=120, n_test=100, random_state=4)
    split.train.to_frame().to_csv(folder / "train.csv", index=False)
    return folder


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if a command reads data, loads a router or fits anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("the work started before the arguments were checked")

    import causal_router.cli.commands as commands
    import causal_router.cli.options as options

    monkeypatch.setattr(options, "read_table", refuse)
    monkeypatch.setattr(commands, "read_data", refuse)
    monkeypatch.setattr(BaseRouter, "load", refuse)
    monkeypatch.setattr(causal_router.io, "load_router", refuse)
    monkeypatch.setattr(MetaRouter, "fit", refuse)
    monkeypatch.setattr(commands, "_experiment_data", refuse)
    monkeypatch.setattr(commands, "load_input", refuse)


def _fails(argv, fragment, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.startswith("causal-router: error: ") and err.count("\n") == 1, err
    assert fragment in err, (argv, err)
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------------------- numbers and ranges
@pytest.mark.parametrize("argv, fragment", [
    (["fit", "{d}", "--seed", "-1"], "argument --seed: must be an integer from 0 to 2147483647, got '-1'"),  # before:
    (["demo", "--seed", "-1"], "argument --seed: must be an integer from 0"),   # a traceback after the whole fit
    (["experiment", "--seed", "4294967296"], "argument --seed: must be an integer from 0"),
    (["suggest-gold", "{d}", "--budget", "5", "--seed", "1.5"], "argument --seed: must be an integer"),
    (["plan-gold", "{d}", "--target-ci-width", "0.1", "--seed", "x"], "argument --seed: must be an integer"),
    (["fit", "{d}", "--cv", "1"], "argument --cv: must be an integer >= 2, got '1'"),
    (["fit-multi", "{d}", "--model-a", "a", "--model-b", "b", "--cv", "0"], "argument --cv: must be an integer >= 2"),
    (["fit", "{d}", "--text", "q", "--text-components", "0"], "argument --text-components: must be an integer >= 1"),
    (["demo", "--n-gold", "0"], "argument --n-gold: must be an integer >= 1"),
    (["experiment", "--runs", "0"], "argument --runs: must be an integer >= 1"),
    (["experiment", "--n", "1e3"], "argument --n: must be an integer >= 2, got '1e3'"),
    (["diagnose", "--n", "-5"], "argument --n: must be an integer >= 2"),
    (["suggest-gold", "{d}", "--budget", "0"], "argument --budget: must be an integer >= 1"),
    (["fit", "{d}", "--seed", "1" * 5000], "argument --seed: must be an integer from 0"),  # no int-conversion limit
])
def test_integers_out_of_range(files, no_work, capsys, argv, fragment):
    _fails([a.format(d=files / "train.csv") for a in argv], fragment, capsys)


@pytest.mark.parametrize("argv, fragment", [
    (["route", "{d}", "--router", "r.cr", "--cost-weight", "nan"], "argument --cost-weight: must be a finite number >= 0"),
    (["route", "{d}", "--router", "r.cr", "--cost-weight", "-0.5"], "argument --cost-weight: must be a finite number >= 0"),
    (["evaluate", "{d}", "--router", "r.cr", "--gold-gain", "g", "--cost-weight", "inf"], "must be a finite number"),
    (["route", "{d}", "--router", "r.cr", "--primary-share", "1.5"],
     "argument --primary-share: must be a finite number from 0 to 1, got '1.5'"),
    (["route", "{d}", "--router", "r.cr", "--primary-share", "high"], "argument --primary-share: must be a finite"),
    (["fit", "{d}", "--preference-weight", "-1"],
     "argument --preference-weight: must be 'auto' or a finite number >= 0, got '-1'"),
    (["fit", "{d}", "--preference-weight", "Auto"], "argument --preference-weight: must be 'auto' or a finite number"),
    (["plan-gold", "{d}", "--target-ci-width", "0"], "argument --target-ci-width: must be a finite number > 0"),
    (["plan-gold", "{d}", "--target-oracle-share", "1.2"], "argument --target-oracle-share: must be a finite number"),
])
def test_numbers_that_are_not_finite_or_out_of_range(files, no_work, capsys, argv, fragment):
    _fails([a.format(d=files / "train.csv") for a in argv], fragment, capsys)


@pytest.mark.parametrize("argv", [["experiment", "--n-jobs", "0"], ["diagnose", "--n-jobs", "0"],
                                  ["refute", "--n-jobs", "0"], ["plan-gold", "d.csv", "--n-jobs", "0"]])
def test_n_jobs_zero(no_work, capsys, argv):
    # before: "n_jobs == 0 in Parallel has no meaning" as a traceback
    _fails(argv, "argument --n-jobs: must be a nonzero integer (1: one process, -1: every core), got '0'", capsys)


@pytest.mark.parametrize("value", ["99999", "0", "-1", "http"])
def test_ports_out_of_range(no_work, capsys, value):
    _fails(["serve", "--router", "r.cr", "--port", value], "argument --port: must be an integer from 1 to 65535", capsys)


def test_the_body_limit_is_a_positive_integer(no_work, capsys):
    _fails(["serve", "--router", "r.cr", "--max-body-bytes", "0"], "argument --max-body-bytes: must be an integer >= 1",
           capsys)


# ---------------------------------------------------------------------------- lists, choices, combinations
@pytest.mark.parametrize("costs, fragment", [
    ("a=1,b=2,a=3", "argument --costs: model 'a' is given twice; give one cost per model"),  # before: a = 3 silently
    ("a=1,b", "argument --costs: 'b' is not MODEL=COST"),
    ("a=1,=2", "argument --costs: '=2' is not MODEL=COST"),
    ("a=1,b=nan", "argument --costs: the cost of 'b' must be a finite number, got 'nan'"),
])
def test_costs(files, no_work, capsys, costs, fragment):
    _fails(["route", files / "train.csv", "--router", "r.cr", "--costs", costs], fragment, capsys)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
@pytest.mark.parametrize("command", ["experiment", "refute"])
def test_ray_backend_without_ray(no_work, capsys, command):
    # before: ModuleNotFoundError traceback (experiment: after the data were featurized)
    _fails([command, "--backend", "ray"], "argument --backend: ray needs Ray, which is not installed", capsys)


@pytest.mark.parametrize("argv, fragment", [
    (["experiment", "--ray-address", "auto"], "--ray-address applies to --backend ray"),
    (["experiment", "--methods", "meta_r,nope"], "--methods: unknown method(s) ['nope']; choose from"),
    (["experiment", "--methods", " , "], "--methods is empty"),
    (["refute", "--ray-address", "auto"], "--ray-address applies to --backend ray"),
    (["fit", "d.csv", "--learner", "x"], "argument --learner: invalid choice: 'x'"),
    (["route", "d.csv"], "the following arguments are required: --router (see causal-router route --help)"),
    (["nope"], "argument command: invalid choice: 'nope'"),
])
def test_choices_and_combinations(tmp_path, monkeypatch, no_work, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    _fails(argv, fragment, capsys)


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is not None, reason="[embed] is installed")
def test_a_missing_extra_is_named_before_the_data_are_read(files, no_work, capsys):
    # before: an ImportError traceback after the file was read
    _fails(["fit", files / "train.csv", "--text", "q", "--text-method", "minilm"],
           "--text-method minilm: TextFeaturizer(method='minilm') embeds text", capsys)


def test_experiment_sizes_are_checked_against_the_data_before_the_runs(tmp_path, monkeypatch, capsys):
    import causal_router.experiment as experiment

    def no_runs(*args, **kwargs):
        raise AssertionError("the runs started before the sizes were checked")

    monkeypatch.setattr(experiment, "run_experiment", no_runs)
    # PRD Vicuna80 (bundled): 800 rows over 80 questions with the default judge; whole questions held out
    # by default, rows with --split-by row
    _fails(["experiment", "--dataset", "prd", "--n-gold", "100", "--n-test", "200", "--text-components", "5",
            "--out", tmp_path / "e"], "n_test=200 must be a positive number of test queries below the 80 queries",
           capsys)
    _fails(["experiment", "--dataset", "prd", "--split-by", "queries", "--out", tmp_path / "e"],
           "argument --split-by: invalid choice: 'queries' (choose from 'query', 'row')", capsys)
    _fails(["experiment", "--dataset", "prd", "--n-gold", "700", "--n-test", "200", "--split-by", "row",
            "--text-components", "5", "--out", tmp_path / "e"],
           "n_test=200 and n_gold=700 must be positive and leave preference rows among the 800 rows", capsys)


# ---------------------------------------------------------------------------- files
def test_a_truncated_gzip_file(tmp_path, files, capsys):
    data = gzip.compress((files / "train.csv").read_bytes())
    (tmp_path / "train.csv.gz").write_bytes(data[: len(data) // 2])
    # before: EOFError traceback
    err = _fails(["fit", tmp_path / "train.csv.gz", "--out", tmp_path / "r.cr"], "could not read", capsys)
    assert "train.csv.gz as csv" in err and "truncated or damaged" in err
    assert not (tmp_path / "r.cr").exists()


def test_a_wrong_column_in_a_wide_file_gives_a_short_line(tmp_path, files, capsys):
    train = pd.read_csv(files / "train.csv")
    wide = pd.concat([train, pd.DataFrame(np.zeros((len(train), 20_000)), columns=[f"w{i}" for i in range(20_000)])],
                     axis=1)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    # before: a 1 MB line listing every column
    err = _fails(["fit", tmp_path / "wide.csv", "--features", "x0,x1,w1234o", "--out", tmp_path / "r.cr"],
                 "missing column(s) ['w1234o'] (for 'w1234o' did you mean ['w1234'", capsys)
    # 20,015 columns: x0-x11, gain, source, query_id (the split's rows keep their query ids) and w0-w19999
    assert len(err) < 600 and "available columns (20015): ['x0', 'x1'" in err and "(19995 more)]" in err


def test_every_error_line_is_capped(monkeypatch, capsys):
    import causal_router.cli.commands as commands
    from causal_router._validation import DataError

    def long_error(args):
        raise DataError("x" * 50_000)

    monkeypatch.setattr(commands, "demo", long_error)  # the parser takes the command when it is built
    err = _fails(["demo"], "x" * 100, capsys)
    assert len(err) < MAX_ERROR_LENGTH + 100 and "(49000 more characters)" in err


# ---------------------------------------------------------------------------- the server's startup
def test_serve_refuses_a_port_in_use_before_loading_the_router(no_work, capsys):
    pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # before: exit 3 after the router was loaded, with several uvicorn log lines
        _fails(["serve", "--router", "r.cr", "--port", port], f"cannot serve on 127.0.0.1:{port}: Address already in use",
               capsys)


@pytest.mark.parametrize("host", ["no-such-host.invalid", "999.1.1.1"])
def test_serve_refuses_a_host_that_does_not_resolve(no_work, capsys, host):
    pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
    _fails(["serve", "--router", "r.cr", "--host", host], f"cannot serve on host {host!r}", capsys)


def test_the_largest_seed_runs(tmp_path, files, capsys):
    code = main(["fit", str(files / "train.csv"), "--cv", "2", "--seed", "2147483647", "--out", str(tmp_path / "r.cr")])
    assert code == 0, capsys.readouterr().err
