"""The whole assignment in one run: every deliverable of parts A and B on the sidebar's backend, one progress bar, one
self-contained HTML report (ui.whole_assignment, lib.media.report)."""

import streamlit as st

from ui import edition, whole_assignment
from ui.backend import DEFAULT_SEED, seed_control
from ui.flow_backend import active_flow_backend
from ui.layout import download
from ui.sections import EDITIONS
from ui.part_a import page_setup, uploaded_images

backend = page_setup(
    "whole_assignment",
    [],
    "Every deliverable of the assignment's checklist, in its order — part A on the model chosen in the sidebar, "
    "part B from the shipped runs (their stored loss curves and per-epoch samples: nothing is retrained) — with the "
    f"settings every page opens on (seed {DEFAULT_SEED}, the backend's stride and γ). Download it as one HTML file, "
    "pictures embedded and every setting and seed listed, to compare with your own notebook or to project as the "
    "answer key. "
    "Whatever a page has already computed with those settings comes from the cache, and the other way round.",
)

with st.columns(4)[0]:  # the pages open on the same default seed: then every section is theirs
    seed_entry = seed_control("whole_assignment_seed", feeds="Run the whole assignment")
with st.expander("1.7.1 · your own images (optional)"):
    own = uploaded_images(backend, "whole_assignment_own")

chosen = edition.current()
flow = active_flow_backend(required=False) if chosen == "flow" else None  # its part A's model, in the sidebar
st.caption(" ".join(filter(None, [f"Edition: **{EDITIONS[chosen].name}** — its sections only (chosen on Home or in "
                                  "the sidebar).", EDITIONS[chosen].part_a])))
reports = st.session_state.setdefault("reports", {})  # (edition, models) -> the last such report in this session
key = (chosen, backend.cache_id, flow and flow.cache_id)
if st.button("Run the whole assignment", type="primary", key="whole_assignment_run", disabled=not seed_entry.valid):
    reports[key] = whole_assignment.build(backend, own, seed_entry.value, chosen, flow)

result = reports.get(key)
if result is None:
    st.info("Press **Run the whole assignment**: one progress bar follows every deliverable.")
else:
    st.caption(f"Made {result.about['made']} on {result.about['model']}: {result.about['cost of this run']}.")
    download("Download the report (HTML)", result.html, whole_assignment.file_name(chosen, backend.family),
             "text/html", key="whole_assignment_html")
    whole_assignment.show(result)
