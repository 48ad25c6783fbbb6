"""The dataset store: a folder holding a dataset's window embeddings and image-level scores.

`Store.open(path)` reads it; `convis.dataset` writes it (`convis index`); `convis.store.search`
answers "which images show X, and where" from it with no image forward.
"""

from convis.store.spec import StoreError, StoreSpec
from convis.store.spec import ConceptSet, Hit
from convis.store.store import Store

__all__ = ["ConceptSet", "Hit", "Store", "StoreError", "StoreSpec"]
