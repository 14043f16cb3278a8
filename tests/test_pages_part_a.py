"""AppTests of the eight part-A pages, on a tiny class-conditioned MNIST DDPM (hidden D = 8, random weights).

The shipped model folder is pointed at a temporary one holding the tiny model, and MNIST at the canonical raw files, so
the pages run end to end in seconds whatever the state of data/models. Each test clicks the page's main controls and
checks that the formula, the result images and the download are there, that the result changes with the controls and
that bad input gives an st.error instead of a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from test_pages_part_b import formulas
from ui.sections import anagrams as anagrams_section
from ui.sections import hybrids as hybrids_section

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "app_pages"
TIMEOUT = 120


def save_tiny_class_model(folder: Path, digits) -> Path:
    """A ClassConditionalUNet(D = 8) after 30 Adam steps on ``digits``, saved as the shipped class model in ``folder``.

    Random weights would do for "does the page run", but their ε̂ is so large that samples saturate at ±1 and the
    prompt hardly matters; 30 steps bring the outputs into range, so the tests can see controls change the images.
    """
    from lib.train import model_store
    from lib.train.training import TrainConfig, train

    config = TrainConfig.spec("class", hidden=8, epochs=1, steps_per_epoch=30, batch_size=64, lr=1e-2,
                              snapshot_epochs=(1,))
    n = 4096
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is several times faster on a busy 2-core machine
    try:
        result = train(config, digits.as_float()[:n], digits.labels[:n], device=torch.device("cpu"),
                       snapshot_fn=lambda model, epoch, check_stop: torch.zeros(40, 28, 28, dtype=torch.uint8))
    finally:
        torch.set_num_threads(threads)
    folder.mkdir(parents=True, exist_ok=True)
    return model_store.save_run(result, folder / "class.safetensors", info={"note": "tiny test model"})


@pytest.fixture(scope="module", autouse=True)
def tiny_backend(tmp_path_factory, mnist_root, mnist_train):
    """Shipped class model = the tiny one; MNIST = the canonical files; Streamlit caches emptied before and after."""
    from lib.train import model_store
    from lib.train.data import load_mnist
    from ui import common

    folder = tmp_path_factory.mktemp("shipped")
    save_tiny_class_model(folder, mnist_train)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_store, "SHIPPED_DIR", folder)
        mp.setattr(common, "load_mnist", lambda train: load_mnist(train, root=mnist_root, download=False))
        st.cache_resource.clear()
        st.cache_data.clear()
        yield folder
    st.cache_resource.clear()
    st.cache_data.clear()


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def image_urls(at: AppTest) -> list[str]:
    return [url for img in at.image for url in img.value]


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def assert_page_basics(at: AppTest, formula_piece: str) -> None:
    assert not at.error, errors(at)
    assert any(formula_piece in f for f in formulas(at)), formulas(at)
    assert image_urls(at), "no result images"
    assert len(at.download_button) >= 1
    assert "MNIST" in " ".join(c.value for c in at.sidebar.caption)


NO_DIGIT = ("“banana” names no digit; the MNIST model draws only the digits 0–9: type one of them or its name, or "
            "choose DeepFloyd IF in the sidebar for free text.")
TWO_DIGITS = "“38” names two digits (3 and 8); the MNIST model draws one digit: type one of 0–9 or its name."


def assert_prompt_rule(at: AppTest, key: str, field: str = "") -> None:
    """The one prompt rule of every part-A page: a prompt naming no digit or several is an error in plain sentences
    (prefixed with the field's name where a page has two prompts) and no result; the empty prompt is the
    unconditional one, never an error, and the page says so in the one message every page uses."""
    at.text_input(key=key).set_value("banana").run()
    assert not at.exception and errors(at) == field + NO_DIGIT and not image_urls(at)
    at.text_input(key=key).set_value("38").run()
    assert not at.exception and errors(at) == field + TWO_DIGITS and not image_urls(at)
    at.text_input(key=key).set_value("").run()
    assert_the_empty_prompt_is_unconditional(at, field.removesuffix(": ") or None)


def assert_the_empty_prompt_is_unconditional(at: AppTest, field: str | None = None) -> None:
    """Issue #27 item 4: the empty prompt gives results and the one message (``empty_prompt_note``), and no caption
    quotes it as a bare '' (A7 said "should read as ''")."""
    from lib.media.text import empty_prompt_note

    assert not at.exception and not at.error, errors(at)
    assert image_urls(at)
    assert empty_prompt_note(field) in [i.value for i in at.info]
    shown = [c for img in at.image for c in img.captions] + [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not [text for text in shown if "''" in text]


# --- A3 first: it also checks the progress bar / cache interplay ------------------------------------------------------

def test_a3_sampling_and_cfg():
    at = run_page("guidance.py")
    assert_page_basics(at, r"\varepsilon_u + \gamma")
    # sections are named by the registry's numbers, as in the sidebar and the headings (never "A2")
    text = " ".join(m.value for m in at.markdown)
    assert "as in 1.3 – 1.4)" in text and not re.search(r"\b[AB]\d\b", text)
    assert [m.value for m in at.markdown if m.value.startswith("**γ")] == [f"**γ = {g}**" for g in (0, 1, 3, 5, 7)]
    first = image_urls(at)
    assert len(first) == 5
    # 30 steps per γ, one γ after another: 5 × 30 calls; 4 samples, × 2 for CFG except the one-pass γ = 0 and 1
    assert cost_line(at).startswith(f"150 UNet calls · {30 * 4 * (1 + 1 + 2 + 2 + 2)} rows (4 samples per call")
    # same inputs again: served from st.cache_data (the progress bar must not break the replay)
    at.run()
    assert not at.exception and image_urls(at) == first
    assert cost_line(at).startswith("From the cache (no model call now); computing it took 150 UNet calls · 960 rows")
    at.text_input(key="guidance_prompt").set_value("seven").run()
    assert image_urls(at) == first  # "seven" is the same condition as "7": still the cached result
    # another prompt changes the conditional samples but not γ = 0, which ignores the prompt
    at.text_input(key="guidance_prompt").set_value("2")
    at.multiselect(key="guidance_scales").set_value([0.0, 3.0]).run()
    changed = image_urls(at)
    assert len(changed) == 2 and changed[0] == first[0] and changed[1] != first[2]
    assert len(at.get("plotly_chart")) == 1
    at.slider(key="guidance_stride_mnist").set_value(50).run()
    assert not at.exception and "6 denoising steps" in captions(at)
    assert cost_line(at).startswith(f"12 UNet calls · {6 * 4 * (1 + 2)} rows")  # γ = 0 and 3, 6 steps each
    assert_prompt_rule(at, "guidance_prompt")
    assert "unconditional" in infos(at)  # the page says that γ then changes nothing
    at.text_input(key="guidance_prompt").set_value("7")
    at.multiselect(key="guidance_scales").set_value([]).run()
    assert "at least one guidance scale" in errors(at)


def test_backend_choice_falls_back_to_mnist_without_if():
    at = run_page("guidance.py")
    at.sidebar.radio(key="backend").set_value("DeepFloyd IF").run()
    assert not at.exception
    if torch.cuda.is_available():
        pytest.skip("this machine may really run IF")
    assert "DeepFloyd IF is unavailable" in " ".join(e.value for e in at.sidebar.error)
    assert "MNIST" in " ".join(c.value for c in at.sidebar.caption)
    assert image_urls(at)
    assert at.session_state["backend"] == "DeepFloyd IF"  # the choice persists (for the other pages)
    at.sidebar.button(key="if_check_again").click().run()  # checks now, not within RECHECK_SECONDS: still no GPU
    assert not at.exception and "DeepFloyd IF is unavailable" in " ".join(e.value for e in at.sidebar.error)


def test_an_if_load_that_fails_after_its_checks_is_remembered_until_check_again(monkeypatch, tmp_path):
    """Snapshots that pass every check but whose stage-I weights are damaged (a download cut short): the real loader
    fails once, the reason stays in the sidebar across reruns without another load (each may take minutes on a real
    IF), and "Check again" loads at once. The loader is the real one, counted."""
    from lib.backends import if_loading
    from lib.backends.if_configs import IF_VARIANTS
    from tests.tiny_if import write_tiny_snapshots

    snapshots = write_tiny_snapshots(tmp_path / "snapshots")
    weights = snapshots / IF_VARIANTS["IF-I-XL"] / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    monkeypatch.setenv("DIFFUSION_LAB_IF_DIR", str(snapshots))
    monkeypatch.setenv("DIFFUSION_LAB_IF_DEVICE", "cpu")
    loads, real_load = [], if_loading.load_if

    def counted_load(*args, **kwargs):
        loads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(if_loading, "load_if", counted_load)
    st.cache_data.clear()  # forget the verdicts of the other tests
    at = AppTest.from_file(str(PAGES / "guidance.py"), default_timeout=TIMEOUT)
    at.session_state["backend"] = "DeepFloyd IF"
    at.run()
    error = " ".join(e.value for e in at.sidebar.error)
    assert len(loads) == 1 and f"Could not load {IF_VARIANTS['IF-I-XL']} from {weights.parents[1]}" in error
    assert not at.exception and image_urls(at)  # the page runs on the MNIST model meanwhile
    at.run()
    assert len(loads) == 1 and " ".join(e.value for e in at.sidebar.error) == error
    at.sidebar.button(key="if_check_again").click().run()
    assert len(loads) == 2 and not at.exception and " ".join(e.value for e in at.sidebar.error) == error


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def infos(at: AppTest) -> str:
    return " ".join(i.value for i in at.info)


def png(array) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_a0_stock_pipeline():
    at = run_page("stock.py")
    assert_page_basics(at, r"\mathcal{N}(0, I)")
    labels = [m.value for m in at.markdown if m.value.startswith("**stride")]
    assert labels == ["**stride 100 · 3 steps**", "**stride 30 · 10 steps**", "**stride 10 · 30 steps**"]
    rows = len(at.text_area(key="stock_prompts_mnist").value.splitlines())  # one batch of all prompts per call
    assert cost_line(at).startswith(f"43 UNet calls · {43 * rows * 2} rows ({rows} prompts per call × 2 for CFG)")
    first = image_urls(at)
    at.multiselect(key="stock_columns_mnist").set_value([150]).run()
    assert [m.value for m in at.markdown if m.value.startswith("**stride")] == ["**stride 150 · 2 steps**"]
    at.text_area(key="stock_prompts_mnist").set_value("seven\n1").run()
    assert not at.error and len(image_urls(at)) == 1 and image_urls(at)[0] not in first
    at.text_area(key="stock_prompts_mnist").set_value("seven\nbanana").run()
    assert errors(at) == NO_DIGIT and not image_urls(at)
    at.text_area(key="stock_prompts_mnist").set_value("  \n").run()  # no prompt at all: one unconditional row
    assert_the_empty_prompt_is_unconditional(at)
    assert "Rows: the empty prompt (unconditional)" in captions(at)


def test_a1_forward_process():
    from lib.ddpm.schedules import linear_schedule

    at = run_page("forward.py")
    assert_page_basics(at, r"\sqrt{\bar\alpha_t}\,x_0")
    assert at.metric[0].value == f"{linear_schedule(300).abar(75):.4f}"
    assert "t = 75, t = 150, t = 225" in " ".join(h.value for h in at.subheader)
    assert len(at.get("plotly_chart")) == 1
    before = image_urls(at)
    psnr_t75 = metric_number(at, 2)
    at.slider(key="forward_t_mnist").set_value(250).run()
    assert at.metric[0].value == f"{linear_schedule(300).abar(250):.4f}"
    after = image_urls(at)
    assert after[0] == before[0] and after[1] != before[1]  # same original, noisier x_t
    assert metric_number(at, 2) < psnr_t75 - 3  # more noise (1 − ᾱ_t grows), lower PSNR of x_t
    at.slider(key="forward_sigma_mnist").set_value(3.0).run()
    assert image_urls(at)[2] != after[2] and image_urls(at)[1] == after[1]  # only the blur changed
    at.selectbox(key="forward_digit").set_value(8).run()
    assert not at.exception and image_urls(at)[0] != after[0]


def metric_number(at: AppTest, index: int) -> float:
    """The number in a metric such as "12.3 dB"."""
    return float(at.metric[index].value.split()[0])


def test_a2_iterative_denoising():
    at = run_page("iterative.py")
    assert_page_basics(at, r"\hat x_0 = \frac{x_t")
    assert "t = timesteps[10] = **199**" in " ".join(m.value for m in at.caption)
    assert at.text_input(key="iterative_prompt").value == "3"  # follows the chosen test digit
    assert len(at.get("plotly_chart")) == 2  # the animation and the PSNR curve
    names = [c for img in at.image for c in img.captions]
    assert names[0].startswith("original") and names[-1].startswith("iterative") and "dB" in names[-1]
    first = image_urls(at)
    # the one-step call and 20 iterative steps from i_start = 10 of 30, one image, no CFG: one pass each; the page has
    # no γ, so its cost line names none
    assert cost_line(at).startswith("21 UNet calls · 21 rows (1 image per call: the one-step estimate's call and "
                                    "20 iterative steps; the conditional estimate alone, no classifier-free guidance)")
    assert "γ" not in cost_line(at)
    at.slider(key="iterative_istart_mnist").set_value(20).run()
    assert "= **99**" in captions(at) and image_urls(at)[1] != first[1]
    assert cost_line(at).startswith("11 UNet calls · 11 rows")
    at.slider(key="iterative_stride_mnist").set_value(100).run()  # 4 timesteps: i_start is clamped to 2
    assert not at.exception and at.slider(key="iterative_istart_mnist").value == 2
    assert "· 1 denoising step from there." in captions(at)  # one step, not "1 denoising steps"
    psnr_curve = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert psnr_curve["layout"]["xaxis"]["tickvals"] == [3]  # the one step i, not 2.5, 3, 3.5
    assert_prompt_rule(at, "iterative_prompt")


def noise(t: int) -> str:
    """√(1 − ᾱ_t) of the MNIST model's linear schedule, as A4 shows it."""
    from lib.ddpm.schedules import linear_schedule
    from lib.train.training import TrainConfig

    config = TrainConfig.spec("class", hidden=8)
    return f"{(1 - linear_schedule(config.num_timesteps, config.beta_start, config.beta_end).abar(t)) ** 0.5:.2f}"


def cost_line(at: AppTest) -> str:
    """The page's cost caption (lib.media.costs via ui.part_a.cost_caption)."""
    return next(c.value for c in at.caption if "UNet call" in c.value)


def test_a4_image_to_image():
    at = run_page("sdedit.py")
    assert_page_basics(at, r"\text{timesteps}[i_\text{start}]")
    names = [c for img in at.image for c in img.captions]
    assert names[:6] == [f"i_start = {i}: runs {30 - i} of 30 steps from t = {t} (noise {noise(t)})"
                         for i, t in ((i, 299 - 10 * i) for i in (1, 3, 5, 7, 10, 20))]
    # one batched run: the strip costs the 29 steps of i_start = 1, on Σ K = 134 image-steps × 2 for CFG (γ = 5)
    assert "N − 1 = 29 model calls, not Σ K = 134" in " ".join(m.value for m in at.markdown)
    assert cost_line(at).startswith("29 UNet calls · 268 rows (Σ K = 134 image-steps × 2 for CFG) · ")
    first = image_urls(at)
    at.run()
    assert cost_line(at).startswith("From the cache (no model call now); computing it took 29 UNet calls · 268 rows")
    at.multiselect(key="sdedit_istarts").set_value([5, 29, 35]).run()
    assert "i_start 35 skipped" in " ".join(w.value for w in at.warning)
    assert [c for img in at.image for c in img.captions][:2] == [
        f"i_start = 5: runs 25 of 30 steps from t = 249 (noise {noise(249)})",
        f"i_start = 29: runs 1 of 30 steps from t = 9 (noise {noise(9)})"]
    assert cost_line(at).startswith("25 UNet calls · 52 rows (Σ K = 26 image-steps × 2 for CFG)")
    assert image_urls(at)[0] == first[2]  # same seed, same i_start → same edit
    at.text_input(key="sdedit_prompt").set_value("seven").run()  # 1.7.3: another prompt steers the edit
    assert not at.error and image_urls(at)[0] != first[2]
    at.multiselect(key="sdedit_istarts").set_value([33]).run()
    assert "No valid i_start" in errors(at)
    at.multiselect(key="sdedit_istarts").set_value([3]).run()
    assert_prompt_rule(at, "sdedit_prompt")
    # an upload is prepared like an MNIST digit; a broken file is an error, not a traceback
    import numpy as np

    digit = np.zeros((100, 80), np.uint8)
    digit[20:80, 35:45] = 255  # a "1"
    at.radio(key="sdedit_source_mnist").set_value("Upload").run()
    assert "Upload an image" in " ".join(i.value for i in at.info)
    at.file_uploader(key="sdedit_upload").set_value(("one.png", png(digit), "image/png")).run()
    assert not at.exception and not at.error and "original (one.png)" in [c for i in at.image for c in i.captions]
    at.file_uploader(key="sdedit_upload").set_value(("bad.png", b"not an image", "image/png")).run()
    assert not at.exception and "not an image" in errors(at)
    at.radio(key="sdedit_source_mnist").set_value("Draw").run()
    assert not at.exception and "Draw on the canvas" in " ".join(i.value for i in at.info)


def test_a5_inpainting():
    at = run_page("inpainting.py")
    assert_page_basics(at, r"\mathbf{m} \odot x_{t'}")
    assert at.metric[0].value == "0.000"  # pixels outside the mask are the original's
    at.slider(key="inpainting_stride_mnist").set_value(50).run()  # 6 steps from here on: quicker
    assert cost_line(at).startswith("6 UNet calls · 48 rows (4 samples per call × 2 for CFG)")  # 6 steps, γ = 5
    first = image_urls(at)
    at.radio(key="inpainting_mask_mnist").set_value("left half").run()
    assert at.metric[0].value == "0.000" and image_urls(at) != first
    at.slider(key="inpainting_samples").set_value(2).run()
    assert not at.exception
    at.text_input(key="inpainting_seed").input("7").run()
    assert not at.exception and at.metric[0].value == "0.000"
    at.radio(key="inpainting_mask_mnist").set_value("paint it").run()
    assert not at.exception and "Paint the region" in " ".join(i.value for i in at.info)
    at.radio(key="inpainting_mask_mnist").set_value("top half").run()
    assert_prompt_rule(at, "inpainting_prompt")


def test_a5_keeps_digit_prompt_and_mask_when_the_input_source_changes():
    """Widgets that are not drawn in a run lose their state in Streamlit: switching to Draw and back must not."""
    at = run_page("inpainting.py")
    at.slider(key="inpainting_stride_mnist").set_value(100).run()
    at.selectbox(key="inpainting_digit").set_value(5)
    at.text_input(key="inpainting_prompt").set_value("8")
    at.radio(key="inpainting_mask_mnist").set_value("left half").run()
    at.radio(key="inpainting_source_mnist").set_value("Draw").run()
    assert at.text_input(key="inpainting_prompt").value == "8"
    at.radio(key="inpainting_source_mnist").set_value("MNIST test digit").run()
    assert not at.exception and not at.error, errors(at)
    kept = at.selectbox(key="inpainting_digit").value, at.text_input(key="inpainting_prompt").value, at.radio(key="inpainting_mask_mnist").value
    assert kept == (5, "8", "left half")


def test_a4_opens_on_the_measured_edit_and_keeps_a_typed_prompt():
    """Issue #27 item 3: A4's prompt followed the picked digit, so every column redrew the 3. On MNIST it opens on the
    text edit measured to show the lesson (tests/test_lessons.py), whatever the image, until the user types one."""
    from ui.sections.sdedit import DEFAULTS

    edit = DEFAULTS["mnist"].text_edit
    at = run_page("sdedit.py")
    assert at.text_input(key="sdedit_prompt").value == edit != str(at.selectbox(key="sdedit_digit").value)
    assert f"towards the prompt {edit!r}" in " ".join(m.value for m in at.markdown)
    at.multiselect(key="sdedit_istarts").set_value([20]).run()
    at.selectbox(key="sdedit_digit").set_value(8).run()
    assert at.text_input(key="sdedit_prompt").value == edit  # the edit's target, not the picked digit's label
    at.radio(key="sdedit_source_mnist").set_value("Draw").run()
    assert at.text_input(key="sdedit_prompt").value == edit
    at.radio(key="sdedit_source_mnist").set_value("MNIST test digit").run()
    at.text_input(key="sdedit_prompt").set_value("seven").run()  # the user's own prompt is kept from now on
    at.selectbox(key="sdedit_digit").set_value(2).run()
    at.radio(key="sdedit_source_mnist").set_value("Upload").run()
    at.radio(key="sdedit_source_mnist").set_value("MNIST test digit").run()
    assert at.text_input(key="sdedit_prompt").value == "seven" and at.selectbox(key="sdedit_digit").value == 2


def test_a4_settings_survive_a_visit_to_another_page():
    """Issue #27 item 9: a seed of 42 and an added i_start were back at their defaults after a visit to another page
    (Streamlit drops the state of a widget that a run does not draw, unless it persists for the session)."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    at.switch_page("app_pages/sdedit.py").run()
    at.text_input(key="sdedit_seed").input("42")
    at.multiselect(key="sdedit_istarts").set_value([2, 20])
    at.slider(key="sdedit_stride_mnist").set_value(50)
    at.slider(key="sdedit_scale_mnist").set_value(3.0).run()
    at.switch_page("app_pages/forward.py").run()
    assert not at.exception
    at.switch_page("app_pages/sdedit.py").run()
    assert not at.exception
    assert at.text_input(key="sdedit_seed").value == "42"
    assert at.multiselect(key="sdedit_istarts").value == [2, 20]
    assert at.slider(key="sdedit_stride_mnist").value == 50 and at.slider(key="sdedit_scale_mnist").value == 3.0


def test_which_one_is_bounded_by_the_test_images_of_that_digit(mnist_test):
    """No index wraps around: an index past the digit's last test image gets the app's own message (the field's
    label, the allowed range and the index used meanwhile, as every whole-number field says it — issue 27 item 10:
    the browser's number field kept the refused entry on screen in silence), and a switch to a digit with fewer
    images moves the index to that digit's last one and says so."""
    counts = torch.bincount(mnist_test.labels).tolist()
    at = run_page("forward.py")
    index = at.text_input(key="forward_index")
    index.set_value(str(counts[3])).run()  # one past the last 3
    assert (f"Which one (index among that digit's test images): {counts[3]} is outside the allowed range "
            f"(0 to {counts[3] - 1:,}). The page uses 0 meanwhile.") in errors(at)
    assert "original x₀ (test digit 3 #0)" in at.image[0].captions
    at.text_input(key="forward_index").set_value(str(counts[3] - 1)).run()
    assert not at.error and f"original x₀ (test digit 3 #{counts[3] - 1})" in at.image[0].captions
    at.selectbox(key="forward_digit").set_value(5).run()
    assert not at.exception and not at.error and at.text_input(key="forward_index").value == str(counts[5] - 1)
    assert f"There are {counts[5]:,} test images of a 5, so this shows the last one, #{counts[5] - 1}." in infos(at)
    assert f"original x₀ (test digit 5 #{counts[5] - 1})" in at.image[0].captions


def test_any_whole_number_is_a_seed_and_is_used_as_typed():
    at = run_page("guidance.py")
    at.multiselect(key="guidance_scales").set_value([5.0])
    at.slider(key="guidance_stride_mnist").set_value(100).run()
    first = image_urls(at)
    at.text_input(key="guidance_seed").input("-5").run()
    assert at.text_input(key="guidance_seed").value == "-5" and "seed -5" in captions(at)
    assert image_urls(at) != first


def test_a_seed_that_is_not_a_whole_number_is_refused_and_the_page_says_which_it_uses():
    """1.5 is never read as 1: the page keeps the last valid seed and says so; a 20-digit seed is used exactly."""
    at = run_page("guidance.py")
    at.multiselect(key="guidance_scales").set_value([5.0])
    at.slider(key="guidance_stride_mnist").set_value(100).run()
    at.text_input(key="guidance_seed").input("3").run()
    three = image_urls(at)
    at.text_input(key="guidance_seed").input("1.5").run()
    assert [e.value for e in at.error] == ["Seed: 1.5 is not a whole number. The page uses 3 meanwhile."]
    assert "seed 3," in captions(at) and image_urls(at) == three and at.text_input(key="guidance_seed").value == "1.5"
    at.text_input(key="guidance_seed").input("12345678901234567890").run()
    assert not at.error and "seed 12345678901234567890," in captions(at)
    at.text_input(key="guidance_seed").input("18446744073709551616").run()  # 2**64: beyond torch's seeds
    assert "is outside the allowed range" in at.error[0].value


def test_a4_upload_formats_come_from_one_list_and_a_refused_file_clears_the_result():
    import numpy as np
    from PIL import Image

    from lib.media.uploads import FORMATS

    def encoded(fmt: str) -> bytes:
        import io

        digit = np.zeros((100, 80), np.uint8)
        digit[20:80, 35:45] = 255
        buf = io.BytesIO()
        Image.fromarray(digit).save(buf, format=fmt)
        return buf.getvalue()

    at = run_page("sdedit.py")
    at.multiselect(key="sdedit_istarts").set_value([20])
    at.radio(key="sdedit_source_mnist").set_value("Upload").run()
    listed = "PNG, JPEG, GIF, BMP, WEBP or TIFF"
    assert set(FORMATS) == {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"}
    assert at.get("file_uploader")[0].proto.label == f"An image ({listed})"
    at.file_uploader(key="sdedit_upload").set_value(("one.tiff", encoded("TIFF"), "image/tiff")).run()
    assert not at.exception and not at.error, errors(at)
    assert "original (one.tiff)" in [c for i in at.image for c in i.captions]
    at.file_uploader(key="sdedit_upload").set_value(("icon.ico", encoded("ICO"), "image/x-icon")).run()
    assert not at.exception
    assert errors(at) == f"“icon.ico” is not an image in a supported format ({listed})."
    assert not image_urls(at)  # nothing of the previous file stays on screen


PART_A_PAGES = ["stock.py", "forward.py", "iterative.py",
                "guidance.py", "sdedit.py", "inpainting.py",
                "anagrams.py", "hybrids.py"]


def test_part_a_pages_use_one_name_per_concept():
    """One label per control and one symbol per quantity on every part-A page: ε (LaTeX \\varepsilon, as in the
    markdown, never \\epsilon's ϵ), v_σ for the noise a DDPM step adds, 'Guidance scale γ' and 'Blur kernel size'."""
    shown, labels = [], set()
    for page in PART_A_PAGES:
        at = AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT)
        for key in ("stock_columns_mnist", "guidance_scales", "sdedit_istarts"):
            at.session_state[key] = [100] if key == "stock_columns_mnist" else [20] if key == "sdedit_istarts" else [5.0]
        for key in ("iterative", "guidance", "inpainting", "anagrams", "hybrids"):
            at.session_state[f"{key}_stride_mnist"] = 100
        at.run()
        assert not at.exception, (page, at.exception)
        shown += formulas(at)
        labels |= {w.label for kind in ("slider", "multiselect") for w in at.get(kind)}
    assert not [f for f in shown if r"\epsilon" in f.replace(r"\varepsilon", "")]
    assert sum(r"v_\sigma" in f for f in shown) == 2 and not [f for f in shown if r"\sigma z" in f]
    assert {l for l in labels if l.startswith("Guidance")} == {"Guidance scale γ"}
    assert {l for l in labels if l.startswith("Blur kernel")} == {"Blur kernel size"}


def test_the_canvas_toolbar_has_room_above_the_canvas():
    """The drawing canvas' toolbar pops up 2.65rem above the canvas on hover: the caption and a spacer sit there, so
    it never covers the input-source radio above."""
    at = run_page("sdedit.py")
    at.radio(key="sdedit_source_mnist").set_value("Draw").run()
    column = [type(e).__name__ + ":" + getattr(e, "type", "") for e in at.main.children[4].children[0].children.values()]
    assert column[:4] == ["Radio:radio", "Caption:caption", "Space:space", "UnknownElement:bidi_component"]


def test_a6_visual_anagrams():
    at = run_page("anagrams.py")
    assert_page_basics(at, r"v^{-1}")
    assert at.text_input(key="anagrams_prompt1").value == "6" and at.text_input(key="anagrams_prompt2").value == "9"
    assert at.selectbox(key="anagrams_view_mnist").value == "rotate 180°"
    big, as_made, viewed = image_urls(at)[:3]
    assert viewed != as_made and "as generated: should read as '6'" in at.image[0].captions[0]
    at.toggle(key="anagrams_flip").set_value(True).run()  # one click shows the view applied
    assert image_urls(at)[0] != big and image_urls(at)[1:3] == [as_made, viewed]
    assert "after rotate 180°: should read as '9'" in at.image[0].captions[0]
    at.slider(key="anagrams_stride_mnist").set_value(50).run()  # 6 steps from here on: quicker
    # per step one call of 4 samples × 2 views × 2 CFG halves (γ = 5)
    assert cost_line(at).startswith("6 UNet calls · 96 rows (4 samples × 2 views per call × 2 for CFG)")
    as_made = image_urls(at)[1]
    at.selectbox(key="anagrams_view_mnist").set_value("flip upside down").run()
    assert not at.exception and image_urls(at)[1] != as_made
    at.slider(key="anagrams_weight").set_value(0.8).run()
    assert not at.exception
    assert_prompt_rule(at, "anagrams_prompt2", "Prompt 2: ")


def test_a7_hybrid_images():
    at = run_page("hybrids.py")
    assert_page_basics(at, r"\operatorname{highpass}(\varepsilon_2)")
    assert (at.slider(key="hybrids_kernel_mnist").value, at.slider(key="hybrids_sigma_mnist").value) == (15, 2.0)  # for 28 px
    assert at.slider(key="hybrids_kernel_mnist").max == 27 and not [s for s in at.slider if "try" in (s.help or "")]
    at.slider(key="hybrids_stride_mnist").set_value(50).run()  # 6 steps from here on: quicker
    near, far = image_urls(at)[:2]  # the hybrids, then their low-pass at the same size (seen from afar)
    # 6 steps, each one call on 4 samples × 2 prompts × 2 CFG halves (γ = 7)
    assert cost_line(at).startswith("6 UNet calls · 96 rows (4 samples × 2 prompts per call × 2 for CFG)")
    at.slider(key="hybrids_kernel_mnist").set_value(9).run()
    assert image_urls(at)[0] != near and image_urls(at)[1] != far
    assert not at.warning  # σ 2: a hybrid on MNIST
    at.slider(key="hybrids_sigma_mnist").set_value(1.0).run()
    assert not at.exception
    # issue 27 item 5: a σ at which MNIST makes no hybrid is said plainly (measured), once
    assert [w.value for w in at.warning] == [hybrids_section.MNIST_NO_HYBRID]
    at.text_input(key="hybrids_high").set_value("seven").run()
    assert not at.error
    assert_prompt_rule(at, "hybrids_low", "Prompt 1: ")


def test_a7_factorized_decompositions_on_mnist():
    """Issue #16 item 2: the 2-band hybrid is the default; the IF-only decompositions are not offered on 1-channel
    digits; the triple hybrid asks for a third prompt and costs 3 prompts per call; the step-back slider runs from the
    result itself (σ = 0) to the decomposition's strongest low-pass (its default, the "from far" row)."""
    at = run_page("hybrids.py")
    at.slider(key="hybrids_stride_mnist").set_value(50).run()  # 6 steps: quicker
    picker = at.selectbox(key="hybrids_decomposition_mnist")
    assert picker.value == "2-band hybrid" and picker.options == ["2-band hybrid", "3-band triple hybrid"]
    near, far = image_urls(at)[:2]
    assert at.slider(key="hybrids_step_back").value == at.slider(key="hybrids_step_back").max == 2.0  # G_σ, σ = 2
    at.slider(key="hybrids_step_back").set_value(0.0).run()
    assert cost_line(at).startswith("From the cache (no model call now)")  # stepping back does not resample
    assert image_urls(at)[:2] == [near, near]  # σ = 0: up close, the result itself
    at.slider(key="hybrids_step_back").set_value(at.slider(key="hybrids_step_back").max).run()
    assert image_urls(at)[:2] == [near, far]  # the end: the 2-band low-pass G_σ shown before
    picker.set_value("3-band triple hybrid").run()
    assert not at.exception and not at.error
    assert [t.key for t in at.text_input if t.key != "hybrids_seed"] == ["hybrids_low3", "hybrids_mid3", "hybrids_high3"]
    assert at.slider(key="hybrids_step_back").max == at.slider(key="hybrids_sigmas_mnist").value[1]  # σ2, the low band's
    assert cost_line(at).startswith("6 UNet calls · 144 rows (4 samples × 3 prompts per call × 2 for CFG)")
    assert "Triple hybrids need the larger IF model" in " ".join(i.value for i in at.info)
    # issue 27 item 5: the triple side by side as each band's viewer sees it, small (2σ2, then 2σ1 times smaller) to
    # large, and no caption promising a reading that MNIST does not give
    captions = [c for img in at.image for c in img.captions]
    assert not [c for c in captions if c.split(",")[0] in ("far", "middle", "near")]  # not under a 14-px-wide strip
    assert [c.value for c in at.caption if c.value.split(",")[0] in ("far", "middle", "near")] == [
        "far, 7 px wide: prompt '0'", "middle, 14 px wide: prompt '5'", "near, 28 px wide: prompt '1'"]
    assert not [c for c in captions + [m.value for m in [*at.markdown, *at.caption]] if "should read" in c]
    assert any(r"G_{\sigma_2}" in f for f in formulas(at))


@pytest.mark.slow
def test_pages_on_a_tiny_deepfloyd_if(monkeypatch, tmp_path):
    """The IF code paths (3-channel 64 px images, the stock pipeline, learned variance, stage 2) through the production
    loaders, on tiny stand-ins of the hub repositories in a snapshot folder (DIFFUSION_LAB_IF_DIR), run on the CPU
    (DIFFUSION_LAB_IF_DEVICE=cpu). Nothing of the IF path is mocked. Few steps: the tiny IF is slow on a CPU."""
    from lib.backends import prompt_cache
    from tests.tiny_if import write_tiny_snapshots

    monkeypatch.setenv("DIFFUSION_LAB_IF_DIR", str(write_tiny_snapshots(tmp_path / "snapshots")))
    monkeypatch.setenv("DIFFUSION_LAB_IF_DEVICE", "cpu")
    monkeypatch.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path / "embeddings")
    st.cache_data.clear()  # forget the "IF unavailable" verdict of the other tests

    def if_page(name: str, **state) -> AppTest:
        at = AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT)
        at.session_state["backend"] = "DeepFloyd IF"
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        assert not at.exception, at.exception
        assert not at.error, errors(at)
        sidebar = " ".join(c.value for c in at.sidebar.caption)
        assert "Active: **DeepFloyd IF-I-XL**" in sidebar and "IF-I-XL runs on the CPU here" in sidebar
        return at

    at = if_page("stock.py", stock_prompts_if="a rocket ship", stock_columns_if=[2])
    assert [m.value for m in at.markdown if re.fullmatch(r"\*\*\d+ steps?\*\*", m.value)] == ["**2 steps**"]
    assert cost_line(at).startswith("2 UNet calls · 4 rows (1 prompt per pipeline call × 2 for CFG; counted")
    assert len(image_urls(at)) == 1
    at.toggle(key="stock_upscale").set_value(True).run()
    assert not at.exception and not at.error, errors(at)
    assert len(image_urls(at)) == 2  # the 64 px grid and stage 2's upscale of it
    assert any(b.label == "Download 256 px" for b in at.get("download_button"))

    at = if_page("forward.py")
    assert "t = 250, t = 500, t = 750" in " ".join(h.value for h in at.subheader)  # the course's row
    assert at.selectbox(key="forward_photo").value == "rocket"

    at = if_page("sdedit.py", sdedit_istarts=[30])
    assert [c for img in at.image for c in img.captions][0].startswith("i_start = 30: runs 3 of 33 steps from t = 90")
    assert cost_line(at).startswith("3 UNet calls · 6 rows (Σ K = 3 image-steps × 2 for CFG)")  # γ = 7 on IF
    assert at.text_input(key="sdedit_prompt").value == "a high quality photo"

    # 3 steps (999, 666, 333, 0) per γ; IF's learned variance comes from the conditional pass, so γ = 0 still costs
    # both CFG halves (2 rows) and only γ = 1 runs one pass
    at = if_page("guidance.py", guidance_stride_if=333, guidance_samples=1, guidance_scales=[0.0, 1.0])
    assert cost_line(at).startswith(f"6 UNet calls · {3 * (2 + 1)} rows")
    at = if_page("hybrids.py", hybrids_stride_if=333, hybrids_samples=1)
    assert cost_line(at).startswith("3 UNet calls · 12 rows (1 sample × 2 prompts per call × 2 for CFG)")
    assert at.selectbox(key="hybrids_decomposition_if").options[2:] == ["colour vs greyscale", "motion blur vs residual"]
    at = if_page("hybrids.py", hybrids_stride_if=333, hybrids_samples=1, hybrids_decomposition_if="colour vs greyscale")
    assert cost_line(at).startswith("3 UNet calls · 12 rows (1 sample × 2 prompts per call × 2 for CFG)")
    assert len(image_urls(at)) == 3  # the result, its grey part and its colour part

    # a prompt belongs to the kind of model it was typed for: IF shows its own, and MNIST gets the typed digit back
    at = AppTest.from_file(str(PAGES / "guidance.py"), default_timeout=TIMEOUT)
    for key, value in dict(guidance_samples=1, guidance_scales=[5.0], guidance_stride_mnist=100, guidance_stride_if=333).items():
        at.session_state[key] = value
    at.run()
    at.text_input(key="guidance_prompt").set_value("8").run()
    at.sidebar.radio(key="backend").set_value("DeepFloyd IF").run()
    assert at.text_input(key="guidance_prompt").value == "a high quality photo" and not at.error, errors(at)
    at.sidebar.radio(key="backend").set_value("Built-in MNIST DDPM (default, CPU)").run()
    assert at.text_input(key="guidance_prompt").value == "8" and not at.error, errors(at)

    at = if_page("anagrams.py", anagrams_stride_if=333, anagrams_samples=1)
    assert at.selectbox(key="anagrams_view_if").value == "flip upside down"
    # the result, both ways at once (2), the combining rule (the two inputs, the two estimates, ε, their difference)
    # and the GIF
    assert len(image_urls(at)) == 1 + 2 + 6 + 1
    st.cache_resource.clear()  # drop the tiny IF


def test_a6_combining_rule_motion_and_views_that_break():
    """A6 beyond the result: the combining rule at a picked step (the inputs x_t and v(x_t), the estimates ε̂₁ and
    v⁻¹(ε̂₂), their mean ε and their difference, one size, the noise on one signed scale), the morph GIF with its
    download, and a view that breaks with its reason and its result beside a working one."""
    at = AppTest.from_file(str(PAGES / "anagrams.py"), default_timeout=TIMEOUT)
    at.session_state["anagrams_stride_mnist"] = 50  # 6 steps: quick
    at.session_state["anagrams_view_mnist"] = "jigsaw (patch permutation)"
    at.run()
    assert not at.exception and not at.error, (at.exception, errors(at))
    captions = [c for img in at.image for c in img.captions]
    rule = captions[3:9]
    assert rule[0].startswith("x_t at t = ") and rule[0].endswith("the input for '6'")
    assert rule[1] == "v(x_t): x_t under jigsaw (patch permutation), the input for '9'"
    assert rule[2].startswith("ε = 0.50 ε̂₁ + 0.50 v⁻¹(ε̂₂)") and rule[5].startswith("ε̂₁ − v⁻¹(ε̂₂)")
    assert "full colour at ±" in " ".join(c.value for c in at.caption), "the signed scale is stated"
    before = image_urls(at)
    at.slider(key="anagrams_step").set_value(0).run()  # another step: other pictures of the rule, the same result
    assert image_urls(at)[:3] == before[:3] and image_urls(at)[3:9] != before[3:9]
    assert [c for img in at.image for c in img.captions][3].startswith("x_t at t = 299")
    gif = [b for b in at.get("download_button") if b.proto.label == "Download GIF"]
    assert gif and "as generated ↔ jigsaw (patch permutation)" in [c for img in at.image for c in img.captions]
    reason = " ".join(i.value for i in at.info)
    assert "variance" in reason and "Var v(z) = 0.2" in reason  # the blur's measured variance, against 1 for jigsaw
    assert "works: jigsaw" not in " ".join(c for img in at.image for c in img.captions)  # the second run is opt-in
    at.toggle(key="anagrams_broken").set_value(True).run()
    assert not at.exception and not at.error, errors(at)
    assert [c for img in at.image for c in img.captions][-2:] == [
        "works: jigsaw (patch permutation) · top as generated (asked: '6'), bottom viewed (asked: '9')",
        "breaks: blur · top as generated (asked: '6'), bottom viewed (asked: '9')"]
    broken = image_urls(at)[-1]
    at.selectbox(key="anagrams_failure").set_value("colour scaling").run()
    assert not at.exception and image_urls(at)[-1] != broken
    assert "white balance" in " ".join(i.value for i in at.info)


@pytest.mark.slow
def test_a6_a_view_that_fails_here_is_not_the_failure_comparisons_working_example():
    """Issue 27 item 2: with the pixel permutation (which finds almost no anagram on the MNIST model, bench/RESULTS.md
    "A6 views on MNIST") the comparison showed "works: pixel permutation" over noise beside "breaks: blur" over readable
    digits. The page must say the view fails here and set a view that works (the example's) beside the broken one; the
    view's help must name the views that fail, not the inner circle (which works: 71 % of anagrams read both ways)."""
    at = AppTest.from_file(str(PAGES / "anagrams.py"), default_timeout=TIMEOUT)
    at.session_state["anagrams_stride_mnist"] = 100  # 3 steps: quick
    at.session_state["anagrams_samples"] = 1
    at.session_state["anagrams_view_mnist"] = "pixel permutation"
    at.session_state["anagrams_broken"] = True
    at.run()
    assert not at.exception and not at.error, (at.exception, errors(at))
    working = anagrams_section.DEFAULTS["mnist"].example.view
    warnings = [w.value for w in at.warning]
    assert any("pixel permutation finds almost no anagram" in w for w in warnings), warnings
    captions = [c for img in at.image for c in img.captions]
    assert captions[-2].startswith(f"works: {working} · ") and captions[-1].startswith("breaks: blur · ")
    help_text = at.selectbox(key="anagrams_view_mnist").help
    assert "pixel permutation finds almost no anagram" in help_text and "inner circle rotation finds" not in help_text
    at.selectbox(key="anagrams_view_mnist").set_value("mirror left–right").run()  # a view that works: compared itself
    assert not at.warning and [c for img in at.image for c in img.captions][-2].startswith("works: mirror left–right")


def test_a6_on_a_tiny_deepfloyd_if_with_a_new_view(monkeypatch, tmp_path):
    """A6 on the tiny IF (3-channel 64 px, learned variance): the jigsaw's 16-px patches, the combining rule, the GIF and
    the colour-scaling failure view run on it."""
    from lib.backends import prompt_cache
    from tests.tiny_if import write_tiny_snapshots

    monkeypatch.setenv("DIFFUSION_LAB_IF_DIR", str(write_tiny_snapshots(tmp_path / "snapshots")))
    monkeypatch.setenv("DIFFUSION_LAB_IF_DEVICE", "cpu")
    monkeypatch.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path / "embeddings")
    st.cache_data.clear()  # forget the "IF unavailable" verdict of the other tests
    at = AppTest.from_file(str(PAGES / "anagrams.py"), default_timeout=TIMEOUT)
    state = dict(backend="DeepFloyd IF", anagrams_stride_if=333, anagrams_samples=1, anagrams_view_if="jigsaw (patch permutation)",
                 anagrams_failure="colour scaling", anagrams_broken=True)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception and not at.error, (at.exception, errors(at))
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("v(x_t): x_t under jigsaw (patch permutation)") for c in captions)
    assert captions[-1].startswith("breaks: colour scaling · ")
    assert any(b.proto.label == "Download GIF" for b in at.get("download_button"))
    st.cache_resource.clear()  # drop the tiny IF
