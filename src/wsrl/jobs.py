"""The unit of work of `wsrl compare`, `wsrl sweep` and their Ray backend: one `wsrl` command writing one run
directory, and what brings it to its end (its own arguments, `resume`, or nothing for a finished run)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from wsrl import rundir
from wsrl.errors import UserError
from wsrl.train.resume import resumable


@dataclass(frozen=True)
class Job:
    """One process: a wsrl command writing run directory `out`, which holds the runs of `seeds`."""

    args: tuple[str, ...]
    out: Path
    seeds: tuple[int, ...]
    after: Path | None = None  # the run directory of the pre-training it starts from, which must end first

    def run_dir(self, seed: int) -> Path:
        return dict(rundir.seed_dirs(self.out, self.seeds[0], len(self.seeds)))[seed]


def job_args(job: Job) -> tuple[str, ...] | None:
    """The wsrl arguments that bring `job` to its end: none for a finished run (e.g. by another `compare` on the
    same directory), `resume` for one interrupted after a checkpoint, else its own. A run of another budget or
    other seeds than `job` asks is refused, not mixed in."""
    asked = int(job.args[job.args.index("--steps") + 1]) if "--steps" in job.args else None
    config = rundir.read_config(job.out)
    recorded = config.get("steps")
    if None not in (asked, recorded) and asked != recorded:
        raise UserError(f"{job.out} holds a run of {recorded} steps, not {asked}: give another --out (or extend "
                        f"it first with `wsrl resume {job.out} --steps {asked}`)")
    held = rundir.group_seeds(job.out) or ([config["seed"]] if "seed" in config else None)
    if held is not None and tuple(held) != job.seeds:
        raise UserError(f"{job.out} holds seed(s) {', '.join(map(str, held))}, not {', '.join(map(str, job.seeds))}:"
                        " run other seeds (--first-seed) into another --out")
    if rundir.is_finished(job.out):
        return None
    return ("resume", str(job.out)) if resumable(job.out) else job.args


def job_log(job: Job) -> Path:
    """Where a job's output goes: beside its run directory, NAME.log."""
    job.out.parent.mkdir(parents=True, exist_ok=True)
    return job.out.parent / f"{job.out.name}.log"


def failure(args: tuple[str, ...], log: Path) -> UserError:
    last = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
    return UserError(f"`wsrl {' '.join(args)}` failed: {last[0]} (log: {log})")


def command(args: tuple[str, ...]) -> list[str]:
    """The process that runs `wsrl ARGS` with this Python."""
    return [sys.executable, "-m", "wsrl", *args]
