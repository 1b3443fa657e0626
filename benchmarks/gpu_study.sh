#!/usr/bin/env bash
# The full study on an instruction-tuned 1-8B model, on a GPU: probe (answers, samples, scores, judge in the
# isolated and both list modes, cells design, few-shot), analyze, figures, report, then the thesis table and
# the list-balance table, for capitals and TruthfulQA mc1 (../shared/data, skipped where absent).
#
#   bash benchmarks/gpu_study.sh [MODEL] [N]      # default MODEL Qwen/Qwen2.5-1.5B-Instruct, N 200
#   PY=.venv/bin/python DEVICE=cuda bash benchmarks/gpu_study.sh /models/Llama-3.1-8B-Instruct 300
#
# MODEL: a local folder or a hub id already in the Hugging Face cache (HF_HUB_OFFLINE=1: nothing is
# downloaded). Outputs: runs/gpu_study/<model>/<task>/ (the run, analysis/, figures/, report.html) and
# runs/gpu_study/<model>/thesis.md. Resumable: rerun the same command after an interruption.
#
# NOT RUN: no GPU was lent to the session that wrote this script (2026-12-08), so it has never run and the
# times below are expectations, not measurements. Basis: on 2 shared CPU cores Gemma 3 270M takes about
# 10-30 s an item for the same study (analyses/06_thesis.py); a 1.5B model in bfloat16 on one H100 should
# take well under 1 s an item for generation and scoring and about 1-2 s an item for the three judge
# modes with 4 examples (prompts batched, their shared prefixes run once); an 8B model about 3-5x that.
#   step                           1.5B, N=200      8B, N=200
#   load (+ first conversion)      < 1 min          2-3 min
#   probe: generate + score        1-3 min          4-10 min
#   probe: judge (3 modes)         3-8 min          10-30 min
#   analyze + figures + report     1-2 min          1-2 min        (CPU: bootstraps and plots)
#   per task, total                ~10 min          ~20-45 min
# Record the measured times (printed per step below) next to these when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-Qwen/Qwen2.5-1.5B-Instruct}
N=${2:-200}
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DEVICE=${DEVICE:-cuda}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('cuda:', ok, torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 1)" \
  || { echo "no CUDA device: this study is meant for a GPU (set DEVICE=cpu to force it, for hours)"; [ "$DEVICE" = cpu ] || exit 1; }
SB=("$PY" -m selfbias.cli)
OUT=runs/gpu_study/$(echo "$MODEL" | tr '/:@' '___')
mkdir -p "$OUT"
TRUTHFULQA=../shared/data/truthfulqa/mc_task.json
TASKS=("capitals")
[ -f "$TRUTHFULQA" ] && TASKS+=("$TRUTHFULQA") || echo "skipped: $TRUTHFULQA not found"

step() {  # step NAME COMMAND...: run and print its wall time
  local name=$1; shift
  local t0=$SECONDS
  echo; echo "=== $name ==="
  "$@"
  echo "--- $name: $((SECONDS - t0)) s"
}

for task in "${TASKS[@]}"; do
  label=capitals; fmt=()
  if [ "$task" != capitals ]; then label=truthfulqa_mc1; fmt=(--format truthfulqa_mc1); fi
  run="$OUT/$label"
  # the toolkit's defaults for the list modes (cells design: k = 3, a correct answer listed with probability
  # 1/2, own and outside lists matched in plausibility) and 4 few-shot examples from held-out items;
  # 8 samples at temperature 1.0 so that most items have the 4 distinct own wrong answers a list needs
  step "probe $label (n=$N)" "${SB[@]}" probe -m "$MODEL" --task "$task" "${fmt[@]}" --n "$N" --samples 8 \
    --temperature 1.0 --few-shot 4 --judge-modes isolated,own_samples,alternatives --device "$DEVICE" --out "$run"
  step "analyze $label" "${SB[@]}" analyze "$run"
  step "figures $label" "${SB[@]}" figures "$run"
  step "report $label" "${SB[@]}" report "$run"
done

step "thesis and balance tables" "$PY" - "$OUT" "${TASKS[@]}" <<'EOF'
import sys
from pathlib import Path

import selfbias
from selfbias import stats
from selfbias.stats._summary import _markdown_table

out = Path(sys.argv[1])
lines = []
for task in sys.argv[2:]:
    label = "capitals" if task == "capitals" else "truthfulqa_mc1"
    frame = selfbias.load_run(out / label).analysis_frame()
    health = stats.judge_health(frame)
    thesis = stats.thesis_effect(frame)
    lines += [f"## {label}", "", "### Judge health", "", _markdown_table(health.drop(columns="reasons")), "",
              "### List balance", "", _markdown_table(stats.list_balance(frame).drop(columns="method")), "",
              "### Thesis (cells and interaction, own wrong answers)", "",
              _markdown_table(thesis.table.drop(columns="method")), "", *[f"- {s}" for s in thesis.sentences], ""]
(out / "thesis.md").write_text("\n".join(lines))
print("\n".join(lines))
print(f"written: {out / 'thesis.md'}")
EOF
