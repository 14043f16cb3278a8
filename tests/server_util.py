"""The model server (lib.model_server on Ray Serve) as a test starts it: a subprocess on a free loopback port, in a
session of its own, stopped — with every process Ray started — when the test ends, and on its own if the test run dies
(``--exit-with`` the pytest process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.browser_util import ROOT, ends_with_the_tests, free_port

TOKEN = "test-server-token-0123456789"


def session_pids(sid: int) -> list[int]:
    """Every live process of session ``sid`` (Ray's GCS, raylet and actor workers have process groups of their own,
    but stay in the session of the process that started the cluster)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, session, …
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


class ModelServerProcess:
    """``python -m lib.model_server`` with ``models``; ``url`` (once ``wait_ready`` returned), ``stop()``, ``log()``."""

    PORT_TRIES = 3  # a free port can be taken before the server binds it (Ray's own processes pick random ports too)

    def __init__(self, models: str, log_path: Path, env: dict[str, str] | None = None, port: int | None = None,
                 max_batch_size: int = 16, shipped_dir: Path | None = None, args: tuple[str, ...] = ()):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self._fixed_port = port is not None
        full_env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
        full_env.update({"DIFFUSION_LAB_SERVER_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"},
                        **(env or {}))
        self._env = full_env
        self._args = ["--models", models, "--num-cpus", "2", "--max-batch-size", str(max_batch_size),
                      "--exit-with", str(os.getpid()), *(["--shipped-dir", str(shipped_dir)] if shipped_dir else []),
                      *args]  # ``args``: more of lib.model_server's flags
        self._start(port or free_port())

    def _start(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log_start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lib.model_server", "--host", "127.0.0.1", "--port", str(port), *self._args],
            cwd=ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=ends_with_the_tests,
        )

    def __enter__(self) -> "ModelServerProcess":
        """``with ModelServerProcess(...) as server``: ready inside, stopped after, however the block ends."""
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 180.0) -> "ModelServerProcess":
        deadline = time.monotonic() + timeout
        tries = 1
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                lost_port = f"Failed to bind to address '127.0.0.1:{self.port}'" in self._log_since_start()
                if lost_port and not self._fixed_port and tries < self.PORT_TRIES:
                    self.kill()  # what is left of Ray's processes, then again on another free port
                    self._start(free_port())
                    tries += 1
                    continue
                raise RuntimeError(f"the model server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = requests.get(f"{self.url}/health", timeout=2)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return self
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"the model server did not answer /health within {timeout:.0f} s:\n{self.log()}")

    def _log_since_start(self) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """SIGKILL to every process of the server's session: a crash, as far as clients can tell."""
        for pid in session_pids(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(15)

    def stop(self) -> None:
        """SIGTERM (the server stops Ray), then SIGKILL whatever of its session is left."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while session_pids(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        self.kill()
        self._log.close()


def killed_at(server: ModelServerProcess, step: int):
    """A sampler's ``on_step`` that kills ``server`` once step ``step`` is done (mid-sampling), and the steps it saw."""
    steps: list[int] = []

    def on_step(k, *_):
        steps.append(k)
        if k == step:
            server.kill()

    return on_step, steps
