"""AppTests of the flow edition's part-A pages on a tiny random-init class-conditioned flow model (D = 4) saved as the
shipped run, with its EMA perturbed so that the weights the pages use are told apart: every number a page shows is
recomputed here from ``lib`` (the straight path, the blur sweep, the one-step estimate, the Euler loop), and the page
says what to do when there is no flow model."""

from __future__ import annotations

import base64
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from lib.ddpm.sampling import randn
from lib.flow.denoising import COURSE_SIGMAS, best_blur, sharpness
from lib.flow.euler import euler, sample
from lib.flow.mnist import MnistFlow
from lib.flow.path import interpolate, one_step_estimate
from lib.media.images import grid, rescaled
from lib.media.presets import mnist_test_digit
from lib.techniques.filters import lowpass
from lib.techniques.sdedit import flow_edit
from lib.train import model_store
from lib.train.training import TrainConfig, TrainedRun
from lib.train.unets import build_model
import ui.layout
from ui.backend import DEFAULT_SEED
from ui.part_a import DEFAULT_DIGIT
from ui.flow_backend import LOCAL_CHOICE, PIXNERD_CHOICE

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120
CONFIG = TrainConfig.spec("flow_class", hidden=4, epochs=1)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_run() -> TrainedRun:
    """Random-init weights and an EMA 0.05 away from them (so a page on the wrong weights shows other numbers)."""
    torch.manual_seed(0)
    model = build_model("flow_class", CONFIG.hidden)
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return TrainedRun(CONFIG, model.eval(), [1.0], {}, {"seconds": 0.0}, ema.eval())


@pytest.fixture()
def shipped(tmp_path, monkeypatch, tiny_run) -> MnistFlow:
    """The tiny run as data/models/flow_class.safetensors; returns the velocity model the pages should use (its EMA)."""
    folder = tmp_path / "shipped"
    model_store.save_run(tiny_run, folder / "flow_class.safetensors", {"device": "cpu (test)"})
    monkeypatch.setattr(model_store, "SHIPPED_DIR", folder)
    return MnistFlow(model_store.load_run(folder / "flow_class.safetensors").ema, CONFIG)


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


FLOW_DENOISING = "app_pages/flow_denoising.py"
FLOW_VELOCITY = "app_pages/flow_velocity.py"
FLOW_EULER = "app_pages/flow_euler.py"
FLOW_SAMPLING = "app_pages/flow_sampling.py"
FLOW_EDITING = "app_pages/flow_editing.py"
FLOW_ANAGRAMS = "app_pages/flow_anagrams.py"
FLOW_HYBRIDS = "app_pages/flow_hybrids.py"
FLOW_INPAINTING = "app_pages/flow_inpainting.py"


def opened(page: str) -> AppTest:
    """The page opened from Home in the flow edition, as a student follows a link: its links to other pages resolve."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    at.session_state["edition"] = "flow"
    at = at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def plotly_array(encoded: dict | list) -> np.ndarray:
    """A figure's array as plotly's JSON holds it: a list, or typed binary ({dtype, bdata, shape})."""
    if isinstance(encoded, list):
        return np.asarray(encoded)
    shape = [int(n) for n in str(encoded.get("shape", "-1")).split(",")]
    return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"]).reshape(shape)


def image_captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def default_input(model: MnistFlow, mnist_test):
    """What the pages open on: test digit 3 #0 as x₁ in the model's [0, 1], and ε from the default seed."""
    x1 = rescaled(mnist_test_digit(mnist_test, DEFAULT_DIGIT, 0), (-1.0, 1.0), model.value_range)
    return x1, randn(x1.shape, torch.Generator().manual_seed(DEFAULT_SEED), like=x1)


def test_without_a_flow_model_the_pages_say_where_to_train_one(monkeypatch, tmp_path):
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "nothing shipped")
    at = opened(FLOW_DENOISING)
    assert not at.error and not at.metric
    assert any("no run of it is in the model cache" in i.value for i in at.info)


def test_a_cached_run_is_used_when_none_is_shipped(monkeypatch, tmp_path, tiny_run):
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "nothing shipped")
    model_store.save_run(tiny_run, model_store.cache_path(CONFIG), {"device": "cpu (test)"})
    at = opened(FLOW_DENOISING)
    assert any("your run from the cache (1 epoch, D = 4), EMA weights" in c.value for c in at.sidebar.caption)
    assert at.metric


def test_denoising_page_shows_the_path_the_blur_and_the_one_step_estimate(shipped, mnist_test):
    at = opened(FLOW_DENOISING)
    assert any("the shipped run, EMA weights" in c.value for c in at.sidebar.caption)
    choice = at.sidebar.radio(key="flow_backend")  # PixNerd offered beside it, what it needs said
    assert choice.value == LOCAL_CHOICE and PIXNERD_CHOICE in choice.options and "needs a CUDA GPU" in choice.help
    x1, eps = default_input(shipped, mnist_test)

    def expected(t: float):
        x_t = interpolate(x1, eps, t)
        one_step = one_step_estimate(x_t, t, shipped.velocity(x_t, t, shipped.class_condition(DEFAULT_DIGIT)))
        return x_t, best_blur(x_t, t, x1, COURSE_SIGMAS), ((one_step - x1) ** 2).mean().item()

    x_t, sweep, one_step_mse = expected(0.5)
    assert metric(at, "MSE of x_t") == f"{((x_t - x1) ** 2).mean().item():.4f}"
    assert metric(at, "MSE of the best blur") == f"{min(sweep.errors):.4f}"
    assert metric(at, "MSE of the one-step x̂₁") == f"{one_step_mse:.4f}"

    table = at.dataframe[0].value
    for t in (0.25, 0.5, 0.75):
        _, sweep, one_step_mse = expected(t)
        column = table[f"t = {t:g}"].tolist()
        assert column[:-1] == pytest.approx(sweep.errors, rel=1e-5)
        assert column[-1] == pytest.approx(one_step_mse, rel=1e-4)

    at.slider(key="flow_denoising_t").set_value(0.0).run()
    assert not at.exception
    assert metric(at, "MSE of the best blur") == "—"
    assert any("x_t is pure noise" in i.value for i in at.info)
    assert metric(at, "MSE of x_t") == f"{((eps - x1) ** 2).mean().item():.4f}"  # x_0 = ε


def test_denoising_page_conditions_on_an_uploads_empty_prompt(shipped):
    at = opened(FLOW_DENOISING)
    at.radio(key="flow_denoising_source_mnist").set_value("Upload").run()
    assert not at.exception and any("Upload an image" in i.value for i in at.info)
    assert not at.metric and not at.dataframe  # nothing computed without an image


def test_velocity_page_shows_both_updates_on_one_scale_and_the_error_maps(shipped, mnist_test):
    at = opened(FLOW_VELOCITY)
    x1, eps = default_input(shipped, mnist_test)
    times = (0.25, 0.5, 0.75)
    errors, updates = [], []
    for t in times:
        x_t = interpolate(x1, eps, t)
        v = shipped.velocity(x_t, t, shipped.class_condition(DEFAULT_DIGIT))
        predicted, true = (1 - t) * v, x1 - x_t  # closed forms of §1.4
        errors.append((((predicted - true) ** 2).mean(dim=1).sqrt()))
        updates += [predicted, true]
    for t, e in zip(times, errors):
        assert metric(at, f"mean E at t = {t:g}") == f"{e.mean().item():.4f}"
    limit = max(u.abs().max().item() for u in updates)
    assert any(f"One scale [−{limit:.2f}, {limit:.2f}]" in c for c in image_captions(at))
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert figure["layout"]["coloraxis"]["cmin"] == 0
    assert figure["layout"]["coloraxis"]["cmax"] == pytest.approx(max(e.max().item() for e in errors), rel=1e-5)
    for trace, e in zip(figure["data"], errors):
        assert plotly_array(trace["z"]) == pytest.approx(e[0].numpy(), abs=1e-5)


def test_euler_page_integrates_from_half_way_and_compares_by_mse_and_sharpness(shipped, mnist_test):
    at = opened(FLOW_EULER)
    x1, eps = default_input(shipped, mnist_test)
    x_t = interpolate(x1, eps, 0.5)
    cond = shipped.class_condition(DEFAULT_DIGIT)
    steps = []
    final = euler(x_t, 0.5, 0.02, lambda x, t: shipped.velocity(x, t, cond),
                  on_step=lambda k, t, x, estimate: steps.append(t))
    assert len(steps) == 25  # the course's count from t = 0.5
    one_step = one_step_estimate(x_t, 0.5, shipped.velocity(x_t, 0.5, cond))
    blur = best_blur(x_t, 0.5, x1, COURSE_SIGMAS)
    estimates = torch.cat([one_step, final, blur.best])
    mse = ((estimates - x1) ** 2).flatten(1).mean(1)
    sharp = sharpness(torch.cat([estimates, x1]))

    table = at.dataframe[0].value
    assert table["MSE (lower is closer)"].tolist() == pytest.approx([*mse.tolist(), 0.0], rel=1e-4, abs=1e-7)
    assert table["sharpness (mean Laplacian²)"].tolist() == pytest.approx(sharp.tolist(), rel=1e-4)
    names = list(table.index)
    assert names[1] == "Euler, 25 steps" and names[2] == f"best blur (σ = {blur.best_sigma:g})"
    verdict = f"the {names[int(mse.argmin())]} wins on MSE and the {names[int(sharp[:3].argmax())]} is the sharpest"
    assert any(verdict in m.value for m in at.markdown)
    assert any(" · ".join(f"t = {t:.2f}" for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)) in c for c in image_captions(at))

    at.select_slider(key="flow_euler_h").set_value(0.5).run()  # one step of 0.5: Euler is the one-step estimate
    table = at.dataframe[0].value
    assert list(table.index)[1] == "Euler, 1 step"
    assert table["MSE (lower is closer)"].iloc[1] == pytest.approx(table["MSE (lower is closer)"].iloc[0], rel=1e-6)


@pytest.fixture()
def pictures(monkeypatch) -> list:
    """Every picture a page draws through ``ui.layout.image``, recorded on its way to the page (a spy: it still draws
    them)."""
    drawn = []
    original = ui.layout.image

    def image(picture, caption=None, container=st):
        drawn.append((picture, caption))
        return original(picture, caption, container)

    monkeypatch.setattr(ui.layout, "image", image)
    return drawn


def test_sampling_page_draws_from_the_same_noises_without_and_with_guidance(shipped, pictures):
    at = opened(FLOW_SAMPLING)
    generator = lambda: torch.Generator().manual_seed(DEFAULT_SEED)  # noqa: E731
    seven = shipped.class_condition(7)
    plain = sample(shipped, seven, scale=1.0, num_samples=5, generator=generator(), h=0.02)
    guided = sample(shipped, seven, scale=5.0, num_samples=5, generator=generator(), h=0.02)  # w = 4: γ = 5
    drawn = dict((caption, picture) for picture, caption in pictures)
    assert np.array_equal(drawn["the prompt '7' · w = 0 · 50 Euler steps"], grid(plain, 5, (0.0, 1.0), upscale=4))
    assert np.array_equal(drawn["the prompt '7' · w = 4 · the same noises"], grid(guided, 5, (0.0, 1.0), upscale=4))
    assert not torch.equal(plain, guided)

    at.text_input(key="flow_sampling_prompt").set_value("banana").run()
    assert not at.exception and "names no digit" in at.error[0].value

    pictures.clear()
    at.text_input(key="flow_sampling_prompt").set_value("").run()  # unconditional: v_c = v_u, every w the same
    drawn = [picture for picture, _ in pictures][-2:]
    assert np.array_equal(drawn[0], drawn[1])
    assert any("every w draws the same images" in c.value for c in at.caption)


def test_editing_page_edits_from_the_seven_start_times_with_one_noise(shipped, mnist_test, pictures):
    at = opened(FLOW_EDITING)
    x1, eps = default_input(shipped, mnist_test)
    starts = (0.02, 0.04, 0.06, 0.10, 0.14, 0.25, 0.50)
    expected = flow_edit(shipped, x1, eps, cond=shipped.class_condition(DEFAULT_DIGIT), scale=5.0, t_starts=starts,
                         h=0.02)
    drawn = dict((caption, picture) for picture, caption in pictures)
    assert np.array_equal(drawn[" · ".join(f"t_s = {t:g}" for t in starts)], grid(expected, 7, (0.0, 1.0), upscale=3))
    steps = sum(math.ceil((1 - t) / 0.02 - 1e-9) for t in starts)
    assert any(f"{steps} Euler steps for the seven edits" in c.value for c in at.caption)

    at.text_input(key="flow_editing_prompt").set_value("8").run()  # 3.2: towards another digit
    assert not at.exception and any("the prompt '8'" in c.value for c in at.caption)
    at.text_input(key="flow_editing_prompt").set_value("38").run()
    assert "names two digits" in at.error[0].value


def test_anagram_page_averages_the_upright_and_the_rotated_velocity(shipped, pictures):
    at = opened(FLOW_ANAGRAMS)
    x0 = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(DEFAULT_SEED))
    six, nine, null = shipped.class_condition(6), shipped.class_condition(9), shipped.null_condition()

    def cfg(x, t, cond):  # the course's v_c + w (v_c − v_u) with w = 4
        v_c, v_u = shipped.velocity(x, t, cond.expand(len(x), -1)), shipped.velocity(x, t, null.expand(len(x), -1))
        return v_c + 4 * (v_c - v_u)

    def rot(x):
        return torch.flip(x, (-2, -1))  # the course's 180° rotation

    expected = euler(x0, 0.0, 0.02, lambda x, t: (cfg(x, t, six) + rot(cfg(rot(x), t, nine))) / 2)
    drawn = dict((caption, picture) for picture, caption in pictures)
    assert np.abs(drawn["as generated: '6'"].astype(int) - grid(expected, 4, (0.0, 1.0), upscale=4)).max() <= 1
    assert np.abs(drawn["under the view “rotate 180°”: '9'"].astype(int)
                  - grid(rot(expected), 4, (0.0, 1.0), upscale=4)).max() <= 1
    assert "negate (MNIST)" not in at.selectbox(key="flow_anagrams_view").options


def test_hybrid_page_takes_the_low_band_of_one_prompt_and_the_high_band_of_the_other(shipped, pictures):
    at = opened(FLOW_HYBRIDS)
    x0 = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(DEFAULT_SEED))
    zero, five, null = shipped.class_condition(0), shipped.class_condition(5), shipped.null_condition()
    kernel, sigma = 2 * round(16.5 * 28 / 64) + 1, 2.0  # the course's taps at 28 px (15), the σ measured on MNIST

    def cfg(x, t, cond):  # the course's v_c + w (v_c − v_u) with its w = 7
        v_c, v_u = shipped.velocity(x, t, cond.expand(len(x), -1)), shipped.velocity(x, t, null.expand(len(x), -1))
        return v_c + 7 * (v_c - v_u)

    def low(v):
        return lowpass(v, kernel, sigma)

    expected = euler(x0, 0.0, 0.02, lambda x, t: low(cfg(x, t, zero)) + cfg(x, t, five) - low(cfg(x, t, five)))
    drawn = dict((caption, picture) for picture, caption in pictures)
    assert np.abs(drawn["up close: '5'"].astype(int) - grid(expected, 4, (0.0, 1.0), upscale=5)).max() <= 1
    assert any("σ = 2 px (measured for the MNIST model; the course's σ 16 at 512 px would be 0.875 here) and 15 taps"
               in c.value for c in at.caption)
    assert not at.warning
    # the course's σ scaled to 28 px makes no hybrid on MNIST (measured): the page says so instead of promising one
    at = at.slider(key="flow_hybrids_sigma_mnist").set_value(0.875).run()
    assert any("no hybrid on MNIST" in w.value for w in at.warning)
    assert any("σ = 0.875 px (the course's σ 16 at 512 px, scaled to 28 px)" in c.value for c in at.caption)


def reference_inpainting(model: MnistFlow, x1: torch.Tensor, mask: torch.Tensor, prompt_digit: int, num: int):
    """The flow form of inpainting written out: 50 Euler steps of the course's v_c + 4 (v_c − v_u) from ε of the
    default seed, and after each the kept pixels put back at (1 − t')·ε + t'·x_orig."""
    eps = torch.randn((num, 1, 28, 28), generator=torch.Generator().manual_seed(DEFAULT_SEED))
    cond, null = model.class_condition(prompt_digit).expand(num, -1), model.null_condition().expand(num, -1)
    x, original = eps, x1.expand(num, -1, -1, -1)
    for k in range(50):
        t, t_next = k / 50, min((k + 1) / 50, 1.0)
        v_c, v_u = model.velocity(x, t, cond), model.velocity(x, t, null)
        x = x + (t_next - t) * (v_c + 4 * (v_c - v_u))
        x = mask * x + (1 - mask) * ((1 - t_next) * eps + t_next * original)
    return x


def test_inpainting_page_keeps_the_originals_pixels_outside_the_mask(shipped, mnist_test, pictures):
    from ui.flow_backend import flow_backend
    from ui.part_a import preset_masks
    from ui.sections.flow_inpainting import DEFAULTS, inpaintings

    at = opened(FLOW_INPAINTING)
    assert at.title[0].value.startswith("3.2+ · ") and "not part of the Fall 2026 assignment" in at.title[0].value
    assert any("not part of the Fall 2026 assignment" in m.value for m in at.markdown)
    x1, _ = default_input(shipped, mnist_test)
    array = mnist_test_digit(mnist_test, DEFAULT_DIGIT, 0)[0].numpy()
    backend = flow_backend()
    results = {}
    for name in ("top half", "left half"):
        if name != DEFAULTS.mask:
            pictures.clear()
            at.radio(key="flow_inpainting_mask_mnist").set_value(name).run()
            assert not at.exception
        mask = preset_masks(backend)[name]
        result, cost = inpaintings(backend.cache_id, array, mask.numpy(), str(DEFAULT_DIGIT), 4.0, 0.02, 4,
                                   DEFAULT_SEED, backend)  # the page's cache entry
        kept = (mask == 0).expand_as(result)
        assert torch.equal(result[kept], x1.expand_as(result)[kept])  # exactly the original, bit for bit
        assert not torch.equal(result[~kept], x1.expand_as(result)[~kept])
        torch.testing.assert_close(result, reference_inpainting(shipped, x1, mask, DEFAULT_DIGIT, 4), atol=1e-5,
                                   rtol=1e-5)
        drawn = dict((caption, picture) for picture, caption in pictures)
        assert np.array_equal(drawn[f"4 inpaintings (seed {DEFAULT_SEED})"],
                              grid(rescaled(result, (0.0, 1.0), (-1.0, 1.0)), 4, upscale=3))
        masked = drawn["original · mask (white: regenerate) · masked input"]
        assert np.array_equal(masked, grid(torch.cat([torch.from_numpy(array)[None], 2 * mask - 1,
                                                      torch.from_numpy(array)[None] * (1 - mask)]), 3, upscale=3))
        assert metric(at, "Largest change outside the mask") == "0.000"
        assert cost.calls == 50 and cost.rows == 50 * 4 * 2  # one batched CFG call per Euler step
        assert any("50 UNet calls · 400 rows (4 samples per call × 2 for CFG)" in c.value for c in at.caption)
        results[name] = result
    assert not torch.equal(results["top half"], results["left half"])  # another mask, another result


def test_inpainting_page_asks_for_a_mask_that_keeps_something(shipped, monkeypatch):
    import ui.part_a

    canvas = {"rgba": None}
    monkeypatch.setattr(ui.part_a, "_canvas", lambda key, **_: canvas["rgba"])  # the browser's strokes, as returned
    at = opened(FLOW_INPAINTING)
    at.radio(key="flow_inpainting_mask_mnist").set_value("paint it").run()
    assert not at.exception and "Paint the region to regenerate" in " ".join(i.value for i in at.info)
    assert not at.metric  # nothing computed without a mask

    canvas["rgba"] = np.full((280, 280, 4), 255, np.uint8)  # painted all over
    at.run()
    assert not at.exception and "covers the whole image" in at.warning[0].value and not at.metric

    canvas["rgba"][:, 140:, 3] = 0  # the right half left unpainted: kept
    at.run()
    assert not at.exception and not at.warning
    assert metric(at, "Largest change outside the mask") == "0.000"


def test_inpainting_report_piece_is_marked_as_an_extra(shipped, mnist_test):
    import io

    from PIL import Image

    from lib.media.costs import CountingNoiseModel
    from lib.media.report import section_html
    from ui import whole_assignment
    from ui.report_kit import Context
    from ui.sections import flow_inpainting

    assert set(flow_inpainting.REPORT) <= set(whole_assignment.pieces("flow"))
    assert not set(flow_inpainting.REPORT) & set(whole_assignment.pieces("ddpm"))
    c = Context(None, CountingNoiseModel(None), None, None, [], edition="flow")
    (piece,) = flow_inpainting.REPORT
    (made,), _ = piece.make(c)
    assert made.number == "3.2+" and "not part of the Fall 2026 assignment" in made.title
    assert c.den.cost.calls == 50  # its velocity calls counted in the report's cost
    html = section_html(made)
    assert "3.2+" in html and "<th>mask</th><td>top half</td>" in html and "<th>guidance w</th><td>4.0</td>" in html
    picture = np.asarray(Image.open(io.BytesIO(made.figures[0].data)))
    x1, _ = default_input(shipped, mnist_test)
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., :14, :] = 1
    expected = reference_inpainting(shipped, x1, mask, DEFAULT_DIGIT, 4)
    tail = grid(rescaled(expected, (0.0, 1.0), (-1.0, 1.0)), 4, upscale=4)  # the four inpaintings after three images
    assert np.abs(picture[:, -tail.shape[1]:].astype(int) - tail.astype(int)).max() <= 1
