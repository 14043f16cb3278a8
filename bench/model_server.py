"""The model server under load: UNet rows per second and per-step latency for 1, 4 and 16 sessions sampling at once,
with cross-session batching on (max_batch_size 16) and off (1), against the same sessions on a local model.

Each session runs the B3 page's loop — ``lib.ddpm.sampling.sample`` with CFG γ = 5 at stride 10 (30 steps, 4 images: one
call of 8 rows per step) — in its own thread, through ``lib.backends.remote.RemoteNoiseModel`` (project) or on one shared local
``MnistDDPM`` (baseline: what one Streamlit process does today). The server is ``python -m lib.model_server`` started
here on a free loopback port, one run per batching setting, with the shipped class model.
  rows/s      UNet rows computed per second of wall time, all sessions together
  step        median seconds per sampling step seen by a session (one predict call, queueing included)
On a 2-core CPU the server, its HTTP proxy and the client threads share the same cores: a CPU figure, not a GPU one.

Run:  python bench/model_server.py [--sessions 1,4,16] [--stride 10]      (--device is where the server computes)
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from common import parser, report, setup

import torch  # noqa: E402

from lib.train import model_store  # noqa: E402
from lib.backends.mnist_model import MnistDDPM  # noqa: E402
from lib.backends.remote import ServerClient  # noqa: E402
from lib.ddpm.sampling import sample  # noqa: E402
from tests.server_util import TOKEN, ModelServerProcess  # noqa: E402


class Timed:
    """A denoiser whose ``predict`` calls are timed (per session)."""

    def __init__(self, den):
        self.den, self.seconds, self.rows = den, [], 0

    def __getattr__(self, name):
        return getattr(self.den, name)

    def predict(self, x_t, t, cond):
        start = time.perf_counter()
        out = self.den.predict(x_t, t, cond)
        self.seconds.append(time.perf_counter() - start)
        self.rows += x_t.shape[0]
        return out


def run_sessions(make_noise_model, n: int, stride: int, samples: int) -> tuple[float, float]:
    """(rows/s, median s/step) of ``n`` sessions sampling at once."""
    dens = [Timed(make_noise_model()) for _ in range(n)]
    conds = [d.encode_prompt(str(i % 10)) for i, d in enumerate(dens)]
    start_line = threading.Barrier(n + 1)

    def session(i):
        start_line.wait()
        sample(dens[i], conds[i], scale=5.0, stride=stride, num_samples=samples,
               generator=torch.Generator().manual_seed(i))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start_line.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(d.rows for d in dens) / wall, statistics.median(s for d in dens for s in d.seconds)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sessions", default="1,4,16")
    p.add_argument("--stride", type=int, default=10)
    p.add_argument("--samples", type=int, default=4)
    args = p.parse_args()
    setup(args)
    counts = [int(n) for n in args.sessions.split(",")]
    run = model_store.load_run(model_store.shipped_path("class"))
    local = MnistDDPM(run.model, run.config)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for n in counts:
        results[("local", n)] = run_sessions(lambda: local, n, args.stride, args.samples)
        print(f"local     {n:2d} sessions: {results[('local', n)][0]:8.1f} rows/s, "
              f"{results[('local', n)][1] * 1000:7.1f} ms/step", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (16, 1):
            server = ModelServerProcess("mnist-class", Path(tmp) / f"server{batch}.log", max_batch_size=batch)
            try:
                server.wait_ready()
                client = ServerClient(server.url, TOKEN)
                info = client.health()["models"]["mnist-class"]
                run_sessions(lambda: client.noise_model("mnist-class", info), 1, 100, 1)  # warm-up
                for n in counts:
                    label = f"server b{batch}"
                    results[(label, n)] = run_sessions(lambda: ServerClient(server.url, TOKEN).noise_model(
                        "mnist-class", info), n, args.stride, args.samples)
                    print(f"{label:9s} {n:2d} sessions: {results[(label, n)][0]:8.1f} rows/s, "
                          f"{results[(label, n)][1] * 1000:7.1f} ms/step", flush=True)
                sizes = client.health()["batch_sizes"]
                print(f"server b{batch}: requests per UNet call → calls: {sizes}", flush=True)
            finally:
                server.stop()
    print()
    for n in counts:
        on, off, loc = results[("server b16", n)], results[("server b1", n)], results[("local", n)]
        report(f"model server, {n} sessions, batching on vs off", "rows/s", on[0], off[0], higher_is_better=True)
        report(f"model server (batching on) vs local, {n} sessions", "rows/s", on[0], loc[0], higher_is_better=True)
        report(f"model server per-step latency, {n} sessions, batching on vs off", "ms/step", on[1] * 1000,
               off[1] * 1000, higher_is_better=False)


if __name__ == "__main__":
    main()
