"""Process-wide cached resources, shared by every session and page of the app."""

from __future__ import annotations

import atexit

import streamlit as st
import torch

from lib.train import model_store
from lib.train.cache import config_key
from lib.train.centroids import mean_image
from lib.train.data import Digits, load_mnist
from lib.backends.mnist_model import MnistDDPM
from lib.flow.mnist import MnistFlow
from lib.train.precision import default_device
from lib.train.digit_classifier import Quality, cached_digit_classifier, real_digits_quality
from lib.train.runs import TrainingJobs
from lib.train.training import TrainedRun


@st.cache_resource(show_spinner="Loading MNIST…")
def mnist() -> tuple[Digits, Digits]:
    """(train, test) digits: MNIST via torchvision, or the announced offline fallback."""
    return load_mnist(True), load_mnist(False)


@st.cache_resource(show_spinner="Averaging the training digits…")
def mean_training_image() -> torch.Tensor:
    """The mean of all training digits, x̄ (``lib.train.centroids.mean_image``): (1, 28, 28) in [0, 1]."""
    return mean_image(mnist()[0].as_float())


@st.cache_resource
def training_jobs() -> TrainingJobs:
    """The one registry of background training runs (same configuration ⇒ same run, across sessions). When the server
    shuts down, running jobs save their state so that they continue after a restart."""
    jobs = TrainingJobs(mnist)
    atexit.register(jobs.stop_all)
    return jobs


@st.cache_resource(show_spinner="Loading the trained model…")
def trained(config) -> TrainedRun | None:
    """A finished run for ``config`` (shipped or cached), loaded once per process; None if it was never trained."""
    return model_store.lookup(config, device=default_device())


@st.cache_resource(show_spinner="Loading the shipped model…")
def shipped(model_kind: str) -> TrainedRun | None:
    config = model_store.shipped_config(model_kind)
    return None if config is None else model_store.lookup(config, device=default_device())


def mnist_ddpm(model_kind: str = "class") -> MnistDDPM | None:
    """The shipped DDPM of ``model_kind`` as a ``NoiseModel`` (one instance per process)."""
    run = shipped(model_kind)
    return None if run is None else ddpm_of(run)


def run_cache_id(run: TrainedRun, weights: str = "spec") -> str:
    """A hashable stand-in for a run's weights in cache keys (its configuration, which weights — the spec's or their
    EMA — and the loaded instance).

    The cache-key rule for functions cached on a model (``st.cache_data`` / ``st.cache_resource``): the model itself
    goes in an underscore-prefixed argument, which Streamlit does not hash (``_run``, ``_den``), and a key string
    that names the weights goes beside it (this one for part-B runs, ``Backend.cache_id`` — the pages' ``cache_id``
    argument — for part A's noise models), so that other weights never hit the same entry."""
    return f"{run.config.model}-{config_key(run.config.as_dict())}-{weights}-{id(run.network(weights))}"


def ddpm_of(run: TrainedRun, weights: str = "spec") -> MnistDDPM:
    """A trained DDPM run with the spec's weights or their EMA as a ``NoiseModel``: one instance per loaded network,
    shared by every session."""
    return _as_noise_model(run_cache_id(run, weights), run, weights)


@st.cache_resource
def _as_noise_model(key: str, _run: TrainedRun, weights: str) -> MnistDDPM:
    return MnistDDPM(_run.network(weights), _run.config)


def flow_of(run: TrainedRun, weights: str = "spec") -> MnistFlow:
    """A trained flow run (``flow_time``, ``flow_class``) with the spec's weights or their EMA as a ``VelocityModel``:
    one instance per loaded network, shared by every session."""
    return _as_velocity_model(run_cache_id(run, weights), run, weights)


@st.cache_resource
def _as_velocity_model(key: str, _run: TrainedRun, weights: str) -> MnistFlow:
    return MnistFlow(_run.network(weights), _run.config)


def counted(n: int, noun: str) -> str:
    """"1 denoising step", "30 denoising steps": a count with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def device_label() -> str:
    if torch.cuda.is_available():
        return f"CUDA · {torch.cuda.get_device_name()}"
    return f"CPU · {torch.get_num_threads()} threads"


@st.cache_resource(show_spinner="Training the digit classifier that judges the samples (once; then it is cached)…")
def digit_judge() -> tuple[torch.nn.Module, Quality]:
    """The app's digit classifier (``lib.train.digit_classifier``), trained once on the training digits and kept in the
    model cache, and how it reads the real test digits (the ceiling for any model's samples)."""
    train_set, test_set = mnist()
    classifier = cached_digit_classifier(train_set, model_store.CACHE_DIR)
    return classifier, real_digits_quality(classifier, test_set)
