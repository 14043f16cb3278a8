"""Part-B training on the model server's Ray cluster (lib.model_server_training) through the app's client
(lib.backends.remote_training).

The fast tests check the request's validation and the client's progress increments without a server. The slow ones
start the real server (Ray on 127.0.0.1, two CPUs: one for the Serve replica, one for a training job, so a second job
queues) and show: a remote run ends bit-for-bit as the same run trained here; two clients share one job; a full cluster
queues jobs and reports their place; cancel stops a run only when no other watcher is left (a vanished watcher's lease
runs out); bad and unauthorised requests get a 4xx and change nothing; a tampered result is refused; a server killed
mid-run and started again resumes the job from its saved state.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import torch
from fastapi import HTTPException

from lib.backends.remote_training import (CLIENT_HEADER, GRID_WIRE_DTYPE, RemoteJob, RemoteTrainingJobs, RunRefused,
                                          job_key)
from lib.model_server_training import BOUNDS, config_from_request
from lib.train import model_store
from lib.train.runs import run_training
from lib.train.training import SPEC, TrainConfig
from server_util import TOKEN, ModelServerProcess

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LEASE_S = 8.0  # the test server's watcher lease


def tiny(seed: int = 0, **overrides) -> TrainConfig:
    """A class-conditioned run of seconds: D = 4, two short epochs, a grid of a 3-step sampler after each."""
    fields = dict(hidden=4, batch_size=16, epochs=2, steps_per_epoch=5, snapshot_epochs=(1, 2), sample_stride=100,
                  seed=seed)
    return TrainConfig.spec("class", **{**fields, **overrides})


def long_run(seed: int) -> TrainConfig:
    """A run of minutes, for the tests that queue or cancel it long before it ends."""
    return tiny(seed, epochs=1, steps_per_epoch=BOUNDS["steps_per_epoch"][1], snapshot_epochs=(1,))


# --- without a server ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", list(SPEC))
def test_a_configuration_travels_as_json_and_comes_back_equal(model):
    for config in (TrainConfig.spec(model), TrainConfig.spec(model, seed=7, steps_per_epoch=3, epochs=2)):
        payload = json.loads(json.dumps({"config": config.as_dict()}))
        assert config_from_request(payload) == config
        assert job_key(config) == model_store.cache_path(config).stem
    shipped = model_store.shipped_run_config("time_beyond_spec")  # a later field (time_features) set
    assert config_from_request(json.loads(json.dumps({"config": shipped.as_dict()}))) == shipped


def test_bad_configurations_are_refused_with_one_line():
    good = json.loads(json.dumps(tiny().as_dict()))  # as it arrives: lists for tuples
    cases = {
        "not an object": ([good], 'body must be JSON {"config"'),
        "unknown field": ({**good, "gpus": 8}, "unknown configuration field 'gpus'"),
        "missing field": ({k: v for k, v in good.items() if k != "lr"}, "missing 1 required positional argument: 'lr'"),
        "string for int": ({**good, "hidden": "64"}, "'hidden' must be an integer"),
        "bool for int": ({**good, "epochs": True}, "'epochs' must be an integer"),
        "infinite lr": ({**good, "lr": float("inf")}, "'lr' must be a number"),
        "wide": ({**good, "hidden": 4096}, "hidden = 4096 is out of bounds: this server trains 1 ≤ hidden ≤ 256"),
        "long": ({**good, "epochs": 101}, "epochs = 101 is out of bounds"),
        "negative seed": ({**good, "seed": -1}, "seed = -1 is out of bounds"),
        "dataset": ({**good, "dataset": "cifar"}, "unknown dataset 'cifar'"),
        "validate": ({**good, "sample_stride": 300}, "bad configuration: sample_stride must be between 1 and 299"),
        "model": ({**good, "model": "gan"}, "bad configuration: unknown model 'gan'"),
        "snapshot epoch": ({**good, "snapshot_epochs": [0, 1]}, "snapshot_epochs must be epochs between 1 and 100"),
        "repeated snapshot": ({**good, "snapshot_epochs": [1, 1]}, "must be a list of distinct integers"),
    }
    for what, (config, message) in cases.items():
        payload = {"config": config} if what != "not an object" else config
        with pytest.raises(HTTPException) as info:
            config_from_request(payload)
        assert info.value.status_code == 400 and message in info.value.detail, (what, info.value.detail)
        assert "\n" not in info.value.detail


def test_progress_arrives_in_increments_and_follows_a_run_that_went_back():
    """The client's progress is rebuilt from increments: losses from ``loss_start`` on, grids it lacked (float16 on the
    wire, exact); a server whose run resumed from an earlier state sends an earlier ``loss_start`` and fewer grids."""
    job = RemoteJob(None, tiny(), job_key(tiny()))
    grid = torch.arange(40 * 28 * 28).reshape(40, 28, 28).remainder(256).to(torch.uint8)
    fields = {"step": 6, "total_steps": 10, "epoch": 1, "seconds": 2.5, "resumed_at": []}
    job.apply_state({"status": "running", "loss_start": 0, "epochs": [1], "progress": fields},
                    {"loss": torch.tensor([0.5, 0.25, 0.125, 0.1, 0.05, 0.025], dtype=torch.float64),
                     "grid.1": grid.to(GRID_WIRE_DTYPE)})
    p = job._progress
    assert p.losses == [0.5, 0.25, 0.125, 0.1, 0.05, 0.025] and p.step == 6 and p.seconds == 2.5
    assert torch.equal(p.snapshots[1], grid) and p.snapshots[1].dtype == torch.uint8
    assert p.seconds_left() == pytest.approx(2.5 * 4 / 6)
    job.apply_state({"status": "running", "loss_start": 6, "epochs": [1], "progress": {**fields, "step": 7}},
                    {"loss": torch.tensor([0.02], dtype=torch.float64)})
    assert p.losses[-2:] == [0.025, 0.02] and sorted(p.snapshots) == [1]
    # the server restarted and resumed at step 4 (before the grid of epoch 1): it sends from there and no grid
    job.apply_state({"status": "running", "loss_start": 4, "epochs": [], "progress": {**fields, "step": 5,
                                                                                      "resumed_at": [4]}},
                    {"loss": torch.tensor([0.07], dtype=torch.float64)})
    assert p.losses == [0.5, 0.25, 0.125, 0.1, 0.07] and p.snapshots == {} and p.resumed_at == [4]


# --- the real server -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The server's store (its DIFFUSION_LAB_CACHE): finished runs, saved states, the jobs' journal."""
    return tmp_path_factory.mktemp("server-store")


def start_server(log, store, port=None) -> ModelServerProcess:
    return ModelServerProcess("mnist-class", log, env={"DIFFUSION_LAB_CACHE": str(store)}, port=port,
                              args=("--save-every", "0.5", "--watcher-lease", str(LEASE_S))).wait_ready()


@pytest.fixture(scope="module")
def server(tmp_path_factory, store):
    """The running server; the restart test replaces it (``servers[0]``), and whichever runs last is stopped."""
    servers = [start_server(tmp_path_factory.mktemp("training-server") / "server.log", store)]
    try:
        yield servers
    finally:
        servers[0].stop()


def client(server, **kw) -> RemoteTrainingJobs:
    return RemoteTrainingJobs(server[0].url, TOKEN, poll_seconds=0, **kw)


def wait_for(job, statuses, timeout=240.0, until=lambda job: True):
    deadline = time.monotonic() + timeout
    while not (job.status in statuses and until(job)):
        assert time.monotonic() < deadline, (job.status, job.error, job.progress.step)
        time.sleep(0.2)
    return job


def local_run(config, mnist_train, mnist_test):
    return run_training(config, mnist_train, mnist_test, torch.device("cpu"))


def assert_same_run(a, b):
    assert a.config == b.config and a.losses == b.losses
    assert a.snapshots.keys() == b.snapshots.keys()
    assert all(torch.equal(a.snapshots[e], b.snapshots[e]) for e in a.snapshots)
    for ma, mb in ((a.model, b.model), (a.ema, b.ema)):
        sa, sb = ma.state_dict(), mb.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), "weights differ"


def overview(server) -> dict:
    return client(server).client.request("GET", "/training").json()


@pytest.mark.slow
def test_a_remote_run_ends_bit_for_bit_as_the_local_run_and_is_never_trained_again(server, store, mnist_train,
                                                                                    mnist_test, isolated_cache):
    config = tiny(seed=1)
    before = overview(server)["jobs"]
    job = client(server).start(config)
    assert job.status in ("queued", "running")
    wait_for(job, ("done",))
    local = local_run(config, mnist_train, mnist_test)
    remote = job.trained
    assert job.error == "" and remote is not None
    assert_same_run(remote, local)
    assert job.progress.losses == local.losses  # streamed as it trained, exactly
    assert remote.info["precision"] == local.info["precision"] and remote.info["device"] == "CPU (1 thread)"
    received = model_store.cache_path(config)
    assert received.parent == isolated_cache and received.read_bytes() == (store / received.name).read_bytes()
    # asked again — by anyone — it is the stored run, answered at once and not trained again
    stored_at = (store / received.name).stat().st_mtime_ns
    again = client(server).start(config)
    assert again.status == "done" and again._state["sha256"] == job._state["sha256"]
    assert (store / received.name).stat().st_mtime_ns == stored_at
    assert overview(server)["jobs"] == {**before, "done": before.get("done", 0) + 1}


@pytest.mark.slow
def test_two_clients_asking_for_one_configuration_share_one_job(server, mnist_train, mnist_test):
    config = tiny(seed=2, steps_per_epoch=40)
    before = overview(server)["jobs"]
    first, second = client(server), client(server)
    a = first.start(config)
    b = second.start(config)
    assert a.key == b.key == job_key(config)
    assert b._state["attached"] is True and a._state["attached"] is False and b.watchers == 2
    wait_for(a, ("done",))
    wait_for(b, ("done",))
    assert_same_run(a.trained, b.trained)
    assert a.progress.losses == b.progress.losses == local_run(config, mnist_train, mnist_test).losses
    assert overview(server)["jobs"] == {**before, "done": before.get("done", 0) + 1}  # one job ran


@pytest.mark.slow
def test_a_full_cluster_queues_jobs_and_reports_their_place(server):
    jobs = client(server)
    running = wait_for(jobs.start(long_run(10)), ("running",))
    second, third = jobs.start(long_run(11)), jobs.start(long_run(12))
    assert (second.status, second.queue_position) == ("queued", 0)
    assert (third.status, third.queue_position) == ("queued", 1)
    assert overview(server)["available"].get("CPU", 0) == 0  # the replica's CPU and the running job's
    assert running.stop() is True
    wait_for(running, ("cancelled",))
    # the freed CPU goes to one of the two (Ray does not promise first-come order among waiting tasks); the other is
    # now first in line
    deadline = time.monotonic() + 120
    while "running" not in (second.status, third.status):
        assert time.monotonic() < deadline, (second.status, third.status)
        time.sleep(0.2)
    started, waiting = (second, third) if second.status == "running" else (third, second)
    assert (waiting.status, waiting.queue_position) == ("queued", 0)
    assert waiting.stop() is True and waiting.status == "cancelled"  # taken off Ray's queue at once
    assert started.stop() is True
    wait_for(started, ("cancelled",))


@pytest.mark.slow
def test_cancel_stops_a_run_only_when_no_other_watcher_is_left(server, store):
    config = long_run(20)
    alice, bob = client(server), client(server)
    a = wait_for(alice.start(config), ("running",), until=lambda job: job.progress.step > 0)
    b = bob.get(config)
    assert b is not None and b.watchers == 2
    assert b.stop() is False  # Alice still watches: Bob only leaves
    assert a.status == "running" and a.watchers == 1
    assert a.stop() is True
    wait_for(a, ("cancelled",))
    saved = store / model_store.resume_path(config).name
    assert saved.exists()  # its state, to continue from when someone trains it again
    # a watcher who vanished (stopped polling) is dropped once its lease runs out
    config = long_run(21)
    a = wait_for(alice.start(config), ("running",))
    b = bob.start(config)
    assert b.watchers == 2
    time.sleep(LEASE_S + 1)  # Alice's tab closed: she polls no more
    assert b.watchers == 1 and b.stop() is True
    wait_for(b, ("cancelled",))


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.6, 1.5])
def test_a_run_cancelled_by_its_last_watcher_goes_on_for_whoever_asks_before_it_stopped(server, delay, mnist_train,
                                                                                       mnist_test):
    """Bob asks for the run ``delay`` s after Alice, its only watcher, cancelled it: before the task has seen the stop
    (it never does), or after it obeyed and saved its state (it is started again and continues from there), or after
    it ended (a new job resumes the saved state). Bob never sees it cancelled, and the run ends as if never stopped."""
    config = tiny(seed=30 + int(delay * 10), epochs=1, steps_per_epoch=400, snapshot_epochs=(1,))
    alice, bob = client(server), client(server)
    a = wait_for(alice.start(config), ("running",), until=lambda job: job.progress.step > 0)
    assert a.stop() is True
    time.sleep(delay)
    b = bob.start(config)
    deadline = time.monotonic() + 240
    seen = []
    while b.status != "done":
        seen.append(b.status)
        assert b.status != "cancelled" and time.monotonic() < deadline, (seen, b.error)
        time.sleep(0.1)
    assert b.progress.losses == local_run(config, mnist_train, mnist_test).losses


@pytest.mark.slow
def test_bad_and_unauthorised_requests_get_4xx_and_change_nothing(server, store):
    url = server[0].url
    auth = {"Authorization": f"Bearer {TOKEN}", CLIENT_HEADER: "client-0123456789"}
    config = tiny(seed=30)
    key = job_key(config)
    before = overview(server)
    journal = sorted((store / "jobs").glob("*.json"))

    def post(path, body=None, headers=auth, data=None):
        return requests.post(url + path, json=body, data=data, headers=headers, timeout=30)

    def get(path, headers=auth):
        return requests.get(url + path, headers=headers, timeout=30)

    cases = {
        "no token": (post("/training/jobs", {"config": config.as_dict()}, headers={}), 401, "access token"),
        "wrong token": (post("/training/jobs", {"config": config.as_dict()},
                             headers={**auth, "Authorization": "Bearer nope"}), 401, "access token"),
        "no token, state": (get(f"/training/jobs/{key}", headers={}), 401, "access token"),
        "no token, cancel": (post(f"/training/jobs/{key}/cancel", headers={}), 401, "access token"),
        "no token, result": (get(f"/training/jobs/{key}/result", headers={}), 401, "access token"),
        "no token, overview": (get("/training", headers={}), 401, "access token"),
        "no client id": (post("/training/jobs", {"config": config.as_dict()},
                              headers={"Authorization": auth["Authorization"]}), 400, CLIENT_HEADER),
        "not JSON": (post("/training/jobs", data=b"\xff\x00"), 400, 'body must be JSON {"config"'),
        "out of bounds": (post("/training/jobs", {"config": {**config.as_dict(), "hidden": 4096}}), 400,
                          "hidden = 4096 is out of bounds"),
        "refused by validate": (post("/training/jobs", {"config": {**config.as_dict(), "sample_stride": 300}}), 400,
                                "sample_stride must be between 1 and 299"),
        "oversized": (post("/training/jobs", data=b"{" + b" " * 20_000 + b"}"), 413, "at most"),
        "bad key": (get("/training/jobs/class-xyz"), 400, "is not a job key"),
        "bad since": (get(f"/training/jobs/{key}?since=-1"), 400, "since must be an integer"),
        "cancel unknown": (post(f"/training/jobs/{key}/cancel"), 404, f"no training job {key}"),
        "result unknown": (get(f"/training/jobs/{key}/result"), 404, "has no finished run"),
    }
    for what, (r, status, text) in cases.items():
        assert r.status_code == status and text in r.json()["detail"], (what, r.status_code, r.text[:300])
        assert "\n" not in r.json()["detail"]
    assert RemoteTrainingJobs(url, TOKEN).get(config) is None  # no job was made …
    after = overview(server)
    assert after["jobs"] == before["jobs"] and after["available"].get("CPU") == before["available"].get("CPU")
    assert sorted((store / "jobs").glob("*.json")) == journal  # … nothing written
    assert not (store / model_store.cache_path(config).name).exists()


@pytest.mark.slow
def test_a_tampered_result_is_refused(server, store, isolated_cache):
    config = tiny(seed=40)
    wait_for(client(server).start(config), ("done",))
    stored = store / model_store.cache_path(config).name
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01  # after the server recorded its digest
    stored.write_bytes(bytes(data))
    job = client(server).start(config)
    assert job.status == "done"
    with pytest.raises(RunRefused, match=r"does not match its digest .*: refused, nothing was kept"):
        job.result()
    assert not model_store.cache_path(config).exists()
    assert job.trained is None and job.status == "failed" and "does not match its digest" in job.error


@pytest.mark.slow
def test_a_server_killed_mid_run_resumes_the_job_when_it_starts_again(server, store, tmp_path, mnist_train,
                                                                      mnist_test):
    config = tiny(seed=50, steps_per_epoch=60)
    jobs = RemoteTrainingJobs(server[0].url, TOKEN, poll_seconds=0, retries=1)
    job = wait_for(jobs.start(config), ("running",), until=lambda job: job.progress.step >= 20)
    port = server[0].port
    server[0].kill()
    assert (store / "jobs" / f"{job.key}.json").exists() and (store / model_store.resume_path(config).name).exists()
    assert job.status == "running" and "not reachable" in job.error  # the last progress, and why
    server[0] = start_server(tmp_path / "server2.log", store, port=port)
    wait_for(job, ("done",))
    run = job.trained
    assert run.info["resumed_at_steps"] and 0 < run.info["resumed_at_steps"][0] < 120
    assert_same_run(run, local_run(config, mnist_train, mnist_test))
    assert not (store / "jobs" / f"{job.key}.json").exists()


# --- the pages through the server -------------------------------------------------------------------------------------

@pytest.fixture()
def pages_on(server, monkeypatch, tmp_path, mnist_train, mnist_test):
    """The app configured with the test server, the whole MNIST (as the server's jobs train on) and no shipped model."""
    import streamlit as st

    import ui.common

    monkeypatch.setenv("DIFFUSION_LAB_SERVER_URL", server[0].url)
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_TOKEN", TOKEN)
    monkeypatch.setattr(ui.common, "mnist", lambda: (mnist_train, mnist_test))
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "no_models")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def trained_on(place: str, until, page: str = "app_pages/single_step.py", shipped_run: str = "denoiser",
               sample_stride: int | None = None):
    """``page`` with the short-run controls of ``shipped_run`` (D = 8, 1 epoch, batch 32, 3 steps; grids of stride
    ``sample_stride``), Train pressed with ``place`` chosen; ``until(at)`` is called on each redraw until it returns
    True. Returns the AppTest."""
    from streamlit.testing.v1 import AppTest

    from test_pages_part_b import ROOT, run, short_run_controls
    from ui.training.place import PLACE_KEY

    at = run(AppTest.from_file(str(ROOT / page), default_timeout=120))
    run(at.radio(key=PLACE_KEY).set_value(place))
    short_run_controls(at, shipped_run, sample_stride=sample_stride)
    run(at.button(key=f"{Path(page).stem}_train").click())  # the section's slug names its Train button
    deadline = time.monotonic() + 240
    while not until(at):
        assert time.monotonic() < deadline, [e.value for e in (*at.error, *at.warning, *at.success)]
        time.sleep(0.5)
        run(at)
    return at


def finished(at) -> bool:
    from test_pages_part_b import texts

    return "Training finished: 3 steps" in texts(at.success)


@pytest.mark.slow
def test_b1_trains_through_the_server_queued_then_live_and_shows_the_page_of_a_local_run(server, pages_on):
    import streamlit as st

    from test_pages_part_b import figures, image_urls, texts, values
    from ui.training.place import HERE, SERVER

    blocker = client(server).start(long_run(60))  # takes the cluster's one training CPU: the page's run queues
    wait_for(blocker, ("running",))
    seen = []

    def queued_then_done(at):
        bars = [p.proto.text for p in at.get("progress")]
        seen.extend(bars)
        if "Queued on the model server: yours starts next." in bars and blocker.watchers:
            assert blocker.stop() is True  # the cluster frees up: the page's run starts
        return finished(at)

    remote = trained_on(SERVER, queued_then_done)
    assert "Queued on the model server: yours starts next." in seen
    assert "Showing **your training run**, not the shipped model. Trained on CPU (1 thread)" in texts(remote.caption)

    config = TrainConfig.spec("denoiser", hidden=8, epochs=1, batch_size=32, steps_per_epoch=3)
    model_store.cache_path(config).unlink()  # the run the page fetched, so that "here" trains it again
    st.cache_resource.clear()
    local = trained_on(HERE, finished)
    (remote_loss, remote_sweep), (local_loss, local_sweep) = figures(remote), figures(local)
    assert list(values(remote_loss["data"][0]["y"])) == list(values(local_loss["data"][0]["y"]))
    assert list(values(remote_sweep["data"][0]["y"])) == list(values(local_sweep["data"][0]["y"]))
    assert image_urls(remote) and image_urls(remote) == image_urls(local)  # the same PNG bytes: the same weights


@pytest.mark.slow
@pytest.mark.parametrize("page,shipped_run", [("app_pages/time_ddpm.py", "time"), ("app_pages/class_ddpm.py", "class"),
                                              ("app_pages/time_flow.py", "flow_time")])
def test_b2_b3_and_the_time_conditioned_flow_train_through_the_server_and_show_the_page_of_a_local_run(
        server, store, pages_on, page, shipped_run):
    import streamlit as st

    from test_pages_part_b import figures, image_urls, texts
    from ui.training.place import HERE, SERVER

    config = TrainConfig.spec(shipped_run, hidden=8, epochs=1, batch_size=32, steps_per_epoch=3, sample_stride=10)
    remote = trained_on(SERVER, finished, page, shipped_run, sample_stride=10)
    fetched = model_store.cache_path(config)
    assert fetched.read_bytes() == (store / fetched.name).read_bytes()  # trained there, and fetched whole
    assert "Showing **your training run**, not the shipped model. Trained on CPU (1 thread)" in texts(remote.caption)

    fetched.unlink()  # so that "here" trains it again
    st.cache_resource.clear()
    local = trained_on(HERE, finished, page, shipped_run, sample_stride=10)
    assert fetched.exists()
    # the same figures (loss curve, schedule or path, samples' values) and the same PNG bytes: the same weights
    assert [f["data"] for f in figures(remote)] == [f["data"] for f in figures(local)]
    assert image_urls(remote) and image_urls(remote) == image_urls(local)
