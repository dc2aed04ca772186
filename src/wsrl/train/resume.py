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

from wsrl import checkpoint
from wsrl.config import OfflineConfig, OnlineConfig, from_dict, to_dict
from wsrl.errors import UserError
from wsrl.train import rundir


def resumable(run_dir: Path) -> bool:
    """Whether `run_dir` is a run with a checkpoint to continue from."""
    return (run_dir / rundir.CONFIG_FILE).is_file() and bool(checkpoint.checkpoints(run_dir))


def resume(run_dir: str | Path, steps: int | None = None, command: str = "") -> dict[str, Any]:
    """Continue `run_dir` to its budget, or to `steps` (which may extend a finished run's budget)."""
    run_dir = Path(run_dir)
    path = run_dir / rundir.CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} is not a wsrl run directory (no {rundir.CONFIG_FILE}); give the --out of a "
                        "pretrain, train or finetune run")
    try:
        record = json.loads(path.read_text())
        kind = record["kind"]
        config = from_dict({"online": OnlineConfig, "offline": OfflineConfig}[kind], record["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{run_dir} was written by an incompatible wsrl ({record.get('wsrl_version', 'unknown')}"
                        f" version; {type(e).__name__}: {e}); start it again") from None
    found = checkpoint.checkpoints(run_dir)
    if not found:
        raise UserError(f"{run_dir} has no checkpoint to resume from; start the run again")
    if steps is not None:
        if steps < int(found[-1].name.split("_")[1]):
            raise UserError(f"--steps {steps} is below the newest checkpoint ({found[-1].name}); give a larger budget")
        config = dataclasses.replace(config, steps=steps)
    record["config"] = to_dict(config)
    record["resumed"] = [*record.get("resumed", []), command]

    def record_resumption() -> None:  # once the checkpoint was read and the input checked
        path.write_text(json.dumps(record, indent=2))

    if kind == "online":
        from wsrl.train.online import resume_online

        return resume_online(run_dir, config, found[-1], record_resumption)
    from wsrl.train.offline import resume_offline

    return resume_offline(run_dir, config, found[-1], record_resumption)
