"""A separate process that loads router files for tests/test_router_files.py, so that a file that
crashed the interpreter (an abort inside LightGBM), hung or blew up the memory would show as a dead,
silent or swollen worker instead of taking the test run down.

Reads one path per line on stdin; for each, loads it (causal_router.io.load_router), predicts on
fixed inputs and prints one JSON line: ``status`` ("ok", "RouterFileError", "nonfinite" or
"other" with the exception's type and message) and ``maxrss_mb``, the process's peak resident
memory so far: Linux's VmHWM, the high-water mark of this process's own memory since it started
(``getrusage``'s ru_maxrss would not do: Linux carries it over from the parent across fork and
exec, so a worker started from a test run that had reached 1.1 GB reported 1.1 GB at its first
load).
"""

import json
import resource
import sys
import traceback
from pathlib import Path

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


def peak_memory_mb() -> float:
    """The process's peak resident memory in MB: VmHWM from /proc/self/status where there is one
    (Linux), else ru_maxrss (kilobytes on Linux, bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


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
        status["maxrss_mb"] = peak_memory_mb()
        print(json.dumps(status), flush=True)


if __name__ == "__main__":
    main()
