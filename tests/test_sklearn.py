"""scikit-learn's contract: fit(X, y, *, source=...), clone, get/set_params, pickling, Pipeline,
model selection with metadata routing, and scikit-learn's own estimator checks where they apply.

Where the checks apply: ``check_estimator`` passes X and y only, so it can exercise the routers that
fit on one source (``GoldOnly`` and ``Pooled``: with ``source=None`` every row is gold). The
meta-router, ``MeanShift``, ``PreferenceOnly`` and ``BiasEstimator`` need both sources by
definition (the bias is a contrast between them), so for them only the checks that do not fit
are run; their fitting contract is tested below with a source.
"""

import pickle

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as checks

from causal_router import BiasEstimator, MetaRouter
from causal_router.baselines import GoldOnly, MeanShift, Pooled, PreferenceOnly
from causal_router.datasets import make_semi_synthetic, reveal_split


@pytest.fixture(scope="module")
def arrays():
    frame = make_semi_synthetic(1500, 12, random_state=8)
    split = reveal_split(frame, n_gold=150, n_test=300, random_state=8)
    data = split.train
    return data.X, data.gain, np.where(data.is_gold, "gold", "preference"), split


@pytest.mark.parametrize("estimator", [GoldOnly(), Pooled()], ids=["GoldOnly", "Pooled"])
def test_sklearn_estimator_checks(estimator):
    failed = [r for r in checks.check_estimator(estimator, on_fail=None) if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:200]) for r in failed]


@pytest.mark.parametrize("estimator", [MetaRouter(), BiasEstimator(), MeanShift(), PreferenceOnly()],
                         ids=["MetaRouter", "BiasEstimator", "MeanShift", "PreferenceOnly"])
@pytest.mark.parametrize("check", [checks.check_parameters_default_constructible, checks.check_get_params_invariance,
                                   checks.check_set_params, checks.check_no_attributes_set_in_init,
                                   checks.check_estimator_repr, checks.check_estimator_cloneable],
                         ids=lambda c: c.__name__)
def test_sklearn_checks_that_do_not_fit(estimator, check):
    check(type(estimator).__name__, estimator)


def test_fit_on_arrays_equals_fit_on_evaldata(arrays):
    X, y, source, split = arrays
    a = MetaRouter(random_state=0).fit(X, y, source=source)
    b = MetaRouter(random_state=0).fit(split.train)
    np.testing.assert_array_equal(a.predict(split.test_X), b.predict_gain(split.test_X))
    est = BiasEstimator(random_state=0).fit(X, y, source=source)
    np.testing.assert_array_equal(est.effect(split.test_X), b.bias_.effect(split.test_X))


def test_clone_and_pickle(arrays):
    X, y, source, split = arrays
    router = MetaRouter(BiasEstimator("auto", cv=3), preference_weight=0.5, random_state=1)
    twin = clone(router)
    assert twin.get_params()["bias__cv"] == 3 and twin.get_params()["preference_weight"] == 0.5
    twin.set_params(bias__cv=4)
    assert router.bias.cv == 3  # clone copies: setting the twin's nested parameter leaves the original alone
    router.fit(X, y, source=source)
    again = pickle.loads(pickle.dumps(router))
    np.testing.assert_array_equal(again.predict(split.test_X), router.predict(split.test_X))


def test_pipeline_with_a_scaler(arrays):
    X, y, source, split = arrays
    pipe = make_pipeline(StandardScaler(), MetaRouter(random_state=0))
    pipe.fit(X, y, metarouter__source=source)
    scaler = StandardScaler().fit(X)
    direct = MetaRouter(random_state=0).fit(scaler.transform(X), y, source=source)
    np.testing.assert_allclose(pipe.predict(split.test_X), direct.predict(scaler.transform(split.test_X)))


def test_model_selection_with_metadata_routing(arrays):
    X, y, source, split = arrays
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, source))
    with sklearn.config_context(enable_metadata_routing=True):
        router = MetaRouter(random_state=0).set_fit_request(source=True).set_score_request(source=True)
        scores = cross_val_score(router, X, y, params={"source": source}, cv=folds)
        pooled = Pooled(random_state=0).set_fit_request(source=True).set_score_request(source=True)
        grid = [DummyRegressor(), Ridge(), None]  # a constant, a linear and the default (LightGBM) gain model
        search = GridSearchCV(pooled, {"outcome_model": grid}, cv=folds).fit(X, y, source=source)
        by_hand = [cross_val_score(clone(pooled).set_params(outcome_model=m), X, y, params={"source": source},
                                   cv=folds).mean() for m in grid]
    # score = oracle share on each test fold's gold rows (50 per fold): measured 0.25-0.45 on this split
    assert scores.shape == (3,) and np.all(scores > 0.1)
    # the search scores each value as cross_val_score does, and keeps the best one
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], by_hand)
    assert search.best_index_ == int(np.argmax(by_hand)) and search.best_score_ == max(by_hand)
    # a constant gain model cannot rank queries: its oracle share is 0 (every query tied)
    assert by_hand[0] == pytest.approx(0.0, abs=1e-9) and max(by_hand) > 0.1
    # a score on gold rows only equals the oracle share of the held-out gold gains
    fitted = MetaRouter(random_state=0).fit(X, y, source=source)
    from causal_router.evaluate import oracle_share

    assert fitted.score(split.test_X, split.test_gold) == pytest.approx(
        oracle_share(fitted.predict(split.test_X), split.test_gold))
