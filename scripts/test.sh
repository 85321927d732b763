#!/usr/bin/env bash
# Sets up .venv (if missing), installs requirements and the package, runs the test suite.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export JAX_PLATFORMS=cpu
exec python -m pytest -n 2 --dist loadfile "$@"
