"""The whole assignment in one run: every deliverable of parts A and B, in the assignment's order, on the sidebar's
backend, under one progress bar, as ``lib.media.report`` deliverables and one self-contained HTML file.

Each section's module (``ui.sections.<slug>``) lists its ``REPORT`` pieces, which call the section's own cached
computations with the section's own defaults — so a result already on a page, or in an earlier report, is a cache
hit here and the other way round. Each piece runs on its own: a failure (a prompt the model cannot take, a GPU out of
memory, a model server that stopped answering) becomes its deliverables' message, and the report goes on.
"""

from __future__ import annotations

import datetime
import importlib
import time
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import streamlit as st
import torch
from PIL import Image

from lib.media import report
from lib.media.costs import CountingDenoiser
from lib.media.report import Deliverable
from ui import layout
from ui.backend import DEFAULT_SEED, Backend
from ui.common import counted, device_label
from ui.part_a import Picked, default_image
from ui.report_kit import Context, Piece, ReportProgress, failure_text
from ui.sections import SECTIONS


@dataclass
class Report:
    sections: list[Deliverable]
    about: dict[str, object]
    html: str
    backend_key: str
    calls: int
    seconds: float


def _units(piece: Piece, c: Context) -> int:
    try:
        return max(1, int(piece.units(c)))
    except Exception:  # the piece itself will say what is wrong
        return 1


def pieces() -> list[Piece]:
    """Every section's report pieces, in the registry's order (the assignment's)."""
    return [piece for section in SECTIONS if section.slug != "whole_assignment"
            for piece in importlib.import_module(f"ui.sections.{section.slug}").REPORT]


def build(backend: Backend, own: list[Picked] | None = None, seed: int = DEFAULT_SEED) -> Report:
    """Run every piece in the assignment's order under one progress bar; returns the deliverables and the HTML. With
    the default seed every piece is the one its page shows when opened (and shares its cache entry)."""
    raw = getattr(backend.denoiser, "_den", backend.denoiser)  # unguarded: a failure is this section's, not the page's
    start = time.perf_counter()
    c = Context(backend, CountingDenoiser(raw), None, default_image(backend), list(own or []), seed)
    todo = pieces()
    units = [_units(p, c) for p in todo]
    c.progress = ReportProgress(sum(units))
    sections, calls = [], 0
    for piece, share in zip(todo, units):
        c.progress.begin(piece.label, share)
        c.den = CountingDenoiser(raw)
        t0 = time.perf_counter()
        try:
            made, cost = piece.make(c)
        except Exception as err:  # noqa: BLE001 — reported in the section; st.stop/rerun are BaseExceptions
            made, cost = [h.failed(failure_text(err)) for h in piece.headings], None
        seconds = time.perf_counter() - t0
        calls += c.den.cost.calls
        for section in made:
            if not section.problem:
                section.cost = report.cost_text(cost, c.den.cost.calls, seconds)
        sections += made
        c.progress.end()
    total = time.perf_counter() - start
    c.progress.complete(f"Done: {len(sections)} sections in {total:.1f} s, "
                        f"{counted(calls, 'UNet call')} now")
    about = {
        "model": f"{raw.name} ({backend.family}" + (f", {backend.variant})" if backend.variant else ")"),
        "device": device_label(),
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "cost of this run": f"{counted(calls, 'UNet call')}, {total:.1f} s (cached sections cost nothing now)",
        "defaults": f"every page's default settings: seed {c.seed}, stride {c.stride}, γ {c.d.guidance:g}",
    }
    html = report.report_html("Fun with Diffusion Models — the whole assignment", about, sections)
    return Report(sections, about, html, backend.key, calls, total)


def show(result: Report) -> None:
    """The report on the page: one block per section, in order, with its settings, pictures, cost or problem."""
    for section in result.sections:
        st.subheader(f"{section.number} · {section.title}")
        if section.text:
            st.markdown(section.text)
        if section.settings:
            st.caption(" · ".join(f"{k}: {v}" for k, v in section.settings.items()))
        if section.problem:
            st.warning(section.problem)
        pictures = [f for f in section.figures if f.mime != "image/svg+xml"]
        for col, figure in zip(layout.columns(len(pictures)) if pictures else [], pictures):
            if figure.mime == "image/png":
                layout.image(np.asarray(Image.open(BytesIO(figure.data)).convert("RGB")), figure.caption, col)
            else:
                col.image(figure.data, caption=figure.caption)
        for figure in section.figures:
            if figure.mime == "image/svg+xml":
                st.html(figure.data.decode())
        if section.cost:
            st.caption(f"Cost: {section.cost}")
