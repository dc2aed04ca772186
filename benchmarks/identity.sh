#!/usr/bin/env bash
# Same commands, same results? (issue 34 §5) Runs a fixed set of small commands with one checkout's .venv into OUT:
#   bash benchmarks/identity.sh REPO OUT        (REPO: a checkout with .venv; about 5 minutes on 2 CPU cores)
#   .venv/bin/python benchmarks/identity_compare.py OUT_A OUT_B
# pretrain --algo calql and --algo iql, then finetune --method wsrl, calql and jsrl from the Cal-QL run, and a
# stopped-and-resumed copy of the WSRL run; identity_compare.py says which files differ beyond wall-clock fields.
set -euo pipefail
repo=$(cd "${1:?REPO}" && pwd); out=${2:?OUT}
mkdir -p "$out"; out=$(cd "$out" && pwd)
export MINARI_DATASETS_PATH=$out/minari
wsrl=$repo/.venv/bin/wsrl
env=InvertedPendulum-v5
common="--preset cpu --env $env --seed 3"
$wsrl collect --env $env --recipe random --steps 3000 --seed 3 --out identity/ip-random-v0 > "$out/log.txt" 2>&1
for algo in calql iql; do
  $wsrl pretrain --dataset identity/ip-random-v0 --algo $algo $common --steps 600 --eval-every 300 \
    --log-every 100 --out "$out/pretrain-$algo" >> "$out/log.txt" 2>&1
done
for method in wsrl calql jsrl; do
  $wsrl finetune --from "$out/pretrain-calql" --method $method $common --steps 1600 --warmup-steps 300 \
    --eval-every 400 --log-every 100 --checkpoint-every 800 --out "$out/finetune-$method" >> "$out/log.txt" 2>&1
done
# The WSRL run again, ended at 1200 steps and resumed to 1600.
$wsrl finetune --from "$out/pretrain-calql" --method wsrl $common --steps 1200 --warmup-steps 300 --eval-every 400 \
  --log-every 100 --checkpoint-every 800 --out "$out/resumed-wsrl" >> "$out/log.txt" 2>&1
$wsrl resume "$out/resumed-wsrl" --steps 1600 >> "$out/log.txt" 2>&1
echo "commit $(git -C "$repo" rev-parse HEAD)" > "$out/COMMIT"
