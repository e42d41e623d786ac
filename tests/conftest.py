import numpy as np
import pandas as pd
import pytest

from causal_router.datasets import make_semi_synthetic, reveal_split


@pytest.fixture(scope="session")
def synthetic():
    """The built-in generator at the paper's size: 5,000 queries, 50 features."""
    return make_semi_synthetic(5000, 50, random_state=0)


@pytest.fixture(scope="session")
def split(synthetic):
    """One reveal split: 100 gold rows, 500 test queries."""
    return reveal_split(synthetic, n_gold=100, n_test=500, random_state=1)


@pytest.fixture()
def small_frame():
    """A small pooled frame in the user-facing layout (features, gain, source)."""
    rng = np.random.default_rng(0)
    n = 400
    X = rng.standard_normal((n, 3))
    source = np.where(np.arange(n) % 5 == 0, "gold", "preference")
    gain = X[:, 0] + np.where(source == "gold", 0.5, 0.0) + 0.1 * rng.standard_normal(n)
    return pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "gain": gain, "source": source,
                         "qid": [f"q{i}" for i in range(n)]})


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray instance shared by the Ray tests (skipped without the [ray] extra)."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()
