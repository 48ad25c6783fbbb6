#!/usr/bin/env bash
# GPU check: the benchmark on CUDA in fp16 and fp32, printed as JSON, the progressive stage times, and dataset
# indexing (500 scenes: local vs --engine ray --num-gpus 1, the two stores compared, fp16 vs fp32 maps). Never part of the tests.
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
echo "== dataset indexing: 500 synthetic scenes, ViT-B-32 fp16, local engine vs --engine ray --num-gpus 1 =="
# Throughput of both engines on the same files, the two stores compared, and fp16 vs fp32 map fidelity.
# Needs Ray for the second run: pip install -e .[ray]. Random-init weights run at the trained model's speed.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
$PY - "$WORK" <<'PYEOF'
import sys
from pathlib import Path
from convis.eval.search import write_scenes
from convis.eval.shapes import benchmark_scenes
write_scenes(benchmark_scenes(500, seed=0), Path(sys.argv[1]) / "scenes")
write_scenes(benchmark_scenes(50, seed=0), Path(sys.argv[1]) / "scenes50")  # the first 50, for fp32
PYEOF
INDEX=(-m convis index --model ViT-B-32 --pretrained none --device cuda --images-per-forward 4 --images-per-shard 16 --json)
$PY "${INDEX[@]}" --precision fp16 "$WORK/scenes" --out "$WORK/local" > "$WORK/local.json"
$PY "${INDEX[@]}" --precision fp16 "$WORK/scenes" --out "$WORK/ray" --engine ray --num-gpus 1 > "$WORK/ray.json"
$PY "${INDEX[@]}" --precision fp32 "$WORK/scenes50" --out "$WORK/fp32" > "$WORK/fp32.json"
$PY - "$WORK" <<'PYEOF'
import json, sys
from pathlib import Path
import numpy as np
import torch
import convis.eval  # noqa: F401  (registers the shipped models and vocabularies)
from convis.engine import Engine
from convis.store import Store
from convis.store import search as ss

w = Path(sys.argv[1])
runs = {k: json.loads((w / f"{k}.json").read_text()) for k in ("local", "ray", "fp32")}
for k, r in runs.items():  # "seconds" includes, for ray, the cluster's start and the actor's model load
    print(f"{k:5s}: {r['indexed']} images in {r['seconds']:.1f} s = {r['indexed'] / r['seconds']:.1f} images/s, "
          f"{r['windows'] / r['seconds']:,.0f} windows/s")
print(f"ray / local images/s: {runs['local']['seconds'] / runs['ray']['seconds']:.2f} (target >= 0.9)")
local, far, fp32 = Store.open(w / "local"), Store.open(w / "ray"), Store.open(w / "fp32")
same = {r.sha256 for r in local.rows()} == {r.sha256 for r in far.rows()}
diff = max(float((local.windows(r.sha256).float() - far.windows(r.sha256).float()).abs().max()) for r in local.rows())
print(f"stores: same sha256 set {same}, {len(local)} images; window embeddings max |local - ray| {diff:.2e}")
e16 = Engine.load("ViT-B-32", "none", "physical", device="cuda", precision="fp16")
e32 = Engine.load("ViT-B-32", "none", "physical", device="cuda", precision="fp32")
concepts = list(e16.hierarchy.ids[:: max(1, len(e16.hierarchy) // 5)][:5])
for c in concepts[:3]:
    a, b = ([h.sha256 for h in ss.search_concept(s, e16.hierarchy, c, k=20)] for s in (local, far))
    print(f"search {c}: top-20 overlap local/ray {len(set(a) & set(b))}/20, same order {a == b}")
r = []
for row in fp32.rows():
    m16 = local.maps(e16, row.sha256, concepts)
    m32 = fp32.maps(e32, row.sha256, concepts)
    r += [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(m16, m32)]
r = np.asarray(r)
print(f"fp16 (autocast) vs fp32 maps, {len(fp32)} images x {len(concepts)} concepts: Pearson mean {np.nanmean(r):.5f}, "
      f"min {np.nanmin(r):.5f} (target >= 0.999)")
PYEOF
echo "== synthetic pointing (shipped synthetic-shapes model), fp16 vs fp32 =="
for prec in fp16 fp32; do
  $PY -m convis eval synthetic -n 60 --model synthetic-shapes --vocabulary synthetic-shapes --methods grid \
    --device cuda --precision $prec --json | $PY -c "import json,sys; m=json.load(sys.stdin)['methods']['grid']; print('$prec', {k: round(v, 3) for k, v in m.items()})"
done
