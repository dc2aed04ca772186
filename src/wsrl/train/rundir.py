"""Run directories: the one place that creates them and writes config.json and summary.json.

Every command that trains (pretrain, train, finetune, the sac-ladder recipe, each run of compare) writes
the same layout: config.json (exact resolved config, command line, versions), metrics.csv, tensorboard/,
checkpoints/step_N/ and, once finished, summary.json.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from wsrl import __version__
from wsrl.config import to_dict
from wsrl.errors import UserError

CONFIG_FILE, SUMMARY_FILE = "config.json", "summary.json"
# Evaluation episodes are seeded apart from training episodes: episode i of every evaluation of a run
# starts from reset(seed=eval_seed(run seed) + i).
EVAL_SEED_OFFSET = 10_000


def eval_seed(seed: int) -> int:
    return seed + EVAL_SEED_OFFSET


def default_out(command: str, name: str, seed: int) -> str:
    """runs/COMMAND_NAME_seedS_TIME: where a run goes without --out."""
    return f"runs/{command}_{name}_seed{seed}_{time.strftime('%Y%m%d-%H%M%S')}"


def prepare(out: Path, overwrite: bool) -> None:
    """Refuse to clobber an earlier run unless asked to; call only after all input was validated."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out} already holds files; choose another directory or pass --overwrite")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".wsrl-write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {out} cannot be written ({e.strerror or e}); choose a writable directory") from None


def write_config(out: Path, config: Any, command: str, **extra: Any) -> None:
    """config.json: the resolved config, the command line that made it, and what ran it."""
    import jax

    record = {"command": command, "wsrl_version": __version__, "jax_backend": jax.default_backend(), **extra,
              "config": to_dict(config)}
    (out / CONFIG_FILE).write_text(json.dumps(record, indent=2))


def read_config(run_dir: Path) -> dict[str, Any]:
    """The resolved config a run recorded ({} when it has no config.json)."""
    path = run_dir / CONFIG_FILE
    return json.loads(path.read_text()).get("config", {}) if path.is_file() else {}


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def is_finished(run_dir: Path) -> bool:
    """A run that wrote its summary.json ran to the end."""
    return (run_dir / SUMMARY_FILE).is_file()
