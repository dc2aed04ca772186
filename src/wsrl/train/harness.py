"""The run harness every training loop runs in: offline pre-training and online training differ only in their loop.

A run trains one or more seeds in lockstep (each OUT/seedS/, an ordinary single-seed run directory; OUT itself for
one seed). The harness owns what is the same for both loops: the run directories and their config.json, each seed's
RunLogger (metrics.csv, TensorBoard, W&B), the checkpoint clock and the stop signals, the wall clock across resumes,
the divergence guard's summaries, each seed's checkpoint (never one holding non-finite parameters) with its
versioned loop state, and summary.json (each seed's, and for several seeds the run's). A loop holds only what differs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsrl import checkpoint, rundir
from wsrl.errors import Diverged, Stopped, UserError, read_json
from wsrl.runlog import RunLogger, tracking
from wsrl.train.lifecycle import CheckpointClock, StopRequest, check_parameters, stop_signals

LOOP_FILE = "loop.json"
LOOP_FORMAT = 2  # version of what loop.json holds; `wsrl resume` refuses another
Fields = dict[str, type | tuple[type, ...]]


@dataclass(frozen=True)
class Harness:
    """What stays fixed while a run of `seeds` goes: output, each seed's directory and logger, clock and stop."""

    out: Path
    outs: tuple[Path, ...]
    seeds: tuple[int, ...]
    loggers: tuple[RunLogger, ...]
    clock: CheckpointClock
    stop: StopRequest
    started: float = field(default_factory=time.perf_counter)

    def whose(self, k: int) -> str:
        """How a message names seed k: "" in a single-seed run."""
        return f"seed {self.seeds[k]}'s " if len(self.seeds) > 1 else ""

    def elapsed(self, before: float) -> float:
        """Wall-clock seconds of a run that had spent `before` seconds before this process resumed it."""
        return before + time.perf_counter() - self.started

    def stop_if_asked(self, step: int, unit: str) -> None:
        """After the loop checkpointed at `step`: raise `Stopped` if SIGINT / SIGTERM arrived."""
        if self.stop.signal:
            raise Stopped(self.stop.exit_code, f"stopped at {unit} {step} after writing a checkpoint; "
                                               f"continue with `wsrl resume {self.out}`")

    def save(self, k: int, step: int, agent: Any, meta: dict[str, Any], loop: dict[str, Any], keep: int,
             files: Callable[[], dict[str, bytes]] = dict) -> None:
        """Seed k's checkpoint at `step` (unless one is there): the agent, its loop state (`loop`, written as
        loop.json with the loop format and metrics.csv's position) and the other files `files()` makes."""
        directory = self.outs[k] / "checkpoints" / f"step_{step}"
        if directory.is_dir():
            return
        check_parameters(step, agent, self.whose(k))
        record = {"format": LOOP_FORMAT, **loop, "metrics_bytes": self.loggers[k].position}
        checkpoint.save(agent, directory, meta, {LOOP_FILE: json.dumps(record).encode(), **files()})
        checkpoint.prune(self.outs[k], keep)


def start(out: Path, configs: Sequence[Any], command: str, overwrite: bool, group: dict[str, Any],
          members: Sequence[dict[str, Any]]) -> None:
    """Make a new run's directories: config.json of each seed (with its `members` entries) and, for several seeds,
    the run's (with `group`, which names the seeds); an earlier run in `out` is replaced only with `overwrite`."""
    rundir.prepare(out, overwrite)
    outs = [path for _, path in rundir.seed_dirs(out, configs[0].seed, len(configs))]
    if len(configs) > 1:
        rundir.write_config(out, configs[0], command, **group)
    for config, path, about in zip(configs, outs, members, strict=True):
        path.mkdir(exist_ok=True)
        rundir.write_config(path, config, command, **about)


@contextmanager
def harness(out: Path, configs: Sequence[Any], step_key: str,
            resume_at: Sequence[tuple[int, int]] | None = None) -> Iterator[Harness]:
    """The harness of a run of `configs` (one per seed) into `out`, its loggers new or (`resume_at`: each seed's
    metrics.csv size and step from its checkpoint) continued; SIGINT / SIGTERM only request a stop while inside."""
    config, seeds = configs[0], len(configs)
    outs = tuple(path for _, path in rundir.seed_dirs(out, config.seed, seeds))
    positions = resume_at if resume_at is not None else [None] * seeds
    loggers = tuple(RunLogger(path, step_key, resume_at=position, **tracking(config, out, seeds))
                    for path, position in zip(outs, positions, strict=True))
    with stop_signals() as stop:
        yield Harness(out, outs, tuple(c.seed for c in configs), loggers,
                      CheckpointClock(config.checkpoint_every, config.checkpoint_minutes), stop)


def execute(h: Harness, body: Callable[[], None], summary: Callable[[int], dict[str, Any]],
            close: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Run `body` (the loop and its final checkpoints), then write every seed's `summary(k)` and, for several
    seeds, the run's; returns the run's summary. A divergence still writes each seed's summary, marked
    "diverged", before it propagates. Loggers are closed (and `close` called) whatever happens."""
    finished = False
    try:
        body()
        finished = True
    except Diverged as e:
        diverged = {"diverged": {"step": e.step, "quantity": e.quantity}}
        for k, path in enumerate(h.outs):
            rundir.write_summary(path, {**summary(k), **diverged})
        if len(h.outs) > 1:
            rundir.write_summary(h.out, diverged)
        raise
    finally:
        for logger in h.loggers:
            logger.close(finished)
        close()
    summaries = [summary(k) for k in range(len(h.outs))]
    for path, each in zip(h.outs, summaries, strict=True):
        rundir.write_summary(path, each)
    if len(summaries) == 1:
        return summaries[0]
    run_summary = rundir.group_summary(summaries, list(h.seeds))
    rundir.write_summary(h.out, run_summary)
    return run_summary


def read_loop(directory: Path, fields: Fields) -> dict[str, Any]:
    """A checkpoint's loop.json, checked where it is read: a JSON object of this loop format whose `fields` have
    their JSON types (each loop passes its own)."""
    path = directory / LOOP_FILE
    if not path.is_file():
        raise UserError(f"checkpoint {directory} holds no loop state ({LOOP_FILE}): it was not written by a "
                        "resumable run")

    def problem(record: Any) -> str | None:
        if not isinstance(record, dict):
            return "not a JSON object"
        if record.get("format") != LOOP_FORMAT:
            return f"loop format {record.get('format')!r}, this wsrl reads {LOOP_FORMAT} (an incompatible version)"
        wrong = [name for name, kinds in fields.items() if not isinstance(record.get(name, ...), kinds)
                 or (kinds is int and isinstance(record[name], bool))]
        return f"missing or wrongly typed {', '.join(wrong)}" if wrong else None

    return read_json(path, problem, "the checkpoint is damaged or foreign: resume from an earlier one")
