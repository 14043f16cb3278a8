"""PixNerdVelocity (lib.backends.pixnerd.velocity): the flow edition's velocity-model interface around the tiny golden model and
a stand-in prompt encoder of the right shape."""

from __future__ import annotations

import hashlib

import pytest
import torch

from lib.backends.pixnerd.config import TINY
from lib.backends.pixnerd.model import build_pixnerd
from lib.backends.pixnerd.velocity import PixNerdVelocity
from tests.tiny_pixnerd import golden_tensors, golden_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class StandInEncoder:
    """Deterministic (B, L, Dy) "embeddings", seeded by each prompt's SHA-256; counts its calls."""

    def __init__(self, tokens: int = TINY.txt_max_length, dim: int = TINY.txt_embed_dim):
        self.tokens, self.dim, self.calls = tokens, dim, []

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        self.calls.append(list(prompts))
        seeds = [int(hashlib.sha256(p.encode()).hexdigest()[:15], 16) for p in prompts]
        rows = [torch.randn(self.tokens, self.dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.stack(rows)


@pytest.fixture(scope="module")
def golden():
    return golden_tensors()


@pytest.fixture
def tiny_velocity(golden):
    model = build_pixnerd(TINY, device="meta")
    model.load_state_dict(golden_weights(golden), strict=True, assign=True)
    return PixNerdVelocity(model, StandInEncoder(), name="tiny PixNerd (tests)", image_size=32)


def test_the_interface_attributes(tiny_velocity):
    assert tiny_velocity.name == "tiny PixNerd (tests)"
    assert tiny_velocity.image_shape == (3, 32, 32)
    assert tiny_velocity.device == torch.device("cpu") and tiny_velocity.dtype == torch.float32


def test_velocity_is_the_models_output(tiny_velocity, golden):
    x, t, y, ref = (golden[f"case0.{name}"] for name in ("x", "t", "y", "out"))
    v = tiny_velocity.velocity(x, t, y)
    assert v.dtype == torch.float32 and (v - ref).abs().max().item() <= 1e-5


def test_a_number_for_t_and_one_condition_row_serve_the_whole_batch(tiny_velocity, golden):
    x, y = golden["case0.x"], golden["case0.y"]
    with torch.no_grad():
        explicit = tiny_velocity.model(x, torch.full((2,), 0.25), y[:1].expand(2, -1, -1))
    assert torch.equal(tiny_velocity.velocity(x, 0.25, y[:1]), explicit)
    assert torch.equal(tiny_velocity.velocity(x, torch.tensor(0.25), y[:1]), explicit)


def test_an_enclosing_autocast_does_not_reach_the_model(tiny_velocity, golden):
    """The course runs the network with autocast disabled: a caller's bf16 autocast changes nothing."""
    x, t, y = golden["case0.x"], golden["case0.t"], golden["case0.y"]
    plain = tiny_velocity.velocity(x, t, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = tiny_velocity.velocity(x, t, y)
    assert inside.dtype == torch.float32 and torch.equal(inside, plain)


def test_prompts_go_to_the_encoder_and_the_null_condition_is_computed_once(tiny_velocity):
    encoder = tiny_velocity.encode
    emb = tiny_velocity.encode_prompt("a high quality photo")
    assert emb.shape == (1, TINY.txt_max_length, TINY.txt_embed_dim)
    assert torch.equal(emb, encoder(["a high quality photo"]))
    null = tiny_velocity.null_condition()
    assert tiny_velocity.null_condition() is null and torch.equal(null, encoder([""]))
    assert encoder.calls == [["a high quality photo"], ["a high quality photo"], [""], [""]]


def test_an_encoder_of_the_wrong_shape_is_named(golden):
    model = build_pixnerd(TINY, device="meta")
    model.load_state_dict(golden_weights(golden), strict=True, assign=True)
    velocity = PixNerdVelocity(model, StandInEncoder(tokens=77, dim=4096))
    with pytest.raises(ValueError, match=r"returned \(1, 77, 4096\), PixNerd reads \(1, 8, 32\) per prompt"):
        velocity.encode_prompt("a photo")
