"""AppTests of the flow edition's part-B pages (pure noise, time- and class-conditioned flow, no LR scheduler): what
they show, that their controls change it, and that the numbers they print are the ones computed here independently.

Like tests/test_pages_part_b.py they run on tiny models (D = 4, a few steps) saved in a temporary "shipped" folder, with
1,024 real MNIST training digits.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import ui.common
from lib.media.images import grid
from lib.train import model_store
from lib.train.runs import TrainingJobs, denoiser_probe, pure_noise_probe, run_training
from lib.train.centroids import mean_image
from lib.train.digit_classifier import quality
from lib.train.training import (FLOW_CONSTANT_LR, FLOW_SAMPLER_STEPS, TrainConfig, epoch_learning_rates,
                                held_out_loss)
from tests.test_pages_part_b import (animation, app, continue_to_the_end, digits, figures, formulas,  # noqa: F401
                                     image_with_caption, nothing_shipped, open_page, run, short_run_controls,
                                     stopped_after_two_steps, texts, values)
from ui.backend import DEFAULT_SEED
from ui.sections import class_flow, constant_lr, pure_noise, time_flow
from ui.sections.constant_lr import mean_rates, scheduled_counterpart
from ui.training.flow_page import path_columns
from ui.training.results import FAST_SAMPLING

TIME_FLOW = "app_pages/time_flow.py"
TINY = dict(hidden=4, epochs=2, batch_size=16, steps_per_epoch=2, snapshot_epochs=(1, 2))
TINY_GRIDS = {"flow_time": 50, "flow_class": 50}  # per-epoch grids of 1 and 6 Euler steps


@pytest.fixture(scope="session")
def tiny_flow_shipped(tmp_path_factory, digits) -> Path:
    """A shipped-models folder with a tiny trained run of each of the flow edition's shipped runs."""
    folder = tmp_path_factory.mktemp("shipped_flow")
    for name in ("pure_noise", "flow_time", "flow_class", "flow_class_constant_lr"):
        save_tiny_run(folder, name, digits)
    return folder


def save_tiny_run(folder: Path, name: str, digits) -> None:
    """Train the shipped run ``name`` cut to ``TINY`` (its grids at ``TINY_GRIDS``) and save it as shipped in
    ``folder``."""
    model = model_store.SHIPPED_RUNS[name][0]
    stride = {"sample_stride": TINY_GRIDS[model]} if model in TINY_GRIDS else {}
    config = model_store.shipped_run_config(name, **TINY, **stride)
    result = run_training(config, *digits, device=torch.device("cpu"))
    model_store.save_run(result, folder / f"{name}.safetensors",
                         {**result.info, "device": "cpu (test)", "data": digits[0].note, "command": f"pytest {name}"})


@pytest.fixture()
def flow_shipped(app, tiny_flow_shipped, monkeypatch) -> Path:
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tiny_flow_shipped)
    return tiny_flow_shipped


def frame_pixels(frame: dict) -> np.ndarray:
    """An animation frame's picture (a PNG data URI) as a uint8 array."""
    uri = frame["data"][0]["source"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def reference_euler(model: torch.nn.Module, num: int, steps: int, seed: int, cond=None) -> torch.Tensor:
    """The spec's Algorithm B.2 written out here: x ~ N(0, I) from ``seed``, then x ← x + h u_θ(x, t) at
    t = 0, h, …, 1 − h with h = 1 / steps."""
    x = torch.randn((num, 1, 28, 28), generator=torch.Generator().manual_seed(seed))
    h = 1.0 / steps
    with torch.no_grad():
        for k in range(steps):
            t = torch.full((num,), k * h)
            x = x + h * (model(x, t) if cond is None else model(x, t, cond))
    return x


def reference_ancestral(model: torch.nn.Module, num: int, steps: int, seed: int) -> torch.Tensor:
    """The straight path's ancestral sampler written out here: x ~ N(0, I) from ``seed``; at t = k h (h = 1 / steps),
    with v = u_θ(x, t), x̂₁ = x + (1 − t) v and ε̂ = x − t v, the next state is drawn from the Markov chain's posterior
    x_t' = t' x̂₁ + √((1 − t')² − s²) ε̂ + s z, s² = (1 − t')² σ²_{t|t'} / (1 − t)², σ²_{t|t'} = (1 − t)² −
    (t / t')² (1 − t')² (z from the same generator; none drawn for the last step, where s = 0)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((num, 1, 28, 28), generator=gen)
    h = 1.0 / steps
    with torch.no_grad():
        for k in range(steps):
            t, t_next = k * h, min((k + 1) * h, 1.0)
            v = model(x, torch.full((num,), t))
            x1, eps = x + (1 - t) * v, x - t * v
            var_step = (1 - t) ** 2 - (t / t_next) ** 2 * (1 - t_next) ** 2
            s = ((1 - t_next) ** 2 * var_step / (1 - t) ** 2) ** 0.5
            z = torch.randn(x.shape, generator=gen) if s > 0 else 0.0
            x = t_next * x1 + max((1 - t_next) ** 2 - s * s, 0.0) ** 0.5 * eps + s * z
    return x


# --- the straight path ------------------------------------------------------------------------------------------------


def test_the_path_figure_runs_from_the_noise_to_the_digit(digits):
    """x_t at t = 0 is ε and at t = 1 the digit (interpolate's endpoints), halfway their mean."""
    test = digits[1]
    x1, _ = denoiser_probe(test, 0.0, classes=range(4))
    eps = pure_noise_probe(4, DEFAULT_SEED)
    noise, half, digit = path_columns(test, (0.0, 0.5, 1.0))
    assert np.array_equal(noise, grid(eps, 1, (0.0, 1.0), upscale=3))
    assert np.array_equal(digit, grid(x1, 1, (0.0, 1.0), upscale=3))
    assert np.array_equal(half, grid((eps + x1) / 2, 1, (0.0, 1.0), upscale=3))


# --- B 2.1 – 2.3: the time-conditioned flow -----------------------------------------------------------------------------


def test_time_flow_shows_formulas_path_results_and_samples(flow_shipped):
    at = open_page(TIME_FLOW)
    shown = " ".join(formulas(at))
    assert r"x_t = (1 - t)\,x_0 + t\,x_1" in shown and r"(x_1 - x_0) - u_\theta(x_t, t)" in shown
    assert r"\odot \mathrm{fc}_1(t)" in shown and r"x_{t+h} = x_t + h\,u_\theta(x_t, t)" in shown
    assert "t = 0 is pure noise, t = 1 the image" in texts(at.markdown)
    captions = [c for img in at.get("image") for c in img.captions]
    assert [c for c in captions if c.startswith("t = ")] == [f"t = {t:g}" for t in time_flow.DEFAULTS.path_times]
    assert "Showing the **shipped** model for these settings" in texts(at.caption)
    assert " s · D = 4, 2 short epochs of 2 batches." in texts(at.caption)

    stored = model_store.load_run(flow_shipped / "flow_time.safetensors")
    loss, anim = figures(at)
    assert np.allclose(values(loss["data"][0]["y"]), stored.losses)
    # the per-epoch grids side by side, each with its download
    assert [c for c in captions if c.startswith("40 samples after epoch")] == ["40 samples after epoch 1",
                                                                               "40 samples after epoch 2"]
    assert at.download_button(key="time_flow_snapshot_1_png").proto.label == "Download PNG"

    # Euler steps: the spec's 50 (h = 0.02), 25 frames (every 2nd step), ending at t = 1
    assert at.select_slider(key="time_flow_steps").value == DEFAULT_STEPS == 50
    assert len(anim["frames"]) == 25 and anim["frames"][-1]["name"] == "step 50/50 · t = 1"
    assert anim["frames"][0]["name"] == "step 2/50 · t = 0.04"
    assert f"40 samples · 50 Euler steps, seed {DEFAULT_SEED}" in captions

    # the last frame is the spec's Euler loop written out independently, on the same noise
    expected = reference_euler(stored.model, time_flow.DEFAULTS.samples, 50, DEFAULT_SEED)
    shown = frame_pixels(anim["frames"][-1])
    assert np.abs(shown.astype(int) - grid(expected, 4, (0.0, 1.0), upscale=4).astype(int)).max() <= 1

    grid50 = image_with_caption(at, "40 samples · 50 Euler steps")
    at = run(at.select_slider(key="time_flow_steps").set_value(5))
    assert [f["name"] for f in animation(at)["frames"]] == [f"step {k}/5 · t = {k / 5:g}" for k in range(1, 6)]
    assert "5 Euler steps of h = 1/5" in texts(at.caption)
    grid5 = image_with_caption(at, "40 samples · 5 Euler steps")
    assert grid5 != grid50
    expected = reference_euler(stored.model, time_flow.DEFAULTS.samples, 5, DEFAULT_SEED)
    assert np.abs(frame_pixels(animation(at)["frames"][-1]).astype(int)
                  - grid(expected, 4, (0.0, 1.0), upscale=4).astype(int)).max() <= 1

    at = run(at.slider(key="time_flow_frames").set_value(2))  # every ⌊5 / 2⌋ = 2nd step, and the last
    assert [f["name"] for f in animation(at)["frames"]] == ["step 2/5 · t = 0.4", "step 4/5 · t = 0.8",
                                                            "step 5/5 · t = 1"]
    states = [f["data"][0]["source"] for f in animation(at)["frames"]]
    at = run(at.radio(key="time_flow_show").set_value(at.radio(key="time_flow_show").options[1]))
    estimates = [f["data"][0]["source"] for f in animation(at)["frames"]]
    assert estimates[:-1] != states[:-1]  # x̂₁ = x_t + (1 − t) v̂ runs ahead of x_t …
    assert at.radio(key="time_flow_show").options[1].startswith("x̂₁")
    at = run(at.text_input(key="time_flow_seed").set_value("3"))
    seed3 = image_with_caption(at, "40 samples · 5 Euler steps, seed 3")
    assert seed3 != grid5

    # the run's moving average of its weights samples on the same noise
    assert at.radio(key="time_flow_weights").value == "spec"
    at = run(at.radio(key="time_flow_weights").set_value("ema"))
    assert image_with_caption(at, "40 samples · 5 Euler steps, seed 3") != seed3
    at = run(at.radio(key="time_flow_weights").set_value("spec"))

    # beyond the spec: the path's ancestral step (the spec's run opens on η = 0, Euler's; no formula of it until chosen)
    assert at.slider(key="time_flow_eta_flow_time").value == 0.0
    assert not [f for f in at.latex if "SNR" in f.value]
    at = run(at.slider(key="time_flow_eta_flow_time").set_value(1.0))
    assert "5 ancestral steps at η = 1 of h = 1/5" in texts(at.caption)
    assert image_with_caption(at, "40 samples · 5 ancestral steps at η = 1, seed 3") != seed3
    assert len([f for f in at.latex if "SNR" in f.value or r"\hat\varepsilon" in f.value]) == 2
    expected = reference_ancestral(stored.model, time_flow.DEFAULTS.samples, 5, 3)
    assert np.abs(frame_pixels(animation(at)["frames"][-1]).astype(int)
                  - grid(expected, 4, (0.0, 1.0), upscale=4).astype(int)).max() <= 1


DEFAULT_STEPS = FLOW_SAMPLER_STEPS["flow_time"]


def test_time_flow_without_a_shipped_model_trains_from_the_page(nothing_shipped, monkeypatch, digits):
    jobs = TrainingJobs(lambda: digits, device=torch.device("cpu"))
    monkeypatch.setattr(ui.common, "training_jobs", lambda: jobs)
    at = open_page(TIME_FLOW)
    assert "No trained time-conditioned flow model yet" in texts(at.info)
    assert "data/models/flow_time.safetensors is missing" in texts(at.info)
    assert len([img for img in at.get("image") if img.captions[0].startswith("t = ")]) == 5  # section 1 still shows
    if not torch.cuda.is_available():  # the CPU's short run: as many digits as the DDPM edition's B2 short run
        assert at.checkbox(key="b_flow_time_short").value
    at = short_run_controls(at, "flow_time", sample_stride=10)
    run(at.button(key="time_flow_train").click())
    config = TrainConfig.spec("flow_time", hidden=8, epochs=1, batch_size=32, steps_per_epoch=3, sample_stride=10,
                              dataset=digits[0].source)
    job = jobs.get(config)
    job.thread.join(120)
    assert job.status == "done", job.error
    at = run(at)
    assert "Training finished: 3 steps" in texts(at.success) and "your training run" in texts(at.caption)
    assert np.allclose(values(figures(at)[0]["data"][0]["y"]), job.trained.losses)
    assert [c for img in at.get("image") for c in img.captions if "after epoch" in c] == ["40 samples after epoch 1"]


# --- B 2.4 – 2.6: the class-conditioned flow ----------------------------------------------------------------------------

CLASS_FLOW = "app_pages/class_flow.py"


def reference_guided_euler(model: torch.nn.Module, digits, steps: int, seed: int, scale: float) -> torch.Tensor:
    """Algorithm B.4 written out here for a (N,) tensor of ``digits``: v = u(x, t, ∅) + γ (u(x, t, c) − u(x, t, ∅)),
    x ← x + h v."""
    num = len(digits)
    c = torch.nn.functional.one_hot(digits, 10).float()
    x = torch.randn((num, 1, 28, 28), generator=torch.Generator().manual_seed(seed))
    h = 1.0 / steps
    with torch.no_grad():
        for k in range(steps):
            t = torch.full((num,), k * h)
            v_u, v_c = model(x, t, torch.zeros_like(c)), model(x, t, c)
            x = x + h * (v_u + scale * (v_c - v_u))
    return x


def last_frame_matches(at: AppTest, expected: torch.Tensor) -> bool:
    shown = frame_pixels(animation(at)["frames"][-1]).astype(int)
    return np.abs(shown - grid(expected, len(expected), (0.0, 1.0), upscale=4).astype(int)).max() <= 1


def test_class_flow_guidance_digit_and_steps(flow_shipped):
    at = open_page(CLASS_FLOW)
    shown = " ".join(formulas(at))
    assert r"c_1(\mathbf{c}) \odot \text{unflatten} + t_1(t)" in shown and "p_\\text{uncond} = 0.1" in shown
    assert r"u_\theta(x_t, t, \varnothing) + \gamma\,\big(" in shown
    assert " s · D = 4, p_uncond = 0.1, 2 short epochs of 2 batches." in texts(at.caption)
    captions = [c for img in at.get("image") for c in img.captions]
    assert [c for c in captions if "after epoch" in c] == [
        f"4 samples of every digit (γ = 5), one row per digit, after epoch {e}" for e in (1, 2)]
    assert at.slider(key="class_flow_scale").value == class_flow.DEFAULTS.scale == 5.0
    opening = class_flow.DEFAULTS.steps if FAST_SAMPLING else class_flow.DEFAULTS.steps_slow_cpu
    assert at.select_slider(key="class_flow_steps").value == opening
    assert class_flow.DEFAULTS.steps == FLOW_SAMPLER_STEPS["flow_class"] == 300
    assert f"Rows: digits 0–9, 4 samples each · γ = 5, {opening} Euler steps, seed {DEFAULT_SEED}" in captions

    stored = model_store.load_run(flow_shipped / "flow_class.safetensors")
    at = run(at.select_slider(key="class_flow_steps").set_value(5))
    assert "5 Euler steps of h = 1/5, each one batched UNet call" in texts(at.caption)
    grid5 = image_with_caption(at, "γ = 5, 5 Euler steps")
    assert last_frame_matches(at, reference_guided_euler(stored.model, torch.full((4,), 7), 5, DEFAULT_SEED, 5.0))

    run(at.slider(key="class_flow_scale").set_value(0.0))
    assert image_with_caption(at, "Rows: digits 0–9, 4 samples each · γ = 0") != grid5
    frames_7 = [f["data"][0]["source"] for f in animation(at)["frames"]]
    run(at.selectbox(key="class_flow_digit").set_value(2))
    assert [f["data"][0]["source"] for f in animation(at)["frames"]] == frames_7  # γ = 0 ignores the digit
    run(at.slider(key="class_flow_scale").set_value(1.0))  # γ = 1: the conditional velocity alone
    assert last_frame_matches(at, reference_guided_euler(stored.model, torch.full((4,), 2), 5, DEFAULT_SEED, 1.0))
    run(at.slider(key="class_flow_scale").set_value(5.0))
    assert image_with_caption(at, "γ = 5, 5 Euler steps") == grid5  # same inputs, same picture
    assert last_frame_matches(at, reference_guided_euler(stored.model, torch.full((4,), 2), 5, DEFAULT_SEED, 5.0))


# --- B 2.6: without the scheduler ---------------------------------------------------------------------------------------

CONSTANT_LR = "app_pages/constant_lr.py"


def test_constant_lr_compares_both_runs_by_numbers_computed_here(flow_shipped, digits):
    """Both loss curves on one chart, both grids from the same noise, and the numbers: the last epoch's mean training
    loss, the held-out loss and the app's digit judge's reading, each recomputed here."""
    at = open_page(CONSTANT_LR)
    assert "geometric mean" in texts(at.markdown) and r"0.1^{(E-1)/(2E)}" in formulas(at)[1]
    constant = model_store.load_run(flow_shipped / "flow_class_constant_lr.safetensors")
    scheduled = model_store.load_run(flow_shipped / "flow_class.safetensors")
    assert constant.config.constant_lr and constant.config.lr == FLOW_CONSTANT_LR and not scheduled.config.constant_lr
    assert scheduled_counterpart(constant.config) == scheduled.config  # the shipped pair differs only by the schedule

    # the compensation, from the runs' configurations: per-epoch rates and their means
    rates = at.dataframe[0].value
    assert list(rates["scheduled"]) == pytest.approx(epoch_learning_rates(scheduled.config))
    assert list(rates["constant"]) == [FLOW_CONSTANT_LR] * constant.config.epochs
    arithmetic, geometric = mean_rates(scheduled.config)
    assert f"arithmetic mean is **{arithmetic:.2e}**" in texts(at.markdown)
    assert f"geometric mean **{geometric:.2e}**" in texts(at.markdown)

    (losses,) = [f for f in figures(at) if f["layout"]["title"]["text"] == "Training loss"]
    curves = {trace["name"]: values(trace["y"]) for trace in losses["data"] if trace.get("showlegend") is False}
    assert np.allclose(curves["with ExponentialLR: per step"], scheduled.losses)
    assert np.allclose(curves[f"constant lr {FLOW_CONSTANT_LR:g}: per step"], constant.losses)

    at = run(at.select_slider(key="constant_lr_steps").set_value(5))
    captions = [c for img in at.get("image") for c in img.captions]
    assert f"with ExponentialLR · digits 0–9, 4 each · γ = 5, 5 Euler steps, seed {DEFAULT_SEED}" in captions

    table = at.table[0].value
    assert list(table.index) == ["with ExponentialLR", f"constant lr {FLOW_CONSTANT_LR:g}"]
    test = digits[1]
    n = constant_lr.DEFAULTS.held_out_digits
    labels = torch.arange(10).repeat_interleave(4)
    classifier, real = ui.common.digit_judge()
    for row, stored in zip(table.index, (scheduled, constant)):
        per_epoch = stored.config.epoch_length_of_run(len(stored.losses))
        assert table.loc[row, "mean training loss, last epoch"] == pytest.approx(np.mean(stored.losses[-per_epoch:]))
        held_out = held_out_loss(stored.model, stored.config, test.as_float()[:n], test.labels[:n], 0)
        assert table.loc[row, f"loss on {n:,} test digits"] == pytest.approx(held_out, rel=1e-5)
        drawn = reference_guided_euler(stored.model, labels, 5, DEFAULT_SEED, 5.0).clamp(0, 1)
        expected = quality(classifier, drawn * 2 - 1, labels)  # the judge reads pixels in [−1, 1]
        assert table.loc[row, "grid read as asked"] == pytest.approx(expected.agrees, abs=1 / 40)
        assert table.loc[row, "grid read confidently"] == pytest.approx(expected.confident, abs=1 / 40)
    assert f"On real test digits it reads {real.agrees:.1%} correctly" in texts(at.caption)


# --- B 1.2.3: denoising pure noise --------------------------------------------------------------------------------------

PURE_NOISE = "app_pages/pure_noise.py"


def test_pure_noise_shows_loss_floor_outputs_and_the_centroid(flow_shipped, digits):
    at = open_page(PURE_NOISE)
    assert r"D_\theta(\varepsilon) - x" in formulas(at)[0] and r"\bar x = \mathbb{E}[x]" in formulas(at)[1]
    stored = model_store.load_run(flow_shipped / "pure_noise.safetensors")
    (loss,) = figures(at)
    assert np.allclose(values(loss["data"][0]["y"]), stored.losses)
    centroid = mean_image(digits[0].as_float())
    floor = ((digits[0].as_float() - centroid) ** 2).mean().item()
    assert f"E‖x − x̄‖² = **{floor:.4f}** per pixel" in texts(at.markdown)
    captions = [c for img in at.get("image") for c in img.captions]
    assert {"inputs ε ~ N(0, I)", "targets x: training digits, drawn independently of ε"} <= set(captions)
    assert [c for c in captions if "after epoch" in c] == [f"D(ε) for 40 fixed noise images after epoch {e}"
                                                           for e in (1, 2)]
    assert "x̄: the mean of the training digits" in captions

    # the lesson, recomputed in fp32: the trained model on fresh noise from the page's seed, against x̄ (the page runs
    # the model at the app's precision, bf16 on a CPU with bf16 units: its numbers agree to bf16's rounding)
    def lesson_numbers(seed: int) -> tuple[torch.Tensor, str]:
        with torch.no_grad():
            outputs = stored.model(pure_noise_probe(pure_noise.DEFAULTS.samples, seed))
        return ((outputs - centroid) ** 2).flatten(1).mean(1), texts(at.markdown)

    def shown(pattern: str, text: str) -> float:
        return float(re.search(pattern, text).group(1))

    distances, text = lesson_numbers(DEFAULT_SEED)
    assert shown(r"Each output lies \*\*([0-9.]+)\*\* from x̄", text) == pytest.approx(distances.mean(), rel=0.02)
    assert shown(r"the farthest ([0-9.]+)\)", text) == pytest.approx(distances.max(), rel=0.02)
    real = ((digits[1].as_float() - centroid) ** 2).mean().item()
    assert f"a real test digit lies **{real:.4f}** from it" in text
    at = run(at.text_input(key="pure_noise_seed").set_value("5"))
    distances5, text = lesson_numbers(5)
    assert not torch.allclose(distances5, distances)
    assert shown(r"Each output lies \*\*([0-9.]+)\*\* from x̄", text) == pytest.approx(distances5.mean(), rel=0.02)


# --- every flow page without its shipped model ------------------------------------------------------------------------


@pytest.mark.parametrize("page, what, name", [
    (PURE_NOISE, "pure-noise denoiser", "pure_noise"),
    (CLASS_FLOW, "class-conditioned flow model", "flow_class"),
    (CONSTANT_LR, "run without the scheduler", "flow_class_constant_lr"),
])
def test_a_flow_page_without_its_shipped_model_says_so_and_offers_training(nothing_shipped, page, what, name):
    at = open_page(page)
    assert f"No trained {what} yet (the shipped data/models/{name}.safetensors is missing)" in texts(at.info)
    train = at.button(key=f"{Path(page).stem}_train")
    assert train.label == "Train" and not train.disabled
    if page == CONSTANT_LR:  # the compensation is computed from the settings alone: it shows before any run
        spec = model_store.shipped_run_config(name)
        rates = at.dataframe[0].value
        assert list(rates["scheduled"]) == pytest.approx(epoch_learning_rates(scheduled_counterpart(spec)))
        assert list(rates["constant"]) == [FLOW_CONSTANT_LR] * spec.epochs
        assert f"geometric mean **{mean_rates(scheduled_counterpart(spec))[1]:.2e}**" in texts(at.markdown)


def test_constant_lr_a_stopped_run_continues_from_the_page(nothing_shipped, monkeypatch, digits):
    """The run without the scheduler, stopped after 2 of its 4 steps, is offered as "Continue training from step 2"
    and ends exactly where a run that never stopped ends — its learning rate held all along."""
    config = model_store.shipped_run_config("flow_class_constant_lr", hidden=8, epochs=1, batch_size=32,
                                            steps_per_epoch=4, sample_stride=30, dataset=digits[0].source)
    whole, jobs = stopped_after_two_steps(config, digits, monkeypatch)

    at = open_page(CONSTANT_LR)
    prefix = "b_flow_class_constant_lr"
    at.select_slider(key=f"{prefix}_hidden").set_value(8)
    at.slider(key=f"{prefix}_epochs").set_value(1)
    at.select_slider(key=f"{prefix}_batch").set_value(32)
    at.select_slider(key=f"{prefix}_sample_stride").set_value(30)
    at = run(at.checkbox(key=f"{prefix}_short").check())
    at = run(at.text_input(key=f"{prefix}_steps").set_value("4"))
    continue_to_the_end(at, "constant_lr_train", jobs, config, whole)
    at = run(at)
    assert "Training finished: 4 steps" in texts(at.success)
    # the run without the scheduler is there now; the page asks for the scheduled run it is compared with
    assert ("No trained run with the scheduler yet (the shipped data/models/flow_class.safetensors is missing)"
            in texts(at.info))
