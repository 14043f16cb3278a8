"""The flow edition's part-A techniques (spec flow_edition.md §2), held to closed forms: the classical baseline (§1.2),
the velocity diagnostics (§1.4), the sharpness that §1.5 reports beside MSE, editing (§3.1), anagrams with the 180°
rotation (§3.3), hybrids with the scaled low-pass (§3.4) and the flow form of inpainting."""

from __future__ import annotations

import pytest
import torch

from lib.flow import cfg_predictor, euler, interpolate
from lib.flow.denoising import (COURSE_SIGMAS, amplitude_restored, best_blur, blur_kernel, sharpness,
                                symmetric_limit, velocity_diagnostics)
from lib.techniques.anagrams import anagram_velocity
from lib.techniques.filters import highpass, lowpass, two_band
from lib.techniques.hybrids import factorized_velocity, lowpass_scaled_to
from lib.techniques.inpainting import flow_inpaint, known_pixels_after_step, mask_problem
from lib.techniques.sdedit import flow_edit
from lib.techniques.views import VIEWS
from tests.test_flow import F64, AffineVelocity, gauss


class TowardsImage:
    """The exact velocity field of the straight paths that all end at one image x₁: v(x_t, t) = (x₁ − x_t)/(1 − t)."""

    name = "towards x1"
    value_range = (0.0, 1.0)
    device = torch.device("cpu")
    dtype = F64

    def __init__(self, x1):
        self.x1, self.image_shape = x1, tuple(x1.shape[1:])

    def velocity(self, x, t, cond):
        return (self.x1 - x) / (1 - t)

    def encode_prompt(self, prompt):
        return torch.ones(1, 1, dtype=F64)

    def null_condition(self):
        return torch.zeros(1, 1, dtype=F64)


def test_dividing_by_t_restores_the_images_amplitude():
    x1, eps = gauss(2, 1, 8, 8, seed=1), gauss(2, 1, 8, 8, seed=2)
    for t in (0.25, 0.5, 0.75):
        torch.testing.assert_close(amplitude_restored(interpolate(x1, eps, t), t), x1 + (1 - t) / t * eps)
    with pytest.raises(ValueError):
        amplitude_restored(eps, 0.0)


def test_the_blur_sweep_keeps_the_sigma_of_least_mse():
    assert [blur_kernel(s) for s in COURSE_SIGMAS] == [7, 13, 25, 49, 97]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32, dtype=F64), torch.linspace(-1, 1, 32, dtype=F64), indexing="ij")
    x1 = torch.exp(-4 * (xx**2 + yy**2)).view(1, 1, 32, 32)  # smooth: blurring its noise costs it little
    eps = gauss(1, 1, 32, 32, seed=3)
    sweep = best_blur(interpolate(x1, eps, 0.5), 0.5, x1, sigmas=(0.5, 1, 2))
    restored = amplitude_restored(interpolate(x1, eps, 0.5), 0.5)
    expected = [torch.mean((lowpass(restored, blur_kernel(s), s) - x1) ** 2).item() for s in (0.5, 1, 2)]
    assert sweep.errors == pytest.approx(expected)
    assert sweep.best_sigma == (0.5, 1, 2)[expected.index(min(expected))] and sweep.best_sigma > 0.5
    assert min(sweep.errors) < torch.mean((restored - x1) ** 2).item() / 4  # the blur removes most of the noise


def test_velocity_diagnostics_of_the_true_velocity_and_of_a_constant_error():
    x1, eps, t = gauss(2, 3, 6, 6, seed=4), gauss(2, 3, 6, 6, seed=5), 0.25
    x_t = interpolate(x1, eps, t)
    exact = velocity_diagnostics(x1, eps, t, x1 - eps)
    torch.testing.assert_close(exact.true_update, x1 - x_t)  # (1 − t)·v_gt is what is left to travel
    torch.testing.assert_close(exact.predicted_update, exact.true_update)
    assert exact.error_map.shape == (2, 6, 6) and exact.error_map.abs().max() < 1e-12
    off = torch.tensor([0.2, -0.4, 0.4], dtype=F64).view(1, 3, 1, 1)  # per channel: RMS over RGB = 0.2·sqrt(3)
    shifted = velocity_diagnostics(x1, eps, t, x1 - eps + off)
    torch.testing.assert_close(shifted.error_map, torch.full((2, 6, 6), 0.75 * 0.2 * 3**0.5, dtype=F64))
    assert symmetric_limit(torch.tensor([-3.0, 1.0]), torch.tensor([2.0])) == 3.0


def test_sharpness_of_a_checkerboard_a_constant_and_a_blur():
    board = (torch.arange(10).view(-1, 1) + torch.arange(10)).remainder(2).to(F64) * 2 - 1  # ±1
    # every interior pixel's four neighbours have the opposite sign: Laplacian = −4x − 4x = ∓8, squared 64
    assert sharpness(board.view(1, 1, 10, 10)).item() == pytest.approx(64.0)
    assert sharpness(torch.full((1, 3, 5, 5), 0.7, dtype=F64)).item() == 0.0
    x = gauss(1, 1, 16, 16, seed=6)
    assert sharpness(lowpass(x, 7, 1.0)) < sharpness(x) / 4


def test_editing_reaches_the_image_that_the_field_leads_to_from_every_start():
    x1, image, eps = gauss(1, 1, 4, 4, seed=7), gauss(1, 1, 4, 4, seed=8), gauss(1, 1, 4, 4, seed=9)
    starts = (0.02, 0.04, 0.06, 0.10, 0.14, 0.25, 0.50)  # the course's seven (flow_edition.md §2 3.1)
    edits = flow_edit(TowardsImage(x1), image, eps, cond=torch.ones(1, 1, dtype=F64), scale=1.0, t_starts=starts, h=0.02)
    assert edits.shape == (7, 1, 4, 4)
    torch.testing.assert_close(edits, x1.expand(7, -1, -1, -1))  # Euler is exact on a straight path
    # a field that does not depend on x, v = t (AffineVelocity under the condition Σc = −1, γ = 1: the conditional
    # call alone): from t_s = 0.5 the endpoint is the start plus Σ_k h·t_k over the 25 steps
    affine = AffineVelocity()
    v_is_t = cfg_predictor(affine, -torch.ones(1, 1, dtype=F64), affine.null_condition(), 1.0)
    out = euler(interpolate(image, eps, 0.5), 0.5, 0.02, v_is_t)
    times = [0.5 + 0.02 * k for k in range(25)]
    torch.testing.assert_close(out, interpolate(image, eps, 0.5) + 0.02 * sum(times))


def test_anagram_velocity_is_the_mean_of_the_upright_and_the_rotated_estimates():
    model, x = AffineVelocity(), gauss(1, 1, 2, 2, seed=10)
    c1, c2 = model.encode_prompt("1"), model.encode_prompt("2")
    rotate = VIEWS["rotate 180°"]
    torch.testing.assert_close(rotate.apply(x), torch.flip(x, (-2, -1)))  # the course's flip: a 180° rotation
    v = anagram_velocity(model, [c1, c2], [VIEWS["identity"], rotate], [0.5, 0.5], 5.0)(x, 0.3)
    v1 = cfg_predictor(model, c1, model.null_condition(), 5.0)(x, 0.3)
    v2 = torch.flip(cfg_predictor(model, c2, model.null_condition(), 5.0)(torch.flip(x, (-2, -1)), 0.3), (-2, -1))
    torch.testing.assert_close(v, (v1 + v2) / 2)


def test_hybrid_velocity_takes_the_low_band_of_one_prompt_and_the_high_band_of_the_other():
    assert lowpass_scaled_to(512) == (265, 16.0) and lowpass_scaled_to(64) == (33, 2.0)
    assert lowpass_scaled_to(28) == (15, 0.875)
    model, x = AffineVelocity(), gauss(1, 1, 8, 8, seed=11)
    c1, c2 = model.encode_prompt("1"), model.encode_prompt("3")
    kernel, sigma = lowpass_scaled_to(8)
    v = factorized_velocity(model, [c1, c2], two_band(kernel, sigma), 7.0)(x, 0.6)
    v1 = cfg_predictor(model, c1, model.null_condition(), 7.0)(x, 0.6)
    v2 = cfg_predictor(model, c2, model.null_condition(), 7.0)(x, 0.6)
    torch.testing.assert_close(v, lowpass(v1, kernel, sigma) + highpass(v2, kernel, sigma))


def test_flow_inpainting_keeps_the_known_pixels_on_the_runs_own_path():
    original, eps, x = gauss(1, 1, 4, 4, seed=12), gauss(1, 1, 4, 4, seed=13), gauss(1, 1, 4, 4, seed=14)
    mask = torch.zeros(1, 1, 4, 4, dtype=F64)
    mask[..., :2, :] = 1  # regenerate the top half
    hook = known_pixels_after_step(original, mask, eps)
    mid = hook(x, 0.4)
    torch.testing.assert_close(mid[..., :2, :], x[..., :2, :])
    torch.testing.assert_close(mid[..., 2:, :], (0.6 * eps + 0.4 * original)[..., 2:, :])
    torch.testing.assert_close(hook(x, 1.0)[..., 2:, :], original[..., 2:, :])  # exact at the end


def test_flow_inpainting_keeps_the_original_outside_the_mask_and_follows_the_field_inside():
    """With the exact field towards another image x₁, Euler is exact on the straight path (x₁ − x_t = (1 − t)(x₁ − ε)):
    the hole ends at x₁, and the kept pixels are put back to x_orig itself at t = 1, bit for bit."""
    original, eps, target = gauss(2, 1, 4, 4, seed=15), gauss(2, 1, 4, 4, seed=16), gauss(1, 1, 4, 4, seed=17)
    model = TowardsImage(target)
    mask = torch.zeros(1, 1, 4, 4, dtype=F64)
    mask[..., :, 1:3] = 1  # regenerate the middle columns
    result = flow_inpaint(model, original, mask, eps, cond=model.encode_prompt("x"), scale=5.0, h=0.02)
    assert torch.equal(result[..., :, [0, 3]], original[..., :, [0, 3]])
    torch.testing.assert_close(result[..., :, 1:3], target.expand(2, -1, -1, -1)[..., :, 1:3])


def test_a_mask_must_regenerate_something_and_keep_something():
    mask = torch.zeros(1, 1, 4, 4)
    assert "nothing to regenerate" in mask_problem(mask)
    assert "nothing of it is kept" in mask_problem(mask + 1)
    mask[..., 0, 0] = 1
    assert mask_problem(mask) == "" and mask_problem(0.5 * torch.ones(1, 1, 4, 4)) == ""  # a soft mask keeps half
