"""DeepFloyd IF's real configurations: the stage-I variants and their repositories, the stage-I UNet and scheduler,
the T5-v1.1-XXL text encoder — what the memory plan (lib.backends.if_memory) counts and the real-size benchmarks build.

Only the configurations are here, never weights: building one on PyTorch's meta device costs nothing, and with
random weights it runs the real code at the real width (bench/deepfloyd_real_size_cpu.py, bench/deepfloyd_loop.py).
"""

from __future__ import annotations

T5_DIM = 4096  # hidden size of T5-v1.1-XXL: IF's prompt embeddings are (77, 4096)
# The stage-I variants, largest first, and their hub repositories; IF-II-L is the 64 → 256 px stage II.
IF_VARIANTS = {"IF-I-XL": "DeepFloyd/IF-I-XL-v1.0", "IF-I-L": "DeepFloyd/IF-I-L-v1.0", "IF-I-M": "DeepFloyd/IF-I-M-v1.0"}
STAGE2 = "DeepFloyd/IF-II-L-v1.0"
T5_REPO = IF_VARIANTS["IF-I-XL"]  # holds text_encoder/ (T5-v1.1-XXL) and tokenizer/ for every IF-I variant


def if_stage1_unet_config(base: int) -> dict:
    """IF-I-XL (base 704) / IF-I-L (base 320): widths base·(1, 2, 3, 4), 3 layers per block, 64-dim heads, T5 text
    projection 4096 → top width, attention-pooled text embedding (64 heads), scale-shift GELU resnets, 3 in / 6 out
    (ε̂ and the variance interpolation v)."""
    widths = [base, 2 * base, 3 * base, 4 * base]
    return dict(
        sample_size=64, in_channels=3, out_channels=6, layers_per_block=3, block_out_channels=widths,
        down_block_types=["ResnetDownsampleBlock2D"] + ["SimpleCrossAttnDownBlock2D"] * 3,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=["SimpleCrossAttnUpBlock2D"] * 3 + ["ResnetUpsampleBlock2D"],
        cross_attention_dim=widths[-1], encoder_hid_dim=T5_DIM, encoder_hid_dim_type="text_proj",
        attention_head_dim=64, addition_embed_type="text", addition_embed_type_num_heads=64,
        cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu",
    )


STAGE1_CONFIGS = {"IF-I-XL": if_stage1_unet_config(704), "IF-I-L": if_stage1_unet_config(320)}
# google/t5-v1_1-xxl, the encoder IF ships in text_encoder/
T5_XXL_CONFIG = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
                     feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)
# Parameter counts published on the model cards, for the models whose configuration is not built in here.
PUBLISHED_PARAMS = {"IF-I-M": 400_000_000, "IF-II-L": 1_200_000_000}


def if_stage1_scheduler():
    """A ``DDPMScheduler`` configured like IF-I-XL's scheduler_config.json: T = 1000, squaredcos_cap_v2 (cosine) betas,
    learned-range variance, ε prediction, dynamic thresholding at the 0.95 quantile clamped to 1.5."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=0.0001, beta_end=0.02,
        variance_type="learned_range", prediction_type="epsilon", thresholding=True, dynamic_thresholding_ratio=0.95,
        sample_max_value=1.5, clip_sample=True, clip_sample_range=1.0,
    )
