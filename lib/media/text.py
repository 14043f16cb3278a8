"""Numbers and prompts in words for people: shared by the app's pages, the report and the training script's progress
lines."""

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


# --- prompts ---------------------------------------------------------------------------------------------------------

EMPTY_PROMPT_RULE = ("the empty prompt is the unconditional one: the model's estimate without any prompt (CFG's ε_u, "
                     "so γ changes nothing for it)")


def is_empty_prompt(prompt: str) -> bool:
    """Blank text is the empty prompt: both backends strip a prompt before reading it (MNIST's digit parser, IF's
    tokenizer), so "  " conditions exactly as "" does."""
    return not prompt.strip()


def quoted_prompt(prompt: str) -> str:
    """A prompt as captions and the report's settings quote it: '7', or, for the empty one, what it is ("the empty
    prompt (unconditional)") instead of a bare ''."""
    return "the empty prompt (unconditional)" if is_empty_prompt(prompt) else repr(prompt)


def reads_as(prompt: str) -> str:
    """What a result made for ``prompt`` should look like, for a caption: "should read as '7'"; the unconditional
    prompt promises nothing ("unconditional: no prompt to read as")."""
    return "unconditional: no prompt to read as" if is_empty_prompt(prompt) else f"should read as {prompt!r}"


def empty_prompt_note(field: str | None = None) -> str:
    """The one message of every part-A page whose prompt (``field``: "Prompt 2" where a page has several) is empty."""
    return f"{field or 'The prompt'} is empty, and {EMPTY_PROMPT_RULE}."


# --- numbers typed by people -----------------------------------------------------------------------------------------

MAX_DIGITS = 40  # whole_number reads at most this many digits: a seed has at most 20

def whole_number(text: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """The whole number typed in ``text`` ("42", " -7 ", "2.0", "1e3"), read exactly (``decimal.Decimal``: a 20-digit
    seed stays itself), within ``[minimum, maximum]`` where given; else ValueError with the reason in words. Never
    rounds: "1.5" is refused, not read as 1 (what a browser's integer field does)."""
    from decimal import Decimal, InvalidOperation

    shown = text.strip()
    try:
        number = Decimal(shown)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise ValueError(f"“{shown[:40]}” is not a number" if shown else "it is empty")
    if number.adjusted() > MAX_DIGITS:  # "1e999999999" would take gigabytes as an int
        raise ValueError(f"{shown[:40]} is far too large")
    if number != number.to_integral_value():
        raise ValueError(f"{shown} is not a whole number")
    value = int(number)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{shown} is outside the allowed range ({allowed_range(minimum, maximum)})")
    return value


def allowed_range(minimum: int | None, maximum: int | None) -> str:
    """"1 to 1,875", "at least 0", "any whole number": a whole-number field's bounds in words."""
    if minimum is not None and maximum is not None:
        return f"{minimum:,} to {maximum:,}"
    if minimum is not None:
        return f"at least {minimum:,}"
    return "any whole number" if maximum is None else f"at most {maximum:,}"
