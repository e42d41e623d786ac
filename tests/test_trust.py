"""A hostile or careless user (issue 12): router files that cannot run code, predictions that cannot
be silently wrong, errors that say what happened. Each test failed on the code before the fix."""

import json
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMRegressor

from causal_router import BiasEstimator, EvalData, MetaRouter
from causal_router._compiled import compile_lightgbm
from causal_router.models import STACK_CANDIDATES
from causal_router._validation import DataError
from causal_router.baselines import Pooled
from causal_router.cli import main
from causal_router.data import scale_constant
from causal_router.datasets import make_semi_synthetic, reveal_split
from causal_router.router import RoutingWarning


class _Payload:
    """Unpickling this creates a marker file: stands in for ``os.system`` in a hostile pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def small():
    frame = make_semi_synthetic(1200, 12, random_state=5)
    return reveal_split(frame, n_gold=150, n_test=300, random_state=5)


@pytest.fixture(scope="module")
def router(small):
    """Fitted on named features (a DataFrame, as the command line fits): feature_names_in_ x0 .. x11."""
    return MetaRouter(random_state=0).fit(EvalData.from_frame(small.train.to_frame(), small.train.feature_names))


@pytest.fixture(scope="module")
def files(tmp_path_factory, small, router):
    folder = tmp_path_factory.mktemp("trust")
    small.train.to_frame().to_csv(folder / "train.csv", index=False)
    test = pd.DataFrame(small.test_X, columns=small.train.feature_names)
    test["gold_gain"] = small.test_gold
    test["qid"] = [f"q{i}" for i in range(len(test))]
    test.to_csv(folder / "test.csv", index=False)
    router.save(folder / "router.cr")
    return folder


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------- 1. router files
def test_a_pickle_is_never_unpickled_by_load_or_the_cli(tmp_path, files, capsys):
    evil = tmp_path / "evil.joblib"
    marker = tmp_path / "payload-ran"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(DataError, match="not a causal_router router file"):
        MetaRouter.load(evil)
    for argv in (["route", files / "test.csv", "--router", evil, "--out", tmp_path / "r.csv"],
                 ["evaluate", files / "test.csv", "--router", evil, "--gold-gain", "gold_gain"]):
        code, _, err = _run(argv, capsys)
        assert code == 2 and "not a causal_router router file" in err
    assert not marker.exists()


def test_a_router_file_is_a_zip_of_json_and_lightgbm_text(files):
    with zipfile.ZipFile(files / "router.cr") as zf:
        names = set(zf.namelist())
        header = json.loads(zf.read("router.json"))
    assert names == {"router.json", "models/gain_model.txt"}
    assert header["router"] == "MetaRouter" and header["format"] == "causal_router.router"
    assert header["fitted"]["feature_names_in"] == [f"x{j}" for j in range(12)]


def test_version_mismatch_warns_and_the_cli_prints_it(tmp_path, files, capsys):
    edited = tmp_path / "other_versions.cr"
    with zipfile.ZipFile(files / "router.cr") as src, zipfile.ZipFile(edited, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "router.json":
                header = json.loads(data)
                header["versions"]["lightgbm"] = "0.0"
                data = json.dumps(header)
            dst.writestr(name, data)
    with pytest.warns(UserWarning, match="other library versions"):
        MetaRouter.load(edited)
    code, _, err = _run(["route", files / "test.csv", "--router", edited, "--out", tmp_path / "r.csv"], capsys)
    assert code == 0
    assert "causal-router: warning: UserWarning: router file" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- 2. feature names
def test_columns_are_matched_by_name(small, router):
    X = pd.DataFrame(small.test_X, columns=small.train.feature_names)
    np.testing.assert_array_equal(router.route(X[X.columns[::-1]], cost_weight=0.2), router.route(X, cost_weight=0.2))
    with pytest.raises(DataError, match=r"missing \['x0'\], unexpected \['zz'\]"):
        router.predict_gain(X.rename(columns={"x0": "zz"}))
    with pytest.warns(UserWarning, match="X does not have valid feature names"), \
            pytest.raises(DataError, match="X has 11 features, but MetaRouter is expecting 12 features as input"):
        router.predict_gain(small.test_X[:, :11])


def test_cli_features_in_another_order_are_matched_by_name(tmp_path, files, capsys):
    names = [f"x{j}" for j in range(12)]
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert _run(["route", files / "test.csv", "--router", files / "router.cr", "--out", out_a], capsys)[0] == 0
    assert _run(["route", files / "test.csv", "--router", files / "router.cr", "--features", ",".join(names[::-1]),
                 "--out", out_b], capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(out_a), pd.read_csv(out_b))
    code, _, err = _run(["route", files / "test.csv", "--router", files / "router.cr", "--features",
                         ",".join(names[:6] + ["gold_gain"] * 6), "--out", out_b], capsys)
    assert code == 2 and "but not all of them" in err


# ---------------------------------------------------------------------------- 3. compiled trees
@pytest.mark.parametrize("params", [{"boosting_type": "rf", "subsample": 0.8, "subsample_freq": 1},
                                    {"reg_sqrt": True}, {"linear_tree": True}, {"boosting_type": "dart"}])
def test_models_the_kernel_does_not_reproduce_are_not_compiled(small, params):
    X, y = small.train.X, np.abs(small.train.gain)
    model = LGBMRegressor(n_estimators=20, verbose=-1, **params).fit(X, y)
    assert compile_lightgbm(model) is None  # before: max differences 116.6 (rf), 3.53 (sqrt), 1.09 (linear)
    routed = MetaRouter(outcome_model=model, random_state=0).fit(small.train)
    np.testing.assert_allclose(routed.predict_gain(small.test_X),
                               routed.gain_model_.predict(small.test_X) / routed.scale_, rtol=0, atol=0)


def test_values_at_lightgbm_zero_threshold_are_reproduced(router, small):
    X = small.test_X.copy()
    X[:, :] = np.where(np.random.default_rng(0).random(X.shape) < 0.3, 1e-36, X)
    direct = router.gain_model_.predict(X) / router.scale_
    np.testing.assert_array_equal(router.predict_gain(X), direct)


# ---------------------------------------------------------------------------- 4. the label as a feature
@pytest.mark.parametrize("argv,message", [
    (["--features", "x0,x1,gain"], "label, source or id"),
    (["--features", "x0,gold_gain"], "equals the label 'gain' on every gold row"),
    (["--feature-prefix", "g"], "equals the label 'gain' on every gold row"),
])
def test_the_label_cannot_be_a_feature(tmp_path, small, capsys, argv, message):
    frame = small.train.to_frame()
    frame["gold_gain"] = np.where(frame["source"] == "gold", frame["gain"], 0.0)
    frame.to_csv(tmp_path / "train.csv", index=False)
    code, _, err = _run(["fit", tmp_path / "train.csv", *argv, "--out", tmp_path / "r.cr"], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "r.cr").exists()


def test_an_empty_prefix_takes_the_numeric_features_only(tmp_path, small, capsys):
    small.train.to_frame().to_csv(tmp_path / "train.csv", index=False)
    code, out, _ = _run(["fit", tmp_path / "train.csv", "--feature-prefix", "", "--out", tmp_path / "r.cr"], capsys)
    assert code == 0 and "fitted on 150 gold" in out
    assert list(MetaRouter.load(tmp_path / "r.cr").feature_names_in_) == [f"x{j}" for j in range(12)]


# ---------------------------------------------------------------------------- 5. ranges
def test_values_whose_squares_overflow_are_refused(small):
    data = small.train
    X = data.X.copy()
    X[3, 7] = 1e300
    with pytest.raises(DataError, match="magnitude above 1e\\+100.*'x7'"):
        EvalData(pd.DataFrame(X, columns=data.feature_names), data.gain, data.is_gold)
    gain = data.gain.copy()
    gain[0] = 1e300
    with pytest.raises(DataError, match="gain has 1 value.*magnitude above"):
        EvalData(data.X, gain, data.is_gold)


# ---------------------------------------------------------------------------- 6. outputs
def test_outputs_are_checked_before_the_work(tmp_path, files, capsys, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("the fit started before the output was checked")

    monkeypatch.setattr(MetaRouter, "fit", no_fit)
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file.txt").write_text("x")
    cases = [
        (["fit", files / "train.csv", "--out", tmp_path / "a_dir"], "is a directory"),
        (["fit", files / "train.csv", "--out", tmp_path / "missing" / "r.cr"], "does not exist"),
        (["fit", files / "train.csv", "--out", files / "train.csv"], "is the input file"),
        (["route", files / "test.csv", "--router", files / "router.cr", "--out", tmp_path / "missing" / "s" / "r.csv"],
         "does not exist"),
        (["route", files / "test.csv", "--router", files / "router.cr", "--out", tmp_path / "a_dir"], "is a directory"),
        (["route", files / "test.csv", "--router", files / "router.cr", "--out", tmp_path / "r.xlsx"],
         "unsupported extension '.xlsx'"),
        (["route", files / "test.csv", "--router", files / "router.cr", "--out", files / "test.csv"],
         "is the input file"),
        (["demo", "--out", tmp_path / "a_file.txt"], "is a file"),
    ]
    for argv, message in cases:
        code, _, err = _run(argv, capsys)
        assert code == 2 and message in err, (argv, err)
        assert "Traceback" not in err


def test_route_writes_the_format_its_extension_names(tmp_path, files, capsys):
    out = tmp_path / "routes.json"
    code, _, _ = _run(["route", files / "test.csv", "--router", files / "router.cr", "--id-column", "qid",
                       "--out", out], capsys)
    assert code == 0
    records = json.loads(out.read_text())
    assert len(records) == 300 and set(records[0]) == {"qid", "predicted_gain", "route_primary"}


# ---------------------------------------------------------------------------- 8. silent mistakes
def test_misaligned_indexes_duplicate_names_and_complex_values_are_refused(small):
    data = small.train
    X = pd.DataFrame(data.X, columns=data.feature_names)
    gain = pd.Series(data.gain, index=X.index[::-1])
    with pytest.raises(DataError, match="different row indexes"):
        EvalData(X, gain, data.is_gold)
    dup = X.set_axis([*data.feature_names[:-1], "x0"], axis=1)
    with pytest.raises(DataError, match=r"repeat the name\(s\) \['x0'\]"):
        EvalData(dup, data.gain, data.is_gold)
    with pytest.raises(DataError, match="complex values"):
        EvalData(data.X.astype(complex) + 1j, data.gain, data.is_gold)


def test_nan_cost_weight_and_tied_predictions(tmp_path, files, small, router, capsys):
    code, _, err = _run(["route", files / "test.csv", "--router", files / "router.cr", "--cost-weight", "nan",
                         "--out", tmp_path / "r.csv"], capsys)
    assert code == 2 and "argument --cost-weight: must be a finite number >= 0, got 'nan'" in err  # before the routing
    constant = MetaRouter(outcome_model=LGBMRegressor(n_estimators=1, min_child_samples=10_000, verbose=-1),
                          random_state=0).fit(small.train)
    gain = constant.predict_gain(small.test_X)
    assert np.all(gain == gain[0]) and gain[0] > 0  # one value for every query
    with pytest.warns(RoutingWarning, match="0 are sent"):
        w = constant.threshold_for_share(small.test_X, 0.3)
    assert constant.route(small.test_X, cost_weight=w).sum() == 0


# ---------------------------------------------------------------------------- 9. messages
def test_errors_say_what_happened(tmp_path, files, small, capsys):
    (tmp_path / "empty.csv").write_text("x0,gain,source\n")
    frame = small.train.to_frame()
    frame.to_csv(tmp_path / "semicolon.csv", index=False, sep=";")
    one_gold = frame.copy()
    one_gold["source"] = np.where(np.arange(len(frame)) == 0, "gold", "preference")
    one_gold.to_csv(tmp_path / "one_gold.csv", index=False)
    text_gold = pd.read_csv(files / "test.csv").assign(gold_gain="high")
    text_gold.to_csv(tmp_path / "text_gold.csv", index=False)
    cases = [
        (["fit", tmp_path / "empty.csv", "--out", tmp_path / "r.cr"], "has no rows"),
        (["fit", tmp_path / "semicolon.csv", "--out", tmp_path / "r.cr"], "looks delimited by ';'"),
        (["fit", tmp_path / "one_gold.csv", "--out", tmp_path / "r.cr"], "too few gold rows"),
        (["route", files / "test.csv", "--router", files / "router.cr", "--id-column", "nope",
          "--out", tmp_path / "r.csv"], "missing column(s) ['nope']"),
        (["evaluate", tmp_path / "text_gold.csv", "--router", files / "router.cr", "--gold-gain", "gold_gain"],
         "column 'gold_gain' must be numeric"),
        (["fit", files / "train.csv", "--features", "x0,nope", "--out", tmp_path / "r.cr"], "'x11'"),
    ]
    for argv, message in cases:
        code, _, err = _run(argv, capsys)
        assert code == 2 and message in err, (argv, err)
    assert not (tmp_path / "r.csv").exists()


def test_evaluate_prints_valid_json_without_nan(tmp_path, files, capsys):
    test = pd.read_csv(files / "test.csv")
    test["gold_gain"] = 0.0  # constant gold gains: the normalised metrics are undefined (NaN before)
    test.to_csv(tmp_path / "flat.csv", index=False)
    code, out, _ = _run(["evaluate", tmp_path / "flat.csv", "--router", files / "router.cr",
                         "--gold-gain", "gold_gain"], capsys)
    assert code == 0

    def refuse(constant):
        raise AssertionError(f"invalid JSON constant {constant}")

    result = json.loads(out, parse_constant=refuse)
    assert result["oracle_share"] is None


def test_parquet_without_pyarrow_says_which_extra(tmp_path, monkeypatch):
    import importlib.util

    from causal_router.io import read_table

    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(DataError, match=r"causal_router\[parquet\]"):
        read_table(tmp_path / "t.parquet")


# ---------------------------------------------------------------------------- 10-12
def test_auto_learner_with_bootstrap_intervals(small):
    data = small.train.subset(np.arange(600))
    est = BiasEstimator("auto", inference="bootstrap", cv=2, random_state=0).fit(data)
    lower, upper = est.effect_interval(small.test_X[:20])
    assert np.all(lower <= upper) and est.final_stage_ in STACK_CANDIDATES
    # measured on this fixture (generator seed 5, first 600 training rows, random_state=0; the
    # stack chose "linear"): 95% intervals 0.43-0.91 wide (median 0.59), 99% 0.53-1.17
    width = upper - lower
    assert np.all(np.isfinite(width)) and np.all(width > 0.2) and np.all(width < 1.5), width
    lower99, upper99 = est.effect_interval(small.test_X[:20], alpha=0.01)
    assert np.all(lower99 <= lower) and np.all(upper <= upper99) and np.mean(upper99 - lower99) > np.mean(width)


def test_the_scale_is_fitted_on_the_rows_the_estimator_sees(small):
    data = small.train
    part = data.subset(np.arange(300))
    expected = scale_constant(part.gain[part.is_gold], part.gain[~part.is_gold])
    assert Pooled().fit(part).scale_ == pytest.approx(expected)
    assert abs(expected - Pooled().fit(data).scale_) > 0.01  # the subset's own constant, not the full data's


def test_long_commands_report_progress_on_stderr(tmp_path, files, capsys):
    code, _, err = _run(["-v", "fit", files / "train.csv", "--out", tmp_path / "r.cr"], capsys)
    assert code == 0
    assert "read 1200 rows" not in err  # the training file has 900 rows (300 held out)
    assert "read 900 rows" in err and "fitting the bias model" in err and "saving the router" in err


def test_no_warning_is_silenced_globally():
    before = list(warnings.filters)
    assert main(["fit"]) == 2
    assert warnings.filters == before
