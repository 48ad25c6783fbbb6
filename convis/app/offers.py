"""What a server offers: the models and vocabularies a client may pick, and the check of a pick.

A client may only pick from these lists (it must not name arbitrary files or load what the server
cannot hold). When the default model cannot load (offline, no weights), the models that need no
download are offered too, marked so, and their own concept sets with them.
"""

from __future__ import annotations

from pathlib import Path

from convis.clip.models import DEFAULT_PRETRAINED, MODELS, list_models
from convis.concepts.wordnet import vocabularies
from convis.errors import UserError

VOCABULARIES = ("physical", "nouns")
OFFLINE_MODEL = "test-tiny/none"  # offered when the default model cannot load: the UI stays explorable
OFFLINE = " · works offline"  # how the menu marks a model that needs no download
# Offered only with `allow_large` (--allow-large): `nouns` indexes are 240 MB each, a ViT-L-14 1.7 GB.
LARGE_VOCABULARIES = ("nouns",)
LARGE_MODEL_PREFIXES = ("ViT-L-", "ViT-H-", "ViT-g-", "ViT-bigG-")


class NotOfferedError(UserError, ValueError):
    """A model or vocabulary this app does not offer (clients may only pick from the lists)."""


def offline_models() -> list[str]:
    """Models that load with no download: test-tiny, and those registered with weights on disk
    (`convis.clip.models.register_model`, e.g. the evaluation's trained synthetic-shapes world)."""
    shipped = [name for name, weights in DEFAULT_PRETRAINED.items() if Path(weights).is_file()]
    return [OFFLINE_MODEL, *shipped]


class Offers:
    """The choices of a `convis.app.backend.Backend` (a mixin over its settings)."""

    default_model: str
    default_vocabulary: str
    allow_large: bool
    startup_error: str | None
    _given: dict

    def _large_model(self, key: str) -> bool:
        return key != self.default_model and key.startswith(LARGE_MODEL_PREFIXES)

    def _offline_offered(self) -> list[str]:
        return offline_models() if self.startup_error or self.default_model in offline_models() else []

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for the model selector: the curated list, the default, and the models
        that work offline when the default cannot load (marked)."""
        offline = self._offline_offered()
        keys = [k for k in list_models() if k not in offline and (self.allow_large or not self._large_model(k))]
        if self.default_model not in keys and self.default_model not in offline:
            keys.insert(0, self.default_model)
        keys += offline

        def label(k: str) -> str:
            described = f"{k} · {MODELS[k].description}" if k in MODELS else k
            return described + (OFFLINE if k in offline else "")

        return [(label(k), k) for k in dict.fromkeys(keys)]

    def vocabulary_choices(self) -> list[str]:
        """Vocabularies the user may switch to (only these: a client must not name arbitrary files)."""
        offered = [v for v in VOCABULARIES if self.allow_large or v not in LARGE_VOCABULARIES]
        own = [m for m in self._offline_offered() if m in vocabularies()]  # a shipped model's own concepts
        return list(dict.fromkeys([self.default_vocabulary, *self._given, *offered, *own]))

    def _check(self, model: str | None, vocabulary: str | None) -> tuple[str, str]:
        model, vocabulary = model or self.default_model, vocabulary or self.default_vocabulary
        if model not in {k for _, k in self.model_choices()}:
            hint = " (large models need the server flag --allow-large)" if self._large_model(str(model)) else ""
            raise NotOfferedError(f"model {str(model)[:80]!r} is not offered by this app{hint}; choose one of "
                                  + ", ".join(k for _, k in self.model_choices()))
        if vocabulary not in self.vocabulary_choices():
            hint = " (it needs the server flag --allow-large)" if vocabulary in LARGE_VOCABULARIES else ""
            raise NotOfferedError(f"vocabulary {str(vocabulary)[:80]!r} is not offered{hint}; choose one of "
                                  + ", ".join(self.vocabulary_choices()))
        return model, vocabulary
