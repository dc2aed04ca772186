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

from wsrl._version import __version__
from wsrl.config import OfflineConfig, OnlineConfig, from_dict, to_dict
from wsrl.errors import UserError, read_json

CONFIG_FILE, SUMMARY_FILE = "config.json", "summary.json"
RUN_CONFIGS = {"online": OnlineConfig, "offline": OfflineConfig}  # config.json's `kind` -> the class of its `config`
# Evaluation episodes are seeded apart from training episodes: episode i of every evaluation of a run
# starts from reset(seed=eval_seed(run seed) + i).
EVAL_SEED_OFFSET = 10_000


def eval_seed(seed: int) -> int:
    return seed + EVAL_SEED_OFFSET


def seed_dirs(out: Path, seed: int, seeds: int) -> list[tuple[int, Path]]:
    """(seed, run directory) of each seed of a run: `out` itself for one seed, else out/seed{S}/ for S = seed,
    seed + 1, ... (each an ordinary single-seed run directory, usable alone)."""
    if seeds < 1:
        raise UserError(f"--seeds must be a positive integer, got {seeds}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0 (seeds {seed}..{seed + seeds - 1} were asked for); give a "
                        "non-negative first seed")
    if seeds == 1:
        return [(seed, out)]
    return [(s, out / f"seed{s}") for s in range(seed, seed + seeds)]


def read_record(run_dir: Path) -> dict[str, Any]:
    """config.json of a run directory ({} when it has none), checked where it is read: a JSON object whose `kind` is
    "online" or "offline" and `config` a config of that kind (`config.from_dict`: known fields of their types),
    `seeds` a list of seeds, `command` a string; anything else is one UserError naming the file."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    return read_json(path, _record_problem, "the run directory is damaged: start the run again (or restore the file)")


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"not a JSON object but a {type(record).__name__}"
    if not isinstance(record.get("config", {}), dict):
        return "config must be a JSON object"
    if record.get("kind", "online") not in RUN_CONFIGS:
        return f"kind must be 'online' or 'offline', got {record['kind']!r}"
    if "kind" in record and "config" in record:
        try:
            from_dict(RUN_CONFIGS[record["kind"]], record["config"])
        except (TypeError, ValueError) as e:
            return f"config is not an {record['kind']} run's config ({e})"
    seeds = record.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and seeds and
                                  all(type(s) is int and s >= 0 for s in seeds)):
        return f"seeds must be a list of non-negative integers, got {seeds!r}"
    if not isinstance(record.get("command", ""), str):
        return f"command must be a string, got {record['command']!r}"
    return None


def group_seeds(run_dir: Path) -> list[int] | None:
    """The seeds of a multi-seed run directory (`--seeds N`), None for a single-seed run or anything else."""
    return read_record(run_dir).get("seeds")


def members(run_dir: Path) -> list[Path]:
    """The single-seed run directories of a run: its seeds' for a multi-seed run, else itself."""
    seeds = group_seeds(run_dir)
    return [run_dir] if seeds is None else [path for _, path in seed_dirs(run_dir, seeds[0], len(seeds))]


def default_out(command: str, name: str, seed: int, seeds: int = 1) -> str:
    """runs/COMMAND_NAME_seedS_TIME (several seeds: _seedsS-T_): where a run goes without --out."""
    which = f"seed{seed}" if seeds == 1 else f"seeds{seed}-{seed + seeds - 1}"
    return f"runs/{command}_{name}_{which}_{time.strftime('%Y%m%d-%H%M%S')}"


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
    return read_record(run_dir).get("config", {})


def read_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a finished run, checked where it is read: a JSON object whose episode counts are counts."""
    return read_json(run_dir / SUMMARY_FILE, _summary_problem,
                     "the run directory is damaged: run it again (or restore the file)")


def _summary_problem(summary: Any) -> str | None:
    if not isinstance(summary, dict):
        return f"not a JSON object but a {type(summary).__name__}"
    for key in ("train_episodes", "train_successes", "env_steps", "grad_steps"):
        if key in summary and (type(summary[key]) is not int or summary[key] < 0):
            return f"{key} must be a non-negative integer, got {summary[key]!r}"
    if not isinstance(summary.get("final_eval", {}), dict):
        return "final_eval must be a JSON object"
    return None


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def group_summary(summaries: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """A multi-seed run's summary.json: each seed's summary, and the mean over seeds of every numeric final
    evaluation value (`final_eval`) and of the budgets and timings."""
    evals = [s["final_eval"] for s in summaries]
    mean_eval = {k: float(sum(e[k] for e in evals) / len(evals)) for k in evals[0] if all(k in e for e in evals)}
    first = summaries[0]
    return {**{k: first[k] for k in ("env", "dataset", "algo") if k in first},
            **{k: first[k] for k in ("env_steps", "grad_steps") if k in first},
            "wall_time_s": max(s["wall_time_s"] for s in summaries),
            "seeds": seeds, "final_eval": mean_eval, "final_eval_min": {k: min(e[k] for e in evals) for k in mean_eval},
            "per_seed": {str(seed): s for seed, s in zip(seeds, summaries, strict=True)}}


def is_finished(run_dir: Path) -> bool:
    """A run that wrote its summary.json ran to the end."""
    return (run_dir / SUMMARY_FILE).is_file()
