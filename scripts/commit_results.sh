#!/usr/bin/env bash
# Commits what a running sweep wrote under experiments/results, and only that path, every INTERVAL
# seconds (default 120), so that finished runs are in the repository as they finish:
#   nohup scripts/commit_results.sh > runs/commit_results.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
interval=${1:-120}
while true; do
  git add experiments/results
  if ! git diff --cached --quiet -- experiments/results; then
    new=$(git diff --cached --name-only --diff-filter=A -- 'experiments/results/*/seed*.json' |
          sed 's|experiments/results/||' | tr '\n' ' ')
    git commit -q -m "Table 2: results of ${new:-(report refreshed)}" -- experiments/results &&
      echo "$(date -u '+%F %T') committed ${new:-(report refreshed)}"
  fi
  sleep "$interval"
done
