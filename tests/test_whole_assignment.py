"""The whole assignment in one run (issue #16 item 6): lib.media.report's HTML on its own, then the page on tiny models —
every section in the checklist's order, one progress bar that ends complete, a download that holds every section, and
the pages' caches shared with the report both ways."""

from __future__ import annotations

import base64
import collections
import importlib
from html import escape
import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from lib.media import report

from lib.train import model_store
from lib.media.costs import Cost, CountingNoiseModel
from lib.media.report import gif_figure, loss_curve_svg, png_figure, svg_figure
from lib.media.images import gif_bytes
from lib.media.text import quoted_prompt
from ui import whole_assignment
from ui.flow_backend import LOCAL_CHOICE
from ui.sections import BY_SLUG, Section, flow_editing, in_part, sdedit

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "app_pages" / "whole_assignment.py")
PAGES = ROOT / "app_pages"
TIMEOUT = 300
HEADINGS = [h for piece in whole_assignment.pieces() for h in piece.headings]  # the registry's order
KEYS = [h.key for h in HEADINGS]
DATA_URI = re.compile(r'<img src="data:(image/\w+);base64,([A-Za-z0-9+/=]+)" width="(\d+)" height="(\d+)"')


def pictures(html: str) -> list[tuple[str, Image.Image, int, int]]:
    """Every embedded picture: (mime, the decoded image, the width and height the <img> states)."""
    out = []
    for mime, data, width, height in DATA_URI.findall(html):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()  # a truncated or corrupt file fails here
        out.append((mime, image, int(width), int(height)))
    return out


def section_order(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', html)


# --- lib.media.report ------------------------------------------------------------------------------------------------------

def test_report_html_is_self_contained_in_the_assignments_order_with_settings_and_real_pictures():
    rng = np.random.default_rng(0)
    png = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    gif = gif_bytes([rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)])
    sections = [h.made({"seed": 1000 + i, "prompt": f"'p{i}' <b>"}, [png_figure(png, f"cap {i}")])
                for i, h in enumerate(HEADINGS)]
    sections[3].figures.append(gif_figure(gif, "moving"))
    sections[5].figures.append(svg_figure(loss_curve_svg([1.0, 0.5, 0.1, 0.05]), "loss"))
    sections[7] = HEADINGS[7].failed("No images of your own were given.")
    html = report.report_html("The title", {"model": "tiny", "torch": torch.__version__}, sections)

    assert section_order(html) == KEYS  # the registry's order: the assignment's
    assert len(set(KEYS)) == len(KEYS)
    for i, h in enumerate(HEADINGS):
        assert f"<h2>{h.number} · {escape(h.title)}</h2>" in html
        if i != 7:
            assert f"<th>seed</th><td>{1000 + i}</td>" in html  # every setting and seed listed
    assert "&#x27;p3&#x27; &lt;b&gt;" in html and "<b>" not in html  # settings are escaped, never markup
    assert '<p class="problem">No images of your own were given.</p>' in html
    found = pictures(html)
    assert len(found) == len(KEYS) - 1 + 1  # a PNG per section but the one without, plus the GIF
    for mime, image, width, height in found:
        assert image.size == (width, height)
        assert (mime, image.format) in {("image/png", "PNG"), ("image/gif", "GIF")}
    assert sum(mime == "image/gif" for mime, *_ in found) == 1
    assert next(img for mime, img, *_ in found if mime == "image/gif").n_frames == 3
    first_png = next(img for mime, img, *_ in found if mime == "image/png")
    assert first_png.size == (50, 30) and np.array_equal(np.asarray(first_png.convert("RGB")), png)
    # offline: no address outside the file, no script, no external stylesheet or font
    assert not re.search(r"https?://|<script|<link|@import|url\(", html, re.IGNORECASE)
    assert html.count("<svg") == 1 and html.startswith("<!DOCTYPE html>")


def test_loss_curve_is_a_log_scale_polyline_of_binned_means():
    xs, ys = report.binned_means([4.0, 2.0, 1.0, 1.0, 9.0], max_points=3)
    assert list(ys) == [3.0, 1.0, 9.0] and list(xs) == [1.5, 3.5, 5.0]  # bins of 2, then the shorter last bin
    svg = loss_curve_svg([1.0, 0.1, 0.01], width=200, height=120)
    points = [tuple(map(float, p.split(","))) for p in re.search(r'points="([^"]+)"', svg).group(1).split()]
    ys = [y for _, y in points]
    assert ys[0] < ys[1] < ys[2] and ys[1] - ys[0] == pytest.approx(ys[2] - ys[1])  # each decade the same height
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert ">0.01<" in svg and ">1<" in svg  # decade labels
    long = loss_curve_svg(list(np.linspace(1, 0.01, 9380)), max_points=400)
    assert len(re.search(r'points="([^"]+)"', long).group(1).split()) <= 401 and len(long) < 12_000


def test_loss_curve_text_is_as_large_as_the_reports_captions_and_its_lines_apart():
    """The report's loss charts were drawn in 11-px text: now as large as a figure caption (85 % of 16 px), the axis
    title on a line of its own below the step labels, and the y labels inside the picture."""
    caption_px = 16 * int(re.search(r"figcaption \{ font-size: (\d+)%", report.STYLE).group(1)) / 100
    svg = loss_curve_svg(list(np.linspace(0.45, 0.31, 12_345)), steps_per_epoch=1_000)
    assert float(re.search(r'<svg[^>]* font-size="([\d.]+)"', svg).group(1)) >= caption_px
    height = float(re.search(r'<svg[^>]* height="([\d.]+)"', svg).group(1))
    rows = {text: float(y) for y, text in re.findall(r'<text x="[\d.]+" y="([\d.]+)"[^>]*>([^<]+)</text>', svg)}
    assert rows["step 12,345"] == rows["step 1"]
    title = next(y for text, y in rows.items() if text.startswith("loss (log scale)"))
    assert title - rows["step 1"] >= caption_px and title <= height  # a line below the step labels, inside the SVG
    labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end">([\d.]+)</text>', svg)
    assert labels and all(float(x) >= 0.6 * caption_px * len(text) for x, text in labels)  # y labels not cut off


@pytest.mark.skipif(not model_store.shipped_path("class").exists(), reason="shipped class model missing")
def test_the_reports_forward_heading_names_the_timesteps_of_its_images(mnist_root, monkeypatch):
    """Issue 27 item 10: the report's 1.1 heading read "t = 250, 500, 750" over images at t = 75 / 150 / 225 (T = 300).
    The timesteps its title names must be the ones its picture shows: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε recomputed at
    exactly those t, with the report's seed, gives the picture pixel for pixel."""
    from lib.ddpm.diffusion import forward_noise
    from lib.ddpm.sampling import randn
    from lib.media.images import grid
    from lib.train.cache import config_key
    from ui.backend import Backend
    from ui.common import mnist_ddpm
    from ui.part_a import default_image
    from ui.report_kit import Context, ReportProgress
    from ui.sections import forward

    monkeypatch.setenv("DIFFUSION_LAB_MNIST_ROOT", str(mnist_root))
    den = mnist_ddpm("class")
    backend = Backend(den, "mnist", f"mnist-{config_key(den.config.as_dict())}-test")
    c = Context(backend, CountingNoiseModel(den), ReportProgress(1), default_image(backend), [])
    made = forward._report(c)[0][0]
    title = made.title
    ts = [int(t) for t in re.findall(r"t = (\d+)", title)]
    assert made.number == "1.1" and len(ts) == 3 and ts != [250, 500, 750], title
    x0 = torch.from_numpy(c.picked.array).unsqueeze(0)
    eps = randn(x0.shape, torch.Generator().manual_seed(c.seed), like=x0)
    expected = grid(torch.cat([x0, *(forward_noise(x0, t, den.schedule, eps) for t in ts)]), 4, upscale=c.upscale())
    shown = np.asarray(Image.open(io.BytesIO(made.figures[0].data)).convert("RGB"))
    assert shown.shape == expected.shape and (shown == expected).all()


def test_cost_text_says_when_a_section_came_from_the_cache():
    assert report.cost_text(Cost(31, 248, 2.0), 0, 0.01).startswith("From the cache (no model call now); computing it "
                                                                    "took 31 UNet calls, 248 rows, 2.0 s")
    assert report.cost_text(Cost(31, 248, 2.0), 31, 2.1) == "31 UNet calls now, 2.1 s"


# --- the page --------------------------------------------------------------------------------------------------------

TINY = dict(hidden=4, batch_size=16, steps_per_epoch=1, sample_stride=100)


@pytest.fixture(scope="module")
def tiny_shipped(tmp_path_factory, mnist_root):
    """A shipped folder of tiny part-B runs that stored the epochs the checklist asks for (B1: 1 and 5; B2, B3: 5 and
    20); the class model is also part A's MNIST backend."""
    from lib.train.data import Digits, load_mnist
    from lib.train.runs import run_training
    from lib.train.training import TrainConfig

    train, test = load_mnist(True, mnist_root), load_mnist(False, mnist_root)
    train = Digits(train.images[:512], train.labels[:512], train.source, train.note)
    folder = tmp_path_factory.mktemp("shipped")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for kind, epochs in (("denoiser", dict(epochs=5, snapshot_epochs=(1, 5))),
                             ("time", dict(epochs=20, snapshot_epochs=(5, 20))),
                             ("class", dict(epochs=20, snapshot_epochs=(5, 20)))):
            run = run_training(TrainConfig.spec(kind, **TINY, **epochs), train, test, device=torch.device("cpu"))
            model_store.save_run(run, folder / f"{kind}.safetensors", {"device": "cpu (test)", "seconds": 1.0,
                                                                        "data": train.note})
    finally:
        torch.set_num_threads(threads)
    return folder


@pytest.fixture()
def app(tiny_shipped, monkeypatch):
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tiny_shipped)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def the_report(at: AppTest):
    reports = at.session_state["reports"]
    assert len(reports) == 1
    return next(iter(reports.values()))


def run_report(at: AppTest):
    at.button(key="whole_assignment_run").click().run()
    assert not at.exception, at.exception
    return the_report(at)


@pytest.fixture
def bar_steps(monkeypatch) -> dict[str, list[int]]:
    """Each report piece's share of the bar and the steps that moved the bar during it: label → [share, steps]."""
    from ui.report_kit import ReportProgress

    shares: dict[str, list[int]] = {}
    begin, advance = ReportProgress.begin, ReportProgress.advance

    def begin_piece(self, label: str, units: int) -> None:
        shares[label] = [units, 0]
        begin(self, label, units)

    def advance_step(self, note: str = "") -> None:
        shares[self.text][1] += 1
        advance(self, note)

    monkeypatch.setattr(ReportProgress, "begin", begin_piece)
    monkeypatch.setattr(ReportProgress, "advance", advance_step)
    return shares


def cache_entries() -> collections.Counter:
    """Entries per ``st.cache_data`` function (by its qualified name) in this process (Streamlit's own stats)."""
    from streamlit.runtime.caching.cache_data_api import _data_caches

    with _data_caches._caches_lock:
        caches = [cache for per_function in _data_caches._function_caches.values() for cache in per_function.values()]
    return collections.Counter(stat.cache_name for cache in caches for family in cache.get_stats().values()
                               for stat in family)


def costs(result) -> dict[str, str]:
    return {s.key: s.cost for s in result.sections}


def opened_from_home(section: Section, edition: str) -> AppTest:
    """A section's page opened from Home in ``edition``, as a student follows a link: its links to other pages
    resolve."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    at.session_state["edition"] = edition
    at = at.switch_page(section.page).run()
    assert [t.value for t in at.title] == [section.page_title]  # the page itself ran, not only Home
    return at


MODEL_SECTIONS = ["stock", "forward.denoised", "iterative", "guidance.plain", "guidance", "sdedit", "inpainting",
                  "sdedit.text", "anagrams", "anagrams.2", "hybrids", "hybrids.2"]


def test_the_whole_assignment_on_mnist_one_bar_one_download_and_the_cache_shared_with_the_pages(app):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Run the whole assignment"] and not at.get("download_button")

    # A3 with its widgets at their defaults, first: the report must find 1.5 / 1.6 in the cache
    a3 = AppTest.from_file(str(PAGES / "guidance.py"), default_timeout=TIMEOUT)
    a3.run()
    assert not a3.exception and not a3.error

    result = run_report(at)
    assert [s.key for s in result.sections] == KEYS
    bars = at.get("progress")
    assert len(bars) == 1  # one bar for the whole report
    assert bars[0].proto.value == 100 and bars[0].proto.text.startswith(f"Done: {len(KEYS)} sections in ")
    cost = costs(result)
    assert cost["guidance.plain"].startswith("From the cache") and cost["guidance"] == cost["guidance.plain"]  # the page's A3 entry
    for key in MODEL_SECTIONS:
        if key not in ("guidance.plain", "guidance"):
            assert re.fullmatch(r"[1-9][\d,]* UNet calls now, [\d.]+ s", cost[key]), (key, cost[key])
    # 1.7: stride 10 over T = 300 → N = 30 steps; the strip runs from i_start 1: 29 calls
    assert cost["sdedit"].startswith("29 UNet calls now") and cost["sdedit.text"].startswith("29 UNet calls now")
    assert result.calls > 300

    problems = {s.key: s.problem for s in result.sections if s.problem}
    assert list(problems) == ["sdedit.own"] and "upload them" in problems["sdedit.own"]  # no own images given
    assert any("upload them" in w.value for w in at.warning)

    html = result.html
    assert section_order(html) == KEYS
    assert "Built-in MNIST" in html or "MNIST" in html.split("<h2>")[0]
    assert f"<th>torch</th><td>{torch.__version__}</td>" in html
    found = pictures(html)
    assert len(found) >= 30 and all(image.size == (w, h) for _, image, w, h in found)
    assert sum(mime == "image/gif" for mime, *_ in found) == 3  # two anagram morphs and the B3 digit
    assert html.count("<svg") == 3  # the loss curves of B1, B2, B3
    for settings in ("<th>seed</th><td>180</td>", "<th>guidance γ</th><td>5.0</td>", "<th>stride</th><td>10</td>",
                     "<th>i_start</th><td>1, 3, 5, 7, 10, 20</td>", "<th>epochs shown</th><td>5, 20</td>",
                     "<th>epochs shown</th><td>1, 5</td>",
                     f"<th>prompt</th><td>{escape(quoted_prompt(sdedit.DEFAULTS['mnist'].text_edit))}</td>"):
        assert settings in html, settings
    assert not re.search(r"https?://|<script", html)
    assert [b.label for b in at.get("download_button")] == ["Download the report (HTML)"]
    assert len(at.image) >= 25  # the sections on the page too

    # a second run computes nothing: every model section comes from the cache
    again = run_report(at)
    assert again.calls == 0
    assert all(costs(again)[key].startswith("From the cache") for key in MODEL_SECTIONS), costs(again)
    assert at.get("progress")[0].proto.value == 100

    # and the other way round, for every section: its page opened with its defaults finds the report's results — it
    # adds no entry to any section computation the report filled (``ui.sections.*``; its extras, such as B2's own
    # trajectory, are in functions the report never calls); the flow edition's own pages have their test below
    for section in in_part("A") + in_part("B"):
        before = cache_entries()
        other = opened_from_home(section, "ddpm")
        assert not other.exception and not other.error, (section.slug, other.exception, other.error)
        after = cache_entries()
        grown = {name: after[name] - n for name, n in before.items() if after[name] != n}
        assert not [name for name in grown if name.startswith("ui.sections.")], (section.slug, grown)
        cost_lines = [c.value for c in other.caption if re.match(r"From the cache|[\d,]+ UNet calls? · ", c.value)]
        assert all(line.startswith("From the cache") for line in cost_lines), (section.slug, cost_lines)


def test_a_failing_section_says_why_and_the_others_are_made(app, monkeypatch):
    """One section whose model call fails (here: a second anagram prompt the MNIST model cannot take) is reported in
    that section; every other section is still made."""
    from ui.sections import anagrams

    monkeypatch.setitem(anagrams.DEFAULTS, "mnist", replace(anagrams.DEFAULTS["mnist"], second=anagrams.Example(
        prompt1="banana", prompt2="5", view="rotate 180°")))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    result = run_report(at)
    problems = {s.key: s.problem for s in result.sections if s.problem}
    assert set(problems) == {"sdedit.own", "anagrams.2"}
    assert "banana" in problems["anagrams.2"] and "names no digit" in problems["anagrams.2"]
    assert '<p class="problem">Not made: “banana” names no digit' in result.html
    assert all(s.figures for s in result.sections if s.key not in problems)


@pytest.mark.slow
def test_the_whole_assignment_on_a_tiny_deepfloyd_if(app, monkeypatch, tmp_path):
    """The IF path (the stock pipeline, 64 px RGB photos, the course's mask, learned variance) through the production
    loaders on tiny stand-ins of the hub repositories, on the CPU; the stride and A0's step counts are cut down so it
    takes seconds, everything else is the IF defaults."""
    from lib.backends import prompt_cache
    from tests.tiny_if import write_tiny_snapshots
    from ui.backend import FAMILY_DEFAULTS
    from ui.sections import stock

    monkeypatch.setenv("DIFFUSION_LAB_IF_DIR", str(write_tiny_snapshots(tmp_path / "snapshots")))
    monkeypatch.setenv("DIFFUSION_LAB_IF_DEVICE", "cpu")
    monkeypatch.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path / "embeddings")
    monkeypatch.setitem(FAMILY_DEFAULTS, "if", replace(FAMILY_DEFAULTS["if"], stride=333))
    monkeypatch.setitem(stock.DEFAULTS, "if", replace(stock.DEFAULTS["if"], columns=(2,)))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["backend"] = "DeepFloyd IF"
    at.run()
    assert not at.exception, at.exception
    result = run_report(at)
    assert [s.key for s in result.sections] == KEYS
    assert [s.key for s in result.sections if s.problem] == ["sdedit.own"], [(s.key, s.problem) for s in result.sections]
    assert "IF-I-XL" in result.html.split("<h2>")[0]
    # 0: 3 prompts × 2 steps of the stock pipeline; the photo, 64 px RGB, in the forward row (original + 3 x_t)
    assert costs(result)["stock"].startswith("6 UNet calls now")
    forward = next(s for s in result.sections if s.key == "forward")
    picture = Image.open(io.BytesIO(forward.figures[0].data))
    assert picture.mode == "RGB" and picture.size == (4 * 64 * 2 + 5 * 2 * 2, 64 * 2 + 2 * 2 * 2)
    assert "<th>mask</th><td>course rectangle (rows 2–19, columns 24–41)</td>" in result.html
    assert "<th>prompt</th><td>&#x27;a rocket ship&#x27;</td>" in result.html
    st.cache_resource.clear()  # drop the tiny IF


# --- the flow edition ---------------------------------------------------------------------------------------------------

FLOW_SLUGS = [s.slug for part in ("A", "B") for s in in_part(part, "flow") if "ddpm" not in s.editions]
FLOW_PIECES = [p for slug in FLOW_SLUGS for p in importlib.import_module(f"ui.sections.{slug}").REPORT]
FLOW_TINY = dict(hidden=4, batch_size=16, steps_per_epoch=1)


def test_every_flow_section_has_its_report_part_in_the_flow_report_only():
    flow_keys = [h.key for piece in whole_assignment.pieces("flow") for h in piece.headings]
    own = [h.key for piece in FLOW_PIECES for h in piece.headings]
    for slug in FLOW_SLUGS:
        assert importlib.import_module(f"ui.sections.{slug}").REPORT, slug
    assert all(key.split(".")[0] in FLOW_SLUGS for key in own) and len(set(own)) == len(own)
    assert set(own) <= set(flow_keys) and not set(own) & set(KEYS)  # in the flow edition's report, never the DDPM's


def test_the_flow_part_a_runs_on_the_sidebar_s_flow_model(monkeypatch, tmp_path, isolated_cache):
    """With a flow model chosen in the sidebar (PixNerd, a server's, here a model of its own), the report's flow part A
    runs on it — even with no MNIST flow model anywhere —, its calls counted; without one, on the MNIST flow model."""
    from lib.flow.mnist import MnistFlow
    from lib.media.costs import CountingNoiseModel
    from lib.train.unets import build_model
    from ui.flow_backend import FlowBackend
    from ui.report_kit import Context, shown_flow_backend

    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "nothing shipped")
    config = model_store.shipped_run_config("flow_class", hidden=4)
    chosen = FlowBackend(MnistFlow(build_model("flow_class", 4).eval(), config), "chosen-model", "the sidebar's")
    c = Context(None, CountingNoiseModel(None), None, None, [], edition="flow", flow=chosen)
    shown = shown_flow_backend(c)
    assert shown.cache_id == "chosen-model" and shown.origin == "the sidebar's"
    shown.model.velocity(torch.zeros(2, 1, 28, 28), 0.5, shown.model.null_condition())
    assert c.den.cost.calls == 1 and c.den.cost.rows == 2
    with pytest.raises(LookupError, match="no class-conditioned flow model"):
        shown_flow_backend(Context(None, CountingNoiseModel(None), None, None, [], edition="flow"))


def test_without_flow_models_each_flow_section_names_the_missing_file(monkeypatch, tmp_path, isolated_cache):
    """Nothing shipped, nothing cached: every flow piece fails with the file its page would ask for, as a sentence the
    report prints in its sections (``failure_text``)."""
    from lib.media.costs import CountingNoiseModel
    from ui.report_kit import Context, failure_text

    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "nothing shipped")
    st.cache_data.clear()
    st.cache_resource.clear()
    c = Context(None, CountingNoiseModel(None), None, None, [], edition="flow")
    wanted = {"pure_noise": "pure_noise", "time_flow": "flow_time", "class_flow": "flow_class",
              "constant_lr": "flow_class"}  # constant_lr compares with the scheduled run first
    for piece in FLOW_PIECES:
        slug = piece.headings[0].key.split(".")[0]
        with pytest.raises(LookupError) as caught:
            piece.make(c)
        message = failure_text(caught.value)
        assert message.startswith("Not made: no "), message
        assert f"data/models/{wanted.get(slug, 'flow_class')}.safetensors" in message, (slug, message)
        if slug.startswith("flow_"):
            assert "no run of it is in the model cache" in message


@pytest.fixture(scope="module")
def tiny_flow_shipped(tiny_shipped, tmp_path_factory, mnist_root):
    """The DDPM edition's tiny runs (part A's MNIST backend, B1) and a tiny run of each flow run, storing the epochs
    the flow edition's checklist asks for (B1.2.3: 1 and 5; B2: 1, 5 and 10)."""
    import shutil

    from lib.train.data import Digits, load_mnist
    from lib.train.runs import run_training

    train, test = load_mnist(True, mnist_root), load_mnist(False, mnist_root)
    train = Digits(train.images[:512], train.labels[:512], train.source, train.note)
    folder = tmp_path_factory.mktemp("shipped_flow")
    for path in tiny_shipped.glob("*.safetensors"):
        shutil.copy(path, folder / path.name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("pure_noise", "flow_time", "flow_class", "flow_class_constant_lr"):
            epochs = dict(epochs=5, snapshot_epochs=(1, 5)) if name == "pure_noise" else \
                dict(epochs=10, snapshot_epochs=(1, 5, 10), sample_stride=50)
            config = model_store.shipped_run_config(name, **FLOW_TINY, **epochs)
            run = run_training(config, train, test, device=torch.device("cpu"))
            model_store.save_run(run, folder / f"{name}.safetensors", {**run.info, "device": "cpu (test)",
                                                                       "data": train.note})
    finally:
        torch.set_num_threads(threads)
    return folder


@pytest.mark.slow
def test_the_flow_report_covers_part_a_and_b_and_shares_the_pages_cache(tiny_flow_shipped, monkeypatch, bar_steps):
    """The flow edition's report on tiny runs: every flow section made with the flow edition's numbers, its one bar
    moved by every sampling step, and each flow page opened with its defaults afterwards finds the report's results
    (adds no entry to a section computation the report filled)."""
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tiny_flow_shipped)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["edition"] = "flow"
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.radio(key="flow_backend").value == LOCAL_CHOICE  # its part A's model, chosen as on its pages
    result = run_report(at)
    assert result.about["flow model (part A)"].startswith("MNIST class-conditioned flow model (D = ")
    # nothing came from the cache: a piece that samples moves the bar once per Euler step, exactly across its share
    uneven = {label: (share, steps) for label, (share, steps) in bar_steps.items() if steps != share}
    assert {label: was for label, was in uneven.items() if was != (1, 0)} == {}  # (1, 0): a piece without steps
    assert bar_steps["1.6, 2.1 · sampling and CFG"] == [100, 100]  # 50 steps without guidance, 50 with
    flow_keys = [h.key for piece in whole_assignment.pieces("flow") for h in piece.headings]
    assert [s.key for s in result.sections] == flow_keys
    problems = {s.key: s.problem for s in result.sections if s.problem}
    assert list(problems) == ["sdedit.own"], problems
    made = {s.key: s for s in result.sections}
    html = result.html
    assert html.startswith("<!DOCTYPE html>") and "Flow matching (2025–26)" in html
    for key in ("flow_denoising.noisy", "flow_velocity", "flow_euler", "flow_sampling.plain", "flow_sampling",
                "flow_editing", "flow_editing.text", "flow_anagrams", "flow_hybrids", "class_flow.gif",
                "constant_lr"):
        assert re.fullmatch(r"[1-9][\d,]* UNet calls now, [\d.]+ s", made[key].cost), (key, made[key].cost)
    # the flow edition's numbers: its times, its steps, its epochs
    for setting in ("<th>t</th><td>0.25, 0.5, 0.75</td>", "<th>t_start</th><td>0.5</td>",
                    "<th>t_s</th><td>0.02, 0.04, 0.06, 0.1, 0.14, 0.25, 0.5</td>",
                    "<th>h</th><td>0.02 (50 Euler steps)</td>", "<th>guidance w</th><td>4.0</td>",
                    "<th>epochs shown</th><td>1, 5, 10</td>", "<th>epochs shown</th><td>1, 5</td>",
                    f"<th>prompt</th><td>{escape(quoted_prompt(flow_editing.DEFAULTS['mnist'].text_edit))}</td>"):
        assert setting in html, setting
    euler = made["flow_euler"]
    mse = dict(item.split(": ") for item in euler.settings["MSE"].split("; "))
    assert len(mse) == 3 and f"Here the {min(mse, key=lambda name: float(mse[name]))} wins on MSE" in euler.text
    sampling = next(s for s in result.sections if s.key == "flow_sampling")
    assert sampling.settings["guidance w"] == 4.0 and "γ = 5" in sampling.text
    lesson = made["pure_noise.centroid"]
    assert float(lesson.settings["loss floor E‖x − x̄‖² per pixel"]) > 0
    assert html.count("<svg") == 6  # the loss curves of B1, B1.2.3, B2.2, B2.5 and both runs of B2.6
    assert sum(mime == "image/gif" for mime, *_ in pictures(html)) == 3  # two anagram morphs (1.8) and B2.6's digit

    # the pages of the flow sections, opened with their defaults, find the report's results
    for slug in FLOW_SLUGS:
        before = cache_entries()
        other = opened_from_home(BY_SLUG[slug], "flow")
        assert not other.exception and not other.error, (slug, other.exception, other.error)
        after = cache_entries()
        grown = {name: after[name] - n for name, n in before.items() if after[name] != n}
        assert not [name for name in grown if name.startswith("ui.sections.")], (slug, grown)
