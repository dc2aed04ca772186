"""`wsrl sweep SPEC.toml`: a Ray Tune search over the flags of `wsrl pretrain | train | finetune`.

Each trial is one ordinary wsrl command writing an ordinary run directory (OUT/trials/TRIAL_ID/, several seeds in it
with `seeds = N` among the args); its evaluations (the mean over its seeds) are reported to Tune as they appear in
metrics.csv, so a scheduler such as ASHA can stop a trial early. Tune keeps the experiment's state in OUT/tune:
running the same command again after an interruption restores it, and a trial that was running continues from its
run's newest checkpoint. The spec's format is docs/sweeps.md; `benchmarks/sweeps/warmup.toml` is an example.
"""

from __future__ import annotations

import csv
import itertools
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints

import numpy as np

from wsrl.config import flag_name
from wsrl.errors import UserError, read_toml
from wsrl.jobs import Job, command, failure, job_args, job_log
from wsrl.plots import mean_over_steps, plot_runs, read_run
from wsrl.resolve import resolve
from wsrl.rundir import members

COMMANDS = ("pretrain", "train", "finetune")
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")


@dataclass(frozen=True)
class Spec:
    """A sweep: the command, its fixed flags, the grid and the distributions searched, and Tune's settings."""

    command: str
    out: Path
    args: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, dict[str, Any]] = field(default_factory=dict)
    pretrain: dict[str, Any] | None = None  # finetune: one pre-training (OUT/pretrain) every trial starts from
    samples: int = 1  # Tune's num_samples: the grid is run this many times, each with its own random draws
    seed: int = 0  # of the random search
    scheduler: str = "none"  # or "asha": stop trials whose evaluations trail the others'
    grace: int = 2  # ASHA: evaluations every trial makes before it can be stopped
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: as many as the cluster's resources allow

    @property
    def swept(self) -> list[str]:
        return [*self.grid, *self.random]

    def trial_args(self, params: dict[str, Any], out: Path) -> tuple[str, ...]:
        """The wsrl arguments of the trial with `params` writing `out`."""
        start = {"from": str(self.out / "pretrain")} if self.pretrain is not None else {}
        return (self.command, *flags({**start, **self.args, **params}), "--out", str(out), "--overwrite")


def _toml_type(hint: Any) -> type | tuple[type, ...]:
    """The TOML value type(s) that give a `Spec` field of type `hint`: a path is written as a string, a float may be
    written as an integer, an optional field as its type."""
    if get_origin(hint) is UnionType:
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    hint = get_origin(hint) or hint
    return {Path: str, float: (int, float)}.get(hint, hint)


# The keys a spec file may hold (`Spec`'s fields) and their TOML types, checked where the file is read.
SPEC_TYPES: dict[str, type | tuple[type, ...]] = {name: _toml_type(hint) for name, hint in get_type_hints(Spec).items()}


def flags(values: dict[str, Any]) -> list[str]:
    """{"warmup_steps": 5000, "layer_norm": False, "critic_hidden_dims": [64, 64]} ->
    ["--warmup-steps", "5000", "--no-layer-norm", "--critic-hidden-dims", "64", "64"]."""
    tokens = []
    for key, value in values.items():
        flag = flag_name(key)
        if isinstance(value, bool):
            tokens.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list | tuple):
            tokens += [flag, *map(str, value)]
        else:
            tokens += [flag, str(value)]
    return tokens


def read_spec(path: str | Path, out: str | None = None) -> Spec:
    """Parse and check a sweep spec: every trial it can make must be a valid wsrl command (one line otherwise)."""
    path = Path(path)
    raw = read_toml(path)
    unknown = set(raw) - set(SPEC_TYPES)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(SPEC_TYPES))}")
    for key, kind in SPEC_TYPES.items():
        value = raw.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            expected = {str: "a string", int: "an integer", dict: "a table"}.get(kind, "a number")
            raise UserError(f"{path}: {key} must be {expected}, got {value!r}")
    if raw.get("command") not in COMMANDS:
        raise UserError(f"{path}: command must be one of {', '.join(COMMANDS)}, got {raw.get('command')!r}")
    out = out or raw.get("out")
    if not out:
        raise UserError(f"{path} names no `out` directory: add out = \"runs/sweeps/NAME\" or give --out")
    spec = Spec(**{**raw, "out": Path(out).absolute()})
    _check(spec, path)
    return spec


def _check(spec: Spec, path: Path) -> None:
    if spec.samples < 1 or spec.grace < 1 or spec.max_concurrent < 0:
        raise UserError(f"{path}: samples and grace must be >= 1 and max_concurrent >= 0")
    if spec.scheduler not in ("none", "asha"):
        raise UserError(f"{path}: scheduler must be 'none' or 'asha', got {spec.scheduler!r}")
    if spec.pretrain is not None and spec.command != "finetune":
        raise UserError(f"{path}: a [pretrain] table needs command = \"finetune\" (it is what the trials start from)")
    for key in ("out", "overwrite", *(["from"] if spec.pretrain is not None else [])):
        if key in spec.args or key in spec.swept:
            raise UserError(f"{path}: {key!r} is set by the sweep, not the spec")
    if spec.pretrain is not None:
        resolve("pretrain", flags(spec.pretrain))
    for name, values in spec.grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: grid.{name} must be a non-empty list of values")
    for name, distribution in spec.random.items():
        if not isinstance(distribution, dict) or len(distribution) != 1 or set(distribution) - set(DISTRIBUTIONS):
            raise UserError(f"{path}: random.{name} must be a table of one distribution: "
                            + " | ".join(f"{{ {d} = [...] }}" for d in DISTRIBUTIONS))
    for params in corners(spec):
        try:
            resolve(spec.command, spec.trial_args(params, spec.out)[1:], checkpoint_env=False).config.validate()
        except UserError as e:
            raise UserError(f"{path}: the trial {params or '(no parameters)'}: {e}") from None


def _extremes(name: str, distribution: dict[str, Any]) -> list[Any]:
    """The values of a distribution that bound every draw (to check before searching)."""
    (kind, bounds), = distribution.items()
    if kind == "choice":
        if not isinstance(bounds, list) or not bounds:
            raise UserError(f"random.{name}: choice needs a non-empty list")
        return bounds
    if not isinstance(bounds, list) or len(bounds) != 2 or not bounds[0] < bounds[1] or \
            (kind == "loguniform" and bounds[0] <= 0):
        raise UserError(f"random.{name}: {kind} needs [low, high] with low < high" +
                        (" and low > 0" if kind == "loguniform" else ""))
    return [bounds[0], bounds[1] - 1] if kind == "randint" else bounds


def corners(spec: Spec) -> list[dict[str, Any]]:
    """Every grid point with every extreme of each distribution: the trials to check before searching."""
    axes = {**spec.grid, **{name: _extremes(name, d) for name, d in spec.random.items()}}
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def _param_space(spec: Spec) -> dict[str, Any]:
    from ray import tune

    space = {name: tune.grid_search(values) for name, values in spec.grid.items()}
    for name, distribution in spec.random.items():
        (kind, bounds), = distribution.items()
        space[name] = tune.choice(bounds) if kind == "choice" else getattr(tune, kind)(*bounds)
    return space


def scores(run_dir: Path) -> list[tuple[int, float]]:
    """(step, score) of each evaluation every seed of the run has made so far (the score of `plots.score_key`),
    averaged over seeds."""
    curves = []
    for member in members(run_dir):
        if not (member / "metrics.csv").is_file():
            return []
        run = read_run(member)
        curves.append(run[run["score_key"]])
    n = min(len(x) for x, _ in curves)
    return [(int(curves[0][0][i]), float(np.mean([y[i] for _, y in curves]))) for i in range(n)]


def _trial(params: dict[str, Any], spec: Spec) -> None:
    """Tune's trainable: run the trial's wsrl command (or continue it) and report each evaluation as it appears."""
    from ray import tune

    out = spec.out / "trials" / tune.get_context().get_trial_id()
    job = Job(spec.trial_args(params, out), out, ())
    args, log = job_args(job), job_log(job)
    process = None
    if args is not None:
        with open(log, "w") as f:
            process = subprocess.Popen(command(args), stdout=f, stderr=subprocess.STDOUT)
    reported = 0
    try:
        while True:
            running = process is not None and process.poll() is None
            evaluations = scores(job.out)
            for step, score in evaluations[reported:]:
                tune.report({"score": score, "step": step})
            reported = len(evaluations)
            if not running:
                break
            time.sleep(1.0)
    finally:
        if process is not None and process.poll() is None:  # stopped by the scheduler
            process.kill()
    if process is not None and process.returncode != 0:
        raise RuntimeError(str(failure(args, log)))


def pretrain_job(spec: Spec) -> Job:
    out = spec.out / "pretrain"
    return Job(("pretrain", *flags(spec.pretrain or {}), "--out", str(out), "--overwrite"), out, ())


def run_sweep(spec: Spec, address: str = "") -> list[dict[str, Any]]:
    """Run (or continue) the sweep; writes OUT/results.csv and OUT/best.png, returns the table's rows (best
    first)."""
    from wsrl.cluster import connect, require_ray, run_jobs

    require_ray("wsrl sweep")
    connect(address)
    from ray import tune

    spec.out.mkdir(parents=True, exist_ok=True)
    if spec.pretrain is not None:
        list(run_jobs([pretrain_job(spec)], spec.cpus_per_trial, spec.gpus_per_trial))
    trainable = tune.with_resources(tune.with_parameters(_trial, spec=spec),
                                    {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})
    state = spec.out / "tune"
    if tune.Tuner.can_restore(str(state)):
        tuner = tune.Tuner.restore(str(state), trainable, resume_unfinished=True, resume_errored=True)
    else:
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.basic_variant import BasicVariantGenerator

        scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=spec.grace) \
            if spec.scheduler == "asha" else None
        tuner = tune.Tuner(
            trainable, param_space=_param_space(spec),
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=spec.samples, scheduler=scheduler,
                                        search_alg=BasicVariantGenerator(random_state=spec.seed),
                                        max_concurrent_trials=spec.max_concurrent or None, reuse_actors=True,
                                        trial_dirname_creator=lambda trial: trial.trial_id),
            run_config=tune.RunConfig(name="tune", storage_path=str(spec.out), verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=2)))
    grid = tuner.fit()
    rows = [table_row(spec, result) for result in grid]
    errors = [r for r in rows if r["status"] == "error"]
    rows.sort(key=lambda r: (np.inf if r["score_end"] == "" else -r["score_end"], r["trial"]))  # best, then id
    write_results(spec, rows)
    if errors:
        raise UserError(f"{len(errors)} trial(s) failed, e.g. {errors[0]['trial']}: see its log "
                        f"{errors[0]['run_dir']}.log; the others are in {spec.out / 'results.csv'}")
    return rows


def table_row(spec: Spec, result: Any) -> dict[str, Any]:
    """One trial's parameters and results (mean over its seeds): final score, best, area under the curve."""
    run_dir = spec.out / "trials" / Path(result.path).name  # Tune's trial directory is named by its id
    evaluations = scores(run_dir) if run_dir.is_dir() else []
    status = "error" if result.error else "done" if (run_dir / "summary.json").is_file() else "stopped"
    row = {"trial": run_dir.name, **{name: result.config.get(name) for name in spec.swept}, "status": status,
           "evaluations": len(evaluations), "score_end": "", "score_best": "", "auc": "", "run_dir": str(run_dir)}
    if evaluations:
        x, y = np.array(evaluations).T
        row.update(score_end=float(y[-1]), score_best=float(y.max()), auc=mean_over_steps(x, y))
    return row


def write_results(spec: Spec, rows: list[dict[str, Any]], best: int = 5) -> None:
    """OUT/results.csv (every trial, best first) and OUT/best.png (the learning curves of the best `best`)."""
    with open(spec.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
    shown = [r for r in rows if r["evaluations"]][:best]
    runs, labels = [], []
    for row in shown:
        label = ", ".join(f"{name}={short(row[name])}" for name in spec.swept) or row["trial"]
        for member in members(Path(row["run_dir"])):
            runs.append(member)
            labels.append(label)
    if runs:
        plot_runs(runs, spec.out / "best.png", title=f"wsrl sweep {spec.out.name}: the best {len(shown)} "
                  f"of {len(rows)} trials", labels=labels)


def short(value: Any) -> str:
    """A parameter's value as a table or legend shows it."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)
