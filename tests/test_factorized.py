"""Factorized diffusion (issue #16 item 2): the decompositions of ``lib.techniques.filters`` sum to the identity, are linear, and
the N-band predictor reproduces the 2-band hybrid exactly."""

from __future__ import annotations

import pytest
import torch

from lib.media.costs import CountingNoiseModel
from lib.ddpm.sampling import sample_with
from lib.techniques.hybrids import factorized_predictor, hybrid_predictor
from lib.techniques.filters import (Decomposition, colour_grey, frequency_response, highpass, lowpass, motion_residual,
                         three_band, two_band)
from lib.ddpm.sampling import guided_predictions
from tests.test_edits import DEN, STRIDE, gen

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def decompositions(channels: int) -> dict[str, Decomposition]:
    """Every decomposition, at parameters sized for 28 and 64 px alike (colour vs grey only on 3 channels)."""
    found = {"two": two_band(15, 1.5), "three": three_band(15, 1.0, 2.5), "motion rows": motion_residual(7),
             "motion diagonal": motion_residual(9, diagonal=True)}
    if channels == 3:
        found["colour"] = colour_grey()
    return found


SHAPES = [(2, 1, 28, 28), (2, 3, 64, 64)]
CASES = [(shape, name) for shape in SHAPES for name in decompositions(shape[1])]


@pytest.mark.parametrize("shape, name", CASES)
def test_parts_sum_to_the_image_and_keep_its_shape(shape, name):
    x = torch.randn(shape, generator=gen(1))
    parts = decompositions(shape[1])[name].parts(x)
    assert all(p.shape == x.shape for p in parts)
    assert torch.allclose(sum(parts), x, atol=1e-5)


@pytest.mark.parametrize("shape, name", CASES)
def test_each_part_is_linear(shape, name):
    x, y = torch.randn(shape, generator=gen(2)), torch.randn(shape, generator=gen(3))
    for f in decompositions(shape[1])[name].filters:
        assert torch.allclose(f(2.5 * x - 0.5 * y), 2.5 * f(x) - 0.5 * f(y), atol=1e-4)


def test_grey_part_is_constant_across_channels_and_colour_has_zero_channel_mean():
    grey, colour = colour_grey().parts(torch.randn(2, 3, 64, 64, generator=gen(4)))
    assert torch.equal(grey, grey[:, :1].expand_as(grey))
    assert colour.mean(1).abs().max() < 1e-6


def test_motion_blur_smears_along_its_direction_only():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 14, 14] = 1.0
    rows, diagonal = motion_residual(5).filters[0](x)[0, 0], motion_residual(5, diagonal=True).filters[0](x)[0, 0]
    assert torch.allclose(rows[14, 12:17], torch.full((5,), 0.2)) and rows.sum() == pytest.approx(1.0)
    assert torch.allclose(diagonal.diagonal()[12:17], torch.full((5,), 0.2)) and diagonal.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("shape, name", CASES)
def test_frequency_responses_sum_to_one_at_every_frequency(shape, name):
    freqs, responses = frequency_response(decompositions(shape[1])[name], shape[-1], shape[1])
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(0.5, abs=1 / shape[-1])
    assert torch.allclose(sum(responses), torch.ones_like(freqs), atol=1e-9)


@pytest.mark.parametrize("shape, taps, sigma", [((2, 1, 28, 28), 33, 2.0), ((1, 3, 64, 64), 15, 3.0),
                                                ((2, 3, 128, 96), 65, 4.0), ((3, 28, 28), 15, 0.875)])
def test_the_separable_blur_is_torchvision_s_gaussian_blur(shape, taps, sigma):
    """Two 1-D passes of g equal one pass of the 2-D kernel g gᵀ with reflect padding (torchvision's reference), the
    kernel clipped to the image (33 taps on 28 px are 33; 65 on 96 px stay 65) — on any number of leading dims."""
    from torchvision.transforms.functional import gaussian_blur

    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    k = min(taps, 2 * (min(shape[-2:]) - 1) - 1)
    torch.testing.assert_close(lowpass(x, taps, sigma), gaussian_blur(x, [k, k], [sigma, sigma]), atol=2e-6, rtol=0)


def test_measured_gaussian_response_follows_the_closed_form():
    """The low band of a wide-kernel Gaussian: exp(−2π²σ²f²), up to the kernel's truncation and the ring average."""
    freqs, (low, high) = frequency_response(two_band(33, 2.0), 64, 1)
    assert torch.allclose(low, torch.exp(-2 * torch.pi ** 2 * 4.0 * freqs ** 2), atol=0.02)
    assert low[0] == pytest.approx(1.0) and high[0] == pytest.approx(0.0, abs=1e-9)


def test_three_bands_split_low_middle_high():
    freqs, (low, mid, high) = frequency_response(three_band(27, 1.0, 2.5), 64, 1)
    assert low.argmax() == 0 and high.argmax() == len(freqs) - 1 and 0 < mid.argmax() < len(freqs) - 1


def test_two_band_factorization_is_the_old_hybrid_tensor():
    """The N = 2 case of ``factorized_predictor`` gives bit for bit what the 2-band hybrid predictor computed before
    the generalisation: lowpass(ε_1) + highpass(ε_2) of one batched CFG call, sampled with the same seed."""
    low, high = DEN.encode_prompt("0"), DEN.encode_prompt("5")

    def old_hybrid(x, t):
        (e1, v1), (e2, _) = guided_predictions(DEN, [x, x], [low, high], DEN.null_condition(), t, 7.0)
        return lowpass(e1, 15, 1.5) + highpass(e2, 15, 1.5), v1

    new = sample_with(DEN, hybrid_predictor(DEN, low, high, 7.0, 15, 1.5), num_samples=2, stride=STRIDE,
                      generator=gen(6))
    old = sample_with(DEN, old_hybrid, num_samples=2, stride=STRIDE, generator=gen(6))
    assert torch.equal(new, old)


def test_three_prompts_run_in_one_call_per_step():
    counting = CountingNoiseModel(DEN)
    conds = [DEN.encode_prompt(d) for d in "047"]
    x = sample_with(counting, factorized_predictor(counting, conds, three_band(15, 1.0, 2.5), 5.0), num_samples=2,
                    stride=STRIDE, generator=gen(7))
    assert x.shape == (2, 1, 28, 28) and torch.isfinite(x).all()
    steps = len(DEN.timesteps(STRIDE)) - 1
    assert (counting.cost.calls, counting.cost.rows) == (steps, steps * 2 * 3 * 2)  # samples × bands × 2 for CFG
