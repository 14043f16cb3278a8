"""The app's side of the model server (lib.model_server): a ``NoiseModel`` or a ``VelocityModel`` whose network calls are
HTTP requests.

``ServerClient(url, token)`` talks to one server; ``client.noise_model(model)`` is a ``RemoteNoiseModel`` (the DDPM
edition) and ``client.velocity_model(model)`` a ``RemoteVelocityModel`` (the flow edition) that the app's loops drive
exactly like a local model — the loop, the noise and every formula stay in the app, each ``predict`` is
one request (``velocity`` likewise). A server is a pure function of its inputs, so a remote model gives the local model's images for the same
seed (tensors travel in the dtype the model computes in: fp16 for IF on a GPU, where the UNet rounds to it anyway).

Every request has a connect and a read timeout; the calls are idempotent, so connection failures and 5xx answers are
retried with exponential backoff. Whatever still fails becomes a ``RemoteUnavailable`` with one line for the user
(server down, token refused, request rejected); a prompt the model cannot read is a ``PromptError``, as locally.
"""

from __future__ import annotations

import json
import time

import requests
import torch

from lib.ddpm.sampling import PromptError
from lib.ddpm.schedules import Schedule, chain_timesteps, strided_timesteps
from lib.backends.wire import CONTENT_TYPE, BadMessage, pack, unpack

URL_ENV, TOKEN_ENV = "DIFFUSION_LAB_SERVER_URL", "DIFFUSION_LAB_SERVER_TOKEN"


class RemoteUnavailable(Exception):
    """The model server cannot answer; the message is one line for the user and never holds the token."""


class ServerClient:
    """HTTP to one model server: pooled connections, timeouts, retries with backoff, safetensors bodies."""

    def __init__(self, url: str, token: str | None = None, *, connect_timeout: float = 3.0,
                 read_timeout: float = 120.0, retries: int = 3, backoff: float = 0.25):
        self.url = url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.retries, self.backoff = retries, backoff
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, *, data: bytes | None = None, json_body: dict | None = None):
        """The response of ``method path``; retried on connection errors, timeouts and 5xx; ``RemoteUnavailable``
        otherwise (422 becomes ``PromptError``)."""
        headers = {"Content-Type": CONTENT_TYPE} if data is not None else {}
        body = json.dumps(json_body).encode() if json_body is not None else data
        problem = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                r = self.session.request(method, self.url + path, data=body, headers=headers, timeout=self.timeout)
            except requests.Timeout:
                problem = "did not answer in time"
                continue
            except requests.ConnectionError:
                problem = "is not reachable (down, or a wrong address)"
                continue
            if r.status_code >= 500:
                problem = f"failed ({r.status_code}: {_detail(r)})"
                continue
            if r.status_code in (401, 403):
                raise RemoteUnavailable(f"The model server at {self.url} refused the access token "
                                        "(DIFFUSION_LAB_SERVER_TOKEN): check it")
            if r.status_code == 422:
                raise PromptError(_detail(r))
            if r.status_code >= 400:
                raise RemoteUnavailable(f"The model server at {self.url} rejected a request ({r.status_code}: "
                                        f"{_detail(r)})")
            return r
        tries = "1 try" if self.retries == 1 else f"{self.retries} tries"
        raise RemoteUnavailable(f"The model server at {self.url} {problem} after {tries}")

    def tensors(self, method: str, path: str, **kw) -> dict[str, torch.Tensor]:
        try:
            return unpack(self.request(method, path, **kw).content)[0]
        except BadMessage as err:
            raise RemoteUnavailable(f"The model server at {self.url} sent a malformed answer: {err}") from None

    def health(self) -> dict:
        return self.request("GET", "/health").json()

    def noise_model(self, model: str, info: dict | None = None) -> "RemoteNoiseModel":
        return RemoteNoiseModel(self, model, self._described(model, "eps", info))

    def velocity_model(self, model: str, info: dict | None = None) -> "RemoteVelocityModel":
        return RemoteVelocityModel(self, model, self._described(model, "velocity", info))

    def _described(self, model: str, predicts: str, info: dict | None) -> dict:
        """The server's description of ``model`` (``info`` if the caller has it), which must predict ``predicts``."""
        info = info or self.health()["models"].get(model)
        if info is None:
            raise RemoteUnavailable(f"The model server at {self.url} has no model {model!r}")
        if info["predicts"] != predicts:
            kind = "a noise model (DDPM edition)" if predicts == "eps" else "a velocity model (flow edition)"
            raise RemoteUnavailable(f"The model server's {model!r} is not {kind}")
        return info


def _detail(r: requests.Response) -> str:
    try:
        return str(r.json().get("detail", ""))[:300]
    except ValueError:
        return r.text[:300]


class RemotePrompts:
    """Prompts encoded by the server once (``/encode``: MNIST digits, IF's T5, PixNerd's Qwen3) and kept here."""

    client: ServerClient
    model: str

    def __init__(self):
        self._conds: dict[str, torch.Tensor] = {}

    def encode_prompts(self, prompts: list[str]) -> list[torch.Tensor]:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._conds]
        if missing:
            conds = self.client.tensors("POST", f"/models/{self.model}/encode", json_body={"prompts": missing})["cond"]
            self._conds.update({p: c.unsqueeze(0) for p, c in zip(missing, conds)})
        return [self._conds[p] for p in prompts]

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return self.encode_prompts([prompt])[0]

    def null_condition(self) -> torch.Tensor:
        return self.encode_prompt("")


class RemoteNoiseModel(RemotePrompts):
    """A model on the server as a ``NoiseModel``: ``predict`` is one POST; prompts are encoded by the server once and
    kept here; the schedule and the timestep convention are the model's own."""

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, client: ServerClient, model: str, info: dict):
        super().__init__()
        self.client, self.model, self.info = client, model, info
        self.kind: str = info["kind"]
        self.name = f"{info['name']} (model server)"
        self.image_shape = tuple(info["image_shape"])
        self.variance_type = info["variance_type"]
        self.wire_dtype = getattr(torch, info["wire_dtype"])
        betas = client.tensors("GET", f"/models/{model}/schedule")["betas"]
        self.schedule = Schedule(betas.double())

    def predict(self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor):
        b = x_t.shape[0]
        rows = torch.as_tensor(t, dtype=torch.int64).expand(b).contiguous()
        out = self.client.tensors("POST", f"/models/{self.model}/predict", data=pack(
            {"x": x_t.to(self.wire_dtype), "t": rows, "cond": cond.expand(b, *cond.shape[1:]).to(self.wire_dtype)}))
        eps = out["eps"].to(x_t.dtype)
        return eps, out["v"].to(x_t.dtype) if "v" in out else None

    def timesteps(self, stride: int) -> list[int]:
        """The model's own convention: part B's chain down to −1, IF's strided list down to 0."""
        T = self.schedule.num_timesteps
        return strided_timesteps(T, stride) if self.kind == "if" else chain_timesteps(T, stride)

    def stock_sample(self, prompt: str, *, steps: int, seed: int, scale: float, num_samples: int = 1) -> torch.Tensor:
        """A0: the server's stock IFPipeline (which draws its own noise from ``seed``)."""
        return self.client.tensors("POST", f"/models/{self.model}/pipeline", json_body={
            "prompt": prompt, "steps": steps, "seed": seed, "scale": scale, "num_samples": num_samples})["images"]

    def upscale(self, images: torch.Tensor, cond: torch.Tensor, null: torch.Tensor, *, seed: int,
                steps: int = 20) -> torch.Tensor:
        """A0's stage II on the server."""
        return self.client.tensors("POST", f"/models/{self.model}/upscale", data=pack(
            {"images": images, "cond": cond, "null": null}, {"seed": str(seed), "steps": str(steps)}))["images"]


class RemoteVelocityModel(RemotePrompts):
    """A flow model on the server as a ``VelocityModel``: ``velocity`` is one POST of x_t, a per-row t and one
    condition row per image; prompts are encoded by the server once and kept here. The noise, the Euler loop and the
    guidance stay in the app."""

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, client: ServerClient, model: str, info: dict):
        super().__init__()
        self.client, self.model, self.info = client, model, info
        self.kind: str = info["kind"]  # "mnist" (part B's class flow model) or "pixnerd"
        self.name = f"{info['name']} (model server)"
        self.image_shape = tuple(info["image_shape"])
        self.value_range = tuple(info["value_range"])

    def velocity(self, x_t: torch.Tensor, t: float | torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """dx/dt (B, C, H, W) at time t (a number, or (B,)) under ``cond`` (one row per image, or one for all)."""
        b = x_t.shape[0]
        rows = torch.as_tensor(t, dtype=torch.float32).cpu().expand(b).contiguous()
        out = self.client.tensors("POST", f"/models/{self.model}/velocity", data=pack(
            {"x": x_t.float(), "t": rows, "cond": cond.float().expand(b, *cond.shape[1:])}))
        return out["v"].to(x_t.device, x_t.dtype)
