"""The pieces of the ConVis Explorer Gradio app (`app.py` assembles them).

`Backend` holds what a process loads once (models, hierarchies, concept banks, an index cache);
`Session` is what one browser tab keeps; `SynsetTree` and `ConceptLinks` are the custom widgets.
"""

from convis.app.backend import Backend
from convis.app.entry import Entry
from convis.app.session import Session, View
from convis.app.widgets import ConceptLinks, SynsetTree

__all__ = ["Backend", "ConceptLinks", "Entry", "Session", "SynsetTree", "View"]
