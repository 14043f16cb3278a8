"""The IF memory plan (lib.backends.if_memory), computed from the real configurations on the meta device: sizes against closed
forms and the published parameter counts, and the placement on the cards instructors have."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.backends.if_memory import (
    CUDA_CONTEXT, GIB, HOST_RESERVE, UNET_WORK, min_gpu_bytes, plan_memory, requirement, too_small_message, weights,
)

MIB = 2**20
# total_memory as torch reports it (nvidia-smi's MiB)
T4 = 15360 * MIB  # "16 GB", Colab's GPU
A10G = 23028 * MIB  # "24 GB"
RTX4090 = 24564 * MIB  # "24 GB"
A100_80 = 81920 * MIB  # "80 GB" (H100 80GB alike)
COLAB_RAM = int(12.7e9)
ROOT = Path(__file__).resolve().parent.parent


def test_weights_from_the_real_configurations():
    xl, l_ = weights("IF-I-XL"), weights("IF-I-L")
    assert xl.stage1 / 2 == pytest.approx(4.30e9, rel=2e-3)  # IF-I-XL: 4.30 B parameters
    assert l_.stage1 / 2 == pytest.approx(0.935e9, rel=2e-3)  # IF-I-L: 0.94 B
    assert weights("IF-I-M").stage1 == 2 * 400_000_000 and xl.stage2 == 2 * 1_200_000_000  # published counts
    # T5-v1.1-XXL encoder: 4.76 B parameters, of which the 24 feed-forward output projections wo (4096 × 10240 each)
    # stay fp32 on the GPU: (2 · (N − wo) + 4 · wo) bytes
    n, wo = xl.t5_cpu / 2, 24 * 4096 * 10240
    assert n == pytest.approx(4.762e9, rel=1e-3)
    assert xl.t5_gpu == 2 * (n - wo) + 4 * wo
    assert xl.t5_gpu / GIB == pytest.approx(10.75, abs=0.01)


@pytest.mark.parametrize("card, t5_on_gpu", [(T4, False), (A10G, False), (RTX4090, True), (A100_80, True)])
def test_the_plan_fits_16_24_and_80_gb_cards_with_context_and_margin(card, t5_on_gpu):
    plan = plan_memory("IF-I-XL", card, COLAB_RAM if card == T4 else 64 * GIB)
    assert plan.fits and plan.stage2 and plan.t5_on_gpu == t5_on_gpu
    w = plan.weights
    resident = w.stage1 + w.stage2 + (w.t5_gpu if t5_on_gpu else 0)
    assert plan.peak_gpu_bytes == CUDA_CONTEXT + resident + UNET_WORK <= card
    if not t5_on_gpu:  # the T5 that did not fit would have overflowed the card
        assert CUDA_CONTEXT + w.stage1 + w.stage2 + w.t5_gpu + UNET_WORK > card
    text = " ".join(plan.describe())
    assert ("T5 text encoder (10.7 GiB) on the GPU" in text) == t5_on_gpu
    assert f"of {card / GIB:.1f} GiB" in text


def test_t5_on_the_cpu_is_kept_in_ram_only_where_ram_allows():
    kept = plan_memory("IF-I-XL", T4, 32 * GIB)
    assert not kept.t5_on_gpu and kept.keep_t5
    assert kept.peak_host_bytes == HOST_RESERVE + kept.weights.t5_cpu
    colab = plan_memory("IF-I-XL", T4, COLAB_RAM)  # 12.7 GB: T5 in bf16 (8.9 GiB) + the app do not fit together
    assert not colab.keep_t5 and "re-read from disk for each batch" in " ".join(colab.describe())


def test_a_card_too_small_gets_one_message_naming_the_variant_that_fits():
    card = 8 * GIB
    plan = plan_memory("IF-I-XL", card)
    assert not plan.fits
    message = too_small_message("IF-I-XL", "NVIDIA GeForce RTX 3070", card)
    assert message == plan.describe()[0].replace("This GPU", "NVIDIA GeForce RTX 3070")
    assert message.startswith(requirement("IF-I-XL"))
    assert "RTX 3070 has 8.0 GiB: choose IF-I-L in the sidebar, which fits it" in message
    assert plan_memory("IF-I-L", card).fits and min_gpu_bytes("IF-I-L") <= card < min_gpu_bytes("IF-I-XL")
    assert "no IF variant fits it" in too_small_message("IF-I-M", "GT 1030", 2 * GIB)


def test_stage2_may_not_fit_where_stage1_does():
    card = 11 * GIB  # e.g. an RTX 2080 Ti
    plan = plan_memory("IF-I-XL", card)
    assert plan.fits and not plan.stage2 and not plan.t5_on_gpu
    assert plan.peak_gpu_bytes == CUDA_CONTEXT + plan.weights.stage1 + UNET_WORK <= card
    assert plan_memory("IF-I-L", card).stage2


def test_one_stated_requirement_everywhere():
    """The README states the plan's figures; the app's messages all come from ``requirement``."""
    text = requirement("IF-I-XL")
    assert text == ("IF-I-XL needs a CUDA GPU with ≥ 10.2 GiB of memory (12.4 GiB with stage II's 256 px upscaling, "
                    "23.1 GiB to keep the T5 text encoder on the GPU too)")
    readme = (ROOT / "README.md").read_text()
    for variant in ("IF-I-XL", "IF-I-L", "IF-I-M"):
        figures = requirement(variant).split("≥ ")[1].split(" GiB")[0]
        assert f"| {variant} | {figures} GiB" in readme, variant
    for path in ["ui/sidebar.py", "ui/backend.py", "Home.py", "lib/backends/if_hub.py"]:
        source = (ROOT / path).read_text()
        assert "16 GB" not in source and "10 GB" not in source, path
