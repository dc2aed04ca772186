"""`wsrl resume RUN_DIR`: continue an interrupted (or extend a finished) run from its newest checkpoint.

The run directory says everything: config.json holds the resolved config and which loop wrote it, the newest
checkpoint holds the agent and the loop state. A run resumed any number of times ends as the same run never
interrupted would (same metrics.csv rows apart from wall-clock columns, same parameters, same checkpoints).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from wsrl import checkpoint, rundir
from wsrl.config import from_dict
from wsrl.errors import UserError


def resumable(run_dir: Path) -> bool:
    """Whether `run_dir` is a run with a checkpoint to continue from (every seed, for a multi-seed run)."""
    if not (run_dir / rundir.CONFIG_FILE).is_file():
        return False
    return bool(_common_steps(rundir.members(run_dir)))


def _common_steps(members: list[Path]) -> list[int]:
    """The steps at which every member has a checkpoint, oldest first."""
    steps = [{int(p.name.split("_")[1]) for p in checkpoint.checkpoints(member)} for member in members]
    return sorted(set.intersection(*steps))


def _read_record(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / rundir.CONFIG_FILE).is_file():
        raise UserError(f"{run_dir} is not a wsrl run directory (no {rundir.CONFIG_FILE}); give the --out of a "
                        "pretrain, train or finetune run")
    return rundir.read_record(run_dir)


def resume(run_dir: str | Path, steps: int | None = None, command: str = "",
           fresh_episode: bool = False) -> dict[str, Any]:
    """Continue `run_dir` to its budget, or to `steps` (which may extend a finished run's budget).

    A multi-seed run continues every seed from the newest step at which all of them have a checkpoint.
    `fresh_episode` (online runs): start a new episode instead of replaying the interrupted one's actions."""
    run_dir = Path(run_dir)
    record = _read_record(run_dir)
    try:
        kind = record["kind"]
        config = from_dict(rundir.RUN_CONFIGS[kind], record["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{run_dir} was written by an incompatible wsrl ({record.get('wsrl_version', 'unknown')}"
                        f" version; {type(e).__name__}: {e}); start it again") from None
    members = rundir.members(run_dir)
    found = _common_steps(members)
    if not found:
        raise UserError(f"{run_dir} has no checkpoint to resume from{' (of every seed)' if len(members) > 1 else ''};"
                        " start the run again")
    if steps is not None:
        if steps < found[-1]:
            raise UserError(f"--steps {steps} is below the newest checkpoint (step_{found[-1]}); give a larger "
                            "budget")
        config = dataclasses.replace(config, steps=steps)
    records = {run_dir: record, **{member: _read_record(member) for member in members if member != run_dir}}
    for each in records.values():
        each["config"] = {**each["config"], "steps": config.steps}
        each["resumed"] = [*each.get("resumed", []), command]

    def record_resumption() -> None:  # once the checkpoints were read and the input checked
        for directory, each in records.items():
            (directory / rundir.CONFIG_FILE).write_text(json.dumps(each, indent=2))
            # Running again: a finished run's summary (of its old budget) no longer says it is finished.
            (directory / rundir.SUMMARY_FILE).unlink(missing_ok=True)

    directories = [member / "checkpoints" / f"step_{found[-1]}" for member in members]
    if kind == "online":
        from wsrl.train.online import resume_online

        return resume_online(run_dir, config, directories, record_resumption, fresh_episode)
    from wsrl.train.offline import resume_offline

    return resume_offline(run_dir, config, directories, record_resumption)
