"""Diffusion Lab's computation: schedules, sampling loops, edits, UNets, training, data, caching, plots.

Nothing in here imports streamlit, so every function can be tested and scripted on its own.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the repository: data/ (models, cache, MNIST) lives under it
