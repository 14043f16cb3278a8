"""DeepFloyd IF (stage I, 64×64 RGB, T5-XXL text conditioning) behind the ``NoiseModel`` interface of lib.ddpm.sampling.

Everything part A computes — one-step denoising, the strided loop, CFG, SDEdit, inpainting, anagrams, hybrids — runs
through lib.ddpm.sampling / lib.techniques on an ``IFNoiseModel`` exactly as it runs on the MNIST DDPM. This module only adds what
is specific to IF:

* the UNet outputs 6 channels: ε̂ = out[:, :3] and the variance interpolation value v = out[:, 3:] ∈ [−1, 1], with
  log σ² = frac · log β + (1 − frac) · log β̃, frac = (v + 1) / 2 (diffusers' ``learned_range``; lib.ddpm.diffusion);
* the schedule is read from IF's own ``DDPMScheduler`` (squaredcos_cap_v2, T = 1000), so the two never disagree;
* conditions are cached T5 prompt embeddings (lib.backends.prompt_cache), (1, 77, 4096) each; the null condition is "";
* the stock diffusers pipelines (A0's ``IFPipeline``, stage II's ``IFSuperResolutionPipeline``) run on a fresh copy
  of their scheduler for every call: ``set_timesteps`` mutates a scheduler, and one process serves every session.

Loading (hub or local snapshots, the memory plan) is lib.backends.if_loading's job; the requirements and messages lib.backends.if_hub's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from lib.ddpm.diffusion import VarianceType, step_log_variance
from lib.ddpm.sampling import randn
from lib.ddpm.schedules import Schedule, schedule_from_diffusers, strided_timesteps


class IFNoiseModel:
    """A stage-I IF UNet + its scheduler + an embedding function, as a ``NoiseModel``.

    The sampling state stays float32 (``dtype``); ``predict`` casts to the UNet's dtype (fp16 on CUDA) for the one
    forward pass and back, so the DDPM arithmetic of lib.ddpm.diffusion is done in full precision.
    """

    variance_type: VarianceType = "learned_range"
    dtype = torch.float32

    def __init__(self, unet, scheduler, embed: Callable[[list[str]], torch.Tensor], *, name: str, pipeline=None):
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.embed = embed  # prompts -> (N, 77, 4096)
        self.name = name
        self.pipeline = pipeline  # the stock diffusers IFPipeline around the same UNet (page A0), if any
        self.schedule: Schedule = schedule_from_diffusers(scheduler)
        size = unet.config.sample_size
        self.image_shape = (int(unet.config.in_channels), int(size), int(size))
        # read once (the UNet is placed before it is wrapped): ModelMixin.device/.dtype walk every module, 1.3 ms
        # per read on IF-I-XL's 610 modules — a few % of an fp16 H100 step (bench/RESULTS.md §3)
        self.device, self.unet_dtype = unet.device, unet.dtype
        self._null: torch.Tensor | None = None

    @torch.no_grad()
    def predict(self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor):
        """One UNet pass on the whole batch (one step, or one per row); the 6 output channels split into (ε̂, v)."""
        dtype = self.unet_dtype
        step = t.to(self.device) if isinstance(t, torch.Tensor) else int(t)
        out = self.unet(x_t.to(self.device, dtype), step, encoder_hidden_states=cond.to(self.device, dtype),
                        return_dict=False)[0]
        eps, v = out.to(x_t.dtype).split(x_t.shape[1], dim=1)
        return eps, v

    def encode_prompts(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        """(1, 77, 4096) embeddings of several prompts; "" is embedded in the same call the first time (one T5 load)."""
        want = list(prompts) + ([""] if self._null is None else [])
        if not want:
            return []
        embs = self.embed(want).to(self.device)
        if self._null is None:
            self._null = embs[-1:]
            embs = embs[:-1]
        return [e.unsqueeze(0) for e in embs]

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return self.encode_prompts([prompt])[0]

    def null_condition(self) -> torch.Tensor:
        """The embedding of the empty prompt "" (the unconditional half of CFG, as in the course)."""
        if self._null is None:
            self.encode_prompts([])
        return self._null

    def stock_sample(self, prompt: str, *, steps: int, seed: int, scale: float = 7.0,
                     num_samples: int = 1) -> torch.Tensor:
        """A0: the stock pipeline (``pipeline_sample``) with a generator on the UNet's device seeded by ``seed``."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        return pipeline_sample(self, prompt, steps=steps, generator=gen, scale=scale, num_samples=num_samples)

    def timesteps(self, stride: int) -> list[int]:
        """[990, 960, …, 30, 0] for stride 30 (the course's ``strided_timesteps``)."""
        return strided_timesteps(self.schedule.num_timesteps, stride)


def add_variance(scheduler, predicted_variance: torch.Tensor, t: int, image: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The course's ``add_variance``: image + exp(½ log σ²) z, with log σ² of the step t → t' where t' is the
    timestep after t in the scheduler's list (``set_timesteps(timesteps=strided)`` first, like the course).

    The same number as diffusers' ``scheduler._get_variance(t, v)`` (a log variance for learned_range), but computed
    by ``lib.ddpm.diffusion.step_log_variance`` — the formula every loop of the app uses.
    """
    t_prev = int(scheduler.previous_timestep(t))
    log_var = step_log_variance(int(t), t_prev, schedule_from_diffusers(scheduler), "learned_range", predicted_variance)
    if generator is None:
        noise = torch.randn(image.shape, device=image.device, dtype=image.dtype)
    else:
        noise = randn(image.shape, generator, like=image)
    return image + torch.exp(0.5 * log_var).to(image) * noise


# The parts of the hub repos that a call returning tensors (output_type="pt") never uses; the safety checker does not
# even load with the pinned transformers (IFSafetyChecker lacks all_tied_weights_keys).
WITHOUT_EXTRAS = dict(tokenizer=None, text_encoder=None, safety_checker=None, feature_extractor=None,
                      watermarker=None, requires_safety_checker=False)


def stock_pipeline(unet, scheduler):
    """The stock diffusers ``IFPipeline`` around ``unet`` (A0's), without the parts in ``WITHOUT_EXTRAS``; prompts come
    as cached embeddings."""
    from diffusers import IFPipeline

    pipe = IFPipeline(unet=unet, scheduler=scheduler, **WITHOUT_EXTRAS)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def per_call_copy(pipe):
    """``pipe`` with its own fresh scheduler(s), sharing the (read-only) models: safe to run beside other calls.

    A diffusers scheduler is mutable state (``set_timesteps`` stores the step list, ``step`` counts), so two sessions
    calling one shared pipeline at once would step each other's schedules."""
    parts = dict(pipe.components)
    for name, part in parts.items():
        if hasattr(part, "set_timesteps") or name.endswith("scheduler"):
            parts[name] = type(part).from_config(part.config)
    copy = type(pipe)(**parts, requires_safety_checker=False)
    copy.set_progress_bar_config(disable=True)
    return copy


def upscale(stage2_pipe, image64: torch.Tensor, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor,
            generator: torch.Generator, steps: int = 20, *, guidance_scale: float = 4.0,
            noise_level: int = 250) -> torch.Tensor:
    """Stage II: (B, 3, 64, 64) in [−1, 1] → (B, 3, 4·64, 4·64) in [−1, 1], conditioned on the same prompt embeddings
    (one row, or one per image). ``noise_level`` is the noise added to the low-res image first (diffusers' default)."""
    b = image64.shape[0]
    out = per_call_copy(stage2_pipe)(
        image=image64, prompt_embeds=prompt_embeds.expand(b, -1, -1), negative_prompt_embeds=negative_embeds.expand(
            b, -1, -1), num_inference_steps=steps, guidance_scale=guidance_scale, noise_level=noise_level,
        generator=generator, output_type="pt",
    ).images
    return out.float().clamp(-1, 1)


def pipeline_sample(model: IFNoiseModel, prompt: str, *, steps: int, generator: torch.Generator,
                    scale: float = 7.0, num_samples: int = 1) -> torch.Tensor:
    """Part 0: the stock diffusers ``IFPipeline`` (its own timesteps for ``steps`` and its dynamic thresholding) with the
    cached embeddings; (num_samples, 3, 64, 64) in [−1, 1]. Safe to call from several sessions at once."""
    if model.pipeline is None:
        raise ValueError(f"{model.name} has no stock pipeline")
    cond = model.encode_prompt(prompt).expand(num_samples, -1, -1)
    uncond = model.null_condition().expand(num_samples, -1, -1)
    out = per_call_copy(model.pipeline)(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=steps,
                            guidance_scale=scale, generator=generator, output_type="pt").images
    return out.float().clamp(-1, 1)
