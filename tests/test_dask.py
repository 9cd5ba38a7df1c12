"""The Dask engine on a 2-worker LocalCluster (127.0.0.1): same results as the local engine,
per-partition failure reports, the output cache honoured, a killed worker survived."""
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from alchemist_magics.aggregate import DawidSkene, MajorityVote  # noqa: E402
from alchemist_magics.data import load_wrench  # noqa: E402
from alchemist_magics.examples.youtube import PROGRAMS  # noqa: E402
from alchemist_magics.programs import LabelSpace, OutputCache, apply_programs  # noqa: E402
from alchemist_magics.scale import Partition, apply_programs_dask, split_rows  # noqa: E402

YOUTUBE = Path(__file__).resolve().parents[2] / "shared" / "data" / "youtube"
SPAM_LINK = "def has_link(text):\n    return 1 if 'http' in text else -1\n"
# Same labels as SPAM_LINK, ~5 ms a row: a 400-row partition keeps a worker busy for a while.
SLOW_LINK = (
    "def has_link(text):\n    total = 0\n    for i in range(60000):\n        total += i\n"
    "    return 1 if 'http' in text else -1\n"
)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def youtube():
    ds = load_wrench(YOUTUBE)["train"]
    return ds, LabelSpace(ds.classes)


def test_same_matrix_statuses_and_predictions_as_local(client, youtube):
    ds, ls = youtube
    local = apply_programs(PROGRAMS, ds.inputs(), ls, progress=False)
    dask = apply_programs_dask(PROGRAMS, ds, ls, client, partition_rows=300, progress=False)
    assert dask.L.dtype == np.int8 and dask.L.shape == (len(ds), len(PROGRAMS))
    np.testing.assert_array_equal(dask.L, local.L)
    assert [r.status for r in dask.runs] == [r.status for r in local.runs] == ["ok"] * len(PROGRAMS)
    assert [r.message for r in dask.runs] == [r.message for r in local.runs]
    assert len(dask.partitions) == len(PROGRAMS) * 6  # ceil(1586 / 300) partitions per program
    assert {p.start for p in dask.partitions} == set(range(0, len(ds), 300))
    for Model in (MajorityVote, DawidSkene):
        expected = Model(cardinality=2, seed=0).fit(local.L).predict(local.L, uncovered="prior")
        got = Model(cardinality=2, seed=0).fit(dask.L).predict(dask.L, uncovered="prior")
        np.testing.assert_array_equal(got, expected)
    assert (expected == ds.labels).mean() > 0.7  # the programs are real spam rules, not noise


def test_failures_are_reported_per_partition(client):
    texts = [f"row {i}" + (" boom" if i in (130, 150, 170) else "") for i in range(300)]
    raises = "def raises(text):\n    if 'boom' in text:\n        raise ValueError('bad row')\n    return 0\n"
    runs_out = "def runs_out(text):\n    if 'boom' in text:\n        raise MemoryError()\n    return 1\n"
    local = apply_programs([raises, runs_out], texts, LabelSpace(["a", "b"]), progress=False)
    dask = apply_programs_dask([raises, runs_out], texts, LabelSpace(["a", "b"]), client, partition_rows=100,
                               progress=False)
    np.testing.assert_array_equal(dask.L, local.L)
    ok, failed = dask.runs
    assert ok.status == "ok" and ok.faults == 3 and "partition rows 100-199" in ok.message
    assert failed.status == local.runs[1].status == "memory_limit"
    assert failed.message.startswith("partition rows 100-199: exceeded the 2048 MB memory limit")
    assert (dask.L[:, 1] == -1).all()  # like the local engine: a failed program contributes no labels
    problems = dask.partition_summary(problems_only=True)
    assert [(p["program"], p["partition"], p["status"], p["faults"]) for p in problems] == [
        ("raises", "rows 100-199", "ok", 3), ("runs_out", "rows 100-199", "memory_limit", 3)]
    assert all(p["worker"].startswith("tcp://127.0.0.1:") for p in problems)
    # each worker's sandbox reports its layers, and the merge keeps the weakest
    assert {p["isolation"] for p in problems} == {local.isolation}
    assert dask.isolation == local.isolation and dask.summary()[0]["isolation"] == local.isolation


def test_a_partition_that_cannot_load_is_reported_not_lost(client):
    def missing_shard():
        raise OSError("shard 1 is missing")

    parts = split_rows(["x"] * 10, 5)
    parts.insert(1, Partition("shard 1", 5, load=missing_shard))
    result = apply_programs_dask([SPAM_LINK], parts, LabelSpace(["ham", "spam"]), client, retries=0, progress=False)
    run = result.runs[0]
    assert run.status == "crashed"
    assert run.message.startswith("partition shard 1: OSError: shard 1 is missing")
    assert [p.status for p in result.partitions] == ["ok", "task_failed", "ok"]
    assert result.L.shape == (15, 1) and (result.L == -1).all()


def test_cache_is_checked_before_scheduling(client, youtube, tmp_path):
    ds, ls = youtube
    cache = OutputCache(tmp_path)
    first = apply_programs_dask(PROGRAMS, ds, ls, client, cache=cache, partition_rows=500, progress=False)
    assert not any(r.cached for r in first.runs) and len(cache) == len(PROGRAMS)
    with distributed.get_task_stream(client) as stream:
        again = apply_programs_dask(PROGRAMS, ds, ls, client, cache=cache, partition_rows=500, progress=False)
    assert stream.data == [] and again.partitions == []
    assert all(r.cached for r in again.runs)
    np.testing.assert_array_equal(again.L, first.L)
    # the key is the local engine's: a local run on the same dataset hits the entries dask stored
    local = apply_programs(PROGRAMS, ds.inputs(), ls, cache=cache, dataset_fingerprint=ds.fingerprint, progress=False)
    assert all(r.cached for r in local.runs)


def test_partitions_with_loaders_need_a_fingerprint_for_the_cache(client, tmp_path):
    parts = [Partition("p0", 2, load=lambda: ["a", "b"])]
    with pytest.raises(ValueError, match="dataset_fingerprint"):
        apply_programs_dask([SPAM_LINK], parts, LabelSpace(["ham", "spam"]), client, cache=OutputCache(tmp_path))


def test_a_killed_worker_is_survived(client, youtube):
    ds, ls = youtube
    expected = apply_programs([SPAM_LINK], ds.inputs(), ls, progress=False).L
    pids = client.run(os.getpid)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(apply_programs_dask, [SLOW_LINK], ds, ls, client, partition_rows=400, progress=False)
        victim = None
        deadline = time.monotonic() + 30
        while victim is None and time.monotonic() < deadline:
            busy = [worker for worker, keys in client.processing().items() if keys]
            victim = busy[0] if busy else None
            time.sleep(0.05)
        assert victim is not None, "no task started within 30 s"
        time.sleep(0.3)  # let its sandbox get going
        os.kill(pids[victim], signal.SIGKILL)
        result = running.result(timeout=120)
    assert not running.exception()
    assert result.runs[0].status == "ok", result.partition_summary()
    assert [p.status for p in result.partitions] == ["ok"] * 4, result.partition_summary()
    np.testing.assert_array_equal(result.L, expected)
    client.wait_for_workers(2, timeout=30)  # the nanny restarted it
    assert pids[victim] not in client.run(os.getpid).values()


# -- label models over row chunks ------------------------------------------------------------------
from alchemist_magics.aggregate.chunked import (  # noqa: E402
    fit_chunked, npy_chunks, predict_chunked, predict_proba_chunked)
from alchemist_magics.aggregate.synthetic import make_label_matrix  # noqa: E402


@pytest.fixture(scope="module")
def matrix():
    L, _, _ = make_label_matrix(6_000, 20, 3, seed=4)
    return L


def _sources(L, tmp_path):
    import dask.array as da

    np.save(tmp_path / "L.npy", L)
    return {
        "array": L,
        "memmap": np.load(tmp_path / "L.npy", mmap_mode="r"),
        "list": [L[:2500], L[2500:2501], L[2501:]],
        "npy file": npy_chunks(tmp_path / "L.npy", 1500),
        "dask array": da.from_array(L, chunks=(2000, 7)),
    }


@pytest.fixture
def in_process_dask():
    """Dask arrays computed in this process: EM makes ~40 passes, cluster round trips would dominate."""
    import dask

    with dask.config.set(scheduler="sync"):
        yield


@pytest.mark.parametrize("Model", [MajorityVote, DawidSkene])
@pytest.mark.usefixtures("in_process_dask")
def test_chunked_fit_and_predict_equal_the_in_memory_model(Model, matrix, tmp_path):
    full = Model(cardinality=3, seed=2).fit(matrix)
    proba, hard, guess = full.predict_proba(matrix), full.predict(matrix), full.predict(matrix, uncovered="prior")
    assert (hard == -1).any()  # some rows uncovered: both branches of `uncovered` are exercised
    for name, source in _sources(matrix, tmp_path).items():
        model = fit_chunked(Model(cardinality=3, seed=2), source, chunk_rows=2000)
        np.testing.assert_allclose(model.prior_, full.prior_, atol=1e-6, err_msg=name)
        if Model is DawidSkene:
            assert model.n_iter_ == full.n_iter_, name
            np.testing.assert_allclose(model.confusion_, full.confusion_, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(predict_proba_chunked(model, source, chunk_rows=1700), proba, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(predict_chunked(model, source, chunk_rows=1700), hard, err_msg=name)
        np.testing.assert_array_equal(predict_chunked(model, source, "prior", chunk_rows=1700), guess, err_msg=name)


def test_chunked_proba_into_a_given_array(matrix, tmp_path):
    model = fit_chunked(DawidSkene(cardinality=3), matrix, chunk_rows=2500)
    out = np.lib.format.open_memmap(tmp_path / "P.npy", mode="w+", dtype=np.float64, shape=(len(matrix), 3))
    assert predict_proba_chunked(model, matrix, out=out, chunk_rows=2500) is out
    np.testing.assert_allclose(out, model.predict_proba(matrix))
    with pytest.raises(ValueError, match="out has 5 rows"):
        predict_proba_chunked(model, matrix, out=np.empty((5, 3)))


def test_chunk_source_errors_are_one_line_and_named(matrix):
    one_shot = (matrix[i:i + 2000] for i in range(0, len(matrix), 2000))
    with pytest.raises(ValueError, match="already read once; pass a callable"):
        fit_chunked(DawidSkene(cardinality=3), one_shot)
    mv = fit_chunked(MajorityVote(cardinality=3, seed=2), (c for c in [matrix]))  # one pass is enough for MV
    np.testing.assert_allclose(mv.prior_, MajorityVote(cardinality=3, seed=2).fit(matrix).prior_)
    with pytest.raises(ValueError, match="disagree on the number of programs: 19 vs 20"):
        fit_chunked(MajorityVote(cardinality=3), [matrix[:10], matrix[10:20, :19]])
    with pytest.raises(ValueError, match=r"values must lie in -1..2"):
        fit_chunked(MajorityVote(cardinality=3), [matrix[:10], np.full((2, 20), 3)])
    with pytest.raises(TypeError, match="supports MajorityVote and DawidSkene"):
        from alchemist_magics.aggregate import Triplet
        fit_chunked(Triplet(cardinality=3), matrix)


# -- CLIP embeddings across workers ----------------------------------------------------------------
def test_clip_embeddings_on_workers_fill_the_same_cache(client, tmp_path):
    pytest.importorskip("open_clip")
    import open_clip
    from test_images import draw, tiny_model

    from alchemist_magics.images import ClipModel, embed_images, load_image_folder
    from alchemist_magics.scale.images import embed_images_dask

    for i in range(10):
        shape = "square" if i % 2 else "circle"
        (tmp_path / "images" / shape).mkdir(parents=True, exist_ok=True)
        draw(shape, "land", i).save(tmp_path / "images" / shape / f"{i}.png")
    images = load_image_folder(tmp_path / "images")
    clip = ClipModel(tiny_model(), open_clip.image_transform(32, is_train=False), device="cpu")
    cache_dir = tmp_path / "cache"
    on_cluster = embed_images_dask(images, clip, client, cache_dir=cache_dir, partition_size=5, progress=False)
    assert on_cluster.embedded == 10 and on_cluster.cached == 0 and len(on_cluster) == 10
    local = embed_images(images, clip, cache_dir=tmp_path / "local-cache", progress=False)
    np.testing.assert_allclose(on_cluster.vectors, local.vectors, atol=1e-5)
    again = embed_images(images, clip, cache_dir=cache_dir, progress=False)  # the local engine hits the cluster's entries
    assert again.embedded == 0 and again.cached == 10


def test_workbench_apply_on_dask_equals_local(client, tmp_path):
    from alchemist_magics import TaskSpec, Workbench

    splits = load_wrench(YOUTUBE)
    task = TaskSpec("yt", "spam?", splits["train"].classes)
    local = Workbench(task, splits["train"], splits["valid"], root=tmp_path / "local")
    remote = Workbench(task, splits["train"], splits["valid"], root=tmp_path / "dask")
    for bench in (local, remote):
        assert bench.add_all(PROGRAMS) == len(PROGRAMS)
    local.apply(progress=False)
    remote.apply(progress=False, engine="dask", client=client)
    for split in ("train", "dev"):
        np.testing.assert_array_equal(remote.matrix(split), local.matrix(split))
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        local.apply(engine="spark")
