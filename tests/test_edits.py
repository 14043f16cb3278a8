"""Part A's edits on a small deterministic denoiser: a randomly initialised class-conditioned UNet (D = 8) in eval
mode behind ``MnistDDPM`` — the edits are generic, so their algebra can be checked on any denoiser."""

from __future__ import annotations

import pytest
import torch

from lib.media.costs import CountingNoiseModel
from lib.ddpm.sampling import sample_with
from lib.techniques.anagrams import anagram_predictor
from lib.techniques.hybrids import hybrid_predictor
from lib.techniques.inpainting import inpaint
from lib.techniques.sdedit import sdedit
from lib.techniques.filters import detail_as_ink, highpass, lowpass
from lib.media.images import psnr
from lib.backends.mnist_model import MnistDDPM
from lib.ddpm.sampling import cfg_predictor, guided_predictions, sample
from lib.train.training import TrainConfig
from lib.train.unets import build_model
from lib.techniques.views import VIEWS

STRIDE = 50  # 7 timesteps: 299, 249, …, 49, −1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_noise_model(seed: int = 0) -> MnistDDPM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("class", 8)
    return MnistDDPM(model, TrainConfig.spec("class", hidden=8), "cpu")


DEN = make_noise_model()


def ring(n: int = 1) -> torch.Tensor:
    """A digit-like test image in [−1, 1]: a bright ring on black."""
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    r = ((yy - 13.5) ** 2 + (xx - 13.5) ** 2).sqrt()
    img = torch.where((r > 6) & (r < 10), 1.0, -1.0)
    return img.expand(n, 1, 28, 28).clone()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_inpainting_keeps_the_unmasked_region_exactly_and_renoises_it_at_the_current_step():
    image = ring()
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., 4:14, 4:24] = 1.0  # new content in the top half
    seen = {}

    def on_step(i, t_prev, x, x0):
        seen[t_prev] = x.clone()

    out = inpaint(DEN, image, mask, cond=DEN.encode_prompt("3"), scale=5.0, stride=STRIDE, generator=gen(1),
                  on_step=on_step)
    keep = mask == 0
    assert torch.equal(out[keep.expand_as(out)], image[keep.expand_as(image)])
    assert (out - image)[mask.bool().expand_as(out)].abs().mean() > 0.1  # the hole was really regenerated
    # mid-way, the kept pixels are forward(x_orig, t') with fresh N(0, 1) noise, i.e. at the generated part's noise level
    t_mid = DEN.timesteps(STRIDE)[3]
    abar = DEN.schedule.abar(t_mid)
    z = ((seen[t_mid] - abar**0.5 * image) / (1 - abar) ** 0.5)[keep.expand_as(image)]
    assert abs(z.mean().item()) < 0.15 and 0.85 < z.std().item() < 1.15


def test_anagram_with_identical_prompts_and_identity_views_equals_plain_cfg():
    c = DEN.encode_prompt("7")
    ident = VIEWS["identity"]
    a = sample_with(DEN, anagram_predictor(DEN, [c, c], [ident, ident], [0.5, 0.5], 5.0), num_samples=2,
                    stride=STRIDE, generator=gen(3))
    b = sample(DEN, c, scale=5.0, stride=STRIDE, num_samples=2, generator=gen(3))
    assert torch.allclose(a, b, atol=1e-5)


def test_anagram_prediction_is_the_weighted_sum_of_unviewed_cfg_estimates():
    c1, c2 = DEN.encode_prompt("1"), DEN.encode_prompt("8")
    flip = VIEWS["flip upside down"]
    x = torch.randn(2, 1, 28, 28, generator=gen(4))
    eps, var = anagram_predictor(DEN, [c1, c2], [VIEWS["identity"], flip], [0.3, 0.7], 5.0)(x, 150)
    e1, _ = cfg_predictor(DEN, c1, DEN.null_condition(), 5.0)(x, 150)
    e2, _ = cfg_predictor(DEN, c2, DEN.null_condition(), 5.0)(flip.apply(x), 150)
    assert var is None
    assert torch.allclose(eps, 0.3 * e1 + 0.7 * flip.inverse(e2), atol=1e-5)


def test_hybrid_with_identical_prompts_equals_plain_cfg():
    c = DEN.encode_prompt("5")
    a = sample_with(DEN, hybrid_predictor(DEN, c, c, 5.0), num_samples=2, stride=STRIDE, generator=gen(5))
    b = sample(DEN, c, scale=5.0, stride=STRIDE, num_samples=2, generator=gen(5))
    assert torch.allclose(a, b, atol=1e-5)


def test_guided_predictions_batches_everything_into_one_call_and_matches_separate_calls():
    counting = CountingNoiseModel(DEN)
    x1, x2 = torch.randn(3, 1, 28, 28, generator=gen(6)), torch.randn(3, 1, 28, 28, generator=gen(7))
    c1, c2, u = DEN.encode_prompt("2"), DEN.encode_prompt("9"), DEN.null_condition()
    both = guided_predictions(counting, [x1, x2], [c1, c2], u, 120, 4.0)
    assert (counting.cost.calls, counting.cost.rows) == (1, 12)  # ONE call: 2 inputs × 3 images × {cond, uncond}
    one = guided_predictions(DEN, [x1], [c1], u, 120, 4.0)[0][0]
    two = guided_predictions(DEN, [x2], [c2], u, 120, 4.0)[0][0]
    assert torch.allclose(both[0][0], one, atol=1e-5) and torch.allclose(both[1][0], two, atol=1e-5)
    # and it is CFG: ε_u + γ (ε_c − ε_u) from the raw model outputs
    eps_c, _ = DEN.predict(x1, 120, c1.expand(3, -1))
    eps_u, _ = DEN.predict(x1, 120, u.expand(3, -1))
    assert torch.allclose(one, eps_u + 4.0 * (eps_c - eps_u), atol=1e-5)
    counting = CountingNoiseModel(DEN)
    guided_predictions(counting, [x1, x2], [c1, c2], u, 120, 1.0)  # γ = 1: the conditional pass alone
    assert (counting.cost.calls, counting.cost.rows) == (1, 6)


def test_sdedit_stays_closer_to_the_input_the_later_it_starts():
    image, c = ring(2), DEN.encode_prompt("0")
    last = len(DEN.timesteps(STRIDE)) - 2
    scores = {}
    for i_start in (0, 3, last):
        vals = [psnr(sdedit(DEN, image, cond=c, scale=5.0, i_start=i_start, stride=STRIDE, generator=gen(s)), image)
                for s in range(3)]
        scores[i_start] = sum(vals) / len(vals)
    assert scores[0] < scores[3] < scores[last]
    assert scores[last] > scores[0] + 15.0  # one step from t = 49 barely changes it; from t = 299 it is redrawn


def test_same_seed_same_output_different_seed_different_output():
    image, c = ring(), DEN.encode_prompt("4")
    run = lambda s: sdedit(DEN, image, cond=c, scale=5.0, i_start=3, stride=STRIDE, generator=gen(s))  # noqa: E731
    assert torch.equal(run(11), run(11))
    assert not torch.allclose(run(11), run(12))
    mask = torch.ones(1, 1, 28, 28)
    a = inpaint(DEN, image, mask, cond=c, scale=5.0, stride=STRIDE, generator=gen(13))
    b = inpaint(DEN, image, mask, cond=c, scale=5.0, stride=STRIDE, generator=gen(13))
    assert torch.equal(a, b)


def test_lowpass_plus_highpass_is_the_identity_and_lowpass_blurs():
    x = torch.randn(2, 3, 64, 64, generator=gen(14))
    assert torch.allclose(lowpass(x) + highpass(x), x, atol=1e-6)
    checker = (torch.arange(28)[:, None] + torch.arange(28)[None]) % 2 * 2.0 - 1.0
    checker = checker.expand(1, 1, 28, 28)
    # a ±1 checkerboard is pure high frequency: σ = 2 blurs it to ≈ 0 and the high-pass keeps it
    assert lowpass(checker).abs().max() < 0.05
    assert torch.allclose(highpass(checker), checker, atol=0.05)
    assert torch.allclose(lowpass(torch.full((1, 1, 28, 28), 0.3)), torch.full((1, 1, 28, 28), 0.3), atol=1e-6)


def test_detail_as_ink_draws_the_strokes_white_on_black():
    """clamp(2·h / max h − 1, −1, 1): each image's strongest detail is white, only the stroke is inked (the dark halo
    beside it, h < 0, is black), a flat image (h = 0) is all black, and the image's contrast does not matter."""
    ink = detail_as_ink(ring(2) * torch.tensor([1.0, 0.5]).view(2, 1, 1, 1), 15, 1.5)
    assert ink.amax(dim=(1, 2, 3)).tolist() == [1.0, 1.0] and torch.allclose(ink[0], ink[1], atol=1e-5)
    assert torch.all((ink[0] > -1) <= (ring()[0] > 0))  # ink only on the ring's stroke; centre and outside black
    flat = torch.full((1, 1, 28, 28), 0.3)
    assert torch.allclose(detail_as_ink(flat), torch.full_like(flat, -1.0), atol=1e-3)


def test_inpainting_with_one_sample_per_jump_is_the_plain_repaint_loop():
    """jump_n_sample = 1 (any jump_length) draws the same noise in the same order as the plain loop: the same tensor."""
    from lib.techniques.inpainting import repaint_update
    from lib.ddpm.sampling import denoise, randn

    image, mask = ring(2), torch.zeros(1, 1, 28, 28)
    mask[..., 14:, :] = 1.0
    c, ts = DEN.encode_prompt("5"), DEN.timesteps(STRIDE)
    g = gen(21)
    x = randn(image.shape, g, like=image)
    plain = denoise(x, ts, cfg_predictor(DEN, c, DEN.null_condition(), 5.0), DEN.schedule, g,
                    variance_type=DEN.variance_type, after_step=repaint_update(image, mask, DEN.schedule, g, ts[-1]))
    for jump_length in (1, 3):
        out = inpaint(DEN, image, mask, cond=c, scale=5.0, stride=STRIDE, generator=gen(21), jump_length=jump_length)
        assert torch.equal(out, plain)


def test_inpainting_with_resampling_calls_the_model_as_the_schedule_says_and_keeps_the_outside():
    from lib.techniques.repaint import call_timesteps, model_calls, resampling_path

    image, mask = ring(), torch.zeros(1, 1, 28, 28)
    mask[..., :14, :] = 1.0
    seen, counting = [], CountingNoiseModel(DEN)
    out = inpaint(counting, image, mask, cond=DEN.encode_prompt("3"), scale=5.0, stride=STRIDE, generator=gen(4),
                  jump_length=2, jump_n_sample=3, on_step=lambda i, t, x, x0: seen.append(t))
    n = len(DEN.timesteps(STRIDE)) - 1
    assert counting.cost.calls == len(seen) == model_calls(n, 2, 3) > n
    ts = DEN.timesteps(STRIDE)
    assert [t for t in call_timesteps(ts, resampling_path(n, 2, 3))] == [ts[ts.index(t) - 1] for t in seen]
    keep = (mask == 0).expand_as(out)
    assert torch.equal(out[keep], image[keep])
    a = inpaint(DEN, image, mask, cond=DEN.encode_prompt("3"), scale=5.0, stride=STRIDE, generator=gen(4),
                jump_length=2, jump_n_sample=3)
    assert torch.equal(a, out) and not torch.equal(a, inpaint(DEN, image, mask, cond=DEN.encode_prompt("3"), scale=5.0,
                                                             stride=STRIDE, generator=gen(4)))
