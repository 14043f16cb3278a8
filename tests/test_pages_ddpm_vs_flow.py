"""AppTests of the page "DDPM and flow matching side by side" on tiny class-conditioned models (D = 4, a few steps) saved
as the shipped runs, with 1,024 real MNIST training digits: what it draws, that its numbers are the ones it plots, and
what it says when a model is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import ui.common
from lib.flow.ddpm_vs_flow import INK_TOLERANCE, mid_grey_share
from lib.train import model_store
from lib.train.data import Digits, load_mnist
from lib.train.digit_classifier import TEST_DIGITS, to_classifier_range
from lib.train.runs import run_training
from lib.train.training import TrainConfig
from ui.sections.ddpm_vs_flow import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
PAGE = "app_pages/ddpm_vs_flow.py"
TINY = dict(hidden=4, epochs=1, batch_size=16, steps_per_epoch=2, snapshot_epochs=(1,), sample_stride=50)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits(mnist_root) -> tuple[Digits, Digits]:
    train, test = load_mnist(True, mnist_root), load_mnist(False, mnist_root)
    return Digits(train.images[:1024], train.labels[:1024], train.source, train.note), test


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, digits) -> Path:
    """A folder holding a tiny trained run of the class-conditioned DDPM and of the class-conditioned flow model."""
    folder = tmp_path_factory.mktemp("runs")
    for model in ("class", "flow_class"):
        result = run_training(TrainConfig.spec(model, **TINY), *digits, device=torch.device("cpu"))
        model_store.save_run(result, folder / f"{model}.safetensors",
                             {**result.info, "device": "cpu (test)", "data": digits[0].note, "command": "pytest"})
    return folder


def shipping(monkeypatch, tmp_path, tiny_runs, models) -> None:
    """Fresh caches, the small MNIST, and a shipped folder with the tiny runs of ``models`` only."""
    st.cache_data.clear()
    st.cache_resource.clear()
    folder = tmp_path / "shipped"
    folder.mkdir()
    for model in models:
        (folder / f"{model}.safetensors").write_bytes((tiny_runs / f"{model}.safetensors").read_bytes())
    monkeypatch.setattr(model_store, "SHIPPED_DIR", folder)


@pytest.fixture()
def app(monkeypatch, digits):
    monkeypatch.setattr(ui.common, "mnist", lambda: digits)
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def via_home() -> AppTest:
    """The page opened from Home, as in the app (under Home's navigation, where its links to other pages resolve)."""
    return run(AppTest.from_file(str(ROOT / "Home.py"), default_timeout=300).switch_page(PAGE))


def run(target) -> AppTest:
    at = target.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest, title_fragment: str) -> dict:
    """The one plotly figure whose axis title contains ``title_fragment``."""
    found = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
             if title_fragment in json.dumps(json.loads(c.proto.spec)["layout"].get("xaxis", {}))]
    assert len(found) == 1, title_fragment
    return found[0]


def ys(trace: dict) -> list[float]:
    import base64

    import numpy as np

    y = trace["y"]
    return list(np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])) if isinstance(y, dict) else list(y)


def text(at: AppTest) -> str:
    return "\n".join(e.value for e in [*at.markdown, *at.caption, *at.warning, *at.info])


def test_the_paths_of_both_models_and_their_numbers(app, monkeypatch, tmp_path, tiny_runs):
    shipping(monkeypatch, tmp_path, tiny_runs, ("class", "flow_class"))
    at = run(AppTest.from_file(str(ROOT / PAGE), default_timeout=300))
    assert [h.value for h in at.subheader] == ["Class-conditioned DDPM", "Class-conditioned flow model"]
    captions = text(at)
    assert captions.count("Trained on cpu (test)") == 2  # both runs' provenance
    figure = chart(at, "share of the network evaluations spent")
    names = [t["name"] for t in figure["data"]]
    assert names == ["straight line at constant speed", "DDPM", "flow matching"]
    k = DEFAULTS.path_nfe
    for trace in figure["data"][1:]:
        d = ys(trace)
        assert len(d) == k + 1 and d[0] == pytest.approx(1.0) and d[-1] == pytest.approx(0.0)
    summary = next(m.value for m in at.markdown if m.value.startswith("After "))
    covered = [int(v) for v in re.findall(r"\*\*(\d+)%\*\*", summary)]
    half = (k + 1) // 2
    assert summary.startswith(f"After {half} evaluations of {k}")
    assert covered == [round(100 * (1 - ys(t)[half])) for t in figure["data"][1:]]
    assert at.slider(key="ddpm_vs_flow_frame").value == half
    strip_caption = [img for img in at.get("image") if any(c.startswith("Rows: DDPM, flow matching") for c in img.captions)]
    assert len(strip_caption) == 1
    assert all("network evaluations (NFE" not in c.proto.spec for c in at.get("plotly_chart"))  # not measured yet

    # another digit and fewer evaluations: the paths follow
    at.selectbox(key="ddpm_vs_flow_digit").set_value(3)
    at = run(at.select_slider(key="ddpm_vs_flow_path_nfe").set_value(5))
    figure = chart(at, "share of the network evaluations spent")
    assert [len(ys(t)) for t in figure["data"][1:]] == [6, 6]
    assert at.slider(key="ddpm_vs_flow_frame").value == 3


def test_measure_plots_the_shares_it_tabulates_and_states(app, monkeypatch, tmp_path, tiny_runs):
    shipping(monkeypatch, tmp_path, tiny_runs, ("class", "flow_class"))
    at = run(AppTest.from_file(str(ROOT / PAGE), default_timeout=300))
    at.slider(key="ddpm_vs_flow_per_digit").set_value(1)
    at.multiselect(key="ddpm_vs_flow_nfe").set_value([1, 2, 5])
    at = run(at.button(key="ddpm_vs_flow_measure").click())
    figure = chart(at, "network evaluations (NFE")
    by_name = {t["name"]: ys(t) for t in figure["data"]}
    assert set(by_name) == {"DDPM: read as the asked digit", "DDPM: read confidently",
                            "flow matching: read as the asked digit", "flow matching: read confidently"}
    assert all(len(v) == 3 and all(0 <= y <= 100 for y in v) for v in by_name.values())
    table = at.dataframe[0].value
    assert list(table["NFE"]) == [1, 2, 5]
    assert list(table["DDPM: as asked"]) == [f"{y / 100:.0%}" for y in by_name["DDPM: read as the asked digit"]]
    assert list(table["flow matching: confident"]) == [f"{y / 100:.0%}" for y in
                                                       by_name["flow matching: read confidently"]]
    # every share is a whole number of the 10 samples
    assert all(round(y) % 10 == 0 for v in by_name.values() for y in v)
    # the grey lines are the judge's reading of the real test digits
    classifier, real = ui.common.digit_judge()
    lines = sorted(shape["y0"] for shape in figure["layout"]["shapes"])
    assert lines == pytest.approx(sorted([100 * real.agrees, 100 * real.confident]))
    assert f"{real.agrees:.1%} correctly" in text(at)
    # the summary's counts are the plotted ones
    summary = next(m.value for m in at.markdown if f"{DEFAULTS.target:.0%}" in m.value)
    for name in ("DDPM", "flow matching"):
        reached = [k for k, y in zip([1, 2, 5], by_name[f"{name}: read as the asked digit"]) if y >= 100 * DEFAULTS.target]
        assert (f"{name} reaches {DEFAULTS.target:.0%} read as asked at **{reached[0]} evaluation" if reached else
                f"{name} stays below {DEFAULTS.target:.0%} up to 5 evaluations") in summary, summary
    # the ink: the tabulated mid-grey shares, and the summary names the first count within tolerance of real digits'
    real_grey = mid_grey_share(to_classifier_range(ui.common.mnist()[1].as_float()[:TEST_DIGITS], (0.0, 1.0)))
    ink = next(m.value for m in at.markdown if m.value.startswith("**The ink.**"))
    assert f"{real_grey:.1%} of their pixels are mid-grey" in ink
    bound, rounding = INK_TOLERANCE * real_grey, 5e-4  # the table shows shares rounded to 0.1 %
    for name in ("DDPM", "flow matching"):
        greys = dict(zip([1, 2, 5], (float(g.rstrip("%")) / 100 for g in table[f"{name}: mid-grey pixels"])))
        named = re.search(rf"{name} at \*\*(\d+) evaluation", ink)
        first = int(named.group(1)) if named else None
        assert first is not None or f"{name} not within 5 evaluations" in ink, ink
        assert all(g > bound - rounding for k, g in greys.items() if first is None or k < first), (greys, ink)
        assert first is None or greys[first] <= bound + rounding, (greys, ink)
    assert len([img for img in at.get("image") if any("one column per digit" in c for c in img.captions)]) == 2
    # the result stays on the page when another control moves (no second press), from the cache
    at = run(at.selectbox(key="ddpm_vs_flow_digit").set_value(1))
    assert chart(at, "network evaluations (NFE")["data"] == figure["data"]


def test_a_missing_flow_model_is_named_and_the_ddpm_is_shown(app, monkeypatch, tmp_path, tiny_runs):
    shipping(monkeypatch, tmp_path, tiny_runs, ("class",))
    at = via_home()
    warning = "\n".join(w.value for w in at.warning)
    assert "No class-conditioned flow model yet" in warning and "data/models/flow_class.safetensors" in warning
    figure = chart(at, "share of the network evaluations spent")
    assert [t["name"] for t in figure["data"]] == ["straight line at constant speed", "DDPM"]
    assert not [m for m in at.markdown if m.value.startswith("After ")]  # no comparison without the other model


def test_without_either_model_the_page_says_which_and_where(app, monkeypatch, tmp_path, tiny_runs):
    shipping(monkeypatch, tmp_path, tiny_runs, ())
    at = via_home()
    warning = "\n".join(w.value for w in at.warning)
    assert "No class-conditioned DDPM yet" in warning and "No class-conditioned flow model yet" in warning
    assert not at.get("plotly_chart") and not at.get("image")
    links = [link.proto.label for link in at.get("page_link")]
    assert "Train it: B3 · Class-conditioned DDPM" in links
