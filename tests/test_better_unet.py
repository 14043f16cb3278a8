"""Beyond the spec: "a better time-conditioned UNet" on the time-only pages (B2 and the flow edition's B 2.1 – 2.3) —
the recipes as declared, the choice of UNet, and the comparison's numbers, recomputed here from the same samples.

The pages run on tiny models (D = 4, a few steps) in a temporary "shipped" folder, with 1,024 real MNIST training
digits, as tests/test_pages_part_b.py and tests/test_pages_flow.py do. The shipped models' own quality is held by
tests/test_shipped_flow_models.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.backends.mnist_model import MnistDDPM, unconditional_grid
from lib.train import model_store
from lib.train.digit_classifier import cached_digit_classifier, confident_share, digit_shares, label_shares
from lib.train.judged_samples import DDPM_STRIDE
from tests.test_pages_flow import reference_ancestral, reference_euler, save_tiny_run, tiny_flow_shipped  # noqa: F401
from tests.test_pages_part_b import (app, digits, figures, nothing_shipped, open_page, run, texts,  # noqa: F401
                                     tiny_shipped, values)
from ui.backend import DEFAULT_SEED
from ui.training.better_unet import SAMPLE_COUNTS, recipe_changes, recipe_text

TIME_FLOW, TIME_DDPM = "app_pages/time_flow.py", "app_pages/time_ddpm.py"


def test_each_time_only_run_has_a_better_recipe_that_keeps_the_spec_s_model():
    assert model_store.BETTER_RUNS == {"time": "time_beyond_spec", "flow_time": "flow_time_beyond_spec"}
    # the flow's recipe samples with the path's ancestral step; every other run as its spec says (the DDPMs' chain is
    # ancestral already)
    assert {name: model_store.sampler_eta(name) for name in model_store.SHIPPED_RUNS if model_store.sampler_eta(name)} \
        == {"flow_time_beyond_spec": 1.0}
    assert ("the straight path's ancestral step (noise η = 1) instead of the spec's Euler step"
            in recipe_text("flow_time"))
    assert "Everything else — the objective, the sampler, the UNet's levels and widths — is the spec's." in \
        recipe_text("time")
    for spec_run, better_run in model_store.BETTER_RUNS.items():
        spec, better = (model_store.shipped_run_config(name) for name in (spec_run, better_run))
        assert better.model == spec.model and better.keeps_ema() and better.decays_lr()
        assert (better.architecture, better.time_features, spec.architecture, spec.time_features) == (
            "attention", 32, "spec", 0)
        assert better.hidden == spec.hidden and better.epochs == {"flow_time": 80, "time": 40}[spec.model]
        assert (better.num_timesteps, better.beta_start) == (spec.num_timesteps, spec.beta_start)
    flow = [model_store.shipped_run_config(n) for n in ("flow_time", "flow_time_beyond_spec")]
    attention = "self-attention at 7×7 and t in every block (spec: t in two blocks only, no attention)"
    assert recipe_changes(*flow) == [attention, "t as 32 Fourier features (spec: the bare number t)",
                                     "80 epochs (spec: 10 epochs)", "batch 128 (spec: batch 64)",
                                     "lr 0.002 (spec: lr 0.01)"]
    ddpm = [model_store.shipped_run_config(n) for n in ("time", "time_beyond_spec")]
    assert recipe_changes(*ddpm) == [attention, "t as 32 Fourier features (spec: the bare number t)",
                                     "β rising to 0.05, so that x_T keeps 2% of the digit (spec: β rising to 0.02, so "
                                     "that x_T keeps 22% of the digit)", "40 epochs (spec: 20 epochs)",
                                     "lr 0.002 (spec: lr 0.001)"]
    # √ᾱ_T of the linear schedule, ᾱ_T = Π (1 − β_t), written out here
    for config, kept in ((ddpm[0], 0.2192), (ddpm[1], 0.0219)):
        betas = torch.linspace(config.beta_start, config.beta_end, config.num_timesteps, dtype=torch.float64)
        assert torch.prod(1 - betas).sqrt().item() == pytest.approx(kept, abs=1e-4)
        assert config.schedule().terminal_signal() == pytest.approx(kept, abs=1e-4)


def test_digit_shares_of_real_digits_follow_their_labels(digits, digit_classifier):  # noqa: F811
    assert label_shares(torch.tensor([0, 0, 1, 9])).tolist() == [0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0.25]
    test = digits[1]
    shares = digit_shares(digit_classifier, test.as_float() * 2 - 1)
    assert shares.sum().item() == pytest.approx(1.0)
    assert (shares - label_shares(test.labels)).abs().max().item() < 0.03  # a ≈ 97 % accurate reader


@pytest.fixture(scope="session")
def with_better_runs(tmp_path_factory, tiny_shipped, tiny_flow_shipped, digits) -> Path:  # noqa: F811
    """The tiny shipped runs of both editions, and a tiny run of each better recipe (its D cut to 4, its Fourier
    features kept)."""
    folder = tmp_path_factory.mktemp("shipped_better")
    for source in (tiny_shipped, tiny_flow_shipped):
        for path in source.glob("*.safetensors"):
            shutil.copy(path, folder / path.name)
    for name in model_store.BETTER_RUNS.values():
        save_tiny_run(folder, name, digits)
    return folder


@pytest.fixture()
def better_shipped(app, with_better_runs, monkeypatch) -> Path:  # noqa: F811
    monkeypatch.setattr(model_store, "SHIPPED_DIR", with_better_runs)
    return with_better_runs


def judged_numbers(at) -> dict[str, float]:
    """The comparison's sentence as numbers: both confident shares and both largest gaps to MNIST's proportions."""
    text = texts(at.markdown)
    m = re.search(r"The better UNet draws a confident digit in \*\*([\d.]+)%\*\* of its samples, the spec's in "
                  r"\*\*([\d.]+)%\*\* .*?off by at most \*\*([\d.]+)\*\* points \(the (\d)s\), the spec's by "
                  r"\*\*([\d.]+)\*\* \(the (\d)s\)", text, re.S)
    assert m, text
    return {"better": float(m[1]), "spec": float(m[2]), "better_gap": float(m[3]), "better_digit": int(m[4]),
            "spec_gap": float(m[5]), "spec_digit": int(m[6])}


def check_the_comparison(at, folder: Path, spec_run: str, digits, draw) -> None:  # noqa: F811
    """Press **Judge** at the fewest samples and check every number against ``draw(run, n, seed)`` (the samples in
    [−1, 1], computed here) read by the app's judge."""
    key = {"flow_time": "time_flow", "time": "time_ddpm"}[spec_run]
    at = run(at.select_slider(key=f"{key}_judge_samples").set_value(SAMPLE_COUNTS[0]))
    at = run(at.button(key=f"{key}_judge").click())
    judge = cached_digit_classifier(digits[0], model_store.CACHE_DIR)  # the app's, as it saved it
    mnist = label_shares(digits[0].labels)
    expected = {}
    for which, name in (("spec", spec_run), ("better", model_store.BETTER_RUNS[spec_run])):
        stored = model_store.load_run(folder / f"{name}.safetensors")
        x = draw(stored, SAMPLE_COUNTS[0], DEFAULT_SEED)
        gaps = (digit_shares(judge, x) - mnist).abs() * 100
        expected[which] = (confident_share(judge, x) * 100, digit_shares(judge, x) * 100, gaps.max().item())
    # the two tiny models' digit mixes differ (the better one is another UNet), so that a chart that swapped them
    # would fail the checks below
    assert (expected["spec"][1] - expected["better"][1]).abs().max().item() > 2 * 1.05
    shown = judged_numbers(at)
    for which in ("spec", "better"):
        confident, shares, gap = expected[which]
        assert shown[which] == pytest.approx(confident, abs=1.05)  # one of 100 samples at the judge's edge may flip
        assert shown[f"{which}_gap"] == pytest.approx(gap, abs=1.05)
    (chart,) = [f for f in figures(at) if f["layout"].get("barmode") == "group"]
    bars = {trace["name"]: values(trace["y"]) for trace in chart["data"]}
    assert np.allclose(bars["MNIST's training digits"], mnist.numpy() * 100)
    assert np.abs(bars["the better UNet"] - expected["better"][1].numpy()).max() <= 1.05
    assert np.abs(bars["the spec's UNet"] - expected["spec"][1].numpy()).max() <= 1.05
    assert [c for img in at.get("image") for c in img.captions if "the first 40 samples" in c] == [
        f"The spec's UNet: the first 40 samples · {shown['spec'] / 100:.0%} of all confident",
        f"The better UNet: the first 40 samples · {shown['better'] / 100:.0%} of all confident"]


def test_the_flow_page_trains_and_shows_the_spec_s_unet_or_the_better_one(better_shipped, digits):  # noqa: F811
    at = open_page(TIME_FLOW)
    assert at.radio(key="time_flow_unet").value == "flow_time"  # the spec's run is the default view
    assert "D = 4, 2 short epochs of 2 batches." in texts(at.caption)
    assert not [c for c in texts(at.caption).split("\n") if c.startswith("Beyond the spec:")]
    assert not [f for f in at.latex if "Attn" in f.value]
    at = run(at.radio(key="time_flow_unet").set_value("flow_time_beyond_spec"))
    assert "Beyond the spec: self-attention at 7×7 and t in every block (spec: t in two blocks only" in texts(at.caption)
    # the better UNet's blocks as formulas, with its own 32 Fourier features (ω from 1 to 1000)
    blocks = [f.value for f in at.latex if any(w in f.value for w in ("Res", "Attn", "omega_k"))]
    assert len(blocks) == 4 and "_{k=1}^{32}" in blocks[0] and r"\omega_k = 1000^{(k-1)/31}" in blocks[0]
    assert ("D = 4, self-attention at 7×7 and t in every block, t as 32 Fourier features, 2 short epochs of 2 "
            "batches.") in texts(at.caption)
    if not torch.cuda.is_available():  # the estimate is of the recipe's own full run: 80 epochs of 8 batches of 128
        assert "No GPU here: this recipe's full training (80 epochs, 640 steps) takes about" in texts(at.warning)
    stored = model_store.load_run(better_shipped / "flow_time_beyond_spec.safetensors")
    assert stored.config.time_features == 32 and stored.config.architecture == "attention" and stored.ema is not None
    assert np.allclose(values(figures(at)[0]["data"][0]["y"]), stored.losses)  # its loss curve, not the spec run's
    assert at.header[-1].value == "5 · The spec's UNet against a better one"

    assert at.slider(key="time_flow_eta_flow_time_beyond_spec").value == 1.0  # the recipe's own sampler in section 4
    assert f"40 samples · 50 ancestral steps at η = 1, seed {DEFAULT_SEED}" in [c for img in at.get("image")
                                                                             for c in img.captions]

    # section 5 judges both models with the better recipe's sampler by default, or both with the spec's
    sampler = at.radio(key="time_flow_judge_sampler")
    assert sampler.options == ["50 ancestral steps at η = 1 (the better recipe's)",
                                                   "50 Euler steps (the spec's)"]

    def ancestral(run_, n, seed):  # the path's ancestral sampler written out, 50 steps, on the weights' average
        return reference_ancestral(run_.ema, n, 50, seed) * 2 - 1

    check_the_comparison(at, better_shipped, "flow_time", digits, ancestral)
    assert "both sampled with 50 ancestral steps at η = 1 (the better recipe's)." in texts(at.markdown)
    at = run(at.radio(key="time_flow_judge_sampler").set_value(sampler.options[1]))

    def euler(run_, n, seed):  # the spec's Euler loop written out, 50 steps
        return reference_euler(run_.ema, n, 50, seed) * 2 - 1

    check_the_comparison(at, better_shipped, "flow_time", digits, euler)
    assert "both sampled with 50 Euler steps (the spec's)." in texts(at.markdown)


def test_the_ddpm_page_trains_and_shows_the_spec_s_unet_or_the_better_one(better_shipped, digits):  # noqa: F811
    at = open_page(TIME_DDPM)
    assert at.radio(key="time_ddpm_unet").value == "time"
    at = run(at.radio(key="time_ddpm_unet").set_value("time_beyond_spec"))
    assert "t as 32 Fourier features" in texts(at.caption)
    stored = model_store.load_run(better_shipped / "time_beyond_spec.safetensors")
    assert np.allclose(values(figures(at)[1]["data"][0]["y"]), stored.losses)  # after the schedule: its loss curve

    def draw(run_, n, seed):  # the library's sampler (tested against the spec's update elsewhere) at the page's stride
        return unconditional_grid(MnistDDPM(run_.ema, run_.config), n, DDPM_STRIDE, seed)

    check_the_comparison(at, better_shipped, "time", digits, draw)


def test_without_a_better_run_the_page_says_how_to_get_one(app, tiny_flow_shipped, monkeypatch):  # noqa: F811
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tiny_flow_shipped)
    at = open_page(TIME_FLOW)
    assert "data/models/flow_time_beyond_spec.safetensors is missing" in texts(at.info)
    assert "scripts/train_models.py --model flow_time_beyond_spec" in texts(at.info)
    assert not [b for b in at.button if b.key == "time_flow_judge"]


def test_home_lists_a_shipped_better_run_under_its_spec_run(better_shipped):
    at = open_page("Home.py")  # the DDPM edition: B1, B2 and, once shipped, B2's better UNet, then B3
    table = at.table[0].value
    assert list(table.index) == ["B1 single-step denoiser", "B2 time-conditioned DDPM",
                                 "B2 time-conditioned DDPM · beyond the spec", "B3 class-conditioned DDPM"]
    assert table["training"].iloc[2].startswith("D = 4, 2 epochs (2 batches each) = 4 steps of 16")
    assert [c.value for c in at.code][1:3] == ["pytest tiny time", "pytest time_beyond_spec"]
