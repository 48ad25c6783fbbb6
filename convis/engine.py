"""The three loaded resources ConVis needs, loaded once and passed around together."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from convis.cache import LRU
from convis.clip.bank import Bank, load_bank
from convis.config import GridConfig, Progress, StochasticConfig
from convis.errors import UserError
from convis.concepts.hierarchy import Hierarchy
from convis.index.image_index import ImageIndex
from convis.index.build import InputSpec, build_index, iter_clip_index
from convis.index.stochastic import stochastic_saliency
from convis.clip.models import Clip, load_model
from convis.index.progressive import DEFAULT_SCHEDULE, Stage
from convis.clip.text import encode_texts_bucketed
from convis.concepts.wordnet import load_hierarchy

# The one length limit of a text a user gives: a phrase (CLIP reads 77 tokens, ~200 characters, and
# cuts the rest), a concept name or a search query (WordNet's longest lemma has 70 characters).
MAX_TEXT = 200


class EmptyPhraseError(UserError, ValueError):
    """A free-text phrase with no words in it."""


class PhraseTooLongError(UserError, ValueError):
    """A free-text phrase over `MAX_TEXT` characters."""


def clean_phrase(text: str) -> str:
    """A free-text phrase with its whitespace collapsed, checked once for every caller.

    Raises:
        EmptyPhraseError: no words in it.
        PhraseTooLongError: more than `MAX_TEXT` characters.
    """
    text = " ".join(str(text).split())
    if not text:
        raise EmptyPhraseError("the phrase is empty; type a few words, e.g. 'a red sports car'")
    if len(text) > MAX_TEXT:
        raise PhraseTooLongError(f"the phrase is {len(text):,} characters long; the limit is {MAX_TEXT} "
                                 "(CLIP reads about that much): shorten it")
    return text


@dataclass(frozen=True, eq=False)
class Engine:
    """A model, a concept set T and T's embeddings under that model.

    Build it once (`Engine.load`) and share it: it holds no per-image state.
    """

    clip: Clip
    hierarchy: Hierarchy
    bank: Bank
    # Phrase embeddings by text: a phrase's map is redrawn on every display change, its nearest
    # concepts and exports ask again; one text forward serves them all. Bounded: (D,) rows.
    _texts: LRU[str, torch.Tensor] = field(default_factory=lambda: LRU(256), init=False, repr=False)

    @classmethod
    def load(
        cls,
        model: str = "ViT-B-32",
        pretrained: str | None = "openai",
        vocabulary: str = "physical",
        seek: str = "definitions",
        device: str = "auto",
        precision: str = "auto",
        progress: Progress | None = None,
    ) -> Engine:
        """Load the model, the hierarchy and the concept bank (each cached in memory and on disk).

        Args:
            model: open_clip architecture, "arch/tag", "hf-hub:org/repo", or "test-tiny".
            pretrained: weights tag, checkpoint path, or "none" for a seeded random init.
            vocabulary: "physical", "nouns", "wordlist:PATH", "synsets:PATH" or "synthetic-shapes".
            seek: embed each concept's "definitions" (gloss, the paper) or "lemmas".
            precision: "auto" (fp16 on CUDA, else fp32), "fp32", "fp16", "bf16", or "int8" (CPU only:
                a ~1.5x faster image encoder; the concept bank stays fp32).
            progress: (done, total) callback while the bank is encoded.
        """
        clip = load_model(model, pretrained, device=device, precision=precision)
        hierarchy = load_hierarchy(vocabulary)
        return cls(clip, hierarchy, load_bank(clip, hierarchy, seek, progress=progress))

    @property
    def spec(self) -> InputSpec:
        return InputSpec(self.clip.image_size, self.clip.mean, self.clip.std)

    def index(
        self, image: Image.Image, config: GridConfig = GridConfig(), batch_size: int = 64,
        progress: Progress | None = None,
    ) -> ImageIndex:
        """Index an image: the windows' ranks of every concept (730 forwards by default)."""
        return build_index(image, self.clip, self.bank, self.hierarchy, config, batch_size, progress)

    def index_progressive(
        self, image: Image.Image, config: GridConfig = GridConfig(), batch_size: int = 64,
        progress: Progress | None = None, schedule: Sequence[Stage] = DEFAULT_SCHEDULE,
    ) -> Iterator[ImageIndex]:
        """Index coarse to fine: a `PartialIndex` after each coarse stage, then the complete index
        (equal to `index`'s)."""
        yield from iter_clip_index(image, self.clip, self.bank, self.hierarchy, config, schedule, batch_size, progress)

    def stochastic(
        self, index: ImageIndex, concept: str, config: StochasticConfig = StochasticConfig(),
        progress: Progress | None = None,
    ) -> np.ndarray:
        """The reference's stochastic map of one concept on an indexed image: (h, w) in [0, 1].

        `progress(done, total)` is called after each of the `config.iterations` forwards; an
        exception it raises stops the run (that is how a caller cancels).
        """
        return stochastic_saliency(index, concept, self.clip.encode_image, self.bank.embeddings, self.spec,
                                   config, progress)

    # ---- free text and the raw ablation (no new image pass) ---------------------------------
    def encode_text(self, text: str) -> torch.Tensor:
        """(D,) float32 unit embedding of a phrase, by the same text forward as the bank.

        The tokenizer truncates the phrase to the model's context (77 tokens for CLIP).

        Raises:
            EmptyPhraseError, PhraseTooLongError: see `clean_phrase`.
        """
        text = clean_phrase(text)
        if (hit := self._texts.get(text)) is None:
            hit = self._texts[text] = encode_texts_bucketed([text], self.clip)[0]
        return hit

    def nearest_concepts(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The k concepts of T whose embedded text is closest to the phrase: (synset, cosine), best first."""
        bank = self.bank.embeddings
        sims = bank.float() @ self.encode_text(text).to(bank.device)  # (T,)
        top = torch.topk(sims, min(k, len(sims)))
        return [(self.hierarchy.ids[i], float(v)) for v, i in zip(top.values.tolist(), top.indices.tolist())]

    def _check(self, index: ImageIndex) -> None:
        if index.model_id and index.model_id != self.clip.model_id:
            raise ValueError(f"the index was built with {index.model_id}, not {self.clip.model_id}; "
                             "index the image again with this engine")
        if index.hierarchy.vocabulary != self.hierarchy.vocabulary or len(index.hierarchy) != len(self.hierarchy):
            raise ValueError("the index was ranked against another vocabulary; index the image again")

    def text_saliency(self, index: ImageIndex, text: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """ConVis map of a free-text phrase on an indexed image, no new image pass: (H, W) in [0, 1].

        Per window, the phrase's rank among T plus the phrase, accumulated like a leaf concept.
        `size` as in `ImageIndex.saliency`.
        """
        self._check(index)
        return index.text_saliency(self.encode_text(text), self.bank.embeddings, size)

    def raw_saliency(self, index: ImageIndex, concept: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """The raw-cosine ablation of a concept: window-to-gloss cosine, best over the subtree, no
        rank; accumulated and min-max normalised like the ConVis map. (H, W) in [0, 1]."""
        self._check(index)
        return index.raw_saliency_many([concept], self.bank.embeddings, size)[0]

    def raw_text_saliency(self, index: ImageIndex, text: str,
                          size: int | tuple[int, int] | None = None) -> np.ndarray:
        """The raw-cosine ablation of a free-text phrase: window-to-phrase cosine, no rank; accumulated
        and min-max normalised like `raw_saliency`. (H, W) in [0, 1]."""
        self._check(index)
        return index.raw_text_saliency_many(self.encode_text(text), size)[0]
