"""The distributed fit (causal_router.distributed) on a small local Dask cluster: the same router,
the same errors, the same correction as the single-machine fit. Skipped without the [dask] extra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed", reason="the [dask] extra is not installed")
pytest.importorskip("dask.dataframe", reason="the [dask] extra is not installed")

from causal_router import BiasEstimator, EvalData, MetaRouter  # noqa: E402
from causal_router._compiled import compiled_model  # noqa: E402
from causal_router._validation import DataError  # noqa: E402
from causal_router.datasets import make_semi_synthetic  # noqa: E402
from causal_router.distributed import fit_distributed, local_cluster, read_partitions  # noqa: E402
from causal_router.router import BaseRouter, correct_labels  # noqa: E402

N, N_GOLD, D, FILES = 3000, 300, 20, 5
FEATURES = [f"x{j}" for j in range(D)]


def make_frame(seed: int = 0, n: int = N, n_gold: int = N_GOLD) -> pd.DataFrame:
    """The generator's rows as a user's table: features (float32, as the benchmark writes them),
    gain, source; ``n_gold`` gold rows at random positions. ``psi`` is kept aside for the truth."""
    frame = make_semi_synthetic(n, D, random_state=seed)
    is_gold = np.zeros(n, dtype=bool)
    is_gold[np.random.default_rng(seed).choice(n, n_gold, replace=False)] = True
    out = frame[FEATURES].astype(np.float32)
    out["gain"] = np.where(is_gold, frame["gold_gain"], frame["pref_gain"])
    out["source"] = np.where(is_gold, "gold", "preference")
    return out


def write_parquet(frame: pd.DataFrame, folder, files: int = FILES):
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
        frame.iloc[rows].to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def client():
    """Two workers (threads of this process: quick to start), shared by the module."""
    from distributed import Client

    with local_cluster(2, processes=False, memory_limit="2GiB") as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    frame = make_frame(0)
    return frame, write_parquet(frame, tmp_path_factory.mktemp("parquet") / "data")


@pytest.fixture(scope="module")
def fits(dataset, client):
    """The local fit and two distributed fits of the default MetaRouter(random_state=0)."""
    frame, folder = dataset
    local = MetaRouter(random_state=0).fit(EvalData.from_frame(frame, FEATURES))
    dist = [fit_distributed(folder, features=FEATURES, router=MetaRouter(random_state=0), client=client,
                            progress=False) for _ in range(2)]
    return local, dist


@pytest.fixture(scope="module")
def test_queries():
    test = make_semi_synthetic(1000, D, random_state=99)
    return test[FEATURES], test["psi"].to_numpy()  # named, as the routers were fitted


def test_router_file_of_a_distributed_fit_loads_and_routes(fits, test_queries, tmp_path):
    _, (router, _) = fits
    X, _ = test_queries
    assert compiled_model(router.gain_model_) is not None  # routes with the compiled kernel
    path = router.save(tmp_path / "router.cr")
    loaded = BaseRouter.load(path)
    assert isinstance(loaded, MetaRouter)
    np.testing.assert_array_equal(loaded.predict_gain(X), router.predict_gain(X))
    w = loaded.threshold_for_share(X, 0.3)
    np.testing.assert_array_equal(loaded.route(X, cost_weight=w), router.route(X, cost_weight=w))
    assert loaded.route(X, cost_weight=w).mean() == pytest.approx(0.3, abs=0.002)
    text = router.gain_model_.model_to_string()
    assert "[machines: ]" in text and "[num_machines: 1]" in text  # no host or port in the file


def test_bias_model_and_scale_are_the_local_ones_below_the_cap(fits, test_queries):
    # every row is kept below the cap, in file order: the bias model is the single-machine one
    local, (dist, _) = fits
    X, _ = test_queries
    assert dist.scale_ == pytest.approx(local.scale_, rel=1e-12)
    np.testing.assert_array_equal(dist.bias_.effect(X), local.bias_.effect(X))
    np.testing.assert_array_equal(dist.bias_.sample_index_, np.arange(N))
    assert dist.bias_.get_params()["scale"] == "variance"


def test_query_ids_reach_the_bias_model_as_in_the_local_fit(dataset, client, test_queries, tmp_path):
    """With a query_id column whose queries repeat (here 6 rows per query), the distributed bias model
    cross-fits by query and clusters its average by query, as the single-machine fit does: below the
    cap its estimate and interval equal the local fit's with the same query ids."""
    frame, _ = dataset
    frame = frame.assign(query_id=np.repeat(np.arange(N // 6), 6))
    folder = write_parquet(frame, tmp_path / "queries")
    dist = fit_distributed(folder, features=FEATURES, query_id="query_id", router=MetaRouter(random_state=0),
                           client=client, progress=False)
    local = MetaRouter(random_state=0).fit(EvalData.from_frame(frame, FEATURES, query_id="query_id"))
    ate = dist.bias_.ate()
    assert ate["n_clusters"] == N // 6 and local.bias_.ate()["n_clusters"] == N // 6
    X, _ = test_queries
    np.testing.assert_array_equal(dist.bias_.effect(X), local.bias_.effect(X))
    assert ate[["estimate", "std_error", "lower", "upper"]].tolist() == pytest.approx(
        local.bias_.ate()[["estimate", "std_error", "lower", "upper"]].tolist(), rel=1e-12)


def test_agrees_with_the_local_fit(fits, test_queries):
    # Measured with `python benchmarks/bench_distributed.py agree --n 3000 --n-gold 300 --d 20 --seeds
    # 0 1 2 3 4 5 6 7 8 9` (this size and generator; 2,000 test queries): the distributed fit and
    # the local fit with the same seed route the same way on 0.923-0.940 / 0.883-0.914 /
    # 0.920-0.939 of the queries at primary shares 0.2 / 0.5 / 0.8, gain correlation 0.942-0.952;
    # a local refit with another seed: 0.905-0.931 / 0.886-0.908 / 0.912-0.935, 0.932-0.946. The
    # distributed fit differs from the local one as much as a reseeded local fit does. Bounds with
    # margin for 1,000 test queries (sd of a share about 0.01): 0.86 and 0.92.
    local, (dist, _) = fits
    X, truth = test_queries
    a, b = local.predict_gain(X), dist.predict_gain(X)
    assert np.corrcoef(a, b)[0, 1] > 0.92
    for share in (0.2, 0.5, 0.8):
        same = np.mean((a >= np.quantile(a, 1 - share)) == (b >= np.quantile(b, 1 - share)))
        assert same > 0.86, (share, same)
    # both learn the truth (oracle share 1 = the true ranking): the distributed fit is not worse
    from causal_router.evaluate import oracle_share

    assert oracle_share(b, truth) > oracle_share(a, truth) - 0.05


def test_deterministic_given_random_state(fits, test_queries):
    _, (first, second) = fits
    X, _ = test_queries
    assert first.gain_model_.model_to_string() == second.gain_model_.model_to_string()
    np.testing.assert_array_equal(first.predict_gain(X), second.predict_gain(X))


def test_partition_wise_correction_equals_the_local_correction(fits, dataset):
    # the labels the gain model trains on, corrected partition by partition with the fitted bias
    # model (as each worker does), equal the single-machine fit's, row for row
    # (the judge's weight and the gold rows' model of preference_weight="auto" included)
    from causal_router.router import weigh_judge

    local, dist = fits
    _, folder = dataset
    ddf = read_partitions(folder)
    frame, _ = dataset
    data = EvalData.from_frame(frame, FEATURES)
    judge, gold_model = weigh_judge(data, local.bias_, random_state=0)
    assert judge["weight"] == local.judge_weight_ == dist[0].judge_weight_
    w = judge["weight"]

    def correct(frame):
        is_gold = (frame["source"] == "gold").to_numpy()
        return pd.Series(correct_labels(local.bias_, frame[FEATURES].to_numpy(dtype=float), frame["gain"].to_numpy(),
                                        is_gold, judge_weight=w, gold_model=gold_model), index=frame.index)

    corrected = ddf.map_partitions(correct, meta=("label", float)).compute(scheduler="sync").to_numpy()
    np.testing.assert_array_equal(corrected, correct_labels(local.bias_, data.X, data.gain, data.is_gold,
                                                            judge_weight=w, gold_model=gold_model))
    # what the local gain model was fitted on (kept divided by the scale: equal to the last bit)
    np.testing.assert_allclose(corrected / local.scale_, local.corrected_gain_, rtol=1e-15, atol=0)


def test_sample_above_the_cap_keeps_every_gold_row(dataset, client, monkeypatch):
    # with the cap lowered to 1,000 preference rows the sample is drawn partition by partition:
    # every gold row, 1,000 distinct preference rows from every file, the same draw for the same seed
    import causal_router.distributed as dist_module

    frame, folder = dataset
    monkeypatch.setattr(dist_module, "PREFERENCE_ROWS_MIN", 1000)
    monkeypatch.setattr(dist_module, "PREFERENCE_ROWS_PER_GOLD", 2)
    fast = MetaRouter(BiasEstimator(cv=2, model_final="constant"), random_state=3)
    runs = [fit_distributed(folder, features=FEATURES, router=fast, client=client, progress=False) for _ in range(2)]
    rows = runs[0].bias_.sample_index_
    np.testing.assert_array_equal(rows, runs[1].bias_.sample_index_)
    gold = np.flatnonzero(frame["source"].to_numpy() == "gold")
    assert np.isin(gold, rows).all() and len(np.unique(rows)) == len(rows) == N_GOLD + 1000
    per_file = np.bincount(np.searchsorted(np.cumsum([len(r) for r in np.array_split(np.arange(N), FILES)]),
                                           rows, side="right"), minlength=FILES)
    assert (per_file > 0).all()
    # the variance constant comes from every row's partition moments, not from the sample
    assert runs[0].distributed_summary_["scale_exact"]
    gain, is_gold = frame["gain"].to_numpy(), frame["source"].to_numpy() == "gold"
    assert runs[0].scale_ == pytest.approx(np.std(gain[~is_gold]) / np.std(gain[is_gold]), rel=1e-12)


@pytest.mark.parametrize("method", ["amplitude", "wasserstein"])
def test_scale_methods_equal_the_local_ones_below_the_cap(dataset, client, method):
    frame, folder = dataset
    fast = MetaRouter(BiasEstimator(cv=2, model_final="constant"), scale=method, random_state=0)
    local = clone_fit(fast, frame)
    dist = fit_distributed(folder, features=FEATURES, router=fast, client=client, progress=False)
    assert dist.scale_ == pytest.approx(local.scale_, rel=1e-12)


def clone_fit(router, frame):
    from sklearn.base import clone

    return clone(router).fit(EvalData.from_frame(frame, FEATURES))


def _bad_frames():
    base = make_frame(1, n=600, n_gold=60)
    nan = base.copy()
    nan.loc[[450, 451, 590], "x7"] = np.nan  # in the last partitions: the counts are over every partition
    nan.loc[500, "x9"] = np.inf
    inf_gain = base.copy()
    inf_gain.loc[[10, 400], "gain"] = np.inf
    labels = base.copy()
    labels.loc[[5, 300], "source"] = ["judge", "Gold"]
    no_gold = base.assign(source="preference")
    all_gold = base.assign(source="gold")
    copy = base.copy()
    copy["x3"] = copy["gain"].astype(np.float32).astype(float)
    copy["gain"] = copy["x3"]
    few_gold = base.assign(source=np.where(np.arange(len(base)) < 3, "gold", "preference"))
    big = base.assign(x2=base["x2"].astype(float))
    big.loc[100, "x2"] = 1e150
    return {"nan_and_inf_in_features": nan, "inf_in_gain": inf_gain, "unknown_source_labels": labels,
            "no_gold_rows": no_gold, "one_source_only": all_gold, "feature_equal_to_label": copy,
            "too_few_gold_rows": few_gold, "too_large_value": big}


@pytest.mark.parametrize("case", list(_bad_frames()))
def test_input_errors_equal_the_local_fit(case, client, tmp_path):
    frame = _bad_frames()[case]
    with pytest.raises(DataError) as local:
        MetaRouter(random_state=0).fit(EvalData.from_frame(frame, FEATURES))
    folder = write_parquet(frame, tmp_path / case)
    with pytest.raises(DataError) as dist:
        fit_distributed(folder, features=FEATURES, client=client, progress=False)
    assert str(dist.value) == str(local.value)


def test_missing_column_error_equals_the_local_fit(dataset, client):
    frame, folder = dataset
    features = FEATURES + ["not_there"]
    with pytest.raises(DataError) as local:
        EvalData.from_frame(frame, features)
    with pytest.raises(DataError) as dist:
        fit_distributed(folder, features=features, client=client, progress=False)
    assert str(dist.value) == str(local.value)


def test_refuses_what_it_cannot_fit(dataset, client, tmp_path):
    _, folder = dataset
    from sklearn.ensemble import RandomForestRegressor

    with pytest.raises(DataError, match="outcome_model must be None or an LGBMRegressor"):
        fit_distributed(folder, features=FEATURES, router=MetaRouter(outcome_model=RandomForestRegressor()),
                        client=client)
    with pytest.raises(DataError, match="holds no .parquet files"):
        fit_distributed(tmp_path, features=FEATURES, client=client)
    with pytest.raises(DataError, match="either address or client"):
        fit_distributed(folder, features=FEATURES, client=client, address="tcp://127.0.0.1:1")


def test_cli_fit_engine_dask_then_route(dataset, client, tmp_path):
    # --address: the module's cluster (the default, a local cluster of worker processes, is what
    # benchmarks/bench_distributed.py runs; it takes tens of seconds to start on a loaded machine)
    from causal_router.cli import main

    frame, folder = dataset
    out = tmp_path / "router.cr"
    assert main(["fit", str(folder), "--engine", "dask", "--address", client.scheduler.address, "--cv", "2",
                 "--out", str(out)]) == 0
    queries = tmp_path / "queries.csv"
    frame.head(50).to_csv(queries, index=False)
    assert main(["route", str(queries), "--router", str(out), "--out", str(tmp_path / "routes.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "routes.csv")) == 50
    assert main(["fit", str(folder), "--address", "tcp://127.0.0.1:1", "--out", str(tmp_path / "x.cr")]) == 2
    assert main(["fit", str(folder), "--engine", "dask", "--text", "q", "--out", str(tmp_path / "x.cr")]) == 2
