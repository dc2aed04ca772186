"""A robot's control loop with and without --async (issue 36 §4, docs/robots.md): WSRL fine-tuning on a MuJoCo task
wrapped to step in real time (`wsrl.envs.RealTime`, which sleeps to the control period), one env and no evaluation
rollouts, as on hardware. For each seed the synchronous and the --async run go one after the other; reported: the
control period's mean, 99th percentile and worst, the share of late steps (over 1.5 periods), the realised UTD, and
the training-episode returns at the same env steps.

    .venv/bin/python benchmarks/realtime.py PRETRAINED_RUN OUT [--hz 20] [--steps 3000] [--seeds 3]
"""

import argparse
import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import wsrl
from wsrl.envs import RealTime


def run_one(pretrained: Path, out: Path, hz: float, steps: int, seed: int, asynchronous: bool) -> dict:
    made: list[RealTime] = []

    def pendulum_in_real_time() -> gym.Env:
        made.append(RealTime(gym.make("InvertedPendulum-v5"), hz))
        return made[-1]

    run = wsrl.finetune(pendulum_in_real_time, pretrained=pretrained, preset="demo", out=out, overwrite=True,
                        seed=seed, steps=steps, warmup_steps=500, eval_episodes=0, eval_every=500, log_every=100,
                        checkpoint_minutes=0, asynchronous=asynchronous)
    periods = np.asarray(made[0].periods)
    np.save(out / "periods.npy", periods)
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    curve = {int(r["env_step"]): float(r["train_return"]) for r in rows if r["train_return"]}
    utd = [float(r["utd_realised"]) for r in rows if r.get("utd_realised")]
    return {"mean": periods.mean(), "p99": np.percentile(periods, 99), "max": periods.max(),
            "late": float(np.mean(periods > 1.5 / hz)), "utd": utd[-1] if utd else 4.0, "curve": curve,
            "grad_steps": run.summary["grad_steps"], "wall": run.summary["wall_time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pretrained", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--hz", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"sync": [], "async": []}
    for seed in range(args.seeds):
        for mode in ("sync", "async"):
            results[mode].append(run_one(args.pretrained, args.out / f"{mode}-seed{seed}", args.hz, args.steps, seed,
                                         mode == "async"))
    print(f"| loop ({args.hz:g} Hz, period {1000 / args.hz:.0f} ms, {args.seeds} seeds) | mean period (ms) | "
          "99th pct (ms) | worst (ms) | late steps (> 1.5 periods) | UTD at the last log | wall time (s) |")
    print("|---|---|---|---|---|---|---|")
    for mode, runs in results.items():
        cells = [f"{1000 * np.mean([r[k] for r in runs]):.1f}" for k in ("mean", "p99")]
        cells += [f"{1000 * max(r['max'] for r in runs):.1f}", f"{np.mean([r['late'] for r in runs]):.3f}",
                  f"{np.mean([r['utd'] for r in runs]):.2f}", f"{np.mean([r['wall'] for r in runs]):.0f}"]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    steps = sorted(set.intersection(*[set(r["curve"]) for runs in results.values() for r in runs]))
    print("\n| env step | " + " | ".join(f"{s}" for s in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for mode, runs in results.items():
        print(f"| {mode}: training return (mean of {args.seeds}) | " +
              " | ".join(f"{np.mean([r['curve'][s] for r in runs]):.0f}" for s in steps) + " |")
    (args.out / "results.json").write_text(json.dumps(results, default=float, indent=1))


if __name__ == "__main__":
    main()
