"""Coverage of ``BiasEstimator().ate()`` confidence intervals over many seeds, on three settings
with a known bias. Prints a table; asserts nothing.

    python benchmarks/ate_coverage.py --seeds 200 --n-jobs 2

Each seed draws a new frame of 1,600 rows and reveals ``n_gold`` gold labels among the 1,500
training rows (``reveal_split``, 100 rows held out); the default ``BiasEstimator`` is fitted and its 95%
interval checked against the average true bias over the training rows, on the gold scale with
that split's scale constant c (``mean(psi - eta / c)``: the quantity ``ate()`` estimates).
Settings: ``constant`` (built-in generator, Delta = 0.2), ``generator`` (built-in generator,
heterogeneous bias), ``sparse_nonlinear`` (the suite's sine-plus-threshold bias); d = 12,
100 gold rows (small, so that 600 fits run in minutes). ``oracle_coverage_95``: the coverage of
the AIPW average with the true nuisances (``bias_settings.oracle_aipw``) on the same seeds, the
reference for what the gold rows' sampling alone allows.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import delayed

N_ROWS, N_TEST = 1600, 100
_HERE = str(Path(__file__).resolve().parent)
sys.path.insert(0, _HERE)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_HERE, os.environ.get("PYTHONPATH")) if p)
from warning_counts import WarningCounts


def _frame(setting: str, seed: int) -> pd.DataFrame:
    from causal_router.datasets import make_semi_synthetic

    if setting == "constant":
        return make_semi_synthetic(N_ROWS, 12, bias="constant", random_state=seed)
    if setting == "generator":
        return make_semi_synthetic(N_ROWS, 12, random_state=seed)
    from bias_settings import gaussian_setting

    return gaussian_setting("sparse_nonlinear", d=12, n=N_ROWS)(seed)


def one_seed(setting: str, seed: int, n_gold: int) -> tuple[dict, list]:
    """One fit and its coverage: (row, the fit's warnings as ``WarningCounts.as_records()``)."""
    from bias_settings import oracle_aipw
    from threadpoolctl import threadpool_limits

    from causal_router import BiasEstimator
    from causal_router.datasets import reveal_split

    counts = WarningCounts()
    with threadpool_limits(limits=1), counts.record():
        frame = _frame(setting, seed)
        features = [c for c in frame.columns if c[:1] == "x" and c[1:].isdigit()]
        split = reveal_split(frame, features, n_gold=n_gold, n_test=N_TEST, random_state=seed)
        bias = BiasEstimator(random_state=seed).fit(split.train)
        ate = bias.ate(alpha=0.05)
    train = frame.iloc[split.train_index]
    truth = float(np.mean(train["psi"] - train["eta"] / bias.scale_))
    # reveal_split draws the gold rows at random: the propensity is n_gold / n
    oracle_est, oracle_se = oracle_aipw(train, split.train, bias.scale_, split.train.n_gold / len(train))
    return ({"setting": setting, "seed": seed, "truth": truth, **ate.to_dict(),
             "covered": bool(ate["lower"] <= truth <= ate["upper"]),
             "oracle_covered": bool(abs(oracle_est - truth) <= 1.959964 * oracle_se)}, counts.as_records())


def main(argv=None) -> None:
    from causal_router._parallel import run_parallel

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=["constant", "generator", "sparse_nonlinear"])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--n-gold", type=int, default=100)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", help="write the per-seed rows to this CSV")
    parser.add_argument("--chunk", type=int, default=20, help="seeds per round (--out is written after each)")
    parser.add_argument("--from-csv", help="only summarise an earlier --out CSV")
    args = parser.parse_args(argv)
    if args.from_csv:
        return summarise(pd.read_csv(args.from_csv))
    rows = []
    counts = WarningCounts()
    for first in range(0, args.seeds, args.chunk):  # rounds over the settings; --out grows after each
        seeds = range(first, min(first + args.chunk, args.seeds))
        tasks = [delayed(one_seed)(s, seed, args.n_gold) for seed in seeds for s in args.settings]
        for row, records in run_parallel(tasks, n_jobs=args.n_jobs, desc=f"seeds {seeds.start}-{seeds.stop - 1}",
                                         unit="fit"):
            rows.append(row)
            counts.update(records)
        if args.out:
            pd.DataFrame(rows).to_csv(args.out, index=False)
    summarise(pd.DataFrame(rows))
    counts.report()


def summarise(rows: pd.DataFrame) -> None:
    """Print coverage, its binomial standard error, bias and spread per setting."""
    rows["error"] = rows["estimate"] - rows["truth"]
    g = rows.groupby("setting", sort=False)
    table = pd.DataFrame({
        "seeds": g.size(),
        "coverage_95": g["covered"].mean(),
        "coverage_se": np.sqrt(g["covered"].mean() * (1 - g["covered"].mean()) / g.size()),
        "mean_error": g["error"].mean(),
        "sd_estimate": g["estimate"].std(ddof=1),
        "mean_std_error": g["std_error"].mean(),
    })
    if "oracle_covered" in rows:
        table["oracle_coverage_95"] = g["oracle_covered"].mean()
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
