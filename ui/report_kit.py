"""What a section's part of the whole-assignment report is made of (``ui.whole_assignment`` runs them): the context
every piece gets, the piece itself, and the one progress bar over all of them.

A section module (``ui.sections.<slug>``) lists its ``REPORT`` pieces; each calls the section's own cached
computations with the section's own defaults, so a result already on the page is a cache hit in the report and the
other way round.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from lib.flow.euler import euler_step_count
from lib.media.costs import Cost, CountingNoiseModel, CountingVelocityModel
from lib.backends.remote import RemoteUnavailable
from lib.media.report import Deliverable, loss_curve_svg, png_figure, svg_figure
from lib.train.training import DDPMS, FLOWS, TrainConfig
from ui.backend import DEFAULT_SEED, Backend, FamilyDefaults, StepProgress
from ui.training.settings import GRID_STRIDE_WORDS
from ui.common import mnist
from ui.flow_backend import MISSING, MODEL as FLOW_MODEL, FlowBackend, flow_backend
from ui.sections import DEFAULT_EDITION, training_section
from ui.part_a import Picked, default_image
from ui.training.results import grid_of, run_to_show
from ui.training.settings import default_config


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
    den: CountingNoiseModel
    progress: ReportProgress
    picked: Picked
    own: list[Picked]
    seed: int = DEFAULT_SEED
    edition: str = DEFAULT_EDITION  # the report's edition: a section whose defaults differ by edition reads it here
    flow: FlowBackend | None = None  # the flow edition's part-A model chosen in the sidebar (None: the MNIST one)

    @property
    def d(self) -> FamilyDefaults:
        return self.backend.defaults

    @property
    def counted(self) -> Backend:
        """The backend with this run's counting denoiser: what a section's computations are given."""
        return dataclasses.replace(self.backend, model=self.den)

    @property
    def stride(self) -> int:
        return self.d.stride

    def steps(self) -> int:
        return len(self.den.timesteps(self.stride)) - 1

    def upscale(self) -> int:
        return upscale_for(self.backend.size)


def upscale_for(size: int) -> int:
    """How many times a report's picture enlarges images of ``size`` px: to about 128 px."""
    return max(1, 128 // size)


@dataclass(frozen=True)
class Heading:
    """A deliverable's place in the report: its anchor, the assignment's number for it and its title."""

    key: str
    number: str
    title: str

    def made(self, settings: dict[str, object], figures: list, text: str = "", **changes) -> Deliverable:
        """The deliverable under this heading (``changes`` may say more in its title, e.g. the actual timesteps)."""
        fields = {"key": self.key, "number": self.number, "title": self.title, **changes}
        return Deliverable(**fields, settings=settings, figures=figures, text=text)

    def failed(self, problem: str) -> Deliverable:
        return Deliverable(self.key, self.number, self.title, problem=problem)


@dataclass(frozen=True)
class EpochsHeading(Heading):
    """A training section's samples after the deliverable's ``epochs`` (``epochs_section``): made by ``after_epochs``,
    whose title says which."""

    epochs: tuple[int, ...] = ()


def after_epochs(key: str, number: str, what: str, epochs: tuple[int, ...]) -> EpochsHeading:
    """"Time-conditioned samples after epochs 5 and 20": the heading of ``what`` after the deliverable's epochs."""
    return EpochsHeading(key, number, f"{what} after epochs {spoken_list(epochs)}", epochs)


@dataclass(frozen=True)
class Piece:
    """One unit of work: the deliverables it makes, its label in the progress bar, its share of the bar, and the
    function that makes them (returning the deliverables and what computing them cost)."""

    headings: tuple[Heading, ...]
    label: str
    units: Callable[[Context], int]
    make: Callable[[Context], tuple[list[Deliverable], Cost | None]]


# --- part B: what the pages show of a trained run ---------------------------------------------------------------------

def shown_run(model_id: str, config: TrainConfig | None = None):
    """The run a part-B page shows with its widgets at their defaults — or at ``config`` (the shipped model, unless
    this process trained those very settings); a LookupError when there is none."""
    run, note = run_to_show(model_id, config or default_config(model_id, mnist()[0]))
    if run is None:
        raise LookupError(f"no trained {model_id} model: data/models/{model_id}.safetensors is missing — train it on its page "
                          "or with scripts/train_models.py")
    return run


def shown_flow_backend(c: Context) -> FlowBackend:
    """What the flow edition's part-A pages run on — the sidebar's flow model (``Context.flow``), else the MNIST one
    (``ui.flow_backend.flow_backend``): the same weights and cache id —, its velocity calls counted in this piece's
    cost; a LookupError naming what is missing when there is none."""
    backend = c.flow or flow_backend()
    if backend is None:
        raise LookupError(f"no class-conditioned flow model: {MISSING} — train one on the page "
                          f"{training_section(FLOW_MODEL).label}")
    return dataclasses.replace(backend, model=CountingVelocityModel(backend.model, c.den))


def euler_steps_at(defaults: dict[str, object]) -> Callable[[Context], int]:
    """A flow piece's share of the bar: the Euler steps from t = 0 at the step h of its section's ``defaults`` (family →
    defaults) for the family of ``shown_flow_backend``."""
    return lambda c: euler_step_count(0.0, defaults[shown_flow_backend(c).family].h)


def shown_flow_input(c: Context) -> tuple[FlowBackend, Picked, str]:
    """``shown_flow_backend``, the image its pages start from (``ui.part_a.default_image``) and that image's edit
    prompt (MNIST: its own digit): what the flow part-A report pieces edit, so their results are the pages' defaults (and
    share their cache)."""
    flow = shown_flow_backend(c)
    picked = default_image(flow)
    return flow, picked, flow.defaults.edit_prompt(picked.digit)


def run_settings(run) -> dict[str, object]:
    c = run.config
    return {"model": f"D = {c.hidden}, {c.epochs} epochs, batch {c.batch_size}, lr {c.lr:g}, training seed {c.seed}",
            "trained on": f"{run.info.get('device', '?')}, {run.info.get('data', '?')}"}


def loss_section(heading: Heading, run) -> Deliverable:
    losses = run.losses
    tail = float(np.mean(losses[-max(1, len(losses) // 10):]))
    svg = loss_curve_svg(losses, steps_per_epoch=run.config.epoch_length_of_run(len(losses)))
    return heading.made({**run_settings(run), "steps": f"{len(losses):,}", "mean loss over the last 10 %": f"{tail:.4f}"},
                        [svg_figure(svg, "training loss")])


def epochs_section(heading: EpochsHeading, run, what: str) -> Deliverable:
    """The run's stored per-epoch pictures at the heading's epochs (else its first and last), nothing retrained;
    ``what``: what one picture shows."""
    wanted = heading.epochs
    shown = wanted if all(e in run.snapshots for e in wanted) else (min(run.snapshots), max(run.snapshots))
    model = run.config.model
    figures = [png_figure(grid_of(run.snapshots[e], model), f"after epoch {e}")
               for e in shown]
    settings = {**run_settings(run), "epochs shown": ", ".join(map(str, shown))}
    if model in DDPMS or model in FLOWS:  # the samplers' grids (the denoisers' are one pass)
        settings[GRID_STRIDE_WORDS] = run.config.sample_stride
    note = "" if shown == wanted else f"This run stored no epochs {spoken_list(wanted)}: its first and last."
    return heading.made(settings, figures, " ".join(filter(None, [what, note])))


def training_piece(label: str, model_id: str, loss: Heading, epochs: EpochsHeading, what: str) -> Piece:
    """The report piece of a sampler's training section (B2, B3, flow B2.2 – 2.6): the shown run's loss curve and its
    samples after the deliverable's epochs (``what``: what one picture shows)."""

    def make(c: Context):
        run = shown_run(model_id)
        return [loss_section(loss, run), epochs_section(epochs, run, what)], None

    return Piece((loss, epochs), label, one, make)


def class_grid(scale: float) -> str:
    """What a class-conditioned run's stored picture shows."""
    return f"4 samples of every digit (γ = {scale:g}), one row per digit."


def spoken_list(items) -> str:
    """"1, 5 and 10"."""
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def one(_: Context) -> int:
    return 1


def failure_text(err: BaseException) -> str:
    """One sentence for a section that could not be made."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        return "The GPU ran out of memory for this section; the others are unaffected. Run the report again when " \
               "fewer people are sampling."
    if isinstance(err, RemoteUnavailable):
        return f"{err}. The model server did not answer for this section."
    return f"Not made: {err}" if str(err) else f"Not made: {type(err).__name__}"


