"""Coverage of the average bias's interval against the truth of the data-generating process, on
the gold scale (issue 27). Prints a table and writes CSV / JSON; asserts nothing.

    python benchmarks/average_bias.py --seeds 200 --n-jobs 1

Each seed draws ``make_semi_synthetic(n=2000, d=12, pref_scale=2)``: the judge's gains are on twice
the gold scale, pref = 2 (psi - Delta + noise), and the truth is the average of Delta over the
2,000 rows (the generator's ``bias`` column, psi - eta / 2 with the TRUE scale 2; not the
estimator's own c_hat). About 100 rows are gold; :class:`causal_router.AverageBias` with
``scale="variance"`` is fitted on the pooled rows and three 95% intervals are checked:

- ``scale_aware``: the interval of :meth:`AverageBias.result` (the scale constant's uncertainty
  carried in by the delta method);
- ``scale_known``: the scores' interval alone, c_hat taken as known (what ``ate()`` reported before
  issue 27), against the same truth;
- ``scale_known_moving``: the same interval against psi - eta / c_hat, the moving target the
  tests used before (an error in the scale cannot show there).

Settings: ``random`` (constant bias 0.2, 100 gold rows drawn at random, estimated propensity),
``heterogeneous`` (the generator's heterogeneous bias, random gold rows: there sd(pref) / sd(gold)
differs from 2, because the bias varies, so variance matching is not consistent for the true scale),
``selected`` (constant bias, gold rows drawn with known probabilities sigmoid(logit 0.05 + 0.8 x0),
passed as ``gold_probability``: feature-selected), ``active`` (constant bias, 50 gold rows at
random, then 50 more by :func:`causal_router.active.suggest_gold` with ``strategy="uncertainty"``,
the combined design probabilities passed as ``gold_probability``), ``paired`` (as ``random``, the judge's gain on the gold rows
given as ``preference_gain``: compare with ``random``, the same seeds and rows), ``offset`` (as ``random``, but the judge also adds 2.0 to every
gain, so its mean gain is far from 0: the average bias -0.8 then moves by P / c^2 per unit of c
and the scale constant's uncertainty is a large part of the interval).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

N_ROWS, D, N_GOLD, SCALE = 2000, 12, 100, 2.0
SETTINGS = ("random", "heterogeneous", "selected", "active", "offset", "paired")
REAL = ("pandalm", "prd")
OFFSET = 1.0  # "offset": the judge adds 2 x 1.0 to every gain (its bias moves by -1.0 on the gold scale)


def one_seed(setting: str, seed: int) -> dict:
    from scipy import stats
    from threadpoolctl import threadpool_limits

    from causal_router import AverageBias
    from causal_router.clusters import clustered_mean
    from causal_router.datasets import make_semi_synthetic

    kind = "heterogeneous" if setting == "heterogeneous" else "constant"
    frame = make_semi_synthetic(N_ROWS, D, bias=kind, pref_scale=SCALE, random_state=seed)
    X = frame[[f"x{j}" for j in range(D)]].to_numpy()
    rng = np.random.default_rng([seed, 27])
    design = None
    if setting == "selected":
        logit = np.log(N_GOLD / (N_ROWS - N_GOLD)) + 0.8 * X[:, 0]
        design = 1 / (1 + np.exp(-logit))
        gold = rng.random(N_ROWS) < design
    elif setting == "active":  # half the gold rows at random, half by the package's active labelling
        from causal_router.active import suggest_gold
        from causal_router.data import EvalData

        gold = np.zeros(N_ROWS, dtype=bool)
        gold[rng.choice(N_ROWS, N_GOLD // 2, replace=False)] = True
        first = EvalData(X, np.where(gold, frame["gold_gain"], frame["pref_gain"]), gold)
        with threadpool_limits(limits=1):
            pick = suggest_gold(None, first, N_GOLD - N_GOLD // 2, strategy="uncertainty", random_state=seed)
        after = pick.apply(first, frame["gold_gain"].to_numpy()[pick.index])
        gold, design = after.is_gold, after.gold_probability
    else:
        gold = np.zeros(N_ROWS, dtype=bool)
        gold[rng.choice(N_ROWS, N_GOLD, replace=False)] = True
    shift = SCALE * OFFSET if setting == "offset" else 0.0
    y = np.where(gold, frame["gold_gain"], frame["pref_gain"] + shift)
    with threadpool_limits(limits=1):
        ab = AverageBias(scale="variance", random_state=seed).fit(y, gold, X=X, gold_probability=design)
        if setting == "paired":  # the judge labels the gold rows too: the paired estimator instead
            ab = AverageBias(scale="variance", random_state=seed).fit(
                y, gold, X=X, preference_gain=np.where(gold, frame["pref_gain"], np.nan))
    res = ab.result(0.05)
    fixed = clustered_mean(ab.pseudo_outcomes_)
    truth = float(frame["bias"].mean()) - shift / SCALE
    moving = float(np.mean(frame["psi"] - (frame["eta"] + shift) / ab.scale_))
    z = stats.norm.ppf(0.975)
    return {"setting": setting, "seed": seed, "n_gold": int(gold.sum()), "truth": truth, "moving_truth": moving,
            "estimate": res["estimate"], "scale": ab.scale_, "scale_std_error": ab.scale_std_error_,
            "se_scale_aware": res["std_error"], "se_scale_known": fixed["std_error"],
            "cover_scale_aware": bool(res["lower"] <= truth <= res["upper"]),
            "cover_scale_known": bool(abs(res["estimate"] - truth) <= z * fixed["std_error"]),
            "cover_scale_known_moving": bool(abs(res["estimate"] - moving) <= z * fixed["std_error"]),
            "gold_ess": res["gold_ess"]}


def one_draw(name: str, draw: int) -> list[dict]:
    """One draw on a real set where every row carries both labels (so the truth is known): whole
    queries resampled with replacement (each copy its own query), 100 rows drawn at random as gold.
    Targets (truth: the set as it is, both labels on the -1 / 0 / 1 verdict scale, ``scale=None``):
    ``average_bias``, E[gold - judge] over every row; ``win:<model>``, each model's average gold
    gain over the rows that compare it (2 w - 1 for its gold win rate w, ties half); and
    ``pair:<a>|<b>``, the average gold gain of a over b on that pair's rows. Methods:
    (a) this package's :class:`AverageBias` (``average_bias`` unpaired and ``average_bias_paired``;
    the win rates by :func:`causal_router.average.model_means`, paired), clustered by query;
    (b) PPI++ (ppi_py's power-tuned ``ppi_mean_ci`` of E[gold] with the judge's verdict as the
    prediction: rows as units, it has no clusters); (c) CJE (cje-eval's ``calibrated_mean_ci``:
    the judge calibrated to the gold labels, cluster-robust with the calibration's jackknife
    variance, clustered by query; labels mapped to [0, 1] and back); (d) the gold rows alone
    (their mean, clustered by query). For the average bias, (b) and (c) estimate E[gold] and
    subtract the judge's mean over every row (known exactly: the judge labels every row)."""
    import cje
    import ppi_py
    from threadpoolctl import threadpool_limits

    from causal_router import AverageBias
    from causal_router.average import model_means
    from causal_router.clusters import clustered_mean
    from causal_router.datasets import load_pandalm, load_prd_vicuna80
    from causal_router.pairwise import PairwiseData

    frame = (load_pandalm() if name == "pandalm" else load_prd_vicuna80()).reset_index(drop=True)
    rng = np.random.default_rng([draw, 2027])
    queries = frame["query_id"].unique()
    picked = rng.choice(len(queries), len(queries))
    by_query = frame.groupby("query_id", sort=False).indices
    rows = np.concatenate([by_query[queries[q]] for q in picked])
    copy = np.concatenate([np.full(len(by_query[queries[q]]), k) for k, q in enumerate(picked)])
    data = frame.iloc[rows].reset_index(drop=True)
    X = pd.get_dummies(data[["pair", "category"]].astype(str), dtype=float).to_numpy()
    gold = np.zeros(len(data), dtype=bool)
    gold[rng.choice(len(data), N_GOLD, replace=False)] = True
    y = np.where(gold, data["gold_gain"], data["pref_gain"])
    judge = data["pref_gain"].to_numpy()
    gold_gain = data["gold_gain"].to_numpy()
    # the pair's two models: model_p's gain over model_a
    model_a, model_b = data["model_p"].to_numpy(dtype=object), data["model_a"].to_numpy(dtype=object)
    out = []

    def record(target, truth, method, lower, upper, estimate):
        out.append({"setting": name, "draw": draw, "target": target, "method": method, "truth": truth,
                    "estimate": float(estimate), "lower": float(lower), "upper": float(upper),
                    "covered": bool(lower <= truth <= upper) if np.isfinite([lower, upper]).all() else np.nan,
                    "width": float(upper - lower)})

    def others(target, truth, rows, sign, shift):
        """(b), (c), (d) for the mean of sign * gold over ``rows``, minus ``shift``."""
        g, j, lab = (sign * gold_gain)[rows], (sign * judge)[rows], gold[rows]
        lo, hi = ppi_py.ppi_mean_ci(g[lab], j[lab], j[~lab], alpha=0.05)
        point = ppi_py.ppi_mean_pointestimate(g[lab], j[lab], j[~lab])
        record(target, truth, "ppi++", np.ravel(lo)[0] - shift, np.ravel(hi)[0] - shift, np.ravel(point)[0] - shift)
        try:
            c = cje.calibrated_mean_ci((j + 1) / 2, np.where(lab, (g + 1) / 2, np.nan), cluster_ids=copy[rows],
                                       seed=draw)
        except ValueError as exc:  # cje refuses too few labelled queries: recorded as no interval
            out.append({"setting": name, "draw": draw, "target": target, "method": "cje", "truth": truth,
                        "estimate": np.nan, "lower": np.nan, "upper": np.nan, "covered": np.nan, "width": np.nan,
                        "error": str(exc)[:120]})
        else:
            record(target, truth, "cje", 2 * c.ci[0] - 1 - shift, 2 * c.ci[1] - 1 - shift,
                   2 * c.estimate - 1 - shift)
        r = clustered_mean(g[lab] - (j[lab] if shift else 0.0), copy[rows][lab], warn=False)
        record(target, truth, "gold_rows_alone", r["lower"], r["upper"], r["estimate"])

    everything = np.ones(len(data), dtype=bool)
    truth = float(np.mean(frame["gold_gain"] - frame["pref_gain"]))
    with threadpool_limits(limits=1):
        for method, pg in (("average_bias", None), ("average_bias_paired", np.where(gold, judge, np.nan))):
            r = AverageBias(scale=None, random_state=draw).fit(y, gold, X=X, groups=copy, preference_gain=pg).result()
            record("average_bias", truth, method, r["lower"], r["upper"], r["estimate"])
        others("average_bias", truth, everything, np.ones(len(data)), float(judge.mean()))
        pairs = PairwiseData(X, y, gold, model_a, model_b, query_id=copy)
        means = model_means(pairs, preference_gain=np.where(gold, judge, np.nan), random_state=draw)
    fa, fb = frame["model_p"].to_numpy(dtype=object), frame["model_a"].to_numpy(dtype=object)

    def side(first, second, x, y):
        """Rows of model x (y None) or of the pair (x, y), and the sign turning each to x's side."""
        on = (first == x) | (second == x) if y is None else ((first == x) & (second == y)) | ((first == y) & (second == x))
        return on, np.where(first == x, 1.0, -1.0)

    for m in means.itertuples():
        x, y = (m.name, None) if m.kind == "model" else m.name.split("|")
        on, sign = side(fa, fb, x, y)
        truth = float(np.mean((sign * frame["gold_gain"].to_numpy())[on]))
        target = f"win:{m.name}" if m.kind == "model" else f"pair:{m.name}"
        record(target, truth, "average_bias_paired", m.lower, m.upper, m.estimate)
        others(target, truth, *side(model_a, model_b, x, y), 0.0)
    return out


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby("setting", sort=False)
    return pd.DataFrame({
        "seeds": g.size(),
        "coverage_scale_aware": g["cover_scale_aware"].mean(),
        "coverage_scale_known": g["cover_scale_known"].mean(),
        "coverage_scale_known_moving_target": g["cover_scale_known_moving"].mean(),
        "width_scale_aware": 2 * 1.959964 * g["se_scale_aware"].mean(),
        "width_scale_known": 2 * 1.959964 * g["se_scale_known"].mean(),
        "bias_of_estimate": g.apply(lambda f: float((f["estimate"] - f["truth"]).mean()), include_groups=False),
        "sd_of_estimate": g["estimate"].std(),
        "mean_scale": g["scale"].mean(),
        "sd_scale": g["scale"].std(),
        "mean_scale_std_error": g["scale_std_error"].mean(),
        "mean_gold_ess": g["gold_ess"].mean(),
    })


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--real", nargs="*", default=[], choices=REAL,
                        help="real sets instead of the generator settings (--seeds draws each)")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "average_bias"))
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.real:
        rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(one_draw)(r, d) for r in args.real for d in seeds)
        runs = pd.DataFrame([row for rs in rows for row in rs])
        runs["covered"] = runs["covered"].astype(float)  # NaN where a method gave no interval
        runs["target_kind"] = runs["target"].str.split(":").str[0].replace({"win": "win_rate", "pair": "pair_gain"})
        table = runs.groupby(["setting", "target_kind", "method"], sort=False).agg(
            draws=("covered", "size"), failed=("estimate", lambda e: int(e.isna().sum())),
            coverage=("covered", "mean"), mean_width=("width", "mean"),
            bias=("estimate", lambda e: float(e.mean() - runs.loc[e.index, "truth"].mean())),
            sd_estimate=("estimate", "std"))
        print(table.round(4).to_string())
        tag = f"real_{'_'.join(args.real)}_draws{args.first_seed}-{args.first_seed + args.seeds - 1}"
        tmp = out / f".{tag}.csv.tmp"
        runs.to_csv(tmp, index=False)
        tmp.replace(out / f"runs_{tag}.csv")
        tmp = out / f".{tag}.txt.tmp"
        tmp.write_text("python benchmarks/average_bias.py " + " ".join(argv or []) + "\n" + table.round(4).to_string() + "\n")
        tmp.replace(out / f"summary_{tag}.txt")
        return
    jobs = [(s, seed) for s in args.settings for seed in seeds]
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(one_seed)(s, seed) for s, seed in jobs)
    runs = pd.DataFrame(rows)
    table = summarise(runs)
    pd.set_option("display.width", 200)
    print(table.round(4).T.to_string())
    tag = f"seeds{args.first_seed}-{args.first_seed + args.seeds - 1}_{'_'.join(args.settings)}"
    tmp = out / f".{tag}.csv.tmp"
    runs.to_csv(tmp, index=False)
    tmp.replace(out / f"runs_{tag}.csv")
    tmp = out / f".{tag}.json.tmp"
    tmp.write_text(json.dumps({"command": "python benchmarks/average_bias.py " + " ".join(argv or []),
                               "summary": json.loads(table.to_json(orient="index"))}, indent=1))
    tmp.replace(out / f"summary_{tag}.json")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
