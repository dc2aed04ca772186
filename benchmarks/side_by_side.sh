#!/usr/bin/env bash
# Issue 37 §1: our update rates against the reference WSRL code and CORL's Cal-QL, on this host, interleaved.
# Usage, from the repository root (the two checkouts are yours to clone; nothing of them enters this repository):
#   bash benchmarks/side_by_side.sh REF_WSRL_DIR CORL_CAL_QL_PY [ROUNDS=3] [SECONDS=10] [OUT=side_by_side.txt]
#     REF_WSRL_DIR     a checkout of github.com/zhouzypaul/wsrl
#     CORL_CAL_QL_PY   algorithms/finetune/cal_ql.py of github.com/tinkoff-ai/CORL
# Scratch venvs are built once under $SCRATCH (default ~/.cache/wsrl-side-by-side): `ref` with the reference code's
# pins (jax/jaxlib 0.4.20, flax 0.7.5, optax 0.1.5, chex 0.1.82, distrax 0.1.2, numpy 1.26.4), `corl` with the
# current PyPI torch. Each round runs, at widths 64, 128, 256 (critics 2 layers) and 512 (critics 3 layers, Adroit /
# Kitchen), ours (`throughput.py --only`), the reference, then CORL (width 256 only: its widths are fixed); the table
# at the end gives each configuration's median over rounds and ours / theirs. Every raw line goes to OUT.
# Options in the environment: WIDTHS (default "64 128 256 512"); REF_NEW=1 also runs the reference code on the newest
# stack it runs on (jax/jaxlib 0.4.35, flax 0.8.5, optax 0.2.3, chex 0.1.87, distrax 0.1.5; venv `ref-new`), to
# tell the code's speed from its pinned jax's.
set -euo pipefail
ref=$(realpath "$1"); corl=$(realpath "$2"); rounds=${3:-3}; seconds=${4:-10}; out=${5:-side_by_side.txt}
cd "$(dirname "$0")/.."
scratch=${SCRATCH:-$HOME/.cache/wsrl-side-by-side}
mkdir -p "$scratch"
if [ ! -x "$scratch/ref/bin/python" ]; then
  python3 -m venv "$scratch/ref.tmp"
  "$scratch/ref.tmp/bin/pip" install -q "jax==0.4.20" "jaxlib==0.4.20" "flax==0.7.5" "optax==0.1.5" "chex==0.1.82" \
    "distrax==0.1.2" "numpy==1.26.4" "scipy==1.11.2" ml_collections absl-py einops tqdm overrides
  mv "$scratch/ref.tmp" "$scratch/ref"
fi
if [ "${REF_NEW:-0}" = 1 ] && [ ! -x "$scratch/ref-new/bin/python" ]; then
  python3 -m venv "$scratch/ref-new.tmp"
  "$scratch/ref-new.tmp/bin/pip" install -q "jax==0.4.35" "jaxlib==0.4.35" "flax==0.8.5" "optax==0.2.3" \
    "chex==0.1.87" "distrax==0.1.5" "numpy==1.26.4" "scipy==1.13.1" ml_collections absl-py einops tqdm overrides
  mv "$scratch/ref-new.tmp" "$scratch/ref-new"
fi
if [ ! -x "$scratch/corl/bin/python" ]; then
  python3 -m venv "$scratch/corl.tmp" && "$scratch/corl.tmp/bin/pip" install -q torch numpy
  mv "$scratch/corl.tmp" "$scratch/corl"
fi
[ -x .venv/bin/python ] || bash dev.sh test --collect-only -q >/dev/null  # our venv, as the README makes it
exec > >(tee "$out") 2>&1
echo "side_by_side $(date -Is) commit $(git rev-parse --short HEAD) on $(nproc) cores; reference $(git -C "$ref" \
rev-parse --short HEAD 2>/dev/null || echo '?'), CORL file sha256 $(sha256sum "$corl" | cut -c1-12)"
for round in $(seq "$rounds"); do
  for width in ${WIDTHS:-64 128 256 512}; do
    set -- "$width" "$([ "$width" -ge 512 ] && echo 3 || echo 2)"
    echo "=== round $round width $1 layers $2"
    .venv/bin/python benchmarks/throughput.py --seconds "$seconds" --hidden "$1" --layers "$2" \
      --only "WSRL online" "Cal-QL" | sed "s/^/OURS $1 /"
    "$scratch/ref/bin/python" -W ignore benchmarks/reference_throughput.py wsrl-ref --code "$ref" --seconds "$seconds" \
      --hidden "$1" --layers "$2" | sed "s/^/REF $1 /"
    if [ "${REF_NEW:-0}" = 1 ]; then
      "$scratch/ref-new/bin/python" -W ignore benchmarks/reference_throughput.py wsrl-ref --code "$ref" \
        --seconds "$seconds" --hidden "$1" --layers "$2" | sed "s/^/REFNEW $1 /"
    fi
    if [ "$1" = 256 ]; then
      "$scratch/corl/bin/python" benchmarks/reference_throughput.py corl --code "$corl" --seconds "$seconds" \
        --layers "$2" | sed "s/^/CORL $1 /"
    fi
  done
done
python3 - "$out" <<'EOF'
import re, statistics, sys
rates = {}  # (width, name) -> {codebase: [rates]}
for line in open(sys.argv[1]):
    m = (re.match(r"OURS (\d+) (.+?)\s+([\d.]+) updates/s", line)
         or re.match(r"(?:REF|REFNEW|CORL) (\d+) RESULT (.+) ([\d.]+)$", line))
    if m:
        who = line.split()[0]
        rates.setdefault((int(m[1]), m[2].strip()), {}).setdefault(who, []).append(float(m[3]))
print("\n| width | configuration | ours (updates/s) | theirs | ours / theirs |\n|---|---|---|---|---|")
for (width, name), by in sorted(rates.items()):
    ours = statistics.median(by["OURS"]) if "OURS" in by else float("nan")
    labels = {"REF": "reference WSRL, jax 0.4.20", "REFNEW": "reference WSRL, jax 0.4.35", "CORL": "CORL"}
    for who, label in labels.items():
        if who in by:
            theirs = statistics.median(by[who])
            print(f"| {width} | {name} | {ours:.2f} | {theirs:.2f} ({label}) | {ours / theirs:.2f} |")
EOF
