"""DeepFloyd IF's peak GPU memory per part, measured at real size with random weights, against lib.backends.if_memory's plan.

Each part is built straight on the GPU in its serving dtype and run the way the app runs it; the peak is
``torch.cuda.max_memory_allocated`` (PyTorch's allocations; the CUDA context comes on top, which the plan counts as
``CUDA_CONTEXT``):
  stage I    the IF-I-XL UNet (lib.backends.if_configs), fp16: one batched call at 64 px with 2, 4 and 8 rows
             (CFG; anagram / hybrid with CFG; the largest batch a page sends)
  T5         the T5-v1.1-XXL encoder, fp16 with its wo layers in fp32 (as transformers loads it): 4 prompts of 77 tokens
  stage II   an IF-II-L stand-in: IF-II-L's block layout (5 levels, attention at the two lowest resolutions, noise level
             as a class embedding, 6 in / 6 out) at 256 px, widths chosen so it has IF-II-L's published 1.2 B
             parameters — its real configuration is not built in (lib.backends.if_configs); CFG batch of 2 rows
The plan's figure for each is weights + UNET_WORK (T5: + T5_WORK); a measured peak above it means the plan must grow.

Run:  python bench/deepfloyd_memory.py --device cuda      (needs ≈ 25 GB of GPU memory: one part at a time)
"""

from __future__ import annotations

import gc
import sys

from common import built, parser, setup

import torch  # noqa: E402

from lib.backends.if_configs import STAGE1_CONFIGS, T5_DIM, T5_XXL_CONFIG  # noqa: E402
from lib.backends.if_memory import T5_WORK, UNET_WORK, gib, weights  # noqa: E402

STAGE2_STANDIN = dict(
    sample_size=256, in_channels=6, out_channels=6, layers_per_block=[2, 2, 3, 5, 5],
    block_out_channels=[128, 256, 512, 1152, 1152],
    down_block_types=["ResnetDownsampleBlock2D"] * 3 + ["SimpleCrossAttnDownBlock2D"] * 2,
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    up_block_types=["SimpleCrossAttnUpBlock2D"] * 2 + ["ResnetUpsampleBlock2D"] * 3,
    cross_attention_dim=1152, encoder_hid_dim=T5_DIM, encoder_hid_dim_type="text_proj", attention_head_dim=64,
    addition_embed_type="text", addition_embed_type_num_heads=64, cross_attention_norm="group_norm",
    resnet_time_scale_shift="scale_shift", act_fn="gelu", class_embed_type="timestep", time_embedding_dim=1152,
    mid_block_scale_factor=1.4142, resnet_out_scale_factor=1.4142, resnet_skip_time_act=True,
    time_embedding_act_fn="gelu",
)


def peak(fn, device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def row(part: str, measured: int, planned: int) -> None:
    verdict = "within the plan" if measured <= planned else "OVER THE PLAN"
    print(f"RESULT IF GPU memory [{part}]: peak {gib(measured)} | plan {gib(planned)} | {verdict}", flush=True)


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(device="cuda")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("deepfloyd_memory: needs a CUDA GPU; none here. Run it on a GPU machine (bench/gpu_check.sh).")
        sys.exit(0)
    device = setup(args)
    from diffusers import UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    w = weights("IF-I-XL")
    unet = built(lambda: UNet2DConditionModel(**STAGE1_CONFIGS["IF-I-XL"]), torch.float16, device)
    for rows in (2, 4, 8):
        x = torch.randn(rows, 3, 64, 64, device=device, dtype=torch.float16)
        emb = torch.randn(rows, 77, T5_DIM, device=device, dtype=torch.float16)
        row(f"stage I IF-I-XL fp16, {rows} rows at 64 px", peak(lambda: unet(x, 500, encoder_hidden_states=emb), device),
            w.stage1 + UNET_WORK)
    del unet, x, emb
    gc.collect()
    torch.cuda.empty_cache()

    t5 = built(lambda: T5EncoderModel(T5Config(**T5_XXL_CONFIG)), torch.float16, device)
    for name, module in t5.named_modules():
        if name.endswith(".wo"):
            module.float()  # transformers' _keep_in_fp32_modules
    ids = torch.randint(0, T5_XXL_CONFIG["vocab_size"], (4, 77), device=device)
    row("T5-XXL fp16 (wo fp32), 4 prompts", peak(lambda: t5(input_ids=ids), device), w.t5_gpu + T5_WORK)
    del t5
    gc.collect()
    torch.cuda.empty_cache()

    unet2 = built(lambda: UNet2DConditionModel(**STAGE2_STANDIN), torch.float16, device)
    n2 = sum(q.numel() for q in unet2.parameters())
    x = torch.randn(2, 6, 256, 256, device=device, dtype=torch.float16)
    emb = torch.randn(2, 77, T5_DIM, device=device, dtype=torch.float16)
    level = torch.full((2,), 250, device=device)
    row(f"stage II stand-in ({n2 / 1e9:.2f} B parameters) fp16, 2 rows at 256 px",
        peak(lambda: unet2(x, 500, encoder_hidden_states=emb, class_labels=level), device), w.stage2 + UNET_WORK)


if __name__ == "__main__":
    main()
