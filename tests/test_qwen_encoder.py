"""The flow edition's prompt encoder (lib.backends.pixnerd.encoder) on real artifacts: a tiny Qwen3 with random weights and a
tiny Qwen2 BPE tokenizer, saved in the hub repository's exact layout (tests/tiny_qwen.py) and loaded by the production
loader, then compared with the model called directly here. Nothing touches the network."""

from __future__ import annotations

import hashlib
import shutil
import threading

import pytest
import torch

from lib.backends import prompt_cache
from lib.backends.pixnerd.encoder import (
    MAX_TOKENS, NO_NETWORK, REPO, REVISION, QwenEncoder, QwenUnavailable, cache_identity, qwen_prompt_cache,
    qwen_source, snapshot_missing_message,
)
from tests.tiny_qwen import TINY, tiny_qwen3, write_tiny_qwen_snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")
TOKEN = "hf_SecretTokenNeverShown123"
HIDDEN = TINY["hidden_size"]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    return write_tiny_qwen_snapshot(tmp_path_factory.mktemp("pixnerd-snapshots"))


@pytest.fixture(scope="module")
def encoder(snapshots):
    return QwenEncoder(qwen_source(folder=snapshots), CPU)


@pytest.fixture(scope="module")
def tokenizer(snapshots):
    """The snapshot's tokenizer, loaded here on its own: the reference for the encoder's token ids."""
    from transformers import Qwen2Tokenizer

    return Qwen2Tokenizer.from_pretrained(snapshots / REPO)


def direct_model(attn_implementation: str = "eager"):
    """The snapshot's base model built here from the same seed (not loaded through lib.backends.pixnerd), in fp32."""
    from transformers import Qwen3Model

    weights = tiny_qwen3(0).model
    model = Qwen3Model._from_config(weights.config, attn_implementation=attn_implementation)
    model.load_state_dict({k: v.float() for k, v in weights.state_dict().items()})
    return model.eval()


def direct(ids: list[list[int]], mask: list[list[int]] | None = None, attn_implementation: str = "eager"):
    """``Qwen3Model(input_ids, attention_mask).last_hidden_state``, the course's call."""
    with torch.no_grad():
        mask = torch.tensor(mask) if mask is not None else None
        return direct_model(attn_implementation)(input_ids=torch.tensor(ids), attention_mask=mask).last_hidden_state


def padded(tokenizer, prompt: str) -> tuple[list[int], list[int], int]:
    """``prompt``'s ids right-padded with <|endoftext|> to 128, its mask, and its number of tokens."""
    ids = tokenizer(prompt).input_ids
    pads = MAX_TOKENS - len(ids)
    return ids + [tokenizer.pad_token_id] * pads, [1] * len(ids) + [0] * pads, len(ids)


@pytest.fixture
def forward_calls(encoder):
    """How many times the loaded model ran (a forward hook on the real model, nothing replaced)."""
    encoder.encode(["a"])  # loaded (once per module)
    calls = []
    handle = encoder._parts[1].register_forward_hook(lambda *_: calls.append(1))
    yield calls
    handle.remove()


# ---------------------------------------------------------------------------------------------------- loading


def test_the_snapshot_loads_as_the_course_loads_it(encoder, snapshots):
    """Qwen2's byte-level BPE tokenizer padding right with <|endoftext|>, and the base Qwen3Model (no LM head) in
    fp32 holding the checkpoint's bf16 weights (saved by a Qwen3ForCausalLM: keys under ``model.``)."""
    from safetensors.torch import load_file

    encoder.encode(["a"])
    tokenizer, model = encoder._parts
    assert type(tokenizer).__name__ == "Qwen2Tokenizer" and type(tokenizer.backend_tokenizer.model).__name__ == "BPE"
    assert (tokenizer.pad_token, tokenizer.padding_side, tokenizer.truncation_side) == ("<|endoftext|>", "right",
                                                                                        "right")
    assert type(model).__name__ == "Qwen3Model" and model.config._attn_implementation == "eager"
    assert encoder.dtype == model.dtype == torch.float32 and model.device == CPU and encoder.loads == 1
    saved = {}
    for shard in sorted((snapshots / REPO).glob("model-*-of-00002.safetensors")):
        saved.update(load_file(shard))
    state = model.state_dict()
    assert saved.keys() == {f"model.{k}" for k in state}
    assert all(saved[f"model.{k}"].dtype == torch.bfloat16 and torch.equal(saved[f"model.{k}"].float(), v)
               for k, v in state.items())


def test_real_size_qwen3_1_7b_without_lm_head_is_1_72_billion_parameters():
    """The figure the README gives, counted on the meta device from the real configuration."""
    from transformers import Qwen3Model

    from lib.backends.pixnerd.qwen_config import qwen3_1_7b_config

    with torch.device("meta"):
        model = Qwen3Model(qwen3_1_7b_config())
    count = sum(p.numel() for p in model.parameters())
    assert count == 1_720_574_976
    assert round(count * 4 / 2**30, 2) == 6.41 and round(count * 2 / 2**30, 2) == 3.20


def test_bf16_is_allowed_fp16_is_not(snapshots):
    with pytest.raises(ValueError, match="float32 .* or bfloat16"):
        QwenEncoder(qwen_source(folder=snapshots), CPU, torch.float16)
    bf16 = QwenEncoder(qwen_source(folder=snapshots), CPU, torch.bfloat16).encode(["a high quality photo"])
    fp32 = QwenEncoder(qwen_source(folder=snapshots), CPU).encode(["a high quality photo"])
    assert bf16.dtype == torch.bfloat16 and fp32.dtype == torch.float32
    assert torch.allclose(bf16.float(), fp32, atol=0.1) and not torch.equal(bf16.float(), fp32)


# ---------------------------------------------------------------------------------------------------- embeddings


def test_embeddings_are_the_course_call_on_right_padded_ids(encoder, tokenizer):
    prompts = ["a high quality photo", "an oil painting of an old man"]
    out = encoder.encode(prompts)
    assert out.shape == (2, MAX_TOKENS, HIDDEN) and out.dtype == torch.float32
    rows = [padded(tokenizer, p) for p in prompts]
    expected = direct([ids for ids, _, _ in rows], [mask for _, mask, _ in rows])
    assert torch.allclose(out, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(out[0], out[1], atol=0.1)


def test_right_padding_and_the_mask(encoder, tokenizer):
    """The prompt's tokens come first, at positions 0…n−1: its rows are the model's output for the tokens alone,
    batched or not. The padding rows see the prompt only: without the mask they would see the pads before them."""
    short, long = "a photo", "a lithograph of a snowy mountain village"
    ids, mask, n = padded(tokenizer, short)
    assert 0 < n < len(tokenizer(long).input_ids)
    alone = encoder.encode([short])[0]
    batched = encoder.encode([short, long])[0]
    assert torch.allclose(alone[:n], batched[:n], atol=1e-6, rtol=0)
    assert torch.allclose(alone[:n], direct([ids[:n]])[0], atol=1e-5, rtol=0)
    assert torch.allclose(alone, direct([ids], [mask])[0], atol=1e-6, rtol=0)
    unmasked = direct([ids])[0]
    assert torch.allclose(alone[:n], unmasked[:n], atol=1e-6, rtol=0)
    assert not torch.allclose(alone[n:], unmasked[n:], atol=1e-3)


def test_prompts_are_truncated_to_128_tokens(encoder, tokenizer):
    words = "a photo of an old man around a snowy mountain village".split()
    prompt = " ".join(words[i % len(words)] for i in range(300))
    head = " ".join(prompt.split()[:MAX_TOKENS])
    ids = tokenizer(prompt).input_ids
    assert len(ids) == 300 and tokenizer(head).input_ids == ids[:MAX_TOKENS]  # one token per word here
    long, first = encoder.encode([prompt, head])
    assert long.shape == (MAX_TOKENS, HIDDEN) and torch.equal(long, first)
    assert torch.allclose(long, direct([ids[:MAX_TOKENS]])[0], atol=1e-5, rtol=0)


def test_the_empty_prompt_is_128_pads_embedded_as_the_course_embeds_them(encoder, tokenizer):
    """"" has no tokens: 128 pads, all masked. Every row then equals a lone <|endoftext|>'s embedding (what the
    course's transformers 4.51 computes, and eager attention here). SDPA in the pinned transformers returns zeros for
    queries that may attend to nothing, which changes the unconditional condition of every CFG sample: if this test
    starts failing there, the two agree again and the eager choice can be revisited."""
    ids, mask, n = padded(tokenizer, "")
    assert n == 0 and set(ids) == {tokenizer.pad_token_id} and set(mask) == {0}
    null = encoder.encode([""])[0]
    assert null.shape == (MAX_TOKENS, HIDDEN) and torch.isfinite(null).all()
    lone_pad = direct([[tokenizer.pad_token_id]])[0, 0]
    assert torch.allclose(null, lone_pad.expand(MAX_TOKENS, -1), atol=1e-5, rtol=0)
    assert torch.allclose(null, direct([ids], [mask])[0], atol=1e-6, rtol=0)
    sdpa = direct([ids], [mask], attn_implementation="sdpa")[0]
    assert not torch.allclose(sdpa, null, atol=1e-2)
    prompt_ids, prompt_mask, _ = padded(tokenizer, "a high quality photo")  # where a row is never empty, both agree
    assert torch.allclose(direct([prompt_ids], [prompt_mask], "sdpa"), direct([prompt_ids], [prompt_mask]),
                          atol=1e-5, rtol=0)


def test_sessions_asking_at_once_share_one_load(snapshots):
    fresh = QwenEncoder(qwen_source(folder=snapshots), CPU)
    prompts = [["a photo"], ["an old man", ""], ["a horse"], ["a rocket on a launch pad"]]
    results: list = [None] * len(prompts)
    start = threading.Barrier(len(prompts))

    def run(i):
        start.wait()
        results[i] = fresh.encode(prompts[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fresh.loads == 1
    for batch, result in zip(prompts, results):
        assert torch.allclose(result, fresh.encode(batch), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------- disk cache


def test_each_prompt_is_encoded_once_and_kept_on_disk(encoder, forward_calls, tmp_path):
    cache = qwen_prompt_cache(encoder, tmp_path)
    identity = f"Qwen/Qwen3-1.7B@{REVISION} max_tokens=128 dtype=float32"
    assert cache_identity(torch.float32) == identity
    first = cache.get("a lithograph of a skull")
    assert first.shape == (1, MAX_TOKENS, HIDDEN) and first.dtype == torch.float32 and len(forward_calls) == 1
    assert torch.equal(first, encoder.encode(["a lithograph of a skull"]))
    name = hashlib.sha256(f"{identity}\na lithograph of a skull".encode()).hexdigest() + ".safetensors"
    assert [p.name for p in tmp_path.glob("*.safetensors")] == [name]
    forward_calls.clear()

    again = qwen_prompt_cache(encoder, tmp_path)  # a new process: served from disk, the model does not run
    assert torch.equal(again.get("a lithograph of a skull"), first) and forward_calls == []
    both = again.get_many(["", "a lithograph of a skull", "a horse", ""])  # the two new prompts: one batch
    assert both.shape == (4, MAX_TOKENS, HIDDEN) and len(forward_calls) == 1
    assert torch.equal(both[1:2], first) and torch.equal(both[0], both[3])

    path = tmp_path / name
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # a flipped bit in the tensor bytes: the digest no longer matches
    path.write_bytes(bytes(data))
    fresh = qwen_prompt_cache(encoder, tmp_path)
    assert torch.equal(fresh.get("a lithograph of a skull"), first) and len(forward_calls) == 2
    assert fresh.misses == 1 and (path.read_bytes() != bytes(data))


def test_the_cache_key_holds_the_settings_and_the_default_folder_is_its_own(encoder, snapshots, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(prompt_cache, "EMBEDDINGS_DIR", tmp_path / "embeddings")
    fp32 = qwen_prompt_cache(encoder)
    bf16 = qwen_prompt_cache(QwenEncoder(qwen_source(folder=snapshots), CPU, torch.bfloat16))
    assert fp32.folder == bf16.folder == tmp_path / "embeddings" / "qwen3-1.7b"
    assert fp32.path("a photo") != bf16.path("a photo")
    assert bf16.get("a photo").dtype == torch.bfloat16 and fp32.get("a photo").dtype == torch.float32
    assert len(list(fp32.folder.glob("*.safetensors"))) == 2
    assert all(s in cache_identity(torch.bfloat16) for s in (REPO, REVISION, "max_tokens=128", "dtype=bfloat16"))


# ---------------------------------------------------------------------------------------------------- sources


def test_a_missing_snapshot_says_how_to_download_it(tmp_path):
    (tmp_path / "MCG-NJU" / "PixNerd-XXL-P16-T2I").mkdir(parents=True)  # the denoiser's folder alone
    with pytest.raises(QwenUnavailable) as info:
        QwenEncoder(qwen_source(folder=tmp_path), CPU).encode(["a photo"])
    assert str(info.value) == snapshot_missing_message(tmp_path)
    assert (f"hf download Qwen/Qwen3-1.7B --revision {REVISION} --local-dir {tmp_path / REPO}"
            in str(info.value))


def test_the_source_comes_from_the_environment(snapshots, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("DIFFUSION_LAB_PIXNERD_DIR", raising=False)
    assert (qwen_source().token, qwen_source().folder) == (TOKEN, None)
    monkeypatch.setenv("DIFFUSION_LAB_PIXNERD_DIR", str(snapshots))
    assert (qwen_source().token, qwen_source().folder) == (None, snapshots)  # a folder needs no token


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """The real hub client with HF_HUB_OFFLINE=1 and an empty hub cache (huggingface_hub reads both at import, so
    its constants are set too): what a machine without network meets, answered at once."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("DIFFUSION_LAB_PIXNERD_DIR", raising=False)
    return tmp_path / "hub"


def test_offline_without_the_weights_says_so_and_never_shows_the_token(offline_hub):
    with pytest.raises(QwenUnavailable) as info:
        QwenEncoder(qwen_source(token=TOKEN), CPU).encode(["a photo"])
    assert str(info.value) == NO_NETWORK and TOKEN not in str(info.value)
    assert "DIFFUSION_LAB_PIXNERD_DIR" in NO_NETWORK


def test_offline_the_hub_cache_serves_the_pinned_revision_only(offline_hub, snapshots, encoder):
    """The hub's cache holds snapshots by commit: the pinned one is used offline; another revision is not."""
    repo_cache = offline_hub / "models--Qwen--Qwen3-1.7B" / "snapshots"
    shutil.copytree(snapshots / REPO, repo_cache / ("0" * 40))
    with pytest.raises(QwenUnavailable, match="unreachable"):
        QwenEncoder(qwen_source(), CPU).encode(["a photo"])
    (repo_cache / ("0" * 40)).rename(repo_cache / REVISION)
    hub = QwenEncoder(qwen_source(), CPU)
    assert torch.equal(hub.encode(["a photo", ""]), encoder.encode(["a photo", ""])) and hub.loads == 1


@pytest.mark.gpu
def test_on_the_gpu_the_embeddings_match_the_cpu(snapshots, encoder):
    prompts = ["a high quality photo", "", "an oil painting of an old man"]
    gpu = QwenEncoder(qwen_source(folder=snapshots), "cuda")
    out = gpu.encode(prompts)
    assert gpu._parts[1].device.type == "cuda" and out.device == CPU and out.dtype == torch.float32
    assert torch.allclose(out, encoder.encode(prompts), atol=1e-4, rtol=0)
    bf16 = QwenEncoder(qwen_source(folder=snapshots), "cuda", torch.bfloat16).encode(prompts)
    assert torch.isfinite(bf16).all() and torch.allclose(bf16.float(), out, atol=0.1)
