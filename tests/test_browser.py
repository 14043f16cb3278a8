"""The real app in a real browser: ``streamlit run Home.py`` driven by headless Chromium through Playwright.

Every page found in app_pages/ is opened at the URL Streamlit gives it, its first control is changed, and the test checks
that the page re-ran without an exception and shows an image or a chart; a drawing on the canvas feeds SDEdit (A4) and a
painted mask feeds inpainting (A5). Screenshots land in screenshots/ (gitignored). Needs Debian's chromium at
/usr/bin/chromium (``.ci/run`` installs it); skipped without it.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from browser_util import CHROMIUM, CHROMIUM_ARGS, IDLE_JS, ROOT, StreamlitServer, discover_pages
from ui.layout import PRESENTATION_KEY
from ui.sections import BY_SLUG, DEFAULT_EDITION, EDITIONS, PARTS, in_part

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"),
]
sync_api = pytest.importorskip("playwright.sync_api")

PAGES = discover_pages()
# Within CI's time budget every run walks these pages (one of each kind: a part-A technique, a training page, the report);
# the walk of the others is marked slow (tests/conftest.py: it runs while the budget lasts).
WALKED_ALWAYS = ("forward", "class_ddpm", "whole_assignment")
SHOTS = ROOT / "screenshots"
RUN_TIMEOUT_MS = 240_000  # one script run of a page on a busy 2-core CPU (first visit loads MNIST and the model)
RESULT = '[data-testid="stImage"], [data-testid="stPlotlyChart"]'
EXCEPTION = '[data-testid="stException"]'


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The app on a free loopback port, with its model cache in a temporary folder; stopped after the session.

    ``DIFFUSION_LAB_APP_URL`` runs the tests against an app that is already running instead (e.g. on a GPU server).
    """
    if os.environ.get("DIFFUSION_LAB_APP_URL"):
        yield os.environ["DIFFUSION_LAB_APP_URL"].rstrip("/")
        return
    with running_app(tmp_path_factory.mktemp("app")) as server:
        yield server.url


@contextlib.contextmanager
def running_app(folder: Path, **settings: str):
    """``streamlit run Home.py`` on a free loopback port with its model cache in ``folder`` and ``settings`` in its
    environment (never the developer's HF_TOKEN); stopped on exit, however the test ends."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "STREAMLIT_SERVER_PORT")}
    env.update(DIFFUSION_LAB_CACHE=str(folder / "cache"), PYTHONUNBUFFERED="1", **settings)
    server = StreamlitServer(env, folder / "streamlit.log")
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=app_url)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def wait_for_app(page, settle_ms: int = 750) -> None:
    """Wait until the script run that an action (or the page load) started has finished.

    Streamlit flags its root element with ``data-test-script-state`` and elements left from the previous run with
    ``data-stale`` until the run that replaces them has finished. An interaction reaches the server a moment later, so
    first give the state a chance to leave ``notRunning``; then wait until it has been ``notRunning`` with no stale
    element and no skeleton for ``settle_ms`` without a break, which also rides out the gap between connecting and the
    first run of a freshly loaded page.
    """
    try:
        page.wait_for_function("document.querySelector('[data-testid=stApp]')?.dataset.testScriptState"
                               " !== 'notRunning'", timeout=2_000, polling=50)
    except sync_api.TimeoutError:
        pass  # the rerun was quicker than the first poll, or the action did not rerun the script
    page.evaluate("window.__idleSince = null")
    page.wait_for_function(IDLE_JS % settle_ms, timeout=RUN_TIMEOUT_MS, polling=100)


def open_page(page, url_path: str) -> None:
    page.goto(f"/{url_path}")
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=RUN_TIMEOUT_MS)  # every page has a title
    wait_for_app(page)


def assert_healthy(page, what: str) -> None:
    errors = page.locator(EXCEPTION)
    assert errors.count() == 0, f"{what}: {errors.first.inner_text()[:2000]}"
    assert page.locator(RESULT).count() > 0, f"{what}: no image or chart on the page"


def screenshot(page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    # Streamlit scrolls inside its main container, not the document: grow the viewport to the content's height instead
    height = page.evaluate("Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
                           "[data-testid=stSidebar]')].map(e => e.scrollHeight))")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), 8000)})
    page.wait_for_timeout(300)  # let charts re-layout
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


def url_path(url: str) -> str:
    """"time_ddpm" for http://host/time_ddpm?edition=ddpm: the page's path, without the query the app adds."""
    return urlsplit(url).path.strip("/")


def url_edition(url: str) -> str | None:
    return parse_qs(urlsplit(url).query).get("edition", [None])[0]


def sidebar_pages(page) -> list[str]:
    """The url paths of the pages the sidebar lists (Home's is "")."""
    return [url_path(a.get_attribute("href")) for a in page.locator('[data-testid="stSidebarNav"] a').all()]


def edition_pages(key: str) -> list[str]:
    """The url paths an edition's sidebar lists: Home, then its sections part by part."""
    return [""] + [s.slug for part in PARTS for s in in_part(part, key)]


def change_main_control(page) -> str:
    """Move the page's first slider one step (right, or left when it is at its maximum), or else step up its first
    number input, or else its first text input's number; returns what changed."""
    main = page.locator('[data-testid="stMain"]')
    slider = main.locator('[data-testid="stSlider"] input[type="range"]')  # the thumb's (visually hidden) input
    if slider.count():
        handle = slider.first
        before = handle.input_value()
        handle.focus()
        handle.press("ArrowLeft" if before == handle.get_attribute("max") else "ArrowRight")
        wait_for_app(page)
        after = handle.input_value()
        assert after != before, f"the slider did not move ({before})"
        return f"slider {before} → {after}"
    number = main.locator('[data-testid="stNumberInput"] input')
    if number.count():
        box = number.first
        before = box.input_value()
        box.focus()
        box.press("ArrowUp")
        box.press("Enter")
        wait_for_app(page)
        after = box.input_value()
        assert after != before, f"the number input did not change ({before})"
        return f"number {before} → {after}"
    text = main.locator('[data-testid="stTextInput"] input')  # a whole number typed as text (ui.inputs): the seed
    if text.count():
        box = text.first
        before = box.input_value()
        box.fill(str(int(before) + 1) if before.isdigit() else "1")
        box.press("Enter")
        wait_for_app(page)
        after = box.input_value()
        assert after != before, f"the text input did not change ({before})"
        return f"text {before} → {after}"
    pytest.fail("the page has neither a slider, a number input nor a text input")


def test_every_page_is_discovered():
    names = [p.name for p in PAGES]
    assert names, "no pages in app_pages/"
    assert len(set(names)) == len(names)
    assert all(not n[:1].isdigit() for n in names), names  # the "NN_" ordering prefix is not part of the URL


def test_home(page):
    open_page(page, "")
    assert page.locator("h1").filter(has_text="Diffusion Lab").count() == 1
    assert page.locator(EXCEPTION).count() == 0
    assert sidebar_pages(page) == edition_pages(DEFAULT_EDITION)  # the default edition's pages, each once
    assert url_edition(page.url) == DEFAULT_EDITION
    screenshot(page, "Home")


def test_a_link_with_the_flow_edition_lists_its_pages_and_keeps_it(page):
    """An instructor hands out ``/?edition=flow``: the sidebar lists that edition's pages (Home, then its sections
    part by part, each once), its selector shows it and Home shows its noise path; the URL keeps it on another page;
    the sidebar's selector switches back and writes the other edition into the URL."""
    flow = EDITIONS["flow"]
    open_page(page, "?edition=flow")
    assert url_edition(page.url) == "flow"
    assert sidebar_pages(page) == edition_pages("flow") != edition_pages(DEFAULT_EDITION)
    selector = page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').filter(has_text="My course uses")
    assert selector.get_by_role("radio", name=flow.name).is_checked()
    assert page.locator('[data-testid="stMain"]').get_by_text(flow.noise_path_caption).count() == 1
    assert page.locator(EXCEPTION).count() == 0
    screenshot(page, "edition-flow-Home")
    report = in_part("report", "flow")[0]  # waits for its Run button: cheap to open
    page.locator(f'[data-testid="stSidebarNav"] a[href$="/{report.slug}"]').click()
    page.wait_for_function(f"location.pathname.endsWith('/{report.slug}')")
    wait_for_app(page)
    assert url_path(page.url) == report.slug and url_edition(page.url) == "flow"
    assert sidebar_pages(page) == edition_pages("flow")
    assert page.locator('[data-testid="stMain"]').get_by_text(flow.name).count() > 0  # the report it would make
    selector.locator("label").filter(has_text=EDITIONS[DEFAULT_EDITION].name).click()
    page.wait_for_function(f"new URLSearchParams(location.search).get('edition') === '{DEFAULT_EDITION}'")
    wait_for_app(page)
    assert sidebar_pages(page) == edition_pages(DEFAULT_EDITION)
    assert page.locator(EXCEPTION).count() == 0


def save_tiny_flow_run(cache: Path) -> None:
    """A random-init class-conditioned flow model (D = 4) as a finished run in the model cache ``cache``: what the flow
    edition's part-A pages run on when none is shipped (``ui.flow_backend``)."""
    import torch

    from lib.train import model_store
    from lib.train.training import TrainConfig, TrainedRun
    from lib.train.unets import build_model

    config = TrainConfig.spec("flow_class", hidden=4, epochs=1)
    torch.manual_seed(0)
    run = TrainedRun(config, build_model("flow_class", config.hidden).eval(), [1.0], {}, {"seconds": 0.0})
    model_store.save_run(run, cache / model_store.cache_path(config).name, {"device": "cpu (test)"})


def walk_to(page, slug: str) -> None:
    """Follow the sidebar's link to the section ``slug`` and wait for its run."""
    page.locator(f'[data-testid="stSidebarNav"] a[href$="/{slug}"]').click()
    page.wait_for_function(f"location.pathname.endsWith('/{slug}')")
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=RUN_TIMEOUT_MS)
    wait_for_app(page)


def test_the_flow_edition_walks_from_a_part_a_page_to_a_part_b_page(browser, tmp_path):
    """From ``/?edition=flow`` through the sidebar to a flow part-A page (1.1 – 1.3, on a tiny flow model in the
    cache) and a flow part-B page (B 2.4 – 2.6): each shows its edition's title and pictures, no exception, and the
    URL keeps the edition."""
    save_tiny_flow_run(tmp_path / "cache")
    with running_app(tmp_path) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=server.url)
        try:
            pg = context.new_page()
            pg.set_default_timeout(60_000)
            open_page(pg, "?edition=flow")
            for slug in ("flow_denoising", "class_flow"):
                walk_to(pg, slug)
                assert url_path(pg.url) == slug and url_edition(pg.url) == "flow"
                assert pg.locator("h1").first.inner_text().startswith(BY_SLUG[slug].number + " · ")
                assert_healthy(pg, slug)
                if slug == "flow_denoising":  # its three MSEs: the page ran on the flow model
                    assert pg.locator('[data-testid="stMetric"]').count() == 3
                screenshot(pg, f"edition-flow-{slug}")
        finally:
            context.close()


def test_sidebar_uses_the_assignments_numbering(browser, tmp_path):
    """The sidebar lists the pages under Part A / Part B with the assignment's section numbers, and has the shared
    presentation switch, also for the first visitor of a fresh server who comes straight to a page's URL (with a page
    folder named pages/, Streamlit ran that page alone, without Home.py's navigation)."""
    with running_app(tmp_path) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=server.url)
        try:
            pg = context.new_page()
            open_page(pg, _page_named("iterative").url_path)
            nav = pg.locator('[data-testid="stSidebarNav"]')
            assert nav.get_by_text("Part A · a pretrained model").count() == 1
            labels = [a.inner_text().strip() for a in nav.locator("a").all()]
            assert "1.3 – 1.4 · Iterative denoising" in labels and "1.9 · Hybrid images" in labels, labels
            assert "B3 · Class-conditioned DDPM" in labels, labels
            assert pg.locator('[data-testid="stSidebar"]').get_by_text("Presentation mode").count() == 1
            assert pg.locator("h1").first.inner_text().startswith("1.3 – 1.4 · ")
        finally:
            context.close()


@pytest.mark.slow
def test_a_long_seed_being_typed_is_not_covered_by_the_enter_hint(page):
    """While a 20-digit seed is typed, Streamlit's "Press Enter to apply" stands under the field, clear of its text
    (ui.layout.BASE_CSS); applied, the seed is used exactly as typed."""
    open_page(page, _page_named("guidance").url_path)
    field = page.locator('.st-key-guidance_seed input')
    field.fill("12345678901234567890")  # typed, not applied: the hint shows while the field has the focus
    hint = page.locator('.st-key-guidance_seed [data-testid="InputInstructions"]')
    hint.wait_for(state="visible")
    box, under = field.bounding_box(), hint.bounding_box()
    screenshot(page, "long_seed_typed")
    assert under["y"] >= box["y"] + box["height"] - 1, (box, under)
    field.press("Enter")
    wait_for_app(page)
    assert page.get_by_text("seed 12345678901234567890,").count() == 1


@pytest.mark.slow
def test_a_row_of_results_shows_its_images_at_one_size(page):
    """1.3 – 1.4's original, noisy, blurred, one-step and iterative images are one size: a caption wider than its
    image (the scores under four of them) no longer stretches that image (ui.layout.image gives every width)."""
    open_page(page, _page_named("iterative").url_path)
    wait_for_images(page, at_least=5)
    row = page.locator('[data-testid="stMain"] [data-testid="stImage"] img')
    widths = [round(row.nth(i).bounding_box()["width"]) for i in range(5)]
    screenshot(page, "iterative_row")
    assert len(set(widths)) == 1, widths


# Counts the app's script runs from here on: each time its root element's script state turns to "running"
COUNT_RERUNS_JS = """() => {
    window.__reruns = 0;
    const app = document.querySelector('[data-testid=stApp]');
    new MutationObserver(() => { if (app.dataset.testScriptState === 'running') window.__reruns += 1; })
        .observe(app, { attributes: true, attributeFilter: ['data-test-script-state'] });
}"""


def tile(picture: np.ndarray, upscale: int, index: int = 0, pad: int = 2) -> np.ndarray:
    """Tile ``index`` of a one-row ``lib.media.images.grid`` picture of square tiles, at its original size."""
    size = (picture.shape[0] // upscale) - 2 * pad
    left = pad + index * (size + pad)
    return picture[pad * upscale: (pad + size) * upscale: upscale, left * upscale: (left + size) * upscale: upscale]


def test_a_download_hands_over_the_images_shown_without_rerunning_the_page(page):
    """1.1's "Download" gives the images the page shows (its first tile is the original shown above it, pixel for
    pixel up to the JPEG Streamlit shows that one as) and does not rerun the page (``ui.layout.download``): a rerun
    would redo the page's work for nothing and leave the file unregistered, for other sessions' runs to delete."""
    open_page(page, _page_named("forward").url_path)
    page.evaluate(COUNT_RERUNS_JS)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download original / x_").click()
    downloaded = np.asarray(Image.open(info.value.path()).convert("RGB"))
    page.wait_for_timeout(1_500)  # a rerun starts within a moment of the click
    assert page.evaluate("window.__reruns") == 0
    shown_src = page.locator('[data-testid="stMain"] [data-testid="stImage"] img').first.get_attribute("src")
    shown = np.asarray(Image.open(io.BytesIO(page.request.get(shown_src).body())).convert("RGB"))
    size = downloaded.shape[0] // 4 - 4  # the grid's upscale 4 and its 2-px padding on both sides
    assert downloaded.shape[1] == 4 * (3 * size + 8)  # three tiles in a row
    original = tile(downloaded, 4)
    difference = np.abs(original.astype(int) - tile(shown, shown.shape[0] // (size + 4)).astype(int))
    assert difference.max() <= 4  # the same picture: Streamlit serves the shown one as a JPEG (off by 1 here)
    assert original.std() > 0  # a picture, not a blank


# Records, for every download button that turns stale (a run under way has not reached it yet), whether it still
# takes clicks: its computed pointer-events at that moment
STALE_DOWNLOADS_JS = """() => {
    window.__staleDownloads = [];
    new MutationObserver(records => records.forEach(r => {
        if (r.target.dataset.stale !== 'true') return;
        r.target.querySelectorAll('[data-testid=stDownloadButton] button')
            .forEach(b => window.__staleDownloads.push(getComputedStyle(b).pointerEvents));
    })).observe(document.querySelector('[data-testid=stMain]'),
                { attributes: true, attributeFilter: ['data-stale'], subtree: true });
}"""


def test_a_download_button_takes_no_clicks_while_a_run_has_not_redrawn_it(page):
    """While 2.1 samples for a new seed its "Download all" still shows the previous seed's grid, faded: a click on
    it would hand over that grid (or a file Streamlit has dropped), so it takes none (``ui.layout.BASE_CSS``) until the
    run draws the new one, which does."""
    open_page(page, _page_named("guidance").url_path)
    page.evaluate(STALE_DOWNLOADS_JS)
    seed = page.locator('[data-testid="stMain"]').get_by_label("Seed", exact=True)
    seed.fill("4321")
    seed.press("Enter")
    page.get_by_text("seed 4321, prompt").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_app(page)
    stale = page.evaluate("window.__staleDownloads")
    assert stale and set(stale) == {"none"}, stale  # seen stale, and then unclickable
    button = page.get_by_role("button", name="Download all (one row per γ)")
    assert button.evaluate("b => getComputedStyle(b).pointerEvents") == "auto"
    with page.expect_download() as info:
        button.click()
    assert "seed4321" in info.value.suggested_filename


# The boxes of a chart's title texts and its toolbar (Plotly's mode bar), for overlaps on a phone
CHART_BOXES_JS = """c => {
    const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    return { titles: [...c.querySelectorAll('.annotation-text, .gtitle')].map(box),
             toolbar: [...c.querySelectorAll('.modebar-group')].map(box) }; }"""


def overlap(a, b) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


@pytest.mark.slow
def test_b3_schedule_titles_stand_apart_and_clear_of_the_toolbar_on_a_phone(browser, app_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=app_url, is_mobile=True,
                                  has_touch=True)
    try:
        pg = context.new_page()
        open_page(pg, _page_named("class_ddpm").url_path)
        chart = pg.locator('[data-testid="stPlotlyChart"]').first
        chart.scroll_into_view_if_needed()
        chart.hover()  # the toolbar shows
        boxes = chart.evaluate(CHART_BOXES_JS)
        chart.screenshot(path=str(SHOTS / "b3_schedule_phone.png"))
        titles = boxes["titles"]
        assert len(titles) == 3 and boxes["toolbar"], boxes
        assert not [(a, b) for i, a in enumerate(titles) for b in titles[i + 1:] if overlap(a, b)], titles
        assert not [(t, m) for t in titles for m in boxes["toolbar"] if overlap(t, m)], boxes
    finally:
        context.close()


# Elements of the main area that end right of the window: on a phone nothing may be cut off at the right edge (a
# table wider than the screen scrolls inside its own box instead; a formula wraps, ``CUT_FORMULAS_JS``; an SVG's
# insides are checked through the SVG, which clips them).
OVERFLOW_JS = """() => [...document.querySelectorAll('[data-testid=stMain] *')]
    .filter(e => e.offsetParent !== null && !e.closest('[class*=st-key-formula_], [data-testid=stTable]')
                 && !(e.ownerSVGElement)
                 && e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > window.innerWidth + 1)
    .map(e => (e.dataset.testid || e.tagName) + ': ' + (e.innerText || '').slice(0, 40))"""
CUT_LABELS_JS = """() => [...document.querySelectorAll('[data-testid=stPageLink] p, [data-testid=stSidebarNav] p')]
    .filter(p => p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1).map(p => p.innerText)"""
CUT_FORMULAS_JS = """() => [...document.querySelectorAll('[data-testid=stMain] [class*=st-key-formula_] p')]
    .filter(k => k.getBoundingClientRect().right > window.innerWidth + 1 || k.scrollWidth > k.clientWidth + 1)
    .map(k => k.innerText.slice(0, 40))"""


@pytest.mark.slow
def test_phone(browser, app_url):
    """A 390 × 844 phone: nothing cut off at the right edge (text, contents links, formulas), and choosing a page in
    the sidebar closes the sidebar, which covers the whole page there."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  base_url=app_url)
    try:
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        for path in ("", _page_named("forward").url_path, _page_named("iterative").url_path):
            open_page(pg, path)
            assert pg.evaluate(OVERFLOW_JS) == [], path
            assert pg.evaluate(CUT_LABELS_JS) == [], path
            assert pg.evaluate(CUT_FORMULAS_JS) == [], path
            screenshot(pg, f"phone-{path or 'Home'}")
        for name in ("flow_euler", "flow_hybrids", "ddpm_vs_flow"):  # worded formulas wrap too (``breakable``)
            open_page(pg, f"{name}?edition=flow")  # a section's url path is its slug
            assert pg.evaluate(CUT_FORMULAS_JS) == [], name
            screenshot(pg, f"phone-flow-{name}")
        sidebar = pg.locator('[data-testid="stSidebar"]')
        pg.locator('[data-testid="stExpandSidebarButton"]').tap()
        pg.wait_for_function("document.querySelector('[data-testid=stSidebar]').dataset.collapsed === 'false'")
        target = _page_named("guidance")
        pg.locator(f'[data-testid="stSidebarNav"] a[href$="{target.url_path}"]').tap()
        wait_for_app(pg)
        assert url_path(pg.url) == target.url_path
        pg.wait_for_function("document.querySelector('[data-testid=stSidebar]').dataset.collapsed === 'true'",
                             timeout=5_000)
        assert sidebar.bounding_box() is None or sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"] <= 1
    finally:
        context.close()


@pytest.mark.slow
def test_presentation_mode_enlarges_images_on_every_page(page):
    """The sidebar's presentation switch shows the results about twice as large (fewer side by side; sharp:
    nearest-neighbour scaling) and the text larger, and it stays on when another page is opened."""
    shown_js = ("[...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')]"
                ".map(i => i.getBoundingClientRect().width)")
    font_js = "parseFloat(getComputedStyle(document.documentElement).fontSize)"
    switch = page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]').filter(has_text="Presentation mode")
    target = _page_named("guidance")
    open_page(page, target.url_path)
    before, base_font = page.evaluate(shown_js), page.evaluate(font_js)
    switch.click()
    wait_for_app(page)
    after = page.evaluate(shown_js)
    assert len(after) == len(before) > 0
    assert all(a >= 1.8 * b for a, b in zip(after, before)), (before, after)
    assert page.evaluate(font_js) == pytest.approx(1.25 * base_font)
    assert page.evaluate(CUT_LABELS_JS) == [], "the sidebar's page names are cut off in the larger text"
    assert page.evaluate("getComputedStyle(document.querySelector('[data-testid=stMain] [data-testid=stImage] img'))"
                         ".imageRendering") == "pixelated"
    screenshot(page, f"{target.name}-presentation")
    b3 = _page_named("class_ddpm").url_path
    page.locator(f'[data-testid="stSidebarNav"] a[href$="{b3}"]').click()
    wait_for_app(page)
    assert page.url.split("?")[0].endswith(b3)
    assert page.evaluate(font_js) == pytest.approx(1.25 * base_font), "presentation mode was lost on a page change"
    assert switch.locator("input").is_checked()
    page.reload()  # a new session: the URL carries the mode (?presentation=true)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=RUN_TIMEOUT_MS)
    wait_for_app(page)
    assert "presentation=true" in page.url.lower() and switch.locator("input").is_checked(), page.url
    switch.click()
    wait_for_app(page)
    assert page.evaluate(font_js) == pytest.approx(base_font) and "presentation" not in page.url


PROJECTORS = ({"width": 1280, "height": 720}, {"width": 1920, "height": 1080})  # the lecture halls' two resolutions
# What a projector shows of a page: how far the document and the main area (Streamlit scrolls inside it) reach beyond
# their width, and every image and chart as a box in the main area's coordinates (so boxes above and below the
# fold compare); what a closed expander holds is not shown.
LAYOUT_JS = """() => {
    const main = document.querySelector('[data-testid=stMain]');
    const boxes = [...main.querySelectorAll('[data-testid=stImage] img, [data-testid=stPlotlyChart]')]
        .filter(e => e.checkVisibility() && !e.closest('details:not([open])') && e.getBoundingClientRect().width > 0)
        .map(e => { const r = e.getBoundingClientRect();
                    return {what: e.tagName === 'IMG' ? 'image ' + e.naturalWidth + ' px'
                                                      : 'chart ' + (e.innerText || '').slice(0, 30),
                            left: r.left, right: r.right, top: r.top + main.scrollTop, bottom: r.bottom + main.scrollTop}; });
    return {document_overflow: document.documentElement.scrollWidth - window.innerWidth,
            main_overflow: main.scrollWidth - main.clientWidth, boxes};
}"""


def test_a6_combining_picture_draws_every_panel_at_one_size(page):
    """Issue 27 item 6: the six panels of A6's combining rule are one picture size, and the browser must draw them so
    (Streamlit 1.67 stretched an image without a width to its wrapper, which a long caption widens: 130 to 260 px)."""
    open_page(page, _page_named("anagrams").url_path)
    widths = page.evaluate("[...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage]')]"
                           ".filter(e => /the input for|estimate|where the prompts differ/.test(e.innerText))"
                           ".map(e => e.querySelector('img').getBoundingClientRect().width)")
    assert len(widths) == 6 and max(widths) - min(widths) < 1, widths
    screenshot(page, "a6_combining_rule")


def overlapping(boxes: list[dict], tolerance: float = 1.0) -> list[tuple[str, str]]:
    """The pairs of boxes that share more than ``tolerance`` px in both directions."""
    return [(a["what"], b["what"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if min(a["right"], b["right"]) - max(a["left"], b["left"]) > tolerance
            and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > tolerance]


@pytest.fixture(scope="module")
def projector_page(browser, app_url):
    """One tab for every page's projector check: the page changes, the browser and the app stay."""
    context = browser.new_context(viewport=PROJECTORS[0], base_url=app_url)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


@pytest.mark.parametrize("app_page", PAGES, ids=[p.name for p in PAGES])
def test_presentation_mode_fits_the_projector(projector_page, app_page):
    """Issue 27 item 1: in presentation mode at 1280 × 720 and 1920 × 1080 nothing runs off the page sideways and no
    two images or charts overlap (an image enlarged for the projector ran under its neighbour's column, or off the
    right edge with half its samples). A window resize does not rerun the script, so one load serves both sizes."""
    pg = projector_page
    pg.set_viewport_size(PROJECTORS[0])
    open_page(pg, f"{app_page.url_path}?{PRESENTATION_KEY}=true")
    assert pg.locator(EXCEPTION).count() == 0, pg.locator(EXCEPTION).first.inner_text()[:2000]
    for size in PROJECTORS:
        pg.set_viewport_size(size)
        pg.wait_for_timeout(300)  # let columns and charts re-layout
        shown = pg.evaluate(LAYOUT_JS)
        where = f"{app_page.name} at {size['width']}×{size['height']}"
        assert shown["document_overflow"] <= 1 and shown["main_overflow"] <= 1, f"{where}: {shown}"
        assert overlapping(shown["boxes"]) == [], where
        screenshot(pg, f"{app_page.name}-presentation-{size['width']}")


RUNS_ON_ITS_BUTTON = {"whole_assignment"}  # the report waits for its Run button: on IF it is minutes of GPU


@pytest.mark.parametrize("app_page", [pytest.param(p, marks=() if p.name in WALKED_ALWAYS else pytest.mark.slow)
                                      for p in PAGES], ids=[p.name for p in PAGES])
def test_page_runs_and_reacts(page, app_page):
    open_page(page, app_page.url_path)
    assert url_path(page.url) == app_page.url_path
    if app_page.url_path in RUNS_ON_ITS_BUTTON:
        click_run_if_any(page)
    assert_healthy(page, f"{app_page.name} on load")
    changed = change_main_control(page)
    assert_healthy(page, f"{app_page.name} after {changed}")
    screenshot(page, app_page.name)


# --- drawing on the canvases ------------------------------------------------------------------------------------------

def _page_named(fragment: str):
    found = [p for p in PAGES if fragment in p.name]
    if not found:
        pytest.skip(f"no page named *{fragment}* in app_pages/ yet")
    return found[0]


def choose_option(page, group_label: str, option: str) -> None:
    radio = page.locator('[data-testid="stMain"] [data-testid="stRadio"]').filter(has_text=group_label).first
    radio.get_by_text(option, exact=True).click()
    wait_for_app(page)


def draw_strokes(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Freehand strokes on the drawable canvas; points are fractions (0–1) of the canvas' width and height.

    streamlit-drawable-canvas 0.13 is a v2 component: no iframe, its fabric.js canvases sit in a shadow root of the
    page (``stBidiComponentIsolated``), which Playwright's CSS locators pierce. Strokes go on the top ("upper") canvas.
    """
    canvas = page.locator('[data-testid="stMain"] canvas.upper-canvas').first
    canvas.wait_for()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()
    wait_for_app(page)


def click_run_if_any(page) -> None:
    """Press the page's primary (run) button, for pages that wait for one; the A4/A5 pages run as soon as their input
    is complete."""
    button = page.locator('[data-testid="stMain"] [data-testid="stBaseButton-primary"]')
    if button.count():
        button.first.click()
        wait_for_app(page)


def main_images(page) -> int:
    return page.locator('[data-testid="stMain"] [data-testid="stImage"]').count()


def wait_for_images(page, at_least: int = 0, at_most: int | None = None) -> None:
    """Wait until the main area shows between ``at_least`` and ``at_most`` images (a result appears or goes)."""
    js = "document.querySelectorAll('[data-testid=stMain] [data-testid=stImage]').length"
    cond = f"{js} >= {at_least}" + ("" if at_most is None else f" && {js} <= {at_most}")
    page.wait_for_function(cond, timeout=RUN_TIMEOUT_MS, polling=200)
    wait_for_app(page)


@pytest.mark.slow
def test_sdedit_on_a_drawing(page):
    target = _page_named("sdedit")
    open_page(page, target.url_path)
    choose_option(page, "Input image", "Draw")
    page.get_by_text("Draw on the canvas to continue").wait_for()
    wait_for_images(page, at_most=0)  # no input, no result: the preset digit's results are gone
    # a "7": the top bar and the diagonal
    draw_strokes(page, [[(0.25, 0.2), (0.5, 0.2), (0.75, 0.2)], [(0.75, 0.2), (0.6, 0.5), (0.45, 0.85)]])
    click_run_if_any(page)
    wait_for_images(page, at_least=2)  # one image per i_start, and the input
    assert page.locator(EXCEPTION).count() == 0
    assert page.get_by_text("Draw on the canvas to continue").count() == 0
    assert page.get_by_text("your drawing").count() >= 1, "the result is not of the drawing"
    screenshot(page, f"{target.name}-drawing")


@pytest.mark.slow
def test_inpainting_with_a_painted_mask(page):
    target = _page_named("inpainting")
    open_page(page, target.url_path)
    choose_option(page, "Mask", "paint it")
    page.get_by_text("Paint the region to regenerate").wait_for()
    wait_for_images(page, at_most=0)  # no mask, no result
    draw_strokes(page, [[(0.1, 0.15), (0.5, 0.15), (0.9, 0.15)], [(0.1, 0.3), (0.5, 0.3), (0.9, 0.3)]])
    click_run_if_any(page)
    wait_for_images(page, at_least=2)  # original · masked, and the inpaintings
    assert page.locator(EXCEPTION).count() == 0
    assert page.get_by_text("Paint the region to regenerate").count() == 0
    screenshot(page, f"{target.name}-painted-mask")


# --- DeepFloyd IF through the production loaders ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def if_app_url(tmp_path_factory):
    """A second app whose IF weights come from tiny stand-ins of the hub repositories in a snapshot folder
    (DIFFUSION_LAB_IF_DIR), run on the CPU (DIFFUSION_LAB_IF_DEVICE=cpu): the real loading path, no token, no hub."""
    from tests.tiny_if import write_tiny_snapshots

    yield from app_on_snapshots(tmp_path_factory.mktemp("if-app"), write_tiny_snapshots, "DIFFUSION_LAB_IF_DIR",
                                "DIFFUSION_LAB_IF_DEVICE")


def app_on_snapshots(tmp: Path, write_snapshots, dir_env: str, device_env: str):
    """An app (its URL, yielded) offline, reading a model's weights from the snapshot folder ``write_snapshots(folder)``
    writes, named by ``dir_env``, on the CPU by ``device_env``; prompt embeddings kept under ``tmp``."""
    with running_app(tmp, HF_HUB_OFFLINE="1", **{dir_env: str(write_snapshots(tmp / "snapshots")), device_env: "cpu"},
                     DIFFUSION_LAB_EMBEDDINGS=str(tmp / "embeddings")) as server:
        yield server.url


@pytest.mark.slow
def test_stock_pipeline_and_stage2_on_deepfloyd_if(browser, if_app_url):
    """A0 on IF as an instructor would use it: pick IF in the sidebar, one prompt, the stage-1 grid, then stage 2."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=if_app_url)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        target = _page_named("stock")
        open_page(page, target.url_path)
        page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').get_by_text("DeepFloyd IF", exact=True).click()
        wait_for_app(page)
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("DeepFloyd IF-I-XL").count() >= 1, sidebar.inner_text()[:2000]
        prompts = page.locator('[data-testid="stMain"] textarea').first
        prompts.fill("a photo of a dog")
        prompts.press("Control+Enter")
        wait_for_images(page, at_least=3)  # one column per step count (5, 20, 50)
        assert page.locator(EXCEPTION).count() == 0
        page.get_by_text("Upscale with stage 2").click()
        wait_for_images(page, at_least=4)
        assert page.locator(EXCEPTION).count() == 0
        assert page.get_by_text("Download 256 px").count() == 1
        screenshot(page, f"{target.name}-deepfloyd-if")
    finally:
        context.close()


# --- PixNerd through the production loaders -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pixnerd_app_url(tmp_path_factory):
    """An app whose PixNerd and Qwen3 come from toy-size snapshots in the released layouts (DIFFUSION_LAB_PIXNERD_DIR),
    run on the CPU (DIFFUSION_LAB_PIXNERD_DEVICE=cpu): the real loading path, no hub."""
    from lib.backends.pixnerd.hub import DEVICE_ENV, DIR_ENV
    from tests.tiny_pixnerd import write_app_snapshots

    yield from app_on_snapshots(tmp_path_factory.mktemp("pixnerd-app"), write_app_snapshots, DIR_ENV, DEVICE_ENV)


@pytest.mark.slow
def test_visualising_velocity_on_pixnerd(browser, pixnerd_app_url):
    """1.4 of the flow edition as a student of Fall 2026 would open it: choose PixNerd in the sidebar; the page shows
    the 512 × 512 sample photo's noisy inputs, both updates and the error maps, named as PixNerd's."""
    from tests.tiny_pixnerd import app_sized_label
    from ui.flow_backend import PIXNERD_CHOICE

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=pixnerd_app_url)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_page(page, "flow_velocity?edition=flow")
        page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').get_by_text(PIXNERD_CHOICE, exact=True).click()
        wait_for_app(page)
        sidebar = page.locator('[data-testid="stSidebar"]')
        active = sidebar.get_by_text(f"Active: {app_sized_label()}", exact=False)
        assert active.count() >= 1, sidebar.inner_text()[:2000]
        wait_for_images(page, at_least=2)
        assert page.locator(EXCEPTION).count() == 0
        assert page.get_by_text("the course's", exact=False).count() >= 1  # its prompt, "a high quality photo"
        screenshot(page, "flow_velocity-pixnerd")
    finally:
        context.close()


# --- the model-server backend: the front end of a hosted setup --------------------------------------------------------

def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.slow
def test_sampling_through_the_model_server_and_the_front_ends_memory(browser, tmp_path):
    """The app as a Streamlit Cloud front end would run it: every UNet call on a model server (Ray Serve, started here
    on the loopback address). A3 samples through it in the browser; the Streamlit process's resident memory stays
    well inside Community Cloud's ≈ 2.7 GB."""
    from server_util import TOKEN, ModelServerProcess

    server = ModelServerProcess("mnist-class,mnist-time", tmp_path / "model-server.log")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        server.wait_ready()
        with running_app(tmp_path, DIFFUSION_LAB_SERVER_URL=server.url, DIFFUSION_LAB_SERVER_TOKEN=TOKEN) as app:
            sample_through(context, app, server)
    finally:
        context.close()
        server.stop()


@pytest.mark.slow
def test_a_training_run_on_the_model_server_in_the_browser(browser, tmp_path):
    """B1 in the browser with a model server configured: the page offers to train on the server (the default), a short
    run submitted there shows its live progress on the page and ends with the page's usual results; the run was
    trained and stored by the server (its store holds it), not by the front end."""
    from server_util import TOKEN, ModelServerProcess

    store = tmp_path / "server-store"
    server = ModelServerProcess("mnist-class", tmp_path / "model-server.log", env={"DIFFUSION_LAB_CACHE": str(store)})
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        server.wait_ready()
        with running_app(tmp_path, DIFFUSION_LAB_SERVER_URL=server.url, DIFFUSION_LAB_SERVER_TOKEN=TOKEN) as app:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{app.url}/{_page_named('single_step').url_path}")
            page.wait_for_selector('[data-testid="stMain"] h1', timeout=RUN_TIMEOUT_MS)
            wait_for_app(page)
            place = page.locator(".st-key-train_place")
            assert place.locator("input[type=radio]").first.is_checked(), "the server is the default place"
            page.locator(".st-key-b_denoiser_short label").first.click()  # a short run: 2 batches per epoch
            wait_for_app(page)
            steps = page.locator(".st-key-b_denoiser_steps input")
            steps.fill("2")
            steps.press("Enter")
            wait_for_app(page)
            page.locator(".st-key-single_step_train").get_by_role("button", name="Train").first.click()
            try:
                page.get_by_text("Training finished:").wait_for(timeout=RUN_TIMEOUT_MS)
            except sync_api.TimeoutError:
                screenshot(page, "single_step-training-on-the-model-server-unfinished")
                raise AssertionError(page.locator('[data-testid="stMain"]').inner_text()[-3000:]) from None
            wait_for_app(page)
            assert_healthy(page, "B1 trained on the model server")
            finished = page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
            assert "Training finished: 10 steps" in finished, finished  # 5 epochs of 2 batches
            screenshot(page, "single_step-trained-on-the-model-server")
        stored = [p.name for p in store.rglob("*.safetensors") if not p.name.endswith(".resume.safetensors")]
        assert stored, f"the server stored no finished run: {sorted(p.name for p in store.rglob('*'))}"
    finally:
        context.close()
        server.stop()


def sample_through(context, app, server) -> None:
    """A3 in the browser on the model-server backend; the Streamlit process's memory afterwards."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    target = _page_named("guidance")
    page.goto(f"{app.url}/{target.url_path}")
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=RUN_TIMEOUT_MS)
    wait_for_app(page)
    page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').get_by_text("Model server", exact=True).click()
    wait_for_app(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "(model server)" in sidebar and f"Server {server.url} · healthy" in sidebar, sidebar[:2000]
    change_main_control(page)
    assert_healthy(page, "A3 on the model server")
    served = requests_count(server.url)
    assert served > 0, "no request reached the model server"
    rss = rss_bytes(app.proc.pid)
    print(f"Streamlit front-end RSS on the model-server backend: {rss / 2**20:.0f} MiB")
    assert rss < 1.5 * 2**30, f"{rss / 2**30:.2f} GiB"
    screenshot(page, f"{target.name}-model-server")


def requests_count(url: str) -> int:
    import requests

    return int(requests.get(f"{url}/health", timeout=10).json()["counters"].get("requests", 0))
