"""The flow edition's Part A model: PixNerd-XXL-P16-T2I, a pixel-space flow denoiser (512×512), conditioned on prompt
embeddings from Qwen3-1.7B (``lib.backends.pixnerd.encoder``)."""
