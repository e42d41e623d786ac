"""Rebuild the real-data copies bundled in ``causal_router/datasets/data/`` from the raw upstream files.

    python scripts/build_bundled_data.py [RAW_DIR]        # default RAW_DIR: $CAUSAL_ROUTER_DATA

``RAW_DIR`` holds ``pandalm/`` (github.com/WeOpenML/PandaLM, ``data/``) and ``prd_vicuna80/``
(github.com/bcdnlp/PRD, ``data/vicuna80/``), each with its upstream LICENSE. The script runs the
package's own loaders on them (``load_pandalm`` and ``load_prd_vicuna80`` for every judge),
writes ``pandalm.csv.gz``, ``prd_vicuna80.csv.gz`` (all judges in one table), ``manifest.json``
(dtypes, row counts, SHA-256 of each table, the judges, the drop counts of the build, a digest of
the upstream files read) and copies the two licences; ``NOTICE`` is written by hand. It then reads
every table back through the package and stops with an error unless the frames are identical to
the loaders' output, bit for bit. Unchanged inputs give byte-identical files. Maintainer tool:
not part of the installed package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from causal_router.datasets import load_pandalm, load_prd_vicuna80
from causal_router.datasets import _bundled
from causal_router.datasets.real import ENV_VAR, PRD_JUDGES

OUT = Path(__file__).resolve().parent.parent / "causal_router" / "datasets" / "data"
LICENCES = {"pandalm": "LICENSE-PandaLM.txt", "prd_vicuna80": "LICENSE-PRD.txt"}
UPSTREAM = {
    "pandalm": {"repository": "https://github.com/WeOpenML/PandaLM", "folder": "data/", "licence": "Apache-2.0",
                "read": ["testset-v1.json", "gpt-3.5-turbo-testset-v1.json", "pandalm-7b-testset-v1.json"]},
    "prd_vicuna80": {"repository": "https://github.com/bcdnlp/PRD", "folder": "data/vicuna80/", "licence": "MIT",
                     "read": ["prompts/vicuna_questions.jsonl", "ratings-human/*.jsonl",
                              *(f"ratings-{judge}/*.jsonl" for judge in PRD_JUDGES)]},
}


def upstream_digest(folder: Path, patterns: list[str]) -> dict:
    """SHA-256 of the sorted ``sha256sum`` listing of the files read (relative paths), and their count.

    Reproduce: ``cd <folder> && sha256sum $(ls <files> | LC_ALL=C sort) | sha256sum``.
    """
    files = sorted({p.relative_to(folder).as_posix() for pattern in patterns for p in folder.glob(pattern)})
    listing = "".join(f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}\n" for f in files)
    return {"files": len(files), "sha256_of_sha256sum_listing": hashlib.sha256(listing.encode()).hexdigest()}


def identical(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    """Raise unless the frames have the same columns, dtypes, values (floats bit for bit) and attrs."""
    pd.testing.assert_frame_equal(a, b, check_exact=True, obj=what)
    for col in a.columns[a.dtypes == "float64"]:
        if not np.array_equal(a[col].to_numpy().view(np.int64), b[col].to_numpy().view(np.int64)):
            raise AssertionError(f"{what}: column {col} differs in its bits")
    if a.attrs != b.attrs:
        raise AssertionError(f"{what}: attrs differ: {a.attrs} != {b.attrs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", nargs="?", help=f"folder holding pandalm/ and prd_vicuna80/ (default: ${ENV_VAR})")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: the package's data/)")
    args = parser.parse_args(argv)
    raw = args.raw or os.environ.get(ENV_VAR)
    if not raw:
        parser.error(f"pass RAW_DIR or set {ENV_VAR}")
    raw = Path(raw)
    args.out.mkdir(parents=True, exist_ok=True)

    pandalm = load_pandalm(raw / "pandalm")
    prd = {judge: load_prd_vicuna80(raw / "prd_vicuna80", judge=judge) for judge in PRD_JUDGES}
    tables = {"pandalm": pandalm, "prd_vicuna80": _bundled.prd_wide(prd)}
    extra = {"pandalm": {"judges": pandalm.attrs["judges"], "dropped": pandalm.attrs["dropped"]},
             "prd_vicuna80": {"judges": list(PRD_JUDGES),
                              "dropped": {judge: frame.attrs["dropped"] for judge, frame in prd.items()}}}
    manifest = {"format": 1, "tables": {}}
    for name, table in tables.items():
        entry = _bundled.write_table(table, args.out, name)
        shutil.copyfile(raw / name / "LICENSE", args.out / LICENCES[name])
        spec = UPSTREAM[name]
        manifest["tables"][name] = {
            **entry, **extra[name], "licence_file": LICENCES[name],
            "upstream": {k: spec[k] for k in ("repository", "folder", "licence")}
            | upstream_digest(raw / name, spec["read"])}
    (args.out / _bundled.MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                              encoding="utf-8")

    # read back through the package: the bundled route must give the loaders' frames exactly
    back, entry = _bundled.read_table("pandalm", args.out)
    back.attrs.update(dropped=entry["dropped"], judges=pandalm.attrs["judges"])
    identical(back, pandalm, "pandalm")
    wide, entry = _bundled.read_table("prd_vicuna80", args.out)
    for judge, frame in prd.items():
        back = _bundled.prd_for_judge(wide, judge, frame.attrs["judges"]["pref_gain_2"])
        back.attrs.update(dropped=entry["dropped"][judge], judges=frame.attrs["judges"])
        identical(back, frame, f"prd_vicuna80 judge={judge}")
    for name, table in tables.items():
        file = args.out / _bundled.TABLE_FILES[name]
        print(f"{file.name}: {len(table)} rows x {table.shape[1]} columns, {file.stat().st_size / 1024:.1f} KiB")
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"{args.out}: {total / 1024:.1f} KiB in all; read back identical to the loaders' output")
    return 0


if __name__ == "__main__":
    sys.exit(main())
