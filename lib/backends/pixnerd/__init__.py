"""PixNerd-XXL-P16-T2I, the flow edition's part-A model: a pixel-space flow transformer with a per-patch neural-field
decoder, 512×512 RGB, conditioned on Qwen3-1.7B prompt embeddings (1, 128, 2048). Not in diffusers: the project's
own module.

* ``config``      the configurations (tiny, released XXL) and the hub file the course loads;
* ``model``       the denoiser, written from ../shared/golden/pixnerd/ARCHITECTURE.md;
* ``checkpoint``  the released Lightning ``model.ckpt`` read safely: EMA tensors only, memory-mapped, no code run;
* ``hub``         where ``model.ckpt`` comes from (the hub, or ``DIFFUSION_LAB_PIXNERD_DIR``) and ``load_pixnerd``;
* ``velocity``    ``PixNerdVelocity``: the flow edition's velocity-model interface (fp32, autocast off, prompts
                  encoded by an injected Qwen3 encoder);
* ``memory``      the memory plan (weights counted on the meta device, one CFG step's work, the cards that fit);
* ``qwen_config`` Qwen3-1.7B's real configuration, for the memory plan and real-size builds;
* ``encoder``     the Qwen3-1.7B prompt encoder (hub or snapshot folder) and its on-disk embedding cache.
"""
