"""The part-A pages' lessons hold on the shipped MNIST model at the pages' defaults (judged by numbers, not by eye)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from lib.train import model_store
from lib.ddpm.sampling import sample_with
from lib.techniques.anagrams import anagram_predictor
from lib.techniques.hybrids import hybrid_predictor
from lib.techniques.filters import detail_as_ink, lowpass
from lib.backends.mnist_model import MnistDDPM, parse_digit_prompt
from lib.techniques.views import VIEWS
from tests.digit_classifier import read_digits
from ui.backend import DEFAULT_SEED, FAMILY_DEFAULTS
from ui.sections import anagrams, hybrids

PAGES = Path(__file__).resolve().parent.parent / "app_pages"

pytestmark = [
    pytest.mark.skipif(not model_store.shipped_path("class").exists(), reason="shipped class model missing"),
    pytest.mark.usefixtures("one_torch_thread"),
]

RELATION = {"above": lambda a, b: a > b, "below": lambda a, b: a < b, "equal to": lambda a, b: a == b}


def stated(text: str, unit: str) -> tuple[float, str, float]:
    """(one-step, relation, iterative) from the page's "one-step 18.2 dB, above iterative 16.4 dB"."""
    found = re.search(rf"one-step ([\d.]+) ?{unit}, (above|below|equal to) iterative ([\d.]+) ?{unit}", text)
    assert found, f"no one-step/iterative {unit} comparison in {text!r}"
    return float(found[1]), found[2], float(found[3])


def test_a2_states_psnr_and_sharpness_and_why_they_disagree(mnist_root):
    """Issue #15 item 10: at its defaults A2 showed one-step 17.9 dB beating iterative 17.6 dB with no word why.
    The page must state both PSNRs and both edge energies (lib.media.images.gradient_energy relative to the original's), the
    stated relations must match the numbers shown, and on the shipped model the iterative result must be the sharper
    one (measured at i_start 5–20 on six test digits: iterative 0.79–1.09 of the original's edge energy, one-step
    0.38–0.95, while one-step had the higher PSNR in 23 of 24 cases)."""
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(PAGES / "iterative.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    captions = {c.split(" · ")[0]: c for img in at.image for c in img.captions}
    text = " ".join(m.value for m in at.markdown)
    p_one, p_rel, p_iter = stated(text, "dB")
    s_one, s_rel, s_iter = stated(text, "%")
    assert f"{p_one:.1f} dB" in captions["one-step x̂₀"] and f"{p_iter:.1f} dB" in captions["iterative"]
    assert RELATION[p_rel](p_one, p_iter) and RELATION[s_rel](s_one, s_iter)
    assert s_iter > s_one, "the iterative result is the sharper one"
    assert "squared error" in text, "the page says why the blurry one-step estimate can win on PSNR"


def test_a4_mnist_defaults_show_that_a_small_i_start_is_a_big_edit(digit_classifier, mnist_test):
    """Issue #27 item 3: A4 opened on the picked digit's own label, and all six columns redrew the 3. At the page's
    defaults (``ui.sections.sdedit.DEFAULTS``: the default test digit, the measured text edit, the family's γ and
    stride, the default seed) the smallest i_start's edit reads as the prompt's digit and the largest as the
    original, and every column as one of the two."""
    from lib.media.presets import mnist_test_digit
    from lib.techniques.sdedit import sdedit_strip
    from ui.part_a import DEFAULT_DIGIT
    from ui.sections.sdedit import COURSE, DEFAULTS

    run = model_store.load_run(model_store.shipped_path("class"))
    den, d, prompt = MnistDDPM(run.model, run.config), FAMILY_DEFAULTS["mnist"], DEFAULTS["mnist"].text_edit
    edits = sdedit_strip(den, mnist_test_digit(mnist_test, DEFAULT_DIGIT, 0), cond=den.encode_prompt(prompt),
                         scale=d.guidance, i_starts=COURSE.i_starts, stride=d.stride, seed=DEFAULT_SEED)
    read = read_digits(digit_classifier, edits).tolist()
    assert read[0] == int(prompt) != DEFAULT_DIGIT and read[-1] == DEFAULT_DIGIT, read
    assert set(read) == {int(prompt), DEFAULT_DIGIT}, read


def test_a0_mnist_says_what_its_few_step_digits_look_like(digit_classifier):
    """Issue 27 item 10: A0 said "few steps give rough, unfinished images" over finished digits. On the MNIST model
    the judge reads every default prompt as asked even at the largest stride offered (2 steps), so the page must say
    that, naming the fewest steps it shows, and must not promise rough digits."""
    from ui.sections.stock import DEFAULTS, mnist_grid

    run = model_store.load_run(model_store.shipped_path("class"))
    den, d = MnistDDPM(run.model, run.config), DEFAULTS["mnist"]
    prompts, fewest = tuple(d.prompts.splitlines()), max(d.options)
    images, _ = mnist_grid("judged", prompts, (fewest,), DEFAULT_SEED, den)
    asked = [parse_digit_prompt(p) for p in prompts]
    assert read_digits(digit_classifier, images[0]).tolist() == asked
    st.cache_data.clear()
    at = AppTest.from_file(str(PAGES / "stock.py"), default_timeout=120)
    at.session_state["stock_columns_mnist"] = [fewest]
    at.run()
    text = " ".join(m.value for m in at.markdown)
    assert f"even stride {fewest} ({len(den.timesteps(fewest)) - 1} steps) already gives finished digits" in text
    assert "rough, unfinished images" not in text and "are rough and unfinished" not in text


def hybrid_readings(classifier, far: int, near: int, kernel: int, sigma: float, scale: float, stride: int,
                    n: int = 32) -> tuple[float, float, float]:
    """Sample ``n`` hybrids (one batch, the pages' default seed) and return the fractions the classifier reads as
    ``far`` from afar (the low-pass), as ``near`` up close (the high-pass as ink on black), and as both at once."""
    run = model_store.load_run(model_store.shipped_path("class"))
    den = MnistDDPM(run.model, run.config)
    low, high = (F.one_hot(torch.tensor([d]), 10).float() for d in (far, near))
    gen = torch.Generator().manual_seed(DEFAULT_SEED)
    x = sample_with(den, hybrid_predictor(den, low, high, scale, kernel_size=kernel, sigma=sigma), num_samples=n,
                    stride=stride, generator=gen)
    from_afar = read_digits(classifier, lowpass(x, kernel, sigma)) == far
    up_close = read_digits(classifier, detail_as_ink(x, kernel, sigma)) == near
    return from_afar.float().mean().item(), up_close.float().mean().item(), (from_afar & up_close).float().mean().item()


@pytest.mark.slow
def test_a7_mnist_defaults_make_real_hybrids(digit_classifier):
    """Issue #15 item 4: at the old defaults (prompts 0/1, k = 33, σ = 2 sized for 64-px IF images, γ = 5) A7 drew
    shapeless blobs on MNIST: of these 32 samples 25 % read as 0 from afar, 16 % as 1 up close, 0 % as both. At the
    MNIST defaults (0/5, k = 15, σ = 1.5, γ = 7) 97 %, 97 % and 94 %. Chance is 10 % for each reading and ≈ 1 % for
    both; asking that at least half read right both ways leaves room for other platforms' numerics while no blob
    passes. How the defaults were chosen: bench/RESULTS.md, "A7 hybrid defaults on MNIST"."""
    d = hybrids.DEFAULTS["mnist"]
    far, near = (int(p) for p in d.prompts[hybrids.TWO])
    from_afar, up_close, both = hybrid_readings(digit_classifier, far, near, d.kernel, d.sigma, d.guidance,
                                                FAMILY_DEFAULTS["mnist"].stride)
    assert both >= 0.5, f"from afar {from_afar:.0%}, up close {up_close:.0%}, both {both:.0%}"


@pytest.mark.slow
def test_a7_mnist_hybrids_read_as_a_person_sees_them(digit_classifier):
    """Issue 27 item 5: read as the page shows them — the far view genuinely small (``seen_small``, 2σ times further
    away), the near view the whole image — the MNIST defaults' hybrids read as prompt 1 from far and prompt 2 up close
    (measured at σ 2 on these 16: 14 and 12, 10 both). At the old σ 1.5 most read as prompt 1 up close too (6 of 16
    as the 5): no hybrid to a person, which the page now says (``MNIST_NO_HYBRID``) below σ 1.75."""
    d = hybrids.DEFAULTS["mnist"]
    far, near = (int(p) for p in d.prompts[hybrids.TWO])
    run = model_store.load_run(model_store.shipped_path("class"))
    den = MnistDDPM(run.model, run.config)

    def readings(sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        r = hybrids.Request(choice=hybrids.TWO, params=(d.kernel, sigma), prompts=d.prompts[hybrids.TWO],
                            scale=d.guidance, num_samples=16, stride=FAMILY_DEFAULTS["mnist"].stride, seed=DEFAULT_SEED)
        x, _ = hybrids.factorized("judged", r, den)
        (_, small), (_, large) = hybrids.viewing_pictures(x, (sigma,), 170)
        seen = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)  # the judge reads 28 px
        return read_digits(digit_classifier, seen) == far, read_digits(digit_classifier, large) == near

    from_far, up_close = readings(d.sigma)
    assert from_far.sum() >= 10 and up_close.sum() >= 10 and (from_far & up_close).sum() >= 8, (from_far, up_close)
    assert d.sigma >= hybrids.MNIST_NO_HYBRID_BELOW > 1.5
    _, up_close_old = readings(1.5)
    assert up_close_old.sum() < 8, up_close_old


@pytest.mark.parametrize("which", ["example", "second"])
def test_a6_mnist_anagrams_read_as_both_digits(digit_classifier, which):
    """The MNIST anagrams A6 and the whole-assignment report show (6 / 9 rotated 180°, 2 / 5 mirrored) read as the
    first digit as generated and as the second in the view: 32 of 32 both ways at the pages' defaults (γ 5, stride 10,
    seed 180, w = ½); asked: at least 3 in 4 (a pair like 1 / 7 mirrored reads both ways 6 % of the time)."""
    d, example = FAMILY_DEFAULTS["mnist"], getattr(anagrams.DEFAULTS["mnist"], which)
    first, second, view = example.prompt1, example.prompt2, example.view
    run = model_store.load_run(model_store.shipped_path("class"))
    den = MnistDDPM(run.model, run.config)
    predict = anagram_predictor(den, [den.encode_prompt(first), den.encode_prompt(second)],
                                [VIEWS["identity"], VIEWS[view]], [0.5, 0.5], d.guidance)
    x = sample_with(den, predict, num_samples=32, stride=d.stride, generator=torch.Generator().manual_seed(DEFAULT_SEED))
    both = (read_digits(digit_classifier, x) == int(first)) & (read_digits(digit_classifier, VIEWS[view].apply(x))
                                                               == int(second))
    assert both.float().mean() >= 0.75, f"{both.float().mean():.0%} read as {first} and, {view}, as {second}"


def test_a6_the_views_said_to_fail_on_mnist_find_no_anagram(digit_classifier):
    """Issue 27 item 2: A6 names the views that find no anagram on the MNIST model and compares the failure views with
    another; that list must be measured, not guessed. At the pages' defaults, with the example's prompts, none of 16
    samples reads both ways under such a view (chance ≈ 1 %; asked: at most 1), while the example's own view reads
    both ways in at least 3 of 4 (``test_a6_mnist_anagrams_read_as_both_digits``)."""
    d, defaults = FAMILY_DEFAULTS["mnist"], anagrams.DEFAULTS["mnist"]
    first, second = defaults.example.prompt1, defaults.example.prompt2
    run = model_store.load_run(model_store.shipped_path("class"))
    den = MnistDDPM(run.model, run.config)
    assert defaults.views_that_fail
    for name in defaults.views_that_fail:
        predict = anagram_predictor(den, [den.encode_prompt(first), den.encode_prompt(second)],
                                    [VIEWS["identity"], VIEWS[name]], [0.5, 0.5], d.guidance)
        x = sample_with(den, predict, num_samples=16, stride=d.stride,
                        generator=torch.Generator().manual_seed(DEFAULT_SEED))
        both = (read_digits(digit_classifier, x) == int(first)) & (read_digits(digit_classifier, VIEWS[name].apply(x))
                                                                   == int(second))
        assert both.sum() <= 1, f"{name}: {int(both.sum())} of 16 read as {first} and, viewed, as {second}"
