"""A class at once: N concurrent sessions of the real app, on loopback, through one model server (issue #26 item 3).

Starts the model server (``python -m lib.model_server``, Ray on 127.0.0.1, the shipped class model, its own store) and
the front end (``streamlit run Home.py`` configured with that server, its own model cache), then drives headless
Chromium (Playwright; one browser, one context per session: a student's tab):
  sampling session   opens 1.5 – 1.6 (guidance), chooses the sidebar's *Model server*, types its own seed and waits for
                     the page's result; the grid it downloads ("Download all") must equal, pixel for pixel, the same
                     sweep computed here on the local model (ui.sections.guidance.guidance_sweep, the page's own cached
                     function) — its own correct result, not a classmate's;
  training session   (every ``--train-every``-th) opens B1, keeps *On the model server*, makes a short run with its own
                     training seed and presses Train; the run must finish ("Training finished") and the file the front
                     end fetched must be the server's stored run of exactly that configuration, byte for byte.
First one lone sampling session and one lone training session (the baselines; they also warm the app's caches), then the N
sessions at once. Reports p50/p95 time to result against the lone session, the front end's resident memory (the
streamlit process: warm, peak, with every session still connected; per session; whether ``--class-size`` fit Community
Cloud's 2.7 GB) and the server's batches (``/health``: requests per UNet call). Bounded: ``--sessions`` ≤ 60 and
``--time-limit`` for the whole run; every server is stopped on the way out, on failure and on SIGTERM too.

Run:  python bench/load_test.py [--sessions 30] [--train-every 10] [--train-steps 4] [--time-limit 1500]
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import mnist_root, parser, report, setup

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from lib.backends.remote import ServerClient  # noqa: E402
from lib.media.images import grid  # noqa: E402
from lib.train import model_store, run_defaults  # noqa: E402
from lib.train.data import ROOT_ENV  # noqa: E402
from tests.browser_util import CHROMIUM, CHROMIUM_ARGS, IDLE_JS, StreamlitServer  # noqa: E402
from tests.server_util import TOKEN, ModelServerProcess  # noqa: E402
from ui.backend import FAMILY_DEFAULTS, SERVER_CHOICE  # noqa: E402
from ui.sections.guidance import DEFAULTS as GUIDANCE  # noqa: E402

MAX_SESSIONS = 60
COMMUNITY_CLOUD_BYTES = 2.7e9  # Streamlit Community Cloud's memory per app (≈ 2.7 GB)
DOWNLOAD_LABEL = "Download all (one row per γ)"  # the guidance page's grid
FINISHED = "Training finished"
FAILED = '[data-testid="stException"], [data-testid="stAlertContentError"]'  # an exception or an st.error
TRAIN_PAGE, SAMPLE_PAGE = "single_step", "guidance"


@dataclasses.dataclass
class Outcome:
    kind: str  # "sample" | "train"
    seed: int
    seconds: float | None = None  # from the action to the result on screen
    error: str = ""
    png: bytes | None = None  # the sampling session's downloaded grid


class RssSampler(threading.Thread):
    """The resident memory of one process (VmRSS), sampled every ``every`` s; ``peak`` since the last ``reset``."""

    def __init__(self, pid: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self._stop = pid, every, 0, threading.Event()

    def now(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def reset(self) -> None:
        self.peak = self.now()

    def run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.peak = max(self.peak, self.now())
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()


async def idle(page, settle_ms: int = 750) -> None:
    """The async form of tests/test_browser.wait_for_app: let the action's rerun start, then wait until the app has
    been idle for ``settle_ms``."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await page.wait_for_function("document.querySelector('[data-testid=stApp]')?.dataset.testScriptState"
                                     " !== 'notRunning'", timeout=2_000, polling=50)
    except PlaywrightTimeout:
        pass
    await page.evaluate("window.__idleSince = null")
    await page.wait_for_function(IDLE_JS % settle_ms, polling=100)  # the context's timeout (``new_context``)


async def open_page(context, path: str):
    page = await context.new_page()
    await page.goto(f"/{path}")
    await page.wait_for_selector('[data-testid="stMain"] h1')
    await idle(page)
    return page


async def no_exception(page) -> str:
    errors = page.locator(FAILED)
    return "" if await errors.count() == 0 else (await errors.first.inner_text())[:300]


async def type_number(page, label: str, value: int) -> None:
    box = page.locator('[data-testid="stMain"]').get_by_label(label, exact=True)
    await box.fill(str(value))
    await box.press("Enter")


async def sampling_session(context, seed: int) -> Outcome:
    out = Outcome("sample", seed)
    page = await open_page(context, SAMPLE_PAGE)
    await page.locator('[data-testid="stSidebar"]').get_by_text(SERVER_CHOICE, exact=True).click()
    await idle(page)
    start = time.perf_counter()
    await type_number(page, "Seed", seed)
    await idle(page)
    if error := await no_exception(page):
        out.error = error
        return out
    # the caption of this seed's result: the one sure sign (under a heavy load "idle" can come before the rerun starts)
    await page.get_by_text(f"seed {seed}, prompt").wait_for()
    out.seconds = time.perf_counter() - start
    # the run that drew it goes on to the download button below it: until it has, the button on screen is the last
    # run's (stale), which takes no clicks (ui.layout.BASE_CSS)
    await idle(page)
    async with page.expect_download() as info:
        await page.get_by_role("button", name=DOWNLOAD_LABEL).click()
    out.png = Path(await (await info.value).path()).read_bytes()
    return out


async def training_session(context, seed: int, steps: int) -> Outcome:
    out = Outcome("train", seed)
    page = await open_page(context, TRAIN_PAGE)
    main = page.locator('[data-testid="stMain"]')
    short = main.get_by_text("Short run: train only a few batches per epoch", exact=True)
    if not await main.get_by_role("checkbox", name="Short run: train only a few batches per epoch").is_checked():
        await short.click()
        await idle(page)
    await type_number(page, "Batches per epoch", steps)
    await idle(page)
    await type_number(page, "Training seed", seed)
    await idle(page)
    start = time.perf_counter()
    await main.get_by_role("button", name="Train", exact=True).click()
    await main.get_by_text(FINISHED).or_(page.locator(FAILED)).first.wait_for()
    out.seconds = time.perf_counter() - start
    out.error = await no_exception(page)
    return out


async def bounded(coro, kind: str, seed: int) -> Outcome:
    try:
        return await coro
    except Exception as err:  # a session that broke is a result of the load test, not the end of it
        return Outcome(kind, seed, error=f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}")


async def drive(app_url: str, lone_seed: int, seeds: list[int], train_every: int, steps: int, rss: RssSampler,
                server: ServerClient, time_limit: float) -> tuple[list[Outcome], list[Outcome], dict]:
    """The lone sessions, then the crowd. Returns their outcomes and what was measured around the crowd: the front
    end's memory (warm, peak, connected), its wall time and the server's /health before and after."""
    from playwright.async_api import async_playwright

    async def new_context():
        """A student's tab. Any one wait in it may take the whole time limit: under load a training session queues
        behind the others' runs for the server's training CPU (the page says so) before its own run starts."""
        context = await browser.new_context(base_url=app_url, accept_downloads=True)
        context.set_default_timeout(time_limit * 1000)
        return context

    memory = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            lone = []
            for kind, run in (("sample", lambda c: sampling_session(c, lone_seed)),
                              ("train", lambda c: training_session(c, lone_seed, steps))):
                context = await new_context()
                lone.append(await bounded(asyncio.wait_for(run(context), time_limit), kind, lone_seed))
                await context.close()
            print(f"lone sessions: {[(o.kind, o.seconds, o.error) for o in lone]}", flush=True)
            memory["warm"] = rss.now()
            memory["health"] = [server.health()]
            rss.reset()
            contexts = [await new_context() for _ in seeds]
            sessions = [training_session(c, s, steps) if (i + 1) % train_every == 0 else sampling_session(c, s)
                        for i, (c, s) in enumerate(zip(contexts, seeds))]
            kinds = ["train" if (i + 1) % train_every == 0 else "sample" for i in range(len(seeds))]
            start = time.perf_counter()
            tasks = [asyncio.ensure_future(bounded(s, k, seed)) for s, k, seed in zip(sessions, kinds, seeds)]
            done, pending = await asyncio.wait(tasks, timeout=time_limit)
            for t in pending:
                t.cancel()
            crowd = [t.result() if t in done else Outcome(k, seed, error=f"not done within {time_limit:.0f} s")
                     for t, k, seed in zip(tasks, kinds, seeds)]
            memory["wall_s"] = time.perf_counter() - start
            memory["peak"] = rss.peak
            memory["connected"] = rss.now()  # every session still open, idle
            memory["health"].append(server.health())
            for c in contexts:
                await c.close()
        finally:
            await browser.close()
    return lone, crowd, memory


def reference_grid(seed: int) -> np.ndarray:
    """The guidance page's downloaded grid for ``seed`` at its defaults, computed here on the local shipped model."""
    import ui.common
    from ui.sections.guidance import guidance_sweep

    d = FAMILY_DEFAULTS["mnist"]
    result, _ = guidance_sweep(f"load-test-{seed}", d.prompt, tuple(sorted(GUIDANCE.scales)), GUIDANCE.samples,
                               d.stride, seed, ui.common.mnist_ddpm("class"))
    return grid(result.flatten(0, 1), GUIDANCE.samples, upscale=2)


def check(outcomes: list[Outcome], config_of, front_cache: Path, store: Path) -> None:
    """Each session's own correct result: a sampling session's grid equals the local computation for its seed; a
    training session's fetched run is the server's stored run of its configuration, byte for byte."""
    for o in outcomes:
        if o.error or o.seconds is None:
            continue
        if o.kind == "sample":
            shown = np.asarray(Image.open(io.BytesIO(o.png)))
            expected = reference_grid(o.seed)
            if shown.shape != expected.shape or not np.array_equal(shown, expected):
                diff = np.abs(shown.astype(int) - expected.astype(int)).max() if shown.shape == expected.shape else "shape"
                o.error = f"the grid of seed {o.seed} differs from the local computation (max |Δ| {diff})"
        else:
            name = model_store.cache_path(config_of(o.seed)).name
            fetched, stored = front_cache / name, store / name
            if not (fetched.exists() and stored.exists() and fetched.read_bytes() == stored.read_bytes()):
                o.error = f"the run of training seed {o.seed} is not the server's stored run ({name})"


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def summary(lone: list[Outcome], crowd: list[Outcome], memory: dict, n: int, class_size: int) -> None:
    print()
    ok = [o for o in crowd if not o.error]
    print(f"sessions: {n} ({sum(o.kind == 'train' for o in crowd)} training), {len(ok)} with their own correct result, "
          f"{n - len(ok)} errors; the crowd's wall time {memory['wall_s']:.1f} s")
    for o in crowd:
        if o.error:
            print(f"  ERROR {o.kind} seed {o.seed}: {o.error}")
    for kind, alone in zip(("sample", "train"), lone):
        times = [o.seconds for o in ok if o.kind == kind]
        if not times or alone.seconds is None:
            print(f"{kind}: no time to compare (lone: {alone.error or 'ok'}, crowd: {len(times)} results)")
            continue
        p50, p95 = statistics.median(times), percentile(times, 95)
        print(f"{kind}: time to result, lone {alone.seconds:.1f} s; {len(times)} at once: p50 {p50:.1f} s, "
              f"p95 {p95:.1f} s, max {max(times):.1f} s")
        report(f"{kind} time to result, {n} sessions at once (p50) vs a lone session", "s", p50, alone.seconds,
               higher_is_better=False)
    mb = 2**20
    per_session = max(memory["connected"], memory["peak"]) - memory["warm"]
    per_session /= n
    projected = memory["warm"] + class_size * per_session
    print(f"front end RSS: warm {memory['warm'] / mb:.0f} MiB, peak {memory['peak'] / mb:.0f} MiB, "
          f"{n} connected {memory['connected'] / mb:.0f} MiB → {per_session / mb:.1f} MiB per session (from the peak)")
    print(f"a class of {class_size}: ≈ {projected / mb:.0f} MiB → "
          f"{'fits' if projected <= COMMUNITY_CLOUD_BYTES else 'does NOT fit'} Community Cloud's 2.7 GB")
    before, after = memory["health"]
    sizes = {int(k): after["batch_sizes"].get(k, 0) - before["batch_sizes"].get(k, 0) for k in after["batch_sizes"]}
    sizes = {k: v for k, v in sorted(sizes.items()) if v}
    calls = sum(sizes.values())
    rows = sum(k * v for k, v in sizes.items())
    print(f"server batches during the crowd (requests per UNet call → calls): {sizes}; {rows} requests in {calls} "
          f"calls, {rows / max(calls, 1):.2f} per call")


def print_logs(server: ModelServerProcess, app: StreamlitServer | None) -> None:
    for name, proc in (("model server", server), ("streamlit", app)):
        if proc is not None:
            print(f"--- {name} log ---\n{proc.log()}", file=sys.stderr)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sessions", type=int, default=30, help=f"concurrent sessions (1 – {MAX_SESSIONS})")
    p.add_argument("--train-every", type=int, default=10, help="every k-th session trains a B1 run on the server")
    p.add_argument("--train-steps", type=int, default=4, help="batches per epoch of those runs (B1's 5 epochs)")
    p.add_argument("--class-size", type=int, default=30, help="the class whose memory is projected")
    p.add_argument("--time-limit", type=float, default=1500.0, help="seconds for the crowd, and for each lone session")
    args = p.parse_args()
    if not 1 <= args.sessions <= MAX_SESSIONS:
        sys.exit(f"--sessions must be between 1 and {MAX_SESSIONS}")
    if not CHROMIUM.exists():
        sys.exit(f"needs Debian's chromium at {CHROMIUM}")
    setup(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped benchmark still runs the finally below

    b1 = run_defaults.default_config("denoiser", 60_000, "mnist", on_gpu=False)  # B1's page on the whole MNIST

    def config_of(seed: int):
        return dataclasses.replace(b1, seed=seed, steps_per_epoch=args.train_steps)

    with tempfile.TemporaryDirectory(prefix="load-test-") as tmp:
        tmp = Path(tmp)
        store, front_cache = tmp / "server-store", tmp / "front-cache"
        data = {ROOT_ENV: str(mnist_root())}
        server = ModelServerProcess("mnist-class", tmp / "server.log", env={"DIFFUSION_LAB_CACHE": str(store), **data})
        app = rss = None
        try:
            server.wait_ready()
            env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
            env.update({"DIFFUSION_LAB_SERVER_URL": server.url, "DIFFUSION_LAB_SERVER_TOKEN": TOKEN,
                        "DIFFUSION_LAB_CACHE": str(front_cache), **data})
            app = StreamlitServer(env, tmp / "streamlit.log")
            app.wait_healthy()
            rss = RssSampler(app.proc.pid)
            rss.start()
            seeds = [1000 + i for i in range(args.sessions)]
            lone, crowd, memory = asyncio.run(drive(app.url, 999, seeds, args.train_every, args.train_steps, rss,
                                                    ServerClient(server.url, TOKEN), args.time_limit))
            check(lone + crowd, config_of, front_cache, store)
            summary(lone, crowd, memory, args.sessions, args.class_size)
            if any(o.error for o in lone + crowd):
                print_logs(server, app)  # what the servers said about the sessions that failed
        except BaseException:
            print_logs(server, app)
            raise
        finally:
            if rss is not None:
                rss.stop()
            if app is not None:
                app.stop()
            server.stop()


if __name__ == "__main__":
    main()
