"""The paper's OOD experiment: do WordNet glosses (and the hierarchy) work as prompts?

Each split pairs an in-distribution synset with an OOD one; an ImageNet class belongs to a side
when that synset is among its WordNet hypernyms (full WordNet, so the counts match the paper's:
garment 26 vs furniture 22, ...). Whole images are embedded with the model's own open_clip preprocessing
(resize the short side to S, centre crop). Scores for the ID synset s, low = OOD:

* ``naive``: cosine to the gloss of s;
* ``hierarchy``: max cosine over the glosses of the leaves of hypo*(s) inside the vocabulary;
* ``lemmas``: max cosine over every lemma name of every synset of hypo*(s).

Metrics treat OOD as the positive class: AUROC and the FPR at 95 % TPR of the negated score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from convis.clip.text import encode_texts_bucketed
from convis.engine import Engine
from convis.eval.datasets import DataError, Sample, open_or_note
from convis.eval.metrics import auroc, fpr_at_tpr

SPLITS: dict[str, tuple[str, str]] = {
    "garment-furniture": ("garment.n.01", "furniture.n.01"),
    "bird-hunting_dog": ("bird.n.01", "hunting_dog.n.01"),
    "spider-butterfly": ("spider.n.01", "butterfly.n.01"),
    "ungulate-bear": ("ungulate.n.01", "bear.n.01"),
    "edible_fruit-musical_instrument": ("edible_fruit.n.01", "musical_instrument.n.01"),
    "aircraft-vessel": ("aircraft.n.01", "vessel.n.02"),
}
SCORES = ("naive", "hierarchy", "lemmas")


def class_ancestors(labels: Sequence[str]) -> dict[str, set[str]]:
    """Folder label (WordNet id "n01530575" or synset name) -> names of it and all its hypernyms."""
    from convis.eval.concepts import to_synset_name
    from convis.concepts.wordnet import wordnet_reader

    wn, out = wordnet_reader(), {}
    for label in set(labels):
        name = to_synset_name(label)
        s = wn.synset(name) if name else None
        out[label] = {a.name() for path in s.hypernym_paths() for a in path} if s else set()
    return out


def split_samples(samples: Sequence[Sample], split: str) -> tuple[list[Sample], list[Sample]]:
    """(in-distribution, OOD) images of a named split, by their class folder."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    id_syn, ood_syn = SPLITS[split]
    anc = class_ancestors([s.label for s in samples])
    return [s for s in samples if id_syn in anc[s.label]], [s for s in samples if ood_syn in anc[s.label]]


def image_embeddings(engine: Engine, samples: Sequence[Sample], batch_size: int = 32,
                     progress: Callable[[int], None] | None = None,
                     unreadable: list[str] | None = None) -> tuple[torch.Tensor, list[Sample]]:
    """((M, D) unit image embeddings with the model's own open_clip preprocessing, the M samples they
    embed): an image that cannot be read is left out and named in `unreadable` ("<id>: <why>")."""
    clip, skipped = engine.clip, [] if unreadable is None else unreadable
    parts, kept = [], []
    for start in range(0, len(samples), batch_size):
        batch = samples[start:start + batch_size]
        read = [(s, image) for s in batch if (image := open_or_note(s, skipped)) is not None]
        if read:
            parts.append(clip.encode_image(torch.stack([clip.preprocess(image) for _, image in read])).cpu())
            kept += [s for s, _ in read]
        if progress:
            progress(len(batch))
    emb = torch.cat(parts) if parts else torch.zeros(0, engine.bank.embeddings.shape[1])
    return emb, kept


def concept_scores(engine: Engine, embeddings: torch.Tensor, synset: str) -> dict[str, np.ndarray]:
    """{score name: (N,) similarity} of images to an in-distribution synset (high = in distribution)."""
    hier, bank = engine.hierarchy, engine.bank.embeddings.float().cpu()
    sub = hier.subtree(synset)
    leaves = [i for i in sub if not hier.child_index[i]]
    lemmas = sorted({lem.replace("_", " ") for i in sub for lem in hier.lemmas(int(i))})
    lemma_emb = encode_texts_bucketed(lemmas, engine.clip).float().cpu()  # (L, D)
    e = embeddings.float()
    return {
        "naive": (e @ bank[hier.index(synset)]).numpy(),
        "hierarchy": (e @ bank[leaves].T).amax(dim=1).numpy(),
        "lemmas": (e @ lemma_emb.T).amax(dim=1).numpy(),
    }


def evaluate_split(engine: Engine, split: str, id_emb: torch.Tensor, ood_emb: torch.Tensor) -> dict:
    """AUROC and FPR95 of every score for one split, OOD as positive."""
    id_syn = SPLITS[split][0]
    if id_syn not in engine.hierarchy:
        raise DataError(f"{id_syn} is not in vocabulary {engine.hierarchy.vocabulary!r}; "
                         "use physical or nouns")
    scores = concept_scores(engine, torch.cat([id_emb, ood_emb]), id_syn)
    is_ood = np.r_[np.zeros(len(id_emb), bool), np.ones(len(ood_emb), bool)]
    out = {"id": id_syn, "ood": SPLITS[split][1], "id_images": len(id_emb), "ood_images": len(ood_emb)}
    for name in SCORES:
        out[name] = {"auroc": auroc(-scores[name], is_ood), "fpr95": fpr_at_tpr(-scores[name], is_ood)}
    return out
