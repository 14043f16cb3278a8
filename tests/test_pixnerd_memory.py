"""PixNerd's memory plan (lib.backends.pixnerd.memory), computed from the real configurations on the meta device: sizes against
closed forms, and the placement on the cards instructors have."""

from __future__ import annotations

import json

import pytest

import lib.backends.pixnerd.memory as memory
from lib.backends.if_memory import CUDA_CONTEXT, GIB
from lib.backends.pixnerd.memory import (
    CARDS, ENCODER_WORK, WORK_MARGIN, denoiser_params, encoder_params, min_gpu_bytes, plan_memory, requirement, sizes,
    step_activation_bytes,
)
from tests.tiny_pixnerd import golden_file


def test_the_denoisers_size_is_the_released_one():
    assert denoiser_params() == json.loads(golden_file("xxl_keys.json").read_text())["parameters"] == 1_171_518_019


def test_the_encoders_size_in_closed_form():
    """Base Qwen3-1.7B: the token embedding, 28 layers (GQA attention 16 query / 8 key-value heads of 128, q/k RMSNorms,
    a SwiGLU of 6144, two RMSNorms) and the final RMSNorm; no LM head (tied to the embedding)."""
    d, inner, heads, kv, hd, layers, vocab = 2048, 6144, 16, 8, 128, 28, 151936
    attention = d * heads * hd + 2 * d * kv * hd + heads * hd * d + 2 * hd
    layer = attention + 3 * d * inner + 2 * d
    assert encoder_params() == vocab * d + layers * layer + d == 1_720_574_976


@pytest.mark.parametrize("precision, nbytes", [("fp32", 4), ("bf16", 2)])
def test_bytes_are_parameters_times_bytes_per_element(precision, nbytes):
    s = sizes(precision)
    assert (s.denoiser, s.encoder) == (nbytes * 1_171_518_019, nbytes * 1_720_574_976)
    assert s.work == int(WORK_MARGIN * step_activation_bytes(element_bytes=nbytes))


def test_one_cfg_steps_work_peaks_in_the_neural_field_decoder():
    """2 rows × 1,024 patches; per patch θ (4·64²) and A normalised (2·64²), per pixel (256) x, h and silu(h)
    (64 + 128 + 128 numbers); the encoder blocks' peak (17·1536 per token + 24·1024·1152 attention scores per row)
    is half of it. In bf16, RMSNorm's float32 work dominates the pixel's share: x and the cast result in bf16, the
    float32 copy, normalised and weighted x in fp32 (2·64·2 + 3·64·4 bytes)."""
    decoder = 2 * 1024 * (6 * 64**2 + 256 * 5 * 64) * 4
    encoder = (2 * 1024 * 17 * 1536 + 2 * 24 * 1024 * 1152) * 4
    assert step_activation_bytes() == decoder == 872_415_232 and encoder < decoder
    assert step_activation_bytes(element_bytes=2) == 2 * 1024 * (6 * 64**2 * 2 + 256 * (2 * 64 * 2 + 3 * 64 * 4))
    assert step_activation_bytes(element_bytes=2) / 2**30 == 0.59375
    assert step_activation_bytes(rows=4) == 2 * decoder  # an anagram or hybrid with CFG: 4 rows


@pytest.mark.parametrize("card", sorted(CARDS))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_card_of_the_course_holds_both_models(card, precision):
    plan = plan_memory(CARDS[card], precision)
    s = plan.sizes
    assert plan.fits and plan.encoder_on_gpu
    assert plan.peak_gpu_bytes == CUDA_CONTEXT + s.denoiser + s.work + s.encoder + ENCODER_WORK <= CARDS[card]
    text = " ".join(plan.describe())
    assert "prompt encoder (" in text and "on the GPU too" in text and f"of {CARDS[card] / GIB:.1f} GiB" in text


def test_a_12_gb_card_keeps_the_encoder_on_the_cpu_in_fp32():
    card = 12 * GIB
    fp32, bf16 = plan_memory(card, "fp32"), plan_memory(card, "bf16")
    assert fp32.fits and not fp32.encoder_on_gpu and bf16.encoder_on_gpu
    assert min_gpu_bytes("fp32") <= card < min_gpu_bytes("fp32", encoder=True)
    assert fp32.peak_gpu_bytes == CUDA_CONTEXT + fp32.sizes.denoiser + fp32.sizes.work
    assert "Qwen3-1.7B prompt encoder (6.4 GiB) on the CPU" in " ".join(fp32.describe())


def test_a_card_too_small_says_what_is_needed():
    plan = plan_memory(4 * GIB, "fp32")
    assert not plan.fits and plan.describe() == [f"{requirement('fp32')}; this GPU has 4.0 GiB"]
    assert plan_memory(4 * GIB, "bf16").fits


def test_one_stated_requirement_and_the_docstring_agrees():
    assert requirement("fp32") == ("PixNerd-XXL in fp32 needs a CUDA GPU with ≥ 6.2 GiB of memory (12.9 GiB to keep "
                                   "the Qwen3-1.7B prompt encoder on the GPU too)")
    assert requirement("bf16") == ("PixNerd-XXL in bf16 needs a CUDA GPU with ≥ 3.7 GiB of memory (7.2 GiB to keep the "
                                   "Qwen3-1.7B prompt encoder on the GPU too)")
    for precision in ("fp32", "bf16"):
        alone, both = requirement(precision).split("≥ ")[1].split(" GiB")[0], requirement(precision).split("(")[1]
        assert f"{precision}: alone ≥ {alone} GiB, with the encoder ≥ {both.split(' GiB')[0]} GiB" in memory.__doc__


def test_loading_on_a_missing_or_unsupported_device_says_so_before_any_download(tmp_path):
    """This CPU-only machine has no CUDA GPU: asked for one, load_pixnerd stops with the requirement before it looks
    for the checkpoint (the snapshot folder here is empty, so reaching it would raise another message)."""
    import pytest
    import torch

    from lib.backends.pixnerd.hub import CheckpointSource, PixNerdUnavailable, load_pixnerd
    from lib.backends.pixnerd.memory import device_problem

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the no-GPU message cannot be shown here")
    assert device_problem("cuda", torch.bfloat16) == f"{requirement('bf16')}; this machine has none"
    assert device_problem("cpu") is None
    assert device_problem("cpu", torch.float16) == "PixNerd runs in float32 or bfloat16, not torch.float16"
    with pytest.raises(PixNerdUnavailable, match="needs a CUDA GPU") as err:
        load_pixnerd(CheckpointSource(folder=tmp_path), "cuda")
    assert str(err.value) == f"{requirement('fp32')}; this machine has none"
