"""The app-wide edition choice (issue #24 item 1, ``ui.edition``): the URL's ``?edition=``, Home's cards, the sidebar's
selector, the page list of each edition, and the whole-assignment report of each edition.

The AppTests run the router (Home.py) on the tiny part-B models of ``test_pages_part_b`` (its fixtures), so a part-B
page opens in seconds. No slug is written here: the pages come from the registry, whatever sections it lists.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from streamlit.testing.v1 import AppTest

from test_pages_part_b import ROOT, app, digits, formulas, shipped, tiny_shipped
from ui import edition as edition_ui
from ui import whole_assignment
from ui.sidebar import if_requirements
from ui.sections import (BY_SLUG, DEFAULT_EDITION, EDITIONS, FLOW_PART_A, IF_PART_A, PARTS, SECTIONS, Section, in_part,
                         part_groups)

FIXTURES = (app, digits, shipped, tiny_shipped)  # pytest finds fixtures by their names in this module
HOME = str(ROOT / "Home.py")
OTHER = {key: next(k for k in EDITIONS if k != key) for key in EDITIONS}  # each edition's other one
ONE_EDITION = [s for s in SECTIONS if len(s.editions) == 1]  # pages that only one edition teaches


def edition_sections(key: str) -> list[Section]:
    """The sections an edition teaches, part by part: what its contents and its sidebar list."""
    return [s for part in PARTS for s in in_part(part, key)]


# --- ui.edition's pure functions ---------------------------------------------------------------------------------

def test_parse_reads_an_edition_and_warns_on_anything_else():
    for key in EDITIONS:
        assert edition_ui.parse(key) == (key, "")
        assert edition_ui.parse(f" {key.upper()} ") == (key, "")  # a link typed by hand
    assert edition_ui.parse(None) == (None, "")
    key, warning = edition_ui.parse("diffusion")
    assert key is None
    assert "“diffusion”" in warning and EDITIONS[DEFAULT_EDITION].name in warning and "\n" not in warning
    assert all(f"“{k}”" in warning for k in EDITIONS)  # says which values work


@pytest.mark.parametrize("key", list(EDITIONS))
def test_the_page_list_shows_an_editions_sections_and_hides_the_others(key):
    groups, hidden = edition_ui.page_groups(key)
    shown = [s for group in groups.values() for s in group]
    assert shown == edition_sections(key)
    assert all(key in s.editions for s in shown) and all(key not in s.editions for s in hidden)
    assert sorted(s.slug for s in shown + hidden) == sorted(BY_SLUG)  # every page stays reachable by its URL
    assert all(groups.values())  # no empty heading
    for group in groups.values():  # no heading lists a section number twice
        numbers = [s.number for s in group]
        assert len(set(numbers)) == len(numbers), numbers


def test_the_flow_edition_lists_its_two_part_as_under_their_own_headings():
    assert list(part_groups("A", "ddpm")) == [PARTS["A"]]
    groups = part_groups("A", "flow")
    assert list(groups) == [f"Part A · {IF_PART_A}", f"Part A · {FLOW_PART_A}"]
    assert [s.slug for s in groups[f"Part A · {IF_PART_A}"]] == [s.slug for s in in_part("A", "ddpm")]
    assert all(s.slug.startswith("flow_") for s in groups[f"Part A · {FLOW_PART_A}"])
    assert list(part_groups("B", "flow")) == [PARTS["B"]]


def test_the_page_list_of_a_registry_with_a_section_of_one_edition():
    both = Section("both", "A", "1", "Both", "in both")
    only = {key: Section(f"only_{key}", "B", "B9", "Only", "in one", editions=(key,)) for key in EDITIONS}
    registry = (both, *only.values())
    for key in EDITIONS:
        groups, hidden = edition_ui.page_groups(key, registry)
        assert groups == {PARTS["A"]: [both], PARTS["B"]: [only[key]]}
        assert hidden == [only[OTHER[key]]]


def test_a_page_is_shown_in_its_own_edition_where_the_chosen_one_lacks_it():
    both = Section("both", "A", "1", "Both", "in both")
    flow_only = Section("only", "B", "B9", "Only", "in one", editions=("flow",))
    for key in EDITIONS:
        assert edition_ui.page_edition(None, key) == key  # Home
        assert edition_ui.page_edition(both, key) == key
    assert edition_ui.page_edition(flow_only, "flow") == "flow"
    assert edition_ui.page_edition(flow_only, "ddpm") == "flow"


# --- Home ---------------------------------------------------------------------------------------------------------

def run(target) -> AppTest:
    """Run the app (``target``: the AppTest, or a widget just changed) and check that it raised nothing."""
    at = target.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def home(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=180)
    at.query_params.update(query or {})
    return run(at)


def contents(at: AppTest) -> list[str]:
    return [link.proto.page for link in at.get("page_link")]


def assert_follows(at: AppTest, key: str) -> None:
    """Home (or any page) shows edition ``key``: the URL carries it, the sidebar's selector shows it."""
    assert at.query_params["edition"] in (key, [key])
    assert at.sidebar.radio(key=edition_ui.SELECTOR_KEY).value == key
    assert at.session_state[edition_ui.KEY] == key


def assert_home_of(at: AppTest, key: str) -> None:
    assert_follows(at, key)
    assert contents(at) == [s.slug for s in edition_sections(key)]
    chosen = EDITIONS[key]
    shown = formulas(at)
    assert chosen.noise_path in shown[0]
    assert not [f for f in shown for other in EDITIONS.values() if other.key != key and other.noise_path in f]
    captions = [c.value for c in at.caption]
    assert chosen.noise_path_caption in captions
    assert (chosen.part_a in captions) == bool(chosen.part_a)  # the flow edition says which part A it shows
    for other in EDITIONS.values():
        if other.part_a and other.key != key:
            assert other.part_a not in captions
    texts = [m.value for m in at.markdown]
    for option in EDITIONS.values():  # both cards, whatever the edition: the name and what the course teaches
        assert f"**{option.name}**" in texts and option.course in texts
    buttons = {b.key: b for b in at.button}
    for option in EDITIONS:
        button = buttons[f"edition_card_{option}"]
        assert button.disabled == (option == key)
        assert (option == key) == button.label.startswith("✓")
    trained = [s for s in edition_sections(key) if s.trains]
    assert len(at.table[0].value) == len(trained)  # the shipped models of the edition's part B


def test_home_by_default_follows_the_ddpm_edition_and_writes_it_into_the_url(shipped):
    assert DEFAULT_EDITION == "ddpm"  # issue #24: the DDPM edition stays the default
    at = home()
    assert_home_of(at, DEFAULT_EDITION)
    assert not [w.value for w in at.warning if "edition" in w.value]


@pytest.mark.parametrize("key", list(EDITIONS))
def test_home_follows_the_edition_of_its_link(shipped, key):
    assert_home_of(home({"edition": key}), key)


def test_a_link_with_an_unknown_edition_warns_once_and_shows_the_default(shipped):
    at = home({"edition": "fall-2031"})
    warnings = [w.value for w in at.warning if "edition" in w.value]
    assert warnings == [edition_ui.parse("fall-2031")[1]]
    assert_home_of(at, DEFAULT_EDITION)  # the URL now names the default
    run(at)
    assert not [w.value for w in at.warning if "edition" in w.value]  # said once, not on every run


def test_the_cards_and_the_sidebar_choose_the_edition(shipped):
    at = home()
    other = OTHER[DEFAULT_EDITION]
    run(at.button(key=f"edition_card_{other}").click())
    assert_home_of(at, other)
    run(at.sidebar.radio(key=edition_ui.SELECTOR_KEY).set_value(DEFAULT_EDITION))
    assert_home_of(at, DEFAULT_EDITION)


def test_home_says_once_that_deepfloyd_if_is_not_available(shipped):
    """Issue #27 item 10: the page said it three times (its Backend section, the sidebar, and the requirement again in
    a caption)."""
    if not if_requirements():
        pytest.skip("DeepFloyd IF is available here")
    at = home()
    said = [e.value for e in (*at.info, *at.caption, *at.markdown, *at.sidebar.caption, *at.sidebar.markdown)]
    assert sum("DeepFloyd IF is not" in text for text in said) == 1, said
    if not torch.cuda.is_available():
        assert sum("IF-I-XL needs a CUDA GPU" in text for text in said) == 1, said


# --- pages ----------------------------------------------------------------------------------------------------------

def test_a_page_opened_with_an_edition_keeps_it_in_the_url(shipped):
    report = next(s for s in SECTIONS if s.part == whole_assignment.REPORT_PART)  # in every edition; cheap to open
    for key in EDITIONS:
        at = home()
        at.query_params["edition"] = key  # a link followed
        run(at.switch_page(report.page))
        assert at.title[0].value == report.page_title
        assert any(EDITIONS[key].name in c.value for c in at.caption)  # the report it would make is the edition's
        assert_follows(at, key)
        run(at)  # and on every later run
        assert_follows(at, key)


@pytest.mark.skipif(not ONE_EDITION, reason="every section is in every edition")
@pytest.mark.parametrize("section", ONE_EDITION, ids=[s.slug for s in ONE_EDITION])
def test_a_page_of_one_edition_implies_it_and_switching_away_goes_home(shipped, section):
    own, other = section.editions[0], OTHER[section.editions[0]]
    at = AppTest.from_file(HOME, default_timeout=180)
    run(at.switch_page(section.page))  # a link without ?edition=, in a new session
    assert at.title[0].value == section.page_title
    assert_follows(at, own)
    assert not [i.value for i in at.info if "edition" in i.value]  # nothing was chosen: nothing to explain
    run(at.sidebar.radio(key=edition_ui.SELECTOR_KEY).set_value(other))  # this page is not in the other edition
    assert at.title[0].value == "Diffusion Lab"
    assert_home_of(at, other)
    assert any(section.label in i.value and EDITIONS[other].name in i.value for i in at.info)


@pytest.mark.skipif(not ONE_EDITION, reason="every section is in every edition")
def test_a_link_naming_the_other_edition_opens_the_page_in_its_own_and_says_so(shipped):
    section = ONE_EDITION[0]
    own, other = section.editions[0], OTHER[section.editions[0]]
    at = AppTest.from_file(HOME, default_timeout=180)
    at.query_params["edition"] = other
    run(at.switch_page(section.page))
    assert at.title[0].value == section.page_title
    assert_follows(at, own)
    assert any(section.label in i.value and EDITIONS[own].name in i.value for i in at.info)


# --- the whole-assignment report ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(EDITIONS))
def test_the_report_runs_the_editions_sections_in_order_and_names_the_edition(key):
    report_part = whole_assignment.REPORT_PART
    sections = [s for s in SECTIONS if key in s.editions and s.part != report_part]  # the registry's own order
    expected = [p for s in sections for p in importlib.import_module(f"ui.sections.{s.slug}").REPORT]
    assert whole_assignment.pieces(key) == expected
    for other in (s for s in SECTIONS if key not in s.editions):
        assert not set(importlib.import_module(f"ui.sections.{other.slug}").REPORT) & set(expected), other.slug
    assert EDITIONS[key].name in whole_assignment.title(key)
    assert whole_assignment.file_name(key, "mnist") == f"diffusion_assignment_{key}_mnist.html"
    assert len({whole_assignment.title(k) for k in EDITIONS}) == len(EDITIONS)
