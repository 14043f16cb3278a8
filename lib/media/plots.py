"""Plotly figures of part B: loss curves, the noise schedule, the σ sweep and denoising animations.

Pure functions from numbers (lists, tensors, uint8 pictures) to ``plotly.graph_objects.Figure``; pages only render them.
"""

from __future__ import annotations

import base64
import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lib.media.images import grid, png_bytes
from lib.ddpm.schedules import Schedule

MIN_TICKS_INSIDE = 3  # a log axis labels at least this many values inside its data, however narrow the range
WHOLE_TICKS_BELOW = 10  # an axis of fewer whole numbers than this gets one tick each (plotly would tick halves)
RAW_COLOR = "rgba(59, 91, 219, 0.25)"
SMOOTH_COLOR = "#3b5bdb"
MARK_COLOR = "#e8590c"
TOOLBAR_CLEARANCE = 60  # px of top margin above any text over a chart: Streamlit's chart toolbar (≈ 40 px on a phone)
#                         sits over the top of the figure and would cover a title drawn any higher


def margins(*, text_above: bool) -> dict:
    """The one margin rule of every chart: 10 px on the sides and below; on top ``TOOLBAR_CLEARANCE`` when a title,
    subplot titles, an annotation or a legend stands above the plot (so the toolbar never covers it), else 10 px."""
    return dict(l=10, r=10, t=TOOLBAR_CLEARANCE if text_above else 10, b=10)


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean m_i = mean(v_{i−w+1} … v_i) (over the values seen so far for i < w); same length as ``values``."""
    if window < 1:
        raise ValueError("the moving-average window must be at least 1")
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    csum = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def default_window(num_steps: int) -> int:
    """A smoothing window that shows the trend at any run length: about 2 % of the steps, between 1 and 200."""
    return int(min(200, max(1, num_steps // 50)))


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks for a log axis over data from ``lo`` to ``hi``, labelled as the numbers they are ("0.02", not plotly's bare
    minor digit "2"), with at least ``MIN_TICKS_INSIDE`` of them inside the data's range whatever its width, and one
    beyond it at each end.

    A range over a few factors of 10 gets 1, 2 and 5 × 10^k. A short run's loss may stay within a factor of 2 (0.31 to
    0.45, say), between two of those values, where they would leave the axis unlabelled: it gets evenly spaced ticks
    instead, at the largest step s = 1, 2 or 5 × 10^k that puts ``MIN_TICKS_INSIDE`` of its multiples inside (over so
    narrow a range a log axis is nearly linear), labelled with the decimals s needs."""
    if not 0 < lo <= hi:
        raise ValueError(f"log ticks need 0 < lo <= hi, got {lo}, {hi}")
    if lo == hi:  # one value (a run of one step): its own tick
        return [lo], [f"{lo:.6g}"]
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    values = _enclosing([m * 10.0**k for k in range(k0, k1 + 1) for m in (1, 2, 5)], lo, hi)
    if sum(lo <= v <= hi for v in values) >= MIN_TICKS_INSIDE:
        return values, [f"{v:.6g}" for v in values]
    k = math.floor(math.log10(hi - lo))
    steps = [m * 10.0**e for e in range(k, k - 3, -1) for m in (5, 2, 1)]  # largest first; (hi − lo) / 10 is among
    step = next(s for s in steps if math.floor(hi / s) - math.ceil(lo / s) + 1 >= MIN_TICKS_INSIDE)
    decimals = max(0, -math.floor(math.log10(step)))
    multiples = [round(i * step, decimals) for i in range(math.floor(lo / step), math.ceil(hi / step) + 1)]
    values = _enclosing(multiples, lo, hi)
    return values, [f"{v:.{decimals}f}" for v in values]


def _enclosing(values: list[float], lo: float, hi: float) -> list[float]:
    """The ascending ``values`` inside [lo, hi] and the nearest one beyond each end."""
    below = [v for v in values if v <= lo][-1:]
    above = [v for v in values if v >= hi][:1]
    return list(dict.fromkeys(below + [v for v in values if lo < v < hi] + above))


def whole_number_ticks(fig: go.Figure, xs: Sequence[int]) -> None:
    """An x axis of counts (steps, epochs) ticks each whole number when there are few of them; plotly would tick
    halves (1, 1.5, 2, …; around a single point 299, 299.5, 300, …). Over more values its own spacing is whole."""
    if len(xs) < WHOLE_TICKS_BELOW:
        fig.update_xaxes(tickmode="array", tickvals=[int(x) for x in xs])


def estimate_psnr_figure(curve: Sequence[tuple[int, int, float]], references: dict[str, float],
                         height: int = 280) -> go.Figure:
    """PSNR of the iterative loop's clean estimate x̂₀ at each step i (``curve``: (i, t', PSNR)), with a dashed line
    per reference result (one-step, blur)."""
    steps = [c[0] for c in curve]
    fig = go.Figure(go.Scatter(x=steps, y=[c[2] for c in curve], mode="lines+markers",
                               name="x̂₀ of the iterative loop", text=[f"t' = {c[1]}" for c in curve]))
    for (name, value), dash in zip(references.items(), ("dash", "dot", "dashdot")):
        fig.add_hline(y=value, line=dict(dash=dash), annotation_text=name)
    fig.update_layout(height=height, margin=margins(text_above=True), xaxis_title="step i",
                      yaxis_title="PSNR vs the original (dB)", title="How close the estimate gets, step by step")
    whole_number_ticks(fig, steps)
    return fig


def loss_figure(
    losses: Sequence[float],
    *,
    log_y: bool = False,
    window: int | None = None,
    steps_per_epoch: int | None = None,
    title: str = "Training loss",
    height: int = 340,
) -> go.Figure:
    """The loss per optimiser step (faint) and its moving average (bold); dotted lines mark the ends of epochs. Every
    part-B page shows it on a log axis by default (the loss falls by orders of magnitude), ticks from ``log_ticks``."""
    steps = np.arange(1, len(losses) + 1)
    window = window or default_window(len(losses))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=list(losses), mode="lines", name="loss per step",
                             line=dict(color=RAW_COLOR, width=1)))
    fig.add_trace(go.Scatter(x=steps, y=moving_average(losses, window), mode="lines",
                             name=f"moving average ({window} step{'s' if window > 1 else ''})",
                             line=dict(color=SMOOTH_COLOR, width=2.5)))
    # Epoch boundaries as one list of shapes: one add_vline per epoch costs ~20 ms each (a full layout validation).
    epoch_lines = [
        dict(type="line", xref="x", yref="paper", x0=end, x1=end, y0=0, y1=1,
             line=dict(color="rgba(0,0,0,0.18)", dash="dot", width=1))
        for end in (range(steps_per_epoch, len(losses) + 1, steps_per_epoch) if steps_per_epoch else ())
    ]
    fig.update_layout(shapes=epoch_lines, title=title, height=height, margin=margins(text_above=True), hovermode="x",
                      legend=dict(orientation="h", y=-0.2), xaxis_title="optimiser step",
                      yaxis_title="MSE loss" + (" (log scale)" if log_y else ""))
    fig.update_yaxes(type="log" if log_y else "linear")
    whole_number_ticks(fig, steps)
    positive = [v for v in losses if v > 0]
    if log_y and positive:
        values, labels = log_ticks(min(positive), max(positive))
        fig.update_yaxes(tickmode="array", tickvals=values, ticktext=labels)
    return fig


SCHEDULE_TERMS = "ᾱ_t = ∏ (1 − β_s) for s ≤ t; SNR_t = ᾱ_t / (1 − ᾱ_t), on a log scale."


COMPARISON_COLORS = (SMOOTH_COLOR, MARK_COLOR)


def loss_comparison_figure(curves: dict[str, Sequence[float]], *, log_y: bool = True, window: int | None = None,
                           title: str = "Training loss", height: int = 340) -> go.Figure:
    """Several runs' losses on one chart: each run's moving average (bold) over its optimiser steps, its loss per step
    faint behind it; the window is ``loss_figure``'s for the longest run."""
    window = window or default_window(max(len(v) for v in curves.values()))
    fig = go.Figure()
    for i, (name, losses) in enumerate(curves.items()):
        color = COMPARISON_COLORS[i % len(COMPARISON_COLORS)]
        steps = np.arange(1, len(losses) + 1)
        fig.add_trace(go.Scatter(x=steps, y=list(losses), mode="lines", name=f"{name}: per step", opacity=0.2,
                                 line=dict(color=color, width=1), showlegend=False))
        fig.add_trace(go.Scatter(x=steps, y=moving_average(losses, window), mode="lines",
                                 name=f"{name} (moving average of {window})", line=dict(color=color, width=2.5)))
    fig.update_layout(title=title, height=height, margin=margins(text_above=True), hovermode="x",
                      legend=dict(orientation="h", y=-0.2), xaxis_title="optimiser step",
                      yaxis_title="MSE loss" + (" (log scale)" if log_y else ""))
    fig.update_yaxes(type="log" if log_y else "linear")
    positive = [v for losses in curves.values() for v in losses if v > 0]
    if log_y and positive:
        values, labels = log_ticks(min(positive), max(positive))
        fig.update_yaxes(tickmode="array", tickvals=values, ticktext=labels)
    return fig


def schedule_figure(schedule: Schedule, height: int = 300) -> go.Figure:
    """β_t, ᾱ_t and the signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) (log scale) against t, side by side. The titles are the
    bare symbols, so three fit side by side on a phone; what they mean is ``SCHEDULE_TERMS``, for the caption. The top
    margin holds the chart toolbar above the titles, not over them."""
    t = np.arange(schedule.num_timesteps)
    fig = make_subplots(rows=1, cols=3, subplot_titles=("β<sub>t</sub>", "ᾱ<sub>t</sub>", "SNR<sub>t</sub>"))
    curves = (schedule.betas, schedule.alphas_cumprod, schedule.snr())
    for col, (name, y) in enumerate(zip(("β_t", "ᾱ_t", "SNR"), curves), start=1):
        fig.add_trace(go.Scatter(x=t, y=y.numpy(), mode="lines", name=name, line=dict(color=SMOOTH_COLOR)),
                      row=1, col=col)
        fig.update_xaxes(title_text="t", row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=height, showlegend=False, margin=margins(text_above=True))
    return fig


def resampling_figure(call_timesteps: Sequence[int], height: int = 260) -> go.Figure:
    """RePaint's time schedule: the timestep t the model sees at each model call (A5). A plain descent is one falling
    line; each jump back shows as a rise of ``jump_length`` steps."""
    calls = np.arange(1, len(call_timesteps) + 1)
    fig = go.Figure(go.Scatter(x=calls, y=list(call_timesteps), mode="lines+markers", name="t",
                               line=dict(color=SMOOTH_COLOR), marker=dict(size=4)))
    fig.update_layout(height=height, margin=margins(text_above=False), xaxis_title="model call",
                      yaxis_title="timestep t", showlegend=False)
    return fig


def sweep_figure(sigmas: Sequence[float], errors: Sequence[float], train_sigma: float, height: int = 300) -> go.Figure:
    """Mean squared error of the denoised digits against the noise level σ, with the training σ marked."""
    fig = go.Figure(go.Scatter(x=list(sigmas), y=list(errors), mode="lines+markers", name="MSE",
                               line=dict(color=SMOOTH_COLOR)))
    fig.add_vline(x=train_sigma, line=dict(color=MARK_COLOR, dash="dash"),
                  annotation_text=f"trained at σ = {train_sigma:g}", annotation_position="top left")
    fig.update_layout(height=height, margin=margins(text_above=True), xaxis_title="σ of the test noise",
                      yaxis_title="MSE ‖D(x + σε) − x‖² per pixel")
    return fig


OBJECTIVE_COLORS = ("#3b5bdb", "#e8590c")  # the DDPM, the flow model


def nfe_quality_figure(curves: dict[str, tuple[Sequence[int], Sequence[float], Sequence[float]]],
                       real: tuple[float, float], height: int = 360) -> go.Figure:
    """Sample quality against the number of network evaluations (log axis), one colour per objective: the share read
    as the asked digit (solid) and the share read confidently (dotted), from ``curves`` = {name: (NFE, agrees,
    confident)}; the same two shares of real test digits (``real``: agrees, confident) as grey lines."""
    fig = go.Figure()
    for (name, (nfe, agrees, confident)), color in zip(curves.items(), OBJECTIVE_COLORS):
        fig.add_trace(go.Scatter(x=list(nfe), y=[100 * a for a in agrees], mode="lines+markers",
                                 name=f"{name}: read as the asked digit", line=dict(color=color, width=2.5)))
        fig.add_trace(go.Scatter(x=list(nfe), y=[100 * c for c in confident], mode="lines+markers",
                                 name=f"{name}: read confidently", line=dict(color=color, dash="dot")))
    for value, what, dash in ((real[0], "read correctly", "dash"), (real[1], "read confidently", "dot")):
        fig.add_hline(y=100 * value, line=dict(color="grey", dash=dash), annotation_text=f"real test digits {what}",
                      annotation_position="bottom right")
    ticks = sorted({int(k) for nfe, _, _ in curves.values() for k in nfe})
    fig.update_xaxes(type="log", tickmode="array", tickvals=ticks, title_text="network evaluations (NFE, log scale)")
    fig.update_yaxes(range=[0, 102], title_text="% of samples")
    fig.update_layout(height=height, margin=margins(text_above=False), legend=dict(orientation="h", y=-0.25))
    return fig


def digit_shares_figure(shares: dict[str, Sequence[float]], height: int = 300) -> go.Figure:
    """How often each digit 0–9 is drawn, one group of bars per digit and one bar per source (``shares`` = {name: ten
    shares summing to 1}, e.g. two models' samples as a classifier reads them and the training set's labels)."""
    fig = go.Figure([go.Bar(x=list(range(10)), y=[100 * v for v in values], name=name)
                     for name, values in shares.items()])
    fig.update_xaxes(tickmode="array", tickvals=list(range(10)), title_text="digit")
    fig.update_yaxes(title_text="% of the images", rangemode="tozero")
    fig.update_layout(barmode="group", height=height, margin=margins(text_above=False),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def path_distance_figure(curves: dict[str, tuple[Sequence[float], Sequence[float]]], height: int = 300) -> go.Figure:
    """Each objective's distance from its current state to its final sample, relative to where it started, against the
    share of the evaluations spent (``curves`` = {name: (fractions, distances)}), beside the straight path walked at
    constant speed, 1 − fraction (dashed)."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0], mode="lines", name="straight line at constant speed",
                               line=dict(color="grey", dash="dash")))
    for (name, (fractions, distances)), color in zip(curves.items(), OBJECTIVE_COLORS):
        fig.add_trace(go.Scatter(x=list(fractions), y=list(distances), mode="lines+markers", name=name,
                                 line=dict(color=color), marker=dict(size=4)))
    fig.update_layout(height=height, margin=margins(text_above=False), legend=dict(orientation="h", y=-0.3),
                      xaxis_title="share of the network evaluations spent",
                      yaxis_title="‖x − x<sub>final</sub>‖ / ‖x<sub>start</sub> − x<sub>final</sub>‖")
    return fig


def _data_uri(picture: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(picture)).decode("ascii")


def animation_figure(frames: Sequence[np.ndarray], labels: Sequence[str], frame_ms: int = 150) -> go.Figure:
    """A play/pause animation with a scrubber over uint8 pictures (H, W, 3), one labelled slider step per frame."""
    if len(frames) == 0 or len(frames) != len(labels):
        raise ValueError("need one label per frame and at least one frame")
    h, w = frames[0].shape[:2]
    uris = [_data_uri(f) for f in frames]
    fig = go.Figure(data=[go.Image(source=uris[0], hoverinfo="skip")],
                    frames=[go.Frame(data=[go.Image(source=u, hoverinfo="skip")], name=str(name))
                            for u, name in zip(uris, labels)])
    play = dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True, transition=dict(duration=0))
    stop = dict(frame=dict(duration=0, redraw=False), mode="immediate", transition=dict(duration=0))
    fig.update_layout(
        height=h + 150, width=max(w, 720), margin=dict(l=0, r=0, t=50, b=10),
        xaxis=dict(visible=False, range=[-0.5, w - 0.5]), yaxis=dict(visible=False, range=[h - 0.5, -0.5]),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=1, xanchor="left", yanchor="bottom",
                          pad=dict(b=8), showactive=False,
                          buttons=[dict(label="▶ play", method="animate", args=[None, play]),
                                   dict(label="❚❚ pause", method="animate", args=[[None], stop])])],
        # the per-step labels would overlap: hide them and show the current frame's label above the slider instead
        sliders=[dict(active=0, x=0, len=1, y=0, yanchor="top", pad=dict(t=10), font=dict(color="rgba(0,0,0,0)"),
                      currentvalue=dict(prefix="", visible=True, font=dict(color="#1f2430", size=14)),
                      steps=[dict(method="animate", label=str(name), args=[[str(name)], stop]) for name in labels])],
    )
    return fig


class TrajectoryRecorder:
    """An ``on_step`` callback keeping every ``every``-th step of a denoising loop (and the last one) as pictures.

    Records both the current image x_t' and the clean-image estimate x̂0 of that step, each tiled with
    ``lib.media.images.grid`` from pixels in ``value_range``; ``labels`` names the frames by step and timestep
    (t' = −1 is the finished image).
    """

    value_range = (-1.0, 1.0)  # the DDPMs' pixels

    def __init__(self, num_steps: int, every: int, ncols: int, upscale: int = 4):
        if every < 1:
            raise ValueError("record at least every step (every ≥ 1)")
        self.num_steps, self.every, self.ncols, self.upscale = num_steps, every, ncols, upscale
        self.x_frames: list[np.ndarray] = []
        self.x0_frames: list[np.ndarray] = []
        self.labels: list[str] = []

    def __call__(self, i: int, t_prev: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        step = i + 1
        if step % self.every and step != self.num_steps:
            return
        self.x_frames.append(grid(x, self.ncols, self.value_range, upscale=self.upscale))
        self.x0_frames.append(grid(x0, self.ncols, self.value_range, upscale=self.upscale))
        self.labels.append(self.label(step, t_prev))

    def label(self, step: int, t_prev: int) -> str:
        return f"step {step}/{self.num_steps} · t = {t_prev}" if t_prev >= 0 else f"step {step}/{self.num_steps} · clean"


class FlowTrajectoryRecorder(TrajectoryRecorder):
    """The same for the Euler loop of ``lib.flow.euler``: its ``on_step(k, t', x_t', x̂₁)`` gives the continuous time
    t' ∈ (0, 1] reached (1 = the image) and the one-step estimate x̂₁ = x_t + (1 − t) v̂; pixels in [0, 1] (the MNIST
    flow models')."""

    value_range = (0.0, 1.0)

    def label(self, step: int, t_prev: float) -> str:
        return f"step {step}/{self.num_steps} · t = {t_prev:.3g}"


BAND_COLORS = ("#3b5bdb", "#2f9e44", "#e8590c")


def band_response_figure(freqs: Sequence[float], responses: Sequence[Sequence[float]], labels: Sequence[str],
                         height: int = 260) -> go.Figure:
    """Factorized diffusion (A7): each filter's response against spatial frequency (cycles per pixel, 0 … 0.5 at
    Nyquist), i.e. how much of each frequency each prompt controls; the responses sum to 1 everywhere."""
    fig = go.Figure([go.Scatter(x=list(freqs), y=[float(r) for r in resp], mode="lines", name=label,
                                line=dict(color=BAND_COLORS[i % len(BAND_COLORS)]))
                     for i, (resp, label) in enumerate(zip(responses, labels))])
    fig.update_layout(height=height, margin=margins(text_above=True), xaxis_title="frequency (cycles per pixel)",
                      yaxis_title="response", legend=dict(orientation="h", y=1.12))
    return fig


def rgb_colorscale(name: str) -> list[list]:
    """Plotly's named colour scale ``name`` as [position, "rgb(r, g, b)"] stops. Streamlit's front end rewrites the
    hex colours #000001 – #0000NN anywhere in a figure into its theme's colours (they are its placeholders, even with
    ``theme=None``), and Inferno and Magma start at #000004: their black end came out violet, so the smallest errors
    looked larger than the middling ones. rgb() strings are never placeholders."""
    from plotly.colors import get_colorscale, hex_to_rgb

    return [[position, "rgb({}, {}, {})".format(*hex_to_rgb(colour)) if colour.startswith("#") else colour]
            for position, colour in get_colorscale(name)]


def error_maps_figure(maps: Sequence[np.ndarray], titles: Sequence[str], zmax: float, height: int = 300) -> go.Figure:
    """Per-pixel error maps (H, W) side by side as linear heat maps on one colour scale [0, ``zmax``] (one colour bar),
    so that the same colour means the same error in every panel; image orientation (row 0 at the top)."""
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=list(titles), horizontal_spacing=0.03)
    for i, m in enumerate(maps):
        fig.add_trace(go.Heatmap(z=np.asarray(m), coloraxis="coloraxis"), row=1, col=i + 1)
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)  # square pixels
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=height, margin=margins(text_above=True),
                      coloraxis=dict(cmin=0.0, cmax=zmax, colorscale=rgb_colorscale("Inferno"), colorbar=dict(title="E<sub>t</sub>")))
    return fig
