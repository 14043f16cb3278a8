"""DeepFloyd IF at toy size, with random weights, for tests and CPU benchmarks: the real diffusers/transformers classes,
no GPU, no token, no download.

* ``tiny_if_denoiser`` — IF-I's block layout shrunk to a few layers (only the 4096-wide text input is real size, so
  ``fake_t5_embeddings`` fit), wrapped as the loader wraps the real one.
* ``write_tiny_snapshots`` — tiny stand-ins of the hub repositories ``DeepFloyd/IF-I-XL-v1.0`` (+ L, M) and
  ``DeepFloyd/IF-II-L-v1.0`` in their exact on-disk layout: model_index.json naming every component the hub repos
  have (tokenizer, text_encoder, safety_checker, feature_extractor, watermarker, unet, scheduler), all saved with
  ``save_pretrained(variant="fp16")`` (the T5 encoder sharded, with its fp16 index), the tokenizer as a SentencePiece
  ``spiece.model`` + ``tokenizer_config.json``. The production loaders (lib.backends.if_loading) load them by path.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from lib.backends.deepfloyd import IFNoiseModel, stock_pipeline
from lib.backends.if_configs import IF_VARIANTS, STAGE2, T5_DIM, if_stage1_scheduler
from lib.backends.prompt_cache import MAX_TOKENS

TINY_T5_DIM = 32
WORDS = ("a an the of photo oil painting snowy mountain village man wearing hat rocket ship dog high quality "
         "lithograph skull campfire people old").split()


def fake_t5_embeddings(prompts: list[str]) -> torch.Tensor:
    """A deterministic stand-in for T5: each prompt's (77, 4096) rows drawn from a generator seeded by its SHA-256."""
    rows = []
    for p in prompts:
        g = torch.Generator().manual_seed(int(hashlib.sha256(p.encode()).hexdigest()[:15], 16))
        rows.append(torch.randn(MAX_TOKENS, T5_DIM, generator=g))
    return torch.stack(rows)


def tiny_unet(encoder_hid_dim: int = T5_DIM, *, stage2: bool = False, sample_size: int = 64):
    """IF's UNet block layout (ResNet down/up blocks, SimpleCrossAttn blocks, text projection + attention pooling,
    scale-shift GELU resnets, 3 in / 6 out; stage II: 6 in, the noise level as a class embedding) at toy width."""
    from diffusers import UNet2DConditionModel

    extra = dict(class_embed_type="timestep", time_embedding_dim=32) if stage2 else {}
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=6 if stage2 else 3, out_channels=6, layers_per_block=1,
        block_out_channels=[16, 32], norm_num_groups=8,
        down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
        cross_attention_dim=32, encoder_hid_dim=encoder_hid_dim, encoder_hid_dim_type="text_proj",
        attention_head_dim=8, addition_embed_type="text", addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu", **extra,
    ).eval()


def tiny_if_noise_model(seed: int = 0) -> IFNoiseModel:
    """A random tiny stage I with the fake (1, 77, 4096) embeddings and the stock pipeline, on the CPU."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = tiny_unet()
    return IFNoiseModel(unet, if_stage1_scheduler(), fake_t5_embeddings, name="tiny random IF (tests)",
                      pipeline=stock_pipeline(unet, if_stage1_scheduler()))


def tiny_tokenizer_files(folder: Path) -> None:
    """T5's tokenizer as the hub ships it: a SentencePiece unigram model (trained here, offline, on a few words) with
    T5's ids (0 <pad>, 1 </s>, 2 <unk>) and 100 extra ids."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([" ".join(WORDS)] * 50 + WORDS), model_writer=model, vocab_size=60, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model.getvalue())
    extra = [f"<extra_id_{i}>" for i in range(100)]
    special = {"additional_special_tokens": extra, "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {**special, "extra_ids": 100, "model_max_length": 512, "tokenizer_class": "T5Tokenizer"}))


def tiny_safety_parts():
    """IF's safety checker (a CLIP vision model with two heads) and its feature extractor, at toy size."""
    from diffusers.pipelines.deepfloyd_if.safety_checker import IFSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(text_config=dict(small, vocab_size=100),
                        vision_config=dict(small, image_size=32, patch_size=8), projection_dim=8)
    return IFSafetyChecker(config), CLIPImageProcessor(crop_size=32, size=32)


def write_tiny_snapshots(root: Path, seed: int = 0) -> Path:
    """Tiny IF-I-XL, IF-I-L, IF-I-M and IF-II-L repositories under ``root/DeepFloyd/…`` (what ``hf download
    --local-dir`` writes), every component present, fp16 variant files. Returns ``root``."""
    from diffusers import DDPMScheduler, IFPipeline, IFSuperResolutionPipeline
    from diffusers.pipelines.deepfloyd_if.watermark import IFWatermarker
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer_dir = root / "_tokenizer"
        tiny_tokenizer_files(tokenizer_dir)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=TINY_T5_DIM, d_kv=8, d_ff=37, num_layers=2,
                                     num_heads=4, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu"))
        safety_checker, feature_extractor = tiny_safety_parts()
        common = dict(tokenizer=tokenizer, text_encoder=t5, safety_checker=safety_checker,
                      feature_extractor=feature_extractor, watermarker=IFWatermarker(), requires_safety_checker=True)
        for variant, repo in IF_VARIANTS.items():
            pipe = IFPipeline(unet=tiny_unet(TINY_T5_DIM), scheduler=if_stage1_scheduler(), **common)
            _save(pipe, root / repo, tokenizer_dir)
        stage2 = IFSuperResolutionPipeline(
            unet=tiny_unet(TINY_T5_DIM, stage2=True, sample_size=96),
            scheduler=DDPMScheduler.from_config(if_stage1_scheduler().config, sample_max_value=1.0),
            image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"), **common)
        _save(stage2, root / STAGE2, tokenizer_dir)
    return root


def _save(pipe, folder: Path, tokenizer_dir: Path) -> None:
    """``save_pretrained`` in fp16 with the fp16 file names, the T5 encoder sharded as on the hub, and the tokenizer
    replaced by the hub's SentencePiece files."""
    import shutil

    pipe.to(torch.float16)
    pipe.save_pretrained(folder, variant="fp16")
    shutil.rmtree(folder / "text_encoder")
    pipe.text_encoder.save_pretrained(folder / "text_encoder", variant="fp16", max_shard_size="40KB")
    shutil.rmtree(folder / "tokenizer")
    shutil.copytree(tokenizer_dir, folder / "tokenizer")
