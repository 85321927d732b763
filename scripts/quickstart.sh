#!/usr/bin/env bash
# Quickstart on a fresh machine (CPU is enough): environment -> synthetic shapes dataset -> train the
# tiny Mask R-CNN -> COCO evaluation -> predictions drawn on validation images -> summary table.
# Usage: scripts/quickstart.sh [WORKDIR (default runs/quickstart)] [extra --config.key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=${1:-runs/quickstart}
shift || true
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }

stamp "environment"
source scripts/env.sh
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
t_env=$(date +%s)

stamp "dataset: synthetic shapes (2000 train / 200 validation, 128 px) -> data/"
python -m mrcnn_jax.data.prepare shapes --data_dir data
t_data=$(date +%s)

stamp "training shapes_tiny -> $workdir (resumes if interrupted)"
python -m mrcnn_jax.train --config mrcnn_jax/configs/shapes_tiny.py --workdir "$workdir" \
  --config.data.data_dir=data --verbosity=-1 "$@"
t_train=$(date +%s)

stamp "predictions on validation images -> $workdir/predictions/"
python -m mrcnn_jax.data.prepare export --name mrcnn_shapes --data_dir data --split validation \
  --num 8 --out "$workdir/predictions/inputs" >/dev/null
python -m mrcnn_jax.infer --workdir "$workdir" --images "$workdir"/predictions/inputs/*.png \
  --out "$workdir/predictions" --score_threshold 0.5
t_end=$(date +%s)

python - "$workdir" "$((t_env - t0))" "$((t_data - t_env))" "$((t_train - t_data))" "$((t_end - t_train))" <<'PY'
import json, sys
workdir, *seconds = sys.argv[1:]
m = json.load(open(f"{workdir}/metrics_validation.json"))
print("\n| shapes validation | AP | AP50 | AP75 |\n|---|---|---|---|")
for kind in ("bbox", "segm"):
  print(f"| {'box' if kind == 'bbox' else 'mask'} | " + " | ".join(f"{100 * m[f'{kind}/{k}']:.1f}" for k in ("AP", "AP50", "AP75")) + " |")
names = ("environment", "dataset", "train + eval", "predict")
print("\ntime: " + ", ".join(f"{n} {s}s" for n, s in zip(names, seconds)) + f", total {sum(map(int, seconds))}s")
print(f"pictures: {workdir}/predictions/*.png   metrics: {workdir}/metrics_validation.json")
PY
