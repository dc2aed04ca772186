#!/usr/bin/env bash
# The paper's Adroit binary tasks on data rebuilt from the DAPG release (issue 33, docs/reproduce.md §6). Run by hand
# from the repository root after `bash dev.sh test` made .venv, with HAND_DAPG pointing at a checkout of
# github.com/aravindr93/hand_dapg (its files are read, never copied into this repository):
#   HAND_DAPG=/path/to/hand_dapg bash benchmarks/adroit.sh data   the datasets of §6.1 (about 5 minutes)
#   bash benchmarks/adroit.sh pilot [OUT_DIR]   §6.2: door-binary, Cal-QL 20k steps, then WSRL and Cal-QL without
#       data, 2 seeds, 100k online steps, critics 3 x 128 and actor 2 x 128 (hours on a 2-core CPU; resumes)
#   bash benchmarks/adroit.sh keep OUT_DIR NAME COMMIT   copy the light files of every run under OUT_DIR (config.json,
#       metrics.csv, summary.json; finished or not) to benchmarks/results/NAME/, with the commit the runs ran at
# Long runs belong in a git worktree at a fixed commit with its own .venv, so that other work cannot change them.
set -euo pipefail
part=${1:-}
wsrl=.venv/bin/wsrl
collect() {  # collect ID ARGS...: unless the Minari root has it
    local id=$1; shift
    [ -d "${MINARI_DATASETS_PATH:-$HOME/.minari/datasets}/$id" ] || $wsrl collect --out "$id" "$@"
}
case $part in
  data)
    : "${HAND_DAPG:?set HAND_DAPG to a checkout of github.com/aravindr93/hand_dapg}"
    collect wsrl/door/human-v0 --env AdroitHandDoor-v1 --recipe demos --from "$HAND_DAPG"
    collect wsrl/door/binary-v0 --env AdroitHandDoor-v1 --recipe adroit-binary --from "$HAND_DAPG" --steps 100000
    collect wsrl/pen/binary-v0 --env AdroitHandPen-v1 --recipe adroit-binary --from "$HAND_DAPG" --steps 50000
    for task in door pen relocate hammer; do
      collect wsrl/$task/expert-v0 --env "AdroitHand${task^}-v1" --recipe dapg --from "$HAND_DAPG" --steps 100000
    done
    for id in human-v0 binary-v0 expert-v0; do $wsrl data info wsrl/door/$id; done
    for id in pen/binary-v0 pen/expert-v0 relocate/expert-v0 hammer/expert-v0; do $wsrl data info wsrl/$id; done
    .venv/bin/python benchmarks/adroit_policies.py "$HAND_DAPG"
    ;;
  pilot)
    out=${2:-runs/adroit/pilot}
    $wsrl compare --dataset wsrl/door/binary-v0 --env AdroitHandDoor-v1 --preset adroit --methods wsrl,calql \
      --seeds 2 --steps 100000 --offline-steps 20000 --out "$out/door-binary" --workers 2 \
      --critic-hidden-dims 128 128 128 --actor-hidden-dims 128 128 --eval-every 5000 --eval-episodes 20
    ;;
  keep)
    out=${2:?OUT_DIR}; name=${3:?NAME}; commit=${4:?COMMIT}
    dest=benchmarks/results/$name
    (cd "$out" && find . \( -name config.json -o -name metrics.csv -o -name summary.json -o -name results.csv \) \
        -not -path '*/checkpoints/*' -not -path '*/wandb/*') | while read -r f; do
      mkdir -p "$dest/$(dirname "$f")" && cp "$out/$f" "$dest/$f"
    done
    echo "$commit" > "$dest/COMMIT"
    ;;
  *)
    echo "usage: bash benchmarks/adroit.sh data|pilot|keep [...]" >&2
    exit 2
    ;;
esac
