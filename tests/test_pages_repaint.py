"""A5 with RePaint's resampling on (issue #16 item 3): the plotted time schedule has as many points as the page
states model calls, and as the UNet was really called — on the tiny MNIST model and on the tiny DeepFloyd IF."""

from __future__ import annotations

import json
import re

import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.techniques.repaint import model_calls
from tests.test_pages_part_a import PAGES, TIMEOUT, cost_line, errors, run_page, tiny_backend  # noqa: F401 (fixture)


def plotted_schedule(at: AppTest) -> list[int]:
    """The t values of A5's schedule chart (t against model call)."""
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)["data"][0]["y"]


def stated_calls(at: AppTest) -> int:
    caption = next(c.value for c in at.caption if "model calls" in c.value)
    return int(re.search(r"each of the (\d+) model calls", caption).group(1))


def unet_calls(at: AppTest) -> int:
    return int(re.match(r"(\d+) UNet calls?", cost_line(at)).group(1))


def test_a5_resampling_on_mnist_plots_as_many_calls_as_it_states_and_makes():
    at = run_page("inpainting.py")
    assert len(plotted_schedule(at)) == stated_calls(at) == unet_calls(at) == 30  # default: no resampling
    at.slider(key="inpainting_stride_mnist").set_value(20).run()  # 15 steps: 299, 279, …, 19, −1
    at.slider(key="inpainting_jump_n_sample").set_value(3).run()
    assert not at.exception and not at.error, errors(at)
    t = plotted_schedule(at)
    assert len(t) == stated_calls(at) == unet_calls(at) == model_calls(15, 5, 3) == 15 + 2 * 5 * 2
    assert sum(b > a for a, b in zip(t, t[1:])) == 2 * 2  # r − 1 = 2 jumps back at each of the 2 jump points
    assert "= 2·5·2 re-done after jumps back" in " ".join(c.value for c in at.caption)
    at.slider(key="inpainting_feather_mnist").set_value(2).run()
    assert not at.exception and at.metric[0].value == "0.000"  # exact outside the feathered blend too


def test_a5_resampling_on_a_tiny_deepfloyd_if(monkeypatch, tmp_path):
    from lib.backends import prompt_cache
    from tests.tiny_if import write_tiny_snapshots

    monkeypatch.setenv("DIFFUSION_LAB_IF_DIR", str(write_tiny_snapshots(tmp_path / "snapshots")))
    monkeypatch.setenv("DIFFUSION_LAB_IF_DEVICE", "cpu")
    monkeypatch.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path / "embeddings")
    st.cache_data.clear()  # forget the "IF unavailable" verdict of other tests
    at = AppTest.from_file(str(PAGES / "inpainting.py"), default_timeout=TIMEOUT)
    for key, value in dict(backend="DeepFloyd IF", inpainting_stride_if=250, inpainting_samples=1, inpainting_jump_length=1,
                           inpainting_jump_n_sample=2, inpainting_feather_if=2).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception and not at.error, (at.exception, errors(at))
    # 3 steps (750 → 500 → 250 → 0); j = 1: jump points 1 and 2 steps before the end, each re-done once
    assert len(plotted_schedule(at)) == stated_calls(at) == unet_calls(at) == model_calls(3, 1, 2) == 5
    assert plotted_schedule(at) == [750, 750, 500, 500, 250]  # each step before a jump point is taken twice
    assert at.metric[0].value == "0.000"
