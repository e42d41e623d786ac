"""Does the judge's label on gold rows (paired rows) help the router? Issue 27, item 0. Prints a
table and writes CSV; asserts nothing.

    python benchmarks/paired_router.py --runs 20 --n-jobs 2

On PandaLM and PRD Vicuna80 (the features and splits of ``causal-router experiment --dataset D
--n-gold 100``: whole queries held out, 35 / 20 test queries), each split is fitted twice with
``MetaRouter(random_state=seed)``: on the training rows as they are, and with paired rows, where
each gold row's query is also given the judge's verdict as one more preference row (same
features, same query id: the bias model then sees both mechanisms on the gold queries, and
cross-fits them in one fold). The test figures are those of the experiment (oracle share, regret,
the area under the efficiency curve), on the same test queries, paired by split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

N_GOLD = 100
N_TEST = {"pandalm": 35, "prd": 20}


def data_set(name: str):
    from causal_router.datasets import load_pandalm, load_prd_vicuna80
    from causal_router.text import TextFeaturizer, featurize_queries

    frame = load_pandalm() if name == "pandalm" else load_prd_vicuna80()
    X, names, _ = featurize_queries(frame, featurizer=TextFeaturizer(n_components=50), random_state=0)
    return pd.concat([frame, pd.DataFrame(X, columns=names, index=frame.index)], axis=1), names


def with_judge_rows(train, judge):
    """``train`` (EvalData) plus one preference row per gold row, carrying the judge's gain."""
    from causal_router.data import EvalData

    gold = np.flatnonzero(train.is_gold)
    X = np.vstack([train.X, train.X[gold]])
    gain = np.concatenate([train.gain, judge[gold]])
    source = np.concatenate([train.is_gold, np.zeros(len(gold), dtype=bool)])
    query = None if train.query_id is None else np.concatenate([train.query_id, np.asarray(train.query_id)[gold]])
    return EvalData(X, gain, source, query_id=query, feature_names=train.feature_names)


def one_run(name: str, seed: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from causal_router import MetaRouter, evaluate
    from causal_router.datasets import reveal_split

    frame, features = data_set(name)
    split = reveal_split(frame, features, n_gold=N_GOLD, n_test=N_TEST[name], pair="pair", random_state=seed)
    judge = frame["pref_gain"].to_numpy()[split.train_index]
    out = []
    with threadpool_limits(limits=1):
        for method, train in (("meta_router", split.train), ("meta_router_paired", with_judge_rows(split.train, judge))):
            router = MetaRouter(random_state=seed).fit(train)
            pred = router.predict_gain(split.test_X)
            out.append({"dataset": name, "seed": seed, "method": method, **evaluate.summarise(pred, split.test_gold)})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--datasets", nargs="+", default=["pandalm", "prd"], choices=list(N_TEST))
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "paired_router"))
    args = parser.parse_args(argv)
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(one_run)(d, s) for d in args.datasets
                                                   for s in range(args.runs))
    runs = pd.DataFrame([r for rs in rows for r in rs])
    metrics = [c for c in runs.columns if c not in ("dataset", "seed", "method") and runs[c].dtype.kind == "f"]
    wide = runs.pivot_table(index=["dataset", "seed"], columns="method", values=metrics)
    summary = []
    for d in args.datasets:
        for m in metrics:
            diff = (wide[m]["meta_router_paired"] - wide[m]["meta_router"]).xs(d)
            summary.append({"dataset": d, "metric": m, "meta_router": wide[m]["meta_router"].xs(d).mean(),
                            "meta_router_paired": wide[m]["meta_router_paired"].xs(d).mean(),
                            "paired_minus_plain": diff.mean(), "se": diff.std(ddof=1) / np.sqrt(len(diff))})
    summary = pd.DataFrame(summary)
    print(summary.round(4).to_string(index=False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for file, frame in (("runs.csv", runs), ("summary.csv", summary)):
        tmp = out / f".{file}.tmp"
        frame.to_csv(tmp, index=False)
        tmp.replace(out / file)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
