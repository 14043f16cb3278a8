"""Visual-anagram views (spec 1.8): every view is a signed permutation matrix (so Gaussian noise stays standard
Gaussian), the failure views are not, the combining rule's recorder shows the ε the sampler used, and the morph GIF
starts at the image and ends at its view."""

from __future__ import annotations

import math

import pytest
import torch

from lib.techniques.anagram_gif import anagram_gif, morph_frames
from lib.ddpm.sampling import sample_with
from lib.techniques.anagrams import anagram_predictor
from lib.media.images import to_uint8
from lib.techniques.views import FAILURE_VIEWS, VIEWS, inner_disc, keeps_noise_standard, noise_variance, patches_per_side
from tests.test_edits import DEN, STRIDE, gen

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPES = [(2, c, s, s) for s in (28, 64) for c in (1, 3)]


def matrix(view, shape) -> torch.Tensor:
    """The view's matrix on one C×H×W image: column j is v(e_j)."""
    n = math.prod(shape[1:])
    return view.apply(torch.eye(n).view(n, *shape[1:])).flatten(1).T


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[1]}x{s[2]}")
@pytest.mark.parametrize("name", list(VIEWS))
def test_every_view_is_a_signed_permutation(name, shape):
    view, x = VIEWS[name], torch.randn(shape, generator=gen(1))
    assert torch.equal(view.inverse(view.apply(x)), x)  # exact inverse
    # the same multiset of values (up to the sign of −I): a permutation moves values, never mixes them
    assert torch.equal(view.apply(x).abs().flatten().sort().values, x.abs().flatten().sort().values)
    if name != "identity":
        assert not torch.equal(view.apply(x), x)
    if shape[2] == 28 and shape[1] == 1:  # the whole matrix: one ±1 per row and column, so P Pᵀ = I and Cov(Pz) = I
        p = matrix(view, shape)
        assert torch.equal(p.abs().sum(0), torch.ones(784)) and torch.equal(p.abs().sum(1), torch.ones(784))
        assert torch.equal(p @ p.T, torch.eye(784))
    # applied to Gaussian noise: per-pixel mean 0 and variance 1 over many draws
    z = torch.randn(4000, *shape[1:], generator=gen(2))
    vz = view.apply(z)
    assert vz.mean(0).abs().max() < 6 / math.sqrt(4000) and (vz.var(0) - 1).abs().max() < 6 * math.sqrt(2 / 4000)
    assert keeps_noise_standard(view, shape)


def test_a_predicted_variance_is_mapped_back_in_space_but_never_negated():
    x = torch.rand(2, 3, 16, 16, generator=gen(8))
    assert torch.equal(VIEWS["negate (MNIST)"].unview_variance(x), x)
    assert torch.equal(VIEWS["rotate 90°"].unview_variance(x), VIEWS["rotate 90°"].inverse(x))


def test_views_that_need_a_size_adapt_to_28_and_64_px():
    assert (28 // patches_per_side(28), 64 // patches_per_side(64)) == (7, 16)
    jigsaw = VIEWS["jigsaw (patch permutation)"]
    for size in (28, 64):
        p = size // patches_per_side(size)
        x = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
        y = jigsaw.apply(x)
        tiles = {tuple(x[0, 0, r:r + p, c:c + p].flatten().tolist()) for r in range(0, size, p) for c in range(0, size, p)}
        assert {tuple(y[0, 0, r:r + p, c:c + p].flatten().tolist()) for r in range(0, size, p)
                for c in range(0, size, p)} == tiles  # whole patches moved
        disc = inner_disc(size, size)
        turned = VIEWS["inner circle rotation"].apply(x)[0, 0]
        assert torch.equal(turned[~disc], x[0, 0][~disc]) and not torch.equal(turned[disc], x[0, 0][disc])


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[1]}x{s[2]}")
@pytest.mark.parametrize("name", list(FAILURE_VIEWS))
def test_failure_views_are_invertible_but_change_the_noise_variance(name, shape):
    view, x = FAILURE_VIEWS[name], torch.randn(shape, generator=gen(3))
    assert torch.allclose(view.inverse(view.apply(x)), x, atol=1e-4)
    n = math.prod(shape)
    tolerance = 6 * math.sqrt(2 / n)  # 6 standard errors of a sample variance of n standard normals
    assert abs(noise_variance(view, shape) - 1) > tolerance
    assert not keeps_noise_standard(view, shape) and "variance" in view.breaks


def test_the_recorder_shows_the_combining_rule_of_the_eps_the_sampler_used():
    c1, c2 = DEN.encode_prompt("6"), DEN.encode_prompt("9")
    views = [VIEWS["identity"], VIEWS["jigsaw (patch permutation)"]]
    records, used = [], []
    predict = anagram_predictor(DEN, [c1, c2], views, [0.4, 0.6], 5.0, record=records.append)

    def spy(x, t):
        out = predict(x, t)
        used.append((t, x, out[0]))
        return out

    sample_with(DEN, spy, num_samples=2, stride=STRIDE, generator=gen(5))
    assert [r.t for r in records] == [t for t, _, _ in used] == DEN.timesteps(STRIDE)[:-1]
    for rec, (t, x, eps) in zip(records, used):
        assert torch.equal(rec.eps, eps) and torch.equal(rec.x, x)
        assert torch.equal(rec.eps, 0.4 * rec.unviewed[0] + 0.6 * rec.unviewed[1])
        for view, viewed, est, back in zip(views, rec.viewed, rec.estimates, rec.unviewed):
            assert torch.equal(viewed, view.apply(x)) and torch.equal(back, view.inverse(est))


@pytest.mark.parametrize("name", ["rotate 90°", "rotate 180°", "inner circle rotation", "pixel permutation",
                                  "negate (MNIST)", "skew"])
def test_the_morph_starts_at_the_image_and_ends_at_its_view(name):
    view = VIEWS[name]
    for shape in [(2, 1, 28, 28), (1, 3, 64, 64)]:
        x = torch.rand(shape, generator=gen(6)) * 2 - 1
        frames = morph_frames(x, view, 8)
        assert len(frames) == 8
        assert torch.equal(to_uint8(frames[0]), to_uint8(x))
        assert (to_uint8(frames[-1]).int() - to_uint8(view.apply(x)).int()).abs().max() <= 1
        assert not torch.equal(frames[4], x) and not torch.equal(frames[4], view.apply(x))
    assert anagram_gif(x, view, ncols=1, upscale=1, n_frames=4)[:6] == b"GIF89a"
