"""The app's components and where they sit; `app.create_demo` wires their events.

Concept browser on the left (search, tree, details), image and map on the right with tabs for top
concepts, display options, the compare view and downloads. Rows wrap on narrow screens, and CSS
puts the picture first on phones.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import gradio as gr

from convis.app.backend import Backend
from convis.app.limits import MAX_TEXT, public
from convis.app.maps import EXPLAIN
from convis.app.offers import offline_models
from convis.app.panels import info_html, top_html
from convis.app.session import COLORMAPS, MAX_COMPARE, METHODS, REGIONS, STYLE_LABELS, Session, View
from convis.app.widgets import ConceptLinks, ImageInput, MapImage, SynsetTree, make_fetch_children, tree_value

SESSION_TTL_S = 3600  # a tab's indexes are dropped an hour after its last action
HEADER = """# ConVis Explorer
See what a CLIP model sees in a picture, concept by concept, over the WordNet hierarchy
([ConVis](https://arxiv.org/abs/2405.14563)). Upload a photo and wait once while CLIP looks at
every window of it; then wander through the tree (`animal` \u203a `feline` \u203a `big cat`...): each
map appears at once. Or type any phrase ("a red sports car") and map it."""
CSS = """
#cv-banner { border-left: 4px solid #dc2626; padding: 6px 12px; background: rgba(220, 38, 38, .08); }
#cv-status { min-height: 2.5em; }
@media (max-width: 820px) { #cv-viewer { order: -1; } }  /* phones: the picture first, then the tree */
"""


def _banner(backend: Backend, tree_error: str) -> None:
    problem = backend.startup_error or tree_error
    offline = ", ".join(f"`{m}`" for m in offline_models())
    hint = (f" Meanwhile you can browse the concepts, or pick a model marked *works offline* in the menu ({offline}):"
            " `test-tiny/none` has random weights, to try the interface; a shipped trained model such as "
            "`synthetic-shapes` knows only its own concept set (pick it in *Concept set T* too)."
            if backend.startup_error else "")
    gr.Markdown(f"**Could not load `{backend.default_model}` over *{backend.default_vocabulary}*.** "
                f"{problem}{hint}" if problem else "", visible=bool(problem), elem_id="cv-banner")


def _tabs(hierarchy: object) -> SimpleNamespace:
    view = View()
    with gr.Tabs():
        with gr.Tab("What CLIP sees"):
            top = ConceptLinks(top_html(hierarchy, []), elem_id="cv-top")
        with gr.Tab("Display"):
            style = gr.Radio(list(STYLE_LABELS), value="Overlay", label="Style", elem_id="cv-style")
            with gr.Row():
                cmap = gr.Dropdown(list(COLORMAPS), value=view.cmap, label="Colormap")
                alpha = gr.Slider(0, 1, value=view.alpha, step=0.05, label="Overlay opacity")
                exponent = gr.Slider(1, 30, value=view.exponent, step=1,
                                     label="White-blend exponent (paper: 10)")
            with gr.Row():
                box = gr.Checkbox(value=view.box, label="Box around the strongest region")
                threshold = gr.Slider(0, 1, value=view.threshold, step=0.05, label="Box / mask threshold")
        with gr.Tab("Compare"):
            compare = gr.Dropdown([], value=[], multiselect=True, allow_custom_value=True,
                                  max_choices=MAX_COMPARE, elem_id="cv-compare",
                                  label=f"Concepts or phrases side by side, grid maps (up to {MAX_COMPARE})")
            with gr.Row():
                add = gr.Button("Add the selected concept or phrase", size="sm", elem_id="cv-add")
                kids = gr.Button("Its children, strongest first", size="sm")
                clear = gr.Button("Clear", size="sm")
            grid = MapImage(label="Compare", format="jpeg", interactive=False, elem_id="cv-grid")
        with gr.Tab("Download"):
            export = gr.Button("Prepare PNG, map (NPY) and settings (JSON)", elem_id="cv-export")
            files = gr.File(label="Files", file_count="multiple", interactive=False)
    return SimpleNamespace(top=top, style=style, cmap=cmap, alpha=alpha, exponent=exponent, box=box,
                           threshold=threshold, compare=compare, add=add, kids=kids, clear=clear, grid=grid,
                           export=export, files=files)


def _methods() -> SimpleNamespace:
    """Which map: method, the raw-cosine map beside it, the region; what each map is."""
    with gr.Row(equal_height=False):
        method = gr.Radio(list(METHODS), value=next(iter(METHODS)), label="Map", elem_id="cv-method")
        region = gr.Radio(list(REGIONS), value=next(iter(REGIONS)), label="Region mapped",
                          elem_id="cv-region")
    with gr.Row(equal_height=True):
        raw = gr.Checkbox(value=False, label="Show the raw-cosine map (ablation) beside the map",
                          elem_id="cv-rawbox", scale=4)
        stop = gr.Button("Stop the stochastic map", size="sm", elem_id="cv-stop", scale=1, min_width=120)
    with gr.Accordion("What each map is", open=False, elem_id="cv-explain"):
        lines = (f"- **{text.split(':')[0]}**:{text.partition(':')[2]}" for text in EXPLAIN.values())
        gr.Markdown("\n".join(lines)
                    + "\n- **Whole picture** maps the photo at its own aspect ratio (short side 224, "
                    "windows over the whole rectangle); **centre square** is the paper's 224 x 224 crop.")
    request = gr.Number(value=0, visible=False, elem_id="cv-stoch-request")  # starts a stochastic job
    return SimpleNamespace(method=method, raw=raw, region=region, stop=stop, request=request)


def _link() -> SimpleNamespace:
    """Copy link (a browser-only click), the link it copied, and the view's query the address follows."""
    with gr.Row(equal_height=True, elem_id="cv-linkrow"):
        copy = gr.Button("Copy link", size="sm", scale=0, min_width=110, elem_id="cv-copy-link")
        shown = gr.Textbox(show_label=False, interactive=False, max_lines=1, scale=5, elem_id="cv-link",
                           placeholder="A link to this picture, concept and region (the server must still "
                                       "hold the picture's index)")
    query = gr.Textbox(visible=False, elem_id="cv-link-query")  # set by Python after each redraw
    return SimpleNamespace(copy_link=copy, link=shown, link_query=query)


def _api_components() -> SimpleNamespace:
    """Hidden inputs and outputs of the /explain, /explain_text and /top_concepts endpoints."""
    with gr.Column(visible=False):
        return SimpleNamespace(
            image=ImageInput(type="filepath", label="image"), synset=gr.Textbox(label="synset"),
            text=gr.Textbox(label="text"),
            style=gr.Textbox(value="overlay", label="style"), k=gr.Number(value=10, precision=0, label="k"),
            region=gr.Textbox(value="whole", label="region"), method=gr.Textbox(value="grid", label="method"),
            map=gr.Image(format="png", label="map"), top=gr.JSON(label="top concepts"),  # API: lossless PNG
            explain=gr.Button(), explain_text=gr.Button(), top_concepts=gr.Button())


def _viewer(examples: Sequence[str], hierarchy: object) -> SimpleNamespace:
    """The picture, its map and the controls under it (the Explore view)."""
    with gr.Row():
        image = ImageInput(type="filepath", label="Image", sources=["upload", "clipboard"],
                           height=380, elem_id="cv-image")
        # JPEG: a 512 px PNG takes ~200 ms to encode, JPEG ~3 ms (the Download tab gives PNG).
        picture = MapImage(label="Selected concept (its map; the caption says which map)",
                           format="jpeg", interactive=False, height=380,
                           buttons=["download", "fullscreen"], elem_id="cv-map")
        raw_map = MapImage(label="Raw cosine (ablation)", format="jpeg", interactive=False,
                           height=380, visible=False, elem_id="cv-raw")
    methods = _methods()
    status = gr.Markdown("Upload an image, or pick an example below.", elem_id="cv-status")
    link = _link()
    if examples:
        gr.Examples([[e] for e in examples], inputs=[image], cache_examples=False,
                    label="Examples (click one)", api_visibility="private")
    tabs = _tabs(hierarchy)
    return SimpleNamespace(image=image, picture=picture, raw_map=raw_map, status=status, **vars(tabs), **vars(methods),
                           **vars(link))


def _dataset(describe: str) -> SimpleNamespace:
    """The Dataset tab: what the store holds, how many hits, the gallery; Switch when it cannot be searched."""
    info = gr.Markdown(describe, elem_id="cv-ds-info")
    switch = gr.Button("Switch to the store's model and concept set", visible=False, size="sm", elem_id="cv-ds-switch")
    with gr.Row(equal_height=True):
        k = gr.Slider(1, 100, value=12, step=1, label="Images to show", elem_id="cv-ds-k", scale=3)
        show = gr.Button("Show the images that show the selection", elem_id="cv-ds-show", scale=2)
    status = gr.Markdown("", elem_id="cv-ds-status")
    gallery = gr.Gallery(label="Stored images, best first (click one to explore it)", columns=4, height=560,
                         allow_preview=False, format="jpeg", elem_id="cv-ds-gallery")
    return SimpleNamespace(info=info, switch=switch, k=k, show=show, status=status, gallery=gallery)


def build_layout(backend: Backend, examples: Sequence[str], dataset: str | None = None) -> SimpleNamespace:
    """Create every component inside the current `gr.Blocks`; return them by name (`.api` for the API's,
    `.dataset` for the Dataset tab's when `dataset`, the store's description, is given)."""
    try:
        hierarchy, tree_error = backend.hierarchy(), ""
    except Exception as exc:  # noqa: BLE001 - the app must come up and show the problem
        hierarchy, tree_error = None, public(f"{type(exc).__name__}: {exc}")  # no server path
    session = gr.State(Session(), time_to_live=SESSION_TTL_S, delete_callback=Session.close)
    gr.Markdown(HEADER)
    _banner(backend, tree_error)
    loading = gr.Markdown("", visible=False, elem_id="cv-loading")  # the start-up load, while it runs
    loading_timer = gr.Timer(1.0, active=False)
    with gr.Row():
        model = gr.Dropdown(backend.model_choices(), value=backend.default_model, label="CLIP model",
                            elem_id="cv-model", scale=3)
        vocab = gr.Dropdown(backend.vocabulary_choices(), value=backend.default_vocabulary, scale=1,
                            label="Concept set T", elem_id="cv-vocab")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320, elem_id="cv-browser"):
            search = gr.Textbox(label="Find a concept", elem_id="cv-search", max_lines=1, max_length=MAX_TEXT,
                                placeholder="dog, dog.n.01, n02084071 or any phrase "
                                            "(Enter: the best match, else map the phrase)")
            hits = ConceptLinks(elem_id="cv-hits")
            tree = SynsetTree(tree_value(hierarchy, error=tree_error), elem_id="cv-tree",
                              children_fn=make_fetch_children(backend.loaded_hierarchy))
            info = ConceptLinks(info_html(hierarchy, None), elem_id="cv-info")
        with gr.Column(scale=3, min_width=360, elem_id="cv-viewer"):
            if dataset is None:
                viewer, ds, tabs = _viewer(examples, hierarchy), None, None
            else:  # Explore and the Dataset tab share the concept browser on the left
                with gr.Tabs(selected="explore", elem_id="cv-main-tabs") as tabs:
                    with gr.Tab("Explore", id="explore", elem_id="cv-explore-tab") as explore_tab:
                        viewer = _viewer(examples, hierarchy)
                    with gr.Tab("Dataset", id="dataset", elem_id="cv-dataset-tab") as dataset_tab:
                        ds = SimpleNamespace(**vars(_dataset(dataset)), explore_tab=explore_tab, tab=dataset_tab)
    api = _api_components()
    return SimpleNamespace(session=session, loading=loading, loading_timer=loading_timer, model=model, vocab=vocab,
                           search=search, hits=hits, tree=tree, info=info, api=api, dataset=ds, main_tabs=tabs,
                           **vars(viewer))
