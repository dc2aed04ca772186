"""`wsrl demo`: the whole method end to end on a small task, with ordinary wsrl calls underneath.

collect a random dataset (cached in the Minari root) -> pre-train CQL -> fine-tune with WSRL (warmup, then
10-critic SAC at UTD 4, no offline data) -> before/after table and learning-curve PNG in the run directory. The
stages are the Python API's calls (`wsrl.pretrain`, `wsrl.finetune`) on the demo preset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from wsrl import api
from wsrl.collect import collect
from wsrl.config import CollectConfig
from wsrl.data.loaders import find_minari
from wsrl.plots import plot_runs, read_run
from wsrl.presets import demo

# (dataset steps, offline gradient steps, online env steps, warmup steps, eval every)
# quick: the first of WSRL's gradient steps at env step 1025 (one UTD x batch, 4 x 256), ~1900 of them in 1500 steps
BUDGETS = {"default": (5000, 5000, 10_000, 1000, 1000), "quick": (2000, 500, 1500, 500, 500)}


def run_demo(out: str | Path | None = None, seed: int = 0, quick: bool = False) -> dict[str, Any]:
    """Run the demo into `out` (default runs/demo, or runs/demo-quick with `quick`, so that a quick run never
    replaces a full one; an earlier demo of the same kind there is replaced); returns the summary it prints."""
    out = Path(out if out is not None else "runs/demo-quick" if quick else "runs/demo")
    data_steps, offline_steps, online_steps, warmup, eval_every = BUDGETS["quick" if quick else "default"]
    dataset = f"wsrl-demo/invertedpendulum-random-{data_steps}-seed{seed}-v0"
    if find_minari(dataset) is None:
        collect(CollectConfig(env=demo.ENV, recipe="random", steps=data_steps, seed=seed), dataset)
    pre = api.pretrain(dataset, preset="demo", env=demo.ENV, out=out / "pretrain", overwrite=True, seed=seed,
                       steps=offline_steps, eval_every=min(eval_every, offline_steps)).summary
    fine = api.finetune(demo.ENV, pretrained=out / "pretrain", preset="demo", out=out / "finetune", overwrite=True,
                        seed=seed, steps=online_steps, warmup_steps=warmup, eval_every=eval_every).summary
    figure = plot_runs([out / "finetune"], out / "learning_curve.png", labels=["WSRL from CQL"],
                       title=f"WSRL on {demo.ENV}: CQL pre-trained on random data, then fine-tuned online")
    online_evals = read_run(out / "finetune")["eval_return"][1]
    summary = {"env": demo.ENV, "dataset": dataset, "seed": seed, "quick": quick,
               "pretrained_return": pre["final_eval"]["eval_return"],
               "finetuned_return": fine["final_eval"]["eval_return"],
               "finetuned_mean_last5": float(online_evals[-5:].mean()),
               "finetuned_best": float(online_evals.max()),
               "offline_steps": offline_steps, "online_steps": online_steps, "warmup_steps": warmup,
               "online_grad_steps": fine["grad_steps"],
               "wall_time_s": pre["wall_time_s"] + fine["wall_time_s"], "learning_curve": str(figure)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    table = Table(title=f"wsrl demo: {demo.ENV}, seed {seed}")
    for column in ("stage", "env steps", "grad steps", "eval return"):
        table.add_column(column)
    table.add_row("pre-trained (CQL, random data)", "", str(offline_steps), f"{summary['pretrained_return']:.1f}")
    table.add_row("fine-tuned (WSRL), final", str(online_steps), str(fine["grad_steps"]),
                  f"{summary['finetuned_return']:.1f}")
    table.add_row("fine-tuned, mean of last 5 evals", "", "", f"{summary['finetuned_mean_last5']:.1f}")
    table.add_row("fine-tuned, best eval", "", "", f"{summary['finetuned_best']:.1f}")
    Console().print(table)
    print(f"learning curve: {figure}; run directories: {out / 'pretrain'}, {out / 'finetune'}")
    return summary
