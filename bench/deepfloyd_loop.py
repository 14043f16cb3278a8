"""DeepFloyd IF stage I: the overhead of the project's sampling loop over the UNet itself, and vs diffusers' IFPipeline.

The UNet is built with random weights from the real IF-I-XL configuration (4.30 B parameters; IF-I-L with
``--config l``) in fp16 on CUDA — the time per step does not depend on the weights, so no hub download is needed.
Prompt embeddings are tests.tiny_if's deterministic (77, 4096) stand-ins for T5.

Per step of the course's strided chain (stride 30 from 990: 990, 960, …, 30 → 0; 33 steps) with CFG γ = 7, batch 1:
  project   ``lib.ddpm.sampling.sample`` on an ``lib.backends.deepfloyd.IFNoiseModel`` (what the part-A pages run): each step one
            batched UNet call on [x | x] with [cond | ∅], the CFG mix, the learned-range DDPM step in fp32
  forward   the bare UNet forward on the same batch-2 input at the same timesteps, back to back (the lower bound)
  pipeline  diffusers' ``IFPipeline(prompt_embeds=…, negative_prompt_embeds=…, timesteps=[990 … 0])`` on the same
            UNet (34 UNet calls: it also evaluates t = 0), per UNet call
Target: project overhead over the bare forward ≤ 5 %. Peak memory: ``torch.cuda.max_memory_allocated`` per phase.

Real sizes need a CUDA GPU (≈ 8.6 GB of fp16 weights); without one the script says so and exits. ``--config tiny`` runs
the same measurement on tests.tiny_if's toy-sized IF (fp32 on the CPU, or fp16 with --device cuda), to show the
measurement works; its figure is a CPU tiny-model figure, not a statement about IF-I-XL on a GPU (on the CPU even the
tiny UNet dominates: its 4096-wide text projection and pooling are real size).

Run:  python bench/deepfloyd_loop.py --device cuda [--config xl|l] [--quick]
      python bench/deepfloyd_loop.py --config tiny [--quick]          (CPU)
"""

from __future__ import annotations

import sys

from common import built, median, parser, report, setup, sync, timed

import torch  # noqa: E402

from lib.backends.deepfloyd import IFNoiseModel, stock_pipeline  # noqa: E402
from lib.backends.if_configs import STAGE1_CONFIGS, if_stage1_scheduler  # noqa: E402
from lib.ddpm.sampling import sample  # noqa: E402
from tests.tiny_if import fake_t5_embeddings, tiny_if_noise_model  # noqa: E402

OVERHEAD_TARGET = 0.05
STRIDE, SCALE = 30, 7.0


def real_size_denoiser(variant: str, name: str, device: torch.device) -> IFNoiseModel:
    """The IF-I UNet at real size with random weights, fp16 on ``device``, wrapped like ``lib.backends.if_loading.load_if``."""
    from diffusers import UNet2DConditionModel

    unet = built(lambda: UNet2DConditionModel(**STAGE1_CONFIGS[variant]), torch.float16, device)
    return IFNoiseModel(unet, if_stage1_scheduler(), fake_t5_embeddings, name=name,
                      pipeline=stock_pipeline(unet, if_stage1_scheduler()))


def peak_gib(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda" else "n/a (CPU)"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(device="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--config", choices=["xl", "l", "tiny"], default="xl", help="IF-I-XL, IF-I-L or the toy-sized IF")
    p.add_argument("--repeats", type=int, default=None, help="timed runs of each (median; default 3, 1 with --quick)")
    args = p.parse_args()
    if args.config != "tiny" and (args.device == "cpu" or not torch.cuda.is_available()):
        print(f"deepfloyd_loop: the real-size IF-I-{args.config.upper()} UNet needs a CUDA GPU (≈ 8.6 GB of fp16 weights "
              "for XL) and none is available here. Run with --device cuda on a GPU machine, or with --config tiny for "
              "the toy-sized model on the CPU.")
        sys.exit(0)
    device = setup(args)
    repeats = args.repeats or (1 if args.quick else 3)

    if args.config == "tiny":
        den = tiny_if_noise_model()
        if device.type == "cuda":  # placed before it is wrapped, as the loader does: predict reads the UNet's dtype
            den = IFNoiseModel(den.unet.to(device, torch.float16), if_stage1_scheduler(), fake_t5_embeddings,
                             name=den.name, pipeline=den.pipeline)
        label = "tiny random IF (tests.tiny_if.tiny_if_denoiser)"
    else:
        variant = f"IF-I-{args.config.upper()}"
        den = real_size_denoiser(variant, f"random-weight {variant}", device)
        label = f"IF-I-{args.config.upper()} config, random weights"
    n_params = sum(q.numel() for q in den.unet.parameters())
    print(f"model: {label}: {n_params / 1e9:.3f} B parameters, {den.unet.dtype}, on {device}")

    cond = den.encode_prompt("an oil painting of a snowy mountain village")
    uncond = den.null_condition()
    ts = den.timesteps(STRIDE)
    steps = len(ts) - 1
    print(f"chain: stride {STRIDE}: {ts[0]}, {ts[1]}, …, {ts[-2]} → {ts[-1]} ({steps} steps), CFG γ = {SCALE:g}, batch 1\n")

    def project():
        gen = torch.Generator(device=device).manual_seed(0)
        return sample(den, cond, scale=SCALE, stride=STRIDE, num_samples=1, generator=gen)

    x2 = torch.randn(2, *den.image_shape, device=device, dtype=den.unet.dtype)
    emb2 = torch.cat([cond, uncond]).to(device, den.unet.dtype)

    def forward_only():
        with torch.no_grad():
            for t in ts[:-1]:
                den.unet(x2, t, encoder_hidden_states=emb2, return_dict=False)

    def pipeline():
        gen = torch.Generator(device=device).manual_seed(0)
        return den.pipeline(prompt_embeds=cond.to(den.unet.dtype), negative_prompt_embeds=uncond.to(den.unet.dtype),
                            timesteps=ts, guidance_scale=SCALE, generator=gen, output_type="pt").images

    phases = {"forward": (forward_only, steps), "project": (project, steps), "pipeline": (pipeline, len(ts))}
    secs: dict[str, list[float]] = {name: [] for name in phases}
    peaks: dict[str, str] = {}
    for name, (fn, _) in phases.items():  # warm-up (kernel selection, allocator), and each phase's peak memory
        sync(device)
        reset_peak(device)
        fn()
        sync(device)
        peaks[name] = peak_gib(device)
    for _ in range(repeats):  # interleaved, so a slow patch of the machine hits every phase alike
        for name, (fn, _) in phases.items():
            secs[name] += timed(fn, device, 1)
    results = {}
    for name, (_, calls) in phases.items():
        results[name] = median(secs[name]) / calls
        print(f"  {name:8s}: {results[name] * 1000:8.2f} ms per UNet call ({calls} calls/run, runs "
              f"{', '.join(f'{s:.2f}' for s in secs[name])} s), peak memory {peaks[name]}", flush=True)
    overhead = results["project"] / results["forward"] - 1
    print()
    where = "CPU tiny-model figure" if args.config == "tiny" else f"IF-I-{args.config.upper()}"
    report(f"IF stage-1 loop vs bare UNet forward [{where}]", "ms/step", results["project"] * 1000,
           results["forward"] * 1000, higher_is_better=False,
           target=f"overhead ≤ {OVERHEAD_TARGET:.0%}", met=overhead <= OVERHEAD_TARGET)
    print(f"  loop overhead over the bare forward: {overhead:+.1%}")
    report(f"IF stage-1 loop vs diffusers IFPipeline [{where}]", "ms/step", results["project"] * 1000,
           results["pipeline"] * 1000, higher_is_better=False)


if __name__ == "__main__":
    main()
