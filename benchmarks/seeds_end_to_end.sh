#!/usr/bin/env bash
# End-to-end throughput of N seeds: one `wsrl finetune --seeds N` process against N single-seed processes run
# P at a time (the machine's cores), same budget, same pre-trained checkpoints. Run by hand:
#   bash benchmarks/seeds_end_to_end.sh [N=8] [STEPS=3000] [P=2] [PRESET=cpu]
# Prints the wall time of each and env steps/s summed over seeds. Needs a dataset: it collects a small random
# Hopper-v5 one into a temporary Minari root.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-8}; STEPS=${2:-3000}; P=${3:-2}; PRESET=${4:-cpu}
WSRL=.venv/bin/wsrl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MINARI_DATASETS_PATH="$work/minari"
common=(--preset "$PRESET" --steps "$STEPS" --eval-every "$STEPS" --eval-episodes 1 --checkpoint-minutes 0)

$WSRL collect --env Hopper-v5 --steps 5000 --out bench/hopper-random-v0 >/dev/null
$WSRL pretrain --dataset bench/hopper-random-v0 --preset "$PRESET" --steps 50 --seeds "$N" --eval-episodes 1 \
    --out "$work/pre" >/dev/null

start=$(date +%s.%N)
$WSRL finetune --from "$work/pre" --seeds "$N" "${common[@]}" --out "$work/together" >/dev/null
together=$(echo "$(date +%s.%N) - $start" | bc)

start=$(date +%s.%N)
seq 0 $((N - 1)) | xargs -P "$P" -I{} $WSRL finetune --from "$work/pre/seed{}" --seed {} "${common[@]}" \
    --out "$work/apart/seed{}" >/dev/null
apart=$(echo "$(date +%s.%N) - $start" | bc)

printf '%-34s %8s %14s\n' "configuration" "wall s" "env steps/s"
printf '%-34s %8.1f %14.1f\n' "1 process, --seeds $N" "$together" "$(echo "$N * $STEPS / $together" | bc -l)"
printf '%-34s %8.1f %14.1f\n' "$N processes, $P at a time" "$apart" "$(echo "$N * $STEPS / $apart" | bc -l)"
