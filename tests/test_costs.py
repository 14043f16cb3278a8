"""Issue #16: model calls made visible (lib.media.costs) and SDEdit's strip of i_starts as one batched run
(lib.techniques.sdedit_strip), on a small random MNIST DDPM and on the tiny DeepFloyd IF (learned variance, 3 × 64 px).

Every count is checked against its closed form: a loop of K steps makes K calls; CFG doubles the rows of a call
(γ = 1 runs the conditional half alone); the SDEdit strip makes N − min(i_start) calls on Σ (N − i_start) × 2 rows."""

from __future__ import annotations

import pytest
import torch

from lib.media.costs import Cost, CountingNoiseModel, counts_cost
from lib.techniques.sdedit import sdedit, sdedit_strip
from lib.ddpm.sampling import sample
from tests.test_edits import make_noise_model, ring
from tests.tiny_if import tiny_if_noise_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MNIST = make_noise_model()


@pytest.fixture(scope="module")
def tiny_if():
    return tiny_if_noise_model(seed=0)


def photo() -> torch.Tensor:
    """A 64 px RGB test image in [−1, 1]: a smooth colour gradient."""
    ramp = torch.linspace(-1, 1, 64)
    across, down = ramp.view(1, -1).expand(64, 64), ramp.view(-1, 1).expand(64, 64)
    return torch.stack([across, down, -across]).unsqueeze(0)


@pytest.mark.parametrize("scale, per_sample", [(3.0, 2), (1.0, 1)])
def test_sampling_costs_steps_calls_and_samples_times_cfg_rows(scale, per_sample):
    den = CountingNoiseModel(MNIST)
    steps = len(MNIST.timesteps(50)) - 1  # 6
    sample(den, MNIST.encode_prompt("7"), scale=scale, stride=50, num_samples=3,
           generator=torch.Generator().manual_seed(0))
    assert (den.cost.calls, den.cost.rows) == (steps, steps * 3 * per_sample)
    assert den.cost.seconds > 0 and den.cost.ms_per_call == pytest.approx(1000 * den.cost.seconds / steps)


def test_counts_cost_returns_the_result_and_what_it_cost_whichever_way_den_is_passed():
    @counts_cost
    def one_call(n: int, _den, extra: int = 0):
        return _den.predict(torch.zeros(n, 1, 28, 28), 10, _den.null_condition())[0].shape[0] + extra

    result, cost = one_call(4, MNIST)
    assert (result, cost) == (4, Cost(1, 4, cost.seconds)) and cost.seconds > 0
    result, cost = one_call(2, _den=MNIST, extra=1)
    assert (result, cost.calls, cost.rows) == (3, 1, 2)


def test_stock_pipeline_cost_is_its_unet_calls(tiny_if):
    """IF's stock pipeline bypasses ``predict``; its step count must equal the UNet calls it really makes."""
    seen: list[int] = []
    hook = tiny_if.unet.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        den = CountingNoiseModel(tiny_if)
        den.stock_sample("a rocket ship", steps=2, seed=0, scale=7.0)
    finally:
        hook.remove()
    assert (den.cost.calls, den.cost.rows) == (len(seen), sum(seen)) == (2, 4)  # 1 sample × 2 for CFG, per step


@pytest.mark.parametrize("backend, stride, i_starts", [("mnist", 50, (1, 3, 5)), ("if", 250, (0, 1, 2))])
def test_sdedit_strip_is_the_per_i_start_runs_in_one_batch(backend, stride, i_starts, tiny_if):
    base = MNIST if backend == "mnist" else tiny_if
    image = ring() if backend == "mnist" else photo()
    cond, scale, seed = base.encode_prompt("3" if backend == "mnist" else "a high quality photo"), 5.0, 7
    den = CountingNoiseModel(base)
    strip = sdedit_strip(den, image, cond=cond, scale=scale, i_starts=i_starts, stride=stride, seed=seed)
    singles = torch.cat([sdedit(base, image, cond=cond, scale=scale, i_start=i, stride=stride,
                                generator=torch.Generator().manual_seed(seed)) for i in i_starts])
    torch.testing.assert_close(strip, singles, atol=1e-4, rtol=1e-4)
    n = len(base.timesteps(stride)) - 1
    assert den.cost.calls == n - min(i_starts) < sum(n - i for i in i_starts)  # one batched run, not one per i_start
    assert den.cost.rows == 2 * sum(n - i for i in i_starts)  # each edit's K = N − i_start steps, × 2 for CFG


def test_sdedit_strip_wants_ascending_valid_i_starts():
    for bad in ((), (3, 1), (1, 6)):
        with pytest.raises(ValueError):
            sdedit_strip(MNIST, ring(), cond=MNIST.encode_prompt("3"), scale=1.0, i_starts=bad, stride=50, seed=0)
