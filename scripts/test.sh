#!/usr/bin/env bash
# Set up, then run every check: ruff, mypy on the plugin contracts, and the tests of the core
# and of every plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One thread each: on 2 shared cores a busy second core makes multi-threaded kernels crawl.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1
.venv/bin/ruff check .
# the plugin contracts, strictly typed (the files are listed under [tool.mypy] in pyproject.toml)
.venv/bin/mypy
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
