"""Evaluation harness: paper experiments, localisation metrics, baselines, a synthetic world.

Modules: `metrics` (AUROC, FPR95, curve AUC, box correction), `methods` (ConVis and baselines
as named map makers), `datasets` / `annotations` (dataset layouts), `wsol`, `pointing`, `ood`,
`faithfulness` (the experiments), `shapes` / `synthetic` (the synthetic world and its
benchmark), `report` (tables and files) and `cli` (`convis eval ...`).
"""
