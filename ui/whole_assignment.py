"""The whole assignment in one run: every deliverable of parts A and B, in the assignment's order, on the sidebar's
backend, under one progress bar, as ``lib.report`` sections and one self-contained HTML file.

Every piece is computed by the very function its page calls (``ui.pieces``, ``ui.training_panel``), with the
arguments the page passes when its widgets are at their defaults — so a result already on a page, or in an earlier
report, is a cache hit here and the other way round. Each section runs on its own: a failure (a prompt the model
cannot take, a GPU out of memory, a model server that stopped answering) becomes that section's message, and the
report goes on.
"""

from __future__ import annotations

import datetime
import time
from io import BytesIO
from dataclasses import dataclass
from typing import Callable

import numpy as np
import streamlit as st
import torch
from PIL import Image

from lib import report
from lib.costs import Cost, CountingDenoiser
from lib.filters import lowpass
from lib.images import grid
from lib.remote import RemoteUnavailable
from lib.repaint import call_timesteps, feathered, resampling_path
from lib.report import Section, gif_figure, loss_curve_svg, png_figure, svg_figure
from lib.views import VIEWS
from ui import layout
from ui.backend import DEFAULT_SEED, Backend, StepProgress
from ui.common import counted, ddpm_of, device_label, mnist, run_key
from ui.part_a import Picked, default_image, preset_masks
from ui import pieces
from ui.training_panel import MNIST_STRIDE, default_config, frames_gif, grid_of, run_to_show

B3_GIF = dict(digit=7, num=4, scale=5.0, every=1)  # the B3 page's "Watch a digit being denoised" defaults
EVERY = 5  # 1.4: every 5th step
KERNEL = 5  # the blur kernel of A1 and A2 (their sliders' default)


class ReportProgress(StepProgress):
    """One bar over the whole report. Each piece reserves its share (its sampling steps, or 1 for a piece without a
    loop) and names itself in the bar's text; steps advance the bar inside the share, and a piece that came from the
    cache jumps over it."""

    def __init__(self, total_units: int):
        super().__init__(total_units, "")
        self._end = 0

    def begin(self, label: str, units: int) -> None:
        self.text, self._end = label, min(self.count + max(units, 1), self.total)
        self._draw()

    def advance(self, note: str = "") -> None:
        self.count = min(self.count + 1, self._end)
        self._draw(note)

    def end(self) -> None:
        self.count = self._end
        self._draw()

    def complete(self, text: str) -> None:
        self._context.run(self.slot.progress, 1.0, text=text)

    def _draw(self, note: str = "") -> None:
        text = f"{self.text} · {self.count}/{self.total}" + (f" ({note})" if note else "")
        self._context.run(self.slot.progress, self.count / self.total, text=text)


@dataclass
class Context:
    """What every piece needs: the backend, its denoiser (counting this run's calls), the progress bar, the default
    input image, the pages' default seed and stride, and the user's own images (1.7.1), if any."""

    backend: Backend
    den: CountingDenoiser
    progress: ReportProgress
    picked: Picked
    own: list[Picked]
    seed: int = DEFAULT_SEED

    @property
    def d(self):
        return self.backend.defaults

    @property
    def stride(self) -> int:
        return self.d.stride

    def steps(self) -> int:
        return len(self.den.timesteps(self.stride)) - 1

    def upscale(self) -> int:
        return max(1, 128 // self.backend.size)


@dataclass(frozen=True)
class Piece:
    """One unit of work: the sections it makes (keys of ``lib.report.DELIVERABLES``), its label in the progress bar,
    its share of the bar, and the function that makes them (returning the sections and what computing them cost)."""

    keys: tuple[str, ...]
    label: str
    units: Callable[[Context], int]
    make: Callable[[Context], tuple[list[Section], Cost | None]]


@dataclass
class Report:
    sections: list[Section]
    about: dict[str, object]
    html: str
    backend_key: str
    calls: int
    seconds: float


def one(_: Context) -> int:
    return 1


# --- part A ----------------------------------------------------------------------------------------------------------

def a0(c: Context):
    kind, d = c.backend.kind, c.d
    prompts = tuple(p.strip() for p in d.stock_prompts.splitlines() if p.strip())
    columns = pieces.a0_columns(kind, pieces.A0_DEFAULT_COLUMNS[kind])
    if c.backend.is_if:
        result, cost = pieces.if_grid(c.backend.key, prompts, columns, c.seed, c.den, c.progress)
        labels, what = [f"{n} steps" for n in columns], "num_inference_steps"
    else:
        result, cost = pieces.mnist_grid(c.backend.key, prompts, columns, c.seed, c.den, c.progress)
        labels, what = [f"stride {s} · {len(c.den.timesteps(s)) - 1} steps" for s in columns], "strides"
    picture = grid(result.transpose(0, 1).flatten(0, 1), len(columns), upscale=2)
    settings = {"prompts (rows)": " · ".join(prompts), what + " (columns)": ", ".join(map(str, columns)),
                "guidance γ": d.guidance, "seed": c.seed}
    text = ("Each row a prompt, each column a number of steps, all from the same seed; stage 2 (256 px) is not part "
            "of the report." if c.backend.is_if else "Each row a prompt (a digit), each column a stride through the "
                                                    "T = 300 timesteps, all from the same seed.")
    return [Section("a0", settings, [png_figure(picture, "columns: " + " · ".join(labels))], text)], cost


def a1_forward(c: Context):
    """1.1 and 1.2 – 1.3: x_t at the course's three timesteps, their blur and their one-step estimates."""
    T, d, image = c.backend.num_timesteps, c.d, c.picked.array
    course_ts = pieces.course_timesteps(T)
    noisy, blurred = pieces.noisy_and_blurred(c.backend.key, image, (T // 4, *course_ts), KERNEL, d.blur_sigma,
                                              c.seed, c.den)
    prompt = d.edit_prompt(c.picked.digit)
    one_step, cost = pieces.one_step_row(c.backend.key, image, course_ts, prompt, c.seed, c.den)
    ts_text = ", ".join(f"t = {t}" for t in course_ts)
    base = {"image": c.picked.caption, "timesteps": ts_text, "noise seed": c.seed}
    forward = Section("a1.1", base, [png_figure(grid(torch.cat([c.picked.tensor(), noisy[1:]]), 4,
                                                     upscale=c.upscale()), f"original · {ts_text}")],
                      "" if T == 1000 else f"T = {T}: the same fractions of T as the course's 250 / 500 / 750.")
    rows = torch.cat([noisy[1:], blurred[1:], one_step])
    denoised = Section("a1.2", {**base, "blur kernel": KERNEL, "blur σ": d.blur_sigma, "prompt": repr(prompt),
                                "guidance": "none (one conditional UNet call per t)"},
                       [png_figure(grid(rows, 3, upscale=c.upscale()),
                                   "rows: noisy x_t · Gaussian blur · one-step x̂₀; columns: " + ts_text)])
    return [forward, denoised], cost


def a1_4(c: Context):
    d, ts = c.d, c.den.timesteps(c.stride)
    i_start = min(10, len(ts) - 2)
    prompt = d.edit_prompt(c.picked.digit)
    (images, frames, labels, _), cost = pieces.compare(c.backend.key, c.picked.array, prompt, i_start, c.stride, EVERY,
                                                       KERNEL, d.blur_sigma, c.seed, c.den, c.progress)
    figures = [png_figure(frame, label) for frame, label in zip(frames, labels)]
    figures.append(png_figure(grid(images, 5, upscale=c.upscale()),
                              "original · noisy · Gaussian blur · one-step x̂₀ · iterative"))
    settings = {"image": c.picked.caption, "prompt": repr(prompt), "i_start": f"{i_start} (t = {ts[i_start]})",
                "stride": c.stride, "every": f"{EVERY}th step", "blur": f"kernel {KERNEL}, σ {d.blur_sigma:g}",
                "guidance": "γ = 1 (the conditional estimate)", "seed": c.seed}
    return [Section("a1.4", settings, figures, "Each frame: x_t (left) and that step's x̂₀ (right); last: the final "
                                               "result beside one-step and blur.")], cost


def a1_5_6(c: Context):
    d, scales = c.d, tuple(sorted(pieces.A3_DEFAULT_SCALES))
    n = pieces.A3_DEFAULT_SAMPLES
    result, cost = pieces.guidance_sweep(c.backend.key, d.prompt, scales, n, c.stride, c.seed, c.den, c.progress)
    base = {"prompt": repr(d.prompt), "samples": n, "stride": c.stride, "seed": c.seed}
    plain = Section("a1.5", {**base, "guidance": "none (γ = 1)"},
                    [png_figure(grid(result[scales.index(1.0)], n, upscale=c.upscale()), "γ = 1")])
    sweep = png_figure(grid(result.flatten(0, 1), n, upscale=c.upscale()),
                       "one row per γ: " + ", ".join(f"{g:g}" for g in scales) + " (the same noise in every row)")
    guided = Section("a1.6", {**base, "guidance γ": d.guidance},
                     [png_figure(grid(result[scales.index(d.guidance)], n, upscale=c.upscale()),
                                 f"γ = {d.guidance:g}"), sweep])
    return [plain, guided], cost


def _sdedit(c: Context, key: str, picked: Picked, prompt: str, text: str = ""):
    ts = c.den.timesteps(c.stride)
    valid = tuple(i for i in sorted(pieces.COURSE_I_STARTS) if i <= len(ts) - 2)
    result, cost = pieces.sdedit_sweep(c.backend.key, picked.array, prompt, c.d.guidance, valid, c.stride, c.seed,
                                       c.den, c.progress)
    settings = {"image": picked.caption, "prompt": repr(prompt), "i_start": ", ".join(map(str, valid)),
                "from t": ", ".join(str(ts[i]) for i in valid), "guidance γ": c.d.guidance, "stride": c.stride,
                "seed": c.seed}
    picture = grid(torch.cat([result, picked.tensor()]), len(valid) + 1, upscale=c.upscale())
    return Section(key, settings, [png_figure(picture, "i_start " + ", ".join(map(str, valid)) + " · original")],
                   text), cost


def _sdedit_units(c: Context) -> int:
    return c.steps() - min(pieces.COURSE_I_STARTS)


def a1_7(c: Context):
    section, cost = _sdedit(c, "a1.7", c.picked, c.d.edit_prompt(c.picked.digit))
    return [section], cost


def a1_7_1(c: Context):
    if not c.own:
        return [Section("a1.7.1", problem="No images of your own were given: upload them above the report (your "
                                          "photos, a web image, your drawings) and run it again.")], None
    made = [_sdedit(c, "a1.7.1", p, c.d.edit_prompt(None)) for p in c.own]
    section = made[0][0]
    for other, _ in made[1:]:
        section.figures += other.figures
    section.settings["image"] = " · ".join(p.caption for p in c.own)
    costs = [cost for _, cost in made]
    return [section], Cost(sum(k.calls for k in costs), sum(k.rows for k in costs), sum(k.seconds for k in costs))


def a1_7_2(c: Context):
    d = c.d
    mask_name, mask = next(iter(preset_masks(c.backend).items()))
    m = feathered(mask, pieces.A5_DEFAULTS["feather"])
    p = pieces.A5_DEFAULTS
    prompt = d.edit_prompt(c.picked.digit)
    result, cost = pieces.inpaint_samples(c.backend.key, c.picked.array, m.numpy(), prompt, d.guidance,
                                          p["num_samples"], c.stride, c.seed, p["jump_length"], p["jump_n_sample"],
                                          c.den, c.progress)
    x = c.picked.tensor()
    picture = grid(torch.cat([x, pieces.masked_view(x, m), result]), p["num_samples"] + 2, upscale=c.upscale())
    settings = {"image": c.picked.caption, "mask": mask_name, "prompt": repr(prompt), "guidance γ": d.guidance,
                "samples": p["num_samples"], "stride": c.stride, "jump_length j": p["jump_length"],
                "jump_n_sample r": p["jump_n_sample"], "seed": c.seed}
    return [Section("a1.7.2", settings, [png_figure(picture, "original · region to regenerate · inpaintings")])], cost


def a1_7_2_units(c: Context) -> int:
    p = pieces.A5_DEFAULTS
    return len(call_timesteps(c.den.timesteps(c.stride), resampling_path(c.steps(), p["jump_length"],
                                                                         p["jump_n_sample"])))


def a1_7_3(c: Context):
    section, cost = _sdedit(c, "a1.7.3", c.picked, c.d.text_edit,
                            f"The test image projected towards another prompt, {c.d.text_edit!r}.")
    return [section], cost


def _anagram(c: Context, key: str, prompts: tuple[str, str, str]):
    p1, p2, view = prompts
    n, w, d = pieces.SAMPLES_DEFAULT, pieces.A6_DEFAULT_WEIGHT, c.d
    args = (c.backend.key, p1, p2, view, w, d.guidance, n, c.stride, c.seed)
    (result, _), cost = pieces.anagrams(*args, c.den, c.progress)
    viewed = VIEWS[view].apply(result)
    figures = [png_figure(grid(torch.cat([result, viewed]), n, upscale=c.upscale()),
                          f"top: as generated → {p1!r}; bottom: {view} → {p2!r}"),
               gif_figure(pieces.morph_gif(*args, result), f"as generated ↔ {view}")]
    settings = {"prompt 1": repr(p1), "prompt 2": repr(p2), "view": view, "weight w": w, "guidance γ": d.guidance,
                "samples": n, "stride": c.stride, "seed": c.seed}
    return [Section(key, settings, figures)], cost


def _hybrid(c: Context, key: str, prompts: tuple[str, str]):
    n, d = pieces.SAMPLES_DEFAULT, c.d
    kernel, sigma = d.hybrid_filter
    result, cost = pieces.factorized(c.backend.key, pieces.TWO, (kernel, sigma), tuple(prompts), d.hybrid_guidance,
                                     n, c.stride, c.seed, c.den, c.progress)
    far = lowpass(result, kernel, sigma)
    figures = [png_figure(grid(result, n, upscale=c.upscale()), f"up close: should read as {prompts[1]!r}"),
               png_figure(grid(far, n, upscale=c.upscale()), f"blurred by σ = {sigma:g} (from far): "
                                                             f"should read as {prompts[0]!r}")]
    settings = {"far (low frequencies)": repr(prompts[0]), "near (high frequencies)": repr(prompts[1]),
                "Gaussian kernel": kernel, "σ": sigma, "guidance γ": d.hybrid_guidance, "samples": n,
                "stride": c.stride, "seed": c.seed}
    return [Section(key, settings, figures)], cost


PART_A = (
    Piece(("a0",), "0 · stock pipeline",
          lambda c: (len(pieces.A0_DEFAULT_COLUMNS["if"]) * len(c.d.stock_prompts.splitlines()) if c.backend.is_if
                     else sum(len(c.den.timesteps(s)) - 1 for s in pieces.A0_DEFAULT_COLUMNS["mnist"])), a0),
    Piece(("a1.1", "a1.2"), "1.1 – 1.3 · forward process, blur, one step", one, a1_forward),
    Piece(("a1.4",), "1.4 · iterative denoising",
          lambda c: c.steps() - min(10, len(c.den.timesteps(c.stride)) - 2), a1_4),
    Piece(("a1.5", "a1.6"), "1.5 – 1.6 · sampling and CFG",
          lambda c: c.steps() * len(pieces.A3_DEFAULT_SCALES), a1_5_6),
    Piece(("a1.7",), "1.7 · SDEdit", _sdedit_units, a1_7),
    Piece(("a1.7.1",), "1.7.1 · SDEdit of your images", lambda c: max(1, len(c.own) * _sdedit_units(c)), a1_7_1),
    Piece(("a1.7.2",), "1.7.2 · inpainting", a1_7_2_units, a1_7_2),
    Piece(("a1.7.3",), "1.7.3 · text-conditioned SDEdit", _sdedit_units, a1_7_3),
    Piece(("a1.8a",), "1.8 · anagram", Context.steps, lambda c: _anagram(c, "a1.8a", c.d.anagram)),
    Piece(("a1.8b",), "1.8 · another anagram", Context.steps, lambda c: _anagram(c, "a1.8b", c.d.anagram2)),
    Piece(("a1.9a",), "1.9 · hybrid", Context.steps, lambda c: _hybrid(c, "a1.9a", c.d.hybrid)),
    Piece(("a1.9b",), "1.9 · another hybrid", Context.steps, lambda c: _hybrid(c, "a1.9b", c.d.hybrid2)),
)


# --- part B ----------------------------------------------------------------------------------------------------------

def shown_run(kind: str):
    """The run a part-B page shows with its widgets at their defaults (the shipped model, unless this process trained
    those very settings); a LookupError when there is none."""
    run, note = run_to_show(kind, default_config(kind, mnist()[0]))
    if run is None:
        raise LookupError(f"no trained {kind} model: data/models/{kind}.safetensors is missing — train it on its page "
                          "or with scripts/train_models.py")
    return run


def run_settings(run) -> dict[str, object]:
    c = run.config
    return {"model": f"D = {c.hidden}, {c.epochs} epochs, batch {c.batch_size}, lr {c.lr:g}, training seed {c.seed}",
            "trained on": f"{run.info.get('device', '?')}, {run.info.get('data', '?')}"}


def loss_section(key: str, run) -> Section:
    losses = run.losses
    tail = float(np.mean(losses[-max(1, len(losses) // 10):]))
    svg = loss_curve_svg(losses, steps_per_epoch=run.config.epoch_steps(len(losses)))
    return Section(key, {**run_settings(run), "steps": f"{len(losses):,}",
                         "mean loss over the last 10 %": f"{tail:.4f}"}, [svg_figure(svg, "training loss")])


def epochs_section(key: str, run, wanted: tuple[int, int], what: str) -> Section:
    """The run's stored per-epoch pictures at the ``wanted`` epochs (else its first and last), nothing retrained."""
    shown = wanted if all(e in run.snapshots for e in wanted) else (min(run.snapshots), max(run.snapshots))
    model = run.config.model
    figures = [png_figure(grid_of(run.snapshots[e], model), f"after epoch {e}")
               for e in shown]
    settings = {**run_settings(run), "epochs shown": ", ".join(map(str, shown))}
    if model != "denoiser":
        settings["sampler stride of the stored grids"] = run.config.sample_stride
    note = "" if shown == wanted else f"This run stored no epochs {wanted[0]} and {wanted[1]}: its first and last."
    return Section(key, settings, figures, " ".join(filter(None, [what, note])))


def b1(c: Context):
    run, test_set = shown_run("denoiser"), mnist()[1]
    columns = pieces.noising_columns(test_set, c.seed)
    noise = Section("b1.noise", {"σ": ", ".join(f"{s:g}" for s in pieces.B1_SIGMAS), "noise seed": c.seed},
                    [png_figure(p, f"σ = {s:g}") for s, p in zip(pieces.B1_SIGMAS, columns)],
                    "The same test digits and the same ε at growing σ.")
    epochs = epochs_section("b1.epochs", run, (1, 5), "Rows: clean, noisy (σ = "
                                                      f"{run.config.sigma:g}), denoised.")
    _, _, errors, sweep = pieces.ood_sweep(run_key(run), c.seed, run, test_set)
    sweep_section = Section("b1.sweep", {"trained at σ": run.config.sigma, "noise seed": c.seed,
                                         "MSE per σ": ", ".join(f"{s:g}: {e:.4f}"
                                                                for s, e in zip(pieces.B1_SIGMAS, errors))},
                            [png_figure(sweep, "per σ (" + ", ".join(f"{s:g}" for s in pieces.B1_SIGMAS)
                                        + "): noisy row, then denoised row")])
    return [noise, loss_section("b1.loss", run), epochs, sweep_section], None


def b2(c: Context):
    run = shown_run("time")
    return [loss_section("b2.loss", run), epochs_section("b2.epochs", run, (5, 20), "40 samples.")], None


def b3(c: Context):
    run = shown_run("class")
    return [loss_section("b3.loss", run),
            epochs_section("b3.epochs", run, (5, 20), "4 samples of every digit (γ = 5), one row per digit.")], None


def b3_gif(c: Context):
    run = shown_run("class")
    den = CountingDenoiser(ddpm_of(run))
    c.den = den  # this piece's model calls are the B3 model's
    g = B3_GIF
    recorder = pieces.digit_trajectory(run_key(run), g["digit"], g["num"], g["scale"], MNIST_STRIDE, g["every"],
                                       c.seed, den, c.progress)
    settings = {"digit": g["digit"], "samples": g["num"], "guidance γ": g["scale"], "stride": MNIST_STRIDE,
                "frame every": f"{g['every']} step", "seed": c.seed}
    gif = gif_figure(frames_gif(recorder.x_frames), "x_t from pure noise to the digit")
    return [Section("b3.gif", settings, [gif])], None


PART_B = (
    Piece(("b1.noise", "b1.loss", "b1.epochs", "b1.sweep"), "B1 · single-step denoiser", one, b1),
    Piece(("b2.loss", "b2.epochs"), "B2 · time-conditioned DDPM", one, b2),
    Piece(("b3.loss", "b3.epochs"), "B3 · class-conditioned DDPM", one, b3),
    Piece(("b3.gif",), "B3 · denoising GIF", lambda c: len(ddpm_of(shown_run("class")).timesteps(MNIST_STRIDE)) - 1,
          b3_gif),
)
PIECES = PART_A + PART_B


# --- running it ------------------------------------------------------------------------------------------------------

def failure_text(err: BaseException) -> str:
    """One sentence for a section that could not be made."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        return "The GPU ran out of memory for this section; the others are unaffected. Run the report again when " \
               "fewer people are sampling."
    if isinstance(err, RemoteUnavailable):
        return f"{err}. The model server did not answer for this section."
    return f"Not made: {err}" if str(err) else f"Not made: {type(err).__name__}"


def _units(piece: Piece, c: Context) -> int:
    try:
        return max(1, int(piece.units(c)))
    except Exception:  # the piece itself will say what is wrong
        return 1


def build(backend: Backend, own: list[Picked] | None = None, seed: int = DEFAULT_SEED) -> Report:
    """Run every piece in the assignment's order under one progress bar; returns the sections and the HTML. With the
    default seed every piece is the one its page shows when opened (and shares its cache entry)."""
    raw = getattr(backend.denoiser, "_den", backend.denoiser)  # unguarded: a failure is this section's, not the page's
    start = time.perf_counter()
    c = Context(backend, CountingDenoiser(raw), None, default_image(backend), list(own or []), seed)
    units = [_units(p, c) for p in PIECES]
    c.progress = ReportProgress(sum(units))
    sections, calls = [], 0
    for piece, share in zip(PIECES, units):
        c.progress.begin(piece.label, share)
        c.den = CountingDenoiser(raw)
        t0 = time.perf_counter()
        try:
            made, cost = piece.make(c)
        except Exception as err:  # noqa: BLE001 — reported in the section; st.stop/rerun are BaseExceptions
            made, cost = [Section(k, problem=failure_text(err)) for k in piece.keys], None
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
        "model": f"{raw.name} ({backend.kind}" + (f", {backend.variant})" if backend.variant else ")"),
        "device": device_label(),
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "cost of this run": f"{counted(calls, 'UNet call')}, {total:.1f} s (cached sections cost nothing now)",
        "defaults": f"every page's default settings: seed {c.seed}, stride {c.stride}, γ {c.d.guidance:g}",
    }
    html = report.report_html("Fun with Diffusion Models — the whole assignment", about, sections)
    return Report(report.ordered(sections), about, html, backend.key, calls, total)


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
