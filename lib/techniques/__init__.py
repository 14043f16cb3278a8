"""The techniques of part A, each a predictor or a hook over the one sampling loop: SDEdit, inpainting (RePaint), visual
anagrams and their views, factorized diffusion and its filters."""
