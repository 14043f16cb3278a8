"""Numbers in words for people: shared by the app's pages and the training script's progress lines."""

from __future__ import annotations


def spoken_duration(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 2 h 05 min (whole minutes from 90 s on, hours from 90 min on)."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def time_left(progress) -> str:
    """How long a training run (a ``lib.train.training.Progress``) has left, in words: "about 2 min left", or, while no
    sample grid has been timed yet, the training part and the grids still to draw ("about 35 s left for training +
    2 sample grids (timed on the first one)")."""
    total = progress.seconds_left()
    if total is not None:
        return f"about {spoken_duration(total)} left"
    training = progress.training_seconds_left()
    grids = round(progress.grids_left())
    return (f"about {spoken_duration(training or 0.0)} left for training + {grids} sample grid{'s' if grids != 1 else ''}"
            " (timed on the first one)")
