#!/usr/bin/env bash
# Set up .venv/ at the repo root: reflex-core with its export, test, sim and eval extras, and every plugin
# under plugins/, all editable, torch pinned to the local CPU build by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

plugin_args=()
for dir in plugins/reflex-*/; do
  [ -f "$dir/pyproject.toml" ] && plugin_args+=(-e "$dir")
done

.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -c constraints.txt -e ".[export,test,sim,eval]" "${plugin_args[@]}"
# openpi-client, the unmodified client the reflex-openpi tests drive, pins numpy<2 but runs on
# numpy 2: install it without its pins (what it imports is in the test extra).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
  -c constraints.txt openpi-client==0.1.2
# robosuite, the simulator of plugins/reflex-robosuite, pins mink==0.0.5, which pins numpy<2:
# beside numpy 2 pip cannot resolve it. The wheel never imports mink and runs on numpy 2 and
# MuJoCo 3.3.0: install it without its pins, and what it does import with it (scipy, numba and
# its llvmlite, opencv headless, termcolor, Pillow; reflex-robosuite declares the same, so the
# first install above has already resolved them against everything else).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
  -c constraints.txt robosuite==1.5.2 \
  scipy numba llvmlite opencv-python-headless termcolor Pillow
# A stale reflex install from a previous layout must not shadow this checkout. openpi-client's
# and robosuite's own pins are known not to hold (above) and are left out of the check.
broken=$(.venv/bin/python -m pip check 2>&1 |
  grep -v -e '^openpi-client ' -e '^robosuite ' -e '^No broken' || true)
[ -z "$broken" ] || { echo "$broken"; exit 1; }
