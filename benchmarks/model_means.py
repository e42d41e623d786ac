"""Coverage of each model's and each pair's gold-scale average (:func:`causal_router.average.model_means`)
against the truth of the K-model generator. Prints a table and writes CSV; asserts nothing.

    python benchmarks/model_means.py --seeds 30 --n-jobs 1

Each seed draws ``make_multi_model(1000, 20)`` (four models, two pairs per query) and marks 10% of
the rows gold at random (``rng([seed, 5])``). The truth of a model is the mean of the generator's
noise-free gain ``gain`` (u_a - u_b, gold scale), turned to the model's side, over the rows that
compare it; of a pair, over that pair's rows. Each is estimated without the judge's labels on the
gold rows and with them (paired rows), with 95% intervals clustered by query.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

N_QUERIES, D, GOLD_SHARE = 1000, 20, 0.1


def truth_of(frame: pd.DataFrame, kind: str, name: str) -> float:
    """The generator's mean gain of a model (or of a pair's first model) on its rows, gold scale."""
    a, b, gain = frame["model_a"].to_numpy(), frame["model_b"].to_numpy(), frame["gain"].to_numpy()
    x, y = (name, None) if kind == "model" else name.split("|")
    rows = (a == x) | (b == x) if y is None else ((a == x) & (b == y)) | ((a == y) & (b == x))
    return float(np.mean(np.where(a == x, 1.0, -1.0)[rows] * gain[rows]))


def one_seed(seed: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from causal_router.average import model_means
    from causal_router.datasets import make_multi_model
    from causal_router.pairwise import PairwiseData

    frame = make_multi_model(N_QUERIES, D, random_state=seed)
    gold = np.random.default_rng([seed, 5]).random(len(frame)) < GOLD_SHARE
    data = PairwiseData(frame[[f"x{j}" for j in range(D)]], np.where(gold, frame["gold_gain"], frame["pref_gain"]),
                        gold, frame["model_a"], frame["model_b"], query_id=frame["query_id"])
    out = []
    with threadpool_limits(limits=1):
        for paired in (False, True):
            judge = np.where(gold, frame["pref_gain"], np.nan) if paired else None
            for r in model_means(data, preference_gain=judge, random_state=seed).itertuples():
                truth = truth_of(frame, r.kind, r.name)
                out.append({"seed": seed, "paired": paired, "kind": r.kind, "name": r.name, "truth": truth,
                            "estimate": r.estimate, "std_error": r.std_error, "lower": r.lower, "upper": r.upper,
                            "n_gold": r.n_gold, "covered": bool(r.lower <= truth <= r.upper),
                            "z": (r.estimate - truth) / r.std_error})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "model_means"))
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(one_seed)(s) for s in seeds)
    runs = pd.DataFrame([r for rs in rows for r in rs])
    table = runs.groupby(["paired", "kind"]).agg(
        estimates=("covered", "size"), coverage=("covered", "mean"), mean_std_error=("std_error", "mean"),
        median_std_error=("std_error", "median"), largest_abs_z=("z", lambda z: float(z.abs().max())))
    print(table.round(4).to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"seeds{args.first_seed}-{args.first_seed + args.seeds - 1}"
    for name, frame in ((f"runs_{tag}.csv", runs), (f"summary_{tag}.csv", table.reset_index())):
        tmp = out / f".{name}.tmp"
        frame.to_csv(tmp, index=False)
        tmp.replace(out / name)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
