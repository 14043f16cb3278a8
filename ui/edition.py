"""The edition of the assignment this session follows (``ui.sections.EDITIONS``), and the page list it implies.

Where it comes from, in order: the URL's ``?edition=`` when the URL brings one this session did not write (a new
session, or a link followed), else the session's choice (Home's cards, the sidebar's selector), else the default. A page
that only one edition teaches implies that edition when it is opened by a link. The router (``Home.py``) calls
``navigation()`` on every run, which writes the edition back into the URL, so a copied link carries it — also a deep
link such as ``/time_ddpm?edition=ddpm``. Any page may read ``current()``.
"""

from __future__ import annotations

import streamlit as st

from ui.sections import BY_SLUG, DEFAULT_EDITION, EDITIONS, PARTS, SECTIONS, Section, part_groups

KEY = "edition"  # the URL's query parameter and the session-state key of the session's edition
SELECTOR_KEY = "edition_selector"  # the sidebar's widget
IN_URL_KEY = "edition_in_url"  # the value this session last wrote into the URL: another one there came from a link
SWITCHED_KEY = "edition_switched"  # set by the sidebar's selector for the run its change starts
NOTE_KEY = "edition_note"  # why the page or the edition changed, shown once on the next run


def parse(value: str | None) -> tuple[str | None, str]:
    """``?edition=``'s value → (the edition's key, "") — (None, "") when the URL has none, and (None, a one-line
    warning) when it names no edition."""
    if value is None:
        return None, ""
    key = value.strip().lower()
    if key in EDITIONS:
        return key, ""
    known = " or ".join(f"“{k}”" for k in EDITIONS)
    default = EDITIONS[DEFAULT_EDITION].name
    return None, f"The link's edition “{value}” is not {known}: showing the default, {default}."


def current() -> str:
    """The session's edition: its choice, else the URL's, else ``DEFAULT_EDITION``."""
    chosen = st.session_state.get(KEY)
    if chosen in EDITIONS:
        return chosen
    return parse(st.query_params.get(KEY))[0] or DEFAULT_EDITION


def choose(key: str) -> None:
    """Make ``key`` the session's edition (a callback: Home's cards)."""
    st.session_state[KEY] = key


def page_groups(edition: str, sections: tuple[Section, ...] = SECTIONS) -> tuple[dict[str, list[Section]],
                                                                                   list[Section]]:
    """The sidebar's page list for an edition: {a heading (``part_groups``: a part's name, or a version of it): the
    sections under it that the edition teaches, in order} for the parts that have any, and the other sections — registered but hidden, so that a link to
    one still opens it (and implies its edition)."""
    shown = {name: group for part in PARTS for name, group in part_groups(part, edition, sections).items()}
    return shown, [s for s in sections if edition not in s.editions]


def page_edition(section: Section | None, edition: str) -> str:
    """The edition a page is shown in: ``edition`` where it teaches the section (Home, ``None``, is in every one),
    else the section's own first edition."""
    return edition if section is None or edition in section.editions else section.editions[0]


def app_page(section: Section, visible: bool = True) -> st.Page:
    """A page of the sidebar, titled with the assignment's section number; its URL is the section's slug."""
    return st.Page(section.page, title=section.label, url_path=section.slug,
                   visibility="visible" if visible else "hidden")


def navigation(home: st.Page):
    """The page list of this session's edition (``st.navigation``) with the sidebar's edition selector under it; the
    page to run. Call once per run, before anything else is drawn.

    The URL's edition is read, validated (a value that names none gets a warning and the default) and written back.
    A page the edition does not teach, reached by a link, switches the session to the page's edition (with a note when
    the session or the link had chosen the other one); reached by switching edition in the sidebar, it gives way to
    Home, which lists the new edition's pages."""
    raw = st.query_params.get(KEY)
    warning = ""
    if raw is not None and raw != st.session_state.get(IN_URL_KEY):  # a new session, or a link followed
        key, warning = parse(raw)
        st.session_state[KEY] = key or DEFAULT_EDITION
    chosen = KEY in st.session_state
    edition = current()
    groups, hidden = page_groups(edition)
    page = st.navigation({"": [home] + [app_page(s, visible=False) for s in hidden]}
                         | {name: [app_page(s) for s in group] for name, group in groups.items()},
                         expanded=True)  # every page in the sidebar: collapsed, "View more" would hide the last ones
    section = BY_SLUG.get(page.url_path)
    switched = st.session_state.pop(SWITCHED_KEY, False)
    wanted = page_edition(section, edition)
    if wanted != edition:
        if switched:
            st.session_state[NOTE_KEY] = (f"“{section.label}” is not part of the {EDITIONS[edition].name} edition: "
                                          "here are that edition's pages.")
            _keep(edition)
            st.switch_page(home, query_params={KEY: edition})
        if chosen:
            st.session_state[NOTE_KEY] = (f"“{section.label}” belongs to the {EDITIONS[wanted].name} edition: the "
                                          "app follows that edition now.")
        _keep(wanted)
        st.rerun()  # the page list of the page's edition
    _keep(edition)
    if warning:
        st.warning(warning)
    if note := st.session_state.pop(NOTE_KEY, ""):
        st.info(note)
    selector()
    return page


def _keep(edition: str) -> None:
    """The session's edition, kept in its state and written into the URL (remembered as written by this session)."""
    st.session_state[KEY] = edition
    st.query_params[KEY] = edition
    st.session_state[IN_URL_KEY] = edition


def _selected() -> None:
    st.session_state[KEY] = st.session_state[SELECTOR_KEY]
    st.session_state[SWITCHED_KEY] = True


def selector() -> None:
    """The sidebar's edition selector, showing the session's edition."""
    st.session_state[SELECTOR_KEY] = current()
    st.sidebar.radio("My course uses", list(EDITIONS), format_func=lambda key: EDITIONS[key].name, key=SELECTOR_KEY,
                     on_change=_selected, help="The edition of the assignment the pages follow; kept in the URL "
                     "(?edition=…), so a copied link opens the same edition.")


def cards() -> None:
    """Home's two cards, one per edition — its name, what it teaches and a button that makes it the session's."""
    edition = current()
    for (key, option), column in zip(EDITIONS.items(), st.columns(len(EDITIONS))):
        box = column.container(border=True)
        box.caption("My course uses")
        box.markdown(f"**{option.name}**")
        box.markdown(option.course)
        if key == edition:
            box.button("✓ Chosen: the pages follow it", key=f"edition_card_{key}", disabled=True, width="stretch")
        else:
            box.button(f"Choose {option.name}", key=f"edition_card_{key}", on_click=choose, args=(key,),
                       width="stretch")
