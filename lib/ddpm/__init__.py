"""The DDPM mathematics: the noise schedules, the forward process and the DDPM step, and the one sampling loop over any
``NoiseModel``."""
