"""HTML of the side panels (synset details, search hits, top concepts). Every text is escaped here.

Each concept is a ``<button data-synset=...>`` and a phrase a ``<button data-phrase=...>``:
`ConceptLinks` turns a click into ``navigate``.
"""

from __future__ import annotations

from html import escape

from convis.concepts.hierarchy import Hierarchy


def _link(name: str, text: str | None = None) -> str:
    return (f'<button type="button" class="cvl-link" data-synset="{escape(name)}" '
            f'title="{escape(name)}">{escape(text if text is not None else _label(name))}</button>')


def phrase_button(text: str, label: str | None = None) -> str:
    """A button that maps a free-text phrase (``navigate`` with ``evt.phrase``)."""
    label = label or "Map the phrase \u201c" + text + "\u201d"
    return (f'<button type="button" class="cvl-link cvl-phrase" data-phrase="{escape(text)}">'
            f"{escape(label)}</button>")


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


def search_html(h: Hierarchy | None, query: str, hits: list[str], hint: tuple[str, str] | None = None) -> str:
    """Search results as a clickable list, and "map this phrase" when no concept matches.

    `hint` is (WordNet synset, its nearest hypernym in T) for a name WordNet has but T lacks.
    """
    query = query.strip()
    if not query or h is None:
        return ""
    word = hint[0].partition(".")[0].replace("_", " ") if hint else query  # "tabby.n.01" -> "tabby"
    phrase = f'<p class="cvl-muted">{phrase_button(word)} (free text: how CLIP ranks it among T)</p>'
    if not hits:
        said = f'<p class="cvl-empty">No concept of {escape(h.vocabulary)} matches {escape(query)}.</p>'
        if hint:
            said = (f'<p class="cvl-empty cvl-hint"><code>{escape(hint[0])}</code> is in WordNet but not in '
                    f'{escape(h.vocabulary)}; its nearest hypernym here is {_link(hint[1], hint[1])}.</p>')
        return said + phrase
    items = "".join(f'<li>{_link(n, n)}<span class="cvl-muted">{offset_id(h, n)}</span>'
                    f'<span class="cvl-gloss-sm">{escape(h.gloss(n))}</span></li>' for n in hits)
    more = phrase if len(query.split()) > 1 else ""  # a several-word query may mean the phrase itself
    return f'<ul class="cvl-list" aria-label="search results">{items}</ul>{more}'


def _context(names: tuple[str, ...] | list[str]) -> str:
    if not names:
        return ""
    return ('<span class="cvl-context">in ' + ' <span class="cvl-sep">\u2039</span> '.join(
        _link(n) for n in names) + "</span>")


def top_html(h: Hierarchy | None, top: list[tuple]) -> str:
    """The index's top concepts, best first, with a bar per score.

    Entries are (synset, score) or (synset, score, context): a chain of single-child ancestors
    shown once as its most specific concept, the ancestors (nearest first) as context.
    """
    if h is None or not top:
        return '<p class="cvl-empty">Upload an image to see which concepts CLIP finds in it.</p>'
    best = max(t[1] for t in top) or 1.0
    items = "".join(
        f'<li>{_link(t[0], t[0])}<span class="cvl-muted">{t[1]:.2f}</span>'
        f'<span class="cvl-gloss-sm">{_context(t[2] if len(t) > 2 else ())} {escape(h.gloss(t[0]))}</span>'
        f'<span class="cvl-bar" style="width:{max(2.0, 100 * t[1] / best):.0f}%"></span></li>'
        for t in top)
    return ('<p class="cvl-muted">Concepts this image shows most (score: how unlikely the concept\'s '
            "ranks would be by chance, in nats), each once as its most specific concept, its ancestors "
            "as context. Click one to see its map.</p>"
            f'<ol class="cvl-list">{items}</ol>')


def phrase_html(text: str, nearest: list[tuple[str, float]]) -> str:
    """A phrase's panel: what its map is, and its nearest concepts of T (text to text), clickable."""
    items = "".join(f'<li>{_link(n, n)}<span class="cvl-muted">cosine {c:.2f}</span></li>'
                    for n, c in nearest)
    return (f'<div class="cvl-title">\u201c{escape(text)}\u201d <span class="cvl-muted">free text</span>'
            '</div><p class="cvl-gloss">Its map: for each window, how many concepts of T CLIP prefers to '
            "the phrase (its rank among T plus the phrase), accumulated like a leaf concept's rank. No new "
            'image pass.</p><p class="cvl-muted">Nearest concepts of T (text to text), click one to find it '
            f'in the tree:</p><ol class="cvl-list" aria-label="nearest concepts">{items}</ol>')
