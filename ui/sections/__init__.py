"""The assignment's sections — the app's unit — in the assignment's order, each with its number and title declared once.

A section's ``slug`` names everything that belongs to it: its page (``app_pages/<slug>.py``), its module here
(``ui/sections/<slug>.py``: its defaults, its cached computations and its part of the whole-assignment report), its
widget keys (``<slug>_…``) and its URL. The assignment's own number ("1.7.2") is data, shown to users; no file, key or
name carries it. Home's contents, the sidebar (``st.navigation``), the page titles and the report all read this table.

The app teaches two editions of the assignment (``EDITIONS``); a section says which ones it belongs to, and a page that
differs between editions is two sections with two slugs (never one page guessing which "t" it is showing).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edition:
    """One edition of the assignment: what a student's course teaches."""

    key: str  # the URL's ``?edition=`` value and the session's choice
    name: str  # "DDPM + DeepFloyd IF (2024)"
    course: str  # Home's card: what "my course uses" means for this edition
    noise_path: str  # LaTeX: the edition's path between a clean image and noise, which its part B starts from
    noise_path_caption: str  # what ``noise_path`` means, in plain words
    part_a: str = ""  # where the app's part A is not only this edition's own: says which part A it shows


EDITIONS = {e.key: e for e in (
    Edition("ddpm", "DDPM + DeepFloyd IF (2024)",
            "Part A samples and edits with DeepFloyd IF; part B trains DDPMs (noise prediction, T = 300) on MNIST.",
            r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon",
            "Every page starts from this forward process: a clean image x₀ noised to step t."),
    Edition("flow", "Flow matching (2025–26)",
            "Part B trains flow-matching UNets (velocity prediction, Euler sampling, t = 0 noise → 1 image) on MNIST.",
            r"x_t = (1 - t)\,x_0 + t\,x_1,\qquad x_0 \sim \mathcal{N}(0, I)",
            "Part B's flow matching starts from this straight path: t = 0 is pure noise x₀, t = 1 the clean digit x₁.",
            part_a="Part A here is twofold: the DeepFloyd IF part A that the 2025 course still taught (DDPM "
                   "timesteps, t = 0 clean), then the Fall 2026 part A (t = 0 noise) on the edition's "
                   "PixNerd-XXL-P16-T2I where a GPU holds it, else on the class-conditioned MNIST flow model of part "
                   "B (chosen in the sidebar, for its pages and the whole-assignment report alike)."),
)}
DEFAULT_EDITION = "ddpm"


@dataclass(frozen=True)
class Section:
    """One section of the assignment as the app shows it."""

    slug: str
    part: str  # key of PARTS
    number: str  # the assignment's own numbering: "1.7, 1.7.1, 1.7.3"
    title: str  # short: the sidebar's label after the number
    summary: str  # what its page shows, for Home's contents
    heading: str = ""  # the page's title after the number, where it says more than ``title``
    trains: str = ""  # part B: the shipped run its page trains (``model_store.SHIPPED_RUNS``: mostly the model's name)
    editions: tuple[str, ...] = tuple(EDITIONS)  # the editions (keys of EDITIONS) that teach this section
    version: str = ""  # of its part, where one edition teaches two: "DeepFloyd IF (2025)" (``part_groups``)

    @property
    def page(self) -> str:
        """The page file, relative to the app's root (what ``st.Page`` and ``st.page_link`` take)."""
        return f"app_pages/{self.slug}.py"

    @property
    def label(self) -> str:
        """"1.7.2 · Inpainting": the sidebar's entry and the page's title."""
        return f"{self.number} · {self.title}"

    @property
    def page_title(self) -> str:
        """The page's heading: "1.1 – 1.2 · Forward process and classical denoising"."""
        return f"{self.number} · {self.heading or self.title}"


PARTS = {"A": "Part A · a pretrained model", "B": "Part B · MNIST from scratch", "report": "The whole assignment"}
# The flow edition teaches both versions of part A: the one its 2025 course kept and its Fall 2026 one.
IF_PART_A = "DeepFloyd IF (2025)"
FLOW_PART_A = "flow model (Fall 2026)"

SECTIONS = (
    Section("stock", "A", "0", "Stock pipeline", "Sampling from the stock pipeline at several step counts",
            heading="Sampling with the stock pipeline", version=IF_PART_A),
    Section("forward", "A", "1.1 – 1.2", "Forward process", "The forward process and classical (blur) denoising",
            heading="Forward process and classical denoising", version=IF_PART_A),
    Section("iterative", "A", "1.3 – 1.4", "Iterative denoising",
            "One-step vs iterative denoising along strided timesteps", heading="One-step vs iterative denoising",
            version=IF_PART_A),
    Section("guidance", "A", "1.5 – 1.6", "Sampling and CFG", "Sampling from pure noise; classifier-free guidance",
            heading="Sampling from noise and classifier-free guidance", version=IF_PART_A),
    Section("sdedit", "A", "1.7, 1.7.1, 1.7.3", "Image-to-image",
            "SDEdit on photos, web images, sketches and with prompts", heading="Image-to-image (SDEdit)",
            version=IF_PART_A),
    Section("inpainting", "A", "1.7.2", "Inpainting", "Inpainting (RePaint)", version=IF_PART_A),
    Section("anagrams", "A", "1.8", "Visual anagrams", "Visual anagrams: one image, two prompts, two views",
            version=IF_PART_A),
    Section("hybrids", "A", "1.9", "Hybrid images", "Hybrid images: low frequencies of one prompt, high of another",
            version=IF_PART_A),
    Section("flow_denoising", "A", "1.1 – 1.3", "Noisy inputs and one-step denoising",
            "The straight path from noise to image; classical (blur) and one-step denoising",
            heading="Noisy inputs, classical and one-step denoising", editions=("flow",), version=FLOW_PART_A),
    Section("flow_velocity", "A", "1.4", "Visualizing velocity",
            "The model's update against the true one, and where they differ", editions=("flow",), version=FLOW_PART_A),
    Section("flow_euler", "A", "1.5", "Euler sampling",
            "Euler steps from t = 0.5, against the one-step estimate and the blur", editions=("flow",),
            version=FLOW_PART_A),
    Section("flow_sampling", "A", "1.6, 2.1", "Sampling and CFG", "Generating from noise; classifier-free guidance",
            heading="Generating from noise and classifier-free guidance", editions=("flow",), version=FLOW_PART_A),
    Section("flow_editing", "A", "3.1 – 3.2", "Image-to-image editing",
            "Editing from seven start times: photos, web images, drawings, and with another prompt",
            heading="Image-to-image and text-guided editing", editions=("flow",), version=FLOW_PART_A),
    Section("flow_inpainting", "A", "3.2+", "Inpainting (extra)",
            "Not part of the Fall 2026 assignment: the DDPM edition's 1.7.2 in flow form — a masked region "
            "regenerated, the known pixels put back on their path at every new t",
            heading="Inpainting in flow form (extra: not part of the Fall 2026 assignment)", editions=("flow",),
            version=FLOW_PART_A),
    Section("flow_anagrams", "A", "3.3", "Visual anagrams", "One image, two prompts: as it is and rotated 180°",
            editions=("flow",), version=FLOW_PART_A),
    Section("flow_hybrids", "A", "3.4", "Hybrid images",
            "Hybrid images: the velocity's low frequencies from one prompt, its high from another", editions=("flow",),
            version=FLOW_PART_A),
    Section("single_step", "B", "B1", "Single-step denoiser",
            "A UNet that denoises at one σ; training and the σ sweep", heading="Single-step denoising UNet",
            trains="denoiser"),
    Section("time_ddpm", "B", "B2", "Time-conditioned DDPM", "A DDPM told the timestep; schedule, training, sampling",
            trains="time", editions=("ddpm",)),
    Section("class_ddpm", "B", "B3", "Class-conditioned DDPM", "Adding the digit and classifier-free guidance",
            heading="Class-conditioned DDPM with classifier-free guidance", trains="class", editions=("ddpm",)),
    Section("pure_noise", "B", "B1.2.3", "Denoising pure noise",
            "The B1 UNet fed pure noise: it learns the average digit", heading="Denoising pure noise: the centroid",
            trains="pure_noise", editions=("flow",)),
    Section("time_flow", "B", "B2.1 – 2.3", "Time-conditioned flow",
            "Flow matching: a UNet told t learns the velocity from noise to a digit; Euler sampling",
            heading="Time-conditioned flow matching", trains="flow_time", editions=("flow",)),
    Section("class_flow", "B", "B2.4 – 2.6", "Class-conditioned flow",
            "Adding the digit and classifier-free guidance to the flow",
            heading="Class-conditioned flow matching with classifier-free guidance", trains="flow_class",
            editions=("flow",)),
    Section("constant_lr", "B", "B2.6", "No LR scheduler",
            "The class flow trained at a constant learning rate, side by side with the scheduled run",
            heading="Can we get rid of the annoying learning rate scheduler?", trains="flow_class_constant_lr",
            editions=("flow",)),
    Section("ddpm_vs_flow", "B", "B+", "DDPM vs flow matching",
            "Beyond the assignment: both objectives on the same UNet, data and noise — quality per network evaluation, "
            "and one digit's two paths", heading="DDPM and flow matching side by side"),
    Section("whole_assignment", "report", "A + B", "The whole assignment",
            "Every deliverable in one run: one progress bar, one HTML report",
            heading="The whole assignment in one run"),
)
BY_SLUG = {s.slug: s for s in SECTIONS}


def in_part(part: str, edition: str = DEFAULT_EDITION) -> list[Section]:
    """The sections of one part that an edition teaches, in the assignment's order."""
    return [s for s in SECTIONS if s.part == part and edition in s.editions]


def part_groups(part: str, edition: str = DEFAULT_EDITION, sections: tuple[Section, ...] = SECTIONS
                ) -> dict[str, list[Section]]:
    """An edition's sections of one part under their headings, in order: one heading, ``PARTS[part]``, or one per
    version where the edition teaches two versions of the part ("Part A · DeepFloyd IF (2025)"), so that no heading
    lists the same section number twice. Empty for a part the edition lacks."""
    shown = [s for s in sections if s.part == part and edition in s.editions]
    versions = list(dict.fromkeys(s.version for s in shown))
    if len(versions) <= 1:
        return {PARTS[part]: shown} if shown else {}
    return {f"Part {part} · {v}": [s for s in shown if s.version == v] for v in versions}


def training_section(model: str) -> Section | None:
    """The section whose page trains ``model`` (None if the app has no such page)."""
    return next((s for s in SECTIONS if s.trains == model), None)
