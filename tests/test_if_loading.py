"""The production IF loaders (lib.backends.if_loading) on real artifacts: tiny stand-ins of the hub repositories written with
``save_pretrained`` in the hubs' exact layout (every component, fp16 variant files, a sharded T5, a SentencePiece
tokenizer), loaded by path through the snapshot-folder setting. Nothing is replaced: the loaders call diffusers and
transformers as they do for users."""

from __future__ import annotations

import threading

import pytest
import torch
from safetensors.torch import load_file

from lib.backends.deepfloyd import pipeline_sample, upscale
from lib.backends.if_configs import IF_VARIANTS, STAGE2, T5_REPO
from lib.backends.if_hub import IFUnavailable, check_if_requirements, local_problems, snapshot_missing_message, source
from lib.backends.if_loading import T5Encoder, load_if, load_stage2
from tests.tiny_if import TINY_T5_DIM, write_tiny_snapshots

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    return write_tiny_snapshots(tmp_path_factory.mktemp("if-snapshots"))


@pytest.fixture(scope="module")
def stage1(snapshots, tmp_path_factory):
    return load_if("IF-I-XL", source(folder=snapshots), CPU, embeddings_dir=tmp_path_factory.mktemp("embeddings"))


def test_the_courses_loading_call_crashes_on_the_full_repo_layout(snapshots):
    """Why the loader loads parts: ``DiffusionPipeline.from_pretrained(repo, text_encoder=None, variant="fp16")`` also
    loads the safety checker, which the pinned transformers cannot load. If this starts passing, the pins moved."""
    from diffusers import DiffusionPipeline

    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        DiffusionPipeline.from_pretrained(snapshots / IF_VARIANTS["IF-I-XL"], text_encoder=None, variant="fp16",
                                          dtype=torch.float16)


def test_load_if_reads_the_fp16_unet_and_the_scheduler_of_the_snapshot(stage1, snapshots):
    repo = snapshots / IF_VARIANTS["IF-I-XL"]
    assert stage1.name == "DeepFloyd IF-I-XL" and stage1.image_shape == (3, 64, 64)
    saved = load_file(repo / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    state = stage1.unet.state_dict()
    assert saved.keys() == state.keys()
    assert all(saved[k].dtype == torch.float16 and torch.equal(saved[k].float(), state[k]) for k in saved)
    assert stage1.unet.dtype == torch.float32  # on the CPU; fp16 on a GPU
    config = stage1.scheduler.config
    assert (config.variance_type, config.beta_schedule, config.num_train_timesteps) == ("learned_range",
                                                                                       "squaredcos_cap_v2", 1000)
    pipe = stage1.pipeline
    assert pipe.unet is stage1.unet
    assert (pipe.safety_checker, pipe.feature_extractor, pipe.watermarker, pipe.text_encoder) == (None,) * 4


def test_t5_is_loaded_once_and_embeds_like_the_if_pipeline(stage1, snapshots):
    """Two batches of new prompts, one load; the embeddings are IFPipeline.encode_prompt's on the same weights."""
    from diffusers import IFPipeline
    from transformers import AutoTokenizer, T5EncoderModel

    cache = stage1.embed.__self__
    encoder = cache.encode_fn
    assert isinstance(encoder, T5Encoder) and encoder.device == CPU and encoder.dtype == torch.bfloat16
    first = stage1.encode_prompts(["A photo of a Dog ", "an oil painting"])
    second = stage1.encode_prompt("a rocket ship")
    assert encoder.loads == 1 and cache.misses == 4  # the two prompts, "" and the rocket ship
    assert first[0].shape == second.shape == (1, 77, TINY_T5_DIM)

    repo = snapshots / T5_REPO
    tokenizer = AutoTokenizer.from_pretrained(repo / "tokenizer")
    t5 = T5EncoderModel.from_pretrained(repo / "text_encoder", variant="fp16", dtype=torch.bfloat16)
    pipe = IFPipeline(tokenizer=tokenizer, text_encoder=t5, unet=None, scheduler=None, safety_checker=None,
                      feature_extractor=None, watermarker=None, requires_safety_checker=False)
    ref, _ = pipe.encode_prompt(["A photo of a Dog ", "an oil painting"], do_classifier_free_guidance=False,
                                device=CPU)
    assert torch.equal(torch.cat(first), ref)
    assert not torch.allclose(first[0].float(), first[1].float())


def test_t5_freed_after_each_batch_when_ram_is_short(snapshots):
    encoder = T5Encoder(source(folder=snapshots), CPU, keep=False)
    a = encoder(["a dog"])
    b = encoder(["a dog"])
    assert encoder.loads == 2 and encoder._parts is None and torch.equal(a, b)


def test_stage1_samples_and_stage2_upscales_from_the_snapshots(stage1, snapshots):
    image = pipeline_sample(stage1, "a photo of a dog", steps=2, generator=torch.Generator().manual_seed(0))
    assert image.shape == (1, 3, 64, 64) and image.abs().max() <= 1
    pipe = load_stage2("IF-I-XL", source(folder=snapshots), CPU)
    assert type(pipe).__name__ == "IFSuperResolutionPipeline" and pipe.safety_checker is None
    assert pipe.scheduler.config.sample_max_value == 1.0  # stage II's own scheduler, not stage I's
    big = upscale(pipe, image.expand(2, -1, -1, -1), stage1.encode_prompt("a photo of a dog"),
                  stage1.null_condition(), torch.Generator().manual_seed(0), steps=2)
    assert big.shape == (2, 3, 96, 96) and torch.isfinite(big).all() and big.abs().max() <= 1


def test_a_missing_snapshot_is_named_before_and_during_loading(snapshots, tmp_path):
    import shutil

    shutil.copytree(snapshots / IF_VARIANTS["IF-I-XL"], tmp_path / IF_VARIANTS["IF-I-XL"])
    src = source(folder=tmp_path)
    problem = snapshot_missing_message(tmp_path, IF_VARIANTS["IF-I-L"])
    assert local_problems("IF-I-L", src, CPU) == [problem]
    assert check_if_requirements("IF-I-L", src, CPU) == [problem]  # no hub probe for a snapshot folder
    assert check_if_requirements("IF-I-XL", src, CPU) == []
    assert "hf download DeepFloyd/IF-I-L-v1.0 --local-dir" in problem
    with pytest.raises(IFUnavailable, match="DeepFloyd/IF-I-L-v1.0/model_index.json does not exist"):
        load_if("IF-I-L", src, CPU, embeddings_dir=tmp_path / "emb")
    with pytest.raises(IFUnavailable, match=f"{STAGE2}/model_index.json does not exist"):
        load_stage2("IF-I-XL", src, CPU)


def test_the_folder_setting_comes_from_the_environment(snapshots, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_IF_DIR", str(snapshots))
    monkeypatch.setenv("HF_TOKEN", "hf_NotUsedWithAFolder123")
    src = source()
    assert src.folder == snapshots and src.token is None
    assert src.location(STAGE2) == str(snapshots / STAGE2)


@pytest.mark.slow
def test_two_sessions_running_the_stock_pipelines_at_once_get_their_lone_results(stage1, snapshots):
    """The stock pipelines are shared by every session of the process; each call steps its own scheduler, so two
    threads asking for different step counts at the same moment get exactly what each gets alone."""
    stage2 = load_stage2("IF-I-XL", source(folder=snapshots), CPU)
    cond, null = stage1.encode_prompt("a photo of a dog"), stage1.null_condition()
    low = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def stock(steps):
        return pipeline_sample(stage1, "a photo of a dog", steps=steps, generator=torch.Generator().manual_seed(0))

    def up(steps):
        return upscale(stage2, low, cond, null, torch.Generator().manual_seed(0), steps=steps)

    jobs = [(stock, 3), (stock, 7), (up, 2), (up, 5)]
    alone = [fn(n) for fn, n in jobs]
    together: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i):
        fn, n = jobs[i]
        start.wait()
        for _ in range(2):  # twice, so the calls overlap for sure
            together[i] = fn(n)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (fn, n), a, b in zip(jobs, alone, together):
        assert torch.equal(a, b), (fn.__name__, n)
    assert not torch.equal(alone[0], alone[1])  # different step counts really differ
