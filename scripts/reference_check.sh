#!/usr/bin/env bash
# Reference check of every model family against its public reference implementation (lerobot
# 0.4.4, in its own venv .venv-reference/, built by scripts/reference_env.sh when missing or
# stale). Runs each plugins/*/reference/check.py in our .venv; each prints one JSON line
# {"family": ..., ..., "passed": ...} and exits non-zero on drift. Exits non-zero when any does.
set -uo pipefail
cd "$(dirname "$0")/.."

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export HF_HUB_OFFLINE=1  # nothing may come from a hub at run time
bash scripts/reference_env.sh || { echo "reference venv could not be built" >&2; exit 1; }

python=${REFLEX_PYTHON:-.venv/bin/python}
status=0
found=0
for script in plugins/*/reference/check.py; do
  [ -f "$script" ] || continue
  found=$((found + 1))
  echo "== $script" >&2
  if ! "$python" "$script" --reference-python "$PWD/.venv-reference/bin/python"; then
    echo "FAILED: $script" >&2
    status=1
  fi
done
if [ "$found" -eq 0 ]; then
  echo "no plugins/*/reference/check.py found" >&2
  exit 1
fi
exit $status
