"""Run logging: metrics.csv and TensorBoard event files (always), Weights & Biases (--wandb), and at the end of a
run its learning curves, curves.png."""

from __future__ import annotations

import csv
import json
import math
import secrets
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from tensorboardX import SummaryWriter

from wsrl.errors import UserError

COLUMNS = (
    "env_step", "grad_step", "phase", "wall_time", "env_steps_per_s", "episode_return",
    "eval_return", "eval_return_std", "eval_normalized_score", "eval_success", "eval_length",
    "critic_loss", "q_mean", "target_q_mean", "actor_loss", "temperature", "temperature_loss", "entropy",
    "td_loss", "cql_penalty", "cql_alpha", "value_loss", "v_mean", "awr_weight_mean", "offline_fraction",
    "jsrl_horizon", "train_return", "train_success", "train_episodes", "utd_realised",
)


class RunLogger:
    """Appends one row per call to metrics.csv and writes every numeric value to TensorBoard.

    `step_key` is the row's x value in TensorBoard (env_step online, grad_step offline). Resuming a run
    (`resume_at`: the metrics.csv size and step its checkpoint recorded) drops every row written after that
    checkpoint and tells TensorBoard to purge the events past it.
    """

    def __init__(self, run_dir: Path, step_key: str = "env_step", resume_at: tuple[int, int] | None = None,
                 wandb_project: str | None = None, group: str | None = None):
        path, self._step_key, self._run_dir = run_dir / "metrics.csv", step_key, run_dir
        self._wandb = None if wandb_project is None else _start_wandb(run_dir, step_key, wandb_project, group)
        if resume_at is None:
            self._file = open(path, "w", newline="")  # noqa: SIM115 (closed in close())
            self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS, extrasaction="ignore")
            self._csv.writeheader()
            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        else:
            size, step = resume_at
            self._file = open(path, "r+", newline="")  # noqa: SIM115
            header = next(csv.reader([self._file.readline()]), list(COLUMNS))  # a run keeps the columns it began with
            self._file.truncate(size)
            self._file.seek(size)
            self._csv = csv.DictWriter(self._file, fieldnames=header, extrasaction="ignore")
            self._tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step + 1)
        self._file.flush()

    @property
    def position(self) -> int:
        """Bytes of metrics.csv written so far (what a checkpoint records)."""
        return self._file.tell()

    def log(self, row: dict[str, Any]) -> None:
        self._csv.writerow(row)
        self._file.flush()
        step = int(row[self._step_key])
        scalars = {key: value for key, value in row.items()
                   if key != "phase" and isinstance(value, int | float) and math.isfinite(value)}
        for key, value in scalars.items():
            if key != "env_step":
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(scalars)

    def close(self, finished: bool = False) -> None:
        """Close the logs; a `finished` run also gets curves.png (and W&B the figure)."""
        self._file.close()
        self._tb.close()
        figure = plot_curves(self._run_dir) if finished else None
        if self._wandb is not None:
            import wandb

            if figure is not None:
                self._wandb.log({"curves": wandb.Image(str(figure))})
            self._wandb.finish(exit_code=0 if finished else 1)


def tracking(config: Any, out: Path, seeds: int) -> dict[str, Any]:
    """RunLogger's W&B arguments for a run of `config` into `out` (a W&B group of its seeds' runs)."""
    return {"wandb_project": config.wandb_project if config.wandb else None, "group": out.name if seeds > 1 else None}


def plot_curves(run_dir: Path) -> Path | None:
    """RUN/curves.png: the run's evaluation (and Q) curves; None for a run that never evaluated."""
    from wsrl.plots import plot_runs

    try:
        return plot_runs([run_dir], run_dir / "curves.png", title=str(run_dir))
    except UserError:
        return None


def _start_wandb(run_dir: Path, step_key: str, project: str, group: str | None) -> Any:
    """A W&B run for `run_dir` (its files in RUN/wandb/), logging against `step_key`, with the run's config.json
    as its config. A resumed run continues its W&B run (the id is kept in RUN/wandb_id.txt); the rows written after
    its checkpoint are logged again."""
    import wandb

    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
    id_file.write_text(run_id)
    name = f"{group}/{run_dir.name}" if group else run_dir.name
    run = wandb.init(project=project, id=run_id, resume="allow", dir=str(run_dir), name=name, group=group,
                     config=json.loads((run_dir / "config.json").read_text()), reinit="create_new",
                     settings=wandb.Settings(console="off", quiet=True))
    run.define_metric(step_key)
    run.define_metric("*", step_metric=step_key)
    return run


class ProgressBar:
    """A rich progress bar over env (or gradient) steps whose label shows the last evaluation return (of several
    seeds: their mean and minimum). Outside a terminal (a log file, a background job) rich draws nothing until the
    end, so there it prints the same as a plain line every `line_every_s` seconds."""

    def __init__(self, total: int, label: str, line_every_s: float = 60.0):
        self._label = label
        self._total = total
        self._line_every_s = line_every_s
        self._last_line = -math.inf
        self._first_completed: int | None = None  # a resumed loop starts past 0: its rate counts from there
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self._task = self._bar.add_task(label, total=total, rate="")
        self._start = time.perf_counter()
        self._last_refresh = 0.0

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def advance(self, completed: int, eval_returns: Sequence[float] = ()) -> None:
        now = time.perf_counter()
        if now - self._last_refresh < 0.2 and completed != self._total:
            return
        self._last_refresh = now
        if self._first_completed is None:
            self._first_completed = completed
        description = self._label
        if len(eval_returns) == 1:
            description += f" | eval return {eval_returns[0]:.1f}"
        elif eval_returns:
            description += f" | eval return mean {np.mean(eval_returns):.1f}, min {min(eval_returns):.1f}"
        elapsed = now - self._start
        steps_per_s = (completed - self._first_completed) / max(elapsed, 1e-9)
        rate = f"{steps_per_s:.0f} steps/s"
        self._bar.update(self._task, completed=completed, description=description, rate=rate)
        if not self._bar.console.is_terminal and now - self._last_line >= self._line_every_s:
            self._last_line = now
            left = (f", {timedelta(seconds=int((self._total - completed) / steps_per_s))} left"
                    if steps_per_s > 0 else "")
            self._bar.console.print(f"{description} | {completed}/{self._total} steps, {rate}, "
                                    f"{timedelta(seconds=int(elapsed))} elapsed{left}", highlight=False, soft_wrap=True)

