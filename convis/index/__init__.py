"""The image index and how it is built: CLIP over the windows once, then any map in milliseconds.

Pure: `image_index` (`ImageIndex`: window ranks and embeddings, and the maps drawn from them),
`progressive` (the coarse-to-fine schedule and `PartialIndex`), `cosine` (window-to-text
cosines for phrases and the raw ablation). `build` runs an encoder callable over the windows
(`iter_index`, `index_image`, `build_index`) and holds the stochastic variant.
"""

from convis.index.build import build_index, index_image, iter_index
from convis.index.image_index import ImageIndex
from convis.index.progressive import PartialIndex

__all__ = ["ImageIndex", "PartialIndex", "build_index", "index_image", "iter_index"]
