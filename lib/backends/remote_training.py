"""Part-B training on the model server's Ray cluster (``lib.model_server_training``), seen from the app: the remote
twin of ``lib.train.runs.TrainingJobs``.

``RemoteTrainingJobs(url, token).start(config)`` submits a ``TrainConfig``; ``get(config)`` finds the server's job for
it. A job has the shape of a local ``lib.train.runs.Job``, so a page can show either: ``config``, ``status``
(``queued`` | ``running`` | ``done`` | ``failed`` | ``cancelled``), ``progress`` (a ``lib.train.training.Progress``:
steps, losses, per-epoch grids, time — its ``seconds_left`` works as locally), ``error``, ``trained`` (the finished
``TrainedRun``) and ``stop()``; beside them ``queue_position`` (jobs ahead of it while Ray holds it queued) and
``watchers``.

* **One job per configuration for everyone**: the server keys jobs by ``job_key`` (the model store's content key), so
  a second client asking for the same configuration attaches to the running job, and a finished run is served from
  the server's store, never retrained.
* **Progress by increments**: each poll (at most one per ``poll_seconds``, however often a page reads the job) sends
  how many losses and which grids the client holds and gets only the rest; when the server's run went back (it
  resumed from a saved state after a restart) the answer says from which step the losses are new.
* **Watchers and cancel**: a client is known by the id it sends in ``CLIENT_HEADER`` (one per app session). Every poll
  renews its lease as a watcher of the job (the server drops a watcher whose lease ran out: a closed tab stops
  polling). ``stop()`` stops the run only when nobody else is watching; otherwise this client just leaves it.
* **The result** is the run's safetensors file as the server stored it, checked against the sha256 digest the server
  recorded when the run finished, then saved in the app's own model cache (``model_store.store_file``) and loaded with
  its own checks (``model_store.load_run``): a file that does not match is refused (``RunRefused``) and not kept.
* **A lost job comes back**: if the server forgot a job this client watches (restarted without its journal), the next
  poll submits the configuration again, and the run continues from its saved state.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

import torch

from lib.backends.remote import RemoteUnavailable, ServerClient
from lib.backends.wire import BadMessage, unpack
from lib.train import model_store
from lib.train.cache import CorruptEntry
from lib.train.precision import default_device
from lib.train.training import Progress, TrainConfig, TrainedRun

CLIENT_HEADER = "X-Client-Id"  # who is watching: one id per app session (``new_client_id``)
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
NO_JOB = "none"  # the status of a key the server holds no job for
POLL_SECONDS = 0.5  # at most one state request per job this often (a page's live view redraws every second)
# Per-epoch grids are uint8; they travel as float16, which holds every integer 0 … 255 exactly (the wire format's
# dtypes have no uint8)
GRID_WIRE_DTYPE = torch.float16


class RunRefused(RemoteUnavailable):
    """A downloaded run that does not match its digest or its configuration: refused, nothing kept."""


def job_key(config: TrainConfig) -> str:
    """The job of ``config`` on the server: its model and content key (``model_store``'s entry name)."""
    return model_store.cache_path(config).stem


def new_client_id() -> str:
    return secrets.token_hex(16)


def progress_fields(progress: Progress) -> dict:
    """``progress`` less its losses and grids (which travel as increments): steps, epoch, times, resumes."""
    return {k: v for k, v in vars(progress).items() if k not in ("losses", "snapshots")}


class RemoteTrainingJobs:
    """The training jobs of one app session on one model server (its ``client_id`` names it as a watcher)."""

    def __init__(self, url: str, token: str | None = None, client_id: str | None = None, *,
                 poll_seconds: float = POLL_SECONDS, **client_options):
        self.client = ServerClient(url, token, **client_options)
        self.client_id = client_id or new_client_id()
        self.client.session.headers[CLIENT_HEADER] = self.client_id
        self.poll_seconds = poll_seconds
        self._jobs: dict[str, RemoteJob] = {}

    def start(self, config: TrainConfig) -> "RemoteJob":
        """Submit ``config``: the server's job for it (a new one, the one running, or the finished run)."""
        state = self.submit(config)
        job = self._jobs.get(state["key"])
        if job is None or job.finished:  # a cancelled or failed run trained again is a new job
            job = self._jobs[state["key"]] = RemoteJob(self, config, state["key"])
        job.watching = True
        job.apply_state(state)
        return job

    def submit(self, config: TrainConfig) -> dict:
        return self.client.request("POST", "/training/jobs", json_body={"config": config.as_dict()}).json()

    def get(self, config: TrainConfig) -> "RemoteJob | None":
        """This session's job for ``config``, else the server's (this client then watches it); None if it has none."""
        key = job_key(config)
        job = self._jobs.get(key)
        if job is None:
            job = RemoteJob(self, config, key)
            job.refresh(force=True)
            if job.status == NO_JOB:
                return None
            self._jobs[key] = job
        return job


class RemoteJob:
    """A job on the server; reading ``status``, ``progress``, ``error``, ``queue_position`` or ``watchers`` polls it
    (at most every ``poll_seconds``) until it has finished."""

    def __init__(self, jobs: RemoteTrainingJobs, config: TrainConfig, key: str):
        self.jobs, self.config, self.key = jobs, config, key
        self.watching = True  # False once ``stop`` left the run to its other watchers
        self._state: dict = {"status": NO_JOB}
        self._progress = Progress()
        self._polled = float("-inf")
        self._problem = ""  # why the last poll or download failed (one line), until one succeeds
        self._trained: TrainedRun | None = None

    # --- the shape of a local job -------------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        self.refresh()
        return self._state["status"]

    @property
    def progress(self) -> Progress:
        self.refresh()
        return self._progress

    @property
    def error(self) -> str:
        self.refresh()
        return self._problem or self._state.get("error", "")

    @property
    def queue_position(self) -> int | None:
        """Jobs that Ray will start before this one (0: it starts next); None unless it is queued."""
        self.refresh()
        return self._state.get("queue_position")

    @property
    def watchers(self) -> int:
        self.refresh()
        return self._state.get("watchers", 0)

    @property
    def finished(self) -> bool:
        return self._state["status"] in FINISHED

    @property
    def trained(self) -> TrainedRun | None:
        """The finished run (downloaded once); None until it is done, or when the download failed (``error`` says
        why; a refused file also turns the job to ``failed``)."""
        if self._trained is None and self.status == "done":
            try:
                self._trained = self.result()
                self._problem = ""
            except RunRefused as err:
                self._state = {**self._state, "status": "failed", "error": str(err)}
            except RemoteUnavailable as err:
                self._problem = str(err)
        return self._trained

    def stop(self) -> bool:
        """Cancel the run if nobody else watches it (True: it stops, saving its state); else leave it to the others
        (False) and stop watching it."""
        answer = self.jobs.client.request("POST", f"/training/jobs/{self.key}/cancel").json()
        self.watching = False
        self.apply_state(answer["state"])
        return answer["stopped"]

    # --- talking to the server ----------------------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Fetch the job's state and the progress this client lacks (at most every ``poll_seconds`` unless ``force``;
        never once it has finished). A failed poll keeps the last progress and says why in ``error``."""
        now = time.monotonic()
        if self.finished or (not force and now - self._polled < self.jobs.poll_seconds):
            return
        self._polled = now
        p = self._progress
        params = {"since": len(p.losses), "epochs": ",".join(map(str, sorted(p.snapshots))),
                  "watch": int(self.watching)}
        try:
            r = self.jobs.client.request("GET", f"/training/jobs/{self.key}?" + "&".join(
                f"{k}={v}" for k, v in params.items()))
            tensors, meta = unpack(r.content)
            state = json.loads(meta["state"])
            if state["status"] == NO_JOB:
                tensors = None
                if self._state["status"] in ACTIVE:  # the server lost it (restarted without its journal): again
                    state = self.jobs.submit(self.config)
            self.apply_state(state, tensors)
            self._problem = ""
        except RemoteUnavailable as err:
            self._problem = f"{err} (showing the last progress it sent)"
        except (BadMessage, KeyError, ValueError) as err:
            self._problem = f"The model server at {self.jobs.client.url} sent a malformed progress report: {err}"

    def apply_state(self, state: dict, tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Take the server's ``state`` and the progress increments ``tensors`` (``loss``: the losses from step
        ``state["loss_start"]`` on; ``grid.<epoch>``: grids this client lacked)."""
        self._state = state
        p = self._progress
        if tensors is not None:
            del p.losses[state["loss_start"]:]
            p.losses.extend(tensors["loss"].tolist())
            p.snapshots = {e: g for e, g in p.snapshots.items() if e in state["epochs"]}
            for name, grid in tensors.items():
                if name.startswith("grid."):
                    p.snapshots[int(name.removeprefix("grid."))] = grid.to(torch.uint8)
            p.snapshots = dict(sorted(p.snapshots.items()))
        for name, value in state.get("progress", {}).items():
            setattr(p, name, value)

    def result(self) -> TrainedRun:
        """Download the finished run, check it against the digest the server recorded when it finished, keep it in the
        app's model cache and load it; ``RunRefused`` when it does not match (nothing is kept)."""
        if self._state["status"] != "done":
            raise RemoteUnavailable(f"The training run {self.key} on the model server has not finished")
        url = self.jobs.client.url
        data = self.jobs.client.request("GET", f"/training/jobs/{self.key}/result").content
        expected, got = self._state["sha256"], hashlib.sha256(data).hexdigest()
        if got != expected:
            raise RunRefused(f"The trained run from the model server at {url} does not match its digest (sha256 "
                             f"{got[:12]}…, expected {expected[:12]}…): refused, nothing was kept")
        path = model_store.store_file(self.config, data)
        try:
            run = model_store.load_run(path, default_device())
            if run.config != self.config:
                raise CorruptEntry(f"it holds another configuration ({run.config.to_json()})")
        except CorruptEntry as err:
            path.unlink(missing_ok=True)
            raise RunRefused(f"The trained run from the model server at {url} is not the run asked for: {err}; "
                             "refused, nothing was kept") from None
        if not self._progress.losses:  # served from the server's store: the run's own record is its progress
            self._progress = Progress(step=len(run.losses), total_steps=len(run.losses), epoch=run.config.epochs,
                                      losses=list(run.losses), snapshots=dict(run.snapshots),
                                      seconds=run.info.get("seconds", 0.0), total_grids=len(run.snapshots))
        return run
