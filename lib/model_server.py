"""The model server: the app's denoisers behind HTTP on Ray Serve, every session's UNet calls batched together.

The teaching loop stays in the app (lib.ddpm.sampling, lib.flow, lib.techniques: students still see every step and formula,
and the noise is drawn there); the server is a pure function answering what the ``NoiseModel`` interface (the DDPM
edition) and the ``VelocityModel`` interface (the flow edition) need, one request per network call:

    GET  /health                     the models it holds and what each is; its batching counters
    GET  /models/{m}/schedule        β_1 … β_T of model m
    POST /models/{m}/predict         x_t, per-row t, cond  →  ε̂ (and v)       batched across sessions (noise models)
    POST /models/{m}/velocity        x_t, per-row t ∈ [0, 1], cond  →  v̂      batched across sessions (velocity models)
    POST /models/{m}/encode          prompts (JSON)  →  one condition per prompt (PixNerd: Qwen3 here, cached per prompt)
    POST /models/{m}/pipeline        the stock IFPipeline of A0 (JSON: prompt, steps, seed, γ)  →  images
    POST /models/{m}/upscale         stage II: 64 px images, embeddings, seed, steps  →  256 px images
    …    /training …                 part-B training jobs on the Ray cluster (lib.model_server_training)

Tensors travel as safetensors bytes (lib.backends.wire; never pickle), in the dtype the model computes in (IF on a GPU:
fp16). Cross-session batching (``Batcher``): a ``predict`` that finds the UNet idle and nobody else queued runs at once —
a lone session never waits for company —; requests that arrive while the UNet is busy queue, and the next call takes
them all (at most ``max_batch_size``; with two or more queued it first waits up to ``batch_wait_timeout_s`` for more),
grouped by model: one network call per model on all their rows — rows at different
timesteps, with their own conditions: every model here takes a per-row t —, the outputs split back. The UNet runs in a worker thread, so requests keep
arriving (and form the next batch) meanwhile. Each answer says in its ``Server-Timing`` header where its time went
(receive, check, queue, unet, send; ms) and in ``X-Batch-Requests`` how many requests shared its UNet call.

Every endpoint but /health needs ``Authorization: Bearer <token>`` when the server has a token
(``DIFFUSION_LAB_SERVER_TOKEN`` in its environment, never in a config file). A bad request — unknown model, wrong
token, malformed or oversized message, wrong shape or dtype, a prompt the model cannot read — gets a 4xx with a
one-line message, and the server keeps serving everyone else.

The models: the DDPM edition's mnist-class / mnist-time (the shipped part-B DDPMs) and IF-I-XL / L / M; the flow
edition's mnist-flow-class (part B's class-conditioned flow model, found as the app finds it:
``lib.train.model_store.preferred_run``) and PixNerd-XXL-P16-T2I (with its Qwen3-1.7B prompt encoder, on a GPU).

Run:  python -m lib.model_server --models mnist-class,mnist-flow-class,IF-I-XL   (see --help; deploy/ has a Serve config)
"""


import argparse
import asyncio
import hmac
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Awaitable, Callable, NamedTuple

import torch
from fastapi import FastAPI, HTTPException, Request, Response
from ray import serve

from lib import PROJECT_ROOT
from lib.backends.pixnerd.config import MODEL_NAME
from lib.backends.wire import CONTENT_TYPE, MAX_MESSAGE_BYTES, BadMessage, pack, unpack
from lib.model_server_training import DEFAULT_JOB_GPUS, TrainingService, TrainingSettings

TOKEN_ENV = "DIFFUSION_LAB_SERVER_TOKEN"
MAX_BYTES_ENV = "DIFFUSION_LAB_SERVER_MAX_MB"  # request size cap in MB (default: lib.backends.wire's 256 MB)
MNIST_MODELS = {"mnist-class": "class", "mnist-time": "time"}
FLOW_MODELS = {"mnist-flow-class": "flow_class"}  # server name → shipped run (lib.train.model_store.SHIPPED_RUNS)
PIXNERD = MODEL_NAME  # the flow edition's part-A model (lib.backends.pixnerd)
MAX_ROWS = 64  # rows of one predict request: the largest batch a page sends is 40 (B3 grid) × 2 (CFG) / views

api = FastAPI(title="Diffusion Lab model server")


def load_models(names: list[str], shipped_dir: str | None = None) -> tuple[dict[str, object], dict[str, dict]]:
    """The models called ``names`` and, for the flow edition's MNIST model, which run it is (``describe``'s extra
    fields): mnist-class / mnist-time (the shipped part-B DDPMs), IF-I-XL / L / M (through lib.backends.if_loading,
    from DIFFUSION_LAB_IF_DIR or the hub with HF_TOKEN), mnist-flow-class (``load_flow_run``) and PixNerd-XXL-P16-T2I
    (``lib.backends.pixnerd.velocity.load_pixnerd_velocity``). Shipped runs come from ``shipped_dir`` (default data/models)."""
    from lib.train import model_store
    from lib.backends.if_configs import IF_VARIANTS
    from lib.backends.mnist_model import MnistDDPM
    from lib.train.precision import default_device

    if shipped_dir:  # this process's shipped runs, the DDPMs' and the flow model's (the replica is a process of its own)
        model_store.SHIPPED_DIR = Path(shipped_dir)
    models: dict[str, object] = {}
    runs: dict[str, dict] = {}
    for name in names:
        if name in MNIST_MODELS:
            run = model_store.load_run(model_store.shipped_path(MNIST_MODELS[name]), default_device())
            models[name] = MnistDDPM(run.model, run.config)
        elif name in IF_VARIANTS:
            from lib.backends.if_loading import load_if

            models[name] = load_if(name)
        elif name in FLOW_MODELS:
            models[name], runs[name] = load_flow_run(FLOW_MODELS[name], default_device())
        elif name == PIXNERD:
            from lib.backends.pixnerd.velocity import load_pixnerd_velocity

            models[name] = load_pixnerd_velocity(default_device())
        else:
            raise ValueError(f"unknown model {name!r}: choose from "
                             f"{', '.join([*MNIST_MODELS, *IF_VARIANTS, *FLOW_MODELS, PIXNERD])}")
    return models, runs


def load_flow_run(run_name: str, device: torch.device):
    """The flow run the app's part A would use (``model_store.preferred_run``: shipped, else the newest in this
    machine's model cache) on its sampling weights, and which run it is; ``ValueError`` saying so if there is none."""
    from lib.flow.mnist import MnistFlow
    from lib.train import model_store

    found = model_store.preferred_run(run_name, lambda config: model_store.lookup(config, device))
    if found is None:
        raise ValueError(f"no {run_name} run to serve: {model_store.shipped_path(run_name)} is not there and the model "
                         f"cache ({model_store.CACHE_DIR}) holds no finished run of it — train one (part B) first")
    run, shipped = found
    weights = run.sampling_weights
    return MnistFlow(run.network(weights), run.config), {
        "shipped": shipped, "weights": weights, "epochs": run.config.epochs, "hidden": run.config.hidden}


def describe(name: str, den, run: dict | None = None) -> dict:
    """What a client needs to drive the model with the app's own loops (``run``: which run a flow model is)."""
    if hasattr(den, "velocity"):
        return {"name": den.name, "predicts": "velocity", "kind": "pixnerd" if name == PIXNERD else "mnist",
                "image_shape": list(den.image_shape), "value_range": list(den.value_range),
                "condition_shape": list(den.null_condition().shape[1:]), "wire_dtype": "float32", **(run or {})}
    is_if = hasattr(den, "unet")
    return {"name": den.name, "predicts": "eps", "kind": "if" if is_if else "mnist",
            "image_shape": list(den.image_shape),
            "num_timesteps": den.schedule.num_timesteps, "variance_type": den.variance_type,
            "condition_shape": list(den.null_condition().shape[1:]),
            # tensors travel in the dtype the UNet computes in (IF: fp16 on a GPU), so nothing is rounded on the way
            "wire_dtype": str(den.unet_dtype).removeprefix("torch.") if is_if else "float32",
            "stock_pipeline": bool(getattr(den, "pipeline", None))}


def _forward(den, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> dict[str, torch.Tensor]:
    """One network call on a batch: a velocity model's {"v"}, a noise model's {"eps"} (and its variance's "v")."""
    x, t, cond = x.to(den.device), t.to(den.device), cond.to(den.device)
    with torch.no_grad():
        if hasattr(den, "velocity"):
            return {"v": den.velocity(x, t, cond).float().cpu()}
        eps, v = den.predict(x, t, cond)
    return {"eps": eps.float().cpu()} if v is None else {"eps": eps.float().cpu(), "v": v.float().cpu()}


class Batched(NamedTuple):
    """One request's share of a batched call: its result, the seconds it queued for the call, the seconds the call
    took, and how many requests the call served."""

    result: object
    queued_s: float
    call_s: float
    requests: int


class Batcher:
    """Requests → batched calls of ``run`` (a list of requests → the list of their results), without holding a lone one.

    A request that arrives while no call is running and finds the queue otherwise empty is run at once: a lone session
    pays no batching wait. Requests that arrive during a call queue up, and the next call takes them all (at most
    ``max_batch_size``). A call about to start with company (two or more queued) first waits for more, until the
    oldest has queued ``wait_s`` or the batch is full — sessions in step land in one call, none queues longer than
    ``wait_s`` plus the call before it. Calls run one at a time, in arrival order; an error reaches every request of
    its call. (Serve's ``@serve.batch`` always waits its timeout for a batch of one; hence this.)
    """

    def __init__(self, run: Callable[[list], Awaitable[list]], max_batch_size: int, wait_s: float):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1 (1 turns batching off), not {max_batch_size}")
        self.run, self.max_batch_size, self.wait_s = run, max_batch_size, wait_s
        self.waits = 0  # calls that waited for company before they started (a lone request never does)
        self.queue: deque[tuple[object, asyncio.Future, float]] = deque()  # (request, its future, arrival time)
        self.arrival: asyncio.Event | None = None  # created on the replica's event loop, with the worker
        self.worker: asyncio.Task | None = None

    async def submit(self, request) -> Batched:
        loop = asyncio.get_running_loop()
        if self.worker is None:
            self.arrival = asyncio.Event()
            self.worker = loop.create_task(self._work())
        future = loop.create_future()
        self.queue.append((request, future, time.perf_counter()))
        self.arrival.set()
        return await future

    async def _work(self) -> None:
        while True:
            await self.arrival.wait()
            self.arrival.clear()
            while self.queue:
                if 1 < len(self.queue) < self.max_batch_size:
                    await self._fill()
                batch = [self.queue.popleft() for _ in range(min(len(self.queue), self.max_batch_size))]
                batch = [item for item in batch if not item[1].done()]  # a client that hung up needs no answer
                if not batch:
                    continue
                start = time.perf_counter()
                try:
                    results = await self.run([request for request, _, _ in batch])
                except Exception as err:  # noqa: BLE001 — every request of the call gets the call's error
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                call_s = time.perf_counter() - start
                for (_, future, arrived), result in zip(batch, results):
                    if not future.done():
                        future.set_result(Batched(result, start - arrived, call_s, len(batch)))

    async def _fill(self) -> None:
        self.waits += 1
        deadline = self.queue[0][2] + self.wait_s
        while len(self.queue) < self.max_batch_size and (left := deadline - time.perf_counter()) > 0:
            self.arrival.clear()
            try:
                await asyncio.wait_for(self.arrival.wait(), left)
            except asyncio.TimeoutError:
                return


def server_timing(**parts_s: float) -> str:
    """The ``Server-Timing`` header (W3C) of seconds per part: ``receive;dur=0.21, queue;dur=0.02, …`` in ms."""
    return ", ".join(f"{name};dur={s * 1000:.3f}" for name, s in parts_s.items())


# Everything the deployment uses is defined above it: Serve captures the class when it is decorated.
@serve.deployment(max_ongoing_requests=256, graceful_shutdown_timeout_s=5)
@serve.ingress(api)
class ModelServer:
    """One replica holds every model (``num_replicas`` and ``ray_actor_options={"num_gpus": 1}`` scale it out)."""

    def __init__(self, models: list[str], max_batch_size: int = 16, batch_wait_timeout_s: float = 0.005,
                 shipped_dir: str | None = None, training: dict | None = None):
        self.models, runs = load_models(models, shipped_dir)
        self.info = {name: describe(name, den, runs.get(name)) for name, den in self.models.items()}
        self.token = os.environ.get(TOKEN_ENV) or None
        self.max_bytes = int(float(os.environ.get(MAX_BYTES_ENV) or MAX_MESSAGE_BYTES / 2**20) * 2**20)
        self.batcher = Batcher(self.predict_rows, max_batch_size, batch_wait_timeout_s)
        self.config = {"max_batch_size": max_batch_size, "batch_wait_timeout_s": batch_wait_timeout_s}
        self.counters = Counter()
        self.batch_sizes: Counter = Counter()  # requests per UNet call → how many such calls
        self.stage2 = None
        self.lock = threading.Lock()  # stage II is loaded once, by the first upscale request
        self.training = TrainingService(training)  # ``training``: lib.model_server_training.TrainingSettings' fields

    # --- checks ------------------------------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise HTTPException(401, "missing or wrong access token")

    def _model(self, name: str, predicts: str | None = None):
        """Model ``name``; 404 if this server lacks it or it does not predict ``predicts`` ("eps" or "velocity")."""
        if name not in self.models:
            raise HTTPException(404, f"unknown model {name!r}; this server has {', '.join(self.models)}")
        if predicts is not None and self.info[name]["predicts"] != predicts:
            kind = "a velocity model (the flow edition)" if predicts == "eps" else "a noise model (the DDPM edition)"
            raise HTTPException(404, f"{name} is {kind}: it has no {'schedule or ε' if predicts == 'eps' else 'velocity'}")
        return self.models[name]

    async def _message(self, request: Request) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.max_bytes:
            raise HTTPException(413, f"request of {declared:,} bytes is over the {self.max_bytes:,}-byte cap")
        try:
            return unpack(await request.body(), self.max_bytes)
        except BadMessage as err:
            raise HTTPException(413 if "cap" in str(err) else 400, str(err)) from None

    @staticmethod
    def _tensor(tensors: dict, name: str, shape: tuple, dtypes: tuple) -> torch.Tensor:
        if name not in tensors:
            raise HTTPException(400, f"tensor {name!r} is missing")
        x = tensors[name]
        if tuple(x.shape) != tuple(shape) or x.dtype not in dtypes:
            raise HTTPException(400, f"tensor {name!r} is {tuple(x.shape)} {x.dtype}; expected {tuple(shape)} "
                                     f"{' or '.join(str(d) for d in dtypes)}")
        return x

    # --- endpoints ---------------------------------------------------------------------------------------------------

    @api.get("/health")
    async def health(self) -> dict:
        return {"status": "ok", "models": self.info, "config": self.config, "auth": self.token is not None,
                "counters": dict(self.counters), "batch_waits": self.batcher.waits,
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}

    @api.get("/models/{name}/schedule")
    async def schedule(self, name: str, request: Request) -> Response:
        self._authorize(request)
        return Response(pack({"betas": self._model(name, "eps").schedule.betas}), media_type=CONTENT_TYPE)

    @api.post("/models/{name}/predict")
    async def predict(self, name: str, request: Request) -> Response:
        """ε̂ (and the variance's v) of a noise model at integer timesteps t ∈ [0, T − 1]."""
        return await self._batched_call(name, request, "eps")

    @api.post("/models/{name}/velocity")
    async def velocity(self, name: str, request: Request) -> Response:
        """v̂ = dx/dt of a velocity model at float times t ∈ [0, 1]."""
        return await self._batched_call(name, request, "velocity")

    async def _batched_call(self, name: str, request: Request, predicts: str) -> Response:
        """One request's rows x (B, C, H, W), t (B,), cond (B, …) checked, then answered through the ``Batcher``."""
        start = time.perf_counter()
        self._authorize(request)
        self._model(name, predicts)  # 404 for a model this server does not have, or of the other interface
        info = self.info[name]
        tensors, _ = await self._message(request)
        received = time.perf_counter()
        b = tensors["x"].shape[0] if "x" in tensors and tensors["x"].dim() == 4 else 0
        if not 1 <= b <= MAX_ROWS:
            raise HTTPException(400, f"tensor 'x' must be (B, {', '.join(map(str, info['image_shape']))}) with "
                                     f"1 ≤ B ≤ {MAX_ROWS}")
        floats = (torch.float16, torch.bfloat16, torch.float32)
        x = self._tensor(tensors, "x", (b, *info["image_shape"]), floats)
        cond = self._tensor(tensors, "cond", (b, *info["condition_shape"]), floats)
        if predicts == "eps":
            t = self._tensor(tensors, "t", (b,), (torch.int64,))
            if t.min() < 0 or t.max() >= info["num_timesteps"]:
                raise HTTPException(400, f"timesteps must lie in [0, {info['num_timesteps'] - 1}]")
        else:
            t = self._tensor(tensors, "t", (b,), (torch.float32,))
            if not bool(((t >= 0) & (t <= 1)).all()):  # also refuses NaN
                raise HTTPException(400, "times must lie in [0, 1]")
        checked = time.perf_counter()
        batched = await self.batcher.submit((name, x, t, cond))
        computed = time.perf_counter()
        wire = getattr(torch, info["wire_dtype"])
        body = pack({k: o.to(wire) for k, o in batched.result.items()})
        timing = server_timing(receive=received - start, check=checked - received, queue=batched.queued_s,
                               unet=batched.call_s, send=time.perf_counter() - computed)
        return Response(body, media_type=CONTENT_TYPE,
                        headers={"Server-Timing": timing, "X-Batch-Requests": str(batched.requests)})

    async def predict_rows(self, requests: list[tuple]) -> list[dict]:
        """Requests (``Batcher``'s batch: model name, x, t, cond) → one network call per model on all their rows (each
        row at its own t) → each request's own rows of every output (``_forward``)."""
        results: list = [None] * len(requests)
        by_model: dict[str, list[int]] = {}
        for i, (name, *_rest) in enumerate(requests):
            by_model.setdefault(name, []).append(i)
        for name, idx in by_model.items():
            den = self.models[name]
            x = torch.cat([requests[i][1].float() for i in idx])
            t = torch.cat([requests[i][2] for i in idx])
            cond = torch.cat([requests[i][3].float() for i in idx])
            out = await asyncio.to_thread(_forward, den, x, t, cond)
            sizes = [requests[i][1].shape[0] for i in idx]
            parts = {key: value.split(sizes) for key, value in out.items()}
            for j, i in enumerate(idx):
                results[i] = {key: rows[j] for key, rows in parts.items()}
            self.counters["unet_calls"] += 1
            self.counters["rows"] += len(x)
            self.counters["requests"] += len(idx)
            self.batch_sizes[len(idx)] += 1
        return results

    @api.post("/models/{name}/encode")
    async def encode(self, name: str, request: Request) -> Response:
        from lib.ddpm.sampling import PromptError

        self._authorize(request)
        den = self._model(name)
        try:
            prompts = json.loads(await request.body())["prompts"]
            assert isinstance(prompts, list) and all(isinstance(p, str) and len(p) <= 1000 for p in prompts)
            assert 1 <= len(prompts) <= 64
        except Exception:  # noqa: BLE001 — any malformed body is the client's error
            raise HTTPException(400, 'body must be JSON {"prompts": [up to 64 strings of ≤ 1000 characters]}') from None
        try:
            conds = await asyncio.to_thread(lambda: [den.encode_prompt(p) for p in prompts])
        except PromptError as err:
            raise HTTPException(422, str(err)) from None
        return Response(pack({"cond": torch.cat(conds).float()}), media_type=CONTENT_TYPE)

    @api.post("/models/{name}/pipeline")
    async def pipeline(self, name: str, request: Request) -> Response:
        self._authorize(request)
        den = self._model(name)
        if not self.info[name]["stock_pipeline"]:
            raise HTTPException(404, f"{name} has no stock pipeline")
        try:
            q = json.loads(await request.body())
            prompt, steps, seed = str(q["prompt"]), int(q["steps"]), int(q["seed"])
            scale, n = float(q.get("scale", 7.0)), int(q.get("num_samples", 1))
            assert 1 <= steps <= 1000 and 1 <= n <= 8 and len(prompt) <= 1000
        except Exception:  # noqa: BLE001
            raise HTTPException(400, 'body must be JSON {"prompt", "steps" (1–1000), "seed", "scale", '
                                     '"num_samples" (1–8)}') from None

        images = await asyncio.to_thread(den.stock_sample, prompt, steps=steps, seed=seed, scale=scale, num_samples=n)
        return Response(pack({"images": images}), media_type=CONTENT_TYPE)

    @api.post("/models/{name}/upscale")
    async def upscale(self, name: str, request: Request) -> Response:
        from lib.backends.deepfloyd import upscale
        from lib.backends.if_hub import IFUnavailable
        from lib.backends.if_loading import load_stage2

        self._authorize(request)
        den = self._model(name)
        if self.info[name]["kind"] != "if":
            raise HTTPException(404, f"{name} has no stage II")
        tensors, meta = await self._message(request)
        images = tensors.get("images")
        if images is None or images.dim() != 4 or tuple(images.shape[1:]) != tuple(den.image_shape) or \
                not 1 <= images.shape[0] <= 8:
            raise HTTPException(400, f"tensor 'images' must be (B ≤ 8, {', '.join(map(str, den.image_shape))})")
        try:
            steps, seed = int(meta.get("steps", 20)), int(meta["seed"])
            cond, null = tensors["cond"], tensors["null"]
        except (KeyError, ValueError):
            raise HTTPException(400, "needs tensors 'cond', 'null' and metadata 'seed' (and 'steps')") from None

        def run():
            with self.lock:
                if self.stage2 is None:
                    self.stage2 = load_stage2(name)
            gen = torch.Generator(device=den.device).manual_seed(seed)
            return upscale(self.stage2, images.float().to(den.device), cond, null, gen, steps=steps)

        try:
            big = await asyncio.to_thread(run)
        except IFUnavailable as err:
            raise HTTPException(503, str(err)) from None
        return Response(pack({"images": big}), media_type=CONTENT_TYPE)


    # --- part-B training on the cluster (lib.model_server_training) ------------------------------------------------

    @api.get("/training")
    async def training_overview(self, request: Request) -> dict:
        self._authorize(request)
        return await self.training.overview()

    @api.post("/training/jobs")
    async def training_submit(self, request: Request) -> Response:
        self._authorize(request)
        return await self.training.submit(request)

    @api.get("/training/jobs/{key}")
    async def training_state(self, key: str, request: Request) -> Response:
        self._authorize(request)
        return await self.training.state(key, request)

    @api.post("/training/jobs/{key}/cancel")
    async def training_cancel(self, key: str, request: Request) -> Response:
        self._authorize(request)
        return await self.training.cancel(key, request)

    @api.get("/training/jobs/{key}/result")
    async def training_result(self, key: str, request: Request) -> Response:
        self._authorize(request)
        return await self.training.result(key)


def watch_parent(pid: int, stop: threading.Event) -> None:
    """Set ``stop`` once process ``pid`` is gone (polled each second): a server started by a test or a benchmark
    exits with whoever started it, even when that one is killed."""
    while not stop.wait(1.0):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stop.set()


def build_app(args: dict):
    """The Serve application from a config's ``args`` (``serve run deploy/serve_config.yaml``): ``models`` (a list or
    a comma-separated string), ``max_batch_size``, ``batch_wait_timeout_s``, ``shipped_dir``, ``training`` (a mapping
    of lib.model_server_training.TrainingSettings' fields: job_gpus, job_cpus, save_every_s, watcher_lease_s)."""
    models = args.get("models", "mnist-class,mnist-time")
    models = models.split(",") if isinstance(models, str) else list(models)
    return ModelServer.bind(models, int(args.get("max_batch_size", 16)),
                            float(args.get("batch_wait_timeout_s", 0.005)), args.get("shipped_dir"),
                            args.get("training"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--models", default="mnist-class,mnist-time", help="comma-separated: mnist-class, mnist-time, "
                                                                       "IF-I-XL, IF-I-L, IF-I-M, mnist-flow-class, "
                                                                       f"{PIXNERD}")
    p.add_argument("--max-batch-size", type=int, default=16, help="predict requests merged into one UNet call (1: off)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long a batch that has company waits to fill (a lone request never waits)")
    p.add_argument("--shipped-dir", default=None, help="folder of the shipped MNIST runs (default data/models): the "
                                                        "DDPMs, and the flow model's first place to look (then the "
                                                        "model cache, as the app finds it)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs Ray may use (default: all)")
    p.add_argument("--job-gpus", type=float, default=None, help="share of a GPU per training job (default: "
                                                                f"{DEFAULT_JOB_GPUS:g} where the cluster has GPUs, else 0)")
    p.add_argument("--job-cpus", type=float, default=None,
                   help=f"CPUs per training job (default {TrainingSettings.job_cpus:g})")
    p.add_argument("--save-every", type=float, default=None, help="seconds between a training job's saved states "
                                                                  f"(default {TrainingSettings.save_every_s:g})")
    p.add_argument("--watcher-lease", type=float, default=None,
                   help=f"seconds a training job's watcher counts without polling "
                        f"(default {TrainingSettings.watcher_lease_s:g})")
    p.add_argument("--exit-with", type=int, default=None, metavar="PID",
                   help="stop when process PID ends (tests: no server outlives the run that started it)")
    args = p.parse_args(argv)

    import ray

    root = str(PROJECT_ROOT)
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}})
    serve.start(http_options={"host": args.host, "port": args.port})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_with:
        threading.Thread(target=watch_parent, args=(args.exit_with, stop), daemon=True).start()
    try:
        serve.run(build_app({"models": args.models, "max_batch_size": args.max_batch_size,
                             "batch_wait_timeout_s": args.batch_wait_ms / 1000, "shipped_dir": args.shipped_dir,
                             "training": {"job_gpus": args.job_gpus, "job_cpus": args.job_cpus,
                                          "save_every_s": args.save_every, "watcher_lease_s": args.watcher_lease}}),
                  route_prefix="/", blocking=False)
        print(f"model server ready on http://{args.host}:{args.port} with {args.models}", flush=True)
        stop.wait()
    finally:
        ray.shutdown()  # stops the local cluster it started (GCS, raylet, the Serve actors) at once


if __name__ == "__main__":
    # Run the copy imported as lib.model_server, not __main__: Ray's workers then import the deployment by name
    # (the project root is on their PYTHONPATH) instead of unpickling classes defined in __main__.
    from lib.model_server import main as _main

    _main(sys.argv[1:])
