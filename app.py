"""ConVis Explorer: what a CLIP model sees in an image, concept by concept, over WordNet.

    python app.py                          # ViT-B-32 with OpenAI weights (the paper's backbone)
    python app.py --model test-tiny        # fully offline: a tiny random CLIP, for tests and demos
    python app.py --share                  # also open a public *.gradio.live link (or GRADIO_SHARE=true)

`create_demo(backend)` builds the UI without loading anything; `main()` parses the flags, loads
the default model once and launches. The method is ConVis (Giulivi & Boracchi, arXiv 2405.14563).
"""

from __future__ import annotations

try:  # ZeroGPU on Hugging Face Spaces; imported before torch initialises CUDA
    import spaces
except ImportError:
    spaces = None

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from convis.app import Backend
from convis.app.backend import model_key
from convis.app.endpoints import Endpoints
from convis.app.handlers import Handlers
from convis.app.layout import CSS, build_layout
from convis.app.uploads import Uploads

EXAMPLES = [str(p) for p in sorted((Path(__file__).resolve().parent / "assets" / "examples").glob("*.jpg"))]


def create_demo(backend: Backend, examples: Sequence[str] = EXAMPLES,
                title: str = "ConVis Explorer") -> gr.Blocks:
    """Build the app over a backend (nothing is loaded here). Queue: one model job at a time."""
    handlers, uploads, api = Handlers(backend), Uploads(backend), Endpoints(backend)
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as demo:
        c = build_layout(backend, examples)
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
        c.image.change(uploads.mark_upload, [c.image, s], None, queue=False, trigger_mode="multiple",
                       api_name="mark_upload", **ui).then(
            uploads.index_image, [c.image, s], [s, c.image, c.picture, c.status, c.top, c.tree, c.info],
            api_name="index_image", trigger_mode="always_last", **model_job)
        gr.on([c.model.input, c.vocab.input], uploads.switch_engine, [c.model, c.vocab, s],
              [s, c.model, c.vocab, c.tree, c.picture, c.status, c.top, c.info], api_name="switch_engine",
              **model_job)

        c.tree.select_node(handlers.select_node, [s], [s, c.picture, c.info, c.status],
                           api_name="select_node", **fast)
        for name, links in (("hits", c.hits), ("info", c.info), ("top", c.top)):
            links.navigate(handlers.navigate, [s], [s, c.tree, c.picture, c.info, c.status],
                           api_name=f"navigate_{name}", **fast)
        c.search.change(handlers.search, [c.search, s], [c.hits], api_name="search_ui", **fast)
        c.search.submit(handlers.search_submit, [c.search, s], [s, c.tree, c.picture, c.info, c.status],
                        api_name="search_go", **fast)
        controls = [c.style, c.cmap, c.alpha, c.exponent, c.box, c.threshold]
        gr.on([x.change for x in controls], handlers.set_view, [s, *controls], [s, c.picture, c.grid],
              api_name="set_view", **fast)
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
        a.explain.click(api.explain, [a.image, a.synset, a.style], [a.map], api_name="explain", **one_model)
        a.top_concepts.click(api.top_concepts, [a.image, a.k], [a.top], api_name="top_concepts", **one_model)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool | None = None,
           **kwargs: Any) -> Any:
    """`demo.launch` with the app's CSS and limits. share=None honours GRADIO_SHARE."""
    return demo.launch(server_name=host, server_port=port, share=share, css=CSS, max_file_size="64mb",
                       state_session_capacity=512, footer_links=["api", "gradio"], **kwargs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of `python app.py`."""
    p = argparse.ArgumentParser(description="ConVis Explorer: browse what CLIP sees, concept by concept.")
    p.add_argument("--model", default="ViT-B-32", help="open_clip model, 'arch/tag', or test-tiny (offline)")
    p.add_argument("--pretrained", default=None, help="weights tag or checkpoint file (default: the model's)")
    p.add_argument("--vocabulary", default="physical", help="physical (default), nouns, wordlist:PATH, synsets:PATH or synthetic-shapes")
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, mps")
    p.add_argument("--precision", default=os.environ.get("CONVIS_PRECISION", "auto"),
                   help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16, bf16, or int8 (CPU: ~1.5x faster "
                        "encoder, maps within r 0.99 of fp32); default $CONVIS_PRECISION or auto")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1 or GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860 or GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", help="also open a public link (or GRADIO_SHARE=true)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, start loading the default model and concept set in the background, and serve."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gpu = spaces.GPU(duration=120) if spaces is not None else None  # a no-op off ZeroGPU
    backend = Backend(model_key(args.model, args.pretrained), args.vocabulary, device=args.device, gpu=gpu,
                      precision=args.precision)
    backend.warm_up()  # the page is served at once and says what is loading; the first visitor waits less
    launch(create_demo(backend), host=args.host, port=args.port, share=True if args.share else None)


if __name__ == "__main__":
    main()
