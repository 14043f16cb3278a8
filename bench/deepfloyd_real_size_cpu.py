"""DeepFloyd IF at real size on the CPU, random weights: proves shapes, dtypes and the batched calls at the real width.

The IF-I-XL UNet (4.30 B parameters, ``lib.backends.if_memory.STAGE1_CONFIGS``) is built with random weights in bf16 (≈ 8.0 GiB
of RAM) and wrapped in ``lib.backends.deepfloyd.IFNoiseModel`` exactly as the loader wraps the hub's UNet. Two strided steps
(stride 30 from t = 990) of the project's own loop run for each of
  cfg       classifier-free guidance, γ = 7: one UNet call on [x | x] with [cond | ∅]        (2 rows per call)
  anagram   two views (identity, upside down), two prompts, CFG: one call                   (4 rows per call)
  hybrid    lowpass(ε₁) + highpass(ε₂), CFG: one call                                        (4 rows per call)
and then the T5-v1.1-XXL encoder (4.76 B parameters, ``lib.backends.if_memory.T5_XXL_CONFIG``) in bf16 embeds a batch of
prompts, as the app does on a machine whose GPU cannot hold T5 (``lib.backends.if_memory.plan_memory``).
Prints seconds per step / per batch and the peak resident memory of each phase (VmHWM, reset between phases).

Not a statement about GPU speed: these are CPU figures. Needs ≈ 10 GB of free RAM.

Run:  python bench/deepfloyd_real_size_cpu.py [--variant IF-I-L] [--skip-t5]
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from common import built, parser, setup

import torch  # noqa: E402

from lib.backends.deepfloyd import IFNoiseModel  # noqa: E402
from lib.ddpm.sampling import sample_with  # noqa: E402
from lib.techniques.anagrams import anagram_predictor  # noqa: E402
from lib.techniques.hybrids import hybrid_predictor  # noqa: E402
from lib.backends.if_configs import STAGE1_CONFIGS, T5_DIM, T5_XXL_CONFIG, if_stage1_scheduler  # noqa: E402
from lib.backends.if_memory import GIB, gib  # noqa: E402
from lib.ddpm.sampling import cfg_predictor  # noqa: E402
from lib.ddpm.schedules import strided_timesteps  # noqa: E402
from lib.techniques.views import VIEWS  # noqa: E402
from tests.tiny_if import fake_t5_embeddings  # noqa: E402

STRIDE, SCALE, STEPS = 30, 7.0, 2


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak resident set size (VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def build_unet(variant: str):
    from diffusers import UNet2DConditionModel

    unet = built(lambda: UNet2DConditionModel(**STAGE1_CONFIGS[variant]), torch.bfloat16)
    return IFNoiseModel(unet, if_stage1_scheduler(), fake_t5_embeddings, name=f"random-weight {variant}")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--variant", choices=sorted(STAGE1_CONFIGS), default="IF-I-XL")
    p.add_argument("--skip-t5", action="store_true", help="only the UNet phases")
    args = p.parse_args()
    setup(args)

    reset_peak_rss()
    start = time.perf_counter()
    den = build_unet(args.variant)
    n = sum(q.numel() for q in den.unet.parameters())
    print(f"{args.variant}: {n / 1e9:.3f} B parameters, {den.unet_dtype}, built in {time.perf_counter() - start:.0f} s, "
          f"peak RSS {gib(peak_rss())}", flush=True)
    den.timesteps = lambda stride: strided_timesteps(den.schedule.num_timesteps, stride)[:STEPS + 1]  # 990, 960, 930
    c1, c2 = den.encode_prompt("an oil painting of an old man"), den.encode_prompt("an oil painting of people around a campfire")
    uncond = den.null_condition()
    views = [VIEWS["identity"], VIEWS["flip upside down"]]
    phases = {
        "cfg": (cfg_predictor(den, c1, uncond, SCALE), 2),
        "anagram": (anagram_predictor(den, [c1, c2], views, [0.5, 0.5], SCALE), 4),
        "hybrid": (hybrid_predictor(den, c1, c2, SCALE), 4),
    }
    for name, (predict, rows) in phases.items():
        reset_peak_rss()
        start = time.perf_counter()
        out = sample_with(den, predict, num_samples=1, stride=STRIDE, generator=torch.Generator().manual_seed(0))
        secs = (time.perf_counter() - start) / STEPS
        assert out.shape == (1, 3, 64, 64) and out.dtype == torch.float32 and torch.isfinite(out).all(), name
        print(f"RESULT IF real size CPU [{args.variant}, bf16] {name}: {secs:.1f} s/step ({rows} UNet rows per call, "
              f"{STEPS} steps t = 990 → 930), output {tuple(out.shape)} {out.dtype}, peak RSS {gib(peak_rss())}",
              flush=True)
    del den, phases, predict
    gc.collect()
    if args.skip_t5:
        return

    from transformers import T5Config, T5EncoderModel

    reset_peak_rss()
    start = time.perf_counter()
    t5 = built(lambda: T5EncoderModel(T5Config(**T5_XXL_CONFIG)), torch.bfloat16)
    print(f"T5-v1.1-XXL encoder: {sum(q.numel() for q in t5.parameters()) / 1e9:.2f} B parameters, bf16, built in "
          f"{time.perf_counter() - start:.0f} s, peak RSS {gib(peak_rss())}", flush=True)
    for batch in (1, 4):
        ids = torch.randint(0, T5_XXL_CONFIG["vocab_size"], (batch, 77), generator=torch.Generator().manual_seed(0))
        reset_peak_rss()
        start = time.perf_counter()
        with torch.no_grad():
            out = t5(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        secs = time.perf_counter() - start
        assert out.shape == (batch, 77, T5_DIM) and torch.isfinite(out).all()
        print(f"RESULT IF real size CPU [T5-XXL, bf16] embed {batch} prompt(s): {secs:.1f} s per batch, output "
              f"{tuple(out.shape)}, peak RSS {gib(peak_rss())}", flush=True)
    print(f"(1 GiB = {GIB} bytes)")


if __name__ == "__main__":
    main()
