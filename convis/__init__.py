"""ConVis: what a CLIP model sees in an image, concept by concept, over the WordNet hierarchy.

    >>> from convis import Engine
    >>> engine = Engine.load("ViT-B-32", "openai")          # model, concept set T, T's embeddings
    >>> index = engine.index(image)                          # 730 CLIP forwards, once per image
    >>> index.saliency("bird.n.01")                          # any concept after that: milliseconds
"""

from convis.config import GridConfig, StochasticConfig
from convis.engine import Engine
from convis.concepts.hierarchy import Hierarchy, UnknownConceptError
from convis.index.image_index import ImageIndex
from convis.index.build import build_index, index_image
from convis.clip.models import Clip, ModelLoadError, list_models, load_model
from convis.concepts.wordnet import load_hierarchy

__version__ = "0.1.0"
__all__ = [
    "Clip", "Engine", "GridConfig", "Hierarchy", "ImageIndex", "ModelLoadError", "StochasticConfig",
    "UnknownConceptError", "build_index", "index_image", "list_models", "load_hierarchy", "load_model",
]
