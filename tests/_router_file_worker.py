"""A separate process that loads router files for tests/test_router_files.py, so that a file that
crashed the interpreter (an abort inside LightGBM), hung or blew up the memory would show as a dead,
silent or swollen worker instead of taking the test run down.

Reads one path per line on stdin; for each, loads it (causal_router.io.load_router), predicts on
fixed inputs and prints one JSON line: ``status`` ("ok", "RouterFileError", "nonfinite" or
"other" with the exception's type and message) and ``maxrss_mb``, the process's peak resident
memory so far.
"""

import json
import resource
import sys
import traceback

import numpy as np
import pandas as pd

from causal_router.io import RouterFileError, load_router


def _predict(router) -> np.ndarray:
    rng = np.random.default_rng(0)
    featurizer = getattr(router, "featurizer_", None)
    if featurizer is not None:
        texts = ["write a poem about tax law", "explain python code, question 3", "zz unknown words"]
        pairs = [str(p) for p in featurizer.pairs_]
        X = texts if len(pairs) <= 1 else pd.DataFrame({featurizer.text_column or "text": texts,
                                                        featurizer.pair_column: pairs[0]})
    else:
        X = rng.normal(size=(5, router.n_features_in_))
        names = getattr(router, "feature_names_in_", None)
        if names is not None:
            X = pd.DataFrame(X, columns=list(names))
    if router.family == "k-model":
        values = router.predict_utility(X).to_numpy()
        router.route(X)
    else:
        values = router.predict_gain(X)
        router.route(X)
    return np.asarray(values, dtype=float)


def main() -> None:
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            values = _predict(load_router(path))
            status = {"status": "ok" if np.isfinite(values).all() else "nonfinite"}
        except RouterFileError as exc:
            status = {"status": "RouterFileError", "message": str(exc)[:300]}
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            status = {"status": "other", "type": type(exc).__name__, "message": str(exc)[:300],
                      "traceback": traceback.format_exc()[-2000:]}
        status["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(status), flush=True)


if __name__ == "__main__":
    main()
