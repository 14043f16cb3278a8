"""Part-B training on the model server's Ray cluster: the endpoints ``lib.model_server`` registers under
``/training`` and the Ray side behind them. The app's client is ``lib.backends.remote_training``.

    GET  /training                    settings (GPU share per job, leases), the cluster's resources, jobs by status
    POST /training/jobs               JSON {"config": TrainConfig fields}  →  the job's state (new, attached or done)
    GET  /training/jobs/{key}         ?since=<losses held>&epochs=<grids held>&watch=1  →  state + the progress lacked
    POST /training/jobs/{key}/cancel  →  {"stopped": …, "state": …}: stops the run only when nobody else watches it
    GET  /training/jobs/{key}/result  →  the finished run's safetensors file (the client checks its sha256)

* **One job per configuration** (``job_key``: the model store's content key) for everyone: the coordinator — one
  named Ray actor, ``TrainingCoordinator``, shared by every replica of the server — attaches a second request for a
  running configuration to its job, and answers a configuration whose run is in the server's store
  (``model_store.stored_file``: shipped or trained earlier, its digest verified) as done, never retraining it.
* **Each job a Ray task** (``_train_job``) asking for ``job_cpus`` CPUs and a ``job_gpus`` share of a GPU (0.25: four
  runs per GPU; 0 on a CPU cluster). Ray holds the task until the cluster has room; meanwhile the job is *queued* and
  its position is the number of jobs submitted before it that are still queued (Ray does not promise first-come
  order among waiting tasks of one shape, so a job may start before an older one: the position is how many could). The task runs the app's own training
  (``lib.train.runs.run_training``: same seed, same numbers as a local run) and stores the run in the server's store.
* **Progress**: the task reports to the coordinator at most every ``REPORT_SECONDS`` (and at every new grid): the
  losses since its last report, new grids, the other ``Progress`` fields. The answer tells it whether to stop, which it
  checks between steps. Clients fetch increments (``lib.backends.remote_training``).
* **Watchers and cancel**: a client is named by its ``X-Client-Id``; submitting or polling with ``watch=1`` renews
  its lease of ``watcher_lease_s`` seconds, and a watcher whose lease ran out (its tab closed: no more polls) is
  dropped. A cancel removes the caller; the run stops only if no watcher is left — a queued job is taken off Ray's
  queue, a running one saves its state after its current step (``lib.train.resume``). Whoever asks for a cancelled
  run before it has stopped keeps it going (continued from its saved state if the task had already obeyed). A run
  nobody watches any more is not stopped: it finishes and is stored for whoever asks next.
* **Restarts**: every queued or running job has a journal entry (``<store>/jobs/<key>.json``), removed when it
  finishes, fails or is cancelled. When the server starts, the coordinator submits the journal's jobs again; a run
  saves its state every ``save_every_s`` seconds, so it continues from there and ends bit-for-bit as if never stopped.

Requests are authorised as ``predict`` (``lib.model_server``); a bad configuration — an unknown field, a wrong type,
a value ``TrainConfig.validate`` refuses or outside ``BOUNDS``, an oversized body — gets a 4xx with one line and
changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import ray
import torch
from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from ray.exceptions import RayTaskError, TaskCancelledError

from lib.backends.remote_training import (ACTIVE, CLIENT_HEADER, CLIENT_ID_PATTERN, GRID_WIRE_DTYPE, NO_JOB, job_key,
                                          progress_fields)
from lib.backends.wire import CONTENT_TYPE, pack
from lib.train import model_store
from lib.train.data import FALLBACK_NAME
from lib.train.training import TrainConfig

COORDINATOR_NAME = "diffusion-lab-training"
MAX_REQUEST_BYTES = 16 * 2**10  # a configuration is a few hundred bytes of JSON
KEY_PATTERN = re.compile(r"^[a-z_]+-[0-9a-f]{20}$")  # job_key: "<model>-<content key>"
DEFAULT_JOB_GPUS = 0.25  # four runs per GPU: a part-B UNet with its batch takes well under a quarter of any GPU
REPORT_SECONDS = 0.5  # a running job reports its progress (and learns whether to stop) at most this often
DATASETS = ("mnist", FALLBACK_NAME)  # lib.train.data's sources
# What one request may ask of the server, beyond what TrainConfig.validate checks: (lowest, highest) of each numeric
# field. Wide enough for every shipped run and the pages' widgets (D ≤ 128, ≤ 80 epochs, batch ≤ 512), narrow enough
# that no request holds a GPU share for days.
BOUNDS = {"hidden": (1, 256), "epochs": (1, 100), "batch_size": (2, 1024), "steps_per_epoch": (1, 10_000),
          "seed": (0, 2**31 - 1), "lr": (1e-8, 1.0), "sigma": (0.0, 10.0), "num_timesteps": (2, 1000),
          "beta_start": (0.0, 1.0), "beta_end": (0.0, 1.0), "p_uncond": (0.0, 1.0), "sample_stride": (1, 1000),
          "time_features": (0, 256)}


@dataclass(frozen=True)
class TrainingSettings:
    """How the server runs training jobs (``lib.model_server``'s ``--job-gpus`` … flags, the Serve config's
    ``training`` args)."""

    job_gpus: float | None = None  # share of a GPU per job; None: DEFAULT_JOB_GPUS where the cluster has GPUs, else 0
    job_cpus: float = 1.0  # CPUs per job (a job's torch uses as many threads)
    save_every_s: float = 60.0  # how often a running job saves its state: what a killed server loses at most
    watcher_lease_s: float = 60.0  # a watcher that has not polled for this long is dropped

    @classmethod
    def from_args(cls, args: dict | None) -> "TrainingSettings":
        known = {f.name for f in fields(cls)}
        unknown = set(args or {}) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}: choose from {sorted(known)}")
        return cls(**{k: float(v) for k, v in (args or {}).items() if v is not None})  # None: the default

    def gpus(self) -> float:
        if self.job_gpus is not None:
            return self.job_gpus
        return DEFAULT_JOB_GPUS if ray.cluster_resources().get("GPU") else 0.0


# --- the request ------------------------------------------------------------------------------------------------------

def config_from_request(payload) -> TrainConfig:
    """The ``TrainConfig`` of a request body ``{"config": {field: value}}``, or ``HTTPException(400)`` naming the first
    problem: not that shape, an unknown or missing field, a value of the wrong type, outside ``BOUNDS``, a dataset the
    server does not know, or one that ``TrainConfig.validate`` refuses."""
    hints = typing.get_type_hints(TrainConfig)
    config = payload.get("config") if isinstance(payload, dict) else None
    if not isinstance(config, dict):
        raise HTTPException(400, 'body must be JSON {"config": {TrainConfig fields}}')
    unknown = sorted(set(config) - set(hints))
    if unknown:
        raise HTTPException(400, f"unknown configuration field {unknown[0]!r}")
    values = {name: _typed(name, hints[name], value) for name, value in config.items()}
    for name, (low, high) in BOUNDS.items():
        value = values.get(name)
        if value is not None and not low <= value <= high:
            raise HTTPException(400, f"{name} = {value} is out of bounds: this server trains {low:g} ≤ {name} ≤ {high:g}")
    if values.get("dataset", "mnist") not in DATASETS:
        raise HTTPException(400, f"unknown dataset {values['dataset']!r}: choose from {', '.join(DATASETS)}")
    try:
        result = TrainConfig(**values)
        result.validate()
    except (TypeError, ValueError) as err:  # TypeError: a required field is missing
        raise HTTPException(400, f"bad configuration: {err}") from None
    most = BOUNDS["epochs"][1]
    if any(not 1 <= e <= most for e in result.snapshot_epochs):  # epochs past the run's last are ignored (grid_epochs)
        raise HTTPException(400, f"snapshot_epochs must be epochs between 1 and {most}")
    return result


def _typed(name: str, hint, value):
    """``value`` as the type ``hint`` of field ``name`` (JSON numbers, strings, booleans, lists of integers, null),
    or ``HTTPException(400)``."""
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and is_int(value):
        return value
    if hint is float and (is_int(value) or isinstance(value, float)) and math.isfinite(value):
        return float(value)
    if hint is str and isinstance(value, str) and len(value) <= 64:
        return value
    if hint == (int | None) and (value is None or is_int(value)):
        return value
    if hint == tuple[int, ...] and isinstance(value, list) and len(value) <= 100 and all(map(is_int, value)) \
            and len(set(value)) == len(value):
        return tuple(value)
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string of ≤ 64 characters",
            int | None: "an integer or null", tuple[int, ...]: "a list of distinct integers"}.get(hint, str(hint))
    raise HTTPException(400, f"configuration field {name!r} must be {kind}")


def _client_id(request: Request) -> str:
    client = request.headers.get(CLIENT_HEADER, "")
    if not re.match(CLIENT_ID_PATTERN, client):
        raise HTTPException(400, f"send a client id in the {CLIENT_HEADER} header (8–64 letters, digits, _ or -)")
    return client


def _key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise HTTPException(400, f"{key[:60]!r} is not a job key (<model>-<20 hex digits>)")
    return key


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def journal_dir() -> Path:
    """Where the queued and running jobs are written down, to be submitted again when the server restarts."""
    return model_store.CACHE_DIR / "jobs"


# --- the Ray side -----------------------------------------------------------------------------------------------------

@dataclass
class ServerJob:
    key: str
    config_json: str
    seq: int  # submission order: a queued job's place in the queue
    status: str = "queued"  # queued | running | done | failed | cancelled
    progress: dict = field(default_factory=dict)  # lib.train.training.Progress's fields but losses and grids
    losses: list[float] = field(default_factory=list)
    grids: dict[int, torch.Tensor] = field(default_factory=dict)  # epoch -> uint8 grid
    watchers: dict[str, float] = field(default_factory=dict)  # client id -> when its lease runs out (monotonic)
    stop: bool = False
    error: str = ""
    path: str = ""  # the finished run's file in the server's store …
    sha256: str = ""  # … and its digest, recorded when the run finished
    ref: object = None  # the Ray task …
    follower: object = None  # … and the coroutine waiting for it (``TrainingCoordinator._follow``)


@ray.remote(num_cpus=0)
class TrainingCoordinator:
    """Every training job of the cluster (an async actor: its methods run one at a time between awaits)."""

    def __init__(self, settings: dict):
        self.settings = TrainingSettings(**settings)
        self.jobs: dict[str, ServerJob] = {}
        self.seq = 0
        self.restored = False

    async def restore(self) -> list[str]:
        """Submit again the jobs the journal lists (those queued or running when the server stopped); once."""
        if self.restored:
            return []
        self.restored = True
        again = []
        for entry in sorted(journal_dir().glob("*.json")):
            try:
                config_json = json.loads(entry.read_text())["config"]
                key = job_key(model_store.config_from_json(config_json))
            except (OSError, KeyError, TypeError, ValueError):
                entry.unlink(missing_ok=True)  # not a journal entry this server wrote
                continue
            if key == entry.stem and key not in self.jobs:
                self._launch(key, config_json)
                again.append(key)
        return again

    # --- for the endpoints ------------------------------------------------------------------------------------------

    async def submit(self, config_json: str, client: str) -> dict:
        """The job of ``config_json``, attaching ``client``: the active one, the finished run of the store, else new."""
        config = model_store.config_from_json(config_json)
        key = job_key(config)
        job = self.jobs.get(key)
        attached = job is not None and job.status in ACTIVE
        if attached and job.stop:  # cancelled by its last watcher, not stopped yet: it goes on for this one
            job.stop = False  # (a task that already obeyed is started again by ``_follow``)
        if job is None or job.status in ("failed", "cancelled") or (job.status == "done" and not self._stored(job)):
            path = model_store.stored_file(config)
            if path is not None:
                job = self.jobs[key] = ServerJob(key, config_json, self._next_seq(), status="done", path=str(path),
                                                 sha256=file_sha256(path))
            else:
                job = self._launch(key, config_json)
        self._watch(job, client)
        return {**self._state(job), "attached": attached}

    async def state(self, key: str, client: str, since: int, epochs: list[int], watch: bool):
        """The job's state and the progress a client lacks (losses from ``since`` on, grids not in ``epochs``); None
        for a key without a job."""
        job = self.jobs.get(key)
        if job is None:
            return None
        if watch:
            self._watch(job, client)
        start = min(since, len(job.losses))
        grids = {e: g for e, g in job.grids.items() if e not in epochs}
        return {**self._state(job), "loss_start": start}, job.losses[start:], grids

    async def cancel(self, key: str, client: str):
        """Remove ``client`` from the watchers; stop the job if nobody is left. None for a key without a job."""
        job = self.jobs.get(key)
        if job is None:
            return None
        job.watchers.pop(client, None)
        stopped = job.status in ACTIVE and not self._live_watchers(job)
        if stopped:
            job.stop = True
            if job.status == "queued":  # still in Ray's queue: off it (``_follow`` then clears the journal)
                job.status = "cancelled"
                ray.cancel(job.ref)
        return {"stopped": stopped, "state": self._state(job)}

    async def result_file(self, key: str):
        job = self.jobs.get(key)
        return (job.path, job.sha256) if job is not None and job.status == "done" else None

    async def overview(self) -> dict:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return {"settings": {**asdict(self.settings), "job_gpus": self.settings.gpus()}, "jobs": counts,
                "cluster": ray.cluster_resources(), "available": ray.available_resources()}

    # --- for the training tasks -------------------------------------------------------------------------------------

    async def started(self, key: str) -> bool:
        """A task began: its job runs. Returns whether it should stop at once (cancelled meanwhile)."""
        job = self.jobs[key]
        job.status = "running" if job.status == "queued" else job.status
        return job.stop

    async def report(self, key: str, loss_start: int, losses: list[float], grids: dict, progress: dict) -> bool:
        """A running task's progress: its losses from step ``loss_start`` on, its new grids, its other fields.
        Returns whether it should stop."""
        job = self.jobs[key]
        del job.losses[loss_start:]
        job.losses.extend(losses)
        job.grids.update(grids)
        job.progress = progress
        return job.stop

    # --- inside -----------------------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _launch(self, key: str, config_json: str) -> ServerJob:
        job = self.jobs[key] = ServerJob(key, config_json, self._next_seq())
        journal_dir().mkdir(parents=True, exist_ok=True)
        (journal_dir() / f"{key}.json").write_text(json.dumps({"config": config_json}))
        self._start(job)
        return job

    def _start(self, job: ServerJob) -> None:
        """Submit ``job``'s task to Ray (it queues there until the cluster has room) and follow it."""
        s = self.settings
        job.ref = _train_job.options(num_cpus=s.job_cpus, num_gpus=s.gpus(), name=f"train-{job.key}").remote(
            job.key, job.config_json, ray.get_runtime_context().current_actor, s.save_every_s,
            max(1, math.floor(s.job_cpus)))
        job.follower = asyncio.get_running_loop().create_task(self._follow(job))

    async def _follow(self, job: ServerJob) -> None:
        """Wait for the job's task and record how it ended; a finished, failed or cancelled job leaves the journal."""
        try:
            path = await job.ref
        except TaskCancelledError:
            job.status = "cancelled"
        except RayTaskError as err:  # the training raised: its own exception, in one line
            cause = err.cause if err.cause is not None else err
            job.status, job.error = "failed", f"{type(cause).__name__}: {str(cause).strip().splitlines()[0][:300]}"
        except ray.exceptions.RayError as err:  # the worker died (the server is stopping, or out of memory): the
            job.status, job.error = "failed", f"the training worker died ({type(err).__name__})"
            return  # journal keeps the job, which the next start resumes from its saved state
        else:
            if path is None and not job.stop and self._live_watchers(job):
                # it obeyed a cancel, but someone attached since (``submit`` took the stop back): it continues
                job.status, job.seq = "queued", self._next_seq()  # from its saved state, at the back of the queue
                self._start(job)
                return
            if path is None:
                job.status = "cancelled"
            else:
                job.path, job.sha256, job.status = path, file_sha256(Path(path)), "done"
        if self.jobs.get(job.key) is job:  # not a job submitted again since, whose journal entry this is now
            (journal_dir() / f"{job.key}.json").unlink(missing_ok=True)

    def _watch(self, job: ServerJob, client: str) -> None:
        if job.status in ACTIVE:
            job.watchers[client] = time.monotonic() + self.settings.watcher_lease_s

    def _live_watchers(self, job: ServerJob) -> int:
        now = time.monotonic()
        job.watchers = {c: until for c, until in job.watchers.items() if until > now}
        return len(job.watchers)

    def _stored(self, job: ServerJob) -> bool:
        return Path(job.path).exists()

    def _state(self, job: ServerJob) -> dict:
        queued = job.status == "queued"
        ahead = sum(1 for other in self.jobs.values() if other.status == "queued" and other.seq < job.seq)
        return {"key": job.key, "status": job.status, "queue_position": ahead if queued else None,
                "watchers": self._live_watchers(job), "error": job.error, "sha256": job.sha256 or None,
                "progress": job.progress, "epochs": sorted(job.grids)}


class _Reporter:
    """A training task's line to the coordinator: ``on_progress`` sends the progress since the last report (at most
    every ``REPORT_SECONDS``, and always when there is a new grid) and learns whether to stop; ``should_stop`` answers
    from the last report, so the training loop never waits for the coordinator between reports."""

    def __init__(self, coordinator, key: str):
        self.coordinator, self.key = coordinator, key
        self.sent_losses, self.sent_grids = 0, set()
        self.last = float("-inf")
        self.stop = False
        self.progress = None

    def on_progress(self, progress, force: bool = False) -> None:
        self.progress = progress
        new_grids = set(progress.snapshots) - self.sent_grids
        if not (force or new_grids) and time.monotonic() - self.last < REPORT_SECONDS:
            return
        self.stop = ray.get(self.coordinator.report.remote(
            self.key, self.sent_losses, progress.losses[self.sent_losses:],
            {e: progress.snapshots[e] for e in new_grids}, progress_fields(progress)))
        self.sent_losses, self.sent_grids, self.last = len(progress.losses), self.sent_grids | new_grids, time.monotonic()

    def flush(self) -> None:
        if self.progress is not None:
            self.on_progress(self.progress, force=True)

    def should_stop(self) -> bool:
        return self.stop


@ray.remote(max_retries=0)
def _train_job(key: str, config_json: str, coordinator, save_every_s: float, threads: int) -> str | None:
    """One training job: the app's ``run_training`` (resuming from a saved state if there is one), reporting to
    ``coordinator``; the finished run goes into the server's store. Returns its file, or None when cancelled."""
    from lib.train.data import load_mnist
    from lib.train.precision import default_device
    from lib.train.runs import run_info, run_training

    torch.set_num_threads(threads)
    reporter = _Reporter(coordinator, key)
    if ray.get(coordinator.started.remote(key)):
        return None
    config = model_store.config_from_json(config_json)
    train_set, test_set = load_mnist(True), load_mnist(False)
    device = default_device()
    try:
        run = run_training(config, train_set, test_set, device, on_progress=reporter.on_progress,
                           should_stop=reporter.should_stop, save_every=save_every_s)
    except InterruptedError:
        return None
    reporter.flush()
    return str(model_store.store(run, run_info(run, train_set, device)))


# --- the endpoints' work, in the server's replicas ----------------------------------------------------------------------

class TrainingService:
    """What ``lib.model_server``'s ``/training`` endpoints do once the request is authorised."""

    def __init__(self, settings: dict | None = None):
        resolved = TrainingSettings.from_args(settings)
        self.coordinator = TrainingCoordinator.options(name=COORDINATOR_NAME, get_if_exists=True,
                                                       lifetime="detached").remote(asdict(resolved))
        self.coordinator.restore.remote()  # runs before any later call of this replica's

    async def overview(self) -> dict:
        return await self.coordinator.overview.remote()

    async def submit(self, request: Request) -> Response:
        declared = int(request.headers.get("content-length") or 0)
        body = await request.body()
        if max(declared, len(body)) > MAX_REQUEST_BYTES:
            raise HTTPException(413, f"a training request is at most {MAX_REQUEST_BYTES:,} bytes")
        client = _client_id(request)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HTTPException(400, 'body must be JSON {"config": {TrainConfig fields}}') from None
        config = config_from_request(payload)
        return JSONResponse(await self.coordinator.submit.remote(config.to_json(), client))

    async def state(self, key: str, request: Request) -> Response:
        client = _client_id(request)
        q = request.query_params
        try:
            since = int(q.get("since", 0))
            epochs = [int(e) for e in q.get("epochs", "").split(",") if e]
            watch = q.get("watch", "1") == "1"
            assert since >= 0 and len(epochs) <= 100
        except (ValueError, AssertionError):
            raise HTTPException(400, "since must be an integer ≥ 0 and epochs a comma-separated list of "
                                     "integers") from None
        found = await self.coordinator.state.remote(_key(key), client, since, epochs, watch)
        if found is None:
            return Response(pack({"loss": torch.zeros(0, dtype=torch.float64)},
                                 {"state": json.dumps({"key": key, "status": NO_JOB, "loss_start": 0, "epochs": []})}),
                            media_type=CONTENT_TYPE)
        state, losses, grids = found
        tensors = {"loss": torch.tensor(losses, dtype=torch.float64),
                   **{f"grid.{e}": g.to(GRID_WIRE_DTYPE) for e, g in grids.items()}}
        return Response(pack(tensors, {"state": json.dumps(state)}), media_type=CONTENT_TYPE)

    async def cancel(self, key: str, request: Request) -> Response:
        answer = await self.coordinator.cancel.remote(_key(key), _client_id(request))
        if answer is None:
            raise HTTPException(404, f"no training job {key}")
        return JSONResponse(answer)

    async def result(self, key: str) -> Response:
        found = await self.coordinator.result_file.remote(_key(key))
        if found is None:
            raise HTTPException(404, f"training job {key} has no finished run")
        path, sha256 = found
        try:
            data = await asyncio.to_thread(Path(path).read_bytes)
        except FileNotFoundError:
            raise HTTPException(410, f"the run of {key} left the server's store (its size cap): submit it "
                                     "again") from None
        return Response(data, media_type="application/octet-stream", headers={"X-Content-SHA256": sha256})
