"""The three loaded resources ConVis needs, loaded once and passed around together."""

from __future__ import annotations

import dataclasses

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from PIL import Image

from convis.bank import Bank, load_bank
from convis.config import GridConfig, StochasticConfig
from convis.hierarchy import Hierarchy
from convis.index import ImageIndex, InputSpec, build_index, stochastic_saliency
from convis.models import Clip, load_model
from convis.progressive import DEFAULT_SCHEDULE, PartialIndex, Stage, iter_index
from convis.wordnet import load_hierarchy

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class Engine:
    """A model, a concept set T and T's embeddings under that model.

    Build it once (`Engine.load`) and share it: it holds no per-image state.
    """

    clip: Clip
    hierarchy: Hierarchy
    bank: Bank

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
    ) -> Iterator[PartialIndex]:
        """Index coarse to fine: a valid snapshot after each stage, the last equal to `index`."""
        for part in iter_index(image, self.clip.encode_image, self.bank.embeddings, self.hierarchy, self.spec,
                               config, schedule, batch_size, progress):
            yield dataclasses.replace(part, model_id=self.clip.model_id)

    def stochastic(self, index: ImageIndex, concept: str, config: StochasticConfig = StochasticConfig()):
        """The reference's stochastic map of one concept on an indexed image: (S, S) in [0, 1]."""
        return stochastic_saliency(index, concept, self.clip.encode_image, self.bank.embeddings, self.spec, config)
