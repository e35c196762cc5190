#!/usr/bin/env bash
# Build .venv-reference/ at the repo root: lerobot 0.4.4 (the public reference implementation of
# the model families we export) on stock transformers 4.57.x, beside our .venv (never inside it:
# lerobot 0.4.4 needs transformers 4.57.x, ours is 5.x).
#
# Only registry packages: torch pinned by constraints.txt (the local CPU build), lerobot without
# its dependency tree (it would pull the dataset/video stack and torchvision), and just what the
# imported policy modules need (notes/reference-implementations.md). torchvision is deliberately
# absent: the registry's build does not load against the local torch, and a broken torchvision
# breaks `from transformers import PreTrainedModel`; the check scripts stub the module-level
# imports of it instead.
#
# Idempotent: a venv whose marker matches this script's package list is reused as is.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${REFLEX_REFERENCE_VENV:-.venv-reference}
packages=(
  "lerobot==0.4.4"
  "transformers>=4.57,<4.58"
  "draccus==0.10.0"
  "huggingface-hub>=0.34.2,<0.36"
  "safetensors>=0.4.3"
  "einops"
  "termcolor"
  "packaging"
  "accelerate"
  "imageio"
  "gymnasium"
  "deepdiff"
  "pyserial"
  "tokenizers"
  "numpy"
  "diffusers>=0.27.2,<0.36"  # GR00T's action head (cross_attention_dit.py) is built on diffusers
)
marker="torch==2.13.0 ${packages[*]}"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.reflex-reference" 2>/dev/null)" = "$marker" ]; then
  exit 0
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" -c constraints.txt torch==2.13.0
# lerobot's own requirements pull torchvision, datasets, av...: none of them is imported by the
# policy modules the check uses.
"${pip[@]}" --no-deps "${packages[0]}"
"${pip[@]}" -c constraints.txt "${packages[@]:1}"
"$venv/bin/python" - <<'PY'
import importlib.util, sys
assert importlib.util.find_spec("torchvision") is None, "torchvision must not be installed here"
import torch, transformers, lerobot  # noqa: F401
print(f"reference venv: torch {torch.__version__}, transformers {transformers.__version__}", file=sys.stderr)
PY
echo "$marker" > "$venv/.reflex-reference"
