"""Compiled trees reproduce LightGBM's predictions exactly, or step aside."""

import numpy as np
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.linear_model import Ridge

from causal_router import MetaRouter
from causal_router._compiled import PARALLEL_MIN_ROWS, compile_lightgbm, compiled_model
from causal_router.models import default_regressor

pytest.importorskip("numba")


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 8))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.3 * rng.standard_normal(3000)
    return X, y


@pytest.mark.parametrize("params", [{}, {"num_leaves": 63, "n_estimators": 30}, {"n_estimators": 1},
                                    {"objective": "huber"}])
def test_identical_to_lightgbm(fitted, params):
    X, y = fitted
    model = default_regressor(0).set_params(**params).fit(X, y)
    compiled = compile_lightgbm(model)
    assert compiled is not None
    rng = np.random.default_rng(1)
    # serial and parallel kernels, training rows (values on the thresholds), extreme values
    Q = np.vstack([X, 5 * rng.standard_normal((PARALLEL_MIN_ROWS * 3 + 7, 8)), np.full((1, 8), 1e300)])
    for rows in (Q[:1], Q[:100], Q):
        np.testing.assert_array_equal(compiled.predict(rows), model.predict(rows))


def test_constant_model_with_one_leaf_trees():
    X = np.random.default_rng(0).standard_normal((50, 3))
    model = LGBMRegressor(n_estimators=5, min_child_samples=40, verbose=-1).fit(X, np.ones(50))
    np.testing.assert_array_equal(compile_lightgbm(model).predict(X), model.predict(X))


def test_unsupported_models_fall_back(fitted):
    X, y = fitted
    assert compile_lightgbm(Ridge().fit(X, y)) is None
    assert compile_lightgbm(LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y > 0)) is None  # logistic link
    X_nan = X.copy()
    X_nan[::7, 0] = np.nan  # trained with missing values: splits carry a missing-value direction
    assert compile_lightgbm(LGBMRegressor(n_estimators=5, verbose=-1).fit(X_nan, y)) is None
    assert compile_lightgbm(LGBMRegressor(n_estimators=5, num_leaves=100, min_child_samples=2,
                                          verbose=-1).fit(X, y)) is None  # > 64 leaves


def test_shape_is_checked(fitted):
    X, y = fitted
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        compile_lightgbm(default_regressor(0).fit(X, y)).predict(X[:, :3])


def test_router_predictions_unchanged_by_compilation(split, tmp_path):
    router = MetaRouter(random_state=0).fit(split.train)
    direct = router.gain_model_.predict(split.test_X) / router.scale_
    np.testing.assert_array_equal(router.predict_gain(split.test_X), direct)
    assert compiled_model(router.gain_model_) is not None  # compiled on first use
    router.save(tmp_path / "r.cr")
    loaded = MetaRouter.load(tmp_path / "r.cr")
    np.testing.assert_array_equal(loaded.predict_gain(split.test_X), direct)
    router.set_params(random_state=1).fit(split.train)  # a refit drops the compiled trees of the old model
    np.testing.assert_array_equal(router.predict_gain(split.test_X),
                                  router.gain_model_.predict(split.test_X) / router.scale_)


def test_serial_and_parallel_kernels_are_cached_apart(tmp_path):
    """numba caches by function name: the one-row kernel must not be the parallel one (which
    starts OpenMP threads, measured at ~5 ms CPU per call after an idle moment) nor the reverse,
    whichever was compiled and cached first."""
    import os
    import subprocess
    import sys

    code = """
import sys, numpy as np, numba
from causal_router import _compiled
k = _compiled._kernels()
args = (np.array([0]), np.array([0.0]), np.array([1], np.uint64), np.array([0, 1]), np.array([0, 2]), np.array([1.0, 2.0]))
parallel = sys.argv[1] == "parallel"
n = 4 * _compiled.BLOCK if parallel else 1
k[parallel](np.zeros((3, n)), *args, np.empty(n), _compiled.BLOCK)
try:
    numba.threading_layer()
    print("threads")
except ValueError:
    print("no threads")
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = lambda which: subprocess.run([sys.executable, "-c", code, which], capture_output=True, text=True, env=env,
                                       check=True).stdout.strip()
    # each in a fresh process, the second reading the first's cache
    assert [run("parallel"), run("serial"), run("parallel")] == ["threads", "no threads", "threads"]
