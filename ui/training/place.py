"""Where this session's part-B runs train: here, in the app's process (``ui.common.training_jobs()``: one thread per
configuration, the default and the only place without a model server), or — when a model server is configured
(``DIFFUSION_LAB_SERVER_URL``) — on its Ray cluster (``lib.backends.remote_training``: one job per configuration for
the whole class, queued while the cluster's GPU shares are taken). Both registries hand out jobs of one shape, so the
training panel and the results read either the same way.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from lib.backends.remote_training import RemoteTrainingJobs
from ui import common
from ui.backend import server_health, server_settings

SERVER = "On the model server"
HERE = "Here (this app's process)"
PLACE_KEY = "train_place"  # the session's choice, shared by every part-B page
_JOBS_KEY = "_remote_training_jobs"  # this session's client of the server's jobs (its id names it as a watcher)


def server_url() -> str | None:
    """The model server's URL if one is configured and answers; else None (the sidebar says why it does not)."""
    url, token = server_settings()
    if url is None or isinstance(server_health(url, token), str):
        return None
    return url


def session_jobs():
    """The training jobs this session's part-B pages use: the server's when one is configured, answers and the
    session did not choose to train here; else the app process's."""
    url = server_url()
    if url is None or st.session_state.get(PLACE_KEY, SERVER) == HERE:
        return common.training_jobs()
    token = server_settings()[1]
    ident = (url, hashlib.sha256((token or "").encode()).hexdigest())  # a changed server or token: a new client
    held = st.session_state.get(_JOBS_KEY)
    if held is None or held[0] != ident:
        held = st.session_state[_JOBS_KEY] = (ident, RemoteTrainingJobs(url, token))
    return held[1]


def on_server(jobs) -> bool:
    return isinstance(jobs, RemoteTrainingJobs)


def place_choice() -> None:
    """The "train on the model server / here" choice, shown only where a model server answers."""
    if server_url() is None:
        return
    st.radio("Train", (SERVER, HERE), key=PLACE_KEY, horizontal=True, persist_state="session",
             help="On the model server: its GPU trains the run, one run per setting for the whole class (a classmate "
                  "who asks for the same settings watches the same run), and the page follows it. Here: this app's "
                  "own process trains it, on its CPU.")
