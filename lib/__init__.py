"""Diffusion Lab's computation: schedules, sampling loops, edits, UNets, training, data, caching, plots.

Nothing in here imports streamlit, so every function can be tested and scripted on its own.
"""
