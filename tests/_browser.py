"""What the browser tests share: Debian Chromium, its flags, the artifacts folder, small page helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CAT = str(ROOT / "assets" / "examples" / "cat.jpg")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def upload(page, path: str) -> None:
    page.set_input_files("#cv-image input[type=file]", path)


def map_src(page) -> str | None:
    img = page.locator("#cv-map img")
    return img.get_attribute("src") if img.count() else None
