"""A test run that is stopped — SIGTERM from ``timeout`` or a CI runner, or SIGKILL — leaves no server behind: the
servers tests start (``tests.browser_util.StreamlitServer``, ``tests.server_util.ModelServerProcess``) are stopped
by their fixtures' teardown, which ``conftest`` makes SIGTERM run, and die with the test process in any case
(``ends_with_the_tests``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.browser_util import ROOT

A_RUN_WITH_A_SERVER = '''
import os, time
import pytest
from tests.browser_util import StreamlitServer

@pytest.fixture
def server(tmp_path):
    s = StreamlitServer(dict(os.environ), tmp_path / "streamlit.log")
    yield s
    s.stop()

def test_waits(server):
    print("SERVER", server.proc.pid, flush=True)
    time.sleep(600)
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone, only not yet reaped
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_test_run_leaves_no_server_behind(tmp_path, signum):
    (tmp_path / "test_run_with_a_server.py").write_text(A_RUN_WITH_A_SERVER)
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-s", "-q", "-p", "no:cacheprovider",
                            "--rootdir", str(tmp_path), str(tmp_path / "test_run_with_a_server.py")],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in run.stdout:
            if line.startswith("SERVER"):
                server = int(line.split()[1])
                break
        else:
            pytest.fail("the inner run never started its server")
        assert alive(server)
        run.send_signal(signum)
        run.wait(60)
        deadline = time.monotonic() + 30
        while alive(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(server), f"the server (pid {server}) outlived a test run stopped by {signum.name}"
    finally:
        run.kill()
        run.wait()
