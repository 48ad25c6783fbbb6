"""Shared test setup. The environment is set before anything imports huggingface_hub or gradio."""

import contextlib
import os
import shutil
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # else every weight lookup waits ~46 s on the network
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Bank, hierarchy and WordNet caches go to a private folder (not /tmp, not the user's ~/.cache),
# fresh for every run: the build paths run each time, as in CI, and the hits are tested after them.
_CACHES = Path(__file__).resolve().parents[1] / ".pytest_cache" / "convis-cache"
for _old in _CACHES.glob("run-*"):
    if time.time() - _old.stat().st_mtime > 24 * 3600:  # left behind by an interrupted run
        shutil.rmtree(_old, ignore_errors=True)
RUN_CACHE = _CACHES / f"run-{os.getpid()}"
os.environ["CONVIS_CACHE"] = str(RUN_CACHE)

import pytest  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(RUN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_clip():
    """The seeded random test-tiny CLIP on CPU (32-d embeddings, 64 px input)."""
    from convis.clip.models import load_model

    return load_model("test-tiny", device="cpu")


# ---- app fixtures (tests/test_app*.py, tests/test_browser.py) ----------------------------------
# A toy concept set: a two-parent node, a label with an apostrophe, and a node wider than a page.
APP_TOY = {
    "physical_entity.n.01": ["entity.n.01"], "object.n.01": ["physical_entity.n.01"],
    "animal.n.01": ["object.n.01"], "feline.n.01": ["animal.n.01"], "cat.n.01": ["feline.n.01"],
    "tiger.n.02": ["feline.n.01"], "pet.n.01": ["object.n.01"], "dog.n.01": ["animal.n.01", "pet.n.01"],
    "jack-o'-lantern.n.01": ["object.n.01"], "device.n.01": ["object.n.01"],
    **{f"gadget_{i:03d}.n.01": ["device.n.01"] for i in range(130)},
}


def load_app():
    """Import the repository's `app.py` (it is a script at the root, not part of the package)."""
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    import app

    return app


@pytest.fixture(scope="session")
def toy_backend():
    """An app backend over test-tiny and the toy vocabulary "toy" (no WordNet needed)."""
    from convis.app import Backend
    from convis.concepts.hierarchy import toy_hierarchy

    backend = Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)})
    assert backend.preload(), backend.startup_error
    return backend


@pytest.fixture(scope="session")
def app_server():
    """The full app (test-tiny over the real "physical" WordNet vocabulary) on a free loopback port."""

    from convis.app import Backend
    from convis.concepts.wordnet import WordNetUnavailableError

    backend = Backend("test-tiny", "physical", device="cpu")
    try:
        backend.hierarchy()
    except WordNetUnavailableError as exc:
        pytest.skip(f"WordNet is not available: {exc}")
    assert backend.preload(), backend.startup_error
    with serve(backend) as url:
        yield url


@contextlib.contextmanager
def serve(backend, store=None, **launch):
    """The full app over `backend` (and a dataset `store`, for its Dataset tab) on a free loopback port
    (`launch`: more `app.launch` flags, e.g. mcp=True); yields its URL, closes it after."""
    import socket

    app = load_app()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.create_demo(backend, store=store)
    _, url, _ = app.launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True, **launch)
    try:
        yield url.rstrip("/")
    finally:
        demo.close()
