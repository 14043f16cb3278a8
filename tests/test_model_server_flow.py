"""The model server's flow models for real: Ray Serve started by the test on the loopback address with a tiny
class-conditioned flow model (D = 4, its EMA apart from its weights) as a finished run in a model cache — the on-disk
layout a run trained on its part-B page has —, found by the server as the app finds it, and driven through
lib.backends.remote as the flow pages drive it.

A remote velocity is the local one for the same x, t and condition; sessions in step at the same t share one network
call; a velocity request to a noise model (and the reverse) is refused with a message; a killed server gives one line.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
import torch
import torch.nn.functional as F

from lib.ddpm.sampling import PromptError
from lib.flow.euler import sample
from lib.flow.mnist import MnistFlow
from lib.backends.remote import RemoteUnavailable, ServerClient
from lib.backends.wire import pack
from lib.train import model_store
from server_util import TOKEN, ModelServerProcess
import test_pages_flow_part_a as flow_pages

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FLOW = "mnist-flow-class"
CONFIG = flow_pages.CONFIG
tiny_run = flow_pages.tiny_run  # the fixture: the tiny run with its EMA apart from its weights


@pytest.fixture(scope="module")
def flow_cache(tmp_path_factory, tiny_run):
    """A model cache holding the tiny run as a finished ``flow_class`` run (its file as ``model_store.store`` names
    it)."""
    folder = tmp_path_factory.mktemp("flow-cache")
    model_store.save_run(tiny_run, folder / model_store.cache_path(CONFIG).name, {"device": "cpu (test)"})
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, flow_cache):
    tmp = tmp_path_factory.mktemp("flow-server")
    shipped = tmp / "shipped"  # the shipped DDPM only: the flow model then comes from the cache, the tiny run
    shipped.mkdir()
    (shipped / "class.safetensors").symlink_to(model_store.shipped_path("class"))
    with ModelServerProcess(f"mnist-class,{FLOW}", tmp / "server.log", env={"DIFFUSION_LAB_CACHE": str(flow_cache)},
                            shipped_dir=shipped) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    return ServerClient(server.url, TOKEN)


@pytest.fixture()
def local(flow_cache, monkeypatch, tmp_path) -> MnistFlow:
    """The model the app finds in the same cache with nothing shipped (``preferred_run``), on its EMA weights."""
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "nothing shipped")
    monkeypatch.setattr(model_store, "CACHE_DIR", flow_cache)
    run, shipped = model_store.preferred_run("flow_class")
    assert not shipped and run.ema is not None
    return MnistFlow(run.network(run.sampling_weights), run.config)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.slow
def test_health_says_which_run_the_server_found(client):
    info = client.health()["models"]
    assert info[FLOW] == {"name": "MNIST class-conditioned flow model (D = 4)", "predicts": "velocity",
                          "kind": "mnist", "image_shape": [1, 28, 28], "value_range": [0.0, 1.0],
                          "condition_shape": [10], "wire_dtype": "float32", "shipped": False, "weights": "ema",
                          "epochs": 1, "hidden": 4}
    assert info["mnist-class"]["predicts"] == "eps"


@pytest.mark.slow
def test_remote_velocity_is_the_local_velocity(client, local):
    remote = client.velocity_model(FLOW)
    assert (remote.image_shape, remote.value_range, remote.dtype) == (local.image_shape, local.value_range,
                                                                      local.dtype)
    assert remote.name == f"{local.name} (model server)"
    x = torch.randn(6, 1, 28, 28, generator=gen(1))
    cond = F.one_hot(torch.arange(6) % 10, 10).float()
    for t in (0.0, 0.37, torch.tensor([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])):  # one t for the batch, then one per row
        assert torch.allclose(remote.velocity(x, t, cond), local.velocity(x, t, cond), atol=1e-5), t
    # the server encodes prompts as the local model does; one condition row is shared by the batch
    assert torch.equal(remote.encode_prompt("seven"), local.encode_prompt("seven"))
    assert torch.equal(remote.null_condition(), local.null_condition())
    assert torch.allclose(remote.velocity(x, 0.5, remote.encode_prompt("3")),
                          local.velocity(x, 0.5, local.class_condition(3).expand(6, -1)), atol=1e-5)
    with pytest.raises(PromptError, match="names no digit"):
        remote.encode_prompt("a cat")
    # the Euler loop with guidance, in the app, gives the local images
    a = sample(remote, remote.encode_prompt("4"), scale=5.0, num_samples=3, generator=gen(2), h=0.1)
    b = sample(local, local.encode_prompt("4"), scale=5.0, num_samples=3, generator=gen(2), h=0.1)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


@pytest.mark.slow
def test_two_sessions_at_the_same_time_share_one_network_call(client, local):
    """Requests that arrive while the server's network is busy queue and share its next call: a 64-row ε request to
    the D = 64 DDPM (a large fraction of a second on one CPU thread) keeps it busy while two sessions ask for the flow
    model's velocity at the same t."""
    from lib.backends.wire import unpack

    blocker = {"x": torch.randn(64, 1, 28, 28, generator=gen(0)), "t": torch.full((64,), 150),
               "cond": torch.zeros(64, 10)}
    asks = [{"x": torch.randn(3, 1, 28, 28, generator=gen(i)), "t": torch.full((3,), 0.42),
             "cond": F.one_hot(torch.tensor([i, i + 2, i + 4]), 10).float()} for i in (1, 2)]
    answers: dict = {}
    errors: list = []

    def post(key, path, tensors):
        try:
            answers[key] = ServerClient(client.url, TOKEN).request("POST", path, data=pack(tensors))
        except Exception as err:  # noqa: BLE001 — reported below
            errors.append(err)

    before = client.health()
    busy = threading.Thread(target=post, args=("blocker", "/models/mnist-class/predict", blocker))
    busy.start()
    time.sleep(0.15)  # the blocker's call has started: the two sessions' requests queue behind it
    sessions = [threading.Thread(target=post, args=(i, f"/models/{FLOW}/velocity", ask)) for i, ask in enumerate(asks)]
    for t in sessions:
        t.start()
    for t in [busy, *sessions]:
        t.join()
    assert not errors, errors
    for i, ask in enumerate(asks):
        assert answers[i].headers["x-batch-requests"] == "2"  # both sessions' rows in one call
        v = unpack(answers[i].content)[0]["v"]
        assert torch.allclose(v, local.velocity(ask["x"], 0.42, ask["cond"]), atol=1e-5)
    after = client.health()
    assert after["batch_sizes"]["2"] == before["batch_sizes"].get("2", 0) + 1
    assert after["counters"]["unet_calls"] == before["counters"]["unet_calls"] + 2  # the blocker's and the shared one


@pytest.mark.slow
def test_each_interface_refuses_the_others_model_and_bad_times(client, server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"x": torch.zeros(2, 1, 28, 28), "t": torch.tensor([0.1, 0.2]), "cond": torch.zeros(2, 10)}

    def post(path, tensors):
        return requests.post(server.url + path, data=pack(tensors), headers=auth, timeout=30)

    assert post(f"/models/{FLOW}/velocity", body).status_code == 200
    cases = {
        "velocity of a noise model": (post("/models/mnist-class/velocity", body), 404, "is a noise model"),
        "ε of a velocity model": (post(f"/models/{FLOW}/predict", {**body, "t": torch.tensor([1, 2])}), 404,
                                  "is a velocity model"),
        "time past 1": (post(f"/models/{FLOW}/velocity", {**body, "t": torch.tensor([0.5, 1.5])}), 400,
                        "times must lie in [0, 1]"),
        "NaN time": (post(f"/models/{FLOW}/velocity", {**body, "t": torch.tensor([0.5, float("nan")])}), 400,
                     "times must lie in [0, 1]"),
        "integer time": (post(f"/models/{FLOW}/velocity", {**body, "t": torch.tensor([0, 1])}), 400, "float32"),
    }
    for what, (r, status, text) in cases.items():
        assert r.status_code == status and text in r.json()["detail"], (what, r.status_code, r.text[:300])
    r = requests.get(f"{server.url}/models/{FLOW}/schedule", headers=auth, timeout=30)
    assert r.status_code == 404 and "velocity model" in r.json()["detail"]
    with pytest.raises(RemoteUnavailable, match="'mnist-class' is not a velocity model"):
        client.velocity_model("mnist-class")
    with pytest.raises(RemoteUnavailable, match=f"'{FLOW}' is not a noise model"):
        client.noise_model(FLOW)


@pytest.mark.slow
def test_a_killed_server_gives_one_line(tmp_path, flow_cache):
    (tmp_path / "nothing shipped").mkdir()
    with ModelServerProcess(FLOW, tmp_path / "server.log", env={"DIFFUSION_LAB_CACHE": str(flow_cache)},
                            shipped_dir=tmp_path / "nothing shipped") as proc:
        model = ServerClient(proc.url, TOKEN, retries=2, backoff=0.1).velocity_model(FLOW)
        cond = model.encode_prompt("4")
        steps: list[int] = []

        def on_step(k, t, x, x1):
            steps.append(k)
            if k == 2:
                proc.kill()  # mid-sampling

        with pytest.raises(RemoteUnavailable) as info:
            sample(model, cond, scale=5.0, num_samples=1, generator=gen(), h=0.1, on_step=on_step)
        assert str(info.value) == (f"The model server at {proc.url} is not reachable (down, or a wrong address) "
                                   "after 2 tries")
        assert steps == [0, 1, 2]


def test_without_a_flow_run_the_server_says_what_is_missing(tmp_path, monkeypatch):
    from lib.model_server import load_flow_run

    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "nothing shipped")
    with pytest.raises(ValueError, match=r"no flow_class run to serve: .* holds no finished run of it"):
        load_flow_run("flow_class", torch.device("cpu"))


def flow_page_on(page: str, **state):
    """A flow part-A page opened from Home in the flow edition, with ``state`` preset (the sidebar's choices)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(flow_pages.ROOT / "Home.py"), default_timeout=flow_pages.TIMEOUT)
    at.session_state["edition"] = "flow"
    for key, value in state.items():
        at.session_state[key] = value
    at = at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at) -> tuple:
    """What a page shows of its results: its metrics and its images' captions."""
    return [(m.label, m.value) for m in at.metric], flow_pages.image_captions(at)


@pytest.fixture()
def app_on_the_cache(flow_cache, monkeypatch, tmp_path):
    """The app with nothing shipped and the server's model cache as its own: both find the same run."""
    import streamlit as st

    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "nothing shipped")
    monkeypatch.setattr(model_store, "CACHE_DIR", flow_cache)
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_TOKEN", TOKEN)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.mark.slow
def test_a_flow_page_on_the_server_shows_the_local_results(server, app_on_the_cache, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_URL", server.url)
    local = flow_page_on(flow_pages.FLOW_DENOISING)
    remote = flow_page_on(flow_pages.FLOW_DENOISING, flow_backend="Model server")
    assert not remote.error, [e.value for e in remote.error]
    captions = " ".join(c.value for c in remote.sidebar.caption)
    assert ("Active: **MNIST class-conditioned flow model (D = 4) (model server)**, the server's run from its cache "
            "(1 epoch, D = 4), EMA weights · the model server") in captions
    assert "your run from the cache (1 epoch, D = 4), EMA weights · CPU" in " ".join(c.value for c in local.sidebar.caption)
    assert remote.metric and shown(remote) == shown(local)


def test_a_flow_page_with_the_server_down_says_so_and_runs_here(app_on_the_cache, monkeypatch):
    from tests.browser_util import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_URL", url)
    at = flow_page_on(flow_pages.FLOW_DENOISING, flow_backend="Model server")
    assert any(e.value.startswith(f"The model server at {url} is not reachable") and "this machine's flow model" in
               e.value for e in at.sidebar.error), [e.value for e in at.sidebar.error]
    assert any("your run from the cache (1 epoch, D = 4), EMA weights · CPU" in c.value for c in at.sidebar.caption)
    assert at.metric
