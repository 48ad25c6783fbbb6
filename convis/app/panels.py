"""HTML of the side panels (synset details, search hits, top concepts). Every text is escaped here.

Each concept is a ``<button data-synset=...>``: `ConceptLinks` turns a click into ``navigate``.
"""

from __future__ import annotations

from html import escape

from convis.hierarchy import Hierarchy


def _link(name: str, text: str | None = None) -> str:
    return (f'<button type="button" class="cvl-link" data-synset="{escape(name)}" '
            f'title="{escape(name)}">{escape(text if text is not None else _label(name))}</button>')


def _label(name: str) -> str:
    return name.partition(".")[0].replace("_", " ")


def offset_id(h: Hierarchy, name: str) -> str:
    """WordNet's "n02084071" id of a noun synset."""
    return f"n{int(h.offsets[h.index(name)]):08d}"


def valid_path(h: Hierarchy, path: list[str] | None, name: str) -> list[str]:
    """`path` if it is a root-to-`name` chain of parent links in `h`, else the first-parent path."""
    ok = (bool(path) and path[-1] == name and all(p in h.parents(c) for p, c in zip(path, path[1:]))
          and not h.parents(path[0]))
    return list(path) if ok else h.path_to_root(name)


def info_html(h: Hierarchy | None, name: str | None, path: list[str] | None = None) -> str:
    """Gloss, lemmas, hypernym path as breadcrumbs (the tree route when given), other parents, children."""
    if h is None or not name:
        return '<p class="cvl-empty">Pick a concept in the tree, search for one, or click a top concept.</p>'
    path = valid_path(h, path, name)
    crumbs = '<span class="cvl-sep">\u203a</span>'.join([_link(p) for p in path[:-1]]
                                                         + [f"<strong>{escape(_label(name))}</strong>"])
    parents = h.parents(name)
    kids = h.children(name)
    parts = [
        f'<nav class="cvl-crumbs" aria-label="hypernym path">{crumbs}</nav>',
        f'<div class="cvl-title">{escape(_label(name))} <code>{escape(name)}</code> '
        f'<span class="cvl-muted">{offset_id(h, name)}</span></div>',
        f'<p class="cvl-gloss">{escape(h.gloss(name))}</p>',
        f'<p class="cvl-muted">Lemmas: {escape(", ".join(l.replace("_", " ") for l in h.lemmas(name)))}</p>',
    ]
    others = [p for p in parents if p != path[-2]] if len(path) > 1 else parents
    if others:
        parts.append('<p class="cvl-muted">Also under: ' + ", ".join(_link(p) for p in others) + "</p>")
    if kids:
        shown = ", ".join(_link(k) for k in kids[:12])
        more = f" and {len(kids) - 12} more" if len(kids) > 12 else ""
        size = len(h.subtree(name))
        noun = "child" if len(kids) == 1 else "children"
        parts.append(f'<p class="cvl-muted">{len(kids)} {noun} ({size:,} concepts in its subtree): '
                     f"{shown}{escape(more)}</p>")
    return "\n".join(parts)


def search_html(h: Hierarchy | None, query: str, hits: list[str]) -> str:
    """Search results as a clickable list."""
    if not query.strip() or h is None:
        return ""
    if not hits:
        return f'<p class="cvl-empty">No concept matches {escape(query)!s} in {escape(h.vocabulary)}.</p>'
    items = "".join(f'<li>{_link(n, n)}<span class="cvl-muted">{offset_id(h, n)}</span>'
                    f'<span class="cvl-gloss-sm">{escape(h.gloss(n))}</span></li>' for n in hits)
    return f'<ul class="cvl-list" aria-label="search results">{items}</ul>'


def top_html(h: Hierarchy | None, top: list[tuple[str, float]]) -> str:
    """The index's top concepts, best first, with a bar per score."""
    if h is None or not top:
        return '<p class="cvl-empty">Upload an image to see which concepts CLIP finds in it.</p>'
    best = max(s for _, s in top) or 1.0
    items = "".join(
        f'<li>{_link(n, n)}<span class="cvl-muted">{s:.2f}</span>'
        f'<span class="cvl-gloss-sm">{escape(h.gloss(n))}</span>'
        f'<span class="cvl-bar" style="width:{max(2.0, 100 * s / best):.0f}%"></span></li>'
        for n, s in top)
    return ('<p class="cvl-muted">Concepts this image shows most (score: how unlikely the concept\'s '
            "ranks would be by chance, in nats). Click one to see its map.</p>"
            f'<ol class="cvl-list">{items}</ol>')
