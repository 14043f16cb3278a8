"""The whole assignment in one run: every deliverable of parts A and B that the session's edition teaches, in the
assignment's order, on the sidebar's backend, under one progress bar, as ``lib.media.report`` deliverables and one
self-contained HTML file named after the edition.

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
from lib.media.costs import CountingNoiseModel
from lib.media.report import Deliverable
from ui import layout
from ui.backend import DEFAULT_SEED, Backend
from ui.common import counted, device_label
from ui.flow_backend import FlowBackend
from ui.part_a import Picked, default_image
from ui.report_kit import Context, Piece, ReportProgress, failure_text
from ui.sections import DEFAULT_EDITION, EDITIONS, PARTS, in_part


@dataclass
class Report:
    sections: list[Deliverable]
    about: dict[str, object]
    html: str
    cache_id: str
    calls: int
    seconds: float


def _units(piece: Piece, c: Context) -> int:
    try:
        return max(1, int(piece.units(c)))
    except Exception:  # the piece itself will say what is wrong
        return 1


REPORT_PART = "report"  # the part of PARTS that is this report itself, not a section of it


def pieces(edition: str = DEFAULT_EDITION) -> list[Piece]:
    """The report pieces of every section an edition teaches, part by part in the registry's order (the
    assignment's)."""
    return [piece for part in PARTS if part != REPORT_PART for section in in_part(part, edition)
            for piece in importlib.import_module(f"ui.sections.{section.slug}").REPORT]


def title(edition: str) -> str:
    """The report's title, naming the edition."""
    return f"Fun with Diffusion Models — the whole assignment, {EDITIONS[edition].name}"


def file_name(edition: str, family: str) -> str:
    """"diffusion_assignment_flow_mnist.html": the download's name, with the edition and the family of model."""
    return f"diffusion_assignment_{edition}_{family}.html"


def build(backend: Backend, own: list[Picked] | None = None, seed: int = DEFAULT_SEED,
          edition: str = DEFAULT_EDITION, flow: FlowBackend | None = None) -> Report:
    """Run the edition's pieces in the assignment's order under one progress bar; returns the deliverables and the
    HTML. With the default seed every piece is the one its page shows when opened (and shares its cache entry). The
    flow edition's part A runs on ``flow`` (the sidebar's flow model; None: the MNIST flow model)."""
    raw = getattr(backend.model, "_den", backend.model)  # unguarded: a failure is this section's, not the page's
    start = time.perf_counter()
    c = Context(backend, CountingNoiseModel(raw), None, default_image(backend), list(own or []), seed, edition, flow)
    todo = pieces(edition)
    units = [_units(p, c) for p in todo]
    c.progress = ReportProgress(sum(units))
    sections, calls = [], 0
    for piece, share in zip(todo, units):
        c.progress.begin(piece.label, share)
        c.den = CountingNoiseModel(raw)
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
        "edition": EDITIONS[edition].name,
        **({"part A": EDITIONS[edition].part_a} if EDITIONS[edition].part_a else {}),
        "model": f"{raw.name} ({backend.family}" + (f", {backend.variant})" if backend.variant else ")"),
        **({"flow model (part A)": f"{flow.model.name}, {flow.origin}"} if flow else {}),
        "device": device_label(),
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "cost of this run": f"{counted(calls, 'UNet call')}, {total:.1f} s (cached sections cost nothing now)",
        "defaults": f"every page's default settings: seed {c.seed}, stride {c.stride}, γ {c.d.guidance:g}",
    }
    html = report.report_html(title(edition), about, sections)
    return Report(sections, about, html, backend.cache_id, calls, total)


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
