#!/usr/bin/env bash
# GPU check: the benchmark on CUDA in fp16 and fp32, printed as JSON. Never part of the tests.
# Needs the venv (scripts/setup.sh) and the WordNet hierarchy: a machine without apt or network
# can reuse a cache built elsewhere with CONVIS_CACHE=/path/to/cache (hierarchy/*.json.gz).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
$PY - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for GPU machines"
print({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda})
PYEOF
echo "== ViT-B-32, fp16, batch 256 =="
$PY -m convis bench --pretrained none --device cuda --precision fp16 --batch-size 256 --reference-sample 200 --json "$@"
echo "== ViT-B-32, fp32, batch 256 =="
$PY -m convis bench --pretrained none --device cuda --precision fp32 --batch-size 256 --reference-sample 200 --json "$@"
