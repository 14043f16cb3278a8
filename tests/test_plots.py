"""lib.media.plots: the numbers behind every part-B figure."""

import json

import numpy as np
import pytest
import torch

from lib.media.plots import (
    MIN_TICKS_INSIDE, TrajectoryRecorder, animation_figure, default_window, log_ticks, loss_figure, moving_average,
    schedule_figure, sweep_figure,
)
from lib.media.report import loss_curve_svg
from lib.ddpm.schedules import linear_schedule


def test_moving_average_is_a_trailing_mean_over_the_values_seen_so_far():
    assert np.allclose(moving_average([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    assert np.allclose(moving_average([4, 0, 2, 6], 3), [4, 2, 2, 8 / 3])
    assert np.allclose(moving_average([3, 1, 4], 1), [3, 1, 4])
    assert np.allclose(moving_average([7.0] * 10, 4), 7.0)
    assert moving_average([], 5).shape == (0,)
    with pytest.raises(ValueError):
        moving_average([1.0], 0)


def test_default_window_grows_with_the_run_and_is_capped():
    assert default_window(10) == 1
    assert default_window(1000) == 20
    assert default_window(10**6) == 200


def test_loss_figure_plots_raw_and_smoothed_loss_with_epoch_marks_and_log_axis():
    losses = [1.0, 0.5, 0.25, 0.2, 0.1, 0.05]
    fig = loss_figure(losses, log_y=True, window=2, steps_per_epoch=2)
    raw, smooth = fig.data
    assert list(raw.x) == [1, 2, 3, 4, 5, 6] and list(raw.y) == losses
    assert np.allclose(smooth.y, [1.0, 0.75, 0.375, 0.225, 0.15, 0.075])
    assert fig.layout.yaxis.type == "log"
    assert sorted(shape.x0 for shape in fig.layout.shapes) == [2, 4, 6]  # one dotted line per epoch end
    assert loss_figure(losses).layout.yaxis.type == "linear"
    assert len(loss_figure(losses).layout.shapes) == 0
    # the log axis names its ticks as numbers: 0.05, 0.1, 0.2, … — never plotly's bare minor digits ("2" for 0.2)
    assert list(fig.layout.yaxis.ticktext) == ["0.05", "0.1", "0.2", "0.5", "1"]
    assert np.allclose(fig.layout.yaxis.tickvals, [0.05, 0.1, 0.2, 0.5, 1.0])
    assert fig.data[1].name == "moving average (2 steps)"
    assert loss_figure(losses, window=1).data[1].name == "moving average (1 step)"


@pytest.mark.parametrize("n", [1, 2, 4, 9])
def test_a_short_loss_curve_ticks_whole_steps_only(n):
    """Optimiser steps are whole numbers: a curve of a few steps (plotly would tick 1, 1.5, 2, …) ticks each step."""
    fig = loss_figure([1.0 / (i + 1) for i in range(n)])
    assert list(fig.layout.xaxis.tickvals) == list(range(1, n + 1))


def test_a2_psnr_curve_of_one_step_ticks_that_step():
    """A chain of one step (plotly would tick 2.5, 3, 3.5 around it) ticks the step itself."""
    from lib.media.plots import estimate_psnr_figure

    fig = estimate_psnr_figure([(3, 0, 18.0)], {"one-step": 19.0, "blur": 15.0})
    assert list(fig.layout.xaxis.tickvals) == [3]
    assert [s.line.dash for s in fig.layout.shapes] == ["dash", "dot"]


def test_a_long_loss_curve_keeps_plotlys_own_ticks():
    """Over ten steps or more plotly's automatic ticks fall on whole steps (its tick spacing is then at least 2)."""
    assert loss_figure([1.0] * 300).layout.xaxis.tickvals is None


def test_log_ticks_cover_the_range_with_1_2_5_steps_and_plain_labels():
    values, labels = log_ticks(0.0084, 0.31)
    assert labels == ["0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5"]
    assert np.allclose(values, [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5])
    assert log_ticks(0.02, 0.02) == ([0.02], ["0.02"])


# a short run's loss (B2 at D 8, 2 epochs of 3 batches of 32 stays between 0.31 and 0.45): no 1, 2 or 5 × 10^k inside
SHORT_RUN_LOSSES = [0.452, 0.418, 0.391, 0.377, 0.342, 0.318]


@pytest.mark.parametrize("losses", [SHORT_RUN_LOSSES, [0.93, 0.95, 0.97, 1.02], [0.9512, 0.9514, 0.9519],
                                    [3.3, 5.2, 9.9], [0.0084, 0.05, 0.31]])
def test_a_log_loss_axis_labels_three_values_inside_any_range(losses):
    """Issue #27 item 7: the log axis of a short run's loss had no label at all (its 1-2-5 ticks all fell outside the
    data). Whatever the range, at least three labelled ticks lie inside it, each label the number it stands at."""
    axis = loss_figure(losses, log_y=True).layout.yaxis
    inside = [(v, t) for v, t in zip(axis.tickvals, axis.ticktext) if min(losses) <= v <= max(losses)]
    assert axis.tickmode == "array" and len(inside) >= MIN_TICKS_INSIDE, list(zip(axis.tickvals, axis.ticktext))
    assert all(float(t) == pytest.approx(v) for v, t in zip(axis.tickvals, axis.ticktext))
    assert len(set(axis.ticktext)) == len(axis.ticktext)
    assert axis.tickvals[0] <= min(losses) and axis.tickvals[-1] >= max(losses)  # one tick beyond each end


def test_a_narrow_range_ticks_evenly_at_a_round_step():
    assert log_ticks(0.318, 0.452) == ([0.3, 0.35, 0.4, 0.45, 0.5], ["0.30", "0.35", "0.40", "0.45", "0.50"])


def test_the_reports_loss_curve_labels_a_short_runs_range_too():
    svg = loss_curve_svg(SHORT_RUN_LOSSES)
    assert all(f">{label}<" in svg for label in ("0.35", "0.40", "0.45"))


def test_schedule_figure_shows_beta_alphabar_and_snr_of_the_schedule():
    sched = linear_schedule(300, 1e-4, 0.02)
    beta, abar, snr = schedule_figure(sched).data
    assert len(beta.x) == 300 and beta.x[0] == 0 and beta.x[-1] == 299
    assert np.isclose(beta.y[0], 1e-4) and np.isclose(beta.y[-1], 0.02)
    assert np.allclose(abar.y, np.cumprod(1 - np.linspace(1e-4, 0.02, 300)))
    assert np.allclose(snr.y, abar.y / (1 - abar.y))
    assert schedule_figure(sched).layout.yaxis3.type == "log"


def test_sweep_figure_marks_the_training_sigma():
    fig = sweep_figure([0.0, 0.5, 1.0], [0.001, 0.01, 0.08], 0.5)
    assert list(fig.data[0].x) == [0.0, 0.5, 1.0] and list(fig.data[0].y) == [0.001, 0.01, 0.08]
    assert fig.layout.shapes[0].x0 == 0.5
    assert "0.5" in fig.layout.annotations[0].text


def test_animation_figure_has_one_named_frame_and_slider_step_per_picture():
    frames = [np.full((6, 8, 3), v, dtype=np.uint8) for v in (0, 120, 255)]
    fig = animation_figure(frames, ["a", "b", "c"])
    assert [f.name for f in fig.frames] == ["a", "b", "c"]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["a", "b", "c"]
    sources = [f.data[0].source for f in fig.frames]
    assert all(s.startswith("data:image/png;base64,") for s in sources) and len(set(sources)) == 3
    assert fig.data[0].source == sources[0]
    json.loads(fig.to_json())  # serialisable for st.plotly_chart
    with pytest.raises(ValueError):
        animation_figure(frames, ["a"])


def test_trajectory_recorder_keeps_every_kth_step_and_the_last():
    rec = TrajectoryRecorder(num_steps=7, every=3, ncols=2, upscale=1)
    ts = [250, 200, 150, 100, 50, 0, -1]
    for i, t in enumerate(ts):
        x = torch.full((2, 1, 4, 4), -1.0 + i / 3)
        rec(i, t, x, -x)
    assert rec.labels == ["step 3/7 · t = 150", "step 6/7 · t = 0", "step 7/7 · clean"]
    assert len(rec.x_frames) == len(rec.x0_frames) == 3
    assert rec.x_frames[0].shape == (2 + 4 + 2, 2 + 2 * (4 + 2), 3)
    # step 3 recorded x = −1 + 2/3 = −1/3 → pixel round(255 · 1/3) = 85; x̂0 = −x = 1/3 → round(255 · 2/3) = 170
    assert rec.x_frames[0][3, 3, 0] == 85 and rec.x0_frames[0][3, 3, 0] == 170
    with pytest.raises(ValueError):
        TrajectoryRecorder(5, 0, 1)


STREAMLIT_TOOLBAR_PX = 48  # the chart toolbar's height over a figure's top edge, measured in Chromium at 390 × 844


def test_no_chart_puts_a_title_where_the_toolbar_sits():
    """Issue 27 item 10: on a phone the chart toolbar covered the loss charts' titles (40 px top margin while the
    schedule chart had 60). One rule for every chart with text above its plot (``margins``): the top margin clears the
    toolbar. A chart with nothing above its plot keeps a thin margin."""
    from lib.media.plots import (band_response_figure, error_maps_figure, estimate_psnr_figure,
                                 loss_comparison_figure, resampling_figure)

    titled = {
        "loss": loss_figure([0.5, 0.4, 0.3]),
        "comparison": loss_comparison_figure({"a": [0.5, 0.4], "b": [0.6, 0.3]}),
        "schedule": schedule_figure(linear_schedule(300, 1e-4, 0.02)),
        "psnr": estimate_psnr_figure([(1, 200, 10.0), (2, 100, 12.0)], {"one-step": 11.0}),
        "sweep": sweep_figure([0.0, 0.5], [0.01, 0.02], 0.5),
        "errors": error_maps_figure([np.zeros((4, 4)), np.ones((4, 4))], ["a", "b"], 1.0),
        "bands": band_response_figure([0.0, 0.5], [[1.0, 0.0], [0.0, 1.0]], ["low", "high"]),
    }
    for name, fig in titled.items():
        assert fig.layout.margin.t >= STREAMLIT_TOOLBAR_PX, (name, fig.layout.margin.t)
    assert resampling_figure([3, 2, 1]).layout.margin.t < STREAMLIT_TOOLBAR_PX  # nothing above its plot


def test_the_error_maps_colour_scale_holds_no_streamlit_placeholder_colour():
    """Streamlit's front end replaces #000001 – #0000NN in a figure by theme colours: Inferno's black end (#000004)
    was drawn violet on 1.4's heat maps. The scale is written in rgb() and still runs from black to Inferno's yellow."""
    from lib.media.plots import error_maps_figure

    stops = error_maps_figure([np.zeros((4, 4))], ["a"], 1.0).layout.coloraxis.colorscale
    colours = [colour for _, colour in stops]
    assert not any(c.lower().startswith("#0000") for c in colours)
    assert colours[0] == "rgb(0, 0, 4)" and colours[-1] == "rgb(252, 255, 164)"
    assert [p for p, _ in stops] == sorted(p for p, _ in stops) and stops[0][0] == 0 and stops[-1][0] == 1
