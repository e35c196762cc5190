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
# The tests run in parallel (pytest-xdist), one worker per usable core, at most 4 (each may hold
# torch and an export in memory). --dist loadfile: a file's tests run in one worker, one after
# another, so a module-scoped fixture is set up once and tests that must not overlap (the two
# that start a local Ray cluster) share a file. (Not loadgroup: with pytest 9.2 it silently
# ignores xdist_group, pytest-xdist issue 1386.) Files go out in collection order, where
# tests/conftest.py puts those with slow tests first. REFLEX_TEST_WORKERS=N sets the number
# (0: all in this process), and so does `-n N` among the arguments (the last -n wins).
if [ -n "${REFLEX_TEST_WORKERS:-}" ]; then
  workers=$REFLEX_TEST_WORKERS
else
  # (nproc would answer $OMP_NUM_THREADS, set above)
  workers=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)
  [ "$workers" -le 4 ] || workers=4
  [ "$workers" -ge 2 ] || workers=0  # one worker would only add its start-up to one process
fi
for arg in "$@"; do
  case $arg in --pdb | --trace) workers=0 ;; esac  # a debugger needs the terminal
done
status=0
.venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
