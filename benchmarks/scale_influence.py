"""How often the one-row rule of the scale constant refuses legitimate heavy-tailed gains, and
which planted errors it catches (``causal_router.data.scale_constant``, ``MAX_ROW_INFLUENCE``).

For each distribution of the preference gains and each number of preference rows, draws
``--reps`` samples (gold gains: 150 standard normal rows, as in a few-percent-gold fit) and
prints the share of samples the rule refuses, per scale method. Then plants one bad value
(a sentinel such as -999, a value of 1e6 or 1e99) among n standard normal preference gains and
prints whether it is refused.

    PYTHONPATH=. python benchmarks/scale_influence.py            # about 1 min on one core
"""

from __future__ import annotations

import argparse

import numpy as np

from causal_router._validation import DataError
from causal_router.data import MAX_ROW_INFLUENCE, scale_constant

DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.normal(size=n),
    "student t3": lambda rng, n: rng.standard_t(3, n),
    "student t2": lambda rng, n: rng.standard_t(2, n),
    "lognormal(0, 1)": lambda rng, n: rng.lognormal(0, 1, n),
    "judge votes +1/0/-1": lambda rng, n: rng.choice([-1.0, 0.0, 1.0], n, p=[0.45, 0.1, 0.45]),
    "cauchy": lambda rng, n: rng.standard_cauchy(n),
}
SIZES = (10, 30, 100, 1000, 10000)


def refused(gold, pref, method) -> bool:
    """Whether the one-row rule refuses (other refusals, e.g. all ten votes equal, count as not)."""
    try:
        scale_constant(gold, pref, method)
    except DataError as exc:
        return "sets the" in str(exc)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="samples per size up to 1,000 rows (200 above)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"share of samples refused (one row changes c more than {MAX_ROW_INFLUENCE:g}-fold); gold: 150 normal rows")
    for method in ("variance", "amplitude", "wasserstein"):
        print(f"\nscale={method!r}")
        print(f"{'preference gains':>22} " + " ".join(f"{f'n={n}':>9}" for n in SIZES))
        for name, draw in DISTRIBUTIONS.items():
            cells = []
            for n in SIZES:
                reps = args.reps if n <= 1000 else max(args.reps // 10, 1)
                hits = sum(refused(rng.normal(size=150), draw(rng, n), method) for _ in range(reps))
                cells.append(f"{hits / reps:9.4f}")
            print(f"{name:>22} " + " ".join(cells))
    print("\nplanted errors among n standard normal preference gains (scale='variance'): refused?")
    print(f"{'value':>8} " + " ".join(f"{f'n={n}':>9}" for n in SIZES))
    for value in (-99.0, -999.0, 1e6, 1e99):
        cells = []
        for n in SIZES:
            pref = rng.normal(size=n)
            pref[n // 2] = value
            cells.append(f"{str(refused(rng.normal(size=150), pref, 'variance')):>9}")
        print(f"{value:>8.3g} " + " ".join(cells))


if __name__ == "__main__":
    main()
