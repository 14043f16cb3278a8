"""The cached computations behind the pages' results, in one importable module.

Each page calls these with its widgets' values; the whole-assignment report (``ui.whole_assignment``) calls the very
same functions with the pages' default values. Streamlit keys ``st.cache_data`` on the function (its module and name)
and its arguments, so a result computed on a page is a cache hit in the report and the other way round — which a copy
of a function inside another page file could never be.

The cache-key rule of ``ui.common.run_key`` holds throughout: the model goes in an underscore argument (not hashed),
beside a key string that names its weights (``backend_key`` for part A, ``run_key`` for part B).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from lib.anagram_gif import anagram_gif
from lib.costs import counts_cost
from lib.diffusion import forward_noise
from lib.edits import AnagramStep, anagram_predictor, factorized_predictor, inpaint, sample_with, sdedit_strip
from lib.filters import Decomposition, colour_grey, lowpass, motion_residual, three_band, two_band
from lib.images import grid, psnr
from lib.plots import TrajectoryRecorder
from lib.precision import infer
from lib.runs import SNAPSHOT_DIGITS, denoiser_probe
from lib.sampling import cfg_predictor, denoise, noise_to, one_step_denoise, randn, sample
from lib.views import FAILURE_VIEWS, VIEWS
from ui.backend import DEFAULTS

# --- A0 · the stock pipeline ------------------------------------------------------------------------------------------

A0_MNIST_STRIDES = [150, 100, 50, 30, 10, 5, 3, 1]
A0_IF_STEPS = [2, 5, 10, 20, 50]
A0_DEFAULT_COLUMNS = {"mnist": (100, 30, 10), "if": (5, 20, 50)}  # strides (MNIST) or num_inference_steps (IF)


def a0_columns(kind: str, chosen) -> tuple[int, ...]:
    """A0's columns in display order: fewest steps first (IF: ascending step counts; MNIST: descending strides)."""
    return tuple(sorted(chosen, reverse=kind != "if"))


@st.cache_data(show_spinner=False, max_entries=16)
@counts_cost
def mnist_grid(backend_key: str, prompts: tuple[str, ...], strides: tuple[int, ...], seed: int, _den,
               _on_step=None) -> torch.Tensor:
    """(len(strides), len(prompts), C, H, W): for each stride, all prompts in one batch from the same seed."""
    cond = torch.cat([_den.encode_prompt(p) for p in prompts])  # one condition row per image
    out = []
    for stride in strides:
        gen = torch.Generator(device=_den.device).manual_seed(seed)
        out.append(sample(_den, cond, scale=DEFAULTS["mnist"].guidance, stride=stride, num_samples=len(prompts),
                          generator=gen, on_step=_on_step).float().cpu())
    return torch.stack(out)


@st.cache_data(show_spinner=False, max_entries=16)
@counts_cost
def if_grid(backend_key: str, prompts: tuple[str, ...], steps: tuple[int, ...], seed: int, _den,
            _progress=None) -> torch.Tensor:
    """(len(steps), len(prompts), 3, 64, 64) from the stock IFPipeline, re-seeded for every image."""
    out = []
    for n in steps:
        row = []
        for prompt in prompts:  # the stock pipeline takes one prompt (its own CFG batch) per call
            row.append(_den.stock_sample(prompt, steps=n, seed=seed, scale=DEFAULTS["if"].guidance).cpu())
            if _progress is not None:
                _progress.advance(f"{prompt[:30]!r}, {n} steps")
        out.append(torch.cat(row))
    return torch.stack(out)


# --- A1 · the forward process, blur and one step ---------------------------------------------------------------------

def course_timesteps(num_timesteps: int) -> tuple[int, int, int]:
    """The course's t = 250, 500, 750 of T = 1000, as the same fractions of another T."""
    T = num_timesteps
    return T // 4, T // 2, 3 * T // 4


def _noised(image: np.ndarray, ts: tuple[int, ...], seed: int, schedule) -> torch.Tensor:
    """x_t for each t: one ε ~ N(0, I) from ``seed``, shared by all t; (len(ts), C, H, W)."""
    x0 = torch.from_numpy(image).unsqueeze(0)
    eps = randn(x0.shape, torch.Generator().manual_seed(seed), like=x0)
    return torch.cat([forward_noise(x0, t, schedule, eps) for t in ts])


@st.cache_data(show_spinner=False, max_entries=64)
def noisy_and_blurred(backend_key: str, image, ts: tuple[int, ...], kernel: int, sigma: float, seed: int, _den):
    """x_t for each t (one ε ~ N(0, I) from ``seed``, shared by all t) and its Gaussian blur; both
    (len(ts), C, H, W)."""
    noisy = _noised(image, ts, seed, _den.schedule)
    return noisy, lowpass(noisy, kernel, sigma)


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def one_step_row(backend_key: str, image, ts: tuple[int, ...], prompt: str, seed: int, _den) -> torch.Tensor:
    """Spec 1.3: the one-step estimate x̂₀ of each x_t of ``noisy_and_blurred`` (the same ε from ``seed``), one UNet
    call per t, conditioned on ``prompt`` without guidance; (len(ts), C, H, W) in [−1, 1]."""
    noisy = _noised(image, ts, seed, _den.schedule).to(_den.device, _den.dtype)
    cond = _den.encode_prompt(prompt)
    return torch.cat([one_step_denoise(_den, noisy[i:i + 1], t, cond) for i, t in enumerate(ts)]
                     ).clamp(-1, 1).float().cpu()


# --- A2 · one-step vs iterative --------------------------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def compare(backend_key: str, image, prompt: str, i_start: int, stride: int, every: int, kernel: int, sigma: float,
            seed: int, _den, _on_step=None):
    """x_t, its blur, the one-step x̂0, the iterative result, the trajectory frames and the PSNR of x̂0 per step."""
    x0 = torch.from_numpy(image).unsqueeze(0).to(_den.device, _den.dtype)
    ts = _den.timesteps(stride)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    cond = _den.encode_prompt(prompt)
    x_t = noise_to(x0, ts[i_start], _den.schedule, gen)
    one = one_step_denoise(_den, x_t, ts[i_start], cond)
    recorder = TrajectoryRecorder(len(ts) - 1, every, ncols=2, upscale=max(1, 128 // x0.shape[-1]))
    curve = []

    def on_step(i, t_prev, x, x0_hat):
        recorder(i, t_prev, torch.cat([x, x0_hat]), x0_hat)
        curve.append((i + 1, t_prev, psnr(x0_hat.clamp(-1, 1), x0)))
        if _on_step is not None:
            _on_step(i, t_prev, x, x0_hat)

    # the course's iterative_denoise of 1.4: the conditional estimate alone (γ = 1); CFG comes in on page A3
    final = denoise(x_t, ts, cfg_predictor(_den, cond, _den.null_condition(), 1.0), _den.schedule, gen,
                    variance_type=_den.variance_type, i_start=i_start, on_step=on_step)
    images = torch.cat([x0, x_t, lowpass(x_t, kernel, sigma), one, final]).clamp(-1, 1).float().cpu()  # as displayed
    return images, recorder.x_frames, recorder.labels, curve


# --- A3 · sampling and CFG -------------------------------------------------------------------------------------------

A3_DEFAULT_SCALES = (0.0, 1.0, 3.0, 5.0, 7.0)
A3_DEFAULT_SAMPLES = 4


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def guidance_sweep(backend_key: str, prompt: str, scales: tuple[float, ...], num_samples: int, stride: int, seed: int,
                   _den, _on_step=None) -> torch.Tensor:
    """(len(scales), N, C, H, W) samples; the generator is re-seeded per scale so every γ starts from the same x_T."""
    cond = _den.encode_prompt(prompt)
    out = []
    for scale in scales:
        gen = torch.Generator(device=_den.device).manual_seed(seed)
        out.append(sample(_den, cond, scale=scale, stride=stride, num_samples=num_samples, generator=gen,
                          on_step=_on_step).float().cpu())
    return torch.stack(out)


# --- A4 · SDEdit -----------------------------------------------------------------------------------------------------

COURSE_I_STARTS = [1, 3, 5, 7, 10, 20]


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def sdedit_sweep(backend_key: str, image, prompt: str, scale: float, i_starts: tuple[int, ...], stride: int,
                 seed: int, _den, _on_step=None) -> torch.Tensor:
    """One SDEdit per i_start (ascending), each from the same seed, all in one batched run: (len(i_starts), C, H, W)."""
    x = torch.from_numpy(image).unsqueeze(0).to(_den.device, _den.dtype)
    return sdedit_strip(_den, x, cond=_den.encode_prompt(prompt), scale=scale, i_starts=i_starts, stride=stride,
                        seed=seed, on_step=_on_step).float().cpu()


# --- A5 · inpainting -------------------------------------------------------------------------------------------------

A5_DEFAULTS = dict(num_samples=4, jump_length=5, jump_n_sample=1, feather=0)


@st.cache_data(show_spinner=False, max_entries=32)
@counts_cost
def inpaint_samples(backend_key: str, image, mask, prompt: str, scale: float, num_samples: int, stride: int,
                    seed: int, jump_length: int, jump_n_sample: int, _den, _on_step=None) -> torch.Tensor:
    """``num_samples`` inpaintings of the same image and (soft) mask, in one batch: (N, C, H, W)."""
    x = torch.from_numpy(image).unsqueeze(0).to(_den.device, _den.dtype).expand(num_samples, -1, -1, -1)
    m = torch.from_numpy(mask).to(_den.device, _den.dtype)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return inpaint(_den, x, m, cond=_den.encode_prompt(prompt), scale=scale, stride=stride, generator=gen,
                   jump_length=jump_length, jump_n_sample=jump_n_sample, on_step=_on_step).float().cpu()


def masked_view(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The image with the region to regenerate painted over: red on a colour image, mid-grey on a digit."""
    hole = torch.tensor([1.0, -1.0, -1.0] if x.shape[1] == 3 else [0.0]).view(1, -1, 1, 1)
    return x * (1 - mask) + mask * hole


# --- A6 · visual anagrams --------------------------------------------------------------------------------------------

ALL_VIEWS = {**VIEWS, **FAILURE_VIEWS}
SAMPLES_DEFAULT = 4  # the generation pages' "Samples" slider (ui.part_a.samples_stride_seed)
A6_DEFAULT_WEIGHT = 0.5


def first_sample(step: AnagramStep) -> AnagramStep:
    """The step's record for the first image only, on the CPU: what the combining-rule picture shows."""
    def one(x):
        return x[:1].float().cpu()

    return AnagramStep(step.t, one(step.x), [one(v) for v in step.viewed], [one(e) for e in step.estimates],
                       [one(u) for u in step.unviewed], one(step.eps))


@st.cache_data(show_spinner=False, max_entries=16)
@counts_cost
def anagrams(backend_key: str, prompt1: str, prompt2: str, view: str, weight: float, scale: float, num_samples: int,
             stride: int, seed: int, _den, _on_step=None) -> tuple[torch.Tensor, list[AnagramStep]]:
    """(N, C, H, W) anagrams and every step's combining rule (first image); both views and both CFG halves go through
    the model in one batched call per step."""
    conds = [_den.encode_prompt(prompt1), _den.encode_prompt(prompt2)]
    steps = []
    predict = anagram_predictor(_den, conds, [VIEWS["identity"], ALL_VIEWS[view]], [weight, 1.0 - weight], scale,
                                record=lambda step: steps.append(first_sample(step)))
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    result = sample_with(_den, predict, num_samples=num_samples, stride=stride, generator=gen, on_step=_on_step)
    return result.float().cpu(), steps


@st.cache_data(show_spinner=False, max_entries=8)
def morph_gif(backend_key: str, prompt1: str, prompt2: str, view: str, weight: float, scale: float, num_samples: int,
              stride: int, seed: int, _images: torch.Tensor) -> bytes:
    """The GIF turning the anagrams (keyed like ``anagrams``) into their view and back, about 112 px an image."""
    return anagram_gif(_images, VIEWS[view], ncols=num_samples, upscale=max(1, 112 // _images.shape[-1]))


# --- A7 · hybrids (factorized diffusion) -----------------------------------------------------------------------------

TWO, THREE, COLOUR, MOTION = "2-band hybrid", "3-band triple hybrid", "colour vs greyscale", "motion blur vs residual"


def decomposition(choice: str, params: tuple) -> Decomposition:
    """The filters of ``choice`` at the page's parameters: (k, σ), (k, σ1, σ2), (), or (L, diagonal)."""
    build = {TWO: two_band, THREE: three_band, COLOUR: colour_grey, MOTION: motion_residual}[choice]
    return build(*params)


@st.cache_data(show_spinner=False, max_entries=32)  # the step-back slider and the expanders rerun the page
@counts_cost
def factorized(backend_key: str, choice: str, params: tuple, prompts: tuple[str, ...], scale: float,
               num_samples: int, stride: int, seed: int, _den, _on_step=None) -> torch.Tensor:
    """(N, C, H, W) images with ε = Σ_i f_i(ε_i); all prompts (and both CFG halves) in one batched call per step."""
    predict = factorized_predictor(_den, [_den.encode_prompt(p) for p in prompts], decomposition(choice, params),
                                   scale)
    gen = torch.Generator(device=_den.device).manual_seed(seed)
    return sample_with(_den, predict, num_samples=num_samples, stride=stride, generator=gen,
                       on_step=_on_step).float().cpu()


# --- B1 · the single-step denoiser -----------------------------------------------------------------------------------

B1_SIGMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)  # the spec's noise levels
B1_GRID_DIGITS = 4  # digits per column of the noising grid


def denoise_with(run, x: torch.Tensor) -> torch.Tensor:
    """The trained single-step denoiser D(x) of ``run`` (a ``TrainedRun``), on the CPU."""
    return infer(run.model, x.to(next(run.model.parameters()).device)).cpu()


def noising_columns(test_set, seed: int) -> list[np.ndarray]:
    """B1's noising figure: per σ of ``B1_SIGMAS`` one column of the first test digits, noised with the same ε."""
    return [grid(denoiser_probe(test_set, s, seed)[1][:B1_GRID_DIGITS], 1, (0.0, 1.0), upscale=3) for s in B1_SIGMAS]


@st.cache_data(show_spinner="Denoising the σ sweep…")
def ood_sweep(key: str, seed: int, _run, _test_set) -> tuple[list[np.ndarray], list[np.ndarray], list[float],
                                                            np.ndarray]:
    """The trained D (the run ``key`` names) on the same digits noised at every σ: noisy and denoised strips, per-σ MSE
    and one PNG grid."""
    noisy_rows, out_rows, errors, tiles = [], [], [], []
    for s in B1_SIGMAS:
        clean, noisy = denoiser_probe(_test_set, s, seed)
        out = denoise_with(_run, noisy)
        errors.append(float(torch.mean((out - clean) ** 2)))
        noisy_rows.append(grid(noisy, SNAPSHOT_DIGITS, (0.0, 1.0), upscale=2))
        out_rows.append(grid(out, SNAPSHOT_DIGITS, (0.0, 1.0), upscale=2))
        tiles += [noisy, out]
    return noisy_rows, out_rows, errors, grid(torch.cat(tiles), SNAPSHOT_DIGITS, (0.0, 1.0), upscale=2)


# --- B3 · a digit being denoised -------------------------------------------------------------------------------------

@st.cache_data(show_spinner="Sampling…")
def digit_trajectory(key: str, digit: int, num: int, scale: float, stride: int, every: int, seed: int, _den,
                     _on_step=None) -> TrajectoryRecorder:
    """Every ``every``-th frame of ``num`` guided samples of ``digit`` from pure noise, by the class DDPM ``_den``
    (the run ``key`` names): what the B3 page's "Watch a digit being denoised" animates and turns into its GIF."""
    recorder = TrajectoryRecorder(len(_den.timesteps(stride)) - 1, every, ncols=num)

    def on_step(i, t, x, x0):
        recorder(i, t, x, x0)
        if _on_step is not None:
            _on_step(i, t, x, x0)

    generator = torch.Generator(device=_den.device).manual_seed(seed)
    sample(_den, _den.class_condition(digit), scale=scale, stride=stride, num_samples=num, generator=generator,
           on_step=on_step)
    return recorder
