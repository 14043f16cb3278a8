"""Helpers for the tests that run the whole app: page discovery, a tiny shipped model, a live Streamlit server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# True once the app has been idle for %d ms without a break: no script run under way (Streamlit's root element carries
# ``data-test-script-state``), no element left stale from the previous run, no skeleton; reset ``window.__idleSince``
# before each wait.
IDLE_JS = """() => {
    const state = document.querySelector('[data-testid=stApp]')?.dataset.testScriptState;
    const busy = state !== 'notRunning' || document.querySelector('[data-testid=stSkeleton], [data-stale=true]') !== null;
    const now = performance.now();
    if (busy) { window.__idleSince = null; return false; }
    window.__idleSince = window.__idleSince ?? now;
    return now - window.__idleSince > %d;
}"""


@dataclass(frozen=True)
class AppPage:
    file: Path
    name: str  # what Streamlit calls it: the file name without the "NN_" prefix and ".py"

    @property
    def url_path(self) -> str:
        """The page's URL path: its file name without the ordering prefix, as Home.py's navigation gives it (the
        landing page is served at "/")."""
        return self.name


def discover_pages(root: Path = ROOT) -> list[AppPage]:
    """Every page in app_pages/ that Home.py's navigation lists — the default edition's sections (``ui.sections``) —
    named as the navigation names them (the same rule as ``streamlit.source_util.page_icon_and_name``)."""
    from streamlit.source_util import page_icon_and_name, page_sort_key

    from ui.sections import DEFAULT_EDITION, SECTIONS

    listed = {Path(s.page).name for s in SECTIONS if DEFAULT_EDITION in s.editions}
    files = sorted((root / "app_pages").glob("*.py"), key=page_sort_key)
    return [AppPage(f, page_icon_and_name(f)[1]) for f in files if f.name in listed]


def save_tiny_shipped_model(folder: Path, hidden: int = 8) -> Path:
    """A random-weight class-conditioned UNet (D = ``hidden``) saved as ``folder``/class.safetensors, the way
    ``scripts/train_models.py`` saves the shipped model, so the app runs on it in a fraction of a second."""
    from lib.train import model_store
    from lib.train.training import TrainConfig, TrainedRun
    from lib.train.unets import build_model

    config = TrainConfig.spec("class", hidden=hidden, epochs=1, steps_per_epoch=1, snapshot_epochs=(1,))
    torch.manual_seed(1)
    result = TrainedRun(config, build_model("class", hidden).eval(), [1.0],
                        {1: torch.zeros(40, 28, 28, dtype=torch.uint8)}, {"seconds": 0.0})
    return model_store.save_run(result, Path(folder) / "class.safetensors", {"note": "tiny random test model"})


def ends_with_the_tests() -> None:
    """``preexec_fn`` of a server a test starts: the kernel sends it SIGTERM when the test process dies, however it
    dies (prctl PR_SET_PDEATHSIG) — a SIGKILLed or crashed test run leaves no server behind. Linux only; elsewhere the
    fixtures' teardown (and ``conftest``'s SIGTERM handling) is all there is."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``python3 -m streamlit run Home.py`` on a free loopback port, as a subprocess with its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=ends_with_the_tests,
        )

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"streamlit did not answer /_stcore/health within {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(15)
        self._log.close()
