"""PixNerd-XXL at real size with random weights: seconds per CFG Euler step at 512 × 512 and peak memory, fp32 and
bf16, against lib.backends.pixnerd.memory's plan.

The denoiser (lib.backends.pixnerd.config.XXL, 1.17 B parameters) is built with random weights directly in each dtype on
``--device`` — the time per step does not depend on the weights' values, so no download is needed — and wrapped in
``lib.backends.pixnerd.velocity.PixNerdVelocity`` as the loaded model is. Prompt embeddings are deterministic (1, 128, 2048)
stand-ins for Qwen3-1.7B's. One step is the course's CFG Euler update
    x ← x + h·(v_c + w·(v_c − v_u)),   h = 0.02, w = 7,
with v_c and v_u from ONE velocity call on 2 rows ([x | x], [cond | ∅]); lib.flow owns the app's sampler, so the
update itself is written out here (it is two tensor operations; the call is the cost).

Peak memory, against the plan (``lib.backends.pixnerd.memory.sizes``):
  cuda  ``torch.cuda.max_memory_allocated`` over the steps (weights included) vs weights + one step's work
  cpu   the growth of the peak resident set (VmHWM, reset after building) over the steps vs one step's work

Not a statement about GPU speed when run on the CPU. Needs ≈ 6 GB of free RAM (fp32) on the CPU.

Run:  python bench/pixnerd_real_size.py [--device cuda] [--quick] [--dtypes fp32,bf16]
"""

from __future__ import annotations

import gc
import time

from common import median, parser, setup, timed

import torch  # noqa: E402
from deepfloyd_real_size_cpu import peak_rss, reset_peak_rss  # noqa: E402

from lib.backends.if_memory import GIB, gib  # noqa: E402
from lib.backends.pixnerd.config import IMAGE_SIZE, XXL  # noqa: E402
from lib.backends.pixnerd.memory import CFG_ROWS, ELEMENT_BYTES, sizes  # noqa: E402
from lib.backends.pixnerd.model import build_pixnerd  # noqa: E402
from lib.backends.pixnerd.velocity import PixNerdVelocity  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
STEP, SCALE = 0.02, 7.0


def stand_in_embeddings(prompts: list[str]) -> torch.Tensor:
    """(B, 128, 2048) embeddings, the same for every run (the values do not change the cost)."""
    g = torch.Generator().manual_seed(180)
    return torch.randn(len(prompts), XXL.txt_max_length, XXL.txt_embed_dim, generator=g)


def cfg_euler_step(model: PixNerdVelocity, x: torch.Tensor, t: float, cond: torch.Tensor,
                   null: torch.Tensor) -> torch.Tensor:
    v_c, v_u = model.velocity(torch.cat([x, x]), t, torch.cat([cond, null])).chunk(2)
    return x + STEP * (v_c + SCALE * (v_c - v_u))


def measure(precision: str, device: torch.device, repeats: int, warmup: int) -> None:
    torch.manual_seed(0)
    start = time.perf_counter()
    net = build_pixnerd(XXL, device=device, dtype=DTYPES[precision])
    built_s = time.perf_counter() - start
    model = PixNerdVelocity(net, stand_in_embeddings, name="random-weight PixNerd-XXL")
    cond, null = model.encode_prompt("a high quality photo"), model.null_condition()
    x = torch.randn(1, *model.image_shape, generator=torch.Generator().manual_seed(180)).to(device)
    plan = sizes(precision)
    print(f"PixNerd-XXL: {sum(p.numel() for p in net.parameters()) / 1e9:.3f} B parameters, {precision}, built in "
          f"{built_s:.0f} s; plan: weights {gib(plan.denoiser)} + one step {gib(plan.work)}", flush=True)
    for _ in range(warmup):
        cfg_euler_step(model, x, 0.5, cond, null)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        gc.collect()
        reset_peak_rss()  # the high-water mark restarts at the current resident set: the built model
        rss = peak_rss()
    out = None

    def step():
        nonlocal out
        out = cfg_euler_step(model, x, 0.5, cond, null)

    secs = median(timed(step, device, repeats))
    assert out.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE) and out.dtype == torch.float32 and torch.isfinite(out).all()
    if device.type == "cuda":
        peak, planned, what = torch.cuda.max_memory_allocated(device), plan.denoiser + plan.work, "allocated"
    else:
        peak, planned, what = peak_rss() - rss, plan.work, "RSS growth over the built model"
    verdict = "within the plan" if peak <= planned else "OVER THE PLAN"
    print(f"RESULT PixNerd-XXL real size [{device.type}, {precision}] CFG Euler step at {IMAGE_SIZE}² ({CFG_ROWS} rows "
          f"per call): {secs:.2f} s/step (median of {repeats}) | peak {what} {peak / GIB:.2f} GiB | plan "
          f"{planned / GIB:.2f} GiB | {verdict}", flush=True)
    del model, net
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16 (default both)")
    args = p.parse_args()
    device = setup(args)
    repeats, warmup = (1, 0) if args.quick else (3, 1)
    for precision in args.dtypes.split(","):
        assert precision in ELEMENT_BYTES, precision
        measure(precision, device, repeats, warmup)


if __name__ == "__main__":
    main()
