"""Shared test setup. The environment is set before anything imports huggingface_hub or gradio."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # else every weight lookup waits ~46 s on the network
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Bank and hierarchy caches go to a private folder (not /tmp, not the user's ~/.cache).
os.environ["CONVIS_CACHE"] = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                          ".pytest_cache", "convis-cache")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip():
    """The seeded random test-tiny CLIP on CPU (32-d embeddings, 64 px input)."""
    from convis.models import load_model

    return load_model("test-tiny", device="cpu")
