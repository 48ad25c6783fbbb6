"""The app is live while it indexes (Chromium, with an encoder slowed to CPU-like speed).

A map and the top concepts appear after the first coarse stage, a concept clicked during
indexing gets its partial map at once, and the final map replaces it. Timings go to
test-artifacts/progressive.json.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from conftest import serve
from _browser import ARGS, ARTIFACTS, CAT, CHROMIUM, map_src, sync_api, upload

from convis.clip.models import Clip

pytestmark = [pytest.mark.browser, pytest.mark.wordnet, pytest.mark.slow]
DELAY_S = 0.015  # per window: the whole cat.jpg (1,034 windows) takes > 15 s, its first stage (48) < 1 s


@dataclasses.dataclass(frozen=True, eq=False)
class SlowClip(Clip):
    """test-tiny with a sleep per image, so indexing lasts long enough to be watched."""

    delay: float = DELAY_S

    def encode_image(self, x):
        time.sleep(self.delay * len(x))
        return super().encode_image(x)


@pytest.fixture(scope="module")
def slow_server():
    from convis.app import Backend
    from convis.concepts.wordnet import WordNetUnavailableError

    class SlowBackend(Backend):
        def engine(self, model, vocabulary, progress=None):
            e = super().engine(model, vocabulary, progress)
            fields = {f.name: getattr(e.clip, f.name) for f in dataclasses.fields(Clip)}
            return dataclasses.replace(e, clip=SlowClip(**fields))

    backend = SlowBackend("test-tiny", "physical", device="cpu")
    try:
        backend.hierarchy()
    except WordNetUnavailableError as exc:
        pytest.skip(f"WordNet is not available: {exc}")
    backend.warm_up()
    with serve(backend) as url:
        yield url, backend


def status(page) -> str:
    return page.locator("#cv-status").inner_text()


def test_maps_and_top_concepts_before_indexing_ends_then_the_final_map(slow_server):
    url, backend = slow_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("#cv-tree li[role=treeitem]")
        deadline = time.monotonic() + 120  # the start-up load (a fresh cache encodes T's glosses)
        while backend.warming.state == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert backend.warming.state == "ready"
        page.wait_for_function("() => !document.querySelector('#cv-loading')"
                               " || !document.querySelector('#cv-loading').innerText.includes('Starting')")
        ARTIFACTS.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        upload(page, CAT)
        # Stage 1: a map and a top-concepts list, while the status says indexing goes on.
        page.wait_for_function("() => document.querySelector('#cv-status').innerText.includes('stage 1 of 4')"
                               " && document.querySelector('#cv-map img')")
        first_map_s = time.perf_counter() - t0
        assert "indexed" not in status(page)
        tops = page.locator("#cv-top button[data-synset]")
        assert tops.count() >= 5
        page.screenshot(path=str(ARTIFACTS / "progressive-1-first-stage.png"), full_page=True)
        # Click another top concept during indexing: its partial map comes at once.
        pick = tops.nth(3).get_attribute("data-synset")
        before = map_src(page)
        tops.nth(3).click()
        page.wait_for_function(
            "s => { const i = document.querySelector('#cv-map img'); return i && i.getAttribute('src') !== s }",
            arg=before)
        page.wait_for_function(f"() => document.querySelector('#cv-info').innerText.includes("
                               f"{json.dumps(pick.split('.')[0].replace('_', ' '))})")
        partial = map_src(page)
        assert "indexed" not in status(page), "the click was answered from the partial index"
        clicked_s = time.perf_counter() - t0
        page.screenshot(path=str(ARTIFACTS / "progressive-2-click-during-indexing.png"), full_page=True)
        # The final map replaces the partial one; the selection is kept.
        page.wait_for_function("() => document.querySelector('#cv-status').innerText.includes('indexed')")
        final_s = time.perf_counter() - t0
        page.wait_for_function(
            "s => { const i = document.querySelector('#cv-map img'); return i && i.getAttribute('src') !== s }",
            arg=partial)
        assert pick.split(".")[0].replace("_", " ") in page.locator("#cv-info").inner_text()
        page.screenshot(path=str(ARTIFACTS / "progressive-3-final.png"), full_page=True)
        browser.close()
    report = {"upload_to_first_map_s": round(first_map_s, 2), "click_answered_at_s": round(clicked_s, 2),
              "upload_to_final_map_s": round(final_s, 2), "delay_per_window_s": DELAY_S,
              "warm_up_s": round(backend.warming.seconds, 2)}
    (ARTIFACTS / "progressive.json").write_text(json.dumps(report, indent=2))
    print("progressive app:", report)  # the times are reported; the stages are asserted above
