"""ConVis Explorer: what a CLIP model sees in an image, concept by concept, over WordNet.

    python app.py                          # ViT-B-32 with OpenAI weights (the paper's backbone)
    python app.py --model test-tiny        # fully offline: a tiny random CLIP, for tests and demos
    python app.py --share                  # also open a public *.gradio.live link (or GRADIO_SHARE=true)
    python app.py --allow-large            # also offer `nouns` and ViT-L models (give it 16 GB of memory or more)
    python app.py --mcp                    # also serve the API as MCP tools (or CONVIS_MCP=1)
    python app.py --store STORE            # a Dataset tab over a store made by `convis index`

`create_demo(backend)` builds the UI without loading anything; `main()` parses the flags, loads
the default model once and launches. The method is ConVis (Giulivi & Boracchi, arXiv 2405.14563).
"""

from __future__ import annotations

try:  # ZeroGPU on Hugging Face Spaces; imported before torch initialises CUDA
    import spaces
except ImportError:
    spaces = None

import argparse
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

import convis.eval  # noqa: F401 - registers the synthetic-shapes model and vocabulary (offline demo)
from convis.app import Backend
from convis.app.entry import model_key
from convis.app.dataset import DatasetView
from convis.app.endpoints import Endpoints
from convis.app.handlers import Handlers
from convis.app.layout import CSS, build_layout
from convis.app.links import COPY_LINK_JS, FOLLOW_JS, Finder, Links, finder
from convis.app.methods import Methods
from convis.app.queue_guard import one_job_per_session
from convis.app.uploads import Uploads
from convis.cli.flags import add_engine_args
from convis.config import env_flag
from convis.errors import UserError
from convis.store.store import Store

QUEUE_SIZE = 64  # jobs waiting in the whole app; more get "queue full" at once
EXAMPLES = [str(p) for p in sorted((Path(__file__).resolve().parent / "assets" / "examples").glob("*.jpg"))]


def create_demo(backend: Backend, examples: Sequence[str] = EXAMPLES, title: str = "ConVis Explorer",
                queue_size: int = QUEUE_SIZE, find: Finder | None = None, store: Store | None = None) -> gr.Blocks:
    """Build the app over a backend (nothing is loaded here).

    One queue for all work, nobody skips it: `api_open=False` refuses `POST /gradio_api/run/...`,
    CLIP jobs run one at a time in the process and at most one waits per session (MCP tool calls
    come through the same queue). `find` looks up the picture a link names (default: the
    backend's index cache, then the store). `store`: a dataset store (`convis index`) for the
    Dataset tab and `/dataset_search`. Only the API endpoints are public: they are also the MCP tools.
    """
    handlers, uploads, api = Handlers(backend), Uploads(backend), Endpoints(backend)
    dataset = DatasetView(backend, store) if store is not None else None
    methods, view_links = Methods(backend), Links(backend, find or finder(backend, dataset and dataset.find))
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as demo:
        c = build_layout(backend, examples, dataset.describe() if dataset else None)
        s = c.session
        ui = {"api_visibility": "private", "show_progress": "hidden"}
        # Redraws from an index: cheap, so several may run; a newer click replaces a pending one.
        fast = {**ui, "trigger_mode": "always_last", "concurrency_id": "render", "concurrency_limit": 4}
        # CLIP forwards: one at a time in the whole process (one CPU or GPU), with a progress bar on the
        # upload, not on the map: the map is redrawn after each indexing stage and must stay visible.
        model_job = {"api_visibility": "private", "concurrency_id": "model", "concurrency_limit": 1,
                     "show_progress_on": [c.image]}
        # `mark_upload` runs unqueued at once and tells a running index job to stop at its next window
        # batch; the newer upload's job then runs (always_last keeps only the latest).
        drawn = []  # every event that redraws the map; each is followed by `methods.extras`
        drawn.append(c.image.change(uploads.mark_upload, [c.image, s], None, queue=False,
                                    trigger_mode="multiple", api_name="mark_upload", **ui).then(
            uploads.index_image, [c.image, s], [s, c.image, c.picture, c.status, c.top, c.tree, c.info],
            api_name="index_image", trigger_mode="always_last", **model_job))
        drawn.append(gr.on([c.model.input, c.vocab.input], uploads.switch_engine, [c.model, c.vocab, s],
                           [s, c.model, c.vocab, c.tree, c.picture, c.status, c.top, c.info],
                           api_name="switch_engine", **model_job))
        drawn.append(c.region.input(methods.set_region, [c.region, s],
                                    [s, c.picture, c.status, c.top, c.tree, c.info], api_name="set_region",
                                    **model_job))

        selected = len(drawn)  # from here to `controls`: a new selection (the Dataset tab follows it)
        drawn.append(c.tree.select_node(handlers.select_node, [s], [s, c.picture, c.info, c.status],
                                        api_name="select_node", **fast))
        for name, links in (("hits", c.hits), ("info", c.info), ("top", c.top)):
            drawn.append(links.navigate(handlers.navigate, [s], [s, c.tree, c.picture, c.info, c.status],
                                        api_name=f"navigate_{name}", **fast))
        c.search.change(handlers.search, [c.search, s], [c.hits], api_name="search_ui", **fast)
        drawn.append(c.search.submit(handlers.search_submit, [c.search, s],
                                     [s, c.tree, c.picture, c.info, c.status], api_name="search_go", **fast))
        selections = drawn[selected:]
        controls = [c.style, c.cmap, c.alpha, c.exponent, c.box, c.threshold]
        drawn.append(gr.on([x.change for x in controls], handlers.set_view, [s, *controls],
                           [s, c.picture, c.grid], api_name="set_view", **fast))
        drawn.append(gr.on([c.method.input, c.raw.input], methods.set_method, [c.method, c.raw, s],
                           [s, c.picture, c.status], api_name="set_method", **fast))
        # A link opened: its view, when the server still holds the picture's index.
        restored = [s, c.model, c.vocab, c.region, c.tree, c.picture, c.info, c.top, c.status]
        drawn.append(demo.load(view_links.restore, [s], restored, api_name="restore_link", **fast))
        if dataset is not None:
            drawn.append(_wire_dataset(dataset, c, uploads, selections, model_job))
        for i, event in enumerate(drawn):  # the raw map beside, the map's caption, a stochastic request,
            # then the view's link for the address bar (reads the session only: no queue)
            event.then(methods.extras, [s], [c.raw_map, c.picture, c.request], api_name=f"extras_{i}", **fast
                       ).then(view_links.query, [s], [c.link_query], queue=False, api_name=f"link_{i}", **ui)
        # In the browser only (no Python): the address follows the view; Copy link copies it.
        c.link_query.change(None, [c.link_query], None, js=FOLLOW_JS, api_name="follow_link", **ui)
        c.copy_link.click(None, [c.link_query], [c.link], js=COPY_LINK_JS, api_name="copy_link", **ui)
        # The stochastic map replaces the picture only at its end: its progress shows on the map.
        c.request.change(methods.run_stochastic, [s], [s, c.picture, c.status], api_name="stochastic",
                         trigger_mode="always_last", **{**model_job, "show_progress_on": [c.picture]})
        c.stop.click(methods.stop, [s], [c.status, c.picture], queue=False, api_name="stop", **ui)
        compare_out = [s, c.compare, c.grid]
        c.compare.input(handlers.set_compare, [c.compare, s], compare_out, api_name="compare", **fast)
        c.add.click(handlers.compare_add, [s], compare_out, api_name="compare_add", **fast)
        c.kids.click(handlers.compare_children, [s], compare_out, api_name="compare_children", **fast)
        c.clear.click(handlers.compare_clear, [s], compare_out, api_name="compare_clear", **fast)
        c.export.click(handlers.export, [s], [c.files], api_name="export", **fast)

        def warm_status() -> tuple:  # what the start-up load is doing; the timer stops once it is done
            w = backend.warming
            text = w.describe(backend.startup_error) if w else ""
            return gr.update(value=text, visible=bool(text)), gr.Timer(active=bool(w and w.state == "loading"))

        demo.load(warm_status, None, [c.loading, c.loading_timer], queue=False, api_visibility="private")
        c.loading_timer.tick(warm_status, None, [c.loading, c.loading_timer], queue=False,
                             api_visibility="private", show_progress="hidden")

        a, one_model = c.api, {"concurrency_id": "model", "concurrency_limit": 1}
        gr.api(api.search, api_name="search", concurrency_limit=None)
        a.explain.click(api.explain, [a.image, a.synset, a.style, a.region, a.method], [a.map],
                        api_name="explain", **one_model)
        a.explain_text.click(api.explain_text, [a.image, a.text, a.style, a.region, a.method], [a.map],
                             api_name="explain_text", **one_model)
        a.top_concepts.click(api.top_concepts, [a.image, a.k, a.region], [a.top], api_name="top_concepts",
                             **one_model)
    demo.queue(default_concurrency_limit=1, max_size=queue_size, api_open=False)
    one_job_per_session(demo, "model")
    backend.disk.attach(demo)  # its uploads and pictures count in --cache-mib, from the first request
    return demo


def _wire_dataset(d: DatasetView, c: Any, uploads: Uploads, selections: list[Any], model_job: dict) -> Any:
    """The Dataset tab's events and `/dataset_search`; returns the gallery click (it redraws Explore)."""
    ds, s = c.dataset, c.session
    shown = [s, ds.gallery, ds.status, ds.switch]
    job = {**model_job, "show_progress_on": [ds.status]}  # one job at a time; the gallery fills, unhidden
    ds.show.click(d.show, [ds.k, s], shown, api_name="dataset_show", **job)
    ds.k.release(d.show, [ds.k, s], shown, api_name="dataset_k", **job)
    ds.tab.select(d.opened, [s, gr.State(True)], [s], queue=False, api_visibility="private").then(
        d.follow, [ds.k, s], shown, api_name="dataset_tab", **job)
    ds.explore_tab.select(d.opened, [s, gr.State(False)], [s], queue=False, api_visibility="private")
    for event in selections:  # a concept picked in the tree (or a phrase) while the tab is open
        event.then(d.follow, [ds.k, s], shown, api_name=None, **job)
    # Switch: the store's model and concept set in the selectors, loaded as a user's switch is, then the hits.
    ds.switch.click(d.target, None, [c.model, c.vocab], queue=False, api_visibility="private").then(
        uploads.switch_engine, [c.model, c.vocab, s], [s, c.model, c.vocab, c.tree, c.picture, c.status, c.top,
                                                         c.info], **model_job).then(d.show, [ds.k, s], shown, **job)
    # MCP names a tool after its function (not its api_name): the function is named as the endpoint.
    gr.api(d.dataset_search, api_name="dataset_search", concurrency_id="model", concurrency_limit=1)
    return ds.gallery.select(d.open, [s], [s, c.main_tabs, c.region, c.picture, c.status, c.top, c.tree, c.info],
                             api_name="dataset_open", **model_job)


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool | None = None,
           mcp: bool | None = None, **kwargs: Any) -> Any:
    """`demo.launch` with the app's CSS and limits (`main` reads GRADIO_SHARE with `env_flag`); mcp=True
    also serves the public endpoints as MCP tools at /gradio_api/mcp/ (None honours GRADIO_MCP_SERVER)."""
    return demo.launch(server_name=host, server_port=port, share=share, css=CSS, max_file_size="32mb",
                       state_session_capacity=512, footer_links=["api", "gradio"], mcp_server=mcp, **kwargs)


def _mib(text: str) -> int:
    """A budget in MiB: a whole number of at least 1 (0 would hold nothing and thrash)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number of MiB") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} MiB holds nothing; give at least 1")
    return value


def _env_mib(p: argparse.ArgumentParser, name: str, default: int) -> int:
    """The budget an environment variable sets, or `default`; a bad value stops with the variable's name."""
    try:
        return _mib(os.environ.get(name) or str(default))
    except argparse.ArgumentTypeError as exc:
        p.error(f"{name}: {exc}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of `python app.py`."""
    p = argparse.ArgumentParser(description="ConVis Explorer: browse what CLIP sees, concept by concept.")
    add_engine_args(p)
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1 or GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860 or GRADIO_SERVER_PORT)")
    try:
        share, large, mcp = env_flag("GRADIO_SHARE"), env_flag("CONVIS_ALLOW_LARGE"), env_flag("CONVIS_MCP")
    except UserError as exc:
        p.error(str(exc))
    p.add_argument("--share", action="store_true", default=share,
                   help="also open a public link (or GRADIO_SHARE=true)")
    p.add_argument("--allow-large", action="store_true", default=large,
                   help="also offer the nouns vocabulary and ViT-L models (or CONVIS_ALLOW_LARGE=1); off by "
                        "default: a public server must hold what any visitor can load")
    p.add_argument("--index-mib", type=_mib, default=None,
                   help="memory for cached image indexes and stochastic maps, shared by all users, MiB "
                        "(default 1024)")
    p.add_argument("--cache-mib", type=_mib, default=None,
                   help="disk for this app's files in Gradio's cache folder (uploads, pictures, downloads), MiB; the oldest "
                        "files go first (default 2048)")
    p.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="jobs that may wait in the queue")
    p.add_argument("--store", default=os.environ.get("CONVIS_STORE") or None,
                   help="a dataset store made by `convis index` (or CONVIS_STORE): adds the Dataset tab and "
                        "/dataset_search")
    p.add_argument("--mcp", action="store_true", default=mcp,
                   help="also serve /search, /explain, /explain_text, /top_concepts (and /dataset_search) as MCP tools at "
                        "/gradio_api/mcp/ (or CONVIS_MCP=1; needs the mcp package)")
    args = p.parse_args(argv)
    # The variables are read only when the flag is not given (a bad one must not block --help or the flag).
    args.index_mib = args.index_mib or _env_mib(p, "CONVIS_INDEX_MIB", 1024)
    args.cache_mib = args.cache_mib or _env_mib(p, "CONVIS_CACHE_MIB", 2048)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, start loading the default model and concept set in the background, and serve."""
    args = parse_args(argv)
    if args.mcp and importlib.util.find_spec("mcp") is None:  # Gradio would only print it and serve on
        raise SystemExit("--mcp (CONVIS_MCP=1) needs the mcp package: pip install -e '.[mcp]' (or 'gradio[mcp]')")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gpu = spaces.GPU(duration=120) if spaces is not None else None  # a no-op off ZeroGPU
    backend = Backend(model_key(args.model, args.pretrained), args.vocabulary, device=args.device, seek=args.seek,
                      precision=args.precision, gpu=gpu, allow_large=args.allow_large,
                      max_index_bytes=args.index_mib << 20, max_cache_bytes=args.cache_mib << 20)
    try:
        store = Store.open(args.store) if args.store else None
    except UserError as exc:
        raise SystemExit(f"--store {args.store}: {exc}") from None
    backend.warm_up()  # the page is served at once and says what is loading; the first visitor waits less
    launch(create_demo(backend, queue_size=args.queue_size, store=store), host=args.host, port=args.port,
           share=args.share,
           mcp=True if args.mcp else None)


if __name__ == "__main__":
    main()
