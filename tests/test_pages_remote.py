"""Every part-A page on the model-server backend (AppTest), against a real Ray Serve server started here on the
loopback address: the same images as the local backend for the same seed (the server is a pure function, the noise is
drawn in the app), IF through the server too, and a server that is down or refuses the token gives one line and a
usable page on the local MNIST model."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from browser_util import free_port
from server_util import TOKEN, ModelServerProcess
from test_pages_part_a import PAGES, TIMEOUT, errors, image_urls, save_tiny_class_model
from ui.sections import in_part

# One torch thread here, as in the server's replica (Ray runs an actor on one CPU): the same reduction order on both
# sides, so the pages' images can be compared byte for byte.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
PART_A = [Path(section.page).name for section in in_part("A")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, mnist_root, mnist_train):
    """The tiny class model as the app's shipped model and the server's; the tiny IF snapshots on the server."""
    from lib.train import model_store
    from lib.train.data import load_mnist
    from tests.tiny_if import write_tiny_snapshots
    from ui import common

    tmp = tmp_path_factory.mktemp("remote-pages")
    shipped = tmp / "shipped"
    save_tiny_class_model(shipped, mnist_train)
    if_settings = {"DIFFUSION_LAB_IF_DIR": str(write_tiny_snapshots(tmp / "snapshots")),
                   "DIFFUSION_LAB_IF_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    server = ModelServerProcess("mnist-class,IF-I-XL", tmp / "server.log", shipped_dir=shipped,
                                env={**if_settings, "DIFFUSION_LAB_EMBEDDINGS": str(tmp / "server-embeddings")})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_store, "SHIPPED_DIR", shipped)
        mp.setattr(common, "load_mnist", lambda train: load_mnist(train, root=mnist_root, download=False))
        mp.setenv("DIFFUSION_LAB_SERVER_TOKEN", TOKEN)
        for name, value in if_settings.items():  # the app's own IF: the same tiny snapshots, on the CPU
            mp.setenv(name, value)
        from lib.backends import prompt_cache

        mp.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp / "app-embeddings")
        st.cache_resource.clear()
        st.cache_data.clear()
        try:
            server.wait_ready()
            mp.setenv("DIFFUSION_LAB_SERVER_URL", server.url)
            yield server
        finally:
            server.stop()
            st.cache_resource.clear()
            st.cache_data.clear()


def page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def sidebar_text(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.sidebar.caption, *at.sidebar.error])


@pytest.mark.parametrize("name", PART_A)
def test_every_part_a_page_gives_the_local_images_on_the_server(setup, name):
    local = page(name)
    remote = page(name, backend="Model server", server_model="mnist-class")
    assert not remote.error, errors(remote)
    assert "(model server)" in sidebar_text(remote) and f"Server {setup.url} · healthy" in sidebar_text(remote)
    assert "(model server)" not in sidebar_text(local)
    assert image_urls(local), "no result images"
    assert image_urls(remote) == image_urls(local)  # the same PNG bytes (Streamlit names media by their content)


# settings that keep the tiny IF quick on a CPU: few steps, one sample
IF_FAST = {
    "stock.py": dict(stock_prompts_if="a dog", stock_columns_if=[2]),
    "forward.py": {},
    "iterative.py": dict(iterative_stride_if=333),
    "guidance.py": dict(guidance_stride_if=333, guidance_samples=1, guidance_scales=[0.0, 7.0]),
    "sdedit.py": dict(sdedit_stride_if=333, sdedit_istarts=[1]),
    "inpainting.py": dict(inpainting_stride_if=333, inpainting_samples=1),
    "anagrams.py": dict(anagrams_stride_if=333, anagrams_samples=1),
    "hybrids.py": dict(hybrids_stride_if=333, hybrids_samples=1),
}


@pytest.mark.parametrize("name", PART_A)
def test_every_part_a_page_on_deepfloyd_if_gives_the_local_images_on_the_server(setup, name):
    """The tiny IF in the app's own process and the same snapshots on the server: the same images (the server sends
    its UNet's own dtype, fp32 on a CPU, fp16 on a GPU, so nothing is rounded on the way)."""
    local = page(name, backend="DeepFloyd IF", **IF_FAST[name])
    remote = page(name, backend="Model server", server_model="IF-I-XL", **IF_FAST[name])
    assert not local.error and not remote.error, errors(local) + errors(remote)
    assert "Active: **DeepFloyd IF-I-XL**" in sidebar_text(local)
    assert "DeepFloyd IF-I-XL (model server)" in sidebar_text(remote)
    assert image_urls(local), "no result images"
    assert image_urls(remote) == image_urls(local)


def test_deepfloyd_if_through_the_server(setup):
    at = page("stock.py", backend="Model server", server_model="IF-I-XL", stock_prompts_if="a dog",
              stock_columns_if=[2])
    assert not at.error, errors(at)
    assert "tiny" not in sidebar_text(at) and "DeepFloyd IF-I-XL (model server)" in sidebar_text(at)
    at.toggle(key="stock_upscale").set_value(True).run()
    assert not at.exception and not at.error, errors(at)
    assert len(image_urls(at)) == 2  # the 64 px grid and the server's stage-2 upscale
    at = page("guidance.py", backend="Model server", server_model="IF-I-XL", guidance_stride_if=333,
              guidance_samples=1, guidance_scales=[0.0, 7.0])
    assert not at.error, errors(at)
    assert len(image_urls(at)) == 2


def test_a_server_that_is_down_or_refuses_the_token_leaves_the_pages_on_mnist(setup, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    at = page("guidance.py", backend="Model server")
    assert "is not reachable (down, or a wrong address)" in sidebar_text(at)
    assert "The pages use the built-in MNIST model meanwhile" in sidebar_text(at)
    assert image_urls(at) and not at.main.error, errors(at)  # a usable page, on the local model
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_URL", setup.url)
    monkeypatch.setenv("DIFFUSION_LAB_SERVER_TOKEN", "wrong")
    st.cache_data.clear()
    at = page("guidance.py", backend="Model server")
    assert "refused the access token" in sidebar_text(at) and image_urls(at)


def test_the_server_going_down_mid_session_gives_one_line_not_a_traceback(setup, tmp_path, monkeypatch):
    other = ModelServerProcess("mnist-class", tmp_path / "server.log",
                               env={"DIFFUSION_LAB_SERVER_MAX_MB": "1"}).wait_ready()
    try:
        monkeypatch.setenv("DIFFUSION_LAB_SERVER_URL", other.url)
        at = page("guidance.py", backend="Model server")
        assert image_urls(at) and not at.error
        # a rerun from the cache renews the sidebar's health check (kept 15 s), so that the server goes down between
        # the health check and the next UNet call however long the first run took on a busy machine
        at.run()
        other.kill()
        at.slider(key="guidance_stride_mnist").set_value(50).run()  # a new request: the server is gone
        assert not at.exception
        assert f"The model server at {other.url} is not reachable" in errors(at)
        assert "choose the built-in MNIST model in the sidebar" in errors(at)
    finally:
        other.stop()
