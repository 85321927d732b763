#!/usr/bin/env bash
# Trains Mask R-CNN on a Cloud TPU VM (single host or a multi-host slice), or on this machine.
#
#   scripts/train_tpu.sh --tpu NAME --zone ZONE [--project P] --config CONFIG --workdir DIR \
#       [--dry-run] [--local] [-- --config.key=value ...]
#
# Remote: packs the tracked files of this checkout, copies them to every worker of TPU NAME, installs
# the requirements (plus jax[tpu]) into ~/mrcnn_jax/.venv there, and runs `python -m mrcnn_jax.train`
# on all workers at once (jax.distributed joins them). Use a gs:// workdir on a multi-host slice and
# point config.data.data_dir at prepared TFDS data every worker can read (e.g. gs://BUCKET/tfds).
# --local runs the same training here (scripts/env.sh creates the venv). --dry-run prints each
# command instead of running it.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }

tpu="" zone="" project="" config="" workdir="" dry_run=0 local_run=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tpu) tpu="$2"; shift 2 ;;
    --zone) zone="$2"; shift 2 ;;
    --project) project="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --local) local_run=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
if [ -z "$config" ] || [ -z "$workdir" ]; then
  echo "--config and --workdir are required" >&2; usage 2
fi
if [ "$local_run" = 0 ] && { [ -z "$tpu" ] || [ -z "$zone" ]; }; then
  echo "--tpu and --zone are required (or --local)" >&2; usage 2
fi
if [ ! -f "$config" ]; then
  echo "no such config file: $config" >&2; exit 2
fi

# Shell-quotes one word for display: bare if harmless, else in single quotes.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Runs "$@", or prints it (shell-quoted) with --dry-run.
run() {
  if [ "$dry_run" = 1 ]; then
    local word line=""
    for word in "$@"; do line+="$(quote "$word") "; done
    echo "${line% }"
  else
    "$@"
  fi
}

train_args=(--config "$config" --workdir "$workdir" "${extra[@]}")

if [ "$local_run" = 1 ]; then
  run source scripts/env.sh
  run python -m mrcnn_jax.train "${train_args[@]}"
  exit 0
fi

gcloud_tpu=(gcloud compute tpus tpu-vm)
target=(--zone "$zone" --worker=all)
if [ -n "$project" ]; then target+=(--project "$project"); fi

archive=/tmp/mrcnn_jax-${USER:-user}.tar.gz
remote_dir=mrcnn_jax
jax_version=$(sed -n 's/^jax==//p' requirements.txt)
install="mkdir -p $remote_dir && tar -xzf ~/$(basename "$archive") -C $remote_dir && cd $remote_dir \
&& python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt \
&& .venv/bin/pip install -q 'jax[tpu]==$jax_version' && .venv/bin/pip install -q --no-deps -e ."
train="cd $remote_dir && TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m mrcnn_jax.train --distributed=yes"
for arg in "${train_args[@]}"; do train+=" $(quote "$arg")"; done

run bash -c "git ls-files -z | tar --null --ignore-failed-read -T - -czf $archive"
run "${gcloud_tpu[@]}" scp "$archive" "$tpu:" "${target[@]}"
run "${gcloud_tpu[@]}" ssh "$tpu" "${target[@]}" --command "$install"
run "${gcloud_tpu[@]}" ssh "$tpu" "${target[@]}" --command "$train"
