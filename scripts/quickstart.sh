#!/usr/bin/env bash
# Quickstart on a fresh machine (CPU is enough): environment -> synthetic shapes dataset -> train the
# tiny Mask R-CNN -> COCO evaluation -> predictions drawn on validation images -> summary table.
# Usage: scripts/quickstart.sh [keypoints] [WORKDIR (default runs/quickstart)] [extra --config.key=value ...]
# `keypoints`: the stick-figure dataset (prepare keypoints) and Keypoint R-CNN (keypoints_tiny) instead,
# keypoint AP in the table and skeletons in the pictures (default WORKDIR runs/quickstart_keypoints).
# It ends within QUICKSTART_MINUTES (default 15): training measures its speed after a few steps and,
# on a machine too slow for the full recipe, trains fewer steps (the same schedule, scaled) so that
# the whole script fits; QUICKSTART_MINUTES=0 trains the full recipe whatever it takes.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=shapes dataset=mrcnn_shapes config=shapes_tiny workdir=runs/quickstart
# Seconds kept for the final evaluation and the pictures, compiles included (measured on a slow 2-core
# CPU with an empty compilation cache: ~60 s for shapes; for keypoints, whose detection program also
# decodes heatmaps, 104 + 31 s and, for a better-trained model with more detections, 156 + 30 s).
after_training=100
if [ "${1:-}" = keypoints ]; then
  kind=keypoints dataset=mrcnn_figures config=keypoints_tiny workdir=runs/quickstart_keypoints
  after_training=240
  shift
fi
workdir=${1:-$workdir}
shift || true
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0))s] $*"; }
minutes=${QUICKSTART_MINUTES:-15}

stamp "environment"
source scripts/env.sh
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
t_env=$(date +%s)

stamp "dataset: synthetic $kind (2000 train / 200 validation, 128 px) -> data/"
python -m mrcnn_jax.data.prepare "$kind" --data_dir data
t_data=$(date +%s)

budget=0
if [ "$minutes" -gt 0 ]; then
  budget=$((minutes * 60 - $(date +%s) + t0 - after_training))
  budget=$((budget > 120 ? budget : 120))
fi
stamp "training $config -> $workdir (resumes if interrupted; time budget ${budget}s, 0: none)"
python -m mrcnn_jax.train --config "mrcnn_jax/configs/$config.py" --workdir "$workdir" \
  --config.data.data_dir=data --config.train.time_budget_s="$budget" --verbosity=-1 "$@"
t_train=$(date +%s)

stamp "predictions on validation images -> $workdir/predictions/"
python -m mrcnn_jax.data.prepare export --name "$dataset" --data_dir data --split validation \
  --num 8 --out "$workdir/predictions/inputs" >/dev/null
python -m mrcnn_jax.infer --workdir "$workdir" --images "$workdir"/predictions/inputs/*.png \
  --out "$workdir/predictions" --score_threshold 0.5
t_end=$(date +%s)

python - "$workdir" "$((t_env - t0))" "$((t_data - t_env))" "$((t_train - t_data))" "$((t_end - t_train))" <<'PY'
import json, sys
workdir, *seconds = sys.argv[1:]
m = json.load(open(f"{workdir}/metrics_validation.json"))
print("\n| validation | AP | AP50 | AP75 |\n|---|---|---|---|")
for kind, name in (("bbox", "box"), ("segm", "mask"), ("keypoints", "keypoints")):
  if f"{kind}/AP" in m:
    print(f"| {name} | " + " | ".join(f"{100 * m[f'{kind}/{k}']:.1f}" for k in ("AP", "AP50", "AP75")) + " |")
names = ("environment", "dataset", "train + eval", "predict")
print("\ntime: " + ", ".join(f"{n} {s}s" for n, s in zip(names, seconds)) + f", total {sum(map(int, seconds))}s")
print(f"pictures: {workdir}/predictions/*.png   metrics: {workdir}/metrics_validation.json")
try:
  plan = json.load(open(f"{workdir}/budget_plan.json"))
except FileNotFoundError:
  plan = None
if plan and plan["steps"] < plan["configured_steps"]:
  print(f"trained {plan['steps']} of the recipe's {plan['configured_steps']} steps to fit the time "
        f"budget ({plan['seconds_per_step']:.2f} s/step here); QUICKSTART_MINUTES=0 trains them all")
PY
