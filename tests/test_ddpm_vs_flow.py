"""DDPM and flow matching side by side (lib.flow.ddpm_vs_flow) and the digit classifier that judges them
(lib.train.digit_classifier): evaluation counts, the shared starting noise, the path measure and the quality metric,
against closed forms and real MNIST digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.backends.mnist_model import MnistDDPM
from lib.ddpm.schedules import chain_timesteps
from lib.flow.ddpm_vs_flow import (INK_TOLERANCE, NFE_COUNTS, DdpmContender, FlowContender, Measured, Trajectory,
                                   ddpm_timesteps, digit_labels, fewest_evaluations, fewest_for_finished_ink,
                                   mid_grey_share, quality_curve, seeded_noise, trajectory)
from lib.flow.mnist import MnistFlow
from lib.media.costs import CountingNoiseModel
from lib.train import cache
from lib.train.digit_classifier import (CONFIDENT, Quality, cached_digit_classifier, quality, real_digits_quality,
                                        to_classifier_range, train_digit_classifier)
from lib.train.training import TrainConfig
from lib.train.unets import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(model: str) -> tuple[nn.Module, TrainConfig]:
    """An untrained D = 4 UNet of ``model`` (what it draws does not matter here, only how it is called)."""
    torch.manual_seed(0)
    config = TrainConfig.spec(model, hidden=4)
    return build_model(model, config.hidden), config


class CountingFlow:
    """A VelocityModel whose calls are counted, the first call's input kept; the rest passes through."""

    def __init__(self, model):
        self._model, self.calls, self.first_input = model, 0, None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def velocity(self, x_t, t, cond):
        self.calls += 1
        if self.first_input is None:
            self.first_input = x_t.clone()
        return self._model.velocity(x_t, t, cond)


class FirstInput(CountingNoiseModel):
    """A counting NoiseModel that also keeps the first call's input x_t."""

    first_input = None

    def predict(self, x_t, t, cond):
        if self.first_input is None:
            self.first_input = x_t.clone()
        return super().predict(x_t, t, cond)


def contenders() -> tuple[DdpmContender, FlowContender]:
    ddpm = DdpmContender(FirstInput(MnistDDPM(*tiny("class"))))
    flow = FlowContender(CountingFlow(MnistFlow(*tiny("flow_class"))))
    return ddpm, flow


def test_the_ddpm_chain_for_k_evaluations_is_its_sampler_stride_of_t_over_k():
    for k in NFE_COUNTS:
        ts = ddpm_timesteps(300, k)
        assert len(ts) == k + 1 and ts[0] == 299 and ts[-1] == -1
        assert ts == chain_timesteps(300, 300 // k)
    assert ddpm_timesteps(300, 1) == [299, -1]  # one step: x̂0 from pure noise
    with pytest.raises(ValueError, match="divisor of 300"):
        ddpm_timesteps(300, 7)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_k_steps_are_k_network_calls_from_the_same_starting_noise(k):
    """Each contender calls its network exactly k times for k steps (guidance batched into each call), and both
    networks first see the same ε."""
    ddpm, flow = contenders()
    labels = digit_labels(1)
    for contender in (ddpm, flow):
        noise, generator = seeded_noise(len(labels), 7, "cpu")
        out = contender.draw(noise, labels, k, generator)
        assert out.shape == (10, 1, 28, 28)
    assert ddpm.den.cost.calls == k and ddpm.den.cost.rows == 2 * 10 * k  # conditional + unconditional rows
    assert flow.model.calls == k
    assert torch.equal(ddpm.den.first_input, flow.model.first_input)
    noise = seeded_noise(10, 7, "cpu")[0]
    assert torch.equal(flow.model.first_input, torch.cat([noise, noise]))  # [conditional | unconditional] rows


def test_the_quality_curve_spends_the_sum_of_its_evaluation_counts():
    ddpm, flow = contenders()
    judge = FixedDigit(3)
    counts = (1, 2, 5)
    for contender, calls in ((ddpm, lambda: ddpm.den.cost.calls), (flow, lambda: flow.model.calls)):
        points = quality_curve(contender, judge, 2, counts, seed=0)
        assert [p.nfe for p in points] == list(counts) and calls() == sum(counts)
        assert all(p.samples.shape == (20, 28, 28) and p.samples.dtype == torch.uint8 for p in points)
        assert all(p.quality == Quality(confident=1.0, agrees=pytest.approx(0.1)) for p in points)


def test_a_constant_velocity_walks_a_straight_path_at_constant_speed():
    """With v ≡ c, Euler reaches ε + c exactly and every frame is a fraction i/k of the way: the distance to the final
    sample falls as 1 − i/k."""

    class Constant:
        device, dtype, image_shape, value_range = torch.device("cpu"), torch.float32, (1, 28, 28), (0.0, 1.0)
        c = torch.linspace(-1, 1, 784).reshape(1, 1, 28, 28)

        def velocity(self, x, t, cond):
            return self.c.expand_as(x)

        def null_condition(self):
            return torch.zeros(1, 10)

    path = trajectory(FlowContender(Constant()), digit=4, nfe=8, seed=3)
    noise = seeded_noise(1, 3, "cpu")[0]
    torch.testing.assert_close(path.frames[-1:], to_classifier_range(noise + Constant.c, (0.0, 1.0)))
    assert path.fractions == [i / 8 for i in range(9)]
    assert path.distance_to_final() == pytest.approx([1 - i / 8 for i in range(9)], abs=1e-6)
    assert path.labels[0].startswith("start") and path.labels[-1] == "step 8/8 · t = 1"


def test_the_ddpm_trajectory_starts_at_the_noise_and_ends_at_the_clean_image():
    ddpm, flow = contenders()
    path = trajectory(ddpm, digit=2, nfe=5, seed=11)
    assert path.frames.shape == (6, 1, 28, 28)
    assert torch.equal(path.frames[0], seeded_noise(1, 11, "cpu")[0][0])  # the DDPM's range is the classifier's
    assert [label.split(" · ")[1] for label in path.labels[1:]] == ["t = 239", "t = 179", "t = 119", "t = 59",
                                                                     "clean image"]
    d = path.distance_to_final()
    assert d[0] == pytest.approx(1.0) and d[-1] == 0.0
    flow_path = trajectory(flow, digit=2, nfe=5, seed=11)  # the same ε, seen in the flow model's [0, 1] pixels
    torch.testing.assert_close(flow_path.frames[0], 2 * path.frames[0] - 1)


def test_distance_to_final_of_a_straight_line_is_one_minus_the_fraction():
    a, b = torch.randn(1, 1, 28, 28), torch.randn(1, 1, 28, 28)
    frames = torch.cat([(1 - i / 4) * a + (i / 4) * b for i in range(5)])
    assert Trajectory(frames, [""] * 5).distance_to_final() == pytest.approx([1, 0.75, 0.5, 0.25, 0], abs=1e-6)


class FixedDigit(nn.Module):
    """A "classifier" that always reads ``digit`` with probability e¹⁰ / (e¹⁰ + 9) ≈ 0.9996."""

    def __init__(self, digit: int):
        super().__init__()
        self.digit = digit

    def forward(self, x):
        return 10.0 * nn.functional.one_hot(torch.full((len(x),), self.digit), 10).float()


def test_quality_shares_have_their_closed_form():
    labels = digit_labels(3)
    assert quality(FixedDigit(3), torch.zeros(30, 1, 28, 28), labels) == Quality(confident=1.0,
                                                                           agrees=pytest.approx(0.1))
    uniform = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    nn.init.zeros_(uniform[1].weight), nn.init.zeros_(uniform[1].bias)  # p = 0.1 for every digit: never confident
    assert quality(uniform, torch.zeros(30, 1, 28, 28), labels).confident == 0.0
    assert CONFIDENT == 0.9


def test_fewest_evaluations_is_the_first_count_that_reaches_the_target():
    points = [Measured(k, Quality(1.0, a), torch.zeros(0), 0.1) for k, a in ((1, 0.2), (5, 0.85), (10, 0.93), (30, 0.97))]
    assert fewest_evaluations(points, 0.9) == 10 and fewest_evaluations(points, 0.99) is None


def test_mid_grey_share_counts_the_pixels_between_background_and_ink():
    x = torch.tensor([-1.0, -0.81, -0.79, 0.0, 0.5, 0.79, 0.8, 1.0]).reshape(2, 1, 2, 2)
    assert mid_grey_share(x) == pytest.approx(4 / 8)  # −0.79, 0, 0.5, 0.79; ±0.8 and beyond are background or ink
    assert mid_grey_share(torch.ones(3, 1, 28, 28)) == 0.0


def test_finished_ink_is_the_first_count_within_the_tolerance_of_real_digits():
    points = [Measured(k, Quality(1.0, 1.0), torch.zeros(0), g) for k, g in ((1, 0.21), (5, 0.118), (30, 0.101))]
    assert INK_TOLERANCE == 1.25
    assert fewest_for_finished_ink(points, 0.085) == 30  # 0.101 ≤ 1.25 · 0.085 = 0.106 < 0.118
    assert fewest_for_finished_ink(points, 0.095) == 5 and fewest_for_finished_ink(points, 0.05) is None


def test_to_classifier_range_maps_endpoints():
    x = torch.tensor([0.0, 0.5, 1.0])
    assert to_classifier_range(x, (0.0, 1.0)).tolist() == [-1.0, 0.0, 1.0]
    assert to_classifier_range(x, (-1.0, 1.0)).tolist() == x.tolist()


def test_real_test_digits_score_high_and_noise_scores_low(digit_classifier, mnist_test):
    real = real_digits_quality(digit_classifier, mnist_test)
    assert real.agrees > 0.95 and real.confident > 0.8  # measured: 96.5 % and 87.1 %
    noise = torch.randn(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    judged = quality(digit_classifier, noise, digit_labels(100))
    assert judged.agrees < 0.2 and judged.confident < 0.1  # chance is 10 %; measured: 9.7 % and 1.9 %


def test_training_the_judge_leaves_the_process_random_state_as_it_was(mnist_train):
    """Its initial weights come from seed 0 alone, without resetting torch's global RNG (which every session of the app
    shares): the draws after training are those the RNG would have made anyway."""
    small = type(mnist_train)(mnist_train.images[:200], mnist_train.labels[:200], mnist_train.source, mnist_train.note)
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    first = train_digit_classifier(small, digits=200)
    assert torch.equal(torch.rand(5), expected)
    torch.manual_seed(7)
    again = train_digit_classifier(small, digits=200)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_the_app_trains_its_classifier_once_and_loads_it_after(mnist_train, tmp_path):
    small = type(mnist_train)(mnist_train.images[:500], mnist_train.labels[:500], mnist_train.source, mnist_train.note)
    first = cached_digit_classifier(small, tmp_path)
    (path,) = tmp_path.glob("digit_classifier-*.safetensors")
    again = cached_digit_classifier(small, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    stamp = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes()[:-10])  # damaged: retrained and rewritten, never loaded
    with pytest.raises(cache.CorruptEntry):
        cache.load_entry(path)
    retrained = cached_digit_classifier(small, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), retrained.state_dict().values()))
    assert cache.load_entry(path) and path.stat().st_mtime_ns >= stamp
