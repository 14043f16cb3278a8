"""Streamlit widgets shared by the part-A pages: the page header, image display, the input-image picker (presets, MNIST
test digits, uploads, drawings) and the inpainting mask picker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image

from lib.media.costs import Cost
from lib.media.images import grid
from lib.media.text import EMPTY_PROMPT_RULE
from ui import layout
from ui.backend import Backend, StepProgress, active_backend, seed_control, stride_control
from ui.common import counted
from ui.inputs import last_valid, whole_number_input

CANVAS_PX = 280  # on-screen size of the drawing canvases (10× an MNIST digit)
TOOLBAR_RISE_PX = 43  # st_canvas' toolbar pops up 2.65rem (42.4 px) above the canvas on hover (its stylesheet)
DEFAULT_DIGIT = 3  # the test digit the part-A pages open on
SAMPLES_DEFAULT = 4  # the generation pages' "Samples" slider (``samples_stride_seed``) and the report's sample rows
EMPTY_PROMPT_HELP = EMPTY_PROMPT_RULE[0].upper() + EMPTY_PROMPT_RULE[1:] + "."  # the prompt fields' tooltip


def page_setup(slug: str, formula: str | list[str], explanation: str) -> Backend:
    """A part-A page's heading, formula and explanation (``layout.section_header``) and the sidebar's backend choice."""
    layout.section_header(slug, formula, explanation)
    return active_backend()


def show(images: torch.Tensor | np.ndarray, *, ncols: int | None = None, caption: str | None = None,
         target_px: int = 160, container=st, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Draw (N, C, H, W) images with pixels in ``value_range`` as one grid picture, each image upscaled (nearest
    neighbour, so 28 px digits stay crisp) to about ``target_px`` wide; returns the picture."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    picture = grid(x, ncols or x.shape[0], value_range, upscale=max(1, target_px // x.shape[-1]))
    layout.image(picture, caption, container)
    return picture


def with_cfg(cost: Cost, rows_without_cfg: int) -> str:
    """" × 2 for CFG" when the calls carried both CFG halves of ``rows_without_cfg`` rows (measured), else the note
    that one pass sufficed (γ = 1, or γ = 0 on a model without a learned variance)."""
    return " × 2 for CFG" if cost.rows == 2 * rows_without_cfg else ", one CFG pass at this γ"


def cost_caption(cost: Cost, rows_why: str, progress: StepProgress) -> str:
    """"31 UNet calls · 248 rows (4 samples × 2 for CFG) · 14 ms per call" under a result; ``rows_why`` says where the
    rows come from. A progress bar that never moved means the cached function did not run: the result came from the
    cache, and the line says what computing it cost."""
    ms = cost.ms_per_call
    text = (f"{counted(cost.calls, 'UNet call')} · {counted(cost.rows, 'row')} ({rows_why}) · "
            f"{ms:.{1 if ms < 10 else 0}f} ms per call")
    if progress.count == 0:
        text = f"From the cache (no model call now); computing it took {text}"
    st.caption(text)
    return text


# --- input images ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Picked:
    """An input image (C, H, W) float32 in [−1, 1] at the backend's size, plus what it is."""

    array: np.ndarray
    caption: str
    digit: int | None = None  # the label of an MNIST test digit

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.array).unsqueeze(0)


@st.cache_resource(show_spinner=False)
def _sample_photos() -> dict:
    from lib.media.presets import sample_images

    return sample_images()


def _canvas(key: str, *, background: Image.Image | None = None, stroke: str, bg_color: str, stroke_width: int,
            help_text: str):
    """A freehand st_canvas under its help text; returns its RGBA strokes (H, W, 4) uint8, or None before anything is
    drawn. The canvas' toolbar floats above the canvas on hover: an empty space of its height keeps it off the caption
    and the input-source radio, which it would otherwise cover and make unclickable."""
    from streamlit_drawable_canvas import st_canvas  # imported on use: it registers a frontend component

    st.caption(help_text)
    st.space(TOOLBAR_RISE_PX)
    result = st_canvas(stroke_width=stroke_width, stroke_color=stroke, background_color=bg_color,
                       background_image=background, height=CANVAS_PX, width=CANVAS_PX, drawing_mode="freedraw",
                       return_image_data=True, key=key)
    rgba = result.image_data
    if rgba is None or rgba[..., 3].max() == 0:
        return None
    return rgba


def _flatten_drawing(rgba: np.ndarray, background: tuple[int, int, int]) -> Image.Image:
    """The strokes composited over the canvas colour (the canvas returns them on a transparent background)."""
    base = Image.new("RGBA", (rgba.shape[1], rgba.shape[0]), background + (255,))
    return Image.alpha_composite(base, Image.fromarray(rgba.astype(np.uint8), "RGBA")).convert("RGB")


def _test_image_index(container, test_digits, digit: int, key: str) -> int:
    """Which of the digit's test images, typed as a whole number (``ui.inputs``: an entry out of range is said under
    the field, with the index used meanwhile); an index never wraps around to another image. A valid index kept from
    a digit with more images becomes the last one, and the page says so."""
    from lib.media.presets import digit_positions

    count = len(digit_positions(test_digits, digit))
    kept = last_valid(key)
    if kept is not None and kept > count - 1 and st.session_state.get(key) == str(kept):
        st.session_state[key] = str(count - 1)
        st.info(f"There are {count:,} test images of a {digit}, so this shows the last one, #{count - 1}.")
    entry = whole_number_input("Which one (index among that digit's test images)", 0, key=key, minimum=0,
                               maximum=count - 1, help=f"The test set has {count:,} images of a {digit}.",
                               container=container)
    return min(entry.value, count - 1)


def sample_photo(backend: Backend, name: str) -> Picked:
    """The bundled photo ``name`` at the backend's size and channels."""
    from lib.media import uploads

    return Picked(uploads.to_tensor(_sample_photos()[name], backend.size, backend.channels)[0].numpy(), name)


def mnist_digit(digit: int, index: int) -> Picked:
    """The ``index``-th MNIST test image of ``digit``, (1, 28, 28) in [−1, 1], labelled with the digit."""
    from lib.media.presets import mnist_test_digit
    from ui.common import mnist

    image = mnist_test_digit(mnist()[1], digit, index)  # (1, 1, 28, 28) in [−1, 1]
    return Picked(image[0].numpy(), f"test digit {digit} #{index}", digit)


def default_image(backend: Backend) -> Picked:
    """What ``pick_image`` shows before anyone touches it: the first bundled photo (IF), else test digit 3 #0. The
    whole-assignment report edits this image, so its results are the pages' default ones (and share their cache)."""
    if backend.defaults.input_source == "Sample photo":
        return sample_photo(backend, next(iter(_sample_photos())))
    return mnist_digit(DEFAULT_DIGIT, 0)


def _uploaded(backend: Backend, file) -> Picked | None:
    """An uploaded file as the backend's input image, or None after an st.error saying why it is refused."""
    from lib.media import uploads

    try:
        image = uploads.load_image(file.getvalue(), name=file.name)
        array = uploads.to_tensor(image, backend.size, backend.channels)[0].numpy()
    except uploads.ImageError as err:
        st.error(str(err))
        return None
    for note in image.info.get("notes", []):
        st.caption(f"Note: {note}.")
    return Picked(array, file.name)


def uploaded_images(backend: Backend, key: str) -> list[Picked]:
    """Any number of uploaded images (photos, a web image, drawings saved as files), each at the backend's size; a
    refused file is an st.error and left out."""
    from lib.media import uploads

    files = st.file_uploader(f"Images ({uploads.FORMATS_TEXT})", key=key, accept_multiple_files=True)
    return [p for p in (_uploaded(backend, f) for f in files or []) if p is not None]


def image_and_controls(backend: Backend, key: str):
    """The input-image picker (``pick_image``) in a left column; returns what was picked and the right column, where
    the page puts its controls."""
    left, right = st.columns([2, 3])
    with left:
        picked = pick_image(backend, key)
    return picked, right


def pick_image(backend: Backend, key: str, *, default_digit: int = DEFAULT_DIGIT) -> Picked | None:
    """Choose the input image: a bundled photo (IF) or an MNIST test digit, an upload, or a drawing.

    Every choice persists (``persist_state``) through the other input sources and page switches: Streamlit drops the
    state of a widget that is not drawn in a run. Returns None (after an st.error / st.info) when there is no usable
    image yet.
    """
    from lib.media import uploads

    first = backend.defaults.input_source
    source = st.radio("Input image", (first, "Upload", "Draw"), horizontal=True, key=f"{key}_source_{backend.family}",
                      persist_state="session")
    size, channels = backend.size, backend.channels
    if source == "Sample photo":
        name = st.selectbox("Photo", list(_sample_photos()), key=f"{key}_photo", persist_state="session")
        return sample_photo(backend, name)
    if source == "MNIST test digit":
        from ui.common import mnist

        c1, c2 = st.columns(2)
        digit = int(c1.selectbox("Digit", range(10), index=default_digit, key=f"{key}_digit", persist_state="session"))
        return mnist_digit(digit, _test_image_index(c2, mnist()[1], digit, f"{key}_index"))
    if source == "Upload":
        # no type= filter: the uploader would refuse other files with only a red chip and keep the previous file (and
        # its results); load_image checks the format against uploads.FORMATS and says why a file is refused
        file = st.file_uploader(f"An image ({uploads.FORMATS_TEXT})", key=f"{key}_upload")
        if file is None:
            st.info("Upload an image to continue.")
            return None
        return _uploaded(backend, file)
    # Draw: white strokes on black for MNIST (like its digits), colours on white for IF
    if backend.is_if:
        colour = st.color_picker("Brush colour", "#1f4e9c", key=f"{key}_colour", persist_state="session")
        rgba = _canvas(f"{key}_canvas_if", stroke=colour, bg_color="#ffffff", stroke_width=12,
                       help_text="Sketch something; it is resized to 64×64.")
        bg = (255, 255, 255)
    else:
        rgba = _canvas(f"{key}_canvas_mnist", stroke="#ffffff", bg_color="#000000", stroke_width=22,
                       help_text="Draw a digit, white on black like MNIST; it is resized to 28×28.")
        bg = (0, 0, 0)
    if rgba is None:
        st.info("Draw on the canvas to continue.")
        return None
    try:
        array = uploads.to_tensor(_flatten_drawing(rgba, bg), size, channels)[0].numpy()
    except uploads.ImageError as err:
        st.error(str(err))
        return None
    return Picked(array, "your drawing")


# --- inpainting masks ------------------------------------------------------------------------------------------------

def _half(size: int, rows: slice, cols: slice) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., rows, cols] = 1.0
    return m


def preset_masks(backend: Backend) -> dict[str, torch.Tensor]:
    """Masks (1, 1, S, S), 1 = regenerate: the course's rectangle for IF; halves of the digit for MNIST."""
    s, h = backend.size, backend.size // 2
    if backend.is_if:
        from lib.media.presets import course_mask

        return {"course rectangle (rows 2–19, columns 24–41)": course_mask(s)}
    return {
        "top half": _half(s, slice(0, h), slice(None)),
        "bottom half": _half(s, slice(h, None), slice(None)),
        "left half": _half(s, slice(None), slice(0, h)),
        "right half": _half(s, slice(None), slice(h, None)),
    }


def pick_mask(backend: Backend, picked: Picked, key: str, default: str | None = None) -> np.ndarray | None:
    """A preset mask (``default``, else the first one, until changed) or one painted over the image in the browser;
    (1, 1, S, S) float32 in {0, 1}, or None after a message when there is none yet or it cannot be inpainted
    (``lib.techniques.inpainting.mask_problem``: it regenerates nothing, or keeps nothing)."""
    from lib.media import uploads
    from lib.techniques.inpainting import mask_problem

    presets = preset_masks(backend)
    choices = [*presets, "paint it"]
    choice = st.radio("Mask", choices, index=choices.index(default) if default in presets else 0, horizontal=True,
                      key=f"{key}_mask_{backend.family}",
                      persist_state="session")  # kept while another input source hides the mask picker
    if choice != "paint it":
        return presets[choice].numpy()
    picture = grid(picked.tensor(), 1, pad=0)
    rgba = _canvas(f"{key}_paint_{backend.family}", background=Image.fromarray(picture).resize((CANVAS_PX, CANVAS_PX),
                   Image.NEAREST), stroke="rgba(255, 0, 0, 0.6)", bg_color="", stroke_width=25,
                   help_text="Paint over the part to regenerate.")
    if rgba is None:
        st.info("Paint the region to regenerate on the image.")
        return None
    mask = uploads.mask_from_canvas(rgba, backend.size).float().numpy()
    problem = mask_problem(mask)
    if problem:
        st.warning(problem)
        return None
    return mask


def masked_view(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The image (in [−1, 1]) with the region to regenerate painted over: red on a colour image, mid-grey on a digit."""
    hole = torch.tensor([1.0, -1.0, -1.0] if x.shape[1] == 3 else [0.0]).view(1, -1, 1, 1)
    return x * (1 - mask) + mask * hole


def image_mask_and_controls(backend: Backend, key: str, default_mask: str | None = None):
    """The inpainting pages' opening: the input image (``pick_image``) and its mask (``pick_mask``) in a left column.
    Returns what was picked, the mask (None: nothing usable yet) and the right column, for the page's controls."""
    left, right = st.columns([2, 3])
    with left:
        picked = pick_image(backend, key)
        mask = pick_mask(backend, picked, key, default_mask) if picked is not None else None
    return picked, mask, right


def prompt_input(label: str, default: str, key: str, family: str, help: str | None = None, container=st) -> str:
    """A text_input that follows ``default`` (the picked digit, the backend's prompt) until the user types in it; from
    then on it keeps their prompt, through other digits, input sources without a label and page switches.

    What a user typed belongs to the kind of model it was typed for (a digit for MNIST, text for IF): switching the
    backend shows that kind's own prompt, and switching back brings the typed one back."""
    typed = st.session_state.setdefault(f"{key}__typed", {})  # family -> the prompt typed for it (a plain entry: it
    # outlives the widget's own state)

    def remember():
        typed[family] = st.session_state[key]

    st.session_state[key] = typed.get(family, default)
    return container.text_input(label, key=key, help=help, on_change=remember)


def edit_prompt_input(backend: Backend, picked: Picked | None, slug: str, help: str, default: str | None = None) -> str:
    """The prompt of an edit of ``picked`` (``prompt_input`` under the key ``<slug>_prompt``): ``default`` if given,
    else it follows the picked test digit on MNIST (``FamilyDefaults.edit_prompt``), until the user types in it."""
    if default is None:
        default = backend.defaults.edit_prompt(None if picked is None else picked.digit)
    return prompt_input("Prompt", default, f"{slug}_prompt", backend.family, help=f"{help} {EMPTY_PROMPT_HELP}")


def clamped_key(key: str, maximum: int) -> str:
    """A slider key whose remembered value is first clamped to ``maximum`` (its range shrinks with the stride)."""
    if key in st.session_state and st.session_state[key] > maximum:
        st.session_state[key] = maximum
    return key


def samples_stride_seed(backend: Backend, prefix: str) -> tuple[int, int, int]:
    """The row of sampling controls the generation pages share: number of samples, stride, seed."""
    c1, c2, c3 = st.columns(3)
    num_samples = c1.slider("Samples", 1, 8, SAMPLES_DEFAULT, key=f"{prefix}_samples")
    with c2:
        stride = stride_control(backend, key=f"{prefix}_stride")
    with c3:
        seed = seed_control(f"{prefix}_seed").value
    return num_samples, stride, seed
