"""What a sampling result cost: UNet calls, rows (images pushed through the UNet, summed over calls) and wall time.

The cost model a student should learn: a loop of K steps makes K calls; classifier-free guidance doubles the rows of
each call (conditional + unconditional half), two views double them again, RePaint resampling multiplies the calls.
``CountingNoiseModel`` wraps any ``NoiseModel`` and counts its ``predict`` calls; ``counts_cost`` makes a cached sampling
function return ``(result, Cost)``, so the cost is part of the cached value and a cache hit can still say what
computing it cost.
"""

from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    """``calls`` UNet calls on ``rows`` images in all, taking ``seconds`` of wall time."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.seconds / max(self.calls, 1)


class CountingNoiseModel:
    """A NoiseModel whose ``predict`` calls are counted (one call, ``x_t.shape[0]`` rows, its wall time); every other
    attribute passes through, so ``hasattr`` still tells backends apart."""

    def __init__(self, model):
        self._den = model
        self.cost = Cost()

    def __getattr__(self, name):
        return getattr(self._den, name)

    def _add(self, calls: int, rows: int, seconds: float) -> None:
        c = self.cost
        self.cost = Cost(c.calls + calls, c.rows + rows, c.seconds + seconds)

    def predict(self, x_t, t, cond):
        start = time.perf_counter()
        out = self._den.predict(x_t, t, cond)
        self._add(1, x_t.shape[0], time.perf_counter() - start)
        return out

    def stock_sample(self, prompt: str, *, steps: int, seed: int, scale: float, num_samples: int = 1):
        """The stock pipeline runs its UNet outside ``predict``: counted from its step count. diffusers' IFPipeline
        makes one UNet call per inference step, on [uncond | cond] rows when guidance_scale > 1 (else the cond rows alone);
        the time is the whole pipeline's (its prompt embeddings are cached, so mostly UNet time), spread over its
        steps."""
        start = time.perf_counter()
        out = self._den.stock_sample(prompt, steps=steps, seed=seed, scale=scale, num_samples=num_samples)
        self._add(steps, steps * num_samples * (2 if scale > 1 else 1), time.perf_counter() - start)
        return out


def counts_cost(func):
    """Decorator (under ``st.cache_data``): call ``func`` with its ``_den`` argument wrapped in a ``CountingNoiseModel``
    and return ``(func's result, Cost)``."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        den = CountingNoiseModel(bound.arguments["_den"])
        bound.arguments["_den"] = den
        return func(*bound.args, **bound.kwargs), den.cost

    return wrapper


class CountingVelocityModel:
    """A flow model (``lib.flow.VelocityModel``) whose ``velocity`` calls are added to ``counter``'s cost, so that one
    cost covers a piece of work that runs a DDPM and a flow model; every other attribute passes through."""

    def __init__(self, model, counter: CountingNoiseModel):
        self._model, self._counter = model, counter

    def __getattr__(self, name):
        return getattr(self._model, name)

    def velocity(self, x_t, t, cond):
        start = time.perf_counter()
        out = self._model.velocity(x_t, t, cond)
        self._counter._add(1, x_t.shape[0], time.perf_counter() - start)
        return out
