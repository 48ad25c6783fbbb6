"""Evaluation harness: paper experiments, localisation metrics, baselines, a synthetic world.

Modules: `metrics` (AUROC, FPR95, curve AUC, box frames), `methods` (ConVis and baselines as a
name -> method registry), `datasets` (dataset layouts), `concepts` (class -> synset),
`wsol`, `pointing`, `ood`, `faithfulness` (the experiments), `figures` / `shapes` / `synthetic`
(the synthetic world and its benchmark), `report` (tables and files), `commands` and `cli`
(`convis eval ...`).

Importing it registers what it ships with the core: the synthetic-shapes model (weights and
open_clip config in `assets/`) and its vocabulary.
"""

from pathlib import Path

from convis.clip.models import register_model
from convis.concepts.wordnet import register_vocabulary

ASSETS = Path(__file__).resolve().parent / "assets"
SYNTHETIC = "synthetic-shapes"

register_model(SYNTHETIC, ASSETS / f"{SYNTHETIC}.safetensors", config_dir=ASSETS)
register_vocabulary(SYNTHETIC, ASSETS / f"{SYNTHETIC}.txt")

# The one place methods are registered (after the assets: the methods' modules may use them).
from convis.eval import methods, progressive_methods  # noqa: E402,F401
