"""What every page shares on screen, whatever it shows: styles that keep the app readable on a phone, and the
presentation mode that enlarges images and text for a lecture-hall projector.

``frame()`` runs once per script run, in the router (Home.py) before the page itself. Pages draw their images through
``image()`` and lay a row of results out with ``columns()``; both adapt to presentation mode. Every download button
is ``download()`` (or ``download_png()``): it hands over its bytes without rerunning the page.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import streamlit as st

from lib.media.images import png_bytes

PRESENTATION_KEY = "presentation"  # the switch's key, and its query parameter in the URL
PRESENTATION_SCALE = 2  # images twice as wide: a 28-px digit shown at 84 px becomes 168 px
PRESENTATION_FONT = "125%"  # Streamlit sizes text in rem, so the root font size scales all of it
PRESENTATION_COLUMNS = 2  # results side by side: twice-as-large images need the room

# Always on. Formulas (``show_formula``): centred, spaced like display math, and one still wider than the screen (a
# long unbreakable stretch) scrolls sideways instead of being cut off. Phones: the labels of the
# contents and of the sidebar's page list wrap instead of ending in an ellipsis. Images: shown upscaled, a 28-px digit
# stays sharp blocks, not a blur; and never wider than their column. Streamlit documents that a width in pixels is
# capped at the container's, but (1.67) it caps the <img> at its own wrapper, which takes the full width: a strip
# enlarged for a projector ran off the page or under the next column's. Text fields: "Press Enter to apply" stands
# under the field, not over the end of a long seed or prompt being typed. Downloads: while a run is under way the
# buttons it has not reached yet still show the previous run's (faded: Streamlit marks them data-stale); a click on one
# handed over the previous result, or a file Streamlit had dropped already, so a stale one takes no clicks.
BASE_CSS = """
[class*="st-key-formula_"] p { text-align: center; margin: 0.5em 0; overflow-x: auto; overflow-y: hidden; }
[data-testid="stPageLink"] p, [data-testid="stPageLink-NavLink"] span, [data-testid="stSidebarNav"] .stMarkdownEllipsis,
[data-testid="stSidebarNav"] .stMarkdownEllipsis p { white-space: normal; overflow: visible; text-overflow: clip; }
[data-testid="stImage"] img, [data-testid="stImageContainer"] img { image-rendering: pixelated; }
[data-testid="stImageContainer"] { max-width: 100%; }
[data-testid="stTextInput"] [data-testid="InputInstructions"] { top: 2px; bottom: auto; }
[data-stale="true"] [data-testid="stDownloadButton"] button { pointer-events: none; }
"""
PRESENTATION_CSS = f"html {{ font-size: {PRESENTATION_FONT}; }}"

# Phones: the sidebar covers the page, and Streamlit leaves it open after a page is chosen in it. Close it on such a
# tap (Streamlit's own collapse button, so its state stays consistent) where the window is phone-narrow.
PHONE_MAX_WIDTH_PX = 768  # Streamlit's breakpoint below which the sidebar overlays the page
CLOSE_SIDEBAR_JS = f"""
<script>
if (!window.__diffusionLabCloseSidebar) {{
  window.__diffusionLabCloseSidebar = true;
  document.addEventListener("click", (event) => {{
    if (window.innerWidth > {PHONE_MAX_WIDTH_PX} || !event.target.closest('[data-testid="stSidebarNav"] a')) return;
    setTimeout(() => document.querySelector(
      '[data-testid="stSidebarCollapseButton"] button, button[data-testid="stSidebarCollapseButton"]')?.click(), 0);
  }}, true);
}}
</script>
"""


def frame() -> None:
    """The styles, the phone fix and the sidebar's presentation switch (call once per run, before the page).

    The switch is bound to the URL (``?presentation=true``): it survives page switches and reloads, and an instructor
    can bookmark it."""
    st.sidebar.toggle("Presentation mode", key=PRESENTATION_KEY, bind="query-params",
                      help="For a projector: images twice as large and larger text, on every page.")
    css = BASE_CSS + (PRESENTATION_CSS if presentation() else "")
    st.html(f"<style>{css}</style>")
    st.html(CLOSE_SIDEBAR_JS, unsafe_allow_javascript=True)


def section_header(slug: str, formula: str | list[str], explanation: str) -> None:
    """A section page's browser-tab title and heading (the registry's, ``ui.sections``), the formula it implements
    (LaTeX, one line per entry) and what it means in plain words."""
    from ui.sections import BY_SLUG

    title = BY_SLUG[slug].page_title
    st.set_page_config(page_title=f"{title} · Diffusion Lab", layout="wide")
    st.title(title)
    for line in [formula] if isinstance(formula, str) else formula:
        show_formula(line)
    if explanation:
        st.markdown(explanation)


FORMULA_MARKDOWN = "$\\displaystyle {}$"  # display-sized inline math (``show_formula``)


TEXT_RUN = re.compile(r"\\text\{([^{}]*)\}")  # a \text{…} without nested braces


def breakable(latex: str) -> str:
    """``latex`` with each space inside a ``\\text{…}`` made a place where KaTeX may break the line: the run split
    into one ``\\text`` per word, joined by ``\\allowbreak\\ `` (a \\text run is one unbreakable box, which left
    a phone a worded formula cut at the screen's edge)."""
    return TEXT_RUN.sub(lambda m: r"\allowbreak\ ".join(rf"\text{{{word}}}" for word in m.group(1).split(" ")), latex)


def show_formula(latex: str, container=st) -> None:
    """A formula, display-sized and centred, that wraps on a narrow screen: KaTeX breaks inline math after a
    top-level relation or operator (=, ⟺, +, ∼) and between the words of a ``\\text`` (``breakable``), display math
    never — ``st.latex`` left a phone a formula cut at the screen's edge. Its container's key (``formula_…``) is what
    ``BASE_CSS`` centres."""
    key = f"formula_{zlib.crc32(latex.encode()):08x}"
    container.container(key=key).markdown(FORMULA_MARKDOWN.format(breakable(latex)))


def presentation() -> bool:
    return bool(st.session_state.get(PRESENTATION_KEY, False))


def columns(n: int) -> list:
    """``n`` side-by-side containers for a row of results: ``st.columns(n)``, or in presentation mode rows of
    ``PRESENTATION_COLUMNS`` (five 175-px images in a row cannot double in size on one screen width)."""
    per_row = PRESENTATION_COLUMNS if presentation() else n
    return [col for start in range(0, n, per_row) for col in st.columns(per_row)[: n - start]]


def image(picture: np.ndarray, caption: str | None = None, container=st) -> None:
    """``container.image`` at the picture's own size, or ``PRESENTATION_SCALE`` times it in presentation mode (never
    wider than the column: ``BASE_CSS`` caps it at its container's width). The width is always given: without it
    Streamlit stretches the <img> to its wrapper, which a caption longer than the picture widens, so a row's images
    would differ in size with their captions."""
    scale = PRESENTATION_SCALE if presentation() else 1
    container.image(picture, caption=caption, width=int(picture.shape[1]) * scale)


def download(label: str, data: bytes | str, file_name: str, mime: str, key: str | None = None, container=st) -> None:
    """A download button that does not rerun the page (``on_click="ignore"``). A rerun would recompute or refetch what
    the page shows only to hand over bytes it already has, and it unregisters the file until the run registers it
    again: Streamlit (1.67) deletes an unregistered download at the second clean-up after any session's run, so under a
    class's load the browser's request for the file could come too late."""
    container.download_button(label, data, file_name=file_name, mime=mime, key=key, on_click="ignore")


def download_png(picture: np.ndarray, file_name: str, label: str = "Download PNG", key: str | None = None,
                 container=st) -> None:
    download(label, png_bytes(picture), file_name, "image/png", key, container)
