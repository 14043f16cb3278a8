"""AppTests of Home and the part-B pages: what they show, that their controls change it, and training from a page.

Most tests run on tiny models (D = 4, a few steps) saved in a temporary "shipped" folder, with 1,024 real MNIST training
digits, so they take seconds; ``test_pages_open_on_the_real_shipped_models`` runs each page on data/models as shipped.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import ui.common
from ui.training.results import GRID_STRIDE
from lib.train import model_store, resume
from lib.train.ema import relative_distance
from lib.train.data import Digits, load_mnist
from lib.train.precision import infer
from lib.train.runs import Job, TrainingJobs, denoiser_probe, run_training
from lib.ddpm.schedules import linear_schedule
from lib.train.precision import resolve
from lib.media.text import spoken_duration
from lib.train.training import SPEC_IMAGES_PER_SECOND, Progress, TrainConfig, cpu_arithmetic
from ui.backend import DEFAULT_SEED
from ui.layout import FORMULA_MARKDOWN, breakable
from ui.sections import PARTS, SECTIONS, in_part, single_step

ROOT = Path(__file__).resolve().parent.parent
HOME = "Home.py"
B1 = "app_pages/single_step.py"
B2 = "app_pages/time_ddpm.py"
B3 = "app_pages/class_ddpm.py"
TINY = dict(hidden=4, epochs=2, batch_size=16, steps_per_epoch=2, snapshot_epochs=(1, 2), sample_stride=50)
SIGMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


def formulas(at) -> list[str]:
    """The LaTeX of the formulas a page shows (``ui.layout.show_formula``), in order, as the page wrote them (the
    words of a \\text joined again: ``breakable`` splits them for the line breaks)."""
    head, tail = FORMULA_MARKDOWN.split("{}")
    return [m.value[len(head):-len(tail)].replace(r"}\allowbreak\ \text{", " ")
            for m in at.markdown if m.value.startswith(head) and m.value.endswith(tail)]


def test_a_worded_formula_may_break_between_its_words_and_reads_as_written():
    """``breakable`` lets KaTeX wrap a \\text run between its words (a phone cut them at its edge, issue #27 walk of
    the flow edition); ``formulas`` reads the page's LaTeX back unchanged."""
    latex = r"x_{t+h} = x_t + h\,v \quad \text{(the last step shortened)}, \text{ } y"
    shown = breakable(latex)
    assert shown.count(r"\allowbreak") == 4 and r"\text{shortened)}" in shown
    assert shown.replace(r"}\allowbreak\ \text{", " ") == latex
    assert breakable(r"\text{one}") == r"\text{one}"


@pytest.fixture(scope="session")
def digits(mnist_root) -> tuple[Digits, Digits]:
    """1,024 real MNIST training digits and the real test split."""
    train, test = load_mnist(True, mnist_root), load_mnist(False, mnist_root)
    assert train.source == "mnist"
    return Digits(train.images[:1024], train.labels[:1024], train.source, train.note), test


@pytest.fixture(scope="session")
def tiny_shipped(tmp_path_factory, digits) -> Path:
    """A shipped-models folder with a tiny trained run of each part-B model."""
    folder = tmp_path_factory.mktemp("shipped")
    for kind in ("denoiser", "time", "class"):
        result = run_training(TrainConfig.spec(kind, **TINY), *digits, device=torch.device("cpu"))
        model_store.save_run(result, folder / f"{kind}.safetensors",
                             {**result.info, "device": "cpu (test)", "data": digits[0].note,
                              "command": f"pytest tiny {kind}"})
    return folder


@pytest.fixture()
def app(monkeypatch, isolated_cache, digits):
    """Fresh process-wide caches, the small MNIST, and an empty model cache."""
    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setattr(ui.common, "mnist", lambda: digits)
    monkeypatch.setattr(ui.common, "mnist", lambda: digits)  # the pages load the digits through ui.common
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture()
def shipped(app, tiny_shipped, monkeypatch) -> Path:
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tiny_shipped)
    return tiny_shipped


@pytest.fixture()
def nothing_shipped(app, tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(model_store, "SHIPPED_DIR", tmp_path / "no_models")
    return tmp_path / "no_models"


def run(target) -> AppTest:
    """Run the app (``target`` is the AppTest or a widget just changed) and check it raised nothing."""
    at = target.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(path: str) -> AppTest:
    return run(AppTest.from_file(str(ROOT / path), default_timeout=120))


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def image_urls(at: AppTest) -> list[str]:
    return [url for img in at.get("image") for url in img.value]


def image_with_caption(at: AppTest, fragment: str, exact: bool = False) -> str:
    urls = [img.value[0] for img in at.get("image")
            if any(fragment == c if exact else fragment in c for c in img.captions)]
    assert len(urls) == 1, f"expected one image captioned {fragment!r}"
    return urls[0]


def image_with_caption_text(at: AppTest, fragment: str) -> str:
    """The whole caption of the one image whose caption contains ``fragment``."""
    found = [c for img in at.get("image") for c in img.captions if fragment in c]
    assert len(found) == 1, found
    return found[0]


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(array) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype": …, "bdata": base64} (how numpy arrays are sent)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def animation(at: AppTest) -> dict:
    (fig,) = [f for f in figures(at) if f.get("frames")]
    return fig


# --- Home ---------------------------------------------------------------------------------------------------------


def test_home_lists_contents_backend_data_and_shipped_provenance(shipped):
    at = open_page(HOME)
    assert at.title[0].value == "Diffusion Lab"
    links = [link.proto.label for link in at.get("page_link")]
    assert any(label.startswith("**B1**") for label in links) and any("**B3**" in label for label in links)
    assert {Path(s.page).name for s in SECTIONS} == {p.name for p in (ROOT / "app_pages").glob("*.py")}
    assert len(links) == sum(len(in_part(part)) for part in PARTS), "every page of the default edition is listed"
    page_text = texts(at.markdown) + texts(at.info) + texts(at.success)
    assert "HF_TOKEN" in page_text and "licence" in page_text
    if not torch.cuda.is_available():
        assert "IF-I-XL needs a CUDA GPU with ≥ 10.2 GiB of memory" in page_text and "this machine has none" in page_text
    assert "torchvision" in page_text and "MNIST training split (60,000 digits)" in page_text
    table = at.table[0].value
    assert list(table["device"]) == ["cpu (test)"] * 3
    assert all("= 4 steps of 16" in row for row in table["training"])
    assert [row.endswith("; also the EMA of its weights (d = 0.999)") for row in table["training"]] == [False, True, True]
    assert all(np.isfinite(table["final loss"]))
    assert all(re.fullmatch(r"\d+ s", took) for took in table["training time"]), "spoken, like the pages' captions"
    assert [c.value for c in at.code] == ["pytest tiny denoiser", "pytest tiny time", "pytest tiny class"]


def test_home_lists_unfinished_runs(shipped, digits):
    config = TrainConfig.spec("class", hidden=4, epochs=2, batch_size=16, steps_per_epoch=3, sample_stride=50,
                              dataset=digits[0].source)
    steps = []
    with pytest.raises(InterruptedError):
        run_training(config, *digits, torch.device("cpu"), on_progress=lambda p: steps.append(p.step),
                     should_stop=lambda: bool(steps))
    at = open_page(HOME)
    assert at.header[-1].value == "Unfinished training runs"
    links = [link.proto for link in at.get("page_link")]
    assert re.fullmatch(r"\*\*B3 class-conditioned DDPM\*\* · step 1 of 6, saved \d+ s ago · D = 4, p_uncond = 0\.1, "
                        r"batch 16, lr 0\.001, seed 0, stride of the per-epoch grids 50, 2 short epochs of 3 batches", links[-1].label)
    assert links[-1].page.endswith("class_ddpm")


def test_home_says_which_models_are_missing(nothing_shipped):
    at = open_page(HOME)
    assert "Unfinished training runs" not in [h.value for h in at.header]
    assert all(row.startswith("missing") for row in at.table[0].value["training"])
    assert not at.code


# --- B1 -----------------------------------------------------------------------------------------------------------


def test_b1_shows_noise_grid_results_and_reacts_to_its_controls(shipped, digits):
    at = open_page(B1)
    assert r"D_\theta(z) - x" in formulas(at)[0]
    captions = [c for img in at.get("image") for c in img.captions]
    assert [c for c in captions if c.startswith("σ = ")] == [f"σ = {s:g}" for s in SIGMAS]
    assert "Showing the **shipped** model" in texts(at.caption)
    assert "Trained on cpu (test) for " in texts(at.caption) and " s · D = 4, σ = 0.5, 2 short epochs of 2 batches." in texts(at.caption)
    assert any(c.startswith("After epoch 1") for c in captions) and any(c.startswith("After epoch 2") for c in captions)
    assert at.button(key="single_step_train").disabled  # these settings are the shipped ones: nothing to train

    loss, sweep = figures(at)
    tiny = model_store.load_run(shipped / "denoiser.safetensors")
    assert np.allclose(values(loss["data"][0]["y"]), tiny.losses)
    # the σ sweep is the shipped model applied live to the probe digits at every σ
    expected = []
    for s in SIGMAS:
        clean, noisy = denoiser_probe(digits[1], s, DEFAULT_SEED)
        expected.append(float(torch.mean((infer(tiny.model, noisy) - clean) ** 2)))  # at the app's precision
    assert sweep["data"][0]["x"] == list(SIGMAS)
    assert np.allclose(values(sweep["data"][0]["y"]), expected, rtol=1e-4)

    single = image_with_caption(at, "clean x · noisy z")
    run(at.slider(key="single_step_sigma").set_value(0.9))
    after_sigma = image_with_caption(at, "clean x · noisy z")
    assert after_sigma != single
    run(at.selectbox(key="single_step_digit").set_value(6))
    assert image_with_caption(at, "clean x · noisy z") != after_sigma

    grid_before = image_with_caption(at, "σ = 0.5", exact=True)
    run(at.text_input(key="single_step_noise_seed").input("5"))
    assert image_with_caption(at, "σ = 0.5", exact=True) != grid_before
    assert figures(at)[1]["data"][0]["y"] != sweep["data"][0]["y"]

    run(at.toggle(key="single_step_log").set_value(True))
    assert figures(at)[0]["layout"]["yaxis"]["type"] == "log"

    # another setting: the shipped model is still shown, with a note, and Train becomes available
    run(at.select_slider(key="b_denoiser_hidden").set_value(8))
    assert "settings above are not trained yet" in texts(at.caption)
    assert not at.button(key="single_step_train").disabled


def test_b1_without_a_shipped_model_trains_from_the_page(nothing_shipped, monkeypatch, digits):
    gate = threading.Event()

    def load_when_allowed():
        gate.wait(60)
        return digits

    jobs = TrainingJobs(load_when_allowed, device=torch.device("cpu"))
    monkeypatch.setattr(ui.common, "training_jobs", lambda: jobs)

    at = AppTest.from_file(str(ROOT / HOME), default_timeout=120)
    run(at.switch_page(B1))
    assert "No trained single-step denoiser yet" in texts(at.info)
    assert not at.get("plotly_chart")
    single_step_short_run_controls(at)
    run(at.button(key="single_step_train").click())
    (progress,) = at.get("progress")
    assert "loading the training digits" in progress.proto.text
    assert at.button(key="single_step_train").disabled

    # the run goes on while the user looks at another page, and is found again on the way back
    run(at.switch_page(B2))
    gate.set()
    job = jobs.get(TrainConfig.spec("denoiser", hidden=8, epochs=1, batch_size=32, steps_per_epoch=3))
    job.thread.join(60)
    assert job.status == "done", job.error
    run(at.switch_page(B1))
    assert "Training finished: 3 steps" in texts(at.success)
    assert "your training run" in texts(at.caption)
    assert not at.info
    loss, sweep = figures(at)
    assert np.allclose(values(loss["data"][0]["y"]), job.trained.losses) and len(job.trained.losses) == 3
    assert len(sweep["data"][0]["y"]) == len(SIGMAS)
    assert model_store.cache_path(job.config).exists()  # stored in the (isolated) cache for later sessions


def short_run_controls(at: AppTest, shipped_run: str, steps: int = 3, sample_stride: int | None = None) -> AppTest:
    """Set the training controls of ``shipped_run``'s page to D = 8, 1 epoch, batch 32, a short run of ``steps``
    steps (and, for the samplers, per-epoch grids of stride ``sample_stride``)."""
    k = f"b_{shipped_run}"
    at.select_slider(key=f"{k}_hidden").set_value(8)
    at.slider(key=f"{k}_epochs").set_value(1)
    at.select_slider(key=f"{k}_batch").set_value(32)
    if sample_stride is not None:
        at.select_slider(key=f"{k}_sample_stride").set_value(sample_stride)
    run(at.checkbox(key=f"{k}_short").check())
    return run(at.text_input(key=f"{k}_steps").input(str(steps)))


def single_step_short_run_controls(at: AppTest, steps: int = 3) -> AppTest:
    """B1's short run: D = 8, 1 epoch, batch 32, ``steps`` steps."""
    return short_run_controls(at, "denoiser", steps)


def stopped_after_two_steps(config, digits, monkeypatch) -> tuple:
    """The run of ``config`` trained without a stop, and the pages' training jobs (on the CPU), whose disk now holds
    the same run stopped after 2 steps: what "Continue training from step 2" resumes."""
    cpu = torch.device("cpu")
    whole = run_training(config, *digits, cpu)
    steps = []
    with pytest.raises(InterruptedError):
        run_training(config, *digits, cpu, on_progress=lambda p: steps.append(p.step),
                     should_stop=lambda: len(steps) >= 2)
    jobs = TrainingJobs(lambda: digits, device=cpu)
    monkeypatch.setattr(ui.common, "training_jobs", lambda: jobs)
    return whole, jobs


def continue_to_the_end(at: AppTest, train_key: str, jobs, config, whole) -> None:
    """Press "Continue training from step 2" and check the run ends where the run that never stopped ended."""
    button = at.button(key=train_key)
    assert button.label == "Continue training from step 2" and not button.disabled
    run(button.click())
    job = jobs.get(config)
    job.thread.join(120)
    assert job.status == "done", job.error
    assert job.progress.resumed_at == [2] and job.trained.info["resumed_at_steps"] == [2]
    assert job.trained.losses == pytest.approx(whole.losses, rel=1e-6)  # stored as fp32: equal to fp32's precision


def test_b1_a_stopped_run_continues_from_the_page(nothing_shipped, monkeypatch, digits):
    """A run that stopped part-way (cancelled, or the app restarted) is offered as "Continue training from step N" and
    ends exactly where a run that never stopped ends."""
    config = TrainConfig.spec("denoiser", hidden=8, epochs=1, batch_size=32, steps_per_epoch=4)
    whole, jobs = stopped_after_two_steps(config, digits, monkeypatch)

    at = single_step_short_run_controls(open_page(B1), steps=4)
    continue_to_the_end(at, "single_step_train", jobs, config, whole)
    assert not model_store.resume_path(config).exists()
    at = run(at)
    assert "in 2 sittings · D = 8, σ = 0.5, 1 short epoch of 4 batches." in texts(at.caption)


def unfinished_denoiser_run(digits, monkeypatch) -> TrainConfig:
    """A B1 run of settings other than the page's defaults, stopped at step 5 of 12 with its state saved, as an earlier
    visit leaves it; the page's jobs train on ``digits``."""
    config = TrainConfig.spec("denoiser", hidden=8, epochs=3, batch_size=32, steps_per_epoch=4, lr=3e-4, seed=7,
                              sigma=0.3, dataset=digits[0].source)
    steps = []
    with pytest.raises(InterruptedError):
        run_training(config, *digits, torch.device("cpu"), on_progress=lambda p: steps.append(p.step),
                     should_stop=lambda: bool(steps) and steps[-1] >= 5)
    monkeypatch.setattr(ui.common, "training_jobs", lambda: TrainingJobs(lambda: digits))
    return config


def test_b1_offers_to_load_the_settings_of_an_unfinished_run(nothing_shipped, monkeypatch, digits):
    """A student who stopped a run in an earlier visit (a new session: the widgets are back at their defaults) is shown
    the unfinished run and can load its settings, which brings back **Continue training from step N**."""
    unfinished_denoiser_run(digits, monkeypatch)

    at = open_page(B1)
    assert at.button(key="single_step_train").label == "Train"
    assert re.search(r"An unfinished run of other settings: step 5 of 12, saved \d+ s ago · D = 8, σ = 0\.3, batch 32, "
                     r"lr 0\.0003, seed 7, 3 short epochs of 4 batches\.", texts(at.info))
    (load,) = [b for b in at.button if b.label == "Load its settings"]
    at = run(load.click())
    assert at.slider(key="b_denoiser_epochs").value == 3
    assert at.select_slider(key="b_denoiser_hidden").value == 8
    assert at.select_slider(key="b_denoiser_lr").value == 3e-4
    assert at.select_slider(key="b_denoiser_batch").value == 32
    assert at.text_input(key="b_denoiser_seed").value == "7"
    assert at.slider(key="b_denoiser_sigma").value == pytest.approx(0.3)
    assert at.checkbox(key="b_denoiser_short").value and at.text_input(key="b_denoiser_steps").value == "4"
    assert at.button(key="single_step_train").label == "Continue training from step 5"
    assert "An unfinished run of other settings" not in texts(at.info)  # it is the current one now

    # the loaded settings are ordinary settings: changing one puts the unfinished run on offer again
    at = run(at.text_input(key="b_denoiser_seed").input("8"))
    assert at.button(key="single_step_train").label == "Train"
    assert "An unfinished run of other settings: step 5 of 12, saved" in texts(at.info)


def test_b1_a_run_another_trainer_holds_is_not_started_twice(nothing_shipped, monkeypatch, digits):
    """While another process trains a run (``lib.train.resume.sole_trainer``: here a second lock on the same file,
    which the operating system refuses as it would another process's), the page says so beside its unfinished state
    and the settings, once loaded, cannot start a second trainer; once it lets go, **Continue training** is back."""
    config = unfinished_denoiser_run(digits, monkeypatch)

    with resume.sole_trainer(model_store.resume_path(config)):
        assert resume.being_trained(model_store.resume_path(config))
        with pytest.raises(resume.TrainedElsewhere):
            run_training(config, *digits, torch.device("cpu"))
        at = open_page(B1)
        assert re.search(r"step 5 of 12, saved \d+ s ago \(being trained right now, by another process or session\)",
                         texts(at.info))
        (load,) = [b for b in at.button if b.label == "Load its settings"]
        at = run(load.click())
        train = at.button(key="single_step_train")
        assert train.label == "Continue training from step 5" and train.disabled
        assert resume.TRAINED_ELSEWHERE + " Its last saved state stands at step 5." in texts(at.info)

    assert not resume.being_trained(model_store.resume_path(config))
    at = run(at)
    assert not at.button(key="single_step_train").disabled
    assert resume.TRAINED_ELSEWHERE not in texts(at.info)


def test_b1_cancelling_says_the_state_is_saved(nothing_shipped, monkeypatch, digits):
    config = TrainConfig.spec("denoiser", hidden=8, epochs=1, batch_size=32, steps_per_epoch=4)
    job = Job(config, status="cancelled")

    def follow(progress):
        job.progress = progress

    with pytest.raises(InterruptedError):
        run_training(config, *digits, torch.device("cpu"), on_progress=follow, should_stop=lambda: job.progress.step >= 3)
    monkeypatch.setattr(ui.common, "training_jobs", lambda: OneRunningJob(job))
    at = single_step_short_run_controls(open_page(B1), steps=4)
    assert ("Training was cancelled after 3 of 4 steps. Its state at step 3 is saved: **Continue training** goes on "
            "from there.") in texts(at.warning)
    assert at.button(key="single_step_train").label == "Continue training from step 3"


class OneRunningJob:
    """A ``TrainingJobs`` stand-in holding one job mid-run for every configuration of width ``hidden``."""

    def __init__(self, job: Job):
        self.job = job

    def get(self, config: TrainConfig) -> Job | None:
        return self.job if config.hidden == self.job.config.hidden else None


def test_b1_live_view_shows_progress_time_left_and_cancels(shipped, monkeypatch):
    config = TrainConfig.spec("denoiser", hidden=8, epochs=4)
    losses = [0.2 - 0.001 * i for i in range(100)]
    job = Job(config, Progress(step=100, total_steps=400, epoch=1, losses=losses, seconds=50.0))
    monkeypatch.setattr(ui.common, "training_jobs", lambda: OneRunningJob(job))
    at = open_page(B1)
    run(at.select_slider(key="b_denoiser_hidden").set_value(8))
    (progress,) = at.get("progress")
    assert progress.proto.value == 25  # percent
    # 50 s for 100 of 400 steps: 150 s to go at that pace
    assert progress.proto.text == "Epoch 2/4 · step 100/400 · loss 0.1010 · 50 s, about 2 min left"
    live = next(f for f in figures(at) if f["layout"]["title"]["text"] == "Live training loss")
    assert np.allclose(values(live["data"][0]["y"]), losses)
    assert at.button(key="single_step_train").disabled
    run(at.button(key="single_step_cancel").click())
    assert job.cancel.is_set()


def test_live_view_shows_the_grid_being_drawn_and_counts_the_grids_in_the_time_left(shipped, monkeypatch):
    """A DDPM's per-epoch grid is a whole sampler run: the bar says so, step by step, and the time left includes it."""
    config = TrainConfig.spec("class", hidden=8, epochs=2)
    # 40 of 80 steps in 60 s, 10 s of them on 5 of the 30 sampler steps of epoch 1's grid: training has 50 s / 40 steps
    # → 50 s left; grids: 2 − 5/30 of a grid = 55 sampler steps at 2 s → 110 s; in all 160 s
    job = Job(config, Progress(step=40, total_steps=80, epoch=0, losses=[0.5] * 40, seconds=60.0, total_grids=2,
                               grid_step=5, grid_steps=30, grid_seconds=10.0, grid_steps_done=5))
    monkeypatch.setattr(ui.common, "training_jobs", lambda: OneRunningJob(job))
    at = run(open_page(B3).select_slider(key="b_class_hidden").set_value(8))
    (progress,) = at.get("progress")
    assert progress.proto.text == ("Epoch 1/2 · step 40/80 · drawing epoch 1's samples: step 5/30 · loss 0.5000 · "
                                   "60 s, about 3 min left")

    # before any grid is drawn its cost is unknown: the bar says so rather than leave it out
    job.progress = Progress(step=10, total_steps=80, epoch=0, losses=[0.5] * 10, seconds=5.0, total_grids=2)
    (progress,) = run(at).get("progress")
    assert progress.proto.text == ("Epoch 1/2 · step 10/80 · loss 0.5000 · 5 s, about 35 s left for training "
                                   "+ 2 sample grids (timed on the first one)")


def test_a_finished_run_states_one_duration(shipped, monkeypatch):
    """The finished message and the provenance caption give the run's one recorded duration."""
    stored = model_store.load_run(shipped / "denoiser.safetensors")
    stored.info["seconds"] = 73.0
    job = Job(stored.config, Progress(step=4, total_steps=4, epoch=2, seconds=46.0), status="done", trained=stored)
    monkeypatch.setattr(ui.common, "training_jobs", lambda: OneRunningJob(job))
    at = open_page(B1)
    assert "Training finished: 4 steps in 73 s." in texts(at.success)
    assert "Showing **your training run**, not the shipped model. Trained on cpu (test) for 73 s" in texts(at.caption)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's estimates")
def test_cpu_estimates_follow_the_number_of_steps(nothing_shipped):
    at = open_page(B1)
    rate = SPEC_IMAGES_PER_SECOND["denoiser"][cpu_arithmetic(resolve("cpu"))]
    # 1,024 test digits: the spec's 5 epochs of 4 batches of 256; the page opens on a short run of 4 batches as well
    full = spoken_duration(20 * 256 / rate)
    assert (f"No GPU here: the spec's full training (5 epochs, 20 steps) takes about {full} on this CPU; these "
            f"settings (20 steps) about {full}") in texts(at.warning)


@pytest.mark.skipif(torch.cuda.is_available(), reason="short runs are the CPU's default")
@pytest.mark.parametrize("page,kind,full_epoch", [(B1, "denoiser", 4), (B2, "time", 8), (B3, "class", 8)])
def test_a_short_run_is_never_longer_than_the_full_one(nothing_shipped, page, kind, full_epoch):
    """On a small training set (1,024 digits here, 5,000 offline) a full epoch may be fewer batches than a short
    run's default: the short run is cut to the full epoch, and a number beyond it is refused."""
    at = open_page(page)
    assert at.checkbox(key=f"b_{kind}_short").value
    assert int(at.text_input(key=f"b_{kind}_steps").value) <= full_epoch
    at = run(at.text_input(key=f"b_{kind}_steps").input(str(full_epoch + 1)))
    assert f"is outside the allowed range (1 to {full_epoch})" in texts(at.error)


def test_batches_per_epoch_beyond_a_full_epoch_say_what_is_used(shipped):
    """A larger batch makes a full epoch shorter than the batches asked for: the page says what it uses."""
    at = single_step_short_run_controls(open_page(B1), steps=4)  # batch 32: a full epoch of 1,024 digits is 32 batches
    at = run(at.select_slider(key="b_denoiser_batch").set_value(512))  # now a full epoch is 2 batches
    assert at.text_input(key="b_denoiser_steps").value == "2" and not at.error
    assert "Batches per epoch lowered from 4 to 2: a full epoch of batch 512 is 2 batches." in texts(at.caption)
    assert "2 optimiser steps of 512 digits" in texts(at.caption)


def test_batches_per_epoch_beyond_a_full_epoch_are_refused_and_train_waits(shipped):
    """A number typed above a full epoch stays on screen with the reason and the number used; Train is disabled
    until it is fixed (it never trains on a number other than the one shown)."""
    at = single_step_short_run_controls(open_page(B1), steps=4)  # batch 32: a full epoch of 1,024 digits is 32 batches
    assert not at.button(key="single_step_train").disabled
    at = run(at.text_input(key="b_denoiser_steps").input("100000"))
    assert [e.value for e in at.error] == ["Batches per epoch: 100000 is outside the allowed range (1 to 32). The page "
                                           "uses 4 meanwhile, and **Train** waits until it is fixed."]
    assert at.button(key="single_step_train").disabled and at.text_input(key="b_denoiser_steps").value == "100000"
    at = run(at.text_input(key="b_denoiser_seed").input("0.5"))
    assert len(at.error) == 2 and at.button(key="single_step_train").disabled
    at = run(at.text_input(key="b_denoiser_steps").input("5"))
    at = run(at.text_input(key="b_denoiser_seed").input("1"))
    assert not at.error and not at.button(key="single_step_train").disabled
    assert "5 optimiser steps of 32 digits" in texts(at.caption)


def test_b1_picks_any_of_the_ten_test_digits(shipped, digits):
    at = open_page(B1)
    assert at.selectbox(key="single_step_digit").options == [str(d) for d in range(10)]
    three = image_with_caption(at, "clean x · noisy z")
    at = run(at.selectbox(key="single_step_digit").set_value(9))
    assert image_with_caption(at, "clean x · noisy z") != three
    clean, _ = denoiser_probe(digits[1], 0.5, DEFAULT_SEED, range(10))  # the picker's digits: one of each class
    first_nine = digits[1].images[torch.nonzero(digits[1].labels == 9)[0, 0]]
    assert torch.equal((clean[9, 0] * 255).round().to(torch.uint8), first_nine)


@pytest.mark.parametrize("page,keys", [(B1, ("single_step_noise_seed",)), (B2, ("time_ddpm_seed",)), (B3, ("class_ddpm_seed",))])
def test_sampling_seeds_start_at_part_as_default_and_training_seeds_at_0(shipped, page, keys):
    at = open_page(page)
    assert [at.text_input(key=k).value for k in keys] == [str(DEFAULT_SEED)] * len(keys) == ["180"]
    kind = {B1: "denoiser", B2: "time", B3: "class"}[page]
    assert at.text_input(key=f"b_{kind}_seed").value == "0"  # the training seed is part of the shipped config


# --- B2 -----------------------------------------------------------------------------------------------------------


def test_b2_shows_schedule_samples_and_trajectory_and_reacts_to_its_controls(shipped):
    at = open_page(B2)
    assert " s · D = 4, 2 short epochs of 2 batches." in texts(at.caption)
    assert len(formulas(at)) == 4 and r"\sqrt{\beta_t}\,z" in formulas(at)[2]  # the 4th: the EMA
    schedule, loss, anim = figures(at)
    assert np.allclose(values(schedule["data"][1]["y"]), linear_schedule(300, 1e-4, 0.02).alphas_cumprod.numpy())
    assert schedule["layout"]["yaxis3"]["type"] == "log" and loss["layout"]["yaxis"]["type"] == "log"
    assert np.allclose(values(loss["data"][0]["y"]), model_store.load_run(shipped / "time.safetensors").losses)

    # epoch scrubber over the run's snapshot epochs
    assert at.select_slider(key="time_ddpm_epoch").options == ["1", "2"]
    last = image_with_caption(at, "after epoch 2")
    run(at.select_slider(key="time_ddpm_epoch").set_value(1))
    assert image_with_caption(at, "after epoch 1") != last

    # trajectory: stride 10 → 30 steps, one frame per step by default
    assert len(anim["frames"]) == 30 and anim["frames"][-1]["name"] == "step 30/30 · clean"
    assert at.download_button(key="time_ddpm_gif").proto.label == "Download GIF"
    run(at.slider(key="time_ddpm_stride").set_value(50))
    assert len(animation(at)["frames"]) == 6 and "Stride 50: 6 denoising steps" in texts(at.caption)
    run(at.slider(key="time_ddpm_every").set_value(4))
    assert [f["name"] for f in animation(at)["frames"]] == ["step 4/6 · t = 99", "step 6/6 · clean"]
    first = animation(at)["frames"][0]["data"][0]["source"]
    run(at.radio(key="time_ddpm_show").set_value(at.radio(key="time_ddpm_show").options[1]))
    assert animation(at)["frames"][0]["data"][0]["source"] != first
    run(at.text_input(key="time_ddpm_seed").input("3"))
    assert animation(at)["frames"][-1]["data"][0]["source"] != first


# --- B3 -----------------------------------------------------------------------------------------------------------


def test_b3_grid_guidance_digit_and_stride(shipped):
    at = open_page(B3)
    assert any(r"\gamma\,\big(" in f for f in formulas(at))
    assert len(figures(at)) == 3  # schedule, loss, trajectory
    assert " s · D = 4, p_uncond = 0.1, 2 short epochs of 2 batches." in texts(at.caption)
    assert at.slider(key="class_ddpm_scale").value == 5.0
    grid5 = image_with_caption(at, "Rows: digits 0–9")
    assert at.download_button(key="class_ddpm_grid_png").proto.label == "Download PNG"

    run(at.slider(key="class_ddpm_scale").set_value(0.0))
    assert image_with_caption(at, "Rows: digits 0–9, 4 samples each · γ = 0") != grid5
    frames_g0 = [f["data"][0]["source"] for f in animation(at)["frames"]]

    run(at.selectbox(key="class_ddpm_digit").set_value(2))
    frames_d2 = [f["data"][0]["source"] for f in animation(at)["frames"]]
    # γ = 0 ignores the class: the same noise gives the same digits whichever digit is picked
    assert frames_d2 == frames_g0
    run(at.slider(key="class_ddpm_scale").set_value(5.0))
    assert image_with_caption(at, f"γ = 5, stride {GRID_STRIDE}") == grid5  # same inputs, same picture
    frames_d2_g5 = [f["data"][0]["source"] for f in animation(at)["frames"]]
    run(at.selectbox(key="class_ddpm_digit").set_value(7))
    assert [f["data"][0]["source"] for f in animation(at)["frames"]] != frames_d2_g5

    run(at.slider(key="class_ddpm_stride").set_value(30))
    assert len(animation(at)["frames"]) == 10 and "Stride 30: 10 denoising steps" in texts(at.caption)
    assert image_with_caption(at, "Rows: digits 0–9") == grid5  # the grid has its own stride
    run(at.slider(key="class_ddpm_grid_stride").set_value(50))
    assert image_with_caption(at, "Rows: digits 0–9, 4 samples each · γ = 5, stride 50") != grid5

    assert at.select_slider(key="class_ddpm_epoch").options == ["1", "2"]
    last = image_with_caption(at, "after epoch 2")
    run(at.select_slider(key="class_ddpm_epoch").set_value(1))
    assert image_with_caption(at, "after epoch 1") != last


def test_b3_compares_the_spec_weights_with_their_ema_on_the_same_noise(shipped, monkeypatch):
    file_names = []  # what the page's downloads are called (st.download_button itself still runs)
    download_button = st.download_button
    monkeypatch.setattr(st, "download_button", lambda *a, **kw: file_names.append(kw.get("file_name"))
                        or download_button(*a, **kw))
    at = open_page(B3)
    spec = image_with_caption(at, f"The spec's weights · stride {GRID_STRIDE}, seed {DEFAULT_SEED}")
    ema = image_with_caption(at, f"Their EMA · stride {GRID_STRIDE}, seed {DEFAULT_SEED}")
    assert spec != ema
    # same noise: the page's grid of all ten digits (γ = 5, same seed and stride) is the spec weights' grid …
    assert image_with_caption(at, "Rows: digits 0–9") == spec
    frames = [f["data"][0]["source"] for f in animation(at)["frames"]]
    # … and becomes the EMA's grid when the page samples with the EMA; the trajectory follows
    assert at.radio(key="class_ddpm_weights").value == "spec"
    assert "seed 180 · the spec's weights" in image_with_caption_text(at, "Rows: digits 0–9")
    run(at.radio(key="class_ddpm_weights").set_value("ema"))
    assert image_with_caption(at, "Rows: digits 0–9") == ema
    # the choice is named in the caption, the steps' caption and the downloads' file names
    assert "seed 180 · the EMA of the weights" in image_with_caption_text(at, "Rows: digits 0–9")
    assert "30 denoising steps with the EMA of the weights" in texts(at.caption)
    latest = file_names[-2:]  # this run's grid and GIF
    assert latest[0].startswith("b3_digits_ema_weights_g5_") and latest[1].startswith("b3_digit7_ema_weights_g5_"), latest
    assert [f["data"][0]["source"] for f in animation(at)["frames"]] != frames
    run(at.text_input(key="class_ddpm_ema_seed").input(str(DEFAULT_SEED + 1)))
    assert image_with_caption(at, f"Their EMA · stride {GRID_STRIDE}, seed {DEFAULT_SEED + 1}") != ema


def test_b2_names_every_stride_alike(shipped):
    """One idea, one word: the sampler's stride is "Stride", the per-epoch grids' one the "stride of the per-epoch
    grids" — in its control, the snapshots' captions and a run's settings — never a "sampler" or "grid" stride."""
    at = open_page(B2)
    labels = {w.label for w in [*at.slider, *at.select_slider] if "stride" in w.label.lower()}
    assert labels == {"Stride", "Stride of the per-epoch grids"}, labels
    shown = " ".join(e.value for e in [*at.caption, *at.markdown, *at.info]) + " ".join(
        c for img in at.get("image") for c in img.captions)
    assert not re.search(r"(sampler|sampling|grid) stride", shown, re.IGNORECASE)
    assert re.search(r"after epoch \d+ \(stride \d+\)", shown)


def test_b2_compares_the_spec_weights_with_their_ema(shipped):
    at = open_page(B2)
    assert any(r"\theta_\text{EMA}" in f for f in formulas(at))
    stored = model_store.load_run(shipped / "time.safetensors")
    assert f"the two sit **{relative_distance(stored.ema, stored.model):.1%}** apart" in texts(at.markdown)
    spec, ema = (image_with_caption(at, f"{w} · stride {GRID_STRIDE}") for w in ("The spec's weights", "Their EMA"))
    assert spec != ema
    frames = [f["data"][0]["source"] for f in animation(at)["frames"]]
    run(at.radio(key="time_ddpm_weights").set_value("ema"))
    assert [f["data"][0]["source"] for f in animation(at)["frames"]] != frames


def test_a_run_without_an_ema_says_so_and_samples_with_its_weights(shipped, tmp_path, monkeypatch):
    folder = tmp_path / "old_models"
    folder.mkdir()
    for kind in ("time", "class"):
        stored = model_store.load_run(shipped / f"{kind}.safetensors")
        stored.ema = None  # as the models shipped before training kept an EMA
        model_store.save_run(stored, folder / f"{kind}.safetensors", stored.info)
    monkeypatch.setattr(model_store, "SHIPPED_DIR", folder)
    for page, key in [(B2, "time_ddpm"), (B3, "class_ddpm")]:
        at = open_page(page)
        assert "keeps no average of its weights" in texts(at.info)
        assert not [r for r in at.radio if r.key == f"{key}_weights"]
        assert not [img for img in at.get("image") if any("Their EMA" in c for c in img.captions)]


def test_ddpm_of_wraps_the_weights_it_is_asked_for(shipped):
    run_ = model_store.load_run(shipped / "class.safetensors")
    assert ui.common.ddpm_of(run_, "spec").model is run_.model
    assert ui.common.ddpm_of(run_, "ema").model is run_.ema
    assert ui.common.run_cache_id(run_, "spec") != ui.common.run_cache_id(run_, "ema")


@pytest.mark.parametrize("page,key", [(B2, "time_ddpm"), (B3, "class_ddpm")])
def test_ddpm_pages_without_a_shipped_model_offer_training(nothing_shipped, page, key):
    at = open_page(page)
    assert "No trained" in texts(at.info)
    assert len(figures(at)) == 1  # the schedule still shows
    assert not at.button(key=f"{key}_train").disabled


# --- the real shipped models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("page,kind", [(B1, "denoiser"), (B2, "time"), (B3, "class")])
def test_pages_open_on_the_real_shipped_models(page, kind, isolated_cache, mnist_root):
    """The pages show the shipped models only for the data they were trained on: full MNIST (skips without it)."""
    if not model_store.shipped_path(kind).exists():
        pytest.skip(f"data/models/{kind}.safetensors not trained yet")
    st.cache_data.clear()
    st.cache_resource.clear()
    at = open_page(page)
    assert "Showing the **shipped** model for these settings" in texts(at.caption)
    assert len(figures(at)) >= 2 and image_urls(at)
    st.cache_data.clear()
    st.cache_resource.clear()


# --- B1 in each edition -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("edition", ["ddpm", "flow"])
def test_b1_draws_the_sigma_list_of_the_session_s_edition(shipped, monkeypatch, edition):
    """The noising figure and the σ sweep use the chosen edition's list (ui.sections.single_step.DEFAULTS.sigmas).
    Both specs give (0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0); one edition's list is replaced here so the two differ."""
    assert single_step.DEFAULTS.sigmas == {"ddpm": SIGMAS, "flow": SIGMAS}
    other = "flow" if edition == "ddpm" else "ddpm"
    monkeypatch.setitem(single_step.DEFAULTS.sigmas, other, (0.0, 1.0))
    at = AppTest.from_file(str(ROOT / B1), default_timeout=120)
    at.session_state["edition"] = edition
    at = run(at)
    captions = [c for img in at.get("image") for c in img.captions]
    assert [c for c in captions if c.startswith("σ = ")] == [f"σ = {s:g}" for s in SIGMAS]
    (sweep,) = [f for f in figures(at) if list(f["data"][0]["x"]) == list(SIGMAS)]
    assert len(sweep["data"][0]["y"]) == len(SIGMAS)
