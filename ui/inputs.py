"""Whole-number fields that never act on a number other than the one on screen.

A browser's number field keeps a refused entry on screen while Streamlit goes on with the previous value (an entry
above ``max_value``), and reads 1.5 as 1 in an integer field. Here a whole number is typed as text and read exactly
(``lib.media.text.whole_number``): an entry that is not a whole number in range is said under the field, with the value
the page goes on using (the last valid one) and the action it would feed, which waits until it is fixed.
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from lib.media.text import allowed_range, whole_number


class Entry(NamedTuple):
    """A whole-number field's outcome: the value the page uses, and whether it is the one on screen."""

    value: int
    valid: bool


def whole_number_input(label: str, default: int, *, key: str, minimum: int | None = None, maximum: int | None = None,
                       help: str = "", feeds: str | None = None, container=st) -> Entry:
    """A text field for a whole number in ``[minimum, maximum]``, kept for the session (``persist_state``).

    Invalid text: an error under the field that says why, the value used meanwhile (the last valid entry, else
    ``default``) and, with ``feeds`` (the label of the button it feeds), that the button waits; callers disable it
    while ``Entry.valid`` is false. A loader may store a number under ``key``: it is shown as its text.
    """
    if isinstance(st.session_state.get(key), int):
        st.session_state[key] = str(st.session_state[key])
    text = container.text_input(label, str(default), key=key, persist_state="session",
                                help=f"{help} {allowed_range(minimum, maximum).capitalize()}.".strip())
    try:
        value = whole_number(text, minimum, maximum)
    except ValueError as err:
        used = st.session_state.get(_last_valid_key(key), default)
        waits = f", and **{feeds}** waits until it is fixed" if feeds else ""
        container.error(f"{label}: {err}. The page uses {used} meanwhile{waits}.")
        return Entry(used, False)
    st.session_state[_last_valid_key(key)] = value
    return Entry(value, True)


def last_valid(key: str) -> int | None:
    """The last valid entry of the field ``key`` in this session, None before its first."""
    return st.session_state.get(_last_valid_key(key))


def _last_valid_key(key: str) -> str:
    return f"_{key}_last_valid"
