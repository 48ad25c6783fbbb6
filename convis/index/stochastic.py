"""The reference's stochastic map: the other way the encoder meets the windows (one at a time)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from convis import saliency as sal
from convis.config import Progress, StochasticConfig
from convis.index.build import Encoder, InputSpec
from convis.index.image_index import ImageIndex
from convis.windows import crop_windows


def stochastic_saliency(
    index: ImageIndex,
    concept: str,
    encode: Encoder,
    concepts: torch.Tensor,
    spec: InputSpec,
    config: StochasticConfig = StochasticConfig(),
    progress: Progress | None = None,
) -> np.ndarray:
    """The reference's stochastic map for one concept, on the index's padded pixels.

    Sequential: `config.iterations` single-window forwards, `progress(done, total)` after each
    (an exception it raises stops the run). Returns (h, w) float32 in [0, 1]: (S, S), or the
    whole picture's grid shape.
    """
    sub = index.hierarchy.subtree(concept)
    n = config.gamma_n or len(sub)
    padded = index.padded.to(concepts.device)

    def score_box(box: tuple[int, int, int, int]) -> float:
        with torch.inference_mode():
            crop = crop_windows(padded, np.asarray([box]), spec.size, spec.mean, spec.std)
            emb = F.normalize(encode(crop).float(), dim=-1)
            ranks = sal.rank_matrix(emb @ concepts.float().T).cpu().numpy()
        return float(sal.gamma_score(sal.best_rank(ranks, sub), n, config.gamma)[0])

    return sal.stochastic_map(score_box, config, index.grid_shape, index.config.pad, progress)
