"""The whole assignment as one self-contained HTML file: every deliverable of parts A and B in the assignment's order,
its pictures embedded as data URIs, its settings and seeds listed, its loss curves drawn as inline SVG.

One file that opens offline, with no script and no outside address, so that a self-paced student can compare it with
their own notebook and an instructor can project it as the answer key. Pure functions without Streamlit:
``ui.whole_assignment`` computes the pieces (through the pages' own caches) and hands them here as ``Deliverable``s.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from lib.media.costs import Cost
from lib.media.images import png_bytes
from lib.media.plots import log_ticks

@dataclass(frozen=True)
class Figure:
    """One picture of a section: PNG or GIF bytes (embedded as a data URI) or an SVG document (inlined)."""

    caption: str
    data: bytes
    mime: str  # "image/png" | "image/gif" | "image/svg+xml"


@dataclass
class Deliverable:
    """One deliverable of the assignment's checklist: its number and title, what produced it (``settings``, seeds
    included), its pictures, its cost, and — where it could not be made — ``problem``, the reason in one sentence (the
    other deliverables are unaffected)."""

    key: str  # unique in a report: its HTML anchor
    number: str  # the assignment's own number, "1.7.2"
    title: str
    settings: dict[str, object] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    text: str = ""  # what to look for, in a sentence or two
    cost: str = ""
    problem: str = ""


def png_figure(picture: np.ndarray, caption: str) -> Figure:
    """A uint8 picture (H, W[, 3]) as a PNG figure."""
    return Figure(caption, png_bytes(picture), "image/png")


def gif_figure(data: bytes, caption: str) -> Figure:
    return Figure(caption, data, "image/gif")


def picture_size(figure: Figure) -> tuple[int, int]:
    """(width, height) in pixels of a PNG or GIF figure, read from its bytes."""
    with Image.open(io.BytesIO(figure.data)) as image:
        return image.size


def cost_text(cost: Cost | None, calls_now: int, seconds_now: float) -> str:
    """What a section cost: the UNet calls and seconds of this run, or — when nothing ran because the pages' cache
    already held it — "From the cache" and what computing it cost then (``cost``, from ``lib.media.costs``)."""
    if calls_now == 0 and cost is not None and cost.calls:
        return (f"From the cache (no model call now); computing it took {cost.calls:,} UNet calls, "
                f"{cost.rows:,} rows, {cost.seconds:.1f} s")
    if calls_now == 0:
        return f"No model call; {seconds_now:.1f} s"
    return f"{calls_now:,} UNet calls now, {seconds_now:.1f} s"


# --- loss curves -----------------------------------------------------------------------------------------------------

def binned_means(values: Sequence[float], max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): ``values`` averaged over consecutive bins so that at most ``max_points`` remain; x is each bin's
    middle step (1-based). A 9,380-step loss curve becomes a few hundred points and stays readable (and small)."""
    y = np.asarray(values, dtype=float)
    n = len(y)
    bins = max(1, math.ceil(n / max_points))
    usable = n // bins * bins
    means = y[:usable].reshape(-1, bins).mean(axis=1)
    xs = np.arange(len(means)) * bins + (bins + 1) / 2
    if usable < n:  # the last, shorter bin
        means, xs = np.append(means, y[usable:].mean()), np.append(xs, (usable + 1 + n) / 2)
    return xs, means


SVG_TEXT_PX = 14  # the report's figure captions: 85 % (STYLE's figcaption) of the browser's 16 px


def loss_curve_svg(losses: Sequence[float], *, steps_per_epoch: int | None = None, width: int = 560,
                   height: int = 250, max_points: int = 400) -> str:
    """The training loss against the optimiser step as a small SVG polyline on a log-scale y axis (grid lines at the
    loss plots' ticks, ``lib.media.plots.log_ticks``, labelled; the axis runs from the first to the last), with faint
    lines at the epoch boundaries: an offline picture of a few kilobytes. Its text is as large as the report's figure
    captions (``SVG_TEXT_PX``); the axis title has a line of its own under the step labels."""
    xs, ys = binned_means(losses, max_points)
    ys = np.maximum(ys, 1e-12)
    left, right, top, bottom = 64, 10, 10, 2 * SVG_TEXT_PX + 20
    w, h = width - left - right, height - top - bottom
    ticks, labels = log_ticks(float(ys.min()), float(ys.max()))
    lo, hi = math.log10(ticks[0]), math.log10(ticks[-1])
    if hi == lo:  # one value: half a decade either side of it
        lo, hi = lo - 0.5, hi + 0.5
    n = max(len(losses), 2)

    def px(step: float) -> float:
        return left + w * (step - 1) / (n - 1)

    def py(value: float) -> float:
        return top + h * (hi - math.log10(value)) / (hi - lo)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'style="max-width: 100%; height: auto" font-family="sans-serif" '
             f'font-size="{SVG_TEXT_PX}">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fff" stroke="#999"/>']
    for tick, label in zip(ticks, labels):
        y = py(tick)
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    if steps_per_epoch:
        for boundary in range(steps_per_epoch, len(losses), steps_per_epoch):
            x = px(boundary)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + h}" stroke="#eee"/>')
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    parts.append(f'<polyline fill="none" stroke="#1f4e9c" stroke-width="1.5" points="{points}"/>')
    steps_y = top + h + SVG_TEXT_PX + 4
    parts.append(f'<text x="{left}" y="{steps_y}">step 1</text>'
                 f'<text x="{left + w}" y="{steps_y}" text-anchor="end">step {len(losses):,}</text>'
                 f'<text x="{left + w / 2:.0f}" y="{height - 6}" text-anchor="middle">loss (log scale) against '
                 f'optimiser step{"; faint lines: epochs" if steps_per_epoch else ""}</text></svg>')
    return "".join(parts)


def svg_figure(svg: str, caption: str) -> Figure:
    return Figure(caption, svg.encode(), "image/svg+xml")


# --- the HTML --------------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-top: 1px solid #ccc; padding-top: 0.8em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 2px 8px;
text-align: left; vertical-align: top; font-size: 90%; }
figure { display: inline-block; margin: 0.4em 1em 0.4em 0; vertical-align: top; }
figcaption { font-size: 85%; color: #444; max-width: 36em; }
img { image-rendering: pixelated; }
.problem { background: #fff3f0; border-left: 4px solid #c92a2a; padding: 0.4em 0.8em; }
.cost { font-size: 85%; color: #555; }
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure_html(figure: Figure) -> str:
    """An inline SVG, or an <img> with its data URI and its own pixel size (so the page lays out before decoding)."""
    caption = f"<figcaption>{html.escape(figure.caption)}</figcaption>" if figure.caption else ""
    if figure.mime == "image/svg+xml":
        return f"<figure>{figure.data.decode()}{caption}</figure>"
    width, height = picture_size(figure)
    return (f'<figure><img src="{data_uri(figure.data, figure.mime)}" width="{width}" height="{height}" '
            f'alt="{html.escape(figure.caption, quote=True)}">{caption}</figure>')


def settings_html(settings: dict[str, object]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in settings.items())
    return f'<table class="settings">{rows}</table>' if rows else ""


def section_html(section: Deliverable) -> str:
    out = [f'<section id="{html.escape(section.key, quote=True)}">',
           f"<h2>{html.escape(section.number)} · {html.escape(section.title)}</h2>"]
    if section.text:
        out.append(f"<p>{html.escape(section.text)}</p>")
    out.append(settings_html(section.settings))
    if section.problem:
        out.append(f'<p class="problem">{html.escape(section.problem)}</p>')
    out += [figure_html(f) for f in section.figures]
    if section.cost:
        out.append(f'<p class="cost">Cost: {html.escape(section.cost)}</p>')
    out.append("</section>")
    return "\n".join(out)


def report_html(title: str, about: dict[str, object], sections: Sequence[Deliverable]) -> str:
    """The whole report: a heading, ``about`` (model, date, versions, total cost) as a table, a contents list and
    every deliverable in the order given (the assignment's: ``ui.whole_assignment`` runs them in it). Self-contained:
    styles inline, pictures as data URIs, no script."""
    contents = "".join(f'<li><a href="#{html.escape(s.key, quote=True)}">{html.escape(s.number)} · '
                       f'{html.escape(s.title)}</a>{" — not made" if s.problem else ""}</li>' for s in sections)
    body = "\n".join(section_html(s) for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{settings_html(about)}\n"
            f"<h2>Contents</h2><ol>{contents}</ol>\n{body}\n</body></html>\n")
