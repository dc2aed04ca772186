#!/usr/bin/env bash
# The paper's comparisons (docs/method.md §5) at CPU budgets, seeds 0-2 or the SEEDS given. Run by hand from the
# repository root after `bash dev.sh test` made .venv; interrupted runs resume (run the same command again):
#   bash benchmarks/paper_comparisons.sh cpu [OUT_DIR]        docs/reproduce.md §2: the cpu suite's PointMaze
#       UMaze and weak Hopper medium data, 6k-8k online steps (about 4.5 hours on a 2-core CPU)
#   bash benchmarks/paper_comparisons.sh d4rl-like [OUT_DIR]  docs/reproduce.md §5: the d4rl-like suite's Hopper
#       medium and medium-expert (20k online steps), with the dip after the warmup, seeds 0-2
#   bash benchmarks/paper_comparisons.sh hopper-medium|hopper-medium-expert SEEDS [OUT_DIR]  one of them for more
#       seeds: SEEDS = S or FIRST-LAST (3-4: seeds 3 and 4)
#   bash benchmarks/paper_comparisons.sh bookkeeping [OUT_DIR]  docs/reproduce.md §5.3: WSRL and its pre-training with
#       the reference code's optimiser bookkeeping and without, Hopper medium, seeds 0-2 (about 70 minutes on a
#       2-core CPU once the Hopper ladder is collected)
#   bash benchmarks/paper_comparisons.sh pointmaze-large SEEDS [OUT_DIR]  docs/reproduce.md §5: PointMaze Large
#       (12k online steps), a seed per call (about 2 hours each on a 2-core CPU: SEEDS = 0, 1, 2, 3, 4 on one machine or
#       several)
# Each comparison directory (OUT_DIR/NAME/, or OUT_DIR/NAME/seedSEEDS/) gets results.csv and comparison.png; its
# finished runs' light files are kept in benchmarks/results/NAME/[seedSEEDS/] (commit them), and no_retention.png,
# retention.png and the two printed tables (mean ± std) are over every seed kept in benchmarks/results/NAME/.
set -euo pipefail
usage="usage: bash benchmarks/paper_comparisons.sh cpu|d4rl-like|bookkeeping [OUT_DIR] \
| hopper-medium|hopper-medium-expert|pointmaze-large SEEDS [OUT_DIR]"
part=${1:-}
if [[ $part =~ ^(hopper-medium|hopper-medium-expert|pointmaze-large)$ ]]; then
    seed_range=${2:-}  # S or FIRST-LAST
    [[ $seed_range =~ ^[0-9]+(-[0-9]+)?$ ]] && ((${seed_range#*-} >= ${seed_range%-*})) ||
        { echo "$usage (SEEDS: a seed, 0, or a range, 3-4)" >&2; exit 2; }
    out=${3:-runs/paper-comparisons/d4rl-like}
else
    out=${2:-runs/paper-comparisons/$part}
fi
wsrl=.venv/bin/wsrl
# The light files of every finished run (config.json, metrics.csv, summary.json: a few hundred kB in all), committed
# so that seeds run on machines whose disks are gone still count: the tables and figures are drawn from them.
results=benchmarks/results
# Issue 14's methods (d4rl-like, pointmaze-large): WSRL and its two warmup ablations, the offline learners continued
# without their data, SAC from scratch; and the methods that keep the data.
d4rl_no_retention=wsrl,wsrl-no-warmup,wsrl-random-warmup,calql,cql,iql,sac-fast
d4rl_retention=rlpd,calql-retain

tables() {  # tables DIR METHODS...: one markdown table per comma-separated method list, over every finished run
    local dir=$1                                  # in DIR/runs/ and DIR/seedS/runs/
    shift
    .venv/bin/python - "$dir" "$@" <<'PY'
import sys
from pathlib import Path
from wsrl.compare import SUMMARY_COLUMNS, result_row, summary_table
from wsrl.plots import run_label
from wsrl.train import rundir
dir = Path(sys.argv[1])
rows = [result_row(run_label(method_dir), rundir.read_config(run)["seed"], run)
        for method_dir in [*sorted(dir.glob("runs/*")), *sorted(dir.glob("seed*/runs/*"))]
        for run in rundir.members(method_dir) if (run / "summary.json").is_file()]
for methods in sys.argv[2:]:
    print("\n| method | seeds | " + " | ".join(SUMMARY_COLUMNS.values()) + " |")
    print("|---" * (2 + len(SUMMARY_COLUMNS)) + "|")
    for cells in summary_table([r for m in methods.split(",") for r in rows if r["method"] == m]):
        print("| " + " | ".join(cells) + " |")
PY
}

keep() {  # keep DIR KEPT: config.json, metrics.csv and summary.json of every finished run under DIR, copied into KEPT
    local dir=$1 kept=$2 summary run file
    while IFS= read -r summary; do
        run=$(dirname "${summary#"$dir"/}")
        mkdir -p "$kept/$run"
        for file in config.json metrics.csv summary.json; do
            [ ! -f "$dir/$run/$file" ] || cp "$dir/$run/$file" "$kept/$run/"
        done
    done < <(find "$dir" -name summary.json)
}

instance() {  # instance LEVEL EPISODES WHICH HOST: stop unless wsrl/hopper-d4rl/LEVEL-v0 is the data the kept runs used
    # The Hopper ladder's SAC run, and so its data, depends on the host's floating point (docs/reproduce.md §5.1): runs
    # on another instance of the data must not join the kept ones.
    local id=wsrl/hopper-d4rl/$1-v0 episodes
    episodes=$($wsrl data info "$id" | awk '$1 == "episodes" {print $2}')
    [ "$episodes" = "$2" ] || {
        echo "paper_comparisons.sh: $id has $episodes episodes, not the $2 of the data behind benchmarks/results/" \
            "(docs/reproduce.md §5.1, its $3 instance): run it on a host whose ladder gives that data ($4 did)" >&2
        exit 2
    }
}

compare() {  # compare DATASET OFFLINE_STEPS ONLINE_STEPS PRESET NAME NO_RETENTION RETENTION [SEEDS]
    # Seeds 0-2 into OUT/NAME, or (SEEDS given: S or FIRST-LAST) those seeds into OUT/NAME/seedSEEDS; its finished
    # runs kept in benchmarks/results/NAME[/seedSEEDS], the figures and tables then over every seed kept there.
    local dataset=$1 offline_steps=$2 steps=$3 preset=$4 dir=$out/$5 no_retention=$6 retention=$7 seeds=(--seeds 3)
    local run_dir=$dir kept=$results/$5
    if [ $# -ge 8 ]; then
        local first=${8%-*} last=${8#*-}
        seeds=(--seeds $((last - first + 1)) --first-seed "$first")
        run_dir=$dir/seed$8
    fi
    # The retaining methods first: RLPD (UTD 20), the longest run, takes the first worker the pre-trainings leave.
    $wsrl compare --dataset "$dataset" --preset "$preset" --methods "$retention,$no_retention" "${seeds[@]}" \
        --steps "$steps" --offline-steps "$offline_steps" --workers 2 --out "$run_dir"
    keep "$run_dir" "$kept${run_dir#"$dir"}"  # the same layout: KEPT or KEPT/seedSEED
    # The two comparisons as separate figures: (a) no retention, (b) WSRL against the methods that keep the data;
    # they and the tables are over every seed kept, from this machine and others.
    figure "$kept" "$no_retention" "$dir/no_retention.png" "$dataset, $preset: without offline data"
    figure "$kept" "wsrl,$retention" "$dir/retention.png" "$dataset, $preset: WSRL vs methods that keep the data"
    tables "$kept" "$no_retention" "wsrl,$retention"
}

figure() {  # figure DIR METHODS PNG TITLE: the methods' runs in DIR/runs/ or DIR/seedS/runs/ (one band per method)
    local dir=$1 png=$3 title=$4 methods runs=() m
    IFS=, read -ra methods <<<"$2"
    for m in "${methods[@]}"; do
        runs+=("$dir"/runs/"$m" "$dir"/seed*/runs/"$m")
    done
    local existing=()
    for m in "${runs[@]}"; do [ -d "$m" ] && existing+=("$m"); done
    $wsrl plot "${existing[@]}" --out "$png" --title "$title"
}

case $part in
  cpu)
    no_retention=wsrl,wsrl-no-warmup,calql,cql,iql,sac-fast,jsrl
    retention=calql-retain,calql-ensemble-utd,rlpd
    $wsrl data info wsrl/pointmaze-umaze/waypoint-v0 >/dev/null 2>&1 || $wsrl collect --env PointMaze_UMaze-v3 \
        --recipe waypoint --steps 100000 --action-noise 0.3 --out wsrl/pointmaze-umaze/waypoint-v0
    $wsrl data info wsrl/hopper/medium-v0 >/dev/null 2>&1 || $wsrl collect --env Hopper-v5 --recipe sac-ladder \
        --steps 100000 --rollout-steps 50000 --ladder-eval-every 5000 --out wsrl/hopper
    # The presets' 10k online steps cut further to fit one session. PointMaze runs twice: with the locomotion
    # recipe (`cpu`) and with the paper's sparse goal-reaching recipe (`cpu-maze`).
    compare wsrl/pointmaze-umaze/waypoint-v0 5000 6000 cpu pointmaze-umaze $no_retention $retention
    compare wsrl/hopper/medium-v0 5000 8000 cpu hopper $no_retention $retention
    compare wsrl/pointmaze-umaze/waypoint-v0 5000 6000 cpu-maze pointmaze-maze-recipe $no_retention $retention
    ;;
  d4rl-like|hopper-medium|hopper-medium-expert)
    # The datasets they need, from the d4rl-like suite (skipped once collected; Hopper's ladder: about 55 minutes
    # of a 2-core CPU). `wsrl collect --suite d4rl-like` makes the whole suite.
    $wsrl collect --suite d4rl-like --out wsrl/hopper-d4rl
    # The kept runs used the ladder's first instance (docs/reproduce.md §5.1: medium 232 episodes, medium-expert 340).
    instance medium 232 first "AMD EPYC with AVX2"
    instance medium-expert 340 first "AMD EPYC with AVX2"
    # 20k offline steps (after 5k, the pre-trained Hopper policies scored 1-25 on data of 33) and 20k online steps:
    # the warmup (K = 2000 in the cpu presets) and the 10k-step window of the dip, then 8k more.
    names=(hopper-medium hopper-medium-expert)
    [ "$part" = d4rl-like ] || names=("$part")
    for name in "${names[@]}"; do
        compare "wsrl/hopper-d4rl/${name#hopper-}-v0" 20000 20000 cpu "$name" $d4rl_no_retention $d4rl_retention \
            ${seed_range:+"$seed_range"}
    done
    ;;
  bookkeeping)
    # docs/reproduce.md §5.3: WSRL and its CQL pre-training with the reference code's optimiser bookkeeping (every
    # preset's: docs/method.md §2.4) against the clean one (--no-step-all-optimizers); Hopper medium, seeds 0-2, the
    # d4rl-like comparisons' budgets. The two arms run side by side, one process each.
    $wsrl collect --suite d4rl-like --out wsrl/hopper-d4rl
    instance medium 366 second "Intel Xeon with AVX-512"
    dir=$out/hopper-medium kept=$results/bookkeeping-hopper-medium
    pids=()
    for arm in reference clean; do
        flags=()
        [ $arm = reference ] || flags=(--no-step-all-optimizers)
        $wsrl compare --dataset wsrl/hopper-d4rl/medium-v0 --preset cpu --methods wsrl --seeds 3 --steps 20000 \
            --offline-steps 20000 --out "$dir/$arm" ${flags[@]+"${flags[@]}"} &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    # Kept as KEPT/pretrain/cql-ARM and KEPT/runs/wsrl-ARM: a curve's and a table row's label is its directory's name.
    for arm in reference clean; do
        keep "$dir/$arm/pretrain/cql" "$kept/pretrain/cql-$arm"
        keep "$dir/$arm/runs/wsrl" "$kept/runs/wsrl-$arm"
    done
    $wsrl plot "$kept"/pretrain/cql-{reference,clean} --out "$dir/pretrain.png" \
        --title "wsrl/hopper-d4rl/medium-v0, cpu: CQL pre-training, optimiser bookkeeping"
    figure "$kept" wsrl-reference,wsrl-clean "$dir/wsrl.png" \
        "wsrl/hopper-d4rl/medium-v0, cpu: WSRL, optimiser bookkeeping"
    tables "$kept" wsrl-reference,wsrl-clean
    ;;
  pointmaze-large)
    # 12k online steps (the warmup and the dip's window), since `cpu-maze` updates 4-layer critics with max-target
    # backups and evaluates 800-step episodes (WSRL took 217 s per 1k steps for 3 seeds, 84 on Hopper); one seed
    # per call, so that each call is a job of a few hours (3 seeds at once: about 7.5 hours of a 2-core CPU). The
    # waypoint data is the same on every machine (docs/reproduce.md §5.1), so seeds run on different machines add up.
    $wsrl collect --suite d4rl-like --out wsrl/pointmaze-large/waypoint-v0
    compare wsrl/pointmaze-large/waypoint-v0 20000 12000 cpu-maze pointmaze-large \
        $d4rl_no_retention $d4rl_retention "$seed_range"
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
