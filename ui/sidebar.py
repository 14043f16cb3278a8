"""The sidebar block every page shows under the page list: the compute device and the part-A backend in use."""

from __future__ import annotations

import streamlit as st
import torch

from ui.backend import MNIST_CHOICE, hf_token
from ui.common import device_label


def if_requirements() -> list[str]:
    """What this machine still lacks for DeepFloyd IF, by a quick local check (no network): GPU and token."""
    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (IF stage 1 needs ≈ 10 GB of GPU memory in fp16)")
    if not hf_token():
        missing.append("a Hugging Face token in HF_TOKEN (environment or .streamlit/secrets.toml) of an account that "
                       "accepted the DeepFloyd IF licence")
    return missing


def render_sidebar() -> None:
    """Device, part-A backend (as chosen on the part-A pages, which persist it in session state) and IF readiness."""
    sb = st.sidebar
    sb.markdown(f"**Device:** {device_label()}")
    sb.markdown(f"**Part A backend:** {st.session_state.get('backend', MNIST_CHOICE)}")
    missing = if_requirements()
    if missing:
        sb.caption("DeepFloyd IF needs " + " and ".join(missing) + ".")
    else:
        sb.caption("DeepFloyd IF can be selected on the part-A pages (GPU and token found).")
