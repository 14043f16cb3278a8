"""DeepFloyd IF as a Denoiser, on a toy-sized IF with random weights (no GPU, token or download needed), plus the hub
error handling with the hub mocked out."""

from __future__ import annotations

import hashlib

import httpx2
import pytest
import torch
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

from lib import deepfloyd
from lib.deepfloyd import (
    IF_VARIANTS, NO_GPU, NO_NETWORK, IFUnavailable, add_variance, check_if_requirements, load_if, pipeline_sample,
    tiny_if_denoiser, upscale,
)
from lib.diffusion import step_log_variance
from lib.prompt_cache import T5_REPO, PromptEmbeddingCache, t5_encode_fn
from lib.sampling import sample
from lib.schedules import strided_timesteps

TOKEN = "hf_TestTokenThatMustNeverLeak123"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    return tiny_if_denoiser(seed=0)


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
    """Our loop (lib.sampling.sample) vs diffusers' DDPMScheduler.step with custom timesteps, same UNet, same noise,
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
    from diffusers import DDPMScheduler, IFSuperResolutionPipeline, UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet2 = UNet2DConditionModel(
            sample_size=96, in_channels=6, out_channels=6, layers_per_block=1, block_out_channels=[16, 32],
            norm_num_groups=8, down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
            mid_block_type="UNetMidBlock2DSimpleCrossAttn",
            up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"], cross_attention_dim=32,
            encoder_hid_dim=4096, encoder_hid_dim_type="text_proj", attention_head_dim=8, addition_embed_type="text",
            addition_embed_type_num_heads=2, cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
            act_fn="gelu", class_embed_type="timestep", time_embedding_dim=32,
        ).eval()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", variance_type="learned_range",
                          thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.0)
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
        return deepfloyd.fake_t5_embeddings(prompts).half()


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


def offline_t5():
    """A tiny random T5 encoder and a file-free tokenizer (transformers builds a Unigram model from a vocab list)."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    words = "a an the of photo oil painting dog rocket ship".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0) for w in words] + [(c, -5.0) for c in sorted(set("".join(words)))]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, feed_forward_proj="relu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return tok, T5EncoderModel(cfg).eval()


def test_t5_encode_fn_embeds_like_the_if_pipeline_and_keeps_the_token_out_of_the_cache(tmp_path, monkeypatch):
    from diffusers import IFPipeline
    from transformers import AutoTokenizer, T5EncoderModel

    tok, t5 = offline_t5()
    seen = []

    def fake_tokenizer(repo, token=None, **kw):
        seen.append((repo, token, kw))
        return tok

    def fake_encoder(repo, token=None, **kw):
        seen.append((repo, token, kw))
        return t5

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", fake_tokenizer)
    monkeypatch.setattr(T5EncoderModel, "from_pretrained", fake_encoder)
    cache = PromptEmbeddingCache(tmp_path, t5_encode_fn(TOKEN, "cpu"))
    emb = cache.get_many(["A photo of a Dog ", "an oil painting"])
    assert emb.shape == (2, 77, 32)
    assert seen[0] == (T5_REPO, TOKEN, {"subfolder": "tokenizer"})
    assert seen[1][:2] == (T5_REPO, TOKEN) and seen[1][2]["subfolder"] == "text_encoder"
    pipe = IFPipeline(tokenizer=tok, text_encoder=t5, unet=None, scheduler=None, safety_checker=None,
                      feature_extractor=None, watermarker=None, requires_safety_checker=False)
    ref, _ = pipe.encode_prompt(["A photo of a Dog ", "an oil painting"], do_classifier_free_guidance=False,
                                device=torch.device("cpu"))
    assert torch.allclose(emb, ref, atol=1e-6)
    for path in tmp_path.iterdir():
        assert TOKEN not in path.name and TOKEN.encode() not in path.read_bytes()


# ---------------------------------------------------------------------------------------------------- hub access


@pytest.fixture
def no_gpu_no_token(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))


def test_requirements_without_gpu_and_token(no_gpu_no_token, monkeypatch):
    probed = []
    monkeypatch.setattr(deepfloyd, "_probe_hub", lambda repo, token: probed.append((repo, token)))
    problems = check_if_requirements(None)
    assert problems[0] == NO_GPU
    assert "this machine has none" in problems[0] and "MNIST" in problems[0]
    assert "set HF_TOKEN or add it to .streamlit/secrets.toml" in problems[1]
    assert len(problems) == 2
    assert probed == [(IF_VARIANTS["IF-I-XL"], None)]  # XL is also the text-encoder repo: probed once

    monkeypatch.setattr(deepfloyd, "_probe_hub", lambda repo, token: NO_NETWORK)
    assert check_if_requirements(None, variant="IF-I-L")[2:] == [NO_NETWORK]  # reported once, in third place


def test_requirements_with_a_token_from_the_environment_probe_the_license(no_gpu_no_token, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    used = []

    def gated(repo, token=None):
        used.append(token)
        raise GatedRepoError(f"Access to model {repo} is restricted. Token {TOKEN}", response=response(403))

    monkeypatch.setattr(huggingface_hub, "auth_check", gated)
    problems = check_if_requirements(None)
    assert used == [TOKEN]
    assert problems == [NO_GPU, deepfloyd.license_message("DeepFloyd/IF-I-XL-v1.0")]
    assert "accept the license at https://huggingface.co/DeepFloyd/IF-I-XL-v1.0" in problems[1]
    assert all(TOKEN not in p for p in problems)

    def offline(repo, token=None):
        raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub, "auth_check", offline)
    monkeypatch.setattr(deepfloyd, "_cached", lambda repo: False)
    assert check_if_requirements(TOKEN) == [NO_GPU, NO_NETWORK]
    monkeypatch.setattr(deepfloyd, "_cached", lambda repo: True)  # offline but downloaded before: fine
    assert check_if_requirements(TOKEN) == [NO_GPU]


def test_load_if_maps_hub_errors_and_never_shows_the_token(monkeypatch):
    from diffusers import DiffusionPipeline

    calls = []

    def raising(err):
        def from_pretrained(repo, **kw):
            calls.append((repo, kw))
            raise err
        return from_pretrained

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained",
                        raising(GatedRepoError(f"401 for {TOKEN}", response=response(401))))
    with pytest.raises(IFUnavailable) as info:
        load_if("IF-I-XL", token=TOKEN, device="cpu")
    assert "accept the license at https://huggingface.co/DeepFloyd/IF-I-XL-v1.0" in str(info.value)
    assert TOKEN not in str(info.value)
    repo, kw = calls[0]
    assert repo == "DeepFloyd/IF-I-XL-v1.0" and kw["token"] == TOKEN and kw["text_encoder"] is None
    assert kw["variant"] == "fp16" and kw["torch_dtype"] == torch.float16

    # diffusers wraps connection failures in OSError; the cause decides the message
    wrapped = OSError(f"We couldn't connect to 'https://huggingface.co' (token {TOKEN})")
    wrapped.__cause__ = LocalEntryNotFoundError("offline and not cached")
    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", raising(wrapped))
    with pytest.raises(IFUnavailable) as info:
        load_if("IF-I-M", token=TOKEN, device="cpu")
    assert str(info.value) == NO_NETWORK and calls[-1][0] == "DeepFloyd/IF-I-M-v1.0"

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", raising(OSError(f"disk full while saving {TOKEN}")))
    with pytest.raises(IFUnavailable) as info:
        load_if("IF-I-L", token=TOKEN, device="cpu")
    assert "disk full" in str(info.value) and TOKEN not in str(info.value)

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained",
                        raising(GatedRepoError("401 Client Error", response=response(401))))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(IFUnavailable, match="set HF_TOKEN or add it to .streamlit/secrets.toml"):
        load_if("IF-I-XL", device="cpu")  # anonymous: the missing token is the problem, not the license

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(IFUnavailable, match="needs a CUDA GPU"):
        load_if("IF-I-XL", token=TOKEN, device="cuda")


def test_load_if_builds_a_working_denoiser_from_the_hub_pipeline(tiny, tmp_path, monkeypatch):
    from diffusers import DiffusionPipeline
    from transformers import AutoTokenizer, T5EncoderModel

    tok, t5 = offline_t5()
    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", lambda repo, **kw: tiny.pipeline)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda repo, **kw: tok)
    monkeypatch.setattr(T5EncoderModel, "from_pretrained", lambda repo, **kw: t5)
    den = load_if("IF-I-XL", token=TOKEN, device="cpu", embeddings_dir=tmp_path)
    assert den.name == "DeepFloyd IF-I-XL" and den.image_shape == (3, 64, 64) and den.pipeline is tiny.pipeline
    c = den.encode_prompt("a photo of a dog")
    assert c.shape == (1, 77, 32) and den.null_condition().shape == (1, 77, 32)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2  # the prompt and "" — embedded in one T5 load


@pytest.mark.gpu
def test_fp16_cuda_prediction_matches_fp32_cpu(tiny):
    gpu = tiny_if_denoiser(seed=0)
    gpu.unet.to("cuda", torch.float16)
    gpu.device = gpu.unet.device
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    c = tiny.encode_prompt("a dog").expand(2, -1, -1)
    eps_cpu, v_cpu = tiny.predict(x, 500, c)
    eps_gpu, v_gpu = gpu.predict(x.cuda(), 500, c.cuda())
    assert eps_gpu.dtype == torch.float32  # the sampling state stays float32
    assert torch.allclose(eps_gpu.cpu(), eps_cpu, atol=2e-2, rtol=2e-2)
    out = sample(gpu, gpu.encode_prompt("a dog"), scale=7.0, stride=100, num_samples=2,
                 generator=torch.Generator("cuda").manual_seed(0))
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()
