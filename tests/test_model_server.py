"""The model server for real: Ray Serve started by the test on the loopback address with the shipped MNIST models and
the tiny IF snapshots (through the production loaders, on the CPU), driven through lib.backends.remote as the app drives it.

A remote model is a pure function of its inputs: the app's loops give the local model's images for the same seed.
Sixteen sessions sampling at once all get their lone results and are served in shared UNet calls; bad requests get a
4xx and the server keeps serving; a killed server gives a one-line error, and the next request after its restart works.
"""

from __future__ import annotations

import threading

import pytest
import requests
import torch

from lib.ddpm.sampling import sample_with
from lib.techniques.anagrams import anagram_predictor
from lib.techniques.hybrids import hybrid_predictor
from lib.techniques.inpainting import inpaint
from lib.techniques.sdedit import sdedit

from lib.train import model_store
from lib.backends.mnist_model import MnistDDPM
from lib.ddpm.sampling import PromptError
from lib.backends.remote import RemoteUnavailable, ServerClient
from lib.ddpm.sampling import sample
from lib.techniques.views import VIEWS
from lib.backends.wire import pack
from server_util import TOKEN, ModelServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    from tests.tiny_if import write_tiny_snapshots

    return write_tiny_snapshots(tmp_path_factory.mktemp("if-snapshots"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, snapshots):
    tmp = tmp_path_factory.mktemp("model-server")
    with ModelServerProcess("mnist-class,mnist-time,IF-I-XL", tmp / "server.log", env={
            "DIFFUSION_LAB_IF_DIR": str(snapshots), "DIFFUSION_LAB_IF_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
            "DIFFUSION_LAB_EMBEDDINGS": str(tmp / "embeddings"), "DIFFUSION_LAB_SERVER_MAX_MB": "1"}) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    return ServerClient(server.url, TOKEN)


def local_mnist(kind: str) -> MnistDDPM:
    run = model_store.load_run(model_store.shipped_path(kind))
    return MnistDDPM(run.model, run.config)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_health_describes_the_models(client):
    info = client.health()
    assert set(info["models"]) == {"mnist-class", "mnist-time", "IF-I-XL"}
    assert info["models"]["mnist-class"]["image_shape"] == [1, 28, 28] and info["auth"] is True
    # IF travels in its UNet's dtype: fp32 for the tiny IF on this CPU (fp16 on a GPU)
    assert info["models"]["IF-I-XL"]["kind"] == "if" and info["models"]["IF-I-XL"]["wire_dtype"] == "float32"
    assert info["config"] == {"max_batch_size": 16, "batch_wait_timeout_s": 0.005}


def test_remote_mnist_models_give_the_local_images(client):
    for kind in ("class", "time"):
        local, remote = local_mnist(kind), client.noise_model(f"mnist-{kind}")
        assert torch.equal(remote.schedule.betas, local.schedule.betas)
        assert remote.timesteps(10) == local.timesteps(10)
        prompt = "7" if kind == "class" else ""
        a = sample(remote, remote.encode_prompt(prompt), scale=5.0, stride=30, num_samples=3, generator=gen(1))
        b = sample(local, local.encode_prompt(prompt), scale=5.0, stride=30, num_samples=3, generator=gen(1))
        assert torch.allclose(a, b, atol=1e-5), (kind, (a - b).abs().max())
    local, remote = local_mnist("class"), client.noise_model("mnist-class")
    for den in (local, remote):  # the part-A edits: an anagram, a hybrid, inpainting, SDEdit
        three, eight = den.encode_prompt("3"), den.encode_prompt("8")
        views = [VIEWS["identity"], VIEWS["flip upside down"]]
        out = [sample_with(den, anagram_predictor(den, [three, eight], views, [0.5, 0.5], 5.0),
                                 num_samples=2, stride=30, generator=gen(2)),
               sample_with(den, hybrid_predictor(den, three, eight, 5.0, 9, 1.5), num_samples=2,
                                 stride=30, generator=gen(3))]
        x0 = torch.zeros(1, 1, 28, 28) - 1
        mask = torch.zeros(1, 1, 28, 28)
        mask[..., :14] = 1
        out.append(inpaint(den, x0, mask, cond=three, scale=5.0, stride=30, generator=gen(4)))
        out.append(sdedit(den, x0, cond=three, scale=5.0, i_start=5, stride=30, generator=gen(5)))
        if den is local:
            expected = out
    for a, b in zip(out, expected):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_remote_tiny_if_gives_the_local_images(client, snapshots, tmp_path):
    from lib.backends.deepfloyd import pipeline_sample
    from lib.backends.if_hub import source
    from lib.backends.if_loading import load_if

    local = load_if("IF-I-XL", source(folder=snapshots), "cpu", embeddings_dir=tmp_path)
    remote = client.noise_model("IF-I-XL")
    assert remote.timesteps(30) == local.timesteps(30) and remote.variance_type == "learned_range"
    assert torch.allclose(remote.schedule.alphas_cumprod, local.schedule.alphas_cumprod)
    c_remote, c_local = remote.encode_prompt("a photo of a dog"), local.encode_prompt("a photo of a dog")
    assert torch.allclose(c_remote, c_local.float())
    a = sample(remote, c_remote, scale=7.0, stride=200, num_samples=2, generator=gen(0))
    b = sample(local, c_local, scale=7.0, stride=200, num_samples=2, generator=gen(0))
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    stock = remote.stock_sample("a photo of a dog", steps=3, seed=4, scale=7.0)
    assert torch.allclose(stock, pipeline_sample(local, "a photo of a dog", steps=3, generator=gen(4)), atol=1e-4)


def test_a_lone_session_is_never_held_for_company_and_each_answer_says_where_its_time_went(client):
    """Serve's @serve.batch held every request for its batch wait; the server's Batcher runs a lone one at once."""
    local = local_mnist("class")
    den = client.noise_model("mnist-class")
    x = torch.randn(8, 1, 28, 28, generator=gen(3))
    t, cond = torch.full((8,), 150), torch.nn.functional.one_hot(torch.arange(8) % 10, 10).float()
    before = client.health()
    for _ in range(5):  # one session, one request at a time: as the pages call
        r = client.request("POST", "/models/mnist-class/predict", data=pack({"x": x, "t": t, "cond": cond}))
        assert r.headers["x-batch-requests"] == "1"
        parts = [item.split(";dur=")[0].strip() for item in r.headers["server-timing"].split(",")]
        assert parts == ["receive", "check", "queue", "unet", "send"]
    after = client.health()
    assert after["batch_waits"] == before["batch_waits"]  # none of the five calls waited to fill
    assert after["batch_sizes"]["1"] == before["batch_sizes"].get("1", 0) + 5
    eps, _ = den.predict(x, t, cond)
    assert torch.allclose(eps, local.predict(x, t, cond)[0], atol=1e-5)


def test_sixteen_sessions_at_once_are_batched_and_each_gets_its_own_images(client):
    local = local_mnist("class")
    n = 16
    expected = [sample(local, local.encode_prompt(str(i % 10)), scale=5.0, stride=30, num_samples=2,
                       generator=gen(i)) for i in range(n)]
    got: list = [None] * n
    errors: list = []
    start = threading.Barrier(n)

    def session(i):
        try:
            den = ServerClient(client.url, TOKEN).noise_model("mnist-class")
            cond = den.encode_prompt(str(i % 10))
            start.wait()
            got[i] = sample(den, cond, scale=5.0, stride=30, num_samples=2, generator=gen(i))
        except Exception as err:  # noqa: BLE001 — reported below
            errors.append(err)

    health = client.health()
    before, waits_before = health["counters"].get("requests", 0), health["batch_waits"]
    threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (a, b) in enumerate(zip(got, expected)):
        assert torch.allclose(a, b, atol=1e-5), i
    health = client.health()
    assert health["counters"]["requests"] - before == n * len(local.timesteps(30)) - n  # one request per step, none lost
    assert max(int(k) for k in health["batch_sizes"]) > 1, health["batch_sizes"]
    assert health["batch_waits"] > waits_before  # with company queued, calls waited for the rest to arrive


def test_bad_requests_get_4xx_with_a_message_and_the_server_keeps_serving(client, server):
    url = server.url + "/models/mnist-class/predict"
    good = {"x": torch.zeros(2, 1, 28, 28), "t": torch.tensor([10, 20]), "cond": torch.zeros(2, 10)}
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def post(body, headers=auth, path=url):
        return requests.post(path, data=body, headers=headers, timeout=30)

    assert post(pack(good)).status_code == 200
    cases = {
        "no token": (post(pack(good), headers={}), 401, "access token"),
        "wrong token": (post(pack(good), headers={"Authorization": "Bearer nope"}), 401, "access token"),
        "unknown model": (post(pack(good), path=server.url + "/models/cat/predict"), 404, "unknown model 'cat'"),
        "wrong shape": (post(pack({**good, "x": torch.zeros(2, 3, 28, 28)})), 400, "expected (2, 1, 28, 28)"),
        "wrong dtype": (post(pack({**good, "x": torch.zeros(2, 1, 28, 28, dtype=torch.int32)})), 400, "I32"),
        "timestep": (post(pack({**good, "t": torch.tensor([10, 300])})), 400, "timesteps must lie in [0, 299]"),
        "missing": (post(pack({"x": good["x"], "t": good["t"]})), 400, "'cond' is missing"),
        "not safetensors": (post(b"\x00" * 100), 400, "not a safetensors message"),
        "oversized": (post(b"\x00" * (2 * 2**20)), 413, "cap"),
    }
    for what, (r, status, text) in cases.items():
        assert r.status_code == status and text in r.json()["detail"], (what, r.status_code, r.text[:300])
    with pytest.raises(PromptError, match="names no digit"):
        client.noise_model("mnist-class").encode_prompt("a cat")
    with pytest.raises(RemoteUnavailable, match="refused the access token"):
        ServerClient(server.url, "wrong").noise_model("mnist-class")
    assert post(pack(good)).status_code == 200  # still serving


def test_a_killed_server_gives_one_line_and_the_next_request_after_its_restart_works(tmp_path):
    first = ModelServerProcess("mnist-class", tmp_path / "server.log").wait_ready()
    port = first.port
    den = ServerClient(first.url, TOKEN, retries=2, backoff=0.1).noise_model("mnist-class")
    cond = den.encode_prompt("4")
    steps: list[int] = []

    def on_step(i, t, x, x0):
        steps.append(i)
        if i == 3:
            first.kill()  # mid-sampling

    try:
        with pytest.raises(RemoteUnavailable) as info:
            sample(den, cond, scale=5.0, stride=30, num_samples=1, generator=gen(), on_step=on_step)
        assert str(info.value) == (f"The model server at {first.url} is not reachable (down, or a wrong address) "
                                   "after 2 tries")
        assert steps == [0, 1, 2, 3]
    finally:
        first.stop()
    second = ModelServerProcess("mnist-class", tmp_path / "server2.log", port=port).wait_ready()
    try:
        out = sample(den, cond, scale=5.0, stride=30, num_samples=1, generator=gen())  # the same client object
        local = local_mnist("class")
        assert torch.allclose(out, sample(local, local.encode_prompt("4"), scale=5.0, stride=30, num_samples=1,
                                          generator=gen()), atol=1e-5)
    finally:
        second.stop()
