"""DeepFloyd IF as a NoiseModel, on a toy-sized IF with random weights (no GPU, token or download needed): the loop
against diffusers' scheduler, the stock pipelines, the prompt cache, and what hub failures tell the user (with the
real offline hub client: nothing is mocked). Loading from snapshots: test_if_loading.py."""

from __future__ import annotations

import hashlib

import httpx2
import pytest
import torch
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

from lib.backends.deepfloyd import add_variance, pipeline_sample, upscale
from lib.ddpm.diffusion import step_log_variance
from lib.backends.if_configs import IF_VARIANTS, T5_REPO, if_stage1_scheduler
from lib.backends.hub import NO_TOKEN, license_message, rejected_message
from lib.backends.if_hub import NO_NETWORK, check_if_requirements, hub_error_message, no_gpu_message, source
from lib.backends.prompt_cache import PromptEmbeddingCache
from lib.ddpm.sampling import sample
from lib.ddpm.schedules import strided_timesteps
from tests.tiny_if import fake_t5_embeddings, tiny_if_noise_model, tiny_unet

TOKEN = "hf_TestTokenThatMustNeverLeak123"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    return tiny_if_noise_model(seed=0)


def test_tiny_if_is_a_denoiser_with_the_course_timesteps(tiny):
    assert tiny.image_shape == (3, 64, 64) and tiny.variance_type == "learned_range"
    ts = tiny.timesteps(30)
    assert ts == list(range(990, -1, -30)) == strided_timesteps(1000, 30)
    assert len(ts) == 34 and ts[10] == 690  # the course: i_start = 10 ⇔ t = 690
    c = tiny.encode_prompt("a rocket ship")
    assert c.shape == (1, 77, 4096)
    assert torch.equal(c, tiny.encode_prompt("a rocket ship"))
    assert not torch.allclose(c, tiny.encode_prompt("a man wearing a hat"))
    assert torch.equal(tiny.null_condition(), tiny.encode_prompt(""))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    eps, v = tiny.predict(x, 500, c.expand(2, -1, -1))
    raw = tiny.unet(x, 500, encoder_hidden_states=c.expand(2, -1, -1), return_dict=False)[0]
    assert torch.equal(eps, raw[:, :3]) and torch.equal(v, raw[:, 3:])
    # the schedule is IF's own: squaredcos_cap_v2 with T = 1000
    assert torch.allclose(tiny.schedule.alphas_cumprod.float(), tiny.scheduler.alphas_cumprod, atol=1e-6)


@pytest.mark.slow
def test_strided_cfg_loop_equals_diffusers_ddpm_scheduler_loop(tiny):
    """Our loop (lib.ddpm.sampling.sample) vs diffusers' DDPMScheduler.step with custom timesteps, same UNet, same noise,
    thresholding and clipping off on both sides, CFG with the conditional pass's variance (as IFPipeline does)."""
    from diffusers import DDPMScheduler

    scale, stride = 7.0, 30
    cond, uncond = tiny.encode_prompt("an oil painting of a snowy mountain village"), tiny.null_condition()
    ours = sample(tiny, cond, scale=scale, stride=stride, num_samples=1, generator=torch.Generator().manual_seed(180))
    assert ours.shape == (1, 3, 64, 64) and torch.isfinite(ours).all()

    sched = DDPMScheduler.from_config(tiny.scheduler.config, thresholding=False, clip_sample=False)
    ts = list(range(990, -1, -30))
    sched.set_timesteps(timesteps=ts)
    g = torch.Generator().manual_seed(180)
    x = torch.randn(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        for t in ts[:-1]:  # 33 steps, 990 → … → 0, ending at t = 0 like the course's loop
            out = tiny.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([cond, uncond]), return_dict=False)[0]
            (eps_c, var_c), (eps_u, _) = out[:1].split(3, dim=1), out[1:].split(3, dim=1)
            model_output = torch.cat([eps_u + scale * (eps_c - eps_u), var_c], dim=1)
            x = sched.step(model_output, t, x, generator=g).prev_sample
    assert torch.allclose(ours, x, atol=1e-4, rtol=1e-4), (ours - x).abs().max()


def test_step_log_variance_and_add_variance_match_diffusers_get_variance(tiny):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_config(tiny.scheduler.config)
    ts = strided_timesteps(1000, 30)
    sched.set_timesteps(timesteps=ts)
    v = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        ref = sched._get_variance(t, predicted_variance=v)
        ours = step_log_variance(t, t_prev, tiny.schedule, "learned_range", v)
        assert torch.allclose(ours.float(), ref, atol=1e-4, rtol=1e-4), t  # float64 vs float32 ᾱ
        small = sched._get_variance(t, variance_type="fixed_small")
        assert torch.allclose(step_log_variance(t, t_prev, tiny.schedule, "fixed_small").exp().float(), small,
                              rtol=1e-3), t  # 1 − ᾱ_t/ᾱ_t' cancels in float32
    image = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    ours = add_variance(sched, v, 510, image, torch.Generator().manual_seed(3))
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(3))
    course = image + torch.exp(0.5 * sched._get_variance(510, predicted_variance=v)) * noise  # the starter's helper
    assert torch.allclose(ours, course, atol=1e-5)


def test_stock_pipeline_runs_on_the_cached_embeddings(tiny):
    out = pipeline_sample(tiny, "a rocket ship", steps=2, generator=torch.Generator().manual_seed(0), num_samples=1)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all() and out.abs().max() <= 1


@pytest.mark.slow
def test_upscale_runs_the_stage2_pipeline_in_the_models_pixel_range(tiny):
    """Stage II at toy size (the real one has sample_size 256): image in [−1, 1] in, [−1, 1] out at the UNet's size."""
    from diffusers import DDPMScheduler, IFSuperResolutionPipeline

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet2 = tiny_unet(stage2=True, sample_size=96)
    sched = DDPMScheduler.from_config(if_stage1_scheduler().config, sample_max_value=1.0)
    pipe = IFSuperResolutionPipeline(
        unet=unet2, scheduler=sched, image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=None, text_encoder=None, safety_checker=None, feature_extractor=None, watermarker=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    image64 = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = upscale(pipe, image64, tiny.encode_prompt("a dog"), tiny.null_condition(), torch.Generator().manual_seed(0),
                  steps=2)
    assert out.shape == (2, 3, 96, 96) and torch.isfinite(out).all() and out.abs().max() <= 1
    # the low-res image conditions the result: a different input gives a different upscale
    other = upscale(pipe, -image64, tiny.encode_prompt("a dog"), tiny.null_condition(),
                    torch.Generator().manual_seed(0), steps=2)
    assert (other - out).abs().mean() > 1e-3


# ---------------------------------------------------------------------------------------------------- prompt cache


class CountingEncoder:
    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, prompts):
        self.calls.append(list(prompts))
        return fake_t5_embeddings(prompts).half()


def test_prompt_cache_hits_in_memory_and_on_disk(tmp_path):
    enc = CountingEncoder()
    cache = PromptEmbeddingCache(tmp_path, enc)
    first = cache.get("a lithograph of a skull")
    assert first.shape == (1, 77, 4096) and first.dtype == torch.float16
    assert (cache.hits, cache.misses, len(enc.calls)) == (0, 1, 1)
    assert torch.equal(cache.get("a lithograph of a skull"), first)
    assert (cache.hits, cache.misses, len(enc.calls)) == (1, 1, 1)
    name = hashlib.sha256(f"{T5_REPO}\na lithograph of a skull".encode()).hexdigest() + ".safetensors"
    assert [p.name for p in tmp_path.glob("*.safetensors")] == [name]

    again = PromptEmbeddingCache(tmp_path, enc)  # a new process: served from disk, no encoder call
    assert torch.equal(again.get("a lithograph of a skull"), first)
    assert (again.hits, again.misses, len(enc.calls)) == (1, 0, 1)

    # several prompts: the missing ones are encoded in ONE call (one text-encoder load), order preserved
    many = again.get_many(["b", "a lithograph of a skull", "c", "b"])
    assert enc.calls[-1] == ["b", "c"] and len(enc.calls) == 2
    assert torch.equal(many[1:2], first) and torch.equal(many[0], many[3])

    # a corrupt entry is recomputed, not trusted
    path = tmp_path / name
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = PromptEmbeddingCache(tmp_path, enc)
    assert torch.equal(fresh.get("a lithograph of a skull"), first) and fresh.misses == 1 and len(enc.calls) == 3


# ---------------------------------------------------------------------------------------------------- hub access


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """The real hub client in offline mode (HF_HUB_OFFLINE=1) with an empty cache: what a machine without network
    meets, answered at once instead of after the client's retries."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("DIFFUSION_LAB_IF_DIR", raising=False)


def response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))


def test_hub_errors_say_what_to_do_and_never_show_the_token():
    repo = IF_VARIANTS["IF-I-XL"]
    gated = GatedRepoError(f"Access to model {repo} is restricted. Token {TOKEN}", response=response(403))
    assert hub_error_message(gated, repo) == license_message(repo)
    assert "accept the license at https://huggingface.co/DeepFloyd/IF-I-XL-v1.0" in license_message(repo)
    wrapped = OSError(f"We couldn't connect to 'https://huggingface.co' (token {TOKEN})")
    wrapped.__cause__ = LocalEntryNotFoundError("offline and not cached")
    assert hub_error_message(wrapped, repo) == NO_NETWORK  # diffusers wraps the cause in an OSError
    assert hub_error_message(httpx2.ConnectError("[Errno -3] name resolution"), repo) == NO_NETWORK
    assert hub_error_message(OSError("401 Client Error: Unauthorized"), repo) == rejected_message(repo)
    assert hub_error_message(OSError("disk full"), repo).startswith(f"Could not load {repo}: OSError: disk full")


def test_requirements_offline_without_gpu_or_token_name_each_problem_once(offline_hub, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("DIFFUSION_LAB_IF_DEVICE", raising=False)
    problems = check_if_requirements("IF-I-L", source(), torch.device("cuda"))
    assert problems[0] == no_gpu_message("IF-I-L") and "this machine has none" in problems[0]
    assert "IF-I-L needs a CUDA GPU with ≥ 3.9 GiB" in problems[0]
    assert problems[1] == NO_TOKEN
    assert problems[2:] == [NO_NETWORK]  # the offline hub answers the probe: reported once, after the token
    with_token = check_if_requirements("IF-I-XL", source(token=TOKEN))  # the default device: the GPU IF needs
    assert with_token == [no_gpu_message("IF-I-XL"), NO_NETWORK]
    assert all(TOKEN not in p for p in with_token)


def test_load_if_from_the_hub_offline_says_so_without_the_token(offline_hub):
    from lib.backends.if_hub import IFUnavailable
    from lib.backends.if_loading import load_if

    with pytest.raises(IFUnavailable) as info:
        load_if("IF-I-M", source(token=TOKEN), "cpu")  # the real from_pretrained, which cannot reach the hub
    assert str(info.value) == NO_NETWORK and TOKEN not in str(info.value)


@pytest.mark.gpu
def test_fp16_cuda_prediction_matches_fp32_cpu(tiny):
    """The UNet is placed in fp16 on the GPU before it is wrapped, as the loader does; the sampling state stays
    float32 and ``predict`` casts to the UNet's dtype for the forward pass."""
    from lib.backends.deepfloyd import IFNoiseModel

    unet = tiny_if_noise_model(seed=0).unet.to("cuda", torch.float16)
    gpu = IFNoiseModel(unet, if_stage1_scheduler(), fake_t5_embeddings, name="tiny IF on CUDA")
    assert gpu.unet_dtype == torch.float16 and gpu.device.type == "cuda"
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    c = tiny.encode_prompt("a dog").expand(2, -1, -1)
    eps_cpu, v_cpu = tiny.predict(x, 500, c)
    eps_gpu, v_gpu = gpu.predict(x.cuda(), 500, c.cuda())
    assert eps_gpu.dtype == torch.float32  # the sampling state stays float32
    assert torch.allclose(eps_gpu.cpu(), eps_cpu, atol=2e-2, rtol=2e-2)
    assert torch.allclose(v_gpu.cpu(), v_cpu, atol=2e-2, rtol=2e-2)
    out = sample(gpu, gpu.encode_prompt("a dog"), scale=7.0, stride=100, num_samples=2,
                 generator=torch.Generator("cuda").manual_seed(0))
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()


def test_every_backend_words_its_hub_problems_alike(tmp_path):
    """lib.backends.hub is the one wording: the same sentence for each backend's missing snapshot and missing network,
    each naming its own repository, file, pinned revision and folder variable."""
    from lib.backends import if_hub
    from lib.backends.pixnerd import encoder, hub as pixnerd_hub
    from lib.backends.pixnerd.config import REVISION as PIXNERD_REVISION

    assert pixnerd_hub.snapshot_missing_message(tmp_path) == (
        f"DIFFUSION_LAB_PIXNERD_DIR is set, but {tmp_path}/MCG-NJU/PixNerd-XXL-P16-T2I/model.ckpt does not exist: "
        f"download it with `hf download MCG-NJU/PixNerd-XXL-P16-T2I model.ckpt --revision {PIXNERD_REVISION} "
        f"--local-dir {tmp_path}/MCG-NJU/PixNerd-XXL-P16-T2I`")
    assert encoder.snapshot_missing_message(tmp_path).endswith(
        f"Qwen/Qwen3-1.7B/config.json does not exist: download it with `hf download Qwen/Qwen3-1.7B --revision "
        f"{encoder.REVISION} --local-dir {tmp_path}/Qwen/Qwen3-1.7B`")
    assert if_hub.snapshot_missing_message(tmp_path, "DeepFloyd/IF-I-L-v1.0").startswith("DIFFUSION_LAB_IF_DIR is set")
    tails = {m.split(" and ", 1)[1].split(" not in the local cache")[0]: m.split(", or point ")[1]
             for m in (if_hub.NO_NETWORK, pixnerd_hub.NO_NETWORK, encoder.NO_NETWORK)}
    assert tails == {"the DeepFloyd IF weights are": "DIFFUSION_LAB_IF_DIR at a folder of pre-downloaded snapshots "
                                                     "(see the README)",
                     "PixNerd's checkpoint (MCG-NJU/PixNerd-XXL-P16-T2I, model.ckpt) is":
                         "DIFFUSION_LAB_PIXNERD_DIR at a folder of pre-downloaded snapshots (see the README)",
                     "the prompt encoder Qwen/Qwen3-1.7B is": "DIFFUSION_LAB_PIXNERD_DIR at a folder of "
                                                             "pre-downloaded snapshots (see the README)"}
