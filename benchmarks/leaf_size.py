"""The gain model's smallest leaf (``models.default_regressor``: ``min_child_samples=5``), measured
on PRD Vicuna80: Gold-only's oracle share with leaves of at least 5 and of at least 20 rows (LightGBM's
default). Prints the table; asserts nothing.

    python benchmarks/leaf_size.py --splits 20

PRD Vicuna80 (the copy bundled with the package, or ``$CAUSAL_ROUTER_DATA/prd_vicuna80``), text
features as the CLI's ``experiment`` builds them (TF-IDF + SVD, 50 components, plus model-pair
indicators), ``reveal_split(n_gold=100, n_test=20)``: 20 whole questions held out, 100 gold rows,
seeds 0, 1, ... With a hundred gold rows a model pair has about ten, which leaves of 20 rows can
never split off.
"""

from __future__ import annotations

import argparse

import pandas as pd


def main(argv=None) -> None:
    from causal_router.baselines import GoldOnly
    from causal_router.datasets import load_prd_vicuna80, reveal_split
    from causal_router.evaluate import oracle_share
    from causal_router.models import default_regressor
    from causal_router.text import TextFeaturizer, featurize_queries

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", type=int, default=20)
    args = parser.parse_args(argv)
    raw = load_prd_vicuna80().reset_index(drop=True)
    X, _, _ = featurize_queries(raw, featurizer=TextFeaturizer(n_components=50))
    frame = pd.concat([raw, pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])], axis=1)
    rows = []
    for seed in range(args.splits):
        split = reveal_split(frame, n_gold=100, n_test=20, random_state=seed)
        row = {}
        for leaf in (5, 20):
            model = default_regressor(seed).set_params(min_child_samples=leaf)
            router = GoldOnly(outcome_model=model, random_state=seed).fit(split.train)
            row[f"min_leaf_{leaf}"] = oracle_share(router.predict_gain(split.test_X), split.test_gold)
        rows.append(row)
    runs = pd.DataFrame(rows)
    diff = runs["min_leaf_5"] - runs["min_leaf_20"]
    print(pd.DataFrame({"mean": runs.mean(), "se": runs.sem()}).round(3).to_string())
    print(f"paired difference (5 - 20): {diff.mean():.3f} +- {diff.sem():.3f} over {len(runs)} splits "
          f"(split by {split.by})")


if __name__ == "__main__":
    main()
