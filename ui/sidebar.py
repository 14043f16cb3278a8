"""The sidebar block every page shows under the page list: the compute device and the part-A backend in use."""

from __future__ import annotations

import streamlit as st

from lib.backends.if_hub import local_problems
from ui.backend import MNIST_CHOICE, if_source
from ui.common import device_label


def if_requirements() -> list[str]:
    """What this machine still lacks for DeepFloyd IF (its default variant), by a quick local check (no network): a
    GPU large enough, and a token or the snapshots."""
    return local_problems("IF-I-XL", if_source())


def render_sidebar(if_status: bool = True) -> None:
    """Device, part-A backend (as chosen on the part-A pages, which persist it in session state) and, unless the page
    says it itself (``if_status=False``: Home), IF readiness."""
    sb = st.sidebar
    sb.markdown(f"**Device:** {device_label()}")
    sb.markdown(f"**Part A backend:** {st.session_state.get('backend', MNIST_CHOICE)}")
    if not if_status:
        return
    missing = if_requirements()
    if missing:
        sb.caption("DeepFloyd IF is not ready here: " + " · ".join(missing))
    else:
        sb.caption("DeepFloyd IF can be selected on the part-A pages (GPU and weights' source found).")
