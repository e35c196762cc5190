#!/usr/bin/env bash
# Set up, then run the main job on the built-in default: export the tiny pi0.5 with its parity
# gate, serve it with the franka embodiment and the installed wedges, drive it from a simulated
# robot and print what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1
exec .venv/bin/reflex demo "$@"
