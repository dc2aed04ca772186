#!/usr/bin/env bash
# The paper's two comparisons (docs/method.md §5) at the `cpu` budget, on one PointMaze and one locomotion dataset
# of the cpu suite, 3 seeds. Run by hand from the repository root after `bash dev.sh test` made .venv:
#   bash benchmarks/paper_comparisons.sh [OUT_DIR]        (about 4.5 hours in all on a 2-core CPU)
# Needs the datasets: `wsrl collect --suite cpu` (or the two collect commands below). Interrupted runs resume.
set -euo pipefail
out=${1:-runs/paper-comparisons}
wsrl=.venv/bin/wsrl
no_retention=wsrl,wsrl-no-warmup,calql,cql,iql,sac-fast,jsrl
retention=calql-retain,calql-ensemble-utd,rlpd
$wsrl data info wsrl/pointmaze-umaze/waypoint-v0 >/dev/null 2>&1 || $wsrl collect --env PointMaze_UMaze-v3 \
    --recipe waypoint --steps 100000 --action-noise 0.3 --out wsrl/pointmaze-umaze/waypoint-v0
$wsrl data info wsrl/hopper/medium-v0 >/dev/null 2>&1 || $wsrl collect --env Hopper-v5 --recipe sac-ladder \
    --steps 100000 --rollout-steps 50000 --ladder-eval-every 5000 --out wsrl/hopper
# dataset:online steps:preset:directory (the presets' 10k online steps cut further to fit one session). PointMaze
# runs twice: with the locomotion recipe (`cpu`) and with the paper's sparse goal-reaching recipe (`cpu-maze`).
for run in wsrl/pointmaze-umaze/waypoint-v0:6000:cpu:pointmaze-umaze wsrl/hopper/medium-v0:8000:cpu:hopper \
        wsrl/pointmaze-umaze/waypoint-v0:6000:cpu-maze:pointmaze-maze-recipe; do
    IFS=: read -r dataset steps preset name <<<"$run"
    dir=$out/$name
    $wsrl compare --dataset "$dataset" --preset "$preset" --methods "$no_retention,$retention" --seeds 3 \
        --steps "$steps" --offline-steps 5000 --workers 2 --out "$dir"
    # The two comparisons as separate figures and tables: (a) no retention, (b) WSRL against retaining methods.
    $wsrl plot "$dir"/runs/{wsrl,wsrl-no-warmup,calql,cql,iql,sac-fast,jsrl}/ --out "$dir/no_retention.png" \
        --title "$dataset, $preset: without offline data"
    $wsrl plot "$dir"/runs/{wsrl,calql-retain,calql-ensemble-utd,rlpd}/ --out "$dir/retention.png" \
        --title "$dataset, $preset: WSRL vs methods that keep the data"
    .venv/bin/python - "$dir/results.csv" "$no_retention" "wsrl,$retention" <<'PY'
import csv, sys
from wsrl.compare import summary_table
rows = list(csv.DictReader(open(sys.argv[1])))
for row in rows:
    for key in ("score_start", "score_end", "auc", "regret"):
        row[key] = float(row[key]) if row[key] else ""
for methods in sys.argv[2:]:
    print("\n| method | seeds | score at start | score at end | area under curve | regret |\n|---|---|---|---|---|---|")
    for cells in summary_table([r for m in methods.split(",") for r in rows if r["method"] == m]):
        print("| " + " | ".join(cells) + " |")
PY
done
