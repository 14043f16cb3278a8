"""The PixNerd denoiser (lib.backends.pixnerd.model) against the reference tensors of ``../shared/golden/pixnerd``: the tiny
instance's weights load strictly and its four cases are reproduced in float32; the released XXL configuration has
exactly the checkpoint's keys, shapes and parameter count."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lib.backends.pixnerd.config import (MODEL_NAME, TINY, XXL, NotPixNerdWeights, PixNerdConfig, config_from_weights,
                                         model_label)
from lib.backends.pixnerd.model import build_pixnerd, rope_table
from tests.tiny_pixnerd import golden_file, golden_tensors, golden_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOLERANCE = 1e-5  # float32 on the CPU (ARCHITECTURE's "within about 1e-5")


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return golden_tensors()


@pytest.fixture(scope="module")
def tiny(golden):
    model = build_pixnerd(TINY, device="cpu")
    model.load_state_dict(golden_weights(golden), strict=True)
    return model


def test_the_configurations_are_the_reference_ones():
    assert json.loads(golden_file("tiny.json").read_text())["config"] == vars(TINY)
    assert json.loads(golden_file("xxl_keys.json").read_text())["config"] == vars(XXL)


def test_the_tiny_weights_load_strictly(golden):
    model = build_pixnerd(TINY, device="cpu")
    result = model.load_state_dict(golden_weights(golden), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in golden_weights(golden).items())


@pytest.mark.parametrize("case", range(4))
def test_the_four_reference_cases_are_reproduced(tiny, golden, case, record_property):
    """Case 1 is 16×16 (another token grid), case 2 has t = 0, case 3 is 16×32 (a non-square grid)."""
    x, t, y, ref = (golden[f"case{case}.{name}"] for name in ("x", "t", "y", "out"))
    with torch.no_grad():
        out = tiny(x, t, y)
    error = (out - ref).abs().max().item()
    record_property("max_abs_error", error)
    print(f"case {case}: max abs error {error:.2e}")
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert error <= TOLERANCE, f"case {case}: max abs error {error:.2e}"


def test_bf16_weights_follow_the_reference_to_bf16_precision(golden):
    """The dtype plumbing (time code, pixel code, rotary and RMSNorm in float32) holds for bf16 weights: the output
    stays within bf16's 8-bit mantissa of the float32 reference (measured ≈ 1.2 % relative L2 error)."""
    model = build_pixnerd(TINY, device="cpu", dtype=torch.bfloat16)
    model.load_state_dict(golden_weights(golden), strict=True)
    x, t, y, ref = (golden[f"case0.{name}"] for name in ("x", "t", "y", "out"))
    with torch.no_grad():
        out = model(x.bfloat16(), t, y.bfloat16())
    assert out.dtype == torch.bfloat16
    assert ((out.float() - ref).norm() / ref.norm()).item() < 0.03


def test_the_rotary_table_has_crossed_end_points():
    """rope(8, 2, 3): x = linspace(0, 2, 3)[c] = c, y = linspace(0, 3, 2)[r] = 3r; entries e^{ix f0}, e^{iy f0},
    e^{ix f1}, e^{iy f1} with f = (1, 10000^(−1/2))."""
    table = rope_table(8, 2, 3)
    f1 = 10000 ** -0.5
    expected = torch.tensor([[c, 3 * r, c * f1, 3 * r * f1] for r in range(2) for c in range(3)])
    assert table.shape == (6, 4) and table.dtype == torch.complex64
    assert torch.allclose(table.angle(), expected, atol=1e-6)
    assert torch.allclose(table.abs(), torch.ones(6, 4))


def test_the_xxl_configuration_has_the_released_keys_shapes_and_size():
    released = json.loads(golden_file("xxl_keys.json").read_text())
    model = build_pixnerd(XXL, device="meta")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == 256
    assert shapes == released["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == released["parameters"] == 1_171_518_019
    assert all(p.is_meta for p in model.parameters())


def test_the_configuration_is_read_off_the_weights_shapes(golden):
    """``config_from_weights``: the released keys' shapes give the XXL, the golden tiny weights the tiny one, and a
    configuration that differs in every argument from both comes back from its own module's shapes."""
    released = json.loads(golden_file("xxl_keys.json").read_text())["state_dict"]
    assert config_from_weights(released) == XXL
    assert config_from_weights({k: v.shape for k, v in golden_weights(golden).items()}) == TINY
    other = PixNerdConfig(in_channels=1, patch_size=2, num_groups=2, hidden_size=24, txt_embed_dim=20,
                          txt_max_length=5, num_text_blocks=1, decoder_hidden_size=8, num_encoder_blocks=3,
                          num_decoder_blocks=1)
    shapes = {k: v.shape for k, v in build_pixnerd(other, device="meta").state_dict().items()}
    assert config_from_weights(shapes) == other
    with pytest.raises(NotPixNerdWeights, match="no final_layer.linear.weight among the weights"):
        config_from_weights({k: v for k, v in shapes.items() if not k.startswith("final_layer")})


def test_only_the_released_configuration_is_called_by_the_released_name():
    """A snapshot folder may hold another PixNerd: the app names the XXL only for the XXL's configuration."""
    assert model_label(XXL) == MODEL_NAME == "PixNerd-XXL-P16-T2I"
    assert model_label(TINY) == "PixNerd-P4 (width 64, 2 + 2 blocks; not the released XXL)"
    assert model_label(dataclasses.replace(XXL, num_encoder_blocks=12)) != MODEL_NAME
