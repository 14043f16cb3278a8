"""The fast paths compute the same thing as the plain ones: bf16 autocast training follows the fp32 loss curve of the
same seed, bf16 sampling gives the fp32 images for the same noise, and reading losses back in batches changes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lib.train import model_store, precision
from lib.train.data import Digits
from lib.backends.mnist_model import MnistDDPM, class_grid
from lib.train.training import TrainConfig, train

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
# the training equivalences on every device: on CUDA the fast path also means fused Adam and batched loss read-back
DEVICES = [pytest.param(CPU, id="cpu"), pytest.param(torch.device("cuda"), id="cuda", marks=pytest.mark.gpu)]


@pytest.fixture(scope="module")
def digits(mnist_train) -> Digits:
    return Digits(mnist_train.images[:4000].clone(), mnist_train.labels[:4000].clone(), mnist_train.source, "")


def run(config: TrainConfig, digits: Digits, device: torch.device = CPU, **kwargs):
    return train(config, digits.as_float(), digits.labels, snapshot_fn=lambda m, e, stop: torch.zeros(0), device=device,
                 **kwargs)


def test_auto_picks_bf16_only_where_the_hardware_has_it(monkeypatch):
    monkeypatch.delenv(precision.ENV_VAR, raising=False)
    assert precision.resolve(CPU) == ("bf16" if precision.bf16_is_fast(CPU) else "fp32")
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: False)
    assert precision.resolve(CPU) == "fp32"
    assert precision.resolve(CPU, "bf16") == "bf16"  # an explicit request wins
    monkeypatch.setenv(precision.ENV_VAR, "bf16")
    assert precision.resolve(CPU) == "bf16"
    assert precision.resolve(CPU, "fp32") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve(CPU, "fp16")


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_training_follows_the_fp32_loss_curve(digits, device):
    """Same seed, same batches, same noise: the two loss curves agree within bf16's rounding, window by window.

    Small on purpose: on a CPU without bf16 units bf16 is emulated, ~7x slower than fp32 (this test took 3 min at
    D = 16, batch 64 on an AVX2-only CPU; 40 s at this size)."""
    config = TrainConfig.spec("class", hidden=8, batch_size=32, epochs=2, steps_per_epoch=40, snapshot_epochs=())
    fp32 = torch.tensor(run(config, digits, device, precision="fp32").losses)
    bf16 = run(config, digits, device, precision="bf16")
    assert bf16.info["precision"] == "bf16"
    bf16 = torch.tensor(bf16.losses)
    assert fp32[-10:].mean() < 0.5 * fp32[:10].mean(), "the run must actually learn for the comparison to mean much"
    windows = lambda losses: losses.view(8, 10).mean(1)  # noqa: E731
    rel = (windows(bf16) - windows(fp32)).abs() / windows(fp32)
    assert rel.max() < 0.05, rel
    # ...and the difference is rounding, not a different run: another seed in fp32 differs by more, step by step
    other = torch.tensor(run(replace(config, seed=1), digits, device, precision="fp32").losses)
    assert (bf16 - fp32).abs().mean() < 0.5 * (other - fp32).abs().mean()


def test_weights_stay_fp32_and_save_contiguously(digits, tmp_path):
    config = TrainConfig.spec("class", hidden=8, batch_size=16, epochs=1, steps_per_epoch=2, snapshot_epochs=())
    result = run(config, digits, precision="bf16")
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    path = model_store.save_run(result, tmp_path / "run.safetensors", {"precision": result.info["precision"]})
    loaded = model_store.load_run(path)
    saved, trained = loaded.model.state_dict(), result.model.state_dict()
    assert all(torch.equal(saved[k], trained[k]) for k in trained)
    assert loaded.info["precision"] == "bf16"
    # loading prepares the model for inference once (eval mode, channels_last on a CPU); ``infer`` does not re-walk it
    convs = [p for p in loaded.model.parameters() if p.dim() == 4]
    assert not loaded.model.training and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("every", [1, 7, 100])
def test_reading_losses_back_in_batches_changes_nothing(digits, every, device):
    config = TrainConfig.spec("time", hidden=8, batch_size=16, epochs=2, steps_per_epoch=10, snapshot_epochs=())
    seen = []
    result = run(config, digits, device, precision="fp32", loss_sync_every=every,
                 on_progress=lambda p: seen.append((p.step, len(p.losses))))
    reference = run(config, digits, device, precision="fp32", loss_sync_every=1)
    if device.type == "cpu":
        assert result.losses == reference.losses
    else:  # cuDNN's backward kernels may sum in a different order from run to run
        torch.testing.assert_close(torch.tensor(result.losses), torch.tensor(reference.losses), rtol=1e-4, atol=0)
    assert all(step == n for step, n in seen), "progress.step always counts the losses read back"
    # reported every `every` steps and at the end of each epoch (plus the final snapshot report)
    expected = sorted({*range(every, 11, every), 10} | {10 + s for s in range(every, 11, every)} | {20})
    assert [s for s, _ in seen[:-1]] == expected


@pytest.mark.slow
def test_a_compiled_step_follows_the_eager_loss_curve(digits):
    """``compile_step`` changes how the step is computed (fused kernels), not the run: same seed, same batches, the
    same losses within float rounding, the same weights, recorded in the provenance. (About a minute: compiling.)"""
    config = TrainConfig.spec("time", hidden=8, batch_size=16, epochs=1, steps_per_epoch=12, snapshot_epochs=())
    eager = run(config, digits, precision="fp32")
    compiled = run(config, digits, precision="fp32", compile_step=True)
    assert compiled.info["compiled"] and "compiled" not in eager.info
    torch.testing.assert_close(torch.tensor(compiled.losses), torch.tensor(eager.losses), rtol=1e-3, atol=1e-5)
    other = run(replace(config, seed=1), digits, precision="fp32")  # the tolerance is far tighter than a new run
    assert (torch.tensor(other.losses) - torch.tensor(eager.losses)).abs().max() > 1e-2
    assert set(compiled.model.state_dict()) == set(eager.model.state_dict())  # saved under the same names


def test_bf16_sampling_gives_the_fp32_images(monkeypatch):
    """The shipped class model, the same seed: the bf16 grid matches the fp32 grid to a few grey levels."""
    if not model_store.shipped_path("class").exists():
        pytest.skip("shipped class model missing")
    run_ = model_store.load_run(model_store.shipped_path("class"))
    grids = {}
    for p in ("fp32", "bf16"):
        monkeypatch.setenv(precision.ENV_VAR, p)
        grids[p] = class_grid(MnistDDPM(run_.model, run_.config), per_class=1, scale=5.0, stride=30, seed=0)
    diff = (grids["bf16"] - grids["fp32"]).abs()
    assert diff.mean() < 0.03, diff.mean()  # images in [−1, 1]: 0.03 is under 4 grey levels of 255
    assert (diff > 0.5).float().mean() < 0.01, "no pixel flips from ink to paper"


def test_bf16_denoising_matches_fp32(monkeypatch, mnist_test):
    """The shipped single-step denoiser on noisy test digits: the two precisions give the same picture and error."""
    if not model_store.shipped_path("denoiser").exists():
        pytest.skip("shipped denoiser missing")
    model = model_store.load_run(model_store.shipped_path("denoiser")).model
    x = mnist_test.as_float()[:16]
    z = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    out = {}
    for p in ("fp32", "bf16"):
        monkeypatch.setenv(precision.ENV_VAR, p)
        out[p] = precision.infer(model, z)
    assert out["bf16"].dtype == torch.float32
    assert (out["bf16"] - out["fp32"]).abs().mean() < 0.01  # images in [0, 1]: under 3 grey levels
    mse = {p: float(torch.mean((o - x) ** 2)) for p, o in out.items()}
    assert abs(mse["bf16"] - mse["fp32"]) < 0.02 * mse["fp32"], mse
