"""The app as an MCP server (`launch(mcp=True)`), driven by the `mcp` package's streamable-HTTP client.

Tools are the public endpoints; a map comes back as an image; hostile files, megabyte strings
and a second CLIP job of the (shared) MCP session get the same refusals as `gradio_client` and
the UI, because tool calls go through the same queue, guard, limits and handlers.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import APP_TOY, serve
from hostile import png_header_only
from PIL import Image

mcp = pytest.importorskip("mcp", reason="needs the mcp package (requirements-dev.txt)")
gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")
from gradio_client.exceptions import AppError  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from convis.app import Backend  # noqa: E402
from convis.app.queue_guard import MESSAGE  # noqa: E402
from convis.concepts.hierarchy import toy_hierarchy  # noqa: E402
from convis.app.uploads import read_upload  # noqa: E402
from convis.image import ImageError  # noqa: E402


class GatedBackend(Backend):
    """A backend whose `index` can be held at a gate: a CLIP job that stays running while armed."""

    gate: threading.Event | None = None
    entered = threading.Event()

    def index(self, *args, **kwargs):
        if self.gate is not None:
            self.entered.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return super().index(*args, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    backend = GatedBackend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)})
    assert backend.preload(), backend.startup_error
    with serve(backend, mcp=True) as url:
        yield url, backend


def picture(tmp_path: Path) -> Path:
    """A small square noise picture (the whole picture is then the square: one quick index)."""
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
    return path


def hostile(folder: Path) -> list[Path]:
    """Four of the fault suite's files (tests/hostile.py): text, a cut JPEG, a PNG bomb, one pixel."""
    (folder / "text.jpg").write_text("this is not a picture\n" * 10)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    Image.new("RGB", (1, 1)).save(folder / "one.png")
    return [folder / "text.jpg", folder / "truncated.jpg", png_header_only(folder / "bomb.png", 40_000, 40_000),
            folder / "one.png"]


def data_url(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


@contextlib.asynccontextmanager
async def session(url: str):
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=120), trust_env=False) as http:
        async with streamable_http_client(f"{url}/gradio_api/mcp/", http_client=http) as (read, write, _):
            async with mcp.ClientSession(read, write) as s:
                await s.initialize()
                yield s


def call(url: str, tool: str, **arguments):
    async def run():
        async with session(url) as s:
            return await s.call_tool(tool, arguments)
    return asyncio.run(run())


def text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_tools_are_the_documented_endpoints_and_all_are_queued(server):
    url, _ = server

    async def run():
        async with session(url) as s:
            return (await s.list_tools()).tools

    tools = {t.name: t for t in asyncio.run(run())}
    assert set(tools) == {"search", "explain", "explain_text", "top_concepts"}, "UI events stay private"
    explain = tools["explain"].inputSchema
    assert list(explain["properties"]) == ["image", "synset", "style", "region", "method"]
    assert explain["properties"]["region"]["default"] == "whole" and explain["required"] == ["image", "synset"]
    assert "data:image/png;base64" in explain["properties"]["image"]["description"]
    assert all("Returns:" in t.description for t in tools.values()), "each says what it returns"
    # Gradio's MCP server skips the queue (and its guard) for an unqueued event: none may be.
    from gradio_client import Client

    assert set(Client(url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]) \
        == {f"/{n}" for n in tools}


def test_explain_returns_the_same_png_as_gradio_client(server, tmp_path):
    url, _ = server
    path = picture(tmp_path)
    result = call(url, "explain", image=data_url(path), synset="feline.n.01", region="centre", method="raw")
    assert not result.isError, text(result)
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 1 and images[0].mimeType == "image/png"
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(images[0].data))))
    expected = np.asarray(Image.open(gradio_client.Client(url, verbose=False).predict(
        gradio_client.handle_file(str(path)), "feline.n.01", "overlay", "centre", "raw", api_name="/explain")))
    assert got.shape == (512, 512, 3) and np.array_equal(got, expected)
    phrase = call(url, "explain_text", image=data_url(path), text="a red sports car", method="raw")
    assert not phrase.isError and [c.type for c in phrase.content][0] == "image"


def test_hostile_inputs_get_the_same_refusal_as_the_api(server, tmp_path):
    url, _ = server
    client = gradio_client.Client(url, verbose=False)
    for path in hostile(tmp_path):
        name = path.name
        with pytest.raises(ImageError) as direct:  # what the UI says of the upload (its own door)
            read_upload(str(path))
        result = call(url, "top_concepts", image=data_url(path), k=3)
        with pytest.raises(AppError) as api:
            client.predict(gradio_client.handle_file(str(path)), 3, api_name="/top_concepts")
        assert result.isError, name
        # The same handler message; MCP saves the data URL under its own file name.
        assert str(direct.value) in text(result) and str(direct.value) in str(api.value), (name, text(result))
        assert text(result).replace("file.png", name) == str(api.value), name
    long = call(url, "explain", image=data_url(picture(tmp_path)), synset="x" * 1_000_000)
    assert long.isError and text(long) == ("Bad request: synset is 1,000,000 characters long; the limit is 200. "
                                           "Send a concept name such as 'dog.n.01' or a word such as 'dog'.")
    url_input = call(url, "top_concepts", image="https://example.com/cat.jpg")
    assert url_input.isError and "does not fetch images from URLs" in text(url_input)
    bad = call(url, "explain", image=data_url(picture(tmp_path)), synset="cat.n.01", method="saliency")
    assert bad.isError and "unknown method 'saliency'; use one of grid, raw, stochastic, gamma" in text(bad)


def test_a_second_clip_job_of_the_mcp_session_is_refused_while_one_runs(server, tmp_path):
    url, backend = server
    image = data_url(picture(tmp_path))

    async def run():
        async with session(url) as s:
            backend.entered.clear()
            backend.gate = threading.Event()
            try:
                first = asyncio.create_task(s.call_tool("top_concepts", {"image": image, "k": 2}))
                assert await asyncio.to_thread(backend.entered.wait, 60), "the first job never started"
                second = await s.call_tool("explain", {"image": image, "synset": "cat.n.01"})
            finally:
                backend.gate.set()
                backend.gate = None
            return await first, second

    first, second = asyncio.run(run())
    assert not first.isError and len(ast.literal_eval(text(first))) == 2  # Gradio sends the list's repr
    assert second.isError and MESSAGE in text(second), text(second)
    assert "MCP tool calls to this server share one session" in text(second)
    assert not call(url, "search", query="fel", limit=1).isError, "the server serves on"
