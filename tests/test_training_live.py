"""The live view of a model server's training job (``ui.training.live``) when the server does not answer, and what it
says of a run cancelled before its first step. The server is a real address on 127.0.0.1 where nothing listens: every
request the view makes really fails."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.browser_util import free_port


def _live_view_of(url: str, status: str, step: int, total_steps: int) -> None:
    """The live view of a server job in ``status`` after ``step`` of ``total_steps`` (the AppTest's script)."""
    from lib.backends.remote_training import RemoteJob, RemoteTrainingJobs
    from lib.train.training import TrainConfig
    from ui.training.live import _live_view

    jobs = RemoteTrainingJobs(url, client_id="live-view-test", retries=1, backoff=0.0, connect_timeout=1.0)
    job = RemoteJob(jobs, TrainConfig.spec("denoiser"), "denoiser-" + "0" * 20)
    job.apply_state({"status": status, "error": "", "progress": {"step": step, "total_steps": total_steps}})
    _live_view(job, "live_test", False, "_live_test_watching")


def _app(status: str, step: int, total_steps: int) -> AppTest:
    return AppTest.from_function(_live_view_of, args=(f"http://127.0.0.1:{free_port()}", status, step, total_steps),
                                 default_timeout=30).run()


def test_cancel_on_a_server_that_stopped_answering_says_so_and_keeps_the_view():
    at = _app("running", 5, 100)
    assert not at.exception
    assert any("not reachable" in w.value for w in at.warning)  # the failed poll, said by the view
    at.button(key="live_test_cancel").click().run()
    assert not at.exception  # RemoteUnavailable from the cancel request is the view's message, not a traceback
    (toast,) = at.toast
    assert "not cancelled" in toast.value and "not reachable" in toast.value


def test_a_run_cancelled_before_its_first_step_is_not_said_to_have_kept_a_state():
    at = _app("cancelled", 0, 0)
    (warning,) = at.warning
    assert warning.value == "Training was cancelled before its first step."
    after = _app("cancelled", 5, 100)
    (warning,) = after.warning
    assert warning.value.startswith("Training was cancelled after 5 of 100 steps.")
    assert "kept its state" in warning.value
