"""Custom widgets: the lazy synset tree and clickable concept links, both `gr.HTML` subclasses, and
the image in and out (an upload passed on unopened, maps sent inline).

The tree's value is a small dict (roots, the pages of children needed to reveal a node, which
rows to open); its JavaScript (`tree.js`) keeps the expand state and asks Python for more
children through the `fetch_children` server function.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from PIL import Image

from convis.app import limits
from convis.concepts.hierarchy import Hierarchy

PAGE = 100  # children sent per request: person.n.01 has hundreds
SEP = "|"  # joins synset names into row keys; must match tree.js
_HERE = Path(__file__).resolve().parent
_LINKS_JS = """
element.addEventListener("click", (e) => {
  const b = e.target.closest("[data-synset], [data-phrase]");
  if (!b || !element.contains(b)) return;
  if (b.dataset.phrase !== undefined) trigger("navigate", {phrase: b.dataset.phrase});
  else trigger("navigate", {synset: b.dataset.synset});
});
"""


def node(h: Hierarchy, i: int) -> dict[str, Any]:
    """The JSON a tree row needs: name, label, sense, child count, gloss, parents when several."""
    name = h.ids[i]
    head, _, sense = name.partition(".")
    parents = h.parent_index[i]
    return {"id": name, "label": head.replace("_", " "), "sense": sense, "n": len(h.child_index[i]),
            "g": h.gloss(i)[:240], "p": [h.ids[p] for p in parents] if len(parents) > 1 else []}


def children_page(h: Hierarchy, synset: str, offset: int = 0, limit: int = PAGE,
                  include: str | None = None) -> dict[str, Any]:
    """One page of a node's children (sorted by name); grown to contain `include` if given."""
    kids = h.child_index[h.index(synset)]
    offset = max(0, int(offset))
    stop = offset + max(1, min(int(limit), 1000))
    if include is not None:
        stop = max(stop, kids.index(h.index(include)) + 1)
    return {"items": [node(h, c) for c in kids[offset:stop]], "total": len(kids), "offset": offset}


def tree_value(h: Hierarchy | None, reveal: str | None = None, *, error: str = "") -> dict[str, Any]:
    """Value of the tree: roots, plus the rows to open and the children to send to show `reveal`.

    With no `reveal`, a single root is opened. The node itself is selected, scrolled to, not opened.
    """
    if h is None:
        return {"vocabulary": "", "title": "", "roots": [], "error": error, "nonce": time.time_ns()}
    roots = h.roots
    path = h.path_to_root(reveal) if reveal else roots[:1] if len(roots) == 1 else []
    opened = path[:-1] if reveal else path
    kids = {p: children_page(h, p, include=c) for p, c in zip(path, path[1:])}
    kids.update({p: children_page(h, p) for p in opened if p not in kids})
    title = f"T = {h.vocabulary} \u00b7 {len(h):,} concepts \u00b7 WordNet {h.wordnet_version}"
    value = {"vocabulary": h.vocabulary, "title": title, "error": error,
             "roots": [node(h, h.index(r)) for r in roots], "kids": kids,
             "open": [SEP.join(path[: k + 1]) for k in range(len(opened))],
             "nonce": time.time_ns()}  # a fresh value even when the same node is revealed again
    if reveal:
        value.update(selected=reveal, focus=SEP.join(path))
    return value


class SynsetTree(gr.HTML):
    """A WordNet tree: expand/collapse, lazy paged children, keyboard navigation, selection.

    Events: ``select_node`` (``evt.synset`` is the clicked synset name).

    Args:
        value: a `tree_value(...)` dict.
        children_fn: the server function, named ``fetch_children`` (tree.js calls it by that name;
            see `make_fetch_children`). Not named after a component attribute, or it clobbers it.
    """

    def __init__(self, value: dict[str, Any] | None = None, *, children_fn: Callable[[dict], dict],
                 **kwargs: Any) -> None:
        super().__init__(
            value,
            html_template='<div class="cvt-head"></div><ul class="cvt-tree" role="tree" '
                          'aria-label="WordNet concepts"></ul>',
            css_template=(_HERE / "tree.css").read_text(),
            js_on_load=(_HERE / "tree.js").read_text(),
            server_functions=[children_fn],
            **kwargs,
        )


class ConceptLinks(gr.HTML):
    """Server-rendered (escaped) HTML whose buttons fire ``navigate``: ``[data-synset]`` with
    ``evt.synset``, ``[data-phrase]`` (map a free-text phrase) with ``evt.phrase``."""

    def __init__(self, value: str = "", **kwargs: Any) -> None:
        super().__init__(value, html_template="${value}", css_template=(_HERE / "links.css").read_text(),
                         js_on_load=_LINKS_JS, **kwargs)


def make_fetch_children(hierarchy_of: Callable[[str], Hierarchy | None]) -> Callable[[dict], dict]:
    """The tree's server function, bound to a vocabulary -> loaded hierarchy lookup (None if not
    loaded). It runs outside the queue, so it must never load anything and reads bounded input."""

    def fetch_children(request: dict) -> dict:
        try:
            vocabulary = limits.text(str(request.get("vocabulary") or ""), "vocabulary", limits.MAX_WORD)
            h = hierarchy_of(vocabulary)
            if h is None:
                raise ValueError(f"the concept set {vocabulary!r} is not loaded on this server")
            return children_page(h, limits.text(request["synset"], "synset"),
                                 limits.whole(request.get("offset", 0), "offset", 0, 10**6),
                                 limits.whole(request.get("limit", PAGE), "limit", 1, 1000))
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:  # bad request: say so
            return {"items": [], "total": 0, "offset": 0, "error": f"could not list children: {exc}"}

    return fetch_children


class ImageInput(gr.Image):
    """`gr.Image` that passes an uploaded file's path on unopened (use ``type="filepath"``).

    Plain `gr.Image` opens uploads with PIL before any handler runs, so a broken file fails with
    a generic error; here `convis.image.load_image` reads it and explains what is wrong.
    """

    is_template = True  # the frontend renders it as a plain Image

    def async_move_resource_to_block_cache(self, url_or_file_path: Any) -> Any:
        _refuse_url(url_or_file_path)
        return super().async_move_resource_to_block_cache(url_or_file_path)

    def move_resource_to_block_cache(self, url_or_file_path: Any) -> Any:
        _refuse_url(url_or_file_path)
        return super().move_resource_to_block_cache(url_or_file_path)

    def preprocess(self, payload: Any) -> Any:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return super().preprocess(payload)


class MapImage(gr.Image):
    """`gr.Image` for pictures drawn on every redraw: sent inline as a data URL in `format`, so no
    file per redraw piles up in Gradio's cache (its download button saves the same picture)."""

    is_template = True  # the frontend renders it as a plain Image

    def postprocess(self, value: Any) -> Any:
        if not isinstance(value, np.ndarray):
            return super().postprocess(value)
        fmt = "jpeg" if self.format in ("jpeg", "jpg") else "png"
        buf = io.BytesIO()
        Image.fromarray(value).save(buf, fmt, **({"quality": 90} if fmt == "jpeg" else {}))
        url = f"data:image/{fmt};base64,{base64.b64encode(buf.getvalue()).decode()}"
        return ImageData(url=url, orig_name=f"convis-map.{'jpg' if fmt == 'jpeg' else 'png'}",
                         mime_type=f"image/{fmt}")


def _refuse_url(path: Any) -> None:
    """Gradio fetches an input given as a URL with no size cap; a public server must not."""
    if str(path or "").lower().startswith(("http://", "https://", "//", "ftp://")):
        raise gr.Error("This server does not fetch images from URLs; download the picture and upload the "
                       "file (with gradio_client: handle_file('picture.jpg')).", print_exception=False)
