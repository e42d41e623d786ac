"""Tables in and out (causal_router.io)."""

import pandas as pd
import pytest

from causal_router._validation import DataError
from causal_router.io import read_table


# ---------------------------------------------------------------------------- read_table
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".csv.gz"])
def test_read_table_round_trips(tmp_path, suffix):
    frame = pd.DataFrame({"x0": [0.5, 1.5], "gain": [1.0, -1.0], "source": ["gold", "preference"]})
    path = tmp_path / f"t{suffix}"
    if suffix in (".csv", ".csv.gz"):
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif suffix == ".json":
        frame.to_json(path, orient="records")
    else:
        frame.to_json(path, orient="records", lines=True)
    pd.testing.assert_frame_equal(read_table(path), frame, check_dtype=False)


def test_read_table_passes_read_kwargs(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(path, index=False)
    assert list(read_table(path, usecols=["b"]).columns) == ["b"]


def test_read_table_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(DataError, match=r"unsupported file extension '\.xlsx'.*\.csv.*\.parquet.*\.jsonl"):
        read_table(tmp_path / "data.xlsx")
    with pytest.raises(DataError, match="unsupported file extension"):
        read_table(tmp_path / "noext")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="could not read"):
        read_table(bad)
