"""The app in a real browser (Debian Chromium via Playwright): upload, tree, live maps, latency.

Screenshots and the measured click-to-map latency go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest
from _browser import ARGS, ARTIFACTS, CAT, CHROMIUM, map_src, sync_api, upload

pytestmark = [
    pytest.mark.browser,
    pytest.mark.wordnet,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian chromium at {CHROMIUM}"),
]
PE = "entity.n.01|physical_entity.n.01"  # tree rows are keyed by their path from the root
MATTER = PE + "|matter.n.03"
# In-page timer: from the click event to the `load` of the new map picture.
LATENCY_PROBE = """() => {
  window.__clickT = 0; window.__lat = [];
  document.addEventListener('click', () => { window.__clickT = performance.now(); }, true);
  const seen = new WeakSet();
  const hook = () => {
    const img = document.querySelector('#cv-map img');
    if (!img || seen.has(img)) return;
    seen.add(img);
    img.addEventListener('load', () => {
      if (window.__clickT) { window.__lat.push(performance.now() - window.__clickT); window.__clickT = 0; }
    });
  };
  new MutationObserver(hook).observe(document.body, {subtree: true, childList: true});
  hook();
}"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, app_server):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(app_server)
    page.wait_for_selector("#cv-tree li[role=treeitem]")
    yield page
    page.close()


def row(page, key: str):
    return page.locator(f'#cv-tree li[data-key="{key}"]')


def expand(page, key: str) -> None:
    """Expand a row by clicking its twisty (collapsing it first if it is open, to test both)."""
    twisty = row(page, key).locator(":scope > .cvt-row .cvt-twisty")
    if row(page, key).get_attribute("aria-expanded") == "true":
        twisty.click()
        page.wait_for_selector(f'#cv-tree li[data-key^="{key}|"]', state="detached")
    twisty.click()
    page.wait_for_selector(f'#cv-tree li[data-key^="{key}|"]')
    assert row(page, key).get_attribute("aria-expanded") == "true"


def select(page, key: str) -> str:
    """Click a row's label; wait until its map has loaded; return the map's URL."""
    before = map_src(page)
    row(page, key).locator(":scope > .cvt-row .cvt-label").click()
    page.wait_for_function(
        "s => { const i = document.querySelector('#cv-map img');"
        " return i && i.getAttribute('src') !== s && i.complete && i.naturalWidth > 0 }", arg=before)
    assert row(page, key).get_attribute("aria-selected") == "true"
    return map_src(page)


def test_upload_browse_and_live_maps(page):
    upload(page, CAT)
    page.wait_for_selector("#cv-map img")
    page.wait_for_function("() => document.querySelector('#cv-status').innerText.includes('indexed')")
    expand(page, PE)  # level 1
    expand(page, MATTER)  # level 2
    kids = page.locator(f'#cv-tree li[data-key^="{MATTER}|"]')
    first, second = (kids.nth(i).get_attribute("data-key") for i in (0, 1))
    page.evaluate(LATENCY_PROBE)
    src1 = select(page, first)
    # The info panel names the selected synset (in its <code> tag).
    sync_api.expect(page.locator("#cv-info code")).to_have_text(first.split("|")[-1])
    page.screenshot(path=str(ARTIFACTS / "browser-1-first-concept.png"), full_page=True)
    src2 = select(page, second)
    assert src1 != src2, "the map changes with the concept"
    page.screenshot(path=str(ARTIFACTS / "browser-2-second-concept.png"), full_page=True)
    for _ in range(3):  # a few more clicks for a steadier latency figure
        select(page, first)
        select(page, second)
    latencies = page.evaluate("window.__lat")
    report = {"click_to_map_ms": [round(v, 1) for v in latencies],
              "median_ms": round(statistics.median(latencies), 1),
              "max_ms": round(max(latencies), 1), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    (ARTIFACTS / "latency.json").write_text(json.dumps(report, indent=2))
    print("click-to-map latency:", report)
    assert len(latencies) == 8 and report["median_ms"] < 1500, report


def test_keyboard_search_and_breadcrumbs(page):
    focused = "document.activeElement.dataset.key"
    row(page, PE).focus()
    page.keyboard.press("ArrowRight")  # open
    page.wait_for_selector(f'#cv-tree li[data-key^="{PE}|"]')
    page.keyboard.press("ArrowDown")  # first child
    child = page.evaluate(focused)
    assert child.startswith(PE + "|")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f'#cv-tree li[data-key^="{child}|"]')
    page.keyboard.press("Enter")  # select
    label = child.split("|")[-1].split(".")[0].replace("_", " ")
    page.wait_for_function(f"() => document.querySelector('#cv-info').innerText.includes('{label}')")
    page.keyboard.press("ArrowLeft")  # collapse
    page.wait_for_selector(f'#cv-tree li[data-key^="{child}|"]', state="detached")
    page.keyboard.press("ArrowLeft")  # up to the parent
    assert page.evaluate(focused) == PE
    page.locator("#cv-search input").press_sequentially("tiger", delay=20)
    page.wait_for_selector('#cv-hits button[data-synset="tiger.n.02"]')
    best = page.locator("#cv-hits button[data-synset]").first.get_attribute("data-synset")
    page.locator("#cv-search input").press("Enter")  # goes to the best hit
    page.locator(f'#cv-tree li[data-id="{best}"][aria-selected="true"]').first.wait_for()
    page.locator('#cv-hits button[data-synset="tiger.n.02"]').click()  # or any hit
    selected = page.locator('#cv-tree li[data-id="tiger.n.02"][aria-selected="true"]')
    selected.first.wait_for()
    assert selected.first.is_visible(), "the hit is revealed in the tree"
    page.locator('#cv-info nav button[data-synset="feline.n.01"]').click()  # a breadcrumb
    page.locator('#cv-tree li[data-id="feline.n.01"][aria-selected="true"]').first.wait_for()
    assert "feline" in page.locator("#cv-info").inner_text()


def test_bad_upload_says_why_and_keeps_the_session(page, tmp_path):
    upload(page, CAT)
    page.wait_for_function("() => document.querySelector('#cv-status').innerText.includes('indexed')")
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is not a picture")
    upload(page, str(bad))
    page.wait_for_function("() => document.querySelector('#cv-status').innerText.includes('Could not use')")
    assert "cannot identify image file" in page.locator("#cv-status").inner_text()
    expand(page, PE)
    target = page.locator(f'#cv-tree li[data-key^="{PE}|"]').nth(2).get_attribute("data-key")
    assert select(page, target), "the earlier image is still explorable"
    page.set_viewport_size({"width": 420, "height": 900})  # a phone: the picture comes first
    page.screenshot(path=str(ARTIFACTS / "browser-3-narrow.png"), full_page=True)
    assert page.locator("#cv-map").bounding_box()["y"] < page.locator("#cv-tree").bounding_box()["y"]


def test_tree_labels_keep_one_size_at_every_depth(page):
    """Gradio's `.prose ul ul { font-size: 90% }` must not shrink nested rows (0.9x per level)."""
    page.locator("#cv-search input").fill("dog.n.01")
    page.locator("#cv-search input").press("Enter")  # reveals dog, many levels down
    dog = page.locator('#cv-tree li[data-id="dog.n.01"][aria-selected="true"]').first
    dog.wait_for()
    level = int(dog.get_attribute("aria-level"))
    assert level >= 9, f"dog.n.01 is at depth {level - 1}; the test needs depth 8 or more"
    size = ("el => { const s = getComputedStyle(el);"
            " return [parseFloat(s.fontSize), el.getBoundingClientRect().left]; }")
    top_size, top_left = row(page, "entity.n.01").locator(":scope > .cvt-row .cvt-label").evaluate(size)
    deep_size, deep_left = dog.locator(":scope > .cvt-row .cvt-label").evaluate(size)
    assert top_size >= 12 and deep_size == top_size, (top_size, deep_size)
    # The indent is the widget's own (16 px a level), not the theme's nested-list padding on top.
    assert abs((deep_left - top_left) - 16 * (level - 1)) <= 2, (deep_left - top_left, level)
    dog.scroll_into_view_if_needed()
    page.locator("#cv-tree").screenshot(path=str(ARTIFACTS / "browser-4-deep-tree.png"))


PROGRESS_PROBE = """() => {
  window.__progress = [];
  const box = document.querySelector('#cv-map');
  const look = () => { const t = box.innerText; if (/forward/i.test(t)) window.__progress.push(t); };
  new MutationObserver(look).observe(box, {subtree: true, childList: true, characterData: true});
}"""


def status_has(page, text: str) -> None:
    page.wait_for_function("t => document.querySelector('#cv-status').innerText.includes(t)", arg=text)


def caption_has(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s);"
                           " return e && e.innerText.includes(t) }", arg=[selector, text])


def natural_aspect(page, selector: str) -> float:
    """Width / height of a loaded picture (waits until it has loaded)."""
    page.wait_for_function("s => { const i = document.querySelector(s);"
                           " return i && i.complete && i.naturalHeight > 0 }", arg=selector)
    return page.locator(selector).evaluate("i => i.naturalWidth / i.naturalHeight")


def test_phrase_compare_region_stochastic_and_raw(page):
    """The issue's tour: a phrase's map, into Compare, whole picture vs centre, stochastic, raw beside."""
    upload(page, CAT)  # 451 x 300
    status_has(page, "indexed")
    status_has(page, "whole picture")
    assert abs(natural_aspect(page, "#cv-map img") - 451 / 300) < 0.02, "the whole picture is the default"
    # A phrase: no concept matches, so the search offers to map it.
    page.locator("#cv-search input").fill("a red sports car")
    page.locator('#cv-hits button[data-phrase="a red sports car"]').click()
    status_has(page, "phrase map")
    page.locator("#cv-info").get_by_text("Nearest concepts").wait_for()
    assert page.locator("#cv-info button[data-synset]").count() >= 3, "its nearest concepts, clickable"
    caption_has(page, "#cv-map", "Phrase map of the whole picture")
    page.screenshot(path=str(ARTIFACTS / "browser-5-phrase.png"), full_page=True)
    # Into Compare.
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cv-add").click()
    page.locator("#cv-grid img").wait_for()
    assert "\u201ca red sports car\u201d" in page.locator("#cv-compare").inner_text()
    # One of its nearest concepts, clicked: it opens in the tree.
    near = page.locator("#cv-info button[data-synset]").first
    name = near.get_attribute("data-synset")
    near.click()
    page.locator(f'#cv-tree li[data-id="{name}"][aria-selected="true"]').first.wait_for()
    # The paper's centre square, one click away, and back.
    page.locator("#cv-region").get_by_text("Centre square (the paper)").click()
    status_has(page, "centre square")
    page.wait_for_function("() => { const i = document.querySelector('#cv-map img');"
                           " return i && i.complete && i.naturalWidth === i.naturalHeight }")
    page.locator("#cv-region").get_by_text("Whole picture").click()
    status_has(page, "whole picture")
    # The stochastic method, with progress.
    page.evaluate(PROGRESS_PROBE)
    page.locator("#cv-method").get_by_text("Stochastic").click()
    status_has(page, "sequential CLIP forwards")
    assert page.evaluate("window.__progress.length") > 0, "the stochastic job shows its progress"
    caption_has(page, "#cv-map", "Stochastic map of the whole picture")
    page.screenshot(path=str(ARTIFACTS / "browser-6-stochastic.png"), full_page=True)
    # The raw-cosine map beside the grid map.
    page.locator("#cv-method").get_by_text("Grid (ConVis)").click()
    page.locator("#cv-rawbox input").check()
    page.locator("#cv-raw img").wait_for()
    grid_box, raw_box = page.locator("#cv-map").bounding_box(), page.locator("#cv-raw").bounding_box()
    assert raw_box["x"] >= grid_box["x"] + grid_box["width"] - 2 and abs(raw_box["y"] - grid_box["y"]) < 40
    caption_has(page, "#cv-raw", "Raw cosine (ablation) of the whole picture")
    caption_has(page, "#cv-map", "Grid map (ConVis) of the whole picture")
    page.screenshot(path=str(ARTIFACTS / "browser-7-raw-beside-grid.png"), full_page=True)


def test_stop_ends_a_running_stochastic_map(page):
    upload(page, CAT)
    status_has(page, "indexed")
    page.locator("#cv-method").get_by_text("Stochastic").click()
    page.wait_for_function("() => /\\d+\\/600 forwards/.test(document.querySelector('#cv-map').innerText)")
    page.locator("#cv-stop").click()  # unqueued: the running job stops at its next forward
    status_has(page, "Stopped the stochastic map")
    caption_has(page, "#cv-map", "the stochastic map was stopped")
    time.sleep(1)
    assert "sequential CLIP forwards" not in page.locator("#cv-status").inner_text(), "it did not finish"


LINK_BOX = "#cv-link textarea, #cv-link input"


def test_copy_link_opens_the_same_view_in_a_new_page(browser, app_server):
    from urllib.parse import parse_qs, urlparse

    context = browser.new_context(viewport={"width": 1366, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app_server)
    page.wait_for_selector("#cv-tree li[role=treeitem]")
    upload(page, CAT)
    status_has(page, "indexed")
    page.locator("#cv-region").get_by_text("Centre square (the paper)").click()
    status_has(page, "centre square")
    page.locator("#cv-search input").fill("dog.n.01")
    page.locator("#cv-search input").press("Enter")
    page.locator('#cv-tree li[data-id="dog.n.01"][aria-selected="true"]').first.wait_for()
    page.wait_for_function("() => location.search.includes('concept=dog.n.01')")  # the address follows
    page.wait_for_function("() => { const i = document.querySelector('#cv-map img');"
                           " return i && i.complete && i.naturalWidth === i.naturalHeight }")
    src = map_src(page)
    page.locator("#cv-copy-link").click()
    page.wait_for_function("s => document.querySelector(s).value.startsWith('http')", arg=LINK_BOX)
    link = page.locator(LINK_BOX).input_value()
    assert page.evaluate("navigator.clipboard.readText()") == link, "the link is on the clipboard"
    query = parse_qs(urlparse(link).query)
    assert query["concept"] == ["dog.n.01"] and query["region"] == ["centre"] and len(query["image"][0]) == 64
    page.screenshot(path=str(ARTIFACTS / "browser-8-copy-link.png"), full_page=True)

    other = context.new_page()  # a colleague opens the link
    other.set_default_timeout(30_000)
    other.goto(link)
    other.wait_for_selector("#cv-tree li[role=treeitem]")
    status_has(other, "Opened from a link")
    other.locator('#cv-tree li[data-id="dog.n.01"][aria-selected="true"]').first.wait_for()
    other.wait_for_function("s => { const i = document.querySelector('#cv-map img');"
                            " return i && i.complete && i.getAttribute('src') === s }", arg=src)
    assert other.locator("#cv-region input[value='Centre square (the paper)']").is_checked()
    other.screenshot(path=str(ARTIFACTS / "browser-9-link-opened.png"), full_page=True)

    gone = context.new_page()  # a link to a picture this server does not hold: a message, no error page
    gone.set_default_timeout(30_000)
    gone.goto(f"{app_server}/?image={'0' * 64}&concept=dog.n.01&region=whole")
    gone.wait_for_selector("#cv-tree li[role=treeitem]")
    status_has(gone, "Upload the picture again")
    gone.locator('#cv-tree li[data-id="dog.n.01"][aria-selected="true"]').first.wait_for()
    assert gone.locator(".toast-body.error").count() == 0
    context.close()
