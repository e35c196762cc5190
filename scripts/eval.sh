#!/usr/bin/env bash
# Set up, then `reflex eval` end to end on Meta-World's reach-v3, offline and headless:
#   1. the harness check: Meta-World's scripted expert served behind the wire protocol; it must
#      score near 100 % (the script fails under 80 %);
#   2. the random-weight tiny pi0.5 re-labelled for the Sawyer (reflex_metaworld.tiny), exported
#      with its parity gate, then a sweep over the deadline wedge: one server per point, the
#      points as Ray tasks, one comparison table, a video per episode;
#   3. `reflex eval report` on the sweep: the table again and sweep.png.
# Everything goes under artifacts/eval/ (or the directory given as $1); the export is reused when
# it is already there. EPISODES (10), SWEEP (deadline-ms=50,100,200), MAX_STEPS (200) override.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1} \
  MUJOCO_GL=${MUJOCO_GL:-egl} HF_HUB_OFFLINE=1
out=${1:-artifacts/eval}
episodes=${EPISODES:-10}
sweep=${SWEEP:-deadline-ms=50,100,200}
max_steps=${MAX_STEPS:-200}
python=.venv/bin/python
reflex=.venv/bin/reflex
mkdir -p "$out"

echo "== 1/3 the harness check: Meta-World's scripted expert, served (near 100 %)"
"$reflex" eval --expert --env metaworld/reach-v3 --episodes "$episodes" --no-progress \
  --out "$out/expert.jsonl" | grep -v '^{"summaries"'
"$python" - "$out/expert.jsonl" <<'EOF'
import json, sys
(summary,) = [r for r in map(json.loads, open(sys.argv[1])) if r["type"] == "summary"]
rate = summary["success_rate"] or 0.0
print(f"expert: {summary['successes']}/{summary['episodes']} successes ({100 * rate:.0f} %)")
sys.exit(0 if rate >= 0.8 and not summary["errors"] else "the scripted expert should score near 100 %")
EOF

echo "== 2/3 the random-weight tiny pi0.5 for the Sawyer: export, then --sweep $sweep"
if [ ! -f "$out/tiny-export/reflex_config.json" ]; then
  rm -rf "$out/tiny-checkpoint" "$out/tiny-export"
  "$python" -c 'import sys; from reflex_metaworld.tiny import write_tiny_checkpoint as w; w(sys.argv[1])' \
    "$out/tiny-checkpoint"
  "$reflex" export "$out/tiny-checkpoint" --embodiment sawyer-metaworld -o "$out/tiny-export" -q
fi
sweep_args=()
for s in $sweep; do sweep_args+=(--sweep "$s"); done
"$reflex" eval --artifact "$out/tiny-export" --env metaworld/reach-v3 --episodes "$episodes" \
  --max-steps "$max_steps" "${sweep_args[@]}" --deadline-fallback tail \
  --video "$out/videos" --no-progress --out "$out/sweep.jsonl" | grep -v '^{"summaries"'

echo "== 3/3 reflex eval report"
"$reflex" eval report "$out/sweep.jsonl" --png "$out/sweep.png"
