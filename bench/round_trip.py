"""The model server's round trip, taken apart: what one predict call of an 8-row MNIST batch costs over loopback, beside
what the transport alone costs.

Medians of ``--posts`` rounds (after ``--warmup`` more) on one pooled keep-alive ``requests.Session``; each round runs
every workload once, in an order that rotates from round to round, so that whatever else loads the machine (it may be
shared) falls on all of them alike and their ratios hold even when the absolute figures drift:
  bare echo       a FastAPI app on uvicorn (its own process) answering the request's bytes back: HTTP alone
  serve echo      the same echo as a Ray Serve deployment, one replica, behind Serve's HTTP proxy
  predict         POST /models/mnist-class/predict of lib.model_server (the shipped class model) in the same cluster,
                  pre-packed body
  app client      the same call through the app's own client (RemoteNoiseModel.predict: packing, retries, unpacking)
  unet local      the same 8-row UNet call in this process (MnistDDPM.predict; torch's default threads, as
                  the replica has, unless --threads)
The server's own Server-Timing header splits a predict into its parts (reading and unpacking the body, checking it,
queueing for a batch, the UNet call, packing the answer): the rest of the round trip is HTTP, Serve's hops and the client.
  transport       round trip − the UNet call the server reports for it; target: ≤ serve echo + 2 ms

Each ``--config`` starts its own cluster (``python bench/round_trip.py --host …``: Ray, Serve on a free loopback port,
the echo and the model server as two applications) with one of Serve's set-ups (``SERVE_CONFIGS``): ``proxy`` Serve's
default HTTP proxy; ``proxy-fast`` its throughput-optimised mode without direct ingress (proxy → replica by gRPC, user
code on the replica's event loop); ``direct`` that mode with direct ingress (each ingress replica runs its own HTTP
server: no proxy hop). The bare echo runs throughout, so every set-up has its own baseline from its own rounds.

Run:  python bench/round_trip.py [--posts 300] [--configs proxy,proxy-fast,direct] [--batch-wait-ms 5]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, parser, report, setup

import requests  # noqa: E402
import torch  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402

from lib.backends.remote import ServerClient  # noqa: E402
from lib.backends.wire import CONTENT_TYPE, pack, unpack  # noqa: E402

ROWS = 8  # the B3 page's call: 4 images × CFG's [cond | null]
SERVE_CONFIGS = {  # Serve's own switches (environment of the cluster), from its default to its lightest path
    "proxy": {},  # the HTTP proxy actor hands each request to the replica by a Ray actor call
    "proxy-fast": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"},  # by gRPC; user
    # code and the router on the replica's own event loop (no extra thread hop)
    "direct": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},  # the same, and no proxy: each ingress replica serves HTTP itself
}
DIRECT_PORTS = 8  # direct ingress: how many HTTP ports (from a free one up) Serve may give its replicas
TOKEN = "bench-round-trip-token"

echo_api = FastAPI()


@echo_api.post("/echo")
async def echo(request: Request) -> Response:
    """The request's bytes back: everything a predict does but the work."""
    return Response(await request.body(), media_type=CONTENT_TYPE)


def batch_message() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(ROWS, 1, 28, 28, generator=g), "t": torch.full((ROWS,), 150, dtype=torch.int64),
            "cond": torch.nn.functional.one_hot(torch.arange(ROWS) % 10, 10).float()}


def server_timing(header: str) -> dict[str, float]:
    """``a;dur=1.2, b;dur=0.3`` → {a: 1.2, b: 0.3} (ms)."""
    parts = {}
    for item in filter(None, (p.strip() for p in header.split(","))):
        name, _, dur = item.partition(";dur=")
        if dur:
            parts[name] = float(dur)
    return parts


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def spread(xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=20)
    return f"p5 {q[0] * 1000:.2f} / p95 {q[-1] * 1000:.2f} ms"


class RecordingClient(ServerClient):
    """The app's client, keeping its last response (for the server's timing of each call)."""

    def request(self, *args, **kwargs):
        self.last = super().request(*args, **kwargs)
        return self.last


class Child:
    """A subprocess of this script (``--bare-echo`` or ``--host``) in its own session, stopped with all it started."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, __file__, *args, "--exit-with", str(os.getpid())], cwd=ROOT,
                                     env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})},
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, url: str, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.proc.args} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        sys.exit(f"{url} did not answer within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def find_replicas(self, ports: range, timeout: float = 240.0) -> tuple[str, str]:
        """Direct ingress (no proxy): the echo's URL and the model server's base URL, found among ``ports`` (the
        range Serve allocates its replicas' HTTP ports from) once both replicas answer."""
        deadline = time.monotonic() + timeout
        echo_url = model_url = None
        while time.monotonic() < deadline and not (echo_url and model_url):
            if self.proc.poll() is not None:
                sys.exit(f"{self.proc.args} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            for port in ports:
                base = f"http://127.0.0.1:{port}"
                try:
                    if requests.get(base + "/health", timeout=2).status_code == 200:
                        model_url = base
                        continue
                    for path in ("/echo/echo", "/echo"):
                        if requests.post(base + path, data=b"x", timeout=2).content == b"x":
                            echo_url = base + path
                except requests.RequestException:
                    pass
            time.sleep(0.5)
        if not (echo_url and model_url):
            self.stop()
            sys.exit(f"no replica answered on ports {ports.start}–{ports.stop - 1}:\n{self.log.read_text()[-3000:]}")
        return echo_url, model_url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of its session is left (Ray's workers)
        except ProcessLookupError:
            pass


def host(port: int, batch_wait_s: float, exit_with: int) -> None:
    """A Ray cluster with Serve on ``port``: the echo at /echo and lib.model_server at /, until SIGTERM."""
    import ray
    from ray import serve

    from lib.model_server import build_app, watch_parent

    path = os.pathsep.join([str(ROOT), str(ROOT / "bench")])
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "DIFFUSION_LAB_SERVER_TOKEN": TOKEN}})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=watch_parent, args=(exit_with, stop), daemon=True).start()
    try:
        serve.run(serve.deployment(serve.ingress(echo_api)(ServeEcho)).bind(), name="echo", route_prefix="/echo",
                  blocking=False)
        serve.run(build_app({"models": "mnist-class", "batch_wait_timeout_s": batch_wait_s}), name="model",
                  route_prefix="/", blocking=False)
        print("ready", flush=True)
        stop.wait()
    finally:
        ray.shutdown()


class ServeEcho:
    """The echo app as a Serve deployment (its routes come from ``echo_api``)."""


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--posts", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--configs", default="proxy,proxy-fast,direct", help=f"Serve set-ups to measure: {', '.join(SERVE_CONFIGS)}")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="the model server's batch_wait_timeout_s, in ms")
    args = p.parse_args()
    setup(args)
    from lib.train import model_store
    from lib.backends.mnist_model import MnistDDPM
    from tests.browser_util import free_port

    message = batch_message()
    body = pack(message)
    print(f"message: {ROWS} rows, {len(body):,} bytes; {args.posts} rounds after {args.warmup} of warm-up; each round "
          "runs every workload once, in a rotating order\n", flush=True)
    run = model_store.load_run(model_store.shipped_path("class"))
    local = MnistDDPM(run.model, run.config)
    for what, fn in (("pack", lambda: pack(message)), ("unpack", lambda: unpack(body))):
        took = []
        for _ in range(args.posts):
            start = time.perf_counter()
            fn()
            took.append(time.perf_counter() - start)
        print(f"wire {what:6s}  {ms(took):7.3f} ms", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        bare_port = free_port()
        bare = Child(["--bare-echo", str(bare_port)], Path(tmp) / "bare.log")
        try:
            bare.wait_for(f"http://127.0.0.1:{bare_port}/docs")
            for name in args.configs.split(","):
                port, replica_ports = free_port(), free_port()
                env = {**SERVE_CONFIGS[name], "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(replica_ports),
                       "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(replica_ports + DIRECT_PORTS)}
                cluster = Child(["--host", str(port), "--batch-wait-ms", str(args.batch_wait_ms)],
                                Path(tmp) / f"{name}.log", env)
                try:
                    if name == "direct":
                        echo_url, url = cluster.find_replicas(range(replica_ports, replica_ports + DIRECT_PORTS))
                    else:
                        cluster.wait_for(f"http://127.0.0.1:{port}/health")
                        echo_url, url = f"http://127.0.0.1:{port}/echo/echo", f"http://127.0.0.1:{port}"
                    measure(name, f"http://127.0.0.1:{bare_port}/echo", echo_url, url, body, message, local,
                            args.posts, args.warmup)
                finally:
                    cluster.stop()
        finally:
            bare.stop()


def measure(config: str, bare_url: str, echo_url: str, url: str, body: bytes, message: dict, local, n: int, warmup: int) -> None:
    """One Serve set-up: ``n`` rounds (after ``warmup``), each timing every workload once, so that whatever else loads
    the machine falls on all of them alike; then the medians, the server's parts and the ratios."""
    headers = {"Content-Type": CONTENT_TYPE, "Authorization": f"Bearer {TOKEN}"}
    session = requests.Session()  # one pooled keep-alive connection per host, as the app's client holds
    den = RecordingClient(url, TOKEN).noise_model("mnist-class")
    predict_timing: list[dict] = []

    def post(target: str) -> requests.Response:
        r = session.post(target, data=body, headers=headers, timeout=60)
        r.raise_for_status()
        return r

    def predict() -> None:
        predict_timing.append(server_timing(post(url + "/models/mnist-class/predict").headers["server-timing"]))

    def unet_local() -> None:
        with torch.no_grad():
            local.predict(message["x"], message["t"], message["cond"])

    client_unet: list[float] = []
    workloads = {"bare echo": lambda: post(bare_url), "serve echo": lambda: post(echo_url),
                 "predict": predict,
                 "app client": lambda: den.predict(message["x"], message["t"], message["cond"]),
                 "unet local": unet_local}
    seconds: dict[str, list[float]] = {k: [] for k in workloads}
    names = list(workloads)
    for i in range(warmup + n):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            workloads[name]()
            elapsed = time.perf_counter() - start
            if name == "app client":
                client_unet.append(server_timing(den.client.last.headers["server-timing"])["unet"] / 1000)
            if i >= warmup:
                seconds[name].append(elapsed)
    timing = predict_timing[warmup:]
    client_unet = client_unet[warmup:]
    for name, xs in seconds.items():
        print(f"[{config}] {name:11s} {ms(xs):7.2f} ms  ({spread(xs)})", flush=True)
    parts = {k: statistics.median(t[k] for t in timing) for k in timing[0]}
    outside = [x - sum(t.values()) / 1000 for x, t in zip(seconds["predict"], timing)]  # HTTP, proxy, client
    transport = [x - t["unet"] / 1000 for x, t in zip(seconds["predict"], timing)]
    client_transport = [x - u for x, u in zip(seconds["app client"], client_unet)]
    print(f"[{config}] predict's server parts (medians, ms): " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
          + f"\n[{config}] predict outside its handler (HTTP, Serve's hops, client): {ms(outside):.2f} ms"
          f"\n[{config}] transport = round trip − its UNet call: predict {ms(transport):.2f} ms "
          f"({spread(transport)}), app client {ms(client_transport):.2f} ms ({spread(client_transport)})", flush=True)
    health = requests.get(url + "/health", timeout=10).json()
    print(f"[{config}] requests per UNet call → calls: {health['batch_sizes']}; calls that waited for company: "
          f"{health['batch_waits']}", flush=True)
    echo = ms(seconds["serve echo"])
    for what, xs in (("predict", transport), ("app client", client_transport)):
        report(f"[{config}] {what} transport vs serve echo + 2 ms", "ms", ms(xs), echo + 2, higher_is_better=False,
               target="≤ serve echo + 2 ms", met=ms(xs) <= echo + 2)
    report(f"[{config}] serve echo vs bare echo", "ms", echo, ms(seconds["bare echo"]), higher_is_better=False)
    report(f"[{config}] app client vs unet local", "ms", ms(seconds["app client"]), ms(seconds["unet local"]),
           higher_is_better=False)
    print(flush=True)


def entry(argv: list[str]) -> None:
    if argv and argv[0] in ("--bare-echo", "--host"):
        import argparse

        q = argparse.ArgumentParser()
        q.add_argument("--bare-echo", type=int)
        q.add_argument("--host", type=int)
        q.add_argument("--batch-wait-ms", type=float, default=5.0)
        q.add_argument("--exit-with", type=int, required=True)
        a = q.parse_args(argv)
        if a.bare_echo:
            import uvicorn

            uvicorn.run(echo_api, host="127.0.0.1", port=a.bare_echo, log_level="warning")
        else:
            host(a.host, a.batch_wait_ms / 1000, a.exit_with)
    else:
        main()


if __name__ == "__main__":
    # Run the copy imported as round_trip, not __main__: Ray's workers import the echo deployment by name (bench/ is on
    # their PYTHONPATH) instead of unpickling classes defined in __main__.
    from round_trip import entry as _entry

    _entry(sys.argv[1:])
