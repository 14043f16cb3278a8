"""The model server's PixNerd for real: Ray Serve started by the test on the loopback address, loading PixNerd and its
Qwen3 prompt encoder from a snapshot folder (DIFFUSION_LAB_PIXNERD_DIR, offline) that holds both at toy size in the
released layouts (``tests.tiny_pixnerd.write_app_snapshots``: a Lightning checkpoint, a hub-layout Qwen3), on the
CPU, through the production loaders; driven through lib.backends.remote as the flow pages drive a server's model.

The server describes the model as the app needs it; it encodes prompts with its Qwen3 as this process's loader does; a
remote velocity is the local one; the app's Euler loop with the course's CFG gives the local images.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
import torch

from lib.backends import prompt_cache
from lib.backends.pixnerd.config import MODEL_NAME
from lib.backends.pixnerd.hub import DIR_ENV
from lib.backends.pixnerd.velocity import load_pixnerd_velocity
from lib.backends.remote import ServerClient
from lib.flow.euler import sample, scale_from_course_w
from server_util import TOKEN, ModelServerProcess
from tests.tiny_pixnerd import app_sized_config, app_sized_label, write_app_snapshots

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a high quality photo"  # the course's prompt of 1.3 and 1.6, in the tiny tokenizer's words


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    return write_app_snapshots(tmp_path_factory.mktemp("pixnerd-snapshots"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, snapshots):
    tmp = tmp_path_factory.mktemp("pixnerd-server")
    env = {DIR_ENV: str(snapshots), "HF_HUB_OFFLINE": "1", "DIFFUSION_LAB_EMBEDDINGS": str(tmp / "embeddings")}
    with ModelServerProcess(MODEL_NAME, tmp / "server.log", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    return ServerClient(server.url, TOKEN)


@pytest.fixture(scope="module")
def local(snapshots, tmp_path_factory):
    """The same snapshot through the same loader in this process (its own embeddings folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DIR_ENV, str(snapshots))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path_factory.mktemp("embeddings"))
        model = load_pixnerd_velocity("cpu")
        model.null_condition()  # encoded while the settings hold
        model.encode_prompt(PROMPT)
        yield model


def test_health_describes_pixnerd_as_the_pages_need_it(client):
    config = app_sized_config()
    assert client.health()["models"][MODEL_NAME] == {
        "name": app_sized_label(), "predicts": "velocity", "kind": "pixnerd", "image_shape": [3, 512, 512],
        "value_range": [-1.0, 1.0], "condition_shape": [config.txt_max_length, config.txt_embed_dim],
        "wire_dtype": "float32"}


def test_remote_prompts_and_velocities_are_the_local_ones(client, local):
    remote = client.velocity_model(MODEL_NAME)
    assert (remote.image_shape, remote.value_range) == (local.image_shape, local.value_range) == ((3, 512, 512),
                                                                                                (-1.0, 1.0))
    cond = remote.encode_prompt(PROMPT)
    assert torch.equal(cond, local.encode_prompt(PROMPT)) and torch.equal(remote.null_condition(),
                                                                          local.null_condition())
    assert not torch.equal(cond, remote.null_condition())  # the prompt is in the embedding
    x = torch.randn(2, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    for t in (0.3, torch.tensor([0.0, 0.7])):  # one t for the batch, then one per row
        v = remote.velocity(x, t, cond)
        assert torch.allclose(v, local.velocity(x, t, cond), atol=1e-5), t
    assert (v - remote.velocity(x, t, remote.null_condition())).abs().max() > 1e-5  # the prompt reaches the output


def test_the_apps_euler_loop_with_the_course_s_cfg_gives_the_local_images(client, local):
    remote = client.velocity_model(MODEL_NAME)
    images = [sample(model, model.encode_prompt(PROMPT), scale=scale_from_course_w(7.0), num_samples=1, h=0.25,
                     generator=torch.Generator().manual_seed(180)) for model in (remote, local)]
    assert torch.allclose(*images, atol=1e-4), (images[0] - images[1]).abs().max()


def test_a_flow_page_on_the_server_s_pixnerd_shows_what_pixnerd_here_shows(server, snapshots, tmp_path, monkeypatch):
    """1.1 – 1.3 with the sidebar's *Model server* (the server holds PixNerd only) and with PixNerd loaded here from the
    same snapshots: the same course defaults, the same numbers; the *Active:* line says where it runs."""
    from streamlit.testing.v1 import AppTest

    from lib.backends.pixnerd.hub import DEVICE_ENV
    from ui.flow_backend import PIXNERD_CHOICE

    monkeypatch.setenv(DIR_ENV, str(snapshots))
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_URL", server.url)
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_TOKEN", TOKEN)
    monkeypatch.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path / "embeddings")

    def page_on(choice: str) -> AppTest:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=240)
        at.session_state["edition"] = "flow"
        at.session_state["flow_backend"] = choice
        at = at.switch_page("app_pages/flow_denoising.py").run()
        assert not at.exception and not at.sidebar.error, [e.value for e in [*at.exception, *at.sidebar.error]]
        return at

    remote, here = page_on("Model server"), page_on(PIXNERD_CHOICE)
    active = f"Active: **{app_sized_label()} (model server)**, the server's EMA weights · the model server"
    assert any(active in c.value for c in remote.sidebar.caption), [c.value for c in remote.sidebar.caption]
    numbers = [{m.label: m.value for m in at.metric} for at in (remote, here)]
    assert numbers[0] == numbers[1] and len(numbers[0]) == 3
