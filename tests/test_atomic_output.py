"""No output is lost (issue 26, item 5): every file is written to a temporary file in its folder and
renamed when complete; a failure (an error, a file-size limit, an interrupt) leaves the previous
file and no temporary; JSON tables keep every float bit for bit."""

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causal_router import MetaRouter
from causal_router.bias import BiasEstimator
from causal_router.cli import main
from causal_router.datasets import make_semi_synthetic, reveal_split
from causal_router.experiment import ExperimentResult
from causal_router.io import atomic_write, read_table, write_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atomic")
    split = reveal_split(make_semi_synthetic(900, 12, random_state=2), n_gold=120, n_test=300, random_state=2)
    split.train.to_frame().to_csv(folder / "train.csv", index=False)
    test = pd.DataFrame(split.test_X, columns=split.train.feature_names)
    test["qid"] = [f"q{i}" for i in range(len(test))]
    test.to_csv(folder / "test.csv", index=False)
    router = MetaRouter(BiasEstimator(cv=2), random_state=0).fit(split.train)
    router.save(folder / "router.cr")
    return folder, router, test


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------- the helper
@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, failure):
    target = tmp_path / "out.csv"
    target.write_text("previous, complete\n")
    with pytest.raises(type(failure)):
        with atomic_write(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith("out.csv") and tmp != target
            tmp.write_text("half of the new")
            raise failure
    assert target.read_text() == "previous, complete\n"
    assert _listing(tmp_path) == ["out.csv"]
    with atomic_write(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n" and _listing(tmp_path) == ["out.csv"]


def test_a_failed_fit_keeps_the_previous_router_and_leaves_no_temporary(tmp_path, files, monkeypatch, capsys):
    folder, _, _ = files
    previous = tmp_path / "prev.cr"
    previous.write_bytes((folder / "router.cr").read_bytes())
    before = previous.read_bytes()
    written = []

    def interrupted(self, name, data, *args, **kwargs):  # the interrupt arrives after the header is written
        written.append(name)
        if len(written) == 2:
            raise KeyboardInterrupt
        return real(self, name, data, *args, **kwargs)

    real = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["fit", str(folder / "train.csv"), "--cv", "2", "--out", str(previous)])
    assert written == ["router.json", "models/gain_model.txt"]
    assert previous.read_bytes() == before  # before: the .tmp was left beside it (prev.cr.tmp)
    assert _listing(tmp_path) == ["prev.cr"]


def test_route_under_a_file_size_limit_keeps_the_previous_output(tmp_path, files):
    """A real failed write: the route command in a process whose file-size limit (RLIMIT_FSIZE,
    SIGXFSZ ignored, as a shell's ulimit -f does) stops the output after 4 KB."""
    resource = pytest.importorskip("resource")
    folder, _, _ = files
    out = tmp_path / "routes.csv"
    assert main(["route", str(folder / "test.csv"), "--router", str(folder / "router.cr"), "--id-column", "qid",
                 "--out", str(out)]) == 0
    complete = out.read_bytes()
    assert len(complete) > 8_000  # 300 rows: twice the limit below

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, 4_000))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "causal_router.cli", "route", str(folder / "test.csv"), "--router",
                           str(folder / "router.cr"), "--primary-share", "0.5", "--out", str(out)],
                          capture_output=True, text=True, env=env, preexec_fn=limit, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == complete  # before: a truncated routes.csv replaced the complete one
    assert _listing(tmp_path) == ["routes.csv"]


def test_report_files_are_written_atomically(tmp_path, monkeypatch):
    result = ExperimentResult(runs=pd.DataFrame({"run": [0], "method": ["pooled"], "oracle_share": [0.5]}),
                              curves=pd.DataFrame({"run": [0], "ratio": [0.2]}),
                              summary=pd.DataFrame({"oracle_share": [0.5]}, index=["pooled"]))
    result.save(tmp_path)
    saved = {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)}
    assert set(saved) == {"runs.csv", "curves.csv", "summary.csv", "summary.json"}
    calls = []
    real = pd.DataFrame.to_csv

    def fail_second(self, *args, **kwargs):
        calls.append(args[0] if args else kwargs.get("path_or_buf"))
        if len(calls) == 2:
            real(self, *args, **kwargs)  # the file is written in full, then the process is interrupted
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_second)
    changed = ExperimentResult(runs=result.runs.assign(oracle_share=0.9), curves=result.curves.assign(ratio=0.8),
                               summary=result.summary)
    with pytest.raises(KeyboardInterrupt):
        changed.save(tmp_path)
    assert Path(calls[1]).parent == tmp_path and Path(calls[1]).name != "curves.csv"  # a temporary
    assert _listing(tmp_path) == sorted(saved)
    assert (tmp_path / "curves.csv").read_bytes() == saved["curves.csv"]  # untouched: the rename never happened
    assert (tmp_path / "runs.csv").read_bytes() != saved["runs.csv"]  # the first file completed


# ---------------------------------------------------------------------------- exact JSON
HARD = np.array([0.1, 1 / 3, 2 / 3, -0.0, 2.2250738585072014e-308, 1.7976931348623157e308,
                 0.30000000000000004, 123456789.12345679, -1e-300, np.nextafter(1.0, 2.0), np.pi * 1e15])


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".json.gz", ".jsonl.zip", ".ndjson.bz2", ".csv", ".parquet"])
def test_tables_keep_every_float_bit_for_bit(tmp_path, suffix):
    rng = np.random.default_rng(0)
    values = np.concatenate([HARD, rng.normal(size=2000) * 10.0 ** rng.integers(-30, 30, 2000)])
    frame = pd.DataFrame({"qid": [f"q{i}" for i in range(len(values))], "predicted_gain": values,
                          "route_primary": values > 0, "n": np.arange(len(values)) * 10**12,
                          "f32": np.clip(values, -1e30, 1e30).astype(np.float32)})
    path = write_table(frame, tmp_path / f"routes{suffix}")
    back = read_table(path)
    for col, dtype, bits in (("predicted_gain", np.float64, np.int64), ("f32", np.float32, np.int32)):
        expected = frame[col].to_numpy(dtype=dtype)
        # bit for bit in the column's own precision (-0.0 included); pandas' to_json kept 10 digits before
        assert np.array_equal(back[col].to_numpy(dtype=dtype).view(bits), expected.view(bits)), col
    assert back["qid"].tolist() == frame["qid"].tolist() and back["n"].tolist() == frame["n"].tolist()
    assert back["route_primary"].tolist() == frame["route_primary"].tolist()
    if suffix == ".json":  # plain JSON, readable by any parser
        records = json.loads(path.read_text())
        assert [r["predicted_gain"] for r in records] == values.tolist()
    assert _listing(tmp_path) == [path.name]


def test_subnormal_numbers_are_written_exactly_and_read_with_a_warning(tmp_path):
    values = np.array([5e-324, -1e-310, 0.1])
    path = write_table(pd.DataFrame({"g": values}), tmp_path / "t.json")
    assert [r["g"] for r in json.loads(path.read_text())] == values.tolist()  # the file is exact
    with pytest.warns(UserWarning, match="subnormal"):  # pandas' exact parser refuses them
        back = read_table(path)
    np.testing.assert_allclose(back["g"], values, rtol=1e-15, atol=1e-308)


def test_json_writes_null_for_missing_and_infinite_values(tmp_path):
    times = pd.to_datetime(["2026-01-02 03:04:05.123456789", None, "2026-01-01", "2026-01-01"], format="ISO8601")
    mixed = [0.1 + 0.2, "a", None, 1 / 3]  # an object column: its floats are exact too
    frame = pd.DataFrame({"g": [1.5, np.nan, np.inf, -np.inf], "t": times, "m": mixed})
    path = write_table(frame, tmp_path / "t.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["g"] for r in records] == [1.5, None, None, None]
    assert [r["m"] for r in records] == mixed
    assert records[0]["t"] == "2026-01-02T03:04:05.123456789" and records[1]["t"] is None


def test_route_json_output_is_exact(tmp_path, files, capsys):
    folder, router, test = files
    out = tmp_path / "routes.json"
    assert main(["route", str(folder / "test.csv"), "--router", str(folder / "router.cr"), "--id-column", "qid",
                 "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    expected = router.predict_gain(pd.read_csv(folder / "test.csv")[[f"x{j}" for j in range(12)]].to_numpy())
    np.testing.assert_array_equal([r["predicted_gain"] for r in records], expected)  # before: 10 digits
