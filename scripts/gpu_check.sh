#!/usr/bin/env bash
# GPU check: the benchmark on CUDA in fp16 and fp32, printed as JSON, and the progressive stage times. Never part of the tests.
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
FP16=$(mktemp)
$PY -m convis bench --pretrained none --device cuda --precision fp16 --batch-size 256 --reference-sample 200 --no-int8 \
  --json "$@" | tee "$FP16"
echo "== progressive stages on CUDA, fp16: seconds from the start to each stage's snapshot =="
$PY - "$FP16" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
for s in d["progressive_stages"]:
    print(f"stage {s['stage']}: {s['windows']:4d} windows at {s['seconds']:7.3f} s")
print(f"full index {d['index_seconds']} s; first preview at {d['first_preview_seconds']} s "
      f"({d['first_preview_fraction_of_index']:.0%} of it); encoder at {d['encoder_peak_fraction']:.0%} "
      f"of the {d['gemm_gflops']} GFLOP/s fp32 GEMM peak (fp16 runs above it)")
PYEOF
rm -f "$FP16"
echo "== ViT-B-32, fp32, batch 256 =="
$PY -m convis bench --pretrained none --device cuda --precision fp32 --batch-size 256 --reference-sample 200 --no-int8 \
  --json "$@"
